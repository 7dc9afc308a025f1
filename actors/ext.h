/*
 * Private: the rest of the extension record (its definition, and what
 * other modules may do with it, are in actors/internal.h; its tables of
 * monitors and links, in actors/sigtab.h): its waiters, and the calls by
 * which actors/ itself ends an incarnation's monitors, links and waiters.
 * See ext.c.
 */
#ifndef TR_ACTORS_EXT_H
#define TR_ACTORS_EXT_H

#include <troupe/monitor.h>

#include "actors/actor.h"

/*
 * A plain thread in tr_actor_wait, on its own stack. The ender fills `sig`,
 * then sets `done` (release) and touches it no more; the thread sleeps on
 * the system's `ended` event count, which outlives every waiter (shutdown
 * waits for them to leave).
 */
struct tr_waiter {
    struct tr_waiter *next;
    tr_signal sig;
    tr_atomic(uint32_t) done;
};

/* Free a slot's record (system teardown). */
void tr__ext_free(tr_ext *x);

/*
 * Under x->lock: true when incarnation `gen` of `a` still lives, making
 * the record's lists its own if they belonged to an earlier one. Whoever
 * adds to the lists (a monitor, a link, a name, a waiter) checks with this
 * first; see the top comment of ext.c for why that loses no signal.
 */
bool tr__ext_own_lists(tr_actor *a, tr_ext *x, uint64_t gen);

/*
 * Incarnation `gen` of the slot has ended (its generation has moved on):
 * send the DOWNs and link exits, release its name. Called by whoever ends
 * it, after the generation store. Returns the threads waiting for the end
 * (tr_actor_wait), for tr__ext_wake_waiters once the end is complete.
 */
tr_waiter *tr__ext_on_end(tr_ctx *ctx, tr_actor *a, uint64_t gen,
                          const tr_exit *exit);

/* Answer the waiters tr__ext_on_end returned (`self`: the ended id). */
void tr__ext_wake_waiters(tr_system *sys, tr_waiter *waiters, uint64_t self,
                          const tr_exit *exit);

/* Copy an exit reason into a signal. */
void tr__signal_fill(tr_signal *s, tr_addr who, uint64_t ref,
                     const tr_exit *exit);

/* An envelope for a DOWN or EXIT, to fill later; NULL when out of memory. */
tr_envelope *tr__signal_create(void);

#endif /* TR_ACTORS_EXT_H */
