/*
 * Monitors, links and names: DOWN reasons and references, monitors of dead
 * addresses, demonitor, link propagation and trapping, stop requests to a
 * trapping actor, the registry (including a supervised restart in place),
 * reserved message types, many monitors and links racing the ends of
 * their targets, one actor with 100,000 monitors or links, and the
 * monitors a watcher holds ending with it (its end, its restart in place,
 * their DOWNs' delivery).
 *
 * Handlers never assert: they post events to a probe mailbox (or count
 * into atomics) and the test thread asserts after a wait with a deadline.
 */
#include "support/tr_test.h"

#include "actors/names.h"
#include "common/tr_alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Commands a watcher obeys; each that reports posts one EV_RC. */
enum {
    CMD_MONITOR = 1,   /* payload tr_addr: tr_monitor; EV_RC with the ref */
    CMD_DEMONITOR,     /* payload uint64_t ref: tr_demonitor */
    CMD_LINK,          /* payload tr_addr: tr_link */
    CMD_UNLINK,        /* payload tr_addr: tr_unlink */
    CMD_LINK_SELF,     /* tr_link to itself */
    CMD_TRAP,          /* payload bool: tr_trap_exits */
    CMD_KEEP,          /* from now on, a stop request does not stop it */
    CMD_PING,          /* reports EV_PONG */
    CMD_STOP,          /* tr_stop; no report */
    CMD_RETURN,        /* payload int: return it from the handler */
    CMD_FAIL,          /* payload fail_req: tr_fail; no report */
    CMD_GO,            /* crowd: monitor and link every target */
    CMD_HOLD,          /* EV_RC, then spin until hold_release */
    CMD_QUIET_MONITOR, /* payload tr_addr: tr_monitor into quiet_rc */
    CMD_QUIET_LINK,    /* payload tr_addr: tr_link into quiet_rc */
};

/* For the out-of-memory tests: a handler that holds its worker, signals
 * that wait at a gate (posting an event allocates), and results kept
 * without allocating. */
static tr_atomic(bool) hold_release;
static tr_atomic(bool) signal_gate = true;
static tr_atomic(int) quiet_rc;
static tr_atomic(bool) quiet_done;

enum { EV_RC = 1, EV_DOWN, EV_EXIT, EV_PONG, EV_STOP, EV_INIT, EV_BAD };

typedef struct event {
    int tag;
    tr_addr self;      /* the actor that posted it */
    int rc;            /* EV_RC */
    uint64_t ref;      /* EV_RC of CMD_MONITOR */
    tr_signal sig;     /* EV_DOWN, EV_EXIT */
    tr_exit_kind kind; /* EV_STOP */
    int code;          /* EV_STOP */
    char text[128];    /* EV_STOP */
} event;

typedef struct fail_req {
    int code;
    char text[64];
} fail_req;

/* ---- the probe and its reorder buffer ---- */

enum { PENDING_CAP = 512, WAIT_MS = 5000 };

/* The count of the mass cases (one actor with that many monitors, links,
 * names over time). */
enum { MANY = 100000 };

static tr_mailbox *probe;
/* Events received while looking for another one (test thread only). */
static event pending[PENDING_CAP];
static size_t npending;

static void
post(const event *ev)
{
    int rc = tr_mailbox_send(probe, ev, sizeof(*ev));
    (void)rc; /* an unbounded mailbox only fails on OOM */
}

static bool
matches(const event *ev, int tag, tr_addr who)
{
    return ev->tag == tag &&
           (tr_addr_is_none(who) || tr_addr_eq(ev->self, who));
}

/* The first event with `tag` from `who` (anyone when TR_ADDR_NONE), in the
 * order posted; others seen meanwhile are kept for later takes. */
static event
take(int tag, tr_addr who)
{
    event ev;
    size_t len;

    for (size_t i = 0; i < npending; i++) {
        if (matches(&pending[i], tag, who)) {
            ev = pending[i];
            memmove(&pending[i], &pending[i + 1],
                    (npending - i - 1) * sizeof(event));
            npending--;
            return ev;
        }
    }
    for (;;) {
        int rc =
            tr_mailbox_recv_wait(probe, &ev, sizeof(ev), &len, tr_ms(WAIT_MS));
        if (rc != TR_OK) {
            fail_msg("no event %d from %#llx within %d ms (%s)", tag,
                     (unsigned long long)who.id, WAIT_MS, tr_errname(rc));
        }
        if (matches(&ev, tag, who)) {
            return ev;
        }
        if (npending == PENDING_CAP) {
            fail_msg("too many unexpected events");
        }
        pending[npending++] = ev;
    }
}

/* How many events with `tag` from `who` have been received and not taken. */
static size_t
count_pending(int tag, tr_addr who)
{
    size_t n = 0;
    for (size_t i = 0; i < npending; i++) {
        n += matches(&pending[i], tag, who);
    }
    return n;
}

/* ---- the watcher: obeys commands, reports signals and its end ---- */

typedef struct watcher {
    bool keep; /* a stop request (EXIT from nobody) does not stop it */
} watcher;

static int
watcher_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    watcher *w = state;
    event ev = {.tag = EV_RC, .self = tr_self(ctx)};
    tr_addr t = TR_ADDR_NONE;
    uint64_t ref = 0;
    bool on = false;
    int rc = TR_OK;

    switch (msg->type) {
    case CMD_MONITOR:
        memcpy(&t, msg->data, sizeof(t));
        ev.rc = tr_monitor(ctx, t, &ev.ref);
        break;
    case CMD_DEMONITOR:
        memcpy(&ref, msg->data, sizeof(ref));
        ev.rc = tr_demonitor(ctx, ref);
        break;
    case CMD_LINK:
        memcpy(&t, msg->data, sizeof(t));
        ev.rc = tr_link(ctx, t);
        break;
    case CMD_UNLINK:
        memcpy(&t, msg->data, sizeof(t));
        ev.rc = tr_unlink(ctx, t);
        break;
    case CMD_LINK_SELF:
        ev.rc = tr_link(ctx, tr_self(ctx));
        break;
    case CMD_TRAP:
        memcpy(&on, msg->data, sizeof(on));
        ev.rc = tr_trap_exits(ctx, on);
        break;
    case CMD_KEEP:
        w->keep = true;
        break;
    case CMD_PING:
        ev.tag = EV_PONG;
        break;
    case CMD_STOP:
        return tr_stop(ctx);
    case CMD_HOLD:
        post(&ev);
        while (!tr_load_acq(&hold_release)) {
        }
        return TR_OK;
    case CMD_QUIET_MONITOR:
    case CMD_QUIET_LINK:
        memcpy(&t, msg->data, sizeof(t));
        tr_store_relaxed(&quiet_rc, msg->type == CMD_QUIET_LINK
                                        ? tr_link(ctx, t)
                                        : tr_monitor(ctx, t, &ref));
        tr_store_rel(&quiet_done, true);
        return TR_OK;
    case CMD_RETURN:
        memcpy(&rc, msg->data, sizeof(rc));
        return rc;
    case CMD_FAIL: {
        fail_req r;
        memcpy(&r, msg->data, sizeof(r));
        (void)tr_fail(ctx, r.code, r.text);
        return TR_OK;
    }
    case TR_MSG_DOWN:
    case TR_MSG_EXIT:
        while (!tr_load_acq(&signal_gate)) {
        }
        if (msg->size != sizeof(tr_signal)) {
            ev.tag = EV_BAD;
            break;
        }
        ev.tag = msg->type == TR_MSG_DOWN ? EV_DOWN : EV_EXIT;
        memcpy(&ev.sig, msg->data, sizeof(ev.sig));
        post(&ev);
        /* A request to stop (nobody's exit) stops it, unless told to keep
         * running: then only an explicit CMD_STOP does. */
        if (ev.tag == EV_EXIT && !w->keep && ev.sig.kind == TR_EXIT_SHUTDOWN &&
            tr_addr_is_none(ev.sig.who)) {
            return tr_stop(ctx);
        }
        return TR_OK;
    default:
        ev.tag = EV_BAD;
        break;
    }
    post(&ev);
    return TR_OK;
}

static void
watcher_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    event ev = {.tag = EV_STOP, .self = tr_self(ctx)};
    (void)state;
    ev.kind = exit->kind;
    ev.code = exit->code;
    snprintf(ev.text, sizeof(ev.text), "%s", exit->text);
    post(&ev);
}

static const tr_behaviour watcher_behaviour = {
    .name = "watcher",
    .state_size = sizeof(watcher),
    .handle = watcher_handle,
    .stop = watcher_stop,
};

/* A supervised child: a watcher whose every init reports itself. */
static int
kid_init(tr_ctx *ctx, void *state, const void *arg)
{
    event ev = {.tag = EV_INIT, .self = tr_self(ctx)};
    (void)state;
    (void)arg;
    post(&ev);
    return TR_OK;
}

static const tr_behaviour kid_behaviour = {
    .name = "kid",
    .state_size = sizeof(watcher),
    .init = kid_init,
    .handle = watcher_handle,
    .stop = watcher_stop,
};

/* ---- fixture ---- */

