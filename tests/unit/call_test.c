/*
 * Calls: reply, timeout (manual clock), closed by drop, stop, failure or
 * dead letter; deferred and forwarded replies; replying twice; tr_ask; and
 * every refused call never running its continuation.
 */
#include "support/tr_test.h"

#include "actors/actor.h"
#include "scheduler/timer.h"

#include <pthread.h>

/* Server requests: the payload is an int n; the mode is the type. */
enum {
    REQ_INC = 1,     /* reply n + 1 */
    REQ_HOLD = 2,    /* take the handle and keep it */
    REQ_RELEASE = 3, /* answer the held handle with n */
    REQ_DROP = 4,    /* return without answering */
    REQ_FAIL = 5,    /* fail the server */
    REQ_STOP = 6,    /* stop the server */
    REQ_TWICE = 7,   /* reply twice; report the second result */
    REQ_FORWARD = 8, /* take the handle, pass it to the helper */
    REQ_SLOW = 9,    /* spin until released, then reply */
    REQ_DROP_HELD = 10,
    REQ_STASH = 11, /* take the handle and put it where the test finds it */
};

static tr_reply_to *stashed;
static tr_atomic(int) stash_done;

/* Client commands. */
enum { CMD_CALL = 100 };

typedef struct cmd {
    tr_addr to;
    uint32_t type;
    int n;
    uint32_t timeout_ms;
} cmd;

static tr_mailbox *probe;
static tr_atomic(bool) slow_release;

/* A report: what a continuation saw. */
typedef struct report {
    int status;
    int value;
    uint32_t type;
    char text[256];
} report;

static void
post(const report *r)
{
    int rc = tr_mailbox_send(probe, r, sizeof(*r));
    (void)rc;
}

static report
next_report(void)
{
    report r = {.status = 99, .value = -1};
    size_t len;
    if (tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, tr_ms(5000)) !=
        TR_OK) {
        r.status = 98; /* nothing came */
    }
    return r;
}

/* ---- server ---- */

typedef struct server {
    tr_reply_to *held;
    tr_addr helper;
} server;

static int
server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    server *s = state;
    int n = 0;

    if (msg->size == sizeof(int)) {
        memcpy(&n, msg->data, sizeof(n));
    }
    switch (msg->type) {
    case REQ_INC:
        n++;
        return tr_reply(ctx, msg, &n, sizeof(n));
    case REQ_HOLD:
        s->held = tr_reply_take(ctx, msg);
        return s->held != NULL ? TR_OK : TR_EINVAL;
    case REQ_RELEASE: {
        report r = {.status = tr_reply_send(s->held, &n, sizeof(n)),
                    .type = REQ_RELEASE};
        s->held = NULL;
        post(&r);
        return TR_OK;
    }
    case REQ_DROP_HELD:
        tr_reply_drop(s->held);
        s->held = NULL;
        return TR_OK;
    case REQ_DROP:
        return TR_OK;
    case REQ_STASH:
        stashed = tr_reply_take(ctx, msg);
        tr_store_rel(&stash_done, 1); /* publishes `stashed` */
        return TR_OK;
    case REQ_FAIL:
        return TR_EINVAL;
    case REQ_STOP:
        return tr_stop(ctx);
    case REQ_TWICE: {
        int rc = tr_reply(ctx, msg, &n, sizeof(n));
        report r = {.status = tr_reply(ctx, msg, &n, sizeof(n)),
                    .value = rc,
                    .type = REQ_TWICE};
        post(&r);
        /* Taking after replying finds nothing. */
        return tr_reply_take(ctx, msg) == NULL ? TR_OK : TR_EINVAL;
    }
    case REQ_FORWARD: {
        tr_reply_to *h = tr_reply_take(ctx, msg);
        int rc = tr_forward(ctx, h, s->helper, REQ_FORWARD, NULL, 0);
        if (rc != TR_OK) {
            tr_reply_drop(h);
        }
        return rc;
    }
    case REQ_SLOW:
        while (!tr_load_acq(&slow_release)) {
        }
        return tr_reply(ctx, msg, &n, sizeof(n));
    default:
        /* From the forwarding server: answer the handle we were given. */
        return TR_EINVAL;
    }
}

static int
server_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    if (arg != NULL) {
        ((server *)state)->helper = *(const tr_addr *)arg;
    }
    return TR_OK;
}

static void
server_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    server *s = state;
    (void)ctx;
    (void)exit;
    tr_reply_drop(s->held); /* a handle must not outlive its holder */
}

static const tr_behaviour server_behaviour = {
    .name = "server",
    .state_size = sizeof(server),
    .init = server_init,
    .handle = server_handle,
    .stop = server_stop,
};

/* The helper answers forwarded calls with 1000. */
static int
helper_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int v = 1000;
    (void)state;
    return tr_reply(ctx, msg, &v, sizeof(v));
}

static const tr_behaviour helper_behaviour = {.name = "helper",
                                              .handle = helper_handle};

/* Handles REQ_INC only, with no `otherwise`. */
static const tr_handler strict_rows[] = {{REQ_INC, server_handle}};
static const tr_dispatch strict_table = {strict_rows, 1, NULL};
static const tr_behaviour strict_behaviour = {
    .name = "strict",
    .state_size = sizeof(server),
    .dispatch = &strict_table,
};

/* ---- client ---- */

