/*
 * The worker pool.
 *
 * Each worker runs tasks from, in order: its LIFO slot (the task the
 * running task just made runnable: ping-pong stays on one core with no
 * queue traffic; capped at LIFO_CAP runs in a row while tasks are queued,
 * so two tasks cannot starve the rest), its local run queue, the inject
 * queue, and other workers' queues (stealing half of what they hold, but
 * only from a worker that is behind, see below). Every INJECT_EVERY tasks
 * it looks at the inject queue first, so work from plain threads is never
 * starved by local work. A run that leaves a task in the LIFO slot goes
 * straight on to it when the loop would pick it anyway
 * (tr__sched_next_lifo), without the trip through the loop.
 *
 * Stealing only from workers that are behind. Tasks that send each other
 * messages run fastest on one core: moved apart, every message crosses
 * between caches, and two workers then do less than one did (a producer
 * and its consumer, four clients of one server, a publisher and its
 * subscribers). So a worker keeps what it queues for as long as it keeps
 * up, and a thief takes from its queue only when the owner is behind: some
 * task has waited a whole watchdog look (WATCHDOG_MS) and is still queued
 * (`backlog`), or the owner is stuck in one long task (`stalled`). Work
 * that is really more than one core can do (a fan-out of a million spawns,
 * four handlers that compute) is behind within a look and spreads as
 * before; a ring that overflows spreads at once, through the inject queue.
 * The price is up to a look of latency before a second core helps.
 *
 * Loose work. A worker can keep up in that sense and still have more than
 * one core's work: eight independent ping-pong pairs each wait a few
 * microseconds in its queue, never a look, and a second core would double
 * their rate. So a thief may also take from a worker that the watchdog saw
 * busy for a whole look (it never ran out of work: `dry` did not move)
 * with tasks queued, whose runs seldom found messages waiting behind
 * their first (tr__sched_note_batch; fewer such messages than one per
 * LOOSE_BATCHED runs). Batches are what coupled work looks like from here: a
 * producer runs ahead of its consumer, callers queue on one server, a dealer
 * fills its workers' mailboxes; split across cores, each of their messages
 * would cross. Runs of one message each that wake the next are chains of
 * work that share nothing with their neighbours in the queue. The mark
 * (`loose`) holds until the worker next runs out of work, or until a look
 * sees its runs find batches.
 *
 * A loose mark is tried (loose_verdict). Runs that find no batches can
 * still be coupled work: four clients of one server each find one reply
 * a run, and a thief that takes a client wakes the server on its own
 * core, where every message then crosses. So a mark made while some
 * worker has time to spare must raise the pool's rate, measured by the
 * watchdog (runs and batched messages over time), by a third of the
 * marked worker's own within LOOSE_TRIAL looks; if it does not, the mark
 * is taken back and the worker is held unmarked for a time that doubles
 * with every trial that fails in a row (LOOSE_HOLD_MS to
 * LOOSE_HOLD_MAX_MS). What a failed trial moved is not moved back: coupled
 * work regroups by itself, as a message wakes its receiver on the
 * sender's worker.
 *
 * Parking. Wakeups cost more than messages, so a worker is woken only when
 * work appears that nobody is looking for: when no worker is searching and
 * some are parked (tokio's and Go's rule). A woken worker is "searching";
 * at most half the pool searches at once; a searcher that finds work and was
 * the last searcher wakes one more, so wakeups chain only while there is
 * surplus work.
 *
 * Lost wakeups. A worker about to park publishes itself in the idle set
 * (nidle, seq_cst), then re-checks every queue. A thread that makes work
 * available publishes the work, then reads nidle and nsearching. For the
 * inject queue both sides are sequentially consistent, so one of them sees
 * the other: no task from a plain thread can be stranded while all workers
 * sleep. For a worker's own queue and LIFO slot the check is relaxed, and
 * placing a task in the LIFO slot wakes nobody (a futex wake per message
 * would cost more than the message): the owner itself is awake and will
 * run the task, so a miss costs parallelism, not liveness, as long as the
 * owner's current task ends soon.
 *
 * The watchdog bounds that cost when it does not (Go's sysmon). Every owner
 * counts the tasks it starts (`runs`, a relaxed store). A watchdog thread
 * looks every WATCHDOG_MS: a worker whose count has not moved since the last
 * look, and that holds a LIFO task or queued tasks, is stuck in one long
 * task. The watchdog marks it stalled (`stalled` = that count) and, if
 * nobody is searching, wakes a parked worker, which steals its queue as
 * usual and, because the owner is stalled, its LIFO task too. It repeats
 * this every look while the stall lasts, so a wakeup or mark that a racing
 * worker misses costs one more look, never the task. The watchdog runs only
 * while some worker is awake; when all are parked it sleeps until one
 * leaves the idle set, so an idle pool still makes no system calls.
 *
 * Looks back off while they find nothing to mark: the time to the next
 * doubles from WATCHDOG_MS up to WATCHDOG_MAX_MS, and goes back to
 * WATCHDOG_MS after a look that marks a worker and when the pool wakes
 * from all asleep. A look costs the pool more than its few loads: on a
 * machine of virtual CPUs, a timer wakeup every millisecond took 4 to 5 %
 * off a call loop running on the other worker (docs/benchmarks.md). The
 * price: a worker that has kept up for a while and then gets stuck is
 * seen within two looks of WATCHDOG_MAX_MS, not of WATCHDOG_MS.
 *
 * The LIFO slot is an atomic pointer. Its owner fills an empty slot with a
 * release store (a thief only ever empties a full slot, so an empty slot
 * stays the owner's), and swaps it (exchange) to displace or take a task;
 * a thief takes it with a CAS from a worker it sees stalled. Either way
 * exactly one of them gets the task. The mark is a hint: a stale read can
 * make a thief take the LIFO task of a worker that just moved on (a loss of
 * locality once), never a task twice.
 *
 * No task is dropped. Every path that may be refused room places the task
 * elsewhere: a full local ring hands tasks back to requeue, which moves
 * them to the inject queue (runq.c: tr__runq_push never drops); inject_pop
 * moves tasks into the ring with tr__runq_try_push and leaves a refused
 * one at the head of the inject queue (the ring's room is counted from
 * `steal`, which a descheduled thief holds back while the owner pops on,
 * not from the queue length); a steal claims only what its own ring has
 * room for (runq.c); a displaced LIFO task is requeued. A task leaves a
 * queue only to be run by the thread that took it.
 *
 * Each worker sleeps on its own ck_ec event count, so a wakeup wakes exactly
 * one thread and an idle pool makes no system calls at all.
 *
 * Counters for inspection (tr__sched_worker_stats), owner-written relaxed
 * and read by anyone: steals, sleeps and the time asleep are counted on
 * those slow paths only (a clock read costs nothing next to a futex
 * wait); the task a worker starts is stored beside `runs`, on a line the
 * owner writes then anyway, so that a worker stuck in one task can be
 * named.
 */
#include "scheduler/sched.h"

