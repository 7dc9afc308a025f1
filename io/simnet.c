/*
 * The in-memory network of a simulated system: TCP as the I/O module sees
 * it, with every event a step of the simulation drawn from its seed.
 *
 * Endpoints. Every listener and every end of a connection is an endpoint,
 * named by its index in `eps` (the simulated slot's `fd`). Indices are
 * handed out in order and never reused, so nothing depends on pointer
 * values; a slot pointer is kept only to post readiness to it. A closed
 * endpoint stays, detached (`slot` NULL), until the network ends: what
 * arrives for it afterwards resets its peer, as a kernel would.
 *
 * Streams. Each connection end queues what it sends (SYN, SYN-ACK, data,
 * FIN) as segments in its own FIFO, each with an arrival time drawn as
 * now plus a latency, never before the segment ahead of it: a stream
 * keeps its order. Only the head of a queue has an event; delivering it
 * schedules the next. A direction holds at most `window` bytes (in flight
 * plus unread by the receiver); a send past it takes what fits, and the
 * sender hears RD_WRITE when the receiver's reads open the window again
 * (an ACK, one latency later).
 *
 * Faults, drawn when a segment is due: loss delays it by the
 * retransmission timeout (a stream never loses bytes silently); a data
 * segment may reset its connection (both ends read ECONNRESET); a
 * segment may start a partition between its two hosts, which holds every
 * segment between them (connects too) until it heals, when each
 * connection across it is reset by a chance or goes on.
 *
 * Events. A binary heap ordered by (time, sequence number): events due at
 * the same time run in the order they were scheduled. An event whose
 * endpoint no longer wants it (a replaced timer, a closed socket, a reset
 * queue) is stale and dropped without a step. Each event that runs is one
 * step (actors/sim.c), described in the step trace.
 */
#include "io/simnet.h"

#include "io/sock.h"

#include "actors/sim.h"
#include "scheduler/timer.h"

#include <troupe/error.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    NONE = -1,
    PPM = 1000000,
    MAX_PARTS = 16,
    FIRST_PORT = 40000, /* ports picked for port 0 and for clients */
    DEFAULT_WINDOW = 65536,
    DEFAULT_RTO_MS = 200,
    DEFAULT_PARTITION_MS = 2000
};

typedef enum seg_kind { SEG_SYN = 1, SEG_SYNACK, SEG_DATA, SEG_FIN } seg_kind;

typedef struct seg {
    struct seg *next;
    uint64_t at; /* when it arrives (ns) */
    seg_kind kind;
    uint32_t len;
    unsigned char data[];
} seg;

typedef enum ep_kind { EP_CONN = 1, EP_LISTENER } ep_kind;

typedef struct sim_ep {
    ep_kind kind;
    uint32_t host; /* its host (an index into `hosts`) */
    uint16_t port;
    int peer;          /* the other end; NONE until the SYN is accepted */
    uint32_t dst_host; /* a connecting end: the host and port it dials */
    uint16_t dst_port;
    io_slot *slot;    /* the socket, NULL until attached and once closed */
    bool open;        /* not closed by its socket */
    bool established; /* the SYN-ACK arrived (or it was accepted) */
    int err;          /* a failed connect's errno */
    bool fin_in;      /* the peer's FIN arrived */
    bool fin_out;     /* this end sent its FIN */
    bool rst;         /* the connection was reset */
    bool want_write;  /* a send was cut short by the window */
    bool seg_sched;   /* the head of `head` has its event */
    seg *head;        /* what this end sent, not yet arrived */
    seg *tail;
    uint64_t inflight; /* data bytes in that queue */
    unsigned char *rx; /* arrived, unread: [rx_start, rx_end) */
    size_t rx_start, rx_end, rx_cap;
    int *backlog; /* a listener's accepted, untaken connections */
    size_t nbacklog, backlog_cap;
    int backlog_max;
    uint64_t timer; /* the armed timer's number; 0: none */
} sim_ep;

