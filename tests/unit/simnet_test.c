/*
 * The simulated network (troupe/sim.h, "Network"): troupe/io.h's TCP calls
 * in a simulated system, on an in-memory network whose every event is a
 * step drawn from the seed. Lines and frames go through as they do over
 * loopback; a connect nobody listens to is refused; timeouts run on the
 * virtual clock; resets and partitions end connections cleanly (each
 * end hears TR_IO_CLOSED); and a seed gives one run, fingerprint and all.
 *
 * Handlers run on the test thread (it drives the system) but only record;
 * the assertions come after the steps.
 */
#include "support/tr_test.h"

#include <troupe.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { MAX_CLIENTS = 8, LINES = 20, PORT = 7000 };

#define SERVER_HOST "10.0.0.1"

/* What every actor of a run records. */
typedef struct client_rec {
    uint32_t got;      /* lines echoed back, in order */
    bool out_of_order; /* a line came back that was not the next one */
    bool connected;
    bool done;  /* every line came back and it closed */
    bool ended; /* TR_IO_CLOSED */
    tr_io_end reason;
    int err;
    uint32_t too_long;
    bool full; /* a write was refused with TR_EFULL */
    bool drained;
} client_rec;

typedef struct run_rec {
    client_rec c[MAX_CLIENTS];
    uint32_t accepted;
    uint32_t server_closed; /* connections the server saw end */
    uint32_t server_eof;
    uint32_t write_failed; /* writes refused (a reset connection) */
    int listen_rc;
} run_rec;

static run_rec rec;

/* ---- the echo server: owns its connections, echoes each line ---- */

typedef struct server_arg {
    tr_io_opts conn;
} server_arg;

static int
server_init(tr_ctx *ctx, void *state, const void *arg)
{
    const server_arg *a = arg;
    tr_io_listen_opts o = {.conn = a->conn};
    tr_io *io = state;

    rec.listen_rc = tr_io_listen(ctx, SERVER_HOST, PORT, &o, io);
    return rec.listen_rc;
}

static int
server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_io_event *ev = msg->data;

    (void)state;
    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    switch (ev->kind) {
    case TR_IO_ACCEPTED:
        rec.accepted++;
        break;
    case TR_IO_DATA: {
        struct iovec v[2] = {{(void *)ev->data, ev->len}, {"\n", 1}};
        if (tr_io_writev(ctx, ev->io, v, 2) != TR_OK) {
            rec.write_failed++;
        }
        break;
    }
    case TR_IO_EOF:
        rec.server_eof++;
        (void)tr_io_close(ctx, ev->io);
        break;
    case TR_IO_CLOSED:
        rec.server_closed++;
        break;
    default:
        break;
    }
    return TR_OK;
}

static const tr_behaviour server_behaviour = {
    .name = "echo_server",
    .state_size = sizeof(tr_io),
    .init = server_init,
    .handle = server_handle,
};

/* ---- a client: sends LINES lines, checks each echo ---- */

typedef struct client_arg {
    uint32_t id;
    uint16_t port;
    tr_timeout timeout;
    tr_io_opts opts;
    bool shutdown_after; /* shut its side down once all is written */
    bool keep_open;      /* stay connected once every line is back */
} client_arg;

typedef struct client_state {
    const client_arg *arg;
    tr_io io;
} client_state;

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    client_state *st = state;

    st->arg = arg;
    return tr_io_connect(ctx, SERVER_HOST, st->arg->port, &st->arg->opts,
                         st->arg->timeout, &st->io);
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *st = state;
    client_rec *r = &rec.c[st->arg->id];
    const tr_io_event *ev = msg->data;
    char line[64];

    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    switch (ev->kind) {
    case TR_IO_CONNECTED:
        r->connected = true;
        for (uint32_t k = 0; k < LINES; k++) {
            int n = snprintf(line, sizeof(line), "client %u line %u\n",
                             st->arg->id, k);
            if (tr_io_write(ctx, ev->io, line, (size_t)n) != TR_OK) {
                rec.write_failed++;
            }
        }
        if (st->arg->shutdown_after) {
            (void)tr_io_shutdown(ctx, ev->io);
        }
        break;
    case TR_IO_DATA: {
        int n = snprintf(line, sizeof(line), "client %u line %u", st->arg->id,
                         r->got);
        if ((size_t)n != ev->len || memcmp(line, ev->data, ev->len) != 0) {
            r->out_of_order = true;
        }
        if (++r->got == LINES && !st->arg->shutdown_after &&
            !st->arg->keep_open) {
            r->done = true;
            (void)tr_io_close(ctx, ev->io);
            tr_stop(ctx);
        }
        break;
    }
    case TR_IO_EOF:
        r->done = r->got == LINES;
        (void)tr_io_close(ctx, ev->io);
        tr_stop(ctx);
        break;
    case TR_IO_CLOSED:
        r->ended = true;
        r->reason = ev->reason;
        r->err = ev->err;
        tr_stop(ctx);
        break;
    default:
        break;
    }
    return TR_OK;
}