#include "common/tr_alloc.h"
#include "common/tr_assert.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"

#include <troupe/error.h>
#include <troupe/system.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

enum {
    LIFO_CAP = 16,
    INJECT_EVERY = 61,
    INJECT_BATCH = 32,
    WATCHDOG_MS = 1,
    WATCHDOG_MAX_MS = 8,
    LOOSE_BATCHED = 4,
    LOOSE_TRIAL = 2,
    LOOSE_GAIN = 3,
    LOOSE_HOLD_MS = 16,
    LOOSE_HOLD_MAX_MS = 256,
};

/* `loose` when no look marked the worker: `dry` never counts this far. */
#define NO_MARK UINT64_MAX

struct tr_worker {
    /* Owner only. */
    tr_sched *sched;
    unsigned lifo_runs;
    /* Counts down to the inject queue's turn. It rests at 1 until the
     * pool starts, and a run goes on to the task in the LIFO slot
     * (tr__sched_next_lifo) only above 1: never in a simulation, whose
     * driving thread runs one task a step. */
    unsigned tick;
    unsigned index;
    bool searching;
    bool inject_list_first; /* its last inject pop's preference */
    uint64_t rng;
    void *data;
    pthread_t thread;
    /* Protected by sched->idle_lock. */
    bool in_idle_set;
    /* The owner writes both; a thief may CAS a full LIFO slot to NULL; the
     * watchdog and parking workers read them. */
    TR_CACHE_ALIGNED tr_atomic(tr_task *) lifo;
    tr_atomic(uint32_t) runs; /* tasks started, owner's relaxed store */
    /* Times it found nothing of its own to run (a slow path), and the
     * messages its runs found waiting behind their first (runs that
     * handled more than one: tr__sched_note_batch); owner's relaxed
     * stores, read by the watchdog. `dry` has 64 bits so that it never
     * wraps round to a value a look marked (`loose`). */
    tr_atomic(uint64_t) dry;
    tr_atomic(uint32_t) batched;
    /* The task started last, stored beside `runs` (a line the owner
     * writes anyway): inspection names the actor a stuck worker runs. */
    tr_atomic(tr_task *) current;
    /* Owner-written on slow paths only (a steal, a park), relaxed; read by
     * inspection (tr__sched_worker_stats). */
    TR_CACHE_ALIGNED tr_atomic(uint64_t) steals;
    tr_atomic(uint64_t) parks;
    tr_atomic(uint64_t) parked_ns;  /* time asleep, parks that ended */
    tr_atomic(uint64_t) park_since; /* when the sleep now began, or 0 */
    tr_atomic(uint64_t) started_ns; /* when the thread began */
    /* The watchdog writes it; thieves read it: `runs` when it saw this
     * worker stalled. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) stalled;
    /* The watchdog writes it; thieves read it: while the ring's take count
     * is short of it, a task queued a look ago still waits (backlogged). */
    tr_atomic(uint32_t) backlog;
    /* The watchdog writes it; thieves read it: `dry` when it saw this
     * worker busy a whole look with loose work queued (see the top
     * comment), good until the worker next runs dry; NO_MARK when none. */
    tr_atomic(uint64_t) loose;
    /* Stealers read it; the owner pushes and pops. */
    tr_runq rq;
    /* Wakers increment it; the owner sleeps on it. */
    TR_CACHE_ALIGNED struct ck_ec32 wake;
};

_Static_assert(offsetof(struct tr_worker, lifo) % TR_CACHE_LINE == 0,
               "the LIFO slot starts its own line");
_Static_assert(offsetof(struct tr_worker, stalled) % TR_CACHE_LINE == 0,
               "the stall mark starts its own line");
_Static_assert(offsetof(struct tr_worker, steals) % TR_CACHE_LINE == 0,
               "the slow-path counters start their own line");

/* A worker's counts as the watchdog saw them at its last look, and its
 * loose mark's trial (see watchdog_look). */
typedef struct wd_seen {
    uint32_t runs;    /* tasks started */
    uint32_t pushed;  /* ring pushes */
    uint64_t dry;     /* times it ran out of work */
    uint32_t batched; /* messages found waiting behind a run's first */
    /* A mark on trial: the looks left to its verdict, and the pool's rate
     * and this worker's own in the look that marked it, in messages a ms. */
    unsigned trial;
    uint64_t trial_pool;
    uint64_t trial_own;
    /* No new loose mark before `hold_until` (ns); the next failed trial
     * holds for `hold_ms`. */
    uint64_t hold_until;
    uint64_t hold_ms;
} wd_seen;

/*
 * The inject queue holds tasks two ways, under one lock. A plain thread's
 * task, which that thread has just written, is linked through itself
 * (`inject_list`): no memory to find, and the worker that takes it reads
 * a line it is about to run on anyway. A ring's overflow, half a ring of
 * tasks its worker last touched long ago, goes into segments of task
 * pointers (inject_seg), so that moving it out of one ring and into
 * another touches no task: linking them read and wrote a cold line for
 * each (a million spawned actors spent a fifth of their time there). The
 * positions in the first and last segments are the scheduler's, next to
 * its lock. Without memory for a segment, overflow is linked into the
 * list. Each worker's pops prefer the two in turn, so neither waits on
 * the other for more than two pops of a worker.
 */
enum { INJECT_SEG_BYTES = 2048 };

typedef struct inject_seg {
    struct inject_seg *next;
    tr_task *task[(INJECT_SEG_BYTES - sizeof(void *)) / sizeof(tr_task *)];
} inject_seg;

_Static_assert(sizeof(inject_seg) == INJECT_SEG_BYTES,
               "an inject segment is INJECT_SEG_BYTES");

enum { INJECT_SEG_CAP = sizeof(((inject_seg *)0)->task) / sizeof(tr_task *) };

/* Tasks linked through `next`, oldest at `head`. */
typedef struct task_list {
    tr_task *head;
    tr_task *tail;
} task_list;

static void
task_list_append(task_list *l, tr_task *t)
{
    t->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = t;
    } else {
        l->head = t;
    }
    l->tail = t;
}

struct tr_sched {
    tr_run_fn run;
    void *run_arg;
    unsigned n;
    size_t local_size;
    tr_worker *workers;
    bool started;

    /* Wakeup state, written by parking workers and wakers. */
    TR_CACHE_ALIGNED tr_atomic(unsigned) nsearching;
    tr_atomic(unsigned) nidle;
    tr_atomic(bool) stopping;

    /* Cold: workers going to sleep and being woken. A mutex, because this
     * runs only on the transitions to and from sleep. */
    pthread_mutex_t idle_lock;
    unsigned *idle_set;
    unsigned idle_len;

    /* Protected by idle_lock: the watchdog sleeps until woken (all
     * workers parked). */
    bool wd_sleeping;

