/*
 * Supervisors: actors that start children from specs, restart them when
 * they end, and give up (failing themselves) when restarts come too fast.
 * OTP's supervisor is the model; where this header is silent, troupe does
 * what OTP does. The guide's chapter 5 lists every place where it does
 * not, and why.
 *
 * A restart happens in place: the child keeps its address, its name and
 * the messages queued for it. The message whose handler failed is not
 * redelivered (it is counted as a dead letter). The old `stop` has returned
 * before the new `init` runs.
 *
 * Restarts that fail. When a restarted child's `init` fails, the restart
 * is tried again (after the child's backoff delay, or at once: as a
 * message, so that the supervisor answers requests between tries), each
 * try counted towards the intensity unless the child has backoff. With
 * one_for_one and simple_one_for_one every child restarts on its own: a
 * child that keeps failing holds up no sibling, and a sibling's end never
 * tries it before its delay is up. With one_for_all a failed round is
 * retried whole; with rest_for_one the children restarted before the one
 * that failed keep running, and the retry resumes at the one that failed.
 * A round waits for the backoff delay of every child in it.
 *
 * Terminated by hand. A child stopped with tr_sup_terminate_child_wait stays
 * down until tr_sup_restart_child_wait: no round and no retry starts it again
 * (in OTP, a one_for_all or rest_for_one round restarts it). Terminating a
 * child that waits to be restarted ends its wait; if a one_for_all or
 * rest_for_one round was waiting on it, the children waiting in that round
 * end too and stay down (as in OTP, where the round's retry belongs to
 * the child that failed).
 *
 * Ends. A supervisor that is asked to stop (tr_actor_stop, its parent,
 * shutdown), or that shuts itself down as its significant children end
 * (tr_auto_shutdown), stops its children in reverse start order, then
 * ends as TR_EXIT_SHUTDOWN (OTP's `shutdown`): a linked actor that does
 * not trap exits goes down with it. A child that ends during such a
 * sequence is ended at once: its DOWN and its name do not wait for its
 * older siblings.
 *
 * Kills. A child is killed when its shutdown is TR_SHUTDOWN_BRUTAL, or
 * when it has not stopped by its deadline. A killed worker ends at its
 * next chance (when its current handler returns) without its `stop`. A
 * killed supervisor takes its subtree with it: it kills each of its
 * children the same way, all at once (a child supervisor in turn kills
 * its own), ends them as they report, and then ends, reported as
 * TR_EXIT_KILLED. So by the time its supervisor hears of its end (and a
 * tr_sup_terminate_child_wait answers, or a restart begins), every actor under
 * it has ended: monitors have had their DOWNs, names are free, nothing is
 * left without a parent. In OTP a killed supervisor's children die
 * asynchronously; here a restarted supervisor never meets its old
 * children. Only a handler that never returns holds a kill up: C cannot
 * cancel it.
 */
#ifndef TROUPE_SUPERVISOR_H
#define TROUPE_SUPERVISOR_H

#include <troupe/actor.h>
#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How the other children share in one child's restart. */
typedef enum tr_strategy {
    TR_ONE_FOR_ONE = 0,   /* restart the child that ended */
    TR_ONE_FOR_ALL,       /* stop the others (reverse order), restart all */
    TR_REST_FOR_ONE,      /* same, for the child and those started after it */
    TR_SIMPLE_ONE_FOR_ONE /* one template; children added at run time */
} tr_strategy;

/** When a child that ended is restarted. */
typedef enum tr_restart {
    TR_PERMANENT = 0, /* always */
    TR_TRANSIENT,     /* only after an abnormal end (failed or killed) */
    TR_TEMPORARY      /* never; removed from the children when it ends */
} tr_restart;

/** What a child is. */
typedef enum tr_child_kind { TR_WORKER = 0, TR_SUPERVISOR } tr_child_kind;

/**
 * When a supervisor shuts itself down (OTP 24's auto_shutdown): as its
 * significant children (tr_child_spec.significant) end by themselves and
 * are not restarted. It then stops its other children, as when asked to
 * stop, and ends as TR_EXIT_SHUTDOWN.
 */
