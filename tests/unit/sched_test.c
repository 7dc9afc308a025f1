/*
 * The scheduler as actors see it: a flooding actor cannot starve others,
 * work from plain threads runs, an idle system uses no CPU, and a worker
 * stuck in a long handler does not hold up the actors it made runnable
 * while another worker is idle. And the scheduler's pieces driven
 * directly: the inject queue's pop into a ring that a thief holds, and
 * its two halves, with and without memory.
 */
#include "support/tr_test.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"
#include "scheduler/sched.h"

#include <inttypes.h>
#include <sys/resource.h>
#include <time.h>

enum { MSG_GO = 1, MSG_PING = 2 };

typedef struct flood_state {
    tr_atomic(uint64_t) * count;
} flood_state;

static tr_atomic(uint64_t) flood_count;
static tr_atomic(int) victim_ran;

/* Sends itself a message for every message it handles: never idle. */
static int
flood_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    tr_faa_relaxed(&flood_count, 1);
    return tr_send(ctx, tr_self(ctx), MSG_GO, NULL, 0);
}

static const tr_behaviour flood_behaviour = {
    .name = "flood",
    .handle = flood_handle,
};

static int
victim_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_store_seqcst(&victim_ran, 1);
    return TR_OK;
}

static const tr_behaviour victim_behaviour = {
    .name = "victim",
    .handle = victim_handle,
};

static bool
victim_has_run(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&victim_ran) != 0;
}

static void
run_starvation_case(unsigned workers, unsigned flooders)
{
    tr_system *sys = tr_test_system(workers);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr victim;

    tr_store_relaxed(&flood_count, 0);
    tr_store_relaxed(&victim_ran, 0);
    for (unsigned i = 0; i < flooders; i++) {
        tr_addr f;
        assert_int_equal(tr_spawn(ctx, &flood_behaviour, NULL, NULL, &f),
                         TR_OK);
        assert_int_equal(tr_send(ctx, f, MSG_GO, NULL, 0), TR_OK);
    }
    /* Let the flood get going before the victim's message arrives. */
    while (tr_load_relaxed(&flood_count) < 10000) {
    }
    assert_int_equal(tr_spawn(ctx, &victim_behaviour, NULL, NULL, &victim),
                     TR_OK);
    assert_int_equal(tr_send(ctx, victim, MSG_PING, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(victim_has_run, NULL, 5000));
    tr_test_shutdown(sys);
}

static void
test_sched_flooding_actor_does_not_starve_others_one_worker(void **state)
{
    (void)state;
    run_starvation_case(1, 1);
}

static void
test_sched_flooding_actors_do_not_starve_others_two_workers(void **state)
{
    (void)state;
    run_starvation_case(2, 4);
}

/* Two actors bouncing a message through the LIFO slot forever, and a third
 * that one of them wakes: the LIFO cap must let the third run. */
typedef struct bouncer {
    tr_addr peer;
    tr_addr victim;
    uint64_t n;
} bouncer;

static int
bounce_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    bouncer *b = state;
    int rc;

    if (msg->type == MSG_GO) {
        /* Payload: the peer and the victim. */
        const tr_addr *addrs = msg->data;
        b->peer = addrs[0];
        b->victim = addrs[1];
        return TR_OK;
    }
    if (++b->n == 1000 && !tr_addr_is_none(b->victim)) {
        rc = tr_send(ctx, b->victim, MSG_PING, NULL, 0);
        if (rc != TR_OK) {
            return rc;
        }
    }
    return tr_send(ctx, b->peer, MSG_PING, NULL, 0);
}

static const tr_behaviour bounce_behaviour = {
    .name = "bounce",
    .state_size = sizeof(bouncer),
    .handle = bounce_handle,
};

/* Start a bouncing pair and a victim on `sys`; the pair wakes the victim
 * itself when `pair_wakes` (else only the caller may). */
static tr_addr
start_bouncers(tr_system *sys, bool pair_wakes)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a, b, victim;

    tr_store_relaxed(&victim_ran, 0);
    assert_int_equal(tr_spawn(ctx, &bounce_behaviour, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_spawn(ctx, &bounce_behaviour, NULL, NULL, &b), TR_OK);
    assert_int_equal(tr_spawn(ctx, &victim_behaviour, NULL, NULL, &victim),
                     TR_OK);
    tr_addr for_a[2] = {b, pair_wakes ? victim : TR_ADDR_NONE};
    tr_addr for_b[2] = {a, TR_ADDR_NONE};
    assert_int_equal(tr_send(ctx, a, MSG_GO, for_a, sizeof(for_a)), TR_OK);
    assert_int_equal(tr_send(ctx, b, MSG_GO, for_b, sizeof(for_b)), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_PING, NULL, 0), TR_OK);
    return victim;
}

static void
test_sched_lifo_ping_pong_does_not_starve_others(void **state)
{
    tr_system *sys = tr_test_system(1);

    (void)state;
    start_bouncers(sys, true);
    assert_true(tr_test_wait_until(victim_has_run, NULL, 5000));
    tr_test_shutdown(sys);
}

/* The same pair on one worker, with nothing else queued there: each run
 * goes straight on to the other actor (tr__sched_next_lifo), and the LIFO
 * cap never applies. A plain thread's message waits in the inject queue,
 * whose turn must still come; and a shutdown must still end the pair. */
static void
test_sched_lifo_ping_pong_does_not_starve_plain_threads(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_addr victim;

    (void)state;
    victim = start_bouncers(sys, false);
    /* Bouncing for a while first. */
    assert_true(tr_test_wait_handled(sys, 100000, 5000));
    assert_int_equal(tr_send(tr_system_ctx(sys), victim, MSG_PING, NULL, 0),
                     TR_OK);
    assert_true(tr_test_wait_until(victim_has_run, NULL, 5000));
    tr_test_shutdown(sys);
}

/* Two actors that each keep sending themselves a "continue": a run handles
 * only what was queued when it began, so with one worker they alternate
 * instead of one finishing its whole job first. */
enum { TURNS = 2000 };

static tr_atomic(int) turn_log[2 * TURNS];
static tr_atomic(int) turn_count;

