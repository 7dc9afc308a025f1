/*
 * Watch channels, following tokio's sync::watch: one current value with a
 * version, many senders, many receivers. Receivers learn that the value
 * changed, not each change: a receiver that looks after three sends sees
 * the third value once. Reading the value (tr_watch_borrow) copies one
 * consistent version and never blocks a writer: writers never wait for
 * readers, and a reader that overlaps a write simply reads again.
 *
 * The value given at create counts as seen by the first receiver, and a
 * new receiver has seen the value current when it subscribed. When the
 * last sender is gone, a change not yet seen is still reported once, then
 * tr_watch_changed_wait fails with TR_ECLOSED; tr_watch_borrow keeps
 * returning the last value.
 *
 * Receivers are plain threads (tr_watch_changed_wait) or actors
 * (tr_watch_subscribe_actor): an actor gets at most one pending
 * notification however many changes happen, and the message it gets
 * carries the newest value.
 */
#ifndef TROUPE_WATCH_H
#define TROUPE_WATCH_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A sending handle; the channel closes when the last one is destroyed. */
typedef struct tr_watch_tx tr_watch_tx;
/** A thread receiver: the value and the last version it has seen. */
typedef struct tr_watch_rx tr_watch_rx;
/** An actor's subscription. */
typedef struct tr_watch_sub tr_watch_sub;

/**
 * Change the value in place: called with the current value under the
 * senders' lock; return true if it changed (receivers are told and the
 * version moves), false if not.
 */
typedef bool (*tr_watch_modify_fn)(void *value, void *arg);

/**
 * Create a channel holding a value of `size` bytes, starting as a copy of
 * `initial` (version 0), with one sender and one receiver.
 *
 * Ownership: borrows `initial`; returns owned `*tx` and `*rx`, released
 *            with tr_watch_tx_destroy and tr_watch_rx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL out-parameters, a zero size or one
 *            over UINT32_MAX, or a NULL `initial`; TR_ENOMEM.
 */
TR_API int tr_watch_create(size_t size, const void *initial, tr_watch_tx **tx,
                           tr_watch_rx **rx);

/**
 * Another sending handle on the same channel.
 *
 * Ownership: returns owned `*out`; release with tr_watch_tx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments.
 */
TR_API int tr_watch_tx_clone(tr_watch_tx *tx, tr_watch_tx **out);

/**
 * Release a sending handle; releasing the last one closes the channel and
 * wakes every receiver.
 *
 * Ownership: takes `tx` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_watch_tx_destroy(tr_watch_tx *tx);

/**
 * Replace the value with a copy of `value` (`size` bytes, as at create),
 * bump the version and tell every receiver.
 *
 * Ownership: borrows `value`.
 * Context:   any thread; senders are serialised by a short lock.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ECLOSED when there is
 *            no receiver (the value is not stored, as in tokio).
 */
TR_API TR_NODISCARD int tr_watch_send(tr_watch_tx *tx, const void *value);

/**
 * Change the value in place with exclusive access among senders: `fn`
 * gets the current value and says whether it changed. Works with or
 * without receivers. Readers are never blocked by it: they keep reading
 * the previous version until the change is published. A change that `fn`
 * reports as none (it returns false) is not published: no receiver is
 * told, and readers see it only with the next change that is (tokio's
 * send_if_modified shows it to a later borrow at once).
 *
 * Ownership: borrows `arg` for the call; `fn` must not keep the value
 *            pointer, and must not call back into this channel's senders.
 * Context:   any thread.
 * Returns:   TR_OK (whether or not `fn` changed it); TR_EINVAL for NULL
 *            `tx` or `fn`.
 */
TR_API int tr_watch_send_modify(tr_watch_tx *tx, tr_watch_modify_fn fn,
                                void *arg);

/**
 * How many receivers (threads and actor subscriptions) the channel has now
 * (a snapshot).
 *
 * Context:   any thread.
 * Returns:   the count; 0 for NULL.
 */
TR_API size_t tr_watch_receiver_count(tr_watch_tx *tx);

/**
 * A new thread receiver that has seen the current value.
 *
 * Ownership: returns owned `*rx`; release with tr_watch_rx_destroy.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ENOMEM.
 */
TR_API int tr_watch_subscribe(tr_watch_tx *tx, tr_watch_rx **rx);

