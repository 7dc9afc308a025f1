/*
 * Signal order between two actors (Erlang's guarantee): the messages an
 * actor sent before it ended arrive before the DOWN of a monitor, and
 * before the EXIT that a trapping linked actor receives.
 */
#include "common/tr_park.h"
#include "support/tr_test.h"

enum {
    MSG_DATA = 1,
    MSG_GO = 2,
    MSG_WATCH = 3,
    MSG_LINK = 4,
    MSG_HOLD = 5,
    N_DATA = 200,
};

typedef struct {
    tr_addr to;
    bool fail;
} go_arg;

static tr_atomic(int) gate;
static tr_atomic(int) holding;
static tr_atomic(int) setup_rc;
static tr_atomic(uint32_t) seen;
static uint32_t order[N_DATA + 2]; /* written by the receiver only */

static int
sender_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    go_arg g;
    (void)state;
    memcpy(&g, msg->data, sizeof(g));
    for (uint32_t i = 0; i < N_DATA; i++) {
        if (tr_send(ctx, g.to, MSG_DATA, &i, sizeof(i)) != TR_OK) {
            return tr_fail(ctx, -1, "send failed");
        }
    }
    return g.fail ? tr_fail(ctx, -7, "done, badly") : tr_stop(ctx);
}

static const tr_behaviour sender = {.name = "sender", .handle = sender_handle};

static int
receiver_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    switch (msg->type) {
    case MSG_WATCH: {
        uint64_t ref;
        tr_addr who;
        memcpy(&who, msg->data, sizeof(who));
        tr_store_rel(&setup_rc, tr_monitor(ctx, who, &ref) + 1000);
        return TR_OK;
    }
    case MSG_LINK: {
        tr_addr who;
        memcpy(&who, msg->data, sizeof(who));
        int rc = tr_trap_exits(ctx, true);
        if (rc == TR_OK) {
            rc = tr_link(ctx, who);
        }
        tr_store_rel(&setup_rc, rc + 1000);
        return TR_OK;
    }
    case MSG_HOLD: {
        uint64_t deadline = tr__now_ns() + 10000000000u;
        tr_store_rel(&holding, 1);
        while (tr_load_acq(&gate) == 0 && tr__now_ns() < deadline) {
        }
        return TR_OK;
    }
    default: {
        uint32_t n = tr_load_relaxed(&seen);
        if (n < N_DATA + 2) {
            uint32_t v = msg->type;
            if (msg->type == MSG_DATA) {
                memcpy(&v, msg->data, sizeof(v));
            }
            order[n] = v;
            tr_store_rel(&seen, n + 1);
        }
        /* A trapping actor ends itself on the EXIT it waited for. */
        return msg->type == TR_MSG_EXIT ? tr_stop(ctx) : TR_OK;
    }
    }
}

static const tr_behaviour receiver = {.name = "receiver",
                                      .handle = receiver_handle};

static bool
is_set(void *arg)
{
    return tr_load_acq((tr_atomic(int) *)arg) != 0;
}

static bool
all_seen(void *arg)
{
    (void)arg;
    return tr_load_acq(&seen) >= N_DATA + 1;
}

/* The receiver is held busy while the sender sends and ends, so that the
 * end's signal and the data are all queued when it runs again. */
static void
run_case(uint32_t setup, bool fail, uint32_t signal_type)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr r;
    tr_addr s;

    tr_store_relaxed(&gate, 0);
    tr_store_relaxed(&holding, 0);
    tr_store_relaxed(&setup_rc, 0);
    tr_store_relaxed(&seen, 0);
    assert_int_equal(tr_spawn(ctx, &receiver, NULL, NULL, &r), TR_OK);
    assert_int_equal(tr_spawn(ctx, &sender, NULL, NULL, &s), TR_OK);
    assert_int_equal(tr_send(ctx, r, setup, &s, sizeof(s)), TR_OK);
    assert_true(tr_test_wait_until(is_set, &setup_rc, 5000));
    assert_int_equal(tr_load_acq(&setup_rc), TR_OK + 1000);
    assert_int_equal(tr_send(ctx, r, MSG_HOLD, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(is_set, &holding, 5000));
    go_arg g = {.to = r, .fail = fail};
    assert_int_equal(tr_send(ctx, s, MSG_GO, &g, sizeof(g)), TR_OK);
    int rc = tr_actor_wait(ctx, s, tr_ms(5000), NULL);
    assert_true(rc == TR_OK || rc == TR_ENOACTOR); /* ended, either way */
    tr_store_rel(&gate, 1);
    assert_true(tr_test_wait_until(all_seen, NULL, 5000));
    for (uint32_t i = 0; i < N_DATA; i++) {
        if (order[i] != i) {
            fail_msg("position %u holds %#x, not data %u", i, order[i], i);
        }
    }
    assert_int_equal(order[N_DATA], signal_type);
    tr_test_shutdown(sys);
}

static void
test_order_messages_arrive_before_the_down(void **state)
{
    (void)state;
    run_case(MSG_WATCH, false, TR_MSG_DOWN);
}

static void
test_order_messages_arrive_before_a_trapped_exit(void **state)
{
    (void)state;
    run_case(MSG_LINK, true, TR_MSG_EXIT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_messages_arrive_before_the_down),
        cmocka_unit_test(test_order_messages_arrive_before_a_trapped_exit),
    };
    return cmocka_run_group_tests_name("order", tests, NULL, NULL);
}
