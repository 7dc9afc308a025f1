/*
 * The engine of a supervisor: restarts, their intensity and backoff, and
 * the stop sequences. Everything here runs on the supervisor's own thread,
 * in its handler (reports, timers, requests) or in its exit hook.
 *
 * Restarts. With one_for_one and simple_one_for_one every child restarts
 * on its own: a child whose `init` fails is retried later by a timer
 * message of its own (at once, or after its backoff delay), named by its
 * address and `serial`, and nothing another child does runs it sooner.
 * With one_for_all and rest_for_one a child's end starts a round: the
 * siblings it takes with it are stopped (a sequence, below), then all are
 * restarted in start order, none released until all have started. If one
 * fails, one_for_all stops those restarted before it again and retries the
 * whole round; rest_for_one releases them (they keep running) and retries
 * from the child that failed. A round's retry waits on that child (its
 * `round_owner`) and not before its backoff delay; when the owner is
 * terminated by hand, the round is abandoned and the children waiting in
 * it end. Every restart counts towards the intensity (a ring of the last
 * max_restarts restart times) unless the child has backoff, and a child
 * terminated by hand is never restarted by a round or a retry.
 *
 * Sequences. Stopping children one by one in reverse start order (a
 * round, a give-up, a shutdown) is a small state machine: a cursor walks
 * back from the last child, asking each one to stop and waiting for its
 * report (or its shutdown deadline: then kill) before going on. A
 * terminate_child is a sequence of one child. Nothing blocks: reports,
 * deadlines and requests are all messages, so a supervisor keeps
 * answering while a child loops in failing restarts. A child that has
 * stopped and will not be restarted ends at its report: its DOWN does not
 * wait for the end of the sequence. Requests that change the children
 * wait until the sequence is over (admin.c); reads are answered at once.
 * The engine knows nothing of requests: the end of a sequence goes up
 * through the hook (sup.h: sup_hooks).
 *
 * Auto shutdown (OTP 24). Only decide() sees a child that ended by
 * itself and is not restarted, so only it can shut the supervisor down
 * for a significant child's end (`nsignificant`, kept by children.c,
 * tells all_significant when the last has ended). A child the supervisor
 * stops itself never gets there: terminate_child finishes it in ADMIN, a
 * round's bystanders are finished or restarted by the round, and ending
 * sequences finish every child. The shutdown is a TERMINATE sequence,
 * as when the supervisor is asked to stop.
 *
 * Kills. A worker is killed by its kill flag and a stop request: it ends
 * at its next chance without `stop`. A supervisor is killed by a MSG_KILL
 * request instead: it kills its own children the same way, all at once,
 * waits for their reports, ends them, and only then ends (kill mode). So
 * when a killed supervisor's report arrives, its whole subtree has ended:
 * nothing is orphaned, and a restart of it never meets the old subtree.
 *
 * The state table. Rows: the supervisor's mode; columns: a child's state
 * (sup.h). A cell says what each event does to a child in that state
 * under that mode; "-" marks a pair that cannot occur, and an event a cell
 * does not list cannot happen there or is void (a timer whose serial is
 * stale, or whose child has left the state it was set for, does nothing).
 *
 *   R  the child's report: it has ended, and its run-right is ours
 *   D  its deadline: its shutdown time is up, or a kill found no memory
 *   T  its retry: a failed restart, or its backoff delay, is due
 *   C  the sequence's cursor reaches it
 *
 *             DOWN   RUNNING           STOPPING            HELD
 *  IDLE       .      R decide          -                   T restart (1)
 *  ROUND      .      R (2)             R (3)               T after it (4)
 *                    C ask, if in it   D kill              C pass
 *  ADMIN      .      R (5)             R finish; end (6)   T (1), or (4)
 *                                      D kill
 *  TERMINATE, .      R finish; next    R finish; next      C finish
 *  GIVE_UP           C ask to stop     D kill              T void
 *  KILL       .      -                 R finish; next      -
 *                                      D kill again
 *
 *  .   A DOWN child has no actor: no event reaches it. Requests that
 *      change the children (admin.c) act in IDLE only, on any state.
 *  (1) one_for_one, simple_one_for_one: restart_one, whatever else goes
 *      on. one_for_all, rest_for_one: restart_round, once every child in
 *      the round is due.
 *  (2) It ended on its own. In the round (want_stop or want_restart) it
 *      waits, held, for the round's restart, except a temporary bystander
 *      (want_stop, not want_restart), which the round would have stopped
 *      and not restarted: it is finished at once and forgotten, as in (3),
 *      its end taken as the round's (OTP's shutdown of a child takes the
 *      exit that came first), so it shuts nothing down. Outside the round,
 *      it is marked undecided and decided when the sequence is over.
 *  (3) It was asked: it waits, held, for the round's restart; a temporary
 *      bystander (not to be restarted) is finished at once, and forgotten.
 *  (4) A round's retry that comes during a sequence (round_retry) runs
 *      when the sequence is over.
 *  (5) Only another child than the one being terminated: with
 *      one_for_one and simple_one_for_one it is decided at once (its
 *      siblings do not wait for it); otherwise it is marked undecided.
 *  (6) The child being terminated, and only it, stops in this mode: it is
 *      finished, forgotten if it must be, its request answered (hook:
 *      one_ended), and the supervisor is idle again.
 *
 * A child's transitions, and the only ones:
 *
 *   DOWN -> RUNNING           spawned (init, start_child, restart_child)
 *   RUNNING -> STOPPING       asked to stop (ask_stop), or killed
 *   RUNNING, STOPPING -> HELD its report; or (RUNNING) one_for_all undoing
 *                             a round it could not complete (stop_held)
 *   HELD -> RUNNING           restarted in place (reinit_child)
 *   HELD -> HELD              its restart failed: it waits for a retry
 *   HELD -> DOWN              ended for good (tr__sup_finish_child)
 *   RUNNING -> DOWN           only while init unwinds a failed start
 *
 * A stop is never taken back, and a running actor ends only through its
 * report, which hands the run-right back: so the state says who holds the
 * right (HELD: the supervisor; RUNNING, STOPPING: the child, or its report
 * on the way). Only a DOWN child's record is ever forgotten.
 *
 * The modes' transitions: IDLE -> ROUND (decide: a round begins), IDLE ->
 * ADMIN (tr__sup_stop_one), IDLE or ADMIN -> GIVE_UP (a restart one too
 * many), IDLE, ROUND or ADMIN -> TERMINATE (asked to stop; or, from IDLE
 * or ADMIN, decide: a significant child's end), any but KILL -> KILL
 * (killed), ROUND or ADMIN -> IDLE (the sequence ends). TERMINATE,
 * GIVE_UP and KILL never go back to IDLE: they end with the incarnation
 * (the first two may still turn into KILL).
 *
 * Invariants.
 *
 *  (I1) `nstopping` is the number of STOPPING children, `nundecided` the
 *       number marked undecided (children.c keeps both).
 *  (I2) Outside KILL at most one child is STOPPING: a sequence asks one
 *       child, then returns, and moves on only at that child's report; a
 *       sequence that begins while one is stopping (a terminate during a
 *       round) waits for it first. KILL asks them all at once.
 *  (I3) In IDLE, between messages, no child is STOPPING and none is
 *       undecided: each sequence ends with `nstopping` at 0, and the
 *       undecided are decided as soon as the supervisor is idle.
 *  (I4) The cursor only moves back, and always names the next child to
 *       visit (tr__sup_remove_child steps it back if that child goes).
 *  (I5) When an ending sequence ends, every child is DOWN. Each RUNNING
 *       child was marked want_stop when it began, and is asked when the
 *       cursor comes (KILL kills them all at once); in an ending mode a
 *       report finishes its child at once and the cursor finishes each
 *       held child it passes; and no child starts in an ending mode
 *       (retries are void, requests wait).
 *  (I6) A timer names its child by address and serial. The serial moves
 *       on whenever a pending timer must not act: at a report (its
 *       deadline is void), an ask to stop or a kill (a new deadline), a
 *       scheduled retry (the earlier retry is void).
 *
 * decide(c). Before: `c` is HELD with its end in `last`; the mode is IDLE,
 * or ADMIN under an independent strategy (a round never begins during
 * another sequence: a child that ends then is undecided until it is
 * over). After, exactly one of: `c` is DOWN (no restart; forgotten if
 * dynamic or temporary; if it was significant, the supervisor may be
 * shutting down); it runs again, or was ignored; it is held with a retry
 * timer; a round has begun, with `c` and the children it takes marked; or
 * the supervisor is giving up. The restart is counted before
 * `init` runs again, so a restart one too many gives up without running
 * it; a child with backoff is not counted, and its step starts over once
 * it has run for reset_ms.
 *
 * sequence_next. Before: a sequence is in progress (not IDLE; in ADMIN it
 * hands over to admin_next, a sequence of one). It asks at most one child
 * to stop and returns; every report in a sequence calls it again, and a
 * deadline turns a slow stop into a kill, whose report does: so the
 * sequence moves on as long as children end (TR_SHUTDOWN_INFINITY waits
 * as long as the child does, as in OTP).
 * The cursor moves before the child is asked, so that it names the next
 * child by the time that child's report calls back. It ends the sequence
 * only with the cursor past the first child and `nstopping` at 0 (I2).
 *
 * restart_round. Before: IDLE, so no child is STOPPING (I3); the round's
 * children are HELD with want_restart. Under one_for_all none of them is
 * released before all have started (in_pass): if one fails, those before
 * it are stopped again in place (stop_held) and go back to HELD, and no
 * one has seen them run, since their run-rights never left us.
 *
 * Why the nesting is safe. A call that may start a sequence (decide,
 * restart_one, restart_round, give_up, auto_shutdown, and sequence_ended,
 * whose round may give up) is either the last thing its caller does, or
 * its caller reads the mode again before going on (after_sequence; the
 * hook's handling of waiting requests). So work planned in one mode never runs
 * in the next, and an ending sequence's end (tr_stop, tr_fail) is never
 * followed by anything but returns.
 */
