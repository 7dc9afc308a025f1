/*
 * Sockets under churn: client threads keep many connections opening,
 * sending length-prefixed frames, reading the echoes and closing (close,
 * reset, or half-close and drain) at random, while the server's actors
 * fail and are restarted: the supervised listener (its socket closes and
 * opens again on the same port) and the supervised handlers that own the
 * connections (a failure closes every connection the handler owns).
 *
 * Checked: every byte a client reads back is the byte it sent at that
 * place (nothing lost, nothing reordered, on every connection: one that
 * a failure cut has a correct prefix, one that stays up gets all of it);
 * and no descriptor is left once the system has shut down.
 *
 * Usage: io_stress [threads] [connections per thread]
 */
#include "support/tr_net.h"
#include "support/tr_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    HANDLERS = 4,
    PER_THREAD = 12,  /* connections each client thread keeps open */
    MAX_FRAMES = 120, /* per connection */
    MAX_PAYLOAD = 1500,
    WINDOW = 6,          /* frames in flight per connection */
    HANDLER_FAIL = 5000, /* a handler fails once in this many frames */
    LISTENER_FAIL = 100  /* the listener fails once in this many accepts */
};

static tr_atomic(uint32_t) port;
static tr_atomic(uint64_t) echoed;
static tr_atomic(uint64_t) write_errors;
static tr_atomic(uint64_t) handler_fails;
static tr_atomic(uint64_t) listener_fails;
static tr_atomic(uint64_t) stop_failing;

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- the server ---- */

typedef struct handler {
    uint64_t rng;
} handler;

static int
handler_init(tr_ctx *ctx, void *state, const void *arg)
{
    handler *h = state;
    (void)arg;
    h->rng = tr_self(ctx).id * 2654435761u + 1;
    return TR_OK;
}

static int
handler_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    handler *h = state;
    const tr_io_event *ev = msg->data;

    if (msg->type != TR_MSG_IO || ev->kind != TR_IO_DATA) {
        return TR_OK;
    }
    unsigned char hdr[4] = {
        (unsigned char)(ev->len >> 24), (unsigned char)(ev->len >> 16),
        (unsigned char)(ev->len >> 8), (unsigned char)ev->len};
    struct iovec v[2] = {{hdr, 4}, {(void *)ev->data, ev->len}};
    int rc = tr_io_writev(ctx, ev->io, v, 2);
    if (rc == TR_OK) {
        tr_faa_relaxed(&echoed, 1);
    } else if (rc != TR_ECLOSED) {
        tr_faa_relaxed(&write_errors, 1);
    }
    if (tr_load_relaxed(&stop_failing) == 0 &&
        xorshift(&h->rng) % HANDLER_FAIL == 0) {
        tr_faa_relaxed(&handler_fails, 1);
        return tr_fail(ctx, -42, "handler fails on purpose");
    }
    return TR_OK;
}

static const tr_behaviour handler_behaviour = {
    .name = "stress_handler",
    .state_size = sizeof(handler),
    .init = handler_init,
    .handle = handler_handle,
};

typedef struct listener {
    tr_io io;
    tr_addr handlers[HANDLERS];
    uint32_t next;
    uint64_t rng;
} listener;

static int
listener_init(tr_ctx *ctx, void *state, const void *arg)
{
    listener *l = state;
    tr_io_listen_opts o = {
        .conn = {.framing = TR_IO_FRAMES, .max_frame = MAX_PAYLOAD}};
    uint16_t p = 0;
    int rc;

    (void)arg;
    for (int i = 0; i < HANDLERS; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/stress/h%d", i);
        if ((rc = tr_whereis_path(tr_ctx_system(ctx), path, &l->handlers[i])) !=
            TR_OK) {
            return rc;
        }
    }
    l->rng = tr_self(ctx).id + 77;
    /* The same port across restarts (SO_REUSEADDR). */
    rc = tr_io_listen(ctx, "127.0.0.1", (uint16_t)tr_load_acq(&port), &o,
                      &l->io);
    if (rc != TR_OK) {
        return rc;
    }
    (void)tr_io_port(tr_ctx_system(ctx), l->io, &p);
    tr_store_rel(&port, p);
    return TR_OK;
}

static int
listener_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    listener *l = state;
    const tr_io_event *ev = msg->data;

    if (msg->type != TR_MSG_IO || ev->kind != TR_IO_ACCEPTED) {
        return TR_OK;
    }
    tr_addr to = l->handlers[l->next++ % HANDLERS];
    if (tr_io_give(ctx, ev->peer, to) != TR_OK) {
        (void)tr_io_close(ctx, ev->peer);
    }
    if (tr_load_relaxed(&stop_failing) == 0 &&
        xorshift(&l->rng) % LISTENER_FAIL == 0) {
        tr_faa_relaxed(&listener_fails, 1);
        return tr_fail(ctx, -43, "listener fails on purpose");
    }
    return TR_OK;
}

