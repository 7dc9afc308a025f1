/*
 * The standalone mailbox (an mpsc channel between plain threads): FIFO,
 * bounds, timeouts, close, misuse, and a blocked receiver woken by a send.
 */
#include "support/tr_test.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static int
setup(void **state)
{
    tr_mailbox *mb;
    if (tr_mailbox_create(0, &mb) != TR_OK) {
        return -1;
    }
    *state = mb;
    return 0;
}

static int
teardown(void **state)
{
    tr_mailbox_destroy(*state);
    return 0;
}

static void
test_mailbox_delivers_in_send_order(void **state)
{
    tr_mailbox *mb = *state;
    int v;
    size_t len;

    for (int i = 0; i < 100; i++) {
        assert_int_equal(tr_mailbox_send(mb, &i, sizeof(i)), TR_OK);
    }
    assert_int_equal(tr_mailbox_len(mb), 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(
            tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT), TR_OK);
        assert_int_equal(len, sizeof(v));
        assert_int_equal(v, i);
    }
    assert_int_equal(tr_mailbox_len(mb), 0);
}

static void
test_mailbox_empty_receive_times_out(void **state)
{
    tr_mailbox *mb = *state;
    int v;
    size_t len;
    struct timespec a, b;

    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT),
                     TR_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, tr_ms(30)),
                     TR_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 29); /* never early */
    /* A send after timeouts is still received. */
    v = 7;
    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_OK);
    v = 0;
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT),
                     TR_OK);
    assert_int_equal(v, 7);
}

static void
test_mailbox_bounded_refuses_when_full_and_loses_nothing(void **state)
{
    tr_mailbox *mb;
    int v;
    size_t len;

    (void)state;
    assert_int_equal(tr_mailbox_create(3, &mb), TR_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tr_mailbox_send(mb, &i, sizeof(i)), TR_OK);
    }
    v = 99;
    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_EFULL);
    assert_int_equal(tr_mailbox_len(mb), 3);
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT),
                     TR_OK);
    assert_int_equal(v, 0);
    v = 3;
    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_OK);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(
            tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT), TR_OK);
        assert_int_equal(v, i);
    }
    tr_mailbox_destroy(mb);
}

static void
test_mailbox_too_small_buffer_keeps_the_message(void **state)
{
    tr_mailbox *mb = *state;
    char big[16] = "0123456789abcde";
    char small[4];
    char out[16];
    size_t len = 0;

    assert_int_equal(tr_mailbox_send(mb, big, sizeof(big)), TR_OK);
    assert_int_equal(
        tr_mailbox_recv_wait(mb, small, sizeof(small), &len, TR_NOWAIT),
        TR_EINVAL);
    assert_int_equal(len, sizeof(big));
    assert_int_equal(
        tr_mailbox_recv_wait(mb, out, sizeof(out), &len, TR_NOWAIT), TR_OK);
    assert_memory_equal(out, big, sizeof(big));
}

static void
test_mailbox_close_drains_then_reports_closed(void **state)
{
    tr_mailbox *mb = *state;
    int v = 5;
    size_t len;

    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_OK);
    tr_mailbox_close(mb);
    tr_mailbox_close(mb); /* idempotent */
    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_ECLOSED);
    v = 0;
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_FOREVER),
                     TR_OK);
    assert_int_equal(v, 5);
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_FOREVER),
                     TR_ECLOSED);
}

static void
test_mailbox_rejects_bad_arguments(void **state)
{
    tr_mailbox *mb = *state;
    size_t len;
    int v;

    assert_int_equal(tr_mailbox_create(0, NULL), TR_EINVAL);
    assert_int_equal(tr_mailbox_send(NULL, &v, sizeof(v)), TR_EINVAL);
    assert_int_equal(tr_mailbox_send(mb, NULL, 4), TR_EINVAL);
    assert_int_equal(tr_mailbox_recv_wait(NULL, &v, sizeof(v), &len, TR_NOWAIT),
                     TR_EINVAL);
    assert_int_equal(tr_mailbox_recv_wait(mb, &v, sizeof(v), NULL, TR_NOWAIT),
                     TR_EINVAL);
    assert_int_equal(tr_mailbox_len(NULL), 0);
    tr_mailbox_close(NULL);
    tr_mailbox_destroy(NULL);
    /* An empty message is fine. */
    assert_int_equal(tr_mailbox_send(mb, NULL, 0), TR_OK);
    assert_int_equal(tr_mailbox_recv_wait(mb, NULL, 0, &len, TR_NOWAIT), TR_OK);
    assert_int_equal(len, 0);
}

typedef struct recv_arg {
    tr_mailbox *mb;
    tr_atomic(int) started;
    int rc;
    int value;
    int second_rc;
} recv_arg;

static void *
receiver(void *p)
{
    recv_arg *a = p;
    size_t len;

    tr_store_rel(&a->started, 1);
    a->rc = tr_mailbox_recv_wait(a->mb, &a->value, sizeof(a->value), &len,
                                 tr_ms(10000));
    return NULL;
}

static void
test_mailbox_blocked_receiver_wakes_on_send(void **state)
{
    tr_mailbox *mb = *state;
    recv_arg a = {.mb = mb};
    pthread_t t;
    int v = 42;
    size_t len;

    tr_init_relaxed(&a.started, 0);
    assert_int_equal(pthread_create(&t, NULL, receiver, &a), 0);
    while (tr_load_acq(&a.started) == 0) {
    }
    /* Whether the receiver is asleep yet or not, the send must reach it. */
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
    /* A second receiver meanwhile is refused, not queued. */
    int rc = tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, TR_NOWAIT);
    assert_true(rc == TR_ESTATE || rc == TR_ETIMEDOUT);
    v = 42;
    assert_int_equal(tr_mailbox_send(mb, &v, sizeof(v)), TR_OK);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, TR_OK);
    assert_int_equal(a.value, 42);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mailbox_delivers_in_send_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_empty_receive_times_out,
                                        setup, teardown),
        cmocka_unit_test(
            test_mailbox_bounded_refuses_when_full_and_loses_nothing),
        cmocka_unit_test_setup_teardown(
            test_mailbox_too_small_buffer_keeps_the_message, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_mailbox_close_drains_then_reports_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_rejects_bad_arguments,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_mailbox_blocked_receiver_wakes_on_send, setup, teardown),
    };
    return cmocka_run_group_tests_name("mailbox", tests, NULL, NULL);
}
