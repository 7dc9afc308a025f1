/*
 * Watch channels (tokio's sync::watch semantics).
 *
 * The value is published as a seqlock over an array of 64-bit atomic
 * words, so that a reader copying it while a sender writes races on
 * nothing (ThreadSanitizer sees only atomics) and never sees a torn value:
 *
 *   sender (under the lock): seq = s + 1 (odd: writing); every word
 *     (release); seq = s + 2 (seq_cst).
 *   reader: s1 = seq (acquire), retried while odd; every word (acquire);
 *     s2 = seq; the copy is one version iff s1 == s2.
 *
 * A word store is a release, so a reader whose acquire load saw a new word
 * also sees the odd `seq` stored before it, and retries. Writers never
 * wait for readers; a reader retries only while a publication (a copy of
 * `size` bytes) overlaps it. The version is seq / 2; the initial value is
 * version 0.
 *
 * Senders keep the value also in `shadow`, a plain buffer under the lock:
 * send copies into it, send_modify lets the caller change it in place
 * (exclusive access among senders), and both then publish it.
 *
 * Receivers remember the last version they saw. Thread receivers wait on
 * an event count that senders bump only when a waiter has announced itself
 * (seq_cst, after the seq_cst store of `seq`). Actor subscriptions hold one
 * coalesced notification each (channels/subscription.c); running it copies
 * the newest version into the subscription's buffer and hands it to the
 * actor, so however many changes happened, the actor gets one message.
 */
#include <troupe/error.h>
#include <troupe/watch.h>

#include "actors/internal.h"
#include "channels/subscription.h"
#include "common/tr_alloc.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"
#include "scheduler/sched.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

/* Failed reads before a reader yields its CPU to the sender it overlaps. */
enum { SPINS_BEFORE_YIELD = 64 };

typedef struct wchan wchan;

/* A place in the channel's list of subscriptions, under its lock. */
typedef struct wlink {
    struct wlink *prev;
    struct wlink *next;
} wlink;

struct tr_watch_sub {
    tr_sub sub;
    wchan *ch;
    wlink link;
    /* Actor only. */
    uint64_t seen;
    uint32_t changed_type;
    uint32_t closed_type;
    bool closed_sent;
    _Alignas(16) unsigned char value[]; /* the copy handed to the actor */
};

typedef struct tr_watch_sub wsub;

struct wchan {
    /* Under `lock`. */
    pthread_mutex_t lock;
    wlink subs; /* sentinel of the subscriptions' list */
    uint32_t receivers;
    uint32_t senders;
    uint32_t handles; /* senders, receivers, subscriptions: freed at 0 */
    unsigned char *shadow;

    /* Immutable. */
    size_t size;
    size_t words;

    /* Written by senders, read by every receiver. */
    TR_CACHE_ALIGNED tr_atomic(uint64_t) seq;
    tr_atomic(bool) closed;

    /* Thread receivers waiting for a change. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) waiters;
    struct ck_ec32 ready;

    TR_CACHE_ALIGNED tr_atomic(uint64_t) value[];
};

struct tr_watch_rx {
    wchan *ch;
    uint64_t seen; /* receiver only */
};

static wchan *
of_tx(tr_watch_tx *tx)
{
    return (wchan *)(void *)tx;
}

static size_t
chan_bytes(size_t words)
{
    return sizeof(wchan) + words * sizeof(uint64_t);
}

static void
destroy(wchan *ch)
{
    tr__free(ch->shadow, ch->words * sizeof(uint64_t));
    pthread_mutex_destroy(&ch->lock);
    tr__free_aligned(ch, chan_bytes(ch->words));
}

/* Drop one handle under the lock; true when it was the last. */
static bool
drop_handle(wchan *ch)
{
    return --ch->handles == 0;
}

/* Copy one consistent version into `out`; returns seq (even). */
static uint64_t
read_value(wchan *ch, unsigned char *out)
{
    for (unsigned tries = 1;; tries++) {
        /* Acquire: pairs with the final store of a publication. */
        uint64_t s1 = tr_load_acq(&ch->seq);
        if ((s1 & 1) == 0) {
            for (size_t i = 0; i < ch->words; i++) {
                /* Acquire: a new word implies the odd seq before it. */
                uint64_t w = tr_load_acq(&ch->value[i]);
                size_t at = i * sizeof(w);
                size_t n =
                    ch->size - at < sizeof(w) ? ch->size - at : sizeof(w);
                memcpy(out + at, &w, n);
            }
            if (tr_load_acq(&ch->seq) == s1) {
                return s1;
            }
        }
        if (tries % SPINS_BEFORE_YIELD == 0) {
            sched_yield();
        }
    }
}

