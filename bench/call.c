/*
 * W3 call: one client actor makes 500,000 sequential calls (tr_call) to a
 * server actor, which replies request + 1.
 *
 * The client sends the call's number; its continuation checks that the
 * reply is that number + 1 and makes the next call, so exactly one call is
 * in flight at a time. Calls have no timeout (0): the server always
 * answers, and a call that ended otherwise is reported as a failure. The
 * clock starts when the main thread sends the client MSG_GO and stops when
 * the last reply's continuation runs.
 */
#include "bench_util.h"

#include <string.h>

enum { MSG_GO = 1, MSG_REQUEST = 2 };

/* ---- the client ---- */

typedef struct client {
    tr_mailbox *done;
    tr_addr server; /* from MSG_GO */
    uint64_t calls; /* from MSG_GO */
    uint64_t made;  /* calls answered correctly */
} client;

/* The start message: whom to call and how often. */
typedef struct go_msg {
    tr_addr server;
    uint64_t calls;
} go_msg;

static int on_reply(tr_ctx *ctx, void *state, const tr_call_result *result,
                    void *arg);

static int
call_next(tr_ctx *ctx, client *c)
{
    int rc = tr_call(ctx, c->server, MSG_REQUEST, &c->made, sizeof(c->made),
                     TR_FOREVER, on_reply, NULL);

    if (rc != TR_OK) {
        bench_post_fail(c->done, rc, "call");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static int
on_reply(tr_ctx *ctx, void *state, const tr_call_result *result, void *arg)
{
    client *c = state;
    uint64_t v;

    (void)arg;
    if (result->status != TR_OK) {
        bench_post_fail(c->done, result->status,
                        "a call did not end in a reply");
        return tr_stop(ctx);
    }
    if (result->reply->size != sizeof(v)) {
        bench_post_fail(c->done, TR_EINVAL, "a reply of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&v, result->reply->data, sizeof(v));
    if (v != c->made + 1) {
        bench_post_fail(c->done, TR_EINVAL, "a reply of the wrong value");
        return tr_stop(ctx);
    }
    if (++c->made == c->calls) {
        bench_post(c->done, c->made);
        return TR_OK;
    }
    return call_next(ctx, c);
}

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    client *c = state;

    (void)ctx;
    memcpy(&c->done, arg, sizeof(c->done));
    return TR_OK;
}

/* MSG_GO: make the first call. */
static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client *c = state;
    go_msg go;

    memcpy(&go, msg->data, sizeof(go));
    c->server = go.server;
    c->calls = go.calls;
    return call_next(ctx, c);
}

static const tr_behaviour client_behaviour = {
    .name = "call_client",
    .state_size = sizeof(client),
    .init = client_init,
    .handle = client_handle,
};

int
main(void)
{
    const uint64_t calls = bench_scaled(500000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    go_msg go = {.calls = calls};
    tr_addr client_addr;
    bench_done d;
    double t0;

    bench_check(tr_spawn(ctx, &bench_call_server, &done, NULL, &go.server),
                "spawn server");
    bench_check(tr_spawn(ctx, &client_behaviour, &done, NULL, &client_addr),
                "spawn client");

    t0 = bench_now();
    bench_check(tr_send(ctx, client_addr, MSG_GO, &go, sizeof(go)), "send go");
    d = bench_wait(done);
    if (d.value != calls) {
        bench_fail("%llu calls, expected %llu", (unsigned long long)d.value,
                   (unsigned long long)calls);
    }
    bench_finish(sys, done);
    bench_report("call", calls, d.t - t0, NULL);
    return 0;
}
