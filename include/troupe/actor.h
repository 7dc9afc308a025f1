/*
 * Actors: behaviours, spawning, sending, stopping and failing.
 *
 * An actor owns its state, receives messages through its mailbox and runs
 * one message at a time on some worker; the same actor's callbacks never
 * run concurrently, though it may move between workers between messages.
 */
#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A message as a handler sees it; borrowed until the handler returns. */
typedef struct tr_msg {
    uint32_t type;    /* the sender's message type */
    uint32_t size;    /* payload bytes */
    const void *data; /* payload; suitably aligned for any scalar type */
    tr_addr from;     /* the sending actor; TR_ADDR_NONE from a thread */
} tr_msg;

/**
 * Runs when the actor starts, before any message. `arg` is the start
 * argument given to tr_spawn, borrowed for the call. Return TR_OK to start;
 * any other value (or a tr_fail call) makes tr_spawn fail with that code:
 * the actor never runs, its `stop` is not called and it is not reported as
 * a failure (the caller has the code).
 */
typedef int (*tr_init_fn)(tr_ctx *ctx, void *state, const void *arg);

/*
 * TR_IGNORE (troupe/error.h) is what `init` returns to decline to start
 * without failing: tr_spawn then returns TR_IGNORE, and a supervisor keeps
 * the child's spec with no actor (OTP's `ignore`). No failure can carry
 * its value: tr_fail refuses it.
 */

/**
 * Handles one message. Return TR_OK to go on; any other value makes the
 * actor fail with that code (TR_IGNORE, which only `init` may return,
 * makes it fail with TR_EINVAL).
 */
typedef int (*tr_handle_fn)(tr_ctx *ctx, void *state, const tr_msg *msg);

/** Runs once when the actor stops, for any reason; it cannot fail. */
typedef void (*tr_stop_fn)(tr_ctx *ctx, void *state, const tr_exit *exit);

/** One row of a dispatch table. */
typedef struct tr_handler {
    uint32_t type;
    tr_handle_fn fn;
} tr_handler;

/**
 * A table from message type to handler. A type with no row goes to
 * `otherwise`; with no `otherwise` it is counted as a dead letter and the
 * actor goes on.
 */
typedef struct tr_dispatch {
    const tr_handler *handlers;
    size_t len;
    tr_handle_fn otherwise;
} tr_dispatch;

/**
 * What an actor is. The runtime allocates `state_size` zeroed bytes with
 * the actor and passes them to every callback. Give either `handle` (every
 * message) or `dispatch` (by type); `init` and `stop` may be NULL. The
 * behaviour is borrowed for the actor's whole life: keep it static.
 */
typedef struct tr_behaviour {
    const char *name;
    size_t state_size;
    tr_init_fn init;
    tr_handle_fn handle;
    const tr_dispatch *dispatch;
    tr_stop_fn stop;
} tr_behaviour;

/** The largest mailbox bound (2^28 - 1 messages). */
#define TR_MAILBOX_CAP_MAX 0x0fffffffu

/** Per-spawn options; zero for every field means its default. */
typedef struct tr_spawn_opts {
    /* Bound on queued user messages; 0 means unbounded; at most
     * TR_MAILBOX_CAP_MAX. */
    uint32_t mailbox_cap;
} tr_spawn_opts;

/** Counters of one actor, readable from any thread. */
typedef struct tr_actor_stats {
    uint64_t messages_handled; /* user messages given to a handler */
    uint64_t mailbox_len;      /* user messages queued now */
    uint32_t mailbox_cap;      /* 0 when unbounded */
    bool overloaded; /* more than a batch (1,024 messages) queued, until a
                        run leaves under a quarter of that (backpressure) */
    bool muted;      /* held back until an actor it sent to catches up */
} tr_actor_stats;

