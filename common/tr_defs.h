/*
 * Small definitions every module uses: cache-line size and alignment,
 * branch hints, container_of.
 */
#ifndef TR_DEFS_H
#define TR_DEFS_H

#include <stdint.h>

#include <stddef.h>

#include <ck_md.h>

#include <troupe/common.h>

#define TR_CACHE_LINE CK_MD_CACHELINE

/* An AddressSanitizer build: memory the runtime would keep for reuse goes
 * back to the allocator instead (or is poisoned), so that a use after free
 * is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define TR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TR_ASAN 1
#endif
#endif
#define TR_CACHE_ALIGNED _Alignas(TR_CACHE_LINE)

#define tr_likely(x) __builtin_expect(!!(x), 1)
#define tr_unlikely(x) __builtin_expect(!!(x), 0)

/* For the few functions of the message path that the compiler would
 * otherwise call (its size heuristics), where the call costs more than
 * the work. */
#define TR_HOT_INLINE inline __attribute__((always_inline))
/* For the rare path of a function on the message path, kept out of it so
 * that the common path is small enough to inline where it is called. */
#define TR_NOINLINE __attribute__((noinline))

#define tr_container_of(ptr, type, member)                                     \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Time arithmetic saturates instead of wrapping: a delay near UINT64_MAX
 * means "never", not "in a moment". */
static inline uint64_t
tr_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t
tr_sat_mul(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static inline uint64_t
tr_ms_to_ns(uint64_t ms)
{
    return tr_sat_mul(ms, 1000000u);
}

/* A tr_timeout (ms; negative: forever) as a wait for tr__ec_wait_ms
 * (-1: forever), and as a deadline in ns from `now` (UINT64_MAX: none). */
static inline long
tr_timeout_wait_ms(tr_timeout timeout)
{
    return timeout.ms < 0           ? -1
           : timeout.ms > INT32_MAX ? INT32_MAX
                                    : (long)timeout.ms;
}

static inline uint64_t
tr_timeout_deadline_ns(uint64_t now, tr_timeout timeout)
{
    return timeout.ms < 0 ? UINT64_MAX
                          : tr_sat_add(now, tr_ms_to_ns((uint64_t)timeout.ms));
}

#endif /* TR_DEFS_H */
