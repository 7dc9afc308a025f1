/*
 * The simulation's test runner: tr_sim_check runs a body over seeds and
 * reports a failing one with everything needed to look at it again (the
 * seed and a rerun line, the tape, a shrunk tape, a step trace, a
 * snapshot of the tree when the body failed, and whether the failure
 * replays); tr_sim_shrink shrinks a failing tape; tr_sim_trace_diff
 * compares two step traces.
 *
 * It sits above the other modules and uses their public API only, plus
 * the tape format of actors/sim.h (the one private header it reads).
 *
 * Shrinking follows Hypothesis's order (shortlex: fewer choices first,
 * then smaller ones): delete runs of choices, halves down to single ones,
 * then lower each choice to 0, to half, to one less; keep a candidate
 * when the body fails on it the same way (returns the same value), and
 * repeat while a pass helps. A tape owns every choice of its run and past
 * its end every choice is 0 (actors/sim.c), so every candidate is a run.
 */
#include "actors/sim.h"

#include <troupe.h>

#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* One line of `f` into `buf` (cut to fit, newline dropped); false at the
 * end. The rest of a long line is skipped. */
static bool
read_line(FILE *f, char *buf, size_t cap)
{
    size_t len;

    if (fgets(buf, (int)cap, f) == NULL) {
        return false;
    }
    len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n') {
        buf[len - 1] = '\0';
    } else {
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n') {
        }
    }
    return true;
}

int
tr_sim_trace_diff(const char *a, const char *b, uint64_t *step_out, char *line,
                  size_t cap)
{
    char la[512];
    char lb[512];
    FILE *fa;
    FILE *fb;
    uint64_t n = 0;

    if (a == NULL || b == NULL || step_out == NULL) {
        return TR_EINVAL;
    }
    if ((fa = fopen(a, "r")) == NULL) {
        return TR_ENOTFOUND;
    }
    if ((fb = fopen(b, "r")) == NULL) {
        fclose(fa);
        return TR_ENOTFOUND;
    }
    *step_out = 0;
    for (;;) {
        bool ha = read_line(fa, la, sizeof(la));
        bool hb = read_line(fb, lb, sizeof(lb));
        n++;
        if (!ha && !hb) {
            break;
        }
        if (ha != hb || strcmp(la, lb) != 0) {
            *step_out = n;
            if (line != NULL && cap > 0) {
                snprintf(line, cap, "%s", ha ? la : "(end)");
            }
            break;
        }
    }
    /* A read that failed is not an end (a directory fails at once). */
    int rc = ferror(fa) || ferror(fb) ? TR_ENOTFOUND : TR_OK;
    fclose(fa);
    fclose(fb);
    return rc;
}

/* The number in environment variable `name`, or `dflt`. */
static uint64_t
env_u64(const char *name, uint64_t dflt, bool *set)
{
    const char *v = getenv(name);
    char *end;
    uint64_t n;

    *set = false;
    if (v == NULL || *v == '\0') {
        return dflt;
    }
    n = strtoull(v, &end, 0);
    if (end == v) {
        return dflt;
    }
    *set = true;
    return n;
}

/* This program's path, for the rerun line. */
static void
program_path(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);

    if (n <= 0) {
        snprintf(buf, cap, "<program>");
        return;
    }
    buf[n] = '\0';
}

