/*
 * Private: a supervisor's bookkeeping of its children, underneath the rest
 * of supervisor/ (spec.c, engine.c, admin.c and supervisor.c use it; it
 * uses none of them). See children.c.
 */
#ifndef TR_SUPERVISOR_CHILDREN_H
#define TR_SUPERVISOR_CHILDREN_H

#include "supervisor/sup.h"

/* The system's tree_lock, which guards every change that inspection or
 * tr_whereis_path can see. Never held across a child's callback. */
static inline void
tr__sup_tree_lock(tr_ctx *ctx)
{
    pthread_mutex_lock(&ctx->sys->tree_lock);
}

static inline void
tr__sup_tree_unlock(tr_ctx *ctx)
{
    pthread_mutex_unlock(&ctx->sys->tree_lock);
}

static inline uint64_t
tr__sup_now_ms(tr_ctx *ctx)
{
    return tr_now_ms(ctx->sys);
}

/* Count `c` as looked at (tr_sup.visits), and return it: every walk over
 * the children goes through here. */
static inline child *
tr__sup_seen(tr_sup *s, child *c)
{
    if (c != NULL) {
        /* One writer: the supervisor's thread. */
        tr_store_relaxed(&s->visits, tr_load_relaxed(&s->visits) + 1);
    }
    return c;
}

/* Walks over the children: each step is counted as a child looked at. */
static inline child *
tr__sup_first(tr_sup *s)
{
    return tr__sup_seen(s, s->head);
}

static inline child *
tr__sup_after(tr_sup *s, const child *c)
{
    return tr__sup_seen(s, c->next);
}

static inline child *
tr__sup_before(tr_sup *s, const child *c)
{
    return tr__sup_seen(s, c->prev);
}

/* Modes in which the supervisor is ending. */
static inline bool
tr__sup_ending(sup_mode m)
{
    return m == SUP_TERMINATE || m == SUP_GIVE_UP || m == SUP_KILL;
}

/* A dynamic or temporary child's spec goes when its actor does. */
static inline bool
tr__sup_leaves_when_down(const tr_sup *s, const child *c)
{
    return s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
           c->spec.restart == TR_TEMPORARY;
}

/* What tr_child_info says of `c` at `now` (its supervisor's clock). */
tr_child_status tr__sup_child_status(const tr_sup *s, const child *c,
                                     uint64_t now);

/* The child named `id`, or NULL (index probes count as visits). */
child *tr__sup_find_id(tr_sup *s, const char *id);

/* The child whose address id is `addr`, or NULL. */
child *tr__sup_find_addr(tr_sup *s, uint64_t addr);

/* A new record for `spec` (copied, with its id) and `arg`, not yet
 * listed; NULL when out of memory. */
child *tr__sup_new_child(tr_sup *s, const tr_child_spec *spec, const void *arg);

/* Add `c` after the last child; TR_ENOMEM changes nothing. The address
 * index gets room for it too, so that spawning it cannot fail there. */
int tr__sup_add_child(tr_ctx *ctx, tr_sup *s, child *c);

/* Set or clear `c->undecided`, keeping `s->nundecided`. */
void tr__sup_set_undecided(tr_sup *s, child *c, bool on);

/* Forget (unlist and free) a child that has no actor. */
void tr__sup_remove_child(tr_ctx *ctx, tr_sup *s, child *c);

/* The context of a child whose run-right we hold. */
tr_ctx tr__sup_child_ctx(tr_ctx *ctx, child *c);

/* Move `c` to state `st`, keeping `s->nstopping` and the address index;
 * CHILD_DOWN also forgets its address. */
void tr__sup_set_state(tr_ctx *ctx, tr_sup *s, child *c, child_state st);

/* Set the supervisor's mode (inspection reads it too). */
void tr__sup_set_mode(tr_ctx *ctx, tr_sup *s, sup_mode mode);

/* End a held child for good (its `stop` has run): DOWN, and its actor's
 * end (DOWNs, links, name, slot). */
/* Tell inspection, while it watches (outside the tree lock: it reads the
 * tree). Acquire: pairs with the release that turned watching on, after
 * `tree_event` was set. `c` is NULL for TR_TREE_GIVE_UP. */
static inline void
tr__sup_note(tr_ctx *ctx, unsigned what, const child *c)
{
    if (tr_unlikely(tr_load_acq(&ctx->sys->watched) != 0)) {
        ctx->sys->tree_event(ctx, what, c);
    }
}

void tr__sup_finish_child(tr_ctx *ctx, tr_sup *s, child *c);

/* Run `stop` of a held child that had restarted (a failed round); it
 * stays held. */
void tr__sup_stop_held(tr_ctx *ctx, child *c);

/*
 * Spawn `c`, keeping its run-right (released by the caller). TR_OK with the
 * child running (or already ended in init: its report is on the way),
 * TR_IGNORE, or its init's code, with why it failed in `why` (`cap`
 * bytes, 0 for none; untouched when its `init` did not run).
 */
int tr__sup_spawn_child(tr_ctx *ctx, tr_sup *s, child *c, char *why,
                        size_t cap);

/* Release a child we started or restarted, unless it ended in `init`
 * (then its report carries the right). */
void tr__sup_release_child(tr_ctx *ctx, child *c);

/*
 * Hook the new bookkeeping `s` of the actor whose record is `x` into the
 * tree: a top-level supervisor into the system's roots, a child
 * supervisor into its record in its supervisor. TR_EEXIST when a
 * top-level supervisor of the same name is in the roots (their paths
 * would collide), and TR_ENOMEM, change nothing.
 */
int tr__sup_attach(tr_ctx *ctx, tr_sup *s, tr_ext *x);

/* Unhook and free the bookkeeping (every child has ended or been let go). */
void tr__sup_free(tr_ctx *ctx, tr_sup *s);

#endif /* TR_SUPERVISOR_CHILDREN_H */
