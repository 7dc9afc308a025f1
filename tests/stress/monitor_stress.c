/*
 * Watchers and their targets ending at the same time, on both workers.
 * Each round, targets are stopped by a helper thread while three kinds of
 * watcher monitor them and two anchors (which outlive the round):
 * enders end at once, racing the targets' ends; keepers stay, and take
 * back every other monitor at once, racing them too; supervised kids fail
 * at once and are restarted in place, their targets ending meanwhile.
 *
 * Checked: a keeper hears exactly one DOWN for each monitor it did not
 * take back (TR_OK), and none for one it did; a kid's new instance hears
 * no DOWN of its predecessor's monitors; once the round's watchers have
 * ended or restarted, the anchors hold the keepers' monitors and no
 * others, and each keeper holds only its anchors' (every DOWN delivered
 * took its record); when the keepers end, the anchors hold none. Under
 * ASan, no DOWN is freed twice or touched after its free, and nothing
 * leaks (every monitor's DOWN was delivered or freed with its monitor).
 *
 * Arguments: rounds (default 100; CTest runs 300).
 */
#include "support/tr_test.h"

#include "actors/ext.h"

#include <pthread.h>
#include <sched.h>

enum {
    WORKERS = 2,
    ANCHORS = 2,
    TARGETS = 8,
    ENDERS = 16,
    KEEPERS = 8,
    KIDS = 8,
    WAIT_MS = 30000,
    MSG_GO = 1,
};

static long rounds = 100;

/* The round's actors, written by the test thread before the GOs (the
 * kids' by their `init`). */
static tr_addr anchors[ANCHORS];
static tr_addr targets[TARGETS];
static tr_atomic(uint64_t) kids[KIDS];

static tr_atomic(long) gos;      /* GOs handled this round */
static tr_atomic(long) expected; /* DOWNs the keepers wait for */
static tr_atomic(long) downs;    /* DOWNs the keepers heard */
static tr_atomic(long) inits;    /* kid instances started */
static tr_atomic(long) bad;      /* anything unexpected, on any thread */

/* Monitor the anchors and the targets; false (and counted) on failure. */
static bool
monitor_all(tr_ctx *ctx, uint64_t *refs)
{
    for (int i = 0; i < ANCHORS + TARGETS; i++) {
        tr_addr to = i < ANCHORS ? anchors[i] : targets[i - ANCHORS];
        if (tr_monitor(ctx, to, &refs[i]) != TR_OK) {
            tr_faa_relaxed(&bad, 1);
            return false;
        }
    }
    return true;
}

/* An ender's or a kid's message: the go, on which it monitors everyone,
 * or else a DOWN, which neither should get (an ender ends at once; a kid's
 * every monitor was its predecessor's). True on the go. */
static bool
go_monitors_all(tr_ctx *ctx, const tr_msg *msg)
{
    uint64_t refs[ANCHORS + TARGETS];

    if (msg->type != MSG_GO) {
        tr_faa_relaxed(&bad, 1);
        return false;
    }
    monitor_all(ctx, refs);
    tr_faa_acqrel(&gos, 1);
    return true;
}

static int
ender_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    return go_monitors_all(ctx, msg) ? tr_stop(ctx) : TR_OK;
}

static const tr_behaviour ender_behaviour = {
    .name = "ender",
    .handle = ender_handle,
};

typedef struct keeper {
    uint64_t refs[ANCHORS + TARGETS];
    bool removed[ANCHORS + TARGETS]; /* taken back with TR_OK */
    bool heard[ANCHORS + TARGETS];
} keeper;

static void
keeper_down(keeper *k, const tr_msg *msg)
{
    tr_signal sig;

    if (msg->size != sizeof(sig)) {
        tr_faa_relaxed(&bad, 1);
        return;
    }
    memcpy(&sig, msg->data, sizeof(sig));
    for (int i = ANCHORS; i < ANCHORS + TARGETS; i++) {
        if (k->refs[i] == sig.ref) {
            if (k->removed[i] || k->heard[i] ||
                !tr_addr_eq(sig.who, targets[i - ANCHORS])) {
                break;
            }
            k->heard[i] = true;
            /* Release: the test thread reads `bad` after the count. */
            tr_faa_acqrel(&downs, 1);
            return;
        }
    }
    tr_faa_relaxed(&bad, 1); /* an anchor's, twice, or after TR_OK */
}

