/*
 * Faults: allocation failure at every API boundary leaves nothing half-done,
 * and shutdown in the middle of heavy work stops everything cleanly.
 */
#include "support/tr_test.h"

#include "actors/actor.h"
#include "common/tr_alloc.h"

#include <pthread.h>
#include <sched.h>

enum { MSG_WORK = 1 };

static int
noop_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static const tr_behaviour noop_behaviour = {
    .name = "noop",
    .state_size = 64,
    .handle = noop_handle,
};

static void
test_fault_oom_in_spawn_and_send_reports_enomem(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    int v = 1;
    int enomem = 0;

    (void)state;
    assert_int_equal(tr_spawn(ctx, &noop_behaviour, NULL, NULL, &a), TR_OK);
    /* Fail the n-th allocation for growing n: each call either succeeds or
     * reports TR_ENOMEM, and the system stays usable. */
    for (long n = 0; n < 4; n++) {
        tr__alloc_fail_after(n);
        tr_addr b = TR_ADDR_NONE;
        int rc = tr_spawn(ctx, &noop_behaviour, NULL, NULL, &b);
        assert_true(rc == TR_OK || rc == TR_ENOMEM);
        if (rc == TR_ENOMEM) {
            enomem++;
            assert_true(tr_addr_is_none(b));
        }
        rc = tr_send(ctx, a, MSG_WORK, &v, sizeof(v));
        assert_true(rc == TR_OK || rc == TR_ENOMEM);
        enomem += rc == TR_ENOMEM;
        tr__alloc_fail_after(-1);
    }
    assert_true(enomem > 0);
    assert_null((tr__alloc_fail_after(0), tr_buf_alloc(8)));
    tr__alloc_fail_after(-1);
    /* Still working after the faults. */
    assert_int_equal(tr_send(ctx, a, MSG_WORK, &v, sizeof(v)), TR_OK);
    tr_test_shutdown(sys);
}

/* A send whose envelope finds no memory takes no room: the receiver's
 * length and bound count only what was queued. */
static void
test_fault_oom_in_send_takes_no_room(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_spawn_opts opts = {.mailbox_cap = 1};
    tr_actor_stats st;
    tr_addr a;
    int v = 1;

    (void)state;
    assert_int_equal(tr_spawn(ctx, &noop_behaviour, NULL, &opts, &a), TR_OK);
    for (int i = 0; i < 3; i++) {
        tr__alloc_fail_after(0);
        int rc = tr_send(ctx, a, MSG_WORK, &v, sizeof(v));
        tr__alloc_fail_after(-1);
        assert_int_equal(rc, TR_ENOMEM);
    }
    assert_int_equal(tr_actor_stats_get(sys, a, &st), TR_OK);
    assert_int_equal(st.mailbox_len, 0);
    assert_int_equal(tr_send(ctx, a, MSG_WORK, &v, sizeof(v)), TR_OK);
    assert_true(tr_test_wait_handled(sys, 1, 5000));
    tr_test_shutdown(sys);
}

static int
echo_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_reply(ctx, msg, msg->data, msg->size) != TR_OK) {
        return TR_OK; /* out of memory: the call ends closed */
    }
    return TR_OK;
}

static const tr_behaviour echo_behaviour = {.name = "echo",
                                            .handle = echo_handle};

/* A timed ask whose timer finds no memory ends at once with TR_ENOMEM (or
 * its reply won the race): never a "timeout" that never ran. */
static void
test_fault_oom_arming_an_ask_timeout_is_enomem(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr echo;
    int seen_enomem = 0;

    (void)state;
    assert_int_equal(tr_spawn(ctx, &echo_behaviour, NULL, NULL, &echo), TR_OK);
    for (long n = 0; n < 8; n++) {
        int v = (int)n;
        int got = -1;
        size_t len = 0;
        tr__alloc_fail_after(n);
        int rc = tr_test_ask(ctx, echo, MSG_WORK, &v, sizeof(v), &got,
                             sizeof(got), &len, 60000);
        tr__alloc_fail_after(-1);
        if (rc == TR_ETIMEDOUT) {
            fail_msg("failing allocation %ld: TR_ETIMEDOUT long before the "
                     "60 s timeout",
                     n);
        }
        assert_true(rc == TR_OK || rc == TR_ENOMEM || rc == TR_ECLOSED);
        if (rc == TR_OK) {
            assert_int_equal(got, v);
        }
        seen_enomem += rc == TR_ENOMEM;
    }
    assert_true(seen_enomem > 0);
    tr_test_shutdown(sys);
}

