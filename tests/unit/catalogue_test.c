/*
 * The misuse catalogue: every public call given NULL where a pointer is
 * wanted, a forged or empty address, a dead handle, and numbers at the edge
 * of their type, from a plain thread and from inside a handler. Each must
 * answer with its documented code (never TR_OK for what it refuses), and
 * the run must leave nothing behind for the sanitizers to report.
 *
 * The cases are tables of (expression, code wanted), so that one failing
 * line names the call; a handler's cases run through the same checker and
 * report their mismatches in the reply.
 */
#include "support/tr_test.h"

#include <limits.h>
#include <sys/uio.h>

/* Mismatches found so far, as "expr: got X, want Y" lines. */
typedef struct report {
    char text[2048];
    size_t len;
    unsigned bad;
} report;

static void
check(report *r, const char *expr, int got, int want)
{
    int n;

    if (got == want) {
        return;
    }
    r->bad++;
    n = snprintf(r->text + r->len, sizeof(r->text) - r->len,
                 "%s: got %s, want %s\n", expr, tr_errname(got),
                 tr_errname(want));
    if (n > 0 && (size_t)n < sizeof(r->text) - r->len) {
        r->len += (size_t)n;
    }
}

#define CHECK(r, expr, want) check((r), #expr, (expr), (want))