static int
keeper_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    keeper *k = state;
    long want = 0;

    if (msg->type == TR_MSG_DOWN) {
        keeper_down(k, msg);
        return TR_OK;
    }
    if (msg->type != MSG_GO) {
        tr_faa_relaxed(&bad, 1);
        return TR_OK;
    }
    memset(k, 0, sizeof(*k));
    if (!monitor_all(ctx, k->refs)) {
        return TR_OK;
    }
    for (int i = ANCHORS; i < ANCHORS + TARGETS; i++) {
        if (i % 2 == 0) {
            int rc = tr_demonitor(ctx, k->refs[i]);
            if (rc != TR_OK && rc != TR_ENOTFOUND) {
                tr_faa_relaxed(&bad, 1);
            }
            k->removed[i] = rc == TR_OK;
        }
        want += !k->removed[i];
    }
    tr_faa_relaxed(&expected, want);
    tr_faa_acqrel(&gos, 1);
    return TR_OK;
}

static const tr_behaviour keeper_behaviour = {
    .name = "keeper",
    .state_size = sizeof(keeper),
    .handle = keeper_handle,
};

static int
kid_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    /* Release: the test thread reads the address after the count. */
    tr_store_rel(&kids[*(const int *)arg], tr_self(ctx).id);
    tr_faa_acqrel(&inits, 1);
    return TR_OK;
}

static int
kid_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    /* A failure: restarted in place. */
    return go_monitors_all(ctx, msg) ? TR_EINVAL : TR_OK;
}

static const tr_behaviour kid_behaviour = {
    .name = "kid",
    .init = kid_init,
    .handle = kid_handle,
};

static const int kid_index[KIDS] = {0, 1, 2, 3, 4, 5, 6, 7};

#define KID(i)                                                                 \
    {                                                                          \
        .id = "k" #i, .behaviour = &kid_behaviour, .arg = &kid_index[i],       \
        .restart = TR_PERMANENT, .kind = TR_WORKER                             \
    }
static const tr_child_spec kid_specs[KIDS] = {KID(0), KID(1), KID(2), KID(3),
                                              KID(4), KID(5), KID(6), KID(7)};

typedef struct stopper {
    tr_ctx *ctx;
    long round;
} stopper;

/* Stop the round's targets, one by one, while the GOs go out. */
static void *
stopper_main(void *p)
{
    stopper *s = p;

    for (int i = 0; i < TARGETS; i++) {
        if (tr_actor_stop(s->ctx, targets[i]) != TR_OK) {
            tr_faa_relaxed(&bad, 1);
        }
        if (tr_test_mix((uint64_t)(s->round * TARGETS + i)) % 2 == 0) {
            sched_yield();
        }
    }
    return NULL;
}

typedef struct count_arg {
    tr_system *sys;
    tr_atomic(long) * counter;
    long want;
} count_arg;

static bool
count_is(void *p)
{
    count_arg *a = p;
    tr_system_stats st;

    if (a->counter != NULL) {
        return tr_load_acq(a->counter) == a->want;
    }
    return tr_system_stats_get(a->sys, &st) == TR_OK &&
           st.live_actors == (uint64_t)a->want;
}

static void
wait_count(tr_system *sys, tr_atomic(long) * counter, long want,
           const char *what, long round)
{
    count_arg a = {sys, counter, want};

    if (!tr_test_wait_until(count_is, &a, WAIT_MS)) {
        fail_msg("round %ld: %s never reached %ld (%ld bad)", round, what, want,
                 tr_load_relaxed(&bad));
    }
}

/* A wait: an actor is counted out of the live ones before its end takes
 * its monitors from their targets. */
static void
assert_counts(tr_system *sys, tr_addr who, uint32_t on, uint32_t held,
              long round)
{
    uint32_t n_on;
    uint32_t n_held;

    if (!tr_test_wait_monitor_counts(sys, who, on, held, WAIT_MS, &n_on,
                                     &n_held)) {
        fail_msg("round %ld: %#llx has %u monitors on it and holds %u, want "
                 "%u and %u",
                 round, (unsigned long long)who.id, n_on, n_held, on, held);
    }
}

static void
spawn(tr_ctx *ctx, const tr_behaviour *b, tr_addr *out)
{
    assert_int_equal(tr_spawn(ctx, b, NULL, NULL, out), TR_OK);
}

