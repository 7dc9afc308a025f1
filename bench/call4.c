/*
 * W3c call4: four client actors make 125,000 sequential calls (tr_call)
 * each to one server actor, which replies request + 1.
 *
 * Client i sends the values i * per .. i * per + per - 1, one call at a
 * time; its continuation checks that the reply is the value it sent + 1
 * (so a reply that reached the wrong client would be caught) and makes the
 * next call. Calls have no timeout (0): the server always answers, and a
 * call that ended otherwise is reported as a failure. Each client posts its
 * count when done; the clock starts when the main thread sends the clients
 * MSG_GO and stops at the last client's post.
 */
#include "bench_util.h"

#include <string.h>

enum { CLIENTS = 4 };
enum { MSG_GO = 1, MSG_REQUEST = 2 };

/* ---- a client ---- */

typedef struct client_args {
    tr_mailbox *done;
    tr_addr server;
    uint64_t first; /* the first value to send */
    uint64_t count; /* calls to make */
} client_args;

typedef struct client {
    tr_mailbox *done;
    tr_addr server;
    uint64_t next; /* the value of the call in flight */
    uint64_t made; /* calls answered correctly */
    uint64_t count;
} client;

static int on_reply(tr_ctx *ctx, void *state, const tr_call_result *result,
                    void *arg);

static int
call_next(tr_ctx *ctx, client *c)
{
    int rc = tr_call(ctx, c->server, MSG_REQUEST, &c->next, sizeof(c->next),
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
    if (v != c->next + 1) {
        bench_post_fail(c->done, TR_EINVAL, "a reply of the wrong value");
        return tr_stop(ctx);
    }
    c->next++;
    if (++c->made == c->count) {
        bench_post(c->done, c->made);
        return TR_OK;
    }
    return call_next(ctx, c);
}

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    client *c = state;
    const client_args *a = arg;

    (void)ctx;
    c->done = a->done;
    c->server = a->server;
    c->next = a->first;
    c->count = a->count;
    return TR_OK;
}

/* MSG_GO: make the first call. */
static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    return call_next(ctx, state);
}

static const tr_behaviour client_behaviour = {
    .name = "call4_client",
    .state_size = sizeof(client),
    .init = client_init,
    .handle = client_handle,
};

int
main(void)
{
    const uint64_t per = bench_scaled(125000);
    const uint64_t total = CLIENTS * per;
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_addr clients[CLIENTS];
    tr_addr server;
    uint64_t answered = 0;
    double t_end = 0;
    double t0;

    bench_check(tr_spawn(ctx, &bench_call_server, &done, NULL, &server),
                "spawn server");
    for (int i = 0; i < CLIENTS; i++) {
        client_args args = {
            .done = done,
            .server = server,
            .first = (uint64_t)i * per,
            .count = per,
        };
        bench_check(tr_spawn(ctx, &client_behaviour, &args, NULL, &clients[i]),
                    "spawn client");
    }

    t0 = bench_now();
    for (int i = 0; i < CLIENTS; i++) {
        bench_check(tr_send(ctx, clients[i], MSG_GO, NULL, 0), "send go");
    }
    /* Each client posts once; the posts' stamps may arrive out of order. */
    for (int i = 0; i < CLIENTS; i++) {
        bench_done d = bench_wait(done);
        answered += d.value;
        if (d.t > t_end) {
            t_end = d.t;
        }
    }
    if (answered != total) {
        bench_fail("%llu calls, expected %llu", (unsigned long long)answered,
                   (unsigned long long)total);
    }
    bench_finish(sys, done);
    bench_report("call4", total, t_end - t0, NULL);
    return 0;
}
