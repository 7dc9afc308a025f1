/*
 * The systematic build's libevent loops (common/tr_systematic.c): a loop
 * thread would block inside epoll_wait, where the token scheduler cannot
 * see it, and stop every thread. So event_base_loop and event_base_dispatch
 * are wrapped (ld --wrap, with the libevent of io/ and the live endpoint):
 * the loop runs one non-blocking pass, then sleeps a logical millisecond,
 * until a callback breaks or exits it (or, without
 * EVLOOP_NO_EXIT_ON_EMPTY, it has no events left). What the kernel has
 * ready at a pass is not the seed's choice, so runs with sockets replay
 * only as far as the kernel answers the same.
 *
 * libevent's own locks and condition variables (evthread_use_pthreads,
 * which io/ turns on) would block for real too: a thread deleting an event
 * waits on a condition until the loop thread's callback ends, and that
 * thread may be waiting for the token. So evthread_use_pthreads installs
 * locks that live only in the token scheduler's table (exclusion is the
 * table's: only one thread runs) and conditions that are event counts.
 */
#include "common/tr_systematic.h"

#include "common/tr_park.h"

#include <event2/event.h>
#include <event2/thread.h>

#include <pthread.h>
#include <stdlib.h>

#define TR_SYS_EXPORT __attribute__((visibility("default")))

int __real_event_base_loop(struct event_base *base, int flags);

/* ---- locks and conditions ---- */

static void *
lock_alloc(unsigned locktype)
{
    (void)locktype;
    return malloc(1); /* only its address matters: the table's key */
}

static void
lock_free(void *lock, unsigned locktype)
{
    (void)locktype;
    free(lock);
}

static int
lock_take(unsigned mode, void *lock)
{
    if ((mode & EVTHREAD_TRY) != 0) {
        return tr__sys_lock_try(lock) ? 0 : 1;
    }
    tr__sys_lock_wait(lock, (mode & EVTHREAD_READ) != 0);
    return 0;
}

static int
lock_release(unsigned mode, void *lock)
{
    (void)mode;
    tr__sys_lock_done(lock);
    return 0;
}

static void *
cond_alloc(unsigned condtype)
{
    (void)condtype;
    return calloc(1, sizeof(struct ck_ec32));
}

static void
cond_free(void *cond)
{
    free(cond);
}

/* Signal and broadcast alike: a condition allows spurious wakes. */
static int
cond_signal(void *cond, int broadcast)
{
    (void)broadcast;
    tr__ec_wake(cond);
    return 0;
}

static int
cond_wait(void *cond, void *lock, const struct timeval *timeout)
{
    uint32_t seen = tr__ec_value(cond);
    long ms = timeout == NULL ? -1
                              : (long)timeout->tv_sec * 1000 +
                                    (long)(timeout->tv_usec / 1000);
    int rc;

    tr__sys_lock_done(lock);
    rc = tr__ec_wait_ms(cond, seen, ms);
    tr__sys_lock_wait(lock, false);
    return rc == 0 ? 0 : 1;
}

static unsigned long
thread_id(void)
{
    return (unsigned long)pthread_self();
}

TR_SYS_EXPORT int
__wrap_evthread_use_pthreads(void)
{
    static const struct evthread_lock_callbacks locks = {
        .lock_api_version = EVTHREAD_LOCK_API_VERSION,
        .supported_locktypes =
            EVTHREAD_LOCKTYPE_RECURSIVE | EVTHREAD_LOCKTYPE_READWRITE,
        .alloc = lock_alloc,
        .free = lock_free,
        .lock = lock_take,
        .unlock = lock_release,
    };
    static const struct evthread_condition_callbacks conds = {
        .condition_api_version = EVTHREAD_CONDITION_API_VERSION,
        .alloc_condition = cond_alloc,
        .free_condition = cond_free,
        .signal_condition = cond_signal,
        .wait_condition = cond_wait,
    };

    if (evthread_set_lock_callbacks(&locks) != 0 ||
        evthread_set_condition_callbacks(&conds) != 0) {
        return -1;
    }
    evthread_set_id_callback(thread_id);
    return 0;
}

/* ---- loops ---- */

TR_SYS_EXPORT int
__wrap_event_base_loop(struct event_base *base, int flags)
{
    for (;;) {
        int rc = __real_event_base_loop(base, flags | EVLOOP_NONBLOCK);
        if (rc != 0 || (flags & (EVLOOP_ONCE | EVLOOP_NONBLOCK)) != 0 ||
            event_base_got_break(base) || event_base_got_exit(base)) {
            return rc;
        }
        tr__sys_sleep_ns(1000000u);
    }
}

TR_SYS_EXPORT int
__wrap_event_base_dispatch(struct event_base *base)
{
    return __wrap_event_base_loop(base, 0);
}
