/*
 * Warnings, computed on the loop thread every `sample_ms` while someone
 * watches, from what the runtime counts anyway:
 *
 *   slow handler   a worker whose count of tasks started and count of
 *                  sleeps have not moved for `slow_handler_ms`, and that is
 *                  not asleep, has run one actor all that time (one handler,
 *                  or one batch of them). The worker stores the task it
 *                  starts beside that count, which names the actor.
 *   mailbox        a pass over the actor table: messages admitted less
 *                  messages taken, per live actor.
 *   restart storm  restart events per supervisor, over a sliding second.
 *   call overdue   calls that ended more than `call_overdue_ms` after they
 *                  began (counted by the runtime while watched), a second.
 *   dead letters   the dead-letter counters, a second.
 *
 * Hysteresis. A warning is raised when its value reaches the threshold
 * and cleared only once the value has stayed below `clear_pct` percent of
 * it for `hold_ms`; a value that hovers around the threshold raises it
 * once. Each raise and clear goes to the `on_warning` callback and to the
 * /events clients; raised ones show in /metrics and /tree.json.
 */
#include "inspect/live.h"

#include "common/tr_alloc.h"
#include "common/tr_park.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *const tr__warn_names[TR_WARN_KINDS] = {
    "slow_handler", "mailbox", "restart_storm", "call_overdue", "dead_letters"};

static const char *const units[TR_WARN_KINDS] = {"ms", "messages", "restarts/s",
                                                 "calls/s", "dead letters/s"};

static void
emit(tr_live *lv, const tr_wstate *w, bool raised)
{
    char json[EVENT_TEXT - 64];
    tr_sink k = {json, sizeof(json), 0, false, false};
    uint64_t now_ms = tr_now_ms(lv->sys);

    if (raised) {
        lv->warnings_total[w->kind]++;
    }
    json[0] = '\0';
    tr__sink_put(&k, "\"type\":\"%s\",\"kind\":\"%s\",\"path\":\"",
                 raised ? "raised" : "cleared", tr__warn_names[w->kind]);
    tr__sink_escaped(&k, w->path);
    tr__sink_put(&k,
                 "\",\"value\":%.3f,\"threshold\":%.3f,\"unit\":\"%s\","
                 "\"at_ms\":%" PRIu64,
                 w->value, w->threshold, units[w->kind], now_ms);
    tr__live_post(lv, "warning", json, NULL);
    if (lv->opts.on_warning != NULL) {
        const tr_warning out = {
            .kind = w->kind,
            .raised = raised,
            .path = w->path,
            .value = w->value,
            .threshold = w->threshold,
            .at_ms = now_ms,
        };
        lv->opts.on_warning(lv->opts.on_warning_arg, &out);
    }
}

static tr_wstate *
find(tr_live *lv, tr_warning_kind kind, const char *key)
{
    for (uint32_t i = 0; i < lv->nws; i++) {
        if (lv->ws[i].kind == kind && strcmp(lv->ws[i].key, key) == 0) {
            return &lv->ws[i];
        }
    }
    return NULL;
}

static uint32_t
threshold_of(const tr_live *lv, tr_warning_kind kind)
{
    switch (kind) {
    case TR_WARN_SLOW_HANDLER:
        return lv->opts.slow_handler_ms;
    case TR_WARN_MAILBOX:
        return lv->opts.mailbox_len;
    case TR_WARN_RESTART_STORM:
        return lv->opts.restart_rate;
    case TR_WARN_CALL_OVERDUE:
        /* Its threshold is the call's wait; any overdue call warns. */
        return lv->opts.call_overdue_ms == TR_WARN_OFF ? TR_WARN_OFF : 1;
    default:
        return lv->opts.dead_letter_rate;
    }
}

/*
 * One measurement of `kind` about `key`. `path` (shown) may be NULL when
 * it is costly to work out: `name_it` is then called to fill it, only
 * when the warning is raised.
 */
