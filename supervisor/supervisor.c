/*
 * Supervisors.
 *
 * A supervisor is an actor that traps exits. Its children are ordinary
 * actors whose slot records name it as their parent: when a child ends
 * for any reason, its runner calls the child's `stop`, keeps the address
 * live with its queued messages, and hands the run-right to the supervisor
 * in a TR_MSG_CHILD report (actor.c). Holding the right, the supervisor can
 * run the child's `init` again on its own thread (a restart in place:
 * same address, same name, same queue, and `stop` has returned before
 * `init` begins), or end the incarnation for good.
 *
 * Children. A list in start order, and two indexes (index.c): by id, for
 * requests, and by address, for reports and timers. So the work on one
 * child (find it, start, restart, terminate or delete it, act on its
 * report or its timer) looks at a few children however many there are;
 * only what concerns them all (a round, a shutdown, which_children) walks
 * the list. `visits` counts the children looked at, for the tests.
 *
 * Restarts. With one_for_one and simple_one_for_one every child restarts
 * on its own: a child whose `init` fails is retried later by a timer
 * message of its own (at once, or after its backoff delay), named by its
 * address and `serial`, and nothing another child does runs it sooner.
 * With one_for_all and rest_for_one a child's end starts a round: the
 * siblings it takes with it are stopped (a sequence, below), then all are
 * restarted in start order, none released until all have started. If one
 * fails, one_for_all stops those restarted before it again and retries the
 * whole round; rest_for_one releases them (they keep running) and retries
 * from the child that failed. A round's retry waits on that child (its
 * `round_owner`) and not before its backoff delay; when the owner is
 * terminated by hand, the round is abandoned and the children waiting in
 * it end. Every restart counts towards the intensity unless the child has
 * backoff, and a child terminated by hand is never restarted by a round or
 * a retry.
 *
 * Sequences. Stopping children one by one in reverse start order (a
 * round, a give-up, a shutdown) is a small state machine: a cursor walks
 * back from the last child, asking each one to stop and waiting for its
 * report (or its shutdown deadline: then kill) before going on. A
 * terminate_child is a sequence of one child. Nothing blocks: reports,
 * deadlines and requests are all messages, so a supervisor keeps
 * answering while a child loops in failing restarts. A child that has
 * stopped and will not be restarted ends at its report: its DOWN does not
 * wait for the end of the sequence. Requests that change the children
 * wait until the sequence is over; reads are answered at once.
 *
 * Starting. Children are spawned holding their run-rights: when the
 * supervisor starts, none of its children runs until all have started, so
 * a failing `init` can stop the ones before it, in reverse order, on the
 * spot. A child added by a request is released only once its address is
 * in the caller's hands: when the answer cannot be delivered (the caller
 * timed out, or no memory was left for the answer), the start is undone.
 *
 * Kills. A worker is killed by its kill flag and a stop request: it ends
 * at its next chance without `stop`. A supervisor is killed by a MSG_KILL
 * request instead: it kills its own children the same way, all at once,
 * waits for their reports, ends them, and only then ends (kill mode). So
 * when a killed supervisor's report arrives, its whole subtree has ended:
 * nothing is orphaned, and a restart of it never meets the old subtree.
 *
 * However a supervisor's incarnation ends, its exit hook (`sup_ended`)
 * frees the bookkeeping. If children are left (it failed, it was stopped
 * between restarts, or its own run ended abnormally), the hook ends the
 * held ones and kills the others without waiting: their reports come back
 * to this address, and whoever ends or restarts the incarnation ends those
 * children on reading (or dropping) the reports (actor.c).
 *
 * Every change that inspection or tr_whereis_path can see is made under
 * the system's tree_lock so that they read a consistent tree; the lock is
 * never held across a child's callback.
 */
#include "supervisor/sup.h"

#include "common/tr_alloc.h"

#include <troupe/call.h>
#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

enum {
    REQ_START_CHILD = TR_MSG_SUP_FIRST,
    REQ_TERMINATE_CHILD,
    REQ_RESTART_CHILD,
    REQ_DELETE_CHILD,
    REQ_WHICH_CHILDREN,
    REQ_COUNT_CHILDREN,
    MSG_DEADLINE, /* a child's shutdown time is up (payload: a timer_ref) */
    MSG_RETRY,    /* try a failed restart again (payload: a timer_ref) */
    MSG_KILL,     /* from our supervisor: end the subtree, then ourselves */
};

enum { DEFAULT_SHUTDOWN_MS = 5000, DEFAULT_PERIOD_MS = 5000 };

/* Spec checks find duplicate ids with a table above this many children. */
enum { DUP_SCAN_MAX = 16 };

/* Which child a timer message is about: its address, and its serial when
 * the timer was set (a later serial voids the timer). */
typedef struct timer_ref {
    uint64_t addr;
    uint32_t serial;
} timer_ref;

typedef struct admin_req {
    char id[64];
    bool has_spec;
    tr_child_spec spec;
    const void *arg;
    uint32_t cap; /* which_children: room for this many */
} admin_req;

typedef struct admin_rep {
    int rc;
    tr_addr addr;
    tr_child_counts counts;
    uint32_t total;
    tr_child_info infos[]; /* which_children */
} admin_rep;

/* A request that waits for the current sequence to end. */
typedef struct deferred {
    struct deferred *next;
    tr_reply_to *reply;
    uint32_t type;
    admin_req req;
} deferred;

/* ---- specs ---- */

static bool
id_ok(const char *id)
{
    size_t len = id != NULL ? strnlen(id, 64) : 0;
    return len > 0 && len < 64;
}

