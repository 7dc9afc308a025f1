/*
 * Process groups, held to OTP's pg: the cases of its test suite
 * (lib/kernel/test/pg_SUITE.erl) that a single node without scopes has,
 * ported to troupe's API, and more of their kind: join and leave many
 * times, leave of a non-member, members in join order with duplicates, a
 * member's end while in several groups, group watches (their events, in
 * order, and their end: demonitor, the watcher's end or restart), groups
 * that go with their last member, many groups per actor and many actors
 * per group, restarts in place, sends to a group, bad input, and joins and
 * leaves on several workers while another thread lists and sends.
 *
 * Actors are told what to do with an `order` (answered when asked with
 * tr_ask_wait). Once an ask returns, the watchers' events for what it did
 * are queued, so a second ask to a watcher (OP_SYNC) returns once it has
 * logged them: no test waits on time for an event.
 */
#include "support/tr_test.h"

#include "common/tr_alloc.h"

#include <pthread.h>

enum {
    REQ = 1,       /* an `order` */
    MSG_DATA = 2,  /* a group send's payload */
    MSG_CRASH = 3, /* fail */
    MSG_CHURN = 4, /* a round of joins and leaves (the churn test) */
};

enum {
    OP_JOIN,        /* join `group` `count` times (0: once) */
    OP_LEAVE,       /* leave `group` `count` times (0: once) */
    OP_JOIN_MANY,   /* join "<group>.<i>" for every i < count */
    OP_MONITOR,     /* watch `group`; the answer's ref */
    OP_DEMONITOR,   /* end the watch `ref` */
    OP_SEND,        /* tr_pg_send to `group`; the answer's ref: how many */
    OP_SYNC,        /* nothing: what was queued before it is handled */
    OP_INIT_REF,    /* the answer's ref: the watch `init` made */
    OP_WATCH_JOIN,  /* watch `group`, join it, end the watch: one handler */
    OP_WATCH_CRASH, /* watch `group`, join it, fail: one handler */
    OP_WATCH_MANY,  /* watch "<group>.<i>" for every i < count */
    OP_UNWATCH_ODD, /* end the watches OP_WATCH_MANY made of odd i */
    OP_JOIN_OOM,    /* join `group` with allocation `ref` failing */
    OP_MONITOR_OOM, /* watch `group` with allocation `ref` failing */
};

typedef struct order {
    uint32_t op;
    uint32_t count;
    uint64_t ref;
    bool null_group;
    char group[TR_PG_NAME_MAX + 2]; /* room for a name one byte too long */
} order;

typedef struct answer {
    int rc;
    uint64_t ref;
} answer;

/* What an actor does at every start (restarts included). */
typedef struct pga_cfg {
    const char *watch; /* watches it first, when set */
    const char *join;  /* then joins it, when set */
    bool count_only;   /* counts what it receives instead of logging it */
} pga_cfg;

enum { MANY = 10000 };

typedef struct pga_state {
    uint64_t init_ref;
    bool count_only;
    uint64_t *many; /* OP_WATCH_MANY's references, or NULL */
} pga_state;

/* ---- what actors received: a log, and counters ---- */

enum { LOG_CAP = 1024, DATA_SIZE = 4096 };

typedef struct seen {
    tr_addr at;    /* who received it */
    uint32_t type; /* TR_MSG_PG_JOIN, TR_MSG_PG_LEAVE or MSG_DATA */
    uint64_t ref;
    tr_addr who;
    char group[TR_PG_NAME_MAX + 1];
} seen;

static seen log_[LOG_CAP];
static tr_atomic(uint32_t) log_taken;   /* entries claimed */
static tr_atomic(uint32_t) log_written; /* entries written */
static tr_atomic(uint64_t) joins_counted;
static tr_atomic(uint64_t) leaves_counted;
static tr_atomic(uint64_t) data_seen;
static tr_atomic(uint64_t) data_bad;
static tr_atomic(const void *) data_ptr;
static tr_atomic(int) data_ptr_differs;

static void
reset(void)
{
    tr_store_relaxed(&log_taken, 0);
    tr_store_relaxed(&log_written, 0);
    tr_store_relaxed(&joins_counted, 0);
    tr_store_relaxed(&leaves_counted, 0);
    tr_store_relaxed(&data_seen, 0);
    tr_store_relaxed(&data_bad, 0);
    tr_store_relaxed(&data_ptr, NULL);
    tr_store_relaxed(&data_ptr_differs, 0);
}

static void
note(tr_ctx *ctx, uint32_t type, uint64_t ref, tr_addr who, const char *group)
{
    uint32_t i = tr_faa_relaxed(&log_taken, 1);

    if (i < LOG_CAP) {
        log_[i] =
            (seen){.at = tr_self(ctx), .type = type, .ref = ref, .who = who};
        snprintf(log_[i].group, sizeof(log_[i].group), "%s", group);
    }
    /* acq_rel: with the reader's acquire, every entry written before the
     * count it reads is visible (a release sequence of increments). */
    tr_faa_acqrel(&log_written, 1);
}

static bool
log_settled(void *arg)
{
    (void)arg;
    return tr_load_acq(&log_written) == tr_load_acq(&log_taken);
}

/* The entries `at` logged, in the order it handled them, into `out`. */
static size_t
seen_by(tr_addr at, seen *out, size_t cap)
{
    size_t n = 0;

    assert_true(tr_test_wait_until(log_settled, NULL, 10000));
    uint32_t have = tr_load_acq(&log_written);
    assert_true(have <= LOG_CAP);
    for (uint32_t i = 0; i < have; i++) {
        if (tr_addr_eq(log_[i].at, at)) {
            assert_true(n < cap);
            out[n++] = log_[i];
        }
    }
    return n;
}

static void
expect(const seen *e, uint32_t type, uint64_t ref, tr_addr who,
       const char *group)
{
    assert_int_equal(e->type, type);
    assert_true(e->ref == ref);
    assert_true(tr_addr_eq(e->who, who));
    assert_string_equal(e->group, group);
}

static void
note_data(tr_ctx *ctx, const pga_state *s, const tr_msg *msg)
{
    const unsigned char *p = msg->data;

    for (uint32_t i = 0; i < msg->size; i++) {
        if (p[i] != (unsigned char)i) {
            tr_faa_relaxed(&data_bad, 1);
            break;
        }
    }
    if (msg->size != 0) {
        const void *expected = NULL;
        if (!tr_cas_seqcst(&data_ptr, &expected, msg->data) &&
            expected != msg->data) {
            tr_store_relaxed(&data_ptr_differs, 1);
        }
    }
    if (!s->count_only) {
        note(ctx, MSG_DATA, 0, msg->from, "");
    }
    tr_faa_acqrel(&data_seen, 1);
}

static void
note_event(tr_ctx *ctx, const pga_state *s, const tr_msg *msg)
{
    const tr_pg_event *e = msg->data;

    if (s->count_only) {
        tr_faa_acqrel(
            msg->type == TR_MSG_PG_JOIN ? &joins_counted : &leaves_counted, 1);
        return;
    }
    note(ctx, msg->type, e->ref, e->who, e->group);
}

/* ---- the actor ---- */

static int
pga_init(tr_ctx *ctx, void *state, const void *arg)
{
    pga_state *s = state;
    const pga_cfg *cfg = arg;
    int rc = TR_OK;

    if (cfg == NULL) {
        return TR_OK;
    }
    s->count_only = cfg->count_only;
    if (cfg->watch != NULL) {
        rc = tr_pg_monitor(ctx, cfg->watch, &s->init_ref);
    }
    if (rc == TR_OK && cfg->join != NULL) {
        rc = tr_pg_join(ctx, cfg->join);
    }
    return rc;
}

static int
repeat(tr_ctx *ctx, int (*fn)(tr_ctx *, const char *), const char *group,
       uint32_t count)
{
    int rc = TR_OK;

    for (uint32_t i = 0; i < (count != 0 ? count : 1) && rc == TR_OK; i++) {
        rc = fn(ctx, group);
    }
    return rc;
}