static void
report_failure(const tr_sim_check_opts *o, const char *name, uint64_t seed,
               int result, const tr_sim_stats *st, const char *replayed,
               const char *tape, int tape_rc)
{
    char prog[512];

    if (o->quiet) {
        return;
    }
    program_path(prog, sizeof(prog));
    fprintf(stderr,
            "troupe-sim: FAIL %s: seed=0x%016" PRIx64 " returned %d at step "
            "%" PRIu64 " (t=%" PRIu64 ".%06" PRIu64 " ms) fingerprint "
            "%016" PRIx64 "\n",
            name, seed, result, st->steps, st->now_ns / 1000000u,
            st->now_ns % 1000000u, st->fingerprint);
    if (replayed != NULL) {
        /* The run replayed a tape: the tape, not the seed, made it. */
        fprintf(stderr, "troupe-sim: rerun: TROUPE_SIM_TAPE=%s %s\n", replayed,
                prog);
    } else {
        fprintf(stderr,
                "troupe-sim: rerun: TROUPE_SIM_SEED=0x%016" PRIx64 " %s\n",
                seed, prog);
    }
    if (tape_rc == TR_OK) {
        fprintf(stderr, "troupe-sim: tape:  TROUPE_SIM_TAPE=%s %s\n", tape,
                prog);
    } else {
        fprintf(stderr, "troupe-sim: tape not saved (%s)\n",
                tr_errname(tape_rc));
    }
}

/* What one run gave: the body's result and the simulation's stats when
 * the body returned. */
typedef struct outcome {
    int result;
    tr_sim_stats st;
} outcome;

/* One quiet run of `body` with `seed`, or on the tape at `tape` when not
 * NULL, tracing to `trace` when not NULL. */
static int
run_once(const tr_sim_check_opts *o, uint64_t seed, const char *tape,
         const char *trace, tr_sim_body_fn body, void *arg, outcome *out)
{
    tr_system_config cfg = o->system;
    tr_sim_config sim = o->sim;
    tr_system *sys;
    int rc;

    sim.seed = seed;
    if (tape != NULL) {
        sim.tape_path = tape;
    }
    sim.trace_path = trace;
    cfg.sim = &sim;
    if ((rc = tr_system_start(&cfg, &sys)) != TR_OK) {
        return rc;
    }
    out->result = body(sys, arg);
    (void)tr_sim_stats_get(sys, &out->st);
    /* On the virtual clock: whatever the actors do, this costs no wall
     * time beyond the steps themselves. */
    (void)tr_system_shutdown(sys, tr_ms(60000));
    return TR_OK;
}

static int
run_tape(const tr_sim_check_opts *o, tr_sim_body_fn body, void *arg,
         const char *path, int *result)
{
    outcome out;
    int rc = run_once(o, o->sim.seed, path, NULL, body, arg, &out);

    *result = out.result;
    return rc;
}

static uint64_t
weight(const uint64_t *v, uint32_t n)
{
    uint64_t w = 0;

    for (uint32_t i = 0; i < n; i++) {
        w = tr_sat_add(w, v[i]);
    }
    return w;
}

/* The shrink's state: the best tape so far, a candidate, the failure to
 * keep, and the runs left. */
typedef struct shrink {
    const tr_sim_check_opts *o;
    tr_sim_body_fn body;
    void *arg;
    const char *out; /* candidates are written here */
    uint64_t seed;
    int want;
    uint64_t *best;
    uint32_t n;
    uint64_t *cand;
    unsigned runs;
    unsigned max_runs;
    int err;
} shrink;

/* Does the candidate (`m` choices) fail the same way? If so it is the new
 * best. */
static bool
try_cand(shrink *s, uint32_t m)
{
    int result = 0;

    if (s->runs >= s->max_runs || s->err != TR_OK) {
        return false;
    }
    s->runs++;
    if ((s->err = tr__sim_tape_write(s->out, s->seed, s->cand, m)) != TR_OK ||
        (s->err = run_tape(s->o, s->body, s->arg, s->out, &result)) != TR_OK) {
        return false;
    }
    if (result != s->want) {
        return false;
    }
    memcpy(s->best, s->cand, sizeof(uint64_t) * m);
    s->n = m;
    return true;
}

