/* The socket tests' probe actor; see io_probe.h. */
#include "unit/io_probe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct probe_state {
    probe_rec *rec;
    probe_mode mode;
    tr_addr to;
    /* The data a handler read, checked after a close or a give: the
     * borrowed bytes must stay readable until the handler returns. */
    char after[PROBE_DATA];
} probe_state;

static void
record(probe_rec *r, const tr_io_event *ev)
{
    pthread_mutex_lock(&r->mu);
    if (r->nev < PROBE_MAX_EVENTS) {
        ev_rec *e = &r->evs[r->nev++];
        memset(e, 0, sizeof(*e));
        e->kind = ev->kind;
        e->reason = ev->reason;
        e->err = ev->err;
        e->code = ev->code;
        e->io = ev->io;
        e->peer = ev->peer;
        e->ready = ev->ready;
        e->len = ev->len;
        if (ev->kind == TR_IO_DATA) {
            size_t k = ev->len < PROBE_DATA - 1 ? ev->len : PROBE_DATA - 1;
            memcpy(e->data, ev->data, k);
        }
    }
    if (ev->kind == TR_IO_DATA) {
        size_t need = r->nstream + ev->len + 1;
        if (need > r->capstream) {
            size_t cap = r->capstream != 0 ? r->capstream : 4096;
            while (cap < need) {
                cap *= 2;
            }
            r->stream = realloc(r->stream, cap);
            r->capstream = cap;
        }
        memcpy(r->stream + r->nstream, ev->data, ev->len);
        r->nstream += ev->len;
    }
    pthread_mutex_unlock(&r->mu);
}

static void
append_nl(probe_rec *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->nstream + 1 <= r->capstream) {
        r->stream[r->nstream++] = '\n';
    }
    pthread_mutex_unlock(&r->mu);
}

static int
probe_init(tr_ctx *ctx, void *state, const void *arg)
{
    probe_state *p = state;
    const probe_arg *a = arg;

    (void)ctx;
    if (a != NULL) {
        p->rec = a->rec;
        p->mode = a->mode;
    }
    return TR_OK;
}

/* What an accepted echo probe gets as its start argument. */
static probe_arg echo_arg = {NULL, PROBE_ECHO};

static void
echo(tr_ctx *ctx, probe_state *p, const tr_io_event *ev)
{
    int rc;
    if (ev->len == 0 && ev->data == NULL) {
        return;
    }
    /* The framing is the connection's: the probe echoes by what the
     * user pointer says (1 lines, 2 frames, else raw). */
    uintptr_t framing = (uintptr_t)ev->user;
    if (framing == 1) {
        struct iovec v[2] = {{(void *)ev->data, ev->len}, {"\n", 1}};
        rc = tr_io_writev(ctx, ev->io, v, 2);
    } else if (framing == 2) {
        unsigned char h[4] = {
            (unsigned char)(ev->len >> 24), (unsigned char)(ev->len >> 16),
            (unsigned char)(ev->len >> 8), (unsigned char)ev->len};
        struct iovec v[2] = {{h, 4}, {(void *)ev->data, ev->len}};
        rc = tr_io_writev(ctx, ev->io, v, 2);
    } else {
        rc = tr_io_write(ctx, ev->io, ev->data, ev->len);
    }
    if (rc != TR_OK && p->rec != NULL) {
        pthread_mutex_lock(&p->rec->mu);
        p->rec->write_fail++;
        pthread_mutex_unlock(&p->rec->mu);
    }
}