#include "supervisor/engine.h"

#include "common/tr_testbug.h"

#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

enum { DEFAULT_SHUTDOWN_MS = 5000 };

static bool
independent(const tr_sup *s)
{
    return s->strategy == TR_ONE_FOR_ONE ||
           s->strategy == TR_SIMPLE_ONE_FOR_ONE;
}

static int
shutdown_of(const child *c)
{
    if (c->spec.shutdown_ms != TR_SHUTDOWN_DEFAULT) {
        return c->spec.shutdown_ms;
    }
    return c->spec.kind == TR_SUPERVISOR ? TR_SHUTDOWN_INFINITY
                                         : DEFAULT_SHUTDOWN_MS;
}

static bool
has_backoff(const child *c)
{
    return c->spec.backoff.max_ms != 0;
}

/* ---- intensity and backoff ---- */

/* Count a restart; false when it is one too many. */
static bool
count_restart(tr_ctx *ctx, tr_sup *s)
{
    uint64_t now = tr__sup_now_ms(ctx);
    uint32_t size = s->max_restarts + 1; /* at most TR_SUP_RESTARTS_MAX + 1 */

    /* Times only grow, so those out of the period are the oldest. */
    while (s->nwindow != 0 && now - s->window[s->wfirst] >= s->period_ms) {
        s->wfirst = (s->wfirst + 1) % size;
        s->nwindow--;
    }
    if (s->nwindow >= s->max_restarts) {
        return false;
    }
    s->window[(s->wfirst + s->nwindow++) % size] = now;
    return true;
}

