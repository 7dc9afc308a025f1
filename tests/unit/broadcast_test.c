/*
 * Broadcast channels: order and sharing, capacity rounding and exact lag
 * counts, new receivers start at the next value, send with no receiver,
 * close after drain, values outliving the channel, blocking receive, misuse
 * codes, and actor subscriptions (values, lag, close, unsubscribe, ending
 * with the actor, shutdown with live subscriptions), and ports of tokio's
 * sync_broadcast cases (capacity 1, lag at and past a full ring, backlogs
 * past the capacity, receiver counts, resubscribe at the tail, receivers
 * dropped with values queued, capacity edges).
 */
#include "support/tr_test.h"

#include "common/tr_park.h"

#include <pthread.h>

static uint64_t
take_u64(tr_broadcast_rx *rx, int timeout_ms)
{
    const tr_broadcast_value *v = NULL;
    uint64_t x = 0;

    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, tr_ms(timeout_ms)),
                     TR_OK);
    assert_int_equal(tr_broadcast_value_size(v), sizeof(x));
    memcpy(&x, tr_broadcast_value_data(v), sizeof(x));
    tr_broadcast_value_release(v);
    return x;
}

static void
send_u64(tr_broadcast_tx *tx, uint64_t x)
{
    assert_int_equal(tr_broadcast_send(tx, &x, sizeof(x)), TR_OK);
}

static void
test_broadcast_every_receiver_sees_every_value_in_order(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;
    const tr_broadcast_value *va;
    const tr_broadcast_value *vb;

    (void)state;
    assert_int_equal(tr_broadcast_create(16, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &b), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 2);
    for (uint64_t i = 0; i < 10; i++) {
        send_u64(tx, i * 3);
    }
    for (uint64_t i = 0; i < 10; i++) {
        assert_int_equal(take_u64(a, 0), i * 3);
    }
    /* Shared, not copied per receiver. */
    assert_int_equal(tr_broadcast_recv_wait(b, &vb, NULL, TR_NOWAIT), TR_OK);
    send_u64(tx, 99);
    assert_int_equal(tr_broadcast_recv_wait(a, &va, NULL, TR_NOWAIT), TR_OK);
    assert_int_equal(*(const uint64_t *)tr_broadcast_value_data(va), 99);
    tr_broadcast_value_release(va);
    for (uint64_t i = 1; i < 10; i++) {
        assert_int_equal(take_u64(b, 0), i * 3);
    }
    assert_int_equal(tr_broadcast_recv_wait(b, &va, NULL, TR_NOWAIT), TR_OK);
    assert_ptr_not_equal(va, vb);
    tr_broadcast_value_release(va);
    tr_broadcast_value_release(vb);
    assert_int_equal(tr_broadcast_recv_wait(a, &va, NULL, TR_NOWAIT),
                     TR_ETIMEDOUT);
    tr_broadcast_rx_destroy(a);
    tr_broadcast_rx_destroy(b);
    tr_broadcast_tx_destroy(tx);
}

static void
test_broadcast_lag_is_exact_and_resumes_at_the_oldest(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;
    const tr_broadcast_value *v;
    uint64_t lagged = 0;

    (void)state;
    /* 3 rounds up to 4. */
    assert_int_equal(tr_broadcast_create(3, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    for (uint64_t i = 0; i < 4; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(take_u64(rx, 0), 0); /* all four still held */
    for (uint64_t i = 4; i < 11; i++) {
        send_u64(tx, i);
    }
    /* Held now: 7..10; missed 1..6. */
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, &lagged, TR_NOWAIT),
                     TR_ELAGGED);
    assert_int_equal(lagged, 6);
    for (uint64_t i = 7; i < 11; i++) {
        assert_int_equal(take_u64(rx, 0), i);
    }
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, &lagged, TR_NOWAIT),
                     TR_ETIMEDOUT);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
}

static void
test_broadcast_len_counts_what_the_slowest_has_not_seen(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_len(tx), 0);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &b), TR_OK);
    for (uint64_t i = 0; i < 3; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_len(tx), 3);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(take_u64(a, 0), i);
    }
    assert_int_equal(tr_broadcast_len(tx), 3); /* b has seen none */
    assert_int_equal(take_u64(b, 0), 0);
    assert_int_equal(tr_broadcast_len(tx), 2);
    tr_broadcast_rx_destroy(b);
    assert_int_equal(tr_broadcast_len(tx), 0);
    for (uint64_t i = 0; i < 20; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_len(tx), 8); /* at most the capacity */
    assert_int_equal(tr_broadcast_len(NULL), 0);
    tr_broadcast_rx_destroy(a);
    tr_broadcast_tx_destroy(tx);
}

static void
test_broadcast_new_receiver_starts_at_the_next_value(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    send_u64(tx, 1);
    assert_int_equal(tr_broadcast_subscribe(tx, &b), TR_OK);
    send_u64(tx, 2);
    assert_int_equal(take_u64(a, 0), 1);
    assert_int_equal(take_u64(a, 0), 2);
    assert_int_equal(take_u64(b, 0), 2);
    tr_broadcast_rx_destroy(a);
    tr_broadcast_rx_destroy(b);
    tr_broadcast_tx_destroy(tx);
}

/* A receiver's own backlog (tokio's Receiver::len) is not capped: past the
 * capacity it announces the lag. resubscribe starts at the next value, on
 * an open channel or a closed one. */
