/*
 * Simulation mode (troupe/sim.h): a system run from a seed on the calling
 * thread. Same seed, same steps, in this process and in another one;
 * different seeds explore different orders; time jumps to the next timer;
 * blocking calls take steps on the driving thread and are refused on any
 * other; a race in user code is found within 200 seeds and replays from
 * its seed and from its tape.
 *
 * Handlers run on the test thread here (it drives the system), but they
 * still only record: the assertions come after the steps.
 */
#include "support/tr_test.h"

#include <troupe.h>

#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

extern char **environ;

enum { PPM_ALL = 1000000 }; /* a fault chance of one */

enum {
    MSG_PING = 1,
    MSG_NOTE = 2,
    MSG_GET = 3,
    MSG_WITHDRAW = 4,
    MSG_GO = 5,
    MSG_HOLD = 6,
};

static tr_system *
sim_system(uint64_t seed, const char *trace)
{
    tr_sim_config sim = {.seed = seed, .trace_path = trace};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    return sys;
}

static uint64_t
fingerprint(tr_system *sys)
{
    tr_sim_stats st;

    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    return st.fingerprint;
}

/*
 * The directory this process writes its files in: one of its own, so that
 * runs of this test at the same time (two builds, a sweep of seeds) do not
 * read or remove each other's tapes.
 */
static const char *
test_dir(void)
{
    static char dir[64];

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/sim_test.XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    return dir;
}

/* Remove test_dir() and what is left in it (files only), if it was made. */
static void
remove_test_dir(void)
{
    const char *dir = test_dir();
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[64 + sizeof(e->d_name)];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(dir);
}

/* Remove the files tr_sim_check leaves for failing run `seed` of `name`
 * in test_dir(). */
static void
remove_failure_files(const char *name, uint64_t seed)
{
    static const char *const suffix[] = {".tape", ".min.tape", ".trace",
                                         ".trace2", ".json"};
    char path[128];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s-%016llx%s", test_dir(), name,
                 (unsigned long long)seed, suffix[i]);
        unlink(path);
    }
}

/* ---- a racy program: writers note their number at a log actor ---- */

typedef struct {
    uint32_t order[64];
    uint32_t n;
} log_state;

static int
log_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    log_state *s = state;
    (void)ctx;

    if (msg->type == MSG_NOTE && s->n < 64) {
        s->order[s->n++] = *(const uint32_t *)msg->data;
    }
    if (msg->type == MSG_GET) {
        return tr_reply(ctx, msg, s, sizeof(*s));
    }
    return TR_OK;
}

static const tr_behaviour log_b = {
    .name = "log",
    .state_size = sizeof(log_state),
    .handle = log_handle,
};

typedef struct {
    tr_addr log;
    uint32_t me;
} writer_state;

static int
writer_init(tr_ctx *ctx, void *state, const void *arg)
{
    writer_state *s = state;
    const writer_state *a = arg;
    (void)ctx;

    *s = *a;
    return TR_OK;
}

/* Writer `me`'s three notes, me * 10 + 0, 1, 2, to `log`. */
static int
send_notes(tr_ctx *ctx, tr_addr log, uint32_t me)
{
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t v = me * 10 + i;
        int rc = tr_send(ctx, log, MSG_NOTE, &v, sizeof(v));
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

static int
writer_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    writer_state *s = state;
    (void)msg;

    return send_notes(ctx, s->log, s->me);
}

static const tr_behaviour writer_b = {
    .name = "writer",
    .state_size = sizeof(writer_state),
    .init = writer_init,
    .handle = writer_handle,
};

/* A writer that sends its three notes from `init`, before any step. */
static int
eager_init(tr_ctx *ctx, void *state, const void *arg)
{
    const writer_state *a = arg;
    (void)state;

    return send_notes(ctx, a->log, a->me);
}

static const tr_behaviour eager_b = {
    .name = "eager",
    .init = eager_init,
    .handle = writer_handle,
};

/* Three writers queue their notes at the log before it runs: the arrival
 * order is fixed. The order the log handles them in goes to `out`. */
static void
run_queued(tr_system *sys, log_state *out)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_reply_buf reply = {.data = out, .cap = sizeof(*out)};
    tr_addr log;

    assert_int_equal(tr_spawn(ctx, &log_b, NULL, NULL, &log), TR_OK);
    for (uint32_t i = 0; i < 3; i++) {
        writer_state a = {.log = log, .me = i + 1};
        assert_int_equal(tr_spawn(ctx, &eager_b, &a, NULL, NULL), TR_OK);
    }
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(
        tr_ask_wait(ctx, log, MSG_GET, NULL, 0, &reply, TR_FOREVER), TR_OK);
    assert_int_equal(out->n, 9);
}

/* Each writer's notes in the order it sent them (R1). */
static void
assert_per_sender_order(const log_state *seen, uint32_t writers)
{
    for (uint32_t wr = 1; wr <= writers; wr++) {
        uint32_t next = wr * 10;
        for (uint32_t k = 0; k < seen->n; k++) {
            if (seen->order[k] / 10 == wr) {
                assert_int_equal(seen->order[k], next);
                next++;
            }
        }
    }
}

/* Without reordering a mailbox is handled in arrival order whatever the
 * seed; with it, other orders appear, each sender's kept. */
static void
test_sim_reorders_between_senders(void **state)
{
    const uint32_t arrival[9] = {10, 11, 12, 20, 21, 22, 30, 31, 32};
    unsigned reordered = 0;
    (void)state;

    for (uint64_t seed = 0; seed < 20; seed++) {
        log_state seen;
        tr_system *sys = sim_system(seed, NULL);
        run_queued(sys, &seen);
        assert_memory_equal(seen.order, arrival, sizeof(arrival));
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    for (uint64_t seed = 0; seed < 20; seed++) {
        tr_sim_config sim = {.seed = seed, .reorder_pct = 50};
        tr_system_config cfg = {.sim = &sim};
        tr_system *sys = NULL;
        log_state seen;
        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        run_queued(sys, &seen);
        assert_per_sender_order(&seen, 3);
        reordered += memcmp(seen.order, arrival, sizeof(arrival)) != 0;
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(reordered > 0);
}

/* Run the racy program on `sys`; the order the log saw goes to `out`. */
static void
run_racy(tr_system *sys, log_state *out)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr log;
    tr_addr w[4];
    tr_reply_buf reply = {.data = out, .cap = sizeof(*out)};

    assert_int_equal(tr_spawn(ctx, &log_b, NULL, NULL, &log), TR_OK);
    for (uint32_t i = 0; i < 4; i++) {
        writer_state a = {.log = log, .me = i + 1};
        assert_int_equal(tr_spawn(ctx, &writer_b, &a, NULL, &w[i]), TR_OK);
    }
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(tr_send(ctx, w[i], MSG_PING, NULL, 0), TR_OK);
    }
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(
        tr_ask_wait(ctx, log, MSG_GET, NULL, 0, &reply, TR_FOREVER), TR_OK);
    assert_int_equal(out->n, 12);
}

