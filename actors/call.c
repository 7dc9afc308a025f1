/*
 * Calls: request/reply with exactly-once completion.
 *
 * A call is one record shared by its holders, each owning one reference:
 * the request message (until the runner is done with it: handled or
 * dropped as a dead letter), the completion (the caller's side: the
 * continuation's control message, or the thread blocked in tr_ask_wait), with a
 * timeout the timer, and a reply handle once the callee takes it out of the
 * request. The record is freed when the last reference goes.
 *
 * Completion. Whoever ends the call (the reply, the handle dropped or
 * abandoned, the timer) first wins a CAS of `done` from 0 to 1; every later
 * attempt loses and frees what it brought (a late reply). The winner cancels
 * the timer and delivers the outcome: to an actor caller as a TR_CTL_REPLY
 * control message (preallocated at call time, so a failure outcome never
 * needs memory), or to an asking thread through `published` and an event
 * count. So each call ends exactly once, whatever races.
 *
 * The handle's own state (in the request, taken, consumed) makes a second
 * reply fail with TR_EALREADY, and lets the runner abandon a request its
 * handler neither answered nor took: that ends the call with TR_ECLOSED, as
 * do requests dropped as dead letters when their callee stops.
 *
 * Shutdown. Every call ends by the time the system is freed. A request
 * still queued is abandoned when shutdown drains it, and a pending timeout
 * is dropped (both TR_ECLOSED); neither needs anything here. A taken
 * handle, though, may be held anywhere, or lost: while taken, the call is
 * registered with the system (tr_outside, holding a reference), and
 * shutdown ends it with TR_ECLOSED. Its holder may still use the handle
 * later, from any thread, after the system is freed; the `holder` word
 * decides who goes first with one read-modify-write each: the holder sets
 * HOLDER_BUSY before it touches the system (to unregister, to end the call),
 * shutdown sets SYS_GONE. A holder that finds SYS_GONE touches nothing of
 * the system (its call is ended, or being ended, by shutdown); shutdown
 * that finds HOLDER_BUSY waits until the holder is done.
 */
#include "actors/actor.h"
#include "actors/sim.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"
#include "scheduler/timer.h"

#include <troupe/call.h>
#include <troupe/error.h>
#include <troupe/monitor.h>

#include <sched.h>
#include <stdio.h>
#include <string.h>

/*
 * The handle word: (hop << 2) | state. A request is the handle's holder
 * only while the word says IN_MSG with the request's own hop number, so a
 * request whose handle was taken and forwarded (to a request of the next
 * hop) cannot abandon or answer the call any more.
 */
enum { HANDLE_IN_MSG = 0, HANDLE_TAKEN = 1, HANDLE_CONSUMED = 2 };

/* The `holder` word (see the top comment). */
enum { HOLDER_BUSY = 1, SYS_GONE = 2 };

static uint32_t
in_msg(uint32_t hop)
{
    return hop << 2 | HANDLE_IN_MSG;
}

struct tr_call_rec {
    tr_atomic(uint32_t) refs;
    tr_atomic(uint32_t) done;
    tr_atomic(uint32_t) handle;
    tr_atomic(uint32_t) published; /* tr_ask_wait: status and reply are set */
    tr_atomic(uint64_t) timer_id;  /* 0 until armed */
    tr_atomic(uint32_t) holder;    /* HOLDER_BUSY, SYS_GONE */
    tr_outside link;               /* registered while the handle is taken */
    tr_system *sys;
    uint64_t caller; /* 0 for tr_ask_wait */
    uint64_t callee;
    uint64_t node; /* the callee's node word: describe() may run after the
                    * system is freed (an ask that shutdown ended) */
    uint32_t type;
    tr_timeout timeout;  /* TR_FOREVER: none */
    uint64_t started_ns; /* while inspection watches, else 0 */
    tr_reply_fn fn;
    void *arg;
    char *why; /* TR_EFAILED: the callee's failure (owned) */
    /* Made on a simulated system, which counts its open calls; read when
     * the call ends, so that a call of a real system never touches its
     * system then (a handle may answer while shutdown frees it). */
    bool sim;
    /* tr_ask_wait only. */
    struct ck_ec32 ready;
    int status;
    tr_envelope *reply;
};

/* The prefix of call requests and completions: the record, the status. */
typedef struct prefix {
    tr_call_rec *rec;
    int status;   /* in an outcome */
    uint32_t hop; /* in a request */
} prefix;

