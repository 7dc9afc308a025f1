/*
 * Oneshot channels: value, sender dropped, receiver closed or dropped,
 * second send, timeouts, actor subscriptions in both orders, and a stress
 * of close and drop racing send (exactly one outcome, nothing leaked).
 */
#include "support/tr_test.h"

#include <pthread.h>
#include <time.h>

static void
test_oneshot_delivers_the_value_once(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int v = 42;
    int out = 0;

    (void)state;
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_EALREADY);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_OK);
    assert_int_equal(out, 42);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_EALREADY);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);
}

static void
test_oneshot_sender_dropped_unsent_closes_the_receiver(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int out;

    (void)state;
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    tr_oneshot_tx_destroy(tx);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_FOREVER), TR_ECLOSED);
    tr_oneshot_rx_destroy(rx);
}

static void
test_oneshot_value_survives_the_sender(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int v = 7;
    int out = 0;

    (void)state;
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    tr_oneshot_tx_destroy(tx);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_OK);
    assert_int_equal(out, 7);
    tr_oneshot_rx_destroy(rx);
}

static void
test_oneshot_closed_receiver_refuses_but_keeps_an_earlier_value(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int v = 1;
    int out = 0;

    (void)state;
    /* Closed first: the send is refused. */
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    tr_oneshot_rx_close(rx);
    tr_oneshot_rx_close(rx); /* idempotent */
    assert_int_equal(tr_oneshot_send(tx, &v), TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_ECLOSED);
    tr_oneshot_rx_destroy(rx);
    /* Sent first: still received after the close. */
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    tr_oneshot_rx_close(rx);
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_OK);
    assert_int_equal(out, 1);
    tr_oneshot_rx_destroy(rx);
    tr_oneshot_tx_destroy(tx);
    /* Receiver gone: refused. */
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    tr_oneshot_rx_destroy(rx);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
}

typedef struct waiter {
    tr_oneshot_rx *rx;
    int rc;
    int out;
} waiter;

static void *
wait_forever(void *p)
{
    waiter *w = p;
    w->rc = tr_oneshot_recv_wait(w->rx, &w->out, TR_FOREVER);
    return NULL;
}

static void
test_oneshot_blocked_receiver_wakes_on_send_and_on_drop(void **state)
{
    tr_oneshot_tx *tx;
    waiter w = {0};
    pthread_t t;
    int v = 5;

    (void)state;
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &w.rx), TR_OK);
    assert_int_equal(pthread_create(&t, NULL, wait_forever, &w), 0);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, TR_OK);
    assert_int_equal(w.out, 5);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(w.rx);

    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &w.rx), TR_OK);
    assert_int_equal(pthread_create(&t, NULL, wait_forever, &w), 0);
    tr_oneshot_tx_destroy(tx);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, TR_ECLOSED);
    tr_oneshot_rx_destroy(w.rx);
}

static void
test_oneshot_misuse_returns_codes(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int v = 0;

    (void)state;
    assert_int_equal(tr_oneshot_create(4, NULL, &rx), TR_EINVAL);
    assert_int_equal(tr_oneshot_create((size_t)UINT32_MAX + 1, &tx, &rx),
                     TR_EINVAL);
    assert_int_equal(tr_oneshot_create(4, &tx, &rx), TR_OK);
    assert_int_equal(tr_oneshot_send(NULL, &v), TR_EINVAL);
    assert_int_equal(tr_oneshot_send(tx, NULL), TR_EINVAL);
    assert_int_equal(tr_oneshot_recv_wait(NULL, &v, TR_NOWAIT), TR_EINVAL);
    assert_int_equal(tr_oneshot_recv_wait(rx, NULL, TR_NOWAIT), TR_EINVAL);
    assert_int_equal(tr_oneshot_subscribe_actor(NULL, rx, 1, 2), TR_EINVAL);
    tr_oneshot_tx_destroy(NULL);
    tr_oneshot_rx_destroy(NULL);
    tr_oneshot_rx_close(NULL);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);
}

/* ---- actor receivers ---- */

enum { MSG_SUBSCRIBE = 1, MSG_VALUE = 2, MSG_CLOSED = 3 };

static tr_mailbox *probe;

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int report[2] = {(int)msg->type, -1};
    (void)state;

    if (msg->type == MSG_SUBSCRIBE) {
        tr_oneshot_rx *rx;
        memcpy(&rx, msg->data, sizeof(rx));
        report[1] = tr_oneshot_subscribe_actor(ctx, rx, MSG_VALUE, MSG_CLOSED);
        /* The receiving half may go now: delivery does not need it. */
        int again = tr_oneshot_subscribe_actor(ctx, rx, MSG_VALUE, MSG_CLOSED);
        if (again != TR_EALREADY) {
            report[1] = 1000;
        }
    } else if (msg->type == MSG_VALUE) {
        memcpy(&report[1], msg->data, sizeof(int));
    } else {
        report[1] = (int)msg->size;
    }
    return tr_mailbox_send(probe, report, sizeof(report));
}