typedef enum ev_kind {
    EV_SEG = 1, /* the head segment of `ep` arrives */
    EV_REFUSE,  /* the connect of `ep` is refused */
    EV_TIMER,   /* timer number `arg` of `ep` fires */
    EV_HEAL,    /* partition `arg` ends */
    EV_WAKE     /* the window of `ep` opened */
} ev_kind;

typedef struct sim_ev {
    uint64_t at;
    uint64_t seq;
    ev_kind kind;
    int ep;
    uint64_t arg;
} sim_ev;

typedef struct part {
    uint32_t a, b;
    uint64_t until;
    bool active;
} part;

struct tr_simnet {
    tr_system *sys;
    tr_sim_net cfg; /* defaults filled in */
    sim_ep *eps;
    int neps, eps_cap;
    sim_ev *heap;
    size_t nheap, heap_cap;
    uint64_t seq;
    char **hosts;
    uint32_t nhosts, hosts_cap;
    part parts[MAX_PARTS];
    uint64_t timers;
    uint32_t next_port;
};

static uint64_t
now_ns(const tr_simnet *net)
{
    return tr__timers_now(net->sys->timers);
}

static uint64_t
ms_ns(uint64_t ms)
{
    return ms * UINT64_C(1000000);
}

/* ---- choices ---- */

static uint64_t
latency(tr_simnet *net)
{
    uint64_t lo = net->cfg.latency_min_ms;
    uint64_t hi = net->cfg.latency_max_ms;

    return ms_ns(lo + tr__sim_net_choose(net->sys, hi - lo + 1));
}

/* The high values fire, so that a choice of 0 is no fault. */
static bool
chance(tr_simnet *net, uint32_t ppm)
{
    return ppm != 0 && tr__sim_net_choose(net->sys, PPM) >= PPM - ppm;
}

/* ---- events ---- */

static bool
ev_before(const sim_ev *a, const sim_ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void
schedule(tr_simnet *net, ev_kind kind, int ep, uint64_t arg, uint64_t at)
{
    if (net->nheap == net->heap_cap) {
        size_t cap = net->heap_cap != 0 ? net->heap_cap * 2 : 64;
        sim_ev *h = realloc(net->heap, sizeof(sim_ev) * cap);
        if (h == NULL) {
            /* Out of memory in the test process itself: nothing to
             * simulate with. */
            abort();
        }
        net->heap = h;
        net->heap_cap = cap;
    }
    size_t i = net->nheap++;
    sim_ev ev = {
        .at = at, .seq = net->seq++, .kind = kind, .ep = ep, .arg = arg};
    while (i > 0 && ev_before(&ev, &net->heap[(i - 1) / 2])) {
        net->heap[i] = net->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    net->heap[i] = ev;
}

static sim_ev
pop(tr_simnet *net)
{
    sim_ev top = net->heap[0];
    sim_ev last = net->heap[--net->nheap];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= net->nheap) {
            break;
        }
        if (c + 1 < net->nheap && ev_before(&net->heap[c + 1], &net->heap[c])) {
            c++;
        }
        if (!ev_before(&net->heap[c], &last)) {
            break;
        }
        net->heap[i] = net->heap[c];
        i = c;
    }
    if (net->nheap > 0) {
        net->heap[i] = last;
    }
    return top;
}

static bool
stale(const tr_simnet *net, const sim_ev *ev)
{
    const sim_ep *e = ev->ep != NONE ? &net->eps[ev->ep] : NULL;

    switch (ev->kind) {
    case EV_SEG:
        return e->head == NULL;
    case EV_REFUSE:
    case EV_WAKE:
        return e->slot == NULL;
    case EV_TIMER:
        return e->slot == NULL || e->timer != ev->arg;
    default:
        return false;
    }
}

/* ---- endpoints ---- */

static uint32_t
host_id(tr_simnet *net, const char *name)
{
    for (uint32_t i = 0; i < net->nhosts; i++) {
        if (strcmp(net->hosts[i], name) == 0) {
            return i;
        }
    }
    if (net->nhosts == net->hosts_cap) {
        uint32_t cap = net->hosts_cap != 0 ? net->hosts_cap * 2 : 16;
        char **h = realloc(net->hosts, sizeof(char *) * cap);
        if (h == NULL) {
            abort();
        }
        net->hosts = h;
        net->hosts_cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = malloc(len);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, name, len);
    net->hosts[net->nhosts] = copy;
    return net->nhosts++;
}