_Static_assert(sizeof(prefix) == TR_CALL_PREFIX, "call prefix size");

static prefix *
prefix_of(tr_envelope *env)
{
    return tr__env_data(env);
}

/*
 * One allocation a call. The record, the completion message and the first
 * request share one block: the completion has room for a reply of up to
 * REPLY_INLINE bytes, which tr_reply writes in place (a longer reply comes
 * in an envelope of its own), and the request's payload ends the block.
 * The request's node lives in the callee's mailbox until its next pop, so
 * its memory holds a reference of its own (dropped by
 * tr__call_free_request); the completion is the record's while the call
 * runs, and then its caller's, who drops it with the call's reference.
 * Requests of later hops (tr_forward) are envelopes of their own.
 */
enum { REPLY_INLINE = 32 };

typedef struct call_block {
    tr_call_rec rec;
    _Alignas(16) tr_envelope outcome;
    unsigned char outcome_data[TR_CALL_PREFIX + REPLY_INLINE];
    _Alignas(16) tr_envelope request;
    unsigned char request_data[]; /* TR_CALL_PREFIX + the payload */
} call_block;

_Static_assert(offsetof(call_block, outcome_data) ==
                   offsetof(call_block, outcome) + sizeof(tr_envelope),
               "the completion's payload follows its header");
_Static_assert(offsetof(call_block, request_data) ==
                   offsetof(call_block, request) + sizeof(tr_envelope),
               "the request's payload follows its header");

static call_block *
block_of(tr_call_rec *rec)
{
    return (call_block *)(void *)rec;
}

/*
 * Blocks whose request carries at most BLOCK_SMALL payload bytes are all
 * one size, so that a worker can keep those its calls ended and give them
 * to its next calls without the allocator (at most BLOCK_CACHE_MAX of
 * them). Under ASan every block goes back to the allocator, which then
 * sees a use after the end.
 */
enum { BLOCK_SMALL = 64, BLOCK_CACHE_MAX = 64 };

static size_t
block_bytes(size_t payload)
{
    return offsetof(call_block, request_data) + TR_CALL_PREFIX +
           (payload <= BLOCK_SMALL ? BLOCK_SMALL : payload);
}

static size_t
block_size(const call_block *b)
{
    return block_bytes(b->request.size - TR_CALL_PREFIX);
}

/*
 * The calling thread's block cache: a worker's, or NULL. Every pool whose
 * workers run troupe code is a system's (system.c), whose worker data is a
 * tr_wlocal. A block freed on another system's worker joins that cache:
 * the memory is the allocator's, whichever system it served.
 */
static tr_wlocal *
block_cache(void)
{
#ifdef TR_ASAN
    return NULL;
#else
    tr_worker *w = tr__tls.worker;
    return w != NULL ? tr__worker_data(w) : NULL;
#endif
}

static call_block *
alloc_block(size_t payload)
{
    tr_wlocal *wl;

    if (payload <= BLOCK_SMALL && (wl = block_cache()) != NULL &&
        wl->calls != NULL && tr__fail_hook_off()) {
        call_block *b = wl->calls;
        memcpy(&wl->calls, b, sizeof(void *));
        wl->ncalls--;
        return b;
    }
    return tr__alloc(block_bytes(payload));
}

static void
free_block(call_block *b)
{
    size_t bytes = block_size(b);
    tr_wlocal *wl;

    if (bytes == block_bytes(0) && (wl = block_cache()) != NULL &&
        wl->ncalls < BLOCK_CACHE_MAX) {
        memcpy(b, &wl->calls, sizeof(void *));
        wl->calls = b;
        wl->ncalls++;
        return;
    }
    tr__free(b, bytes);
}

void
tr__call_cache_flush(tr_wlocal *wl)
{
    while (wl->calls != NULL) {
        call_block *b = wl->calls;
        memcpy(&wl->calls, b, sizeof(void *));
        tr__free(b, block_bytes(0));
    }
    wl->ncalls = 0;
}

/* Free an envelope the call used: the block's own stay with the block. */
static void
drop_env(tr_call_rec *rec, tr_envelope *env)
{
    if (env != NULL && env != &block_of(rec)->outcome &&
        env != &block_of(rec)->request) {
        tr__env_destroy(env);
    }
}