static int
on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    report r = {.status = res->status, .type = res->type};
    (void)ctx;
    (void)state;
    (void)arg;
    if (res->status == TR_OK) {
        memcpy(&r.value, res->reply->data, sizeof(r.value));
    } else if (res->reply != NULL) {
        r.status = 97; /* a failure must carry no reply */
    }
    snprintf(r.text, sizeof(r.text), "%s", res->text);
    post(&r);
    return TR_OK;
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    cmd c;
    (void)state;
    memcpy(&c, msg->data, sizeof(c));
    int rc = tr_call(ctx, c.to, c.type, &c.n, sizeof(c.n),
                     c.timeout_ms == 0 ? TR_FOREVER : tr_ms(c.timeout_ms),
                     on_reply, NULL);
    if (rc != TR_OK) {
        report r = {.status = 1000 + rc, .type = c.type};
        post(&r);
    }
    return TR_OK;
}

static const tr_behaviour client_behaviour = {.name = "client",
                                              .handle = client_handle};

/* ---- fixture ---- */

typedef struct fixture {
    tr_system *sys;
    tr_ctx *ctx;
    tr_addr server;
    tr_addr helper;
    tr_addr client;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    cfg.workers = 2;
    cfg.manual_clock = true;
    cfg.on_failure = NULL;
    if (tr_system_start(&cfg, &f->sys) != TR_OK ||
        tr_mailbox_create(0, &probe) != TR_OK) {
        return -1;
    }
    f->ctx = tr_system_ctx(f->sys);
    tr_store_relaxed(&slow_release, false);
    if (tr_spawn(f->ctx, &helper_behaviour, NULL, NULL, &f->helper) != TR_OK ||
        tr_spawn(f->ctx, &server_behaviour, &f->helper, NULL, &f->server) !=
            TR_OK ||
        tr_spawn(f->ctx, &client_behaviour, NULL, NULL, &f->client) != TR_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    tr_store_rel(&slow_release, true);
    int rc = f->sys != NULL ? tr_system_shutdown(f->sys, tr_ms(5000)) : TR_OK;
    tr_mailbox_destroy(probe);
    free(f);
    return rc == TR_OK ? 0 : -1;
}

static void
call(fixture *f, tr_addr to, uint32_t type, int n, uint32_t timeout_ms)
{
    cmd c = {to, type, n, timeout_ms};
    assert_int_equal(tr_send(f->ctx, f->client, CMD_CALL, &c, sizeof(c)),
                     TR_OK);
}

static void
expect(int status, int value)
{
    report r = next_report();
    if (r.status != status || (status == TR_OK && r.value != value)) {
        fail_msg("got status %d value %d (%s), want %d value %d", r.status,
                 r.value, r.text, status, value);
    }
}

/* Nothing more reported (the continuation ran exactly once). */
static void
expect_quiet(void)
{
    report r;
    size_t len;
    assert_int_equal(
        tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, tr_ms(50)),
        TR_ETIMEDOUT);
}

static bool
timer_armed(void *p)
{
    return tr__timers_len(((tr_system *)p)->timers) == 1;
}

/* ---- tests ---- */

static void
test_call_gets_the_reply(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_INC, 41, 0);
    expect(TR_OK, 42);
    call(f, f->server, REQ_INC, 1, 1000);
    expect(TR_OK, 2);
    expect_quiet();
}

static void
test_call_times_out_and_a_late_reply_is_dropped(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_HOLD, 0, 100);
    assert_true(tr_test_wait_handled(f->sys, 2, 5000)); /* cmd + request */
    assert_true(tr_test_wait_until(timer_armed, f->sys, 5000));
    assert_int_equal(tr_clock_advance(f->sys, 99), TR_OK);
    expect_quiet();
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    report r = next_report();
    assert_int_equal(r.status, TR_ETIMEDOUT);
    /* The text names callee, type and timeout. */
    char want[128];
    snprintf(want, sizeof(want), TR_ADDR_FMT " (type %u, timeout 100 ms)",
             TR_ADDR_ARGS(f->server), REQ_HOLD);
    assert_non_null(strstr(r.text, want));
    assert_non_null(strstr(r.text, "timed out"));
    /* The late reply finds the call over. */
    int n = 5;
    assert_int_equal(tr_send(f->ctx, f->server, REQ_RELEASE, &n, sizeof(n)),
                     TR_OK);
    r = next_report();
    assert_int_equal(r.type, REQ_RELEASE);
    assert_int_equal(r.status, TR_ECLOSED);
    expect_quiet();
}

static void
test_call_deferred_reply_from_a_later_message(void **state)
{
    fixture *f = *state;
    int n = 77;
    call(f, f->server, REQ_HOLD, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 2, 5000));
    assert_int_equal(tr_send(f->ctx, f->server, REQ_RELEASE, &n, sizeof(n)),
                     TR_OK);
    /* Either report may come first: the continuation and the server's. */
    report a = next_report();
    report b = next_report();
    report *cont = a.type == REQ_RELEASE ? &b : &a;
    report *srv = a.type == REQ_RELEASE ? &a : &b;
    assert_int_equal(srv->status, TR_OK);
    assert_int_equal(cont->status, TR_OK);
    assert_int_equal(cont->value, 77);
}

static void
test_call_forwarded_handle_is_answered_by_another_actor(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_FORWARD, 0, 0);
    expect(TR_OK, 1000);
}

