/*
 * Private: the I/O module's slots, loops and system record. See loop.c for
 * the threads and the slot table, sock.c for the calls, conn.c for what an
 * owner does when its socket is ready.
 */
#ifndef TR_IO_SOCK_H
#define TR_IO_SOCK_H

#include <troupe/io.h>

#include "actors/actor.h"
#include "common/tr_atomic.h"
#include "io/simnet.h"

#include <pthread.h>
#include <sys/socket.h>

struct event;
struct event_base;

/* What a slot holds. */
typedef enum io_kind { IO_FREE = 0, IO_LISTENER, IO_CONN, IO_WATCH } io_kind;

/*
 * Work posted to a slot's owner (`ready`): set by the loop threads, by
 * tr_io_give and tr_io_resume, and by writes that end a connection;
 * consumed by the owner's hook (conn.c).
 */
enum {
    RD_READ = 1u << 0,   /* readable (edge) */
    RD_WRITE = 1u << 1,  /* writable (edge) */
    RD_TIMER = 1u << 2,  /* the slot's timer expired */
    RD_RESUME = 1u << 3, /* deliver what is buffered, read on */
    RD_ADOPT = 1u << 4,  /* a give: the new owner takes the socket */
    RD_END = 1u << 5     /* an end decided in a write: deliver it */
};

/* Slot flags, touched only by whoever holds the slot (its owner). */
enum {
    F_PAUSED = 1u << 0,      /* tr_io_pause */
    F_RD_MORE = 1u << 1,     /* no EAGAIN seen since the last edge */
    F_DISCARD = 1u << 2,     /* dropping an over-long line to its end */
    F_CONNECTING = 1u << 3,  /* an asynchronous connect is in progress */
    F_SHUT_WANTED = 1u << 4, /* tr_io_shutdown: FIN once the buffer drains */
    F_SHUT_DONE = 1u << 5,   /* the write side is shut down */
    F_WANT_DRAIN = 1u << 6,  /* a write was refused: TR_IO_DRAINED is due */
    F_EOF = 1u << 7,         /* half_close: the peer's FIN was delivered */
    F_ACCEPT_WAIT = 1u << 8, /* accept failed: wait for the retry timer */
    F_UNIX = 1u << 9,        /* a Unix-domain socket */
    F_UNLINK = 1u << 10,     /* remove `path` when the listener closes */
    F_IN_USE = 1u << 11      /* a handler borrows bytes of `in` */
};

/* What a listener keeps beside its slot (cold, allocated once). */
typedef struct io_listen {
    tr_io_opts conn;
    const tr_behaviour *behaviour;
    const void *arg;
    tr_spawn_opts spawn;
    bool has_spawn;
    char path[108]; /* Unix-domain listeners: the path to unlink */
} io_listen;

typedef struct io_loop io_loop;
typedef struct tr_io_sys tr_io_sys;

/*
 * One socket or watch. Slots live in the module's table until the system
 * ends and are reused by later sockets; `gen` tells them apart, as an
 * actor slot's generation does: odd while open, and bumped once at the
 * close, so a stale handle always reads valid memory and fails.
 *
 * Lifetime. `refs` counts the open socket (1, dropped at the close), the
 * notification while it is queued or running (1), and a give until its
 * post is done (1): the slot goes back to the free list when all are
 * gone, so the embedded notification is never queued twice nor reused
 * while queued, and no post lands on a slot that was freed.
 */
typedef struct io_slot {
    tr_ctl_hook hook;  /* the owner's notification (first: the queue node) */
    tr_exit_hook exit; /* closes the socket when its holder ends */

    /* Written by any thread. */
    tr_atomic(uint64_t) gen;
    tr_atomic(uint64_t) owner;   /* the owner's address id (a give's
                                    receiver while it is in transit) */
    tr_atomic(uint64_t) held_by; /* the incarnation whose exit hook holds
                                    the socket; 0 in transit */
    tr_atomic(uint32_t) ready;   /* RD_ bits waiting for the owner */
    tr_atomic(uint32_t) pending; /* 1 while the notification is queued */
    tr_atomic(uint32_t) refs;
    tr_atomic(uint32_t) closing; /* 1 once a closer has claimed it */
    tr_atomic(int64_t) last_in;  /* idle timeout: last input (ms) */
    tr_atomic(uint64_t) bytes_in;
    tr_atomic(uint64_t) bytes_out;
    tr_atomic(uint32_t) port; /* TCP: the local port, once known */

    /* Set when opened, constant until the close. */
    tr_io_sys *io;
    io_loop *loop;
    struct event *ev;
    struct event *timer; /* idle or connect timeout, accept retry */
    uint32_t index;
    io_kind kind;
    int fd;
    int64_t deadline; /* connect timeout: when (ms), or 0 */

    /* The holder's (owner's) fields. */
    uint32_t flags;
    tr_io_opts opts;
    void *user;
    io_listen *lx;
    unsigned char *in; /* input: [in_start, in_end) of in_cap bytes */
    uint32_t in_cap, in_start, in_end;
    uint32_t in_scan;   /* lines: searched up to here for LF */
    uint64_t skip;      /* frames: bytes of a refused frame to drop */
    unsigned char *out; /* output: [out_start, out_end) of out_cap */
    size_t out_cap, out_start, out_end;
    tr_io_end end_reason; /* RD_END: the end a write decided */
    int end_err;
    uint64_t give_to; /* a give made while input was borrowed */

    struct io_slot *next_free;
} io_slot;

struct io_loop {
    tr_io_sys *io;
    struct event_base *base;
    struct event *stop; /* activated to end the loop from inside */
    pthread_t thread;
    unsigned index;
    bool started;
};