static int
on_io(tr_ctx *ctx, probe_state *p, const tr_io_event *ev)
{
    if (p->rec != NULL) {
        record(p->rec, ev);
        if (ev->kind == TR_IO_DATA && (uintptr_t)ev->user == 1) {
            append_nl(p->rec);
        }
    }
    if (ev->kind == TR_IO_DATA && p->mode == PROBE_ECHO) {
        echo(ctx, p, ev);
    }
    if (ev->kind == TR_IO_DATA &&
        (p->mode == PROBE_GIVE_ON_DATA || p->mode == PROBE_GIVE_AND_STOP ||
         p->mode == PROBE_CLOSE_ON_DATA)) {
        probe_mode m = p->mode;
        int rc = m == PROBE_CLOSE_ON_DATA ? tr_io_close(ctx, ev->io)
                                          : tr_io_give(ctx, ev->io, p->to);
        p->mode = PROBE_RECORD;
        /* Still borrowed: read it again now (ASan checks the bytes). */
        size_t k = ev->len < PROBE_DATA - 1 ? ev->len : PROBE_DATA - 1;
        memcpy(p->after, ev->data, k);
        p->after[k] = '\0';
        if (rc != TR_OK && p->rec != NULL) {
            pthread_mutex_lock(&p->rec->mu);
            p->rec->write_fail++;
            pthread_mutex_unlock(&p->rec->mu);
        }
        if (m == PROBE_GIVE_AND_STOP) {
            return tr_stop(ctx);
        }
    }
    if (ev->kind == TR_IO_READY && p->mode == PROBE_READ_FD) {
        /* The watched descriptor is a pipe whose read end the user
         * pointer carries (as fd + 1). */
        int fd = (int)(uintptr_t)ev->user - 1;
        char buf[512];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
            tr_io_event d = {.kind = TR_IO_DATA, .data = buf, .len = (size_t)n};
            record(p->rec, &d);
        }
    }
    return TR_OK;
}

static int
probe_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    probe_state *p = state;
    probe_res res = {0};
    int after = 0;

    if (msg->type == TR_MSG_IO) {
        return on_io(ctx, p, msg->data);
    }
    if (msg->type == PROBE_MSG_MARK && msg->size == sizeof(int) &&
        p->rec != NULL) {
        tr_io_event mark = {.kind = PROBE_MARK};
        mark.len = (size_t) * (const int *)msg->data;
        record(p->rec, &mark);
        return TR_OK;
    }
    if (msg->type == PROBE_MSG_SLEEP && msg->size == sizeof(int)) {
        usleep((useconds_t)(*(const int *)msg->data * 1000));
        return TR_OK;
    }
    if (!tr_msg_is_call(ctx, msg) || msg->size != sizeof(probe_cmd)) {
        return TR_OK;
    }
    const probe_cmd *c = msg->data;
    switch (c->op) {
    case OP_LISTEN:
    case OP_LISTEN_UNIX: {
        static const tr_dispatch rowless = {.handlers = NULL, .len = 3};
        static const tr_behaviour rowless_acceptor = {.name = "rowless",
                                                      .dispatch = &rowless};
        static const tr_spawn_opts too_big = {.mailbox_cap = UINT32_MAX};
        tr_io_listen_opts lo = {.backlog = c->backlog, .conn = c->opts};
        if (c->spawn) {
            lo.accept_behaviour = &probe_behaviour;
            lo.accept_arg = &echo_arg;
        }
        if (c->bad_acceptor == 1) {
            lo.accept_behaviour = &rowless_acceptor;
        } else if (c->bad_acceptor == 2) {
            lo.accept_behaviour = &probe_behaviour;
            lo.accept_spawn = &too_big;
        }
        res.rc = c->op == OP_LISTEN
                     ? tr_io_listen(ctx, c->host, c->port, &lo, &res.io)
                     : tr_io_listen_unix(ctx, c->host, &lo, &res.io);
        if (res.rc == TR_OK && c->op == OP_LISTEN) {
            (void)tr_io_port(tr_ctx_system(ctx), res.io, &res.port);
        }
        break;
    }
    case OP_CONNECT:
        res.rc =
            tr_io_connect(ctx, c->host, c->port, &c->opts, c->timeout, &res.io);
        break;
    case OP_CONNECT_UNIX:
        res.rc =
            tr_io_connect_unix(ctx, c->host, &c->opts, c->timeout, &res.io);
        break;
    case OP_WRITE:
        res.rc = tr_io_write(ctx, c->io, c->data, c->len);
        break;
    case OP_WRITEV: {
        struct iovec *v =
            calloc(c->nbufs > 2 ? (size_t)c->nbufs : 2, sizeof(*v));
        int n = c->nbufs;
        if (v == NULL) {
            res.rc = TR_ENOMEM;
            break;
        }
        if (c->len == 0) {
            /* Never read: the lengths are refused first. */
            v[0] = (struct iovec){(void *)c->data, SIZE_MAX};
            v[1] = (struct iovec){(void *)c->data, 2};
            n = 2;
        }
        for (int i = 0; c->len != 0 && i < n; i++) {
            v[i] = (struct iovec){(void *)&c->data[(size_t)i % c->len], 1};
        }
        res.rc = tr_io_writev(ctx, c->io, v, n);
        free(v);
        break;
    }
    case OP_WRITE_UNTIL:
        for (;;) {
            res.rc = tr_io_write(ctx, c->io, c->data, c->len);
            if (res.rc != TR_OK) {
                break;
            }
            res.n += c->len;
        }
        break;
    case OP_CLOSE:
        res.rc = tr_io_close(ctx, c->io);
        break;
    case OP_PAUSE:
        res.rc = tr_io_pause(ctx, c->io);
        break;
    case OP_RESUME:
        res.rc = tr_io_resume(ctx, c->io);
        break;
    case OP_GIVE:
        res.rc = tr_io_give(ctx, c->io, c->to);
        break;
    case OP_SHUTDOWN:
        res.rc = tr_io_shutdown(ctx, c->io);
        break;
    case OP_WATCH:
        res.rc = tr_io_watch(ctx, c->fd, c->events, &res.io);
        if (res.rc == TR_OK) {
            (void)tr_io_set_user(ctx, res.io, (void *)(uintptr_t)(c->fd + 1));
        }
        break;
    case OP_BUFFERED:
        res.rc = tr_io_buffered(ctx, c->io, &res.n);
        break;
    case OP_FAIL:
        after = 1;
        break;
    case OP_STOP:
        after = 2;
        break;
    case OP_SET_USER:
        res.rc = tr_io_set_user(ctx, c->io, (void *)(uintptr_t)c->len);
        break;
    case OP_MODE:
        p->mode = c->mode;
        p->to = c->to;
        break;
    default:
        res.rc = TR_EINVAL;
        break;
    }
    if (tr_reply(ctx, msg, &res, sizeof(res)) != TR_OK) {
        return TR_OK;
    }
    if (after == 1) {
        return tr_fail(ctx, -77, "asked to fail");
    }
    if (after == 2) {
        return tr_stop(ctx);
    }
    return TR_OK;
}

