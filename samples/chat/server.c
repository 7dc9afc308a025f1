/*
 * The chat service's tree, its listener, and the spawner.
 *
 * The listener owns the listening socket. Each accepted connection is
 * paused at once (so no line can reach the listener) and a connection
 * actor is started for it under /chat/conns; the socket is then given to
 * that actor, which resumes it. The listener restarts in place if it
 * fails (its socket is closed and opened again: connections already
 * handed over are not its own and go on).
 *
 * The spawner is a plain thread: tr_sup_start_child_wait waits for the
 * supervisor's answer, which an actor must never do, so actors send it
 * requests and it reports each child back by message.
 */
#include "chat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the spawner ---- */

static pthread_t spawner;

static void
serve(chat_server *srv, const chat_spawn *q)
{
    tr_ctx *ctx = tr_system_ctx(srv->sys);
    chat_started a = {.cookie = q->cookie, .child = TR_ADDR_NONE};

    a.rc = tr_sup_start_child_wait(ctx, q->sup, NULL, q->arg, tr_ms(10000),
                                   &a.child);
    if (tr_send(ctx, q->reply_to, q->reply_type, &a, sizeof(a)) != TR_OK &&
        a.rc == TR_OK) {
        /* Nobody to hand it to: it stops itself when no socket comes
         * (connections), or its requester forgot it (rooms). */
    }
}

static void *
spawner_main(void *arg)
{
    chat_server *srv = arg;
    chat_spawn q;
    size_t len;

    while (tr_mailbox_recv_wait(srv->spawns, &q, sizeof(q), &len, TR_FOREVER) ==
           TR_OK) {
        serve(srv, &q);
    }
    return NULL;
}

unsigned
chat_serve_spawns(chat_server *srv)
{
    chat_spawn q;
    size_t len;
    unsigned n = 0;

    while (tr_mailbox_recv_wait(srv->spawns, &q, sizeof(q), &len, TR_NOWAIT) ==
           TR_OK) {
        serve(srv, &q);
        n++;
    }
    return n;
}

int
chat_spawn_child(chat_server *srv, tr_addr sup, const void *arg,
                 tr_addr reply_to, uint32_t reply_type, uint64_t cookie)
{
    chat_spawn q = {.sup = sup,
                    .arg = arg,
                    .reply_to = reply_to,
                    .reply_type = reply_type,
                    .cookie = cookie};
    return tr_mailbox_send(srv->spawns, &q, sizeof(q));
}

/* ---- the listener ---- */

typedef struct listener {
    chat_server *srv;
    tr_io io;
    tr_addr conns;
} listener;

static int
lst_init(tr_ctx *ctx, void *state, const void *arg)
{
    listener *l = state;
    chat_server *srv = (chat_server *)arg;
    tr_io_listen_opts o = {
        .backlog = 4096,
        .conn =
            {
                .framing = TR_IO_LINES,
                .max_frame = CHAT_MAX_LINE,
                .write_hwm = CHAT_WRITE_HWM,
                .on_full = TR_IO_FULL_CLOSE,
                .read_batch = 32,
                /* A client's FIN ends its input only: what it asked
                 * before is still answered (session.c). */
                .half_close = true,
                /* The kernel's part of a reader's backlog: enough for
                 * chat traffic, and a reader that stops is found out
                 * after about half a megabyte, not several. */
                .sndbuf = 65536,
            },
    };
    uint16_t port = 0;
    int rc;

    l->srv = srv;
    rc = tr_io_listen(ctx, srv->cfg.ip, srv->cfg.port, &o, &l->io);
    atomic_store(&srv->listen_rc, rc);
    if (rc != TR_OK) {
        return rc;
    }
    (void)tr_io_port(srv->sys, l->io, &port);
    atomic_store(&srv->port, port);
    return TR_OK;
}

static int
lst_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    listener *l = state;

    if (msg->type == TR_MSG_IO) {
        const tr_io_event *ev = msg->data;
        if (ev->kind != TR_IO_ACCEPTED) {
            return TR_OK; /* accept errors are retried by troupe */
        }
        atomic_fetch_add_explicit(&l->srv->accepted, 1, memory_order_relaxed);
        /* Nothing is read until its own actor has it. */
        (void)tr_io_pause(ctx, ev->peer);
        if ((tr_addr_is_none(l->conns) &&
             tr_whereis_path(l->srv->sys, "/chat/conns", &l->conns) != TR_OK) ||
            chat_spawn_child(l->srv, l->conns, l->srv, tr_self(ctx),
                             LST_STARTED, ev->peer.id) != TR_OK) {
            (void)tr_io_close(ctx, ev->peer);
        }
        return TR_OK;
    }
    if (msg->type == LST_STARTED && msg->size == sizeof(chat_started)) {
        const chat_started *s = msg->data;
        tr_io peer = {s->cookie};
        if (s->rc != TR_OK) {
            static const char busy[] = "Server is busy, try again later\n";
            chat_ignore(tr_io_write(ctx, peer, busy, sizeof(busy) - 1));
            (void)tr_io_close(ctx, peer);
        } else if (tr_io_give(ctx, peer, s->child) != TR_OK) {
            /* The client left meanwhile (or we restarted). */
            (void)tr_io_close(ctx, peer);
            (void)tr_actor_stop(ctx, s->child);
        }
    }
    return TR_OK;
}

