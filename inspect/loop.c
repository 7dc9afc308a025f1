/*
 * One libevent loop on a thread of its own, and a way for any thread to
 * wake it.
 *
 * The loop runs only its own callbacks, on its own thread, so libevent
 * needs no locking of its own (no evthread_use_pthreads, a process-wide
 * switch). Other threads reach the loop through the kick: an eventfd the
 * loop reads, written only by the kick that finds no kick pending (one
 * exchange on `kicked`), so a burst of posts costs one write. Kept small
 * and behind these four calls so that the loop threads can later be shared
 * with the io module.
 *
 * SIGPIPE. libevent writes to sockets with writev, which raises SIGPIPE
 * when the peer has gone (a client that closed, then reset the connection
 * at our first write): by default that ends the whole process, which is
 * the user's. The loop thread blocks it: the write fails with EPIPE, which
 * libevent handles, and the signal stays pending on this thread alone,
 * which never unblocks it, and goes with the thread.
 */
#include "inspect/live.h"

#include <troupe/error.h>

#include <event2/event.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void
on_kick_fd(evutil_socket_t fd, short what, void *arg)
{
    tr_loop *l = arg;
    uint64_t n;

    (void)what;
    /* Non-blocking: EAGAIN when another read took it. */
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR) {
    }
    /* Acq_rel: pairs with the kick's exchange; what was posted before it
     * is visible to on_kick, and a post after this exchange kicks again. */
    tr_xchg_acqrel(&l->kicked, 0);
    if (tr_load_acq(&l->stopping) != 0) {
        event_base_loopbreak(l->base);
        return;
    }
    l->on_kick(l->arg);
}

int
tr__loop_init(tr_loop *l, void (*on_kick)(void *), void *arg)
{
    memset(l, 0, sizeof(*l));
    tr_init_relaxed(&l->kicked, 0);
    tr_init_relaxed(&l->stopping, 0);
    l->on_kick = on_kick;
    l->arg = arg;
    l->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->kick_fd < 0) {
        return TR_ENOMEM;
    }
    l->base = event_base_new();
    if (l->base != NULL) {
        l->kick_ev =
            event_new(l->base, l->kick_fd, EV_READ | EV_PERSIST, on_kick_fd, l);
    }
    if (l->kick_ev == NULL || event_add(l->kick_ev, NULL) != 0) {
        tr__loop_fini(l);
        return TR_ENOMEM;
    }
    return TR_OK;
}

static void *
loop_main(void *arg)
{
    tr_loop *l = arg;
    sigset_t sigs;

    tr__tls.inspecting = true;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    event_base_dispatch(l->base);
    return NULL;
}

int
tr__loop_start(tr_loop *l)
{
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        return TR_ESTATE;
    }
    l->started = true;
    return TR_OK;
}

void
tr__loop_kick(tr_loop *l)
{
    /* Acq_rel: see on_kick_fd. Only the kick that finds none pending
     * writes (a system call). */
    if (tr_xchg_acqrel(&l->kicked, 1) == 0) {
        uint64_t one = 1;
        while (write(l->kick_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

void
tr__loop_stop(tr_loop *l)
{
    if (!l->started) {
        return;
    }
    /* Release: pairs with on_kick_fd's acquire. */
    tr_store_rel(&l->stopping, 1);
    tr_store_rel(&l->kicked, 0);
    tr__loop_kick(l);
    pthread_join(l->thread, NULL);
    l->started = false;
}

void
tr__loop_fini(tr_loop *l)
{
    if (l->kick_ev != NULL) {
        event_free(l->kick_ev);
        l->kick_ev = NULL;
    }
    if (l->base != NULL) {
        event_base_free(l->base);
        l->base = NULL;
    }
    if (l->kick_fd >= 0) {
        close(l->kick_fd);
        l->kick_fd = -1;
    }
}