static int
obey(tr_ctx *ctx, pga_state *s, const tr_msg *msg)
{
    const order *o = msg->data;
    const char *g = o->null_group ? NULL : o->group;
    answer a = {.rc = TR_OK};
    char name[sizeof(o->group) + 16]; /* a name too long fails to join */
    size_t sent = 0;

    switch (o->op) {
    case OP_JOIN:
        a.rc = repeat(ctx, tr_pg_join, g, o->count);
        break;
    case OP_LEAVE:
        a.rc = repeat(ctx, tr_pg_leave, g, o->count);
        break;
    case OP_JOIN_MANY:
        for (uint32_t i = 0; i < o->count && a.rc == TR_OK; i++) {
            snprintf(name, sizeof(name), "%s.%u", g, i);
            a.rc = tr_pg_join(ctx, name);
        }
        break;
    case OP_MONITOR:
        a.rc = tr_pg_monitor(ctx, g, &a.ref);
        break;
    case OP_DEMONITOR:
        a.rc = tr_pg_demonitor(ctx, o->ref);
        break;
    case OP_SEND:
        a.rc = tr_pg_send(ctx, g, MSG_DATA, NULL, 0, &sent);
        a.ref = sent;
        break;
    case OP_INIT_REF:
        a.ref = s->init_ref;
        break;
    case OP_WATCH_JOIN:
    case OP_WATCH_CRASH:
        a.rc = tr_pg_monitor(ctx, g, &a.ref);
        if (a.rc == TR_OK) {
            a.rc = tr_pg_join(ctx, g);
        }
        if (a.rc == TR_OK && o->op == OP_WATCH_CRASH) {
            return tr_fail(ctx, -9, "failed with its own event queued");
        }
        if (a.rc == TR_OK) {
            a.rc = tr_pg_demonitor(ctx, a.ref);
        }
        break;
    case OP_WATCH_MANY:
        s->many = o->count <= MANY ? calloc(o->count, sizeof(uint64_t)) : NULL;
        a.rc = s->many != NULL ? TR_OK : TR_ENOMEM;
        for (uint32_t i = 0; i < o->count && a.rc == TR_OK; i++) {
            snprintf(name, sizeof(name), "%s.%u", g, i);
            a.rc = tr_pg_monitor(ctx, name, &s->many[i]);
        }
        break;
    case OP_UNWATCH_ODD:
        /* Newest first, then the rest: from either end of the list. */
        for (uint32_t i = o->count; i-- > o->count / 2 && a.rc == TR_OK;) {
            a.rc = i % 2 == 1 ? tr_pg_demonitor(ctx, s->many[i]) : TR_OK;
        }
        for (uint32_t i = 0; i < o->count / 2 && a.rc == TR_OK; i++) {
            a.rc = i % 2 == 1 ? tr_pg_demonitor(ctx, s->many[i]) : TR_OK;
        }
        break;
    case OP_JOIN_OOM:
    case OP_MONITOR_OOM:
        tr__alloc_fail_after((long)o->ref);
        a.rc = o->op == OP_JOIN_OOM ? tr_pg_join(ctx, g)
                                    : tr_pg_monitor(ctx, g, &a.ref);
        tr__alloc_fail_after(-1);
        break;
    default:
        break;
    }
    if (tr_msg_is_call(ctx, msg)) {
        return tr_reply(ctx, msg, &a, sizeof(a));
    }
    return TR_OK;
}

static int
pga_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pga_state *s = state;

    switch (msg->type) {
    case REQ:
        return obey(ctx, s, msg);
    case MSG_DATA:
        note_data(ctx, s, msg);
        return TR_OK;
    case MSG_CRASH:
        return tr_fail(ctx, -9, "asked to crash");
    case TR_MSG_PG_JOIN:
    case TR_MSG_PG_LEAVE:
        note_event(ctx, s, msg);
        return TR_OK;
    default:
        return TR_OK;
    }
}

static void
pga_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    pga_state *s = state;

    (void)ctx;
    (void)exit;
    free(s->many);
}

static const tr_behaviour pga = {.name = "pga",
                                 .state_size = sizeof(pga_state),
                                 .init = pga_init,
                                 .handle = pga_handle,
                                 .stop = pga_stop};

/* ---- the test thread's side ---- */

static tr_addr
spawn(tr_system *sys, const pga_cfg *cfg)
{
    tr_addr a;

    assert_int_equal(tr_spawn(tr_system_ctx(sys), &pga, cfg, NULL, &a), TR_OK);
    return a;
}

static order
make_order(uint32_t op, const char *group, uint32_t count, uint64_t ref)
{
    order o = {.op = op, .count = count, .ref = ref};

    if (group == NULL) {
        o.null_group = true;
    } else {
        assert_true(strlen(group) < sizeof(o.group));
        memcpy(o.group, group, strlen(group) + 1);
    }
    return o;
}

/* Have `a` carry out an order, and return its answer; within
 * `timeout_ms`, or with 0 without a timer (nothing the asking thread
 * allocates once the order is sent: the OOM orders). */
static answer
ask_within(tr_system *sys, tr_addr a, uint32_t op, const char *group,
           uint32_t count, uint64_t ref, int64_t timeout_ms)
{
    order o = make_order(op, group, count, ref);
    answer out = {.rc = 1};
    size_t len = 0;

    assert_int_equal(tr_test_ask(tr_system_ctx(sys), a, REQ, &o, sizeof(o),
                                 &out, sizeof(out), &len, timeout_ms),
                     TR_OK);
    assert_int_equal(len, sizeof(out));
    return out;
}

static answer
ask(tr_system *sys, tr_addr a, uint32_t op, const char *group, uint32_t count,
    uint64_t ref)
{
    return ask_within(sys, a, op, group, count, ref, 30000);
}

static int
ask_rc(tr_system *sys, tr_addr a, uint32_t op, const char *group)
{
    return ask(sys, a, op, group, 0, 0).rc;
}

/* Send `a` an order without waiting for it. */
static void
tell(tr_system *sys, tr_addr a, uint32_t op, const char *group)
{
    order o = make_order(op, group, 0, 0);

    assert_int_equal(tr_send(tr_system_ctx(sys), a, REQ, &o, sizeof(o)), TR_OK);
}

/* Return once `a` has handled everything queued to it before. */
static void
sync_with(tr_system *sys, tr_addr a)
{
    assert_int_equal(ask_rc(sys, a, OP_SYNC, "-"), TR_OK);
}

static size_t
count(tr_system *sys, const char *group)
{
    size_t n = 99;
    assert_int_equal(tr_pg_members(sys, group, NULL, 0, &n), TR_OK);
    return n;
}

/* Assert that `group` lists exactly `want[0 .. n)`, in that order. */
static void
expect_members(tr_system *sys, const char *group, const tr_addr *want, size_t n)
{
    tr_addr list[16];
    size_t got = 99;

    assert_true(n <= 16);
    assert_int_equal(tr_pg_members(sys, group, list, 16, &got), TR_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(tr_addr_eq(list[i], want[i]));
    }
}

static void
stop_and_wait(tr_system *sys, tr_addr a)
{
    int rc = tr_actor_stop(tr_system_ctx(sys), a);

    assert_true(rc == TR_OK || rc == TR_ENOACTOR);
    assert_true(tr_test_wait_stopped(sys, a, 10000));
}

typedef struct wait_for {
    tr_atomic(uint64_t) * var;
    uint64_t want;
} wait_for;

static bool
reached(void *arg)
{
    wait_for *w = arg;
    return tr_load_acq(w->var) >= w->want;
}

static void
await(tr_atomic(uint64_t) * var, uint64_t want)
{
    wait_for w = {var, want};
    assert_true(tr_test_wait_until(reached, &w, 30000));
}

typedef struct group_of {
    tr_system *sys;
    const char *group;
    size_t want;
} group_of;

static bool
has_count(void *arg)
{
    group_of *g = arg;
    size_t n = 0;
    return tr_pg_members(g->sys, g->group, NULL, 0, &n) == TR_OK &&
           n == g->want;
}

static void
await_count(tr_system *sys, const char *group, size_t want)
{
    group_of g = {sys, group, want};
    assert_true(tr_test_wait_until(has_count, &g, 30000));
}

/* ---- OTP's basic cases: pg, single, double ---- */

static void
test_pg_single_joins_three_times_and_leaves_as_often(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a;
    tr_addr b;

    reset();
    a = spawn(sys, NULL);
    assert_int_equal(count(sys, "single"), 0);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "single"), TR_OK);
    assert_int_equal(ask(sys, a, OP_JOIN, "single", 2, 0).rc, TR_OK);
    expect_members(sys, "single", (tr_addr[]){a, a, a}, 3);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "$missing$"), TR_ENOTFOUND);
    assert_int_equal(ask(sys, a, OP_LEAVE, "single", 2, 0).rc, TR_OK);
    expect_members(sys, "single", &a, 1);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "single"), TR_OK);
    assert_int_equal(count(sys, "single"), 0);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "single"), TR_ENOTFOUND);
    /* Another member ends: only the other stays. */
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "single"), TR_OK);
    b = spawn(sys, &(pga_cfg){.join = "single"});
    expect_members(sys, "single", (tr_addr[]){a, b}, 2);
    stop_and_wait(sys, b);
    expect_members(sys, "single", &a, 1);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "single"), TR_OK);
    assert_int_equal(count(sys, "single"), 0);
    tr_test_shutdown(sys);
}

static void
test_pg_members_in_join_order_with_duplicates(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    tr_addr c = spawn(sys, NULL);
    tr_addr list[4];
    size_t n = 0;

    reset();
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, c, OP_JOIN, "order"), TR_OK);
    expect_members(sys, "order", (tr_addr[]){a, b, a, c}, 4);
    /* Less room than members: the first ones, and the total. */
    assert_int_equal(tr_pg_members(sys, "order", list, 2, &n), TR_OK);
    assert_int_equal(n, 4);
    assert_true(tr_addr_eq(list[0], a) && tr_addr_eq(list[1], b));
    /* A leave ends the latest membership (as OTP's does). */
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "order"), TR_OK);
    expect_members(sys, "order", (tr_addr[]){a, b, c}, 3);
    assert_int_equal(ask_rc(sys, c, OP_LEAVE, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_LEAVE, "order"), TR_OK);
    assert_int_equal(count(sys, "order"), 0);
    /* OTP's double: a join, then a join again, lists it twice. */
    assert_int_equal(ask_rc(sys, c, OP_JOIN, "order"), TR_OK);
    assert_int_equal(ask_rc(sys, c, OP_JOIN, "order"), TR_OK);
    expect_members(sys, "order", (tr_addr[]){c, c}, 2);
    tr_test_shutdown(sys);
}

