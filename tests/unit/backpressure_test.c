/*
 * Backpressure (actors/mute.c): actors sending to an actor far behind are
 * muted until it catches up, so an unbounded mailbox stays near a few
 * batches; nothing deadlocks (cycles, a receiver sending back to its
 * muted sender, pipelines); control still reaches a muted actor; the end
 * of a receiver, and shutdown, let its muted senders go.
 *
 * The handshake's two windows are tested with a sender held in each (a
 * test hook in actors/mute.c) while the receiver catches up.
 *
 * The tests run on two workers, where producers have a core of their
 * own and would otherwise outrun the consumer without limit (three where
 * one worker is held in a window).
 */
#include "support/tr_test.h"

#include "actors/actor.h"

#include <sched.h>
#include <stdatomic.h>
#include <time.h>

enum { MSG_VALUE = 1, MSG_MORE = 2, MSG_GO = 3 };
enum { CHUNK = 500 };

static void
spin_ns(uint64_t ns)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000000000u +
                 (uint64_t)(t.tv_nsec - t0.tv_nsec) <
             ns);
}

/* ---- a slow consumer that watches its own backlog ---- */

typedef struct sink {
    uint64_t cost_ns; /* time each message takes */
    tr_addr forward;  /* where each value goes next, or none */
    tr_atomic(uint64_t) got;
    tr_atomic(uint64_t) sum;
    tr_atomic(uint64_t) max_len; /* the largest backlog it saw */
} sink;

static int
sink_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, &arg, sizeof(arg));
    return TR_OK;
}

static int
sink_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sink *s = *(sink **)state;
    uint64_t v;
    tr_actor_stats st;

    memcpy(&v, msg->data, sizeof(v));
    if (tr_actor_stats_get(tr_ctx_system(ctx), tr_self(ctx), &st) == TR_OK &&
        st.mailbox_len > tr_load_relaxed(&s->max_len)) {
        tr_store_relaxed(&s->max_len, st.mailbox_len);
    }
    spin_ns(s->cost_ns);
    if (!tr_addr_is_none(s->forward) &&
        tr_send(ctx, s->forward, MSG_VALUE, &v, sizeof(v)) != TR_OK) {
        return TR_EIO;
    }
    tr_store_relaxed(&s->sum, tr_load_relaxed(&s->sum) + v);
    tr_store_rel(&s->got, tr_load_relaxed(&s->got) + 1);
    return TR_OK;
}

static const tr_behaviour sink_behaviour = {
    .name = "sink",
    .state_size = sizeof(sink *),
    .init = sink_init,
    .handle = sink_handle,
};

/* ---- a producer: CHUNK values a run, then it sends itself MSG_MORE ---- */

typedef struct producer {
    tr_addr to;
    uint64_t next, end;
} producer;

static int
producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(producer));
    return TR_OK;
}

static int
producer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer *p = state;

    (void)msg;
    for (int i = 0; i < CHUNK && p->next < p->end; i++, p->next++) {
        if (tr_send(ctx, p->to, MSG_VALUE, &p->next, sizeof(p->next)) !=
            TR_OK) {
            return TR_EIO;
        }
    }
    if (p->next < p->end) {
        return tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
    }
    return TR_OK;
}

static const tr_behaviour producer_behaviour = {
    .name = "producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_handle,
};

/* Spawn the sink `s` (forwarding nowhere) and one producer of the values
 * 0 .. end - 1 into it, not yet started (MSG_GO starts it). */
static void
spawn_pair(tr_ctx *ctx, sink *s, uint64_t end, tr_addr *to, tr_addr *prod)
{
    producer p = {.next = 0, .end = end};

    s->forward = TR_ADDR_NONE;
    assert_int_equal(tr_spawn(ctx, &sink_behaviour, s, NULL, to), TR_OK);
    p.to = *to;
    assert_int_equal(tr_spawn(ctx, &producer_behaviour, &p, NULL, prod), TR_OK);
}

typedef struct count_goal {
    sink *s;
    uint64_t n;
} count_goal;

