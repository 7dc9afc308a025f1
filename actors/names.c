/*
 * The registry of names: one per system, mapping a name to the address id
 * of the actor registered under it (tr_register, tr_unregister,
 * tr_whereis).
 *
 * The table: open addressing with linear probing and tombstones, kept at
 * most half full, under a reader-writer lock. Lookups take the read side;
 * registering and releasing, which are rare, the write side. A rehash
 * drops the tombstones and sizes the table for the live names (at most a
 * quarter full), so that names taken and given back for ever keep it the
 * size of what is registered, not of everything that ever was.
 *
 * Two copies of each name. The table owns one (its key); the actor's
 * extension record owns the other (tr_ext.name), so that the end of the
 * incarnation, which finds the record and not the table slot, can release
 * it (tr__names_release, called from tr__ext_on_end).
 *
 * Registering against ending. tr_register takes the names lock, then the
 * record's lock (never the other way round), and adds the name only if
 * tr__ext_own_lists says, under the record's lock, that the incarnation
 * still lives. The ender moves the generation on before it takes the
 * record's lists under that lock (ext.c), so either the registration sees
 * the actor gone (TR_ENOACTOR) or the ender sees the name and releases
 * it: a name never outlives its actor. The release removes the name only
 * if it still names the ended id, so a name taken over meanwhile (after a
 * tr_unregister) is left alone.
 */
#include "actors/names.h"

#include "actors/ext.h"
#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <string.h>

enum { NAME_MAX_LEN = 63 };

typedef struct name_slot {
    char *key; /* owned; NULL empty; TOMB deleted */
    uint64_t id;
} name_slot;

struct tr_names {
    pthread_rwlock_t lock;
    name_slot *slots;
    size_t cap;  /* a power of two */
    size_t used; /* live keys and tombstones */
    size_t live; /* live keys */
};

static char tomb;
#define TOMB (&tomb)

int
tr__names_create(tr_names **out)
{
    tr_names *n = tr__calloc(sizeof(*n));

    if (n == NULL) {
        return TR_ENOMEM;
    }
    pthread_rwlock_init(&n->lock, NULL);
    *out = n;
    return TR_OK;
}

static void
free_key(char *key)
{
    if (key != NULL && key != TOMB) {
        tr__free(key, strlen(key) + 1);
    }
}

void
tr__names_destroy(tr_names *n)
{
    for (size_t i = 0; i < n->cap; i++) {
        free_key(n->slots[i].key);
    }
    tr__free(n->slots, sizeof(name_slot) * n->cap);
    pthread_rwlock_destroy(&n->lock);
    tr__free(n, sizeof(*n));
}

static uint64_t
hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return h;
}