static int
child_spec_check(const tr_child_spec *c, char *why, size_t cap)
{
    const tr_backoff *b = &c->backoff;

    if (!id_ok(c->id)) {
        snprintf(why, cap, "a child id is NULL, empty or over 63 bytes");
    } else if (c->behaviour == NULL) {
        snprintf(why, cap, "child '%s' has no behaviour", c->id);
    } else if ((unsigned)c->restart > TR_TEMPORARY) {
        snprintf(why, cap, "child '%s' has an unknown restart type %d", c->id,
                 (int)c->restart);
    } else if ((unsigned)c->kind > TR_SUPERVISOR) {
        snprintf(why, cap, "child '%s' has an unknown kind %d", c->id,
                 (int)c->kind);
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
    } else if (spec->name != NULL && strnlen(spec->name, 64) >= 64) {
        snprintf(why, cap, "the name is over 63 bytes");
    } else if ((unsigned)spec->strategy > TR_SIMPLE_ONE_FOR_ONE) {
        snprintf(why, cap, "unknown strategy %d", (int)spec->strategy);
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
        rc = child_spec_check(&spec->children[i], why, cap);
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

/* ---- bookkeeping ---- */

static void
tree_lock(tr_ctx *ctx)
{
    pthread_mutex_lock(&ctx->sys->tree_lock);
}

static void
tree_unlock(tr_ctx *ctx)
{
    pthread_mutex_unlock(&ctx->sys->tree_lock);
}

static uint64_t
now_ms(tr_ctx *ctx)
{
    return tr_now_ms(ctx->sys);
}

/* Count `c` as looked at (tr_sup.visits), and return it: every walk over
 * the children goes through here. */
static child *
seen(tr_sup *s, child *c)
{
    if (c != NULL) {
        /* One writer: the supervisor's thread. */
        tr_store_relaxed(&s->visits, tr_load_relaxed(&s->visits) + 1);
    }
    return c;
}

/* Walks over the children: each step is counted as a child looked at. */
static child *
first(tr_sup *s)
{
    return seen(s, s->head);
}

static child *
after(tr_sup *s, const child *c)
{
    return seen(s, c->next);
}

static child *
before(tr_sup *s, const child *c)
{
    return seen(s, c->prev);
}

static bool
independent(const tr_sup *s)
{
    return s->strategy == TR_ONE_FOR_ONE ||
           s->strategy == TR_SIMPLE_ONE_FOR_ONE;
}

/* Modes in which the supervisor is ending. */
static bool
ending(sup_mode m)
{
    return m == SUP_TERMINATE || m == SUP_GIVE_UP || m == SUP_KILL;
}

static child *
find_id(tr_sup *s, const char *id)
{
    return tr__sup_index_find(&s->by_id, id, &s->visits);
}

static child *
find_addr(tr_sup *s, uint64_t addr)
{
    return tr__sup_index_find(&s->by_addr, &addr, &s->visits);
}

static child *
new_child(tr_sup *s, const tr_child_spec *spec, const void *arg)
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

/* Add `c` after the last child; TR_ENOMEM changes nothing. The address
 * index gets room for it too, so that spawning it cannot fail there. */
static int
add_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    int rc = TR_ENOMEM;

    tree_lock(ctx);
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
    tree_unlock(ctx);
    return rc;
}

static void
set_undecided(tr_sup *s, child *c, bool on)
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

/* Forget a child that has no actor. */
static void
remove_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    set_undecided(s, c, false);
    tree_lock(ctx);
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
    tree_unlock(ctx);
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

static int
shutdown_of(const child *c)
{
    if (c->spec.shutdown_ms != TR_SHUTDOWN_DEFAULT) {
        return c->spec.shutdown_ms;
    }
    return c->spec.kind == TR_SUPERVISOR ? TR_SHUTDOWN_INFINITY
                                         : DEFAULT_SHUTDOWN_MS;
}

static bool
has_backoff(const child *c)
{
    return c->spec.backoff.max_ms != 0;
}

/* A dynamic or temporary child's spec goes when its actor does. */
static bool
leaves_when_down(const tr_sup *s, const child *c)
{
    return s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
           c->spec.restart == TR_TEMPORARY;
}

/* The context of a child whose run-right we hold. */
static tr_ctx
child_ctx(tr_ctx *ctx, child *c)
{
    return (tr_ctx){
        .sys = ctx->sys,
        .actor = c->slot,
        .worker = ctx->worker,
        .self = c->addr.id,
        .gen = tr__id_gen(c->addr.id),
    };
}

static void
set_state(tr_ctx *ctx, tr_sup *s, child *c, child_state st)
{
    if (c->state == CHILD_STOPPING) {
        s->nstopping--;
    }
    if (st == CHILD_STOPPING) {
        s->nstopping++;
    }
    tree_lock(ctx);
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
    tree_unlock(ctx);
}

/* Modes are read by inspection too. */
static void
set_mode(tr_ctx *ctx, tr_sup *s, sup_mode mode)
{
    tree_lock(ctx);
    s->mode = mode;
    tree_unlock(ctx);
}

/* End a held child for good (its `stop` has run). */
static void
finish_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    tr_ctx cc = child_ctx(ctx, c);
    const tr_exit why = {c->last.kind, c->last.code, c->last.text};

    c->want_restart = false;
    c->in_pass = false;
    set_undecided(s, c, false);
    set_state(ctx, s, c, CHILD_DOWN);
    tr__actor_finish(&cc, &why, false);
}

/* Run `stop` of a held child that had restarted (a failed round). */
static void
stop_held(tr_ctx *ctx, child *c)
{
    tr_ctx cc = child_ctx(ctx, c);
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
}

/*
 * Spawn `c`, keeping its run-right (released by the caller). TR_OK with the
 * child running (or already ended in init: its report is on the way),
 * TR_IGNORE, or its init's code.
 */
static int
spawn_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    prep p = {s->self, c};
    tr_addr addr;
    tr_actor *slot;
    uint64_t started = now_ms(ctx); /* when `init` began */
    int rc = tr__spawn_held(ctx, c->spec.behaviour, c->arg, c->spec.mailbox_cap,
                            prepare, &p, &addr, &slot);

    if (rc != TR_OK) {
        return rc;
    }
    tree_lock(ctx);
    c->addr = addr;
    c->slot = slot;
    c->x = tr_load_acq(&slot->ext);
    c->state = CHILD_RUNNING;
    c->up_ms = started;
    tr__sup_index_put(&s->by_addr, c); /* room was made by add_child */
    tree_unlock(ctx);
    return TR_OK;
}

/* Release a child we started or restarted, unless it ended in `init`
 * (then its report carries the right). */
static void
release_child(tr_ctx *ctx, child *c)
{
    if (tr_load_relaxed(&c->x->held) == 0) {
        tr__actor_release(ctx->sys, c->slot);
    }
}

/* ---- intensity and backoff ---- */

/* Count a restart; false when it is one too many. */
static bool
count_restart(tr_ctx *ctx, tr_sup *s)
{
    uint64_t now = now_ms(ctx);
    uint32_t size = s->max_restarts + 1; /* at most TR_SUP_RESTARTS_MAX + 1 */

    /* Times only grow, so those out of the period are the oldest. */
    while (s->nwindow != 0 && now - s->window[s->wfirst] >= s->period_ms) {
        s->wfirst = (s->wfirst + 1) % size;
        s->nwindow--;
    }
    if (s->nwindow >= s->max_restarts) {
        return false;
    }
    s->window[(s->wfirst + s->nwindow++) % size] = now;
    return true;
}

static uint64_t
backoff_delay(child *c)
{
    const tr_backoff *b = &c->spec.backoff;
    uint64_t d = b->min_ms;

    for (uint32_t i = 0; i < c->backoff_step && d < b->max_ms; i++) {
        d *= 2;
    }
    if (d > b->max_ms) {
        d = b->max_ms;
    }
    if (b->jitter_pct != 0 && d != 0) {
        /* A cheap per-child mix is jitter enough: restarts of siblings
         * spread apart, and tests can bound it. jitter_pct <= 100, so
         * the delay stays in [0, 2d]. */
        uint64_t r = (c->serial * 0x9e3779b97f4a7c15ull) ^
                     (c->backoff_step * 0xbf58476d1ce4e5b9ull);
        r ^= r >> 31;
        uint64_t span = d * b->jitter_pct / 100;
        d = d - span + r % (2 * span + 1);
    }
    c->backoff_step++;
    return d;
}

static void sequence_next(tr_ctx *ctx, tr_sup *s);
static void after_sequence(tr_ctx *ctx, tr_sup *s);
static void decide(tr_ctx *ctx, tr_sup *s, child *c);
static void run_deferred(tr_ctx *ctx, tr_sup *s);

/* Send a timer message about `c` to ourselves, after `delay_ms` or at
 * once (a message, so that what is queued meanwhile is handled between
 * attempts: the control lane lets one user message through between
 * drains); TR_ENOMEM when it could not be made. */
