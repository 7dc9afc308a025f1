/*
 * Timers on a manual clock (no sleeping): never early, intervals without
 * drift, cancel, dead targets; and once on the real clock, lateness under a
 * few milliseconds' load.
 */
#include "support/tr_test.h"

#include "actors/actor.h"
#include "scheduler/timer.h"

#include <pthread.h>
#include <time.h>

enum { MSG_TICK = 1, MSG_MARK = 2, MSG_STOP = 3 };

typedef struct probe {
    tr_mailbox *out;
} probe;

static int
probe_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    ((probe *)state)->out = (tr_mailbox *)arg;
    return TR_OK;
}

/* Reports (type, payload) of every message. */
static int
probe_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe *p = state;
    int v[2] = {(int)msg->type, 0};

    if (msg->size == sizeof(int)) {
        memcpy(&v[1], msg->data, sizeof(int));
    }
    int rc = tr_mailbox_send(p->out, v, sizeof(v));
    if (rc != TR_OK) {
        return rc;
    }
    return msg->type == MSG_STOP ? tr_stop(ctx) : TR_OK;
}

static const tr_behaviour probe_behaviour = {
    .name = "timer_probe",
    .state_size = sizeof(probe),
    .init = probe_init,
    .handle = probe_handle,
};

typedef struct fixture {
    tr_system *sys;
    tr_ctx *ctx;
    tr_mailbox *out;
    tr_addr a;
    tr_system_stats final;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    cfg.workers = 2;
    cfg.manual_clock = true;
    cfg.final_stats = &f->final;
    if (tr_system_start(&cfg, &f->sys) != TR_OK ||
        tr_mailbox_create(0, &f->out) != TR_OK) {
        return -1;
    }
    f->ctx = tr_system_ctx(f->sys);
    if (tr_spawn(f->ctx, &probe_behaviour, f->out, NULL, &f->a) != TR_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    int rc = f->sys != NULL ? tr_system_shutdown(f->sys, tr_ms(5000)) : TR_OK;
    tr_mailbox_destroy(f->out);
    free(f);
    return rc == TR_OK ? 0 : -1;
}

/* The next report, or {-1, -1} after 5 s. */
static void
next(fixture *f, int *type, int *value)
{
    int v[2] = {-1, -1};
    size_t len;
    tr_mailbox_recv_wait(f->out, v, sizeof(v), &len, tr_ms(5000));
    *type = v[0];
    *value = v[1];
}

/* Timer messages overtake user messages (control lane), so a marker sent
 * after an advance is handled after anything that advance fired: reading
 * up to the marker tells exactly what fired. */
static int
ticks_until_mark(fixture *f)
{
    int type;
    int value;
    int ticks = 0;
    int mark = 0;

    assert_int_equal(tr_send(f->ctx, f->a, MSG_MARK, &mark, sizeof(mark)),
                     TR_OK);
    for (;;) {
        next(f, &type, &value);
        if (type == MSG_MARK) {
            return ticks;
        }
        assert_int_equal(type, MSG_TICK);
        ticks++;
    }
}

static void
test_timer_send_after_never_fires_early(void **state)
{
    fixture *f = *state;
    int v = 7;
    tr_timer t;

    assert_int_equal(
        tr_send_after(f->ctx, f->a, MSG_TICK, &v, sizeof(v), 100, &t), TR_OK);
    assert_int_equal(tr_clock_advance(f->sys, 99), TR_OK);
    assert_int_equal(ticks_until_mark(f), 0);
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    assert_int_equal(ticks_until_mark(f), 1);
    assert_int_equal(tr_now_ms(f->sys), 100);
    /* Fired: cancelling now is too late. */
    assert_int_equal(tr_timer_cancel(f->sys, t), TR_EALREADY);
}

static void
test_timer_interval_ticks_each_period_until_cancelled(void **state)
{
    fixture *f = *state;
    tr_timer t;

    assert_int_equal(tr_send_interval(f->ctx, f->a, MSG_TICK, NULL, 0, 10, &t),
                     TR_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tr_clock_advance(f->sys, 10), TR_OK);
        assert_int_equal(ticks_until_mark(f), 1);
    }
    /* A jump of 3.5 periods delivers the three ticks missed. */
    assert_int_equal(tr_clock_advance(f->sys, 35), TR_OK);
    assert_int_equal(ticks_until_mark(f), 3);
    /* No drift: the next tick is at 90, five ms from now. */
    assert_int_equal(tr_clock_advance(f->sys, 4), TR_OK);
    assert_int_equal(ticks_until_mark(f), 0);
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    assert_int_equal(ticks_until_mark(f), 1);
    assert_int_equal(tr_timer_cancel(f->sys, t), TR_OK);
    assert_int_equal(tr_timer_cancel(f->sys, t), TR_EALREADY);
    assert_int_equal(tr_clock_advance(f->sys, 100), TR_OK);
    assert_int_equal(ticks_until_mark(f), 0);
}