/* One pass of deletions, then one of lowerings; true when one helped. */
static bool
shrink_pass(shrink *s)
{
    bool better = false;

    for (uint32_t size = s->n / 2 > 0 ? s->n / 2 : 1; size >= 1; size /= 2) {
        uint32_t i = 0;
        while (i + size <= s->n && s->runs < s->max_runs) {
            memcpy(s->cand, s->best, sizeof(uint64_t) * i);
            memcpy(s->cand + i, s->best + i + size,
                   sizeof(uint64_t) * (s->n - i - size));
            if (try_cand(s, s->n - size)) {
                better = true; /* the same `i` now holds what came after */
            } else {
                i += size;
            }
        }
        if (size == 1) {
            break;
        }
    }
    for (uint32_t i = 0; i < s->n && s->runs < s->max_runs; i++) {
        uint64_t v = s->best[i];
        uint64_t lower[3] = {0, v / 2, v - 1};
        for (int k = 0; k < 3 && v != 0; k++) {
            if (lower[k] >= v || (k > 0 && lower[k] == lower[k - 1])) {
                continue;
            }
            memcpy(s->cand, s->best, sizeof(uint64_t) * s->n);
            s->cand[i] = lower[k];
            if (try_cand(s, s->n)) {
                better = true;
                break;
            }
        }
    }
    return better;
}

int
tr_sim_shrink(const tr_sim_check_opts *opts, tr_sim_body_fn body, void *arg,
              const char *tape, const char *out, tr_sim_shrink_stats *stats)
{
    static const tr_sim_check_opts none;
    uint64_t *loaded = NULL;
    uint32_t n = 0;
    shrink s;
    int result = 0;
    int rc;

    if (body == NULL || tape == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sim_tape_read(tape, &loaded, &n)) != TR_OK) {
        return rc;
    }
    memset(&s, 0, sizeof(s));
    s.o = opts != NULL ? opts : &none;
    s.body = body;
    s.arg = arg;
    s.out = out;
    s.seed = s.o->sim.seed;
    s.n = n;
    s.max_runs = s.o->shrink_runs != 0 ? s.o->shrink_runs : 500;
    s.best = malloc(sizeof(uint64_t) * (s.n + 1u));
    s.cand = malloc(sizeof(uint64_t) * (s.n + 1u));
    if (s.best == NULL || s.cand == NULL) {
        rc = TR_ENOMEM;
        goto done;
    }
    if (s.n != 0) {
        memcpy(s.best, loaded, sizeof(uint64_t) * s.n);
    }
    /* The failure to keep: the tape's own. */
    if ((rc = run_tape(s.o, body, arg, tape, &result)) != TR_OK) {
        goto done;
    }
    if (result == 0) {
        rc = TR_EINVAL;
        goto done;
    }
    s.want = result;
    if (stats != NULL) {
        stats->choices_before = s.n;
        stats->weight_before = weight(s.best, s.n);
    }
    while (shrink_pass(&s) && s.runs < s.max_runs && s.err == TR_OK) {
    }
    rc = s.err != TR_OK ? s.err : tr__sim_tape_write(out, s.seed, s.best, s.n);
    if (stats != NULL) {
        stats->choices_after = s.n;
        stats->weight_after = weight(s.best, s.n);
        stats->runs = s.runs;
    }
done:
    free(s.best);
    free(s.cand);
    free(loaded);
    return rc;
}

/* Shrink the failing run's tape at `path` next to it, and say so. */
static void
shrink_failure(const tr_sim_check_opts *o, const char *name, uint64_t seed,
               const char *path, tr_sim_body_fn body, void *arg,
               tr_sim_report *agg)
{
    tr_sim_check_opts so = *o;
    tr_sim_shrink_stats st;
    char min[512];
    char prog[512];
    const char *dir = o->tape_dir;
    int rc;

    if (dir == NULL && (dir = getenv("TROUPE_SIM_OUT")) == NULL) {
        dir = ".";
    }
    snprintf(min, sizeof(min), "%s/%s-%016" PRIx64 ".min.tape", dir, name,
             seed);
    so.sim.seed = seed;
    rc = tr_sim_shrink(&so, body, arg, path, min, &st);
    if (rc == TR_OK) {
        agg->shrunk = true;
        agg->shrink = st;
    }
    if (o->quiet) {
        return;
    }
    if (rc != TR_OK) {
        fprintf(stderr, "troupe-sim: not shrunk (%s)\n", tr_errname(rc));
        return;
    }
    program_path(prog, sizeof(prog));
    fprintf(stderr,
            "troupe-sim: shrunk %" PRIu64 " -> %" PRIu64 " choices (weight "
            "%" PRIu64 " -> %" PRIu64 ", %u runs): TROUPE_SIM_TAPE=%s %s\n",
            st.choices_before, st.choices_after, st.weight_before,
            st.weight_after, st.runs, min, prog);
}