static int
turn_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int id;
    int left;

    (void)state;
    memcpy(&id, msg->data, sizeof(id));
    int at = tr_faa_seqcst(&turn_count, 1);
    if (at < 2 * TURNS) {
        tr_store_relaxed(&turn_log[at], id);
    }
    left = (int)msg->type;
    if (left == 0) {
        return TR_OK;
    }
    return tr_send(ctx, tr_self(ctx), (uint32_t)(left - 1), &id, sizeof(id));
}

static const tr_behaviour turn_behaviour = {
    .name = "turn",
    .handle = turn_handle,
};

static bool
all_turns_taken(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&turn_count) >= 2 * TURNS;
}

static void
test_sched_self_continuing_actors_take_turns(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a, b;
    int id_a = 1, id_b = 2;

    (void)state;
    tr_store_relaxed(&turn_count, 0);
    assert_int_equal(tr_spawn(ctx, &turn_behaviour, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_spawn(ctx, &turn_behaviour, NULL, NULL, &b), TR_OK);
    assert_int_equal(tr_send(ctx, a, TURNS - 1, &id_a, sizeof(id_a)), TR_OK);
    assert_int_equal(tr_send(ctx, b, TURNS - 1, &id_b, sizeof(id_b)), TR_OK);
    assert_true(tr_test_wait_until(all_turns_taken, NULL, 10000));
    tr_test_shutdown(sys);

    /* Once both have started, neither runs twice in a row for long. */
    int first_b = 0;
    while (tr_load_relaxed(&turn_log[first_b]) != id_b) {
        first_b++;
    }
    int longest = 0;
    int run = 0;
    for (int i = first_b + 1; i < TURNS; i++) {
        bool same =
            tr_load_relaxed(&turn_log[i]) == tr_load_relaxed(&turn_log[i - 1]);
        run = same ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    print_message("started b at %d, longest streak %d\n", first_b, longest);
    assert_true(longest <= 1);
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
test_sched_idle_system_uses_no_cpu(void **state)
{
    tr_system *sys = tr_test_system(4);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr f;

    (void)state;
    /* Some work first, so the workers have run and parked. */
    tr_store_relaxed(&victim_ran, 0);
    assert_int_equal(tr_spawn(ctx, &victim_behaviour, NULL, NULL, &f), TR_OK);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(tr_send(ctx, f, MSG_PING, NULL, 0), TR_OK);
    }
    assert_true(tr_test_wait_handled(sys, 1000, 5000));
    struct timespec settle = {0, 50000000};
    nanosleep(&settle, NULL);

    double before = cpu_seconds();
    struct timespec idle = {1, 0};
    nanosleep(&idle, NULL);
    double used = cpu_seconds() - before;
    print_message("idle second used %.4f s of CPU\n", used);
    assert_true(used < 0.01); /* under 1% of one core */
    tr_test_shutdown(sys);
}

/* ---- a thief held in the middle of a steal ---- */

/* Sized from the ring (256 slots; 16 in the systematic build): fill it to
 * 200/256, let a thief claim half of that. */
enum {
    HELD_RING = TR_RUNQ_CAP,
    HELD_INJECTED = 64,
    HELD_FILL = TR_RUNQ_CAP * 25 / 32,
    HELD_CLAIM = HELD_FILL - HELD_FILL / 2,
};

static void
no_run(void *arg, tr_worker *w, tr_task *t)
{
    (void)arg;
    (void)w;
    (void)t;
}

static void
take_task(tr_task *t, tr_task *base, int *seen)
{
    seen[t - base]++;
}

/*
 * A thief claims half of worker 0's ring and stops there; worker 0 pops on
 * until its ring is empty by `real` and full by `steal`; then it pops the
 * inject queue, which moves a batch into its ring. The ring has no room:
 * the batch must stay in the inject queue (the old code pushed it anyway,
 * and the refused tasks were lost). The test thread stands in for both
 * workers of a pool that is never started.
 */
static void
test_sched_inject_pop_into_a_ring_held_by_a_thief_loses_nothing(void **state)
{
    tr_sched *s;
    tr_task tasks[HELD_RING + HELD_INJECTED];
    int seen[HELD_RING + HELD_INJECTED] = {0};
    tr_runq_claim c;
    tr_task *spill[TR_RUNQ_SPILL];
    int next = 0;
    tr_task *t;

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, no_run, NULL, &s), TR_OK);
    tr_runq *q = tr__worker_runq(tr__sched_worker(s, 0));
    tr_runq *thief = tr__worker_runq(tr__sched_worker(s, 1));

    for (; next < HELD_FILL; next++) {
        assert_int_equal(tr__runq_push(q, &tasks[next], spill), 0);
    }
    assert_int_equal(tr__runq_steal_claim(q, thief, &c), HELD_CLAIM);
    while ((t = tr__runq_pop(q)) != NULL) {
        take_task(t, tasks, seen);
    }
    for (; next < HELD_RING; next++) {
        assert_int_equal(tr__runq_push(q, &tasks[next], spill), 0);
    }
    while ((t = tr__runq_pop(q)) != NULL) {
        take_task(t, tasks, seen);
    }
    /* Empty by real, full by steal. Tasks from a plain thread arrive. */
    for (; next < HELD_RING + HELD_INJECTED; next++) {
        tr__sched_submit(s, &tasks[next]);
    }
    t = tr__worker_inject_pop(tr__sched_worker(s, 0));
    assert_ptr_equal(t, &tasks[HELD_RING]);
    take_task(t, tasks, seen);
    assert_int_equal(tr__runq_len(q), 0);

    /* The thief finishes; then everything left is found, once. */
    t = tr__runq_steal_finish(q, thief, &c);
    take_task(t, tasks, seen);
    while ((t = tr__runq_pop(thief)) != NULL) {
        take_task(t, tasks, seen);
    }
    while ((t = tr__worker_inject_pop(tr__sched_worker(s, 0))) != NULL) {
        take_task(t, tasks, seen);
        while ((t = tr__runq_pop(q)) != NULL) {
            take_task(t, tasks, seen);
        }
    }
    for (int i = 0; i < HELD_RING + HELD_INJECTED; i++) {
        if (seen[i] != 1) {
            fail_msg("task %d taken %d times", i, seen[i]);
        }
    }
    tr__sched_destroy(s);
}

