/*
 * Simulation: a whole system run from a seed, on the calling thread, one
 * step at a time, on a virtual clock.
 *
 * A system started with `tr_system_config.sim` set has no worker threads
 * and no timer thread. The thread that started it (the driving thread)
 * runs it: a step runs one runnable actor for one batch of messages, or
 * fires the timers that are due, or, when nothing can run, moves the
 * virtual clock to the next timer's deadline (a timer set an hour ahead
 * fires at once, in wall time). Which actor runs, how many messages its
 * batch holds and how late a timer fires are drawn from a seeded generator
 * of troupe's own, so a seed replays the same run on every platform.
 *
 * The choices a simulation makes are exactly the freedoms troupe's
 * guarantees leave; it never breaks these rules:
 *  - R1: the messages one sender sends one receiver are handled in the
 *    order they were sent; between senders the order is free
 *    (`reorder_pct` takes another sender's oldest message first);
 *  - R2: at a receiver, control messages (stop requests, exits, DOWN
 *    messages, replies, timer messages) go before user messages;
 *  - R3: a timer never fires before its deadline (it may fire up to
 *    `timer_late_max_ms` after it), and the ticks of an interval timer
 *    come in order;
 *  - R4: one handler of an actor runs at a time;
 *  - R5: a message sent to an incarnation that has ended is a dead letter,
 *    never handled by a later incarnation of the same slot;
 *  - R6: every accepted call ends exactly once: replied, failed, timed out
 *    or closed.
 * Where the documentation was silent the simulation decides so: a DOWN or
 * exit signal may overtake user messages its sender sent before it ended
 * (the lanes are separate, R1 holds per lane); timers due at the same time
 * fire in the order they were armed; a plain thread's sends count as one
 * sender (there is one plain thread: the driving thread).
 *
 * Blocking calls. On the driving thread, every call that would wait
 * (tr_ask_wait, tr_actor_wait, tr_system_wait, tr_send_wait on a full
 * mailbox, the supervisor's `_wait` calls, tr_system_shutdown) runs steps
 * instead, until its condition holds or its deadline passes on the virtual
 * clock. When nothing can run, no timer is pending and the call has no
 * deadline, it returns TR_ESTUCK: in a real system it would wait for
 * ever. The standalone channels' waits (tr_mailbox_recv_wait,
 * tr_oneshot_recv_wait, tr_broadcast_recv_wait, tr_watch_changed_wait) do
 * the same on the driving thread of a simulated system (the latest it
 * started, when it drives several). From any other thread such calls return
 * TR_ESTATE; other threads must not use a simulated system at all (what they
 * send makes the run depend on the thread scheduler).
 *
 * Network. In a simulated system the TCP calls of troupe/io.h work on an
 * in-memory network instead of sockets, with the semantics the real
 * backend documents (framing, buffering, backpressure, pause, give,
 * timeouts on the virtual clock, every TR_IO_* event and end reason).
 * Every network event (a segment of bytes arriving, a connection
 * accepted or refused, a reset, a partition healing) is a step of its own
 * at a virtual time, drawn from the seed (`tr_sim_net`). Hosts: a
 * listener lives on the host its address names (NULL, "", "0.0.0.0" and
 * "::" listen on every host), a connection reaches the listener of the
 * host and port it dials (or a listener on every host), and each
 * connecting actor is a client host of its own ("client-N", N its slot).
 * A partition cuts a client host from a server host. Unix-domain sockets
 * and tr_io_watch are refused with TR_ESTATE in simulation (there is no
 * descriptor to watch).
 *
 * Determinism. A run depends on nothing but its seed (or its tape) and
 * what the program does: not on pointer values, the wall clock, hash order
 * or thread identity. Addresses are deterministic (their node word is
 * drawn from the seed). The program's own handlers must be deterministic
 * too (no time(), rand() or threads of their own); tr_sim_trace_diff
 * finds the first step where two runs of one seed part.
 */