    /* The inject queue: tasks from plain threads and ring overflow (see
     * inject_seg). A mutex, because neither is the hot path. The lock,
     * the list and the length share a line (40 + 24 bytes with glibc):
     * a plain thread's push and a worker's pop of the list touch no
     * other. Then the segments from first to last (both NULL when none),
     * and a drained one kept for the next needed (spare, or NULL). */
    TR_CACHE_ALIGNED pthread_mutex_t inject_lock;
    task_list inject_list;
    tr_atomic(size_t) inject_len;
    inject_seg *inject_first;
    inject_seg *inject_last;
    inject_seg *inject_spare;
    uint32_t inject_head; /* next to take, in inject_first */
    uint32_t inject_tail; /* next free, in inject_last */

    /* The watchdog's own: each worker as it was at the last look, the
     * time to the next look in ms (see watchdog_main), and when the last
     * look was (ns; 0 when none since the pool last slept). */
    TR_CACHE_ALIGNED wd_seen *wd;
    unsigned wd_ms;
    uint64_t wd_at;
    /* Start and stop only. */
    pthread_t wd_thread;
    bool wd_started;
    /* Wakers (stop, a worker leaving an all-parked pool) increment it;
     * the watchdog sleeps on it. */
    TR_CACHE_ALIGNED struct ck_ec32 wd_wake;

    /* Simulation (tr__sched_sim_*): the runnable tasks gathered from the
     * queues, in the order they were gathered; the driving thread only. */
    task_list sim;
    size_t sim_len;
};

/* The calling thread's worker: tr__tls.worker (common/tr_park.h). */
#define current_worker ((tr_worker *)tr__tls.worker)

static unsigned
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n <= 0 ? 1 : n > (long)TR_WORKERS_MAX ? TR_WORKERS_MAX : (unsigned)n;
}

int
tr__sched_create(unsigned n, size_t local_size, tr_run_fn run, void *arg,
                 tr_sched **out)
{
    tr_sched *s;

    if (n == 0) {
        n = online_cpus();
    }
    s = tr__calloc_aligned(sizeof(*s));
    if (s == NULL) {
        return TR_ENOMEM;
    }
    s->workers = tr__calloc_aligned(sizeof(tr_worker) * n);
    s->idle_set = tr__calloc(sizeof(unsigned) * n);
    s->wd = tr__calloc(sizeof(wd_seen) * n);
    if (s->workers == NULL || s->idle_set == NULL || s->wd == NULL) {
        tr__free_aligned(s->workers, sizeof(tr_worker) * n);
        tr__free(s->idle_set, sizeof(unsigned) * n);
        tr__free(s->wd, sizeof(wd_seen) * n);
        tr__free_aligned(s, sizeof(*s));
        return TR_ENOMEM;
    }
    s->run = run;
    s->run_arg = arg;
    s->n = n;
    s->local_size = local_size;
    tr_init_relaxed(&s->nsearching, 0);
    tr_init_relaxed(&s->nidle, 0);
    tr_init_relaxed(&s->stopping, false);
    tr_init_relaxed(&s->inject_len, 0);
    pthread_mutex_init(&s->idle_lock, NULL);
    pthread_mutex_init(&s->inject_lock, NULL);
    ck_ec32_init(&s->wd_wake, 0);
    s->wd_ms = WATCHDOG_MS;
    for (unsigned i = 0; i < n; i++) {
        tr_worker *w = &s->workers[i];
        s->wd[i].hold_ms = LOOSE_HOLD_MS;
        w->sched = s;
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        w->tick = 1;
        tr_init_relaxed(&w->lifo, NULL);
        tr_init_relaxed(&w->runs, 0);
        tr_init_relaxed(&w->dry, 0);
        tr_init_relaxed(&w->batched, 0);
        tr_init_relaxed(&w->current, NULL);
        tr_init_relaxed(&w->steals, 0);
        tr_init_relaxed(&w->parks, 0);
        tr_init_relaxed(&w->parked_ns, 0);
        tr_init_relaxed(&w->park_since, 0);
        tr_init_relaxed(&w->started_ns, 0);
        /* Not equal to runs: a worker that has run nothing is not
         * stalled. */
        tr_init_relaxed(&w->stalled, UINT32_MAX);
        tr_init_relaxed(&w->backlog, 0);
        tr_init_relaxed(&w->loose, NO_MARK);
        tr__runq_init(&w->rq);
        ck_ec32_init(&w->wake, 0);
        if (local_size != 0) {
            w->data = tr__calloc_aligned(local_size);
            if (w->data == NULL) {
                tr__sched_destroy(s);
                return TR_ENOMEM;
            }
        }
    }
    *out = s;
    return TR_OK;
}

/* ---- inject queue ---- */

/* inject_lock held: append `t` to the segments; false when that takes a
 * segment and none can be had. */
static bool
seg_put(tr_sched *s, tr_task *t)
{
    inject_seg *g = s->inject_last;

    if (g == NULL || s->inject_tail == INJECT_SEG_CAP) {
        inject_seg *fresh = s->inject_spare;
        if (fresh != NULL) {
            s->inject_spare = NULL;
        } else if ((fresh = tr__alloc(sizeof(*fresh))) == NULL) {
            return false;
        }
        fresh->next = NULL;
        if (g != NULL) {
            g->next = fresh;
        } else {
            s->inject_first = fresh; /* inject_head is 0 */
        }
        s->inject_last = g = fresh;
        s->inject_tail = 0;
    }
    g->task[s->inject_tail++] = t;
    return true;
}

/* inject_lock held: the segments' front task, left in place, or NULL. */
static tr_task *
seg_front(tr_sched *s)
{
    inject_seg *g;

    while ((g = s->inject_first) != NULL) {
        uint32_t end = g == s->inject_last ? s->inject_tail : INJECT_SEG_CAP;
        if (s->inject_head != end) {
            return g->task[s->inject_head];
        }
        s->inject_first = g->next;
        s->inject_head = 0;
        if (g == s->inject_last) {
            s->inject_last = NULL;
            s->inject_tail = 0;
        }
        if (s->inject_spare == NULL) {
            s->inject_spare = g;
        } else {
            tr__free(g, sizeof(*g));
        }
    }
    return NULL;
}

/* inject_lock held: take the list's front task, or NULL. */
static tr_task *
list_take(tr_sched *s)
{
    tr_task *t = s->inject_list.head;

    if (t != NULL && (s->inject_list.head = t->next) == NULL) {
        s->inject_list.tail = NULL;
    }
    return t;
}

/* inject_lock held: take the segments' front task, or NULL. */
static tr_task *
seg_take(tr_sched *s)
{
    tr_task *t = seg_front(s);

    if (t != NULL) {
        s->inject_head++;
    }
    return t;
}

/* Move `t` from the inject queue into `w`'s ring; false when the ring
 * refuses it (a thief still copying holds its room). */
static bool
inject_to_ring(tr_worker *w, tr_task *t)
{
#ifdef TROUPE_SYSTEMATIC
    if (tr__sys_bug(TR_SYS_BUG_INJECT_DROP)) {
        /* The bug fixed in 714427e, as a release build ran it: a push the
         * ring refuses hands back tasks nobody places. */
        tr_task *dropped[TR_RUNQ_SPILL];
        (void)tr__runq_push(&w->rq, t, dropped);
        return true;
    }
#endif
    return tr__runq_try_push(&w->rq, t);
}