typedef struct fixture {
    tr_system *sys;
    tr_ctx *ctx;
    tr_system_stats final;
    tr_atomic(uint64_t) failures; /* unsupervised failures reported */
} fixture;

static void
on_failure(void *arg, tr_addr who, const char *behaviour, const tr_exit *exit)
{
    tr_atomic(uint64_t) *n = arg;
    (void)who;
    (void)behaviour;
    (void)exit;
    tr_faa_relaxed(n, 1);
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    if (f == NULL || tr_mailbox_create(0, &probe) != TR_OK) {
        return -1;
    }
    npending = 0;
    tr_init_relaxed(&f->failures, 0);
    cfg.workers = 2;
    cfg.on_failure = on_failure;
    cfg.on_failure_arg = &f->failures;
    cfg.final_stats = &f->final;
    if (tr_system_start(&cfg, &f->sys) != TR_OK) {
        return -1;
    }
    f->ctx = tr_system_ctx(f->sys);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    int rc = f->sys != NULL ? tr_system_shutdown(f->sys, tr_ms(5000)) : TR_OK;
    uint64_t live = f->final.live_actors;

    tr_mailbox_destroy(probe);
    probe = NULL;
    free(f);
    if (rc != TR_OK || live != 0) {
        fprintf(stderr, "teardown: shutdown %s, %llu live actors\n",
                tr_errname(rc), (unsigned long long)live);
        return -1;
    }
    return 0;
}

/* ---- helpers (test thread) ---- */

static tr_addr
spawn_watcher(fixture *f)
{
    tr_addr a = TR_ADDR_NONE;
    assert_int_equal(tr_spawn(f->ctx, &watcher_behaviour, NULL, NULL, &a),
                     TR_OK);
    return a;
}

static void
send_cmd(fixture *f, tr_addr to, uint32_t type, const void *data, size_t size)
{
    assert_int_equal(tr_send(f->ctx, to, type, data, size), TR_OK);
}

/* Run a reporting command on `to` and return its EV_RC. */
static event
cmd(fixture *f, tr_addr to, uint32_t type, const void *data, size_t size)
{
    send_cmd(f, to, type, data, size);
    return take(EV_RC, to);
}

static uint64_t
monitor(fixture *f, tr_addr watcher_addr, tr_addr target)
{
    event ev = cmd(f, watcher_addr, CMD_MONITOR, &target, sizeof(target));
    assert_int_equal(ev.rc, TR_OK);
    assert_int_not_equal(ev.ref, 0);
    return ev.ref;
}

static void
link_to(fixture *f, tr_addr a, tr_addr b)
{
    assert_int_equal(cmd(f, a, CMD_LINK, &b, sizeof(b)).rc, TR_OK);
}

static void
trap(fixture *f, tr_addr a)
{
    bool on = true;
    assert_int_equal(cmd(f, a, CMD_TRAP, &on, sizeof(on)).rc, TR_OK);
}

/* `a` is alive and answering: a ping sent now comes back. */
static void
ping(fixture *f, tr_addr a)
{
    send_cmd(f, a, CMD_PING, NULL, 0);
    (void)take(EV_PONG, a);
}

static void
fail_with(fixture *f, tr_addr a, int code)
{
    send_cmd(f, a, CMD_RETURN, &code, sizeof(code));
}

static void
stop_and_wait(fixture *f, tr_addr a)
{
    send_cmd(f, a, CMD_STOP, NULL, 0);
    assert_true(tr_test_wait_stopped(f->sys, a, WAIT_MS));
}

typedef struct live_arg {
    tr_system *sys;
    uint64_t n;
} live_arg;

static bool
live_is(void *p)
{
    live_arg *a = p;
    tr_system_stats st;
    return tr_system_stats_get(a->sys, &st) == TR_OK && st.live_actors == a->n;
}

/*
 * Wait until exactly `n` actors live. The counter drops after an ended
 * actor has sent its DOWNs and link exits, so once it has, every signal of
 * those ends is queued and reaches its receiver before a later message.
 */
static void
wait_live(fixture *f, uint64_t n)
{
    live_arg a = {f->sys, n};
    if (!tr_test_wait_until(live_is, &a, WAIT_MS)) {
        tr_system_stats st;
        tr_system_stats_get(f->sys, &st);
        fail_msg("%llu actors live, want %llu",
                 (unsigned long long)st.live_actors, (unsigned long long)n);
    }
}

static void
assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL) {
        fail_msg("\"%s\" does not mention \"%s\"", text, part);
    }
}

/* ---- monitors ---- */

enum { END_NORMAL, END_SHUTDOWN, END_RETURN, END_FAIL };

/* `how` ends a monitored target; the DOWN carries the reason. */
static event
down_after(fixture *f, int how)
{
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    uint64_t ref = monitor(f, w, t);
    fail_req r = {.code = 77, .text = "the disk is on fire"};

    switch (how) {
    case END_NORMAL:
        send_cmd(f, t, CMD_STOP, NULL, 0);
        break;
    case END_SHUTDOWN:
        assert_int_equal(tr_actor_stop(f->ctx, t), TR_OK);
        break;
    case END_RETURN:
        fail_with(f, t, TR_ETIMEDOUT);
        break;
    case END_FAIL:
        send_cmd(f, t, CMD_FAIL, &r, sizeof(r));
        break;
    default:
        fail();
    }
    event st = take(EV_STOP, t);
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_true(tr_addr_eq(d.sig.who, t));
    /* The DOWN says what the target's own `stop` heard. */
    assert_int_equal(d.sig.kind, st.kind);
    assert_int_equal(d.sig.code, st.code);
    assert_string_equal(d.sig.text, st.text);
    /* One DOWN only: a later message finds none queued before it. */
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
    return d;
}

static void
test_monitor_down_after_normal_stop(void **state)
{
    event d = down_after(*state, END_NORMAL);
    assert_int_equal(d.sig.kind, TR_EXIT_NORMAL);
    assert_int_equal(d.sig.code, TR_OK);
}

static void
test_monitor_down_after_shutdown_request(void **state)
{
    event d = down_after(*state, END_SHUTDOWN);
    assert_int_equal(d.sig.kind, TR_EXIT_SHUTDOWN);
    assert_int_equal(d.sig.code, TR_OK);
}

static void
test_monitor_down_after_handler_error(void **state)
{
    event d = down_after(*state, END_RETURN);
    char num[16];
    assert_int_equal(d.sig.kind, TR_EXIT_FAILED);
    assert_int_equal(d.sig.code, TR_ETIMEDOUT);
    snprintf(num, sizeof(num), "%d", TR_ETIMEDOUT);
    assert_contains(d.sig.text, num);
    assert_contains(d.sig.text, tr_errname(TR_ETIMEDOUT));
}

static void
test_monitor_down_after_tr_fail_carries_its_text(void **state)
{
    event d = down_after(*state, END_FAIL);
    assert_int_equal(d.sig.kind, TR_EXIT_FAILED);
    assert_int_equal(d.sig.code, 77);
    assert_string_equal(d.sig.text, "the disk is on fire");
}

static void
test_monitor_of_dead_address_is_down_at_once(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);

    stop_and_wait(f, t);
    uint64_t ref = monitor(f, w, t);
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_true(tr_addr_eq(d.sig.who, t));
    assert_int_equal(d.sig.kind, TR_EXIT_NOACTOR);

    /* An address that never named an actor, too. */
    ref = monitor(f, w, TR_ADDR_NONE);
    d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_int_equal(d.sig.kind, TR_EXIT_NOACTOR);
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
}

static void
test_monitor_twice_gives_two_downs(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    uint64_t r1 = monitor(f, w, t);
    uint64_t r2 = monitor(f, w, t);

    assert_int_not_equal(r1, r2);
    stop_and_wait(f, t);
    event d1 = take(EV_DOWN, w);
    event d2 = take(EV_DOWN, w);
    assert_true((d1.sig.ref == r1 && d2.sig.ref == r2) ||
                (d1.sig.ref == r2 && d2.sig.ref == r1));
    assert_true(tr_addr_eq(d1.sig.who, t));
    assert_true(tr_addr_eq(d2.sig.who, t));
    wait_live(f, 1);
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
}

static void
test_demonitor_removes_only_that_monitor(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    uint64_t r1 = monitor(f, w, t);
    uint64_t r2 = monitor(f, w, t);

    assert_int_equal(cmd(f, w, CMD_DEMONITOR, &r1, sizeof(r1)).rc, TR_OK);
    stop_and_wait(f, t);
    /* The first DOWN is the one kept; a sentinel after it finds no DOWN
     * for the removed one queued in between. */
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, r2);
    wait_live(f, 1);
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
    /* Both are gone now: one removed, one fired. */
    assert_int_equal(cmd(f, w, CMD_DEMONITOR, &r1, sizeof(r1)).rc,
                     TR_ENOTFOUND);
    assert_int_equal(cmd(f, w, CMD_DEMONITOR, &r2, sizeof(r2)).rc,
                     TR_ENOTFOUND);
}

