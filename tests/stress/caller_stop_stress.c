/*
 * Callers stopped while their calls' replies land. Callers keep calls
 * without a timeout in flight to echo servers, and are stopped meanwhile:
 * those in even slots by the servers, which answer one request in 16 and
 * then stop its caller (the reply is sent first), those in odd slots by
 * the test thread at random. A caller's `stop` spawns its replacement, so
 * the stop callbacks call back into the API, shutdown's among them.
 *
 * Checked: no continuation runs after its caller's `stop`; no call ends
 * twice, and a call whose continuation never ran belonged to a caller
 * that stopped; a caller a server stopped does stop; a reply that a server sent
 * before it stopped the caller reached its continuation first; `stop` runs once
 * for every caller; under ASan, nothing leaks (the calls dropped with their
 * callers).
 *
 * Arguments: calls (default 200000; CTest runs 1000000).
 */
#include "support/tr_test.h"

#include <time.h>

enum {
    SERVERS = 2,
    SLOTS = 16,
    IN_FLIGHT = 4,   /* calls each caller keeps going */
    STOP_EVERY = 16, /* even slots: one request in STOP_EVERY stops */
    MSG_START = 1,
    MSG_CALL = 2,
};

static long total_calls = 200000;
static long max_callers;

static tr_addr servers[SERVERS];
static tr_atomic(uint64_t) slot_addr[SLOTS];
static tr_atomic(long) next_id;
static tr_atomic(long) next_caller;
static tr_atomic(bool) shutting_down;

/* Per call: its caller's index + 1 (0 until the call is made), and the
 * continuations that ran for it. */
static tr_atomic(uint32_t) * made_by;
static tr_atomic(uint8_t) * ended;
/* Per caller: spawned, asked to stop by a server, `stop` runs, and the
 * replies that its servers sent before they stopped it that reached it. */
static tr_atomic(uint8_t) * born;
static tr_atomic(uint8_t) * stop_asked;
static tr_atomic(uint8_t) * stops;
static tr_atomic(uint32_t) * stop_replies;

static tr_atomic(long) late;      /* continuations after `stop` */
static tr_atomic(long) overtaken; /* a stop ahead of the reply before it */
static tr_atomic(long) wrong;     /* a reply to another call */
static tr_atomic(long) refused;   /* calls or spawns refused */
static tr_atomic(long) by_server; /* stops the servers asked */
static tr_atomic(long) by_thread; /* stops the test thread asked */

typedef struct request {
    long id;
    uint32_t caller; /* its index */
    bool stop_caller;
} request;

/* ---- servers: answer, and sometimes stop the caller after ---- */

static int
server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    request r;

    (void)state;
    memcpy(&r, msg->data, sizeof(r));
    int rc = tr_reply(ctx, msg, &r.id, sizeof(r.id));
    /* TR_ECLOSED: the caller stopped meanwhile. */
    if (rc != TR_OK && rc != TR_ECLOSED) {
        tr_faa_relaxed(&refused, 1);
    }
    if (r.stop_caller && tr_actor_stop(ctx, msg->from) == TR_OK) {
        tr_store_relaxed(&stop_asked[r.caller], 1);
        tr_faa_relaxed(&by_server, 1);
    }
    return TR_OK;
}

static const tr_behaviour server_behaviour = {
    .name = "echo_server",
    .handle = server_handle,
};

/* ---- callers ---- */

typedef struct caller {
    uint32_t index; /* which caller, for the per-caller records */
    uint32_t slot;
} caller;

static int caller_next(tr_ctx *ctx, caller *c);

static int
on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    caller *c = state;
    long id = (long)(intptr_t)arg;

    if (tr_load_relaxed(&stops[c->index]) != 0) {
        tr_faa_relaxed(&late, 1);
    }
    tr_faa_relaxed(&ended[id], 1);
    if (res->status == TR_OK) {
        long got;
        memcpy(&got, res->reply->data, sizeof(got));
        if (got != id) {
            tr_faa_relaxed(&wrong, 1);
        }
        if (c->slot % 2 == 0 && tr_test_mix((uint64_t)id) % STOP_EVERY == 0) {
            tr_faa_relaxed(&stop_replies[c->index], 1);
        }
    }
    return caller_next(ctx, c);
}

