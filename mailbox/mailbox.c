/*
 * The standalone mailbox: an mpsc channel between plain threads, on the same
 * queue as actor mailboxes.
 *
 * The receiver holds the queue's consumer role while it runs. With nothing to
 * take it reads the event count, then gives the role up (marks the queue
 * idle) and sleeps on the value it read. The push that finds the queue idle
 * takes the role back on the receiver's behalf and increments the count, so
 * the sleep ends; a push that comes before the mark makes the mark fail and
 * the receiver pops again. Close sets a flag and increments the count.
 *
 * Close against send. A send either is received or fails: it counts
 * itself in `sent` and then reads `closed` (both seq_cst), and withdraws
 * with TR_ECLOSED if it is set; close sets `closed` (seq_cst) before the
 * receiver, having seen it, reads `sent` (seq_cst). So a send the receiver
 * did not count sees the flag, and the receiver reports TR_ECLOSED only
 * once every counted send has been received or withdrawn.
 */
#include <troupe/error.h>
#include <troupe/mailbox.h>

#include "common/tr_alloc.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"
#include "mailbox/envelope.h"
#include "mailbox/mpsc.h"

#include <string.h>

struct tr_mailbox {
    /* Producers. */
    tr_mpsc_prod in;
    tr_atomic(uint64_t) sent;
    tr_atomic(bool) closed;
    struct ck_ec32 ready;
    /* The receiver. */
    TR_CACHE_ALIGNED tr_mpsc_cons out;
    tr_atomic(uint64_t) taken;
    tr_atomic(bool) receiving;
    tr_envelope *held; /* popped but too large for the caller's buffer */
    uint32_t cap;
};

int
tr_mailbox_create(uint32_t cap, tr_mailbox **out)
{
    tr_mailbox *mb;

    if (out == NULL) {
        return TR_EINVAL;
    }
    mb = tr__calloc_aligned(sizeof(*mb));
    if (mb == NULL) {
        return TR_ENOMEM;
    }
    tr__mpsc_init(&mb->in, &mb->out, true);
    tr_init_relaxed(&mb->sent, 0);
    tr_init_relaxed(&mb->taken, 0);
    tr_init_relaxed(&mb->closed, false);
    tr_init_relaxed(&mb->receiving, false);
    ck_ec32_init(&mb->ready, 0);
    mb->cap = cap;
    *out = mb;
    return TR_OK;
}

int
tr_mailbox_send(tr_mailbox *mb, const void *data, size_t size)
{
    tr_envelope *env;

    if (mb == NULL || (data == NULL && size != 0) || size > UINT32_MAX) {
        return TR_EINVAL;
    }
    /* Spares the allocation once closed; the check that counts is below. */
    if (tr_load_acq(&mb->closed)) {
        return TR_ECLOSED;
    }
    env = tr__env_create((uint32_t)size);
    if (env == NULL) {
        return TR_ENOMEM;
    }
    /* seq_cst, both: count ourselves, then look at the flag (see the top
     * comment); the count is withdrawn on either refusal. */
    uint64_t before = tr_faa_seqcst(&mb->sent, 1);
    int rc = TR_OK;
    if (tr_load_seqcst(&mb->closed)) {
        rc = TR_ECLOSED;
    } else if (mb->cap != 0 && before - tr_load_seqcst(&mb->taken) >= mb->cap) {
        rc = TR_EFULL; /* a stale `taken` only refuses early */
    }
    if (rc != TR_OK) {
        tr_fas_relaxed(&mb->sent, 1);
        tr__env_destroy(env);
        return rc;
    }
    if (size != 0) {
        memcpy(tr__env_data(env), data, size);
    }
    if (tr__mpsc_push(&mb->in, &env->node)) {
        tr__ec_wake(&mb->ready);
    }
    return TR_OK;
}

static void
release(tr_mnode *done)
{
    if (done != NULL) {
        tr__env_destroy(tr__env_of_node(done));
    }
}

