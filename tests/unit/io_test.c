/*
 * Sockets for actors (troupe/io.h), on real loopback sockets: listening
 * (IPv4, IPv6, Unix, port 0), accepting (to the owner or to new actors),
 * connecting (ok, refused, timed out), the three framings with their
 * limits, writing with both full policies and the drained event, pausing,
 * giving a socket away, watches, every end of a connection, the errors,
 * and that no descriptor outlives its owner however the owner ends. Each
 * test counts the process's descriptors before its system starts and
 * after it shuts down.
 */
#include "unit/io_probe.h"

#include "common/tr_park.h"
#include "io/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct fx {
    tr_system *sys;
    probe_rec *rec;
    tr_addr probe;
    int fds0;
} fx;

static int
setup_cfg(void **state, unsigned io_threads)
{
    fx *f = calloc(1, sizeof(*f));
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    f->fds0 = tr_net_count_fds();
    cfg.workers = 2;
    cfg.io_threads = io_threads;
    f->sys = tr_test_system_cfg(&cfg);
    f->rec = probe_rec_new();
    f->probe = probe_spawn(f->sys, f->rec, PROBE_RECORD, NULL);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_cfg(state, 1);
}

static int
setup3(void **state)
{
    return setup_cfg(state, 3);
}

static int
teardown(void **state)
{
    fx *f = *state;
    tr_test_shutdown(f->sys);
    /* No descriptor outlives the system: loops, listeners, connections. */
    assert_int_equal(tr_net_count_fds(), f->fds0);
    probe_rec_free(f->rec);
    free(f);
    return 0;
}

static probe_res
listen_on(fx *f, const char *host, const tr_io_opts *opts)
{
    probe_cmd c = {.op = OP_LISTEN};
    snprintf(c.host, sizeof(c.host), "%s", host);
    if (opts != NULL) {
        c.opts = *opts;
    }
    probe_res r = probe_do(f->sys, f->probe, &c);
    assert_int_equal(r.rc, TR_OK);
    assert_int_not_equal(r.port, 0);
    return r;
}

/* Listen, connect a client, wait for the accept; the accepted handle. */
static tr_io
accept_one(fx *f, const tr_io_opts *opts, int *client)
{
    probe_res l = listen_on(f, "127.0.0.1", opts);
    int before = probe_count(f->rec, TR_IO_ACCEPTED);
    ev_rec e;

    *client = tr_net_connect("127.0.0.1", l.port);
    assert_true(*client >= 0);
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, before + 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_ACCEPTED, before, &e));
    assert_true(tr_io_eq(e.io, l.io));
    return e.peer;
}

/* The event of `kind` about `io`, or false. */
static bool
find_event(probe_rec *r, tr_io_event_kind kind, tr_io io, ev_rec *out)
{
    for (int i = 0; probe_nth(r, kind, i, out); i++) {
        if (tr_io_eq(out->io, io)) {
            return true;
        }
    }
    return false;
}

/* Start the system's I/O module (its loop's descriptors are not leaks). */
static void
io_warm(fx *f, tr_addr owner)
{
    probe_cmd c = {.op = OP_LISTEN, .host = "127.0.0.1"};
    probe_res r = probe_do(f->sys, owner, &c);
    assert_int_equal(r.rc, TR_OK);
    c.op = OP_CLOSE;
    c.io = r.io;
    assert_int_equal(probe_do(f->sys, owner, &c).rc, TR_OK);
}

static int
simple(fx *f, int op, tr_io io)
{
    probe_cmd c = {.op = op, .io = io};
    return probe_do(f->sys, f->probe, &c).rc;
}

static int
write_str(fx *f, tr_io io, const char *s)
{
    probe_cmd c = {.op = OP_WRITE, .io = io, .len = strlen(s)};
    memcpy(c.data, s, c.len);
    return probe_do(f->sys, f->probe, &c).rc;
}

static void
set_user(fx *f, tr_io io, uintptr_t v)
{
    probe_cmd c = {.op = OP_SET_USER, .io = io, .len = v};
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_OK);
}

/* ---- listening and accepting ---- */

static void
test_io_listen_port_zero_is_read_back_and_accepts(void **state)
{
    fx *f = *state;
    probe_res l = listen_on(f, "127.0.0.1", NULL);
    uint16_t port = 0;
    int c;

    assert_int_equal(tr_io_port(f->sys, l.io, &port), TR_OK);
    assert_int_equal(port, l.port);
    tr_io peer = accept_one(f, NULL, &c);
    assert_false(tr_io_eq(peer, TR_IO_NONE));
    assert_int_equal(write_str(f, peer, "hello\n"), TR_OK);
    char buf[6];
    assert_true(tr_net_read_exact(c, buf, 6, 5000));
    assert_memory_equal(buf, "hello\n", 6);
    close(c);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
}

static void
test_io_listen_ipv6_and_any(void **state)
{
    fx *f = *state;
    probe_cmd c = {.op = OP_LISTEN, .host = "::1"};
    probe_res l = probe_do(f->sys, f->probe, &c);

    if (l.rc == TR_EBADADDR || l.rc == TR_EIO) {
        skip(); /* no IPv6 on this machine */
    }
    assert_int_equal(l.rc, TR_OK);
    int fd = tr_net_connect("::1", l.port);
    assert_true(fd >= 0);
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 1, 5000));
    close(fd);

    /* Every address: reachable on IPv4 loopback too. */
    probe_cmd any = {.op = OP_LISTEN};
    probe_res a = probe_do(f->sys, f->probe, &any);
    assert_int_equal(a.rc, TR_OK);
    fd = tr_net_connect("127.0.0.1", a.port);
    assert_true(fd >= 0);
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 2, 5000));
    close(fd);
}

static void
test_io_listen_errors_are_clear(void **state)
{
    fx *f = *state;
    probe_res l = listen_on(f, "127.0.0.1", NULL);
    probe_cmd c = {.op = OP_LISTEN, .host = "not-an-address"};
    tr_io io;

    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EBADADDR);
    snprintf(c.host, sizeof(c.host), "127.0.0.1");
    c.port = l.port;
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EADDRINUSE);
    snprintf(c.host, sizeof(c.host), "192.0.2.1"); /* not ours */
    c.port = 0;
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EBADADDR);
    c.op = OP_CONNECT;
    snprintf(c.host, sizeof(c.host), "localhost"); /* numeric only */
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EBADADDR);
    snprintf(c.host, sizeof(c.host), "127.0.0.1"); /* port 0: no peer */
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EBADADDR);
    c.port = l.port;
    c.opts.framing = (tr_io_framing)7;
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EINVAL);
    /* An acceptor tr_spawn would refuse is refused at once, not at each
     * connection. */
    probe_cmd bad = {.op = OP_LISTEN, .host = "127.0.0.1", .bad_acceptor = 1};
    assert_int_equal(probe_do(f->sys, f->probe, &bad).rc, TR_EINVAL);
    bad.bad_acceptor = 2;
    assert_int_equal(probe_do(f->sys, f->probe, &bad).rc, TR_EINVAL);
    /* Sockets need an owner: not from a plain thread. */
    assert_int_equal(
        tr_io_listen(tr_system_ctx(f->sys), "127.0.0.1", 0, NULL, &io),
        TR_ESTATE);
    assert_int_equal(tr_io_listen(NULL, "127.0.0.1", 0, NULL, &io), TR_EINVAL);
    /* Only the owner uses a socket. */
    assert_int_equal(tr_io_close(tr_system_ctx(f->sys), l.io), TR_ESTATE);
}