/* Start the next call, if any are left. */
static int
caller_next(tr_ctx *ctx, caller *c)
{
    long id = tr_faa_relaxed(&next_id, 1);

    if (id >= total_calls) {
        return TR_OK;
    }
    request r = {
        .id = id,
        .caller = c->index,
        .stop_caller =
            c->slot % 2 == 0 && tr_test_mix((uint64_t)id) % STOP_EVERY == 0,
    };
    tr_store_relaxed(&made_by[id], c->index + 1);
    if (tr_call(ctx, servers[tr_test_mix((uint64_t)id + 1) % SERVERS], MSG_CALL,
                &r, sizeof(r), TR_FOREVER, on_reply,
                (void *)(intptr_t)id) != TR_OK) {
        tr_faa_relaxed(&refused, 1);
        tr_store_relaxed(&ended[id], 1); /* accounted for */
    }
    return TR_OK;
}

static int
caller_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(caller));
    return TR_OK;
}

static int
caller_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    for (int i = 0; i < IN_FLIGHT; i++) {
        int rc = caller_next(ctx, state);
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

static int spawn_caller(tr_ctx *ctx, uint32_t slot);

static void
caller_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    caller *c = state;

    (void)exit;
    tr_faa_relaxed(&stops[c->index], 1);
    /* A server stops an even slot's caller only after answering it, and
     * nothing else stops one before shutdown. */
    if (c->slot % 2 == 0 && !tr_load_seqcst(&shutting_down) &&
        tr_load_relaxed(&stop_replies[c->index]) == 0) {
        tr_faa_relaxed(&overtaken, 1);
    }
    int rc = spawn_caller(ctx, c->slot);
    if (rc != TR_OK && !tr_load_seqcst(&shutting_down)) {
        tr_faa_relaxed(&refused, 1);
    }
}

static const tr_behaviour caller_behaviour = {
    .name = "caller",
    .state_size = sizeof(caller),
    .init = caller_init,
    .handle = caller_handle,
    .stop = caller_stop,
};

/* A caller in `slot`, started; TR_OK as well when the callers run out. */
static int
spawn_caller(tr_ctx *ctx, uint32_t slot)
{
    tr_addr a;
    int rc;

    if (tr_load_relaxed(&next_id) >= total_calls) {
        return TR_OK;
    }
    long index = tr_faa_relaxed(&next_caller, 1);
    if (index >= max_callers) {
        return TR_OK;
    }
    caller c = {.index = (uint32_t)index, .slot = slot};
    if ((rc = tr_spawn(ctx, &caller_behaviour, &c, NULL, &a)) != TR_OK) {
        return rc;
    }
    tr_store_relaxed(&born[index], 1);
    tr_store_rel(&slot_addr[slot], a.id);
    rc = tr_send(ctx, a, MSG_START, NULL, 0);
    /* TR_ENOACTOR: the test thread, which has just read its address,
     * stopped it first. */
    return rc == TR_ENOACTOR ? TR_OK : rc;
}

/* Every call made has ended or lost its caller, and every caller that a
 * server stopped has stopped. */
static bool
settled(void *arg)
{
    long made = tr_load_seqcst(&next_id);
    long callers = tr_load_relaxed(&next_caller);

    (void)arg;
    if (made < total_calls) {
        return false;
    }
    for (long i = 0; i < callers && i < max_callers; i++) {
        if (tr_load_relaxed(&stop_asked[i]) != 0 &&
            tr_load_relaxed(&stops[i]) == 0) {
            return false;
        }
    }
    for (long i = 0; i < total_calls; i++) {
        uint32_t by = tr_load_relaxed(&made_by[i]);
        if (tr_load_relaxed(&ended[i]) == 0 &&
            (by == 0 || tr_load_relaxed(&stops[by - 1]) == 0)) {
            return false;
        }
    }
    return true;
}

