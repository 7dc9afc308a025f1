/*
 * Monitors, links and names.
 *
 * A monitor watches an address: when its actor ends, the watcher gets one
 * TR_MSG_DOWN message. A link ties two actors: when one ends abnormally
 * (failed, killed or shut down), the other fails too, unless it traps
 * exits, in which case it gets a TR_MSG_EXIT message instead (for normal
 * ends too). A supervisor's restart keeps the address alive, so neither
 * fires on a restart in place: they fire when the address ends.
 *
 * Order (Erlang's guarantee between two actors): a DOWN, and the EXIT a
 * trapping actor receives, queue behind the messages their subject sent
 * to the receiver before it ended, so the last messages arrive before the
 * news of the end. They are never refused by a mailbox bound (but count
 * in its length while queued). A link exit that fails a non-trapping
 * actor acts on arrival, in the control lane, ahead of queued messages.
 * Both reach the handler for their type like any message.
 */
#ifndef TROUPE_MONITOR_H
#define TROUPE_MONITOR_H

#include <troupe/actor.h>
#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Message types at or above this are the runtime's; tr_send, tr_call and
 * tr_ask_wait refuse them with TR_EINVAL. */
#define TR_MSG_RESERVED 0xFFFFFF00u
/** A monitored actor ended; the payload is a tr_signal. */
#define TR_MSG_DOWN 0xFFFFFF01u
/** A linked actor ended, or someone asked a trapping actor to stop (then
 * the kind is TR_EXIT_SHUTDOWN and the code TR_ESHUTDOWN); the payload is
 * a tr_signal. */
#define TR_MSG_EXIT 0xFFFFFF02u

/** The payload of TR_MSG_DOWN and TR_MSG_EXIT. */
typedef struct tr_signal {
    tr_addr who;       /* the actor that ended (or asked to stop) */
    uint64_t ref;      /* the monitor's reference (DOWN); 0 for EXIT */
    tr_exit_kind kind; /* TR_EXIT_NOACTOR when it was gone already */
    int code;          /* the failure code, else TR_OK */
    char text[128];    /* the reason, as tr_exit.text */
} tr_signal;

/**
 * Watch `target`: when it ends, the caller gets one TR_MSG_DOWN carrying
 * `*ref` and the reason. If it has already ended, the DOWN comes at once
 * with TR_EXIT_NOACTOR. Monitoring twice gives two references and two
 * DOWNs.
 *
 * The DOWN's memory is set aside now, so it is never lost for want of
 * memory when the target ends.
 *
 * The monitor ends with the watcher, as OTP's with its process: when the
 * caller ends, or is restarted in place by its supervisor, the target
 * forgets the monitor and sends no DOWN for it; a restarted instance never
 * gets a DOWN of its predecessor's monitors, even one queued already.
 *
 * Context:   a handler or `init` (the watcher is the calling actor).
 * Returns:   TR_OK and `*ref`; TR_EINVAL for NULL; TR_ESTATE on a thread
 *            context; TR_ENOMEM (no monitor was made, no DOWN will come).
 */
TR_API int tr_monitor(tr_ctx *ctx, tr_addr target, uint64_t *ref);

/**
 * Stop watching. After TR_OK no DOWN for `ref` will be sent.
 *
 * Context:   the actor that made the monitor.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ENOTFOUND when `ref` names no
 *            monitor of the caller's (its DOWN may be queued already).
 */
TR_API int tr_demonitor(tr_ctx *ctx, uint64_t ref);

/**
 * Link the calling actor and `other`, both ways. Linking twice is one link.
 * If `other` has already ended, the caller gets its exit at once, as
 * TR_EXIT_NOACTOR (a failure unless it traps exits).
 *
 * Both exits' memory is set aside now, so neither is lost for want of
 * memory when an end comes.
 *
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for NULL or a link to itself; TR_ESTATE on a
 *            thread context; TR_ENOMEM (no link was made).
 */
TR_API int tr_link(tr_ctx *ctx, tr_addr other);

/**
 * Remove the link between the calling actor and `other`, both ways.
 *
 * Returns:   TR_OK (also when there was none); TR_EINVAL; TR_ESTATE.
 */
TR_API int tr_unlink(tr_ctx *ctx, tr_addr other);

/**
 * Trap exits: from now on a linked actor's end, and any request to stop
 * this actor (tr_actor_stop, shutdown, its supervisor), arrive as
 * TR_MSG_EXIT messages instead of ending it. A supervisor's kill still
 * ends it. Until the next restart.
 *
 * Returns:   TR_OK; TR_EINVAL; TR_ESTATE on a thread context; TR_ENOMEM.
 */
TR_API int tr_trap_exits(tr_ctx *ctx, bool on);

/**
 * Register `who` under `name` (copied, 1 to 63 bytes). The name is released
 * when the actor ends; a restart in place keeps it, and registering an
 * actor again under its own name is a no-op (so `init` may register its
 * actor at every start).
 *
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for NULL or a bad name; TR_EEXIST when the
 *            name is another actor's; TR_EALREADY when `who` has another
 *            name already; TR_ENOACTOR; TR_ENOMEM; TR_ESHUTDOWN on a
 *            plain thread once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_register(tr_ctx *ctx, const char *name, tr_addr who);

/**
 * Release `name`.
 *
 * Returns:   TR_OK; TR_EINVAL; TR_ENOTFOUND when nobody has it;
 *            TR_ESHUTDOWN on a plain thread once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_unregister(tr_ctx *ctx, const char *name);

/**
 * Look `name` up. A name goes with its actor's end: once the actor has
 * ended (a send to it fails with TR_ENOACTOR), its name is not found.
 *
 * Context:   any thread.
 * Returns:   TR_OK and `*out`; TR_EINVAL; TR_ENOTFOUND; TR_ESHUTDOWN
 *            off the workers once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_whereis(tr_system *sys, const char *name, tr_addr *out);

/**
 * Wait, on a plain thread, until actor `who` ends (not a restart in place:
 * the end of the address), and learn why: `*out` gets the reason as a
 * DOWN would carry it (its `ref` is 0). Together with tr_actor_close this
 * lets a program hand an actor its work and wait for it to finish before
 * shutting down. Times out on the real (monotonic) clock.
 *
 * Ownership: writes `*out` (may be NULL) on TR_OK only.
 * Context:   a plain thread, never a worker.
 * Returns:   TR_OK once it has ended; TR_ENOACTOR if it had already ended
 *            when the call began (its reason is gone); TR_ETIMEDOUT after
 *            `timeout` (TR_NOWAIT: it is still running now; TR_FOREVER
 *            waits without limit); TR_EINVAL for a NULL
 *            context; TR_ESTATE on a worker or an actor's context;
 *            TR_ESHUTDOWN if shutdown had begun; TR_EFOREIGN; TR_EFORKED;
 *            TR_ENOMEM. On a simulated system (troupe/sim.h) the wait takes
 *            steps on the virtual clock: TR_ESTUCK when nothing can run
 *            and no timer is pending; TR_ESTATE from a thread other than
 *            its driving thread.
 */
TR_API int tr_actor_wait(tr_ctx *ctx, tr_addr who, tr_timeout timeout,
                         tr_signal *out);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_MONITOR_H */