/* OTP's empty_group_by_remote_leave, on one node: a group emptied in any
 * order is gone, and a new join starts it afresh. */
static void
test_pg_group_goes_with_its_last_member(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    tr_addr w = spawn(sys, NULL);

    reset();
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "empty"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "empty"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_LEAVE, "empty"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "empty"), TR_OK);
    assert_int_equal(count(sys, "empty"), 0);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "empty"), TR_OK);
    expect_members(sys, "empty", &b, 1);
    assert_int_equal(ask_rc(sys, b, OP_LEAVE, "empty"), TR_OK);
    /* A group kept by its watcher alone has no members, and the watch
     * still hears the next join. */
    answer m = ask(sys, w, OP_MONITOR, "empty", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    assert_int_equal(count(sys, "empty"), 0);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "empty"), TR_OK);
    sync_with(sys, w);
    seen got[2];
    assert_int_equal(seen_by(w, got, 2), 1);
    expect(&got[0], TR_MSG_PG_JOIN, m.ref, a, "empty");
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "empty"), TR_OK);
    assert_int_equal(ask(sys, w, OP_DEMONITOR, NULL, 0, m.ref).rc, TR_OK);
    assert_int_equal(count(sys, "empty"), 0);
    tr_test_shutdown(sys);
}

/* OTP's leave_exit_race: a leave and the member's end race; either way
 * the membership ends once. */
static void
test_pg_leave_racing_the_end_ends_the_membership_once(void **state)
{
    (void)state;
    enum { ROUNDS = 100 };
    tr_system *sys = tr_test_system(2);
    tr_addr w;
    tr_addr racers[ROUNDS];
    seen got[2 * ROUNDS + 1];

    reset();
    w = spawn(sys, NULL);
    answer m = ask(sys, w, OP_MONITOR, "race", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    for (int i = 0; i < ROUNDS; i++) {
        racers[i] = spawn(sys, &(pga_cfg){.join = "race"});
        tell(sys, racers[i], OP_LEAVE, "race");
        int rc = tr_actor_stop(tr_system_ctx(sys), racers[i]);
        assert_true(rc == TR_OK || rc == TR_ENOACTOR);
    }
    for (int i = 0; i < ROUNDS; i++) {
        assert_true(tr_test_wait_stopped(sys, racers[i], 10000));
    }
    assert_int_equal(count(sys, "race"), 0);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 2 * ROUNDS + 1), 2 * ROUNDS);
    /* Each racer: one join, then one leave. */
    for (int i = 0; i < ROUNDS; i++) {
        int joins = 0;
        int leaves = 0;
        for (int k = 0; k < 2 * ROUNDS; k++) {
            if (!tr_addr_eq(got[k].who, racers[i])) {
                continue;
            }
            assert_true(got[k].ref == m.ref);
            if (got[k].type == TR_MSG_PG_JOIN) {
                assert_int_equal(leaves, 0);
                joins++;
            } else {
                leaves++;
            }
        }
        assert_int_equal(joins, 1);
        assert_int_equal(leaves, 1);
    }
    tr_test_shutdown(sys);
}

/* ---- a member's end: OTP's single, exchange, group_leave ---- */

static void
test_pg_member_end_leaves_every_group_and_watchers_hear(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr wg;
    tr_addr wh;
    tr_addr a;
    tr_addr b;
    seen got[8];

    reset();
    wg = spawn(sys, NULL);
    wh = spawn(sys, NULL);
    answer mg = ask(sys, wg, OP_MONITOR, "g", 0, 0);
    answer mh = ask(sys, wh, OP_MONITOR, "h", 0, 0);
    assert_int_equal(mg.rc, TR_OK);
    assert_int_equal(mh.rc, TR_OK);
    assert_true(mg.ref != mh.ref);
    a = spawn(sys, NULL);
    b = spawn(sys, NULL);
    assert_int_equal(ask(sys, a, OP_JOIN, "g", 2, 0).rc, TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "h"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "other"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "g"), TR_OK);
    stop_and_wait(sys, a);
    expect_members(sys, "g", &b, 1);
    assert_int_equal(count(sys, "h"), 0);
    assert_int_equal(count(sys, "other"), 0);
    /* One leave per membership, each to the watchers of its group. */
    sync_with(sys, wg);
    sync_with(sys, wh);
    assert_int_equal(seen_by(wg, got, 8), 5);
    expect(&got[0], TR_MSG_PG_JOIN, mg.ref, a, "g");
    expect(&got[1], TR_MSG_PG_JOIN, mg.ref, a, "g");
    expect(&got[2], TR_MSG_PG_JOIN, mg.ref, b, "g");
    expect(&got[3], TR_MSG_PG_LEAVE, mg.ref, a, "g");
    expect(&got[4], TR_MSG_PG_LEAVE, mg.ref, a, "g");
    assert_int_equal(seen_by(wh, got, 8), 2);
    expect(&got[0], TR_MSG_PG_JOIN, mh.ref, a, "h");
    expect(&got[1], TR_MSG_PG_LEAVE, mh.ref, a, "h");
    tr_test_shutdown(sys);
}

/* OTP's exchange and foursplit, on one node: ten members, three end; a
 * subset leaves; a leave of a group never joined is refused. */
static void
test_pg_ten_members_three_end_and_the_rest_stay(void **state)
{
    (void)state;
    enum { N = 10 };
    tr_system *sys = tr_test_system(2);
    tr_addr m[N];

    reset();
    for (int i = 0; i < N; i++) {
        m[i] = spawn(sys, &(pga_cfg){.join = "exchange"});
        assert_int_equal(ask_rc(sys, m[i], OP_JOIN, "third"), TR_OK);
    }
    for (int i = 0; i < 3; i++) {
        stop_and_wait(sys, m[i]);
    }
    expect_members(sys, "exchange", &m[3], N - 3);
    expect_members(sys, "third", &m[3], N - 3);
    for (int i = 3; i < 6; i++) {
        assert_int_equal(ask_rc(sys, m[i], OP_LEAVE, "third"), TR_OK);
    }
    expect_members(sys, "third", &m[6], N - 6);
    for (int i = 6; i < N; i++) {
        assert_int_equal(ask_rc(sys, m[i], OP_LEAVE, "left"), TR_ENOTFOUND);
        assert_int_equal(ask_rc(sys, m[i], OP_LEAVE, "third"), TR_OK);
    }
    assert_int_equal(count(sys, "third"), 0);
    expect_members(sys, "exchange", &m[3], N - 3);
    /* foursplit: one of two groups left, the other kept. */
    assert_int_equal(ask_rc(sys, m[3], OP_JOIN, "one"), TR_OK);
    assert_int_equal(ask_rc(sys, m[3], OP_JOIN, "two"), TR_OK);
    assert_int_equal(ask_rc(sys, m[3], OP_LEAVE, "one"), TR_OK);
    assert_int_equal(ask_rc(sys, m[3], OP_LEAVE, "three"), TR_ENOTFOUND);
    assert_int_equal(count(sys, "one"), 0);
    expect_members(sys, "two", &m[3], 1);
    tr_test_shutdown(sys);
}

/* OTP's group_leave: sixteen joins, four leaves, then the end. */
static void
test_pg_sixteen_joins_four_leaves_then_the_end(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr w = spawn(sys, NULL);
    tr_addr a = spawn(sys, NULL);
    tr_addr list[16];
    seen got[40];
    size_t n = 0;

    reset();
    answer m = ask(sys, w, OP_MONITOR, "two", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    assert_int_equal(ask(sys, a, OP_JOIN, "two", 16, 0).rc, TR_OK);
    assert_int_equal(ask(sys, a, OP_LEAVE, "two", 4, 0).rc, TR_OK);
    assert_int_equal(tr_pg_members(sys, "two", list, 16, &n), TR_OK);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++) {
        assert_true(tr_addr_eq(list[i], a));
    }
    stop_and_wait(sys, a);
    assert_int_equal(count(sys, "two"), 0);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 40), 32);
    for (int i = 0; i < 32; i++) {
        expect(&got[i], i < 16 ? TR_MSG_PG_JOIN : TR_MSG_PG_LEAVE, m.ref, a,
               "two");
    }
    tr_test_shutdown(sys);
}

/* ---- watches: OTP's monitor, monitor_self, multi_monitor ---- */

