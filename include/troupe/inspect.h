/*
 * Inspection: a snapshot of the running supervision trees, from any
 * thread, rendered as JSON, a plain-text tree or Graphviz DOT.
 *
 * The snapshot is consistent per tree (it is taken under the lock every
 * supervisor takes to change its bookkeeping); per-actor counters
 * (mailbox length, messages handled) are read a moment later, without
 * stopping anyone.
 */
#ifndef TROUPE_INSPECT_H
#define TROUPE_INSPECT_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tr_inspect_format {
    TR_INSPECT_JSON = 0, /* {"version":1,"nodes":[...]} in tree order */
    TR_INSPECT_TEXT,     /* one indented line per node */
    TR_INSPECT_DOT       /* a Graphviz digraph */
} tr_inspect_format;

/** The JSON document's "version"; it changes only when a field does. */
#define TR_INSPECT_VERSION 1

/** A buffer this large always holds a (possibly empty) valid document. */
#define TR_INSPECT_MIN_CAP 128

/**
 * Render every top-level supervisor's tree into `buf`. Per node: path,
 * address, behaviour, kind, status (running, stopping, restarting,
 * stopped, terminating), restart type and count, last failure (reason and
 * clock time in ms), mailbox length and high-water mark, messages
 * handled; for supervisors, strategy and intensity. Nodes come in tree
 * order (a parent before its children, children in start order).
 *
 * The size cap is reported, never silent: when the nodes do not all fit in
 * `cap` bytes, the output holds as many whole nodes as fit, stays a valid
 * document, says how many it left out ("omitted" in JSON, a last line in
 * text, a note in DOT), and the call returns TR_ETRUNCATED. A `cap` too
 * small for even the empty document with its note gets TR_EINVAL and an
 * empty string; TR_INSPECT_MIN_CAP bytes always suffice.
 *
 * Ownership: writes `buf` (NUL-terminated) and `*len` (bytes, without the
 *            NUL).
 * Context:   any thread, while the system runs.
 * Returns:   TR_OK; TR_ETRUNCATED (as above); TR_EINVAL for NULL
 *            arguments, an unknown format or a `cap` too small for an
 *            empty document; TR_ENOMEM; TR_ESHUTDOWN off the workers once
 *            shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_inspect_snapshot(tr_system *sys, tr_inspect_format format,
                               char *buf, size_t cap, size_t *len);

/* ---- the live endpoint ---- */

/** What a warning is about. */
typedef enum tr_warning_kind {
    TR_WARN_SLOW_HANDLER = 0,  /* one actor has held a worker too long */
    TR_WARN_MAILBOX = 1,       /* a mailbox holds too many messages */
    TR_WARN_RESTART_STORM = 2, /* a supervisor restarts children too often */
    TR_WARN_CALL_OVERDUE = 3,  /* calls take longer than they should */
    TR_WARN_DEAD_LETTERS = 4   /* dead letters come too fast */
} tr_warning_kind;

/** How many kinds of warning there are. */
#define TR_WARN_KINDS 5

/**
 * A warning raised or cleared. `path` names the node: a tree path
 * ("/app/db/cache"), a registered name, a behaviour name in parentheses for
 * an actor with neither, or "" for the whole system (call overdue, dead
 * letters). `value` is what was measured, in the threshold's unit
 * (milliseconds, messages, or events a second).
 */
typedef struct tr_warning {
    tr_warning_kind kind;
    bool raised;      /* true: raised now; false: cleared */
    const char *path; /* borrowed for the callback */
    double value;
    double threshold;
    uint64_t at_ms; /* the system clock (tr_now_ms) */
} tr_warning;

/**
 * Called on the inspection thread when a warning is raised or cleared; it
 * must not block for long (the endpoint waits for it). tr_inspect_serve,
 * tr_inspect_stop, tr_system_shutdown and tr_system_wait return TR_ESTATE
 * there. `w` is borrowed for the call.
 */
typedef void (*tr_warning_fn)(void *arg, const tr_warning *w);

