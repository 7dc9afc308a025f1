/*
 * Checks of supervisor and child specs, and their bounds.
 *
 * A spec is checked whole before anything is started (tr_sup_start, and
 * the supervisor's own init), and a child spec again when it comes in a
 * start_child request: every bound of troupe/supervisor.h
 * (TR_SUP_CHILDREN_MAX, TR_SUP_TIME_MAX_MS, ...) is enforced here, and a
 * refusal names the field in `why`. Duplicate ids are found by comparing
 * each id with those before it in a short list, and with a hash table
 * (open addressing, FNV-1a) in a long one, so that a spec at the bound of
 * children is checked in linear time; when that table finds no memory the
 * check fails with TR_ENOMEM rather than accept a spec it did not check.
 */
#include "supervisor/spec.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

/* Spec checks find duplicate ids with a table above this many children. */
enum { DUP_SCAN_MAX = 16 };

/* A name in a path ("/app/db/pool/3") holds no '/': it could never be
 * looked up, and would read as two names. */
static bool
path_part_ok(const char *s, size_t len)
{
    return len < 64 && memchr(s, '/', len) == NULL;
}

bool
tr__sup_id_ok(const char *id)
{
    size_t len = id != NULL ? strnlen(id, 64) : 0;
    return len > 0 && path_part_ok(id, len);
}

int
tr__sup_child_spec_check(const tr_child_spec *c, tr_auto_shutdown auto_shutdown,
                         char *why, size_t cap)
{
    const tr_backoff *b = &c->backoff;

    if (!tr__sup_id_ok(c->id)) {
        snprintf(why, cap,
                 "a child id is NULL, empty, over 63 bytes or holds a '/'");
    } else if (c->behaviour == NULL) {
        snprintf(why, cap, "child '%s' has no behaviour", c->id);
    } else if ((unsigned)c->restart > TR_TEMPORARY) {
        snprintf(why, cap, "child '%s' has an unknown restart type %d", c->id,
                 (int)c->restart);
    } else if ((unsigned)c->kind > TR_SUPERVISOR) {
        snprintf(why, cap, "child '%s' has an unknown kind %d", c->id,
                 (int)c->kind);
    } else if (c->significant && c->restart == TR_PERMANENT) {
        /* OTP: a permanent child is always restarted, so it never ends
         * for good by itself. */
        snprintf(why, cap,
                 "child '%s' is significant but permanent (only transient "
                 "and temporary children can be)",
                 c->id);
    } else if (c->significant && auto_shutdown == TR_AUTO_SHUTDOWN_NEVER) {
        snprintf(why, cap,
                 "child '%s' is significant but the supervisor's "
                 "auto_shutdown is never",
                 c->id);
    } else if (c->shutdown_ms < TR_SHUTDOWN_INFINITY) {
        snprintf(why, cap, "child '%s' has a negative shutdown_ms %d", c->id,
                 c->shutdown_ms);
    } else if (c->shutdown_ms > (int)TR_SUP_TIME_MAX_MS) {
        snprintf(why, cap, "child '%s': shutdown_ms %d is over %u", c->id,
                 c->shutdown_ms, TR_SUP_TIME_MAX_MS);
    } else if (c->mailbox_cap > TR_MAILBOX_CAP_MAX) {
        snprintf(why, cap, "child '%s': mailbox_cap %u is over %u", c->id,
                 c->mailbox_cap, TR_MAILBOX_CAP_MAX);
    } else if (b->max_ms > TR_SUP_TIME_MAX_MS) {
        snprintf(why, cap, "child '%s': backoff.max_ms %u is over %u", c->id,
                 b->max_ms, TR_SUP_TIME_MAX_MS);
    } else if (b->min_ms > b->max_ms) {
        snprintf(why, cap,
                 "child '%s' has backoff.min_ms %u over backoff.max_ms %u",
                 c->id, b->min_ms, b->max_ms);
    } else if (b->jitter_pct > TR_SUP_JITTER_MAX) {
        snprintf(why, cap, "child '%s': backoff.jitter_pct %u is over %u",
                 c->id, b->jitter_pct, TR_SUP_JITTER_MAX);
    } else if (b->reset_ms > TR_SUP_TIME_MAX_MS) {
        snprintf(why, cap, "child '%s': backoff.reset_ms %u is over %u", c->id,
                 b->reset_ms, TR_SUP_TIME_MAX_MS);
    } else if (b->max_ms == 0 && (b->jitter_pct != 0 || b->reset_ms != 0)) {
        snprintf(why, cap,
                 "child '%s' has backoff.jitter_pct or backoff.reset_ms "
                 "but no backoff (backoff.max_ms is 0)",
                 c->id);
    } else {
        return TR_OK;
    }
    return TR_EINVAL;
}

