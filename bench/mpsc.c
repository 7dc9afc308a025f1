/*
 * W1 mpsc: 4 producer actors each send 2,500,000 messages (a uint64_t) to
 * one consumer actor, which sums them and checks the sum.
 *
 * Producer p sends the values p * per .. p * per + per - 1, so the total is
 * the sum of 0 .. 4 * per - 1. A producer sends CHUNK messages per handler
 * call and then sends itself MSG_MORE: one long handler would hold its
 * worker, and with two workers and four producers the consumer would wait
 * for a free one. The clock starts when the main thread sends the
 * producers MSG_GO and stops when the consumer has the last message.
 */
#include "bench_util.h"

#include <string.h>

enum { PRODUCERS = 4, CHUNK = 1000 };
enum { MSG_VALUE = 1, MSG_GO = 2, MSG_MORE = 3 };

/* ---- the consumer ---- */

typedef struct consumer_args {
    tr_mailbox *done;
    uint64_t expect; /* messages to receive */
} consumer_args;

typedef struct consumer {
    tr_mailbox *done;
    uint64_t expect;
    uint64_t got;
    uint64_t sum;
} consumer;

static int
consumer_init(tr_ctx *ctx, void *state, const void *arg)
{
    consumer *c = state;
    const consumer_args *a = arg;

    (void)ctx;
    c->done = a->done;
    c->expect = a->expect;
    return TR_OK;
}

static int
consumer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    consumer *c = state;
    uint64_t v;

    if (msg->size != sizeof(v)) {
        bench_post_fail(c->done, TR_EINVAL, "a value of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&v, msg->data, sizeof(v));
    c->sum += v;
    if (++c->got == c->expect) {
        bench_post(c->done, c->sum);
    }
    return TR_OK;
}

static const tr_behaviour consumer_behaviour = {
    .name = "mpsc_consumer",
    .state_size = sizeof(consumer),
    .init = consumer_init,
    .handle = consumer_handle,
};

/* ---- a producer ---- */

typedef struct producer_args {
    tr_mailbox *done;
    tr_addr consumer;
    uint64_t first; /* the first value to send */
    uint64_t count; /* values to send */
} producer_args;

typedef struct producer {
    tr_mailbox *done;
    tr_addr consumer;
    uint64_t next;
    uint64_t left;
} producer;

static int
producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    producer *p = state;
    const producer_args *a = arg;

    (void)ctx;
    p->done = a->done;
    p->consumer = a->consumer;
    p->next = a->first;
    p->left = a->count;
    return TR_OK;
}

/* MSG_GO and MSG_MORE: send the next chunk. */
static int
producer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer *p = state;
    uint64_t n = p->left < CHUNK ? p->left : CHUNK;
    int rc;

    (void)msg;
    for (uint64_t i = 0; i < n; i++) {
        rc = tr_send(ctx, p->consumer, MSG_VALUE, &p->next, sizeof(p->next));
        if (rc != TR_OK) {
            bench_post_fail(p->done, rc, "send a value");
            return tr_stop(ctx);
        }
        p->next++;
    }
    p->left -= n;
    if (p->left == 0) {
        return tr_stop(ctx);
    }
    rc = tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    if (rc != TR_OK) {
        bench_post_fail(p->done, rc, "send more");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_behaviour producer_behaviour = {
    .name = "mpsc_producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_handle,
};

int
main(void)
{
    const uint64_t per = bench_scaled(2500000);
    const uint64_t total = PRODUCERS * per;
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_addr producers[PRODUCERS];
    consumer_args cargs = {.done = done, .expect = total};
    tr_addr cons;
    bench_done d;
    double t0;

    bench_check(tr_spawn(ctx, &consumer_behaviour, &cargs, NULL, &cons),
                "spawn consumer");
    for (int i = 0; i < PRODUCERS; i++) {
        producer_args pargs = {
            .done = done,
            .consumer = cons,
            .first = (uint64_t)i * per,
            .count = per,
        };
        bench_check(
            tr_spawn(ctx, &producer_behaviour, &pargs, NULL, &producers[i]),
            "spawn producer");
    }

    t0 = bench_now();
    for (int i = 0; i < PRODUCERS; i++) {
        bench_check(tr_send(ctx, producers[i], MSG_GO, NULL, 0), "send go");
    }
    d = bench_wait(done);
    if (d.value != total * (total - 1) / 2) {
        bench_fail("sum %llu, expected %llu", (unsigned long long)d.value,
                   (unsigned long long)(total * (total - 1) / 2));
    }
    bench_finish(sys, done);
    bench_report("mpsc", total, d.t - t0, NULL);
    return 0;
}
