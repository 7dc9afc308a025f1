/*
 * What a socket's owner does when its notification runs: adopt a given
 * socket, finish a connect, flush output, accept, read and frame input,
 * and deliver each piece and each end as a TR_MSG_IO event.
 *
 * The notification is a control-lane hook (troupe's runtime hook, as for
 * channel subscriptions): it runs in the owner's context, on its worker,
 * and hands events to the owner's handler with tr__actor_handle_borrowed,
 * so a piece of input is never copied into a message: the handler borrows
 * it straight from the connection's input buffer. A run delivers at most
 * `read_batch` pieces and reads at most READ_BUDGET bytes; with more left
 * it queues itself again, and the runtime runs it after the owner's user
 * messages (hooks queued during a run wait for the next one), so a fast
 * peer shares its owner fairly with the mailbox.
 *
 * Edge-triggered readiness. The loop reports an edge once; the hook keeps
 * F_RD_MORE until a read returns EAGAIN, and carries on from its own
 * re-queued runs meanwhile: nothing is lost between edges.
 *
 * Memory. The input buffer exists only while a partial piece waits (or a
 * paused connection holds pieces), and is freed at the end of any run
 * that leaves it empty: an idle connection holds no buffer. It never
 * grows past `max_frame` plus a frame header: an over-long line is
 * reported once and then dropped as it arrives (F_DISCARD), an over-long
 * frame is reported and its bytes counted down (`skip`).
 *
 * After every delivery the hook checks that the actor did not end, and
 * that the socket is still open, still its own (not given away) and not
 * paused; if not, it stops there and leaves the rest as it is.
 */
#include "io/sock.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    READ_BUDGET = 256 * 1024, /* bytes read per run */
    ACCEPT_BATCH = 64,        /* connections accepted per run */
    ACCEPT_RETRY_MS = 100,
    MIN_IN_CAP = 4096
};

/* How a step left things. */
typedef enum step {
    STEP_DONE = 0, /* nothing more to do until the next edge */
    STEP_MORE,     /* a budget ran out: run again */
    STEP_STOP,     /* the socket is closed, given away or paused */
    STEP_ENDED     /* the actor ended: return at once */
} step;

typedef struct run {
    io_slot *s;
    tr_ctx *ctx;
    void *state;
    uint64_t *handled;
    tr_io h;
} run;

static bool
still_mine(const run *r)
{
    io_slot *s = r->s;

    return tr_load_relaxed(&s->gen) == (r->h.id >> IO_INDEX_BITS) &&
           tr_load_relaxed(&s->held_by) == r->ctx->self && s->give_to == 0;
}

/* Hand `ev` to the owner; what the hook does next. */
static step
deliver(run *r, tr_io_event *ev)
{
    ev->io = r->h;
    ev->user = r->s->user;
    if (tr__actor_handle_borrowed(r->ctx, r->state, TR_MSG_IO, ev,
                                  (uint32_t)sizeof(*ev), r->handled)) {
        return STEP_ENDED;
    }
    if (!still_mine(r)) {
        return STEP_STOP;
    }
    return STEP_DONE;
}

/* Close, then tell the owner why. */
static step
end_conn(run *r, tr_io_end reason, int err)
{
    tr_io_event ev = {.kind = TR_IO_CLOSED, .reason = reason, .err = err};
    void *user = r->s->user;

    (void)tr__io_close_slot(r->s, r->ctx, false);
    ev.io = r->h;
    ev.user = user;
    if (tr__actor_handle_borrowed(r->ctx, r->state, TR_MSG_IO, &ev,
                                  (uint32_t)sizeof(ev), r->handled)) {
        return STEP_ENDED;
    }
    return STEP_STOP;
}

/* ---- input ---- */

static uint32_t
in_cap_for(const io_slot *s)
{
    uint32_t need = s->opts.max_frame;

    if (s->opts.framing == TR_IO_LINES) {
        need += 2; /* CR LF */
    } else if (s->opts.framing == TR_IO_FRAMES) {
        need += 4; /* the length */
    }
    return need < MIN_IN_CAP ? MIN_IN_CAP : need;
}

