/*
 * A message as it travels: a 32-byte header that is the queue node, followed
 * by the payload in the same allocation. User code never sees the header.
 */
#ifndef TR_MAILBOX_ENVELOPE_H
#define TR_MAILBOX_ENVELOPE_H

#include "common/tr_alloc.h"
#include "common/tr_assert.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "mailbox/mpsc.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>

typedef struct tr_envelope {
    tr_mnode node;  /* queue link; first, so a node is an envelope */
    uint32_t type;  /* user message type, or the control kind's argument */
    uint32_t size;  /* payload bytes */
    uint64_t from;  /* sender address id; 0 from a plain thread */
    uint32_t gen;   /* generation of the incarnation it was sent to */
    uint8_t kind;   /* 0 for user messages; control kinds otherwise */
    uint16_t block; /* a packed envelope's allocation, in bytes; 0: whole
                     * cache lines for `size` (see below) */
} tr_envelope;

_Static_assert(sizeof(tr_envelope) == 32, "envelope header is 32 bytes");
_Static_assert(sizeof(tr_envelope) % _Alignof(max_align_t) == 0,
               "payload after the header is aligned for any scalar");

/*
 * Envelope caches. A message's memory is allocated on the sender's worker
 * and freed on the receiver's, so a general allocator moves it between
 * cores on every message, and spends more instructions than the rest of
 * the send. Small envelopes (up to TR_ENV_SMALL payload bytes) are kept
 * instead in per-worker caches: a free list per class, touched by its
 * worker only. A cache that grows past TR_ENV_CACHE_MAX hands a batch of
 * TR_ENV_BATCH to the system's depot (one lock a batch), and an empty one
 * takes a batch back, so that memory freed by a consumer returns to its
 * producers in batches. The depot keeps what producers have shown they
 * take: TR_ENV_DEPOT_MIN batches a class at first, twice as many each
 * time a cache takes its last one, up to TR_ENV_DEPOT_MAX; the rest goes
 * back to the allocator, so what the caches hold stays bounded, and
 * memory freed where nobody allocates again (a collector's acks, a worker
 * alone) returns to the threads that allocate it. Threads that are not workers
 * use the allocator. A cache holds up to a run's worth (TR_BATCH) of a
 * class, so that a consumer and its producers on one worker hand envelopes to
 * each other through the cache alone: with 256, a consumer's run of 1,024
 * spilled most of them to the depot and the producers fetched them back (W1
 * mpsc 6-8% slower); 1,024 and 2,048 measure the same there, and 1,024
 * hold half the memory (W4's bytes an actor). At most 1,024 a class and
 * worker: 704 KB if all seven classes of whole lines were full.
 *
 * Classes are of 16 bytes (up to 16 payload bytes, 32, ..., 96). In a
 * system of two workers or more every envelope is whole cache lines,
 * header included: one line up to 32 payload bytes, two up to 96.
 * Envelopes are reused where they are freed, so one that carried a message
 * to another worker goes on circulating there: two of 48 bytes that shared
 * a line, each now in a conversation on another core, made every message
 * on both a cache miss (eight independent ping-pong pairs ran at half
 * speed on each of two workers, and slower than on one). A system of one
 * worker has no other core to share a line with, and its caches pack
 * envelopes, each class's size allocated as it is (32 to 128 bytes): with
 * whole lines there, skynet's envelopes in flight took twice the lines and
 * it ran 5% slower. A packed envelope records its allocation in `block`,
 * so that whoever frees it (a cache, a plain thread) frees what was
 * allocated. One of whole lines (a plain thread's) may go on in a packed
 * cache: whole lines for a size hold its class's 16-byte size, and are the
 * same lines for every size of the class. Packed ones never reach a cache
 * of whole lines: envelopes do not leave their system but through plain
 * threads, which free them.
 */
enum {
    TR_ENV_SMALL = 96,
    TR_ENV_CLASSES = 7,
    TR_ENV_CACHE_MAX = 1024,
    TR_ENV_BATCH = 128,
    TR_ENV_DEPOT_MIN = 2,
    TR_ENV_DEPOT_MAX = 32,
};

typedef struct tr_env_depot tr_env_depot;

/* One worker's cache: owner only; tr__env_cache_init makes one. */
typedef struct tr_env_cache {
    tr_mnode *free[TR_ENV_CLASSES];
    uint32_t len[TR_ENV_CLASSES];
    tr_env_depot *depot;
    /* A packed class's allocation, in bytes; 0: whole lines. */
    uint16_t block[TR_ENV_CLASSES];
} tr_env_cache;

