/*
 * A supervisor's bookkeeping of its children: the records, the indexes,
 * the states, and the actors behind them. Everything else in supervisor/
 * stands on this file, which stands on nothing else in it.
 *
 * Records. A list in start order, and two indexes (index.c): by id, for
 * requests, and by address, for reports and timers. So the work on one
 * child (find it, start, restart, terminate or delete it, act on its
 * report or its timer) looks at a few children however many there are;
 * only what concerns them all (a round, a shutdown, which_children) walks
 * the list. `visits` counts the children looked at, for the tests: every
 * walk steps with tr__sup_first/after/before and every probe goes through
 * the index with it.
 *
 * Counts. `nstopping` and `nundecided` count the children in
 * CHILD_STOPPING and those marked `undecided`; only tr__sup_set_state and
 * tr__sup_set_undecided change those, so the counts cannot drift (the
 * engine ends a stop sequence on `nstopping` reaching 0, and skips the
 * walk for undecided children when there are none). `nsignificant`
 * counts the significant children that are not DOWN: a child leaves DOWN
 * only in tr__sup_spawn_child and enters it only in tr__sup_set_state,
 * which keep it (all_significant shuts down when it reaches 0).
 *
 * The tree lock. Every change that inspection or tr_whereis_path can see
 * (the list, the indexes, a child's state, address and last exit, the
 * mode, the roots) is made here under the system's tree_lock, or by the
 * engine under it (tr__sup_tree_lock); they read under the same lock. The
 * lock is never held across a child's callback: spawning, `init`, `stop`
 * and the end of an actor run outside it.
 *
 * Actors. A child is spawned holding its run-right (tr__spawn_held); the
 * caller releases it when it may run. A held child (one that has ended,
 * whose report handed the run-right back) is ended for good by
 * tr__sup_finish_child, on the supervisor's own thread.
 */
#include "supervisor/children.h"

#include "common/tr_alloc.h"

#include <stdio.h>
#include <string.h>

tr_child_status
tr__sup_child_status(const tr_sup *s, const child *c, uint64_t now)
{
    /* A round waits for the timer of its owner, set for the latest delay
     * of the children in it. */
    const child *timer = s->round_owner != NULL ? s->round_owner : c;

    switch (c->state) {
    case CHILD_RUNNING:
        return TR_CHILD_RUNNING;
    case CHILD_STOPPING:
        return TR_CHILD_STOPPING;
    case CHILD_HELD:
        if (!c->want_restart) {
            /* Not to be restarted: it ended in a sequence and is decided
             * after it, or the sequence ends it. */
            return TR_CHILD_STOPPING;
        }
        return c->due_ms > now || timer->due_ms > now ? TR_CHILD_BACKOFF
                                                      : TR_CHILD_RESTARTING;
    case CHILD_DOWN:
        break;
    }
    return c->ignored ? TR_CHILD_IGNORED : TR_CHILD_TERMINATED;
}

child *
tr__sup_find_id(tr_sup *s, const char *id)
{
    return tr__sup_index_find(&s->by_id, id, &s->visits);
}

child *
tr__sup_find_addr(tr_sup *s, uint64_t addr)
{
    return tr__sup_index_find(&s->by_addr, &addr, &s->visits);
}

child *
tr__sup_new_child(tr_sup *s, const tr_child_spec *spec, const void *arg)
{
    child *c = tr__calloc(sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->spec = *spec;
    snprintf(c->id, sizeof(c->id), "%s", spec->id);
    c->spec.id = c->id;
    c->arg = arg;
    c->serial = ++s->next_serial;
    return c;
}

int
tr__sup_add_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    int rc = TR_ENOMEM;

    tr__sup_tree_lock(ctx);
    if (tr__sup_index_reserve(&s->by_id, s->n + 1) &&
        tr__sup_index_reserve(&s->by_addr, s->n + 1)) {
        c->prev = s->tail;
        c->next = NULL;
        if (s->tail != NULL) {
            s->tail->next = c;
        } else {
            s->head = c;
        }
        s->tail = c;
        s->n++;
        tr__sup_index_put(&s->by_id, c);
        rc = TR_OK;
    }
    tr__sup_tree_unlock(ctx);
    return rc;
}

void
tr__sup_set_undecided(tr_sup *s, child *c, bool on)
{
    if (c->undecided != on) {
        c->undecided = on;
        if (on) {
            s->nundecided++;
        } else {
            s->nundecided--;
        }
    }
}

void
tr__sup_remove_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    tr__sup_set_undecided(s, c, false);
    tr__sup_tree_lock(ctx);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        s->tail = c->prev;
    }
    s->n--;
    tr__sup_index_del(&s->by_id, c);
    tr__sup_tree_unlock(ctx);
    if (s->cursor == c) {
        s->cursor = c->prev;
    }
    if (s->round_owner == c) {
        s->round_owner = NULL;
    }
    if (s->admin_child == c) {
        s->admin_child = NULL;
    }
    tr__free(c, sizeof(*c));
}

tr_ctx
tr__sup_child_ctx(tr_ctx *ctx, child *c)
{
    return (tr_ctx){
        .sys = ctx->sys,
        .actor = c->slot,
        .worker = ctx->worker,
        .self = c->addr.id,
        .gen = tr__id_gen(c->addr.id),
    };
}