static void
in_free(io_slot *s)
{
    if (s->in != NULL) {
        tr__free(s->in, s->in_cap);
        s->in = NULL;
    }
    s->in_cap = s->in_start = s->in_end = s->in_scan = 0;
}

/* Deliver one piece that lies in the input buffer. */
static step
piece(run *r, const unsigned char *data, size_t len)
{
    tr_io_event ev = {.kind = TR_IO_DATA, .data = data, .len = len};
    step st;

    r->s->flags |= F_IN_USE;
    st = deliver(r, &ev);
    r->s->flags &= ~(uint32_t)F_IN_USE;
    return st;
}

static step
too_long(run *r, size_t len)
{
    tr_io_event ev = {.kind = TR_IO_TOO_LONG, .len = len};

    tr_faa_relaxed(&r->s->io->too_long, 1);
    return deliver(r, &ev);
}

/* After a delivery: carry on, or why not. */
static step
after(run *r, step st, uint32_t *pieces)
{
    if (st != STEP_DONE) {
        return st;
    }
    if (r->s->flags & F_PAUSED) {
        return STEP_STOP;
    }
    (*pieces)++;
    return STEP_DONE;
}

/* Lines in [in_start, in_end): deliver each complete one. */
static step
cut_lines(run *r, uint32_t *pieces)
{
    io_slot *s = r->s;
    uint32_t max = s->opts.max_frame;

    while (s->in_start < s->in_end) {
        unsigned char *base = s->in + s->in_start;
        size_t have = s->in_end - s->in_start;
        size_t from = s->in_scan > s->in_start ? s->in_scan - s->in_start : 0;
        unsigned char *nl = memchr(base + from, '\n', have - from);

        if (*pieces >= s->opts.read_batch) {
            return STEP_MORE;
        }
        if (s->flags & F_DISCARD) {
            if (nl == NULL) {
                s->in_start = s->in_end; /* still inside the long line */
                break;
            }
            s->flags &= ~(uint32_t)F_DISCARD;
            s->in_start += (uint32_t)(nl - base) + 1;
            s->in_scan = s->in_start;
            continue;
        }
        if (nl != NULL) {
            size_t len = (size_t)(nl - base);
            size_t line = len > 0 && base[len - 1] == '\r' ? len - 1 : len;
            step st;
            s->in_start += (uint32_t)len + 1;
            s->in_scan = s->in_start;
            if (line > max) {
                st = too_long(r, line);
            } else {
                st = piece(r, base, line);
            }
            if ((st = after(r, st, pieces)) != STEP_DONE) {
                return st;
            }
            continue;
        }
        s->in_scan = s->in_end;
        /* No LF yet. Over the limit already (a CR at the very end may be
         * half of a CRLF): refuse now, drop the rest as it comes. */
        if (have > (size_t)max + 1 ||
            (have == (size_t)max + 1 && base[have - 1] != '\r')) {
            s->flags |= F_DISCARD;
            s->in_start = s->in_end;
            step st = too_long(r, have);
            if ((st = after(r, st, pieces)) != STEP_DONE) {
                return st;
            }
        }
        break;
    }
    return STEP_DONE;
}

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* Length-prefixed frames in [in_start, in_end). */
static step
cut_frames(run *r, uint32_t *pieces)
{
    io_slot *s = r->s;

    while (s->in_start < s->in_end) {
        size_t have = s->in_end - s->in_start;
        if (s->skip > 0) {
            size_t k = have < s->skip ? have : (size_t)s->skip;
            s->in_start += (uint32_t)k;
            s->skip -= k;
            continue;
        }
        if (have < 4) {
            break;
        }
        if (*pieces >= s->opts.read_batch) {
            return STEP_MORE;
        }
        unsigned char *base = s->in + s->in_start;
        uint32_t len = be32(base);
        step st;
        if (len > s->opts.max_frame) {
            s->in_start += 4;
            s->skip = len;
            st = too_long(r, len);
        } else if (have < 4 + (size_t)len) {
            break;
        } else {
            s->in_start += 4 + len;
            st = piece(r, base + 4, len);
        }
        if ((st = after(r, st, pieces)) != STEP_DONE) {
            return st;
        }
    }
    return STEP_DONE;
}

