/*
 * Broadcast channels, following tokio's sync::broadcast: a bounded ring of
 * values, many senders, many receivers, and every receiver sees every value
 * in send order. A value is copied once, into one shared reference-counted
 * allocation, never per receiver.
 *
 * A receiver that falls so far behind that the ring has overwritten values
 * it had not seen learns how many it missed (TR_ELAGGED with the exact
 * count), then resumes at the oldest value still held; for every receiver,
 * values received plus the lag counts equal the values sent while it was
 * subscribed. A new receiver starts at the next value sent. When the last
 * sender is gone, receivers drain what is left, then get TR_ECLOSED.
 *
 * Receivers are plain threads (tr_broadcast_recv_wait) or actors
 * (tr_broadcast_subscribe_actor): an actor subscriber gets each value as a
 * message whose payload is the shared value itself, and lags by the same
 * rule instead of queueing without bound.
 */
#ifndef TROUPE_BROADCAST_H
#define TROUPE_BROADCAST_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A sending handle; the channel closes when the last one is destroyed. */
typedef struct tr_broadcast_tx tr_broadcast_tx;
/** A thread receiver with its own position in the channel. */
typedef struct tr_broadcast_rx tr_broadcast_rx;
/** An actor's subscription. */
typedef struct tr_broadcast_sub tr_broadcast_sub;
/** One sent value, shared by every receiver (immutable). */
typedef struct tr_broadcast_value tr_broadcast_value;

/** The largest broadcast capacity, in values (the ring is allocated at
 * once: 16 MiB of slots at this size). */
#define TR_BROADCAST_CAP_MAX ((size_t)1 << 20)

/**
 * Create a channel holding up to `capacity` values (rounded up to a power
 * of two) of at most `max_size` bytes each, with one sender and no
 * receiver.
 *
 * Ownership: returns owned `*tx`; release with tr_broadcast_tx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL `tx`, a zero capacity or one over
 *            TR_BROADCAST_CAP_MAX, or a `max_size` over UINT32_MAX;
 *            TR_ENOMEM.
 */
TR_API int tr_broadcast_create(size_t capacity, size_t max_size,
                               tr_broadcast_tx **tx);

/**
 * Another sending handle on the same channel.
 *
 * Ownership: returns owned `*out`; release with tr_broadcast_tx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments.
 */
TR_API int tr_broadcast_tx_clone(tr_broadcast_tx *tx, tr_broadcast_tx **out);

/**
 * Release a sending handle. Releasing the last one closes the channel:
 * receivers get what is left, then TR_ECLOSED (actor subscribers one
 * message of their `closed_type`).
 *
 * Ownership: takes `tx` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_broadcast_tx_destroy(tr_broadcast_tx *tx);

/**
 * Send a copy of `size` bytes at `data` to every current receiver. Never
 * waits: when the ring is full the oldest value is overwritten, and the
 * receivers that had not seen it lag.
 *
 * Ownership: borrows `data` (copied once, shared by all receivers).
 * Context:   any thread; senders are serialised by a short lock.
 * Returns:   TR_OK; TR_EINVAL for a NULL `tx`, NULL `data` with a non-zero
 *            size, or a size over the channel's `max_size`; TR_ECLOSED when
 *            there is no receiver (nothing was stored, as in tokio);
 *            TR_ENOMEM.
 */
TR_API TR_NODISCARD int tr_broadcast_send(tr_broadcast_tx *tx, const void *data,
                                          size_t size);

/**
 * How many values are queued: sent, still in the ring, and not yet seen by
 * at least one receiver (tokio's Sender::len; a snapshot). A publisher
 * that must not make receivers lag can hold back while this is close to
 * the capacity.
 *
 * Context:   any thread.
 * Returns:   the count (at most the capacity); 0 for NULL.
 */
TR_API size_t tr_broadcast_len(tr_broadcast_tx *tx);

/**
 * How many receivers (threads and actor subscriptions) the channel has now
 * (a snapshot).
 *
 * Context:   any thread.
 * Returns:   the count; 0 for NULL.
 */
TR_API size_t tr_broadcast_receiver_count(tr_broadcast_tx *tx);

/**
 * A new thread receiver that will see every value sent from now on.
 *
 * Ownership: returns owned `*rx`; release with tr_broadcast_rx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ENOMEM.
 */
TR_API int tr_broadcast_subscribe(tr_broadcast_tx *tx, tr_broadcast_rx **rx);

/**
 * A new thread receiver of the channel `rx` receives from, that will see
 * every value sent from now on (tokio's Receiver::resubscribe): none of
 * those `rx` has not received yet. On a channel whose senders are all
 * gone it is closed from the start.
 *
 * Ownership: returns owned `*out`; release with tr_broadcast_rx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ENOMEM.
 */
TR_API int tr_broadcast_resubscribe(tr_broadcast_rx *rx, tr_broadcast_rx **out);

