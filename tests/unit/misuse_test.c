/*
 * Bad input and misuse that must get a clear error code and lose nothing:
 * numbers at the edge of their type, reserved message types, closed
 * channels.
 */
#include "common/tr_park.h"
#include "support/tr_test.h"

#include <limits.h>
#include <pthread.h>

static void
test_misuse_oneshot_closed_receiver_returns_at_once(void **state)
{
    (void)state;
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    uint64_t v = 0;

    assert_int_equal(tr_oneshot_create(sizeof(v), &tx, &rx), TR_OK);
    tr_oneshot_rx_close(rx);
    uint64_t t0 = tr__now_ns();
    assert_int_equal(tr_oneshot_recv_wait(rx, &v, TR_FOREVER), TR_ECLOSED);
    assert_int_equal(tr_oneshot_recv_wait(rx, &v, tr_ms(5000)), TR_ECLOSED);
    assert_true(tr__now_ns() - t0 < 1000000000u);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);

    /* A value sent before the close is still received. */
    assert_int_equal(tr_oneshot_create(sizeof(v), &tx, &rx), TR_OK);
    v = 7;
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    tr_oneshot_rx_close(rx);
    v = 0;
    assert_int_equal(tr_oneshot_recv_wait(rx, &v, TR_FOREVER), TR_OK);
    assert_int_equal(v, 7);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);
}

typedef struct {
    tr_oneshot_rx *rx;
    tr_atomic(int) rc;
} recv_arg;

static void *
receiver(void *arg)
{
    recv_arg *r = arg;
    uint64_t v;
    tr_store_rel(&r->rc, tr_oneshot_recv_wait(r->rx, &v, TR_FOREVER));
    return NULL;
}

static void
test_misuse_oneshot_close_wakes_a_waiting_receive(void **state)
{
    (void)state;
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    pthread_t t;
    recv_arg r;

    assert_int_equal(tr_oneshot_create(sizeof(uint64_t), &tx, &rx), TR_OK);
    r.rx = rx;
    tr_init_relaxed(&r.rc, 1);
    assert_int_equal(pthread_create(&t, NULL, receiver, &r), 0);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL); /* let it block; a late start also passes */
    tr_oneshot_rx_close(rx);
    pthread_join(t, NULL);
    assert_int_equal(tr_load_acq(&r.rc), TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);
}

enum { MSG_SUB = 1, MSG_OS_VALUE = 2, MSG_OS_CLOSED = 3 };

static tr_atomic(int) sub_rc[4];
static tr_atomic(uint32_t) os_got;

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == MSG_OS_VALUE || msg->type == MSG_OS_CLOSED) {
        tr_store_rel(&os_got, msg->type);
        return TR_OK;
    }
    void *const *chans = msg->data;
    const tr_broadcast_sub_types bad = {TR_MSG_DOWN, 10, 11};
    tr_store_rel(&sub_rc[0],
                 tr_broadcast_subscribe_actor(ctx, chans[0], &bad, NULL) +
                     1000);
    tr_store_rel(
        &sub_rc[1],
        tr_watch_subscribe_actor(ctx, chans[1], TR_MSG_EXIT, 12, NULL) + 1000);
    tr_store_rel(&sub_rc[2],
                 tr_oneshot_subscribe_actor(ctx, chans[2], TR_MSG_DOWN, 13) +
                     1000);
    /* A receiver closed before it subscribes is told "closed". */
    tr_oneshot_rx_close(chans[2]);
    tr_store_rel(&sub_rc[3], tr_oneshot_subscribe_actor(
                                 ctx, chans[2], MSG_OS_VALUE, MSG_OS_CLOSED) +
                                 1000);
    return TR_OK;
}

static const tr_behaviour subscriber = {.name = "subscriber",
                                        .handle = sub_handle};

static bool
all_answered(void *arg)
{
    (void)arg;
    return tr_load_acq(&sub_rc[3]) != 0 && tr_load_acq(&os_got) != 0;
}

static void
test_misuse_subscriptions_refuse_reserved_types(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_broadcast_tx *btx;
    tr_watch_tx *wtx;
    tr_watch_rx *wrx;
    tr_oneshot_tx *otx;
    tr_oneshot_rx *orx;
    uint64_t zero = 0;
    tr_addr a;

    assert_int_equal(tr_broadcast_create(8, 8, &btx), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(zero), &zero, &wtx, &wrx), TR_OK);
    assert_int_equal(tr_oneshot_create(8, &otx, &orx), TR_OK);
    void *chans[3] = {btx, wtx, orx};
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &subscriber, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(
        tr_send(tr_system_ctx(sys), a, MSG_SUB, chans, sizeof(chans)), TR_OK);
    assert_true(tr_test_wait_until(all_answered, NULL, 5000));
    assert_int_equal(tr_load_acq(&sub_rc[0]), TR_EINVAL + 1000);
    assert_int_equal(tr_load_acq(&sub_rc[1]), TR_EINVAL + 1000);
    assert_int_equal(tr_load_acq(&sub_rc[2]), TR_EINVAL + 1000);
    assert_int_equal(tr_load_acq(&sub_rc[3]), TR_OK + 1000);
    assert_int_equal(tr_load_acq(&os_got), MSG_OS_CLOSED);
    tr_test_shutdown(sys);
    tr_broadcast_tx_destroy(btx);
    tr_watch_tx_destroy(wtx);
    tr_watch_rx_destroy(wrx);
    tr_oneshot_tx_destroy(otx);
    tr_oneshot_rx_destroy(orx);
}

