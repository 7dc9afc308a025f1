/*
 * The registry: every connection's name and room, and the room table.
 *
 * One actor holds all of it, so names are unique and counts exact
 * without any lock: a connection asks (HELLO, RENAME, JOIN, ROOMS,
 * USERS) and pauses its input until the answer comes. The registry
 * monitors each connection: its DOWN (after /quit, a disconnect, a crash
 * or a kill alike) takes it out of its room ("<Name> left") and frees its
 * name.
 *
 * Rooms. A room is created by the first JOIN that names it: a record
 * here, a broadcast channel, and a room actor started under /chat/rooms
 * through the spawner (JOINs wait meanwhile). It is removed when its
 * last member leaves: its actor is told to stop, and its channel is
 * destroyed once the actor's DOWN arrives. The channel belongs to the
 * record, so a room actor restarted in place keeps it.
 *
 * Channel handles. A joiner gets its own handle on the room's channel
 * (a clone) in the answer; it subscribes, destroys the handle and says
 * REG_SUBSCRIBED. Until then the registry remembers the handle: if the
 * joiner ends first (its DOWN comes after anything it sent), the
 * registry destroys the handle for it, so no channel is ever kept open
 * by a handle nobody holds.
 */
#include "chat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 128 adjectives and 128 animals of 4 to 6 letters: every name is 8 to
 * 12 characters, and 16,384 are possible. */
static const char *const adjectives[] = {
    "Able",   "Agile",  "Airy",   "Alert",  "Amber",  "Ample",  "Azure",
    "Balmy",  "Bold",   "Brave",  "Brisk",  "Bright", "Busy",   "Calm",
    "Candid", "Caring", "Chic",   "Civil",  "Clean",  "Clear",  "Clever",
    "Cool",   "Cosy",   "Crisp",  "Curly",  "Cute",   "Daring", "Dandy",
    "Dapper", "Deft",   "Eager",  "Early",  "Easy",   "Epic",   "Exact",
    "Fair",   "Fancy",  "Fast",   "Fine",   "Firm",   "Fleet",  "Fluffy",
    "Fond",   "Frank",  "Free",   "Fresh",  "Frisky", "Frosty", "Funny",
    "Gentle", "Giddy",  "Glad",   "Golden", "Good",   "Grand",  "Great",
    "Green",  "Happy",  "Hardy",  "Hasty",  "Hearty", "Heroic", "Honest",
    "Humble", "Jolly",  "Jovial", "Joyful", "Keen",   "Kind",   "Lively",
    "Loyal",  "Lucky",  "Lunar",  "Magic",  "Merry",  "Mighty", "Mild",
    "Misty",  "Modest", "Nimble", "Noble",  "Neat",   "Nifty",  "Peppy",
    "Perky",  "Plucky", "Polite", "Proud",  "Quick",  "Quiet",  "Rapid",
    "Ready",  "Regal",  "Rosy",   "Royal",  "Rustic", "Sassy",  "Savvy",
    "Shiny",  "Silent", "Silky",  "Sleek",  "Smart",  "Snowy",  "Snug",
    "Solar",  "Solid",  "Sonic",  "Spry",   "Stark",  "Steady", "Stout",
    "Sunny",  "Super",  "Swift",  "Tidy",   "Tiny",   "True",   "Trusty",
    "Vivid",  "Warm",   "Wise",   "Witty",  "Zany",   "Zesty",  "Zippy",
    "Cheery", "Comfy",
};