static bool
sink_has(void *arg)
{
    count_goal *g = arg;
    return tr_load_acq(&g->s->got) >= g->n;
}

/* Producers feed one slow sink; the sink's backlog stays bounded. */
static void
test_backpressure_bounds_a_slow_consumers_backlog(void **unused)
{
    enum { PRODUCERS = 4, PER = 100000 };
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static sink s = {.cost_ns = 2000};
    tr_addr to;
    tr_addr ps[PRODUCERS];
    uint64_t total = (uint64_t)PRODUCERS * PER;
    count_goal g = {&s, total};

    (void)unused;
    s.forward = TR_ADDR_NONE;
    assert_int_equal(tr_spawn(ctx, &sink_behaviour, &s, NULL, &to), TR_OK);
    for (int i = 0; i < PRODUCERS; i++) {
        producer p = {.to = to,
                      .next = (uint64_t)i * PER,
                      .end = (uint64_t)(i + 1) * PER};
        assert_int_equal(tr_spawn(ctx, &producer_behaviour, &p, NULL, &ps[i]),
                         TR_OK);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(tr_send(ctx, ps[i], MSG_GO, NULL, 0), TR_OK);
    }
    assert_true(tr_test_wait_until(sink_has, &g, 60000));
    assert_int_equal(tr_load_relaxed(&s.sum), total * (total - 1) / 2);
    /* Unmuted, the producers (a core of their own, and far faster than 2
     * us a message) queue almost everything: 400,000. Muted, a producer
     * stops after the run that saw the sink under pressure. What the sink
     * can find queued is what the producers send before it runs: a run
     * of each (500), or 16 in a row while the sink waits behind them on
     * their worker (the scheduler's LIFO slot). */
    assert_in_range(tr_load_relaxed(&s.max_len), 0, 128 * 1024);
    tr_test_shutdown(sys);
}

/* A -> B -> C with C slow: B is muted on C, and A on B, so neither C's
 * nor B's mailbox grows with what A sends (unmuted: most of 300,000). */
static void
test_backpressure_climbs_a_pipeline(void **unused)
{
    enum { N = 300000 };
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static sink c = {.cost_ns = 3000};
    static sink b = {.cost_ns = 0};
    tr_addr ca, ba, aa;
    count_goal g = {&c, N};

    (void)unused;
    c.forward = TR_ADDR_NONE;
    assert_int_equal(tr_spawn(ctx, &sink_behaviour, &c, NULL, &ca), TR_OK);
    b.forward = ca;
    assert_int_equal(tr_spawn(ctx, &sink_behaviour, &b, NULL, &ba), TR_OK);
    producer p = {.to = ba, .next = 0, .end = N};
    assert_int_equal(tr_spawn(ctx, &producer_behaviour, &p, NULL, &aa), TR_OK);
    assert_int_equal(tr_send(ctx, aa, MSG_GO, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(sink_has, &g, 60000));
    assert_int_equal(tr_load_relaxed(&c.sum), (uint64_t)N * (N - 1) / 2);
    assert_in_range(tr_load_relaxed(&c.max_len), 0, 128 * 1024);
    assert_in_range(tr_load_relaxed(&b.max_len), 0, 128 * 1024);
    tr_test_shutdown(sys);
}

/* ---- flooders in a ring: each floods the next and continues itself ---- */

typedef struct flooder {
    tr_addr next;
    uint64_t runs_left;
    uint64_t cost_ns;
    tr_atomic(uint64_t) * done;
    tr_atomic(uint64_t) * values;
} flooder;

static int
flooder_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    flooder *f = state;

    if (msg->type == MSG_VALUE) {
        spin_ns(f->cost_ns);
        tr_faa_relaxed(f->values, 1);
        return TR_OK;
    }
    if (msg->type == MSG_GO) {
        memcpy(&f->next, msg->data, sizeof(f->next));
    }
    for (int i = 0; i < CHUNK; i++) {
        uint64_t v = (uint64_t)i;
        if (tr_send(ctx, f->next, MSG_VALUE, &v, sizeof(v)) != TR_OK) {
            return TR_EIO;
        }
    }
    if (--f->runs_left == 0) {
        tr_faa_seqcst(f->done, 1);
        return TR_OK;
    }
    return tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
}