/**
 * Create an actor, run its `init` on the calling thread, then let it
 * receive. Messages sent to it while `init` runs wait in its mailbox.
 *
 * Ownership: borrows `behaviour` for the actor's life (keep it static),
 *            `arg` for the `init` call, `opts` for the call (may be NULL).
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK and `*out` (which may be NULL); TR_EINVAL for a NULL
 *            context or behaviour, a behaviour with neither `handle` nor
 *            `dispatch`, a `dispatch` with rows counted but no `handlers`,
 *            or a mailbox bound over TR_MAILBOX_CAP_MAX;
 *            TR_ENOMEM; TR_ESHUTDOWN once shutdown has begun (a spawn
 *            already in `init` then still returns TR_OK, and its actor is
 *            stopped by the shutdown); TR_EFORKED in a fork child; or the
 *            non-zero value `init` returned.
 */
TR_API int tr_spawn(tr_ctx *ctx, const tr_behaviour *behaviour, const void *arg,
                    const tr_spawn_opts *opts, tr_addr *out);

/**
 * Send a copy of `size` bytes at `data` as a message of `type`.
 *
 * Order: messages from one sender (an actor, or one plain thread) to one
 * receiver are handled in the order they were sent. TR_OK means queued, not
 * handled: if the receiver stops first, the message becomes a dead letter.
 *
 * It never waits: a full bounded mailbox returns TR_EFULL, from any
 * context, and the caller still has its data (tr_send_wait waits for room
 * instead). While several senders race for the last places, one may be
 * refused a moment before a place frees up; the bound itself is never
 * exceeded.
 *
 * Ownership: borrows `data` (copied into the message).
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL context, NULL `data` with a
 *            non-zero size, or a size over UINT32_MAX; TR_ENOACTOR if `to`
 *            has stopped (a dead letter is counted); TR_EFULL if its
 *            bounded mailbox is full; TR_ECLOSED if `to` was closed
 *            (tr_actor_close); TR_EFOREIGN for another system's address;
 *            TR_EFORKED in a fork child; TR_ENOMEM; TR_ESHUTDOWN (plain
 *            thread, once shutdown has begun).
 */
TR_API TR_NODISCARD int tr_send(tr_ctx *ctx, tr_addr to, uint32_t type,
                                const void *data, size_t size);

/**
 * Like tr_send, but from a plain thread a full bounded mailbox is waited
 * on for room, up to `timeout` (on the system's clock; TR_FOREVER: no
 * limit; TR_NOWAIT: as tr_send).
 *
 * Ownership: borrows `data`.
 * Context:   a plain thread, never a worker of any system nor an actor's
 *            callbacks (they must not wait: TR_ESTATE, whatever the
 *            mailbox's state).
 * Returns:   as tr_send; TR_ETIMEDOUT if no room came in time (nothing
 *            was sent); TR_ESTATE as above; TR_ESHUTDOWN if shutdown began
 *            while it waited (nothing was sent). On a simulated system
 *            (troupe/sim.h) the wait takes steps: TR_ESTUCK when nothing
 *            can run and no timer is pending; TR_ESTATE from a thread
 *            other than its driving thread.
 */
TR_API TR_NODISCARD int tr_send_wait(tr_ctx *ctx, tr_addr to, uint32_t type,
                                     const void *data, size_t size,
                                     tr_timeout timeout);

/**
 * Allocate a payload buffer for tr_send_buf.
 *
 * Ownership: returns owned; hand it to tr_send_buf or free it with
 *            tr_buf_free.
 * Context:   any thread.
 * Returns:   the buffer (aligned for any scalar type); NULL when out of
 *            memory or when `size` exceeds UINT32_MAX.
 */
TR_API void *tr_buf_alloc(size_t size);

/**
 * Free a buffer from tr_buf_alloc that was not sent.
 *
 * Ownership: takes `buf` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_buf_free(void *buf);

/**
 * Send `buf` without copying: the message is the buffer. Never waits.
 *
 * Ownership: takes `buf` on TR_OK only; on any error the caller still owns
 *            it and may retry or tr_buf_free it.
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL context or buffer; TR_ENOACTOR;
 *            TR_EFULL; TR_ECLOSED if `to` was closed (tr_actor_close);
 *            TR_ESHUTDOWN (plain thread, once shutdown has begun).
 */