static step
cut(run *r, uint32_t *pieces)
{
    io_slot *s = r->s;

    if (s->in == NULL || s->in_start == s->in_end) {
        return STEP_DONE;
    }
    switch (s->opts.framing) {
    case TR_IO_LINES:
        return cut_lines(r, pieces);
    case TR_IO_FRAMES:
        return cut_frames(r, pieces);
    default: {
        if (*pieces >= s->opts.read_batch) {
            return STEP_MORE;
        }
        unsigned char *base = s->in + s->in_start;
        size_t len = s->in_end - s->in_start;
        s->in_start = s->in_end;
        return after(r, piece(r, base, len), pieces);
    }
    }
}

/* Make room at the end of the input buffer; false when out of memory. */
static bool
in_room(io_slot *s)
{
    if (s->in == NULL) {
        s->in_cap = in_cap_for(s);
        s->in = tr__alloc(s->in_cap);
        if (s->in == NULL) {
            s->in_cap = 0;
            return false;
        }
        s->in_start = s->in_end = s->in_scan = 0;
        return true;
    }
    if (s->in_start == s->in_end) {
        s->in_start = s->in_end = s->in_scan = 0;
    } else if (s->in_end == s->in_cap && s->in_start > 0) {
        uint32_t used = s->in_end - s->in_start;
        memmove(s->in, s->in + s->in_start, used);
        s->in_scan -= s->in_start;
        s->in_start = 0;
        s->in_end = used;
    }
    return true;
}

/* Is the owner's bounded mailbox full? Then its messages go first. */
static bool
mailbox_full(const tr_ctx *ctx)
{
    tr_actor *a = ctx->actor;
    uint32_t cap = tr_load_relaxed(&a->cap) & TR_CAP_BOUND;

    return cap != 0 && tr__lane_len(&a->sent, &a->taken) >= cap;
}

static step
conn_input(run *r)
{
    io_slot *s = r->s;
    uint32_t pieces = 0;
    size_t got = 0;
    step st;

    for (;;) {
        if (s->flags & F_PAUSED) {
            return STEP_STOP;
        }
        if ((st = cut(r, &pieces)) != STEP_DONE) {
            return st;
        }
        if (!(s->flags & F_RD_MORE) || (s->flags & F_EOF)) {
            break;
        }
        if (got >= READ_BUDGET) {
            return STEP_MORE;
        }
        if (mailbox_full(r->ctx)) {
            return STEP_MORE;
        }
        if (!in_room(s)) {
            return end_conn(r, TR_IO_END_ERROR, ENOMEM);
        }
        if (s->in_end == s->in_cap) {
            /* Cannot happen: a partial piece is always under the cap. */
            return end_conn(r, TR_IO_END_ERROR, EMSGSIZE);
        }
        ssize_t n = tr__io_recv(s, s->in + s->in_end, s->in_cap - s->in_end);
        if (n > 0) {
            s->in_end += (uint32_t)n;
            got += (size_t)n;
            tr_store_relaxed(&s->bytes_in,
                             tr_load_relaxed(&s->bytes_in) + (uint64_t)n);
            if (s->opts.idle_timeout.ms > 0) {
                tr_store_relaxed(&s->last_in, tr__io_now_ms(s->io));
            }
            continue;
        }
        if (n == 0) {
            /* EOF: an unterminated last line is still a line. */
            if (s->opts.framing == TR_IO_LINES && !(s->flags & F_DISCARD) &&
                s->in != NULL && s->in_start < s->in_end) {
                unsigned char *base = s->in + s->in_start;
                size_t len = s->in_end - s->in_start;
                s->in_start = s->in_end;
                if (len > 0 && base[len - 1] == '\r') {
                    len--;
                }
                st = len > s->opts.max_frame ? too_long(r, len)
                                             : piece(r, base, len);
                if (st != STEP_DONE) {
                    return st;
                }
            }
            s->flags &= ~(uint32_t)F_RD_MORE;
            if (s->opts.half_close) {
                s->flags |= F_EOF;
                in_free(s);
                tr_io_event ev = {.kind = TR_IO_EOF};
                return deliver(r, &ev);
            }
            return end_conn(r, TR_IO_END_PEER, 0);
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->flags &= ~(uint32_t)F_RD_MORE;
            break;
        }
        int err = errno;
        return end_conn(
            r, err == ECONNRESET ? TR_IO_END_RESET : TR_IO_END_ERROR, err);
    }
    if (s->in != NULL && s->in_start == s->in_end) {
        in_free(s);
    }
    return STEP_DONE;
}

