/*
 * Waiting for an actor from a plain thread (tr_actor_wait), closing an
 * actor after what is queued (tr_actor_close), and the one rule of every
 * call that waits: refused on a worker of any system and in an actor's
 * callbacks.
 */
#include "actors/ext.h"
#include "common/tr_park.h"
#include "support/tr_test.h"

#include <pthread.h>

enum {
    MSG_WORK = 1,
    MSG_FAIL = 2,
    MSG_STOP = 3,
    MSG_HOLD = 4,
    MSG_TRY = 5,
    MSG_ELSEWHERE = 6
};

typedef struct {
    tr_atomic(uint64_t) handled;
    tr_atomic(int) gate;
    tr_atomic(int) holding;
    tr_atomic(int) wait_rc; /* tr_actor_wait from a handler */
} probe;

static probe pr;

/* The calls that wait, made where they must not be (a worker of another
 * system, an actor's `init` on a plain thread), on `other`: what each
 * returned, 1 until it has. */
enum { N_WAITS = 6 };
static struct {
    tr_system *other;
    tr_addr target; /* an actor of `other` */
    tr_addr sup;    /* a supervisor of `other` */
    tr_mailbox *mb;
    tr_atomic(int) rc[N_WAITS];
    tr_atomic(int) done;
} elsewhere;

static void
wait_elsewhere(void)
{
    tr_ctx *o = tr_system_ctx(elsewhere.other);
    tr_reply_buf reply = {0};
    tr_child_counts counts;
    char buf[8];
    size_t len;
    int rc[N_WAITS];

    rc[0] = tr_send_wait(o, elsewhere.target, MSG_WORK, NULL, 0, tr_ms(10));
    rc[1] =
        tr_ask_wait(o, elsewhere.target, MSG_WORK, NULL, 0, &reply, tr_ms(10));
    rc[2] = tr_actor_wait(o, elsewhere.target, tr_ms(10), NULL);
    rc[3] = tr_system_wait(elsewhere.other, tr_ms(10));
    rc[4] = tr_sup_count_children_wait(o, elsewhere.sup, &counts, tr_ms(10));
    rc[5] =
        tr_mailbox_recv_wait(elsewhere.mb, buf, sizeof(buf), &len, tr_ms(10));
    for (int i = 0; i < N_WAITS; i++) {
        tr_store_relaxed(&elsewhere.rc[i], rc[i]);
    }
    tr_store_rel(&elsewhere.done, 1);
}

static int
worker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    switch (msg->type) {
    case MSG_FAIL:
        return tr_fail(ctx, -42, "asked to fail");
    case MSG_STOP:
        return tr_stop(ctx);
    case MSG_HOLD: {
        uint64_t deadline = tr__now_ns() + 10000000000u;
        tr_store_rel(&pr.holding, 1);
        while (tr_load_acq(&pr.gate) == 0 && tr__now_ns() < deadline) {
        }
        return TR_OK;
    }
    case MSG_TRY:
        tr_store_rel(&pr.wait_rc,
                     tr_actor_wait(ctx, tr_self(ctx), tr_ms(10), NULL) + 1000);
        return TR_OK;
    case MSG_ELSEWHERE:
        wait_elsewhere();
        return TR_OK;
    default:
        tr_faa_relaxed(&pr.handled, 1);
        return TR_OK;
    }
}

static const tr_behaviour worker = {.name = "worker", .handle = worker_handle};

/* Its `init` runs on the spawning thread, a plain one, and makes the calls
 * that wait with its own context. */
static int
waiter_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_reply_buf reply = {0};
    tr_child_counts counts;

    (void)state;
    (void)arg;
    tr_store_relaxed(
        &elsewhere.rc[0],
        tr_send_wait(ctx, elsewhere.target, MSG_WORK, NULL, 0, tr_ms(10)));
    tr_store_relaxed(&elsewhere.rc[1],
                     tr_ask_wait(ctx, elsewhere.target, MSG_WORK, NULL, 0,
                                 &reply, tr_ms(10)));
    tr_store_relaxed(&elsewhere.rc[2],
                     tr_actor_wait(ctx, elsewhere.target, tr_ms(10), NULL));
    tr_store_relaxed(
        &elsewhere.rc[4],
        tr_sup_count_children_wait(ctx, elsewhere.sup, &counts, tr_ms(10)));
    return TR_OK;
}