/* Where a failing run's files go: DIR/NAME-SEED<suffix>. */
static void
artefact(const tr_sim_check_opts *o, const char *name, uint64_t seed,
         const char *suffix, char *buf, size_t cap)
{
    const char *dir = o->tape_dir;

    if (dir == NULL && (dir = getenv("TROUPE_SIM_OUT")) == NULL) {
        dir = ".";
    }
    snprintf(buf, cap, "%s/%s-%016" PRIx64 "%s", dir, name, seed, suffix);
}

/* The tree as the failing body left it, as JSON, into `path`. */
static int
save_snapshot(tr_system *sys, const char *path)
{
    enum { CAP = 1 << 18 };
    char *buf = malloc(CAP);
    size_t len = 0;
    FILE *f;
    int rc;

    if (buf == NULL) {
        return TR_ENOMEM;
    }
    rc = tr_inspect_snapshot(sys, TR_INSPECT_JSON, buf, CAP, &len);
    if ((rc == TR_OK || rc == TR_ETRUNCATED) &&
        (f = fopen(path, "w")) != NULL) {
        bool bad = fwrite(buf, 1, len, f) != len;
        rc = fclose(f) != 0 || bad ? TR_EIO : TR_OK;
    } else if (rc == TR_OK || rc == TR_ETRUNCATED) {
        rc = TR_EIO;
    }
    free(buf);
    return rc;
}

/*
 * The failing run again, traced into NAME-SEED.trace: it must take the
 * same steps (the fingerprint `fp` of the failing run). When it does not,
 * a third run names the first step where two runs part.
 */
static void
replay_failure(const tr_sim_check_opts *o, const char *name, uint64_t seed,
               const char *tape, uint64_t fp, tr_sim_body_fn body, void *arg)
{
    char trace[512];
    char again[512];
    char line[256];
    outcome out;
    uint64_t step = 0;

    artefact(o, name, seed, ".trace", trace, sizeof(trace));
    if (run_once(o, seed, tape, trace, body, arg, &out) != TR_OK || o->quiet) {
        return;
    }
    if (out.st.fingerprint == fp) {
        fprintf(stderr,
                "troupe-sim: trace: %s (the rerun took the same "
                "steps)\n",
                trace);
        return;
    }
    fprintf(stderr,
            "troupe-sim: NOT DETERMINISTIC: the rerun's fingerprint is "
            "%016" PRIx64 ", not %016" PRIx64 "\n",
            out.st.fingerprint, fp);
    artefact(o, name, seed, ".trace2", again, sizeof(again));
    if (run_once(o, seed, tape, again, body, arg, &out) == TR_OK &&
        tr_sim_trace_diff(trace, again, &step, line, sizeof(line)) == TR_OK &&
        step != 0) {
        fprintf(stderr,
                "troupe-sim: two reruns part at step %" PRIu64
                ": %s (traces %s, %s)\n",
                step, line, trace, again);
    }
}

/* One run of `body` with `seed` (and `tape`, when not NULL). */
/* Add the "sometimes" properties run `sys` declared to `agg`. */
static void
count_sometimes(tr_system *sys, tr_sim_report *agg)
{
    const tr_sim_sometimes_count *v;
    unsigned n = tr__sim_sometimes_get(sys, &v);

    for (unsigned i = 0; i < n; i++) {
        unsigned k;
        for (k = 0; k < agg->nsometimes &&
                    strcmp(agg->sometimes[k].name, v[i].name) != 0;
             k++) {
        }
        if (k == agg->nsometimes) {
            if (k == sizeof(agg->sometimes) / sizeof(agg->sometimes[0])) {
                continue;
            }
            memcpy(agg->sometimes[k].name, v[i].name, sizeof(v[i].name));
            agg->nsometimes++;
        }
        agg->sometimes[k].reached += v[i].reached;
        agg->sometimes[k].held += v[i].held;
    }
}