static int
nothing(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static const tr_behaviour idle_behaviour = {
    .name = "catalogue_idle",
    .handle = nothing,
};

/* A string of `n` - 1 'x' characters. */
static char *
long_name(size_t n)
{
    char *s = malloc(n);

    assert_non_null(s);
    memset(s, 'x', n - 1);
    s[n - 1] = '\0';
    return s;
}

/* Addresses no live actor has: empty, another system's, a slot index past
 * every table, and a live actor's slot with a generation it never had. */
typedef struct bad_addrs {
    tr_addr none, foreign, past, stale;
} bad_addrs;

static bad_addrs
bad_addresses(tr_addr live)
{
    bad_addrs b = {
        .none = TR_ADDR_NONE, .foreign = live, .past = live, .stale = live};

    b.foreign.node = live.node ^ 1;
    if (b.foreign.node == 0) {
        b.foreign.node = 2;
    }
    b.past.id = UINT64_MAX;
    b.stale.id ^= (uint64_t)1 << 40;
    return b;
}

/* ---- from a plain thread ---- */

static void
plain_thread_cases(report *r, tr_system *sys, tr_addr live)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    bad_addrs b = bad_addresses(live);
    char *huge = long_name(4096);
    char data[16] = {0};
    tr_spawn_opts over = {.mailbox_cap = UINT32_MAX};
    tr_actor_stats st;
    tr_reply_buf rb = {.data = NULL};
    tr_addr out;
    tr_signal sig;
    uint64_t ref = 0;
    tr_timer tm;

    /* Actors. */
    CHECK(r, tr_spawn(NULL, &idle_behaviour, NULL, NULL, &out), TR_EINVAL);
    CHECK(r, tr_spawn(ctx, NULL, NULL, NULL, &out), TR_EINVAL);
    CHECK(r, tr_spawn(ctx, &idle_behaviour, NULL, &over, &out), TR_EINVAL);
    CHECK(r, tr_send(ctx, b.none, 1, NULL, 0), TR_ENOACTOR);
    CHECK(r, tr_send(ctx, b.foreign, 1, NULL, 0), TR_EFOREIGN);
    CHECK(r, tr_send(ctx, b.past, 1, NULL, 0), TR_ENOACTOR);
    CHECK(r, tr_send(ctx, b.stale, 1, NULL, 0), TR_ENOACTOR);
    CHECK(r, tr_send(ctx, live, UINT32_MAX, NULL, 0), TR_EINVAL);
    CHECK(r, tr_send(ctx, live, 1, NULL, 1), TR_EINVAL);
    CHECK(r, tr_send(ctx, live, 1, data, SIZE_MAX), TR_EINVAL);
    CHECK(r, tr_send(ctx, live, 1, data, (size_t)UINT32_MAX + 1), TR_EINVAL);
    CHECK(r, tr_send(NULL, live, 1, NULL, 0), TR_EINVAL);
    CHECK(r, tr_send_wait(ctx, b.stale, 1, data, 1, tr_ms(INT64_MAX)),
          TR_ENOACTOR);
    CHECK(r, tr_send_wait(ctx, live, 1, data, SIZE_MAX, TR_FOREVER), TR_EINVAL);
    CHECK(r, tr_send_buf(ctx, live, 1, NULL), TR_EINVAL);
    CHECK(r, tr_buf_alloc(SIZE_MAX) == NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_stop(NULL), TR_EINVAL);
    CHECK(r, tr_stop(ctx), TR_ESTATE);
    CHECK(r, tr_fail(ctx, INT_MIN, huge), TR_ESTATE);
    CHECK(r, tr_become(ctx, NULL), TR_ESTATE);
    CHECK(r, tr_actor_stop(ctx, b.none), TR_ENOACTOR);
    CHECK(r, tr_actor_stop(ctx, b.past), TR_ENOACTOR);
    CHECK(r, tr_actor_stop(NULL, live), TR_EINVAL);
    CHECK(r, tr_actor_close(ctx, b.stale), TR_ENOACTOR);
    CHECK(r, tr_actor_stats_get(NULL, live, &st), TR_EINVAL);
    CHECK(r, tr_actor_stats_get(sys, live, NULL), TR_EINVAL);
    CHECK(r, tr_actor_stats_get(sys, b.past, &st), TR_ENOACTOR);
    CHECK(r, tr_actor_stats_get(sys, b.stale, &st), TR_ENOACTOR);
    CHECK(r, tr_self(NULL).id == 0 ? TR_OK : TR_EINVAL, TR_OK);

    /* Calls. */
    CHECK(r, tr_call(ctx, live, 1, NULL, 0, TR_NOWAIT, NULL, NULL), TR_EINVAL);
    CHECK(r, tr_ask_wait(ctx, b.past, 1, NULL, 0, &rb, tr_ms(INT64_MAX)),
          TR_ENOACTOR);
    CHECK(r, tr_ask_wait(ctx, b.none, 1, NULL, 0, &rb, TR_FOREVER),
          TR_ENOACTOR);
    CHECK(r, tr_ask_wait(ctx, live, 1, NULL, 0, NULL, TR_FOREVER), TR_EINVAL);
    CHECK(r, tr_ask_wait(ctx, live, 1, data, SIZE_MAX, &rb, TR_FOREVER),
          TR_EINVAL);
    CHECK(r, tr_ask_wait(NULL, live, 1, NULL, 0, &rb, TR_FOREVER), TR_EINVAL);
    /* Handled and not answered: the call ends, whatever its timeout. */
    CHECK(r, tr_ask_wait(ctx, live, 1, NULL, 0, &rb, tr_ms(INT64_MAX)),
          TR_ECLOSED);
    CHECK(r, tr_reply(ctx, NULL, NULL, 0), TR_EINVAL);
    CHECK(r, tr_reply_take(ctx, NULL) == NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_msg_is_call(NULL, NULL) ? TR_EINVAL : TR_OK, TR_OK);
    CHECK(r, tr_reply_send(NULL, data, 1), TR_EINVAL);
    CHECK(r, tr_forward(ctx, NULL, live, 1, NULL, 0), TR_EINVAL);
    tr_reply_drop(NULL);

    /* Links, monitors and waits need an actor; names are checked first. */
    CHECK(r, tr_monitor(ctx, live, &ref), TR_ESTATE);
    CHECK(r, tr_demonitor(ctx, UINT64_MAX), TR_ESTATE);
    CHECK(r, tr_link(ctx, b.past), TR_ESTATE);
    CHECK(r, tr_trap_exits(NULL, true), TR_EINVAL);
    CHECK(r, tr_register(ctx, NULL, live), TR_EINVAL);
    CHECK(r, tr_register(ctx, "", live), TR_EINVAL);
    CHECK(r, tr_register(ctx, huge, live), TR_EINVAL);
    CHECK(r, tr_register(ctx, "catalogue", b.stale), TR_ENOACTOR);
    CHECK(r, tr_register(ctx, "catalogue", b.none), TR_ENOACTOR);
    CHECK(r, tr_unregister(ctx, huge), TR_EINVAL);
    CHECK(r, tr_whereis(sys, NULL, &out), TR_EINVAL);
    CHECK(r, tr_whereis(sys, huge, &out), TR_EINVAL);
    CHECK(r, tr_whereis(sys, "catalogue_absent", &out), TR_ENOTFOUND);
    CHECK(r, tr_whereis(NULL, "x", &out), TR_EINVAL);
    CHECK(r, tr_actor_wait(ctx, b.stale, tr_ms(INT64_MAX), &sig), TR_ENOACTOR);
    CHECK(r, tr_actor_wait(ctx, b.none, TR_FOREVER, &sig), TR_ENOACTOR);
    CHECK(r, tr_actor_wait(ctx, live, tr_ms(1), NULL), TR_ETIMEDOUT);
    CHECK(r, tr_actor_wait(NULL, live, tr_ms(1), &sig), TR_EINVAL);

    /* Timers. */
    CHECK(r, tr_send_after(ctx, live, 1, NULL, 0, UINT64_MAX, &tm), TR_OK);
    CHECK(r, tr_timer_cancel(sys, tm), TR_OK);
    CHECK(r, tr_timer_cancel(sys, tm), TR_EALREADY);
    CHECK(r, tr_send_after(ctx, b.stale, 1, NULL, 0, 5, &tm), TR_ENOACTOR);
    CHECK(r, tr_send_after(ctx, live, 1, data, SIZE_MAX, 5, &tm), TR_EINVAL);
    CHECK(r, tr_send_interval(ctx, live, 1, NULL, 0, 0, &tm), TR_EINVAL);
    CHECK(r, tr_send_interval(ctx, live, 1, NULL, 0, UINT64_MAX, &tm), TR_OK);
    CHECK(r, tr_timer_cancel(sys, tm), TR_OK);
    CHECK(r, tr_timer_cancel(sys, (tr_timer){UINT64_MAX}), TR_EALREADY);
    CHECK(r, tr_timer_cancel(NULL, tm), TR_EINVAL);
    CHECK(r, tr_clock_advance(sys, UINT64_MAX), TR_ESTATE);
    CHECK(r, tr_clock_advance(NULL, 1), TR_EINVAL);

    /* Process groups. */
    size_t n = 0;
    tr_addr members[4];
    CHECK(r, tr_pg_join(ctx, NULL), TR_EINVAL);
    CHECK(r, tr_pg_join(ctx, ""), TR_EINVAL);
    CHECK(r, tr_pg_join(ctx, huge), TR_EINVAL);
    CHECK(r, tr_pg_leave(ctx, huge), TR_EINVAL);
    CHECK(r, tr_pg_members(sys, NULL, members, 4, &n), TR_EINVAL);
    CHECK(r, tr_pg_members(sys, "g", NULL, 4, &n), TR_EINVAL);
    CHECK(r, tr_pg_members(sys, "g", NULL, 0, &n), TR_OK);
    CHECK(r, tr_pg_members(sys, "g", members, 4, NULL), TR_EINVAL);
    CHECK(r, tr_pg_send(ctx, "g", 1, data, SIZE_MAX, &n), TR_EINVAL);
    CHECK(r, tr_pg_send(ctx, NULL, 1, data, 1, &n), TR_EINVAL);
    CHECK(r, tr_pg_send(ctx, "g", UINT32_MAX, data, 1, &n), TR_EINVAL);
    CHECK(r, tr_pg_monitor(ctx, NULL, &ref), TR_EINVAL);
    CHECK(r, tr_pg_demonitor(ctx, UINT64_MAX), TR_ESTATE);

    /* The system. */
    tr_system_stats ss;
    CHECK(r, tr_system_start(NULL, NULL), TR_EINVAL);
    CHECK(r, tr_system_ctx(NULL) == NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_ctx_system(NULL) == NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_system_stats_get(NULL, &ss), TR_EINVAL);
    CHECK(r, tr_system_stats_get(sys, NULL), TR_EINVAL);
    CHECK(r, tr_system_wait(NULL, tr_ms(1)), TR_EINVAL);
    CHECK(r, tr_system_wait(sys, tr_ms(1)), TR_ETIMEDOUT);
    CHECK(r, tr_system_shutdown(NULL, TR_FOREVER), TR_EINVAL);
    CHECK(r, tr_strerror(INT_MIN) != NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, strcmp(tr_errname(INT_MAX), "TR_UNKNOWN"), 0);
#if TR_TEST_IO
    CHECK(r, tr_io_end_name((tr_io_end)INT_MAX) != NULL ? TR_OK : TR_EINVAL,
          TR_OK);
#endif

    /* Inspection: a buffer under TR_INSPECT_MIN_CAP is refused, and the
     * string left in it is empty, still a string. */
    char buf[TR_INSPECT_MIN_CAP];
    size_t len = 1;
    uint16_t port;
    CHECK(r, tr_inspect_snapshot(NULL, TR_INSPECT_JSON, buf, sizeof(buf), &len),
          TR_EINVAL);
    CHECK(r,
          tr_inspect_snapshot(sys, (tr_inspect_format)INT_MAX, buf, sizeof(buf),
                              &len),
          TR_EINVAL);
    CHECK(r, tr_inspect_snapshot(sys, TR_INSPECT_JSON, NULL, 100, &len),
          TR_EINVAL);
    memset(buf, 'z', sizeof(buf));
    CHECK(r, tr_inspect_snapshot(sys, TR_INSPECT_JSON, buf, 1, &len),
          TR_EINVAL);
    CHECK(r, buf[0] == '\0' ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_inspect_snapshot(sys, TR_INSPECT_JSON, buf, sizeof(buf), NULL),
          TR_EINVAL);
    CHECK(r, tr_inspect_serve(NULL, "127.0.0.1:0", NULL, &port), TR_EINVAL);
#if TR_TEST_LIVE
    CHECK(r, tr_inspect_serve(sys, "127.0.0.1:99999", NULL, &port), TR_EINVAL);
    CHECK(r, tr_inspect_serve(sys, huge, NULL, &port), TR_EINVAL);
#else
    CHECK(r, tr_inspect_serve(sys, "127.0.0.1:0", NULL, &port), TR_ESTATE);
#endif
    CHECK(r, tr_inspect_stop(NULL), TR_EINVAL);
    CHECK(r, tr_inspect_stop(sys), TR_ESTATE);

#if TR_TEST_IO
    /* I/O from a plain thread: what needs an owner is refused. */
    tr_io io;
    tr_io bogus = {.id = UINT64_MAX};
    CHECK(r, tr_io_listen(ctx, "127.0.0.1", 0, NULL, &io), TR_ESTATE);
    CHECK(r, tr_io_listen(ctx, "localhost", 0, NULL, NULL), TR_EINVAL);
    CHECK(r, tr_io_write(ctx, bogus, data, 1), TR_ESTATE);
    CHECK(r, tr_io_write(ctx, bogus, NULL, SIZE_MAX), TR_EINVAL);
    CHECK(r, tr_io_writev(ctx, bogus, NULL, -1), TR_EINVAL);
    CHECK(r, tr_io_port(sys, bogus, &port), TR_ECLOSED);
    CHECK(r, tr_io_port(NULL, bogus, &port), TR_EINVAL);
    CHECK(r, tr_io_stats_get(sys, NULL), TR_EINVAL);
#endif

    free(huge);
}

