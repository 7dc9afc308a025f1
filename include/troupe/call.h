/*
 * Request/reply between actors. A call sends a request that carries a
 * reply handle; the reply comes back to the caller as a control message and
 * runs a continuation in the caller's context. No worker ever waits.
 *
 * Every call that tr_call accepted ends exactly once: its continuation runs
 * with the reply (TR_OK), TR_EFAILED (the callee failed on this request:
 * the result's text says why), TR_ECLOSED (the callee stopped, or dropped
 * the request unanswered, or failed on an earlier message while this one
 * was queued), or TR_ETIMEDOUT. A call tr_call refused never
 * runs its continuation.
 */
#ifndef TROUPE_CALL_H
#define TROUPE_CALL_H

#include <troupe/actor.h>
#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A reply handle taken out of a request (deferred or forwarded reply). */
typedef struct tr_reply_to tr_reply_to;

/** How a call ended, as its continuation sees it (borrowed for the call). */
typedef struct tr_call_result {
    int status;          /* TR_OK; TR_EFAILED: the callee failed on the
                            request (`text` says why); TR_ECLOSED: it
                            stopped or dropped the request unanswered;
                            TR_ETIMEDOUT; TR_ENOMEM (sent, but no memory to
                            arm its timeout) */
    const tr_msg *reply; /* the reply when TR_OK; NULL otherwise */
    tr_addr to;          /* the callee */
    uint32_t type;       /* the request's message type */
    tr_timeout timeout;  /* the call's timeout; TR_FOREVER for none */
    const char *text;    /* on failure, one line naming callee, type,
                            timeout and outcome; "replied" on TR_OK */
} tr_call_result;

/**
 * A call's continuation: runs once, in the caller's context, with the
 * caller's state. Return TR_OK to go on; anything else fails the caller.
 */
typedef int (*tr_reply_fn)(tr_ctx *ctx, void *state,
                           const tr_call_result *result, void *arg);

/**
 * Call `to` with a request of `type` carrying a copy of `data`; when it
 * ends, `on_reply(ctx, state, result, arg)` runs in this actor. With a
 * positive `timeout` (ms) it ends with TR_ETIMEDOUT if no reply came in time
 * (a reply after that is dropped and freed); the time counts on the
 * system's clock from when tr_call returns. A call still pending when the
 * system shuts down ends with TR_ECLOSED, wherever its reply handle is
 * (its continuation runs only if the caller is still running on a worker
 * then).
 *
 * Ownership: borrows `data`; `arg` is passed back untouched.
 * Context:   a handler (or `init`) of the calling actor.
 * Returns:   TR_OK (the continuation will run once); TR_EINVAL for NULL
 *            arguments, a size over UINT32_MAX, or TR_NOWAIT (a call waits
 *            for its reply: TR_FOREVER for no timeout); TR_ESTATE on a thread
 *            context (use tr_ask_wait), or when calling oneself (refused at
 *            once: a self-call is a design error, not a request);
 *            TR_ENOACTOR if
 *            `to` has stopped; TR_ECLOSED if it was closed
 *            (tr_actor_close); TR_EFULL if its mailbox is bounded and full;
 *            TR_ENOMEM; TR_ESHUTDOWN from a `stop` callback that shutdown
 *            runs after the workers have ended (the continuation could
 *            never run). On any error `on_reply` never runs.
 */
TR_API TR_NODISCARD int tr_call(tr_ctx *ctx, tr_addr to, uint32_t type,
                                const void *data, size_t size,
                                tr_timeout timeout, tr_reply_fn on_reply,
                                void *arg);

/** Where tr_ask_wait copies the reply: `cap` bytes at `data`; `len` gets
 * the reply's size; `why`, when the call did not end with a reply, the
 * one-line account tr_call_result.text gives (for TR_EFAILED, the callee's
 * failure). */
typedef struct tr_reply_buf {
    void *data;
    size_t cap;
    size_t len;
    char why[256];
} tr_reply_buf;

