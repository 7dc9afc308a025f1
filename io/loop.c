/*
 * The I/O module: loop threads, the slot table, and notifying owners.
 *
 * Loops. A system's module starts with its first tr_io call, under the
 * system's tree_lock, which shutdown also takes: a module that would
 * start once shutdown has begun is refused instead of leaked. It runs
 * `io_threads` libevent bases (epoll), one thread each; sockets are spread
 * over them round robin. A socket's event is registered persistent and
 * edge-triggered; its callback runs on the loop thread and does only
 * this: OR the readiness into the slot's `ready` word and queue the
 * slot's notification to its owner (a control-lane hook, queued at most
 * once). The owner's worker then reads, frames, accepts and writes
 * (conn.c); a loop never touches a socket's data and never runs user
 * code. Libevent's locking (evthread, pthreads) makes event_add and
 * event_del safe from the workers, and event_del waits for a callback
 * that is running: once a slot's close has deleted its events, no loop
 * thread touches the slot again.
 *
 * Notification (the protocol of channels/subscription.c). A poster sets
 * its bits with a seq_cst RMW, then queues the notification unless
 * `pending` is set (seq_cst load, then exchange). The hook clears
 * `pending` (seq_cst) before it takes the bits (seq_cst exchange). In the
 * single total order, either the hook's exchange follows the poster's
 * bits, or the poster's read of `pending` follows the hook's clear and it
 * queues the notification again: no readiness is lost, and at most one
 * notification per slot is ever queued.
 *
 * Slots. A handle is (generation << IO_INDEX_BITS | index). Slots live in
 * chunks that are never freed while the system runs, so a stale handle
 * reads valid memory; an odd generation is open, and the close bumps it.
 * `refs` keeps a slot off the free list while its notification is queued
 * (sock.h), and while a give posts the adoption: once the giver has
 * published the receiver, the receiver may be notified by a loop, adopt
 * the socket and close it before the giver's post, which would otherwise
 * queue a freed slot's notification and free the slot a second time (two
 * later sockets then share it).
 *
 * Simulation. A simulated system's module has no loop threads and no
 * libevent: its `net` (simnet.c) stands in for the kernel and the loops,
 * posting readiness to slots from simulation steps, and the slots'
 * timers run on the virtual clock. Registration, timers and the clock
 * below branch to it; nothing else here differs.
 *
 * Shutdown. Phase 0 (before the workers stop) ends the loop threads: an
 * activated stop event breaks each loop from inside, so a stop is never
 * lost to a loop that had not begun waiting. Phase 1 (once every actor has
 * ended, so every socket with an owner is closed) closes what is left
 * (sockets given to an actor that never ran) and frees everything.
 */
#include "io/sock.h"

#include "common/tr_alloc.h"

#include <troupe/error.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_LOOPS = 64 };

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_rc;

static void
use_pthreads(void)
{
    /* Libevent's one process-wide setting: its locks are pthreads'. */
    evthread_rc = evthread_use_pthreads();
}

int64_t
tr__io_now_ms(const tr_io_sys *io)
{
    struct timespec ts;

    if (tr_unlikely(io->net != NULL)) {
        return tr__simnet_now_ms(io->net);
    }

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- loops ---- */

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    io_loop *l = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(l->base);
}