static void
test_pg_monitor_events_carry_group_member_and_order(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr w1 = spawn(sys, NULL);
    tr_addr w2 = spawn(sys, NULL);
    tr_addr w3 = spawn(sys, NULL);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    seen got[8];

    reset();
    answer m1 = ask(sys, w1, OP_MONITOR, "mon", 0, 0);
    assert_int_equal(m1.rc, TR_OK);
    assert_int_equal(count(sys, "mon"), 0);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "mon"), TR_OK);
    sync_with(sys, w1);
    assert_int_equal(seen_by(w1, got, 8), 1);
    expect(&got[0], TR_MSG_PG_JOIN, m1.ref, a, "mon");
    /* A second watch, made while `a` is a member, hears only what comes
     * after it. */
    answer m2 = ask(sys, w2, OP_MONITOR, "mon", 0, 0);
    answer m3 = ask(sys, w3, OP_MONITOR, "mon", 0, 0);
    assert_int_equal(m2.rc, TR_OK);
    assert_int_equal(m3.rc, TR_OK);
    assert_true(m1.ref != m2.ref && m2.ref != m3.ref && m1.ref != m3.ref);
    expect_members(sys, "mon", &a, 1);
    assert_int_equal(ask(sys, b, OP_JOIN, "mon", 2, 0).rc, TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "mon"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_LEAVE, "mon"), TR_OK);
    sync_with(sys, w2);
    assert_int_equal(seen_by(w2, got, 8), 4);
    expect(&got[0], TR_MSG_PG_JOIN, m2.ref, b, "mon");
    expect(&got[1], TR_MSG_PG_JOIN, m2.ref, b, "mon");
    expect(&got[2], TR_MSG_PG_LEAVE, m2.ref, a, "mon");
    expect(&got[3], TR_MSG_PG_LEAVE, m2.ref, b, "mon");
    /* A watcher that ends takes its watch along; the others go on. */
    stop_and_wait(sys, w3);
    stop_and_wait(sys, b);
    sync_with(sys, w1);
    assert_int_equal(seen_by(w1, got, 8), 6);
    expect(&got[1], TR_MSG_PG_JOIN, m1.ref, b, "mon");
    expect(&got[2], TR_MSG_PG_JOIN, m1.ref, b, "mon");
    expect(&got[3], TR_MSG_PG_LEAVE, m1.ref, a, "mon");
    expect(&got[4], TR_MSG_PG_LEAVE, m1.ref, b, "mon");
    expect(&got[5], TR_MSG_PG_LEAVE, m1.ref, b, "mon");
    /* Demonitor: once; then nothing more comes. */
    assert_int_equal(ask(sys, w1, OP_DEMONITOR, NULL, 0, m1.ref).rc, TR_OK);
    assert_int_equal(ask(sys, w1, OP_DEMONITOR, NULL, 0, m1.ref).rc,
                     TR_ENOTFOUND);
    assert_int_equal(ask(sys, w1, OP_DEMONITOR, NULL, 0, m2.ref).rc,
                     TR_ENOTFOUND); /* another actor's */
    assert_int_equal(ask_rc(sys, w1, OP_JOIN, "mon"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "mon"), TR_OK);
    sync_with(sys, w1);
    assert_int_equal(seen_by(w1, got, 8), 6);
    sync_with(sys, w2);
    assert_int_equal(seen_by(w2, got, 8), 7);
    expect(&got[4], TR_MSG_PG_LEAVE, m2.ref, b, "mon");
    expect(&got[5], TR_MSG_PG_JOIN, m2.ref, w1, "mon");
    expect(&got[6], TR_MSG_PG_JOIN, m2.ref, a, "mon");
    tr_test_shutdown(sys);
}

/* OTP's demonitor flushes the events of the watch that were already
 * queued: none reaches the handler afterwards. */
static void
test_pg_demonitor_drops_the_events_already_queued(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr w = spawn(sys, NULL);
    seen got[4];

    reset();
    /* Its own join's event is queued to it before the demonitor. */
    answer m = ask(sys, w, OP_WATCH_JOIN, "flush", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    expect_members(sys, "flush", &w, 1);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 4), 0);
    assert_int_equal(ask(sys, w, OP_DEMONITOR, NULL, 0, m.ref).rc,
                     TR_ENOTFOUND);
    tr_test_shutdown(sys);
}

/* OTP's monitor_self: an actor that watches a group it is in ends
 * cleanly, and the group goes on without it. */
static void
test_pg_actor_watching_its_own_group_ends_cleanly(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a;
    tr_addr b;
    seen got[4];

    reset();
    a = spawn(sys, &(pga_cfg){.watch = "self", .join = "self"});
    answer r = ask(sys, a, OP_INIT_REF, "-", 0, 0);
    sync_with(sys, a);
    assert_int_equal(seen_by(a, got, 4), 1);
    expect(&got[0], TR_MSG_PG_JOIN, r.ref, a, "self");
    stop_and_wait(sys, a);
    assert_int_equal(count(sys, "self"), 0);
    b = spawn(sys, &(pga_cfg){.watch = "self", .join = "self"});
    expect_members(sys, "self", &b, 1);
    tr_test_shutdown(sys);
}

/* OTP's multi_monitor: watches of two groups, joins of both: one event
 * each, by its own watch; the end leaves neither watch nor membership. */
static void
test_pg_two_watches_two_joins_one_event_each(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    tr_addr w = spawn(sys, NULL);
    seen got[4];

    reset();
    answer one = ask(sys, a, OP_MONITOR, "one", 0, 0);
    answer two = ask(sys, a, OP_MONITOR, "two", 0, 0);
    assert_int_equal(one.rc, TR_OK);
    assert_int_equal(two.rc, TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "one"), TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "two"), TR_OK);
    sync_with(sys, a);
    assert_int_equal(seen_by(a, got, 4), 2);
    expect(&got[0], TR_MSG_PG_JOIN, one.ref, a, "one");
    expect(&got[1], TR_MSG_PG_JOIN, two.ref, a, "two");
    stop_and_wait(sys, a);
    assert_int_equal(count(sys, "one"), 0);
    assert_int_equal(count(sys, "two"), 0);
    /* Its watches went with it: the groups carry on for others. */
    answer m = ask(sys, w, OP_MONITOR, "one", 0, 0);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "one"), TR_OK);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 4), 1);
    expect(&got[0], TR_MSG_PG_JOIN, m.ref, b, "one");
    tr_test_shutdown(sys);
}

/* ---- restarts in place ---- */

static void
test_pg_restart_in_place_keeps_only_what_init_joins(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    static const pga_cfg joins_g = {.join = "g"};
    const tr_child_spec kids[] = {
        {.id = "rejoins", .behaviour = &pga, .arg = &joins_g},
        {.id = "forgets", .behaviour = &pga, .arg = NULL},
    };
    const tr_sup_spec spec = {.name = "pgsup",
                              .strategy = TR_ONE_FOR_ONE,
                              .max_restarts = 10,
                              .period_ms = 1000,
                              .children = kids,
                              .len = 2};
    tr_addr sup;
    tr_addr rejoins;
    tr_addr forgets;
    tr_addr w;
    seen got[16];

    reset();
    w = spawn(sys, NULL);
    answer m = ask(sys, w, OP_MONITOR, "g", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    assert_int_equal(tr_sup_start(tr_system_ctx(sys), &spec, NULL, &sup),
                     TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/pgsup/rejoins", &rejoins), TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/pgsup/forgets", &forgets), TR_OK);
    assert_int_equal(ask_rc(sys, forgets, OP_JOIN, "g"), TR_OK);
    assert_int_equal(count(sys, "g"), 2);
    /* Both crash and are restarted in place (same addresses). */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(
            tr_send(tr_system_ctx(sys), rejoins, MSG_CRASH, NULL, 0), TR_OK);
        assert_int_equal(
            tr_send(tr_system_ctx(sys), forgets, MSG_CRASH, NULL, 0), TR_OK);
        /* An order after the crash is carried out by the restarted one. */
        sync_with(sys, rejoins);
        sync_with(sys, forgets);
        /* The one whose init joined, never twice. */
        expect_members(sys, "g", &rejoins, 1);
    }
    /* The watcher heard every membership end, and each join of init. */
    sync_with(sys, w);
    size_t n = seen_by(w, got, 16);
    assert_int_equal(n, 9);
    int rj = 0;
    int fj = 0;
    for (size_t i = 0; i < n; i++) {
        bool r = tr_addr_eq(got[i].who, rejoins);
        assert_true(r || tr_addr_eq(got[i].who, forgets));
        int *k = r ? &rj : &fj;
        /* Each member's events alternate, a join first. */
        expect(&got[i], *k % 2 == 0 ? TR_MSG_PG_JOIN : TR_MSG_PG_LEAVE, m.ref,
               got[i].who, "g");
        (*k)++;
    }
    assert_int_equal(rj, 7);
    assert_int_equal(fj, 2);
    tr_test_shutdown(sys);
}

/* A watch belongs to the incarnation, as a membership does: a watcher
 * restarted in place hears only the watch its new init made, and not an
 * event queued for the old one. */
