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
 * thief is at work). Thief: CAS `real` forward by about half the queue,
 * leaving `steal` where it was; that claims the slots [steal, real') and
 * tells other thieves to go away (tr__runq_steal_claim). It copies them
 * into its own ring, then CASes `steal` up to `real` to end the claim
 * (tr__runq_steal_finish). The owner never overwrites a slot at or after
 * `steal` (it checks tail - steal < CAP), so the copy reads stable slots.
 * Positions are 32-bit counters that wrap; only differences matter.
 *
 * Invariants (positions mod 2^32):
 *   I1. steal <= real <= tail and tail - steal <= CAP.
 *   I2. Slots [real, tail) hold the queued tasks; slots [steal, real) hold
 *       tasks that one thief has claimed and is copying. Each task pushed
 *       is in exactly one of: a queued slot, a claimed slot, a spill handed
 *       back to the caller, or the hands of whoever popped or stole it.
 *   I3. Only the owner moves `tail`, only with room by I1; only the owner
 *       moves `real` while steal != real; only a thief moves `steal`.
 *
 * Nothing is dropped. The owner's room is tail - steal, not tail - real:
 * while a thief is descheduled mid-copy the owner may keep popping, so the
 * queue can look empty by `real` and still be full by `steal`. So:
 *   - tr__runq_try_push stores only with room; otherwise it returns false
 *     and `t` stays with the caller (the inject queue keeps it there).
 *   - tr__runq_push never fails to place `t`: it stores it, or hands it
 *     back in `spill` (with half the ring when no thief is at work, alone
 *     when one is) for the caller to move to the inject queue. take_half's
 *     CAS claims its slots against thieves exactly as a thief does; if a
 *     thief got in first the push starts over, having moved nothing.
 *   - A steal claims at most the room its destination has (by the
 *     destination's own `steal`, which another thief of that ring may hold
 *     back) plus one, the task it returns instead of storing. So copying
 *     never overwrites a slot of its own ring that a third thief still
 *     reads, and every claimed task ends in `dst` or is returned.
 *   - A claim is taken only when steal == real (no other claim), and only
 *     its own thief ends it, so claims on one ring never overlap.
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

static unsigned
take_half(tr_runq *q, uint32_t real, tr_task *t, tr_task **spill)
{
    const uint32_t half = TR_RUNQ_CAP / 2;
    uint64_t expected = pack(real, real);

    /* acq_rel: claims the slots against thieves, whose CAS reads head. */
    if (!tr_cas_acqrel(&q->head, &expected, pack(real + half, real + half))) {
        return 0; /* a thief moved head; the caller retries the push */
    }
    for (uint32_t i = 0; i < half; i++) {
        spill[i] = tr_load_relaxed(&q->buf[(real + i) & MASK]);
    }
    spill[half] = t;
    return half + 1;
}

/* Owner: store `t` at `tail`, which has room. */
static void
put(tr_runq *q, uint32_t tail, tr_task *t)
{
    tr_store_relaxed(&q->buf[tail & MASK], t);
    /* Release: publishes the slot to thieves, whose acquire of tail pairs
     * with it. */
    tr_store_rel(&q->tail, tail + 1);
}

bool
tr__runq_try_push(tr_runq *q, tr_task *t)
{
    /* Acquire: pairs with thieves' release of `steal` (the CAS that ends a
     * claim), after which the slots they copied may be reused. */
    uint64_t head = tr_load_acq(&q->head);
    uint32_t tail = tr_load_relaxed(&q->tail);

    if (tail - steal_of(head) >= TR_RUNQ_CAP) {
        return false;
    }
    put(q, tail, t);
    return true;
}

unsigned
tr__runq_push(tr_runq *q, tr_task *t, tr_task **spill)
{
    for (;;) {
        /* Acquire: as in try_push. One snapshot decides: with steal ==
         * real in it, full by steal means full by real, so take_half has
         * half a ring of queued tasks to take (its CAS checks the
         * snapshot still holds). */
        uint64_t head = tr_load_acq(&q->head);
        uint32_t tail = tr_load_relaxed(&q->tail);
        uint32_t steal = steal_of(head);
        unsigned n;

        if (tail - steal < TR_RUNQ_CAP) {
            put(q, tail, t);
            return 0;
        }
        if (steal != real_of(head)) {
            /* Full while a thief copies: hand just this task over. */
            spill[0] = t;
            return 1;
        }
        n = take_half(q, real_of(head), t, spill);
        if (n != 0) {
            return n;
        }
    }
}

tr_task *
tr__runq_pop(tr_runq *q)
{
    uint64_t head = tr_load_acq(&q->head);
    /* Only the owner moves tail. */
    uint32_t tail = tr_load_relaxed(&q->tail);

    for (;;) {
        uint32_t steal = steal_of(head);
        uint32_t real = real_of(head);
        uint64_t next;

        if (real == tail) {
            return NULL;
        }
        next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
        /* acq_rel: orders our slot read against thieves' claims; failure
         * reloads head. */
        if (tr_cas_acqrel(&q->head, &head, next)) {
            if (real + 1 != tail) {
                /* Only the owner writes slots, and below tail they hold
                 * tasks; a thief may take this one first, and a prefetch
                 * of it then costs nothing but the fetch. */
                __builtin_prefetch(tr_load_relaxed(&q->buf[(real + 1) & MASK]));
            }
            return tr_load_relaxed(&q->buf[real & MASK]);
        }
    }
}

uint32_t
tr__runq_steal_claim(tr_runq *src, tr_runq *dst, tr_runq_claim *c)
{
    /* Acquire: pairs with the release CAS that ended the last claim on our
     * own ring; the slots that thief copied are free once we see it. */
    uint64_t dst_head = tr_load_acq(&dst->head);
    uint32_t dst_tail = tr_load_relaxed(&dst->tail);
    /* We store all but the task we return. */
    uint32_t max = TR_RUNQ_CAP - (dst_tail - steal_of(dst_head)) + 1;
    uint64_t prev = tr_load_acq(&src->head);
    uint32_t n;

    if (max > TR_RUNQ_CAP / 2) {
        max = TR_RUNQ_CAP / 2;
    }
    for (;;) {
        uint32_t steal = steal_of(prev);
        uint32_t real = real_of(prev);
        uint64_t next;

        if (steal != real) {
            return 0; /* another thief is at work */
        }
        /* Acquire: pairs with the owner's release of tail; the slots below
         * it are written. */
        n = tr_load_acq(&src->tail) - real;
        n -= n / 2;
        if (n == 0) {
            return 0;
        }
        if (n > max) {
            n = max;
        }
        next = pack(steal, real + n);
        /* acq_rel: pairs with the owner's pop and take_half CASes and other
         * thieves' claims; on failure prev is reloaded. */
        if (tr_cas_acqrel(&src->head, &prev, next)) {
            c->head = next;
            c->first = real;
            c->n = n;
            return n;
        }
    }
}

tr_task *
tr__runq_steal_finish(tr_runq *src, tr_runq *dst, const tr_runq_claim *c)
{
    uint32_t dst_tail = tr_load_relaxed(&dst->tail);
    uint32_t stored = c->n - 1;
    uint64_t prev = c->head;

    for (uint32_t i = 0; i < stored; i++) {
        tr_task *t = tr_load_relaxed(&src->buf[(c->first + i) & MASK]);
        tr_store_relaxed(&dst->buf[(dst_tail + i) & MASK], t);
    }
    tr_task *ret = tr_load_relaxed(&src->buf[(c->first + stored) & MASK]);
    /* End the claim: steal catches up with real, wherever the owner has
     * popped it to. acq_rel: releases the copied slots to the owner, whose
     * acquire of head in try_push pairs with it; failure reloads prev. */
    for (;;) {
        uint32_t real = real_of(prev);
        if (tr_cas_acqrel(&src->head, &prev, pack(real, real))) {
            break;
        }
    }
    if (stored != 0) {
        /* Release: publishes the copied slots in our own ring to thieves
         * that acquire our tail. */
        tr_store_rel(&dst->tail, dst_tail + stored);
    }
    return ret;
}

tr_task *
tr__runq_steal(tr_runq *src, tr_runq *dst)
{
    tr_runq_claim c;

    if (tr__runq_steal_claim(src, dst, &c) == 0) {
        return NULL;
    }
    return tr__runq_steal_finish(src, dst, &c);
}

uint32_t
tr__runq_len(tr_runq *q)
{
    uint64_t head = tr_load_acq(&q->head);
    uint32_t tail = tr_load_acq(&q->tail);
    return tail - real_of(head);
}

uint32_t
tr__runq_pushed(tr_runq *q)
{
    return tr_load_acq(&q->tail);
}

uint32_t
tr__runq_taken(tr_runq *q)
{
    return real_of(tr_load_acq(&q->head));
}
