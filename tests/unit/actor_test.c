/*
 * Actors: spawning, sending (copy and zero-copy), dispatch tables and
 * become, stopping and failing, dead letters, bounded mailboxes, counters,
 * misuse, and shutdown.
 *
 * Handlers never assert: they report to a probe mailbox that the test
 * thread reads with a deadline.
 */
#include "support/tr_test.h"

#include "actors/actor.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

enum {
    MSG_ECHO = 1,     /* report the payload (an int) to the probe */
    MSG_FAIL = 2,     /* return TR_EINVAL from the handler */
    MSG_STOP = 3,     /* tr_stop */
    MSG_TRFAIL = 4,   /* tr_fail with a text */
    MSG_BECOME = 5,   /* switch to the alternate table */
    MSG_SLOW = 6,     /* spin until released, then report */
    MSG_ASK_STOP = 7, /* ask for its own stop (tr_actor_stop), then report */
};

/* Probe values reported besides echoes. */
enum {
    PROBE_INIT = 1000,
    PROBE_STOP_NORMAL = 2000,
    PROBE_STOP_SHUTDOWN = 2001,
    PROBE_STOP_FAILED = 2002,
    PROBE_OTHERWISE = 3000,
    PROBE_ALT = 4000,
};

typedef struct probe_state {
    tr_mailbox *probe;
    int echoes;
} probe_state;

typedef struct start_arg {
    tr_mailbox *probe;
    int init_rc;
    bool stop_in_init;
    bool fail_in_init;
} start_arg;

static tr_atomic(bool) slow_release;

static void
report(tr_mailbox *probe, int v)
{
    int rc = tr_mailbox_send(probe, &v, sizeof(v));
    (void)rc; /* an unbounded mailbox only fails on OOM */
}

static int
report_within(tr_mailbox *probe, int timeout_ms)
{
    int v = -1;
    size_t len;
    if (tr_mailbox_recv_wait(probe, &v, sizeof(v), &len, tr_ms(timeout_ms)) !=
        TR_OK) {
        return -1;
    }
    return v;
}

static int
next_report(tr_mailbox *probe)
{
    return report_within(probe, 10000);
}

static int
probe_init(tr_ctx *ctx, void *state, const void *arg)
{
    probe_state *s = state;
    const start_arg *a = arg;

    s->probe = a->probe;
    report(s->probe, PROBE_INIT);
    if (a->stop_in_init) {
        return tr_stop(ctx);
    }
    if (a->fail_in_init) {
        return tr_fail(ctx, -66, "no config");
    }
    return a->init_rc;
}

static int
on_echo(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    int v;

    (void)ctx;
    memcpy(&v, msg->data, sizeof(v));
    s->echoes++;
    report(s->probe, v);
    return TR_OK;
}

static int
on_fail(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_EINVAL;
}

static int
on_stop(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    return tr_stop(ctx);
}

static int
on_trfail(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    return tr_fail(ctx, -77, "disk on fire");
}

static int
on_otherwise(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    (void)ctx;
    report(s->probe, PROBE_OTHERWISE + (int)msg->type);
    return TR_OK;
}

static int
on_alt(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    (void)msg;
    report(s->probe, PROBE_ALT);
    return tr_become(ctx, NULL); /* back to the behaviour's table */
}

static const tr_handler alt_rows[] = {{MSG_ECHO, on_alt}};
static const tr_dispatch alt_table = {alt_rows, 1, NULL};

static int
on_become(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    return tr_become(ctx, &alt_table);
}

static int
on_slow(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    (void)ctx;
    (void)msg;
    report(s->probe, MSG_SLOW);
    while (!tr_load_acq(&slow_release)) {
    }
    return TR_OK;
}

static int
on_ask_stop(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    int rc = tr_actor_stop(ctx, tr_self(ctx));

    (void)msg;
    report(s->probe, rc == TR_OK ? MSG_ASK_STOP : rc);
    return TR_OK;
}

static void
probe_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    probe_state *s = state;
    (void)ctx;
    report(s->probe, exit->kind == TR_EXIT_NORMAL     ? PROBE_STOP_NORMAL
                     : exit->kind == TR_EXIT_SHUTDOWN ? PROBE_STOP_SHUTDOWN
                                                      : PROBE_STOP_FAILED);
}

static const tr_handler rows[] = {
    {MSG_ECHO, on_echo},         {MSG_FAIL, on_fail},     {MSG_STOP, on_stop},
    {MSG_TRFAIL, on_trfail},     {MSG_BECOME, on_become}, {MSG_SLOW, on_slow},
    {MSG_ASK_STOP, on_ask_stop},
};
static const tr_dispatch table = {rows, sizeof(rows) / sizeof(rows[0]),
                                  on_otherwise};

static const tr_behaviour probe_behaviour = {
    .name = "probe",
    .state_size = sizeof(probe_state),
    .init = probe_init,
    .dispatch = &table,
    .stop = probe_stop,
};

/* ---- fixture ---- */

typedef struct failure_log {
    tr_atomic(int) count;
    int code;
    char text[128];
    char behaviour[32];
    tr_addr who;
} failure_log;

typedef struct dead_log {
    tr_atomic(int) count;
    tr_atomic(int) by_reason[4];
} dead_log;

typedef struct fixture {
    tr_system *sys;
    tr_ctx *ctx;
    tr_mailbox *probe;
    failure_log failures;
    dead_log dead;
    tr_system_stats final;
    bool shut; /* the test shut the system down itself */
} fixture;

static void
on_failure(void *arg, tr_addr who, const char *behaviour, const tr_exit *exit)
{
    failure_log *f = arg;
    f->code = exit->code;
    f->who = who;
    snprintf(f->text, sizeof(f->text), "%s", exit->text);
    snprintf(f->behaviour, sizeof(f->behaviour), "%s", behaviour);
    tr_faa_seqcst(&f->count, 1);
}

static void
on_dead(void *arg, tr_addr to, uint32_t type, tr_dead_reason reason)
{
    dead_log *d = arg;
    (void)to;
    (void)type;
    tr_faa_relaxed(&d->by_reason[reason], 1);
    tr_faa_seqcst(&d->count, 1);
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    cfg.workers = 2;
    cfg.on_failure = on_failure;
    cfg.on_failure_arg = &f->failures;
    cfg.on_dead_letter = on_dead;
    cfg.on_dead_letter_arg = &f->dead;
    cfg.final_stats = &f->final;
    if (tr_system_start(&cfg, &f->sys) != TR_OK ||
        tr_mailbox_create(0, &f->probe) != TR_OK) {
        return -1;
    }
    f->ctx = tr_system_ctx(f->sys);
    tr_store_relaxed(&slow_release, false);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    tr_store_rel(&slow_release, true);
    int rc = f->shut ? TR_OK : tr_system_shutdown(f->sys, tr_ms(5000));
    tr_mailbox_destroy(f->probe);
    free(f);
    return rc == TR_OK ? 0 : -1;
}

static tr_addr
spawn_probe(fixture *f)
{
    start_arg a = {.probe = f->probe};
    tr_addr addr;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &a, NULL, &addr),
                     TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    return addr;
}

static void
send_int(fixture *f, tr_addr to, uint32_t type, int v)
{
    assert_int_equal(tr_send(f->ctx, to, type, &v, sizeof(v)), TR_OK);
}

typedef struct count_arg {
    tr_atomic(int) * count;
    int want;
} count_arg;

static bool
count_reached(void *p)
{
    count_arg *c = p;
    return tr_load_seqcst(c->count) >= c->want;
}

/* Wait (with a deadline) until a hook has been called `want` times. */
static bool
wait_count(tr_atomic(int) * count, int want)
{
    count_arg c = {count, want};
    return tr_test_wait_until(count_reached, &c, 5000);
}

/* ---- tests ---- */

