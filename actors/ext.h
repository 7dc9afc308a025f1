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

/*
 * The instance of `ctx` ends into its supervisor's hands (a restart in
 * place, or its end, follows): the monitors it holds end with it, as at an
 * incarnation's end. A DOWN of one that is queued already is dropped at
 * dispatch (tr__ext_down_delivered).
 */
void tr__ext_drop_monitors(tr_ctx *ctx);

/*
 * Dispatch of the DOWN `env` (kind TR_MSG_MON_DOWN) to the incarnation of
 * `ctx`: true when it holds the monitor, whose record it takes; false when
 * it does not (the DOWN was queued for an instance restarted in place
 * since), and the DOWN is dropped.
 */
bool tr__ext_down_delivered(tr_ctx *ctx, tr_envelope *env);

/* Answer the waiters tr__ext_on_end returned (`self`: the ended id). */
void tr__ext_wake_waiters(tr_system *sys, tr_waiter *waiters, uint64_t self,
                          const tr_exit *exit);

/* Copy an exit reason into a signal. */
void tr__signal_fill(tr_signal *s, tr_addr who, uint64_t ref,
                     const tr_exit *exit);

/* An envelope for a DOWN or EXIT, to fill later; NULL when out of memory. */
tr_envelope *tr__signal_create(void);

/* For tests: how many monitors of `who` its record holds (`*on`: made by
 * others on it) and how many it holds itself (`*held`: made by it on
 * others), whichever incarnation the record's lists belong to. */
void tr__ext_monitor_counts(tr_system *sys, tr_addr who, uint32_t *on,
                            uint32_t *held);

#endif /* TR_ACTORS_EXT_H */