/*
 * The inject queue, driven by a seeded walk of bursts on worker 0 of a
 * pool never started (the test stands in for it and for plain threads):
 * requeues of 1 to 700 tasks, whose ring overflows into the queue's
 * segments; plain-thread submits of 1 to 700, linked into its list; some
 * bursts of either while every allocation fails; and pops of 1 to 700,
 * each moving a batch into the ring, drained at once. Every task must come
 * back once, the plain threads' in the order they were submitted, and
 * overflow moved while memory lasts must not be written to: its `next`
 * keeps what the test put there.
 */
enum {
    INJECT_WALK_TASKS = 60000,
    INJECT_WALK_BURST = 700,
    WALK_OVERFLOW = 1, /* pushed by a requeue with memory */
    WALK_PLAIN = 2,    /* submitted by a plain thread */
};

typedef struct inject_walk {
    tr_sched *s;
    tr_worker *w;
    tr_task tasks[INJECT_WALK_TASKS];
    unsigned char how[INJECT_WALK_TASKS];
    int seen[INJECT_WALK_TASKS];
    uint32_t pushed;
    uint32_t taken;
    uint32_t plain_next; /* the next plain task a pop may return */
    uint64_t rng;
} inject_walk;

static uint32_t
inject_walk_rand(inject_walk *k)
{
    k->rng ^= k->rng << 13;
    k->rng ^= k->rng >> 7;
    k->rng ^= k->rng << 17;
    return (uint32_t)(k->rng >> 32);
}

static void
inject_walk_take(inject_walk *k, tr_task *t)
{
    uint32_t i = (uint32_t)(t - k->tasks);

    k->seen[i]++;
    k->taken++;
    if (k->how[i] == WALK_PLAIN) {
        while (k->how[k->plain_next] != WALK_PLAIN) {
            k->plain_next++;
        }
        if (i != k->plain_next) {
            fail_msg("plain task %" PRIu32 " before %" PRIu32, i,
                     k->plain_next);
        }
        k->plain_next++;
    }
}

/* The owner runs what its ring holds. */
static void
inject_walk_drain(inject_walk *k)
{
    for (tr_task *t; (t = tr__runq_pop(tr__worker_runq(k->w))) != NULL;) {
        inject_walk_take(k, t);
    }
}

/* One pop, and the ring drained; false when the inject queue was empty. */
static bool
inject_walk_pop(inject_walk *k)
{
    tr_task *t = tr__worker_inject_pop(k->w);

    if (t == NULL) {
        return false;
    }
    inject_walk_take(k, t);
    inject_walk_drain(k);
    return true;
}

static void
inject_walk_push(inject_walk *k, uint32_t n, bool plain, bool lean)
{
    if (lean) {
        /* What overflows now goes to the list: only this burst's tasks. */
        inject_walk_drain(k);
        tr__alloc_fail_after(0);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = k->pushed++;
        k->how[j] = plain ? WALK_PLAIN : lean ? 0 : WALK_OVERFLOW;
        if (plain) {
            tr__sched_submit(k->s, &k->tasks[j]);
        } else {
            tr__sched_requeue(k->w, &k->tasks[j]);
        }
    }
    tr__alloc_fail_after(-1);
}

static void
test_sched_inject_queue_keeps_every_task_across_segments_and_without_memory(
    void **state)
{
    inject_walk *k = calloc(1, sizeof(*k));
    uint32_t walked;
    uint32_t plain;

    (void)state;
    assert_non_null(k);
    k->rng = 0x2545f4914f6cdd1dull;
    for (uint32_t i = 0; i < INJECT_WALK_TASKS; i++) {
        k->tasks[i].next = &k->tasks[i];
    }
    assert_int_equal(tr__sched_create(2, 0, no_run, NULL, &k->s), TR_OK);
    k->w = tr__sched_worker(k->s, 0);
    /* Leaves room for the last part. */
    while (k->pushed < INJECT_WALK_TASKS - 4000) {
        uint32_t n = inject_walk_rand(k) % INJECT_WALK_BURST + 1;
        uint32_t op = inject_walk_rand(k) % 3;
        bool lean = inject_walk_rand(k) % 5 == 0;

        if (op == 2) {
            while (n-- > 0 && inject_walk_pop(k)) {
            }
        } else {
            if (n > INJECT_WALK_TASKS - 4000 - k->pushed) {
                n = INJECT_WALK_TASKS - 4000 - k->pushed;
            }
            inject_walk_push(k, n, op == 1, lean);
        }
        assert_int_equal(tr__sched_inject_len(k->s) +
                             tr__runq_len(tr__worker_runq(k->w)),
                         k->pushed - k->taken);
    }
    while (inject_walk_pop(k)) {
    }
    inject_walk_drain(k);
    assert_int_equal(k->taken, k->pushed);
    walked = k->pushed;

    /* Neither side waits on the other: a plain thread's task submitted
     * after 2,000 tasks of overflow comes out within two pops. */
    inject_walk_push(k, 2000, false, false);
    inject_walk_push(k, 1, true, false);
    plain = k->pushed - 1;
    for (int i = 0; i < 2; i++) {
        assert_true(inject_walk_pop(k));
    }
    assert_int_equal(k->seen[plain], 1);
    while (inject_walk_pop(k)) {
    }
    inject_walk_drain(k);

    assert_int_equal(k->taken, k->pushed);
    assert_int_equal(tr__sched_inject_len(k->s), 0);
    for (uint32_t i = 0; i < k->pushed; i++) {
        if (k->seen[i] != 1) {
            fail_msg("task %" PRIu32 " taken %d times", i, k->seen[i]);
        }
        if (k->how[i] == WALK_OVERFLOW && k->tasks[i].next != &k->tasks[i]) {
            fail_msg("overflow task %" PRIu32 " was written to", i);
        }
    }
    /* The walk took every path: plain, overflow with memory, without. */
    for (unsigned char how = 0; how <= WALK_PLAIN; how++) {
        uint32_t i = 0;
        while (i < walked && k->how[i] != how) {
            i++;
        }
        assert_true(i < walked);
    }
    tr__sched_destroy(k->s);
    free(k);
}

