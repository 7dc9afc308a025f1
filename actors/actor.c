/*
 * Actor lifecycle and message dispatch.
 *
 * The run-right. At any moment at most one thread may run an actor: the one
 * that holds its run-right. The right is represented by the user lane's
 * idle bit being clear (mailbox/mpsc.c): whoever clears it (the push that
 * finds the mailbox idle, or a control push that takes the idle bit) owns
 * the right and hands it to the scheduler; the worker that runs the actor
 * gives it back by marking the mailbox idle once both lanes are empty. A
 * spawner holds the right of a new slot while `init` runs (free slots keep
 * the bit clear), so a message sent during init waits rather than running
 * the actor on another worker.
 *
 * Lanes. The runner drains control messages before each user message,
 * except runtime hooks (channel subscriptions): those run in the first
 * drain of a run only, and one that is queued again meanwhile waits for
 * the next run, so a channel that always has more shares each run with
 * the user lane (one batch of values, then up to TR_BATCH messages).
 * Going idle is a two-step handshake with control pushers: the runner marks
 * the user lane idle (seq_cst), then re-reads the control lane (seq_cst); a
 * control pusher pushes (seq_cst), then reads the idle bit and, if set,
 * clears it with a CAS and schedules. Whichever side comes second in the
 * total order sees the other, so a control message is never stranded; when
 * both see each other the CAS decides who keeps the right.
 *
 * Incarnations. `gen` is odd while an incarnation lives. Spawning publishes
 * it (seq_cst, then reads the shutdown flag: see system.c); stopping adds
 * one (release) before draining the lanes, so later sends fail with
 * TR_ENOACTOR. A message pushed by a sender that read the old generation
 * just before the stop stays in the slot: the next incarnation's runner, or
 * shutdown, finds its generation stale and counts it as a dead letter.
 */
#include "actors/actor.h"
#include "actors/ext.h"
#include "actors/sim.h"

#include "common/tr_alloc.h"
#include "common/tr_assert.h"
#include "common/tr_park.h"
#include "common/tr_testbug.h"
#include "scheduler/timer.h"

#include <troupe/error.h>

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* Worker `w`'s data: a system's workers all have it (system.c). */
static TR_HOT_INLINE tr_wlocal *
worker_local(tr_worker *w)
{
    tr_wlocal *wl = tr__worker_data(w);

    TR_ASSUME(wl != NULL);
    return wl;
}

static tr_wlocal *
wlocal(const tr_ctx *ctx)
{
    return ctx->worker != NULL ? worker_local(ctx->worker) : NULL;
}

/* The calling worker's envelope cache, or NULL off the workers. */
static tr_env_cache *
envs(const tr_ctx *ctx)
{
    return ctx->worker != NULL ? &wlocal(ctx)->envs : NULL;
}

/*
 * Heap states (line-aligned whole lines, tr__calloc_aligned's) of up to
 * TR_STATE_LINES lines go back to the ending worker's list for their line
 * count, and a spawn on that worker takes one from there and zeroes it:
 * the allocator's zeroed allocation and its sized free cost about 220
 * instructions an actor (callgrind, skynet), a sixth of a skynet node's
 * life. A state freed on another worker than its spawn's stays there:
 * whole lines share nothing with a neighbour. Under ASan, the allocator's
 * every time (none is kept), so that a use after the end is reported.
 */
#ifdef TR_ASAN
static const bool keep_states = false;
#else
static const bool keep_states = true;
#endif

static size_t
state_class(size_t size)
{
    return (size + TR_CACHE_LINE - 1) / TR_CACHE_LINE - 1;
}

static void *
state_alloc(tr_wlocal *wl, size_t size)
{
    size_t k = state_class(size);

    if (wl != NULL && k < TR_STATE_LINES && wl->states[k] != NULL &&
        !tr__alloc_should_fail()) {
        void *p = wl->states[k];
        memcpy(&wl->states[k], p, sizeof(void *));
        wl->nstates[k]--;
        if (wl->states[k] != NULL) {
            __builtin_prefetch(wl->states[k], 1);
        }
        /* A constant size for the common one line: stores, not rep stos. */
        if (k == 0) {
            return memset(p, 0, TR_CACHE_LINE);
        }
        return memset(p, 0, (k + 1) * TR_CACHE_LINE);
    }
    return tr__calloc_aligned(size);
}

static void
state_free(tr_wlocal *wl, void *p, size_t size)
{
    size_t k = state_class(size);

    if (keep_states && wl != NULL && k < TR_STATE_LINES &&
        wl->nstates[k] < TR_STATE_KEEP) {
        memcpy(p, &wl->states[k], sizeof(void *));
        wl->states[k] = p;
        wl->nstates[k]++;
        return;
    }
    tr__free_aligned(p, size);
}

void
tr__state_cache_flush(tr_wlocal *wl)
{
    for (size_t k = 0; k < TR_STATE_LINES; k++) {
        while (wl->states[k] != NULL) {
            void *p = wl->states[k];
            memcpy(&wl->states[k], p, sizeof(void *));
            tr__free_aligned(p, (k + 1) * TR_CACHE_LINE);
        }
        wl->nstates[k] = 0;
    }
}

/* Owner-only counter bump: relaxed load and store, no RMW. */
static void
bump(tr_atomic(uint64_t) * c, uint64_t n)
{
    tr_store_relaxed(c, tr_load_relaxed(c) + n);
}

void
tr__actor_count_dead(tr_ctx *ctx, uint64_t to, uint32_t type,
                     tr_dead_reason why)
{
    tr_system *sys = ctx->sys;
    tr_wlocal *wl = wlocal(ctx);

    if (wl != NULL) {
        bump(&wl->dead, 1);
    } else {
        tr_faa_relaxed(&sys->ext_dead, 1);
    }
    /* Per slot too, for inspection; only slots with a record (named or
     * supervised actors, the ones inspection shows). */
    tr_actor *slot = tr__table_slot(sys->table, to);
    tr_ext *x = slot != NULL ? tr_load_acq(&slot->ext) : NULL;
    if (x != NULL) {
        tr_faa_relaxed(&x->dead, 1);
    }
    /* A dead letter the hook itself makes (a send to a stopped actor,
     * which its contract forbids) is counted but not reported, so that
     * the hook never runs inside itself without end. Per thread, as the
     * hook runs on whichever thread found the letter. */
    if (sys->cfg.on_dead_letter != NULL && !tr__tls.in_dead_hook) {
        tr__tls.in_dead_hook = true;
        sys->cfg.on_dead_letter(sys->cfg.on_dead_letter_arg, tr__addr(sys, to),
                                type, why);
        tr__tls.in_dead_hook = false;
    }
}

static void drain_dead(tr_ctx *ctx, tr_actor *a, tr_dead_reason why);

/*
 * The caller took `a`'s run-right (its push found the mailbox idle): run
 * it. A slot whose incarnation has ended is never run: a late message (its
 * sender read the generation just before the end, and pushed after the
 * end's drain) is dropped here, on the sender's thread, as a dead letter,
 * and a call it carried ends with TR_ECLOSED, instead of waiting in the
 * free slot for an incarnation that may never come.
 */
void
tr__actor_schedule(tr_system *sys, tr_actor *a)
{
    /* seq_cst: the ender's generation store precedes its idle mark, which
     * our take of the right read; a later incarnation is scheduled (its
     * runner drops what is stale). */
    if (tr_unlikely(!tr__gen_live(tr_load_seqcst(&a->gen)))) {
        drain_dead(&sys->thread_ctx, a, TR_DEAD_STOPPED);
        return;
    }
    tr__sched_submit(sys->sched, &a->task);
}

void
tr__actor_push_ctl(tr_system *sys, tr_actor *a, tr_envelope *env)
{
    tr__lifo_push(&a->ctl, &env->node);
    if (tr__mpsc_take_idle(&a->mbox)) {
        tr__actor_schedule(sys, a);
    } else {
        tr__unmute_for_control(sys, a);
    }
}

int
tr__actor_push_ctl_to(tr_system *sys, uint64_t to, tr_envelope *env)
{
    tr_actor *a = tr__table_slot(sys->table, to);
    uint64_t gen = tr__id_gen(to);

    /* Acquire: pairs with spawn's publication of gen. */
    if (a == NULL || !tr__gen_live(gen) || tr_load_acq(&a->gen) != gen) {
        return TR_ENOACTOR;
    }
    env->gen = tr__env_gen(gen);
    tr__actor_push_ctl(sys, a, env);
    return TR_OK;
}

/* Queue `env` in `a`'s user lane past its bound (the runtime's own
 * messages), as a message of `kind`; schedules `a` if that made it
 * runnable. */
static void
push_user(tr_system *sys, tr_actor *a, tr_envelope *env, uint8_t kind)
{
    /* Relaxed: a counter; the push publishes the message. */
    tr_faa_relaxed(&a->sent, 1);
    env->kind = kind;
    if (tr__mpsc_push(&a->mbox, &env->node)) {
        tr__actor_schedule(sys, a);
    }
}

int
tr__actor_push_user_to(tr_system *sys, uint64_t to, tr_envelope *env,
                       uint8_t kind)
{
    tr_actor *a = tr__table_slot(sys->table, to);
    uint64_t gen = tr__id_gen(to);

    /* Acquire: pairs with spawn's publication of gen. */
    if (a == NULL || !tr__gen_live(gen) || tr_load_acq(&a->gen) != gen) {
        return TR_ENOACTOR;
    }
    env->gen = tr__env_gen(gen);
    push_user(sys, a, env, kind);
    return TR_OK;
}

/* ---- sending ---- */

/* True when `a`, the table's slot for local address `to`, holds the
 * incarnation `to` names. */
static TR_HOT_INLINE bool
addr_live(tr_actor *a, tr_addr to)
{
    /* Acquire: pairs with spawn's publication of gen, after which the
     * slot's behaviour and cap are set. */
    return a != NULL && tr_load_acq(&a->gen) == tr__id_gen(to.id) &&
           tr__gen_live(tr__id_gen(to.id));
}

/*
 * Look up `to` for a send into `*out`: TR_ENOACTOR (and a dead letter) if
 * it has stopped, TR_EFOREIGN for another system's address, TR_EFORKED in
 * a fork child.
 */
static TR_HOT_INLINE int
resolve(tr_ctx *ctx, tr_addr to, uint32_t type, tr_actor **out)
{
    tr_system *sys = ctx->sys;
    tr_actor *a;
    int rc = tr__sys_check(sys);

    if (rc != TR_OK || (rc = tr__addr_check(sys, to)) != TR_OK) {
        return rc;
    }
    a = tr__table_slot(sys->table, to.id);
    if (!addr_live(a, to)) {
        /* The test-only stale-delivery bug (tr_testbug.h) takes any live
         * incarnation of the slot. */
        if (a == NULL || !tr__gen_live(tr_load_acq(&a->gen)) ||
            !tr__test_bug(TR_TEST_BUG_STALE_DELIVERY)) {
            tr__actor_count_dead(ctx, to.id, type, TR_DEAD_NOACTOR);
            return TR_ENOACTOR;
        }
    }
    *out = a;
    return TR_OK;
}

/*
 * A plain thread waits until `a` has room (TR_OK: admitted), shutdown
 * begins (TR_ESHUTDOWN), `a` stops (TR_ENOACTOR), or `wait_until` passes on
 * the system's clock (TR_ETIMEDOUT).
 */
