/*
 * The HTTP side of the live endpoint (libevent's evhttp, on the loop
 * thread): the routes, the Host check, and the /events clients.
 *
 * Read-only: GET and HEAD only (anything else gets 405), and no route
 * changes anything. Requests are small: headers past 8 KiB or a body
 * past 1 KiB are refused by evhttp, a request it cannot parse gets 400,
 * and a connection idle for 10 s is closed. A request must also arrive
 * whole within REQUEST_S of its connection's opening or of the previous
 * reply's end: a client that drips its headers a byte at a time
 * (slowloris) never looks idle. And the endpoint holds at most
 * max_watchers + SPARE_CONNS connections: past that it stops accepting,
 * and the next wait in the kernel's backlog until one ends. So a bad
 * client costs one connection for a few seconds, and never the endpoint
 * or the process's descriptors. A reply goes out whole even to a client
 * that shut down its side after its request (send_reply).
 *
 * Connections. evhttp (libevent 2.1) has no hook for a connection's
 * opening or end, and no cap (evhttp_set_max_connections came in 2.2);
 * the one place a connection shows itself is the callback that makes its
 * bufferevent. on_accept makes it as evhttp would, and keeps it in a slot
 * with a reference of ours; on_request and the reply's completion
 * (on_replied) mark whether a request is awaited. A sweep each second
 * (each SWEEP_FULL_MS while every slot is taken, so that a connection
 * waiting in the backlog is not kept waiting long after one ends) cuts
 * the requests too long in coming (it shuts the socket down, and
 * evhttp frees the connection as if the client had left) and frees the
 * slots of the connections evhttp has let go: bufferevent_free clears the
 * callbacks of the bufferevent, which our reference keeps alive, and
 * evhttp never leaves one it uses without an event callback.
 *
 * DNS rebinding. A page on a hostile domain that resolves to 127.0.0.1
 * could otherwise read the endpoint from a browser; its requests carry
 * that domain in Host, so any Host other than the bound address or
 * localhost (with our port, or none; a port is digits only) gets 403, and
 * so does a target that names another host (an absolute URI, which a
 * server is to believe over Host). A request with two Host headers gets
 * 400.
 *
 * /events clients (watchers) each have a bounded buffer: an event that
 * would go past `watcher_buffer` bytes queued for one is not queued, and
 * the client is told how many it lost ("event: lost") once it has room.
 * The bytes counted are the bytes held: a watcher's text waits in a buffer
 * of its own, packed, and goes to the connection one chunk at a time, once
 * the previous chunk is written (an event handed to evhttp alone takes an
 * allocation of its own, 1 KiB at least for some 200 bytes, and a stalled
 * watcher held six times its `watcher_buffer`). Their sockets get a small
 * send buffer too, so that the kernel does not hide a slow client for
 * long. A client that goes away is noticed by evhttp (it watches for the
 * close while it sends) or, at the latest, by the next heartbeat's write;
 * what one sends is read, and held, up to WATCHER_INPUT bytes only.
 */
#include "inspect/live.h"

#include <troupe/error.h>

#include "common/tr_alloc.h"
#include "common/tr_assert.h"
#include "common/tr_park.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum {
    MAX_HEADERS = 8192,
    MAX_BODY = 1024,
    IDLE_S = 10,
    /* A request arrives whole within this many seconds of its
     * connection's opening or of the previous reply's end, or the
     * connection is cut. */
    REQUEST_S = 10,
    /* Connections at once beyond max_watchers. */
    SPARE_CONNS = 64,
    /* While every slot is taken, the sweep that finds the ones let go
     * (and so lets the next connection in) runs this often. */
    SWEEP_FULL_MS = 50,
    /* What a watcher may send after its request before it is not read. */
    WATCHER_INPUT = 4096,
};

/* ---- binding ---- */

/* The port in `s` (`len` bytes): digits only, at most 65535. strtoul would
 * take a sign or leading spaces too ("localhost:+8080"). */