static uint64_t
backoff_delay(child *c)
{
    const tr_backoff *b = &c->spec.backoff;
    uint64_t d = b->min_ms;

    /* From 0: at once, then 1 ms, 2 ms... (doubling 0 would never grow,
     * and nothing else bounds backoff restarts). */
    for (uint32_t i = 0; i < c->backoff_step && d < b->max_ms; i++) {
        d = d == 0 ? 1 : d * 2;
    }
    if (d > b->max_ms) {
        d = b->max_ms;
    }
    if (b->jitter_pct != 0 && d != 0) {
        /* A cheap per-child mix is jitter enough: restarts of siblings
         * spread apart, and tests can bound it. jitter_pct <= 100, so
         * the delay stays in [0, 2d]. */
        uint64_t r = (c->serial * 0x9e3779b97f4a7c15ull) ^
                     (c->backoff_step * 0xbf58476d1ce4e5b9ull);
        r ^= r >> 31;
        uint64_t span = d * b->jitter_pct / 100;
        d = d - span + r % (2 * span + 1);
    }
    c->backoff_step++;
    return d;
}

static void sequence_next(tr_ctx *ctx, tr_sup *s);
static void after_sequence(tr_ctx *ctx, tr_sup *s);
static void decide(tr_ctx *ctx, tr_sup *s, child *c);

/* Send a timer message about `c` to ourselves, after `delay_ms` or at
 * once (a message, so that what is queued meanwhile is handled between
 * attempts: the control lane lets one user message through between
 * drains); TR_ENOMEM when it could not be made. */
static int
send_self(tr_ctx *ctx, tr_sup *s, uint32_t type, const child *c,
          uint64_t delay_ms)
{
    timer_ref ref = {c->addr.id, c->serial};

    if (delay_ms != 0) {
        return tr__send_after(ctx, tr__addr(ctx->sys, s->self), type, &ref,
                              sizeof(ref), delay_ms, NULL);
    }
    tr_envelope *env = tr__env_create(sizeof(ref));
    if (env == NULL) {
        return TR_ENOMEM;
    }
    memcpy(tr__env_data(env), &ref, sizeof(ref));
    env->kind = TR_CTL_USER;
    env->type = type;
    env->from = s->self;
    env->gen = tr__env_gen(ctx->gen);
    tr__actor_push_ctl(ctx->sys, ctx->actor, env);
    return TR_OK;
}