static void
test_broadcast_rx_len_and_resubscribe(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;
    tr_broadcast_rx *c;
    const tr_broadcast_value *v = NULL;
    uint64_t lagged = 0;

    (void)state;
    assert_int_equal(tr_broadcast_create(4, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_broadcast_rx_len(a), 0);
    for (uint64_t i = 0; i < 3; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_rx_len(a), 3);
    assert_int_equal(take_u64(a, 0), 0);
    assert_int_equal(tr_broadcast_rx_len(a), 2);

    assert_int_equal(tr_broadcast_resubscribe(a, &b), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 2);
    assert_int_equal(tr_broadcast_rx_len(b), 0);
    send_u64(tx, 3);
    assert_int_equal(take_u64(b, 0), 3);
    assert_int_equal(tr_broadcast_recv_wait(b, &v, NULL, TR_NOWAIT),
                     TR_ETIMEDOUT);

    for (uint64_t i = 4; i < 7; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_rx_len(a), 6); /* over the capacity */
    assert_int_equal(tr_broadcast_recv_wait(a, &v, &lagged, TR_NOWAIT),
                     TR_ELAGGED);
    assert_int_equal(lagged, 2);
    assert_int_equal(tr_broadcast_rx_len(a), 4);
    assert_int_equal(take_u64(a, 0), 3);

    tr_broadcast_tx_destroy(tx);
    assert_int_equal(tr_broadcast_resubscribe(a, &c), TR_OK);
    assert_int_equal(tr_broadcast_recv_wait(c, &v, NULL, TR_NOWAIT),
                     TR_ECLOSED);
    assert_int_equal(take_u64(a, 0), 4); /* a keeps its values */
    assert_int_equal(tr_broadcast_rx_len(NULL), 0);
    assert_int_equal(tr_broadcast_resubscribe(NULL, &c), TR_EINVAL);
    assert_int_equal(tr_broadcast_resubscribe(a, NULL), TR_EINVAL);
    tr_broadcast_rx_destroy(a);
    tr_broadcast_rx_destroy(b);
    tr_broadcast_rx_destroy(c); /* the last handle frees the channel */
}

static void
test_broadcast_send_without_receivers_reports_it(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;
    uint64_t x = 5;

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 0);
    assert_int_equal(tr_broadcast_send(tx, &x, sizeof(x)), TR_ECLOSED);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    tr_broadcast_rx_destroy(rx);
    assert_int_equal(tr_broadcast_send(tx, &x, sizeof(x)), TR_ECLOSED);
    /* Nothing was stored: a new receiver sees only later values. */
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 6);
    assert_int_equal(take_u64(rx, 0), 6);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
}

static void
test_broadcast_last_sender_gone_drains_then_closes(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_tx *tx2;
    tr_broadcast_rx *rx;
    const tr_broadcast_value *v;

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_tx_clone(tx, &tx2), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 1);
    send_u64(tx2, 2);
    tr_broadcast_tx_destroy(tx);
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_NOWAIT), TR_OK);
    tr_broadcast_value_release(v);
    send_u64(tx2, 3); /* one sender left: still open */
    tr_broadcast_tx_destroy(tx2);
    assert_int_equal(take_u64(rx, 0), 2);
    assert_int_equal(take_u64(rx, -1), 3);
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_FOREVER),
                     TR_ECLOSED);
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_NOWAIT),
                     TR_ECLOSED);
    tr_broadcast_rx_destroy(rx);
}