static int
check_one(const tr_sim_check_opts *o, const char *name, uint64_t seed,
          const char *tape, tr_sim_body_fn body, void *arg, bool *failed,
          tr_sim_report *agg)
{
    tr_system_config cfg = o->system;
    tr_sim_config sim = o->sim;
    tr_system *sys;
    tr_sim_stats st;
    char path[512];
    char json[512];
    int result;
    int tape_rc;
    int rc;

    struct timespec t0;
    struct timespec t1;

    sim.seed = seed;
    if (tape != NULL) {
        sim.tape_path = tape;
    }
    cfg.sim = &sim;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((rc = tr_system_start(&cfg, &sys)) != TR_OK) {
        return rc;
    }
    result = body(sys, arg);
    *failed = result != 0;
    count_sometimes(sys, agg);
    if (!*failed) {
        (void)tr_system_shutdown(sys, tr_ms(60000));
    }
    /* The search's time: the runs, not a failure's reports and shrink. */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    agg->wall_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
                               (t1.tv_nsec - t0.tv_nsec));
    if (!*failed) {
        return TR_OK;
    }
    artefact(o, name, seed, ".tape", path, sizeof(path));
    artefact(o, name, seed, ".json", json, sizeof(json));
    (void)tr_sim_stats_get(sys, &st);
    tape_rc = tr_sim_tape_save(sys, path);
    rc = save_snapshot(sys, json);
    report_failure(o, name, seed, result, &st, sim.tape_path, path, tape_rc);
    if (!o->quiet && rc == TR_OK) {
        fprintf(stderr, "troupe-sim: tree:  %s (at the failure)\n", json);
    }
    (void)tr_system_shutdown(sys, tr_ms(60000));
    replay_failure(o, name, seed, sim.tape_path, st.fingerprint, body, arg);
    if (tape_rc == TR_OK && !o->no_shrink) {
        shrink_failure(o, name, seed, path, body, arg, agg);
    }
    return TR_OK;
}

/* This program's arguments, as it was started (NULL-terminated, in one
 * malloc'd block; NULL when they cannot be read). */
static char **
program_args(void)
{
    enum { CAP = 1 << 16 };
    char *buf = malloc(CAP);
    FILE *f = fopen("/proc/self/cmdline", "r");
    size_t len = 0;
    size_t argc = 0;
    char **argv;

    if (buf == NULL || f == NULL) {
        free(buf);
        if (f != NULL) {
            fclose(f);
        }
        return NULL;
    }
    len = fread(buf, 1, CAP - 1, f);
    fclose(f);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        argc += buf[i] == '\0';
    }
    argv = malloc(sizeof(char *) * (argc + 2) + len + 1);
    if (argv == NULL) {
        free(buf);
        return NULL;
    }
    char *text = (char *)(argv + argc + 2);
    memcpy(text, buf, len + 1);
    free(buf);
    size_t n = 0;
    for (size_t i = 0; i < len && n < argc; n++) {
        argv[n] = text + i;
        i += strlen(text + i) + 1;
    }
    argv[n] = NULL;
    return argv;
}

/* Run seed `seed` of check `name` in a fresh process of this program,
 * tracing into `trace` (see recheck_exec). TR_OK when it ran. */