const tr_behaviour probe_behaviour = {
    .name = "io_probe",
    .state_size = sizeof(probe_state),
    .init = probe_init,
    .handle = probe_handle,
};

probe_rec *
probe_rec_new(void)
{
    probe_rec *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void
probe_rec_free(probe_rec *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r->stream);
    free(r);
}

tr_addr
probe_spawn(tr_system *sys, probe_rec *rec, probe_mode mode,
            const tr_spawn_opts *opts)
{
    probe_arg a = {rec, mode};
    tr_addr addr = TR_ADDR_NONE;

    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &probe_behaviour, &a, opts, &addr), TR_OK);
    return addr;
}

probe_res
probe_do(tr_system *sys, tr_addr probe, const probe_cmd *c)
{
    probe_res res = {.rc = -999};
    size_t len = 0;

    assert_int_equal(tr_test_ask(tr_system_ctx(sys), probe, 1, c, sizeof(*c),
                                 &res, sizeof(res), &len, 10000),
                     TR_OK);
    return res;
}

int
probe_count(probe_rec *r, tr_io_event_kind kind)
{
    int n = 0;

    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nev; i++) {
        n += r->evs[i].kind == kind;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

typedef struct wait_arg {
    probe_rec *r;
    tr_io_event_kind kind;
    int n;
    size_t bytes;
} wait_arg;

static bool
has_events(void *p)
{
    wait_arg *w = p;
    return probe_count(w->r, w->kind) >= w->n;
}

bool
probe_wait(probe_rec *r, tr_io_event_kind kind, int n, unsigned timeout_ms)
{
    wait_arg w = {r, kind, n, 0};
    return tr_test_wait_until(has_events, &w, timeout_ms);
}

bool
probe_nth(probe_rec *r, tr_io_event_kind kind, int i, ev_rec *out)
{
    bool found = false;

    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < r->nev; k++) {
        if (r->evs[k].kind == kind && i-- == 0) {
            *out = r->evs[k];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

static bool
has_stream(void *p)
{
    wait_arg *w = p;
    pthread_mutex_lock(&w->r->mu);
    bool ok = w->r->nstream >= w->bytes;
    pthread_mutex_unlock(&w->r->mu);
    return ok;
}

bool
probe_wait_stream(probe_rec *r, size_t n, unsigned timeout_ms)
{
    wait_arg w = {r, 0, 0, n};
    return tr_test_wait_until(has_stream, &w, timeout_ms);
}