/* ---- connections ---- */

static step
conn_connected(run *r)
{
    io_slot *s = r->s;
    int err = 0;
    socklen_t len = sizeof(err);
    tr_io_event ev = {.kind = TR_IO_CONNECTED};
    step st;

    if (s->io->net != NULL) {
        err = tr__simnet_error(s->io->net, s->fd);
    } else if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err == EINPROGRESS || err == EALREADY) {
        return STEP_DONE; /* not yet */
    }
    if (err != 0) {
        return end_conn(r, TR_IO_END_ERROR, err);
    }
    s->flags &= ~(uint32_t)F_CONNECTING;
    if (s->io->net != NULL) {
        tr_store_relaxed(&s->port, tr__simnet_port(s->io->net, s->fd));
    } else if (!(s->flags & F_UNIX)) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0) {
            uint16_t p = 0;
            if (ss.ss_family == AF_INET) {
                p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            }
            tr_store_relaxed(&s->port, p);
        }
    }
    s->deadline = 0;
    if (s->opts.idle_timeout.ms > 0) {
        tr_store_relaxed(&s->last_in, tr__io_now_ms(s->io));
        (void)tr__io_timer_arm(s, s->opts.idle_timeout.ms);
    } else {
        tr__io_timer_stop(s);
    }
    tr_faa_relaxed(&s->io->connected, 1);
    if ((st = deliver(r, &ev)) != STEP_DONE) {
        return st;
    }
    /* Writes made while connecting go out now. */
    if (!tr__io_flush(s)) {
        return end_conn(r, s->end_reason, s->end_err);
    }
    return STEP_DONE;
}

static step
conn_run(run *r, uint32_t bits)
{
    io_slot *s = r->s;
    step st;

    if (s->flags & F_CONNECTING) {
        if ((bits & RD_TIMER) && s->deadline != 0) {
            int64_t left = s->deadline - tr__io_now_ms(s->io);
            if (left <= 0) {
                return end_conn(r, TR_IO_END_TIMEOUT, ETIMEDOUT);
            }
            /* Early by the deadline's clock: the loop's timer counts from
             * a coarse or cached clock. Wait for what is left (or, with no
             * timer to wait on, end now, a little early, not never). */
            if (tr__io_timer_arm(s, left) != TR_OK) {
                return end_conn(r, TR_IO_END_TIMEOUT, ETIMEDOUT);
            }
        }
        if (!(bits & (RD_WRITE | RD_READ))) {
            return STEP_DONE;
        }
        if ((st = conn_connected(r)) != STEP_DONE) {
            return st;
        }
        if (s->flags & F_CONNECTING) {
            return STEP_DONE;
        }
        bits |= RD_READ;
    }
    if (bits & RD_READ) {
        s->flags |= F_RD_MORE;
    }
    if ((bits & RD_WRITE) && s->out_start < s->out_end) {
        if (!tr__io_flush(s)) {
            return end_conn(r, s->end_reason, s->end_err);
        }
    }
    if ((s->flags & F_WANT_DRAIN) && s->out_start == s->out_end) {
        tr_io_event ev = {.kind = TR_IO_DRAINED};
        s->flags &= ~(uint32_t)F_WANT_DRAIN;
        if ((st = deliver(r, &ev)) != STEP_DONE) {
            return st;
        }
    }
    if ((bits & RD_TIMER) && s->opts.idle_timeout.ms > 0) {
        int64_t idle = tr__io_now_ms(s->io) - tr_load_relaxed(&s->last_in);
        if (idle >= s->opts.idle_timeout.ms) {
            return end_conn(r, TR_IO_END_TIMEOUT, ETIMEDOUT);
        }
        (void)tr__io_timer_arm(s, s->opts.idle_timeout.ms - idle);
    }
    return conn_input(r);
}