static const tr_behaviour listener_behaviour = {
    .name = "stress_listener",
    .state_size = sizeof(listener),
    .init = listener_init,
    .handle = listener_handle,
};

/* ---- the clients ---- */

typedef struct cconn {
    int fd;
    uint64_t serial;
    uint32_t target;
    uint32_t sent;
    uint32_t got;
    uint32_t lens[MAX_FRAMES];
    unsigned char out[MAX_PAYLOAD + 4];
    size_t out_len, out_off;
    unsigned char hdr[4];
    size_t hdr_got;
    size_t body_got;
    bool abandon; /* closes before its last frame */
} cconn;

typedef struct client_stats {
    uint64_t opened, completed, cut, abandoned, refused;
    uint64_t bad_bytes;
    uint64_t frames;
} client_stats;

typedef struct client_arg {
    int index;
    int lifetimes;
    client_stats st;
} client_arg;

static unsigned char
pattern(uint64_t serial, uint32_t seq, uint32_t i)
{
    return (unsigned char)(serial * 31u + seq * 7u + i * 13u + (i >> 8));
}

static bool
open_conn(cconn *c, uint64_t serial, uint64_t *rng, client_stats *st)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int tries = 0; tries < 2000; tries++) {
        sa.sin_port = htons((uint16_t)tr_load_acq(&port));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return false;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            memset(c, 0, sizeof(*c));
            c->fd = fd;
            c->serial = serial;
            c->target = 1 + (uint32_t)(xorshift(rng) % MAX_FRAMES);
            c->abandon = xorshift(rng) % 20 == 0;
            for (uint32_t k = 0; k < c->target; k++) {
                c->lens[k] = (uint32_t)(xorshift(rng) % (MAX_PAYLOAD + 1));
            }
            st->opened++;
            return true;
        }
        close(fd);
        st->refused++; /* the listener is restarting */
        usleep(1000);
    }
    return false;
}

static void
finish(cconn *c, uint64_t *rng)
{
    switch (xorshift(rng) % 3) {
    case 0:
        close(c->fd);
        break;
    case 1:
        tr_net_reset(c->fd);
        break;
    default:
        shutdown(c->fd, SHUT_WR);
        (void)tr_net_wait_closed(c->fd, 5000);
        close(c->fd);
        break;
    }
    c->fd = -1;
}

/* Read what is there; false when the connection ended (cut). */
static bool
pump_in(cconn *c, client_stats *st)
{
    unsigned char buf[8192];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0) {
            return false;
        }
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (c->hdr_got < 4) {
                c->hdr[c->hdr_got++] = buf[i];
                if (c->hdr_got == 4) {
                    uint32_t len = (uint32_t)c->hdr[0] << 24 |
                                   (uint32_t)c->hdr[1] << 16 |
                                   (uint32_t)c->hdr[2] << 8 | c->hdr[3];
                    if (c->got >= c->sent || len != c->lens[c->got]) {
                        st->bad_bytes++;
                        return false; /* nothing after it can be read */
                    }
                    c->body_got = 0;
                    if (len == 0) {
                        c->got++;
                        c->hdr_got = 0;
                        st->frames++;
                    }
                }
                continue;
            }
            if (buf[i] != pattern(c->serial, c->got, (uint32_t)c->body_got)) {
                st->bad_bytes++;
            }
            if (++c->body_got == c->lens[c->got]) {
                c->got++;
                c->hdr_got = 0;
                st->frames++;
            }
        }
    }
}

/* Write the next frames while the window allows; false when cut. */
static bool
pump_out(cconn *c)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            if (c->sent == c->target || c->sent - c->got >= WINDOW ||
                (c->abandon && c->sent == c->target / 2)) {
                return true;
            }
            uint32_t len = c->lens[c->sent];
            c->out[0] = (unsigned char)(len >> 24);
            c->out[1] = (unsigned char)(len >> 16);
            c->out[2] = (unsigned char)(len >> 8);
            c->out[3] = (unsigned char)len;
            for (uint32_t i = 0; i < len; i++) {
                c->out[4 + i] = pattern(c->serial, c->sent, i);
            }
            c->out_len = 4 + len;
            c->out_off = 0;
            c->sent++;
        }
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR;
        }
        c->out_off += (size_t)n;
    }
}