static const char *const animals[] = {
    "Bear",   "Beaver", "Bison",  "Boar",   "Camel",  "Crab",   "Crane",
    "Crow",   "Deer",   "Dingo",  "Dove",   "Duck",   "Eagle",  "Egret",
    "Eland",  "Falcon", "Ferret", "Finch",  "Frog",   "Gecko",  "Goat",
    "Goose",  "Gopher", "Hare",   "Hawk",   "Heron",  "Horse",  "Hound",
    "Hyena",  "Ibis",   "Iguana", "Impala", "Jackal", "Jaguar", "Koala",
    "Lemur",  "Lion",   "Llama",  "Lynx",   "Macaw",  "Magpie", "Marmot",
    "Mink",   "Mole",   "Monkey", "Moose",  "Moth",   "Mouse",  "Mule",
    "Newt",   "Ocelot", "Okapi",  "Orca",   "Oryx",   "Otter",  "Panda",
    "Parrot", "Pigeon", "Pika",   "Puffin", "Puma",   "Quail",  "Rabbit",
    "Raven",  "Robin",  "Salmon", "Seal",   "Shark",  "Sheep",  "Shrew",
    "Skunk",  "Sloth",  "Snail",  "Snake",  "Swan",   "Tapir",  "Tiger",
    "Toad",   "Trout",  "Tuna",   "Turtle", "Viper",  "Vole",   "Walrus",
    "Wasp",   "Weasel", "Whale",  "Wolf",   "Wombat", "Zebra",  "Alpaca",
    "Badger", "Bobcat", "Condor", "Coyote", "Cougar", "Donkey", "Gibbon",
    "Gerbil", "Kitten", "Lizard", "Marten", "Mantis", "Oriole", "Osprey",
    "Oyster", "Python", "Rhino",  "Sable",  "Spider", "Squid",  "Stork",
    "Toucan", "Urchin", "Wren",   "Kiwi",   "Lark",   "Loon",   "Mako",
    "Minnow", "Plover", "Possum", "Tern",   "Thrush", "Weevil", "Kudu",
    "Hippo",  "Bantam",
};

enum {
    N_ADJ = sizeof(adjectives) / sizeof(adjectives[0]),
    N_ANIMAL = sizeof(animals) / sizeof(animals[0]),
};
_Static_assert(N_ADJ == 128 && N_ANIMAL == 128, "128 words each");

typedef struct member member;
typedef struct room_rec room_rec;

struct member {
    uint64_t id; /* the connection's address id */
    tr_addr addr;
    char name[CHAT_NAME_MAX + 4];
    room_rec *room;
    uint32_t at; /* index in room->members */
    tr_broadcast_tx *unconfirmed;
    uint64_t mon;
    member *next_id;
    member *next_name;
};

typedef struct pending {
    member *m;
    tr_reply_to *reply;
} pending;

/* A room's core lives in the server's list until the room's actor has
 * ended for good. */
typedef chat_room_core room_core;

struct room_rec {
    room_core *core;
    uint64_t cookie; /* names the spawner's answer */
    tr_addr addr;
    uint64_t mon;
    bool started;
    member **members;
    uint32_t n, cap;
    pending *pend;
    uint32_t npend, cappend;
    uint64_t epoch; /* membership changes told (chat_value.epoch) */
};

typedef struct registry {
    chat_server *srv;
    member **by_id; /* chained hash tables, power-of-two sizes */
    member **by_name;
    uint32_t nbuckets;
    uint32_t nmembers;
    room_rec **rooms; /* open rooms */
    uint32_t nrooms, caprooms;
    room_rec **closing; /* told to stop, waiting for their DOWN */
    uint32_t nclosing, capclosing;
    uint64_t rng;
    bool stopping; /* REG_SHUTDOWN came: the server stops */
} registry;

