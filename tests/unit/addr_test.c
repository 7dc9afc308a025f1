/*
 * Addresses: a stale address never reaches a later actor (a slot that has
 * used its last generation retires), addresses carry their system, a fork
 * child cannot use its parent's system, and timer ids never wrap either.
 */
#include "actors/actor.h"
#include "scheduler/timer.h"
#include "support/tr_test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

enum { REQ_SPAWN = 1, REQ_STOP_SELF = 2, MSG_PING = 3 };

static tr_atomic(uint64_t) pings;

static int
child_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == REQ_STOP_SELF) {
        return tr_stop(ctx);
    }
    tr_faa_relaxed(&pings, 1);
    return TR_OK;
}

static const tr_behaviour child_b = {.name = "child", .handle = child_handle};

/* Spawns a child on its worker and answers with the child's address, so
 * that the slot a child stopped on that worker frees is the next one the
 * spawner takes (the per-worker free list is LIFO). */
static int
spawner_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_addr a = TR_ADDR_NONE;
    (void)state;
    if (msg->type != REQ_SPAWN) {
        return TR_OK;
    }
    if (tr_spawn(ctx, &child_b, NULL, NULL, &a) != TR_OK) {
        a = TR_ADDR_NONE;
    }
    return tr_reply(ctx, msg, &a, sizeof(a));
}

static const tr_behaviour spawner_b = {.name = "spawner",
                                       .handle = spawner_handle};

static tr_addr
spawn_via(tr_ctx *ctx, tr_addr spawner)
{
    tr_addr a = TR_ADDR_NONE;
    size_t len = 0;
    assert_int_equal(tr_test_ask(ctx, spawner, REQ_SPAWN, NULL, 0, &a,
                                 sizeof(a), &len, 5000),
                     TR_OK);
    assert_int_equal(len, sizeof(a));
    assert_false(tr_addr_is_none(a));
    return a;
}

/* Stop `a` from inside (on the worker) and wait until it has ended. */
static void
stop_and_wait(tr_system *sys, tr_addr a)
{
    assert_int_equal(tr_send(tr_system_ctx(sys), a, REQ_STOP_SELF, NULL, 0),
                     TR_OK);
    assert_true(tr_test_wait_stopped(sys, a, 5000));
}

static void
test_addr_slot_retires_after_its_last_generation(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(1);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr spawner;
    assert_int_equal(tr_spawn(ctx, &spawner_b, NULL, NULL, &spawner), TR_OK);

    tr_addr first = spawn_via(ctx, spawner);
    uint32_t index = tr__id_index(first.id);
    tr_actor *slot = tr__table_slot(sys->table, first.id);
    assert_non_null(slot);
    stop_and_wait(sys, first);

    /* Drive the free slot to the generation before its last live one. */
    tr_store_seqcst(&slot->gen, TR_GEN_MAX - 1);
    tr_addr last = spawn_via(ctx, spawner);
    assert_int_equal(tr__id_index(last.id), index);
    assert_true(tr__id_gen(last.id) == TR_GEN_MAX);
    assert_int_equal(tr_send(ctx, last, MSG_PING, NULL, 0), TR_OK);
    stop_and_wait(sys, last);
    assert_true(tr_load_seqcst(&slot->gen) > TR_GEN_MAX);

    /* The slot never comes back: a wrapped generation would have given
     * the next incarnation generation 1, the one `first` names. */
    for (int i = 0; i < 1000; i++) {
        tr_addr next = spawn_via(ctx, spawner);
        assert_int_not_equal(tr__id_index(next.id), index);
        stop_and_wait(sys, next);
    }
    assert_int_equal(tr_send(ctx, first, MSG_PING, NULL, 0), TR_ENOACTOR);
    assert_int_equal(tr_send(ctx, last, MSG_PING, NULL, 0), TR_ENOACTOR);
    assert_int_equal(tr_actor_stop(ctx, last), TR_ENOACTOR);
    tr_test_shutdown(sys);
}