static void
test_fault_oom_creating_a_mailbox_or_system(void **state)
{
    tr_mailbox *mb = NULL;
    tr_system *sys = NULL;

    (void)state;
    tr__alloc_fail_after(0);
    assert_int_equal(tr_mailbox_create(0, &mb), TR_ENOMEM);
    assert_null(mb);
    tr__alloc_fail_after(-1);
    for (long n = 0; n < 8; n++) {
        tr__alloc_fail_after(n);
        int rc = tr_system_start(NULL, &sys);
        tr__alloc_fail_after(-1);
        if (rc == TR_OK) {
            assert_int_equal(tr_system_shutdown(sys, tr_ms(1000)), TR_OK);
        } else {
            assert_int_equal(rc, TR_ENOMEM);
        }
    }
}

/* Each message spawns a child, forwards the work to it and stops: chains
 * of short-lived actors, so shutdown lands in the middle of spawning,
 * sending and stopping. */
typedef struct chain_state {
    int depth;
} chain_state;

static int chain_handle(tr_ctx *ctx, void *state, const tr_msg *msg);

static const tr_behaviour chain_behaviour = {
    .name = "chain",
    .state_size = sizeof(chain_state),
    .handle = chain_handle,
};

static int
chain_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_addr child;
    int rc;

    (void)state;
    (void)msg;
    rc = tr_spawn(ctx, &chain_behaviour, NULL, NULL, &child);
    if (rc == TR_ESHUTDOWN) {
        return TR_OK;
    }
    if (rc != TR_OK) {
        return rc;
    }
    rc = tr_send(ctx, child, MSG_WORK, NULL, 0);
    if (rc != TR_OK && rc != TR_ENOACTOR) { /* shutdown stopped the child */
        return rc;
    }
    return tr_stop(ctx);
}

static void
test_fault_shutdown_during_work_stops_everything(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system_stats final;

    (void)state;
    cfg.final_stats = &final;
    for (int round = 0; round < 5; round++) {
        tr_system *sys = tr_test_system_cfg(&cfg);
        tr_ctx *ctx = tr_system_ctx(sys);
        for (int chain = 0; chain < 8; chain++) {
            tr_addr root;
            assert_int_equal(tr_spawn(ctx, &chain_behaviour, NULL, NULL, &root),
                             TR_OK);
            assert_int_equal(tr_send(ctx, root, MSG_WORK, NULL, 0), TR_OK);
        }
        assert_true(
            tr_test_wait_handled(sys, 1000u * (unsigned)(round + 1), 10000));
        assert_int_equal(tr_system_shutdown(sys, tr_ms(10000)), TR_OK);
        assert_int_equal(final.live_actors, 0);
        assert_true(final.spawned > 1000);
        assert_int_equal(final.failed, 0);
    }
}

/*
 * Plain threads blocked in tr_send on a full bounded mailbox when shutdown
 * begins. Each must come back with TR_ESHUTDOWN (it was not admitted when
 * shutdown began) before anything is freed, and every message that was
 * admitted must be handled or counted as a dead letter.
 */
enum { MSG_HOLD = 2, BLOCKED_SENDERS = 4 };

/* Holds its worker until shutdown has begun, then lets the stop through. */
static int
hold_until_shutdown(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_system *sys = tr_ctx_system(ctx);
    tr_atomic(int) *held = *(tr_atomic(int) **)state;

    if (msg->type == MSG_HOLD) {
        tr_store_seqcst(held, 1);
        while (!tr_load_acq(&sys->shutting_down)) {
            sched_yield();
        }
    }
    return TR_OK;
}

static int
hold_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, &arg, sizeof(arg));
    return TR_OK;
}

static const tr_behaviour holder_behaviour = {
    .name = "holder",
    .state_size = sizeof(void *),
    .init = hold_init,
    .handle = hold_until_shutdown,
};

typedef struct blocked {
    tr_ctx *ctx;
    tr_addr to;
    int rc;
} blocked;

static void *
send_blocked(void *p)
{
    blocked *b = p;
    int v = 7;
    b->rc = tr_send_wait(b->ctx, b->to, MSG_WORK, &v, sizeof(v), TR_FOREVER);
    return NULL;
}

static bool
flag_set(void *p)
{
    return tr_load_seqcst((tr_atomic(int) *)p) != 0;
}

typedef struct waiters_arg {
    tr_system *sys;
    uint32_t n;
} waiters_arg;

static bool
all_waiting(void *p)
{
    waiters_arg *w = p;
    return tr_load_seqcst(&w->sys->room_waiters) == w->n;
}