static bool
every_host(const char *host)
{
    return host == NULL || host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
           strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0;
}

static int
ep_new(tr_simnet *net, ep_kind kind)
{
    if (net->neps == net->eps_cap) {
        int cap = net->eps_cap != 0 ? net->eps_cap * 2 : 64;
        sim_ep *e = realloc(net->eps, sizeof(sim_ep) * (size_t)cap);
        if (e == NULL) {
            return NONE;
        }
        net->eps = e;
        net->eps_cap = cap;
    }
    sim_ep *e = &net->eps[net->neps];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->peer = NONE;
    e->open = true;
    return net->neps++;
}

static void
post(sim_ep *e, uint32_t bits)
{
    if (e->slot != NULL) {
        tr__io_post(e->slot, bits);
    }
}

static void
drop_queue(sim_ep *e)
{
    while (e->head != NULL) {
        seg *g = e->head;
        e->head = g->next;
        free(g);
    }
    e->tail = NULL;
    e->inflight = 0;
}

static void
drop_rx(sim_ep *e)
{
    free(e->rx);
    e->rx = NULL;
    e->rx_start = e->rx_end = e->rx_cap = 0;
}

/* Both ends of the connection of `i` read ECONNRESET from now on. */
static void
reset_conn(tr_simnet *net, int i)
{
    int ends[2] = {i, net->eps[i].peer};

    for (int k = 0; k < 2; k++) {
        if (ends[k] == NONE) {
            continue;
        }
        sim_ep *e = &net->eps[ends[k]];
        if (e->rst) {
            continue;
        }
        e->rst = true;
        drop_queue(e);
        drop_rx(e);
        post(e, RD_READ | RD_WRITE);
    }
}

static void
push_seg(tr_simnet *net, int i, seg_kind kind, const struct iovec *iov, int n,
         size_t len)
{
    seg *g = malloc(sizeof(seg) + len);
    sim_ep *e;

    if (g == NULL) {
        abort();
    }
    g->next = NULL;
    g->kind = kind;
    g->len = (uint32_t)len;
    for (int k = 0, at = 0; k < n && (size_t)at < len; k++) {
        size_t take = iov[k].iov_len;
        if (take > len - (size_t)at) {
            take = len - (size_t)at;
        }
        memcpy(g->data + at, iov[k].iov_base, take);
        at += (int)take;
    }
    g->at = now_ns(net) + latency(net);
    e = &net->eps[i];
    if (e->tail != NULL && e->tail->at > g->at) {
        g->at = e->tail->at; /* never before the one ahead */
    }
    if (e->tail != NULL) {
        e->tail->next = g;
    } else {
        e->head = g;
    }
    e->tail = g;
    e->inflight += len;
    if (!e->seg_sched) {
        e->seg_sched = true;
        schedule(net, EV_SEG, i, 0, g->at);
    }
}

/* The partition between hosts `a` and `b` in force now, or NULL. */
static part *
partition_of(tr_simnet *net, uint32_t a, uint32_t b)
{
    for (int k = 0; k < MAX_PARTS; k++) {
        part *p = &net->parts[k];
        if (p->active &&
            ((p->a == a && p->b == b) || (p->a == b && p->b == a))) {
            return p;
        }
    }
    return NULL;
}

static part *
partition_start(tr_simnet *net, uint32_t a, uint32_t b)
{
    for (int k = 0; k < MAX_PARTS; k++) {
        part *p = &net->parts[k];
        if (!p->active) {
            uint64_t ms =
                1 + tr__sim_net_choose(net->sys, net->cfg.partition_max_ms);
            p->active = true;
            p->a = a;
            p->b = b;
            p->until = now_ns(net) + ms_ns(ms);
            schedule(net, EV_HEAL, NONE, (uint64_t)k, p->until);
            return p;
        }
    }
    return NULL; /* as many as the network tracks: no new one */
}

