/*
 * Private: the actor internals that other modules may use: channels/,
 * supervisor/ and inspect/ include this header and nothing else from
 * actors/. It holds the slot, the context and the system (whose layouts
 * those modules read), the extension record's supervision fields, how an
 * address id is made, and the calls a channel or a supervisor makes on an
 * actor. What only actors/ itself uses stays in actors/actor.h and
 * actors/ext.h, which include this one.
 */
#ifndef TR_ACTORS_INTERNAL_H
#define TR_ACTORS_INTERNAL_H

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/monitor.h>
#include <troupe/system.h>
#include <troupe/timer.h>

#include "actors/sigtab.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"
#include "mailbox/envelope.h"
#include "mailbox/mpsc.h"
#include "scheduler/sched.h"

#include <pthread.h>

/* Messages one run of an actor handles before it yields its worker. */
enum { TR_BATCH = 1024 };

/* A worker's envelope cache holds what its runs swing through and a batch
 * more, or it trades a batch with the depot every run (envelope.h). */
_Static_assert(TR_ENV_CACHE_MAX >= 2 * TR_BATCH,
               "an envelope cache holds two runs' worth");

/* States this small live in the slot itself: no allocation. */
enum { TR_INLINE_STATE = 16 };

/* Control-lane message kinds (tr_envelope.kind): a stop request, a user
 * message (from a timer, or a DOWN), a call's outcome, a runtime hook
 * (tr_ctl_hook), a linked actor's exit (a tr_signal), a supervised
 * child's report (TR_MSG_CHILD, not allocated: see tr_report_msg). */
enum {
    TR_CTL_STOP = 1,
    TR_CTL_USER = 2,
    TR_CTL_REPLY = 3,
    TR_CTL_HOOK = 4,
    TR_CTL_LINK = 5,
    TR_CTL_CHILD = 6 /* a child's report, which lives in its record */
};

/* Runtime message types (see troupe/monitor.h for the public ones). */
enum {
    TR_MSG_CHILD = 0xFFFFFF10u,     /* a supervised child ended (ctl lane) */
    TR_MSG_SUP_FIRST = 0xFFFFFF20u, /* supervisor requests: see supervisor/ */
};

typedef struct tr_pgs tr_pgs;
struct tr_sim;
typedef struct tr_table tr_table;

/*
 * An object outside the system that keeps the system's address to deliver
 * into it later: a taken reply handle, a oneshot an actor subscribed to.
 * While it is registered, shutdown calls `close` on it (once, after every
 * actor has ended and before anything is freed); `close` makes the object
 * forget the system, waiting for a user of it that got there first. See
 * system.c.
 */
typedef struct tr_outside {
    struct tr_outside *prev;
    struct tr_outside *next;
    bool listed; /* under the system's outside_lock */
    void (*close)(struct tr_outside *l);
} tr_outside;
typedef struct tr_timers tr_timers;
typedef struct tr_ext tr_ext;
typedef struct tr_names tr_names;
typedef struct tr_live tr_live;

/* Buckets of the handler-time histogram: handlers that took at most 1 us,
 * 10 us, ... 10 s, and the rest (TR_HIST_BUCKETS - 1). */
enum { TR_HIST_BUCKETS = 9 };

/*
 * A control message that lives inside a runtime object (a channel
 * subscription) instead of its own allocation, so that a notification costs
 * no allocation and can be queued again and again. Its envelope has kind
 * TR_CTL_HOOK. When the actor runs it, `run` is called in the actor's
 * context and returns true when the actor ended; when it will never run
 * (the actor stopped, or it reached a later incarnation), `drop` is called
 * instead, on whatever thread found it. Neither touches `env` afterwards
 * unless it queues the hook again.
 */
typedef struct tr_ctl_hook {
    tr_envelope env; /* first: the queue node */
    bool (*run)(struct tr_ctl_hook *h, tr_ctx *ctx, void *state,
                uint64_t *handled);
    void (*drop)(struct tr_ctl_hook *h);
} tr_ctl_hook;

