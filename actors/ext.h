/*
 * Private: the extension record of an actor slot. Most actors never need
 * one; an actor that is monitored, linked, named, trapping exits or
 * supervised gets one on first use. Like the slot it hangs off, it is
 * never freed while the system runs (a stale address may still reach
 * it), and it serves the slot's later incarnations. See ext.c.
 */
#ifndef TR_ACTORS_EXT_H
#define TR_ACTORS_EXT_H

#include <troupe/monitor.h>

#include "actors/actor.h"

/* A monitor: the watcher, and its DOWN, allocated when the monitor was
 * made so that sending it never needs memory. */
typedef struct tr_watch {
    uint64_t ref;
    uint64_t watcher; /* address id */
    tr_envelope *down;
} tr_watch;

/* One side of a link: the peer, and the EXIT this side's end sends it,
 * allocated when the link was made. */
typedef struct tr_link_end {
    uint64_t peer; /* address id */
    tr_envelope *exit;
} tr_link_end;

/* The payload of TR_MSG_CHILD: which child ended, and why. Whoever gets it
 * holds the child's run-right; whoever drops it unread (its supervisor
 * ended with it queued) ends the child (actor.c). */
typedef struct tr_child_report {
    void *child; /* tr_ext.child */
    tr_signal why;
} tr_child_report;

/*
 * A report lives in the child's record: a child has at most one in flight
 * (it is held until its supervisor has read the report), so sending one
 * never allocates, and cannot fail for want of memory. Its receiver does
 * not free it.
 */
typedef struct tr_report_msg {
    tr_envelope env;
    tr_child_report r;
} tr_report_msg;

_Static_assert(offsetof(tr_report_msg, r) == sizeof(tr_envelope),
               "a report's payload is where tr__env_data looks");

/*
 * A plain thread in tr_actor_wait, on its own stack. The ender fills `sig`,
 * then sets `done` (release) and touches it no more; the thread sleeps on
 * the system's `ended` event count, which outlives every waiter (shutdown
 * waits for them to leave).
 */
typedef struct tr_waiter {
    struct tr_waiter *next;
    tr_signal sig;
    tr_atomic(uint32_t) done;
} tr_waiter;

struct tr_ext {
    /* Guards the fields up to `name`. */
    pthread_mutex_t lock;
    uint64_t gen; /* the incarnation the lists below belong to */
    bool trap_exit;
    tr_watch *mons;
    uint32_t nmon, capmon;
    tr_link_end *links;
    uint32_t nlink, caplink;
    char *name;         /* registered name (owned), or NULL */
    tr_waiter *waiters; /* threads in tr_actor_wait */
    /* The incarnation is a supervisor: it takes the supervisor's requests
     * (supervisor/). Kept across its restarts in place, like the address. */
    bool supervisor;

    /*
     * Supervision. `parent` and `child` are written before the
     * incarnation is published or while the writer holds the run-right;
     * `kill` by the supervisor (any time; supervisors themselves are
     * killed by a request instead, so that they end their children
     * first); `held` by the runner when it hands the run-right to the
     * supervisor, and by the supervisor. The supervisor's record lock
     * orders reports against its end (actor.c: report_to).
     */
    tr_atomic(uint64_t) parent; /* supervisor's address id, or 0 */
    void *child;                /* the supervisor's record of this child */
    tr_atomic(uint32_t) kill;   /* end without `stop` at the next chance */
    tr_atomic(uint32_t) held;   /* `stop` ran; the supervisor holds the right */
    tr_atomic(uint64_t) hwm;    /* mailbox high-water mark */
    /* For inspection: time in handlers (only while watched; written by
     * the runner, relaxed) and dead letters addressed to this slot (any
     * thread, an add: dead letters are not a hot path). */
    tr_atomic(uint64_t) busy_ns;
    tr_atomic(uint64_t) dead;
    tr_report_msg report;
    /* Set by the actor itself: its end ends a supervision tree, which
     * wakes tr_system_wait (after the failure hook's report). */
    bool escalate;
    /* Set by the actor itself before tr_stop: it ends as shut down, not
     * normally (a supervisor that was asked to stop, as OTP's). */
    bool end_shutdown;
};

/* The slot's record, created on first use; NULL when out of memory. */
tr_ext *tr__ext_get(tr_actor *a);

/* Free a slot's record (system teardown). */
void tr__ext_free(tr_ext *x);

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

/* Mark the calling incarnation as a supervisor (see `supervisor`);
 * TR_ENOMEM when it has no record and none can be made. */
int tr__ext_mark_supervisor(tr_ctx *ctx);

/* True when incarnation `gen` of `a` lives and is not a supervisor (any
 * thread). */
bool tr__ext_is_other_than_supervisor(tr_actor *a, uint64_t gen);

/* Copy an exit reason into a signal. */
void tr__signal_fill(tr_signal *s, tr_addr who, uint64_t ref,
                     const tr_exit *exit);

/* An envelope for a DOWN or EXIT, to fill later; NULL when out of memory. */
tr_envelope *tr__signal_create(void);

/* The registry of names (one per system). */
int tr__names_create(tr_names **out);
void tr__names_destroy(tr_names *n);

#endif /* TR_ACTORS_EXT_H */
