/*
 * Monitors, links, trapping, the supervisor mark and tr_actor_wait: the
 * parts of an actor that live in its slot's extension record (the names
 * registered in it are names.c's), and the end of an incarnation, which
 * sends its signals and releases its name.
 *
 * A monitor lives in its target's record, in a table by reference, with
 * its DOWN; each side of a link in its own side's record, in a table by
 * peer (sigtab.c). So a monitor, demonitor, link or unlink, and a peer's
 * end, cost the same however many others the actor holds: an actor
 * monitored or linked 100,000 times sees them all come and go in linear
 * time.
 *
 * A monitor is two-sided too, as OTP's: the watcher's record holds the
 * reference and the target (`watching`, no envelope), so that the watcher's
 * end, or its restart in place, takes each of its monitors from its target
 * and frees the DOWN; a long-lived target of many short-lived watchers
 * then holds only the living ones' monitors. The DOWN is owned by the
 * target's entry: whoever takes the entry under the target's lock (the
 * target's end, which sends it; tr_demonitor or the watcher's end, which
 * free it) is the only one to touch it, so a watcher and its target ending
 * together free or send it exactly once. The DOWN travels as a message of
 * its own kind (TR_MSG_MON_DOWN), and its dispatch removes the watcher's
 * record of it, so a long-lived watcher of many short-lived targets does
 * not grow either; a DOWN whose record is gone (queued for an instance
 * that was restarted in place since) is dropped, as a restarted Erlang
 * process, a new pid, never hears its predecessor's. tr_demonitor that
 * finds the DOWN already on its way leaves the record to the DOWN, which
 * is still delivered (TR_ENOTFOUND says so).
 *
 * Ending against adding. An incarnation ends by moving its slot's
 * generation on (seq_cst), then loading the record pointer (seq_cst) and,
 * under the record's lock, taking its lists. Whoever adds to the lists
 * installs the record (seq_cst CAS), then under the lock checks that the
 * generation is still the one it means (seq_cst). Either the adder sees
 * the target gone, and signals the caller itself, or the ender sees the
 * entry: no DOWN or link exit is lost, and none is sent twice.
 *
 * Links are two entries, one per side, each added under its own side's
 * lock (never both locks at once, so two actors linking to each other
 * cannot deadlock); the second side's liveness check decides as above.
 *
 * Signals never need memory when they are sent: each monitor and each side
 * of a link carries the envelope of the signal it will send, allocated
 * when it was made (a monitor or link that cannot get one is refused with
 * TR_ENOMEM), and the signal for an address that has already ended travels
 * in that same envelope.
 */
#include "actors/ext.h"
#include "actors/sim.h"

#include "actors/names.h"
#include "common/tr_alloc.h"
#include "common/tr_assert.h"
#include "scheduler/timer.h"

#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

tr_ext *
tr__ext_get(tr_actor *a)
{
    tr_ext *x = tr_load_acq(&a->ext);

    if (x != NULL) {
        return x;
    }
    x = tr__calloc(sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    pthread_mutex_init(&x->lock, NULL);
    tr_init_relaxed(&x->kill, 0);
    tr_init_relaxed(&x->held, 0);
    tr_init_relaxed(&x->hwm, 0);
    tr_init_relaxed(&x->busy_ns, 0);
    tr_init_relaxed(&x->dead, 0);
    tr_init_relaxed(&x->parent, 0);
    tr_ext *expected = NULL;
    /* seq_cst: see the top comment. */
    if (!tr_cas_seqcst(&a->ext, &expected, x)) {
        pthread_mutex_destroy(&x->lock);
        tr__free(x, sizeof(*x));
        return expected;
    }
    return x;
}

/* Free a table and the signals it holds. */
static void
drop_all(tr_sigtab *t)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key != 0) {
            tr__env_destroy(t->slots[i].env);
        }
    }
    tr__sigtab_fini(t);
}

void
tr__ext_free(tr_ext *x)
{
    /* Every incarnation has ended, so the lists are empty; but never leak
     * what they would hold. */
    drop_all(&x->mons);
    drop_all(&x->links);
    tr__sigtab_fini(&x->watching); /* no envelopes */
    tr__free(x->muted, sizeof(uint64_t) * x->capmuted);
    if (x->name != NULL) {
        tr__free(x->name, strlen(x->name) + 1);
    }
    pthread_mutex_destroy(&x->lock);
    tr__free(x, sizeof(*x));
}