/* ---- a worker stuck in a long handler ---- */

/* The bound is half the stall: on an idle machine the task is taken in a
 * few ms, but under a loaded `make test` the idle worker itself may wait
 * 90 ms for a core (seen in the ASan build). */
enum { STUCK_MS = 300, TAKEN_WITHIN_MS = 150, MSG_SEND_AND_COMPUTE = 3 };

/* Written on workers, read by the test thread after the waits. */
static tr_atomic(uint64_t) stuck_sent_ns;
static tr_atomic(uint64_t) stuck_done_ns;
static tr_atomic(uint64_t) taken_ns;

static void
spin_ms(uint64_t from_ns, unsigned ms)
{
    while (tr__now_ns() - from_ns < (uint64_t)ms * 1000000u) {
    }
}

static int
stuck_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_addr to;
    int rc;

    (void)state;
    memcpy(&to, msg->data, sizeof(to));
    /* Relaxed: read after the waits below, which acquire the later
     * seq_cst stores. */
    tr_store_relaxed(&stuck_sent_ns, tr__now_ns());
    rc = tr_send(ctx, to, MSG_PING, NULL, 0);
    spin_ms(tr_load_relaxed(&stuck_sent_ns), STUCK_MS);
    tr_store_seqcst(&stuck_done_ns, tr__now_ns());
    return rc;
}

static const tr_behaviour stuck_behaviour = {
    .name = "stuck",
    .handle = stuck_handle,
};

static int
taker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_store_seqcst(&taken_ns, tr__now_ns());
    return TR_OK;
}

static const tr_behaviour taker_behaviour = {
    .name = "taker",
    .handle = taker_handle,
};

static bool
stuck_case_done(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&stuck_done_ns) != 0 &&
           tr_load_seqcst(&taken_ns) != 0;
}

static void
assert_taken_while_stuck(void)
{
    uint64_t sent = tr_load_seqcst(&stuck_sent_ns);
    uint64_t done = tr_load_seqcst(&stuck_done_ns);
    uint64_t taken = tr_load_seqcst(&taken_ns);

    print_message("taken %.1f ms after the send; the stuck task took %.1f ms\n",
                  (double)(taken - sent) / 1e6, (double)(done - sent) / 1e6);
    assert_true(taken < done);
    assert_true(taken - sent < (uint64_t)TAKEN_WITHIN_MS * 1000000u);
}

/*
 * A sends to B, which goes to A's worker's LIFO slot, then computes for
 * 200 ms. The other worker is idle: it must run B long before A returns.
 */
static void
test_sched_idle_worker_takes_the_lifo_task_of_a_stuck_worker(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a, b;

    (void)state;
    tr_store_seqcst(&stuck_done_ns, 0);
    tr_store_seqcst(&taken_ns, 0);
    assert_int_equal(tr_spawn(ctx, &stuck_behaviour, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_spawn(ctx, &taker_behaviour, NULL, NULL, &b), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_SEND_AND_COMPUTE, &b, sizeof(b)),
                     TR_OK);
    assert_true(tr_test_wait_until(stuck_case_done, NULL, 10000));
    tr_test_shutdown(sys);
    assert_taken_while_stuck();
}

/*
 * The same with a queued task whose wakeup was missed (the relaxed notify
 * of a worker's own queue may miss a worker that is just parking): the
 * stuck task pushes it straight into its worker's ring, waking nobody,
 * once the other worker is asleep. Driven on the scheduler directly.
 */
typedef struct stuck_task {
    tr_task task;
    bool stuck;
} stuck_task;

typedef struct stuck_pool {
    tr_sched *s;
    /* Pushed into the stuck worker's ring once the other sleeps; NULL: the
     * test thread queues its task then (other_asleep). */
    stuck_task *queued;
    tr_atomic(int) errors;
} stuck_pool;

static tr_atomic(bool) other_asleep;

static void
stuck_pool_run(void *arg, tr_worker *w, tr_task *t)
{
    stuck_pool *p = arg;
    stuck_task *st = tr_container_of(t, stuck_task, task);
    unsigned other = 1 - tr__worker_index(w);
    tr_task *spill[TR_RUNQ_SPILL];

    if (!st->stuck) {
        tr_store_seqcst(&taken_ns, tr__now_ns());
        return;
    }
    uint64_t start = tr__now_ns();
    while (!tr__sched_worker_asleep(p->s, other)) {
        if (tr__now_ns() - start > 5000000000u) {
            tr_faa_relaxed(&p->errors, 1);
            break;
        }
    }
    uint64_t from = tr__now_ns();
    if (p->queued != NULL) {
        tr_store_relaxed(&stuck_sent_ns, from);
        if (tr__runq_push(tr__worker_runq(w), &p->queued->task, spill) != 0) {
            tr_faa_relaxed(&p->errors, 1);
        }
    } else {
        tr_store_seqcst(&other_asleep, true);
    }
    spin_ms(from, STUCK_MS);
    tr_store_seqcst(&stuck_done_ns, tr__now_ns());
}

/* One stuck task; the other task is pushed into the stuck worker's ring
 * by the stuck task, or queued by this thread (`from_thread`), once the
 * other worker sleeps. */
static bool
other_is_asleep(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&other_asleep);
}