bool
chat_name_ok(const char *s, size_t len)
{
    if (len < 2 || len > CHAT_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* ---- the server-wide lists (cores and handles outlive a registry
 * crash: see chat_stop) ---- */

static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct keep {
    struct keep *next;
    void *core;          /* a room_core, or NULL */
    tr_broadcast_tx *tx; /* an unconfirmed handle, or NULL */
} keep;

static keep *kept;

static void
keep_add(void *core, tr_broadcast_tx *tx)
{
    keep *k = malloc(sizeof(*k));
    if (k == NULL) {
        return;
    }
    k->core = core;
    k->tx = tx;
    pthread_mutex_lock(&orphan_lock);
    k->next = kept;
    kept = k;
    pthread_mutex_unlock(&orphan_lock);
}

static void
core_free(room_core *c)
{
    tr_broadcast_tx_destroy(c->tx);
    free(c);
}

static void
keep_remove_core(room_core *c)
{
    pthread_mutex_lock(&orphan_lock);
    for (keep **p = &kept; *p != NULL; p = &(*p)->next) {
        if ((*p)->core == c) {
            keep *k = *p;
            *p = k->next;
            free(k);
            break;
        }
    }
    pthread_mutex_unlock(&orphan_lock);
}

void
chat_registry_release_all(void)
{
    pthread_mutex_lock(&orphan_lock);
    keep *k = kept;
    kept = NULL;
    pthread_mutex_unlock(&orphan_lock);
    while (k != NULL) {
        keep *next = k->next;
        if (k->core != NULL) {
            core_free(k->core);
        }
        if (k->tx != NULL) {
            tr_broadcast_tx_destroy(k->tx);
        }
        free(k);
        k = next;
    }
}

/* ---- tables ---- */

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint64_t
hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s != '\0') {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return mix(h);
}

static member *
find_id(registry *r, uint64_t id)
{
    if (r->nbuckets == 0) {
        return NULL;
    }
    for (member *m = r->by_id[mix(id) & (r->nbuckets - 1)]; m != NULL;
         m = m->next_id) {
        if (m->id == id) {
            return m;
        }
    }
    return NULL;
}

static member *
find_name(registry *r, const char *name)
{
    if (r->nbuckets == 0) {
        return NULL;
    }
    for (member *m = r->by_name[hash_name(name) & (r->nbuckets - 1)]; m != NULL;
         m = m->next_name) {
        if (strcmp(m->name, name) == 0) {
            return m;
        }
    }
    return NULL;
}

static void
link_name(registry *r, member *m)
{
    member **b = &r->by_name[hash_name(m->name) & (r->nbuckets - 1)];
    m->next_name = *b;
    *b = m;
}

static void
unlink_name(registry *r, member *m)
{
    member **p = &r->by_name[hash_name(m->name) & (r->nbuckets - 1)];
    while (*p != m) {
        p = &(*p)->next_name;
    }
    *p = m->next_name;
}

static bool
grow(registry *r)
{
    uint32_t nb = r->nbuckets != 0 ? r->nbuckets * 2 : 64;
    member **ids = calloc(nb, sizeof(*ids));
    member **names = calloc(nb, sizeof(*names));

    if (ids == NULL || names == NULL) {
        free(ids);
        free(names);
        return false;
    }
    for (uint32_t i = 0; i < r->nbuckets; i++) {
        member *m = r->by_id[i];
        while (m != NULL) {
            member *next = m->next_id;
            member **b = &ids[mix(m->id) & (nb - 1)];
            m->next_id = *b;
            *b = m;
            m = next;
        }
        m = r->by_name[i];
        while (m != NULL) {
            member *next = m->next_name;
            member **b = &names[hash_name(m->name) & (nb - 1)];
            m->next_name = *b;
            *b = m;
            m = next;
        }
    }
    free(r->by_id);
    free(r->by_name);
    r->by_id = ids;
    r->by_name = names;
    r->nbuckets = nb;
    return true;
}

static bool
add_member(registry *r, member *m)
{
    if (r->nmembers + 1 > r->nbuckets && !grow(r)) {
        return false;
    }
    member **b = &r->by_id[mix(m->id) & (r->nbuckets - 1)];
    m->next_id = *b;
    *b = m;
    link_name(r, m);
    r->nmembers++;
    return true;
}

static void
del_member(registry *r, member *m)
{
    member **p = &r->by_id[mix(m->id) & (r->nbuckets - 1)];
    while (*p != m) {
        p = &(*p)->next_id;
    }
    *p = m->next_id;
    unlink_name(r, m);
    r->nmembers--;
}

static uint64_t
next_rand(registry *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* A name nobody uses now, or false when all are taken. */
static bool
fresh_name(registry *r, char *out)
{
    uint32_t total = N_ADJ * N_ANIMAL;
    uint32_t start = (uint32_t)(next_rand(r) % total);

    /* Random tries first, then a walk over every combination. */
    for (uint32_t i = 0; i < 16 + total; i++) {
        uint32_t k =
            i < 16 ? (uint32_t)(next_rand(r) % total) : (start + i) % total;
        snprintf(out, CHAT_NAME_MAX + 4, "%s%s", adjectives[k / N_ANIMAL],
                 animals[k % N_ANIMAL]);
        if (find_name(r, out) == NULL) {
            return true;
        }
    }
    return false;
}

/* ---- rooms ---- */

static void
notice(tr_ctx *ctx, room_rec *rec, member *m, chat_kind kind, const char *fmt,
       const char *a, const char *b)
{
    chat_value v;
    int n;

    v.origin = m->id;
    v.kind = kind;
    v.epoch = ++rec->epoch;
    n = snprintf(v.text, sizeof(v.text), fmt, a, b);
    v.len = n < 0 ? 0 : (uint32_t)n;
    if (rec->started) {
        chat_ignore(
            tr_send(ctx, rec->addr, ROOM_NOTICE, &v, chat_value_size(&v)));
    }
}

static room_rec *
find_room(registry *r, const char *name)
{
    for (uint32_t i = 0; i < r->nrooms; i++) {
        if (strcmp(r->rooms[i]->core->name, name) == 0) {
            return r->rooms[i];
        }
    }
    return NULL;
}

static bool
push_ptr(void ***arr, uint32_t *n, uint32_t *cap, void *p)
{
    if (*n == *cap) {
        uint32_t c = *cap != 0 ? *cap * 2 : 8;
        void **a = realloc(*arr, sizeof(void *) * c);
        if (a == NULL) {
            return false;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return true;
}

static void
remove_ptr(void **arr, uint32_t *n, void *p)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (arr[i] == p) {
            arr[i] = arr[--*n];
            return;
        }
    }
}

static void
free_rec(room_rec *rec)
{
    keep_remove_core(rec->core);
    core_free(rec->core);
    free(rec->members);
    free(rec->pend);
    free(rec);
}

/* A new room, its actor on its way. */
static room_rec *
create_room(tr_ctx *ctx, registry *r, const char *name)
{
    room_rec *rec = calloc(1, sizeof(*rec));
    room_core *core = calloc(1, sizeof(*core));
    tr_addr sup;

    if (rec == NULL || core == NULL ||
        tr_broadcast_create(CHAT_ROOM_CAP, CHAT_VALUE_MAX, &core->tx) !=
            TR_OK) {
        free(rec);
        free(core);
        return NULL;
    }
    snprintf(core->name, sizeof(core->name), "%s", name);
    rec->core = core;
    rec->cookie = next_rand(r);
    keep_add(core, NULL);
    if (!push_ptr((void ***)&r->rooms, &r->nrooms, &r->caprooms, rec) ||
        tr_whereis_path(r->srv->sys, "/chat/rooms", &sup) != TR_OK ||
        chat_spawn_child(r->srv, sup, core, tr_self(ctx), REG_ROOM_STARTED,
                         rec->cookie) != TR_OK) {
        remove_ptr((void **)r->rooms, &r->nrooms, rec);
        free_rec(rec);
        return NULL;
    }
    atomic_fetch_add_explicit(&r->srv->rooms, 1, memory_order_relaxed);
    return rec;
}

/* A started room has no member left: its actor stops, and its DOWN
 * frees the record and the channel. */
static void
close_room(tr_ctx *ctx, registry *r, room_rec *rec)
{
    remove_ptr((void **)r->rooms, &r->nrooms, rec);
    atomic_fetch_sub_explicit(&r->srv->rooms, 1, memory_order_relaxed);
    chat_ignore(tr_send(ctx, rec->addr, ROOM_CLOSE, NULL, 0));
    if (!push_ptr((void ***)&r->closing, &r->nclosing, &r->capclosing, rec)) {
        /* Out of memory: the core stays in the server's list. */
        free(rec->members);
        free(rec->pend);
        free(rec);
    }
}

/* Forget a record whose actor may still run: its core stays in the
 * server's list (freed when the program ends). */
static void
forget_rec(room_rec *rec)
{
    free(rec->members);
    free(rec->pend);
    free(rec);
}

static void
leave_room(tr_ctx *ctx, registry *r, member *m, bool tell)
{
    room_rec *rec = m->room;

    if (rec == NULL) {
        return;
    }
    if (tell) {
        notice(ctx, rec, m, VAL_LEFT, "%s left", m->name, "");
    }
    rec->members[m->at] = rec->members[--rec->n];
    rec->members[m->at]->at = m->at;
    m->room = NULL;
    if (rec->started && rec->n == 0 && rec->npend == 0) {
        close_room(ctx, r, rec);
    }
}

static void
reply_joined(tr_reply_to *h, const chat_joined *j)
{
    (void)tr_reply_send(h, j, sizeof(*j));
}

static void
fail_join(tr_reply_to *h, int rc)
{
    chat_joined j = {.rc = rc};
    reply_joined(h, &j);
}

/* `m` enters the started room `rec`; answer with a channel handle. */
static void
enter_room(tr_ctx *ctx, room_rec *rec, member *m, tr_reply_to *h)
{
    chat_joined j = {.rc = TR_OK};

    if (m->room != rec) {
        if (!push_ptr((void ***)&rec->members, &rec->n, &rec->cap, m)) {
            fail_join(h, TR_ENOMEM);
            return;
        }
        m->at = rec->n - 1;
        m->room = rec;
        notice(ctx, rec, m, VAL_JOINED, "%s joined", m->name, "");
    }
    if (tr_broadcast_tx_clone(rec->core->tx, &j.tx) != TR_OK) {
        j.rc = TR_ENOMEM;
        j.tx = NULL;
    }
    m->unconfirmed = j.tx;
    snprintf(j.name, sizeof(j.name), "%s", m->name);
    snprintf(j.room, sizeof(j.room), "%s", rec->core->name);
    j.room_addr = rec->addr;
    j.epoch = rec->epoch;
    reply_joined(h, &j);
}

static void
join(tr_ctx *ctx, registry *r, member *m, const char *room, tr_reply_to *h)
{
    room_rec *rec = find_room(r, room);

    if (rec == NULL || rec != m->room) {
        leave_room(ctx, r, m, true);
    }
    if (rec == NULL) {
        rec = create_room(ctx, r, room);
        if (rec == NULL) {
            fail_join(h, TR_ENOMEM);
            return;
        }
    }
    if (!rec->started) {
        pending p = {m, h};
        if (rec->npend == rec->cappend) {
            uint32_t c = rec->cappend != 0 ? rec->cappend * 2 : 4;
            pending *a = realloc(rec->pend, sizeof(*a) * c);
            if (a == NULL) {
                fail_join(h, TR_ENOMEM);
                return;
            }
            rec->pend = a;
            rec->cappend = c;
        }
        rec->pend[rec->npend++] = p;
        return;
    }
    enter_room(ctx, rec, m, h);
}

static void
room_started(tr_ctx *ctx, registry *r, const chat_started *s)
{
    room_rec *rec = NULL;

    for (uint32_t i = 0; i < r->nrooms; i++) {
        if (r->rooms[i]->cookie == s->cookie) {
            rec = r->rooms[i];
        }
    }
    if (rec == NULL) {
        /* Not ours (an earlier registry's, or closed meanwhile). */
        if (s->rc == TR_OK) {
            (void)tr_actor_stop(ctx, s->child);
        }
        return;
    }
    if (s->rc != TR_OK || tr_monitor(ctx, s->child, &rec->mon) != TR_OK) {
        for (uint32_t i = 0; i < rec->npend; i++) {
            fail_join(rec->pend[i].reply, s->rc != TR_OK ? s->rc : TR_ENOMEM);
        }
        rec->npend = 0;
        remove_ptr((void **)r->rooms, &r->nrooms, rec);
        atomic_fetch_sub_explicit(&r->srv->rooms, 1, memory_order_relaxed);
        if (s->rc == TR_OK) {
            (void)tr_actor_stop(ctx, s->child);
            forget_rec(rec); /* the actor may still read its core */
        } else {
            free_rec(rec);
        }
        return;
    }
    rec->addr = s->child;
    rec->started = true;
    for (uint32_t i = 0; i < rec->npend; i++) {
        enter_room(ctx, rec, rec->pend[i].m, rec->pend[i].reply);
    }
    rec->npend = 0;
    if (rec->n == 0) {
        close_room(ctx, r, rec);
    }
}

/* ---- connections ---- */

static void
drop_pending_of(registry *r, member *m)
{
    for (uint32_t i = 0; i < r->nrooms; i++) {
        room_rec *rec = r->rooms[i];
        for (uint32_t k = 0; k < rec->npend;) {
            if (rec->pend[k].m == m) {
                tr_reply_drop(rec->pend[k].reply);
                rec->pend[k] = rec->pend[--rec->npend];
            } else {
                k++;
            }
        }
    }
}

/* A member stopped by a shutdown, or gone once the server began to stop
 * (REG_SHUTDOWN: the connections leave on their own then), leaves without
 * a notice: the others are stopping too, and the first thing each hears
 * is "Server is shutting down", not a run of departures. */
static void
member_gone(tr_ctx *ctx, registry *r, member *m, tr_exit_kind kind)
{
    drop_pending_of(r, m);
    leave_room(ctx, r, m, kind != TR_EXIT_SHUTDOWN && !r->stopping);
    /* Rooms the member was waiting for may now be empty. */
    for (uint32_t i = 0; i < r->nrooms;) {
        room_rec *rec = r->rooms[i];
        if (rec->started && rec->n == 0 && rec->npend == 0) {
            close_room(ctx, r, rec);
        } else {
            i++;
        }
    }
    if (m->unconfirmed != NULL) {
        tr_broadcast_tx_destroy(m->unconfirmed);
    }
    del_member(r, m);
    free(m);
    atomic_fetch_sub_explicit(&r->srv->connections, 1, memory_order_relaxed);
}

static void
room_down(tr_ctx *ctx, registry *r, const tr_signal *sig)
{
    for (uint32_t i = 0; i < r->nclosing; i++) {
        room_rec *rec = r->closing[i];
        if (rec->mon == sig->ref) {
            r->closing[i] = r->closing[--r->nclosing];
            free_rec(rec);
            return;
        }
    }
    for (uint32_t i = 0; i < r->nrooms; i++) {
        room_rec *rec = r->rooms[i];
        if (rec->started && rec->mon == sig->ref) {
            /* Its supervisor gave up on it: its members hear their
             * channel close and join again. */
            for (uint32_t k = 0; k < rec->n; k++) {
                rec->members[k]->room = NULL;
            }
            rec->n = 0;
            remove_ptr((void **)r->rooms, &r->nrooms, rec);
            atomic_fetch_sub_explicit(&r->srv->rooms, 1, memory_order_relaxed);
            free_rec(rec);
            (void)ctx;
            return;
        }
    }
}

/* ---- the behaviour ---- */

static int
reg_init(tr_ctx *ctx, void *state, const void *arg)
{
    registry *r = state;
    int rc;

    r->srv = (chat_server *)arg;
    /* In simulation nothing may depend on the wall clock: the address,
     * which follows the seed, is enough. */
    r->rng = (r->srv->cfg.sim != NULL ? 0 : (uint64_t)time(NULL)) ^
             tr_self(ctx).id ^ 0x9e3779b97f4a7c15ull;
    if (r->rng == 0) {
        r->rng = 1;
    }
    rc = tr_register(ctx, "chat.registry", tr_self(ctx));
    return rc == TR_EALREADY ? TR_OK : rc;
}

static void
reply_text(tr_ctx *ctx, const tr_msg *msg, const char *head, char **items,
           uint32_t n)
{
    size_t cap = strlen(head) + 1;
    for (uint32_t i = 0; i < n; i++) {
        cap += strlen(items[i]) + 2;
    }
    char *buf = malloc(cap);
    if (buf == NULL) {
        return; /* unanswered: the caller's call ends with TR_ECLOSED */
    }
    size_t at = (size_t)snprintf(buf, cap, "%s", head);
    for (uint32_t i = 0; i < n; i++) {
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "",
                               items[i]);
    }
    chat_ignore(tr_reply(ctx, msg, buf, at));
    free(buf);
}

static int
by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
by_count(const void *a, const void *b)
{
    const room_rec *x = *(room_rec *const *)a;
    const room_rec *y = *(room_rec *const *)b;
    if (x->n != y->n) {
        return x->n > y->n ? -1 : 1;
    }
    return strcmp(x->core->name, y->core->name);
}

static void
rooms_line(tr_ctx *ctx, registry *r, const tr_msg *msg)
{
    room_rec **sorted = malloc(sizeof(*sorted) * (r->nrooms + 1));
    char **items = malloc(sizeof(*items) * (r->nrooms + 1));
    uint32_t n = 0;

    if (sorted == NULL || items == NULL) {
        free(sorted);
        free(items);
        return;
    }
    for (uint32_t i = 0; i < r->nrooms; i++) {
        if (r->rooms[i]->n > 0) {
            sorted[n++] = r->rooms[i];
        }
    }
    qsort(sorted, n, sizeof(*sorted), by_count);
    for (uint32_t i = 0; i < n; i++) {
        items[i] = malloc(CHAT_NAME_MAX + 16);
        if (items[i] != NULL) {
            snprintf(items[i], CHAT_NAME_MAX + 16, "%s (%u)",
                     sorted[i]->core->name, sorted[i]->n);
        } else {
            n = i;
        }
    }
    reply_text(ctx, msg, "Rooms - ", items, n);
    for (uint32_t i = 0; i < n; i++) {
        free(items[i]);
    }
    free(items);
    free(sorted);
}

static void
users_line(tr_ctx *ctx, registry *r, member *m, const tr_msg *msg)
{
    room_rec *rec = m != NULL ? m->room : NULL;
    uint32_t n = rec != NULL ? rec->n : 0;
    char **items = malloc(sizeof(*items) * (n + 1));

    if (items == NULL) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        items[i] = rec->members[i]->name;
    }
    qsort(items, n, sizeof(*items), by_bytes);
    reply_text(ctx, msg, "Users - ", items, n);
    free(items);
    (void)r;
}

