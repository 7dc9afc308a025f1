/*
 * Actors under load.
 *
 * 1. Cross-sending: A actors each start with tokens and forward every token
 *    to a pseudo-random actor until its hop budget is spent. A guard in each
 *    handler detects two workers running one actor at once; every hop is
 *    handled exactly once.
 * 2. Per-sender order: several producer actors send numbered messages to
 *    one consumer, in bursts from many handler runs on whatever worker;
 *    the consumer sees each producer's numbers in order, none missing.
 * 3. Spawn/stop/send races: plain threads spawn actors, send to random
 *    addresses from a shared table (many of them stopped or stopping), and
 *    stop them. Nothing touches freed memory (run under ASan), and every
 *    accepted message is either handled or counted as a dead letter.
 *
 * Usage: actor_stress [threads] [iterations]
 */
#include "support/tr_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static long n_threads = 4;
static long iterations = 20000;

enum { ACTORS = 64, TOKENS_PER_ACTOR = 8, MSG_TOKEN = 1, MSG_WORK = 2 };

static tr_atomic(long) violations;
static tr_atomic(long) hops_done;

typedef struct cross_state {
    tr_atomic(int) inside; /* the guard */
    uint64_t rng;
    const tr_addr *peers;
} cross_state;

typedef struct token {
    uint32_t hops_left;
} token;

static int
cross_init(tr_ctx *ctx, void *state, const void *arg)
{
    cross_state *s = state;
    (void)ctx;
    s->peers = arg;
    s->rng = tr_self(ctx).id | 1;
    tr_init_relaxed(&s->inside, 0);
    return TR_OK;
}

static int
cross_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    cross_state *s = state;
    token t;
    int rc = TR_OK;

    /* Two workers in here at once would see the other's mark. */
    if (tr_xchg_acqrel(&s->inside, 1) != 0) {
        tr_faa_relaxed(&violations, 1);
    }
    memcpy(&t, msg->data, sizeof(t));
    tr_faa_relaxed(&hops_done, 1);
    if (t.hops_left > 0) {
        t.hops_left--;
        s->rng ^= s->rng << 13;
        s->rng ^= s->rng >> 7;
        s->rng ^= s->rng << 17;
        rc = tr_send(ctx, s->peers[s->rng % ACTORS], MSG_TOKEN, &t, sizeof(t));
    }
    tr_store_rel(&s->inside, 0);
    return rc;
}

static const tr_behaviour cross_behaviour = {
    .name = "cross",
    .state_size = sizeof(cross_state),
    .init = cross_init,
    .handle = cross_handle,
};

typedef struct hops_arg {
    long want;
} hops_arg;

static bool
all_hops_done(void *p)
{
    hops_arg *a = p;
    return tr_load_seqcst(&hops_done) >= a->want;
}

static void
test_actor_stress_cross_sending_never_runs_an_actor_twice(void **state)
{
    tr_system *sys = tr_test_system(0);
    tr_ctx *ctx = tr_system_ctx(sys);
    static tr_addr peers[ACTORS];
    uint32_t hops = (uint32_t)(iterations / 10 + 1);
    hops_arg want = {(long)ACTORS * TOKENS_PER_ACTOR * (long)(hops + 1)};

    (void)state;
    tr_store_relaxed(&violations, 0);
    tr_store_relaxed(&hops_done, 0);
    for (int i = 0; i < ACTORS; i++) {
        assert_int_equal(
            tr_spawn(ctx, &cross_behaviour, peers, NULL, &peers[i]), TR_OK);
    }
    for (int i = 0; i < ACTORS; i++) {
        for (int k = 0; k < TOKENS_PER_ACTOR; k++) {
            token t = {hops};
            assert_int_equal(tr_send(ctx, peers[i], MSG_TOKEN, &t, sizeof(t)),
                             TR_OK);
        }
    }
    assert_true(tr_test_wait_until(all_hops_done, &want, 120000));
    tr_test_shutdown(sys);
    assert_int_equal(tr_load_relaxed(&violations), 0);
    assert_int_equal(tr_load_relaxed(&hops_done), want.want);
}

