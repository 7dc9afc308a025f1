/*
 * The intrusive MPSC queue under every mailbox, and the control-lane stack.
 * See mpsc.c for the algorithm and its invariants.
 */
#ifndef TR_MAILBOX_MPSC_H
#define TR_MAILBOX_MPSC_H

#include "common/tr_atomic.h"

#include <stdbool.h>
#include <stdint.h>

/* The link every queued object starts with. */
typedef struct tr_mnode {
    tr_atomic(struct tr_mnode *) next;
} tr_mnode;

/*
 * The producers' end: `head`, written by producers (exchange) and by the
 * consumer's idle marking; its low bit is the idle flag.
 */
typedef struct tr_mpsc_prod {
    tr_atomic(uintptr_t) head;
} tr_mpsc_prod;

/*
 * The consumer's end: `tail` and the stub, written by the consumer, except
 * that the producer whose exchange returned the stub links the stub's next.
 * The two ends are separate types so that their owner can place them on
 * different cache lines.
 */
typedef struct tr_mpsc_cons {
    tr_mnode *tail;
    tr_mnode stub;
} tr_mpsc_cons;

/*
 * Simulation only (actors/sim.c): move the node after `prev` to the front
 * of the queue, right after the consumer's dummy. The caller is the
 * consumer, no push is in progress on any thread, and the node is not the
 * last one (head points at it; then nothing moves).
 */
void tr__mpsc_move_front(tr_mpsc_cons *c, tr_mnode *prev);

/* Initialise an empty queue, idle (a first push reports it) or busy. */
void tr__mpsc_init(tr_mpsc_prod *p, tr_mpsc_cons *c, bool idle);

/*
 * Push `node`; any thread, wait-free. Returns true when the queue was idle:
 * the caller then owns the consumer role (it schedules the owner).
 */
bool tr__mpsc_push(tr_mpsc_prod *p, tr_mnode *node);

/*
 * Pop the oldest node; consumer only. NULL when empty, and also when a push
 * is between its exchange and its link: the node is not lost, and
 * tr__mpsc_mark_idle then refuses, so the consumer stays scheduled.
 *
 * The popped node stays in the queue as its dummy (the node `tail` rests
 * on) until the next pop, so the caller may read it but not free it. The
 * previous dummy, now unreachable, comes back in `*done` (NULL when it was
 * the stub) for the caller to free.
 */
tr_mnode *tr__mpsc_pop(tr_mpsc_cons *c, tr_mnode **done);

/*
 * tr__mpsc_pop for a consumer that has already seen `next` linked after
 * the dummy (an acquire load of the dummy's `next`, which it passes here):
 * takes it, and returns the previous dummy to free (NULL: the stub).
 */
tr_mnode *tr__mpsc_pop_seen(tr_mpsc_cons *c, tr_mnode *next);

/*
 * After tr__mpsc_pop returned NULL: try to mark the queue idle, putting the
 * stub back in place of the dummy in the same CAS. True when it is idle now
 * (the next push reports it), with the released dummy in `*done` (or NULL);
 * false when a push has begun, and the consumer must keep the role and pop
 * again.
 */
bool tr__mpsc_mark_idle(tr_mpsc_prod *p, tr_mpsc_cons *c, tr_mnode **done);

/*
 * Like tr__mpsc_mark_idle but the queue stays busy: used to empty a queue
 * whose owner is gone, so that it holds no node. False (and `*done` NULL)
 * when a push has begun; the dummy then stays.
 */
bool tr__mpsc_release(tr_mpsc_prod *p, tr_mpsc_cons *c, tr_mnode **done);

/* The current dummy if it is not the stub (teardown only), else NULL. */
tr_mnode *tr__mpsc_dummy(tr_mpsc_cons *c);

/*
 * Clear the idle flag without pushing; any thread. True when this call
 * cleared it, which hands the caller the consumer role.
 */
bool tr__mpsc_take_idle(tr_mpsc_prod *p);

/*
 * The most recently pushed node, or the stub or the consumer's dummy when
 * nothing is queued (a snapshot; the consumer uses it to stop at the tail
 * it saw when it began).
 */
tr_mnode *tr__mpsc_last(tr_mpsc_prod *p);

/* True when the idle flag is set (a snapshot). */
bool tr__mpsc_is_idle(tr_mpsc_prod *p);

/*
 * The control lane: a stack of nodes pushed by any thread and taken whole
 * by the consumer, which restores arrival order.
 */
typedef struct tr_lifo {
    tr_atomic(tr_mnode *) top;
} tr_lifo;

/* Push `node`; any thread, lock-free. */
void tr__lifo_push(tr_lifo *s, tr_mnode *node);

/* Take every node, oldest first, linked by `next`; NULL when empty. */
tr_mnode *tr__lifo_take_fifo(tr_lifo *s);

/* True when nothing is pushed (a sequentially consistent snapshot). */
bool tr__lifo_is_empty(tr_lifo *s);

/* The consumer's look at the node on top, or NULL; its contents are as its
 * pusher wrote them. */
tr_mnode *tr__lifo_top(tr_lifo *s);

/*
 * The consumer takes `node`, which tr__lifo_top gave it, alone: nothing was
 * under it (its `next` is NULL). False, taking nothing, when a push came
 * after the look. Only the consumer takes nodes, so a `node` still on top
 * still has nothing under it.
 */
bool tr__lifo_take_only(tr_lifo *s, tr_mnode *node);

#endif /* TR_MAILBOX_MPSC_H */