static uint64_t
hash_text(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return h;
}

/* The first id of `c[len]` (all valid) that repeats an earlier one, or
 * NULL; TR_ENOMEM in `*rc` when a long list found no memory for its
 * table. */
static const char *
duplicate_id(const tr_child_spec *c, size_t len, int *rc)
{
    *rc = TR_OK;
    if (len <= DUP_SCAN_MAX) {
        for (size_t i = 1; i < len; i++) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(c[i].id, c[j].id) == 0) {
                    return c[i].id;
                }
            }
        }
        return NULL;
    }
    size_t cap = 64;
    while (cap < 2 * len) {
        cap *= 2;
    }
    const char **seen = tr__calloc(sizeof(*seen) * cap);
    const char *dup = NULL;
    if (seen == NULL) {
        *rc = TR_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < len && dup == NULL; i++) {
        size_t at = hash_text(c[i].id) & (cap - 1);
        while (seen[at] != NULL && strcmp(seen[at], c[i].id) != 0) {
            at = (at + 1) & (cap - 1);
        }
        if (seen[at] != NULL) {
            dup = c[i].id;
        }
        seen[at] = c[i].id;
    }
    tr__free(seen, sizeof(*seen) * cap);
    return dup;
}

int
tr_sup_spec_check(const tr_sup_spec *spec, char *why, size_t cap)
{
    char ignored[8];
    int rc = TR_EINVAL;

    if (why == NULL || cap == 0) {
        why = ignored;
        cap = sizeof(ignored);
    }
    if (spec == NULL) {
        snprintf(why, cap, "no spec");
    } else if (spec->name != NULL &&
               !path_part_ok(spec->name, strnlen(spec->name, 64))) {
        snprintf(why, cap, "the name is over 63 bytes or holds a '/'");
    } else if ((unsigned)spec->strategy > TR_SIMPLE_ONE_FOR_ONE) {
        snprintf(why, cap, "unknown strategy %d", (int)spec->strategy);
    } else if ((unsigned)spec->auto_shutdown > TR_AUTO_SHUTDOWN_ALL) {
        snprintf(why, cap, "unknown auto_shutdown %d",
                 (int)spec->auto_shutdown);
    } else if (spec->max_restarts > TR_SUP_RESTARTS_MAX) {
        snprintf(why, cap, "max_restarts %u is over %u", spec->max_restarts,
                 TR_SUP_RESTARTS_MAX);
    } else if (spec->period_ms > TR_SUP_TIME_MAX_MS) {
        snprintf(why, cap, "period_ms %u is over %u", spec->period_ms,
                 TR_SUP_TIME_MAX_MS);
    } else if (spec->len > TR_SUP_CHILDREN_MAX) {
        snprintf(why, cap, "len %zu is over %u children", spec->len,
                 TR_SUP_CHILDREN_MAX);
    } else if (spec->len != 0 && spec->children == NULL) {
        snprintf(why, cap, "len %zu but no children array", spec->len);
    } else if (spec->strategy == TR_SIMPLE_ONE_FOR_ONE && spec->len != 1) {
        snprintf(why, cap,
                 "simple_one_for_one takes exactly one template, not %zu",
                 spec->len);
    } else {
        rc = TR_OK;
    }
    for (size_t i = 0; rc == TR_OK && i < spec->len; i++) {
        rc = tr__sup_child_spec_check(&spec->children[i], spec->auto_shutdown,
                                      why, cap);
    }
    if (rc == TR_OK && spec->len > 1) {
        const char *dup = duplicate_id(spec->children, spec->len, &rc);
        if (rc == TR_ENOMEM) {
            snprintf(why, cap, "no memory to check %zu ids", spec->len);
        } else if (dup != NULL) {
            snprintf(why, cap, "duplicate child id '%s'", dup);
            rc = TR_EINVAL;
        }
    }
    if (rc == TR_OK) {
        why[0] = '\0';
    }
    return rc;
}