static void
test_fault_shutdown_kicks_out_blocked_senders(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system_stats final;
    long rounds = (long)(intptr_t)*state;
    int late_ok = 0;

    cfg.workers = 2;
    cfg.final_stats = &final;
    for (long round = 0; round < rounds; round++) {
        tr_system *sys = tr_test_system_cfg(&cfg);
        tr_ctx *ctx = tr_system_ctx(sys);
        tr_spawn_opts opts = {.mailbox_cap = 1};
        tr_atomic(int) held;
        blocked b[BLOCKED_SENDERS];
        pthread_t t[BLOCKED_SENDERS];
        tr_addr a;

        tr_init_relaxed(&held, 0);
        assert_int_equal(
            tr_spawn(ctx, &holder_behaviour, (void *)&held, &opts, &a), TR_OK);
        assert_int_equal(tr_send(ctx, a, MSG_HOLD, NULL, 0), TR_OK);
        assert_true(tr_test_wait_until(flag_set, (void *)&held, 5000));
        assert_int_equal(tr_send(ctx, a, MSG_WORK, NULL, 0), TR_OK); /* full */
        for (int i = 0; i < BLOCKED_SENDERS; i++) {
            b[i] = (blocked){ctx, a, 1};
            assert_int_equal(pthread_create(&t[i], NULL, send_blocked, &b[i]),
                             0);
        }
        waiters_arg w = {sys, BLOCKED_SENDERS};
        assert_true(tr_test_wait_until(all_waiting, &w, 5000));
        assert_int_equal(tr_system_shutdown(sys, tr_ms(5000)), TR_OK);
        for (int i = 0; i < BLOCKED_SENDERS; i++) {
            pthread_join(t[i], NULL);
            late_ok += b[i].rc == TR_OK;
            assert_true(b[i].rc == TR_OK || b[i].rc == TR_ESHUTDOWN);
        }
        /* Nothing admitted is lost: the hold, the filler and any late
         * admission were handled or counted. */
        assert_int_equal(final.messages_handled + final.dead_letters,
                         2 + (uint64_t)late_ok);
        assert_int_equal(final.live_actors, 0);
    }
    if (late_ok != 0) {
        fail_msg("%d blocked sends returned TR_OK after shutdown began",
                 late_ok);
    }
}

/*
 * Plain threads call into the system while it shuts down: once a call has
 * seen shutdown, every call on the system returns TR_ESHUTDOWN, none
 * waits, and nothing admitted is lost. A keeper actor's `stop` (run on a
 * worker while shutdown waits for the actors) holds shutdown until every
 * thread is done, so that no call is made after shutdown has returned
 * (the one thing a program must never do).
 */
enum { CALLERS = 3, CALLS = 11 };

static tr_atomic(int) callers_done;

static void
keeper_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    struct timespec pause = {0, 1000000};
    (void)ctx;
    (void)state;
    (void)exit;
    for (int i = 0; i < 10000 && tr_load_acq(&callers_done) < CALLERS; i++) {
        nanosleep(&pause, NULL);
    }
}

static const tr_behaviour keeper_behaviour = {
    .name = "keeper",
    .handle = noop_handle,
    .stop = keeper_stop,
};

typedef struct caller {
    tr_system *sys;
    tr_addr to;
    long ok_sends;
    int after[CALLS]; /* each call's result once shutdown was seen */
} caller;

/* Each call once; returns how many returned TR_ESHUTDOWN. */
static int
call_each(caller *c, int *rc)
{
    tr_ctx *ctx = tr_system_ctx(c->sys);
    tr_timer t = {0};
    tr_actor_stats ast;
    tr_system_stats st;
    size_t len;
    int v = 1;
    int n = 0;

    rc[0] = tr_send(ctx, c->to, MSG_WORK, &v, sizeof(v));
    c->ok_sends += rc[0] == TR_OK;
    rc[1] = tr_send(ctx, c->to, MSG_WORK, &v, sizeof(v));
    c->ok_sends += rc[1] == TR_OK;
    void *buf = tr_buf_alloc(sizeof(v));
    rc[2] = tr_send_buf(ctx, c->to, MSG_WORK, buf);
    if (rc[2] != TR_OK) {
        tr_buf_free(buf);
    }
    c->ok_sends += rc[2] == TR_OK;
    rc[3] = tr_spawn(ctx, &noop_behaviour, NULL, NULL, NULL);
    rc[4] = tr_send_after(ctx, c->to, MSG_WORK, NULL, 0, 1000, &t);
    rc[5] = tr_timer_cancel(c->sys, t);
    rc[6] = tr_test_ask(ctx, c->to, MSG_WORK, NULL, 0, NULL, 0, &len, 1);
    rc[7] = tr_actor_stop(ctx, (tr_addr){0});
    rc[8] = tr_system_stats_get(c->sys, &st);
    rc[9] = tr_actor_stats_get(c->sys, c->to, &ast);
    rc[10] = tr_system_wait(c->sys, tr_ms(1));
    for (int i = 0; i < CALLS; i++) {
        n += rc[i] == TR_ESHUTDOWN;
    }
    return n;
}

