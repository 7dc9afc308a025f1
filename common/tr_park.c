/*
 * ck_ec's platform operations on Linux: futex(2) wait and wake, and
 * CLOCK_MONOTONIC. ck_ec spins briefly, then sleeps in futex waits of
 * growing length until the deadline; a wake makes the futex return at once.
 */
#include "common/tr_park.h"

#include "common/tr_defs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int
ec_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
    (void)ops;
    return clock_gettime(CLOCK_MONOTONIC, out);
}

static void
ec_wait32(const struct ck_ec_wait_state *state, const uint32_t *addr,
          uint32_t expected, const struct timespec *deadline)
{
    struct timespec rel;
    struct timespec *timeout = NULL;

    (void)state;
    if (deadline != NULL) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        rel.tv_sec = deadline->tv_sec - now.tv_sec;
        rel.tv_nsec = deadline->tv_nsec - now.tv_nsec;
        if (rel.tv_nsec < 0) {
            rel.tv_sec -= 1;
            rel.tv_nsec += 1000000000L;
        }
        if (rel.tv_sec < 0) {
            return;
        }
        timeout = &rel;
    }
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, timeout, NULL, 0);
}

static void
ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
    (void)ops;
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static const struct ck_ec_ops ec_ops = {
    .gettime = ec_gettime,
    .wait32 = ec_wait32,
    .wake32 = ec_wake32,
    /* A short spin: a wake often follows within microseconds under load. */
    .busy_loop_iter = 64,
};

const struct ck_ec_mode tr__ec_mode = {
    .ops = &ec_ops,
    .single_producer = false,
};

#ifndef TROUPE_SYSTEMATIC
/*
 * ck_ec sleeps in growing steps (2 ms, 8 ms, 32 ms, ...) and checks the
 * caller's deadline only between steps, so a 20 ms wait could last 128 ms.
 * This predicate clamps every step to the caller's deadline.
 */
static int
clamp_step(const struct ck_ec_wait_state *state, struct timespec *step)
{
    const struct timespec *deadline = state->data;

    if (deadline != NULL && (step->tv_sec > deadline->tv_sec ||
                             (step->tv_sec == deadline->tv_sec &&
                              step->tv_nsec > deadline->tv_nsec))) {
        *step = *deadline;
    }
    return 0;
}
#endif

/* The attached driving threads (a cold path's lock: attach and detach
 * happen at a simulated system's start and end). */
enum { MAX_DRIVERS = 16 };
static pthread_mutex_t drivers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pthread_t thread;
    tr_park_sim sim;
} drivers[MAX_DRIVERS];
static unsigned ndrivers_locked;
/* Relaxed: a hint read by every wait; the lock decides (a thread looks
 * for its own attachment, which it made itself). Plain C11 operations,
 * not tr_atomic.h's: in the systematic build those are switch points, and
 * this hint must not add one to every wait of every program. */
static _Atomic unsigned ndrivers;

bool
tr__park_sim_attach(const tr_park_sim *s)
{
    bool ok = false;

    pthread_mutex_lock(&drivers_lock);
    if (ndrivers_locked < MAX_DRIVERS) {
        drivers[ndrivers_locked].thread = pthread_self();
        drivers[ndrivers_locked].sim = *s;
        ndrivers_locked++;
        atomic_store_explicit(&ndrivers, ndrivers_locked, memory_order_relaxed);
        ok = true;
    }
    pthread_mutex_unlock(&drivers_lock);
    return ok;
}

void
tr__park_sim_detach(void *sys)
{
    pthread_mutex_lock(&drivers_lock);
    for (unsigned i = 0; i < ndrivers_locked; i++) {
        if (drivers[i].sim.sys == sys) {
            memmove(&drivers[i], &drivers[i + 1],
                    sizeof(drivers[0]) * (ndrivers_locked - i - 1));
            ndrivers_locked--;
            atomic_store_explicit(&ndrivers, ndrivers_locked,
                                  memory_order_relaxed);
            break;
        }
    }
    pthread_mutex_unlock(&drivers_lock);
}

/* The simulation the calling thread drives (its latest), if any. */
static bool
driven(tr_park_sim *out)
{
    bool found = false;

    if (tr_likely(atomic_load_explicit(&ndrivers, memory_order_relaxed) == 0)) {
        return false;
    }
    pthread_mutex_lock(&drivers_lock);
    for (unsigned i = ndrivers_locked; i-- > 0;) {
        if (pthread_equal(drivers[i].thread, pthread_self())) {
            *out = drivers[i].sim;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&drivers_lock);
    return found;
}

uint64_t
tr__wait_now_ns(void)
{
    tr_park_sim s;

    return driven(&s) ? s.now(s.sys) : tr__now_ns();
}

/* The wait of a driving thread: steps until the count moves, the virtual
 * deadline passes, or nothing can ever move it. */
static int
sim_wait(const tr_park_sim *s, struct ck_ec32 *ec, uint32_t seen,
         long timeout_ms)
{
    uint64_t deadline = UINT64_MAX;

    if (timeout_ms >= 0) {
        deadline = s->now(s->sys) + (uint64_t)timeout_ms * 1000000u;
    }
    for (;;) {
        if (tr__ec_value(ec) != seen) {
            return 0;
        }
        if (deadline != UINT64_MAX && s->now(s->sys) >= deadline) {
            return -1;
        }
        int rc = s->step(s->sys, deadline);
        if (rc != 0) {
            return rc == TR_PARK_STUCK ? TR_PARK_STUCK : -1;
        }
    }
}

int
tr__ec_wait_ms(struct ck_ec32 *ec, uint32_t seen, long timeout_ms)
{
    tr_park_sim s;

    if (driven(&s)) {
        return sim_wait(&s, ec, seen, timeout_ms);
    }
#ifdef TROUPE_SYSTEMATIC
    return tr__sys_ec_wait(ec, seen, timeout_ms);
#else
    struct timespec deadline;

    if (timeout_ms < 0) {
        return ck_ec32_wait(ec, &tr__ec_mode, seen, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    return ck_ec32_wait_pred(ec, &tr__ec_mode, seen, clamp_step, &deadline,
                             &deadline);
#endif
}

uint64_t
tr__now_ns(void)
{
#ifdef TROUPE_SYSTEMATIC
    return tr__sys_now_ns();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

_Thread_local __attribute__((tls_model("initial-exec"))) tr_thread tr__tls;
