/*
 * Supervision under fire. A tree with a sub-supervisor of each strategy
 * and a dynamic pool; threads crash, stop and ping random children by path,
 * another starts and terminates pool children, another takes snapshots,
 * another kills a brutal sub-tree (a supervisor over workers and a nested
 * supervisor) and starts it again. Then shutdown comes while an actor
 * keeps crashing children.
 *
 * Checked: an actor's incarnations never overlap (each `init` finds the
 * previous `stop` returned: restarts are serialised), every started
 * incarnation is stopped exactly once by the end, nothing gives up (the
 * intensities are high), a killed sub-tree has wholly ended by the time
 * its kill is answered, the tree is whole again once the traffic stops,
 * and shutdown during restarts finishes in time with nothing left.
 *
 * Usage: supervisor_stress [operations per thread]
 */
#include "support/tr_test.h"

#include <pthread.h>

static long ops = 20000;

enum { MSG_CRASH = 1, MSG_QUIT = 2, MSG_PING = 3 };
enum { SLOTS = 1 << 16, THREADS = 2, WORKERS = 4 };

static tr_atomic(uint8_t) alive[SLOTS]; /* by slot index */
static tr_atomic(long) overlaps;
static tr_atomic(long) started;
static tr_atomic(long) stopped;
static tr_atomic(long) errors; /* unexpected results on helper threads */

static int
w_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    uint32_t slot = (uint32_t)tr_self(ctx).id % SLOTS;
    if (tr_xchg_acqrel(&alive[slot], 1) != 0) {
        tr_faa_relaxed(&overlaps, 1);
    }
    tr_faa_relaxed(&started, 1);
    return TR_OK;
}

static int
w_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == MSG_CRASH) {
        return TR_EINVAL;
    }
    return msg->type == MSG_QUIT ? tr_stop(ctx) : TR_OK;
}

static void
w_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)state;
    (void)exit;
    uint32_t slot = (uint32_t)tr_self(ctx).id % SLOTS;
    if (tr_xchg_acqrel(&alive[slot], 0) != 1) {
        tr_faa_relaxed(&overlaps, 1);
    }
    tr_faa_relaxed(&stopped, 1);
}

static const tr_behaviour worker = {.name = "stress_worker",
                                    .init = w_init,
                                    .handle = w_handle,
                                    .stop = w_stop};

/* In the sub-tree that is killed: a kill skips `stop`, so these keep no
 * incarnation count. */
static const tr_behaviour doomed_worker = {.name = "doomed_worker",
                                           .handle = w_handle};

#define W(label, how)                                                          \
    {                                                                          \
        .id = label, .behaviour = &worker, .restart = how, .shutdown_ms = 1000 \
    }

static const tr_child_spec group_kids[WORKERS] = {
    W("w0", TR_PERMANENT), W("w1", TR_TRANSIENT), W("w2", TR_PERMANENT),
    W("w3", TR_TEMPORARY)};

#define GROUP(label, how)                                                      \
    {                                                                          \
        .name = label, .strategy = how, .max_restarts = 1000000,               \
        .period_ms = 1000, .children = group_kids, .len = WORKERS              \
    }

static const tr_sup_spec all = GROUP("all", TR_ONE_FOR_ALL);
static const tr_sup_spec rest = GROUP("rest", TR_REST_FOR_ONE);
static const tr_sup_spec one = GROUP("one", TR_ONE_FOR_ONE);
static const tr_child_spec pool_tmpl = W("pool", TR_TRANSIENT);
static const tr_sup_spec pool = {.name = "pool",
                                 .strategy = TR_SIMPLE_ONE_FOR_ONE,
                                 .max_restarts = 1000000,
                                 .period_ms = 1000,
                                 .children = &pool_tmpl,
                                 .len = 1};

#define SUB(label, sub)                                                        \
    {                                                                          \
        .id = label, .behaviour = &tr_supervisor_behaviour, .arg = &sub,       \
        .kind = TR_SUPERVISOR                                                  \
    }

#define D(label)                                                               \
    {                                                                          \
        .id = label, .behaviour = &doomed_worker, .restart = TR_PERMANENT      \
    }

static const tr_child_spec deep_kids[2] = {D("w0"), D("w1")};
static const tr_sup_spec deep = {.name = "deep",
                                 .strategy = TR_ONE_FOR_ALL,
                                 .max_restarts = 1000000,
                                 .period_ms = 1000,
                                 .children = deep_kids,
                                 .len = 2};
static const tr_child_spec doomed_kids[WORKERS] = {D("w0"), D("w1"), D("w2"),
                                                   SUB("w3", deep)};
static const tr_sup_spec doomed = {.name = "doomed",
                                   .strategy = TR_ONE_FOR_ONE,
                                   .max_restarts = 1000000,
                                   .period_ms = 1000,
                                   .children = doomed_kids,
                                   .len = WORKERS};

static const tr_child_spec top_kids[5] = {
    SUB("all", all),
    SUB("rest", rest),
    SUB("one", one),
    SUB("pool", pool),
    {.id = "doomed",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &doomed,
     .kind = TR_SUPERVISOR,
     .shutdown_ms = TR_SHUTDOWN_BRUTAL}};
