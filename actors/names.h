/*
 * Private: the registry of names, one per system (tr_system.names). See
 * names.c.
 */
#ifndef TR_ACTORS_NAMES_H
#define TR_ACTORS_NAMES_H

#include "actors/actor.h"

/* An empty registry; TR_ENOMEM when out of memory. */
int tr__names_create(tr_names **out);

/* Free the registry and every name left in it (system teardown). */
void tr__names_destroy(tr_names *n);

/*
 * Incarnation `id`, registered as `name`, has ended: remove `name` if it
 * still names `id`, and free `name` (the record's copy, which the caller
 * has taken out of the record).
 */
void tr__names_release(tr_names *n, char *name, uint64_t id);

/* The slots of the table now (for tests of its size). */
size_t tr__names_cap(tr_names *n);

#endif /* TR_ACTORS_NAMES_H */
