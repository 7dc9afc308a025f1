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
    tr_mnode node; /* queue link; first, so a node is an envelope */
    uint32_t type; /* user message type, or the control kind's argument */
    uint32_t size; /* payload bytes */
    uint64_t from; /* sender address id; 0 from a plain thread */
    uint32_t gen;  /* generation of the incarnation it was sent to */
    uint8_t kind;  /* 0 for user messages; control kinds otherwise */
    uint8_t block; /* a small envelope's allocation, in bytes (its
                    * class's size); 0: whole cache lines for `size` */
    uint16_t home; /* the worker whose cache it returns to, or
                    * TR_ENV_NO_HOME (a plain thread's) */
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
 * worker only. Classes are of 16 bytes (up to 16 payload bytes, 32, ...,
 * 96), and a cache allocates each class's size as it is, header included
 * (32 to 128 bytes), recording it in `block`.
 *
 * Every envelope a cache allocates has that cache's worker as its home,
 * and goes back there when it is freed: on its home worker into the free
 * list; on another into that cache's outbox for the home, which posts a
 * batch of TR_ENV_BATCH (or fewer, when one of another home comes) to the
 * home's return stack with one compare-and-swap; the home takes the whole
 * stack when its free list runs dry. So a cache line of packed envelopes
 * stays with one worker: two envelopes of 48 bytes that shared a line and
 * were reused where they were freed, each then in a conversation on
 * another core, made every message on both a miss (eight independent
 * ping-pong pairs ran at half speed on each of two workers, and slower
 * than on one). Without homes, systems of more than one worker gave every
 * envelope whole lines for that, and W1 (producers and consumer all on
 * one of two workers) took twice the lines it takes on one worker. An
 * outbox holds at most a batch a class until one more of its class is
 * freed there. A return stack holds at most TR_ENV_CACHE_MAX a class: a
 * home that sent a burst away and then allocates no more would otherwise
 * hold all of it until it next runs dry; a batch that finds the stack full
 * goes to the allocator.
 *
 * Threads that are not workers use the allocator, with no home: a small
 * envelope is its class's size (`block`), a larger one whole cache lines
 * (`block` 0), and a worker that frees one gives it back to the allocator.
 * None enters a cache, where two workers could come to reuse the two
 * halves of one line (what homes prevent): it shares a line only while it
 * travels. Adopted into the cache that freed it, it would have to take
 * whole lines: twice the memory for W4's hellos while they wait, and W4
 * measured 1% more instructions an actor. A cache that grows past
 * TR_ENV_CACHE_MAX hands a batch to the system's depot (one lock a batch), and
 * an empty one with nothing returned takes a batch back (whose envelopes keep
 * their homes). The depot keeps what producers have shown they take:
 * TR_ENV_DEPOT_MIN batches a class at first, twice as many each time a
 * cache takes its last one, up to TR_ENV_DEPOT_MAX; the rest goes back to
 * the allocator, so what the caches hold stays bounded, and memory freed
 * where nobody allocates again (a worker alone) returns to the threads
 * that allocate it. The bound, 128 batches (16,384 envelopes, 786 KB at
 * 48 bytes), holds the swing of producers that each send a few thousand
 * in a run before their consumer drains them: four of 3,000 (W1 with
 * chunks of 3,000) swing by 12,000, and with 32 batches 4.5 million of
 * such a run's 10 million envelopes went through the allocator, at 0.66
 * of the rate (docs/benchmarks.md, the twenty-first sitting).
 *
 * A cache holds up to two runs' worth (TR_BATCH) of a class, so that a
 * consumer and its producers on one worker hand envelopes to each other
 * through the cache alone. What a worker's runs take and give back swings
 * by about a run; a cache that spills when full and refills when empty
 * settles only if its bound exceeds that swing by a batch, else every
 * swing spills one and takes it back. With 256, a consumer's run of 1,024
 * spilled most of them to the depot and the producers fetched them back
 * (W1 mpsc 6-8% slower). With 1,024, W1 on one worker kept its 1,030
 * envelopes in the cache; on two, a start where both workers ran
 * producers left 4,000 and more, and the cache then spilled a batch in
 * every consumer run and refilled one in every producer run, 10,000 of
 * each in a run of W1 (docs/benchmarks.md, the twenty-first sitting).
 */
enum {
    TR_ENV_SMALL = 96,
    TR_ENV_CLASSES = 7,
    TR_ENV_CACHE_MAX = 2048,
    TR_ENV_BATCH = 128,
    TR_ENV_DEPOT_MIN = 2,
    TR_ENV_DEPOT_MAX = 128,
    TR_ENV_NO_HOME = UINT16_MAX,
};

typedef struct tr_env_depot tr_env_depot;

/* What a worker's cache shares with the others: its return stacks, one a
 * class, which other workers push to and the owner takes whole (no ABA:
 * nothing is popped but everything), with how many each holds (pushers
 * add before they push, the owner takes away what it took); and, on a
 * line of its own, its outbox: envelopes of one other home a class, owner
 * only, kept off the cache's lines that every message touches. */
typedef struct tr_env_home {
    TR_CACHE_ALIGNED tr_atomic(tr_mnode *) returned[TR_ENV_CLASSES];
    tr_atomic(uint32_t) returned_len[TR_ENV_CLASSES];
    TR_CACHE_ALIGNED tr_mnode *out_first[TR_ENV_CLASSES];
    tr_mnode *out_last[TR_ENV_CLASSES];
    uint16_t out_home[TR_ENV_CLASSES];
    uint16_t out_len[TR_ENV_CLASSES];
} tr_env_home;

/* One worker's cache: owner only; tr__env_cache_init makes one. */
typedef struct tr_env_cache {
    tr_mnode *free[TR_ENV_CLASSES];
    uint32_t len[TR_ENV_CLASSES];
    uint16_t home;       /* its worker's index */
    tr_env_depot *depot; /* NULL: none (tests) */
    tr_env_home *homes;  /* the system's, by worker; NULL with no depot */
} tr_env_cache;

/* The class of `size` payload bytes, up to TR_ENV_SMALL: by 16 bytes. */
static inline unsigned
tr__env_class(uint32_t size)
{
    return (size + 15) / 16;
}

_Static_assert((TR_ENV_SMALL + 15) / 16 == TR_ENV_CLASSES - 1,
               "the largest small envelope is of the last class");

/* An empty cache for the worker `home` of the depot's system (a depot of
 * one worker, or none, for home 0 alone). */
void tr__env_cache_init(tr_env_cache *c, tr_env_depot *depot, unsigned home);

/* A system's depot and return stacks, for `workers` workers; TR_OK or
 * TR_ENOMEM. */
int tr__env_depot_create(tr_env_depot **out, unsigned workers);
/* Free the depot and what it holds, the workers' returned envelopes and
 * outboxes too (no cache may use it any more). */
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

    if (c != NULL && size <= TR_ENV_SMALL && c->len[k] < TR_ENV_CACHE_MAX &&
        env->home == c->home) {
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
