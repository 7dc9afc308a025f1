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
 * Sequences. Stopping children one by one in reverse start order (a
 * one_for_all round, a give-up, a shutdown, a terminate_child) is a small
 * state machine: ask the last running child to stop, wait for its report
 * (or its shutdown deadline: then kill), go on with the next. Nothing
 * blocks: reports, deadlines and requests are all messages, so a
 * supervisor keeps answering while a child loops in failing restarts.
 *
 * Starting. Children are spawned holding their run-rights: when the
 * supervisor starts, none of its children runs until all have started, so
 * a failing `init` can stop the ones before it, in reverse order, on the
 * spot.
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
 * Every change to the bookkeeping is made under the system's tree_lock so
 * that inspection (inspect/) sees a consistent tree; the lock is never
 * held across a child's callback.
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
    MSG_DEADLINE, /* a child's shutdown time is up (payload: serial) */
    MSG_RETRY,    /* restart what waits to be restarted */
    MSG_KILL,     /* from our supervisor: end the subtree, then ourselves */
};

enum { DEFAULT_SHUTDOWN_MS = 5000, DEFAULT_PERIOD_MS = 5000 };

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
        snprintf(why, cap, "child '%s' has a negative shutdown %d", c->id,
                 c->shutdown_ms);
    } else if (c->backoff.min_ms > c->backoff.max_ms) {
        snprintf(why, cap, "child '%s' has backoff min %u over max %u", c->id,
                 c->backoff.min_ms, c->backoff.max_ms);
    } else {
        return TR_OK;
    }
    return TR_EINVAL;
}

int
tr_sup_spec_check(const tr_sup_spec *spec, char *why, size_t cap)
{
    char ignored[8];
    int rc = TR_EINVAL;

    if (why == NULL) {
        why = ignored;
        cap = sizeof(ignored);
    }
    if (spec == NULL) {
        snprintf(why, cap, "no spec");
    } else if (spec->name != NULL && strnlen(spec->name, 64) >= 64) {
        snprintf(why, cap, "the name is over 63 bytes");
    } else if ((unsigned)spec->strategy > TR_SIMPLE_ONE_FOR_ONE) {
        snprintf(why, cap, "unknown strategy %d", (int)spec->strategy);
    } else if (spec->len != 0 && spec->children == NULL) {
        snprintf(why, cap, "%zu children but no array", spec->len);
    } else if (spec->strategy == TR_SIMPLE_ONE_FOR_ONE && spec->len != 1) {
        snprintf(why, cap,
                 "simple_one_for_one takes exactly one template, not %zu",
                 spec->len);
    } else {
        rc = TR_OK;
    }
    for (size_t i = 0; rc == TR_OK && i < spec->len; i++) {
        rc = child_spec_check(&spec->children[i], why, cap);
        for (size_t j = 0; rc == TR_OK && j < i; j++) {
            if (strcmp(spec->children[i].id, spec->children[j].id) == 0) {
                snprintf(why, cap, "duplicate child id '%s'",
                         spec->children[i].id);
                rc = TR_EINVAL;
            }
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

/* Under the tree lock. */
static int
append(tr_sup *s, child *c)
{
    if (s->n == s->cap &&
        !tr__grow((void **)&s->kids, &s->cap, sizeof(child *), 8)) {
        return TR_ENOMEM;
    }
    s->kids[s->n++] = c;
    return TR_OK;
}

/* Forget a child that has no actor. */
static void
remove_child(tr_ctx *ctx, tr_sup *s, child *c)
{
    tree_lock(ctx);
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->kids[i] == c) {
            memmove(&s->kids[i], &s->kids[i + 1],
                    sizeof(child *) * (s->n - i - 1));
            s->n--;
            break;
        }
    }
    tree_unlock(ctx);
    tr__free(c, sizeof(*c));
}

static child *
find_id(tr_sup *s, const char *id)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (strcmp(s->kids[i]->id, id) == 0) {
            return s->kids[i];
        }
    }
    return NULL;
}

static child *
find_serial(tr_sup *s, uint32_t serial)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->kids[i]->serial == serial) {
            return s->kids[i];
        }
    }
    return NULL;
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

/* Tell inspection, while it watches (outside the tree lock: it reads the
 * tree). Acquire: pairs with the release that turned watching on, after
 * `tree_event` was set. */
