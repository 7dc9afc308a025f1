/*
 * The socket calls: opening (listen, connect, watch), writing, closing,
 * pausing and giving sockets away.
 *
 * Every call but tr_io_port and tr_io_stats_get is made by the socket's
 * holder, in a handler: the holder's fields (buffers, flags) are touched
 * only under its run-right, so they need no atomics. The exceptions are a
 * socket in transit (given, not yet adopted), which nobody holds, and the
 * close of one whose receiver ended before adopting it: `closing` lets
 * exactly one closer proceed.
 *
 * Writes go out at once when nothing is buffered (one send(2) on the
 * owner's worker, no loop involved); what the kernel does not take is
 * copied into the output buffer, which the owner's hook flushes on the
 * next writable edge (conn.c). A write that fails ends the connection:
 * the end is recorded and posted, so the owner gets its TR_IO_CLOSED as a
 * message, never from inside tr_io_write.
 *
 * Borrowed input. While a TR_IO_DATA event is being handled its bytes
 * live in the input buffer, so a close made from that handler leaves the
 * buffer to the hook (it frees it when the handler returns), and a give
 * made from it is carried out by the hook after the handler returns: the
 * receiver never touches the buffer while the giver still reads it.
 */
#include "io/sock.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    DEFAULT_MAX_LINE = 65536,
    DEFAULT_MAX_RAW = 16384,
    MAX_FRAME = 16 << 20,
    DEFAULT_HWM = 256 * 1024,
    DEFAULT_BATCH = 64,
    DEFAULT_BACKLOG = 1024,
    CLOSE_DRAIN = 64 * 1024 /* unread input a close reads and drops */
};

int
tr__io_errno_code(int err)
{
    switch (err) {
    case EADDRINUSE:
        return TR_EADDRINUSE;
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
        return TR_EBADADDR;
    case EMFILE:
    case ENFILE:
        return TR_EMFILE;
    case ENOMEM:
    case ENOBUFS:
        return TR_ENOMEM;
    default:
        return TR_EIO;
    }
}

/* ---- holding ---- */

/* The slot `h` names, if the calling actor holds it. */
static int
hold(tr_ctx *ctx, tr_io h, io_slot **out)
{
    tr_io_sys *io;
    io_slot *s;

    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    io = (tr_io_sys *)tr_load_acq(&ctx->sys->io);
    if (io == NULL || (s = tr__io_slot_of(io, h)) == NULL) {
        return TR_ECLOSED;
    }
    if (tr_load_relaxed(&s->held_by) != ctx->self) {
        return TR_ESTATE;
    }
    *out = s;
    return TR_OK;
}

/* ---- closing ---- */

