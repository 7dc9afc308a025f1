/*
 * Private: the checks of supervisor and child specs (tr_sup_spec_check is
 * public). See spec.c.
 */
#ifndef TR_SUPERVISOR_SPEC_H
#define TR_SUPERVISOR_SPEC_H

#include <troupe/supervisor.h>

#include <stdbool.h>
#include <stddef.h>

/* True when `id` is a valid child id: not NULL, 1 to 63 bytes. */
bool tr__sup_id_ok(const char *id);

/* Check one child spec, for a supervisor with `auto_shutdown`: TR_OK, or
 * TR_EINVAL with the reason, naming the field, in `why` (`cap` bytes, not
 * 0). */
int tr__sup_child_spec_check(const tr_child_spec *c,
                             tr_auto_shutdown auto_shutdown, char *why,
                             size_t cap);

#endif /* TR_SUPERVISOR_SPEC_H */