static void *
loop_main(void *arg)
{
    io_loop *l = arg;

    (void)event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void
on_ready(evutil_socket_t fd, short what, void *arg)
{
    io_slot *s = arg;
    uint32_t bits = 0;

    (void)fd;
    if (what & EV_READ) {
        bits |= RD_READ;
    }
    if (what & EV_WRITE) {
        bits |= RD_WRITE;
    }
    if (what & EV_TIMEOUT) {
        bits |= RD_TIMER;
    }
    tr__io_post(s, bits);
}

static void
stop_loops(tr_io_sys *io)
{
    for (unsigned i = 0; i < io->nloops; i++) {
        io_loop *l = &io->loops[i];
        if (l->started) {
            event_active(l->stop, EV_READ, 0);
            pthread_join(l->thread, NULL);
            l->started = false;
        }
    }
}

static void
free_module(tr_io_sys *io)
{
    for (unsigned i = 0; i < io->nloops; i++) {
        if (io->loops[i].stop != NULL) {
            event_free(io->loops[i].stop);
        }
        if (io->loops[i].base != NULL) {
            event_base_free(io->loops[i].base);
        }
    }
    if (io->loops != NULL) {
        tr__free(io->loops, sizeof(io_loop) * io->nloops);
    }
    for (uint32_t c = 0; c < IO_MAX_CHUNKS; c++) {
        io_slot *chunk = tr_load_relaxed(&io->chunks[c]);
        if (chunk == NULL) {
            break;
        }
        tr__free(chunk, sizeof(io_slot) * IO_CHUNK_LEN);
    }
    pthread_mutex_destroy(&io->lock);
    tr__free_aligned(io, sizeof(*io));
}

/* Close every slot still open: only sockets in transit to an actor that
 * never adopted them can be, once every actor has ended. */
static void
close_leftovers(tr_io_sys *io)
{
    for (uint32_t i = 0; i < io->next_index; i++) {
        io_slot *chunk = tr_load_relaxed(&io->chunks[i >> IO_CHUNK_BITS]);
        io_slot *s = &chunk[i & (IO_CHUNK_LEN - 1)];
        if (tr_load_relaxed(&s->gen) & 1u) {
            (void)tr__io_close_slot(s, NULL, false);
        }
    }
}

/* tr_system's io_end: see the top comment. */
static void
io_end(tr_system *sys, int phase)
{
    tr_io_sys *io = (tr_io_sys *)tr_load_acq(&sys->io);

    if (io == NULL) {
        return;
    }
    if (phase == 0) {
        stop_loops(io);
        return;
    }
    stop_loops(io); /* in case phase 0 was skipped */
    close_leftovers(io);
    tr__simnet_destroy(io->net);
    tr_store_relaxed(&sys->io, NULL);
    free_module(io);
}

/* A simulated system's module: no loops, an in-memory network. */
static int
module_create_sim(tr_system *sys, tr_io_sys **out)
{
    tr_io_sys *io = tr__calloc_aligned(sizeof(*io));
    int rc;

    if (io == NULL) {
        return TR_ENOMEM;
    }
    io->sys = sys;
    pthread_mutex_init(&io->lock, NULL);
    for (uint32_t c = 0; c < IO_MAX_CHUNKS; c++) {
        tr_init_relaxed(&io->chunks[c], NULL);
    }
    tr_init_relaxed(&io->next_loop, 0);
    if ((rc = tr__simnet_create(sys, &io->net)) != TR_OK) {
        free_module(io);
        return rc;
    }
    *out = io;
    return TR_OK;
}

static int
module_create(tr_system *sys, tr_io_sys **out)
{
    unsigned n = sys->cfg.io_threads != 0 ? sys->cfg.io_threads : 1;
    tr_io_sys *io;

    if (sys->sim != NULL) {
        return module_create_sim(sys, out);
    }
    if (n > MAX_LOOPS) {
        n = MAX_LOOPS;
    }
    pthread_once(&evthread_once, use_pthreads);
    if (evthread_rc != 0) {
        return TR_EIO;
    }
    io = tr__calloc_aligned(sizeof(*io));
    if (io == NULL) {
        return TR_ENOMEM;
    }
    io->sys = sys;
    io->nloops = n;
    pthread_mutex_init(&io->lock, NULL);
    for (uint32_t c = 0; c < IO_MAX_CHUNKS; c++) {
        tr_init_relaxed(&io->chunks[c], NULL);
    }
    tr_init_relaxed(&io->next_loop, 0);
    io->loops = tr__calloc(sizeof(io_loop) * n);
    if (io->loops == NULL) {
        pthread_mutex_destroy(&io->lock);
        tr__free_aligned(io, sizeof(*io));
        return TR_ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        io_loop *l = &io->loops[i];
        l->io = io;
        l->index = i;
        l->base = event_base_new();
        if (l->base == NULL) {
            free_module(io);
            return TR_EIO;
        }
        l->stop = event_new(l->base, -1, 0, on_stop, l);
        if (l->stop == NULL) {
            free_module(io);
            return TR_ENOMEM;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        io_loop *l = &io->loops[i];
        if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
            stop_loops(io);
            free_module(io);
            return TR_EIO;
        }
        l->started = true;
    }
    *out = io;
    return TR_OK;
}

int
tr__io_get(tr_system *sys, tr_io_sys **out)
{
    /* Acquire: pairs with the release below; the module is complete. */
    tr_io_sys *io = (tr_io_sys *)tr_load_acq(&sys->io);
    int rc = TR_OK;

    if (tr_likely(io != NULL)) {
        *out = io;
        return TR_OK;
    }
    /* The tree lock: cold, once per system, and shutdown reads the hook
     * under it (see the top comment). */
    pthread_mutex_lock(&sys->tree_lock);
    io = (tr_io_sys *)tr_load_relaxed(&sys->io);
    if (io == NULL) {
        if (tr_load_acq(&sys->shutting_down)) {
            rc = TR_ESHUTDOWN;
        } else if ((rc = module_create(sys, &io)) == TR_OK) {
            sys->io_end = io_end;
            tr_store_rel(&sys->io, (void *)io);
        }
    }
    pthread_mutex_unlock(&sys->tree_lock);
    if (rc == TR_OK) {
        *out = io;
    }
    return rc;
}

/* ---- slots ---- */

static void
slot_reset(io_slot *s)
{
    s->loop = NULL;
    s->ev = NULL;
    s->timer = NULL;
    s->kind = IO_FREE;
    s->fd = -1;
    tr_store_relaxed(&s->port, 0);
    s->deadline = 0;
    s->flags = 0;
    memset(&s->opts, 0, sizeof(s->opts));
    s->user = NULL;
    s->lx = NULL;
    s->in = NULL;
    s->in_cap = s->in_start = s->in_end = s->in_scan = 0;
    s->skip = 0;
    s->out = NULL;
    s->out_cap = s->out_start = s->out_end = 0;
    s->end_reason = TR_IO_END_NONE;
    s->end_err = 0;
    s->give_to = 0;
    s->next_free = NULL;
}

io_slot *
tr__io_slot_new(tr_io_sys *io)
{
    io_slot *s;

    pthread_mutex_lock(&io->lock);
    s = io->free;
    if (s != NULL) {
        io->free = s->next_free;
    } else if (io->next_index < (uint32_t)IO_MAX_CHUNKS * IO_CHUNK_LEN) {
        uint32_t i = io->next_index;
        uint32_t c = i >> IO_CHUNK_BITS;
        io_slot *chunk = tr_load_relaxed(&io->chunks[c]);
        if (chunk == NULL) {
            chunk = tr__calloc(sizeof(io_slot) * IO_CHUNK_LEN);
            if (chunk != NULL) {
                for (uint32_t k = 0; k < IO_CHUNK_LEN; k++) {
                    io_slot *n = &chunk[k];
                    n->index = (c << IO_CHUNK_BITS) | k;
                    n->io = io;
                    tr_init_relaxed(&n->gen, 0);
                    tr_init_relaxed(&n->owner, 0);
                    tr_init_relaxed(&n->held_by, 0);
                    tr_init_relaxed(&n->ready, 0);
                    tr_init_relaxed(&n->pending, 0);
                    tr_init_relaxed(&n->refs, 0);
                    tr_init_relaxed(&n->closing, 0);
                    tr_init_relaxed(&n->last_in, 0);
                    tr_init_relaxed(&n->bytes_in, 0);
                    tr_init_relaxed(&n->bytes_out, 0);
                    tr_init_relaxed(&n->port, 0);
                    slot_reset(n);
                }
                /* Release: pairs with tr__io_slot_of's acquire. */
                tr_store_rel(&io->chunks[c], chunk);
            }
        }
        if (chunk != NULL) {
            s = &chunk[i & (IO_CHUNK_LEN - 1)];
            io->next_index++;
        }
    }
    pthread_mutex_unlock(&io->lock);
    if (s == NULL) {
        return NULL;
    }
    s->hook.env.kind = TR_CTL_HOOK;
    s->hook.env.type = 0;
    s->hook.env.size = 0;
    s->hook.env.from = 0;
    s->hook.run = tr__io_hook_run;
    s->hook.drop = tr__io_hook_drop;
    s->exit.fn = tr__io_exit;
    s->exit.next = NULL;
    tr_store_relaxed(&s->owner, 0);
    tr_store_relaxed(&s->held_by, 0);
    tr_store_relaxed(&s->ready, 0);
    tr_store_relaxed(&s->pending, 0);
    tr_store_relaxed(&s->closing, 0);
    tr_store_relaxed(&s->refs, 1);
    tr_store_relaxed(&s->last_in, 0);
    tr_store_relaxed(&s->bytes_in, 0);
    tr_store_relaxed(&s->bytes_out, 0);
    /* Relaxed: a counter. */
    uint32_t k = tr_faa_relaxed(&io->next_loop, 1);
    s->loop = io->nloops != 0 ? &io->loops[k % io->nloops] : NULL;
    tr_faa_relaxed(&io->opened, 1);
    return s;
}

io_slot *
tr__io_slot_of(tr_io_sys *io, tr_io h)
{
    uint32_t index = (uint32_t)(h.id & ((UINT64_C(1) << IO_INDEX_BITS) - 1));
    uint64_t gen = h.id >> IO_INDEX_BITS;
    io_slot *chunk;

    if ((gen & 1u) == 0) {
        return NULL;
    }
    /* Acquire: pairs with the chunk's publication. */
    chunk = tr_load_acq(&io->chunks[index >> IO_CHUNK_BITS]);
    if (chunk == NULL) {
        return NULL;
    }
    io_slot *s = &chunk[index & (IO_CHUNK_LEN - 1)];
    /* Acquire: pairs with the open's release of gen. */
    return tr_load_acq(&s->gen) == gen ? s : NULL;
}

tr_io
tr__io_handle(io_slot *s)
{
    return (tr_io){(tr_load_relaxed(&s->gen) << IO_INDEX_BITS) | s->index};
}

void
tr__io_unref(io_slot *s)
{
    tr_io_sys *io = s->io;

    /* acq_rel: the last holder sees every other holder's writes. */
    if (tr_fas_acqrel(&s->refs, 1) != 1) {
        return;
    }
    slot_reset(s);
    pthread_mutex_lock(&io->lock);
    s->next_free = io->free;
    io->free = s;
    pthread_mutex_unlock(&io->lock);
}

int
tr__io_register(io_slot *s, short events)
{
    if (s->io->net != NULL) {
        return TR_OK; /* the network posts to the slot itself */
    }
    s->ev = event_new(s->loop->base, s->fd,
                      (short)(events | EV_PERSIST | EV_ET), on_ready, s);
    if (s->ev == NULL) {
        return TR_ENOMEM;
    }
    if (event_add(s->ev, NULL) != 0) {
        event_free(s->ev);
        s->ev = NULL;
        return TR_EIO;
    }
    return TR_OK;
}

int
tr__io_timer_arm(io_slot *s, int64_t ms)
{
    struct timeval tv;

    if (s->io->net != NULL) {
        tr__simnet_timer_arm(s->io->net, s->fd, ms);
        return TR_OK;
    }
    if (s->timer == NULL) {
        s->timer = event_new(s->loop->base, -1, 0, on_ready, s);
        if (s->timer == NULL) {
            return TR_ENOMEM;
        }
    }
    if (ms < 0) {
        ms = 0;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return event_add(s->timer, &tv) == 0 ? TR_OK : TR_EIO;
}

void
tr__io_timer_stop(io_slot *s)
{
    if (s->io->net != NULL) {
        tr__simnet_timer_stop(s->io->net, s->fd);
        return;
    }
    if (s->timer != NULL) {
        (void)event_del(s->timer);
    }
}

void
tr__io_arm(io_slot *s)
{
    /* seq_cst: see the top comment. The load spares the exchange's write
     * when a notification is queued already, the common case for a busy
     * socket. */
    if (tr_load_seqcst(&s->pending) != 0 ||
        tr_xchg_seqcst(&s->pending, 1) != 0) {
        return;
    }
    /* Relaxed: the caller holds a reference (an open slot, or a running
     * notification). */
    tr_faa_relaxed(&s->refs, 1);
    /* Acquire: pairs with tr_io_give's release of the new owner. */
    uint64_t owner = tr_load_acq(&s->owner);
    if (tr__actor_push_ctl_to(s->io->sys, owner, &s->hook.env) != TR_OK) {
        /*
         * The owner has ended. A holder's exit hook has closed the socket
         * already (hooks run before the generation moves); a socket in
         * transit to an actor that ended has no holder: close it here.
         * `pending` stays set, so nobody queues it again.
         */
        if (tr_load_acq(&s->held_by) == 0 && (tr_load_acq(&s->gen) & 1u)) {
            (void)tr__io_close_slot(s, NULL, false);
        }
        tr__io_unref(s);
    }
}

void
tr__io_post(io_slot *s, uint32_t bits)
{
    uint32_t old = tr_load_relaxed(&s->ready);

    /* seq_cst RMW: see the top comment. */
    while (!tr_cas_weak_seqcst(&s->ready, &old, old | bits)) {
    }
    tr__io_arm(s);
}

tr_atomic(tr_io_give_pause_fn) tr__io_give_pause;

void
tr__io_hand_over(io_slot *s, uint64_t to)
{
    /* Relaxed: the caller holds the socket, so the open reference is
     * there. This one keeps the slot off the free list until the post
     * is done: from the owner's store on, a loop thread can notify the
     * receiver, which can adopt the socket, close it and drop the other
     * references before the post below (see the top comment). */
    tr_faa_relaxed(&s->refs, 1);
    tr_store_rel(&s->held_by, 0);
    /* Release: the receiver's hook sees the holder's fields. */
    tr_store_rel(&s->owner, to);
    /* Relaxed: set by a test before the give it holds. */
    tr_io_give_pause_fn pause = tr_load_relaxed(&tr__io_give_pause);
    if (tr_unlikely(pause != NULL)) {
        pause();
    }
    tr__io_post(s, RD_ADOPT);
    tr__io_unref(s);
}

/* ---- counters ---- */

int
tr_io_stats_get(tr_system *sys, tr_io_stats *out)
{
    tr_io_stats st = {0};
    tr_io_sys *io;
    bool entered;
    int rc;

    if (sys == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if ((rc = tr__sys_enter_any(sys, &entered)) != TR_OK) {
        return rc;
    }
    io = (tr_io_sys *)tr_load_acq(&sys->io);
    if (io != NULL) {
        uint32_t n;
        st.loops = io->nloops;
        st.accepted = tr_load_relaxed(&io->accepted);
        st.connected = tr_load_relaxed(&io->connected);
        st.closed = tr_load_relaxed(&io->closed);
        st.bytes_in = tr_load_relaxed(&io->bytes_in);
        st.bytes_out = tr_load_relaxed(&io->bytes_out);
        st.too_long = tr_load_relaxed(&io->too_long);
        st.refused = tr_load_relaxed(&io->refused);
        uint64_t opened = tr_load_relaxed(&io->opened);
        st.open = opened > st.closed ? opened - st.closed : 0;
        /* Open slots' own counters: a snapshot, read without stopping
         * anyone. */
        pthread_mutex_lock(&io->lock);
        n = io->next_index;
        pthread_mutex_unlock(&io->lock);
        for (uint32_t i = 0; i < n; i++) {
            io_slot *chunk = tr_load_acq(&io->chunks[i >> IO_CHUNK_BITS]);
            io_slot *s = &chunk[i & (IO_CHUNK_LEN - 1)];
            if (tr_load_relaxed(&s->gen) & 1u) {
                st.bytes_in += tr_load_relaxed(&s->bytes_in);
                st.bytes_out += tr_load_relaxed(&s->bytes_out);
            }
        }
    }
    if (entered) {
        tr__sys_leave(sys);
    }
    *out = st;
    return TR_OK;
}

const char *
tr_io_end_name(tr_io_end reason)
{
    switch (reason) {
    case TR_IO_END_NONE:
        return "none";
    case TR_IO_END_PEER:
        return "peer closed";
    case TR_IO_END_RESET:
        return "reset";
    case TR_IO_END_ERROR:
        return "error";
    case TR_IO_END_TIMEOUT:
        return "timeout";
    case TR_IO_END_OVERFLOW:
        return "output overflow";
    }
    return "unknown";
}