/* Send what the kernel takes now, drop unread input, close. */
static void
close_conn_fd(io_slot *s)
{
    unsigned char sink[4096];
    size_t dropped = 0;

    if (s->io->net != NULL) {
        /* The network takes what its window lets in, then a FIN; unread
         * input is dropped without a reset. */
        while (!(s->flags & F_CONNECTING) && s->out_start < s->out_end) {
            ssize_t n = tr__io_send(s, s->out + s->out_start,
                                    s->out_end - s->out_start);
            if (n <= 0) {
                break;
            }
            s->out_start += (size_t)n;
            tr_store_relaxed(&s->bytes_out,
                             tr_load_relaxed(&s->bytes_out) + (uint64_t)n);
        }
        tr__simnet_close(s->io->net, s->fd);
        return;
    }
    if (!(s->flags & F_CONNECTING)) {
        while (s->out_start < s->out_end) {
            ssize_t n =
                send(s->fd, s->out + s->out_start, s->out_end - s->out_start,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            s->out_start += (size_t)n;
            tr_store_relaxed(&s->bytes_out,
                             tr_load_relaxed(&s->bytes_out) + (uint64_t)n);
        }
        /* Unread input makes close(2) send a reset, which can destroy the
         * last bytes sent before the peer reads them: read it first. */
        while (dropped < CLOSE_DRAIN) {
            ssize_t n = recv(s->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            dropped += (size_t)n;
        }
    }
    close(s->fd);
}

bool
tr__io_close_slot(io_slot *s, tr_ctx *ctx, bool exiting)
{
    tr_io_sys *io = s->io;
    uint32_t zero = 0;

    /* acq_rel: one closer wins; it sees what the holder wrote. */
    if (!tr_cas_acqrel(&s->closing, &zero, 1)) {
        return false;
    }
    /* Release: from here every call with the handle fails. */
    tr_store_rel(&s->gen, tr_load_relaxed(&s->gen) + 1);
    if (!exiting && ctx != NULL && ctx->actor != NULL &&
        tr_load_relaxed(&s->held_by) == ctx->self) {
        (void)tr__actor_unhook_exit(ctx, &s->exit);
    }
    tr_store_rel(&s->held_by, 0);
    /* Waits for a loop callback that is running on this slot; after it,
     * no loop touches the slot. */
    if (s->ev != NULL) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (s->timer != NULL) {
        event_free(s->timer);
        s->timer = NULL;
    }
    switch (s->kind) {
    case IO_CONN:
        close_conn_fd(s);
        break;
    case IO_LISTENER:
        if (io->net != NULL) {
            tr__simnet_close(io->net, s->fd);
            break;
        }
        close(s->fd);
        if ((s->flags & F_UNLINK) && s->lx != NULL) {
            (void)unlink(s->lx->path);
        }
        break;
    default:
        break; /* a watch's descriptor is its caller's */
    }
    s->fd = -1;
    if (s->out != NULL) {
        tr__free(s->out, s->out_cap);
        s->out = NULL;
    }
    if (s->lx != NULL) {
        tr__free(s->lx, sizeof(*s->lx));
        s->lx = NULL;
    }
    /* The input buffer stays while a handler borrows from it: the hook
     * that is delivering frees it (conn.c). */
    if (s->in != NULL && !(s->flags & F_IN_USE)) {
        tr__free(s->in, s->in_cap);
        s->in = NULL;
    }
    tr_faa_relaxed(&io->bytes_in, tr_load_relaxed(&s->bytes_in));
    tr_faa_relaxed(&io->bytes_out, tr_load_relaxed(&s->bytes_out));
    tr_faa_relaxed(&io->closed, 1);
    tr__io_unref(s); /* the open socket's reference */
    return true;
}

void
tr__io_exit(tr_exit_hook *h, tr_ctx *ctx)
{
    io_slot *s = tr_container_of(h, io_slot, exit);

    if (s->give_to != 0) {
        /* A give made in the handler that just ended its actor: the hook
         * that delivered to that handler hands the socket over when the
         * delivery returns (conn.c), never while it still runs. */
        tr_store_rel(&s->held_by, 0);
        return;
    }
    (void)tr__io_close_slot(s, ctx, true);
}

/* ---- opening ---- */

static int
check_opts(const tr_io_opts *o)
{
    if (o == NULL) {
        return TR_OK;
    }
    if ((unsigned)o->framing > TR_IO_FRAMES ||
        (unsigned)o->on_full > TR_IO_FULL_CLOSE || o->max_frame > MAX_FRAME) {
        return TR_EINVAL;
    }
    return TR_OK;
}

tr_io_opts
tr__io_normal_opts(const tr_io_opts *o)
{
    tr_io_opts n = {0};

    if (o != NULL) {
        n = *o;
    }
    if (n.max_frame == 0) {
        n.max_frame =
            n.framing == TR_IO_RAW ? DEFAULT_MAX_RAW : DEFAULT_MAX_LINE;
    }
    if (n.write_hwm == 0) {
        n.write_hwm = DEFAULT_HWM;
    }
    if (n.read_batch == 0) {
        n.read_batch = DEFAULT_BATCH;
    }
    if (n.idle_timeout.ms < 0) {
        n.idle_timeout = TR_NOWAIT;
    }
    return n;
}

/* Socket options of a connection. */
static void
conn_sockopts(int fd, const tr_io_opts *o, bool unix_domain)
{
    int one = 1;

    if (!unix_domain && !o->nagle) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (o->sndbuf != 0) {
        int v = (int)o->sndbuf;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    }
    if (o->rcvbuf != 0) {
        int v = (int)o->rcvbuf;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    }
}

/*
 * A slot for `fd` held by the calling actor, open and registered with
 * `events`. On error the slot is gone and `fd` is left to the caller.
 */
static int
open_slot(tr_ctx *ctx, tr_io_sys *io, io_kind kind, int fd, short events,
          io_slot **out)
{
    io_slot *s = tr__io_slot_new(io);
    int rc;

    if (s == NULL) {
        return TR_ENOMEM;
    }
    s->kind = kind;
    s->fd = fd;
    tr_store_relaxed(&s->owner, ctx->self);
    tr_store_relaxed(&s->held_by, ctx->self);
    /* Release: the slot's fields before its handle works anywhere. */
    tr_store_rel(&s->gen, tr_load_relaxed(&s->gen) + 1);
    tr__actor_on_exit(ctx, &s->exit);
    rc = tr__io_register(s, events);
    if (rc != TR_OK) {
        s->kind = IO_WATCH; /* the caller keeps `fd` */
        (void)tr__io_close_slot(s, ctx, false);
        return rc;
    }
    *out = s;
    return TR_OK;
}

/* The module, for an actor that may open sockets now. */
static int
opener(tr_ctx *ctx, tr_io_sys **io)
{
    if (ctx == NULL) {
        return TR_EINVAL;
    }
    if (ctx->actor == NULL) {
        return TR_ESTATE;
    }
    if (tr__sys_check(ctx->sys) != TR_OK) {
        return TR_EFORKED; /* the loops live in the parent */
    }
    if (tr_load_acq(&ctx->sys->shutting_down)) {
        return TR_ESHUTDOWN;
    }
    return tr__io_get(ctx->sys, io);
}

static int
parse_inet(const char *host, uint16_t port, struct sockaddr_storage *ss,
           socklen_t *len)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);

    memset(ss, 0, sizeof(*ss));
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return TR_OK;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return TR_OK;
    }
    return TR_EBADADDR;
}