static void
release(tr_call_rec *rec)
{
    /* acq_rel: the last holder sees every other holder's writes. */
    if (tr_fas_acqrel(&rec->refs, 1) != 1) {
        return;
    }
    drop_env(rec, rec->reply);
    if (rec->why != NULL) {
        tr__free(rec->why, strlen(rec->why) + 1);
    }
    free_block(block_of(rec));
}

/* Win the right to end the call; false when it had ended already. */
static bool
claim(tr_call_rec *rec)
{
    uint32_t expected = 0;

    /* acq_rel: one winner; it sees the record as the caller built it. */
    return tr_cas_acqrel(&rec->done, &expected, 1);
}

/* A simulation counts its open calls, for its liveness check (only the
 * driving thread uses a simulated system, so its record is alive). */
static void
sim_calls_open(tr_call_rec *rec, int d)
{
    if (tr_unlikely(rec->sim)) {
        tr__sim_calls_open(rec->sys, d);
    }
}

/* The winner of claim() ends the call with `status`; `reply` (owned, may
 * be NULL, may be the block's completion) is the reply for TR_OK. */
static void
deliver(tr_call_rec *rec, int status, tr_envelope *reply, bool by_timer)
{
    tr_system *sys = rec->sys;
    tr_envelope *env;
    uint64_t timer = tr_load_acq(&rec->timer_id);

    sim_calls_open(rec, -1);
    if (!by_timer && timer != 0) {
        tr__timer_cancel_call(sys, timer);
    }
    /* Relaxed: a threshold inspection sets, a count it reads; timed only
     * while it watches (new_call). */
    if (tr_unlikely(rec->started_ns != 0) &&
        tr__now_ns() - rec->started_ns >= tr_load_relaxed(&sys->overdue_ns)) {
        tr_faa_relaxed(&sys->calls_overdue, 1);
    }
    if (rec->caller == 0) {
        rec->status = status;
        rec->reply = reply;
        /* Release: pairs with the asker's acquire of `published`. */
        tr_store_rel(&rec->published, 1);
        tr__ec_wake(&rec->ready);
        return;
    }
    if (reply != NULL) {
        env = reply;
    } else {
        env = &block_of(rec)->outcome;
        env->size = TR_CALL_PREFIX;
    }
    env->kind = TR_CTL_REPLY;
    env->type = rec->type;
    env->from = rec->callee;
    prefix_of(env)->rec = rec;
    prefix_of(env)->status = status;

    if (tr_load_acq(&sys->torn_down) ||
        tr__actor_push_ctl_to(sys, rec->caller, env) != TR_OK) {
        /* The caller is gone: nobody to tell. */
        drop_env(rec, env);
        release(rec);
    }
}

/* End the call with `status`; `reply` (owned, may be NULL) is the reply's
 * envelope for TR_OK. False when the call had already ended. */
static bool
complete(tr_call_rec *rec, int status, tr_envelope *reply, bool by_timer)
{
    if (!claim(rec)) {
        drop_env(rec, reply);
        return false;
    }
    deliver(rec, status, reply, by_timer);
    return true;
}

/* ---- runtime hooks ---- */

void *
tr__call_of(tr_envelope *env)
{
    return prefix_of(env);
}

void
tr__call_abandon(void *request)
{
    prefix *p = request;
    tr_call_rec *rec = p->rec;
    uint32_t expected = in_msg(p->hop);

    /* acq_rel: the handle changes hands at most once. Only the request's
     * runner (this thread) moves it from in_msg, so a load that finds it
     * moved (answered or taken: the common case) spares the locked CAS. */
    if (tr_load_relaxed(&rec->handle) == expected &&
        tr_cas_acqrel(&rec->handle, &expected, HANDLE_CONSUMED)) {
        complete(rec, TR_ECLOSED, NULL, false);
    }
    release(rec); /* the request message's reference */
}

void
tr__call_fail(void *request, const char *why)
{
    prefix *p = request;
    tr_call_rec *rec = p->rec;
    uint32_t expected = in_msg(p->hop);

    /* acq_rel: the handle changes hands at most once. The reason is set
     * before complete() publishes the outcome. Out of memory, the call
     * still ends failed, without its reason. */
    if (tr_cas_acqrel(&rec->handle, &expected, HANDLE_CONSUMED)) {
        size_t n = strlen(why) + 1;
        rec->why = tr__alloc(n);
        if (rec->why != NULL) {
            memcpy(rec->why, why, n);
        }
        complete(rec, TR_EFAILED, NULL, false);
    }
    release(rec); /* the request message's reference */
}

