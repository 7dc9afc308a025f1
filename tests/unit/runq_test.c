/*
 * The local run queue: FIFO pops, overflow of half the ring, batch steals,
 * a thief held between its claim and the end of its steal (the owner's
 * room is counted from the claim, not from the queue length), and a
 * concurrent test in which thieves steal while the owner pushes and pops:
 * every task is taken exactly once.
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
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tr__runq_push(q, &tasks[i], spill), 0);
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
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    for (int i = 0; i < TR_RUNQ_CAP; i++) {
        assert_int_equal(tr__runq_push(q, &tasks[i], spill), 0);
    }
    assert_int_equal(tr__runq_push(q, &tasks[TR_RUNQ_CAP], spill),
                     TR_RUNQ_CAP / 2 + 1);
    /* The oldest half, in order, then the new task. */
    for (unsigned i = 0; i < TR_RUNQ_CAP / 2; i++) {
        assert_ptr_equal(spill[i], &tasks[i]);
    }
    assert_ptr_equal(spill[TR_RUNQ_CAP / 2], &tasks[TR_RUNQ_CAP]);
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
    tr_task *spill[TR_RUNQ_SPILL];

    (void)state;
    assert_null(tr__runq_steal(src, dst)); /* nothing to take */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tr__runq_push(src, &tasks[i], spill), 0);
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

/* ---- a thief held in the middle of a steal ---- */

/* Sized from the ring (256 slots; 16 in the systematic build); the
 * comments give the figures for 256. */
enum {
    HELD_TASKS = 3 * TR_RUNQ_CAP,
    FILL = TR_RUNQ_CAP * 25 / 32,        /* 200 */
    CLAIM = FILL - FILL / 2,             /* 100 */
    OWN_FILL = TR_RUNQ_CAP * 15 / 16,    /* 240 */
    OWN_CLAIM = OWN_FILL - OWN_FILL / 2, /* 120 */
    OWN_ROOM = TR_RUNQ_CAP - OWN_FILL,   /* 16 */
    VICTIM_STOLEN = OWN_ROOM + 1,        /* 17 */
};

static void
take_once(tr_task *t, int *seen, tr_task *base)
{
    assert_non_null(t);
    seen[t - base]++;
}

static void
assert_each_once(const int *seen, int n)
{
    for (int i = 0; i < n; i++) {
        if (seen[i] != 1) {
            fail_msg("task %d taken %d times", i, seen[i]);
        }
    }
}

/* The owner pops past a held claim until its ring is empty by `real` and
 * full by `steal`: no push may overwrite a claimed slot, none may vanish. */
static void
test_runq_push_while_a_thief_holds_a_claim_loses_nothing(void **state)
{
    tr_runq *q = new_runq();
    tr_runq *dst = new_runq();
    tr_task tasks[HELD_TASKS];
    int seen[HELD_TASKS] = {0};
    tr_runq_claim c;
    tr_task *spill[TR_RUNQ_SPILL];
    int next = 0;
    tr_task *t;

    (void)state;
    for (; next < FILL; next++) {
        assert_int_equal(tr__runq_push(q, &tasks[next], spill), 0);
    }
    assert_int_equal(tr__runq_steal_claim(q, dst, &c), CLAIM);
    /* Another thief finds the ring busy and takes nothing. */
    tr_runq *other = new_runq();
    assert_null(tr__runq_steal(q, other));
    free(other);
    while ((t = tr__runq_pop(q)) != NULL) {
        take_once(t, seen, tasks);
    }
    /* Empty by real; the pushes up to TR_RUNQ_CAP fill it by steal. */
    for (; next < TR_RUNQ_CAP; next++) {
        assert_true(tr__runq_try_push(q, &tasks[next]));
    }
    while ((t = tr__runq_pop(q)) != NULL) {
        take_once(t, seen, tasks);
    }
    assert_int_equal(tr__runq_len(q), 0);
    assert_false(tr__runq_try_push(q, &tasks[next]));
    /* push hands the task back alone, for the inject queue. */
    assert_int_equal(tr__runq_push(q, &tasks[next], spill), 1);
    assert_ptr_equal(spill[0], &tasks[next]);
    take_once(spill[0], seen, tasks);
    next++;

    /* The thief finishes with exactly the tasks it claimed. */
    t = tr__runq_steal_finish(q, dst, &c);
    assert_ptr_equal(t, &tasks[CLAIM - 1]);
    take_once(t, seen, tasks);
    for (int i = 0; i < CLAIM - 1; i++) {
        t = tr__runq_pop(dst);
        assert_ptr_equal(t, &tasks[i]);
        take_once(t, seen, tasks);
    }
    assert_null(tr__runq_pop(dst));

    /* The room is back. */
    for (; next < 2 * TR_RUNQ_CAP + 1; next++) {
        assert_true(tr__runq_try_push(q, &tasks[next]));
    }
    assert_false(tr__runq_try_push(q, &tasks[next]));
    while ((t = tr__runq_pop(q)) != NULL) {
        take_once(t, seen, tasks);
    }
    assert_each_once(seen, next);
    free(q);
    free(dst);
}