static const tr_behaviour waiting_init = {
    .name = "waiting_init", .init = waiter_init, .handle = worker_handle};

static bool
holding(void *arg)
{
    (void)arg;
    return tr_load_acq(&pr.holding) != 0;
}

static int
setup(void **state)
{
    memset(&pr, 0, sizeof(pr));
    *state = tr_test_system(2);
    return 0;
}

static int
teardown(void **state)
{
    tr_test_shutdown(*state);
    return 0;
}

static tr_addr
spawn(tr_system *sys, uint32_t cap)
{
    tr_addr a;
    tr_spawn_opts o = {.mailbox_cap = cap};
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &worker, NULL, &o, &a),
                     TR_OK);
    return a;
}

/* True once a thread waits for `a` (read through the runtime's record). */
static bool
has_waiter(tr_system *sys, tr_addr a)
{
    tr_actor *slot = tr__table_slot(sys->table, a.id);
    tr_ext *x = slot != NULL ? tr_load_acq(&slot->ext) : NULL;
    bool on = false;
    if (x != NULL) {
        pthread_mutex_lock(&x->lock);
        on = x->waiters != NULL;
        pthread_mutex_unlock(&x->lock);
    }
    return on;
}

typedef struct {
    tr_system *sys;
    tr_addr who;
} opener_arg;

/* Opens the gate once the test thread is waiting for the actor. */
static void *
opener(void *arg)
{
    opener_arg *o = arg;
    uint64_t deadline = tr__now_ns() + 5000000000u;
    while (!has_waiter(o->sys, o->who) && tr__now_ns() < deadline) {
    }
    tr_store_rel(&pr.gate, 1);
    return NULL;
}

/* The actor `a` is held at the gate: wait for it while the gate opens only
 * after this thread waits, so that its end cannot come first. */
static int
wait_opening_gate(tr_system *sys, tr_addr a, tr_signal *sig)
{
    opener_arg o = {sys, a};
    pthread_t t;
    assert_true(tr_test_wait_until(holding, NULL, 5000));
    assert_int_equal(pthread_create(&t, NULL, opener, &o), 0);
    int rc = tr_actor_wait(tr_system_ctx(sys), a, tr_ms(10000), sig);
    pthread_join(t, NULL);
    return rc;
}

static void
test_wait_returns_the_failure_reason(void **state)
{
    tr_system *sys = *state;
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, 0);
    tr_signal sig;

    assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_FAIL, NULL, 0), TR_OK);
    assert_int_equal(wait_opening_gate(sys, a, &sig), TR_OK);
    assert_int_equal(sig.kind, TR_EXIT_FAILED);
    assert_int_equal(sig.code, -42);
    assert_string_equal(sig.text, "asked to fail");
    assert_true(tr_addr_eq(sig.who, a));
    assert_int_equal(tr_actor_wait(ctx, a, tr_ms(5000), &sig), TR_ENOACTOR);
}

static void
test_wait_times_out_and_leaves_the_actor_alone(void **state)
{
    tr_system *sys = *state;
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, 0);
    tr_signal sig;
    uint64_t t0 = tr__now_ns();

    assert_int_equal(tr_actor_wait(ctx, a, tr_ms(50), &sig), TR_ETIMEDOUT);
    assert_true(tr__now_ns() - t0 >= 50000000u);
    assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_STOP, NULL, 0), TR_OK);
    assert_int_equal(wait_opening_gate(sys, a, &sig), TR_OK);
    assert_int_equal(sig.kind, TR_EXIT_NORMAL);
    assert_int_equal(tr_load_relaxed(&pr.handled), 1);
}

