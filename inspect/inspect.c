/*
 * Snapshots of the supervision trees.
 *
 * Two steps. Under the system's tree_lock (which every supervisor holds
 * while it changes its bookkeeping) the trees are copied into a flat array
 * of nodes in tree order, with each actor's counters read on the way (they
 * are atomics: reading them stops nobody). Then, without the lock, the
 * nodes are rendered. Rendering writes whole nodes only and keeps room for
 * the document's end, so a full buffer yields a shorter valid document that
 * says how many nodes it left out.
 */
#include "inspect/snap.h"

#include <troupe/error.h>

#include "actors/internal.h"
#include "common/tr_alloc.h"
#include "supervisor/sup.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { NODE_TEXT = 1024, TRAILER = 128 };

typedef tr_snode node;
typedef tr_snap nodes;

static const char *const strategy_names[] = {
    "one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"};
static const char *const restart_names[] = {"permanent", "transient",
                                            "temporary"};

static node *
push(nodes *ns)
{
    if (ns->n == ns->cap) {
        size_t ncap = ns->cap == 0 ? 16 : ns->cap * 2;
        node *v = tr__alloc(sizeof(node) * ncap);
        if (v == NULL) {
            ns->oom = true;
            return NULL;
        }
        if (ns->v != NULL) {
            memcpy(v, ns->v, sizeof(node) * ns->n);
            tr__free(ns->v, sizeof(node) * ns->cap);
        }
        ns->v = v;
        ns->cap = ncap;
    }
    node *nd = &ns->v[ns->n++];
    memset(nd, 0, sizeof(*nd));
    return nd;
}

static void
read_counters(tr_system *sys, node *nd)
{
    tr_actor_stats st;

    if (nd->addr == 0 ||
        tr_actor_stats_get(sys, tr__addr(sys, nd->addr), &st) != TR_OK) {
        return;
    }
    nd->live = true;
    nd->mailbox_len = st.mailbox_len;
    nd->handled = st.messages_handled;
    tr_ext *x = tr_load_acq(&tr__table_slot(sys->table, nd->addr)->ext);
    if (x != NULL) {
        nd->mailbox_hwm = tr_load_relaxed(&x->hwm);
        nd->busy_ns = tr_load_relaxed(&x->busy_ns);
        nd->dead = tr_load_relaxed(&x->dead);
    }
}

static void
sup_fields(node *nd, const tr_sup *s)
{
    nd->strategy = strategy_names[s->strategy];
    nd->max_restarts = s->max_restarts;
    nd->period_ms = s->period_ms;
    if (s->mode == SUP_TERMINATE || s->mode == SUP_GIVE_UP ||
        s->mode == SUP_KILL) {
        nd->status = "terminating";
    }
}

/* Under the tree lock: `s`'s children, depth-first. */
static void
walk(tr_system *sys, nodes *ns, const tr_sup *s, const char *path,
     uint32_t depth)
{
    for (const child *c = s->head; c != NULL && !ns->oom; c = c->next) {
        node *nd = push(ns);
        if (nd == NULL) {
            return;
        }
        nd->depth = depth;
        snprintf(nd->path, sizeof(nd->path), "%.190s/%.63s", path, c->id);
        nd->addr = c->state == CHILD_DOWN ? 0 : c->addr.id;
        nd->node = sys->node;
        nd->behaviour = c->spec.behaviour->name != NULL
                            ? c->spec.behaviour->name
                            : "(unnamed)";
        nd->supervisor = c->spec.kind == TR_SUPERVISOR;
        switch (c->state) {
        case CHILD_RUNNING:
            nd->status = "running";
            break;
        case CHILD_STOPPING:
            nd->status = "stopping";
            break;
        case CHILD_HELD:
            nd->status = "restarting";
            break;
        default:
            nd->status = "stopped";
            break;
        }
        nd->restart = restart_names[c->spec.restart];
        nd->restarts = c->restarts;
        nd->last = c->last;
        nd->fail_ms = c->fail_ms;
        nd->failed = c->failed;
        read_counters(sys, nd);
        if (c->sub != NULL) {
            sup_fields(nd, c->sub);
            char sub_path[256];
            snprintf(sub_path, sizeof(sub_path), "%s", nd->path);
            walk(sys, ns, c->sub, sub_path, depth + 1);
        }
    }
}

