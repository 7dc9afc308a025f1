/*
 * Broadcast under load: several sender threads, thread receivers and actor
 * subscribers joining and leaving all the time, a small ring so that lags
 * are frequent. Every receiver checks, value by value:
 *   - per sender, numbers strictly increase (order kept, nothing twice);
 *   - in the "ticketed" round (each send takes the next ticket under a test
 *     lock, so tickets are the ring's order), the next ticket is exactly
 *     the last one + 1 + the lag reported in between: received + sum of
 *     lags = values sent while subscribed, for every receiver;
 * and the receivers subscribed from the first send to the close receive +
 * lag exactly the total in both rounds. Run under ASan and TSan, it also
 * checks that values shared by receivers that come and go are freed
 * exactly once.
 *
 * Usage: broadcast_stress [senders] [values per sender]
 */
#include "support/tr_test.h"

#include "common/tr_park.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_SENDERS = 8,
    CAPACITY = 32,
    THREAD_RECEIVERS = 3,
    MSG_VALUE = 1,
    MSG_LAGGED = 2,
    MSG_CLOSED = 3,
};

static long n_senders = 3;
static long per_sender = 20000;

typedef struct payload {
    uint64_t ticket; /* ring order in the ticketed round */
    uint32_t sender;
    uint32_t pad;
    uint64_t number; /* per sender, from 0 */
} payload;

static bool ticketed;
static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_ticket; /* under ticket_lock */
static tr_broadcast_tx *chan;
static tr_atomic(int) senders_done;
static tr_atomic(long) violations;
static tr_atomic(long) lags_seen;
static tr_atomic(long) joins;

/* What one receiver has seen. */
typedef struct checker {
    uint64_t expected;          /* next ticket */
    uint64_t last[MAX_SENDERS]; /* number + 1 of the last seen */
    uint64_t received;
    uint64_t lagged;
} checker;

static void
bad(void)
{
    tr_faa_relaxed(&violations, 1);
}

static void
check_value(checker *c, const payload *p)
{
    if (p->sender >= MAX_SENDERS || p->number + 1 <= c->last[p->sender]) {
        bad();
        return;
    }
    c->last[p->sender] = p->number + 1;
    if (ticketed && p->ticket != c->expected) {
        bad();
    }
    c->expected = p->ticket + 1;
    c->received++;
}

static void
check_lag(checker *c, uint64_t n)
{
    if (n == 0) {
        bad();
    }
    c->expected += n;
    c->lagged += n;
    tr_faa_relaxed(&lags_seen, 1);
}

/* Start a checker at the next ticket (callers hold ticket_lock in the
 * ticketed round, so no send is between this and the subscription). */
static void
checker_start(checker *c)
{
    memset(c, 0, sizeof(*c));
    c->expected = next_ticket;
    tr_faa_relaxed(&joins, 1);
}

/* ---- senders ---- */

static void *
sender_main(void *arg)
{
    payload p = {.sender = (uint32_t)(uintptr_t)arg};

    for (long i = 0; i < per_sender; i++) {
        int rc;
        p.number = (uint64_t)i;
        if (ticketed) {
            pthread_mutex_lock(&ticket_lock);
            p.ticket = next_ticket++;
        }
        rc = tr_broadcast_send(chan, &p, sizeof(p));
        if (ticketed) {
            pthread_mutex_unlock(&ticket_lock);
        }
        if (rc != TR_OK) {
            bad();
        }
    }
    return NULL;
}

/* ---- thread receivers ---- */

/* Receive until closed, or (when `leave_after` is non-zero) until that
 * many values; a slow moment now and then makes lags. */
static void
receive(tr_broadcast_rx *rx, checker *c, uint64_t leave_after)
{
    for (uint64_t n = 0; leave_after == 0 || n < leave_after; n++) {
        const tr_broadcast_value *v = NULL;
        uint64_t lag = 0;
        int rc = tr_broadcast_recv_wait(rx, &v, &lag, tr_ms(100));

        if (rc == TR_ETIMEDOUT) {
            if (leave_after != 0 && tr_load_acq(&senders_done) != 0) {
                return; /* nothing more will come before the close */
            }
            n--;
            continue;
        }
        if (rc == TR_ELAGGED) {
            check_lag(c, lag);
            continue;
        }
        if (rc == TR_ECLOSED) {
            return;
        }
        if (rc != TR_OK || tr_broadcast_value_size(v) != sizeof(payload)) {
            bad();
            return;
        }
        check_value(c, tr_broadcast_value_data(v));
        tr_broadcast_value_release(v);
        if (n % 97 == 0) {
            sched_yield();
        }
    }
}

