/*
 * The run-time API, both sides: the calls a thread or an actor makes on a
 * supervisor (tr_sup_start_child_wait and the others), and the
 * supervisor's handling of them.
 *
 * Caller side. Each call is one request (REQ_*) sent with tr__ask, and a
 * wait for its answer, which carries the code and what the call returns.
 * A live actor that is not a supervisor is refused at once (TR_ENOTSUP):
 * the requests are the runtime's, and no user handler may see them.
 *
 * Supervisor side. Reads (which_children, count_children, find_child,
 * get_childspec) are answered at once, whatever the supervisor is doing.
 * A request that changes the children is handled only when the
 * supervisor is idle: during a stop sequence it waits in a queue
 * (tr_sup.deferred, in the order requests came) until the engine reports,
 * through the hook (sup.h), that the sequence is over and the supervisor
 * idle; it is dropped, and its caller hears TR_ECLOSED, if the
 * incarnation ends first, or if no memory was left to queue it. A
 * terminate_child of a running child is itself a sequence (of one,
 * tr__sup_stop_one): its answer waits in tr_sup.admin_reply until the child has
 * ended, and the hook's `one_ended` sends it.
 *
 * Starts. A child added by a request is released only once its address
 * is in the caller's hands: when the answer cannot be delivered (the
 * caller timed out, or no memory was left for the answer), the start is
 * undone, as a terminate_child nobody waits for, so that no child runs
 * that nobody knows of. The answers follow OTP: a start of an id that is
 * taken is TR_EALREADY with its address while that child runs, TR_EEXIST
 * otherwise; a terminate_child of a simple_one_for_one child that has gone
 * already is TR_OK.
 */
#include "supervisor/admin.h"

#include "supervisor/engine.h"
#include "supervisor/spec.h"

#include "common/tr_alloc.h"

#include <troupe/call.h>
#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

typedef struct admin_req {
    char id[64]; /* the child's; for start_child, its spec's (spec.id NULL) */
    bool has_spec;
    tr_child_spec spec;
    const void *arg;
    uint32_t cap; /* which_children: room for this many */
} admin_req;

