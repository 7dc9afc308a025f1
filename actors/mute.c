/*
 * Backpressure between actors: an actor that sends to an actor far behind
 * is muted until the receiver catches up (the rule Pony follows).
 *
 * Why. Sends never block and mailboxes are unbounded by default, so a
 * consumer slower than its producers only falls further behind: its
 * mailbox grows without limit, and on more than one core the producers,
 * which have a core each, outrun it by as much as the scheduler lets them.
 * Muting takes the producers off the cores until the consumer has caught
 * up, so the backlog stays near one batch per producer.
 *
 * The rule.
 *  - An actor is OVERLOADED from when its runner sees more than TR_BATCH
 *    messages queued (it looks every 16 messages of a run, and when the
 *    batch cuts a run short) until a run ends with fewer than a quarter
 *    of that. An actor is under pressure when it is overloaded or muted.
 *  - An actor whose handler sent a user message to an actor under
 *    pressure (other than itself) is muted when its run ends, if that run
 *    was not overloaded, it has more messages queued, and it is not a
 *    supervisor. Muted, it keeps its run-right but sits in no run queue:
 *    messages still reach its mailbox, none of them runs it. Muting on a
 *    muted receiver carries the pressure up a pipeline: A -> B -> C with C
 *    slow mutes B, then A, instead of letting B's mailbox grow.
 *  - Every run that ends with fewer than a quarter batch queued, the
 *    incarnation's end, and a supervised actor's end into its
 *    supervisor's hands (a restart in place keeps the address, so it is
 *    no incarnation's end) clear OVERLOADED and schedule the actors muted
 *    on it (tr__unmute_senders): they get one chance each run of the
 *    receiver, and none waits out a restart.
 *  - A control message (stop, kill, exit, reply, timer, channel hook)
 *    pushed to a muted actor unmutes it at once: muting never holds back
 *    control, so a muted actor can always be stopped, shut down, or
 *    answered.
 *  - Plain threads are never muted (tr_send never waits), nor are sends
 *    from `init` or `stop` outside a run.
 *
 * No deadlock. Take the actors that stay muted for ever, and among them
 * the one, M, whose mute was confirmed last (at t). Whoever is muted on M
 * confirmed earlier, seeing M under pressure then, after recording itself
 * on M's list. M ran after that (it mutes only at the end of a run), and
 * that run was not overloaded (an overloaded run never mutes), so at its
 * end M scheduled every actor on its list: nobody stays muted on M. So no
 * actor waits for ever on a muted one, and the ones muted on an overloaded
 * actor wait for a runnable actor: an overloaded one ended its run with
 * messages queued and was put back in the run queue, and its next runs
 * either bring the backlog under a quarter batch (unmuting) or keep it
 * overloaded because more keeps coming from senders that are not muted.
 * Muting cannot slow the senders it exempts: a plain thread or a
 * supervisor flooding an actor still makes its mailbox grow (bound the
 * mailbox for those: tr_send_wait).
 *
 * The handshake. A sender records itself on the receiver's list (under
 * the receiver's lock, setting the receiver's MUTERS bit) and sets its
 * own MUTED bit, then re-checks that the receiver is under pressure and
 * that no control message came; a receiver clears OVERLOADED before it
 * takes the list. All four are sequentially consistent, so a receiver
 * that caught up either finds the sender on its list or the sender sees
 * the flag gone. Whoever clears a sender's MUTED bit (one atomic
 * operation, so exactly one of them) schedules it: the receiver, a control
 * pusher, or the sender itself when its re-check fails. A stale entry
 * (its actor unmuted already, or muted again on another receiver since)
 * can at most schedule an actor early.
 *
 * The flags live in the receiver's `cap` word, which every send loads
 * already; the list in its extension record, since muting is rare.
 */
#include "actors/actor.h"
#include "actors/ext.h"

#include "common/tr_alloc.h"

/* Clear `a`'s MUTED bit; true when this call cleared it (the caller then
 * schedules `a`). */
