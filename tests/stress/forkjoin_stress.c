/*
 * Fork-join fan-out: one producer actor sends small messages round-robin to
 * CONSUMERS actors with unbounded mailboxes, TR_BATCH of them per handler
 * call followed by a "more" message to itself, on a small pool. Every round
 * starts a fresh system and must see every message handled before a
 * deadline.
 *
 * This is the shape that lost a runnable actor: the producer's worker pops
 * and requeues consumers fast enough to wrap its ring while a thief is
 * descheduled in the middle of a steal, a push is refused, and the refused
 * task went nowhere. The lost actor stays marked scheduled, so later sends
 * never schedule it again and the round hangs with every worker parked.
 *
 * A thief is descheduled mid-steal only when the machine is busy, so the
 * test makes it busy, as other processes did on the machine where the hang
 * was seen: `noise` plain threads alternate random stretches of 1-2 ms of
 * spinning and 0.3-1 ms of sleep, and the workers run at a lower priority
 * (nice +WORKER_NICE), so each time a noise thread wakes it preempts a
 * worker at an arbitrary point and keeps it off its core for a millisecond
 * or more while the other worker runs on. On a two-core machine the old
 * scheduler passed hundreds of rounds without noise; with one noise thread
 * it failed within a few rounds of 500000 messages, every run.
 *
 * Usage: forkjoin_stress [workers] [messages per round] [rounds] [noise]
 */
#include "support/tr_test.h"

#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

enum {
    CONSUMERS = 60,
    BURST = 1024,
    MSG_MORE = 1,
    MSG_WORK = 2,
    DEADLINE_MS = 30000,
    WORKER_NICE = 10,
};

static long n_workers = 2;
static long n_messages = 200000;
static long n_rounds = 30;
static long n_noise = 1;

/* One per consumer, written only by the worker running that consumer and
 * read by the test thread: no shared counter on the consumers' path. */
typedef struct counter {
    TR_CACHE_ALIGNED tr_atomic(long) handled;
} counter;

static counter handled[CONSUMERS];
static tr_addr consumers[CONSUMERS];

typedef struct producer {
    long sent;
    long total;
    unsigned next;
} producer;

static int
producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    producer *p = state;

    (void)ctx;
    p->total = *(const long *)arg;
    return TR_OK;
}

static int
producer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer *p = state;

    (void)msg;
    for (int i = 0; i < BURST && p->sent < p->total; i++) {
        uint32_t seq = (uint32_t)p->sent++;
        tr_addr to = consumers[p->next];
        int rc;

        p->next = (p->next + 1) % CONSUMERS;
        rc = tr_send(ctx, to, MSG_WORK, &seq, sizeof(seq));
        if (rc != TR_OK) {
            return rc;
        }
    }
    if (p->sent < p->total) {
        return tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    }
    return TR_OK;
}

static const tr_behaviour producer_behaviour = {
    .name = "forkjoin_producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_handle,
};

static int
consumer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    counter *c = *(counter **)state;

    (void)ctx;
    (void)msg;
    /* Owner-only bump: one actor runs on one worker at a time. */
    tr_store_rel(&c->handled, tr_load_relaxed(&c->handled) + 1);
    return TR_OK;
}

static int
consumer_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    *(const counter **)state = arg;
    return TR_OK;
}

static const tr_behaviour consumer_behaviour = {
    .name = "forkjoin_consumer",
    .state_size = sizeof(counter *),
    .init = consumer_init,
    .handle = consumer_handle,
};

/* ---- noise: threads that take the CPU away from the workers ---- */

enum { MAX_NOISE = 16 };

static tr_atomic(bool) noise_stop;

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *
noise_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;

    /* Acquire: pairs with the test thread's release of noise_stop. */
    while (!tr_load_acq(&noise_stop)) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uint64_t until = now_us() + 1000 + rng % 1000;
        while (now_us() < until) {
        }
        struct timespec pause = {0, (long)(300000 + (rng >> 20) % 700000)};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static long
total_handled(void)
{
    long sum = 0;

    for (int i = 0; i < CONSUMERS; i++) {
        /* Acquire: pairs with the consumer's release bump. */
        sum += tr_load_acq(&handled[i].handled);
    }
    return sum;
}

static bool
all_handled(void *arg)
{
    return total_handled() >= *(long *)arg;
}

static void
report_stuck(tr_system *sys, long round, long want)
{
    int stuck = 0;

    fprintf(stderr,
            "forkjoin_stress: round %ld: %ld of %ld messages handled "
            "after %d ms\n",
            round, total_handled(), want, DEADLINE_MS);
    for (int i = 0; i < CONSUMERS; i++) {
        tr_actor_stats st;
        if (tr_actor_stats_get(sys, consumers[i], &st) == TR_OK &&
            st.mailbox_len != 0) {
            stuck++;
        }
    }
    fprintf(stderr, "forkjoin_stress: %d consumers with queued messages\n",
            stuck);
}

static void
test_forkjoin_every_message_is_handled(void **state)
{
    long want = n_messages;
    pthread_t noise[MAX_NOISE];
    long n_noise_started = n_noise < MAX_NOISE ? n_noise : MAX_NOISE;

    (void)state;
    tr_store_relaxed(&noise_stop, false);
    for (long i = 0; i < n_noise_started; i++) {
        assert_int_equal(
            pthread_create(&noise[i], NULL, noise_main, (void *)(uintptr_t)i),
            0);
    }
    /* After the noise threads started and before any worker did: workers
     * inherit the creating thread's nice value on Linux. */
    if (setpriority(PRIO_PROCESS, 0, WORKER_NICE) != 0) {
        print_message("forkjoin_stress: could not lower the workers' "
                      "priority; the noise will preempt them less often\n");
    }
    for (long round = 0; round < n_rounds; round++) {
        tr_system *sys = tr_test_system((unsigned)n_workers);
        tr_ctx *ctx = tr_system_ctx(sys);
        tr_addr p;

        for (int i = 0; i < CONSUMERS; i++) {
            tr_store_relaxed(&handled[i].handled, 0);
            assert_int_equal(tr_spawn(ctx, &consumer_behaviour, &handled[i],
                                      NULL, &consumers[i]),
                             TR_OK);
        }
        assert_int_equal(tr_spawn(ctx, &producer_behaviour, &want, NULL, &p),
                         TR_OK);
        assert_int_equal(tr_send(ctx, p, MSG_MORE, NULL, 0), TR_OK);
        if (!tr_test_wait_until(all_handled, &want, DEADLINE_MS)) {
            report_stuck(sys, round, want);
            fail_msg("round %ld of %ld: messages lost or never run", round,
                     n_rounds);
        }
        tr_test_shutdown(sys);
        assert_int_equal(total_handled(), want);
    }
    /* Release: pairs with the noise threads' acquire loads. */
    tr_store_rel(&noise_stop, true);
    for (long i = 0; i < n_noise_started; i++) {
        pthread_join(noise[i], NULL);
    }
}

int
main(int argc, char **argv)
{
    n_workers = tr_test_arg(argc, argv, 1, n_workers);
    n_messages = tr_test_arg(argc, argv, 2, n_messages);
    n_rounds = tr_test_arg(argc, argv, 3, n_rounds);
    n_noise = tr_test_arg(argc, argv, 4, n_noise);
    print_message("forkjoin_stress: %ld workers, %ld messages, %ld rounds, "
                  "%ld noise threads\n",
                  n_workers, n_messages, n_rounds, n_noise);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forkjoin_every_message_is_handled),
    };
    return cmocka_run_group_tests_name("forkjoin_stress", tests, NULL, NULL);
}