const tr_behaviour chat_listener_behaviour = {
    .name = "chat_listener",
    .state_size = sizeof(listener),
    .init = lst_init,
    .handle = lst_handle,
};

/* ---- the tree ---- */

static const tr_child_spec room_template = {
    .id = "room",
    .behaviour = &chat_room_behaviour,
    .restart = TR_TRANSIENT,
    .shutdown_ms = 2000,
};

static const tr_child_spec conn_template = {
    .id = "conn",
    .behaviour = &chat_session_behaviour,
    .restart = TR_TEMPORARY,
    .shutdown_ms = 2000,
};

static const tr_sup_spec rooms_spec = {
    .name = "rooms",
    .strategy = TR_SIMPLE_ONE_FOR_ONE,
    .max_restarts = 100,
    .period_ms = 1000,
    .children = &room_template,
    .len = 1,
};

static const tr_sup_spec conns_spec = {
    .name = "conns",
    .strategy = TR_SIMPLE_ONE_FOR_ONE,
    .max_restarts = 1000,
    .period_ms = 1000,
    .children = &conn_template,
    .len = 1,
};

/* The top specs name `srv`, so they are filled in at start. */
static tr_child_spec top_children[4];

int
chat_start(chat_server *srv)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_addr top;
    int rc;

    cfg.workers = srv->cfg.workers;
    cfg.io_threads = srv->cfg.io_threads;
    cfg.sim = srv->cfg.sim;
    if ((rc = tr_system_start(&cfg, &srv->sys)) != TR_OK) {
        return rc;
    }
    if ((rc = tr_mailbox_create(0, &srv->spawns)) != TR_OK) {
        (void)tr_system_shutdown(srv->sys, tr_ms(1000));
        return rc;
    }
    if (srv->cfg.sim == NULL &&
        pthread_create(&spawner, NULL, spawner_main, srv) != 0) {
        tr_mailbox_destroy(srv->spawns);
        (void)tr_system_shutdown(srv->sys, tr_ms(1000));
        return TR_ESTATE;
    }
    top_children[0] = (tr_child_spec){
        .id = "registry", .behaviour = &chat_registry_behaviour, .arg = srv};
    top_children[1] = (tr_child_spec){.id = "rooms",
                                      .behaviour = &tr_supervisor_behaviour,
                                      .arg = &rooms_spec,
                                      .kind = TR_SUPERVISOR};
    top_children[2] = (tr_child_spec){.id = "conns",
                                      .behaviour = &tr_supervisor_behaviour,
                                      .arg = &conns_spec,
                                      .kind = TR_SUPERVISOR};
    top_children[3] = (tr_child_spec){
        .id = "listener", .behaviour = &chat_listener_behaviour, .arg = srv};
    tr_sup_spec top_spec = {
        .name = "chat",
        .strategy = TR_REST_FOR_ONE,
        .max_restarts = 10,
        .period_ms = 10000,
        .children = top_children,
        .len = 4,
    };
    rc = tr_sup_start(tr_system_ctx(srv->sys), &top_spec, NULL, &top);
    if (rc != TR_OK) {
        (void)chat_stop(srv);
        return rc;
    }
    return TR_OK;
}

/*
 * Let the clients go before the system stops: no new connection, and
 * every connection says "Server is shutting down" and lingers until its
 * client has been sent everything (session.c), for CHAT_LINGER_MS at
 * most. Connections still there after that, or started meanwhile, are
 * stopped by the shutdown, which has them say it too.
 */