static void
test_demonitor_unknown_ref_is_not_found(void **state)
{
    fixture *f = *state;
    tr_addr w1 = spawn_watcher(f);
    tr_addr w2 = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    uint64_t theirs = monitor(f, w2, t);
    uint64_t refs[] = {
        0,          12345,
        UINT64_MAX, theirs + (1ull << 32), /* t's slot, a ref never given out */
        theirs,                            /* w2's monitor, not w1's */
    };

    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        event ev = cmd(f, w1, CMD_DEMONITOR, &refs[i], sizeof(refs[i]));
        if (ev.rc != TR_ENOTFOUND) {
            fail_msg("demonitor(%#llx) returned %s",
                     (unsigned long long)refs[i], tr_errname(ev.rc));
        }
    }
    /* w2's monitor survived w1's attempt. */
    stop_and_wait(f, t);
    assert_int_equal(take(EV_DOWN, w2).sig.ref, theirs);
    wait_live(f, 2);
    ping(f, w1);
    assert_int_equal(count_pending(EV_DOWN, w1), 0);
}

static void
test_monitor_and_link_refused_on_thread_context(void **state)
{
    fixture *f = *state;
    tr_addr t = spawn_watcher(f);
    uint64_t ref = 99;

    assert_int_equal(tr_monitor(f->ctx, t, &ref), TR_ESTATE);
    assert_int_equal(ref, 99); /* untouched on error */
    assert_int_equal(tr_demonitor(f->ctx, 1), TR_ESTATE);
    assert_int_equal(tr_link(f->ctx, t), TR_ESTATE);
    assert_int_equal(tr_unlink(f->ctx, t), TR_ESTATE);
    assert_int_equal(tr_trap_exits(f->ctx, true), TR_ESTATE);
    assert_int_equal(tr_monitor(NULL, t, &ref), TR_EINVAL);
    assert_int_equal(tr_demonitor(NULL, 1), TR_EINVAL);
    assert_int_equal(tr_link(NULL, t), TR_EINVAL);
    /* t heard nothing of it. */
    ping(f, t);
}

/* ---- links ---- */

static void
test_link_failure_ends_the_linked_actor(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);

    link_to(f, a, b);
    fail_with(f, b, 4242);
    event sb = take(EV_STOP, b);
    assert_int_equal(sb.kind, TR_EXIT_FAILED);
    assert_int_equal(sb.code, 4242);
    event sa = take(EV_STOP, a);
    assert_int_equal(sa.kind, TR_EXIT_FAILED);
    assert_int_not_equal(sa.code, TR_OK);
    assert_contains(sa.text, "linked actor");
    wait_live(f, 0);
}

static void
test_link_propagates_both_ways(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);

    /* a made the link; a fails; b, the other side, fails too. */
    link_to(f, a, b);
    fail_with(f, a, 4242);
    assert_int_equal(take(EV_STOP, a).kind, TR_EXIT_FAILED);
    event sb = take(EV_STOP, b);
    assert_int_equal(sb.kind, TR_EXIT_FAILED);
    assert_contains(sb.text, "linked actor");
    wait_live(f, 0);
}

static void
test_link_normal_stop_does_not_end_the_peer(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);

    link_to(f, a, b);
    send_cmd(f, b, CMD_STOP, NULL, 0);
    assert_int_equal(take(EV_STOP, b).kind, TR_EXIT_NORMAL);
    wait_live(f, 1); /* b's link exit is queued at a by now */
    ping(f, a);
    assert_int_equal(count_pending(EV_STOP, a), 0);
    tr_actor_stats st;
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_OK);
}

static void
test_link_trapping_actor_gets_exit_and_lives(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr c = spawn_watcher(f);

    trap(f, a);
    link_to(f, a, b);
    link_to(f, c, a); /* the other side's link traps too */
    fail_with(f, b, 4242);
    event e = take(EV_EXIT, a);
    assert_true(tr_addr_eq(e.sig.who, b));
    assert_int_equal(e.sig.kind, TR_EXIT_FAILED);
    assert_int_equal(e.sig.code, 4242);
    assert_int_equal(e.sig.ref, 0);

    send_cmd(f, c, CMD_STOP, NULL, 0);
    e = take(EV_EXIT, a); /* trapping hears normal ends too */
    assert_true(tr_addr_eq(e.sig.who, c));
    assert_int_equal(e.sig.kind, TR_EXIT_NORMAL);
    assert_int_equal(e.sig.code, TR_OK);

    wait_live(f, 1);
    ping(f, a);
    assert_int_equal(count_pending(EV_STOP, a), 0);
    assert_int_equal(count_pending(EV_EXIT, a), 0);
}

static void
test_link_to_dead_address(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr d = spawn_watcher(f);

    stop_and_wait(f, d);
    /* Not trapping: the caller fails. */
    link_to(f, a, d);
    event sa = take(EV_STOP, a);
    assert_int_equal(sa.kind, TR_EXIT_FAILED);
    assert_contains(sa.text, "linked actor");
    /* Trapping: an EXIT saying it was gone already. */
    trap(f, b);
    link_to(f, b, d);
    event e = take(EV_EXIT, b);
    assert_true(tr_addr_eq(e.sig.who, d));
    assert_int_equal(e.sig.kind, TR_EXIT_NOACTOR);
    ping(f, b);
    assert_int_equal(count_pending(EV_STOP, b), 0);
}

static void
test_unlink_stops_propagation(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr c = spawn_watcher(f);
    tr_addr d = spawn_watcher(f);

    /* Unlinked by the side that linked. */
    link_to(f, a, b);
    assert_int_equal(cmd(f, a, CMD_UNLINK, &b, sizeof(b)).rc, TR_OK);
    fail_with(f, b, 4242);
    assert_int_equal(take(EV_STOP, b).kind, TR_EXIT_FAILED);
    /* Unlinked by the other side: the link goes both ways. */
    link_to(f, c, d);
    assert_int_equal(cmd(f, d, CMD_UNLINK, &c, sizeof(c)).rc, TR_OK);
    fail_with(f, c, 4242);
    assert_int_equal(take(EV_STOP, c).kind, TR_EXIT_FAILED);

    wait_live(f, 2);
    ping(f, a);
    ping(f, d);
    assert_int_equal(count_pending(EV_STOP, a), 0);
    assert_int_equal(count_pending(EV_STOP, d), 0);
    /* Unlinking what is not linked is fine. */
    assert_int_equal(cmd(f, a, CMD_UNLINK, &d, sizeof(d)).rc, TR_OK);
}

static void
test_link_to_self_is_invalid(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);

    assert_int_equal(cmd(f, a, CMD_LINK_SELF, NULL, 0).rc, TR_EINVAL);
    ping(f, a);
}

static void
test_link_twice_is_one_link(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);

    trap(f, a);
    link_to(f, a, b);
    link_to(f, a, b);
    link_to(f, b, a);
    send_cmd(f, b, CMD_STOP, NULL, 0);
    assert_true(tr_addr_eq(take(EV_EXIT, a).sig.who, b));
    wait_live(f, 1);
    ping(f, a);
    assert_int_equal(count_pending(EV_EXIT, a), 0);
}

static void
test_link_chain_failure_ends_all(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr c = spawn_watcher(f);

    link_to(f, a, b);
    link_to(f, b, c);
    fail_with(f, c, 4242);
    event sc = take(EV_STOP, c);
    event sb = take(EV_STOP, b);
    event sa = take(EV_STOP, a);
    assert_int_equal(sc.kind, TR_EXIT_FAILED);
    assert_int_equal(sb.kind, TR_EXIT_FAILED);
    assert_int_equal(sa.kind, TR_EXIT_FAILED);
    assert_contains(sb.text, "linked actor");
    assert_contains(sa.text, "linked actor");
    wait_live(f, 0);
}

static void
test_trapping_actor_hears_stop_request_as_exit(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);

    trap(f, a);
    send_cmd(f, a, CMD_KEEP, NULL, 0);
    (void)take(EV_RC, a);
    assert_int_equal(tr_actor_stop(f->ctx, a), TR_OK);
    event e = take(EV_EXIT, a);
    assert_int_equal(e.sig.kind, TR_EXIT_SHUTDOWN);
    assert_int_equal(e.sig.code, TR_ESHUTDOWN);
    assert_true(tr_addr_is_none(e.sig.who)); /* asked by a plain thread */
    /* Still running: it answers, and ends only when it says so. */
    ping(f, a);
    assert_int_equal(count_pending(EV_STOP, a), 0);
    tr_actor_stats st;
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_OK);
    send_cmd(f, a, CMD_STOP, NULL, 0);
    assert_int_equal(take(EV_STOP, a).kind, TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(f->sys, a, WAIT_MS));
}

/* ---- signals when memory runs out ---- */

static bool
quiet_is_done(void *p)
{
    (void)p;
    return tr_load_acq(&quiet_done);
}

/* `t` ends with every allocation failing: its DOWN and its link's EXIT
 * were set aside when the monitor and the link were made. */
