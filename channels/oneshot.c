/*
 * Oneshot channels (tokio's sync::oneshot semantics).
 *
 * One allocation holds a state word and the value. Every transition is one
 * atomic read-modify-write of the state word, so any two racing operations
 * are ordered and each sees the other's effect:
 *
 *   SENDING    a send claimed the slot (a second send gets TR_EALREADY)
 *   VALUE      the value is written and may be read (release)
 *   CLOSED     the receiver refuses further sends
 *   TX_DONE    the sender will not send (released, or releasing)
 *   TX_GONE    the sender half was released: it touches nothing more
 *   RX_GONE    the receiver half was released
 *   TAKEN      the value was received
 *   SUBSCRIBED an actor receives instead of a thread
 *   DELIVERED  the actor was told (value or closed): at most once
 *
 * A send checks CLOSED in the same CAS that sets SENDING, so a send either
 * fails with TR_ECLOSED or its value stays receivable, even if close races
 * it. Whoever sets the second of TX_GONE and RX_GONE frees the channel.
 * Subscription and send (or the sender's TX_DONE) each set their bit with
 * one fetch-or and look at what the other had set: at least one of them
 * sees both, and the DELIVERED bit makes sure only one delivers. The
 * sender sets TX_DONE, delivers or wakes, and only then TX_GONE, so the
 * channel outlives its own notification.
 *
 * An actor's subscription keeps its system's address, so it is registered
 * with the system (tr_outside, REGISTERED) until it has delivered; the
 * channel then also waits for REG_GONE before it is freed. If the system
 * shuts down first, shutdown sets SYS_GONE and CLOSED: a later send fails
 * with TR_ECLOSED and touches nothing of the system. Delivery and shutdown
 * each set their bit with one read-modify-write and look at the other's:
 * a delivery that finds SYS_GONE gives up; shutdown that finds DELIVERED
 * waits for DELIVERY_DONE, when the delivery is done with the system.
 */
#include <troupe/oneshot.h>
#include <troupe/error.h>

#include "actors/internal.h"
#include "common/tr_alloc.h"
#include "common/tr_atomic.h"
#include "common/tr_park.h"
#include "scheduler/sched.h"

#include <sched.h>
#include <string.h>

enum {
    SENDING = 1u << 0,
    VALUE = 1u << 1,
    CLOSED = 1u << 2,
    TX_GONE = 1u << 3,
    RX_GONE = 1u << 4,
    TAKEN = 1u << 5,
    SUBSCRIBED = 1u << 6,
    DELIVERED = 1u << 7,
    TX_DONE = 1u << 8,
    REGISTERED = 1u << 9,     /* an actor subscribed: see the top comment */
    REG_GONE = 1u << 10,      /* ... and the registration is over */
    SYS_GONE = 1u << 11,      /* the subscriber's system shut down */
    DELIVERY_DONE = 1u << 12, /* the delivery is done with the system */
};

typedef struct oneshot {
    tr_atomic(uint32_t) state;
    uint32_t size;
    struct ck_ec32 ready;
    /* Set before SUBSCRIBED is published (release), read after. */
    tr_system *sys;
    uint64_t subscriber;
    uint32_t value_type;
    uint32_t closed_type;
    tr_outside link; /* registered with `sys` (REGISTERED) */
    _Alignas(16) unsigned char value[];
} oneshot;

static oneshot *
of_tx(tr_oneshot_tx *tx)
{
    return (oneshot *)(void *)tx;
}

static oneshot *
of_rx(tr_oneshot_rx *rx)
{
    return (oneshot *)(void *)rx;
}

static void
destroy(oneshot *o)
{
    tr__free(o, sizeof(*o) + o->size);
}

/* Nobody holds the channel: both halves gone, and the registration over
 * if there was one. */
static bool
unheld(uint32_t s)
{
    return (s & (TX_GONE | RX_GONE)) == (TX_GONE | RX_GONE) &&
           (!(s & REGISTERED) || (s & REG_GONE));
}

/* Set `bits`; frees the channel when this let go of its last holder.
 * Returns the state before. */
static uint32_t
set_bits(oneshot *o, uint32_t bits)
{
    /* acq_rel: the value written by a send is visible to the reader, and
     * the last holder to go sees every write before freeing. */
    uint32_t before = tr_for_acqrel(&o->state, bits);
    if (unheld(before | bits) && !unheld(before)) {
        destroy(o);
    }
    return before;
}