static int
send_self(tr_ctx *ctx, tr_sup *s, uint32_t type, const child *c,
          uint64_t delay_ms)
{
    timer_ref ref = {c->addr.id, c->serial};

    if (delay_ms != 0) {
        return tr__send_after(ctx, tr__addr(ctx->sys, s->self), type, &ref,
                              sizeof(ref), delay_ms, NULL);
    }
    tr_envelope *env = tr__env_create(sizeof(ref));
    if (env == NULL) {
        return TR_ENOMEM;
    }
    memcpy(tr__env_data(env), &ref, sizeof(ref));
    env->kind = TR_CTL_USER;
    env->type = type;
    env->from = s->self;
    env->gen = tr__env_gen(ctx->gen);
    tr__actor_push_ctl(ctx->sys, ctx->actor, env);
    return TR_OK;
}

/* Have `c`'s restart (or its round's) tried again after `delay_ms`. */
static void
schedule_retry(tr_ctx *ctx, tr_sup *s, child *c, uint64_t delay_ms)
{
    c->serial = ++s->next_serial; /* voids an earlier retry */
    c->due_ms = now_ms(ctx) + delay_ms;
    if (send_self(ctx, s, MSG_RETRY, c, delay_ms) != TR_OK) {
        (void)tr_fail(ctx, TR_ENOMEM,
                      "supervisor could not schedule a restart");
    }
}

/* ---- stopping ---- */

/* Start a stop sequence: the cursor walks back from the last child. */
static void
start_sequence(tr_ctx *ctx, tr_sup *s, sup_mode mode)
{
    set_mode(ctx, s, mode);
    s->cursor = s->tail;
    sequence_next(ctx, s);
}

static void
give_up(tr_ctx *ctx, tr_sup *s, child *c)
{
    s->give_up_code = c->last.code != TR_OK ? c->last.code : TR_ERESTARTING;
    snprintf(s->give_up_text, sizeof(s->give_up_text),
             "%.24s: more than %u restarts in %u ms; child '%.24s': %.40s",
             s->name, s->max_restarts, s->period_ms, c->id, c->last.text);
    if (s->mode == SUP_ADMIN) {
        /* The child being terminated goes down with the rest. */
        if (s->admin_reply != NULL) {
            admin_rep rep = {.rc = TR_ESHUTDOWN};
            (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
            s->admin_reply = NULL;
        }
        s->admin_child = NULL;
        s->admin_forget = false;
    }
    for (child *k = first(s); k != NULL; k = after(s, k)) {
        k->want_stop = k->state == CHILD_RUNNING;
        k->want_restart = false;
        set_undecided(s, k, false);
    }
    s->round_owner = NULL;
    start_sequence(ctx, s, SUP_GIVE_UP);
}

/* A restart of `c` failed (recorded in it): count it unless it has
 * backoff, then retry it (its round, with `round`) or give up. */
static void
retry_or_give_up(tr_ctx *ctx, tr_sup *s, child *c, bool round)
{
    if (!has_backoff(c) && !count_restart(ctx, s)) {
        give_up(ctx, s, c);
        return;
    }
    if (round) {
        s->round_owner = c;
    }
    schedule_retry(ctx, s, c, has_backoff(c) ? backoff_delay(c) : 0);
}

/* Run `init` again in held child `c`. TR_OK: it runs, not yet released;
 * TR_IGNORE: it has ended; else its failure is recorded in `c`, which is
 * still held. */
static int
reinit_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    char why[sizeof(((tr_signal *)0)->text)];
    uint64_t started = now_ms(ctx); /* when `init` began */
    int rc = tr__actor_reinit(ctx, c->slot, c->arg, why, sizeof(why));

    if (rc == TR_IGNORE) {
        tree_lock(ctx);
        c->last.kind = TR_EXIT_NORMAL;
        c->last.code = TR_OK;
        snprintf(c->last.text, sizeof(c->last.text), "ignored");
        tree_unlock(ctx);
        finish_child(ctx, s, c);
        return TR_IGNORE;
    }
    tree_lock(ctx);
    c->restarts++;
    if (rc != TR_OK) {
        c->last.kind = TR_EXIT_FAILED;
        c->last.code = rc;
        snprintf(c->last.text, sizeof(c->last.text), "%s", why);
        c->fail_ms = now_ms(ctx);
        c->failed = true;
    } else {
        c->state = CHILD_RUNNING;
        c->up_ms = started;
    }
    tree_unlock(ctx);
    if (rc == TR_OK) {
        set_undecided(s, c, false);
    }
    return rc;
}

/* one_for_one, simple_one_for_one: restart held child `c` on its own. */
static void
restart_one(tr_ctx *ctx, tr_sup *s, child *c)
{
    int rc = reinit_child(ctx, s, c);

    if (rc == TR_OK) {
        c->want_restart = false;
        release_child(ctx, c);
    } else if (rc == TR_IGNORE) {
        if (leaves_when_down(s, c)) {
            remove_child(ctx, s, c);
        }
    } else {
        retry_or_give_up(ctx, s, c, false);
    }
}

/*
 * one_for_all, rest_for_one: restart, in start order, every held child
 * that waits for the round. Not before the backoff delay of any of them
 * is up. See the top comment for a failure.
 */
static void
restart_round(tr_ctx *ctx, tr_sup *s)
{
    uint64_t now = now_ms(ctx);
    child *last_due = NULL;
    child *failed = NULL;

    for (child *c = first(s); c != NULL; c = after(s, c)) {
        if (c->state == CHILD_HELD && c->want_restart && c->due_ms > now &&
            (last_due == NULL || c->due_ms > last_due->due_ms)) {
            last_due = c;
        }
    }
    if (last_due != NULL) {
        s->round_owner = last_due;
        schedule_retry(ctx, s, last_due, last_due->due_ms - now);
        return;
    }
    s->round_owner = NULL;
    for (child *c = first(s), *nx; c != NULL; c = nx) {
        nx = after(s, c);
        if (c->state != CHILD_HELD || !c->want_restart) {
            continue;
        }
        int rc = reinit_child(ctx, s, c);
        if (rc == TR_IGNORE) {
            if (leaves_when_down(s, c)) {
                remove_child(ctx, s, c);
            }
        } else if (rc != TR_OK) {
            failed = c;
            break;
        } else if (s->strategy == TR_REST_FOR_ONE) {
            c->want_restart = false;
            release_child(ctx, c); /* it runs, whatever follows */
        } else {
            c->in_pass = true;
        }
    }
    for (child *c = first(s); c != NULL; c = after(s, c)) {
        if (!c->in_pass) {
            continue;
        }
        c->in_pass = false;
        if (failed == NULL) {
            c->want_restart = false;
            release_child(ctx, c);
        } else {
            stop_held(ctx, c); /* one_for_all: the whole round again */
            set_state(ctx, s, c, CHILD_HELD);
        }
    }
    if (failed != NULL) {
        retry_or_give_up(ctx, s, failed, true);
    }
}

/* The child a round waited on was terminated by hand: the children that
 * waited with it end too, and stay down until restarted by hand. */
static void
abandon_round(tr_ctx *ctx, tr_sup *s, child *owner)
{
    bool in_round = s->strategy == TR_ONE_FOR_ALL;

    s->round_owner = NULL;
    for (child *c = first(s); c != NULL; c = after(s, c)) {
        in_round = in_round || c == owner;
        if (in_round && c->state == CHILD_HELD && c->want_restart) {
            finish_child(ctx, s, c);
        }
    }
}

static bool
is_supervisor(const child *c)
{
    return c->spec.behaviour == &tr_supervisor_behaviour;
}