static int
flooder_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(flooder));
    return TR_OK;
}

static const tr_behaviour flooder_behaviour = {
    .name = "flooder",
    .state_size = sizeof(flooder),
    .init = flooder_init,
    .handle = flooder_handle,
};

typedef struct ring_goal {
    tr_atomic(uint64_t) * done;
    tr_atomic(uint64_t) * values;
    uint64_t n, values_n;
} ring_goal;

static bool
ring_over(void *arg)
{
    ring_goal *g = arg;
    return tr_load_seqcst(g->done) == g->n &&
           tr_load_relaxed(g->values) == g->values_n;
}

/* Every actor floods the next in a cycle (two of them flood each other):
 * each is both a muted sender and an overloaded receiver, and everything
 * still arrives. */
static void
ring_of(unsigned n)
{
    enum { RUNS = 200 };
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr *as = calloc(n, sizeof(*as));
    static tr_atomic(uint64_t) done, values;
    ring_goal g = {&done, &values, n, (uint64_t)n * RUNS * CHUNK};

    assert_non_null(as);
    tr_store_relaxed(&done, 0);
    tr_store_relaxed(&values, 0);
    for (unsigned i = 0; i < n; i++) {
        flooder f = {.runs_left = RUNS,
                     .cost_ns = 500 * (i % 3),
                     .done = &done,
                     .values = &values};
        assert_int_equal(tr_spawn(ctx, &flooder_behaviour, &f, NULL, &as[i]),
                         TR_OK);
    }
    for (unsigned i = 0; i < n; i++) {
        tr_addr next = as[(i + 1) % n];
        assert_int_equal(tr_send(ctx, as[i], MSG_GO, &next, sizeof(next)),
                         TR_OK);
    }
    assert_true(tr_test_wait_until(ring_over, &g, 120000));
    tr_test_shutdown(sys);
    free(as);
}

static void
test_backpressure_two_actors_flooding_each_other_finish(void **unused)
{
    (void)unused;
    ring_of(2);
}

static void
test_backpressure_a_ring_of_flooders_finishes(void **unused)
{
    (void)unused;
    ring_of(7);
}

/* ---- control reaches a muted actor; a receiver's end frees it ---- */

typedef struct stats_goal {
    tr_system *sys;
    tr_addr who;
} stats_goal;

static bool
is_muted(void *arg)
{
    stats_goal *g = arg;
    tr_actor_stats st;
    return tr_actor_stats_get(g->sys, g->who, &st) == TR_OK && st.muted;
}

static bool
is_gone(void *arg)
{
    stats_goal *g = arg;
    tr_actor_stats st;
    return tr_actor_stats_get(g->sys, g->who, &st) == TR_ENOACTOR;
}

/* Start a producer flooding the slow sink `s` and wait until it is
 * muted; `g` then watches the producer. */
static void
flood_until_muted(tr_system *sys, sink *s, tr_addr *to, stats_goal *g)
{
    tr_ctx *ctx = tr_system_ctx(sys);

    g->sys = sys;
    spawn_pair(ctx, s, UINT64_MAX, to, &g->who);
    assert_int_equal(tr_send(ctx, g->who, MSG_GO, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(is_muted, g, 10000));
}

/* A producer flooding a very slow sink is muted; a stop request ends it at
 * once, long before the sink could catch up. */
static void
test_backpressure_a_muted_actor_still_takes_a_stop(void **unused)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static sink s = {.cost_ns = 200000}; /* 0.2 ms: the backlog takes s */
    tr_addr to;
    stats_goal g;

    (void)unused;
    flood_until_muted(sys, &s, &to, &g);
    tr_actor_stats st;
    assert_int_equal(tr_actor_stats_get(sys, to, &st), TR_OK);
    uint64_t queued = st.mailbox_len;
    uint64_t before = tr_load_acq(&s.got);
    assert_int_equal(tr_actor_stop(ctx, g.who), TR_OK);
    assert_true(tr_test_wait_until(is_gone, &g, 2000));
    /* It ended while the sink was still far behind. A stop that waited
     * for the unmute would have waited for the sink to work the backlog
     * it found down to a quarter batch. */
    assert_int_equal(tr_actor_stats_get(sys, to, &st), TR_OK);
    assert_true(tr_load_acq(&s.got) - before < queued / 2);
    tr_test_shutdown(sys);
}

