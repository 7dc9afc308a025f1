/*
 * Simulation: a system run on its driving thread, one step at a time, with
 * every choice drawn from a seed (see troupe/sim.h for what a user sees).
 *
 * The pieces. The scheduler's pool has one worker whose thread is never
 * started (scheduler/sched.c, tr__sched_sim_*): a step gathers the tasks
 * made runnable since the last one into the runnable list, in the order
 * they were made runnable, and the driving thread runs the chosen one as
 * worker 0. Submissions during a step go to worker 0's LIFO slot and ring,
 * exactly as on a real worker, and those from the driving thread outside
 * steps to the inject queue; so the send and submit paths have no branch
 * for simulation. The clock is the manual clock (scheduler/timer.c): time
 * moves only here (and by tr_clock_advance).
 *
 * Choices. Every choice is a number below a bound, drawn from one of the
 * streams (common/tr_rand.h): which runnable task runs, or whether due
 * timers fire first (SCHED), how many messages the run may handle (BATCH),
 * how late a timer fires and what a step costs (TIME), and the faults
 * (FAULT). A choice with one option draws nothing. The sequence of
 * choices is the tape: recorded as the run goes, replayed from a file in
 * place of the draws. Every choice is arranged so that 0 is the simplest
 * (the oldest runnable task, a batch of one, on time, no fault): past a
 * tape's end every choice is 0, which is what lets sim/check.c shrink a
 * tape by deleting and lowering choices.
 *
 * Faults. A step that runs an actor may instead crash one of its
 * handlers (ctx.fault_in, through sys->fault_in, counts down the run's
 * messages in actor.c's dispatch), kill it (tr__actor_sim_kill runs in
 * place of the run), or arm the allocator's failure hook for the step.
 * Supervisors are spared: their code is troupe's. Faults stop at the
 * quiesce point.
 *
 * Invariants that make a run a function of its seed: the runnable list is
 * ordered by the order tasks became runnable (never by address); actors
 * are named by slot index and generation, which depend on the order of
 * spawns and ends only (the table's free lists are LIFO stacks walked by
 * one thread); the node word comes from the seed; timers with one deadline
 * fire in heap order, which depends on the order they were armed only;
 * nothing here reads the wall clock.
 *
 * Fingerprint. Every step writes one line (the step trace), and the
 * fingerprint is an FNV-1a hash over those lines, so two runs with one
 * fingerprint took the same steps, and tr_sim_trace_diff names the first
 * step where two traces part.
 */
#include "actors/sim.h"

#include "actors/actor.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"
#include "common/tr_rand.h"
#include "scheduler/timer.h"

#include <troupe/error.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    STREAM_SCHED = 0,
    STREAM_BATCH = 1,
    STREAM_TIME = 2,
    STREAM_FAULT = 3,
    STREAM_PCT = 4,   /* PCT's priorities: never on the tape (see pct_pick) */
    STREAM_NET = 5,   /* the simulated network (io/simnet.c) */
    STREAM_SWARM = 6, /* swarm draws added later (mailbox bounds) */
    STREAMS = 7,
};

enum { MAX_TARGETS = 16, MAX_POINTS = 64, PPM = 1000000 };

#define DEFAULT_MAX_STEPS UINT64_C(10000000)
#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

struct tr_sim {
    tr_sim_config cfg; /* the paths are not kept */
    pthread_t driver;
    tr_rand streams[STREAMS];
    uint64_t steps;
    uint64_t max_steps;
    uint64_t fingerprint;
    FILE *trace;
    /* The choices made so far. */
    uint64_t *tape;
    uint32_t tape_len;
    uint32_t tape_cap;
    bool tape_lost; /* out of memory once: the tape is not whole */
    /* The choices to replay, and how far the replay is. */
    uint64_t *replay;
    uint32_t replay_len;
    uint32_t replay_at;
    bool replaying; /* a tape was given (perhaps empty) */
    bool diverged;
    /* Faults. */
    bool quiesced;
    uint64_t crashes;
    uint64_t kills;
    uint64_t ooms;
    uint64_t points;
    struct {
        uint64_t id; /* an incarnation's address id */
        uint64_t k;  /* its k-th user message */
    } targets[MAX_TARGETS];
    unsigned ntargets;
    /* User fault points met so far: the hash of the name, and whether the
     * run activated it (drawn when first met). */
    struct {
        uint64_t hash;
        bool active;
    } points_seen[MAX_POINTS];
    unsigned npoints;
    /* Calls accepted and not yet ended (tr__sim_calls_open). */
    uint64_t calls_open;
    /* The "sometimes" properties declared in this run (tr_sim_sometimes). */
    tr_sim_sometimes_count sometimes[TR_SIM_SOMETIMES_MAX];
    unsigned nsometimes;
    /* Swarm: the bound of the mailboxes tr_spawn makes without one. */
    uint32_t swarm_cap;
    /* The driving thread is attached to tr_park (standalone waits). */
    bool parked;
    /* PCT: each slot's priority (by slot index; 0: not seen yet), and the
     * change points still to come (steps, ascending), each with the low
     * priority it gives. */
    uint64_t *prio;
    uint32_t nprio;
    uint64_t change_at[16];
    unsigned nchanges;
    unsigned next_change;
    /* The simulated network (io/simnet.c), once the I/O module started:
     * when its next event is due, and run that event. */
    tr_sim_net_next_fn net_next;
    tr_sim_net_run_fn net_run;
    void *net;
};

