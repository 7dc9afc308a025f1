/*
 * Network I/O for actors: TCP and Unix-domain sockets, and readiness
 * watches on any descriptor, owned by actors.
 *
 * Ownership. Every socket belongs to one actor incarnation, the one that
 * opened it, accepted it or adopted it (tr_io_give). Only the owner uses
 * it, from its handlers. When the owner's incarnation ends, for any
 * reason (it stops, fails, is restarted in place by its supervisor, is
 * killed, or the system shuts down), its sockets are closed before its
 * end completes: no descriptor outlives its actor.
 *
 * Handles. A tr_io is a small value, like an address: once its socket is
 * closed, every call that takes it returns TR_ECLOSED, whatever became of
 * the memory behind it; a handle never names a later socket.
 *
 * Events. The system's I/O loop threads (tr_system_config.io_threads,
 * started by the first tr_io call) turn readiness into work for the
 * owner; they never run user code. The owner reads, frames and writes on
 * its own worker, and gets each event as one message of type TR_MSG_IO
 * whose payload is a tr_io_event. Events reach a handler like any
 * message (dispatch tables included) and are borrowed for the call; they
 * travel in the actor's control lane, at most one notification per socket
 * at a time, so a socket never fills a mailbox.
 *
 * Framing. A connection delivers raw chunks, lines or length-prefixed
 * frames (tr_io_framing), each piece as one TR_IO_DATA event. A line or
 * frame over the maximum arrives as one TR_IO_TOO_LONG event and is
 * discarded up to its end, however long, in bounded memory.
 *
 * Backpressure. Inbound: a connection delivers at most `read_batch`
 * pieces per run of its owner, then lets the owner's mailbox have its
 * turn; while the owner's bounded mailbox is full, or while the owner has
 * paused the connection (tr_io_pause), nothing is read: the kernel's
 * buffers fill and TCP slows the peer down. At most one partial piece per
 * connection is held in memory. Outbound: tr_io_write sends at once when
 * it can and copies what the kernel did not take into a per-connection
 * buffer; past the high-water mark a write is refused with TR_EFULL (then
 * a TR_IO_DRAINED event says when to write again) or the connection ends
 * with TR_IO_END_OVERFLOW, as the connection's `on_full` says.
 *
 * Ends. Every end of a connection that the owner did not ask for (peer
 * closed, reset, error, timeout, overflow, failed connect) reaches it as
 * one TR_IO_CLOSED event, after the socket is closed. A socket the owner
 * closes itself (tr_io_close) sends no event.
 *
 * Simulation. In a simulated system (troupe/sim.h) the TCP calls work on
 * an in-memory network with seeded latency, loss, resets and partitions,
 * with the semantics above; there are no loop threads, and Unix-domain
 * sockets and watches are refused with TR_ESTATE.
 */
#ifndef TROUPE_IO_H
#define TROUPE_IO_H

#include <troupe/actor.h>
#include <troupe/common.h>
#include <troupe/system.h>

#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A socket or watch handle: a value, valid until its socket is closed.
 * The zero value is TR_IO_NONE and names nothing.
 */
typedef struct tr_io {
    uint64_t id;
} tr_io;

#ifdef __cplusplus
#define TR_IO_NONE (tr_io{0})
#else
#define TR_IO_NONE ((tr_io){0})
#endif

/** True when `a` and `b` are the same handle. */
static inline bool
tr_io_eq(tr_io a, tr_io b)
{
    return a.id == b.id;
}

/** The message type of every I/O event; the payload is a tr_io_event. */
#define TR_MSG_IO 0xFFFFFF30u

/** How a connection's input is cut into TR_IO_DATA events. */
typedef enum tr_io_framing {
    TR_IO_RAW = 0, /* whatever each read returned, up to `max_frame` bytes */
    TR_IO_LINES,   /* lines ended by LF; a CR before the LF is removed;
                      the terminator is not part of the line */
    TR_IO_FRAMES   /* a 4-byte big-endian length, then that many bytes */
} tr_io_framing;