/**
 * How many values were sent that `rx` has not received yet (tokio's
 * Receiver::len; a snapshot). Not capped at the capacity: more than the
 * capacity means its next receive reports TR_ELAGGED.
 *
 * Context:   the thread using `rx` (one thread at a time per receiver).
 * Returns:   the count; 0 for NULL.
 */
TR_API size_t tr_broadcast_rx_len(tr_broadcast_rx *rx);

/**
 * Take the next value, waiting up to `timeout` for one (TR_NOWAIT: do
 * not wait; TR_FOREVER: no limit).
 *
 * Ownership: on TR_OK returns owned `*value` (one reference; release it
 *            with tr_broadcast_value_release); on TR_ELAGGED writes the
 *            number of values missed to `*lagged` (may be NULL).
 * Context:   one thread at a time per receiver; never a worker when it
 *            would wait.
 * Returns:   TR_OK; TR_ELAGGED when values were overwritten before this
 *            receiver saw them (the next call returns the oldest value
 *            still held); TR_ETIMEDOUT; TR_ECLOSED once every sender is
 *            gone and every value was received; TR_ESTATE if a worker asks
 *            to wait (or a `stop` callback that shutdown's last pass
 *            runs); TR_EINVAL for NULL `rx` or `value`; TR_ESTUCK on a
 *            simulation's driving thread when nothing can ever end the
 *            wait (there it takes steps: troupe/sim.h).
 */
TR_API int tr_broadcast_recv_wait(tr_broadcast_rx *rx,
                                  const tr_broadcast_value **value,
                                  uint64_t *lagged, tr_timeout timeout);

/**
 * Release a thread receiver; the values it had not received no longer wait
 * for it.
 *
 * Ownership: takes `rx` (NULL is ignored). Values it received stay valid
 *            until released.
 * Context:   any thread, once its receive calls have returned.
 */
TR_API void tr_broadcast_rx_destroy(tr_broadcast_rx *rx);

/**
 * The bytes of a value, aligned for any scalar type; never to be written.
 *
 * Ownership: returns borrowed, valid until the reference is released.
 * Context:   any thread.
 * Returns:   the bytes; NULL for NULL.
 */
TR_API const void *tr_broadcast_value_data(const tr_broadcast_value *value);

/**
 * The size of a value in bytes.
 *
 * Context:   any thread.
 * Returns:   the size; 0 for NULL.
 */
TR_API size_t tr_broadcast_value_size(const tr_broadcast_value *value);

/**
 * Drop one reference to a value from tr_broadcast_recv_wait.
 *
 * Ownership: takes the reference (NULL is ignored); the value may outlive
 *            its channel.
 * Context:   any thread.
 */
TR_API void tr_broadcast_value_release(const tr_broadcast_value *value);

/** The message types an actor subscription delivers. */
typedef struct tr_broadcast_sub_types {
    /* Each value: the payload is the shared value, borrowed for the call. */
    uint32_t value_type;
    /* A lag: the payload is a uint64_t, the number of values missed. */
    uint32_t lagged_type;
    /* Once, after the last value, when every sender is gone; empty. */
    uint32_t closed_type;
} tr_broadcast_sub_types;

/**
 * Subscribe the calling actor: every value sent from now on reaches one of
 * its handlers as a message of `types->value_type`. The messages do not
 * travel in the mailbox: one notification per subscriber at most is
 * queued, and the actor reads the ring through its own cursor when it runs
 * it, in batches, so a slow actor lags (one `lagged_type` message with the
 * count) instead of growing memory. The subscription ends when the actor
 * stops, fails (a supervisor's restart in place included: the restarted
 * actor subscribes again in `init` if it wants to) or calls
 * tr_broadcast_unsubscribe.
 *
 * Ownership: borrows `types`; returns borrowed `*sub` (may be NULL), valid
 *            until the subscription ends.
 * Context:   a handler or `init` of the subscribing actor.
 * Returns:   TR_OK; TR_EINVAL for NULL `tx`, `ctx` or `types`, or a type
 *            the runtime reserves (>= TR_MSG_RESERVED); TR_ESTATE on a
 *            thread context; TR_ENOMEM.
 */
TR_API int tr_broadcast_subscribe_actor(tr_ctx *ctx, tr_broadcast_tx *tx,
                                        const tr_broadcast_sub_types *types,
                                        tr_broadcast_sub **sub);

/**
 * End the calling actor's subscription now; nothing more of it is
 * delivered, even what was already notified.
 *
 * Ownership: takes `sub`.
 * Context:   a handler of the actor that subscribed.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ESTATE on a thread context;
 *            TR_EALREADY if it is not a live subscription of this actor.
 */
TR_API int tr_broadcast_unsubscribe(tr_ctx *ctx, tr_broadcast_sub *sub);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_BROADCAST_H */