uint64_t
tr__sim_node(const tr_system *sys)
{
    uint64_t x = sys->sim->cfg.seed ^ UINT64_C(0x6e6f6465); /* "node" */
    uint64_t v = tr__splitmix64(&x);

    return v != 0 ? v : 1;
}

/* ---- the tape ---- */

static void
tape_add(tr_sim *sim, uint64_t v)
{
    if (sim->tape_lost) {
        return;
    }
    if (sim->tape_len == sim->tape_cap) {
        /* The system allocator: the runtime's may be failing on purpose
         * (alloc_fail_ppm) while a handler reaches a fault point. */
        uint32_t cap = sim->tape_cap != 0 ? sim->tape_cap * 2 : 256;
        uint64_t *t = sim->tape_cap < UINT32_MAX / 2
                          ? realloc(sim->tape, sizeof(uint64_t) * cap)
                          : NULL;
        if (t == NULL) {
            sim->tape_lost = true;
            return;
        }
        sim->tape = t;
        sim->tape_cap = cap;
    }
    sim->tape[sim->tape_len++] = v;
}

/* A choice among `bound` options (bound > 0), from the tape being replayed
 * or from `stream`, recorded either way. */
static uint64_t
choose(tr_sim *sim, unsigned stream, uint64_t bound)
{
    uint64_t v;

    if (bound <= 1) {
        return 0;
    }
    if (sim->replaying) {
        /* A tape owns every choice: past its end each is 0, the simplest
         * (the oldest runnable actor, a batch of one, a timer on time, no
         * fault), and a value that no longer fits is folded in. So a
         * shrunk tape (tr_sim_shrink) is a run of its own. */
        v = 0;
        if (sim->replay_at < sim->replay_len) {
            v = sim->replay[sim->replay_at++];
            if (v >= bound) {
                sim->diverged = true;
                v %= bound;
            }
        }
    } else {
        v = tr__rand_below(&sim->streams[stream], bound);
    }
    tape_add(sim, v);
    return v;
}

int
tr__sim_tape_read(const char *path, uint64_t **out, uint32_t *len)
{
    FILE *f = fopen(path, "r");
    char line[64];
    uint64_t *v = NULL;
    uint32_t n = 0;
    uint32_t cap = 0;

    if (f == NULL) {
        return TR_ENOTFOUND;
    }
    if (fgets(line, sizeof(line), f) == NULL ||
        strncmp(line, TR_SIM_TAPE_MAGIC, strlen(TR_SIM_TAPE_MAGIC)) != 0) {
        fclose(f);
        return TR_EINVAL;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *end;
        uint64_t x;

        if (line[0] == '#') {
            continue; /* the header's comments: seed, count */
        }
        x = strtoull(line, &end, 10);
        if (end == line) {
            continue;
        }
        if (n == cap) {
            uint32_t ncap = cap != 0 ? cap * 2 : 256;
            uint64_t *r = cap < UINT32_MAX / 2
                              ? realloc(v, sizeof(uint64_t) * ncap)
                              : NULL;
            if (r == NULL) {
                free(v);
                fclose(f);
                return TR_ENOMEM;
            }
            v = r;
            cap = ncap;
        }
        v[n++] = x;
    }
    fclose(f);
    *out = v;
    *len = n;
    return TR_OK;
}

int
tr__sim_tape_write(const char *path, uint64_t seed, const uint64_t *v,
                   uint32_t n)
{
    FILE *f = fopen(path, "w");
    int bad;

    if (f == NULL) {
        return TR_EIO;
    }
    fprintf(f,
            TR_SIM_TAPE_MAGIC "\n# seed 0x%016" PRIx64 "\n# choices %" PRIu32
                              "\n",
            seed, n);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "%" PRIu64 "\n", v[i]);
    }
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        return TR_EIO;
    }
    return TR_OK;
}

