/*
 * A connection: one actor per client, owning its socket.
 *
 * The socket cuts lines (LF, a CR before it removed, 400 bytes at most:
 * a longer line arrives as one TR_IO_TOO_LONG and is dropped to its end,
 * however long, in bounded memory). A line that is not valid UTF-8 is
 * dropped, and the connection goes on. Commands that need the registry
 * pause the socket until the answer comes, so the lines that follow a
 * command are handled after it, in order.
 *
 * Room traffic arrives through the room's broadcast channel: a value per
 * line, written to the client as it comes. A member that falls more than
 * 1024 values behind gets a lag (written as "Server is very busy and
 * dropped <n> messages, sorry!") and resumes with the oldest value kept;
 * it never slows the room nor the others down. A client that stops
 * reading altogether fills its output buffer and is disconnected
 * (TR_IO_FULL_CLOSE).
 *
 * Leaving (/quit, the client's FIN, the server's shutdown) is graceful:
 * every command read before it is answered, the room is told, and the
 * connection lingers until the client has been sent everything (our FIN
 * follows the last byte) and closes its side, or CHAT_LINGER_MS pass.
 * Input that arrives meanwhile is read and dropped, so that closing does
 * not reset the connection under what the client has yet to read.
 */
#include "chat.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CALL_MS = 10000, ADOPT_MS = 10000 };

typedef struct session {
    chat_server *srv;
    tr_io io;
    tr_addr registry;
    tr_addr room;
    uint64_t epoch; /* the room's membership changes when we joined */
    tr_broadcast_sub *sub;
    bool adopted;
    bool busy;   /* a call is in flight: input paused */
    bool rejoin; /* the room's channel closed: join it again */
    bool quiet;  /* the join in flight is such a rejoin */
    bool eof;    /* the client sent its FIN: leave once idle */
    bool leaving;
    bool told;             /* "Server is shutting down" was written */
    uint64_t linger_until; /* tr_now_ms when leaving gives up waiting */
    char name[CHAT_NAME_MAX + 4];
    char room_name[CHAT_NAME_MAX + 4];
    char asked[CHAT_NAME_MAX + 4]; /* the name or room being asked for */
    char *pend;                    /* output not yet written (see flush) */
    size_t plen, pcap;
    bool flush_due;
} session;

static const char help_text[] = "Server commands\n"
                                "  /help - print this message\n"
                                "  /name {name} - change name\n"
                                "  /rooms - list rooms\n"
                                "  /join {room} - joins room\n"
                                "  /users - list users in room\n"
                                "  /quit - quit server\n";
static const char admin_help[] =
    "  /admin - print the supervision tree and counters\n";

static const tr_broadcast_sub_types sub_types = {
    .value_type = CONN_VALUE,
    .lagged_type = CONN_LAGGED,
    .closed_type = CONN_CLOSED,
};

/* ---- writing ---- */

/*
 * Output waits in `pend` until the CONN_FLUSH this actor sends itself is
 * handled, on its next run: everything a run produced (a batch of room
 * lines, a greeting) leaves in one write, one system call. A member that
 * receives many lines at once (a busy room, a crowd joining) pays for
 * the system call once per batch, not once per line.
 */
static void
flush(tr_ctx *ctx, session *s)
{
    s->flush_due = false;
    if (s->plen > 0) {
        /* TR_ECLOSED: the connection is ending; its TR_IO_CLOSED
         * follows. */
        chat_ignore(tr_io_write(ctx, s->io, s->pend, s->plen));
        s->plen = 0;
    }
    /* An idle connection keeps no buffer. */
    free(s->pend);
    s->pend = NULL;
    s->pcap = 0;
}

static void
put(tr_ctx *ctx, session *s, const char *text, size_t len)
{
    if (s->plen + len > s->pcap) {
        size_t cap = s->pcap != 0 ? s->pcap : 1024;
        while (cap < s->plen + len) {
            cap *= 2;
        }
        char *p = realloc(s->pend, cap);
        if (p == NULL) {
            flush(ctx, s);
            chat_ignore(tr_io_write(ctx, s->io, text, len));
            return;
        }
        s->pend = p;
        s->pcap = cap;
    }
    memcpy(s->pend + s->plen, text, len);
    s->plen += len;
    if (!s->flush_due) {
        s->flush_due = true;
        if (tr_send(ctx, tr_self(ctx), CONN_FLUSH, NULL, 0) != TR_OK) {
            flush(ctx, s);
        }
    }
}

