/*
 * Watch channels: the initial value counts as seen, changes coalesce,
 * borrow reads the newest version, send without receivers, send_modify in
 * place (and unchanged), close after the last sender with the last value
 * still readable, blocking waits, misuse codes, and actor subscriptions
 * (one pending notification however many changes, close, unsubscribe, the
 * end of the actor, shutdown with live subscriptions), and ports of
 * tokio's sync_watch cases (closed before any change, sends refused until
 * a receiver subscribes, several senders).
 */
#include "support/tr_test.h"

#include "common/tr_park.h"

#include <pthread.h>

static void
send_int(tr_watch_tx *tx, int v)
{
    assert_int_equal(tr_watch_send(tx, &v), TR_OK);
}

static void
test_watch_initial_value_is_seen_and_changes_coalesce(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    int v = 1;
    int out = 0;
    uint64_t version = 99;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_watch_borrow(rx, &out, &version), TR_OK);
    assert_int_equal(out, 1);
    assert_int_equal(version, 0);
    send_int(tx, 2);
    send_int(tx, 3);
    send_int(tx, 4);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_watch_borrow(rx, &out, &version), TR_OK);
    assert_int_equal(out, 4);
    assert_int_equal(version, 3);
    /* borrow does not mark seen; borrow_and_update does. */
    send_int(tx, 5);
    assert_int_equal(tr_watch_borrow(rx, &out, NULL), TR_OK);
    assert_int_equal(out, 5);
    assert_int_equal(tr_watch_borrow_and_update(rx, &out, &version), TR_OK);
    assert_int_equal(version, 4);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    tr_watch_rx_destroy(rx);
    tr_watch_tx_destroy(tx);
}

static void
test_watch_new_receiver_has_seen_the_current_value(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *a;
    tr_watch_rx *b;
    int v = 1;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &a), TR_OK);
    send_int(tx, 2);
    assert_int_equal(tr_watch_subscribe(tx, &b), TR_OK);
    assert_int_equal(tr_watch_receiver_count(tx), 2);
    assert_int_equal(tr_watch_changed_wait(b, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_watch_changed_wait(a, TR_NOWAIT), TR_OK);
    send_int(tx, 3);
    assert_int_equal(tr_watch_changed_wait(b, TR_NOWAIT), TR_OK);
    tr_watch_rx_destroy(a);
    tr_watch_rx_destroy(b);
    tr_watch_tx_destroy(tx);
}

/* has_changed looks without marking seen, and reports the close even with
 * a change unseen (tokio); a clone has seen what its original has seen. */
