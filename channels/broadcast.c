/*
 * Broadcast channels (tokio's sync::broadcast semantics).
 *
 * The ring. `cap` slots (a power of two); value number `seq` lives in slot
 * `seq & mask` until value `seq + cap` overwrites it. Senders serialise on
 * a mutex (held for a few stores: the value is allocated and copied before
 * it) and write `tail` (the next number), `head` (the oldest number still
 * readable) and the slots; receivers never take the lock. Each receiver
 * owns a cursor, the number of the next value it will read; it lags when
 * `cursor < head`, by exactly `head - cursor`, and moves to `head`. That
 * is the whole accounting: a cursor only ever moves by one per value
 * received or by a lag count, so received + lags = sent while subscribed.
 *
 * Values. One allocation each (header, then the bytes), shared by every
 * receiver. The ring holds one reference; a thread receiver takes one more
 * per value it returns. An actor subscriber takes none: its handler borrows
 * the value, protected by the receiver's pin (below), so a delivery costs
 * no read-modify-write on the value.
 *
 * Reading a slot. A slot is (seq, val). A sender overwriting it stores
 * seq = BUSY (seq_cst), then val, then the new seq (release). A reader
 * loads seq, val, seq again and accepts val only if both loads give the
 * number it wants: the val load is an acquire, so if it saw the new
 * pointer the second seq load sees BUSY or later (a seqlock with one
 * writer per slot at a time).
 *
 * Reclamation, by pins (hazard ranges). A value taken out of the ring can
 * still be in use by a reader that validated its slot just before the
 * overwrite. Before reading, a receiver publishes a pin (first number,
 * span) with a seq_cst store; it reads only numbers inside the pin, and
 * re-pins (seq_cst) for the next batch. A sender puts overwritten values
 * on a deferred list and, every SCAN_EVERY of them, loads every pin
 * (seq_cst) and frees the deferred values that no pin covers. Why that is
 * safe: a reader's second seq load (seq_cst) saw the old number, so in the
 * single total order it precedes the sender's BUSY store; the reader's pin
 * store precedes that load and the sender's scan follows its BUSY store,
 * so the scan sees the pin (or a later one of that reader, stored after it
 * was done with the value, release-acquire through the pin). Pins span at
 * most PIN_SPAN values, so a slow handler holds back at most PIN_SPAN
 * values per receiver: memory stays bounded however slow a receiver is.
 *
 * Waking. Thread receivers wait on an event count; a sender bumps it only
 * when a waiter has announced itself (seq_cst counter, read after the
 * seq_cst store of `tail`). Actor subscribers get at most one queued
 * notification each (channels/subscription.c); the sender arms it after
 * its seq_cst store of `tail`, under the lock that keeps the list stable.
 *
 * Closing. The last sender sets `closed` (release, after its last tail
 * store) and notifies everyone; a receiver reads `closed` (acquire) and
 * then `tail`, so "closed and at the tail" means nothing more will come.
 */
#include <troupe/broadcast.h>
#include <troupe/error.h>

#include "actors/internal.h"
#include "channels/subscription.h"
#include "common/tr_alloc.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"
#include "scheduler/sched.h"

#include <pthread.h>
#include <string.h>

enum {
    PIN_SPAN_BITS = 8,
    PIN_SPAN = 64,     /* values one pin covers at most */
    SCAN_EVERY = 32,   /* deferred values between two pin scans */
    MAX_CAP_LOG2 = 20, /* TR_BROADCAST_CAP_MAX */
};

static const uint64_t BUSY = UINT64_MAX;

struct tr_broadcast_value {
    tr_atomic(uint32_t) refs;
    uint32_t size;
    uint64_t seq;
    struct tr_broadcast_value *next; /* on the deferred list */
    _Alignas(16) unsigned char data[];
};

typedef struct tr_broadcast_value bvalue;

typedef struct slot {
    tr_atomic(uint64_t) seq;
    tr_atomic(bvalue *) val;
} slot;