static void
test_monitor_and_link_signals_survive_out_of_memory(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr peer = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    uint64_t ref = monitor(f, w, t);

    trap(f, peer);
    link_to(f, peer, t);
    tr_store_rel(&hold_release, false);
    tr_store_rel(&signal_gate, false);
    send_cmd(f, t, CMD_HOLD, NULL, 0);
    (void)take(EV_RC, t);
    send_cmd(f, t, CMD_STOP, NULL, 0); /* queued behind the hold */
    tr__alloc_fail_after(0);
    tr_store_rel(&hold_release, true);
    bool stopped = tr_test_wait_stopped(f->sys, t, WAIT_MS);
    tr__alloc_fail_after(-1);
    tr_store_rel(&signal_gate, true);
    assert_true(stopped);
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_int_equal(d.sig.kind, TR_EXIT_NORMAL);
    event e = take(EV_EXIT, peer);
    assert_true(tr_addr_eq(e.sig.who, t));
    assert_int_equal(e.sig.kind, TR_EXIT_NORMAL);
}

/* A monitor or link of a dead address with no memory for its signal is
 * refused, not made with the signal lost. */
static void
test_monitor_and_link_of_dead_address_out_of_memory(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    const uint32_t cmds[] = {CMD_QUIET_MONITOR, CMD_QUIET_LINK};

    /* Records and lists with room already, so that the only allocation
     * left is the signal's. */
    tr_addr w2 = spawn_watcher(f);
    trap(f, w);
    (void)monitor(f, w2, t);
    (void)monitor(f, w, t);
    link_to(f, w, w2);
    assert_int_equal(cmd(f, w, CMD_UNLINK, &w2, sizeof(w2)).rc, TR_OK);
    stop_and_wait(f, t);
    (void)take(EV_DOWN, w2);
    (void)take(EV_DOWN, w);
    tr_store_rel(&signal_gate, false);
    for (size_t i = 0; i < 2; i++) {
        tr_store_rel(&quiet_done, false);
        send_cmd(f, w, cmds[i], &t, sizeof(t));
        tr__alloc_fail_after(0);
        tr_store_rel(&hold_release, true);
        bool done = tr_test_wait_until(quiet_is_done, NULL, WAIT_MS);
        tr__alloc_fail_after(-1);
        assert_true(done);
        int rc = tr_load_relaxed(&quiet_rc);
        if (rc != TR_ENOMEM) {
            assert_int_equal(rc, TR_OK);
            tr_store_rel(&signal_gate, true);
            event s = take(cmds[i] == CMD_QUIET_LINK ? EV_EXIT : EV_DOWN, w);
            assert_int_equal(s.sig.kind, TR_EXIT_NOACTOR);
            tr_store_rel(&signal_gate, false);
        }
    }
    tr_store_rel(&signal_gate, true);
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
    assert_int_equal(count_pending(EV_EXIT, w), 0);
}

/* A trapping actor asked to stop while memory runs out still hears the
 * request as an EXIT, and lives on. */
static void
test_trapping_actor_hears_stop_request_out_of_memory(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);

    trap(f, a);
    send_cmd(f, a, CMD_KEEP, NULL, 0);
    (void)take(EV_RC, a);
    tr_store_rel(&hold_release, false);
    tr_store_rel(&signal_gate, false);
    send_cmd(f, a, CMD_HOLD, NULL, 0);
    (void)take(EV_RC, a);
    assert_int_equal(tr_actor_stop(f->ctx, a), TR_OK);
    tr__alloc_fail_after(0);
    tr_store_rel(&hold_release, true);
    /* Nothing to wait on without allocating: give the stop request time
     * to be run (the gate holds the EXIT's handler), then let go. */
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    tr__alloc_fail_after(-1);
    tr_store_rel(&signal_gate, true);
    event e = take(EV_EXIT, a);
    assert_int_equal(e.sig.kind, TR_EXIT_SHUTDOWN);
    ping(f, a);
    assert_int_equal(count_pending(EV_STOP, a), 0);
    stop_and_wait(f, a);
}

/* ---- monitors and links made by `stop` in shutdown's last pass ---- */

/* Traps exits and keeps running when asked to stop, so its `stop` runs in
 * shutdown's last pass; there it monitors and links `peer` (still live)
 * and `gone` (ended), and reports each result. */
typedef struct last_pass {
    tr_addr peer;
    tr_addr gone;
} last_pass;

static int
last_pass_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    return tr_trap_exits(ctx, true);
}

static int
last_pass_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    if (msg->type == CMD_GO) {
        memcpy(state, msg->data, sizeof(last_pass));
        event ev = {.tag = EV_RC, .self = tr_self(ctx)};
        post(&ev);
    }
    return TR_OK;
}

static void
last_pass_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    last_pass *l = state;
    event ev = {.tag = EV_RC, .self = tr_self(ctx)};
    uint64_t ref;
    (void)exit;
    if (tr_addr_is_none(l->peer)) {
        return;
    }
    const tr_addr to[4] = {l->peer, l->peer, l->gone, l->gone};
    for (int i = 0; i < 4; i++) {
        ev.rc = i % 2 == 0 ? tr_monitor(ctx, to[i], &ref) : tr_link(ctx, to[i]);
        post(&ev);
    }
}

static const tr_behaviour last_pass_behaviour = {
    .name = "last_pass",
    .state_size = sizeof(last_pass),
    .init = last_pass_init,
    .handle = last_pass_handle,
    .stop = last_pass_stop,
};

static void
test_monitor_and_link_from_stop_in_the_last_pass(void **state)
{
    fixture *f = *state;
    tr_addr first;
    tr_addr peer;
    tr_addr gone = spawn_watcher(f);

    stop_and_wait(f, gone);
    /* A fresh system hands slots out in order: `first` ends in the last
     * pass while `peer` is still live. */
    assert_int_equal(tr_spawn(f->ctx, &last_pass_behaviour, NULL, NULL, &first),
                     TR_OK);
    assert_int_equal(tr_spawn(f->ctx, &last_pass_behaviour, NULL, NULL, &peer),
                     TR_OK);
    last_pass l = {peer, gone};
    send_cmd(f, first, CMD_GO, &l, sizeof(l));
    (void)take(EV_RC, first);
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(50)), TR_ETIMEDOUT);
    f->sys = NULL;
    /* Each call worked (their signals are dropped with the actors: no
     * leak, no freed memory touched). */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(take(EV_RC, first).rc, TR_OK);
    }
}

/* ---- names ---- */

static void
test_register_and_whereis(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr out = TR_ADDR_NONE;

    assert_int_equal(tr_whereis(f->sys, "alpha", &out), TR_ENOTFOUND);
    assert_int_equal(tr_register(f->ctx, "alpha", a), TR_OK);
    assert_int_equal(tr_whereis(f->sys, "alpha", &out), TR_OK);
    assert_true(tr_addr_eq(out, a));
    /* The address found is usable. */
    ping(f, out);
}