static void
stuck_pool_case(bool from_thread)
{
    stuck_pool p;
    stuck_task stuck = {.stuck = true};
    stuck_task queued = {.stuck = false};

    tr_store_seqcst(&stuck_done_ns, 0);
    tr_store_seqcst(&taken_ns, 0);
    tr_store_seqcst(&other_asleep, false);
    tr_init_relaxed(&p.errors, 0);
    p.queued = from_thread ? NULL : &queued;
    assert_int_equal(tr__sched_create(2, 0, stuck_pool_run, &p, &p.s), TR_OK);
    assert_int_equal(tr__sched_start(p.s), TR_OK);
    tr__sched_submit(p.s, &stuck.task);
    if (from_thread) {
        assert_true(tr_test_wait_until(other_is_asleep, NULL, 10000));
        tr_store_seqcst(&stuck_sent_ns, tr__now_ns());
        tr__sched_submit(p.s, &queued.task);
    }
    bool done = tr_test_wait_until(stuck_case_done, NULL, 10000);
    tr__sched_stop(p.s);
    tr__sched_destroy(p.s);
    assert_true(done);
    assert_int_equal(tr_load_relaxed(&p.errors), 0);
    assert_taken_while_stuck();
}

static void
test_sched_idle_worker_takes_the_queued_tasks_of_a_stuck_worker(void **state)
{
    (void)state;
    stuck_pool_case(false);
}

/*
 * The same with a plain thread's task: with one worker stuck in a long
 * task and the other asleep, a task a plain thread queues (the inject
 * queue) runs long before the stuck one ends.
 */
static void
test_sched_idle_worker_takes_a_plain_threads_task_from_a_stuck_pool(
    void **state)
{
    (void)state;
    stuck_pool_case(true);
}

/*
 * A wakeup the OS holds back. A worker woken for a plain thread's task
 * counts as searching until it runs, and the OS may keep it queued behind
 * the thread that woke it for a whole time slice. Held back here until
 * the plain thread has queued twice TR_INJECT_WAKE tasks: all but the
 * last TR_INJECT_WAKE of them must run meanwhile, on the other worker,
 * which the queue wakes once it holds more than that; the rest may wait
 * for the held worker, which then runs them.
 */
typedef struct held_pool {
    tr_sched *s;
    tr_task tasks[2 * TR_INJECT_WAKE];
    tr_atomic(uint64_t) ran[2]; /* per worker */
    uint64_t want;              /* runs to wait for */
} held_pool;

static void
held_pool_run(void *arg, tr_worker *w, tr_task *t)
{
    held_pool *p = arg;

    (void)t;
    tr_faa_relaxed(&p->ran[tr__worker_index(w)], 1);
}

static bool
both_asleep(void *arg)
{
    held_pool *p = arg;
    return tr__sched_worker_asleep(p->s, 0) && tr__sched_worker_asleep(p->s, 1);
}

static bool
held_pool_ran(void *arg)
{
    held_pool *p = arg;
    return tr_load_relaxed(&p->ran[0]) + tr_load_relaxed(&p->ran[1]) >= p->want;
}

static void
test_sched_plain_threads_tasks_run_while_a_wakeup_is_held_back(void **state)
{
    static held_pool p;
    enum { N = sizeof(p.tasks) / sizeof(p.tasks[0]) };

    (void)state;
    tr_init_relaxed(&p.ran[0], 0);
    tr_init_relaxed(&p.ran[1], 0);
    assert_int_equal(tr__sched_create(2, 0, held_pool_run, &p, &p.s), TR_OK);
    assert_int_equal(tr__sched_start(p.s), TR_OK);
    assert_true(tr_test_wait_until(both_asleep, &p, 10000));
    assert_true(tr__sched_wake_held(p.s, 0));
    for (unsigned i = 0; i < N; i++) {
        tr__sched_submit(p.s, &p.tasks[i]);
    }
    p.want = N - TR_INJECT_WAKE;
    bool most = tr_test_wait_until(held_pool_ran, &p, 10000);
    uint64_t held_ran = tr_load_relaxed(&p.ran[0]);
    tr__sched_wake_release(p.s, 0);
    p.want = N;
    bool all = tr_test_wait_until(held_pool_ran, &p, 10000);
    tr__sched_stop(p.s);
    tr__sched_destroy(p.s);
    assert_true(most);
    assert_int_equal(held_ran, 0);
    assert_true(all);
}

/*
 * Where queued work runs: driven on the scheduler directly. A "driver"
 * task, run first on some worker, pushes `n` tasks into its own ring; each
 * spins `us` microseconds and, while `runs` lasts, pushes itself back.
 * Every run counts on the worker that made it.
 */
typedef struct share_pool {
    tr_sched *s;
    tr_task driver;
    tr_task tasks[200];
    unsigned n;
    unsigned us;
    tr_atomic(int64_t) runs;    /* runs left to start */
    tr_atomic(uint64_t) ran[2]; /* per worker */
    tr_atomic(int) errors;
} share_pool;

static uint64_t
thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
share_pool_run(void *arg, tr_worker *w, tr_task *t)
{
    share_pool *p = arg;
    unsigned me = tr__worker_index(w);

    if (t == &p->driver) {
        for (unsigned i = 0; i < p->n; i++) {
            tr__sched_requeue(w, &p->tasks[i]);
        }
        return;
    }
    /* The thread's CPU time, not the clock's: on a loaded machine a task
     * descheduled mid-run must not finish while it waits for a core, or
     * the worker that got fewer cores would seem to keep up. */
    uint64_t t0 = thread_cpu_ns();
    while (thread_cpu_ns() - t0 < (uint64_t)p->us * 1000u) {
    }
    tr_faa_relaxed(&p->ran[me], 1);
    if (tr_fas_relaxed(&p->runs, 1) > 0) {
        tr__sched_requeue(w, t);
    }
}

static bool
share_pool_done(void *arg)
{
    share_pool *p = arg;
    return tr_load_relaxed(&p->runs) <= 0 &&
           tr_load_relaxed(&p->ran[0]) + tr_load_relaxed(&p->ran[1]) >=
               (uint64_t)p->n;
}

/* Run the pool until `runs` task runs are done; the share of them the
 * second worker (the one the driver did not start on) made, in percent. */