static bool
parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned long p = 0;

    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        p = p * 10 + (unsigned long)(s[i] - '0');
        if (p > 65535) {
            return false;
        }
    }
    *port = (uint16_t)p;
    return true;
}

/* "host:port" or "[v6]:port" into its parts; false when it does not
 * parse, or the host is not numeric (a name such as "localhost" would be
 * resolved, and a page asked for by the address it stands for would meet
 * host_ok's 403). */
static bool
split_addr(const char *addr, char *host, size_t cap, uint16_t *port)
{
    const char *colon;
    size_t hlen;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':') {
            return false;
        }
        hlen = (size_t)(end - addr - 1);
        if (hlen == 0 || hlen >= cap) {
            return false;
        }
        memcpy(host, addr + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon == addr) {
            return false;
        }
        hlen = (size_t)(colon - addr);
        if (hlen >= cap || memchr(addr, ':', hlen) != NULL) {
            return false;
        }
        memcpy(host, addr, hlen);
    }
    host[hlen] = '\0';
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(addr[0] == '[' ? AF_INET6 : AF_INET, host, bin) != 1) {
        return false;
    }
    return parse_port(colon + 1, strlen(colon + 1), port);
}

/* ---- connections ---- */

/* The slot of `bev`, or with NULL a free one; NULL if there is none. */
static tr_conn *
conn_of(tr_live *lv, const struct bufferevent *bev)
{
    for (uint32_t i = 0; i < lv->capconns; i++) {
        if (lv->conns[i].bev == bev) {
            return &lv->conns[i];
        }
    }
    return NULL;
}

static void
release(tr_live *lv, tr_conn *c)
{
    bufferevent_decref(c->bev);
    c->bev = NULL;
    if (lv->nconns-- == lv->capconns) {
        evconnlistener_enable(evhttp_bound_socket_get_listener(lv->bound));
    }
}

/* Run the sweep each second, or each SWEEP_FULL_MS while every slot is
 * taken; stop it when there are no connections. */
static void
arm_sweep(tr_live *lv)
{
    bool full = lv->nconns == lv->capconns;

    if (lv->nconns == 0) {
        event_del(lv->sweep_ev);
    } else if (full != lv->sweep_full ||
               !event_pending(lv->sweep_ev, EV_TIMEOUT, NULL)) {
        struct timeval period = {.tv_sec = full ? 0 : 1,
                                 .tv_usec = full ? SWEEP_FULL_MS * 1000 : 0};
        event_add(lv->sweep_ev, &period);
        lv->sweep_full = full;
    }
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    tr_live *lv = arg;
    uint64_t now = tr__now_ns();

    (void)fd;
    (void)what;
    for (uint32_t i = 0; i < lv->capconns; i++) {
        tr_conn *c = &lv->conns[i];
        bufferevent_event_cb cb;
        if (c->bev == NULL) {
            continue;
        }
        bufferevent_getcb(c->bev, NULL, NULL, &cb, NULL);
        if (cb == NULL) {
            release(lv, c);
        } else if (c->since_ns != 0 &&
                   now - c->since_ns >= (uint64_t)REQUEST_S * 1000000000u) {
            shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
            c->since_ns = 0;
        }
    }
    arm_sweep(lv);
}

/* evhttp's bufferevent callback: it took a connection. */
static struct bufferevent *
on_accept(struct event_base *base, void *arg)
{
    tr_live *lv = arg;
    /* The one evhttp would make (it closes the socket itself). */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    tr_conn *c = conn_of(lv, NULL);

    /* Untracked only without memory for a bufferevent (evhttp then tries
     * one of its own); a slot is always free, as accepting pauses while
     * none is. */
    if (bev == NULL || c == NULL) {
        return bev;
    }
    bufferevent_incref(bev);
    c->bev = bev;
    c->since_ns = tr__now_ns();
    if (++lv->nconns == lv->capconns) {
        evconnlistener_disable(evhttp_bound_socket_get_listener(lv->bound));
    }
    arm_sweep(lv);
    return bev;
}