static void
test_register_refusals(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr d = spawn_watcher(f);
    tr_addr out = TR_ADDR_NONE;
    char longest[64];
    char too_long[65];

    memset(longest, 'n', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(too_long, 'n', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    stop_and_wait(f, d);

    assert_int_equal(tr_register(f->ctx, "alpha", a), TR_OK);
    assert_int_equal(tr_register(f->ctx, "alpha", b), TR_EEXIST);
    assert_int_equal(tr_register(f->ctx, "alpha", a), TR_OK); /* its own */
    assert_int_equal(tr_register(f->ctx, "beta", a), TR_EALREADY);
    assert_int_equal(tr_register(f->ctx, "beta", d), TR_ENOACTOR);
    assert_int_equal(tr_register(f->ctx, "beta", TR_ADDR_NONE), TR_ENOACTOR);
    assert_int_equal(tr_register(f->ctx, NULL, b), TR_EINVAL);
    assert_int_equal(tr_register(f->ctx, "", b), TR_EINVAL);
    assert_int_equal(tr_register(f->ctx, too_long, b), TR_EINVAL);
    assert_int_equal(tr_register(NULL, "beta", b), TR_EINVAL);
    assert_int_equal(tr_whereis(f->sys, "beta", &out), TR_ENOTFOUND);
    assert_int_equal(tr_whereis(f->sys, NULL, &out), TR_EINVAL);
    assert_int_equal(tr_whereis(f->sys, "", &out), TR_EINVAL);
    assert_int_equal(tr_whereis(f->sys, too_long, &out), TR_EINVAL);
    assert_int_equal(tr_whereis(f->sys, "alpha", NULL), TR_EINVAL);
    assert_int_equal(tr_whereis(NULL, "alpha", &out), TR_EINVAL);
    assert_int_equal(tr_unregister(f->ctx, ""), TR_EINVAL);
    /* 63 bytes is allowed; the refused calls changed nothing. */
    assert_int_equal(tr_register(f->ctx, longest, b), TR_OK);
    assert_int_equal(tr_whereis(f->sys, longest, &out), TR_OK);
    assert_true(tr_addr_eq(out, b));
    assert_int_equal(tr_whereis(f->sys, "alpha", &out), TR_OK);
    assert_true(tr_addr_eq(out, a));
}

static void
test_unregister_releases_the_name(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_watcher(f);
    tr_addr b = spawn_watcher(f);
    tr_addr out = TR_ADDR_NONE;

    assert_int_equal(tr_register(f->ctx, "alpha", a), TR_OK);
    assert_int_equal(tr_unregister(f->ctx, "alpha"), TR_OK);
    assert_int_equal(tr_whereis(f->sys, "alpha", &out), TR_ENOTFOUND);
    assert_int_equal(tr_unregister(f->ctx, "alpha"), TR_ENOTFOUND);
    /* The name is free for anyone, and a is free to take a name. */
    assert_int_equal(tr_register(f->ctx, "alpha", b), TR_OK);
    assert_int_equal(tr_register(f->ctx, "gamma", a), TR_OK);
    assert_int_equal(tr_whereis(f->sys, "alpha", &out), TR_OK);
    assert_true(tr_addr_eq(out, b));
    assert_int_equal(tr_whereis(f->sys, "gamma", &out), TR_OK);
    assert_true(tr_addr_eq(out, a));
    /* And back again. */
    assert_int_equal(tr_unregister(f->ctx, "gamma"), TR_OK);
    assert_int_equal(tr_register(f->ctx, "gamma", a), TR_OK);
}

static void
test_name_is_released_when_its_actor_stops(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    tr_addr t = spawn_watcher(f);
    tr_addr u = spawn_watcher(f);
    tr_addr out = TR_ADDR_NONE;

    assert_int_equal(tr_register(f->ctx, "target", t), TR_OK);
    (void)monitor(f, w, t);
    send_cmd(f, t, CMD_STOP, NULL, 0);
    (void)take(EV_DOWN, w);
    assert_int_equal(tr_whereis(f->sys, "target", &out), TR_ENOTFOUND);
    assert_int_equal(tr_unregister(f->ctx, "target"), TR_ENOTFOUND);
    assert_int_equal(tr_register(f->ctx, "target", u), TR_OK);
    assert_int_equal(tr_whereis(f->sys, "target", &out), TR_OK);
    assert_true(tr_addr_eq(out, u));
}

static const tr_child_spec kid_spec[] = {{
    .id = "kid",
    .behaviour = &kid_behaviour,
    .restart = TR_PERMANENT,
    .kind = TR_WORKER,
}};

static void
test_supervised_child_keeps_its_name_across_a_restart(void **state)
{
    fixture *f = *state;
    tr_sup_spec spec = {
        .name = "sup",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = 3,
        .period_ms = 5000,
        .children = kid_spec,
        .len = 1,
    };
    tr_addr sup = TR_ADDR_NONE;
    tr_addr out = TR_ADDR_NONE;

    assert_int_equal(tr_sup_start(f->ctx, &spec, NULL, &sup), TR_OK);
    tr_addr kid = take(EV_INIT, TR_ADDR_NONE).self;
    assert_false(tr_addr_is_none(kid));
    assert_int_equal(tr_register(f->ctx, "kid", kid), TR_OK);

    fail_with(f, kid, 4242);
    assert_int_equal(take(EV_STOP, kid).kind, TR_EXIT_FAILED);
    /* The restart runs init again, at the same address. */
    (void)take(EV_INIT, kid);
    assert_int_equal(tr_whereis(f->sys, "kid", &out), TR_OK);
    assert_true(tr_addr_eq(out, kid));
    assert_int_equal(tr_register(f->ctx, "kid2", kid), TR_EALREADY);
    ping(f, out);
    /* A restart in place is no end: a monitor made before it stays quiet,
     * and fires when the child ends for good, releasing the name. */
    tr_addr w = spawn_watcher(f);
    uint64_t ref = monitor(f, w, kid);
    fail_with(f, kid, 4242);
    (void)take(EV_INIT, kid);
    ping(f, kid);
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
    assert_int_equal(
        tr_sup_terminate_child_wait(f->ctx, sup, "kid", tr_ms(WAIT_MS)), TR_OK);
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_true(tr_addr_eq(d.sig.who, kid));
    assert_int_equal(d.sig.kind, TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_whereis(f->sys, "kid", &out), TR_ENOTFOUND);
    assert_int_equal(tr_load_relaxed(&f->failures), 0);
}

/* A supervised child that traps exits, ended by `spec`'s shutdown rule
 * after a terminate_child: the DOWN says it was killed, and its `stop`
 * never ran. */
static void
killed_child(fixture *f, int shutdown_ms)
{
    const tr_child_spec child = {
        .id = "kid",
        .behaviour = &kid_behaviour,
        .restart = TR_PERMANENT,
        .shutdown_ms = shutdown_ms,
        .kind = TR_WORKER,
    };
    tr_sup_spec spec = {
        .name = "sup",
        .strategy = TR_ONE_FOR_ONE,
        .children = &child,
        .len = 1,
    };
    tr_addr sup = TR_ADDR_NONE;
    tr_addr w = spawn_watcher(f);

    assert_int_equal(tr_sup_start(f->ctx, &spec, NULL, &sup), TR_OK);
    tr_addr kid = take(EV_INIT, TR_ADDR_NONE).self;
    uint64_t ref = monitor(f, w, kid);
    trap(f, kid);
    assert_int_equal(
        tr_sup_terminate_child_wait(f->ctx, sup, "kid", tr_ms(WAIT_MS)), TR_OK);
    event d = take(EV_DOWN, w);
    assert_int_equal(d.sig.ref, ref);
    assert_true(tr_addr_eq(d.sig.who, kid));
    assert_int_equal(d.sig.kind, TR_EXIT_KILLED);
    assert_int_equal(count_pending(EV_STOP, kid), 0);
    assert_true(tr_test_wait_stopped(f->sys, kid, WAIT_MS));
    ping(f, w);
    assert_int_equal(count_pending(EV_STOP, kid), 0);
}

static void
test_monitor_down_after_brutal_kill_of_trapping_child(void **state)
{
    killed_child(*state, TR_SHUTDOWN_BRUTAL);
}

static void
test_monitor_down_after_trapping_child_misses_its_deadline(void **state)
{
    fixture *f = *state;

    killed_child(f, 50);
    /* It heard the request as an EXIT from its supervisor first. */
    event e = take(EV_EXIT, TR_ADDR_NONE);
    assert_int_equal(e.sig.kind, TR_EXIT_SHUTDOWN);
    assert_int_equal(e.sig.code, TR_ESHUTDOWN);
    assert_false(tr_addr_is_none(e.sig.who));
}

/* The name actor `i` has after round `r` of test_registry_churn (round -1:
 * before the first): each round moves half the actors to a new name. */
static void
churn_name(char *buf, size_t cap, int r, int i)
{
    while (r >= 0 && r % 2 != i % 2) {
        r--;
    }
    if (r < 0) {
        snprintf(buf, cap, "n%d", i);
    } else {
        snprintf(buf, cap, "r%d-%d", r, i);
    }
}

/* Many names registered and released over and over (the table grows and
 * fills with deleted entries): every lookup finds exactly what is
 * registered now. */
static void
test_registry_churn(void **state)
{
    enum { N = 100, CHURN_ROUNDS = 20 };
    fixture *f = *state;
    static tr_addr who[N];
    char name[32];
    tr_addr out;

    for (int i = 0; i < N; i++) {
        who[i] = spawn_watcher(f);
        churn_name(name, sizeof(name), -1, i);
        assert_int_equal(tr_register(f->ctx, name, who[i]), TR_OK);
    }
    for (int r = 0; r < CHURN_ROUNDS; r++) {
        for (int i = r % 2; i < N; i += 2) {
            churn_name(name, sizeof(name), r - 1, i);
            assert_int_equal(tr_unregister(f->ctx, name), TR_OK);
            churn_name(name, sizeof(name), r, i);
            assert_int_equal(tr_register(f->ctx, name, who[i]), TR_OK);
        }
        for (int i = 0; i < N; i++) {
            churn_name(name, sizeof(name), r, i);
            if (tr_whereis(f->sys, name, &out) != TR_OK ||
                !tr_addr_eq(out, who[i])) {
                fail_msg("round %d: %s does not name actor %d", r, name, i);
            }
            if (r % 2 == i % 2) { /* moved this round: the old name is free */
                churn_name(name, sizeof(name), r - 1, i);
                assert_int_equal(tr_whereis(f->sys, name, &out), TR_ENOTFOUND);
            }
        }
    }
}

/* A few names live at a time, MANY taken and given back over a run (by
 * tr_unregister and by their actors' ends): the table stays the size of
 * what is registered, not of all that ever was. */
static void
test_registry_churn_keeps_the_table_small(void **state)
{
    enum { LIVE = 4, ENDS = 1000 };
    fixture *f = *state;
    tr_addr who[LIVE];
    char name[32];
    tr_addr out;

    for (int i = 0; i < LIVE; i++) {
        who[i] = spawn_watcher(f);
    }
    for (int i = 0; i < MANY; i++) {
        if (i >= LIVE) { /* an actor has one name at most */
            snprintf(name, sizeof(name), "churn%d", i - LIVE);
            assert_int_equal(tr_unregister(f->ctx, name), TR_OK);
            assert_int_equal(tr_whereis(f->sys, name, &out), TR_ENOTFOUND);
        }
        snprintf(name, sizeof(name), "churn%d", i);
        assert_int_equal(tr_register(f->ctx, name, who[i % LIVE]), TR_OK);
    }
    for (int i = 0; i < ENDS; i++) {
        tr_addr a = spawn_watcher(f);
        snprintf(name, sizeof(name), "ends%d", i);
        assert_int_equal(tr_register(f->ctx, name, a), TR_OK);
        stop_and_wait(f, a);
        assert_int_equal(tr_whereis(f->sys, name, &out), TR_ENOTFOUND);
    }
    for (int i = MANY - LIVE; i < MANY; i++) {
        snprintf(name, sizeof(name), "churn%d", i);
        assert_int_equal(tr_whereis(f->sys, name, &out), TR_OK);
        assert_true(tr_addr_eq(out, who[i % LIVE]));
    }
    print_message("name table: %zu slots for %d names\n",
                  tr__names_cap(f->sys->names), LIVE);
    assert_true(tr__names_cap(f->sys->names) <= 64);
}

/* ---- reserved types ---- */

static void
test_reserved_types_are_refused(void **state)
{
    fixture *f = *state;
    tr_addr w = spawn_watcher(f);
    const uint32_t types[] = {TR_MSG_RESERVED, TR_MSG_DOWN, TR_MSG_EXIT,
                              UINT32_MAX};
    tr_signal sig = {.who = w, .kind = TR_EXIT_NORMAL};
    char buf[8];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        uint32_t type = types[i];
        assert_int_equal(tr_send(f->ctx, w, type, &sig, sizeof(sig)),
                         TR_EINVAL);
        assert_int_equal(tr_send(f->ctx, w, type, &sig, sizeof(sig)),
                         TR_EINVAL);
        assert_int_equal(tr_test_ask(f->ctx, w, type, &sig, sizeof(sig), buf,
                                     sizeof(buf), &len, 1000),
                         TR_EINVAL);
        void *b = tr_buf_alloc(sizeof(sig));
        assert_non_null(b);
        memcpy(b, &sig, sizeof(sig));
        assert_int_equal(tr_send_buf(f->ctx, w, type, b), TR_EINVAL);
        tr_buf_free(b); /* still ours after the refusal */
    }
    /* None of them reached the watcher. */
    ping(f, w);
    assert_int_equal(count_pending(EV_DOWN, w), 0);
    assert_int_equal(count_pending(EV_EXIT, w), 0);
    assert_int_equal(count_pending(EV_BAD, w), 0);
}

/* ---- many monitors and links racing the ends of their targets ---- */

enum { CROWD = 200, TARGETS = 8, STOPPERS = 4, ROUNDS = 5 };

typedef struct crowd_arg {
    uint32_t index;
    tr_addr targets[TARGETS];
} crowd_arg;

typedef struct crowd_state {
    uint32_t index;
    tr_addr targets[TARGETS];
    uint64_t refs[TARGETS];
} crowd_state;

/* Written by the crowd's handlers, read by the test thread after a wait. */
static tr_atomic(uint32_t) downs[CROWD][TARGETS];
static tr_atomic(uint32_t) exits[CROWD][TARGETS];
static tr_atomic(uint32_t) total_downs;
static tr_atomic(uint32_t) total_exits;
static tr_atomic(uint32_t) noactor_downs;
static tr_atomic(uint32_t) bad;

static int
crowd_init(tr_ctx *ctx, void *state, const void *arg)
{
    crowd_state *s = state;
    const crowd_arg *a = arg;

    s->index = a->index;
    memcpy(s->targets, a->targets, sizeof(s->targets));
    return tr_trap_exits(ctx, true);
}

static int
target_of(const crowd_state *s, tr_addr who)
{
    for (int j = 0; j < TARGETS; j++) {
        if (tr_addr_eq(s->targets[j], who)) {
            return j;
        }
    }
    return -1;
}

static int
crowd_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    crowd_state *s = state;
    tr_signal sig;
    int j;

    if (msg->type == CMD_GO) {
        for (int k = 0; k < TARGETS; k++) {
            if (tr_monitor(ctx, s->targets[k], &s->refs[k]) != TR_OK ||
                tr_link(ctx, s->targets[k]) != TR_OK) {
                tr_faa_relaxed(&bad, 1);
            }
        }
        return TR_OK;
    }
    if ((msg->type != TR_MSG_DOWN && msg->type != TR_MSG_EXIT) ||
        msg->size != sizeof(sig)) {
        tr_faa_relaxed(&bad, 1);
        return TR_OK;
    }
    memcpy(&sig, msg->data, sizeof(sig));
    if (msg->type == TR_MSG_EXIT && tr_addr_is_none(sig.who)) {
        return tr_stop(ctx); /* the end of the round */
    }
    j = target_of(s, sig.who);
    if (j < 0 ||
        (sig.kind != TR_EXIT_SHUTDOWN && sig.kind != TR_EXIT_NOACTOR)) {
        tr_faa_relaxed(&bad, 1);
        return TR_OK;
    }
    if (msg->type == TR_MSG_DOWN) {
        if (sig.ref != s->refs[j]) {
            tr_faa_relaxed(&bad, 1);
            return TR_OK;
        }
        if (sig.kind == TR_EXIT_NOACTOR) {
            tr_faa_relaxed(&noactor_downs, 1);
        }
        tr_faa_relaxed(&downs[s->index][j], 1);
        /* Release: the counts above are read after the total. */
        tr_faa_acqrel(&total_downs, 1);
    } else {
        tr_faa_relaxed(&exits[s->index][j], 1);
        tr_faa_acqrel(&total_exits, 1);
    }
    return TR_OK;
}