static void
test_timer_cancel_before_firing_sends_nothing(void **state)
{
    fixture *f = *state;
    tr_timer t;

    assert_int_equal(tr_send_after(f->ctx, f->a, MSG_TICK, NULL, 0, 50, &t),
                     TR_OK);
    assert_int_equal(tr_timer_cancel(f->sys, t), TR_OK);
    assert_int_equal(tr_clock_advance(f->sys, 1000), TR_OK);
    assert_int_equal(ticks_until_mark(f), 0);
    assert_int_equal(tr__timers_len(f->sys->timers), 0);
}

/* A handle names a timer of its own system only: another system's
 * first timer, which has the same id inside that system, is left alone. */
static void
test_timer_another_systems_handle_cancels_nothing(void **state)
{
    fixture *f = *state;
    tr_system *other = tr_test_system(1);
    tr_timer mine;
    tr_timer theirs;

    assert_int_equal(tr_send_after(f->ctx, f->a, MSG_TICK, NULL, 0, 50, &mine),
                     TR_OK);
    tr_addr o;
    assert_int_equal(
        tr_spawn(tr_system_ctx(other), &probe_behaviour, f->out, NULL, &o),
        TR_OK);
    assert_int_equal(tr_send_after(tr_system_ctx(other), o, MSG_TICK, NULL, 0,
                                   60000, &theirs),
                     TR_OK);
    assert_int_equal(tr_timer_cancel(f->sys, theirs), TR_EALREADY);
    assert_int_equal(tr_timer_cancel(other, mine), TR_EALREADY);
    assert_int_equal(tr_timer_cancel(f->sys, mine), TR_OK);
    assert_int_equal(tr_timer_cancel(other, theirs), TR_OK);
    tr_test_shutdown(other);
}

static void
test_timer_timers_fire_in_deadline_order(void **state)
{
    fixture *f = *state;
    int delays[] = {30, 10, 50, 20, 40};
    int type;
    int value;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(tr_send_after(f->ctx, f->a, MSG_TICK, &delays[i],
                                       sizeof(int), (uint64_t)delays[i], NULL),
                         TR_OK);
    }
    assert_int_equal(tr_clock_advance(f->sys, 100), TR_OK);
    for (int want = 10; want <= 50; want += 10) {
        next(f, &type, &value);
        assert_int_equal(type, MSG_TICK);
        assert_int_equal(value, want);
    }
}

static void
test_timer_dead_target_is_refused_or_dead_lettered(void **state)
{
    fixture *f = *state;
    int type;
    int value;
    tr_timer once;
    tr_timer every;

    assert_int_equal(tr_send_after(f->ctx, f->a, MSG_TICK, NULL, 0, 10, &once),
                     TR_OK);
    assert_int_equal(
        tr_send_interval(f->ctx, f->a, MSG_TICK, NULL, 0, 10, &every), TR_OK);
    assert_int_equal(tr_send(f->ctx, f->a, MSG_STOP, NULL, 0), TR_OK);
    next(f, &type, &value);
    assert_int_equal(type, MSG_STOP);
    assert_true(tr_test_wait_stopped(f->sys, f->a, 5000));
    /* Both fire into a stopped actor; the interval then cancels itself. */
    assert_int_equal(tr_clock_advance(f->sys, 10), TR_OK);
    assert_int_equal(tr__timers_len(f->sys->timers), 0);
    assert_int_equal(tr_timer_cancel(f->sys, every), TR_EALREADY);
    tr_system_stats st;
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.dead_letters, 2);
    assert_int_equal(tr_send_after(f->ctx, f->a, MSG_TICK, NULL, 0, 1, NULL),
                     TR_ENOACTOR);
}