static void
test_pg_restarted_watcher_hears_only_its_new_watch(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    static const pga_cfg watches = {.watch = "rw"};
    const tr_child_spec kids[] = {
        {.id = "watcher", .behaviour = &pga, .arg = &watches},
    };
    const tr_sup_spec spec = {.name = "wsup",
                              .strategy = TR_ONE_FOR_ONE,
                              .max_restarts = 10,
                              .period_ms = 1000,
                              .children = kids,
                              .len = 1};
    tr_addr sup;
    tr_addr w;
    tr_addr a;
    seen got[4];

    reset();
    a = spawn(sys, NULL);
    assert_int_equal(tr_sup_start(tr_system_ctx(sys), &spec, NULL, &sup),
                     TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/wsup/watcher", &w), TR_OK);
    uint64_t first = ask(sys, w, OP_INIT_REF, "-", 0, 0).ref;
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "rw"), TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), w, MSG_CRASH, NULL, 0), TR_OK);
    uint64_t second = ask(sys, w, OP_INIT_REF, "-", 0, 0).ref;
    assert_true(second != first);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, "rw"), TR_OK);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 4), 2);
    expect(&got[0], TR_MSG_PG_JOIN, first, a, "rw");
    expect(&got[1], TR_MSG_PG_LEAVE, second, a, "rw");
    /* It fails with its own join's event queued: the restarted one never
     * sees that event, and the membership ended with the failed one. */
    reset();
    tell(sys, w, OP_WATCH_CRASH, "rx");
    sync_with(sys, w); /* the event is queued: the failed handler ran */
    sync_with(sys, w); /* and it is past */
    assert_int_equal(seen_by(w, got, 4), 0);
    assert_int_equal(count(sys, "rx"), 0);
    tr_test_shutdown(sys);
}

/* ---- many: OTP's thundering_herd, and thousands of members ---- */

static void
test_pg_one_actor_in_ten_thousand_groups(void **state)
{
    (void)state;
    enum { GROUPS = 10000 };
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, NULL);
    tr_addr w = spawn(sys, NULL);
    char name[TR_PG_NAME_MAX + 1];
    seen got[4];

    reset();
    answer m = ask(sys, w, OP_MONITOR, "herd.5000", 0, 0);
    assert_int_equal(m.rc, TR_OK);
    assert_int_equal(ask(sys, a, OP_JOIN_MANY, "herd", GROUPS, 0).rc, TR_OK);
    for (int i = 0; i < GROUPS; i++) {
        snprintf(name, sizeof(name), "herd.%d", i);
        expect_members(sys, name, &a, 1);
    }
    /* One more join, after all of them. */
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "herd"), TR_OK);
    expect_members(sys, "herd", &a, 1);
    stop_and_wait(sys, a);
    for (int i = 0; i < GROUPS; i++) {
        snprintf(name, sizeof(name), "herd.%d", i);
        assert_int_equal(count(sys, name), 0);
    }
    assert_int_equal(count(sys, "herd"), 0);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 4), 2);
    expect(&got[0], TR_MSG_PG_JOIN, m.ref, a, "herd.5000");
    expect(&got[1], TR_MSG_PG_LEAVE, m.ref, a, "herd.5000");
    tr_test_shutdown(sys);
}

/* One actor watching ten thousand groups: each event finds its watch
 * (among ten thousand) and reaches the handler once; half the watches
 * ended, taken from both ends of the list, and only the other half hear. */
static void
test_pg_one_actor_watching_ten_thousand_groups(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr w = spawn(sys, &(pga_cfg){.count_only = true});
    tr_addr a = spawn(sys, NULL);

    reset();
    assert_int_equal(ask(sys, w, OP_WATCH_MANY, "eye", MANY, 0).rc, TR_OK);
    assert_int_equal(ask(sys, a, OP_JOIN_MANY, "eye", MANY, 0).rc, TR_OK);
    sync_with(sys, w);
    assert_int_equal(tr_load_acq(&joins_counted), MANY);
    assert_int_equal(ask(sys, w, OP_UNWATCH_ODD, NULL, MANY, 0).rc, TR_OK);
    stop_and_wait(sys, a);
    sync_with(sys, w);
    assert_int_equal(tr_load_acq(&leaves_counted), MANY / 2);
    tr_test_shutdown(sys);
}

/* Assert that `group` lists exactly `want[0 .. n)`, in that order, for
 * lists longer than expect_members takes. */
static void
expect_long(tr_system *sys, const char *group, const tr_addr *want, size_t n)
{
    tr_addr *list = calloc(n + 1, sizeof(*list));
    size_t got = 0;

    assert_non_null(list);
    assert_int_equal(tr_pg_members(sys, group, list, n + 1, &got), TR_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(tr_addr_eq(list[i], want[i]));
    }
    free(list);
}

/* Members and watchers that end or leave out of order, past the point
 * where the lists are closed up: join order is kept, a leave ends the
 * latest membership, a rejoin goes last, and each watcher left hears each
 * event once. */
static void
test_pg_order_kept_as_most_members_and_watchers_go(void **state)
{
    (void)state;
    enum { N = 96, W = 40 };
    tr_system *sys = tr_test_system(2);
    tr_addr m[N];
    tr_addr w[W];
    tr_addr want[N + 2];
    size_t nwant = 0;

    reset();
    for (int i = 0; i < W; i++) {
        w[i] = spawn(sys, &(pga_cfg){.watch = "holes", .count_only = true});
    }
    for (int i = 0; i < N; i++) {
        m[i] = spawn(sys, &(pga_cfg){.join = "holes"});
    }
    assert_int_equal(ask(sys, m[5], OP_JOIN, "holes", 2, 0).rc, TR_OK);
    await(&joins_counted, (uint64_t)W * (N + 2));
    /* Two of three members go, the first of them by ending (holes, then
     * a close-up), m[5] by leaving its two latest memberships and then
     * its first, and the watchers but every fourth end. */
    for (int i = 0; i < N; i++) {
        if (i % 3 != 0) {
            assert_int_equal(tr_actor_stop(tr_system_ctx(sys), m[i]), TR_OK);
        }
    }
    for (int i = 0; i < W; i++) {
        if (i % 4 != 0) {
            assert_int_equal(tr_actor_stop(tr_system_ctx(sys), w[i]), TR_OK);
        }
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 != 0) {
            assert_true(tr_test_wait_stopped(sys, m[i], 10000));
        }
    }
    for (int i = 0; i < W; i++) {
        if (i % 4 != 0) {
            assert_true(tr_test_wait_stopped(sys, w[i], 10000));
        }
    }
    for (int i = 0; i < N; i += 3) {
        want[nwant++] = m[i];
    }
    expect_long(sys, "holes", want, nwant);
    for (int i = 0; i < W; i += 4) {
        sync_with(sys, w[i]);
    }
    tr_store_relaxed(&joins_counted, 0);
    tr_store_relaxed(&leaves_counted, 0);
    /* m[0] leaves and joins again: last now. m[3] joins twice more, then
     * leaves once: its first membership and one after m[0]'s remain. */
    assert_int_equal(ask_rc(sys, m[0], OP_LEAVE, "holes"), TR_OK);
    assert_int_equal(ask_rc(sys, m[0], OP_JOIN, "holes"), TR_OK);
    assert_int_equal(ask(sys, m[3], OP_JOIN, "holes", 2, 0).rc, TR_OK);
    assert_int_equal(ask_rc(sys, m[3], OP_LEAVE, "holes"), TR_OK);
    memmove(&want[0], &want[1], sizeof(want[0]) * (nwant - 1));
    want[nwant - 1] = m[0];
    want[nwant++] = m[3];
    expect_long(sys, "holes", want, nwant);
    /* The watchers left (W / 4) heard each event once: with a newcomer's
     * join, four joins and two leaves. */
    tr_addr late = spawn(sys, &(pga_cfg){.join = "holes"});
    for (int i = 0; i < W; i += 4) {
        sync_with(sys, w[i]);
    }
    assert_int_equal(tr_load_acq(&joins_counted), 4 * (W / 4));
    assert_int_equal(tr_load_acq(&leaves_counted), 2 * (W / 4));
    want[nwant++] = late;
    expect_long(sys, "holes", want, nwant);
    /* A send reaches each membership listed, and no hole. */
    answer sent = ask(sys, late, OP_SEND, "holes", 0, 0);
    assert_int_equal(sent.rc, TR_OK);
    assert_int_equal(sent.ref, nwant);
    await(&data_seen, nwant);
    tr_test_shutdown(sys);
}

/* Out of memory at each allocation of a join and a watch: TR_ENOMEM and
 * nothing changed (no membership, no group left behind, nothing leaked:
 * LeakSanitizer in the ASan build), or done. */