/* Outside the tree lock (a record's lock is never taken under it): the
 * registered names. Records are never freed while the system runs. */
static void
read_names(tr_system *sys, nodes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        node *nd = &ns->v[i];
        tr_actor *a =
            nd->addr != 0 ? tr__table_slot(sys->table, nd->addr) : NULL;
        tr_ext *x = a != NULL ? tr_load_acq(&a->ext) : NULL;
        if (x == NULL) {
            continue;
        }
        pthread_mutex_lock(&x->lock);
        if (x->name != NULL) {
            snprintf(nd->name, sizeof(nd->name), "%s", x->name);
        }
        pthread_mutex_unlock(&x->lock);
    }
}

void
tr__snap_collect(tr_system *sys, nodes *ns, bool names)
{
    pthread_mutex_lock(&sys->tree_lock);
    for (uint32_t r = 0; r < sys->nroots && !ns->oom; r++) {
        const tr_sup *s = sys->roots[r];
        node *nd = push(ns);
        if (nd == NULL) {
            break;
        }
        snprintf(nd->path, sizeof(nd->path), "/%s", s->name);
        nd->addr = s->self;
        nd->node = sys->node;
        nd->behaviour = tr_supervisor_behaviour.name;
        nd->supervisor = true;
        nd->status = "running";
        sup_fields(nd, s);
        read_counters(sys, nd);
        char path[256];
        snprintf(path, sizeof(path), "%s", nd->path);
        walk(sys, ns, s, path, 1);
    }
    pthread_mutex_unlock(&sys->tree_lock);
    if (names && !ns->oom) {
        read_names(sys, ns);
    }
}

void
tr__snap_free(nodes *ns)
{
    tr__free(ns->v, sizeof(node) * ns->cap);
    ns->v = NULL;
    ns->n = ns->cap = 0;
}

/* ---- rendering ---- */

typedef tr_sink sink;

/* Room for `more` bytes and the NUL; false when there is none. */
static bool
reserve(sink *k, size_t more)
{
    if (k->len + more + 1 <= k->cap) {
        return true;
    }
    if (!k->grow || k->oom) {
        return false;
    }
    size_t ncap = k->cap < 4096 ? 4096 : k->cap;
    while (ncap < k->len + more + 1) {
        ncap *= 2;
    }
    char *p = tr__alloc(ncap);
    if (p == NULL) {
        k->oom = true;
        return false;
    }
    if (k->p != NULL) {
        memcpy(p, k->p, k->len + 1);
        tr__free(k->p, k->cap);
    }
    k->p = p;
    k->cap = ncap;
    return true;
}

void
tr__sink_vput(sink *k, const char *fmt, va_list ap)
{
    va_list again;

    va_copy(again, ap);
    if (k->grow) {
        int want = vsnprintf(NULL, 0, fmt, again);
        va_end(again);
        if (want < 0 || !reserve(k, (size_t)want)) {
            return;
        }
        va_copy(again, ap);
    }
    if (k->len + 1 >= k->cap) {
        va_end(again);
        return;
    }
    int n = vsnprintf(k->p + k->len, k->cap - k->len, fmt, again);
    va_end(again);
    if (n > 0) {
        k->len += (size_t)n < k->cap - k->len ? (size_t)n : k->cap - k->len - 1;
    }
}

void
tr__sink_put(sink *k, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tr__sink_vput(k, fmt, ap);
    va_end(ap);
}

#define put tr__sink_put

static void
put_char(sink *k, char ch)
{
    if (reserve(k, 1)) {
        k->p[k->len++] = ch;
        k->p[k->len] = '\0';
    }
}

void
tr__sink_escaped(sink *k, const char *s)
{
    for (; *s != '\0' && (k->grow || k->len + 7 < k->cap); s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            put(k, "\\%c", ch);
        } else if (ch < 0x20) {
            put(k, "\\u%04x", ch);
        } else {
            put_char(k, (char)ch);
        }
    }
}