/* ---- per-sender order between actors ---- */

enum { PRODUCERS = 6, BURST = 100, MSG_SEQ = 3, MSG_MORE = 4 };

typedef struct seq_msg {
    uint32_t producer;
    uint32_t seq;
} seq_msg;

typedef struct fifo_consumer {
    uint32_t next[PRODUCERS];
    long received;
} fifo_consumer;

static tr_atomic(long) fifo_errors;
static tr_atomic(long) fifo_received;

static int
fifo_consume(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    fifo_consumer *c = state;
    seq_msg m;

    (void)ctx;
    memcpy(&m, msg->data, sizeof(m));
    if (m.producer >= PRODUCERS || m.seq != c->next[m.producer]) {
        tr_faa_relaxed(&fifo_errors, 1);
    } else {
        c->next[m.producer]++;
    }
    tr_faa_seqcst(&fifo_received, 1);
    return TR_OK;
}

static const tr_behaviour fifo_consumer_behaviour = {
    .name = "fifo_consumer",
    .state_size = sizeof(fifo_consumer),
    .handle = fifo_consume,
};

typedef struct fifo_producer {
    tr_addr consumer;
    uint32_t id;
    uint32_t sent;
    uint32_t total;
} fifo_producer;

typedef struct producer_start {
    tr_addr consumer;
    uint32_t id;
    uint32_t total;
} producer_start;

static int
fifo_producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    fifo_producer *p = state;
    const producer_start *a = arg;
    (void)ctx;
    p->consumer = a->consumer;
    p->id = a->id;
    p->total = a->total;
    return TR_OK;
}

/* Sends a burst, then asks itself for more: each burst may run on a
 * different worker. */
static int
fifo_produce(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    fifo_producer *p = state;
    (void)msg;
    for (int i = 0; i < BURST && p->sent < p->total; i++) {
        seq_msg m = {p->id, p->sent++};
        int rc = tr_send(ctx, p->consumer, MSG_SEQ, &m, sizeof(m));
        if (rc != TR_OK) {
            return rc;
        }
    }
    if (p->sent < p->total) {
        return tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    }
    return TR_OK;
}

static const tr_behaviour fifo_producer_behaviour = {
    .name = "fifo_producer",
    .state_size = sizeof(fifo_producer),
    .init = fifo_producer_init,
    .handle = fifo_produce,
};

static bool
fifo_all_received(void *p)
{
    return tr_load_seqcst(&fifo_received) >= *(long *)p;
}

static void
test_actor_stress_per_sender_order_between_actors(void **state)
{
    tr_system *sys = tr_test_system(0);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr consumer;
    uint32_t per = (uint32_t)iterations;
    long want = (long)per * PRODUCERS;

    (void)state;
    tr_store_relaxed(&fifo_errors, 0);
    tr_store_relaxed(&fifo_received, 0);
    assert_int_equal(
        tr_spawn(ctx, &fifo_consumer_behaviour, NULL, NULL, &consumer), TR_OK);
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        producer_start a = {consumer, i, per};
        tr_addr p;
        assert_int_equal(tr_spawn(ctx, &fifo_producer_behaviour, &a, NULL, &p),
                         TR_OK);
        assert_int_equal(tr_send(ctx, p, MSG_MORE, NULL, 0), TR_OK);
    }
    assert_true(tr_test_wait_until(fifo_all_received, &want, 120000));
    tr_test_shutdown(sys);
    assert_int_equal(tr_load_relaxed(&fifo_errors), 0);
    assert_int_equal(tr_load_relaxed(&fifo_received), want);
}

/* ---- spawn / stop / send races ---- */

enum { SLOTS = 256 };

typedef struct race {
    tr_system *sys;
    tr_atomic(uint64_t) addrs[SLOTS];
    tr_atomic(long) accepted; /* sends that returned TR_OK */
    tr_atomic(long) refused;  /* sends that returned TR_ENOACTOR */
    tr_atomic(long) handled;
    tr_atomic(long) dead_noactor;
    tr_atomic(long) dead_other;
} race;