/* A reply is written: the connection's next request is awaited. */
static void
on_replied(struct evhttp_request *req, void *arg)
{
    tr_conn *c = arg;

    (void)req;
    c->since_ns = tr__now_ns();
}

static void on_request(struct evhttp_request *req, void *arg);

int
tr__serve_bind(tr_live *lv, const char *addr)
{
    char host[64];
    uint16_t port;

    if (!split_addr(addr, host, sizeof(host), &port)) {
        return TR_EINVAL;
    }
    uint32_t cap = lv->opts.max_watchers > UINT32_MAX - SPARE_CONNS
                       ? UINT32_MAX
                       : lv->opts.max_watchers + SPARE_CONNS;
    lv->conns = tr__calloc(sizeof(tr_conn) * cap);
    if (lv->conns == NULL) {
        return TR_ENOMEM;
    }
    lv->capconns = cap;
    lv->sweep_ev = event_new(lv->loop.base, -1, EV_PERSIST, on_sweep, lv);
    lv->http = evhttp_new(lv->loop.base);
    if (lv->sweep_ev == NULL || lv->http == NULL) {
        return TR_ENOMEM;
    }
    evhttp_set_bevcb(lv->http, on_accept, lv);
    evhttp_set_gencb(lv->http, on_request, lv);
    /* Every method reaches on_request, which answers 405 to all but GET
     * and HEAD (evhttp itself would answer 501). */
    evhttp_set_allowed_methods(
        lv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                      EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(lv->http, MAX_HEADERS);
    evhttp_set_max_body_size(lv->http, MAX_BODY);
    evhttp_set_timeout(lv->http, IDLE_S);
    lv->bound = evhttp_bind_socket_with_handle(lv->http, host, port);
    if (lv->bound == NULL) {
        return TR_ESTATE;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(lv->bound),
                    (struct sockaddr *)&ss, &len) != 0) {
        return TR_ESTATE;
    }
    if (ss.ss_family == AF_INET6) {
        lv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        lv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(lv->host, sizeof(lv->host), strchr(host, ':') ? "[%s]" : "%s",
             host);
    return TR_OK;
}

void
tr__serve_close(tr_live *lv)
{
    if (lv->http != NULL) {
        /* Closes every connection; the watchers' close callbacks unlink
         * them. */
        evhttp_free(lv->http);
        lv->http = NULL;
        lv->bound = NULL;
    }
    TR_ASSERT(lv->watchers == NULL);
    lv->nwatchers = 0;
    /* evhttp has let go of every connection: our references go too. */
    for (uint32_t i = 0; i < lv->capconns; i++) {
        if (lv->conns[i].bev != NULL) {
            bufferevent_decref(lv->conns[i].bev);
        }
    }
    tr__free(lv->conns, sizeof(tr_conn) * lv->capconns);
    lv->conns = NULL;
    lv->capconns = 0;
    lv->nconns = 0;
    lv->sweep_full = false;
    if (lv->sweep_ev != NULL) {
        event_free(lv->sweep_ev);
        lv->sweep_ev = NULL;
    }
}

/* ---- replies ---- */

static void
common_headers(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
}

/* Reply `code` with `b` (freed; may be NULL): for HEAD only its length
 * (evhttp would send the body too, and a keep-alive client would read it
 * as the next response).
 *
 * Then the connection stops reading until the reply is written: evhttp
 * leaves reading on while it writes, only to notice a close, and takes
 * any end of input for one, so a client that sent its request and
 * shut down its side (nc -N, some HTTP/1.0 clients) lost all but the
 * first write (16 KiB) of a longer reply. A client that goes away
 * meanwhile is noticed by the write failing; evhttp reads again (the
 * next request, pipelined or not) once the reply is out. */
static void
send_reply(struct evhttp_request *req, int code, const char *reason,
           struct evbuffer *b)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);

    if (b != NULL && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[32];
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(b));
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Length", len);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    evhttp_send_reply(req, code, reason, b);
    if (b != NULL) {
        evbuffer_free(b);
    }
    if (conn != NULL) {
        bufferevent_disable(evhttp_connection_get_bufferevent(conn), EV_READ);
    }
}

