/*
 * Process groups: join and leave (several times), listing, watching, a
 * member's end, a restart in place, and a send to 10,000 members that
 * copies the payload once.
 */
#include "support/tr_test.h"

enum {
    MSG_JOIN = 1,
    MSG_LEAVE = 2,
    MSG_WATCH = 3,
    MSG_UNWATCH = 4,
    MSG_CRASH = 5,
    MSG_DATA = 6,
};

static tr_atomic(int) last_rc;
static tr_atomic(uint64_t) joins_seen;
static tr_atomic(uint64_t) leaves_seen;
static tr_atomic(uint64_t) data_seen;
static tr_atomic(uint64_t) data_bad;
static tr_atomic(const void *) data_ptr;
static tr_atomic(int) data_ptr_differs;
static uint64_t watch_ref;

static void
reset(void)
{
    tr_store_relaxed(&last_rc, 0);
    tr_store_relaxed(&joins_seen, 0);
    tr_store_relaxed(&leaves_seen, 0);
    tr_store_relaxed(&data_seen, 0);
    tr_store_relaxed(&data_bad, 0);
    tr_store_relaxed(&data_ptr, NULL);
    tr_store_relaxed(&data_ptr_differs, 0);
}

static int
member_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    /* `arg` names a group to join at every start (restarts included). */
    return arg != NULL ? tr_pg_join(ctx, arg) : TR_OK;
}

static int
member_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    switch (msg->type) {
    case MSG_JOIN:
        tr_store_rel(&last_rc, tr_pg_join(ctx, msg->data) + 1000);
        return TR_OK;
    case MSG_LEAVE:
        tr_store_rel(&last_rc, tr_pg_leave(ctx, msg->data) + 1000);
        return TR_OK;
    case MSG_WATCH:
        tr_store_rel(&last_rc,
                     tr_pg_monitor(ctx, msg->data, &watch_ref) + 1000);
        return TR_OK;
    case MSG_UNWATCH:
        tr_store_rel(&last_rc, tr_pg_demonitor(ctx, watch_ref) + 1000);
        return TR_OK;
    case MSG_CRASH:
        return tr_fail(ctx, -9, "asked to crash");
    case MSG_DATA: {
        const unsigned char *p = msg->data;
        for (uint32_t i = 0; i < msg->size; i++) {
            if (p[i] != (unsigned char)i) {
                tr_faa_relaxed(&data_bad, 1);
                break;
            }
        }
        const void *expected = NULL;
        if (!tr_cas_seqcst(&data_ptr, &expected, msg->data) &&
            expected != msg->data) {
            tr_store_relaxed(&data_ptr_differs, 1);
        }
        tr_faa_relaxed(&data_seen, 1);
        return TR_OK;
    }
    case TR_MSG_PG_JOIN:
    case TR_MSG_PG_LEAVE: {
        const tr_pg_event *e = msg->data;
        if (e->ref == watch_ref && strcmp(e->group, "g") == 0) {
            tr_faa_relaxed(
                msg->type == TR_MSG_PG_JOIN ? &joins_seen : &leaves_seen, 1);
        }
        return TR_OK;
    }
    default:
        return TR_OK;
    }
}

static const tr_behaviour member = {
    .name = "member", .init = member_init, .handle = member_handle};

static bool
answered(void *arg)
{
    (void)arg;
    return tr_load_acq(&last_rc) != 0;
}

/* Ask `a` to do `type` with `group`, and return its answer. */
static int
ask_to(tr_system *sys, tr_addr a, uint32_t type, const char *group)
{
    tr_store_relaxed(&last_rc, 0);
    assert_int_equal(
        tr_send(tr_system_ctx(sys), a, type, group, strlen(group) + 1), TR_OK);
    assert_true(tr_test_wait_until(answered, NULL, 10000));
    return tr_load_acq(&last_rc) - 1000;
}

static size_t
count(tr_system *sys, const char *group)
{
    size_t n = 99;
    assert_int_equal(tr_pg_members(sys, group, NULL, 0, &n), TR_OK);
    return n;
}

typedef struct {
    uint64_t *var;
    uint64_t want;
} wait_for;

static bool
reached(void *arg)
{
    wait_for *w = arg;
    return tr_load_acq((tr_atomic(uint64_t) *)w->var) >= w->want;
}

static void
await(tr_atomic(uint64_t) * var, uint64_t want)
{
    wait_for w = {(uint64_t *)var, want};
    assert_true(tr_test_wait_until(reached, &w, 10000));
}