static int
reg_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    registry *r = state;
    member *m = find_id(r, msg->from.id);

    switch (msg->type) {
    case REG_HELLO: {
        tr_reply_to *h = tr_reply_take(ctx, msg);
        if (h == NULL || m != NULL) {
            tr_reply_drop(h);
            return TR_OK;
        }
        m = calloc(1, sizeof(*m));
        if (m == NULL || !fresh_name(r, m->name) ||
            tr_monitor(ctx, msg->from, &m->mon) != TR_OK) {
            free(m);
            fail_join(h, TR_EFULL);
            return TR_OK;
        }
        m->id = msg->from.id;
        m->addr = msg->from;
        if (!add_member(r, m)) {
            (void)tr_demonitor(ctx, m->mon);
            free(m);
            fail_join(h, TR_ENOMEM);
            return TR_OK;
        }
        atomic_fetch_add_explicit(&r->srv->connections, 1,
                                  memory_order_relaxed);
        join(ctx, r, m, "main", h);
        return TR_OK;
    }
    case REG_JOIN: {
        tr_reply_to *h = tr_reply_take(ctx, msg);
        const chat_name *room = msg->data;
        if (h == NULL) {
            return TR_OK;
        }
        if (m == NULL || msg->size != sizeof(*room) ||
            !chat_name_ok(room->s, strnlen(room->s, sizeof(room->s)))) {
            fail_join(h, TR_EINVAL);
            return TR_OK;
        }
        join(ctx, r, m, room->s, h);
        return TR_OK;
    }
    case REG_RENAME: {
        const chat_name *to = msg->data;
        int rc = TR_OK;
        if (m == NULL || msg->size != sizeof(*to) ||
            !chat_name_ok(to->s, strnlen(to->s, sizeof(to->s)))) {
            rc = TR_EINVAL;
        } else if (find_name(r, to->s) != NULL) {
            rc = TR_EEXIST;
        } else {
            char old[CHAT_NAME_MAX + 4];
            snprintf(old, sizeof(old), "%s", m->name);
            unlink_name(r, m);
            snprintf(m->name, sizeof(m->name), "%s", to->s);
            link_name(r, m);
            if (m->room != NULL) {
                notice(ctx, m->room, m, VAL_TEXT, "%s is now %s", old, m->name);
            }
        }
        chat_ignore(tr_reply(ctx, msg, &rc, sizeof(rc)));
        return TR_OK;
    }
    case REG_ROOMS:
        rooms_line(ctx, r, msg);
        return TR_OK;
    case REG_USERS:
        users_line(ctx, r, m, msg);
        return TR_OK;
    case REG_QUIT: {
        /* Before the socket closes, so that a client that has seen its
         * connection end finds the room and the name updated. */
        int rc = TR_OK;
        if (m != NULL) {
            (void)tr_demonitor(ctx, m->mon);
            member_gone(ctx, r, m, TR_EXIT_NORMAL);
        }
        chat_ignore(tr_reply(ctx, msg, &rc, sizeof(rc)));
        return TR_OK;
    }
    case REG_SUBSCRIBED:
        if (m != NULL) {
            m->unconfirmed = NULL;
        }
        return TR_OK;
    case REG_ROOM_STARTED:
        if (msg->size == sizeof(chat_started)) {
            room_started(ctx, r, msg->data);
        }
        return TR_OK;
    case REG_SHUTDOWN:
        r->stopping = true;
        return TR_OK;
    case TR_MSG_DOWN: {
        const tr_signal *sig = msg->data;
        member *gone = find_id(r, sig->who.id);
        if (gone != NULL && gone->mon == sig->ref) {
            member_gone(ctx, r, gone, sig->kind);
        } else {
            room_down(ctx, r, sig);
        }
        return TR_OK;
    }
    default:
        return TR_OK;
    }
}

