/*
 * The systematic build's token scheduler: every thread that runs troupe
 * code (workers, the timer thread, the watchdog, io loops, test threads) is
 * registered here, and only the holder of the token runs. At each switch
 * point the holder decides who runs next and hands the token over; the
 * others wait on their own condition variable. Pony's systematic testing
 * (ponyc src/libponyrt/sched/systematic_testing.c) works the same way at
 * coarser points; Verona's explore mode is its ancestor.
 *
 * Choice. Each thread has a priority, drawn from the seed when the thread
 * is created; the runnable thread with the highest priority runs. At each
 * switch point the running thread draws a new priority with probability
 * 1/period (the period itself drawn from the seed: 4 to 256), so that
 * switches are rare and most stretches of code run uninterrupted, and a
 * thread that draws a low priority stays off for a long, heavy-tailed
 * while: the descheduled thief of a lost-task bug. The tail is cut at
 * `starve` switch points (50 ms of logical time by default): a thread
 * runnable for that long without running goes first, so that no timeout of
 * a test or of the runtime expires only because a thread never ran. A
 * thread waiting for a lock counts as runnable for this: the table's locks
 * have no fairness, and a waiter of low priority against a holder that
 * unlocks and locks again at once (a snapshot in a loop) would lose every
 * hand-over, where a real waiter, on a core of its own, takes the lock in
 * the holder's first gap (supervisor_stress, docs/testing.md). A
 * thread that spins (sched_yield) draws a new priority at each turn, so
 * that the thread it waits for gets to run. This is a randomised form of
 * PCT (Burckhardt et al., ASPLOS 2010), without its fixed count of change
 * points.
 *
 * Runnable. A thread is runnable unless it waits: on an event count (until
 * its value moves or the wait's logical deadline passes), in a sleep (until
 * the deadline), in a join (until the joined thread exited), for a mutex or
 * rwlock (until the scheduler's table of held locks says it may take it:
 * every lock and unlock goes through here, so the table is the truth), or
 * at a barrier (until its last thread arrives; barriers are kept here, not
 * in libc). The holder evaluates these predicates itself while every other
 * thread is stopped, so a wake needs no hook of its own: incrementing the
 * count is what makes the waiter runnable. When nothing is runnable the
 * logical clock jumps to the earliest deadline; when no thread has one
 * either, every thread waits for a wake that never comes: a deadlock or a
 * lost wakeup, reported with the seed.
 *
 * Time. Under serialisation the wall clock means nothing and reading it
 * would make a seed replay differently (Pony's lesson), so this build's
 * tr__now_ns and CLOCK_MONOTONIC read a logical clock that advances TICK_NS
 * at every switch point.
 *
 * Interception. Threads and blocking outside troupe go through the linker:
 * the build links with --wrap for pthread_create, pthread_join, the mutex
 * and rwlock locks, barriers, nanosleep, usleep, sched_yield,
 * clock_gettime (and blocking I/O: tr_systematic_io.c; libevent's loops:
 * tr_systematic_event.c), so that
 * troupe's and the tests' calls land in the __wrap_ functions below, which
 * reach libc through __real_ (ld's convention). Code outside the static
 * link (jemalloc, libc itself, cmocka) calls libc directly.
 *
 * Determinism. The decisions depend only on the seed and on what the
 * threads do, never on timing: a thread's id is its creation order, the
 * threads are scanned in slot order, and slots are reused lowest first.
 * Every hand-over is folded into a fingerprint printed at exit, so two runs
 * of one seed can be compared.
 *
 * Global state: one token scheduler per process, because it schedules OS
 * threads, whichever system they belong to. Only the token holder touches
 * it, except `current`, which the lock guards.
 */
#include "common/tr_systematic.h"

#include <ck_ec.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_THREADS = 256,
    MAX_HELD = 256,
    MAX_BARRIERS = 64,
    TICK_NS = 1000,
    RERUN_MAX = 2048,
    DEFAULT_LIMIT_S = 240,
    DEFAULT_STARVE = 50000,
};

