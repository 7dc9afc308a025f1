/*
 * Process groups (OTP's pg).
 *
 * Groups live in one hash table per system, under one mutex: joins, leaves
 * and watches are administration, far rarer than messages, and one lock
 * keeps "a member that ends leaves every group" simple to get right. A
 * group holds its memberships in join order (an actor that joined twice is
 * listed twice) and its watchers; it is freed when it has neither.
 *
 * Both are lists ordered by a key that only grows (a membership's number
 * in its group, a watch's reference), so that a membership or watch is
 * found by binary search, not by scanning: ending leaves a hole that
 * readers skip, and the list is closed up when holes outnumber entries.
 * A mass end (shutdown, a tree that gave up) of n members costs n log n,
 * not n squared.
 *
 * Each actor that joins or watches gets one record, an exit hook of its
 * incarnation (actor.h): the record lists the groups it is in (with
 * counts) and the watches it made, and when the incarnation ends (or is
 * restarted in place) the hook undoes all of them, telling the watchers.
 * Only the actor itself registers and runs the hook, so finding it needs
 * no lock; the groups it points to stay alive while it is in them.
 *
 * A watch's events are messages of their own kind (TR_MSG_PG_EVENT): the
 * receiving actor's run hands one to its handler only while the record
 * still holds the watch (tr__pg_event_live), so tr_pg_demonitor and a
 * restart in place drop the events already queued, as OTP's demonitor
 * flushes them and a restarted process (a new pid) never gets them.
 *
 * Sending copies the payload once into a refcounted block; each member's
 * message is a small envelope of kind TR_MSG_SHARED pointing to it
 * (actor.c gives the handler the block's bytes and drops the reference
 * when the envelope goes).
 */
#include <troupe/pg.h>

#include "actors/actor.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <pthread.h>
#include <string.h>

enum { FIRST_BUCKETS = 64 };

/* A membership (key: its number in the group; id: the member) or a watch
 * (key: its reference; id: the watcher). Id 0, which no address has, is a
 * hole. */
typedef struct pg_entry {
    uint64_t key; /* first: the key (key_index) */
    uint64_t id;
} pg_entry;

/* Entries by key, ascending; `live` of the `n` are not holes. */
typedef struct pg_list {
    pg_entry *e;
    uint32_t n, cap, live;
} pg_list;

typedef struct pg_group {
    struct pg_group *next; /* hash chain */
    uint64_t hash;
    char name[TR_PG_NAME_MAX + 1];
    pg_list members;   /* in join order */
    pg_list watches;   /* in the order they were made */
    uint64_t next_seq; /* the key of the next membership */
    bool ending;       /* under the lock: rec_end's mark, clear otherwise */
} pg_group;

struct tr_pgs {
    pthread_mutex_t lock;
    pg_group **buckets;
    uint32_t nbuckets;
    uint32_t ngroups;
};

/* An actor's memberships of one group: their keys, oldest first. */
typedef struct pg_join {
    pg_group *g;
    uint64_t *seqs;
    uint32_t count, cap;
} pg_join;

typedef struct pg_mywatch {
    uint64_t ref; /* first: the key (key_index) */
    pg_group *g;
} pg_mywatch;

/* One actor incarnation's memberships and watches (its exit hook); the
 * watches by reference, ascending (each is newer than the last), so that
 * an event's watch is found by binary search in an actor that watches
 * many groups. */
typedef struct pg_rec {
    tr_exit_hook hook;
    pg_join *joins;
    uint32_t njoin, capjoin;
    pg_mywatch *watches;
    uint32_t nwatch, capwatch;
} pg_rec;

/* ---- the table ---- */

static uint64_t
hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return h;
}

static bool
valid_group(const char *name)
{
    size_t len = name != NULL ? strnlen(name, TR_PG_NAME_MAX + 1) : 0;
    return len > 0 && len <= TR_PG_NAME_MAX;
}