static int
tape_load(tr_sim *sim, const char *path)
{
    int rc = tr__sim_tape_read(path, &sim->replay, &sim->replay_len);

    sim->replaying = rc == TR_OK;
    return rc;
}

/* ---- the trace ---- */

/* Record step `sim->steps`: one trace line, hashed into the fingerprint. */
static void
note(tr_system *sys, const char *fmt, ...)
{
    tr_sim *sim = sys->sim;
    uint64_t now = tr__timers_now(sys->timers);
    char line[256];
    int len;
    va_list ap;

    len = snprintf(line, sizeof(line),
                   "#%" PRIu64 " t=%" PRIu64 ".%06" PRIu64 " ", sim->steps,
                   now / 1000000u, now % 1000000u);
    va_start(ap, fmt);
    (void)vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
    va_end(ap);
    for (const char *p = line; *p != '\0'; p++) {
        sim->fingerprint = (sim->fingerprint ^ (unsigned char)*p) * FNV_PRIME;
    }
    sim->fingerprint = (sim->fingerprint ^ '\n') * FNV_PRIME;
    if (sim->trace != NULL) {
        fputs(line, sim->trace);
        fputc('\n', sim->trace);
    }
}

/* ---- steps ---- */

/* Messages one run may handle: often a whole batch, sometimes very few,
 * so that runs of different actors interleave at every message. */
static unsigned
choose_batch(tr_sim *sim)
{
    switch (choose(sim, STREAM_BATCH, 4)) {
    case 0:
        return 1;
    case 1:
        return 2 + (unsigned)choose(sim, STREAM_BATCH, 7);
    default:
        return TR_BATCH;
    }
}

/* A chance of `ppm` per million, drawn only when it is not 0. The high
 * values fire, so that a choice of 0 is no fault. */
static bool
chance(tr_sim *sim, uint32_t ppm)
{
    return ppm != 0 && choose(sim, STREAM_FAULT, PPM) >= PPM - ppm;
}

/* The message of the coming run of incarnation `id` (which has handled
 * `handled` so far) that a targeted crash fails, or 0. */
static uint32_t
targeted(tr_sim *sim, uint64_t id, uint64_t handled, unsigned batch)
{
    for (unsigned i = 0; i < sim->ntargets; i++) {
        if (sim->targets[i].id == id && sim->targets[i].k > handled &&
            sim->targets[i].k - handled <= batch) {
            uint32_t at = (uint32_t)(sim->targets[i].k - handled);
            sim->targets[i] = sim->targets[--sim->ntargets];
            return at;
        }
    }
    return 0;
}

/*
 * Reordering between senders (reorder_pct), before a run of `a` whose
 * run-right the step holds: move to the front of the user lane the oldest
 * message of a sender drawn among those whose oldest message is not the
 * front one. Never the newest message (producers' head points at it),
 * never past a close marker (it closes after what was queued before it),
 * never a message with an older one of the same sender before it (R1).
 * True when a message moved.
 */
static bool
reorder(tr_sim *sim, tr_actor *a)
{
    enum { MAX = 32 };
    uint64_t senders[MAX];
    tr_mnode *cand[MAX]; /* the node before each candidate */
    unsigned nsenders = 0;
    unsigned ncand = 0;
    tr_mnode *head = tr__mpsc_last(&a->mbox);
    tr_mnode *prev = a->mbox_out.tail;
    tr_mnode *node;

    while ((node = tr_load_relaxed(&prev->next)) != NULL && node != head &&
           nsenders < MAX) {
        tr_envelope *env = tr__env_of_node(node);
        unsigned i;
        if (env->kind == TR_MSG_CLOSE) {
            break;
        }
        for (i = 0; i < nsenders && senders[i] != env->from; i++) {
        }
        if (i == nsenders) {
            senders[nsenders++] = env->from;
            if (prev != a->mbox_out.tail) {
                cand[ncand++] = prev;
            }
        }
        prev = node;
    }
    if (ncand == 0) {
        return false;
    }
    tr__mpsc_move_front(&a->mbox_out, cand[choose(sim, STREAM_SCHED, ncand)]);
    return true;
}