static int
parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t n = path != NULL ? strlen(path) : 0;

    if (n == 0 || n >= sizeof(un->sun_path)) {
        return TR_EBADADDR;
    }
    memset(ss, 0, sizeof(*ss));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = '\0'; /* the abstract namespace */
    }
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                       (path[0] == '@' ? 0 : 1));
    return TR_OK;
}

static uint16_t
local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

/* A listener's first steps, for both backends: the module, its options
 * checked, and its record (`*lx`, the caller's to free on failure). */
static int
listen_begin(tr_ctx *ctx, const tr_io_listen_opts *opts, tr_io_sys **io,
             io_listen **lx)
{
    int rc;

    if ((rc = opener(ctx, io)) != TR_OK) {
        return rc;
    }
    /* An acceptor's behaviour and spawn options are checked as tr_spawn
     * would, here, not at each connection. */
    if (opts != NULL &&
        (check_opts(&opts->conn) != TR_OK || opts->backlog < 0 ||
         (opts->accept_behaviour != NULL &&
          !tr__behaviour_ok(opts->accept_behaviour)) ||
         (opts->accept_spawn != NULL &&
          opts->accept_spawn->mailbox_cap > TR_MAILBOX_CAP_MAX))) {
        return TR_EINVAL;
    }
    if ((*lx = tr__calloc(sizeof(**lx))) == NULL) {
        return TR_ENOMEM;
    }
    return TR_OK;
}

/* What a listener keeps of its options (`opts` may be NULL). */
static void
listen_record(io_listen *lx, const tr_io_listen_opts *opts)
{
    if (opts != NULL) {
        lx->conn = opts->conn;
        lx->behaviour = opts->accept_behaviour;
        lx->arg = opts->accept_arg;
        if (opts->accept_spawn != NULL) {
            lx->spawn = *opts->accept_spawn;
        }
    }
    lx->conn = tr__io_normal_opts(&lx->conn);
}