typedef struct bchan bchan;

/* What thread receivers and actor subscriptions share. */
typedef struct receiver {
    /* Written by the receiver, read by senders' scans. 0: none. */
    tr_atomic(uint64_t) pin;
    /* Written by the receiver only (relaxed); read by tr_broadcast_len. */
    tr_atomic(uint64_t) cursor;
    bchan *ch;
    /* The channel's list, under its lock. */
    struct receiver *prev;
    struct receiver *next;
    tr_sub *sub; /* NULL for a thread receiver */
    /* Under the lock: unsubscribed, but still listed so that scans see
     * its pin until its last notification has run. */
    bool detached;
} receiver;

struct bchan {
    /* Under `lock` (senders, subscribe, unsubscribe, handle counts). */
    pthread_mutex_t lock;
    receiver list; /* sentinel of the receivers' list */
    uint32_t receivers;
    uint32_t listed; /* on the list: receivers, and detached subscribers
                        whose handler may still hold a pin */
    uint32_t senders;
    uint32_t handles; /* senders, receivers, subscriptions: freed at 0 */
    bvalue *deferred; /* overwritten values a pin may still cover */
    size_t ndeferred;
    size_t scan_at;
    uint64_t *pins; /* scratch for scans: one per receiver */
    size_t pins_cap;

    /* Immutable. */
    slot *slots;
    uint64_t cap;
    uint64_t mask;
    size_t max_size;

    /* Written by the sender holding the lock, read by every receiver. */
    TR_CACHE_ALIGNED tr_atomic(uint64_t) tail;
    tr_atomic(uint64_t) head;
    tr_atomic(bool) closed;

    /* Thread receivers waiting for a value. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) waiters;
    struct ck_ec32 ready;
};

struct tr_broadcast_rx {
    receiver r;
};

struct tr_broadcast_sub {
    receiver r;
    TR_CACHE_ALIGNED tr_sub sub;
    tr_broadcast_sub_types types;
    bool closed_sent; /* actor only */
};

static bchan *
of_tx(tr_broadcast_tx *tx)
{
    return (bchan *)(void *)tx;
}

static uint64_t
pin_of(uint64_t first, uint64_t span)
{
    return first << PIN_SPAN_BITS | span;
}

static bool
pin_covers(uint64_t pin, uint64_t seq)
{
    uint64_t first = pin >> PIN_SPAN_BITS;
    uint64_t span = pin & ((1u << PIN_SPAN_BITS) - 1);
    return seq >= first && seq - first < span;
}

static void
value_unref(bvalue *v)
{
    /* acq_rel: the last holder's free follows every reader's use. */
    if (tr_fas_acqrel(&v->refs, 1) == 1) {
        tr__free(v, sizeof(*v) + v->size);
    }
}

static void
destroy(bchan *ch)
{
    for (uint64_t i = 0; i < ch->cap; i++) {
        bvalue *v = tr_load_relaxed(&ch->slots[i].val);
        if (v != NULL) {
            value_unref(v);
        }
    }
    while (ch->deferred != NULL) {
        bvalue *v = ch->deferred;
        ch->deferred = v->next;
        value_unref(v);
    }
    tr__free(ch->slots, ch->cap * sizeof(slot));
    if (ch->pins != NULL) {
        tr__free(ch->pins, ch->pins_cap * sizeof(uint64_t));
    }
    pthread_mutex_destroy(&ch->lock);
    tr__free_aligned(ch, sizeof(*ch));
}