static void
run_task(tr_system *sys, tr_task *t, size_t pick, size_t n)
{
    tr_sim *sim = sys->sim;
    const tr_sim_faults *f = &sim->cfg.faults;
    tr_actor *a = tr_container_of(t, tr_actor, task);
    tr_wlocal *wl = tr__sched_worker_data(sys->sched, 0);
    /* Relaxed: this thread is the only one that runs actors. */
    uint64_t gen = tr_load_relaxed(&a->gen);
    uint64_t handled = tr_load_relaxed(&wl->handled);
    uint64_t spawned = tr_load_relaxed(&wl->spawned);
    uint64_t dead = tr_load_relaxed(&wl->dead);
    unsigned batch = choose_batch(sim);
    tr_run_fn fn = NULL;
    char fault[32] = "";
    uint32_t crash = 0;
    bool oom = false;

    /* Faults strike the program's actors, never a supervisor: its code is
     * troupe's, and its own failures are tested apart. */
    tr_ext *x = tr_load_acq(&a->ext);
    if (!sim->quiesced && tr__gen_live(gen) && (x == NULL || !x->supervisor)) {
        crash = targeted(sim, tr__addr_id(gen, a->index),
                         tr_load_relaxed(&a->handled), batch);
        if (crash == 0 && chance(sim, f->crash_ppm)) {
            crash =
                1 + (uint32_t)choose(sim, STREAM_FAULT, batch < 8 ? batch : 8);
        }
        if (crash != 0) {
            snprintf(fault, sizeof(fault), " crash@%" PRIu32, crash);
        } else if (chance(sim, f->kill_ppm)) {
            fn = tr__actor_sim_kill;
            snprintf(fault, sizeof(fault), " kill");
            sim->kills++;
        } else if (chance(sim, f->alloc_fail_ppm)) {
            long after = (long)choose(sim, STREAM_FAULT, 8);
            snprintf(fault, sizeof(fault), " oom@%ld", after);
            tr__alloc_fail_after(after);
            oom = true;
            sim->ooms++;
        }
    }
    if (sim->cfg.reorder_pct != 0 && fn == NULL && tr__gen_live(gen) &&
        choose(sim, STREAM_SCHED, 100) >=
            100 - (sim->cfg.reorder_pct < 100 ? sim->cfg.reorder_pct : 100) &&
        reorder(sim, a)) {
        size_t at = strlen(fault);
        snprintf(fault + at, sizeof(fault) - at, " reorder");
    }
    sys->batch = batch;
    sys->fault_in = crash;
    tr__sched_sim_run(sys->sched, t, fn);
    if (crash != 0 && sys->fault_in == 0) {
        sim->crashes++; /* it fired (the run may end before its message) */
    }
    sys->batch = TR_BATCH;
    sys->fault_in = 0;
    if (oom) {
        tr__alloc_fail_after(-1);
    }
    note(sys,
         "run %" PRIu32 ".%" PRIu64 " pick %zu/%zu batch %u handled +%" PRIu64
         " spawned +%" PRIu64 " dead +%" PRIu64 "%s%s",
         a->index, gen, pick, n, batch, tr_load_relaxed(&wl->handled) - handled,
         tr_load_relaxed(&wl->spawned) - spawned,
         tr_load_relaxed(&wl->dead) - dead, fault,
         tr_load_relaxed(&a->gen) != gen ? " ended" : "");
    if (sim->cfg.step_cost_max_us != 0) {
        uint64_t us =
            choose(sim, STREAM_TIME, (uint64_t)sim->cfg.step_cost_max_us + 1);
        if (us != 0) {
            tr__timers_advance(sys->timers, us * 1000u);
        }
    }
}

/* Move the clock `ns` on (firing what becomes due) as one step. */
static void
jump(tr_system *sys, uint64_t ns, const char *why)
{
    tr__timers_advance(sys->timers, ns);
    note(sys, "jump +%" PRIu64 " %s", ns, why);
}

/* PCT's priority of slot `index`, drawn the first time it is seen: above
 * every priority a change point gives. 0 when out of memory (lowest). */
static uint64_t
pct_priority(tr_sim *sim, uint32_t index)
{
    if (index >= sim->nprio) {
        uint32_t n = index + 64;
        uint64_t *p = realloc(sim->prio, sizeof(uint64_t) * n);
        if (p == NULL) {
            return 0;
        }
        memset(p + sim->nprio, 0, sizeof(uint64_t) * (n - sim->nprio));
        sim->prio = p;
        sim->nprio = n;
    }
    if (sim->prio[index] == 0) {
        sim->prio[index] =
            32 + tr__rand_below(&sim->streams[STREAM_PCT], UINT32_MAX);
    }
    return sim->prio[index];
}

/*
 * PCT's choice among `n` runnable tasks (and the due timers, option `n`,
 * which go first): the highest priority, the first of equals. At a change
 * point the chosen actor drops to that point's low priority. The choice is
 * recorded as the index it is, so a tape replays it without PCT; the
 * priorities and change points are drawn from their own stream and never
 * recorded, since a replay does not draw them.
 */