/* inject_lock held: move up to `max` of the list's tasks into `w`'s ring,
 * oldest first; returns how many. */
static unsigned
list_move(tr_sched *s, tr_worker *w, unsigned max)
{
    tr_task *t = s->inject_list.head;
    unsigned moved = 0;

    while (moved < max && t != NULL) {
        /* Read before the push: a thief may run it from then on. */
        tr_task *after = t->next;
        if (!inject_to_ring(w, t)) {
            break;
        }
        t = after;
        moved++;
    }
    s->inject_list.head = t;
    if (t == NULL) {
        s->inject_list.tail = NULL;
    }
    return moved;
}

/* inject_lock held: as list_move, from the segments. */
static unsigned
seg_move(tr_sched *s, tr_worker *w, unsigned max)
{
    tr_task *t;
    unsigned moved = 0;

    while (moved < max && (t = seg_front(s)) != NULL) {
        if (!inject_to_ring(w, t)) {
            break;
        }
        s->inject_head++;
        moved++;
    }
    return moved;
}

/* Queue a plain thread's task (`overflow` false) or a ring's overflow of
 * `n`, oldest first. Returns how many the queue holds now. */
static size_t
inject_push(tr_sched *s, tr_task *const *tasks, size_t n, bool overflow)
{
    size_t len;

    pthread_mutex_lock(&s->inject_lock);
    for (size_t i = 0; i < n; i++) {
        if (!overflow || !seg_put(s, tasks[i])) {
            task_list_append(&s->inject_list, tasks[i]);
        }
    }
    /* seq_cst: pairs with the parking worker's seq_cst nidle increment and
     * its re-check of this length (see the top comment). */
    len = tr_load_relaxed(&s->inject_len) + n;
    tr_store_seqcst(&s->inject_len, len);
    pthread_mutex_unlock(&s->inject_lock);
    return len;
}

/*
 * Take one task to run and move up to INJECT_BATCH more to `w`'s queue
 * (filling it at most to half, to leave thieves something to take). A task
 * the ring refuses (a thief still copying holds its room) stays at the head
 * of the inject queue.
 */
static tr_task *
inject_pop(tr_sched *s, tr_worker *w)
{
    tr_task *t;
    uint32_t local;
    uint32_t room;
    bool list_first;

    if (tr_load_relaxed(&s->inject_len) == 0) {
        return NULL;
    }
    local = tr__runq_len(&w->rq);
    room = local < TR_RUNQ_CAP / 2 ? TR_RUNQ_CAP / 2 - local : 0;
    pthread_mutex_lock(&s->inject_lock);
    list_first = w->inject_list_first = !w->inject_list_first;
    t = list_first ? list_take(s) : NULL;
    if (t == NULL && (t = seg_take(s)) == NULL && !list_first) {
        t = list_take(s);
    }
    if (t != NULL) {
        size_t len = tr_load_relaxed(&s->inject_len);
        size_t share = len / s->n;
        unsigned max = share < INJECT_BATCH ? (unsigned)share : INJECT_BATCH;
        unsigned moved;

        if (max > room) {
            max = room;
        }
        moved = list_first ? list_move(s, w, max) : seg_move(s, w, max);
        if (moved < max) {
            moved += list_first ? seg_move(s, w, max - moved)
                                : list_move(s, w, max - moved);
        }
        tr_store_relaxed(&s->inject_len, len - 1 - moved);
    }
    pthread_mutex_unlock(&s->inject_lock);
    return t;
}

/* ---- waking and parking ---- */

/*
 * idle_lock held; a worker is leaving the idle set. True when the watchdog
 * sleeps because every worker was parked: the caller wakes it after
 * unlocking (one wake per pool that goes from all parked to busy).
 */
static bool
watchdog_kick_locked(tr_sched *s)
{
    if (!s->wd_sleeping) {
        return false;
    }
    s->wd_sleeping = false;
    return true;
}

/* idle_lock held; `w`, in the idle set, leaves it. */
static void
leave_idle_locked(tr_sched *s, tr_worker *w)
{
    for (unsigned i = 0; i < s->idle_len; i++) {
        if (s->idle_set[i] == w->index) {
            s->idle_set[i] = s->idle_set[--s->idle_len];
            break;
        }
    }
    w->in_idle_set = false;
    tr_fas_seqcst(&s->nidle, 1);
}

/* idle_lock held; a waker takes parked `w` out of the idle set. The woken
 * worker starts as a searcher; counting it here keeps others from waking
 * a second one for the same work. */
static void
claim_locked(tr_sched *s, tr_worker *w)
{
    leave_idle_locked(s, w);
    tr_faa_seqcst(&s->nsearching, 1);
}

static void
wake_one(tr_sched *s)
{
    tr_worker *w = NULL;
    bool kick = false;

    pthread_mutex_lock(&s->idle_lock);
    if (s->idle_len > 0) {
        w = &s->workers[s->idle_set[s->idle_len - 1]];
        claim_locked(s, w);
        kick = watchdog_kick_locked(s);
    }
    pthread_mutex_unlock(&s->idle_lock);
    if (w != NULL) {
        tr__ec_wake(&w->wake);
    }
    if (kick) {
        tr__ec_wake(&s->wd_wake);
    }
}

/* Work was published; wake a worker if nobody is looking for it. `strict`
 * for work whose publisher is not a worker (see the top comment). */
static void
notify(tr_sched *s, bool strict)
{
    if (strict) {
        if (tr_load_seqcst(&s->nsearching) == 0 &&
            tr_load_seqcst(&s->nidle) != 0) {
            wake_one(s);
        }
        return;
    }
    if (tr_load_relaxed(&s->nsearching) == 0 &&
        tr_load_relaxed(&s->nidle) != 0) {
        wake_one(s);
    }
}

/*
 * Work was pushed to the inject queue, which then held `len` tasks. As
 * notify(s, true), and more: a worker woken for it counts as searching
 * until it runs, and the OS may leave it queued behind the thread that
 * woke it (a plain thread sending without pause) for a whole time slice,
 * milliseconds, while the other workers sleep on and the queue grows. So
 * a queue of more than TR_INJECT_WAKE tasks wakes a worker even though one
 * is searching: waiting ones are work for more than one. With 64, W4 on
 * two workers ran 5% slower: the main thread woke workers that ran dry at
 * once and parked again. With 256 it runs as before, and its hellos no
 * longer wait by the 30,000 (docs/benchmarks.md, the twentieth sitting).
 */
static void
notify_inject(tr_sched *s, size_t len)
{
    if (len > TR_INJECT_WAKE && tr_load_seqcst(&s->nidle) != 0) {
        wake_one(s);
        return;
    }
    notify(s, true);
}