static void
send_error(tr_live *lv, struct evhttp_request *req, int code,
           const char *reason)
{
    struct evbuffer *b = evbuffer_new();

    lv->rejected++;
    common_headers(req, "text/plain; charset=utf-8");
    if (b != NULL) {
        evbuffer_add_printf(b, "%d %s\n", code, reason);
    }
    send_reply(req, code, reason, b);
}

static void
free_sink(const void *data, size_t len, void *extra)
{
    (void)len;
    tr__free((void *)data, (size_t)(uintptr_t)extra);
}

/* Reply 200 with the sink's text (taken: freed when sent). */
static void
send_sink(tr_live *lv, struct evhttp_request *req, tr_sink *k, const char *type)
{
    if (k->oom || k->p == NULL) {
        tr__sink_free(k);
        send_error(lv, req, 503, "Out of memory");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || evbuffer_add_reference(b, k->p, k->len, free_sink,
                                            (void *)(uintptr_t)k->cap) != 0) {
        tr__sink_free(k);
        if (b != NULL) {
            evbuffer_free(b);
        }
        send_error(lv, req, 503, "Out of memory");
        return;
    }
    common_headers(req, type);
    send_reply(req, 200, "OK", b);
}

/* ---- the documents ---- */

static void
render_system(tr_live *lv, tr_sink *k)
{
    tr_system *sys = lv->sys;
    tr_system_stats st;
    uint64_t now = tr__now_ns();

    if (tr_system_stats_get(sys, &st) != TR_OK) {
        memset(&st, 0, sizeof(st));
    }
    tr__sink_put(k,
                 ",\"system\":{\"now_ms\":%" PRIu64 ",\"workers\":%u,"
                 "\"live_actors\":%" PRIu64 ",\"spawned\":%" PRIu64
                 ",\"failed\":%" PRIu64 ",\"handled\":%" PRIu64
                 ",\"dead_letters\":%" PRIu64 ",\"calls_overdue\":%" PRIu64
                 ",\"watchers\":%u,\"workers_detail\":[",
                 tr_now_ms(sys), st.workers, st.live_actors, st.spawned,
                 st.failed, st.messages_handled, st.dead_letters,
                 tr_load_relaxed(&sys->calls_overdue), lv->nwatchers);
    for (unsigned i = 0; i < lv->nworkers; i++) {
        tr_worker_stats ws;
        tr__sched_worker_stats(sys->sched, i, now, &ws);
        tr__sink_put(k,
                     "%s{\"busy_ns\":%" PRIu64 ",\"parks\":%" PRIu64
                     ",\"steals\":%" PRIu64 ",\"run_queue\":%u}",
                     i == 0 ? "" : ",", ws.busy_ns, ws.parks, ws.steals,
                     ws.runq_len);
    }
    tr__sink_put(k, "],\"warnings\":[");
    bool first = true;
    for (uint32_t i = 0; i < lv->nws; i++) {
        const tr_wstate *w = &lv->ws[i];
        if (!w->raised) {
            continue;
        }
        tr__sink_put(k, "%s{\"kind\":\"%s\",\"path\":\"", first ? "" : ",",
                     tr__warn_names[w->kind]);
        tr__sink_escaped(k, w->path);
        tr__sink_put(k, "\",\"value\":%.3f,\"threshold\":%.3f}", w->value,
                     w->threshold);
        first = false;
    }
    tr__sink_put(k, "]}");
}

