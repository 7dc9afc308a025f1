/*
 * Faults: allocation failure at every API boundary leaves nothing half-done,
 * and shutdown in the middle of heavy work stops everything cleanly.
 */
#include "support/tr_test.h"

#include "common/tr_alloc.h"

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
            assert_int_equal(tr_system_shutdown(sys, 1000), TR_OK);
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
        assert_int_equal(tr_system_shutdown(sys, 10000), TR_OK);
        assert_int_equal(final.live_actors, 0);
        assert_true(final.spawned > 1000);
        assert_int_equal(final.failed, 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_oom_in_spawn_and_send_reports_enomem),
        cmocka_unit_test(test_fault_oom_creating_a_mailbox_or_system),
        cmocka_unit_test(test_fault_shutdown_during_work_stops_everything),
    };
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}