static void *
client_main(void *p)
{
    client_arg *a = p;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(a->index + 1);
    cconn *conns = calloc(PER_THREAD, sizeof(*conns));
    struct pollfd pfd[PER_THREAD];
    int left = a->lifetimes;
    uint64_t serial = (uint64_t)a->index << 32;
    int live = 0;

    for (int i = 0; i < PER_THREAD; i++) {
        conns[i].fd = -1;
        if (left > 0 && open_conn(&conns[i], serial++, &rng, &a->st)) {
            left--;
            live++;
            /* The client speaks first: a cut shows at the next poll. */
            (void)pump_out(&conns[i]);
        }
    }
    while (live > 0) {
        for (int i = 0; i < PER_THREAD; i++) {
            pfd[i].fd = conns[i].fd;
            pfd[i].events = POLLIN;
            if (conns[i].fd >= 0 && conns[i].out_off < conns[i].out_len) {
                pfd[i].events |= POLLOUT;
            }
        }
        if (poll(pfd, PER_THREAD, 10000) <= 0) {
            a->st.bad_bytes += 1000000; /* stuck: a lost echo */
            break;
        }
        for (int i = 0; i < PER_THREAD; i++) {
            cconn *c = &conns[i];
            if (c->fd < 0) {
                continue;
            }
            bool up = pump_in(c, &a->st) && pump_out(c);
            bool done = c->got == c->target;
            bool quit =
                c->abandon && c->sent == c->target / 2 && c->got == c->sent;
            if (!up || done || quit) {
                if (!up) {
                    a->st.cut++;
                    close(c->fd);
                    c->fd = -1;
                } else {
                    if (done) {
                        a->st.completed++;
                    } else {
                        a->st.abandoned++;
                    }
                    finish(c, &rng);
                }
                live--;
                if (left > 0 && open_conn(c, serial++, &rng, &a->st)) {
                    left--;
                    live++;
                    (void)pump_out(c);
                }
            }
        }
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (conns[i].fd >= 0) {
            close(conns[i].fd);
        }
    }
    free(conns);
    return NULL;
}

static int g_argc;
static char **g_argv;

static void
test_io_stress_churn_with_failures(void **state)
{
    int threads = (int)tr_test_arg(g_argc, g_argv, 1, 2);
    int lifetimes = (int)tr_test_arg(g_argc, g_argv, 2, 200);
    tr_child_spec kids[HANDLERS + 1];
    char ids[HANDLERS][16];
    int fds0 = tr_net_count_fds();
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_addr sup;

    (void)state;
    cfg.workers = 2;
    cfg.io_threads = 2;
    tr_system *sys = tr_test_system_cfg(&cfg);
    for (int i = 0; i < HANDLERS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "h%d", i);
        kids[i] =
            (tr_child_spec){.id = ids[i], .behaviour = &handler_behaviour};
    }
    kids[HANDLERS] =
        (tr_child_spec){.id = "listener", .behaviour = &listener_behaviour};
    tr_sup_spec spec = {.name = "stress",
                        .strategy = TR_ONE_FOR_ONE,
                        .max_restarts = 100000,
                        .period_ms = 1000,
                        .children = kids,
                        .len = HANDLERS + 1};
    assert_int_equal(tr_sup_start(tr_system_ctx(sys), &spec, NULL, &sup),
                     TR_OK);

    pthread_t th[16];
    client_arg args[16];
    assert_true(threads <= 16);
    for (int i = 0; i < threads; i++) {
        args[i] = (client_arg){.index = i, .lifetimes = lifetimes};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &args[i]),
                         0);
    }
    client_stats tot = {0};
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        tot.opened += args[i].st.opened;
        tot.completed += args[i].st.completed;
        tot.cut += args[i].st.cut;
        tot.abandoned += args[i].st.abandoned;
        tot.refused += args[i].st.refused;
        tot.bad_bytes += args[i].st.bad_bytes;
        tot.frames += args[i].st.frames;
    }
    tr_store_rel(&stop_failing, 1);
    tr_io_stats ist;
    assert_int_equal(tr_io_stats_get(sys, &ist), TR_OK);
    printf("io_stress: %d threads, %llu connections (%llu completed, "
           "%llu cut by failures, %llu abandoned, %llu refused while the "
           "listener restarted), %llu frames echoed; failures: %llu "
           "handler, %llu listener; %llu accepted\n",
           threads, (unsigned long long)tot.opened,
           (unsigned long long)tot.completed, (unsigned long long)tot.cut,
           (unsigned long long)tot.abandoned, (unsigned long long)tot.refused,
           (unsigned long long)tot.frames,
           (unsigned long long)tr_load_relaxed(&handler_fails),
           (unsigned long long)tr_load_relaxed(&listener_fails),
           (unsigned long long)ist.accepted);
    assert_int_equal(tot.bad_bytes, 0);
    assert_int_equal(tr_load_relaxed(&write_errors), 0);
    assert_int_equal(tot.opened, (uint64_t)threads * (uint64_t)lifetimes);
    assert_int_equal(tot.completed + tot.cut + tot.abandoned, tot.opened);
    assert_true(tot.completed > tot.opened / 4);
    tr_test_shutdown(sys);
    assert_int_equal(tr_net_count_fds(), fds0);
}

int
main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_stress_churn_with_failures),
    };
    return cmocka_run_group_tests_name("io_stress", tests, NULL, NULL);
}