static void
route_tree(tr_live *lv, struct evhttp_request *req, tr_inspect_format f)
{
    tr_snap ns = {0};
    tr_sink k = {NULL, 0, 0, true, false};

    tr__snap_collect(lv->sys, &ns, f == TR_INSPECT_JSON);
    if (ns.oom) {
        tr__snap_free(&ns);
        send_error(lv, req, 503, "Out of memory");
        return;
    }
    if (f == TR_INSPECT_JSON) {
        tr__sink_put(&k, "{\"version\":%d,\"nodes\":[", TR_INSPECT_VERSION);
        for (size_t i = 0; i < ns.n; i++) {
            tr__render_json(&k, &ns.v[i], i == 0, true);
        }
        tr__sink_put(&k, "],\"omitted\":0");
        render_system(lv, &k);
        tr__sink_put(&k, "}\n");
    } else if (f == TR_INSPECT_DOT) {
        tr__sink_put(&k, "digraph troupe {\n");
        for (size_t i = 0; i < ns.n; i++) {
            tr__render_dot(&k, &ns.v[i], tr__snap_parent(&ns, i));
        }
        tr__sink_put(&k, "}\n");
    } else {
        for (size_t i = 0; i < ns.n; i++) {
            tr__render_text(&k, &ns.v[i]);
        }
        if (ns.n == 0) {
            tr__sink_put(&k, "(no supervision tree)\n");
        }
    }
    tr__snap_free(&ns);
    send_sink(lv, req, &k,
              f == TR_INSPECT_JSON  ? "application/json"
              : f == TR_INSPECT_DOT ? "text/vnd.graphviz; charset=utf-8"
                                    : "text/plain; charset=utf-8");
}

static void
route_metrics(tr_live *lv, struct evhttp_request *req)
{
    tr_sink k = {NULL, 0, 0, true, false};

    tr__metrics_render(lv, &k);
    send_sink(lv, req, &k, "text/plain; version=0.0.4; charset=utf-8");
}

static void
route_page(tr_live *lv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        send_error(lv, req, 503, "Out of memory");
        return;
    }
    evbuffer_add_reference(b, tr__page_html, tr__page_html_len, NULL, NULL);
    common_headers(req, "text/html; charset=utf-8");
    /* Everything the page needs is in it: nothing may come from
     * elsewhere, and it talks only to us. */
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; "
                      "style-src 'unsafe-inline'; connect-src 'self'; "
                      "img-src data:; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'");
    send_reply(req, 200, "OK", b);
}

/* ---- /events ---- */

static void
unlink_watcher(tr_live *lv, tr_watcher *w)
{
    for (tr_watcher **p = &lv->watchers; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            lv->nwatchers--;
            break;
        }
    }
    evbuffer_free(w->out);
    tr__free(w, sizeof(*w));
}

static void
on_watcher_close(struct evhttp_connection *conn, void *arg)
{
    tr_watcher *w = arg;
    tr_live *lv = w->lv;

    (void)conn;
    /* A client that went away: evhttp has let go of the reply in
     * progress (no connection any more) and leaves it to us to end, which
     * frees it. When evhttp_free closes the connection, the reply is
     * still its own and goes with it. */
    if (evhttp_request_get_connection(w->req) == NULL) {
        evhttp_send_reply_end(w->req);
    }
    unlink_watcher(lv, w);
    if (!lv->closing) {
        tr__live_judge_watch(lv);
    }
}

/* What `w` holds: its own text and what the connection has yet to write
 * (the chunk in progress, with its framing). */
static size_t
queued(const tr_watcher *w)
{
    struct evhttp_connection *c = evhttp_request_get_connection(w->req);
    struct bufferevent *bev =
        c != NULL ? evhttp_connection_get_bufferevent(c) : NULL;
    return evbuffer_get_length(w->out) +
           (bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0);
}

static void flush(tr_watcher *w);

static void
on_written(struct evhttp_connection *conn, void *arg)
{
    tr_watcher *w = arg;

    (void)conn;
    w->writing = false;
    flush(w);
}

