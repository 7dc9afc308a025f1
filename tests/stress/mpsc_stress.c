/*
 * P producer threads x M messages into one consumer, on the raw queue (with
 * the consumer going idle and being re-woken as an actor would be) and on
 * the public mailbox. Every message arrives exactly once and each
 * producer's messages arrive in order. And the control stack, taken a
 * lone node at a time or whole, under the same pushers.
 *
 * Usage: mpsc_stress [producers] [messages per producer]
 */
#include "support/tr_test.h"

#include "common/tr_park.h"
#include "mailbox/mpsc.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static long producers = 4;
static long per_producer = 200000;

typedef struct node {
    tr_mnode link;
    uint32_t producer;
    uint32_t seq;
} node;

typedef struct raw_shared {
    tr_mpsc_prod in;
    tr_mpsc_cons out;
    struct ck_ec32 wake; /* the consumer sleeps here while idle */
    tr_atomic(long) wakeups;
    node *nodes;
} raw_shared;

typedef struct producer_arg {
    raw_shared *sh;
    tr_mailbox *mb;
    uint32_t id;
} producer_arg;

static void *
raw_producer(void *p)
{
    producer_arg *a = p;
    node *mine = &a->sh->nodes[(size_t)a->id * (size_t)per_producer];

    for (long i = 0; i < per_producer; i++) {
        mine[i].producer = a->id;
        mine[i].seq = (uint32_t)i;
        if (tr__mpsc_push(&a->sh->in, &mine[i].link)) {
            /* We moved the queue from idle to busy: wake the consumer,
             * as a send schedules an actor. */
            tr_faa_relaxed(&a->sh->wakeups, 1);
            tr__ec_wake(&a->sh->wake);
        }
    }
    return NULL;
}

static void
test_mpsc_stress_raw_queue_with_idle_handoff(void **state)
{
    raw_shared sh;
    pthread_t *threads = calloc((size_t)producers, sizeof(pthread_t));
    producer_arg *args = calloc((size_t)producers, sizeof(producer_arg));
    uint32_t *next_seq = calloc((size_t)producers, sizeof(uint32_t));
    long total = producers * per_producer;
    long got = 0;
    long out_of_order = 0;

    (void)state;
    sh.nodes = calloc((size_t)total, sizeof(node));
    tr__mpsc_init(&sh.in, &sh.out, true);
    ck_ec32_init(&sh.wake, 0);
    tr_init_relaxed(&sh.wakeups, 0);
    for (long i = 0; i < producers; i++) {
        args[i] = (producer_arg){.sh = &sh, .id = (uint32_t)i};
        assert_int_equal(
            pthread_create(&threads[i], NULL, raw_producer, &args[i]), 0);
    }
    /* The consumer holds the role only after a push handed it over. */
    bool have_role = false;
    while (got < total) {
        uint32_t seen = tr__ec_value(&sh.wake);
        if (!have_role) {
            if (tr__mpsc_is_idle(&sh.in)) {
                /* Still idle: sleep until a push reports the transition
                 * (bounded, so a lost wakeup fails instead of hanging). */
                if (tr__ec_wait_ms(&sh.wake, seen, 5000) != 0 &&
                    tr__mpsc_is_idle(&sh.in)) {
                    fail_msg("lost wakeup: queue idle with %ld of %ld", got,
                             total);
                }
                continue;
            }
            have_role = true;
        }
        tr_mnode *done;
        tr_mnode *n = tr__mpsc_pop(&sh.out, &done);
        if (n == NULL) {
            if (tr__mpsc_mark_idle(&sh.in, &sh.out, &done)) {
                have_role = false;
            }
            continue;
        }
        node *m = (node *)(void *)n;
        if (m->seq != next_seq[m->producer]) {
            out_of_order++;
        }
        next_seq[m->producer] = m->seq + 1;
        got++;
    }
    for (long i = 0; i < producers; i++) {
        pthread_join(threads[i], NULL);
    }
    tr_mnode *done;
    assert_null(tr__mpsc_pop(&sh.out, &done));
    assert_int_equal(out_of_order, 0);
    for (long i = 0; i < producers; i++) {
        assert_int_equal(next_seq[i], per_producer);
    }
    print_message("raw: %ld messages, %ld idle->busy wakeups\n", got,
                  tr_load_relaxed(&sh.wakeups));
    free(sh.nodes);
    free(next_seq);
    free(args);
    free(threads);
}

static void *
mailbox_producer(void *p)
{
    producer_arg *a = p;

    for (long i = 0; i < per_producer; i++) {
        uint32_t msg[2] = {a->id, (uint32_t)i};
        while (tr_mailbox_send(a->mb, msg, sizeof(msg)) == TR_EFULL) {
        }
    }
    return NULL;
}

