/*
 * Supervisors: start and stop order, each strategy with each restart type
 * and way of ending, intensity and its sliding window (on a manual clock),
 * escalation, start failure and ignore, shutdown deadlines and kills,
 * killing a supervisor with its subtree, reports left unread, dynamic
 * children and the run-time API's errors, a child's status, find_child
 * and get_childspec, backoff, the snapshot, why a start failed, unique
 * top-level names, significant children and auto_shutdown.
 *
 * Children journal what happens to them (init, stop with its reason, each
 * message) into one mailbox; tests read the journal in order with
 * deadlines. Orders the runtime promises (a supervisor's sequences) are
 * asserted exactly; events of independent actors are not.
 */
#include "support/tr_test.h"

#include "actors/actor.h"
#include "actors/ext.h"
#include "common/tr_alloc.h"
#include "supervisor/sup.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

enum { EV_INIT = 1, EV_STOP = 2, EV_MSG = 3, EV_DOWN = 4 };
enum { MSG_CRASH = 1, MSG_QUIT = 2, MSG_PING = 3, MSG_SLEEP = 4 };

typedef struct event {
    int what;
    char id[16];
    int kind; /* EV_STOP: the exit kind; EV_MSG: messages handled */
    uint64_t addr;
} event;

/* A child's start argument: its name and how its init behaves. */
typedef struct wcfg {
    const char *id;
    tr_atomic(int) init_rc; /* what init returns (TR_OK, TR_IGNORE...) */
    tr_atomic(int) stop_ms; /* how long its `stop` takes */
} wcfg;

typedef struct wstate {
    const wcfg *cfg;
    int handled;
} wstate;

static tr_mailbox *journal;

static void
note(int what, const char *id, int kind, uint64_t addr)
{
    event e = {.what = what, .kind = kind, .addr = addr};
    snprintf(e.id, sizeof(e.id), "%s", id);
    if (tr_mailbox_send(journal, &e, sizeof(e)) != TR_OK) {
        abort(); /* the journal is unbounded: this cannot happen */
    }
}

static int
w_init(tr_ctx *ctx, void *state, const void *arg)
{
    wstate *w = state;
    w->cfg = arg;
    int rc = tr_load_relaxed(&((wcfg *)arg)->init_rc);
    note(EV_INIT, w->cfg->id, rc, tr_self(ctx).id);
    return rc;
}

static void
sleep_ms(int ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000,
                                 .tv_nsec = (ms % 1000) * 1000000L},
              NULL);
}

static int
w_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    wstate *w = state;

    switch (msg->type) {
    case MSG_CRASH:
        return TR_EINVAL;
    case MSG_QUIT:
        return tr_stop(ctx);
    case MSG_SLEEP: {
        int ms;
        memcpy(&ms, msg->data, sizeof(ms));
        note(EV_MSG, w->cfg->id, ++w->handled, tr_self(ctx).id);
        sleep_ms(ms);
        return TR_OK;
    }
    default:
        note(EV_MSG, w->cfg->id, ++w->handled, tr_self(ctx).id);
        return TR_OK;
    }
}

static void
w_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    wstate *w = state;
    int ms = tr_load_relaxed(&((wcfg *)w->cfg)->stop_ms);
    if (ms > 0) {
        sleep_ms(ms); /* a slow stop: the work it stands for takes time */
    }
    note(EV_STOP, w->cfg->id, exit->kind, tr_self(ctx).id);
}

static const tr_behaviour worker = {
    .name = "worker",
    .state_size = sizeof(wstate),
    .init = w_init,
    .handle = w_handle,
    .stop = w_stop,
};

static wcfg cfg_a = {.id = "a"}, cfg_b = {.id = "b"}, cfg_c = {.id = "c"},
            cfg_d = {.id = "d"};

static tr_atomic(uint64_t) failed_letters; /* TR_DEAD_FAILED */
static tr_atomic(uint64_t) top_failures;   /* the failure hook */

static void
count_dead(void *arg, tr_addr to, uint32_t type, tr_dead_reason why)
{
    (void)arg;
    (void)to;
    (void)type;
    if (why == TR_DEAD_FAILED) {
        tr_faa_relaxed(&failed_letters, 1);
    }
}

static void
count_failure(void *arg, tr_addr who, const char *behaviour,
              const tr_exit *exit)
{
    (void)arg;
    (void)who;
    (void)behaviour;
    (void)exit;
    tr_faa_relaxed(&top_failures, 1);
}

typedef struct fixture {
    tr_system *sys;
    tr_ctx *ctx;
} fixture;

static fixture fx;

static void
start(bool manual_clock)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    cfg.workers = 2;
    cfg.manual_clock = manual_clock;
    cfg.on_dead_letter = count_dead;
    cfg.on_failure = count_failure;
    assert_int_equal(tr_mailbox_create(0, &journal), TR_OK);
    fx.sys = tr_test_system_cfg(&cfg);
    fx.ctx = tr_system_ctx(fx.sys);
    tr_store_relaxed(&failed_letters, 0);
    tr_store_relaxed(&top_failures, 0);
    wcfg *all[] = {&cfg_a, &cfg_b, &cfg_c, &cfg_d};
    for (size_t i = 0; i < 4; i++) {
        tr_store_relaxed(&all[i]->init_rc, TR_OK);
        tr_store_relaxed(&all[i]->stop_ms, 0);
    }
}

static int
setup(void **state)
{
    (void)state;
    start(false);
    return 0;
}

static int
setup_manual(void **state)
{
    (void)state;
    start(true);
    return 0;
}

static void
drain_journal(void)
{
    event e;
    size_t len;
    while (tr_mailbox_recv_wait(journal, &e, sizeof(e), &len, tr_ms(1)) ==
           TR_OK) {
    }
}

static int
teardown(void **state)
{
    (void)state;
    tr_test_shutdown(fx.sys);
    drain_journal();
    tr_mailbox_destroy(journal);
    return 0;
}

static event
next_event(void)
{
    event e = {0};
    size_t len;
    int rc = tr_mailbox_recv_wait(journal, &e, sizeof(e), &len, tr_ms(5000));
    if (rc != TR_OK) {
        fail_msg("no event within 5 s (%s)", tr_errname(rc));
    }
    return e;
}

/* The next event is `what` for child `id` (and `kind`, unless -1). */
static event
expect(int what, const char *id, int kind)
{
    event e = next_event();
    if (e.what != what || strcmp(e.id, id) != 0 ||
        (kind != -1 && e.kind != kind)) {
        fail_msg("expected event %d of '%s' (kind %d), got %d of '%s' "
                 "(kind %d)",
                 what, id, kind, e.what, e.id, e.kind);
    }
    return e;
}

/* No event comes within `ms`. */
static void
expect_quiet(int ms)
{
    event e;
    size_t len;
    int rc =
        tr_mailbox_recv_wait(journal, &e, sizeof(e), &len, tr_ms((unsigned)ms));
    if (rc == TR_OK) {
        fail_msg("unexpected event %d of '%s' (kind %d)", e.what, e.id, e.kind);
    }
}

static tr_child_spec
kid(wcfg *c, tr_restart restart)
{
    return (tr_child_spec){
        .id = c->id, .behaviour = &worker, .arg = c, .restart = restart};
}

/* Top-level supervisors have names of their own: a test that starts two
 * names the second. */
static tr_addr
start_sup_named(const char *name, tr_strategy strategy, tr_child_spec *kids,
                size_t n, uint32_t max_r, uint32_t period_ms)
{
    tr_sup_spec spec = {.name = name,
                        .strategy = strategy,
                        .max_restarts = max_r,
                        .period_ms = period_ms,
                        .children = kids,
                        .len = n};
    tr_addr sup;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, &sup), TR_OK);
    return sup;
}

static tr_addr
start_sup(tr_strategy strategy, tr_child_spec *kids, size_t n, uint32_t max_r,
          uint32_t period_ms)
{
    return start_sup_named("top", strategy, kids, n, max_r, period_ms);
}

static tr_addr
addr_of(tr_addr sup, const char *id)
{
    tr_child_info info[8];
    size_t n = 0;
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 8, &n, tr_ms(5000)),
        TR_OK);
    for (size_t i = 0; i < n && i < 8; i++) {
        if (strcmp(info[i].id, id) == 0) {
            return info[i].addr;
        }
    }
    return TR_ADDR_NONE;
}

static void
send(tr_addr to, uint32_t type)
{
    assert_int_equal(tr_send(fx.ctx, to, type, NULL, 0), TR_OK);
}

static void
assert_live(uint64_t n)
{
    tr_system_stats st;
    assert_int_equal(tr_system_stats_get(fx.sys, &st), TR_OK);
    if (st.live_actors != n) {
        fail_msg("%llu actors live, want %llu",
                 (unsigned long long)st.live_actors, (unsigned long long)n);
    }
}

/* ---- specs ---- */

static void
test_sup_invalid_specs_are_rejected_with_a_reason(void **state)
{
    (void)state;
    char why[160];
    tr_child_spec two[2] = {kid(&cfg_a, TR_PERMANENT),
                            kid(&cfg_a, TR_PERMANENT)};
    tr_sup_spec spec = {.children = two, .len = 2};

    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "duplicate child id 'a'"));
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, NULL), TR_EINVAL);

    two[1] = kid(&cfg_b, (tr_restart)7);
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "restart type"));

    two[1] = kid(&cfg_b, TR_PERMANENT);
    two[1].shutdown_ms = -5;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "negative shutdown"));

    two[1].shutdown_ms = TR_SHUTDOWN_BRUTAL;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);

    spec.strategy = TR_SIMPLE_ONE_FOR_ONE;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "exactly one template"));

    spec.strategy = TR_ONE_FOR_ONE;
    two[1].behaviour = NULL;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    two[1].behaviour = &worker;
    two[1].id = "";
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    /* A '/' separates a path's parts: an id or a name holding one could
     * never be looked up (tr_whereis_path). */
    two[1].id = "x/y";
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "holds a '/'"));
    two[1].id = "b";
    spec.name = "a/b";
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "holds a '/'"));
    spec.name = "ab";
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    expect_quiet(10); /* nothing was started */
}

/* ---- order ---- */

static void
test_sup_children_start_in_order_and_stop_in_reverse(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 3, 0, 0);

    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    assert_int_equal(tr_actor_stop(fx.ctx, sup), TR_OK);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
}

static void
test_sup_system_shutdown_stops_the_tree_in_order(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    (void)start_sup(TR_ONE_FOR_ALL, kids, 3, 0, 0);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    assert_int_equal(tr_system_shutdown(fx.sys, tr_ms(5000)), TR_OK);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    /* teardown shuts down again: start a fresh system for it */
    tr_mailbox_destroy(journal);
    start(false);
}

/* ---- restarts ---- */

static void
test_sup_restart_keeps_address_name_and_queue(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    event first = expect(EV_INIT, "a", TR_OK);
    tr_addr a = {.id = first.addr};
    tr_addr found;

    assert_int_equal(tr_register(fx.ctx, "worker-a", a), TR_OK);
    /* Queued together: the crash, then two pings that must survive it. */
    send(a, MSG_CRASH);
    send(a, MSG_PING);
    send(a, MSG_PING);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    event again = expect(EV_INIT, "a", TR_OK);
    assert_int_equal(again.addr, a.id); /* same address */
    expect(EV_MSG, "a", 1);             /* fresh state, queue kept */
    expect(EV_MSG, "a", 2);
    assert_int_equal(tr_whereis(fx.sys, "worker-a", &found), TR_OK);
    assert_int_equal(found.id, a.id);
    /* The failing message is not redelivered: it is a dead letter. */
    assert_int_equal(tr_load_relaxed(&failed_letters), 1);
    assert_int_equal(addr_of(sup, "a").id, a.id);
}

static void
test_sup_one_for_all_stops_others_in_reverse_then_restarts_all(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    (void)start_sup(TR_ONE_FOR_ALL, kids, 3, 5, 1000);
    expect(EV_INIT, "a", TR_OK);
    event b = expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);

    send((tr_addr){.id = b.addr}, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20);
}

static void
test_sup_rest_for_one_restarts_the_failed_and_later_children(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    (void)start_sup(TR_REST_FOR_ONE, kids, 3, 5, 1000);
    expect(EV_INIT, "a", TR_OK);
    event b = expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);

    send((tr_addr){.id = b.addr}, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20); /* a was left alone */
}

/* Which ends restart a child of each type. */
static void
test_sup_restart_types_by_exit_kind(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_TRANSIENT),
                             kid(&cfg_c, TR_TEMPORARY)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 3, 10, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    tr_child_counts counts;

    /* permanent: restarted after a normal stop and after a failure */
    send(a, MSG_QUIT);
    expect(EV_STOP, "a", TR_EXIT_NORMAL);
    expect(EV_INIT, "a", TR_OK);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_INIT, "a", TR_OK);

    /* transient: restarted after a failure, not after a normal stop */
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_INIT, "b", TR_OK);
    send(b, MSG_QUIT);
    expect(EV_STOP, "b", TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(fx.sys, b, 5000));

    /* temporary: never restarted, and forgotten */
    send(c, MSG_CRASH);
    expect(EV_STOP, "c", TR_EXIT_FAILED);
    assert_true(tr_test_wait_stopped(fx.sys, c, 5000));
    expect_quiet(20);

    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 2); /* a and b; c is gone */
    assert_int_equal(counts.active, 1);
    assert_int_equal(counts.workers, 2);
    assert_true(tr_addr_is_none(addr_of(sup, "b")));
}

static void
test_sup_temporary_bystander_is_stopped_not_restarted(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_TEMPORARY),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ALL, kids, 3, 1, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    expect(EV_INIT, "c", TR_OK);
    tr_child_counts counts;

    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, b, 5000));
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 2);
    /* The round counted once, within an intensity of 1: still alive, and a
     * second failure now would exceed it. */
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
}

/* ---- intensity ---- */