static unsigned
share_run(share_pool *p, unsigned n, unsigned us, int64_t runs)
{
    unsigned driver_worker;
    uint64_t total;

    p->n = n;
    p->us = us;
    tr_init_relaxed(&p->runs, runs - (int64_t)n);
    tr_init_relaxed(&p->ran[0], 0);
    tr_init_relaxed(&p->ran[1], 0);
    tr_init_relaxed(&p->errors, 0);
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, p, &p->s), TR_OK);
    assert_int_equal(tr__sched_start(p->s), TR_OK);
    tr__sched_submit(p->s, &p->driver);
    bool done = tr_test_wait_until(share_pool_done, p, 30000);
    tr__sched_stop(p->s);
    tr__sched_destroy(p->s);
    assert_true(done);
    total = tr_load_relaxed(&p->ran[0]) + tr_load_relaxed(&p->ran[1]);
    /* The driver's worker made most runs, whichever it was. */
    driver_worker =
        tr_load_relaxed(&p->ran[0]) >= tr_load_relaxed(&p->ran[1]) ? 0 : 1;
    return (unsigned)(tr_load_relaxed(&p->ran[1 - driver_worker]) * 100 /
                      total);
}

/* The watchdog's clock in the tests that stand in for it, in ms. */
static uint64_t look_clock_ms;

/* One look of the watchdog of `s` (a pool not started), `ms` after the
 * last one of any test. */
static void
look_after(tr_sched *s, uint64_t ms)
{
    look_clock_ms += ms;
    tr__sched_watchdog_look(s, look_clock_ms * 1000000);
}

static void
look(tr_sched *s)
{
    look_after(s, 1);
}

/*
 * The rule itself, on a pool not started (the test is the owner and the
 * watchdog): a worker is not behind while it keeps up, is once a task has
 * waited a whole look, and stops being so as soon as it has taken what had
 * waited. (Stalled, the other reason to steal, has its tests above.)
 */
static void
test_sched_a_queue_is_stolen_from_only_when_its_owner_is_behind(void **state)
{
    tr_sched *s;
    tr_task t[6];
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, NULL, &s), TR_OK);
    tr_runq *q = tr__worker_runq(tr__sched_worker(s, 0));

    /* Queued, but no look has passed: kept. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    assert_false(tr__sched_behind(s, 0));
    /* A look, then the owner takes all three and queues three more: it
     * keeps up, so the next look finds nothing that waited. */
    look(s);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(tr__runq_pop(q), &t[i]);
        assert_int_equal(tr__runq_push(q, &t[3 + i], spill), 0);
    }
    look(s);
    assert_false(tr__sched_behind(s, 0));
    /* Nothing taken for a whole look: behind. */
    look(s);
    assert_true(tr__sched_behind(s, 0));
    assert_false(tr__sched_behind(s, 1)); /* an empty queue never is */
    /* The owner takes two of the three that waited: still behind. */
    assert_ptr_equal(tr__runq_pop(q), &t[3]);
    assert_ptr_equal(tr__runq_pop(q), &t[4]);
    assert_true(tr__sched_behind(s, 0));
    /* And the last: caught up, without waiting for another look. */
    assert_int_equal(tr__runq_push(q, &t[0], spill), 0);
    assert_ptr_equal(tr__runq_pop(q), &t[5]);
    assert_false(tr__sched_behind(s, 0));
    assert_ptr_equal(tr__runq_pop(q), &t[0]);
    tr__sched_destroy(s);
}

/*
 * The watchdog's looks back off while they find nothing to mark, on a pool
 * not started (the test is the owner and the watchdog): the time to the
 * next look doubles from 1 ms to 8 ms, and a look that finds the owner
 * behind brings it back to 1 ms at once.
 */
static void
test_sched_watchdog_looks_back_off_while_nothing_is_marked(void **state)
{
    static const unsigned backing_off[] = {2, 4, 8, 8, 8};
    tr_sched *s;
    tr_task t;
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, NULL, &s), TR_OK);
    tr_worker *w = tr__sched_worker(s, 0);
    tr_runq *q = tr__worker_runq(w);

    assert_int_equal(tr__sched_watchdog_ms(s), 1);
    for (size_t i = 0; i < sizeof(backing_off) / sizeof(backing_off[0]); i++) {
        look(s);
        assert_int_equal(tr__sched_watchdog_ms(s), backing_off[i]);
    }
    /* A task queued and left there for a whole look by an owner that
     * starts other tasks (not stalled) and runs out of work between them
     * (not loose): the first look sees it queued
     * (nothing to mark yet), the second finds the owner behind. */
    assert_int_equal(tr__runq_push(q, &t, spill), 0);
    tr__sched_count(w, 1, 1);
    look(s);
    assert_int_equal(tr__sched_watchdog_ms(s), 8);
    tr__sched_count(w, 1, 1);
    look(s);
    assert_true(tr__sched_behind(s, 0));
    assert_int_equal(tr__sched_watchdog_ms(s), 1);
    /* Taken: the looks find nothing again and back off again. */
    assert_ptr_equal(tr__runq_pop(q), &t);
    tr__sched_count(w, 1, 1);
    look(s);
    assert_int_equal(tr__sched_watchdog_ms(s), 2);
    tr__sched_destroy(s);
}

/*
 * Two hundred tasks of 500 us each, queued at once on one worker: 100 ms
 * of work that one core cannot keep up with, although every task is
 * short (the worker is never stalled in one task). The idle worker must
 * take a share (about half on an idle machine; the bound leaves room for
 * a loaded one, where the watchdog and the thief may start late).
 */
static void
test_sched_work_one_worker_cannot_keep_up_with_spreads(void **state)
{
    static share_pool p;
    unsigned other;

    (void)state;
#ifdef TROUPE_SYSTEMATIC
    /* One thread at a time, the watchdog's looks on the model's clock and
     * the tasks' spins on CPU time: no second core to share with, and the
     * share measured is the seed's (it fails about 4 seeds in 10 with any
     * scheduler). The dev, ASan and TSan builds measure it. */
    skip();
#endif
    other = share_run(&p, 200, 500, 200);
    print_message("the other worker made %u%% of the runs\n", other);
    assert_true(other >= 10);
}

/*
 * The loose rule on a pool not started (the test is the owner and the
 * watchdog): a worker busy a whole look with tasks queued, whose runs
 * found no batches, may share its queue; one whose runs found batches in
 * one run of four or more may not; the mark ends when the worker runs out
 * of work or a look sees its runs find batches. Between looks the owner takes
 * what was queued and queues more, so that the backlog rule never applies, and
 * starts tasks, so that the stall rule never does. Worker 1 is busy all
 * along with its own runs and nothing queued, so no mark goes on trial
 * (which the tests after this one cover).
 */
