/*
 * The chat server: the final server of the tokio chat tutorial (same
 * protocol, same texts), written as a troupe service.
 *
 * The supervision tree (rest_for_one: a registry crash restarts what
 * depends on it; a room or a connection crash restarts, or ends, only
 * itself):
 *
 *   /chat                 rest_for_one
 *     /chat/registry      names, memberships, the room table
 *     /chat/rooms         simple_one_for_one, transient room actors
 *     /chat/conns         simple_one_for_one, temporary connection actors
 *     /chat/listener      owns the listening socket
 *
 * Who does what:
 * - the listener accepts, pauses the new connection, and has a connection
 *   actor started under /chat/conns, then gives it the socket;
 * - a connection actor (session.c) owns its socket, cuts lines (troupe's
 *   io framing, 400 bytes at most), runs the commands, and receives its
 *   room's broadcast channel, writing each value to its client;
 * - the registry (registry.c) hands out unique names, keeps who is in
 *   which room, creates rooms on demand (each with a broadcast channel of
 *   1024 values: a member that falls further behind is told how many it
 *   missed) and removes them when their last member leaves; it monitors
 *   every connection, so a disconnect, a /quit and a crash all end the
 *   same way: "<Name> left", and the name is free again;
 * - a room actor (room.c) puts its room's events on the channel, in the
 *   order it receives them.
 *
 * The channel of a room belongs to the registry's record of it, not to
 * the room actor: a room that crashes is restarted in place and goes on
 * with the same channel, so its members notice nothing.
 *
 * tr_sup_start_child_wait waits for the supervisor's answer, so actors cannot
 * call it; a small plain thread (the spawner, server.c) starts children
 * for them and reports back by message.
 */
#ifndef CHAT_H
#define CHAT_H

#include <troupe.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    CHAT_MAX_LINE = 400,  /* bytes per line */
    CHAT_NAME_MAX = 20,   /* bytes per name or room name */
    CHAT_ROOM_CAP = 1024, /* values a room's channel keeps */
    CHAT_VALUE_MAX = 512, /* bytes of one channel value */
    CHAT_WRITE_HWM = 256 * 1024,
    CHAT_LINGER_MS = 3000, /* a leaving client's time to read what is left */
};

/* Message types between the chat's actors. */
enum {
    /* to the registry (calls, except SUBSCRIBED) */
    REG_HELLO = 100,  /* a new connection: a name, and main */
    REG_RENAME,       /* payload: chat_name */
    REG_JOIN,         /* payload: chat_name (the room) */
    REG_ROOMS,        /* reply: the "Rooms - ..." line */
    REG_USERS,        /* reply: the "Users - ..." line */
    REG_SUBSCRIBED,   /* the sender has used its channel handle */
    REG_QUIT,         /* /quit: out of its room, its name free (a call) */
    REG_ROOM_STARTED, /* from the spawner: chat_started */
    REG_SHUTDOWN,     /* the server stops: departures go unannounced */
    /* to a room */
    ROOM_SAY = 200, /* payload: chat_say */
    ROOM_NOTICE,    /* payload: a chat_value to put on the channel */
    ROOM_CLOSE,     /* empty: stop */
    ROOM_CRASH,     /* fault switch: fail */
    /* to a connection */
    CONN_VALUE = 300, /* a channel value (the payload is the value) */
    CONN_LAGGED,      /* payload: uint64_t, values missed */
    CONN_CLOSED,      /* the room's channel closed */
    CONN_WAIT_OVER,   /* no socket came in time */
    CONN_FLUSH,       /* write what this run produced (session.c) */
    CONN_LINGER,      /* leaving: is the output out yet? (session.c) */
    CONN_SHUTDOWN,    /* the server stops: say so and leave */
    /* to the listener */
    LST_STARTED = 400 /* from the spawner: chat_started */
};

/* What a channel value is. */
typedef enum chat_kind {
    VAL_TEXT = 0, /* a line for every member */
    VAL_JOINED,   /* "<Name> joined": not for the one who joined */
    VAL_LEFT      /* "<Name> left": not for the one who left */
} chat_kind;

/* A value on a room's channel (and ROOM_NOTICE's payload). */
typedef struct chat_value {
    uint64_t origin; /* the connection it is about (address id) */
    uint32_t kind;   /* chat_kind */
    uint32_t len;
    /* A joined or left notice: the room's count of membership changes
     * with this one (the registry's), so that a member who joined after
     * it (chat_joined.epoch) can tell it from a later one however late
     * the room puts it on the channel. 0 for a line. */
    uint64_t epoch;
    char text[CHAT_VALUE_MAX - 24];
} chat_value;