static void
test_io_accept_spawns_an_actor_per_connection(void **state)
{
    fx *f = *state;
    probe_cmd c = {.op = OP_LISTEN, .host = "127.0.0.1", .spawn = true};
    probe_res l = probe_do(f->sys, f->probe, &c);
    int fds[8];
    tr_system_stats st;

    assert_int_equal(l.rc, TR_OK);
    for (int i = 0; i < 8; i++) {
        fds[i] = tr_net_connect("127.0.0.1", l.port);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 8; i++) {
        char msg[16], got[16];
        int n = snprintf(msg, sizeof(msg), "conn %d", i);
        assert_true(tr_net_send(fds[i], msg, (size_t)n));
        assert_true(tr_net_read_exact(fds[i], got, (size_t)n, 5000));
        assert_memory_equal(got, msg, (size_t)n);
    }
    assert_int_equal(tr_system_stats_get(f->sys, &st), TR_OK);
    assert_true(st.live_actors >= 9);
    /* The listener's owner heard of none of them. */
    assert_int_equal(probe_count(f->rec, TR_IO_ACCEPTED), 0);
    for (int i = 0; i < 8; i++) {
        close(fds[i]);
    }
}

/* ---- framing ---- */

static void
test_io_lines_are_cut_at_lf_and_crlf(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    const char *text = "one\ntwo\r\n\r\nthree\nfo";
    ev_rec e;

    (void)peer;
    /* Byte by byte: lines cross every read boundary. */
    for (const char *p = text; *p != '\0'; p++) {
        assert_true(tr_net_send(c, p, 1));
    }
    assert_true(tr_net_send_str(c, "ur\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 5, 5000));
    const char *want[] = {"one", "two", "", "three", "four"};
    for (int i = 0; i < 5; i++) {
        assert_true(probe_nth(f->rec, TR_IO_DATA, i, &e));
        assert_string_equal(e.data, want[i]);
        assert_int_equal(e.len, strlen(want[i]));
    }
    /* An unterminated last line still arrives at EOF. */
    assert_true(tr_net_send_str(c, "tail"));
    shutdown(c, SHUT_WR);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_DATA, 5, &e));
    assert_string_equal(e.data, "tail");
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 0, &e));
    assert_int_equal(e.reason, TR_IO_END_PEER);
    close(c);
}

static void
test_io_long_line_is_refused_once_and_discarded(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES, .max_frame = 10};
    int c;
    ev_rec e;
    tr_io peer = accept_one(f, &o, &c);

    (void)peer;
    /* Exactly the limit (with CRLF) is fine; one more is not. */
    assert_true(tr_net_send_str(c, "0123456789\r\n"));
    assert_true(tr_net_send_str(c, "0123456789A\n"));
    assert_true(tr_net_send_str(c, "x\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 2, 5000));
    assert_int_equal(probe_count(f->rec, TR_IO_TOO_LONG), 1);
    assert_true(probe_nth(f->rec, TR_IO_DATA, 0, &e));
    assert_string_equal(e.data, "0123456789");
    assert_true(probe_nth(f->rec, TR_IO_DATA, 1, &e));
    assert_string_equal(e.data, "x");

    /* 16 MiB without a newline: one event, bounded memory, and the
     * connection goes on. */
    size_t chunk = 1 << 16;
    char *junk = malloc(chunk);
    memset(junk, 'z', chunk);
    long rss0 = tr_net_rss_kb(0, false);
    for (size_t sent = 0; sent < (16u << 20); sent += chunk) {
        assert_true(tr_net_send(c, junk, chunk));
    }
    free(junk);
    assert_true(tr_net_send_str(c, "\nafter\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 3, 20000));
    assert_int_equal(probe_count(f->rec, TR_IO_TOO_LONG), 2);
    assert_true(probe_nth(f->rec, TR_IO_DATA, 2, &e));
    assert_string_equal(e.data, "after");
    /* The process did not keep the 16 MiB (nor any large part of it);
     * ASan's quarantine holds freed buffers, so only without it. */
#ifndef __SANITIZE_ADDRESS__
    assert_true(tr_net_rss_kb(0, false) - rss0 < 4096);
#else
    (void)rss0;
#endif
    close(c);
}

static void
put_frame(int c, const char *s, uint32_t len)
{
    unsigned char h[4] = {(unsigned char)(len >> 24),
                          (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                          (unsigned char)len};
    assert_true(tr_net_send(c, h, 4));
    if (len > 0 && s != NULL) {
        assert_true(tr_net_send(c, s, len));
    }
}

static void
test_io_frames_are_length_prefixed(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_FRAMES, .max_frame = 16};
    int c;
    ev_rec e;
    tr_io peer = accept_one(f, &o, &c);

    (void)peer;
    put_frame(c, "abc", 3);
    put_frame(c, NULL, 0);
    put_frame(c, "0123456789abcdefXYZ", 19); /* over: skipped whole */
    put_frame(c, "ok", 2);
    assert_true(probe_wait(f->rec, TR_IO_DATA, 3, 5000));
    assert_true(probe_nth(f->rec, TR_IO_DATA, 0, &e));
    assert_int_equal(e.len, 3);
    assert_string_equal(e.data, "abc");
    assert_true(probe_nth(f->rec, TR_IO_DATA, 1, &e));
    assert_int_equal(e.len, 0);
    assert_true(probe_nth(f->rec, TR_IO_DATA, 2, &e));
    assert_string_equal(e.data, "ok");
    assert_true(probe_nth(f->rec, TR_IO_TOO_LONG, 0, &e));
    assert_int_equal(e.len, 19);
    close(c);
}

static void
test_io_raw_echo_keeps_every_byte_in_order(void **state)
{
    fx *f = *state;
    int c;
    tr_io peer = accept_one(f, NULL, &c);
    size_t total = 4u << 20;
    unsigned char *out = malloc(total);
    unsigned char *in = malloc(total);
    probe_cmd m = {.op = OP_MODE, .mode = PROBE_ECHO};

    (void)peer;
    assert_int_equal(probe_do(f->sys, f->probe, &m).rc, TR_OK);
    for (size_t i = 0; i < total; i++) {
        out[i] = (unsigned char)(i * 7 + i / 251);
    }
    /* Send and read back in pieces (both directions stay flowing). */
    size_t sent = 0, got = 0;
    while (got < total) {
        if (sent < total) {
            size_t k = total - sent < 65536 ? total - sent : 65536;
            assert_true(tr_net_send(c, out + sent, k));
            sent += k;
        }
        size_t want = sent - got < 65536 ? sent - got : 65536;
        assert_true(tr_net_read_exact(c, in + got, want, 10000));
        got += want;
    }
    assert_memory_equal(in, out, total);
    free(out);
    free(in);
    close(c);
}

/* ---- writing ---- */

static void
test_io_write_refused_past_hwm_then_drained(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.write_hwm = 64 * 1024, .sndbuf = 16384};
    int c;
    int rcv = 65536; /* over loopback's MSS: no window probes */
    tr_io peer = accept_one(f, &o, &c);
    probe_cmd w = {.op = OP_WRITE_UNTIL, .io = peer, .len = 1000};

    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)),
                     0);
    memset(w.data, 'w', w.len);
    /* Refused once past the mark. The writer may outrun the loop that
     * hands its bytes to the kernel, which then takes them all (on
     * loopback it holds far more than the mark) and DRAINED comes with
     * nothing read: write again until the kernel is full too. */
    size_t accepted = 0;
    int drained = 0;
    for (;;) {
        probe_res r = probe_do(f->sys, f->probe, &w);
        assert_int_equal(r.rc, TR_EFULL);
        assert_true(r.n >= 64 * 1024 || accepted != 0);
        accepted += r.n;
        if (!probe_wait(f->rec, TR_IO_DRAINED, drained + 1, 300)) {
            break;
        }
        assert_true(++drained < 20);
    }
    probe_cmd b = {.op = OP_BUFFERED, .io = peer};
    probe_res br = probe_do(f->sys, f->probe, &b);
    assert_int_equal(br.rc, TR_OK);
    assert_true(br.n <= 64 * 1024);
    assert_true(br.n > 0);
    assert_int_equal(probe_count(f->rec, TR_IO_DRAINED), drained);
    /* The reader catches up: every accepted byte arrives, then DRAINED. */
    char *buf = malloc(accepted);
    assert_true(tr_net_read_exact(c, buf, accepted, 10000));
    for (size_t i = 0; i < accepted; i++) {
        if (buf[i] != 'w') {
            fail_msg("byte %zu is %d", i, buf[i]);
        }
    }
    free(buf);
    assert_true(probe_wait(f->rec, TR_IO_DRAINED, drained + 1, 5000));
    assert_int_equal(write_str(f, peer, "again"), TR_OK);
    close(c);
}