static void
test_sup_intensity_window_slides(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 2, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    expect(EV_INIT, "b", TR_OK);

    /* Two restarts at t=0 and t=600. */
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_INIT, "a", TR_OK);
    assert_int_equal(tr_clock_advance(fx.sys, 600), TR_OK);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_INIT, "a", TR_OK);
    /* t=1000: the first left the window, so a third is allowed. */
    assert_int_equal(tr_clock_advance(fx.sys, 400), TR_OK);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_INIT, "a", TR_OK);
    /* t=1000 still: 600 and 1000 are in the window, one more is too many. */
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
    /* A top-level supervisor that gives up ends its tree: reported, and
     * tr_system_wait returns. */
    assert_int_equal(tr_system_wait(fx.sys, tr_ms(5000)), TR_OK);
    assert_true(tr_load_relaxed(&top_failures) >= 1);
}

static void
test_sup_escalation_restarts_the_sub_supervisor(void **state)
{
    (void)state;
    /* mid allows no restart: its child's failure makes it give up, and
     * top restarts mid, which starts its child afresh. */
    static tr_child_spec mid_kids[1];
    mid_kids[0] = kid(&cfg_c, TR_PERMANENT);
    static tr_sup_spec mid = {.name = "mid",
                              .strategy = TR_ONE_FOR_ONE,
                              .max_restarts = 0,
                              .period_ms = 1000,
                              .children = mid_kids,
                              .len = 1};
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             {.id = "mid",
                              .behaviour = &tr_supervisor_behaviour,
                              .arg = &mid,
                              .kind = TR_SUPERVISOR}};
    tr_addr top = start_sup(TR_ONE_FOR_ONE, kids, 2, 3, 5000);
    expect(EV_INIT, "a", TR_OK);
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    tr_child_info info[4];
    size_t n;

    send(c, MSG_CRASH);
    expect(EV_STOP, "c", TR_EXIT_FAILED);
    /* mid ended c for good; restarted in place, it starts a fresh c. */
    event again = expect(EV_INIT, "c", TR_OK);
    assert_int_not_equal(again.addr, c.id);
    assert_true(tr_test_wait_stopped(fx.sys, c, 5000));
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, top, info, 4, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(info[1].id, "mid");
    assert_int_equal(info[1].restarts, 1);
    assert_int_equal(info[1].kind, TR_SUPERVISOR);
    assert_int_equal(info[0].restarts, 0);
    assert_int_equal(tr_system_wait(fx.sys, tr_ms(1)), TR_ETIMEDOUT);
}

/* ---- starting ---- */

static void
test_sup_start_failure_stops_started_children(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_sup_spec spec = {.children = kids, .len = 3};
    tr_system_stats st;

    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, NULL), TR_ENOMEM);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_ENOMEM);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect_quiet(20); /* c never started */
    assert_int_equal(tr_system_stats_get(fx.sys, &st), TR_OK);
    assert_int_equal(st.live_actors, 0);
}

static int
db_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    return tr_fail(ctx, TR_EIO, "db unreachable");
}

static const tr_behaviour db_behaviour = {
    .name = "db", .init = db_init, .handle = w_handle};

/* OTP's failed_to_start_child: which child, and why, in opts->why; from
 * under a child supervisor, by its path. */
static void
test_sup_start_says_which_child_failed_and_why(void **state)
{
    (void)state;
    char why[160];
    tr_sup_opts opts = {.why = why, .why_cap = sizeof(why)};
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    tr_sup_spec spec = {.name = "app", .children = kids, .len = 2};

    tr_store_relaxed(&cfg_b.init_rc, TR_EIO);
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EIO);
    assert_string_equal(
        why, "child 'b' failed to start: init returned -24 (TR_EIO)");
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_EIO);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);

    /* The text a failing init gave tr_fail is the reason. */
    kids[1] = (tr_child_spec){.id = "db", .behaviour = &db_behaviour};
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EIO);
    assert_string_equal(why, "child 'db' failed to start: db unreachable");
    expect(EV_INIT, "a", TR_OK);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);

    /* Two supervisors down, a failed init and a bad spec, by path. */
    tr_child_spec inner_kids[1] = {kid(&cfg_c, TR_PERMANENT)};
    tr_sup_spec inner = {.name = "inner", .children = inner_kids, .len = 1};
    tr_child_spec mid_kids[1] = {{.id = "inner",
                                  .behaviour = &tr_supervisor_behaviour,
                                  .arg = &inner,
                                  .kind = TR_SUPERVISOR}};
    tr_sup_spec mid = {.name = "mid", .children = mid_kids, .len = 1};
    kids[1] = (tr_child_spec){.id = "mid",
                              .behaviour = &tr_supervisor_behaviour,
                              .arg = &mid,
                              .kind = TR_SUPERVISOR};
    tr_store_relaxed(&cfg_c.init_rc, TR_ENOMEM);
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_ENOMEM);
    assert_string_equal(why, "child 'mid/inner/c' failed to start: init "
                             "returned -2 (TR_ENOMEM)");
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "c", TR_ENOMEM);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    inner_kids[0].behaviour = NULL;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EINVAL);
    assert_string_equal(why, "child 'mid/inner/c' has no behaviour");
    expect(EV_INIT, "a", TR_OK);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);

    /* A start that succeeds leaves no reason. */
    inner_kids[0].behaviour = &worker;
    tr_store_relaxed(&cfg_c.init_rc, TR_OK);
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_OK);
    assert_string_equal(why, "");
    assert_live(5); /* app, a, mid, inner and c */
}

/* Two top-level supervisors of one name would have the same paths. */
static void
test_sup_top_level_names_are_unique(void **state)
{
    (void)state;
    char why[160];
    tr_sup_opts opts = {.why = why, .why_cap = sizeof(why)};
    tr_sup_spec spec = {.name = "app"};
    tr_sup_spec unnamed = {0};
    tr_addr first, again;

    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, &first), TR_OK);
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EEXIST);
    assert_string_equal(why, "a top-level supervisor named 'app' runs already");
    assert_int_equal(tr_sup_start(fx.ctx, &unnamed, NULL, NULL), TR_OK);
    assert_int_equal(tr_sup_start(fx.ctx, &unnamed, NULL, NULL), TR_EEXIST);
    assert_live(2);

    /* Free again once the first has ended. */
    assert_int_equal(tr_actor_stop(fx.ctx, first), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, first, 5000));
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, &again), TR_OK);
    assert_int_not_equal(again.id, first.id);

    /* A start that failed took no name. */
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_sup_spec failing = {.name = "job", .children = kids, .len = 1};
    tr_store_relaxed(&cfg_a.init_rc, TR_EIO);
    assert_int_equal(tr_sup_start(fx.ctx, &failing, NULL, NULL), TR_EIO);
    tr_store_relaxed(&cfg_a.init_rc, TR_OK);
    assert_int_equal(tr_sup_start(fx.ctx, &failing, NULL, NULL), TR_OK);
    expect(EV_INIT, "a", TR_EIO);
    expect(EV_INIT, "a", TR_OK);
    assert_live(4);
}

enum { RACE_ROUNDS = 50 };

typedef struct racer {
    pthread_barrier_t *go;
    int rc;
    tr_addr addr;
} racer;

static void *
race_start(void *arg)
{
    racer *r = arg;
    const tr_sup_spec spec = {.name = "race"};

    pthread_barrier_wait(r->go);
    r->rc = tr_sup_start(fx.ctx, &spec, NULL, &r->addr);
    return NULL;
}

/* Two threads start supervisors of one name at once: one wins, the other
 * is refused, whichever it is. */
static void
test_sup_racing_starts_of_one_name_admit_one(void **state)
{
    (void)state;
    pthread_barrier_t go;

    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        racer r[2] = {{.go = &go}, {.go = &go}};
        pthread_t t[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(pthread_create(&t[k], NULL, race_start, &r[k]), 0);
        }
        for (int k = 0; k < 2; k++) {
            pthread_join(t[k], NULL);
        }
        int won = r[0].rc == TR_OK ? 0 : 1;
        assert_int_equal(r[won].rc, TR_OK);
        assert_int_equal(r[1 - won].rc, TR_EEXIST);
        assert_int_equal(tr_actor_stop(fx.ctx, r[won].addr), TR_OK);
        assert_true(tr_test_wait_stopped(fx.sys, r[won].addr, 5000));
    }
    pthread_barrier_destroy(&go);
    assert_live(0);
}

static void
test_sup_ignored_child_keeps_its_spec(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_TEMPORARY)};
    tr_store_relaxed(&cfg_b.init_rc, TR_IGNORE);
    tr_store_relaxed(&cfg_c.init_rc, TR_IGNORE);
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 3, 0, 0);
    tr_child_info info[4];
    size_t n;
    tr_addr b;

    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_IGNORE);
    expect(EV_INIT, "c", TR_IGNORE);
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 4, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 2); /* the temporary one was dropped */
    assert_string_equal(info[1].id, "b");
    assert_int_equal(info[1].status, TR_CHILD_IGNORED);
    /* It can be started later. */
    tr_store_relaxed(&cfg_b.init_rc, TR_OK);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "b", tr_ms(5000), &b), TR_OK);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, b.id);
}

/* ---- shutdown deadlines ---- */

static void
test_sup_shutdown_deadline_kills_a_slow_child(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[0].shutdown_ms = 20;
    kids[1].shutdown_ms = TR_SHUTDOWN_BRUTAL;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 0, 0);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    expect(EV_INIT, "b", TR_OK);
    int ms = 300;
    tr_child_info info[2];
    size_t n;

    /* a is busy for 300 ms: its 20 ms run out first, so it ends killed,
     * without its stop callback. */
    assert_int_equal(tr_send(fx.ctx, a, MSG_SLEEP, &ms, sizeof(ms)), TR_OK);
    expect(EV_MSG, "a", 1); /* it is asleep in the handler now */
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "a", tr_ms(5000)),
                     TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, a, 5000));
    /* b is killed outright: no stop callback either. */
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    expect_quiet(20);
    /* Terminating again is fine; both keep their specs. */
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "a", tr_ms(5000)),
                     TR_OK);
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 2, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(info[0].status, TR_CHILD_TERMINATED);
    assert_int_equal(info[1].status, TR_CHILD_TERMINATED);
    char out[2048];
    size_t len;
    assert_int_equal(
        tr_inspect_snapshot(fx.sys, TR_INSPECT_TEXT, out, sizeof(out), &len),
        TR_OK);
    assert_non_null(strstr(out, "killed: did not stop within 20 ms"));
}

/* ---- the run-time API ---- */

static void
test_sup_dynamic_children_and_api_errors(void **state)
{
    (void)state;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, NULL, 0, 0, 0);
    tr_child_spec d = kid(&cfg_d, TR_PERMANENT);
    tr_addr got, again;
    tr_child_counts counts;

    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), &got),
        TR_OK);
    assert_int_equal(expect(EV_INIT, "d", TR_OK).addr, got.id);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), &again),
        TR_EALREADY);
    assert_int_equal(again.id, got.id);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_ERUNNING);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "d", tr_ms(5000), NULL),
        TR_ERUNNING);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), NULL),
        TR_EEXIST);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "d", tr_ms(5000), &again),
        TR_OK);
    assert_int_not_equal(again.id, got.id); /* a new incarnation */
    expect(EV_INIT, "d", TR_OK);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_OK);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, sup, "nope", tr_ms(5000)),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 0);

    /* A child whose init fails is not added. */
    tr_store_relaxed(&cfg_d.init_rc, TR_ENOMEM);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), NULL),
        TR_ENOMEM);
    expect(EV_INIT, "d", TR_ENOMEM);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 0);

    /* Misuse. */
    d.restart = (tr_restart)9;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), NULL),
        TR_EINVAL);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, sup, NULL, tr_ms(5000)), TR_EINVAL);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, TR_ADDR_NONE, &counts, tr_ms(100)),
        TR_ENOACTOR);
}

static void
test_sup_simple_one_for_one_starts_from_the_template(void **state)
{
    (void)state;
    tr_child_spec tmpl = {
        .id = "pool", .behaviour = &worker, .restart = TR_TRANSIENT};
    tr_addr sup = start_sup(TR_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 5, 1000);
    tr_addr w[3];
    wcfg *args[3] = {&cfg_a, &cfg_b, &cfg_c};
    tr_child_info info[4];
    size_t n;

    expect_quiet(10); /* the template starts nothing */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr_sup_start_child_wait(fx.ctx, sup, NULL, args[i],
                                                 tr_ms(5000), &w[i]),
                         TR_OK);
        assert_int_equal(expect(EV_INIT, args[i]->id, TR_OK).addr, w[i].id);
    }
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 4, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(info[0].id, "1");
    assert_string_equal(info[2].id, "3");

    /* Failure: restarted in place (transient). Normal end: it leaves. */
    send(w[1], MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, w[1].id);
    send(w[1], MSG_QUIT);
    expect(EV_STOP, "b", TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(fx.sys, w[1], 5000));
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "3", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 4, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(info[0].id, "1");
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "1", tr_ms(5000)),
                     TR_ESTATE);
}

/* ---- backoff ---- */

typedef struct which_arg {
    tr_addr sup;
} which_arg;

/* The supervisor has the report of its only child's end (the child's
 * `stop` journals before the report reaches the supervisor). */
static bool
child_not_running(void *arg)
{
    tr_child_info info[1];
    size_t n = 0;
    return tr_sup_which_children_wait(fx.ctx, ((which_arg *)arg)->sup, info, 1,
                                      &n, tr_ms(5000)) == TR_OK &&
           n == 1 && info[0].status != TR_CHILD_RUNNING;
}

static void
test_sup_backoff_delays_restarts_and_answers_meanwhile(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].backoff = (tr_backoff){.min_ms = 100, .max_ms = 250};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 1, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_child_info info[1];
    size_t n;

    /* 100, 200, then 250 (the cap); backoff restarts do not count towards
     * the intensity of 1. */
    const unsigned delays[3] = {100, 200, 250};
    for (int i = 0; i < 3; i++) {
        send(a, MSG_CRASH);
        expect(EV_STOP, "a", TR_EXIT_FAILED);
        /* Between restarts the supervisor answers, and says so. */
        which_arg w = {sup};
        assert_true(tr_test_wait_until(child_not_running, &w, 5000));
        assert_int_equal(
            tr_sup_which_children_wait(fx.ctx, sup, info, 1, &n, tr_ms(5000)),
            TR_OK);
        assert_int_equal(info[0].status, TR_CHILD_BACKOFF);
        assert_int_equal(
            tr_sup_restart_child_wait(fx.ctx, sup, "a", tr_ms(5000), NULL),
            TR_ERESTARTING);
        assert_int_equal(tr_clock_advance(fx.sys, delays[i] - 1), TR_OK);
        expect_quiet(20);
        assert_int_equal(tr_clock_advance(fx.sys, 1), TR_OK);
        assert_int_equal(expect(EV_INIT, "a", TR_OK).addr, a.id);
    }
}