/* ---- listeners ---- */

static step
accept_error(run *r, int err, int code)
{
    io_slot *s = r->s;
    tr_io_event ev = {.kind = TR_IO_ACCEPT_ERROR, .err = err, .code = code};

    s->flags |= F_ACCEPT_WAIT;
    (void)tr__io_timer_arm(s, ACCEPT_RETRY_MS);
    return deliver(r, &ev);
}

/* Hand a new connection `c` to the listener's owner or a new actor. */
static step
hand_out(run *r, io_slot *c)
{
    io_listen *lx = r->s->lx;
    tr_io ch = tr__io_handle(c);

    if (lx->behaviour == NULL) {
        tr_io_event ev = {.kind = TR_IO_ACCEPTED, .peer = ch};
        return deliver(r, &ev);
    }
    tr_addr child;
    int rc = tr_spawn(r->ctx, lx->behaviour, lx->arg, &lx->spawn, &child);
    if (rc == TR_OK) {
        rc = tr_io_give(r->ctx, ch, child);
    }
    if (rc != TR_OK) {
        (void)tr__io_close_slot(c, r->ctx, false);
        if (rc != TR_IGNORE && rc != TR_ENOACTOR) {
            tr_io_event ev = {.kind = TR_IO_ACCEPT_ERROR, .code = rc};
            return deliver(r, &ev);
        }
    }
    /* The listener itself may have been closed by a child's init. */
    return still_mine(r) ? STEP_DONE : STEP_STOP;
}

static step
listener_run(run *r, uint32_t bits)
{
    io_slot *s = r->s;
    io_listen *lx = s->lx;
    step st;

    if (bits & RD_TIMER) {
        s->flags &= ~(uint32_t)F_ACCEPT_WAIT;
        s->flags |= F_RD_MORE;
    }
    if (bits & (RD_READ | RD_RESUME)) {
        s->flags |= F_RD_MORE;
    }
    if (s->flags & F_ACCEPT_WAIT) {
        return STEP_DONE; /* the retry timer resumes it */
    }
    for (int n = 0; (s->flags & F_RD_MORE); n++) {
        if (s->flags & F_PAUSED) {
            return STEP_STOP;
        }
        if (n == ACCEPT_BATCH) {
            return STEP_MORE;
        }
        int fd = s->io->net != NULL
                     ? tr__simnet_accept(s->io->net, s->fd)
                     : accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            switch (err) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                s->flags &= ~(uint32_t)F_RD_MORE;
                return STEP_DONE;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                continue; /* that one connection is gone: next */
            default:
                /* EMFILE, ENFILE, ENOBUFS, ENOMEM and the unexpected:
                 * never spin on them; wait, then retry. */
                return accept_error(r, err, tr__io_errno_code(err));
            }
        }
        io_slot *c;
        int rc = tr__io_open_conn(r->ctx, s->io, fd, &lx->conn,
                                  (s->flags & F_UNIX) != 0, false, &c);
        if (rc != TR_OK) {
            if (s->io->net != NULL) {
                tr__simnet_close(s->io->net, fd);
            } else {
                close(fd);
            }
            return accept_error(r, 0, rc);
        }
        tr_faa_relaxed(&s->io->accepted, 1);
        if ((st = hand_out(r, c)) != STEP_DONE) {
            return st;
        }
    }
    return STEP_DONE;
}

/* ---- the hook ---- */