/*
 * More buffers than one sendmsg takes (IOV_MAX, 1,024 on Linux, past which
 * it fails with EMSGSIZE): every byte still goes, in order, and the
 * connection stays up. Lengths whose sum passes SIZE_MAX are refused.
 */
static void
test_io_writev_of_any_number_of_buffers(void **state)
{
    fx *f = *state;
    int c;
    tr_io peer = accept_one(f, NULL, &c);
    const int counts[] = {IOV_MAX - 1, IOV_MAX, IOV_MAX + 1, 4 * IOV_MAX + 3};
    probe_cmd w = {.op = OP_WRITEV, .io = peer, .len = 251};
    char in[4 * IOV_MAX + 3];

    for (size_t i = 0; i < w.len; i++) {
        w.data[i] = (char)('a' + i % 26 + i / 26);
    }
    for (size_t k = 0; k < TR_ARRAY_LEN(counts); k++) {
        w.nbufs = counts[k];
        assert_int_equal(probe_do(f->sys, f->probe, &w).rc, TR_OK);
        assert_true(tr_net_read_exact(c, in, (size_t)w.nbufs, 10000));
        for (int i = 0; i < w.nbufs; i++) {
            if (in[i] != w.data[(size_t)i % w.len]) {
                fail_msg("%d buffers: byte %d is %d", w.nbufs, i, in[i]);
            }
        }
    }
    w.len = 0;
    assert_int_equal(probe_do(f->sys, f->probe, &w).rc, TR_EINVAL);
    assert_int_equal(probe_count(f->rec, TR_IO_CLOSED), 0);
    assert_int_equal(write_str(f, peer, "still up"), TR_OK);
    assert_true(tr_net_read_exact(c, in, 8, 10000));
    assert_memory_equal(in, "still up", 8);
    close(c);
}

static void
test_io_write_past_hwm_closes_under_close_policy(void **state)
{
    fx *f = *state;
    tr_io_opts o = {
        .write_hwm = 32 * 1024, .sndbuf = 8192, .on_full = TR_IO_FULL_CLOSE};
    int c;
    int rcv = 65536; /* over loopback's MSS: no window probes */
    tr_io peer = accept_one(f, &o, &c);
    probe_cmd w = {.op = OP_WRITE_UNTIL, .io = peer, .len = 1000};
    ev_rec e;

    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)),
                     0);
    memset(w.data, 'w', w.len);
    assert_int_equal(probe_do(f->sys, f->probe, &w).rc, TR_ECLOSED);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 0, &e));
    assert_int_equal(e.reason, TR_IO_END_OVERFLOW);
    assert_true(tr_io_eq(e.io, peer));
    /* Writing to a closed connection: a clear error. */
    assert_int_equal(write_str(f, peer, "x"), TR_ECLOSED);
    assert_int_equal(simple(f, OP_CLOSE, peer), TR_ECLOSED);
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
}

static void
test_io_closed_handle_fails_cleanly(void **state)
{
    fx *f = *state;
    int c;
    tr_io peer = accept_one(f, NULL, &c);
    uint16_t port;

    assert_int_equal(simple(f, OP_CLOSE, peer), TR_OK);
    assert_true(tr_net_wait_closed(c, 5000));
    assert_int_equal(write_str(f, peer, "x"), TR_ECLOSED);
    assert_int_equal(simple(f, OP_CLOSE, peer), TR_ECLOSED);
    assert_int_equal(simple(f, OP_PAUSE, peer), TR_ECLOSED);
    assert_int_equal(simple(f, OP_SHUTDOWN, peer), TR_ECLOSED);
    assert_int_equal(tr_io_port(f->sys, peer, &port), TR_ECLOSED);
    assert_int_equal(simple(f, OP_CLOSE, TR_IO_NONE), TR_ECLOSED);
    /* The owner's own close sends no event. */
    assert_int_equal(probe_count(f->rec, TR_IO_CLOSED), 0);
    close(c);
}

static void
test_io_shutdown_sends_fin_after_the_buffer(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    char buf[5];

    assert_int_equal(write_str(f, peer, "bye\n"), TR_OK);
    assert_int_equal(simple(f, OP_SHUTDOWN, peer), TR_OK);
    assert_int_equal(write_str(f, peer, "late"), TR_ECLOSED);
    assert_true(tr_net_read_exact(c, buf, 4, 5000));
    assert_memory_equal(buf, "bye\n", 4);
    assert_true(tr_net_wait_closed(c, 5000));
    /* Reading goes on. */
    assert_true(tr_net_send_str(c, "still\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 1, 5000));
    close(c);
}

static void
test_io_half_close_delivers_eof_and_keeps_writing(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES, .half_close = true};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    char buf[6];

    assert_true(tr_net_send_str(c, "q\n"));
    shutdown(c, SHUT_WR);
    assert_true(probe_wait(f->rec, TR_IO_EOF, 1, 5000));
    assert_int_equal(probe_count(f->rec, TR_IO_DATA), 1);
    assert_int_equal(probe_count(f->rec, TR_IO_CLOSED), 0);
    assert_int_equal(write_str(f, peer, "answer"), TR_OK);
    assert_true(tr_net_read_exact(c, buf, 6, 5000));
    assert_memory_equal(buf, "answer", 6);
    assert_int_equal(simple(f, OP_CLOSE, peer), TR_OK);
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
}

/* ---- ends ---- */

static void
test_io_peer_reset_is_reported(void **state)
{
    fx *f = *state;
    int c;
    ev_rec e;
    tr_io peer = accept_one(f, NULL, &c);

    (void)peer;
    tr_net_reset(c);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 0, &e));
    assert_int_equal(e.reason, TR_IO_END_RESET);
    assert_int_equal(e.err, ECONNRESET);
}

