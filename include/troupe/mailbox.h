/*
 * A mailbox on its own: an mpsc channel between plain threads. Any number of
 * threads send; one thread at a time receives, blocking with a timeout. The
 * same queue carries actor mailboxes.
 */
#ifndef TROUPE_MAILBOX_H
#define TROUPE_MAILBOX_H

#include <troupe/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_mailbox tr_mailbox;

/**
 * Create a mailbox holding at most `cap` messages (0: unbounded).
 *
 * Ownership: returns owned `*out`; free with tr_mailbox_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL if `out` is NULL; TR_ENOMEM.
 */
TR_API int tr_mailbox_create(uint32_t cap, tr_mailbox **out);

/**
 * Queue a copy of `size` bytes at `data`. Never blocks. A message sent
 * with TR_OK is received before the receiver gets TR_ECLOSED, whatever
 * races the close.
 *
 * Ownership: borrows `data`.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL `mb`, NULL `data` with a non-zero
 *            size, or a size over UINT32_MAX; TR_EFULL if bounded and full;
 *            TR_ECLOSED after tr_mailbox_close; TR_ENOMEM.
 */
TR_API TR_NODISCARD int tr_mailbox_send(tr_mailbox *mb, const void *data,
                                        size_t size);

/**
 * Take the oldest message, copying its payload into `buf`; wait up to
 * `timeout` for one (TR_NOWAIT: do not wait; TR_FOREVER: no limit).
 *
 * Ownership: borrows `buf`; writes `*len` (the payload size).
 * Context:   one receiving thread at a time.
 * Returns:   TR_OK; TR_ETIMEDOUT if nothing came in time; TR_ECLOSED when
 *            closed and drained; TR_EINVAL for NULL arguments, or if the
 *            payload is larger than `cap` (the message stays queued and
 *            `*len` says the size needed); TR_ESTATE if another thread is
 *            receiving, or if a worker (or a `stop` callback that
 *            shutdown's last pass runs) asks to wait; TR_ESTUCK on a
 * simulation's driving thread when nothing can ever end the wait (there the
 * wait takes the simulation's steps, its timeout on the virtual clock:
 *            troupe/sim.h).
 */
TR_API int tr_mailbox_recv_wait(tr_mailbox *mb, void *buf, size_t cap,
                                size_t *len, tr_timeout timeout);

/**
 * Refuse further sends and wake the receiver; queued messages can still be
 * received. Idempotent.
 *
 * Context:   any thread.
 */
TR_API void tr_mailbox_close(tr_mailbox *mb);

/**
 * Messages queued now (a snapshot).
 *
 * Context:   any thread.
 * Returns:   the count; 0 for NULL.
 */
TR_API size_t tr_mailbox_len(const tr_mailbox *mb);

/**
 * Free the mailbox and every message still queued.
 *
 * Ownership: takes `mb` (NULL is ignored). Every other thread's call on it
 *            must have returned: a sender's tr_mailbox_send may still be
 *            waking the receiver after the message is already received.
 * Context:   any thread.
 */
TR_API void tr_mailbox_destroy(tr_mailbox *mb);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_MAILBOX_H */