/*
 * Called once when the incarnation that registered it ends, after its
 * `stop` callback and before its lanes are drained, in the ending actor's
 * context. Registered and cancelled only by the actor itself (it holds the
 * run-right), so the list needs no atomics. `pprev` is the link that
 * points at the hook while it is registered, NULL otherwise, so that an
 * actor holding ten thousand sockets closes each in constant time.
 */
typedef struct tr_exit_hook {
    struct tr_exit_hook *next;
    struct tr_exit_hook **pprev;
    void (*fn)(struct tr_exit_hook *h, tr_ctx *ctx);
} tr_exit_hook;

/*
 * One actor slot: 128 bytes, two cache lines. Slots live in the table for
 * the life of the system and are reused by later incarnations, so a stale
 * address always reads valid memory; `gen` tells incarnations apart. Odd
 * generations are live, even ones dead: spawning and stopping each add one.
 */
typedef struct tr_actor {
    /* Line 0, written by senders (any thread) on every message, and by
     * the runner at most once a run. */
    tr_mpsc_prod mbox;        /* user lane; head's idle bit schedules */
    tr_atomic(uint64_t) sent; /* user messages admitted */
    tr_atomic(uint64_t) gen;  /* current incarnation (TR_GEN_BITS wide) */
    tr_atomic(uint32_t) cap;  /* bound and flags (TR_CAP_*); 0: unbounded */
    uint32_t index;           /* slot index in the table (immutable) */
    tr_task task;             /* run-queue or free-list link */
    tr_atomic(tr_ext *) ext;  /* links, monitors, name, supervision */
    /* Exit hooks of the live incarnation; only the run-right holder
     * touches them. */
    tr_exit_hook *exits;
    tr_atomic(uint64_t) handled; /* added to once a run */

    /* Line 1, written by whoever runs the actor, read by it before every
     * message; control messages are rare, so their pushers write here. */
    TR_CACHE_ALIGNED tr_mpsc_cons mbox_out;
    union {
        void *heap; /* state_size > TR_INLINE_STATE */
        _Alignas(16) unsigned char inline_state[TR_INLINE_STATE];
    } state;
    tr_lifo ctl; /* control lane, drained first */
    /* User messages popped: exact at every pop for a bounded mailbox (its
     * senders read it), brought up to date once a run otherwise. */
    tr_atomic(uint64_t) taken;
    const tr_behaviour *behaviour;
    const tr_dispatch *table; /* tr_become's table, or NULL */
} tr_actor;

_Static_assert(sizeof(tr_actor) == 2 * TR_CACHE_LINE,
               "an actor slot is two cache lines");
_Static_assert(offsetof(tr_actor, mbox_out) == TR_CACHE_LINE,
               "runner fields start on their own line");

struct tr_ctx {
    tr_system *sys;
    tr_actor *actor;   /* NULL on a thread context */
    tr_worker *worker; /* NULL off the workers */
    uint64_t self;
    uint64_t gen;
    /* The request being handled (tr_reply, tr_reply_take): a message is a
     * call only while its handler runs, and only through its context.
     * req_msg means nothing while req_call is NULL. */
    const tr_msg *req_msg;
    void *req_call;
    /* An overloaded actor this run sent to (an address id), or 0: the
     * runner mutes the actor when the run ends (actors/mute.c). */
    uint64_t mute_on;
    /* Next to each other, so that a run's start clears them in one store,
     * and its end looks at the two it must in one load. */
    bool stop;      /* tr_stop was called */
    bool uncounted; /* init has not succeeded: not in the counters */
    int fail_code;  /* tr_fail's code, or 0 */
    /* A simulated crash (sim.c): the handler of the fault_in-th user
     * message of this run fails; 0: none. */
    uint32_t fault_in;
    char fail_text[128];
};

/* True unless `sys` is simulated and the calling thread is not the one
 * that drives it (sim.c): only the driving thread may wait on a simulated
 * system, and its waits take steps. */