static step
watch_run(run *r, uint32_t bits)
{
    uint32_t mask = r->s->opts.max_frame; /* see tr_io_watch */
    uint32_t ready = 0;

    if (bits & RD_READ) {
        ready |= TR_IO_READABLE;
    }
    if (bits & RD_WRITE) {
        ready |= TR_IO_WRITABLE;
    }
    ready &= mask;
    if (ready == 0) {
        return STEP_DONE;
    }
    tr_io_event ev = {.kind = TR_IO_READY, .ready = ready};
    return deliver(r, &ev);
}

/* The rest of a run, for a socket this actor holds. */
static step
run_held(run *r, uint32_t bits, bool adopted)
{
    io_slot *s = r->s;
    step st;

    if (adopted) {
        tr_io_event ev = {.kind = TR_IO_ADOPTED};
        if ((st = deliver(r, &ev)) != STEP_DONE) {
            return st;
        }
    }
    if ((bits & RD_END) || s->end_reason != TR_IO_END_NONE) {
        if (s->end_reason != TR_IO_END_NONE) {
            return end_conn(r, s->end_reason, s->end_err);
        }
    }
    switch (s->kind) {
    case IO_CONN:
        return conn_run(r, bits);
    case IO_LISTENER:
        return listener_run(r, bits);
    case IO_WATCH:
        return watch_run(r, bits);
    default:
        return STEP_DONE;
    }
}

/* A give made while input was borrowed: carry it out now that the
 * handler has returned. The receiver may run at once: nothing here
 * touches the slot's holder fields afterwards. */
static void
finish_give(run *r, bool ended)
{
    io_slot *s = r->s;
    uint64_t to = s->give_to;

    s->give_to = 0;
    if (!ended) {
        (void)tr__actor_cancel_exit(r->ctx, &s->exit);
    }
    tr__io_hand_over(s, to);
}

bool
tr__io_hook_run(tr_ctl_hook *h, tr_ctx *ctx, void *state, uint64_t *handled)
{
    io_slot *s = tr_container_of(h, io_slot, hook);
    run r = {.s = s, .ctx = ctx, .state = state, .handled = handled};
    bool adopted = false;
    step st = STEP_DONE;

    /* seq_cst: see loop.c. From here a poster may queue the notification
     * again, even while this run goes on. */
    tr_store_seqcst(&s->pending, 0);
    uint64_t gen = tr_load_acq(&s->gen);
    if (!(gen & 1u)) {
        tr__io_unref(s); /* closed while the notification waited */
        return false;
    }
    r.h = tr__io_handle(s);
    if (tr_load_acq(&s->owner) != ctx->self) {
        /* Given away after it was queued here: pass it on. */
        tr__io_arm(s);
        tr__io_unref(s);
        return false;
    }
    if (tr_load_acq(&s->held_by) != ctx->self) {
        tr_store_rel(&s->held_by, ctx->self);
        tr__actor_on_exit(ctx, &s->exit);
        adopted = true;
    }
    /* seq_cst: see loop.c. */
    uint32_t bits = tr_xchg_seqcst(&s->ready, 0);
    st = run_held(&r, bits, adopted);
    if (tr_load_relaxed(&s->gen) != gen) {
        if (s->in != NULL) {
            /* Closed while a handler borrowed its input (sock.c). */
            in_free(s);
        }
    } else if (s->give_to != 0) {
        finish_give(&r, st == STEP_ENDED);
    } else if (st == STEP_MORE) {
        tr__io_arm(s);
    }
    tr__io_unref(s);
    return st == STEP_ENDED;
}

void
tr__io_hook_drop(tr_ctl_hook *h)
{
    io_slot *s = tr_container_of(h, io_slot, hook);

    /* The actor it was queued to ended first. If the socket is still
     * open it was given away meanwhile: queue it to its owner (or close
     * it, if that one ended too: tr__io_arm). */
    tr_store_seqcst(&s->pending, 0);
    if (tr_load_acq(&s->gen) & 1u) {
        tr__io_arm(s);
    }
    tr__io_unref(s);
}