/* Have `c`'s restart (or its round's) tried again after `delay_ms`. */
static void
schedule_retry(tr_ctx *ctx, tr_sup *s, child *c, uint64_t delay_ms)
{
    c->serial = ++s->next_serial; /* voids an earlier retry */
    c->due_ms = tr__sup_now_ms(ctx) + delay_ms;
    if (send_self(ctx, s, MSG_RETRY, c, delay_ms) != TR_OK) {
        (void)tr_fail(ctx, TR_ENOMEM,
                      "supervisor could not schedule a restart");
    }
}

/* ---- restarts ---- */

/* Start a stop sequence: the cursor walks back from the last child. */
static void
start_sequence(tr_ctx *ctx, tr_sup *s, sup_mode mode)
{
    tr__sup_set_mode(ctx, s, mode);
    s->cursor = s->tail;
    sequence_next(ctx, s);
}

static void
give_up(tr_ctx *ctx, tr_sup *s, child *c)
{
    s->give_up_code = c->last.code != TR_OK ? c->last.code : TR_ERESTARTING;
    snprintf(s->give_up_text, sizeof(s->give_up_text),
             "%.24s: more than %u restarts in %u ms; child '%.24s': %.40s",
             s->name, s->max_restarts, s->period_ms, c->id, c->last.text);
    tr__sup_note(ctx, TR_TREE_GIVE_UP, NULL);
    if (s->mode == SUP_ADMIN) {
        /* The child being terminated goes down with the rest. */
        s->hooks->one_ended(s, TR_ESHUTDOWN);
        s->admin_child = NULL;
        s->admin_forget = false;
    }
    for (child *k = tr__sup_first(s); k != NULL; k = tr__sup_after(s, k)) {
        k->want_stop = k->state == CHILD_RUNNING;
        k->want_restart = false;
        tr__sup_set_undecided(s, k, false);
    }
    s->round_owner = NULL;
    start_sequence(ctx, s, SUP_GIVE_UP);
}

/* A restart of `c` failed (recorded in it): count it unless it has
 * backoff, then retry it (its round, with `round`) or give up. */
static void
retry_or_give_up(tr_ctx *ctx, tr_sup *s, child *c, bool round)
{
    if (!has_backoff(c) && !count_restart(ctx, s)) {
        give_up(ctx, s, c);
        return;
    }
    if (round) {
        s->round_owner = c;
    }
    schedule_retry(ctx, s, c, has_backoff(c) ? backoff_delay(c) : 0);
}

/* Run `init` again in held child `c`. TR_OK: it runs, not yet released;
 * TR_IGNORE: it has ended; else its failure is recorded in `c`, which is
 * still held. */
static int
reinit_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    char why[sizeof(((tr_signal *)0)->text)];
    uint64_t started = tr__sup_now_ms(ctx); /* when `init` began */
    int rc = tr__actor_reinit(ctx, c->slot, c->arg, why, sizeof(why));

    if (rc == TR_IGNORE) {
        tr__sup_tree_lock(ctx);
        c->ignored = true;
        c->last.kind = TR_EXIT_NORMAL;
        c->last.code = TR_OK;
        snprintf(c->last.text, sizeof(c->last.text), "ignored");
        tr__sup_tree_unlock(ctx);
        tr__sup_finish_child(ctx, s, c);
        return TR_IGNORE;
    }
    tr__sup_tree_lock(ctx);
    c->restarts++;
    if (rc != TR_OK) {
        c->last.kind = TR_EXIT_FAILED;
        c->last.code = rc;
        snprintf(c->last.text, sizeof(c->last.text), "%s", why);
        c->fail_ms = tr__sup_now_ms(ctx);
        c->failed = true;
    } else {
        c->state = CHILD_RUNNING;
        c->up_ms = started;
    }
    tr__sup_tree_unlock(ctx);
    tr__sup_note(ctx, rc == TR_OK ? TR_TREE_RESTART : TR_TREE_EXIT, c);
    if (rc == TR_OK) {
        tr__sup_set_undecided(s, c, false);
    }
    return rc;
}

/* one_for_one, simple_one_for_one: restart held child `c` on its own. */
static void
restart_one(tr_ctx *ctx, tr_sup *s, child *c)
{
    int rc = reinit_child(ctx, s, c);

    if (rc == TR_OK) {
        c->want_restart = false;
        tr__sup_release_child(ctx, c);
    } else if (rc == TR_IGNORE) {
        if (tr__sup_leaves_when_down(s, c)) {
            tr__sup_remove_child(ctx, s, c);
        }
    } else {
        retry_or_give_up(ctx, s, c, false);
    }
}

/*
 * one_for_all, rest_for_one: restart, in start order, every held child
 * that waits for the round. Not before the backoff delay of any of them
 * is up. See the top comment for a failure.
 */