static race the_race;

static int
work_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_faa_relaxed(&the_race.handled, 1);
    return TR_OK;
}

static const tr_behaviour work_behaviour = {
    .name = "work",
    .state_size = 24,
    .handle = work_handle,
};

static void
count_dead(void *arg, tr_addr to, uint32_t type, tr_dead_reason why)
{
    (void)arg;
    (void)to;
    (void)type;
    if (why == TR_DEAD_NOACTOR) {
        tr_faa_relaxed(&the_race.dead_noactor, 1);
    } else {
        tr_faa_relaxed(&the_race.dead_other, 1);
    }
}

static void *
racer(void *p)
{
    uint64_t rng = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 1;
    tr_ctx *ctx = tr_system_ctx(the_race.sys);

    for (long i = 0; i < iterations; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        unsigned slot = (unsigned)(rng % SLOTS);
        tr_addr to = {.id = tr_load_acq(&the_race.addrs[slot])};
        int rc;
        switch ((rng >> 20) % 8) {
        case 0: { /* replace the slot's actor */
            tr_addr fresh;
            if (tr_spawn(ctx, &work_behaviour, NULL, NULL, &fresh) == TR_OK) {
                tr_addr old = {
                    .id = tr_xchg_acqrel(&the_race.addrs[slot], fresh.id)};
                rc = tr_actor_stop(ctx, old);
                (void)rc; /* TR_ENOACTOR when already gone */
            }
            break;
        }
        case 1:
            rc = tr_actor_stop(ctx, to);
            (void)rc;
            break;
        default:
            rc = tr_send(ctx, to, MSG_WORK, &i, sizeof(i));
            if (rc == TR_OK) {
                tr_faa_relaxed(&the_race.accepted, 1);
            } else if (rc == TR_ENOACTOR) {
                tr_faa_relaxed(&the_race.refused, 1);
            } else {
                tr_faa_relaxed(&the_race.dead_other, 1000000); /* flag */
            }
        }
    }
    return NULL;
}

static void
test_actor_stress_spawn_stop_send_races_lose_nothing(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system_stats final;
    pthread_t *threads = calloc((size_t)n_threads, sizeof(pthread_t));

    (void)state;
    memset(&the_race, 0, sizeof(the_race));
    cfg.on_dead_letter = count_dead;
    cfg.final_stats = &final;
    the_race.sys = tr_test_system_cfg(&cfg);
    for (long i = 0; i < n_threads; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, racer,
                                        (void *)(uintptr_t)(i + 1)),
                         0);
    }
    for (long i = 0; i < n_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_int_equal(tr_system_shutdown(the_race.sys, tr_ms(10000)), TR_OK);
    long accepted = tr_load_relaxed(&the_race.accepted);
    long refused = tr_load_relaxed(&the_race.refused);
    long handled = tr_load_relaxed(&the_race.handled);
    long dead_other = tr_load_relaxed(&the_race.dead_other);
    print_message("accepted %ld refused %ld handled %ld dead %ld\n", accepted,
                  refused, handled, dead_other);
    /* Every accepted message was handled or became a dead letter. */
    assert_int_equal(handled + dead_other, accepted);
    assert_int_equal((long) final.messages_handled, handled);
    /* Every refused send counted a no-actor dead letter (stop requests to
     * dead addresses count too). */
    assert_true(tr_load_relaxed(&the_race.dead_noactor) >= refused);
    assert_int_equal(final.live_actors, 0);
    free(threads);
}

int
main(int argc, char **argv)
{
    n_threads = tr_test_arg(argc, argv, 1, n_threads);
    iterations = tr_test_arg(argc, argv, 2, iterations);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_actor_stress_cross_sending_never_runs_an_actor_twice),
        cmocka_unit_test(test_actor_stress_per_sender_order_between_actors),
        cmocka_unit_test(test_actor_stress_spawn_stop_send_races_lose_nothing),
    };
    return cmocka_run_group_tests_name("actor_stress", tests, NULL, NULL);
}