static void
test_call_unanswered_request_ends_closed(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_DROP, 0, 0);
    expect(TR_ECLOSED, 0);
    call(f, f->server, REQ_HOLD, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 4, 5000));
    assert_int_equal(tr_send(f->ctx, f->server, REQ_DROP_HELD, NULL, 0), TR_OK);
    expect(TR_ECLOSED, 0);
    /* A type the callee has no handler for is a dead letter; its call
     * ends closed too. */
    tr_addr strict;
    assert_int_equal(tr_spawn(f->ctx, &strict_behaviour, NULL, NULL, &strict),
                     TR_OK);
    call(f, strict, 4242, 0, 0);
    expect(TR_ECLOSED, 0);
}

static void
test_call_replying_twice_is_refused(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_TWICE, 1, 0);
    report a = next_report();
    report b = next_report();
    report *srv =
        a.type == REQ_TWICE && a.value == TR_OK && a.status == TR_EALREADY ? &a
                                                                           : &b;
    report *cont = srv == &a ? &b : &a;
    assert_int_equal(srv->value, TR_OK);        /* first reply */
    assert_int_equal(srv->status, TR_EALREADY); /* second reply */
    assert_int_equal(cont->status, TR_OK);
    assert_int_equal(cont->value, 1);
    expect_quiet();
}

static void
test_call_callee_failing_or_stopping_closes_queued_calls(void **state)
{
    fixture *f = *state;

    /* Hold the server busy so several requests queue behind REQ_FAIL. */
    call(f, f->server, REQ_SLOW, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000));
    call(f, f->server, REQ_FAIL, 0, 0);
    call(f, f->server, REQ_INC, 0, 0);
    call(f, f->server, REQ_INC, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 4, 5000));
    tr_store_rel(&slow_release, true);
    int closed = 0;
    int failed = 0;
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        report r = next_report();
        closed += r.status == TR_ECLOSED;
        failed += r.status == TR_EFAILED;
        ok += r.status == TR_OK;
        if (r.status == TR_EFAILED) {
            /* The caller learns why: the handler's error, in the text. */
            assert_non_null(strstr(r.text, "the callee failed"));
            assert_non_null(strstr(r.text, "returned"));
        }
    }
    assert_int_equal(ok, 1);     /* the slow one */
    assert_int_equal(failed, 1); /* the one it failed on, and why */
    assert_int_equal(closed, 2); /* the two queued: the callee is gone */
    expect_quiet();
    /* The server is gone: a call now is refused, without continuation. */
    assert_true(tr_test_wait_stopped(f->sys, f->server, 5000));
    call(f, f->server, REQ_INC, 0, 0);
    expect(1000 + TR_ENOACTOR, 0);
    expect_quiet();
}

static void
test_call_stopping_callee_drops_its_held_handle(void **state)
{
    fixture *f = *state;
    call(f, f->server, REQ_HOLD, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 2, 5000));
    call(f, f->server, REQ_STOP, 0, 0);
    int closed = 0;
    for (int i = 0; i < 2; i++) {
        closed += next_report().status == TR_ECLOSED;
    }
    assert_int_equal(closed, 2);
}

/* Calls from the wrong place are refused at once. */
static int
self_caller(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    report r = {.type = 0};
    (void)state;
    (void)msg;
    r.status = tr_call(ctx, tr_self(ctx), REQ_INC, NULL, 0, TR_FOREVER,
                       on_reply, NULL);
    post(&r);
    size_t len;
    r.status =
        tr_test_ask(ctx, tr_self(ctx), REQ_INC, NULL, 0, NULL, 0, &len, 0);
    post(&r);
    return TR_OK;
}

static const tr_behaviour self_caller_behaviour = {.name = "self_caller",
                                                   .handle = self_caller};