/* Backoff from 0: at once, then 1, 2, 4 ms. Doubling 0 stayed 0, and a
 * child that failed at once restarted without end (nothing else bounds
 * backoff restarts). */
static void
test_sup_backoff_from_zero_still_grows(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].backoff = (tr_backoff){.min_ms = 0, .max_ms = 250};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 1, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    const unsigned delays[4] = {0, 1, 2, 4};

    for (int i = 0; i < 4; i++) {
        send(a, MSG_CRASH);
        expect(EV_STOP, "a", TR_EXIT_FAILED);
        if (delays[i] != 0) {
            which_arg w = {sup};
            assert_true(tr_test_wait_until(child_not_running, &w, 5000));
            assert_int_equal(tr_clock_advance(fx.sys, delays[i] - 1), TR_OK);
            expect_quiet(20);
            assert_int_equal(tr_clock_advance(fx.sys, 1), TR_OK);
        }
        assert_int_equal(expect(EV_INIT, "a", TR_OK).addr, a.id);
    }
}

/* Crash `a`, then check its restart comes after `min_ms` and by
 * `max_ms` (inclusive) on the manual clock. */
static void
crash_and_expect_restart_within(tr_addr sup, tr_addr a, unsigned min_ms,
                                unsigned max_ms)
{
    which_arg w = {sup};

    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    /* The delay counts from the supervisor's handling of the report. */
    assert_true(tr_test_wait_until(child_not_running, &w, 5000));
    if (min_ms > 1) {
        assert_int_equal(tr_clock_advance(fx.sys, min_ms - 1), TR_OK);
        expect_quiet(20);
    }
    assert_int_equal(tr_clock_advance(fx.sys, max_ms - (min_ms - 1)), TR_OK);
    assert_int_equal(expect(EV_INIT, "a", TR_OK).addr, a.id);
}

static void
test_sup_backoff_resets_after_a_stable_run_and_jitters(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].backoff =
        (tr_backoff){.min_ms = 100, .max_ms = 800, .reset_ms = 1000};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 1, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};

    crash_and_expect_restart_within(sup, a, 100, 100);
    crash_and_expect_restart_within(sup, a, 200, 200);
    /* Up for a full second: the next delay starts over. */
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    crash_and_expect_restart_within(sup, a, 100, 100);
}

static void
test_sup_backoff_jitter_stays_within_its_percentage(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].backoff =
        (tr_backoff){.min_ms = 100, .max_ms = 100, .jitter_pct = 50};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 1, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};

    /* Each delay in [50, 150] ms, found to 25 ms; and they differ. */
    unsigned seen_lo = 1000, seen_hi = 0;
    for (int i = 0; i < 5; i++) {
        which_arg w = {sup};
        event e;
        size_t len;
        unsigned at = 49;
        send(a, MSG_CRASH);
        expect(EV_STOP, "a", TR_EXIT_FAILED);
        assert_true(tr_test_wait_until(child_not_running, &w, 5000));
        assert_int_equal(tr_clock_advance(fx.sys, at), TR_OK);
        expect_quiet(20);
        while (tr_mailbox_recv_wait(journal, &e, sizeof(e), &len, tr_ms(100)) !=
               TR_OK) {
            assert_true(at < 150);
            assert_int_equal(tr_clock_advance(fx.sys, 25), TR_OK);
            at += 25;
        }
        assert_int_equal(e.what, EV_INIT);
        seen_lo = at < seen_lo ? at : seen_lo;
        seen_hi = at > seen_hi ? at : seen_hi;
    }
    assert_true(seen_lo < seen_hi);
}

static void
test_sup_failing_restarts_are_retried_until_intensity(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 3, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};

    /* Every restart's init fails: attempts continue, each counted, until
     * the fourth is one too many and the supervisor gives up. */
    tr_store_relaxed(&cfg_a.init_rc, TR_ENOMEM);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    for (int i = 0; i < 3; i++) {
        expect(EV_INIT, "a", TR_ENOMEM);
    }
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
    assert_true(tr_test_wait_stopped(fx.sys, a, 5000));
    expect_quiet(20);
}

/* ---- what a restart does not keep ---- */

static tr_broadcast_tx *feed;
static tr_atomic(int) sub_init_failures; /* inits left to fail */

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {
        .value_type = MSG_PING, .lagged_type = 100, .closed_type = 101};
    /* Subscribed before the init note, which the test waits for. */
    int rc = tr_broadcast_subscribe_actor(ctx, feed, &types, NULL);
    if (rc == TR_OK && tr_load_seqcst(&sub_init_failures) > 0) {
        tr_fas_seqcst(&sub_init_failures, 1);
        return TR_EINVAL; /* after subscribing: the restart must undo it */
    }
    return rc == TR_OK ? w_init(ctx, state, arg) : rc;
}

static const tr_behaviour subscriber = {
    .name = "subscriber",
    .state_size = sizeof(wstate),
    .init = sub_init,
    .handle = w_handle,
    .stop = w_stop,
};

static void
test_sup_restart_ends_the_old_channel_subscriptions(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {
        {.id = "a", .behaviour = &subscriber, .arg = &cfg_a}};
    const uint64_t v = 7;

    assert_int_equal(tr_broadcast_create(16, sizeof(v), &feed), TR_OK);
    (void)start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    assert_int_equal(tr_broadcast_receiver_count(feed), 1);
    /* The first restart's init subscribes and then fails; the retry
     * succeeds. */
    tr_store_seqcst(&sub_init_failures, 1);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_INIT, "a", TR_OK); /* it subscribed again */
    /* One subscription, not two: the failed instance's ended with it. */
    assert_int_equal(tr_broadcast_receiver_count(feed), 1);
    assert_int_equal(tr_broadcast_send(feed, &v, sizeof(v)), TR_OK);
    expect(EV_MSG, "a", 1);
    expect_quiet(20);
    tr_broadcast_tx_destroy(feed);
}

/* ---- killing a supervisor ---- */

/*
 * The subtree the next tests kill: `mid`, a supervisor over the workers a
 * and b and the supervisor `inner`, itself over the workers c and d.
 */
static tr_child_spec inner_kids[2];
static tr_sup_spec inner_spec;
static tr_child_spec mid_kids[3];
static tr_sup_spec mid_spec;

static tr_child_spec
sup_kid(const char *id, const tr_sup_spec *spec)
{
    return (tr_child_spec){.id = id,
                           .behaviour = &tr_supervisor_behaviour,
                           .arg = spec,
                           .kind = TR_SUPERVISOR};
}

/* `mid` as a child spec, with its shutdown rule. */
static tr_child_spec
mid_subtree(int shutdown_ms)
{
    inner_kids[0] = kid(&cfg_c, TR_PERMANENT);
    inner_kids[1] = kid(&cfg_d, TR_PERMANENT);
    inner_spec = (tr_sup_spec){.name = "inner",
                               .strategy = TR_ONE_FOR_ONE,
                               .max_restarts = 100,
                               .period_ms = 1000,
                               .children = inner_kids,
                               .len = 2};
    mid_kids[0] = kid(&cfg_a, TR_PERMANENT);
    mid_kids[1] = kid(&cfg_b, TR_PERMANENT);
    mid_kids[2] = sup_kid("inner", &inner_spec);
    mid_spec = (tr_sup_spec){.name = "mid",
                             .strategy = TR_ONE_FOR_ONE,
                             .max_restarts = 100,
                             .period_ms = 1000,
                             .children = mid_kids,
                             .len = 3};
    tr_child_spec m = sup_kid("mid", &mid_spec);
    m.shutdown_ms = shutdown_ms;
    return m;
}

enum { SUBTREE = 6 }; /* mid, a, b, inner, c, d */

/* Every actor of `mid`'s subtree, in start order (mid first); the four
 * workers' inits are the next events. */
static void
subtree_addrs(tr_addr top, tr_addr out[SUBTREE])
{
    out[0] = addr_of(top, "mid");
    out[1] = (tr_addr){.id = expect(EV_INIT, "a", TR_OK).addr};
    out[2] = (tr_addr){.id = expect(EV_INIT, "b", TR_OK).addr};
    assert_int_equal(tr_whereis_path(fx.sys, "/top/mid/inner", &out[3]), TR_OK);
    out[4] = (tr_addr){.id = expect(EV_INIT, "c", TR_OK).addr};
    out[5] = (tr_addr){.id = expect(EV_INIT, "d", TR_OK).addr};
}

/* A watcher: monitors the addresses it is given and journals each DOWN. */
typedef struct watch_list {
    const tr_addr *who;
    size_t n;
} watch_list;

static int
watcher_init(tr_ctx *ctx, void *state, const void *arg)
{
    const watch_list *l = arg;
    (void)state;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t ref;
        int rc = tr_monitor(ctx, l->who[i], &ref);
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

static int
watcher_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->type == TR_MSG_DOWN) {
        const tr_signal *sig = msg->data;
        note(EV_DOWN, "down", sig->kind, sig->who.id);
    }
    return TR_OK;
}

static const tr_behaviour watcher = {
    .name = "watcher", .init = watcher_init, .handle = watcher_handle};

static void
watch(const tr_addr *who, size_t n)
{
    watch_list l = {who, n};
    assert_int_equal(tr_spawn(fx.ctx, &watcher, &l, NULL, NULL), TR_OK);
}

/*
 * Read events until one DOWN has come for each of `who[n]`, and put each
 * one's exit kind in `kinds`. Stops are allowed only of the children named
 * in `may_stop` (a string of ids); anything else fails the test.
 */
static void
expect_downs(const tr_addr *who, size_t n, int *kinds, const char *may_stop)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        kinds[i] = -1;
    }
    while (got < n) {
        event e = next_event();
        if (e.what == EV_STOP && strchr(may_stop, e.id[0]) != NULL) {
            continue;
        }
        if (e.what != EV_DOWN) {
            fail_msg("unexpected event %d of '%s' (kind %d)", e.what, e.id,
                     e.kind);
        }
        for (size_t i = 0; i < n; i++) {
            if (who[i].id == e.addr && kinds[i] == -1) {
                kinds[i] = e.kind;
                got++;
                break;
            }
        }
    }
}

static void
assert_all_ended(const tr_addr *who, size_t n)
{
    tr_actor_stats st;
    for (size_t i = 0; i < n; i++) {
        int rc = tr_actor_stats_get(fx.sys, who[i], &st);
        if (rc != TR_ENOACTOR) {
            fail_msg("actor %zu of the subtree is still there (%s)", i,
                     tr_errname(rc));
        }
    }
}

/* Shut the system down within `ms` (asserting it), and start a fresh one
 * for the teardown. */
static void
shutdown_within(unsigned ms)
{
    assert_int_equal(tr_system_shutdown(fx.sys, tr_ms(ms)), TR_OK);
    drain_journal();
    tr_mailbox_destroy(journal);
    start(false);
}

static void
test_sup_brutal_kill_of_a_supervisor_ends_its_subtree(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {mid_subtree(TR_SHUTDOWN_BRUTAL)};
    tr_addr top = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr sub[SUBTREE];
    int kinds[SUBTREE];

    subtree_addrs(top, sub);
    watch(sub, SUBTREE);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, top, "mid", tr_ms(5000)), TR_OK);
    /* By the answer, the whole subtree has ended, none of it by `stop`. */
    assert_all_ended(sub, SUBTREE);
    assert_live(2); /* top and the watcher */
    expect_downs(sub, SUBTREE, kinds, "");
    for (int i = 0; i < SUBTREE; i++) {
        assert_int_equal(kinds[i], TR_EXIT_KILLED);
    }
    expect_quiet(20);
    /* Started again, it is a whole new subtree. */
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, top, "mid", tr_ms(5000), NULL),
        TR_OK);
    tr_addr again[SUBTREE];
    subtree_addrs(top, again);
    assert_live(2 + SUBTREE);
    shutdown_within(1000);
}

static void
test_sup_supervisor_past_its_deadline_is_killed_with_its_subtree(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {mid_subtree(100)};
    tr_addr top = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr sub[SUBTREE];
    int kinds[SUBTREE];
    int ms = 400;

    subtree_addrs(top, sub);
    watch(sub, SUBTREE);
    /* c is busy past mid's 100 ms: inner waits for it, mid for inner. */
    assert_int_equal(tr_send(fx.ctx, sub[4], MSG_SLEEP, &ms, sizeof(ms)),
                     TR_OK);
    expect(EV_MSG, "c", 1);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, top, "mid", tr_ms(5000)), TR_OK);
    assert_all_ended(sub, SUBTREE);
    assert_live(2);
    /* d stopped when asked (unless the kill overtook it); the rest were
     * killed: mid at its deadline, and with it everything under it. */
    expect_downs(sub, SUBTREE, kinds, "d");
    for (int i = 0; i < SUBTREE; i++) {
        if (i != 5) {
            assert_int_equal(kinds[i], TR_EXIT_KILLED);
        }
    }
    expect_quiet(20);
    char out[2048];
    size_t len;
    assert_int_equal(
        tr_inspect_snapshot(fx.sys, TR_INSPECT_TEXT, out, sizeof(out), &len),
        TR_OK);
    assert_non_null(strstr(out, "killed: did not stop within 100 ms"));
    shutdown_within(1000);
}

/*
 * OTP's orphaned-grandchild race (2021): the tree is shut down, and a
 * child supervisor still stopping its own slow children is killed at its
 * deadline, at any point of its sequence. Nothing may be left running for
 * shutdown to wait on.
 */