static void
test_broadcast_value_outlives_its_channel(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;
    const tr_broadcast_value *v;
    char text[] = "kept after the channel";

    (void)state;
    assert_int_equal(tr_broadcast_create(2, 64, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    assert_int_equal(tr_broadcast_send(tx, text, sizeof(text)), TR_OK);
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_NOWAIT), TR_OK);
    /* Overwrite its slot, then drop everything. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tr_broadcast_send(tx, "x", 1), TR_OK);
    }
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
    assert_int_equal(tr_broadcast_value_size(v), sizeof(text));
    assert_string_equal(tr_broadcast_value_data(v), text);
    tr_broadcast_value_release(v);
}

typedef struct waiter {
    tr_broadcast_rx *rx;
    int rc;
    uint64_t got;
} waiter;

static void *
wait_forever(void *arg)
{
    waiter *w = arg;
    const tr_broadcast_value *v = NULL;

    w->rc = tr_broadcast_recv_wait(w->rx, &v, NULL, TR_FOREVER);
    if (w->rc == TR_OK) {
        memcpy(&w->got, tr_broadcast_value_data(v), sizeof(w->got));
        tr_broadcast_value_release(v);
    }
    return NULL;
}

static void
test_broadcast_blocked_receivers_wake_on_send_and_on_close(void **state)
{
    tr_broadcast_tx *tx;
    waiter w[2];
    pthread_t th[2];
    const tr_broadcast_value *v;
    uint64_t t0;

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    for (int i = 0; i < 2; i++) {
        w[i].rc = -100;
        assert_int_equal(tr_broadcast_subscribe(tx, &w[i].rx), TR_OK);
    }
    t0 = tr__now_ns();
    assert_int_equal(tr_broadcast_recv_wait(w[0].rx, &v, NULL, tr_ms(30)),
                     TR_ETIMEDOUT);
    assert_true(tr__now_ns() - t0 >= 29000000u);
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, wait_forever, &w[i]);
    }
    send_u64(tx, 77);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, TR_OK);
        assert_int_equal(w[i].got, 77);
    }
    pthread_create(&th[0], NULL, wait_forever, &w[0]);
    tr_broadcast_tx_destroy(tx);
    pthread_join(th[0], NULL);
    assert_int_equal(w[0].rc, TR_ECLOSED);
    tr_broadcast_rx_destroy(w[0].rx);
    tr_broadcast_rx_destroy(w[1].rx);
}

static void
test_broadcast_misuse_returns_codes(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_tx *tx2;
    tr_broadcast_rx *rx;
    const tr_broadcast_value *v;
    tr_broadcast_sub_types types = {1, 2, 3};
    char big[9] = {0};
    tr_system *sys = tr_test_system(1);

    (void)state;
    assert_int_equal(tr_broadcast_create(8, 8, NULL), TR_EINVAL);
    assert_int_equal(tr_broadcast_create(0, 8, &tx), TR_EINVAL);
    assert_int_equal(tr_broadcast_create((size_t)1 << 31, 8, &tx), TR_EINVAL);
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    assert_int_equal(tr_broadcast_send(NULL, big, 1), TR_EINVAL);
    assert_int_equal(tr_broadcast_send(tx, NULL, 1), TR_EINVAL);
    assert_int_equal(tr_broadcast_send(tx, big, sizeof(big)), TR_EINVAL);
    assert_int_equal(tr_broadcast_send(tx, NULL, 0), TR_OK);
    assert_int_equal(tr_broadcast_recv_wait(NULL, &v, NULL, TR_NOWAIT),
                     TR_EINVAL);
    assert_int_equal(tr_broadcast_recv_wait(rx, NULL, NULL, TR_NOWAIT),
                     TR_EINVAL);
    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_broadcast_value_size(v), 0);
    tr_broadcast_value_release(v);
    assert_int_equal(tr_broadcast_tx_clone(NULL, &tx2), TR_EINVAL);
    assert_int_equal(tr_broadcast_tx_clone(tx, NULL), TR_EINVAL);
    assert_int_equal(tr_broadcast_subscribe(NULL, &rx), TR_EINVAL);
    assert_int_equal(
        tr_broadcast_subscribe_actor(tr_system_ctx(sys), tx, &types, NULL),
        TR_ESTATE);
    assert_int_equal(tr_broadcast_subscribe_actor(NULL, tx, &types, NULL),
                     TR_EINVAL);
    assert_int_equal(
        tr_broadcast_subscribe_actor(tr_system_ctx(sys), tx, NULL, NULL),
        TR_EINVAL);
    assert_int_equal(tr_broadcast_unsubscribe(tr_system_ctx(sys), NULL),
                     TR_EINVAL);
    assert_null(tr_broadcast_value_data(NULL));
    assert_int_equal(tr_broadcast_value_size(NULL), 0);
    assert_int_equal(tr_broadcast_receiver_count(NULL), 0);
    tr_broadcast_value_release(NULL);
    tr_broadcast_rx_destroy(NULL);
    tr_broadcast_tx_destroy(NULL);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
    tr_test_shutdown(sys);
}

/* Ports of tokio's sync_broadcast cases on the ring's edges. */

static void
expect_lag(tr_broadcast_rx *rx, uint64_t n)
{
    const tr_broadcast_value *v = NULL;
    uint64_t lagged = 0;

    assert_int_equal(tr_broadcast_recv_wait(rx, &v, &lagged, TR_NOWAIT),
                     TR_ELAGGED);
    assert_int_equal(lagged, n);
}

static void
expect_rc(tr_broadcast_rx *rx, int rc)
{
    const tr_broadcast_value *v = NULL;

    assert_int_equal(tr_broadcast_recv_wait(rx, &v, NULL, TR_NOWAIT), rc);
}

/* Capacity 1: one value is held; a second makes the receiver lag by one,
 * and closing the channel does not drop the value still held. */
static void
test_broadcast_capacity_one_holds_the_newest(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;

    (void)state;
    assert_int_equal(tr_broadcast_create(1, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 1);
    assert_int_equal(take_u64(rx, 0), 1);
    expect_rc(rx, TR_ETIMEDOUT);

    send_u64(tx, 2);
    send_u64(tx, 3);
    tr_broadcast_tx_destroy(tx);
    expect_lag(rx, 1);
    assert_int_equal(take_u64(rx, 0), 3);
    expect_rc(rx, TR_ECLOSED);
    tr_broadcast_rx_destroy(rx);

    assert_int_equal(tr_broadcast_create(1, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 4);
    tr_broadcast_tx_destroy(tx);
    assert_int_equal(take_u64(rx, 0), 4);
    expect_rc(rx, TR_ECLOSED);
    tr_broadcast_rx_destroy(rx);
}

/* A receiver that keeps falling one behind is told each time, by one, and
 * a receiver that keeps up is never told. */
static void
test_broadcast_lag_by_one_repeatedly(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *fast;
    tr_broadcast_rx *slow;

    (void)state;
    assert_int_equal(tr_broadcast_create(2, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &fast), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &slow), TR_OK);
    send_u64(tx, 1);
    send_u64(tx, 2);
    assert_int_equal(take_u64(fast, 0), 1);
    send_u64(tx, 3);
    expect_lag(slow, 1);
    assert_int_equal(take_u64(slow, 0), 2);
    assert_int_equal(take_u64(fast, 0), 2);
    assert_int_equal(take_u64(fast, 0), 3);
    send_u64(tx, 4);
    send_u64(tx, 5);
    expect_lag(slow, 1); /* missed 3; held: 4, 5 */
    assert_int_equal(take_u64(fast, 0), 4);
    assert_int_equal(take_u64(fast, 0), 5);
    send_u64(tx, 6);
    expect_lag(slow, 1); /* missed 4; held: 5, 6 */
    assert_int_equal(take_u64(slow, 0), 5);
    assert_int_equal(take_u64(slow, 0), 6);
    expect_rc(slow, TR_ETIMEDOUT);
    assert_int_equal(take_u64(fast, 0), 6);
    tr_broadcast_rx_destroy(fast);
    tr_broadcast_rx_destroy(slow);
    tr_broadcast_tx_destroy(tx);
}

/* Filling the ring exactly makes nobody lag; one more or two more values
 * make a receiver lag by one or two, and it then reads the rest, whether
 * the channel is still open or closed since. */
static void
test_broadcast_lag_at_and_past_a_full_ring(void **state)
{
    static const struct {
        uint64_t sent;
        uint64_t lag;
        bool close;
    } cases[] = {
        {2, 0, true},
        {3, 1, true},
        {4, 2, true},
        {3, 1, false},
    };

    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        tr_broadcast_tx *tx;
        tr_broadcast_rx *rx;

        assert_int_equal(tr_broadcast_create(2, 8, &tx), TR_OK);
        assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
        for (uint64_t i = 1; i <= cases[c].sent; i++) {
            send_u64(tx, i);
        }
        if (cases[c].close) {
            tr_broadcast_tx_destroy(tx);
        }
        if (cases[c].lag != 0) {
            expect_lag(rx, cases[c].lag);
        }
        for (uint64_t i = cases[c].lag + 1; i <= cases[c].sent; i++) {
            assert_int_equal(take_u64(rx, 0), i);
        }
        expect_rc(rx, cases[c].close ? TR_ECLOSED : TR_ETIMEDOUT);
        if (!cases[c].close) {
            tr_broadcast_tx_destroy(tx);
            expect_rc(rx, TR_ECLOSED);
        }
        tr_broadcast_rx_destroy(rx);
    }
}

/* A receiver's backlog counts every value it has not received, past the
 * capacity (3 rounds up to 4), and the lag it then reports is the excess. */
static void
test_broadcast_rx_len_counts_past_the_capacity(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;

    (void)state;
    assert_int_equal(tr_broadcast_create(3, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    for (uint64_t i = 10; i <= 40; i += 10) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_rx_len(rx), 4);
    assert_int_equal(take_u64(rx, 0), 10);
    send_u64(tx, 50);
    send_u64(tx, 60);
    assert_int_equal(tr_broadcast_rx_len(rx), 5);
    expect_lag(rx, 1);
    assert_int_equal(tr_broadcast_rx_len(rx), 4);
    assert_int_equal(take_u64(rx, 0), 30);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
}

static void
test_broadcast_receiver_count_follows_subscribe_and_destroy(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_tx *tx2;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;
    tr_broadcast_rx *c;

    (void)state;
    assert_int_equal(tr_broadcast_create(16, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 0);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 1);
    assert_int_equal(tr_broadcast_resubscribe(a, &b), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 2);
    assert_int_equal(tr_broadcast_subscribe(tx, &c), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx), 3);
    assert_int_equal(tr_broadcast_tx_clone(tx, &tx2), TR_OK);
    assert_int_equal(tr_broadcast_receiver_count(tx2), 3);
    tr_broadcast_rx_destroy(c);
    tr_broadcast_rx_destroy(a);
    assert_int_equal(tr_broadcast_receiver_count(tx), 1);
    tr_broadcast_tx_destroy(tx2);
    tr_broadcast_rx_destroy(b);
    assert_int_equal(tr_broadcast_receiver_count(tx), 0);
    tr_broadcast_tx_destroy(tx);
}

/* A resubscribed receiver starts at the tail: it neither sees what its
 * original had not received yet nor lags for it, and each moves on its
 * own. */
static void
test_broadcast_resubscribe_starts_at_the_tail(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;
    tr_broadcast_rx *re;

    (void)state;
    assert_int_equal(tr_broadcast_create(3, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 1);
    assert_int_equal(tr_broadcast_resubscribe(rx, &re), TR_OK);
    expect_rc(re, TR_ETIMEDOUT);
    assert_int_equal(take_u64(rx, 0), 1);
    send_u64(tx, 2);
    assert_int_equal(take_u64(re, 0), 2);
    send_u64(tx, 3);
    assert_int_equal(take_u64(rx, 0), 2);
    assert_int_equal(take_u64(rx, 0), 3);
    expect_rc(rx, TR_ETIMEDOUT);
    assert_int_equal(take_u64(re, 0), 3);
    expect_rc(re, TR_ETIMEDOUT);
    tr_broadcast_rx_destroy(re);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);

    /* From a receiver that has lagged: only the receiver itself lags. */
    assert_int_equal(tr_broadcast_create(1, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    send_u64(tx, 1);
    send_u64(tx, 2);
    assert_int_equal(tr_broadcast_resubscribe(rx, &re), TR_OK);
    expect_lag(rx, 1);
    expect_rc(re, TR_ETIMEDOUT);
    assert_int_equal(take_u64(rx, 0), 2);
    expect_rc(rx, TR_ETIMEDOUT);
    expect_rc(re, TR_ETIMEDOUT);
    tr_broadcast_rx_destroy(re);
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
}

/* tr_broadcast_len is the largest backlog of any receiver, capped at the
 * capacity, whatever the mix of sends and receives (a fixed pseudo-random
 * sequence, so that a failure replays). */
static void
test_broadcast_len_is_the_largest_backlog_capped(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx[2];
    uint64_t lcg = 12345;
    uint64_t next = 0;

    (void)state;
    assert_int_equal(tr_broadcast_create(4, 8, &tx), TR_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_broadcast_subscribe(tx, &rx[i]), TR_OK);
    }
    assert_int_equal(tr_broadcast_len(tx), 0);
    for (int step = 0; step < 500; step++) {
        size_t most = 0;
        uint64_t pick;

        lcg = lcg * 6364136223846793005u + 1442695040888963407u;
        pick = lcg >> 61; /* 0..7 */
        if (pick < 4) {
            send_u64(tx, next++);
        } else {
            const tr_broadcast_value *v = NULL;
            int rc = tr_broadcast_recv_wait(rx[pick & 1], &v, NULL, TR_NOWAIT);
            assert_true(rc == TR_OK || rc == TR_ELAGGED || rc == TR_ETIMEDOUT);
            tr_broadcast_value_release(rc == TR_OK ? v : NULL);
        }
        for (int i = 0; i < 2; i++) {
            size_t n = tr_broadcast_rx_len(rx[i]);
            most = n > most ? n : most;
        }
        assert_int_equal(tr_broadcast_len(tx), most < 4 ? most : 4);
    }
    tr_broadcast_rx_destroy(rx[0]);
    tr_broadcast_rx_destroy(rx[1]);
    tr_broadcast_tx_destroy(tx);
}

/* Receivers dropped with values still queued for them: the values no
 * longer count, and everything is freed with the channel (ASan's leak
 * check in the asan build), the values a receiver took included. */
static void
test_broadcast_receivers_dropped_with_values_queued(void **state)
{
    tr_broadcast_tx *tx;
    tr_broadcast_rx *a;
    tr_broadcast_rx *b;
    char text[] = "queued, then dropped";

    (void)state;
    assert_int_equal(tr_broadcast_create(16, 64, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &b), TR_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tr_broadcast_send(tx, text, sizeof(text)), TR_OK);
    }
    {
        const tr_broadcast_value *v = NULL;
        assert_int_equal(tr_broadcast_recv_wait(a, &v, NULL, TR_NOWAIT), TR_OK);
        tr_broadcast_value_release(v);
    }
    assert_int_equal(tr_broadcast_len(tx), 5);
    tr_broadcast_rx_destroy(b);
    assert_int_equal(tr_broadcast_len(tx), 4);
    tr_broadcast_rx_destroy(a);
    assert_int_equal(tr_broadcast_len(tx), 0);
    assert_int_equal(tr_broadcast_receiver_count(tx), 0);
    tr_broadcast_tx_destroy(tx);

    /* The last handle is a receiver with values queued. */
    assert_int_equal(tr_broadcast_create(2, 64, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &a), TR_OK);
    for (int i = 0; i < 40; i++) { /* overwrites: deferred values too */
        assert_int_equal(tr_broadcast_send(tx, text, sizeof(text)), TR_OK);
    }
    tr_broadcast_tx_destroy(tx);
    tr_broadcast_rx_destroy(a);
}

/* Capacity edges: 1 and TR_BROADCAST_CAP_MAX are accepted (a value then
 * wraps nothing), 0 and anything over the maximum are not. */
static void
test_broadcast_capacity_edges(void **state)
{
    tr_broadcast_tx *tx = NULL;
    tr_broadcast_rx *rx;

    (void)state;
    assert_int_equal(tr_broadcast_create(0, 8, &tx), TR_EINVAL);
    assert_int_equal(tr_broadcast_create(TR_BROADCAST_CAP_MAX + 1, 8, &tx),
                     TR_EINVAL);
    assert_int_equal(tr_broadcast_create(SIZE_MAX, 8, &tx), TR_EINVAL);
    assert_null(tx); /* untouched on error */
    assert_int_equal(tr_broadcast_create(TR_BROADCAST_CAP_MAX, 8, &tx), TR_OK);
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    for (uint64_t i = 0; i < 100; i++) {
        send_u64(tx, i);
    }
    assert_int_equal(tr_broadcast_len(tx), 100);
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(take_u64(rx, 0), i);
    }
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
}