static void
test_io_idle_timeout_ends_a_silent_connection(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES, .idle_timeout = tr_ms(1000)};
    int c;
    ev_rec e;
    tr_io peer = accept_one(f, &o, &c);

    (void)peer;
    /* Input keeps it alive... */
    for (int i = 0; i < 4; i++) {
        usleep(200 * 1000);
        assert_true(tr_net_send_str(c, "tick\n"));
    }
    assert_int_equal(probe_count(f->rec, TR_IO_CLOSED), 0);
    /* ... silence ends it. */
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 0, &e));
    assert_int_equal(e.reason, TR_IO_END_TIMEOUT);
    assert_int_equal(probe_count(f->rec, TR_IO_DATA), 4);
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
}

/* A loopback port with no listener yet, then (fill_queue) a listener whose
 * queue is full, so that it drops every new handshake. */
typedef struct full_listener {
    int fd;
    struct sockaddr_in sa;
    int fill[4];
} full_listener;

static void
bound_port(full_listener *fl)
{
    socklen_t sl = sizeof(fl->sa);

    fl->fd = socket(AF_INET, SOCK_STREAM, 0);
    fl->sa = (struct sockaddr_in){.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &fl->sa.sin_addr);
    assert_int_equal(bind(fl->fd, (struct sockaddr *)&fl->sa, sizeof(fl->sa)),
                     0);
    assert_int_equal(getsockname(fl->fd, (struct sockaddr *)&fl->sa, &sl), 0);
}

static void
fill_queue(full_listener *fl)
{
    assert_int_equal(listen(fl->fd, 0), 0);
    for (int i = 0; i < 4; i++) {
        fl->fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fl->fill[i], (struct sockaddr *)&fl->sa, sizeof(fl->sa));
    }
    /* The queue is full once the first filler is in it (a backlog of 0
     * holds one): wait for that rather than for a fixed time, which a
     * loaded machine can overrun. Then every new handshake is dropped. */
    struct pollfd first = {.fd = fl->fill[0], .events = POLLOUT};
    assert_int_equal(poll(&first, 1, 5000), 1);
}

static void
close_full_listener(full_listener *fl)
{
    for (int i = 0; i < 4; i++) {
        close(fl->fill[i]);
    }
    close(fl->fd);
}

static void
test_io_connect_succeeds_is_refused_and_times_out(void **state)
{
    fx *f = *state;
    probe_res l = listen_on(f, "127.0.0.1", NULL);
    probe_cmd c = {.op = OP_CONNECT,
                   .host = "127.0.0.1",
                   .port = l.port,
                   .timeout = tr_ms(5000)};
    ev_rec e;

    probe_res r = probe_do(f->sys, f->probe, &c);
    assert_int_equal(r.rc, TR_OK);
    /* Written before it is up: sent once it is. */
    assert_int_equal(write_str(f, r.io, "early"), TR_OK);
    assert_true(probe_wait(f->rec, TR_IO_CONNECTED, 1, 5000));
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 1, 5000));
    assert_true(probe_wait_stream(f->rec, 5, 5000));
    assert_memory_equal(f->rec->stream, "early", 5);
    uint16_t lp = 0;
    assert_int_equal(tr_io_port(f->sys, r.io, &lp), TR_OK);
    assert_int_not_equal(lp, 0);

    /* Refused: a closed port. */
    full_listener fl;
    bound_port(&fl);
    c.port = ntohs(fl.sa.sin_port);
    r = probe_do(f->sys, f->probe, &c);
    assert_int_equal(r.rc, TR_OK);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 1, 5000));
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 0, &e));
    assert_int_equal(e.reason, TR_IO_END_ERROR);
    assert_int_equal(e.err, ECONNREFUSED);
    assert_true(tr_io_eq(e.io, r.io));

    /* Timed out: a listener whose queue is full drops the handshake. */
    fill_queue(&fl);
    c.timeout = tr_ms(300);
    r = probe_do(f->sys, f->probe, &c);
    assert_int_equal(r.rc, TR_OK);
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, 2, 10000));
    assert_true(probe_nth(f->rec, TR_IO_CLOSED, 1, &e));
    assert_int_equal(e.reason, TR_IO_END_TIMEOUT);
    close_full_listener(&fl);
}

/* A write to an empty buffer is taken whole, however far past the
 * high-water mark, also while the connection is still being made (here
 * for ever: the listener's queue is full). It was refused (TR_EFULL with
 * nothing buffered). */
static void
test_io_first_write_while_connecting_is_taken_whole(void **state)
{
    fx *f = *state;
    full_listener fl;
    probe_cmd c = {.op = OP_CONNECT,
                   .host = "127.0.0.1",
                   .timeout = tr_ms(10000),
                   .opts = {.write_hwm = 1024}};

    bound_port(&fl);
    fill_queue(&fl);
    c.port = ntohs(fl.sa.sin_port);
    probe_res r = probe_do(f->sys, f->probe, &c);
    assert_int_equal(r.rc, TR_OK);
    probe_cmd w = {.op = OP_WRITEV, .io = r.io, .nbufs = 4096, .len = 4};
    memcpy(w.data, "abcd", 4);
    assert_int_equal(probe_do(f->sys, f->probe, &w).rc, TR_OK);
    probe_cmd b = {.op = OP_BUFFERED, .io = r.io};
    probe_res br = probe_do(f->sys, f->probe, &b);
    assert_int_equal(br.rc, TR_OK);
    assert_int_equal(br.n, 4096);
    assert_int_equal(probe_count(f->rec, TR_IO_CONNECTED), 0);
    /* The buffer is past the mark now: the next write is refused. */
    assert_int_equal(write_str(f, r.io, "more"), TR_EFULL);
    probe_cmd x = {.op = OP_CLOSE, .io = r.io};
    assert_int_equal(probe_do(f->sys, f->probe, &x).rc, TR_OK);
    close_full_listener(&fl);
}

/* Every connect deadline ends its connection, however the event loop's
 * timer and the deadline's clock round: the loop's timer may fire a little
 * before the deadline by the deadline's clock (libevent reads a coarse
 * clock, or the time it cached), and the connection must then wait on. */
static void
test_io_short_connect_timeouts_all_end_the_connection(void **state)
{
    fx *f = *state;
    enum { N = 64 };
    full_listener fl;
    ev_rec e;

    bound_port(&fl);
    fill_queue(&fl);
    probe_cmd c = {
        .op = OP_CONNECT, .host = "127.0.0.1", .port = ntohs(fl.sa.sin_port)};
    for (int i = 0; i < N; i++) {
        c.timeout = tr_ms(1 + i % 8);
        assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_OK);
    }
    assert_true(probe_wait(f->rec, TR_IO_CLOSED, N, 10000));
    for (int i = 0; i < N; i++) {
        assert_true(probe_nth(f->rec, TR_IO_CLOSED, i, &e));
        assert_int_equal(e.reason, TR_IO_END_TIMEOUT);
    }
    close_full_listener(&fl);
}

/* ---- Unix domain ---- */