static const tr_behaviour sub_behaviour = {.name = "subscriber",
                                           .handle = sub_handle};

static void
expect(int type, int value)
{
    int r[2] = {-1, -1};
    size_t len;
    assert_int_equal(
        tr_mailbox_recv_wait(probe, r, sizeof(r), &len, tr_ms(5000)), TR_OK);
    assert_int_equal(r[0], type);
    assert_int_equal(r[1], value);
}

static void
run_subscription(bool send_first, bool send_value)
{
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    tr_addr a;
    int v = 99;

    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_spawn(ctx, &sub_behaviour, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    if (send_first) {
        if (send_value) {
            assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
        }
        tr_oneshot_tx_destroy(tx);
    }
    assert_int_equal(tr_send(ctx, a, MSG_SUBSCRIBE, &rx, sizeof(rx)), TR_OK);
    expect(MSG_SUBSCRIBE, TR_OK);
    /* A thread cannot receive what an actor subscribed to. */
    int out;
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_ESTATE);
    if (!send_first) {
        if (send_value) {
            assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
        }
        tr_oneshot_tx_destroy(tx);
    }
    if (send_value) {
        expect(MSG_VALUE, 99);
    } else {
        expect(MSG_CLOSED, 0);
    }
    tr_oneshot_rx_destroy(rx);
    tr_test_shutdown(sys);
    /* Exactly one notification. */
    int r[2];
    size_t len;
    assert_int_equal(tr_mailbox_recv_wait(probe, r, sizeof(r), &len, TR_NOWAIT),
                     TR_ETIMEDOUT);
    tr_mailbox_destroy(probe);
}

static void
test_oneshot_actor_gets_the_value_whichever_comes_first(void **state)
{
    (void)state;
    run_subscription(true, true);
    run_subscription(false, true);
}

static void
test_oneshot_actor_learns_the_sender_went_away(void **state)
{
    (void)state;
    run_subscription(true, false);
    run_subscription(false, false);
}

/* The subscriber's system shuts down before the value is sent: the send
 * (or the sender's drop) touches nothing of the freed system, and the
 * value is refused as no one can receive it any more. */
static void
test_oneshot_send_after_the_subscribers_system_shut_down(void **state)
{
    (void)state;
    for (int drop = 0; drop < 2; drop++) {
        tr_system *sys = tr_test_system(2);
        tr_ctx *ctx = tr_system_ctx(sys);
        tr_oneshot_tx *tx;
        tr_oneshot_rx *rx;
        tr_addr a;
        int v = 5;

        assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
        assert_int_equal(tr_spawn(ctx, &sub_behaviour, NULL, NULL, &a), TR_OK);
        assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
        assert_int_equal(tr_send(ctx, a, MSG_SUBSCRIBE, &rx, sizeof(rx)),
                         TR_OK);
        expect(MSG_SUBSCRIBE, TR_OK);
        assert_false(tr_oneshot_tx_is_closed(tx));
        tr_test_shutdown(sys);
        assert_true(tr_oneshot_tx_is_closed(tx));
        if (drop) {
            tr_oneshot_tx_destroy(tx);
        } else {
            assert_int_equal(tr_oneshot_send(tx, &v), TR_ECLOSED);
            tr_oneshot_tx_destroy(tx);
        }
        tr_oneshot_rx_destroy(rx);
        tr_mailbox_destroy(probe);
    }
}

/* The sender can tell that nobody will receive (tokio's is_closed): after
 * the receiver's close or release, not after a send or a receive. */
static void
test_oneshot_sender_sees_the_receiver_close(void **state)
{
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    int v = 4;
    int out = 0;

    (void)state;
    assert_true(tr_oneshot_tx_is_closed(NULL));
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_false(tr_oneshot_tx_is_closed(tx));
    tr_oneshot_rx_close(rx);
    assert_true(tr_oneshot_tx_is_closed(tx));
    assert_int_equal(tr_oneshot_send(tx, &v), TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);

    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_int_equal(tr_oneshot_send(tx, &v), TR_OK);
    assert_false(tr_oneshot_tx_is_closed(tx));
    assert_int_equal(tr_oneshot_recv_wait(rx, &out, TR_NOWAIT), TR_OK);
    assert_false(tr_oneshot_tx_is_closed(tx));
    tr_oneshot_rx_destroy(rx);
    assert_true(tr_oneshot_tx_is_closed(tx));
    tr_oneshot_tx_destroy(tx);
}