static size_t
pct_pick(tr_system *sys, size_t n, bool due, size_t options)
{
    tr_sim *sim = sys->sim;
    size_t best = 0;
    uint64_t top = 0;
    tr_task *t = NULL;

    if (due) {
        best = n;
    } else {
        for (size_t i = 0; i < n; i++) {
            t = tr__sched_sim_at(sys->sched, t);
            uint64_t p =
                pct_priority(sim, tr_container_of(t, tr_actor, task)->index);
            if (i == 0 || p > top) {
                best = i;
                top = p;
            }
        }
        if (sim->next_change < sim->nchanges &&
            sim->steps >= sim->change_at[sim->next_change]) {
            t = NULL;
            for (size_t i = 0; i <= best; i++) {
                t = tr__sched_sim_at(sys->sched, t);
            }
            uint32_t index = tr_container_of(t, tr_actor, task)->index;
            (void)pct_priority(sim, index);
            if (index < sim->nprio) {
                sim->prio[index] = 1 + sim->next_change;
            }
            sim->next_change++;
        }
    }
    if (options > 1) {
        tape_add(sim, best);
    }
    return best;
}

static int
step(tr_system *sys, uint64_t deadline)
{
    tr_sim *sim = sys->sim;
    uint64_t now;
    uint64_t next = 0;
    uint64_t net_at = 0;
    bool timer;
    bool due;
    bool net;
    bool net_due;
    size_t n;

    if (sim->steps >= sim->max_steps) {
        return TR_ETIMEDOUT;
    }
    if (sim->cfg.faults.quiesce_step != 0 &&
        sim->steps >= sim->cfg.faults.quiesce_step) {
        sim->quiesced = true;
    }
    n = tr__sched_sim_gather(sys->sched);
    now = tr__timers_now(sys->timers);
    timer = tr__timers_next(sys->timers, &next);
    due = timer && next <= now;
    net = sim->net_next != NULL && sim->net_next(sim->net, &net_at);
    net_due = net && net_at <= now;
    if (n > 0 || due || net_due) {
        /* One more option when timers are due (fire them), one more when
         * a network event is due (run it), in that order after the
         * runnable tasks. */
        size_t options = n + (due ? 1u : 0u) + (net_due ? 1u : 0u);
        size_t pick = sim->cfg.strategy == TR_SIM_PCT && !sim->replaying
                          ? pct_pick(sys, n, due || net_due, options)
                          : (size_t)choose(sim, STREAM_SCHED, options);
        sim->steps++;
        if (pick == n && due) {
            tr__timers_advance(sys->timers, 0);
            note(sys, "fire pick %zu/%zu", pick, n);
        } else if (pick >= n) {
            char what[160];
            sim->net_run(sim->net, what, sizeof(what));
            note(sys, "net %s", what);
        } else {
            run_task(sys, tr__sched_sim_take(sys->sched, pick), pick, n);
        }
        return TR_OK;
    }
    if (net && (!timer || net_at < next) && net_at <= deadline) {
        /* The network's next event comes before any timer: move the clock
         * to it (it runs in a step of its own). */
        sim->steps++;
        jump(sys, net_at - now, "net");
        return TR_OK;
    }
    if (timer && next <= deadline) {
        uint64_t late = 0;
        if (sim->cfg.timer_late_max_ms != 0) {
            late = choose(sim, STREAM_TIME,
                          (uint64_t)sim->cfg.timer_late_max_ms * 1000u + 1) *
                   1000u;
        }
        sim->steps++;
        jump(sys, tr_sat_add(next, late) - now, "timer");
        return TR_OK;
    }
    if (deadline != TR_WAIT_FOREVER) {
        if (deadline > now) {
            sim->steps++;
            jump(sys, deadline - now, "deadline");
        }
        return TR_OK;
    }
    return TR_ESTUCK;
}

int
tr__sim_wait_step(tr_system *sys, uint64_t deadline_ns)
{
    return step(sys, deadline_ns);
}

void
tr__sim_net_set(tr_system *sys, tr_sim_net_next_fn next, tr_sim_net_run_fn run,
                void *net)
{
    sys->sim->net_next = next;
    sys->sim->net_run = run;
    sys->sim->net = net;
}

uint64_t
tr__sim_net_choose(tr_system *sys, uint64_t bound)
{
    return choose(sys->sim, STREAM_NET, bound);
}

const tr_sim_net *
tr__sim_net_config(const tr_system *sys)
{
    return &sys->sim->cfg.net;
}

/* tr_park's calls (common/tr_park.h): a standalone channel's wait on the
 * driving thread, outside handlers (a handler's wait is refused before it
 * gets here: tr__on_a_worker). */