void
tr__call_drop_outcome(tr_envelope *env)
{
    tr_call_rec *rec = prefix_of(env)->rec;

    drop_env(rec, env);
    release(rec);
}

void
tr__call_free_request(tr_env_cache *c, tr_envelope *env)
{
    tr_call_rec *rec = prefix_of(env)->rec;

    if (env == &block_of(rec)->request) {
        release(rec); /* the memory's reference */
    } else {
        tr__env_destroy_in(c, env);
    }
}

void
tr__call_timed_out(tr_call_rec *rec)
{
    complete(rec, TR_ETIMEDOUT, NULL, true);
    release(rec);
}

void
tr__call_timer_dropped(tr_call_rec *rec)
{
    /* A cancelled timer finds its call over already; one dropped at
     * shutdown ends a call nobody can answer any more. */
    complete(rec, TR_ECLOSED, NULL, true);
    release(rec);
}

/* Shutdown's end of a call whose handle is still taken (tr_outside). */
static void
close_taken(tr_outside *l)
{
    tr_call_rec *rec = tr_container_of(l, tr_call_rec, link);

    /* acq_rel: one of the two read-modify-writes of `holder` comes first
     * and the other sees it (see the top comment). */
    if (tr_for_acqrel(&rec->holder, SYS_GONE) & HOLDER_BUSY) {
        /* Acquire: pairs with holder_leave; the holder is done with the
         * system. It does not wait on anything. */
        while (tr_load_acq(&rec->holder) & HOLDER_BUSY) {
            sched_yield();
        }
    }
    complete(rec, TR_ECLOSED, NULL, false);
    release(rec); /* the registration's reference */
}

/* The holder of a taken handle begins to use it: false when shutdown has
 * ended the call, and the system may be gone. */
static bool
holder_enter(tr_call_rec *rec)
{
    if (tr_for_acqrel(&rec->holder, HOLDER_BUSY) & SYS_GONE) {
        return false;
    }
    return true;
}

/*
 * The holder is about to end the call through the system: true when it
 * may, entered in the system (`*entered`, as tr__sys_enter_any) so that
 * shutdown waits for it. False when shutdown has ended the call, or has
 * begun and will end it (TR_ECLOSED): the holder then touches nothing of
 * the system, and the registration, still listed, is shutdown's to end.
 * Either way the caller calls holder_leave.
 */
static bool
holder_use(tr_call_rec *rec, bool *entered)
{
    return holder_enter(rec) && tr__sys_enter_any(rec->sys, entered) == TR_OK;
}

static void
holder_leave(tr_call_rec *rec)
{
    /* Release: pairs with close_taken's acquire. */
    tr_fas_acqrel(&rec->holder, HOLDER_BUSY);
}

/* The handle stops being taken (consumed, or forwarded into a request):
 * unregister it, unless shutdown has taken the registration. */
static void
unregister(tr_call_rec *rec)
{
    if (tr__outside_remove(rec->sys, &rec->link)) {
        release(rec); /* the registration's reference */
    }
}

static void
describe(char *buf, size_t cap, const tr_call_rec *rec, int status)
{
    const char *outcome =
        status == TR_OK          ? "replied"
        : status == TR_ETIMEDOUT ? "timed out"
        : status == TR_ENOMEM    ? "sent, but no memory to time it: ended"
        : status == TR_EFAILED   ? "the callee failed"
                                 : "closed: the callee stopped, or dropped "
                                   "the request unanswered";
    const char *why = status == TR_EFAILED && rec->why != NULL ? rec->why : "";
    const char *colon = *why != '\0' ? ": " : "";
    tr_addr to = {.id = rec->callee, .node = rec->node};
    if (rec->timeout.ms < 0) {
        snprintf(buf, cap,
                 "call to " TR_ADDR_FMT " (type %u, no timeout): %s%s%s",
                 TR_ADDR_ARGS(to), rec->type, outcome, colon, why);
    } else {
        snprintf(buf, cap,
                 "call to " TR_ADDR_FMT " (type %u, timeout %lld ms): %s%s%s",
                 TR_ADDR_ARGS(to), rec->type, (long long)rec->timeout.ms,
                 outcome, colon, why);
    }
}