void
tr__sink_label(sink *k, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            put(k, "\\%c", *s);
        } else if (*s == '\n') {
            put(k, "\\n");
        } else {
            put_char(k, *s);
        }
    }
}

void
tr__sink_free(sink *k)
{
    if (k->grow && k->p != NULL) {
        tr__free(k->p, k->cap);
    }
    k->p = NULL;
    k->cap = k->len = 0;
}

const char *const tr__exit_names[] = {"normal", "shutdown", "failed", "killed",
                                      "noactor"};

void
tr__render_json(sink *k, const node *nd, bool first, bool live)
{
    put(k, "%s{\"path\":\"", first ? "" : ",");
    tr__sink_escaped(k, nd->path);
    tr_addr a = {.id = nd->addr, .node = nd->node};
    put(k, "\",\"address\":\"" TR_ADDR_FMT "\",\"behaviour\":\"",
        TR_ADDR_ARGS(a));
    tr__sink_escaped(k, nd->behaviour);
    put(k, "\",\"kind\":\"%s\",\"status\":\"%s\",\"depth\":%u",
        nd->supervisor ? "supervisor" : "worker", nd->status, nd->depth);
    if (nd->restart != NULL) {
        put(k, ",\"restart\":\"%s\"", nd->restart);
    }
    put(k, ",\"restarts\":%u", nd->restarts);
    if (nd->failed) {
        put(k, ",\"last_failure\":{\"kind\":\"%s\",\"code\":%d,\"reason\":\"",
            tr__exit_names[nd->last.kind], nd->last.code);
        tr__sink_escaped(k, nd->last.text);
        put(k, "\",\"at_ms\":%" PRIu64 "}", nd->fail_ms);
    } else {
        put(k, ",\"last_failure\":null");
    }
    put(k,
        ",\"mailbox\":{\"length\":%" PRIu64 ",\"high_water\":%" PRIu64
        "},\"handled\":%" PRIu64,
        nd->mailbox_len, nd->mailbox_hwm, nd->handled);
    if (nd->strategy != NULL) {
        put(k,
            ",\"strategy\":\"%s\",\"intensity\":{\"max_restarts\":%u,"
            "\"period_ms\":%u}",
            nd->strategy, nd->max_restarts, nd->period_ms);
    }
    if (live) {
        put(k,
            ",\"handler_ns\":%" PRIu64 ",\"dead_letters\":%" PRIu64
            ",\"name\":",
            nd->busy_ns, nd->dead);
        if (nd->name[0] != '\0') {
            put(k, "\"");
            tr__sink_escaped(k, nd->name);
            put(k, "\"");
        } else {
            put(k, "null");
        }
    }
    put(k, "}");
}

void
tr__render_text(sink *k, const node *nd)
{
    put(k, "%*s%s", (int)nd->depth * 2, "", nd->path);
    if (nd->strategy != NULL) {
        put(k, " [%s %u/%ums]", nd->strategy, nd->max_restarts, nd->period_ms);
    } else {
        put(k, " (%s)", nd->behaviour);
    }
    put(k, " %s", nd->status);
    if (nd->addr != 0) {
        tr_addr a = {.id = nd->addr, .node = nd->node};
        put(k, " " TR_ADDR_FMT, TR_ADDR_ARGS(a));
    }
    if (nd->restart != NULL) {
        put(k, " %s", nd->restart);
    }
    put(k,
        " restarts=%u handled=%" PRIu64 " queued=%" PRIu64
        " queued_peak=%" PRIu64,
        nd->restarts, nd->handled, nd->mailbox_len, nd->mailbox_hwm);
    if (nd->failed) {
        put(k, " last: %s at %" PRIu64 " ms", nd->last.text, nd->fail_ms);
    }
    put(k, "\n");
}

