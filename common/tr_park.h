/*
 * Parking threads on ck_ec event counts. ck_ec needs the platform's wait,
 * wake and clock; this file supplies them (Linux futexes, CLOCK_MONOTONIC)
 * and one helper that waits with a relative timeout in milliseconds.
 *
 * Protocol, as everywhere in troupe: read the count, publish "I am about to
 * sleep" where the waker will look, re-check the condition, then wait on the
 * value read first. A waker changes the condition, then increments the
 * count; the wait returns at once if the count moved since the read.
 */
#ifndef TR_PARK_H
#define TR_PARK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h> /* ck_ec.h uses struct timespec */

#include <ck_ec.h>

#include "common/tr_systematic.h"

extern const struct ck_ec_mode tr__ec_mode;

/* Current value of `ec` (acquire). */
static inline uint32_t
tr__ec_value(const struct ck_ec32 *ec)
{
    return ck_ec32_value(ec);
}

/* Wake every thread waiting on `ec` (release). A switch point in the
 * systematic build, like the atomics. */
static inline void
tr__ec_wake(struct ck_ec32 *ec)
{
#ifdef TROUPE_SYSTEMATIC
    tr__sys_point();
#endif
    ck_ec32_inc(ec, &tr__ec_mode);
}

/*
 * Wait until `ec` differs from `seen`, for at most `timeout_ms` (negative:
 * forever). Returns 0 when the count changed, -1 on timeout. In the
 * systematic build the thread waits for the scheduler's token instead, and
 * the timeout runs on the logical clock. On a simulation's driving thread
 * (tr__park_sim_attach) it takes steps instead, the timeout on the
 * virtual clock, and returns TR_PARK_STUCK when nothing can end the wait.
 */
int tr__ec_wait_ms(struct ck_ec32 *ec, uint32_t seen, long timeout_ms);

/* Monotonic time in nanoseconds (the systematic build's logical clock in
 * that build). */
uint64_t tr__now_ns(void);

/*
 * Simulation (actors/sim.c). A simulated system's driving thread must
 * never park: nothing else would run the actors that end the wait. While
 * a simulated system lives, its driving thread is attached here, and on
 * that thread tr__ec_wait_ms takes the simulation's steps instead of
 * parking, and tr__wait_now_ns reads the simulation's virtual clock: so
 * the standalone channels' waits (mailbox, oneshot, broadcast, watch) run
 * the simulation until their condition holds or their deadline passes on
 * the virtual clock. A registry keyed by thread, not a second
 * thread-local (the runtime keeps one, below): attached threads are few,
 * and a thread that attached none pays one relaxed load.
 */
typedef struct tr_park_sim {
    void *sys;
    /* One step towards `deadline_ns` on the simulation's clock
     * (UINT64_MAX: none): 0 (look again); TR_PARK_STUCK when nothing can
     * run, no timer is pending and there is no deadline; -1 when the
     * simulation's step budget is spent. */
    int (*step)(void *sys, uint64_t deadline_ns);
    uint64_t (*now)(void *sys);
} tr_park_sim;

/* tr__ec_wait_ms on a driving thread whose simulation can never end the
 * wait; its callers return TR_ESTUCK. */
enum { TR_PARK_STUCK = -2 };

/* The calling thread drives `s->sys` (copied) until tr__park_sim_detach;
 * the most recent attachment of a thread wins. False when the registry
 * is full (the thread's waits then park as any thread's). */
bool tr__park_sim_attach(const tr_park_sim *s);
void tr__park_sim_detach(void *sys);

/* tr__now_ns, or on a driving thread its simulation's virtual clock: the
 * clock of a standalone channel's deadline. */
uint64_t tr__wait_now_ns(void);

/*
 * The calling thread's part in the runtime: the one thread-local (STYLE:
 * the current worker, and what the thread is in the middle of). Here,
 * below every module, so that each blocking call refuses to wait on a
 * worker of any system through the same check (tr__on_a_worker).
 *
 * It is initial-exec: in the shared library the default model calls
 * __tls_get_addr on every read (once a message, in the submit); this is a
 * load at a fixed offset, in the static TLS block that a library loaded
 * with the program (or dlopened, for a few bytes) always has.
 */
typedef struct tr_thread {
    /* Its worker (opaque here), or NULL off the workers: set by the
     * scheduler. */
    void *worker;
    /* `init` calls running on it (tr__in_init, actors/actor.c). */
    unsigned init_depth;
    /* Shutdown's last pass runs the `stop` callbacks of the actors left
     * on it (actors/system.c). */
    bool last_pass;
    /* The live endpoint's thread (inspect/loop.c), for its whole life: it
     * runs `on_warning` callbacks, from which a call that would stop that
     * very thread or wait on the system returns TR_ESTATE. */
    bool inspecting;
    /* It runs the dead-letter hook (actors/actor.c). */
    bool in_dead_hook;
} tr_thread;

extern _Thread_local __attribute__((tls_model("initial-exec")))
tr_thread tr__tls;

static inline bool
tr__on_a_worker(void)
{
    return tr__tls.worker != NULL;
}

/* Whether a call may block the calling thread: not on a worker, and not in
 * a `stop` callback that shutdown's last pass runs, which would hold the
 * shutdown up (for ever, with TR_FOREVER). */
static inline bool
tr__may_block(void)
{
    return tr__tls.worker == NULL && !tr__tls.last_pass;
}

#endif /* TR_PARK_H */