typedef enum tr_auto_shutdown {
    TR_AUTO_SHUTDOWN_NEVER = 0, /* never; no child may be significant */
    TR_AUTO_SHUTDOWN_ANY,       /* any_significant: when one such has ended */
    TR_AUTO_SHUTDOWN_ALL        /* all_significant: when the last such has */
} tr_auto_shutdown;

/** The largest max_restarts. */
#define TR_SUP_RESTARTS_MAX 1000000u
/** The largest period_ms, shutdown_ms and backoff time: one day. */
#define TR_SUP_TIME_MAX_MS 86400000u
/** The largest backoff jitter_pct. */
#define TR_SUP_JITTER_MAX 100u
/** The most children one supervisor has: a spec's len, and with those
 * added at run time. */
#define TR_SUP_CHILDREN_MAX 1048576u

/** shutdown_ms values beside a plain number of milliseconds. */
enum {
    TR_SHUTDOWN_DEFAULT = 0,   /* 5000 ms for workers, infinity otherwise */
    TR_SHUTDOWN_BRUTAL = -1,   /* kill: end without `stop` (with its subtree) */
    TR_SHUTDOWN_INFINITY = -2, /* wait for `stop` however long it takes */
};

/**
 * Restart with a growing delay instead of at once: the first restart waits
 * `min_ms`, each next one twice as long up to `max_ms`, each delay moved by
 * up to `jitter_pct` percent either way; after `reset_ms` of running
 * without failing the delay starts again at `min_ms`. A `min_ms` of 0
 * restarts at once the first time, then after 1 ms, 2 ms, 4 ms and so on.
 * A child restarted with backoff does not count towards the supervisor's
 * intensity: the delay is what bounds its restarts. All zero: no
 * backoff.
 *
 * With one_for_all and rest_for_one, a child's end starts its round at
 * once; the delays space the retries of a round whose restart failed (the
 * failed child's delay), and a round never restarts a child before its
 * delay is up.
 *
 * Bounds: every time at most TR_SUP_TIME_MAX_MS, `min_ms` <= `max_ms`,
 * `jitter_pct` <= TR_SUP_JITTER_MAX; `jitter_pct` and `reset_ms` need
 * `max_ms` (backoff) set.
 */
typedef struct tr_backoff {
    uint32_t min_ms;
    uint32_t max_ms;
    uint32_t jitter_pct;
    uint32_t reset_ms;
} tr_backoff;

/**
 * One child. `id` is copied (1 to 63 bytes, no '/', which separates the
 * parts of a path: see tr_whereis_path); `behaviour` and `arg` are
 * borrowed for the supervisor's life (the arg is passed to every `init`,
 * first start and restarts alike). For a child supervisor, `behaviour` is
 * tr_supervisor_behaviour and `arg` its tr_sup_spec.
 *
 * A `significant` child's end can shut its supervisor down (see
 * tr_auto_shutdown): an end by itself that is not restarted, so a
 * transient child's normal or shutdown end, or any end of a temporary
 * one. A child the supervisor stops (terminate_child, a one_for_all or
 * rest_for_one round, its own end) never triggers it. Only transient and
 * temporary children may be significant, and only under a supervisor
 * whose auto_shutdown is not never (OTP's rules).
 */
typedef struct tr_child_spec {
    const char *id;
    const tr_behaviour *behaviour;
    const void *arg;
    tr_restart restart;
    int shutdown_ms; /* 1..TR_SUP_TIME_MAX_MS, or a TR_SHUTDOWN_* value */
    tr_child_kind kind;
    uint32_t mailbox_cap; /* as tr_spawn_opts.mailbox_cap: at most
                             TR_MAILBOX_CAP_MAX */
    tr_backoff backoff;
    bool significant;
} tr_child_spec;

/**
 * A supervisor. Intensity: more than `max_restarts` restarts within any
 * `period_ms` make the supervisor give up: it stops its children in
 * reverse start order and fails, and its own supervisor decides. Zero for
 * both means OTP's default, 1 restart in 5000 ms; a zero `period_ms`
 * alone means the default period, 5000 ms (OTP requires a period; zero is
 * troupe's "default" everywhere). `max_restarts` 0 with a period: no
 * restart at all. Bounds: `max_restarts` <= TR_SUP_RESTARTS_MAX,
 * `period_ms` <= TR_SUP_TIME_MAX_MS, `len` <= TR_SUP_CHILDREN_MAX.
 * `name` (copied, up to 63 bytes, no '/') is the supervisor's part of its
 * children's paths when it is not itself a child. With
 * TR_SIMPLE_ONE_FOR_ONE, `children` holds exactly one template and no
 * child starts with the supervisor; a significant template makes every
 * child significant, and TR_AUTO_SHUTDOWN_ALL then shuts the supervisor
 * down when the last of them has ended by itself.
 */