/*
 * An actor's state on the heap (more than fits in its slot) has cache
 * lines of its own: its handlers write it on every message, and two
 * actors whose states shared a line would make each other's every
 * message a miss once they run on different workers. Each init reports
 * where its state is; all are alive at once.
 */
enum { LINE_ACTORS = 8 };

typedef struct small_state {
    uint64_t words[5]; /* 40 bytes: the allocator's class of 48 */
} small_state;

typedef struct big_state {
    uint64_t words[13]; /* 104 bytes: of 112 */
} big_state;

static int
where_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_mailbox *const *probe = arg;
    uintptr_t at = (uintptr_t)state;

    (void)ctx;
    return tr_mailbox_send(*probe, &at, sizeof(at));
}

static int
where_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static const tr_behaviour small_where = {
    .name = "small_where",
    .state_size = sizeof(small_state),
    .init = where_init,
    .handle = where_handle,
};

static const tr_behaviour big_where = {
    .name = "big_where",
    .state_size = sizeof(big_state),
    .init = where_init,
    .handle = where_handle,
};

static void
test_actor_state_on_the_heap_has_cache_lines_of_its_own(void **state)
{
    static const tr_behaviour *const kinds[] = {&small_where, &big_where};
    fixture *f = *state;
    uintptr_t first[2 * LINE_ACTORS];
    uintptr_t last[2 * LINE_ACTORS];
    int n = 0;

    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < LINE_ACTORS; i++, n++) {
            uintptr_t at;
            size_t len;
            tr_addr a;

            assert_int_equal(tr_spawn(f->ctx, kinds[k], &f->probe, NULL, &a),
                             TR_OK);
            assert_int_equal(tr_mailbox_recv_wait(f->probe, &at, sizeof(at),
                                                  &len, tr_ms(5000)),
                             TR_OK);
            assert_int_equal(at % 64, 0);
            first[n] = at / 64;
            last[n] = (at + kinds[k]->state_size - 1) / 64;
            for (int j = 0; j < n; j++) {
                assert_true(last[n] < first[j] || last[j] < first[n]);
            }
        }
    }
}

/*
 * A state on the heap is all zero at `init`, also when it is memory that
 * an earlier actor of the worker scribbled on and ended with (the worker
 * keeps states of up to TR_STATE_LINES lines for its next spawns). A
 * spawner actor spawns scribblers on its worker, one size after another
 * and each size many times: each checks its state, fills it with 0xff and
 * stops in `init`, so its state goes back to the worker at once. Sizes
 * from just past the inline state to past the kept ones.
 */
enum { SCRIBBLES = 50 };

static int
scribble_init(tr_ctx *ctx, void *state, const void *arg)
{
    const size_t *size = arg;
    unsigned char *b = state;
    int dirty = 0;

    for (size_t i = 0; i < *size; i++) {
        dirty |= b[i];
    }
    memset(b, 0xff, *size);
    return dirty != 0 ? tr_fail(ctx, -1, "dirty state") : tr_stop(ctx);
}

#define SCRIBBLER(n)                                                           \
    {                                                                          \
        .name = "scribbler", .state_size = (n), .init = scribble_init,         \
        .handle = where_handle,                                                \
    }

static const size_t scribble_sizes[] = {17,  63,  64,  65,  128,
                                        200, 256, 257, 1000};
static const tr_behaviour scribblers[] = {
    SCRIBBLER(17),  SCRIBBLER(63),  SCRIBBLER(64),
    SCRIBBLER(65),  SCRIBBLER(128), SCRIBBLER(200),
    SCRIBBLER(256), SCRIBBLER(257), SCRIBBLER(1000),
};

static int
spawn_scribblers(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_mailbox *probe = *(tr_mailbox **)state;
    int bad = 0;

    (void)msg;
    for (size_t k = 0; k < sizeof(scribblers) / sizeof(scribblers[0]); k++) {
        for (int i = 0; i < SCRIBBLES; i++) {
            bad += tr_spawn(ctx, &scribblers[k], &scribble_sizes[k], NULL,
                            NULL) != TR_OK;
        }
    }
    report(probe, bad);
    return TR_OK;
}

static int
keep_probe(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(tr_mailbox *));
    return TR_OK;
}

static const tr_behaviour scribble_spawner = {
    .name = "scribble_spawner",
    .state_size = sizeof(tr_mailbox *),
    .init = keep_probe,
    .handle = spawn_scribblers,
};

static void
test_actor_state_on_the_heap_is_zero_when_reused(void **state)
{
    fixture *f = *state;
    tr_addr a;

    assert_int_equal(tr_spawn(f->ctx, &scribble_spawner, &f->probe, NULL, &a),
                     TR_OK);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(tr_send(f->ctx, a, 1, NULL, 0), TR_OK);
        assert_int_equal(next_report(f->probe), 0);
    }
}

static void
test_actor_handles_messages_in_send_order(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    for (int i = 0; i < 1000; i++) {
        send_int(f, a, MSG_ECHO, i);
    }
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(next_report(f->probe), i);
    }
    tr_actor_stats st;
    assert_true(tr_test_wait_handled(f->sys, 1000, 5000));
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_OK);
    assert_int_equal(st.messages_handled, 1000);
    assert_int_equal(st.mailbox_len, 0);
    assert_int_equal(st.mailbox_cap, 0);
}

static void
test_actor_unknown_type_goes_to_otherwise(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    send_int(f, a, 99, 0);
    assert_int_equal(next_report(f->probe), PROBE_OTHERWISE + 99);
}

static int
plain_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static const tr_handler only_echo[] = {{MSG_ECHO, plain_handle}};
static const tr_dispatch strict_table = {only_echo, 1, NULL};
static const tr_behaviour strict_behaviour = {
    .name = "strict",
    .dispatch = &strict_table,
};

static void
test_actor_unhandled_type_without_otherwise_is_a_dead_letter(void **state)
{
    fixture *f = *state;
    tr_addr a;

    assert_int_equal(tr_spawn(f->ctx, &strict_behaviour, NULL, NULL, &a),
                     TR_OK);
    send_int(f, a, 42, 0);
    send_int(f, a, MSG_ECHO, 0);
    assert_true(tr_test_wait_handled(f->sys, 1, 5000));
    assert_true(wait_count(&f->dead.count, 1));
    assert_int_equal(tr_load_relaxed(&f->dead.by_reason[TR_DEAD_UNHANDLED]), 1);
    /* The actor goes on. */
    tr_actor_stats st;
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_OK);
}

static void
test_actor_become_swaps_the_table_until_reverted(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    send_int(f, a, MSG_ECHO, 1);
    send_int(f, a, MSG_BECOME, 0);
    send_int(f, a, MSG_ECHO, 2); /* handled by on_alt, which reverts */
    send_int(f, a, MSG_ECHO, 3);
    assert_int_equal(next_report(f->probe), 1);
    assert_int_equal(next_report(f->probe), PROBE_ALT);
    assert_int_equal(next_report(f->probe), 3);
}

static void
test_actor_stop_runs_stop_callback_and_frees_address(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);
    int v = 1;

    /* Hold the actor so the echo is surely queued behind the stop. */
    send_int(f, a, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    send_int(f, a, MSG_STOP, 0);
    send_int(f, a, MSG_ECHO, 5); /* queued behind the stop: dead letter */
    tr_store_rel(&slow_release, true);
    assert_int_equal(next_report(f->probe), PROBE_STOP_NORMAL);
    assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    assert_int_equal(tr_send(f->ctx, a, MSG_ECHO, &v, sizeof(v)), TR_ENOACTOR);
    assert_int_equal(tr_actor_stop(f->ctx, a), TR_ENOACTOR);
    tr_actor_stats st;
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_ENOACTOR);
    assert_int_equal(tr_load_seqcst(&f->failures.count), 0);
    /* One dead letter for the queued echo (stopped), one for the send
     * after the stop and one for tr_actor_stop (no actor). */
    assert_true(wait_count(&f->dead.count, 3));
    assert_int_equal(tr_load_seqcst(&f->dead.count), 3);
    assert_int_equal(tr_load_relaxed(&f->dead.by_reason[TR_DEAD_STOPPED]), 1);
    assert_int_equal(tr_load_relaxed(&f->dead.by_reason[TR_DEAD_NOACTOR]), 2);
}

