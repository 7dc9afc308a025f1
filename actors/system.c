/*
 * System start, shutdown and counters.
 *
 * Shutdown. From the moment the flag is set, plain threads can neither
 * spawn nor send, and no actor can spawn. Spawn publishes its incarnation
 * (seq_cst) and then reads the flag (seq_cst); shutdown sets the flag and
 * then scans every slot's generation (seq_cst). Either the scan sees the new
 * actor and asks it to stop, or the spawner sees the flag and undoes the
 * spawn: no actor escapes. Actors stop on their workers (their `stop`
 * callbacks may still message each other); the caller polls the table until
 * no incarnation is live or the timeout passes.
 *
 * Plain threads. Every call a plain thread makes on the system announces
 * itself (tr__sys_enter: `inside` up, seq_cst, then the flag, seq_cst), so
 * either it sees the flag and returns TR_ESHUTDOWN having touched nothing
 * else, or shutdown, which sets the flag and then reads `inside` (both
 * seq_cst), waits for it to leave. Shutdown wakes the threads waiting for
 * room in a bounded mailbox with the flag set, and they leave with
 * TR_ESHUTDOWN. Only then are the workers joined: a call that began before
 * shutdown ends against a running system.
 *
 * The end. With the workers joined, the timers are closed (pending ones
 * dropped: a timed call ends with TR_ECLOSED; new ones refused), the actors
 * left are stopped on the calling thread (their `stop` callbacks see a
 * system that refuses calls and timers but is not freed), every message
 * still queued anywhere becomes a dead letter, and the objects outside the
 * system that still hold its address (taken reply handles, oneshot
 * subscriptions: see tr_outside) are closed: their calls end with
 * TR_ECLOSED, and later uses touch nothing of the system. Then everything
 * is freed.
 *
 * Waiting for a tree. tr_system_wait sleeps on `gave_up_ec` until a
 * top-level supervision tree has given up or shutdown has begun. The end
 * of such a tree sets `gave_up` (release) and then bumps the count
 * (actor.c); shutdown sets its flag and then bumps it. The waiter reads
 * the count before it checks either flag, so a bump that comes after its
 * check wakes it.
 */
#include "actors/actor.h"
#include "actors/names.h"
#include "actors/sim.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"
#include "scheduler/timer.h"

#include <troupe/error.h>
#include <troupe/supervisor.h>

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

tr_atomic(uint32_t) tr__forks;

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
forked_child(void)
{
    /* Only the forking thread exists in the child: plain arithmetic would
     * do, but the word is read with atomics elsewhere. */
    tr_store_relaxed(&tr__forks, tr_load_relaxed(&tr__forks) + 1);
}

static void
watch_forks(void)
{
    (void)pthread_atfork(NULL, NULL, forked_child);
}

/* A random non-zero node word: the kernel's randomness, or failing that a
 * mix of the clock, the process and the system's own address. */
static uint64_t
draw_node(const tr_system *sys)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        v = tr__now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)sys;
        v ^= v >> 33;
        v *= 0xff51afd7ed558ccdull;
        v ^= v >> 33;
    }
    return v != 0 ? v : 1;
}