/* Under the lock: make sure every subscriber has a notification queued. */
static void
notify_subs(wchan *ch)
{
    for (wlink *l = ch->subs.next; l != &ch->subs; l = l->next) {
        tr__sub_notify(&tr_container_of(l, wsub, link)->sub);
    }
}

/* Under the lock: publish `shadow` as the next version and tell everyone. */
static void
publish(wchan *ch)
{
    uint64_t s = tr_load_relaxed(&ch->seq);

    /* Relaxed: the release word stores below order it before them. */
    tr_store_relaxed(&ch->seq, s + 1);
    for (size_t i = 0; i < ch->words; i++) {
        uint64_t w;
        memcpy(&w, ch->shadow + i * sizeof(w), sizeof(w));
        tr_store_rel(&ch->value[i], w);
    }
    /* seq_cst: publishes the version, then waiters and pending flags are
     * read, against receivers' announce (or clear) then re-read. */
    tr_store_seqcst(&ch->seq, s + 2);
    if (tr_load_seqcst(&ch->waiters) != 0) {
        tr__ec_wake(&ch->ready);
    }
    notify_subs(ch);
}

int
tr_watch_create(size_t size, const void *initial, tr_watch_tx **tx,
                tr_watch_rx **rx)
{
    size_t words = (size + sizeof(uint64_t) - 1) / sizeof(uint64_t);
    wchan *ch;
    tr_watch_rx *r;

    if (tx == NULL || rx == NULL || initial == NULL || size == 0 ||
        size > UINT32_MAX) {
        return TR_EINVAL;
    }
    ch = tr__calloc_aligned(chan_bytes(words));
    if (ch == NULL) {
        return TR_ENOMEM;
    }
    ch->shadow = tr__calloc(words * sizeof(uint64_t));
    r = tr__alloc(sizeof(*r));
    if (ch->shadow == NULL || r == NULL) {
        if (ch->shadow != NULL) {
            tr__free(ch->shadow, words * sizeof(uint64_t));
        }
        if (r != NULL) {
            tr__free(r, sizeof(*r));
        }
        tr__free_aligned(ch, chan_bytes(words));
        return TR_ENOMEM;
    }
    pthread_mutex_init(&ch->lock, NULL);
    ch->subs.next = &ch->subs;
    ch->subs.prev = &ch->subs;
    ch->receivers = 1;
    ch->senders = 1;
    ch->handles = 2;
    ch->size = size;
    ch->words = words;
    memcpy(ch->shadow, initial, size);
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, ch->shadow + i * sizeof(w), sizeof(w));
        tr_init_relaxed(&ch->value[i], w);
    }
    tr_init_relaxed(&ch->seq, 0);
    tr_init_relaxed(&ch->closed, false);
    tr_init_relaxed(&ch->waiters, 0);
    ck_ec32_init(&ch->ready, 0);
    r->ch = ch;
    r->seen = 0;
    *tx = (tr_watch_tx *)(void *)ch;
    *rx = r;
    return TR_OK;
}