/* Both workers busy while a plain thread's send makes the subscriber
 * runnable, then shutdown without waiting: the push, queued for a worker
 * that will not run it, and shutdown's last pass, which ends the actor
 * and reuses its queue link, must be ordered (ThreadSanitizer saw them
 * race before the send entered the system), and nothing leaks. */
static int
busy_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return TR_OK;
}

static const tr_behaviour busy_behaviour = {.name = "busy",
                                            .handle = busy_handle};

static void *
send_five(void *p)
{
    int v = 5;
    int rc = tr_oneshot_send(p, &v);
    return (void *)(intptr_t)rc;
}

static void
test_oneshot_send_to_a_subscriber_as_shutdown_begins(void **state)
{
    (void)state;
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    tr_addr a, b;
    pthread_t t;
    void *rc;

    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_spawn(ctx, &sub_behaviour, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_oneshot_create(sizeof(int), &tx, &rx), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_SUBSCRIBE, &rx, sizeof(rx)), TR_OK);
    expect(MSG_SUBSCRIBE, TR_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_spawn(ctx, &busy_behaviour, NULL, NULL, &b), TR_OK);
        assert_int_equal(tr_send(ctx, b, 1, NULL, 0), TR_OK);
    }
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* both workers in a busy handler */
    assert_int_equal(pthread_create(&t, NULL, send_five, tx), 0);
    nanosleep(&pause, NULL);
    tr_system_shutdown(sys, TR_NOWAIT);
    pthread_join(t, &rc);
    /* Sent (the actor, being stopped, may not be told), or refused once
     * shutdown had closed the subscription. */
    assert_true((int)(intptr_t)rc == TR_OK || (int)(intptr_t)rc == TR_ECLOSED);
    tr_oneshot_tx_destroy(tx);
    tr_oneshot_rx_destroy(rx);
    tr_mailbox_destroy(probe);
}

/* ---- races ---- */

typedef struct race {
    tr_oneshot_tx *tx;
    tr_oneshot_rx *rx;
    tr_atomic(int) go;
    int send_rc;
} race;

static void *
race_sender(void *p)
{
    race *r = p;
    int v = 3;
    while (!tr_load_acq(&r->go)) {
    }
    r->send_rc = tr_oneshot_send(r->tx, &v);
    tr_oneshot_tx_destroy(r->tx);
    return NULL;
}

static void
test_oneshot_close_racing_send_has_one_outcome(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        race r;
        pthread_t t;
        int out = 0;
        assert_int_equal(tr_oneshot_create(sizeof(int), &r.tx, &r.rx), TR_OK);
        tr_init_relaxed(&r.go, 0);
        assert_int_equal(pthread_create(&t, NULL, race_sender, &r), 0);
        tr_store_rel(&r.go, 1);
        if (i % 2 == 0) {
            tr_oneshot_rx_close(r.rx);
            pthread_join(t, NULL);
            int rc = tr_oneshot_recv_wait(r.rx, &out, TR_FOREVER);
            /* Sent before the close: received; else refused and closed. */
            if (r.send_rc == TR_OK) {
                assert_int_equal(rc, TR_OK);
                assert_int_equal(out, 3);
            } else {
                assert_int_equal(r.send_rc, TR_ECLOSED);
                assert_int_equal(rc, TR_ECLOSED);
            }
            tr_oneshot_rx_destroy(r.rx);
        } else {
            tr_oneshot_rx_destroy(r.rx); /* races the send and its drop */
            pthread_join(t, NULL);
            assert_true(r.send_rc == TR_OK || r.send_rc == TR_ECLOSED);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oneshot_delivers_the_value_once),
        cmocka_unit_test(
            test_oneshot_sender_dropped_unsent_closes_the_receiver),
        cmocka_unit_test(test_oneshot_value_survives_the_sender),
        cmocka_unit_test(test_oneshot_sender_sees_the_receiver_close),
        cmocka_unit_test(test_oneshot_send_to_a_subscriber_as_shutdown_begins),
        cmocka_unit_test(
            test_oneshot_closed_receiver_refuses_but_keeps_an_earlier_value),
        cmocka_unit_test(
            test_oneshot_blocked_receiver_wakes_on_send_and_on_drop),
        cmocka_unit_test(test_oneshot_misuse_returns_codes),
        cmocka_unit_test(
            test_oneshot_actor_gets_the_value_whichever_comes_first),
        cmocka_unit_test(test_oneshot_actor_learns_the_sender_went_away),
        cmocka_unit_test(test_oneshot_close_racing_send_has_one_outcome),
        cmocka_unit_test(
            test_oneshot_send_after_the_subscribers_system_shut_down),
    };
    return cmocka_run_group_tests_name("oneshot", tests, NULL, NULL);
}
