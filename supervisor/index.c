/*
 * A supervisor's indexes of its children.
 *
 * Linear probing over a power-of-two table of child pointers, at most half
 * full, so a lookup looks at about two slots whatever the number of
 * children. A removal shifts back the entries after it in their cluster
 * (Knuth's algorithm R), so there are no tombstones and a table that sees
 * endless churn of dynamic children stays as fast as a fresh one. The key
 * is read from the child itself: its id, or its address id; a child is in
 * the address index only while it has an address.
 *
 * Only the supervisor's own thread writes an index, under the system's
 * tree lock (tr_whereis_path reads the id index under it from any thread).
 */
#include "supervisor/index.h"

#include "supervisor/sup.h"

#include "common/tr_alloc.h"

#include <string.h>

enum { FIRST_CAP = 8 };

static uint64_t
hash_id(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t
hash_addr(uint64_t id)
{
    /* splitmix64's finaliser: slot indexes and generations both spread. */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ull;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebull;
    return id ^ (id >> 31);
}

static uint64_t
hash_key(index_key key, const void *k)
{
    return key == KEY_ID ? hash_id(k) : hash_addr(*(const uint64_t *)k);
}

static const void *
key_of(index_key key, const child *c)
{
    return key == KEY_ID ? (const void *)c->id : (const void *)&c->addr.id;
}

static bool
matches(index_key key, const child *c, const void *k)
{
    return key == KEY_ID ? strcmp(c->id, k) == 0
                         : c->addr.id == *(const uint64_t *)k;
}

static uint32_t
home(const sup_index *ix, const child *c)
{
    return (uint32_t)hash_key(ix->key, key_of(ix->key, c)) & (ix->cap - 1);
}

static void
place(sup_index *ix, child *c)
{
    uint32_t mask = ix->cap - 1;
    uint32_t i = home(ix, c);

    while (ix->slots[i] != NULL) {
        i = (i + 1) & mask;
    }
    ix->slots[i] = c;
}

bool
tr__sup_index_reserve(sup_index *ix, uint32_t n)
{
    uint32_t cap = ix->cap != 0 ? ix->cap : FIRST_CAP;

    while ((uint64_t)n * 2 > cap) {
        cap *= 2;
    }
    if (cap == ix->cap) {
        return true;
    }
    child **old = ix->slots;
    uint32_t old_cap = ix->cap;
    ix->slots = tr__calloc(sizeof(child *) * cap);
    if (ix->slots == NULL) {
        ix->slots = old;
        return false;
    }
    ix->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i] != NULL) {
            place(ix, old[i]);
        }
    }
    tr__free(old, sizeof(child *) * old_cap);
    return true;
}

void
tr__sup_index_put(sup_index *ix, child *c)
{
    place(ix, c);
    ix->len++;
}

void
tr__sup_index_del(sup_index *ix, child *c)
{
    if (ix->cap == 0) {
        return;
    }
    uint32_t mask = ix->cap - 1;
    uint32_t i = home(ix, c);

    while (ix->slots[i] != c) {
        if (ix->slots[i] == NULL) {
            return; /* not there */
        }
        i = (i + 1) & mask;
    }
    ix->slots[i] = NULL;
    ix->len--;
    /* Shift back what would no longer be found past the hole. */
    for (uint32_t j = (i + 1) & mask; ix->slots[j] != NULL;
         j = (j + 1) & mask) {
        uint32_t h = home(ix, ix->slots[j]);
        /* The entry at j may stay unless its home lies cyclically in
         * (i, j]: then the hole at i does not cut it off. */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            ix->slots[i] = ix->slots[j];
            ix->slots[j] = NULL;
            i = j;
        }
    }
}

child *
tr__sup_index_find(const sup_index *ix, const void *key,
                   tr_atomic(uint64_t) * visits)
{
    child *found = NULL;
    uint64_t looked = 0;

    if (ix->cap != 0) {
        uint32_t mask = ix->cap - 1;
        for (uint32_t i = (uint32_t)hash_key(ix->key, key) & mask;;
             i = (i + 1) & mask) {
            child *c = ix->slots[i];
            looked++;
            if (c == NULL || matches(ix->key, c, key)) {
                found = c;
                break;
            }
        }
    }
    if (visits != NULL) {
        /* One writer: the supervisor's thread. */
        tr_store_relaxed(visits, tr_load_relaxed(visits) + looked);
    }
    return found;
}

void
tr__sup_index_fini(sup_index *ix)
{
    tr__free(ix->slots, sizeof(child *) * ix->cap);
    ix->slots = NULL;
    ix->cap = 0;
    ix->len = 0;
}
