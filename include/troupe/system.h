/*
 * The actor system: a pool of worker threads that run actors, the table of
 * actor addresses, and the hooks that report failures and dead letters.
 * Everything troupe allocates hangs off one tr_system; a process may run
 * several.
 */
#ifndef TROUPE_SYSTEM_H
#define TROUPE_SYSTEM_H

#include <troupe/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_system tr_system;

/**
 * A context: who is acting. A handler receives the context of its actor; a
 * plain thread uses tr_system_ctx(). Calls that need an actor (tr_stop,
 * tr_fail, tr_become) return TR_ESTATE on a thread context.
 */
typedef struct tr_ctx tr_ctx;

/** Why an actor stopped. */
typedef enum tr_exit_kind {
    TR_EXIT_NORMAL = 0,   /* tr_stop, or init declined to start */
    TR_EXIT_SHUTDOWN = 1, /* asked to stop: tr_actor_stop or system shutdown */
    TR_EXIT_FAILED = 2,   /* handler error return, tr_fail, a linked failure */
    TR_EXIT_KILLED = 3,   /* ended by its supervisor without running `stop` */
    TR_EXIT_NOACTOR = 4   /* (monitors and links) it had ended already */
} tr_exit_kind;

/** The exit reason given to `stop` callbacks and the failure hook. */
typedef struct tr_exit {
    tr_exit_kind kind;
    int code;         /* the error code for TR_EXIT_FAILED, else TR_OK */
    const char *text; /* human-readable reason; never NULL */
} tr_exit;

/**
 * Called on the failing actor's worker when an actor that nobody supervises
 * fails. It must not block. `behaviour` (the behaviour's name, or
 * "(unnamed)") and `exit` are borrowed for the call.
 */
typedef void (*tr_failure_fn)(void *arg, tr_addr who, const char *behaviour,
                              const tr_exit *exit);

/** Why a message reached no handler. */
typedef enum tr_dead_reason {
    TR_DEAD_NOACTOR = 0,   /* sent to an address whose actor had stopped */
    TR_DEAD_STOPPED = 1,   /* queued when its receiver stopped */
    TR_DEAD_UNHANDLED = 2, /* no handler for its type */
    TR_DEAD_SHUTDOWN = 3,  /* still queued at system shutdown */
    TR_DEAD_FAILED = 4,    /* its handler failed on it (not redelivered) */
    TR_DEAD_FULL = 5       /* a group send found its mailbox full or closed */
} tr_dead_reason;

/**
 * Called for each dead letter, on whatever thread found it, with the
 * address it was sent to and its type; it must not block and must not
 * send. A dead letter that it makes all the same is counted but not
 * reported: the hook never runs inside itself.
 */
typedef void (*tr_dead_letter_fn)(void *arg, tr_addr to, uint32_t type,
                                  tr_dead_reason reason);

typedef struct tr_system_stats tr_system_stats;

/* troupe/sim.h */
struct tr_sim_config;

/** The most worker threads a system has. */
#define TR_WORKERS_MAX 1024u

/** System configuration; zero for every field means its default. */
typedef struct tr_system_config {
    /* Worker threads, at most TR_WORKERS_MAX; 0 means one per online CPU
     * (at most TR_WORKERS_MAX). */
    unsigned workers;
    /* Unsupervised failures; NULL logs one line to stderr. */
    tr_failure_fn on_failure;
    void *on_failure_arg;
    /* Dead letters; NULL only counts them. */
    tr_dead_letter_fn on_dead_letter;
    void *on_dead_letter_arg;
    /* Time moves only by tr_clock_advance (for tests). */
    bool manual_clock;
    /* When non-NULL, tr_system_shutdown writes the final counters here. */
    tr_system_stats *final_stats;
    /* I/O loop threads (troupe/io.h), started by the first tr_io call;
     * sockets are spread over them. 0 means 1; more than 64 means 64. */
    unsigned io_threads;
    /* When non-NULL, the system is simulated (troupe/sim.h): it runs on
     * the thread that starts it, from the seed in `*sim` (copied), with no
     * worker threads (`workers` is ignored) and a virtual clock
     * (`manual_clock` is implied). */
    const struct tr_sim_config *sim;
} tr_system_config;

#define TR_SYSTEM_CONFIG_INIT                                                  \
    {                                                                          \
        0                                                                      \
    }

/** Counters summed over the workers at the time of the call. */
struct tr_system_stats {
    unsigned workers;
    uint64_t live_actors;      /* spawned and not yet stopped */
    uint64_t spawned;          /* tr_spawn calls that returned TR_OK */
    uint64_t failed;           /* actors that ended with TR_EXIT_FAILED */
    uint64_t messages_handled; /* user messages given to a handler */
    uint64_t dead_letters;     /* messages that reached no handler */
};

