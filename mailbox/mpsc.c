/*
 * Unbounded intrusive MPSC queue (Vyukov's, with a stub node) whose head
 * word also carries the owner's scheduling state.
 *
 * Producers: any thread, wait-free. A push is one exchange of `head`
 * followed by one store linking the previous head to the new node. Between
 * the two the queue is briefly "broken": the consumer can see the last
 * linked node with a NULL next while head already points past it.
 *
 * Consumer: exactly one thread at a time, the one that holds the consumer
 * role; `tail` is its private cursor. The stub node is re-pushed when the
 * consumer reaches the last real node, so a real node is never removed
 * while a producer might still link to it.
 *
 * Scheduling: bit 0 of `head` is the idle flag. While it is set nobody holds
 * the consumer role. The push whose exchange returns a tagged head has moved
 * the queue from idle to busy and takes the role (its caller schedules the
 * actor or wakes the receiver); every other push leaves scheduling alone.
 * The consumer gives the role up with a CAS of head from the untagged stub
 * (the only value head has when the consumer drained everything and no push
 * began) to the tagged stub. If a push began, even one still in its broken
 * window, head is not the stub, the CAS fails and the consumer keeps the
 * role: that is what stops a half-done push from stranding its message.
 *
 * The control lane beside it is a Treiber stack (pushes are rare: stop and
 * failure signals, later replies and timer ticks); the consumer takes it
 * whole with one exchange and reverses it into arrival order.
 *
 * References: D. Vyukov, "Intrusive MPSC node-based queue" (1024cores.net);
 * the Pony runtime's messageq, whose tagged head this follows.
 */
#include "mailbox/mpsc.h"

#include <stddef.h>

enum { IDLE_BIT = 1 };

static tr_mnode *
untag(uintptr_t word)
{
    return (tr_mnode *)(word & ~(uintptr_t)IDLE_BIT);
}

void
tr__mpsc_init(tr_mpsc *q, bool idle)
{
    tr_init_relaxed(&q->stub.next, NULL);
    q->tail = &q->stub;
    tr_init_relaxed(&q->head, (uintptr_t)&q->stub | (idle ? IDLE_BIT : 0));
}

bool
tr__mpsc_push(tr_mpsc *q, tr_mnode *node)
{
    tr_store_relaxed(&node->next, NULL);
    /*
     * acq_rel: release publishes the node's contents (and next = NULL) to
     * the producer that will link after it; acquire orders our link store
     * after the previous producer's initialisation of `prev`. Sequentially
     * consistent with the idle CAS through head's modification order.
     */
    uintptr_t prev = tr_xchg_acqrel(&q->head, (uintptr_t)node);
    /* Release: pairs with the consumer's acquire load of `next` in pop. */
    tr_store_rel(&untag(prev)->next, node);
    return (prev & IDLE_BIT) != 0;
}

static void
push_stub(tr_mpsc *q)
{
    tr_store_relaxed(&q->stub.next, NULL);
    /* Same orderings and pairing as tr__mpsc_push. */
    uintptr_t prev = tr_xchg_acqrel(&q->head, (uintptr_t)&q->stub);
    tr_store_rel(&untag(prev)->next, &q->stub);
}

tr_mnode *
tr__mpsc_pop(tr_mpsc *q)
{
    tr_mnode *tail = q->tail;
    /* Acquire: pairs with the release link store in push. */
    tr_mnode *next = tr_load_acq(&tail->next);

    if (tail == &q->stub) {
        if (next == NULL) {
            return NULL;
        }
        q->tail = next;
        tail = next;
        next = tr_load_acq(&next->next);
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    /* `tail` is the last linked node. If head moved past it, a push is in
     * its broken window: report empty; mark_idle will refuse. */
    if (tail != untag(tr_load_acq(&q->head))) {
        return NULL;
    }
    push_stub(q);
    next = tr_load_acq(&tail->next);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

bool
tr__mpsc_mark_idle(tr_mpsc *q)
{
    uintptr_t stub = (uintptr_t)&q->stub;
    uintptr_t expected = stub;

    if (q->tail != &q->stub) {
        return false;
    }
    /*
     * seq_cst: the control lane's producers push there, then read head; the
     * consumer sets the flag here, then reads the control lane. With both
     * pairs sequentially consistent one of them sees the other.
     */
    if (tr_cas_seqcst(&q->head, &expected, stub | IDLE_BIT)) {
        return true;
    }
    return expected == (stub | IDLE_BIT);
}

bool
tr__mpsc_take_idle(tr_mpsc *q)
{
    uintptr_t word = tr_load_seqcst(&q->head);

    while (word & IDLE_BIT) {
        /* seq_cst: see mark_idle. Failure reloads `word`. */
        if (tr_cas_seqcst(&q->head, &word, word & ~(uintptr_t)IDLE_BIT)) {
            return true;
        }
    }
    return false;
}

bool
tr__mpsc_is_idle(tr_mpsc *q)
{
    return (tr_load_acq(&q->head) & IDLE_BIT) != 0;
}

void
tr__lifo_push(tr_lifo *s, tr_mnode *node)
{
    tr_mnode *top = tr_load_relaxed(&s->top);

    do {
        tr_store_relaxed(&node->next, top);
        /* seq_cst: publishes the node (release) and orders this push before
         * the pusher's read of the queue's idle flag; see mark_idle. */
    } while (!tr_cas_weak_seqcst(&s->top, &top, node));
}

tr_mnode *
tr__lifo_take_fifo(tr_lifo *s)
{
    tr_mnode *node;
    tr_mnode *fifo = NULL;

    if (tr_load_relaxed(&s->top) == NULL) {
        return NULL;
    }
    /* Acquire: pairs with the release half of the pushers' CAS. */
    node = tr_xchg_acqrel(&s->top, NULL);
    while (node != NULL) {
        tr_mnode *next = tr_load_relaxed(&node->next);
        tr_store_relaxed(&node->next, fifo);
        fifo = node;
        node = next;
    }
    return fifo;
}

bool
tr__lifo_is_empty(tr_lifo *s)
{
    /* seq_cst: the consumer's re-check after marking idle; see mark_idle. */
    return tr_load_seqcst(&s->top) == NULL;
}
