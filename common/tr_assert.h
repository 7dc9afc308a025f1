/*
 * Internal invariants. TR_ASSERT is on in debug and test builds and compiled
 * out with NDEBUG; tr__panic reports corrupted internal state and aborts.
 * Neither is ever used for bad input or out-of-memory.
 */
#ifndef TR_ASSERT_H
#define TR_ASSERT_H

_Noreturn void tr__panic(const char *file, int line, const char *what);

#ifdef NDEBUG
#define TR_ASSERT(x) ((void)0)
#else
#define TR_ASSERT(x)                                                           \
    ((x) ? (void)0 : tr__panic(__FILE__, __LINE__, "assertion failed: " #x))
#endif

/* An invariant that the compiler may build on where TR_ASSERT is off
 * (a pointer never NULL, say): for a cheap condition without side
 * effects, on the message path only. */
#ifdef NDEBUG
#define TR_ASSUME(x) ((x) ? (void)0 : __builtin_unreachable())
#else
#define TR_ASSUME(x) TR_ASSERT(x)
#endif

#endif /* TR_ASSERT_H */