static void
test_sup_shutdown_kills_a_late_supervisor_leaving_no_orphans(void **state)
{
    (void)state;
    wcfg *all[] = {&cfg_a, &cfg_b, &cfg_c, &cfg_d};
    int kills = 0; /* rounds where the deadline came first */

    for (int round = 0; round < 60; round++) {
        tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                                 mid_subtree(1 + round % 4)};
        kids[0].id = "first"; /* a's cfg, its own id */
        for (int i = 0; i < 4; i++) {
            tr_store_relaxed(&all[i]->stop_ms, (round * (i + 3)) % 4);
        }
        (void)start_sup(TR_ONE_FOR_ONE, kids, 2, 5, 1000);
        for (int i = 0; i < 5; i++) {
            (void)next_event(); /* the inits */
        }
        int rc = tr_system_shutdown(fx.sys, tr_ms(3000));
        if (rc != TR_OK) {
            fail_msg("round %d: shutdown returned %s", round, tr_errname(rc));
        }
        /* A killed worker's `stop` does not run: fewer than five stops. */
        int stops = 0;
        event e;
        size_t len;
        while (tr_mailbox_recv_wait(journal, &e, sizeof(e), &len, TR_NOWAIT) ==
               TR_OK) {
            stops += e.what == EV_STOP;
        }
        kills += stops < 5;
        tr_mailbox_destroy(journal);
        start(false);
    }
    print_message("mid was killed in %d of 60 rounds\n", kills);
    assert_true(kills > 0);
}

/*
 * A report its parent never reads: the parent ends with the report of a
 * child that failed still queued. The report holds the child's run-right,
 * so the parent's end must end the child (DOWN, name, slot), not leave it
 * to shutdown. A plain actor stands in for the supervisor, so that the
 * test can hold it busy while the report arrives.
 */
static tr_atomic(int) gate; /* 1: the parent may end */

static int
gate_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    note(EV_MSG, "gate", 1, tr_self(ctx).id);
    for (int i = 0; i < 5000 && tr_load_acq(&gate) == 0; i++) {
        sleep_ms(1);
    }
    return tr_stop(ctx);
}

static const tr_behaviour gate_behaviour = {.name = "gate",
                                            .handle = gate_handle};

static void
adopt(tr_ext *x, void *arg)
{
    tr_store_relaxed(&x->parent, *(const uint64_t *)arg);
    x->child = arg; /* any record: only its identity is used */
    tr_store_relaxed(&x->held, 0);
    tr_store_relaxed(&x->kill, 0);
}

typedef struct lane_arg {
    tr_actor *slot;
} lane_arg;

static bool
lane_busy(void *arg)
{
    return !tr__lifo_is_empty(&((lane_arg *)arg)->slot->ctl);
}

static void
test_sup_report_queued_at_an_ending_parent_ends_the_child(void **state)
{
    (void)state;
    tr_addr parent, adopted, found;
    tr_actor *slot;
    int kinds[1];

    tr_store_relaxed(&gate, 0);
    assert_int_equal(tr_spawn(fx.ctx, &gate_behaviour, NULL, NULL, &parent),
                     TR_OK);
    assert_int_equal(tr__spawn_held(fx.ctx, &worker, &cfg_a, 0, adopt,
                                    &parent.id, &adopted, &slot, NULL, 0),
                     TR_OK);
    tr__actor_release(fx.sys, slot);
    expect(EV_INIT, "a", TR_OK);
    assert_int_equal(tr_register(fx.ctx, "adopted", adopted), TR_OK);
    watch(&adopted, 1);

    send(parent, MSG_PING); /* the parent is busy until the gate opens */
    expect(EV_MSG, "gate", 1);
    send(adopted, MSG_CRASH); /* its report waits in the parent's lane */
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    lane_arg l = {tr__table_slot(fx.sys->table, parent.id)};
    assert_true(tr_test_wait_until(lane_busy, &l, 5000));
    tr_store_rel(&gate, 1);

    assert_true(tr_test_wait_stopped(fx.sys, parent, 5000));
    assert_true(tr_test_wait_stopped(fx.sys, adopted, 5000));
    expect_downs(&adopted, 1, kinds, "");
    assert_int_equal(kinds[0], TR_EXIT_FAILED);
    assert_int_equal(tr_whereis(fx.sys, "adopted", &found), TR_ENOTFOUND);
    assert_live(1); /* the watcher */
}

/* Children that crash without pause (no journal: they are many). */
static int
crasher_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->type == MSG_CRASH ? TR_EINVAL : TR_OK;
}

static const tr_behaviour crasher = {.name = "crasher",
                                     .handle = crasher_handle};

/* A child crashes at the moment its supervisor is killed: its report is
 * in flight, or queued behind the kill. Either way it ends with the
 * rest. */
static void
test_sup_children_crashing_as_their_supervisor_is_killed_all_end(void **state)
{
    (void)state;
    enum { KIDS = 4, CRASHES = 40, ROUNDS = 20 };
    static const tr_child_spec tmpl = {
        .id = "crasher", .behaviour = &crasher, .restart = TR_PERMANENT};
    static const tr_sup_spec pool = {.name = "pool",
                                     .strategy = TR_SIMPLE_ONE_FOR_ONE,
                                     .max_restarts = 1000000,
                                     .period_ms = 1000,
                                     .children = &tmpl,
                                     .len = 1};
    tr_child_spec kids[1] = {sup_kid("pool", &pool)};
    kids[0].shutdown_ms = TR_SHUTDOWN_BRUTAL;
    tr_addr top = start_sup(TR_ONE_FOR_ONE, kids, 1, 1000, 1000);

    for (int round = 0; round < ROUNDS; round++) {
        tr_addr p = addr_of(top, "pool");
        tr_addr w[KIDS];
        for (int i = 0; i < KIDS; i++) {
            assert_int_equal(tr_sup_start_child_wait(fx.ctx, p, NULL, NULL,
                                                     tr_ms(5000), &w[i]),
                             TR_OK);
        }
        for (int n = 0; n < CRASHES; n++) {
            for (int i = 0; i < KIDS; i++) {
                send(w[i], MSG_CRASH);
            }
        }
        assert_int_equal(
            tr_sup_terminate_child_wait(fx.ctx, top, "pool", tr_ms(5000)),
            TR_OK);
        assert_all_ended(w, KIDS);
        assert_live(1);
        assert_int_equal(
            tr_sup_restart_child_wait(fx.ctx, top, "pool", tr_ms(5000), NULL),
            TR_OK);
    }
    shutdown_within(1000);
}

/*
 * A one_for_all round whose restart fails stops the children it had
 * restarted, a supervisor among them, on the spot: that supervisor's new
 * child is killed without waiting, and its report waits in the held
 * supervisor's lane. When the tree then stops, the report ends it.
 */
static void
test_sup_failed_round_kills_a_restarted_supervisors_children(void **state)
{
    (void)state;
    static tr_child_spec s_kids[1];
    s_kids[0] = kid(&cfg_a, TR_PERMANENT);
    static tr_sup_spec s_spec = {.name = "s",
                                 .strategy = TR_ONE_FOR_ONE,
                                 .max_restarts = 5,
                                 .period_ms = 1000,
                                 .children = s_kids,
                                 .len = 1};
    tr_child_spec kids[2] = {sup_kid("s", &s_spec), kid(&cfg_b, TR_PERMANENT)};
    /* b's restarts wait (the manual clock never gets there). */
    kids[1].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr top = start_sup(TR_ONE_FOR_ALL, kids, 2, 5, 1000);
    int kinds[1];

    expect(EV_INIT, "a", TR_OK);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr}; /* s restarted */
    expect(EV_INIT, "b", TR_ENOMEM); /* so s is stopped again, at once */
    watch(&a, 1);
    lane_arg l = {tr__table_slot(fx.sys->table, addr_of(top, "s").id)};
    assert_true(tr_test_wait_until(lane_busy, &l, 5000));

    assert_int_equal(tr_actor_stop(fx.ctx, top), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, top, 5000));
    assert_all_ended(&a, 1);
    expect_downs(&a, 1, kinds, "");
    assert_int_equal(kinds[0], TR_EXIT_KILLED);
    expect_quiet(20);
    assert_live(1); /* the watcher */
}

/*
 * A one_for_all round kills a brutal child supervisor and restarts it:
 * the new subtree starts only once the old one has ended, so a name the
 * old one held is free again (in OTP, a killed supervisor's children die
 * asynchronously, and such a restart can meet them).
 */
static int
named_init(tr_ctx *ctx, void *state, const void *arg)
{
    const wcfg *c = arg;
    int rc = tr_register(ctx, c->id, tr_self(ctx));
    if (rc != TR_OK) {
        note(EV_INIT, c->id, rc, tr_self(ctx).id);
        return rc;
    }
    return w_init(ctx, state, arg);
}

static const tr_behaviour named_worker = {
    .name = "named_worker",
    .state_size = sizeof(wstate),
    .init = named_init,
    .handle = w_handle,
    .stop = w_stop,
};

static void
test_sup_killed_supervisor_restarts_after_its_subtree_ended(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {mid_subtree(TR_SHUTDOWN_BRUTAL),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[1].id = "x";
    inner_kids[0].behaviour = &named_worker;
    inner_kids[1].behaviour = &named_worker;
    /* mid's own b would share cfg_b with x: give mid only a and inner. */
    mid_kids[1] = mid_kids[2];
    mid_spec.len = 2;
    tr_addr top = start_sup(TR_ONE_FOR_ALL, kids, 2, 5, 1000);

    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect(EV_INIT, "d", TR_OK);
    tr_addr x = {.id = expect(EV_INIT, "b", TR_OK).addr};
    send(x, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    /* mid is killed with its subtree (no stops), then all start again:
     * c and d register their names again, and can. */
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect(EV_INIT, "d", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect_quiet(20);
    tr_child_info info[2];
    size_t n;
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, top, info, 2, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(info[0].restarts, 1);
    assert_int_equal(info[0].status, TR_CHILD_RUNNING);
    assert_live(7); /* top, mid, a, inner, c, d and x */
    shutdown_within(1000);
}

/* A thread waiting in tr_system_wait while another shuts the system down
 * comes back with TR_ESHUTDOWN before the system is freed. */
typedef struct waiter {
    tr_system *sys;
    tr_atomic(int) started;
    tr_atomic(int) done;
    int rc;
} waiter;

static void *
wait_system(void *p)
{
    waiter *w = p;
    tr_store_seqcst(&w->started, 1);
    w->rc = tr_system_wait(w->sys, TR_FOREVER);
    tr_store_seqcst(&w->done, 1);
    return NULL;
}

static bool
waiter_flag(void *p)
{
    return tr_load_seqcst((tr_atomic(int) *)p) != 0;
}

static void
test_sup_system_wait_ends_at_shutdown(void **state)
{
    waiter w = {.sys = tr_test_system(2)};
    pthread_t t;

    (void)state;
    tr_init_relaxed(&w.started, 0);
    tr_init_relaxed(&w.done, 0);
    assert_int_equal(pthread_create(&t, NULL, wait_system, &w), 0);
    assert_true(tr_test_wait_until(waiter_flag, (void *)&w.started, 5000));
    /* Let it get into its wait (a wait that has not begun is covered by
     * the same flag). */
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    tr_test_shutdown(w.sys);
    if (!tr_test_wait_until(waiter_flag, (void *)&w.done, 5000)) {
        fail_msg("tr_system_wait still waits on a freed system");
    }
    pthread_join(t, NULL);
    assert_int_equal(w.rc, TR_ESHUTDOWN);
}

/* ---- restarts proceed child by child ---- */

/* A child that loops in failing restarts without journaling each one. */
typedef struct loop_cfg {
    tr_atomic(int) init_rc;
    tr_atomic(int) attempts;
} loop_cfg;

static loop_cfg looper_cfg;

static int
looper_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    (void)state;
    loop_cfg *l = (loop_cfg *)arg;
    tr_faa_relaxed(&l->attempts, 1);
    return tr_load_relaxed(&l->init_rc);
}

static int
looper_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->type == MSG_CRASH ? TR_EINVAL : TR_OK;
}

static const tr_behaviour looper = {
    .name = "looper", .init = looper_init, .handle = looper_handle};

typedef struct id_arg {
    tr_addr sup;
    const char *id;
    bool down; /* and it has no address: ended, not waiting */
} id_arg;

/* The child `id` is known to its supervisor and not running. */
static bool
is_not_running(void *arg)
{
    id_arg *a = arg;
    tr_child_info info[8];
    size_t n = 0;
    if (tr_sup_which_children_wait(fx.ctx, a->sup, info, 8, &n, tr_ms(5000)) !=
        TR_OK) {
        return false;
    }
    for (size_t i = 0; i < n && i < 8; i++) {
        if (strcmp(info[i].id, a->id) == 0) {
            return info[i].status != TR_CHILD_RUNNING &&
                   (!a->down || tr_addr_is_none(info[i].addr));
        }
    }
    return false;
}

static void
wait_not_running(tr_addr sup, const char *id)
{
    id_arg a = {sup, id, false};
    assert_true(tr_test_wait_until(is_not_running, &a, 5000));
}

static void
wait_down(tr_addr sup, const char *id)
{
    id_arg a = {sup, id, true};
    assert_true(tr_test_wait_until(is_not_running, &a, 5000));
}

static tr_child_info
info_of(tr_addr sup, const char *id)
{
    tr_child_info info[8];
    size_t n = 0;
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, info, 8, &n, tr_ms(5000)),
        TR_OK);
    for (size_t i = 0; i < n && i < 8; i++) {
        if (strcmp(info[i].id, id) == 0) {
            return info[i];
        }
    }
    fail_msg("no child '%s'", id);
    return info[0];
}

/*
 * One child waits out its backoff between failing restarts; a sibling's
 * crash meanwhile restarts the sibling at once, and does not run the
 * waiting child's init before its delay is up.
 */