static void
test_misuse_broadcast_capacity_is_bounded(void **state)
{
    (void)state;
    tr_broadcast_tx *tx = NULL;

    assert_int_equal(tr_broadcast_create((size_t)1 << 30, 8, &tx), TR_EINVAL);
    assert_null(tx);
    assert_int_equal(tr_broadcast_create(TR_BROADCAST_CAP_MAX + 1, 8, &tx),
                     TR_EINVAL);
    assert_int_equal(tr_broadcast_create(SIZE_MAX, 8, &tx), TR_EINVAL);
    assert_int_equal(tr_broadcast_create(TR_BROADCAST_CAP_MAX, 8, &tx), TR_OK);
    tr_broadcast_tx_destroy(tx);
}

static void
test_misuse_mailbox_bound_is_checked(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_spawn_opts o = {.mailbox_cap = TR_MAILBOX_CAP_MAX + 1};
    tr_addr a;

    assert_int_equal(tr_spawn(tr_system_ctx(sys), &subscriber, NULL, &o, &a),
                     TR_EINVAL);
    o.mailbox_cap = UINT32_MAX;
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &subscriber, NULL, &o, &a),
                     TR_EINVAL);
    o.mailbox_cap = TR_MAILBOX_CAP_MAX;
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &subscriber, NULL, &o, &a),
                     TR_OK);
    tr_test_shutdown(sys);
}

/* A worker count past the bound is refused at once, not after the kernel
 * has spent seconds on thread stacks it then cannot give. */
static void
test_misuse_worker_count_is_bounded(void **state)
{
    (void)state;
    tr_system_config cfg = {.workers = TR_WORKERS_MAX + 1};
    tr_system *sys = NULL;
    uint64_t t0 = tr__now_ns();

    assert_int_equal(tr_system_start(&cfg, &sys), TR_EINVAL);
    cfg.workers = UINT_MAX;
    assert_int_equal(tr_system_start(&cfg, &sys), TR_EINVAL);
    assert_null(sys);
    assert_true(tr__now_ns() - t0 < 1000000000u);
}

enum { MSG_TICK = 20 };

static tr_atomic(int) start_rc;

static int
start_in_handler(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_system *nested = NULL;

    (void)ctx;
    (void)state;
    (void)msg;
    tr_store_rel(&start_rc, tr_system_start(NULL, &nested));
    if (nested != NULL) {
        (void)tr_system_shutdown(nested, TR_FOREVER);
    }
    return TR_OK;
}

static const tr_behaviour starter = {.name = "starter",
                                     .handle = start_in_handler};

/* A handler does not start a system: its workers would be started, and
 * waited for, from a worker of another. */
static void
test_misuse_system_start_on_a_worker_is_refused(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_addr a;

    tr_store_relaxed(&start_rc, 1);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &starter, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), a, MSG_TICK, NULL, 0), TR_OK);
    assert_true(tr_test_wait_handled(sys, 1, 5000));
    assert_int_equal(tr_load_acq(&start_rc), TR_ESTATE);
    tr_test_shutdown(sys);
}

static tr_atomic(uint64_t) ticks;

static int
tick_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->type == MSG_TICK) {
        tr_faa_relaxed(&ticks, 1);
    }
    return TR_OK;
}

static const tr_behaviour ticker = {.name = "ticker", .handle = tick_handle};