int
tr_system_start(const tr_system_config *cfg, tr_system **out)
{
    tr_system *sys;
    int rc;

    if (out == NULL || (cfg != NULL && cfg->workers > TR_WORKERS_MAX)) {
        return TR_EINVAL;
    }
    if (tr__on_a_worker()) {
        return TR_ESTATE; /* a system's actors do not start systems */
    }
    sys = tr__calloc_aligned(sizeof(*sys));
    if (sys == NULL) {
        return TR_ENOMEM;
    }
    if (cfg != NULL) {
        sys->cfg = *cfg;
    }
    sys->batch = TR_BATCH;
    if (sys->cfg.sim != NULL) {
        /* One worker, never started: the driving thread runs it. */
        sys->cfg.workers = 1;
        sys->cfg.manual_clock = true;
        rc = tr__sim_create(sys, sys->cfg.sim);
        if (rc != TR_OK) {
            tr__free_aligned(sys, sizeof(*sys));
            return rc;
        }
        sys->cfg.sim = NULL; /* the caller's; sys->sim has the copy */
    }
    pthread_once(&fork_once, watch_forks);
    sys->fork_epoch = tr_load_relaxed(&tr__forks);
    /* A simulated run's addresses depend on its seed only. */
    sys->node = sys->sim != NULL ? tr__sim_node(sys) : draw_node(sys);
    tr_init_relaxed(&sys->shutting_down, false);
    tr_init_relaxed(&sys->torn_down, false);
    tr_init_relaxed(&sys->room_waiters, 0);
    tr_init_relaxed(&sys->waiting, 0);
    ck_ec32_init(&sys->ended, 0);
    tr_init_relaxed(&sys->inside, 0);
    tr_init_relaxed(&sys->ext_spawned, 0);
    tr_init_relaxed(&sys->ext_stopped, 0);
    tr_init_relaxed(&sys->ext_failed, 0);
    tr_init_relaxed(&sys->ext_dead, 0);
    tr_init_relaxed(&sys->watched, 0);
    tr_init_relaxed(&sys->overdue_ns, UINT64_MAX);
    tr_init_relaxed(&sys->calls_overdue, 0);
    tr_init_relaxed(&sys->io, NULL);
    ck_ec32_init(&sys->room, 0);
    tr_init_relaxed(&sys->next_ref, 0);
    tr_init_relaxed(&sys->gave_up, 0);
    ck_ec32_init(&sys->gave_up_ec, 0);
    pthread_mutex_init(&sys->tree_lock, NULL);
    pthread_mutex_init(&sys->outside_lock, NULL);
    pthread_mutex_init(&sys->live_lock, NULL);
    tr_init_relaxed(&sys->nstop_reserve, 0);
    sys->thread_ctx.sys = sys;

    rc = tr__names_create(&sys->names);
    if (rc != TR_OK) {
        tr__sim_destroy(sys);
        tr__free_aligned(sys, sizeof(*sys));
        return rc;
    }
    rc = tr__pgs_create(&sys->pgs);
    if (rc != TR_OK) {
        tr__names_destroy(sys->names);
        tr__sim_destroy(sys);
        tr__free_aligned(sys, sizeof(*sys));
        return rc;
    }
    rc = tr__table_create(&sys->table);
    if (rc != TR_OK) {
        tr__pgs_destroy(sys->pgs);
        tr__names_destroy(sys->names);
        tr__sim_destroy(sys);
        tr__free_aligned(sys, sizeof(*sys));
        return rc;
    }
    rc = tr__timers_create(sys->cfg.manual_clock, tr__timer_fire,
                           tr__timer_drop, &sys->timers);
    if (rc != TR_OK) {
        tr__table_destroy(sys->table);
        tr__pgs_destroy(sys->pgs);
        tr__names_destroy(sys->names);
        tr__sim_destroy(sys);
        tr__free_aligned(sys, sizeof(*sys));
        return rc;
    }
    rc = tr__sched_create(sys->cfg.workers, sizeof(tr_wlocal), tr__actor_run,
                          sys, &sys->sched);
    if (rc == TR_OK) {
        rc = tr__env_depot_create(&sys->depot, tr__sched_workers(sys->sched));
        if (rc == TR_OK) {
            unsigned n = tr__sched_workers(sys->sched);
            for (unsigned i = 0; i < n; i++) {
                tr_wlocal *wl = tr__sched_worker_data(sys->sched, i);
                tr__env_cache_init(&wl->envs, sys->depot, i);
            }
            /* A simulation's driving thread runs the one worker. */
            rc = sys->sim != NULL ? TR_OK : tr__sched_start(sys->sched);
        }
        if (rc != TR_OK) {
            tr__env_depot_destroy(sys->depot);
            tr__sched_destroy(sys->sched);
        }
    }
    if (rc != TR_OK) {
        tr__timers_destroy(sys->timers);
        tr__table_destroy(sys->table);
        tr__pgs_destroy(sys->pgs);
        tr__names_destroy(sys->names);
        tr__sim_destroy(sys);
        tr__free_aligned(sys, sizeof(*sys));
        return rc;
    }
    /* As memory allows (it is topped up again after each use). */
    tr__stop_reserve_fill(sys);
    *out = sys;
    return TR_OK;
}