static void
test_sim_same_seed_same_run(void **state)
{
    uint64_t fp[2];
    log_state seen[2];
    (void)state;

    for (int i = 0; i < 2; i++) {
        tr_system *sys = sim_system(42, NULL);
        run_racy(sys, &seen[i]);
        fp[i] = fingerprint(sys);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(fp[0] == fp[1]);
    assert_memory_equal(&seen[0], &seen[1], sizeof(seen[0]));
}

/* Addresses depend on the seed only: the node word is drawn from it. */
static void
test_sim_addresses_follow_the_seed(void **state)
{
    tr_addr a[3];
    const uint64_t seeds[3] = {21, 21, 22};
    (void)state;

    for (int i = 0; i < 3; i++) {
        tr_system *sys = sim_system(seeds[i], NULL);
        tr_addr first;
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &log_b, NULL, NULL, &first), TR_OK);
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &log_b, NULL, NULL, &a[i]), TR_OK);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(a[0].node == a[1].node && a[0].id == a[1].id);
    assert_true(a[0].node != a[2].node);
    assert_true(a[0].id == a[2].id); /* the local id: spawn order only */
}

static void
test_sim_different_seeds_explore_orders(void **state)
{
    log_state first;
    uint64_t fp0 = 0;
    unsigned orders = 1;
    unsigned fps = 1;
    (void)state;

    for (uint64_t seed = 1; seed <= 20; seed++) {
        log_state seen;
        tr_system *sys = sim_system(seed, NULL);
        run_racy(sys, &seen);
        uint64_t fp = fingerprint(sys);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
        if (seed == 1) {
            first = seen;
            fp0 = fp;
            continue;
        }
        orders += memcmp(&first, &seen, sizeof(seen)) != 0;
        fps += fp != fp0;
        /* Each writer's own notes stay in order (R1). */
        for (uint32_t wr = 1; wr <= 4; wr++) {
            uint32_t next = wr * 10;
            for (uint32_t k = 0; k < seen.n; k++) {
                if (seen.order[k] / 10 == wr) {
                    assert_int_equal(seen.order[k], next);
                    next++;
                }
            }
        }
    }
    assert_true(orders > 1);
    assert_true(fps > 1);
}

/* ---- the determinism check across processes ---- */

/* The child: run the racy program with `seed`, trace to `path`. */
static int
child_main(const char *seed, const char *path)
{
    log_state seen;
    tr_system *sys = sim_system(strtoull(seed, NULL, 0), path);

    run_racy(sys, &seen);
    printf("%016llx\n", (unsigned long long)fingerprint(sys));
    return tr_system_shutdown(sys, TR_FOREVER) == TR_OK ? 0 : 1;
}

static void
run_child(const char *seed, const char *path)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *argv[] = {self, "--sim-child", (char *)seed, (char *)path, NULL};
    pid_t pid;
    int status = 0;

    assert_true(n > 0);
    self[n] = '\0';
    assert_int_equal(posix_spawn(&pid, self, NULL, NULL, argv, environ), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_sim_same_seed_same_trace_in_two_processes(void **state)
{
    char a[64];
    char b[64];
    char c[64];
    char line[256];
    uint64_t step = 99;
    (void)state;

    snprintf(a, sizeof(a), "%s/sim_test_%d_a.trace", test_dir(), (int)getpid());
    snprintf(b, sizeof(b), "%s/sim_test_%d_b.trace", test_dir(), (int)getpid());
    snprintf(c, sizeof(c), "%s/sim_test_%d_c.trace", test_dir(), (int)getpid());
    run_child("0x5eed", a);
    run_child("0x5eed", b);
    run_child("0x5eee", c);
    assert_int_equal(tr_sim_trace_diff(a, b, &step, line, sizeof(line)), TR_OK);
    assert_int_equal(step, 0);
    /* Another seed parts somewhere, and the step is named. */
    assert_int_equal(tr_sim_trace_diff(a, c, &step, line, sizeof(line)), TR_OK);
    assert_true(step > 0);
    assert_true(line[0] == '#');
    unlink(a);
    unlink(b);
    unlink(c);
}

/* ---- virtual time ---- */

typedef struct {
    uint32_t pings;
    uint64_t at_ms;
} clock_state;

static clock_state clock_seen;

static int
clock_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == MSG_PING) {
        clock_seen.pings++;
        clock_seen.at_ms = tr_now_ms(tr_ctx_system(ctx));
    }
    return TR_OK;
}

static const tr_behaviour clock_b = {
    .name = "clock",
    .handle = clock_handle,
};