/* Under the lock: free the deferred values no pin covers. */
static void
reclaim(bchan *ch)
{
    size_t n = 0;
    size_t kept = 0;
    bvalue **link = &ch->deferred;

    for (receiver *r = ch->list.next; r != &ch->list; r = r->next) {
        /* seq_cst: see the top comment (ordered after our BUSY stores). */
        uint64_t pin = tr_load_seqcst(&r->pin);
        if (pin != 0) {
            ch->pins[n++] = pin;
        }
    }
    while (*link != NULL) {
        bvalue *v = *link;
        bool covered = false;
        for (size_t i = 0; i < n && !covered; i++) {
            covered = pin_covers(ch->pins[i], v->seq);
        }
        if (covered) {
            link = &v->next;
            kept++;
        } else {
            *link = v->next;
            value_unref(v);
        }
    }
    ch->ndeferred = kept;
    ch->scan_at = kept + SCAN_EVERY;
}

/* Under the lock: room in the scan scratch for one more receiver. */
static int
reserve_pin(bchan *ch)
{
    /* Every listed receiver may hold a pin: a detached subscriber stays
     * listed while its handler borrows a value. */
    size_t want = ch->listed + 1u;
    size_t cap = ch->pins_cap != 0 ? ch->pins_cap : 8;
    uint64_t *pins;

    if (want <= ch->pins_cap) {
        return TR_OK;
    }
    while (cap < want) {
        cap *= 2;
    }
    pins = tr__alloc(cap * sizeof(uint64_t));
    if (pins == NULL) {
        return TR_ENOMEM;
    }
    if (ch->pins != NULL) {
        tr__free(ch->pins, ch->pins_cap * sizeof(uint64_t));
    }
    ch->pins = pins;
    ch->pins_cap = cap;
    return TR_OK;
}

/* Under the lock: add `r`, starting at the next value. */
static void
link_receiver(bchan *ch, receiver *r)
{
    r->ch = ch;
    tr_init_relaxed(&r->cursor, tr_load_relaxed(&ch->tail));
    tr_init_relaxed(&r->pin, 0);
    r->detached = false;
    r->prev = &ch->list;
    r->next = ch->list.next;
    ch->list.next->prev = r;
    ch->list.next = r;
    ch->listed++;
    ch->receivers++;
    ch->handles++;
}

/* Under the lock: take `r` off the list (`receivers` is the caller's). */
static void
unlink_receiver(receiver *r)
{
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->ch->listed--;
}

/* Under the lock: wake thread receivers and notify actor subscribers. */
static void
notify_all(bchan *ch)
{
    /* seq_cst: after the seq_cst store of tail or closed; pairs with a
     * waiter's announce-then-recheck. */
    if (tr_load_seqcst(&ch->waiters) != 0) {
        tr__ec_wake(&ch->ready);
    }
    for (receiver *r = ch->list.next; r != &ch->list; r = r->next) {
        if (r->sub != NULL && !r->detached) {
            tr__sub_notify(r->sub);
        }
    }
}

/* The value numbered `seq` if its slot still holds it, else NULL (it was
 * overwritten: the reader lagged). The caller's pin covers `seq`. */
static bvalue *
read_slot(const slot *slots, uint64_t mask, uint64_t seq)
{
    const slot *s = &slots[seq & mask];
    bvalue *v;

    /* Acquire, acquire, seq_cst: see "Reading a slot" above. */
    if (tr_load_acq(&s->seq) != seq) {
        return NULL;
    }
    v = tr_load_acq(&s->val);
    if (tr_load_seqcst(&s->seq) != seq) {
        return NULL;
    }
    return v;
}

/*
 * Where a receiver at `r->cursor` stands: TR_ELAGGED (moved to the oldest
 * value held, `*missed` set), TR_ECLOSED (closed and drained), TR_ETIMEDOUT
 * (nothing new), or TR_OK with `*avail` values to read.
 */
