/*
 * The MPSC queue and control stack, single-threaded: order, the idle-bit
 * transitions, and the half-done push (exchange done, link not yet) that
 * must neither lose nor strand its node.
 */
#include "support/tr_test.h"

#include "mailbox/mpsc.h"

/* Both ends of one queue, as an owner would hold them. */
typedef struct queue {
    tr_mpsc_prod in;
    tr_mpsc_cons out;
} queue;

/* Pop, checking which node the pop released (the previous dummy). */
static tr_mnode *
pop_releasing(queue *q, tr_mnode *want_done)
{
    tr_mnode *done = (tr_mnode *)(uintptr_t)1;
    tr_mnode *node = tr__mpsc_pop(&q->out, &done);
    assert_ptr_equal(done, want_done);
    return node;
}

static void
test_mpsc_push_reports_idle_to_busy_once(void **state)
{
    queue q;
    tr_mnode a, b;
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, true);
    assert_true(tr__mpsc_push(&q.in, &a));         /* idle -> busy: schedule */
    assert_false(tr__mpsc_push(&q.in, &b));        /* already scheduled */
    assert_ptr_equal(pop_releasing(&q, NULL), &a); /* the stub: nothing */
    assert_ptr_equal(pop_releasing(&q, &a), &b);
    assert_null(pop_releasing(&q, NULL));
    /* The idle mark swaps the stub back and releases the last dummy. */
    assert_true(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_ptr_equal(done, &b);
    assert_null(tr__mpsc_dummy(&q.out));
    assert_true(tr__mpsc_is_idle(&q.in));
    assert_true(tr__mpsc_push(&q.in, &a)); /* idle again: reported again */
    assert_ptr_equal(pop_releasing(&q, NULL), &a);
}

/* A consumer that looked at the dummy's link itself takes that node as a
 * pop would: the queue moves on to it, and the previous dummy comes back
 * to free (nothing for the stub). */
static void
test_mpsc_pop_seen_takes_as_pop_does(void **state)
{
    queue q;
    tr_mnode a, b;
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, true);
    assert_true(tr__mpsc_push(&q.in, &a));
    assert_false(tr__mpsc_push(&q.in, &b));
    assert_ptr_equal(tr_load_acq(&q.out.tail->next), &a);
    assert_null(tr__mpsc_pop_seen(&q.out, &a)); /* the stub: nothing */
    assert_ptr_equal(tr_load_acq(&q.out.tail->next), &b);
    assert_ptr_equal(tr__mpsc_pop_seen(&q.out, &b), &a);
    assert_null(pop_releasing(&q, NULL)); /* b is the dummy now */
    assert_true(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_ptr_equal(done, &b);
}

static void
test_mpsc_busy_queue_never_reports_idle(void **state)
{
    queue q;
    tr_mnode a;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, false);
    assert_false(tr__mpsc_push(&q.in, &a));
    assert_ptr_equal(pop_releasing(&q, NULL), &a);
}

static void
test_mpsc_releases_each_node_exactly_once(void **state)
{
    queue q;
    tr_mnode nodes[100];
    int released[100] = {0};
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, false);
    for (int round = 0; round < 3; round++) {
        memset(released, 0, sizeof(released));
        int popped = 0;
        for (int i = 0; i < 100; i++) {
            tr__mpsc_push(&q.in, &nodes[i]);
            if (i % 7 == 6) {
                /* Interleave pops with pushes. */
                assert_non_null(tr__mpsc_pop(&q.out, &done));
                popped++;
                if (done != NULL) {
                    released[done - nodes]++;
                }
            }
        }
        tr_mnode *n;
        while ((n = tr__mpsc_pop(&q.out, &done)) != NULL) {
            assert_ptr_equal(n, &nodes[popped]);
            popped++;
            if (done != NULL) {
                released[done - nodes]++;
            }
        }
        assert_int_equal(popped, 100);
        assert_true(tr__mpsc_release(&q.in, &q.out, &done));
        released[done - nodes]++;
        for (int i = 0; i < 100; i++) {
            assert_int_equal(released[i], 1);
        }
    }
}

static void
test_mpsc_order_is_exact(void **state)
{
    queue q;
    tr_mnode nodes[10];
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, false);
    for (int i = 0; i < 10; i++) {
        tr__mpsc_push(&q.in, &nodes[i]);
    }
    for (int i = 0; i < 10; i++) {
        assert_ptr_equal(tr__mpsc_pop(&q.out, &done), &nodes[i]);
    }
    assert_null(tr__mpsc_pop(&q.out, &done));
}