static void
let_clients_go(chat_server *srv)
{
    tr_ctx *ctx = tr_system_ctx(srv->sys);
    tr_addr top;
    tr_addr conns;
    tr_child_info *kids;
    size_t n = 0;

    if (tr_whereis_path(srv->sys, "/chat", &top) != TR_OK ||
        tr_whereis_path(srv->sys, "/chat/conns", &conns) != TR_OK) {
        return;
    }
    (void)tr_sup_terminate_child_wait(ctx, top, "listener", tr_ms(2000));
    /* Before any connection is told: the departures that follow, each
     * a DOWN queued behind this, go unannounced. */
    tr_addr reg;
    if (tr_whereis_path(srv->sys, "/chat/registry", &reg) == TR_OK) {
        chat_ignore(tr_send(ctx, reg, REG_SHUTDOWN, NULL, 0));
    }
    if (tr_sup_which_children_wait(ctx, conns, NULL, 0, &n, tr_ms(2000)) !=
            TR_OK ||
        n == 0 || (kids = calloc(n, sizeof(*kids))) == NULL) {
        return;
    }
    size_t cap = n;
    if (tr_sup_which_children_wait(ctx, conns, kids, cap, &n, tr_ms(2000)) ==
        TR_OK) {
        for (size_t i = 0; i < n && i < cap; i++) {
            chat_ignore(tr_send(ctx, kids[i].addr, CONN_SHUTDOWN, NULL, 0));
        }
    }
    free(kids);
    /* Until the last has gone, or its lingering time (and a margin) is
     * up. */
    for (int waited = 0; waited < CHAT_LINGER_MS + 500; waited += 10) {
        tr_child_counts c;
        if (tr_sup_count_children_wait(ctx, conns, &c, tr_ms(1000)) != TR_OK ||
            c.active == 0) {
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int
chat_stop(chat_server *srv)
{
    if (srv->cfg.sim == NULL) {
        let_clients_go(srv);
    }
    /* Children stop in reverse order: the listener, every connection
     * (each tells its client), the rooms, the registry. */
    int rc = tr_system_shutdown(srv->sys, tr_ms(5000));

    tr_mailbox_close(srv->spawns);
    if (srv->cfg.sim == NULL) {
        pthread_join(spawner, NULL);
    }
    tr_mailbox_destroy(srv->spawns);
    chat_registry_release_all();
    return rc;
}

size_t
chat_admin_report(chat_server *srv, char *buf, size_t cap)
{
    size_t at = 0;
    size_t len = 0;
    tr_system_stats st;
    tr_io_stats io;
    char *tree = malloc(cap);

    if (tree == NULL || cap < 512) {
        free(tree);
        return 0;
    }
    at += (size_t)snprintf(buf + at, cap - at, "Supervision tree:\n");
    /* Room for the counters after it: the tree says what it left out. */
    if (tr_inspect_snapshot(srv->sys, TR_INSPECT_TEXT, tree, cap / 2, &len) ==
        TR_EINVAL) {
        len = 0;
        tree[0] = '\0';
    }
    /* Every node, but only the first few connections: a server with
     * thousands would print nothing else. */
    unsigned conns = 0;
    for (char *l = tree; *l != '\0' && at < cap;) {
        char *nl = strchr(l, '\n');
        size_t n = nl != NULL ? (size_t)(nl - l) : strlen(l);
        bool conn = memmem(l, n, "/chat/conns/", 12) != NULL;
        if (conn && conns++ >= 3) {
            l += n + (nl != NULL);
            continue;
        }
        if (!conn && conns > 3) {
            at += (size_t)snprintf(buf + at, cap - at,
                                   "    ... and %u more connections\n",
                                   conns - 3);
            conns = 0;
        }
        if (at < cap) {
            at += (size_t)snprintf(buf + at, cap - at, "%.*s\n", (int)n, l);
        }
        l += n + (nl != NULL);
    }
    free(tree);
    (void)tr_system_stats_get(srv->sys, &st);
    (void)tr_io_stats_get(srv->sys, &io);
    at += (size_t)snprintf(
        buf + at, cap - at,
        "Counters: connections=%llu accepted=%llu rooms=%llu said=%llu "
        "lagged=%llu too_long=%llu bad_utf8=%llu crashes=%llu\n",
        (unsigned long long)atomic_load(&srv->connections),
        (unsigned long long)atomic_load(&srv->accepted),
        (unsigned long long)atomic_load(&srv->rooms),
        (unsigned long long)atomic_load(&srv->said),
        (unsigned long long)atomic_load(&srv->lagged),
        (unsigned long long)atomic_load(&srv->too_long),
        (unsigned long long)atomic_load(&srv->bad_utf8),
        (unsigned long long)atomic_load(&srv->crashes));
    if (at < cap) {
        at += (size_t)snprintf(
            buf + at, cap - at,
            "Runtime: workers=%u actors=%llu handled=%llu failed=%llu "
            "io_loops=%u sockets=%llu bytes_in=%llu bytes_out=%llu\n",
            st.workers, (unsigned long long)st.live_actors,
            (unsigned long long)st.messages_handled,
            (unsigned long long)st.failed, io.loops,
            (unsigned long long)io.open, (unsigned long long)io.bytes_in,
            (unsigned long long)io.bytes_out);
    }
    return at < cap ? at : cap - 1;
}
