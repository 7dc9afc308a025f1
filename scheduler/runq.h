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

/* A schedulable unit; the actor embeds it. `next` links inject batches. */
typedef struct tr_task {
    struct tr_task *next;
} tr_task;

enum { TR_RUNQ_CAP = 256 };

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
 * Owner: push `t` at the back. When the ring is full, returns a list (via
 * `next`) of `t` plus half the ring, taken out for the caller to move to the
 * shared queue, and its length in `*n`; otherwise returns NULL.
 */
tr_task *tr__runq_push(tr_runq *q, tr_task *t, unsigned *n);

/* Owner: pop the front task, or NULL. */
tr_task *tr__runq_pop(tr_runq *q);

/*
 * Thief (owner of `dst`, which must be empty): move about half of `src`
 * into `dst` and return one of them to run now; NULL when nothing was
 * taken (empty, or another thief is at work).
 */
tr_task *tr__runq_steal(tr_runq *src, tr_runq *dst);

/* Tasks queued now (a snapshot; any thread). */
uint32_t tr__runq_len(tr_runq *q);

#endif /* TR_SCHEDULER_RUNQ_H */
