/*
 * Oneshot channels. A oneshot carries one value from one sender to one
 * receiver, following tokio's sync::oneshot: the receiver learns TR_ECLOSED if
 * the sender goes away without sending, and a send fails with TR_ECLOSED once
 * the receiver has closed or gone. The receiver is a plain thread (blocking
 * receive with a timeout) or an actor (the value arrives as a control-lane
 * message).
 */
#ifndef TROUPE_ONESHOT_H
#define TROUPE_ONESHOT_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The sending half of a oneshot. */
typedef struct tr_oneshot_tx tr_oneshot_tx;
/** The receiving half of a oneshot. */
typedef struct tr_oneshot_rx tr_oneshot_rx;

/**
 * Create a oneshot for a value of `size` bytes.
 *
 * Ownership: returns owned `*tx` and `*rx`; release each with its
 *            destroy call (the channel is freed when both are).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL out-parameters or a size over
 *            UINT32_MAX; TR_ENOMEM.
 */
TR_API int tr_oneshot_create(size_t size, tr_oneshot_tx **tx,
                             tr_oneshot_rx **rx);

/**
 * Send the value (`size` bytes at `value`, as given at create) and wake
 * the receiver.
 *
 * Ownership: borrows `value` (copied).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ECLOSED if the
 *            receiver closed or went away, or the system of the actor that
 *            subscribed to it has shut down (nothing was sent: the caller
 *            still has its value); TR_EALREADY if a value was sent before.
 */
TR_API TR_NODISCARD int tr_oneshot_send(tr_oneshot_tx *tx, const void *value);

/**
 * Whether a send can only fail with TR_ECLOSED now (tokio's
 * Sender::is_closed): the receiver closed or went away, or the system of
 * the actor that subscribed to it shut down. A producer polls it to give
 * up work nobody will receive.
 *
 * Context:   any thread.
 * Returns:   true if so, and for NULL; false otherwise.
 */
TR_API bool tr_oneshot_tx_is_closed(tr_oneshot_tx *tx);

/**
 * Release the sending half. If no value was sent, the receiver gets
 * TR_ECLOSED.
 *
 * Ownership: takes `tx` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_oneshot_tx_destroy(tr_oneshot_tx *tx);

/**
 * Take the value, waiting up to `timeout` (TR_NOWAIT: do not wait;
 * TR_FOREVER: no limit).
 *
 * Ownership: writes `size` bytes to `out`.
 * Context:   one plain thread at a time (never a worker when it waits).
 * Returns:   TR_OK; TR_ETIMEDOUT; TR_ECLOSED if the sender went away
 *            without sending; TR_EALREADY if the value was already taken;
 *            TR_ESTATE if an actor subscribed to it, or if a worker asks
 *            to wait (or a `stop` callback that shutdown's last pass
 *            runs); TR_EINVAL for NULL arguments; TR_ESTUCK on a
 *            simulation's driving thread when nothing can ever end the
 *            wait (there it takes steps: troupe/sim.h).
 */
TR_API int tr_oneshot_recv_wait(tr_oneshot_rx *rx, void *out,
                                tr_timeout timeout);

/**
 * Have the value delivered to the calling actor instead: a control-lane
 * message of `value_type` carrying it, or, if the sender goes away without
 * sending (or the receiver is closed first), an empty message of
 * `closed_type`. Exactly one of the two arrives (none if the actor has
 * stopped by then, or if its system's shutdown has begun and the send or
 * close comes from off its workers). The channel may outlive the actor's
 * system: shutdown closes it (a later send fails with TR_ECLOSED and touches
 * nothing of the system).
 *
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments or a type the runtime
 *            reserves (>= TR_MSG_RESERVED); TR_ESTATE on a thread context;
 *            TR_EALREADY if subscribed or received before.
 */
TR_API int tr_oneshot_subscribe_actor(tr_ctx *ctx, tr_oneshot_rx *rx,
                                      uint32_t value_type,
                                      uint32_t closed_type);

/**
 * Refuse the value from now on (a later send fails with TR_ECLOSED); a
 * value sent before can still be received. With none sent, a receive
 * (even one already waiting) returns TR_ECLOSED at once, as tokio's does,
 * and a subscribed actor gets its `closed_type` message. Idempotent.
 *
 * Context:   any thread.
 */
TR_API void tr_oneshot_rx_close(tr_oneshot_rx *rx);

/**
 * Release the receiving half (closing it first).
 *
 * Ownership: takes `rx` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_oneshot_rx_destroy(tr_oneshot_rx *rx);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ONESHOT_H */
