/*
 * Actors stopped by two threads at once just as a run of theirs goes idle,
 * while new actors take the freed slots.
 *
 * A runner going idle marks the lane idle, then takes the run-right back
 * if a control message came meanwhile. Between the two, the first stop can
 * take the right, run the actor elsewhere and end it, and the second
 * stop's message (pushed before the end, its right not yet taken) then
 * lets the runner's take succeed on the freed slot. The runner used to run
 * the slot again as the actor it had left: a run of a free slot (its
 * behaviour gone) crashed, and the drain that followed a taken-back right
 * could drop a new incarnation's messages. The systematic build found it
 * (supervisor_test, about one seed in forty).
 *
 * Each round: every victim gets a user message, then two threads stop all
 * of them at once; every victim must end exactly once, every address must
 * answer TR_ENOACTOR after, and the next round's spawns reuse the slots.
 *
 * Arguments: rounds (default 2000), victims a round (default 8).
 */
#include "support/tr_test.h"

#include <pthread.h>

enum { MSG_WORK = 1, MAX_VICTIMS = 64 };

static tr_atomic(long) handled;
static tr_atomic(long) stopped;

static int
victim_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    tr_faa_relaxed(&handled, 1);
    return TR_OK;
}

static void
victim_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    (void)ctx;
    (void)state;
    (void)exit;
    tr_faa_relaxed(&stopped, 1);
}

static const tr_behaviour victim = {
    .name = "idle_race_victim",
    .handle = victim_handle,
    .stop = victim_stop,
};

typedef struct stopper {
    tr_system *sys;
    pthread_barrier_t *go;
    tr_addr *victims;
    long n;
    long rounds;
} stopper;

/* Each round: wait for the victims, then stop every one of them. */
static void *
stop_all(void *arg)
{
    stopper *s = arg;
    tr_ctx *ctx = tr_system_ctx(s->sys);

    for (long r = 0; r < s->rounds; r++) {
        pthread_barrier_wait(s->go);
        for (long i = 0; i < s->n; i++) {
            int rc = tr_actor_stop(ctx, s->victims[i]);
            if (rc != TR_OK && rc != TR_ENOACTOR) {
                fprintf(stderr, "FAIL: tr_actor_stop: %s\n", tr_errname(rc));
                exit(1);
            }
        }
        pthread_barrier_wait(s->go);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    long rounds = tr_test_arg(argc, argv, 1, 2000);
    long n = tr_test_arg(argc, argv, 2, 8);
    tr_system *sys = tr_test_system(2);
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_addr victims[MAX_VICTIMS];
    pthread_barrier_t go;
    pthread_t t[2];
    stopper s = {sys, &go, victims, n, rounds};
    tr_system_stats st;

    if (n < 1 || n > MAX_VICTIMS) {
        fprintf(stderr, "victims: 1 to %d\n", MAX_VICTIMS);
        return 2;
    }
    pthread_barrier_init(&go, NULL, 3);
    for (int k = 0; k < 2; k++) {
        pthread_create(&t[k], NULL, stop_all, &s);
    }
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < n; i++) {
            if (tr_spawn(ctx, &victim, NULL, NULL, &victims[i]) != TR_OK ||
                tr_send(ctx, victims[i], MSG_WORK, NULL, 0) != TR_OK) {
                fprintf(stderr, "FAIL: spawn or send in round %ld\n", r);
                return 1;
            }
        }
        pthread_barrier_wait(&go); /* the stoppers go */
        pthread_barrier_wait(&go); /* both have asked */
        for (long i = 0; i < n; i++) {
            tr_signal sig;
            int rc = tr_actor_wait(ctx, victims[i], tr_ms(10000), &sig);
            if (rc != TR_OK && rc != TR_ENOACTOR) {
                fprintf(stderr, "FAIL: victim %ld of round %ld: %s\n", i, r,
                        tr_errname(rc));
                return 1;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
    }
    pthread_barrier_destroy(&go);
    if (tr_system_stats_get(sys, &st) != TR_OK || st.live_actors != 0) {
        fprintf(stderr, "FAIL: %llu actors live after every stop\n",
                (unsigned long long)st.live_actors);
        return 1;
    }
    tr_test_shutdown(sys);
    /* Every victim ran `stop` exactly once; a message reached a handler
     * at most once each. */
    if (tr_load_relaxed(&stopped) != rounds * n ||
        tr_load_relaxed(&handled) > rounds * n) {
        fprintf(stderr, "FAIL: %ld stops and %ld messages for %ld victims\n",
                tr_load_relaxed(&stopped), tr_load_relaxed(&handled),
                rounds * n);
        return 1;
    }
    printf("idle_race_stress: %ld rounds of %ld victims\n", rounds, n);
    return 0;
}
