/*
 * Pairs (not a BENCH.md workload; a shape that two cores should run twice
 * as fast as one): 8 independent ping-pong pairs, 125,000 round trips
 * each, 1,000,000 in all. Every message costs its handler WORK rounds of
 * arithmetic (64: a few tens of nanoseconds), as a real handler's work
 * would. No pair talks to another, so nothing ties them to one core.
 *
 * Each pinger sends the round's number and its running hash; the ponger
 * folds the number into the hash and sends it back; the pinger checks
 * the echo. The clock starts when the main thread sends the pingers
 * MSG_GO and stops when the last pair is done.
 */
#include "bench_util.h"

#include <string.h>

enum { PAIRS = 8, WORK = 64 };
enum { MSG_GO = 1, MSG_PING = 2, MSG_PONG = 3 };

/* The round's number and the pair's hash, both ways. */
typedef struct ball {
    uint64_t round;
    uint64_t hash;
} ball;

/* The handlers' work: WORK rounds of a multiply-add over the hash. */
static uint64_t
work(uint64_t h, uint64_t round)
{
    for (unsigned i = 0; i < WORK; i++) {
        h = h * 6364136223846793005u + round + i;
    }
    return h;
}

/* ---- the ponger ---- */

static int
ponger_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_mailbox *const *done = state;
    ball b;
    int rc;

    if (msg->size != sizeof(b)) {
        bench_post_fail(*done, TR_EINVAL, "a ball of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&b, msg->data, sizeof(b));
    b.hash = work(b.hash, b.round);
    rc = tr_send(ctx, msg->from, MSG_PONG, &b, sizeof(b));
    if (rc != TR_OK) {
        bench_post_fail(*done, rc, "send pong");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_behaviour ponger_behaviour = {
    .name = "pairs_ponger",
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
    uint64_t hash;    /* the pair's hash, folded by the ponger */
} pinger;

typedef struct go_msg {
    tr_addr peer;
    uint64_t rounds;
} go_msg;

static int
ping(tr_ctx *ctx, pinger *p)
{
    ball b = {.round = p->round, .hash = p->hash};
    int rc = tr_send(ctx, p->peer, MSG_PING, &b, sizeof(b));

    if (rc != TR_OK) {
        bench_post_fail(p->done, rc, "send ping");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static int
pinger_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pinger *p = state;
    ball b;

    if (msg->type == MSG_GO) {
        go_msg go;
        memcpy(&go, msg->data, sizeof(go));
        p->peer = go.peer;
        p->rounds = go.rounds;
        return ping(ctx, p);
    }
    if (msg->size != sizeof(b)) {
        bench_post_fail(p->done, TR_EINVAL, "a ball of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&b, msg->data, sizeof(b));
    /* The ponger's work, done again here to check it. */
    if (b.round != p->round || b.hash != work(p->hash, p->round)) {
        bench_post_fail(p->done, TR_EINVAL, "a wrong echo");
        return tr_stop(ctx);
    }
    p->hash = b.hash;
    if (++p->round == p->rounds) {
        bench_post(p->done, p->round);
        return TR_OK;
    }
    return ping(ctx, p);
}

static const tr_behaviour pinger_behaviour = {
    .name = "pairs_pinger",
    .state_size = sizeof(pinger),
    .init = bench_init_mailbox,
    .handle = pinger_handle,
};

int
main(void)
{
    const uint64_t rounds = bench_scaled(125000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_addr pingers[PAIRS];
    go_msg go[PAIRS];
    uint64_t total = 0;
    bench_done d = {0};
    double t0;

    for (int i = 0; i < PAIRS; i++) {
        go[i].rounds = rounds;
        bench_check(tr_spawn(ctx, &ponger_behaviour, &done, NULL, &go[i].peer),
                    "spawn ponger");
        bench_check(tr_spawn(ctx, &pinger_behaviour, &done, NULL, &pingers[i]),
                    "spawn pinger");
    }
    t0 = bench_now();
    for (int i = 0; i < PAIRS; i++) {
        bench_check(tr_send(ctx, pingers[i], MSG_GO, &go[i], sizeof(go[i])),
                    "send go");
    }
    for (int i = 0; i < PAIRS; i++) {
        d = bench_wait(done);
        total += d.value;
    }
    if (total != PAIRS * rounds) {
        bench_fail("%llu round trips, expected %llu", (unsigned long long)total,
                   (unsigned long long)(PAIRS * rounds));
    }
    bench_finish(sys, done);
    bench_report("pairs", total, d.t - t0, NULL);
    return 0;
}