static void
test_wait_is_refused_on_a_worker(void **state)
{
    tr_system *sys = *state;
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, 0);

    assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_TRY, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_STOP, NULL, 0), TR_OK);
    assert_int_equal(wait_opening_gate(sys, a, NULL), TR_OK);
    assert_int_equal(tr_load_acq(&pr.wait_rc), TR_ESTATE + 1000);
    assert_int_equal(tr_actor_wait(NULL, a, tr_ms(1), NULL), TR_EINVAL);
}

typedef struct {
    tr_system *sys;
    tr_addr who;
    int rc;
    tr_signal sig;
} waiter_arg;

static void *
waiter(void *arg)
{
    waiter_arg *w = arg;
    w->rc = tr_actor_wait(tr_system_ctx(w->sys), w->who, TR_FOREVER, &w->sig);
    return NULL;
}

static void
test_wait_many_threads_on_one_actor(void **state)
{
    tr_system *sys = *state;
    tr_addr a = spawn(sys, 0);
    enum { N = 8 };
    pthread_t t[N];
    waiter_arg w[N];
    tr_actor_stats st;

    for (int i = 0; i < N; i++) {
        w[i] = (waiter_arg){.sys = sys, .who = a, .rc = 1};
        assert_int_equal(pthread_create(&t[i], NULL, waiter, &w[i]), 0);
    }
    /* Let them register (a late one gets TR_ENOACTOR, also an answer). */
    assert_int_equal(tr_actor_wait(tr_system_ctx(sys), a, tr_ms(50), NULL),
                     TR_ETIMEDOUT);
    assert_int_equal(tr_actor_stop(tr_system_ctx(sys), a), TR_OK);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_true(w[i].rc == TR_OK || w[i].rc == TR_ENOACTOR);
        if (w[i].rc == TR_OK) {
            assert_int_equal(w[i].sig.kind, TR_EXIT_SHUTDOWN);
        }
    }
    assert_int_equal(tr_actor_stats_get(sys, a, &st), TR_ENOACTOR);
}

static void
test_close_drains_what_was_queued_then_stops(void **state)
{
    tr_system *sys = *state;
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, 0);
    tr_signal sig;

    assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_OK);
    }
    assert_int_equal(tr_actor_close(ctx, a), TR_OK);
    assert_int_equal(tr_actor_close(ctx, a), TR_OK); /* idempotent */
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_ECLOSED);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_ECLOSED);
    assert_int_equal(wait_opening_gate(sys, a, &sig), TR_OK);
    assert_int_equal(sig.kind, TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_load_relaxed(&pr.handled), 1000);
    assert_int_equal(tr_actor_close(ctx, a), TR_ENOACTOR);
}

typedef struct {
    tr_system *sys;
    tr_addr to;
    tr_atomic(int) rc;
} sender_arg;

static void *
blocked_sender(void *arg)
{
    sender_arg *s = arg;
    tr_store_rel(&s->rc, tr_send_wait(tr_system_ctx(s->sys), s->to, MSG_WORK,
                                      NULL, 0, TR_FOREVER));
    return NULL;
}

static void
test_close_wakes_a_sender_blocked_on_a_full_mailbox(void **state)
{
    tr_system *sys = *state;
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, 2);
    sender_arg s = {.sys = sys, .to = a};
    pthread_t t;

    tr_init_relaxed(&s.rc, 1);
    assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(holding, NULL, 5000));
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_EFULL);
    assert_int_equal(pthread_create(&t, NULL, blocked_sender, &s), 0);
    /* Blocked for room: the close refuses it, and the marker itself is
     * never refused by the bound. */
    assert_int_equal(tr_actor_wait(ctx, a, tr_ms(50), NULL), TR_ETIMEDOUT);
    assert_int_equal(tr_load_acq(&s.rc), 1);
    assert_int_equal(tr_actor_close(ctx, a), TR_OK);
    pthread_join(t, NULL);
    assert_int_equal(tr_load_acq(&s.rc), TR_ECLOSED);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_ECLOSED);
    assert_int_equal(wait_opening_gate(sys, a, NULL), TR_OK);
    assert_int_equal(tr_load_relaxed(&pr.handled), 2);
}