/* The sink ends while the producer is muted on it: the producer goes on
 * (its sends now fail, and it stops by failing). */
static void
test_backpressure_a_receivers_end_unmutes_its_senders(void **unused)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static sink s = {.cost_ns = 200000};
    tr_addr to;
    stats_goal g;

    (void)unused;
    flood_until_muted(sys, &s, &to, &g);
    /* A kill-free end of the sink: it stops after its current message. */
    assert_int_equal(tr_actor_stop(ctx, to), TR_OK);
    /* The producer runs again, finds the sink gone and fails. */
    assert_true(tr_test_wait_until(is_gone, &g, 5000));
    tr_test_shutdown(sys);
}

/* Shutdown while producers are muted on a slow sink ends everything and
 * leaks nothing (ASan). */
static void
test_backpressure_shutdown_with_muted_actors(void **unused)
{
    for (int round = 0; round < 10; round++) {
        tr_system *sys = tr_test_system(2);
        tr_ctx *ctx = tr_system_ctx(sys);
        static sink s = {.cost_ns = 20000};
        tr_addr to, p_addr;
        stats_goal g = {sys, TR_ADDR_NONE};

        (void)unused;
        s.forward = TR_ADDR_NONE;
        assert_int_equal(tr_spawn(ctx, &sink_behaviour, &s, NULL, &to), TR_OK);
        for (int i = 0; i < 4; i++) {
            producer p = {.to = to, .next = 0, .end = UINT64_MAX};
            assert_int_equal(
                tr_spawn(ctx, &producer_behaviour, &p, NULL, &p_addr), TR_OK);
            assert_int_equal(tr_send(ctx, p_addr, MSG_GO, NULL, 0), TR_OK);
        }
        g.who = p_addr;
        if (round % 2 == 0) {
            assert_true(tr_test_wait_until(is_muted, &g, 10000));
        }
        tr_test_shutdown(sys);
    }
}

/* ---- a sender held in the window of the mute handshake ---- */

/* The hook holds the first muting run of `watched`, in the window
 * `hold_after` names, until `release`. */
static tr_atomic(uint64_t) watched;
static tr_atomic(bool) hold_after;
static tr_atomic(int) held;
static tr_atomic(int) release;

static void
hold_first(uint64_t self, bool after)
{
    int expected = 0;

    if (self != tr_load_seqcst(&watched) ||
        after != tr_load_seqcst(&hold_after) ||
        !atomic_compare_exchange_strong(&held, &expected, 1)) {
        return;
    }
    uint64_t t0 = tr__now_ns();
    while (tr_load_seqcst(&release) == 0 && tr__now_ns() - t0 < 20000000000u) {
        sched_yield();
    }
}

static bool
is_held(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&held) == 1;
}

static void
hold_mutes_of(tr_addr who, bool after)
{
    tr_store_seqcst(&watched, who.id);
    tr_store_seqcst(&hold_after, after);
    tr_store_seqcst(&held, 0);
    tr_store_seqcst(&release, 0);
}

static bool
sink_empty(void *arg)
{
    stats_goal *g = arg;
    tr_actor_stats st;
    return tr_actor_stats_get(g->sys, g->who, &st) == TR_OK &&
           st.mailbox_len == 0;
}

/* A producer is held in one window of its first mute (see the hook)
 * while the sink drains everything; then everything still arrives. */