/* Tell the subscribed actor, once. `o` stays alive: the caller holds a
 * half. */
static void
deliver(oneshot *o, bool has_value)
{
    uint32_t before = tr_for_acqrel(&o->state, DELIVERED);
    tr_envelope *env;

    if (before & (DELIVERED | SYS_GONE)) {
        return; /* told already, or nobody to tell: see the top comment */
    }
    /* Entered, so that shutdown does not stop the workers and end the
     * actors under the push; once it has begun the actor is being
     * stopped, and is not told. */
    bool entered = false;
    bool in = tr__sys_enter_any(o->sys, &entered) == TR_OK;
    if (in && (env = tr__env_create(has_value ? o->size : 0)) != NULL) {
        env->type = has_value ? o->value_type : o->closed_type;
        env->kind = TR_CTL_USER;
        if (has_value && o->size != 0) {
            memcpy(tr__env_data(env), o->value, o->size);
        }
        if (tr__actor_push_ctl_to(o->sys, o->subscriber, env) != TR_OK) {
            tr__env_destroy(env); /* the subscriber has stopped */
        }
    }
    if (in && entered) {
        tr__sys_leave(o->sys);
    }
    /* Out of memory, the actor is not told (documented). Either way we
     * are done with the system: unregister, unless shutdown has taken the
     * registration (it ends it when it sees DELIVERY_DONE). */
    if (tr__outside_remove(o->sys, &o->link)) {
        set_bits(o, REG_GONE);
    }
    set_bits(o, DELIVERY_DONE);
}

/* Shutdown forgets the subscription (tr_outside). */
static void
close_subscription(tr_outside *l)
{
    oneshot *o = tr_container_of(l, oneshot, link);

    /* acq_rel: one of this and the delivery's DELIVERED comes first, and
     * the other sees it (see the top comment). */
    if (tr_for_acqrel(&o->state, SYS_GONE | CLOSED) & DELIVERED) {
        /* Acquire: pairs with the delivery's last set_bits. */
        while (!(tr_load_acq(&o->state) & DELIVERY_DONE)) {
            sched_yield();
        }
    }
    set_bits(o, REG_GONE); /* may free it */
}

int
tr_oneshot_create(size_t size, tr_oneshot_tx **tx, tr_oneshot_rx **rx)
{
    oneshot *o;

    if (tx == NULL || rx == NULL || size > UINT32_MAX) {
        return TR_EINVAL;
    }
    o = tr__alloc(sizeof(*o) + size);
    if (o == NULL) {
        return TR_ENOMEM;
    }
    tr_init_relaxed(&o->state, 0);
    o->size = (uint32_t)size;
    ck_ec32_init(&o->ready, 0);
    o->sys = NULL;
    o->subscriber = 0;
    *tx = (tr_oneshot_tx *)(void *)o;
    *rx = (tr_oneshot_rx *)(void *)o;
    return TR_OK;
}

int
tr_oneshot_send(tr_oneshot_tx *tx, const void *value)
{
    oneshot *o = of_tx(tx);
    uint32_t s;

    if (o == NULL || (value == NULL && o->size != 0)) {
        return TR_EINVAL;
    }
    s = tr_load_acq(&o->state);
    do {
        if (s & (CLOSED | RX_GONE)) {
            return TR_ECLOSED;
        }
        if (s & SENDING) {
            return TR_EALREADY;
        }
    } while (!tr_cas_weak_acqrel(&o->state, &s, s | SENDING));
    if (o->size != 0) {
        memcpy(o->value, value, o->size);
    }
    s = set_bits(o, VALUE);
    if (s & SUBSCRIBED) {
        deliver(o, true);
    } else {
        tr__ec_wake(&o->ready);
    }
    return TR_OK;
}

void
tr_oneshot_tx_destroy(tr_oneshot_tx *tx)
{
    oneshot *o = of_tx(tx);

    if (o == NULL) {
        return;
    }
    uint32_t s = set_bits(o, TX_DONE);
    if (!(s & VALUE)) {
        if (s & SUBSCRIBED) {
            deliver(o, false);
        } else {
            tr__ec_wake(&o->ready);
        }
    }
    set_bits(o, TX_GONE); /* may free it: touch nothing after */
}