static const tr_behaviour crowd_behaviour = {
    .name = "crowd",
    .state_size = sizeof(crowd_state),
    .init = crowd_init,
    .handle = crowd_handle,
};

static int
quiet_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static const tr_behaviour quiet_behaviour = {.name = "quiet",
                                             .handle = quiet_handle};

typedef struct stopper {
    pthread_t thread;
    fixture *f;
    pthread_barrier_t *go;
    unsigned id;
    const tr_addr *crowd;
    const tr_addr *targets;
    int errors;
} stopper;

/* Each stopper starts its share of the crowd monitoring and linking, and
 * stops its share of the targets in the middle of it. */
static void *
stopper_main(void *p)
{
    stopper *s = p;
    tr_ctx *ctx = s->f->ctx;
    unsigned per = CROWD / STOPPERS;
    unsigned first = s->id * per;

    pthread_barrier_wait(s->go);
    for (unsigned i = 0; i < per; i++) {
        if (tr_send(ctx, s->crowd[first + i], CMD_GO, NULL, 0) != TR_OK) {
            s->errors++;
        }
        if (i == per / 4) {
            for (unsigned j = s->id; j < TARGETS; j += STOPPERS) {
                if (tr_actor_stop(ctx, s->targets[j]) != TR_OK) {
                    s->errors++;
                }
            }
        }
    }
    return NULL;
}

static bool
all_signalled(void *p)
{
    (void)p;
    return tr_load_acq(&total_downs) == CROWD * TARGETS &&
           tr_load_acq(&total_exits) == CROWD * TARGETS;
}

static void
crowd_round(fixture *f, unsigned round)
{
    static tr_addr crowd[CROWD];
    tr_addr targets[TARGETS];
    stopper st[STOPPERS];
    pthread_barrier_t go;

    for (unsigned i = 0; i < CROWD; i++) {
        for (unsigned j = 0; j < TARGETS; j++) {
            tr_store_relaxed(&downs[i][j], 0);
            tr_store_relaxed(&exits[i][j], 0);
        }
    }
    tr_store_relaxed(&total_downs, 0);
    tr_store_relaxed(&total_exits, 0);
    tr_store_relaxed(&noactor_downs, 0);
    tr_store_relaxed(&bad, 0);

    for (unsigned j = 0; j < TARGETS; j++) {
        assert_int_equal(
            tr_spawn(f->ctx, &quiet_behaviour, NULL, NULL, &targets[j]), TR_OK);
    }
    for (unsigned i = 0; i < CROWD; i++) {
        crowd_arg a = {.index = i};
        memcpy(a.targets, targets, sizeof(targets));
        assert_int_equal(
            tr_spawn(f->ctx, &crowd_behaviour, &a, NULL, &crowd[i]), TR_OK);
    }
    assert_int_equal(pthread_barrier_init(&go, NULL, STOPPERS), 0);
    for (unsigned k = 0; k < STOPPERS; k++) {
        st[k] = (stopper){
            .f = f, .go = &go, .id = k, .crowd = crowd, .targets = targets};
        assert_int_equal(
            pthread_create(&st[k].thread, NULL, stopper_main, &st[k]), 0);
    }
    for (unsigned k = 0; k < STOPPERS; k++) {
        assert_int_equal(pthread_join(st[k].thread, NULL), 0);
        assert_int_equal(st[k].errors, 0);
    }
    pthread_barrier_destroy(&go);

    if (!tr_test_wait_until(all_signalled, NULL, 30000)) {
        fail_msg("round %u: %u DOWNs and %u EXITs of %u each, %u bad", round,
                 tr_load_acq(&total_downs), tr_load_acq(&total_exits),
                 CROWD * TARGETS, tr_load_relaxed(&bad));
    }
    /* Every target has sent all it will send; then end the crowd, whose
     * stop requests queue behind any extra signal. */
    wait_live(f, CROWD);
    for (unsigned i = 0; i < CROWD; i++) {
        assert_int_equal(tr_actor_stop(f->ctx, crowd[i]), TR_OK);
    }
    wait_live(f, 0);

    assert_int_equal(tr_load_relaxed(&bad), 0);
    for (unsigned i = 0; i < CROWD; i++) {
        for (unsigned j = 0; j < TARGETS; j++) {
            uint32_t d = tr_load_relaxed(&downs[i][j]);
            uint32_t e = tr_load_relaxed(&exits[i][j]);
            if (d != 1 || e != 1) {
                fail_msg("round %u: watcher %u target %u: %u DOWNs, %u "
                         "EXITs",
                         round, i, j, d, e);
            }
        }
    }
    assert_int_equal(tr_load_acq(&total_downs), CROWD * TARGETS);
    assert_int_equal(tr_load_acq(&total_exits), CROWD * TARGETS);
    /* Which side of the race the monitors fell on, for the log. */
    print_message("round %u: %u of %u monitors found the target gone\n", round,
                  tr_load_relaxed(&noactor_downs), CROWD * TARGETS);
}