/** What a write past the high-water mark does. */
typedef enum tr_io_on_full {
    TR_IO_FULL_REFUSE = 0, /* tr_io_write returns TR_EFULL, queues nothing,
                              and TR_IO_DRAINED follows */
    TR_IO_FULL_CLOSE       /* the connection ends (TR_IO_END_OVERFLOW) */
} tr_io_on_full;

/** Options of one connection; zero for every field means its default. */
typedef struct tr_io_opts {
    tr_io_framing framing;
    /* Lines and frames: the longest accepted, in bytes (default 65536,
     * at most 16 MiB). Raw: the largest chunk (default 16384). */
    uint32_t max_frame;
    /* Output buffer high-water mark in bytes (default 262144). A write
     * to an empty buffer is always taken whole, so the buffer holds at
     * most this plus one write. */
    uint32_t write_hwm;
    tr_io_on_full on_full;
    /* Pieces delivered per run of the owner before its mailbox gets a
     * turn (default 64). */
    uint32_t read_batch;
    /* End the connection (TR_IO_END_TIMEOUT) after this long without
     * input; 0 or TR_FOREVER: never. */
    tr_timeout idle_timeout;
    /* A peer's FIN arrives as TR_IO_EOF and the connection stays open for
     * writing until tr_io_close; by default it ends the connection
     * (TR_IO_CLOSED with TR_IO_END_PEER). */
    bool half_close;
    /* Keep Nagle's algorithm (TCP_NODELAY is set by default). */
    bool nagle;
    /* SO_SNDBUF and SO_RCVBUF in bytes; 0 keeps the kernel's. */
    uint32_t sndbuf;
    uint32_t rcvbuf;
} tr_io_opts;

/** Options of a listener; zero for every field means its default. */
typedef struct tr_io_listen_opts {
    /* listen(2)'s backlog (default 1024). */
    int backlog;
    /* Options of every accepted connection. */
    tr_io_opts conn;
    /* When set, each accepted connection is given to a new actor of this
     * behaviour, spawned with `accept_arg` and `accept_spawn` (the actor
     * gets TR_IO_ADOPTED with the connection); otherwise the listener's
     * owner gets TR_IO_ACCEPTED and owns the connection. Borrowed for the
     * listener's life (keep it static). */
    const tr_behaviour *accept_behaviour;
    const void *accept_arg;
    const tr_spawn_opts *accept_spawn;
} tr_io_listen_opts;

/** What a tr_io_event reports. */
typedef enum tr_io_event_kind {
    TR_IO_DATA = 1,     /* a chunk, line or frame: `data`, `len` */
    TR_IO_TOO_LONG,     /* a line or frame over `max_frame`, discarded to its
                           end: `len` is its length when known (frames), or
                           the bytes seen when it was refused (lines) */
    TR_IO_ACCEPTED,     /* listener: `peer` is a new connection, owned by
                           this actor from now on */
    TR_IO_ACCEPT_ERROR, /* listener: accept failed with `err` (EMFILE,
                           ENFILE, ENOBUFS, ENOMEM) or spawning its actor
                           failed with `code`; accepting pauses for 100 ms,
                           then tries again: one event per failed try */
    TR_IO_CONNECTED,    /* tr_io_connect's connection is up */
    TR_IO_DRAINED,      /* everything buffered has gone to the kernel, after
                           a write was refused with TR_EFULL */
    TR_IO_EOF,          /* half_close: the peer will send no more */
    TR_IO_READY,        /* watch: `ready` holds TR_IO_READABLE and/or
                           TR_IO_WRITABLE */
    TR_IO_ADOPTED,      /* tr_io_give (or a spawning listener) gave this
                           actor the socket `io` */
    TR_IO_CLOSED        /* the end: `reason`, `err`; the socket is closed
                           and `io` no longer valid */
} tr_io_event_kind;

