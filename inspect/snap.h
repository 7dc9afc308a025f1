/*
 * Private: the nodes of a snapshot, and the renderers, shared by
 * tr_inspect_snapshot (inspect.c) and the live endpoint (live.c,
 * metrics.c). See inspect.c.
 */
#ifndef TR_INSPECT_SNAP_H
#define TR_INSPECT_SNAP_H

#include <troupe/inspect.h>

#include "actors/ext.h"

#include <stdarg.h>

/* One node of the tree, copied under the tree lock. */
typedef struct tr_snode {
    uint32_t depth;
    char path[256];
    uint64_t addr; /* local id, or 0 */
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
    uint64_t busy_ns, dead; /* time in handlers (while watched), dead
                               letters */
    char name[64];          /* registered name, or "" */
    const char *strategy;   /* supervisors with bookkeeping */
    uint32_t max_restarts, period_ms;
} tr_snode;

typedef struct tr_snap {
    tr_snode *v;
    size_t n, cap;
    bool oom;
} tr_snap;

/* Copy every tree into `out` (tree order); the counters are read on the
 * way, the registered names after the lock (`names`). out->oom tells a
 * failed allocation. */
void tr__snap_collect(tr_system *sys, tr_snap *out, bool names);
void tr__snap_free(tr_snap *s);
/* The nearest node before `i` one level up, or NULL. */
const tr_snode *tr__snap_parent(const tr_snap *s, size_t i);

/* A text buffer: fixed (`grow` false: output stops at `cap`) or growing
 * (then `oom` tells a failed allocation). */
typedef struct tr_sink {
    char *p;
    size_t cap, len;
    bool grow;
    bool oom;
} tr_sink;

void tr__sink_put(tr_sink *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tr__sink_vput(tr_sink *k, const char *fmt, va_list ap);
/* `s` as the inside of a JSON or DOT string. */
void tr__sink_escaped(tr_sink *k, const char *s);
/* `s` as the inside of a Prometheus label value. */
void tr__sink_label(tr_sink *k, const char *s);
void tr__sink_free(tr_sink *k);

/* One node in JSON; `live` adds the endpoint's counters. */
void tr__render_json(tr_sink *k, const tr_snode *nd, bool first, bool live);
void tr__render_text(tr_sink *k, const tr_snode *nd);
void tr__render_dot(tr_sink *k, const tr_snode *nd, const tr_snode *parent);

extern const char *const tr__exit_names[];

#endif /* TR_INSPECT_SNAP_H */