bool
tr__ext_own_lists(tr_actor *a, tr_ext *x, uint64_t gen)
{
    /* seq_cst: see the top comment. */
    if (!tr__gen_live(gen) || tr_load_seqcst(&a->gen) != gen) {
        return false;
    }
    if (x->gen != gen) {
        /* The previous incarnation's end emptied them. */
        TR_ASSERT(x->mons.len == 0 && x->links.len == 0 &&
                  x->watching.len == 0 && x->name == NULL &&
                  x->waiters == NULL && x->nmuted == 0);
        x->gen = gen;
        x->trap_exit = false;
        x->supervisor = false;
    }
    return true;
}

void
tr__signal_fill(tr_signal *s, tr_addr who, uint64_t ref, const tr_exit *exit)
{
    memset(s, 0, sizeof(*s));
    s->who = who;
    s->ref = ref;
    s->kind = exit->kind;
    s->code = exit->code;
    size_t n = strnlen(exit->text, sizeof(s->text) - 1);
    memcpy(s->text, exit->text, n); /* the memset ended it */
}

tr_envelope *
tr__signal_create(void)
{
    return tr__env_create(sizeof(tr_signal));
}

/* Send a signal (a DOWN, or a link exit) to `to` in `env`, which
 * tr__signal_create made; it is freed if `to` is gone. */
static void
send_signal(tr_system *sys, tr_envelope *env, uint64_t to, uint8_t kind,
            uint32_t type, uint64_t who, uint64_t ref, const tr_exit *exit)
{
    env->type = type;
    env->from = who;
    tr__signal_fill(tr__env_data(env), tr__addr(sys, who), ref, exit);
    /* A DOWN queues behind the messages its subject sent before it ended
     * (Erlang's order of signals between two processes): the user lane. A
     * link exit acts on arrival (the control lane), and a trapping
     * receiver queues it behind them in turn (see actor.c). */
    env->kind = kind;
    int rc = kind == TR_CTL_USER
                 ? tr__actor_push_user_to(sys, to, env, TR_MSG_MON_DOWN)
                 : tr__actor_push_ctl_to(sys, to, env);
    if (rc != TR_OK) {
        tr__env_destroy(env);
    }
}

static tr_actor *
slot_of(tr_system *sys, uint64_t id)
{
    if (id == 0) {
        return NULL;
    }
    return tr__table_slot(sys->table, id);
}

static int
need_actor(const tr_ctx *ctx)
{
    if (ctx == NULL) {
        return TR_EINVAL;
    }
    return ctx->actor == NULL ? TR_ESTATE : TR_OK;
}

/* An actor's context, and an address `a` of its system. */
static int
need_actor_and(const tr_ctx *ctx, tr_addr a)
{
    int rc = need_actor(ctx);

    return rc != TR_OK ? rc : tr__addr_check(ctx->sys, a);
}

/* ---- monitors ---- */

/*
 * Record that the calling incarnation holds monitor `ref` of `target`.
 * True when it does, or when the caller is past its end's taking of the
 * lists (a `stop` in shutdown's last pass): then the target's end, or its
 * own, frees the DOWN, as before monitors were two-sided.
 */
static bool
hold(tr_ctx *ctx, tr_ext *x, uint64_t ref, uint64_t target)
{
    bool ok = true;

    pthread_mutex_lock(&x->lock);
    if (tr__ext_own_lists(ctx->actor, x, ctx->gen)) {
        ok = tr__sigtab_put(&x->watching, (tr_sigent){ref, target, NULL});
    }
    pthread_mutex_unlock(&x->lock);
    return ok;
}

/* The calling incarnation no longer holds monitor `ref` of `target`;
 * false when it did not. */
static bool
unhold(tr_ctx *ctx, uint64_t ref, uint64_t target)
{
    tr_ext *x = tr_load_acq(&ctx->actor->ext);
    bool had = false;

    if (x == NULL) {
        return false;
    }
    pthread_mutex_lock(&x->lock);
    if (x->gen == ctx->gen) {
        had = tr__sigtab_remove(&x->watching, ref, target);
    }
    pthread_mutex_unlock(&x->lock);
    return had;
}

/* Take monitor `ref` of `watcher` from incarnation `target` and free its
 * DOWN; nothing when the target has ended (its end took the DOWN). */