int
tr__call_run_outcome(tr_ctx *ctx, void *state, tr_envelope *env)
{
    prefix *p = prefix_of(env);
    tr_call_rec *rec = p->rec;
    char text[256];
    tr_msg reply = {
        .type = env->type,
        .size = env->size - TR_CALL_PREFIX,
        .data = (char *)tr__env_data(env) + TR_CALL_PREFIX,
        .from = tr__addr(rec->sys, rec->callee),
    };
    tr_call_result result = {
        .status = p->status,
        .reply = p->status == TR_OK ? &reply : NULL,
        .to = tr__addr(rec->sys, rec->callee),
        .type = rec->type,
        .timeout = rec->timeout,
        .text = "replied",
    };

    /* The full text only where it is worth its snprintf: a failure. */
    if (p->status != TR_OK) {
        describe(text, sizeof(text), rec, p->status);
        result.text = text;
    }
    int rc = rec->fn(ctx, state, &result, rec->arg);
    tr__call_drop_outcome(env);
    return rc;
}

/* ---- making calls ---- */

static void arm_timeout(tr_ctx *ctx, tr_call_rec *rec, uint64_t delay_ns);
static void close_taken(tr_outside *l);

static tr_call_rec *
new_call(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size,
         tr_timeout timeout, tr_envelope **request)
{
    call_block *b = alloc_block(size);
    tr_call_rec *rec;
    tr_envelope *req;

    if (b == NULL) {
        return NULL;
    }
    rec = &b->rec;
    req = &b->request;
    /* Field by field, not a memset of the record: every field is set
     * below. */
    req->size = (uint32_t)(TR_CALL_PREFIX + size);
    req->from = 0;
    req->gen = 0;
    /* The request, the completion and the request's memory. */
    tr_init_relaxed(&rec->refs, 3);
    tr_init_relaxed(&rec->done, 0);
    tr_init_relaxed(&rec->handle, HANDLE_IN_MSG);
    tr_init_relaxed(&rec->published, 0);
    tr_init_relaxed(&rec->timer_id, 0);
    tr_init_relaxed(&rec->holder, 0);
    rec->link.prev = NULL;
    rec->link.next = NULL;
    rec->link.listed = false;
    rec->link.close = close_taken;
    rec->sys = ctx->sys;
    rec->sim = ctx->sys->sim != NULL;
    rec->caller = ctx->self;
    rec->callee = to.id;
    rec->node = ctx->sys->node;
    rec->type = type;
    rec->timeout = timeout.ms < 0 ? TR_FOREVER : timeout;
    /* Relaxed: see tr__actor_run. */
    rec->started_ns = tr_unlikely(tr_load_relaxed(&ctx->sys->watched) != 0)
                          ? tr__now_ns()
                          : 0;
    rec->fn = NULL;
    rec->arg = NULL;
    rec->why = NULL;
    ck_ec32_init(&rec->ready, 0);
    rec->status = 0;
    rec->reply = NULL;
    req->type = type;
    req->kind = TR_MSG_CALL;
    prefix_of(req)->rec = rec;
    prefix_of(req)->hop = 0;
    if (size != 0) {
        memcpy((char *)tr__env_data(req) + TR_CALL_PREFIX, data, size);
    }
    *request = req;
    return rec;
}

/* A call whose request was never queued. */
static void
free_call(tr_call_rec *rec)
{
    free_block(block_of(rec));
}

int
tr_call(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size,
        tr_timeout timeout, tr_reply_fn on_reply, void *arg)
{
    tr_envelope *req;
    tr_call_rec *rec;
    int rc;

    if (ctx == NULL || on_reply == NULL || (data == NULL && size != 0) ||
        size > UINT32_MAX - TR_CALL_PREFIX || type >= TR_MSG_RESERVED ||
        timeout.ms == 0) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL || to.id == ctx->self) {
        return TR_ESTATE;
    }
    /* A `stop` callback of shutdown's last pass: its actor ends now, and
     * the continuation could never run. Acquire: set by this same thread,
     * or before the workers that run actors were joined. */
    if (tr_load_acq(&ctx->sys->torn_down)) {
        return TR_ESHUTDOWN;
    }
    rec = new_call(ctx, to, type, data, size, timeout, &req);
    if (rec == NULL) {
        return TR_ENOMEM;
    }
    rec->fn = on_reply;
    rec->arg = arg;
    if (timeout.ms > 0) {
        tr_init_relaxed(&rec->refs, 4); /* and the timer */
    }
    /* Counted before the request can be answered (simulation only). */
    sim_calls_open(rec, 1);
    rc = tr__actor_deliver(ctx, to, req, TR_WAIT_NONE);
    if (rc != TR_OK) {
        sim_calls_open(rec, -1);
        free_call(rec);
        return rc;
    }
    /* Accepted: from here on the call ends exactly once. Arming after the
     * request is queued means a refused call never needs its timer
     * cancelled; a reply that beats the arming finds no timer to cancel,
     * and the timer then fires into a finished call, harmlessly. */
    if (timeout.ms > 0) {
        arm_timeout(ctx, rec, tr_ms_to_ns((uint64_t)timeout.ms));
    }
    return TR_OK;
}

