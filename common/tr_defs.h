/*
 * Small definitions every module uses: cache-line size and alignment,
 * branch hints, container_of.
 */
#ifndef TR_DEFS_H
#define TR_DEFS_H

#include <stddef.h>

#include <ck_md.h>

#define TR_CACHE_LINE CK_MD_CACHELINE
#define TR_CACHE_ALIGNED _Alignas(TR_CACHE_LINE)

#define tr_likely(x) __builtin_expect(!!(x), 1)
#define tr_unlikely(x) __builtin_expect(!!(x), 0)

#define tr_container_of(ptr, type, member)                                     \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* TR_DEFS_H */
