/*
 * Envelope caches and their depot, on one thread: a consumer's cache that
 * overflows hands batches to the depot only as far as producers have shown
 * they take them, and the rest to the allocator; a producer's cache that
 * takes the depot's last batch doubles what it keeps, up to its bound.
 */
#include "support/tr_test.h"

#include "mailbox/envelope.h"

#include <stdlib.h>
#include <string.h>

enum { SIZE = 8 }; /* a 64-bit payload: one class */

typedef struct depot_fx {
    tr_env_depot *d;
    tr_env_cache producer;
    tr_env_cache consumer;
} depot_fx;

static int
setup(void **state)
{
    depot_fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL || tr__env_depot_create(&fx->d) != TR_OK) {
        free(fx);
        return -1;
    }
    tr__env_cache_init(&fx->producer, fx->d, false);
    tr__env_cache_init(&fx->consumer, fx->d, false);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    depot_fx *fx = *state;

    tr__env_cache_flush(&fx->producer);
    tr__env_cache_flush(&fx->consumer);
    tr__env_depot_destroy(fx->d);
    free(fx);
    return 0;
}

static void
expect_depot(depot_fx *fx, uint32_t held, uint32_t keep)
{
    uint32_t h = 99;
    uint32_t k = 99;

    tr__env_depot_count(fx->d, SIZE, &h, &k);
    assert_int_equal(h, held);
    assert_int_equal(k, keep);
}

/* `n` envelopes from the allocator (a plain thread's), or from the
 * producer's cache when `from` is set. */
static tr_envelope **
take(tr_env_cache *from, uint32_t n)
{
    tr_envelope **env = calloc(n, sizeof(*env));

    assert_non_null(env);
    for (uint32_t i = 0; i < n; i++) {
        env[i] = tr__env_create_in(from, SIZE);
        assert_non_null(env[i]);
        assert_int_equal(env[i]->size, SIZE);
    }
    return env;
}

/* The consumer frees them: its cache, when full, spills a batch to the
 * depot (or the allocator) every TR_ENV_BATCH frees. */
static void
give(depot_fx *fx, tr_envelope **env, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        tr__env_destroy_in(&fx->consumer, env[i]);
    }
    free(env);
}

static void
test_depot_keeps_what_producers_take(void **state)
{
    depot_fx *fx = *state;
    uint32_t keep = TR_ENV_DEPOT_MIN;
    uint32_t n;

    expect_depot(fx, 0, keep);
    /* A consumer alone (a collector, a lone worker): after its cache is
     * full, the depot keeps a few batches, the rest goes back. */
    n = TR_ENV_CACHE_MAX + 40 * TR_ENV_BATCH;
    give(fx, take(NULL, n), n);
    expect_depot(fx, keep, keep);
    /* A producer that takes the last batch doubles what the depot keeps,
     * up to its bound. */
    while (keep < TR_ENV_DEPOT_MAX) {
        n = keep * TR_ENV_BATCH;
        tr_envelope **drawn = take(&fx->producer, n);
        expect_depot(fx, 0, 2 * keep);
        keep *= 2;
        give(fx, drawn, n);
        expect_depot(fx, keep / 2, keep);
        n = 40 * TR_ENV_BATCH;
        give(fx, take(NULL, n), n);
        expect_depot(fx, keep, keep);
    }
    n = keep * TR_ENV_BATCH;
    give(fx, take(&fx->producer, n), n);
    expect_depot(fx, keep, TR_ENV_DEPOT_MAX);
    /* A producer that takes from the depot only part of it keeps the
     * bound where it was. */
    n = TR_ENV_BATCH;
    give(fx, take(&fx->producer, n), n);
    expect_depot(fx, keep, TR_ENV_DEPOT_MAX);
}

/*
 * No two envelopes share a cache line: each starts a line, and the lines
 * its header and payload reach are its own, whether it came from the
 * allocator or from a cache that reuses one size's envelope for another
 * size of its class. (Two that shared a line, in conversations on two
 * workers, made every message on both a miss.) Each payload is written
 * whole, which ASan checks against the block.
 */
static void
test_envelopes_own_their_cache_lines(void **state)
{
    static const uint32_t sizes[] = {0,  1,  8,  31, 32,  33,
                                     64, 95, 96, 97, 200, 4000};
    enum { N = 16 };
    depot_fx *fx = *state;

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint32_t size = sizes[k];
        uintptr_t first[N];
        uintptr_t last[N];
        tr_envelope *env[N];

        for (int i = 0; i < N; i++) {
            env[i] = tr__env_create_in(&fx->producer, size);
            assert_non_null(env[i]);
            memset(tr__env_data(env[i]), 0xa5, size);
            first[i] = (uintptr_t)env[i] / TR_CACHE_LINE;
            last[i] = ((uintptr_t)env[i] + sizeof(tr_envelope) + size - 1) /
                      TR_CACHE_LINE;
            assert_int_equal((uintptr_t)env[i] % TR_CACHE_LINE, 0);
            for (int j = 0; j < i; j++) {
                assert_true(last[i] < first[j] || last[j] < first[i]);
            }
        }
        for (int i = 0; i < N; i++) {
            tr__env_destroy_in(&fx->producer, env[i]);
        }
    }
}