typedef struct tr_sup_spec {
    const char *name;
    tr_strategy strategy;
    uint32_t max_restarts;
    uint32_t period_ms;
    const tr_child_spec *children;
    size_t len;
    tr_auto_shutdown auto_shutdown;
} tr_sup_spec;

/** The behaviour of every supervisor; start one with tr_sup_start, or
 * name it in a child spec of kind TR_SUPERVISOR. */
TR_API extern const tr_behaviour tr_supervisor_behaviour;

/**
 * Check a spec. Rejected: a NULL or over-long id, a duplicate id, a NULL
 * behaviour, an unknown strategy, restart type, kind or auto_shutdown, a
 * negative shutdown other than the TR_SHUTDOWN_* values, any number over
 * its bound (see the TR_SUP_* bounds and the fields' comments), backoff
 * with min over max or jitter and reset without backoff, a significant
 * child that is permanent or under auto_shutdown never, and a
 * simple_one_for_one spec with other than one child. The reason names the
 * field and the child.
 *
 * Ownership: borrows `spec`; writes a reason into `why` (may be NULL).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL with the reason; TR_ENOMEM when a long list
 *            of children found no memory to check its ids.
 */
TR_API int tr_sup_spec_check(const tr_sup_spec *spec, char *why, size_t cap);

/** Options of tr_sup_start; NULL, or zero for every field, is the
 * default. */
typedef struct tr_sup_opts {
    /* Where tr_sup_start writes why it failed: why it refused the spec
     * (tr_sup_spec_check's reason); which child failed to start and why
     * (OTP's failed_to_start_child: "child 'db' failed to start: init
     * returned -24 (TR_EIO)", or the text its init gave tr_fail), a child
     * of a child supervisor named by its path ("child 'mid/db' failed to
     * start: ..."); or that the name is taken. "" when it started. May be
     * NULL. */
    char *why;
    size_t why_cap;
} tr_sup_opts;

/**
 * Start a top-level supervisor and its children, in order. If a child's
 * `init` fails, the children already started are stopped (reverse order)
 * and this returns the child's code, with which child failed and why in
 * `opts->why`. A child whose `init` returns TR_IGNORE is kept as a spec
 * with no actor (a temporary one is dropped).
 *
 * The spec's `name` is the first segment of its tree's paths, so only one
 * top-level supervisor of a name runs at a time (unnamed ones are all
 * "supervisor"): another is refused until the first has ended, however
 * it was started (tr_spawn of tr_supervisor_behaviour too).
 *
 * When a top-level supervisor gives up, the tree is over: the failure hook
 * reports it and tr_system_wait returns.
 *
 * Ownership: borrows `spec` for the call only, except the behaviours and
 *            args it names (for the supervisor's life); borrows `opts`.
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK and `*out`; TR_EINVAL for a NULL context or a bad spec
 *            (the reason in `opts->why`); TR_EEXIST when a top-level
 *            supervisor of the same name runs; TR_ENOMEM; TR_ESHUTDOWN; or
 *            a child's init code (the child and reason in `opts->why`).
 */
TR_API int tr_sup_start(tr_ctx *ctx, const tr_sup_spec *spec,
                        const tr_sup_opts *opts, tr_addr *out);