/* The class of `size` payload bytes, up to TR_ENV_SMALL: by 16 bytes. */
static inline unsigned
tr__env_class(uint32_t size)
{
    return (size + 15) / 16;
}

_Static_assert((TR_ENV_SMALL + 15) / 16 == TR_ENV_CLASSES - 1,
               "the largest small envelope is of the last class");

/* An empty cache that shares `depot` (NULL: none), packed or whole lines. */
void tr__env_cache_init(tr_env_cache *c, tr_env_depot *depot, bool packed);

/* A system's depot; TR_OK or TR_ENOMEM. */
int tr__env_depot_create(tr_env_depot **out);
/* Free the depot and what it holds (no cache may use it any more). */
void tr__env_depot_destroy(tr_env_depot *d);
/* Give everything `c` holds back to the allocator (teardown). */
void tr__env_cache_flush(tr_env_cache *c);
/* The batches `d` holds of the class of `size` payload bytes, and how many
 * it keeps at most now (tests). */
void tr__env_depot_count(tr_env_depot *d, uint32_t size, uint32_t *held,
                         uint32_t *keep);

/* The paths of tr__env_create_in and tr__env_destroy_in that leave the
 * cache's free list (or need ASan's poisoning). */
tr_envelope *tr__env_create_slow(tr_env_cache *c, uint32_t size);
void tr__env_destroy_slow(tr_env_cache *c, tr_envelope *env);

/* The envelope cache `c` (NULL off the workers) would give for `size`
 * payload bytes, left in the cache, or NULL: the allocator's turn. */
static inline tr_mnode *
tr__env_cache_peek(tr_env_cache *c, uint32_t size)
{
#ifndef TR_ASAN
    if (c != NULL && size <= TR_ENV_SMALL && tr__fail_hook_off()) {
        return c->free[tr__env_class(size)];
    }
#else
    (void)c;
    (void)size;
#endif
    return NULL;
}

/* Take `n`, which tr__env_cache_peek(c, size) gave, from the cache. Its
 * header has the size and kind 0 (a user message): the type, sender and
 * generation are the caller's to set, as a send does. */
static inline tr_envelope *
tr__env_cache_take(tr_env_cache *c, uint32_t size, tr_mnode *n)
{
    tr_envelope *env = (tr_envelope *)(void *)n;
    unsigned k = tr__env_class(size);

    c->free[k] = tr_load_relaxed(&n->next);
    c->len[k]--;
    env->size = size;
    env->kind = 0;
    return env;
}

/* Allocate an envelope with room for `size` payload bytes, from the
 * calling worker's cache `c` (NULL off the workers); NULL on OOM. Its
 * header is as tr__env_cache_take leaves it. */
static inline tr_envelope *
tr__env_create_in(tr_env_cache *c, uint32_t size)
{
    tr_mnode *n = tr__env_cache_peek(c, size);

    return n != NULL ? tr__env_cache_take(c, size, n)
                     : tr__env_create_slow(c, size);
}

/* Free an envelope (sized by its `size`) into `c` (NULL: the allocator). */
static inline void
tr__env_destroy_in(tr_env_cache *c, tr_envelope *env)
{
#ifndef TR_ASAN
    uint32_t size = env->size;
    unsigned k = tr__env_class(size);

    if (c != NULL && size <= TR_ENV_SMALL && c->len[k] < TR_ENV_CACHE_MAX) {
        /* Packed envelopes stay in their system, whose caches pack. */
        TR_ASSERT(env->block == 0 || c->block[k] != 0);
        tr_store_relaxed(&env->node.next, c->free[k]);
        c->free[k] = &env->node;
        c->len[k]++;
        return;
    }
#endif
    tr__env_destroy_slow(c, env);
}

/* The same, with no cache; the header is all zero but the size. */
tr_envelope *tr__env_create(uint32_t size);
void tr__env_destroy(tr_envelope *env);

static inline void *
tr__env_data(tr_envelope *env)
{
    return env + 1;
}

/*
 * memcpy for a message's payload: most are a few words, for which a call
 * into libc costs more than the copy. Up to 16 bytes, two overlapping
 * fixed-size copies (which the compiler makes loads and stores).
 */
static inline void
tr__copy_payload(void *dst, const void *src, size_t size)
{
    char *d = dst;
    const char *s = src;

    if (size >= 8 && size <= 16) {
        memcpy(d, s, 8);
        memcpy(d + size - 8, s + size - 8, 8);
    } else if (size >= 4 && size < 8) {
        memcpy(d, s, 4);
        memcpy(d + size - 4, s + size - 4, 4);
    } else if (size != 0) {
        memcpy(d, s, size);
    }
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
