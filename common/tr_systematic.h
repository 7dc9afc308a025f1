/*
 * The systematic build (TROUPE_SYSTEMATIC, CMake option of the same name):
 * troupe's real threads run one at a time, and a seeded scheduler of
 * troupe's own decides at every switch point which one runs next. Switch
 * points are every operation of common/tr_atomic.h, every park and wake of
 * common/tr_park.h, and the thread calls the build intercepts (creating,
 * joining, locking, sleeping, reading the monotonic clock). The same seed
 * gives the same sequence of decisions, so a failing interleaving of the
 * scheduler, mailbox or channel cores replays from its seed.
 *
 * Only this build compiles common/tr_systematic.c; in every other build the
 * header declares nothing and the macros that use it are the plain
 * operations. See docs/testing.md for how to run it.
 */
#ifndef TR_SYSTEMATIC_H
#define TR_SYSTEMATIC_H

#ifdef TROUPE_SYSTEMATIC

#include <stdbool.h>
#include <stdint.h>

struct ck_ec32;

/*
 * A switch point: the calling thread may be stopped here and another run
 * until the scheduler picks the caller again. Advances the logical clock.
 */
void tr__sys_point(void);

/*
 * Park on `ec` until its value differs from `seen`, or `timeout_ms`
 * (negative: forever) of logical time passed. Returns 0 when the count
 * changed, -1 on timeout. The thread is not runnable in between.
 */
int tr__sys_ec_wait(struct ck_ec32 *ec, uint32_t seen, long timeout_ms);

/* The logical clock, in nanoseconds: it advances at every switch point and
 * jumps to the earliest deadline when every thread waits. */
uint64_t tr__sys_now_ns(void);

/* Sleep `ns` of logical time: other threads run meanwhile. */
void tr__sys_sleep_ns(uint64_t ns);

/*
 * The scheduler's table of held locks, for locks it does not wrap itself
 * (libevent's): wait until `lock` may be taken (shared: as a reader) and
 * note it taken; take it if free (not shared; false if not); note it
 * released. A writer may take its own lock again (recursive).
 */
void tr__sys_lock_wait(const void *lock, bool shared);
bool tr__sys_lock_try(const void *lock);
void tr__sys_lock_done(const void *lock);

/*
 * Bugs that were fixed, brought back for a run by TROUPE_SYSTEMATIC_BUG=name
 * so tests can show this build finds them. Never set outside those tests.
 */
typedef enum tr_sys_bug {
    /* inject_pop drops a task that a ring a descheduled thief still holds
     * refuses (fixed in 714427e: the fork-join lost actor). */
    TR_SYS_BUG_INJECT_DROP,
} tr_sys_bug;

/* Whether this run brings back `bug`. */
bool tr__sys_bug(tr_sys_bug bug);

#endif /* TROUPE_SYSTEMATIC */

#endif /* TR_SYSTEMATIC_H */