/* ---- channels and mailboxes (any thread) ---- */

static void
channel_cases(report *r)
{
    char data[16] = {0};
    tr_broadcast_tx *btx = NULL;
    tr_broadcast_rx *brx = NULL;
    const tr_broadcast_value *bv;
    uint64_t lag;

    CHECK(r, tr_broadcast_create(0, 8, &btx), TR_EINVAL);
    CHECK(r, tr_broadcast_create(SIZE_MAX, 8, &btx), TR_EINVAL);
    CHECK(r, tr_broadcast_create(4, SIZE_MAX, &btx), TR_EINVAL);
    CHECK(r, tr_broadcast_create(4, 8, NULL), TR_EINVAL);
    CHECK(r, tr_broadcast_create(4, 8, &btx), TR_OK);
    CHECK(r, tr_broadcast_send(NULL, data, 1), TR_EINVAL);
    CHECK(r, tr_broadcast_send(btx, NULL, 1), TR_EINVAL);
    CHECK(r, tr_broadcast_send(btx, data, 9), TR_EINVAL);
    CHECK(r, tr_broadcast_send(btx, data, SIZE_MAX), TR_EINVAL);
    CHECK(r, (int)tr_broadcast_len(NULL), 0);
    CHECK(r, (int)tr_broadcast_receiver_count(NULL), 0);
    CHECK(r, tr_broadcast_subscribe(NULL, &brx), TR_EINVAL);
    CHECK(r, tr_broadcast_subscribe(btx, NULL), TR_EINVAL);
    CHECK(r, tr_broadcast_subscribe(btx, &brx), TR_OK);
    CHECK(r, tr_broadcast_recv_wait(NULL, &bv, &lag, TR_NOWAIT), TR_EINVAL);
    CHECK(r, tr_broadcast_recv_wait(brx, NULL, &lag, TR_NOWAIT), TR_EINVAL);
    CHECK(r, tr_broadcast_recv_wait(brx, &bv, &lag, tr_ms(1)), TR_ETIMEDOUT);
    CHECK(r, tr_broadcast_value_data(NULL) == NULL ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, (int)tr_broadcast_value_size(NULL), 0);
    tr_broadcast_value_release(NULL);
    CHECK(r, tr_broadcast_tx_clone(NULL, &btx), TR_EINVAL);
    CHECK(r, tr_broadcast_unsubscribe(NULL, NULL), TR_EINVAL);
    tr_broadcast_rx_destroy(NULL);
    tr_broadcast_tx_destroy(NULL);
    tr_broadcast_rx_destroy(brx);
    tr_broadcast_tx_destroy(btx);

    tr_mailbox *mb = NULL;
    size_t len;
    CHECK(r, tr_mailbox_create(0, NULL), TR_EINVAL);
    CHECK(r, tr_mailbox_create(1, &mb), TR_OK);
    CHECK(r, tr_mailbox_send(NULL, data, 1), TR_EINVAL);
    CHECK(r, tr_mailbox_send(mb, NULL, 5), TR_EINVAL);
    CHECK(r, tr_mailbox_send(mb, data, SIZE_MAX), TR_EINVAL);
    CHECK(r, tr_mailbox_send(mb, data, 1), TR_OK);
    CHECK(r, tr_mailbox_send(mb, data, 1), TR_EFULL);
    CHECK(r, tr_mailbox_recv_wait(NULL, data, 10, &len, TR_NOWAIT), TR_EINVAL);
    CHECK(r, tr_mailbox_recv_wait(mb, NULL, 10, &len, TR_NOWAIT), TR_EINVAL);
    CHECK(r, tr_mailbox_recv_wait(mb, data, 10, NULL, TR_NOWAIT), TR_EINVAL);
    CHECK(r, (int)tr_mailbox_len(NULL), 0);
    CHECK(r, (int)tr_mailbox_len(mb), 1);
    tr_mailbox_close(NULL);
    tr_mailbox_destroy(NULL);
    tr_mailbox_destroy(mb);

    tr_oneshot_tx *otx = NULL;
    tr_oneshot_rx *orx = NULL;
    CHECK(r, tr_oneshot_create(SIZE_MAX, &otx, &orx), TR_EINVAL);
    CHECK(r, tr_oneshot_create(8, NULL, &orx), TR_EINVAL);
    CHECK(r, tr_oneshot_create(8, &otx, NULL), TR_EINVAL);
    CHECK(r, tr_oneshot_send(NULL, data), TR_EINVAL);
    CHECK(r, tr_oneshot_recv_wait(NULL, data, TR_NOWAIT), TR_EINVAL);
    tr_oneshot_rx_close(NULL);
    tr_oneshot_rx_destroy(NULL);
    tr_oneshot_tx_destroy(NULL);

    tr_watch_tx *wtx = NULL;
    tr_watch_rx *wrx = NULL;
    uint64_t ver;
    CHECK(r, tr_watch_create(0, NULL, &wtx, &wrx), TR_EINVAL);
    CHECK(r, tr_watch_create(SIZE_MAX, data, &wtx, &wrx), TR_EINVAL);
    CHECK(r, tr_watch_create(8, NULL, &wtx, &wrx), TR_EINVAL);
    CHECK(r, tr_watch_create(8, data, NULL, &wrx), TR_EINVAL);
    CHECK(r, tr_watch_create(8, data, &wtx, &wrx), TR_OK);
    CHECK(r, tr_watch_send(NULL, data), TR_EINVAL);
    CHECK(r, tr_watch_send(wtx, NULL), TR_EINVAL);
    CHECK(r, tr_watch_send_modify(wtx, NULL, NULL), TR_EINVAL);
    CHECK(r, (int)tr_watch_receiver_count(NULL), 0);
    CHECK(r, tr_watch_subscribe(NULL, &wrx), TR_EINVAL);
    CHECK(r, tr_watch_borrow(NULL, data, &ver), TR_EINVAL);
    CHECK(r, tr_watch_borrow(wrx, NULL, &ver), TR_EINVAL);
    CHECK(r, tr_watch_borrow_and_update(wrx, NULL, NULL), TR_EINVAL);
    CHECK(r, tr_watch_changed_wait(NULL, TR_NOWAIT), TR_EINVAL);
    CHECK(r, tr_watch_tx_clone(NULL, &wtx), TR_EINVAL);
    CHECK(r, tr_watch_unsubscribe(NULL, NULL), TR_EINVAL);
    tr_watch_rx_destroy(NULL);
    tr_watch_tx_destroy(NULL);
    tr_watch_rx_destroy(wrx);
    tr_watch_tx_destroy(wtx);
}