static void
test_wait_ends_when_the_system_shuts_down(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_addr a = spawn(sys, 0);
    waiter_arg w = {.sys = sys, .who = a, .rc = 1};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
    /* Shutdown ends every actor, so the waiter gets its answer, and the
     * system is freed only after it has left. */
    assert_int_equal(tr_actor_wait(tr_system_ctx(sys), a, tr_ms(50), NULL),
                     TR_ETIMEDOUT);
    tr_test_shutdown(sys);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, TR_OK);
    assert_int_equal(w.sig.kind, TR_EXIT_SHUTDOWN);
}

/* A supervisor with no children, for the supervisor's calls. */
static const tr_sup_spec empty_sup = {.name = "empty",
                                      .strategy = TR_ONE_FOR_ONE};

static void
elsewhere_begin(tr_system *other)
{
    elsewhere.other = other;
    elsewhere.target = spawn(other, 0);
    assert_int_equal(
        tr_sup_start(tr_system_ctx(other), &empty_sup, NULL, &elsewhere.sup),
        TR_OK);
    assert_int_equal(tr_mailbox_create(0, &elsewhere.mb), TR_OK);
    for (int i = 0; i < N_WAITS; i++) {
        tr_store_relaxed(&elsewhere.rc[i], 1);
    }
    tr_store_relaxed(&elsewhere.done, 0);
}

static bool
elsewhere_done(void *arg)
{
    (void)arg;
    return tr_load_acq(&elsewhere.done) != 0;
}

static void
test_waits_are_refused_on_a_worker_of_any_system(void **state)
{
    tr_system *sys = *state;
    tr_system *other = tr_test_system(1);

    elsewhere_begin(other);
    assert_int_equal(
        tr_send(tr_system_ctx(sys), spawn(sys, 0), MSG_ELSEWHERE, NULL, 0),
        TR_OK);
    assert_true(tr_test_wait_until(elsewhere_done, NULL, 5000));
    for (int i = 0; i < N_WAITS; i++) {
        assert_int_equal(tr_load_relaxed(&elsewhere.rc[i]), TR_ESTATE);
    }
    tr_mailbox_destroy(elsewhere.mb);
    tr_test_shutdown(other);
}

static void
test_waits_are_refused_in_init_on_a_plain_thread(void **state)
{
    tr_system *sys = *state;
    tr_addr a;

    elsewhere_begin(sys);
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &waiting_init, NULL, NULL, &a), TR_OK);
    /* tr_send_wait, tr_ask_wait, tr_actor_wait, a supervisor's call. */
    assert_int_equal(tr_load_relaxed(&elsewhere.rc[0]), TR_ESTATE);
    assert_int_equal(tr_load_relaxed(&elsewhere.rc[1]), TR_ESTATE);
    assert_int_equal(tr_load_relaxed(&elsewhere.rc[2]), TR_ESTATE);
    assert_int_equal(tr_load_relaxed(&elsewhere.rc[4]), TR_ESTATE);
    tr_mailbox_destroy(elsewhere.mb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wait_returns_the_failure_reason,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_wait_times_out_and_leaves_the_actor_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_is_refused_on_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wait_many_threads_on_one_actor,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_close_drains_what_was_queued_then_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_close_wakes_a_sender_blocked_on_a_full_mailbox, setup,
            teardown),
        cmocka_unit_test(test_wait_ends_when_the_system_shuts_down),
        cmocka_unit_test_setup_teardown(
            test_waits_are_refused_on_a_worker_of_any_system, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_waits_are_refused_in_init_on_a_plain_thread, setup, teardown),
    };
    return cmocka_run_group_tests_name("wait", tests, NULL, NULL);
}
