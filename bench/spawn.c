/*
 * W4 spawn: spawn 1,000,000 actors, each with its own mailbox; each
 * receives one message and acknowledges it to a collector actor. All stay
 * alive until the last acknowledgement, then all are stopped.
 *
 * The main thread spawns the actors and sends each its message, keeping
 * the addresses to stop them later; the address array is allocated and
 * touched before the baseline RSS is read, so bytes_per_actor counts the
 * runtime's memory only. The collector posts to the main thread when the
 * last acknowledgement arrives; the peak RSS then, less the baseline, over
 * the actors, is bytes_per_actor. The main thread then asks every actor to
 * stop, and the last `stop` callback to run posts again. The clock runs
 * from the first spawn to that last stop.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_HELLO = 1, MSG_ACK = 2 };

/* What every spawned actor points to. */
typedef struct shared {
    tr_mailbox *done;
    tr_addr collector;
    atomic_uint_fast64_t alive; /* actors whose `stop` has not run */
} shared;

/* ---- the collector ---- */

typedef struct collector_args {
    tr_mailbox *done;
    uint64_t expect;
} collector_args;

typedef struct collector {
    tr_mailbox *done;
    uint64_t expect;
    uint64_t acks;
} collector;

static int
collector_init(tr_ctx *ctx, void *state, const void *arg)
{
    collector *c = state;
    const collector_args *a = arg;

    (void)ctx;
    c->done = a->done;
    c->expect = a->expect;
    return TR_OK;
}

static int
collector_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    collector *c = state;

    (void)ctx;
    (void)msg;
    if (++c->acks == c->expect) {
        bench_post(c->done, c->acks);
    }
    return TR_OK;
}

static const tr_behaviour collector_behaviour = {
    .name = "spawn_collector",
    .state_size = sizeof(collector),
    .init = collector_init,
    .handle = collector_handle,
};

/* ---- a spawned actor: its state is the pointer to `shared` ---- */

static int
idle_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, &arg, sizeof(arg));
    return TR_OK;
}

static int
idle_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    shared *const *s = state;
    int rc = tr_send(ctx, (*s)->collector, MSG_ACK, NULL, 0);

    (void)msg;
    if (rc != TR_OK) {
        bench_post_fail((*s)->done, rc, "send ack");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static void
idle_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    shared *const *s = state;

    (void)ctx;
    (void)exit;
    /* Relaxed: the count is the only thing handed over, and the post
     * that follows synchronises the main thread with this worker. */
    if (atomic_fetch_sub_explicit(&(*s)->alive, 1, memory_order_relaxed) == 1) {
        bench_post((*s)->done, 0);
    }
}

static const tr_behaviour idle_behaviour = {
    .name = "spawn_idle",
    .state_size = sizeof(shared *),
    .init = idle_init,
    .handle = idle_handle,
    .stop = idle_stop,
};

int
main(void)
{
    const uint64_t actors = bench_scaled(1000000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    collector_args cargs = {.done = done, .expect = actors};
    shared sh = {.done = done};
    tr_addr *addrs = malloc(actors * sizeof(*addrs));
    long base_kb;
    long acked_peak_kb;
    double t0;
    double t_end;
    bench_done d;
    char extra[64];

    if (addrs == NULL) {
        bench_fail("out of memory for %" PRIu64 " addresses", actors);
    }
    /* Not zero: a compiler turns malloc + memset(0) into calloc, whose
     * fresh pages stay untouched until the spawns write them, and they
     * would count as the actors' memory (16 bytes an actor). */
    memset(addrs, 0xff, actors * sizeof(*addrs));
    atomic_init(&sh.alive, actors);
    bench_check(
        tr_spawn(ctx, &collector_behaviour, &cargs, NULL, &sh.collector),
        "spawn collector");

    base_kb = bench_rss_kb();
    t0 = bench_now();
    for (uint64_t i = 0; i < actors; i++) {
        bench_check(tr_spawn(ctx, &idle_behaviour, &sh, NULL, &addrs[i]),
                    "spawn");
        bench_check(tr_send(ctx, addrs[i], MSG_HELLO, NULL, 0), "send hello");
    }
    d = bench_wait(done);
    if (d.value != actors) {
        bench_fail("%" PRIu64 " acknowledgements, expected %" PRIu64, d.value,
                   actors);
    }
    acked_peak_kb = bench_rss_peak_kb();

    for (uint64_t i = 0; i < actors; i++) {
        bench_check(tr_actor_stop(ctx, addrs[i]), "tr_actor_stop");
    }
    d = bench_wait(done);
    t_end = d.t;
    free(addrs);

    bench_finish(sys, done);
    snprintf(extra, sizeof(extra), " bytes_per_actor=%.0f",
             (double)(acked_peak_kb - base_kb) * 1024.0 / (double)actors);
    bench_report("spawn", actors, t_end - t0, extra);
    return 0;
}