bool tr__sim_on_driver(const tr_system *sys);

/* True while an actor's `init` runs on the calling thread: a plain
 * thread's spawn runs it there, holding the system (its `inside` count)
 * and the new actor's run-right, so that the thread must not wait on the
 * system meanwhile. */
bool tr__in_init(void);

/*
 * The one check of every call that waits with a context (tr_send_wait,
 * tr_ask_wait and the supervisor's calls, tr_actor_wait): never on a
 * worker of any system, nor in an actor's callbacks, which may hold
 * run-rights on a plain thread (a spawner's `init`). False: the call
 * returns TR_ESTATE. Calls without a context check tr__on_a_worker.
 */
static inline bool
tr__ctx_may_wait(const tr_ctx *ctx)
{
    return ctx->actor == NULL && !tr__on_a_worker() && !tr__in_init() &&
           tr__sim_on_driver(ctx->sys);
}

struct tr_system {
    /* Messages one run of an actor may handle: TR_BATCH, except during a
     * simulated step (sim.c), which draws it. Read once a run. */
    unsigned batch;
    /* The user message of the coming run whose handler a simulated crash
     * fails (ctx.fault_in), or 0: set only by a simulated step. */
    uint32_t fault_in;
    /* The simulation (actors/sim.c), or NULL: set at start, never
     * changed while the system runs. */
    struct tr_sim *sim;
    /* This system's node word in the addresses it hands out: random and
     * never 0, so an address of another system (or of an earlier run of
     * this program) is told apart from ours. */
    uint64_t node;
    /* tr__forks when the system started: a forked child has a copy of the
     * system but none of its threads, and must not use it. */
    uint32_t fork_epoch;
    tr_sched *sched;
    tr_env_depot *depot; /* the workers' envelope caches share it */
    tr_table *table;
    tr_timers *timers;
    tr_ctx thread_ctx;
    tr_system_config cfg;

    /* Set once by shutdown; seq_cst pairs with spawn's publication and
     * with tr__sys_enter. */
    tr_atomic(bool) shutting_down;
    /* Set once the workers are joined: outcomes are dropped, not sent. */
    tr_atomic(bool) torn_down;

    /* Calls from plain threads in progress (tr__sys_enter); shutdown
     * waits for them before it stops anything for good. Written by every
     * such call: a line of its own, away from the flags actors read. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) inside;

    /* Registered outside objects (tr_outside); cold: a lock. */
    pthread_mutex_t outside_lock;
    tr_outside *outside;
    /* Stop requests kept for a supervisor out of memory (linked by their
     * nodes; tr__actor_request_stop_reserved), under outside_lock. */
    tr_mnode *stop_reserve;
    tr_atomic(uint32_t) nstop_reserve; /* read without the lock: a hint */

    /* Plain threads in tr_actor_wait, and the event count they sleep on
     * (bumped when an actor with waiters ends). */
    tr_atomic(uint32_t) waiting;
    struct ck_ec32 ended;

    /* Plain threads blocked in tr_send on a full bounded mailbox. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) room_waiters;
    struct ck_ec32 room;

    /* Names (names.c), process groups (pg.c), monitor references, top-level
     * trees that gave up. */
    tr_names *names;
    tr_pgs *pgs;
    tr_atomic(uint64_t) next_ref;
    tr_atomic(uint32_t) gave_up;
    struct ck_ec32 gave_up_ec;
    /* Guards every supervisor's bookkeeping and the list of top-level
     * ones, so that inspection reads a consistent tree (supervisor/). */
    pthread_mutex_t tree_lock;
    void **roots;
    uint32_t nroots, caproots;

    /* The I/O module (io/), started by the first tr_io call under
     * tree_lock; NULL until then. Shutdown calls io_end with phase 0
     * before the workers stop and phase 1 once every actor has ended. */
    tr_atomic(void *) io;
    void (*io_end)(tr_system *sys, int phase);