static void
test_actor_error_return_fails_it_and_reports_reason(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    send_int(f, a, MSG_FAIL, 0);
    assert_int_equal(next_report(f->probe), PROBE_STOP_FAILED);
    assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    assert_true(wait_count(&f->failures.count, 1));
    assert_int_equal(f->failures.code, TR_EINVAL);
    assert_true(tr_addr_eq(f->failures.who, a));
    assert_string_equal(f->failures.behaviour, "probe");
    assert_non_null(strstr(f->failures.text, "TR_EINVAL"));
    tr_system_stats st;
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.failed, 1);
}

/* A behaviour without a name fails as "(unnamed)": the hook (and the
 * default one, which prints it) never gets NULL for a string. */
static int
fail_at_once(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_EIO;
}

static void
test_actor_unnamed_behaviour_fails_as_unnamed(void **state)
{
    fixture *f = *state;
    static const tr_behaviour unnamed = {.handle = fail_at_once};
    tr_addr a;

    assert_int_equal(tr_spawn(f->ctx, &unnamed, NULL, NULL, &a), TR_OK);
    send_int(f, a, MSG_FAIL, 0);
    assert_true(wait_count(&f->failures.count, 1));
    assert_string_equal(f->failures.behaviour, "(unnamed)");
    assert_int_equal(f->failures.code, TR_EIO);
}

/* A dead-letter hook that sends, against its contract, to a stopped
 * actor: the letter it makes is counted, but the hook is not called
 * inside itself (it recursed without end before). */
static tr_system *echo_sys;
static tr_addr echo_to;
static tr_atomic(uint32_t) echo_calls;

static void
dead_hook_that_sends(void *arg, tr_addr to, uint32_t type,
                     tr_dead_reason reason)
{
    (void)arg;
    (void)to;
    (void)type;
    (void)reason;
    tr_faa_relaxed(&echo_calls, 1);
    if (tr_send(tr_system_ctx(echo_sys), echo_to, MSG_ECHO, NULL, 0) !=
        TR_ENOACTOR) {
        tr_faa_relaxed(&echo_calls, 1000);
    }
}

static int
dead_hook_target(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static void
test_actor_dead_letter_hook_that_sends_runs_once_a_letter(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system_stats st;
    static const tr_behaviour stops = {.name = "stops",
                                       .handle = dead_hook_target};

    (void)state;
    tr_store_relaxed(&echo_calls, 0);
    cfg.workers = 2;
    cfg.on_dead_letter = dead_hook_that_sends;
    cfg.final_stats = &st;
    assert_int_equal(tr_system_start(&cfg, &echo_sys), TR_OK);
    tr_ctx *ctx = tr_system_ctx(echo_sys);
    assert_int_equal(tr_spawn(ctx, &stops, NULL, NULL, &echo_to), TR_OK);
    assert_int_equal(tr_actor_stop(ctx, echo_to), TR_OK);
    assert_true(tr_test_wait_stopped(echo_sys, echo_to, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr_send(ctx, echo_to, MSG_ECHO, NULL, 0), TR_ENOACTOR);
    }
    assert_int_equal(tr_load_relaxed(&echo_calls), 3);
    assert_int_equal(tr_system_shutdown(echo_sys, tr_ms(5000)), TR_OK);
    assert_int_equal(st.dead_letters, 6);
}

/* TR_IGNORE is init's to return: from a handler the actor fails as misuse,
 * and no failure reads as a declined start. */
static int
ignore_in_handler(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_IGNORE;
}

static void
test_actor_ignore_from_a_handler_fails_as_misuse(void **state)
{
    fixture *f = *state;
    static const tr_behaviour ignores = {.name = "ignores",
                                         .handle = ignore_in_handler};
    tr_addr a;

    assert_int_equal(tr_spawn(f->ctx, &ignores, NULL, NULL, &a), TR_OK);
    send_int(f, a, MSG_ECHO, 0);
    assert_true(wait_count(&f->failures.count, 1));
    assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    assert_int_equal(f->failures.code, TR_EINVAL);
    assert_non_null(strstr(f->failures.text, "TR_IGNORE"));
}

static void
test_actor_tr_fail_reports_code_and_text(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    send_int(f, a, MSG_TRFAIL, 0);
    assert_int_equal(next_report(f->probe), PROBE_STOP_FAILED);
    assert_true(wait_count(&f->failures.count, 1));
    assert_int_equal(f->failures.code, -77);
    assert_string_equal(f->failures.text, "disk on fire");
}

static void
test_actor_init_failure_returns_its_code_without_stop(void **state)
{
    fixture *f = *state;
    start_arg a = {.probe = f->probe, .init_rc = -55};
    tr_addr addr = TR_ADDR_NONE;
    tr_system_stats st;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &a, NULL, &addr), -55);
    assert_true(tr_addr_is_none(addr)); /* untouched on error */
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    int v;
    size_t len;
    /* No stop callback ran. */
    assert_int_equal(
        tr_mailbox_recv_wait(f->probe, &v, sizeof(v), &len, tr_ms(50)),
        TR_ETIMEDOUT);
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.live_actors, 0);
    assert_int_equal(st.spawned, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(tr_load_seqcst(&f->failures.count), 0);
}

static void
test_actor_tr_fail_in_init_fails_the_spawn(void **state)
{
    fixture *f = *state;
    start_arg a = {.probe = f->probe, .fail_in_init = true};
    tr_addr addr = TR_ADDR_NONE;
    tr_system_stats st;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &a, NULL, &addr), -66);
    assert_true(tr_addr_is_none(addr));
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    assert_int_equal(report_within(f->probe, 50), -1); /* no stop */
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.spawned, 0);
    assert_int_equal(st.live_actors, 0);
}

static void
test_actor_stop_in_init_spawns_then_stops(void **state)
{
    fixture *f = *state;
    start_arg a = {.probe = f->probe, .stop_in_init = true};
    tr_addr addr;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &a, NULL, &addr),
                     TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    assert_int_equal(next_report(f->probe), PROBE_STOP_NORMAL);
    assert_true(tr_test_wait_stopped(f->sys, addr, 5000));
}

static void
test_actor_stop_request_overtakes_queued_messages(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);

    /* Hold the actor in a handler so the rest queues up. */
    send_int(f, a, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    for (int i = 0; i < 10; i++) {
        send_int(f, a, MSG_ECHO, i);
    }
    assert_int_equal(tr_actor_stop(f->ctx, a), TR_OK);
    tr_store_rel(&slow_release, true);
    /* The control lane runs first: the stop comes before any echo. */
    assert_int_equal(next_report(f->probe), PROBE_STOP_SHUTDOWN);
    assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    assert_true(wait_count(&f->dead.count, 10));
    assert_int_equal(tr_load_relaxed(&f->dead.by_reason[TR_DEAD_STOPPED]), 10);
}

static void *shut_it(void *p);

typedef struct lane_arg {
    tr_system *sys;
    tr_addr at;
} lane_arg;

/* A control message waits in the control lane of the actor `p` names. */
static bool
has_control(void *p)
{
    lane_arg *l = p;
    tr_actor *slot = tr__table_slot(l->sys->table, l->at.id);

    return !tr__lifo_is_empty(&slot->ctl);
}

/* What an actor still had queued when shutdown stopped it is counted as
 * left at shutdown, not as queued when its receiver stopped. */