enum { CHAT_VALUE_HEAD = offsetof(chat_value, text) };

/* For results that are deliberately not acted on (TR_NODISCARD calls). */
static inline void
chat_ignore(int rc)
{
    (void)rc;
}

static inline size_t
chat_value_size(const chat_value *v)
{
    return CHAT_VALUE_HEAD + (size_t)v->len;
}

typedef struct chat_name {
    char s[CHAT_NAME_MAX + 4];
} chat_name;

typedef struct chat_say {
    uint64_t origin;
    char name[CHAT_NAME_MAX + 4];
    uint32_t len;
    char text[CHAT_MAX_LINE];
} chat_say;

/* What a room actor borrows from the registry's record of its room (its
 * start argument): kept until the room has ended for good. */
typedef struct chat_room_core {
    char name[CHAT_NAME_MAX + 4];
    tr_broadcast_tx *tx;
} chat_room_core;

/* The registry's answer to HELLO and JOIN. */
typedef struct chat_joined {
    int rc;
    char name[CHAT_NAME_MAX + 4];
    char room[CHAT_NAME_MAX + 4];
    tr_addr room_addr;
    uint64_t epoch;      /* the room's membership changes, this join's own
                            included (chat_value.epoch) */
    tr_broadcast_tx *tx; /* a handle for the caller: subscribe, destroy,
                            then send REG_SUBSCRIBED */
} chat_joined;

/* The spawner's report. */
typedef struct chat_started {
    uint64_t cookie;
    int rc;
    tr_addr child;
} chat_started;

/* A request to the spawner. */
typedef struct chat_spawn {
    tr_addr sup;
    const void *arg;
    tr_addr reply_to;
    uint32_t reply_type;
    uint64_t cookie;
} chat_spawn;

typedef struct chat_config {
    const char *ip;
    uint16_t port;
    bool admin;  /* /admin: the live tree and the counters */
    bool faults; /* /crash, /crashroom, /stall: fault switches */
    bool quiet;
    unsigned workers;
    unsigned io_threads;
    /* Run the server in a simulated system (troupe/sim.h) driven by the
     * thread that calls chat_start: no spawner thread is started, and the
     * driving thread serves the spawn requests (chat_serve_spawns). */
    const tr_sim_config *sim;
} chat_config;

/* The server: shared, read-only after start, but for the counters. */
typedef struct chat_server {
    chat_config cfg;
    tr_system *sys;
    tr_mailbox *spawns;
    _Atomic uint32_t port;
    _Atomic int listen_rc;
    /* counters */
    _Atomic uint64_t connections; /* open now */
    _Atomic uint64_t accepted;
    _Atomic uint64_t rooms;  /* open now */
    _Atomic uint64_t said;   /* lines broadcast */
    _Atomic uint64_t lagged; /* values members missed */
    _Atomic uint64_t too_long;
    _Atomic uint64_t bad_utf8;
    _Atomic uint64_t crashes; /* fault switches pulled */
} chat_server;

extern const tr_behaviour chat_registry_behaviour;
extern const tr_behaviour chat_room_behaviour;
extern const tr_behaviour chat_session_behaviour;
extern const tr_behaviour chat_listener_behaviour;

/* server.c */
/* Start the tree and the spawner; TR_OK or why not (the listener's code
 * when it cannot listen). */
int chat_start(chat_server *srv);
/* Stop everything (each client is told). */
int chat_stop(chat_server *srv);
/* A simulated server: start the children asked for so far, on the
 * driving thread (in place of the spawner thread); how many. */
unsigned chat_serve_spawns(chat_server *srv);
/* Ask the spawner to start a child of `sup`; the answer comes to
 * `reply_to` as `reply_type` with a chat_started. */
int chat_spawn_child(chat_server *srv, tr_addr sup, const void *arg,
                     tr_addr reply_to, uint32_t reply_type, uint64_t cookie);
/* The live tree and the counters, as text lines ("\n" after each), into
 * `buf`; returns the length. */
size_t chat_admin_report(chat_server *srv, char *buf, size_t cap);

/* registry.c */
/* True when `s` (len bytes) is 2 to 20 of [A-Za-z0-9_-]. */
bool chat_name_ok(const char *s, size_t len);
/* Free the room cores and channel handles the registry left for the end
 * (call once every actor has ended). */
void chat_registry_release_all(void);

#endif /* CHAT_H */