static void
test_sup_a_child_in_backoff_does_not_hold_up_its_siblings(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[0].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};

    tr_store_relaxed(&cfg_a.init_rc, TR_ENOMEM);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    wait_not_running(sup, "a");
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    expect(EV_INIT, "a", TR_ENOMEM); /* its next try is 1000 ms away */
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, b.id);
    expect_quiet(20); /* a still waits */
    assert_int_equal(tr_clock_advance(fx.sys, 999), TR_OK);
    expect_quiet(20);
    tr_store_relaxed(&cfg_a.init_rc, TR_OK);
    assert_int_equal(tr_clock_advance(fx.sys, 1), TR_OK);
    assert_int_equal(expect(EV_INIT, "a", TR_OK).addr, a.id);
    expect_quiet(20);
}

/* Without backoff a failing child retries at once, again and again (each
 * try counted); a sibling's restart does not wait for it to succeed. */
static void
test_sup_a_looping_child_does_not_hold_up_its_siblings(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {
        {.id = "loop", .behaviour = &looper, .arg = &looper_cfg},
        kid(&cfg_b, TR_PERMANENT)};
    tr_store_relaxed(&looper_cfg.init_rc, TR_OK);
    tr_store_relaxed(&looper_cfg.attempts, 0);
    /* Never more than a million restarts in 1 ms: it never gives up. */
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 1000000, 1);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    tr_addr loop = addr_of(sup, "loop");

    tr_store_relaxed(&looper_cfg.init_rc, TR_ENOMEM);
    send(loop, MSG_CRASH);
    wait_not_running(sup, "loop");
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, b.id);
    assert_true(tr_load_relaxed(&looper_cfg.attempts) > 2);
    tr_store_relaxed(&looper_cfg.init_rc, TR_OK);
    expect_quiet(20);
}

/*
 * rest_for_one: a round restarts the child that ended and those after it.
 * When a restart in the round fails, those restarted before it keep
 * running, and the retry resumes at the child that failed.
 */
static void
test_sup_rest_for_one_retry_resumes_at_the_failed_child(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    kids[1].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr sup = start_sup(TR_REST_FOR_ONE, kids, 3, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);

    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    assert_int_equal(expect(EV_INIT, "a", TR_OK).addr, a.id);
    expect(EV_INIT, "b", TR_ENOMEM);
    expect_quiet(20); /* a is not stopped again: it runs */
    send(a, MSG_PING);
    expect(EV_MSG, "a", 1);
    assert_int_equal(info_of(sup, "a").status, TR_CHILD_RUNNING);

    tr_store_relaxed(&cfg_b.init_rc, TR_OK);
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20); /* and a was not restarted again */
    assert_int_equal(info_of(sup, "a").restarts, 1);
}

/*
 * OTP's hanging_restart_loop_rest_for_one: b fails to restart and waits
 * for its retry, c waits with it. While b waits it is "already present";
 * terminated by hand, it stays terminated, and so does c, which waited
 * on it; both start again only when asked.
 */
static void
test_sup_child_terminated_in_a_restart_loop_stays_terminated(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    kids[1].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr sup = start_sup(TR_REST_FOR_ONE, kids, 3, 5, 1000);
    tr_child_counts counts;
    tr_addr got;
    int kinds[1];

    expect(EV_INIT, "a", TR_OK);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    watch(&c, 1);
    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "b", TR_ENOMEM);

    /* Waiting to be restarted: present, not running, not restartable. */
    got = TR_ADDR_NONE;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &kids[1], NULL, tr_ms(5000), &got),
        TR_EEXIST);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "b", tr_ms(5000), NULL),
        TR_ERESTARTING);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_ERESTARTING);
    assert_int_equal(info_of(sup, "b").status, TR_CHILD_BACKOFF);
    assert_int_equal(info_of(sup, "c").status, TR_CHILD_BACKOFF); /* b's */
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 3);
    assert_int_equal(counts.active, 1);

    /* Terminated by hand: b ends, and c, which waited on it, with it. */
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    expect_downs(&c, 1, kinds, "");
    assert_true(tr_addr_is_none(info_of(sup, "b").addr));
    assert_true(tr_addr_is_none(info_of(sup, "c").addr));
    tr_store_relaxed(&cfg_b.init_rc, TR_OK);
    assert_int_equal(tr_clock_advance(fx.sys, 5000), TR_OK);
    expect_quiet(20); /* no retry brings either back */
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 3);
    assert_int_equal(counts.active, 1);

    /* Restarting b by hand starts b alone. */
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "b", tr_ms(5000), &got), TR_OK);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, got.id);
    expect_quiet(20);
    assert_int_equal(info_of(sup, "c").status, TR_CHILD_TERMINATED);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "c", tr_ms(5000), &got), TR_OK);
    expect(EV_INIT, "c", TR_OK);
}

/* The same for one_for_one and for a dynamic child (OTP's
 * hanging_restart_loop and hanging_restart_loop_simple). */
static void
test_sup_terminating_a_looping_child_ends_its_loop(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr got;
    size_t n;
    tr_child_info info[2];

    tr_store_relaxed(&cfg_a.init_rc, TR_ENOMEM);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    wait_not_running(sup, "a");
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    expect(EV_INIT, "a", TR_ENOMEM);
    got = TR_ADDR_NONE;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &kids[0], NULL, tr_ms(5000), &got),
        TR_EEXIST);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "a", tr_ms(5000)),
                     TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, a, 5000));
    assert_int_equal(tr_clock_advance(fx.sys, 5000), TR_OK);
    expect_quiet(20);
    assert_true(tr_addr_is_none(info_of(sup, "a").addr));

    /* A dynamic child in the same loop leaves when terminated. */
    tr_child_spec tmpl = kid(&cfg_b, TR_PERMANENT);
    tmpl.id = "pool";
    tmpl.backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr pool =
        start_sup_named("pool", TR_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 5, 1000);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, pool, NULL, &cfg_b, tr_ms(5000), &got),
        TR_OK);
    expect(EV_INIT, "b", TR_OK);
    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    send(got, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    wait_not_running(pool, "1");
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    expect(EV_INIT, "b", TR_ENOMEM);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "1", tr_ms(5000)), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, got, 5000));
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, pool, info, 2, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tr_clock_advance(fx.sys, 5000), TR_OK);
    expect_quiet(20);
}

/* OTP: already_started with the pid for a running child, already_present
 * for one that exists but is not running. */
static void
test_sup_start_child_says_started_or_present(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr got = TR_ADDR_NONE;

    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &kids[0], NULL, tr_ms(5000), &got),
        TR_EALREADY);
    assert_int_equal(got.id, a.id);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "a", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    got = a;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &kids[0], NULL, tr_ms(5000), &got),
        TR_EEXIST);
    assert_true(tr_addr_is_none(got));
}

/* ---- how a supervisor ends ---- */

/* Links to the address it is given; journals its end. */
static int
linker_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    return tr_link(ctx, *(const tr_addr *)arg);
}

static void
linker_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)state;
    note(EV_STOP, "linker", exit->kind, tr_self(ctx).id);
}

static const tr_behaviour linker = {.name = "linker",
                                    .init = linker_init,
                                    .handle = watcher_handle,
                                    .stop = linker_stop};

/* OTP: a supervisor that is stopped exits with `shutdown`, which takes
 * down the linked processes that do not trap exits. */
static void
test_sup_stopped_supervisor_ends_as_shutdown(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr l;
    int kinds[1];

    expect(EV_INIT, "a", TR_OK);
    watch(&sup, 1);
    assert_int_equal(tr_spawn(fx.ctx, &linker, &sup, NULL, &l), TR_OK);
    assert_int_equal(tr_actor_stop(fx.ctx, sup), TR_OK);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    /* The linker (it does not trap exits) fails with it: its stop, and the
     * supervisor's DOWN, come in either order. */
    expect_downs(&sup, 1, kinds, "l");
    assert_int_equal(kinds[0], TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, l, 5000));
    drain_journal();
}

/* Stops only when the test opens the gate (or after 3 s). */
static tr_atomic(int) stop_gate;

static void
gated_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    for (int i = 0; i < 3000 && tr_load_acq(&stop_gate) == 0; i++) {
        sleep_ms(1);
    }
    w_stop(ctx, state, exit);
}

static const tr_behaviour gated_worker = {
    .name = "gated",
    .state_size = sizeof(wstate),
    .init = w_init,
    .handle = w_handle,
    .stop = gated_stop,
};

/* A child stopped in its supervisor's stop sequence ends then: its DOWN
 * and the snapshot do not wait for its older siblings. */
static void
test_sup_child_stopped_in_a_sequence_ends_at_once(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[0].behaviour = &gated_worker;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 5, 1000);
    int kinds[1];
    char out[2048];
    size_t len;

    tr_store_relaxed(&stop_gate, 0);
    expect(EV_INIT, "a", TR_OK);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    watch(&b, 1);
    assert_int_equal(tr_actor_stop(fx.ctx, sup), TR_OK);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    /* a is in its `stop` until the gate opens. */
    expect_downs(&b, 1, kinds, "");
    assert_int_equal(kinds[0], TR_EXIT_SHUTDOWN);
    assert_int_equal(
        tr_inspect_snapshot(fx.sys, TR_INSPECT_TEXT, out, sizeof(out), &len),
        TR_OK);
    assert_non_null(strstr(out, "/top/b (worker) stopped"));
    assert_non_null(strstr(out, "/top/a (gated) stopping"));
    tr_store_rel(&stop_gate, 1);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
}

/* ---- intensity ---- */

/* A period of 0 is the default period, 5000 ms. */
static void
test_sup_zero_period_is_the_default_period(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 2, 0);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};

    for (int i = 0; i < 2; i++) {
        send(a, MSG_CRASH);
        expect(EV_STOP, "a", TR_EXIT_FAILED);
        expect(EV_INIT, "a", TR_OK);
        assert_int_equal(tr_clock_advance(fx.sys, 2000), TR_OK);
    }
    /* t=4000: both restarts are within 5000 ms: a third is too many. */
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 5000));
}

/* ---- the run-time API ---- */

static void
test_sup_which_children_counts_without_room(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 3, 5, 1000);
    size_t n = 0;

    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, sup, NULL, 0, &n, tr_ms(5000)),
        TR_OK);
    assert_int_equal(n, 3);
}

/* OTP: terminating a dynamic child that has gone is ok. */
static void
test_sup_terminating_a_gone_dynamic_child_is_ok(void **state)
{
    (void)state;
    tr_child_spec tmpl = kid(&cfg_a, TR_TRANSIENT);
    tmpl.id = "pool";
    tr_addr pool = start_sup(TR_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 5, 1000);
    tr_addr w;

    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, pool, NULL, &cfg_a, tr_ms(5000), &w),
        TR_OK);
    expect(EV_INIT, "a", TR_OK);
    send(w, MSG_QUIT);
    expect(EV_STOP, "a", TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(fx.sys, w, 5000));
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "1", tr_ms(5000)), TR_OK);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "1", tr_ms(5000)), TR_OK);
    /* Never started: not found. */
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "2", tr_ms(5000)),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "01", tr_ms(5000)),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_terminate_child_wait(fx.ctx, pool, "pool", tr_ms(5000)),
        TR_ENOTFOUND);
}

/* A child terminated by hand stays down through a one_for_all round. */
static void
test_sup_round_leaves_a_terminated_child_down(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_sup(TR_ONE_FOR_ALL, kids, 3, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);

    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20);
    assert_int_equal(info_of(sup, "b").status, TR_CHILD_TERMINATED);
}

/* ---- limits ---- */

static void
expect_refused(const tr_sup_spec *spec, const char *field)
{
    char why[160];
    assert_int_equal(tr_sup_spec_check(spec, why, sizeof(why)), TR_EINVAL);
    if (strstr(why, field) == NULL) {
        fail_msg("the reason '%s' does not name %s", why, field);
    }
}

static void
test_sup_numeric_fields_have_bounds(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_sup_spec spec = {.children = kids, .len = 1};
    char why[160];
    const int time_max = (int)TR_SUP_TIME_MAX_MS;

    spec.max_restarts = UINT32_MAX; /* its ring would wrap to 0 */
    expect_refused(&spec, "max_restarts");
    spec.max_restarts = TR_SUP_RESTARTS_MAX + 1;
    expect_refused(&spec, "max_restarts");
    spec.max_restarts = TR_SUP_RESTARTS_MAX;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    spec.period_ms = TR_SUP_TIME_MAX_MS + 1;
    expect_refused(&spec, "period_ms");
    spec.period_ms = TR_SUP_TIME_MAX_MS;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    spec.len = (size_t)TR_SUP_CHILDREN_MAX + 1; /* the array is not read */
    expect_refused(&spec, "len");
    spec.len = 1;

    kids[0].shutdown_ms = time_max + 1;
    expect_refused(&spec, "shutdown_ms");
    kids[0].shutdown_ms = time_max;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    kids[0].mailbox_cap = TR_MAILBOX_CAP_MAX + 1;
    expect_refused(&spec, "mailbox_cap");
    kids[0].mailbox_cap = TR_MAILBOX_CAP_MAX;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    kids[0].backoff =
        (tr_backoff){.min_ms = 1, .max_ms = TR_SUP_TIME_MAX_MS + 1};
    expect_refused(&spec, "backoff.max_ms");
    kids[0].backoff = (tr_backoff){.min_ms = 3, .max_ms = 2};
    expect_refused(&spec, "backoff.min_ms");
    kids[0].backoff = (tr_backoff){
        .min_ms = 1, .max_ms = 2, .jitter_pct = TR_SUP_JITTER_MAX + 1};
    expect_refused(&spec, "backoff.jitter_pct");
    kids[0].backoff = (tr_backoff){
        .min_ms = 1, .max_ms = 2, .reset_ms = TR_SUP_TIME_MAX_MS + 1};
    expect_refused(&spec, "backoff.reset_ms");
    kids[0].backoff = (tr_backoff){.jitter_pct = 50}; /* and no backoff */
    expect_refused(&spec, "backoff.jitter_pct");
    kids[0].backoff = (tr_backoff){.min_ms = TR_SUP_TIME_MAX_MS,
                                   .max_ms = TR_SUP_TIME_MAX_MS,
                                   .jitter_pct = TR_SUP_JITTER_MAX,
                                   .reset_ms = TR_SUP_TIME_MAX_MS};
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);

    /* tr_sup_start refuses a bad spec with the same reason. */
    char start_why[160] = "unchanged";
    tr_sup_opts opts = {.why = start_why, .why_cap = sizeof(start_why)};
    kids[0].backoff.jitter_pct = 200; /* the delay would wrap */
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EINVAL);
    assert_non_null(strstr(start_why, "child 'a': backoff.jitter_pct 200"));
    kids[0].backoff.jitter_pct = 0;
    spec.max_restarts = UINT32_MAX;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, NULL), TR_EINVAL);
    assert_non_null(strstr(start_why, "max_restarts 4294967295 is over"));
    expect_quiet(10); /* nothing was started */
    spec.max_restarts = 0;
    tr_addr sup;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, &opts, &sup), TR_OK);
    assert_string_equal(start_why, "");
    expect(EV_INIT, "a", TR_OK);
    /* A bad child added at run time is refused as well. */
    tr_child_spec more = kid(&cfg_b, TR_PERMANENT);
    more.shutdown_ms = time_max + 1;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &more, NULL, tr_ms(5000), NULL),
        TR_EINVAL);
}