/** Why a connection ended (TR_IO_CLOSED). */
typedef enum tr_io_end {
    TR_IO_END_NONE = 0,
    TR_IO_END_PEER,    /* the peer closed its side (EOF) */
    TR_IO_END_RESET,   /* the peer reset it (ECONNRESET, EPIPE) */
    TR_IO_END_ERROR,   /* a socket error, or a failed connect: `err` */
    TR_IO_END_TIMEOUT, /* idle timeout, or connect timeout */
    TR_IO_END_OVERFLOW /* a write past the high-water mark, under
                          TR_IO_FULL_CLOSE */
} tr_io_end;

/** Readiness bits of tr_io_watch and TR_IO_READY. */
#define TR_IO_READABLE 1u
#define TR_IO_WRITABLE 2u

/** The payload of TR_MSG_IO, borrowed for the handler call. */
typedef struct tr_io_event {
    tr_io io; /* the socket or watch it is about */
    tr_io_event_kind kind;
    tr_io_end reason; /* TR_IO_CLOSED */
    int err;          /* an errno value, or 0 */
    int code;         /* a TR_ error code, or TR_OK */
    uint32_t ready;   /* TR_IO_READY */
    tr_io peer;       /* TR_IO_ACCEPTED */
    const void *data; /* TR_IO_DATA; NULL otherwise */
    size_t len;       /* TR_IO_DATA, TR_IO_TOO_LONG */
    void *user;       /* the socket's user pointer (tr_io_set_user) */
} tr_io_event;

/** System-wide I/O counters (tr_io_stats_get). */
typedef struct tr_io_stats {
    unsigned loops;     /* I/O loop threads running */
    uint64_t open;      /* sockets and watches open now */
    uint64_t accepted;  /* connections accepted */
    uint64_t connected; /* connects that succeeded */
    uint64_t closed;    /* sockets and watches closed */
    uint64_t bytes_in;  /* bytes read */
    uint64_t bytes_out; /* bytes handed to the kernel */
    uint64_t too_long;  /* lines and frames discarded as too long */
    uint64_t refused;   /* writes refused with TR_EFULL */
} tr_io_stats;

/**
 * Listen for TCP connections on `host` (a numeric IPv4 or IPv6 address;
 * NULL or "" means every IPv4 and IPv6 address) and `port` (0 picks a free
 * one: read it with tr_io_port). The caller owns the listener; accepted
 * connections go to it (TR_IO_ACCEPTED) or to new actors (see
 * tr_io_listen_opts). SO_REUSEADDR is set.
 *
 * Ownership: borrows `host` and `opts` (may be NULL), except what
 *            `opts` says is borrowed for the listener's life.
 * Context:   a handler or `init`.
 * Returns:   TR_OK and `*out`; TR_EINVAL for NULL `ctx` or `out`, or bad
 *            options (an acceptor's behaviour or spawn options that
 *            tr_spawn would refuse included); TR_ESTATE on a thread
 *            context; TR_EBADADDR when
 *            `host` is not a numeric address; TR_EADDRINUSE; TR_EMFILE
 *            when out of descriptors; TR_EIO for another socket error
 *            (EACCES, EADDRNOTAVAIL, ...); TR_ENOMEM; TR_ESHUTDOWN;
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_io_listen(tr_ctx *ctx, const char *host, uint16_t port,
                        const tr_io_listen_opts *opts, tr_io *out);

/**
 * Listen on a Unix-domain stream socket at `path` (a leading '@' names
 * one in the abstract namespace). The path is removed when the listener
 * closes; an existing one is never removed (TR_EADDRINUSE).
 *
 * Ownership: as tr_io_listen.
 * Context:   a handler or `init`.
 * Returns:   as tr_io_listen; TR_EBADADDR for an empty or over-long path.
 */