static void
catch_up_inside_the_window(bool after)
{
    enum { N = 60000 };
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    sink s = {.cost_ns = 20000}; /* outlives the system (shut down) */
    tr_addr to, p_addr;
    stats_goal g = {sys, TR_ADDR_NONE};
    count_goal all = {&s, N};

    spawn_pair(ctx, &s, N, &to, &p_addr);
    hold_mutes_of(p_addr, after);
    tr_store_seqcst(&tr__mute_pause, hold_first);
    assert_int_equal(tr_send(ctx, p_addr, MSG_GO, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(is_held, NULL, 20000));
    /* The receiver catches up while the sender is in the window. */
    g.who = to;
    assert_true(tr_test_wait_until(sink_empty, &g, 20000));
    tr_store_seqcst(&release, 1);
    assert_true(tr_test_wait_until(sink_has, &all, 60000));
    assert_int_equal(tr_load_relaxed(&s.sum), (uint64_t)N * (N - 1) / 2);
    tr_store_seqcst(&tr__mute_pause, NULL);
    tr_test_shutdown(sys);
}

/*
 * The sender has recorded itself on the receiver (and set MUTED) but not
 * yet re-checked; meanwhile the receiver drains everything and lets its
 * muted senders go. The sender is not lost: whoever cleared MUTED
 * scheduled it, and its held runner touches it no more.
 */
static void
test_backpressure_receiver_catches_up_inside_the_mute_window(void **unused)
{
    (void)unused;
    catch_up_inside_the_window(true);
}

/*
 * The other window: the receiver catches up (and lets go of the empty
 * list it had) before the sender records itself. Only the sender's
 * re-check, which finds the receiver no longer under pressure, keeps it
 * from staying muted with nobody left to wake it.
 */
static void
test_backpressure_receiver_catches_up_before_the_sender_records(void **unused)
{
    (void)unused;
    catch_up_inside_the_window(false);
}

/* A stop sent while the sender is held in a window of its mute reaches it
 * long before the receiver could catch up: after the record, the stop's
 * pusher finds MUTED set and schedules it; before, the sender's own
 * re-check finds the stop queued and does not stay muted. */
static void
stop_inside_the_window(bool after)
{
    /* Three workers: one held in the window, one busy with the slow
     * sink's long runs, one free to run the stop. */
    tr_system *sys = tr_test_system(3);
    tr_ctx *ctx = tr_system_ctx(sys);
    /* 5 ms a message: the sink needs seconds to catch up. */
    static sink s = {.cost_ns = 5000000};
    tr_addr to, p_addr;
    stats_goal g = {sys, TR_ADDR_NONE};

    spawn_pair(ctx, &s, UINT64_MAX, &to, &p_addr);
    hold_mutes_of(p_addr, after);
    tr_store_seqcst(&tr__mute_pause, hold_first);
    assert_int_equal(tr_send(ctx, p_addr, MSG_GO, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(is_held, NULL, 20000));
    assert_int_equal(tr_actor_stop(ctx, p_addr), TR_OK);
    g.who = p_addr;
    if (after) {
        /* It runs the stop while its held runner is still in the window
         * (the stop's pusher scheduled it). */
        assert_true(tr_test_wait_until(is_gone, &g, 2000));
        tr_store_seqcst(&release, 1);
    } else {
        /* Not yet muted, it is still its runner's: let it go on. */
        tr_store_seqcst(&release, 1);
        assert_true(tr_test_wait_until(is_gone, &g, 2000));
    }
    tr_store_seqcst(&tr__mute_pause, NULL);
    tr_test_shutdown(sys);
}

static void
test_backpressure_a_stop_reaches_a_sender_inside_the_mute_window(void **unused)
{
    (void)unused;
    stop_inside_the_window(true);
}

static void
test_backpressure_a_stop_reaches_a_sender_about_to_mute(void **unused)
{
    (void)unused;
    stop_inside_the_window(false);
}

/* ---- a supervised receiver that crashes while overloaded ---- */

enum { MSG_HOLD = 4, MSG_CRASH = 5 };

static tr_atomic(int) victim_inits;
static tr_atomic(int) victim_holds;
static tr_atomic(int) gates[2]; /* MSG_HOLD's payload names one */

static int
victim_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    (void)state;
    (void)arg;
    tr_faa_seqcst(&victim_inits, 1);
    return TR_OK;
}

/* MSG_HOLD waits for its gate (a backlog builds meanwhile), MSG_CRASH
 * fails, anything else is handled at once. */
static int
victim_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->type == MSG_HOLD) {
        int gate;
        memcpy(&gate, msg->data, sizeof(gate));
        tr_faa_seqcst(&victim_holds, 1);
        uint64_t t0 = tr__now_ns();
        while (tr_load_seqcst(&gates[gate]) == 0 &&
               tr__now_ns() - t0 < 20000000000u) {
            sched_yield();
        }
    }
    return msg->type == MSG_CRASH ? TR_EINVAL : TR_OK;
}