static void
restart_round(tr_ctx *ctx, tr_sup *s)
{
    uint64_t now = tr__sup_now_ms(ctx);
    child *last_due = NULL;
    child *failed = NULL;

    for (child *c = tr__sup_first(s); c != NULL; c = tr__sup_after(s, c)) {
        if (c->state == CHILD_HELD && c->want_restart && c->due_ms > now &&
            (last_due == NULL || c->due_ms > last_due->due_ms)) {
            last_due = c;
        }
    }
    if (last_due != NULL) {
        s->round_owner = last_due;
        schedule_retry(ctx, s, last_due, last_due->due_ms - now);
        return;
    }
    s->round_owner = NULL;
    for (child *c = tr__sup_first(s), *nx; c != NULL; c = nx) {
        nx = tr__sup_after(s, c);
        if (c->state != CHILD_HELD || !c->want_restart) {
            continue;
        }
        int rc = reinit_child(ctx, s, c);
        if (rc == TR_IGNORE) {
            if (tr__sup_leaves_when_down(s, c)) {
                tr__sup_remove_child(ctx, s, c);
            }
        } else if (rc != TR_OK) {
            failed = c;
            break;
        } else if (s->strategy == TR_REST_FOR_ONE) {
            c->want_restart = false;
            tr__sup_release_child(ctx, c); /* it runs, whatever follows */
        } else {
            c->in_pass = true;
        }
    }
    for (child *c = tr__sup_first(s); c != NULL; c = tr__sup_after(s, c)) {
        if (!c->in_pass) {
            continue;
        }
        c->in_pass = false;
        if (failed == NULL) {
            c->want_restart = false;
            tr__sup_release_child(ctx, c);
        } else {
            tr__sup_stop_held(ctx, c); /* one_for_all: the whole round again */
            tr__sup_set_state(ctx, s, c, CHILD_HELD);
        }
    }
    if (failed != NULL) {
        retry_or_give_up(ctx, s, failed, true);
    }
}

/* ---- stopping ---- */

static bool
is_supervisor(const child *c)
{
    return c->spec.behaviour == &tr_supervisor_behaviour;
}

/*
 * Send the kill to a child that has not reported its end: a worker gets
 * its kill flag and a stop request (another one reaches an actor that
 * traps exits), a supervisor a MSG_KILL. TR_ENOMEM when the request could
 * not be made.
 */
static int
send_kill(tr_ctx *ctx, child *c)
{
    /* The test-only orphan bug (tr_testbug.h) kills a supervisor as it
     * kills a worker: it ends at once, without its kill mode. */
    if (!is_supervisor(c) || tr__test_bug(TR_TEST_BUG_ORPHAN_SUBTREE)) {
        tr_store_rel(&c->x->kill, 1);
        return tr__actor_request_stop_reserved(
            ctx->sys, c->slot, tr__id_gen(c->addr.id), ctx->self);
    }
    tr_envelope *env = tr__env_create(0);
    if (env == NULL) {
        return TR_ENOMEM;
    }
    env->kind = TR_CTL_USER;
    env->type = MSG_KILL;
    env->from = ctx->self;
    /* Its address lives until we end it, after its report. */
    if (tr__actor_push_ctl_to(ctx->sys, c->addr.id, env) != TR_OK) {
        tr__env_destroy(env);
    }
    return TR_OK;
}

/* Kill a stopping child (a handler that never returns cannot be ended in
 * C: the kill takes effect when it returns). */
static void
kill_now(tr_ctx *ctx, tr_sup *s, child *c, child_kill how)
{
    c->killed = how;
    if (send_kill(ctx, c) != TR_OK) {
        /* Out of memory: try again at a deadline one ms away. */
        (void)send_self(ctx, s, MSG_DEADLINE, c, 1);
    }
}

/* Ask a running child to stop, with its deadline. */
static void
ask_stop(tr_ctx *ctx, tr_sup *s, child *c)
{
    int sd = shutdown_of(c);
    uint64_t gen = tr__id_gen(c->addr.id);

    tr__sup_set_state(ctx, s, c, CHILD_STOPPING);
    c->serial = ++s->next_serial;
    if (sd == TR_SHUTDOWN_BRUTAL) {
        kill_now(ctx, s, c, KILL_NOW);
        return;
    }
    if (tr__actor_request_stop_reserved(ctx->sys, c->slot, gen, ctx->self) !=
        TR_OK) {
        /* No memory for the request: kill it at the deadline instead. */
        sd = sd > 0 ? sd : 1;
    }
    if (sd > 0) {
        (void)send_self(ctx, s, MSG_DEADLINE, c, (uint64_t)sd);
    }
}