static void
test_pg_join_leave_and_list(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a;
    tr_addr b;
    tr_addr list[4];
    size_t n;

    reset();
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, NULL, NULL, &b),
                     TR_OK);
    assert_int_equal(count(sys, "g"), 0);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(ask_to(sys, b, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(tr_pg_members(sys, "g", list, 4, &n), TR_OK);
    assert_int_equal(n, 3);
    assert_true(tr_addr_eq(list[0], a) && tr_addr_eq(list[1], b) &&
                tr_addr_eq(list[2], a));
    assert_int_equal(tr_pg_members(sys, "g", list, 1, &n), TR_OK);
    assert_int_equal(n, 3); /* the total, beyond the room given */
    assert_int_equal(ask_to(sys, a, MSG_LEAVE, "g"), TR_OK);
    assert_int_equal(count(sys, "g"), 2);
    assert_int_equal(ask_to(sys, a, MSG_LEAVE, "g"), TR_OK);
    assert_int_equal(ask_to(sys, a, MSG_LEAVE, "g"), TR_ENOTFOUND);
    assert_int_equal(ask_to(sys, a, MSG_LEAVE, "other"), TR_ENOTFOUND);
    assert_int_equal(count(sys, "g"), 1);
    /* Bad input. */
    char longname[TR_PG_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(ask_to(sys, a, MSG_JOIN, longname), TR_EINVAL);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, ""), TR_EINVAL);
    assert_int_equal(tr_pg_members(sys, "g", NULL, 1, &n), TR_EINVAL);
    assert_int_equal(tr_pg_join(tr_system_ctx(sys), "g"), TR_ESTATE);
    assert_int_equal(
        tr_pg_send(tr_system_ctx(sys), "g", TR_MSG_DOWN, NULL, 0, NULL),
        TR_EINVAL);
    tr_test_shutdown(sys);
}

static void
test_pg_member_end_leaves_every_group_and_watchers_hear(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr w;
    tr_addr a;

    reset();
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, NULL, NULL, &w),
                     TR_OK);
    assert_int_equal(ask_to(sys, w, MSG_WATCH, "g"), TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(ask_to(sys, a, MSG_JOIN, "h"), TR_OK);
    await(&joins_seen, 2);
    assert_int_equal(tr_actor_stop(tr_system_ctx(sys), a), TR_OK);
    assert_true(tr_test_wait_stopped(sys, a, 5000));
    await(&leaves_seen, 2);
    assert_int_equal(count(sys, "g"), 0);
    assert_int_equal(count(sys, "h"), 0);
    /* After demonitor, nothing more. */
    assert_int_equal(ask_to(sys, w, MSG_UNWATCH, "g"), TR_OK);
    assert_int_equal(ask_to(sys, w, MSG_UNWATCH, "g"), TR_ENOTFOUND);
    tr_addr c;
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, NULL, NULL, &c),
                     TR_OK);
    assert_int_equal(ask_to(sys, c, MSG_JOIN, "g"), TR_OK);
    tr_test_shutdown(sys);
    assert_int_equal(tr_load_relaxed(&joins_seen), 2);
    assert_int_equal(tr_load_relaxed(&leaves_seen), 2);
}

static void
test_pg_restart_in_place_keeps_only_what_init_joins(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    const tr_child_spec kids[] = {
        {.id = "rejoins", .behaviour = &member, .arg = "g"},
        {.id = "forgets", .behaviour = &member, .arg = NULL},
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

    reset();
    assert_int_equal(tr_sup_start(tr_system_ctx(sys), &spec, NULL, &sup),
                     TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/pgsup/rejoins", &rejoins), TR_OK);
    assert_int_equal(tr_whereis_path(sys, "/pgsup/forgets", &forgets), TR_OK);
    assert_int_equal(ask_to(sys, forgets, MSG_JOIN, "g"), TR_OK);
    assert_int_equal(count(sys, "g"), 2);
    /* Both crash and are restarted in place (same addresses). */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(
            tr_send(tr_system_ctx(sys), rejoins, MSG_CRASH, NULL, 0), TR_OK);
        assert_int_equal(
            tr_send(tr_system_ctx(sys), forgets, MSG_CRASH, NULL, 0), TR_OK);
        /* A join after the crash is handled by the restarted instance. */
        assert_int_equal(ask_to(sys, rejoins, MSG_LEAVE, "none"), TR_ENOTFOUND);
        assert_int_equal(ask_to(sys, forgets, MSG_LEAVE, "none"), TR_ENOTFOUND);
        tr_addr list[4];
        size_t n;
        assert_int_equal(tr_pg_members(sys, "g", list, 4, &n), TR_OK);
        assert_int_equal(n, 1); /* the one whose init joined; never twice */
        assert_true(tr_addr_eq(list[0], rejoins));
    }
    tr_test_shutdown(sys);
}

static void
test_pg_send_to_ten_thousand_copies_once(void **state)
{
    (void)state;
    enum { N = 10000, SIZE = 4096 };
    tr_system *sys = tr_test_system(2);
    unsigned char payload[SIZE];
    size_t sent = 0;

    reset();
    for (int i = 0; i < SIZE; i++) {
        payload[i] = (unsigned char)i;
    }
    for (int i = 0; i < N; i++) {
        tr_addr a;
        assert_int_equal(tr_spawn(tr_system_ctx(sys), &member, "big", NULL, &a),
                         TR_OK);
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
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_join_leave_and_list),
        cmocka_unit_test(
            test_pg_member_end_leaves_every_group_and_watchers_hear),
        cmocka_unit_test(test_pg_restart_in_place_keeps_only_what_init_joins),
        cmocka_unit_test(test_pg_send_to_ten_thousand_copies_once),
    };
    return cmocka_run_group_tests_name("pg", tests, NULL, NULL);
}
