/*
 * Close racing sends on the public mailbox: S sender threads send until
 * they are refused while the receiver closes the mailbox part-way and then
 * drains it to TR_ECLOSED. Every send that returned TR_OK must have been
 * received before TR_ECLOSED: none is freed unseen by destroy. Rounds
 * alternate unbounded and bounded mailboxes.
 *
 * Usage: mailbox_stress [senders] [rounds]
 */
#include "support/tr_test.h"

#include <pthread.h>

static long senders = 3;
static long rounds = 2000;

typedef struct sender {
    tr_mailbox *mb;
    tr_atomic(int) * go;
    long ok;
} sender;

static void *
send_until_refused(void *p)
{
    sender *s = p;
    int v = 1;
    int rc;

    while (tr_load_acq(s->go) == 0) {
    }
    do {
        rc = tr_mailbox_send(s->mb, &v, sizeof(v));
        s->ok += rc == TR_OK;
    } while (rc == TR_OK || rc == TR_EFULL);
    return NULL;
}

static void
test_mailbox_stress_send_returns_ok_only_if_received(void **state)
{
    pthread_t *threads = calloc((size_t)senders, sizeof(*threads));
    sender *s = calloc((size_t)senders, sizeof(*s));
    long lost_rounds = 0;
    long lost = 0;

    (void)state;
    for (long round = 0; round < rounds; round++) {
        tr_mailbox *mb;
        tr_atomic(int) go;
        long received = 0;
        long sent = 0;
        int rc;

        tr_init_relaxed(&go, 0);
        assert_int_equal(tr_mailbox_create(round % 2 ? 8 : 0, &mb), TR_OK);
        for (long i = 0; i < senders; i++) {
            s[i] = (sender){.mb = mb, .go = &go};
            assert_int_equal(
                pthread_create(&threads[i], NULL, send_until_refused, &s[i]),
                0);
        }
        tr_store_rel(&go, 1);
        /* Close after a varying number of receptions, so the close lands
         * at different points of the senders' calls. */
        for (long want = round % 7; received < want;) {
            int v;
            size_t len;
            assert_int_equal(
                tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, tr_ms(5000)),
                TR_OK);
            received++;
        }
        tr_mailbox_close(mb);
        for (;;) {
            int v;
            size_t len;
            rc = tr_mailbox_recv_wait(mb, &v, sizeof(v), &len, tr_ms(5000));
            if (rc != TR_OK) {
                break;
            }
            received++;
        }
        assert_int_equal(rc, TR_ECLOSED);
        for (long i = 0; i < senders; i++) {
            pthread_join(threads[i], NULL);
            sent += s[i].ok;
        }
        if (sent != received) {
            lost_rounds++;
            lost += sent - received;
        }
        tr_mailbox_destroy(mb);
    }
    free(s);
    free(threads);
    if (lost_rounds != 0) {
        fail_msg("%ld sends returned TR_OK but were never received (%ld of "
                 "%ld rounds)",
                 lost, lost_rounds, rounds);
    }
}

int
main(int argc, char **argv)
{
    senders = tr_test_arg(argc, argv, 1, senders);
    rounds = tr_test_arg(argc, argv, 2, rounds);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox_stress_send_returns_ok_only_if_received),
    };
    return cmocka_run_group_tests_name("mailbox_stress", tests, NULL, NULL);
}