#define TR_SYS_EXPORT __attribute__((visibility("default")))

/* The real functions behind the wrapped ones (ld --wrap). */
int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __real_pthread_join(pthread_t th, void **ret);
int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __real_pthread_mutex_unlock(pthread_mutex_t *m);
int __real_pthread_rwlock_rdlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_unlock(pthread_rwlock_t *l);
int __real_clock_gettime(clockid_t clk, struct timespec *ts);
ssize_t __real_read(int fd, void *buf, size_t len);
ssize_t __real_write(int fd, const void *buf, size_t len);
int __real_pthread_barrier_init(pthread_barrier_t *b,
                                const pthread_barrierattr_t *attr,
                                unsigned count);

typedef enum thread_state {
    T_FREE,
    T_RUNNABLE,
    T_WAIT_EC,
    T_WAIT_TIME,
    T_WAIT_JOIN,
    T_WAIT_LOCK,
    T_WAIT_BARRIER,
    T_EXITED,
} thread_state;

/* A mutex or rwlock some thread holds: at most one writer (a mutex's
 * owner) or any number of readers. */
typedef struct held_lock {
    const void *lock;
    struct sys_thread *writer;
    unsigned depth; /* the writer's holds: libevent's locks are recursive */
    unsigned readers;
} held_lock;

/* A barrier: how many it waits for, how many are there, and which round
 * (a waiter goes on when the round it arrived in is over). */
typedef struct barrier {
    const void *b;
    unsigned count;
    unsigned arrived;
    uint64_t round;
} barrier;

typedef struct sys_thread {
    thread_state state;
    unsigned id; /* creation order: stable across runs of a seed */
    int64_t prio;
    /* The last point it ran or could not run; a lock waiter's stays at
     * the point it began to wait (see pick). */
    uint64_t ready_since;
    pthread_cond_t cv;
    pthread_t os;
    /* what it waits for */
    const struct ck_ec32 *ec;
    uint32_t seen;
    uint64_t deadline; /* logical ns; UINT64_MAX: none */
    struct sys_thread *join;
    const void *lock;
    bool shared; /* a read lock */
    const barrier *barrier;
    uint64_t round;
    /* what it runs, for a thread created here */
    void *(*fn)(void *);
    void *arg;
} sys_thread;