static int
find_listener(tr_simnet *net, uint32_t host, uint16_t port)
{
    int any = NONE;

    for (int i = 0; i < net->neps; i++) {
        const sim_ep *e = &net->eps[i];
        if (e->kind != EP_LISTENER || !e->open || e->port != port) {
            continue;
        }
        if (e->host == host) {
            return i;
        }
        if (strcmp(net->hosts[e->host], "*") == 0 && any == NONE) {
            any = i;
        }
    }
    return any;
}

static void
rx_append(sim_ep *e, const unsigned char *data, size_t len)
{
    if (e->rx_start == e->rx_end) {
        e->rx_start = e->rx_end = 0;
    }
    if (e->rx_end + len > e->rx_cap) {
        size_t used = e->rx_end - e->rx_start;
        size_t cap = e->rx_cap != 0 ? e->rx_cap : 4096;
        while (cap < used + len) {
            cap *= 2;
        }
        unsigned char *b = malloc(cap);
        if (b == NULL) {
            abort();
        }
        if (used > 0) {
            memcpy(b, e->rx + e->rx_start, used);
        }
        free(e->rx);
        e->rx = b;
        e->rx_cap = cap;
        e->rx_start = 0;
        e->rx_end = used;
    }
    memcpy(e->rx + e->rx_end, data, len);
    e->rx_end += len;
}

/* The SYN of `i` arrived: accepted into a listener's backlog, or refused
 * (nobody listens, or the backlog is full). */
static void
arrive_syn(tr_simnet *net, int i, char *what, size_t cap)
{
    int l = find_listener(net, net->eps[i].dst_host, net->eps[i].dst_port);
    int s;

    if (l == NONE || net->eps[l].nbacklog >= (size_t)net->eps[l].backlog_max ||
        (s = ep_new(net, EP_CONN)) == NONE) {
        schedule(net, EV_REFUSE, i, 0, now_ns(net) + latency(net));
        snprintf(what, cap, "syn %d refused", i);
        return;
    }
    sim_ep *L = &net->eps[l];
    if (L->nbacklog == L->backlog_cap) {
        size_t c = L->backlog_cap != 0 ? L->backlog_cap * 2 : 16;
        int *b = realloc(L->backlog, sizeof(int) * c);
        if (b == NULL) {
            abort();
        }
        L->backlog = b;
        L->backlog_cap = c;
    }
    L->backlog[L->nbacklog++] = s;
    sim_ep *S = &net->eps[s];
    S->host = net->eps[i].dst_host;
    S->port = L->port;
    S->peer = i;
    S->established = true;
    net->eps[i].peer = s;
    push_seg(net, s, SEG_SYNACK, NULL, 0, 0);
    post(&net->eps[l], RD_READ);
    snprintf(what, cap, "syn %d accepted as %d by %d", i, s, l);
}