static int
park_step(void *arg, uint64_t deadline_ns)
{
    int rc =
        step(arg, deadline_ns == UINT64_MAX ? TR_WAIT_FOREVER : deadline_ns);

    return rc == TR_OK ? 0 : rc == TR_ESTUCK ? TR_PARK_STUCK : -1;
}

static uint64_t
park_now(void *arg)
{
    tr_system *sys = arg;

    return tr__timers_now(sys->timers);
}

bool
tr__sim_on_driver(const tr_system *sys)
{
    return sys->sim == NULL || pthread_equal(pthread_self(), sys->sim->driver);
}

/* Swarm: the seed draws the fault mix and the timer lateness. */
static void
draw_swarm(tr_sim *sim)
{
    static const uint32_t ppm[] = {1000, 10000, 50000};
    static const uint32_t late[] = {0, 10, 100};
    tr_sim_faults *f = &sim->cfg.faults;
    uint32_t *knob[] = {&f->crash_ppm, &f->kill_ppm, &f->alloc_fail_ppm};

    for (size_t i = 0; i < sizeof(knob) / sizeof(knob[0]); i++) {
        /* Off half the time: faults that mask each other stay apart. */
        *knob[i] = choose(sim, STREAM_FAULT, 2) == 0
                       ? 0
                       : ppm[choose(sim, STREAM_FAULT, 3)];
    }
    sim->cfg.timer_late_max_ms = late[choose(sim, STREAM_TIME, 3)];
    /* Mailbox bounds, half the time, so that TR_EFULL and backpressure
     * paths run. Drawn last: a seed's fault mix stays what it was. */
    static const uint32_t caps[] = {1, 2, 8, 64};
    sim->swarm_cap = choose(sim, STREAM_SWARM, 2) == 0
                         ? 0
                         : caps[choose(sim, STREAM_SWARM, 4)];
}

uint32_t
tr__sim_swarm_mailbox_cap(const tr_system *sys)
{
    return sys->sim != NULL ? sys->sim->swarm_cap : 0;
}

/* PCT: the d - 1 change points, steps in [0, pct_steps), ascending. */
static void
draw_changes(tr_sim *sim)
{
    unsigned d = sim->cfg.pct_depth != 0 ? sim->cfg.pct_depth : 3;
    uint64_t k = sim->cfg.pct_steps != 0 ? sim->cfg.pct_steps : 1000;

    if (d > 16) {
        d = 16;
    }
    sim->nchanges = d - 1;
    for (unsigned i = 0; i < sim->nchanges; i++) {
        uint64_t v = tr__rand_below(&sim->streams[STREAM_PCT], k);
        unsigned j = i;
        for (; j > 0 && sim->change_at[j - 1] > v; j--) {
            sim->change_at[j] = sim->change_at[j - 1];
        }
        sim->change_at[j] = v;
    }
}

/* Every chance within its unit (a million parts, or a hundred percent)
 * and a strategy that exists: a chance past its unit would wrap the
 * draws that test it. */
static bool
config_valid(const tr_sim_config *cfg)
{
    const tr_sim_faults *f = &cfg->faults;
    const tr_sim_net *n = &cfg->net;

    return f->crash_ppm <= PPM && f->kill_ppm <= PPM &&
           f->alloc_fail_ppm <= PPM && f->point_pct <= 100 &&
           cfg->reorder_pct <= 100 && n->loss_ppm <= PPM &&
           n->reset_ppm <= PPM && n->partition_ppm <= PPM &&
           n->partition_reset_pct <= 100 &&
           (cfg->strategy == TR_SIM_RANDOM || cfg->strategy == TR_SIM_PCT);
}

int
tr__sim_create(tr_system *sys, const tr_sim_config *cfg)
{
    tr_sim *sim;
    int rc;

    if (!config_valid(cfg)) {
        return TR_EINVAL;
    }
    if ((sim = tr__calloc(sizeof(*sim))) == NULL) {
        return TR_ENOMEM;
    }
    sim->cfg = *cfg;
    sim->cfg.trace_path = NULL;
    sim->cfg.tape_path = NULL;
    sim->driver = pthread_self();
    sim->max_steps = cfg->max_steps != 0 ? cfg->max_steps : DEFAULT_MAX_STEPS;
    sim->fingerprint = FNV_OFFSET;
    for (unsigned i = 0; i < STREAMS; i++) {
        tr__rand_seed(&sim->streams[i], cfg->seed, i);
    }
    if (cfg->tape_path != NULL &&
        (rc = tape_load(sim, cfg->tape_path)) != TR_OK) {
        tr__free(sim, sizeof(*sim));
        return rc;
    }
    if (cfg->trace_path != NULL &&
        (sim->trace = fopen(cfg->trace_path, "w")) == NULL) {
        free(sim->replay);
        tr__free(sim, sizeof(*sim));
        return TR_ENOTFOUND;
    }
    if (cfg->swarm) {
        draw_swarm(sim);
    }
    /* The standalone channels' waits on this thread take steps. */
    const tr_park_sim park = {.sys = sys, .step = park_step, .now = park_now};
    sim->parked = tr__park_sim_attach(&park);
    if (cfg->strategy == TR_SIM_PCT) {
        draw_changes(sim);
    }
    sys->sim = sim;
    return TR_OK;
}