static int
run_in_child(const char *name, uint64_t seed, const char *trace)
{
    char self[512];
    char child[1024];
    char **argv = program_args();
    char **env;
    size_t nenv = 0;
    pid_t pid;
    int status = 0;
    int rc = TR_EIO;

    program_path(self, sizeof(self));
    if (argv == NULL || argv[0] == NULL) {
        free(argv);
        return TR_ENOMEM;
    }
    snprintf(child, sizeof(child), "TROUPE_SIM_CHILD=%s:%" PRIu64 ":%s", name,
             seed, trace);
    while (environ[nenv] != NULL) {
        nenv++;
    }
    env = malloc(sizeof(char *) * (nenv + 2));
    if (env == NULL) {
        free(argv);
        return TR_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (strncmp(environ[i], "TROUPE_SIM_CHILD=", 17) != 0) {
            env[k++] = environ[i];
        }
    }
    env[k++] = child;
    env[k] = NULL;
    if (posix_spawn(&pid, self, NULL, NULL, argv, env) == 0 &&
        waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
        rc = TR_OK; /* it ran; its body's result is not the point */
    }
    free(env);
    free(argv);
    return rc;
}

/* The child's side of recheck_exec: TROUPE_SIM_CHILD=NAME:SEED:TRACE.
 * True (with `*seed`, `trace`) when the environment names a check. */
static bool
child_request(char *name, size_t ncap, uint64_t *seed, char *trace, size_t tcap)
{
    const char *v = getenv("TROUPE_SIM_CHILD");
    const char *c1;
    const char *c2;
    char *end;

    if (v == NULL || (c1 = strchr(v, ':')) == NULL ||
        (c2 = strchr(c1 + 1, ':')) == NULL) {
        return false;
    }
    snprintf(name, ncap, "%.*s", (int)(c1 - v), v);
    *seed = strtoull(c1 + 1, &end, 0);
    snprintf(trace, tcap, "%s", c2 + 1);
    return true;
}

/* The determinism recheck in two processes: this one and a fresh one,
 * both traced; the traces must match, or the first step where they part
 * is named. */
static bool
recheck_process(const tr_sim_check_opts *o, const char *name, uint64_t seed,
                const char *tape, tr_sim_body_fn body, void *arg)
{
    char here[512];
    char there[512];
    char line[256];
    outcome a;
    uint64_t step = 0;
    bool same = true;

    artefact(o, name, seed, ".det.trace", here, sizeof(here));
    artefact(o, name, seed, ".det2.trace", there, sizeof(there));
    if (run_once(o, seed, tape, here, body, arg, &a) != TR_OK ||
        run_in_child(name, seed, there) != TR_OK ||
        tr_sim_trace_diff(here, there, &step, line, sizeof(line)) != TR_OK) {
        if (!o->quiet) {
            fprintf(stderr,
                    "troupe-sim: %s: seed=0x%016" PRIx64
                    " could not be rerun in another process\n",
                    name, seed);
        }
        unlink(here);
        unlink(there);
        return false;
    }
    if (step != 0) {
        same = false;
        if (!o->quiet) {
            fprintf(stderr,
                    "troupe-sim: NOT DETERMINISTIC %s: seed=0x%016" PRIx64
                    " in two processes: they part at step %" PRIu64
                    ": %s (traces %s, %s)\n",
                    name, seed, step, line, here, there);
        }
    } else {
        unlink(here);
        unlink(there);
    }
    return same;
}

/* Every `every`-th seed runs twice: the same steps, or a report. */
static bool
recheck(const tr_sim_check_opts *o, const char *name, uint64_t seed,
        const char *tape, tr_sim_body_fn body, void *arg)
{
    outcome a;
    outcome b;

    if (o->recheck_exec) {
        return recheck_process(o, name, seed, tape, body, arg);
    }

    if (run_once(o, seed, tape, NULL, body, arg, &a) != TR_OK ||
        run_once(o, seed, tape, NULL, body, arg, &b) != TR_OK ||
        a.st.fingerprint == b.st.fingerprint) {
        return true;
    }
    if (!o->quiet) {
        fprintf(stderr,
                "troupe-sim: NOT DETERMINISTIC %s: seed=0x%016" PRIx64
                " ran twice: fingerprints %016" PRIx64 " and %016" PRIx64 "\n",
                name, seed, a.st.fingerprint, b.st.fingerprint);
        replay_failure(o, name, seed, tape, a.st.fingerprint, body, arg);
    }
    return false;
}