typedef struct admin_rep {
    int rc;
    tr_addr addr;
    tr_child_counts counts;
    tr_child_info info;     /* find_child */
    tr_child_spec_buf spec; /* get_childspec (spec.id NULL) */
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

/* Stop child `c` alone (terminate_child, or a start undone): the reply,
 * if any, goes when it has ended. */
static void
stop_one(tr_ctx *ctx, tr_sup *s, child *c, tr_reply_to *h, bool forget)
{
    s->admin_reply = h;
    tr__sup_stop_one(ctx, s, c, forget);
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
        spec = q->spec;
        spec.id = q->id; /* the caller's string may be gone by now */
        if (!q->has_spec || tr__sup_child_spec_check(&spec, s->auto_shutdown,
                                                     why, sizeof(why))) {
            rep->rc = TR_EINVAL;
            return NULL;
        }
        child *old = tr__sup_find_id(s, spec.id);
        if (old != NULL) {
            /* OTP: {already_started, Pid} while it runs, already_present
             * otherwise; one waiting to be restarted keeps its address. */
            bool runs =
                old->state == CHILD_RUNNING || old->state == CHILD_STOPPING;
            rep->rc = runs ? TR_EALREADY : TR_EEXIST;
            rep->addr = old->addr;
            return NULL;
        }
    }
    child *c = tr__sup_new_child(s, &spec, q->has_spec ? q->spec.arg : q->arg);
    if (c == NULL) {
        rep->rc = TR_ENOMEM;
        return NULL;
    }
    rep->rc = tr__sup_add_child(ctx, s, c);
    if (rep->rc != TR_OK) {
        tr__free(c, sizeof(*c));
        return NULL;
    }
    int rc = tr__sup_spawn_child(ctx, s, c, NULL, 0);
    if (rc == TR_OK) {
        if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
            s->next_ordinal++; /* the id is taken for good */
        }
        rep->addr = c->addr;
        return c;
    }
    rep->rc = rc == TR_IGNORE ? TR_OK : rc;
    /* Ignored: kept as a spec, unless dynamic or temporary (OTP). */
    if (rc != TR_IGNORE || tr__sup_leaves_when_down(s, c)) {
        tr__sup_remove_child(ctx, s, c);
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
    child *c = tr__sup_find_id(s, q->id);

    if (c == NULL) {
        /* OTP: a dynamic child that has gone is terminated already. */
        rep->rc = issued(s, q->id) ? TR_OK : TR_ENOTFOUND;
        return true;
    }
    if (c->state == CHILD_HELD) {
        /* It waits to be restarted: it ends here, and its retry is void. */
        bool owner = c == s->round_owner;
        tr__sup_finish_child(ctx, s, c);
        if (owner) {
            tr__sup_abandon_round(ctx, s, c);
        }
    }
    if (c->state == CHILD_DOWN) {
        if (tr__sup_leaves_when_down(s, c)) {
            tr__sup_remove_child(ctx, s, c);
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
    child *c = tr__sup_find_id(s, q->id);

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
    int rc = tr__sup_spawn_child(ctx, s, c, NULL, 0);
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
        tr__sup_remove_child(ctx, s, c);
        rep->rc = TR_OK;
    }
}

static void
do_count(tr_sup *s, admin_rep *rep)
{
    for (child *c = tr__sup_first(s); c != NULL; c = tr__sup_after(s, c)) {
        rep->counts.specs++;
        rep->counts.active += c->state == CHILD_RUNNING;
        if (c->spec.kind == TR_SUPERVISOR) {
            rep->counts.supervisors++;
        } else {
            rep->counts.workers++;
        }
    }
}

static void
describe(const tr_sup *s, const child *c, uint64_t now, tr_child_info *info)
{
    snprintf(info->id, sizeof(info->id), "%s", c->id);
    info->addr = c->addr; /* kept while it waits to be restarted */
    info->kind = c->spec.kind;
    info->restart = c->spec.restart;
    info->status = tr__sup_child_status(s, c, now);
    info->restarts = c->restarts;
}

/* which_children's answer, allocated (`*size`); NULL when out of memory. */
static admin_rep *
which(tr_ctx *ctx, tr_sup *s, const admin_req *q, size_t *size)
{
    uint32_t n = s->n < q->cap ? s->n : q->cap;
    uint64_t now = tr__sup_now_ms(ctx);
    admin_rep *rep;

    *size = sizeof(admin_rep) + sizeof(tr_child_info) * n;
    if ((rep = tr__calloc(*size)) == NULL) {
        return NULL;
    }
    rep->total = s->n;
    uint32_t i = 0;
    for (child *c = tr__sup_seen(s, s->head); c != NULL && i < n;
         c = tr__sup_seen(s, c->next), i++) {
        describe(s, c, now, &rep->infos[i]);
    }
    return rep;
}

/* find_child and get_childspec: one child, by id. */
static void
do_find(tr_ctx *ctx, tr_sup *s, uint32_t type, const admin_req *q,
        admin_rep *rep)
{
    child *c = tr__sup_find_id(s, q->id);

    if (c == NULL) {
        rep->rc = TR_ENOTFOUND;
    } else if (type == REQ_FIND_CHILD) {
        describe(s, c, tr__sup_now_ms(ctx), &rep->info);
    } else {
        rep->spec.spec = c->spec;
        rep->spec.spec.id = NULL;    /* the caller points it at its copy */
        rep->spec.spec.arg = c->arg; /* a dynamic child's own */
        snprintf(rep->spec.id, sizeof(rep->spec.id), "%s", c->id);
    }
}

/* Reads are answered at once, whatever the supervisor is doing. */
static bool
is_read(uint32_t type)
{
    return type == REQ_WHICH_CHILDREN || type == REQ_COUNT_CHILDREN ||
           type == REQ_GET_CHILDSPEC || type == REQ_FIND_CHILD;
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
    case REQ_GET_CHILDSPEC:
    case REQ_FIND_CHILD:
        do_find(ctx, s, type, q, rep);
        break;
    case REQ_WHICH_CHILDREN:
        rep = which(ctx, s, q, &size);
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
            tr__sup_remove_child(ctx, s, started);
        }
        return true;
    }
    tr__sup_release_child(ctx, started);
    if (sent != TR_OK) {
        /* The caller has given up (timed out) or could not be told: undo
         * the start, so that no child runs that nobody knows of. */
        stop_one(ctx, s, started, NULL, type == REQ_START_CHILD);
    }
    return true;
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
    bool entered;
    bool other = false;
    int rc;

    if (ctx == NULL || timeout.ms == 0) {
        return TR_EINVAL;
    }
    tr_system *sys = ctx->sys;
    /* The look at `sup` reads the system: entered, as tr__ask is. */
    rc = tr__sys_enter_any(sys, &entered);
    if (rc != TR_OK) {
        return rc;
    }
    if (sup.id != 0 && tr__addr_check(sys, sup) == TR_OK) {
        tr_actor *a = tr__table_slot(sys->table, sup.id);
        other = a != NULL &&
                tr__ext_is_other_than_supervisor(a, tr__id_gen(sup.id));
    }
    if (entered) {
        tr__sys_leave(sys);
    }
    if (other) {
        return TR_ENOTSUP;
    }
    rc = tr__ask(ctx, sup, type, q, sizeof(*q), rep, cap, &len, timeout, NULL,
                 0);
    if (rc == TR_OK && len < sizeof(admin_rep)) {
        rc = TR_ECLOSED;
    }
    return rc == TR_OK ? rep->rc : rc;
}