static const tr_behaviour client_behaviour = {
    .name = "echo_client",
    .state_size = sizeof(client_state),
    .init = client_init,
    .handle = client_handle,
};

/* ---- running a scenario ---- */

static tr_system *
sim_start(uint64_t seed, const tr_sim_net *net)
{
    tr_sim_config sim = {.seed = seed, .net = *net};
    tr_system_config cfg = {.sim = &sim};
    tr_system *sys = NULL;

    assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
    return sys;
}

static server_arg lines_server = {.conn = {.framing = TR_IO_LINES}};

/* Run an echo server and `n` clients to the end; the fingerprint. */
static uint64_t
run_echo(uint64_t seed, const tr_sim_net *net, unsigned n,
         const client_arg *proto)
{
    static client_arg args[MAX_CLIENTS];
    tr_system *sys = sim_start(seed, net);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_sim_stats st;
    tr_addr a;
    char why[160];

    memset(&rec, 0, sizeof(rec));
    assert_int_equal(tr_spawn(ctx, &server_behaviour, &lines_server, NULL, &a),
                     TR_OK);
    for (unsigned i = 0; i < n; i++) {
        args[i] = *proto;
        args[i].id = i;
        assert_int_equal(tr_spawn(ctx, &client_behaviour, &args[i], NULL, &a),
                         TR_OK);
    }
    int rc = tr_sim_liveness_check(sys, why, sizeof(why));
    if (rc != TR_OK) {
        print_message("liveness: %s\n", why);
    }
    assert_int_equal(rc, TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    return st.fingerprint;
}

static const client_arg plain_client = {
    .port = PORT, .timeout = {5000}, .opts = {.framing = TR_IO_LINES}};

/* ---- tests ---- */

static void
test_simnet_echoes_lines_in_order(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1, .latency_max_ms = 30};

    (void)state;
    (void)run_echo(1, &net, 4, &plain_client);
    assert_int_equal(rec.listen_rc, TR_OK);
    assert_int_equal(rec.accepted, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_true(rec.c[i].connected);
        assert_int_equal(rec.c[i].got, LINES);
        assert_false(rec.c[i].out_of_order);
        assert_true(rec.c[i].done);
        assert_false(rec.c[i].ended);
    }
    /* Each client's close reached the server as the peer's close. */
    assert_int_equal(rec.server_closed, 4);
    assert_int_equal(rec.write_failed, 0);
}

static void
test_simnet_same_seed_same_fingerprint(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1, .latency_max_ms = 50};
    uint64_t fp[2];
    uint64_t other = 0;
    run_rec first;

    (void)state;
    fp[0] = run_echo(7, &net, 3, &plain_client);
    first = rec;
    fp[1] = run_echo(7, &net, 3, &plain_client);
    assert_true(fp[0] == fp[1]);
    assert_memory_equal(&first, &rec, sizeof(rec));
    for (uint64_t s = 8; s < 16 && other == 0; s++) {
        if (run_echo(s, &net, 3, &plain_client) != fp[0]) {
            other = s;
        }
    }
    assert_true(other != 0); /* the seed draws the latencies */
}

static void
test_simnet_refused_without_listener(void **state)
{
    tr_sim_net net = {0};
    client_arg c = plain_client;

    (void)state;
    c.port = PORT + 1;
    (void)run_echo(3, &net, 1, &c);
    assert_false(rec.c[0].connected);
    assert_true(rec.c[0].ended);
    assert_int_equal(rec.c[0].reason, TR_IO_END_ERROR);
    assert_int_equal(rec.c[0].err, ECONNREFUSED);
}