/* The end of a sequence. */
static void
sequence_ended(tr_ctx *ctx, tr_sup *s)
{
    sup_mode mode = s->mode;

    s->cursor = NULL;
    if (tr__sup_ending(mode)) {
        /* Every child has ended (each at its report, or in its turn). The
         * mode stays: whatever called us must not go on. */
        if (mode != SUP_GIVE_UP) {
            /* Stopped (or killed): OTP's `shutdown`, which a link
             * propagates. */
            tr_load_acq(&ctx->actor->ext)->end_shutdown = true;
            (void)tr_stop(ctx);
        } else {
            /* A top-level tree is over: its end wakes tr_system_wait,
             * once the failure hook has reported it. */
            tr_load_acq(&ctx->actor->ext)->escalate = s->top;
            (void)tr_fail(ctx, s->give_up_code, s->give_up_text);
        }
        return;
    }
    tr__sup_set_mode(ctx, s, SUP_IDLE);
    if (mode == SUP_ROUND) {
        restart_round(ctx, s);
    }
    after_sequence(ctx, s);
}

/* terminate_child (or a cancelled start): a sequence of one. */
static void
admin_next(tr_ctx *ctx, tr_sup *s)
{
    child *c = s->admin_child;

    if (c != NULL && c->state == CHILD_STOPPING) {
        return; /* wait for its report */
    }
    if (c != NULL && c->state == CHILD_RUNNING) {
        ask_stop(ctx, s, c);
        return;
    }
    if (c != NULL && c->state == CHILD_HELD) {
        tr__sup_finish_child(ctx, s, c);
    }
    s->admin_child = NULL;
    tr__sup_set_mode(ctx, s, SUP_IDLE);
    if (c != NULL && (s->admin_forget || tr__sup_leaves_when_down(s, c))) {
        tr__sup_remove_child(ctx, s, c);
    }
    s->admin_forget = false;
    s->hooks->one_ended(s, TR_OK);
    after_sequence(ctx, s);
}

/* Drive the current stop sequence one step. */
static void
sequence_next(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_ADMIN) {
        admin_next(ctx, s);
        return;
    }
    if (s->nstopping != 0) {
        return; /* wait for its report */
    }
    while (s->cursor != NULL) {
        child *c = tr__sup_seen(s, s->cursor);
        s->cursor = c->prev;
        bool stop = c->want_stop && c->state == CHILD_RUNNING;
        c->want_stop = false;
        if (stop) {
            ask_stop(ctx, s, c);
            return;
        }
        if (tr__sup_ending(s->mode) && c->state == CHILD_HELD) {
            tr__sup_finish_child(ctx, s, c); /* it waited to be restarted */
        }
    }
    sequence_ended(ctx, s);
}

/* After a sequence: the children that ended during it, a round's retry
 * that came meanwhile, the requests that waited. */
static void
after_sequence(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_IDLE && s->nundecided != 0) {
        for (child *c = tr__sup_first(s), *nx; c != NULL; c = nx) {
            nx = tr__sup_after(s, c);
            if (s->mode != SUP_IDLE) {
                break;
            }
            if (c->undecided) {
                tr__sup_set_undecided(s, c, false);
                if (c->state == CHILD_HELD) {
                    decide(ctx, s, c);
                }
            }
        }
    }
    if (s->mode == SUP_IDLE && s->round_retry) {
        s->round_retry = false;
        restart_round(ctx, s);
    }
    if (s->mode == SUP_IDLE) {
        s->hooks->sequence_ended(ctx, s);
    }
}

/*
 * OTP's auto_shutdown, after a significant child ended by itself and was
 * not restarted: with any_significant at once, with all_significant once
 * no significant child has an actor. The supervisor then stops its other
 * children and ends as shutdown, as when asked to stop; a top-level tree
 * is over, and its end wakes tr_system_wait.
 */
static void
auto_shutdown(tr_ctx *ctx, tr_sup *s)
{
    if (s->auto_shutdown == TR_AUTO_SHUTDOWN_ALL && s->nsignificant != 0) {
        return;
    }
    tr_load_acq(&ctx->actor->ext)->escalate = s->top;
    tr__sup_start_terminate(ctx, s);
}

