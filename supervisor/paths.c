/*
 * tr_whereis_path: a supervision tree's child found by its path, from any
 * thread.
 *
 * A path is "/<top>/<id>/<id>...": a top-level supervisor's name, then a
 * child id per level. The walk runs under the system's tree_lock, which
 * every supervisor holds while it changes its bookkeeping (children.c), so
 * it reads one consistent tree: the roots, each supervisor's id index, and
 * the link from a child record to its bookkeeping when the child is a
 * supervisor (`sub`). Only a running child is found; one that is stopped,
 * stopping or waiting to be restarted is not (TR_ENOTFOUND).
 */
#include "supervisor/sup.h"

#include "actors/actor.h"

#include <troupe/error.h>

#include <string.h>

/* The next segment of a path, after its '/': its length, 0 at the end. */
static size_t
segment(const char **p)
{
    if (**p != '/') {
        return 0;
    }
    (*p)++;
    return strcspn(*p, "/");
}

static bool
named(const char *name, const char *seg, size_t len)
{
    return strlen(name) == len && memcmp(name, seg, len) == 0;
}

int
tr_whereis_path(tr_system *sys, const char *path, tr_addr *out)
{
    bool entered;

    if (sys == NULL || path == NULL || out == NULL) {
        return TR_EINVAL;
    }
    int rc = tr__sys_enter_any(sys, &entered);
    if (rc != TR_OK) {
        return rc;
    }
    rc = TR_ENOTFOUND;
    const char *p = path;
    size_t len = segment(&p);
    pthread_mutex_lock(&sys->tree_lock);
    const tr_sup *s = NULL;
    for (uint32_t i = 0; i < sys->nroots && len != 0; i++) {
        const tr_sup *r = sys->roots[i];
        if (named(r->name, p, len)) {
            s = r;
        }
    }
    tr_addr found = s != NULL ? tr__addr(sys, s->self) : TR_ADDR_NONE;
    for (p += len; s != NULL && (len = segment(&p)) != 0; p += len) {
        char id[64];
        const child *c = NULL;
        if (len < sizeof(id)) {
            memcpy(id, p, len);
            id[len] = '\0';
            c = tr__sup_index_find(&s->by_id, id, NULL);
        }
        found = c != NULL && c->state == CHILD_RUNNING ? c->addr : TR_ADDR_NONE;
        s = c != NULL ? c->sub : NULL;
    }
    if (*p == '\0' && !tr_addr_is_none(found)) {
        *out = found;
        rc = TR_OK;
    }
    pthread_mutex_unlock(&sys->tree_lock);
    if (entered) {
        tr__sys_leave(sys);
    }
    return rc;
}