void
tr__render_dot(sink *k, const node *nd, const node *parent)
{
    const char *leaf = strrchr(nd->path, '/');

    put(k, "  \"");
    tr__sink_escaped(k, nd->path);
    put(k, "\" [shape=%s,label=\"", nd->supervisor ? "box" : "ellipse");
    tr__sink_escaped(k, leaf != NULL ? leaf + 1 : nd->path);
    put(k, "\\n");
    tr__sink_escaped(k, nd->strategy != NULL ? nd->strategy : nd->behaviour);
    put(k, " %s\\nrestarts %u\"];\n", nd->status, nd->restarts);
    if (parent != NULL) {
        put(k, "  \"");
        tr__sink_escaped(k, parent->path);
        put(k, "\" -> \"");
        tr__sink_escaped(k, nd->path);
        put(k, "\";\n");
    }
}

const node *
tr__snap_parent(const nodes *ns, size_t i)
{
    for (size_t j = i; j-- > 0;) {
        if (ns->v[j].depth + 1 == ns->v[i].depth) {
            return &ns->v[j];
        }
    }
    return NULL;
}

/* The document's closing text for `omitted` nodes left out. */
static void
render_trailer(sink *k, tr_inspect_format format, size_t omitted)
{
    if (format == TR_INSPECT_JSON) {
        put(k, "],\"omitted\":%zu}", omitted);
    } else if (format == TR_INSPECT_TEXT) {
        if (omitted != 0) {
            put(k, "... %zu more nodes omitted\n", omitted);
        }
    } else {
        if (omitted != 0) {
            put(k, "  \"omitted\" [shape=note,label=\"%zu more\"];\n", omitted);
        }
        put(k, "}\n");
    }
}

static size_t
trailer_len(tr_inspect_format format, size_t omitted)
{
    char t[TRAILER];
    sink k = {t, sizeof(t), 0, false, false};
    t[0] = '\0';
    render_trailer(&k, format, omitted);
    return k.len;
}

int
tr_inspect_snapshot(tr_system *sys, tr_inspect_format format, char *buf,
                    size_t cap, size_t *len)
{
    if (sys == NULL || buf == NULL || len == NULL || cap == 0 ||
        (unsigned)format > TR_INSPECT_DOT) {
        return TR_EINVAL;
    }
    buf[0] = '\0';
    nodes ns = {0};
    bool entered;
    /* The tree is copied out: only the copy needs the system. */
    int rc = tr__sys_enter_any(sys, &entered);
    if (rc != TR_OK) {
        return rc;
    }
    tr__snap_collect(sys, &ns, false);
    if (entered) {
        tr__sys_leave(sys);
    }
    if (ns.oom) {
        tr__snap_free(&ns);
        return TR_ENOMEM;
    }
    char one[NODE_TEXT];
    sink k = {buf, cap, 0, false, false};
    size_t shown = 0;

    if (format == TR_INSPECT_JSON) {
        put(&k, "{\"version\":%d,\"nodes\":[", TR_INSPECT_VERSION);
    } else if (format == TR_INSPECT_DOT) {
        put(&k, "digraph troupe {\n");
    }
    /* Whole documents only: the header and the trailer for every node left
     * out must fit, or nothing is written. */
    if (k.len + trailer_len(format, ns.n) + 1 > cap) {
        buf[0] = '\0';
        tr__snap_free(&ns);
        return TR_EINVAL;
    }
    for (; shown < ns.n; shown++) {
        sink nk = {one, sizeof(one), 0, false, false};
        one[0] = '\0';
        if (format == TR_INSPECT_JSON) {
            tr__render_json(&nk, &ns.v[shown], shown == 0, false);
        } else if (format == TR_INSPECT_TEXT) {
            tr__render_text(&nk, &ns.v[shown]);
        } else {
            tr__render_dot(&nk, &ns.v[shown], tr__snap_parent(&ns, shown));
        }
        /* This node, and the trailer for the ones after it. */
        if (k.len + nk.len + trailer_len(format, ns.n - shown - 1) + 1 > cap) {
            break;
        }
        memcpy(buf + k.len, one, nk.len + 1);
        k.len += nk.len;
    }
    size_t omitted = ns.n - shown;
    render_trailer(&k, format, omitted);
    tr__snap_free(&ns);
    *len = k.len;
    return omitted == 0 ? TR_OK : TR_ETRUNCATED;
}
