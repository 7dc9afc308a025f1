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
 * The address of an actor: a small value (slot index and generation), never
 * a pointer. It stays valid across restarts by a supervisor; once its actor
 * has stopped, every call that takes it returns TR_ENOACTOR. The zero value
 * is TR_ADDR_NONE and never names an actor.
 */
typedef struct tr_addr {
    uint64_t id;
} tr_addr;

#define TR_ADDR_NONE ((tr_addr){0})

/** True when `a` and `b` name the same actor incarnation. */
static inline bool
tr_addr_eq(tr_addr a, tr_addr b)
{
    return a.id == b.id;
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