/* The largest intensity works: a restart is counted in its window. */
static void
test_sup_largest_intensity_restarts(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    tr_sup_spec spec = {.name = "top",
                        .max_restarts = 1000000,
                        .period_ms = 86400000,
                        .children = kids,
                        .len = 1};
    tr_addr sup;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, &sup), TR_OK);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    for (int i = 0; i < 3; i++) {
        send(a, MSG_CRASH);
        expect(EV_STOP, "a", TR_EXIT_FAILED);
        expect(EV_INIT, "a", TR_OK);
    }
}

/* ---- requests to an actor that is not a supervisor ---- */

static void
test_sup_api_refuses_an_actor_that_is_not_a_supervisor(void **state)
{
    (void)state;
    tr_addr w;
    tr_addr got = TR_ADDR_NONE;
    tr_child_spec d = kid(&cfg_d, TR_PERMANENT);
    tr_child_info info[2];
    tr_child_counts counts;
    size_t n = 7;

    assert_int_equal(tr_spawn(fx.ctx, &worker, &cfg_a, NULL, &w), TR_OK);
    expect(EV_INIT, "a", TR_OK);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, w, &d, NULL, tr_ms(1000), &got),
        TR_ENOTSUP);
    assert_true(tr_addr_is_none(got));
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, w, NULL, &cfg_d, tr_ms(1000), NULL),
        TR_ENOTSUP);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, w, "d", tr_ms(1000)),
                     TR_ENOTSUP);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, w, "d", tr_ms(1000), NULL),
        TR_ENOTSUP);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, w, "d", tr_ms(1000)),
                     TR_ENOTSUP);
    assert_int_equal(
        tr_sup_which_children_wait(fx.ctx, w, info, 2, &n, tr_ms(1000)),
        TR_ENOTSUP);
    assert_int_equal(n, 7);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, w, &counts, tr_ms(1000)),
        TR_ENOTSUP);
    expect_quiet(50); /* none of it reached the worker's handler */
    send(w, MSG_PING);
    expect(EV_MSG, "a", 1);

    /* An address that has ended is no actor at all. */
    assert_int_equal(tr_actor_stop(fx.ctx, w), TR_OK);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, w, 5000));
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, w, &counts, tr_ms(1000)),
        TR_ENOACTOR);
}

/* ---- a start whose caller gave up ---- */

static tr_atomic(int) init_gate;

static int
slow_init(tr_ctx *ctx, void *state, const void *arg)
{
    for (int i = 0; i < 5000 && tr_load_acq(&init_gate) == 0; i++) {
        sleep_ms(1);
    }
    return w_init(ctx, state, arg);
}

static const tr_behaviour slow_worker = {
    .name = "slow",
    .state_size = sizeof(wstate),
    .init = slow_init,
    .handle = w_handle,
    .stop = w_stop,
};

typedef struct specs_arg {
    tr_addr sup;
    uint32_t specs;
} specs_arg;

static bool
has_specs(void *arg)
{
    specs_arg *a = arg;
    tr_child_counts counts;
    return tr_sup_count_children_wait(fx.ctx, a->sup, &counts, tr_ms(5000)) ==
               TR_OK &&
           counts.specs == a->specs;
}

/* The start timed out: it is undone, whichever way it went. */
static void
test_sup_start_child_that_timed_out_is_undone(void **state)
{
    (void)state;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, NULL, 0, 5, 1000);
    tr_child_spec d = kid(&cfg_d, TR_PERMANENT);
    d.behaviour = &slow_worker;
    tr_addr got = TR_ADDR_NONE;
    specs_arg none = {sup, 0};

    tr_store_relaxed(&init_gate, 0);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(50), &got),
        TR_ETIMEDOUT);
    assert_true(tr_addr_is_none(got));
    tr_store_rel(&init_gate, 1);
    expect(EV_INIT, "d", TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_until(has_specs, &none, 5000));
    assert_live(1);

    /* The same for a dynamic child. */
    tr_child_spec tmpl = kid(&cfg_c, TR_PERMANENT);
    tmpl.id = "pool";
    tmpl.behaviour = &slow_worker;
    tr_addr pool =
        start_sup_named("pool", TR_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 5, 1000);
    specs_arg none2 = {pool, 0};
    tr_store_relaxed(&init_gate, 0);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, pool, NULL, &cfg_c, tr_ms(50), &got),
        TR_ETIMEDOUT);
    tr_store_rel(&init_gate, 1);
    expect(EV_INIT, "c", TR_OK);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_until(has_specs, &none2, 5000));
    assert_live(2);
}

/* Out of memory in the caller, or wherever the request had got to: never a
 * timeout that did not happen, and nothing half done. */
static void
test_sup_start_child_out_of_memory_is_enomem(void **state)
{
    (void)state;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, NULL, 0, 5, 1000);
    /* A child that journals nothing: the journal allocates. */
    tr_child_spec d = {.id = "d", .behaviour = &looper, .arg = &looper_cfg};
    specs_arg none = {sup, 0};

    for (long n = 0; n < 3; n++) {
        tr_addr got = TR_ADDR_NONE;
        tr__alloc_fail_after(n);
        int rc =
            tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), &got);
        tr__alloc_fail_after(-1);
        /* The caller's own allocations: the call's record, the request,
         * and (the request sent) its timer; the failing allocation may
         * also land in the supervisor, which then could not answer
         * (TR_ECLOSED). Never a timeout that did not happen. */
        if (rc != TR_ENOMEM && rc != TR_ECLOSED) {
            fail_msg("failing allocation %ld: %s", n, tr_errname(rc));
        }
        assert_true(tr_addr_is_none(got));
        assert_true(tr_test_wait_until(has_specs, &none, 5000));
        assert_live(1);
    }
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(5000), NULL),
        TR_OK);
}

/* ---- a stop sequence with no memory left ---- */

static tr_atomic(int) oom_stops;

/* Fails after taking all memory away (the allocation failure hook). */
static int
oom_trigger_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr__alloc_fail_after(0);
    return TR_EIO;
}

static const tr_behaviour oom_trigger = {.name = "oom_trigger",
                                         .handle = oom_trigger_handle};

/* Its sibling gives the memory back when it is asked to stop. */
static int
oom_idle_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static void
oom_bystander_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    tr__alloc_fail_after(-1);
    tr_faa_seqcst(&oom_stops, 1);
}

static const tr_behaviour oom_bystander = {.name = "oom_bystander",
                                           .handle = oom_idle_handle,
                                           .stop = oom_bystander_stop};

static bool
oom_stopped(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&oom_stops) >= 1;
}

/*
 * one_for_all: a child fails while no allocation succeeds, so the round's
 * stop request to its sibling, and the deadline that would kill it, find
 * no memory. The request comes from the system's reserve: the sibling
 * stops (and gives the memory back), and the round restarts both. Before
 * the reserve the sibling ran on and the round never ended.
 */
static void
test_sup_a_round_stops_siblings_with_no_memory_left(void **state)
{
    (void)state;
    tr_store_seqcst(&oom_stops, 0);
    tr_child_spec kids[2] = {
        {.id = "b", .behaviour = &oom_bystander, .restart = TR_PERMANENT},
        {.id = "t", .behaviour = &oom_trigger, .restart = TR_PERMANENT}};
    tr_addr sup = start_sup(TR_ONE_FOR_ALL, kids, 2, 5, 1000);
    tr_child_counts counts;

    assert_int_equal(tr_send(fx.ctx, addr_of(sup, "t"), 1, NULL, 0), TR_OK);
    bool stopped = tr_test_wait_until(oom_stopped, NULL, 5000);
    tr__alloc_fail_after(-1);
    assert_true(stopped);
    /* The round goes on: both run again. */
    for (int i = 0; i < 500; i++) {
        assert_int_equal(
            tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)),
            TR_OK);
        if (counts.active == 2) {
            break;
        }
        sched_yield();
    }
    assert_int_equal(counts.active, 2);
}

/*
 * one_for_all: a failed round is retried whole (those restarted before the
 * failure are stopped again); terminating the child it waits on ends the
 * round, and the children that waited in it stay down.
 */
static void
test_sup_one_for_all_retries_the_whole_round(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT),
                             kid(&cfg_c, TR_PERMANENT)};
    kids[1].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    tr_addr sup = start_sup(TR_ONE_FOR_ALL, kids, 3, 5, 1000);
    tr_child_counts counts;
    tr_addr w[3];
    int kinds[2];

    w[0] = (tr_addr){.id = expect(EV_INIT, "a", TR_OK).addr};
    w[1] = (tr_addr){.id = expect(EV_INIT, "b", TR_OK).addr};
    w[2] = (tr_addr){.id = expect(EV_INIT, "c", TR_OK).addr};
    tr_store_relaxed(&cfg_b.init_rc, TR_ENOMEM);
    send(w[2], MSG_CRASH);
    expect(EV_STOP, "c", TR_EXIT_FAILED);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_ENOMEM);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN); /* the round is undone */
    expect_quiet(20);
    /* The retry, after b's delay, is the whole round again. */
    assert_int_equal(tr_clock_advance(fx.sys, 1000), TR_OK);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_ENOMEM);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect_quiet(20);

    /* Terminating b ends the wait: a and c end with it. */
    tr_addr ac[2] = {w[0], w[2]};
    watch(ac, 2);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, w[1], 5000));
    expect_downs(ac, 2, kinds, "");
    assert_int_equal(tr_clock_advance(fx.sys, 5000), TR_OK);
    expect_quiet(20);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 3);
    assert_int_equal(counts.active, 0);
}

typedef struct terminator {
    pthread_t thread;
    tr_addr sup;
    const char *id;
    tr_atomic(int) rc;
} terminator;

static void *
terminate_in_thread(void *arg)
{
    terminator *t = arg;
    tr_store_rel(&t->rc, tr_sup_terminate_child_wait(fx.ctx, t->sup, t->id,
                                                     tr_ms(10000)));
    return NULL;
}

/* one_for_one: while a slow child is being terminated, a sibling that
 * fails is restarted at once, not after the terminate. */
static void
test_sup_sibling_restarts_while_a_child_is_terminated(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[0].behaviour = &gated_worker;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 5, 1000);
    terminator t = {.sup = sup, .id = "a"};

    tr_store_relaxed(&stop_gate, 0);
    tr_store_relaxed(&t.rc, 1);
    expect(EV_INIT, "a", TR_OK);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    assert_int_equal(pthread_create(&t.thread, NULL, terminate_in_thread, &t),
                     0);
    wait_not_running(sup, "a"); /* a is stopping: in its gated `stop` */
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    assert_int_equal(expect(EV_INIT, "b", TR_OK).addr, b.id);
    assert_int_equal(tr_load_acq(&t.rc), 1); /* a is still stopping */
    tr_store_rel(&stop_gate, 1);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    assert_int_equal(pthread_join(t.thread, NULL), 0);
    assert_int_equal(tr_load_acq(&t.rc), TR_OK);
    assert_int_equal(info_of(sup, "b").status, TR_CHILD_RUNNING);
}

/* A restart_child that timed out is undone too: the child is terminated
 * again, its spec kept. */
static void
test_sup_restart_child_that_timed_out_is_undone(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_d, TR_PERMANENT)};
    kids[0].behaviour = &slow_worker;
    tr_store_relaxed(&init_gate, 1);
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_addr got = TR_ADDR_NONE;
    tr_child_counts counts;

    expect(EV_INIT, "d", TR_OK);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "d", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    tr_store_relaxed(&init_gate, 0);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "d", tr_ms(50), &got),
        TR_ETIMEDOUT);
    tr_store_rel(&init_gate, 1);
    expect(EV_INIT, "d", TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    wait_down(sup, "d");
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 1);
    assert_int_equal(counts.active, 0);
    assert_true(tr_addr_is_none(info_of(sup, "d").addr));
    assert_live(1);
}

/* ---- the work on one child does not grow with its siblings ---- */

/* Children looked at by `sup` so far (tr_sup.visits). */
static uint64_t
visits_of(tr_addr sup)
{
    tr_actor *a = tr__table_slot(fx.sys->table, sup.id);
    const tr_sup *s = *(tr_sup *const *)tr__actor_state(a);
    return tr_load_relaxed(&s->visits);
}

static bool
restarted_once(void *arg)
{
    (void)arg;
    return tr_load_relaxed(&looper_cfg.attempts) == 1;
}

/*
 * A supervisor with `n` children; the children it looks at while it
 * starts one more, then, for one child in the middle: refuses a duplicate,
 * restarts it after a crash, terminates it, restarts it by hand,
 * terminates and deletes it.
 */