static void
test_io_unix_sockets_listen_connect_and_clean_up(void **state)
{
    fx *f = *state;
    char path[108];
    probe_cmd c = {.op = OP_LISTEN_UNIX};
    tr_io_opts lines = {.framing = TR_IO_LINES};

    snprintf(path, sizeof(path), "/tmp/troupe-io-test-%d.sock", getpid());
    unlink(path);
    snprintf(c.host, sizeof(c.host), "%s", path);
    c.opts = lines;
    probe_res l = probe_do(f->sys, f->probe, &c);
    assert_int_equal(l.rc, TR_OK);
    assert_int_equal(access(path, F_OK), 0);
    /* The path is taken now. */
    assert_int_equal(probe_do(f->sys, f->probe, &c).rc, TR_EADDRINUSE);

    int fd = tr_net_connect_unix(path);
    assert_true(fd >= 0);
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 1, 5000));
    assert_true(tr_net_send_str(fd, "over unix\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 1, 5000));
    close(fd);

    /* The probe connects to itself too. */
    probe_cmd k = {.op = OP_CONNECT_UNIX, .opts = lines};
    snprintf(k.host, sizeof(k.host), "%s", path);
    probe_res r = probe_do(f->sys, f->probe, &k);
    assert_int_equal(r.rc, TR_OK);
    assert_true(probe_wait(f->rec, TR_IO_CONNECTED, 1, 5000));
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 2, 5000));

    /* Closing the listener removes its path. */
    assert_int_equal(simple(f, OP_CLOSE, l.io), TR_OK);
    assert_int_equal(access(path, F_OK), -1);
    /* A path nobody listens on: an immediate refusal, as an event. */
    r = probe_do(f->sys, f->probe, &k);
    assert_int_equal(r.rc, TR_OK);
    ev_rec e;
    for (int i = 0; i < 500 && !find_event(f->rec, TR_IO_CLOSED, r.io, &e);
         i++) {
        usleep(10 * 1000);
    }
    assert_true(find_event(f->rec, TR_IO_CLOSED, r.io, &e));
    assert_int_equal(e.reason, TR_IO_END_ERROR);
    assert_int_equal(e.err, ENOENT);

    /* The abstract namespace. */
    snprintf(c.host, sizeof(c.host), "@troupe-io-test-%d", getpid());
    l = probe_do(f->sys, f->probe, &c);
    assert_int_equal(l.rc, TR_OK);
    fd = tr_net_connect_unix(c.host);
    assert_true(fd >= 0);
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 3, 5000));
    close(fd);
}

/* ---- pausing ---- */

static void
test_io_pause_stops_reading_and_tcp_pushes_back(void **state)
{
    fx *f = *state;
    /* Small buffers (but over loopback's 64 KiB MSS, or TCP crawls on
     * window probes) so that the push back comes soon. */
    tr_io_opts o = {.framing = TR_IO_LINES, .rcvbuf = 131072};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    int snd = 131072;
    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd)),
                     0);
    char line[100];

    set_user(f, peer, 1);
    assert_int_equal(simple(f, OP_PAUSE, peer), TR_OK);
    assert_int_equal(simple(f, OP_PAUSE, peer), TR_OK); /* one pause */
    /* Send until the kernel refuses: nothing is delivered meanwhile. */
    size_t cap = 64u << 20;
    char *text = malloc(cap);
    size_t len = 0;
    for (size_t i = 0; len + 16 < cap; i++) {
        len += (size_t)snprintf(text + len, 16, "line %08zu\n", i);
    }
    int fl = fcntl(c, F_GETFL);
    fcntl(c, F_SETFL, fl | O_NONBLOCK);
    size_t sent = 0;
    int stalls = 0;
    while (stalls < 3) {
        ssize_t k = send(c, text + sent, 4096, MSG_NOSIGNAL);
        if (k < 0 && errno == EAGAIN) {
            stalls++;
            usleep(20 * 1000);
            continue;
        }
        assert_true(k > 0);
        sent += (size_t)k;
        assert_true(sent + 4096 < cap);
    }
    fcntl(c, F_SETFL, fl);
    assert_int_equal(probe_count(f->rec, TR_IO_DATA), 0);
    /* Resume, finish the last line: every line arrives, in order. */
    assert_int_equal(simple(f, OP_RESUME, peer), TR_OK);
    size_t end = sent;
    while (text[end - 1] != '\n') {
        end++;
    }
    assert_true(tr_net_send(c, text + sent, end - sent));
    if (!probe_wait_stream(f->rec, end, 30000)) {
        tr_io_stats ist;
        tr_io_stats_get(f->sys, &ist);
        io_slot *sl =
            tr__io_slot_of((tr_io_sys *)tr_load_acq(&f->sys->io), peer);
        fail_msg("stream %zu of %zu bytes; read %llu; slot %p flags %x "
                 "pending %u ready %x refs %u in %u..%u",
                 f->rec->nstream, end, (unsigned long long)ist.bytes_in,
                 (void *)sl, sl ? sl->flags : 0,
                 sl ? tr_load_relaxed(&sl->pending) : 0,
                 sl ? tr_load_relaxed(&sl->ready) : 0,
                 sl ? tr_load_relaxed(&sl->refs) : 0, sl ? sl->in_start : 0,
                 sl ? sl->in_end : 0);
    }
    pthread_mutex_lock(&f->rec->mu);
    assert_int_equal(f->rec->nstream, end);
    assert_memory_equal(f->rec->stream, text, end);
    pthread_mutex_unlock(&f->rec->mu);
    free(text);
    (void)line;
    close(c);
}

/* While the owner's bounded mailbox is full its messages go first: the
 * socket is not read until they are handled. */