static int
listen_on(tr_ctx *ctx, const struct sockaddr_storage *ss, socklen_t len,
          const char *path, const tr_io_listen_opts *opts, tr_io *out)
{
    tr_io_sys *io;
    io_listen *lx;
    io_slot *s;
    int fd;
    int one = 1;
    int rc;

    if ((rc = listen_begin(ctx, opts, &io, &lx)) != TR_OK) {
        return rc;
    }
    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && ss->ss_family == AF_INET6 && path == NULL &&
        errno == EAFNOSUPPORT) {
        tr__free(lx, sizeof(*lx));
        return TR_EBADADDR;
    }
    if (fd < 0) {
        rc = tr__io_errno_code(errno);
        tr__free(lx, sizeof(*lx));
        return rc;
    }
    if (path == NULL) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        int only = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? 0 : 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
    }
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, opts != NULL && opts->backlog > 0 ? opts->backlog
                                                     : DEFAULT_BACKLOG) != 0) {
        rc = tr__io_errno_code(errno);
        if (errno == EADDRINUSE && path != NULL) {
            rc = TR_EADDRINUSE;
        }
        close(fd);
        tr__free(lx, sizeof(*lx));
        return rc;
    }
    listen_record(lx, opts);
    if ((rc = open_slot(ctx, io, IO_LISTENER, fd, EV_READ, &s)) != TR_OK) {
        close(fd);
        if (path != NULL && path[0] != '@') {
            (void)unlink(path);
        }
        tr__free(lx, sizeof(*lx));
        return rc;
    }
    s->lx = lx;
    if (path != NULL) {
        s->flags |= F_UNIX;
        if (path[0] != '@') {
            snprintf(lx->path, sizeof(lx->path), "%s", path);
            s->flags |= F_UNLINK;
        }
    } else {
        tr_store_relaxed(&s->port, local_port(fd));
    }
    *out = tr__io_handle(s);
    return TR_OK;
}

/* tr_io_listen in a simulated system: a listener of its network. */
static int
sim_listen(tr_ctx *ctx, const char *host, uint16_t port,
           const tr_io_listen_opts *opts, tr_io *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    tr_io_sys *io;
    io_listen *lx;
    io_slot *s;
    int fd;
    int rc;

    if (host != NULL && host[0] != '\0' &&
        (rc = parse_inet(host, port, &ss, &len)) != TR_OK) {
        return rc;
    }
    if ((rc = listen_begin(ctx, opts, &io, &lx)) != TR_OK) {
        return rc;
    }
    fd = tr__simnet_listen(io->net, host, port,
                           opts != NULL && opts->backlog > 0 ? opts->backlog
                                                             : DEFAULT_BACKLOG);
    if (fd < 0) {
        tr__free(lx, sizeof(*lx));
        return fd;
    }
    listen_record(lx, opts);
    if ((rc = open_slot(ctx, io, IO_LISTENER, fd, EV_READ, &s)) != TR_OK) {
        tr__simnet_close(io->net, fd);
        tr__free(lx, sizeof(*lx));
        return rc;
    }
    s->lx = lx;
    tr_store_relaxed(&s->port, tr__simnet_port(io->net, fd));
    tr__simnet_attach(io->net, fd, s);
    *out = tr__io_handle(s);
    return TR_OK;
}

/* tr_io_connect in a simulated system: the connecting actor is a client
 * host of its own (troupe/sim.h). */
static int
sim_connect(tr_ctx *ctx, const char *host, uint16_t port,
            const tr_io_opts *opts, tr_timeout timeout, tr_io *out)
{
    tr_io_opts o;
    tr_io_sys *io;
    io_slot *s;
    int fd;
    int rc;

    if ((rc = opener(ctx, &io)) != TR_OK) {
        return rc;
    }
    if (check_opts(opts) != TR_OK) {
        return TR_EINVAL;
    }
    o = tr__io_normal_opts(opts);
    if ((fd = tr__simnet_connect(io->net, ctx->actor->index, host, port)) < 0) {
        return fd;
    }
    if ((rc = tr__io_open_conn(ctx, io, fd, &o, false, true, &s)) != TR_OK) {
        tr__simnet_close(io->net, fd);
        return rc;
    }
    if (timeout.ms > 0 && timeout.ms < INT64_MAX - tr__io_now_ms(io)) {
        s->deadline = tr__io_now_ms(io) + timeout.ms;
        (void)tr__io_timer_arm(s, timeout.ms);
    }
    *out = tr__io_handle(s);
    return TR_OK;
}