static int
position(receiver *r, uint64_t *avail, uint64_t *missed)
{
    bchan *ch = r->ch;
    /* seq_cst: ordered after an actor subscriber's clear of `pending` and
     * a thread's announcement as a waiter (see notify_all). */
    uint64_t tail = tr_load_seqcst(&ch->tail);
    /* Acquire: head is stored before the slot it frees is touched. */
    uint64_t head = tr_load_acq(&ch->head);

    uint64_t cursor = tr_load_relaxed(&r->cursor);

    if (cursor < head) {
        *missed = head - cursor;
        tr_store_relaxed(&r->cursor, head);
        return TR_ELAGGED;
    }
    if (cursor != tail) {
        *avail = tail - cursor;
        return TR_OK;
    }
    /* seq_cst: pairs with the closer's store-then-read of `pending`
     * against our clear-then-read (a store-buffer pattern); then tail
     * again: closing follows the last send. */
    if (tr_load_seqcst(&ch->closed) && cursor == tr_load_acq(&ch->tail)) {
        return TR_ECLOSED;
    }
    return TR_ETIMEDOUT;
}

/* A reader found its value overwritten: move it to the oldest held. */
static uint64_t
lag_from(receiver *r)
{
    /* Acquire: the sender stored head before its BUSY store, which this
     * reader's failed validation saw (or a later store). */
    uint64_t head = tr_load_acq(&r->ch->head);
    uint64_t missed = head - tr_load_relaxed(&r->cursor);

    tr_store_relaxed(&r->cursor, head);
    return missed;
}

int
tr_broadcast_create(size_t capacity, size_t max_size, tr_broadcast_tx **tx)
{
    bchan *ch;
    uint64_t cap = 1;

    if (tx == NULL || capacity == 0 || capacity > ((size_t)1 << MAX_CAP_LOG2) ||
        max_size > UINT32_MAX) {
        return TR_EINVAL;
    }
    while (cap < capacity) {
        cap <<= 1;
    }
    ch = tr__calloc_aligned(sizeof(*ch));
    if (ch == NULL) {
        return TR_ENOMEM;
    }
    ch->slots = tr__alloc(cap * sizeof(slot));
    if (ch->slots == NULL) {
        tr__free_aligned(ch, sizeof(*ch));
        return TR_ENOMEM;
    }
    for (uint64_t i = 0; i < cap; i++) {
        tr_init_relaxed(&ch->slots[i].seq, BUSY);
        tr_init_relaxed(&ch->slots[i].val, NULL);
    }
    pthread_mutex_init(&ch->lock, NULL);
    ch->list.next = &ch->list;
    ch->list.prev = &ch->list;
    ch->senders = 1;
    ch->handles = 1;
    ch->scan_at = SCAN_EVERY;
    ch->cap = cap;
    ch->mask = cap - 1;
    ch->max_size = max_size;
    tr_init_relaxed(&ch->tail, 0);
    tr_init_relaxed(&ch->head, 0);
    tr_init_relaxed(&ch->closed, false);
    tr_init_relaxed(&ch->waiters, 0);
    ck_ec32_init(&ch->ready, 0);
    *tx = (tr_broadcast_tx *)(void *)ch;
    return TR_OK;
}

int
tr_broadcast_tx_clone(tr_broadcast_tx *tx, tr_broadcast_tx **out)
{
    bchan *ch = of_tx(tx);

    if (ch == NULL || out == NULL) {
        return TR_EINVAL;
    }
    pthread_mutex_lock(&ch->lock);
    ch->senders++;
    ch->handles++;
    pthread_mutex_unlock(&ch->lock);
    *out = tx;
    return TR_OK;
}

void
tr_broadcast_tx_destroy(tr_broadcast_tx *tx)
{
    bchan *ch = of_tx(tx);
    bool last;

    if (ch == NULL) {
        return;
    }
    pthread_mutex_lock(&ch->lock);
    if (--ch->senders == 0) {
        /* seq_cst: after the last tail store, before the wake-ups. */
        tr_store_seqcst(&ch->closed, true);
        tr__ec_wake(&ch->ready);
        notify_all(ch);
    }
    last = --ch->handles == 0;
    pthread_mutex_unlock(&ch->lock);
    if (last) {
        destroy(ch);
    }
}