static void
test_sim_hour_timer_fires_at_once(void **state)
{
    tr_system *sys = sim_system(7, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    tr_timer t;
    (void)state;

    memset(&clock_seen, 0, sizeof(clock_seen));
    assert_int_equal(tr_spawn(ctx, &clock_b, NULL, NULL, &a), TR_OK);
    assert_int_equal(
        tr_send_after(ctx, a, MSG_PING, NULL, 0, 3600u * 1000u, &t), TR_OK);
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* An hour of virtual time, in (far) less than a minute of wall time. */
    assert_true(t1.tv_sec - t0.tv_sec < 60);
    assert_int_equal(clock_seen.pings, 1);
    assert_int_equal(clock_seen.at_ms, 3600u * 1000u);
    assert_int_equal(tr_now_ms(sys), 3600u * 1000u);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* An interval timer keeps a system from ever being idle: run for a time. */
static void
test_sim_run_for_ticks_an_interval(void **state)
{
    tr_system *sys = sim_system(8, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    tr_timer t;
    (void)state;

    memset(&clock_seen, 0, sizeof(clock_seen));
    assert_int_equal(tr_spawn(ctx, &clock_b, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_send_interval(ctx, a, MSG_PING, NULL, 0, 100, &t),
                     TR_OK);
    assert_int_equal(tr_sim_run_for(sys, 1000), TR_OK);
    assert_int_equal(clock_seen.pings, 10);
    assert_int_equal(clock_seen.at_ms, 1000);
    assert_int_equal(tr_now_ms(sys), 1000);
    assert_int_equal(tr_sim_run_for(sys, 50), TR_OK);
    assert_int_equal(clock_seen.pings, 10);
    assert_int_equal(tr_now_ms(sys), 1050);
    assert_int_equal(tr_timer_cancel(sys, t), TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

static void
test_sim_timer_late_never_early(void **state)
{
    tr_sim_config sim = {.seed = 3, .timer_late_max_ms = 50};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;
    tr_addr a;
    tr_timer t;
    (void)state;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    memset(&clock_seen, 0, sizeof(clock_seen));
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &clock_b, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(
        tr_send_after(tr_system_ctx(sys), a, MSG_PING, NULL, 0, 1000, &t),
        TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(clock_seen.pings, 1);
    assert_true(clock_seen.at_ms >= 1000 && clock_seen.at_ms <= 1050);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* ---- blocking calls ---- */

/* Keeps every request unanswered (its reply handle held). */
typedef struct {
    tr_reply_to *held[4];
    unsigned n;
} holder_state;

static int
holder_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    holder_state *s = state;

    if (msg->type == MSG_HOLD && s->n < 4) {
        s->held[s->n++] = tr_reply_take(ctx, msg);
    }
    return TR_OK;
}

static void
holder_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    holder_state *s = state;
    (void)ctx;
    (void)exit;

    for (unsigned i = 0; i < s->n; i++) {
        if (s->held[i] != NULL) {
            tr_reply_drop(s->held[i]);
        }
    }
}

static const tr_behaviour holder_b = {
    .name = "holder",
    .state_size = sizeof(holder_state),
    .handle = holder_handle,
    .stop = holder_stop,
};

static void
test_sim_blocking_calls_take_steps(void **state)
{
    tr_system *sys = sim_system(11, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    log_state got;
    tr_reply_buf reply = {.data = &got, .cap = sizeof(got)};
    tr_addr log;
    tr_addr h;
    (void)state;

    assert_int_equal(tr_spawn(ctx, &log_b, NULL, NULL, &log), TR_OK);
    assert_int_equal(tr_spawn(ctx, &holder_b, NULL, NULL, &h), TR_OK);
    /* Answered: the wait ran the callee. */
    assert_int_equal(
        tr_ask_wait(ctx, log, MSG_GET, NULL, 0, &reply, tr_ms(100)), TR_OK);
    /* Never answered: the timeout passes on the virtual clock. */
    uint64_t t0 = tr_now_ms(sys);
    assert_int_equal(
        tr_ask_wait(ctx, h, MSG_HOLD, NULL, 0, &reply, tr_ms(5000)),
        TR_ETIMEDOUT);
    assert_int_equal(tr_now_ms(sys) - t0, 5000);
    /* Never answered and no deadline: nothing can ever end it. */
    assert_int_equal(tr_ask_wait(ctx, h, MSG_HOLD, NULL, 0, &reply, TR_FOREVER),
                     TR_ESTUCK);
    /* Waiting for an actor that never ends, with a deadline. */
    assert_int_equal(tr_actor_wait(ctx, h, tr_ms(250), NULL), TR_ETIMEDOUT);
    assert_int_equal(tr_actor_wait(ctx, h, TR_FOREVER, NULL), TR_ESTUCK);
    assert_int_equal(tr_system_wait(sys, tr_ms(10)), TR_ETIMEDOUT);
    /* Its stop runs in the shutdown's steps. */
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

static struct {
    tr_system *sys;
    tr_addr to;
    int rc[9];
    bool fault;
} other;

static void *
other_thread(void *arg)
{
    tr_ctx *ctx = tr_system_ctx(other.sys);
    tr_reply_buf reply = {0};
    (void)arg;

    other.rc[0] =
        tr_ask_wait(ctx, other.to, MSG_GET, NULL, 0, &reply, tr_ms(10));
    other.rc[1] = tr_actor_wait(ctx, other.to, tr_ms(10), NULL);
    other.rc[2] = tr_system_wait(other.sys, tr_ms(10));
    other.rc[3] = tr_sim_step(other.sys);
    other.rc[4] = tr_system_shutdown(other.sys, TR_FOREVER);
    tr_sim_stats st;
    other.rc[5] = tr_sim_stats_get(other.sys, &st);
    other.rc[6] = tr_sim_quiesce(other.sys);
    other.rc[7] = tr_sim_crash_at(other.sys, other.to, 1);
    other.rc[8] = tr_sim_run_until_idle(other.sys);
    other.fault = tr_sim_fault(ctx, "anything");
    return NULL;
}

static void
test_sim_other_threads_are_refused(void **state)
{
    pthread_t t;
    (void)state;

    other.sys = sim_system(5, NULL);
    assert_int_equal(
        tr_spawn(tr_system_ctx(other.sys), &log_b, NULL, NULL, &other.to),
        TR_OK);
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(other.rc[i], TR_ESTATE);
    }
    assert_false(other.fault);
    assert_int_equal(tr_system_shutdown(other.sys, TR_FOREVER), TR_OK);
}

/* The driving thread in an actor's callbacks (an `init` its own spawn
 * runs, or a handler a step runs) holds a run-right: stepping from there
 * would run actors inside a run. */
static int nested_rc[8];

static void
try_nested_steps(tr_ctx *ctx, int *rc)
{
    tr_system *sys = tr_ctx_system(ctx);
    char why[64];

    rc[0] = tr_sim_step(sys);
    rc[1] = tr_sim_run_until_idle(sys);
    rc[2] = tr_sim_run_for(sys, 10);
    rc[3] = tr_sim_liveness_check(sys, why, sizeof(why));
}

static int
nested_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    try_nested_steps(ctx, &nested_rc[0]);
    return TR_OK;
}

static int
nested_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    try_nested_steps(ctx, &nested_rc[4]);
    return TR_OK;
}

static void
test_sim_callbacks_cannot_take_steps(void **state)
{
    static const tr_behaviour nested = {
        .name = "nested", .init = nested_init, .handle = nested_handle};
    tr_system *sys = sim_system(11, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    (void)state;

    memset(nested_rc, 0, sizeof(nested_rc));
    assert_int_equal(tr_spawn(ctx, &nested, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_GET, NULL, 0), TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(nested_rc[i], TR_ESTATE);
    }
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

static void
test_sim_misuse(void **state)
{
    tr_system *real = tr_test_system(1);
    tr_sim_stats st;
    uint64_t step;
    (void)state;

    assert_int_equal(tr_sim_step(NULL), TR_EINVAL);
    assert_int_equal(tr_sim_step(real), TR_ESTATE);
    assert_int_equal(tr_sim_run_until_idle(real), TR_ESTATE);
    assert_int_equal(tr_sim_stats_get(real, &st), TR_ESTATE);
    assert_int_equal(tr_sim_tape_save(real, "/tmp/x"), TR_ESTATE);
    assert_int_equal(
        tr_sim_trace_diff("/nonexistent/a", "/nonexistent/b", &step, NULL, 0),
        TR_ENOTFOUND);
    /* Directories open, but cannot be read: not two empty traces. */
    assert_int_equal(tr_sim_trace_diff("/tmp", "/", &step, NULL, 0),
                     TR_ENOTFOUND);
    assert_int_equal(tr_sim_check(NULL, NULL, NULL, NULL), TR_EINVAL);
    tr_test_shutdown(real);
}

/* ---- a user bug: a transfer done as two calls ---- */

typedef struct {
    int64_t balance;
} bank_state;

static int
bank_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    bank_state *s = state;

    if (msg->type == MSG_GET) {
        return tr_reply(ctx, msg, &s->balance, sizeof(s->balance));
    }
    if (msg->type == MSG_WITHDRAW) {
        s->balance -= *(const int64_t *)msg->data;
    }
    return TR_OK;
}

static int
bank_init(tr_ctx *ctx, void *state, const void *arg)
{
    bank_state *s = state;
    (void)ctx;

    s->balance = *(const int64_t *)arg;
    return TR_OK;
}

static const tr_behaviour bank_b = {
    .name = "bank",
    .state_size = sizeof(bank_state),
    .init = bank_init,
    .handle = bank_handle,
};

typedef struct {
    tr_addr bank;
    int64_t amount;
} client_state;

/* The bug: the balance is checked in one call and withdrawn in another,
 * so two clients can both pass the check. */
static int
client_checked(tr_ctx *ctx, void *state, const tr_call_result *r, void *arg)
{
    client_state *s = state;
    (void)arg;

    if (r->status == TR_OK && *(const int64_t *)r->reply->data >= s->amount) {
        return tr_send(ctx, s->bank, MSG_WITHDRAW, &s->amount,
                       sizeof(s->amount));
    }
    return TR_OK;
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *s = state;
    (void)msg;

    return tr_call(ctx, s->bank, MSG_GET, NULL, 0, TR_FOREVER, client_checked,
                   NULL);
}

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    *(client_state *)state = *(const client_state *)arg;
    return TR_OK;
}

static const tr_behaviour client_b = {
    .name = "client",
    .state_size = sizeof(client_state),
    .init = client_init,
    .handle = client_handle,
};

/* The scenario: 100 in the bank, two clients take 60 each; it fails when
 * the balance goes negative. */
static int
bank_body(tr_system *sys, void *arg)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    int64_t start = 100;
    int64_t balance = 0;
    tr_reply_buf reply = {.data = &balance, .cap = sizeof(balance)};
    tr_addr bank;
    tr_addr c[2];
    (void)arg;

    if (tr_spawn(ctx, &bank_b, &start, NULL, &bank) != TR_OK) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        client_state a = {.bank = bank, .amount = 60};
        if (tr_spawn(ctx, &client_b, &a, NULL, &c[i]) != TR_OK ||
            tr_send(ctx, c[i], MSG_GO, NULL, 0) != TR_OK) {
            return -1;
        }
    }
    if (tr_sim_run_until_idle(sys) != TR_OK ||
        tr_ask_wait(ctx, bank, MSG_GET, NULL, 0, &reply, TR_FOREVER) != TR_OK) {
        return -1;
    }
    return balance < 0 ? 1 : 0;
}

/* A body that always passes. */
static int
bank_body_passes(tr_system *sys, void *arg)
{
    (void)sys;
    (void)arg;
    return 0;
}

static void
test_sim_finds_and_replays_a_race(void **state)
{
    tr_sim_check_opts o = {
        .name = "bank", .seeds = 200, .tape_dir = test_dir()};
    uint64_t bad = UINT64_MAX;
    uint64_t again = UINT64_MAX;
    char tape[128];
    (void)state;

    /* Found within 200 seeds, its seed printed with a rerun line. */
    assert_int_equal(tr_sim_check(&o, bank_body, NULL, &bad), TR_EFAILED);
    assert_true(bad < 200);
    /* Its seed fails again... */
    o.first_seed = bad;
    o.seeds = 1;
    o.quiet = true;
    assert_int_equal(tr_sim_check(&o, bank_body, NULL, &again), TR_EFAILED);
    assert_true(again == bad);
    /* ...and so does its tape, under any seed. */
    snprintf(tape, sizeof(tape), "%s/bank-%016llx.tape", test_dir(),
             (unsigned long long)bad);
    o.sim.tape_path = tape;
    o.first_seed = bad + 1000;
    o.no_shrink = true;
    assert_int_equal(tr_sim_check(&o, bank_body, NULL, &again), TR_EFAILED);
    snprintf(tape, sizeof(tape), "%s/bank-%016llx.min.tape", test_dir(),
             (unsigned long long)bad);
    assert_int_equal(access(tape, R_OK), 0); /* shrunk by the first check */
    remove_failure_files("bank", bad);
    remove_failure_files("bank", bad + 1000);
}

/* Fails when writer 4's first note is the log's first: never in the
 * oldest-first order, so a failing tape cannot shrink to nothing. */
static int
writer4_first_body(tr_system *sys, void *arg)
{
    log_state seen;
    (void)arg;

    run_racy(sys, &seen);
    return seen.order[0] == 40 ? 7 : 0;
}

static void
test_sim_shrinks_a_failing_tape(void **state)
{
    tr_sim_check_opts o = {
        .name = "writer4", .seeds = 200, .tape_dir = test_dir(), .quiet = true};
    tr_sim_shrink_stats st;
    uint64_t bad = UINT64_MAX;
    char tape[128];
    char min[128];
    (void)state;

    assert_int_equal(tr_sim_check(&o, writer4_first_body, NULL, &bad),
                     TR_EFAILED);
    snprintf(tape, sizeof(tape), "%s/writer4-%016llx.tape", test_dir(),
             (unsigned long long)bad);
    snprintf(min, sizeof(min), "%s/sim_test_%d.min.tape", test_dir(),
             (int)getpid());
    assert_int_equal(
        tr_sim_shrink(&o, writer4_first_body, NULL, tape, min, &st), TR_OK);
    assert_true(st.choices_after <= st.choices_before);
    assert_true(st.weight_after < st.weight_before ||
                st.choices_after < st.choices_before);
    assert_true(st.choices_after > 0); /* all zeros passes */
    assert_true(st.runs > 0);
    printf("shrunk %llu -> %llu choices, weight %llu -> %llu, %u runs\n",
           (unsigned long long)st.choices_before,
           (unsigned long long)st.choices_after,
           (unsigned long long)st.weight_before,
           (unsigned long long)st.weight_after, st.runs);
    /* The shrunk tape fails the same way. */
    o.sim.tape_path = min;
    o.seeds = 1;
    o.no_shrink = true;
    o.name = "writer4_min";
    assert_int_equal(tr_sim_check(&o, writer4_first_body, NULL, NULL),
                     TR_EFAILED);
    /* A tape that passes is refused. */
    assert_int_equal(tr_sim_shrink(&o, bank_body_passes, NULL, min, min, &st),
                     TR_EINVAL);
    unlink(min);
    remove_failure_files("writer4", bad);
    remove_failure_files("writer4_min", 0);
}

/* A race, not a bug every order shows: some seeds pass, some fail. */
static void
test_sim_race_depends_on_the_seed(void **state)
{
    tr_sim_check_opts o = {
        .seeds = 1, .tape_dir = test_dir(), .quiet = true, .no_shrink = true};
    unsigned fails = 0;
    (void)state;

    for (uint64_t seed = 0; seed < 40; seed++) {
        uint64_t bad;
        o.name = "bank_race";
        o.first_seed = seed;
        if (tr_sim_check(&o, bank_body, NULL, &bad) == TR_EFAILED) {
            fails++;
            remove_failure_files("bank_race", seed);
        }
    }
    assert_true(fails > 0 && fails < 40);
}

/* ---- supervision under simulation ---- */

enum { MSG_FAIL = 7 };

static int
flaky_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->type == MSG_FAIL ? TR_EIO : TR_OK;
}

static const tr_behaviour flaky_b = {
    .name = "flaky",
    .handle = flaky_handle,
};

/* A supervisor restarts a failed child, answers its run-time calls and
 * stops its children at shutdown, all in steps; the same seed twice gives
 * the same fingerprint. */
static uint64_t
supervise_once(uint64_t seed)
{
    static const tr_child_spec kids[] = {
        {.id = "a", .behaviour = &flaky_b, .shutdown_ms = 500},
        {.id = "b", .behaviour = &flaky_b, .shutdown_ms = 500},
    };
    const tr_sup_spec spec = {
        .name = "top",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = 3,
        .period_ms = 1000,
        .children = kids,
        .len = 2,
    };
    tr_system *sys = sim_system(seed, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_child_counts counts;
    tr_addr sup;
    tr_child_info a;
    tr_child_info a2;
    uint64_t fp;

    assert_int_equal(tr_sup_start(ctx, &spec, NULL, &sup), TR_OK);
    assert_int_equal(tr_sup_find_child_wait(ctx, sup, "a", tr_ms(100), &a),
                     TR_OK);
    assert_int_equal(tr_send(ctx, a.addr, MSG_FAIL, NULL, 0), TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    /* Restarted in place: the same address, running again. */
    assert_int_equal(tr_sup_find_child_wait(ctx, sup, "a", tr_ms(100), &a2),
                     TR_OK);
    assert_true(tr_addr_eq(a.addr, a2.addr));
    assert_int_equal(a2.restarts, 1);
    assert_int_equal(tr_sup_count_children_wait(ctx, sup, &counts, tr_ms(100)),
                     TR_OK);
    assert_int_equal(counts.active, 2);
    assert_int_equal(tr_sup_terminate_child_wait(ctx, sup, "b", tr_ms(100)),
                     TR_OK);
    assert_int_equal(tr_sup_count_children_wait(ctx, sup, &counts, tr_ms(100)),
                     TR_OK);
    assert_int_equal(counts.active, 1);
    fp = fingerprint(sys);
    assert_int_equal(tr_system_shutdown(sys, tr_ms(10000)), TR_OK);
    return fp;
}

static void
test_sim_supervision_runs_in_steps(void **state)
{
    (void)state;
    assert_true(supervise_once(17) == supervise_once(17));
}

/* ---- faults ---- */

static struct {
    uint32_t handled;
    uint32_t stops;
    uint32_t enomem;
    uint32_t sent;
    uint32_t fired;
} faults_seen;

static int
counter_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    faults_seen.handled++;
    if (msg->type == MSG_NOTE && tr_sim_fault(ctx, "drop the note")) {
        faults_seen.fired++;
    }
    return TR_OK;
}

static void
counter_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    faults_seen.stops++;
}

static const tr_behaviour counter_b = {
    .name = "counter",
    .handle = counter_handle,
    .stop = counter_stop,
};

static tr_system *
faulty_system(uint64_t seed, const tr_sim_faults *f)
{
    tr_sim_config sim = {.seed = seed, .faults = *f};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    memset(&faults_seen, 0, sizeof(faults_seen));
    return sys;
}

/* The k-th message's handler fails: the actor ends TR_EXIT_FAILED after
 * exactly k messages, its `stop` run. */
static void
test_sim_crash_at_kth_message(void **state)
{
    const tr_sim_faults none = {0};
    tr_system *sys = faulty_system(1, &none);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_signal sig;
    tr_sim_stats st;
    tr_addr a;
    (void)state;

    assert_int_equal(tr_spawn(ctx, &counter_b, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_sim_crash_at(sys, a, 3), TR_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tr_send(ctx, a, MSG_PING, NULL, 0), TR_OK);
    }
    assert_int_equal(tr_actor_wait(ctx, a, TR_FOREVER, &sig), TR_OK);
    assert_int_equal(sig.kind, TR_EXIT_FAILED);
    assert_int_equal(sig.code, TR_EFAILED);
    assert_int_equal(faults_seen.handled, 3);
    assert_int_equal(faults_seen.stops, 1);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(st.crashes, 1);
    assert_int_equal(tr_sim_crash_at(sys, a, 0), TR_EINVAL);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* Crashes drawn from the seed fail a supervised child again and again; its
 * supervisor restarts it, and once faults stop the system settles. */
static void
test_sim_crash_faults_restart_children(void **state)
{
    static const tr_child_spec kid = {.id = "c", .behaviour = &counter_b};
    const tr_sup_spec spec = {
        .name = "crashy",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = 1000,
        .period_ms = 1000,
        .children = &kid,
        .len = 1,
    };
    const tr_sim_faults f = {.crash_ppm = 300000};
    tr_system *sys = faulty_system(2, &f);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_child_info info;
    tr_sim_stats st;
    char why[128];
    tr_addr sup;
    (void)state;

    assert_int_equal(tr_sup_start(ctx, &spec, NULL, &sup), TR_OK);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(
            tr_sup_find_child_wait(ctx, sup, "c", tr_ms(100), &info), TR_OK);
        assert_int_equal(tr_send(ctx, info.addr, MSG_PING, NULL, 0), TR_OK);
        assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    }
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_true(st.crashes > 0);
    assert_int_equal(tr_sup_find_child_wait(ctx, sup, "c", tr_ms(100), &info),
                     TR_OK);
    assert_int_equal(info.restarts, st.crashes);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_true(st.quiesced);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* A kill ends the actor without its `stop`. */
static void
test_sim_kill_fault_skips_stop(void **state)
{
    const tr_sim_faults f = {.kill_ppm = PPM_ALL};
    tr_system *sys = faulty_system(3, &f);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_signal sig;
    tr_sim_stats st;
    tr_addr a;
    (void)state;

    assert_int_equal(tr_spawn(ctx, &counter_b, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_PING, NULL, 0), TR_OK);
    assert_int_equal(tr_actor_wait(ctx, a, TR_FOREVER, &sig), TR_OK);
    assert_int_equal(sig.kind, TR_EXIT_KILLED);
    assert_int_equal(faults_seen.handled, 0);
    assert_int_equal(faults_seen.stops, 0);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(st.kills, 1);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* An actor that sends on: out of memory, its sends fail cleanly. */
static int
spray_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_addr *to = state;

    if (msg->type == MSG_GO) {
        for (int i = 0; i < 16; i++) {
            int rc = tr_send(ctx, *to, MSG_PING, &i, sizeof(i));
            faults_seen.sent += rc == TR_OK;
            faults_seen.enomem += rc == TR_ENOMEM;
        }
    }
    return TR_OK;
}

static int
spray_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    *(tr_addr *)state = *(const tr_addr *)arg;
    return TR_OK;
}

static const tr_behaviour spray_b = {
    .name = "spray",
    .state_size = sizeof(tr_addr),
    .init = spray_init,
    .handle = spray_handle,
};

static void
test_sim_alloc_faults_fail_sends(void **state)
{
    const tr_sim_faults f = {.alloc_fail_ppm = PPM_ALL};
    tr_system *sys = faulty_system(4, &f);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_sim_stats st;
    tr_addr sink;
    tr_addr spray;
    (void)state;

    assert_int_equal(tr_spawn(ctx, &counter_b, NULL, NULL, &sink), TR_OK);
    assert_int_equal(tr_spawn(ctx, &spray_b, &sink, NULL, &spray), TR_OK);
    assert_int_equal(tr_send(ctx, spray, MSG_GO, NULL, 0), TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_true(st.ooms > 0);
    assert_true(faults_seen.enomem > 0);
    assert_int_equal(faults_seen.sent + faults_seen.enomem, 16);
    /* What was sent arrived. */
    assert_int_equal(faults_seen.handled, faults_seen.sent);
    assert_int_equal(tr_sim_quiesce(sys), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* A program's own fault point: activated for some runs only, firing now
 * and then in those; never outside simulation or once quiesced. */
static void
test_sim_fault_points(void **state)
{
    const tr_sim_faults f = {.point_pct = 50};
    unsigned active_runs = 0;
    tr_system *real = tr_test_system(1);
    (void)state;

    assert_false(tr_sim_fault(tr_system_ctx(real), "drop the note"));
    tr_test_shutdown(real);
    for (uint64_t seed = 0; seed < 24; seed++) {
        tr_system *sys = faulty_system(seed, &f);
        tr_ctx *ctx = tr_system_ctx(sys);
        tr_addr a;
        assert_int_equal(tr_spawn(ctx, &counter_b, NULL, NULL, &a), TR_OK);
        for (int i = 0; i < 20; i++) {
            assert_int_equal(tr_send(ctx, a, MSG_NOTE, NULL, 0), TR_OK);
        }
        assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
        assert_true(faults_seen.fired < 20);
        active_runs += faults_seen.fired != 0;
        assert_int_equal(tr_sim_quiesce(sys), TR_OK);
        assert_false(tr_sim_fault(ctx, "drop the note"));
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(active_runs > 0 && active_runs < 24);
}

/* An actor that keeps itself busy for ever: the liveness check finds no
 * idle state within the step budget. */
static int
spin_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    return tr_send(ctx, tr_self(ctx), MSG_PING, NULL, 0);
}

static const tr_behaviour spin_b = {
    .name = "spin",
    .handle = spin_handle,
};

static void
test_sim_liveness_finds_a_livelock(void **state)
{
    tr_sim_config sim = {.seed = 9, .max_steps = 2000};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;
    char why[128];
    tr_addr a;
    (void)state;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &spin_b, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), a, MSG_PING, NULL, 0), TR_OK);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)),
                     TR_ETIMEDOUT);
    assert_non_null(strstr(why, "not idle"));
    /* The budget is spent: shutdown stops what is left on its last pass. */
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_ETIMEDOUT);
}

