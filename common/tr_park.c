/*
 * ck_ec's platform operations on Linux: futex(2) wait and wake, and
 * CLOCK_MONOTONIC. ck_ec spins briefly, then sleeps in futex waits of
 * growing length until the deadline; a wake makes the futex return at once.
 */
#include "common/tr_park.h"

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

int
tr__ec_wait_ms(struct ck_ec32 *ec, uint32_t seen, long timeout_ms)
{
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

_Thread_local void *tr__tls_worker;