static void
test_timer_misuse_returns_codes(void **state)
{
    fixture *f = *state;
    int v = 0;

    assert_int_equal(tr_send_after(NULL, f->a, 1, NULL, 0, 1, NULL), TR_EINVAL);
    assert_int_equal(tr_send_after(f->ctx, f->a, 1, NULL, 4, 1, NULL),
                     TR_EINVAL);
    assert_int_equal(tr_send_interval(f->ctx, f->a, 1, &v, sizeof(v), 0, NULL),
                     TR_EINVAL);
    assert_int_equal(tr_timer_cancel(NULL, (tr_timer){1}), TR_EINVAL);
    assert_int_equal(tr_timer_cancel(f->sys, (tr_timer){0}), TR_EALREADY);
    assert_int_equal(tr_timer_cancel(f->sys, (tr_timer){~0ull}), TR_EALREADY);
    assert_int_equal(tr_clock_advance(NULL, 1), TR_EINVAL);
    assert_int_equal(tr_now_ms(NULL), 0);
}

/* ---- timers from `stop` in shutdown's last pass ---- */

/* Traps exits (shutdown's request does not stop it), keeps an interval to
 * itself, and in its `stop`, which shutdown's last pass runs once the
 * workers are joined, cancels it and arms another: refused, and nothing
 * touches the timers shutdown has closed. */
typedef struct lingerer {
    tr_mailbox *out;
    tr_timer every;
} lingerer;

static int
lingerer_init(tr_ctx *ctx, void *state, const void *arg)
{
    lingerer *l = state;
    l->out = (tr_mailbox *)arg;
    int rc =
        tr_send_interval(ctx, tr_self(ctx), MSG_TICK, NULL, 0, 10, &l->every);
    return rc != TR_OK ? rc : tr_trap_exits(ctx, true);
}

static int
lingerer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static void
lingerer_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    lingerer *l = state;
    tr_timer t;
    int v[2] = {tr_timer_cancel(tr_ctx_system(ctx), l->every),
                tr_send_after(ctx, tr_self(ctx), MSG_TICK, NULL, 0, 1, &t)};
    (void)exit;
    int rc = tr_mailbox_send(l->out, v, sizeof(v));
    (void)rc;
}

static const tr_behaviour lingerer_behaviour = {
    .name = "lingerer",
    .state_size = sizeof(lingerer),
    .init = lingerer_init,
    .handle = lingerer_handle,
    .stop = lingerer_stop,
};

static void
test_timer_calls_from_stop_in_the_last_pass(void **state)
{
    fixture *f = *state;
    int cancel;
    int after;

    assert_int_equal(tr_spawn(f->ctx, &lingerer_behaviour, f->out, NULL, NULL),
                     TR_OK);
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(100)), TR_ETIMEDOUT);
    f->sys = NULL;
    next(f, &cancel, &after);
    /* Shutdown dropped the interval before the last pass. */
    assert_true(cancel == TR_EALREADY || cancel == TR_ESHUTDOWN);
    assert_int_equal(after, TR_ESHUTDOWN);
}

/* ---- real clock ---- */

typedef struct lateness {
    uint64_t armed_ns;
    tr_atomic(uint64_t) fired_ns;
} lateness;

static lateness late;

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
stamp(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_store_seqcst(&late.fired_ns, mono_ns());
    return TR_OK;
}

static const tr_behaviour stamp_behaviour = {.name = "stamp", .handle = stamp};

static bool
stamped(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&late.fired_ns) != 0;
}