static void
reg_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    registry *r = state;

    (void)ctx;
    (void)exit;
    /* Room actors may outlive us by a moment (a crash of ours stops them
     * after this): their cores, and handles a connection may still use,
     * stay in the server's list until the program ends. */
    for (uint32_t i = 0; i < r->nbuckets; i++) {
        member *m = r->by_id[i];
        while (m != NULL) {
            member *next = m->next_id;
            if (m->unconfirmed != NULL) {
                keep_add(NULL, m->unconfirmed);
            }
            free(m);
            m = next;
        }
    }
    for (uint32_t i = 0; i < r->nrooms; i++) {
        room_rec *rec = r->rooms[i];
        for (uint32_t k = 0; k < rec->npend; k++) {
            tr_reply_drop(rec->pend[k].reply);
        }
        free(rec->members);
        free(rec->pend);
        free(rec);
    }
    for (uint32_t i = 0; i < r->nclosing; i++) {
        free(r->closing[i]->members);
        free(r->closing[i]->pend);
        free(r->closing[i]);
    }
    atomic_store_explicit(&r->srv->rooms, 0, memory_order_relaxed);
    atomic_store_explicit(&r->srv->connections, 0, memory_order_relaxed);
    free(r->rooms);
    free(r->closing);
    free(r->by_id);
    free(r->by_name);
}

const tr_behaviour chat_registry_behaviour = {
    .name = "chat_registry",
    .state_size = sizeof(registry),
    .init = reg_init,
    .handle = reg_handle,
    .stop = reg_stop,
};