/* Arm the timeout of an accepted call (see tr_call). */
static void
arm_timeout(tr_ctx *ctx, tr_call_rec *rec, uint64_t delay_ns)
{
    uint64_t id;

    if (tr__timer_arm_call(ctx->sys, rec, delay_ns, &id) == TR_OK) {
        tr_store_rel(&rec->timer_id, id);
        if (tr_load_acq(&rec->done) != 0) {
            tr__timer_cancel_call(ctx->sys, id); /* already over */
        }
    } else {
        /* Out of memory for the timer (the timers cannot be closed yet:
         * shutdown closes them after every caller has left): a call that
         * cannot be timed ends now, with TR_ENOMEM (its request was sent:
         * a reply is dropped), rather than wait forever or claim a
         * timeout that never ran. */
        complete(rec, TR_ENOMEM, NULL, true);
        release(rec);
    }
}

int
tr_ask_wait(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
            size_t size, tr_reply_buf *reply, tr_timeout timeout)
{
    if (type >= TR_MSG_RESERVED || reply == NULL || timeout.ms == 0) {
        return TR_EINVAL;
    }
    reply->why[0] = '\0';
    return tr__ask(ctx, to, type, data, size, reply->data, reply->cap,
                   &reply->len, timeout, reply->why, sizeof(reply->why));
}

int
tr__ask(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data, size_t size,
        void *buf, size_t cap, size_t *len, tr_timeout timeout, char *why,
        size_t why_cap)
{
    tr_system *sys;
    tr_envelope *req;
    tr_call_rec *rec;
    uint64_t deadline = TR_WAIT_FOREVER;
    int rc;

    if (ctx == NULL || len == NULL || (buf == NULL && cap != 0) ||
        (data == NULL && size != 0) || size > UINT32_MAX - TR_CALL_PREFIX) {
        return TR_EINVAL;
    }
    sys = ctx->sys;
    if (!tr__ctx_may_wait(ctx)) {
        return TR_ESTATE;
    }
    /* Until the request and its timeout are armed this is a call on the
     * system (the timers are the system's); the wait after is on the
     * record only, which shutdown ends if nothing else does. */
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    /* The timeout bounds the whole call, a wait for room included; it runs
     * on the system's clock (manual clocks included). */
    if (timeout.ms > 0) {
        deadline = tr_timeout_deadline_ns(tr__timers_now(sys->timers), timeout);
    }
    rec = new_call(ctx, to, type, data, size, timeout, &req);
    if (rec == NULL) {
        tr__ctx_leave(ctx);
        return TR_ENOMEM;
    }
    rec->caller = 0;
    if (timeout.ms > 0) {
        tr_init_relaxed(&rec->refs, 4); /* and the timer */
    }
    sim_calls_open(rec, 1);
    rc = tr__actor_deliver(ctx, to, req, deadline);
    if (rc != TR_OK) {
        sim_calls_open(rec, -1);
        free_call(rec);
        tr__ctx_leave(ctx);
        return rc;
    }
    if (timeout.ms > 0) {
        uint64_t now = tr__timers_now(sys->timers);
        /* What is left after the wait for room; at least a moment, as the
         * request is queued already. */
        arm_timeout(ctx, rec, deadline > now ? deadline - now : 1);
    }
    /* Read while the system is ours: once we leave, a real system may be
     * shut down and freed under the wait. A simulated one may not: only
     * this thread, its driver, can shut it down. */
    bool sim = sys->sim != NULL;
    tr__ctx_leave(ctx);
    for (;;) {
        uint32_t seen = tr__ec_value(&rec->ready);
        /* Acquire: pairs with complete()'s release. */
        if (tr_load_acq(&rec->published)) {
            break;
        }
        if (!sim) {
            tr__ec_wait_ms(&rec->ready, seen, -1);
        } else if ((rc = tr__sim_wait_step(sys, TR_WAIT_FOREVER)) != TR_OK) {
            /* Nothing can run and no timer is pending: no answer can
             * come. The record lives on its other references; whoever
             * ends the call later finds nobody waiting. */
            release(rec);
            return rc;
        }
    }
    rc = rec->status;
    if (rc == TR_OK) {
        uint32_t n = rec->reply->size - TR_CALL_PREFIX;
        *len = n;
        if (n > cap) {
            rc = TR_EINVAL;
        } else if (n != 0) {
            memcpy(buf, (char *)tr__env_data(rec->reply) + TR_CALL_PREFIX, n);
        }
    } else if (why != NULL && why_cap != 0) {
        describe(why, why_cap, rec, rc);
    }
    release(rec);
    return rc;
}