static bool
try_become_searching(tr_worker *w)
{
    tr_sched *s = w->sched;

    if (w->searching) {
        return true;
    }
    /* At most half the pool searches: more only burns CPU on contention. */
    if (2 * tr_load_relaxed(&s->nsearching) >= s->n) {
        return false;
    }
    tr_faa_seqcst(&s->nsearching, 1);
    w->searching = true;
    return true;
}

/* A searcher found work: stop searching; the last one wakes another, since
 * where there was one task there may be more. */
static void
found_work(tr_worker *w)
{
    if (!w->searching) {
        return;
    }
    w->searching = false;
    if (tr_fas_seqcst(&w->sched->nsearching, 1) == 1) {
        notify(w->sched, true);
    }
}

/*
 * Whether a thief may take `v`'s LIFO task: the watchdog saw `v` start no
 * task for a whole look, and it has started none since. Relaxed: a hint
 * (see the top comment); the CAS on the slot decides who gets the task.
 */
static bool
stalled(tr_worker *v)
{
    return tr_load_relaxed(&v->stalled) == tr_load_relaxed(&v->runs);
}

static bool
lifo_stealable(tr_worker *v)
{
    return stalled(v) && tr_load_relaxed(&v->lifo) != NULL;
}

/*
 * Whether a task queued a look ago still waits in `v`'s ring: the take
 * count has not reached the push count the watchdog saw then. Relaxed: a
 * hint, which goes stale by itself once the owner catches up.
 */
static bool
backlogged(tr_worker *v)
{
    return (int32_t)(tr_load_relaxed(&v->backlog) - tr__runq_taken(&v->rq)) > 0;
}

/*
 * Whether a thief may take from `v`'s queue: only when `v` is behind (see
 * the top comment). A worker that keeps up keeps its tasks: the ones it
 * queued are the receivers of the messages it just sent, or the other
 * halves of its calls, and moved to another core they would run no
 * sooner and touch every line of their messages from afar.
 */
/*
 * Whether the watchdog saw `v` busy a whole look with loose work queued,
 * and `v` has not run out of work since. Relaxed: a hint, as the others.
 */
static bool
loose(tr_worker *v)
{
    return tr_load_relaxed(&v->loose) == tr_load_relaxed(&v->dry);
}

static bool
queue_stealable(tr_worker *v)
{
    return tr__runq_len(&v->rq) != 0 &&
           (stalled(v) || backlogged(v) || loose(v));
}

static bool
any_work(tr_sched *s)
{
    if (tr_load_seqcst(&s->inject_len) != 0) {
        return true;
    }
    for (unsigned i = 0; i < s->n; i++) {
        tr_worker *v = &s->workers[i];
        if (queue_stealable(v) || lifo_stealable(v)) {
            return true;
        }
    }
    return false;
}

/* Returns when the worker should look for work again. */
static void
park(tr_worker *w)
{
    tr_sched *s = w->sched;
    uint32_t seen = tr__ec_value(&w->wake);

    if (w->searching) {
        w->searching = false;
        tr_fas_seqcst(&s->nsearching, 1);
    }
    pthread_mutex_lock(&s->idle_lock);
    s->idle_set[s->idle_len++] = w->index;
    w->in_idle_set = true;
    tr_faa_seqcst(&s->nidle, 1);
    pthread_mutex_unlock(&s->idle_lock);

    for (;;) {
        if (tr_load_acq(&s->stopping) || any_work(s)) {
            pthread_mutex_lock(&s->idle_lock);
            if (w->in_idle_set) {
                /* Leave the set ourselves. */
                leave_idle_locked(s, w);
                bool kick = watchdog_kick_locked(s);
                pthread_mutex_unlock(&s->idle_lock);
                if (kick) {
                    tr__ec_wake(&s->wd_wake);
                }
                return;
            }
            pthread_mutex_unlock(&s->idle_lock);
            /* A waker took us out and counted us as a searcher. */
            w->searching = true;
            return;
        }
        /* Counted here, on the way to sleep (a futex wait costs far more
         * than the clock reads). Relaxed, owner only: inspection sums
         * them, a stale read is a moment old. */
        uint64_t t0 = tr__now_ns();
        tr_store_relaxed(&w->park_since, t0);
        tr_store_relaxed(&w->parks, tr_load_relaxed(&w->parks) + 1);
        tr__ec_wait_ms(&w->wake, seen, -1);
        tr_store_relaxed(&w->parked_ns,
                         tr_load_relaxed(&w->parked_ns) + tr__now_ns() - t0);
        tr_store_relaxed(&w->park_since, 0);
        seen = tr__ec_value(&w->wake);
        pthread_mutex_lock(&s->idle_lock);
        bool woken = !w->in_idle_set;
        pthread_mutex_unlock(&s->idle_lock);
        if (woken) {
            w->searching = true;
            return;
        }
    }
}

/* ---- finding work ---- */