static void
drop_monitor(tr_system *sys, uint64_t ref, uint64_t target, uint64_t watcher)
{
    tr_actor *a = slot_of(sys, target);
    tr_ext *x = a != NULL ? tr_load_acq(&a->ext) : NULL;
    tr_envelope *down = NULL;

    if (x == NULL) {
        return; /* a monitor of an address that had ended */
    }
    pthread_mutex_lock(&x->lock);
    if (x->gen == tr__id_gen(target)) {
        down = tr__sigtab_take(&x->mons, ref, watcher);
    }
    pthread_mutex_unlock(&x->lock);
    if (down != NULL) {
        tr__env_destroy(down);
    }
}

/* Take every monitor in `held` (taken from `watcher`'s record) from its
 * target, and free the table. */
static void
drop_held(tr_system *sys, tr_sigtab *held, uint64_t watcher)
{
    for (uint32_t i = 0; i < held->cap; i++) {
        const tr_sigent *h = &held->slots[i];
        if (h->key != 0) {
            drop_monitor(sys, h->key, h->to, watcher);
        }
    }
    tr__sigtab_fini(held);
}

int
tr_monitor(tr_ctx *ctx, tr_addr target, uint64_t *ref)
{
    int rc = need_actor_and(ctx, target);

    if (rc != TR_OK || ref == NULL) {
        return rc != TR_OK ? rc : TR_EINVAL;
    }
    tr_system *sys = ctx->sys;
    tr_ext *own = tr__ext_get(ctx->actor);
    tr_envelope *down = own != NULL ? tr__signal_create() : NULL;
    if (down == NULL) {
        return TR_ENOMEM;
    }
    uint64_t seq = tr_faa_relaxed(&sys->next_ref, 1) + 1;
    tr_actor *a = slot_of(sys, target.id);
    /* The target's slot index rides in the reference, for tr_demonitor. */
    uint64_t r = (seq << 32) | tr__id_index(target.id);
    /* Our side first: only we touch it, so the target's end cannot race
     * it, and a DOWN sent at once finds it when it is dispatched. */
    if (!hold(ctx, own, r, target.id)) {
        tr__env_destroy(down);
        return TR_ENOMEM;
    }
    if (a != NULL) {
        tr_ext *x = tr__ext_get(a);
        bool added = false;
        if (x == NULL) {
            rc = TR_ENOMEM;
        } else {
            pthread_mutex_lock(&x->lock);
            if (tr__ext_own_lists(a, x, tr__id_gen(target.id))) {
                added = true;
                if (!tr__sigtab_put(&x->mons,
                                    (tr_sigent){r, ctx->self, down})) {
                    rc = TR_ENOMEM;
                }
            }
            pthread_mutex_unlock(&x->lock);
        }
        if (rc != TR_OK) {
            (void)unhold(ctx, r, target.id);
            tr__env_destroy(down);
            return rc;
        }
        if (added) {
            *ref = r;
            return TR_OK;
        }
    }
    const tr_exit gone = {TR_EXIT_NOACTOR, TR_ENOACTOR, "no such actor"};
    send_signal(sys, down, ctx->self, TR_CTL_USER, TR_MSG_DOWN, target.id, r,
                &gone);
    *ref = r;
    return TR_OK;
}

int
tr_demonitor(tr_ctx *ctx, uint64_t ref)
{
    int rc = need_actor(ctx);

    if (rc != TR_OK) {
        return rc;
    }
    uint32_t index = (uint32_t)ref;
    if (index >= tr__table_len(ctx->sys->table)) {
        return TR_ENOTFOUND;
    }
    tr_ext *x = tr_load_acq(&tr__table_at(ctx->sys->table, index)->ext);
    if (x == NULL) {
        return TR_ENOTFOUND;
    }
    pthread_mutex_lock(&x->lock);
    /* An entry in the lists belongs to incarnation x->gen. */
    uint64_t target = tr__addr_id(x->gen, index);
    tr_envelope *down = tr__sigtab_take(&x->mons, ref, ctx->self);
    pthread_mutex_unlock(&x->lock);
    if (down == NULL) {
        /* Never ours, or its DOWN is on its way (which takes our record
         * when it is dispatched), or was delivered. */
        return TR_ENOTFOUND;
    }
    tr__env_destroy(down);
    (void)unhold(ctx, ref, target);
    return TR_OK;
}

bool
tr__ext_down_delivered(tr_ctx *ctx, tr_envelope *env)
{
    const tr_signal *sig = tr__env_data(env);

    return unhold(ctx, sig->ref, env->from);
}