/* Every seed passed: each "sometimes" property declared must have held
 * in some run (TR_ENOTFOUND when one never did). */
static int
sometimes_verdict(const tr_sim_check_opts *o, const char *name,
                  const tr_sim_report *agg)
{
    int rc = TR_OK;

    for (unsigned i = 0; i < agg->nsometimes; i++) {
        const tr_sim_sometimes_count *c = &agg->sometimes[i];
        if (c->held == 0) {
            rc = TR_ENOTFOUND;
        }
        if (!o->quiet && (c->held == 0 || getenv("TROUPE_SIM_VERBOSE"))) {
            fprintf(stderr,
                    "troupe-sim: %s: sometimes \"%s\": held in %u of the %u "
                    "runs that reached it%s\n",
                    name, c->name, c->held, c->reached,
                    c->held == 0 ? ": NEVER (the seeds did not explore it)"
                                 : "");
        }
    }
    return rc;
}

int
tr_sim_check(const tr_sim_check_opts *opts, tr_sim_body_fn body, void *arg,
             uint64_t *failed_seed)
{
    static const tr_sim_check_opts none;
    const tr_sim_check_opts *o = opts != NULL ? opts : &none;
    const char *name = o->name != NULL ? o->name : "sim";
    const char *tape = getenv("TROUPE_SIM_TAPE");
    bool one;
    bool set;
    uint64_t seed;
    uint64_t seeds;
    uint64_t every;

    tr_sim_report none_report;
    tr_sim_report *agg = o->report != NULL ? o->report : &none_report;
    char child_name[128];
    char child_trace[512];
    int rc = TR_OK;

    if (body == NULL) {
        return TR_EINVAL;
    }
    memset(agg, 0, sizeof(*agg));
    if (child_request(child_name, sizeof(child_name), &seed, child_trace,
                      sizeof(child_trace))) {
        /* A fresh process of a determinism recheck: run the one seed of
         * the one check it names, traced, and end the process. */
        outcome out;
        if (strcmp(child_name, name) != 0) {
            return TR_OK;
        }
        rc = run_once(o, seed, tape != NULL && *tape != '\0' ? tape : NULL,
                      child_trace, body, arg, &out);
        exit(rc == TR_OK ? 0 : 1);
    }
    /* CI moves every check to seeds of its own commit (scripts/sim.sh). */
    seed = o->first_seed + env_u64("TROUPE_SIM_BASE", 0, &set);
    seed = env_u64("TROUPE_SIM_SEED", seed, &one);
    seeds = o->seeds != 0 ? o->seeds : env_u64("TROUPE_SIM_SEEDS", 100, &set);
    if (one || (tape != NULL && *tape != '\0')) {
        seeds = 1;
    }
    if (tape != NULL && *tape == '\0') {
        tape = NULL;
    }
    every = o->recheck_every != 0 ? o->recheck_every
                                  : env_u64("TROUPE_SIM_RECHECK", 0, &set);
    for (uint64_t i = 0; i < seeds; i++, seed++) {
        bool failed = false;
        rc = check_one(o, name, seed, tape, body, arg, &failed, agg);
        agg->seeds_run++;
        if (rc != TR_OK) {
            return rc;
        }
        if (!failed && every != 0 && i % every == 0) {
            agg->rechecks++;
            if (!recheck(o, name, seed, tape, body, arg)) {
                failed = true;
            }
        }
        if (failed) {
            agg->failed = true;
            agg->failed_seed = seed;
            if (failed_seed != NULL) {
                *failed_seed = seed;
            }
            rc = TR_EFAILED;
            break;
        }
    }
    /* One seed (a replay) cannot be expected to reach every state. */
    if (rc == TR_OK && agg->seeds_run > 1) {
        rc = sometimes_verdict(o, name, agg);
    }
    return rc;
}