static void
test_timer_real_clock_fires_on_time(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;

    (void)state;
    assert_int_equal(tr_clock_advance(sys, 1), TR_ESTATE);
    assert_int_equal(tr_spawn(ctx, &stamp_behaviour, NULL, NULL, &a), TR_OK);
    for (int round = 0; round < 5; round++) {
        tr_store_relaxed(&late.fired_ns, 0);
        late.armed_ns = mono_ns();
        assert_int_equal(tr_send_after(ctx, a, 1, NULL, 0, 20, NULL), TR_OK);
        assert_true(tr_test_wait_until(stamped, NULL, 5000));
        uint64_t took = tr_load_relaxed(&late.fired_ns) - late.armed_ns;
        print_message("20 ms timer handled after %.3f ms\n",
                      (double)took / 1e6);
        assert_true(took >= 20000000u); /* never early */
        assert_true(took < 120000000u); /* a loaded CI machine's margin */
    }
    tr_test_shutdown(sys);
}

/*
 * Teardown while the timer thread is firing: destroy sets its flag and
 * wakes the thread while the thread is outside the lock, in a callback. The
 * thread must still see the flag when it comes back, not sleep on a wakeup
 * it has already missed (it once did, and the join hung).
 */
typedef struct teardown_race {
    tr_timers *timers;
    uint32_t firing;    /* the callback has started */
    uint32_t destroyed; /* tr__timers_destroy returned */
} teardown_race;

static teardown_race race;

static void
slow_fire(void *arg, bool last)
{
    (void)arg;
    (void)last;
    tr_store_seqcst(&race.firing, 1);
    /* Long enough for destroy to set the flag and wake us meanwhile. */
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000}, NULL);
}

static void
no_drop(void *arg)
{
    (void)arg;
}

static void *
destroyer(void *arg)
{
    (void)arg;
    tr__timers_destroy(race.timers);
    tr_store_seqcst(&race.destroyed, 1);
    return NULL;
}

static bool
flag_set(void *flag)
{
    return tr_load_seqcst((uint32_t *)flag) != 0;
}

static void
test_timer_destroy_while_firing_joins_the_thread(void **state)
{
    pthread_t th;
    uint64_t id;

    (void)state;
    assert_int_equal(tr__timers_create(false, slow_fire, no_drop, &race.timers),
                     TR_OK);
    assert_int_equal(tr__timers_add(race.timers, 0, 0, NULL, &id), TR_OK);
    assert_true(tr_test_wait_until(flag_set, &race.firing, 5000));
    assert_int_equal(pthread_create(&th, NULL, destroyer, NULL), 0);
    assert_true(tr_test_wait_until(flag_set, &race.destroyed, 5000));
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* The generic timers refuse new timers once closed, and cancel nothing. */
static void
test_timer_closed_timers_refuse_new_ones(void **state)
{
    tr_timers *t;
    uint64_t id;

    (void)state;
    assert_int_equal(tr__timers_create(true, NULL, no_drop, &t), TR_OK);
    assert_int_equal(tr__timers_add(t, 10, 0, NULL, &id), TR_OK);
    tr__timers_close(t);
    assert_int_equal(tr__timers_len(t), 0);
    assert_int_equal(tr__timers_add(t, 10, 0, NULL, &id), TR_ESHUTDOWN);
    assert_false(tr__timers_cancel(t, id));
    tr__timers_advance(t, 100);
    tr__timers_destroy(t);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_timer_send_after_never_fires_early),
        T(test_timer_interval_ticks_each_period_until_cancelled),
        T(test_timer_cancel_before_firing_sends_nothing),
        T(test_timer_another_systems_handle_cancels_nothing),
        T(test_timer_timers_fire_in_deadline_order),
        T(test_timer_dead_target_is_refused_or_dead_lettered),
        T(test_timer_misuse_returns_codes),
        T(test_timer_calls_from_stop_in_the_last_pass),
        cmocka_unit_test(test_timer_closed_timers_refuse_new_ones),
        cmocka_unit_test(test_timer_real_clock_fires_on_time),
        cmocka_unit_test(test_timer_destroy_while_firing_joins_the_thread),
    };
#undef T
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