/* Hand `w`'s text to the connection as one chunk, unless the previous one
 * is still being written (on_written comes when it is). */
static void
flush(tr_watcher *w)
{
    if (w->writing || evbuffer_get_length(w->out) == 0) {
        return;
    }
    w->writing = true;
    evhttp_send_reply_chunk_with_cb(w->req, w->out, on_written, w);
}

static void send_text(tr_watcher *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
send_text(tr_watcher *w, const char *fmt, ...)
{
    /* An event with its id and name, or a shorter line. */
    char text[EVENT_TEXT + 128];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(text) ||
        evbuffer_add(w->out, text, (size_t)n) != 0) {
        w->lost++;
        return;
    }
    flush(w);
}

/* Tell `w` what it lost, if it has room now; false when it has none. */
static bool
catch_up(tr_live *lv, tr_watcher *w)
{
    if (queued(w) >= lv->opts.watcher_buffer) {
        return false;
    }
    if (w->lost != 0) {
        send_text(w, "event: lost\ndata: {\"lost\":%" PRIu64 "}\n\n", w->lost);
        w->lost = 0;
    }
    return true;
}

void
tr__serve_fanout(tr_live *lv, const tr_event *ev)
{
    for (tr_watcher *w = lv->watchers; w != NULL; w = w->next) {
        if (!catch_up(lv, w)) {
            w->lost++;
            lv->events_lost++;
            continue;
        }
        send_text(w, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ev->seq,
                  ev->type, ev->data);
    }
}

void
tr__serve_heartbeat(tr_live *lv)
{
    for (tr_watcher *w = lv->watchers; w != NULL; w = w->next) {
        if (catch_up(lv, w)) {
            send_text(w, ": ping\n\n");
        }
    }
}