static void
test_watch_has_changed_and_clone(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *a;
    tr_watch_rx *b;
    tr_watch_rx *c;
    bool changed = true;
    int v = 1;
    int out = 0;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &a), TR_OK);
    assert_int_equal(tr_watch_has_changed(a, &changed), TR_OK);
    assert_false(changed);
    send_int(tx, 2);
    for (int i = 0; i < 2; i++) { /* it does not mark the change seen */
        changed = false;
        assert_int_equal(tr_watch_has_changed(a, &changed), TR_OK);
        assert_true(changed);
    }
    /* The clone has not seen 2 either; once a sees it, b still has not. */
    assert_int_equal(tr_watch_rx_clone(a, &b), TR_OK);
    assert_int_equal(tr_watch_receiver_count(tx), 2);
    assert_int_equal(tr_watch_changed_wait(a, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_has_changed(a, &changed), TR_OK);
    assert_false(changed);
    assert_int_equal(tr_watch_has_changed(b, &changed), TR_OK);
    assert_true(changed);
    assert_int_equal(tr_watch_borrow_and_update(b, &out, NULL), TR_OK);
    assert_int_equal(out, 2);
    assert_int_equal(tr_watch_has_changed(b, &changed), TR_OK);
    assert_false(changed);
    /* A clone of a receiver that has seen everything has too. */
    assert_int_equal(tr_watch_rx_clone(b, &c), TR_OK);
    assert_int_equal(tr_watch_changed_wait(c, TR_NOWAIT), TR_ETIMEDOUT);

    /* Closed with a change unseen: has_changed says closed, the wait
     * still gives the change, and borrow reads it. */
    send_int(tx, 3);
    tr_watch_tx_destroy(tx);
    assert_int_equal(tr_watch_has_changed(a, &changed), TR_ECLOSED);
    assert_int_equal(tr_watch_changed_wait(a, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_changed_wait(a, TR_NOWAIT), TR_ECLOSED);
    tr_watch_rx *d;
    assert_int_equal(tr_watch_rx_clone(c, &d), TR_OK); /* after the close */
    assert_int_equal(tr_watch_has_changed(d, &changed), TR_ECLOSED);
    assert_int_equal(tr_watch_borrow(d, &out, NULL), TR_OK);
    assert_int_equal(out, 3);

    assert_int_equal(tr_watch_has_changed(NULL, &changed), TR_EINVAL);
    assert_int_equal(tr_watch_has_changed(a, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_rx_clone(NULL, &d), TR_EINVAL);
    assert_int_equal(tr_watch_rx_clone(a, NULL), TR_EINVAL);
    tr_watch_rx_destroy(a);
    tr_watch_rx_destroy(b);
    tr_watch_rx_destroy(c);
    tr_watch_rx_destroy(d); /* the last handle frees the channel (ASan) */
}

static bool
add_arg(void *value, void *arg)
{
    int by = *(int *)arg;
    *(int *)value += by;
    return by != 0;
}

/* Changes the value but says it did not. */
static bool
add_unsaid(void *value, void *arg)
{
    *(int *)value += *(int *)arg;
    return false;
}

static void
test_watch_send_modify_changes_in_place(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    int v = 10;
    int by = 5;
    int out = 0;
    uint64_t version;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    assert_int_equal(tr_watch_send_modify(tx, add_arg, &by), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_borrow(rx, &out, &version), TR_OK);
    assert_int_equal(out, 15);
    assert_int_equal(version, 1);
    by = 0; /* "unchanged": no new version, nobody told */
    assert_int_equal(tr_watch_send_modify(tx, add_arg, &by), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    /* A change `fn` does not report is not published: readers see it
     * with the next one that is. */
    by = 100;
    assert_int_equal(tr_watch_send_modify(tx, add_unsaid, &by), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_watch_borrow(rx, &out, &version), TR_OK);
    assert_int_equal(out, 15);
    assert_int_equal(version, 1);
    by = -100;
    assert_int_equal(tr_watch_send_modify(tx, add_unsaid, &by), TR_OK);
    /* Without receivers: send refuses, send_modify still works. */
    tr_watch_rx_destroy(rx);
    assert_int_equal(tr_watch_receiver_count(tx), 0);
    v = 1;
    assert_int_equal(tr_watch_send(tx, &v), TR_ECLOSED);
    by = 1;
    assert_int_equal(tr_watch_send_modify(tx, add_arg, &by), TR_OK);
    assert_int_equal(tr_watch_subscribe(tx, &rx), TR_OK);
    assert_int_equal(tr_watch_borrow(rx, &out, &version), TR_OK);
    assert_int_equal(out, 16);
    assert_int_equal(version, 2);
    tr_watch_rx_destroy(rx);
    tr_watch_tx_destroy(tx);
}

static void
test_watch_close_reports_the_last_change_then_fails(void **state)
{
    tr_watch_tx *tx;
    tr_watch_tx *tx2;
    tr_watch_rx *rx;
    int v = 1;
    int out = 0;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    assert_int_equal(tr_watch_tx_clone(tx, &tx2), TR_OK);
    tr_watch_tx_destroy(tx);
    send_int(tx2, 7);
    tr_watch_tx_destroy(tx2);
    assert_int_equal(tr_watch_changed_wait(rx, TR_FOREVER), TR_OK);
    assert_int_equal(tr_watch_changed_wait(rx, TR_FOREVER), TR_ECLOSED);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ECLOSED);
    assert_int_equal(tr_watch_borrow(rx, &out, NULL), TR_OK);
    assert_int_equal(out, 7);
    tr_watch_rx_destroy(rx);
}

/* Ports of tokio's sync_watch cases on closing and on receiver counts. */

/* Closed before any send: the wait fails at once, and the initial value
 * stays readable. */
static void
test_watch_closed_before_any_change_fails_at_once(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    bool changed = true;
    int v = 1;
    int out = 0;
    uint64_t version = 99;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    tr_watch_tx_destroy(tx);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ECLOSED);
    assert_int_equal(tr_watch_changed_wait(rx, TR_FOREVER), TR_ECLOSED);
    assert_int_equal(tr_watch_has_changed(rx, &changed), TR_ECLOSED);
    assert_int_equal(tr_watch_borrow_and_update(rx, &out, &version), TR_OK);
    assert_int_equal(out, 1);
    assert_int_equal(version, 0);
    tr_watch_rx_destroy(rx);
}

/* Without receivers a send is refused and not stored; a new receiver
 * makes sends work again, until it too is gone. */
static void
test_watch_send_refused_without_receivers_until_one_subscribes(void **state)
{
    tr_watch_tx *tx;
    tr_watch_rx *a;
    tr_watch_rx *b;
    int v = 1;
    int out = 0;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &a), TR_OK);
    assert_int_equal(tr_watch_receiver_count(tx), 1);
    tr_watch_rx_destroy(a);
    assert_int_equal(tr_watch_receiver_count(tx), 0);
    v = 2;
    assert_int_equal(tr_watch_send(tx, &v), TR_ECLOSED);
    assert_int_equal(tr_watch_subscribe(tx, &a), TR_OK);
    assert_int_equal(tr_watch_receiver_count(tx), 1);
    assert_int_equal(tr_watch_borrow(a, &out, NULL), TR_OK);
    assert_int_equal(out, 1); /* the refused 2 was not stored */
    send_int(tx, 3);
    assert_int_equal(tr_watch_rx_clone(a, &b), TR_OK);
    assert_int_equal(tr_watch_receiver_count(tx), 2);
    tr_watch_rx_destroy(a);
    assert_int_equal(tr_watch_receiver_count(tx), 1);
    assert_int_equal(tr_watch_changed_wait(b, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_borrow(b, &out, NULL), TR_OK);
    assert_int_equal(out, 3);
    tr_watch_rx_destroy(b);
    assert_int_equal(tr_watch_receiver_count(tx), 0);
    assert_int_equal(tr_watch_send(tx, &v), TR_ECLOSED);
    tr_watch_tx_destroy(tx);
}