/* A held child ended on its own: apply the restart type and strategy. */
static void
decide(tr_ctx *ctx, tr_sup *s, child *c)
{
    bool abnormal =
        c->last.kind == TR_EXIT_FAILED || c->last.kind == TR_EXIT_KILLED;
    bool restart = c->spec.restart == TR_PERMANENT ||
                   (c->spec.restart == TR_TRANSIENT && abnormal);

    if (!restart) {
        bool significant = c->spec.significant;
        tr__sup_finish_child(ctx, s, c);
        if (tr__sup_leaves_when_down(s, c)) {
            tr__sup_remove_child(ctx, s, c);
        }
        if (significant) {
            auto_shutdown(ctx, s);
        }
        return;
    }
    if (has_backoff(c) && c->up_ms != 0 && c->spec.backoff.reset_ms != 0 &&
        tr__sup_now_ms(ctx) - c->up_ms >= c->spec.backoff.reset_ms) {
        c->backoff_step = 0; /* it ran long enough: start over */
    }
    if (!has_backoff(c) && !count_restart(ctx, s)) {
        give_up(ctx, s, c);
        return;
    }
    c->want_restart = true;
    if (independent(s)) {
        if (has_backoff(c)) {
            schedule_retry(ctx, s, c, backoff_delay(c));
        } else {
            restart_one(ctx, s, c);
        }
        return;
    }
    /* A round: from the first child (one_for_all) or from this one. */
    bool in_round = s->strategy == TR_ONE_FOR_ALL;
    for (child *k = tr__sup_first(s); k != NULL; k = tr__sup_after(s, k)) {
        in_round = in_round || k == c;
        if (!in_round) {
            continue;
        }
        if (k->state == CHILD_RUNNING) {
            /* Temporary bystanders stop and are not restarted. */
            k->want_stop = true;
            k->want_restart = k->spec.restart != TR_TEMPORARY;
        } else if (k->state == CHILD_HELD) {
            k->want_restart = k->spec.restart != TR_TEMPORARY || k == c;
        }
    }
    start_sequence(ctx, s, SUP_ROUND);
}

/* ---- what the rest of the supervisor calls ---- */

void
tr__sup_on_report(tr_ctx *ctx, tr_sup *s, const tr_child_report *r)
{
    child *c = tr__sup_find_addr(s, r->why.who.id);

    if (c == NULL) {
        /* A child of an earlier incarnation of this supervisor: nobody
         * else will end it. */
        tr_actor *slot = tr__table_slot(ctx->sys->table, r->why.who.id);
        tr_ctx cc = {
            .sys = ctx->sys,
            .actor = slot,
            .worker = ctx->worker,
            .self = r->why.who.id,
            .gen = tr__id_gen(r->why.who.id),
        };
        const tr_exit why = {r->why.kind, r->why.code, r->why.text};
        tr__actor_finish(&cc, &why, false);
        return;
    }
    bool asked = c->state == CHILD_STOPPING;
    tr__sup_set_state(ctx, s, c, CHILD_HELD);
    tr__sup_tree_lock(ctx);
    c->last = r->why;
    if (c->killed == KILL_LATE) {
        c->last.kind = TR_EXIT_KILLED;
        snprintf(c->last.text, sizeof(c->last.text),
                 "killed: did not stop within %d ms", shutdown_of(c));
    } else if (c->killed == KILL_NOW) {
        /* A killed supervisor reports its end as a stop. */
        c->last.kind = TR_EXIT_KILLED;
        c->last.code = TR_OK;
        snprintf(c->last.text, sizeof(c->last.text), "killed");
    }
    c->killed = KILL_NONE;
    if (c->last.kind == TR_EXIT_FAILED || c->last.kind == TR_EXIT_KILLED) {
        c->fail_ms = tr__sup_now_ms(ctx);
        c->failed = true;
    }
    tr__sup_tree_unlock(ctx);
    tr__sup_note(ctx, TR_TREE_EXIT, c);
    c->serial = ++s->next_serial; /* a pending deadline is void now */
    switch (s->mode) {
    case SUP_IDLE:
        decide(ctx, s, c);
        return;
    case SUP_ADMIN:
        if (c == s->admin_child) {
            tr__sup_finish_child(ctx, s, c);
            sequence_next(ctx, s);
        } else if (independent(s)) {
            decide(ctx, s, c); /* its siblings do not wait for it */
        } else {
            tr__sup_set_undecided(s, c, true);
        }
        return;
    case SUP_ROUND:
        if (!c->want_restart && (asked || c->want_stop)) {
            /* A bystander that is not restarted ends now, asked or not
             * (the cursor steps back if it named it). */
            tr__sup_finish_child(ctx, s, c);
            if (tr__sup_leaves_when_down(s, c)) {
                tr__sup_remove_child(ctx, s, c);
            }
        } else if (!asked && !c->want_stop && !c->want_restart) {
            tr__sup_set_undecided(s, c,
                                  true); /* ended on its own, outside it */
        }
        sequence_next(ctx, s);
        return;
    case SUP_TERMINATE:
    case SUP_GIVE_UP:
    case SUP_KILL:
        tr__sup_finish_child(ctx, s, c);
        sequence_next(ctx, s);
        return;
    }
}

