/*
 * W6 fanout: 1 publisher sends 1,000,000 values through a broadcast
 * channel to 16 subscriber actors; each counts all of them.
 *
 * The publisher is an actor that sends CHUNK values per handler call and
 * then sends itself MSG_MORE, so that on two workers it never holds a core
 * from the subscribers for long. Subscribers subscribe in `init`; each
 * value reaches a handler as a message whose payload is the shared value
 * (no copy, no mailbox push per value). After the last value the
 * publisher drops its sender; each subscriber, on its closed message,
 * posts the sum of what it counted, and fails the run if it lagged or
 * missed anything.
 *
 * Broadcast never blocks a sender: a publisher that outruns its
 * subscribers makes them lag, and then they would not count every value.
 * So the publisher yields, the way a tokio task would: before each chunk
 * it reads tr_broadcast_len (values some subscriber has not seen yet) and,
 * when a chunk would not fit in the ring, sends itself MSG_MORE without
 * sending, which lets the subscribers run first. A lag still fails the
 * run. RING=<n> in the environment picks another capacity.
 */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SUBSCRIBERS = 16, CHUNK = 1024, RING = 16384 };
enum {
    MSG_VALUE = 1,
    MSG_LAGGED = 2,
    MSG_CLOSED = 3,
    MSG_GO = 4,
    MSG_MORE = 5
};

/* ---- a subscriber ---- */

typedef struct sub_args {
    tr_broadcast_tx *tx;
    tr_mailbox *done;
    uint64_t expect;
} sub_args;

typedef struct subscriber {
    tr_mailbox *done;
    uint64_t expect;
    uint64_t got;
    uint64_t sum;
} subscriber;

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {MSG_VALUE, MSG_LAGGED,
                                                 MSG_CLOSED};
    subscriber *s = state;
    const sub_args *a = arg;

    s->done = a->done;
    s->expect = a->expect;
    return tr_broadcast_subscribe_actor(ctx, a->tx, &types, NULL);
}

static int
sub_value(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    subscriber *s = state;
    uint64_t v;

    (void)ctx;
    memcpy(&v, msg->data, sizeof(v));
    s->sum += v;
    s->got++;
    return TR_OK;
}

static int
sub_lagged(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    subscriber *s = state;

    (void)msg;
    bench_post_fail(s->done, TR_ELAGGED, "a subscriber lagged");
    return tr_stop(ctx);
}

static int
sub_closed(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    subscriber *s = state;

    (void)msg;
    if (s->got != s->expect) {
        bench_post_fail(s->done, TR_EINVAL, "a subscriber missed values");
    } else {
        bench_post(s->done, s->sum);
    }
    return tr_stop(ctx);
}

static const tr_handler sub_handlers[] = {
    {MSG_VALUE, sub_value},
    {MSG_LAGGED, sub_lagged},
    {MSG_CLOSED, sub_closed},
};

static const tr_dispatch sub_dispatch = {
    .handlers = sub_handlers,
    .len = sizeof(sub_handlers) / sizeof(sub_handlers[0]),
};

static const tr_behaviour sub_behaviour = {
    .name = "fanout_subscriber",
    .state_size = sizeof(subscriber),
    .init = sub_init,
    .dispatch = &sub_dispatch,
};

/* ---- the publisher ---- */

typedef struct pub_args {
    tr_broadcast_tx *tx;
    tr_mailbox *done;
    uint64_t count;
    size_t capacity;
} pub_args;

typedef struct publisher {
    tr_broadcast_tx *tx;
    tr_mailbox *done;
    uint64_t next;
    uint64_t count;
    size_t room; /* the ring's capacity less one chunk */
} publisher;

static int
pub_init(tr_ctx *ctx, void *state, const void *arg)
{
    publisher *p = state;
    const pub_args *a = arg;

    (void)ctx;
    p->tx = a->tx;
    p->done = a->done;
    p->count = a->count;
    p->room = a->capacity > CHUNK ? a->capacity - CHUNK : 0;
    return TR_OK;
}

/* MSG_GO and MSG_MORE: send the next chunk. */
static int
pub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    publisher *p = state;
    uint64_t end = p->next + CHUNK < p->count ? p->next + CHUNK : p->count;
    int rc;

    (void)msg;
    if (tr_broadcast_len(p->tx) > p->room) {
        end = p->next; /* no room for a chunk: let the subscribers run */
    }
    for (; p->next < end; p->next++) {
        rc = tr_broadcast_send(p->tx, &p->next, sizeof(p->next));
        if (rc != TR_OK) {
            bench_post_fail(p->done, rc, "broadcast a value");
            return tr_stop(ctx);
        }
    }
    if (p->next == p->count) {
        tr_broadcast_tx_destroy(p->tx); /* closes: subscribers report */
        return tr_stop(ctx);
    }
    rc = tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    if (rc != TR_OK) {
        bench_post_fail(p->done, rc, "send more");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_behaviour pub_behaviour = {
    .name = "fanout_publisher",
    .state_size = sizeof(publisher),
    .init = pub_init,
    .handle = pub_handle,
};

int
main(void)
{
    const uint64_t n = bench_scaled(1000000);
    const uint64_t expect_sum = n * (n - 1) / 2;
    const char *ring = getenv("RING");
    size_t capacity = ring != NULL ? (size_t)strtoull(ring, NULL, 10) : RING;
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_broadcast_tx *tx;
    tr_addr pub;
    double t0;
    double last = 0;
    char extra[64];

    bench_check(tr_broadcast_create(capacity, sizeof(uint64_t), &tx),
                "create the channel");
    for (int i = 0; i < SUBSCRIBERS; i++) {
        sub_args a = {.tx = tx, .done = done, .expect = n};
        bench_check(tr_spawn(ctx, &sub_behaviour, &a, NULL, NULL),
                    "spawn a subscriber");
    }
    pub_args pa = {.tx = tx, .done = done, .count = n, .capacity = capacity};
    bench_check(tr_spawn(ctx, &pub_behaviour, &pa, NULL, &pub),
                "spawn the publisher");

    t0 = bench_now();
    bench_check(tr_send(ctx, pub, MSG_GO, NULL, 0), "send go");
    for (int i = 0; i < SUBSCRIBERS; i++) {
        bench_done d = bench_wait(done);
        if (d.value != expect_sum) {
            bench_fail("subscriber sum %llu, expected %llu",
                       (unsigned long long)d.value,
                       (unsigned long long)expect_sum);
        }
        last = d.t > last ? d.t : last;
    }
    bench_finish(sys, done);
    snprintf(extra, sizeof(extra), " ring=%zu", capacity);
    bench_report("fanout", n * SUBSCRIBERS, last - t0, extra);
    return 0;
}
