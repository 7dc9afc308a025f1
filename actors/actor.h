/*
 * Private: the actor slot, the context, the system and the address table.
 * See actor.c for the lifecycle and table.c for addresses.
 */
#ifndef TR_ACTORS_ACTOR_H
#define TR_ACTORS_ACTOR_H

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/monitor.h>
#include <troupe/system.h>
#include <troupe/timer.h>

#include "common/tr_atomic.h"
#include "common/tr_defs.h"
#include "common/tr_park.h"
#include "mailbox/envelope.h"
#include "mailbox/mpsc.h"
#include "scheduler/sched.h"

#include <pthread.h>

/* Messages one run of an actor handles before it yields its worker. */
enum { TR_BATCH = 1024 };

/* States this small live in the slot itself: no allocation. */
enum { TR_INLINE_STATE = 16 };

/* Control-lane message kinds (tr_envelope.kind): a stop request, a user
 * message (from a timer, or a DOWN), a call's outcome, a runtime hook
 * (tr_ctl_hook), a linked actor's exit (a tr_signal), a supervised
 * child's report (TR_MSG_CHILD, not allocated: see actors/ext.h). */
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

/* User-lane message kinds: plain, a call request whose payload starts
 * with TR_CALL_PREFIX bytes naming the call, or the marker tr_actor_close
 * queues behind what was sent before it. */
enum {
    TR_MSG_PLAIN = 0,
    TR_MSG_CALL = 1,
    TR_MSG_CLOSE = 2,
    TR_MSG_SHARED = 3, /* the payload is a tr_shared pointer (groups) */
    TR_CALL_PREFIX = 16
};

/* A payload shared by many messages (tr_pg_send): copied once, freed by
 * the last message's release. */
typedef struct tr_shared {
    tr_atomic(uint32_t) refs;
    uint32_t size;
    _Alignas(16) unsigned char data[];
} tr_shared;

/* A block holding a copy of `size` bytes at `data`, one reference held by
 * the caller; NULL when out of memory. */
tr_shared *tr__shared_create(const void *data, uint32_t size);
void tr__shared_unref(tr_shared *s);
/* A user-lane message of `type` sharing `s` (takes a reference); NULL when
 * out of memory. */
struct tr_envelope *tr__shared_envelope(tr_shared *s, uint32_t type);
/* Free such a message that was never queued. */
void tr__shared_envelope_destroy(struct tr_envelope *env);

/* The mailbox bound's top bit: tr_actor_close refuses user messages from
 * then on. A bound itself stays under it (TR_MAILBOX_CAP_MAX). */
#define TR_CAP_CLOSED 0x80000000u

typedef struct tr_call_rec tr_call_rec;
typedef struct tr_pgs tr_pgs;
typedef struct tr_timers tr_timers;
typedef struct tr_ext tr_ext;
typedef struct tr_names tr_names;

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
 * run-right), so the list needs no atomics.
 */
typedef struct tr_exit_hook {
    struct tr_exit_hook *next;
    void (*fn)(struct tr_exit_hook *h, tr_ctx *ctx);
} tr_exit_hook;

/*
 * One actor slot: 128 bytes, two cache lines. Slots live in the table for
 * the life of the system and are reused by later incarnations, so a stale
 * address always reads valid memory; `gen` tells incarnations apart. Odd
 * generations are live, even ones dead: spawning and stopping each add one.
 */
typedef struct tr_actor {
    /* Line 0, written by senders (any thread). */
    tr_mpsc_prod mbox;        /* user lane; head's idle bit schedules */
    tr_lifo ctl;              /* control lane, drained first */
    tr_atomic(uint64_t) sent; /* user messages admitted */
    tr_atomic(uint64_t) gen;  /* current incarnation (TR_GEN_BITS wide) */
    tr_atomic(uint32_t) cap;  /* user-lane bound; 0 is unbounded */
    uint32_t index;           /* slot index in the table (immutable) */
    tr_task task;             /* run-queue or free-list link */
    tr_atomic(tr_ext *) ext;  /* links, monitors, name, supervision */
    /* Exit hooks of the live incarnation; only the run-right holder
     * touches them. */
    tr_exit_hook *exits;

    /* Line 1, written by whoever runs the actor. */
    TR_CACHE_ALIGNED tr_mpsc_cons mbox_out;
    union {
        void *heap; /* state_size > TR_INLINE_STATE */
        _Alignas(16) unsigned char inline_state[TR_INLINE_STATE];
    } state;
    tr_atomic(uint64_t) taken; /* user messages popped */
    tr_atomic(uint64_t) handled;
    const tr_behaviour *behaviour;
    const tr_dispatch *table; /* tr_become's table, or NULL */
} tr_actor;