/* Several senders: each one's sends reach the receiver, dropping one does
 * not close the channel, dropping the last does; after it, borrow_and_update
 * still reads the last value and marks it seen. */
static void
test_watch_closes_with_the_last_of_several_senders(void **state)
{
    tr_watch_tx *tx;
    tr_watch_tx *tx2;
    tr_watch_rx *rx;
    bool changed = true;
    int v = 0;
    int out = 0;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    assert_int_equal(tr_watch_tx_clone(tx, &tx2), TR_OK);
    send_int(tx, 1);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_OK);
    send_int(tx2, 2);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_borrow(rx, &out, NULL), TR_OK);
    assert_int_equal(out, 2);
    tr_watch_tx_destroy(tx);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ETIMEDOUT);
    assert_int_equal(tr_watch_has_changed(rx, &changed), TR_OK);
    assert_false(changed);
    send_int(tx2, 3);
    tr_watch_tx_destroy(tx2);
    assert_int_equal(tr_watch_borrow_and_update(rx, &out, NULL), TR_OK);
    assert_int_equal(out, 3);
    assert_int_equal(tr_watch_changed_wait(rx, TR_NOWAIT), TR_ECLOSED);
    assert_int_equal(tr_watch_has_changed(rx, &changed), TR_ECLOSED);
    assert_int_equal(tr_watch_borrow(rx, &out, NULL), TR_OK);
    assert_int_equal(out, 3);
    tr_watch_rx_destroy(rx);
}

typedef struct waiter {
    tr_watch_rx *rx;
    int rc;
} waiter;

static void *
wait_forever(void *arg)
{
    waiter *w = arg;
    w->rc = tr_watch_changed_wait(w->rx, TR_FOREVER);
    return NULL;
}

static void
test_watch_blocked_receiver_wakes_on_change_and_on_close(void **state)
{
    tr_watch_tx *tx;
    waiter w = {NULL, -100};
    pthread_t th;
    int v = 0;
    uint64_t t0;

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &w.rx), TR_OK);
    t0 = tr__now_ns();
    assert_int_equal(tr_watch_changed_wait(w.rx, tr_ms(30)), TR_ETIMEDOUT);
    assert_true(tr__now_ns() - t0 >= 29000000u);
    pthread_create(&th, NULL, wait_forever, &w);
    send_int(tx, 1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, TR_OK);
    pthread_create(&th, NULL, wait_forever, &w);
    tr_watch_tx_destroy(tx);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, TR_ECLOSED);
    tr_watch_rx_destroy(w.rx);
}