    /* Counters of work done off the workers (plain threads). */
    TR_CACHE_ALIGNED tr_atomic(uint64_t) ext_spawned;
    tr_atomic(uint64_t) ext_stopped;
    tr_atomic(uint64_t) ext_failed;
    tr_atomic(uint64_t) ext_dead;

    /*
     * Inspection (inspect/live.c). Non-zero while someone watches the live
     * endpoint: then every actor run times its handlers, calls note when
     * they began, and supervisors call `tree_event` on every change of a
     * child. Read once per actor run, written only when watching starts
     * or ends: it stays in every core's cache. `tree_event` is set before
     * the first release store of `watched` and never changes after.
     */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) watched;
    void (*tree_event)(tr_ctx *ctx, unsigned what, const void *child);
    tr_live *live; /* the endpoint's state, or NULL */
    /* Set with `live`: shutdown calls it with `end` false as it begins
     * (the endpoint stops, nobody watches from then on) and with `end`
     * true once the workers are joined (everything is freed). */
    void (*live_close)(tr_system *sys, bool end);
    /* Orders tr_inspect_serve and tr_inspect_stop with each other and
     * with shutdown's live_close(false). */
    pthread_mutex_t live_lock;
    /* Calls that took longer than `overdue_ns` (timed only while
     * watched); rare, so one shared counter. */
    tr_atomic(uint64_t) overdue_ns;
    tr_atomic(uint64_t) calls_overdue;
};

/*
 * A local id (tr_addr.id) is (generation << TR_INDEX_BITS | slot index).
 * The index takes what the table can hold (TR_MAX_CHUNKS * TR_CHUNK_LEN
 * slots) and the generation the rest: 2^38 generations a slot. A slot whose
 * last live generation ends is retired, never reused (table.c), so an id
 * can never name a later incarnation, however fast actors churn: at 20 M
 * spawn+stop a second on one slot, a slot retires every 2 hours and the
 * 2^26 slots last 15,000 years.
 */
enum { TR_INDEX_BITS = TR_ADDR_INDEX_BITS };
#define TR_GEN_BITS (64 - TR_INDEX_BITS)
#define TR_GEN_MAX ((UINT64_C(1) << TR_GEN_BITS) - 1) /* odd: a live one */

static inline uint64_t
tr__addr_id(uint64_t gen, uint32_t index)
{
    return (gen << TR_INDEX_BITS) | index;
}

/* The generation and the slot index a local id names. */
static inline uint64_t
tr__id_gen(uint64_t id)
{
    return id >> TR_INDEX_BITS;
}

static inline uint32_t
tr__id_index(uint64_t id)
{
    return (uint32_t)(id & ((UINT64_C(1) << TR_INDEX_BITS) - 1));
}

/* An envelope records the low 32 bits of the generation it was sent to:
 * a message outlives at most the incarnation after it (each end drains
 * the slot), so the low bits tell them apart. */
static inline uint32_t
tr__env_gen(uint64_t gen)
{
    return (uint32_t)gen;
}

/* The generation whose low 32 bits are `low`, at most `cur` (the slot's
 * generation now) and the nearest to it. */
static inline uint64_t
tr__gen_widen(uint64_t cur, uint32_t low)
{
    uint64_t g = (cur & ~(uint64_t)UINT32_MAX) | low;
    return g > cur && g > UINT32_MAX ? g - (UINT64_C(1) << 32) : g;
}

/* The address of local id `id` as `sys` hands it out. */
static inline tr_addr
tr__addr(const tr_system *sys, uint64_t id)
{
    return (tr_addr){.id = id, .node = id != 0 ? sys->node : 0};
}

/* TR_OK when `a` may name an actor of `sys`; TR_EFOREIGN when it belongs
 * to another system (or another process's copy of it). */
static inline int
tr__addr_check(const tr_system *sys, tr_addr a)
{
    return a.node == 0 || a.node == sys->node ? TR_OK : TR_EFOREIGN;
}

