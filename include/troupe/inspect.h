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
 *            empty document; TR_ENOMEM.
 */
TR_API int tr_inspect_snapshot(tr_system *sys, tr_inspect_format format,
                               char *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_INSPECT_H */
