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
#include <troupe/error.h>
#include <troupe/inspect.h>

#include "actors/internal.h"
#include "common/tr_alloc.h"
#include "supervisor/sup.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { NODE_TEXT = 1024, TRAILER = 128 };

typedef struct node {
    uint32_t depth;
    char path[256];
    uint64_t addr;
    uint64_t node; /* the system's node word, to print the address */
    const char *behaviour;
    bool supervisor;
    const char *status;
    const char *restart; /* NULL for a top-level supervisor */
    uint32_t restarts;
    tr_signal last; /* meaningful when `failed` */
    uint64_t fail_ms;
    bool failed; /* a time of 0 is a time (the clock starts at 0) */
    bool live;
    uint64_t mailbox_len, mailbox_hwm, handled;
    const char *strategy; /* supervisors with bookkeeping */
    uint32_t max_restarts, period_ms;
} node;

typedef struct nodes {
    node *v;
    size_t n, cap;
    bool oom;
} nodes;

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

static void
collect(tr_system *sys, nodes *ns)
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
}

/* ---- rendering ---- */

typedef struct sink {
    char *p;
    size_t cap, len;
} sink;

static void
put(sink *k, const char *fmt, ...)
{
    va_list ap;

    if (k->len + 1 >= k->cap) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(k->p + k->len, k->cap - k->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        k->len += (size_t)n < k->cap - k->len ? (size_t)n : k->cap - k->len - 1;
    }
}

/* `s` as the inside of a JSON (or DOT) string. */
static void
put_escaped(sink *k, const char *s)
{
    for (; *s != '\0' && k->len + 7 < k->cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            put(k, "\\%c", ch);
        } else if (ch < 0x20) {
            put(k, "\\u%04x", ch);
        } else {
            k->p[k->len++] = (char)ch;
            k->p[k->len] = '\0';
        }
    }
}

static const char *const exit_names[] = {"normal", "shutdown", "failed",
                                         "killed", "noactor"};

static void
render_json(sink *k, const node *nd, bool first)
{
    put(k, "%s{\"path\":\"", first ? "" : ",");
    put_escaped(k, nd->path);
    tr_addr a = {.id = nd->addr, .node = nd->node};
    put(k, "\",\"address\":\"" TR_ADDR_FMT "\",\"behaviour\":\"",
        TR_ADDR_ARGS(a));
    put_escaped(k, nd->behaviour);
    put(k, "\",\"kind\":\"%s\",\"status\":\"%s\",\"depth\":%u",
        nd->supervisor ? "supervisor" : "worker", nd->status, nd->depth);
    if (nd->restart != NULL) {
        put(k, ",\"restart\":\"%s\"", nd->restart);
    }
    put(k, ",\"restarts\":%u", nd->restarts);
    if (nd->failed) {
        put(k, ",\"last_failure\":{\"kind\":\"%s\",\"code\":%d,\"reason\":\"",
            exit_names[nd->last.kind], nd->last.code);
        put_escaped(k, nd->last.text);
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
    put(k, "}");
}

static void
render_text(sink *k, const node *nd)
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

static void
render_dot(sink *k, const node *nd, const node *parent)
{
    put(k, "  \"");
    put_escaped(k, nd->path);
    put(k, "\" [shape=%s,label=\"%s\\n%s %s\\nrestarts %u\"];\n",
        nd->supervisor ? "box" : "ellipse",
        strrchr(nd->path, '/') != NULL ? strrchr(nd->path, '/') + 1 : nd->path,
        nd->strategy != NULL ? nd->strategy : nd->behaviour, nd->status,
        nd->restarts);
    if (parent != NULL) {
        put(k, "  \"");
        put_escaped(k, parent->path);
        put(k, "\" -> \"");
        put_escaped(k, nd->path);
        put(k, "\";\n");
    }
}

/* The nearest node before `i` one level up. */
static const node *
parent_of(const nodes *ns, size_t i)
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
    sink k = {t, sizeof(t), 0};
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
    collect(sys, &ns);
    if (ns.oom) {
        tr__free(ns.v, sizeof(node) * ns.cap);
        return TR_ENOMEM;
    }
    char one[NODE_TEXT];
    sink k = {buf, cap, 0};
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
        tr__free(ns.v, sizeof(node) * ns.cap);
        return TR_EINVAL;
    }
    for (; shown < ns.n; shown++) {
        sink nk = {one, sizeof(one), 0};
        one[0] = '\0';
        if (format == TR_INSPECT_JSON) {
            render_json(&nk, &ns.v[shown], shown == 0);
        } else if (format == TR_INSPECT_TEXT) {
            render_text(&nk, &ns.v[shown]);
        } else {
            render_dot(&nk, &ns.v[shown], parent_of(&ns, shown));
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
    tr__free(ns.v, sizeof(node) * ns.cap);
    *len = k.len;
    return omitted == 0 ? TR_OK : TR_ETRUNCATED;
}