static void *
churn_main(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 7919 + 1;

    while (tr_load_acq(&senders_done) == 0) {
        tr_broadcast_rx *rx;
        checker c;
        pthread_mutex_lock(&ticket_lock);
        checker_start(&c);
        if (tr_broadcast_subscribe(chan, &rx) != TR_OK) {
            bad();
            pthread_mutex_unlock(&ticket_lock);
            return NULL;
        }
        pthread_mutex_unlock(&ticket_lock);
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        receive(rx, &c, 1 + (rng >> 33) % 400);
        tr_broadcast_rx_destroy(rx);
    }
    return NULL;
}

/* ---- actor subscribers ---- */

typedef struct sub_state {
    checker c;
    uint64_t leave_after; /* 0: stay until closed */
    tr_broadcast_sub *sub;
    tr_atomic(uint64_t) * result; /* received + lagged, stored at close */
} sub_state;

typedef struct sub_args {
    uint64_t leave_after;
    tr_atomic(uint64_t) * result;
} sub_args;

static int
sub_init(tr_ctx *ctx, void *state, const void *arg)
{
    static const tr_broadcast_sub_types types = {MSG_VALUE, MSG_LAGGED,
                                                 MSG_CLOSED};
    sub_state *s = state;
    const sub_args *a = arg;

    checker_start(&s->c);
    s->leave_after = a->leave_after;
    s->result = a->result;
    return tr_broadcast_subscribe_actor(ctx, chan, &types, &s->sub);
}

static int
sub_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sub_state *s = state;
    uint64_t lag;

    switch (msg->type) {
    case MSG_VALUE:
        if (msg->size != sizeof(payload)) {
            bad();
            return tr_stop(ctx);
        }
        check_value(&s->c, msg->data);
        break;
    case MSG_LAGGED:
        memcpy(&lag, msg->data, sizeof(lag));
        check_lag(&s->c, lag);
        break;
    case MSG_CLOSED:
        if (s->result != NULL) {
            tr_store_rel(s->result, s->c.received + s->c.lagged);
        }
        return tr_stop(ctx);
    default:
        bad();
        break;
    }
    if (s->leave_after != 0 && s->c.received + s->c.lagged >= s->leave_after) {
        /* Leave one of three ways: unsubscribe, stop, or fail. */
        switch (s->leave_after % 3) {
        case 0:
            if (tr_broadcast_unsubscribe(ctx, s->sub) != TR_OK) {
                bad();
            }
            return tr_stop(ctx);
        case 1:
            return tr_stop(ctx);
        default:
            return TR_ECLOSED;
        }
    }
    return TR_OK;
}

static const tr_behaviour sub_behaviour = {
    .name = "broadcast_stress_sub",
    .state_size = sizeof(sub_state),
    .init = sub_init,
    .handle = sub_handle,
};

typedef struct actor_churn {
    tr_system *sys;
} actor_churn;

static void *
actor_churn_main(void *arg)
{
    actor_churn *ac = arg;
    uint64_t rng = 12345;

    while (tr_load_acq(&senders_done) == 0) {
        sub_args a = {0};
        int rc;
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        a.leave_after = 1 + (rng >> 33) % 1000;
        pthread_mutex_lock(&ticket_lock);
        rc = tr_spawn(tr_system_ctx(ac->sys), &sub_behaviour, &a, NULL, NULL);
        pthread_mutex_unlock(&ticket_lock);
        if (rc != TR_OK) {
            bad();
            return NULL;
        }
        /* Bound the live ones: about as many join as leave. */
        while (tr_broadcast_receiver_count(chan) > 12 &&
               tr_load_acq(&senders_done) == 0) {
            sched_yield();
        }
    }
    return NULL;
}

