/*
 * Supervisors: the behaviour itself.
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
 * The files, each standing only on those before it:
 *
 *   children.c  the records of the children, their indexes and states,
 *               the tree lock, spawning and ending a child's actor
 *   spec.c      the checks of specs and their bounds
 *   engine.c    restarts, intensity and backoff, and the stop sequences;
 *               the state table of modes and child states
 *   admin.c     the run-time API (tr_sup_*_wait), both sides
 *   paths.c     tr_whereis_path
 *   supervisor.c  this file: init, the handler, the exit hook, and the
 *               wiring of the engine's hook (sup.h) to admin.c
 *
 * Starting. Children are spawned holding their run-rights: when the
 * supervisor starts, none of its children runs until all have started, so
 * a failing `init` can stop the ones before it, in reverse order, on the
 * spot.
 *
 * However a supervisor's incarnation ends, its exit hook (`sup_ended`)
 * frees the bookkeeping. If children are left (it failed, it was stopped
 * between restarts, or its own run ended abnormally), the hook ends the
 * held ones and kills the others without waiting: their reports come back
 * to this address, and whoever ends or restarts the incarnation ends those
 * children on reading (or dropping) the reports (actor.c).
 */
#include "supervisor/admin.h"
#include "supervisor/engine.h"
#include "supervisor/spec.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <stdio.h>
#include <string.h>

enum { DEFAULT_PERIOD_MS = 5000 };

/* The engine's calls up into the run-time API (sup.h). */
static const sup_hooks admin_hooks = {
    .one_ended = tr__sup_answer_terminate,
    .sequence_ended = tr__sup_run_deferred,
};

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
        tr_ctx kc = tr__sup_child_ctx(ctx, k);
        const tr_exit down = {TR_EXIT_SHUTDOWN, TR_OK, "shutdown"};
        bool ended_in_init = tr_load_relaxed(&k->x->held) != 0;
        tr__sup_set_state(ctx, s, k, CHILD_DOWN);
        tr__actor_finish(&kc, &down, !ended_in_init);
    }
}

/*
 * OTP's failed_to_start_child: which child, and why (`reason`, its init's
 * text). A child supervisor that failed for a child of its own (or a
 * child's spec) said so in the same form, "child '<id>...": the ids join
 * into a path, "child 'mid/db' failed to start: ...".
 */
static void
failed_to_start(char *why, size_t cap, const child *c, const char *reason)
{
    static const char head[] = "child '";
    size_t n = sizeof(head) - 1;

    if (c->spec.behaviour == &tr_supervisor_behaviour &&
        strncmp(reason, head, n) == 0) {
        snprintf(why, cap, "%s%s/%s", head, c->id, reason + n);
    } else {
        snprintf(why, cap, "%s%s' failed to start: %s", head, c->id, reason);
    }
}