#ifndef TROUPE_SIM_H
#define TROUPE_SIM_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How a simulation chooses the next actor to run. */
typedef enum tr_sim_strategy {
    /* A uniformly random runnable actor (or the due timers) each step. */
    TR_SIM_RANDOM = 0,
    /* PCT (Burckhardt et al., ASPLOS 2010): every actor gets a random
     * priority when first seen, the highest-priority runnable actor runs
     * (due timers first), and at d - 1 random steps the actor that runs
     * drops below all others; finds a bug of depth d with probability at
     * least 1/(n k^(d-1)) per run (n actors, k steps). */
    TR_SIM_PCT = 1
} tr_sim_strategy;

/**
 * Faults a simulation injects, drawn from the seed; zero for every field
 * means none. Chances are in parts per million of the steps that run an
 * actor (a step draws at most one of crash, kill and allocation failure,
 * in that order). Faults stop at the quiesce point.
 */
typedef struct tr_sim_faults {
    /* The handler of one of the run's first messages fails: its result
     * becomes TR_EFAILED ("simulated crash"), as if it had returned it
     * (a call it handled ends TR_EFAILED, the actor fails, its supervisor
     * decides). Never a supervisor (faults strike the program's actors). */
    uint32_t crash_ppm;
    /* The actor is killed before its run: it ends TR_EXIT_KILLED without
     * its `stop` (as a supervisor's brutal kill). Never a supervisor. */
    uint32_t kill_ppm;
    /* The runtime's allocations in the step fail from a drawn one on
     * (TR_ENOMEM where they are made). The allocator's test hook is
     * process-wide: simulate one system at a time when this is set. */
    uint32_t alloc_fail_ppm;
    /* The chance, in percent, that an activated tr_sim_fault point fires
     * when it is reached (0: 25). A point is activated for the whole run,
     * or not, from the seed and its name (one in four). */
    uint32_t point_pct;
    /* Faults stop from this step on (0: only tr_sim_quiesce stops them). */
    uint64_t quiesce_step;
} tr_sim_faults;

/**
 * The simulated network of a simulated system (tr_sim_config.net); zero
 * for every field means its default. Chances are in parts per million of
 * the segments delivered. A stream never loses bytes silently: a lost
 * segment is sent again (it arrives `rto_ms` later), and the faults that
 * end a stream end it as a reset, which both ends hear (TR_IO_END_RESET).
 */
typedef struct tr_sim_net {
    /* One-way latency of each segment, drawn in [latency_min_ms,
     * latency_max_ms] (0, 0: 1 ms each; a max below the min is the min).
     * A segment never overtakes an earlier one of its stream. */
    uint32_t latency_min_ms;
    uint32_t latency_max_ms;
    /* A segment is lost and sent again after `rto_ms` (0: 200). */
    uint32_t loss_ppm;
    uint32_t rto_ms;
    /* A data segment resets its connection instead of arriving. */
    uint32_t reset_ppm;
    /* A segment starts a partition between its two hosts, lasting a drawn
     * [1, partition_max_ms] (0: 2000) ms: segments and connects between
     * them wait (a connect times out by its own timeout), and when it
     * heals each connection across it is reset, by a chance of
     * `partition_reset_pct` percent, or goes on where it stopped. */
    uint32_t partition_ppm;
    uint32_t partition_max_ms;
    uint32_t partition_reset_pct;
    /* Bytes one direction of a connection holds (in flight and unread by
     * the receiver) before a write waits, as a kernel's buffers would
     * (0: 65536). */
    uint32_t window;
} tr_sim_net;