static void
test_simnet_half_close_delivers_eof(void **state)
{
    tr_sim_net net = {.latency_min_ms = 2, .latency_max_ms = 9};
    client_arg c = plain_client;

    (void)state;
    lines_server.conn.half_close = true;
    c.shutdown_after = true;
    c.opts.half_close = true;
    (void)run_echo(5, &net, 2, &c);
    lines_server.conn.half_close = false;
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(rec.c[i].got, LINES);
        assert_true(rec.c[i].done);
    }
    assert_int_equal(rec.server_eof, 2);
}

/* Losses only delay: every byte arrives, in order. */
static void
test_simnet_loss_delays_never_drops(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1,
                      .latency_max_ms = 5,
                      .loss_ppm = 300000,
                      .rto_ms = 50};

    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        (void)run_echo(seed, &net, 3, &plain_client);
        for (unsigned i = 0; i < 3; i++) {
            assert_int_equal(rec.c[i].got, LINES);
            assert_false(rec.c[i].out_of_order);
        }
    }
}

/* Resets end connections as TR_IO_END_RESET at both ends, never in
 * silence: each client either got every line or heard its end. */
static void
test_simnet_resets_end_connections_cleanly(void **state)
{
    tr_sim_net net = {
        .latency_min_ms = 1, .latency_max_ms = 10, .reset_ppm = 20000};
    unsigned resets = 0;

    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        (void)run_echo(seed, &net, 4, &plain_client);
        for (unsigned i = 0; i < 4; i++) {
            client_rec *r = &rec.c[i];
            assert_false(r->out_of_order);
            assert_true(r->done || r->ended);
            if (r->ended) {
                assert_int_equal(r->reason, TR_IO_END_RESET);
                resets++;
            }
        }
    }
    assert_true(resets > 0);
}

/* A partition from the first segment on holds the SYN: the connect times
 * out on the virtual clock. */
static void
test_simnet_partition_times_out_a_connect(void **state)
{
    tr_sim_net net = {.partition_ppm = 1000000, .partition_max_ms = 60000};
    client_arg c = plain_client;

    (void)state;
    c.timeout = tr_ms(500);
    (void)run_echo(11, &net, 1, &c);
    assert_false(rec.c[0].connected);
    assert_true(rec.c[0].ended);
    assert_int_equal(rec.c[0].reason, TR_IO_END_TIMEOUT);
}

/* Partitions that heal: connections go on (or are reset when
 * partition_reset_pct says so); every client ends cleanly. */
static void
test_simnet_partitions_heal_or_reset(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1,
                      .latency_max_ms = 5,
                      .partition_ppm = 20000,
                      .partition_max_ms = 300,
                      .partition_reset_pct = 50};
    unsigned complete = 0;

    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        (void)run_echo(seed, &net, 3, &plain_client);
        for (unsigned i = 0; i < 3; i++) {
            client_rec *r = &rec.c[i];
            assert_false(r->out_of_order);
            assert_true(r->done || r->ended);
            complete += r->done;
        }
    }
    assert_true(complete > 0);
}

/* The idle timeout runs on the virtual clock: an hour passes at once. */
static void
test_simnet_idle_timeout_on_virtual_clock(void **state)
{
    tr_sim_net net = {0};
    tr_sim_stats st;
    client_arg c = plain_client;
    static client_arg arg;

    (void)state;
    c.opts.idle_timeout = tr_ms(3600 * 1000);
    arg = c;
    tr_system *sys = sim_start(2, &net);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;
    memset(&rec, 0, sizeof(rec));
    lines_server.conn.idle_timeout = TR_NOWAIT;
    assert_int_equal(tr_spawn(ctx, &server_behaviour, &lines_server, NULL, &a),
                     TR_OK);
    arg.id = 0;
    arg.keep_open = true;
    /* A client that stays connected once its lines are back. */
    assert_int_equal(tr_spawn(ctx, &client_behaviour, &arg, NULL, &a), TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    /* Its lines came back, then nothing: an hour later it timed out. */
    assert_int_equal(rec.c[0].got, LINES);
    assert_true(rec.c[0].ended);
    assert_int_equal(rec.c[0].reason, TR_IO_END_TIMEOUT);
    assert_true(st.now_ns >= UINT64_C(3600) * 1000000000u);
}

/* Unix-domain sockets and watches have no simulated counterpart. */
static int
refuser_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_io io;
    int *rc = (int *)arg;

    (void)state;
    rc[0] = tr_io_listen_unix(ctx, "/tmp/x.sock", NULL, &io);
    rc[1] = tr_io_connect_unix(ctx, "/tmp/x.sock", NULL, TR_FOREVER, &io);
    rc[2] = tr_io_watch(ctx, 0, TR_IO_READABLE, &io);
    rc[3] = tr_io_listen(ctx, "not-an-address", 1, NULL, &io);
    rc[4] = tr_io_connect(ctx, SERVER_HOST, 0, NULL, TR_FOREVER, &io);
    return TR_OK;
}

