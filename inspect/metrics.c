/*
 * /metrics: the Prometheus text exposition format, version 0.0.4.
 *
 * Every family has its HELP and TYPE lines; counters end in _total and
 * use base units (seconds, not nanoseconds). Actors are labelled by tree
 * path, or by registered name for a named actor outside the trees; never by
 * address (an address is not stable across restarts of a supervisor's
 * supervisor, and would make every restart a new series).
 *
 * Everything comes from counters the runtime keeps anyway, summed here:
 * per worker (handled, dead letters, parks, steals, sleep time, the
 * handler-time histogram while watched) and per actor (mailbox counts,
 * handled, the record's high-water mark, dead letters and time in
 * handlers). Busy time is computed (time since start less time asleep);
 * it is kept monotone here, as a counter must be.
 */
#include "inspect/live.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define put tr__sink_put

static void
family(tr_sink *k, const char *name, const char *type, const char *help)
{
    put(k, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double
seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- per actor ---- */

typedef struct actor_row {
    const char *label; /* "path" or "name" */
    const char *value;
    uint64_t mailbox, hwm, handled, restarts, dead, busy_ns;
    bool running;
} actor_row;

typedef struct rows {
    actor_row *v;
    size_t n, cap;
    char (*names)[64]; /* storage for "name" labels */
} rows;

static void
one_family(tr_sink *k, const rows *rs, const char *name, const char *type,
           const char *help, int which)
{
    family(k, name, type, help);
    for (size_t i = 0; i < rs->n; i++) {
        const actor_row *r = &rs->v[i];
        put(k, "%s{%s=\"", name, r->label);
        tr__sink_label(k, r->value);
        switch (which) {
        case 0:
            put(k, "\"} %" PRIu64 "\n", r->mailbox);
            break;
        case 1:
            put(k, "\"} %" PRIu64 "\n", r->hwm);
            break;
        case 2:
            put(k, "\"} %" PRIu64 "\n", r->handled);
            break;
        case 3:
            put(k, "\"} %" PRIu64 "\n", r->restarts);
            break;
        case 4:
            put(k, "\"} %" PRIu64 "\n", r->dead);
            break;
        case 5:
            put(k, "\"} %.9f\n", seconds(r->busy_ns));
            break;
        default:
            put(k, "\"} %d\n", r->running ? 1 : 0);
            break;
        }
    }
}

/* Named actors outside the trees: a pass over the table. */
static size_t
named_outside(tr_system *sys, const tr_snap *ns, actor_row *v,
              char (*names)[64], size_t cap)
{
    uint32_t len = tr__table_len(sys->table);
    size_t n = 0;
    bool *in_tree = tr__calloc(len + 1u);

    if (in_tree == NULL) {
        return 0;
    }
    for (size_t j = 0; j < ns->n; j++) {
        if (ns->v[j].addr != 0 && tr__id_index(ns->v[j].addr) < len) {
            in_tree[tr__id_index(ns->v[j].addr)] = true;
        }
    }
    for (uint32_t i = 0; i < len && n < cap; i++) {
        tr_actor *a = tr__table_at(sys->table, i);
        /* Acquire: pairs with spawn's publication. */
        uint64_t gen = tr_load_acq(&a->gen);
        tr_ext *x = tr_load_acq(&a->ext);
        if (!tr__gen_live(gen) || x == NULL ||
            tr_load_relaxed(&x->parent) != 0 || in_tree[i]) {
            continue;
        }
        pthread_mutex_lock(&x->lock);
        bool named = x->name != NULL;
        if (named) {
            snprintf(names[n], 64, "%s", x->name);
        }
        pthread_mutex_unlock(&x->lock);
        if (!named) {
            continue;
        }
        v[n] = (actor_row){
            .label = "name",
            .value = names[n],
            .mailbox = tr__lane_len(&a->sent, &a->taken),
            .hwm = tr_load_relaxed(&x->hwm),
            .handled = tr_load_relaxed(&a->handled),
            .dead = tr_load_relaxed(&x->dead),
            .busy_ns = tr_load_relaxed(&x->busy_ns),
            .running = true,
        };
        n++;
    }
    tr__free(in_tree, len + 1u);
    return n;
}

static void
actors(tr_live *lv, tr_sink *k)
{
    tr_snap ns = {0};
    size_t names_cap = 256;

    tr__snap_collect(lv->sys, &ns, false);
    size_t cap = ns.n + names_cap;
    actor_row *v = tr__calloc(sizeof(actor_row) * cap);
    char(*names)[64] = tr__calloc(64 * names_cap);
    if (ns.oom || v == NULL || names == NULL) {
        k->oom = true;
        tr__snap_free(&ns);
        tr__free(v, sizeof(actor_row) * cap);
        tr__free(names, 64 * names_cap);
        return;
    }
    rows rs = {v, 0, cap, names};
    for (size_t i = 0; i < ns.n; i++) {
        const tr_snode *nd = &ns.v[i];
        v[rs.n++] = (actor_row){
            .label = "path",
            .value = nd->path,
            .mailbox = nd->mailbox_len,
            .hwm = nd->mailbox_hwm,
            .handled = nd->handled,
            .restarts = nd->restarts,
            .dead = nd->dead,
            .busy_ns = nd->busy_ns,
            .running = nd->live && strcmp(nd->status, "running") == 0,
        };
    }
    rs.n += named_outside(lv->sys, &ns, v + rs.n, names, names_cap);

    one_family(k, &rs, "troupe_actor_mailbox_length", "gauge",
               "Messages queued for the actor.", 0);
    one_family(k, &rs, "troupe_actor_mailbox_high_water", "gauge",
               "Most messages ever seen queued at the start of a run.", 1);
    one_family(k, &rs, "troupe_actor_messages_handled_total", "counter",
               "Messages the actor's current incarnation handled.", 2);
    one_family(k, &rs, "troupe_actor_restarts_total", "counter",
               "Restarts of the actor by its supervisor.", 3);
    one_family(k, &rs, "troupe_actor_dead_letters_total", "counter",
               "Messages addressed to the actor that reached no handler.", 4);
    one_family(k, &rs, "troupe_actor_handler_seconds_total", "counter",
               "Time the actor spent in its handlers while watched.", 5);
    one_family(k, &rs, "troupe_actor_running", "gauge",
               "1 while the actor runs, 0 while it restarts or is stopped.", 6);
    tr__snap_free(&ns);
    tr__free(v, sizeof(actor_row) * cap);
    tr__free(names, 64 * names_cap);
}

/* ---- per worker and the system ---- */

static void
workers(tr_live *lv, tr_sink *k)
{
    tr_system *sys = lv->sys;
    unsigned n = lv->nworkers;
    uint64_t now = tr__now_ns();
    tr_worker_stats *ws = tr__calloc(sizeof(tr_worker_stats) * n);
    unsigned shown = ws != NULL ? n : 0;

    for (unsigned i = 0; i < shown; i++) {
        tr__sched_worker_stats(sys->sched, i, now, &ws[i]);
        /* Monotone, as a counter must be: the reads race the owner. */
        if (ws[i].busy_ns < lv->busy_seen[i]) {
            ws[i].busy_ns = lv->busy_seen[i];
        }
        lv->busy_seen[i] = ws[i].busy_ns;
    }
    family(k, "troupe_worker_busy_seconds_total", "counter",
           "Time the worker spent awake (running or looking for work).");
    for (unsigned i = 0; i < shown; i++) {
        put(k, "troupe_worker_busy_seconds_total{worker=\"%u\"} %.9f\n", i,
            seconds(ws[i].busy_ns));
    }
    family(k, "troupe_worker_parked_seconds_total", "counter",
           "Time the worker spent asleep, waiting for work.");
    for (unsigned i = 0; i < shown; i++) {
        put(k, "troupe_worker_parked_seconds_total{worker=\"%u\"} %.9f\n", i,
            seconds(ws[i].parked_ns));
    }
    family(k, "troupe_worker_parks_total", "counter",
           "Times the worker went to sleep.");
    for (unsigned i = 0; i < shown; i++) {
        put(k, "troupe_worker_parks_total{worker=\"%u\"} %" PRIu64 "\n", i,
            ws[i].parks);
    }
    family(k, "troupe_worker_steals_total", "counter",
           "Batches of work the worker stole from other workers.");
    for (unsigned i = 0; i < shown; i++) {
        put(k, "troupe_worker_steals_total{worker=\"%u\"} %" PRIu64 "\n", i,
            ws[i].steals);
    }
    family(k, "troupe_worker_run_queue_length", "gauge",
           "Actors waiting in the worker's run queue.");
    for (unsigned i = 0; i < shown; i++) {
        put(k, "troupe_worker_run_queue_length{worker=\"%u\"} %u\n", i,
            ws[i].runq_len);
    }
    family(k, "troupe_worker_messages_handled_total", "counter",
           "Messages handled on the worker.");
    for (unsigned i = 0; i < shown; i++) {
        tr_wlocal *wl = tr__sched_worker_data(sys->sched, i);
        put(k,
            "troupe_worker_messages_handled_total{worker=\"%u\"} %" PRIu64 "\n",
            i, tr_load_relaxed(&wl->handled));
    }

    /* The handler-time histogram, summed over the workers. */
    uint64_t buckets[TR_HIST_BUCKETS] = {0};
    uint64_t sum_ns = 0;
    for (unsigned i = 0; i < n; i++) {
        tr_wlocal *wl = tr__sched_worker_data(sys->sched, i);
        for (unsigned b = 0; b < TR_HIST_BUCKETS; b++) {
            buckets[b] += tr_load_relaxed(&wl->hist[b]);
        }
        sum_ns += tr_load_relaxed(&wl->hist_ns);
    }
    family(k, "troupe_handler_duration_seconds", "histogram",
           "Time one handler took for one user message (while watched).");
    static const char *const le[TR_HIST_BUCKETS - 1] = {
        "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1", "10"};
    uint64_t cum = 0;
    for (unsigned b = 0; b < TR_HIST_BUCKETS - 1; b++) {
        cum += buckets[b];
        put(k,
            "troupe_handler_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
            le[b], cum);
    }
    cum += buckets[TR_HIST_BUCKETS - 1];
    put(k, "troupe_handler_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
        cum);
    put(k, "troupe_handler_duration_seconds_sum %.9f\n", seconds(sum_ns));
    put(k, "troupe_handler_duration_seconds_count %" PRIu64 "\n", cum);
    tr__free(ws, sizeof(tr_worker_stats) * n);
}

static void
totals(tr_live *lv, tr_sink *k)
{
    tr_system *sys = lv->sys;
    tr_system_stats st;

    if (tr_system_stats_get(sys, &st) != TR_OK) {
        memset(&st, 0, sizeof(st));
    }
    family(k, "troupe_workers", "gauge", "Worker threads.");
    put(k, "troupe_workers %u\n", st.workers);
    family(k, "troupe_actors", "gauge", "Actors spawned and not yet stopped.");
    put(k, "troupe_actors %" PRIu64 "\n", st.live_actors);
    family(k, "troupe_actors_spawned_total", "counter", "Actors spawned.");
    put(k, "troupe_actors_spawned_total %" PRIu64 "\n", st.spawned);
    family(k, "troupe_actors_failed_total", "counter",
           "Actors that ended by failing.");
    put(k, "troupe_actors_failed_total %" PRIu64 "\n", st.failed);
    family(k, "troupe_messages_handled_total", "counter",
           "User messages given to a handler.");
    put(k, "troupe_messages_handled_total %" PRIu64 "\n", st.messages_handled);
    family(k, "troupe_dead_letters_total", "counter",
           "Messages that reached no handler.");
    put(k, "troupe_dead_letters_total %" PRIu64 "\n", st.dead_letters);
    family(k, "troupe_calls_overdue_total", "counter",
           "Calls that waited longer than the overdue threshold (while "
           "watched).");
    put(k, "troupe_calls_overdue_total %" PRIu64 "\n",
        tr_load_relaxed(&sys->calls_overdue));
    family(k, "troupe_inject_queue_length", "gauge",
           "Actors made runnable by plain threads, not yet taken by a "
           "worker.");
    put(k, "troupe_inject_queue_length %zu\n",
        tr__sched_inject_len(sys->sched));
}

static void
warnings(tr_live *lv, tr_sink *k)
{
    family(k, "troupe_warnings_total", "counter", "Warnings raised.");
    for (unsigned i = 0; i < TR_WARN_KINDS; i++) {
        put(k, "troupe_warnings_total{kind=\"%s\"} %" PRIu64 "\n",
            tr__warn_names[i], lv->warnings_total[i]);
    }
    family(k, "troupe_warning_active", "gauge",
           "Warnings raised and not yet cleared (value: what was measured).");
    for (uint32_t i = 0; i < lv->nws; i++) {
        const tr_wstate *w = &lv->ws[i];
        if (!w->raised) {
            continue;
        }
        put(k, "troupe_warning_active{kind=\"%s\",path=\"",
            tr__warn_names[w->kind]);
        tr__sink_label(k, w->path);
        put(k, "\"} %.9g\n", w->value);
    }
    family(k, "troupe_inspect_requests_total", "counter",
           "Requests to the inspection endpoint.");
    put(k, "troupe_inspect_requests_total %" PRIu64 "\n", lv->requests);
    family(k, "troupe_inspect_watchers", "gauge", "Clients of /events.");
    put(k, "troupe_inspect_watchers %u\n", lv->nwatchers);
    family(k, "troupe_inspect_events_total", "counter",
           "Events posted to /events.");
    put(k, "troupe_inspect_events_total %" PRIu64 "\n", lv->events_total);
    family(k, "troupe_inspect_events_lost_total", "counter",
           "Events that slow /events clients lost.");
    put(k, "troupe_inspect_events_lost_total %" PRIu64 "\n", lv->events_lost);
}

void
tr__metrics_render(tr_live *lv, tr_sink *k)
{
    totals(lv, k);
    workers(lv, k);
    actors(lv, k);
    warnings(lv, k);
}
