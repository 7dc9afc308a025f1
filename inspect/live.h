/*
 * Private: the live endpoint's state, shared by its files: live.c (start,
 * stop, watching, events), serve.c (HTTP), metrics.c (Prometheus), warn.c
 * (warnings), loop.c (the event loop thread), page.c (the page).
 *
 * Threads. Everything here belongs to the loop thread, except what the
 * `lock` guards (the queue of events the supervisors post from their
 * workers) and what tr_inspect_serve and tr_inspect_stop do before the
 * thread starts and after it is joined.
 */
#ifndef TR_INSPECT_LIVE_H
#define TR_INSPECT_LIVE_H

#include "inspect/snap.h"

#include "actors/actor.h"

#include <pthread.h>

struct event_base;
struct event;
struct evbuffer;
struct bufferevent;
struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;

/* ---- loop.c: one event loop on a thread of its own ---- */

typedef struct tr_loop {
    struct event_base *base;
    pthread_t thread;
    struct event *kick_ev;
    int kick_fd;                /* an eventfd */
    tr_atomic(uint32_t) kicked; /* a kick is pending */
    tr_atomic(uint32_t) stopping;
    void (*on_kick)(void *arg); /* on the loop thread */
    void *arg;
    bool started;
} tr_loop;

/* A base and a kick; no thread yet. */
int tr__loop_init(tr_loop *l, void (*on_kick)(void *), void *arg);
int tr__loop_start(tr_loop *l);
/* Any thread: run `on_kick` soon on the loop thread (coalesced). */
void tr__loop_kick(tr_loop *l);
/* Not on the loop thread: end the loop and join it. */
void tr__loop_stop(tr_loop *l);
/* After stop (or a failed start): free the base. */
void tr__loop_fini(tr_loop *l);

/* ---- events ---- */

enum { EVENT_TEXT = 768, EVENT_RING = 1024 };

typedef struct tr_event {
    uint64_t seq;
    char type[16];         /* the SSE event name: "tree", "warning" */
    char data[EVENT_TEXT]; /* one JSON object */
    /* For the warnings (restart storms): a restart under `sup`. */
    bool restart;
    char sup[256];
} tr_event;

/* An /events client. */
typedef struct tr_watcher {
    struct tr_watcher *next;
    struct tr_live *lv;
    struct evhttp_request *req;
    struct evbuffer *out; /* text not yet handed to the connection */
    bool writing;         /* a chunk handed to it is not yet written */
    uint64_t lost;        /* events it missed since it was last told */
} tr_watcher;

/* A connection the endpoint took (serve.c): one of `conns`. */
typedef struct tr_conn {
    /* evhttp's bufferevent, with a reference of ours; NULL: a free slot. */
    struct bufferevent *bev;
    /* Since when its next request is awaited; 0 while a reply or a stream
     * is written. */
    uint64_t since_ns;
} tr_conn;

/* ---- warn.c ---- */

/* One warning being tracked (raised, or just below its threshold). */
typedef struct tr_wstate {
    tr_warning_kind kind;
    char key[64];   /* what it is about: a slot, a worker, a path */
    char path[256]; /* how it is shown */
    bool raised;
    bool seen; /* visited in this sample */
    uint64_t below_since;
    double value;
    double threshold;
} tr_wstate;

/* A supervisor's recent restarts (a sliding one-second window). */
typedef struct tr_storm {
    char path[256];
    uint64_t window_ns; /* start of the current second */
    uint32_t cur, prev;
} tr_storm;

typedef struct tr_worker_seen {
    uint32_t runs;
    uint64_t parks;
    uint64_t since_ns; /* when (runs, parks) was first seen */
} tr_worker_seen;

struct tr_live {
    tr_system *sys;
    tr_inspect_opts opts; /* defaults filled in */
    tr_loop loop;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    char host[64]; /* the bound address, as a Host header names it */
    uint16_t port;
    bool serving; /* between serve and stop (plain threads) */
    bool closing; /* take_down is freeing the connections */

    /* Posted by supervisors (any worker), taken by the loop thread. */
    pthread_mutex_t lock;
    bool open; /* events are accepted */
    tr_event *ring;
    uint64_t head, tail; /* seq of the oldest queued, next to assign */
    uint64_t dropped;    /* lost because the ring was full */

    /* The loop thread's own from here on. */
    tr_watcher *watchers;
    uint32_t nwatchers;
    tr_conn *conns;            /* max_watchers + SPARE_CONNS slots */
    uint32_t nconns, capconns; /* in use; slots */
    struct event *sweep_ev;    /* while there are connections: each second,
                                * each SWEEP_FULL_MS while all slots are */
    bool sweep_full;           /* sweep_ev is on the shorter period */
    bool watching;             /* sys->watched as last set */
    uint64_t last_request_ns;  /* 0: none yet */
    struct event *sample_ev;
    struct event *beat_ev;
    uint64_t requests, rejected; /* served; refused (403, 4xx) */

    /* Warnings. */
    tr_wstate *ws;
    uint32_t nws, capws;
    tr_storm *storms;
    uint32_t nstorms, capstorms;
    tr_worker_seen *wseen;
    unsigned nworkers;
    uint64_t rate_ns; /* when the per-second rates were last taken */
    uint64_t rate_dead, rate_overdue;
    double dead_rate, overdue_rate;
    uint64_t warnings_total[TR_WARN_KINDS];
    uint64_t events_total;
    uint64_t events_lost; /* to slow watchers, all told */

    /* Monotone counters for /metrics (busy time is computed). */
    uint64_t *busy_seen;
};

/* live.c */
/* On the loop thread: a request came (the timing stays on a while). */
void tr__live_touched(tr_live *lv);
/* On the loop thread: decide whether anyone watches; turn the timing and
 * the sampler on or off. */
void tr__live_judge_watch(tr_live *lv);
/* Queue an event (any thread); `type` "tree" or "warning". */
void tr__live_post(tr_live *lv, const char *type, const char *json,
                   const char *restart_sup);
/* The path of supervisor `id` (a running one), written to `buf`. */
void tr__live_sup_path(tr_system *sys, uint64_t id, char *buf, size_t cap);
/* The tree path, registered name or "(behaviour)" of slot `index`. */
void tr__live_slot_path(tr_system *sys, uint32_t index, char *buf, size_t cap);

/* serve.c */
int tr__serve_bind(tr_live *lv, const char *addr);
void tr__serve_close(tr_live *lv);
/* Send one SSE event to every watcher (loop thread). */
void tr__serve_fanout(tr_live *lv, const tr_event *ev);
void tr__serve_heartbeat(tr_live *lv);

/* metrics.c */
void tr__metrics_render(tr_live *lv, tr_sink *k);

/* warn.c */
void tr__warn_sample(tr_live *lv);
/* A restart event under supervisor `sup` (loop thread). */
void tr__warn_restart(tr_live *lv, const char *sup);
void tr__warn_free(tr_live *lv);
extern const char *const tr__warn_names[TR_WARN_KINDS];

/* page.c (generated from page.html) */
extern const char tr__page_html[];
extern const size_t tr__page_html_len;

#endif /* TR_INSPECT_LIVE_H */