static uint64_t
work_on_one_child(uint32_t n)
{
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, NULL, 0, 5, 1000);
    tr_child_spec k = {.behaviour = &looper, .arg = &looper_cfg};
    char id[16];
    tr_addr mid = TR_ADDR_NONE;
    tr_addr got;

    tr_store_relaxed(&looper_cfg.init_rc, TR_OK);
    for (uint32_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "k%u", i);
        k.id = id;
        assert_int_equal(
            tr_sup_start_child_wait(fx.ctx, sup, &k, NULL, tr_ms(5000), &got),
            TR_OK);
        if (i == n / 2) {
            mid = got;
        }
    }
    uint64_t before = visits_of(sup);
    k.id = "new";
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &k, NULL, tr_ms(5000), NULL),
        TR_OK);
    snprintf(id, sizeof(id), "k%u", n / 2);
    k.id = id;
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &k, NULL, tr_ms(5000), NULL),
        TR_EALREADY);
    tr_store_relaxed(&looper_cfg.attempts, 0);
    send(mid, MSG_CRASH);
    assert_true(tr_test_wait_until(restarted_once, NULL, 5000));
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, id, tr_ms(5000)),
                     TR_OK);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, id, tr_ms(5000), NULL), TR_OK);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, id, tr_ms(5000)),
                     TR_OK);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, id, tr_ms(5000)),
                     TR_OK);
    uint64_t work = visits_of(sup) - before;
    assert_int_equal(tr_actor_stop(fx.ctx, sup), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, sup, 30000));
    return work;
}

static void
test_sup_work_on_one_child_does_not_grow_with_its_siblings(void **state)
{
    (void)state;
    uint64_t small = work_on_one_child(100);
    uint64_t big = work_on_one_child(4000);

    print_message("children looked at: %llu among 100, %llu among 4000\n",
                  (unsigned long long)small, (unsigned long long)big);
    /* A few probes of a hash table each: the same whatever the number. */
    assert_true(big <= 2 * small + 16);
    assert_true(big < 100);
}

/* ---- one child: find_child and get_childspec ---- */

typedef struct status_arg {
    tr_addr sup;
    const char *id;
    tr_child_status want;
} status_arg;

static bool
has_status(void *arg)
{
    status_arg *a = arg;
    tr_child_info info;
    return tr_sup_find_child_wait(fx.ctx, a->sup, a->id, tr_ms(5000), &info) ==
               TR_OK &&
           info.status == a->want;
}

static void
wait_status(tr_addr sup, const char *id, tr_child_status want)
{
    status_arg a = {sup, id, want};
    assert_true(tr_test_wait_until(has_status, &a, 5000));
}

static tr_child_info
find(tr_addr sup, const char *id)
{
    tr_child_info info;
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, id, tr_ms(5000), &info), TR_OK);
    return info;
}

/* A child's status through its life: running, waiting out its backoff
 * (keeping its address), running again, stopping, terminated. */
static void
test_sup_find_child_follows_its_status(void **state)
{
    (void)state;
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    kids[0].backoff = (tr_backoff){.min_ms = 1000, .max_ms = 1000};
    kids[1].behaviour = &gated_worker;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 2, 5, 1000);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    terminator t = {.sup = sup, .id = "b"};
    tr_child_info info = find(sup, "a");

    assert_string_equal(info.id, "a");
    assert_int_equal(info.addr.id, a.id);
    assert_int_equal(info.kind, TR_WORKER);
    assert_int_equal(info.restart, TR_PERMANENT);
    assert_int_equal(info.status, TR_CHILD_RUNNING);
    assert_int_equal(info.restarts, 0);

    /* In backoff until its delay is up, at the address it keeps. */
    send(a, MSG_CRASH);
    expect(EV_STOP, "a", TR_EXIT_FAILED);
    wait_status(sup, "a", TR_CHILD_BACKOFF);
    assert_int_equal(find(sup, "a").addr.id, a.id);
    assert_int_equal(tr_clock_advance(fx.sys, 999), TR_OK);
    expect_quiet(20);
    assert_int_equal(find(sup, "a").status, TR_CHILD_BACKOFF);
    assert_int_equal(tr_clock_advance(fx.sys, 1), TR_OK);
    expect(EV_INIT, "a", TR_OK);
    wait_status(sup, "a", TR_CHILD_RUNNING);
    assert_int_equal(find(sup, "a").restarts, 1);

    /* Stopping while its `stop` waits at the gate, then terminated. */
    tr_store_relaxed(&stop_gate, 0);
    tr_store_relaxed(&t.rc, 1);
    assert_int_equal(pthread_create(&t.thread, NULL, terminate_in_thread, &t),
                     0);
    wait_status(sup, "b", TR_CHILD_STOPPING);
    assert_int_equal(find(sup, "b").addr.id, b.id);
    tr_store_rel(&stop_gate, 1);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    assert_int_equal(pthread_join(t.thread, NULL), 0);
    assert_int_equal(tr_load_acq(&t.rc), TR_OK);
    info = find(sup, "b");
    assert_int_equal(info.status, TR_CHILD_TERMINATED);
    assert_true(tr_addr_is_none(info.addr));
}

/* OTP's get_childspec: a copy the caller keeps, which starts the child
 * again after its spec was deleted. Unknown and bad ids. */
static void
test_sup_get_childspec_gives_a_copy_to_keep(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_b, TR_TRANSIENT)};
    kids[0].shutdown_ms = 300;
    kids[0].mailbox_cap = 16;
    kids[0].backoff = (tr_backoff){
        .min_ms = 10, .max_ms = 400, .jitter_pct = 5, .reset_ms = 1000};
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    tr_child_spec_buf got, kept;
    tr_child_info info;

    expect(EV_INIT, "b", TR_OK);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "b", tr_ms(5000), &got), TR_OK);
    assert_ptr_equal(got.spec.id, got.id);
    assert_string_equal(got.id, "b");
    assert_ptr_equal(got.spec.behaviour, &worker);
    assert_ptr_equal(got.spec.arg, &cfg_b);
    assert_int_equal(got.spec.restart, TR_TRANSIENT);
    assert_int_equal(got.spec.kind, TR_WORKER);
    assert_int_equal(got.spec.shutdown_ms, 300);
    assert_int_equal(got.spec.mailbox_cap, 16);
    assert_memory_equal(&got.spec.backoff, &kids[0].backoff,
                        sizeof(tr_backoff));

    kept = got;
    kept.spec.id = kept.id;
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_sup_delete_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "b", tr_ms(5000), &got),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "b", tr_ms(5000), &info),
        TR_ENOTFOUND);
    assert_int_equal(tr_sup_start_child_wait(fx.ctx, sup, &kept.spec, NULL,
                                             tr_ms(5000), NULL),
                     TR_OK);
    expect(EV_INIT, "b", TR_OK);
    assert_int_equal(find(sup, "b").status, TR_CHILD_RUNNING);

    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "nope", tr_ms(5000), &got),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "nope", tr_ms(5000), &info),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, NULL, tr_ms(5000), &got),
        TR_EINVAL);
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "", tr_ms(5000), &info), TR_EINVAL);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "b", tr_ms(5000), NULL),
        TR_EINVAL);
    assert_int_equal(tr_sup_find_child_wait(fx.ctx, sup, "b", TR_NOWAIT, &info),
                     TR_EINVAL);
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, TR_ADDR_NONE, "b", tr_ms(100), &info),
        TR_ENOACTOR);
}

/* simple_one_for_one children are found by ordinal, with their own start
 * argument; the template is no child, and a child that has gone is found
 * no more. */
static void
test_sup_find_child_by_ordinal(void **state)
{
    (void)state;
    tr_child_spec tmpl = {.id = "pool",
                          .behaviour = &worker,
                          .arg = &cfg_d,
                          .restart = TR_TRANSIENT};
    tr_addr sup = start_sup(TR_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 5, 1000);
    wcfg *args[2] = {&cfg_a, &cfg_b};
    tr_addr w[2];
    tr_child_spec_buf got;
    tr_child_info info;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_sup_start_child_wait(fx.ctx, sup, NULL, args[i],
                                                 tr_ms(5000), &w[i]),
                         TR_OK);
        expect(EV_INIT, args[i]->id, TR_OK);
    }
    info = find(sup, "2");
    assert_string_equal(info.id, "2");
    assert_int_equal(info.addr.id, w[1].id);
    assert_int_equal(info.status, TR_CHILD_RUNNING);
    assert_int_equal(info.restart, TR_TRANSIENT);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "2", tr_ms(5000), &got), TR_OK);
    assert_string_equal(got.spec.id, "2");
    assert_ptr_equal(got.spec.arg, &cfg_b);
    assert_ptr_equal(got.spec.behaviour, &worker);
    assert_int_equal(got.spec.restart, TR_TRANSIENT);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "1", tr_ms(5000), &got), TR_OK);
    assert_ptr_equal(got.spec.arg, &cfg_a);

    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "pool", tr_ms(5000), &info),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "3", tr_ms(5000), &info),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, sup, "0", tr_ms(5000), &got),
        TR_ENOTFOUND);

    send(w[0], MSG_QUIT); /* transient, ended normally: it leaves */
    expect(EV_STOP, "a", TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(fx.sys, w[0], 5000));
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "1", tr_ms(5000), &info),
        TR_ENOTFOUND);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, NULL, &cfg_c, tr_ms(5000), NULL),
        TR_OK);
    expect(EV_INIT, "c", TR_OK);
    assert_int_equal(find(sup, "3").status, TR_CHILD_RUNNING);
}

/* A start_child that waits behind a stop sequence and times out: its id
 * went with the request, so the caller may reuse or free the string at
 * once. The start is carried out under that id, then undone. */
static void
test_sup_start_child_takes_a_copy_of_its_id(void **state)
{
    (void)state;
    tr_child_spec kids[1] = {kid(&cfg_a, TR_PERMANENT)};
    kids[0].behaviour = &gated_worker;
    tr_addr sup = start_sup(TR_ONE_FOR_ONE, kids, 1, 5, 1000);
    terminator t = {.sup = sup, .id = "a"};
    tr_child_spec d = kid(&cfg_d, TR_PERMANENT);
    char *id = malloc(2);
    specs_arg one = {sup, 1};

    assert_non_null(id);
    memcpy(id, "d", 2);
    d.id = id;
    expect(EV_INIT, "a", TR_OK);
    tr_store_relaxed(&stop_gate, 0);
    tr_store_relaxed(&t.rc, 1);
    assert_int_equal(pthread_create(&t.thread, NULL, terminate_in_thread, &t),
                     0);
    wait_status(sup, "a", TR_CHILD_STOPPING);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, sup, &d, NULL, tr_ms(50), NULL),
        TR_ETIMEDOUT);
    id[0] = '\0'; /* an id no spec may have */
    free(id);
    tr_store_rel(&stop_gate, 1);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    assert_int_equal(pthread_join(t.thread, NULL), 0);
    assert_int_equal(tr_load_acq(&t.rc), TR_OK);
    expect(EV_INIT, "d", TR_OK);
    expect(EV_STOP, "d", TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_until(has_specs, &one, 5000));
}

/*
 * A temporary bystander of a one_for_all round that ends by itself before
 * the round comes to stop it: the round would not restart it, so it ends
 * at once (its DOWN, its record gone) instead of waiting, held, for the
 * supervisor's end.
 */
static void
test_sup_temporary_bystander_ending_in_a_round_ends_at_once(void **state)
{
    (void)state;
    tr_child_spec kids[4] = {
        kid(&cfg_a, TR_PERMANENT), kid(&cfg_d, TR_TEMPORARY),
        kid(&cfg_b, TR_PERMANENT), kid(&cfg_c, TR_PERMANENT)};
    kids[2].behaviour = &gated_worker;
    tr_addr sup = start_sup(TR_ONE_FOR_ALL, kids, 4, 5, 1000);
    tr_child_counts counts;
    tr_child_info info;

    expect(EV_INIT, "a", TR_OK);
    tr_addr d = {.id = expect(EV_INIT, "d", TR_OK).addr};
    expect(EV_INIT, "b", TR_OK);
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    tr_store_relaxed(&stop_gate, 0);
    send(c, MSG_CRASH);
    expect(EV_STOP, "c", TR_EXIT_FAILED);
    wait_status(sup, "b", TR_CHILD_STOPPING); /* the round waits on b */
    assert_int_equal(find(sup, "c").status, TR_CHILD_RESTARTING);
    send(d, MSG_QUIT);
    expect(EV_STOP, "d", TR_EXIT_NORMAL);
    assert_true(tr_test_wait_stopped(fx.sys, d, 5000));
    assert_int_equal(
        tr_sup_find_child_wait(fx.ctx, sup, "d", tr_ms(5000), &info),
        TR_ENOTFOUND);
    tr_store_rel(&stop_gate, 1);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 3);
    assert_int_equal(counts.active, 3);
}

/* ---- significant children and auto_shutdown (OTP 24) ---- */

static tr_child_spec
significant(wcfg *c, tr_restart restart)
{
    tr_child_spec k = kid(c, restart);
    k.significant = true;
    return k;
}

static tr_addr
start_auto(tr_strategy strategy, tr_auto_shutdown how, tr_child_spec *kids,
           size_t n)
{
    tr_sup_spec spec = {.name = "top",
                        .strategy = strategy,
                        .max_restarts = 5,
                        .period_ms = 1000,
                        .children = kids,
                        .len = n,
                        .auto_shutdown = how};
    tr_addr sup;
    assert_int_equal(tr_sup_start(fx.ctx, &spec, NULL, &sup), TR_OK);
    return sup;
}

/* Only transient and temporary children can be significant, and only
 * where auto_shutdown is not never; a start_child is checked against the
 * supervisor's. */