/*
 * Send the kill to a child that has not reported its end: a worker gets
 * its kill flag and a stop request (another one reaches an actor that
 * traps exits), a supervisor a MSG_KILL. TR_ENOMEM when the request could
 * not be made.
 */
static int
send_kill(tr_ctx *ctx, child *c)
{
    if (!is_supervisor(c)) {
        tr_store_rel(&c->x->kill, 1);
        return tr__actor_request_stop(ctx->sys, c->slot, tr__id_gen(c->addr.id),
                                      ctx->self);
    }
    tr_envelope *env = tr__env_create(0);
    if (env == NULL) {
        return TR_ENOMEM;
    }
    env->kind = TR_CTL_USER;
    env->type = MSG_KILL;
    env->from = ctx->self;
    /* Its address lives until we end it, after its report. */
    if (tr__actor_push_ctl_to(ctx->sys, c->addr.id, env) != TR_OK) {
        tr__env_destroy(env);
    }
    return TR_OK;
}

/* Kill a stopping child (a handler that never returns cannot be ended in
 * C: the kill takes effect when it returns). */
static void
kill_now(tr_ctx *ctx, tr_sup *s, child *c, child_kill how)
{
    c->killed = how;
    if (send_kill(ctx, c) != TR_OK) {
        /* Out of memory: try again at a deadline one ms away. */
        (void)send_self(ctx, s, MSG_DEADLINE, c, 1);
    }
}

/* Ask a running child to stop, with its deadline. */
static void
ask_stop(tr_ctx *ctx, tr_sup *s, child *c)
{
    int sd = shutdown_of(c);
    uint64_t gen = tr__id_gen(c->addr.id);

    set_state(ctx, s, c, CHILD_STOPPING);
    c->serial = ++s->next_serial;
    if (sd == TR_SHUTDOWN_BRUTAL) {
        kill_now(ctx, s, c, KILL_NOW);
        return;
    }
    if (tr__actor_request_stop(ctx->sys, c->slot, gen, ctx->self) != TR_OK) {
        /* No memory for the request: kill it at the deadline instead. */
        sd = sd > 0 ? sd : 1;
    }
    if (sd > 0) {
        (void)send_self(ctx, s, MSG_DEADLINE, c, (uint64_t)sd);
    }
}

/* The end of a sequence. */
static void
sequence_ended(tr_ctx *ctx, tr_sup *s)
{
    sup_mode mode = s->mode;

    s->cursor = NULL;
    if (ending(mode)) {
        /* Every child has ended (each at its report, or in its turn). The
         * mode stays: whatever called us must not go on. */
        if (mode != SUP_GIVE_UP) {
            /* Stopped (or killed): OTP's `shutdown`, which a link
             * propagates. */
            tr_load_acq(&ctx->actor->ext)->end_shutdown = true;
            (void)tr_stop(ctx);
        } else {
            /* A top-level tree is over: its end wakes tr_system_wait,
             * once the failure hook has reported it. */
            tr_load_acq(&ctx->actor->ext)->escalate = s->top;
            (void)tr_fail(ctx, s->give_up_code, s->give_up_text);
        }
        return;
    }
    set_mode(ctx, s, SUP_IDLE);
    if (mode == SUP_ROUND) {
        restart_round(ctx, s);
    }
    after_sequence(ctx, s);
}

/* terminate_child (or a cancelled start): a sequence of one. */
static void
admin_next(tr_ctx *ctx, tr_sup *s)
{
    child *c = s->admin_child;

    if (c != NULL && c->state == CHILD_STOPPING) {
        return; /* wait for its report */
    }
    if (c != NULL && c->state == CHILD_RUNNING) {
        ask_stop(ctx, s, c);
        return;
    }
    if (c != NULL && c->state == CHILD_HELD) {
        finish_child(ctx, s, c);
    }
    s->admin_child = NULL;
    set_mode(ctx, s, SUP_IDLE);
    if (c != NULL && (s->admin_forget || leaves_when_down(s, c))) {
        remove_child(ctx, s, c);
    }
    s->admin_forget = false;
    if (s->admin_reply != NULL) {
        admin_rep rep = {.rc = TR_OK};
        (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
        s->admin_reply = NULL;
    }
    after_sequence(ctx, s);
}

/* Drive the current stop sequence one step. */
static void
sequence_next(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_ADMIN) {
        admin_next(ctx, s);
        return;
    }
    if (s->nstopping != 0) {
        return; /* wait for its report */
    }
    while (s->cursor != NULL) {
        child *c = seen(s, s->cursor);
        s->cursor = c->prev;
        bool stop = c->want_stop && c->state == CHILD_RUNNING;
        c->want_stop = false;
        if (stop) {
            ask_stop(ctx, s, c);
            return;
        }
        if (ending(s->mode) && c->state == CHILD_HELD) {
            finish_child(ctx, s, c); /* it waited to be restarted */
        }
    }
    sequence_ended(ctx, s);
}

/* After a sequence: the children that ended during it, a round's retry
 * that came meanwhile, the requests that waited. */
static void
after_sequence(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_IDLE && s->nundecided != 0) {
        for (child *c = first(s), *nx; c != NULL; c = nx) {
            nx = after(s, c);
            if (s->mode != SUP_IDLE) {
                break;
            }
            if (c->undecided) {
                set_undecided(s, c, false);
                if (c->state == CHILD_HELD) {
                    decide(ctx, s, c);
                }
            }
        }
    }
    if (s->mode == SUP_IDLE && s->round_retry) {
        s->round_retry = false;
        restart_round(ctx, s);
    }
    if (s->mode == SUP_IDLE) {
        run_deferred(ctx, s);
    }
}

/* A held child ended on its own: apply the restart type and strategy. */
static void
decide(tr_ctx *ctx, tr_sup *s, child *c)
{
    bool abnormal =
        c->last.kind == TR_EXIT_FAILED || c->last.kind == TR_EXIT_KILLED;
    bool restart = c->spec.restart == TR_PERMANENT ||
                   (c->spec.restart == TR_TRANSIENT && abnormal);

    if (!restart) {
        finish_child(ctx, s, c);
        if (leaves_when_down(s, c)) {
            remove_child(ctx, s, c);
        }
        return;
    }
    if (has_backoff(c) && c->up_ms != 0 && c->spec.backoff.reset_ms != 0 &&
        now_ms(ctx) - c->up_ms >= c->spec.backoff.reset_ms) {
        c->backoff_step = 0; /* it ran long enough: start over */
    }
    if (!has_backoff(c) && !count_restart(ctx, s)) {
        give_up(ctx, s, c);
        return;
    }
    c->want_restart = true;
    if (independent(s)) {
        if (has_backoff(c)) {
            schedule_retry(ctx, s, c, backoff_delay(c));
        } else {
            restart_one(ctx, s, c);
        }
        return;
    }
    /* A round: from the first child (one_for_all) or from this one. */
    bool in_round = s->strategy == TR_ONE_FOR_ALL;
    for (child *k = first(s); k != NULL; k = after(s, k)) {
        in_round = in_round || k == c;
        if (!in_round) {
            continue;
        }
        if (k->state == CHILD_RUNNING) {
            /* Temporary bystanders stop and are not restarted. */
            k->want_stop = true;
            k->want_restart = k->spec.restart != TR_TEMPORARY;
        } else if (k->state == CHILD_HELD) {
            k->want_restart = k->spec.restart != TR_TEMPORARY || k == c;
        }
    }
    start_sequence(ctx, s, SUP_ROUND);
}