static struct {
    pthread_mutex_t lock;
    sys_thread *current; /* the token; written under lock */
    bool started;
    uint64_t seed;
    uint64_t rng;
    uint64_t period;
    uint64_t starve;
    long bug; /* -1: none */
    uint64_t now_ns;
    uint64_t points;
    uint64_t switches;
    uint64_t fingerprint;
    unsigned next_id;
    unsigned n_slots;
    sys_thread threads[MAX_THREADS];
    held_lock held[MAX_HELD];
    unsigned n_held;
    barrier barriers[MAX_BARRIERS];
    unsigned n_barriers;
    char rerun[RERUN_MAX];
    size_t rerun_len;
    volatile sig_atomic_t reported;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local sys_thread *self;

static const char *const bug_names[] = {
    [TR_SYS_BUG_INJECT_DROP] = "inject_drop",
};

/* ---- seeded choices: SplitMix64 (Steele et al., OOPSLA 2014) ---- */

static uint64_t
next_rand(void)
{
    uint64_t z = (W.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t
draw_prio(void)
{
    return (int64_t)(next_rand() >> 2);
}

static void
fold(uint64_t v)
{
    W.fingerprint = (W.fingerprint ^ v) * 0x100000001b3ull;
    W.fingerprint ^= W.fingerprint >> 29;
}

/* ---- reporting ---- */

/* Async-signal-safe: write(2) and hand-made numbers only. */
static void
put(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = __real_write(STDERR_FILENO, s, n);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void
put_str(const char *s)
{
    put(s, strlen(s));
}

static void
put_u64(uint64_t v)
{
    char buf[24];
    size_t i = sizeof(buf);

    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(buf + i, sizeof(buf) - i);
}

static void
put_hex(uint64_t v)
{
    char buf[18];

    buf[0] = '0';
    buf[1] = 'x';
    for (int i = 0; i < 16; i++) {
        buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    }
    put(buf, sizeof(buf));
}

static void
put_summary(void)
{
    put_str("systematic: seed=");
    put_u64(W.seed);
    put_str(" period=");
    put_u64(W.period);
    put_str(" points=");
    put_u64(W.points);
    put_str(" switches=");
    put_u64(W.switches);
    put_str(" fingerprint=");
    put_hex(W.fingerprint);
    put_str("\n");
}

/* The failure report: what, the run's figures, and the line that replays
 * it. Once per process. */
static void
report_failure(const char *what)
{
    if (W.reported) {
        return;
    }
    W.reported = 1;
    put_str("\nsystematic: FAILED: ");
    put_str(what);
    put_str("\n");
    put_summary();
    put(W.rerun, W.rerun_len);
}

static void
on_fatal_signal(int sig)
{
    report_failure(sig == SIGABRT   ? "abort"
                   : sig == SIGALRM ? "real-time limit passed (hang?)"
                                    : "fatal signal");
    if (sig == SIGALRM) {
        sig = SIGABRT;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
at_exit(void)
{
    put_summary();
}

/* A fork child has only the thread that forked: it runs alone, and on. */
static void
forked_child(void)
{
    for (unsigned i = 0; i < W.n_slots; i++) {
        if (&W.threads[i] != self && W.threads[i].state != T_FREE) {
            W.threads[i].state = T_EXITED;
        }
    }
    /* Locks other threads held stay held, as libc's do: taking one is a
     * deadlock, and reported as one. */
    W.current = self;
}

/* "rerun: TROUPE_SYSTEMATIC_SEED=<n> [the other knobs set] <command>". */
static void
build_rerun_line(void)
{
    static const char *const knobs[] = {"TROUPE_SYSTEMATIC_BUG",
                                        "TROUPE_SYSTEMATIC_PERIOD",
                                        "TROUPE_SYSTEMATIC_STARVE"};
    char cmd[RERUN_MAX / 2];
    size_t n = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY);
    size_t at;
    int len;

    if (fd >= 0) {
        ssize_t r = __real_read(fd, cmd, sizeof(cmd) - 1);
        n = r > 0 ? (size_t)r : 0;
        close(fd);
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (cmd[i] == '\0') {
            cmd[i] = ' ';
        }
    }
    cmd[n] = '\0';
    len = snprintf(W.rerun, sizeof(W.rerun),
                   "rerun: TROUPE_SYSTEMATIC_SEED=%" PRIu64, W.seed);
    at = len > 0 ? (size_t)len : 0;
    for (size_t i = 0; i < sizeof(knobs) / sizeof(*knobs); i++) {
        const char *v = getenv(knobs[i]);
        if (v != NULL && *v != '\0' && at < sizeof(W.rerun)) {
            len = snprintf(W.rerun + at, sizeof(W.rerun) - at, " %s=%s",
                           knobs[i], v);
            at += len > 0 ? (size_t)len : 0;
        }
    }
    if (at < sizeof(W.rerun)) {
        len = snprintf(W.rerun + at, sizeof(W.rerun) - at, " %s\n", cmd);
        at += len > 0 ? (size_t)len : 0;
    }
    W.rerun_len = at < sizeof(W.rerun) ? at : sizeof(W.rerun) - 1;
}

static uint64_t
env_u64(const char *name, uint64_t otherwise)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : otherwise;
}

/* The first call, on the thread that starts the world: it holds the token
 * from here on. */
static void
start_world(void)
{
    struct timespec ts;
    const char *bug = getenv("TROUPE_SYSTEMATIC_BUG");
    struct sigaction sa;

    __real_clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Without a seed, one from the clock: printed at exit like any other. */
    W.seed = env_u64("TROUPE_SYSTEMATIC_SEED",
                     (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
    W.rng = W.seed;
    W.period = env_u64("TROUPE_SYSTEMATIC_PERIOD", 4u << (next_rand() % 7));
    if (W.period == 0) {
        W.period = 1;
    }
    W.starve = env_u64("TROUPE_SYSTEMATIC_STARVE", DEFAULT_STARVE);
    W.bug = -1;
    for (size_t i = 0;
         bug != NULL && i < sizeof(bug_names) / sizeof(*bug_names); i++) {
        if (strcmp(bug, bug_names[i]) == 0) {
            W.bug = (long)i;
        }
    }
    if (bug != NULL && *bug != '\0' && W.bug < 0) {
        fprintf(stderr, "systematic: unknown TROUPE_SYSTEMATIC_BUG=%s\n", bug);
        abort();
    }
    W.fingerprint = 0xcbf29ce484222325ull;
    /* One second in: code that takes a zero time for "never" still works. */
    W.now_ns = 1000000000u;
    build_rerun_line();

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)env_u64("TROUPE_SYSTEMATIC_LIMIT_S", DEFAULT_LIMIT_S));
    atexit(at_exit);
    pthread_atfork(NULL, NULL, forked_child);

    sys_thread *t = &W.threads[0];
    pthread_cond_init(&t->cv, NULL);
    t->state = T_RUNNABLE;
    t->id = W.next_id++;
    t->prio = draw_prio();
    t->ready_since = W.points;
    t->os = pthread_self();
    t->deadline = UINT64_MAX;
    W.n_slots = 1;
    W.current = t;
    W.started = true;
    self = t;
}

/* Every entry point: the caller must be a registered thread. */
static void
enter(void)
{
    if (self != NULL) {
        return;
    }
    if (!W.started) {
        start_world();
        return;
    }
    put_str("systematic: a thread not started through pthread_create "
            "called into troupe\n");
    abort();
}

/* ---- the table of held locks ---- */

static held_lock *
find_held(const void *lock)
{
    for (unsigned i = 0; i < W.n_held; i++) {
        if (W.held[i].lock == lock) {
            return &W.held[i];
        }
    }
    return NULL;
}

static bool
lock_free_for(const void *lock, bool shared, const sys_thread *who)
{
    const held_lock *h = find_held(lock);

    return h == NULL || (shared && h->writer == NULL) ||
           (!shared && h->writer == who);
}

static void
note_locked(const void *lock, bool shared)
{
    held_lock *h = find_held(lock);

    if (h == NULL) {
        if (W.n_held == MAX_HELD) {
            put_str("systematic: too many locks held at once\n");
            abort();
        }
        h = &W.held[W.n_held++];
        h->lock = lock;
        h->writer = NULL;
        h->depth = 0;
        h->readers = 0;
    }
    if (shared) {
        h->readers++;
    } else {
        h->writer = self;
        h->depth++;
    }
}

static void
note_unlocked(const void *lock)
{
    held_lock *h = find_held(lock);

    if (h == NULL) {
        return;
    }
    if (h->writer != NULL) {
        if (--h->depth == 0) {
            h->writer = NULL;
        }
    } else if (h->readers > 0) {
        h->readers--;
    }
    if (h->writer == NULL && h->readers == 0) {
        *h = W.held[--W.n_held];
    }
}

/* ---- choosing and handing over ---- */

static bool
runnable(const sys_thread *t)
{
    switch (t->state) {
    case T_RUNNABLE:
        return true;
    case T_WAIT_EC:
        return ck_ec32_value(t->ec) != t->seen || W.now_ns >= t->deadline;
    case T_WAIT_TIME:
        return W.now_ns >= t->deadline;
    case T_WAIT_JOIN:
        return t->join->state == T_EXITED;
    case T_WAIT_LOCK:
        return lock_free_for(t->lock, t->shared, t);
    case T_WAIT_BARRIER:
        return t->barrier->round != t->round;
    default:
        return false;
    }
}

static const char *
state_name(thread_state s)
{
    static const char *const names[] = {"free",    "runnable", "ec-wait",
                                        "sleep",   "join",     "lock",
                                        "barrier", "exited"};
    return names[s];
}

static _Noreturn void
deadlock(void)
{
    char line[160];

    put_str("systematic: deadlock: every thread waits and none has a "
            "deadline (a lost wakeup?)\n");
    for (unsigned i = 0; i < W.n_slots; i++) {
        const sys_thread *t = &W.threads[i];
        if (t->state == T_FREE || t->state == T_EXITED) {
            continue;
        }
        int n = snprintf(line, sizeof(line), "systematic:   thread %u: %s\n",
                         t->id, state_name(t->state));
        put(line, n > 0 ? (size_t)n : 0);
    }
    report_failure("deadlock");
    abort();
}

/* The runnable thread to run next; jumps the clock when all wait. */
static sys_thread *
pick(void)
{
    for (;;) {
        sys_thread *best = NULL;
        sys_thread *starved = NULL;
        int64_t top = INT64_MIN;
        uint64_t soonest = UINT64_MAX;

        for (unsigned i = 0; i < W.n_slots; i++) {
            sys_thread *t = &W.threads[i];
            if (t->state == T_FREE || t->state == T_EXITED) {
                continue;
            }
            if (t->prio > top) {
                top = t->prio;
            }
            if (!runnable(t)) {
                /* A lock waiter ages while the lock is held: it is not
                 * runnable only because another thread holds the lock
                 * at this point, not because it waits for an event, and
                 * one that loses every hand-over (a low priority against
                 * a holder that takes the lock again at once) would
                 * otherwise never reach the starvation cut. */
                if (t->state != T_WAIT_LOCK) {
                    t->ready_since = W.points;
                }
                if ((t->state == T_WAIT_EC || t->state == T_WAIT_TIME) &&
                    t->deadline < soonest) {
                    soonest = t->deadline;
                }
                continue;
            }
            if (t == self) {
                t->ready_since = W.points;
            } else if (W.points - t->ready_since > W.starve &&
                       (starved == NULL ||
                        t->ready_since < starved->ready_since)) {
                starved = t;
            }
            if (best == NULL || t->prio > best->prio) {
                best = t;
            }
        }
        if (starved != NULL) {
            starved->prio = top + 1;
            fold(~(uint64_t)starved->id);
            return starved;
        }
        if (best != NULL) {
            return best;
        }
        if (soonest == UINT64_MAX) {
            deadlock();
        }
        W.now_ns = soonest;
        fold(soonest);
    }
}

/* Give the token to `next` and wait until it comes back. */
static void
hand_to(sys_thread *next)
{
    if (next == self) {
        return;
    }
    W.switches++;
    fold(W.points << 16 | next->id);
    __real_pthread_mutex_lock(&W.lock);
    W.current = next;
    pthread_cond_signal(&next->cv);
    while (W.current != self) {
        pthread_cond_wait(&self->cv, &W.lock);
    }
    __real_pthread_mutex_unlock(&W.lock);
}

/* The caller has set how it waits; run others until it may go on. */
static void
reschedule(void)
{
    hand_to(pick());
    self->state = T_RUNNABLE;
}

/* A spinning caller waits for some other thread: a new priority at each
 * turn lets that thread run, sooner or later. */
static void
yield_to_others(void)
{
    enter();
    W.points++;
    W.now_ns += TICK_NS;
    self->prio = draw_prio();
    hand_to(pick());
}

void
tr__sys_point(void)
{
    enter();
    W.points++;
    W.now_ns += TICK_NS;
    if (next_rand() % W.period == 0) {
        self->prio = draw_prio();
    }
    hand_to(pick());
}

int
tr__sys_ec_wait(struct ck_ec32 *ec, uint32_t seen, long timeout_ms)
{
    enter();
    W.points++;
    W.now_ns += TICK_NS;
    if (ck_ec32_value(ec) == seen) {
        /* ck_ec's waiter flag, as its own wait sets it, so that
         * ck_ec32_has_waiters tells the truth in this build too. */
        __atomic_fetch_or(&ec->counter, UINT32_C(1) << 31, __ATOMIC_SEQ_CST);
    }
    self->state = T_WAIT_EC;
    self->ec = ec;
    self->seen = seen;
    self->deadline = timeout_ms < 0
                         ? UINT64_MAX
                         : W.now_ns + (uint64_t)timeout_ms * 1000000u;
    reschedule();
    self->deadline = UINT64_MAX;
    return ck_ec32_value(ec) != seen ? 0 : -1;
}

uint64_t
tr__sys_now_ns(void)
{
    /* A switch point too: a loop that waits for the clock to move must let
     * it move. */
    tr__sys_point();
    return W.now_ns;
}

bool
tr__sys_bug(tr_sys_bug bug)
{
    enter();
    return W.bug == (long)bug;
}

/* ---- the wrapped calls ---- */

static void *
thread_start(void *arg)
{
    sys_thread *t = arg;
    void *ret;

    self = t;
    __real_pthread_mutex_lock(&W.lock);
    while (W.current != t) {
        pthread_cond_wait(&t->cv, &W.lock);
    }
    __real_pthread_mutex_unlock(&W.lock);

    ret = t->fn(t->arg);

    /* Hand the token on for good; the joiner becomes runnable. */
    t->state = T_EXITED;
    sys_thread *next = pick();
    W.switches++;
    fold(W.points << 16 | next->id);
    __real_pthread_mutex_lock(&W.lock);
    W.current = next;
    pthread_cond_signal(&next->cv);
    __real_pthread_mutex_unlock(&W.lock);
    return ret;
}

TR_SYS_EXPORT int
__wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg)
{
    sys_thread *t = NULL;
    unsigned i;
    int rc;

    enter();
    for (i = 0; i < W.n_slots && W.threads[i].state != T_FREE; i++) {
    }
    if (i == MAX_THREADS) {
        return EAGAIN;
    }
    if (i == W.n_slots) {
        W.n_slots++;
        pthread_cond_init(&W.threads[i].cv, NULL);
    }
    t = &W.threads[i];
    t->state = T_RUNNABLE;
    t->id = W.next_id++;
    t->prio = draw_prio();
    t->ready_since = W.points;
    t->deadline = UINT64_MAX;
    t->join = NULL;
    t->fn = fn;
    t->arg = arg;
    rc = __real_pthread_create(th, attr, thread_start, t);
    if (rc != 0) {
        t->state = T_FREE;
        return rc;
    }
    t->os = *th;
    tr__sys_point(); /* the new thread may go first */
    return 0;
}

TR_SYS_EXPORT int
__wrap_pthread_join(pthread_t th, void **ret)
{
    sys_thread *t = NULL;

    enter();
    for (unsigned i = 0; i < W.n_slots; i++) {
        if (W.threads[i].state != T_FREE && &W.threads[i] != self &&
            pthread_equal(W.threads[i].os, th)) {
            t = &W.threads[i];
        }
    }
    if (t != NULL && t->state != T_EXITED) {
        self->state = T_WAIT_JOIN;
        self->join = t;
        reschedule();
        self->join = NULL;
    }
    int rc = __real_pthread_join(th, ret);
    if (t != NULL) {
        t->state = T_FREE;
    }
    return rc;
}

/* Wait until the table lets us take `lock` and note it taken; then the
 * real lock, which nobody else holds, cannot block. */
void
tr__sys_lock_wait(const void *lock, bool shared)
{
    tr__sys_point();
    if (!lock_free_for(lock, shared, self)) {
        self->state = T_WAIT_LOCK;
        self->lock = lock;
        self->shared = shared;
        reschedule();
        self->lock = NULL;
    }
    note_locked(lock, shared);
}

TR_SYS_EXPORT int
__wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
    tr__sys_lock_wait(m, false);
    return __real_pthread_mutex_lock(m);
}

bool
tr__sys_lock_try(const void *lock)
{
    tr__sys_point();
    if (!lock_free_for(lock, false, self)) {
        return false;
    }
    note_locked(lock, false);
    return true;
}

void
tr__sys_lock_done(const void *lock)
{
    enter();
    note_unlocked(lock);
    tr__sys_point(); /* a waiter may take it now */
}

TR_SYS_EXPORT int
__wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
    int rc = __real_pthread_mutex_unlock(m);

    tr__sys_lock_done(m);
    return rc;
}

TR_SYS_EXPORT int
__wrap_pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    tr__sys_lock_wait(l, true);
    return __real_pthread_rwlock_rdlock(l);
}