/**
 * Start a system: its workers begin parked and use no CPU until work
 * arrives. With `cfg->sim` set it is simulated instead (troupe/sim.h):
 * no threads, and the calling thread becomes its driving thread.
 *
 * Ownership: borrows `cfg` (may be NULL for defaults); returns owned `*out`,
 *            released by tr_system_shutdown.
 * Context:   any thread that is not one of another system's workers.
 * Returns:   TR_OK; TR_EINVAL if `out` is NULL, `cfg->workers` is over
 *            TR_WORKERS_MAX, or `cfg->sim` names a tape that is not one,
 *            a chance over its unit (a ppm over 1,000,000, a percentage
 *            over 100) or an unknown strategy; TR_ENOMEM; TR_ESTATE if a
 *            worker thread could not be created, or when called on a
 *            worker of a system; TR_ENOTFOUND if the simulation's trace or
 *            tape file cannot be opened.
 */
TR_API int tr_system_start(const tr_system_config *cfg, tr_system **out);

/**
 * Stop every actor (each `stop` callback runs with TR_EXIT_SHUTDOWN), count
 * what is still queued as dead letters, join the workers and free
 * everything.
 *
 * From the moment this is called, every call other plain threads make on
 * the system (spawn, send, ask, timers, stats...) returns TR_ESHUTDOWN; a
 * thread waiting for room in a bounded mailbox, or in tr_system_wait,
 * returns TR_ESHUTDOWN at once. A call that began earlier completes first
 * (a spawn's `init` included): shutdown waits for it. Every call still
 * pending ends with TR_ECLOSED, wherever its reply handle is: a thread in
 * tr_ask_wait returns; a continuation runs only if its actor is still running
 * on a worker then. Nothing is freed before all of that. Once this has
 * returned, `sys` and its contexts must not be used again; reply handles and
 * oneshots that outlive it still may be (they report TR_ECLOSED).
 *
 * A simulated system (troupe/sim.h) stops the same way, with its driving
 * thread taking the steps and `timeout` counted on its virtual clock; when
 * nothing can run any more and `timeout` is TR_FOREVER, the actors left
 * are stopped at once and the result is TR_ESTUCK.
 *
 * Actors get `timeout` to stop on their workers, on the real (monotonic)
 * clock (TR_NOWAIT: none at all; TR_FOREVER: as long as they take); after
 * that the workers
 * finish the handler they are in, and the actors left are stopped on the
 * calling thread (their `stop` callbacks may still send, but calls and
 * timers are refused with TR_ESHUTDOWN, and waits on channels and
 * mailboxes with TR_ESTATE, as on a worker). A handler that never returns
 * cannot be stopped: C has no safe way to cancel it.
 *
 * Ownership: takes `sys` (it is freed, whatever the result, except on
 *            TR_ESTATE and TR_ESHUTDOWN).
 * Context:   a plain thread, never a worker of `sys` nor an actor's
 *            `init` that a plain thread's spawn runs.
 * Returns:   TR_OK; TR_EINVAL if `sys` is NULL; TR_ESTATE if called from a
 *            worker of `sys`, from an `init` (nothing is stopped: the
 *            spawn that runs it is a call on the system, which shutdown
 *            would wait for), from the live endpoint's `on_warning`
 *            callback (it would join its own thread), or from a thread
 *            other than a simulated system's driving thread; TR_ESTUCK (see
 *            above); TR_ESHUTDOWN if shutdown
 *            had begun already (a second call: it changes nothing);
 *            TR_ETIMEDOUT if actors were still running at the deadline
 *            (they were stopped anyway).
 */
TR_API int tr_system_shutdown(tr_system *sys, tr_timeout timeout);

/**
 * The context that plain (non-worker) threads use to spawn and send.
 *
 * Ownership: returns borrowed, valid until tr_system_shutdown.
 * Context:   any thread.
 * Returns:   the context; NULL if `sys` is NULL.
 */
TR_API tr_ctx *tr_system_ctx(tr_system *sys);

/**
 * The system a context belongs to.
 *
 * Ownership: returns borrowed, valid until tr_system_shutdown.
 * Context:   the thread that holds `ctx`.
 * Returns:   the system; NULL if `ctx` is NULL.
 */
TR_API tr_system *tr_ctx_system(const tr_ctx *ctx);

/**
 * Read the system's counters.
 *
 * Ownership: borrows `sys`; writes `*out`.
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL if an argument is NULL; TR_ESHUTDOWN off the
 *            workers once shutdown has begun (use `final_stats`).
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_system_stats_get(tr_system *sys, tr_system_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_SYSTEM_H */