/* A report: the child ended and its run-right is ours. */
static void
on_report(tr_ctx *ctx, tr_sup *s, const tr_child_report *r)
{
    child *c = find_addr(s, r->why.who.id);

    if (c == NULL) {
        /* A child of an earlier incarnation of this supervisor: nobody
         * else will end it. */
        tr_actor *slot = tr__table_slot(ctx->sys->table, r->why.who.id);
        tr_ctx cc = {
            .sys = ctx->sys,
            .actor = slot,
            .worker = ctx->worker,
            .self = r->why.who.id,
            .gen = tr__id_gen(r->why.who.id),
        };
        const tr_exit why = {r->why.kind, r->why.code, r->why.text};
        tr__actor_finish(&cc, &why, false);
        return;
    }
    bool asked = c->state == CHILD_STOPPING;
    set_state(ctx, s, c, CHILD_HELD);
    tree_lock(ctx);
    c->last = r->why;
    if (c->killed == KILL_LATE) {
        c->last.kind = TR_EXIT_KILLED;
        snprintf(c->last.text, sizeof(c->last.text),
                 "killed: did not stop within %d ms", shutdown_of(c));
    } else if (c->killed == KILL_NOW) {
        /* A killed supervisor reports its end as a stop. */
        c->last.kind = TR_EXIT_KILLED;
        c->last.code = TR_OK;
        snprintf(c->last.text, sizeof(c->last.text), "killed");
    }
    c->killed = KILL_NONE;
    if (c->last.kind == TR_EXIT_FAILED || c->last.kind == TR_EXIT_KILLED) {
        c->fail_ms = now_ms(ctx);
        c->failed = true;
    }
    tree_unlock(ctx);
    c->serial = ++s->next_serial; /* a pending deadline is void now */
    switch (s->mode) {
    case SUP_IDLE:
        decide(ctx, s, c);
        return;
    case SUP_ADMIN:
        if (c == s->admin_child) {
            finish_child(ctx, s, c);
            sequence_next(ctx, s);
        } else if (independent(s)) {
            decide(ctx, s, c); /* its siblings do not wait for it */
        } else {
            set_undecided(s, c, true);
        }
        return;
    case SUP_ROUND:
        if (asked && !c->want_restart) {
            /* A bystander that is not restarted ends now. */
            finish_child(ctx, s, c);
            if (leaves_when_down(s, c)) {
                remove_child(ctx, s, c);
            }
        } else if (!asked && !c->want_stop && !c->want_restart) {
            set_undecided(s, c, true); /* ended on its own, outside it */
        }
        sequence_next(ctx, s);
        return;
    case SUP_TERMINATE:
    case SUP_GIVE_UP:
    case SUP_KILL:
        finish_child(ctx, s, c);
        sequence_next(ctx, s);
        return;
    }
}

static void
on_deadline(tr_ctx *ctx, tr_sup *s, const timer_ref *ref)
{
    child *c = find_addr(s, ref->addr);

    if (c == NULL || c->serial != ref->serial || c->state != CHILD_STOPPING) {
        return;
    }
    /* It had its time (or a kill found no memory: then again). */
    kill_now(ctx, s, c, c->killed == KILL_NOW ? KILL_NOW : KILL_LATE);
}

static void
on_retry(tr_ctx *ctx, tr_sup *s, const timer_ref *ref)
{
    child *c = find_addr(s, ref->addr);

    if (c == NULL || c->serial != ref->serial || c->state != CHILD_HELD ||
        !c->want_restart || ending(s->mode)) {
        return; /* void: terminated, restarted, or we are ending */
    }
    if (independent(s)) {
        restart_one(ctx, s, c); /* whatever else is going on */
    } else if (s->mode == SUP_IDLE) {
        restart_round(ctx, s);
    } else {
        s->round_retry = true; /* after the sequence */
    }
}

/*
 * Our supervisor kills us: kill every child that has not reported its end
 * (all at once: a kill has no order), end them as their reports come, then
 * end (sequence_next). A pending terminate_child is answered TR_ESHUTDOWN;
 * other requests wait, and are dropped at the end.
 */
static void
start_kill(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_KILL) {
        return;
    }
    if (s->mode == SUP_ADMIN && s->admin_reply != NULL) {
        admin_rep rep = {.rc = TR_ESHUTDOWN};
        (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
        s->admin_reply = NULL;
    }
    s->admin_child = NULL;
    s->admin_forget = false;
    s->round_owner = NULL;
    set_mode(ctx, s, SUP_KILL);
    for (child *c = seen(s, s->tail), *pv; c != NULL; c = pv) {
        pv = before(s, c);
        c->want_stop = false;
        c->want_restart = false;
        set_undecided(s, c, false);
        if (c->state == CHILD_HELD) {
            finish_child(ctx, s, c);
        } else if (c->state == CHILD_RUNNING || c->state == CHILD_STOPPING) {
            set_state(ctx, s, c, CHILD_STOPPING);
            c->serial = ++s->next_serial; /* a pending deadline is void */
            kill_now(ctx, s, c, KILL_NOW);
        }
    }
    s->cursor = NULL;
    sequence_next(ctx, s);
}

/* Asked to stop (by our parent, shutdown, tr_actor_stop): children
 * first, in reverse order. */
static void
start_terminate(tr_ctx *ctx, tr_sup *s)
{
    if (s->mode == SUP_ADMIN && s->admin_reply != NULL) {
        admin_rep rep = {.rc = TR_ESHUTDOWN};
        (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
        s->admin_reply = NULL;
    }
    s->admin_child = NULL;
    s->admin_forget = false;
    s->round_owner = NULL;
    for (child *c = first(s); c != NULL; c = after(s, c)) {
        c->want_stop = c->state == CHILD_RUNNING;
        c->want_restart = false;
        set_undecided(s, c, false);
    }
    start_sequence(ctx, s, SUP_TERMINATE);
}

/* ---- the run-time API, supervisor side ---- */

/* Stop child `c` alone (terminate_child, or a start undone): the reply,
 * if any, goes when it has ended. */
static void
stop_one(tr_ctx *ctx, tr_sup *s, child *c, tr_reply_to *h, bool forget)
{
    set_mode(ctx, s, SUP_ADMIN);
    s->admin_reply = h;
    s->admin_child = c;
    s->admin_forget = forget;
    sequence_next(ctx, s);
}

/* Returns the child it started (held), or NULL. */
static child *
do_start_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, admin_rep *rep)
{
    tr_child_spec spec;
    char why[160];
    char ordinal[16];

    if (s->n >= TR_SUP_CHILDREN_MAX) {
        rep->rc = TR_EFULL;
        return NULL;
    }
    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        if (q->has_spec) {
            rep->rc = TR_EINVAL;
            return NULL;
        }
        spec = s->tmpl->spec;
        snprintf(ordinal, sizeof(ordinal), "%u", s->next_ordinal + 1);
        spec.id = ordinal;
    } else {
        if (!q->has_spec || child_spec_check(&q->spec, why, sizeof(why))) {
            rep->rc = TR_EINVAL;
            return NULL;
        }
        child *old = find_id(s, q->spec.id);
        if (old != NULL) {
            /* OTP: {already_started, Pid} while it runs, already_present
             * otherwise; one waiting to be restarted keeps its address. */
            bool runs =
                old->state == CHILD_RUNNING || old->state == CHILD_STOPPING;
            rep->rc = runs ? TR_EALREADY : TR_EEXIST;
            rep->addr = old->addr;
            return NULL;
        }
        spec = q->spec;
    }
    child *c = new_child(s, &spec, q->has_spec ? q->spec.arg : q->arg);
    if (c == NULL) {
        rep->rc = TR_ENOMEM;
        return NULL;
    }
    rep->rc = add_child(ctx, s, c);
    if (rep->rc != TR_OK) {
        tr__free(c, sizeof(*c));
        return NULL;
    }
    int rc = spawn_child(ctx, s, c);
    if (rc == TR_OK) {
        if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
            s->next_ordinal++; /* the id is taken for good */
        }
        rep->addr = c->addr;
        return c;
    }
    rep->rc = rc == TR_IGNORE ? TR_OK : rc;
    /* Ignored: kept as a spec, unless dynamic or temporary (OTP). */
    if (rc != TR_IGNORE || leaves_when_down(s, c)) {
        remove_child(ctx, s, c);
        return NULL;
    }
    return c;
}