static const tr_behaviour victim_behaviour = {
    .name = "victim", .init = victim_init, .handle = victim_handle};

/* On MSG_GO (its payload: the receiver and a message type) it sends that
 * message, then itself MSG_MORE, so that it has more to run: a send to an
 * actor under pressure mutes it. MSG_MORE counts. */
typedef struct poke {
    tr_addr to;
    uint32_t type;
} poke;

static tr_atomic(int) pokes_done;

static int
poker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == MSG_MORE) {
        tr_faa_seqcst(&pokes_done, 1);
        return TR_OK;
    }
    poke p;
    memcpy(&p, msg->data, sizeof(p));
    int rc = tr_send(ctx, p.to, p.type, NULL, 0);
    return rc != TR_OK ? rc : tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
}

static const tr_behaviour poker_behaviour = {.name = "poker",
                                             .handle = poker_handle};

static bool
int_reaches(void *arg)
{
    tr_atomic(int) *v = arg;
    return tr_load_seqcst(v) >= 1;
}

static bool
inits_reach_two(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&victim_inits) >= 2;
}

static bool
holds_reach_two(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&victim_holds) >= 2;
}

typedef struct idle_goal {
    tr_system *sys;
    tr_addr who;
} idle_goal;

static bool
drained(void *arg)
{
    idle_goal *g = arg;
    tr_actor_stats st;
    return tr_actor_stats_get(g->sys, g->who, &st) == TR_OK &&
           st.mailbox_len == 0;
}

static bool
poker_muted(void *arg)
{
    idle_goal *g = arg;
    tr_actor_stats st;
    return tr_actor_stats_get(g->sys, g->who, &st) == TR_OK && st.muted;
}

/* Start a supervisor of one victim ("/bp/v", restarted after `delay_ms`,
 * or at once for 0); hold the victim at gate 0 and queue `before` values,
 * then `tail` (NULL-terminated types, MSG_HOLD meaning gate 1), then
 * `after` values behind it. */
static tr_addr
victim_with_backlog(tr_system *sys, uint32_t delay_ms, int before,
                    const uint32_t *tail, int after)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    static tr_child_spec child = {
        .id = "v", .behaviour = &victim_behaviour, .restart = TR_PERMANENT};
    static const tr_sup_spec spec = {.name = "bp",
                                     .strategy = TR_ONE_FOR_ONE,
                                     .max_restarts = 100,
                                     .period_ms = 1000,
                                     .children = &child,
                                     .len = 1};
    int gate0 = 0, gate1 = 1;
    tr_addr v;

    child.backoff = (tr_backoff){.min_ms = delay_ms, .max_ms = delay_ms};
    tr_store_seqcst(&victim_inits, 0);
    tr_store_seqcst(&victim_holds, 0);
    tr_store_seqcst(&gates[0], 0);
    tr_store_seqcst(&gates[1], 0);
    tr_store_seqcst(&pokes_done, 0);
    assert_int_equal(tr_sup_start(ctx, &spec, NULL, NULL), TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/bp/v", &v), TR_OK);
    assert_int_equal(tr_send(ctx, v, MSG_HOLD, &gate0, sizeof(gate0)), TR_OK);
    assert_true(tr_test_wait_until(int_reaches, &victim_holds, 5000));
    for (int i = 0; i < before; i++) {
        assert_int_equal(tr_send(ctx, v, MSG_VALUE, NULL, 0), TR_OK);
    }
    for (; *tail != 0; tail++) {
        assert_int_equal(tr_send(ctx, v, *tail, &gate1, sizeof(gate1)), TR_OK);
    }
    for (int i = 0; i < after; i++) {
        assert_int_equal(tr_send(ctx, v, MSG_VALUE, NULL, 0), TR_OK);
    }
    return v;
}