_Static_assert(sizeof(tr_actor) == 2 * TR_CACHE_LINE,
               "an actor slot is two cache lines");
_Static_assert(offsetof(tr_actor, mbox_out) == TR_CACHE_LINE,
               "runner fields start on their own line");

/* Per-worker data of the actor layer (tr__worker_data). Counters are
 * written by the owner only (relaxed) and summed by readers. */
typedef struct tr_wlocal {
    tr_actor *free; /* slots ready for reuse */
    uint32_t nfree;
    tr_atomic(uint64_t) spawned;
    tr_atomic(uint64_t) stopped;
    tr_atomic(uint64_t) failed;
    tr_atomic(uint64_t) handled;
    tr_atomic(uint64_t) dead;
} tr_wlocal;

enum { TR_CHUNK_BITS = 12, TR_CHUNK_LEN = 1 << TR_CHUNK_BITS };
enum { TR_MAX_CHUNKS = 1 << 14 }; /* 64 M actors */

typedef struct tr_table {
    tr_atomic(tr_actor *) chunks[TR_MAX_CHUNKS];
    /* Cold: refills of the per-worker free lists and table growth. */
    pthread_mutex_t lock;
    uint32_t next_index; /* slots ever handed out */
    tr_actor *free;      /* shared free list */
    uint32_t nfree;
} tr_table;

struct tr_ctx {
    tr_system *sys;
    tr_actor *actor;   /* NULL on a thread context */
    tr_worker *worker; /* NULL off the workers */
    uint64_t self;
    uint64_t gen;
    bool stop;      /* tr_stop was called */
    bool uncounted; /* init has not succeeded: not in the counters */
    int fail_code;  /* tr_fail's code, or 0 */
    char fail_text[128];
};

struct tr_system {
    /* This system's node word in the addresses it hands out: random and
     * never 0, so an address of another system (or of an earlier run of
     * this program) is told apart from ours. */
    uint64_t node;
    /* tr__forks when the system started: a forked child has a copy of the
     * system but none of its threads, and must not use it. */
    uint32_t fork_epoch;
    tr_sched *sched;
    tr_table *table;
    tr_timers *timers;
    tr_ctx thread_ctx;
    tr_system_config cfg;

    /* Set once by shutdown; seq_cst pairs with spawn's publication. */
    tr_atomic(bool) shutting_down;
    /* Set once the workers are joined: outcomes are dropped, not sent. */
    tr_atomic(bool) torn_down;

    /* Plain threads inside tr_ask before its wait (they touch the
     * system's timers); shutdown waits for them before freeing anything. */
    tr_atomic(uint32_t) asking;

    /* Plain threads in tr_actor_wait, and the event count they sleep on
     * (bumped when an actor with waiters ends). */
    tr_atomic(uint32_t) waiting;
    struct ck_ec32 ended;

    /* Plain threads blocked in tr_send on a full bounded mailbox. */
    TR_CACHE_ALIGNED tr_atomic(uint32_t) room_waiters;
    struct ck_ec32 room;