static void
test_many_monitors_and_links_race_their_targets_ends(void **state)
{
    fixture *f = *state;

    for (unsigned r = 0; r < ROUNDS; r++) {
        crowd_round(f, r);
    }
    /* Nothing in this test fails: no link turned into a failure. */
    assert_int_equal(tr_load_relaxed(&f->failures), 0);
}

/* ---- one actor with 100,000 monitors or links ---- */

/*
 * The hub watches MANY others (or one other MANY times): the work of each
 * monitor, demonitor, link, unlink and end must not grow with the number
 * the hub holds, or these take minutes instead of a second.
 */

enum {
    HUB_MONITOR = 1,  /* payload hub_job: monitor addrs[0] `n` times */
    HUB_DEMONITOR,    /* demonitor every other ref, oldest first */
    HUB_LINK,         /* payload hub_job: link to each of addrs[0..n) */
    HUB_UNLINK,       /* payload hub_job: unlink every other one */
    HUB_MONITOR_EACH, /* payload hub_job: monitor each of addrs[0..n) */
};

typedef struct hub_job {
    const tr_addr *addrs;
    uint32_t n;
} hub_job;

/* Written by the hub (one actor: one thread at a time), read by the test
 * thread once `hub_jobs` or `hub_signals` says they are there. */
static uint64_t hub_refs[MANY];
static uint64_t hub_heard[MANY]; /* the DOWNs' refs, the EXITs' senders */
static tr_atomic(uint32_t) hub_jobs;
static tr_atomic(uint32_t) hub_signals;
static tr_atomic(uint32_t) hub_errors;

static int
hub_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    return tr_trap_exits(ctx, true);
}

static void
hub_record(const tr_msg *msg)
{
    tr_signal sig;
    uint32_t n = tr_load_relaxed(&hub_signals);

    if (msg->size != sizeof(sig) || n == MANY) {
        tr_faa_relaxed(&hub_errors, 1);
        return;
    }
    memcpy(&sig, msg->data, sizeof(sig));
    hub_heard[n] = msg->type == TR_MSG_DOWN ? sig.ref : sig.who.id;
    /* Release: the entry above is read after the count. */
    tr_store_rel(&hub_signals, n + 1);
}

static int
hub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    hub_job job = {0};
    int rc = TR_OK;

    (void)state;
    if (msg->type == TR_MSG_EXIT && msg->size == sizeof(tr_signal) &&
        tr_addr_is_none(((const tr_signal *)msg->data)->who)) {
        return tr_stop(ctx); /* a stop request (it traps exits) */
    }
    if (msg->type == TR_MSG_DOWN || msg->type == TR_MSG_EXIT) {
        hub_record(msg);
        return TR_OK;
    }
    if (msg->size == sizeof(job)) {
        memcpy(&job, msg->data, sizeof(job));
    }
    for (uint32_t i = 0; i < job.n && rc == TR_OK; i++) {
        switch (msg->type) {
        case HUB_MONITOR:
            rc = tr_monitor(ctx, job.addrs[0], &hub_refs[i]);
            break;
        case HUB_DEMONITOR:
            rc = i % 2 == 0 ? tr_demonitor(ctx, hub_refs[i]) : TR_OK;
            break;
        case HUB_LINK:
            rc = tr_link(ctx, job.addrs[i]);
            break;
        case HUB_UNLINK:
            rc = i % 2 == 0 ? tr_unlink(ctx, job.addrs[i]) : TR_OK;
            break;
        case HUB_MONITOR_EACH:
            rc = tr_monitor(ctx, job.addrs[i], &hub_refs[i]);
            break;
        default:
            rc = TR_EINVAL;
        }
    }
    if (rc != TR_OK) {
        tr_faa_relaxed(&hub_errors, 1);
    }
    /* Release: hub_refs is read after the count. */
    tr_faa_acqrel(&hub_jobs, 1);
    return TR_OK;
}

static const tr_behaviour hub_behaviour = {
    .name = "hub",
    .init = hub_init,
    .handle = hub_handle,
};

static bool
hub_jobs_are(void *arg)
{
    return tr_load_acq(&hub_jobs) == *(uint32_t *)arg;
}

static bool
hub_signals_are(void *arg)
{
    return tr_load_acq(&hub_signals) == *(uint32_t *)arg;
}

/* Run a job on the hub and wait for it. */
static void
hub_run(fixture *f, tr_addr hub, uint32_t type, const tr_addr *addrs,
        uint32_t n)
{
    hub_job job = {addrs, n};
    uint32_t want = tr_load_acq(&hub_jobs) + 1;

    send_cmd(f, hub, type, &job, sizeof(job));
    assert_true(tr_test_wait_until(hub_jobs_are, &want, 30000));
    assert_int_equal(tr_load_relaxed(&hub_errors), 0);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The hub hears `n` signals, and they are `want` (sorted here), each
 * once. */
static void
hub_heard_exactly(uint64_t *want, uint32_t n)
{
    if (!tr_test_wait_until(hub_signals_are, &n, 30000)) {
        fail_msg("the hub heard %u signals, want %u", tr_load_acq(&hub_signals),
                 n);
    }
    qsort(want, n, sizeof(*want), cmp_u64);
    qsort(hub_heard, n, sizeof(*hub_heard), cmp_u64);
    for (uint32_t i = 0; i < n; i++) {
        if (hub_heard[i] != want[i]) {
            fail_msg("signal %u of %u: %#llx, want %#llx", i, n,
                     (unsigned long long)hub_heard[i],
                     (unsigned long long)want[i]);
        }
    }
    assert_int_equal(tr_load_relaxed(&hub_errors), 0);
}

static tr_addr
spawn_hub(fixture *f)
{
    tr_addr hub = TR_ADDR_NONE;

    tr_store_relaxed(&hub_jobs, 0);
    tr_store_relaxed(&hub_signals, 0);
    tr_store_relaxed(&hub_errors, 0);
    assert_int_equal(tr_spawn(f->ctx, &hub_behaviour, NULL, NULL, &hub), TR_OK);
    return hub;
}

/* One actor monitors one target MANY times and takes back every other
 * monitor, oldest first; the target's end sends the rest, once each. */
static void
test_demonitor_among_many_monitors_of_one_target(void **state)
{
    fixture *f = *state;
    static uint64_t kept[MANY / 2];
    tr_addr hub = spawn_hub(f);
    tr_addr t = spawn_watcher(f);

    hub_run(f, hub, HUB_MONITOR, &t, MANY);
    hub_run(f, hub, HUB_DEMONITOR, NULL, MANY);
    for (uint32_t i = 0; i < MANY / 2; i++) {
        kept[i] = hub_refs[2 * i + 1];
    }
    stop_and_wait(f, t);
    hub_heard_exactly(kept, MANY / 2);
    /* Nothing more comes: a job queued after every end finds no signal
     * ahead of it. */
    wait_live(f, 1);
    hub_run(f, hub, HUB_LINK, NULL, 0);
    assert_int_equal(tr_load_acq(&hub_signals), MANY / 2);
}

/* One trapping actor links to MANY, unlinks every other one, and they
 * all end: it hears the exit of each one still linked, once. */
static void
test_unlink_among_many_links_and_their_ends(void **state)
{
    fixture *f = *state;
    static tr_addr peers[MANY];
    static uint64_t kept[MANY / 2];
    tr_addr hub = spawn_hub(f);

    for (uint32_t i = 0; i < MANY; i++) {
        assert_int_equal(
            tr_spawn(f->ctx, &quiet_behaviour, NULL, NULL, &peers[i]), TR_OK);
    }
    hub_run(f, hub, HUB_LINK, peers, MANY);
    hub_run(f, hub, HUB_UNLINK, peers, MANY);
    for (uint32_t i = 0; i < MANY; i++) {
        if (i % 2 == 1) {
            kept[i / 2] = peers[i].id;
        }
        assert_int_equal(tr_actor_stop(f->ctx, peers[i]), TR_OK);
    }
    hub_heard_exactly(kept, MANY / 2);
    /* Nothing more comes: a job queued after every end finds no signal
     * ahead of it. */
    wait_live(f, 1);
    hub_run(f, hub, HUB_LINK, NULL, 0);
    assert_int_equal(tr_load_acq(&hub_signals), MANY / 2);
    assert_int_equal(tr_load_relaxed(&f->failures), 0);
}

/* ---- the monitors a watcher holds end with it ---- */

/* The monitors made on `who`, and those it holds, come to these. A wait:
 * an actor is counted out (wait_live) before its end takes its monitors
 * from their targets. */
static void
monitor_counts(fixture *f, tr_addr who, uint32_t on, uint32_t held)
{
    uint32_t n_on;
    uint32_t n_held;

    if (!tr_test_wait_monitor_counts(f->sys, who, on, held, WAIT_MS, &n_on,
                                     &n_held)) {
        fail_msg("%#llx: %u monitors on it, %u held, want %u and %u",
                 (unsigned long long)who.id, n_on, n_held, on, held);
    }
}

/* A client monitors the address it is started with at its first message,
 * and ends. */
static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    uint64_t ref;

    (void)msg;
    if (tr_monitor(ctx, *(const tr_addr *)state, &ref) != TR_OK) {
        tr_faa_relaxed(&hub_errors, 1);
    }
    return tr_stop(ctx);
}

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(tr_addr));
    return TR_OK;
}

