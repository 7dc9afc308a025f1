/*
 * A lost wakeup, on purpose, for the systematic build to report: a waiter
 * parks on an event count until a flag is set, and the setter forgets to
 * wake it. When the waiter reads the flag before the setter sets it, it
 * parks for ever, the main thread's join never returns, and every thread
 * waits with no deadline: the build stops the run with "systematic:
 * deadlock" and the seed. When the setter goes first, the run passes. Which
 * of the two happens is the seed's choice (tests/systematic/lost_wakeup.sh).
 */
#include "common/tr_atomic.h"
#include "common/tr_park.h"

#include <pthread.h>
#include <stdio.h>

static struct ck_ec32 ec = CK_EC_INITIALIZER;
static tr_atomic(int) flag;

static void *
waiter(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t seen = tr__ec_value(&ec);
        /* Acquire: pairs with the setter's release. */
        if (tr_load_acq(&flag) != 0) {
            return NULL;
        }
        tr__ec_wait_ms(&ec, seen, -1);
    }
}

static void *
setter(void *arg)
{
    (void)arg;
    /* Release: publishes the flag; the missing tr__ec_wake is the bug. */
    tr_store_rel(&flag, 1);
    return NULL;
}

int
main(void)
{
    pthread_t w;
    pthread_t s;

    pthread_create(&w, NULL, waiter, NULL);
    pthread_create(&s, NULL, setter, NULL);
    pthread_join(s, NULL);
    pthread_join(w, NULL);
    printf("lost_wakeup: the setter went first\n");
    return 0;
}