/** How a system is simulated (tr_system_config.sim); zero means default. */
typedef struct tr_sim_config {
    /* The run's seed: every choice follows from it. */
    uint64_t seed;
    /* The chance, in percent, that a run begins with a message of another
     * sender than the oldest message's: the oldest message of a sender
     * drawn among the others queued before the newest (never past a
     * tr_actor_close marker, and never breaking one sender's order). 0:
     * each mailbox is handled in arrival order. */
    uint32_t reorder_pct;
    /* A timer may fire up to this many milliseconds after its deadline,
     * drawn per jump of the clock (never before it). 0: on time. */
    uint32_t timer_late_max_ms;
    /* Virtual time one step that runs an actor costs, drawn in
     * [0, step_cost_max_us] microseconds, so that timeouts race with
     * work. 0: work takes no time (the clock moves only when idle). */
    uint32_t step_cost_max_us;
    /* The step budget of the run: once spent, steps and blocking calls
     * return TR_ETIMEDOUT (a livelock guard). 0: 10,000,000. */
    uint64_t max_steps;
    /* When non-NULL, one line per step is written to this file (the step
     * trace; see tr_sim_trace_diff). */
    const char *trace_path;
    /* When non-NULL, the run replays the choices recorded in this file
     * (tr_sim_tape_save) instead of drawing them, whatever the strategy;
     * past its end every choice is 0 (the simplest), and a choice that no
     * longer fits is folded in (tr_sim_stats.tape_diverged). Replay with
     * the configuration that recorded it (swarm and faults included). */
    const char *tape_path;
    /* Faults to inject (all zero: none). */
    tr_sim_faults faults;
    /* How the next actor to run is chosen. */
    tr_sim_strategy strategy;
    /* PCT: the bug depth d (0: 3), and the run length in steps the d - 1
     * priority change points are drawn over (0: 1000). */
    unsigned pct_depth;
    uint64_t pct_steps;
    /* Swarm testing: the seed also draws the fault mix (each of crash,
     * kill and allocation failure on or off, and how often), the
     * timer lateness, and, half the time, a mailbox bound (1, 2, 8 or
     * 64) for the actors tr_spawn starts without one, replacing `faults`
     * (except quiesce_step and point_pct) and `timer_late_max_ms`, so
     * that a batch of seeds covers many configurations. */
    bool swarm;
    /* The simulated network (troupe/io.h in simulation). */
    tr_sim_net net;
} tr_sim_config;

/** Where a simulation stands (tr_sim_stats_get). */
typedef struct tr_sim_stats {
    uint64_t seed;
    uint64_t steps;       /* steps taken */
    uint64_t now_ns;      /* the virtual clock */
    uint64_t choices;     /* choices made (the tape's length) */
    uint64_t fingerprint; /* hash of the step trace so far */
    /* A replayed tape no longer fitted the run (choices past its end are
     * not counted). */
    bool tape_diverged;
    bool quiesced;    /* faults have stopped */
    uint64_t crashes; /* handlers failed by a fault (drawn or targeted) */
    uint64_t kills;   /* actors killed by a fault */
    uint64_t ooms;    /* steps whose allocations failed */
    uint64_t points;  /* tr_sim_fault points that fired */
} tr_sim_stats;

/**
 * Take one step: run one runnable actor for one batch, or fire the timers
 * that are due, or, when nothing can run, move the virtual clock to the
 * next deadline (plus the drawn lateness) and fire it.
 *
 * Ownership: borrows `sys`.
 * Context:   the driving thread of a simulated system, outside handlers.
 * Returns:   TR_OK when a step was taken; TR_ESTUCK when nothing can run
 *            and no timer is pending (the system is idle); TR_ETIMEDOUT
 *            when the step budget is spent; TR_EINVAL if `sys` is NULL;
 *            TR_ESTATE if `sys` is not simulated, or from another thread or
 *            a handler.
 */
TR_API int tr_sim_step(tr_system *sys);

/**
 * Take steps until nothing can run and no timer is pending.
 *
 * Ownership: borrows `sys`.
 * Context:   as tr_sim_step.
 * Returns:   TR_OK when the system is idle; TR_ETIMEDOUT when the step
 *            budget ran out first (a livelock, or an interval timer that
 *            is never cancelled); TR_EINVAL; TR_ESTATE as tr_sim_step.
 */
TR_API int tr_sim_run_until_idle(tr_system *sys);

/**
 * Take steps for `ms` milliseconds of virtual time: everything that can
 * run and every timer due until then, then the clock at now + `ms` (for a
 * system that is never idle, such as one with an interval timer).
 *
 * Ownership: borrows `sys`.
 * Context:   as tr_sim_step.
 * Returns:   TR_OK; TR_ETIMEDOUT when the step budget ran out first;
 *            TR_EINVAL; TR_ESTATE as tr_sim_step.
 */