TR_SYS_EXPORT int
__wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    tr__sys_lock_wait(l, false);
    return __real_pthread_rwlock_wrlock(l);
}

TR_SYS_EXPORT int
__wrap_pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    int rc = __real_pthread_rwlock_unlock(l);

    tr__sys_lock_done(l);
    return rc;
}

void
tr__sys_sleep_ns(uint64_t ns)
{
    enter();
    W.points++;
    W.now_ns += TICK_NS;
    self->state = T_WAIT_TIME;
    self->deadline = W.now_ns + ns;
    reschedule();
    self->deadline = UINT64_MAX;
}

TR_SYS_EXPORT int
__wrap_nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000L) {
        errno = EINVAL;
        return -1;
    }
    tr__sys_sleep_ns((uint64_t)req->tv_sec * 1000000000u +
                     (uint64_t)req->tv_nsec);
    if (rem != NULL) {
        rem->tv_sec = 0;
        rem->tv_nsec = 0;
    }
    return 0;
}

TR_SYS_EXPORT int
__wrap_usleep(useconds_t us)
{
    tr__sys_sleep_ns((uint64_t)us * 1000u);
    return 0;
}

TR_SYS_EXPORT int
__wrap_sched_yield(void)
{
    yield_to_others();
    return 0;
}

TR_SYS_EXPORT int
__wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (clk != CLOCK_MONOTONIC && clk != CLOCK_MONOTONIC_RAW &&
        clk != CLOCK_MONOTONIC_COARSE && clk != CLOCK_BOOTTIME) {
        return __real_clock_gettime(clk, ts);
    }
    tr__sys_point();
    ts->tv_sec = (time_t)(W.now_ns / 1000000000u);
    ts->tv_nsec = (long)(W.now_ns % 1000000000u);
    return 0;
}