int
tr_io_listen(tr_ctx *ctx, const char *host, uint16_t port,
             const tr_io_listen_opts *opts, tr_io *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    if (ctx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if (ctx->sys->sim != NULL) {
        return sim_listen(ctx, host, port, opts, out);
    }
    if (host == NULL || host[0] == '\0') {
        /* Every address: IPv6's any, dual-stack; IPv4's where the
         * kernel has no IPv6. */
        rc = parse_inet("::", port, &ss, &len);
        if (rc == TR_OK) {
            rc = listen_on(ctx, &ss, len, NULL, opts, out);
            if (rc != TR_EBADADDR) {
                return rc;
            }
        }
        host = "0.0.0.0";
    }
    if ((rc = parse_inet(host, port, &ss, &len)) != TR_OK) {
        return rc;
    }
    return listen_on(ctx, &ss, len, NULL, opts, out);
}

int
tr_io_listen_unix(tr_ctx *ctx, const char *path, const tr_io_listen_opts *opts,
                  tr_io *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    if (ctx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if (ctx->sys->sim != NULL) {
        return TR_ESTATE; /* troupe/sim.h: TCP only */
    }
    if ((rc = parse_unix(path, &ss, &len)) != TR_OK) {
        return rc;
    }
    return listen_on(ctx, &ss, len, path, opts, out);
}

int
tr__io_open_conn(tr_ctx *ctx, tr_io_sys *io, int fd, const tr_io_opts *opts,
                 bool unix_domain, bool connecting, io_slot **out)
{
    io_slot *s;
    int rc;

    if (io->net == NULL) {
        conn_sockopts(fd, opts, unix_domain);
    }
    if ((rc = open_slot(ctx, io, IO_CONN, fd, EV_READ | EV_WRITE, &s)) !=
        TR_OK) {
        return rc;
    }
    s->opts = *opts;
    s->flags |= F_RD_MORE;
    if (unix_domain) {
        s->flags |= F_UNIX;
    } else if (!connecting) {
        tr_store_relaxed(&s->port, io->net != NULL
                                       ? tr__simnet_port(io->net, fd)
                                       : local_port(fd));
    }
    if (connecting) {
        s->flags |= F_CONNECTING;
    }
    if (s->opts.idle_timeout.ms > 0) {
        tr_store_relaxed(&s->last_in, tr__io_now_ms(io));
        if (!connecting) {
            (void)tr__io_timer_arm(s, s->opts.idle_timeout.ms);
        }
    }
    if (io->net != NULL) {
        tr__simnet_attach(io->net, fd, s);
    }
    *out = s;
    return TR_OK;
}

static int
connect_to(tr_ctx *ctx, const struct sockaddr_storage *ss, socklen_t len,
           const tr_io_opts *opts, tr_timeout timeout, tr_io *out)
{
    tr_io_opts o;
    tr_io_sys *io;
    io_slot *s;
    int fd;
    int rc;
    int err = 0;
    bool unix_domain = ss->ss_family == AF_UNIX;

    if ((rc = opener(ctx, &io)) != TR_OK) {
        return rc;
    }
    if (check_opts(opts) != TR_OK) {
        return TR_EINVAL;
    }
    o = tr__io_normal_opts(opts);
    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno == EAFNOSUPPORT ? TR_EBADADDR : tr__io_errno_code(errno);
    }
    conn_sockopts(fd, &o, unix_domain);
    if (connect(fd, (const struct sockaddr *)ss, len) != 0 &&
        errno != EINPROGRESS) {
        err = errno;
        if (err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS) {
            close(fd);
            return tr__io_errno_code(err);
        }
    }
    if ((rc = tr__io_open_conn(ctx, io, fd, &o, unix_domain, true, &s)) !=
        TR_OK) {
        close(fd);
        return rc;
    }
    if (err != 0) {
        /* Refused at once (a Unix socket with no listener, say): the owner
         * hears it as the end, like a refusal that takes a round trip. */
        s->end_reason = TR_IO_END_ERROR;
        s->end_err = err;
        tr__io_post(s, RD_END);
    } else if (timeout.ms > 0 && timeout.ms < INT64_MAX - tr__io_now_ms(io)) {
        /* A deadline past the clock's range is no deadline. */
        s->deadline = tr__io_now_ms(io) + timeout.ms;
        if (tr__io_timer_arm(s, timeout.ms) != TR_OK) {
            (void)tr__io_close_slot(s, ctx, false);
            return TR_ENOMEM;
        }
    }
    *out = tr__io_handle(s);
    return TR_OK;
}

int
tr_io_connect(tr_ctx *ctx, const char *host, uint16_t port,
              const tr_io_opts *opts, tr_timeout timeout, tr_io *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    if (ctx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    /* Port 0 names no peer: connect(2) would only be refused later. */
    if (host == NULL || host[0] == '\0' || port == 0) {
        return TR_EBADADDR;
    }
    if ((rc = parse_inet(host, port, &ss, &len)) != TR_OK) {
        return rc;
    }
    if (ctx->sys->sim != NULL) {
        return sim_connect(ctx, host, port, opts, timeout, out);
    }
    return connect_to(ctx, &ss, len, opts, timeout, out);
}

int
tr_io_connect_unix(tr_ctx *ctx, const char *path, const tr_io_opts *opts,
                   tr_timeout timeout, tr_io *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    if (ctx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if (ctx->sys->sim != NULL) {
        return TR_ESTATE; /* troupe/sim.h: TCP only */
    }
    if ((rc = parse_unix(path, &ss, &len)) != TR_OK) {
        return rc;
    }
    return connect_to(ctx, &ss, len, opts, timeout, out);
}

int
tr_io_watch(tr_ctx *ctx, int fd, uint32_t events, tr_io *out)
{
    tr_io_sys *io;
    io_slot *s;
    short ev = 0;
    int rc;

    if (ctx == NULL || out == NULL || fd < 0 || events == 0 ||
        (events & ~(TR_IO_READABLE | TR_IO_WRITABLE)) != 0) {
        return TR_EINVAL;
    }
    if (ctx->sys->sim != NULL) {
        return TR_ESTATE; /* troupe/sim.h: no descriptor to watch */
    }
    if ((rc = opener(ctx, &io)) != TR_OK) {
        return rc;
    }
    if (events & TR_IO_READABLE) {
        ev |= EV_READ;
    }
    if (events & TR_IO_WRITABLE) {
        ev |= EV_WRITE;
    }
    if ((rc = open_slot(ctx, io, IO_WATCH, fd, ev, &s)) != TR_OK) {
        return rc;
    }
    s->opts.max_frame = events; /* a watch keeps its mask here */
    *out = tr__io_handle(s);
    return TR_OK;
}

/* ---- writing ---- */

/* Record an end decided here; the owner hears it from its hook. */
static void
end_later(io_slot *s, tr_io_end reason, int err)
{
    if (s->end_reason == TR_IO_END_NONE) {
        s->end_reason = reason;
        s->end_err = err;
        tr__io_post(s, RD_END);
    }
}

static tr_io_end
reason_of(int err)
{
    return err == ECONNRESET || err == EPIPE ? TR_IO_END_RESET
                                             : TR_IO_END_ERROR;
}

/* Append to the output buffer, growing it (never past what the bound
 * lets in). */
static bool
append(io_slot *s, const void *data, size_t len)
{
    size_t used = s->out_end - s->out_start;

    if (s->out != NULL && s->out_end + len > s->out_cap && s->out_start > 0) {
        memmove(s->out, s->out + s->out_start, used);
        s->out_start = 0;
        s->out_end = used;
    }
    if (s->out == NULL || s->out_end + len > s->out_cap) {
        size_t cap = s->out_cap != 0 ? s->out_cap : 4096;
        while (cap < used + len) {
            cap *= 2;
        }
        unsigned char *b = tr__alloc(cap);
        if (b == NULL) {
            return false;
        }
        if (s->out != NULL) {
            memcpy(b, s->out + s->out_start, used);
            tr__free(s->out, s->out_cap);
        }
        s->out = b;
        s->out_cap = cap;
        s->out_start = 0;
        s->out_end = used;
    }
    memcpy(s->out + s->out_end, data, len);
    s->out_end += len;
    return true;
}

bool
tr__io_flush(io_slot *s)
{
    while (s->out_start < s->out_end) {
        ssize_t n =
            tr__io_send(s, s->out + s->out_start, s->out_end - s->out_start);
        if (n > 0) {
            s->out_start += (size_t)n;
            tr_store_relaxed(&s->bytes_out,
                             tr_load_relaxed(&s->bytes_out) + (uint64_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        end_later(s, reason_of(n < 0 ? errno : EPIPE), n < 0 ? errno : EPIPE);
        return false;
    }
    if (s->out != NULL) {
        tr__free(s->out, s->out_cap);
        s->out = NULL;
        s->out_cap = s->out_start = s->out_end = 0;
    }
    if ((s->flags & (F_SHUT_WANTED | F_SHUT_DONE)) == F_SHUT_WANTED) {
        tr__io_shut_wr(s);
        s->flags |= F_SHUT_DONE;
    }
    return true;
}

int
tr_io_writev(tr_ctx *ctx, tr_io h, const struct iovec *iov, int n)
{
    io_slot *s;
    size_t total = 0;
    size_t sent = 0;
    int rc;

    if (n < 0 || (iov == NULL && n != 0)) {
        return TR_EINVAL;
    }
    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    if (s->kind != IO_CONN) {
        return TR_ESTATE;
    }
    for (int i = 0; i < n; i++) {
        if ((iov[i].iov_base == NULL && iov[i].iov_len != 0) ||
            iov[i].iov_len > SIZE_MAX - total) {
            return TR_EINVAL;
        }
        total += iov[i].iov_len;
    }
    if (s->end_reason != TR_IO_END_NONE ||
        (s->flags & (F_SHUT_WANTED | F_SHUT_DONE))) {
        return TR_ECLOSED;
    }
    if (total == 0) {
        return TR_OK;
    }
    size_t used = s->out_end - s->out_start;
    if (used == 0 && !(s->flags & F_CONNECTING)) {
        /* The kernel takes at most IOV_MAX buffers a call (EMSGSIZE past
         * that): send them in runs of that many, until the socket takes
         * less than a run; what it did not take is copied below. */
        for (int at = 0; at < n;) {
            int now = n - at < IOV_MAX ? n - at : IOV_MAX;
            size_t run = 0;
            struct msghdr mh = {0};
            ssize_t k;

            for (int i = at; i < at + now; i++) {
                run += iov[i].iov_len;
            }
            mh.msg_iov = (struct iovec *)(iov + at);
            mh.msg_iovlen = (size_t)now;
            do {
                k = s->io->net != NULL
                        ? tr__simnet_send(s->io->net, s->fd, iov + at, now)
                        : sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            } while (k < 0 && errno == EINTR);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                end_later(s, reason_of(errno), errno);
                return TR_ECLOSED;
            }
            if (k <= 0) {
                break;
            }
            sent += (size_t)k;
            tr_store_relaxed(&s->bytes_out,
                             tr_load_relaxed(&s->bytes_out) + (uint64_t)k);
            if ((size_t)k < run) {
                break;
            }
            at += now;
        }
        if (sent == total) {
            return TR_OK;
        }
    } else if (used != 0 &&
               (used > s->opts.write_hwm || total > s->opts.write_hwm - used)) {
        /* (An empty buffer takes any write whole, connected or not.) */
        if (s->opts.on_full == TR_IO_FULL_CLOSE) {
            end_later(s, TR_IO_END_OVERFLOW, 0);
            return TR_ECLOSED;
        }
        s->flags |= F_WANT_DRAIN;
        tr_faa_relaxed(&s->io->refused, 1);
        return TR_EFULL;
    }
    /* Copy what the kernel did not take. */
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        const unsigned char *p = iov[i].iov_base;
        if (sent >= l) {
            sent -= l;
            continue;
        }
        if (!append(s, p + sent, l - sent)) {
            /* Part of the write may be on the wire: the stream cannot go
             * on in order. */
            end_later(s, TR_IO_END_ERROR, ENOMEM);
            return TR_ENOMEM;
        }
        sent = 0;
    }
    return TR_OK;
}

int
tr_io_write(tr_ctx *ctx, tr_io io, const void *data, size_t len)
{
    struct iovec v = {(void *)data, len};

    if (data == NULL && len != 0) {
        return TR_EINVAL;
    }
    return tr_io_writev(ctx, io, &v, 1);
}

int
tr_io_shutdown(tr_ctx *ctx, tr_io h)
{
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    if (s->kind != IO_CONN) {
        return TR_ESTATE;
    }
    if (s->end_reason != TR_IO_END_NONE) {
        return TR_ECLOSED;
    }
    s->flags |= F_SHUT_WANTED;
    if (s->out_start == s->out_end && !(s->flags & F_CONNECTING) &&
        !(s->flags & F_SHUT_DONE)) {
        tr__io_shut_wr(s);
        s->flags |= F_SHUT_DONE;
    }
    return TR_OK;
}

int
tr_io_close(tr_ctx *ctx, tr_io h)
{
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    s->give_to = 0;
    return tr__io_close_slot(s, ctx, false) ? TR_OK : TR_ECLOSED;
}

int
tr_io_pause(tr_ctx *ctx, tr_io h)
{
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    if (s->kind == IO_WATCH) {
        return TR_ESTATE;
    }
    s->flags |= F_PAUSED;
    return TR_OK;
}

int
tr_io_resume(tr_ctx *ctx, tr_io h)
{
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    if (s->kind == IO_WATCH) {
        return TR_ESTATE;
    }
    if (s->flags & F_PAUSED) {
        s->flags &= ~(uint32_t)F_PAUSED;
        tr__io_post(s, RD_RESUME);
    }
    return TR_OK;
}

int
tr_io_give(tr_ctx *ctx, tr_io h, tr_addr to)
{
    tr_actor_stats st;
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    if ((rc = tr__addr_check(ctx->sys, to)) != TR_OK) {
        return rc;
    }
    if (to.id == ctx->self) {
        return TR_EINVAL;
    }
    if (tr_actor_stats_get(ctx->sys, to, &st) != TR_OK) {
        return TR_ENOACTOR;
    }
    if (s->flags & F_IN_USE) {
        /* The caller reads borrowed input: the hook hands it over once
         * the handler returns (see the top comment). */
        s->give_to = to.id;
        return TR_OK;
    }
    (void)tr__actor_unhook_exit(ctx, &s->exit);
    tr__io_hand_over(s, to.id);
    return TR_OK;
}

int
tr_io_set_user(tr_ctx *ctx, tr_io h, void *user)
{
    io_slot *s;
    int rc;

    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    s->user = user;
    return TR_OK;
}

int
tr_io_buffered(tr_ctx *ctx, tr_io h, size_t *len)
{
    io_slot *s;
    int rc;

    if (len == NULL) {
        return TR_EINVAL;
    }
    if ((rc = hold(ctx, h, &s)) != TR_OK) {
        return rc;
    }
    *len = s->out_end - s->out_start;
    return TR_OK;
}

/* tr_io_port once entered. */
static int
port_entered(tr_system *sys, tr_io h, uint16_t *port)
{
    tr_io_sys *io = (tr_io_sys *)tr_load_acq(&sys->io);
    io_slot *s;

    if (io == NULL || (s = tr__io_slot_of(io, h)) == NULL) {
        return TR_ECLOSED;
    }
    uint32_t p = tr_load_relaxed(&s->port);
    /* Acquire: the port read above belongs to this socket only if it is
     * still the one in the slot. */
    if (tr__io_slot_of(io, h) != s) {
        return TR_ECLOSED;
    }
    if (p == 0) {
        return TR_EINVAL;
    }
    *port = (uint16_t)p;
    return TR_OK;
}

int
tr_io_port(tr_system *sys, tr_io h, uint16_t *port)
{
    bool entered;
    int rc;

    if (sys == NULL || port == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    rc = port_entered(sys, h, port);
    if (entered) {
        tr__sys_leave(sys);
    }
    return rc;
}
