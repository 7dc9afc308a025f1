/*
 * A probe actor for socket tests: it records every I/O event it gets, and
 * does what the test thread asks through tr_ask (listen, connect, write,
 * close, pause, give, ...), answering with the call's result. Handlers
 * never assert (cmocka): the test thread reads the record.
 */
#ifndef IO_PROBE_H
#define IO_PROBE_H

#include "support/tr_net.h"
#include "support/tr_test.h"

#include <pthread.h>

enum { PROBE_MAX_EVENTS = 8192, PROBE_DATA = 256 };

typedef struct ev_rec {
    tr_io_event_kind kind;
    tr_io_end reason;
    int err;
    int code;
    tr_io io;
    tr_io peer;
    uint32_t ready;
    size_t len;
    char data[PROBE_DATA]; /* the first bytes of DATA, NUL-terminated */
} ev_rec;

typedef struct probe_rec {
    pthread_mutex_t mu;
    int nev;
    ev_rec evs[PROBE_MAX_EVENTS];
    /* Every DATA piece, in order (lines joined with '\n' after each). */
    char *stream;
    size_t nstream, capstream;
    uint64_t write_fail; /* echo writes that failed */
} probe_rec;

/* What the probe does with input. */
typedef enum probe_mode {
    PROBE_RECORD = 0,    /* record only */
    PROBE_ECHO,          /* write every DATA piece back (lines with LF,
                            frames with their length) */
    PROBE_READ_FD,       /* watch: read the descriptor on READY */
    PROBE_GIVE_ON_DATA,  /* on the first DATA, give the socket to `to` */
    PROBE_GIVE_AND_STOP, /* the same, then stop in that handler */
    PROBE_CLOSE_ON_DATA  /* on the first DATA, close the socket */
} probe_mode;

typedef struct probe_arg {
    probe_rec *rec;
    probe_mode mode;
} probe_arg;

/* Besides the mode: OP_MODE's `to` is where PROBE_GIVE_* gives. */

/* Plain messages (not calls): record a mark (an int) in the event log as
 * an event of kind PROBE_MARK, or sleep so many ms in the handler. */
enum { PROBE_MSG_MARK = 2, PROBE_MSG_SLEEP = 3 };
#define PROBE_MARK ((tr_io_event_kind)100)

enum {
    OP_LISTEN = 1,
    OP_LISTEN_UNIX,
    OP_CONNECT,
    OP_CONNECT_UNIX,
    OP_WRITE,
    OP_WRITE_UNTIL, /* write `data` until a write is not TR_OK */
    OP_WRITEV,      /* one tr_io_writev of `nbufs` one-byte buffers, the
                       i-th being data[i % len]; with `len` 0, two buffers
                       whose lengths add up past SIZE_MAX */
    OP_CLOSE,
    OP_PAUSE,
    OP_RESUME,
    OP_GIVE,
    OP_SHUTDOWN,
    OP_WATCH,
    OP_BUFFERED,
    OP_FAIL, /* answer, then fail */
    OP_STOP, /* answer, then stop */
    OP_SET_USER,
    OP_MODE
};

typedef struct probe_cmd {
    int op;
    tr_io io;
    tr_addr to;
    char host[108];
    uint16_t port;
    tr_timeout timeout;
    tr_io_opts opts;
    int backlog;
    bool spawn; /* listen: accept into new echo probes */
    /* listen: an acceptor that tr_spawn would refuse: 1, a dispatch
     * table with rows counted but none given; 2, a mailbox bound past
     * TR_MAILBOX_CAP_MAX. */
    int bad_acceptor;
    int fd;
    uint32_t events;
    probe_mode mode;
    size_t len;
    int nbufs;
    char data[1024];
} probe_cmd;

typedef struct probe_res {
    int rc;
    tr_io io;
    uint16_t port;
    size_t n;
} probe_res;

extern const tr_behaviour probe_behaviour;

probe_rec *probe_rec_new(void);
void probe_rec_free(probe_rec *r);
tr_addr probe_spawn(tr_system *sys, probe_rec *rec, probe_mode mode,
                    const tr_spawn_opts *opts);
/* Ask the probe to do `c`; its result. */
probe_res probe_do(tr_system *sys, tr_addr probe, const probe_cmd *c);
/* Events of `kind` recorded so far. */
int probe_count(probe_rec *r, tr_io_event_kind kind);
/* Wait until at least `n` events of `kind`; false on timeout. */
bool probe_wait(probe_rec *r, tr_io_event_kind kind, int n,
                unsigned timeout_ms);
/* The `i`th event of `kind` (a copy), or false. */
bool probe_nth(probe_rec *r, tr_io_event_kind kind, int i, ev_rec *out);
/* Wait until the stream holds at least `n` bytes. */
bool probe_wait_stream(probe_rec *r, size_t n, unsigned timeout_ms);

#endif /* IO_PROBE_H */