static uint32_t
next_rand(tr_worker *w)
{
    /* xorshift64*: owner-only state. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (uint32_t)((w->rng * 0x2545f4914f6cdd1dull) >> 32);
}

/* May the task in the LIFO slot run now? Under the cap, yes; at it, only
 * if no task is queued here (the cap is for fairness to those), and then
 * the count starts again. */
static TR_HOT_INLINE bool
lifo_turn(tr_worker *w)
{
    if (w->lifo_runs < LIFO_CAP) {
        return true;
    }
    if (tr__runq_len(&w->rq) != 0) {
        return false;
    }
    w->lifo_runs = 0;
    return true;
}

static tr_task *
next_local(tr_worker *w)
{
    tr_task *t;

    if (--w->tick == 0) {
        w->tick = INJECT_EVERY;
        t = inject_pop(w->sched, w);
        if (t != NULL) {
            return t;
        }
    }
    /* Relaxed: only we fill the slot, so NULL here stays NULL; the
     * exchange takes the task unless a thief's CAS took it first. acq_rel:
     * pairs with that CAS. */
    if (tr_load_relaxed(&w->lifo) != NULL &&
        (t = tr_xchg_acqrel(&w->lifo, NULL)) != NULL) {
        /* With no task queued, moving it would only invite a thief to
         * take a ping-pong pair across cores. */
        if (lifo_turn(w)) {
            w->lifo_runs++;
            return t;
        }
        tr__sched_requeue(w, t);
    }
    w->lifo_runs = 0;
    return tr__runq_pop(&w->rq);
}

static tr_task *
search(tr_worker *w)
{
    tr_sched *s = w->sched;
    tr_task *t;

    if (!try_become_searching(w)) {
        return NULL;
    }
    t = inject_pop(s, w);
    if (t != NULL) {
        return t;
    }
    if (s->n > 1) {
        unsigned start = next_rand(w) % s->n;
        for (unsigned i = 0; i < s->n; i++) {
            tr_worker *victim = &s->workers[(start + i) % s->n];
            if (victim == w || !queue_stealable(victim)) {
                continue;
            }
            t = tr__runq_steal(&victim->rq, &w->rq);
            if (t != NULL) {
                tr_store_relaxed(&w->steals, tr_load_relaxed(&w->steals) + 1);
                return t;
            }
        }
        /* Last, the LIFO tasks of workers stuck in one long task. */
        for (unsigned i = 0; i < s->n; i++) {
            tr_worker *victim = &s->workers[(start + i) % s->n];
            if (victim == w || !lifo_stealable(victim)) {
                continue;
            }
            t = tr_load_acq(&victim->lifo);
            /* acq_rel: pairs with the owner's release store or exchange
             * that filled the slot (we see the task's state) and with its
             * exchange that empties it (one of us gets the task). */
            if (t != NULL && tr_cas_acqrel(&victim->lifo, &t, NULL)) {
                tr_store_relaxed(&w->steals, tr_load_relaxed(&w->steals) + 1);
                return t;
            }
        }
    }
    return inject_pop(s, w);
}

/* ---- the watchdog ---- */

/*
 * Whether a worker that ran `ran` tasks in a look, never running out of
 * work, did loose work: its runs seldom found messages waiting behind
 * their first (`batched`, fewer than one in LOOSE_BATCHED runs). Runs
 * that find batches are a producer feeding a consumer, callers queueing
 * on one server: moved apart, their every message would cross between
 * cores. Runs that each handle one message and wake the next are
 * independent chains of work, which another core runs as well.
 */
static bool
loose_look(uint32_t ran, uint32_t batched)
{
    return ran != 0 && (uint64_t)batched * LOOSE_BATCHED < ran;
}

/* Messages a ms, from `done` messages in `ns`. */
static uint64_t
per_ms(uint64_t done, uint64_t ns)
{
    return done * 1000000 / ns;
}

/*
 * The verdict on worker `i`'s loose mark, LOOSE_TRIAL looks after it was
 * made (the first look after it holds the thief's wakeup and its first
 * misses): the pool now handles `pool` messages a ms. Sharing a worker's loose
 * work should have added about its own rate (a second core doing half of it);
 * a gain short of a LOOSE_GAIN-th of it means the work was coupled after
 * all in a way its batches did not show (four clients of one server:
 * the thief takes a client, which wakes the server on the thief's core,
 * and each of its messages crosses), or the machine has no spare core to
 * give. Then the mark is taken back, and no new one is made for a hold
 * that doubles, from LOOSE_HOLD_MS up to LOOSE_HOLD_MAX_MS, with each
 * trial that fails in a row. A trial that pays resets the hold.
 */
static void
loose_verdict(tr_sched *s, unsigned i, uint64_t pool, uint64_t now_ns)
{
    wd_seen *seen = &s->wd[i];

    if (pool >= seen->trial_pool + seen->trial_own / LOOSE_GAIN) {
        seen->hold_ms = LOOSE_HOLD_MS;
        return;
    }
    /* Relaxed: a hint, as when it was made. */
    tr_store_relaxed(&s->workers[i].loose, NO_MARK);
    seen->hold_until = now_ns + seen->hold_ms * 1000000;
    if (seen->hold_ms < LOOSE_HOLD_MAX_MS) {
        seen->hold_ms *= 2;
    }
}

/* One look at `now_ns`: mark workers stuck in one task while holding
 * work, behind on their queue, or busy all along with loose work queued,
 * and wake a parked worker to take from them. Sets the time to the next
 * look (see watchdog_main). */
static void
watchdog_look(tr_sched *s, uint64_t now_ns)
{
    bool behind = false;
    uint64_t ns = s->wd_at != 0 && now_ns > s->wd_at ? now_ns - s->wd_at : 0;
    uint64_t pool = 0;
    bool spare = false;

    /* First, for the loose marks' trials, the pool's rate over the look
     * and whether some worker had time to spare in it (it ran out of
     * work, or ran nothing at all): only then can a mark be tried, for
     * only such a worker takes from a marked one. Relaxed: counts, read
     * once a look; a stale value shifts a message to the next look. */
    for (unsigned i = 0; i < s->n; i++) {
        tr_worker *v = &s->workers[i];
        uint32_t ran = tr_load_relaxed(&v->runs) - s->wd[i].runs;

        pool += ran;
        pool += (uint32_t)(tr_load_relaxed(&v->batched) - s->wd[i].batched);
        spare |= ran == 0 || tr_load_relaxed(&v->dry) != s->wd[i].dry;
    }
    pool = ns != 0 ? per_ms(pool, ns) : 0;
    s->wd_at = now_ns;
    for (unsigned i = 0; i < s->n; i++) {
        tr_worker *v = &s->workers[i];
        wd_seen *seen = &s->wd[i];
        /* Taken first: a task pushed before the last look that has not
         * left the ring by now has waited at least a look. */
        uint32_t taken = tr__runq_taken(&v->rq);
        uint32_t before = seen->pushed;

        seen->pushed = tr__runq_pushed(&v->rq);
        if ((int32_t)(before - taken) > 0) {
            /* Relaxed: a hint for thieves, carried to the worker we wake
             * by the wake itself (a mutex and the event count). */
            tr_store_relaxed(&v->backlog, before);
            behind = true;
        }
        if (seen->trial != 0 && --seen->trial == 0) {
            loose_verdict(s, i, pool, now_ns);
        }
        /* Relaxed: counts, read once a look; a stale value delays a mark
         * by one look. */
        uint32_t runs = tr_load_relaxed(&v->runs);
        uint64_t dry = tr_load_relaxed(&v->dry);
        uint32_t batched = tr_load_relaxed(&v->batched);
        bool busy = dry == seen->dry; /* never out of work since */

        if (busy) {
            uint32_t ran = runs - seen->runs;
            uint32_t found = batched - seen->batched;
            bool is_loose = loose_look(ran, found);

            if (is_loose && tr__runq_len(&v->rq) != 0 &&
                (loose(v) || now_ns >= seen->hold_until)) {
                if (!loose(v) && ns != 0 && spare) {
                    /* A new mark, on trial. */
                    seen->trial = LOOSE_TRIAL;
                    seen->trial_pool = pool;
                    seen->trial_own = per_ms((uint64_t)ran + found, ns);
                }
                /* Relaxed: a hint read by queue_stealable, carried as the
                 * backlog mark is. */
                tr_store_relaxed(&v->loose, dry);
                behind = true;
            } else if (!is_loose) {
                /* Its runs now find batches: coupled work, kept together. */
                tr_store_relaxed(&v->loose, NO_MARK);
            }
        }
        seen->dry = dry;
        seen->batched = batched;
        if (runs != seen->runs) {
            seen->runs = runs;
            continue;
        }
        /* A parked or searching worker holds no work, so holding some
         * with an unchanged count means one task ran all along. */
        if (tr_load_relaxed(&v->lifo) == NULL && tr__runq_len(&v->rq) == 0) {
            continue;
        }
        /* Relaxed: a hint read by lifo_stealable; the wake below (a mutex
         * and the event count) carries it to the worker we wake. */
        tr_store_relaxed(&v->stalled, runs);
        behind = true;
    }
    if (behind) {
        s->wd_ms = WATCHDOG_MS;
        notify(s, true);
    } else if (s->wd_ms < WATCHDOG_MAX_MS) {
        s->wd_ms *= 2;
    }
}

static void *
watchdog_main(void *arg)
{
    tr_sched *s = arg;

    for (;;) {
        uint32_t seen = tr__ec_value(&s->wd_wake);
        bool all_parked;

        pthread_mutex_lock(&s->idle_lock);
        all_parked = s->idle_len == s->n;
        s->wd_sleeping = all_parked;
        pthread_mutex_unlock(&s->idle_lock);
        /* Acquire: pairs with tr__sched_stop's release, which it makes
         * before waking us. */
        if (tr_load_acq(&s->stopping)) {
            break;
        }
        if (all_parked) {
            /* Until a worker leaves the idle set (watchdog_kick_locked)
             * or stop: no ticks while the pool is idle. */
            tr__ec_wait_ms(&s->wd_wake, seen, -1);
            s->wd_ms = WATCHDOG_MS;
            s->wd_at = 0; /* no rate over a sleep */
            continue;
        }
        if (tr__ec_wait_ms(&s->wd_wake, seen, (int)s->wd_ms) == 0) {
            continue; /* woken: stop, or a kick that we no longer need */
        }
        watchdog_look(s, tr__now_ns());
    }
    return NULL;
}

static void *
worker_main(void *arg)
{
    tr_worker *w = arg;
    tr_sched *s = w->sched;

    tr__tls.worker = w;
    /* The allocator sets up a thread's arena and cache at its first call:
     * let that happen now, while the pool starts, not in the first run
     * that allocates (its time and memory are the pool's, not the run's). */
    tr__alloc_warm();
    tr_store_relaxed(&w->started_ns, tr__now_ns());
    while (!tr_load_acq(&s->stopping)) {
        tr_task *t = next_local(w);
        if (t == NULL) {
            /* Relaxed, owner only: the watchdog reads it (loose). */
            tr_store_relaxed(&w->dry, tr_load_relaxed(&w->dry) + 1);
            t = search(w);
            if (t == NULL) {
                park(w);
                continue;
            }
        }
        found_work(w);
        /* Relaxed, owner only: the watchdog reads it as a count of tasks
         * started (no ordering needed; see watchdog_look). */
        tr_store_relaxed(&w->runs, tr_load_relaxed(&w->runs) + 1);
        tr_store_relaxed(&w->current, t);
        s->run(s->run_arg, w, t);
    }
    tr__tls.worker = NULL;
    return NULL;
}

void
tr__sched_note_batch(tr_worker *w, uint64_t n)
{
    /* Relaxed, owner only: the watchdog reads it (loose_look). */
    tr_store_relaxed(&w->batched, tr_load_relaxed(&w->batched) + (uint32_t)n);
}

tr_task *
tr__sched_next_lifo(tr_worker *w)
{
    tr_task *t;

    /* What next_local would do, on its common path only: the loop takes
     * over for the inject queue's turn (and looks at `stopping` then, so
     * a pool that stops runs at most INJECT_EVERY more tasks a worker)
     * and for the LIFO cap. */
    if (w->tick == 1 || tr_load_relaxed(&w->lifo) == NULL || !lifo_turn(w)) {
        return NULL;
    }
    /* acq_rel: pairs with a thief's CAS; NULL if it took the task. */
    if ((t = tr_xchg_acqrel(&w->lifo, NULL)) == NULL) {
        return NULL;
    }
    w->tick--;
    w->lifo_runs++;
    tr_store_relaxed(&w->runs, tr_load_relaxed(&w->runs) + 1);
    tr_store_relaxed(&w->current, t);
    return t;
}

/* ---- public (to troupe) API ---- */

int
tr__sched_start(tr_sched *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        s->workers[i].tick = INJECT_EVERY;
    }
    for (unsigned i = 0; i < s->n; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main,
                           &s->workers[i]) != 0) {
            tr_store_rel(&s->stopping, true);
            for (unsigned j = 0; j < i; j++) {
                tr__ec_wake(&s->workers[j].wake);
                pthread_join(s->workers[j].thread, NULL);
            }
            return TR_ESTATE;
        }
    }
    s->started = true;
    /* With one worker there is nobody to hand a stalled worker's tasks to.
     * Without the thread the pool still works, as before the watchdog. */
    if (s->n > 1) {
        s->wd_started =
            pthread_create(&s->wd_thread, NULL, watchdog_main, s) == 0;
    }
    return TR_OK;
}