static void
run_round(tr_system *sys, tr_ctx *ctx, long round, long live)
{
    static const tr_behaviour target_behaviour = {
        .name = "target", .handle = ender_handle, /* never sent anything */
    };
    tr_addr enders[ENDERS];
    tr_addr keepers[KEEPERS];
    stopper s = {ctx, round};
    pthread_t helper;

    tr_store_relaxed(&gos, 0);
    tr_store_relaxed(&expected, 0);
    tr_store_relaxed(&downs, 0);
    long started = tr_load_acq(&inits);
    for (int i = 0; i < ANCHORS; i++) {
        spawn(ctx, &target_behaviour, &anchors[i]);
    }
    for (int i = 0; i < TARGETS; i++) {
        spawn(ctx, &target_behaviour, &targets[i]);
    }
    for (int i = 0; i < ENDERS; i++) {
        spawn(ctx, &ender_behaviour, &enders[i]);
    }
    for (int i = 0; i < KEEPERS; i++) {
        spawn(ctx, &keeper_behaviour, &keepers[i]);
    }

    assert_int_equal(pthread_create(&helper, NULL, stopper_main, &s), 0);
    for (int i = 0; i < ENDERS + KEEPERS + KIDS; i++) {
        tr_addr to =
            i < ENDERS ? enders[i]
            : i < ENDERS + KEEPERS
                ? keepers[i - ENDERS]
                : tr__addr(sys, tr_load_acq(&kids[i - ENDERS - KEEPERS]));
        assert_int_equal(tr_send(ctx, to, MSG_GO, NULL, 0), TR_OK);
    }
    assert_int_equal(pthread_join(helper, NULL), 0);

    wait_count(sys, &gos, ENDERS + KEEPERS + KIDS, "GOs", round);
    wait_count(sys, &inits, started + KIDS, "restarts", round);
    /* The enders and targets have ended, their signals sent. */
    wait_count(sys, NULL, live + ANCHORS + KEEPERS, "live actors", round);
    wait_count(sys, &downs, tr_load_relaxed(&expected), "DOWNs", round);
    for (int i = 0; i < ANCHORS; i++) {
        assert_counts(sys, anchors[i], KEEPERS, 0, round);
    }
    for (int i = 0; i < KEEPERS; i++) {
        assert_counts(sys, keepers[i], 0, ANCHORS, round);
    }
    for (int i = 0; i < KIDS; i++) {
        assert_counts(sys, tr__addr(sys, tr_load_acq(&kids[i])), 0, 0, round);
    }

    for (int i = 0; i < KEEPERS; i++) {
        assert_int_equal(tr_actor_stop(ctx, keepers[i]), TR_OK);
    }
    wait_count(sys, NULL, live + ANCHORS, "live actors", round);
    for (int i = 0; i < ANCHORS; i++) {
        assert_counts(sys, anchors[i], 0, 0, round);
        assert_int_equal(tr_actor_stop(ctx, anchors[i]), TR_OK);
    }
    wait_count(sys, NULL, live, "live actors", round);
    if (tr_load_relaxed(&bad) != 0) {
        fail_msg("round %ld: %ld unexpected signals or results", round,
                 tr_load_relaxed(&bad));
    }
}

static void
test_watchers_and_targets_end_together(void **state)
{
    tr_system *sys = tr_test_system(WORKERS);
    tr_ctx *ctx = tr_system_ctx(sys);
    const tr_sup_spec spec = {
        .name = "kids",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = TR_SUP_RESTARTS_MAX,
        .period_ms = 1,
        .children = kid_specs,
        .len = KIDS,
    };
    tr_addr sup = TR_ADDR_NONE;

    (void)state;
    assert_int_equal(tr_sup_start(ctx, &spec, NULL, &sup), TR_OK);
    wait_count(sys, &inits, KIDS, "kids", -1);
    for (long r = 0; r < rounds; r++) {
        run_round(sys, ctx, r, 1 + KIDS);
    }
    print_message("%ld rounds: %ld kid restarts\n", rounds,
                  tr_load_relaxed(&inits) - KIDS);
    tr_test_shutdown(sys);
}

int
main(int argc, char **argv)
{
    rounds = tr_test_arg(argc, argv, 1, rounds);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watchers_and_targets_end_together),
    };
    return cmocka_run_group_tests_name("monitor_stress", tests, NULL, NULL);
}