/*
 * The run-time API. Each call waits for the supervisor's answer, so it
 * is for plain threads (TR_ESTATE on a worker of any system or in an
 * actor's callbacks), and its timeout runs on the system's clock. Errors,
 * as OTP's:
 * TR_ENOTFOUND (no child with that id), TR_EALREADY (it runs already:
 * OTP's already_started), TR_EEXIST (the id is taken by a child that does
 * not run: OTP's already_present), TR_ERUNNING (it must be terminated
 * first), TR_ERESTARTING (it waits to be restarted), TR_ENOTSUP (`sup` is
 * an actor but not a supervisor: nothing is sent to it), TR_ENOACTOR (no
 * such actor), TR_ETIMEDOUT (no answer in `timeout`; TR_FOREVER waits
 * without limit; TR_NOWAIT is TR_EINVAL), TR_ENOMEM (out of memory, in the
 * caller or in the supervisor), TR_ECLOSED (the supervisor ended before
 * answering, or had no memory left to queue the request or send the
 * answer), TR_ESHUTDOWN (shutdown had begun), TR_EFORKED (in a fork
 * child).
 *
 * A request that times out may still be carried out, as in OTP, with one
 * exception: a start (tr_sup_start_child_wait, tr_sup_restart_child_wait)
 * whose answer does not reach its caller (TR_ETIMEDOUT, TR_ENOMEM,
 * TR_ECLOSED) is undone: the new child is stopped (its shutdown rule
 * applies) and a new spec forgotten, so that no child runs whose address
 * nobody was given. The new child runs no message before its caller has
 * the answer. What was sent on TR_ENOMEM: nothing when the caller could
 * not make the request; the request when it was sent and only its timer
 * could not be armed; then the supervisor may still act on it, as after a
 * timeout.
 */

/**
 * Add and start a child. For simple_one_for_one, `spec` is NULL and `arg`
 * is the new child's start argument (borrowed for its life); its id is
 * its ordinal, from 1, never reused.
 *
 * Returns:   TR_OK and `*out`; TR_EALREADY and the running child's address
 *            in `*out`; TR_EEXIST, with `*out` the address a child that
 *            waits to be restarted keeps, or TR_ADDR_NONE for a terminated
 *            one; TR_EINVAL for a bad spec (a significant one too, when
 *            the supervisor's auto_shutdown is never); TR_EFULL when the
 *            supervisor has TR_SUP_CHILDREN_MAX children; the child's init
 *            code; or an error above (the start undone).
 */
TR_API int tr_sup_start_child_wait(tr_ctx *ctx, tr_addr sup,
                                   const tr_child_spec *spec, const void *arg,
                                   tr_timeout timeout, tr_addr *out);

/** Stop a child (its shutdown rule applies) and keep its spec; TR_OK if it
 * was not running (one waiting to be restarted ends its wait: see the top
 * comment). A child supervisor has stopped its whole subtree, or been
 * killed with it, by the answer. For simple_one_for_one, `id` is the
 * ordinal as text, and a child that has gone is terminated already: TR_OK
 * (OTP); TR_ENOTFOUND only for an ordinal never handed out. */
TR_API int tr_sup_terminate_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                       tr_timeout timeout);

/** Start a terminated child again, at a new address. TR_ESTATE for a
 * simple_one_for_one supervisor (OTP: its children are not restarted or
 * deleted by id). */
TR_API int tr_sup_restart_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                     tr_timeout timeout, tr_addr *out);

/** Forget a terminated child's spec. TR_ESTATE for a simple_one_for_one
 * supervisor. */
TR_API int tr_sup_delete_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                    tr_timeout timeout);

/** Where a child is (tr_child_info.status). */
typedef enum tr_child_status {
    TR_CHILD_RUNNING = 0, /* its actor runs */
    TR_CHILD_STOPPING,    /* asked to stop or killed; or it ended while the
                             supervisor stopped others, and is decided when
                             that is over: its end is being handled */
    TR_CHILD_RESTARTING,  /* it ended and waits to be restarted: a failed
                             restart to be tried again, or a one_for_all or
                             rest_for_one round under way */
    TR_CHILD_BACKOFF,     /* it waits for a backoff delay (its own, or one
                             its round waits for), then restarts */
    TR_CHILD_TERMINATED,  /* no actor: terminated by hand, ended and not
                             restarted, or started by hand and failed */
    TR_CHILD_IGNORED      /* no actor: its `init` returned TR_IGNORE */
} tr_child_status;

/** What tr_sup_which_children_wait and tr_sup_find_child_wait report of
 * one child. */
typedef struct tr_child_info {
    char id[64];
    tr_addr addr; /* kept while restarting or in backoff; TR_ADDR_NONE when
                     terminated or ignored */
    tr_child_kind kind;
    tr_restart restart;
    tr_child_status status;
    uint32_t restarts;
} tr_child_info;