int
tr_oneshot_recv_wait(tr_oneshot_rx *rx, void *out, tr_timeout timeout_ms)
{
    oneshot *o = of_rx(rx);
    uint64_t deadline = 0;

    if (o == NULL || (out == NULL && o->size != 0)) {
        return TR_EINVAL;
    }
    if (timeout_ms.ms != 0 && !tr__may_block()) {
        return TR_ESTATE; /* a worker, or shutdown's last pass */
    }
    if (timeout_ms.ms > 0) {
        deadline = tr_timeout_deadline_ns(tr__wait_now_ns(), timeout_ms);
    }
    for (;;) {
        uint32_t seen = tr__ec_value(&o->ready);
        /* Acquire: pairs with the release in set_bits (the value). */
        uint32_t s = tr_load_acq(&o->state);
        long wait_ms = -1;

        if (s & SUBSCRIBED) {
            return TR_ESTATE;
        }
        if (s & TAKEN) {
            return TR_EALREADY;
        }
        if (s & VALUE) {
            if (o->size != 0) {
                memcpy(out, o->value, o->size);
            }
            set_bits(o, TAKEN);
            return TR_OK;
        }
        /* Closed by the receiver with no send under way: no value can
         * come (a send that won the race is finishing its write). */
        if ((s & TX_DONE) || ((s & CLOSED) && !(s & SENDING))) {
            return TR_ECLOSED;
        }
        if (timeout_ms.ms == 0) {
            return TR_ETIMEDOUT;
        }
        if (timeout_ms.ms > 0) {
            uint64_t now = tr__wait_now_ns();
            if (now >= deadline) {
                return TR_ETIMEDOUT;
            }
            wait_ms = (long)((deadline - now + 999999u) / 1000000u);
        }
        if (tr__ec_wait_ms(&o->ready, seen, wait_ms) == TR_PARK_STUCK) {
            return TR_ESTUCK; /* a simulation that can never end it */
        }
    }
}

int
tr_oneshot_subscribe_actor(tr_ctx *ctx, tr_oneshot_rx *rx, uint32_t value_type,
                           uint32_t closed_type)
{
    oneshot *o = of_rx(rx);
    uint32_t s;

    if (o == NULL || ctx == NULL || value_type >= TR_MSG_RESERVED ||
        closed_type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    if (tr_self(ctx).id == 0) {
        return TR_ESTATE;
    }
    s = tr_load_acq(&o->state);
    if (s & (SUBSCRIBED | TAKEN)) {
        return TR_EALREADY;
    }
    o->sys = tr_ctx_system(ctx);
    o->subscriber = tr_self(ctx).id;
    o->value_type = value_type;
    o->closed_type = closed_type;
    /* Registered before anyone may deliver: an actor's context, so the
     * system runs. */
    o->link.close = close_subscription;
    tr__outside_add(o->sys, &o->link);
    set_bits(o, REGISTERED);
    s = set_bits(o, SUBSCRIBED);
    if (s & VALUE) {
        deliver(o, true);
    } else if ((s & TX_DONE) || ((s & CLOSED) && !(s & SENDING))) {
        deliver(o, false);
    }
    return TR_OK;
}

bool
tr_oneshot_tx_is_closed(tr_oneshot_tx *tx)
{
    /* Acquire: pairs with the close's read-modify-write. */
    return tx == NULL ||
           (tr_load_acq(&of_tx(tx)->state) & (CLOSED | RX_GONE)) != 0;
}

void
tr_oneshot_rx_close(tr_oneshot_rx *rx)
{
    oneshot *o = of_rx(rx);
    uint32_t s;

    if (o == NULL) {
        return;
    }
    s = set_bits(o, CLOSED);
    if ((s & SUBSCRIBED) && !(s & (SENDING | VALUE))) {
        deliver(o, false); /* no value can come now */
    } else if (!(s & SENDING)) {
        tr__ec_wake(&o->ready); /* a waiting receive returns closed */
    }
}

void
tr_oneshot_rx_destroy(tr_oneshot_rx *rx)
{
    if (rx != NULL) {
        set_bits(of_rx(rx), CLOSED | RX_GONE);
    }
}
