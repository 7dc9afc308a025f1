/*
 * The live endpoint: starting and stopping it, deciding whether anyone
 * watches, and the events the supervisors post.
 *
 * Nobody watching costs nothing. The endpoint's loop thread sleeps in
 * epoll until a request comes; the workers read one flag per actor run
 * (sys->watched) and find it clear. Someone watches while an /events
 * client is connected, while a request came in the last `linger_ms`, or
 * while an `on_warning` callback is set. Then the flag is set: actor runs
 * time their handlers, calls note when they began, supervisors post their
 * changes here, and a timer samples the warnings every `sample_ms`. When
 * the last watcher leaves, all of that stops again.
 *
 * Events. A supervisor posts a change from its own run (tree_event, on a
 * worker): the path is worked out there, while the tree is as the change
 * left it, and the event is copied into a bounded ring under `lock`, which
 * numbers it (so every watcher sees events in one order). The loop thread
 * takes the ring's contents when kicked and hands each event to every
 * watcher (serve.c), each with a bounded buffer of its own. A full ring
 * drops its oldest event; watchers learn of it as lost events.
 *
 * Lifetime. The state is allocated by the first tr_inspect_serve and freed
 * only by shutdown, after the workers are joined: a worker that read the
 * flag before it was cleared may still post, and finds the ring closed.
 */
#include "inspect/live.h"

#include <troupe/error.h>

#include "common/tr_alloc.h"
#include "common/tr_park.h"
#include "supervisor/sup.h"

#include <event2/event.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- paths ---- */

void
tr__live_sup_path(tr_system *sys, uint64_t id, char *buf, size_t cap)
{
    const char *segs[32];
    unsigned n = 0;
    char top[64] = "";
    uint64_t cur = id;

    /* Up through the records: each supervised actor's record names its
     * child record (whose id is stable) and its supervisor. Every
     * ancestor of a running supervisor is running: their records hold. */
    while (n < 32 && cur != 0) {
        tr_actor *a = tr__table_slot(sys->table, cur);
        tr_ext *x = a != NULL ? tr_load_acq(&a->ext) : NULL;
        if (x != NULL && x->child != NULL) {
            segs[n++] = ((const child *)x->child)->id;
            cur = tr_load_relaxed(&x->parent);
            continue;
        }
        pthread_mutex_lock(&sys->tree_lock);
        for (uint32_t r = 0; r < sys->nroots; r++) {
            const tr_sup *s = sys->roots[r];
            if (s->self == cur) {
                snprintf(top, sizeof(top), "%s", s->name);
            }
        }
        pthread_mutex_unlock(&sys->tree_lock);
        break;
    }
    tr_sink k = {buf, cap, 0, false, false};
    buf[0] = '\0';
    tr__sink_put(&k, "/%s", top);
    while (n-- > 0) {
        tr__sink_put(&k, "/%s", segs[n]);
    }
}

void
tr__live_slot_path(tr_system *sys, uint32_t index, char *buf, size_t cap)
{
    tr_snap ns = {0};

    buf[0] = '\0';
    tr__snap_collect(sys, &ns, false);
    for (size_t i = 0; i < ns.n; i++) {
        if (ns.v[i].addr != 0 && tr__id_index(ns.v[i].addr) == index) {
            snprintf(buf, cap, "%s", ns.v[i].path);
            break;
        }
    }
    tr__snap_free(&ns);
    if (buf[0] != '\0') {
        return;
    }
    tr_actor *a = tr__table_at(sys->table, index);
    /* Acquire: pairs with spawn's publication; the fields read below were
     * written before it. */
    uint64_t gen = tr_load_acq(&a->gen);
    tr_ext *x = tr_load_acq(&a->ext);
    if (x != NULL) {
        pthread_mutex_lock(&x->lock);
        if (x->name != NULL) {
            snprintf(buf, cap, "%s", x->name);
        }
        pthread_mutex_unlock(&x->lock);
    }
    if (buf[0] == '\0' && tr__gen_live(gen)) {
        const tr_behaviour *b = a->behaviour;
        snprintf(buf, cap, "(%s)",
                 b != NULL && b->name != NULL ? b->name : "unnamed");
    }
}

/* ---- events ---- */