void
tr__sup_on_deadline(tr_ctx *ctx, tr_sup *s, const timer_ref *ref)
{
    child *c = tr__sup_find_addr(s, ref->addr);

    if (c == NULL || c->serial != ref->serial || c->state != CHILD_STOPPING) {
        return;
    }
    /* It had its time (or a kill found no memory: then again). */
    kill_now(ctx, s, c, c->killed == KILL_NOW ? KILL_NOW : KILL_LATE);
}

void
tr__sup_on_retry(tr_ctx *ctx, tr_sup *s, const timer_ref *ref)
{
    child *c = tr__sup_find_addr(s, ref->addr);

    if (c == NULL || c->serial != ref->serial || c->state != CHILD_HELD ||
        !c->want_restart || tr__sup_ending(s->mode)) {
        return; /* void: terminated, restarted, or we are ending */
    }
    if (independent(s)) {
        restart_one(ctx, s, c); /* whatever else is going on */
    } else if (s->mode == SUP_IDLE) {
        restart_round(ctx, s);
    } else {
        s->round_retry = true; /* after the sequence */
    }
}

void
tr__sup_start_kill(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_KILL) {
        return;
    }
    if (s->mode == SUP_ADMIN) {
        s->hooks->one_ended(s, TR_ESHUTDOWN);
    }
    s->admin_child = NULL;
    s->admin_forget = false;
    s->round_owner = NULL;
    tr__sup_set_mode(ctx, s, SUP_KILL);
    for (child *c = tr__sup_seen(s, s->tail), *pv; c != NULL; c = pv) {
        pv = tr__sup_before(s, c);
        c->want_stop = false;
        c->want_restart = false;
        tr__sup_set_undecided(s, c, false);
        if (c->state == CHILD_HELD) {
            tr__sup_finish_child(ctx, s, c);
        } else if (c->state == CHILD_RUNNING || c->state == CHILD_STOPPING) {
            tr__sup_set_state(ctx, s, c, CHILD_STOPPING);
            c->serial = ++s->next_serial; /* a pending deadline is void */
            kill_now(ctx, s, c, KILL_NOW);
        }
    }
    s->cursor = NULL;
    sequence_next(ctx, s);
}

void
tr__sup_start_terminate(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_ADMIN) {
        s->hooks->one_ended(s, TR_ESHUTDOWN);
    }
    s->admin_child = NULL;
    s->admin_forget = false;
    s->round_owner = NULL;
    for (child *c = tr__sup_first(s); c != NULL; c = tr__sup_after(s, c)) {
        c->want_stop = c->state == CHILD_RUNNING;
        c->want_restart = false;
        tr__sup_set_undecided(s, c, false);
    }
    start_sequence(ctx, s, SUP_TERMINATE);
}

void
tr__sup_stop_one(tr_ctx *ctx, tr_sup *s, child *c, bool forget)
{
    tr__sup_set_mode(ctx, s, SUP_ADMIN);
    s->admin_child = c;
    s->admin_forget = forget;
    sequence_next(ctx, s);
}

void
tr__sup_abandon_round(tr_ctx *ctx, tr_sup *s, child *owner)
{
    bool in_round = s->strategy == TR_ONE_FOR_ALL;

    s->round_owner = NULL;
    for (child *c = tr__sup_first(s); c != NULL; c = tr__sup_after(s, c)) {
        in_round = in_round || c == owner;
        if (in_round && c->state == CHILD_HELD && c->want_restart) {
            tr__sup_finish_child(ctx, s, c);
        }
    }
}

/* The test-only orphan bug (tr_testbug.h), as the code was before
 * 34727cd: the children not yet ended are cut loose (no parent, no record)
 * and left running. */
static void
cut_loose(tr_ctx *ctx, tr_sup *s)
{
    tr__sup_tree_lock(ctx);
    for (child *c = s->tail; c != NULL; c = c->prev) {
        if (c->state != CHILD_HELD && c->state != CHILD_DOWN) {
            tr_store_relaxed(&c->x->parent, 0);
            c->x->child = NULL;
        }
    }
    tr__sup_tree_unlock(ctx);
}

void
tr__sup_end_children_now(tr_ctx *ctx, tr_sup *s)
{
    if (tr_load_acq(&ctx->sys->torn_down)) {
        return;
    }
    bool orphan = tr__test_bug(TR_TEST_BUG_ORPHAN_SUBTREE);
    if (orphan) {
        cut_loose(ctx, s);
    }
    for (child *c = s->tail; c != NULL; c = c->prev) {
        if (c->state == CHILD_HELD) {
            tr__sup_finish_child(ctx, s, c);
        } else if (c->state != CHILD_DOWN && !orphan) {
            (void)send_kill(ctx, c); /* out of memory: shutdown ends it */
        }
    }
}