TR_API int tr_sim_run_for(tr_system *sys, uint64_t ms);

/**
 * Read where the simulation stands: seed, steps, virtual time, choices,
 * and the fingerprint of the step trace, a hash that depends on the seed
 * (and the program) only.
 *
 * Ownership: borrows `sys`; writes `*out`.
 * Context:   the driving thread (the simulation's fields are its own).
 * Returns:   TR_OK; TR_EINVAL if an argument is NULL; TR_ESTATE if `sys`
 *            is not simulated or the caller is not its driving thread.
 */
TR_API int tr_sim_stats_get(tr_system *sys, tr_sim_stats *out);

/**
 * Write the choices the run made so far (its tape) to `path`: a run
 * started with the same program and `tape_path` set to it makes the same
 * choices, whatever its seed.
 *
 * Ownership: borrows `sys` and `path`.
 * Context:   the driving thread.
 * Returns:   TR_OK; TR_EINVAL if an argument is NULL; TR_ESTATE if `sys`
 *            is not simulated or the caller is not its driving thread;
 *            TR_ENOMEM if the tape could not be recorded whole; TR_EIO if
 *            the file could not be written.
 */
TR_API int tr_sim_tape_save(tr_system *sys, const char *path);

/**
 * Compare two step traces (trace_path files): the first step at which
 * they differ, or 0 when they are the same.
 *
 * Ownership: borrows `a`, `b`; writes `*step` and, when `line` is not
 * NULL, the first differing line of `a` (or "(end)") into `line` (`cap`
 * bytes, cut to fit).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL if `a`, `b` or `step` is NULL; TR_ENOTFOUND
 *            if a file cannot be read.
 */
TR_API int tr_sim_trace_diff(const char *a, const char *b, uint64_t *step,
                             char *line, size_t cap);

/**
 * Make the handler of the `k`-th user message (from 1) that incarnation
 * `who` handles fail, as a crash fault does; a regression test's way to
 * replay one fault without its seed. Fires once; before the quiesce point
 * only.
 *
 * Ownership: borrows `sys`.
 * Context:   the driving thread.
 * Returns:   TR_OK; TR_EINVAL if `sys` is NULL or `k` is 0; TR_ESTATE if
 *            `sys` is not simulated or the caller is not its driving
 *            thread; TR_EFULL when 16 are armed already.
 */
TR_API int tr_sim_crash_at(tr_system *sys, tr_addr who, uint64_t k);

/**
 * A fault point of the program's own: true when the simulation decides
 * that the fault named `name` happens here and now; the caller then takes
 * its failure path (drops a message, returns an error...). Always false
 * outside simulation and after the quiesce point, so it may stay in
 * production code.
 *
 * Ownership: borrows `name` for the call (points are told apart by the
 *            text, never by its address).
 * Context:   a handler, or the driving thread's context.
 * Returns:   whether the fault fires.
 */
TR_API bool tr_sim_fault(tr_ctx *ctx, const char *name);

/**
 * The quiesce point: faults stop from now on, so that what the program
 * promises to reach once they stop (liveness) can be checked.
 *
 * Ownership: borrows `sys`.
 * Context:   the driving thread.
 * Returns:   TR_OK; TR_EINVAL if `sys` is NULL; TR_ESTATE if `sys` is not
 *            simulated or the caller is not its driving thread.
 */
TR_API int tr_sim_quiesce(tr_system *sys);

/**
 * Quiesce, run until idle, and check that the system settled: the run
 * reached idle within its step budget, no live actor holds user messages
 * it will never handle (nothing can run any more), every call accepted
 * has ended (idle, a call still open has no timer to end it: a reply
 * handle an actor keeps and will never answer), and no top-level
 * supervision tree gave up (its permanent children would not run).
 *
 * Ownership: borrows `sys`; writes the first problem into `why` (`cap`
 *            bytes; may be NULL).
 * Context:   the driving thread.
 * Returns:   TR_OK when it settled; TR_ETIMEDOUT when the step budget ran
 *            out (a livelock); TR_ESTUCK when an actor holds messages or
 *            a call will never end; TR_EFAILED when a supervision tree
 *            gave up; TR_EINVAL; TR_ESTATE as tr_sim_step.
 */