/* ---- supervision ---- */

static void
supervisor_cases(report *r, tr_system *sys, tr_addr live)
{
    tr_ctx *ctx = tr_system_ctx(sys);
    bad_addrs b = bad_addresses(live);
    char *huge = long_name(4096);
    char why[64];
    tr_sup_spec spec = {
        .name = "catalogue_sup",
        .max_restarts = UINT32_MAX,
        .period_ms = UINT32_MAX,
        .len = SIZE_MAX,
    };
    tr_child_spec child = {
        .id = "c",
        .behaviour = &idle_behaviour,
        .shutdown_ms = INT_MIN,
        .mailbox_cap = UINT32_MAX,
    };
    tr_child_info info[2];
    tr_child_counts counts;
    tr_child_spec_buf sbuf;
    tr_addr sup, out;
    size_t len;

    CHECK(r, tr_sup_spec_check(NULL, why, sizeof(why)), TR_EINVAL);
    CHECK(r, tr_sup_spec_check(&spec, why, sizeof(why)), TR_EINVAL);
    CHECK(r, why[0] != '\0' ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_sup_spec_check(&spec, why, 0), TR_EINVAL);
    CHECK(r, tr_sup_start(ctx, &spec, NULL, &sup), TR_EINVAL);
    spec.max_restarts = 0;
    spec.period_ms = 0;
    spec.len = 0;
    spec.strategy = (tr_strategy)INT_MAX;
    CHECK(r, tr_sup_spec_check(&spec, why, 1), TR_EINVAL);
    CHECK(r, why[0] == '\0' ? TR_OK : TR_EINVAL, TR_OK);
    spec.strategy = TR_ONE_FOR_ONE;
    CHECK(r, tr_sup_start(NULL, &spec, NULL, &sup), TR_EINVAL);
    CHECK(r, tr_sup_start(ctx, NULL, NULL, &sup), TR_EINVAL);
    CHECK(r, tr_sup_start(ctx, &spec, NULL, &sup), TR_OK);

    CHECK(r, tr_sup_start_child_wait(ctx, sup, &child, NULL, TR_FOREVER, &out),
          TR_EINVAL);
    child.shutdown_ms = 0;
    child.mailbox_cap = 0;
    child.id = huge;
    CHECK(r, tr_sup_start_child_wait(ctx, sup, &child, NULL, TR_FOREVER, &out),
          TR_EINVAL);
    CHECK(r, tr_sup_start_child_wait(ctx, sup, NULL, NULL, TR_FOREVER, &out),
          TR_EINVAL);
    child.id = "c";
    CHECK(r,
          tr_sup_start_child_wait(ctx, b.past, &child, NULL, TR_FOREVER, &out),
          TR_ENOACTOR);
    CHECK(r, tr_sup_terminate_child_wait(ctx, sup, NULL, TR_FOREVER),
          TR_EINVAL);
    CHECK(r, tr_sup_terminate_child_wait(ctx, sup, huge, TR_FOREVER),
          TR_EINVAL);
    CHECK(r, tr_sup_terminate_child_wait(ctx, sup, "absent", tr_ms(INT64_MAX)),
          TR_ENOTFOUND);
    CHECK(r, tr_sup_restart_child_wait(ctx, sup, NULL, TR_FOREVER, &out),
          TR_EINVAL);
    CHECK(r, tr_sup_delete_child_wait(ctx, sup, "absent", TR_FOREVER),
          TR_ENOTFOUND);
    CHECK(r, tr_sup_which_children_wait(ctx, sup, NULL, 5, &len, TR_FOREVER),
          TR_EINVAL);
    CHECK(r, tr_sup_which_children_wait(ctx, sup, NULL, 0, &len, TR_FOREVER),
          TR_OK);
    CHECK(r, tr_sup_which_children_wait(ctx, sup, info, 2, NULL, TR_FOREVER),
          TR_EINVAL);
    CHECK(r, tr_sup_find_child_wait(ctx, sup, NULL, TR_FOREVER, info),
          TR_EINVAL);
    CHECK(r, tr_sup_get_childspec_wait(ctx, sup, "c", TR_FOREVER, NULL),
          TR_EINVAL);
    CHECK(r, tr_sup_count_children_wait(ctx, sup, NULL, TR_FOREVER), TR_EINVAL);
    /* Not a supervisor, and no supervisor at all. */
    CHECK(r, tr_sup_count_children_wait(ctx, live, &counts, TR_FOREVER),
          TR_ENOTSUP);
    CHECK(r, tr_sup_get_childspec_wait(ctx, b.stale, "c", TR_FOREVER, &sbuf),
          TR_ENOACTOR);
    CHECK(r, tr_whereis_path(sys, NULL, &out), TR_EINVAL);
    CHECK(r, tr_whereis_path(sys, "", &out), TR_ENOTFOUND);
    CHECK(r, tr_whereis_path(sys, "//", &out), TR_ENOTFOUND);
    CHECK(r, tr_whereis_path(sys, huge, &out), TR_ENOTFOUND);
    CHECK(r, tr_whereis_path(NULL, "/catalogue_sup", &out), TR_EINVAL);
    CHECK(r, tr_whereis_path(sys, "/catalogue_sup", NULL), TR_EINVAL);
    CHECK(r, tr_whereis_path(sys, "catalogue_sup", &out), TR_ENOTFOUND);
    CHECK(r, tr_whereis_path(sys, "/catalogue_sup", &out), TR_OK);
    CHECK(r, out.id == sup.id ? TR_OK : TR_EINVAL, TR_OK);
    CHECK(r, tr_actor_stop(ctx, sup), TR_OK);
    free(huge);
}

