/*
 * Private: what a channel needs to deliver into an actor (broadcast and
 * watch subscriptions). See subscription.c.
 */
#ifndef TR_CHANNELS_SUBSCRIPTION_H
#define TR_CHANNELS_SUBSCRIPTION_H

#include "actors/internal.h"
#include "common/tr_atomic.h"

#include <stdbool.h>
#include <stdint.h>

/* What a subscription's drain reports. */
typedef enum tr_sub_drained {
    TR_SUB_IDLE = 0,  /* nothing left now: wait for the next notification */
    TR_SUB_MORE = 1,  /* stopped at the batch bound: run again later */
    TR_SUB_ENDED = 2, /* a handler stopped or failed the actor */
} tr_sub_drained;

typedef struct tr_sub tr_sub;

/* The channel's side of a subscription. */
typedef struct tr_sub_ops {
    /* In the actor's context: read what is new and hand it to the actor. */
    tr_sub_drained (*drain)(tr_sub *s, tr_ctx *ctx, void *state,
                            uint64_t *handled);
    /* In the actor's context (unsubscribe or actor end): unlink from the
     * channel; no sender reaches `s` once this returns. */
    void (*detach)(tr_sub *s);
    /* The last reference is gone: free the object around `s`. */
    void (*destroy)(tr_sub *s);
} tr_sub_ops;

struct tr_sub {
    tr_ctl_hook hook;  /* the one notification; queued while `pending` */
    tr_exit_hook exit; /* detaches when the actor ends */
    const tr_sub_ops *ops;
    tr_system *sys;
    uint64_t actor; /* the subscriber's address id */
    bool detached;  /* actor-only: unsubscribed or ended */
    /* Written by senders and the actor. */
    tr_atomic(uint32_t) pending; /* 1 while the notification is queued */
    tr_atomic(uint32_t) refs;    /* 1 for the subscription, 1 per queued
                                  * notification */
};

/* Start `s` for the actor running `ctx` (an actor context). */
void tr__sub_init(tr_sub *s, tr_ctx *ctx, const tr_sub_ops *ops);

/*
 * Make sure a notification is queued for the subscriber: at most one is,
 * however often this is called. The caller guarantees that `s` is still
 * attached (it holds the channel lock under which detach unlinks it), and
 * has published what is new with a seq_cst store before calling: the drain
 * clears `pending` (seq_cst) before it reads, so either it sees the new
 * state or this call sees `pending` clear and queues the notification.
 */
void tr__sub_notify(tr_sub *s);

/* Unsubscribe in the actor's own context; TR_EALREADY when `s` is not a
 * live subscription of this actor. */
int tr__sub_cancel(tr_sub *s, tr_ctx *ctx);

#endif /* TR_CHANNELS_SUBSCRIPTION_H */