/* ---- actor subscribers ---- */

enum {
    MSG_VALUE = 10,
    MSG_LAGGED = 11,
    MSG_CLOSED = 12,
    MSG_SUBSCRIBED = 13,
    MSG_UNSUBSCRIBED = 14,
};

/* What the subscriber reports to the test thread. */
typedef struct report {
    uint32_t type;
    int32_t rc;
    uint64_t x;
} report;

typedef struct sub_args {
    tr_broadcast_tx *tx;
    tr_mailbox *probe;
    /* The subscriber holds its first value until this is set. */
    tr_atomic(int) * gate;
    uint64_t unsubscribe_at; /* value that makes it unsubscribe; 0: never */
    uint64_t fail_at;        /* value that makes it fail; 0: never */
} sub_args;

typedef struct sub_state {
    sub_args args;
    tr_broadcast_sub *sub;
    bool held;
} sub_state;

static void
report_to(tr_mailbox *probe, uint32_t type, int rc, uint64_t x)
{
    report r = {type, rc, x};
    /* Unbounded: only out of memory fails, and the test then times out. */
    if (tr_mailbox_send(probe, &r, sizeof(r)) != TR_OK) {
        return;
    }
}

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    sub_state *s = state;
    static const tr_broadcast_sub_types types = {MSG_VALUE, MSG_LAGGED,
                                                 MSG_CLOSED};
    int rc;

    s->args = *(const sub_args *)arg;
    rc = tr_broadcast_subscribe_actor(ctx, s->args.tx, &types, &s->sub);
    report_to(s->args.probe, MSG_SUBSCRIBED, rc, 0);
    return rc;
}