static void
test_actor_queued_at_shutdown_are_shutdown_dead_letters(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);
    tr_system_stats st;
    pthread_t t;
    void *shut_rc;

    send_int(f, a, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    for (int i = 0; i < 10; i++) {
        send_int(f, a, MSG_ECHO, i);
    }
    assert_int_equal(pthread_create(&t, NULL, shut_it, f), 0);
    f->shut = true;
    /* Shutdown has begun once a plain thread's call is refused; its stop
     * request is queued once the actor's control lane holds it (released
     * before that, the handler's run would go on to the echoes). */
    while (tr_system_stats_get(f->sys, &st) != TR_ESHUTDOWN) {
        sched_yield();
    }
    lane_arg lane = {f->sys, a};
    assert_true(tr_test_wait_until(has_control, &lane, 5000));
    tr_store_rel(&slow_release, true);
    assert_int_equal(pthread_join(t, &shut_rc), 0);
    assert_int_equal((intptr_t)shut_rc, TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_STOP_SHUTDOWN);
    assert_int_equal(tr_load_relaxed(&f->dead.count), 10);
    assert_int_equal(tr_load_relaxed(&f->dead.by_reason[TR_DEAD_SHUTDOWN]), 10);
}

/*
 * A control message pushed while the handler of a run's only message runs
 * (here the actor's own stop request) is handled by the next run: the
 * short path for such runs (actor.c: run_lean) gives the run-right up and
 * takes it back for it. Many rounds, with the second worker free to take
 * the actor as it goes idle.
 */
static void
test_actor_control_message_during_a_one_message_run(void **state)
{
    fixture *f = *state;

    for (int i = 0; i < 200; i++) {
        tr_addr a = spawn_probe(f);

        send_int(f, a, MSG_ASK_STOP, 0);
        assert_int_equal(next_report(f->probe), MSG_ASK_STOP);
        assert_int_equal(next_report(f->probe), PROBE_STOP_SHUTDOWN);
        assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    }
    assert_int_equal(tr_load_relaxed(&f->dead.count), 0);
}

static void
test_actor_zero_copy_send_takes_buffer_only_on_success(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);
    int *buf = tr_buf_alloc(sizeof(int));

    assert_non_null(buf);
    *buf = 31;
    assert_int_equal(tr_send_buf(f->ctx, a, MSG_ECHO, buf), TR_OK);
    assert_int_equal(next_report(f->probe), 31);

    /* To a dead address: refused, and the caller still owns the buffer. */
    send_int(f, a, MSG_STOP, 0);
    assert_int_equal(next_report(f->probe), PROBE_STOP_NORMAL);
    assert_true(tr_test_wait_stopped(f->sys, a, 5000));
    buf = tr_buf_alloc(sizeof(int));
    *buf = 32;
    assert_int_equal(tr_send_buf(f->ctx, a, MSG_ECHO, buf), TR_ENOACTOR);
    assert_int_equal(*buf, 32);
    tr_buf_free(buf); /* ASan would report a double free or a leak */
    assert_int_equal(tr_send_buf(f->ctx, a, MSG_ECHO, NULL), TR_EINVAL);
    tr_buf_free(NULL);
    assert_null(tr_buf_alloc((size_t)UINT32_MAX + 1));
}

static void
test_actor_bounded_mailbox_refuses_when_full(void **state)
{
    fixture *f = *state;
    start_arg sa = {.probe = f->probe};
    tr_spawn_opts opts = {.mailbox_cap = 4};
    tr_addr a;
    int v = 0;
    tr_actor_stats st;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &sa, &opts, &a), TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    send_int(f, a, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tr_send(f->ctx, a, MSG_ECHO, &i, sizeof(i)), TR_OK);
    }
    assert_int_equal(tr_send(f->ctx, a, MSG_ECHO, &v, sizeof(v)), TR_EFULL);
    int *buf = tr_buf_alloc(sizeof(int));
    assert_int_equal(tr_send_buf(f->ctx, a, MSG_ECHO, buf), TR_EFULL);
    tr_buf_free(buf);
    assert_int_equal(tr_actor_stats_get(f->sys, a, &st), TR_OK);
    assert_int_equal(st.mailbox_len, 4);
    assert_int_equal(st.mailbox_cap, 4);
    /* The control lane is never bounded. */
    tr_store_rel(&slow_release, true);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(next_report(f->probe), i);
    }
    assert_int_equal(tr_send(f->ctx, a, MSG_ECHO, &v, sizeof(v)), TR_OK);
    assert_int_equal(next_report(f->probe), 0);
}

typedef struct blocked_sender {
    fixture *f;
    tr_addr to;
    int n;
    int rc;
} blocked_sender;

static void *
send_many(void *p)
{
    blocked_sender *b = p;
    b->rc = TR_OK;
    for (int i = 0; i < b->n && b->rc == TR_OK; i++) {
        b->rc =
            tr_send_wait(b->f->ctx, b->to, MSG_ECHO, &i, sizeof(i), TR_FOREVER);
    }
    return NULL;
}

static void
test_actor_thread_send_waits_for_room_in_bounded_mailbox(void **state)
{
    fixture *f = *state;
    start_arg sa = {.probe = f->probe};
    tr_spawn_opts opts = {.mailbox_cap = 2};
    blocked_sender b = {.f = f, .n = 2000};
    pthread_t t;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &sa, &opts, &b.to),
                     TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    assert_int_equal(pthread_create(&t, NULL, send_many, &b), 0);
    /* Every message arrives, in order, through a mailbox of two. */
    for (int i = 0; i < b.n; i++) {
        assert_int_equal(next_report(f->probe), i);
    }
    pthread_join(t, NULL);
    assert_int_equal(b.rc, TR_OK);
}

/* A handler that sends through the plain-thread context to a full bounded
 * mailbox: a worker must never block, whatever context it passes. */
typedef struct thread_ctx_sender {
    tr_mailbox *probe;
    tr_addr target;
} thread_ctx_sender;

static int
send_via_thread_ctx(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    thread_ctx_sender *s = state;
    tr_ctx *thread_ctx = tr_system_ctx(tr_ctx_system(ctx));
    int v = 0;

    memcpy(&s->target, msg->data, sizeof(s->target));
    report(s->probe, tr_send(thread_ctx, s->target, MSG_ECHO, &v, sizeof(v)));
    return TR_OK;
}

static int
thread_ctx_sender_init(tr_ctx *ctx, void *state, const void *arg)
{
    thread_ctx_sender *s = state;
    (void)ctx;
    s->probe = ((const start_arg *)arg)->probe;
    return TR_OK;
}

static const tr_behaviour thread_ctx_sender_behaviour = {
    .name = "thread_ctx_sender",
    .state_size = sizeof(thread_ctx_sender),
    .init = thread_ctx_sender_init,
    .handle = send_via_thread_ctx,
};