/* The head segment of `i`'s queue is due. */
static void
arrive(tr_simnet *net, int i, char *what, size_t cap)
{
    sim_ep *e = &net->eps[i];
    seg *g = e->head;
    uint32_t to_host =
        g->kind == SEG_SYN ? e->dst_host : net->eps[e->peer].host;
    uint64_t now = now_ns(net);
    part *p = partition_of(net, e->host, to_host);
    const char *lost = NULL;

    if (p == NULL && chance(net, net->cfg.partition_ppm) &&
        (p = partition_start(net, e->host, to_host)) != NULL) {
        lost = "partition starts";
    }
    if (p != NULL) {
        g->at = p->until + latency(net);
        lost = lost != NULL ? lost : "held by a partition";
    } else if (chance(net, net->cfg.loss_ppm)) {
        g->at = now + ms_ns(net->cfg.rto_ms) + latency(net);
        lost = "lost, sent again";
    }
    if (lost != NULL) {
        schedule(net, EV_SEG, i, 0, g->at);
        snprintf(what, cap, "seg %d %s", i, lost);
        return;
    }
    e->head = g->next;
    if (e->head == NULL) {
        e->tail = NULL;
    }
    e->inflight -= g->len;
    int r = e->peer;
    sim_ep *R = r != NONE ? &net->eps[r] : NULL;
    switch (g->kind) {
    case SEG_SYN:
        arrive_syn(net, i, what, cap);
        break;
    case SEG_SYNACK:
        if (!R->open) {
            reset_conn(net, i); /* it gave up meanwhile: a reset answers */
            snprintf(what, cap, "synack %d to closed %d: reset", i, r);
        } else {
            R->established = true;
            post(R, RD_WRITE);
            snprintf(what, cap, "synack %d to %d", i, r);
        }
        break;
    case SEG_DATA:
        if (!R->open) {
            reset_conn(net, i);
            snprintf(what, cap, "data %d to closed %d: reset", i, r);
        } else if (chance(net, net->cfg.reset_ppm)) {
            reset_conn(net, i);
            snprintf(what, cap, "data %d to %d: reset (fault)", i, r);
        } else {
            rx_append(R, g->data, g->len);
            post(R, RD_READ);
            snprintf(what, cap, "data %d to %d %" PRIu32 " bytes", i, r,
                     g->len);
        }
        break;
    case SEG_FIN:
        R->fin_in = true;
        post(R, RD_READ);
        snprintf(what, cap, "fin %d to %d", i, r);
        break;
    }
    free(g);
    e = &net->eps[i]; /* a new endpoint may have moved the table */
    if (e->head != NULL) {
        uint64_t at = e->head->at > now ? e->head->at : now;
        e->seg_sched = true;
        schedule(net, EV_SEG, i, 0, at);
    }
}

/* Partition `k` heals: each connection across it is reset, by a chance,
 * or goes on. */
static void
heal(tr_simnet *net, int k, char *what, size_t cap)
{
    part *p = &net->parts[k];
    unsigned resets = 0;

    p->active = false;
    for (int i = 0; i < net->neps; i++) {
        sim_ep *e = &net->eps[i];
        if (e->kind != EP_CONN || e->peer == NONE || e->peer < i || e->rst) {
            continue;
        }
        uint32_t a = e->host;
        uint32_t b = net->eps[e->peer].host;
        if (!((a == p->a && b == p->b) || (a == p->b && b == p->a))) {
            continue;
        }
        if (net->cfg.partition_reset_pct != 0 &&
            tr__sim_net_choose(net->sys, 100) >=
                100 - (net->cfg.partition_reset_pct < 100
                           ? net->cfg.partition_reset_pct
                           : 100)) {
            reset_conn(net, i);
            resets++;
        }
    }
    snprintf(what, cap, "partition %s/%s heals, %u reset", net->hosts[p->a],
             net->hosts[p->b], resets);
}

static bool
net_next(void *arg, uint64_t *at)
{
    tr_simnet *net = arg;

    while (net->nheap > 0 && stale(net, &net->heap[0])) {
        sim_ev ev = pop(net);
        if (ev.kind == EV_SEG) {
            net->eps[ev.ep].seg_sched = false;
        }
    }
    if (net->nheap == 0) {
        return false;
    }
    *at = net->heap[0].at;
    return true;
}

static void
net_run(void *arg, char *what, size_t cap)
{
    tr_simnet *net = arg;
    uint64_t at;

    snprintf(what, cap, "nothing");
    if (!net_next(net, &at)) {
        return;
    }
    sim_ev ev = pop(net);
    sim_ep *e = ev.ep != NONE ? &net->eps[ev.ep] : NULL;
    switch (ev.kind) {
    case EV_SEG:
        e->seg_sched = false;
        arrive(net, ev.ep, what, cap);
        break;
    case EV_REFUSE:
        e->err = ECONNREFUSED;
        post(e, RD_WRITE);
        snprintf(what, cap, "refused %d", ev.ep);
        break;
    case EV_TIMER:
        e->timer = 0;
        post(e, RD_TIMER);
        snprintf(what, cap, "timer %d", ev.ep);
        break;
    case EV_WAKE:
        post(e, RD_WRITE);
        snprintf(what, cap, "window %d", ev.ep);
        break;
    case EV_HEAL:
        heal(net, (int)ev.arg, what, cap);
        break;
    }
}

