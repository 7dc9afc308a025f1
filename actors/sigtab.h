/*
 * Private: the tables of an extension record that hold the signals an
 * incarnation owes at its end (its monitors' DOWNs, its links' EXITs), and
 * the monitors it holds on others, found by key in constant time. See
 * sigtab.c.
 */
#ifndef TR_ACTORS_SIGTAB_H
#define TR_ACTORS_SIGTAB_H

#include "mailbox/envelope.h"

#include <stdbool.h>
#include <stdint.h>

/* A signal owed: a monitor's DOWN (key: the reference, to: the watcher) or
 * one side's EXIT of a link (key and to: the peer), allocated when the
 * monitor or link was made so that sending it never needs memory. Or a
 * monitor held (key: the reference, to: the target, no envelope). */
typedef struct tr_sigent {
    uint64_t key; /* never 0; 0 marks an empty slot */
    uint64_t to;  /* address id */
    tr_envelope *env;
} tr_sigent;

/* Zeroed is empty and valid. Iterate over `slots[0..cap)`, skipping the
 * entries whose key is 0. */
typedef struct tr_sigtab {
    tr_sigent *slots;
    uint32_t cap; /* 0, or a power of two */
    uint32_t len;
} tr_sigtab;

/* Add `e` (its key not 0); false, changing nothing, when out of memory. */
bool tr__sigtab_put(tr_sigtab *t, tr_sigent e);

/* The entry with `key` and `to`, or NULL. */
tr_sigent *tr__sigtab_find(const tr_sigtab *t, uint64_t key, uint64_t to);

/* Remove the entry with `key` and `to`; its envelope, or NULL when there
 * was none. */
tr_envelope *tr__sigtab_take(tr_sigtab *t, uint64_t key, uint64_t to);

/* Remove the entry with `key` and `to`; false when there was none. For
 * entries without an envelope. */
bool tr__sigtab_remove(tr_sigtab *t, uint64_t key, uint64_t to);

/* Free the table (not the envelopes); it is empty and valid again. */
void tr__sigtab_fini(tr_sigtab *t);

#endif /* TR_ACTORS_SIGTAB_H */
