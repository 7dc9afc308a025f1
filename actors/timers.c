/*
 * The actor side of timers: messages sent after a delay or at an interval,
 * and call timeouts, on the generic timers of scheduler/timer.c.
 *
 * A timer's argument is a tick. A send tick keeps a template envelope and
 * delivers a copy (the template itself on the last firing) through the
 * target's control lane, so a timer message is never refused by a bounded
 * mailbox. An interval whose target has stopped cancels itself. A call
 * tick ends its call with TR_ETIMEDOUT (see call.c).
 */
#include "actors/actor.h"

#include "common/tr_alloc.h"
#include "scheduler/timer.h"

#include <troupe/error.h>
#include <troupe/timer.h>

#include <string.h>

enum { TICK_SEND = 1, TICK_CALL = 2 };

typedef struct tick {
    uint32_t kind;
    tr_system *sys;
    uint64_t to;
    tr_atomic(uint64_t) id; /* set once armed; an interval cancels itself */
    tr_envelope *msg;       /* TICK_SEND: the template */
    tr_call_rec *call;      /* TICK_CALL */
} tick;

static void
free_tick(tick *t)
{
    tr__free(t, sizeof(*t));
}

static tr_envelope *
copy_env(const tr_envelope *src)
{
    tr_envelope *env = tr__env_create(src->size);

    if (env != NULL) {
        env->type = src->type;
        env->from = src->from;
        memcpy(tr__env_data(env), tr__env_data((tr_envelope *)src), src->size);
    }
    return env;
}

static void
fire_send(tick *t, bool last)
{
    tr_system *sys = t->sys;
    uint32_t type = t->msg->type;
    tr_envelope *env = last ? t->msg : copy_env(t->msg);

    if (env == NULL) {
        /* Out of memory: this tick is lost, the next may not be. */
        tr__actor_count_dead(&sys->thread_ctx, t->to, type, TR_DEAD_NOACTOR);
        return;
    }
    env->kind = TR_CTL_USER;
    if (tr__actor_push_ctl_to(sys, t->to, env) != TR_OK) {
        tr__actor_count_dead(&sys->thread_ctx, t->to, type, TR_DEAD_NOACTOR);
        tr__env_destroy(env);
        uint64_t id = tr_load_acq(&t->id);
        if (!last && id != 0) {
            tr__timers_cancel(sys->timers, id); /* the firer drops it */
        }
    }
    if (last) {
        free_tick(t);
    }
}

void
tr__timer_fire(void *arg, bool last)
{
    tick *t = arg;

    if (t->kind == TICK_CALL) {
        tr__call_timed_out(t->call);
        free_tick(t);
        return;
    }
    fire_send(t, last);
}

void
tr__timer_drop(void *arg)
{
    tick *t = arg;

    if (t->kind == TICK_CALL) {
        tr__call_timer_dropped(t->call);
    } else {
        tr__env_destroy(t->msg);
    }
    free_tick(t);
}

static tick *
new_tick(tr_system *sys, uint32_t kind, uint64_t to)
{
    tick *t = tr__alloc(sizeof(*t));

    if (t != NULL) {
        t->kind = kind;
        t->sys = sys;
        t->to = to;
        tr_init_relaxed(&t->id, 0);
        t->msg = NULL;
        t->call = NULL;
    }
    return t;
}

int
tr__timer_arm_call(tr_system *sys, tr_call_rec *rec, uint64_t delay_ns,
                   uint64_t *id)
{
    tick *t = new_tick(sys, TICK_CALL, 0);
    int rc;

    if (t == NULL) {
        return TR_ENOMEM;
    }
    t->call = rec;
    rc = tr__timers_add(sys->timers, delay_ns, 0, t, id);
    if (rc != TR_OK) {
        free_tick(t);
    }
    return rc;
}

void
tr__timer_cancel_call(tr_system *sys, uint64_t id)
{
    tr__timers_cancel(sys->timers, id);
}