/* ---- liveness: a call nobody will ever answer ---- */

enum { MSG_HOARD = 60, MSG_ANSWER = 61, MSG_CALL_IT = 62 };

/* Takes the reply handle of every request and keeps the last one until
 * told to answer it. */
static int
hoarder_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_reply_to **held = state;

    if (msg->type == MSG_HOARD) {
        tr_reply_drop(*held); /* an earlier one, if any (NULL: nothing) */
        *held = tr_reply_take(ctx, msg);
        return *held != NULL ? TR_OK : TR_ENOMEM;
    }
    if (*held == NULL) {
        return TR_OK;
    }
    int rc = tr_reply_send(*held, NULL, 0);
    *held = NULL;
    return rc;
}

/* What it still holds is its to drop (the call itself ended at the
 * timeout, or ends at shutdown). */
static void
hoarder_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)exit;
    tr_reply_drop(*(tr_reply_to **)state);
}

static const tr_behaviour hoarder_b = {
    .name = "hoarder",
    .state_size = sizeof(tr_reply_to *),
    .handle = hoarder_handle,
    .stop = hoarder_stop,
};

static int answered;

static int
caller_on_reply(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    (void)ctx;
    (void)state;
    (void)arg;
    answered = res->status == TR_OK ? 1 : -1;
    return TR_OK;
}