/*
 * What the envelopes stand on: tr__alloc_aligned and tr__calloc_aligned
 * start a line at every size, from one byte through jemalloc's small
 * classes to large blocks, although they no longer pass jemalloc an
 * alignment (common/tr_alloc.c); the whole lines are the block's
 * (written whole; ASan checks them in its build), and calloc's are zero.
 * Blocks of one size are allocated several at a time, so that a class's
 * regions after the first are looked at too.
 */
static void
test_aligned_blocks_start_a_line_at_every_size(void **state)
{
    static const size_t large[] = {4000,  8192,  14336,   14337,
                                   16384, 20000, 1 << 16, 1 << 20};
    enum { N = 4, SMALL = 1100 };

    (void)state;
    for (size_t k = 0; k < SMALL + sizeof(large) / sizeof(large[0]); k++) {
        size_t size = k < SMALL ? k + 1 : large[k - SMALL];
        size_t lines = (size + TR_CACHE_LINE - 1) / TR_CACHE_LINE;
        unsigned char *p[N];
        unsigned char *z[N];

        for (int i = 0; i < N; i++) {
            p[i] = tr__alloc_aligned(size);
            z[i] = tr__calloc_aligned(size);
            assert_non_null(p[i]);
            assert_non_null(z[i]);
            assert_int_equal((uintptr_t)p[i] % TR_CACHE_LINE, 0);
            assert_int_equal((uintptr_t)z[i] % TR_CACHE_LINE, 0);
            for (size_t b = 0; b < lines * TR_CACHE_LINE; b++) {
                assert_int_equal(z[i][b], 0);
            }
            memset(p[i], 0x5a, lines * TR_CACHE_LINE);
        }
        for (int i = 0; i < N; i++) {
            tr__free_aligned(p[i], size);
            tr__free_aligned(z[i], size);
        }
    }
}

/*
 * A packed cache (a one-worker system's) allocates each class's size as it
 * is, 32 to 128 bytes by 16, and says so in the header. An envelope of
 * whole lines (a plain thread's) that it takes in stays whole lines, for
 * the largest size of its class too. Each goes back to the allocator as it
 * was allocated, whoever frees it, and so do the batches a full cache
 * spills (checked builds assert the size: common/tr_alloc.c).
 */
static void
test_packed_cache_allocates_each_class_as_it_is(void **state)
{
    enum { SPILLED = TR_ENV_CACHE_MAX + 2 * TR_ENV_BATCH };
    tr_env_cache packed;

    (void)state;
    tr__env_cache_init(&packed, NULL, true);
    for (uint32_t size = 0; size <= TR_ENV_SMALL; size++) {
        uint32_t top = 16 * tr__env_class(size); /* the class's largest */
        tr_envelope *env = tr__env_create_in(&packed, size);
        tr_envelope *plain = tr__env_create(size);

        assert_non_null(env);
        assert_non_null(plain);
        assert_int_equal(env->block, sizeof(tr_envelope) + top);
        assert_int_equal(plain->block, 0);
        memset(tr__env_data(env), 0x5a, top);
        tr__env_destroy_in(&packed, plain);
        tr_envelope *again = tr__env_create_in(&packed, top);
        assert_ptr_equal(again, plain);
        assert_int_equal(again->block, 0);
        assert_int_equal(again->size, top);
        assert_int_equal((uintptr_t)again % TR_CACHE_LINE, 0);
        memset(tr__env_data(again), 0xa5, top);
        tr__env_destroy(again);
        tr__env_destroy(env);
    }
    tr_envelope **env = calloc(SPILLED, sizeof(*env));
    assert_non_null(env);
    for (uint32_t i = 0; i < SPILLED; i++) {
        env[i] = tr__env_create_in(&packed, i % (TR_ENV_SMALL + 1));
        assert_non_null(env[i]);
    }
    for (uint32_t i = 0; i < SPILLED; i++) {
        tr__env_destroy_in(&packed, env[i]);
    }
    free(env);
    tr__env_cache_flush(&packed);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_depot_keeps_what_producers_take,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelopes_own_their_cache_lines,
                                        setup, teardown),
        cmocka_unit_test(test_aligned_blocks_start_a_line_at_every_size),
        cmocka_unit_test(test_packed_cache_allocates_each_class_as_it_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
