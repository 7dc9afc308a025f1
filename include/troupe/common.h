/*
 * Definitions shared by every public header: export and attribute macros,
 * and the actor address value.
 */
#ifndef TROUPE_COMMON_H
#define TROUPE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TR_API __attribute__((visibility("default")))
#define TR_NODISCARD __attribute__((warn_unused_result))
#define TR_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define TR_API
#define TR_NODISCARD
#define TR_DEPRECATED(msg)
#endif

/**
 * A timeout, in milliseconds, as every call that can wait or that arms a
 * deadline takes it: TR_NOWAIT (0) does not wait, TR_FOREVER (any negative
 * value) waits without limit, and a positive value waits at most that
 * long (saturating: a value near INT64_MAX is as good as forever).
 *
 * A struct rather than an integer so that the compiler checks it: a size,
 * a capacity or a message type passed where the timeout goes (or the
 * timeout where a size goes) does not compile. Make one with tr_ms(),
 * TR_NOWAIT or TR_FOREVER, and read it back from `ms`.
 */
typedef struct tr_timeout {
    int64_t ms; /* 0: do not wait, negative: no limit, else a limit */
} tr_timeout;

#ifdef __cplusplus
/** Do not wait: try once. */
#define TR_NOWAIT (tr_timeout{0})
/** Wait without limit. */
#define TR_FOREVER (tr_timeout{-1})
#else
/** Do not wait: try once. */
#define TR_NOWAIT ((tr_timeout){0})
/** Wait without limit. */
#define TR_FOREVER ((tr_timeout){-1})
#endif

/**
 * A timeout of `ms` milliseconds: tr_ms(100) waits at most 100 ms,
 * tr_ms(0) is TR_NOWAIT and any negative value is TR_FOREVER.
 */
static inline tr_timeout
tr_ms(int64_t ms)
{
    tr_timeout t;
    t.ms = ms;
    return t;
}

/**
 * The address of an actor: a small value, never a pointer, that can be
 * copied into message payloads. Two 64-bit words:
 *
 * - `id`, the local id: the actor's slot and a generation wide enough that
 *   an address never names a later actor, whatever the churn;
 * - `node`, the incarnation of the system (node) the actor lives on: a
 *   random non-zero word each system draws when it starts, so an address
 *   of another system, or of an earlier run, is refused (TR_EFOREIGN)
 *   instead of reaching an unrelated actor. 0 means "this system".
 *
 * It stays valid across restarts by a supervisor; once its actor has
 * stopped, every call that takes it returns TR_ENOACTOR. The zero value is
 * TR_ADDR_NONE and never names an actor. Print it with TR_ADDR_FMT.
 */
typedef struct tr_addr {
    uint64_t id;
    uint64_t node;
} tr_addr;

#ifdef __cplusplus
#define TR_ADDR_NONE (tr_addr{0, 0})
#else
#define TR_ADDR_NONE ((tr_addr){0, 0})
#endif

/** Bits of `tr_addr.id` that hold the slot index; the rest hold the
 * generation. */
#define TR_ADDR_INDEX_BITS 26

/**
 * printf format for an address, `<node:slot.generation>` (the node in hex,
 * slot and generation in decimal), a form two humans can compare:
 * `printf("actor " TR_ADDR_FMT "\n", TR_ADDR_ARGS(a))`.
 */
#define TR_ADDR_FMT "<%llx:%llu.%llu>"
#define TR_ADDR_ARGS(a)                                                        \
    (unsigned long long)(a).node,                                              \
        (unsigned long long)((a).id & ((1ull << TR_ADDR_INDEX_BITS) - 1)),     \
        (unsigned long long)((a).id >> TR_ADDR_INDEX_BITS)

/**
 * True when `a` and `b` name the same actor incarnation. A node word of 0
 * ("this system") matches any node word.
 */
static inline bool
tr_addr_eq(tr_addr a, tr_addr b)
{
    return a.id == b.id && (a.node == b.node || a.node == 0 || b.node == 0);
}

/** True for TR_ADDR_NONE. */
static inline bool
tr_addr_is_none(tr_addr a)
{
    return a.id == 0;
}

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_COMMON_H */