static const tr_sup_spec top = {.name = "app",
                                .strategy = TR_ONE_FOR_ONE,
                                .max_restarts = 1000000,
                                .period_ms = 1000,
                                .children = top_kids,
                                .len = 5};

typedef struct shared {
    tr_system *sys;
    tr_atomic(bool) stop;
    tr_atomic(long) sent;
    tr_atomic(long) kills;
} shared;

/* Numbers the traffic threads, so that each picks its own children: not
 * from an address, which would differ between two runs of one seed in the
 * systematic build. */
static tr_atomic(unsigned) traffic_started;

static void *
traffic(void *arg)
{
    shared *sh = arg;
    static const char *groups[4] = {"all", "rest", "one", "doomed"};
    tr_ctx *ctx = tr_system_ctx(sh->sys);
    char path[64];
    /* Relaxed: only distinct values matter. */
    uint64_t me = tr_faa_relaxed(&traffic_started, 1) + 1;

    for (long i = 0; i < ops && !tr_load_acq(&sh->stop); i++) {
        uint64_t h =
            tr_test_mix((uint64_t)i * 131 + me * 0x9e3779b97f4a7c15ull);
        snprintf(path, sizeof(path), "/app/%s/w%u%s", groups[h % 4],
                 (unsigned)(h >> 8) % WORKERS,
                 h % 4 == 3 && (h >> 8) % WORKERS == 3 ? "/w0" : "");
        tr_addr to;
        if (tr_whereis_path(sh->sys, path, &to) != TR_OK) {
            continue; /* restarting, or a temporary one gone */
        }
        uint32_t type = (h >> 16) % 10 == 0   ? MSG_CRASH
                        : (h >> 16) % 10 == 1 ? MSG_QUIT
                                              : MSG_PING;
        if (tr_send(ctx, to, type, NULL, 0) == TR_OK) {
            tr_faa_relaxed(&sh->sent, 1);
        }
    }
    return NULL;
}

static void *
pool_admin(void *arg)
{
    shared *sh = arg;
    tr_ctx *ctx = tr_system_ctx(sh->sys);
    unsigned next = 1;

    for (long i = 0; i < ops / 20 && !tr_load_acq(&sh->stop); i++) {
        tr_addr sup, w;
        if (tr_whereis_path(sh->sys, "/app/pool", &sup) != TR_OK) {
            continue;
        }
        if (i % 3 == 2) {
            char id[16];
            snprintf(id, sizeof(id), "%u", next++);
            int rc = tr_sup_terminate_child_wait(ctx, sup, id, tr_ms(10000));
            if (rc != TR_OK && rc != TR_ENOTFOUND && rc != TR_ESHUTDOWN &&
                rc != TR_ENOACTOR && rc != TR_ECLOSED) {
                tr_faa_relaxed(&errors, 1);
            }
        } else if (tr_sup_start_child_wait(ctx, sup, NULL, NULL, tr_ms(10000),
                                           &w) == TR_OK &&
                   tr_send(ctx, w, i % 7 == 0 ? MSG_CRASH : MSG_PING, NULL,
                           0) == TR_OK) {
            tr_faa_relaxed(&sh->sent, 1);
        }
    }
    return NULL;
}

/* The doomed sub-tree's actors now (those running). */
static size_t
doomed_addrs(tr_system *sys, tr_addr *out)
{
    static const char *const paths[] = {
        "/app/doomed",       "/app/doomed/w0", "/app/doomed/w1",
        "/app/doomed/w2",    "/app/doomed/w3", "/app/doomed/w3/w0",
        "/app/doomed/w3/w1",
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (tr_whereis_path(sys, paths[i], &out[n]) == TR_OK) {
            n++;
        }
    }
    return n;
}

/* Kill the doomed sub-tree and start it again, over and over: by each
 * kill's answer, every actor it had has ended. */
static void *
killer(void *arg)
{
    shared *sh = arg;
    tr_ctx *ctx = tr_system_ctx(sh->sys);

    for (long i = 0; i < ops / 100 && !tr_load_acq(&sh->stop); i++) {
        tr_addr app, had[8];
        tr_actor_stats st;
        if (tr_whereis_path(sh->sys, "/app", &app) != TR_OK) {
            tr_faa_relaxed(&errors, 1);
            break;
        }
        size_t n = doomed_addrs(sh->sys, had);
        if (tr_sup_terminate_child_wait(ctx, app, "doomed", tr_ms(10000)) !=
            TR_OK) {
            tr_faa_relaxed(&errors, 1);
        }
        for (size_t j = 0; j < n; j++) {
            if (tr_actor_stats_get(sh->sys, had[j], &st) != TR_ENOACTOR) {
                tr_faa_relaxed(&errors, 1);
            }
        }
        tr_faa_relaxed(&sh->kills, 1);
        if (tr_sup_restart_child_wait(ctx, app, "doomed", tr_ms(10000), NULL) !=
            TR_OK) {
            tr_faa_relaxed(&errors, 1);
        }
    }
    return NULL;
}