TR_API int tr_io_listen_unix(tr_ctx *ctx, const char *path,
                             const tr_io_listen_opts *opts, tr_io *out);

/**
 * Connect to `host` (numeric IPv4 or IPv6) and `port`, asynchronously:
 * TR_IO_CONNECTED follows, or TR_IO_CLOSED with TR_IO_END_ERROR and the
 * errno (ECONNREFUSED, ...) or TR_IO_END_TIMEOUT after `timeout`
 * (TR_NOWAIT or TR_FOREVER: the kernel's own limit). It never blocks. Writes
 * made before it is up are buffered and sent once it is.
 *
 * Ownership: borrows `host` and `opts` (may be NULL).
 * Context:   a handler or `init`.
 * Returns:   TR_OK and `*out` (one event will follow); TR_EINVAL;
 *            TR_ESTATE on a thread context; TR_EBADADDR (also for port
 *            0); TR_EMFILE; TR_EIO; TR_ENOMEM; TR_ESHUTDOWN; TR_EFORKED.
 *            On any error no event follows.
 */
TR_API int tr_io_connect(tr_ctx *ctx, const char *host, uint16_t port,
                         const tr_io_opts *opts, tr_timeout timeout,
                         tr_io *out);

/**
 * Connect to the Unix-domain stream socket at `path` (a leading '@' names
 * one in the abstract namespace), asynchronously, as tr_io_connect: a
 * path nobody listens on ends it at once (TR_IO_CLOSED, ENOENT or
 * ECONNREFUSED).
 *
 * Ownership: borrows `path` and `opts` (may be NULL).
 * Context:   a handler or `init`.
 * Returns:   as tr_io_connect; TR_EBADADDR for an empty or over-long path.
 */
TR_API int tr_io_connect_unix(tr_ctx *ctx, const char *path,
                              const tr_io_opts *opts, tr_timeout timeout,
                              tr_io *out);

/**
 * Watch a descriptor the caller owns: TR_IO_READY arrives when it becomes
 * readable or writable, as `events` asks. Readiness is edge-triggered:
 * after a TR_IO_READY, read (or write) until EAGAIN, or no further event
 * may come. The descriptor is never closed by troupe: the watch ends with
 * tr_io_close or with the owner, and the caller then closes it.
 *
 * Context:   a handler or `init`.
 * Returns:   TR_OK and `*out`; TR_EINVAL for a negative `fd`, empty
 *            `events` or NULL; TR_ESTATE; TR_EIO when the descriptor
 *            cannot be watched (a regular file); TR_ENOMEM; TR_ESHUTDOWN;
 *            TR_EFORKED.
 */
TR_API int tr_io_watch(tr_ctx *ctx, int fd, uint32_t events, tr_io *out);

/**
 * Write `len` bytes: sent at once as far as the kernel takes them, the
 * rest copied into the connection's output buffer and sent as the socket
 * drains. Bytes of successive writes go out in order.
 *
 * Ownership: borrows `data` (copied when not sent at once).
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_EFULL when the buffer would pass the high-water
 *            mark under TR_IO_FULL_REFUSE (nothing was written; wait for
 *            TR_IO_DRAINED); TR_ECLOSED when the connection is closed or
 *            ending (a TR_IO_CLOSED event follows if it just ended, as
 *            with TR_IO_FULL_CLOSE); TR_ESTATE when the caller is not
 *            its owner, or for a listener or watch; TR_EINVAL for NULL
 *            `data` with a non-zero `len`; TR_ENOMEM.
 */
TR_API TR_NODISCARD int tr_io_write(tr_ctx *ctx, tr_io io, const void *data,
                                    size_t len);