/* Calls the address it is sent, with the timeout it is told (ms; -1:
 * none). */
typedef struct {
    tr_addr to;
    int64_t timeout_ms;
} call_it;

static int
caller_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    call_it c;

    (void)state;
    memcpy(&c, msg->data, sizeof(c));
    return tr_call(ctx, c.to, MSG_HOARD, NULL, 0, tr_ms(c.timeout_ms),
                   caller_on_reply, NULL);
}

static const tr_behaviour caller_b = {.name = "caller",
                                      .handle = caller_handle};

static void
test_sim_liveness_finds_a_call_that_never_ends(void **state)
{
    tr_sim_config sim = {.seed = 4};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;
    char why[128];
    call_it c = {.timeout_ms = -1};
    tr_addr caller;
    (void)state;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    tr_ctx *ctx = tr_system_ctx(sys);
    assert_int_equal(tr_spawn(ctx, &hoarder_b, NULL, NULL, &c.to), TR_OK);
    assert_int_equal(tr_spawn(ctx, &caller_b, NULL, NULL, &caller), TR_OK);
    answered = 0;

    /* A call without a timeout whose handle is held: idle, and stuck. */
    assert_int_equal(tr_send(ctx, caller, MSG_CALL_IT, &c, sizeof(c)), TR_OK);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)), TR_ESTUCK);
    assert_non_null(strstr(why, "1 calls will never end"));
    assert_int_equal(answered, 0);

    /* Answered: nothing is open any more. */
    assert_int_equal(tr_send(ctx, c.to, MSG_ANSWER, NULL, 0), TR_OK);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)), TR_OK);
    assert_int_equal(answered, 1);

    /* With a timeout the held call ends by itself (its timer), and so does
     * a call from the driving thread. */
    c.timeout_ms = 50;
    assert_int_equal(tr_send(ctx, caller, MSG_CALL_IT, &c, sizeof(c)), TR_OK);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)), TR_OK);
    assert_int_equal(answered, -1);
    tr_reply_buf rb = {.data = NULL};
    assert_int_equal(tr_ask_wait(ctx, c.to, MSG_HOARD, NULL, 0, &rb, tr_ms(20)),
                     TR_ETIMEDOUT);
    assert_int_equal(tr_sim_liveness_check(sys, why, sizeof(why)), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

/* PCT finds the writer-4-first order, replays it from its seed and from
 * its tape (which needs no PCT), and one seed gives one run. */
static void
test_sim_pct_finds_an_ordering_bug(void **state)
{
    tr_sim_check_opts o = {.name = "pct",
                           .seeds = 200,
                           .tape_dir = test_dir(),
                           .quiet = true,
                           .no_shrink = true};
    uint64_t bad = UINT64_MAX;
    uint64_t fp[2];
    char tape[128];
    (void)state;

    o.sim.strategy = TR_SIM_PCT;
    o.sim.pct_depth = 2;
    o.sim.pct_steps = 40;
    assert_int_equal(tr_sim_check(&o, writer4_first_body, NULL, &bad),
                     TR_EFAILED);
    /* Again from its seed. */
    o.first_seed = bad;
    o.seeds = 1;
    assert_int_equal(tr_sim_check(&o, writer4_first_body, NULL, NULL),
                     TR_EFAILED);
    /* From its tape, with the default strategy. */
    snprintf(tape, sizeof(tape), "%s/pct-%016llx.tape", test_dir(),
             (unsigned long long)bad);
    o.sim.strategy = TR_SIM_RANDOM;
    o.sim.tape_path = tape;
    o.name = "pct_replay";
    assert_int_equal(tr_sim_check(&o, writer4_first_body, NULL, NULL),
                     TR_EFAILED);
    remove_failure_files("pct", bad);
    remove_failure_files("pct_replay", bad);
    /* Deterministic. */
    for (int i = 0; i < 2; i++) {
        tr_sim_config sim = {
            .seed = 77, .strategy = TR_SIM_PCT, .pct_steps = 50};
        tr_system_config cfg = {.sim = &sim};
        tr_system *sys = NULL;
        log_state seen;
        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        run_racy(sys, &seen);
        fp[i] = fingerprint(sys);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(fp[0] == fp[1]);
}

/* Swarm: the seed draws the fault mix, so seeds differ in which faults
 * they see at all. */
static void
test_sim_swarm_draws_the_fault_mix(void **state)
{
    static const tr_child_spec kid = {.id = "c", .behaviour = &counter_b};
    const tr_sup_spec spec = {
        .name = "swarm",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = 100000,
        .period_ms = 1000,
        .children = &kid,
        .len = 1,
    };
    unsigned with_crashes = 0;
    unsigned with_kills = 0;
    unsigned runs = 24;
    (void)state;

    for (uint64_t seed = 0; seed < runs; seed++) {
        tr_sim_config sim = {.seed = seed, .swarm = true};
        tr_system_config cfg = {.sim = &sim};
        tr_system *sys = NULL;
        tr_ctx *ctx;
        tr_addr sup;
        tr_child_info info;
        tr_sim_stats st;

        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        ctx = tr_system_ctx(sys);
        assert_int_equal(tr_sup_start(ctx, &spec, NULL, &sup), TR_OK);
        for (int i = 0; i < 200; i++) {
            if (tr_sup_find_child_wait(ctx, sup, "c", tr_ms(100), &info) ==
                    TR_OK &&
                !tr_addr_is_none(info.addr)) {
                (void)!tr_send(ctx, info.addr, MSG_PING, NULL, 0);
            }
            if (tr_sim_run_until_idle(sys) != TR_OK) {
                break;
            }
        }
        assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
        with_crashes += st.crashes != 0;
        with_kills += st.kills != 0;
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(with_crashes > 0 && with_crashes < runs);
    assert_true(with_kills > 0 && with_kills < runs);
}

/* Swarm: the seed also draws a mailbox bound for the actors tr_spawn
 * starts without one; some seeds bound them, some do not, and an actor
 * given a bound keeps its own. */
static void
test_sim_swarm_draws_mailbox_bounds(void **state)
{
    unsigned bounded = 0;
    unsigned runs = 24;
    (void)state;

    for (uint64_t seed = 0; seed < runs; seed++) {
        tr_sim_config sim = {.seed = seed, .swarm = true};
        tr_system_config cfg = {.sim = &sim};
        tr_spawn_opts own = {.mailbox_cap = 1000};
        tr_system *sys = NULL;
        tr_addr a;
        tr_addr b;
        unsigned full = 0;

        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        tr_ctx *ctx = tr_system_ctx(sys);
        assert_int_equal(tr_spawn(ctx, &log_b, NULL, NULL, &a), TR_OK);
        assert_int_equal(tr_spawn(ctx, &log_b, NULL, &own, &b), TR_OK);
        for (uint32_t i = 0; i < 100; i++) {
            int rc = tr_send(ctx, a, MSG_NOTE, &i, sizeof(i));
            assert_true(rc == TR_OK || rc == TR_EFULL);
            full += rc == TR_EFULL;
            assert_int_equal(tr_send(ctx, b, MSG_NOTE, &i, sizeof(i)), TR_OK);
        }
        bounded += full != 0;
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(bounded > 0 && bounded < runs);
}

/* ---- standalone channels waited on by the driving thread ---- */

typedef struct {
    tr_mailbox *mb;
    tr_oneshot_tx *one;
    tr_broadcast_tx *bc;
    tr_watch_tx *w;
} relay_state;

/* At its timer message it feeds every channel. */
static int
relay_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    relay_state *s = *(relay_state **)state;
    uint32_t v = 7;
    (void)ctx;
    (void)msg;

    if (tr_mailbox_send(s->mb, &v, sizeof(v)) != TR_OK ||
        tr_oneshot_send(s->one, &v) != TR_OK ||
        tr_broadcast_send(s->bc, &v, sizeof(v)) != TR_OK ||
        tr_watch_send(s->w, &v) != TR_OK) {
        return TR_EINVAL;
    }
    return TR_OK;
}

static int
relay_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    *(relay_state **)state = (relay_state *)arg;
    return TR_OK;
}

static const tr_behaviour relay_b = {
    .name = "relay",
    .state_size = sizeof(relay_state *),
    .init = relay_init,
    .handle = relay_handle,
};

static void
test_sim_standalone_waits_take_steps(void **state)
{
    tr_system *sys = sim_system(13, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    relay_state rs;
    tr_oneshot_rx *one_rx;
    tr_oneshot_tx *never_tx;
    tr_oneshot_rx *never_rx;
    tr_broadcast_rx *bc_rx;
    tr_watch_rx *w_rx;
    const tr_broadcast_value *val;
    uint32_t zero = 0;
    uint32_t got = 0;
    size_t len = 0;
    tr_addr a;
    tr_timer t;
    (void)state;

    assert_int_equal(tr_mailbox_create(0, &rs.mb), TR_OK);
    assert_int_equal(tr_oneshot_create(sizeof(uint32_t), &rs.one, &one_rx),
                     TR_OK);
    assert_int_equal(tr_oneshot_create(sizeof(uint32_t), &never_tx, &never_rx),
                     TR_OK);
    assert_int_equal(tr_broadcast_create(4, sizeof(uint32_t), &rs.bc), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(rs.bc, &bc_rx), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(uint32_t), &zero, &rs.w, &w_rx),
                     TR_OK);
    assert_int_equal(tr_spawn(ctx, &relay_b, &rs, NULL, &a), TR_OK);
    assert_int_equal(tr_send_after(ctx, a, MSG_PING, NULL, 0, 1000, &t), TR_OK);
    /* The wait runs the simulation: an hour's timeout, a second's jump. */
    assert_int_equal(tr_mailbox_recv_wait(rs.mb, &got, sizeof(got), &len,
                                          tr_ms(3600u * 1000u)),
                     TR_OK);
    assert_int_equal(got, 7);
    assert_int_equal(tr_now_ms(sys), 1000);
    assert_int_equal(tr_oneshot_recv_wait(one_rx, &got, tr_ms(10)), TR_OK);
    assert_int_equal(tr_broadcast_recv_wait(bc_rx, &val, NULL, tr_ms(10)),
                     TR_OK);
    tr_broadcast_value_release(val);
    assert_int_equal(tr_watch_changed_wait(w_rx, tr_ms(10)), TR_OK);
    /* Nothing more comes: the deadline passes on the virtual clock... */
    assert_int_equal(
        tr_mailbox_recv_wait(rs.mb, &got, sizeof(got), &len, tr_ms(250)),
        TR_ETIMEDOUT);
    assert_int_equal(tr_now_ms(sys), 1250);
    assert_int_equal(tr_watch_changed_wait(w_rx, tr_ms(50)), TR_ETIMEDOUT);
    assert_int_equal(tr_now_ms(sys), 1300);
    /* ...and with no deadline nothing can ever end the wait. */
    assert_int_equal(
        tr_mailbox_recv_wait(rs.mb, &got, sizeof(got), &len, TR_FOREVER),
        TR_ESTUCK);
    assert_int_equal(tr_oneshot_recv_wait(never_rx, &got, TR_FOREVER),
                     TR_ESTUCK);
    assert_int_equal(tr_broadcast_recv_wait(bc_rx, &val, NULL, TR_FOREVER),
                     TR_ESTUCK);
    assert_int_equal(tr_watch_changed_wait(w_rx, TR_FOREVER), TR_ESTUCK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    /* The system is gone: the thread's waits are real ones again. */
    assert_int_equal(
        tr_mailbox_recv_wait(rs.mb, &got, sizeof(got), &len, tr_ms(1)),
        TR_ETIMEDOUT);
    tr_mailbox_destroy(rs.mb);
    tr_oneshot_tx_destroy(rs.one);
    tr_oneshot_rx_destroy(one_rx);
    tr_oneshot_tx_destroy(never_tx);
    tr_oneshot_rx_destroy(never_rx);
    tr_broadcast_rx_destroy(bc_rx);
    tr_broadcast_tx_destroy(rs.bc);
    tr_watch_rx_destroy(w_rx);
    tr_watch_tx_destroy(rs.w);
}

/* A body that is not deterministic: each run sends one more message than
 * the last (state kept outside the run). */
static unsigned nondet_runs;

static int
nondet_body(tr_system *sys, void *arg)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    (void)arg;

    if (tr_spawn(ctx, &counter_b, NULL, NULL, &a) != TR_OK) {
        return -1;
    }
    nondet_runs++;
    for (unsigned i = 0; i < nondet_runs % 3 + 1; i++) {
        if (tr_send(ctx, a, MSG_PING, NULL, 0) != TR_OK) {
            return -1;
        }
    }
    return tr_sim_run_until_idle(sys) == TR_OK ? 0 : -1;
}

static void
test_sim_check_finds_nondeterminism(void **state)
{
    tr_sim_check_opts o = {.name = "nondet",
                           .seeds = 4,
                           .tape_dir = test_dir(),
                           .quiet = true,
                           .recheck_every = 1};
    uint64_t bad = UINT64_MAX;
    (void)state;

    assert_int_equal(tr_sim_check(&o, nondet_body, NULL, &bad), TR_EFAILED);
    assert_int_equal(bad, 0);
    remove_failure_files("nondet", 0);
    /* A deterministic body passes the same check. */
    o.name = "det";
    o.seeds = 10;
    assert_int_equal(tr_sim_check(&o, bank_body_passes, NULL, NULL), TR_OK);
}

/* A failing run leaves its files: tape, shrunk tape, trace, tree. */
static void
test_sim_check_leaves_failure_files(void **state)
{
    static const char *const suffix[] = {".tape", ".min.tape", ".trace",
                                         ".json"};
    tr_sim_check_opts o = {
        .name = "files", .seeds = 200, .tape_dir = test_dir(), .quiet = true};
    uint64_t bad = UINT64_MAX;
    char path[128];
    (void)state;

    assert_int_equal(tr_sim_check(&o, bank_body, NULL, &bad), TR_EFAILED);
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s/files-%016llx%s", test_dir(),
                 (unsigned long long)bad, suffix[i]);
        assert_int_equal(access(path, R_OK), 0);
        unlink(path);
    }
}