int
tr__sys_enter(tr_system *sys)
{
    if (tr__sys_check(sys) != TR_OK) {
        return TR_EFORKED;
    }
    /* seq_cst, both: against shutdown's store of the flag and its read of
     * `inside` (see the top comment). */
    tr_faa_seqcst(&sys->inside, 1);
    if (tr_load_seqcst(&sys->shutting_down)) {
        tr_fas_acqrel(&sys->inside, 1);
        return TR_ESHUTDOWN;
    }
    return TR_OK;
}

void
tr__sys_leave(tr_system *sys)
{
    /* Release: shutdown's acquire read of 0 sees everything the call did. */
    tr_fas_acqrel(&sys->inside, 1);
}

int
tr__sys_enter_any(tr_system *sys, bool *entered)
{
    /* A fork child's thread may still name a worker as its own (the fork
     * was made in a callback), so the check comes first. */
    if (tr__sys_check(sys) != TR_OK) {
        *entered = false;
        return TR_EFORKED;
    }
    *entered = tr__sched_current(sys->sched) == NULL;
    return *entered ? tr__sys_enter(sys) : TR_OK;
}

void
tr__outside_add(tr_system *sys, tr_outside *l)
{
    pthread_mutex_lock(&sys->outside_lock);
    l->prev = NULL;
    l->next = sys->outside;
    if (sys->outside != NULL) {
        sys->outside->prev = l;
    }
    sys->outside = l;
    l->listed = true;
    pthread_mutex_unlock(&sys->outside_lock);
}

bool
tr__outside_remove(tr_system *sys, tr_outside *l)
{
    bool was;

    pthread_mutex_lock(&sys->outside_lock);
    was = l->listed;
    if (was) {
        if (l->prev != NULL) {
            l->prev->next = l->next;
        } else {
            sys->outside = l->next;
        }
        if (l->next != NULL) {
            l->next->prev = l->prev;
        }
        l->listed = false;
    }
    pthread_mutex_unlock(&sys->outside_lock);
    return was;
}

/* Every registered object forgets the system (see tr_outside). */
static void
close_outside(tr_system *sys)
{
    tr_outside *l;

    pthread_mutex_lock(&sys->outside_lock);
    l = sys->outside;
    sys->outside = NULL;
    for (tr_outside *m = l; m != NULL; m = m->next) {
        m->listed = false;
    }
    pthread_mutex_unlock(&sys->outside_lock);
    while (l != NULL) {
        tr_outside *next = l->next; /* `close` may free `l` */
        l->close(l);
        l = next;
    }
}

tr_ctx *
tr_system_ctx(tr_system *sys)
{
    return sys != NULL ? &sys->thread_ctx : NULL;
}

tr_system *
tr_ctx_system(const tr_ctx *ctx)
{
    return ctx != NULL ? ctx->sys : NULL;
}

static void
stats_sum(tr_system *sys, tr_system_stats *out)
{
    tr_system_stats s = {0};
    uint64_t stopped;
    unsigned n;

    n = tr__sched_workers(sys->sched);
    s.workers = n;
    s.spawned = tr_load_relaxed(&sys->ext_spawned);
    stopped = tr_load_relaxed(&sys->ext_stopped);
    s.failed = tr_load_relaxed(&sys->ext_failed);
    s.dead_letters = tr_load_relaxed(&sys->ext_dead);
    for (unsigned i = 0; i < n; i++) {
        tr_wlocal *wl = tr__sched_worker_data(sys->sched, i);
        s.spawned += tr_load_relaxed(&wl->spawned);
        stopped += tr_load_relaxed(&wl->stopped);
        s.failed += tr_load_relaxed(&wl->failed);
        s.messages_handled += tr_load_relaxed(&wl->handled);
        s.dead_letters += tr_load_relaxed(&wl->dead);
    }
    /* The sums are not one atomic snapshot: clamp a transient skew. */
    s.live_actors = s.spawned > stopped ? s.spawned - stopped : 0;
    *out = s;
}