int
tr_broadcast_send(tr_broadcast_tx *tx, const void *data, size_t size)
{
    bchan *ch = of_tx(tx);
    bvalue *v;
    bvalue *old;
    slot *s;
    uint64_t seq;

    if (ch == NULL || (data == NULL && size != 0) || size > ch->max_size) {
        return TR_EINVAL;
    }
    v = tr__alloc(sizeof(*v) + size);
    if (v == NULL) {
        return TR_ENOMEM;
    }
    tr_init_relaxed(&v->refs, 1); /* the ring's */
    v->size = (uint32_t)size;
    v->next = NULL;
    if (size != 0) {
        memcpy(v->data, data, size);
    }

    pthread_mutex_lock(&ch->lock);
    if (ch->receivers == 0) {
        pthread_mutex_unlock(&ch->lock);
        tr__free(v, sizeof(*v) + size);
        return TR_ECLOSED;
    }
    seq = tr_load_relaxed(&ch->tail);
    v->seq = seq;
    s = &ch->slots[seq & ch->mask];
    old = tr_load_relaxed(&s->val);
    if (old != NULL) {
        /* Release: a reader that sees the BUSY below sees this head. */
        tr_store_rel(&ch->head, seq - ch->mask);
        /* seq_cst: ordered before the pin scan (top comment). */
        tr_store_seqcst(&s->seq, BUSY);
    }
    /* Release: the value's bytes before its pointer and number. */
    tr_store_rel(&s->val, v);
    tr_store_rel(&s->seq, seq);
    /* seq_cst: publishes the value, then waiters and pending flags are
     * read (notify_all). */
    tr_store_seqcst(&ch->tail, seq + 1);
    if (old != NULL) {
        old->next = ch->deferred;
        ch->deferred = old;
        if (++ch->ndeferred >= ch->scan_at) {
            reclaim(ch);
        }
    }
    notify_all(ch);
    pthread_mutex_unlock(&ch->lock);
    return TR_OK;
}