/* A request naming a child by id; the answer in `*rep` (its `addr` is
 * the child's address, if any, whatever the outcome). */
static int
ask_by_id(tr_ctx *ctx, tr_addr sup, uint32_t type, const char *id,
          tr_timeout timeout, admin_rep *rep)
{
    admin_req q = {0};

    if (!tr__sup_id_ok(id)) {
        return TR_EINVAL;
    }
    snprintf(q.id, sizeof(q.id), "%s", id);
    return ask(ctx, sup, type, &q, rep, sizeof(*rep), timeout);
}

void
tr__sup_request(tr_ctx *ctx, tr_sup *s, const tr_msg *msg)
{
    if (!tr_msg_is_call(ctx, msg) || msg->type < REQ_START_CHILD ||
        msg->type > REQ_FIND_CHILD || msg->size != sizeof(admin_req)) {
        return; /* not for us: ignore, as OTP logs and goes on */
    }
    tr_reply_to *h = tr_reply_take(ctx, msg);
    const admin_req *q = msg->data;
    if (s->mode != SUP_IDLE && !is_read(msg->type)) {
        if (!defer(s, msg->type, q, h)) {
            tr_reply_drop(h); /* the caller hears TR_ECLOSED */
        }
        return;
    }
    (void)handle_request(ctx, s, msg->type, q, h);
}

void
tr__sup_answer_terminate(tr_sup *s, int rc)
{
    if (s->admin_reply != NULL) {
        admin_rep rep = {.rc = rc};
        (void)tr_reply_send(s->admin_reply, &rep, sizeof(rep));
        s->admin_reply = NULL;
    }
}

void
tr__sup_run_deferred(tr_ctx *ctx, tr_sup *s)
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

void
tr__sup_drop_requests(tr_sup *s)
{
    while (s->deferred != NULL) {
        deferred *d = s->deferred;
        s->deferred = d->next;
        tr_reply_drop(d->reply);
        tr__free(d, sizeof(*d));
    }
    tr_reply_drop(s->admin_reply);
    s->admin_reply = NULL;
}

int
tr_sup_start_child_wait(tr_ctx *ctx, tr_addr sup, const tr_child_spec *spec,
                        const void *arg, tr_timeout timeout, tr_addr *out)
{
    admin_req q = {.has_spec = spec != NULL, .arg = arg};
    admin_rep rep = {0};

    if (spec != NULL) {
        /* The id travels in the request: one that waits behind a stop
         * sequence outlives a caller that timed out, and its string. */
        if (!tr__sup_id_ok(spec->id)) {
            return TR_EINVAL;
        }
        q.spec = *spec;
        q.spec.id = NULL;
        snprintf(q.id, sizeof(q.id), "%s", spec->id);
    }
    int rc = ask(ctx, sup, REQ_START_CHILD, &q, &rep, sizeof(rep), timeout);
    if (out != NULL) {
        *out = rep.addr;
    }
    return rc;
}

int
tr_sup_terminate_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                            tr_timeout timeout)
{
    admin_rep rep = {0};

    return ask_by_id(ctx, sup, REQ_TERMINATE_CHILD, id, timeout, &rep);
}

int
tr_sup_restart_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                          tr_timeout timeout, tr_addr *out)
{
    admin_rep rep = {0};
    int rc = ask_by_id(ctx, sup, REQ_RESTART_CHILD, id, timeout, &rep);

    if (out != NULL && tr__sup_id_ok(id)) {
        *out = rep.addr;
    }
    return rc;
}

int
tr_sup_delete_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                         tr_timeout timeout)
{
    admin_rep rep = {0};

    return ask_by_id(ctx, sup, REQ_DELETE_CHILD, id, timeout, &rep);
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
tr_sup_find_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                       tr_timeout timeout, tr_child_info *out)
{
    admin_rep rep = {0};
    int rc = out == NULL
                 ? TR_EINVAL
                 : ask_by_id(ctx, sup, REQ_FIND_CHILD, id, timeout, &rep);

    if (rc == TR_OK) {
        *out = rep.info;
    }
    return rc;
}

int
tr_sup_get_childspec_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                          tr_timeout timeout, tr_child_spec_buf *out)
{
    admin_rep rep = {0};
    int rc = out == NULL
                 ? TR_EINVAL
                 : ask_by_id(ctx, sup, REQ_GET_CHILDSPEC, id, timeout, &rep);

    if (rc == TR_OK) {
        *out = rep.spec;
        out->spec.id = out->id;
    }
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