/* ---- answering ---- */

/* An envelope for a reply of `size` bytes that does not fit the block's
 * completion; NULL (and `*rc` TR_OK) when it fits, NULL and TR_ENOMEM when
 * no memory. */
static tr_envelope *
reply_env(size_t size, int *rc)
{
    tr_envelope *env = NULL;

    *rc = TR_OK;
    if (size > REPLY_INLINE &&
        (env = tr__env_create((uint32_t)(TR_CALL_PREFIX + size))) == NULL) {
        *rc = TR_ENOMEM;
    }
    return env;
}

/* End the call with the reply `data`, in `env` (from reply_env) or in the
 * block's completion. A reply written in place is written only once the
 * call is ours: a timeout that ended it first owns the completion. */
static int
answer(tr_call_rec *rec, tr_envelope *env, const void *data, size_t size)
{
    if (!claim(rec)) {
        drop_env(rec, env);
        return TR_ECLOSED;
    }
    if (env == NULL) {
        env = &block_of(rec)->outcome;
    }
    env->size = (uint32_t)(TR_CALL_PREFIX + size);
    if (size != 0) {
        memcpy((char *)tr__env_data(env) + TR_CALL_PREFIX, data, size);
    }
    deliver(rec, TR_OK, env, false);
    return TR_OK;
}

static int
send_reply(tr_call_rec *rec, const void *data, size_t size)
{
    int rc;
    tr_envelope *env = reply_env(size, &rc);

    return rc != TR_OK ? rc : answer(rec, env, data, size);
}

int
tr_reply(tr_ctx *ctx, const tr_msg *request, const void *data, size_t size)
{
    tr_call_rec *rec;
    uint32_t expected;
    int rc;

    void *call = ctx != NULL && request != NULL && ctx->req_msg == request
                     ? ctx->req_call
                     : NULL;
    if (call == NULL || (data == NULL && size != 0) ||
        size > UINT32_MAX - TR_CALL_PREFIX) {
        return TR_EINVAL;
    }
    rec = ((prefix *)call)->rec;
    expected = in_msg(((prefix *)call)->hop);
    if (tr_load_acq(&rec->handle) != expected) {
        return TR_EALREADY;
    }
    /* Allocate before consuming the handle, so TR_ENOMEM leaves the
     * request unanswered (its handler may retry or let it close). */
    tr_envelope *env = reply_env(size, &rc);
    if (rc != TR_OK) {
        return rc;
    }
    /* Release: the handle's later readers (tr__call_abandon) see it
     * consumed. A store, not a CAS: only the request's runner, which is
     * this thread inside the handler, moves the handle away from this
     * hop's in_msg (hops only grow, and a taken handle is not in_msg). */
    tr_store_rel(&rec->handle, HANDLE_CONSUMED);
    /* The request still holds its reference: the runner drops it after
     * the handler returns. */
    return answer(rec, env, data, size);
}