static void *
call_until_shutdown(void *p)
{
    caller *c = p;
    int rc[CALLS];

    while (call_each(c, rc) == 0) {
    }
    /* Shutdown has begun: from now on every call says so. */
    (void)call_each(c, c->after);
    tr_faa_seqcst(&callers_done, 1);
    return NULL;
}

static void
test_fault_calls_during_shutdown_return_eshutdown(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system_stats final;
    long rounds = (long)(intptr_t)*state / 5 + 1;

    cfg.workers = 2;
    cfg.final_stats = &final;
    for (long round = 0; round < rounds; round++) {
        tr_system *sys = tr_test_system_cfg(&cfg);
        tr_ctx *ctx = tr_system_ctx(sys);
        tr_spawn_opts opts = {.mailbox_cap = 4};
        caller c[CALLERS];
        pthread_t t[CALLERS];
        tr_addr target;
        long ok = 0;

        tr_store_relaxed(&callers_done, 0);
        assert_int_equal(tr_spawn(ctx, &keeper_behaviour, NULL, NULL, NULL),
                         TR_OK);
        assert_int_equal(tr_spawn(ctx, &noop_behaviour, NULL, &opts, &target),
                         TR_OK);
        for (int i = 0; i < CALLERS; i++) {
            c[i] = (caller){.sys = sys, .to = target};
            assert_int_equal(
                pthread_create(&t[i], NULL, call_until_shutdown, &c[i]), 0);
        }
        assert_true(tr_test_wait_handled(sys, 100, 10000));
        assert_int_equal(tr_system_shutdown(sys, tr_ms(15000)), TR_OK);
        for (int i = 0; i < CALLERS; i++) {
            pthread_join(t[i], NULL);
            ok += c[i].ok_sends;
            for (int k = 0; k < CALLS; k++) {
                if (c[i].after[k] != TR_ESHUTDOWN) {
                    fail_msg("call %d returned %s during shutdown", k,
                             tr_errname(c[i].after[k]));
                }
            }
        }
        /* Every send that returned TR_OK was handled or counted as a dead
         * letter (the asks' requests add to the left side only). */
        assert_true(final.messages_handled + final.dead_letters >=
                    (uint64_t)ok);
        assert_int_equal(final.live_actors, 0);
    }
}

/*
 * Reply handles and oneshot subscriptions racing the shutdown that ends
 * them: a thread answers taken handles and sends on oneshots that actors
 * subscribed to while another shuts the system down (and goes on after it
 * has returned, which is allowed for handles and oneshots). Each call ends
 * exactly once, either way: the reply reaches the asker (TR_OK on both
 * sides) or shutdown ended the call first (TR_ECLOSED on both sides); a
 * send on a oneshot is TR_OK or TR_ECLOSED; nothing touches freed memory.
 */
enum { MSG_STASH = 3, MSG_SUBSCRIBE = 4, RACERS = 6 };

typedef struct stash {
    tr_atomic(tr_reply_to *) handle[RACERS];
    tr_oneshot_tx *tx[RACERS];
    tr_oneshot_rx *rx[RACERS];
    tr_atomic(int) ready;
    tr_atomic(int) asked;
    tr_atomic(int) go;
    long delay_us;
    int reply_rc[RACERS];
    int send_rc[RACERS];
} stash;

static stash *the_stash;

static int
stash_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int i;
    (void)state;
    memcpy(&i, msg->data, sizeof(i));
    if (msg->type == MSG_STASH) {
        tr_store_rel(&the_stash->handle[i], tr_reply_take(ctx, msg));
    } else if (tr_oneshot_subscribe_actor(ctx, the_stash->rx[i], 1, 2) !=
               TR_OK) {
        return TR_EINVAL;
    }
    tr_faa_seqcst(&the_stash->ready, 1);
    return TR_OK;
}

static const tr_behaviour stasher_behaviour = {
    .name = "stasher",
    .handle = stash_handle,
};

typedef struct racer_ask {
    tr_ctx *ctx;
    tr_addr to;
    int i;
    int rc;
    int got;
} racer_ask;