static void
judge(tr_live *lv, tr_warning_kind kind, const char *key, double value,
      const char *path,
      void (*name_it)(tr_live *, const void *, char *, size_t), const void *arg)
{
    uint32_t t = threshold_of(lv, kind);
    tr_wstate *w = find(lv, kind, key);
    uint64_t now = tr__now_ns();

    if (t == TR_WARN_OFF) {
        return;
    }
    if (w == NULL) {
        if (value < (double)t) {
            return;
        }
        if (lv->nws == lv->capws &&
            !tr__grow((void **)&lv->ws, &lv->capws, sizeof(tr_wstate), 8)) {
            return;
        }
        w = &lv->ws[lv->nws++];
        memset(w, 0, sizeof(*w));
        w->kind = kind;
        snprintf(w->key, sizeof(w->key), "%s", key);
    }
    w->seen = true;
    w->value = value;
    w->threshold = (double)t;
    if (!w->raised) {
        if (value >= (double)t) {
            if (path != NULL) {
                snprintf(w->path, sizeof(w->path), "%s", path);
            } else if (name_it != NULL) {
                name_it(lv, arg, w->path, sizeof(w->path));
            }
            w->raised = true;
            w->below_since = 0;
            emit(lv, w, true);
        }
        return;
    }
    if (value * 100.0 >= (double)t * lv->opts.clear_pct) {
        w->below_since = 0;
        return;
    }
    if (w->below_since == 0) {
        w->below_since = now;
    } else if (now - w->below_since >= (uint64_t)lv->opts.hold_ms * 1000000u) {
        w->raised = false;
        emit(lv, w, false);
    }
}

/* Entries of `kind` not measured this pass measured 0; settled ones go. */
static void
settle(tr_live *lv, tr_warning_kind kind)
{
    for (uint32_t i = 0; i < lv->nws; i++) {
        tr_wstate *w = &lv->ws[i];
        if (w->kind != kind) {
            continue;
        }
        if (!w->seen) {
            char key[64];
            snprintf(key, sizeof(key), "%s", w->key);
            judge(lv, kind, key, 0.0, NULL, NULL, NULL);
            w = &lv->ws[i];
        }
        w->seen = false;
    }
    for (uint32_t i = lv->nws; i-- > 0;) {
        if (lv->ws[i].kind == kind && !lv->ws[i].raised) {
            lv->ws[i] = lv->ws[--lv->nws];
        }
    }
}

/* ---- the measurements ---- */

static void
name_slot(tr_live *lv, const void *arg, char *buf, size_t cap)
{
    tr__live_slot_path(lv->sys, (uint32_t)(uintptr_t)arg, buf, cap);
}

static void
slow_handlers(tr_live *lv, uint64_t now)
{
    tr_system *sys = lv->sys;

    for (unsigned i = 0; i < lv->nworkers; i++) {
        tr_worker_stats st;
        tr_worker_seen *seen = &lv->wseen[i];
        char key[32];

        tr__sched_worker_stats(sys->sched, i, now, &st);
        if (st.runs != seen->runs || st.parks != seen->parks ||
            seen->since_ns == 0) {
            seen->runs = st.runs;
            seen->parks = st.parks;
            seen->since_ns = now;
        }
        double ms = 0.0;
        uint32_t index = 0;
        if (!st.parked && st.current != NULL) {
            ms = (double)(now - seen->since_ns) / 1e6;
            /* Slots are never freed while the system runs, and a slot's
             * index never changes: reading it is safe even if the task
             * ended meanwhile (the name is then a moment late). */
            index = tr_container_of(st.current, tr_actor, task)->index;
        }
        snprintf(key, sizeof(key), "worker %u", i);
        judge(lv, TR_WARN_SLOW_HANDLER, key, ms, NULL, name_slot,
              (const void *)(uintptr_t)index);
    }
    settle(lv, TR_WARN_SLOW_HANDLER);
}

static void
mailboxes(tr_live *lv)
{
    tr_system *sys = lv->sys;
    uint32_t len = tr__table_len(sys->table);
    uint32_t t = lv->opts.mailbox_len;

    if (t == TR_WARN_OFF) {
        return;
    }
    for (uint32_t i = 0; i < len; i++) {
        tr_actor *a = tr__table_at(sys->table, i);
        uint64_t depth = tr__lane_len(&a->sent, &a->taken);
        char key[32];
        if (depth == 0 && lv->nws == 0) {
            continue;
        }
        snprintf(key, sizeof(key), "slot %u", i);
        if ((double)depth * 100.0 < (double)t * lv->opts.clear_pct &&
            find(lv, TR_WARN_MAILBOX, key) == NULL) {
            continue; /* nothing to track */
        }
        judge(lv, TR_WARN_MAILBOX, key, (double)depth, NULL, name_slot,
              (const void *)(uintptr_t)i);
    }
    settle(lv, TR_WARN_MAILBOX);
}