/* The slot holding `key`, or NULL. */
static name_slot *
find(tr_names *n, const char *key)
{
    if (n->cap == 0) {
        return NULL;
    }
    for (size_t i = hash(key) & (n->cap - 1);; i = (i + 1) & (n->cap - 1)) {
        name_slot *s = &n->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->key != TOMB && strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

/* Put a key known to be absent; the table has room. */
static void
put(name_slot *slots, size_t cap, char *key, uint64_t id)
{
    size_t i = hash(key) & (cap - 1);

    while (slots[i].key != NULL && slots[i].key != TOMB) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = (name_slot){key, id};
}

static int
make_room(tr_names *n)
{
    if ((n->used + 1) * 2 <= n->cap) {
        return TR_OK;
    }
    size_t ncap = 16;
    while ((n->live + 1) * 4 > ncap) {
        ncap *= 2;
    }
    name_slot *ns = tr__calloc(sizeof(name_slot) * ncap);
    if (ns == NULL) {
        return TR_ENOMEM;
    }
    size_t used = 0;
    for (size_t i = 0; i < n->cap; i++) {
        char *k = n->slots[i].key;
        if (k != NULL && k != TOMB) {
            put(ns, ncap, k, n->slots[i].id);
            used++;
        }
    }
    tr__free(n->slots, sizeof(name_slot) * n->cap);
    n->slots = ns;
    n->cap = ncap;
    n->used = used;
    return TR_OK;
}

static char *
copy_name(const char *name)
{
    size_t len = strlen(name) + 1;
    char *c = tr__alloc(len);

    if (c != NULL) {
        memcpy(c, name, len);
    }
    return c;
}

static bool
valid_name(const char *name)
{
    size_t len = name != NULL ? strnlen(name, NAME_MAX_LEN + 1) : 0;
    return len > 0 && len <= NAME_MAX_LEN;
}

/* tr_register once entered. */
static int
register_entered(tr_system *sys, const char *name, tr_addr who)
{
    if (tr__addr_check(sys, who) != TR_OK) {
        return TR_EFOREIGN;
    }
    tr_names *n = sys->names;
    tr_actor *a = who.id != 0 ? tr__table_slot(sys->table, who.id) : NULL;
    /* No record for an address that names no live actor (the check under
     * the lock below is the one that decides). */
    if (a != NULL && (!tr__gen_live(tr__id_gen(who.id)) ||
                      tr_load_acq(&a->gen) != tr__id_gen(who.id))) {
        a = NULL;
    }
    tr_ext *x = a != NULL ? tr__ext_get(a) : NULL;
    char *key = copy_name(name);
    char *own = copy_name(name);
    int rc = TR_OK;

    if (a == NULL) {
        rc = TR_ENOACTOR;
    } else if (x == NULL || key == NULL || own == NULL) {
        rc = TR_ENOMEM;
    }
    if (rc != TR_OK) {
        free_key(key);
        free_key(own);
        return rc;
    }
    /* Lock order: names, then a record (the ender takes them apart). */
    pthread_rwlock_wrlock(&n->lock);
    pthread_mutex_lock(&x->lock);
    name_slot *have = find(n, name);
    if (have != NULL) {
        /* Its own name already (say, registered again by `init` after a
         * restart in place): nothing to do. */
        rc = have->id == who.id ? TR_OK : TR_EEXIST;
    } else if (!tr__ext_own_lists(a, x, tr__id_gen(who.id))) {
        rc = TR_ENOACTOR;
    } else if (x->name != NULL) {
        rc = TR_EALREADY;
    } else if ((rc = make_room(n)) == TR_OK) {
        put(n->slots, n->cap, key, who.id);
        n->used++;
        n->live++;
        x->name = own;
        key = own = NULL;
    }
    pthread_mutex_unlock(&x->lock);
    pthread_rwlock_unlock(&n->lock);
    free_key(key);
    free_key(own);
    return rc;
}

int
tr_register(tr_ctx *ctx, const char *name, tr_addr who)
{
    int rc;

    if (ctx == NULL || !valid_name(name)) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    rc = register_entered(ctx->sys, name, who);
    tr__ctx_leave(ctx);
    return rc;
}

/* Remove `name` if it names `id` (any id when 0); the id it named. */
static uint64_t
names_remove(tr_names *n, const char *name, uint64_t id)
{
    uint64_t was = 0;

    pthread_rwlock_wrlock(&n->lock);
    name_slot *s = find(n, name);
    if (s != NULL && (id == 0 || s->id == id)) {
        was = s->id;
        free_key(s->key);
        s->key = TOMB;
        n->live--;
    }
    pthread_rwlock_unlock(&n->lock);
    return was;
}

void
tr__names_release(tr_names *n, char *name, uint64_t id)
{
    (void)names_remove(n, name, id);
    free_key(name);
}

/* tr_unregister once entered. */
static int
unregister_entered(tr_system *sys, const char *name)
{
    uint64_t id = names_remove(sys->names, name, 0);
    if (id == 0) {
        return TR_ENOTFOUND;
    }
    /* Forget it on the actor's side too, unless it is a new name there. */
    tr_actor *a = tr__table_slot(sys->table, id);
    tr_ext *x = a != NULL ? tr_load_acq(&a->ext) : NULL;
    if (x != NULL) {
        pthread_mutex_lock(&x->lock);
        if (x->gen == tr__id_gen(id) && x->name != NULL &&
            strcmp(x->name, name) == 0) {
            free_key(x->name);
            x->name = NULL;
        }
        pthread_mutex_unlock(&x->lock);
    }
    return TR_OK;
}

int
tr_unregister(tr_ctx *ctx, const char *name)
{
    int rc;

    if (ctx == NULL || !valid_name(name)) {
        return TR_EINVAL;
    }
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    rc = unregister_entered(ctx->sys, name);
    tr__ctx_leave(ctx);
    return rc;
}

size_t
tr__names_cap(tr_names *n)
{
    pthread_rwlock_rdlock(&n->lock);
    size_t cap = n->cap;
    pthread_rwlock_unlock(&n->lock);
    return cap;
}

int
tr_whereis(tr_system *sys, const char *name, tr_addr *out)
{
    bool entered;
    int rc;

    if (sys == NULL || out == NULL || !valid_name(name)) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    tr_names *n = sys->names;
    rc = TR_ENOTFOUND;
    pthread_rwlock_rdlock(&n->lock);
    name_slot *s = find(n, name);
    /* An incarnation's end releases its name a moment after it moved the
     * generation on: a name whose actor has ended is not found, as the
     * actor is not (tr_actor_stats_get, a send). */
    tr_actor *a = s != NULL ? tr__table_slot(sys->table, s->id) : NULL;
    if (a != NULL && tr_load_acq(&a->gen) == tr__id_gen(s->id)) {
        *out = tr__addr(sys, s->id);
        rc = TR_OK;
    }
    pthread_rwlock_unlock(&n->lock);
    if (entered) {
        tr__sys_leave(sys);
    }
    return rc;
}
