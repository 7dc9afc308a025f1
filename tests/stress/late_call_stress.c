/*
 * Calls without a timeout to actors that stop while the calls are on their
 * way. A request whose sender read the callee's generation just before the
 * callee ended, and pushed it just after the callee's last drain, used to
 * wait in the free slot, and its call never ended. Every call must end:
 * answered, or TR_ECLOSED, or refused at once with TR_ENOACTOR.
 *
 * Arguments: calls (default 200000), rounds (default 3).
 */
#include "support/tr_test.h"

enum { VICTIMS = 8, CLIENTS = 16, MSG_CALL = 1, MSG_START = 2 };

static long total_calls = 200000;
static tr_atomic(uint64_t) victims[VICTIMS];
static tr_atomic(long) next_id;
static tr_atomic(long) ended_calls;
static tr_atomic(long) bad;

/* Answers three calls in four; stops (leaving the call unanswered, so it
 * ends with TR_ECLOSED) on the fourth. */
static int
victim_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    long id;
    (void)state;
    memcpy(&id, msg->data, sizeof(id));
    if (tr_test_mix((uint64_t)id) % 4 == 0) {
        return tr_stop(ctx);
    }
    return tr_reply(ctx, msg, &id, sizeof(id));
}

static const tr_behaviour victim = {.name = "victim", .handle = victim_handle};

static int next_call(tr_ctx *ctx);

static int
on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    (void)state;
    (void)arg;
    if (res->status != TR_OK && res->status != TR_ECLOSED) {
        tr_faa_relaxed(&bad, 1);
    }
    tr_faa_seqcst(&ended_calls, 1);
    return next_call(ctx);
}

static int
next_call(tr_ctx *ctx)
{
    long id = tr_faa_relaxed(&next_id, 1);
    if (id >= total_calls) {
        return TR_OK;
    }
    unsigned which = (unsigned)(tr_test_mix((uint64_t)id + 11) % VICTIMS);
    for (;;) {
        tr_addr to = {.id = tr_load_acq(&victims[which])};
        int rc = tr_call(ctx, to, MSG_CALL, &id, sizeof(id), TR_FOREVER,
                         on_reply, NULL);
        if (rc == TR_OK) {
            return TR_OK;
        }
        if (rc != TR_ENOACTOR) {
            tr_faa_relaxed(&bad, 1);
            tr_faa_seqcst(&ended_calls, 1);
            return TR_OK;
        }
        /* The victim is gone: put a fresh one in its place (once). */
        tr_addr fresh;
        if ((rc = tr_spawn(ctx, &victim, NULL, NULL, &fresh)) != TR_OK) {
            return rc;
        }
        uint64_t expected = to.id;
        if (!tr_cas_acqrel(&victims[which], &expected, fresh.id)) {
            (void)tr_actor_stop(ctx, fresh);
        }
    }
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    for (int i = 0; i < 4; i++) {
        int rc = next_call(ctx);
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

static const tr_behaviour client = {.name = "client", .handle = client_handle};

static bool
all_ended(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&ended_calls) >= total_calls;
}

static long rounds = 3;

static void
test_late_calls_always_end(void **state)
{
    (void)state;
    for (long r = 0; r < rounds; r++) {
        tr_system *sys = tr_test_system(2);
        tr_ctx *ctx = tr_system_ctx(sys);

        tr_store_relaxed(&next_id, 0);
        tr_store_relaxed(&ended_calls, 0);
        tr_store_relaxed(&bad, 0);
        for (int i = 0; i < VICTIMS; i++) {
            tr_addr v;
            assert_int_equal(tr_spawn(ctx, &victim, NULL, NULL, &v), TR_OK);
            tr_store_rel(&victims[i], v.id);
        }
        for (int i = 0; i < CLIENTS; i++) {
            tr_addr c;
            assert_int_equal(tr_spawn(ctx, &client, NULL, NULL, &c), TR_OK);
            assert_int_equal(tr_send(ctx, c, MSG_START, NULL, 0), TR_OK);
        }
        bool done = tr_test_wait_until(all_ended, NULL, 60000);
        if (!done) {
            fail_msg("round %ld: %ld of %ld calls ended", r,
                     tr_load_seqcst(&ended_calls), total_calls);
        }
        tr_test_shutdown(sys);
        assert_int_equal(tr_load_relaxed(&bad), 0);
    }
}

int
main(int argc, char **argv)
{
    total_calls = tr_test_arg(argc, argv, 1, total_calls);
    rounds = tr_test_arg(argc, argv, 2, rounds);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_calls_always_end),
    };
    return cmocka_run_group_tests_name("late_call", tests, NULL, NULL);
}