/*
 * A worker whose own ring is held by a thief steals into it: it may store
 * only into the room left by that thief's claim, or the held thief would
 * copy the wrong tasks.
 */
static void
test_runq_steal_into_a_ring_held_by_another_thief(void **state)
{
    tr_runq *mine = new_runq(); /* the stealing worker's own ring */
    tr_runq *held = new_runq(); /* the ring of the thief held on `mine` */
    tr_runq *victim = new_runq();
    tr_task tasks[HELD_TASKS];
    int seen[HELD_TASKS] = {0};
    tr_runq_claim c;
    tr_task *spill[TR_RUNQ_SPILL];
    int next = 0;
    tr_task *t;

    (void)state;
    for (; next < OWN_FILL; next++) {
        assert_int_equal(tr__runq_push(mine, &tasks[next], spill), 0);
    }
    assert_int_equal(tr__runq_steal_claim(mine, held, &c), OWN_CLAIM);
    while ((t = tr__runq_pop(mine)) != NULL) {
        take_once(t, seen, tasks);
    }
    /* 240 positions held back: room for 16 stored, plus one returned. */
    for (int i = 0; i < FILL; i++) {
        assert_int_equal(tr__runq_push(victim, &tasks[next + i], spill), 0);
    }
    t = tr__runq_steal(victim, mine);
    assert_non_null(t);
    take_once(t, seen, tasks);
    assert_int_equal(tr__runq_len(mine), OWN_ROOM);
    assert_int_equal(tr__runq_len(victim), FILL - VICTIM_STOLEN);

    /* The held thief still copies its own 120 tasks. */
    t = tr__runq_steal_finish(mine, held, &c);
    assert_ptr_equal(t, &tasks[OWN_CLAIM - 1]);
    take_once(t, seen, tasks);
    for (int i = 0; i < OWN_CLAIM - 1; i++) {
        t = tr__runq_pop(held);
        assert_ptr_equal(t, &tasks[i]);
        take_once(t, seen, tasks);
    }
    while ((t = tr__runq_pop(mine)) != NULL) {
        take_once(t, seen, tasks);
    }
    while ((t = tr__runq_pop(victim)) != NULL) {
        take_once(t, seen, tasks);
    }
    assert_each_once(seen, next + FILL);
    free(mine);
    free(held);
    free(victim);
}