static void
test_actor_worker_never_blocks_on_a_full_mailbox(void **state)
{
    fixture *f = *state;
    start_arg sa = {.probe = f->probe};
    tr_spawn_opts opts = {.mailbox_cap = 1};
    tr_addr target;
    tr_addr sender;

    assert_int_equal(tr_spawn(f->ctx, &probe_behaviour, &sa, &opts, &target),
                     TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    send_int(f, target, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    send_int(f, target, MSG_ECHO, 1); /* now full */
    assert_int_equal(
        tr_spawn(f->ctx, &thread_ctx_sender_behaviour, &sa, NULL, &sender),
        TR_OK);
    assert_int_equal(tr_send(f->ctx, sender, 0, &target, sizeof(target)),
                     TR_OK);
    assert_int_equal(next_report(f->probe), TR_EFULL);
    tr_store_rel(&slow_release, true);
    assert_int_equal(next_report(f->probe), 1);
}

/* An init that sends to its own bounded mailbox until it is refused: the
 * spawner holds the actor's run-right, so nothing can make room. */
typedef struct self_filler {
    tr_mailbox *probe;
} self_filler;

static int
self_filler_init(tr_ctx *ctx, void *state, const void *arg)
{
    self_filler *s = state;
    int rc = TR_OK;
    int n = 0;

    s->probe = ((const start_arg *)arg)->probe;
    while (n < 10 && (rc = tr_send(ctx, tr_self(ctx), MSG_ECHO, &n,
                                   sizeof(n))) == TR_OK) {
        n++;
    }
    report(s->probe, n);  /* messages queued */
    report(s->probe, rc); /* the refusal */
    return TR_OK;
}

static const tr_behaviour self_filler_behaviour = {
    .name = "self_filler",
    .state_size = sizeof(self_filler),
    .init = self_filler_init,
    .handle = plain_handle,
};

typedef struct spawn_job {
    fixture *f;
    const tr_behaviour *b;
    tr_spawn_opts opts;
    tr_atomic(int) done;
    int rc;
} spawn_job;

static void *
spawn_in_thread(void *p)
{
    spawn_job *j = p;
    start_arg sa = {.probe = j->f->probe};
    j->rc = tr_spawn(j->f->ctx, j->b, &sa, &j->opts, NULL);
    tr_store_seqcst(&j->done, 1);
    return NULL;
}

static bool
job_done(void *p)
{
    return tr_load_seqcst(&((spawn_job *)p)->done) != 0;
}

static void
test_actor_init_send_to_its_own_full_mailbox_is_refused(void **state)
{
    fixture *f = *state;
    spawn_job j = {.f = f, .b = &self_filler_behaviour};
    pthread_t t;

    j.opts.mailbox_cap = 3;
    tr_init_relaxed(&j.done, 0);
    /* On a plain thread (init runs there) as on a worker: never a wait. */
    assert_int_equal(pthread_create(&t, NULL, spawn_in_thread, &j), 0);
    if (!tr_test_wait_until(job_done, &j, 5000)) {
        fail_msg("tr_spawn hangs: init blocked sending to itself");
    }
    pthread_join(t, NULL);
    assert_int_equal(j.rc, TR_OK);
    assert_int_equal(next_report(f->probe), 3);
    assert_int_equal(next_report(f->probe), TR_EFULL);
}

static void
test_actor_misuse_returns_codes(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);
    int v = 0;
    tr_system_stats st;
    tr_actor_stats ast;
    const tr_behaviour empty = {.name = "empty"};

    assert_int_equal(tr_spawn(NULL, &probe_behaviour, NULL, NULL, NULL),
                     TR_EINVAL);
    assert_int_equal(tr_spawn(f->ctx, NULL, NULL, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_spawn(f->ctx, &empty, NULL, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_send(NULL, a, MSG_ECHO, &v, sizeof(v)), TR_EINVAL);
    assert_int_equal(tr_send(f->ctx, a, MSG_ECHO, NULL, 4), TR_EINVAL);
    assert_int_equal(tr_send(f->ctx, TR_ADDR_NONE, MSG_ECHO, &v, sizeof(v)),
                     TR_ENOACTOR);
    /* An address that names no slot at all. */
    assert_int_equal(tr_send(f->ctx, (tr_addr){.id = 0xffffffffffffffffull},
                             MSG_ECHO, &v, sizeof(v)),
                     TR_ENOACTOR);
    assert_int_equal(tr_stop(f->ctx), TR_ESTATE);
    assert_int_equal(tr_stop(NULL), TR_EINVAL);
    assert_int_equal(tr_fail(f->ctx, -1, "x"), TR_ESTATE);
    assert_int_equal(tr_fail(NULL, -1, "x"), TR_EINVAL);
    assert_int_equal(tr_become(f->ctx, NULL), TR_ESTATE);
    assert_int_equal(tr_become(NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_actor_stop(NULL, a), TR_EINVAL);
    assert_true(tr_addr_is_none(tr_self(f->ctx)));
    assert_true(tr_addr_is_none(tr_self(NULL)));
    assert_ptr_equal(tr_ctx_system(f->ctx), f->sys);
    assert_null(tr_ctx_system(NULL));
    assert_null(tr_system_ctx(NULL));
    assert_int_equal(tr_system_stats_get(NULL, &st), TR_EINVAL);
    assert_int_equal(tr_system_stats_get(f->sys, NULL), TR_EINVAL);
    assert_int_equal(tr_actor_stats_get(NULL, a, &ast), TR_EINVAL);
    assert_int_equal(tr_system_start(NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_system_shutdown(NULL, TR_NOWAIT), TR_EINVAL);
}

/* An actor that tries to shut its own system down from a handler. */
static int
shutdown_from_worker(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *s = state;
    (void)msg;
    report(s->probe, tr_system_shutdown(tr_ctx_system(ctx), TR_NOWAIT));
    return TR_OK;
}

static const tr_behaviour rogue_behaviour = {
    .name = "rogue",
    .state_size = sizeof(probe_state),
    .init = probe_init,
    .handle = shutdown_from_worker,
};

static void
test_actor_shutdown_from_a_worker_is_refused(void **state)
{
    fixture *f = *state;
    start_arg sa = {.probe = f->probe};
    tr_addr a;

    assert_int_equal(tr_spawn(f->ctx, &rogue_behaviour, &sa, NULL, &a), TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    send_int(f, a, 0, 0);
    assert_int_equal(next_report(f->probe), TR_ESTATE);
}

static void
test_shutdown_stops_every_actor_and_counts_queued_messages(void **state)
{
    fixture *f = *state;
    tr_addr a = spawn_probe(f);
    tr_addr b = spawn_probe(f);

    (void)b;
    send_int(f, a, MSG_SLOW, 0);
    assert_int_equal(next_report(f->probe), MSG_SLOW);
    for (int i = 0; i < 5; i++) {
        send_int(f, a, MSG_ECHO, i);
    }
    /* The slow handler may still be running when shutdown begins; shutdown
     * waits for it, runs both stop callbacks, and accounts for the echoes
     * as handled or dead. */
    tr_store_rel(&slow_release, true);
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->shut = true;
    int stops = 0;
    int v;
    while ((v = report_within(f->probe, 200)) != -1) {
        if (v == PROBE_STOP_SHUTDOWN) {
            stops++;
        }
    }
    assert_int_equal(stops, 2);
    assert_int_equal(f->final.live_actors, 0);
    assert_int_equal(f->final.spawned, 2);
    assert_true(f->final.dead_letters + f->final.messages_handled >= 6);
}

/* A stop callback that tries to spawn: during shutdown that is refused. */
static void
spawning_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    probe_state *s = state;
    (void)exit;
    report(s->probe, tr_spawn(ctx, &strict_behaviour, NULL, NULL, NULL));
}

static const tr_behaviour spawner_behaviour = {
    .name = "spawner",
    .state_size = sizeof(probe_state),
    .init = probe_init,
    .handle = plain_handle,
    .stop = spawning_stop,
};

static void
test_shutdown_refuses_spawns(void **state)
{
    fixture *f = *state;
    start_arg sa = {.probe = f->probe};

    assert_int_equal(tr_spawn(f->ctx, &spawner_behaviour, &sa, NULL, NULL),
                     TR_OK);
    assert_int_equal(next_report(f->probe), PROBE_INIT);
    assert_int_equal(tr_system_shutdown(f->sys, tr_ms(5000)), TR_OK);
    f->shut = true;
    assert_int_equal(next_report(f->probe), TR_ESHUTDOWN);
    assert_int_equal(f->final.spawned, 1);
}

/*
 * A plain thread's spawn whose `init` is still running when shutdown
 * begins, and still running when shutdown's timeout passes: shutdown must
 * wait for the spawn to return before it stops the actor and frees the
 * system. `init` keeps running until `stop` runs (which must not happen
 * before init returns) or half a second has passed.
 */
static struct {
    tr_atomic(int) in_init;
    tr_atomic(int) init_returned;
    tr_atomic(int) stops;
    tr_atomic(int) stop_during_init;
} slow;

static int
slow_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_system *sys = tr_ctx_system(ctx);
    struct timespec pause = {0, 1000000};
    (void)state;
    (void)arg;
    tr_store_seqcst(&slow.in_init, 1);
    while (!tr_load_seqcst(&sys->shutting_down)) {
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < 500 && tr_load_seqcst(&slow.stops) == 0; i++) {
        nanosleep(&pause, NULL);
    }
    tr_store_seqcst(&slow.init_returned, 1);
    return TR_OK;
}

static void
slow_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    if (!tr_load_seqcst(&slow.init_returned)) {
        tr_store_seqcst(&slow.stop_during_init, 1);
    }
    tr_faa_seqcst(&slow.stops, 1);
}

static const tr_behaviour slow_init_behaviour = {
    .name = "slow_init",
    .init = slow_init,
    .handle = plain_handle,
    .stop = slow_stop,
};

static bool
in_slow_init(void *p)
{
    (void)p;
    return tr_load_seqcst(&slow.in_init) != 0;
}

static void
test_shutdown_waits_for_a_thread_spawn_in_init(void **state)
{
    fixture *f = *state;
    spawn_job j = {.f = f, .b = &slow_init_behaviour};
    pthread_t t;

    memset(&slow, 0, sizeof(slow));
    tr_init_relaxed(&j.done, 0);
    assert_int_equal(pthread_create(&t, NULL, spawn_in_thread, &j), 0);
    assert_true(tr_test_wait_until(in_slow_init, NULL, 5000));
    int rc = tr_system_shutdown(f->sys, tr_ms(20));
    f->shut = true;
    pthread_join(t, NULL);
    assert_true(rc == TR_OK || rc == TR_ETIMEDOUT);
    assert_int_equal(tr_load_seqcst(&slow.stop_during_init), 0);
    /* Admitted before shutdown began: spawned, then stopped once. */
    assert_int_equal(j.rc, TR_OK);
    assert_int_equal(tr_load_seqcst(&slow.stops), 1);
    assert_int_equal(f->final.live_actors, 0);
}

/* ---- plain threads' calls that began before shutdown ---- */

enum { BIG = 32 << 20 }; /* a payload whose copy takes milliseconds */

typedef struct big_send {
    fixture *f;
    tr_addr to;
    bool group; /* tr_pg_send to "big" instead of tr_send */
    tr_atomic(int) started;
    int rc;
    size_t sent;
} big_send;

static void *
send_big(void *p)
{
    big_send *b = p;
    char *data = calloc(1, BIG);

    assert_non_null(data);
    tr_store_seqcst(&b->started, 1);
    b->rc = b->group
                ? tr_pg_send(b->f->ctx, "big", MSG_ECHO, data, BIG, &b->sent)
                : tr_send(b->f->ctx, b->to, MSG_ECHO, data, BIG);
    free(data);
    return NULL;
}

static int
join_big(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    return tr_pg_join(ctx, "big");
}

static const tr_behaviour big_member = {
    .name = "big_member", .init = join_big, .handle = plain_handle};
static const tr_behaviour quiet_behaviour = {.name = "quiet",
                                             .handle = plain_handle};

static bool
big_started(void *p)
{
    return tr_load_seqcst(&((big_send *)p)->started) != 0;
}

/*
 * A send of a large payload is under way on a plain thread when shutdown
 * is called: shutdown waits for it, and the message is handled or counted
 * as a dead letter, or the send is refused. Before the fix the payload
 * was copied before the send entered the system (tr_pg_send never
 * entered), shutdown freed the system under it (ASan: use after free).
 */
static void
shutdown_during_a_big_send(fixture *f, bool group)
{
    big_send b = {.f = f, .group = group};
    pthread_t t;

    tr_init_relaxed(&b.started, 0);
    assert_int_equal(tr_spawn(f->ctx, group ? &big_member : &quiet_behaviour,
                              NULL, NULL, &b.to),
                     TR_OK);
    assert_int_equal(pthread_create(&t, NULL, send_big, &b), 0);
    assert_true(tr_test_wait_until(big_started, &b, 5000));
    int rc = tr_system_shutdown(f->sys, tr_ms(1000));
    f->shut = true;
    pthread_join(t, NULL);
    assert_int_equal(rc, TR_OK);
    /* Queued (then handled or dropped as a dead letter), refused by the
     * shutdown, or too late for the actor, which the shutdown stopped
     * meanwhile (a dead letter too). */
    if (b.rc != TR_OK && b.rc != TR_ESHUTDOWN && b.rc != TR_ENOACTOR) {
        fail_msg("send: %s", tr_errname(b.rc));
    }
    assert_int_equal(f->final.live_actors, 0);
    /* Nothing lost: what reached the actor was handled or counted. */
    if (b.rc != TR_ESHUTDOWN && (!group || b.sent == 1)) {
        assert_int_equal(f->final.messages_handled + f->final.dead_letters, 1);
    }
}

static void
test_shutdown_waits_for_a_send_under_way(void **state)
{
    shutdown_during_a_big_send(*state, false);
}

static void
test_shutdown_waits_for_a_group_send_under_way(void **state)
{
    shutdown_during_a_big_send(*state, true);
}

typedef struct second_shutdown {
    tr_system *sys;
    tr_atomic(int) * go;
    int rc;
} second_shutdown;

/* Threads about to call tr_system_shutdown. */
static tr_atomic(int) shutting;

static void *
shutdown_too(void *p)
{
    second_shutdown *s = p;

    while (tr_load_seqcst(s->go) == 0) {
    }
    tr_faa_seqcst(&shutting, 1);
    s->rc = tr_system_shutdown(s->sys, tr_ms(5000));
    return NULL;
}

/* Holds the first shutdown until both calls are under way (a call made
 * after shutdown returned would be the caller's bug, not a race). */
static void
stop_when_both_shut(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    while (tr_load_seqcst(&shutting) < 2) {
        sched_yield();
    }
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

static const tr_behaviour waits_for_both = {.name = "waits_for_both",
                                            .handle = plain_handle,
                                            .stop = stop_when_both_shut};

/*
 * Two threads shut the system down at once: one does it, the other gets
 * TR_ESHUTDOWN, and the first frees nothing the second still reads
 * (before the fix the second read the system before it learned it came
 * second: ThreadSanitizer saw the race with the free).
 */
static void
test_shutdown_from_two_threads_at_once(void **state)
{
    fixture *f = *state;

    f->shut = true;
    tr_system_shutdown(f->sys, tr_ms(1000));
    for (int round = 0; round < 20; round++) {
        tr_system *sys;
        tr_atomic(int) go;
        second_shutdown s[2];
        pthread_t t[2];
        tr_addr a;

        assert_int_equal(tr_system_start(NULL, &sys), TR_OK);
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &waits_for_both, NULL, NULL, &a),
            TR_OK);
        tr_init_relaxed(&go, 0);
        tr_store_seqcst(&shutting, 0);
        for (int i = 0; i < 2; i++) {
            s[i] = (second_shutdown){.sys = sys, .go = &go};
            assert_int_equal(pthread_create(&t[i], NULL, shutdown_too, &s[i]),
                             0);
        }
        tr_store_seqcst(&go, 1);
        for (int i = 0; i < 2; i++) {
            pthread_join(t[i], NULL);
        }
        assert_true((s[0].rc == TR_OK && s[1].rc == TR_ESHUTDOWN) ||
                    (s[0].rc == TR_ESHUTDOWN && s[1].rc == TR_OK));
    }
}

/* ---- every call of a plain thread during shutdown ---- */

static tr_atomic(int) held_stop_in;  /* the held actor's `stop` began */
static tr_atomic(int) held_stop_out; /* ... and may return */

static void
hold_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    tr_store_seqcst(&held_stop_in, 1);
    while (tr_load_seqcst(&held_stop_out) == 0) {
        sched_yield();
    }
}

static const tr_behaviour holds_shutdown = {
    .name = "holds_shutdown", .handle = plain_handle, .stop = hold_stop};

static int
join_g(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    return tr_pg_join(ctx, "g");
}

static const tr_behaviour g_member = {
    .name = "g_member", .init = join_g, .handle = plain_handle};

static void *
shut_it(void *p)
{
    fixture *f = p;
    return (void *)(intptr_t)tr_system_shutdown(f->sys, tr_ms(10000));
}

static bool
held_stop_began(void *p)
{
    (void)p;
    return tr_load_seqcst(&held_stop_in) != 0;
}

/*
 * While shutdown runs (held in an actor's `stop`), a plain thread's every
 * call on the system returns TR_ESHUTDOWN, as system.h says, and touches
 * nothing shutdown may be freeing. Before, the name, group, path,
 * snapshot, clock and I/O lookups went on reading the system without
 * being counted in (shutdown frees the I/O module before its last wait
 * for such calls) and answered as if nothing were happening.
 */
static void
test_shutdown_refuses_every_plain_thread_call(void **state)
{
    fixture *f = *state;
    tr_addr h, m, a;
    pthread_t t;
    void *shut_rc;
    static char buf[4096];
    size_t len = 0;
    tr_addr out[4];
    size_t n = 99;

    tr_store_seqcst(&held_stop_in, 0);
    tr_store_seqcst(&held_stop_out, 0);
    assert_int_equal(tr_spawn(f->ctx, &holds_shutdown, NULL, NULL, &h), TR_OK);
    assert_int_equal(tr_spawn(f->ctx, &g_member, NULL, NULL, &m), TR_OK);
    assert_int_equal(tr_register(f->ctx, "m", m), TR_OK);
    assert_int_equal(pthread_create(&t, NULL, shut_it, f), 0);
    assert_true(tr_test_wait_until(held_stop_began, NULL, 5000));

    assert_int_equal(tr_whereis(f->sys, "m", &a), TR_ESHUTDOWN);
    assert_int_equal(tr_register(f->ctx, "h", h), TR_ESHUTDOWN);
    assert_int_equal(tr_unregister(f->ctx, "m"), TR_ESHUTDOWN);
    assert_int_equal(tr_pg_members(f->sys, "g", out, 4, &n), TR_ESHUTDOWN);
    assert_int_equal(tr_pg_send(f->ctx, "g", MSG_ECHO, NULL, 0, &n),
                     TR_ESHUTDOWN);
    assert_int_equal(tr_whereis_path(f->sys, "/x", &a), TR_ESHUTDOWN);
    assert_int_equal(
        tr_inspect_snapshot(f->sys, TR_INSPECT_JSON, buf, sizeof(buf), &len),
        TR_ESHUTDOWN);
    assert_int_equal(tr_now_ms(f->sys), 0);
    assert_int_equal(tr_send_wait(f->ctx, m, MSG_ECHO, NULL, 0, tr_ms(10)),
                     TR_ESHUTDOWN);
    assert_int_equal(tr_spawn(f->ctx, &quiet_behaviour, NULL, NULL, &a),
                     TR_ESHUTDOWN);
    assert_int_equal(tr_send_after(f->ctx, m, MSG_ECHO, NULL, 0, 5, NULL),
                     TR_ESHUTDOWN);
#if TR_TEST_IO
    tr_io_stats ios;
    uint16_t port;
    assert_int_equal(tr_io_stats_get(f->sys, &ios), TR_ESHUTDOWN);
    assert_int_equal(tr_io_port(f->sys, (tr_io){1}, &port), TR_ESHUTDOWN);
#endif
#if TR_TEST_LIVE
    assert_int_equal(tr_inspect_serve(f->sys, "127.0.0.1:0", NULL, NULL),
                     TR_ESHUTDOWN);
    assert_int_equal(tr_inspect_stop(f->sys), TR_ESHUTDOWN);
#endif

    tr_store_seqcst(&held_stop_out, 1);
    pthread_join(t, &shut_rc);
    f->shut = true;
    assert_int_equal((int)(intptr_t)shut_rc, TR_OK);
    assert_int_equal(f->final.live_actors, 0);
}

/* ---- a `stop` that shutdown's last pass runs may not block ---- */

static tr_oneshot_rx *last_rx;
static tr_mailbox *last_mb;
static int last_oneshot_rc, last_mailbox_rc;

static void
stop_waits(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    int v;
    size_t len;

    (void)ctx;
    (void)state;
    (void)exit;
    last_oneshot_rc = tr_oneshot_recv_wait(last_rx, &v, tr_ms(3000));
    last_mailbox_rc =
        tr_mailbox_recv_wait(last_mb, &v, sizeof(v), &len, tr_ms(3000));
}

static const tr_behaviour waits_in_stop = {
    .name = "waits_in_stop", .handle = plain_handle, .stop = stop_waits};

static int
busy_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return TR_OK;
}