TR_API int tr_sim_liveness_check(tr_system *sys, char *why, size_t cap);

/** The body of a simulated test: the scenario, on a started system.
 * Returns 0 when the run passed; anything else is a failure. */
typedef int (*tr_sim_body_fn)(tr_system *sys, void *arg);

/** Options of tr_sim_check; zero means default. */
typedef struct tr_sim_check_opts {
    /* Names the test in what is printed (NULL: "sim"). */
    const char *name;
    /* The seeds tried: first_seed, first_seed + 1, ... (`seeds` of them;
     * 0: TROUPE_SIM_SEEDS from the environment, or 100). The environment
     * TROUPE_SIM_BASE=N adds N to first_seed (CI runs each commit's own
     * seeds so), TROUPE_SIM_SEED=N runs that seed alone,
     * TROUPE_SIM_TAPE=FILE replays that tape alone. */
    uint64_t first_seed;
    unsigned seeds;
    /* The system each run starts with (its `sim` is replaced). */
    tr_system_config system;
    /* The simulation of each run (its seed and tape are replaced). */
    tr_sim_config sim;
    /* Where a failing run's tape is written (DIR/NAME-SEED.tape);
     * NULL: TROUPE_SIM_OUT from the environment, or the current
     * directory. */
    const char *tape_dir;
    /* Print nothing on failure. */
    bool quiet;
    /* Do not shrink a failing run's tape (tr_sim_shrink). */
    bool no_shrink;
    /* The most runs a shrink may take (0: 500). */
    unsigned shrink_runs;
    /* The determinism check: every recheck_every-th seed (the first, then
     * every n-th) runs twice more and must take the same steps (0:
     * TROUPE_SIM_RECHECK from the environment, or never). A seed that does
     * not fails the check. */
    unsigned recheck_every;
    /* The determinism recheck runs the seed again in a fresh process of
     * this program instead of in this one: the program is started again
     * with its arguments and TROUPE_SIM_CHILD=NAME:SEED:TRACE in its
     * environment, in which tr_sim_check runs only the check named NAME,
     * on SEED, tracing into TRACE, and exits; every other tr_sim_check
     * returns TR_OK at once. So the program must reach its checks with
     * nothing else to do on the way (a main that only runs checks). The
     * traces of the two processes are compared, and the first step where
     * they part is named. */
    bool recheck_exec;
    /* When not NULL, what the check did is written here (tr_sim_report). */
    struct tr_sim_report *report;
} tr_sim_check_opts;

/** What tr_sim_shrink did. */
typedef struct tr_sim_shrink_stats {
    uint64_t choices_before; /* the tape's length */
    uint64_t choices_after;
    uint64_t weight_before; /* the sum of its choices */
    uint64_t weight_after;
    unsigned runs; /* runs of the body it took */
} tr_sim_shrink_stats;

/**
 * Run `body` once per seed, each time on a fresh simulated system that is
 * shut down after it, until a run fails, then check the "sometimes"
 * properties the runs declared (tr_sim_sometimes). A failing run prints (to
 * stderr) its seed, its step count and fingerprint, a one-line command that
 * reruns it (TROUPE_SIM_SEED=N PROGRAM) and the file its tape was saved to
 * (TROUPE_SIM_TAPE=FILE PROGRAM replays it), and a JSON snapshot of the tree as
 * the body left it (DIR/NAME-SEED.json); it runs the seed again with a step
 * trace (DIR/NAME-SEED.trace) and says whether that run took the same steps
 * (when not, a third run names the step where they part); then, unless
 * `no_shrink`, it shrinks the tape (tr_sim_shrink) into DIR/NAME-SEED.min.tape
 * and prints that too.
 *
 * Ownership: borrows `opts` (NULL for defaults), `arg` is passed to
 *            `body`; writes `*failed_seed` when a run fails.
 * Context:   a plain thread (it becomes each run's driving thread).
 * Returns:   TR_OK when every run passed; TR_EFAILED when one failed,
 *            or a seed failed the determinism check (`*failed_seed` says
 *            which); TR_ENOTFOUND when every run passed but a "sometimes"
 *            property never held in any (it is printed; checks of more
 *            than one seed only); TR_EINVAL if `body` is NULL; an
 *            error of tr_system_start.
 */