/* ---- inside a handler ---- */

enum { MSG_RUN = 1 };

/* The calls that need an actor, each with bad input. */
static void
handler_cases(report *r, tr_ctx *ctx, tr_addr live)
{
    bad_addrs b = bad_addresses(live);
    char *huge = long_name(300);
    char data[16] = {0};
    uint64_t ref = 0;
    tr_reply_buf rb = {.data = NULL};
#if TR_TEST_IO
    tr_io io;
    tr_io bogus = {.id = UINT64_MAX};
    tr_io_listen_opts lo = {0};
    size_t len;
#endif

    /* Waiting is for plain threads. */
    CHECK(r, tr_ask_wait(ctx, live, 1, NULL, 0, &rb, tr_ms(1)), TR_ESTATE);
    CHECK(r, tr_send_wait(ctx, live, 1, NULL, 0, tr_ms(1)), TR_ESTATE);
    CHECK(r, tr_system_wait(tr_ctx_system(ctx), tr_ms(1)), TR_ESTATE);
    CHECK(r, tr_call(ctx, b.past, 1, NULL, 0, TR_NOWAIT, NULL, NULL),
          TR_EINVAL);
    CHECK(r, tr_become(ctx, NULL), TR_OK);
    CHECK(r, tr_send(ctx, b.stale, 1, data, sizeof(data)), TR_ENOACTOR);

    /* Monitors and links to what does not exist. */
    CHECK(r, tr_monitor(ctx, live, NULL), TR_EINVAL);
    CHECK(r, tr_demonitor(ctx, 0), TR_ENOTFOUND);
    CHECK(r, tr_demonitor(ctx, UINT64_MAX), TR_ENOTFOUND);
    CHECK(r, tr_link(ctx, b.foreign), TR_EFOREIGN);
    CHECK(r, tr_unlink(ctx, b.past), TR_OK);
    CHECK(r, tr_pg_monitor(ctx, "g", NULL), TR_EINVAL);
    CHECK(r, tr_pg_demonitor(ctx, UINT64_MAX), TR_ENOTFOUND);
    CHECK(r, tr_pg_demonitor(ctx, ref), TR_ENOTFOUND);

    /* Subscriptions with NULL channels. */
    CHECK(r, tr_broadcast_subscribe_actor(ctx, NULL, NULL, NULL), TR_EINVAL);
    CHECK(r, tr_oneshot_subscribe_actor(ctx, NULL, 1, 2), TR_EINVAL);
    CHECK(r, tr_watch_subscribe_actor(ctx, NULL, 1, 2, NULL), TR_EINVAL);

#if TR_TEST_IO
    /* Sockets: bad addresses, paths, options and handles. */
    CHECK(r, tr_io_listen(ctx, "256.1.1.1", 0, NULL, &io), TR_EBADADDR);
    CHECK(r, tr_io_listen_unix(ctx, NULL, NULL, &io), TR_EBADADDR);
    CHECK(r, tr_io_listen_unix(ctx, "", NULL, &io), TR_EBADADDR);
    CHECK(r, tr_io_listen_unix(ctx, huge, NULL, &io), TR_EBADADDR);
    lo.conn.framing = (tr_io_framing)INT_MAX;
    CHECK(r, tr_io_listen(ctx, "127.0.0.1", 0, &lo, &io), TR_EINVAL);
    lo.conn.framing = 0;
    lo.conn.max_frame = UINT32_MAX;
    CHECK(r, tr_io_listen(ctx, "127.0.0.1", 0, &lo, &io), TR_EINVAL);
    lo.conn.max_frame = 0;
    lo.backlog = -5;
    CHECK(r, tr_io_listen(ctx, "127.0.0.1", 0, &lo, &io), TR_EINVAL);
    CHECK(r, tr_io_connect(ctx, NULL, 1, NULL, TR_FOREVER, &io), TR_EBADADDR);
    CHECK(r, tr_io_connect(ctx, "127.0.0.1", 0, NULL, TR_FOREVER, &io),
          TR_EBADADDR);
    CHECK(r, tr_io_connect_unix(ctx, huge, NULL, TR_FOREVER, &io), TR_EBADADDR);
    CHECK(r, tr_io_watch(ctx, -1, 1, &io), TR_EINVAL);
    CHECK(r, tr_io_watch(ctx, 0, UINT32_MAX, &io), TR_EINVAL);
    CHECK(r, tr_io_write(ctx, bogus, data, 1), TR_ECLOSED);
    CHECK(r, tr_io_writev(ctx, bogus, NULL, INT_MAX), TR_EINVAL);
    CHECK(r, tr_io_shutdown(ctx, bogus), TR_ECLOSED);
    CHECK(r, tr_io_close(ctx, bogus), TR_ECLOSED);
    CHECK(r, tr_io_pause(ctx, bogus), TR_ECLOSED);
    CHECK(r, tr_io_resume(ctx, bogus), TR_ECLOSED);
    CHECK(r, tr_io_give(ctx, bogus, live), TR_ECLOSED);
    CHECK(r, tr_io_set_user(ctx, bogus, NULL), TR_ECLOSED);
    CHECK(r, tr_io_buffered(ctx, bogus, &len), TR_ECLOSED);
#endif
    free(huge);
}

