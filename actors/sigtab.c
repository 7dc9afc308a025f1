/*
 * The tables of owed signals (monitors and links) of an extension record,
 * and of the monitors it holds on others.
 *
 * Linear probing over a power-of-two array, at most half full, so that
 * finding, adding or removing one entry looks at about two slots however
 * many the actor holds: one actor may be monitored or linked a hundred
 * thousand times, and each demonitor, unlink or peer's end must not scan
 * the others. A removal shifts back the entries after it in their cluster
 * (Knuth's algorithm R), so there are no tombstones and endless churn
 * leaves the table as fast as a fresh one; a table that empties gives
 * its room back, halving. The same key may appear twice
 * (a monitor reference reused after 2^32 others): entries are told apart
 * by key and recipient, and a lookup walks the whole cluster.
 *
 * The caller holds the record's lock.
 */
#include "actors/sigtab.h"

#include "common/tr_alloc.h"

enum { FIRST_CAP = 4, SHRINK_FROM = 64 };

static uint32_t
home(const tr_sigtab *t, uint64_t key)
{
    /* splitmix64's finaliser: references differ in their high half,
     * address ids in both. */
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebull;
    key ^= key >> 31;
    return (uint32_t)key & (t->cap - 1);
}

static void
place(tr_sigtab *t, tr_sigent e)
{
    uint32_t i = home(t, e.key);

    while (t->slots[i].key != 0) {
        i = (i + 1) & (t->cap - 1);
    }
    t->slots[i] = e;
}

/* Move the entries into `cap` slots; false, changing nothing, when out of
 * memory. */
static bool
rehash(tr_sigtab *t, uint32_t cap)
{
    tr_sigtab old = *t;
    tr_sigent *slots = tr__calloc(sizeof(tr_sigent) * cap);
    if (slots == NULL) {
        return false;
    }
    t->slots = slots;
    t->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key != 0) {
            place(t, old.slots[i]);
        }
    }
    tr__free(old.slots, sizeof(tr_sigent) * old.cap);
    return true;
}

/* Room for one more entry. */
static bool
reserve(tr_sigtab *t)
{
    if ((uint64_t)(t->len + 1) * 2 <= t->cap) {
        return true;
    }
    return t->cap <= UINT32_MAX / 2 &&
           rehash(t, t->cap != 0 ? t->cap * 2 : FIRST_CAP);
}

/* The slot of the entry with `key` and `to`, or UINT32_MAX. */
static uint32_t
slot_of(const tr_sigtab *t, uint64_t key, uint64_t to)
{
    if (t->cap == 0 || key == 0) {
        return UINT32_MAX;
    }
    for (uint32_t i = home(t, key);; i = (i + 1) & (t->cap - 1)) {
        const tr_sigent *e = &t->slots[i];
        if (e->key == 0) {
            return UINT32_MAX;
        }
        if (e->key == key && e->to == to) {
            return i;
        }
    }
}

bool
tr__sigtab_put(tr_sigtab *t, tr_sigent e)
{
    if (!reserve(t)) {
        return false;
    }
    place(t, e);
    t->len++;
    return true;
}

tr_sigent *
tr__sigtab_find(const tr_sigtab *t, uint64_t key, uint64_t to)
{
    uint32_t i = slot_of(t, key, to);

    return i != UINT32_MAX ? &t->slots[i] : NULL;
}

/* Empty slot `i`, shifting back what would no longer be found past the
 * hole. */
static void
remove_at(tr_sigtab *t, uint32_t i)
{
    uint32_t mask = t->cap - 1;

    t->slots[i].key = 0;
    t->len--;
    for (uint32_t j = (i + 1) & mask; t->slots[j].key != 0;
         j = (j + 1) & mask) {
        uint32_t h = home(t, t->slots[j].key);
        /* The entry at j may stay unless its home lies cyclically in
         * (i, j]: then the hole at i does not cut it off. */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            t->slots[j].key = 0;
            i = j;
        }
    }
    /* A table that held many (an actor once monitored by a crowd) gives
     * the room back as they go: halved when under an eighth full, so
     * that it is at most a quarter full after, and adding again does not
     * grow it at once. Out of memory, it stays as it is. */
    if (t->cap > SHRINK_FROM && (uint64_t)t->len * 8 < t->cap) {
        (void)rehash(t, t->cap / 2);
    }
}

tr_envelope *
tr__sigtab_take(tr_sigtab *t, uint64_t key, uint64_t to)
{
    uint32_t i = slot_of(t, key, to);

    if (i == UINT32_MAX) {
        return NULL;
    }
    tr_envelope *env = t->slots[i].env;
    remove_at(t, i);
    return env;
}

bool
tr__sigtab_remove(tr_sigtab *t, uint64_t key, uint64_t to)
{
    uint32_t i = slot_of(t, key, to);

    if (i == UINT32_MAX) {
        return false;
    }
    remove_at(t, i);
    return true;
}

void
tr__sigtab_fini(tr_sigtab *t)
{
    tr__free(t->slots, sizeof(tr_sigent) * t->cap);
    t->slots = NULL;
    t->cap = 0;
    t->len = 0;
}