static void
test_pg_out_of_memory_changes_nothing(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, &(pga_cfg){.join = "oom"});
    tr_addr b = spawn(sys, NULL);
    char name[32];
    size_t in_oom = 1;
    int failed = 0;

    reset();
    for (uint64_t n = 0; n < 6; n++) {
        /* A further membership of a group `a` is in. */
        int rc = ask_within(sys, a, OP_JOIN_OOM, "oom", 0, n, 0).rc;
        assert_true(rc == TR_OK || rc == TR_ENOMEM);
        in_oom += rc == TR_OK;
        failed += rc == TR_ENOMEM;
        assert_int_equal(count(sys, "oom"), in_oom);
        /* A first membership of a new group. */
        snprintf(name, sizeof(name), "oom.join.%u", (unsigned)n);
        rc = ask_within(sys, a, OP_JOIN_OOM, name, 0, n, 0).rc;
        assert_true(rc == TR_OK || rc == TR_ENOMEM);
        failed += rc == TR_ENOMEM;
        assert_int_equal(count(sys, name), rc == TR_OK ? 1 : 0);
        /* A watch of a new group: a failed one hears nothing. */
        snprintf(name, sizeof(name), "oom.watch.%u", (unsigned)n);
        answer m = ask_within(sys, b, OP_MONITOR_OOM, name, 0, n, 0);
        assert_true(m.rc == TR_OK || m.rc == TR_ENOMEM);
        failed += m.rc == TR_ENOMEM;
        assert_int_equal(ask_rc(sys, a, OP_JOIN, name), TR_OK);
        sync_with(sys, b);
        seen got[2];
        assert_int_equal(seen_by(b, got, 2), m.rc == TR_OK ? 1 : 0);
        assert_int_equal(ask_rc(sys, a, OP_LEAVE, name), TR_OK);
        if (m.rc == TR_OK) {
            assert_int_equal(ask(sys, b, OP_DEMONITOR, NULL, 0, m.ref).rc,
                             TR_OK);
        }
        reset();
    }
    /* The first allocations failed, the later ones did not. */
    assert_true(failed > 0);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "oom"), TR_OK);
    assert_int_equal(count(sys, "oom"), in_oom + 1);
    stop_and_wait(sys, a);
    assert_int_equal(count(sys, "oom"), 0);
    tr_test_shutdown(sys);
}

/* A group of many members that all end at once (shutdown, or a tree that
 * gave up): each end finds its membership without a scan, so this takes
 * a moment, not minutes. */
static void
test_pg_hundred_thousand_members_end_together(void **state)
{
    (void)state;
    enum { N = 100000 };
    tr_system *sys = tr_test_system(2);
    tr_addr *m = calloc(N, sizeof(*m));

    assert_non_null(m);
    reset();
    for (int i = 0; i < N; i++) {
        m[i] = spawn(sys, &(pga_cfg){.join = "crowd"});
    }
    expect_long(sys, "crowd", m, N);
    /* Oldest first: the order in which a scan from the newest end would
     * look longest. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(tr_actor_stop(tr_system_ctx(sys), m[i]), TR_OK);
    }
    await_count(sys, "crowd", 0);
    free(m);
    tr_test_shutdown(sys);
}

static void
test_pg_send_to_ten_thousand_copies_once(void **state)
{
    (void)state;
    enum { N = 10000 };
    tr_system *sys = tr_test_system(2);
    static const pga_cfg member = {.join = "big", .count_only = true};
    static const pga_cfg watcher = {.watch = "big", .count_only = true};
    static tr_addr members[N];
    unsigned char payload[DATA_SIZE];
    size_t sent = 0;

    reset();
    for (int i = 0; i < DATA_SIZE; i++) {
        payload[i] = (unsigned char)i;
    }
    tr_addr w = spawn(sys, &watcher);
    for (int i = 0; i < N; i++) {
        members[i] = spawn(sys, &member);
    }
    assert_int_equal(count(sys, "big"), N);
    assert_int_equal(tr_pg_send(tr_system_ctx(sys), "big", MSG_DATA, payload,
                                sizeof(payload), &sent),
                     TR_OK);
    assert_int_equal(sent, N);
    await(&data_seen, N);
    assert_int_equal(tr_load_relaxed(&data_bad), 0);
    /* Every member read the same bytes: one copy, shared. */
    assert_int_equal(tr_load_relaxed(&data_ptr_differs), 0);
    /* An unknown group: nobody to send to. */
    assert_int_equal(
        tr_pg_send(tr_system_ctx(sys), "nobody", MSG_DATA, "x", 1, &sent),
        TR_OK);
    assert_int_equal(sent, 0);
    /* They all end: the group empties, one leave per member. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(tr_actor_stop(tr_system_ctx(sys), members[i]), TR_OK);
    }
    await_count(sys, "big", 0);
    sync_with(sys, w);
    assert_int_equal(tr_load_acq(&joins_counted), N);
    assert_int_equal(tr_load_acq(&leaves_counted), N);
    tr_test_shutdown(sys);
}

/* Every membership gets one copy: a member that joined twice gets two,
 * and tr_pg_send counts them, from a plain thread or a handler. */
static void
test_pg_send_gives_each_membership_one_copy(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    tr_addr c = spawn(sys, NULL);
    tr_addr src = spawn(sys, NULL);
    unsigned char payload[16];
    seen got[8];
    size_t sent = 0;

    reset();
    for (int i = 0; i < 16; i++) {
        payload[i] = (unsigned char)i;
    }
    assert_int_equal(ask(sys, a, OP_JOIN, "fan", 2, 0).rc, TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "fan"), TR_OK);
    assert_int_equal(tr_pg_send(tr_system_ctx(sys), "fan", MSG_DATA, payload,
                                sizeof(payload), &sent),
                     TR_OK);
    assert_int_equal(sent, 3);
    answer r = ask(sys, src, OP_SEND, "fan", 0, 0);
    assert_int_equal(r.rc, TR_OK);
    assert_int_equal(r.ref, 3);
    /* A member sending to its own group gets a copy too. */
    r = ask(sys, b, OP_SEND, "fan", 0, 0);
    assert_int_equal(r.rc, TR_OK);
    assert_int_equal(r.ref, 3);
    sync_with(sys, a);
    sync_with(sys, b);
    sync_with(sys, c);
    assert_int_equal(seen_by(a, got, 8), 6);
    assert_int_equal(seen_by(b, got, 8), 3);
    assert_true(tr_addr_is_none(got[0].who)); /* from a plain thread */
    assert_true(tr_addr_eq(got[1].who, src));
    assert_true(tr_addr_eq(got[2].who, b));
    assert_int_equal(seen_by(c, got, 8), 0);
    assert_int_equal(tr_load_relaxed(&data_bad), 0);
    tr_test_shutdown(sys);
}

/* ---- bad input: OTP's errors and process_owner_check ---- */

/* tr_pg_monitor_members at its edges, from an `init`: too little room is
 * TR_EFULL with the count and no watch (no event comes of it), enough
 * room lists the members in join order, and bad arguments are refused.
 * Its atomicity is the churn test's. */
static tr_addr mm_first;
static tr_atomic(int) mm_rc[6];
static tr_atomic(uint64_t) mm_n[2];
static tr_atomic(uint64_t) mm_events;

static int
mm_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_addr list[4];
    size_t n = 99;
    uint64_t ref = 0;

    (void)state;
    (void)arg;
    tr_store_relaxed(&mm_rc[0],
                     tr_pg_monitor_members(ctx, "mm", &ref, list, 1, &n));
    tr_store_relaxed(&mm_n[0], n);
    tr_store_relaxed(&mm_rc[1],
                     tr_pg_monitor_members(ctx, "mm", &ref, list, 4, &n));
    tr_store_relaxed(&mm_n[1], n);
    mm_first = list[0];
    tr_store_relaxed(&mm_rc[2],
                     tr_pg_monitor_members(ctx, "mm", &ref, list, 4, NULL));
    tr_store_relaxed(&mm_rc[3],
                     tr_pg_monitor_members(ctx, "mm", &ref, NULL, 4, &n));
    tr_store_relaxed(&mm_rc[4],
                     tr_pg_monitor_members(ctx, "mm", NULL, list, 4, &n));
    tr_store_relaxed(&mm_rc[5],
                     tr_pg_monitor_members(ctx, "", &ref, list, 4, &n));
    return TR_OK;
}

static int
mm_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == TR_MSG_PG_JOIN || msg->type == TR_MSG_PG_LEAVE) {
        tr_faa_relaxed(&mm_events, 1);
        return TR_OK;
    }
    if (tr_msg_is_call(ctx, msg)) {
        answer a = {.rc = TR_OK};
        return tr_reply(ctx, msg, &a, sizeof(a));
    }
    return TR_OK;
}

static void
test_pg_monitor_members_lists_then_watches(void **state)
{
    static const tr_behaviour mm = {
        .name = "mm", .init = mm_init, .handle = mm_handle};
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, NULL);
    tr_addr b = spawn(sys, NULL);
    tr_addr w;
    tr_addr list[1];
    uint64_t ref;
    size_t n;
    answer ans;
    size_t len = 0;

    (void)state;
    tr_store_relaxed(&mm_events, 0);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, "mm"), TR_OK);
    assert_int_equal(ask_rc(sys, b, OP_JOIN, "mm"), TR_OK);
    assert_int_equal(tr_spawn(ctx, &mm, NULL, NULL, &w), TR_OK);
    assert_int_equal(tr_load_relaxed(&mm_rc[0]), TR_EFULL);
    assert_int_equal(tr_load_relaxed(&mm_n[0]), 2);
    assert_int_equal(tr_load_relaxed(&mm_rc[1]), TR_OK);
    assert_int_equal(tr_load_relaxed(&mm_n[1]), 2);
    assert_true(tr_addr_eq(mm_first, a));
    for (int i = 2; i < 6; i++) {
        assert_int_equal(tr_load_relaxed(&mm_rc[i]), TR_EINVAL);
    }
    /* One watch only: a leave is one event. */
    assert_int_equal(ask_rc(sys, b, OP_LEAVE, "mm"), TR_OK);
    assert_int_equal(
        tr_test_ask(ctx, w, REQ, NULL, 0, &ans, sizeof(ans), &len, 30000),
        TR_OK);
    assert_int_equal(tr_load_relaxed(&mm_events), 1);
    /* Not from a thread. */
    assert_int_equal(tr_pg_monitor_members(ctx, "mm", &ref, list, 1, &n),
                     TR_ESTATE);
    tr_test_shutdown(sys);
}