/* ---- the module's calls ---- */

int
tr__simnet_create(tr_system *sys, tr_simnet **out)
{
    tr_simnet *net = calloc(1, sizeof(*net));
    tr_sim_net *c;

    if (net == NULL) {
        return TR_ENOMEM;
    }
    net->sys = sys;
    net->cfg = *tr__sim_net_config(sys);
    c = &net->cfg;
    if (c->latency_min_ms == 0 && c->latency_max_ms == 0) {
        c->latency_min_ms = c->latency_max_ms = 1;
    }
    if (c->latency_max_ms < c->latency_min_ms) {
        c->latency_max_ms = c->latency_min_ms;
    }
    if (c->rto_ms == 0) {
        c->rto_ms = DEFAULT_RTO_MS;
    }
    if (c->partition_max_ms == 0) {
        c->partition_max_ms = DEFAULT_PARTITION_MS;
    }
    if (c->window == 0) {
        c->window = DEFAULT_WINDOW;
    }
    net->next_port = FIRST_PORT;
    tr__sim_net_set(sys, net_next, net_run, net);
    *out = net;
    return TR_OK;
}

void
tr__simnet_destroy(tr_simnet *net)
{
    if (net == NULL) {
        return;
    }
    tr__sim_net_set(net->sys, NULL, NULL, NULL);
    for (int i = 0; i < net->neps; i++) {
        drop_queue(&net->eps[i]);
        drop_rx(&net->eps[i]);
        free(net->eps[i].backlog);
    }
    for (uint32_t i = 0; i < net->nhosts; i++) {
        free(net->hosts[i]);
    }
    free(net->hosts);
    free(net->eps);
    free(net->heap);
    free(net);
}

int64_t
tr__simnet_now_ms(const tr_simnet *net)
{
    return (int64_t)(now_ns(net) / UINT64_C(1000000));
}

int
tr__simnet_listen(tr_simnet *net, const char *host, uint16_t port, int backlog)
{
    uint32_t h = host_id(net, every_host(host) ? "*" : host);
    int i;

    if (port != 0) {
        for (i = 0; i < net->neps; i++) {
            const sim_ep *e = &net->eps[i];
            if (e->kind == EP_LISTENER && e->open && e->port == port &&
                (e->host == h || strcmp(net->hosts[e->host], "*") == 0 ||
                 strcmp(net->hosts[h], "*") == 0)) {
                return TR_EADDRINUSE;
            }
        }
    }
    if ((i = ep_new(net, EP_LISTENER)) == NONE) {
        return TR_ENOMEM;
    }
    net->eps[i].host = h;
    net->eps[i].port = port != 0 ? port : (uint16_t)net->next_port++;
    net->eps[i].backlog_max = backlog;
    return i;
}

int
tr__simnet_connect(tr_simnet *net, uint32_t client, const char *host,
                   uint16_t port)
{
    char name[32];
    int i;

    if ((i = ep_new(net, EP_CONN)) == NONE) {
        return TR_ENOMEM;
    }
    snprintf(name, sizeof(name), "client-%" PRIu32, client);
    net->eps[i].host = host_id(net, name);
    net->eps[i].port = (uint16_t)net->next_port++;
    net->eps[i].dst_host = host_id(net, host);
    net->eps[i].dst_port = port;
    push_seg(net, i, SEG_SYN, NULL, 0, 0);
    return i;
}

void
tr__simnet_attach(tr_simnet *net, int fd, io_slot *s)
{
    sim_ep *e = &net->eps[fd];

    e->slot = s;
    if (e->kind == EP_CONN && e->established) {
        /* An accepted connection: what arrived before is readable, and it
         * is writable (epoll's first edge). */
        post(e, RD_READ | RD_WRITE);
    }
}