static void
test_call_misuse_is_refused_without_continuation(void **state)
{
    fixture *f = *state;
    tr_addr a;
    int n = 0;
    size_t len;

    assert_int_equal(tr_call(f->ctx, f->server, REQ_INC, &n, sizeof(n),
                             TR_FOREVER, on_reply, NULL),
                     TR_ESTATE); /* a thread context: use tr_ask */
    assert_int_equal(tr_call(NULL, f->server, REQ_INC, &n, sizeof(n),
                             TR_FOREVER, on_reply, NULL),
                     TR_EINVAL);
    assert_int_equal(tr_test_ask(NULL, f->server, REQ_INC, &n, sizeof(n), &n,
                                 sizeof(n), &len, 0),
                     TR_EINVAL);
    assert_int_equal(tr_reply(f->ctx, NULL, NULL, 0), TR_EINVAL);
    tr_msg plain = {.type = 1};
    assert_int_equal(tr_reply(f->ctx, &plain, NULL, 0), TR_EINVAL);
    assert_null(tr_reply_take(f->ctx, &plain));
    assert_int_equal(tr_reply_send(NULL, NULL, 0), TR_EINVAL);
    tr_reply_drop(NULL);
    assert_int_equal(tr_spawn(f->ctx, &self_caller_behaviour, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_send(f->ctx, a, 1, NULL, 0), TR_OK);
    assert_int_equal(next_report().status, TR_ESTATE); /* calling oneself */
    assert_int_equal(next_report().status, TR_ESTATE); /* tr_ask on a worker */
    expect_quiet();
}

static void
test_ask_from_a_thread(void **state)
{
    fixture *f = *state;
    int n = 9;
    int out = 0;
    size_t len = 0;
    char small[2];

    assert_int_equal(tr_test_ask(f->ctx, f->server, REQ_INC, &n, sizeof(n),
                                 &out, sizeof(out), &len, 1000),
                     TR_OK);
    assert_int_equal(out, 10);
    assert_int_equal(len, sizeof(int));
    assert_int_equal(tr_test_ask(f->ctx, f->server, REQ_DROP, &n, sizeof(n),
                                 &out, sizeof(out), &len, 0),
                     TR_ECLOSED);
    assert_int_equal(tr_test_ask(f->ctx, f->server, REQ_INC, &n, sizeof(n),
                                 small, sizeof(small), &len, 0),
                     TR_EINVAL);
    assert_int_equal(len, sizeof(int));
    assert_int_equal(tr_test_ask(f->ctx, (tr_addr){.id = 12345}, REQ_INC, &n,
                                 sizeof(n), &out, sizeof(out), &len, 0),
                     TR_ENOACTOR);
}

typedef struct asker {
    fixture *f;
    int rc;
} asker;

static void *
ask_held(void *p)
{
    asker *a = p;
    int n = 0;
    int out;
    size_t len;
    a->rc = tr_test_ask(a->f->ctx, a->f->server, REQ_HOLD, &n, sizeof(n), &out,
                        sizeof(out), &len, 200);
    return NULL;
}

static void
test_ask_times_out_on_the_system_clock(void **state)
{
    fixture *f = *state;
    asker a = {.f = f, .rc = 1};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, ask_held, &a), 0);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000)); /* it holds it */
    /* The timeout counts from when the call was accepted, which is when
     * its timer is armed; advance only after that. */
    assert_true(tr_test_wait_until(timer_armed, f->sys, 5000));
    assert_int_equal(tr_clock_advance(f->sys, 199), TR_OK);
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ETIMEDOUT);
}

static void *
ask_stashed(void *p)
{
    asker *a = p;
    int n = 0;
    int out;
    size_t len;
    a->rc = tr_test_ask(a->f->ctx, a->f->server, REQ_STASH, &n, sizeof(n), &out,
                        sizeof(out), &len, 10000);
    return NULL;
}

static void
test_ask_pending_at_shutdown_ends_closed(void **state)
{
    fixture *f = *state;
    asker a = {.f = f, .rc = 1};
    pthread_t t;

    stashed = NULL;
    assert_int_equal(pthread_create(&t, NULL, ask_stashed, &a), 0);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000));
    /* The handle is held outside any actor: only the call's timer can end
     * the call, and shutdown drops the timer. */
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->sys = NULL;
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ECLOSED);
    /* The late holder's reply finds the call over. */
    assert_int_equal(tr_reply_send(stashed, NULL, 0), TR_ECLOSED);
}

/* ---- asks into a full bounded mailbox ---- */

typedef struct timed_asker {
    fixture *f;
    tr_addr to;
    uint32_t type;
    uint32_t timeout_ms;
    tr_atomic(int) done;
    int rc;
    uint64_t took_ms; /* on the system's clock */
} timed_asker;

static void *
ask_timed(void *p)
{
    timed_asker *a = p;
    tr_system *sys = tr_ctx_system(a->f->ctx);
    uint64_t t0 = tr_now_ms(sys);
    int n = 0;
    int out;
    size_t len;
    a->rc = tr_test_ask(a->f->ctx, a->to, a->type, &n, sizeof(n), &out,
                        sizeof(out), &len, a->timeout_ms);
    if (a->rc != TR_ESHUTDOWN && a->rc != TR_ECLOSED) {
        a->took_ms = tr_now_ms(sys) - t0;
    }
    tr_store_seqcst(&a->done, 1);
    return NULL;
}

static bool
asker_done(void *p)
{
    return tr_load_seqcst(&((timed_asker *)p)->done) != 0;
}

static bool
one_room_waiter(void *p)
{
    return tr_load_seqcst(&((tr_system *)p)->room_waiters) == 1;
}

typedef struct stats_arg {
    tr_system *sys;
    tr_addr who;
} stats_arg;

static bool
mailbox_empty(void *p)
{
    stats_arg *a = p;
    tr_actor_stats st;
    return tr_actor_stats_get(a->sys, a->who, &st) == TR_OK &&
           st.mailbox_len == 0;
}

/* A server with a mailbox of one, busy in REQ_SLOW, with one request
 * queued behind it: full until slow_release. */
static tr_addr
full_server(fixture *f)
{
    tr_spawn_opts opts = {.mailbox_cap = 1};
    tr_addr busy;
    int n = 0;

    assert_int_equal(tr_spawn(f->ctx, &server_behaviour, NULL, &opts, &busy),
                     TR_OK);
    call(f, busy, REQ_SLOW, 0, 0);
    stats_arg sa = {f->sys, busy};
    assert_true(tr_test_wait_handled(f->sys, 1, 5000)); /* the command */
    assert_true(tr_test_wait_until(mailbox_empty, &sa, 5000));
    assert_int_equal(tr_send(f->ctx, busy, REQ_DROP, &n, sizeof(n)), TR_OK);
    assert_int_equal(tr_send(f->ctx, busy, REQ_DROP, &n, sizeof(n)), TR_EFULL);
    return busy;
}