static void
discard_failures(void *arg, tr_addr who, const char *behaviour,
                 const tr_exit *exit)
{
    (void)arg;
    (void)who;
    (void)behaviour;
    (void)exit; /* the subscribers that leave by failing */
}

static tr_atomic(uint64_t) actor_total;

static bool
actor_done(void *arg)
{
    (void)arg;
    return tr_load_acq(&actor_total) != 0;
}

typedef struct steady_rx {
    tr_broadcast_rx *rx;
    checker c;
} steady_rx;

static void *
steady_main(void *arg)
{
    steady_rx *s = arg;
    receive(s->rx, &s->c, 0);
    return NULL;
}

static void
run_round(bool with_tickets)
{
    tr_system_config cfg = {.workers = 2, .on_failure = discard_failures};
    tr_system *sys = tr_test_system_cfg(&cfg);
    pthread_t senders[MAX_SENDERS];
    pthread_t churn[THREAD_RECEIVERS];
    pthread_t achurn;
    actor_churn ac = {sys};
    pthread_t steady_thread;
    steady_rx steady;
    sub_args steady_args = {0, &actor_total};
    const uint64_t total = (uint64_t)n_senders * (uint64_t)per_sender;

    ticketed = with_tickets;
    next_ticket = 0;
    tr_store_relaxed(&senders_done, 0);
    tr_store_relaxed(&actor_total, 0);
    assert_int_equal(tr_broadcast_create(CAPACITY, sizeof(payload), &chan),
                     TR_OK);
    checker_start(&steady.c);
    assert_int_equal(tr_broadcast_subscribe(chan, &steady.rx), TR_OK);
    pthread_create(&steady_thread, NULL, steady_main, &steady);
    assert_int_equal(
        tr_spawn(tr_system_ctx(sys), &sub_behaviour, &steady_args, NULL, NULL),
        TR_OK);
    for (long i = 0; i < THREAD_RECEIVERS; i++) {
        pthread_create(&churn[i], NULL, churn_main, (void *)(uintptr_t)i);
    }
    pthread_create(&achurn, NULL, actor_churn_main, &ac);
    for (long i = 0; i < n_senders; i++) {
        pthread_create(&senders[i], NULL, sender_main, (void *)(uintptr_t)i);
    }
    for (long i = 0; i < n_senders; i++) {
        pthread_join(senders[i], NULL);
    }
    tr_store_rel(&senders_done, 1);
    pthread_join(achurn, NULL);
    for (long i = 0; i < THREAD_RECEIVERS; i++) {
        pthread_join(churn[i], NULL);
    }
    tr_broadcast_tx_destroy(chan);
    pthread_join(steady_thread, NULL);
    assert_int_equal(steady.c.received + steady.c.lagged, total);
    assert_true(tr_test_wait_until(actor_done, NULL, 60000));
    assert_int_equal(tr_load_acq(&actor_total), total);
    tr_broadcast_rx_destroy(steady.rx);
    /* Subscribers still live end with the system; nothing may leak. */
    tr_test_shutdown(sys);
    assert_int_equal(tr_load_relaxed(&violations), 0);
}

static void
test_broadcast_stress_free_senders(void **state)
{
    (void)state;
    run_round(false);
}

static void
test_broadcast_stress_ticketed_exact_accounting(void **state)
{
    (void)state;
    run_round(true);
    /* The test can fail: it saw receivers come and go, and lags. */
    assert_true(tr_load_relaxed(&joins) > 10);
    assert_true(tr_load_relaxed(&lags_seen) > 0);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_stress_free_senders),
        cmocka_unit_test(test_broadcast_stress_ticketed_exact_accounting),
    };

    n_senders = tr_test_arg(argc, argv, 1, n_senders);
    per_sender = tr_test_arg(argc, argv, 2, per_sender);
    if (n_senders < 1 || n_senders > MAX_SENDERS) {
        fprintf(stderr, "senders: 1..%d\n", MAX_SENDERS);
        return 2;
    }
    return cmocka_run_group_tests_name("broadcast_stress", tests, NULL, NULL);
}