/* Do the first half of a push (the exchange) without the link. */
static tr_mnode *
half_push(queue *q, tr_mnode *node)
{
    tr_store_relaxed(&node->next, NULL);
    uintptr_t prev = tr_xchg_acqrel(&q->in.head, (uintptr_t)node);
    return (tr_mnode *)(prev & ~(uintptr_t)1);
}

static void
test_mpsc_half_done_push_on_empty_queue_is_not_stranded(void **state)
{
    queue q;
    tr_mnode a;
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, false);
    tr_mnode *prev = half_push(&q, &a);
    /* The consumer sees nothing yet... */
    assert_null(tr__mpsc_pop(&q.out, &done));
    /* ...and must not give up the consumer role. */
    assert_false(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_null(done);
    tr_store_rel(&prev->next, &a); /* the producer finishes */
    assert_ptr_equal(tr__mpsc_pop(&q.out, &done), &a);
    assert_null(tr__mpsc_pop(&q.out, &done));
    assert_true(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_ptr_equal(done, &a);
}

static void
test_mpsc_half_done_push_behind_the_dummy_is_not_stranded(void **state)
{
    queue q;
    tr_mnode a, b;
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, false);
    tr__mpsc_push(&q.in, &a);
    assert_ptr_equal(tr__mpsc_pop(&q.out, &done), &a); /* `a` is the dummy */
    tr_mnode *prev = half_push(&q, &b);
    assert_ptr_equal(prev, &a);
    /* `a` has no next yet and head has moved past it: the idle mark must
     * fail, and must not release `a`, which the producer will write. */
    assert_null(tr__mpsc_pop(&q.out, &done));
    assert_false(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_null(done);
    assert_false(tr__mpsc_release(&q.in, &q.out, &done));
    assert_ptr_equal(tr__mpsc_dummy(&q.out), &a);
    tr_store_rel(&prev->next, &b);
    assert_ptr_equal(pop_releasing(&q, &a), &b);
    assert_null(tr__mpsc_pop(&q.out, &done));
    assert_true(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_ptr_equal(done, &b);
}

static void
test_mpsc_take_idle_hands_over_the_role_once(void **state)
{
    queue q;
    tr_mnode *done;

    (void)state;
    tr__mpsc_init(&q.in, &q.out, true);
    assert_true(tr__mpsc_take_idle(&q.in));
    assert_false(tr__mpsc_take_idle(&q.in));
    assert_false(tr__mpsc_is_idle(&q.in));
    assert_true(tr__mpsc_mark_idle(&q.in, &q.out, &done));
    assert_true(
        tr__mpsc_mark_idle(&q.in, &q.out, &done)); /* already idle: still */
    assert_null(done);
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

/* The consumer takes a lone top node, but not one a push came after. */
static void
test_lifo_take_only_refuses_a_node_pushed_over(void **state)
{
    tr_lifo s;
    tr_mnode a;
    tr_mnode b;

    (void)state;
    tr_init_relaxed(&s.top, NULL);
    assert_null(tr__lifo_top(&s));
    tr__lifo_push(&s, &a);
    assert_ptr_equal(tr__lifo_top(&s), &a);
    assert_true(tr__lifo_take_only(&s, &a));
    assert_true(tr__lifo_is_empty(&s));

    /* A push between the look and the take: nothing is taken. */
    tr__lifo_push(&s, &a);
    tr_mnode *seen = tr__lifo_top(&s);
    tr__lifo_push(&s, &b);
    assert_false(tr__lifo_take_only(&s, seen));
    tr_mnode *n = tr__lifo_take_fifo(&s);
    assert_ptr_equal(n, &a);
    assert_ptr_equal(tr_load_relaxed(&n->next), &b);
    assert_null(tr_load_relaxed(&b.next));
    assert_true(tr__lifo_is_empty(&s));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_push_reports_idle_to_busy_once),
        cmocka_unit_test(test_mpsc_pop_seen_takes_as_pop_does),
        cmocka_unit_test(test_mpsc_busy_queue_never_reports_idle),
        cmocka_unit_test(test_mpsc_releases_each_node_exactly_once),
        cmocka_unit_test(test_mpsc_order_is_exact),
        cmocka_unit_test(
            test_mpsc_half_done_push_on_empty_queue_is_not_stranded),
        cmocka_unit_test(
            test_mpsc_half_done_push_behind_the_dummy_is_not_stranded),
        cmocka_unit_test(test_mpsc_take_idle_hands_over_the_role_once),
        cmocka_unit_test(test_lifo_take_returns_arrival_order),
        cmocka_unit_test(test_lifo_take_only_refuses_a_node_pushed_over),
    };
    return cmocka_run_group_tests_name("mpsc", tests, NULL, NULL);
}