static barrier *
find_barrier(const void *b)
{
    for (unsigned i = 0; i < W.n_barriers; i++) {
        if (W.barriers[i].b == b) {
            return &W.barriers[i];
        }
    }
    return NULL;
}

TR_SYS_EXPORT int
__wrap_pthread_barrier_init(pthread_barrier_t *b,
                            const pthread_barrierattr_t *attr, unsigned count)
{
    barrier *r;

    enter();
    r = find_barrier(b);
    if (r == NULL) {
        if (W.n_barriers == MAX_BARRIERS) {
            return EAGAIN;
        }
        r = &W.barriers[W.n_barriers++];
    }
    r->b = b;
    r->count = count;
    r->arrived = 0;
    r->round = 0;
    return __real_pthread_barrier_init(b, attr, count);
}

TR_SYS_EXPORT int
__wrap_pthread_barrier_wait(pthread_barrier_t *b)
{
    barrier *r;

    tr__sys_point();
    r = find_barrier(b);
    if (r == NULL) {
        put_str("systematic: a barrier not made by pthread_barrier_init\n");
        abort();
    }
    if (++r->arrived == r->count) {
        r->arrived = 0;
        r->round++;
        return PTHREAD_BARRIER_SERIAL_THREAD;
    }
    self->state = T_WAIT_BARRIER;
    self->barrier = r;
    self->round = r->round;
    reschedule();
    self->barrier = NULL;
    return 0;
}