/* The victim becomes overloaded on its backlog, then crashes on the last
 * message; restarted in place, it goes idle. It must start unpressured,
 * as a spawned actor does: an actor sending it a message that makes it
 * fail again is not muted for ever (before the fix the flag outlived the
 * crash, no run of the victim ever ended normally to clear it, and the
 * sender stayed muted). */
static void
test_backpressure_a_restarted_actor_starts_unpressured(void **unused)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static const uint32_t crash[] = {MSG_CRASH, 0};
    tr_actor_stats st;
    tr_addr p_addr;

    (void)unused;
    tr_addr v = victim_with_backlog(sys, 0, 3 * TR_BATCH, crash, 0);
    tr_store_seqcst(&gates[0], 1);
    assert_true(tr_test_wait_until(inits_reach_two, NULL, 5000));
    idle_goal g = {sys, v};
    assert_true(tr_test_wait_until(drained, &g, 5000));
    assert_int_equal(tr_actor_stats_get(sys, v, &st), TR_OK);
    assert_false(st.overloaded);

    poke p = {v, MSG_CRASH};
    assert_int_equal(tr_spawn(ctx, &poker_behaviour, NULL, NULL, &p_addr),
                     TR_OK);
    assert_int_equal(tr_send(ctx, p_addr, MSG_GO, &p, sizeof(p)), TR_OK);
    assert_true(tr_test_wait_until(int_reaches, &pokes_done, 5000));
    tr_test_shutdown(sys);
}

/* An actor muted on an overloaded receiver that crashes goes on at once:
 * it does not wait for the restart (a minute away here, by backoff). */
static void
test_backpressure_a_crash_lets_its_muted_senders_go(void **unused)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static const uint32_t hold_then_crash[] = {MSG_HOLD, MSG_CRASH, 0};
    tr_actor_stats st;
    tr_addr p_addr;

    (void)unused;
    tr_addr v = victim_with_backlog(sys, 60000, TR_BATCH + 100, hold_then_crash,
                                    2 * TR_BATCH);
    tr_store_seqcst(&gates[0], 1);
    /* At gate 1, with a batch and more still queued: overloaded. */
    assert_true(tr_test_wait_until(holds_reach_two, NULL, 5000));
    assert_int_equal(tr_actor_stats_get(sys, v, &st), TR_OK);
    assert_true(st.overloaded);

    poke p = {v, MSG_VALUE};
    assert_int_equal(tr_spawn(ctx, &poker_behaviour, NULL, NULL, &p_addr),
                     TR_OK);
    assert_int_equal(tr_send(ctx, p_addr, MSG_GO, &p, sizeof(p)), TR_OK);
    idle_goal g = {sys, p_addr};
    assert_true(tr_test_wait_until(poker_muted, &g, 5000));
    assert_int_equal(tr_load_seqcst(&pokes_done), 0);

    tr_store_seqcst(&gates[1], 1); /* the victim crashes */
    assert_true(tr_test_wait_until(int_reaches, &pokes_done, 5000));
    assert_int_equal(tr_load_seqcst(&victim_inits), 1); /* not restarted */
    tr_test_shutdown(sys);
}

/* ---- a caller whose continuation sends under pressure ---- */

static int
echo_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    return tr_reply(ctx, msg, msg->data, msg->size);
}

static const tr_behaviour echo_behaviour = {.name = "echo",
                                            .handle = echo_handle};

/* MSG_GO's payload: the server to call, then the poke its continuation
 * makes (as poker_handle's, MSG_MORE to itself after). */