static int
ignore_all(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static void
test_simnet_refuses_what_it_cannot_simulate(void **state)
{
    static const tr_behaviour b = {
        .name = "refuser", .init = refuser_init, .handle = ignore_all};
    tr_sim_net net = {0};
    static int rc[5];
    tr_system *sys = sim_start(1, &net);
    tr_addr a;

    (void)state;
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &b, rc, NULL, &a), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    assert_int_equal(rc[0], TR_ESTATE);
    assert_int_equal(rc[1], TR_ESTATE);
    assert_int_equal(rc[2], TR_ESTATE);
    assert_int_equal(rc[3], TR_EBADADDR);
    assert_int_equal(rc[4], TR_EBADADDR);
}

/* ---- frames: a frame over max_frame is reported and skipped ---- */

typedef struct frames_rec {
    uint32_t lens[8];
    uint32_t n;
    uint32_t too_long;
    size_t too_long_len;
    bool peer_closed;
} frames_rec;

static frames_rec frec;

static int
frame_server_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_io_listen_opts o = {.conn = {.framing = TR_IO_FRAMES, .max_frame = 16}};

    (void)arg;
    return tr_io_listen(ctx, NULL, PORT, &o, state);
}

static int
frame_server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_io_event *ev = msg->data;

    (void)ctx;
    (void)state;
    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    if (ev->kind == TR_IO_DATA && frec.n < 8) {
        frec.lens[frec.n++] = (uint32_t)ev->len;
    } else if (ev->kind == TR_IO_TOO_LONG) {
        frec.too_long++;
        frec.too_long_len = ev->len;
    } else if (ev->kind == TR_IO_CLOSED) {
        frec.peer_closed = ev->reason == TR_IO_END_PEER;
    }
    return TR_OK;
}

static int
frame_client_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)arg;
    return tr_io_connect(ctx, SERVER_HOST, PORT, NULL, TR_FOREVER, state);
}

static void
frame(unsigned char *buf, uint32_t len)
{
    buf[0] = (unsigned char)(len >> 24);
    buf[1] = (unsigned char)(len >> 16);
    buf[2] = (unsigned char)(len >> 8);
    buf[3] = (unsigned char)len;
    memset(buf + 4, 'x', len);
}

static int
frame_client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_io_event *ev = msg->data;
    unsigned char buf[4 + 100];
    static const uint32_t lens[] = {5, 100, 3, 16};
    bool ok = true;

    (void)state;
    if (msg->type == TR_MSG_IO && ev->kind == TR_IO_CONNECTED) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            frame(buf, lens[i]);
            ok = ok && tr_io_write(ctx, ev->io, buf, 4 + lens[i]) == TR_OK;
        }
        (void)tr_io_close(ctx, ev->io);
        return ok ? tr_stop(ctx) : TR_EFAILED;
    }
    return TR_OK;
}

static void
test_simnet_frames_and_too_long(void **state)
{
    static const tr_behaviour server = {.name = "frame_server",
                                        .state_size = sizeof(tr_io),
                                        .init = frame_server_init,
                                        .handle = frame_server_handle};
    static const tr_behaviour client = {.name = "frame_client",
                                        .state_size = sizeof(tr_io),
                                        .init = frame_client_init,
                                        .handle = frame_client_handle};
    tr_sim_net net = {.latency_min_ms = 1, .latency_max_ms = 9};
    tr_system *sys = sim_start(4, &net);
    tr_addr a;

    (void)state;
    memset(&frec, 0, sizeof(frec));
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &server, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &client, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    assert_int_equal(frec.n, 3);
    assert_int_equal(frec.lens[0], 5);
    assert_int_equal(frec.lens[1], 3);
    assert_int_equal(frec.lens[2], 16);
    assert_int_equal(frec.too_long, 1);
    assert_int_equal(frec.too_long_len, 100);
    assert_true(frec.peer_closed);
}

/* ---- backpressure: a paused reader fills the window, then the
 * writer's buffer; TR_EFULL, and TR_IO_DRAINED once it reads again ---- */

enum { MSG_RESUME = 1, CHUNK = 8192 };

