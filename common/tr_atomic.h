/*
 * Every atomic operation in troupe's own code, with its memory order in its
 * name. They are thin wrappers over C11 <stdatomic.h>, so ThreadSanitizer and
 * model checkers see exactly the operations that run. Module code never
 * calls <stdatomic.h> directly and never issues a standalone fence.
 *
 * The operand is a pointer to an _Atomic object; the macros are generic over
 * the object's type.
 */
#ifndef TR_ATOMIC_H
#define TR_ATOMIC_H

#include <stdatomic.h>

/*
 * In the systematic build (common/tr_systematic.h) every operation below
 * is first a switch point, where the seeded scheduler may stop the caller
 * and run another thread. In every other build TR__AT(op) is `op`, so the
 * operations compile exactly as written.
 */
#ifdef TROUPE_SYSTEMATIC
#include "common/tr_systematic.h"
#define TR__AT(op) (tr__sys_point(), (op))
#else
#define TR__AT(op) op
#endif

#define tr_atomic(T) _Atomic(T)

#define tr_init_relaxed(p, v) atomic_init((p), (v))

#define tr_load_relaxed(p)                                                     \
    TR__AT(atomic_load_explicit((p), memory_order_relaxed))
#define tr_load_acq(p) TR__AT(atomic_load_explicit((p), memory_order_acquire))
#define tr_load_seqcst(p)                                                      \
    TR__AT(atomic_load_explicit((p), memory_order_seq_cst))

#define tr_store_relaxed(p, v)                                                 \
    TR__AT(atomic_store_explicit((p), (v), memory_order_relaxed))
#define tr_store_rel(p, v)                                                     \
    TR__AT(atomic_store_explicit((p), (v), memory_order_release))
#define tr_store_seqcst(p, v)                                                  \
    TR__AT(atomic_store_explicit((p), (v), memory_order_seq_cst))

#define tr_xchg_acqrel(p, v)                                                   \
    TR__AT(atomic_exchange_explicit((p), (v), memory_order_acq_rel))
#define tr_xchg_seqcst(p, v)                                                   \
    TR__AT(atomic_exchange_explicit((p), (v), memory_order_seq_cst))

/* Compare-and-swap; on failure `*expected` receives the current value. */
#define tr_cas_acqrel(p, expected, desired)                                    \
    TR__AT(atomic_compare_exchange_strong_explicit((p), (expected), (desired), \
                                                   memory_order_acq_rel,       \
                                                   memory_order_acquire))
#define tr_cas_rel(p, expected, desired)                                       \
    TR__AT(atomic_compare_exchange_strong_explicit((p), (expected), (desired), \
                                                   memory_order_release,       \
                                                   memory_order_relaxed))
#define tr_cas_seqcst(p, expected, desired)                                    \
    TR__AT(atomic_compare_exchange_strong_explicit((p), (expected), (desired), \
                                                   memory_order_seq_cst,       \
                                                   memory_order_seq_cst))
#define tr_cas_weak_acqrel(p, expected, desired)                               \
    TR__AT(atomic_compare_exchange_weak_explicit((p), (expected), (desired),   \
                                                 memory_order_acq_rel,         \
                                                 memory_order_acquire))

#define tr_cas_weak_seqcst(p, expected, desired)                               \
    TR__AT(atomic_compare_exchange_weak_explicit((p), (expected), (desired),   \
                                                 memory_order_seq_cst,         \
                                                 memory_order_relaxed))

#define tr_for_relaxed(p, v)                                                   \
    TR__AT(atomic_fetch_or_explicit((p), (v), memory_order_relaxed))
#define tr_for_acqrel(p, v)                                                    \
    TR__AT(atomic_fetch_or_explicit((p), (v), memory_order_acq_rel))
#define tr_for_seqcst(p, v)                                                    \
    TR__AT(atomic_fetch_or_explicit((p), (v), memory_order_seq_cst))
#define tr_fand_seqcst(p, v)                                                   \
    TR__AT(atomic_fetch_and_explicit((p), (v), memory_order_seq_cst))

#define tr_faa_relaxed(p, v)                                                   \
    TR__AT(atomic_fetch_add_explicit((p), (v), memory_order_relaxed))
#define tr_faa_acqrel(p, v)                                                    \
    TR__AT(atomic_fetch_add_explicit((p), (v), memory_order_acq_rel))
#define tr_faa_seqcst(p, v)                                                    \
    TR__AT(atomic_fetch_add_explicit((p), (v), memory_order_seq_cst))
#define tr_fas_relaxed(p, v)                                                   \
    TR__AT(atomic_fetch_sub_explicit((p), (v), memory_order_relaxed))
#define tr_fas_acqrel(p, v)                                                    \
    TR__AT(atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel))
#define tr_fas_seqcst(p, v)                                                    \
    TR__AT(atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst))

#endif /* TR_ATOMIC_H */