int
tr__simnet_accept(tr_simnet *net, int fd)
{
    sim_ep *L = &net->eps[fd];
    int s;

    if (L->nbacklog == 0) {
        errno = EAGAIN;
        return -1;
    }
    s = L->backlog[0];
    memmove(L->backlog, L->backlog + 1, sizeof(int) * (L->nbacklog - 1));
    L->nbacklog--;
    return s;
}

ssize_t
tr__simnet_recv(tr_simnet *net, int fd, void *buf, size_t len)
{
    sim_ep *e = &net->eps[fd];

    if (e->rst) {
        errno = ECONNRESET;
        return -1;
    }
    if (e->rx_start < e->rx_end) {
        size_t n = e->rx_end - e->rx_start;
        if (n > len) {
            n = len;
        }
        memcpy(buf, e->rx + e->rx_start, n);
        e->rx_start += n;
        if (e->peer != NONE && net->eps[e->peer].want_write) {
            net->eps[e->peer].want_write = false;
            schedule(net, EV_WAKE, e->peer, 0, now_ns(net) + latency(net));
        }
        return (ssize_t)n;
    }
    if (e->fin_in) {
        return 0;
    }
    errno = EAGAIN;
    return -1;
}

ssize_t
tr__simnet_send(tr_simnet *net, int fd, const struct iovec *iov, int n)
{
    sim_ep *e = &net->eps[fd];
    size_t total = 0;
    size_t used;

    if (e->rst) {
        errno = ECONNRESET;
        return -1;
    }
    if (e->fin_out) {
        errno = EPIPE;
        return -1;
    }
    if (e->peer == NONE || !e->established) {
        errno = EAGAIN;
        return -1;
    }
    for (int k = 0; k < n; k++) {
        total += iov[k].iov_len;
    }
    const sim_ep *r = &net->eps[e->peer];
    used = e->inflight + (r->rx_end - r->rx_start);
    size_t room = used < net->cfg.window ? net->cfg.window - used : 0;
    size_t take = total < room ? total : room;
    if (take < total) {
        e->want_write = true;
    }
    if (take == 0) {
        errno = EAGAIN;
        return -1;
    }
    push_seg(net, fd, SEG_DATA, iov, n, take);
    return (ssize_t)take;
}

void
tr__simnet_shutdown(tr_simnet *net, int fd)
{
    sim_ep *e = &net->eps[fd];

    if (!e->rst && !e->fin_out && e->peer != NONE) {
        e->fin_out = true;
        push_seg(net, fd, SEG_FIN, NULL, 0, 0);
    }
}

void
tr__simnet_close(tr_simnet *net, int fd)
{
    sim_ep *e = &net->eps[fd];

    e->open = false;
    e->slot = NULL;
    e->timer = 0;
    drop_rx(e);
    if (e->kind == EP_LISTENER) {
        /* Connections nobody took are reset, as a kernel does. */
        for (size_t k = 0; k < e->nbacklog; k++) {
            reset_conn(net, net->eps[fd].backlog[k]);
        }
        e = &net->eps[fd];
        e->nbacklog = 0;
        return;
    }
    if (e->peer == NONE) {
        drop_queue(e); /* its SYN never arrived: no connection at all */
        return;
    }
    tr__simnet_shutdown(net, fd);
}

int
tr__simnet_error(tr_simnet *net, int fd)
{
    const sim_ep *e = &net->eps[fd];

    if (e->err != 0) {
        return e->err;
    }
    if (e->rst) {
        /* A reset before the SYN-ACK: TCP refuses the connect. */
        return e->established ? ECONNRESET : ECONNREFUSED;
    }
    return e->established ? 0 : EINPROGRESS;
}

uint16_t
tr__simnet_port(tr_simnet *net, int fd)
{
    return net->eps[fd].port;
}

void
tr__simnet_timer_arm(tr_simnet *net, int fd, int64_t ms)
{
    sim_ep *e = &net->eps[fd];

    e->timer = ++net->timers;
    schedule(net, EV_TIMER, fd, e->timer,
             now_ns(net) + ms_ns(ms > 0 ? (uint64_t)ms : 0));
}

void
tr__simnet_timer_stop(tr_simnet *net, int fd)
{
    net->eps[fd].timer = 0;
}