static const tr_behaviour busy_behaviour = {.name = "busy",
                                            .handle = busy_handle};

/*
 * The one worker is busy past the deadline, so shutdown stops the idle
 * actor on its own thread: a wait there is refused (TR_ESTATE) as on a
 * worker, instead of holding the shutdown up (before: each wait ran its
 * 3 s and returned TR_ETIMEDOUT; with TR_FOREVER shutdown hung).
 */
static void
test_shutdown_last_pass_stop_may_not_block(void **state)
{
    fixture *f = *state;
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_oneshot_tx *tx;
    tr_system *sys;
    tr_addr a, b;

    cfg.workers = 1;
    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &last_rx), TR_OK);
    assert_int_equal(tr_mailbox_create(0, &last_mb), TR_OK);
    last_oneshot_rc = last_mailbox_rc = 1;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &waits_in_stop, NULL, NULL, &a), TR_OK);
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &busy_behaviour, NULL, NULL, &b), TR_OK);
    assert_int_equal(tr_send(tr_system_ctx(sys), b, 1, NULL, 0), TR_OK);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* the worker is in the busy handler */
    tr_system_shutdown(sys, TR_NOWAIT);
    assert_int_equal(last_oneshot_rc, TR_ESTATE);
    assert_int_equal(last_mailbox_rc, TR_ESTATE);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(last_rx);
    tr_mailbox_destroy(last_mb);
    (void)f;
}

