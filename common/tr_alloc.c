/*
 * The allocator switch (see tr_alloc.h). The failure hook is one relaxed
 * counter checked on every allocation: a fault test sets it, production code
 * never does, and a relaxed load of a line nobody writes costs nothing.
 */
#include "common/tr_alloc.h"

#include "common/tr_assert.h"
#include "common/tr_atomic.h"
#include "common/tr_defs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef TROUPE_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

/* Allocations left before failing; negative means never fail. */
tr_atomic(long) tr__fail_countdown = -1;

bool
tr__alloc_should_fail_slow(void)
{
    long left = tr_load_relaxed(&tr__fail_countdown);

    /* Count down to 0 and stay there: from then on every allocation fails
     * (a plain decrement would go past 0 to "off"). */
    while (left > 0) {
        if (tr_cas_weak_acqrel(&tr__fail_countdown, &left, left - 1)) {
            return false;
        }
    }
    return left == 0;
}

void *
tr__alloc(size_t size)
{
    if (tr__alloc_should_fail()) {
        return NULL;
    }
#ifdef TROUPE_USE_JEMALLOC
    return mallocx(size == 0 ? 1 : size, 0);
#else
    return malloc(size == 0 ? 1 : size);
#endif
}

void
tr__alloc_warm(void)
{
#ifdef TROUPE_USE_JEMALLOC
    void *p = mallocx(1, 0);

    if (p != NULL) {
        sdallocx(p, 1, 0);
    }
#else
    free(malloc(1));
#endif
}

void *
tr__calloc(size_t size)
{
    if (tr__alloc_should_fail()) {
        return NULL;
    }
#ifdef TROUPE_USE_JEMALLOC
    return mallocx(size == 0 ? 1 : size, MALLOCX_ZERO);
#else
    return calloc(1, size == 0 ? 1 : size);
#endif
}

bool
tr__grow(void **array, uint32_t *cap, size_t elem, uint32_t first)
{
    uint32_t ncap = *cap == 0 ? first : *cap * 2;
    void *n;

    if (*cap > UINT32_MAX / 2 || (n = tr__alloc(elem * ncap)) == NULL) {
        return false;
    }
    if (*array != NULL) {
        memcpy(n, *array, elem * *cap);
        tr__free(*array, elem * *cap);
    }
    *array = n;
    *cap = ncap;
    return true;
}

#if defined(TROUPE_USE_JEMALLOC) && !defined(NDEBUG)
/* A size to free `p` with is one of the size class it was allocated in:
 * otherwise sdallocx puts it back in the wrong one, silently (checked
 * builds). */
static bool
sized_right(void *p, size_t size)
{
    return sallocx(p, 0) == nallocx(size, 0);
}
#endif

void
tr__free(void *p, size_t size)
{
    if (p == NULL) {
        return;
    }
#ifdef TROUPE_USE_JEMALLOC
    TR_ASSERT(sized_right(p, size == 0 ? 1 : size));
    sdallocx(p, size == 0 ? 1 : size, 0);
#else
    (void)size;
    free(p);
#endif
}

void *
tr__map_zeroed(size_t size)
{
    void *p;

    if (tr__alloc_should_fail()) {
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void
tr__unmap(void *p, size_t size)
{
    if (p != NULL) {
        munmap(p, size);
    }
}

/* `size` rounded up to whole cache lines. */
static size_t
whole_lines(size_t size)
{
    return (size + TR_CACHE_LINE - 1) & ~(size_t)(TR_CACHE_LINE - 1);
}

#ifdef TROUPE_USE_JEMALLOC
static void *
line_aligned(void *p)
{
    TR_ASSERT(((uintptr_t)p & (TR_CACHE_LINE - 1)) == 0);
    return p;
}
#endif

/*
 * With jemalloc, whole lines asked for without MALLOCX_ALIGN are aligned
 * already: a small size that is whole lines has a size class of whole
 * lines, whose regions lie at multiples of their size from a page, and a
 * large one starts a page. That is how jemalloc's own aligned path
 * (sz_sa2u) serves a small alignment: the same class, the same bin. The
 * flag itself costs: it takes mallocx and sdallocx off their fast paths,
 * about 190 instructions more a spawn and end of an actor with state on
 * the heap (callgrind, skynet: docs/benchmarks.md). The envelope and
 * actor tests check the alignment.
 */
void *
tr__alloc_aligned(size_t size)
{
    if (tr__alloc_should_fail()) {
        return NULL;
    }
#ifdef TROUPE_USE_JEMALLOC
    return line_aligned(mallocx(whole_lines(size), 0));
#else
    return aligned_alloc(TR_CACHE_LINE, whole_lines(size));
#endif
}

void *
tr__calloc_aligned(size_t size)
{
#ifdef TROUPE_USE_JEMALLOC
    if (tr__alloc_should_fail()) {
        return NULL;
    }
    return line_aligned(mallocx(whole_lines(size), MALLOCX_ZERO));
#else
    void *p = tr__alloc_aligned(size);

    if (p != NULL) {
        memset(p, 0, whole_lines(size));
    }
    return p;
#endif
}

void
tr__free_aligned(void *p, size_t size)
{
    if (p == NULL) {
        return;
    }
#ifdef TROUPE_USE_JEMALLOC
    TR_ASSERT(sized_right(p, whole_lines(size)));
    sdallocx(p, whole_lines(size), 0);
#else
    (void)size;
    free(p);
#endif
}

void
tr__alloc_fail_after(long n)
{
    tr_store_relaxed(&tr__fail_countdown, n);
}