static void
test_io_full_mailbox_is_served_before_input(void **state)
{
    fx *f = *state;
    probe_rec *r = probe_rec_new();
    tr_spawn_opts so = {.mailbox_cap = 4};
    tr_addr owner = probe_spawn(f->sys, r, PROBE_RECORD, &so);
    probe_cmd l = {
        .op = OP_LISTEN, .host = "127.0.0.1", .opts = {.framing = TR_IO_LINES}};
    probe_res lr = probe_do(f->sys, owner, &l);
    ev_rec e;
    int ms = 300;

    assert_int_equal(lr.rc, TR_OK);
    int c = tr_net_connect("127.0.0.1", lr.port);
    assert_true(c >= 0);
    assert_true(probe_wait(r, TR_IO_ACCEPTED, 1, 5000));
    /* The owner sleeps in a handler; meanwhile its mailbox fills up and a
     * line arrives. */
    assert_int_equal(
        tr_send(tr_system_ctx(f->sys), owner, PROBE_MSG_SLEEP, &ms, sizeof(ms)),
        TR_OK);
    usleep(50 * 1000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tr_send(tr_system_ctx(f->sys), owner, PROBE_MSG_MARK,
                                 &i, sizeof(i)),
                         TR_OK);
    }
    int more = 9;
    assert_int_equal(tr_send(tr_system_ctx(f->sys), owner, PROBE_MSG_MARK,
                             &more, sizeof(more)),
                     TR_EFULL);
    assert_true(tr_net_send_str(c, "waits\n"));
    assert_true(probe_wait(r, TR_IO_DATA, 1, 5000));
    /* Every mark was handled before the line was delivered. */
    int marks = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nev; i++) {
        if (r->evs[i].kind == PROBE_MARK) {
            marks++;
        }
        if (r->evs[i].kind == TR_IO_DATA) {
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(marks, 4);
    assert_true(probe_nth(r, TR_IO_DATA, 0, &e));
    assert_string_equal(e.data, "waits");
    close(c);
    probe_cmd stop = {.op = OP_STOP};
    (void)probe_do(f->sys, owner, &stop);
    assert_true(tr_test_wait_stopped(f->sys, owner, 5000));
    probe_rec_free(r);
}

/* ---- giving ---- */

static void
test_io_give_hands_a_connection_over(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    probe_rec *r2 = probe_rec_new();
    tr_addr other = probe_spawn(f->sys, r2, PROBE_RECORD, NULL);
    ev_rec e;

    assert_true(tr_net_send_str(c, "to the first\n"));
    assert_true(probe_wait(f->rec, TR_IO_DATA, 1, 5000));
    probe_cmd g = {.op = OP_GIVE, .io = peer, .to = f->probe};
    assert_int_equal(probe_do(f->sys, f->probe, &g).rc, TR_EINVAL);
    g.to = other;
    assert_int_equal(probe_do(f->sys, f->probe, &g).rc, TR_OK);
    /* The giver no longer owns it. */
    assert_int_equal(write_str(f, peer, "x"), TR_ESTATE);
    assert_true(probe_wait(r2, TR_IO_ADOPTED, 1, 5000));
    assert_true(probe_nth(r2, TR_IO_ADOPTED, 0, &e));
    assert_true(tr_io_eq(e.io, peer));
    assert_true(tr_net_send_str(c, "to the second\n"));
    assert_true(probe_wait(r2, TR_IO_DATA, 1, 5000));
    assert_true(probe_nth(r2, TR_IO_DATA, 0, &e));
    assert_string_equal(e.data, "to the second");
    assert_int_equal(probe_count(f->rec, TR_IO_DATA), 1);

    /* Given to an actor that has ended: refused, still the giver's. */
    close(c);
    tr_io peer2 = accept_one(f, &o, &c);
    probe_cmd stop = {.op = OP_STOP};
    (void)probe_do(f->sys, other, &stop);
    assert_true(tr_test_wait_stopped(f->sys, other, 5000));
    g.io = peer2;
    assert_int_equal(probe_do(f->sys, f->probe, &g).rc, TR_ENOACTOR);
    assert_int_equal(write_str(f, peer2, "still mine\n"), TR_OK);
    close(c);
    probe_rec_free(r2);
}

/* A give or a close made while the handler borrows input: the bytes stay
 * valid until it returns, the rest of the input goes to the receiver in
 * order, and ending the giver in the same handler still hands it over. */
static void
borrowed_then(fx *f, probe_mode mode)
{
    tr_io_opts o = {.framing = TR_IO_LINES};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    probe_rec *r2 = probe_rec_new();
    tr_addr other = probe_spawn(f->sys, r2, PROBE_RECORD, NULL);
    probe_cmd m = {.op = OP_MODE, .mode = mode, .to = other};
    ev_rec e;
    int data0 = probe_count(f->rec, TR_IO_DATA);

    (void)peer;
    assert_int_equal(probe_do(f->sys, f->probe, &m).rc, TR_OK);
    assert_true(tr_net_send_str(c, "first\nsecond\nthird\n"));
    if (mode == PROBE_CLOSE_ON_DATA) {
        assert_true(tr_net_wait_closed(c, 5000));
        assert_int_equal(probe_count(f->rec, TR_IO_DATA), data0 + 1);
    } else {
        assert_true(probe_wait(r2, TR_IO_DATA, 2, 5000));
        assert_true(probe_nth(r2, TR_IO_ADOPTED, 0, &e));
        assert_true(probe_nth(r2, TR_IO_DATA, 0, &e));
        assert_string_equal(e.data, "second");
        assert_true(probe_nth(r2, TR_IO_DATA, 1, &e));
        assert_string_equal(e.data, "third");
    }
    assert_int_equal(f->rec->write_fail, 0);
    close(c);
    /* The receiver records into r2 until it ends. */
    probe_cmd stop = {.op = OP_STOP};
    (void)probe_do(f->sys, other, &stop);
    assert_true(tr_test_wait_stopped(f->sys, other, 5000));
    probe_rec_free(r2);
}

static void
test_io_give_or_close_while_input_is_borrowed(void **state)
{
    fx *f = *state;

    borrowed_then(f, PROBE_GIVE_ON_DATA);
    borrowed_then(f, PROBE_CLOSE_ON_DATA);
    /* The giver stops in the same handler: the socket still moves. */
    borrowed_then(f, PROBE_GIVE_AND_STOP);
    assert_true(tr_test_wait_stopped(f->sys, f->probe, 5000));
    f->probe = probe_spawn(f->sys, f->rec, PROBE_RECORD, NULL);
}

/* ---- a give and its receiver's close ---- */

static tr_atomic(int) give_held;
static tr_atomic(int) give_release;

/* tr__io_give_pause: hold the first giver that comes by until the test
 * lets it go (it runs on a worker: it records, never asserts). */
static void
hold_give(void)
{
    int expected = 0;

    if (!tr_cas_seqcst(&give_held, &expected, 1)) {
        return;
    }
    uint64_t t0 = tr__now_ns();
    while (tr_load_seqcst(&give_release) == 0 &&
           tr__now_ns() - t0 < 20000000000u) {
        sched_yield();
    }
}

static bool
give_is_held(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&give_held) == 1;
}

typedef struct give_call {
    tr_system *sys;
    tr_addr giver;
    probe_cmd cmd;
    int rc;
} give_call;

/* The give, asked from a thread of its own: it returns only once the
 * test lets the giver go. */
static void *
give_main(void *arg)
{
    give_call *g = arg;
    probe_res res = {.rc = -999};
    size_t len = 0;
    int rc = tr_test_ask(tr_system_ctx(g->sys), g->giver, 1, &g->cmd,
                         sizeof(g->cmd), &res, sizeof(res), &len, 30000);

    g->rc = rc != TR_OK ? rc : res.rc;
    return NULL;
}

/*
 * Found by the systematic build (io_stress, docs/testing.md): a giver is
 * held between publishing the receiver and posting the adoption, while
 * the receiver is notified by the loop, adopts the socket, reads and
 * closes it. The giver's post must not land on a freed slot: it did, and
 * queued the freed slot's notification, whose run freed the slot a second
 * time; the next two sockets then shared one slot (and one notification,
 * queued to two actors at once: echoes were lost).
 */
