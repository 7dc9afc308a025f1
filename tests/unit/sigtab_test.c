/*
 * The tables of owed signals (actors/sigtab.c), on one thread: entries
 * found by key and recipient among many, the same key for two recipients,
 * removal from the middle of a cluster, and the room given back as a
 * crowd goes.
 */
#include "support/tr_test.h"

#include "actors/sigtab.h"

enum { CROWD = 100000, STAY = 10 };

/* Stand-ins for envelopes: only their addresses are compared. */
static char marks[CROWD + 1];

static tr_envelope *
mark(uint32_t i)
{
    return (tr_envelope *)(void *)&marks[i];
}

static void
test_sigtab_finds_each_among_many_and_gives_room_back(void **state)
{
    tr_sigtab t = {0};
    uint32_t peak;

    (void)state;
    for (uint32_t i = 0; i < CROWD; i++) {
        /* Keys as references look: a count in the high half. */
        uint64_t key = ((uint64_t)(i + 1) << 32) | 7u;
        assert_true(tr__sigtab_put(&t, (tr_sigent){key, i + 1, mark(i)}));
    }
    /* One key twice, told apart by who receives it. */
    assert_true(tr__sigtab_put(&t, (tr_sigent){1ull << 32 | 7u, 99, NULL}));
    assert_int_equal(t.len, CROWD + 1);
    assert_true(t.cap >= 2 * t.len);
    peak = t.cap;
    assert_false(tr__sigtab_remove(&t, 1ull << 32 | 7u, 98));
    assert_true(tr__sigtab_remove(&t, 1ull << 32 | 7u, 99));
    /* All but STAY go, from both ends; each is found until it goes. */
    for (uint32_t k = 0; k < CROWD - STAY; k++) {
        uint32_t i = k % 2 == 0 ? k / 2 : CROWD - 1 - k / 2;
        uint64_t key = ((uint64_t)(i + 1) << 32) | 7u;
        assert_non_null(tr__sigtab_find(&t, key, i + 1));
        assert_ptr_equal(tr__sigtab_take(&t, key, i + 1), mark(i));
        assert_null(tr__sigtab_find(&t, key, i + 1));
    }
    assert_int_equal(t.len, STAY);
    /* The room went with them; what stayed is found. */
    assert_true(t.cap < peak / 1000);
    assert_true(t.cap >= 2 * t.len);
    for (uint32_t i = (CROWD - STAY) / 2; i < (CROWD + STAY) / 2; i++) {
        uint64_t key = ((uint64_t)(i + 1) << 32) | 7u;
        tr_sigent *e = tr__sigtab_find(&t, key, i + 1);
        assert_non_null(e);
        assert_ptr_equal(e->env, mark(i));
    }
    tr__sigtab_fini(&t);
    assert_int_equal(t.cap, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigtab_finds_each_among_many_and_gives_room_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