int
tr__pgs_create(tr_pgs **out)
{
    tr_pgs *p = tr__calloc(sizeof(*p));

    if (p == NULL) {
        return TR_ENOMEM;
    }
    p->buckets = tr__calloc(sizeof(pg_group *) * FIRST_BUCKETS);
    if (p->buckets == NULL) {
        tr__free(p, sizeof(*p));
        return TR_ENOMEM;
    }
    p->nbuckets = FIRST_BUCKETS;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return TR_OK;
}

/* ---- ordered lists with holes ---- */

/* The index of the first of the `n` elements of `stride` bytes at `base`,
 * ascending by the 64-bit key each starts with, whose key is not below
 * `key`; n when there is none. */
static uint32_t
key_index(const void *base, uint32_t n, size_t stride, uint64_t key)
{
    uint32_t lo = 0;
    uint32_t hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint64_t k;
        memcpy(&k, (const char *)base + stride * mid, sizeof(k));
        if (k < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Room for one more entry at the end; false when out of memory. */
static bool
list_reserve(pg_list *l)
{
    return l->n < l->cap ||
           tr__grow((void **)&l->e, &l->cap, sizeof(pg_entry), 8);
}

/* Append, after list_reserve; `key` is above every key in `l`. */
static void
list_append(pg_list *l, uint64_t key, uint64_t id)
{
    l->e[l->n++] = (pg_entry){key, id};
    l->live++;
}

/* Close up the holes; into a smaller array when most of it is unused
 * (the old one, closed up in place, when that allocation fails). */
static void
list_compact(pg_list *l)
{
    uint32_t cap = l->live * 2 > 8 ? l->live * 2 : 8;
    pg_entry *to = l->e;

    if (cap < l->cap / 2) {
        pg_entry *smaller = tr__alloc(sizeof(pg_entry) * cap);
        if (smaller != NULL) {
            to = smaller;
        }
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->e[i].id != 0) {
            to[k++] = l->e[i];
        }
    }
    if (to != l->e) {
        tr__free(l->e, sizeof(pg_entry) * l->cap);
        l->e = to;
        l->cap = cap;
    }
    l->n = k;
}

/* Remove the entry with `key`, if there is one: a hole, closed up once
 * holes are the majority, so that removals cost log n amortised. */
static void
list_remove(pg_list *l, uint64_t key)
{
    uint32_t lo = key_index(l->e, l->n, sizeof(pg_entry), key);

    if (lo == l->n || l->e[lo].key != key || l->e[lo].id == 0) {
        return;
    }
    l->e[lo].id = 0;
    l->live--;
    if (l->live == 0) {
        l->n = 0;
    } else if (l->n > 16 && l->live < l->n / 2) {
        list_compact(l);
    }
}

/* Under the lock: the first `cap` live entries' ids, as addresses. */
static void
list_addrs(tr_system *sys, const pg_list *l, tr_addr *out, size_t cap)
{
    size_t k = 0;

    for (uint32_t i = 0; i < l->n && k < cap; i++) {
        if (l->e[i].id != 0) {
            out[k++] = tr__addr(sys, l->e[i].id);
        }
    }
}

static void
list_free(pg_list *l)
{
    tr__free(l->e, sizeof(pg_entry) * l->cap);
}

static void
free_group(pg_group *g)
{
    list_free(&g->members);
    list_free(&g->watches);
    tr__free(g, sizeof(*g));
}

void
tr__pgs_destroy(tr_pgs *p)
{
    /* Every actor has ended by now, and its hook emptied its groups; this
     * frees what an out-of-memory path may have left. */
    for (uint32_t i = 0; i < p->nbuckets; i++) {
        pg_group *g = p->buckets[i];
        while (g != NULL) {
            pg_group *next = g->next;
            free_group(g);
            g = next;
        }
    }
    tr__free(p->buckets, sizeof(pg_group *) * p->nbuckets);
    pthread_mutex_destroy(&p->lock);
    tr__free(p, sizeof(*p));
}

/* Under the lock. */
static pg_group *
find_group(tr_pgs *p, const char *name, uint64_t h)
{
    for (pg_group *g = p->buckets[h & (p->nbuckets - 1)]; g != NULL;
         g = g->next) {
        if (g->hash == h && strcmp(g->name, name) == 0) {
            return g;
        }
    }
    return NULL;
}

/* Under the lock: double the buckets when chains grow long (a failed
 * allocation keeps the old ones: slower, still correct). */
static void
maybe_grow(tr_pgs *p)
{
    uint32_t n = p->nbuckets * 2;
    pg_group **b;

    if (p->ngroups <= 2 * p->nbuckets || n == 0 ||
        (b = tr__calloc(sizeof(pg_group *) * n)) == NULL) {
        return;
    }
    for (uint32_t i = 0; i < p->nbuckets; i++) {
        pg_group *g = p->buckets[i];
        while (g != NULL) {
            pg_group *next = g->next;
            g->next = b[g->hash & (n - 1)];
            b[g->hash & (n - 1)] = g;
            g = next;
        }
    }
    tr__free(p->buckets, sizeof(pg_group *) * p->nbuckets);
    p->buckets = b;
    p->nbuckets = n;
}

/* Under the lock: the group, created when `create`; NULL when absent or
 * out of memory. */
static pg_group *
get_group(tr_pgs *p, const char *name, bool create)
{
    uint64_t h = hash_name(name);
    pg_group *g = find_group(p, name, h);

    if (g != NULL || !create) {
        return g;
    }
    g = tr__calloc(sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->hash = h;
    memcpy(g->name, name, strlen(name) + 1);
    g->next = p->buckets[h & (p->nbuckets - 1)];
    p->buckets[h & (p->nbuckets - 1)] = g;
    p->ngroups++;
    maybe_grow(p);
    return g;
}

/* Under the lock: free `g` if nobody is in it or watches it. */
static void
maybe_drop_group(tr_pgs *p, pg_group *g)
{
    if (g->members.live != 0 || g->watches.live != 0) {
        return;
    }
    for (pg_group **at = &p->buckets[g->hash & (p->nbuckets - 1)]; *at != NULL;
         at = &(*at)->next) {
        if (*at == g) {
            *at = g->next;
            p->ngroups--;
            free_group(g);
            return;
        }
    }
}

/* Under the lock: tell `g`'s watchers that `who` joined or left. A watcher
 * that is out of memory misses the event (as a DOWN would be). */
static void
notify(tr_system *sys, pg_group *g, uint32_t type, uint64_t who)
{
    for (uint32_t i = 0; i < g->watches.n; i++) {
        const pg_entry *w = &g->watches.e[i];
        if (w->id == 0) {
            continue;
        }
        tr_envelope *env = tr__env_create(sizeof(tr_pg_event));
        if (env == NULL) {
            continue;
        }
        tr_pg_event *e = tr__env_data(env);
        memset(e, 0, sizeof(*e));
        e->ref = w->key;
        e->who = tr__addr(sys, who);
        memcpy(e->group, g->name, sizeof(e->group));
        env->type = type;
        env->from = who;
        if (tr__actor_push_user_to(sys, w->id, env, TR_MSG_PG_EVENT) != TR_OK) {
            tr__env_destroy(env);
        }
    }
}

/* ---- an actor's record ---- */

static void rec_end(tr_exit_hook *h, tr_ctx *ctx);

/* The calling incarnation's record, created when `create`. */
static pg_rec *
my_rec(tr_ctx *ctx, bool create)
{
    for (tr_exit_hook *h = ctx->actor->exits; h != NULL; h = h->next) {
        if (h->fn == rec_end) {
            return tr_container_of(h, pg_rec, hook);
        }
    }
    if (!create) {
        return NULL;
    }
    pg_rec *r = tr__calloc(sizeof(*r));
    if (r != NULL) {
        r->hook.fn = rec_end;
        tr__actor_on_exit(ctx, &r->hook);
    }
    return r;
}

static void
free_rec(pg_rec *r)
{
    for (uint32_t i = 0; i < r->njoin; i++) {
        tr__free(r->joins[i].seqs, sizeof(uint64_t) * r->joins[i].cap);
    }
    tr__free(r->joins, sizeof(pg_join) * r->capjoin);
    tr__free(r->watches, sizeof(pg_mywatch) * r->capwatch);
    tr__free(r, sizeof(*r));
}

/* Under the lock: end `j`'s latest membership and tell the watchers. */
static void
leave_once(tr_system *sys, pg_join *j, uint64_t who)
{
    list_remove(&j->g->members, j->seqs[--j->count]);
    notify(sys, j->g, TR_MSG_PG_LEAVE, who);
}

/* The group of `r`'s i-th watch, then of its joins. */
static pg_group **
rec_group(pg_rec *r, uint32_t i)
{
    return i < r->nwatch ? &r->watches[i].g : &r->joins[i - r->nwatch].g;
}

/* The incarnation ended (or is restarted in place): leave every group,
 * end every watch. */
static void
rec_end(tr_exit_hook *h, tr_ctx *ctx)
{
    pg_rec *r = tr_container_of(h, pg_rec, hook);
    tr_system *sys = ctx->sys;
    tr_pgs *p = sys->pgs;

    pthread_mutex_lock(&p->lock);
    for (uint32_t i = 0; i < r->nwatch; i++) {
        list_remove(&r->watches[i].g->watches, r->watches[i].ref);
    }
    for (uint32_t i = 0; i < r->njoin; i++) {
        while (r->joins[i].count != 0) {
            leave_once(sys, &r->joins[i], ctx->self);
        }
    }
    /* Only now, and each group once (one may be both joined and watched,
     * or watched twice): a group left with no member and no watcher goes.
     * The mark keeps the first pointer to each group and clears the rest,
     * before any group is freed: linear in the groups, however many. */
    uint32_t all = r->nwatch + r->njoin;
    for (uint32_t i = 0; i < all; i++) {
        (*rec_group(r, i))->ending = true;
    }
    for (uint32_t i = 0; i < all; i++) {
        pg_group **g = rec_group(r, i);
        if ((*g)->ending) {
            (*g)->ending = false;
        } else {
            *g = NULL;
        }
    }
    for (uint32_t i = 0; i < all; i++) {
        pg_group *g = *rec_group(r, i);
        if (g != NULL) {
            maybe_drop_group(p, g);
        }
    }
    pthread_mutex_unlock(&p->lock);
    free_rec(r);
}

/* The index of `r`'s watch `ref`, or r->nwatch when it has none. */
static uint32_t
find_watch(const pg_rec *r, uint64_t ref)
{
    uint32_t lo = key_index(r->watches, r->nwatch, sizeof(pg_mywatch), ref);

    return lo < r->nwatch && r->watches[lo].ref == ref ? lo : r->nwatch;
}

bool
tr__pg_event_live(tr_ctx *ctx, const void *event)
{
    const tr_pg_event *e = event;
    pg_rec *r = my_rec(ctx, false);

    return r != NULL && find_watch(r, e->ref) != r->nwatch;
}

static int
need_actor(const tr_ctx *ctx, const char *group)
{
    if (ctx == NULL || !valid_group(group)) {
        return TR_EINVAL;
    }
    return ctx->actor == NULL ? TR_ESTATE : TR_OK;
}

/* ---- the API ---- */

int
tr_pg_join(tr_ctx *ctx, const char *group)
{
    int rc = need_actor(ctx, group);
    pg_rec *r;
    tr_pgs *p;

    if (rc != TR_OK) {
        return rc;
    }
    if ((r = my_rec(ctx, true)) == NULL) {
        return TR_ENOMEM;
    }
    p = ctx->sys->pgs;
    pthread_mutex_lock(&p->lock);
    pg_group *g = get_group(p, group, true);
    pg_join *j = NULL;
    for (uint32_t i = 0; g != NULL && i < r->njoin; i++) {
        if (r->joins[i].g == g) {
            j = &r->joins[i];
        }
    }
    if (j == NULL && g != NULL && r->njoin == r->capjoin &&
        !tr__grow((void **)&r->joins, &r->capjoin, sizeof(pg_join), 4)) {
        g = NULL;
    }
    if (j == NULL && g != NULL) {
        j = &r->joins[r->njoin++];
        *j = (pg_join){.g = g};
    }
    if (g == NULL || !list_reserve(&g->members) ||
        (j->count == j->cap &&
         !tr__grow((void **)&j->seqs, &j->cap, sizeof(uint64_t), 1))) {
        if (j != NULL && j->count == 0) {
            tr__free(j->seqs, sizeof(uint64_t) * j->cap);
            *j = r->joins[--r->njoin];
        }
        if (g != NULL) {
            maybe_drop_group(p, g);
        }
        pthread_mutex_unlock(&p->lock);
        return TR_ENOMEM;
    }
    j->seqs[j->count++] = g->next_seq;
    list_append(&g->members, g->next_seq++, ctx->self);
    notify(ctx->sys, g, TR_MSG_PG_JOIN, ctx->self);
    pthread_mutex_unlock(&p->lock);
    return TR_OK;
}

int
tr_pg_leave(tr_ctx *ctx, const char *group)
{
    int rc = need_actor(ctx, group);
    pg_rec *r;
    tr_pgs *p;

    if (rc != TR_OK) {
        return rc;
    }
    if ((r = my_rec(ctx, false)) == NULL) {
        return TR_ENOTFOUND;
    }
    p = ctx->sys->pgs;
    rc = TR_ENOTFOUND;
    pthread_mutex_lock(&p->lock);
    for (uint32_t i = 0; i < r->njoin; i++) {
        pg_group *g = r->joins[i].g;
        if (strcmp(g->name, group) != 0) {
            continue;
        }
        leave_once(ctx->sys, &r->joins[i], ctx->self);
        if (r->joins[i].count == 0) {
            tr__free(r->joins[i].seqs, sizeof(uint64_t) * r->joins[i].cap);
            r->joins[i] = r->joins[--r->njoin];
            maybe_drop_group(p, g);
        }
        rc = TR_OK;
        break;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int
tr_pg_members(tr_system *sys, const char *group, tr_addr *out, size_t cap,
              size_t *n)
{
    bool entered;
    int rc;

    if (sys == NULL || !valid_group(group) || n == NULL ||
        (out == NULL && cap != 0)) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    tr_pgs *p = sys->pgs;
    pthread_mutex_lock(&p->lock);
    pg_group *g = get_group(p, group, false);
    size_t have = g != NULL ? g->members.live : 0;
    if (g != NULL) {
        list_addrs(sys, &g->members, out, cap);
    }
    pthread_mutex_unlock(&p->lock);
    if (entered) {
        tr__sys_leave(sys);
    }
    *n = have;
    return TR_OK;
}

/* tr_pg_send once entered: the count queued goes to `*queued`. */
static int
pg_send_entered(tr_ctx *ctx, const char *group, uint32_t type, const void *data,
                size_t size, size_t *queued)
{
    tr_system *sys = ctx->sys;
    uint64_t *ids = NULL;
    size_t n = 0;
    tr_shared *sh;
    int rc;

    if ((rc = tr__sys_check(sys)) != TR_OK) {
        return rc;
    }
    /* A snapshot of the members, so that no lock is held while sending. */
    tr_pgs *p = sys->pgs;
    pthread_mutex_lock(&p->lock);
    pg_group *g = get_group(p, group, false);
    if (g != NULL && g->members.live != 0) {
        n = g->members.live;
        ids = tr__alloc(sizeof(uint64_t) * n);
        for (uint32_t i = 0, k = 0; ids != NULL && k < n; i++) {
            if (g->members.e[i].id != 0) {
                ids[k++] = g->members.e[i].id;
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (n != 0 && ids == NULL) {
        return TR_ENOMEM;
    }
    sh = n != 0 ? tr__shared_create(data, (uint32_t)size) : NULL;
    if (n != 0 && sh == NULL) {
        tr__free(ids, sizeof(uint64_t) * n);
        return TR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        tr_envelope *env = tr__shared_envelope(sh, type);
        if (env == NULL) {
            rc = TR_ENOMEM; /* what was queued stays queued: `*sent` */
            break;
        }
        int drc = tr__actor_deliver(ctx, tr__addr(sys, ids[i]), env, false);
        if (drc == TR_OK) {
            (*queued)++;
            continue;
        }
        tr__shared_envelope_destroy(env);
        if (drc == TR_EFULL || drc == TR_ECLOSED) {
            tr__actor_count_dead(ctx, ids[i], type, TR_DEAD_FULL);
        } else if (drc == TR_ESHUTDOWN) {
            rc = drc;
            break;
        }
    }
    if (sh != NULL) {
        tr__shared_unref(sh);
    }
    tr__free(ids, sizeof(uint64_t) * n);
    return rc;
}

int
tr_pg_send(tr_ctx *ctx, const char *group, uint32_t type, const void *data,
           size_t size, size_t *sent)
{
    size_t queued = 0;
    int rc;

    if (ctx == NULL || !valid_group(group) || (data == NULL && size != 0) ||
        size > UINT32_MAX || type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    /* Entered before anything of the system is read, and the payload
     * copied: shutdown waits for a send that began before it. */
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    rc = pg_send_entered(ctx, group, type, data, size, &queued);
    tr__ctx_leave(ctx);
    if (sent != NULL) {
        *sent = queued;
    }
    return rc;
}

/* tr_pg_monitor, and with `n` tr_pg_monitor_members: the members are
 * read under the lock that adds the watch, so every membership is either
 * listed or heard of as an event, never both, never neither. */
static int
monitor(tr_ctx *ctx, const char *group, uint64_t *ref, tr_addr *out, size_t cap,
        size_t *n)
{
    int rc = need_actor(ctx, group);
    pg_rec *r;
    tr_pgs *p;

    if (rc != TR_OK || ref == NULL) {
        return rc != TR_OK ? rc : TR_EINVAL;
    }
    if ((r = my_rec(ctx, true)) == NULL) {
        return TR_ENOMEM;
    }
    p = ctx->sys->pgs;
    pthread_mutex_lock(&p->lock);
    if (n != NULL) {
        pg_group *have = get_group(p, group, false);
        *n = have != NULL ? have->members.live : 0;
        if (*n > cap) {
            pthread_mutex_unlock(&p->lock);
            return TR_EFULL;
        }
        if (have != NULL) {
            list_addrs(ctx->sys, &have->members, out, cap);
        }
    }
    pg_group *g = get_group(p, group, true);
    if (g == NULL || !list_reserve(&g->watches) ||
        (r->nwatch == r->capwatch &&
         !tr__grow((void **)&r->watches, &r->capwatch, sizeof(pg_mywatch),
                   4))) {
        if (g != NULL) {
            maybe_drop_group(p, g);
        }
        pthread_mutex_unlock(&p->lock);
        return TR_ENOMEM;
    }
    uint64_t id = tr_faa_relaxed(&ctx->sys->next_ref, 1) + 1;
    list_append(&g->watches, id, ctx->self);
    r->watches[r->nwatch++] = (pg_mywatch){id, g};
    pthread_mutex_unlock(&p->lock);
    *ref = id;
    return TR_OK;
}

int
tr_pg_monitor(tr_ctx *ctx, const char *group, uint64_t *ref)
{
    return monitor(ctx, group, ref, NULL, 0, NULL);
}

int
tr_pg_monitor_members(tr_ctx *ctx, const char *group, uint64_t *ref,
                      tr_addr *out, size_t cap, size_t *n)
{
    if (n == NULL || (out == NULL && cap != 0)) {
        return TR_EINVAL;
    }
    return monitor(ctx, group, ref, out, cap, n);
}

int
tr_pg_demonitor(tr_ctx *ctx, uint64_t ref)
{
    pg_rec *r;
    int rc = TR_ENOTFOUND;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    if ((r = my_rec(ctx, false)) == NULL) {
        return TR_ENOTFOUND;
    }
    tr_pgs *p = ctx->sys->pgs;
    pthread_mutex_lock(&p->lock);
    uint32_t i = find_watch(r, ref);
    if (i != r->nwatch) {
        pg_group *g = r->watches[i].g;
        list_remove(&g->watches, ref);
        memmove(&r->watches[i], &r->watches[i + 1],
                sizeof(pg_mywatch) * (--r->nwatch - i));
        maybe_drop_group(p, g);
        rc = TR_OK;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}
