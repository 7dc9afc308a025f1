/*
 * The allocator switch. With TROUPE_ALLOCATOR=jemalloc every runtime object
 * comes from mallocx and returns through sdallocx with its size, so small
 * fixed-size objects (messages, actor state) live in jemalloc's thread
 * caches. With TROUPE_ALLOCATOR=system (sanitizer and valgrind builds) the
 * same calls map to malloc/free. Pointers from here are never passed to
 * free() and never mixed with the system allocator's.
 */
#ifndef TR_ALLOC_H
#define TR_ALLOC_H

#include "common/tr_atomic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns NULL when out of memory. */
void *tr__alloc(size_t size);
/* Returns zeroed memory, or NULL when out of memory. */
void *tr__calloc(size_t size);
/* Frees `p`, which tr__alloc or tr__calloc returned for `size` bytes. */
void tr__free(void *p, size_t size);
/* Set up the calling thread's allocator state (its arena and cache), which
 * the allocator does at a thread's first call; not a test failure point. */
void tr__alloc_warm(void);

/*
 * Double the array `*array` of `*cap` elements of `elem` bytes (to `first`
 * when empty), keeping its contents. Returns false, changing nothing, when
 * out of memory or when the count would pass UINT32_MAX.
 */
bool tr__grow(void **array, uint32_t *cap, size_t elem, uint32_t first);

/*
 * Zeroed pages straight from the kernel, `size` bytes (a multiple of the
 * page size): resident only once written, with nothing of an allocator's
 * around them, so a large table costs memory only for what is used. The
 * failure hook applies. NULL when out of memory.
 */
void *tr__map_zeroed(size_t size);
/* Gives back what tr__map_zeroed returned for `size` bytes. */
void tr__unmap(void *p, size_t size);

/* Memory aligned to a cache line, its size rounded up to whole lines, so
 * that nothing else shares its lines; NULL when out of memory. Zeroed by
 * the calloc form. */
void *tr__alloc_aligned(size_t size);
void *tr__calloc_aligned(size_t size);
/* Frees what tr__alloc_aligned or tr__calloc_aligned returned for `size`
 * bytes. */
void tr__free_aligned(void *p, size_t size);

/*
 * Test hook: after `n` more successful allocations every allocation fails;
 * a negative `n` turns the hook off. Process-wide, for fault tests only.
 */
void tr__alloc_fail_after(long n);

/* For allocators of troupe's own (envelope caches): true when the test
 * hook says this allocation fails. One relaxed load while it is off. */
extern tr_atomic(long) tr__fail_countdown;
bool tr__alloc_should_fail_slow(void);

/*
 * True when the hook is off, for the caches' hits on the message path.
 * The fault tests run checked builds; with NDEBUG (release) a hit skips
 * the hook and its load (three instructions of a message's budget), and
 * only calls that reach the allocator can be made to fail.
 */
static inline bool
tr__fail_hook_off(void)
{
#ifdef NDEBUG
    return true;
#else
    /* Relaxed: the hook is armed before the code under test starts. */
    return tr_load_relaxed(&tr__fail_countdown) < 0;
#endif
}

static inline bool
tr__alloc_should_fail(void)
{
    /* Relaxed: the hook is armed before the code under test starts. */
    return tr_load_relaxed(&tr__fail_countdown) >= 0 &&
           tr__alloc_should_fail_slow();
}

#endif /* TR_ALLOC_H */