void
tr__sched_requeue(tr_worker *w, tr_task *t)
{
    tr_task *spill[TR_RUNQ_SPILL];

    /* Only the owner pushes its ring, or a test standing in for it. */
    TR_ASSERT(w == current_worker ||
              (current_worker == NULL && !w->sched->started));
    unsigned n = tr__runq_push(&w->rq, t, spill);

    if (n != 0) {
        notify_inject(w->sched, inject_push(w->sched, spill, n, true));
    } else if (backlogged(w)) {
        /* A worker that keeps up wakes nobody: no thief may take its
         * tasks (queue_stealable). */
        notify(w->sched, false);
    }
}

/* tr__sched_submit off its common path: the LIFO slot is taken, or the
 * caller is not one of the pool's workers. */
static TR_NOINLINE void
submit_slow(tr_sched *s, tr_worker *w, tr_task *t)
{
    if (w != NULL && w->sched == s) {
        /* acq_rel: pairs with a thief's CAS; NULL if it took the task. */
        tr_task *prev = tr_xchg_acqrel(&w->lifo, t);
        if (prev != NULL) {
            tr__sched_requeue(w, prev);
        }
        return;
    }
    notify_inject(s, inject_push(s, &t, 1, false));
}

void
tr__sched_submit(tr_sched *s, tr_task *t)
{
    tr_worker *w = current_worker;

    /* Relaxed: only we fill the slot, so an empty slot stays empty until
     * we store. Release: pairs with a thief's acquire of the slot, which
     * then sees the task's state. */
    if (tr_likely(w != NULL && w->sched == s &&
                  tr_load_relaxed(&w->lifo) == NULL)) {
        tr_store_rel(&w->lifo, t);
        return;
    }
    submit_slow(s, w, t);
}

void
tr__sched_stop(tr_sched *s)
{
    if (!s->started) {
        return;
    }
    /* Release: pairs with the workers' and the watchdog's acquire loads of
     * `stopping`. */
    tr_store_rel(&s->stopping, true);
    for (unsigned i = 0; i < s->n; i++) {
        tr__ec_wake(&s->workers[i].wake);
    }
    if (s->wd_started) {
        tr__ec_wake(&s->wd_wake);
        pthread_join(s->wd_thread, NULL);
        s->wd_started = false;
    }
    for (unsigned i = 0; i < s->n; i++) {
        pthread_join(s->workers[i].thread, NULL);
    }
    s->started = false;
}

