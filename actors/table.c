/*
 * The address table: every actor slot the system ever made, in chunks of
 * TR_CHUNK_LEN that are mapped on demand and unmapped only with the system.
 * A chunk is zeroed pages from the kernel, and a slot is written first when
 * it is handed out, so only the pages of slots in use are resident: a slot
 * costs its 128 bytes and nothing else. All zeroes is a valid slot that was
 * never handed out: its generation (0) is dead and it has no record, so a
 * forged address that names it fails the generation check like a stale one
 * (or gets a record: tr__ext_get, freed with the table).
 *
 * A local id is (generation << TR_INDEX_BITS | index). Looking one up needs
 * no lock and no reference count: the chunk pointer is published with release
 * after its slots are initialised, and a slot's memory stays valid until the
 * system is destroyed, so a stale address reads a live slot and fails the
 * generation check (TR_ENOACTOR) instead of touching freed memory.
 *
 * Free slots sit on per-worker lists (no lock on the spawn/stop hot path),
 * which refill from and spill to one shared list under a mutex in batches of
 * TR_FREE_BATCH. A free slot's mailbox is idle: a late push from a sender
 * that raced the stop takes its run-right, finds the generation dead and
 * drops the message itself (actor.c, schedule), so a late call ends at
 * once. A spawner takes the right before it publishes the incarnation,
 * waiting out such a drain.
 *
 * A slot whose last generation (TR_GEN_MAX) has ended is retired: it is
 * never given out again (see internal.h for why that takes millennia).
 */
#include "actors/actor.h"
#include "actors/ext.h"

#include "common/tr_alloc.h"
#include "common/tr_assert.h"

#include <troupe/error.h>

#include <sys/mman.h>
#include <unistd.h>

enum { TR_FREE_BATCH = 64, TR_FREE_MAX = 4 * TR_FREE_BATCH };

