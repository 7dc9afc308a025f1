/*
 * Watch under load: writer threads change a 16-word value (every word
 * equal to the number of changes so far) with send_modify, while reader
 * threads borrow it without pause, a waiter thread waits for changes, and
 * actor subscribers join and leave. A torn read would show unequal words;
 * every reader also checks that neither the value nor the version ever
 * goes back. At the end the value and the version equal the number of
 * changes, and the actors that stayed saw the last one.
 *
 * Usage: watch_stress [writers] [changes per writer]
 */
#include "support/tr_test.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

enum { WORDS = 16, READERS = 2, MSG_CHANGED = 1, MSG_CLOSED = 2 };

static long n_writers = 3;
static long per_writer = 20000;

typedef struct value {
    uint64_t w[WORDS];
} value;

static tr_watch_tx *chan;
static tr_atomic(int) writers_done;
static tr_atomic(long) writers_finished;
static tr_atomic(long) readers_reading; /* readers past their first read */
static tr_atomic(long) violations;
static tr_atomic(long) reads;
static tr_atomic(long) notifications;
static tr_atomic(long) joins;

static void
bad(void)
{
    tr_faa_relaxed(&violations, 1);
}

/* Every word equal, and not below `*floor` (which it then raises). */
static void
check(const value *v, uint64_t *floor)
{
    for (int i = 1; i < WORDS; i++) {
        if (v->w[i] != v->w[0]) {
            bad();
            return;
        }
    }
    if (v->w[0] < *floor) {
        bad();
    }
    *floor = v->w[0];
}

static bool
increment(void *p, void *arg)
{
    value *v = p;

    (void)arg;
    for (int i = 0; i < WORDS; i++) {
        v->w[i]++;
    }
    return true;
}

static void *
writer_main(void *arg)
{
    (void)arg;
    /* Not before every reader reads: a loaded machine can run all the
     * writes before a reader thread starts. */
    while (tr_load_acq(&readers_reading) < READERS) {
        sched_yield();
    }
    for (long i = 0; i < per_writer; i++) {
        if (tr_watch_send_modify(chan, increment, NULL) != TR_OK) {
            bad();
        }
    }
    tr_faa_acqrel(&writers_finished, 1);
    return NULL;
}

static void *
reader_main(void *arg)
{
    tr_watch_rx *rx;
    uint64_t floor = 0;
    uint64_t last_version = 0;
    bool reading = false;

    (void)arg;
    if (tr_watch_subscribe(chan, &rx) != TR_OK) {
        bad();
        tr_faa_acqrel(&readers_reading, 1); /* let the writers go */
        return NULL;
    }
    while (tr_load_acq(&writers_done) == 0) {
        value v;
        uint64_t version;
        if (tr_watch_borrow(rx, &v, &version) != TR_OK ||
            version < last_version || version != v.w[0]) {
            bad();
        }
        last_version = version;
        check(&v, &floor);
        tr_faa_relaxed(&reads, 1);
        if (!reading) {
            reading = true;
            tr_faa_acqrel(&readers_reading, 1);
        }
    }
    tr_watch_rx_destroy(rx);
    return NULL;
}

typedef struct waiter_result {
    tr_watch_rx *rx;
    uint64_t last;
} waiter_result;

static void *
waiter_main(void *arg)
{
    waiter_result *w = arg;
    uint64_t floor = 0;

    for (;;) {
        value v;
        int rc = tr_watch_changed_wait(w->rx, tr_ms(10000));
        if (rc == TR_ECLOSED) {
            break;
        }
        if (rc != TR_OK || tr_watch_borrow(w->rx, &v, NULL) != TR_OK) {
            bad();
            break;
        }
        check(&v, &floor);
    }
    w->last = floor;
    return NULL;
}

/* ---- actor subscribers ---- */

typedef struct sub_state {
    uint64_t floor;
    uint64_t leave_after; /* changes; 0: stay until closed */
    uint64_t seen;
    tr_watch_sub *sub;
    tr_atomic(uint64_t) * result;
} sub_state;