/* A simple_one_for_one id this supervisor has handed out: the decimal
 * ordinal of a child that has been started (perhaps gone since). */
static bool
issued(const tr_sup *s, const char *id)
{
    uint64_t v = 0;

    if (s->strategy != TR_SIMPLE_ONE_FOR_ONE || id[0] < '1' || id[0] > '9') {
        return false;
    }
    for (const char *p = id; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > UINT32_MAX) {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v <= s->next_ordinal;
}

/* Returns false when the reply will come later. */
static bool
do_terminate_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, tr_reply_to *h,
                   admin_rep *rep)
{
    child *c = find_id(s, q->id);

    if (c == NULL) {
        /* OTP: a dynamic child that has gone is terminated already. */
        rep->rc = issued(s, q->id) ? TR_OK : TR_ENOTFOUND;
        return true;
    }
    if (c->state == CHILD_HELD) {
        /* It waits to be restarted: it ends here, and its retry is void. */
        bool owner = c == s->round_owner;
        finish_child(ctx, s, c);
        if (owner) {
            abandon_round(ctx, s, c);
        }
    }
    if (c->state == CHILD_DOWN) {
        if (leaves_when_down(s, c)) {
            remove_child(ctx, s, c);
        }
        rep->rc = TR_OK;
        return true;
    }
    stop_one(ctx, s, c, h, false);
    return false;
}

/* The terminated child a restart_child or delete_child names; NULL with
 * the reason in `rep` when there is none. */
static child *
terminated_child(tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = find_id(s, q->id);

    if (c == NULL) {
        rep->rc = TR_ENOTFOUND;
    } else if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        rep->rc = TR_ESTATE;
    } else if (c->state == CHILD_HELD) {
        rep->rc = TR_ERESTARTING;
    } else if (c->state != CHILD_DOWN) {
        rep->rc = TR_ERUNNING;
    } else {
        return c;
    }
    return NULL;
}

/* Returns the child it started (held), or NULL. */
static child *
do_restart_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = terminated_child(s, q, rep);

    if (c == NULL) {
        return NULL;
    }
    int rc = spawn_child(ctx, s, c);
    rep->rc = rc == TR_IGNORE ? TR_OK : rc;
    if (rc != TR_OK) {
        return NULL;
    }
    rep->addr = c->addr;
    return c;
}

static void
do_delete_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = terminated_child(s, q, rep);

    if (c != NULL) {
        remove_child(ctx, s, c);
        rep->rc = TR_OK;
    }
}

static void
do_count(tr_sup *s, admin_rep *rep)
{
    for (child *c = first(s); c != NULL; c = after(s, c)) {
        rep->counts.specs++;
        rep->counts.active += c->state == CHILD_RUNNING;
        if (c->spec.kind == TR_SUPERVISOR) {
            rep->counts.supervisors++;
        } else {
            rep->counts.workers++;
        }
    }
}

/* which_children's answer, allocated (`*size`); NULL when out of memory. */
static admin_rep *
which(tr_sup *s, const admin_req *q, size_t *size)
{
    uint32_t n = s->n < q->cap ? s->n : q->cap;
    admin_rep *rep;

    *size = sizeof(admin_rep) + sizeof(tr_child_info) * n;
    if ((rep = tr__calloc(*size)) == NULL) {
        return NULL;
    }
    rep->total = s->n;
    uint32_t i = 0;
    for (child *c = seen(s, s->head); c != NULL && i < n;
         c = seen(s, c->next), i++) {
        tr_child_info *info = &rep->infos[i];
        snprintf(info->id, sizeof(info->id), "%s", c->id);
        info->addr = c->addr; /* kept while it waits to be restarted */
        info->kind = c->spec.kind;
        info->restart = c->spec.restart;
        info->running = c->state == CHILD_RUNNING;
        info->restarts = c->restarts;
    }
    return rep;
}

/* Handle one request; false when the reply will come later. */
static bool
handle_request(tr_ctx *ctx, tr_sup *s, uint32_t type, const admin_req *q,
               tr_reply_to *h)
{
    size_t size = sizeof(admin_rep);
    admin_rep small = {.rc = TR_OK};
    admin_rep *rep = &small;
    child *started = NULL;

    switch (type) {
    case REQ_START_CHILD:
        started = do_start_child(ctx, s, q, rep);
        break;
    case REQ_TERMINATE_CHILD:
        if (!do_terminate_child(ctx, s, q, h, rep)) {
            return false;
        }
        break;
    case REQ_RESTART_CHILD:
        started = do_restart_child(ctx, s, q, rep);
        break;
    case REQ_DELETE_CHILD:
        do_delete_child(ctx, s, q, rep);
        break;
    case REQ_COUNT_CHILDREN:
        do_count(s, rep);
        break;
    case REQ_WHICH_CHILDREN:
        rep = which(s, q, &size);
        if (rep == NULL) {
            small.rc = TR_ENOMEM;
            rep = &small;
            size = sizeof(small);
        }
        break;
    default:
        rep->rc = TR_EINVAL;
        break;
    }
    int sent = tr_reply_send(h, rep, size);
    if (rep != &small) {
        tr__free(rep, size);
    }
    if (started == NULL) {
        return true;
    }
    if (started->state == CHILD_DOWN) {
        /* Ignored, kept as a spec: a start nobody heard of leaves none. */
        if (sent != TR_OK && type == REQ_START_CHILD) {
            remove_child(ctx, s, started);
        }
        return true;
    }
    release_child(ctx, started);
    if (sent != TR_OK) {
        /* The caller has given up (timed out) or could not be told: undo
         * the start, so that no child runs that nobody knows of. */
        stop_one(ctx, s, started, NULL, type == REQ_START_CHILD);
    }
    return true;
}

static void
run_deferred(tr_ctx *ctx, tr_sup *s)
{
    while (s->deferred != NULL && s->mode == SUP_IDLE) {
        deferred *d = s->deferred;
        s->deferred = d->next;
        if (s->deferred == NULL) {
            s->deferred_tail = &s->deferred;
        }
        (void)handle_request(ctx, s, d->type, &d->req, d->reply);
        tr__free(d, sizeof(*d));
    }
}

/* ---- the behaviour ---- */

