/*
 * Compiled by check_timeout_type.cmake, once as is and once per
 * TR_SWAP_* case: the right argument order must compile, and each swap of
 * a timeout with a size (or an integer where the timeout goes) must not.
 * Before tr_timeout was a struct, every case below compiled.
 */
#include <troupe.h>

int timeout_swap(tr_ctx *ctx, tr_addr to, const void *data, size_t size,
                 tr_mailbox *mb, void *buf, size_t cap);

int
timeout_swap(tr_ctx *ctx, tr_addr to, const void *data, size_t size,
             tr_mailbox *mb, void *buf, size_t cap)
{
    size_t len = 0;
#if defined(TR_SWAP_SEND)
    /* size and timeout swapped */
    return tr_send_wait(ctx, to, 1, data, TR_FOREVER, size);
#elif defined(TR_SWAP_RECV)
    /* a bare integer where the timeout goes */
    return tr_mailbox_recv_wait(mb, buf, cap, &len, 100);
#elif defined(TR_SWAP_CALL)
    /* size and timeout swapped */
    return tr_call(ctx, to, 1, data, tr_ms(100), size, NULL, NULL);
#else
    int rc = tr_send_wait(ctx, to, 1, data, size, TR_FOREVER);
    if (rc == TR_OK) {
        rc = tr_mailbox_recv_wait(mb, buf, cap, &len, tr_ms(100));
    }
    if (rc == TR_OK) {
        rc = tr_call(ctx, to, 1, data, size, TR_NOWAIT, NULL, NULL);
    }
    return rc;
#endif
}