/**
 * Call from a plain thread and wait for the reply, copying it into
 * `reply`. A positive `timeout` (ms) bounds the whole call on the system's
 * clock: a wait for room in the callee's full bounded mailbox, then the
 * wait for the reply. TR_FOREVER waits without limit (the call still ends
 * if the callee stops or drops it, and at shutdown).
 *
 * Ownership: borrows `data` and `reply->data`; writes `reply->len` (the
 *            reply's size).
 * Context:   a plain thread, never a worker of any system nor an actor's
 *            callbacks (they must not wait: TR_ESTATE).
 * Returns:   TR_OK; TR_ETIMEDOUT (the request may not have been sent);
 *            TR_ENOMEM: before anything was sent, or, when the request was
 *            sent, for want of memory to arm its timeout (then the call is
 *            over at once: a reply is dropped);
 *            TR_ECLOSED (the callee stopped, failed or dropped the request,
 *            or the system shut down meanwhile); TR_ENOACTOR; TR_ESHUTDOWN
 *            (shutdown had begun, or began while it waited for room:
 *            nothing was sent); TR_ESTATE as above; TR_EINVAL for NULL
 *            arguments, TR_NOWAIT, or when the reply is larger than
 *            `reply->cap` (`reply->len` says its size; the reply is
 *            dropped). On a simulated system (troupe/sim.h) the wait takes
 *            steps on the virtual clock: TR_ESTUCK when nothing can run
 *            and no timer is pending (no answer can ever come); TR_ESTATE
 *            from a thread other than its driving thread.
 */
TR_API int tr_ask_wait(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                       size_t size, tr_reply_buf *reply, tr_timeout timeout);

/**
 * Reply to the request being handled.
 *
 * Ownership: borrows `data` (copied).
 * Context:   the handler that received `request`.
 * Returns:   TR_OK; TR_EINVAL if `request` is not a call or an argument is
 *            bad; TR_EALREADY if it was already answered or its handle
 *            taken; TR_ECLOSED if the call had already ended (timed out):
 *            the reply is dropped; TR_ENOMEM (the request stays unanswered,
 *            so the handler may retry).
 */
TR_API TR_NODISCARD int tr_reply(tr_ctx *ctx, const tr_msg *request,
                                 const void *data, size_t size);

/**
 * Take the reply handle out of a request, to answer later or from another
 * actor. Without this, a request left unanswered when its handler returns
 * ends the call with TR_ECLOSED. The message stays `const`: what changes
 * is the call, which the handler's context holds.
 *
 * Ownership: returns owned; consume it with tr_reply_send or
 *            tr_reply_drop (a handle never consumed leaves its caller
 *            waiting until the call's timeout or the system's shutdown,
 *            and is never freed). It may outlive the system: consumed
 *            after shutdown it touches nothing of it.
 * Context:   the handler that received `request`.
 * Returns:   the handle; NULL if `request` is not a call, or was already
 *            answered or taken.
 */
TR_API tr_reply_to *tr_reply_take(tr_ctx *ctx, const tr_msg *request);

/**
 * Whether `msg`, the message the calling handler is handling, is a request
 * (made with tr_call or tr_ask_wait, or forwarded) that it may answer.
 * The message itself says nothing: it is `const`, and answering or taking
 * a request changes the call, kept by the handler's context.
 *
 * Context:   the handler that received `msg`.
 * Returns:   true for a request (answered or taken already or not); false
 *            for any other message, outside its handler, and for NULL.
 */
TR_API bool tr_msg_is_call(const tr_ctx *ctx, const tr_msg *msg);

/**
 * Answer through a taken handle.
 *
 * Ownership: takes `handle` (always); borrows `data` (copied).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL handle, or NULL `data` with a
 *            non-zero size; TR_ECLOSED if the call had already ended (timed
 *            out, or ended by the system's shutdown), or, off the caller's
 *            workers, once that shutdown has begun (it ends the call with
 *            TR_ECLOSED); TR_ENOMEM. On every error but TR_ECLOSED the call
 *            ends with TR_ECLOSED.
 */
TR_API int tr_reply_send(tr_reply_to *handle, const void *data, size_t size);

/**
 * Hand a taken handle to actor `to` inside a new request of `type` carrying
 * a copy of `data`: `to` receives it as a call and answers it with
 * tr_reply (or forwards it again). Because the runtime knows the request
 * carries the handle, the call ends with TR_ECLOSED if `to` drops it, stops
 * or fails; a handle sent inside an ordinary message's payload would
 * instead be lost if that message became a dead letter.
 *
 * Ownership: takes `handle` on TR_OK only; borrows `data`.
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for NULL arguments or a size over
 *            UINT32_MAX; TR_ENOACTOR; TR_EFULL; TR_ECLOSED if `to` was
 *            closed (tr_actor_close); TR_ENOMEM; TR_ESHUTDOWN (plain
 *            thread, once shutdown has begun).
 */
TR_API TR_NODISCARD int tr_forward(tr_ctx *ctx, tr_reply_to *handle, tr_addr to,
                                   uint32_t type, const void *data,
                                   size_t size);

/**
 * Drop a taken handle unanswered: the call ends with TR_ECLOSED.
 *
 * Ownership: takes `handle` (NULL is ignored).
 * Context:   any thread.
 */
TR_API void tr_reply_drop(tr_reply_to *handle);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_CALL_H */