static int
deliver(tr_mailbox *mb, tr_envelope *env, void *buf, size_t cap, size_t *len)
{
    *len = env->size;
    if (env->size > cap) {
        mb->held = env;
        return TR_EINVAL;
    }
    if (env->size != 0) {
        memcpy(buf, tr__env_data(env), env->size);
    }
    mb->held = NULL;
    /* seq_cst pairs with the producers' seq_cst read in lane_admit. The
     * envelope stays as the queue's dummy; the next pop releases it. */
    tr_store_seqcst(&mb->taken, tr_load_relaxed(&mb->taken) + 1);
    return TR_OK;
}

static int
receive(tr_mailbox *mb, void *buf, size_t cap, size_t *len,
        tr_timeout timeout_ms)
{
    uint64_t deadline = 0;

    if (mb->held != NULL) {
        return deliver(mb, mb->held, buf, cap, len);
    }
    if (timeout_ms.ms > 0) {
        deadline = tr_timeout_deadline_ns(tr__wait_now_ns(), timeout_ms);
    }
    for (;;) {
        uint32_t seen = tr__ec_value(&mb->ready);
        tr_mnode *done;
        tr_mnode *node = tr__mpsc_pop(&mb->out, &done);
        long left;

        release(done);
        if (node != NULL) {
            return deliver(mb, tr__env_of_node(node), buf, cap, len);
        }
        if (!tr__mpsc_mark_idle(&mb->in, &mb->out, &done)) {
            continue; /* a push is in flight: pop again */
        }
        release(done);
        /* seq_cst: see the top comment. */
        if (tr_load_seqcst(&mb->closed)) {
            /* A send counted in `sent` is still pushing (or withdrawing):
             * wait for it. Every message received was taken. */
            if (tr__mpsc_take_idle(&mb->in) &&
                tr_load_seqcst(&mb->sent) == tr_load_relaxed(&mb->taken)) {
                return TR_ECLOSED;
            }
            continue;
        }
        if (timeout_ms.ms == 0) {
            return TR_ETIMEDOUT;
        }
        left = -1;
        if (timeout_ms.ms > 0) {
            uint64_t now = tr__wait_now_ns();
            if (now >= deadline) {
                return TR_ETIMEDOUT;
            }
            left = (long)((deadline - now + 999999u) / 1000000u);
        }
        if (tr__ec_wait_ms(&mb->ready, seen, left) == TR_PARK_STUCK) {
            return TR_ESTUCK; /* a simulation that can never end it */
        }
    }
}

int
tr_mailbox_recv_wait(tr_mailbox *mb, void *buf, size_t cap, size_t *len,
                     tr_timeout timeout_ms)
{
    int rc;

    if (mb == NULL || len == NULL || (buf == NULL && cap != 0)) {
        return TR_EINVAL;
    }
    if (timeout_ms.ms != 0 && !tr__may_block()) {
        return TR_ESTATE; /* a worker, or shutdown's last pass */
    }
    /* acq_rel: one receiver at a time; the exchange hands the consumer
     * role's private fields (tail, held) from one receiver to the next. */
    if (tr_xchg_acqrel(&mb->receiving, true)) {
        return TR_ESTATE;
    }
    rc = receive(mb, buf, cap, len, timeout_ms);
    tr_store_rel(&mb->receiving, false);
    return rc;
}

void
tr_mailbox_close(tr_mailbox *mb)
{
    if (mb == NULL) {
        return;
    }
    /* seq_cst: see the top comment. */
    tr_store_seqcst(&mb->closed, true);
    tr__ec_wake(&mb->ready);
}

size_t
tr_mailbox_len(const tr_mailbox *mb)
{
    if (mb == NULL) {
        return 0;
    }
    return (size_t)tr__lane_len((tr_atomic(uint64_t) *)&mb->sent,
                                (tr_atomic(uint64_t) *)&mb->taken);
}

void
tr_mailbox_destroy(tr_mailbox *mb)
{
    tr_mnode *node;

    if (mb == NULL) {
        return;
    }
    /* Every node but the dummy is released by a pop; `held`, when set, is
     * the dummy. */
    tr__mpsc_take_idle(&mb->in);
    do {
        tr_mnode *done;
        node = tr__mpsc_pop(&mb->out, &done);
        release(done);
    } while (node != NULL);
    release(tr__mpsc_dummy(&mb->out));
    tr__free_aligned(mb, sizeof(*mb));
}