static void
test_addr_of_another_system_is_refused(void **state)
{
    (void)state;
    tr_system *one = tr_test_system(1);
    tr_system *two = tr_test_system(1);
    tr_addr a;
    tr_addr b;
    tr_actor_stats st;

    assert_int_equal(tr_spawn(tr_system_ctx(one), &child_b, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(two), &child_b, NULL, NULL, &b),
                     TR_OK);
    /* Same slot and generation in both systems: only the node differs. */
    assert_true(a.id == b.id);
    assert_true(a.node != 0 && b.node != 0 && a.node != b.node);
    assert_false(tr_addr_eq(a, b));

    tr_ctx *ctx = tr_system_ctx(two);
    tr_store_relaxed(&pings, 0);
    assert_int_equal(tr_send(ctx, a, MSG_PING, NULL, 0), TR_EFOREIGN);
    assert_int_equal(tr_send(ctx, a, MSG_PING, NULL, 0), TR_EFOREIGN);
    assert_int_equal(tr_actor_stop(ctx, a), TR_EFOREIGN);
    assert_int_equal(tr_register(ctx, "other", a), TR_EFOREIGN);
    assert_int_equal(tr_actor_stats_get(two, a, &st), TR_EFOREIGN);
    assert_int_equal(tr_send_after(ctx, a, MSG_PING, NULL, 0, 1, NULL),
                     TR_EFOREIGN);
    /* A hand-made address with node 0 means "this system". */
    tr_addr local = {.id = b.id};
    assert_true(tr_addr_eq(local, b));
    assert_int_equal(tr_send(ctx, local, MSG_PING, NULL, 0), TR_OK);
    assert_int_equal(tr_send(ctx, b, MSG_PING, NULL, 0), TR_OK);
    assert_true(tr_test_wait_handled(two, 2, 5000));
    assert_int_equal(tr_load_relaxed(&pings), 2);
    tr_test_shutdown(one);
    tr_test_shutdown(two);
}

/* In a fork child, every call on the parent's system is refused at once. */
static int
forked_calls(tr_system *sys, tr_addr a)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    char buf[8];
    size_t len;
    tr_addr b;

    tr_system_stats st;
    tr_actor_stats ast;
    tr_io_stats io;
    tr_timer t = {0};
    uint16_t port;
    size_t n;
    tr_reply_buf reply = {0};
    tr_signal sig;
    tr_child_counts counts;
    const tr_sup_spec spec = {.name = "forked"};

    alarm(10); /* a hang fails the test instead of stalling it */
    /* The exit status names the first call that was not refused. */
    const int got[] = {
        tr_send(ctx, a, MSG_PING, NULL, 0),
        tr_test_ask(ctx, a, MSG_PING, NULL, 0, buf, sizeof(buf), &len, 0),
        tr_spawn(ctx, &child_b, NULL, NULL, &b),
        tr_send_wait(ctx, a, MSG_PING, NULL, 0, tr_ms(100)),
        tr_send_after(ctx, a, MSG_PING, NULL, 0, 1, &t),
        tr_send_interval(ctx, a, MSG_PING, NULL, 0, 1, &t),
        tr_ask_wait(ctx, a, MSG_PING, NULL, 0, &reply, tr_ms(100)),
        tr_actor_wait(ctx, a, tr_ms(100), &sig),
        tr_actor_close(ctx, a),
        tr_actor_stop(ctx, a),
        tr_pg_send(ctx, "group", MSG_PING, NULL, 0, &n),
        tr_sup_start(ctx, &spec, NULL, &b),
        tr_sup_count_children_wait(ctx, a, &counts, tr_ms(100)),
        tr_register(ctx, "forked", a),
        tr_unregister(ctx, "forked"),
        tr_whereis(sys, "forked", &b),
        tr_whereis_path(sys, "/top", &b),
        tr_pg_members(sys, "group", NULL, 0, &n),
        tr_system_stats_get(sys, &st),
        tr_actor_stats_get(sys, a, &ast),
        tr_timer_cancel(sys, t),
        tr_clock_advance(sys, 1),
        tr_inspect_snapshot(sys, TR_INSPECT_JSON, buf, sizeof(buf), &len),
        tr_inspect_serve(sys, "127.0.0.1:0", NULL, &port),
        tr_inspect_stop(sys),
        tr_io_stats_get(sys, &io),
        tr_io_port(sys, TR_IO_NONE, &port),
        tr_system_wait(sys, TR_NOWAIT),
        tr_system_shutdown(sys, tr_ms(1000)),
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(got); i++) {
        if (got[i] != TR_EFORKED) {
            return 1 + (int)i;
        }
    }
    return 0;
}

