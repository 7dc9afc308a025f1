/*
 * Parking threads on ck_ec event counts. ck_ec needs the platform's wait,
 * wake and clock; this file supplies them (Linux futexes, CLOCK_MONOTONIC)
 * and one helper that waits with a relative timeout in milliseconds.
 *
 * Protocol, as everywhere in troupe: read the count, publish "I am about to
 * sleep" where the waker will look, re-check the condition, then wait on the
 * value read first. A waker changes the condition, then increments the
 * count; the wait returns at once if the count moved since the read.
 */
#ifndef TR_PARK_H
#define TR_PARK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h> /* ck_ec.h uses struct timespec */

#include <ck_ec.h>

#include "common/tr_systematic.h"

extern const struct ck_ec_mode tr__ec_mode;

/* Current value of `ec` (acquire). */
static inline uint32_t
tr__ec_value(const struct ck_ec32 *ec)
{
    return ck_ec32_value(ec);
}

/* Wake every thread waiting on `ec` (release). A switch point in the
 * systematic build, like the atomics. */
static inline void
tr__ec_wake(struct ck_ec32 *ec)
{
#ifdef TROUPE_SYSTEMATIC
    tr__sys_point();
#endif
    ck_ec32_inc(ec, &tr__ec_mode);
}

/*
 * Wait until `ec` differs from `seen`, for at most `timeout_ms` (negative:
 * forever). Returns 0 when the count changed, -1 on timeout. In the
 * systematic build the thread waits for the scheduler's token instead, and
 * the timeout runs on the logical clock.
 */
int tr__ec_wait_ms(struct ck_ec32 *ec, uint32_t seen, long timeout_ms);

/* Monotonic time in nanoseconds (the systematic build's logical clock in
 * that build). */
uint64_t tr__now_ns(void);

/*
 * The calling thread's worker (opaque here), or NULL off the workers: the
 * one thread-local the runtime keeps, set by the scheduler. Here, below
 * every module, so that each blocking call refuses to wait on a worker of
 * any system through the same check (tr__on_a_worker).
 */
extern _Thread_local void *tr__tls_worker;

static inline bool
tr__on_a_worker(void)
{
    return tr__tls_worker != NULL;
}

#endif /* TR_PARK_H */