static int
wait_for_room(tr_ctx *ctx, tr_actor *a, uint64_t gen, uint64_t wait_until)
{
    tr_system *sys = ctx->sys;
    int rc = TR_OK;

    /* Announce, then re-check: pairs with the runner's seq_cst store of
     * `taken` and read of room_waiters (take_user). */
    tr_faa_seqcst(&sys->room_waiters, 1);
    for (;;) {
        uint32_t seen = tr__ec_value(&sys->room);
        long wait_ms = 100;

        uint32_t cap = tr_load_relaxed(&a->cap);
        if (cap & TR_CAP_CLOSED) {
            rc = TR_ECLOSED; /* tr_actor_close */
            break;
        }
        if (tr__lane_admit(&a->sent, &a->taken, cap & TR_CAP_BOUND)) {
            /* A send still waiting when shutdown began is refused, even if
             * room came after: it was not admitted then. Acquire: pairs
             * with shutdown's store, which it makes before its wake. */
            if (tr_load_acq(&sys->shutting_down)) {
                tr_fas_relaxed(&a->sent, 1);
                rc = TR_ESHUTDOWN;
            }
            break;
        }
        if (tr_load_acq(&sys->shutting_down)) {
            rc = TR_ESHUTDOWN;
            break;
        }
        if (tr_load_acq(&a->gen) != gen) {
            /* Stopped by a shutdown that began after our look above: it
             * set the flag before it stopped anything, and our acquire of
             * the generation orders the flag's load after that. */
            rc = tr_load_acq(&sys->shutting_down) ? TR_ESHUTDOWN : TR_ENOACTOR;
            break;
        }
        if (wait_until != TR_WAIT_FOREVER) {
            uint64_t now = tr__timers_now(sys->timers);
            if (now >= wait_until) {
                rc = TR_ETIMEDOUT;
                break;
            }
            /* A manual clock moves by tr_clock_advance, which wakes us. */
            uint64_t left_ms = (wait_until - now + 999999u) / 1000000u;
            if (!sys->cfg.manual_clock && left_ms < (uint64_t)wait_ms) {
                wait_ms = (long)left_ms;
            }
        }
        if (sys->sim != NULL) {
            /* The driving thread of a simulation: take a step instead. */
            if ((rc = tr__sim_wait_step(sys, wait_until)) != TR_OK) {
                break;
            }
            continue;
        }
        /* A bounded wait: the wake protocol is exact, the bound only caps
         * the cost of a bug there. */
        tr__ec_wait_ms(&sys->room, seen, wait_ms);
    }
    tr_fas_seqcst(&sys->room_waiters, 1);
    return rc;
}

/*
 * Admit a message of `type` to `to` into the user lane of its actor,
 * `*out`, waiting for room as wait_until allows. On TR_OK the caller owes
 * the lane a post, or gives the admission back.
 */
static TR_HOT_INLINE int
admit(tr_ctx *ctx, tr_addr to, uint32_t type, uint64_t wait_until,
      tr_actor **out)
{
    tr_system *sys = ctx->sys;
    tr_actor *a = NULL;
    uint32_t cap;
    int rc;

    if ((rc = resolve(ctx, to, type, &a)) != TR_OK) {
        return rc;
    }
    cap = tr_load_relaxed(&a->cap);
    if (tr_unlikely(cap & (TR_CAP_CLOSED | TR_CAP_PRESSURE))) {
        if (cap & TR_CAP_CLOSED) {
            return TR_ECLOSED; /* tr_actor_close */
        }
        /* Backpressure (mute.c): the run that sent this may be muted when
         * it ends, unless the receiver is this actor. */
        if (ctx->actor != NULL && ctx->actor != a) {
            ctx->mute_on = to.id;
        }
    }
    if (!tr__lane_admit(&a->sent, &a->taken, cap & TR_CAP_BOUND)) {
        /*
         * Only a plain thread outside any actor's callbacks waits. Never a
         * worker, whichever context its caller passed; and never an actor's
         * own callbacks, which may hold run-rights on a plain thread (a
         * spawner holds the new actor's while its `init` runs, so a send to
         * itself would wait for ever; shutdown's last pass holds them all).
         */
        if (wait_until == TR_WAIT_NONE || ctx->actor != NULL ||
            tr__sched_current(sys->sched) != NULL) {
            return TR_EFULL;
        }
        if (!tr__sim_on_driver(sys)) {
            return TR_ESTATE; /* only a simulation's driver may wait */
        }
        rc = wait_for_room(ctx, a, tr__id_gen(to.id), wait_until);
        if (rc != TR_OK) {
            return rc;
        }
    }
    *out = a;
    return TR_OK;
}

/* Post `env` to `to`, admitted to `a` by admit. */
static TR_HOT_INLINE void
post(tr_ctx *ctx, tr_addr to, tr_actor *a, tr_envelope *env)
{
    env->gen = tr__env_gen(tr__id_gen(to.id));
    env->from = ctx->self;
    if (tr__mpsc_push(&a->mbox, &env->node)) {
        tr__actor_schedule(ctx->sys, a);
    }
}

static TR_HOT_INLINE int
deliver_entered(tr_ctx *ctx, tr_addr to, tr_envelope *env, uint64_t wait_until)
{
    tr_actor *a;
    int rc = admit(ctx, to, env->type, wait_until, &a);

    if (rc == TR_OK) {
        post(ctx, to, a, env);
    }
    return rc;
}

int
tr__actor_deliver(tr_ctx *ctx, tr_addr to, tr_envelope *env,
                  uint64_t wait_until)
{
    int rc;

    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    rc = deliver_entered(ctx, to, env, wait_until);
    tr__ctx_leave(ctx);
    return rc;
}

/* Copy the payload into an envelope and deliver it: an actor's send, or a
 * plain thread's once entered. */
static TR_HOT_INLINE int
copy_deliver(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
             size_t size, uint64_t wait_until)
{
    tr_actor *a;
    tr_envelope *env;
    int rc = admit(ctx, to, type, wait_until, &a);

    if (rc != TR_OK) {
        return rc;
    }
    if ((env = tr__env_create_in(envs(ctx), (uint32_t)size)) == NULL) {
        /* Relaxed: gives the admission back (see tr__lane_admit). */
        tr_fas_relaxed(&a->sent, 1);
        return TR_ENOMEM;
    }
    env->type = type;
    tr__copy_payload(tr__env_data(env), data, size);
    post(ctx, to, a, env);
    return TR_OK;
}

/* A plain thread's send, entered before anything of the system is read
 * and the payload copied: shutdown waits for a send that began before it.
 * Out of line, so that an actor's send stays small enough to inline. */
static TR_NOINLINE int
copy_deliver_outside(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                     size_t size, uint64_t wait_until)
{
    int rc;

    if ((rc = tr__sys_enter(ctx->sys)) != TR_OK) {
        return rc;
    }
    rc = copy_deliver(ctx, to, type, data, size, wait_until);
    tr__sys_leave(ctx->sys);
    return rc;
}

/* What every copying send checks first. */
static bool
send_args_ok(const tr_ctx *ctx, uint32_t type, const void *data, size_t size)
{
    return ctx != NULL && (data != NULL || size == 0) && size <= UINT32_MAX &&
           type < TR_MSG_RESERVED;
}

static TR_NOINLINE int
send_copy(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size,
          uint64_t wait_until)
{
    if (!send_args_ok(ctx, type, data, size)) {
        return TR_EINVAL;
    }
    if (tr_unlikely(ctx->actor == NULL)) {
        return copy_deliver_outside(ctx, to, type, data, size, wait_until);
    }
    return copy_deliver(ctx, to, type, data, size, wait_until);
}

/*
 * An actor's send on a worker when nothing is out of the ordinary: a small
 * payload, an envelope in the worker's cache, and a local receiver alive
 * with no flag (no bound, close or pressure). What send_copy would do,
 * with one call at most, last (the receiver's scheduling), so that it needs
 * no frame of its own. False, having changed nothing, for any other send.
 */
static TR_HOT_INLINE bool
send_fast(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size)
{
    tr_system *sys;
    tr_env_cache *c;
    tr_actor *a;
    tr_mnode *n;

    /* send_args_ok's checks written out with the path's own: through the
     * helper, in any order, pingpong took 4 more instructions a message. */
    if (ctx == NULL || ctx->actor == NULL || ctx->worker == NULL ||
        size > TR_ENV_SMALL || (data == NULL && size != 0) ||
        type >= TR_MSG_RESERVED) {
        return false;
    }
    sys = ctx->sys;
    c = envs(ctx);
    if ((n = tr__env_cache_peek(c, (uint32_t)size)) == NULL ||
        tr__sys_check(sys) != TR_OK || tr__addr_check(sys, to) != TR_OK) {
        return false;
    }
    a = tr__table_slot(sys->table, to.id);
    /* Relaxed: as in deliver's look at the flags. */
    if (!addr_live(a, to) || tr_load_relaxed(&a->cap) != 0) {
        return false;
    }
    (void)tr__lane_admit(&a->sent, &a->taken, 0);
    tr_envelope *env = tr__env_cache_take(c, (uint32_t)size, n);
    env->type = type;
    tr__copy_payload(tr__env_data(env), data, size);
    post(ctx, to, a, env);
    return true;
}

int
tr_send(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size)
{
    if (send_fast(ctx, to, type, data, size)) {
        return TR_OK;
    }
    return send_copy(ctx, to, type, data, size, TR_WAIT_NONE);
}

int
tr_send_wait(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
             size_t size, tr_timeout timeout)
{
    int rc;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (timeout.ms == 0) {
        return send_copy(ctx, to, type, data, size, TR_WAIT_NONE);
    }
    /* Entered before the look at the system. One that may wait is a plain
     * thread's, entered once for the whole send. */
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    if (!tr__ctx_may_wait(ctx)) {
        rc = TR_ESTATE;
    } else if (!send_args_ok(ctx, type, data, size)) {
        rc = TR_EINVAL;
    } else {
        uint64_t until = timeout.ms < 0
                             ? TR_WAIT_FOREVER
                             : tr_timeout_deadline_ns(
                                   tr__timers_now(ctx->sys->timers), timeout);
        rc = copy_deliver(ctx, to, type, data, size, until);
    }
    tr__ctx_leave(ctx);
    return rc;
}

void *
tr_buf_alloc(size_t size)
{
    tr_envelope *env;

    if (size > UINT32_MAX) {
        return NULL;
    }
    env = tr__env_create((uint32_t)size);
    return env == NULL ? NULL : tr__env_data(env);
}

void
tr_buf_free(void *buf)
{
    if (buf != NULL) {
        tr__env_destroy(tr__env_of_data(buf));
    }
}

