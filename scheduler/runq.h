/*
 * A worker's local run queue: a fixed ring that its owner pushes and pops
 * and other workers steal half of. See runq.c.
 */
#ifndef TR_SCHEDULER_RUNQ_H
#define TR_SCHEDULER_RUNQ_H

#include "common/tr_atomic.h"
#include "common/tr_defs.h"

#include <stdbool.h>
#include <stdint.h>

/* A schedulable unit; the actor embeds it. `next` links free slots, the
 * inject queue's list (sched.c) and the simulation's runnable list. */
typedef struct tr_task {
    struct tr_task *next;
} tr_task;

/*
 * The systematic build (common/tr_systematic.h) runs a ring of 16 slots, so
 * that full and wrapped rings, which take hundreds of pushes in one steal
 * with 256, come up within the few thousand switch points of a short run
 * (small bounds find such bugs sooner). -DTR_SYSTEMATIC_RUNQ_CAP=256 gives
 * it the ring of the other builds.
 */
#ifdef TROUPE_SYSTEMATIC
#ifndef TR_SYSTEMATIC_RUNQ_CAP
#define TR_SYSTEMATIC_RUNQ_CAP 16
#endif
enum { TR_RUNQ_CAP = TR_SYSTEMATIC_RUNQ_CAP };
#else
enum { TR_RUNQ_CAP = 256 };
#endif

typedef struct tr_runq {
    /* Owner pops and stealers claim: steal position (high 32 bits) and
     * real head (low 32 bits); equal when no steal is in progress. */
    TR_CACHE_ALIGNED tr_atomic(uint64_t) head;
    /* Owner only writes; stealers read. */
    tr_atomic(uint32_t) tail;
    tr_atomic(tr_task *) buf[TR_RUNQ_CAP];
} tr_runq;

void tr__runq_init(tr_runq *q);

/*
 * Owner: push `t` at the back if the ring has room for it (counting the
 * slots a thief may still be copying); false, with `t` untouched, if not.
 */
bool tr__runq_try_push(tr_runq *q, tr_task *t);

/* The most tasks one push hands back: half the ring and the task pushed. */
enum { TR_RUNQ_SPILL = TR_RUNQ_CAP / 2 + 1 };

/*
 * Owner: push `t` at the back. When the ring is full, moves `t` and half
 * the ring, oldest first, into `spill` (TR_RUNQ_SPILL slots) for the caller
 * to move to the shared queue, and returns how many; while a thief holds a
 * claim on a full ring, `t` alone. Returns 0 when `t` is in the ring.
 * Either way the caller must place every task in `spill`. The tasks are
 * not touched: the ring and `spill` hold pointers, not links.
 */
unsigned tr__runq_push(tr_runq *q, tr_task *t, tr_task **spill);

/* Owner: pop the front task, or NULL. Prefetches the task behind it, which
 * the owner most likely runs next, so that its cache line is on its way
 * while this one runs. */
tr_task *tr__runq_pop(tr_runq *q);

/*
 * Thief (owner of `dst`): move about half of `src` into `dst` and return
 * one of them to run now; NULL when nothing was taken (empty, another thief
 * is at work, or `dst` has no room). tr__runq_steal_claim followed by
 * tr__runq_steal_finish.
 */
tr_task *tr__runq_steal(tr_runq *src, tr_runq *dst);

/* A thief's claim on a victim's slots, between claim and finish. */
typedef struct tr_runq_claim {
    uint64_t head;  /* src's head as the claim left it */
    uint32_t first; /* first claimed position */
    uint32_t n;     /* tasks claimed, at least 1 */
} tr_runq_claim;

/*
 * The two halves of a steal, apart so that tests can hold a thief between
 * them. Claim: take about half of `src`, as many as `dst` has room for plus
 * the one returned, and return how many (0: nothing claimed, no finish).
 * Until finish the owner of `src` may pop past the claim but must not
 * overwrite its slots, and no other thief may steal from `src`. Finish:
 * copy the claimed tasks into `dst`, end the claim, and return the one to
 * run now.
 */
uint32_t tr__runq_steal_claim(tr_runq *src, tr_runq *dst, tr_runq_claim *c);
tr_task *tr__runq_steal_finish(tr_runq *src, tr_runq *dst,
                               const tr_runq_claim *c);

/* Tasks queued now (a snapshot; any thread). */
uint32_t tr__runq_len(tr_runq *q);

/*
 * Positions, counted since the ring began and wrapping: how many tasks
 * were ever pushed (`tail`), and taken by its owner or thieves (`head`).
 * A task pushed when the push count was P has left the ring once the take
 * count passes P. Snapshots; any thread.
 */
uint32_t tr__runq_pushed(tr_runq *q);
uint32_t tr__runq_taken(tr_runq *q);

#endif /* TR_SCHEDULER_RUNQ_H */