tr_reply_to *
tr_reply_take(tr_ctx *ctx, const tr_msg *request)
{
    tr_call_rec *rec;
    uint32_t hop;
    uint32_t expected;
    void *call = ctx != NULL && request != NULL && ctx->req_msg == request
                     ? ctx->req_call
                     : NULL;

    if (call == NULL) {
        return NULL;
    }
    rec = ((prefix *)call)->rec;
    hop = ((prefix *)call)->hop;
    expected = in_msg(hop);
    if (!tr_cas_acqrel(&rec->handle, &expected, hop << 2 | HANDLE_TAKEN)) {
        return NULL;
    }
    /* The handle outlives the request: it holds its own reference, and so
     * does its registration (a handler runs on a running system). */
    tr_faa_relaxed(&rec->refs, 2);
    tr__outside_add(rec->sys, &rec->link);
    return (tr_reply_to *)rec;
}

int
tr_reply_send(tr_reply_to *handle, const void *data, size_t size)
{
    tr_call_rec *rec = (tr_call_rec *)handle;
    bool entered = false;
    int rc;

    if (rec == NULL) {
        return TR_EINVAL;
    }
    if ((data == NULL && size != 0) || size > UINT32_MAX - TR_CALL_PREFIX) {
        tr_reply_drop(handle);
        return TR_EINVAL;
    }
    if (!holder_use(rec, &entered)) {
        /* Shutdown has ended the call, or will (TR_ECLOSED): nothing of
         * the system is touched. */
        holder_leave(rec);
        release(rec);
        return TR_ECLOSED;
    }
    unregister(rec);
    tr_store_rel(&rec->handle, HANDLE_CONSUMED);
    rc = send_reply(rec, data, size);
    if (rc == TR_ENOMEM) {
        complete(rec, TR_ECLOSED, NULL, false);
    }
    if (entered) {
        tr__sys_leave(rec->sys);
    }
    holder_leave(rec);
    release(rec);
    return rc;
}

int
tr_forward(tr_ctx *ctx, tr_reply_to *handle, tr_addr to, uint32_t type,
           const void *data, size_t size)
{
    tr_call_rec *rec = (tr_call_rec *)handle;
    tr_envelope *req;
    int rc;

    if (ctx == NULL || rec == NULL || (data == NULL && size != 0) ||
        size > UINT32_MAX - TR_CALL_PREFIX || type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    /* A plain thread's forward during shutdown is refused (the caller
     * keeps the handle); otherwise the system runs until we are done. */
    if ((rc = tr__ctx_enter(ctx)) != TR_OK) {
        return rc;
    }
    req = tr__env_create((uint32_t)(TR_CALL_PREFIX + size));
    if (req == NULL) {
        tr__ctx_leave(ctx);
        return TR_ENOMEM;
    }
    /* Only the handle's holder changes the word while it is taken. */
    uint32_t taken = tr_load_acq(&rec->handle);
    uint32_t hop = (taken >> 2) + 1;
    req->type = type;
    req->kind = TR_MSG_CALL;
    prefix_of(req)->rec = rec;
    prefix_of(req)->hop = hop;
    if (size != 0) {
        memcpy((char *)tr__env_data(req) + TR_CALL_PREFIX, data, size);
    }
    /* In a request the handle is the runtime's to end again: unregister
     * it (and register it again if the request is refused). */
    unregister(rec);
    /* The handle goes into the new request (next hop) before the request
     * is visible; its reference becomes the request's. Release: pairs with
     * the receiver's acquire in tr_reply and tr_reply_take. */
    tr_store_rel(&rec->handle, in_msg(hop));
    rc = tr__actor_deliver(ctx, to, req, TR_WAIT_NONE);
    if (rc != TR_OK) {
        tr_store_rel(&rec->handle, taken); /* the caller keeps it */
        tr_faa_relaxed(&rec->refs, 1);
        tr__outside_add(rec->sys, &rec->link);
        tr__env_destroy(req);
    }
    tr__ctx_leave(ctx);
    return rc;
}

void
tr_reply_drop(tr_reply_to *handle)
{
    tr_call_rec *rec = (tr_call_rec *)handle;

    if (rec == NULL) {
        return;
    }
    bool entered = false;

    if (holder_use(rec, &entered)) {
        unregister(rec);
        tr_store_rel(&rec->handle, HANDLE_CONSUMED);
        complete(rec, TR_ECLOSED, NULL, false);
        if (entered) {
            tr__sys_leave(rec->sys);
        }
    }
    holder_leave(rec);
    release(rec);
}

bool
tr_msg_is_call(const tr_ctx *ctx, const tr_msg *msg)
{
    return ctx != NULL && msg != NULL && ctx->req_msg == msg &&
           ctx->req_call != NULL;
}