int
tr__table_create(tr_table **out)
{
    tr_table *t = tr__calloc(sizeof(*t));

    if (t == NULL) {
        return TR_ENOMEM;
    }
    for (unsigned i = 0; i < TR_MAX_CHUNKS; i++) {
        tr_init_relaxed(&t->chunks[i], NULL);
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return TR_OK;
}

enum { CHUNK_BYTES = sizeof(tr_actor) * TR_CHUNK_LEN, MIN_PAGE = 4096 };

/*
 * Free the records of a chunk's slots. Every slot that was ever written,
 * not only those handed out: a forged address can give a slot that never
 * was a record (tr__ext_get). Slots never written are on pages never
 * touched, which mincore tells apart, so that a system that used a few
 * slots does not fault in all of its chunk's pages to read zeroes.
 */
static void
free_records(tr_actor *chunk)
{
    unsigned char resident[CHUNK_BYTES / MIN_PAGE];
    long page = sysconf(_SC_PAGESIZE);
    uint32_t per_page;

    if (page < MIN_PAGE || page % (long)sizeof(tr_actor) != 0 ||
        CHUNK_BYTES % page != 0 || mincore(chunk, CHUNK_BYTES, resident) != 0) {
        page = CHUNK_BYTES; /* one "page": every slot */
        resident[0] = 1;
    }
    per_page = (uint32_t)(page / (long)sizeof(tr_actor));
    for (uint32_t p = 0; p < CHUNK_BYTES / page; p++) {
        if (!(resident[p] & 1)) {
            continue;
        }
        for (uint32_t j = p * per_page; j < (p + 1) * per_page; j++) {
            tr_ext *x = tr_load_relaxed(&chunk[j].ext);
            if (x != NULL) {
                tr__ext_free(x);
            }
        }
    }
}

void
tr__table_destroy(tr_table *t)
{
    for (unsigned i = 0; i < TR_MAX_CHUNKS; i++) {
        tr_actor *chunk = tr_load_relaxed(&t->chunks[i]);
        if (chunk == NULL) {
            break;
        }
        free_records(chunk);
        tr__unmap(chunk, CHUNK_BYTES);
    }
    pthread_mutex_destroy(&t->lock);
    tr__free(t, sizeof(*t));
}

tr_actor *
tr__table_slot(tr_table *t, uint64_t id)
{
    uint32_t index = tr__id_index(id);
    uint32_t c = index >> TR_CHUNK_BITS;
    tr_actor *chunk;

    if (c >= TR_MAX_CHUNKS) {
        return NULL;
    }
    /* Acquire: pairs with the release that published the chunk. */
    chunk = tr_load_acq(&t->chunks[c]);
    return chunk == NULL ? NULL : &chunk[index & (TR_CHUNK_LEN - 1)];
}

uint32_t
tr__table_len(tr_table *t)
{
    pthread_mutex_lock(&t->lock);
    uint32_t n = t->next_index;
    pthread_mutex_unlock(&t->lock);
    return n;
}

tr_actor *
tr__table_at(tr_table *t, uint32_t index)
{
    return tr__table_slot(t, index);
}

/*
 * Slots are readied INIT_AHEAD at a time (32 KiB), when the first of them
 * is handed out: written in one sequential pass, their pages fault in one
 * after another and their lines are still cached when the spawns that
 * follow write them. One at a time, every spawn wrote two lines of a page
 * the kernel had just cleared past the cache (W4's spawns took 1.5x as
 * long). A system holds at most INIT_AHEAD slots it never used.
 */
enum { INIT_AHEAD = 256 };

_Static_assert(TR_CHUNK_LEN % INIT_AHEAD == 0, "a chunk holds whole runs");

/*
 * A slot readied for its first use: zero but for its idle mailbox and its
 * index. Nothing else is written: a forged address may be reading the
 * slot meanwhile (its generation, its record), and those stay the zeroes
 * the reader may already have seen.
 */
static void
init_slot(tr_actor *a, uint32_t index)
{
    tr__mpsc_init(&a->mbox, &a->mbox_out, true);
    a->index = index;
}

/* Under t->lock: a never-used slot, growing the table if needed. */
static tr_actor *
carve(tr_table *t)
{
    uint32_t index = t->next_index;
    uint32_t c = index >> TR_CHUNK_BITS;
    tr_actor *chunk;

    if (c >= TR_MAX_CHUNKS) {
        return NULL;
    }
    chunk = tr_load_relaxed(&t->chunks[c]);
    if (chunk == NULL) {
        chunk = tr__map_zeroed(CHUNK_BYTES);
        if (chunk == NULL) {
            return NULL;
        }
        /* Release: lookups that acquire the chunk see its zeroes. */
        tr_store_rel(&t->chunks[c], chunk);
    }
    t->next_index = index + 1;
    if (index % INIT_AHEAD == 0) {
        for (uint32_t i = index; i < index + INIT_AHEAD; i++) {
            init_slot(&chunk[i & (TR_CHUNK_LEN - 1)], i);
        }
    }
    return &chunk[index & (TR_CHUNK_LEN - 1)];
}

/* The next spawn on this worker writes the whole of `a` (NULL: none):
 * have both its lines on the way. */
static inline void
prefetch_slot(const tr_actor *a)
{
    if (a != NULL) {
        __builtin_prefetch(a, 1);
        __builtin_prefetch((const char *)a + TR_CACHE_LINE, 1);
    }
}

tr_actor *
tr__table_take(tr_table *t, tr_wlocal *wl)
{
    tr_actor *a;

    if (wl != NULL && wl->free != NULL) {
        a = wl->free;
        wl->free = (tr_actor *)(void *)a->task.next;
        wl->nfree--;
        prefetch_slot(wl->free);
        return a;
    }
    pthread_mutex_lock(&t->lock);
    if (wl == NULL) {
        a = t->free;
        if (a != NULL) {
            t->free = (tr_actor *)(void *)a->task.next;
            t->nfree--;
        } else {
            a = carve(t);
        }
        pthread_mutex_unlock(&t->lock);
        return a;
    }
    /* Refill the worker's list with a batch, keeping one to return. */
    for (unsigned i = 0; i < TR_FREE_BATCH; i++) {
        tr_actor *s = t->free;
        if (s != NULL) {
            t->free = (tr_actor *)(void *)s->task.next;
            t->nfree--;
        } else {
            s = carve(t);
            if (s == NULL) {
                break;
            }
        }
        s->task.next = (tr_task *)(void *)wl->free;
        wl->free = s;
        wl->nfree++;
    }
    pthread_mutex_unlock(&t->lock);
    a = wl->free;
    if (a != NULL) {
        wl->free = (tr_actor *)(void *)a->task.next;
        wl->nfree--;
    }
    return a;
}

void
tr__table_give(tr_table *t, tr_wlocal *wl, tr_actor *a)
{
    if (tr_load_relaxed(&a->gen) > TR_GEN_MAX) {
        /* Retired: its every generation has been used, and reusing it
         * would let an old address name a new actor. */
        return;
    }
    if (wl != NULL) {
        a->task.next = (tr_task *)(void *)wl->free;
        wl->free = a;
        if (++wl->nfree < TR_FREE_MAX) {
            return;
        }
        /* Spill a batch so one worker cannot hoard the free slots. */
        pthread_mutex_lock(&t->lock);
        for (unsigned i = 0; i < TR_FREE_BATCH; i++) {
            tr_actor *s = wl->free;
            wl->free = (tr_actor *)(void *)s->task.next;
            wl->nfree--;
            s->task.next = (tr_task *)(void *)t->free;
            t->free = s;
            t->nfree++;
        }
        pthread_mutex_unlock(&t->lock);
        return;
    }
    pthread_mutex_lock(&t->lock);
    a->task.next = (tr_task *)(void *)t->free;
    t->free = a;
    t->nfree++;
    pthread_mutex_unlock(&t->lock);
}
