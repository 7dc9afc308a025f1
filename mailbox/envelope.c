/*
 * Envelope allocation: header and payload in one sized allocation, small
 * ones through the per-worker caches (see envelope.h, whose inline paths
 * take from and give to a cache's free list; the rest is here).
 *
 * Under AddressSanitizer a cached envelope is poisoned past its link, so
 * that a use after free is still reported although the memory is reused
 * without passing through the allocator.
 */
#include "mailbox/envelope.h"

#include "common/tr_alloc.h"
#include "common/tr_defs.h"

#include <troupe/error.h>

#include <pthread.h>
#include <string.h>

#ifdef TR_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Batches of TR_ENV_BATCH envelopes, linked by their nodes; a batch's
 * first envelope holds the next batch in its `from`. */
struct tr_env_depot {
    pthread_mutex_t lock;
    tr_mnode *batches[TR_ENV_CLASSES];
    /* Written under the lock; read without it by a cache that finds its
     * class empty, which then skips the lock when the depot has none. */
    tr_atomic(uint32_t) len[TR_ENV_CLASSES];
    /* How many batches a class keeps (under the lock): doubled when a
     * cache takes the last one, from TR_ENV_DEPOT_MIN to _MAX. */
    uint32_t keep[TR_ENV_CLASSES];
    unsigned workers;
    tr_env_home *homes; /* one a worker */
};

/* The allocation's size, which tr__alloc_aligned rounds up to whole cache
 * lines (see envelope.h): a class's lines for small payloads. */
static size_t
block_size(uint32_t size)
{
    return sizeof(tr_envelope) + size;
}

/* A header for `size` payload bytes, all zero but the size, in a block
 * of `block` bytes (0: whole lines) whose home is `home`. */
static tr_envelope *
init(tr_envelope *env, uint32_t size, uint8_t block, uint16_t home)
{
    env->size = size;
    env->kind = 0;
    env->block = block;
    env->home = home;
    env->from = 0;
    env->gen = 0;
    env->type = 0;
    return env;
}

/* Back to the allocator, as it was allocated. */
static void
free_block(tr_envelope *env)
{
    if (env->block != 0) {
        tr__free(env, env->block);
    } else {
        tr__free_aligned(env, block_size(env->size));
    }
}

static tr_mnode *
next_of(tr_mnode *n)
{
    return tr_load_relaxed(&n->next);
}

/* Free a list of cached envelopes to the allocator. */
static void
free_list(tr_mnode *n)
{
    while (n != NULL) {
        tr_mnode *next = next_of(n);
        UNPOISON(n, sizeof(tr_envelope));
        free_block(tr__env_of_node(n));
        n = next;
    }
}

void
tr__env_cache_init(tr_env_cache *c, tr_env_depot *depot, unsigned home)
{
    TR_ASSERT(home < (depot != NULL ? depot->workers : 1));
    memset(c, 0, sizeof(*c));
    c->home = (uint16_t)home;
    c->depot = depot;
    c->homes = depot != NULL ? depot->homes : NULL;
}

int
tr__env_depot_create(tr_env_depot **out, unsigned workers)
{
    tr_env_depot *d = tr__calloc(sizeof(*d));

    /* A home fits its 16 bits (the system allows far fewer workers). */
    TR_ASSERT(workers > 0 && workers < TR_ENV_NO_HOME);
    if (d == NULL) {
        return TR_ENOMEM;
    }
    d->homes = tr__calloc_aligned(workers * sizeof(tr_env_home));
    if (d->homes == NULL) {
        tr__free(d, sizeof(*d));
        return TR_ENOMEM;
    }
    d->workers = workers;
    for (unsigned k = 0; k < TR_ENV_CLASSES; k++) {
        d->keep[k] = TR_ENV_DEPOT_MIN;
    }
    pthread_mutex_init(&d->lock, NULL);
    *out = d;
    return TR_OK;
}