static inline bool
tr__gen_live(uint64_t gen)
{
    return (gen & 1u) != 0;
}

/* system.c */
/* Register `l` (the caller knows the system is running). */
void tr__outside_add(tr_system *sys, tr_outside *l);
/* Unregister `l`; false when shutdown has taken it already (it then calls,
 * or has called, `l->close`). The caller knows the system is not freed
 * (its object's protocol with `close` tells it). */
bool tr__outside_remove(tr_system *sys, tr_outside *l);

/* table.c */
/* The slot `id` names, or NULL when it names no slot (any thread). */
tr_actor *tr__table_slot(tr_table *t, uint64_t id);

/* actor.c */
/* The actor's state (inline or on the heap). */
static inline void *
tr__actor_state(tr_actor *a)
{
    return a->behaviour->state_size <= TR_INLINE_STATE
               ? (void *)a->state.inline_state
               : a->state.heap;
}

/* End the incarnation for good: `stop` (when `run_stop`), the generation,
 * the queues, monitors, links and name, the slot. */
void tr__actor_finish(tr_ctx *ctx, const tr_exit *exit, bool run_stop);
/* Run `stop` and the exit hooks of a supervised actor whose run-right the
 * caller holds, and keep holding it (an instance stopped between restarts). */
void tr__actor_stop_held(tr_ctx *ctx, const tr_exit *exit);
/* Give up the run-right of `a` (scheduling it if messages wait). */
void tr__actor_release(tr_system *sys, tr_actor *a);
/* A dispatch table a runner can read: rows where it says it has them. */
static inline bool
tr__dispatch_ok(const tr_dispatch *d)
{
    return d == NULL || d->len == 0 || d->handlers != NULL;
}

/* A behaviour an actor can be spawned with (tr_spawn's TR_EINVAL). */
static inline bool
tr__behaviour_ok(const tr_behaviour *b)
{
    return b != NULL && (b->handle != NULL || b->dispatch != NULL) &&
           tr__dispatch_ok(b->dispatch);
}

/* tr_spawn that says why `init` failed, into `why` (`cap` bytes; 0 for
 * none): the text `init` gave tr_fail, or "init returned <code>
 * (<name>)". Untouched when `init` did not run or did not fail. */
int tr__spawn_why(tr_ctx *ctx, const tr_behaviour *b, const void *arg,
                  tr_addr *out, char *why, size_t cap);
/*
 * tr_spawn for supervisors: `x` (the new slot's record) is filled by
 * `prepare` before the incarnation is published, and on TR_OK the caller
 * holds the run-right unless `x->held` says the child ended in `init`
 * and handed it over. A failed `init` says why as in tr__spawn_why.
 */
int tr__spawn_held(tr_ctx *ctx, const tr_behaviour *b, const void *arg,
                   uint32_t mailbox_cap, void (*prepare)(tr_ext *, void *),
                   void *prepare_arg, tr_addr *out, tr_actor **slot, char *why,
                   size_t cap);
/* Run `init` again in a slot whose run-right the caller holds (a restart
 * in place), with fresh zeroed state. TR_OK, TR_IGNORE, or the failure
 * code with its text in `why` (as tr__spawn_why's). */
int tr__actor_reinit(tr_ctx *ctx, tr_actor *a, const void *arg, char *why,
                     size_t cap);
/* Ask incarnation `gen` of `a` to stop (a control message); a stale `gen`
 * makes it a no-op when it arrives. */
int tr__actor_request_stop(tr_system *sys, tr_actor *a, uint64_t gen,
                           uint64_t from);
/* The same for a supervisor stopping its child: out of memory, the request
 * comes from the system's reserve (TR_STOP_RESERVE of them, refilled when
 * memory allows), so that a stop sequence is not stranded by a moment
 * with no memory (its deadline timer may be, too). TR_ENOMEM only when
 * the reserve is empty as well. */