static void
line(tr_ctx *ctx, session *s, const char *text, size_t len)
{
    put(ctx, s, text, len);
    put(ctx, s, "\n", 1);
}

static void
linef(tr_ctx *ctx, session *s, const char *fmt, ...)
{
    char buf[CHAT_VALUE_MAX + 64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0) {
        line(ctx, s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
    }
}

static void
help(tr_ctx *ctx, session *s)
{
    put(ctx, s, help_text, sizeof(help_text) - 1);
    if (s->srv->cfg.admin) {
        put(ctx, s, admin_help, sizeof(admin_help) - 1);
    }
}

/* ---- leaving ---- */

enum { LINGER_TICK_MS = 10 };

/* Leaving: close and stop once the client has everything and has closed
 * its side, or the time is up. */
static int
linger_check(tr_ctx *ctx, session *s)
{
    size_t left = 0;

    if (tr_io_buffered(ctx, s->io, &left) != TR_OK || (s->eof && left == 0) ||
        tr_now_ms(tr_ctx_system(ctx)) >= s->linger_until) {
        (void)tr_io_close(ctx, s->io);
        return tr_stop(ctx);
    }
    return tr_send_after(ctx, tr_self(ctx), CONN_LINGER, NULL, 0,
                         LINGER_TICK_MS, NULL);
}

/* Stop taking part: no more room traffic, what is written goes out, our
 * FIN after it, and input is read (and dropped) until the client's. */
static int
quit(tr_ctx *ctx, session *s)
{
    if (s->leaving) {
        return TR_OK;
    }
    s->leaving = true;
    if (s->sub != NULL) {
        (void)tr_broadcast_unsubscribe(ctx, s->sub);
        s->sub = NULL;
    }
    flush(ctx, s);
    if (!s->adopted || tr_io_shutdown(ctx, s->io) != TR_OK) {
        (void)tr_io_close(ctx, s->io);
        return tr_stop(ctx);
    }
    (void)tr_io_resume(ctx, s->io);
    /* The system's clock: a simulated run stays its seed's. */
    s->linger_until = tr_now_ms(tr_ctx_system(ctx)) + CHAT_LINGER_MS;
    return linger_check(ctx, s);
}

/* ---- calls to the registry ---- */

static int
ask(tr_ctx *ctx, session *s, uint32_t type, const void *data, size_t size,
    tr_reply_fn fn)
{
    s->busy = true;
    (void)tr_io_pause(ctx, s->io);
    if (tr_call(ctx, s->registry, type, data, size, tr_ms(CALL_MS), fn, NULL) !=
        TR_OK) {
        return quit(ctx, s);
    }
    return TR_OK;
}

static int join_room(tr_ctx *ctx, session *s, const char *room, bool quiet);

/* After a call: read on (or first join again, if the room's channel
 * closed meanwhile; or leave, if the client has sent its FIN). */
static void
done(tr_ctx *ctx, session *s)
{
    s->busy = false;
    if (s->eof) {
        (void)quit(ctx, s);
        return;
    }
    if (s->rejoin && s->room_name[0] != '\0') {
        (void)join_room(ctx, s, s->room_name, true);
        return;
    }
    (void)tr_io_resume(ctx, s->io);
}

/* Move to the room of `j`: its channel from now on. */
static bool
enter(tr_ctx *ctx, session *s, const chat_joined *j)
{
    int rc;

    if (s->sub != NULL) {
        (void)tr_broadcast_unsubscribe(ctx, s->sub);
        s->sub = NULL;
    }
    rc = tr_broadcast_subscribe_actor(ctx, j->tx, &sub_types, &s->sub);
    tr_broadcast_tx_destroy(j->tx);
    /* Our handle is gone: the registry need not destroy it for us. */
    chat_ignore(tr_send(ctx, s->registry, REG_SUBSCRIBED, NULL, 0));
    if (rc != TR_OK) {
        s->sub = NULL;
        return false;
    }
    s->room = j->room_addr;
    s->epoch = j->epoch;
    snprintf(s->room_name, sizeof(s->room_name), "%s", j->room);
    return true;
}

static const chat_joined *
joined_of(const tr_call_result *res)
{
    if (res->status != TR_OK || res->reply == NULL ||
        res->reply->size != sizeof(chat_joined)) {
        return NULL;
    }
    return res->reply->data;
}

static int
on_hello(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    session *s = state;
    const chat_joined *j = joined_of(res);

    if (s->leaving) {
        return TR_OK; /* what it would say comes too late */
    }

    (void)arg;
    if (j == NULL || j->rc != TR_OK) {
        if (j != NULL && j->tx != NULL) {
            tr_broadcast_tx_destroy(j->tx);
        }
        linef(ctx, s, "Server is full, try again later");
        return quit(ctx, s);
    }
    snprintf(s->name, sizeof(s->name), "%s", j->name);
    help(ctx, s);
    linef(ctx, s, "You are %s", s->name);
    if (!enter(ctx, s, j)) {
        return quit(ctx, s);
    }
    linef(ctx, s, "You joined %s", s->room_name);
    done(ctx, s);
    return TR_OK;
}

static int
on_join(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    session *s = state;
    const chat_joined *j = joined_of(res);

    if (s->leaving) {
        return TR_OK; /* what it would say comes too late */
    }

    (void)arg;
    if (j == NULL || j->rc != TR_OK || !enter(ctx, s, j)) {
        if (j != NULL && j->rc != TR_OK && j->tx != NULL) {
            tr_broadcast_tx_destroy(j->tx);
        }
        return quit(ctx, s);
    }
    s->rejoin = false; /* a fresh subscription */
    if (!s->quiet) {
        linef(ctx, s, "You joined %s", s->room_name);
    }
    done(ctx, s);
    return TR_OK;
}

static int
on_rename(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    session *s = state;
    int rc = TR_ECLOSED;

    if (s->leaving) {
        return TR_OK; /* what it would say comes too late */
    }

    (void)arg;
    if (res->status == TR_OK && res->reply->size == sizeof(int)) {
        memcpy(&rc, res->reply->data, sizeof(rc));
    }
    if (rc == TR_OK) {
        /* The room (us included) hears "<old> is now <new>". */
        snprintf(s->name, sizeof(s->name), "%s", s->asked);
    } else if (rc == TR_EEXIST) {
        linef(ctx, s, "%s is already taken", s->asked);
    } else {
        return quit(ctx, s);
    }
    done(ctx, s);
    return TR_OK;
}

static int
on_text(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    session *s = state;

    (void)arg;
    if (s->leaving) {
        return TR_OK; /* what it would say comes too late */
    }
    if (res->status != TR_OK) {
        return quit(ctx, s);
    }
    line(ctx, s, res->reply->data, res->reply->size);
    done(ctx, s);
    return TR_OK;
}

static int
on_quit(tr_ctx *ctx, void *state, const tr_call_result *res, void *arg)
{
    (void)res;
    (void)arg;
    return quit(ctx, state);
}

static int
join_room(tr_ctx *ctx, session *s, const char *room, bool quiet)
{
    chat_name n;

    s->quiet = quiet;
    memset(&n, 0, sizeof(n));
    snprintf(n.s, sizeof(n.s), "%s", room);
    return ask(ctx, s, REG_JOIN, &n, sizeof(n), on_join);
}

/* ---- lines ---- */

/* Valid UTF-8: no stray continuation, no overlong form, no surrogate,
 * nothing past U+10FFFF. */
static bool
utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (n - i - 1 < k) {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            unsigned char b = p[i + j];
            if ((b & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (b & 0x3Fu);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int
command(tr_ctx *ctx, session *s, const char *text, size_t len)
{
    size_t c = 0;
    while (c < len && !is_space(text[c])) {
        c++;
    }
    size_t a = c;
    while (a < len && is_space(text[a])) {
        a++;
    }
    size_t e = len;
    while (e > a && is_space(text[e - 1])) {
        e--;
    }
    const char *arg = text + a;
    size_t alen = e - a;

#define IS(word) (c == sizeof(word) - 1 && memcmp(text, word, c) == 0)
    if (IS("/help")) {
        help(ctx, s);
    } else if (IS("/name")) {
        if (!chat_name_ok(arg, alen)) {
            linef(ctx, s, "Name must be 2 - 20 alphanumeric chars");
            return TR_OK;
        }
        chat_name n;
        memset(&n, 0, sizeof(n));
        memcpy(n.s, arg, alen);
        memcpy(s->asked, n.s, sizeof(s->asked));
        return ask(ctx, s, REG_RENAME, &n, sizeof(n), on_rename);
    } else if (IS("/join")) {
        if (!chat_name_ok(arg, alen)) {
            linef(ctx, s, "Room must be 2 - 20 alphanumeric chars");
            return TR_OK;
        }
        if (alen == strlen(s->room_name) &&
            memcmp(arg, s->room_name, alen) == 0) {
            linef(ctx, s, "You are in %s", s->room_name);
            return TR_OK;
        }
        char room[CHAT_NAME_MAX + 4];
        memcpy(room, arg, alen);
        room[alen] = '\0';
        return join_room(ctx, s, room, false);
    } else if (IS("/rooms")) {
        return ask(ctx, s, REG_ROOMS, NULL, 0, on_text);
    } else if (IS("/users")) {
        return ask(ctx, s, REG_USERS, NULL, 0, on_text);
    } else if (IS("/quit")) {
        return ask(ctx, s, REG_QUIT, NULL, 0, on_quit);
    } else if (IS("/admin") && s->srv->cfg.admin) {
        char *report = malloc(1 << 16);
        if (report != NULL) {
            size_t n = chat_admin_report(s->srv, report, 1 << 16);
            put(ctx, s, report, n);
            free(report);
        }
    } else if (IS("/crash") && s->srv->cfg.faults) {
        atomic_fetch_add_explicit(&s->srv->crashes, 1, memory_order_relaxed);
        return tr_fail(ctx, TR_ESTATE, "connection crash requested");
    } else if (IS("/crashroom") && s->srv->cfg.faults) {
        atomic_fetch_add_explicit(&s->srv->crashes, 1, memory_order_relaxed);
        chat_ignore(tr_send(ctx, s->room, ROOM_CRASH, NULL, 0));
    } else if (IS("/stall") && s->srv->cfg.faults) {
        /* Block this actor's worker: its channel falls behind. */
        long ms = 0;
        for (size_t i = 0; i < alen && arg[i] >= '0' && arg[i] <= '9'; i++) {
            ms = ms * 10 + (arg[i] - '0');
        }
        if (ms > 10000) {
            ms = 10000;
        }
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else {
        linef(ctx, s, "Unrecognized command %.*s, try /help", (int)c, text);
    }
#undef IS
    return TR_OK;
}

static int
on_line(tr_ctx *ctx, session *s, const char *text, size_t len)
{
    if (!utf8_ok((const unsigned char *)text, len)) {
        atomic_fetch_add_explicit(&s->srv->bad_utf8, 1, memory_order_relaxed);
        return TR_OK; /* dropped: see the top comment */
    }
    if (len > 0 && text[0] == '/') {
        return command(ctx, s, text, len);
    }
    chat_say m;
    m.origin = tr_self(ctx).id;
    memcpy(m.name, s->name, sizeof(m.name));
    m.len = (uint32_t)len;
    memcpy(m.text, text, len);
    atomic_fetch_add_explicit(&s->srv->said, 1, memory_order_relaxed);
    /* A room that has just ended: its channel closes, and we join again. */
    chat_ignore(
        tr_send(ctx, s->room, ROOM_SAY, &m, offsetof(chat_say, text) + len));
    return TR_OK;
}

/* ---- the behaviour ---- */

static int
session_init(tr_ctx *ctx, void *state, const void *arg)
{
    session *s = state;

    s->srv = (chat_server *)arg;
    /* The listener gives us the socket right after we start; if it never
     * does (it restarted meanwhile), stop. */
    return tr_send_after(ctx, tr_self(ctx), CONN_WAIT_OVER, NULL, 0, ADOPT_MS,
                         NULL);
}

static int
on_io(tr_ctx *ctx, session *s, const tr_io_event *ev)
{
    switch (ev->kind) {
    case TR_IO_ADOPTED:
        s->io = ev->io;
        s->adopted = true;
        if (tr_whereis(s->srv->sys, "chat.registry", &s->registry) != TR_OK) {
            return quit(ctx, s);
        }
        return ask(ctx, s, REG_HELLO, NULL, 0, on_hello);
    case TR_IO_DATA:
        return s->leaving ? TR_OK : on_line(ctx, s, ev->data, ev->len);
    case TR_IO_EOF:
        /* The client has said all it will: answer what it asked, then
         * leave (the registry learns it from our end: one call less for
         * a connection that comes and goes at once). */
        s->eof = true;
        if (s->leaving) {
            size_t left = 0;
            if (tr_io_buffered(ctx, s->io, &left) != TR_OK || left == 0) {
                (void)tr_io_close(ctx, s->io);
                return tr_stop(ctx);
            }
            return TR_OK; /* CONN_LINGER looks again */
        }
        return s->busy ? TR_OK : quit(ctx, s);
    case TR_IO_TOO_LONG:
        if (s->leaving) {
            return TR_OK;
        }
        atomic_fetch_add_explicit(&s->srv->too_long, 1, memory_order_relaxed);
        linef(ctx, s, "Messages can only be %d chars long", CHAT_MAX_LINE);
        return TR_OK;
    case TR_IO_CLOSED:
        /* A reset, an overflow: as /quit, with nothing left to send. */
        return tr_stop(ctx);
    default:
        return TR_OK;
    }
}

static int
session_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    session *s = state;

    if (s->leaving && msg->type != TR_MSG_IO && msg->type != CONN_LINGER) {
        return TR_OK; /* room traffic, a flush of nothing, a shutdown */
    }
    switch (msg->type) {
    case TR_MSG_IO:
        return on_io(ctx, s, msg->data);
    case CONN_VALUE: {
        const chat_value *v = msg->data;
        if (msg->size < CHAT_VALUE_HEAD ||
            v->len > msg->size - CHAT_VALUE_HEAD) {
            return TR_OK;
        }
        if (v->kind != VAL_TEXT &&
            (v->origin == tr_self(ctx).id || v->epoch <= s->epoch)) {
            /* Our own "joined" or "left", or one from before we joined
             * that the room put on the channel after we subscribed. */
            return TR_OK;
        }
        line(ctx, s, v->text, v->len);
        return TR_OK;
    }
    case CONN_LAGGED: {
        uint64_t n = 0;
        memcpy(&n, msg->data, sizeof(n));
        atomic_fetch_add_explicit(&s->srv->lagged, n, memory_order_relaxed);
        linef(ctx, s, "Server is very busy and dropped %llu messages, sorry!",
              (unsigned long long)n);
        return TR_OK;
    }
    case CONN_CLOSED:
        /* The room ended under us: join it again (a new one). */
        if (s->sub != NULL) {
            (void)tr_broadcast_unsubscribe(ctx, s->sub);
            s->sub = NULL;
        }
        s->rejoin = true;
        if (!s->busy && s->room_name[0] != '\0') {
            return join_room(ctx, s, s->room_name, true);
        }
        return TR_OK;
    case CONN_FLUSH:
        flush(ctx, s);
        return TR_OK;
    case CONN_WAIT_OVER:
        return s->adopted ? TR_OK : tr_stop(ctx);
    case CONN_LINGER:
        return s->leaving ? linger_check(ctx, s) : TR_OK;
    case CONN_SHUTDOWN:
        /* The server stops: say so, and leave (the registry learns it
         * from our end). */
        if (!s->adopted) {
            return tr_stop(ctx);
        }
        linef(ctx, s, "Server is shutting down");
        s->told = true;
        return quit(ctx, s);
    default:
        return TR_OK;
    }
}

static void
session_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    session *s = state;

    /* Shutdown (or our supervisor's stop) that found us still here: say
     * so; the socket closes with us, with what the kernel takes of what
     * is buffered (chat_stop lets clients leave first, as above). */
    s->flush_due = true; /* no CONN_FLUSH now: written right below */
    if (exit->kind == TR_EXIT_SHUTDOWN && s->adopted && !s->told &&
        !s->leaving) {
        linef(ctx, s, "Server is shutting down");
    }
    flush(ctx, s);
}

const tr_behaviour chat_session_behaviour = {
    .name = "chat_conn",
    .state_size = sizeof(session),
    .init = session_init,
    .handle = session_handle,
    .stop = session_stop,
};