TR_API int tr_sim_check(const tr_sim_check_opts *opts, tr_sim_body_fn body,
                        void *arg, uint64_t *failed_seed);

/**
 * Shrink a failing run: from the choices on `tape`, find a shorter and
 * simpler tape on which `body` fails the same way (returns the same
 * value), and write it to `out`. It deletes runs of choices (halves, then
 * quarters, ... then single ones) and lowers each choice towards 0, the
 * simplest (past a tape's end every choice is 0: the oldest runnable
 * actor, a batch of one, a timer on time, no fault), keeping each change
 * that still fails, until none does or `shrink_runs` runs are spent.
 *
 * Ownership: borrows `opts` (its system and sim settings are used; the
 *            seed does not matter under a tape), `tape`, `out`; writes
 *            `*stats` (may be NULL).
 * Context:   a plain thread (it becomes each run's driving thread).
 * Returns:   TR_OK (`out` written; it may be the tape itself, unshrunk);
 *            TR_EINVAL if `body`, `tape` or `out` is NULL, or if the run
 *            on `tape` does not fail; TR_ENOTFOUND if `tape` cannot be
 *            read; TR_EIO if `out` cannot be written; TR_ENOMEM.
 */
TR_API int tr_sim_shrink(const tr_sim_check_opts *opts, tr_sim_body_fn body,
                         void *arg, const char *tape, const char *out,
                         tr_sim_shrink_stats *stats);

/* ---- "sometimes" properties and the check's report ---- */

/**
 * Declare a "sometimes" property named `name` and say whether it holds
 * here: a state the test means to reach on some seeds (a restart
 * happened, two transfers interleaved). tr_sim_check counts, across its
 * seeds, the runs that reached the property and those in which it held at
 * least once, and fails the check (TR_ENOTFOUND) when one was reached but
 * never held: the seeds never explored what the test is about. A check of
 * one seed (a replay) gives no such verdict; a property never reached is
 * not known to the check at all. Outside simulation it does nothing.
 *
 * Ownership: borrows `name` (properties are told apart by the text, up to
 *            63 bytes, never by its address).
 * Context:   a handler, or the driving thread's context (tr_system_ctx).
 * Returns:   TR_OK; TR_EINVAL if `ctx` or `name` is NULL; TR_ESTATE
 *            outside simulation or from another thread; TR_EFULL when the
 *            run has 32 properties already (this one is not counted).
 */
TR_API int tr_sim_sometimes(tr_ctx *ctx, const char *name, bool cond);

/** One "sometimes" property as tr_sim_check counted it. */
typedef struct tr_sim_sometimes_count {
    char name[64];
    unsigned reached; /* runs that declared it */
    unsigned held;    /* runs in which it held at least once */
} tr_sim_sometimes_count;

/** What tr_sim_check did (tr_sim_check_opts.report). */
typedef struct tr_sim_report {
    /* Seeds run (a failing one included; the reruns of a failure, its
     * shrink and the determinism rechecks not). */
    unsigned seeds_run;
    /* Wall-clock time those runs took, in nanoseconds. */
    uint64_t wall_ns;
    /* A run failed: its seed, and its tape's shrink (when `shrunk`). */
    bool failed;
    uint64_t failed_seed;
    bool shrunk;
    tr_sim_shrink_stats shrink;
    /* Determinism rechecks made (in a fresh process with
     * `recheck_exec`). */
    unsigned rechecks;
    /* The "sometimes" properties declared over the seeds (the first 32). */
    unsigned nsometimes;
    tr_sim_sometimes_count sometimes[32];
} tr_sim_report;

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_SIM_H */