typedef struct prober {
    tr_addr live;
} prober;

static int
prober_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(prober));
    return TR_OK;
}

static int
prober_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    prober *p = state;
    report r = {.len = 0};

    handler_cases(&r, ctx, p->live);
    return tr_reply(ctx, msg, r.text, r.len + 1);
}

static const tr_behaviour prober_behaviour = {
    .name = "catalogue_prober",
    .state_size = sizeof(prober),
    .init = prober_init,
    .handle = prober_handle,
};

/* ---- a simulation's configuration ---- */

/* Start a simulated system with `sim`; its code (and shut it down). */
static int
sim_start(const tr_sim_config *sim)
{
    tr_system_config cfg = {.sim = sim};
    tr_system *sys = NULL;
    int rc = tr_system_start(&cfg, &sys);

    if (rc == TR_OK) {
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    return rc;
}

static void
simulation_cases(report *r)
{
    tr_sim_config c = {.seed = UINT64_MAX};

    /* Every chance at its unit is fine; one past it is refused. */
    c.faults = (tr_sim_faults){.crash_ppm = 1000000,
                               .kill_ppm = 1000000,
                               .alloc_fail_ppm = 1000000,
                               .point_pct = 100};
    c.reorder_pct = 100;
    c.net = (tr_sim_net){.loss_ppm = 1000000,
                         .reset_ppm = 1000000,
                         .partition_ppm = 1000000,
                         .partition_reset_pct = 100,
                         .latency_min_ms = UINT32_MAX,
                         .latency_max_ms = 1};
    c.timer_late_max_ms = UINT32_MAX;
    c.step_cost_max_us = UINT32_MAX;
    c.max_steps = 1;
    CHECK(r, sim_start(&c), TR_OK);
    c.faults.crash_ppm = 1000001;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.faults.crash_ppm = 0;
    c.faults.point_pct = 101;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.faults.point_pct = 0;
    c.reorder_pct = UINT32_MAX;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.reorder_pct = 0;
    c.net.loss_ppm = UINT32_MAX;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.net.loss_ppm = 0;
    c.net.partition_reset_pct = 101;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.net.partition_reset_pct = 0;
    c.strategy = (tr_sim_strategy)INT_MAX;
    CHECK(r, sim_start(&c), TR_EINVAL);
    c.strategy = TR_SIM_PCT;
    c.pct_depth = UINT32_MAX;
    c.pct_steps = UINT64_MAX;
    CHECK(r, sim_start(&c), TR_OK);
    c.tape_path = "/nonexistent/troupe.tape";
    CHECK(r, sim_start(&c), TR_ENOTFOUND);
}

/* ---- the tests ---- */

static void
assert_clean(const report *r)
{
    if (r->bad != 0) {
        fail_msg("%u mismatches:\n%s", r->bad, r->text);
    }
}

static void
test_catalogue_plain_thread(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    report r = {.len = 0};
    tr_addr live;

    assert_int_equal(tr_spawn(ctx, &idle_behaviour, NULL, NULL, &live), TR_OK);
    plain_thread_cases(&r, sys, live);
    supervisor_cases(&r, sys, live);
    assert_clean(&r);
    tr_test_shutdown(sys);
}

static void
test_catalogue_channels(void **state)
{
    (void)state;
    report r = {.len = 0};

    channel_cases(&r);
    assert_clean(&r);
}

static void
test_catalogue_simulation(void **state)
{
    (void)state;
    report r = {.len = 0};

    simulation_cases(&r);
    assert_clean(&r);
}

static void
test_catalogue_in_a_handler(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    char text[2048];
    size_t len = 0;
    prober p;
    tr_addr probe;

    assert_int_equal(tr_spawn(ctx, &idle_behaviour, NULL, NULL, &p.live),
                     TR_OK);
    assert_int_equal(tr_spawn(ctx, &prober_behaviour, &p, NULL, &probe), TR_OK);
    assert_int_equal(tr_test_ask(ctx, probe, MSG_RUN, NULL, 0, text,
                                 sizeof(text), &len, 10000),
                     TR_OK);
    assert_true(len >= 1);
    if (text[0] != '\0') {
        fail_msg("mismatches in a handler:\n%s", text);
    }
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogue_plain_thread),
        cmocka_unit_test(test_catalogue_channels),
        cmocka_unit_test(test_catalogue_in_a_handler),
        cmocka_unit_test(test_catalogue_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