static void
route_events(tr_live *lv, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        common_headers(req, "text/event-stream");
        send_reply(req, 200, "OK", NULL);
        return;
    }
    if (lv->nwatchers >= lv->opts.max_watchers) {
        send_error(lv, req, 503, "Too many watchers");
        return;
    }
    tr_watcher *w = tr__calloc(sizeof(*w));
    struct evbuffer *out = evbuffer_new();
    if (w == NULL || out == NULL) {
        tr__free(w, sizeof(*w));
        if (out != NULL) {
            evbuffer_free(out);
        }
        send_error(lv, req, 503, "Out of memory");
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    int fd = bufferevent_getfd(bev);
    if (fd >= 0) {
        int size =
            (int)(lv->opts.watcher_buffer < 4096 ? 4096
                                                 : lv->opts.watcher_buffer);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    /* evhttp reads on, to notice the client's close, and keeps whatever
     * it reads (there is no request to read any more): what a client
     * sends after its request would pile up for as long as it sends. Past
     * a few KiB reading stops (the kernel's buffers, then the client,
     * wait); such a client's close is noticed by a write instead. */
    bufferevent_setwatermark(bev, EV_READ, 0, WATCHER_INPUT);
    w->lv = lv;
    w->req = req;
    w->out = out;
    w->next = lv->watchers;
    lv->watchers = w;
    lv->nwatchers++;
    evhttp_connection_set_closecb(conn, on_watcher_close, w);
    common_headers(req, "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    pthread_mutex_lock(&lv->lock);
    uint64_t last = lv->tail;
    pthread_mutex_unlock(&lv->lock);
    send_text(w,
              "retry: 2000\nevent: hello\ndata: {\"seq\":%" PRIu64
              ",\"now_ms\":%" PRIu64 "}\n\n",
              last, tr_now_ms(lv->sys));
    tr__live_judge_watch(lv);
}

/* ---- requests ---- */

/* Whether `name` (`len` bytes, from a Host header or a URI) names us: the
 * bound address or localhost. */
static bool
name_ok(const tr_live *lv, const char *name, size_t len)
{
    return (len == strlen(lv->host) && strncasecmp(name, lv->host, len) == 0) ||
           (len == strlen("localhost") &&
            strncasecmp(name, "localhost", len) == 0);
}

/* Whether the Host header names us, with our port or none. */
static bool
host_ok(const tr_live *lv, const char *host)
{
    const char *end = host + strlen(host);
    const char *colon =
        host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    uint16_t port;

    if (colon != NULL && host[0] == '[') {
        colon++;
    }
    if (colon != NULL) {
        if (!parse_port(colon + 1, (size_t)(end - colon - 1), &port) ||
            port != lv->port) {
            return false;
        }
        end = colon;
    }
    return name_ok(lv, host, (size_t)(end - host));
}

/* Whether the request's target is ours: a path, or an absolute URI that
 * names us ("http://127.0.0.1:port/tree.json"). A target that names a
 * host ("http://evil.example/", or "//evil.example/" read as one) is
 * judged as the Host header is: evhttp would route it by its path alone,
 * and a server is to take its host over the Host header's (RFC 9112). */
static bool
target_ok(const tr_live *lv, const struct evhttp_uri *u)
{
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    int port = evhttp_uri_get_port(u);

    if (scheme == NULL && host == NULL) {
        return true;
    }
    return scheme != NULL && strcasecmp(scheme, "http") == 0 && host != NULL &&
           evhttp_uri_get_userinfo(u) == NULL &&
           name_ok(lv, host, strlen(host)) && (port < 0 || port == lv->port);
}

/* How many Host headers `req` has; the first in `*host` (NULL if none). */
static unsigned
host_headers(struct evhttp_request *req, const char **host)
{
    unsigned n = 0;

    *host = NULL;
    for (const struct evkeyval *h =
             evhttp_request_get_input_headers(req)->tqh_first;
         h != NULL; h = h->next.tqe_next) {
        if (strcasecmp(h->key, "Host") == 0 && n++ == 0) {
            *host = h->value;
        }
    }
    return n;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    tr_live *lv = arg;
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;

    tr__live_touched(lv);
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    tr_conn *c = conn != NULL
                     ? conn_of(lv, evhttp_connection_get_bufferevent(conn))
                     : NULL;
    if (c != NULL) {
        /* It arrived whole; the next is awaited once this one's reply is
         * written. */
        c->since_ns = 0;
        evhttp_request_set_on_complete_cb(req, on_replied, c);
    }
    if (uri == NULL || path == NULL) {
        send_error(lv, req, 400, "Bad Request");
        tr__live_judge_watch(lv);
        return;
    }
    /* Two Host headers make a request malformed (RFC 9112): we would
     * judge it by one, something in front of us perhaps by the other. */
    const char *host;
    unsigned hosts = host_headers(req, &host);
    if (hosts > 1) {
        send_error(lv, req, 400, "Bad Request");
        tr__live_judge_watch(lv);
        return;
    }
    if (hosts == 0 || !host_ok(lv, host) || !target_ok(lv, u)) {
        send_error(lv, req, 403, "Forbidden");
        tr__live_judge_watch(lv);
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          "GET, HEAD");
        send_error(lv, req, 405, "Method Not Allowed");
        tr__live_judge_watch(lv);
        return;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        route_page(lv, req);
    } else if (strcmp(path, "/tree.json") == 0) {
        route_tree(lv, req, TR_INSPECT_JSON);
    } else if (strcmp(path, "/tree.dot") == 0) {
        route_tree(lv, req, TR_INSPECT_DOT);
    } else if (strcmp(path, "/tree.txt") == 0) {
        route_tree(lv, req, TR_INSPECT_TEXT);
    } else if (strcmp(path, "/metrics") == 0) {
        route_metrics(lv, req);
    } else if (strcmp(path, "/events") == 0) {
        route_events(lv, req);
        return; /* judged there */
    } else {
        send_error(lv, req, 404, "Not Found");
    }
    tr__live_judge_watch(lv);
}