static void
pause_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

static void
test_callers_stopped_while_their_replies_land(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    uint64_t r = 1;
    long dropped = 0;

    (void)state;
    max_callers = total_calls / 4 + SLOTS;
    made_by = calloc((size_t)total_calls, sizeof(*made_by));
    ended = calloc((size_t)total_calls, sizeof(*ended));
    born = calloc((size_t)max_callers, sizeof(*born));
    stop_asked = calloc((size_t)max_callers, sizeof(*stop_asked));
    stops = calloc((size_t)max_callers, sizeof(*stops));
    stop_replies = calloc((size_t)max_callers, sizeof(*stop_replies));
    assert_true(made_by != NULL && ended != NULL && born != NULL &&
                stop_asked != NULL && stops != NULL && stop_replies != NULL);
    for (int i = 0; i < SERVERS; i++) {
        assert_int_equal(
            tr_spawn(ctx, &server_behaviour, NULL, NULL, &servers[i]), TR_OK);
    }
    for (uint32_t s = 0; s < SLOTS; s++) {
        assert_int_equal(spawn_caller(ctx, s), TR_OK);
    }
    /* Stop odd slots' callers at random while the calls go on. */
    while (tr_load_relaxed(&next_id) < total_calls) {
        r = tr_test_mix(r + 1);
        uint32_t slot = (uint32_t)(r % (SLOTS / 2)) * 2 + 1;
        tr_addr a = {.id = tr_load_acq(&slot_addr[slot])};
        if (tr_actor_stop(ctx, a) == TR_OK) {
            tr_faa_relaxed(&by_thread, 1);
        }
        pause_us((long)(r >> 32) % 200);
    }
    /* Before shutdown, which stops every caller: a call lost while its
     * caller lives keeps this from holding. */
    bool ok = tr_test_wait_until(settled, NULL, 120000);
    tr_store_seqcst(&shutting_down, true);
    tr_test_shutdown(sys);

    long callers = tr_load_relaxed(&next_caller);
    if (callers > max_callers) {
        callers = max_callers;
    }
    for (long i = 0; i < total_calls; i++) {
        uint8_t e = tr_load_relaxed(&ended[i]);
        if (e > 1) {
            fail_msg("call %ld ended %u times", i, (unsigned)e);
        }
        dropped += e == 0;
    }
    for (long i = 0; i < callers; i++) {
        if (tr_load_relaxed(&stops[i]) != tr_load_relaxed(&born[i])) {
            fail_msg("caller %ld stopped %u times", i,
                     (unsigned)tr_load_relaxed(&stops[i]));
        }
    }
    print_message("%ld callers; stops asked: %ld by servers, %ld by the "
                  "test thread; %ld calls dropped with their callers\n",
                  callers, tr_load_relaxed(&by_server),
                  tr_load_relaxed(&by_thread), dropped);
    assert_true(ok);
    assert_int_equal(tr_load_relaxed(&late), 0);
    assert_int_equal(tr_load_relaxed(&overtaken), 0);
    assert_int_equal(tr_load_relaxed(&wrong), 0);
    assert_int_equal(tr_load_relaxed(&refused), 0);
    /* The races happened. */
    assert_true(tr_load_relaxed(&by_server) > 0);
    assert_true(tr_load_relaxed(&by_thread) > 0);
    assert_true(dropped > 0);
    free(made_by);
    free(ended);
    free(born);
    free(stop_asked);
    free(stops);
    free(stop_replies);
}

int
main(int argc, char **argv)
{
    total_calls = tr_test_arg(argc, argv, 1, total_calls);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callers_stopped_while_their_replies_land),
    };
    return cmocka_run_group_tests_name("caller_stop_stress", tests, NULL, NULL);
}
