/*
 * Actor subscriptions to broadcast and watch channels.
 *
 * A subscription never queues one message per value. It owns exactly one
 * control-lane notification (a tr_ctl_hook inside it, no allocation) and a
 * `pending` flag that is 1 while the notification is queued: a sender sets
 * it with one exchange and only the sender that moved it from 0 to 1 pushes.
 * When the actor runs the notification, the hook clears `pending` first and
 * then lets the channel read everything new through the subscriber's own
 * cursor (a batch at most, re-arming itself when more is left). Memory per
 * subscriber is therefore constant, however slow the actor is: a broadcast
 * subscriber that falls behind lags like any receiver, and a watch
 * subscriber sees coalesced changes.
 *
 * Lifetime. `refs` counts the subscription itself and the notification
 * while it is queued or running. The subscription reference goes when the
 * actor unsubscribes or ends (an exit hook: the actor's end detaches it
 * before its lanes are drained); a queued notification's reference goes
 * when it runs or is dropped (the actor stopped, or it landed in a later
 * incarnation of the slot). The channel is freed only after its
 * subscriptions (each holds a channel reference), so a notification that
 * runs late still reads valid memory, and nothing is left behind when a
 * system shuts down with live subscriptions: shutdown ends every actor.
 */
#include "channels/subscription.h"

#include <troupe/error.h>

static void
unref(tr_sub *s)
{
    /* acq_rel: the last holder sees every other holder's writes. */
    if (tr_fas_acqrel(&s->refs, 1) == 1) {
        s->ops->destroy(s);
    }
}

/* Queue the notification unless one is pending. */
static void
arm(tr_sub *s)
{
    /* seq_cst: the load and the exchange are ordered after the caller's
     * seq_cst publication, against the drain's clear-then-read. The load
     * spares the exchange's write when a notification is already queued,
     * the common case for a busy subscriber. */
    if (tr_load_seqcst(&s->pending) != 0 ||
        tr_xchg_seqcst(&s->pending, 1) != 0) {
        return;
    }
    /* Relaxed: the caller holds a reference (attached subscription). */
    tr_faa_relaxed(&s->refs, 1);
    if (tr__actor_push_ctl_to(s->sys, s->actor, &s->hook.env) != TR_OK) {
        /* The actor is gone; its exit hook detaches the subscription, and
         * `pending` stays set so that nobody pushes again. */
        unref(s);
    }
}

static bool
hook_run(tr_ctl_hook *h, tr_ctx *ctx, void *state, uint64_t *handled)
{
    tr_sub *s = tr_container_of(h, tr_sub, hook);
    tr_sub_drained d = TR_SUB_IDLE;

    /* seq_cst: see tr__sub_notify. From here a sender may queue the
     * notification again, even while this run goes on: the node was taken
     * off the lane before this call. */
    tr_store_seqcst(&s->pending, 0);
    if (!s->detached) {
        d = s->ops->drain(s, ctx, state, handled);
        if (d == TR_SUB_MORE) {
            /* The run sets it aside until its next run, after this run's
             * user messages: a fast channel cannot starve the mailbox. */
            arm(s);
        }
    }
    unref(s);
    return d == TR_SUB_ENDED;
}

static void
hook_drop(tr_ctl_hook *h)
{
    unref(tr_container_of(h, tr_sub, hook));
}

static void
end_with_actor(tr_exit_hook *h, tr_ctx *ctx)
{
    tr_sub *s = tr_container_of(h, tr_sub, exit);

    (void)ctx;
    s->detached = true;
    s->ops->detach(s);
    unref(s);
}

void
tr__sub_init(tr_sub *s, tr_ctx *ctx, const tr_sub_ops *ops)
{
    s->hook.env.kind = TR_CTL_HOOK;
    s->hook.env.type = 0;
    s->hook.env.size = 0;
    s->hook.env.from = 0;
    s->hook.run = hook_run;
    s->hook.drop = hook_drop;
    s->exit.fn = end_with_actor;
    s->ops = ops;
    s->sys = ctx->sys;
    s->actor = ctx->self;
    s->detached = false;
    tr_init_relaxed(&s->pending, 0);
    tr_init_relaxed(&s->refs, 1);
    tr__actor_on_exit(ctx, &s->exit);
}

void
tr__sub_notify(tr_sub *s)
{
    arm(s);
}

int
tr__sub_cancel(tr_sub *s, tr_ctx *ctx)
{
    /* Only pointers are compared until the hook is found in this actor's
     * list, so a second unsubscribe reads no freed memory. */
    if (!tr__actor_cancel_exit(ctx, &s->exit)) {
        return TR_EALREADY;
    }
    s->detached = true;
    s->ops->detach(s);
    unref(s);
    return TR_OK;
}