static void free_sup(tr_ctx *ctx, tr_sup *s);
static void sup_ended(tr_exit_hook *h, tr_ctx *ctx);

/* Stop the children started so far by a start that failed, in reverse
 * order: we hold their run-rights, so their `stop`s run here and now. */
static void
unwind_start(tr_ctx *ctx, tr_sup *s, child *failed)
{
    for (child *k = failed->prev; k != NULL; k = k->prev) {
        if (k->state != CHILD_RUNNING) {
            continue;
        }
        tr_ctx kc = child_ctx(ctx, k);
        const tr_exit down = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
        bool ended_in_init = tr_load_relaxed(&k->x->held) != 0;
        set_state(ctx, s, k, CHILD_DOWN);
        tr__actor_finish(&kc, &down, !ended_in_init);
    }
}

static int
sup_init(tr_ctx *ctx, void *state, const void *arg)
{
    const tr_sup_spec *spec = arg;
    tr_sup **slot = state;
    char why[160];
    int rc;

    if ((rc = tr_sup_spec_check(spec, why, sizeof(why))) != TR_OK) {
        (void)tr_fail(ctx, rc, why);
        return rc;
    }
    tr_sup *s = tr__calloc(sizeof(*s));
    if (s == NULL) {
        return TR_ENOMEM;
    }
    *slot = s;
    s->by_id.key = KEY_ID;
    s->by_addr.key = KEY_ADDR;
    s->deferred_tail = &s->deferred;
    tr_init_relaxed(&s->visits, 0);
    snprintf(s->name, sizeof(s->name), "%s",
             spec->name != NULL ? spec->name : "supervisor");
    s->strategy = spec->strategy;
    s->max_restarts = spec->max_restarts;
    s->period_ms = spec->period_ms;
    if (spec->max_restarts == 0 && spec->period_ms == 0) {
        s->max_restarts = 1; /* OTP's default intensity */
    }
    if (s->period_ms == 0) {
        s->period_ms = DEFAULT_PERIOD_MS;
    }
    s->self = tr_self(ctx).id;
    s->window = tr__alloc(sizeof(uint64_t) * (s->max_restarts + 1));
    tr_ext *x = tr__ext_get(ctx->actor);
    if (s->window == NULL || x == NULL || tr_trap_exits(ctx, true) != TR_OK ||
        tr__ext_mark_supervisor(ctx) != TR_OK) {
        rc = TR_ENOMEM;
        goto fail;
    }
    s->top = tr_load_relaxed(&x->parent) == 0;

    tree_lock(ctx);
    if (s->top) {
        tr_system *sys = ctx->sys;
        if (sys->nroots == sys->caproots &&
            !tr__grow((void **)&sys->roots, &sys->caproots, sizeof(void *),
                      4)) {
            tree_unlock(ctx);
            rc = TR_ENOMEM;
            goto fail;
        }
        sys->roots[sys->nroots++] = s;
    } else {
        /* Our supervisor runs our init: its record of us is ours to link. */
        s->up = x->child;
        s->up->sub = s;
    }
    tree_unlock(ctx);

    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        s->tmpl = new_child(s, &spec->children[0], spec->children[0].arg);
        if (s->tmpl == NULL) {
            rc = TR_ENOMEM;
            goto fail;
        }
        s->ended.fn = sup_ended;
        tr__actor_on_exit(ctx, &s->ended);
        return TR_OK; /* the template starts nothing */
    }
    for (size_t i = 0; i < spec->len; i++) {
        child *c = new_child(s, &spec->children[i], spec->children[i].arg);
        if (c == NULL || add_child(ctx, s, c) != TR_OK) {
            tr__free(c, sizeof(*c));
            rc = TR_ENOMEM;
            goto fail;
        }
    }
    for (child *c = s->head; c != NULL; c = c->next) {
        rc = spawn_child(ctx, s, c);
        if (rc == TR_IGNORE) {
            continue;
        }
        if (rc != TR_OK) {
            snprintf(why, sizeof(why), "child '%s' failed to start: %s", c->id,
                     tr_errname(rc));
            unwind_start(ctx, s, c);
            (void)tr_fail(ctx, rc, why);
            goto fail;
        }
    }
    for (child *c = first(s), *nx; c != NULL; c = nx) {
        nx = after(s, c);
        if (c->state == CHILD_DOWN && c->spec.restart == TR_TEMPORARY) {
            remove_child(ctx, s, c); /* ignored temporary children go */
        }
    }
    /* From here on, however this incarnation ends, the hook cleans up. */
    s->ended.fn = sup_ended;
    tr__actor_on_exit(ctx, &s->ended);
    for (child *c = s->head; c != NULL; c = c->next) {
        if (c->state == CHILD_RUNNING) {
            release_child(ctx, c);
        }
    }
    return TR_OK;
fail:
    free_sup(ctx, s);
    *slot = NULL;
    return rc;
}

/*
 * The incarnation ends without having ended its children (see the top
 * comment): end the held ones, and kill the others without waiting; they
 * keep this address as their parent, so their reports come here. After
 * the workers are joined, shutdown's final pass ends them all instead.
 */
static void
end_children_now(tr_ctx *ctx, tr_sup *s)
{
    if (tr_load_acq(&ctx->sys->torn_down)) {
        return;
    }
    for (child *c = s->tail; c != NULL; c = c->prev) {
        if (c->state == CHILD_HELD) {
            finish_child(ctx, s, c);
        } else if (c->state != CHILD_DOWN) {
            (void)send_kill(ctx, c); /* out of memory: shutdown ends it */
        }
    }
}

/* The exit hook: runs once, when the incarnation ends, whichever way
 * (after `stop` would have, before the report to our supervisor). */
static void
sup_ended(tr_exit_hook *h, tr_ctx *ctx)
{
    tr_sup *s = tr_container_of(h, tr_sup, ended);

    end_children_now(ctx, s);
    while (s->deferred != NULL) {
        deferred *d = s->deferred;
        s->deferred = d->next;
        tr_reply_drop(d->reply);
        tr__free(d, sizeof(*d));
    }
    tr_reply_drop(s->admin_reply);
    s->admin_reply = NULL;
    free_sup(ctx, s);
    *(tr_sup **)tr__actor_state(ctx->actor) = NULL;
}

/* Unhook and free the bookkeeping (every child has ended or been let go). */
static void
free_sup(tr_ctx *ctx, tr_sup *s)
{
    tree_lock(ctx);
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
    tree_unlock(ctx);
    tr__free(s->tmpl, sizeof(child));
    if (s->window != NULL) {
        tr__free(s->window, sizeof(uint64_t) * (s->max_restarts + 1));
    }
    tr__free(s, sizeof(*s));
}

/* Queue a request until the sequence is over; false when out of memory. */
static bool
defer(tr_sup *s, uint32_t type, const admin_req *q, tr_reply_to *h)
{
    deferred *d = tr__alloc(sizeof(*d));

    if (d == NULL) {
        return false;
    }
    d->reply = h;
    d->type = type;
    d->req = *q;
    d->next = NULL;
    *s->deferred_tail = d;
    s->deferred_tail = &d->next;
    return true;
}