void
tr__live_post(tr_live *lv, const char *type, const char *json,
              const char *restart_sup)
{
    pthread_mutex_lock(&lv->lock);
    if (!lv->open) {
        pthread_mutex_unlock(&lv->lock);
        return;
    }
    if (lv->tail - lv->head == EVENT_RING) {
        lv->head++; /* the oldest goes */
        lv->dropped++;
    }
    tr_event *ev = &lv->ring[lv->tail % EVENT_RING];
    ev->seq = ++lv->tail; /* from 1 */
    snprintf(ev->type, sizeof(ev->type), "%s", type);
    snprintf(ev->data, sizeof(ev->data), "{\"seq\":%" PRIu64 ",%s}", ev->seq,
             json);
    ev->restart = restart_sup != NULL;
    snprintf(ev->sup, sizeof(ev->sup), "%s",
             restart_sup != NULL ? restart_sup : "");
    /* Under the lock: stop closes the ring before the kick's fd. */
    tr__loop_kick(&lv->loop);
    pthread_mutex_unlock(&lv->lock);
}

static const char *
event_type(unsigned what, const child *c)
{
    switch (what) {
    case TR_TREE_START:
        return "start";
    case TR_TREE_EXIT:
        return c->last.kind == TR_EXIT_FAILED || c->last.kind == TR_EXIT_KILLED
                   ? "failure"
                   : "exit";
    case TR_TREE_RESTART:
        return "restart";
    case TR_TREE_STOP:
        return "stop";
    default:
        return "give_up";
    }
}

/* sys->tree_event: on the supervisor's run (ctx is the supervisor's). */
static void
tree_event(tr_ctx *ctx, unsigned what, const void *arg)
{
    tr_system *sys = ctx->sys;
    tr_live *lv = sys->live;
    const child *c = arg;
    char sup[256];
    char path[256];
    char json[EVENT_TEXT - 64];

    tr__live_sup_path(sys, ctx->self, sup, sizeof(sup));
    if (c != NULL) {
        snprintf(path, sizeof(path), "%.190s/%.63s",
                 strcmp(sup, "/") == 0 ? "" : sup, c->id);
    } else {
        snprintf(path, sizeof(path), "%s", sup);
    }
    tr_sink k = {json, sizeof(json), 0, false, false};
    json[0] = '\0';
    tr__sink_put(&k, "\"type\":\"%s\",\"path\":\"", event_type(what, c));
    tr__sink_escaped(&k, path);
    tr__sink_put(&k, "\",\"at_ms\":%" PRIu64, tr_now_ms(sys));
    if (c != NULL) {
        const char *b = c->spec.behaviour->name;
        tr__sink_put(&k, ",\"behaviour\":\"");
        tr__sink_escaped(&k, b != NULL ? b : "(unnamed)");
        tr__sink_put(&k, "\",\"kind\":\"%s\",\"restarts\":%u",
                     c->spec.kind == TR_SUPERVISOR ? "supervisor" : "worker",
                     c->restarts);
        if (what == TR_TREE_EXIT || what == TR_TREE_STOP) {
            tr__sink_put(&k, ",\"exit\":\"%s\",\"code\":%d,\"reason\":\"",
                         tr__exit_names[c->last.kind], c->last.code);
            tr__sink_escaped(&k, c->last.text);
            tr__sink_put(&k, "\"");
        }
    }
    tr__live_post(lv, "tree", json, what == TR_TREE_RESTART ? sup : NULL);
}

/* On the loop thread: the ring's events go to the watchers, one at a
 * time (posters wait for the lock only while one is copied). */
static void
drain(void *arg)
{
    tr_live *lv = arg;
    tr_event ev;

    for (;;) {
        pthread_mutex_lock(&lv->lock);
        bool have = lv->head < lv->tail;
        if (have) {
            ev = lv->ring[lv->head % EVENT_RING];
            lv->head++;
        }
        uint64_t dropped = lv->dropped;
        lv->dropped = 0;
        pthread_mutex_unlock(&lv->lock);
        for (tr_watcher *w = lv->watchers; w != NULL; w = w->next) {
            w->lost += dropped;
        }
        lv->events_lost += dropped * lv->nwatchers;
        if (!have) {
            break;
        }
        lv->events_total++;
        if (ev.restart) {
            tr__warn_restart(lv, ev.sup);
        }
        tr__serve_fanout(lv, &ev);
    }
    tr__live_judge_watch(lv);
}

/* ---- watching ---- */

static void
on_sample(evutil_socket_t fd, short what, void *arg)
{
    tr_live *lv = arg;

    (void)fd;
    (void)what;
    tr__warn_sample(lv);
    tr__live_judge_watch(lv);
}

static void
on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tr__serve_heartbeat(arg);
}

static struct timeval
tv_ms(uint32_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000,
                            .tv_usec = (long)(ms % 1000) * 1000};
}