typedef struct call_poke {
    tr_addr server;
    poke p;
} call_poke;

static int
poke_on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    const call_poke *cp = state;

    (void)arg;
    if (res->status != TR_OK) {
        return res->status;
    }
    int rc = tr_send(ctx, cp->p.to, cp->p.type, NULL, 0);
    return rc != TR_OK ? rc : tr_send(ctx, tr_self(ctx), MSG_MORE, NULL, 0);
}

static int
call_poker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    call_poke *cp = state;

    if (msg->type == MSG_MORE) {
        tr_faa_seqcst(&pokes_done, 1);
        return TR_OK;
    }
    memcpy(cp, msg->data, sizeof(*cp));
    return tr_call(ctx, cp->server, MSG_VALUE, NULL, 0, TR_FOREVER,
                   poke_on_reply, NULL);
}

static const tr_behaviour call_poker_behaviour = {
    .name = "call_poker",
    .state_size = sizeof(call_poke),
    .handle = call_poker_handle,
};

/* A continuation sends as a handler does: to an actor under pressure, it
 * mutes its caller until the receiver catches up. The caller is idle when
 * the reply comes, so its run is the short one that takes a lone reply
 * (actor.c: run_lean_reply). */
static void
test_backpressure_a_continuation_sending_under_pressure_mutes_its_caller(
    void **unused)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    static const uint32_t hold[] = {MSG_HOLD, 0};
    tr_actor_stats st;
    call_poke cp = {.p = {.type = MSG_VALUE}};
    tr_addr caller;

    (void)unused;
    cp.p.to = victim_with_backlog(sys, 0, TR_BATCH + 100, hold, 2 * TR_BATCH);
    tr_store_seqcst(&gates[0], 1);
    assert_true(tr_test_wait_until(holds_reach_two, NULL, 5000));
    assert_int_equal(tr_actor_stats_get(sys, cp.p.to, &st), TR_OK);
    assert_true(st.overloaded);

    assert_int_equal(tr_spawn(ctx, &echo_behaviour, NULL, NULL, &cp.server),
                     TR_OK);
    assert_int_equal(tr_spawn(ctx, &call_poker_behaviour, NULL, NULL, &caller),
                     TR_OK);
    assert_int_equal(tr_send(ctx, caller, MSG_GO, &cp, sizeof(cp)), TR_OK);
    idle_goal g = {sys, caller};
    assert_true(tr_test_wait_until(poker_muted, &g, 5000));
    assert_int_equal(tr_load_seqcst(&pokes_done), 0);

    tr_store_seqcst(&gates[1], 1); /* the victim catches up */
    assert_true(tr_test_wait_until(int_reaches, &pokes_done, 5000));
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure_bounds_a_slow_consumers_backlog),
        cmocka_unit_test(test_backpressure_climbs_a_pipeline),
        cmocka_unit_test(
            test_backpressure_two_actors_flooding_each_other_finish),
        cmocka_unit_test(test_backpressure_a_ring_of_flooders_finishes),
        cmocka_unit_test(test_backpressure_a_muted_actor_still_takes_a_stop),
        cmocka_unit_test(test_backpressure_a_receivers_end_unmutes_its_senders),
        cmocka_unit_test(test_backpressure_shutdown_with_muted_actors),
        cmocka_unit_test(
            test_backpressure_receiver_catches_up_inside_the_mute_window),
        cmocka_unit_test(
            test_backpressure_receiver_catches_up_before_the_sender_records),
        cmocka_unit_test(
            test_backpressure_a_stop_reaches_a_sender_inside_the_mute_window),
        cmocka_unit_test(
            test_backpressure_a_stop_reaches_a_sender_about_to_mute),
        cmocka_unit_test(
            test_backpressure_a_restarted_actor_starts_unpressured),
        cmocka_unit_test(test_backpressure_a_crash_lets_its_muted_senders_go),
        cmocka_unit_test(
            test_backpressure_a_continuation_sending_under_pressure_mutes_its_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