void
tr__sim_destroy(tr_system *sys)
{
    tr_sim *sim = sys->sim;

    if (sim == NULL) {
        return;
    }
    if (sim->parked) {
        tr__park_sim_detach(sys);
    }
    if (sim->trace != NULL) {
        fclose(sim->trace);
    }
    free(sim->tape);
    free(sim->replay);
    free(sim->prio);
    tr__free(sim, sizeof(*sim));
    sys->sim = NULL;
}

/* ---- public ---- */

/* TR_OK when the caller may take steps of `sys`: the driving thread,
 * outside every actor's callbacks (a step's, and an `init` its own spawn
 * runs, which holds the new actor's run-right). */
static int
may_step(tr_system *sys)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    if (sys->sim == NULL || !tr__sim_on_driver(sys) || tr__on_a_worker() ||
        tr__in_init()) {
        return TR_ESTATE;
    }
    return TR_OK;
}

int
tr_sim_step(tr_system *sys)
{
    int rc = may_step(sys);

    return rc == TR_OK ? step(sys, TR_WAIT_FOREVER) : rc;
}

int
tr_sim_run_until_idle(tr_system *sys)
{
    int rc = may_step(sys);

    while (rc == TR_OK) {
        rc = step(sys, TR_WAIT_FOREVER);
    }
    return rc == TR_ESTUCK ? TR_OK : rc;
}

int
tr_sim_run_for(tr_system *sys, uint64_t ms)
{
    int rc = may_step(sys);
    uint64_t deadline;

    if (rc != TR_OK) {
        return rc;
    }
    deadline = tr_sat_add(tr__timers_now(sys->timers), tr_ms_to_ns(ms));
    if (deadline == TR_WAIT_FOREVER) {
        deadline--; /* a step's deadline, not "none" */
    }
    for (;;) {
        uint64_t before = sys->sim->steps;
        /* Runs what can run, fires what is due until the deadline, then
         * moves the clock to it; a step that does nothing means done. */
        if ((rc = step(sys, deadline)) != TR_OK) {
            return rc == TR_ESTUCK ? TR_OK : rc;
        }
        if (sys->sim->steps == before) {
            return TR_OK;
        }
    }
}

