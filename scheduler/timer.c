/*
 * Timers.
 *
 * A binary min-heap of deadlines (O(log n) add and cancel) over a slab of
 * timer records, all under one mutex: timers are armed and fired far less
 * often than messages are sent, and a mutex keeps cancel-while-firing
 * simple to reason about. Ids are (generation << TIMER_SLOT_BITS | slot),
 * so cancelling an id whose timer has fired and whose slot was reused does
 * nothing. A slot's generation never wraps: a slot that has used its last
 * generation is retired (never reused), which costs one record per 2^40
 * timers armed in that slot, and makes a stale id that names a later timer
 * impossible however fast timers churn.
 *
 * Firing. The timer thread sleeps on an event count until the earliest
 * deadline (with no timers it sleeps without a deadline: an idle system
 * makes no wakeups). Arming a timer that becomes the earliest wakes it.
 * Due timers are taken off the heap under the lock (intervals are re-armed
 * at deadline + period, so they do not drift), then fired outside it, in
 * deadline order. A timer never fires before its deadline: deadlines and
 * the clock are both CLOCK_MONOTONIC nanoseconds.
 *
 * An interval's argument stays in use while it fires outside the lock; a
 * cancel that comes meanwhile takes it off the heap and leaves the drop to
 * the firer, so the argument is never freed under a running callback.
 *
 * Manual clock: no thread; tr__timers_advance moves `manual_now` and fires
 * what is due on the caller's thread, so tests control time exactly.
 *
 * Closing (before destroy, for an owner that still runs code that may arm
 * or cancel): the thread is joined, pending timers are dropped, and from
 * then on adding fails; the clock still reads.
 */
#include "scheduler/timer.h"

#include "common/tr_alloc.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"

#include <troupe/error.h>

#include <pthread.h>
#include <string.h>

enum { NONE = UINT32_MAX, FIRE_BATCH = 64, BURST_MAX = 1000 };

typedef struct rec {
    uint64_t deadline;
    uint64_t period;
    void *arg;
    uint64_t gen;
    uint32_t heap_at; /* NONE when free or cancelled */
    uint32_t next_free;
    uint32_t firing; /* interval firings in progress outside the lock */
    bool cancelled;  /* cancelled while firing: the firer drops it */
} rec;

struct tr_timers {
    pthread_mutex_t lock;
    rec *recs;
    uint32_t n_recs;
    uint32_t cap_recs;
    uint32_t free_head;
    uint32_t *heap; /* slot indices, ordered by deadline */
    uint32_t heap_len;
    uint32_t heap_cap;
    uint64_t start_ns;
    tr_atomic(uint64_t) manual_now; /* written under the lock */
    bool manual;
    bool stopping;
    bool closed; /* tr__timers_close: no timer is added any more */
    tr_timer_fire_fn fire;
    tr_timer_drop_fn drop;
    struct ck_ec32 wake;
    pthread_t thread;
    bool has_thread;
};

static uint64_t
now_locked(tr_timers *t)
{
    return t->manual ? tr_load_relaxed(&t->manual_now)
                     : tr__now_ns() - t->start_ns;
}

uint64_t
tr__timers_now(tr_timers *t)
{
    /* No lock: `manual` and `start_ns` never change, and a manual time is
     * one atomic word (acquire: pairs with the advance's release). */
    return t->manual ? tr_load_acq(&t->manual_now) : tr__now_ns() - t->start_ns;
}

/* ---- heap ---- */

static bool
earlier(tr_timers *t, uint32_t a, uint32_t b)
{
    return t->recs[t->heap[a]].deadline < t->recs[t->heap[b]].deadline;
}

static void
place(tr_timers *t, uint32_t at, uint32_t slot)
{
    t->heap[at] = slot;
    t->recs[slot].heap_at = at;
}

static void
sift_up(tr_timers *t, uint32_t at)
{
    while (at > 0) {
        uint32_t parent = (at - 1) / 2;
        if (!earlier(t, at, parent)) {
            break;
        }
        uint32_t tmp = t->heap[parent];
        place(t, parent, t->heap[at]);
        place(t, at, tmp);
        at = parent;
    }
}

static void
sift_down(tr_timers *t, uint32_t at)
{
    for (;;) {
        uint32_t l = 2 * at + 1;
        uint32_t r = l + 1;
        uint32_t best = at;
        if (l < t->heap_len && earlier(t, l, best)) {
            best = l;
        }
        if (r < t->heap_len && earlier(t, r, best)) {
            best = r;
        }
        if (best == at) {
            return;
        }
        uint32_t tmp = t->heap[best];
        place(t, best, t->heap[at]);
        place(t, at, tmp);
        at = best;
    }
}

static void
heap_remove(tr_timers *t, uint32_t at)
{
    uint32_t last = t->heap[--t->heap_len];
    if (at == t->heap_len) {
        return;
    }
    place(t, at, last);
    sift_down(t, at);
    sift_up(t, t->recs[last].heap_at);
}