/* Spin (bounded) until the test opens the gate. */
static void
hold(tr_atomic(int) * gate)
{
    uint64_t deadline = tr__now_ns() + 10000000000u;
    while (tr_load_acq(gate) == 0 && tr__now_ns() < deadline) {
    }
}

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sub_state *s = state;
    uint64_t x = 0;

    if (msg->size == sizeof(x)) {
        memcpy(&x, msg->data, sizeof(x));
    }
    report_to(s->args.probe, msg->type, (int)msg->size, x);
    if (msg->type != MSG_VALUE) {
        return TR_OK;
    }
    if (s->args.gate != NULL && !s->held) {
        s->held = true;
        hold(s->args.gate);
    }
    if (x != 0 && x == s->args.unsubscribe_at) {
        report_to(s->args.probe, MSG_UNSUBSCRIBED,
                  tr_broadcast_unsubscribe(ctx, s->sub), 0);
        report_to(s->args.probe, MSG_UNSUBSCRIBED,
                  tr_broadcast_unsubscribe(ctx, s->sub), 0);
    }
    if (x != 0 && x == s->args.fail_at) {
        return TR_EINVAL;
    }
    return TR_OK;
}

static const tr_behaviour sub_behaviour = {
    .name = "broadcast_subscriber",
    .state_size = sizeof(sub_state),
    .init = sub_init,
    .handle = sub_handle,
};

static report
expect(tr_mailbox *probe, uint32_t type, uint64_t x)
{
    report r = {0, 0, 0};
    size_t len;

    assert_int_equal(
        tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, tr_ms(5000)), TR_OK);
    assert_int_equal(r.type, type);
    assert_int_equal(r.x, x);
    return r;
}

static void
expect_nothing(tr_mailbox *probe)
{
    report r;
    size_t len;
    assert_int_equal(
        tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, TR_NOWAIT),
        TR_ETIMEDOUT);
}

static size_t receivers_wanted;

static bool
receivers_are(void *arg)
{
    return tr_broadcast_receiver_count(arg) == receivers_wanted;
}