static void
test_misuse_time_saturates_instead_of_wrapping(void **state)
{
    (void)state;
    tr_system_config cfg = {.workers = 1, .manual_clock = true};
    tr_system *sys = tr_test_system_cfg(&cfg);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    tr_timer far;
    tr_timer every;

    tr_store_relaxed(&ticks, 0);
    assert_int_equal(tr_spawn(ctx, &ticker, NULL, NULL, &a), TR_OK);
    /* ms -> ns used to wrap: UINT64_MAX ms became a 1 ms timer. */
    assert_int_equal(
        tr_send_after(ctx, a, MSG_TICK, NULL, 0, UINT64_MAX - 1, &far), TR_OK);
    assert_int_equal(tr_clock_advance(sys, 10), TR_OK);
    assert_int_equal(tr_now_ms(sys), 10);
    /* A jump of 2^62 ms moves the clock (saturating), and an interval
     * behind it does not queue 2^62 ticks. */
    assert_int_equal(tr_send_interval(ctx, a, MSG_TICK, NULL, 0, 1, &every),
                     TR_OK);
    assert_int_equal(tr_clock_advance(sys, (uint64_t)1 << 62), TR_OK);
    assert_true(tr_now_ms(sys) >= UINT64_MAX / 1000000u - 1);
    assert_true(tr_test_wait_handled(sys, 1, 5000));
    assert_int_equal(tr_clock_advance(sys, UINT64_MAX), TR_OK);
    assert_int_equal(tr_timer_cancel(sys, every), TR_EALREADY);
    /* The far timer's deadline passed the clock's end: it never fires,
     * not even with the clock moved there, so it is still pending. */
    assert_int_equal(tr_timer_cancel(sys, far), TR_OK);
    tr_test_shutdown(sys);
    /* A tick or two for the jump (its burst capped); never billions. */
    assert_true(tr_load_relaxed(&ticks) >= 1);
    assert_true(tr_load_relaxed(&ticks) <= 1002);
}

static void
test_misuse_register_forged_address_leaks_nothing(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    /* Slots never handed out, in the first chunk and far beyond it; the
     * ASan build reports a leak if a record is left behind. */
    tr_addr forged = {.id = ((uint64_t)1 << TR_ADDR_INDEX_BITS) | 3000};
    tr_addr far = {.id = ((uint64_t)5 << TR_ADDR_INDEX_BITS) | 70000};
    tr_addr none = TR_ADDR_NONE;

    assert_int_equal(tr_register(ctx, "forged", forged), TR_ENOACTOR);
    assert_int_equal(tr_register(ctx, "far", far), TR_ENOACTOR);
    assert_int_equal(tr_register(ctx, "none", none), TR_ENOACTOR);
    assert_int_equal(tr_send(ctx, forged, 1, NULL, 0), TR_ENOACTOR);
    assert_int_equal(tr_actor_stop(ctx, far), TR_ENOACTOR);
    tr_test_shutdown(sys);
}

/* Monitors the two addresses its argument points to. */
static int
monitor_two_init(tr_ctx *ctx, void *state, const void *arg)
{
    const tr_addr *targets = arg;
    uint64_t ref;

    (void)state;
    for (int i = 0; i < 2; i++) {
        if (tr_monitor(ctx, targets[i], &ref) != TR_OK) {
            return TR_EINVAL;
        }
    }
    return TR_OK;
}

static const tr_behaviour monitor_two = {
    .name = "monitor_two", .init = monitor_two_init, .handle = tick_handle};

/*
 * A monitor on a slot never handed out gives that slot a record; slots
 * live on mapped pages that only use makes resident (actors/table.c), and
 * the table's teardown must still find a record on a page nothing else
 * touched (the ASan build reports a leak otherwise).
 */
static void
test_misuse_monitor_of_a_slot_never_used_leaks_nothing(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr targets[2] = {
        {.id = ((uint64_t)1 << TR_ADDR_INDEX_BITS) | 20000},
        {.id = ((uint64_t)3 << TR_ADDR_INDEX_BITS) | 32767},
    };
    tr_addr watcher;

    assert_int_equal(tr_spawn(ctx, &monitor_two, targets, NULL, &watcher),
                     TR_OK);
    tr_test_shutdown(sys);
}

static tr_atomic(int) fail_ignore_rc;

static int
init_fails_with_one(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    tr_store_rel(&fail_ignore_rc, tr_fail(ctx, TR_IGNORE, "not a failure"));
    return tr_fail(ctx, 1, "failed with code 1");
}

static const tr_behaviour fails_with_one = {.name = "fails_with_one",
                                            .init = init_fails_with_one,
                                            .handle = tick_handle};

static void
test_misuse_failure_codes_never_mean_ignore(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_addr a;

    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &fails_with_one, NULL, NULL, &a), 1);
    assert_int_equal(tr_load_acq(&fail_ignore_rc), TR_EINVAL);
    assert_true(TR_IGNORE < 0 && TR_IGNORE != 1);
    assert_string_equal(tr_errname(TR_IGNORE), "TR_IGNORE");
    tr_test_shutdown(sys);
}

/* What an `init` run by a plain thread's spawn got from calls that wait
 * on the system. */
typedef struct init_waits {
    int shutdown;
    int system_wait;
    int actor_wait;
} init_waits;

