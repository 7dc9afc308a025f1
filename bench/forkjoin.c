/*
 * Fork-join (not a BENCH.md workload; the shape issue 11 names): one
 * producer actor deals 6,000,000 values (a uint64_t each) round-robin to
 * 60 worker actors; each worker sums its share and sends its sum to a
 * joiner actor, which checks the total.
 *
 * The producer deals CHUNK values per handler call and then sends itself
 * MSG_MORE, as W1's producers do. The clock starts when the main thread
 * sends the producer MSG_GO and stops when the joiner has every sum.
 */
#include "bench_util.h"

#include <string.h>

enum { WORKERS = 60, CHUNK = 1200 };
enum { MSG_VALUE = 1, MSG_GO = 2, MSG_MORE = 3, MSG_SUM = 4 };

/* ---- the joiner ---- */

typedef struct joiner {
    tr_mailbox *done;
    uint64_t sums; /* still to come */
    uint64_t total;
} joiner;

static int
joiner_init(tr_ctx *ctx, void *state, const void *arg)
{
    joiner *j = state;

    (void)ctx;
    j->done = *(tr_mailbox *const *)arg;
    j->sums = WORKERS;
    return TR_OK;
}

static int
joiner_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    joiner *j = state;
    uint64_t v;

    (void)ctx;
    memcpy(&v, msg->data, sizeof(v));
    j->total += v;
    if (--j->sums == 0) {
        bench_post(j->done, j->total);
    }
    return TR_OK;
}

static const tr_behaviour joiner_behaviour = {
    .name = "forkjoin_joiner",
    .state_size = sizeof(joiner),
    .init = joiner_init,
    .handle = joiner_handle,
};

/* ---- a worker ---- */

typedef struct worker_args {
    tr_addr joiner;
    uint64_t left; /* values still to receive */
} worker_args;

typedef struct worker {
    worker_args a; /* first: copied by worker_init */
    uint64_t sum;
} worker;

static int
worker_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(worker_args));
    return TR_OK;
}

static int
worker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    worker *w = state;
    uint64_t v;

    memcpy(&v, msg->data, sizeof(v));
    w->sum += v;
    if (--w->a.left == 0) {
        return tr_send(ctx, w->a.joiner, MSG_SUM, &w->sum, sizeof(w->sum));
    }
    return TR_OK;
}

static const tr_behaviour worker_behaviour = {
    .name = "forkjoin_worker",
    .state_size = sizeof(worker),
    .init = worker_init,
    .handle = worker_handle,
};

/* ---- the producer ---- */

typedef struct producer {
    tr_mailbox *done;
    tr_addr workers[WORKERS];
    uint64_t next;
    uint64_t total;
} producer;

/* MSG_GO carries the worker addresses; MSG_GO and MSG_MORE deal the next
 * chunk. */
static int
producer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer *p = state;
    uint64_t end;
    int rc;

    if (msg->type == MSG_GO) {
        memcpy(p->workers, msg->data, sizeof(p->workers));
    }
    end = p->total - p->next < CHUNK ? p->total : p->next + CHUNK;
    for (; p->next < end; p->next++) {
        rc = tr_send(ctx, p->workers[p->next % WORKERS], MSG_VALUE, &p->next,
                     sizeof(p->next));
        if (rc != TR_OK) {
            bench_post_fail(p->done, rc, "send a value");
            return tr_stop(ctx);
        }
    }
    if (p->next == p->total) {
        return tr_stop(ctx);
    }
    rc = tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    if (rc != TR_OK) {
        bench_post_fail(p->done, rc, "send more");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static int
producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    producer *p = state;

    (void)ctx;
    memcpy(p, arg, sizeof(*p));
    return TR_OK;
}

static const tr_behaviour producer_behaviour = {
    .name = "forkjoin_producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_handle,
};

int
main(void)
{
    /* A multiple of WORKERS, so every worker gets the same share. */
    const uint64_t total = bench_scaled(100000) * WORKERS;
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    producer pinit = {.done = done, .total = total};
    worker_args wargs = {.left = total / WORKERS};
    tr_addr prod;
    bench_done d;
    double t0;

    bench_check(tr_spawn(ctx, &joiner_behaviour, &done, NULL, &wargs.joiner),
                "spawn joiner");
    for (int i = 0; i < WORKERS; i++) {
        bench_check(
            tr_spawn(ctx, &worker_behaviour, &wargs, NULL, &pinit.workers[i]),
            "spawn worker");
    }
    bench_check(tr_spawn(ctx, &producer_behaviour, &pinit, NULL, &prod),
                "spawn producer");

    t0 = bench_now();
    bench_check(
        tr_send(ctx, prod, MSG_GO, pinit.workers, sizeof(pinit.workers)),
        "send go");
    d = bench_wait(done);
    if (d.value != total * (total - 1) / 2) {
        bench_fail("sum %llu, expected %llu", (unsigned long long)d.value,
                   (unsigned long long)(total * (total - 1) / 2));
    }
    bench_finish(sys, done);
    bench_report("forkjoin", total, d.t - t0, NULL);
    return 0;
}