/* The same seed gives the same steps, the same fingerprint, and a replayed
 * tape makes the same choices whatever the seed says. */
static void
test_sim_tape_replays_the_run(void **state)
{
    char tape[64];
    log_state seen[2];
    uint64_t fp[2];
    tr_sim_stats st;
    (void)state;

    snprintf(tape, sizeof(tape), "%s/sim_test_%d.tape", test_dir(),
             (int)getpid());
    {
        tr_system *sys = sim_system(99, NULL);
        run_racy(sys, &seen[0]);
        fp[0] = fingerprint(sys);
        assert_int_equal(tr_sim_tape_save(sys, tape), TR_OK);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    {
        tr_sim_config sim = {.seed = 12345, .tape_path = tape};
        tr_system_config cfg = {.sim = &sim};
        tr_system *sys = NULL;
        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        run_racy(sys, &seen[1]);
        /* The node word (the seed's) is not in the trace: same steps. */
        assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
        fp[1] = st.fingerprint;
        assert_false(st.tape_diverged);
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(fp[0] == fp[1]);
    assert_memory_equal(&seen[0], &seen[1], sizeof(seen[0]));
    unlink(tape);
}

/*
 * A timer whose deadline passes the clock's end never fires, so it is not
 * a pending timer either: a simulation run to the end of time is idle with
 * it, and spends no steps on it. Waits without a deadline still wait
 * there.
 */
static void
test_sim_timer_past_the_end_of_time_never_fires(void **state)
{
    (void)state;
    tr_system *sys = sim_system(7, NULL);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_sim_stats st;
    tr_timer far;
    tr_addr a;

    assert_int_equal(tr_spawn(ctx, &log_b, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_send_after(ctx, a, MSG_GET, NULL, 0, UINT64_MAX, &far),
                     TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_sim_run_for(sys, UINT64_MAX), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    uint64_t steps = st.steps;
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(st.steps, steps);
    assert_int_equal(tr_timer_cancel(sys, far), TR_OK);
    /* TR_FOREVER is not a deadline the clock's end reaches: a wait for an
     * actor that nothing will stop is stuck, not timed out, and shutdown
     * stops the actors left. */
    tr_signal sig;
    assert_int_equal(tr_actor_wait(ctx, a, TR_FOREVER, &sig), TR_ESTUCK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--sim-child") == 0) {
        return child_main(argv[2], argv[3]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_same_seed_same_run),
        cmocka_unit_test(test_sim_addresses_follow_the_seed),
        cmocka_unit_test(test_sim_different_seeds_explore_orders),
        cmocka_unit_test(test_sim_reorders_between_senders),
        cmocka_unit_test(test_sim_same_seed_same_trace_in_two_processes),
        cmocka_unit_test(test_sim_hour_timer_fires_at_once),
        cmocka_unit_test(test_sim_run_for_ticks_an_interval),
        cmocka_unit_test(test_sim_timer_late_never_early),
        cmocka_unit_test(test_sim_blocking_calls_take_steps),
        cmocka_unit_test(test_sim_other_threads_are_refused),
        cmocka_unit_test(test_sim_callbacks_cannot_take_steps),
        cmocka_unit_test(test_sim_misuse),
        cmocka_unit_test(test_sim_supervision_runs_in_steps),
        cmocka_unit_test(test_sim_crash_at_kth_message),
        cmocka_unit_test(test_sim_crash_faults_restart_children),
        cmocka_unit_test(test_sim_kill_fault_skips_stop),
        cmocka_unit_test(test_sim_alloc_faults_fail_sends),
        cmocka_unit_test(test_sim_fault_points),
        cmocka_unit_test(test_sim_liveness_finds_a_livelock),
        cmocka_unit_test(test_sim_liveness_finds_a_call_that_never_ends),
        cmocka_unit_test(test_sim_finds_and_replays_a_race),
        cmocka_unit_test(test_sim_race_depends_on_the_seed),
        cmocka_unit_test(test_sim_shrinks_a_failing_tape),
        cmocka_unit_test(test_sim_check_finds_nondeterminism),
        cmocka_unit_test(test_sim_pct_finds_an_ordering_bug),
        cmocka_unit_test(test_sim_swarm_draws_the_fault_mix),
        cmocka_unit_test(test_sim_swarm_draws_mailbox_bounds),
        cmocka_unit_test(test_sim_standalone_waits_take_steps),
        cmocka_unit_test(test_sim_check_leaves_failure_files),
        cmocka_unit_test(test_sim_tape_replays_the_run),
        cmocka_unit_test(test_sim_timer_past_the_end_of_time_never_fires),
    };
    int failed = cmocka_run_group_tests_name("sim", tests, NULL, NULL);
    remove_test_dir();
    return failed;
}
