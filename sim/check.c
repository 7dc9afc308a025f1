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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    fclose(fa);
    fclose(fb);
    return TR_OK;
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
               const char *path, tr_sim_body_fn body, void *arg)
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
static int
check_one(const tr_sim_check_opts *o, const char *name, uint64_t seed,
          const char *tape, tr_sim_body_fn body, void *arg, bool *failed)
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

    sim.seed = seed;
    if (tape != NULL) {
        sim.tape_path = tape;
    }
    cfg.sim = &sim;
    if ((rc = tr_system_start(&cfg, &sys)) != TR_OK) {
        return rc;
    }
    result = body(sys, arg);
    *failed = result != 0;
    if (!*failed) {
        (void)tr_system_shutdown(sys, tr_ms(60000));
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
        shrink_failure(o, name, seed, path, body, arg);
    }
    return TR_OK;
}

/* Every `every`-th seed runs twice: the same steps, or a report. */
static bool
recheck(const tr_sim_check_opts *o, const char *name, uint64_t seed,
        const char *tape, tr_sim_body_fn body, void *arg)
{
    outcome a;
    outcome b;

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

    if (body == NULL) {
        return TR_EINVAL;
    }
    seed = env_u64("TROUPE_SIM_SEED", o->first_seed, &one);
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
        int rc = check_one(o, name, seed, tape, body, arg, &failed);
        if (rc != TR_OK) {
            return rc;
        }
        if (!failed && every != 0 && i % every == 0 &&
            !recheck(o, name, seed, tape, body, arg)) {
            failed = true;
        }
        if (failed) {
            if (failed_seed != NULL) {
                *failed_seed = seed;
            }
            return TR_EFAILED;
        }
    }
    return TR_OK;
}