int
tr_send_buf(tr_ctx *ctx, tr_addr to, uint32_t type, void *buf)
{
    tr_envelope *env;

    if (ctx == NULL || buf == NULL || type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    env = tr__env_of_data(buf);
    env->type = type;
    env->kind = TR_MSG_PLAIN;
    return tr__actor_deliver(ctx, to, env, TR_WAIT_NONE);
}

/* ---- running ---- */

static tr_handle_fn
pick_handler(const tr_actor *a, uint32_t type)
{
    const tr_dispatch *d = a->table != NULL ? a->table : a->behaviour->dispatch;

    if (d == NULL) {
        return a->behaviour->handle;
    }
    for (size_t i = 0; i < d->len; i++) {
        if (d->handlers[i].type == type) {
            return d->handlers[i].fn;
        }
    }
    return d->otherwise;
}

static void
log_failure(void *arg, tr_addr who, const char *behaviour, const tr_exit *exit)
{
    (void)arg;
    fprintf(stderr, "troupe: actor " TR_ADDR_FMT " (%s) failed: %s\n",
            TR_ADDR_ARGS(who), behaviour, exit->text);
}

/*
 * A child's report that its supervisor will never read (the supervisor
 * ended with it queued). The report carries the child's run-right, so its
 * finder ends the child as the supervisor would have: its `stop` ran at
 * the hand-over. Only shutdown's final pass, which ends every live slot,
 * can have ended it first; then its generation has moved on.
 */
static void
end_reported(tr_ctx *ctx, tr_envelope *env)
{
    const tr_child_report *r = tr__env_data(env);
    uint64_t who = r->why.who.id;
    tr_actor *a = tr__table_slot(ctx->sys->table, who);
    const tr_exit why = {r->why.kind, r->why.code, r->why.text};

    if (a == NULL || tr_load_acq(&a->gen) != tr__id_gen(who)) {
        return;
    }
    tr_ctx cc = {
        .sys = ctx->sys,
        .actor = a,
        .worker = ctx->worker,
        .self = who,
        .gen = tr__id_gen(who),
    };
    /* The report lives in the child's record, which outlives the slot's
     * incarnations: `why.text` stays valid through the finish. */
    tr__actor_finish(&cc, &why, false);
}

/* Drop a control message that will not run; `ctx` is whoever found it. */
static void
destroy_ctl_one(tr_ctx *ctx, tr_envelope *env)
{
    if (env->kind == TR_CTL_REPLY) {
        tr__call_drop_outcome(env);
    } else if (env->kind == TR_CTL_HOOK) {
        tr_ctl_hook *h = (tr_ctl_hook *)(void *)env;
        h->drop(h);
    } else if (env->kind == TR_CTL_CHILD) {
        end_reported(ctx, env); /* not ours to free (actors/internal.h) */
    } else {
        tr__env_destroy(env);
    }
}

static void
destroy_ctl(tr_ctx *ctx, tr_mnode *list)
{
    while (list != NULL) {
        tr_mnode *next = tr_load_relaxed(&list->next);
        destroy_ctl_one(ctx, tr__env_of_node(list));
        list = next;
    }
}

/* A user-lane message that reaches no handler: count it, and end its call
 * if it is a request. */
static void
drop_user(tr_ctx *ctx, tr_envelope *env, tr_actor *a, tr_dead_reason why)
{
    uint64_t gen = tr__gen_widen(tr_load_relaxed(&a->gen), env->gen);

    if (env->kind == TR_MSG_CLOSE) {
        return; /* the runtime's marker, not a letter */
    }
    tr__actor_count_dead(ctx, tr__addr_id(gen, a->index), env->type, why);
    if (env->kind == TR_MSG_CALL) {
        tr__call_abandon(tr__call_of(env));
    }
}

static void
release_kind(tr_env_cache *c, tr_envelope *env)
{
    if (env->kind == TR_MSG_SHARED) {
        tr__shared_envelope_destroy(env);
    } else if (env->kind == TR_MSG_CALL) {
        tr__call_free_request(c, env);
    } else {
        tr__env_destroy_in(c, env);
    }
}

/* Free a message the queue gave back (a former dummy), or nothing. */
static TR_HOT_INLINE void
release(tr_env_cache *c, tr_mnode *done)
{
    if (done != NULL) {
        tr_envelope *env = tr__env_of_node(done);
        if (tr_likely(env->kind == 0)) {
            tr__env_destroy_in(c, env);
        } else {
            release_kind(c, env);
        }
    }
}

tr_shared *
tr__shared_create(const void *data, uint32_t size)
{
    tr_shared *s = tr__alloc(sizeof(tr_shared) + size);

    if (s != NULL) {
        tr_init_relaxed(&s->refs, 1);
        s->size = size;
        if (size != 0) {
            memcpy(s->data, data, size);
        }
    }
    return s;
}

void
tr__shared_unref(tr_shared *s)
{
    /* acq_rel: the last holder sees every other holder's reads done. */
    if (tr_fas_acqrel(&s->refs, 1) == 1) {
        tr__free(s, sizeof(tr_shared) + s->size);
    }
}

tr_envelope *
tr__shared_envelope(tr_shared *s, uint32_t type)
{
    tr_envelope *env = tr__env_create(sizeof(tr_shared *));

    if (env != NULL) {
        /* Relaxed: the caller holds a reference. */
        tr_faa_relaxed(&s->refs, 1);
        memcpy(tr__env_data(env), &s, sizeof(s));
        env->type = type;
        env->kind = TR_MSG_SHARED;
    }
    return env;
}

void
tr__shared_envelope_destroy(tr_envelope *env)
{
    tr_shared *s;

    memcpy(&s, tr__env_data(env), sizeof(s));
    tr__shared_unref(s);
    tr__env_destroy(env);
}

/* True when `a`'s mailbox has a bound: its senders read `taken`. The
 * bound is fixed for an incarnation, so a run reads it once. */
static bool
bounded(tr_actor *a)
{
    return (tr_load_relaxed(&a->cap) & TR_CAP_BOUND) != 0;
}

/* A message taken from `a`'s user lane (take_user, lean_run): `taken`
 * counts it, and a bounded mailbox wakes its blocked senders. */
static TR_HOT_INLINE void
count_taken(tr_system *sys, tr_actor *a, bool bound)
{
    uint64_t taken = tr_load_relaxed(&a->taken) + 1;

    if (!bound) {
        /* Release: only tr__lane_len readers look at it. A plain store
         * on the runner's own line. */
        tr_store_rel(&a->taken, taken);
    } else {
        /* seq_cst: pairs with blocked senders' announce-then-recheck. */
        tr_store_seqcst(&a->taken, taken);
        if (tr_load_seqcst(&sys->room_waiters) != 0) {
            tr__ec_wake(&sys->room);
        }
    }
}

/*
 * Pop one user message, keeping `taken` current and waking blocked senders
 * of a bounded mailbox. The message stays the queue's dummy until the next
 * pop or the idle mark, which free it: the runner never frees one itself.
 */
static TR_HOT_INLINE tr_envelope *
take_user(tr_system *sys, tr_actor *a, bool bound, tr_env_cache *c)
{
    tr_mnode *done;
    tr_mnode *node = tr__mpsc_pop(&a->mbox_out, &done);

    release(c, done);
    if (node == NULL) {
        return NULL;
    }
    count_taken(sys, a, bound);
    return tr__env_of_node(node);
}

/*
 * Empty a slot whose run-right the caller holds and give the right up: the
 * slot ends idle and holding no message. A push still landing (its
 * exchange done, its link not yet) is waited for and dropped too; a push
 * after the idle mark takes the right itself and comes back here through
 * tr__actor_schedule().
 */
static void
drain_dead(tr_ctx *ctx, tr_actor *a, tr_dead_reason why)
{
    for (;;) {
        tr_envelope *env;
        tr_mnode *done;

        destroy_ctl(ctx, tr__lifo_take_fifo(&a->ctl));
        while ((env = take_user(ctx->sys, a, bounded(a), envs(ctx))) != NULL) {
            drop_user(ctx, env, a, why);
        }
        if (!tr__mpsc_mark_idle(&a->mbox, &a->mbox_out, &done)) {
            continue; /* a push began: pop it once it has landed */
        }
        release(envs(ctx), done);
        /* A control push that raced the mark: take the right back unless
         * its pusher did (it then drains, through schedule). */
        if (tr__lifo_is_empty(&a->ctl) || !tr__mpsc_take_idle(&a->mbox)) {
            return;
        }
        /* A right taken back is the slot's as it is now (see go_idle): a
         * spawn may have put a new incarnation here since the mark, whose
         * messages are not ours to drop. seq_cst: a spawn publishes the
         * generation before it releases the right we then took. */
        if (tr__gen_live(tr_load_seqcst(&a->gen))) {
            tr__sched_submit(ctx->sys->sched, &a->task);
            return;
        }
    }
}

void
tr__actor_drain(tr_ctx *ctx, tr_actor *a, tr_dead_reason why)
{
    drain_dead(ctx, a, why);
}

static void
unlink_exit(tr_exit_hook *h)
{
    *h->pprev = h->next;
    if (h->next != NULL) {
        h->next->pprev = h->pprev;
    }
    h->pprev = NULL;
}

/* After `stop`, which may still use (or cancel) what the hooks guard. */
static void
run_exit_hooks(tr_ctx *ctx)
{
    tr_actor *a = ctx->actor;

    while (a->exits != NULL) {
        tr_exit_hook *h = a->exits;
        unlink_exit(h);
        h->fn(h, ctx);
    }
}

void
tr__actor_finish(tr_ctx *ctx, const tr_exit *exit, bool run_stop)
{
    tr_system *sys = ctx->sys;
    tr_actor *a = ctx->actor;
    const tr_behaviour *b = a->behaviour;
    tr_wlocal *wl = wlocal(ctx);
    tr_ext *x = tr_load_acq(&a->ext);
    bool supervised = x != NULL && tr_load_relaxed(&x->parent) != 0;

    if (run_stop && b->stop != NULL) {
        b->stop(ctx, tr__actor_state(a), exit);
    }
    run_exit_hooks(ctx);
    /* Counted before the address dies: whoever sees it gone (TR_ENOACTOR)
     * sees the counters without it too. */
    if (ctx->uncounted) {
        /* Never started: not in the counters. */
    } else if (wl != NULL) {
        bump(&wl->stopped, 1);
        if (exit->kind == TR_EXIT_FAILED) {
            bump(&wl->failed, 1);
        }
    } else {
        tr_faa_relaxed(&sys->ext_stopped, 1);
        if (exit->kind == TR_EXIT_FAILED) {
            tr_faa_relaxed(&sys->ext_failed, 1);
        }
    }
    /* A sender that reads the new generation fails; anything it pushed
     * before is drained below or waits for the next incarnation. seq_cst:
     * ordered before tr__ext_on_end's load of the record (see ext.c), and
     * after the counters above. */
    tr_store_seqcst(&a->gen, ctx->gen + 1);
    /* Children report to us under our record's lock, after checking our
     * generation (report_to): past the lock, each report is in the lane,
     * where the drain finds it, or its child saw us gone. seq_cst: the
     * record may have just been installed (see ext.c). */
    tr_ext *rx = tr_load_seqcst(&a->ext);
    if (rx != NULL) {
        pthread_mutex_lock(&rx->lock);
        pthread_mutex_unlock(&rx->lock);
    }

    /* Relaxed: the reason is a label, read as any counter is. */
    tr__actor_drain(ctx, a,
                    tr_load_relaxed(&sys->shutting_down) ? TR_DEAD_SHUTDOWN
                                                         : TR_DEAD_STOPPED);
    tr_waiter *waiters = tr__ext_on_end(ctx, a, ctx->gen, exit);
    if (x != NULL) {
        tr_store_relaxed(&x->parent, 0);
        x->child = NULL;
        tr_store_relaxed(&x->held, 0);
        tr_store_relaxed(&x->kill, 0);
        tr_store_relaxed(&x->hwm, 0);
    }

    if (exit->kind == TR_EXIT_FAILED && !supervised) {
        tr_failure_fn hook =
            sys->cfg.on_failure != NULL ? sys->cfg.on_failure : log_failure;
        hook(sys->cfg.on_failure_arg, tr__addr(sys, ctx->self),
             b->name != NULL ? b->name : "(unnamed)", exit);
    }
    if (x != NULL && x->escalate) {
        x->escalate = false;
        tr_store_rel(&sys->gave_up, 1);
        tr__ec_wake(&sys->gave_up_ec);
    }
    if (b->state_size > TR_INLINE_STATE) {
        state_free(wl, a->state.heap, b->state_size);
    }
    a->behaviour = NULL;
    a->table = NULL;
    /* Last: a thread that waited for this end sees all of it (the failure
     * hook has run, the counters count it). */
    tr__ext_wake_waiters(sys, waiters, ctx->self, exit);
    tr__table_give(sys->table, wl, a);
}

/*
 * Queue a report for the supervisor `parent`; false when it has ended.
 * The check and the push happen under the supervisor's record lock, which
 * its end passes between its generation store and its drain (finish): so
 * a report is never left in the lane of a supervisor that has ended, where
 * nobody would end its child.
 */
static bool
report_to(tr_system *sys, uint64_t parent, tr_envelope *env)
{
    tr_actor *p = tr__table_slot(sys->table, parent);
    uint64_t gen = tr__id_gen(parent);
    tr_ext *px = p != NULL ? tr__ext_get(p) : NULL;
    bool sent = false;

    if (px == NULL) {
        /* No record and no memory for one: not a supervisor's slot. */
        return tr__actor_push_ctl_to(sys, parent, env) == TR_OK;
    }
    pthread_mutex_lock(&px->lock);
    /* seq_cst: pairs with the ender's generation store (see finish). */
    if (tr__gen_live(gen) && tr_load_seqcst(&p->gen) == gen) {
        env->gen = tr__env_gen(gen);
        tr__lifo_push(&p->ctl, &env->node);
        sent = true;
    }
    pthread_mutex_unlock(&px->lock);
    /* Scheduling may wake a worker: not under the lock. Should the
     * supervisor end meanwhile, its slot keeps the idle bit clear (or a
     * later incarnation gets one spurious run). */
    if (sent && tr__mpsc_take_idle(&p->mbox)) {
        tr__actor_schedule(sys, p);
    }
    return sent;
}

/*
 * A supervised actor ends into its supervisor's hands: `stop` runs here
 * (unless the supervisor asked for a kill), the address stays live with
 * its queued messages, and the run-right travels to the supervisor in the
 * report, which decides between a restart in place and the end.
 */
static void
hand_over(tr_ctx *ctx, tr_ext *x, const tr_exit *exit)
{
    tr_actor *a = ctx->actor;
    tr_exit why = *exit;
    bool kill = tr_load_acq(&x->kill) != 0;

    if (kill || exit->kind == TR_EXIT_KILLED) {
        /* Killed by its supervisor, or by a simulated fault: no `stop`. */
        why = (tr_exit){TR_EXIT_KILLED, TR_OK, kill ? "killed" : exit->text};
    } else if (a->behaviour->stop != NULL) {
        a->behaviour->stop(ctx, tr__actor_state(a), exit);
    }
    /* What the instance held through hooks (channel subscriptions) and
     * its monitors of others end with it: the restarted one starts
     * clean. */
    run_exit_hooks(ctx);
    tr__ext_drop_monitors(ctx);
    /* Backpressure (mute.c): the run that ended here never reached the
     * end of a run, where an actor lets its muted senders go. Let them go
     * now, as the end of an incarnation does: they must not wait out a
     * restart's delay, nor stay muted on a restarted instance that goes
     * idle still marked overloaded. Relaxed: as at the end of a run. */
    if (tr_load_relaxed(&a->cap) & (TR_CAP_OVERLOADED | TR_CAP_MUTERS)) {
        tr__unmute_senders(ctx->sys, a);
    }
    tr_store_relaxed(&x->held, 1);
    tr_report_msg *m = &x->report;
    m->env.kind = TR_CTL_CHILD;
    m->env.type = TR_MSG_CHILD;
    m->env.size = sizeof(m->r);
    m->env.from = ctx->self;
    m->r.child = x->child;
    tr__signal_fill(&m->r.why, tr__addr(ctx->sys, ctx->self), 0, &why);
    if (!report_to(ctx->sys, tr_load_relaxed(&x->parent), &m->env)) {
        /* No supervisor to take it: it has ended. */
        tr__actor_finish(ctx, &why, false);
    }
}

void
tr__actor_end(tr_ctx *ctx, const tr_exit *exit)
{
    tr_ext *x = tr_load_acq(&ctx->actor->ext);

    if (x != NULL && !ctx->uncounted && tr_load_relaxed(&x->parent) != 0) {
        hand_over(ctx, x, exit);
        return;
    }
    /* A kill (a simulated fault) ends it without `stop`. */
    tr__actor_finish(ctx, exit, exit->kind != TR_EXIT_KILLED);
}

/* Under the record's lock: does the actor trap exits? */
static bool
traps_exits(tr_actor *a)
{
    tr_ext *x = tr_load_acq(&a->ext);
    bool on = false;

    if (x != NULL) {
        pthread_mutex_lock(&x->lock);
        on = x->trap_exit;
        pthread_mutex_unlock(&x->lock);
    }
    return on;
}

/* Append `s` at `*at` within `buf[cap]`. */
static void
put_str(char *buf, size_t cap, size_t *at, const char *s)
{
    size_t n = strlen(s);

    if (n > cap - 1 - *at) {
        n = cap - 1 - *at;
    }
    memcpy(buf + *at, s, n);
    *at += n;
    buf[*at] = '\0';
}

static void
put_int(char *buf, size_t cap, size_t *at, long long v)
{
    char digits[24];
    size_t n = sizeof(digits);
    unsigned long long u =
        v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    digits[--n] = '\0';
    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        digits[--n] = '-';
    }
    put_str(buf, cap, at, &digits[n]);
}