int
tr_watch_tx_clone(tr_watch_tx *tx, tr_watch_tx **out)
{
    wchan *ch = of_tx(tx);

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
tr_watch_tx_destroy(tr_watch_tx *tx)
{
    wchan *ch = of_tx(tx);
    bool last;

    if (ch == NULL) {
        return;
    }
    pthread_mutex_lock(&ch->lock);
    if (--ch->senders == 0) {
        /* seq_cst: after the last publication, before the wake-ups. */
        tr_store_seqcst(&ch->closed, true);
        tr__ec_wake(&ch->ready);
        notify_subs(ch);
    }
    last = drop_handle(ch);
    pthread_mutex_unlock(&ch->lock);
    if (last) {
        destroy(ch);
    }
}

int
tr_watch_send(tr_watch_tx *tx, const void *value)
{
    wchan *ch = of_tx(tx);

    if (ch == NULL || value == NULL) {
        return TR_EINVAL;
    }
    pthread_mutex_lock(&ch->lock);
    if (ch->receivers == 0) {
        pthread_mutex_unlock(&ch->lock);
        return TR_ECLOSED;
    }
    memcpy(ch->shadow, value, ch->size);
    publish(ch);
    pthread_mutex_unlock(&ch->lock);
    return TR_OK;
}

int
tr_watch_send_modify(tr_watch_tx *tx, tr_watch_modify_fn fn, void *arg)
{
    wchan *ch = of_tx(tx);

    if (ch == NULL || fn == NULL) {
        return TR_EINVAL;
    }
    pthread_mutex_lock(&ch->lock);
    if (fn(ch->shadow, arg)) {
        publish(ch);
    }
    pthread_mutex_unlock(&ch->lock);
    return TR_OK;
}

size_t
tr_watch_receiver_count(tr_watch_tx *tx)
{
    wchan *ch = of_tx(tx);
    size_t n;

    if (ch == NULL) {
        return 0;
    }
    pthread_mutex_lock(&ch->lock);
    n = ch->receivers;
    pthread_mutex_unlock(&ch->lock);
    return n;
}

int
tr_watch_subscribe(tr_watch_tx *tx, tr_watch_rx **out)
{
    wchan *ch = of_tx(tx);
    tr_watch_rx *r;

    if (ch == NULL || out == NULL) {
        return TR_EINVAL;
    }
    r = tr__alloc(sizeof(*r));
    if (r == NULL) {
        return TR_ENOMEM;
    }
    r->ch = ch;
    pthread_mutex_lock(&ch->lock);
    /* Under the lock no publication is half done: seq is even. */
    r->seen = tr_load_relaxed(&ch->seq) >> 1;
    ch->receivers++;
    ch->handles++;
    pthread_mutex_unlock(&ch->lock);
    *out = r;
    return TR_OK;
}

int
tr_watch_rx_clone(tr_watch_rx *rx, tr_watch_rx **out)
{
    tr_watch_rx *r;

    if (rx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    r = tr__alloc(sizeof(*r));
    if (r == NULL) {
        return TR_ENOMEM;
    }
    r->ch = rx->ch;
    r->seen = rx->seen;
    pthread_mutex_lock(&rx->ch->lock);
    rx->ch->receivers++;
    rx->ch->handles++;
    pthread_mutex_unlock(&rx->ch->lock);
    *out = r;
    return TR_OK;
}

int
tr_watch_borrow(tr_watch_rx *rx, void *out, uint64_t *version)
{
    uint64_t seq;

    if (rx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    seq = read_value(rx->ch, out);
    if (version != NULL) {
        *version = seq >> 1;
    }
    return TR_OK;
}

int
tr_watch_borrow_and_update(tr_watch_rx *rx, void *out, uint64_t *version)
{
    uint64_t seq;

    if (rx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    seq = read_value(rx->ch, out);
    rx->seen = seq >> 1;
    if (version != NULL) {
        *version = seq >> 1;
    }
    return TR_OK;
}

/* A version not seen (marked seen), closed, or nothing yet. */
static int
check_changed(tr_watch_rx *rx)
{
    wchan *ch = rx->ch;
    /* seq_cst: after a waiter's announcement (see publish). An odd seq
     * names the version before the one being written. */
    uint64_t version = tr_load_seqcst(&ch->seq) >> 1;

    if (version != rx->seen) {
        rx->seen = version;
        return TR_OK;
    }
    /* Acquire, then the version again: closing follows the last send. */
    if (tr_load_seqcst(&ch->closed)) {
        version = tr_load_acq(&ch->seq) >> 1;
        if (version != rx->seen) {
            rx->seen = version;
            return TR_OK;
        }
        return TR_ECLOSED;
    }
    return TR_ETIMEDOUT;
}

int
tr_watch_has_changed(tr_watch_rx *rx, bool *changed)
{
    if (rx == NULL || changed == NULL) {
        return TR_EINVAL;
    }
    /* Acquire: pairs with the last sender's close. */
    if (tr_load_acq(&rx->ch->closed)) {
        return TR_ECLOSED;
    }
    /* Acquire: a snapshot; an odd seq names the version before the one
     * being written. */
    *changed = tr_load_acq(&rx->ch->seq) >> 1 != rx->seen;
    return TR_OK;
}

int
tr_watch_changed_wait(tr_watch_rx *rx, tr_timeout timeout_ms)
{
    wchan *ch;
    uint64_t deadline = 0;

    if (rx == NULL) {
        return TR_EINVAL;
    }
    if (timeout_ms.ms != 0 && !tr__may_block()) {
        return TR_ESTATE; /* a worker, or shutdown's last pass */
    }
    ch = rx->ch;
    if (timeout_ms.ms > 0) {
        deadline = tr_timeout_deadline_ns(tr__wait_now_ns(), timeout_ms);
    }
    for (;;) {
        uint32_t seen = tr__ec_value(&ch->ready);
        long wait_ms = -1;
        int rc = check_changed(rx);

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
        /* seq_cst: announce, then re-check (pairs with publish). */
        tr_faa_seqcst(&ch->waiters, 1);
        rc = check_changed(rx);
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
tr_watch_rx_destroy(tr_watch_rx *rx)
{
    wchan *ch;
    bool last;

    if (rx == NULL) {
        return;
    }
    ch = rx->ch;
    pthread_mutex_lock(&ch->lock);
    ch->receivers--;
    last = drop_handle(ch);
    pthread_mutex_unlock(&ch->lock);
    tr__free(rx, sizeof(*rx));
    if (last) {
        destroy(ch);
    }
}

/* ---- actor subscriptions ---- */

static size_t
sub_bytes(size_t size)
{
    return sizeof(wsub) + size;
}

static wsub *
sub_of(tr_sub *s)
{
    return tr_container_of(s, wsub, sub);
}

/* Hand the newest version to the actor if it has not seen it, then the
 * close once. */
static tr_sub_drained
sub_drain(tr_sub *s, tr_ctx *ctx, void *state, uint64_t *handled)
{
    wsub *w = sub_of(s);
    wchan *ch = w->ch;

    for (;;) {
        /* seq_cst: after the hook's clear of `pending` (see publish). */
        if (tr_load_seqcst(&ch->seq) >> 1 != w->seen) {
            w->seen = read_value(ch, w->value) >> 1;
            if (tr__actor_handle_borrowed(ctx, state, w->changed_type, w->value,
                                          (uint32_t)ch->size, handled)) {
                return TR_SUB_ENDED;
            }
            if (s->detached) {
                return TR_SUB_IDLE;
            }
        }
        if (w->closed_sent || !tr_load_seqcst(&ch->closed)) {
            return TR_SUB_IDLE;
        }
        /* Acquire, then the version again: closing follows the last send,
         * and a change not yet delivered goes first. */
        if (tr_load_acq(&ch->seq) >> 1 == w->seen) {
            w->closed_sent = true;
            return tr__actor_handle_borrowed(ctx, state, w->closed_type, NULL,
                                             0, handled)
                       ? TR_SUB_ENDED
                       : TR_SUB_IDLE;
        }
    }
}

static void
sub_detach(tr_sub *s)
{
    wsub *w = sub_of(s);
    wchan *ch = w->ch;

    pthread_mutex_lock(&ch->lock);
    w->link.prev->next = w->link.next;
    w->link.next->prev = w->link.prev;
    ch->receivers--;
    pthread_mutex_unlock(&ch->lock);
}

static void
sub_destroy(tr_sub *s)
{
    wsub *w = sub_of(s);
    wchan *ch = w->ch;
    size_t bytes = sub_bytes(ch->size); /* ch may go once unlocked */
    bool last;

    pthread_mutex_lock(&ch->lock);
    last = drop_handle(ch);
    pthread_mutex_unlock(&ch->lock);
    tr__free(w, bytes);
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
tr_watch_subscribe_actor(tr_ctx *ctx, tr_watch_tx *tx, uint32_t changed_type,
                         uint32_t closed_type, tr_watch_sub **out)
{
    wchan *ch = of_tx(tx);
    wsub *w;

    if (ch == NULL || ctx == NULL || changed_type >= TR_MSG_RESERVED ||
        closed_type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    w = tr__alloc(sub_bytes(ch->size));
    if (w == NULL) {
        return TR_ENOMEM;
    }
    w->ch = ch;
    w->changed_type = changed_type;
    w->closed_type = closed_type;
    w->closed_sent = false;
    tr__sub_init(&w->sub, ctx, &sub_ops);
    pthread_mutex_lock(&ch->lock);
    w->seen = tr_load_relaxed(&ch->seq) >> 1;
    w->link.prev = &ch->subs;
    w->link.next = ch->subs.next;
    ch->subs.next->prev = &w->link;
    ch->subs.next = &w->link;
    ch->receivers++;
    ch->handles++;
    pthread_mutex_unlock(&ch->lock);
    if (out != NULL) {
        *out = w;
    }
    return TR_OK;
}

int
tr_watch_unsubscribe(tr_ctx *ctx, tr_watch_sub *sub)
{
    if (ctx == NULL || sub == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    return tr__sub_cancel(&sub->sub, ctx);
}
