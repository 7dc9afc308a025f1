/*
 * Test-only switches that bring fixed bugs back, so that the simulation's
 * canaries (tests/sim/) can show the simulation finds them. Each is off in
 * production: only tests set `tr__test_bugs`, before the system they
 * watch starts. A switch is read only on a cold path or inside a branch
 * that is already the unlikely one (a failed check), never on a hot path.
 */
#ifndef TR_COMMON_TESTBUG_H
#define TR_COMMON_TESTBUG_H

#include "common/tr_atomic.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    /*
     * OTP's orphaned grandchild (ERL-724, fixed in OTP in 2021; fixed here
     * in 34727cd): a child supervisor killed by its supervisor (brutal, or
     * at its shutdown deadline) ends at once, as a worker does, and cuts
     * the children it has not stopped yet loose instead of killing them.
     */
    TR_TEST_BUG_ORPHAN_SUBTREE = 1u << 0,
    /*
     * The generation check skipped on delivery: a message to an ended
     * incarnation is delivered to whichever incarnation holds its slot now
     * (the send's lookup and the runner's check compare the slot index
     * only).
     */
    TR_TEST_BUG_STALE_DELIVERY = 1u << 1,
};

/* The switches that are on (TR_TEST_BUG_* bits); 0 in production. */
extern tr_atomic(uint32_t) tr__test_bugs;

/* Is `bug` on? Relaxed: set by a test before the system it watches runs. */
static inline bool
tr__test_bug(uint32_t bug)
{
    return (tr_load_relaxed(&tr__test_bugs) & bug) != 0;
}

#endif /* TR_COMMON_TESTBUG_H */