enum { TR_STOP_RESERVE = 16 };
int tr__actor_request_stop_reserved(tr_system *sys, tr_actor *a, uint64_t gen,
                                    uint64_t from);
/* Fill the reserve (system start, as memory allows); free it (teardown). */
void tr__stop_reserve_fill(tr_system *sys);
void tr__stop_reserve_free(tr_system *sys);
/* Push a control message to the incarnation `to` names; TR_ENOACTOR (the
 * caller still owns `env`) if it has stopped. */
int tr__actor_push_ctl_to(tr_system *sys, uint64_t to, tr_envelope *env);
/* Push a control message to `a` and schedule it if idle. */
void tr__actor_push_ctl(tr_system *sys, tr_actor *a, tr_envelope *env);
/*
 * Give the running actor (`ctx`, a handler or hook) one message of `type`
 * whose payload it borrows for the handler call, as if it had been queued;
 * counts it as handled. Returns true when the actor ended (it stopped or
 * failed): the caller then returns at once.
 */
bool tr__actor_handle_borrowed(tr_ctx *ctx, void *state, uint32_t type,
                               const void *data, uint32_t size,
                               uint64_t *handled);
/* The handler the running actor has for `type` now; NULL when none. A
 * caller that caches it re-reads it when `ctx->actor->table` changes. */
tr_handle_fn tr__actor_handler(const tr_ctx *ctx, uint32_t type);
/* After a handler for `type` returned `rc`: end the actor if that (or
 * tr_stop, tr_fail) asked for it; true when it ended. */
bool tr__actor_check_end(tr_ctx *ctx, int rc, uint32_t type);
/* Register `h` to run when the calling incarnation ends; `ctx` must be an
 * actor's context (handler, init or hook). */
void tr__actor_on_exit(tr_ctx *ctx, tr_exit_hook *h);
/* Unregister `h`; true when it was registered. Only pointers are
 * compared until `h` is found in the calling incarnation's list, so `h`
 * may be memory already freed (a second unsubscribe): linear in the
 * hooks registered. */
bool tr__actor_cancel_exit(tr_ctx *ctx, tr_exit_hook *h);
/* The same in constant time, for a hook whose memory is valid and that is
 * registered, if at all, by the calling incarnation (a socket it holds);
 * true when it was registered. */
bool tr__actor_unhook_exit(tr_ctx *ctx, tr_exit_hook *h);

/* A plain thread's tr_ask_wait, without the reserved-type check (for the
 * runtime's own requests). */
int tr__ask(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
            size_t size, void *buf, size_t cap, size_t *len, tr_timeout timeout,
            char *why, size_t why_cap);

/* timers.c */
/* tr_send_after for the runtime: reserved types, and during shutdown. */
int tr__send_after(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                   size_t size, uint64_t delay_ms, tr_timer *out);

/* ---- the extension record (ext.c) ---- */

/* The payload of TR_MSG_CHILD: which child ended, and why. Whoever gets it
 * holds the child's run-right; whoever drops it unread (its supervisor
 * ended with it queued) ends the child (actor.c). */
typedef struct tr_child_report {
    void *child; /* tr_ext.child */
    tr_signal why;
} tr_child_report;

/*
 * A report lives in the child's record: a child has at most one in flight
 * (it is held until its supervisor has read the report), so sending one
 * never allocates, and cannot fail for want of memory. Its receiver does
 * not free it.
 */
typedef struct tr_report_msg {
    tr_envelope env;
    tr_child_report r;
} tr_report_msg;

_Static_assert(offsetof(tr_report_msg, r) == sizeof(tr_envelope),
               "a report's payload is where tr__env_data looks");

/* The threads in tr_actor_wait (actors/ext.h). */
typedef struct tr_waiter tr_waiter;

/*
 * The extension record of an actor slot. Most actors never need one; an
 * actor that is monitored, linked, named, trapping exits or supervised
 * gets one on first use. Like the slot it hangs off, it is never freed
 * while the system runs (a stale address may still reach it), and it
 * serves the slot's later incarnations. The supervisor reads and writes
 * the supervision fields, inspection reads `hwm`; the rest is ext.c's.
 */