int
tr_sim_stats_get(tr_system *sys, tr_sim_stats *out)
{
    tr_sim *sim;

    if (sys == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if ((sim = sys->sim) == NULL || !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    out->seed = sim->cfg.seed;
    out->steps = sim->steps;
    out->now_ns = tr__timers_now(sys->timers);
    out->choices = sim->tape_len;
    out->fingerprint = sim->fingerprint;
    out->tape_diverged = sim->diverged;
    out->quiesced = sim->quiesced;
    out->crashes = sim->crashes;
    out->kills = sim->kills;
    out->ooms = sim->ooms;
    out->points = sim->points;
    return TR_OK;
}

int
tr_sim_tape_save(tr_system *sys, const char *path)
{
    tr_sim *sim;

    if (sys == NULL || path == NULL) {
        return TR_EINVAL;
    }
    if ((sim = sys->sim) == NULL || !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    if (sim->tape_lost) {
        return TR_ENOMEM;
    }
    return tr__sim_tape_write(path, sim->cfg.seed, sim->tape, sim->tape_len);
}

int
tr_sim_crash_at(tr_system *sys, tr_addr who, uint64_t k)
{
    tr_sim *sim;

    if (sys == NULL || k == 0) {
        return TR_EINVAL;
    }
    if ((sim = sys->sim) == NULL || !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    if (sim->ntargets == MAX_TARGETS) {
        return TR_EFULL;
    }
    sim->targets[sim->ntargets].id = who.id;
    sim->targets[sim->ntargets].k = k;
    sim->ntargets++;
    return TR_OK;
}

bool
tr_sim_fault(tr_ctx *ctx, const char *name)
{
    tr_system *sys;
    tr_sim *sim;
    uint64_t h = FNV_OFFSET;
    unsigned i;

    if (ctx == NULL || name == NULL || (sys = ctx->sys) == NULL ||
        (sim = sys->sim) == NULL || sim->quiesced || !tr__sim_on_driver(sys)) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * FNV_PRIME;
    }
    for (i = 0; i < sim->npoints && sim->points_seen[i].hash != h; i++) {
    }
    if (i == sim->npoints) {
        if (i == MAX_POINTS) {
            return false; /* more points than a run tracks: never fires */
        }
        /* Activated for this run, or not: one point in four (FDB's
         * BUGGIFY rule), drawn when first met. */
        sim->points_seen[i].hash = h;
        sim->points_seen[i].active = choose(sim, STREAM_FAULT, 4) == 3;
        sim->npoints++;
    }
    uint32_t pct =
        sim->cfg.faults.point_pct != 0 ? sim->cfg.faults.point_pct : 25;
    /* The high values fire (0 is no fault, as in chance). */
    if (!sim->points_seen[i].active ||
        choose(sim, STREAM_FAULT, 100) < 100 - (pct < 100 ? pct : 100)) {
        return false;
    }
    sim->points++;
    return true;
}

int
tr_sim_quiesce(tr_system *sys)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    if (sys->sim == NULL || !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    sys->sim->quiesced = true;
    return TR_OK;
}

int
tr_sim_liveness_check(tr_system *sys, char *why, size_t cap)
{
    int rc = may_step(sys);
    char none[1];

    if (why == NULL || cap == 0) {
        why = none;
        cap = sizeof(none);
    }
    why[0] = '\0';
    if (rc != TR_OK) {
        return rc;
    }
    sys->sim->quiesced = true;
    while ((rc = step(sys, TR_WAIT_FOREVER)) == TR_OK) {
    }
    if (rc == TR_ETIMEDOUT) {
        snprintf(why, cap, "not idle after %" PRIu64 " steps (a livelock?)",
                 sys->sim->steps);
        return rc;
    }
    for (uint32_t i = 0; i < tr__table_len(sys->table); i++) {
        tr_actor *a = tr__table_at(sys->table, i);
        uint64_t gen = tr_load_relaxed(&a->gen);
        uint64_t queued = tr__lane_len(&a->sent, &a->taken);
        if (tr__gen_live(gen) && queued != 0) {
            snprintf(why, cap,
                     "actor %" PRIu32 ".%" PRIu64 " (%s) holds %" PRIu64
                     " messages it will never handle",
                     i, gen,
                     a->behaviour->name != NULL ? a->behaviour->name : "?",
                     queued);
            return TR_ESTUCK;
        }
    }
    if (sys->sim->calls_open != 0) {
        /* Idle, so no timer will end them: held reply handles nobody
         * answers (a call with a timeout has its timer pending). */
        snprintf(why, cap,
                 "%" PRIu64 " calls will never end (idle, and no timeout "
                 "pending for them)",
                 sys->sim->calls_open);
        return TR_ESTUCK;
    }
    if (tr_load_acq(&sys->gave_up) != 0) {
        snprintf(why, cap, "a supervision tree gave up");
        return TR_EFAILED;
    }
    return TR_OK;
}

void
tr__sim_calls_open(tr_system *sys, int d)
{
    /* The driving thread's: a simulated system runs only there. */
    sys->sim->calls_open += (uint64_t)(int64_t)d;
}

int
tr_sim_sometimes(tr_ctx *ctx, const char *name, bool cond)
{
    tr_system *sys;
    tr_sim *sim;
    unsigned i;

    if (ctx == NULL || name == NULL || (sys = ctx->sys) == NULL) {
        return TR_EINVAL;
    }
    if ((sim = sys->sim) == NULL || !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    for (i = 0; i < sim->nsometimes &&
                strncmp(sim->sometimes[i].name, name,
                        sizeof(sim->sometimes[i].name) - 1) != 0;
         i++) {
    }
    if (i == sim->nsometimes) {
        if (i == TR_SIM_SOMETIMES_MAX) {
            return TR_EFULL;
        }
        snprintf(sim->sometimes[i].name, sizeof(sim->sometimes[i].name), "%s",
                 name);
        sim->sometimes[i].reached = 1;
        sim->nsometimes++;
    }
    /* Within one run: held at least once. */
    if (cond) {
        sim->sometimes[i].held = 1;
    }
    return TR_OK;
}

unsigned
tr__sim_sometimes_get(tr_system *sys, const tr_sim_sometimes_count **out)
{
    if (sys == NULL || sys->sim == NULL) {
        *out = NULL;
        return 0;
    }
    *out = sys->sim->sometimes;
    return sys->sim->nsometimes;
}