static int
arm_entered(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
            size_t size, uint64_t delay_ms, uint64_t period_ms, tr_timer *out)
{
    tr_system *sys = ctx->sys;
    tr_actor *a;
    tick *t;
    uint64_t id;
    int rc;

    if ((rc = tr__sys_check(sys)) != TR_OK ||
        (rc = tr__addr_check(sys, to)) != TR_OK) {
        return rc;
    }
    a = tr__table_slot(sys->table, to.id);
    if (a == NULL || !tr__gen_live(tr__id_gen(to.id)) ||
        tr_load_acq(&a->gen) != tr__id_gen(to.id)) {
        tr__actor_count_dead(ctx, to.id, type, TR_DEAD_NOACTOR);
        return TR_ENOACTOR;
    }
    t = new_tick(sys, TICK_SEND, to.id);
    if (t == NULL) {
        return TR_ENOMEM;
    }
    t->msg = tr__env_create((uint32_t)size);
    if (t->msg == NULL) {
        free_tick(t);
        return TR_ENOMEM;
    }
    t->msg->type = type;
    t->msg->from = ctx->self;
    if (size != 0) {
        memcpy(tr__env_data(t->msg), data, size);
    }
    rc = tr__timers_add(sys->timers, tr_ms_to_ns(delay_ms),
                        tr_ms_to_ns(period_ms), t, &id);
    if (rc != TR_OK) {
        tr__env_destroy(t->msg);
        free_tick(t);
        return rc;
    }
    /* A one-shot may have fired and freed its tick already: only an
     * interval's tick, which lives until it is cancelled (and nobody can
     * cancel it before this id exists), gets its id. Release: its later
     * firings read it to cancel themselves. */
    if (period_ms != 0) {
        tr_store_rel(&t->id, id);
    }
    if (out != NULL) {
        /* Mixed with the system's node word: each system's ids start
         * alike, and a handle from another system must name nothing
         * here. */
        out->id = id ^ sys->node;
    }
    return TR_OK;
}

static int
arm_send(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size,
         uint64_t delay_ms, uint64_t period_ms, tr_timer *out, bool runtime)
{
    tr_system *sys;
    int rc;

    if (ctx == NULL || (data == NULL && size != 0) || size > UINT32_MAX ||
        (type >= TR_MSG_RESERVED && !runtime)) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    sys = ctx->sys;
    /* The runtime's own timers (a supervisor's shutdown deadlines) must
     * work during shutdown, until the timers close. */
    if (tr_load_acq(&sys->shutting_down) && !runtime) {
        tr__ctx_leave(ctx);
        return TR_ESHUTDOWN;
    }
    rc = arm_entered(ctx, to, type, data, size, delay_ms, period_ms, out);
    tr__ctx_leave(ctx);
    return rc;
}

int
tr_send_after(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
              size_t size, uint64_t delay_ms, tr_timer *out)
{
    return arm_send(ctx, to, type, data, size, delay_ms, 0, out, false);
}

int
tr__send_after(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
               size_t size, uint64_t delay_ms, tr_timer *out)
{
    return arm_send(ctx, to, type, data, size, delay_ms, 0, out, true);
}

int
tr_send_interval(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                 size_t size, uint64_t period_ms, tr_timer *out)
{
    if (period_ms == 0) {
        return TR_EINVAL;
    }
    return arm_send(ctx, to, type, data, size, period_ms, period_ms, out,
                    false);
}

int
tr_timer_cancel(tr_system *sys, tr_timer timer)
{
    bool entered;
    int rc;

    if (sys == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    rc = tr__timers_cancel(sys->timers, timer.id ^ sys->node) ? TR_OK
                                                              : TR_EALREADY;
    if (entered) {
        tr__sys_leave(sys);
    }
    return rc;
}

uint64_t
tr_now_ms(tr_system *sys)
{
    bool entered;
    uint64_t ms;

    if (sys == NULL || tr__sys_enter_any(sys, &entered) != TR_OK) {
        return 0;
    }
    ms = tr__timers_now(sys->timers) / 1000000u;
    if (entered) {
        tr__sys_leave(sys);
    }
    return ms;
}

int
tr_clock_advance(tr_system *sys, uint64_t ms)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    int rc = tr__sys_enter(sys);
    if (rc != TR_OK) {
        return rc;
    }
    if (!sys->cfg.manual_clock || tr__sched_current(sys->sched) != NULL ||
        !tr__sim_on_driver(sys)) {
        tr__sys_leave(sys);
        return TR_ESTATE;
    }
    tr__timers_advance(sys->timers, tr_ms_to_ns(ms));
    /* Threads waiting for room until a time on this clock look again. */
    if (tr_load_seqcst(&sys->room_waiters) != 0) {
        tr__ec_wake(&sys->room);
    }
    tr__sys_leave(sys);
    return TR_OK;
}