static tr_storm *
storm_of(tr_live *lv, const char *sup)
{
    for (uint32_t i = 0; i < lv->nstorms; i++) {
        if (strcmp(lv->storms[i].path, sup) == 0) {
            return &lv->storms[i];
        }
    }
    if (lv->nstorms == lv->capstorms &&
        !tr__grow((void **)&lv->storms, &lv->capstorms, sizeof(tr_storm), 8)) {
        return NULL;
    }
    tr_storm *s = &lv->storms[lv->nstorms++];
    memset(s, 0, sizeof(*s));
    snprintf(s->path, sizeof(s->path), "%s", sup);
    s->window_ns = tr__now_ns();
    return s;
}

/* Move `s`'s window up to `now`. */
static void
slide(tr_storm *s, uint64_t now)
{
    while (now - s->window_ns >= 1000000000u) {
        s->prev = s->cur;
        s->cur = 0;
        s->window_ns += 1000000000u;
        if (s->prev == 0 && now - s->window_ns >= 1000000000u) {
            s->window_ns = now; /* idle for long: skip ahead */
        }
    }
}

void
tr__warn_restart(tr_live *lv, const char *sup)
{
    tr_storm *s = storm_of(lv, sup);

    if (s != NULL) {
        slide(s, tr__now_ns());
        s->cur++;
    }
}

static void
storms(tr_live *lv, uint64_t now)
{
    for (uint32_t i = 0; i < lv->nstorms; i++) {
        tr_storm *s = &lv->storms[i];
        slide(s, now);
        /* The last second: what the previous window leaves of it, and
         * this one's. */
        double frac = (double)(now - s->window_ns) / 1e9;
        double rate = (double)s->prev * (1.0 - frac) + (double)s->cur;
        judge(lv, TR_WARN_RESTART_STORM, s->path, rate, s->path, NULL, NULL);
    }
    settle(lv, TR_WARN_RESTART_STORM);
    for (uint32_t i = lv->nstorms; i-- > 0;) {
        tr_storm *s = &lv->storms[i];
        if (s->cur == 0 && s->prev == 0 &&
            find(lv, TR_WARN_RESTART_STORM, s->path) == NULL) {
            lv->storms[i] = lv->storms[--lv->nstorms];
        }
    }
}

static void
rates(tr_live *lv, uint64_t now)
{
    tr_system *sys = lv->sys;
    tr_system_stats st;

    if (tr_system_stats_get(sys, &st) != TR_OK) {
        return;
    }
    uint64_t overdue = tr_load_relaxed(&sys->calls_overdue);
    if (lv->rate_ns == 0) {
        lv->rate_ns = now;
        lv->rate_dead = st.dead_letters;
        lv->rate_overdue = overdue;
        return;
    }
    if (now - lv->rate_ns >= 1000000000u) {
        double s = (double)(now - lv->rate_ns) / 1e9;
        lv->dead_rate = (double)(st.dead_letters - lv->rate_dead) / s;
        lv->overdue_rate = (double)(overdue - lv->rate_overdue) / s;
        lv->rate_ns = now;
        lv->rate_dead = st.dead_letters;
        lv->rate_overdue = overdue;
    } else if (overdue != lv->rate_overdue &&
               lv->overdue_rate < (double)(overdue - lv->rate_overdue)) {
        /* An overdue call warns at once, not a second later. */
        lv->overdue_rate = (double)(overdue - lv->rate_overdue);
    }
    judge(lv, TR_WARN_DEAD_LETTERS, "system", lv->dead_rate, "", NULL, NULL);
    settle(lv, TR_WARN_DEAD_LETTERS);
    judge(lv, TR_WARN_CALL_OVERDUE, "system", lv->overdue_rate, "", NULL, NULL);
    settle(lv, TR_WARN_CALL_OVERDUE);
}

void
tr__warn_sample(tr_live *lv)
{
    uint64_t now = tr__now_ns();

    slow_handlers(lv, now);
    mailboxes(lv);
    storms(lv, now);
    rates(lv, now);
}

void
tr__warn_free(tr_live *lv)
{
    tr__free(lv->ws, sizeof(tr_wstate) * lv->capws);
    tr__free(lv->storms, sizeof(tr_storm) * lv->capstorms);
    tr__free(lv->wseen, sizeof(tr_worker_seen) * lv->nworkers);
    lv->ws = NULL;
    lv->storms = NULL;
    lv->wseen = NULL;
    lv->nws = lv->capws = 0;
    lv->nstorms = lv->capstorms = 0;
    lv->rate_ns = 0;
    lv->dead_rate = lv->overdue_rate = 0.0;
}
