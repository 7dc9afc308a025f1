/*
 * Private: the restart engine and the stop sequences of a supervisor: how
 * it acts on its children's reports and on its own timers, and how it
 * stops them. It stands on children.c and calls up into the run-time API
 * only through the hook in supervisor/sup.h. See engine.c.
 */
#ifndef TR_SUPERVISOR_ENGINE_H
#define TR_SUPERVISOR_ENGINE_H

#include "supervisor/children.h"

/* Which child a timer message (MSG_DEADLINE, MSG_RETRY) is about: its
 * address, and its serial when the timer was set (a later serial voids
 * the timer). */
typedef struct timer_ref {
    uint64_t addr;
    uint32_t serial;
} timer_ref;

/* A report: a child ended, and its run-right is ours. */
void tr__sup_on_report(tr_ctx *ctx, tr_sup *s, const tr_child_report *r);

/* A child's shutdown time is up (MSG_DEADLINE): kill it, unless the
 * timer is void. */
void tr__sup_on_deadline(tr_ctx *ctx, tr_sup *s, const timer_ref *ref);

/* A failed restart is due again (MSG_RETRY): try it (or its round),
 * unless the timer is void. */
void tr__sup_on_retry(tr_ctx *ctx, tr_sup *s, const timer_ref *ref);

/*
 * Our supervisor kills us (MSG_KILL): kill every child that has not
 * reported its end, end them as their reports come, then end. A pending
 * terminate_child is answered TR_ESHUTDOWN; other requests wait, and are
 * dropped at the end. Does nothing in kill mode already.
 */
void tr__sup_start_kill(tr_ctx *ctx, tr_sup *s);

/* Asked to stop (by our parent, shutdown, tr_actor_stop): children first,
 * in reverse order, then end. Only outside the ending modes. */
void tr__sup_start_terminate(tr_ctx *ctx, tr_sup *s);

/*
 * Stop child `c` alone (SUP_ADMIN: a terminate_child, or a start undone);
 * its spec is forgotten too when `forget`, or when it is dynamic or
 * temporary. Only in SUP_IDLE. The hook's `one_ended` tells the caller
 * when it has ended.
 */
void tr__sup_stop_one(tr_ctx *ctx, tr_sup *s, child *c, bool forget);

/* The child a round waited on (`owner`) was terminated by hand: the
 * children that waited with it end too, and stay down until restarted by
 * hand. */
void tr__sup_abandon_round(tr_ctx *ctx, tr_sup *s, child *owner);

/*
 * The incarnation ends without having ended its children (the exit hook):
 * end the held ones, and kill the others without waiting; they keep this
 * address as their parent, so their reports come here. After the workers
 * are joined, shutdown's final pass ends them all instead.
 */
void tr__sup_end_children_now(tr_ctx *ctx, tr_sup *s);

#endif /* TR_SUPERVISOR_ENGINE_H */