static void
test_addr_fork_child_cannot_use_the_parent_system(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_addr a;
    int status = 0;

    assert_int_equal(tr_spawn(tr_system_ctx(sys), &child_b, NULL, NULL, &a),
                     TR_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(forked_calls(sys, a));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* else: which call */
    /* The parent's system is untouched. */
    assert_int_equal(tr_send(tr_system_ctx(sys), a, MSG_PING, NULL, 0), TR_OK);
    tr_test_shutdown(sys);
}

/*
 * A name looked up in a fork child while the parent's workers register
 * and unregister names: the child never takes a lock that a parent thread
 * may have held at the fork (it hung about one fork in ten before).
 */
enum { MSG_CHURN = 4 };

static int
churn_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    for (int i = 0; i < 100; i++) {
        (void)tr_register(ctx, "churn", tr_self(ctx));
        (void)tr_unregister(ctx, "churn");
    }
    return tr_send(ctx, tr_self(ctx), MSG_CHURN, NULL, 0);
}

static const tr_behaviour churn_b = {.name = "churn", .handle = churn_handle};

static void
test_addr_fork_child_never_waits_on_the_parents_locks(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr c;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_spawn(ctx, &churn_b, NULL, NULL, &c), TR_OK);
        assert_int_equal(tr_send(ctx, c, MSG_CHURN, NULL, 0), TR_OK);
    }
    for (int i = 0; i < 40; i++) {
        int status = 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            tr_addr b;
            alarm(5);
            _exit(tr_whereis(sys, "churn", &b) == TR_EFORKED &&
                          tr_register(tr_system_ctx(sys), "x", b) == TR_EFORKED
                      ? 0
                      : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status)); /* not killed by the alarm */
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    tr_test_shutdown(sys);
}

static void
test_addr_prints_as_node_slot_generation(void **state)
{
    (void)state;
    char buf[64];
    tr_addr a = {.id = ((uint64_t)5 << TR_ADDR_INDEX_BITS) | 7, .node = 0xab};

    snprintf(buf, sizeof(buf), TR_ADDR_FMT, TR_ADDR_ARGS(a));
    assert_string_equal(buf, "<ab:7.5>");
}

static void
no_fire(void *arg, bool last)
{
    (void)arg;
    (void)last;
}

static void
no_drop(void *arg)
{
    (void)arg;
}

static void
test_addr_timer_slot_retires_after_its_last_generation(void **state)
{
    (void)state;
    tr_timers *t;
    uint64_t first;
    uint64_t last;
    uint64_t next;

    assert_int_equal(tr__timers_create(true, no_fire, no_drop, &t), TR_OK);
    assert_int_equal(tr__timers_add(t, 1000000, 0, NULL, &first), TR_OK);
    assert_true(tr__timers_cancel(t, first));
    tr__timers_set_gen(t, first, TR_TIMER_GEN_MAX);
    assert_int_equal(tr__timers_add(t, 1000000, 0, NULL, &last), TR_OK);
    assert_true((last & (TR_TIMER_SLOTS - 1)) ==
                (first & (TR_TIMER_SLOTS - 1)));
    assert_true(last >> TR_TIMER_SLOT_BITS == TR_TIMER_GEN_MAX);
    assert_true(tr__timers_cancel(t, last));
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tr__timers_add(t, 1000000, 0, NULL, &next), TR_OK);
        assert_true((next & (TR_TIMER_SLOTS - 1)) !=
                    (first & (TR_TIMER_SLOTS - 1)));
        assert_true(tr__timers_cancel(t, next));
    }
    assert_false(tr__timers_cancel(t, first));
    assert_false(tr__timers_cancel(t, last));
    tr__timers_destroy(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_slot_retires_after_its_last_generation),
        cmocka_unit_test(test_addr_of_another_system_is_refused),
        cmocka_unit_test(test_addr_fork_child_cannot_use_the_parent_system),
        cmocka_unit_test(test_addr_fork_child_never_waits_on_the_parents_locks),
        cmocka_unit_test(test_addr_prints_as_node_slot_generation),
        cmocka_unit_test(
            test_addr_timer_slot_retires_after_its_last_generation),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
