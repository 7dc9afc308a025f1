/*
 * Timers: a min-heap of deadlines on one clock, fired by a timer thread (or,
 * with a manual clock, by whoever advances it). Generic: a timer carries a
 * callback and an argument, and knows nothing of actors. See timer.c.
 */
#ifndef TR_SCHEDULER_TIMER_H
#define TR_SCHEDULER_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_timers tr_timers;

/*
 * Called outside the timers' lock when a timer fires. `last` is true when
 * the timer will not fire again (a one-shot, or an interval that was
 * cancelled meanwhile); the callee then owns `arg` for good.
 */
typedef void (*tr_timer_fire_fn)(void *arg, bool last);

/* Called when a timer is cancelled before it fires, or at teardown: the
 * callee owns `arg` for good. */
typedef void (*tr_timer_drop_fn)(void *arg);

/*
 * Create the timers. With `manual`, time moves only through
 * tr__timers_advance and no thread is started.
 */
int tr__timers_create(bool manual, tr_timer_fire_fn fire, tr_timer_drop_fn drop,
                      tr_timers **out);

/*
 * Stop the thread and drop every pending timer; from then on
 * tr__timers_add fails with TR_ESHUTDOWN and there is nothing to cancel.
 * The clock still reads. Idempotent.
 */
void tr__timers_close(tr_timers *t);

/* Close (if not yet) and free the timers. */
void tr__timers_destroy(tr_timers *t);

/* The clock, in nanoseconds since the timers were created. */
uint64_t tr__timers_now(tr_timers *t);

/* A timer id is (generation << TR_TIMER_SLOT_BITS | slot): at most
 * TR_TIMER_SLOTS timers pending at once, 2^40 generations per slot. */
#define TR_TIMER_SLOT_BITS 24
#define TR_TIMER_SLOTS (UINT32_C(1) << TR_TIMER_SLOT_BITS)
#define TR_TIMER_GEN_MAX ((UINT64_C(1) << (64 - TR_TIMER_SLOT_BITS)) - 1)

/*
 * Arm a timer `delay_ns` from now, then every `period_ns` (0: once).
 * Returns its id (never 0) in `*id`; TR_ENOMEM; TR_ESHUTDOWN once closed.
 */
int tr__timers_add(tr_timers *t, uint64_t delay_ns, uint64_t period_ns,
                   void *arg, uint64_t *id);

/*
 * Cancel timer `id`. True when this call removed it before it fired for
 * the last time (its argument was then dropped); false when it had already
 * fired, was cancelled, or never existed.
 */
bool tr__timers_cancel(tr_timers *t, uint64_t id);

/* Manual clock only: move time forward and fire what is due, on the
 * calling thread. */
void tr__timers_advance(tr_timers *t, uint64_t ns);

/* The earliest pending deadline, into `*deadline`; false (untouched) when
 * no timer is pending, or the earliest is saturated at the clock's end
 * (UINT64_MAX), where it never fires (see take_due). */
bool tr__timers_next(tr_timers *t, uint64_t *deadline);

/* Tests only: set the generation of the free slot `id` names, to drive it
 * to its last generation. */
void tr__timers_set_gen(tr_timers *t, uint64_t id, uint64_t gen);

/* Pending timers (a snapshot). */
uint64_t tr__timers_len(tr_timers *t);

#endif /* TR_SCHEDULER_TIMER_H */