static void
runs_then_look(tr_sched *s, tr_task *t, uint64_t ms, uint32_t runs0,
               uint32_t runs1, uint64_t dry1)
{
    tr_runq *q = tr__worker_runq(tr__sched_worker(s, 0));
    tr_task *spill[TR_RUNQ_SPILL];

    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(tr__runq_pop(q), &t[i]);
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    tr__sched_count(tr__sched_worker(s, 0), runs0, 0);
    tr__sched_count(tr__sched_worker(s, 1), runs1, dry1);
    look_after(s, ms);
    assert_false(tr__sched_behind(s, 0));
}

static void
look_after_runs(tr_sched *s, tr_task *t, uint32_t runs)
{
    runs_then_look(s, t, 1, runs, runs, 0);
}

static void
test_sched_a_busy_worker_shares_loose_work_only(void **state)
{
    tr_sched *s;
    tr_task t[2];
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, NULL, &s), TR_OK);
    tr_worker *w = tr__sched_worker(s, 0);
    tr_runq *q = tr__worker_runq(w);

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    /* No look marked it, however often it ran out of work. */
    tr__sched_count(w, 0, UINT32_MAX);
    assert_false(tr__sched_stealable(s, 0));
    look(s); /* the first look: nothing to compare */
    /* 100 runs, no batch: loose. */
    look_after_runs(s, t, 100);
    assert_true(tr__sched_stealable(s, 0));
    assert_false(tr__sched_stealable(s, 1)); /* an empty queue never is */
    /* The worker runs out of work once: the mark is spent, and the next
     * look, which the worker was not busy all through, marks nothing. */
    tr__sched_count(w, 0, 1);
    assert_false(tr__sched_stealable(s, 0));
    look_after_runs(s, t, 100);
    assert_false(tr__sched_stealable(s, 0));
    /* 100 runs that found 24 messages behind their first: still loose. */
    tr__sched_note_batch(w, 24);
    look_after_runs(s, t, 100);
    assert_true(tr__sched_stealable(s, 0));
    /* 100 runs that found 25: coupled work. The worker never ran out of
     * work, yet the look takes the old mark back. */
    tr__sched_note_batch(w, 25);
    look_after_runs(s, t, 100);
    assert_false(tr__sched_stealable(s, 0));
    /* Loose again, then counted out of work 2^32 times: the count does
     * not come round to the mark. */
    look_after_runs(s, t, 100);
    assert_true(tr__sched_stealable(s, 0));
    tr__sched_count(w, 0, (uint64_t)1 << 32);
    assert_false(tr__sched_stealable(s, 0));
    /* Loose runs, but the worker ran out of work during the look. */
    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(tr__runq_pop(q), &t[i]);
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    tr__sched_count(w, 100, 1);
    look(s);
    assert_false(tr__sched_stealable(s, 0));
    /* And loose runs with nothing queued at the look. */
    assert_ptr_equal(tr__runq_pop(q), &t[0]);
    assert_ptr_equal(tr__runq_pop(q), &t[1]);
    tr__sched_count(w, 100, 0);
    look(s);
    assert_int_equal(tr__runq_push(q, &t[0], spill), 0);
    assert_false(tr__sched_stealable(s, 0));
    assert_ptr_equal(tr__runq_pop(q), &t[0]);
    tr__sched_destroy(s);
}

/*
 * The loose marks' trials, on a pool not started. Worker 0 is busy with
 * loose runs, 100 a ms, and two tasks queued (as in the test above);
 * worker 1 runs `thief` tasks in each look, and runs out of work in it
 * when `dry`. The looks are `ms` apart; the rates are messages a ms.
 */
static void
trial_look(tr_sched *s, tr_task *t, uint64_t ms, uint32_t thief, uint64_t dry)
{
    runs_then_look(s, t, ms, (uint32_t)(100 * ms), thief, dry);
}

/* A loose mark made while worker 1 has time to spare goes on trial; the
 * verdict comes the second look after; it fails when the pool gained less
 * than a third of worker 0's own rate, and worker 0 is then held unmarked
 * for `hold` ms, marked again (and tried again) once the hold is over. */
static void
trial_fails(tr_sched *s, tr_task *t, uint64_t hold)
{
    trial_look(s, t, 1, 0, 0); /* 100 a ms, worker 1 idle: marked */
    assert_true(tr__sched_stealable(s, 0));
    trial_look(s, t, 1, 32, 1); /* the first look after: no verdict */
    assert_true(tr__sched_stealable(s, 0));
    trial_look(s, t, 1, 32, 1); /* 132 a ms: a gain short of 100 / 3 */
    assert_false(tr__sched_stealable(s, 0));
    trial_look(s, t, hold - 1, 0, 1);
    assert_false(tr__sched_stealable(s, 0));
    trial_look(s, t, 1, 0, 1);
    assert_true(tr__sched_stealable(s, 0));
}

static void
test_sched_a_loose_mark_that_does_not_pay_is_taken_back_and_held(void **state)
{
    tr_sched *s;
    tr_task t[2];
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, NULL, &s), TR_OK);
    tr_runq *q = tr__worker_runq(tr__sched_worker(s, 0));

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    look(s); /* the first look: no rate yet */
    /* Trials that fail in a row hold it for 16 ms, then 32. */
    trial_fails(s, t, 16);
    trial_look(s, t, 1, 0, 1);
    trial_look(s, t, 1, 32, 1);
    assert_false(tr__sched_stealable(s, 0));
    trial_look(s, t, 31, 0, 1);
    assert_false(tr__sched_stealable(s, 0));
    trial_look(s, t, 1, 0, 1);
    assert_true(tr__sched_stealable(s, 0));
    /* This trial pays: worker 1 now runs 60 a ms of it. */
    trial_look(s, t, 1, 60, 1);
    trial_look(s, t, 1, 60, 1);
    assert_true(tr__sched_stealable(s, 0));
    trial_look(s, t, 1, 0, 0);
    assert_true(tr__sched_stealable(s, 0)); /* tried once, not again */
    /* Spent (worker 0 runs out of work); and the trial that paid reset
     * the hold to 16 ms. */
    tr__sched_count(tr__sched_worker(s, 0), 0, 1);
    trial_look(s, t, 1, 0, 1);
    assert_false(tr__sched_stealable(s, 0));
    trial_fails(s, t, 16);
    tr__sched_destroy(s);
}

