/*
 * The worker pool: N threads, a local run queue and a LIFO slot each, a
 * shared inject queue, batch stealing, and parking on event counts. It runs
 * tr_task objects and knows nothing of actors. See sched.c.
 */
#ifndef TR_SCHEDULER_SCHED_H
#define TR_SCHEDULER_SCHED_H

#include "scheduler/runq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A plain thread's push that leaves more tasks than this in the inject
 * queue wakes a worker even while one counts as searching (sched.c). */
enum { TR_INJECT_WAKE = 256 };

typedef struct tr_sched tr_sched;
typedef struct tr_worker tr_worker;

/* Runs task `t` on worker `w`; `arg` is the one given to create. */
typedef void (*tr_run_fn)(void *arg, tr_worker *w, tr_task *t);

/*
 * Create a pool of `n` workers (0: one per online CPU), each with
 * `local_size` zeroed bytes of caller data (tr__worker_data). Threads start
 * with tr__sched_start.
 */
int tr__sched_create(unsigned n, size_t local_size, tr_run_fn run, void *arg,
                     tr_sched **out);

/* Start the threads; they park until work arrives. */
int tr__sched_start(tr_sched *s);

/*
 * Make `t` runnable. On one of this pool's workers it goes to that worker
 * (its LIFO slot: run next); from any other thread to the inject queue.
 */
void tr__sched_submit(tr_sched *s, tr_task *t);

/*
 * Worker `w` only, at the end of a task's run: the task in its LIFO slot,
 * taken and counted as the worker's loop would take it, so that the run
 * function can go straight on to it; NULL when the loop must choose (the
 * slot is empty, the inject queue's turn or the LIFO cap has come, or
 * this is a simulation). The loop looks at `stopping` on the inject
 * queue's turn, so a stopping pool runs at most INJECT_EVERY more tasks a
 * worker.
 */
tr_task *tr__sched_next_lifo(tr_worker *w);

/*
 * Worker `w` only: the task it runs found `n` messages waiting behind the
 * first it handled. The watchdog tells loose work from coupled work by it:
 * a worker busy a whole look whose runs seldom find such batches may have
 * its queue shared with an idle worker (see sched.c).
 */
void tr__sched_note_batch(tr_worker *w, uint64_t n);

/* Worker `w` only (or a test standing in for the owner of a pool not
 * started): put `t` at the back of its own queue (fairness); what a full
 * ring hands back goes to the inject queue. */
void tr__sched_requeue(tr_worker *w, tr_task *t);

/* Stop and join the threads. Tasks still queued are not run. */
void tr__sched_stop(tr_sched *s);

/* Free the pool (after stop). */
void tr__sched_destroy(tr_sched *s);

/* The calling thread's worker if it belongs to `s`, else NULL. */
tr_worker *tr__sched_current(const tr_sched *s);

unsigned tr__sched_workers(const tr_sched *s);

/* Worker `i`'s data, for reading from any thread (sums of counters). */
void *tr__sched_worker_data(tr_sched *s, unsigned i);

void *tr__worker_data(tr_worker *w);
unsigned tr__worker_index(const tr_worker *w);

/*
 * What inspection reads of worker `i` (any thread; owner-written relaxed
 * counters, each a moment old). Busy time is the time since the thread
 * began that it did not spend asleep in a park.
 */
typedef struct tr_worker_stats {
    uint32_t runs;    /* tasks started (wraps) */
    tr_task *current; /* the task started last (may have ended) */
    bool parked;      /* asleep now */
    uint64_t parks;   /* sleeps */
    uint64_t steals;  /* successful steals from other workers */
    uint64_t parked_ns;
    uint64_t busy_ns;
    uint32_t runq_len; /* its run queue and LIFO slot */
} tr_worker_stats;
void tr__sched_worker_stats(tr_sched *s, unsigned i, uint64_t now_ns,
                            tr_worker_stats *out);
/* Tasks in the inject queue (a moment old). */
size_t tr__sched_inject_len(tr_sched *s);

/*
 * Simulation (actors/sim.c). A pool of one worker that is never started:
 * the driving thread runs its tasks itself, one at a time, as worker 0.
 * Gather moves every task made runnable since the last gather (worker 0's
 * ring and LIFO slot, then the inject queue) to the end of the runnable
 * list and returns the list's length; take removes the `i`-th task of the
 * list (`i` below the length); run runs `t` on the calling thread as
 * worker 0, with `fn` in place of the pool's run function unless NULL. Driving
 * thread only.
 */
size_t tr__sched_sim_gather(tr_sched *s);
tr_task *tr__sched_sim_take(tr_sched *s, size_t i);
/* The runnable list's first task (`prev` NULL) or the one after `prev`. */
tr_task *tr__sched_sim_at(tr_sched *s, tr_task *prev);
void tr__sched_sim_run(tr_sched *s, tr_task *t, tr_run_fn fn);

/*
 * For tests, which drive the pieces of the scheduler directly. Worker `i`
 * of `s`; its local run queue (only its owner, or a test thread standing
 * in for the owner of a pool not started, may push and pop it); the inject
 * queue's pop for `w` (owner only: one task to run, and up to a batch more
 * moved into `w`'s queue); whether worker `i` is parked and about to
 * sleep or asleep on its event count; one look of the watchdog (of a pool
 * not started: the test is the watchdog); whether worker `i` is behind
 * on its queue (a task queued a look ago still waits).
 */
tr_worker *tr__sched_worker(tr_sched *s, unsigned i);
tr_runq *tr__worker_runq(tr_worker *w);
tr_task *tr__worker_inject_pop(tr_worker *w);
bool tr__sched_worker_asleep(tr_sched *s, unsigned i);
void tr__sched_watchdog_look(tr_sched *s, uint64_t now_ns);
/* The watchdog's time to its next look, in ms (it backs off while its
 * looks find nothing to mark; see sched.c). */
unsigned tr__sched_watchdog_ms(const tr_sched *s);
bool tr__sched_behind(tr_sched *s, unsigned i);
/* Whether an idle worker may take from worker `i`'s queue now; and
 * `runs` task starts and `dry` times out of work counted on `w`, as its
 * loop counts them (a test standing in for the owner of a pool not
 * started). */
bool tr__sched_stealable(tr_sched *s, unsigned i);
void tr__sched_count(tr_worker *w, uint32_t runs, uint64_t dry);
/* A wakeup the OS holds back: worker `i`, parked, is taken out of the
 * idle set and counted as searching, as a waker does, but not woken (false
 * when it was not parked); and the wakeup arriving at last. */
bool tr__sched_wake_held(tr_sched *s, unsigned i);
void tr__sched_wake_release(tr_sched *s, unsigned i);

#endif /* TR_SCHEDULER_SCHED_H */