/**
 * The children, in start order: up to `cap` of them into `out`, and how
 * many there are into `*len` (which may exceed `cap`). `out` may be NULL
 * when `cap` is 0, to count them. Answered at once, even while the
 * supervisor stops or restarts children.
 *
 * Ownership: writes `out[0..cap)` and `*len` on TR_OK.
 * Returns:   TR_OK; TR_EINVAL for a NULL `len`, or NULL `out` with a
 *            non-zero `cap`; or an error above.
 */
TR_API int tr_sup_which_children_wait(tr_ctx *ctx, tr_addr sup,
                                      tr_child_info *out, size_t cap,
                                      size_t *len, tr_timeout timeout);

/**
 * One child, by id: what tr_sup_which_children_wait says of it. For
 * simple_one_for_one, `id` is the ordinal as text. Answered at once, like
 * tr_sup_which_children_wait.
 *
 * Ownership: writes `*out` on TR_OK.
 * Returns:   TR_OK; TR_ENOTFOUND (no child has that id: never started,
 *            deleted, or a dynamic or temporary child that has gone);
 *            TR_EINVAL for a bad id or a NULL `out`; or an error above.
 */
TR_API int tr_sup_find_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                  tr_timeout timeout, tr_child_info *out);

/** A child spec as tr_sup_get_childspec_wait gives it back, with room for
 * its id. */
typedef struct tr_child_spec_buf {
    tr_child_spec spec; /* spec.id points at `id` below: after copying the
                           struct, point the copy's at the copy's `id` */
    char id[64];
} tr_child_spec_buf;

/**
 * OTP's get_childspec: a copy of child `id`'s spec, as it was given (the
 * defaults not filled in). For simple_one_for_one, `id` is the ordinal as
 * text, and the spec is the template's with that id and that child's
 * start argument. Answered at once, like tr_sup_which_children_wait.
 *
 * Ownership: writes `*out` on TR_OK; its behaviour and arg are the ones
 *            the supervisor borrows (valid for as long as it needs them).
 * Returns:   TR_OK; TR_ENOTFOUND (as tr_sup_find_child_wait's); TR_EINVAL
 *            for a bad id or a NULL `out`; or an error above.
 */
TR_API int tr_sup_get_childspec_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                     tr_timeout timeout,
                                     tr_child_spec_buf *out);

/** OTP's count_children. */
typedef struct tr_child_counts {
    uint32_t specs;
    uint32_t active; /* running */
    uint32_t supervisors;
    uint32_t workers;
} tr_child_counts;

/**
 * Count the children as OTP's count_children does: specs, running ones,
 * supervisors and workers.
 *
 * Ownership: writes `*out` on TR_OK.
 */
TR_API int tr_sup_count_children_wait(tr_ctx *ctx, tr_addr sup,
                                      tr_child_counts *out, tr_timeout timeout);

/**
 * The address of the supervised actor at `path`: a top-level supervisor's
 * name, then child ids, each after a '/' ("/app/db/pool/3").
 *
 * Context:   any thread.
 * Returns:   TR_OK and `*out`; TR_ENOTFOUND when no child has that path
 *            or it is not running now; TR_EINVAL; TR_ESHUTDOWN off the
 *            workers once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_whereis_path(tr_system *sys, const char *path, tr_addr *out);

/**
 * Wait until a top-level supervision tree is over: its supervisor gave up,
 * or shut itself down as its significant children ended (auto_shutdown).
 * Either ends the tree and wakes this. Times out on the real (monotonic)
 * clock.
 *
 * Context:   a plain thread, never a worker of any system nor an actor's
 *            `init` that a plain thread's spawn runs.
 * Returns:   TR_OK when one has; TR_ETIMEDOUT; TR_EINVAL; TR_ESTATE on a
 *            worker, in an `init` or in the live endpoint's `on_warning`
 *            callback; TR_ESHUTDOWN once shutdown has begun
 *            (it returns at once, before the system is freed). On a
 *            simulated system (troupe/sim.h) the wait takes steps on the
 *            virtual clock: TR_ESTUCK when nothing can run and no timer
 *            is pending; TR_ESTATE from a thread other than its driving
 *            thread.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_system_wait(tr_system *sys, tr_timeout timeout);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_SUPERVISOR_H */