static void
free_slot(tr_timers *t, uint32_t slot)
{
    rec *r = &t->recs[slot];
    r->gen++;
    r->heap_at = NONE;
    r->arg = NULL;
    r->firing = 0;
    r->cancelled = false;
    if (r->gen > TR_TIMER_GEN_MAX) {
        return; /* retired: every id it could carry has been used */
    }
    r->next_free = t->free_head;
    t->free_head = slot;
}

/* ---- firing ---- */

typedef struct due {
    void *arg;
    uint32_t slot;
    bool last;
} due;

/*
 * An interval's deadline after the tick due now. A clock that jumped over
 * more than BURST_MAX ticks gets this one and then resumes on the period's
 * grid after `now`: a jump of 2^62 ms must not queue 2^62 ticks.
 */
static uint64_t
next_deadline(const rec *r, uint64_t now)
{
    uint64_t next = tr_sat_add(r->deadline, r->period);

    if (next <= now && (now - next) / r->period >= BURST_MAX) {
        uint64_t k = (now - r->deadline) / r->period + 1;
        next = tr_sat_add(r->deadline, tr_sat_mul(k, r->period));
    }
    return next;
}

/* Under the lock: take up to FIRE_BATCH due timers; true if more are due. */
static bool
take_due(tr_timers *t, due *out, unsigned *n)
{
    uint64_t now = now_locked(t);

    *n = 0;
    while (t->heap_len > 0 && *n < FIRE_BATCH) {
        uint32_t slot = t->heap[0];
        rec *r = &t->recs[slot];
        /* A deadline saturated at the clock's end is never due, even once
         * a manual or simulated clock has been moved there. */
        if (r->deadline > now || r->deadline == UINT64_MAX) {
            return false;
        }
        out[*n].arg = r->arg;
        out[*n].slot = slot;
        uint64_t next = r->period != 0 ? next_deadline(r, now) : UINT64_MAX;
        if (next != UINT64_MAX) {
            r->deadline = next;
            r->firing++;
            sift_down(t, 0);
            out[*n].last = false;
        } else {
            /* A one-shot, or an interval whose next tick would be past the
             * end of time. */
            heap_remove(t, 0);
            free_slot(t, slot);
            out[*n].last = true;
        }
        (*n)++;
    }
    return t->heap_len > 0 && t->recs[t->heap[0]].deadline <= now;
}

/* Fire everything due; the lock is held on entry and on return. */
static void
fire_due(tr_timers *t)
{
    due batch[FIRE_BATCH];
    unsigned n;
    bool more;

    do {
        more = take_due(t, batch, &n);
        pthread_mutex_unlock(&t->lock);
        for (unsigned i = 0; i < n; i++) {
            t->fire(batch[i].arg, batch[i].last);
        }
        pthread_mutex_lock(&t->lock);
        for (unsigned i = 0; i < n; i++) {
            rec *r = &t->recs[batch[i].slot];
            if (batch[i].last || --r->firing != 0 || !r->cancelled) {
                continue;
            }
            t->drop(r->arg);
            free_slot(t, batch[i].slot);
        }
    } while (more);
}

