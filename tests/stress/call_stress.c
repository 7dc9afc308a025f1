/*
 * Many concurrent calls from many actors to a few servers that reply, reply
 * late, forward, drop, hold until the timeout, fail or stop at random, with
 * random timeouts on the real clock. Every call ends exactly once, nothing
 * hangs, and (under ASan) nothing leaks.
 *
 * Servers that fail or stop are replaced: a client whose call is refused
 * with TR_ENOACTOR spawns a new server into that server's place. One call
 * in 50 goes to a holder that never answers, so timeouts happen too.
 *
 * Usage: call_stress [calls]
 */
#include "support/tr_test.h"

static long total_calls = 100000;

enum {
    SERVERS = 4,
    CLIENTS = 50,
    IN_FLIGHT = 8, /* calls each client keeps going */
    MSG_START = 1,
    MSG_CALL = 2,
    MSG_FWD = 4, /* a forwarded call */
};

static tr_atomic(uint64_t) servers[SERVERS];
static tr_atomic(uint8_t) * ended; /* per call id: times it ended */
static tr_atomic(long) next_id;
static tr_atomic(long) done_calls;
static tr_atomic(long) by_status[4]; /* ok, timed out, closed, refused */
static tr_atomic(long) wrong_reply;

/* ---- servers ---- */

typedef struct server_state {
    tr_reply_to *held[16];
    int n_held;
    tr_reply_to *deferred;
    long deferred_id;
} server_state;

static int
server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    server_state *s = state;
    long id;
    uint32_t timeout;

    memcpy(&id, msg->data, sizeof(id));
    memcpy(&timeout, (const char *)msg->data + sizeof(id), sizeof(timeout));
    if (msg->type == MSG_FWD) {
        return tr_reply(ctx, msg, &id, sizeof(id));
    }
    /* Answer a deferred call from this later message. */
    if (s->deferred != NULL) {
        int rc = tr_reply_send(s->deferred, &s->deferred_id, sizeof(long));
        s->deferred = NULL;
        if (rc != TR_OK && rc != TR_ECLOSED) {
            return rc;
        }
    }
    switch (tr_test_mix((uint64_t)id) % 20) {
    case 0: /* fail: this call and those queued end closed */
        return TR_EINVAL;
    case 1: /* stop */
        return tr_stop(ctx);
    case 2: /* drop unanswered */
    case 3:
        return TR_OK;
    case 4: /* hold: only the timeout (or our stop) ends it */
        if (timeout != 0 && s->n_held < 16) {
            s->held[s->n_held++] = tr_reply_take(ctx, msg);
            return TR_OK;
        }
        break;
    case 5: /* answer later, when the next request comes */
    case 6:
        /* Only a call with a timeout: the last request a server gets has
         * no later one to answer it, and would wait for ever. */
        if (s->deferred == NULL && timeout != 0) {
            s->deferred = tr_reply_take(ctx, msg);
            s->deferred_id = id;
            return TR_OK;
        }
        break;
    case 7: /* forward to a server (maybe itself), which answers */
    case 8: {
        tr_addr other = {.id = tr_load_acq(&servers[(uint64_t)id % SERVERS])};
        tr_reply_to *h = tr_reply_take(ctx, msg);
        if (tr_forward(ctx, h, other, MSG_FWD, msg->data, msg->size) != TR_OK) {
            tr_reply_drop(h);
        }
        return TR_OK;
    }
    default:
        break;
    }
    return tr_reply(ctx, msg, &id, sizeof(id));
}

static void
server_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    server_state *s = state;
    (void)ctx;
    (void)exit;
    for (int i = 0; i < s->n_held; i++) {
        tr_reply_drop(s->held[i]);
    }
    tr_reply_drop(s->deferred); /* a handle must not outlive its holder */
}

static const tr_behaviour server_behaviour = {
    .name = "stress_server",
    .state_size = sizeof(server_state),
    .handle = server_handle,
    .stop = server_stop,
};

/*
 * The holder never answers: it keeps the last HOLD calls it was sent and
 * drops the oldest to make room, so its calls end by their timeouts (the
 * servers above die too often to outlive one).
 */
enum { HOLD = 1024 };

typedef struct holder_state {
    tr_reply_to *held[HOLD];
    unsigned next;
} holder_state;

static tr_addr holder;

static int
holder_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    holder_state *s = state;
    tr_reply_to **slot = &s->held[s->next++ % HOLD];

    (void)ctx;
    tr_reply_drop(*slot);
    *slot = tr_reply_take(ctx, msg);
    return TR_OK;
}

static void
holder_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    holder_state *s = state;
    (void)ctx;
    (void)exit;
    for (unsigned i = 0; i < HOLD; i++) {
        tr_reply_drop(s->held[i]);
    }
}

static const tr_behaviour holder_behaviour = {
    .name = "stress_holder",
    .state_size = sizeof(holder_state),
    .handle = holder_handle,
    .stop = holder_stop,
};

/* ---- clients ---- */

static int client_next(tr_ctx *ctx);

static void
record(long id, int status_index)
{
    tr_faa_relaxed(&ended[id], 1);
    tr_faa_relaxed(&by_status[status_index], 1);
    tr_faa_seqcst(&done_calls, 1);
}

