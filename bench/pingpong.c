/*
 * W2 pingpong: two actors bounce one message 1,000,000 round trips.
 *
 * The pinger sends the round's number; the ponger echoes it to the sender,
 * and the pinger checks the echo before the next round. The clock starts
 * when the main thread sends the pinger MSG_GO and stops when the last echo
 * arrives.
 */
#include "bench_util.h"

#include <string.h>

enum { MSG_GO = 1, MSG_PING = 2, MSG_PONG = 3 };

/* ---- the ponger ---- */

static int
ponger_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_mailbox *const *done = state;
    int rc = tr_send(ctx, msg->from, MSG_PONG, msg->data, msg->size);

    if (rc != TR_OK) {
        bench_post_fail(*done, rc, "send pong");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_behaviour ponger_behaviour = {
    .name = "pingpong_ponger",
    .state_size = sizeof(tr_mailbox *),
    .init = bench_init_mailbox,
    .handle = ponger_handle,
};

/* ---- the pinger ---- */

typedef struct pinger {
    tr_mailbox *done; /* first: set by bench_init_mailbox */
    tr_addr peer;     /* from MSG_GO */
    uint64_t rounds;  /* from MSG_GO */
    uint64_t round;   /* round trips completed */
} pinger;

/* The start message: whom to ping and how often. */
typedef struct go_msg {
    tr_addr peer;
    uint64_t rounds;
} go_msg;

static int
ping(tr_ctx *ctx, pinger *p)
{
    int rc = tr_send(ctx, p->peer, MSG_PING, &p->round, sizeof(p->round));

    if (rc != TR_OK) {
        bench_post_fail(p->done, rc, "send ping");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static int
on_go(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pinger *p = state;
    go_msg go;

    memcpy(&go, msg->data, sizeof(go));
    p->peer = go.peer;
    p->rounds = go.rounds;
    return ping(ctx, p);
}

static int
on_pong(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pinger *p = state;
    uint64_t echo;

    if (msg->size != sizeof(echo)) {
        bench_post_fail(p->done, TR_EINVAL, "an echo of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&echo, msg->data, sizeof(echo));
    if (echo != p->round) {
        bench_post_fail(p->done, TR_EINVAL, "an echo of the wrong round");
        return tr_stop(ctx);
    }
    if (++p->round == p->rounds) {
        bench_post(p->done, p->round);
        return TR_OK;
    }
    return ping(ctx, p);
}

static const tr_handler pinger_handlers[] = {
    {MSG_GO, on_go},
    {MSG_PONG, on_pong},
};

static const tr_dispatch pinger_dispatch = {
    .handlers = pinger_handlers,
    .len = sizeof(pinger_handlers) / sizeof(pinger_handlers[0]),
};

static const tr_behaviour pinger_behaviour = {
    .name = "pingpong_pinger",
    .state_size = sizeof(pinger),
    .init = bench_init_mailbox,
    .dispatch = &pinger_dispatch,
};

int
main(void)
{
    const uint64_t rounds = bench_scaled(1000000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    go_msg go = {.rounds = rounds};
    tr_addr pinger_addr;
    bench_done d;
    double t0;

    bench_check(tr_spawn(ctx, &ponger_behaviour, &done, NULL, &go.peer),
                "spawn ponger");
    bench_check(tr_spawn(ctx, &pinger_behaviour, &done, NULL, &pinger_addr),
                "spawn pinger");

    t0 = bench_now();
    bench_check(tr_send(ctx, pinger_addr, MSG_GO, &go, sizeof(go)), "send go");
    d = bench_wait(done);
    if (d.value != rounds) {
        bench_fail("%llu round trips, expected %llu",
                   (unsigned long long)d.value, (unsigned long long)rounds);
    }
    bench_finish(sys, done);
    bench_report("pingpong", rounds, d.t - t0, NULL);
    return 0;
}