static void
test_pg_absurd_inputs_are_refused(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a = spawn(sys, NULL);
    tr_addr w = spawn(sys, NULL);
    char longest[TR_PG_NAME_MAX + 1];
    char too_long[TR_PG_NAME_MAX + 2];
    tr_addr list[2];
    size_t n = 99;
    size_t sent = 99;
    uint64_t ref = 0;
    seen got[2];

    reset();
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(too_long, 'y', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    /* A name of exactly TR_PG_NAME_MAX bytes is a name like any other,
     * and its events carry it whole. */
    answer m = ask(sys, w, OP_MONITOR, longest, 0, 0);
    assert_int_equal(m.rc, TR_OK);
    assert_int_equal(ask_rc(sys, a, OP_JOIN, longest), TR_OK);
    expect_members(sys, longest, &a, 1);
    assert_int_equal(tr_pg_send(ctx, longest, MSG_DATA, NULL, 0, &sent), TR_OK);
    assert_int_equal(sent, 1);
    sync_with(sys, w);
    assert_int_equal(seen_by(w, got, 2), 1);
    expect(&got[0], TR_MSG_PG_JOIN, m.ref, a, longest);
    /* One byte more, an empty name, no name. */
    const char *bad[] = {too_long, "", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ask_rc(sys, a, OP_JOIN, bad[i]), TR_EINVAL);
        assert_int_equal(ask_rc(sys, a, OP_LEAVE, bad[i]), TR_EINVAL);
        assert_int_equal(ask_rc(sys, a, OP_MONITOR, bad[i]), TR_EINVAL);
        assert_int_equal(ask_rc(sys, a, OP_SEND, bad[i]), TR_EINVAL);
        assert_int_equal(tr_pg_members(sys, bad[i], list, 2, &n), TR_EINVAL);
        assert_int_equal(tr_pg_send(ctx, bad[i], MSG_DATA, "x", 1, &sent),
                         TR_EINVAL);
    }
    /* No system, context, count or room; room without a buffer. */
    assert_int_equal(tr_pg_members(NULL, "g", list, 2, &n), TR_EINVAL);
    assert_int_equal(tr_pg_members(sys, "g", list, 2, NULL), TR_EINVAL);
    assert_int_equal(tr_pg_members(sys, "g", NULL, 1, &n), TR_EINVAL);
    assert_int_equal(tr_pg_members(sys, "g", NULL, 0, &n), TR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tr_pg_join(NULL, "g"), TR_EINVAL);
    assert_int_equal(tr_pg_leave(NULL, "g"), TR_EINVAL);
    assert_int_equal(tr_pg_monitor(NULL, "g", &ref), TR_EINVAL);
    assert_int_equal(tr_pg_demonitor(NULL, 1), TR_EINVAL);
    assert_int_equal(tr_pg_send(NULL, "g", MSG_DATA, "x", 1, &sent), TR_EINVAL);
    /* Only an actor joins, leaves or watches, and only for itself (OTP
     * refuses a process that is not local). */
    assert_int_equal(tr_pg_join(ctx, "g"), TR_ESTATE);
    assert_int_equal(tr_pg_leave(ctx, "g"), TR_ESTATE);
    assert_int_equal(tr_pg_monitor(ctx, "g", &ref), TR_ESTATE);
    assert_int_equal(tr_pg_demonitor(ctx, m.ref), TR_ESTATE);
    /* A send: the runtime's types, bytes that are not there, a size no
     * message holds. */
    assert_int_equal(tr_pg_send(ctx, longest, TR_MSG_DOWN, NULL, 0, &sent),
                     TR_EINVAL);
    assert_int_equal(tr_pg_send(ctx, longest, TR_MSG_PG_JOIN, NULL, 0, &sent),
                     TR_EINVAL);
    assert_int_equal(tr_pg_send(ctx, longest, MSG_DATA, NULL, 1, &sent),
                     TR_EINVAL);
    assert_int_equal(
        tr_pg_send(ctx, longest, MSG_DATA, "x", (size_t)UINT32_MAX + 1, &sent),
        TR_EINVAL);
    assert_int_equal(tr_pg_send(ctx, longest, MSG_DATA, NULL, 0, NULL), TR_OK);
    /* A demonitor of a reference never made. */
    assert_int_equal(ask(sys, w, OP_DEMONITOR, NULL, 0, m.ref + 1000).rc,
                     TR_ENOTFOUND);
    /* None of it disturbed the groups. */
    expect_members(sys, longest, &a, 1);
    assert_int_equal(ask_rc(sys, a, OP_LEAVE, longest), TR_OK);
    assert_int_equal(count(sys, longest), 0);
    tr_test_shutdown(sys);
}

/* ---- several workers: churn while a thread lists and sends ---- */

enum {
    CHURNERS = 16,
    BYSTANDERS = 4,
    ROUNDS = 100,
    STEPS = 8,
    MAX_JOINS = 3,
    LIST_CAP = CHURNERS * MAX_JOINS,
    SENDS_MAX = 4000,
};

static const char *const churn_group[2] = {"churn-a", "churn-b"};
static tr_addr churner_addr[CHURNERS];
static tr_atomic(uint32_t) churn_final[CHURNERS][2];
static tr_atomic(uint64_t) churn_rounds;
static tr_atomic(uint64_t) churn_bad;
static tr_atomic(int) lister_stop;
static tr_atomic(uint64_t) lister_rounds;
static tr_atomic(uint64_t) tally[2][2]; /* [group][0 join, 1 leave] */
/* The same for a watcher that starts mid-churn, and what it was listed. */
static tr_atomic(uint64_t) late_tally[2][2];
static tr_atomic(uint64_t) late_listed[2];

typedef struct churn_state {
    uint32_t idx;
    uint32_t n[2];
} churn_state;

/* A quarter of them stop half-way, in their groups. */
static bool
stops_half_way(uint32_t idx)
{
    return idx % 4 == 3;
}

static int
churner_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    churn_state *s = state;
    s->idx = *(const uint32_t *)arg;
    return TR_OK;
}

static int
churner_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    churn_state *s = state;
    uint32_t round;

    if (msg->type != MSG_CHURN) {
        return TR_OK;
    }
    memcpy(&round, msg->data, sizeof(round));
    for (uint32_t step = 0; step < STEPS; step++) {
        uint64_t r =
            tr_test_mix(((uint64_t)s->idx << 32 | (round * STEPS + step)) + 1);
        uint32_t g = (uint32_t)(r >> 8) & 1;
        if (s->n[g] < MAX_JOINS && ((r & 1) != 0 || s->n[g] == 0)) {
            if (tr_pg_join(ctx, churn_group[g]) == TR_OK) {
                s->n[g]++;
            } else {
                tr_faa_relaxed(&churn_bad, 1);
            }
        } else if (tr_pg_leave(ctx, churn_group[g]) == TR_OK) {
            s->n[g]--;
        } else {
            tr_faa_relaxed(&churn_bad, 1);
        }
    }
    bool stop = stops_half_way(s->idx) && round == ROUNDS / 2;
    for (int g = 0; g < 2; g++) {
        tr_store_rel(&churn_final[s->idx][g], stop ? 0 : s->n[g]);
    }
    tr_faa_acqrel(&churn_rounds, 1);
    return stop ? tr_stop(ctx) : TR_OK;
}

static const tr_behaviour churner = {.name = "churner",
                                     .state_size = sizeof(churn_state),
                                     .init = churner_init,
                                     .handle = churner_handle};

/* Watches both groups and counts their events in the counts its start
 * argument names: `tally`, from before any join, or `late_tally`, from
 * mid-churn, with the members listed as the watch began (OTP's
 * monitor/2), in `late_listed`. */
typedef tr_atomic(uint64_t) tally_counts[2][2];

static int
tally_init(tr_ctx *ctx, void *state, const void *arg)
{
    tally_counts *counts = (tally_counts *)arg;
    uint64_t ref;
    int rc = TR_OK;

    memcpy(state, &counts, sizeof(counts));
    for (int g = 0; g < 2 && rc == TR_OK; g++) {
        if (counts == &tally) {
            rc = tr_pg_monitor(ctx, churn_group[g], &ref);
        } else {
            tr_addr list[LIST_CAP];
            size_t n = 0;
            rc = tr_pg_monitor_members(ctx, churn_group[g], &ref, list,
                                       LIST_CAP, &n);
            tr_store_rel(&late_listed[g], n);
        }
    }
    return rc;
}