static void
test_sup_significant_specs_follow_otps_rules(void **state)
{
    (void)state;
    char why[160];
    tr_child_spec kids[2] = {significant(&cfg_a, TR_PERMANENT),
                             kid(&cfg_b, TR_PERMANENT)};
    tr_sup_spec spec = {
        .children = kids, .len = 2, .auto_shutdown = TR_AUTO_SHUTDOWN_ANY};

    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_non_null(strstr(why, "child 'a' is significant but permanent"));
    kids[0].restart = TR_TRANSIENT;
    spec.auto_shutdown = TR_AUTO_SHUTDOWN_NEVER;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_string_equal(why, "child 'a' is significant but the supervisor's "
                             "auto_shutdown is never");
    spec.auto_shutdown = (tr_auto_shutdown)3;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    assert_string_equal(why, "unknown auto_shutdown 3");
    spec.auto_shutdown = TR_AUTO_SHUTDOWN_ALL;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    kids[0].restart = TR_TEMPORARY;
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);
    kids[0].significant = false; /* auto_shutdown with none: valid */
    assert_int_equal(tr_sup_spec_check(&spec, why, sizeof(why)), TR_OK);

    tr_sup_spec pool = {.strategy = TR_SIMPLE_ONE_FOR_ONE,
                        .children = kids,
                        .len = 1,
                        .auto_shutdown = TR_AUTO_SHUTDOWN_ALL};
    kids[0] = significant(&cfg_a, TR_PERMANENT);
    assert_int_equal(tr_sup_spec_check(&pool, why, sizeof(why)), TR_EINVAL);

    tr_child_spec d = significant(&cfg_d, TR_TRANSIENT);
    tr_child_spec_buf got;
    tr_addr never = start_sup_named("never", TR_ONE_FOR_ONE, NULL, 0, 5, 1000);
    tr_addr any = start_auto(TR_ONE_FOR_ONE, TR_AUTO_SHUTDOWN_ANY, NULL, 0);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, never, &d, NULL, tr_ms(5000), NULL),
        TR_EINVAL);
    assert_int_equal(
        tr_sup_start_child_wait(fx.ctx, any, &d, NULL, tr_ms(5000), NULL),
        TR_OK);
    expect(EV_INIT, "d", TR_OK);
    assert_int_equal(
        tr_sup_get_childspec_wait(fx.ctx, any, "d", tr_ms(5000), &got), TR_OK);
    assert_true(got.spec.significant);
}

/* any_significant: a transient child's abnormal end restarts it; its
 * normal end shuts the supervisor down, which stops the others in reverse
 * order and ends as shutdown. A top-level tree is then over. */
static void
test_sup_any_significant_ends_the_tree_on_a_normal_end(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {kid(&cfg_a, TR_PERMANENT),
                             significant(&cfg_b, TR_TRANSIENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_auto(TR_ONE_FOR_ONE, TR_AUTO_SHUTDOWN_ANY, kids, 3);
    expect(EV_INIT, "a", TR_OK);
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    expect(EV_INIT, "c", TR_OK);
    watch(&sup, 1);

    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_INIT, "b", TR_OK);
    expect_quiet(20);
    send(b, MSG_QUIT);
    expect(EV_STOP, "b", TR_EXIT_NORMAL);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect(EV_DOWN, "down", TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_system_wait(fx.sys, tr_ms(5000)), TR_OK);
    assert_int_equal(tr_load_relaxed(&top_failures), 0);
}

/* all_significant: not before the last significant child has ended; a
 * temporary child's end counts however it ended. */
static void
test_sup_all_significant_waits_for_the_last(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {significant(&cfg_a, TR_TRANSIENT),
                             significant(&cfg_b, TR_TEMPORARY),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_auto(TR_ONE_FOR_ONE, TR_AUTO_SHUTDOWN_ALL, kids, 3);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr b = {.id = expect(EV_INIT, "b", TR_OK).addr};
    expect(EV_INIT, "c", TR_OK);
    watch(&sup, 1);

    send(a, MSG_QUIT);
    expect(EV_STOP, "a", TR_EXIT_NORMAL);
    wait_status(sup, "a", TR_CHILD_TERMINATED);
    expect_quiet(20);
    send(b, MSG_CRASH);
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_DOWN, "down", TR_EXIT_SHUTDOWN);
    assert_int_equal(tr_system_wait(fx.sys, tr_ms(5000)), TR_OK);
}

/* A significant child the supervisor stops itself (terminate_child, a
 * one_for_all round's bystander) does not shut it down; restarted by hand,
 * the child's own end still does. */
static void
test_sup_significant_child_stopped_by_its_supervisor_counts_not(void **state)
{
    (void)state;
    tr_child_spec kids[3] = {significant(&cfg_a, TR_TEMPORARY),
                             significant(&cfg_b, TR_TRANSIENT),
                             kid(&cfg_c, TR_PERMANENT)};
    tr_addr sup = start_auto(TR_ONE_FOR_ALL, TR_AUTO_SHUTDOWN_ANY, kids, 3);
    tr_child_counts counts;
    tr_addr b;

    expect(EV_INIT, "a", TR_OK);
    expect(EV_INIT, "b", TR_OK);
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "b", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "b", TR_EXIT_SHUTDOWN);
    send(c, MSG_CRASH);
    expect(EV_STOP, "c", TR_EXIT_FAILED);
    expect(EV_STOP, "a", TR_EXIT_SHUTDOWN);
    expect(EV_INIT, "c", TR_OK);
    expect_quiet(20);
    assert_int_equal(
        tr_sup_count_children_wait(fx.ctx, sup, &counts, tr_ms(5000)), TR_OK);
    assert_int_equal(counts.specs, 2); /* a, temporary, is gone */
    assert_int_equal(counts.active, 1);

    watch(&sup, 1);
    assert_int_equal(
        tr_sup_restart_child_wait(fx.ctx, sup, "b", tr_ms(5000), &b), TR_OK);
    expect(EV_INIT, "b", TR_OK);
    send(b, MSG_QUIT);
    expect(EV_STOP, "b", TR_EXIT_NORMAL);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect(EV_DOWN, "down", TR_EXIT_SHUTDOWN);
}

/* simple_one_for_one, all_significant: every child is significant (the
 * template is); the supervisor ends when the last has ended by itself. */
static void
test_sup_simple_one_for_one_ends_after_its_last_significant_child(void **state)
{
    (void)state;
    tr_child_spec tmpl = significant(&cfg_d, TR_TRANSIENT);
    tmpl.id = "job";
    tr_addr sup =
        start_auto(TR_SIMPLE_ONE_FOR_ONE, TR_AUTO_SHUTDOWN_ALL, &tmpl, 1);
    wcfg *args[3] = {&cfg_a, &cfg_b, &cfg_c};
    tr_addr w[3];

    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr_sup_start_child_wait(fx.ctx, sup, NULL, args[i],
                                                 tr_ms(5000), &w[i]),
                         TR_OK);
        expect(EV_INIT, args[i]->id, TR_OK);
    }
    watch(&sup, 1);
    send(w[0], MSG_QUIT);
    expect(EV_STOP, "a", TR_EXIT_NORMAL);
    send(w[1], MSG_CRASH); /* restarted: it has not ended */
    expect(EV_STOP, "b", TR_EXIT_FAILED);
    expect(EV_INIT, "b", TR_OK);
    assert_int_equal(tr_sup_terminate_child_wait(fx.ctx, sup, "3", tr_ms(5000)),
                     TR_OK);
    expect(EV_STOP, "c", TR_EXIT_SHUTDOWN);
    expect_quiet(20);
    send(w[1], MSG_QUIT);
    expect(EV_STOP, "b", TR_EXIT_NORMAL);
    expect(EV_DOWN, "down", TR_EXIT_SHUTDOWN);
}

/*
 * A child supervisor that shuts itself down ends as shutdown: for a
 * transient, significant child of a supervisor with auto_shutdown, that is
 * an end by itself, and the whole tree ends (OTP's escalation). A
 * permanent one is restarted instead.
 */
static void
test_sup_significant_child_supervisor_ends_its_parents_tree(void **state)
{
    (void)state;
    tr_child_spec group_kids[1] = {significant(&cfg_c, TR_TRANSIENT)};
    tr_sup_spec group = {.name = "group",
                         .children = group_kids,
                         .len = 1,
                         .auto_shutdown = TR_AUTO_SHUTDOWN_ANY};
    tr_child_spec kids[2] = {kid(&cfg_a, TR_PERMANENT),
                             {.id = "group",
                              .behaviour = &tr_supervisor_behaviour,
                              .arg = &group,
                              .restart = TR_TRANSIENT,
                              .kind = TR_SUPERVISOR,
                              .significant = true}};
    tr_addr sup = start_auto(TR_ONE_FOR_ONE, TR_AUTO_SHUTDOWN_ANY, kids, 2);
    tr_addr a = {.id = expect(EV_INIT, "a", TR_OK).addr};
    tr_addr c = {.id = expect(EV_INIT, "c", TR_OK).addr};
    tr_addr ends[2] = {addr_of(sup, "group"), sup};
    int kinds[2];

    watch(ends, 2);
    send(c, MSG_QUIT);
    expect(EV_STOP, "c", TR_EXIT_NORMAL);
    expect_downs(ends, 2, kinds, "a");
    assert_int_equal(kinds[0], TR_EXIT_SHUTDOWN);
    assert_int_equal(kinds[1], TR_EXIT_SHUTDOWN);
    assert_true(tr_test_wait_stopped(fx.sys, a, 5000));
    assert_int_equal(tr_system_wait(fx.sys, tr_ms(5000)), TR_OK);

    /* Permanent and not significant: its parent restarts it. */
    kids[1].restart = TR_PERMANENT;
    kids[1].significant = false;
    tr_addr top2 = start_sup_named("top2", TR_ONE_FOR_ONE, kids, 2, 5, 1000);
    drain_journal();
    c = addr_of(addr_of(top2, "group"), "c");
    send(c, MSG_QUIT);
    expect(EV_STOP, "c", TR_EXIT_NORMAL);
    assert_int_not_equal(expect(EV_INIT, "c", TR_OK).addr, c.id);
    assert_int_equal(info_of(top2, "group").restarts, 1);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define M(fn) cmocka_unit_test_setup_teardown(fn, setup_manual, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sup_invalid_specs_are_rejected_with_a_reason),
        T(test_sup_children_start_in_order_and_stop_in_reverse),
        T(test_sup_system_shutdown_stops_the_tree_in_order),
        T(test_sup_restart_keeps_address_name_and_queue),
        T(test_sup_one_for_all_stops_others_in_reverse_then_restarts_all),
        T(test_sup_rest_for_one_restarts_the_failed_and_later_children),
        T(test_sup_restart_types_by_exit_kind),
        T(test_sup_temporary_bystander_is_stopped_not_restarted),
        M(test_sup_intensity_window_slides),
        T(test_sup_escalation_restarts_the_sub_supervisor),
        T(test_sup_start_failure_stops_started_children),
        T(test_sup_start_says_which_child_failed_and_why),
        T(test_sup_top_level_names_are_unique),
        T(test_sup_racing_starts_of_one_name_admit_one),
        T(test_sup_ignored_child_keeps_its_spec),
        T(test_sup_shutdown_deadline_kills_a_slow_child),
        T(test_sup_dynamic_children_and_api_errors),
        T(test_sup_simple_one_for_one_starts_from_the_template),
        M(test_sup_backoff_delays_restarts_and_answers_meanwhile),
        M(test_sup_backoff_from_zero_still_grows),
        M(test_sup_backoff_resets_after_a_stable_run_and_jitters),
        M(test_sup_backoff_jitter_stays_within_its_percentage),
        T(test_sup_failing_restarts_are_retried_until_intensity),
        T(test_sup_restart_ends_the_old_channel_subscriptions),
        T(test_sup_brutal_kill_of_a_supervisor_ends_its_subtree),
        T(test_sup_supervisor_past_its_deadline_is_killed_with_its_subtree),
        T(test_sup_shutdown_kills_a_late_supervisor_leaving_no_orphans),
        T(test_sup_report_queued_at_an_ending_parent_ends_the_child),
        T(test_sup_children_crashing_as_their_supervisor_is_killed_all_end),
        T(test_sup_killed_supervisor_restarts_after_its_subtree_ended),
        M(test_sup_failed_round_kills_a_restarted_supervisors_children),
        cmocka_unit_test(test_sup_system_wait_ends_at_shutdown),
        M(test_sup_a_child_in_backoff_does_not_hold_up_its_siblings),
        T(test_sup_a_looping_child_does_not_hold_up_its_siblings),
        M(test_sup_rest_for_one_retry_resumes_at_the_failed_child),
        M(test_sup_child_terminated_in_a_restart_loop_stays_terminated),
        M(test_sup_terminating_a_looping_child_ends_its_loop),
        T(test_sup_start_child_says_started_or_present),
        T(test_sup_stopped_supervisor_ends_as_shutdown),
        T(test_sup_child_stopped_in_a_sequence_ends_at_once),
        M(test_sup_zero_period_is_the_default_period),
        T(test_sup_which_children_counts_without_room),
        T(test_sup_terminating_a_gone_dynamic_child_is_ok),
        T(test_sup_round_leaves_a_terminated_child_down),
        T(test_sup_numeric_fields_have_bounds),
        T(test_sup_largest_intensity_restarts),
        T(test_sup_api_refuses_an_actor_that_is_not_a_supervisor),
        T(test_sup_start_child_that_timed_out_is_undone),
        T(test_sup_start_child_out_of_memory_is_enomem),
        T(test_sup_a_round_stops_siblings_with_no_memory_left),
        T(test_sup_work_on_one_child_does_not_grow_with_its_siblings),
        M(test_sup_one_for_all_retries_the_whole_round),
        T(test_sup_sibling_restarts_while_a_child_is_terminated),
        T(test_sup_restart_child_that_timed_out_is_undone),
        T(test_sup_start_child_takes_a_copy_of_its_id),
        M(test_sup_find_child_follows_its_status),
        T(test_sup_get_childspec_gives_a_copy_to_keep),
        T(test_sup_find_child_by_ordinal),
        T(test_sup_temporary_bystander_ending_in_a_round_ends_at_once),
        T(test_sup_significant_specs_follow_otps_rules),
        T(test_sup_any_significant_ends_the_tree_on_a_normal_end),
        T(test_sup_all_significant_waits_for_the_last),
        T(test_sup_significant_child_stopped_by_its_supervisor_counts_not),
        T(test_sup_simple_one_for_one_ends_after_its_last_significant_child),
        T(test_sup_significant_child_supervisor_ends_its_parents_tree),
    };
#undef T
#undef M
    /* TR_TEST_FILTER=<pattern> runs the matching tests only. */
    if (getenv("TR_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("TR_TEST_FILTER"));
    }
    return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
