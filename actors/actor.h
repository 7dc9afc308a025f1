/*
 * Private: the actor slot, the context, the system and the address table.
 * See actor.c for the lifecycle and table.c for addresses. The part that
 * other modules may use is in actors/internal.h (included here); the rest
 * is for actors/ alone.
 */
#ifndef TR_ACTORS_ACTOR_H
#define TR_ACTORS_ACTOR_H

#include "actors/internal.h"

/* User-lane message kinds: plain, a call request whose payload starts
 * with TR_CALL_PREFIX bytes naming the call, the marker tr_actor_close
 * queues behind what was sent before it, a group send's shared payload, a
 * group watch's event (handled only while its watch lasts), or a monitor's
 * DOWN (handled only while the receiver holds the monitor). The last two
 * are the kinds from TR_MSG_PG_EVENT on, above every control kind
 * (actors/internal.h), which dispatch sees too: it tells them apart from
 * all others with one comparison. */
enum {
    TR_MSG_PLAIN = 0,
    TR_MSG_CALL = 1,
    TR_MSG_CLOSE = 2,
    TR_MSG_SHARED = 3,   /* the payload is a tr_shared pointer (groups) */
    TR_MSG_PG_EVENT = 8, /* the payload is a tr_pg_event */
    TR_MSG_MON_DOWN = 9, /* the payload is a tr_signal */
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

/*
 * The `cap` word: the mailbox bound in its low bits (TR_CAP_BOUND, which
 * TR_MAILBOX_CAP_MAX fills), and flags above it that senders read with
 * the bound, in the load they make anyway:
 *  - CLOSED: tr_actor_close refuses user messages from then on;
 *  - OVERLOADED: the actor's last run stopped at a full batch with more
 *    queued (mute.c);
 *  - MUTED: the actor is muted: it holds its run-right but sits in no run
 *    queue until whoever clears the flag schedules it;
 *  - MUTERS: some actor recorded itself as muted on this one.
 * Spawning stores the bound alone, so every incarnation starts with none.
 */
#define TR_CAP_CLOSED 0x80000000u
#define TR_CAP_OVERLOADED 0x40000000u
#define TR_CAP_MUTED 0x20000000u
#define TR_CAP_MUTERS 0x10000000u
#define TR_CAP_BOUND 0x0fffffffu
/* A send to an actor under pressure mutes the sender. */
#define TR_CAP_PRESSURE (TR_CAP_OVERLOADED | TR_CAP_MUTED)
_Static_assert(TR_MAILBOX_CAP_MAX == TR_CAP_BOUND,
               "the largest bound fills the bound's bits");

/* Schedule `a`, whose run-right the caller has just taken. */
void tr__actor_schedule(tr_system *sys, tr_actor *a);

/* mute.c */
/*
 * At the end of a run that is not overloaded and sent to `receiver` (an
 * address id) while it was under pressure: mute the runner. True when it
 * is muted: the caller gives the actor up without going idle or
 * requeueing it, and touches it no more. False when it may not or need
 * not be muted (nothing is queued for it, it is a supervisor, the
 * receiver caught up meanwhile, a control message is waiting, no memory
 * for the record).
 */
bool tr__mute(tr_ctx *ctx, uint64_t receiver);
/* `a` (whose run-right the caller holds) ends a run that was not
 * overloaded: clear OVERLOADED and MUTERS and schedule the actors muted on
 * it. */
void tr__unmute_senders(tr_system *sys, tr_actor *a);
/* Test hook: when set, a muting runner calls it with its address id
 * before recording itself on the receiver (`after` false) and between
 * that and its re-check (`after` true): the two windows of the
 * handshake. NULL in production. */
typedef void (*tr_mute_pause_fn)(uint64_t self, bool after);
extern tr_atomic(tr_mute_pause_fn) tr__mute_pause;
/* Schedule the actors in `ids` (`n` address ids) that are still muted,
 * and free the array of `cap` entries. */
void tr__unmute_list(tr_system *sys, uint64_t *ids, uint32_t n, uint32_t cap);
/* A control message was pushed to `a` and did not find it idle: if it is
 * muted, unmute and schedule it, so control is never held back. */
void tr__unmute_for_control(tr_system *sys, tr_actor *a);

typedef struct tr_call_rec tr_call_rec;

/* Heap states a worker keeps for its next spawns: those of up to
 * TR_STATE_LINES cache lines, TR_STATE_KEEP of each line count (actor.c). */
enum { TR_STATE_LINES = 4, TR_STATE_KEEP = 512 };

/* Per-worker data of the actor layer (tr__worker_data). Counters are
 * written by the owner only (relaxed) and summed by readers. */
typedef struct tr_wlocal {
    tr_env_cache envs; /* small envelopes (mailbox/envelope.h) */
    /* Call blocks of the small class ready for reuse (call.c), linked
     * through their first word; this worker's only. */
    void *calls;
    uint32_t ncalls;
    tr_actor *free; /* slots ready for reuse */
    uint32_t nfree;
    tr_atomic(uint64_t) spawned;
    tr_atomic(uint64_t) stopped;
    tr_atomic(uint64_t) failed;
    tr_atomic(uint64_t) handled;
    tr_atomic(uint64_t) dead;
    /* Handler times, kept only while inspection watches (sys->watched):
     * user messages per bucket and their total time. */
    tr_atomic(uint64_t) hist[TR_HIST_BUCKETS];
    tr_atomic(uint64_t) hist_ns;
    /* Heap states its actors' ends freed, by lines less one, linked
     * through their first word; this worker's only. */
    void *states[TR_STATE_LINES];
    uint32_t nstates[TR_STATE_LINES];
} tr_wlocal;

/* Chunks of 4 MiB: mapped pages, resident only as slots are handed out
 * (table.c), so a chunk can be large and the table of chunks small. */
enum { TR_CHUNK_BITS = 15, TR_CHUNK_LEN = 1 << TR_CHUNK_BITS };
enum { TR_MAX_CHUNKS = 1 << 11 }; /* 64 M actors */

struct tr_table {
    tr_atomic(tr_actor *) chunks[TR_MAX_CHUNKS];
    /* Cold: refills of the per-worker free lists and table growth. */
    pthread_mutex_t lock;
    uint32_t next_index; /* slots ever handed out */
    tr_actor *free;      /* shared free list */
    uint32_t nfree;
};

/* See the layout of a local id (actors/internal.h). */
_Static_assert((1u << TR_INDEX_BITS) == (uint32_t)TR_MAX_CHUNKS * TR_CHUNK_LEN,
               "the index covers the table");

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

/* pg.c */
int tr__pgs_create(tr_pgs **out);
void tr__pgs_destroy(tr_pgs *p);
/* Whether the incarnation of `ctx` still holds the watch that sent
 * `event` (a tr_pg_event); an event of a watch that has ended is dropped
 * unseen. Context: the actor's own run. */
bool tr__pg_event_live(tr_ctx *ctx, const void *event);

/* system.c */
/* tr__sys_enter (actors/internal.h) for a call made with `ctx`, with its
 * codes. An actor's context needs nothing: its callbacks run on a worker
 * (joined before anything is freed), inside a plain thread's spawn (which
 * entered), or in shutdown's own last pass; what such a call does in a
 * fork child its own checks answer (resolve's, for a send). */
static inline int
tr__ctx_enter(tr_ctx *ctx)
{
    return ctx->actor != NULL ? TR_OK : tr__sys_enter(ctx->sys);
}

static inline void
tr__ctx_leave(tr_ctx *ctx)
{
    if (ctx->actor == NULL) {
        tr__sys_leave(ctx->sys);
    }
}

/* table.c */
int tr__table_create(tr_table **out);
void tr__table_destroy(tr_table *t);
/* A free slot, from `wl`'s list when given, else the shared one. */
tr_actor *tr__table_take(tr_table *t, tr_wlocal *wl);
/* Give a dead slot back. */
void tr__table_give(tr_table *t, tr_wlocal *wl, tr_actor *a);
/* Slots ever handed out; every index below it has a slot. */
uint32_t tr__table_len(tr_table *t);
tr_actor *tr__table_at(tr_table *t, uint32_t index);

/* actor.c */
void tr__actor_run(void *sys, tr_worker *w, tr_task *task);
/* A simulated kill (sim.c), run in place of tr__actor_run by a step that
 * holds the actor's run-right: the incarnation ends TR_EXIT_KILLED without
 * its `stop` (supervisors and ended slots just run). */
void tr__actor_sim_kill(void *sys, tr_worker *w, tr_task *task);
void tr__actor_count_dead(tr_ctx *ctx, uint64_t to, uint32_t type,
                          tr_dead_reason why);
/* Drop everything queued for `a` (whose run-right the caller holds),
 * counting user messages as dead letters for `why`. */
void tr__actor_drain(tr_ctx *ctx, tr_actor *a, tr_dead_reason why);
/* End a live actor whose run-right the caller holds. A supervised one
 * runs `stop` and hands the right to its supervisor instead. */
void tr__actor_end(tr_ctx *ctx, const tr_exit *exit);
/* How long tr__actor_deliver may wait for room in a full bounded mailbox:
 * not at all, without limit, or else until a time on the system's clock
 * (tr__timers_now). Only plain threads outside any actor's callbacks wait. */
enum { TR_WAIT_NONE = 0 };
#define TR_WAIT_FOREVER UINT64_MAX

/* Queue `env` (a user-lane message) for `to`; TR_OK or an error, in which
 * case the caller still owns `env`. A plain thread's wait for room ends
 * with TR_ESHUTDOWN when shutdown begins, TR_ETIMEDOUT at `wait_until`. */
int tr__actor_deliver(tr_ctx *ctx, tr_addr to, tr_envelope *env,
                      uint64_t wait_until);
/* Push a runtime message (a DOWN, a group event) of user-lane `kind` to
 * the user lane of the incarnation `to` names, behind what is queued
 * there, past its bound; TR_ENOACTOR (the caller still owns `env`) if it
 * has stopped. */
int tr__actor_push_user_to(tr_system *sys, uint64_t to, tr_envelope *env,
                           uint8_t kind);

/* call.c */
/* The call part of a request (what tr_msg.call points to). */
void *tr__call_of(tr_envelope *request);
/* The runner is done with a request: if nobody answered or took it, its
 * call ends with TR_ECLOSED. */
void tr__call_abandon(void *request);
/* The runner's handler failed on a request nobody answered or took: its
 * call ends with TR_EFAILED and `why` (copied). */
void tr__call_fail(void *request, const char *why);
/* Run a call's continuation from its TR_CTL_REPLY message (frees it). */
int tr__call_run_outcome(tr_ctx *ctx, void *state, tr_envelope *env);
/* Free a TR_CTL_REPLY message that will not run. */
void tr__call_drop_outcome(tr_envelope *env);
/* Free a request's node once its mailbox is done with it (into `c`, the
 * calling worker's envelope cache, when it is an envelope of its own). */
void tr__call_free_request(tr_env_cache *c, tr_envelope *env);
void tr__call_timed_out(tr_call_rec *rec);
/* Free the call blocks `wl` keeps (teardown, after the workers ended). */
void tr__call_cache_flush(tr_wlocal *wl);
/* Free the heap states `wl` keeps (teardown, after the workers ended). */
void tr__state_cache_flush(tr_wlocal *wl);
void tr__call_timer_dropped(tr_call_rec *rec);

/* timers.c */
void tr__timer_fire(void *arg, bool last);
void tr__timer_drop(void *arg);
int tr__timer_arm_call(tr_system *sys, tr_call_rec *rec, uint64_t delay_ns,
                       uint64_t *id);
void tr__timer_cancel_call(tr_system *sys, uint64_t id);

#endif /* TR_ACTORS_ACTOR_H */