/**
 * Write the `n` buffers of `iov` as one write: all of it is taken, or
 * (TR_EFULL) none of it.
 *
 * Ownership: borrows `iov` and its buffers (copied when not sent at once).
 * Context:   a handler of the owner.
 * Returns:   as tr_io_write; TR_EINVAL for a negative `n`, a NULL buffer
 *            with a non-zero length, or lengths whose sum passes SIZE_MAX.
 *            Any number of buffers is taken (past IOV_MAX, the kernel's
 *            limit for one call, the rest is copied and sent after).
 */
TR_API TR_NODISCARD int tr_io_writev(tr_ctx *ctx, tr_io io,
                                     const struct iovec *iov, int n);

/**
 * Shut the write side down once everything buffered is sent (the peer
 * then reads EOF); reading goes on.
 *
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_ECLOSED; TR_ESTATE.
 */
TR_API int tr_io_shutdown(tr_ctx *ctx, tr_io io);

/**
 * Close now: what the kernel takes of the buffered output is sent, the
 * write side is shut down, unread input is discarded, and the descriptor
 * is closed (a watch's descriptor is only unwatched). No event follows;
 * events not yet delivered are dropped. Closing twice is TR_ECLOSED.
 *
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_ECLOSED if it was closed already; TR_ESTATE when
 *            the caller is not its owner.
 */
TR_API int tr_io_close(tr_ctx *ctx, tr_io io);

/**
 * Stop reading from a connection (or accepting on a listener) until
 * tr_io_resume; pieces already read wait in its buffer. Pausing twice is
 * one pause.
 *
 * Context:   a handler of the owner (a TR_IO_DATA handler included: the
 *            next piece then waits).
 * Returns:   TR_OK; TR_ECLOSED; TR_ESTATE.
 */
TR_API int tr_io_pause(tr_ctx *ctx, tr_io io);

/**
 * Read again after tr_io_pause: what waits is delivered first.
 *
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_ECLOSED; TR_ESTATE.
 */
TR_API int tr_io_resume(tr_ctx *ctx, tr_io io);

/**
 * Give the socket to actor `to`: it gets TR_IO_ADOPTED and owns the
 * socket from then on; the caller no longer does. If `to` ends before it
 * adopts the socket, the socket is closed.
 *
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_ENOACTOR if `to` has ended (the caller keeps the
 *            socket); TR_EINVAL when `to` is the caller; TR_ECLOSED;
 *            TR_ESTATE; TR_EFOREIGN.
 */
TR_API int tr_io_give(tr_ctx *ctx, tr_io io, tr_addr to);

/**
 * Attach a pointer of the owner's to the socket; every event carries it.
 *
 * Ownership: `user` is never dereferenced by troupe.
 * Context:   a handler of the owner.
 * Returns:   TR_OK; TR_ECLOSED; TR_ESTATE.
 */
TR_API int tr_io_set_user(tr_ctx *ctx, tr_io io, void *user);

/**
 * The local port of a TCP listener or connection (the one picked for
 * port 0, for instance).
 *
 * Context:   any thread.
 * Returns:   TR_OK and `*port`; TR_ECLOSED when `io` is closed; TR_EINVAL
 *            for NULL, or a Unix-domain socket or watch; TR_ESHUTDOWN off
 *            the workers once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_io_port(tr_system *sys, tr_io io, uint16_t *port);

/**
 * Bytes waiting in a connection's output buffer (not yet taken by the
 * kernel).
 *
 * Context:   a handler of the owner.
 * Returns:   TR_OK and `*len`; TR_ECLOSED; TR_ESTATE.
 */
TR_API int tr_io_buffered(tr_ctx *ctx, tr_io io, size_t *len);

/**
 * Read the system's I/O counters (all zero before the first tr_io call).
 *
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ESHUTDOWN off the workers once
 *            shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_io_stats_get(tr_system *sys, tr_io_stats *out);

/**
 * A short name for an end reason ("peer closed", "reset", ...).
 *
 * Ownership: returns borrowed, valid for the life of the process.
 * Context:   any thread.
 */
TR_API const char *tr_io_end_name(tr_io_end reason);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_IO_H */
