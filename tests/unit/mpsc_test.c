/*
 * The MPSC queue and control stack, single-threaded: order, the idle-bit
 * transitions, and the half-done push (exchange done, link not yet) that
 * must neither lose nor strand its node.
 */
#include "support/tr_test.h"

#include "mailbox/mpsc.h"

static void
test_mpsc_push_reports_idle_to_busy_once(void **state)
{
    tr_mpsc q;
    tr_mnode a, b;

    (void)state;
    tr__mpsc_init(&q, true);
    assert_true(tr__mpsc_push(&q, &a));  /* idle -> busy: schedule */
    assert_false(tr__mpsc_push(&q, &b)); /* already scheduled */
    assert_ptr_equal(tr__mpsc_pop(&q), &a);
    assert_ptr_equal(tr__mpsc_pop(&q), &b);
    assert_null(tr__mpsc_pop(&q));
    assert_true(tr__mpsc_mark_idle(&q));
    assert_true(tr__mpsc_is_idle(&q));
    assert_true(tr__mpsc_push(&q, &a)); /* idle again: reported again */
    assert_ptr_equal(tr__mpsc_pop(&q), &a);
}

static void
test_mpsc_busy_queue_never_reports_idle(void **state)
{
    tr_mpsc q;
    tr_mnode a;

    (void)state;
    tr__mpsc_init(&q, false);
    assert_false(tr__mpsc_push(&q, &a));
    assert_ptr_equal(tr__mpsc_pop(&q), &a);
}

static void
test_mpsc_keeps_fifo_order_across_stub_reinsertion(void **state)
{
    tr_mpsc q;
    tr_mnode nodes[100];

    (void)state;
    tr__mpsc_init(&q, false);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++) {
            tr__mpsc_push(&q, &nodes[i]);
            if (i % 7 == 6) {
                /* Interleave pops so the stub is re-pushed mid-stream. */
                assert_non_null(tr__mpsc_pop(&q));
            }
        }
        int popped = 0;
        while (tr__mpsc_pop(&q) != NULL) {
            popped++;
        }
        assert_int_equal(popped, 100 - 100 / 7);
    }
}

static void
test_mpsc_order_is_exact(void **state)
{
    tr_mpsc q;
    tr_mnode nodes[10];

    (void)state;
    tr__mpsc_init(&q, false);
    for (int i = 0; i < 10; i++) {
        tr__mpsc_push(&q, &nodes[i]);
    }
    for (int i = 0; i < 10; i++) {
        assert_ptr_equal(tr__mpsc_pop(&q), &nodes[i]);
    }
    assert_null(tr__mpsc_pop(&q));
}

/* Do the first half of a push (the exchange) without the link. */
static tr_mnode *
half_push(tr_mpsc *q, tr_mnode *node)
{
    tr_store_relaxed(&node->next, NULL);
    uintptr_t prev = tr_xchg_acqrel(&q->head, (uintptr_t)node);
    return (tr_mnode *)(prev & ~(uintptr_t)1);
}

static void
test_mpsc_half_done_push_on_empty_queue_is_not_stranded(void **state)
{
    tr_mpsc q;
    tr_mnode a;

    (void)state;
    tr__mpsc_init(&q, false);
    tr_mnode *prev = half_push(&q, &a);
    /* The consumer sees nothing yet... */
    assert_null(tr__mpsc_pop(&q));
    /* ...and must not give up the consumer role. */
    assert_false(tr__mpsc_mark_idle(&q));
    tr_store_rel(&prev->next, &a); /* the producer finishes */
    assert_ptr_equal(tr__mpsc_pop(&q), &a);
    assert_null(tr__mpsc_pop(&q));
    assert_true(tr__mpsc_mark_idle(&q));
}

static void
test_mpsc_half_done_push_behind_last_node_is_not_stranded(void **state)
{
    tr_mpsc q;
    tr_mnode a, b;

    (void)state;
    tr__mpsc_init(&q, false);
    tr__mpsc_push(&q, &a);
    tr_mnode *prev = half_push(&q, &b);
    assert_ptr_equal(prev, &a);
    /* `a` has no next yet, and head has moved past it: pop must not
     * re-insert the stub behind `a` (it would race the producer's link). */
    assert_ptr_equal(tr__mpsc_pop(&q), NULL);
    assert_false(tr__mpsc_mark_idle(&q));
    tr_store_rel(&prev->next, &b);
    assert_ptr_equal(tr__mpsc_pop(&q), &a);
    assert_ptr_equal(tr__mpsc_pop(&q), &b);
    assert_null(tr__mpsc_pop(&q));
    assert_true(tr__mpsc_mark_idle(&q));
}

static void
test_mpsc_take_idle_hands_over_the_role_once(void **state)
{
    tr_mpsc q;

    (void)state;
    tr__mpsc_init(&q, true);
    assert_true(tr__mpsc_take_idle(&q));
    assert_false(tr__mpsc_take_idle(&q));
    assert_false(tr__mpsc_is_idle(&q));
    assert_true(tr__mpsc_mark_idle(&q));
    assert_true(tr__mpsc_mark_idle(&q)); /* already idle: still idle */
}

static void
test_lifo_take_returns_arrival_order(void **state)
{
    tr_lifo s;
    tr_mnode nodes[5];

    (void)state;
    tr_init_relaxed(&s.top, NULL);
    assert_true(tr__lifo_is_empty(&s));
    assert_null(tr__lifo_take_fifo(&s));
    for (int i = 0; i < 5; i++) {
        tr__lifo_push(&s, &nodes[i]);
    }
    assert_false(tr__lifo_is_empty(&s));
    tr_mnode *n = tr__lifo_take_fifo(&s);
    for (int i = 0; i < 5; i++) {
        assert_ptr_equal(n, &nodes[i]);
        n = tr_load_relaxed(&n->next);
    }
    assert_null(n);
    assert_true(tr__lifo_is_empty(&s));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_push_reports_idle_to_busy_once),
        cmocka_unit_test(test_mpsc_busy_queue_never_reports_idle),
        cmocka_unit_test(test_mpsc_keeps_fifo_order_across_stub_reinsertion),
        cmocka_unit_test(test_mpsc_order_is_exact),
        cmocka_unit_test(
            test_mpsc_half_done_push_on_empty_queue_is_not_stranded),
        cmocka_unit_test(
            test_mpsc_half_done_push_behind_last_node_is_not_stranded),
        cmocka_unit_test(test_mpsc_take_idle_hands_over_the_role_once),
        cmocka_unit_test(test_lifo_take_returns_arrival_order),
    };
    return cmocka_run_group_tests_name("mpsc", tests, NULL, NULL);
}