struct tr_ext {
    /* Guards the fields up to `supervisor`. */
    pthread_mutex_t lock;
    uint64_t gen; /* the incarnation the lists below belong to */
    bool trap_exit;
    tr_sigtab mons; /* the monitors' DOWNs, by reference */
    /* The monitors it holds on others (reference, target), so that its
     * end, or its restart in place, takes them from their targets. */
    tr_sigtab watching;
    tr_sigtab links;    /* this side's EXITs, by peer */
    char *name;         /* registered name (owned), or NULL */
    tr_waiter *waiters; /* threads in tr_actor_wait */
    /* Actors muted on this incarnation (address ids; actors/mute.c). */
    uint64_t *muted;
    uint32_t nmuted, capmuted;
    /* The incarnation is a supervisor: it takes the supervisor's requests
     * (supervisor/). Kept across its restarts in place, like the address. */
    bool supervisor;

    /*
     * Supervision. `parent` and `child` are written before the
     * incarnation is published or while the writer holds the run-right;
     * `kill` by the supervisor (any time; supervisors themselves are
     * killed by a request instead, so that they end their children
     * first); `held` by the runner when it hands the run-right to the
     * supervisor, and by the supervisor. The supervisor's record lock
     * orders reports against its end (actor.c: report_to).
     */
    tr_atomic(uint64_t) parent; /* supervisor's address id, or 0 */
    void *child;                /* the supervisor's record of this child */
    tr_atomic(uint32_t) kill;   /* end without `stop` at the next chance */
    tr_atomic(uint32_t) held;   /* `stop` ran; the supervisor holds the right */
    tr_atomic(uint64_t) hwm;    /* mailbox high-water mark */
    /* For inspection: time in handlers (only while watched; written by
     * the runner, relaxed) and dead letters addressed to this slot (any
     * thread, an add: dead letters are not a hot path). */
    tr_atomic(uint64_t) busy_ns;
    tr_atomic(uint64_t) dead;
    tr_report_msg report;
    /* Set by the actor itself: its end ends a supervision tree, which
     * wakes tr_system_wait (after the failure hook's report). */
    bool escalate;
    /* Set by the actor itself before tr_stop: it ends as shut down, not
     * normally (a supervisor that was asked to stop, as OTP's). */
    bool end_shutdown;
};

/* The slot's record, created on first use; NULL when out of memory. */
tr_ext *tr__ext_get(tr_actor *a);

/* Mark the calling incarnation as a supervisor (see `supervisor`);
 * TR_ENOMEM when it has no record and none can be made. */
int tr__ext_mark_supervisor(tr_ctx *ctx);

/* True when incarnation `gen` of `a` lives and is not a supervisor (any
 * thread). */
bool tr__ext_is_other_than_supervisor(tr_actor *a, uint64_t gen);

/*
 * A plain thread's call on the system begins: TR_OK, and shutdown waits
 * for the matching tr__sys_leave before it ends anything for good, so the
 * call may touch the whole system meanwhile. Otherwise nothing is to be
 * undone and the call returns the code: TR_EFORKED in a fork child of the
 * process that started `sys` (whose threads, and whatever locks they
 * held, stayed in the parent), TR_ESHUTDOWN once shutdown has begun.
 * Every read of the system by a call that a plain thread may make comes
 * after it, so that no such call can miss either check.
 */
int tr__sys_enter(tr_system *sys);
void tr__sys_leave(tr_system *sys);
/* For calls that take only the system: on one of its workers there is
 * nothing to do (TR_OK, `*entered` false); elsewhere as tr__sys_enter
 * (`*entered` true on TR_OK). */
int tr__sys_enter_any(tr_system *sys, bool *entered);

#endif /* TR_ACTORS_INTERNAL_H */