static void
test_ask_timeout_bounds_the_wait_for_room(void **state)
{
    fixture *f = *state;
    timed_asker a = {.f = f, .type = REQ_HOLD, .timeout_ms = 200};
    pthread_t t;

    a.to = full_server(f);
    tr_init_relaxed(&a.done, 0);
    assert_int_equal(pthread_create(&t, NULL, ask_timed, &a), 0);
    assert_true(tr_test_wait_until(one_room_waiter, f->sys, 5000));
    assert_int_equal(tr_clock_advance(f->sys, 199), TR_OK);
    assert_false(tr_test_wait_until(asker_done, &a, 50));
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    if (!tr_test_wait_until(asker_done, &a, 5000)) {
        fail_msg("tr_ask waits for room past its timeout");
    }
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ETIMEDOUT);

    /* Room comes after 150 of 200 ms: the reply has 50 ms left. */
    tr_init_relaxed(&a.done, 0);
    assert_int_equal(pthread_create(&t, NULL, ask_timed, &a), 0);
    assert_true(tr_test_wait_until(one_room_waiter, f->sys, 5000));
    assert_int_equal(tr_clock_advance(f->sys, 150), TR_OK);
    tr_store_rel(&slow_release, true);
    expect(TR_OK, 0); /* the slow call's continuation */
    assert_true(tr_test_wait_until(timer_armed, f->sys, 5000));
    assert_int_equal(tr_clock_advance(f->sys, 49), TR_OK);
    assert_false(tr_test_wait_until(asker_done, &a, 50));
    assert_int_equal(tr_clock_advance(f->sys, 1), TR_OK);
    assert_true(tr_test_wait_until(asker_done, &a, 5000));
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ETIMEDOUT);
}

/* The same on the real clock, without the test's help. */
static void
test_ask_timeout_bounds_the_wait_for_room_real_clock(void **state)
{
    fixture *f = *state;
    tr_system *manual = f->sys;
    timed_asker a = {.type = REQ_INC, .timeout_ms = 100};
    fixture real = {0};
    tr_spawn_opts opts = {.mailbox_cap = 1};
    int n = 0;

    real.sys = tr_test_system(2);
    real.ctx = tr_system_ctx(real.sys);
    assert_int_equal(
        tr_spawn(real.ctx, &client_behaviour, NULL, NULL, &real.client), TR_OK);
    a.f = &real;
    assert_int_equal(tr_spawn(real.ctx, &server_behaviour, NULL, &opts, &a.to),
                     TR_OK);
    call(&real, a.to, REQ_SLOW, 0, 0);
    stats_arg sa = {real.sys, a.to};
    assert_true(tr_test_wait_handled(real.sys, 1, 5000));
    assert_true(tr_test_wait_until(mailbox_empty, &sa, 5000));
    assert_int_equal(tr_send(real.ctx, a.to, REQ_DROP, &n, sizeof(n)), TR_OK);
    pthread_t t;
    tr_init_relaxed(&a.done, 0);
    assert_int_equal(pthread_create(&t, NULL, ask_timed, &a), 0);
    if (!tr_test_wait_until(asker_done, &a, 5000)) {
        fail_msg("tr_ask waits for room past its timeout");
    }
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ETIMEDOUT);
    assert_true(a.took_ms >= 100);
    assert_true(a.took_ms < 2000);
    tr_store_rel(&slow_release, true);
    expect(TR_OK, 0);
    tr_test_shutdown(real.sys);
    f->sys = manual;
}

/* ---- calls whose handle is lost, at shutdown ---- */

static void
test_ask_with_a_lost_handle_ends_at_shutdown(void **state)
{
    fixture *f = *state;
    timed_asker a = {.f = f, .to = f->server, .type = REQ_STASH};
    pthread_t t;

    stashed = NULL;
    tr_init_relaxed(&a.done, 0);
    assert_int_equal(pthread_create(&t, NULL, ask_timed, &a), 0);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000));
    /* No timeout, and the handle is out of every actor's reach. */
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->sys = NULL;
    if (!tr_test_wait_until(asker_done, &a, 5000)) {
        fail_msg("tr_ask still waits after shutdown returned");
    }
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_ECLOSED);
    /* The late holder touches nothing of the freed system. */
    tr_reply_drop(stashed);
}

/* A plain thread answers a taken handle with a large reply while the
 * caller's system shuts down. */
enum { BIG_REPLY = 32 << 20 };

typedef struct late_reply {
    tr_atomic(int) started;
    int rc;
} late_reply;

static void *
reply_big(void *p)
{
    late_reply *l = p;
    char *data = calloc(1, BIG_REPLY);

    assert_non_null(data);
    tr_store_seqcst(&l->started, 1);
    l->rc = tr_reply_send(stashed, data, BIG_REPLY);
    free(data);
    return NULL;
}

static bool
stash_taken(void *p)
{
    (void)p;
    return tr_load_acq(&stash_done) != 0;
}

static bool
reply_started(void *p)
{
    return tr_load_seqcst(&((late_reply *)p)->started) != 0;
}

/*
 * The answer is under way (its payload being copied) when shutdown is
 * called: shutdown waits for it, or the answer is refused (TR_ECLOSED)
 * and shutdown ends the call. Before the fix the holder took the handle
 * off shutdown's list before it copied, and shutdown freed the system
 * under it (ASan: use after free in the reply's delivery).
 */