static void
test_io_give_outlived_by_the_receivers_close(void **state)
{
    fx *f = *state;
    tr_io_opts o = {.framing = TR_IO_LINES};
    int c;
    tr_io peer = accept_one(f, &o, &c);
    probe_rec *r2 = probe_rec_new();
    tr_addr other = probe_spawn(f->sys, r2, PROBE_CLOSE_ON_DATA, NULL);
    give_call g = {.sys = f->sys,
                   .giver = f->probe,
                   .cmd = {.op = OP_GIVE, .io = peer, .to = other}};
    pthread_t th;
    int p[2][2];
    probe_cmd m = {.op = OP_MODE, .mode = PROBE_RECORD};

    tr_store_seqcst(&give_held, 0);
    tr_store_seqcst(&give_release, 0);
    tr_store_seqcst(&tr__io_give_pause, hold_give);
    assert_int_equal(pthread_create(&th, NULL, give_main, &g), 0);
    bool held = tr_test_wait_until(give_is_held, NULL, 10000);
    /* The receiver owns it now: input reaches it, and it closes. */
    bool sent = held && tr_net_send_str(c, "bye\n");
    bool closed = sent && tr_net_wait_closed(c, 10000);
    /* A call to the receiver returns once the run that closed has ended
     * (and dropped the notification's reference): the slot is free. */
    int synced = closed ? probe_do(f->sys, other, &m).rc : -1;
    tr_store_seqcst(&give_release, 1);
    pthread_join(th, NULL);
    tr_store_seqcst(&tr__io_give_pause, NULL);
    assert_true(held);
    assert_true(closed);
    assert_int_equal(synced, TR_OK);
    assert_int_equal(g.rc, TR_OK);
    assert_int_equal(probe_count(r2, TR_IO_DATA), 1);
    close(c);
    /* The receiver's control lane runs before this call: whatever the
     * giver's post queued to it has run. */
    assert_int_equal(probe_do(f->sys, other, &m).rc, TR_OK);

    /* The free list holds each slot once: a slot freed twice links to
     * itself, and the walk would pass every slot ever made. */
    tr_io_sys *io = (tr_io_sys *)tr_load_acq(&f->sys->io);
    uint32_t n = 0;
    pthread_mutex_lock(&io->lock);
    for (io_slot *s = io->free; s != NULL && n <= io->next_index;
         s = s->next_free) {
        n++;
    }
    uint32_t made = io->next_index;
    pthread_mutex_unlock(&io->lock);
    assert_true(n >= 1);
    assert_true(n <= made);

    /* Two new sockets get two slots, and both work. */
    probe_res w[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe2(p[i], O_NONBLOCK | O_CLOEXEC), 0);
        probe_cmd wc = {
            .op = OP_WATCH, .fd = p[i][0], .events = TR_IO_READABLE};
        w[i] = probe_do(f->sys, f->probe, &wc);
        assert_int_equal(w[i].rc, TR_OK);
    }
    uint64_t index_mask = (UINT64_C(1) << IO_INDEX_BITS) - 1;
    assert_int_not_equal(w[0].io.id & index_mask, w[1].io.id & index_mask);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simple(f, OP_CLOSE, w[i].io), TR_OK);
        close(p[i][0]);
        close(p[i][1]);
    }
    probe_cmd stop = {.op = OP_STOP};
    (void)probe_do(f->sys, other, &stop);
    assert_true(tr_test_wait_stopped(f->sys, other, 5000));
    probe_rec_free(r2);
}

/* ---- watches ---- */

static void
test_io_watch_reports_readiness_of_any_descriptor(void **state)
{
    fx *f = *state;
    int p[2];
    probe_cmd m = {.op = OP_MODE, .mode = PROBE_READ_FD};

    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(probe_do(f->sys, f->probe, &m).rc, TR_OK);
    probe_cmd w = {.op = OP_WATCH, .fd = p[0], .events = TR_IO_READABLE};
    probe_res r = probe_do(f->sys, f->probe, &w);
    assert_int_equal(r.rc, TR_OK);
    assert_int_equal(write(p[1], "ping", 4), 4);
    assert_true(probe_wait_stream(f->rec, 4, 5000));
    assert_int_equal(write(p[1], "pong", 4), 4);
    assert_true(probe_wait_stream(f->rec, 8, 5000));
    assert_memory_equal(f->rec->stream, "pingpong", 8);
    ev_rec e;
    assert_true(probe_nth(f->rec, TR_IO_READY, 0, &e));
    assert_int_equal(e.ready, TR_IO_READABLE);
    /* The watch ends; the descriptor stays the caller's. */
    assert_int_equal(simple(f, OP_CLOSE, r.io), TR_OK);
    assert_int_equal(fcntl(p[0], F_GETFD) >= 0, 1);
    probe_cmd bad = {.op = OP_WATCH, .fd = -1, .events = TR_IO_READABLE};
    assert_int_equal(probe_do(f->sys, f->probe, &bad).rc, TR_EINVAL);
    close(p[0]);
    close(p[1]);
}

/* ---- owners' ends ---- */

/* An owner with a listener, an accepted connection and a connect; `how`
 * ends it; every descriptor it had is closed at once. */
static void
owner_end_closes(fx *f, int how)
{
    probe_rec *r = probe_rec_new();
    tr_addr owner = probe_spawn(f->sys, r, PROBE_RECORD, NULL);
    probe_cmd l = {.op = OP_LISTEN, .host = "127.0.0.1"};
    io_warm(f, f->probe);
    int before = tr_net_count_fds();

    probe_res lr = probe_do(f->sys, owner, &l);
    assert_int_equal(lr.rc, TR_OK);
    int c = tr_net_connect("127.0.0.1", lr.port);
    assert_true(c >= 0);
    assert_true(probe_wait(r, TR_IO_ACCEPTED, 1, 5000));
    probe_cmd k = {.op = OP_CONNECT, .host = "127.0.0.1", .port = lr.port};
    assert_int_equal(probe_do(f->sys, owner, &k).rc, TR_OK);
    assert_true(probe_wait(r, TR_IO_ACCEPTED, 2, 5000));
    assert_true(tr_net_count_fds() >= before + 4);
    if (how == 0) {
        probe_cmd s = {.op = OP_STOP};
        (void)probe_do(f->sys, owner, &s);
    } else if (how == 1) {
        probe_cmd s = {.op = OP_FAIL};
        (void)probe_do(f->sys, owner, &s);
    } else {
        assert_int_equal(tr_actor_stop(tr_system_ctx(f->sys), owner), TR_OK);
    }
    assert_true(tr_test_wait_stopped(f->sys, owner, 5000));
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
    assert_int_equal(tr_net_count_fds(), before);
    probe_rec_free(r);
}

static void
test_io_owner_end_closes_its_sockets(void **state)
{
    fx *f = *state;

    owner_end_closes(f, 0); /* stops */
    owner_end_closes(f, 1); /* fails */
    owner_end_closes(f, 2); /* is stopped */
}

static const tr_child_spec probe_children[] = {
    {.id = "probe", .behaviour = &probe_behaviour},
    {.id = "brutal",
     .behaviour = &probe_behaviour,
     .shutdown_ms = TR_SHUTDOWN_BRUTAL},
};

typedef struct restart_arg {
    tr_system *sys;
    tr_addr sup;
} restart_arg;

/* The first child has been restarted once and runs again. */
static bool
restarted(void *p)
{
    restart_arg *a = p;
    tr_child_info info[2];
    size_t len = 0;
    return tr_sup_which_children_wait(tr_system_ctx(a->sys), a->sup, info, 2,
                                      &len, tr_ms(5000)) == TR_OK &&
           len == 2 && info[0].status == TR_CHILD_RUNNING &&
           info[0].restarts == 1;
}

/* `io` closed and the descriptor count back to `fds` (the generation
 * moves before the descriptor closes). */
typedef struct io_closed_arg {
    tr_system *sys;
    tr_io io;
    int fds;
} io_closed_arg;

static bool
io_closed(void *p)
{
    io_closed_arg *a = p;
    uint16_t port;
    return tr_io_port(a->sys, a->io, &port) == TR_ECLOSED &&
           tr_net_count_fds() == a->fds;
}

