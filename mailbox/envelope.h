/*
 * A message as it travels: a 32-byte header that is the queue node, followed
 * by the payload in the same allocation. User code never sees the header.
 */
#ifndef TR_MAILBOX_ENVELOPE_H
#define TR_MAILBOX_ENVELOPE_H

#include "common/tr_atomic.h"
#include "mailbox/mpsc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_envelope {
    tr_mnode node; /* queue link; first, so a node is an envelope */
    uint32_t type; /* user message type, or the control kind's argument */
    uint32_t size; /* payload bytes */
    uint64_t from; /* sender address id; 0 from a plain thread */
    uint32_t gen;  /* generation of the incarnation it was sent to */
    uint32_t kind; /* 0 for user messages; control kinds otherwise */
} tr_envelope;

_Static_assert(sizeof(tr_envelope) == 32, "envelope header is 32 bytes");
_Static_assert(sizeof(tr_envelope) % _Alignof(max_align_t) == 0,
               "payload after the header is aligned for any scalar");

/* Allocate an envelope with room for `size` payload bytes; NULL on OOM. */
tr_envelope *tr__env_create(uint32_t size);

/* Free an envelope (sized by its `size`). */
void tr__env_destroy(tr_envelope *env);

static inline void *
tr__env_data(tr_envelope *env)
{
    return env + 1;
}

static inline tr_envelope *
tr__env_of_data(void *data)
{
    return (tr_envelope *)data - 1;
}

static inline tr_envelope *
tr__env_of_node(tr_mnode *node)
{
    return (tr_envelope *)(void *)node;
}

/*
 * Admission to a lane counted by `sent` (producers) and `taken` (the
 * consumer). Counts one more message as sent; with a non-zero `cap`, refuses
 * (and undoes the count) when `cap` messages are already queued. A stale
 * `taken` can only make it refuse early, never admit past the bound.
 */
static inline bool
tr__lane_admit(tr_atomic(uint64_t) * sent, tr_atomic(uint64_t) * taken,
               uint32_t cap)
{
    /* Relaxed: a counter; the message itself is published by the push. */
    uint64_t before = tr_faa_relaxed(sent, 1);
    if (cap != 0 && before - tr_load_seqcst(taken) >= cap) {
        tr_fas_relaxed(sent, 1);
        return false;
    }
    return true;
}

/* Messages admitted and not yet taken (a snapshot). */
static inline uint64_t
tr__lane_len(tr_atomic(uint64_t) * sent, tr_atomic(uint64_t) * taken)
{
    uint64_t t = tr_load_acq(taken);
    uint64_t s = tr_load_acq(sent);
    return s > t ? s - t : 0;
}

#endif /* TR_MAILBOX_ENVELOPE_H */