/*
 * Envelopes of every size, through a system of one worker and one of two
 * (whose caches pack them, 16 bytes a class, and send home those of the
 * other worker's that they free): a plain thread's envelopes (whole lines)
 * end in a worker's cache, which reuses them for the relay's sends of
 * other sizes of their class; the sink checks every byte. A last round is still
 * queued when the system shuts down, and is freed by whoever drops it. ASan
 * checks each payload against its block, and checked builds that each block
 * goes back to the allocator with its own size (common/tr_alloc.c).
 */
enum { PACK_SIZES = 200, PACK_ROUNDS = 3 };

typedef struct pack_state {
    tr_mailbox *probe;
    tr_addr sink;
    int seen;
    int bad;
} pack_state;

static uint8_t
pack_byte(uint32_t size, uint32_t i)
{
    return (uint8_t)(size * 7 + i);
}

static int
pack_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(pack_state));
    return TR_OK;
}

static int
pack_relay(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pack_state *s = state;

    return tr_send(ctx, s->sink, msg->type, msg->data, msg->size);
}

static int
pack_sink(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pack_state *s = state;
    const uint8_t *b = msg->data;

    (void)ctx;
    for (uint32_t i = 0; i < msg->size; i++) {
        s->bad += b[i] != pack_byte(msg->size, i);
    }
    s->bad += msg->type != msg->size;
    if (++s->seen == PACK_ROUNDS * (PACK_SIZES + 1)) {
        report(s->probe, s->bad);
    }
    return TR_OK;
}