static void
test_io_restart_in_place_and_kill_close_sockets(void **state)
{
    fx *f = *state;
    tr_sup_spec spec = {.name = "iosup",
                        .strategy = TR_ONE_FOR_ONE,
                        .max_restarts = 10,
                        .period_ms = 1000,
                        .children = probe_children,
                        .len = 2};
    tr_addr sup, child, brutal, again;
    probe_cmd l = {.op = OP_LISTEN, .host = "127.0.0.1"};
    int before;

    assert_int_equal(tr_sup_start(tr_system_ctx(f->sys), &spec, NULL, &sup),
                     TR_OK);
    assert_int_equal(tr_whereis_path(f->sys, "/iosup/probe", &child), TR_OK);
    assert_int_equal(tr_whereis_path(f->sys, "/iosup/brutal", &brutal), TR_OK);
    io_warm(f, f->probe);
    before = tr_net_count_fds();
    probe_res lr = probe_do(f->sys, child, &l);
    assert_int_equal(lr.rc, TR_OK);
    int c = tr_net_connect("127.0.0.1", lr.port);
    assert_true(c >= 0);
    /* A failure restarts it in place: same address, sockets closed. */
    probe_cmd fail = {.op = OP_FAIL};
    (void)probe_do(f->sys, child, &fail);
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
    /* The connection may close before the listener does: both close in
     * the failed incarnation's exit hooks, one after the other. */
    io_closed_arg ca = {f->sys, lr.io, before};
    assert_true(tr_test_wait_until(io_closed, &ca, 5000));
    restart_arg ra = {f->sys, sup};
    assert_true(tr_test_wait_until(restarted, &ra, 5000));
    assert_int_equal(tr_whereis_path(f->sys, "/iosup/probe", &again), TR_OK);
    assert_true(tr_addr_eq(again, child));
    assert_int_equal(tr_net_count_fds(), before);

    /* A kill (brutal shutdown: no `stop`) closes them too. */
    lr = probe_do(f->sys, brutal, &l);
    assert_int_equal(lr.rc, TR_OK);
    c = tr_net_connect("127.0.0.1", lr.port);
    assert_true(c >= 0);
    assert_int_equal(tr_sup_terminate_child_wait(tr_system_ctx(f->sys), sup,
                                                 "brutal", tr_ms(5000)),
                     TR_OK);
    assert_true(tr_net_wait_closed(c, 5000));
    close(c);
    assert_int_equal(tr_net_count_fds(), before);
}

static void
test_io_shutdown_closes_everything(void **state)
{
    fx *f = *state;
    probe_res l = listen_on(f, "127.0.0.1", NULL);
    int c[16];

    for (int i = 0; i < 16; i++) {
        c[i] = tr_net_connect("127.0.0.1", l.port);
        assert_true(c[i] >= 0);
    }
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 16, 5000));
    /* teardown shuts the system down and counts descriptors; the clients
     * see the ends. */
    tr_test_shutdown(f->sys);
    for (int i = 0; i < 16; i++) {
        assert_true(tr_net_wait_closed(c[i], 5000));
        close(c[i]);
    }
    f->sys = tr_test_system(1);
}

/* ---- EMFILE ---- */

static void
test_io_emfile_pauses_accepting_without_spinning(void **state)
{
    fx *f = *state;
    probe_res l = listen_on(f, "127.0.0.1", NULL);
    struct rlimit old, low;
    int c[8];
    ev_rec e;

    /* Connections wait in the kernel's queue while the listener is
     * paused; then the process runs out of descriptors and it resumes. */
    assert_int_equal(simple(f, OP_PAUSE, l.io), TR_OK);
    for (int i = 0; i < 8; i++) {
        c[i] = tr_net_connect("127.0.0.1", l.port);
        assert_true(c[i] >= 0);
    }
    int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest; /* no descriptor can be made now */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = simple(f, OP_RESUME, l.io);
    usleep(450 * 1000);
    int errors = probe_count(f->rec, TR_IO_ACCEPT_ERROR);
    int accepted = probe_count(f->rec, TR_IO_ACCEPTED);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, TR_OK);
    assert_int_equal(accepted, 0);
    /* One event per try, one try per 100 ms: no spinning. */
    assert_true(errors >= 1);
    assert_true(errors <= 6);
    assert_true(probe_nth(f->rec, TR_IO_ACCEPT_ERROR, 0, &e));
    assert_int_equal(e.err, EMFILE);
    assert_int_equal(e.code, TR_EMFILE);
    /* Accepting resumes by itself. */
    assert_true(probe_wait(f->rec, TR_IO_ACCEPTED, 8, 5000));
    for (int i = 0; i < 8; i++) {
        close(c[i]);
    }
}

/* ---- several loops ---- */

static void
test_io_connections_spread_over_loops(void **state)
{
    fx *f = *state;
    probe_cmd c = {.op = OP_LISTEN, .host = "127.0.0.1", .spawn = true};
    probe_res l = probe_do(f->sys, f->probe, &c);
    int fds[30];
    tr_io_stats st;

    assert_int_equal(l.rc, TR_OK);
    for (int i = 0; i < 30; i++) {
        fds[i] = tr_net_connect("127.0.0.1", l.port);
        assert_true(fds[i] >= 0);
    }
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 30; i++) {
            char msg[32];
            int n = snprintf(msg, sizeof(msg), "%d:%d", i, round);
            assert_true(tr_net_send(fds[i], msg, (size_t)n));
            char got[32];
            assert_true(tr_net_read_exact(fds[i], got, (size_t)n, 5000));
            assert_memory_equal(got, msg, (size_t)n);
        }
    }
    assert_int_equal(tr_io_stats_get(f->sys, &st), TR_OK);
    assert_int_equal(st.loops, 3);
    assert_int_equal(st.accepted, 30);
    assert_true(st.open >= 31);
    assert_true(st.bytes_in > 0 && st.bytes_out > 0);
    for (int i = 0; i < 30; i++) {
        close(fds[i]);
    }
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TR_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("TR_TEST_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_io_listen_port_zero_is_read_back_and_accepts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_listen_ipv6_and_any, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_io_listen_errors_are_clear, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_io_accept_spawns_an_actor_per_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_lines_are_cut_at_lf_and_crlf,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_long_line_is_refused_once_and_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_frames_are_length_prefixed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_raw_echo_keeps_every_byte_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_write_refused_past_hwm_then_drained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_writev_of_any_number_of_buffers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_write_past_hwm_closes_under_close_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_closed_handle_fails_cleanly,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_shutdown_sends_fin_after_the_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_half_close_delivers_eof_and_keeps_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_peer_reset_is_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_io_idle_timeout_ends_a_silent_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_connect_succeeds_is_refused_and_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_first_write_while_connecting_is_taken_whole, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_io_short_connect_timeouts_all_end_the_connection, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_io_unix_sockets_listen_connect_and_clean_up, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_pause_stops_reading_and_tcp_pushes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_full_mailbox_is_served_before_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_give_hands_a_connection_over,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_give_outlived_by_the_receivers_close, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_give_or_close_while_input_is_borrowed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_watch_reports_readiness_of_any_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_owner_end_closes_its_sockets,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_restart_in_place_and_kill_close_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_shutdown_closes_everything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_io_emfile_pauses_accepting_without_spinning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_connections_spread_over_loops,
                                        setup3, teardown),
    };
    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