static int
on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    long id = (long)(intptr_t)arg;
    (void)state;

    if (res->status == TR_OK) {
        long got;
        memcpy(&got, res->reply->data, sizeof(got));
        if (got != id || res->reply->size != sizeof(got)) {
            tr_faa_relaxed(&wrong_reply, 1);
        }
        record(id, 0);
    } else {
        record(id, res->status == TR_ETIMEDOUT ? 1 : 2);
    }
    return client_next(ctx);
}

/* Start the next call, if any are left. */
static int
client_next(tr_ctx *ctx)
{
    long id = tr_faa_relaxed(&next_id, 1);
    if (id >= total_calls) {
        return TR_OK;
    }
    uint64_t h = tr_test_mix((uint64_t)id * 7 + 3);
    unsigned which = (unsigned)(h % SERVERS);
    uint32_t timeout = (uint32_t)((h >> 8) % 4 == 0 ? 0 : 1 + (h >> 16) % 30);
    char req[sizeof(long) + sizeof(uint32_t)];
    memcpy(req, &id, sizeof(id));
    if (id % 50 == 0) { /* one call in 50 goes to the holder and times out */
        timeout = (uint32_t)(1 + (h >> 16) % 30);
        memcpy(req + sizeof(id), &timeout, sizeof(timeout));
        if (tr_call(ctx, holder, MSG_CALL, req, sizeof(req), tr_ms(timeout),
                    on_reply, (void *)(intptr_t)id) != TR_OK) {
            record(id, 3);
        }
        return TR_OK;
    }
    memcpy(req + sizeof(id), &timeout, sizeof(timeout));
    for (;;) {
        tr_addr to = {.id = tr_load_acq(&servers[which])};
        int rc = tr_call(ctx, to, MSG_CALL, req, sizeof(req),
                         timeout == 0 ? TR_FOREVER : tr_ms(timeout), on_reply,
                         (void *)(intptr_t)id);
        if (rc == TR_OK) {
            return TR_OK;
        }
        if (rc != TR_ENOACTOR) {
            record(id, 3);
            return TR_OK;
        }
        /* Replace the dead server (if nobody did yet) and retry. */
        tr_addr fresh;
        rc = tr_spawn(ctx, &server_behaviour, NULL, NULL, &fresh);
        if (rc != TR_OK) {
            return rc;
        }
        uint64_t expected = to.id;
        if (!tr_cas_acqrel(&servers[which], &expected, fresh.id)) {
            (void)tr_actor_stop(ctx, fresh);
        }
    }
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    for (int i = 0; i < IN_FLIGHT; i++) {
        int rc = client_next(ctx);
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

static const tr_behaviour client_behaviour = {
    .name = "stress_client",
    .handle = client_handle,
};

static void
quiet_failure(void *arg, tr_addr who, const char *behaviour,
              const tr_exit *exit)
{
    (void)arg;
    (void)who;
    (void)behaviour;
    (void)exit;
}

static bool
all_done(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&done_calls) >= total_calls;
}

static void
test_call_stress_every_call_ends_exactly_once(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system *sys;
    tr_ctx *ctx;

    (void)state;
    ended = calloc((size_t)total_calls, sizeof(*ended));
    assert_non_null(ended);
    cfg.on_failure = quiet_failure;
    sys = tr_test_system_cfg(&cfg);
    ctx = tr_system_ctx(sys);
    for (int i = 0; i < SERVERS; i++) {
        tr_addr s;
        assert_int_equal(tr_spawn(ctx, &server_behaviour, NULL, NULL, &s),
                         TR_OK);
        tr_store_rel(&servers[i], s.id);
    }
    assert_int_equal(tr_spawn(ctx, &holder_behaviour, NULL, NULL, &holder),
                     TR_OK);
    for (int i = 0; i < CLIENTS; i++) {
        tr_addr c;
        assert_int_equal(tr_spawn(ctx, &client_behaviour, NULL, NULL, &c),
                         TR_OK);
        assert_int_equal(tr_send(ctx, c, MSG_START, NULL, 0), TR_OK);
    }
    bool finished = tr_test_wait_until(all_done, NULL, 120000);
    tr_test_shutdown(sys);
    print_message(
        "ok %ld, timed out %ld, closed %ld, refused %ld\n",
        tr_load_relaxed(&by_status[0]), tr_load_relaxed(&by_status[1]),
        tr_load_relaxed(&by_status[2]), tr_load_relaxed(&by_status[3]));
    assert_true(finished);
    assert_int_equal(tr_load_relaxed(&wrong_reply), 0);
    assert_int_equal(tr_load_relaxed(&by_status[3]), 0);
    for (long i = 0; i < total_calls; i++) {
        if (tr_load_relaxed(&ended[i]) != 1) {
            fail_msg("call %ld ended %d times", i, tr_load_relaxed(&ended[i]));
        }
    }
    /* Every outcome happened. */
    assert_true(tr_load_relaxed(&by_status[0]) > 0);
    assert_true(tr_load_relaxed(&by_status[1]) > 0);
    assert_true(tr_load_relaxed(&by_status[2]) > 0);
    free(ended);
}

int
main(int argc, char **argv)
{
    total_calls = tr_test_arg(argc, argv, 1, total_calls);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_stress_every_call_ends_exactly_once),
    };
    return cmocka_run_group_tests_name("call_stress", tests, NULL, NULL);
}
