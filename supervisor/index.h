/*
 * Private: a supervisor's children indexed by id and by address, so that
 * the work on one child (find it for a request, for its report or for its
 * timer, add it, forget it) does not grow with its siblings. See index.c.
 */
#ifndef TR_SUPERVISOR_INDEX_H
#define TR_SUPERVISOR_INDEX_H

#include "common/tr_atomic.h"

#include <stdbool.h>
#include <stdint.h>

struct child;

/* What an index is keyed by. */
typedef enum index_key {
    KEY_ID,  /* the child's id (a string) */
    KEY_ADDR /* the child's address id, while it has one */
} index_key;

/* An open-addressing table of children. Zeroed is empty and valid. */
typedef struct sup_index {
    struct child **slots; /* NULL: an empty slot */
    uint32_t cap;         /* 0, or a power of two */
    uint32_t len;
    index_key key;
} sup_index;

/* Make room for `n` entries; false, changing nothing, when out of
 * memory. With room made, tr__sup_index_put cannot fail. */
bool tr__sup_index_reserve(sup_index *ix, uint32_t n);

/* Add `c`, which is not in the index yet, under its key. */
void tr__sup_index_put(sup_index *ix, struct child *c);

/* Remove `c`, if it is there. */
void tr__sup_index_del(sup_index *ix, struct child *c);

/*
 * The child whose key is `key` (a `const char *` id, or a `const uint64_t
 * *` address id), or NULL. Each slot looked at is added to `*visits`
 * (may be NULL), which only the supervisor's own thread writes.
 */
struct child *tr__sup_index_find(const sup_index *ix, const void *key,
                                 tr_atomic(uint64_t) * visits);

/* Free the table (not the children). */
void tr__sup_index_fini(sup_index *ix);

#endif /* TR_SUPERVISOR_INDEX_H */