static int
init_waits_on_the_system(tr_ctx *ctx, void *state, const void *arg)
{
    init_waits *w = (init_waits *)(uintptr_t)arg;
    tr_system *sys = tr_ctx_system(ctx);
    tr_signal sig;

    (void)state;
    w->shutdown = tr_system_shutdown(sys, TR_NOWAIT);
    w->system_wait = tr_system_wait(sys, tr_ms(10));
    /* With the plain thread's own context: still inside the spawn. */
    w->actor_wait =
        tr_actor_wait(tr_system_ctx(sys), tr_self(ctx), tr_ms(10), &sig);
    return TR_OK;
}

static const tr_behaviour waits_in_init = {.name = "waits_in_init",
                                           .init = init_waits_on_the_system,
                                           .handle = tick_handle};

/*
 * A spawn on a plain thread is a call on the system that shutdown waits
 * for, and it runs `init` there: a shutdown (or another wait on the
 * system) from that `init` is refused, where it used to wait for itself
 * for ever. The system goes on working, and stops later.
 */
static void
test_misuse_waiting_on_the_system_from_init_is_refused(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    init_waits w = {0};
    tr_addr a;
    tr_addr t;

    tr_store_relaxed(&ticks, 0);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &waits_in_init, &w, NULL, &a),
                     TR_OK);
    assert_int_equal(w.shutdown, TR_ESTATE);
    assert_int_equal(w.system_wait, TR_ESTATE);
    assert_int_equal(w.actor_wait, TR_ESTATE);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &ticker, NULL, NULL, &t),
                     TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), t, MSG_TICK, NULL, 0), TR_OK);
    assert_true(tr_test_wait_handled(sys, 1, 5000));
    assert_int_equal(tr_load_relaxed(&ticks), 1);
    tr_test_shutdown(sys);
}

/* Ten ticks at once: the mark of the table below. */
static int
tick_ten(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_faa_relaxed(&ticks, 10);
    return TR_OK;
}

/* A table that counts rows but has none; zero rows are fine. */
static const tr_dispatch rowless = {.handlers = NULL, .len = 5};
static const tr_dispatch no_rows = {
    .handlers = NULL, .len = 0, .otherwise = tick_ten};
static const tr_behaviour rowless_actor = {.name = "rowless",
                                           .dispatch = &rowless};

static int
init_becomes(tr_ctx *ctx, void *state, const void *arg)
{
    int *rc = (int *)(uintptr_t)arg;

    (void)state;
    rc[0] = tr_become(ctx, &rowless);
    rc[1] = tr_become(ctx, &no_rows);
    return TR_OK;
}

static const tr_behaviour becomer = {
    .name = "becomer", .init = init_becomes, .handle = tick_handle};

/*
 * A dispatch table whose rows are NULL but counted is refused where it is
 * given, with TR_EINVAL, instead of crashing a worker at the first message
 * it is read for.
 */
static void
test_misuse_dispatch_table_without_its_rows_is_refused(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    int rc[2] = {-1, -1};
    tr_addr a;

    tr_store_relaxed(&ticks, 0);
    assert_int_equal(tr_spawn(ctx, &rowless_actor, NULL, NULL, &a), TR_EINVAL);
    assert_int_equal(tr_spawn(ctx, &becomer, rc, NULL, &a), TR_OK);
    assert_int_equal(rc[0], TR_EINVAL);
    assert_int_equal(rc[1], TR_OK);
    /* The table it could take is the one its messages go through. */
    assert_int_equal(tr_send(ctx, a, MSG_TICK, NULL, 0), TR_OK);
    assert_true(tr_test_wait_handled(sys, 1, 5000));
    assert_int_equal(tr_load_relaxed(&ticks), 10);
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misuse_oneshot_closed_receiver_returns_at_once),
        cmocka_unit_test(test_misuse_oneshot_close_wakes_a_waiting_receive),
        cmocka_unit_test(test_misuse_subscriptions_refuse_reserved_types),
        cmocka_unit_test(test_misuse_broadcast_capacity_is_bounded),
        cmocka_unit_test(test_misuse_mailbox_bound_is_checked),
        cmocka_unit_test(test_misuse_worker_count_is_bounded),
        cmocka_unit_test(test_misuse_system_start_on_a_worker_is_refused),
        cmocka_unit_test(test_misuse_time_saturates_instead_of_wrapping),
        cmocka_unit_test(test_misuse_register_forged_address_leaks_nothing),
        cmocka_unit_test(
            test_misuse_monitor_of_a_slot_never_used_leaks_nothing),
        cmocka_unit_test(test_misuse_failure_codes_never_mean_ignore),
        cmocka_unit_test(
            test_misuse_waiting_on_the_system_from_init_is_refused),
        cmocka_unit_test(
            test_misuse_dispatch_table_without_its_rows_is_refused),
    };
    return cmocka_run_group_tests_name("misuse", tests, NULL, NULL);
}