static void
note(tr_ctx *ctx, unsigned what, const child *c)
{
    if (tr_unlikely(tr_load_acq(&ctx->sys->watched) != 0)) {
        ctx->sys->tree_event(ctx, what, c);
    }
}

static void
set_state(tr_ctx *ctx, child *c, child_state st)
{
    tree_lock(ctx);
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
finish_child(tr_ctx *ctx, child *c)
{
    tr_ctx cc = child_ctx(ctx, c);
    const tr_exit why = {c->last.kind, c->last.code, c->last.text};

    note(ctx, TR_TREE_STOP, c);
    set_state(ctx, c, CHILD_DOWN);
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
    tr_store_relaxed(&x->busy_ns, 0);
    tr_store_relaxed(&x->dead, 0);
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
    tree_unlock(ctx);
    note(ctx, TR_TREE_START, c);
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

/* The children the API reports: all but a simple supervisor's template. */
static uint32_t
first_listed(const tr_sup *s)
{
    return s->strategy == TR_SIMPLE_ONE_FOR_ONE ? 1 : 0;
}

/* ---- intensity ---- */

/* Count a restart; false when it is one too many. */
static bool
count_restart(tr_ctx *ctx, tr_sup *s)
{
    uint64_t now = now_ms(ctx);
    uint32_t size = s->max_restarts + 1;

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
         * spread apart, and tests can bound it. */
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
static void decide(tr_ctx *ctx, tr_sup *s, child *c);
static void run_deferred(tr_ctx *ctx, tr_sup *s);

/*
 * Try the restarts again after `delay_ms` (backoff), or at once: as a
 * message to ourselves, so that requests queued meanwhile are answered
 * between attempts (the control lane lets one user message through
 * between drains).
 */
static void
retry_later(tr_ctx *ctx, tr_sup *s, uint64_t delay_ms)
{
    int rc = TR_ENOMEM;

    if (delay_ms != 0) {
        rc = tr__send_after(ctx, tr__addr(ctx->sys, s->self), MSG_RETRY, NULL,
                            0, delay_ms, NULL);
    } else {
        tr_envelope *env = tr__env_create(0);
        if (env != NULL) {
            env->kind = TR_CTL_USER;
            env->type = MSG_RETRY;
            env->from = s->self;
            env->gen = tr__env_gen(ctx->gen);
            tr__actor_push_ctl(ctx->sys, ctx->actor, env);
            rc = TR_OK;
        }
    }
    if (rc != TR_OK) {
        (void)tr_fail(ctx, rc, "supervisor could not schedule a restart");
    }
}

static void
give_up(tr_ctx *ctx, tr_sup *s, child *c)
{
    s->give_up_code = c->last.code != TR_OK ? c->last.code : TR_ERESTARTING;
    snprintf(s->give_up_text, sizeof(s->give_up_text),
             "%.24s: more than %u restarts in %u ms; child '%.24s': %.40s",
             s->name, s->max_restarts, s->period_ms, c->id, c->last.text);
    note(ctx, TR_TREE_GIVE_UP, NULL);
    set_mode(ctx, s, SUP_GIVE_UP);
    for (uint32_t i = 0; i < s->n; i++) {
        s->kids[i]->want_stop = s->kids[i]->state == CHILD_RUNNING;
    }
    sequence_next(ctx, s);
}

/*
 * Restart, in start order, every held child that wants it. All of them
 * start before any is released; if one fails, those restarted in this
 * pass are stopped again and the whole pass is retried later (counted).
 */
static void
restart_wanted(tr_ctx *ctx, tr_sup *s)
{
    char why[sizeof(((tr_signal *)0)->text)];
    child *failed = NULL;
    int rc = TR_OK;
    uint32_t i;

    for (i = 0; i < s->n; i++) {
        child *c = s->kids[i];
        if (c->state != CHILD_HELD || !c->want_restart) {
            continue;
        }
        uint64_t started = now_ms(ctx); /* when `init` began */
        rc = tr__actor_reinit(ctx, c->slot, c->arg, why, sizeof(why));
        if (rc == TR_IGNORE) {
            c->want_restart = false;
            tree_lock(ctx);
            c->last.kind = TR_EXIT_NORMAL;
            c->last.code = TR_OK;
            snprintf(c->last.text, sizeof(c->last.text), "ignored");
            tree_unlock(ctx);
            finish_child(ctx, c);
            continue;
        }
        if (rc != TR_OK) {
            failed = c;
            break;
        }
        tree_lock(ctx);
        c->state = CHILD_RUNNING;
        c->restarts++;
        c->up_ms = started;
        tree_unlock(ctx);
        note(ctx, TR_TREE_RESTART, c);
        c->undecided = false; /* a round restarted it: nothing to decide */
    }
    if (failed != NULL) {
        tree_lock(ctx);
        failed->last.kind = TR_EXIT_FAILED;
        failed->last.code = rc;
        snprintf(failed->last.text, sizeof(failed->last.text), "%s", why);
        failed->fail_ms = now_ms(ctx);
        failed->failed = true;
        failed->restarts++;
        tree_unlock(ctx);
        note(ctx, TR_TREE_EXIT, failed);
        for (uint32_t j = i; j-- > 0;) {
            child *c = s->kids[j];
            if (c->state == CHILD_RUNNING && c->want_restart) {
                stop_held(ctx, c);
                set_state(ctx, c, CHILD_HELD);
            }
        }
        if (!has_backoff(failed) && !count_restart(ctx, s)) {
            give_up(ctx, s, failed);
            return;
        }
        retry_later(ctx, s, has_backoff(failed) ? backoff_delay(failed) : 0);
        return;
    }
    for (i = 0; i < s->n; i++) {
        child *c = s->kids[i];
        if (c->want_restart && c->state == CHILD_RUNNING) {
            c->want_restart = false;
            release_child(ctx, c);
        }
    }
    /* simple_one_for_one children that are not restarted leave (the
     * template, kids[0], stays). */
    for (i = s->n; i-- > first_listed(s);) {
        child *c = s->kids[i];
        if (c->state == CHILD_DOWN && (s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
                                       c->spec.restart == TR_TEMPORARY)) {
            remove_child(ctx, s, c);
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
        (void)tr__send_after(ctx, tr__addr(ctx->sys, s->self), MSG_DEADLINE,
                             &c->serial, sizeof(c->serial), 1, NULL);
    }
}

/* Ask a running child to stop, with its deadline. */
static void
ask_stop(tr_ctx *ctx, tr_sup *s, child *c)
{
    int sd = shutdown_of(c);
    uint64_t gen = tr__id_gen(c->addr.id);

    set_state(ctx, c, CHILD_STOPPING);
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
        tr_addr self = tr__addr(ctx->sys, s->self);
        (void)tr__send_after(ctx, self, MSG_DEADLINE, &c->serial,
                             sizeof(c->serial), (uint64_t)sd, NULL);
    }
}

/* Drive the current stop sequence one step. */
static void
sequence_next(tr_ctx *ctx, tr_sup *s)
{
    for (uint32_t i = s->n; i-- > 0;) {
        if (s->kids[i]->state == CHILD_STOPPING) {
            return; /* wait for its report */
        }
    }
    for (uint32_t i = s->n; i-- > 0;) {
        child *c = s->kids[i];
        if (c->want_stop && c->state == CHILD_RUNNING) {
            ask_stop(ctx, s, c);
            return;
        }
    }
    for (uint32_t i = 0; i < s->n; i++) {
        s->kids[i]->want_stop = false;
    }
    sup_mode mode = s->mode;
    set_mode(ctx, s, SUP_IDLE);
    switch (mode) {
    case SUP_ROUND:
        /* Bystanders that are not restarted end here. */
        for (uint32_t i = s->n; i-- > 0;) {
            child *c = s->kids[i];
            if (c->state == CHILD_HELD && !c->want_restart && !c->undecided) {
                finish_child(ctx, c);
            }
        }
        restart_wanted(ctx, s);
        break;
    case SUP_ADMIN: {
        child *c = s->admin_child;
        s->admin_child = NULL;
        if (c != NULL && c->state == CHILD_HELD) {
            finish_child(ctx, c);
            if (s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
                c->spec.restart == TR_TEMPORARY) {
                remove_child(ctx, s, c);
            }
        }
        if (s->admin_reply != NULL) {
            admin_rep rep = {.rc = TR_OK};
            (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
            s->admin_reply = NULL;
        }
        break;
    }
    case SUP_TERMINATE:
    case SUP_GIVE_UP:
    case SUP_KILL:
        for (uint32_t i = s->n; i-- > 0;) {
            if (s->kids[i]->state == CHILD_HELD) {
                finish_child(ctx, s->kids[i]);
            }
        }
        if (mode != SUP_GIVE_UP) {
            (void)tr_stop(ctx);
        } else {
            /* A top-level tree is over: its end wakes tr_system_wait,
             * once the failure hook has reported it. */
            tr_load_acq(&ctx->actor->ext)->escalate = s->top;
            (void)tr_fail(ctx, s->give_up_code, s->give_up_text);
        }
        return;
    case SUP_IDLE:
        break;
    }
    if (s->mode != SUP_IDLE) {
        return;
    }
    /* Children that ended while the sequence ran. */
    for (uint32_t i = 0; i < s->n && s->mode == SUP_IDLE; i++) {
        child *c = s->kids[i];
        if (c->undecided) {
            c->undecided = false;
            if (c->state == CHILD_HELD) {
                decide(ctx, s, c);
            }
        }
    }
    if (s->mode == SUP_IDLE && s->retry_pending) {
        s->retry_pending = false;
        restart_wanted(ctx, s);
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
        finish_child(ctx, c);
        if (c->spec.restart == TR_TEMPORARY ||
            s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
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
    if (s->strategy == TR_ONE_FOR_ONE || s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        if (has_backoff(c)) {
            retry_later(ctx, s, backoff_delay(c));
        } else {
            restart_wanted(ctx, s);
        }
        return;
    }
    uint32_t from = 0;
    if (s->strategy == TR_REST_FOR_ONE) {
        while (s->kids[from] != c) {
            from++;
        }
    }
    for (uint32_t i = from; i < s->n; i++) {
        child *k = s->kids[i];
        if (k->state == CHILD_RUNNING) {
            /* Temporary bystanders stop and are not restarted. */
            k->want_stop = true;
            k->want_restart = k->spec.restart != TR_TEMPORARY;
        } else if (k->state == CHILD_HELD) {
            k->want_restart = k->spec.restart != TR_TEMPORARY || k == c;
        }
    }
    set_mode(ctx, s, SUP_ROUND);
    sequence_next(ctx, s);
}

/* A report: the child ended and its run-right is ours. */
static void
on_report(tr_ctx *ctx, tr_sup *s, const tr_child_report *r)
{
    child *c = NULL;

    for (uint32_t i = 0; i < s->n; i++) {
        if (s->kids[i] == r->child && s->kids[i]->addr.id == r->why.who.id) {
            c = s->kids[i];
        }
    }
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
    tree_lock(ctx);
    c->state = CHILD_HELD;
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
    note(ctx, TR_TREE_EXIT, c);
    c->serial = ++s->next_serial; /* a pending deadline is void now */
    if (s->mode != SUP_IDLE) {
        if (!asked && s->mode != SUP_TERMINATE && s->mode != SUP_GIVE_UP &&
            s->mode != SUP_KILL && !c->want_stop && !c->want_restart) {
            c->undecided = true; /* ended on its own, outside the round */
        }
        c->want_stop = false;
        sequence_next(ctx, s);
        return;
    }
    decide(ctx, s, c);
}

static void
on_deadline(tr_ctx *ctx, tr_sup *s, uint32_t serial)
{
    child *c = find_serial(s, serial);

    if (c == NULL || c->state != CHILD_STOPPING) {
        return;
    }
    /* It had its time (or a kill found no memory: then again). */
    kill_now(ctx, s, c, c->killed == KILL_NOW ? KILL_NOW : KILL_LATE);
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
    set_mode(ctx, s, SUP_KILL);
    for (uint32_t i = s->n; i-- > 0;) {
        child *c = s->kids[i];
        c->want_stop = false;
        c->want_restart = false;
        c->undecided = false;
        if (c->state == CHILD_RUNNING || c->state == CHILD_STOPPING) {
            set_state(ctx, c, CHILD_STOPPING);
            c->serial = ++s->next_serial; /* a pending deadline is void */
            kill_now(ctx, s, c, KILL_NOW);
        }
    }
    sequence_next(ctx, s);
}

/* ---- the run-time API, supervisor side ---- */

static void
reply(tr_reply_to *h, const admin_rep *rep, size_t size)
{
    (void)tr_reply_send(h, rep, size);
}

static void
do_start_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, admin_rep *rep)
{
    tr_child_spec spec;
    char why[160];
    char ordinal[16];

    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        if (q->has_spec) {
            rep->rc = TR_EINVAL;
            return;
        }
        spec = s->kids[0]->spec; /* kids[0] is the template */
        snprintf(ordinal, sizeof(ordinal), "%u", ++s->next_ordinal);
        spec.id = ordinal;
    } else {
        if (!q->has_spec || child_spec_check(&q->spec, why, sizeof(why))) {
            rep->rc = TR_EINVAL;
            return;
        }
        child *old = find_id(s, q->spec.id);
        if (old != NULL) {
            rep->rc = old->state == CHILD_DOWN ? TR_EEXIST : TR_EALREADY;
            rep->addr = old->addr;
            return;
        }
        spec = q->spec;
    }
    child *c = new_child(s, &spec, q->has_spec ? q->spec.arg : q->arg);
    if (c == NULL) {
        rep->rc = TR_ENOMEM;
        return;
    }
    tree_lock(ctx);
    rep->rc = append(s, c);
    tree_unlock(ctx);
    if (rep->rc != TR_OK) {
        tr__free(c, sizeof(*c));
        return;
    }
    int rc = spawn_child(ctx, s, c);
    if (rc == TR_OK) {
        release_child(ctx, c);
        rep->addr = c->addr;
        return;
    }
    /* Ignored: kept as a spec, unless dynamic or temporary (OTP). */
    if (rc != TR_IGNORE || s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
        spec.restart == TR_TEMPORARY) {
        remove_child(ctx, s, c);
    }
    rep->rc = rc == TR_IGNORE ? TR_OK : rc;
}

static child *
admin_find(tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = find_id(s, q->id);

    if (c == NULL) {
        rep->rc = TR_ENOTFOUND;
    }
    return c;
}

static bool
restarting(const child *c)
{
    return c->state == CHILD_HELD;
}

/* Returns false when the reply will come later. */
static bool
do_terminate_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, tr_reply_to *h,
                   admin_rep *rep)
{
    child *c = admin_find(s, q, rep);

    if (c == NULL ||
        (s->strategy == TR_SIMPLE_ONE_FOR_ONE && c == s->kids[0])) {
        rep->rc = TR_ENOTFOUND;
        return true;
    }
    if (c->state == CHILD_HELD) {
        c->want_restart = false;
        finish_child(ctx, c);
    }
    if (c->state == CHILD_DOWN) {
        if (s->strategy == TR_SIMPLE_ONE_FOR_ONE ||
            c->spec.restart == TR_TEMPORARY) {
            remove_child(ctx, s, c);
        }
        rep->rc = TR_OK;
        return true;
    }
    c->want_stop = true;
    set_mode(ctx, s, SUP_ADMIN);
    s->admin_reply = h;
    s->admin_child = c;
    sequence_next(ctx, s);
    return false;
}

/* The terminated child a restart_child or delete_child names; NULL with
 * the reason in `rep` when there is none. */
static child *
terminated_child(tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = admin_find(s, q, rep);

    if (c == NULL) {
        return NULL;
    }
    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        rep->rc = TR_ESTATE;
    } else if (restarting(c)) {
        rep->rc = TR_ERESTARTING;
    } else if (c->state != CHILD_DOWN) {
        rep->rc = TR_ERUNNING;
    } else {
        return c;
    }
    return NULL;
}

static void
do_restart_child(tr_ctx *ctx, tr_sup *s, const admin_req *q, admin_rep *rep)
{
    child *c = terminated_child(s, q, rep);

    if (c != NULL) {
        int rc = spawn_child(ctx, s, c);
        if (rc == TR_OK) {
            release_child(ctx, c);
            rep->addr = c->addr;
        }
        rep->rc = rc == TR_IGNORE ? TR_OK : rc;
    }
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
    for (uint32_t i = first_listed(s); i < s->n; i++) {
        child *c = s->kids[i];
        rep->counts.specs++;
        rep->counts.active += c->state == CHILD_RUNNING;
        if (c->spec.kind == TR_SUPERVISOR) {
            rep->counts.supervisors++;
        } else {
            rep->counts.workers++;
        }
    }
}

/* Handle one request; false when the reply will come later. */
static bool
handle_request(tr_ctx *ctx, tr_sup *s, uint32_t type, const admin_req *q,
               tr_reply_to *h)
{
    size_t size = sizeof(admin_rep);
    admin_rep small = {.rc = TR_OK};
    admin_rep *rep = &small;

    switch (type) {
    case REQ_START_CHILD:
        do_start_child(ctx, s, q, rep);
        break;
    case REQ_TERMINATE_CHILD:
        if (!do_terminate_child(ctx, s, q, h, rep)) {
            return false;
        }
        break;
    case REQ_RESTART_CHILD:
        do_restart_child(ctx, s, q, rep);
        break;
    case REQ_DELETE_CHILD:
        do_delete_child(ctx, s, q, rep);
        break;
    case REQ_COUNT_CHILDREN:
        do_count(s, rep);
        break;
    case REQ_WHICH_CHILDREN: {
        uint32_t total = s->n - first_listed(s);
        uint32_t n = total < q->cap ? total : q->cap;
        size = sizeof(admin_rep) + sizeof(tr_child_info) * n;
        rep = tr__calloc(size);
        if (rep == NULL) {
            small.rc = TR_ENOMEM;
            rep = &small;
            size = sizeof(small);
            break;
        }
        rep->total = total;
        for (uint32_t i = 0; i < n; i++) {
            const child *c = s->kids[first_listed(s) + i];
            tr_child_info *info = &rep->infos[i];
            snprintf(info->id, sizeof(info->id), "%s", c->id);
            info->addr = c->state == CHILD_DOWN ? TR_ADDR_NONE : c->addr;
            info->kind = c->spec.kind;
            info->restart = c->spec.restart;
            info->running = c->state == CHILD_RUNNING;
            info->restarts = c->restarts;
        }
        break;
    }
    default:
        rep->rc = TR_EINVAL;
        break;
    }
    reply(h, rep, size);
    if (rep != &small) {
        tr__free(rep, size);
    }
    return true;
}

static void
run_deferred(tr_ctx *ctx, tr_sup *s)
{
    while (s->deferred != NULL && s->mode == SUP_IDLE) {
        deferred *d = s->deferred;
        s->deferred = d->next;
        (void)handle_request(ctx, s, d->type, &d->req, d->reply);
        tr__free(d, sizeof(*d));
    }
}

/* ---- the behaviour ---- */

static void free_sup(tr_ctx *ctx, tr_sup *s);
static void sup_ended(tr_exit_hook *h, tr_ctx *ctx);

static int
sup_init(tr_ctx *ctx, void *state, const void *arg)
{
    const tr_sup_spec *spec = arg;
    tr_sup **slot = state;
    char why[160];
    int rc;

    if (tr_sup_spec_check(spec, why, sizeof(why)) != TR_OK) {
        (void)tr_fail(ctx, TR_EINVAL, why);
        return TR_EINVAL;
    }
    tr_sup *s = tr__calloc(sizeof(*s));
    if (s == NULL) {
        return TR_ENOMEM;
    }
    *slot = s;
    snprintf(s->name, sizeof(s->name), "%s",
             spec->name != NULL ? spec->name : "supervisor");
    s->strategy = spec->strategy;
    s->max_restarts = spec->max_restarts;
    s->period_ms = spec->period_ms;
    if (spec->max_restarts == 0 && spec->period_ms == 0) {
        s->max_restarts = 1;
        s->period_ms = DEFAULT_PERIOD_MS;
    }
    s->self = tr_self(ctx).id;
    s->window = tr__alloc(sizeof(uint64_t) * (s->max_restarts + 1));
    tr_ext *x = tr__ext_get(ctx->actor);
    if (s->window == NULL || x == NULL ||
        (rc = tr_trap_exits(ctx, true)) != TR_OK) {
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

    for (size_t i = 0; i < spec->len; i++) {
        child *c = new_child(s, &spec->children[i], spec->children[i].arg);
        if (c == NULL) {
            rc = TR_ENOMEM;
            goto fail;
        }
        tree_lock(ctx);
        rc = append(s, c);
        tree_unlock(ctx);
        if (rc != TR_OK) {
            tr__free(c, sizeof(*c));
            goto fail;
        }
    }
    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        s->ended.fn = sup_ended;
        tr__actor_on_exit(ctx, &s->ended);
        return TR_OK; /* the template starts nothing */
    }
    for (uint32_t i = 0; i < s->n; i++) {
        child *c = s->kids[i];
        rc = spawn_child(ctx, s, c);
        if (rc == TR_IGNORE) {
            continue;
        }
        if (rc != TR_OK) {
            /* Stop those already started, in reverse order: we hold
             * their run-rights, so their `stop`s run here and now. */
            snprintf(why, sizeof(why), "child '%s' failed to start: %s", c->id,
                     tr_errname(rc));
            for (uint32_t j = i; j-- > 0;) {
                child *k = s->kids[j];
                if (k->state != CHILD_RUNNING) {
                    continue;
                }
                tr_ctx kc = child_ctx(ctx, k);
                const tr_exit down = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
                bool ended_in_init = tr_load_relaxed(&k->x->held) != 0;
                set_state(ctx, k, CHILD_DOWN);
                tr__actor_finish(&kc, &down, !ended_in_init);
            }
            (void)tr_fail(ctx, rc, why);
            goto fail;
        }
    }
    (void)why;
    for (uint32_t i = s->n; i-- > 0;) {
        child *c = s->kids[i];
        if (c->state == CHILD_DOWN && c->spec.restart == TR_TEMPORARY) {
            remove_child(ctx, s, c); /* ignored temporary children go */
        }
    }
    /* From here on, however this incarnation ends, the hook cleans up. */
    s->ended.fn = sup_ended;
    tr__actor_on_exit(ctx, &s->ended);
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->kids[i]->state == CHILD_RUNNING) {
            release_child(ctx, s->kids[i]);
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
    for (uint32_t i = s->n; i-- > 0;) {
        child *c = s->kids[i];
        if (c->state == CHILD_HELD) {
            finish_child(ctx, c);
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
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->kids[i]->sub != NULL) {
            s->kids[i]->sub->up = NULL;
        }
        tr__free(s->kids[i], sizeof(child));
    }
    tr__free(s->kids, sizeof(child *) * s->cap);
    s->kids = NULL;
    s->n = 0;
    tree_unlock(ctx);
    if (s->window != NULL) {
        tr__free(s->window, sizeof(uint64_t) * (s->max_restarts + 1));
    }
    tr__free(s, sizeof(*s));
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
        if ((!stop_request && sig->who.id != tr_load_relaxed(&x->parent)) ||
            s->mode == SUP_TERMINATE || s->mode == SUP_GIVE_UP ||
            s->mode == SUP_KILL) {
            return TR_OK;
        }
        if (s->mode == SUP_ADMIN && s->admin_reply != NULL) {
            admin_rep rep = {.rc = TR_ESHUTDOWN};
            reply(s->admin_reply, &rep, sizeof(rep));
            s->admin_reply = NULL;
        }
        set_mode(ctx, s, SUP_TERMINATE);
        for (uint32_t i = 0; i < s->n; i++) {
            child *c = s->kids[i];
            c->want_stop = c->state == CHILD_RUNNING;
            c->want_restart = false;
            c->undecided = false;
        }
        sequence_next(ctx, s);
        return TR_OK;
    }
    case MSG_DEADLINE: {
        uint32_t serial;
        memcpy(&serial, msg->data, sizeof(serial));
        on_deadline(ctx, s, serial);
        return TR_OK;
    }
    case MSG_KILL:
        start_kill(ctx, s);
        return TR_OK;
    case MSG_RETRY:
        if (s->mode == SUP_IDLE) {
            restart_wanted(ctx, s);
        } else {
            s->retry_pending = true; /* after the sequence */
        }
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
        deferred *d = tr__alloc(sizeof(*d));
        if (d == NULL) {
            tr_reply_drop(h);
            return TR_OK;
        }
        d->reply = h;
        d->type = msg->type;
        d->req = *q;
        deferred **tail = (deferred **)&s->deferred;
        while (*tail != NULL) {
            tail = &(*tail)->next;
        }
        d->next = NULL;
        *tail = d;
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
tr_sup_start(tr_ctx *ctx, const tr_sup_spec *spec, tr_addr *out)
{
    if (ctx == NULL || tr_sup_spec_check(spec, NULL, 0) != TR_OK) {
        return TR_EINVAL;
    }
    return tr_spawn(ctx, &tr_supervisor_behaviour, spec, NULL, out);
}

static int
ask(tr_ctx *ctx, tr_addr sup, uint32_t type, const admin_req *q, admin_rep *rep,
    size_t cap, uint32_t timeout_ms)
{
    size_t len = 0;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    int rc = tr__ask(ctx, sup, type, q, sizeof(*q), rep, cap, &len, timeout_ms);
    if (rc == TR_OK && len < sizeof(admin_rep)) {
        rc = TR_ECLOSED;
    }
    return rc == TR_OK ? rep->rc : rc;
}

int
tr_sup_start_child(tr_ctx *ctx, tr_addr sup, const tr_child_spec *spec,
                   const void *arg, uint32_t timeout_ms, tr_addr *out)
{
    admin_req q = {.has_spec = spec != NULL, .arg = arg};
    admin_rep rep = {0};

    if (spec != NULL) {
        q.spec = *spec;
    }
    int rc = ask(ctx, sup, REQ_START_CHILD, &q, &rep, sizeof(rep), timeout_ms);
    if (out != NULL) {
        *out = rep.addr;
    }
    return rc;
}

/* A request naming a child by id; the child's address (if any) in
 * `*out`. */
static int
ask_by_id(tr_ctx *ctx, tr_addr sup, uint32_t type, const char *id,
          uint32_t timeout_ms, tr_addr *out)
{
    admin_req q = {0};
    admin_rep rep = {0};

    if (!id_ok(id)) {
        return TR_EINVAL;
    }
    snprintf(q.id, sizeof(q.id), "%s", id);
    int rc = ask(ctx, sup, type, &q, &rep, sizeof(rep), timeout_ms);
    if (out != NULL) {
        *out = rep.addr;
    }
    return rc;
}

int
tr_sup_terminate_child(tr_ctx *ctx, tr_addr sup, const char *id,
                       uint32_t timeout_ms)
{
    return ask_by_id(ctx, sup, REQ_TERMINATE_CHILD, id, timeout_ms, NULL);
}

int
tr_sup_restart_child(tr_ctx *ctx, tr_addr sup, const char *id,
                     uint32_t timeout_ms, tr_addr *out)
{
    return ask_by_id(ctx, sup, REQ_RESTART_CHILD, id, timeout_ms, out);
}

int
tr_sup_delete_child(tr_ctx *ctx, tr_addr sup, const char *id,
                    uint32_t timeout_ms)
{
    return ask_by_id(ctx, sup, REQ_DELETE_CHILD, id, timeout_ms, NULL);
}

int
tr_sup_which_children(tr_ctx *ctx, tr_addr sup, tr_child_info *out, size_t cap,
                      size_t *len, uint32_t timeout_ms)
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
    int rc = ask(ctx, sup, REQ_WHICH_CHILDREN, &q, rep, size, timeout_ms);
    if (rc == TR_OK) {
        *len = rep->total;
        size_t n = rep->total < cap ? rep->total : cap;
        memcpy(out, rep->infos, sizeof(tr_child_info) * n);
    }
    tr__free(rep, size);
    return rc;
}

int
tr_sup_count_children(tr_ctx *ctx, tr_addr sup, tr_child_counts *out,
                      uint32_t timeout_ms)
{
    admin_req q = {0};
    admin_rep rep = {0};

    if (out == NULL) {
        return TR_EINVAL;
    }
    int rc =
        ask(ctx, sup, REQ_COUNT_CHILDREN, &q, &rep, sizeof(rep), timeout_ms);
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
        const child *c = NULL;
        for (uint32_t i = first_listed(s); i < s->n && c == NULL; i++) {
            if (named(s->kids[i]->id, p, len)) {
                c = s->kids[i];
            }
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

int
tr_system_wait(tr_system *sys, uint32_t timeout_ms)
{
    int rc;

    if (sys == NULL) {
        return TR_EINVAL;
    }
    /* A call on the system while it waits: shutdown wakes it (after
     * setting its flag) and waits for it to leave before freeing. */
    if (!tr__sys_enter(sys)) {
        return TR_ESHUTDOWN;
    }
    uint64_t deadline = tr__now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t seen = tr__ec_value(&sys->gave_up_ec);
        if (tr_load_acq(&sys->gave_up) != 0) {
            rc = TR_OK;
            break;
        }
        if (tr_load_acq(&sys->shutting_down)) {
            rc = TR_ESHUTDOWN;
            break;
        }
        uint64_t now = tr__now_ns();
        if (timeout_ms != 0 && now >= deadline) {
            rc = TR_ETIMEDOUT;
            break;
        }
        long wait = timeout_ms == 0
                        ? -1
                        : (long)((deadline - now + 999999u) / 1000000u);
        tr__ec_wait_ms(&sys->gave_up_ec, seen, wait);
    }
    tr__sys_leave(sys);
    return rc;
}