typedef struct bp_rec {
    size_t written; /* bytes the writer's writes took */
    size_t read;    /* bytes the reader read */
    bool full;
    bool drained;
    bool adopted;
    bool eof_closed;
} bp_rec;

static bp_rec bp;

static int
bp_session_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_io *io = state;
    const tr_io_event *ev = msg->data;

    if (msg->type == MSG_RESUME) {
        return tr_io_resume(ctx, *io);
    }
    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    switch (ev->kind) {
    case TR_IO_ADOPTED:
        /* Read nothing for a second of virtual time. */
        bp.adopted = true;
        *io = ev->io;
        (void)tr_io_pause(ctx, ev->io);
        return tr_send_after(ctx, tr_self(ctx), MSG_RESUME, NULL, 0, 1000,
                             NULL);
    case TR_IO_DATA:
        bp.read += ev->len;
        return TR_OK;
    case TR_IO_CLOSED:
        bp.eof_closed = ev->reason == TR_IO_END_PEER;
        return tr_stop(ctx);
    default:
        return TR_OK;
    }
}

static const tr_behaviour bp_session = {.name = "bp_session",
                                        .state_size = sizeof(tr_io),
                                        .handle = bp_session_handle};

static int
bp_server_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_io_listen_opts o = {.conn = {.framing = TR_IO_RAW},
                           .accept_behaviour = &bp_session};

    (void)arg;
    return tr_io_listen(ctx, SERVER_HOST, PORT, &o, state);
}

static int
bp_client_init(tr_ctx *ctx, void *state, const void *arg)
{
    tr_io_opts o = {.write_hwm = 4 * CHUNK, .on_full = TR_IO_FULL_REFUSE};

    (void)arg;
    return tr_io_connect(ctx, SERVER_HOST, PORT, &o, TR_FOREVER, state);
}

static int
bp_client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_io_event *ev = msg->data;
    static unsigned char chunk[CHUNK];

    (void)state;
    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    if (ev->kind == TR_IO_CONNECTED) {
        for (int i = 0; i < 64; i++) {
            int rc = tr_io_write(ctx, ev->io, chunk, sizeof(chunk));
            if (rc == TR_EFULL) {
                bp.full = true;
                break;
            }
            if (rc != TR_OK) {
                return rc;
            }
            bp.written += sizeof(chunk);
        }
    } else if (ev->kind == TR_IO_DRAINED) {
        bp.drained = true;
        (void)tr_io_shutdown(ctx, ev->io);
    } else if (ev->kind == TR_IO_CLOSED) {
        return tr_stop(ctx);
    }
    return TR_OK;
}

static void
test_simnet_backpressure_refuses_then_drains(void **state)
{
    static const tr_behaviour server = {.name = "bp_server",
                                        .state_size = sizeof(tr_io),
                                        .init = bp_server_init,
                                        .handle = ignore_all};
    static const tr_behaviour client = {.name = "bp_client",
                                        .state_size = sizeof(tr_io),
                                        .init = bp_client_init,
                                        .handle = bp_client_handle};
    tr_sim_net net = {.latency_min_ms = 2, .latency_max_ms = 5};
    tr_system *sys = sim_start(6, &net);
    tr_sim_stats st;
    tr_addr a;

    (void)state;
    memset(&bp, 0, sizeof(bp));
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &server, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &client, NULL, NULL, &a),
                     TR_OK);
    assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
    assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
    assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    assert_true(bp.adopted);
    /* The window (64 KiB) and the buffer (32 KiB, plus one write) took
     * what they could; the next write was refused. */
    assert_true(bp.full);
    assert_true(bp.written >= 65536 + 4 * CHUNK);
    assert_true(bp.written <= 65536 + 5 * CHUNK);
    /* Once the reader resumed, the buffer drained, and every byte
     * arrived before the FIN. */
    assert_true(bp.drained);
    assert_int_equal(bp.read, bp.written);
    assert_true(bp.eof_closed);
    assert_true(st.now_ns >= UINT64_C(1000000000));
}

/* ---- tr_sim_check over the network: seeds, the determinism check ---- */

/* One run: an echo server, three clients, resets and losses; 0 when every
 * client got its lines back or heard its connection reset. */
