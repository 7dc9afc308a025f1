/*
 * The local run queue: FIFO pops, overflow of half the ring, batch steals,
 * and a concurrent test in which thieves steal while the owner pushes and
 * pops: every task is taken exactly once.
 */
#include "support/tr_test.h"

#include "scheduler/runq.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct item {
    tr_task task;
    tr_atomic(int) seen;
} item;

static tr_runq *
new_runq(void)
{
    tr_runq *q = aligned_alloc(64, sizeof(tr_runq));
    assert_non_null(q);
    tr__runq_init(q);
    return q;
}

static void
test_runq_pops_in_push_order(void **state)
{
    tr_runq *q = new_runq();
    tr_task tasks[10];
    unsigned n;

    (void)state;
    for (int i = 0; i < 10; i++) {
        assert_null(tr__runq_push(q, &tasks[i], &n));
    }
    assert_int_equal(tr__runq_len(q), 10);
    for (int i = 0; i < 10; i++) {
        assert_ptr_equal(tr__runq_pop(q), &tasks[i]);
    }
    assert_null(tr__runq_pop(q));
    free(q);
}

static void
test_runq_overflow_hands_back_half_plus_the_new_task(void **state)
{
    tr_runq *q = new_runq();
    tr_task tasks[TR_RUNQ_CAP + 1];
    unsigned n = 0;

    (void)state;
    for (int i = 0; i < TR_RUNQ_CAP; i++) {
        assert_null(tr__runq_push(q, &tasks[i], &n));
    }
    tr_task *batch = tr__runq_push(q, &tasks[TR_RUNQ_CAP], &n);
    assert_non_null(batch);
    assert_int_equal(n, TR_RUNQ_CAP / 2 + 1);
    /* The oldest half, in order, then the new task. */
    for (unsigned i = 0; i < TR_RUNQ_CAP / 2; i++) {
        assert_ptr_equal(batch, &tasks[i]);
        batch = batch->next;
    }
    assert_ptr_equal(batch, &tasks[TR_RUNQ_CAP]);
    assert_null(batch->next);
    assert_int_equal(tr__runq_len(q), TR_RUNQ_CAP / 2);
    assert_ptr_equal(tr__runq_pop(q), &tasks[TR_RUNQ_CAP / 2]);
    free(q);
}

static void
test_runq_steal_takes_half_and_returns_one(void **state)
{
    tr_runq *src = new_runq();
    tr_runq *dst = new_runq();
    tr_task tasks[10];
    unsigned n;

    (void)state;
    assert_null(tr__runq_steal(src, dst)); /* nothing to take */
    for (int i = 0; i < 10; i++) {
        tr__runq_push(src, &tasks[i], &n);
    }
    tr_task *t = tr__runq_steal(src, dst);
    /* Five taken: tasks 0..3 land in dst, task 4 is returned to run. */
    assert_ptr_equal(t, &tasks[4]);
    assert_int_equal(tr__runq_len(dst), 4);
    assert_int_equal(tr__runq_len(src), 5);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(tr__runq_pop(dst), &tasks[i]);
    }
    for (int i = 5; i < 10; i++) {
        assert_ptr_equal(tr__runq_pop(src), &tasks[i]);
    }
    free(src);
    free(dst);
}

/* ---- concurrent ---- */

enum { THIEVES = 3 };

typedef struct shared {
    tr_runq *owner_q;
    item *items;
    long n_items;
    tr_atomic(long) taken;
    tr_atomic(bool) done;
} shared;

static void
take(shared *sh, tr_task *t)
{
    item *it = tr_container_of(t, item, task);
    tr_faa_relaxed(&it->seen, 1);
    tr_faa_relaxed(&sh->taken, 1);
}

static void *
thief_main(void *arg)
{
    shared *sh = arg;
    tr_runq *mine = new_runq();

    while (!tr_load_acq(&sh->done)) {
        tr_task *t = tr__runq_steal(sh->owner_q, mine);
        if (t != NULL) {
            take(sh, t);
            while ((t = tr__runq_pop(mine)) != NULL) {
                take(sh, t);
            }
        }
    }
    free(mine);
    return NULL;
}

static void
test_runq_concurrent_steals_take_each_task_once(void **state)
{
    shared sh;
    pthread_t thieves[THIEVES];

    (void)state;
    sh.owner_q = new_runq();
    sh.n_items = 400000;
    sh.items = calloc((size_t)sh.n_items, sizeof(item));
    assert_non_null(sh.items);
    tr_init_relaxed(&sh.taken, 0);
    tr_init_relaxed(&sh.done, false);
    for (int i = 0; i < THIEVES; i++) {
        assert_int_equal(pthread_create(&thieves[i], NULL, thief_main, &sh), 0);
    }
    for (long i = 0; i < sh.n_items; i++) {
        unsigned n;
        tr_task *batch = tr__runq_push(sh.owner_q, &sh.items[i].task, &n);
        while (batch != NULL) {
            /* Overflow: the owner takes these itself. */
            tr_task *next = batch->next;
            take(&sh, batch);
            batch = next;
        }
        if (i % 3 == 0) {
            tr_task *t = tr__runq_pop(sh.owner_q);
            if (t != NULL) {
                take(&sh, t);
            }
        }
    }
    tr_task *t;
    while ((t = tr__runq_pop(sh.owner_q)) != NULL) {
        take(&sh, t);
    }
    /* Thieves may still hold a claim; wait until every task is counted. */
    while (tr_load_acq(&sh.taken) < sh.n_items) {
        t = tr__runq_pop(sh.owner_q);
        if (t != NULL) {
            take(&sh, t);
        }
    }
    tr_store_rel(&sh.done, true);
    for (int i = 0; i < THIEVES; i++) {
        pthread_join(thieves[i], NULL);
    }
    assert_int_equal(tr_load_relaxed(&sh.taken), sh.n_items);
    for (long i = 0; i < sh.n_items; i++) {
        assert_int_equal(tr_load_relaxed(&sh.items[i].seen), 1);
    }
    free(sh.items);
    free(sh.owner_q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runq_pops_in_push_order),
        cmocka_unit_test(test_runq_overflow_hands_back_half_plus_the_new_task),
        cmocka_unit_test(test_runq_steal_takes_half_and_returns_one),
        cmocka_unit_test(test_runq_concurrent_steals_take_each_task_once),
    };
    return cmocka_run_group_tests_name("runq", tests, NULL, NULL);
}