enum { IO_CHUNK_BITS = 8, IO_CHUNK_LEN = 1 << IO_CHUNK_BITS };
enum { IO_MAX_CHUNKS = 1 << 13 }; /* 2 M sockets */
enum { IO_INDEX_BITS = 21 };
_Static_assert((1u << IO_INDEX_BITS) == (uint32_t)IO_MAX_CHUNKS * IO_CHUNK_LEN,
               "the handle's index covers the table");

struct tr_io_sys {
    tr_system *sys;
    /* A simulated system's network (simnet.c), in place of loops and
     * sockets; NULL for a real one. Constant. */
    tr_simnet *net;
    unsigned nloops;
    io_loop *loops;
    tr_atomic(uint32_t) next_loop; /* round robin */
    tr_atomic(io_slot *) chunks[IO_MAX_CHUNKS];

    /* Cold: opening and closing. Guards the free list and table growth. */
    pthread_mutex_t lock;
    io_slot *free;
    uint32_t next_index;

    /* Counters of closed sockets (their slots' counters are summed with
     * these by tr_io_stats_get) and of events. Relaxed. */
    tr_atomic(uint64_t) accepted;
    tr_atomic(uint64_t) connected;
    tr_atomic(uint64_t) closed;
    tr_atomic(uint64_t) opened;
    tr_atomic(uint64_t) bytes_in;
    tr_atomic(uint64_t) bytes_out;
    tr_atomic(uint64_t) too_long;
    tr_atomic(uint64_t) refused;
};

/* loop.c */
/* The module of `sys`, started on first use: TR_OK and `*out`, or
 * TR_ESHUTDOWN, TR_ENOMEM, TR_EIO (a loop could not start). */
int tr__io_get(tr_system *sys, tr_io_sys **out);
/* A fresh slot (refs 1, gen odd, loop assigned), or NULL. */
io_slot *tr__io_slot_new(tr_io_sys *io);
/* The slot `h` names while it is open, else NULL. */
io_slot *tr__io_slot_of(tr_io_sys *io, tr_io h);
/* The handle of an open slot. */
tr_io tr__io_handle(io_slot *s);
/* Drop a reference; the last one frees the slot. */
void tr__io_unref(io_slot *s);
/* Register the slot's event (and timer) with its loop. */
int tr__io_register(io_slot *s, short events);
/* Arm the slot's timer to fire in `ms`. */
int tr__io_timer_arm(io_slot *s, int64_t ms);
/* Disarm it. */
void tr__io_timer_stop(io_slot *s);
/* Post `bits` for the owner and notify it. Any thread. */
void tr__io_post(io_slot *s, uint32_t bits);
/* Notify the owner unless a notification is queued. Any thread. */
void tr__io_arm(io_slot *s);
/* Give the socket the caller holds to `to` (an address id) and post the
 * adoption to it; the caller no longer holds it on return. */
void tr__io_hand_over(io_slot *s, uint64_t to);
/* Test only (tests/unit/io_test.c): called by tr__io_hand_over between
 * publishing the receiver and posting the adoption, so that a test can
 * hold a giver there. NULL otherwise. */
typedef void (*tr_io_give_pause_fn)(void);
extern tr_atomic(tr_io_give_pause_fn) tr__io_give_pause;
/* The monotonic clock in ms (the virtual one in simulation). */
int64_t tr__io_now_ms(const tr_io_sys *io);

/* sock.c */
/* Close the slot now (the caller holds it, or claimed it in transit);
 * `exiting` when called from the exit hook. Returns false when someone
 * else closed it first. */
bool tr__io_close_slot(io_slot *s, tr_ctx *ctx, bool exiting);
/* Map an errno of socket(2), bind(2), listen(2), connect(2) to a code. */
int tr__io_errno_code(int err);
/* A connection slot for `fd`, held by the calling actor (`opts`
 * normalised); on error `fd` is left to the caller. */
int tr__io_open_conn(tr_ctx *ctx, tr_io_sys *io, int fd, const tr_io_opts *opts,
                     bool unix_domain, bool connecting, io_slot **out);
/* tr_io_opts with every default filled in. */
tr_io_opts tr__io_normal_opts(const tr_io_opts *o);

/* conn.c */
bool tr__io_hook_run(tr_ctl_hook *h, tr_ctx *ctx, void *state,
                     uint64_t *handled);
void tr__io_hook_drop(tr_ctl_hook *h);
void tr__io_exit(tr_exit_hook *h, tr_ctx *ctx);
/* Flush the output buffer; false when the connection failed (the end is
 * recorded for delivery). */
bool tr__io_flush(io_slot *s);

/*
 * The system calls on a connection's descriptor, for the owner's code
 * shared by both backends: a simulated module's go to its network (one
 * branch per call, on a field that never changes).
 */
static inline ssize_t
tr__io_recv(io_slot *s, void *buf, size_t len)
{
    if (tr_unlikely(s->io->net != NULL)) {
        return tr__simnet_recv(s->io->net, s->fd, buf, len);
    }
    return recv(s->fd, buf, len, MSG_DONTWAIT);
}

static inline ssize_t
tr__io_send(io_slot *s, const void *buf, size_t len)
{
    if (tr_unlikely(s->io->net != NULL)) {
        struct iovec v = {(void *)buf, len};
        return tr__simnet_send(s->io->net, s->fd, &v, 1);
    }
    return send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static inline void
tr__io_shut_wr(io_slot *s)
{
    if (tr_unlikely(s->io->net != NULL)) {
        tr__simnet_shutdown(s->io->net, s->fd);
        return;
    }
    (void)shutdown(s->fd, SHUT_WR);
}

#endif /* TR_IO_SOCK_H */