static const tr_behaviour client_behaviour = {
    .name = "client",
    .state_size = sizeof(tr_addr),
    .init = client_init,
    .handle = client_handle,
};

/* A long-lived server monitored by MANY short-lived clients that end
 * without taking their monitors back: their ends take them, so the server
 * holds none, and its own end has no DOWN to send. */
static void
test_monitors_end_with_their_watchers(void **state)
{
    enum { AT_ONCE = 1000 };
    fixture *f = *state;
    tr_addr server = spawn_watcher(f);
    tr_system_stats st;

    tr_store_relaxed(&hub_errors, 0);
    for (uint32_t i = 0; i < MANY; i += AT_ONCE) {
        for (uint32_t k = 0; k < AT_ONCE; k++) {
            tr_addr c = TR_ADDR_NONE;
            assert_int_equal(
                tr_spawn(f->ctx, &client_behaviour, &server, NULL, &c), TR_OK);
            send_cmd(f, c, CMD_PING, NULL, 0);
        }
        wait_live(f, 1);
    }
    assert_int_equal(tr_load_relaxed(&hub_errors), 0);
    monitor_counts(f, server, 0, 0);
    /* Its end sends nothing: no DOWN, and so no dead letter either. */
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    uint64_t dead = st.dead_letters;
    stop_and_wait(f, server);
    wait_live(f, 0);
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.dead_letters, dead);
}

/* One long-lived watcher monitors MANY short-lived targets, half of them
 * ended already (their DOWNs come at once): every DOWN comes once, and
 * each one delivered takes the watcher's record of its monitor. */
static void
test_delivered_downs_leave_the_watcher_nothing(void **state)
{
    fixture *f = *state;
    static tr_addr targets[MANY];
    tr_addr hub = spawn_hub(f);

    for (uint32_t i = 0; i < MANY; i++) {
        assert_int_equal(
            tr_spawn(f->ctx, &quiet_behaviour, NULL, NULL, &targets[i]), TR_OK);
    }
    for (uint32_t i = 0; i < MANY; i += 2) {
        assert_int_equal(tr_actor_stop(f->ctx, targets[i]), TR_OK);
    }
    wait_live(f, 1 + MANY / 2);
    hub_run(f, hub, HUB_MONITOR_EACH, targets, MANY);
    for (uint32_t i = 1; i < MANY; i += 2) {
        assert_int_equal(tr_actor_stop(f->ctx, targets[i]), TR_OK);
    }
    hub_heard_exactly(hub_refs, MANY);
    /* A job queued after every end finds no signal ahead of it. */
    wait_live(f, 1);
    hub_run(f, hub, HUB_LINK, NULL, 0);
    assert_int_equal(tr_load_acq(&hub_signals), MANY);
    monitor_counts(f, hub, 0, 0);
}

enum { RESTART_RACES = 50 };

/* A supervised watcher restarted in place is a new instance at the same
 * address: the monitors of the one before it are gone from their target,
 * whose end sends the new one nothing for them, even when the target ends
 * during the restart. */
static void
test_restart_in_place_ends_the_monitors_held(void **state)
{
    fixture *f = *state;
    const tr_child_spec child = {
        .id = "kid",
        .behaviour = &kid_behaviour,
        .restart = TR_PERMANENT,
        .kind = TR_WORKER,
    };
    tr_sup_spec spec = {
        .name = "sup",
        .strategy = TR_ONE_FOR_ONE,
        .max_restarts = 2 * RESTART_RACES,
        .period_ms = 60000,
        .children = &child,
        .len = 1,
    };
    tr_addr sup = TR_ADDR_NONE;

    assert_int_equal(tr_sup_start(f->ctx, &spec, NULL, &sup), TR_OK);
    tr_addr kid = take(EV_INIT, TR_ADDR_NONE).self;
    tr_addr t = spawn_watcher(f);
    (void)monitor(f, kid, t);
    (void)monitor(f, kid, t);
    (void)monitor(f, kid, kid);
    monitor_counts(f, t, 2, 0);
    fail_with(f, kid, 4242);
    (void)take(EV_STOP, kid);
    (void)take(EV_INIT, kid);
    monitor_counts(f, t, 0, 0);
    monitor_counts(f, kid, 0, 0);
    /* The new instance's own monitor fires; nothing of the old one's. */
    uint64_t ref = monitor(f, kid, t);
    stop_and_wait(f, t);
    assert_int_equal(take(EV_DOWN, kid).sig.ref, ref);
    ping(f, kid);
    assert_int_equal(count_pending(EV_DOWN, kid), 0);
    monitor_counts(f, kid, 0, 0);

    /* The target ends while the watcher restarts: a DOWN sent before the
     * restart took the monitor reaches the new instance, which drops it.
     * The failure is queued first, so the old instance never sees it. */
    for (int r = 0; r < RESTART_RACES; r++) {
        t = spawn_watcher(f);
        (void)monitor(f, kid, t);
        fail_with(f, kid, 4242);
        assert_int_equal(tr_actor_stop(f->ctx, t), TR_OK);
        (void)take(EV_STOP, kid);
        (void)take(EV_INIT, kid);
        assert_true(tr_test_wait_stopped(f->sys, t, WAIT_MS));
        (void)take(EV_STOP, t);
        wait_live(f, 2);
        ping(f, kid);
        if (count_pending(EV_DOWN, kid) != 0) {
            fail_msg("race %d: the restarted watcher heard an old DOWN", r);
        }
        monitor_counts(f, kid, 0, 0);
    }
    assert_int_equal(tr_load_relaxed(&f->failures), 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_monitor_down_after_normal_stop),
        T(test_monitor_down_after_shutdown_request),
        T(test_monitor_down_after_handler_error),
        T(test_monitor_down_after_tr_fail_carries_its_text),
        T(test_monitor_of_dead_address_is_down_at_once),
        T(test_monitor_twice_gives_two_downs),
        T(test_demonitor_removes_only_that_monitor),
        T(test_demonitor_unknown_ref_is_not_found),
        T(test_monitor_and_link_refused_on_thread_context),
        T(test_link_failure_ends_the_linked_actor),
        T(test_link_propagates_both_ways),
        T(test_link_normal_stop_does_not_end_the_peer),
        T(test_link_trapping_actor_gets_exit_and_lives),
        T(test_link_to_dead_address),
        T(test_unlink_stops_propagation),
        T(test_link_to_self_is_invalid),
        T(test_link_twice_is_one_link),
        T(test_link_chain_failure_ends_all),
        T(test_trapping_actor_hears_stop_request_as_exit),
        T(test_monitor_and_link_signals_survive_out_of_memory),
        T(test_monitor_and_link_of_dead_address_out_of_memory),
        T(test_trapping_actor_hears_stop_request_out_of_memory),
        T(test_monitor_and_link_from_stop_in_the_last_pass),
        T(test_register_and_whereis),
        T(test_register_refusals),
        T(test_unregister_releases_the_name),
        T(test_name_is_released_when_its_actor_stops),
        T(test_supervised_child_keeps_its_name_across_a_restart),
        T(test_monitor_down_after_brutal_kill_of_trapping_child),
        T(test_monitor_down_after_trapping_child_misses_its_deadline),
        T(test_registry_churn),
        T(test_registry_churn_keeps_the_table_small),
        T(test_reserved_types_are_refused),
        T(test_many_monitors_and_links_race_their_targets_ends),
        T(test_demonitor_among_many_monitors_of_one_target),
        T(test_unlink_among_many_links_and_their_ends),
        T(test_monitors_end_with_their_watchers),
        T(test_delivered_downs_leave_the_watcher_nothing),
        T(test_restart_in_place_ends_the_monitors_held),
    };
#undef T
    return cmocka_run_group_tests_name("monitor", tests, NULL, NULL);
}