size_t
tr_broadcast_len(tr_broadcast_tx *tx)
{
    bchan *ch = of_tx(tx);
    uint64_t tail;
    uint64_t oldest;

    if (ch == NULL) {
        return 0;
    }
    pthread_mutex_lock(&ch->lock);
    tail = tr_load_relaxed(&ch->tail);
    oldest = tail;
    for (receiver *r = ch->list.next; r != &ch->list; r = r->next) {
        /* Relaxed: a snapshot; a cursor only grows. */
        uint64_t c = tr_load_relaxed(&r->cursor);
        if (!r->detached && c < oldest) {
            oldest = c;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    return (size_t)(tail - oldest < ch->cap ? tail - oldest : ch->cap);
}

size_t
tr_broadcast_receiver_count(tr_broadcast_tx *tx)
{
    bchan *ch = of_tx(tx);
    size_t n;

    if (ch == NULL) {
        return 0;
    }
    pthread_mutex_lock(&ch->lock);
    n = ch->receivers;
    pthread_mutex_unlock(&ch->lock);
    return n;
}

/* A new thread receiver of `ch` (not NULL), at the next value. */
static int
subscribe_to(bchan *ch, tr_broadcast_rx **out)
{
    tr_broadcast_rx *rx;
    int rc;

    if (out == NULL) {
        return TR_EINVAL;
    }
    rx = tr__calloc_aligned(sizeof(*rx));
    if (rx == NULL) {
        return TR_ENOMEM;
    }
    rx->r.sub = NULL;
    pthread_mutex_lock(&ch->lock);
    rc = reserve_pin(ch);
    if (rc == TR_OK) {
        link_receiver(ch, &rx->r);
    }
    pthread_mutex_unlock(&ch->lock);
    if (rc != TR_OK) {
        tr__free_aligned(rx, sizeof(*rx));
        return rc;
    }
    *out = rx;
    return TR_OK;
}

int
tr_broadcast_subscribe(tr_broadcast_tx *tx, tr_broadcast_rx **out)
{
    return tx != NULL ? subscribe_to(of_tx(tx), out) : TR_EINVAL;
}

int
tr_broadcast_resubscribe(tr_broadcast_rx *rx, tr_broadcast_rx **out)
{
    return rx != NULL ? subscribe_to(rx->r.ch, out) : TR_EINVAL;
}

size_t
tr_broadcast_rx_len(tr_broadcast_rx *rx)
{
    if (rx == NULL) {
        return 0;
    }
    /* Acquire: a snapshot of the senders' tail. Relaxed: the cursor is
     * this receiver's own. */
    return (size_t)(tr_load_acq(&rx->r.ch->tail) -
                    tr_load_relaxed(&rx->r.cursor));
}

/* One non-blocking attempt; TR_ETIMEDOUT when there is nothing new. */
static int
try_take(receiver *r, const tr_broadcast_value **out, uint64_t *lagged)
{
    uint64_t avail;
    uint64_t missed;
    uint64_t cursor;
    bvalue *v;
    int rc = position(r, &avail, &missed);

    if (rc == TR_ELAGGED) {
        if (lagged != NULL) {
            *lagged = missed;
        }
        return rc;
    }
    if (rc != TR_OK) {
        return rc;
    }
    /* seq_cst: the pin is visible to any scan that could free the value
     * (top comment). */
    cursor = tr_load_relaxed(&r->cursor);
    tr_store_seqcst(&r->pin, pin_of(cursor, 1));
    v = read_slot(r->ch->slots, r->ch->mask, cursor);
    if (v != NULL) {
        /* Relaxed: the ring's reference cannot go while we are pinned. */
        tr_faa_relaxed(&v->refs, 1);
    }
    /* Release: our use of the slot before a scan that sees the unpin. */
    tr_store_rel(&r->pin, 0);
    if (v == NULL) {
        missed = lag_from(r);
        if (lagged != NULL) {
            *lagged = missed;
        }
        return TR_ELAGGED;
    }
    tr_store_relaxed(&r->cursor, cursor + 1);
    *out = v;
    return TR_OK;
}

int
tr_broadcast_recv_wait(tr_broadcast_rx *rx, const tr_broadcast_value **value,
                       uint64_t *lagged, tr_timeout timeout_ms)
{
    bchan *ch;
    uint64_t deadline = 0;

    if (rx == NULL || value == NULL) {
        return TR_EINVAL;
    }
    if (timeout_ms.ms != 0 && !tr__may_block()) {
        return TR_ESTATE; /* a worker, or shutdown's last pass */
    }
    ch = rx->r.ch;
    if (timeout_ms.ms > 0) {
        deadline = tr_timeout_deadline_ns(tr__wait_now_ns(), timeout_ms);
    }
    for (;;) {
        uint32_t seen = tr__ec_value(&ch->ready);
        long wait_ms = -1;
        int rc = try_take(&rx->r, value, lagged);

        if (rc != TR_ETIMEDOUT || timeout_ms.ms == 0) {
            return rc;
        }
        if (timeout_ms.ms > 0) {
            uint64_t now = tr__wait_now_ns();
            if (now >= deadline) {
                return TR_ETIMEDOUT;
            }
            wait_ms = (long)((deadline - now + 999999u) / 1000000u);
        }
        /* seq_cst: announce, then re-check (pairs with notify_all). */
        tr_faa_seqcst(&ch->waiters, 1);
        rc = try_take(&rx->r, value, lagged);
        int parked = 0;
        if (rc == TR_ETIMEDOUT) {
            parked = tr__ec_wait_ms(&ch->ready, seen, wait_ms);
        }
        tr_fas_seqcst(&ch->waiters, 1);
        if (rc != TR_ETIMEDOUT) {
            return rc;
        }
        if (parked == TR_PARK_STUCK) {
            return TR_ESTUCK; /* a simulation that can never end it */
        }
    }
}

void
tr_broadcast_rx_destroy(tr_broadcast_rx *rx)
{
    bchan *ch;
    bool last;

    if (rx == NULL) {
        return;
    }
    ch = rx->r.ch;
    pthread_mutex_lock(&ch->lock);
    unlink_receiver(&rx->r);
    ch->receivers--;
    last = --ch->handles == 0;
    pthread_mutex_unlock(&ch->lock);
    tr__free_aligned(rx, sizeof(*rx));
    if (last) {
        destroy(ch);
    }
}

const void *
tr_broadcast_value_data(const tr_broadcast_value *value)
{
    return value != NULL ? value->data : NULL;
}

size_t
tr_broadcast_value_size(const tr_broadcast_value *value)
{
    return value != NULL ? value->size : 0;
}

void
tr_broadcast_value_release(const tr_broadcast_value *value)
{
    if (value != NULL) {
        value_unref((bvalue *)value);
    }
}

/* ---- actor subscriptions ---- */

static tr_broadcast_sub *
sub_of(tr_sub *s)
{
    return tr_container_of(s, tr_broadcast_sub, sub);
}

/* Hand a lag count to the actor; true when it ended. */
static bool
deliver_lag(tr_broadcast_sub *b, tr_ctx *ctx, void *state, uint64_t missed,
            uint64_t *handled)
{
    return tr__actor_handle_borrowed(ctx, state, b->types.lagged_type, &missed,
                                     sizeof(missed), handled);
}

/*
 * Give `v` to the actor through `fn` (the handler for the value type,
 * looked up once per batch; NULL when there is none); true when the actor
 * ended.
 */
static bool
deliver_value(tr_broadcast_sub *b, tr_ctx *ctx, void *state, tr_handle_fn fn,
              const bvalue *v, uint64_t *handled)
{
    const tr_msg msg = {
        .type = b->types.value_type,
        .size = v->size,
        .data = v->data,
        .from = TR_ADDR_NONE,
    };
    int rc;

    if (tr_unlikely(fn == NULL)) {
        return tr__actor_handle_borrowed(ctx, state, msg.type, msg.data,
                                         msg.size, handled);
    }
    rc = fn(ctx, state, &msg);
    (*handled)++;
    if (tr_likely(rc == TR_OK && !ctx->stop && ctx->fail_code == 0)) {
        return false;
    }
    return tr__actor_check_end(ctx, rc, msg.type);
}

/*
 * Read from the cursor to the tail, a pinned batch at a time, giving each
 * value to the actor; at most TR_BATCH values per run.
 */
static tr_sub_drained
sub_drain(tr_sub *s, tr_ctx *ctx, void *state, uint64_t *handled)
{
    tr_broadcast_sub *b = sub_of(s);
    receiver *r = &b->r;
    uint32_t budget = TR_BATCH;
    /* Immutable: kept in locals, as the handler calls would force the
     * compiler to load them again for every value. */
    const slot *slots = r->ch->slots;
    const uint64_t mask = r->ch->mask;

    for (;;) {
        uint64_t avail = 0;
        uint64_t missed = 0;
        uint64_t cursor;
        uint64_t n;
        const tr_dispatch *table;
        tr_handle_fn fn;
        int rc = position(r, &avail, &missed);

        if (rc == TR_ELAGGED) {
            if (deliver_lag(b, ctx, state, missed, handled)) {
                return TR_SUB_ENDED;
            }
            if (s->detached) {
                return TR_SUB_IDLE;
            }
            continue;
        }
        if (rc == TR_ECLOSED) {
            if (b->closed_sent) {
                return TR_SUB_IDLE;
            }
            b->closed_sent = true;
            return tr__actor_handle_borrowed(ctx, state, b->types.closed_type,
                                             NULL, 0, handled)
                       ? TR_SUB_ENDED
                       : TR_SUB_IDLE;
        }
        if (rc == TR_ETIMEDOUT) {
            return TR_SUB_IDLE;
        }
        if (budget == 0) {
            return TR_SUB_MORE;
        }
        n = avail < PIN_SPAN ? avail : PIN_SPAN;
        n = n < budget ? n : budget;
        /* seq_cst: see "Reclamation" above. */
        cursor = tr_load_relaxed(&r->cursor);
        table = ctx->actor->table;
        fn = tr__actor_handler(ctx, b->types.value_type);
        tr_store_seqcst(&r->pin, pin_of(cursor, n));
        for (uint64_t i = 0; i < n; i++, cursor++) {
            bvalue *v = read_slot(slots, mask, cursor);
            if (v == NULL) {
                missed = lag_from(r);
                tr_store_rel(&r->pin, 0);
                if (deliver_lag(b, ctx, state, missed, handled)) {
                    return TR_SUB_ENDED;
                }
                break;
            }
            tr_store_relaxed(&r->cursor, cursor + 1);
            budget--;
            if (deliver_value(b, ctx, state, fn, v, handled)) {
                tr_store_rel(&r->pin, 0);
                return TR_SUB_ENDED;
            }
            if (tr_unlikely(s->detached)) {
                tr_store_rel(&r->pin, 0);
                return TR_SUB_IDLE;
            }
            if (tr_unlikely(ctx->actor->table != table)) {
                /* tr_become: the next value goes to the new table. */
                table = ctx->actor->table;
                fn = tr__actor_handler(ctx, b->types.value_type);
            }
        }
        /* Release: every use of the batch before a scan sees the unpin. */
        tr_store_rel(&r->pin, 0);
        if (s->detached) {
            return TR_SUB_IDLE;
        }
    }
}

static void
sub_detach(tr_sub *s)
{
    tr_broadcast_sub *b = sub_of(s);
    bchan *ch = b->r.ch;

    /* A handler may unsubscribe while it still borrows a value under the
     * pin: the receiver stays listed (scans see the pin) until destroy. */
    pthread_mutex_lock(&ch->lock);
    b->r.detached = true;
    ch->receivers--;
    pthread_mutex_unlock(&ch->lock);
}

static void
sub_destroy(tr_sub *s)
{
    tr_broadcast_sub *b = sub_of(s);
    bchan *ch = b->r.ch;
    bool last;

    pthread_mutex_lock(&ch->lock);
    unlink_receiver(&b->r);
    last = --ch->handles == 0;
    pthread_mutex_unlock(&ch->lock);
    tr__free_aligned(b, sizeof(*b));
    if (last) {
        destroy(ch);
    }
}

static const tr_sub_ops sub_ops = {
    .drain = sub_drain,
    .detach = sub_detach,
    .destroy = sub_destroy,
};

int
tr_broadcast_subscribe_actor(tr_ctx *ctx, tr_broadcast_tx *tx,
                             const tr_broadcast_sub_types *types,
                             tr_broadcast_sub **out)
{
    bchan *ch = of_tx(tx);
    tr_broadcast_sub *b;
    int rc;

    if (ch == NULL || ctx == NULL || types == NULL ||
        types->value_type >= TR_MSG_RESERVED ||
        types->lagged_type >= TR_MSG_RESERVED ||
        types->closed_type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    b = tr__calloc_aligned(sizeof(*b));
    if (b == NULL) {
        return TR_ENOMEM;
    }
    b->types = *types;
    b->r.sub = &b->sub;
    pthread_mutex_lock(&ch->lock);
    rc = reserve_pin(ch);
    if (rc == TR_OK) {
        /* Ready before any sender can find it in the list. */
        tr__sub_init(&b->sub, ctx, &sub_ops);
        link_receiver(ch, &b->r);
    }
    pthread_mutex_unlock(&ch->lock);
    if (rc != TR_OK) {
        tr__free_aligned(b, sizeof(*b));
        return rc;
    }
    if (out != NULL) {
        *out = b;
    }
    return TR_OK;
}

int
tr_broadcast_unsubscribe(tr_ctx *ctx, tr_broadcast_sub *sub)
{
    if (ctx == NULL || sub == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    return tr__sub_cancel(&sub->sub, ctx);
}