static int
echo_body(tr_system *sys, void *arg)
{
    static client_arg args[3];
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr a;

    (void)arg;
    memset(&rec, 0, sizeof(rec));
    if (tr_spawn(ctx, &server_behaviour, &lines_server, NULL, &a) != TR_OK) {
        return -1;
    }
    for (uint32_t i = 0; i < 3; i++) {
        args[i] = plain_client;
        args[i].id = i;
        if (tr_spawn(ctx, &client_behaviour, &args[i], NULL, &a) != TR_OK) {
            return -1;
        }
    }
    if (tr_sim_liveness_check(sys, NULL, 0) != TR_OK) {
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        const client_rec *r = &rec.c[i];
        if (r->out_of_order ||
            !(r->done || (r->ended && r->reason == TR_IO_END_RESET))) {
            return 2;
        }
    }
    return 0;
}

static void
test_simnet_check_passes_and_rechecks(void **state)
{
    tr_sim_check_opts opts = {
        .name = "simnet_echo",
        .seeds = 50,
        .recheck_every = 10,
        /* TROUPE_SIM_OUT, or the current directory; TROUPE_SIM_BASE moves
         * the seeds (scripts/sim.sh runs each commit's own). */
        .sim = {.net = {.latency_min_ms = 1,
                        .latency_max_ms = 25,
                        .loss_ppm = 20000,
                        .reset_ppm = 10000}},
    };
    uint64_t failed = 0;

    (void)state;
    assert_int_equal(tr_sim_check(&opts, echo_body, NULL, &failed), TR_OK);
}

/* The network's choices are on the tape: a tape replays the run (same
 * steps, same outcome) whatever the seed. */
static void
test_simnet_tape_replays_network_choices(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1,
                      .latency_max_ms = 30,
                      .loss_ppm = 50000,
                      .reset_ppm = 20000};
    const char *tape = "/tmp/simnet_test.tape";
    uint64_t fp[2];
    run_rec first;

    (void)state;
    for (int k = 0; k < 2; k++) {
        tr_sim_config sim = {.seed = k == 0 ? 21 : 999,
                             .net = net,
                             .tape_path = k == 0 ? NULL : tape};
        tr_system_config cfg = {.sim = &sim};
        static client_arg args[3];
        tr_system *sys = NULL;
        tr_sim_stats st;
        tr_addr a;

        assert_int_equal(tr_system_start(&cfg, &sys), TR_OK);
        memset(&rec, 0, sizeof(rec));
        assert_int_equal(tr_spawn(tr_system_ctx(sys), &server_behaviour,
                                  &lines_server, NULL, &a),
                         TR_OK);
        for (uint32_t i = 0; i < 3; i++) {
            args[i] = plain_client;
            args[i].id = i;
            assert_int_equal(tr_spawn(tr_system_ctx(sys), &client_behaviour,
                                      &args[i], NULL, &a),
                             TR_OK);
        }
        assert_int_equal(tr_sim_run_until_idle(sys), TR_OK);
        assert_int_equal(tr_sim_stats_get(sys, &st), TR_OK);
        if (k == 0) {
            assert_int_equal(tr_sim_tape_save(sys, tape), TR_OK);
            first = rec;
        } else {
            assert_false(st.tape_diverged);
        }
        fp[k] = st.fingerprint;
        assert_int_equal(tr_system_shutdown(sys, TR_FOREVER), TR_OK);
    }
    assert_true(fp[0] == fp[1]);
    assert_memory_equal(&first, &rec, sizeof(rec));
    unlink(tape);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simnet_echoes_lines_in_order),
        cmocka_unit_test(test_simnet_same_seed_same_fingerprint),
        cmocka_unit_test(test_simnet_refused_without_listener),
        cmocka_unit_test(test_simnet_half_close_delivers_eof),
        cmocka_unit_test(test_simnet_loss_delays_never_drops),
        cmocka_unit_test(test_simnet_resets_end_connections_cleanly),
        cmocka_unit_test(test_simnet_partition_times_out_a_connect),
        cmocka_unit_test(test_simnet_partitions_heal_or_reset),
        cmocka_unit_test(test_simnet_idle_timeout_on_virtual_clock),
        cmocka_unit_test(test_simnet_refuses_what_it_cannot_simulate),
        cmocka_unit_test(test_simnet_frames_and_too_long),
        cmocka_unit_test(test_simnet_backpressure_refuses_then_drains),
        cmocka_unit_test(test_simnet_check_passes_and_rechecks),
        cmocka_unit_test(test_simnet_tape_replays_network_choices),
    };
    return cmocka_run_group_tests_name("simnet", tests, NULL, NULL);
}