typedef struct sub_args {
    uint64_t leave_after;
    tr_atomic(uint64_t) * result;
} sub_args;

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    sub_state *s = state;
    const sub_args *a = arg;

    s->leave_after = a->leave_after;
    s->result = a->result;
    tr_faa_relaxed(&joins, 1);
    return tr_watch_subscribe_actor(ctx, chan, MSG_CHANGED, MSG_CLOSED,
                                    &s->sub);
}

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sub_state *s = state;

    if (msg->type == MSG_CLOSED) {
        if (s->result != NULL) {
            /* +1: zero means "not yet" to the test thread. */
            tr_store_rel(s->result, s->floor + 1);
        }
        return tr_stop(ctx);
    }
    if (msg->type != MSG_CHANGED || msg->size != sizeof(value)) {
        bad();
        return tr_stop(ctx);
    }
    check(msg->data, &s->floor);
    tr_faa_relaxed(&notifications, 1);
    if (s->leave_after != 0 && ++s->seen >= s->leave_after) {
        if (s->leave_after % 2 == 0) {
            if (tr_watch_unsubscribe(ctx, s->sub) != TR_OK) {
                bad();
            }
        }
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_behaviour sub_behaviour = {
    .name = "watch_stress_sub",
    .state_size = sizeof(sub_state),
    .init = sub_init,
    .handle = sub_handle,
};

static tr_atomic(uint64_t) steady_result;

static bool
steady_done(void *arg)
{
    (void)arg;
    return tr_load_acq(&steady_result) != 0;
}

static void
test_watch_stress_borrow_is_never_torn(void **state)
{
    tr_system *sys = tr_test_system(2);
    value zero;
    tr_watch_rx *rx;
    tr_watch_rx *own;
    pthread_t writers[8];
    pthread_t readers[READERS];
    pthread_t waiter;
    waiter_result w;
    sub_args steady = {0, &steady_result};
    const uint64_t total = (uint64_t)n_writers * (uint64_t)per_writer;
    uint64_t rng = 99;
    value v;
    uint64_t version;

    (void)state;
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(tr_watch_create(sizeof(value), &zero, &chan, &own), TR_OK);
    assert_int_equal(tr_watch_subscribe(chan, &w.rx), TR_OK);
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &steady, NULL, NULL),
        TR_OK);
    pthread_create(&waiter, NULL, waiter_main, &w);
    for (int i = 0; i < READERS; i++) {
        pthread_create(&readers[i], NULL, reader_main, NULL);
    }
    for (long i = 0; i < n_writers; i++) {
        pthread_create(&writers[i], NULL, writer_main, NULL);
    }
    /* Actors join and leave while the writers write. */
    /* At least 20, however fast the writers are (a loaded machine lets
     * them finish before many actors have joined). */
    for (int i = 0;
         i < 200 && (i < 20 || tr_load_acq(&writers_finished) < n_writers);
         i++) {
        sub_args a = {0};
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        a.leave_after = 1 + (rng >> 33) % 50;
        assert_int_equal(
            tr_spawn(tr_system_ctx(sys), &sub_behaviour, &a, NULL, NULL),
            TR_OK);
        while (tr_watch_receiver_count(chan) > 16 &&
               tr_load_acq(&writers_finished) < n_writers) {
            sched_yield();
        }
    }
    for (long i = 0; i < n_writers; i++) {
        pthread_join(writers[i], NULL);
    }
    tr_store_rel(&writers_done, 1);
    for (int i = 0; i < READERS; i++) {
        pthread_join(readers[i], NULL);
    }
    tr_watch_tx_destroy(chan);
    pthread_join(waiter, NULL);
    assert_int_equal(w.last, total);
    assert_true(tr_test_wait_until(steady_done, NULL, 60000));
    assert_int_equal(tr_load_acq(&steady_result), total + 1);
    assert_int_equal(tr_watch_borrow(own, &v, &version), TR_OK);
    assert_int_equal(v.w[0], total);
    assert_int_equal(version, total);
    assert_int_equal(tr_watch_changed_wait(own, TR_NOWAIT), TR_OK);
    assert_int_equal(tr_watch_changed_wait(own, TR_NOWAIT), TR_ECLOSED);
    rx = w.rx;
    tr_watch_rx_destroy(rx);
    tr_watch_rx_destroy(own);
    tr_test_shutdown(sys);
    assert_int_equal(tr_load_relaxed(&violations), 0);
    /* The test can fail: it did read, and actors came and went. */
    assert_true(tr_load_relaxed(&reads) > 0);
    assert_true(tr_load_relaxed(&notifications) > 0);
    assert_true(tr_load_relaxed(&joins) > 10);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_stress_borrow_is_never_torn),
    };

    n_writers = tr_test_arg(argc, argv, 1, n_writers);
    per_writer = tr_test_arg(argc, argv, 2, per_writer);
    if (n_writers < 1 || n_writers > 8) {
        fprintf(stderr, "writers: 1..8\n");
        return 2;
    }
    return cmocka_run_group_tests_name("watch_stress", tests, NULL, NULL);
}