void
tr__env_depot_destroy(tr_env_depot *d)
{
    if (d == NULL) {
        return;
    }
    for (unsigned k = 0; k < TR_ENV_CLASSES; k++) {
        tr_mnode *b = d->batches[k];
        while (b != NULL) {
            tr_envelope *first = tr__env_of_node(b);
            UNPOISON(first, sizeof(*first));
            tr_mnode *next = (tr_mnode *)(uintptr_t)first->from;
            free_list(b);
            b = next;
        }
    }
    for (unsigned w = 0; w < d->workers; w++) {
        for (unsigned k = 0; k < TR_ENV_CLASSES; k++) {
            free_list(tr_load_relaxed(&d->homes[w].returned[k]));
            free_list(d->homes[w].out_first[k]);
        }
    }
    tr__free_aligned(d->homes, d->workers * sizeof(tr_env_home));
    pthread_mutex_destroy(&d->lock);
    tr__free(d, sizeof(*d));
}

void
tr__env_cache_flush(tr_env_cache *c)
{
    for (unsigned k = 0; k < TR_ENV_CLASSES; k++) {
        free_list(c->free[k]);
        c->free[k] = NULL;
        c->len[k] = 0;
    }
}

void
tr__env_depot_count(tr_env_depot *d, uint32_t size, uint32_t *held,
                    uint32_t *keep)
{
    unsigned k = tr__env_class(size);

    pthread_mutex_lock(&d->lock);
    *held = tr_load_relaxed(&d->len[k]);
    *keep = d->keep[k];
    pthread_mutex_unlock(&d->lock);
}

/* An empty class takes what other workers returned; false when none. */
static bool
take_returned(tr_env_cache *c, unsigned k)
{
    uint32_t n = 0;

    if (c->homes == NULL) {
        return false;
    }
    tr_atomic(tr_mnode *) *head = &c->homes[c->home].returned[k];
    /* Relaxed: a stale NULL leaves them for the next time. */
    if (tr_load_relaxed(head) == NULL) {
        return false;
    }
    /* Acquire: the pushers' release, their writes to the envelopes. */
    c->free[k] = tr_xchg_acqrel(head, NULL);
    for (tr_mnode *m = c->free[k]; m != NULL; m = next_of(m)) {
        n++;
    }
    c->len[k] = n;
    /* Relaxed: a bound, and each of these was counted before its push. */
    tr_fas_relaxed(&c->homes[c->home].returned_len[k], n);
    return n != 0;
}

/* Post `h`'s outbox of class `k` to its home's return stack, or, when
 * that is full, give it to the allocator. Not to the depot: a worker that
 * ran dry would take it from there, use the envelopes far from their home
 * and send them back to the full stack, and so on round. On two workers
 * with caches of 1,024, a run of W1 sent 855,000 envelopes home that
 * way; with these batches given to the allocator, at most 98,000 in 24
 * runs, as many as the other worker's producer runs allocated. */
static void
post(tr_env_cache *c, tr_env_home *h, unsigned k)
{
    tr_env_home *to = &c->homes[h->out_home[k]];
    tr_atomic(tr_mnode *) *head = &to->returned[k];
    uint32_t n = h->out_len[k];

    h->out_len[k] = 0;
    /* Relaxed: a bound; the envelopes are published by the push. */
    if (tr_faa_relaxed(&to->returned_len[k], n) >= TR_ENV_CACHE_MAX) {
        tr_fas_relaxed(&to->returned_len[k], n);
        tr_store_relaxed(&h->out_last[k]->next, NULL);
        free_list(h->out_first[k]);
        h->out_first[k] = NULL;
        return;
    }
    tr_mnode *top = tr_load_relaxed(head);
    do {
        tr_store_relaxed(&h->out_last[k]->next, top);
        /* Release: the home that takes them sees what was written. */
    } while (!tr_cas_rel(head, &top, h->out_first[k]));
    h->out_first[k] = NULL;
}

/* An envelope of another worker's goes into the outbox for its home. */
static void
send_home(tr_env_cache *c, unsigned k, tr_envelope *env)
{
    tr_env_home *h = &c->homes[c->home];
    uint16_t home = env->home;

    TR_ASSERT(c->homes != NULL && home < c->depot->workers);
    if (h->out_len[k] != 0 && h->out_home[k] != home) {
        post(c, h, k);
    }
    if (h->out_len[k] == 0) {
        h->out_last[k] = &env->node;
        h->out_home[k] = home;
    }
    tr_store_relaxed(&env->node.next, h->out_first[k]);
    h->out_first[k] = &env->node;
    POISON(&env->type, block_size(env->size) - sizeof(env->node));
    if (++h->out_len[k] == TR_ENV_BATCH) {
        post(c, h, k);
    }
}