void
tr__ext_drop_monitors(tr_ctx *ctx)
{
    tr_ext *x = tr_load_acq(&ctx->actor->ext);
    tr_sigtab held = {0};

    /* Only the run-right's holder, the caller, adds to `watching` or takes
     * from it, so it reads the count without the lock: the restart of an
     * actor that holds no monitors, most of them, takes no lock here. */
    if (x == NULL || x->watching.len == 0) {
        return;
    }
    pthread_mutex_lock(&x->lock);
    if (x->gen == ctx->gen) {
        held = x->watching;
        x->watching = (tr_sigtab){0};
    }
    pthread_mutex_unlock(&x->lock);
    drop_held(ctx->sys, &held, ctx->self);
}

/* ---- links ---- */

/*
 * Add `peer` to incarnation `gen`'s links with the EXIT `*exit` (taken:
 * `*exit` becomes NULL; when the link exists already, it stays the
 * caller's). TR_ENOACTOR when the incarnation is gone.
 */
static int
link_add(tr_actor *a, uint64_t gen, uint64_t peer, tr_envelope **exit)
{
    tr_ext *x = tr__ext_get(a);
    int rc = TR_OK;

    if (x == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_lock(&x->lock);
    if (!tr__ext_own_lists(a, x, gen)) {
        rc = TR_ENOACTOR;
    } else if (tr__sigtab_find(&x->links, peer, peer) == NULL) {
        if (tr__sigtab_put(&x->links, (tr_sigent){peer, peer, *exit})) {
            *exit = NULL;
        } else {
            rc = TR_ENOMEM;
        }
    }
    pthread_mutex_unlock(&x->lock);
    return rc;
}

/* Remove `peer` from incarnation `gen`'s links; the EXIT it held, for the
 * caller to free (NULL when there was no such link). */
static tr_envelope *
link_remove(tr_actor *a, uint64_t gen, uint64_t peer)
{
    tr_ext *x = tr_load_acq(&a->ext);
    tr_envelope *exit = NULL;

    if (x == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&x->lock);
    if (x->gen == gen) {
        exit = tr__sigtab_take(&x->links, peer, peer);
    }
    pthread_mutex_unlock(&x->lock);
    return exit;
}

static void
destroy_signal(tr_envelope *env)
{
    if (env != NULL) {
        tr__env_destroy(env);
    }
}

int
tr_link(tr_ctx *ctx, tr_addr other)
{
    int rc = need_actor_and(ctx, other);

    if (rc != TR_OK) {
        return rc;
    }
    if (other.id == ctx->self || other.id == 0) {
        return TR_EINVAL;
    }
    /* Our side's EXIT for `other`, and its side's for us (which also
     * carries the news if it has ended already). */
    tr_envelope *ours = tr__signal_create();
    tr_envelope *theirs = tr__signal_create();
    if (ours == NULL || theirs == NULL) {
        destroy_signal(ours);
        destroy_signal(theirs);
        return TR_ENOMEM;
    }
    rc = link_add(ctx->actor, ctx->gen, other.id, &ours);
    if (rc == TR_OK) {
        tr_actor *peer = slot_of(ctx->sys, other.id);
        rc = peer != NULL
                 ? link_add(peer, tr__id_gen(other.id), ctx->self, &theirs)
                 : TR_ENOACTOR;
        if (rc != TR_OK) {
            destroy_signal(link_remove(ctx->actor, ctx->gen, other.id));
        }
    }
    destroy_signal(ours); /* NULL unless unused */
    if (rc == TR_ENOACTOR && theirs != NULL) {
        const tr_exit gone = {TR_EXIT_NOACTOR, TR_ENOACTOR, "no such actor"};
        send_signal(ctx->sys, theirs, ctx->self, TR_CTL_LINK, TR_MSG_EXIT,
                    other.id, 0, &gone);
        return TR_OK;
    }
    destroy_signal(theirs);
    return rc;
}

int
tr_unlink(tr_ctx *ctx, tr_addr other)
{
    int rc = need_actor_and(ctx, other);

    if (rc != TR_OK) {
        return rc;
    }
    destroy_signal(link_remove(ctx->actor, ctx->gen, other.id));
    tr_actor *peer = slot_of(ctx->sys, other.id);
    if (peer != NULL) {
        destroy_signal(link_remove(peer, tr__id_gen(other.id), ctx->self));
    }
    return TR_OK;
}

int
tr_trap_exits(tr_ctx *ctx, bool on)
{
    int rc = need_actor(ctx);

    if (rc != TR_OK) {
        return rc;
    }
    tr_ext *x = tr__ext_get(ctx->actor);
    if (x == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_lock(&x->lock);
    if (tr__ext_own_lists(ctx->actor, x, ctx->gen)) {
        x->trap_exit = on;
    }
    pthread_mutex_unlock(&x->lock);
    return TR_OK;
}

int
tr__ext_mark_supervisor(tr_ctx *ctx)
{
    tr_ext *x = tr__ext_get(ctx->actor);

    if (x == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_lock(&x->lock);
    if (tr__ext_own_lists(ctx->actor, x, ctx->gen)) {
        x->supervisor = true;
    }
    pthread_mutex_unlock(&x->lock);
    return TR_OK;
}

bool
tr__ext_is_other_than_supervisor(tr_actor *a, uint64_t gen)
{
    /* Acquire: pairs with the record's installation (tr__ext_get). */
    tr_ext *x = tr_load_acq(&a->ext);
    bool other;

    /* seq_cst: as own_lists, against the end's generation store. */
    if (!tr__gen_live(gen) || tr_load_seqcst(&a->gen) != gen) {
        return false; /* gone: the caller's send says so */
    }
    if (x == NULL) {
        return true; /* a supervisor has a record from its init on */
    }
    pthread_mutex_lock(&x->lock);
    other = !(x->gen == gen && x->supervisor);
    pthread_mutex_unlock(&x->lock);
    /* It may have ended meanwhile (the end clears the flag): then it is
     * gone rather than something else. */
    return other && tr_load_seqcst(&a->gen) == gen;
}

/* ---- the end of an incarnation ---- */

tr_waiter *
tr__ext_on_end(tr_ctx *ctx, tr_actor *a, uint64_t gen, const tr_exit *exit)
{
    /* seq_cst: see the top comment. */
    tr_ext *x = tr_load_seqcst(&a->ext);

    if (x == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&x->lock);
    if (x->gen != gen) {
        pthread_mutex_unlock(&x->lock);
        return NULL; /* nothing was ever added for this incarnation */
    }
    tr_sigtab mons = x->mons;
    tr_sigtab links = x->links;
    tr_sigtab held = x->watching;
    char *name = x->name;
    tr_waiter *waiters = x->waiters;
    uint64_t *muted = x->muted;
    uint32_t nmuted = x->nmuted, capmuted = x->capmuted;
    x->waiters = NULL;
    x->muted = NULL;
    x->nmuted = x->capmuted = 0;
    x->mons = (tr_sigtab){0};
    x->links = (tr_sigtab){0};
    x->watching = (tr_sigtab){0};
    x->name = NULL;
    x->gen = 0;
    x->trap_exit = false;
    x->supervisor = false;
    pthread_mutex_unlock(&x->lock);

    tr_system *sys = ctx->sys;
    uint64_t self = tr__addr_id(gen, a->index);
    /* Nobody waits for an ended actor to catch up. */
    tr__unmute_list(sys, muted, nmuted, capmuted);
    if (name != NULL) {
        tr__names_release(sys->names, name, self);
    }
    /* Our monitors of others end with us (a DOWN of one that their ends
     * sent meanwhile finds us gone, and is freed). */
    drop_held(sys, &held, self);
    for (uint32_t i = 0; i < mons.cap; i++) {
        const tr_sigent *m = &mons.slots[i];
        if (m->key != 0) {
            send_signal(sys, m->env, m->to, TR_CTL_USER, TR_MSG_DOWN, self,
                        m->key, exit);
        }
    }
    for (uint32_t i = 0; i < links.cap; i++) {
        const tr_sigent *l = &links.slots[i];
        if (l->key == 0) {
            continue;
        }
        tr_actor *peer = slot_of(sys, l->to);
        if (peer != NULL) {
            /* Its side's EXIT for us will never be sent. */
            destroy_signal(link_remove(peer, tr__id_gen(l->to), self));
        }
        send_signal(sys, l->env, l->to, TR_CTL_LINK, TR_MSG_EXIT, self, 0,
                    exit);
    }
    tr__sigtab_fini(&mons);
    tr__sigtab_fini(&links);
    return waiters;
}

void
tr__ext_wake_waiters(tr_system *sys, tr_waiter *waiters, uint64_t self,
                     const tr_exit *exit)
{
    if (waiters == NULL) {
        return;
    }
    while (waiters != NULL) {
        tr_waiter *next = waiters->next; /* read before `done` */
        tr__signal_fill(&waiters->sig, tr__addr(sys, self), 0, exit);
        /* Release: the waiter reads `sig` after acquiring `done`, and may
         * return (freeing `waiters`) at once. */
        tr_store_rel(&waiters->done, 1);
        waiters = next;
    }
    tr__ec_wake(&sys->ended);
}

void
tr__ext_monitor_counts(tr_system *sys, tr_addr who, uint32_t *on,
                       uint32_t *held)
{
    tr_actor *a = slot_of(sys, who.id);
    tr_ext *x = a != NULL ? tr_load_acq(&a->ext) : NULL;

    *on = *held = 0;
    if (x != NULL) {
        pthread_mutex_lock(&x->lock);
        *on = x->mons.len;
        *held = x->watching.len;
        pthread_mutex_unlock(&x->lock);
    }
}

/* ---- waiting for an actor from a thread ---- */

/* Under x->lock: take `w` off the list; false when the ender has it. */
static bool
unlist_waiter(tr_ext *x, tr_waiter *w)
{
    for (tr_waiter **p = &x->waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return true;
        }
    }
    return false;
}

static int
wait_for_end(tr_system *sys, tr_addr who, tr_timeout timeout, tr_signal *out)
{
    tr_actor *a = tr__table_slot(sys->table, who.id);
    tr_ext *x;
    tr_waiter w;
    /* A simulation waits on its virtual clock, taking steps. */
    bool sim = sys->sim != NULL;
    uint64_t deadline = tr_timeout_deadline_ns(
        sim ? tr__timers_now(sys->timers) : tr__now_ns(), timeout);

    if (a == NULL) {
        return TR_ENOACTOR;
    }
    if ((x = tr__ext_get(a)) == NULL) {
        return TR_ENOMEM;
    }
    memset(&w, 0, sizeof(w));
    tr_init_relaxed(&w.done, 0);
    pthread_mutex_lock(&x->lock);
    if (!tr__ext_own_lists(a, x, tr__id_gen(who.id))) {
        pthread_mutex_unlock(&x->lock);
        return TR_ENOACTOR;
    }
    w.next = x->waiters;
    x->waiters = &w;
    pthread_mutex_unlock(&x->lock);

    for (;;) {
        uint32_t seen = tr__ec_value(&sys->ended);
        uint64_t now;
        /* Acquire: pairs with the ender's release; `w.sig` is filled. */
        if (tr_load_acq(&w.done) != 0) {
            if (out != NULL) {
                *out = w.sig;
            }
            return TR_OK;
        }
        now = sim ? tr__timers_now(sys->timers) : tr__now_ns();
        int stuck = TR_OK;
        if (sim && now < deadline) {
            stuck = tr__sim_wait_step(sys, deadline);
            if (stuck == TR_OK) {
                continue;
            }
        }
        if (now >= deadline || stuck != TR_OK) {
            pthread_mutex_lock(&x->lock);
            bool mine = unlist_waiter(x, &w);
            pthread_mutex_unlock(&x->lock);
            if (mine) {
                return stuck != TR_OK ? stuck : TR_ETIMEDOUT;
            }
            continue; /* the ender has it: `done` comes next */
        }
        uint64_t left =
            deadline == UINT64_MAX ? 0 : (deadline - now + 999999u) / 1000000u;
        tr__ec_wait_ms(&sys->ended, seen,
                       deadline == UINT64_MAX ? -1
                       : left > INT32_MAX     ? INT32_MAX
                                              : (int)left);
    }
}

int
tr_actor_wait(tr_ctx *ctx, tr_addr who, tr_timeout timeout, tr_signal *out)
{
    tr_system *sys;
    int rc;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (!tr__ctx_may_wait(ctx)) {
        return TR_ESTATE;
    }
    sys = ctx->sys;
    if ((rc = tr__sys_check(sys)) != TR_OK ||
        (rc = tr__addr_check(sys, who)) != TR_OK) {
        return rc;
    }
    /* Announce, then read the flag (both seq_cst): shutdown sets the flag,
     * then waits for `waiting` to drop to zero before it frees anything a
     * waiter touches. */
    tr_faa_seqcst(&sys->waiting, 1);
    rc = tr_load_seqcst(&sys->shutting_down)
             ? TR_ESHUTDOWN
             : wait_for_end(sys, who, timeout, out);
    tr_fas_seqcst(&sys->waiting, 1);
    return rc;
}
