/*
 * Supervisors: actors that start children from specs, restart them when
 * they end, and give up (failing themselves) when restarts come too fast.
 * OTP's supervisor is the model; where this header is silent, troupe does
 * what OTP does.
 *
 * A restart happens in place: the child keeps its address, its name and
 * the messages queued for it. The message whose handler failed is not
 * redelivered (it is counted as a dead letter). The old `stop` has returned
 * before the new `init` runs.
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
 * without failing the delay starts again at `min_ms`. A child restarted
 * with backoff does not count towards the supervisor's intensity: the
 * delay is what bounds its restarts. All zero: no backoff.
 */
typedef struct tr_backoff {
    uint32_t min_ms;
    uint32_t max_ms;
    uint32_t jitter_pct;
    uint32_t reset_ms;
} tr_backoff;

/**
 * One child. `id` is copied (up to 63 bytes); `behaviour` and `arg` are
 * borrowed for the supervisor's life (the arg is passed to every `init`,
 * first start and restarts alike). For a child supervisor, `behaviour` is
 * tr_supervisor_behaviour and `arg` its tr_sup_spec.
 */
typedef struct tr_child_spec {
    const char *id;
    const tr_behaviour *behaviour;
    const void *arg;
    tr_restart restart;
    int shutdown_ms; /* > 0, or a TR_SHUTDOWN_* value */
    tr_child_kind kind;
    uint32_t mailbox_cap; /* as tr_spawn_opts.mailbox_cap */
    tr_backoff backoff;
} tr_child_spec;

/**
 * A supervisor. Intensity: more than `max_restarts` restarts within any
 * `period_ms` make the supervisor give up: it stops its children in
 * reverse start order and fails, and its own supervisor decides. Zero for
 * both means OTP's default, 1 restart in 5000 ms. `name` (copied, up to 63
 * bytes) is the supervisor's part of its children's paths when it is not
 * itself a child. With TR_SIMPLE_ONE_FOR_ONE, `children` holds exactly one
 * template and no child starts with the supervisor.
 */
typedef struct tr_sup_spec {
    const char *name;
    tr_strategy strategy;
    uint32_t max_restarts;
    uint32_t period_ms;
    const tr_child_spec *children;
    size_t len;
} tr_sup_spec;

/** The behaviour of every supervisor; start one with tr_sup_start, or
 * name it in a child spec of kind TR_SUPERVISOR. */
TR_API extern const tr_behaviour tr_supervisor_behaviour;

/**
 * Check a spec. Rejected: a NULL or over-long id, a duplicate id, a NULL
 * behaviour, an unknown strategy, restart type or kind, a negative shutdown
 * other than the TR_SHUTDOWN_* values, backoff with min over max, and a
 * simple_one_for_one spec with other than one child.
 *
 * Ownership: borrows `spec`; writes a reason into `why` (may be NULL).
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL with the reason.
 */
TR_API int tr_sup_spec_check(const tr_sup_spec *spec, char *why, size_t cap);

/**
 * Start a top-level supervisor and its children, in order. If a child's
 * `init` fails, the children already started are stopped (reverse order)
 * and this returns the child's code. A child whose `init` returns
 * TR_IGNORE is kept as a spec with no actor (a temporary one is dropped).
 *
 * When a top-level supervisor gives up, the tree is over: the failure hook
 * reports it and tr_system_wait returns.
 *
 * Ownership: borrows `spec` for the call only, except the behaviours and
 *            args it names (for the supervisor's life).
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK and `*out`; TR_EINVAL for a bad spec; TR_ENOMEM;
 *            TR_ESHUTDOWN; or a child's init code.
 */
TR_API int tr_sup_start(tr_ctx *ctx, const tr_sup_spec *spec, tr_addr *out);

/*
 * The run-time API. Each call waits for the supervisor's answer, so it
 * is for plain threads (TR_ESTATE on a worker). Errors, as OTP's:
 * TR_ENOTFOUND (no child with that id), TR_EALREADY (already running),
 * TR_EEXIST (the id is taken by a child that is not running), TR_ERUNNING
 * (it must be terminated first), TR_ERESTARTING (it is between restarts),
 * TR_ENOACTOR (no such supervisor), TR_ETIMEDOUT (no answer in
 * `timeout`; TR_FOREVER waits without limit; TR_NOWAIT is TR_EINVAL).
 */

/**
 * Add and start a child. For simple_one_for_one, `spec` is NULL and `arg`
 * is the new child's start argument (borrowed for its life); its id is
 * its ordinal, from 1.
 */
TR_API int tr_sup_start_child_wait(tr_ctx *ctx, tr_addr sup,
                                   const tr_child_spec *spec, const void *arg,
                                   tr_timeout timeout, tr_addr *out);

/** Stop a child (its shutdown rule applies) and keep its spec; TR_OK if it
 * was not running. A child supervisor has stopped its whole subtree, or
 * been killed with it, by the answer. For simple_one_for_one, `id` is the
 * ordinal as text. */
TR_API int tr_sup_terminate_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                       tr_timeout timeout);

/** Start a terminated child again, at a new address. */
TR_API int tr_sup_restart_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                     tr_timeout timeout, tr_addr *out);

/** Forget a terminated child's spec. */
TR_API int tr_sup_delete_child_wait(tr_ctx *ctx, tr_addr sup, const char *id,
                                    tr_timeout timeout);

/** What tr_sup_which_children_wait reports of one child. */
typedef struct tr_child_info {
    char id[64];
    tr_addr addr; /* TR_ADDR_NONE when not running */
    tr_child_kind kind;
    tr_restart restart;
    bool running;
    uint32_t restarts;
} tr_child_info;

/**
 * The children, in start order: up to `cap` of them into `out`, and how
 * many there are into `*len` (which may exceed `cap`).
 */
TR_API int tr_sup_which_children_wait(tr_ctx *ctx, tr_addr sup,
                                      tr_child_info *out, size_t cap,
                                      size_t *len, tr_timeout timeout);

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
 *            or it is not running now; TR_EINVAL.
 */
TR_API int tr_whereis_path(tr_system *sys, const char *path, tr_addr *out);

/**
 * Wait until a top-level supervision tree has given up (every top-level
 * supervisor that gives up ends its tree and wakes this).
 *
 * Context:   a plain thread.
 * Returns:   TR_OK when one has; TR_ETIMEDOUT; TR_EINVAL; TR_ESHUTDOWN once
 *            shutdown has begun (it returns at once, before the system is
 *            freed).
 */
TR_API int tr_system_wait(tr_system *sys, tr_timeout timeout);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_SUPERVISOR_H */