void
tr__live_touched(tr_live *lv)
{
    lv->last_request_ns = tr__now_ns();
    lv->requests++;
}

void
tr__live_judge_watch(tr_live *lv)
{
    tr_system *sys = lv->sys;
    uint64_t now = tr__now_ns();
    bool recent =
        lv->last_request_ns != 0 &&
        now - lv->last_request_ns < (uint64_t)lv->opts.linger_ms * 1000000u;
    bool watch = lv->nwatchers > 0 || lv->opts.on_warning != NULL || recent;

    if (lv->nwatchers > 0) {
        if (!event_pending(lv->beat_ev, EV_TIMEOUT, NULL)) {
            struct timeval tv = tv_ms(lv->opts.heartbeat_ms);
            event_add(lv->beat_ev, &tv);
        }
    } else {
        event_del(lv->beat_ev);
    }
    if (watch == lv->watching) {
        return;
    }
    lv->watching = watch;
    if (watch) {
        uint64_t overdue = (uint64_t)lv->opts.call_overdue_ms * 1000000u;
        tr_store_relaxed(&sys->overdue_ns,
                         lv->opts.call_overdue_ms == TR_WARN_OFF ? UINT64_MAX
                                                                 : overdue);
        /* Release: pairs with the supervisors' acquire (tree_event is
         * set). */
        tr_store_rel(&sys->watched, 1);
        struct timeval tv = tv_ms(lv->opts.sample_ms);
        event_add(lv->sample_ev, &tv);
        tr__warn_sample(lv); /* a baseline for the rates */
    } else {
        tr_store_rel(&sys->watched, 0);
        event_del(lv->sample_ev);
    }
}

/* ---- start and stop ---- */

static void
defaults(tr_inspect_opts *o)
{
#define DEFAULT(field, v)                                                      \
    if (o->field == 0) {                                                       \
        o->field = (v);                                                        \
    }
    DEFAULT(slow_handler_ms, 500);
    DEFAULT(mailbox_len, 10000);
    DEFAULT(restart_rate, 5);
    DEFAULT(call_overdue_ms, 5000);
    DEFAULT(dead_letter_rate, 100);
    DEFAULT(clear_pct, 50);
    DEFAULT(hold_ms, 2000);
    DEFAULT(sample_ms, 100);
    DEFAULT(watcher_buffer, 65536);
    DEFAULT(max_watchers, 64);
    DEFAULT(heartbeat_ms, 15000);
    DEFAULT(linger_ms, 60000);
#undef DEFAULT
    if (o->clear_pct > 100) {
        o->clear_pct = 100;
    }
    /* The connections' slots are that many and more, swept each second
     * (serve.c): a bound that a process's descriptors reach first. */
    if (o->max_watchers > TR_INSPECT_WATCHERS_MAX) {
        o->max_watchers = TR_INSPECT_WATCHERS_MAX;
    }
}

/* On a plain thread, with the loop thread joined (or never started). */
static void
take_down(tr_live *lv)
{
    tr_system *sys = lv->sys;

    pthread_mutex_lock(&lv->lock);
    lv->open = false;
    lv->head = lv->tail;
    pthread_mutex_unlock(&lv->lock);
    tr__loop_stop(&lv->loop);
    /* Nobody watches from here on: new runs and changes skip us. */
    tr_store_rel(&sys->watched, 0);
    tr_store_relaxed(&sys->overdue_ns, UINT64_MAX);
    lv->watching = false;
    lv->closing = true;
    tr__serve_close(lv); /* frees the connections: watchers leave */
    lv->closing = false;
    if (lv->sample_ev != NULL) {
        event_free(lv->sample_ev);
        lv->sample_ev = NULL;
    }
    if (lv->beat_ev != NULL) {
        event_free(lv->beat_ev);
        lv->beat_ev = NULL;
    }
    tr__loop_fini(&lv->loop);
    tr__warn_free(lv);
    tr__free(lv->busy_seen, sizeof(uint64_t) * lv->nworkers);
    lv->busy_seen = NULL;
    lv->serving = false;
}

/* sys->live_close: shutdown begins (`end` false), or frees (`end`). */
static void
live_close(tr_system *sys, bool end)
{
    tr_live *lv = sys->live;

    if (!end) {
        if (lv->serving) {
            take_down(lv);
        }
        return;
    }
    tr__free(lv->ring, sizeof(tr_event) * EVENT_RING);
    pthread_mutex_destroy(&lv->lock);
    tr__free(lv, sizeof(*lv));
    sys->live = NULL;
}

