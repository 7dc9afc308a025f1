/*
 * Local run queue with batch stealing, after tokio's multi-thread scheduler.
 *
 * A ring of TR_RUNQ_CAP task pointers. `tail` is the next free position,
 * written only by the owner (release, so a thief that reads it acquires the
 * slots below it). `head` packs two 32-bit positions: `real`, the next task
 * the owner will pop, and `steal`, the first slot a thief may still be
 * copying. With no thief at work they are equal.
 *
 * Owner pop: CAS head forward by one (moving `steal` along only when no
 * thief is at work). Thief: CAS `real` forward by half the queue, leaving
 * `steal` where it was; that claims the slots [steal, real') and tells other
 * thieves to go away. It copies them into its own ring, then CASes `steal`
 * up to `real` to end the claim. The owner never overwrites a slot at or
 * after `steal` (it checks tail - steal < CAP), so the copy reads stable
 * slots. Positions are 32-bit counters that wrap; only differences matter.
 *
 * Invariants: tail - steal <= CAP; steal <= real <= tail (mod 2^32).
 */
#include "scheduler/runq.h"

#include <stddef.h>

enum { MASK = TR_RUNQ_CAP - 1 };

static uint64_t
pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}

static uint32_t
steal_of(uint64_t head)
{
    return (uint32_t)(head >> 32);
}

static uint32_t
real_of(uint64_t head)
{
    return (uint32_t)head;
}

void
tr__runq_init(tr_runq *q)
{
    tr_init_relaxed(&q->head, 0);
    tr_init_relaxed(&q->tail, 0);
    for (unsigned i = 0; i < TR_RUNQ_CAP; i++) {
        tr_init_relaxed(&q->buf[i], NULL);
    }
}

static tr_task *
take_half(tr_runq *q, uint32_t real, tr_task *t, unsigned *n)
{
    const uint32_t half = TR_RUNQ_CAP / 2;
    uint64_t expected = pack(real, real);
    tr_task *first = NULL;
    tr_task **link = &first;

    /* acq_rel: claims the slots against thieves, whose CAS reads head. */
    if (!tr_cas_acqrel(&q->head, &expected, pack(real + half, real + half))) {
        return NULL; /* a thief moved head; the caller retries the push */
    }
    for (uint32_t i = 0; i < half; i++) {
        tr_task *task = tr_load_relaxed(&q->buf[(real + i) & MASK]);
        *link = task;
        link = &task->next;
    }
    *link = t;
    t->next = NULL;
    *n = half + 1;
    return first;
}

tr_task *
tr__runq_push(tr_runq *q, tr_task *t, unsigned *n)
{
    for (;;) {
        /* Acquire: pairs with thieves' release of `steal`, after which the
         * slots they copied may be reused. */
        uint64_t head = tr_load_acq(&q->head);
        uint32_t tail = tr_load_relaxed(&q->tail);
        uint32_t steal = steal_of(head);

        if (tail - steal < TR_RUNQ_CAP) {
            tr_store_relaxed(&q->buf[tail & MASK], t);
            /* Release: publishes the slot to thieves and to nobody else. */
            tr_store_rel(&q->tail, tail + 1);
            return NULL;
        }
        if (steal != real_of(head)) {
            /* Full while a thief copies: hand just this task over. */
            t->next = NULL;
            *n = 1;
            return t;
        }
        tr_task *batch = take_half(q, real_of(head), t, n);
        if (batch != NULL) {
            return batch;
        }
    }
}

tr_task *
tr__runq_pop(tr_runq *q)
{
    uint64_t head = tr_load_acq(&q->head);

    for (;;) {
        uint32_t steal = steal_of(head);
        uint32_t real = real_of(head);
        uint64_t next;

        if (real == tr_load_relaxed(&q->tail)) {
            return NULL;
        }
        next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
        /* acq_rel: orders our slot read against thieves' claims; failure
         * reloads head. */
        if (tr_cas_acqrel(&q->head, &head, next)) {
            return tr_load_relaxed(&q->buf[real & MASK]);
        }
    }
}

tr_task *
tr__runq_steal(tr_runq *src, tr_runq *dst)
{
    uint32_t dst_tail = tr_load_relaxed(&dst->tail);
    uint64_t prev = tr_load_acq(&src->head);
    uint64_t next;
    uint32_t first;
    uint32_t n;

    for (;;) {
        uint32_t steal = steal_of(prev);
        uint32_t real = real_of(prev);

        if (steal != real) {
            return NULL; /* another thief is at work */
        }
        /* Acquire: pairs with the owner's release of tail; the slots below
         * it are written. */
        n = tr_load_acq(&src->tail) - real;
        n -= n / 2;
        if (n == 0) {
            return NULL;
        }
        if (n > TR_RUNQ_CAP / 2) {
            n = TR_RUNQ_CAP / 2;
        }
        next = pack(steal, real + n);
        if (tr_cas_acqrel(&src->head, &prev, next)) {
            first = real;
            break;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        tr_task *t = tr_load_relaxed(&src->buf[(first + i) & MASK]);
        tr_store_relaxed(&dst->buf[(dst_tail + i) & MASK], t);
    }
    /* End the claim: steal catches up with real, wherever the owner has
     * popped it to. acq_rel: releases the copied slots to the owner. */
    prev = next;
    for (;;) {
        uint32_t real = real_of(prev);
        if (tr_cas_acqrel(&src->head, &prev, pack(real, real))) {
            break;
        }
    }
    n -= 1;
    tr_task *ret = tr_load_relaxed(&dst->buf[(dst_tail + n) & MASK]);
    if (n != 0) {
        /* Release: publishes the copied slots in our own ring. */
        tr_store_rel(&dst->tail, dst_tail + n);
    }
    return ret;
}

uint32_t
tr__runq_len(tr_runq *q)
{
    uint64_t head = tr_load_acq(&q->head);
    uint32_t tail = tr_load_acq(&q->tail);
    return tail - real_of(head);
}