void
tr__sched_destroy(tr_sched *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        tr__free_aligned(s->workers[i].data, s->local_size);
    }
    pthread_mutex_destroy(&s->idle_lock);
    pthread_mutex_destroy(&s->inject_lock);
    while (s->inject_first != NULL) {
        inject_seg *next = s->inject_first->next;
        tr__free(s->inject_first, sizeof(inject_seg));
        s->inject_first = next;
    }
    tr__free(s->inject_spare, sizeof(inject_seg));
    tr__free(s->idle_set, sizeof(unsigned) * s->n);
    tr__free(s->wd, sizeof(wd_seen) * s->n);
    tr__free_aligned(s->workers, sizeof(tr_worker) * s->n);
    tr__free_aligned(s, sizeof(*s));
}

tr_worker *
tr__sched_current(const tr_sched *s)
{
    tr_worker *w = current_worker;
    return (w != NULL && w->sched == s) ? w : NULL;
}

unsigned
tr__sched_workers(const tr_sched *s)
{
    return s->n;
}

void *
tr__sched_worker_data(tr_sched *s, unsigned i)
{
    return s->workers[i].data;
}

void *
tr__worker_data(tr_worker *w)
{
    return w->data;
}

unsigned
tr__worker_index(const tr_worker *w)
{
    return w->index;
}

tr_worker *
tr__sched_worker(tr_sched *s, unsigned i)
{
    return &s->workers[i];
}

tr_runq *
tr__worker_runq(tr_worker *w)
{
    return &w->rq;
}

/* ---- simulation ---- */

/* Append `t` to the simulation's runnable list. */
static void
sim_append(tr_sched *s, tr_task *t)
{
    task_list_append(&s->sim, t);
    s->sim_len++;
}

size_t
tr__sched_sim_gather(tr_sched *s)
{
    tr_worker *w = &s->workers[0];
    tr_task *t;

    /* What the last step made runnable: its displaced LIFO tasks and
     * requeues (the ring, in order), then its LIFO slot. */
    while ((t = tr__runq_pop(&w->rq)) != NULL) {
        sim_append(s, t);
    }
    if ((t = tr_xchg_acqrel(&w->lifo, NULL)) != NULL) {
        sim_append(s, t);
    }
    /* Then what plain threads submitted, oldest first. */
    pthread_mutex_lock(&s->inject_lock);
    while ((t = list_take(s)) != NULL || (t = seg_take(s)) != NULL) {
        sim_append(s, t);
    }
    tr_store_relaxed(&s->inject_len, 0);
    pthread_mutex_unlock(&s->inject_lock);
    return s->sim_len;
}

tr_task *
tr__sched_sim_at(tr_sched *s, tr_task *prev)
{
    return prev != NULL ? prev->next : s->sim.head;
}

tr_task *
tr__sched_sim_take(tr_sched *s, size_t i)
{
    tr_task *prev = NULL;
    tr_task *t = s->sim.head;

    TR_ASSERT(i < s->sim_len);
    while (i-- > 0) {
        prev = t;
        t = t->next;
    }
    if (prev != NULL) {
        prev->next = t->next;
    } else {
        s->sim.head = t->next;
    }
    if (s->sim.tail == t) {
        s->sim.tail = prev;
    }
    s->sim_len--;
    t->next = NULL;
    return t;
}

void
tr__sched_sim_run(tr_sched *s, tr_task *t, tr_run_fn fn)
{
    tr_worker *w = &s->workers[0];

    TR_ASSERT(!s->started && current_worker == NULL);
    /* The driving thread plays worker 0 for one task: submissions made
     * meanwhile land in its LIFO slot and ring, where the next gather
     * finds them, so the submit path has no branch for simulation. */
    tr__tls.worker = w;
    tr_store_relaxed(&w->runs, tr_load_relaxed(&w->runs) + 1);
    tr_store_relaxed(&w->current, t);
    (fn != NULL ? fn : s->run)(s->run_arg, w, t);
    tr__tls.worker = NULL;
}

tr_task *
tr__worker_inject_pop(tr_worker *w)
{
    return inject_pop(w->sched, w);
}

void
tr__sched_worker_stats(tr_sched *s, unsigned i, uint64_t now_ns,
                       tr_worker_stats *out)
{
    tr_worker *w = &s->workers[i];
    /* Relaxed: counters written by the owner, read a moment late. */
    uint64_t started = tr_load_relaxed(&w->started_ns);
    uint64_t since = tr_load_relaxed(&w->park_since);
    uint64_t parked = tr_load_relaxed(&w->parked_ns);

    if (since != 0 && now_ns > since) {
        parked += now_ns - since; /* the sleep in progress */
    }
    out->runs = tr_load_relaxed(&w->runs);
    out->current = tr_load_relaxed(&w->current);
    out->parked = since != 0;
    out->parks = tr_load_relaxed(&w->parks);
    out->steals = tr_load_relaxed(&w->steals);
    out->parked_ns = parked;
    out->busy_ns = started != 0 && now_ns > started + parked
                       ? now_ns - started - parked
                       : 0;
    out->runq_len =
        tr__runq_len(&w->rq) + (tr_load_relaxed(&w->lifo) != NULL ? 1u : 0u);
}

size_t
tr__sched_inject_len(tr_sched *s)
{
    return tr_load_relaxed(&s->inject_len);
}

void
tr__sched_watchdog_look(tr_sched *s, uint64_t now_ns)
{
    watchdog_look(s, now_ns);
}

unsigned
tr__sched_watchdog_ms(const tr_sched *s)
{
    return s->wd_ms;
}

bool
tr__sched_behind(tr_sched *s, unsigned i)
{
    return backlogged(&s->workers[i]);
}

bool
tr__sched_stealable(tr_sched *s, unsigned i)
{
    return queue_stealable(&s->workers[i]);
}

void
tr__sched_count(tr_worker *w, uint32_t runs, uint64_t dry)
{
    tr_store_relaxed(&w->runs, tr_load_relaxed(&w->runs) + runs);
    tr_store_relaxed(&w->dry, tr_load_relaxed(&w->dry) + dry);
}

bool
tr__sched_wake_held(tr_sched *s, unsigned i)
{
    tr_worker *w = &s->workers[i];
    bool held;

    pthread_mutex_lock(&s->idle_lock);
    held = w->in_idle_set;
    if (held) {
        claim_locked(s, w);
    }
    pthread_mutex_unlock(&s->idle_lock);
    return held;
}

void
tr__sched_wake_release(tr_sched *s, unsigned i)
{
    tr__ec_wake(&s->workers[i].wake);
}

bool
tr__sched_worker_asleep(tr_sched *s, unsigned i)
{
    tr_worker *w = &s->workers[i];
    bool parked;

    pthread_mutex_lock(&s->idle_lock);
    parked = w->in_idle_set;
    pthread_mutex_unlock(&s->idle_lock);
    /* ck_ec sets its waiter flag after the worker re-checked for work and
     * before it sleeps. */
    return parked && ck_ec32_has_waiters(&w->wake);
}
