/*
 * Unbounded intrusive MPSC queue (Vyukov's) whose head word also carries
 * the owner's scheduling state.
 *
 * Producers: any thread, wait-free. A push is one exchange of `head`
 * followed by one store linking the previous head to the new node. Between
 * the two the queue is briefly "broken": the consumer can see the last
 * linked node with a NULL next while head already points past it.
 *
 * Consumer: exactly one thread at a time, the one that holds the consumer
 * role; `tail` is its private cursor and rests on a dummy node: first the
 * stub, then each node it pops. A pop moves `tail` to the dummy's successor,
 * which becomes the new dummy, and hands the old dummy back for freeing. So
 * a node is freed only once a later node is linked after it, and no
 * producer can still be about to link to it. Popping costs no atomic
 * read-modify-write at all.
 *
 * Scheduling: bit 0 of `head` is the idle flag. While it is set nobody holds
 * the consumer role. The push whose exchange returns a tagged head has moved
 * the queue from idle to busy and takes the role (its caller schedules the
 * actor or wakes the receiver); every other push leaves scheduling alone.
 * The consumer gives the role up with one CAS of head from the dummy (the
 * only value head has when the consumer drained everything and no push
 * began) to the tagged stub, which also swaps the stub back in, so an idle
 * queue holds no node of its own. If a push began, even one still in its
 * broken window, head is not the dummy, the CAS fails and the consumer
 * keeps the role: that is what stops a half-done push from stranding its
 * message.
 *
 * The control lane beside it is a Treiber stack (pushes are rare: stop and
 * failure signals, later replies and timer ticks); the consumer takes it
 * whole with one exchange and reverses it into arrival order.
 *
 * References: D. Vyukov, "Intrusive MPSC node-based queue" (1024cores.net);
 * the Pony runtime's messageq, whose tagged head this follows.
 */
#include "mailbox/mpsc.h"

#include "common/tr_assert.h"

#include <stddef.h>

enum { IDLE_BIT = 1 };

static tr_mnode *
untag(uintptr_t word)
{
    return (tr_mnode *)(word & ~(uintptr_t)IDLE_BIT);
}

void
tr__mpsc_init(tr_mpsc_prod *p, tr_mpsc_cons *c, bool idle)
{
    tr_init_relaxed(&c->stub.next, NULL);
    c->tail = &c->stub;
    tr_init_relaxed(&p->head, (uintptr_t)&c->stub | (idle ? IDLE_BIT : 0));
}

bool
tr__mpsc_push(tr_mpsc_prod *p, tr_mnode *node)
{
    tr_store_relaxed(&node->next, NULL);
    /*
     * acq_rel: release publishes the node's contents (and next = NULL) to
     * the producer that will link after it; acquire orders our link store
     * after the previous producer's initialisation of `prev`. Sequentially
     * consistent with the idle CAS through head's modification order.
     */
    uintptr_t prev = tr_xchg_acqrel(&p->head, (uintptr_t)node);
    /* Release: pairs with the consumer's acquire load of `next` in pop. */
    tr_store_rel(&untag(prev)->next, node);
    return (prev & IDLE_BIT) != 0;
}

tr_mnode *
tr__mpsc_pop(tr_mpsc_cons *c, tr_mnode **done)
{
    tr_mnode *dummy = c->tail;
    /* Acquire: pairs with the release link store in push, so the node's
     * contents are visible. */
    tr_mnode *next = tr_load_acq(&dummy->next);

    if (next == NULL) {
        *done = NULL;
        return NULL;
    }
    *done = tr__mpsc_pop_seen(c, next);
    return next;
}

tr_mnode *
tr__mpsc_pop_seen(tr_mpsc_cons *c, tr_mnode *next)
{
    tr_mnode *dummy = c->tail;

    c->tail = next;
    return dummy == &c->stub ? NULL : dummy;
}

/* CAS head from the dummy to the stub (tagged idle or not); true when no
 * push came after the dummy. */
static bool
swap_in_stub(tr_mpsc_prod *p, tr_mpsc_cons *c, uintptr_t tag, tr_mnode **done)
{
    tr_mnode *dummy = c->tail;
    uintptr_t stub = (uintptr_t)&c->stub;
    uintptr_t expected = (uintptr_t)dummy;

    *done = NULL;
    if (dummy == &c->stub) {
        /* seq_cst: see the lane handshake in actors/actor.c. */
        if (tr_cas_seqcst(&p->head, &expected, stub | tag)) {
            return true;
        }
        return tag != 0 && expected == (stub | IDLE_BIT);
    }
    /*
     * The next consumer (maybe on another thread, once a push takes the
     * role) must find tail on the stub and the stub unlinked: both are
     * written before the CAS, whose release publishes them.
     */
    tr_store_relaxed(&c->stub.next, NULL);
    c->tail = &c->stub;
    if (tr_cas_seqcst(&p->head, &expected, stub | tag)) {
        *done = dummy;
        return true;
    }
    c->tail = dummy;
    return false;
}

bool
tr__mpsc_mark_idle(tr_mpsc_prod *p, tr_mpsc_cons *c, tr_mnode **done)
{
    return swap_in_stub(p, c, IDLE_BIT, done);
}

bool
tr__mpsc_release(tr_mpsc_prod *p, tr_mpsc_cons *c, tr_mnode **done)
{
    return swap_in_stub(p, c, 0, done);
}

tr_mnode *
tr__mpsc_dummy(tr_mpsc_cons *c)
{
    return c->tail == &c->stub ? NULL : c->tail;
}

bool
tr__mpsc_take_idle(tr_mpsc_prod *p)
{
    uintptr_t word = tr_load_seqcst(&p->head);

    while (word & IDLE_BIT) {
        /* seq_cst: see mark_idle. Failure reloads `word`. */
        if (tr_cas_seqcst(&p->head, &word, word & ~(uintptr_t)IDLE_BIT)) {
            return true;
        }
    }
    return false;
}

tr_mnode *
tr__mpsc_last(tr_mpsc_prod *p)
{
    /* Acquire: pairs with the pushes' exchange (release). */
    return untag(tr_load_acq(&p->head));
}

void
tr__mpsc_move_front(tr_mpsc_cons *c, tr_mnode *prev)
{
    tr_mnode *x = tr_load_relaxed(&prev->next);
    tr_mnode *after = tr_load_relaxed(&x->next);

    /* Relaxed: no other thread touches the queue (see the header). */
    if (prev == c->tail || after == NULL) {
        return; /* at the front already, or the last node */
    }
    tr_store_relaxed(&prev->next, after);
    tr_store_relaxed(&x->next, tr_load_relaxed(&c->tail->next));
    tr_store_relaxed(&c->tail->next, x);
}

bool
tr__mpsc_is_idle(tr_mpsc_prod *p)
{
    return (tr_load_acq(&p->head) & IDLE_BIT) != 0;
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

tr_mnode *
tr__lifo_top(tr_lifo *s)
{
    /* Acquire: pairs with the release half of the pushers' CAS. */
    return tr_load_acq(&s->top);
}

bool
tr__lifo_take_only(tr_lifo *s, tr_mnode *node)
{
    TR_ASSERT(tr_load_relaxed(&node->next) == NULL);
    /* acq_rel, as the exchange of tr__lifo_take_fifo. */
    return tr_cas_acqrel(&s->top, &node, NULL);
}