static tr_live *
live_get(tr_system *sys)
{
    if (sys->live != NULL) {
        return sys->live;
    }
    tr_live *lv = tr__calloc(sizeof(*lv));
    tr_event *ring = tr__calloc(sizeof(tr_event) * EVENT_RING);
    if (lv == NULL || ring == NULL) {
        tr__free(lv, sizeof(*lv));
        tr__free(ring, sizeof(tr_event) * EVENT_RING);
        return NULL;
    }
    lv->sys = sys;
    lv->ring = ring;
    pthread_mutex_init(&lv->lock, NULL);
    /* Set once, before `watched` is first raised (release), and before
     * shutdown can run (the caller orders it after this call). */
    sys->tree_event = tree_event;
    sys->live_close = live_close;
    sys->live = lv;
    return lv;
}

static int
start(tr_live *lv, const char *addr)
{
    tr_system *sys = lv->sys;
    int rc = tr__loop_init(&lv->loop, drain, lv);

    if (rc != TR_OK) {
        return rc;
    }
    lv->nworkers = tr__sched_workers(sys->sched);
    lv->wseen = tr__calloc(sizeof(tr_worker_seen) * lv->nworkers);
    lv->busy_seen = tr__calloc(sizeof(uint64_t) * lv->nworkers);
    lv->sample_ev = event_new(lv->loop.base, -1, EV_PERSIST, on_sample, lv);
    lv->beat_ev = event_new(lv->loop.base, -1, EV_PERSIST, on_beat, lv);
    if (lv->wseen == NULL || lv->busy_seen == NULL || lv->sample_ev == NULL ||
        lv->beat_ev == NULL) {
        return TR_ENOMEM;
    }
    if (addr != NULL && (rc = tr__serve_bind(lv, addr)) != TR_OK) {
        return rc;
    }
    pthread_mutex_lock(&lv->lock);
    lv->open = true;
    lv->head = lv->tail;
    lv->dropped = 0;
    pthread_mutex_unlock(&lv->lock);
    if ((rc = tr__loop_start(&lv->loop)) != TR_OK) {
        return rc;
    }
    tr__loop_kick(&lv->loop); /* a first judgement: on_warning watches */
    return TR_OK;
}

/* Whether the calling thread may start or stop the endpoint: a plain
 * thread's calls, which start and join its thread, so not a worker, not
 * an actor's callbacks, and not the endpoint's own thread (an
 * `on_warning` callback), which the stop would join. */
static bool
may_serve(void)
{
    return tr__may_block() && !tr__in_init() && !tr__tls.inspecting;
}

int
tr_inspect_serve(tr_system *sys, const char *addr, const tr_inspect_opts *opts,
                 uint16_t *port)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    int rc = tr__sys_enter(sys);
    if (rc != TR_OK) {
        return rc;
    }
    if (!may_serve()) {
        tr__sys_leave(sys);
        return TR_ESTATE;
    }
    tr_live *lv = NULL;
    pthread_mutex_lock(&sys->live_lock);
    /* Acquire: a shutdown that took the lock first stopped the endpoint
     * it saw; none may start after that. */
    if (tr_load_acq(&sys->shutting_down)) {
        rc = TR_ESHUTDOWN;
    } else if ((lv = live_get(sys)) == NULL) {
        rc = TR_ENOMEM;
    } else if (lv->serving) {
        rc = TR_EALREADY;
    } else {
        lv->opts = opts != NULL ? *opts : (tr_inspect_opts)TR_INSPECT_OPTS_INIT;
        defaults(&lv->opts);
        lv->serving = true;
        rc = start(lv, addr);
        if (rc != TR_OK) {
            take_down(lv);
        } else if (port != NULL) {
            *port = lv->port;
        }
    }
    pthread_mutex_unlock(&sys->live_lock);
    tr__sys_leave(sys);
    return rc;
}

int
tr_inspect_stop(tr_system *sys)
{
    if (sys == NULL) {
        return TR_EINVAL;
    }
    int rc = tr__sys_enter(sys);
    if (rc != TR_OK) {
        return rc; /* past shutdown's start, shutdown stops it */
    }
    if (!may_serve()) {
        tr__sys_leave(sys);
        return TR_ESTATE;
    }
    pthread_mutex_lock(&sys->live_lock);
    if (sys->live == NULL || !sys->live->serving) {
        rc = TR_ESTATE;
    } else {
        take_down(sys->live);
    }
    pthread_mutex_unlock(&sys->live_lock);
    tr__sys_leave(sys);
    return rc;
}