int
tr_system_stats_get(tr_system *sys, tr_system_stats *out)
{
    bool entered;
    int rc;

    if (sys == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    stats_sum(sys, out);
    if (entered) {
        tr__sys_leave(sys);
    }
    return TR_OK;
}

/* Ask every live incarnation to stop, except supervised ones (their
 * supervisors stop them, in order); returns how many are live. */
static uint32_t
request_stops(tr_system *sys, bool send)
{
    uint32_t len = tr__table_len(sys->table);
    uint32_t live = 0;

    for (uint32_t i = 0; i < len; i++) {
        tr_actor *a = tr__table_at(sys->table, i);
        /* seq_cst: pairs with spawn's publication (see the top comment). */
        uint64_t gen = tr_load_seqcst(&a->gen);
        if (!tr__gen_live(gen)) {
            continue;
        }
        live++;
        tr_ext *x = tr_load_acq(&a->ext);
        if (send && (x == NULL || tr_load_relaxed(&x->parent) == 0)) {
            /* On TR_ENOMEM the final pass stops it instead. */
            (void)tr__actor_request_stop(sys, a, gen, 0);
        }
    }
    return live;
}

/* The clock a plain thread's deadline runs on: the monotonic clock, or a
 * simulation's virtual one. */
static uint64_t
sys_now(tr_system *sys)
{
    return sys->sim != NULL ? tr__timers_now(sys->timers) : tr__now_ns();
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Until every plain thread's call has left (see the top comment). */
static void
wait_outside_calls(tr_system *sys)
{
    /* seq_cst: ordered after the store of the flag (see tr__sys_enter);
     * it acquires too, pairing with tr__sys_leave. */
    while (tr_load_seqcst(&sys->inside) != 0) {
        sleep_ms(1);
    }
}

/* With the workers joined: stop what is left, drop what is queued. */
static void
final_pass(tr_system *sys)
{
    uint32_t len = tr__table_len(sys->table);

    tr__tls.last_pass = true; /* their `stop` callbacks may not block */
    for (uint32_t i = 0; i < len; i++) {
        tr_actor *a = tr__table_at(sys->table, i);
        uint64_t gen = tr_load_relaxed(&a->gen);

        /* Nobody runs anything now: take the run-right unconditionally. */
        tr__mpsc_take_idle(&a->mbox);
        if (tr__gen_live(gen)) {
            tr_ctx ctx = {
                .sys = sys,
                .actor = a,
                .self = tr__addr_id(gen, i),
                .gen = gen,
            };
            const tr_exit exit = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
            tr_ext *x = tr_load_relaxed(&a->ext);
            /* A child its supervisor holds has run `stop` already. */
            tr__actor_finish(&ctx, &exit,
                             x == NULL || tr_load_relaxed(&x->held) == 0);
        }
        /* The end above left the slot idle: hold it again to drop what is
         * left. */
        (void)tr__mpsc_take_idle(&a->mbox);
        tr__actor_drain(&sys->thread_ctx, a, TR_DEAD_SHUTDOWN);
    }
    tr__tls.last_pass = false;
}

int
tr_system_shutdown(tr_system *sys, tr_timeout timeout)
{
    uint64_t deadline;
    int rc = TR_OK;

    if (sys == NULL) {
        return TR_EINVAL;
    }
    /* Entered before anything else of the system is read, as any call of
     * a plain thread: a second call, made while this one runs, finds the
     * flag and leaves, and the first frees nothing before it has left. */
    if ((rc = tr__sys_enter(sys)) != TR_OK) {
        return rc; /* a fork child's system lives in the parent: leave it */
    }
    if (tr__sched_current(sys->sched) != NULL || tr__in_init() ||
        tr__tls.inspecting || !tr__sim_on_driver(sys)) {
        rc = TR_ESTATE;
    } else if (tr_xchg_seqcst(&sys->shutting_down, true)) {
        /* seq_cst: see the top comment. A second call (a `stop` callback
         * of the last pass, say) changes nothing. */
        rc = TR_ESHUTDOWN;
    }
    tr__sys_leave(sys);
    if (rc != TR_OK) {
        return rc;
    }
    /* Threads waiting for room, or in tr_system_wait, see the flag now
     * and leave. */
    tr__ec_wake(&sys->room);
    tr__ec_wake(&sys->gave_up_ec);
    /* The live endpoint stops first: nothing reads the system for it
     * while it comes down. A tr_inspect_serve or tr_inspect_stop under
     * way finishes first (the lock); one after finds the flag. */
    pthread_mutex_lock(&sys->live_lock);
    if (sys->live_close != NULL) {
        sys->live_close(sys, false);
    }
    pthread_mutex_unlock(&sys->live_lock);

    deadline = tr_timeout_deadline_ns(sys_now(sys), timeout);
    if (request_stops(sys, true) != 0) {
        while (request_stops(sys, false) != 0) {
            if (sys_now(sys) >= deadline) {
                rc = TR_ETIMEDOUT;
                break;
            }
            if (sys->sim == NULL) {
                sleep_ms(1);
            } else if ((rc = tr__sim_wait_step(sys, deadline)) != TR_OK) {
                break; /* stuck or out of steps: the last pass ends them */
            }
        }
    }
    /* A plain thread's call that began before the flag (a spawn whose
     * `init` still runs, a send landing its message) ends against the
     * running system; its actors stop on the workers or in the last pass. */
    wait_outside_calls(sys);
    /* The I/O module, if one started (under this lock: io/loop.c). */
    pthread_mutex_lock(&sys->tree_lock);
    void (*io_end)(tr_system *, int) = sys->io_end;
    pthread_mutex_unlock(&sys->tree_lock);
    if (io_end != NULL) {
        io_end(sys, 0); /* its loop threads end */
    }
    tr__sched_stop(sys->sched);
    tr__timers_close(sys->timers);
    /* Release: outcomes of calls ended from here on are dropped. */
    tr_store_rel(&sys->torn_down, true);
    final_pass(sys);
    if (io_end != NULL) {
        io_end(sys, 1); /* every socket's owner has ended: free it all */
    }
    /* Every actor has ended, so every thread in tr_actor_wait has its
     * answer: let them leave before freeing what they read. */
    while (tr_load_seqcst(&sys->waiting) != 0) {
        sleep_ms(1);
    }
    close_outside(sys);
    if (sys->cfg.final_stats != NULL) {
        stats_sum(sys, sys->cfg.final_stats);
    }
    /* Calls that came after the flag have found it and are leaving. */
    wait_outside_calls(sys);
    if (sys->live_close != NULL) {
        sys->live_close(sys, true);
    }
    tr__timers_destroy(sys->timers);
    for (unsigned i = 0; i < tr__sched_workers(sys->sched); i++) {
        tr_wlocal *wl = tr__sched_worker_data(sys->sched, i);
        tr__env_cache_flush(&wl->envs);
        tr__call_cache_flush(wl);
        tr__state_cache_flush(wl);
    }
    tr__env_depot_destroy(sys->depot);
    tr__sched_destroy(sys->sched);
    tr__table_destroy(sys->table);
    tr__pgs_destroy(sys->pgs);
    tr__names_destroy(sys->names);
    tr__free(sys->roots, sizeof(void *) * sys->caproots);
    tr__stop_reserve_free(sys);
    tr__sim_destroy(sys);
    pthread_mutex_destroy(&sys->outside_lock);
    pthread_mutex_destroy(&sys->tree_lock);
    pthread_mutex_destroy(&sys->live_lock);
    tr__free_aligned(sys, sizeof(*sys));
    return rc;
}

int
tr_system_wait(tr_system *sys, tr_timeout timeout)
{
    int rc;

    if (sys == NULL) {
        return TR_EINVAL;
    }
    if (tr__on_a_worker() || tr__in_init() || tr__tls.inspecting ||
        !tr__sim_on_driver(sys)) {
        return TR_ESTATE;
    }
    /* A call on the system while it waits: shutdown wakes it (after
     * setting its flag) and waits for it to leave before freeing. */
    if ((rc = tr__sys_enter(sys)) != TR_OK) {
        return rc;
    }
    uint64_t deadline = tr_timeout_deadline_ns(sys_now(sys), timeout);
    for (;;) {
        uint32_t seen_ec = tr__ec_value(&sys->gave_up_ec);
        if (tr_load_acq(&sys->gave_up) != 0) {
            rc = TR_OK;
            break;
        }
        if (tr_load_acq(&sys->shutting_down)) {
            rc = TR_ESHUTDOWN;
            break;
        }
        uint64_t now = sys_now(sys);
        if (now >= deadline) {
            rc = TR_ETIMEDOUT;
            break;
        }
        if (sys->sim != NULL) {
            if ((rc = tr__sim_wait_step(sys, deadline)) != TR_OK) {
                break;
            }
            continue;
        }
        long wait = deadline == UINT64_MAX
                        ? -1
                        : (long)((deadline - now + 999999u) / 1000000u);
        tr__ec_wait_ms(&sys->gave_up_ec, seen_ec, wait);
    }
    tr__sys_leave(sys);
    return rc;
}