static void
test_watch_misuse_returns_codes(void **state)
{
    tr_watch_tx *tx;
    tr_watch_tx *tx2;
    tr_watch_rx *rx;
    int v = 0;
    tr_system *sys = tr_test_system(1);

    (void)state;
    assert_int_equal(tr_watch_create(sizeof(int), &v, NULL, &rx), TR_EINVAL);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_create(0, &v, &tx, &rx), TR_EINVAL);
    assert_int_equal(tr_watch_create(sizeof(int), NULL, &tx, &rx), TR_EINVAL);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    assert_int_equal(tr_watch_send(NULL, &v), TR_EINVAL);
    assert_int_equal(tr_watch_send(tx, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_send_modify(tx, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_send_modify(NULL, add_arg, &v), TR_EINVAL);
    assert_int_equal(tr_watch_borrow(NULL, &v, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_borrow(rx, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_borrow_and_update(rx, NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_changed_wait(NULL, TR_NOWAIT), TR_EINVAL);
    assert_int_equal(tr_watch_tx_clone(tx, NULL), TR_EINVAL);
    assert_int_equal(tr_watch_tx_clone(NULL, &tx2), TR_EINVAL);
    assert_int_equal(tr_watch_subscribe(tx, NULL), TR_EINVAL);
    assert_int_equal(
        tr_watch_subscribe_actor(tr_system_ctx(sys), tx, 1, 2, NULL),
        TR_ESTATE);
    assert_int_equal(
        tr_watch_subscribe_actor(tr_system_ctx(sys), NULL, 1, 2, NULL),
        TR_EINVAL);
    assert_int_equal(tr_watch_unsubscribe(tr_system_ctx(sys), NULL), TR_EINVAL);
    assert_int_equal(tr_watch_receiver_count(NULL), 0);
    tr_watch_rx_destroy(NULL);
    tr_watch_tx_destroy(NULL);
    tr_watch_rx_destroy(rx);
    tr_watch_tx_destroy(tx);
    tr_test_shutdown(sys);
}

/* ---- actor subscribers ---- */

enum {
    MSG_CHANGED = 20,
    MSG_CLOSED = 21,
    MSG_SUBSCRIBED = 22,
    MSG_UNSUBSCRIBED = 23,
};

typedef struct report {
    uint32_t type;
    int32_t rc;
    int value;
} report;

typedef struct sub_args {
    tr_watch_tx *tx;
    tr_mailbox *probe;
    tr_atomic(int) * gate; /* holds its first change until set */
    int unsubscribe_at;    /* value that makes it unsubscribe; 0: never */
} sub_args;

typedef struct sub_state {
    sub_args args;
    tr_watch_sub *sub;
    bool held;
} sub_state;

static void
report_to(tr_mailbox *probe, uint32_t type, int rc, int value)
{
    report r = {type, rc, value};
    /* Unbounded: only out of memory fails, and the test then times out. */
    if (tr_mailbox_send(probe, &r, sizeof(r)) != TR_OK) {
        return;
    }
}

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    sub_state *s = state;
    int rc;

    s->args = *(const sub_args *)arg;
    rc = tr_watch_subscribe_actor(ctx, s->args.tx, MSG_CHANGED, MSG_CLOSED,
                                  &s->sub);
    report_to(s->args.probe, MSG_SUBSCRIBED, rc, 0);
    return rc;
}

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sub_state *s = state;
    int v = 0;

    if (msg->size == sizeof(v)) {
        memcpy(&v, msg->data, sizeof(v));
    }
    report_to(s->args.probe, msg->type, (int)msg->size, v);
    if (msg->type != MSG_CHANGED) {
        return TR_OK;
    }
    if (s->args.gate != NULL && !s->held) {
        uint64_t deadline = tr__now_ns() + 10000000000u;
        s->held = true;
        while (tr_load_acq(s->args.gate) == 0 && tr__now_ns() < deadline) {
        }
    }
    if (v != 0 && v == s->args.unsubscribe_at) {
        report_to(s->args.probe, MSG_UNSUBSCRIBED,
                  tr_watch_unsubscribe(ctx, s->sub), 0);
        report_to(s->args.probe, MSG_UNSUBSCRIBED,
                  tr_watch_unsubscribe(ctx, s->sub), 0);
    }
    return TR_OK;
}

static const tr_behaviour sub_behaviour = {
    .name = "watch_subscriber",
    .state_size = sizeof(sub_state),
    .init = sub_init,
    .handle = sub_handle,
};

static report
expect(tr_mailbox *probe, uint32_t type, int value)
{
    report r = {0, 0, 0};
    size_t len;

    assert_int_equal(
        tr_mailbox_recv_wait(probe, &r, sizeof(r), &len, tr_ms(5000)), TR_OK);
    assert_int_equal(r.type, type);
    assert_int_equal(r.value, value);
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

static void
test_watch_actor_gets_one_notification_for_many_changes(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    tr_atomic(int) gate;
    sub_args args = {0};
    int v = 0;

    (void)state;
    tr_init_relaxed(&gate, 0);
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.gate = &gate;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    send_int(tx, 1);
    expect(probe, MSG_CHANGED, 1); /* now held in its handler */
    for (int i = 2; i <= 50; i++) {
        send_int(tx, i);
    }
    tr_store_rel(&gate, 1);
    assert_int_equal(expect(probe, MSG_CHANGED, 50).rc, sizeof(int));
    tr_watch_tx_destroy(tx);
    expect(probe, MSG_CLOSED, 0);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_watch_rx_destroy(rx);
    tr_mailbox_destroy(probe);
}

/* Closed with no change since it subscribed: the actor gets the close
 * and no change. */
static void
test_watch_actor_closed_without_a_change_gets_only_closed(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    sub_args args = {0};
    int v = 5;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    tr_watch_tx_destroy(tx);
    expect(probe, MSG_CLOSED, 0);
    tr_test_shutdown(sys);
    expect_nothing(probe);
    tr_watch_rx_destroy(rx);
    tr_mailbox_destroy(probe);
}

static size_t receivers_wanted;

static bool
receivers_are(void *arg)
{
    return tr_watch_receiver_count(arg) == receivers_wanted;
}

static void
test_watch_unsubscribe_and_actor_end_release_the_subscription(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    sub_args args = {0};
    tr_addr a;
    int v = 0;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    args.unsubscribe_at = 3;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    args.unsubscribe_at = 0;
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, &a), TR_OK);
    expect(probe, MSG_SUBSCRIBED, 0);
    assert_int_equal(tr_watch_receiver_count(tx), 3);
    send_int(tx, 3);
    receivers_wanted = 2;
    assert_true(tr_test_wait_until(receivers_are, tx, 5000));
    assert_int_equal(tr_actor_stop(tr_system_ctx(sys), a), TR_OK);
    receivers_wanted = 1;
    assert_true(tr_test_wait_until(receivers_are, tx, 5000));
    tr_test_shutdown(sys);
    tr_watch_tx_destroy(tx);
    tr_watch_rx_destroy(rx);
    tr_mailbox_destroy(probe);
}

static void
test_watch_shutdown_with_live_subscriptions(void **state)
{
    tr_system *sys = tr_test_system(2);
    tr_mailbox *probe;
    tr_watch_tx *tx;
    tr_watch_rx *rx;
    sub_args args = {0};
    int v = 0;

    (void)state;
    assert_int_equal(tr_mailbox_create(0, &probe), TR_OK);
    assert_int_equal(tr_watch_create(sizeof(int), &v, &tx, &rx), TR_OK);
    args.tx = tx;
    args.probe = probe;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &sub_behaviour, &args, NULL, NULL),
            TR_OK);
        expect(probe, MSG_SUBSCRIBED, 0);
    }
    for (int i = 1; i <= 100; i++) {
        send_int(tx, i);
    }
    tr_test_shutdown(sys);
    assert_int_equal(tr_watch_receiver_count(tx), 1);
    tr_watch_tx_destroy(tx);
    tr_watch_rx_destroy(rx);
    tr_mailbox_destroy(probe);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_initial_value_is_seen_and_changes_coalesce),
        cmocka_unit_test(test_watch_new_receiver_has_seen_the_current_value),
        cmocka_unit_test(test_watch_has_changed_and_clone),
        cmocka_unit_test(test_watch_send_modify_changes_in_place),
        cmocka_unit_test(test_watch_closed_before_any_change_fails_at_once),
        cmocka_unit_test(
            test_watch_send_refused_without_receivers_until_one_subscribes),
        cmocka_unit_test(test_watch_closes_with_the_last_of_several_senders),
        cmocka_unit_test(test_watch_close_reports_the_last_change_then_fails),
        cmocka_unit_test(
            test_watch_blocked_receiver_wakes_on_change_and_on_close),
        cmocka_unit_test(test_watch_misuse_returns_codes),
        cmocka_unit_test(
            test_watch_actor_gets_one_notification_for_many_changes),
        cmocka_unit_test(
            test_watch_actor_closed_without_a_change_gets_only_closed),
        cmocka_unit_test(
            test_watch_unsubscribe_and_actor_end_release_the_subscription),
        cmocka_unit_test(test_watch_shutdown_with_live_subscriptions),
    };
    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