static void *
watcher(void *arg)
{
    shared *sh = arg;
    static char buf[1 << 16];
    size_t len;

    while (!tr_load_acq(&sh->stop)) {
        int rc = tr_inspect_snapshot(sh->sys, TR_INSPECT_JSON, buf, sizeof(buf),
                                     &len);
        if (rc != TR_OK && rc != TR_ETRUNCATED) {
            tr_faa_relaxed(&errors, 1);
        }
    }
    return NULL;
}

static void
run_threads(shared *sh, pthread_t *th)
{
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, traffic, sh), 0);
    }
    assert_int_equal(pthread_create(&th[THREADS], NULL, pool_admin, sh), 0);
    assert_int_equal(pthread_create(&th[THREADS + 1], NULL, killer, sh), 0);
    assert_int_equal(pthread_create(&th[THREADS + 2], NULL, watcher, sh), 0);
    for (int i = 0; i <= THREADS + 1; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    tr_store_rel(&sh->stop, true);
    assert_int_equal(pthread_join(th[THREADS + 2], NULL), 0);
}

typedef struct whole_arg {
    tr_system *sys;
} whole_arg;

/* Every permanent group worker runs again (transient and temporary ones
 * may have ended for good). */
static bool
tree_whole(void *arg)
{
    static const char *const paths[] = {
        "/app/all/w0", "/app/all/w2", "/app/rest/w0",   "/app/rest/w2",
        "/app/one/w0", "/app/one/w2", "/app/doomed/w0", "/app/doomed/w3/w1",
    };
    tr_addr a;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (tr_whereis_path(((whole_arg *)arg)->sys, paths[i], &a) != TR_OK) {
            return false;
        }
    }
    return true;
}

/* During shutdown only actors may touch the system (a thread must be done
 * with it before shutdown frees it): an actor keeps crashing children. */
static tr_atomic(long) chaos_crashes;

static int
chaos(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    static const char *groups[3] = {"all", "rest", "one"};
    uint64_t *n = state;
    char path[64];
    tr_addr to;

    (void)msg;
    uint64_t h = tr_test_mix(++*n);
    snprintf(path, sizeof(path), "/app/%s/w%u", groups[h % 3],
             (unsigned)(h >> 8) % WORKERS);
    if (tr_whereis_path(tr_ctx_system(ctx), path, &to) == TR_OK &&
        tr_send(ctx, to, MSG_CRASH, NULL, 0) == TR_OK) {
        tr_faa_relaxed(&chaos_crashes, 1);
    }
    return tr_send(ctx, tr_self(ctx), 0, NULL, 0);
}

static const tr_behaviour chaos_behaviour = {
    .name = "chaos", .state_size = sizeof(uint64_t), .handle = chaos};

static bool
chaos_flows(void *arg)
{
    (void)arg;
    return tr_load_acq(&chaos_crashes) > 1000;
}

static void
test_supervisor_stress(void **state)
{
    (void)state;
    tr_system_stats final;
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    cfg.workers = 2;
    cfg.final_stats = &final;
    cfg.on_failure = NULL;
    tr_system *sys = tr_test_system_cfg(&cfg);
    shared sh = {.sys = sys};
    pthread_t th[THREADS + 3];

    assert_int_equal(tr_sup_start(tr_system_ctx(sys), &top, NULL, NULL), TR_OK);
    /* Phase 1: traffic, then quiet: the tree heals. */
    run_threads(&sh, th);
    whole_arg w = {sys};
    assert_true(tr_test_wait_until(tree_whole, &w, 10000));
    assert_int_equal(tr_system_wait(sys, tr_ms(1)),
                     TR_ETIMEDOUT); /* no give-up */

    /* Phase 2: shutdown while an actor keeps children crashing. */
    tr_addr ch;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &chaos_behaviour, NULL, NULL, &ch), TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), ch, 0, NULL, 0), TR_OK);
    assert_true(tr_test_wait_until(chaos_flows, NULL, 10000));
    assert_int_equal(tr_system_shutdown(sys, tr_ms(10000)), TR_OK);
    print_message("sent %ld, chaos crashes %ld, incarnations %ld, kills %ld\n",
                  tr_load_relaxed(&sh.sent), tr_load_relaxed(&chaos_crashes),
                  tr_load_relaxed(&started), tr_load_relaxed(&sh.kills));
    assert_int_equal(tr_load_relaxed(&overlaps), 0);
    assert_int_equal(tr_load_relaxed(&errors), 0);
    assert_int_equal(tr_load_relaxed(&started), tr_load_relaxed(&stopped));
    assert_true(tr_load_relaxed(&started) > 16);
    assert_true(tr_load_relaxed(&sh.kills) > 0);
    assert_int_equal(final.live_actors, 0);
}

int
main(int argc, char **argv)
{
    ops = tr_test_arg(argc, argv, 1, ops);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supervisor_stress),
    };
    return cmocka_run_group_tests_name("supervisor_stress", tests, NULL, NULL);
}