/* With no room at all a steal takes one task, to run, and stores none. */
static void
test_runq_steal_into_a_full_held_ring_takes_one(void **state)
{
    tr_runq *mine = new_runq();
    tr_runq *held = new_runq();
    tr_runq *victim = new_runq();
    tr_task tasks[TR_RUNQ_CAP + 10];
    tr_runq_claim c;
    tr_task *spill[TR_RUNQ_SPILL];
    tr_task *t;

    (void)state;
    for (int i = 0; i < TR_RUNQ_CAP; i++) {
        assert_int_equal(tr__runq_push(mine, &tasks[i], spill), 0);
    }
    assert_int_equal(tr__runq_steal_claim(mine, held, &c), TR_RUNQ_CAP / 2);
    while (tr__runq_pop(mine) != NULL) {
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tr__runq_push(victim, &tasks[TR_RUNQ_CAP + i], spill),
                         0);
    }
    t = tr__runq_steal(victim, mine);
    assert_ptr_equal(t, &tasks[TR_RUNQ_CAP]);
    assert_int_equal(tr__runq_len(mine), 0);
    assert_int_equal(tr__runq_len(victim), 9);
    t = tr__runq_steal_finish(mine, held, &c);
    assert_ptr_equal(t, &tasks[TR_RUNQ_CAP / 2 - 1]);
    assert_int_equal(tr__runq_len(held), TR_RUNQ_CAP / 2 - 1);
    free(mine);
    free(held);
    free(victim);
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
        tr_task *spill[TR_RUNQ_SPILL];
        unsigned n = tr__runq_push(sh.owner_q, &sh.items[i].task, spill);
        /* Overflow: the owner takes these itself. */
        for (unsigned k = 0; k < n; k++) {
            take(&sh, spill[k]);
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

/*
 * Owners that also steal from each other: a thief's own ring may be held by
 * another thief while it steals into it (the case the room check in a steal
 * is for). Each owner pushes its share, pops, and steals when empty.
 */
enum { OWNERS = 4, PER_OWNER = 100000 };

typedef struct ring_owner {
    tr_runq *q;
    item *items; /* this owner's share */
    struct ring_owner *all;
    tr_atomic(long) * taken;
    unsigned index;
} ring_owner;

static void
take_item(tr_atomic(long) * taken, tr_task *t)
{
    item *it = tr_container_of(t, item, task);
    tr_faa_relaxed(&it->seen, 1);
    tr_faa_relaxed(taken, 1);
}

static void
drain_own(ring_owner *o)
{
    tr_task *t;
    while ((t = tr__runq_pop(o->q)) != NULL) {
        take_item(o->taken, t);
    }
}

static void *
ring_owner_main(void *arg)
{
    ring_owner *o = arg;
    uint64_t rng = o->index + 1;

    for (long i = 0; i < PER_OWNER; i++) {
        tr_task *spill[TR_RUNQ_SPILL];
        unsigned n = tr__runq_push(o->q, &o->items[i].task, spill);
        for (unsigned k = 0; k < n; k++) {
            take_item(o->taken, spill[k]);
        }
        if (i % 4 == 0) {
            tr_task *t = tr__runq_pop(o->q);
            if (t != NULL) {
                take_item(o->taken, t);
            } else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                ring_owner *v = &o->all[rng % OWNERS];
                if (v != o && (t = tr__runq_steal(v->q, o->q)) != NULL) {
                    take_item(o->taken, t);
                }
            }
        }
    }
    /* Until everything is taken: empty our ring, help empty the others. */
    while (tr_load_acq(o->taken) < (long)OWNERS * PER_OWNER) {
        drain_own(o);
        for (unsigned k = 0; k < OWNERS; k++) {
            ring_owner *v = &o->all[k];
            tr_task *t;
            if (v != o && (t = tr__runq_steal(v->q, o->q)) != NULL) {
                take_item(o->taken, t);
                drain_own(o);
            }
        }
    }
    return NULL;
}

static void
test_runq_owners_stealing_from_each_other_take_each_task_once(void **state)
{
    ring_owner owners[OWNERS];
    pthread_t threads[OWNERS];
    item *items = calloc((size_t)OWNERS * PER_OWNER, sizeof(item));
    tr_atomic(long) taken;

    (void)state;
    assert_non_null(items);
    tr_init_relaxed(&taken, 0);
    for (unsigned i = 0; i < OWNERS; i++) {
        owners[i].q = new_runq();
        owners[i].items = items + (size_t)i * PER_OWNER;
        owners[i].all = owners;
        owners[i].taken = &taken;
        owners[i].index = i;
    }
    for (unsigned i = 0; i < OWNERS; i++) {
        assert_int_equal(
            pthread_create(&threads[i], NULL, ring_owner_main, &owners[i]), 0);
    }
    for (unsigned i = 0; i < OWNERS; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_int_equal(tr_load_relaxed(&taken), (long)OWNERS * PER_OWNER);
    for (long i = 0; i < (long)OWNERS * PER_OWNER; i++) {
        assert_int_equal(tr_load_relaxed(&items[i].seen), 1);
    }
    for (unsigned i = 0; i < OWNERS; i++) {
        free(owners[i].q);
    }
    free(items);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runq_pops_in_push_order),
        cmocka_unit_test(test_runq_overflow_hands_back_half_plus_the_new_task),
        cmocka_unit_test(test_runq_steal_takes_half_and_returns_one),
        cmocka_unit_test(
            test_runq_push_while_a_thief_holds_a_claim_loses_nothing),
        cmocka_unit_test(test_runq_steal_into_a_ring_held_by_another_thief),
        cmocka_unit_test(test_runq_steal_into_a_full_held_ring_takes_one),
        cmocka_unit_test(test_runq_concurrent_steals_take_each_task_once),
        cmocka_unit_test(
            test_runq_owners_stealing_from_each_other_take_each_task_once),
    };
    return cmocka_run_group_tests_name("runq", tests, NULL, NULL);
}