    /* Names (ext.c), process groups (pg.c), monitor references, top-level
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
_Static_assert((1u << TR_INDEX_BITS) == (uint32_t)TR_MAX_CHUNKS * TR_CHUNK_LEN,
               "the index covers the table");
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

/* Bumped in the child of every fork() (a pthread_atfork handler, set up
 * by the first tr_system_start). Process-wide by nature: it is the one
 * global the runtime keeps. */
extern tr_atomic(uint32_t) tr__forks;

/* TR_OK, or TR_EFORKED when the calling process is a fork child of the one
 * that started `sys`. */
static inline int
tr__sys_check(const tr_system *sys)
{
    return tr_load_relaxed(&tr__forks) == sys->fork_epoch ? TR_OK : TR_EFORKED;
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

/* pg.c */
int tr__pgs_create(tr_pgs **out);
void tr__pgs_destroy(tr_pgs *p);

/* table.c */
int tr__table_create(tr_table **out);
void tr__table_destroy(tr_table *t);
/* The slot `id` names, or NULL when it names no slot (any thread). */
tr_actor *tr__table_slot(tr_table *t, uint64_t id);
/* A free slot, from `wl`'s list when given, else the shared one. */
tr_actor *tr__table_take(tr_table *t, tr_wlocal *wl);
/* Give a dead slot back. */
void tr__table_give(tr_table *t, tr_wlocal *wl, tr_actor *a);
/* Slots ever handed out; every index below it has a slot. */
uint32_t tr__table_len(tr_table *t);
tr_actor *tr__table_at(tr_table *t, uint32_t index);

/* actor.c */
void tr__actor_run(void *sys, tr_worker *w, tr_task *task);
void tr__actor_count_dead(tr_ctx *ctx, uint64_t to, uint32_t type,
                          tr_dead_reason why);
/* The actor's state (inline or on the heap). */
static inline void *
tr__actor_state(tr_actor *a)
{
    return a->behaviour->state_size <= TR_INLINE_STATE
               ? (void *)a->state.inline_state
               : a->state.heap;
}

/* Drop everything queued for `a` (whose run-right the caller holds),
 * counting user messages as dead letters for `why`. */
void tr__actor_drain(tr_ctx *ctx, tr_actor *a, tr_dead_reason why);
/* End a live actor whose run-right the caller holds. A supervised one
 * runs `stop` and hands the right to its supervisor instead. */
void tr__actor_end(tr_ctx *ctx, const tr_exit *exit);
/* End the incarnation for good: `stop` (when `run_stop`), the generation,
 * the queues, monitors, links and name, the slot. */
void tr__actor_finish(tr_ctx *ctx, const tr_exit *exit, bool run_stop);
/* Run `stop` and the exit hooks of a supervised actor whose run-right the
 * caller holds, and keep holding it (an instance stopped between restarts). */
void tr__actor_stop_held(tr_ctx *ctx, const tr_exit *exit);
/* Give up the run-right of `a` (scheduling it if messages wait). */
void tr__actor_release(tr_system *sys, tr_actor *a);
/*
 * tr_spawn for supervisors: `x` (the new slot's record) is filled by
 * `prepare` before the incarnation is published, and on TR_OK the caller
 * holds the run-right unless `x->held` says the child ended in `init`
 * and handed it over.
 */
int tr__spawn_held(tr_ctx *ctx, const tr_behaviour *b, const void *arg,
                   uint32_t mailbox_cap, void (*prepare)(tr_ext *, void *),
                   void *prepare_arg, tr_addr *out, tr_actor **slot);
/* Run `init` again in a slot whose run-right the caller holds (a restart
 * in place), with fresh zeroed state. TR_OK, TR_IGNORE, or the failure
 * code with its text in `why`. */
int tr__actor_reinit(tr_ctx *ctx, tr_actor *a, const void *arg, char *why,
                     size_t cap);
/* Ask incarnation `gen` of `a` to stop (a control message); a stale `gen`
 * makes it a no-op when it arrives. */
int tr__actor_request_stop(tr_system *sys, tr_actor *a, uint64_t gen,
                           uint64_t from);
/* Queue `env` (a user-lane message) for `to`; TR_OK or an error, in which
 * case the caller still owns `env`. */
int tr__actor_deliver(tr_ctx *ctx, tr_addr to, tr_envelope *env, bool may_wait);
/* Push a control message to the incarnation `to` names; TR_ENOACTOR (the
 * caller still owns `env`) if it has stopped. */
int tr__actor_push_ctl_to(tr_system *sys, uint64_t to, tr_envelope *env);
/* Push a runtime message (a DOWN) to the user lane of the incarnation
 * `to` names, behind what is queued there, past its bound; TR_ENOACTOR
 * (the caller still owns `env`) if it has stopped. */
int tr__actor_push_user_to(tr_system *sys, uint64_t to, tr_envelope *env);
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
/* Unregister `h`; true when it was registered. */
bool tr__actor_cancel_exit(tr_ctx *ctx, tr_exit_hook *h);

/* A plain thread's tr_ask, without the reserved-type check (for the
 * runtime's own requests). */
int tr__ask(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
            size_t size, void *buf, size_t cap, size_t *len,
            uint32_t timeout_ms);

/* call.c */
/* The call part of a request (what tr_msg.call points to). */
void *tr__call_of(tr_envelope *request);
/* The runner is done with a request: if nobody answered or took it, its
 * call ends with TR_ECLOSED. */
void tr__call_abandon(void *request);
/* Run a call's continuation from its TR_CTL_REPLY message (frees it). */
int tr__call_run_outcome(tr_ctx *ctx, void *state, tr_envelope *env);
/* Free a TR_CTL_REPLY message that will not run. */
void tr__call_drop_outcome(tr_envelope *env);
void tr__call_timed_out(tr_call_rec *rec);
void tr__call_timer_dropped(tr_call_rec *rec);

/* timers.c */
/* tr_send_after for the runtime: reserved types, and during shutdown. */
int tr__send_after(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                   size_t size, uint64_t delay_ms, tr_timer *out);
void tr__timer_fire(void *arg, bool last);
void tr__timer_drop(void *arg);
int tr__timer_arm_call(tr_system *sys, tr_call_rec *rec, uint32_t timeout_ms,
                       uint64_t *id);
void tr__timer_cancel_call(tr_system *sys, uint64_t id);

#endif /* TR_ACTORS_ACTOR_H */