static const tr_behaviour pack_relay_behaviour = {
    .name = "pack_relay",
    .state_size = sizeof(pack_state),
    .init = pack_init,
    .handle = pack_relay,
};

static const tr_behaviour pack_sink_behaviour = {
    .name = "pack_sink",
    .state_size = sizeof(pack_state),
    .init = pack_init,
    .handle = pack_sink,
};

static void
send_every_size(tr_ctx *ctx, tr_addr to)
{
    uint8_t buf[PACK_SIZES];

    for (uint32_t size = 0; size <= PACK_SIZES; size++) {
        for (uint32_t i = 0; i < size; i++) {
            buf[i] = pack_byte(size, i);
        }
        assert_int_equal(tr_send(ctx, to, size, buf, size), TR_OK);
    }
}

static void
test_envelopes_of_every_size_through_one_and_two_workers(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
        pack_state s = {0};
        tr_addr relay;
        tr_system *sys;

        cfg.workers = workers;
        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        assert_int_equal(tr_mailbox_create(0, &s.probe), TR_OK);
        tr_ctx *ctx = tr_system_ctx(sys);
        assert_int_equal(tr_spawn(ctx, &pack_sink_behaviour, &s, NULL, &s.sink),
                         TR_OK);
        assert_int_equal(tr_spawn(ctx, &pack_relay_behaviour, &s, NULL, &relay),
                         TR_OK);
        for (int r = 0; r < PACK_ROUNDS; r++) {
            send_every_size(ctx, relay);
        }
        assert_int_equal(next_report(s.probe), 0);
        send_every_size(ctx, relay);
        assert_int_equal(tr_system_shutdown(sys, tr_ms(5000)), TR_OK);
        tr_mailbox_destroy(s.probe);
    }
}

/*
 * Exit hooks leave the list in any order: unhooked in constant time (a
 * socket's close) from its head, its tail and its middle, in a scrambled
 * order; cancelled by a scan; and neither a second time. The rest run
 * once when the actor ends, the latest registered first; a sentinel
 * registered before them all runs last and reports.
 */
enum { HOOKS = 1000, HOOK_STRIDE = 367 /* coprime to HOOKS */ };

typedef struct hook_rec {
    tr_exit_hook h; /* first: the hook is the record */
    int id;
} hook_rec;

static hook_rec hook_recs[HOOKS];
static hook_rec hook_sentinel;
static int hook_ran[HOOKS];
static int hook_nran;
static tr_mailbox *hook_probe;

static bool
hook_unhooked(int i)
{
    return i % 3 == 0;
}

static bool
hook_cancelled(int i)
{
    return !hook_unhooked(i) && i % 7 == 1;
}

static void
hook_run(tr_exit_hook *h, tr_ctx *ctx)
{
    const hook_rec *r = (const hook_rec *)(void *)h;

    (void)ctx;
    if (r == &hook_sentinel) {
        report(hook_probe, hook_nran);
    } else if (hook_nran < HOOKS) {
        hook_ran[hook_nran++] = r->id;
    }
}

static int
hooker_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    (void)arg;
    hook_sentinel.h.fn = hook_run;
    tr__actor_on_exit(ctx, &hook_sentinel.h);
    for (int i = 0; i < HOOKS; i++) {
        hook_recs[i].h.fn = hook_run;
        hook_recs[i].id = i;
        tr__actor_on_exit(ctx, &hook_recs[i].h);
    }
    return TR_OK;
}

static int
hooker_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int bad = 0;

    (void)state;
    (void)msg;
    /* The tail (0) and the head (HOOKS - 1) are among them. */
    for (int k = 0; k < HOOKS; k++) {
        int i = (k * HOOK_STRIDE) % HOOKS;
        if (hook_unhooked(i)) {
            bad += !tr__actor_unhook_exit(ctx, &hook_recs[i].h);
        }
    }
    for (int i = 0; i < HOOKS; i++) {
        if (hook_cancelled(i)) {
            bad += !tr__actor_cancel_exit(ctx, &hook_recs[i].h);
        }
    }
    for (int i = 0; i < HOOKS; i++) {
        if (hook_unhooked(i) || hook_cancelled(i)) {
            bad += tr__actor_unhook_exit(ctx, &hook_recs[i].h);
            bad += tr__actor_cancel_exit(ctx, &hook_recs[i].h);
        }
    }
    report(hook_probe, bad);
    return tr_stop(ctx);
}

static const tr_behaviour hooker_behaviour = {
    .name = "hooker",
    .init = hooker_init,
    .handle = hooker_handle,
};

static void
test_exit_hooks_leave_in_any_order_and_the_rest_run_once(void **state)
{
    fixture *f = *state;
    tr_addr a;
    int expect = 0;

    hook_probe = f->probe;
    hook_nran = 0;
    assert_int_equal(tr_spawn(f->ctx, &hooker_behaviour, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_send(f->ctx, a, 1, NULL, 0), TR_OK);
    assert_int_equal(next_report(f->probe), 0);
    for (int i = HOOKS - 1; i >= 0; i--) {
        if (!hook_unhooked(i) && !hook_cancelled(i)) {
            expect++;
        }
    }
    /* The sentinel's report orders what the hooks wrote before it. */
    assert_int_equal(next_report(f->probe), expect);
    for (int i = HOOKS - 1, n = 0; i >= 0; i--) {
        if (!hook_unhooked(i) && !hook_cancelled(i)) {
            assert_int_equal(hook_ran[n++], i);
        }
    }
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_actor_handles_messages_in_send_order),
        T(test_actor_state_on_the_heap_has_cache_lines_of_its_own),
        T(test_actor_state_on_the_heap_is_zero_when_reused),
        T(test_actor_unknown_type_goes_to_otherwise),
        T(test_actor_unhandled_type_without_otherwise_is_a_dead_letter),
        T(test_actor_become_swaps_the_table_until_reverted),
        T(test_actor_stop_runs_stop_callback_and_frees_address),
        T(test_actor_error_return_fails_it_and_reports_reason),
        T(test_actor_unnamed_behaviour_fails_as_unnamed),
        T(test_actor_ignore_from_a_handler_fails_as_misuse),
        cmocka_unit_test(
            test_actor_dead_letter_hook_that_sends_runs_once_a_letter),
        T(test_actor_tr_fail_reports_code_and_text),
        T(test_actor_init_failure_returns_its_code_without_stop),
        T(test_actor_tr_fail_in_init_fails_the_spawn),
        T(test_actor_stop_in_init_spawns_then_stops),
        T(test_actor_stop_request_overtakes_queued_messages),
        T(test_actor_queued_at_shutdown_are_shutdown_dead_letters),
        T(test_actor_control_message_during_a_one_message_run),
        T(test_actor_zero_copy_send_takes_buffer_only_on_success),
        T(test_exit_hooks_leave_in_any_order_and_the_rest_run_once),
        cmocka_unit_test(
            test_envelopes_of_every_size_through_one_and_two_workers),
        T(test_actor_bounded_mailbox_refuses_when_full),
        T(test_actor_thread_send_waits_for_room_in_bounded_mailbox),
        T(test_actor_worker_never_blocks_on_a_full_mailbox),
        T(test_actor_init_send_to_its_own_full_mailbox_is_refused),
        T(test_actor_misuse_returns_codes),
        T(test_actor_shutdown_from_a_worker_is_refused),
        T(test_shutdown_stops_every_actor_and_counts_queued_messages),
        T(test_shutdown_refuses_spawns),
        T(test_shutdown_waits_for_a_thread_spawn_in_init),
        T(test_shutdown_waits_for_a_send_under_way),
        T(test_shutdown_waits_for_a_group_send_under_way),
        T(test_shutdown_from_two_threads_at_once),
        T(test_shutdown_refuses_every_plain_thread_call),
        T(test_shutdown_last_pass_stop_may_not_block),
    };
#undef T
    return cmocka_run_group_tests_name("actor", tests, NULL, NULL);
}