static void
test_broadcast_actor_gets_values_then_closed(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    sub_args args = {0};
    tr_addr a;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(64, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &a), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    for (uint64_t i = 1; i <= 20; i++) {
        send_u64(tx, i);
    }
    for (uint64_t i = 1; i <= 20; i++) {
        expect(probe, MSG_VALUE, i);
    }
    tr_broadcast_tx_destroy(tx);
    assert_int_equal(expect(probe, MSG_CLOSED, 0).rc, 0);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_mailbox_destroy(probe);
}

static void
test_broadcast_slow_actor_lags_by_the_same_rule(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    tr_atomic(int) gate;
    sub_args args = {0};
    tr_addr a;

    (void)state;
    tr_init_relaxed(&gate, 0);
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(4, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.gate = &gate;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &a), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    send_u64(tx, 100);
    expect(probe, MSG_VALUE, 100); /* now held in its handler */
    for (uint64_t i = 101; i <= 110; i++) {
        send_u64(tx, i);
    }
    tr_store_rel(&gate, 1);
    /* Held: 107..110; missed 101..106. */
    assert_int_equal(expect(probe, MSG_LAGGED, 6).rc, sizeof(uint64_t));
    for (uint64_t i = 107; i <= 110; i++) {
        expect(probe, MSG_VALUE, i);
    }
    tr_broadcast_tx_destroy(tx);
    expect(probe, MSG_CLOSED, 0);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_mailbox_destroy(probe);
}

/* Closed while the subscriber is behind and busy: it is told the lag,
 * gets the values still held, then the close (tokio's recovery after a
 * wrap, on a closed channel). */
static void
test_broadcast_actor_lags_then_drains_then_closed(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    tr_atomic(int) gate;
    sub_args args = {0};

    (void)state;
    tr_init_relaxed(&gate, 0);
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(2, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.gate = &gate;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    send_u64(tx, 1);
    expect(probe, MSG_VALUE, 1); /* now held in its handler */
    for (uint64_t i = 2; i <= 5; i++) {
        send_u64(tx, i);
    }
    tr_broadcast_tx_destroy(tx);
    tr_store_rel(&gate, 1);
    /* Held: 4, 5; missed 2, 3. */
    expect(probe, MSG_LAGGED, 2);
    expect(probe, MSG_VALUE, 4);
    expect(probe, MSG_VALUE, 5);
    expect(probe, MSG_CLOSED, 0);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_mailbox_destroy(probe);
}

/* A subscriber that is always behind must still reach its user lane. */
enum {
    MSG_BUSY_VALUE = 40,
    MSG_BUSY_LAG = 41,
    MSG_BUSY_CLOSED = 42,
    MSG_BUSY_PING = 43
};

static tr_atomic(uint64_t) busy_values;
static tr_atomic(int) busy_pinged;
static tr_atomic(int) busy_stop;

static int
busy_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {MSG_BUSY_VALUE, MSG_BUSY_LAG,
                                                 MSG_BUSY_CLOSED};
    (void)state;
    return tr_broadcast_subscribe_actor(ctx, (tr_broadcast_tx *)(uintptr_t)arg,
                                        &types, NULL);
}

static int
busy_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->type == MSG_BUSY_PING) {
        tr_store_rel(&busy_pinged, 1);
    } else if (msg->type == MSG_BUSY_VALUE) {
        /* Slower than the publisher: the subscription always has more. */
        uint64_t until = tr__now_ns() + 2000;
        while (tr__now_ns() < until) {
        }
        tr_faa_relaxed(&busy_values, 1);
    }
    return TR_OK;
}

static const tr_behaviour busy_behaviour = {
    .name = "busy_subscriber",
    .init = busy_init,
    .handle = busy_handle,
};

static void *
busy_publisher(void *arg)
{
    tr_broadcast_tx *tx = arg;
    uint64_t x = 0;
    uint64_t deadline = tr__now_ns() + 20000000000u;

    while (tr_load_acq(&busy_stop) == 0 && tr__now_ns() < deadline) {
        x++;
        if (tr_broadcast_send(tx, &x, sizeof(x)) != TR_OK) {
            break;
        }
    }
    return NULL;
}

static bool
busy_started(void *arg)
{
    (void)arg;
    return tr_load_relaxed(&busy_values) > 2000;
}

static bool
busy_ping_seen(void *arg)
{
    (void)arg;
    return tr_load_acq(&busy_pinged) != 0;
}

static void
test_broadcast_lagging_subscriber_still_gets_user_messages(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_broadcast_tx *tx;
    tr_addr a;
    pthread_t pub;

    (void)state;
    tr_store_relaxed(&busy_values, 0);
    tr_store_relaxed(&busy_pinged, 0);
    tr_store_relaxed(&busy_stop, 0);
    assert_int_equal(tr_broadcast_create(65536, 8, &tx), TR_OK);
    assert_int_equal(tr_spawn(tr_system_ctx(sys), &busy_behaviour,
                              (const void *)(uintptr_t)tx, NULL, &a),
                     TR_OK);
    assert_int_equal(pthread_create(&pub, NULL, busy_publisher, tx), 0);
    assert_true(tr_test_wait_until(busy_started, NULL, 10000));
    assert_int_equal(tr_send(tr_system_ctx(sys), a, MSG_BUSY_PING, NULL, 0),
                     TR_OK);
    uint64_t v0 = tr_load_relaxed(&busy_values);
    bool seen = tr_test_wait_until(busy_ping_seen, NULL, 10000);
    uint64_t between = tr_load_relaxed(&busy_values) - v0;
    tr_store_rel(&busy_stop, 1);
    pthread_join(pub, NULL);
    assert_true(seen);
    /* The rest of the run under way, and at most one more batch (1024)
     * before the user lane; before the fix, hundreds of thousands. */
    assert_true(between <= 4 * 1024);
    tr_broadcast_tx_destroy(tx);
    tr_test_shutdown(sys);
}