TR_API TR_NODISCARD int tr_send_buf(tr_ctx *ctx, tr_addr to, uint32_t type,
                                    void *buf);

/**
 * Stop the calling actor normally once the current callback returns; its
 * `stop` callback runs with TR_EXIT_NORMAL. Messages still queued are
 * counted as dead letters.
 *
 * Context:   a handler or `init` (init then makes tr_spawn return TR_OK
 *            with an actor that stops at once).
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ESTATE on a thread context.
 */
TR_API int tr_stop(tr_ctx *ctx);

/**
 * Ask actor `to` to stop: a control message, delivered ahead of its queued
 * user messages. Its `stop` callback runs with TR_EXIT_SHUTDOWN.
 *
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ENOACTOR if `to` has stopped;
 *            TR_EFOREIGN for another system's address; TR_EFORKED in a
 *            fork child; TR_ENOMEM; TR_ESHUTDOWN (plain thread, once
 *            shutdown has begun: shutdown stops it).
 */
TR_API int tr_actor_stop(tr_ctx *ctx, tr_addr to);

/**
 * Close actor `to`, drain it, then stop it: from now on its mailbox refuses
 * user messages (TR_ECLOSED); it handles every message queued before the
 * close, then stops as tr_actor_stop would have stopped it (`stop` runs
 * with TR_EXIT_SHUTDOWN and the reason "closed", which tells a waiter that
 * the queue was drained; an actor that traps exits gets the EXIT message
 * instead, and its mailbox stays closed). Closing twice is TR_OK and does
 * nothing more. A message whose sender read the mailbox open just before
 * the close may still land behind the marker: it is then a dead letter.
 * The mailbox stays closed across a supervisor's restart in place, and the
 * restarted instance stops at the marker.
 *
 * Typical use from a plain thread: tr_actor_close, then tr_actor_wait.
 *
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ENOACTOR if `to` has stopped;
 *            TR_EFOREIGN for another system's address; TR_EFORKED in a
 *            fork child; TR_ENOMEM.
 */
TR_API int tr_actor_close(tr_ctx *ctx, tr_addr to);

/**
 * Make the calling actor fail with `code` (negative, or any non-zero value
 * of the user's) once the current callback returns. `text` is copied (up to
 * 127 bytes) and reported with the failure. From `init`, the spawn fails
 * with `code` instead.
 *
 * Ownership: borrows `text` (may be NULL).
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for NULL, a zero code or TR_IGNORE (which
 *            is not a failure); TR_ESTATE on a thread context.
 */
TR_API int tr_fail(tr_ctx *ctx, int code, const char *text);

/**
 * Replace the calling actor's dispatch table from its next message on;
 * NULL goes back to the behaviour's own `handle` or `dispatch`.
 *
 * Ownership: borrows `table` for as long as it is installed (keep it
 *            static).
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for a NULL context, or a table with rows
 *            counted but no `handlers`; TR_ESTATE on a thread context.
 */
TR_API int tr_become(tr_ctx *ctx, const tr_dispatch *table);

/**
 * The calling actor's own address.
 *
 * Context:   the thread that holds `ctx`.
 * Returns:   the address; TR_ADDR_NONE on a thread context or NULL.
 */
TR_API tr_addr tr_self(const tr_ctx *ctx);

/**
 * Read one actor's counters.
 *
 * Ownership: writes `*out`.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL argument; TR_ENOACTOR if `who`
 *            has stopped; TR_EFOREIGN for another system's address;
 *            TR_ESHUTDOWN off the workers once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_actor_stats_get(tr_system *sys, tr_addr who, tr_actor_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTOR_H */