void
tr__sup_set_state(tr_ctx *ctx, tr_sup *s, child *c, child_state st)
{
    if (c->state == CHILD_STOPPING) {
        s->nstopping--;
    }
    if (st == CHILD_STOPPING) {
        s->nstopping++;
    }
    if (st == CHILD_DOWN && c->state != CHILD_DOWN && c->spec.significant) {
        s->nsignificant--;
    }
    tr__sup_tree_lock(ctx);
    if (st == CHILD_DOWN && c->state != CHILD_DOWN) {
        tr__sup_index_del(&s->by_addr, c);
    }
    c->state = st;
    if (st == CHILD_DOWN) {
        c->addr = TR_ADDR_NONE;
        c->slot = NULL;
        c->x = NULL;
        c->sub = NULL;
    }
    tr__sup_tree_unlock(ctx);
}

void
tr__sup_set_mode(tr_ctx *ctx, tr_sup *s, sup_mode mode)
{
    tr__sup_tree_lock(ctx);
    s->mode = mode;
    tr__sup_tree_unlock(ctx);
}

void
tr__sup_finish_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    tr_ctx cc = tr__sup_child_ctx(ctx, c);
    const tr_exit why = {c->last.kind, c->last.code, c->last.text};

    c->want_restart = false;
    c->in_pass = false;
    tr__sup_set_undecided(s, c, false);
    tr__sup_note(ctx, TR_TREE_STOP, c);
    tr__sup_set_state(ctx, s, c, CHILD_DOWN);
    tr__actor_finish(&cc, &why, false);
}

void
tr__sup_stop_held(tr_ctx *ctx, child *c)
{
    tr_ctx cc = tr__sup_child_ctx(ctx, c);
    const tr_exit why = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};

    tr__actor_stop_held(&cc, &why);
}

typedef struct prep {
    uint64_t parent;
    child *c;
} prep;

static void
prepare(tr_ext *x, void *arg)
{
    prep *p = arg;

    tr_store_relaxed(&x->parent, p->parent);
    x->child = p->c;
    tr_store_relaxed(&x->held, 0);
    tr_store_relaxed(&x->kill, 0);
    tr_store_relaxed(&x->hwm, 0);
    tr_store_relaxed(&x->busy_ns, 0);
    tr_store_relaxed(&x->dead, 0);
}

int
tr__sup_spawn_child(tr_ctx *ctx, tr_sup *s, child *c, char *why, size_t cap)
{
    prep p = {s->self, c};
    tr_addr addr;
    tr_actor *slot;
    uint64_t started = tr__sup_now_ms(ctx); /* when `init` began */
    int rc = tr__spawn_held(ctx, c->spec.behaviour, c->arg, c->spec.mailbox_cap,
                            prepare, &p, &addr, &slot, why, cap);

    c->ignored = rc == TR_IGNORE;
    if (rc != TR_OK) {
        return rc;
    }
    s->nsignificant += c->spec.significant;
    tr__sup_tree_lock(ctx);
    c->addr = addr;
    c->slot = slot;
    c->x = tr_load_acq(&slot->ext);
    c->state = CHILD_RUNNING;
    c->up_ms = started;
    tr__sup_index_put(&s->by_addr, c); /* room made by tr__sup_add_child */
    tr__sup_tree_unlock(ctx);
    tr__sup_note(ctx, TR_TREE_START, c);
    return TR_OK;
}

void
tr__sup_release_child(tr_ctx *ctx, child *c)
{
    if (tr_load_relaxed(&c->x->held) == 0) {
        tr__actor_release(ctx->sys, c->slot);
    }
}

int
tr__sup_attach(tr_ctx *ctx, tr_sup *s, tr_ext *x)
{
    tr__sup_tree_lock(ctx);
    if (s->top) {
        tr_system *sys = ctx->sys;
        /* Under the lock that guards the roots: of two racing starts under
         * one name, exactly one is refused. */
        for (uint32_t i = 0; i < sys->nroots; i++) {
            const tr_sup *r = sys->roots[i];
            if (strcmp(r->name, s->name) == 0) {
                tr__sup_tree_unlock(ctx);
                return TR_EEXIST;
            }
        }
        if (sys->nroots == sys->caproots &&
            !tr__grow((void **)&sys->roots, &sys->caproots, sizeof(void *),
                      4)) {
            tr__sup_tree_unlock(ctx);
            return TR_ENOMEM;
        }
        sys->roots[sys->nroots++] = s;
    } else {
        /* Our supervisor runs our init: its record of us is ours to link. */
        s->up = x->child;
        s->up->sub = s;
    }
    tr__sup_tree_unlock(ctx);
    return TR_OK;
}

void
tr__sup_free(tr_ctx *ctx, tr_sup *s)
{
    tr__sup_tree_lock(ctx);
    tr_system *sys = ctx->sys;
    for (uint32_t i = 0; i < sys->nroots; i++) {
        if (sys->roots[i] == s) {
            sys->roots[i] = sys->roots[--sys->nroots];
            break;
        }
    }
    /* Both links between a supervisor and its child supervisor's
     * bookkeeping are cut here, under the tree lock, by whichever of the
     * two is freed first. */
    if (s->up != NULL && s->up->sub == s) {
        s->up->sub = NULL;
    }
    child *c = s->head;
    while (c != NULL) {
        child *next = c->next;
        if (c->sub != NULL) {
            c->sub->up = NULL;
        }
        tr__free(c, sizeof(child));
        c = next;
    }
    s->head = s->tail = NULL;
    s->n = 0;
    tr__sup_index_fini(&s->by_id);
    tr__sup_index_fini(&s->by_addr);
    tr__sup_tree_unlock(ctx);
    tr__free(s->tmpl, sizeof(child));
    if (s->window != NULL) {
        tr__free(s->window, sizeof(uint64_t) * (s->max_restarts + 1));
    }
    tr__free(s, sizeof(*s));
}