static void
test_broadcast_unsubscribe_stops_delivery(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    sub_args args = {0};
    tr_atomic(int) gate;
    tr_addr a;

    (void)state;
    tr_init_relaxed(&gate, 0);
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(64, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.unsubscribe_at = 3;
    args.gate = &gate; /* held on 1 until all six are sent */
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &a), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    send_u64(tx, 1);
    expect(probe, MSG_VALUE, 1);
    for (uint64_t i = 2; i <= 6; i++) {
        send_u64(tx, i);
    }
    tr_store_rel(&gate, 1);
    expect(probe, MSG_VALUE, 2);
    expect(probe, MSG_VALUE, 3);
    assert_int_equal(expect(probe, MSG_UNSUBSCRIBED, 0).rc, TR_OK);
    assert_int_equal(expect(probe, MSG_UNSUBSCRIBED, 0).rc, TR_EALREADY);
    receivers_wanted = 0;
    assert_true(tr_test_wait_until(receivers_are, tx, 5000));
    uint64_t x = 7;
    assert_int_equal(tr_broadcast_send(tx, &x, sizeof(x)), TR_ECLOSED);
    tr_broadcast_tx_destroy(tx);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_mailbox_destroy(probe);
}

static void
test_broadcast_subscription_ends_with_the_actor(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    sub_args args = {0};
    tr_addr a;
    tr_addr b;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(64, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.fail_at = 2;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &a), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    args.fail_at = 0;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &b), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    assert_int_equal(tr_broadcast_receiver_count(tx), 2);
    send_u64(tx, 1);
    send_u64(tx, 2);
    /* `a` fails on 2: its subscription ends with it. */
    assert_true(tr_test_wait_stopped(sys, a, 5000));
    receivers_wanted = 1;
    assert_true(tr_test_wait_until(receivers_are, tx, 5000));
    assert_int_equal(tr_actor_stop(tr_system_ctx(sys), b), TR_OK);
    assert_true(tr_test_wait_stopped(sys, b, 5000));
    receivers_wanted = 0;
    assert_true(tr_test_wait_until(receivers_are, tx, 5000));
    tr_broadcast_tx_destroy(tx);
    tr_test_shutdown(sys);
    tr_mailbox_destroy(probe);
}

/* A subscriber that switches tables on its first value: the values after
 * it (in the same batch) go to the new table. */
static tr_mailbox *become_probe;

static int first_table_value(tr_ctx *ctx, void *state, const tr_msg *msg);

static int
second_table_value(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    uint64_t x;

    (void)state;
    (void)ctx;
    memcpy(&x, msg->data, sizeof(x));
    report_to(become_probe, MSG_VALUE, 2, x);
    return TR_OK;
}

static const tr_handler second_rows[] = {{MSG_VALUE, second_table_value}};
static const tr_dispatch second_table = {second_rows, 1, NULL};

static int
first_table_value(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    uint64_t x;

    (void)state;
    memcpy(&x, msg->data, sizeof(x));
    report_to(become_probe, MSG_VALUE, 1, x);
    return tr_become(ctx, &second_table);
}

static int
become_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {MSG_VALUE, MSG_LAGGED,
                                                 MSG_CLOSED};
    tr_broadcast_tx *tx = *(tr_broadcast_tx *const *)arg;

    int rc;

    (void)state;
    rc = tr_broadcast_subscribe_actor(ctx, tx, &types, NULL);
    /* Sent before the actor can run: its first run reads all four in one
     * batch, so the switch happens in the middle of a batch. */
    for (uint64_t i = 5; rc == TR_OK && i <= 8; i++) {
        rc = tr_broadcast_send(tx, &i, sizeof(i));
    }
    return rc;
}

static const tr_handler first_rows[] = {{MSG_VALUE, first_table_value}};
static const tr_dispatch first_table = {first_rows, 1, NULL};
static const tr_behaviour become_behaviour = {
    .name = "broadcast_become",
    .init = become_init,
    .dispatch = &first_table,
};

static void
test_broadcast_become_applies_from_the_next_value(void **state)
{
    tr_system *sys = tr_test_system(1);
    tr_broadcast_tx *tx;
    tr_broadcast_rx *rx;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &become_probe), TR_OK);
    assert_int_equal(tr_broadcast_create(16, 8, &tx), TR_OK);
    /* A thread receiver keeps the channel open while the actor starts. */
    assert_int_equal(tr_broadcast_subscribe(tx, &rx), TR_OK);
    for (uint64_t i = 1; i <= 4; i++) {
        send_u64(tx, i); /* queued before the actor subscribes: not seen */
    }
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &become_behaviour, &tx, NULL, NULL),
        TR_OK);
    assert_int_equal(expect(become_probe, MSG_VALUE, 5).rc, 1);
    for (uint64_t i = 6; i <= 8; i++) {
        assert_int_equal(expect(become_probe, MSG_VALUE, i).rc, 2);
    }
    tr_broadcast_rx_destroy(rx);
    tr_broadcast_tx_destroy(tx);
    tr_test_shutdown(sys);
    expect_nothing(become_probe);
    tr_mailbox_destroy(become_probe);
}

static void
test_broadcast_shutdown_with_live_subscriptions(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_broadcast_tx *tx;
    sub_args args = {0};

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_broadcast_create(8, 8, &tx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL),
            TR_OK);
        expect(probe, MSG_SUBSCRIBED, 0);
    }
    for (uint64_t i = 1; i <= 100; i++) {
        send_u64(tx, i);
    }
    tr_test_shutdown(sys);
    /* The subscriptions ended with their actors; the channel is intact. */
    assert_int_equal(tr_broadcast_receiver_count(tx), 0);
    uint64_t x = 1;
    assert_int_equal(tr_broadcast_send(tx, &x, sizeof(x)), TR_ECLOSED);
    tr_broadcast_tx_destroy(tx);
    tr_mailbox_destroy(probe);
}

/*
 * Pins and the scan's scratch. A subscriber that unsubscribes inside its
 * handler stays listed (its pin still guards the value it borrows) but no
 * longer counts as a receiver; the scan's scratch must still have room for
 * its pin. Eight handlers block holding pins, one of them unsubscribes, a
 * ninth subscriber joins and blocks too, then enough sends to make the
 * sender scan the nine pins (once overflowing an eight-slot scratch).
 */