static bool
take_mute(tr_actor *a)
{
    /* seq_cst: pairs with the muting runner's re-check and with control
     * pushers (the lane handshake of actor.c, one step further). */
    uint32_t cap = tr_load_seqcst(&a->cap);

    while (cap & TR_CAP_MUTED) {
        if (tr_cas_seqcst(&a->cap, &cap, cap & ~TR_CAP_MUTED)) {
            return true;
        }
    }
    return false;
}

/* Record `self` on the receiver's list; false when the receiver has
 * ended or no memory was found. */
static bool
record(tr_actor *r, uint64_t receiver, uint64_t self, tr_actor *me)
{
    tr_ext *x = tr__ext_get(r);
    bool ok = false;

    if (x == NULL) {
        return false;
    }
    pthread_mutex_lock(&x->lock);
    if (tr__ext_own_lists(r, x, tr__id_gen(receiver)) &&
        (x->nmuted < x->capmuted ||
         tr__grow((void **)&x->muted, &x->capmuted, sizeof(uint64_t), 8))) {
        x->muted[x->nmuted++] = self;
        /* Under the lock, so that the receiver's flush that takes the
         * list clears what we set. */
        tr_for_seqcst(&r->cap, TR_CAP_MUTERS);
        tr_for_seqcst(&me->cap, TR_CAP_MUTED);
        ok = true;
    }
    pthread_mutex_unlock(&x->lock);
    return ok;
}

tr_atomic(tr_mute_pause_fn) tr__mute_pause;

bool
tr__mute(tr_ctx *ctx, uint64_t receiver)
{
    tr_actor *me = ctx->actor;
    tr_actor *r = tr__table_slot(ctx->sys->table, receiver);
    tr_ext *x = tr_load_acq(&me->ext);

    /* Relaxed: set by a test before the actors it watches run. */
    tr_mute_pause_fn pause = tr_load_relaxed(&tr__mute_pause);

    if (r == NULL || r == me || (x != NULL && x->supervisor)) {
        return false;
    }
    if (tr_unlikely(pause != NULL)) {
        pause(ctx->self, false);
    }
    if (!record(r, receiver, ctx->self, me)) {
        return false;
    }
    if (tr_unlikely(pause != NULL)) {
        pause(ctx->self, true);
    }
    /* The re-check (see the top comment). From here on the actor may be
     * scheduled by whoever cleared MUTED, and run elsewhere: we touch
     * only its atomics. */
    if ((tr_load_seqcst(&r->cap) & TR_CAP_PRESSURE) != 0 &&
        tr_load_seqcst(&r->gen) == tr__id_gen(receiver) &&
        tr__lifo_is_empty(&me->ctl)) {
        return true;
    }
    /* Undo, unless someone cleared the bit first: they schedule us. */
    return !take_mute(me);
}

void
tr__unmute_list(tr_system *sys, uint64_t *ids, uint32_t n, uint32_t cap)
{
    for (uint32_t i = 0; i < n; i++) {
        tr_actor *a = tr__table_slot(sys->table, ids[i]);
        if (a != NULL && take_mute(a)) {
            tr__actor_schedule(sys, a);
        }
    }
    tr__free(ids, sizeof(uint64_t) * cap);
}

void
tr__unmute_senders(tr_system *sys, tr_actor *a)
{
    tr_ext *x;
    uint64_t *ids;
    uint32_t n, cap;

    /* seq_cst: a sender recording itself after our lock below re-checks
     * the flag after that, and sees it clear. */
    tr_fand_seqcst(&a->cap, ~TR_CAP_OVERLOADED);
    if ((x = tr_load_acq(&a->ext)) == NULL) {
        return;
    }
    pthread_mutex_lock(&x->lock);
    tr_fand_seqcst(&a->cap, ~TR_CAP_MUTERS);
    ids = x->muted;
    n = x->nmuted;
    cap = x->capmuted;
    x->muted = NULL;
    x->nmuted = x->capmuted = 0;
    pthread_mutex_unlock(&x->lock);
    /* Scheduling may wake a worker: not under the lock. */
    tr__unmute_list(sys, ids, n, cap);
}

void
tr__unmute_for_control(tr_system *sys, tr_actor *a)
{
    if (take_mute(a)) {
        tr__actor_schedule(sys, a);
    }
}