static int
tally_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tally_counts *counts;

    memcpy(&counts, state, sizeof(counts));
    if (msg->type == TR_MSG_PG_JOIN || msg->type == TR_MSG_PG_LEAVE) {
        const tr_pg_event *e = msg->data;
        int g = strcmp(e->group, churn_group[0]) == 0 ? 0 : 1;
        tr_faa_relaxed(&(*counts)[g][msg->type == TR_MSG_PG_JOIN ? 0 : 1], 1);
        return TR_OK;
    }
    if (tr_msg_is_call(ctx, msg)) {
        answer a = {.rc = TR_OK};
        return tr_reply(ctx, msg, &a, sizeof(a));
    }
    return TR_OK;
}

static const tr_behaviour tally_b = {.name = "tally",
                                     .state_size = sizeof(tally_counts *),
                                     .init = tally_init,
                                     .handle = tally_handle};

static int
churner_index(tr_addr a)
{
    for (int i = 0; i < CHURNERS; i++) {
        if (tr_addr_eq(churner_addr[i], a)) {
            return i;
        }
    }
    return -1;
}

/* Lists both groups, and sends to them, until told to stop: every listed
 * address is a churner's, none more often than it can have joined. */
static void *
list_and_send(void *arg)
{
    tr_system *sys = arg;
    tr_addr list[LIST_CAP];
    uint32_t seen_times[CHURNERS];

    for (uint64_t it = 0; !tr_load_acq(&lister_stop); it++) {
        for (int g = 0; g < 2; g++) {
            size_t n = 0;
            size_t sent = 0;
            if (tr_pg_members(sys, churn_group[g], list, LIST_CAP, &n) !=
                    TR_OK ||
                n > LIST_CAP) {
                tr_faa_relaxed(&churn_bad, 1);
                continue;
            }
            memset(seen_times, 0, sizeof(seen_times));
            for (size_t i = 0; i < n; i++) {
                int k = churner_index(list[i]);
                if (k < 0 || ++seen_times[k] > MAX_JOINS) {
                    tr_faa_relaxed(&churn_bad, 1);
                }
            }
            if (it < SENDS_MAX &&
                (tr_pg_send(tr_system_ctx(sys), churn_group[g], MSG_DATA, &it,
                            sizeof(it), &sent) != TR_OK ||
                 sent > LIST_CAP)) {
                tr_faa_relaxed(&churn_bad, 1);
            }
        }
        tr_faa_acqrel(&lister_rounds, 1);
    }
    return NULL;
}

static void
test_pg_churn_on_workers_lists_only_members(void **state)
{
    (void)state;
    static uint32_t idx[CHURNERS];
    tr_system *sys = tr_test_system(4);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr bystander[BYSTANDERS];
    tr_addr watcher;
    tr_addr late = TR_ADDR_NONE;
    pthread_t lister;
    uint64_t rounds_due = 0;

    tr_store_relaxed(&churn_rounds, 0);
    tr_store_relaxed(&churn_bad, 0);
    tr_store_relaxed(&lister_stop, 0);
    tr_store_relaxed(&lister_rounds, 0);
    for (int g = 0; g < 2; g++) {
        tr_store_relaxed(&tally[g][0], 0);
        tr_store_relaxed(&tally[g][1], 0);
        tr_store_relaxed(&late_tally[g][0], 0);
        tr_store_relaxed(&late_tally[g][1], 0);
    }
    assert_int_equal(tr_spawn(ctx, &tally_b, &tally, NULL, &watcher), TR_OK);
    for (uint32_t i = 0; i < CHURNERS; i++) {
        idx[i] = i;
        tr_store_relaxed(&churn_final[i][0], 0);
        tr_store_relaxed(&churn_final[i][1], 0);
        assert_int_equal(
            tr_spawn(ctx, &churner, &idx[i], NULL, &churner_addr[i]), TR_OK);
        rounds_due += stops_half_way(i) ? ROUNDS / 2 + 1 : ROUNDS;
    }
    for (int i = 0; i < BYSTANDERS; i++) {
        bystander[i] = spawn(sys, NULL); /* never joins: never listed */
    }
    assert_int_equal(pthread_create(&lister, NULL, list_and_send, sys), 0);
    await(&lister_rounds, 1);
    for (uint32_t r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CHURNERS; i++) {
            int rc = tr_send(ctx, churner_addr[i], MSG_CHURN, &r, sizeof(r));
            assert_true(rc == TR_OK || (rc == TR_ENOACTOR && r > ROUNDS / 2));
        }
        if (r == ROUNDS / 4) {
            /* Its init runs here, while the churners join and leave on
             * the workers. */
            assert_int_equal(tr_spawn(ctx, &tally_b, &late_tally, NULL, &late),
                             TR_OK);
        }
    }
    await(&churn_rounds, rounds_due);
    for (uint32_t i = 0; i < CHURNERS; i++) {
        if (stops_half_way(i)) {
            assert_true(tr_test_wait_stopped(sys, churner_addr[i], 30000));
        }
    }
    tr_store_rel(&lister_stop, 1);
    assert_int_equal(pthread_join(lister, NULL), 0);
    assert_int_equal(tr_load_relaxed(&churn_bad), 0);
    /* Quiet now: the lists hold exactly what each churner kept. */
    for (int g = 0; g < 2; g++) {
        tr_addr list[LIST_CAP];
        uint32_t times[CHURNERS] = {0};
        size_t want = 0;
        size_t n = 0;
        size_t sent = 0;
        for (int i = 0; i < CHURNERS; i++) {
            want += tr_load_acq(&churn_final[i][g]);
        }
        assert_int_equal(tr_pg_members(sys, churn_group[g], list, LIST_CAP, &n),
                         TR_OK);
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++) {
            int k = churner_index(list[i]);
            assert_true(k >= 0);
            times[k]++;
        }
        for (int i = 0; i < CHURNERS; i++) {
            assert_int_equal(times[i], tr_load_acq(&churn_final[i][g]));
        }
        assert_int_equal(
            tr_pg_send(ctx, churn_group[g], MSG_DATA, "x", 1, &sent), TR_OK);
        assert_int_equal(sent, n);
        /* The watcher's events add up to the same. */
        answer a;
        size_t len = 0;
        assert_int_equal(
            tr_test_ask(ctx, watcher, REQ, NULL, 0, &a, sizeof(a), &len, 30000),
            TR_OK);
        assert_int_equal(tr_load_acq(&tally[g][0]) - tr_load_acq(&tally[g][1]),
                         n);
        /* And the late one's, from what it was listed: every membership
         * listed or heard of, none both. */
        assert_int_equal(
            tr_test_ask(ctx, late, REQ, NULL, 0, &a, sizeof(a), &len, 30000),
            TR_OK);
        assert_int_equal(tr_load_acq(&late_listed[g]) +
                             tr_load_acq(&late_tally[g][0]) -
                             tr_load_acq(&late_tally[g][1]),
                         n);
    }
    for (int i = 0; i < BYSTANDERS; i++) {
        assert_int_equal(ask_rc(sys, bystander[i], OP_LEAVE, churn_group[0]),
                         TR_ENOTFOUND);
    }
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_single_joins_three_times_and_leaves_as_often),
        cmocka_unit_test(test_pg_monitor_members_lists_then_watches),
        cmocka_unit_test(test_pg_members_in_join_order_with_duplicates),
        cmocka_unit_test(test_pg_group_goes_with_its_last_member),
        cmocka_unit_test(test_pg_leave_racing_the_end_ends_the_membership_once),
        cmocka_unit_test(
            test_pg_member_end_leaves_every_group_and_watchers_hear),
        cmocka_unit_test(test_pg_ten_members_three_end_and_the_rest_stay),
        cmocka_unit_test(test_pg_sixteen_joins_four_leaves_then_the_end),
        cmocka_unit_test(test_pg_monitor_events_carry_group_member_and_order),
        cmocka_unit_test(test_pg_demonitor_drops_the_events_already_queued),
        cmocka_unit_test(test_pg_actor_watching_its_own_group_ends_cleanly),
        cmocka_unit_test(test_pg_two_watches_two_joins_one_event_each),
        cmocka_unit_test(test_pg_restart_in_place_keeps_only_what_init_joins),
        cmocka_unit_test(test_pg_restarted_watcher_hears_only_its_new_watch),
        cmocka_unit_test(test_pg_one_actor_in_ten_thousand_groups),
        cmocka_unit_test(test_pg_order_kept_as_most_members_and_watchers_go),
        cmocka_unit_test(test_pg_hundred_thousand_members_end_together),
        cmocka_unit_test(test_pg_out_of_memory_changes_nothing),
        cmocka_unit_test(test_pg_one_actor_watching_ten_thousand_groups),
        cmocka_unit_test(test_pg_send_to_ten_thousand_copies_once),
        cmocka_unit_test(test_pg_send_gives_each_membership_one_copy),
        cmocka_unit_test(test_pg_absurd_inputs_are_refused),
        cmocka_unit_test(test_pg_churn_on_workers_lists_only_members),
    };
    return cmocka_run_group_tests_name("pg", tests, NULL, NULL);
}