/* An empty class takes a batch from the depot; false when it has none. */
static bool
refill(tr_env_cache *c, unsigned k)
{
    tr_env_depot *d = c->depot;
    tr_mnode *b = NULL;

    /* Relaxed: a stale zero costs one allocator call, a stale non-zero
     * one look under the lock. */
    if (d == NULL || tr_load_relaxed(&d->len[k]) == 0) {
        return false;
    }
    pthread_mutex_lock(&d->lock);
    if ((b = d->batches[k]) != NULL) {
        tr_envelope *first = tr__env_of_node(b);
        UNPOISON(first, sizeof(*first));
        d->batches[k] = (tr_mnode *)(uintptr_t)first->from;
        tr_store_relaxed(&d->len[k], tr_load_relaxed(&d->len[k]) - 1);
        if (d->batches[k] == NULL && d->keep[k] < TR_ENV_DEPOT_MAX) {
            d->keep[k] *= 2; /* all it kept was wanted */
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (b == NULL) {
        return false;
    }
    c->free[k] = b;
    c->len[k] = TR_ENV_BATCH;
    return true;
}

/* A full class hands a batch to the depot, or to the allocator when the
 * depot keeps enough. */
static void
spill(tr_env_cache *c, unsigned k)
{
    tr_env_depot *d = c->depot;
    tr_mnode *b = c->free[k];
    tr_mnode *last = b;

    for (unsigned i = 1; i < TR_ENV_BATCH; i++) {
        last = next_of(last);
    }
    c->free[k] = next_of(last);
    c->len[k] -= TR_ENV_BATCH;
    tr_store_relaxed(&last->next, NULL);
    if (d != NULL) {
        tr_envelope *first = tr__env_of_node(b);
        pthread_mutex_lock(&d->lock);
        if (tr_load_relaxed(&d->len[k]) < d->keep[k]) {
            UNPOISON(first, sizeof(*first));
            first->from = (uint64_t)(uintptr_t)d->batches[k];
            POISON(&first->type, sizeof(*first) - sizeof(first->node));
            d->batches[k] = b;
            tr_store_relaxed(&d->len[k], tr_load_relaxed(&d->len[k]) + 1);
            b = NULL;
        }
        pthread_mutex_unlock(&d->lock);
    }
    free_list(b);
}

tr_envelope *
tr__env_create_slow(tr_env_cache *c, uint32_t size)
{
    if (size > TR_ENV_SMALL) {
        tr_envelope *env = tr__alloc_aligned(block_size(size));
        return env != NULL ? init(env, size, 0, TR_ENV_NO_HOME) : NULL;
    }
    unsigned k = tr__env_class(size);
    if (c != NULL &&
        (c->free[k] != NULL || take_returned(c, k) || refill(c, k))) {
        tr_mnode *n = c->free[k];
        if (tr__alloc_should_fail()) {
            return NULL;
        }
        c->free[k] = next_of(n);
        c->len[k]--;
        UNPOISON(n, block_size(size));
        tr_envelope *env = tr__env_of_node(n);
        return init(env, size, env->block, env->home);
    }
    uint8_t block = (uint8_t)block_size(16 * k);
    tr_envelope *env = tr__alloc(block);
    uint16_t home = c != NULL ? c->home : TR_ENV_NO_HOME;
    return env != NULL ? init(env, size, block, home) : NULL;
}

void
tr__env_destroy_slow(tr_env_cache *c, tr_envelope *env)
{
    uint32_t size = env->size;

    if (c == NULL || size > TR_ENV_SMALL || env->home == TR_ENV_NO_HOME) {
        free_block(env);
        return;
    }
    unsigned k = tr__env_class(size);
    if (env->home != c->home) {
        send_home(c, k, env);
        return;
    }
    if (c->len[k] >= TR_ENV_CACHE_MAX) {
        spill(c, k);
    }
    tr_store_relaxed(&env->node.next, c->free[k]);
    c->free[k] = &env->node;
    c->len[k]++;
    POISON(&env->type, block_size(size) - sizeof(env->node));
}

tr_envelope *
tr__env_create(uint32_t size)
{
    return tr__env_create_in(NULL, size);
}

void
tr__env_destroy(tr_envelope *env)
{
    tr__env_destroy_in(NULL, env);
}