/**
 * Options of the live endpoint; zero for any field means its default.
 *
 * Warnings. Each has a threshold; it is raised when the value reaches the
 * threshold and cleared only after the value has stayed below
 * `clear_pct` percent of it for `hold_ms` (hysteresis: a value that hovers
 * at the threshold raises it once). A threshold of TR_WARN_OFF turns that
 * warning off. Warnings are computed every `sample_ms` while someone
 * watches (a client of /events, a request in the last `linger_ms`, or an
 * `on_warning` callback), and never otherwise.
 */
typedef struct tr_inspect_opts {
    uint32_t slow_handler_ms;  /* one actor's run; default 500 */
    uint32_t mailbox_len;      /* messages queued; default 10000 */
    uint32_t restart_rate;     /* restarts a second under one supervisor;
                                  default 5 */
    uint32_t call_overdue_ms;  /* a call's wait for its reply; default
                                  5000 */
    uint32_t dead_letter_rate; /* dead letters a second; default 100 */
    uint32_t clear_pct;        /* default 50 */
    uint32_t hold_ms;          /* default 2000 */
    uint32_t sample_ms;        /* default 100 */
    /* Bytes queued for one /events client before it loses events (it is
     * told how many); default 65536. */
    uint32_t watcher_buffer;
    uint32_t max_watchers; /* /events clients at once; default 64, at
                              most TR_INSPECT_WATCHERS_MAX (and 64
                              connections more) */
    uint32_t heartbeat_ms; /* a comment line to each client; default 15000 */
    uint32_t linger_ms;    /* a request keeps the timing on; default 60000 */
    tr_warning_fn on_warning;
    void *on_warning_arg;
} tr_inspect_opts;

/** A threshold that turns its warning off. */
#define TR_WARN_OFF UINT32_MAX

/** The most /events clients at once; a larger `max_watchers` is this. */
#define TR_INSPECT_WATCHERS_MAX 65536u

#define TR_INSPECT_OPTS_INIT                                                   \
    {                                                                          \
        0                                                                      \
    }

/**
 * Serve the running system over HTTP, read-only, from a thread of its own
 * (never a worker): `/` (a page that draws the tree live), `/tree.json`
 * (the snapshot with per-actor counters), `/tree.dot`, `/tree.txt`,
 * `/metrics` (Prometheus text format 0.0.4) and `/events` (Server-Sent
 * Events: tree changes and warnings). `addr` is "host:port" with a numeric
 * IPv4 host or "[v6]:port"; port 0 picks a free one. Only loopback is
 * meant: a request that names a host other than the bound address or
 * localhost, in its Host header or its target (an absolute URI), gets 403,
 * and one with two Host headers 400 (DNS rebinding). A connection idle
 * for 10 s is closed, and so is one whose request has not arrived whole
 * 10 s after the connection opened or the previous reply ended; at most
 * `max_watchers` + 64 connections are served at once, the next wait to be
 * accepted. A NULL `addr` serves nothing but still computes warnings for
 * `on_warning`.
 *
 * While nobody watches the endpoint costs nothing: its thread sleeps, the
 * workers only read one flag per actor run. See the guide, "Inspecting a
 * running system".
 *
 * Ownership: borrows `addr` and `opts` (copied; NULL for defaults); writes
 *            `*port` (may be NULL) with the bound port.
 * Context:   a plain thread, while the system runs.
 * Returns:   TR_OK; TR_EINVAL for a NULL `sys` or an address that does not
 *            parse; TR_EALREADY if it is serving already; TR_ESTATE if the
 *            address cannot be bound (in use, not local), this build has
 *            no endpoint, or off a plain thread (on a worker, in an
 *            actor's callbacks, in an `on_warning` callback); TR_ESHUTDOWN;
 *            TR_ENOMEM.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_inspect_serve(tr_system *sys, const char *addr,
                            const tr_inspect_opts *opts, uint16_t *port);

/**
 * Stop the endpoint (tr_system_shutdown does it too): clients are
 * disconnected, the thread is joined, and nobody watches any more.
 *
 * Ownership: none.
 * Context:   a plain thread, not the inspection thread (not a warning
 *            callback).
 * Returns:   TR_OK; TR_EINVAL for a NULL `sys`; TR_ESTATE if it was not
 *            serving, or off a plain thread (as tr_inspect_serve);
 *            TR_ESHUTDOWN once shutdown has begun (it stops the endpoint
 *            itself).
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_inspect_stop(tr_system *sys);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_INSPECT_H */