/* With no worker to spare in the look that marks (worker 1 busy all along
 * with its own runs), no trial: nobody is there to take from the mark and
 * try it. The mark stands, although the pool's rate never rises. */
static void
test_sched_a_loose_mark_goes_on_trial_only_with_a_worker_to_spare(void **state)
{
    tr_sched *s;
    tr_task t[2];
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_int_equal(tr__sched_create(2, 0, share_pool_run, NULL, &s), TR_OK);
    tr_runq *q = tr__worker_runq(tr__sched_worker(s, 0));

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr__runq_push(q, &t[i], spill), 0);
    }
    look(s);
    for (int i = 0; i < 6; i++) {
        trial_look(s, t, 1, 50, 0);
        assert_true(tr__sched_stealable(s, 0));
    }
    tr__sched_destroy(s);
}

/*
 * Eight independent ping-pong pairs of 2 us runs, started on one worker:
 * each task waits a few hundred microseconds in the queue, never a whole
 * look, so the worker is never behind, yet there is two cores' work. The
 * idle worker must take a share (about half on an idle machine).
 */
enum { PAIRS = 8 };

typedef struct pair_pool {
    tr_sched *s;
    tr_task driver;
    tr_task tasks[2 * PAIRS];
    tr_atomic(int64_t) runs;    /* runs left to start */
    tr_atomic(uint64_t) ran[2]; /* per worker */
} pair_pool;

static void
pair_pool_run(void *arg, tr_worker *w, tr_task *t)
{
    pair_pool *p = arg;

    if (t == &p->driver) {
        for (unsigned i = 0; i < PAIRS; i++) {
            tr__sched_requeue(w, &p->tasks[2 * i]);
        }
        return;
    }
    uint64_t t0 = thread_cpu_ns();
    while (thread_cpu_ns() - t0 < 2000u) {
    }
    tr_faa_relaxed(&p->ran[tr__worker_index(w)], 1);
    if (tr_fas_relaxed(&p->runs, 1) > 0) {
        /* Wake the partner, as a message to an idle actor does. */
        tr__sched_submit(p->s, &p->tasks[(size_t)(t - p->tasks) ^ 1u]);
    }
}

static bool
pair_pool_done(void *arg)
{
    pair_pool *p = arg;
    return tr_load_relaxed(&p->ran[0]) + tr_load_relaxed(&p->ran[1]) >= 100000;
}

static void
test_sched_loose_work_spreads_before_anyone_is_behind(void **state)
{
    static pair_pool p;
    uint64_t ran0;
    uint64_t ran1;

    (void)state;
#ifdef TROUPE_SYSTEMATIC
    skip(); /* as in test_sched_work_one_worker_cannot_keep_up_with_spreads */
#endif
    tr_init_relaxed(&p.runs, 100000);
    tr_init_relaxed(&p.ran[0], 0);
    tr_init_relaxed(&p.ran[1], 0);
    assert_int_equal(tr__sched_create(2, 0, pair_pool_run, &p, &p.s), TR_OK);
    assert_int_equal(tr__sched_start(p.s), TR_OK);
    tr__sched_submit(p.s, &p.driver);
    bool done = tr_test_wait_until(pair_pool_done, &p, 30000);
    tr__sched_stop(p.s);
    tr__sched_destroy(p.s);
    assert_true(done);
    ran0 = tr_load_relaxed(&p.ran[0]);
    ran1 = tr_load_relaxed(&p.ran[1]);
    unsigned other =
        (unsigned)((ran0 < ran1 ? ran0 : ran1) * 100 / (ran0 + ran1));
    print_message("the other worker made %u%% of the runs\n", other);
    assert_true(other >= 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_sched_flooding_actor_does_not_starve_others_one_worker),
        cmocka_unit_test(
            test_sched_flooding_actors_do_not_starve_others_two_workers),
        cmocka_unit_test(test_sched_lifo_ping_pong_does_not_starve_others),
        cmocka_unit_test(
            test_sched_lifo_ping_pong_does_not_starve_plain_threads),
        cmocka_unit_test(test_sched_self_continuing_actors_take_turns),
        cmocka_unit_test(test_sched_idle_system_uses_no_cpu),
        cmocka_unit_test(
            test_sched_inject_pop_into_a_ring_held_by_a_thief_loses_nothing),
        cmocka_unit_test(
            test_sched_inject_queue_keeps_every_task_across_segments_and_without_memory),
        cmocka_unit_test(
            test_sched_idle_worker_takes_the_lifo_task_of_a_stuck_worker),
        cmocka_unit_test(
            test_sched_idle_worker_takes_the_queued_tasks_of_a_stuck_worker),
        cmocka_unit_test(
            test_sched_idle_worker_takes_a_plain_threads_task_from_a_stuck_pool),
        cmocka_unit_test(
            test_sched_plain_threads_tasks_run_while_a_wakeup_is_held_back),
        cmocka_unit_test(
            test_sched_a_queue_is_stolen_from_only_when_its_owner_is_behind),
        cmocka_unit_test(
            test_sched_work_one_worker_cannot_keep_up_with_spreads),
        cmocka_unit_test(
            test_sched_watchdog_looks_back_off_while_nothing_is_marked),
        cmocka_unit_test(test_sched_a_busy_worker_shares_loose_work_only),
        cmocka_unit_test(
            test_sched_a_loose_mark_that_does_not_pay_is_taken_back_and_held),
        cmocka_unit_test(
            test_sched_a_loose_mark_goes_on_trial_only_with_a_worker_to_spare),
        cmocka_unit_test(test_sched_loose_work_spreads_before_anyone_is_behind),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