/**
 * A new thread receiver that has seen what `rx` has seen (tokio's
 * Receiver::clone): a change `rx` has not seen yet is unseen by both.
 * Works after the channel closed (the clone then reports it closed).
 *
 * Ownership: returns owned `*out`; release with tr_watch_rx_destroy.
 * Context:   the thread using `rx` (one thread at a time per receiver).
 * Returns:   TR_OK; TR_EINVAL for NULL arguments; TR_ENOMEM.
 */
TR_API int tr_watch_rx_clone(tr_watch_rx *rx, tr_watch_rx **out);

/**
 * Copy the current value (one consistent version, never torn) without
 * marking it seen.
 *
 * Ownership: writes `size` bytes to `out` and the version to `*version`
 *            (may be NULL).
 * Context:   any thread; the copy may repeat while a sender publishes.
 * Returns:   TR_OK (also after close: the last value); TR_EINVAL for NULL
 *            `rx` or `out`.
 */
TR_API int tr_watch_borrow(tr_watch_rx *rx, void *out, uint64_t *version);

/**
 * Like tr_watch_borrow, and mark the version read as seen.
 *
 * Context:   one thread at a time per receiver.
 * Returns:   as tr_watch_borrow.
 */
TR_API int tr_watch_borrow_and_update(tr_watch_rx *rx, void *out,
                                      uint64_t *version);

/**
 * Wait up to `timeout` (TR_NOWAIT: do not wait; TR_FOREVER: no limit) for a
 * version this receiver has not seen, and mark it seen (read it with
 * tr_watch_borrow).
 *
 * Context:   one thread at a time per receiver; never a worker when it
 *            would wait.
 * Returns:   TR_OK; TR_ETIMEDOUT; TR_ECLOSED when every sender is gone
 *            and the newest version was seen; TR_ESTATE if a worker asks
 *            to wait (or a `stop` callback that shutdown's last pass
 *            runs); TR_EINVAL for NULL; TR_ESTUCK on a simulation's
 *            driving thread when nothing can ever end the wait (there it
 *            takes steps: troupe/sim.h).
 */
TR_API int tr_watch_changed_wait(tr_watch_rx *rx, tr_timeout timeout);

/**
 * Whether a version this receiver has not seen is there, without marking
 * it seen (tokio's has_changed). Once every sender is gone the answer is
 * TR_ECLOSED, even with a change unseen: read that with tr_watch_borrow.
 *
 * Ownership: writes `*changed`.
 * Context:   one thread at a time per receiver.
 * Returns:   TR_OK; TR_ECLOSED when every sender is gone; TR_EINVAL for
 *            NULL arguments.
 */
TR_API int tr_watch_has_changed(tr_watch_rx *rx, bool *changed);

/**
 * Release a thread receiver.
 *
 * Ownership: takes `rx` (NULL is ignored).
 * Context:   any thread, once its other calls have returned.
 */
TR_API void tr_watch_rx_destroy(tr_watch_rx *rx);

/**
 * Subscribe the calling actor: after each change (coalesced: at most one
 * notification is pending, however many changes happen) a message of
 * `changed_type` arrives whose payload is the newest value (`size` bytes,
 * borrowed for the call); once the channel is closed and the newest value
 * delivered, one empty message of `closed_type`. The value current at
 * subscription counts as seen. The subscription ends when the actor stops,
 * fails or calls tr_watch_unsubscribe.
 *
 * Ownership: returns borrowed `*sub` (may be NULL), valid until the
 *            subscription ends.
 * Context:   a handler or `init` of the subscribing actor.
 * Returns:   TR_OK; TR_EINVAL for NULL `tx` or `ctx`, or a type the runtime
 *            reserves (>= TR_MSG_RESERVED); TR_ESTATE on a thread
 *            context; TR_ENOMEM.
 */
TR_API int tr_watch_subscribe_actor(tr_ctx *ctx, tr_watch_tx *tx,
                                    uint32_t changed_type, uint32_t closed_type,
                                    tr_watch_sub **sub);

/**
 * End the calling actor's subscription now; nothing more of it is
 * delivered.
 *
 * Ownership: takes `sub`.
 * Context:   a handler of the actor that subscribed.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ESTATE on a thread context;
 *            TR_EALREADY if it is not a live subscription of this actor.
 */
TR_API int tr_watch_unsubscribe(tr_ctx *ctx, tr_watch_sub *sub);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_WATCH_H */