static void
run_mailbox_case(uint32_t cap)
{
    tr_mailbox *mb;
    pthread_t *threads = calloc((size_t)producers, sizeof(pthread_t));
    producer_arg *args = calloc((size_t)producers, sizeof(producer_arg));
    uint32_t *next_seq = calloc((size_t)producers, sizeof(uint32_t));
    long total = producers * per_producer;
    long out_of_order = 0;

    assert_int_equal(tr_mailbox_create(cap, &mb), TR_OK);
    for (long i = 0; i < producers; i++) {
        args[i] = (producer_arg){.mb = mb, .id = (uint32_t)i};
        assert_int_equal(
            pthread_create(&threads[i], NULL, mailbox_producer, &args[i]), 0);
    }
    for (long got = 0; got < total; got++) {
        uint32_t msg[2];
        size_t len;
        assert_int_equal(
            tr_mailbox_recv_wait(mb, msg, sizeof(msg), &len, tr_ms(5000)),
            TR_OK);
        if (msg[1] != next_seq[msg[0]]) {
            out_of_order++;
        }
        next_seq[msg[0]] = msg[1] + 1;
    }
    for (long i = 0; i < producers; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_int_equal(out_of_order, 0);
    assert_int_equal(tr_mailbox_len(mb), 0);
    tr_mailbox_close(mb);
    uint32_t extra[2];
    size_t len;
    assert_int_equal(
        tr_mailbox_recv_wait(mb, extra, sizeof(extra), &len, TR_NOWAIT),
        TR_ECLOSED);
    tr_mailbox_destroy(mb);
    free(next_seq);
    free(args);
    free(threads);
}

static void
test_mpsc_stress_unbounded_mailbox(void **state)
{
    (void)state;
    run_mailbox_case(0);
}

static void
test_mpsc_stress_bounded_mailbox(void **state)
{
    (void)state;
    run_mailbox_case(64);
}

/*
 * The control stack under pushers: the consumer takes a lone top node
 * alone when it can (tr__lifo_take_only, as a caller's run takes its
 * reply), and the whole stack otherwise, while the pushers race it.
 * Every node is taken exactly once, whichever wins each race, and each
 * pusher's nodes come out in the order it pushed them (a call's reply
 * before a stop sent after it).
 */
static double
wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct lifo_shared {
    tr_lifo s;
    node *nodes;
} lifo_shared;

static void *
lifo_pusher(void *p)
{
    producer_arg *a = p;
    lifo_shared *sh = (lifo_shared *)(void *)a->sh;
    node *mine = &sh->nodes[(size_t)a->id * (size_t)per_producer];

    for (long i = 0; i < per_producer; i++) {
        mine[i].producer = a->id;
        mine[i].seq = (uint32_t)i;
        tr__lifo_push(&sh->s, &mine[i].link);
        /* A pause of a varying length, so that the stack often holds one
         * node when the consumer looks: the race is between its look and
         * its take. Not an atomic loop: the systematic build would switch
         * threads at every step of it. */
        for (long j = 0; j < (i * 7) % 97; j++) {
            __asm__ volatile("" ::: "memory");
        }
    }
    return NULL;
}

static void
test_mpsc_stress_control_stack_lone_takes(void **state)
{
    lifo_shared sh;
    long total = producers * per_producer;
    pthread_t *threads = calloc((size_t)producers, sizeof(pthread_t));
    producer_arg *args = calloc((size_t)producers, sizeof(producer_arg));
    unsigned char *seen = calloc((size_t)total, 1);
    long got = 0;
    long alone = 0;
    long refused = 0; /* a lone node, pushed over before the take */
    long twice = 0;
    long out_of_order = 0;
    uint32_t *next_seq = calloc((size_t)producers, sizeof(uint32_t));

    (void)state;
    sh.nodes = calloc((size_t)total, sizeof(node));
    assert_non_null(sh.nodes);
    tr_init_relaxed(&sh.s.top, NULL);
    for (long i = 0; i < producers; i++) {
        args[i] =
            (producer_arg){.sh = (raw_shared *)(void *)&sh, .id = (uint32_t)i};
        assert_int_equal(
            pthread_create(&threads[i], NULL, lifo_pusher, &args[i]), 0);
    }
    /* Nodes lost would keep us looking: give up after a minute of the
     * wall clock (not tr__now_ns, which the systematic build models). */
    double give_up = wall_s() + 60;
    while (got < total && wall_s() < give_up) {
        tr_mnode *n = tr__lifo_top(&sh.s);
        tr_mnode *list = NULL;

        if (n == NULL) {
            continue;
        }
        if (tr_load_relaxed(&n->next) == NULL && tr__lifo_take_only(&sh.s, n)) {
            list = n;
            alone++;
        } else {
            refused += tr_load_relaxed(&n->next) == NULL;
            list = tr__lifo_take_fifo(&sh.s);
        }
        for (; list != NULL; list = tr_load_relaxed(&list->next)) {
            node *m = tr_container_of(list, node, link);
            size_t k = (size_t)m->producer * (size_t)per_producer + m->seq;
            twice += seen[k];
            seen[k] = 1;
            out_of_order += m->seq != next_seq[m->producer];
            next_seq[m->producer] = m->seq + 1;
            got++;
        }
    }
    for (long i = 0; i < producers; i++) {
        pthread_join(threads[i], NULL);
    }
    print_message("%ld of %ld taken alone, %ld lone takes refused\n", alone,
                  total, refused);
    assert_int_equal(got, total);
    assert_int_equal(twice, 0);
    assert_int_equal(out_of_order, 0);
    assert_null(tr__lifo_take_fifo(&sh.s));
    free(next_seq);
    free(sh.nodes);
    free(seen);
    free(args);
    free(threads);
}

int
main(int argc, char **argv)
{
    producers = tr_test_arg(argc, argv, 1, producers);
    per_producer = tr_test_arg(argc, argv, 2, per_producer);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_stress_raw_queue_with_idle_handoff),
        cmocka_unit_test(test_mpsc_stress_unbounded_mailbox),
        cmocka_unit_test(test_mpsc_stress_bounded_mailbox),
        cmocka_unit_test(test_mpsc_stress_control_stack_lone_takes),
    };
    return cmocka_run_group_tests_name("mpsc_stress", tests, NULL, NULL);
}