static void *
timer_main(void *p)
{
    tr_timers *t = p;

    pthread_mutex_lock(&t->lock);
    for (;;) {
        fire_due(t); /* unlocks while firing */
        /* Read the count and test `stopping` in one hold of the lock:
         * destroy sets `stopping` under it and wakes after, so either we
         * see the flag here or the wait sees the count move. */
        uint32_t seen = tr__ec_value(&t->wake);
        if (t->stopping) {
            break;
        }
        long wait_ms = -1;
        if (t->heap_len > 0) {
            uint64_t now = now_locked(t);
            uint64_t next = t->recs[t->heap[0]].deadline;
            /* Round up: waking early would only loop once more. */
            wait_ms =
                next > now ? (long)((next - now + 999999u) / 1000000u) : 0;
        }
        if (wait_ms == 0) {
            continue;
        }
        pthread_mutex_unlock(&t->lock);
        tr__ec_wait_ms(&t->wake, seen, wait_ms);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* ---- API ---- */

int
tr__timers_create(bool manual, tr_timer_fire_fn fire, tr_timer_drop_fn drop,
                  tr_timers **out)
{
    tr_timers *t = tr__calloc(sizeof(*t));

    if (t == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->free_head = NONE;
    t->start_ns = tr__now_ns();
    t->manual = manual;
    tr_init_relaxed(&t->manual_now, 0);
    t->fire = fire;
    t->drop = drop;
    ck_ec32_init(&t->wake, 0);
    if (!manual) {
        if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
            pthread_mutex_destroy(&t->lock);
            tr__free(t, sizeof(*t));
            return TR_ESTATE;
        }
        t->has_thread = true;
    }
    *out = t;
    return TR_OK;
}

void
tr__timers_close(tr_timers *t)
{
    pthread_mutex_lock(&t->lock);
    if (t->closed) {
        pthread_mutex_unlock(&t->lock);
        return;
    }
    t->stopping = true;
    t->closed = true;
    pthread_mutex_unlock(&t->lock);
    if (t->has_thread) {
        tr__ec_wake(&t->wake);
        pthread_join(t->thread, NULL);
        t->has_thread = false;
    }
    /* Nothing fires now (the thread is joined; the owner advances a
     * manual clock no more), and nothing is added: drop what is pending,
     * outside the lock like every callback. */
    pthread_mutex_lock(&t->lock);
    while (t->heap_len > 0) {
        uint32_t slot = t->heap[--t->heap_len];
        void *arg = t->recs[slot].arg;
        free_slot(t, slot);
        pthread_mutex_unlock(&t->lock);
        t->drop(arg);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
}

void
tr__timers_destroy(tr_timers *t)
{
    tr__timers_close(t);
    tr__free(t->heap, sizeof(uint32_t) * t->heap_cap);
    tr__free(t->recs, sizeof(rec) * t->cap_recs);
    pthread_mutex_destroy(&t->lock);
    tr__free(t, sizeof(*t));
}

int
tr__timers_add(tr_timers *t, uint64_t delay_ns, uint64_t period_ns, void *arg,
               uint64_t *id)
{
    uint32_t slot;

    pthread_mutex_lock(&t->lock);
    if (t->free_head == NONE && t->n_recs == TR_TIMER_SLOTS) {
        pthread_mutex_unlock(&t->lock);
        return TR_ENOMEM; /* TR_TIMER_SLOTS timers pending at once */
    }
    if (t->closed) {
        pthread_mutex_unlock(&t->lock);
        return TR_ESHUTDOWN;
    }
    if (t->free_head == NONE && t->n_recs == t->cap_recs &&
        !tr__grow((void **)&t->recs, &t->cap_recs, sizeof(rec), 64)) {
        pthread_mutex_unlock(&t->lock);
        return TR_ENOMEM;
    }
    if (t->heap_len == t->heap_cap &&
        !tr__grow((void **)&t->heap, &t->heap_cap, sizeof(uint32_t), 64)) {
        pthread_mutex_unlock(&t->lock);
        return TR_ENOMEM;
    }
    if (t->free_head != NONE) {
        slot = t->free_head;
        t->free_head = t->recs[slot].next_free;
    } else {
        slot = t->n_recs++;
        t->recs[slot].gen = 1;
    }
    rec *r = &t->recs[slot];
    r->deadline = tr_sat_add(now_locked(t), delay_ns);
    r->period = period_ns;
    r->arg = arg;
    r->firing = 0;
    r->cancelled = false;
    place(t, t->heap_len++, slot);
    sift_up(t, r->heap_at);
    bool first = r->heap_at == 0;
    *id = (r->gen << TR_TIMER_SLOT_BITS) | slot;
    pthread_mutex_unlock(&t->lock);
    if (first && t->has_thread) {
        tr__ec_wake(&t->wake); /* the thread may sleep past the new deadline */
    }
    return TR_OK;
}

bool
tr__timers_cancel(tr_timers *t, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & (TR_TIMER_SLOTS - 1));
    void *arg = NULL;
    bool removed = false;
    bool drop_now = false;

    pthread_mutex_lock(&t->lock);
    if (slot < t->n_recs && t->recs[slot].gen == id >> TR_TIMER_SLOT_BITS &&
        t->recs[slot].heap_at != NONE) {
        rec *r = &t->recs[slot];
        heap_remove(t, r->heap_at);
        removed = true;
        if (r->firing != 0) {
            r->heap_at = NONE;
            r->cancelled = true; /* the firer drops it */
        } else {
            arg = r->arg;
            drop_now = true;
            free_slot(t, slot);
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (drop_now) {
        t->drop(arg);
    }
    return removed;
}

void
tr__timers_advance(tr_timers *t, uint64_t ns)
{
    pthread_mutex_lock(&t->lock);
    tr_store_rel(&t->manual_now,
                 tr_sat_add(tr_load_relaxed(&t->manual_now), ns));
    fire_due(t);
    pthread_mutex_unlock(&t->lock);
}

bool
tr__timers_next(tr_timers *t, uint64_t *deadline)
{
    bool any;

    pthread_mutex_lock(&t->lock);
    any = t->heap_len > 0 && t->recs[t->heap[0]].deadline != UINT64_MAX;
    if (any) {
        *deadline = t->recs[t->heap[0]].deadline;
    }
    pthread_mutex_unlock(&t->lock);
    return any;
}

uint64_t
tr__timers_len(tr_timers *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->heap_len;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void
tr__timers_set_gen(tr_timers *t, uint64_t id, uint64_t gen)
{
    uint32_t slot = (uint32_t)(id & (TR_TIMER_SLOTS - 1));

    pthread_mutex_lock(&t->lock);
    if (slot < t->n_recs && t->recs[slot].heap_at == NONE) {
        t->recs[slot].gen = gen;
    }
    pthread_mutex_unlock(&t->lock);
}