static int
sup_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_sup *s = *(tr_sup **)state;

    switch (msg->type) {
    case TR_MSG_CHILD:
        on_report(ctx, s, msg->data);
        return TR_OK;
    case TR_MSG_EXIT: {
        /* A request to stop (from our parent, shutdown, tr_actor_stop) or
         * our parent's exit: children first. Other linked actors' exits
         * are not ours to act on (OTP ignores them too). */
        const tr_signal *sig = msg->data;
        tr_ext *x = tr_load_acq(&ctx->actor->ext);
        bool stop_request = sig->ref == 0 && sig->code == TR_ESHUTDOWN;
        if ((stop_request || sig->who.id == tr_load_relaxed(&x->parent)) &&
            !ending(s->mode)) {
            start_terminate(ctx, s);
        }
        return TR_OK;
    }
    case MSG_DEADLINE:
    case MSG_RETRY: {
        timer_ref ref;
        if (msg->size != sizeof(ref)) {
            return TR_OK;
        }
        memcpy(&ref, msg->data, sizeof(ref));
        if (msg->type == MSG_DEADLINE) {
            on_deadline(ctx, s, &ref);
        } else {
            on_retry(ctx, s, &ref);
        }
        return TR_OK;
    }
    case MSG_KILL:
        start_kill(ctx, s);
        return TR_OK;
    default:
        break;
    }
    if (msg->call == NULL || msg->type < REQ_START_CHILD ||
        msg->type > REQ_COUNT_CHILDREN || msg->size != sizeof(admin_req)) {
        return TR_OK; /* not for us: ignore, as OTP logs and goes on */
    }
    tr_reply_to *h = tr_reply_take(msg);
    const admin_req *q = msg->data;
    bool reads =
        msg->type == REQ_WHICH_CHILDREN || msg->type == REQ_COUNT_CHILDREN;
    if (s->mode != SUP_IDLE && !reads) {
        if (!defer(s, msg->type, q, h)) {
            tr_reply_drop(h); /* the caller hears TR_ECLOSED */
        }
        return TR_OK;
    }
    (void)handle_request(ctx, s, msg->type, q, h);
    return TR_OK;
}

const tr_behaviour tr_supervisor_behaviour = {
    .name = "supervisor",
    .state_size = sizeof(tr_sup *),
    .init = sup_init,
    .handle = sup_handle,
    /* No `stop`: the exit hook does its work, and runs on a kill too. */
};

/* ---- the run-time API, caller side ---- */

int
tr_sup_start(tr_ctx *ctx, const tr_sup_spec *spec, const tr_sup_opts *opts,
             tr_addr *out)
{
    char *why = opts != NULL ? opts->why : NULL;
    size_t cap = opts != NULL ? opts->why_cap : 0;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    int rc = tr_sup_spec_check(spec, why, cap);
    if (rc != TR_OK) {
        return rc;
    }
    return tr_spawn(ctx, &tr_supervisor_behaviour, spec, NULL, out);
}

/*
 * Send request `type` to supervisor `sup` and wait for its answer.
 *
 * Two answers need translating. A live actor that is not a supervisor
 * gets nothing (TR_ENOTSUP): the requests are the runtime's, and no user
 * handler may see them. And tr__ask reports an out-of-memory that struck
 * after the request was sent (its timer could not be armed) as a timeout
 * at once; a timeout before its time is that: TR_ENOMEM. The supervisor's
 * answer then finds nobody, and a start is undone as after a timeout.
 */
static int
ask(tr_ctx *ctx, tr_addr sup, uint32_t type, const admin_req *q, admin_rep *rep,
    size_t cap, tr_timeout timeout)
{
    size_t len = 0;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    tr_system *sys = ctx->sys;
    if (timeout == TR_NOWAIT) {
        return TR_EINVAL;
    }
    if (sup.id != 0 && tr__addr_check(sys, sup) == TR_OK) {
        tr_actor *a = tr__table_slot(sys->table, sup.id);
        if (a != NULL &&
            tr__ext_is_other_than_supervisor(a, tr__id_gen(sup.id))) {
            return TR_ENOTSUP;
        }
    }
    int rc = tr__ask(ctx, sup, type, q, sizeof(*q), rep, cap, &len, timeout);
    if (rc == TR_OK && len < sizeof(admin_rep)) {
        rc = TR_ECLOSED;
    }
    return rc == TR_OK ? rep->rc : rc;
}

int
tr_sup_start_child_wait(tr_ctx *ctx, tr_addr sup, const tr_child_spec *spec,
                        const void *arg, tr_timeout timeout, tr_addr *out)
{
    admin_req q = {.has_spec = spec != NULL, .arg = arg};
    admin_rep rep = {0};

    if (spec != NULL) {
        q.spec = *spec;
    }
    int rc = ask(ctx, sup, REQ_START_CHILD, &q, &rep, sizeof(rep), timeout);
    if (out != NULL) {
        *out = rep.addr;
    }
    return rc;
}

/* A request naming a child by id; the child's address (if any) in
 * `*out`. */
static int
ask_by_id(tr_ctx *ctx, tr_addr sup, uint32_t type, const char *id,
          tr_timeout timeout, tr_addr *out)
{
    admin_req q = {0};
    admin_rep rep = {0};

    if (!id_ok(id)) {
        return TR_EINVAL;
    }
    snprintf(q.id, sizeof(q.id), "%s", id);
    int rc = ask(ctx, sup, type, &q, &rep, sizeof(rep), timeout);
    if (out != NULL) {
        *out = rep.addr;
    }
    return rc;
}

int
tr_sup_terminate_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                            tr_timeout timeout)
{
    return ask_by_id(ctx, sup, REQ_TERMINATE_CHILD, id, timeout, NULL);
}

int
tr_sup_restart_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                          tr_timeout timeout, tr_addr *out)
{
    return ask_by_id(ctx, sup, REQ_RESTART_CHILD, id, timeout, out);
}

int
tr_sup_delete_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                         tr_timeout timeout)
{
    return ask_by_id(ctx, sup, REQ_DELETE_CHILD, id, timeout, NULL);
}

int
tr_sup_which_children_wait(tr_ctx *ctx, tr_addr sup, tr_child_info *out,
                           size_t cap, size_t *len, tr_timeout timeout)
{
    admin_req q = {0};

    if (len == NULL || (out == NULL && cap != 0) || cap > UINT32_MAX) {
        return TR_EINVAL;
    }
    q.cap = (uint32_t)cap;
    size_t size = sizeof(admin_rep) + sizeof(tr_child_info) * cap;
    admin_rep *rep = tr__calloc(size);
    if (rep == NULL) {
        return TR_ENOMEM;
    }
    int rc = ask(ctx, sup, REQ_WHICH_CHILDREN, &q, rep, size, timeout);
    if (rc == TR_OK) {
        *len = rep->total;
        size_t n = rep->total < cap ? rep->total : cap;
        if (n != 0) {
            memcpy(out, rep->infos, sizeof(tr_child_info) * n);
        }
    }
    tr__free(rep, size);
    return rc;
}

int
tr_sup_count_children_wait(tr_ctx *ctx, tr_addr sup, tr_child_counts *out,
                           tr_timeout timeout)
{
    admin_req q = {0};
    admin_rep rep = {0};

    if (out == NULL) {
        return TR_EINVAL;
    }
    int rc = ask(ctx, sup, REQ_COUNT_CHILDREN, &q, &rep, sizeof(rep), timeout);
    if (rc == TR_OK) {
        *out = rep.counts;
    }
    return rc;
}

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
    if (sys == NULL || path == NULL || out == NULL) {
        return TR_EINVAL;
    }
    int rc = TR_ENOTFOUND;
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
    return rc;
}