static void
test_reply_under_way_at_shutdown(void **state)
{
    fixture *f = *state;
    late_reply l = {.rc = -1};
    pthread_t t;

    stashed = NULL;
    tr_store_seqcst(&stash_done, 0);
    tr_init_relaxed(&l.started, 0);
    call(f, f->server, REQ_STASH, 0, 0);
    assert_true(tr_test_wait_until(stash_taken, NULL, 5000));
    assert_non_null(stashed);
    assert_int_equal(pthread_create(&t, NULL, reply_big, &l), 0);
    assert_true(tr_test_wait_until(reply_started, &l, 5000));
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->sys = NULL;
    pthread_join(t, NULL);
    assert_true(l.rc == TR_OK || l.rc == TR_ECLOSED);
    /* The continuation ran at most once: with the reply, if it reached
     * the caller before shutdown stopped it, or with TR_ECLOSED. */
    report r;
    size_t len;
    if (tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, tr_ms(50)) == TR_OK) {
        assert_true(r.status == TR_OK || r.status == TR_ECLOSED);
        expect_quiet();
    }
}

static void
test_call_with_a_lost_handle_ends_at_shutdown(void **state)
{
    fixture *f = *state;
    int n = 1;

    stashed = NULL;
    call(f, f->server, REQ_STASH, 0, 0);
    assert_true(tr_test_wait_handled(f->sys, 2, 5000));
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->sys = NULL;
    assert_non_null(stashed);
    /* The call ended with its caller; a late reply finds it over and
     * touches nothing of the freed system. */
    assert_int_equal(tr_reply_send(stashed, &n, sizeof(n)), TR_ECLOSED);
    expect_quiet();
}

/* ---- calls from `stop` in shutdown's last pass ---- */

/* Traps exits, so shutdown's stop request does not stop it: it is still
 * live when the workers are joined, and its `stop` runs in the last pass
 * on the shutting-down thread. That `stop` calls the next lingerer. */
typedef struct lingerer {
    tr_addr next;
} lingerer;

static int
lingerer_init(tr_ctx *ctx, void *state, const void *arg)
{
    if (arg != NULL) {
        ((lingerer *)state)->next = *(const tr_addr *)arg;
    }
    return tr_trap_exits(ctx, true);
}

static int
lingerer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    if (msg->type == 0 && msg->size == sizeof(tr_addr)) {
        memcpy(&((lingerer *)state)->next, msg->data, sizeof(tr_addr));
    }
    if (tr_msg_is_call(ctx, msg)) {
        int n = 0;
        return tr_reply(ctx, msg, &n, sizeof(n));
    }
    return TR_OK; /* TR_MSG_EXIT included: it keeps running */
}

static void
lingerer_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    lingerer *l = state;
    report r = {.type = REQ_INC};
    int n = 0;
    (void)exit;
    if (tr_addr_is_none(l->next)) {
        return;
    }
    r.status = tr_call(ctx, l->next, REQ_INC, &n, sizeof(n), tr_ms(1000),
                       on_reply, NULL);
    post(&r);
}

static const tr_behaviour lingerer_behaviour = {
    .name = "lingerer",
    .state_size = sizeof(lingerer),
    .init = lingerer_init,
    .handle = lingerer_handle,
    .stop = lingerer_stop,
};

static void
test_call_from_stop_in_the_last_pass_is_refused(void **state)
{
    fixture *f = *state;
    tr_addr last;
    tr_addr first;

    /* `first` takes a lower slot than `last` (a fresh system hands slots
     * out in order): the last pass stops it while `last` still lives. */
    assert_int_equal(tr_spawn(f->ctx, &lingerer_behaviour, NULL, NULL, &first),
                     TR_OK);
    assert_int_equal(tr_spawn(f->ctx, &lingerer_behaviour, NULL, NULL, &last),
                     TR_OK);
    assert_int_equal(tr_send(f->ctx, first, 0, &last, sizeof(last)), TR_OK);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000));
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(100)), TR_ETIMEDOUT);
    f->sys = NULL;
    /* The continuation could never run: the call is refused, and nothing
     * touched the freed timers. */
    report r = next_report();
    assert_int_equal(r.type, REQ_INC);
    assert_int_equal(r.status, TR_ESHUTDOWN);
    expect_quiet();
}

/* A plain thread can tell "the callee failed on my request, and why" from
 * "the callee is gone" (stopped, or dropped the request). */
static void
test_ask_tells_failed_from_gone(void **state)
{
    fixture *f = *state;
    int n = 1;
    int out = 0;
    tr_reply_buf reply = {.data = &out, .cap = sizeof(out)};

    assert_int_equal(tr_ask_wait(f->ctx, f->server, REQ_FAIL, &n, sizeof(n),
                                 &reply, tr_ms(5000)),
                     TR_EFAILED);
    assert_non_null(strstr(reply.why, "the callee failed"));
    assert_non_null(strstr(reply.why, "TR_EINVAL"));
    /* The server was restarted by nobody: it is gone now. */
    assert_true(tr_test_wait_stopped(f->sys, f->server, 5000));
    assert_int_equal(tr_ask_wait(f->ctx, f->server, REQ_INC, &n, sizeof(n),
                                 &reply, tr_ms(5000)),
                     TR_ENOACTOR);
    tr_addr other;
    assert_int_equal(
        tr_spawn(f->ctx, &server_behaviour, &f->helper, NULL, &other), TR_OK);
    assert_int_equal(tr_ask_wait(f->ctx, other, REQ_DROP, &n, sizeof(n), &reply,
                                 tr_ms(5000)),
                     TR_ECLOSED);
    assert_non_null(strstr(reply.why, "closed"));
    assert_int_equal(tr_ask_wait(f->ctx, other, REQ_STOP, &n, sizeof(n), &reply,
                                 tr_ms(5000)),
                     TR_ECLOSED);
}