/*
 * "handler for message type T returned RC (NAME)": built by hand, as
 * snprintf costs more than the rest of a restart.
 */
static void
describe_failure(char *buf, size_t cap, uint32_t type, int rc)
{
    size_t at = 0;

    put_str(buf, cap, &at, "handler for message type ");
    put_int(buf, cap, &at, type);
    put_str(buf, cap, &at, " returned ");
    put_int(buf, cap, &at, rc);
    put_str(buf, cap, &at, " (");
    put_str(buf, cap, &at, tr_errname(rc));
    put_str(buf, cap, &at, ")");
}

/* After a callback: end the actor if it asked to stop or failed; true
 * when it ended. */
static bool
ended(tr_ctx *ctx, int rc, uint32_t type)
{
    tr_exit exit;

    if (rc == TR_OK && ctx->fail_code == 0 && !ctx->stop) {
        return false;
    }
    if (ctx->fail_code != 0) {
        exit = (tr_exit){TR_EXIT_FAILED, ctx->fail_code, ctx->fail_text};
    } else if (rc != TR_OK) {
        /* TR_IGNORE is init's alone: a failure carrying it would read as
         * a declined start (a supervisor's "ignored", tr_spawn's code).
         * As OTP's bad return value, it fails as misuse; the text keeps
         * what was returned. */
        describe_failure(ctx->fail_text, sizeof(ctx->fail_text), type, rc);
        exit = (tr_exit){TR_EXIT_FAILED, rc == TR_IGNORE ? TR_EINVAL : rc,
                         ctx->fail_text};
    } else {
        tr_ext *x = tr_load_acq(&ctx->actor->ext);
        exit = (tr_exit){TR_EXIT_NORMAL, TR_OK, "normal"};
        if (x != NULL && x->end_shutdown) {
            x->end_shutdown = false;
            exit = (tr_exit){TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
        }
    }
    if (exit.kind == TR_EXIT_FAILED && !ctx->uncounted) {
        tr_ext *x = tr_load_acq(&ctx->actor->ext);
        if (x != NULL && tr_load_relaxed(&x->parent) != 0) {
            /* The restarted actor will not see it again. */
            tr__actor_count_dead(ctx, ctx->self, type, TR_DEAD_FAILED);
        }
    }
    tr__actor_end(ctx, &exit);
    return true;
}

/* After the handler of the request `call` (of `type`) returned `rc`: a
 * request it neither answered nor took ends with TR_ECLOSED, or with the
 * handler's failure. */
static TR_HOT_INLINE void
request_done(tr_ctx *ctx, void *call, int rc, uint32_t type)
{
    if (tr_unlikely(rc != TR_OK || ctx->fail_code != 0)) {
        /* The callee failed on this very request: the caller learns
         * that, and why (not just that the callee is gone). */
        if (ctx->fail_code == 0) {
            describe_failure(ctx->fail_text, sizeof(ctx->fail_text), type, rc);
        }
        tr__call_fail(call, ctx->fail_text);
    } else {
        tr__call_abandon(call);
    }
}

_Static_assert((int)TR_CTL_CHILD < (int)TR_MSG_PG_EVENT,
               "dispatch takes the control kinds for user ones");

/*
 * Hand one message to its handler; true when the actor ended. A request
 * its handler neither answered nor took ends with TR_ECLOSED.
 */
static bool
dispatch(tr_ctx *ctx, void *state, tr_envelope *env, uint64_t *handled)
{
    tr_actor *a = ctx->actor;

    if (tr_unlikely(env->kind >= TR_MSG_PG_EVENT) &&
        !(env->kind == TR_MSG_PG_EVENT
              ? tr__pg_event_live(ctx, tr__env_data(env))
              : tr__ext_down_delivered(ctx, env))) {
        /* A group event whose watch ended after it was queued:
         * tr_pg_demonitor flushes it, as OTP's demonitor does. Or either
         * kind queued for an instance restarted in place since: a
         * restarted one never sees its predecessor's (ext.c). Not a
         * letter, so not a dead one. */
        return false;
    }
    tr_msg msg = {
        .type = env->type,
        .size = env->size,
        .data = tr__env_data(env),
        .from = tr__addr(ctx->sys, env->from),
    };
    tr_handle_fn fn = pick_handler(a, env->type);
    void *call = NULL;

    if (tr_unlikely(fn == NULL)) {
        drop_user(ctx, env, a, TR_DEAD_UNHANDLED);
        return false;
    }
    if (env->kind == TR_MSG_CALL) {
        call = tr__call_of(env);
        msg.data = (const char *)msg.data + TR_CALL_PREFIX;
        msg.size -= TR_CALL_PREFIX;
    } else if (env->kind == TR_MSG_SHARED) {
        const tr_shared *sh;
        memcpy(&sh, msg.data, sizeof(sh));
        msg.data = sh->data;
        msg.size = sh->size;
    }
    const tr_msg *outer_msg = ctx->req_msg;
    void *outer_call = ctx->req_call;
    ctx->req_msg = &msg;
    ctx->req_call = call;
    int rc = fn(ctx, state, &msg);
    ctx->req_msg = outer_msg;
    ctx->req_call = outer_call;
    (*handled)++;
    if (tr_unlikely(ctx->fault_in != 0) && --ctx->fault_in == 0 &&
        ctx->fail_code == 0) {
        /* A simulated crash: the handler's result becomes a failure. The
         * simulation's step (sim.c), on this thread, learns it fired. */
        ctx->sys->fault_in = 0;
        ctx->fail_code = TR_EFAILED;
        snprintf(ctx->fail_text, sizeof(ctx->fail_text),
                 "simulated crash (handler returned %d)", rc);
    }
    if (call != NULL) {
        request_done(ctx, call, rc, msg.type);
    }
    if (tr_unlikely(rc != TR_OK || ctx->stop || ctx->fail_code != 0)) {
        return ended(ctx, rc, msg.type);
    }
    return false;
}

/*
 * dispatch's common case, inline in the runner's loop: a plain user
 * message (the caller checked: no other kind, no simulated crash due, no
 * timing) to a found handler, at the top of a run (no request handled
 * around it). Anything else goes to dispatch.
 */
static TR_HOT_INLINE bool
dispatch_plain(tr_ctx *ctx, void *state, tr_envelope *env, uint64_t *handled)
{
    tr_handle_fn fn = pick_handler(ctx->actor, env->type);

    if (tr_unlikely(fn == NULL)) {
        return dispatch(ctx, state, env, handled);
    }
    tr_msg msg = {
        .type = env->type,
        .size = env->size,
        .data = tr__env_data(env),
        .from = tr__addr(ctx->sys, env->from),
    };
    /* req_msg left alone: it means nothing while req_call is NULL. */
    int rc = fn(ctx, state, &msg);
    (*handled)++;
    if (tr_unlikely(rc != TR_OK || ctx->stop || ctx->fail_code != 0)) {
        return ended(ctx, rc, msg.type);
    }
    return false;
}

bool
tr__actor_handle_borrowed(tr_ctx *ctx, void *state, uint32_t type,
                          const void *data, uint32_t size, uint64_t *handled)
{
    tr_msg msg = {
        .type = type,
        .size = size,
        .data = data,
        .from = TR_ADDR_NONE,
    };
    tr_handle_fn fn = pick_handler(ctx->actor, type);
    int rc;

    if (tr_unlikely(fn == NULL)) {
        tr__actor_count_dead(ctx, ctx->self, type, TR_DEAD_UNHANDLED);
        return false;
    }
    rc = fn(ctx, state, &msg);
    (*handled)++;
    if (tr_unlikely(rc != TR_OK || ctx->stop || ctx->fail_code != 0)) {
        return ended(ctx, rc, type);
    }
    return false;
}

tr_handle_fn
tr__actor_handler(const tr_ctx *ctx, uint32_t type)
{
    return pick_handler(ctx->actor, type);
}

bool
tr__actor_check_end(tr_ctx *ctx, int rc, uint32_t type)
{
    if (tr_likely(rc == TR_OK && !ctx->stop && ctx->fail_code == 0)) {
        return false;
    }
    return ended(ctx, rc, type);
}

void
tr__actor_on_exit(tr_ctx *ctx, tr_exit_hook *h)
{
    tr_exit_hook **head = &ctx->actor->exits;

    h->next = *head;
    if (h->next != NULL) {
        h->next->pprev = &h->next;
    }
    h->pprev = head;
    *head = h;
}

bool
tr__actor_cancel_exit(tr_ctx *ctx, tr_exit_hook *h)
{
    for (tr_exit_hook *p = ctx->actor->exits; p != NULL; p = p->next) {
        if (p == h) {
            unlink_exit(h);
            return true;
        }
    }
    return false;
}

bool
tr__actor_unhook_exit(tr_ctx *ctx, tr_exit_hook *h)
{
    /* Registered: the calling incarnation has some hook. */
    TR_ASSERT(h->pprev == NULL || ctx->actor->exits != NULL);
    (void)ctx; /* read by the assertion only */
    if (h->pprev == NULL) {
        return false;
    }
    unlink_exit(h);
    return true;
}

_Static_assert(sizeof(tr_envelope) % _Alignof(tr_signal) == 0,
               "a signal right after an envelope is where tr__env_data looks");

/*
 * A request to stop (tr_actor_stop, shutdown, a supervisor, or the marker
 * of tr_actor_close) from `from`; true when the actor ended. A trapping
 * actor hears it as an EXIT message, unless its supervisor asked for a
 * kill.
 */
static bool
stop_requested(tr_ctx *ctx, void *state, uint64_t from, uint64_t *handled,
               const char *why)
{
    const tr_exit exit = {TR_EXIT_SHUTDOWN, TR_OK, why};
    const tr_exit request = {TR_EXIT_SHUTDOWN, TR_ESHUTDOWN, why};
    tr_ext *x = tr_load_acq(&ctx->actor->ext);

    if (x != NULL && tr_load_acq(&x->kill) == 0 && traps_exits(ctx->actor)) {
        /* The EXIT lives on this stack for the handler call: hearing a
         * request to stop needs no memory. */
        struct {
            tr_envelope env;
            tr_signal sig;
        } m;
        memset(&m.env, 0, sizeof(m.env));
        m.env.type = TR_MSG_EXIT;
        m.env.size = sizeof(tr_signal);
        m.env.kind = TR_MSG_PLAIN;
        m.env.from = from;
        m.env.gen = tr__env_gen(ctx->gen);
        tr__signal_fill(&m.sig, tr__addr(ctx->sys, from), 0, &request);
        return dispatch(ctx, state, &m.env, handled);
    }
    tr__actor_end(ctx, &exit);
    return true;
}

/* Run one control message; true when the actor ended. */
static bool
run_ctl(tr_ctx *ctx, void *state, tr_envelope *env, uint64_t *handled)
{
    bool over = false;

    if (env->gen != tr__env_gen(ctx->gen)) {
        destroy_ctl_one(ctx, env); /* for an earlier incarnation */
        return false;
    }
    switch (env->kind) {
    case TR_CTL_STOP: {
        uint64_t from = env->from;
        tr__env_destroy(env);
        return stop_requested(ctx, state, from, handled, "shutdown");
    }
    case TR_CTL_LINK: {
        const tr_signal *sig = tr__env_data(env);
        if (traps_exits(ctx->actor)) {
            /* As a message it queues behind what the peer sent before it
             * ended, which is in the user lane already. */
            push_user(ctx->sys, ctx->actor, env, TR_MSG_PLAIN);
            return false;
        }
        if (sig->kind != TR_EXIT_NORMAL) {
            ctx->fail_code = sig->code != TR_OK ? sig->code : TR_ESHUTDOWN;
            snprintf(ctx->fail_text, sizeof(ctx->fail_text),
                     "linked actor " TR_ADDR_FMT " ended: %.60s",
                     TR_ADDR_ARGS(sig->who), sig->text);
            over = ended(ctx, TR_OK, TR_MSG_EXIT);
        }
        tr__env_destroy(env);
        return over;
    }
    case TR_CTL_USER:
        over = dispatch(ctx, state, env, handled);
        tr__env_destroy(env);
        return over;
    case TR_CTL_CHILD:
        /* Nothing touches `env` after the handler: by then the child may
         * have been restarted and be reporting again with it. */
        return dispatch(ctx, state, env, handled);
    case TR_CTL_REPLY: {
        uint32_t type = env->type; /* the call's request type */
        int rc = tr__call_run_outcome(ctx, state, env);
        (*handled)++;
        if (rc != TR_OK || ctx->stop || ctx->fail_code != 0) {
            return ended(ctx, rc, type);
        }
        return false;
    }
    case TR_CTL_HOOK: {
        tr_ctl_hook *h = (tr_ctl_hook *)(void *)env;
        return h->run(h, ctx, state, handled);
    }
    default:
        TR_ASSERT(!"unknown control message");
        tr__env_destroy(env);
        return false;
    }
}

/*
 * Run every control message queued now; true when the actor ended (the
 * rest of the list, and `*deferred`, are dropped). Runtime hooks (channel
 * subscriptions) run only when `hooks` allows; otherwise they are set
 * aside on `*deferred` (FIFO, last at `*dlast`) for the next run, so that a
 * subscription that always has more to deliver shares each run with the
 * user lane instead of running before every user message.
 */
static bool
run_ctl_lane(tr_ctx *ctx, void *state, uint64_t *handled, bool hooks,
             tr_mnode **deferred, tr_mnode **dlast)
{
    tr_mnode *node = tr__lifo_take_fifo(&ctx->actor->ctl);

    while (node != NULL) {
        tr_mnode *next = tr_load_relaxed(&node->next);
        tr_envelope *env = tr__env_of_node(node);
        if (!hooks && env->kind == TR_CTL_HOOK) {
            tr_store_relaxed(&node->next, NULL);
            if (*deferred == NULL) {
                *deferred = node;
            } else {
                tr_store_relaxed(&(*dlast)->next, node);
            }
            *dlast = node;
        } else if (run_ctl(ctx, state, env, handled)) {
            destroy_ctl(ctx, next);
            destroy_ctl(ctx, *deferred);
            *deferred = NULL;
            return true;
        }
        node = next;
    }
    return false;
}

/* Queue the hooks a run set aside again, for the next run. */
static void
requeue_deferred(tr_actor *a, tr_mnode *deferred)
{
    while (deferred != NULL) {
        tr_mnode *next = tr_load_relaxed(&deferred->next);
        tr__lifo_push(&a->ctl, deferred);
        deferred = next;
    }
}

/*
 * Release the run-right; false when the caller holds it again and must
 * schedule the slot: a push had begun (the right never left), or a control
 * message raced the mark and the right was taken back. A right taken back
 * is the slot's as it is now, not as the caller left it: between the mark
 * and the take anyone could take the right, run the actor, end it and
 * free the slot (or spawn into it), and a control message still being
 * pushed then makes the take succeed on that later idle slot. So a caller
 * whose incarnation may have ended since (a runner) must look at the
 * generation first (see tr__actor_run). `c`: the calling worker's envelope
 * cache, or NULL.
 */
static TR_HOT_INLINE bool
go_idle(tr_actor *a, tr_env_cache *c, bool plain)
{
    tr_mnode *done;

    if (!tr__mpsc_mark_idle(&a->mbox, &a->mbox_out, &done)) {
        return false;
    }
    if (plain && done != NULL) {
        tr__env_destroy_in(c, tr__env_of_node(done));
    } else {
        release(c, done);
    }
    if (tr__lifo_is_empty(&a->ctl)) {
        return true;
    }
    /* A control message raced the mark: take the right back, unless its
     * pusher already took it (then it scheduled the actor). */
    return !tr__mpsc_take_idle(&a->mbox);
}

/* The histogram bucket of a handler that took `ns`: at most 1 us, 10 us,
 * ..., 10 s, or more. */
static unsigned
hist_bucket(uint64_t ns)
{
    unsigned b = 0;

    for (uint64_t bound = 1000; b < TR_HIST_BUCKETS - 1 && ns > bound;
         bound *= 10) {
        b++;
    }
    return b;
}

/* While watched: one user message's handler took `ns`. */
static void
timed_message(tr_wlocal *wl, uint64_t ns)
{
    bump(&wl->hist[hist_bucket(ns)], 1);
    bump(&wl->hist_ns, ns);
}

/* While watched: the run that began at `t0` ends. */
static void
timed_run(tr_actor *a, uint64_t t0)
{
    tr_ext *x = tr_load_acq(&a->ext);

    if (x != NULL) {
        /* Relaxed: written by the runner only (runs are ordered by the
         * run-right), read by inspection. */
        bump(&x->busy_ns, tr__now_ns() - t0);
    }
}

/*
 * Backpressure's gauge (mute.c), with hysteresis so that it does not flap:
 * an actor becomes overloaded when more than TR_BATCH messages wait, and
 * stops being so at the end of a run that leaves fewer than a quarter of
 * that (and clearing, it lets its muted senders go). The runner reads the
 * backlog every PRESSURE_EVERY messages (to notice a flood during a long
 * run), when its batch cuts a run short and, while overloaded, at a run's
 * end: a run of fewer messages has nothing to look at, since only the
 * runner takes from the backlog. `*cap` is the runner's copy of the flag,
 * which only it changes.
 */
enum { PRESSURE_EVERY = 16, PRESSURE_LOW = TR_BATCH / 4 };

static void
pressure(tr_system *sys, tr_actor *a, uint32_t *cap, uint64_t backlog)
{
    if (!(*cap & TR_CAP_OVERLOADED)) {
        if (tr_unlikely(backlog > TR_BATCH)) {
            tr_for_relaxed(&a->cap, TR_CAP_OVERLOADED);
            *cap |= TR_CAP_OVERLOADED;
        }
    } else if (backlog < PRESSURE_LOW) {
        *cap &= ~TR_CAP_OVERLOADED;
        /* Clears OVERLOADED and lets the muted senders go. */
        tr__unmute_senders(sys, a);
    }
}

/* A run's context: `a`, incarnation `gen`, on worker `w`. Field by field:
 * fail_text is written only by tr_fail, and zeroing it on every run would
 * cost more than the rest of the setup. */
static TR_HOT_INLINE void
run_ctx(tr_ctx *ctx, tr_system *sys, tr_worker *w, tr_actor *a, uint64_t gen,
        uint32_t fault_in)
{
    ctx->sys = sys;
    ctx->actor = a;
    ctx->worker = w;
    ctx->self = tr__addr_id(gen, a->index);
    ctx->gen = gen;
    ctx->stop = false;
    ctx->uncounted = false;
    ctx->fail_code = 0;
    ctx->mute_on = 0;
    ctx->fault_in = fault_in;
    ctx->req_msg = NULL;
    ctx->req_call = NULL;
}

/* At a run's start: the high-water mark inspection shows, kept where it
 * can be shown, in the extension record `x` (if any). */
static TR_HOT_INLINE void
note_hwm(tr_actor *a, tr_ext *x)
{
    if (x != NULL) {
        uint64_t backlog = tr__lane_len(&a->sent, &a->taken);
        if (backlog > tr_load_relaxed(&x->hwm)) {
            tr_store_relaxed(&x->hwm, backlog);
        }
    }
}

/*
 * The end of a run that handled `handled` user messages and left the
 * actor alive: the counters, backpressure, and the run-right given up
 * (or the actor queued again). `cap` is the runner's copy of the flags;
 * `deferred`, the hooks the run set aside, first in the next run.
 */
static TR_HOT_INLINE void
run_end(tr_ctx *ctx, tr_wlocal *wl, uint32_t cap, uint64_t handled, uint64_t t0,
        tr_mnode *deferred, bool plain)
{
    tr_system *sys = ctx->sys;
    tr_actor *a = ctx->actor;

    bump(&a->handled, handled);
    bump(&wl->handled, handled);
    if (t0 != 0) {
        timed_run(a, t0);
    }
    /* Backpressure (mute.c): a run that ends with the backlog under the
     * low mark lets the actors muted on it go; a run that sent to an actor
     * under pressure may be muted, which gives the actor away. */
    if (tr_unlikely(cap & TR_CAP_OVERLOADED)) {
        /* Caught up? (Becoming overloaded is for the next run's start.) */
        pressure(sys, a, &cap, tr__lane_len(&a->sent, &a->taken));
    }
    if (!(cap & TR_CAP_OVERLOADED)) {
        /* Relaxed: MUTERS may be set meanwhile; a muting sender that we
         * miss re-checks after setting it. */
        if (tr_unlikely(tr_load_relaxed(&a->cap) & TR_CAP_MUTERS)) {
            tr__unmute_senders(sys, a);
        }
        if (tr_unlikely(ctx->mute_on != 0) && deferred == NULL &&
            tr__mute(ctx, ctx->mute_on)) {
            return;
        }
    }
    if (deferred != NULL) {
        /* The hooks it set aside run first in the next run. */
        requeue_deferred(a, deferred);
        tr__sched_requeue(ctx->worker, &a->task);
    } else if (!go_idle(a, &wl->envs, plain)) {
        /* seq_cst: an ender stores the generation before its idle mark,
         * which our take of the right came after. Moved on, the slot is
         * no longer this run's: schedule it as any taker of a right would
         * (a dead slot is drained, a later incarnation runs once for
         * nothing). */
        if (tr_load_seqcst(&a->gen) == ctx->gen) {
            tr__sched_requeue(ctx->worker, &a->task);
        } else {
            tr__actor_schedule(sys, a);
        }
    }
}

/* One run of the actor whose task is `task` (see tr__actor_run). */
static TR_NOINLINE void
run_one(tr_system *sys, tr_worker *w, tr_task *task)
{
    tr_actor *a = tr_container_of(task, tr_actor, task);
    tr_wlocal *wl = worker_local(w);
    uint64_t gen = tr_load_relaxed(&a->gen);
    tr_ctx ctx;
    uint64_t handled = 0;
    unsigned n = 0;
    unsigned look_at = PRESSURE_EVERY; /* the next look at the backlog */
    void *state = tr__actor_state(a);
    /*
     * Fairness: this run handles at most what was queued when it began
     * (and at most TR_BATCH of it). A message that arrives meanwhile, such
     * as one the actor sends itself to continue a long job, waits for the
     * next run, behind the other runnable actors.
     */
    tr_mnode *last = tr__mpsc_last(&a->mbox);
    bool more = last != a->mbox_out.tail;
    /* TR_BATCH, or a simulation's draw (sim.c): one load a run, no branch. */
    unsigned batch = sys->batch;
    tr_mnode *deferred = NULL;
    tr_mnode *dlast = NULL;
    tr_ext *x = tr_load_acq(&a->ext);
    /* Relaxed: the bound is fixed for the incarnation, and OVERLOADED is
     * written by the runner only. */
    uint32_t cap = tr_load_relaxed(&a->cap);
    bool bound = (cap & TR_CAP_BOUND) != 0;
    /* Relaxed: a switch that inspection flips rarely; a run that misses
     * the flip is timed (or not) one run late. Off, it costs this load. */
    uint64_t t0 =
        tr_unlikely(tr_load_relaxed(&sys->watched) != 0) ? tr__now_ns() : 0;

    note_hwm(a, x);

    run_ctx(&ctx, sys, w, a, gen, sys->fault_in);
    /* Plain messages go to dispatch_plain unless the run is timed or a
     * simulated crash is due in it. Looked at once: after the crash's
     * message the run's plain messages still go to dispatch, which
     * handles them the same way. */
    const uint64_t timed_or_fault = ctx.fault_in | t0;

    for (;;) {
        tr_envelope *env;

        /* Hooks run in the first drain of a run only: see run_ctl_lane. */
        if (run_ctl_lane(&ctx, state, &handled, n == 0 && deferred == NULL,
                         &deferred, &dlast)) {
            goto out;
        }
        if (!more) {
            break;
        }
        if (n == batch) {
            if (!(cap & TR_CAP_OVERLOADED)) {
                pressure(sys, a, &cap, tr__lane_len(&a->sent, &a->taken));
            }
            requeue_deferred(a, deferred);
            bump(&a->handled, handled);
            bump(&wl->handled, handled);
            if (t0 != 0) {
                timed_run(a, t0);
            }
            /* Not muted: an overloaded actor never is, and one with a
             * batch still to go is not yet done with this run's sends. */
            if (handled > 1) {
                tr__sched_note_batch(w, handled - 1);
            }
            tr__sched_requeue(w, &a->task);
            return;
        }
        env = take_user(sys, a, bound, &wl->envs);
        if (env == NULL) {
            break; /* the last push is still linking: go_idle refuses */
        }
        more = &env->node != last;
        if (tr_unlikely(++n == look_at)) {
            look_at += PRESSURE_EVERY;
            if (!(cap & TR_CAP_OVERLOADED)) {
                pressure(sys, a, &cap, tr__lane_len(&a->sent, &a->taken));
            }
        }
        if (tr_likely(env->gen == tr__env_gen(gen) &&
                      (env->kind | timed_or_fault) == 0)) {
            if (dispatch_plain(&ctx, state, env, &handled)) {
                destroy_ctl(&ctx, deferred);
                goto out;
            }
        } else if (env->gen != tr__env_gen(gen) || env->kind == TR_MSG_CLOSE) {
            if (env->gen != tr__env_gen(gen) &&
                !tr__test_bug(TR_TEST_BUG_STALE_DELIVERY)) {
                drop_user(&ctx, env, a, TR_DEAD_STOPPED);
            } else if (env->gen != tr__env_gen(gen)) {
                /* The test-only bug: handled by this incarnation. */
                if (env->kind != TR_MSG_CLOSE &&
                    dispatch(&ctx, state, env, &handled)) {
                    destroy_ctl(&ctx, deferred);
                    goto out;
                }
            } else if (stop_requested(&ctx, state, env->from, &handled,
                                      "closed")) {
                destroy_ctl(&ctx, deferred);
                goto out;
            }
        } else if (t0 != 0) {
            uint64_t m0 = tr__now_ns();
            bool over = dispatch(&ctx, state, env, &handled);
            timed_message(wl, tr__now_ns() - m0);
            if (over) {
                destroy_ctl(&ctx, deferred);
                goto out;
            }
        } else if (dispatch(&ctx, state, env, &handled)) {
            destroy_ctl(&ctx, deferred);
            goto out;
        }
    }
    if (handled > 1) {
        /* For the scheduler's tell of loose work from coupled. */
        tr__sched_note_batch(w, handled - 1);
    }
    run_end(&ctx, wl, cap, handled, t0, deferred, false);
    return;
out:
    /* Not timed: the slot may be someone else's already. */
    bump(&wl->handled, handled);
}

/* run_lean's run of `env`, the one message waiting, by its handler `fn`:
 * a plain message, or a call request when `request`. */
static TR_HOT_INLINE void
lean_run(tr_system *sys, tr_worker *w, tr_actor *a, uint64_t gen,
         tr_envelope *env, tr_handle_fn fn, bool request)
{
    tr_wlocal *wl = worker_local(w);
    void *state = tr__actor_state(a);
    void *call = NULL;
    tr_ctx ctx;

    note_hwm(a, tr_load_acq(&a->ext));
    release(&wl->envs, tr__mpsc_pop_seen(&a->mbox_out, &env->node));
    count_taken(sys, a, false);
    run_ctx(&ctx, sys, w, a, gen, 0);

    tr_msg msg = {
        .type = env->type,
        .size = env->size,
        .data = tr__env_data(env),
        .from = tr__addr(sys, env->from),
    };
    if (request) {
        call = tr__call_of(env);
        msg.data = (const char *)msg.data + TR_CALL_PREFIX;
        msg.size -= TR_CALL_PREFIX;
        ctx.req_msg = &msg;
        ctx.req_call = call;
    }
    /* A plain message leaves req_msg alone: it means nothing while
     * req_call is NULL. */
    int rc = fn(&ctx, state, &msg);
    if (request) {
        ctx.req_msg = NULL;
        ctx.req_call = NULL;
        request_done(&ctx, call, rc, msg.type);
    }
    if (tr_unlikely(rc != TR_OK || ctx.stop || ctx.fail_code != 0) &&
        ended(&ctx, rc, msg.type)) {
        bump(&wl->handled, 1);
        return;
    }
    run_end(&ctx, wl, 0, 1, 0, NULL, !request);
}

/* lean_run for a call request, out of line: a plain message's run does
 * not carry the request's code. */
static TR_NOINLINE void
lean_run_request(tr_system *sys, tr_worker *w, tr_actor *a, uint64_t gen,
                 tr_envelope *env, tr_handle_fn fn)
{
    lean_run(sys, w, a, gen, env, fn, true);
}

/*
 * The caller's half of a call, made short as run_lean makes the callee's:
 * the reply (a TR_CTL_REPLY control message) is all there is to do, with
 * no user message waiting and no flag, timing or simulated crash. It runs
 * the continuation as run_one's control lane would, and what arrives
 * meanwhile waits for go_idle, as in run_lean. False, having changed
 * nothing, for any other run.
 */
static TR_NOINLINE bool
run_lean_reply(tr_system *sys, tr_worker *w, tr_task *task, uint64_t gen)
{
    tr_actor *a = tr_container_of(task, tr_actor, task);
    tr_mnode *node = tr__lifo_top(&a->ctl);
    tr_envelope *env = tr__env_of_node(node);

    /* Relaxed: as in run_lean. */
    if (node == NULL || tr_load_relaxed(&node->next) != NULL ||
        env->kind != TR_CTL_REPLY || env->gen != tr__env_gen(gen) ||
        tr_load_relaxed(&a->cap) != 0 ||
        (tr_load_relaxed(&sys->watched) | sys->fault_in) != 0 ||
        !tr__lifo_take_only(&a->ctl, node)) {
        return false;
    }
    tr_wlocal *wl = worker_local(w);
    uint32_t type = env->type; /* the call's request type */
    tr_ctx ctx;

    note_hwm(a, tr_load_acq(&a->ext));
    run_ctx(&ctx, sys, w, a, gen, 0);
    int rc = tr__call_run_outcome(&ctx, tr__actor_state(a), env);
    if (tr_unlikely(rc != TR_OK || ctx.stop || ctx.fail_code != 0) &&
        ended(&ctx, rc, type)) {
        bump(&wl->handled, 1);
        return true;
    }
    run_end(&ctx, wl, 0, 1, 0, NULL, false);
    return true;
}

/*
 * The common run of a request/response shape, made short: one plain user
 * message or call request waiting and nothing else to do (no control message,
 * no flag, no bound, no timing, no simulated crash). It does what run_one would
 * do for that run, in fewer instructions, but for a control message that
 * arrives while the handler runs: run_one would run it in this run, here
 * go_idle takes the right back for it and it runs in the next. With no user
 * message, a call's reply may take run_lean_reply. False, having changed
 * nothing, for any other run.
 */
static TR_HOT_INLINE bool
run_lean(tr_system *sys, tr_worker *w, tr_task *task)
{
    tr_actor *a = tr_container_of(task, tr_actor, task);
    uint64_t gen = tr_load_relaxed(&a->gen);
    /* Acquire: the message's contents, as tr__mpsc_pop reads them. */
    tr_mnode *node = tr_load_acq(&a->mbox_out.tail->next);
    tr_envelope *env = tr__env_of_node(node);
    tr_handle_fn fn;

    /* Relaxed: as in run_one. A control message pushed after the look at
     * its lane waits for go_idle, which takes the right back for it. The
     * one message: nothing linked after it, looked at on its own line, not
     * on the queue's head that every sender writes. (A push between its
     * exchange and its link is missed: go_idle then fails, and the next
     * run takes it.) */
    if (node == NULL) {
        return run_lean_reply(sys, w, task, gen);
    }
    if (env->gen != tr__env_gen(gen) || tr_load_relaxed(&a->cap) != 0 ||
        tr_load_relaxed(&node->next) != NULL || !tr__lifo_is_empty(&a->ctl) ||
        (tr_load_relaxed(&sys->watched) | sys->fault_in) != 0 ||
        (fn = pick_handler(a, env->type)) == NULL) {
        return false;
    }
    if (env->kind == TR_MSG_PLAIN) {
        lean_run(sys, w, a, gen, env, fn, false);
    } else if (env->kind == TR_MSG_CALL) {
        lean_run_request(sys, w, a, gen, env, fn);
    } else {
        return false;
    }
    return true;
}

/*
 * The scheduler's run function. A run that makes another actor runnable
 * on this worker (a message to an idle actor) leaves it in the worker's
 * LIFO slot; the run after it goes on here, without the trip through the
 * worker's loop, as long as the loop would have picked it anyway.
 */
void
tr__actor_run(void *arg, tr_worker *w, tr_task *task)
{
    do {
        if (!run_lean(arg, w, task)) {
            run_one(arg, w, task);
        }
    } while ((task = tr__sched_next_lifo(w)) != NULL);
}

void
tr__actor_sim_kill(void *arg, tr_worker *w, tr_task *task)
{
    tr_system *sys = arg;
    tr_actor *a = tr_container_of(task, tr_actor, task);
    uint64_t gen = tr_load_relaxed(&a->gen);
    tr_ext *x = tr_load_acq(&a->ext);
    static const tr_exit killed = {TR_EXIT_KILLED, TR_OK, "killed (simulated)"};

    /* A slot that has ended (its runner drops what is stale) and a
     * supervisor (killed only by a request, which stops its children
     * first) run as usual. */
    if (!tr__gen_live(gen) || (x != NULL && x->supervisor)) {
        tr__actor_run(arg, w, task);
        return;
    }
    tr_ctx ctx = {
        .sys = sys,
        .actor = a,
        .worker = w,
        .self = tr__addr_id(gen, a->index),
        .gen = gen,
    };
    tr__actor_end(&ctx, &killed);
}

/* ---- spawning ---- */

bool
tr__in_init(void)
{
    return tr__tls.init_depth != 0;
}

/* Run `b`'s init for the incarnation of `ctx`. */
static int
run_init(const tr_behaviour *b, tr_ctx *ctx, void *state, const void *arg)
{
    int rc;

    tr__tls.init_depth++;
    rc = b->init(ctx, state, arg);
    tr__tls.init_depth--;
    return rc;
}

/* Why `init` (run in `child`) failed with `rc`: its tr_fail text, or its
 * code. */
static void
init_failure(const tr_ctx *child, int rc, char *why, size_t cap)
{
    if (cap == 0) {
        return;
    }
    if (child->fail_code != 0) {
        snprintf(why, cap, "%s", child->fail_text);
    } else {
        snprintf(why, cap, "init returned %d (%s)", rc, tr_errname(rc));
    }
}

static int
spawn_entered(tr_ctx *ctx, const tr_behaviour *behaviour, const void *arg,
              uint32_t mailbox_cap, void (*prepare)(tr_ext *, void *),
              void *prepare_arg, tr_addr *out, tr_actor **held, char *why,
              size_t why_cap)
{
    tr_system *sys = ctx->sys;
    tr_wlocal *wl;
    tr_actor *a;
    uint64_t gen;
    int rc;

    if (tr_load_acq(&sys->shutting_down)) {
        return TR_ESHUTDOWN;
    }
    wl = wlocal(ctx);
    a = tr__table_take(sys->table, wl);
    if (a == NULL) {
        return TR_ENOMEM;
    }
    /* State on the heap has whole cache lines of its own: a handler
     * writes it on every message, and two actors whose states shared a
     * line would make each other's every message a miss once they run on
     * different workers. */
    if (behaviour->state_size <= TR_INLINE_STATE) {
        memset(a->state.inline_state, 0, sizeof(a->state.inline_state));
    } else if ((a->state.heap = state_alloc(wl, behaviour->state_size)) ==
               NULL) {
        tr__table_give(sys->table, wl, a);
        return TR_ENOMEM;
    }
    if (prepare != NULL) {
        tr_ext *x = tr__ext_get(a);
        if (x == NULL) {
            if (behaviour->state_size > TR_INLINE_STATE) {
                state_free(wl, a->state.heap, behaviour->state_size);
            }
            tr__table_give(sys->table, wl, a);
            return TR_ENOMEM;
        }
        prepare(x, prepare_arg);
    }
    /* The run-right of the free (idle) slot. A late push to its previous
     * incarnation may hold it for the moment it takes to drop that
     * message (schedule): wait that out. */
    while (!tr__mpsc_take_idle(&a->mbox)) {
        sched_yield();
    }
    a->behaviour = behaviour;
    a->table = NULL;
    tr_store_relaxed(&a->cap, mailbox_cap);
    tr_store_relaxed(&a->handled, 0); /* this incarnation's count */
    gen = tr_load_relaxed(&a->gen) + 1;
    /*
     * seq_cst: publishes the incarnation (and the fields above) to senders,
     * who acquire gen; and is ordered before our read of shutting_down
     * below, against shutdown's seq_cst store of it and scan of gens.
     */
    tr_store_seqcst(&a->gen, gen);

    tr_ctx child = {
        .sys = sys,
        .actor = a,
        .worker = ctx->worker,
        .self = tr__addr_id(gen, a->index),
        .gen = gen,
        .uncounted = true,
    };
    /* When init does not run, or fails, stop does not run either (OTP). */
    const tr_behaviour no_stop = {.name = behaviour->name,
                                  .state_size = behaviour->state_size};
    if (tr_load_seqcst(&sys->shutting_down)) {
        const tr_exit exit = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
        a->behaviour = &no_stop;
        tr__actor_end(&child, &exit);
        return TR_ESHUTDOWN;
    }
    if (behaviour->init != NULL) {
        rc = run_init(behaviour, &child, tr__actor_state(a), arg);
        if (rc == TR_OK && child.fail_code != 0) {
            rc = child.fail_code;
        }
        if (rc != TR_OK) {
            const tr_exit exit = {TR_EXIT_NORMAL, rc, "init failed"};
            init_failure(&child, rc, why, why_cap);
            a->behaviour = &no_stop;
            tr__actor_end(&child, &exit);
            return rc;
        }
    }
    /* Counted from here on: tr_spawn returns TR_OK. The actor cannot run
     * (and stop) elsewhere before we release the run-right below. */
    child.uncounted = false;
    if (wl != NULL) {
        bump(&wl->spawned, 1);
    } else {
        tr_faa_relaxed(&sys->ext_spawned, 1);
    }
    if (out != NULL) {
        *out = tr__addr(sys, child.self);
    }
    if (held != NULL) {
        *held = a; /* the run-right stays with the caller (see actor.h) */
        (void)ended(&child, TR_OK, 0);
        return TR_OK;
    }
    if (ended(&child, TR_OK, 0)) {
        return TR_OK;
    }
    tr__actor_release(sys, a);
    return TR_OK;
}

/* A plain thread's spawn is one call on the system (tr__sys_enter) for
 * its whole length, `init` included. */
static int
spawn(tr_ctx *ctx, const tr_behaviour *behaviour, const void *arg,
      uint32_t mailbox_cap, void (*prepare)(tr_ext *, void *),
      void *prepare_arg, tr_addr *out, tr_actor **held, char *why,
      size_t why_cap, bool user)
{
    int rc;

    if (ctx == NULL || !tr__behaviour_ok(behaviour) ||
        mailbox_cap > TR_MAILBOX_CAP_MAX) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    /* A swarm simulation may bound the mailboxes a program's own spawns
     * left unbounded (sim.c): a spawn's branch, not a send's. */
    if (user && mailbox_cap == 0 && tr_unlikely(ctx->sys->sim != NULL)) {
        mailbox_cap = tr__sim_swarm_mailbox_cap(ctx->sys);
    }
    rc = spawn_entered(ctx, behaviour, arg, mailbox_cap, prepare, prepare_arg,
                       out, held, why, why_cap);
    tr__ctx_leave(ctx);
    return rc;
}

int
tr_spawn(tr_ctx *ctx, const tr_behaviour *behaviour, const void *arg,
         const tr_spawn_opts *opts, tr_addr *out)
{
    uint32_t cap = opts != NULL ? opts->mailbox_cap : 0;

    return spawn(ctx, behaviour, arg, cap, NULL, NULL, out, NULL, NULL, 0,
                 true);
}

int
tr__spawn_why(tr_ctx *ctx, const tr_behaviour *b, const void *arg, tr_addr *out,
              char *why, size_t cap)
{
    return spawn(ctx, b, arg, 0, NULL, NULL, out, NULL, why, cap, false);
}

int
tr__spawn_held(tr_ctx *ctx, const tr_behaviour *b, const void *arg,
               uint32_t mailbox_cap, void (*prepare)(tr_ext *, void *),
               void *prepare_arg, tr_addr *out, tr_actor **slot, char *why,
               size_t cap)
{
    return spawn(ctx, b, arg, mailbox_cap, prepare, prepare_arg, out, slot, why,
                 cap, false);
}

void
tr__actor_stop_held(tr_ctx *ctx, const tr_exit *exit)
{
    tr_actor *a = ctx->actor;

    if (a->behaviour->stop != NULL) {
        a->behaviour->stop(ctx, tr__actor_state(a), exit);
    }
    run_exit_hooks(ctx);
    tr_store_relaxed(&tr_load_acq(&a->ext)->held, 1);
}

void
tr__actor_release(tr_system *sys, tr_actor *a)
{
    if (!go_idle(a, NULL, false)) {
        tr__actor_schedule(sys, a);
    }
}

int
tr__actor_reinit(tr_ctx *ctx, tr_actor *a, const void *arg, char *why,
                 size_t cap)
{
    const tr_behaviour *b = a->behaviour;
    tr_ext *x = tr_load_acq(&a->ext);
    uint64_t gen = tr_load_relaxed(&a->gen);
    void *state = tr__actor_state(a);
    tr_ctx child = {
        .sys = ctx->sys,
        .actor = a,
        .worker = ctx->worker,
        .self = tr__addr_id(gen, a->index),
        .gen = gen,
    };
    int rc = TR_OK;

    memset(state, 0,
           b->state_size <= TR_INLINE_STATE ? TR_INLINE_STATE : b->state_size);
    a->table = NULL;
    pthread_mutex_lock(&x->lock);
    x->trap_exit = false;
    pthread_mutex_unlock(&x->lock);
    tr_store_relaxed(&x->kill, 0);
    tr_store_relaxed(&x->held, 0);
    if (b->init != NULL) {
        rc = run_init(b, &child, state, arg);
    }
    if (rc == TR_OK && child.fail_code != 0) {
        rc = child.fail_code;
    }
    if (rc != TR_OK) {
        init_failure(&child, rc, why, cap);
        /* What the failed init registered (a subscription) ends with it. */
        run_exit_hooks(&child);
        tr_store_relaxed(&x->held, 1); /* `stop` must not run for it */
        return rc;
    }
    (void)ended(&child, TR_OK, 0); /* init may have called tr_stop */
    return TR_OK;
}

/* ---- in-handler controls ---- */

int
tr_stop(tr_ctx *ctx)
{
    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    ctx->stop = true;
    return TR_OK;
}

/* Queue the stop request `env` for incarnation `gen` of `a`. */
static void
push_stop(tr_system *sys, tr_actor *a, uint64_t gen, uint64_t from,
          tr_envelope *env)
{
    env->kind = TR_CTL_STOP;
    env->gen = tr__env_gen(gen);
    env->from = from;
    tr__actor_push_ctl(sys, a, env);
}

int
tr__actor_request_stop(tr_system *sys, tr_actor *a, uint64_t gen, uint64_t from)
{
    /* Empty: a trapping actor hears it as an EXIT built on the runner's
     * stack (stop_requested). */
    tr_envelope *env = tr__env_create(0);

    if (env == NULL) {
        return TR_ENOMEM;
    }
    push_stop(sys, a, gen, from, env);
    return TR_OK;
}

/* Top the reserve up to TR_STOP_RESERVE (as memory allows), then, when
 * `take`, take one from it. */
static tr_envelope *
stop_reserve(tr_system *sys, bool take)
{
    tr_envelope *env = NULL;

    pthread_mutex_lock(&sys->outside_lock);
    uint32_t n = tr_load_relaxed(&sys->nstop_reserve);
    while (n < TR_STOP_RESERVE) {
        tr_envelope *more = tr__env_create(0);
        if (more == NULL) {
            break;
        }
        tr_store_relaxed(&more->node.next, sys->stop_reserve);
        sys->stop_reserve = &more->node;
        n++;
    }
    if (take && sys->stop_reserve != NULL) {
        env = tr__env_of_node(sys->stop_reserve);
        sys->stop_reserve = tr_load_relaxed(&sys->stop_reserve->next);
        n--;
    }
    tr_store_relaxed(&sys->nstop_reserve, n);
    pthread_mutex_unlock(&sys->outside_lock);
    return env;
}

void
tr__stop_reserve_fill(tr_system *sys)
{
    (void)stop_reserve(sys, false);
}

void
tr__stop_reserve_free(tr_system *sys)
{
    while (sys->stop_reserve != NULL) {
        tr_mnode *next = tr_load_relaxed(&sys->stop_reserve->next);
        tr__env_destroy(tr__env_of_node(sys->stop_reserve));
        sys->stop_reserve = next;
    }
    tr_store_relaxed(&sys->nstop_reserve, 0);
}

int
tr__actor_request_stop_reserved(tr_system *sys, tr_actor *a, uint64_t gen,
                                uint64_t from)
{
    tr_envelope *env = tr__env_create(0);

    if (env == NULL) {
        env = stop_reserve(sys, true);
        if (env == NULL) {
            return TR_ENOMEM;
        }
    } else if (tr_unlikely(tr_load_relaxed(&sys->nstop_reserve) <
                           TR_STOP_RESERVE)) {
        /* Relaxed: a hint, the lock decides. The reserve was used: top it
         * up now that memory is back. */
        stop_reserve(sys, false);
    }
    push_stop(sys, a, gen, from, env);
    return TR_OK;
}

int
tr_actor_stop(tr_ctx *ctx, tr_addr to)
{
    tr_actor *a = NULL;
    int rc;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    if ((rc = resolve(ctx, to, 0, &a)) == TR_OK) {
        rc = tr__actor_request_stop(ctx->sys, a, tr__id_gen(to.id), ctx->self);
    }
    tr__ctx_leave(ctx);
    return rc;
}

static int
close_entered(tr_ctx *ctx, tr_addr to)
{
    tr_actor *a = NULL;
    tr_envelope *env;
    uint32_t cap;
    int rc;

    if ((rc = resolve(ctx, to, 0, &a)) != TR_OK) {
        return rc;
    }
    env = tr__env_create(0);
    if (env == NULL) {
        return TR_ENOMEM;
    }
    /* One closer wins the CAS (acq_rel, though nothing rides on it: the
     * bit only refuses the senders that read it, and the marker's push
     * below is what orders the close for the runner). */
    cap = tr_load_relaxed(&a->cap);
    do {
        if (cap & TR_CAP_CLOSED) {
            tr__env_destroy(env);
            return TR_OK;
        }
    } while (!tr_cas_acqrel(&a->cap, &cap, cap | TR_CAP_CLOSED));
    /* Past the bound: the marker is never refused. A stale generation
     * (the actor ended meanwhile) makes it a dropped marker. */
    tr_faa_relaxed(&a->sent, 1);
    env->kind = TR_MSG_CLOSE;
    env->gen = tr__env_gen(tr__id_gen(to.id));
    env->from = ctx->self;
    if (tr__mpsc_push(&a->mbox, &env->node)) {
        tr__actor_schedule(ctx->sys, a);
    }
    /* Senders blocked for room re-read the bound and give up. */
    if (tr_load_seqcst(&ctx->sys->room_waiters) != 0) {
        tr__ec_wake(&ctx->sys->room);
    }
    return TR_OK;
}

int
tr_actor_close(tr_ctx *ctx, tr_addr to)
{
    int rc;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    rc = close_entered(ctx, to);
    tr__ctx_leave(ctx);
    return rc;
}

int
tr_fail(tr_ctx *ctx, int code, const char *text)
{
    if (ctx == NULL || code == 0 || code == TR_IGNORE) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    ctx->fail_code = code;
    snprintf(ctx->fail_text, sizeof(ctx->fail_text), "%s",
             text != NULL ? text : tr_strerror(code));
    return TR_OK;
}

int
tr_become(tr_ctx *ctx, const tr_dispatch *table)
{
    if (ctx == NULL || !tr__dispatch_ok(table)) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    ctx->actor->table = table;
    return TR_OK;
}

tr_addr
tr_self(const tr_ctx *ctx)
{
    return ctx != NULL ? tr__addr(ctx->sys, ctx->self) : TR_ADDR_NONE;
}

static int
actor_stats(tr_system *sys, tr_addr who, tr_actor_stats *out)
{
    tr_actor *a;
    uint64_t gen = tr__id_gen(who.id);
    tr_actor_stats s;

    if (tr__addr_check(sys, who) != TR_OK) {
        return TR_EFOREIGN;
    }
    a = tr__table_slot(sys->table, who.id);
    if (a == NULL || !tr__gen_live(gen) || tr_load_acq(&a->gen) != gen) {
        return TR_ENOACTOR;
    }
    s.messages_handled = tr_load_relaxed(&a->handled);
    s.mailbox_len = tr__lane_len(&a->sent, &a->taken);
    uint32_t cap = tr_load_relaxed(&a->cap);
    s.mailbox_cap = cap & TR_CAP_BOUND;
    s.overloaded = (cap & TR_CAP_OVERLOADED) != 0;
    s.muted = (cap & TR_CAP_MUTED) != 0;
    /* Acquire: the counters read above belong to this incarnation only if
     * it is still the one in the slot. */
    if (tr_load_acq(&a->gen) != gen) {
        return TR_ENOACTOR;
    }
    *out = s;
    return TR_OK;
}

int
tr_actor_stats_get(tr_system *sys, tr_addr who, tr_actor_stats *out)
{
    bool entered;
    int rc;

    if (sys == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    rc = actor_stats(sys, who, out);
    if (entered) {
        tr__sys_leave(sys);
    }
    return rc;
}