static void *
ask_stash(void *p)
{
    racer_ask *a = p;
    size_t len;
    a->rc = tr_test_ask(a->ctx, a->to, MSG_STASH, &a->i, sizeof(a->i), &a->got,
                        sizeof(a->got), &len, 0);
    tr_faa_seqcst(&the_stash->asked, 1);
    return NULL;
}

static void *
answer_all(void *p)
{
    stash *st = p;
    while (tr_load_acq(&st->go) == 0) {
    }
    /* Start somewhere in shutdown's few milliseconds. */
    struct timespec delay = {0, st->delay_us * 1000L};
    nanosleep(&delay, NULL);
    for (int i = 0; i < RACERS; i++) {
        st->reply_rc[i] =
            tr_reply_send(tr_load_acq(&st->handle[i]), &i, sizeof(i));
        st->send_rc[i] = tr_oneshot_send(st->tx[i], &i);
        tr_oneshot_tx_destroy(st->tx[i]);
    }
    return NULL;
}

static bool
all_ready(void *p)
{
    return tr_load_seqcst(&((stash *)p)->ready) == 2 * RACERS;
}

static bool
all_asked(void *p)
{
    return tr_load_seqcst(&((stash *)p)->asked) == RACERS;
}

static void
test_fault_handles_and_oneshots_race_shutdown(void **state)
{
    long rounds = (long)(intptr_t)*state;
    int replied = 0;

    for (long round = 0; round < rounds; round++) {
        tr_system *sys = tr_test_system(2);
        tr_ctx *ctx = tr_system_ctx(sys);
        stash st = {0};
        racer_ask asks[RACERS];
        pthread_t askers[RACERS];
        pthread_t answerer;
        tr_addr a;

        the_stash = &st;
        assert_int_equal(tr_spawn(ctx, &stasher_behaviour, NULL, NULL, &a),
                         TR_OK);
        for (int i = 0; i < RACERS; i++) {
            assert_int_equal(
                tr_oneshot_create(sizeof(int), &st.tx[i], &st.rx[i]), TR_OK);
            assert_int_equal(tr_send(ctx, a, MSG_SUBSCRIBE, &i, sizeof(i)),
                             TR_OK);
            asks[i] = (racer_ask){.ctx = ctx, .to = a, .i = i, .got = -1};
            assert_int_equal(
                pthread_create(&askers[i], NULL, ask_stash, &asks[i]), 0);
        }
        assert_true(tr_test_wait_until(all_ready, &st, 5000));
        st.delay_us = (round % 20) * 200;
        assert_int_equal(pthread_create(&answerer, NULL, answer_all, &st), 0);
        tr_store_rel(&st.go, 1);
        tr_test_shutdown(sys);
        pthread_join(answerer, NULL);
        if (!tr_test_wait_until(all_asked, &st, 5000)) {
            fail_msg("an ask still waits after shutdown returned");
        }
        for (int i = 0; i < RACERS; i++) {
            pthread_join(askers[i], NULL);
            if (st.reply_rc[i] == TR_OK) {
                replied++;
                assert_int_equal(asks[i].rc, TR_OK);
                assert_int_equal(asks[i].got, i);
            } else {
                assert_int_equal(st.reply_rc[i], TR_ECLOSED);
                assert_int_equal(asks[i].rc, TR_ECLOSED);
            }
            assert_true(st.send_rc[i] == TR_OK || st.send_rc[i] == TR_ECLOSED);
            tr_oneshot_rx_destroy(st.rx[i]);
        }
    }
    print_message("%d of %ld replies beat the shutdown\n", replied,
                  rounds * RACERS);
}

int
main(int argc, char **argv)
{
    long rounds = tr_test_arg(argc, argv, 1, 50);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_oom_in_spawn_and_send_reports_enomem),
        cmocka_unit_test(test_fault_oom_in_send_takes_no_room),
        cmocka_unit_test(test_fault_oom_arming_an_ask_timeout_is_enomem),
        cmocka_unit_test(test_fault_oom_creating_a_mailbox_or_system),
        cmocka_unit_test(test_fault_shutdown_during_work_stops_everything),
        cmocka_unit_test_prestate(test_fault_shutdown_kicks_out_blocked_senders,
                                  (void *)(intptr_t)rounds),
        cmocka_unit_test_prestate(
            test_fault_calls_during_shutdown_return_eshutdown,
            (void *)(intptr_t)rounds),
        cmocka_unit_test_prestate(test_fault_handles_and_oneshots_race_shutdown,
                                  (void *)(intptr_t)rounds),
    };
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}