/* ---- call blocks reused across sizes ---- */

/* Payload sizes around the edge of the cached block class (call.c's
 * BLOCK_SMALL, 64) and the inline reply (32), and far past both. */
static const size_t echo_sizes[] = {0, 1, 31, 32, 33, 63, 64, 65, 200, 4096};
enum { ECHO_CALLS = 3000, ECHO_TYPE = 40 };

static void
echo_fill(unsigned char *buf, size_t size, unsigned seq)
{
    for (size_t i = 0; i < size; i++) {
        buf[i] = (unsigned char)(seq * 31u + i);
    }
}

static int
echo_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    return tr_reply(ctx, msg, msg->data, msg->size);
}

static const tr_behaviour echo_behaviour = {.name = "echo",
                                            .handle = echo_handle};

typedef struct chain {
    tr_addr echo;
    unsigned seq;
    unsigned bad;
} chain;

static int chain_next(tr_ctx *ctx, chain *c);

static int
chain_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    chain *c = state;
    unsigned char want[4096];
    size_t size = echo_sizes[c->seq % TR_ARRAY_LEN(echo_sizes)];

    (void)arg;
    echo_fill(want, size, c->seq);
    if (res->status != TR_OK || res->reply->size != size ||
        (size != 0 && memcmp(res->reply->data, want, size) != 0)) {
        c->bad++;
    }
    c->seq++;
    return chain_next(ctx, c);
}

static int
chain_next(tr_ctx *ctx, chain *c)
{
    unsigned char buf[4096];
    size_t size = echo_sizes[c->seq % TR_ARRAY_LEN(echo_sizes)];

    if (c->seq == ECHO_CALLS) {
        report r = {.status = TR_OK, .value = (int)c->bad};
        post(&r);
        return TR_OK;
    }
    echo_fill(buf, size, c->seq);
    return tr_call(ctx, c->echo, ECHO_TYPE, buf, size, TR_FOREVER, chain_reply,
                   NULL);
}

static int
chain_init(tr_ctx *ctx, void *state, const void *arg)
{
    chain *c = state;
    (void)ctx;
    memcpy(&c->echo, arg, sizeof(c->echo));
    return TR_OK;
}

/* Any message starts the chain of calls. */
static int
chain_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    return chain_next(ctx, state);
}

static const tr_behaviour chain_behaviour = {.name = "chain",
                                             .state_size = sizeof(chain),
                                             .init = chain_init,
                                             .handle = chain_handle};

/*
 * Call blocks are kept by the workers for reuse when their request is
 * small (call.c): calls of every size around that class's edge, from two
 * actors and from a plain thread at once (whose blocks the workers free),
 * must each get exactly their own payload back.
 */
static void
test_call_payloads_of_every_size_come_back_whole(void **state)
{
    fixture *f = *state;
    tr_addr echo;
    tr_addr chains[2];
    unsigned char buf[4096];
    unsigned char got[4096];

    assert_int_equal(tr_spawn(f->ctx, &echo_behaviour, NULL, NULL, &echo),
                     TR_OK);
    for (size_t i = 0; i < TR_ARRAY_LEN(chains); i++) {
        assert_int_equal(
            tr_spawn(f->ctx, &chain_behaviour, &echo, NULL, &chains[i]), TR_OK);
        assert_int_equal(tr_send(f->ctx, chains[i], 1, NULL, 0), TR_OK);
    }
    for (unsigned seq = 0; seq < 500; seq++) {
        size_t size = echo_sizes[seq % TR_ARRAY_LEN(echo_sizes)];
        size_t len = 0;
        echo_fill(buf, size, seq);
        assert_int_equal(tr_test_ask(f->ctx, echo, ECHO_TYPE, buf, size, got,
                                     sizeof(got), &len, 5000),
                         TR_OK);
        assert_int_equal(len, size);
        assert_memory_equal(got, buf, size);
    }
    for (size_t i = 0; i < TR_ARRAY_LEN(chains); i++) {
        report r = next_report();
        assert_int_equal(r.status, TR_OK);
        assert_int_equal(r.value, 0); /* replies that were not the request */
    }
}

/*
 * A continuation's result ends its actor as a handler's does. The reply to
 * REQ_INC with n is n + 1, and it decides: 1 carries on, 2 fails the
 * caller with TR_EIO, 3 stops it. The caller is idle when its reply comes,
 * so the reply is its run's only work (actor.c: run_lean_reply).
 */
static int
verdict_on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    report r = {.status = res->status, .type = res->type};

    (void)state;
    (void)arg;
    if (res->status == TR_OK) {
        memcpy(&r.value, res->reply->data, sizeof(r.value));
    }
    post(&r);
    if (r.value == 2) {
        return TR_EIO;
    }
    return r.value == 3 ? tr_stop(ctx) : TR_OK;
}