enum { PIN_VALUE = 1, PIN_OTHER = 2 };

static tr_broadcast_tx *pin_tx;
static tr_atomic(int) pin_entered;
static tr_atomic(bool) pin_release;
static tr_atomic(int) pin_unsubscribed;

typedef struct pinner {
    tr_broadcast_sub *sub;
    int first; /* 2: unsubscribe in the first handler; 1: just block */
} pinner;

static int
pin_value(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pinner *p = state;

    (void)msg;
    if (p->first == 0) {
        return TR_OK;
    }
    if (p->first == 2 && tr_broadcast_unsubscribe(ctx, p->sub) == TR_OK) {
        tr_faa_seqcst(&pin_unsubscribed, 1);
    }
    p->first = 0;
    tr_faa_seqcst(&pin_entered, 1);
    while (!tr_load_acq(&pin_release)) { /* hold the borrowed value */
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    return TR_OK;
}

static int
pin_other(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TR_OK;
}

static int
pin_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {PIN_VALUE, PIN_OTHER,
                                                 PIN_OTHER};
    pinner *p = state;

    p->first = *(const int *)arg;
    return tr_broadcast_subscribe_actor(ctx, pin_tx, &types, &p->sub);
}

static const tr_handler pin_rows[] = {{PIN_VALUE, pin_value},
                                      {PIN_OTHER, pin_other}};
static const tr_dispatch pin_table = {.handlers = pin_rows, .len = 2};
static const tr_behaviour pin_behaviour = {.name = "pinner",
                                           .state_size = sizeof(pinner),
                                           .init = pin_init,
                                           .dispatch = &pin_table};

static bool
pins_entered(void *n)
{
    return tr_load_seqcst(&pin_entered) >= *(int *)n;
}

static void
test_broadcast_scan_has_room_for_detached_pinned_subscribers(void **state)
{
    (void)state;
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    cfg.workers = 12; /* one per blocked handler, and spare */
    tr_system *sys = tr_test_system_cfg(&cfg);
    tr_ctx *ctx = tr_system_ctx(sys);
    int n = 8;

    tr_store_relaxed(&pin_entered, 0);
    tr_store_relaxed(&pin_release, false);
    tr_store_relaxed(&pin_unsubscribed, 0);
    assert_int_equal(tr_broadcast_create(1, sizeof(uint64_t), &pin_tx), TR_OK);
    for (int i = 0; i < 8; i++) {
        int first = i == 0 ? 2 : 1;
        assert_int_equal(tr_spawn(ctx, &pin_behaviour, &first, NULL, NULL),
                         TR_OK);
    }
    send_u64(pin_tx, 0);
    assert_true(tr_test_wait_until(pins_entered, &n, 5000));
    assert_int_equal(tr_load_seqcst(&pin_unsubscribed), 1);
    assert_int_equal(tr_broadcast_receiver_count(pin_tx), 7);
    int first = 1;
    assert_int_equal(tr_spawn(ctx, &pin_behaviour, &first, NULL, NULL), TR_OK);
    send_u64(pin_tx, 1);
    n = 9;
    assert_true(tr_test_wait_until(pins_entered, &n, 5000));
    for (uint64_t x = 2; x < 42; x++) {
        send_u64(pin_tx, x); /* overwrites values: the sender scans pins */
    }
    tr_store_rel(&pin_release, true);
    tr_broadcast_tx_destroy(pin_tx);
    tr_test_shutdown(sys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_broadcast_every_receiver_sees_every_value_in_order),
        cmocka_unit_test(test_broadcast_lag_is_exact_and_resumes_at_the_oldest),
        cmocka_unit_test(
            test_broadcast_len_counts_what_the_slowest_has_not_seen),
        cmocka_unit_test(test_broadcast_new_receiver_starts_at_the_next_value),
        cmocka_unit_test(test_broadcast_send_without_receivers_reports_it),
        cmocka_unit_test(test_broadcast_rx_len_and_resubscribe),
        cmocka_unit_test(test_broadcast_last_sender_gone_drains_then_closes),
        cmocka_unit_test(test_broadcast_value_outlives_its_channel),
        cmocka_unit_test(
            test_broadcast_blocked_receivers_wake_on_send_and_on_close),
        cmocka_unit_test(test_broadcast_misuse_returns_codes),
        cmocka_unit_test(test_broadcast_capacity_one_holds_the_newest),
        cmocka_unit_test(test_broadcast_lag_by_one_repeatedly),
        cmocka_unit_test(test_broadcast_lag_at_and_past_a_full_ring),
        cmocka_unit_test(test_broadcast_rx_len_counts_past_the_capacity),
        cmocka_unit_test(
            test_broadcast_receiver_count_follows_subscribe_and_destroy),
        cmocka_unit_test(test_broadcast_resubscribe_starts_at_the_tail),
        cmocka_unit_test(test_broadcast_len_is_the_largest_backlog_capped),
        cmocka_unit_test(test_broadcast_receivers_dropped_with_values_queued),
        cmocka_unit_test(test_broadcast_capacity_edges),
        cmocka_unit_test(
            test_broadcast_scan_has_room_for_detached_pinned_subscribers),
        cmocka_unit_test(test_broadcast_actor_gets_values_then_closed),
        cmocka_unit_test(test_broadcast_slow_actor_lags_by_the_same_rule),
        cmocka_unit_test(test_broadcast_actor_lags_then_drains_then_closed),
        cmocka_unit_test(
            test_broadcast_lagging_subscriber_still_gets_user_messages),
        cmocka_unit_test(test_broadcast_unsubscribe_stops_delivery),
        cmocka_unit_test(test_broadcast_subscription_ends_with_the_actor),
        cmocka_unit_test(test_broadcast_become_applies_from_the_next_value),
        cmocka_unit_test(test_broadcast_shutdown_with_live_subscriptions),
    };
    return cmocka_run_group_tests_name("broadcast", tests, NULL, NULL);
}