static int
sup_init(tr_ctx *ctx, void *state, const void *arg)
{
    const tr_sup_spec *spec = arg;
    tr_sup **slot = state;
    /* A spec's reason, or a child's id and its init's text (128 bytes): the
     * whole of it, which tr_fail then cuts to its own size. */
    char why[224];
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
    s->hooks = &admin_hooks;
    s->by_id.key = KEY_ID;
    s->by_addr.key = KEY_ADDR;
    s->deferred_tail = &s->deferred;
    tr_init_relaxed(&s->visits, 0);
    snprintf(s->name, sizeof(s->name), "%s",
             spec->name != NULL ? spec->name : "supervisor");
    s->strategy = spec->strategy;
    s->auto_shutdown = spec->auto_shutdown;
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
    if ((rc = tr__sup_attach(ctx, s, x)) != TR_OK) {
        if (rc == TR_EEXIST) {
            snprintf(why, sizeof(why),
                     "a top-level supervisor named '%s' runs already", s->name);
            (void)tr_fail(ctx, rc, why);
        }
        goto fail;
    }

    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        s->tmpl =
            tr__sup_new_child(s, &spec->children[0], spec->children[0].arg);
        if (s->tmpl == NULL) {
            rc = TR_ENOMEM;
            goto fail;
        }
        s->ended.fn = sup_ended;
        tr__actor_on_exit(ctx, &s->ended);
        return TR_OK; /* the template starts nothing */
    }
    for (size_t i = 0; i < spec->len; i++) {
        child *c =
            tr__sup_new_child(s, &spec->children[i], spec->children[i].arg);
        if (c == NULL || tr__sup_add_child(ctx, s, c) != TR_OK) {
            tr__free(c, sizeof(*c));
            rc = TR_ENOMEM;
            goto fail;
        }
    }
    for (child *c = s->head; c != NULL; c = c->next) {
        char reason[sizeof(ctx->fail_text)] = "";
        rc = tr__sup_spawn_child(ctx, s, c, reason, sizeof(reason));
        if (rc == TR_IGNORE) {
            continue;
        }
        if (rc != TR_OK) {
            failed_to_start(why, sizeof(why), c,
                            reason[0] != '\0' ? reason : tr_strerror(rc));
            unwind_start(ctx, s, c);
            (void)tr_fail(ctx, rc, why);
            goto fail;
        }
    }
    for (child *c = tr__sup_first(s), *nx; c != NULL; c = nx) {
        nx = tr__sup_after(s, c);
        if (c->state == CHILD_DOWN && c->spec.restart == TR_TEMPORARY) {
            tr__sup_remove_child(ctx, s, c); /* ignored temporary children go */
        }
    }
    /* From here on, however this incarnation ends, the hook cleans up. */
    s->ended.fn = sup_ended;
    tr__actor_on_exit(ctx, &s->ended);
    for (child *c = s->head; c != NULL; c = c->next) {
        if (c->state == CHILD_RUNNING) {
            tr__sup_release_child(ctx, c);
        }
    }
    return TR_OK;
fail:
    tr__sup_free(ctx, s);
    *slot = NULL;
    return rc;
}

/* The exit hook: runs once, when the incarnation ends, whichever way
 * (after `stop` would have, before the report to our supervisor). */
static void
sup_ended(tr_exit_hook *h, tr_ctx *ctx)
{
    tr_sup *s = tr_container_of(h, tr_sup, ended);

    tr__sup_end_children_now(ctx, s);
    tr__sup_drop_requests(s);
    tr__sup_free(ctx, s);
    *(tr_sup **)tr__actor_state(ctx->actor) = NULL;
}

static int
sup_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_sup *s = *(tr_sup **)state;

    switch (msg->type) {
    case TR_MSG_CHILD:
        tr__sup_on_report(ctx, s, msg->data);
        return TR_OK;
    case TR_MSG_EXIT: {
        /* A request to stop (from our parent, shutdown, tr_actor_stop) or
         * our parent's exit: children first. Other linked actors' exits
         * are not ours to act on (OTP ignores them too). */
        const tr_signal *sig = msg->data;
        tr_ext *x = tr_load_acq(&ctx->actor->ext);
        bool stop_request = sig->ref == 0 && sig->code == TR_ESHUTDOWN;
        if ((stop_request || sig->who.id == tr_load_relaxed(&x->parent)) &&
            !tr__sup_ending(s->mode)) {
            tr__sup_start_terminate(ctx, s);
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
            tr__sup_on_deadline(ctx, s, &ref);
        } else {
            tr__sup_on_retry(ctx, s, &ref);
        }
        return TR_OK;
    }
    case MSG_KILL:
        tr__sup_start_kill(ctx, s);
        return TR_OK;
    default:
        tr__sup_request(ctx, s, msg);
        return TR_OK;
    }
}

const tr_behaviour tr_supervisor_behaviour = {
    .name = "supervisor",
    .state_size = sizeof(tr_sup *),
    .init = sup_init,
    .handle = sup_handle,
    /* No `stop`: the exit hook does its work, and runs on a kill too. */
};

int
tr_sup_start(tr_ctx *ctx, const tr_sup_spec *spec, const tr_sup_opts *opts,
             tr_addr *out)
{
    char *why = opts != NULL ? opts->why : NULL;
    size_t cap = why != NULL ? opts->why_cap : 0;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    int rc = tr_sup_spec_check(spec, why, cap);
    if (rc != TR_OK) {
        return rc;
    }
    /* The check wrote "" into `why`; a failed init writes its reason. */
    return tr__spawn_why(ctx, &tr_supervisor_behaviour, spec, out, why, cap);
}