static int
verdict_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    cmd c;

    (void)state;
    memcpy(&c, msg->data, sizeof(c));
    return tr_call(ctx, c.to, c.type, &c.n, sizeof(c.n), TR_FOREVER,
                   verdict_on_reply, NULL);
}

/* Reports how it ended: the exit's kind as the status, its code as the
 * value, type 0. */
static void
verdict_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    report r = {.status = (int)exit->kind, .value = exit->code};

    (void)ctx;
    (void)state;
    post(&r);
}

static const tr_behaviour verdict_behaviour = {
    .name = "verdict",
    .handle = verdict_handle,
    .stop = verdict_stop,
};

static void
verdict_call(fixture *f, tr_addr client, int n)
{
    cmd c = {f->server, REQ_INC, n, 0};
    assert_int_equal(tr_send(f->ctx, client, CMD_CALL, &c, sizeof(c)), TR_OK);
    expect(TR_OK, n + 1);
}

static void
test_call_continuation_result_ends_the_caller(void **state)
{
    fixture *f = *state;
    tr_addr failing;
    tr_addr stopping;
    cmd c = {f->server, REQ_INC, 0, 0};
    report r;

    assert_int_equal(tr_spawn(f->ctx, &verdict_behaviour, NULL, NULL, &failing),
                     TR_OK);
    assert_int_equal(
        tr_spawn(f->ctx, &verdict_behaviour, NULL, NULL, &stopping), TR_OK);
    for (int i = 0; i < 100; i++) {
        verdict_call(f, failing, 0);
        verdict_call(f, stopping, 0);
    }
    verdict_call(f, failing, 1);
    r = next_report();
    assert_int_equal(r.status, TR_EXIT_FAILED);
    assert_int_equal(r.value, TR_EIO);
    assert_true(tr_test_wait_stopped(f->sys, failing, 5000));
    assert_int_equal(tr_send(f->ctx, failing, CMD_CALL, &c, sizeof(c)),
                     TR_ENOACTOR);

    verdict_call(f, stopping, 2);
    r = next_report();
    assert_int_equal(r.status, TR_EXIT_NORMAL);
    assert_int_equal(r.value, TR_OK);
    expect_quiet();
}

/* A supervised caller that fails in its continuation is restarted, as
 * one that fails in a handler is: in place, at the same address, where it
 * calls as before. */
typedef struct restarted_arg {
    fixture *f;
    tr_addr sup;
} restarted_arg;

static bool
restarted_once(void *p)
{
    restarted_arg *a = p;
    tr_child_info info;

    return tr_sup_find_child_wait(a->f->ctx, a->sup, "v", tr_ms(5000), &info) ==
               TR_OK &&
           info.restarts == 1 && info.status == TR_CHILD_RUNNING;
}

static void
test_call_supervised_caller_failing_in_its_continuation_is_restarted(
    void **state)
{
    fixture *f = *state;
    tr_child_spec kid = {.id = "v", .behaviour = &verdict_behaviour};
    tr_sup_spec spec = {.name = "verdicts",
                        .max_restarts = 10,
                        .period_ms = 5000,
                        .children = &kid,
                        .len = 1};
    tr_child_info info;
    restarted_arg ra = {.f = f};
    report r;

    assert_int_equal(tr_sup_start(f->ctx, &spec, NULL, &ra.sup), TR_OK);
    assert_int_equal(
        tr_sup_find_child_wait(f->ctx, ra.sup, "v", tr_ms(5000), &info), TR_OK);
    verdict_call(f, info.addr, 0);
    verdict_call(f, info.addr, 1);
    r = next_report();
    assert_int_equal(r.status, TR_EXIT_FAILED);
    assert_int_equal(r.value, TR_EIO);
    assert_true(tr_test_wait_until(restarted_once, &ra, 5000));
    verdict_call(f, info.addr, 0);
    expect_quiet();
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_call_gets_the_reply),
        T(test_call_times_out_and_a_late_reply_is_dropped),
        T(test_call_deferred_reply_from_a_later_message),
        T(test_call_forwarded_handle_is_answered_by_another_actor),
        T(test_call_unanswered_request_ends_closed),
        T(test_call_replying_twice_is_refused),
        T(test_call_callee_failing_or_stopping_closes_queued_calls),
        T(test_ask_tells_failed_from_gone),
        T(test_call_stopping_callee_drops_its_held_handle),
        T(test_call_misuse_is_refused_without_continuation),
        T(test_ask_from_a_thread),
        T(test_ask_times_out_on_the_system_clock),
        T(test_ask_pending_at_shutdown_ends_closed),
        T(test_ask_timeout_bounds_the_wait_for_room),
        T(test_ask_timeout_bounds_the_wait_for_room_real_clock),
        T(test_ask_with_a_lost_handle_ends_at_shutdown),
        T(test_call_with_a_lost_handle_ends_at_shutdown),
        T(test_reply_under_way_at_shutdown),
        T(test_call_from_stop_in_the_last_pass_is_refused),
        T(test_call_payloads_of_every_size_come_back_whole),
        T(test_call_continuation_result_ends_the_caller),
        T(test_call_supervised_caller_failing_in_its_continuation_is_restarted),
    };
#undef T
    return cmocka_run_group_tests_name("call", tests, NULL, NULL);
}
