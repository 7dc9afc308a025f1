/*
 * The chat server (samples/chat) over loopback, as its users see it: the
 * real binary runs in a child process on a port of its own, and every
 * test drives it through client sockets, checking each rule's exact text.
 * Every test ends by stopping the server with SIGTERM and expecting a
 * clean exit (status 0: no leak, no sanitizer report).
 *
 * Usage: chat_test PATH_TO_sample_chat
 */
#include "support/tr_net.h"
#include "support/tr_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

enum { WAIT_MS = 10000, MAX_CLIENTS = 64 };

static const char *server_path;

/* Servers still running: a failed test leaves one behind, which the
 * teardown kills. */
static pid_t running[8];

static const char *const help[] = {
    "Server commands",
    "  /help - print this message",
    "  /name {name} - change name",
    "  /rooms - list rooms",
    "  /join {room} - joins room",
    "  /users - list users in room",
    "  /quit - quit server",
};

typedef struct server {
    pid_t pid;
    uint16_t port;
    int out;
} server;

typedef struct client {
    tr_net_lines r;
    char name[32];
} client;

/* ---- the server ---- */

static void
server_start_args(server *s, const char *const *extra)
{
    int p[2];
    const char *argv[16] = {server_path, "-p", "0", "-w", "2"};
    int n = 5;

    for (; extra != NULL && *extra != NULL; extra++) {
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    assert_int_equal(pipe(p), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(server_path, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    s->out = p[0];
    for (int i = 0; i < 8; i++) {
        if (running[i] == 0) {
            running[i] = s->pid;
            break;
        }
    }
    tr_net_lines r;
    char line[256];
    tr_net_lines_init(&r, s->out);
    assert_true(tr_net_read_line(&r, line, sizeof(line), WAIT_MS) > 0);
    const char *colon = strrchr(line, ':');
    assert_non_null(colon);
    assert_non_null(strstr(line, "chat: listening on 127.0.0.1:"));
    s->port = (uint16_t)atoi(colon + 1);
    assert_int_not_equal(s->port, 0);
}

static void
server_start(server *s)
{
    server_start_args(s, NULL);
}

/* Wait for the server to exit (a signal was sent); the exit status, or
 * 128 + the signal that ended it. */
static int
server_wait(server *s)
{
    int status = 0;

    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    for (int i = 0; i < 8; i++) {
        if (running[i] == s->pid) {
            running[i] = 0;
        }
    }
    close(s->out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SIGTERM; the exit status. */
static int
server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    return server_wait(s);
}

static int
server_fds(const server *s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)s->pid);
    int n = 0;
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* ---- clients ---- */

static bool
expect(client *c, const char *want)
{
    return tr_net_expect(&c->r, want, WAIT_MS);
}

static void
say(client *c, const char *text)
{
    assert_true(tr_net_send_str(c->r.fd, text));
}

static bool
name_ok(const char *n)
{
    size_t len = strlen(n);
    int caps = 0;
    if (len < 8 || len > 12) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (n[i] >= 'A' && n[i] <= 'Z') {
            caps++;
        } else if (!(n[i] >= 'a' && n[i] <= 'z')) {
            return false;
        }
    }
    return caps == 2 && n[0] >= 'A' && n[0] <= 'Z';
}

/* Connect and read the greeting: the help, the name, the room. */
static void
join_as(const server *s, client *c, int help_lines)
{
    char got[256];
    int fd = tr_net_connect("127.0.0.1", s->port);

    assert_true(fd >= 0);
    tr_net_lines_init(&c->r, fd);
    for (int i = 0; i < help_lines; i++) {
        assert_true(tr_net_read_line(&c->r, got, sizeof(got), WAIT_MS) >= 0);
        if (i < 7) {
            assert_string_equal(got, help[i]);
        }
    }
    assert_true(tr_net_read_line(&c->r, got, sizeof(got), WAIT_MS) >= 0);
    assert_true(strncmp(got, "You are ", 8) == 0);
    snprintf(c->name, sizeof(c->name), "%.31s", got + 8);
    assert_true(name_ok(c->name));
    assert_true(expect(c, "You joined main"));
}

static void
join(const server *s, client *c)
{
    join_as(s, c, 7);
}

static void
leave(client *c)
{
    close(c->r.fd);
}

/* Discard lines until none comes for a moment. */
static void
drain(client *c)
{
    char got[4096];
    while (!tr_net_quiet(&c->r, 150)) {
        if (tr_net_read_line(&c->r, got, sizeof(got), WAIT_MS) < 0) {
            return;
        }
    }
}

static bool
quiet(client *c)
{
    return tr_net_quiet(&c->r, 200);
}

static void
joined_fmt(char *buf, size_t cap, const client *c, const char *what)
{
    snprintf(buf, cap, "%s %s", c->name, what);
}

/* ---- tests ---- */

static void
test_chat_greets_with_help_a_unique_name_and_main(void **state)
{
    server s;
    client c[MAX_CLIENTS];
    char want[64];

    (void)state;
    server_start(&s);
    join(&s, &c[0]);
    join(&s, &c[1]);
    /* The rest of main hears of the newcomer; the newcomer does not. */
    joined_fmt(want, sizeof(want), &c[1], "joined");
    assert_true(expect(&c[0], want));
    assert_true(quiet(&c[1]));
    /* Names are never repeated while in use. */
    for (int i = 2; i < 40; i++) {
        join(&s, &c[i]);
        for (int k = 0; k < i; k++) {
            assert_string_not_equal(c[i].name, c[k].name);
        }
    }
    for (int i = 0; i < 40; i++) {
        leave(&c[i]);
    }
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_help_lists_seven_lines(void **state)
{
    server s;
    client c;

    (void)state;
    server_start(&s);
    join(&s, &c);
    say(&c, "/help\n");
    for (int i = 0; i < 7; i++) {
        assert_true(expect(&c, help[i]));
    }
    assert_true(quiet(&c));
    /* Arguments are ignored. */
    say(&c, "/help me\n");
    for (int i = 0; i < 7; i++) {
        assert_true(expect(&c, help[i]));
    }
    leave(&c);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_name_rules(void **state)
{
    server s;
    client a, b, c;
    char want[128];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    drain(&a);
    const char *bad[] = {"/name\n",
                         "/name a\n",
                         "/name   \n",
                         "/name bad!name\n",
                         "/name two words\n",
                         "/name 123456789012345678901\n",
                         "/name caf\xc3\xa9\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        say(&a, bad[i]);
        assert_true(expect(&a, "Name must be 2 - 20 alphanumeric chars"));
    }
    /* Taken, own name included: the sender only hears it. */
    snprintf(want, sizeof(want), "/name %s\n", a.name);
    say(&a, want);
    snprintf(want, sizeof(want), "%s is already taken", a.name);
    assert_true(expect(&a, want));
    snprintf(want, sizeof(want), "/name %s\n", b.name);
    say(&a, want);
    snprintf(want, sizeof(want), "%s is already taken", b.name);
    assert_true(expect(&a, want));
    assert_true(quiet(&b));
    /* A free name: the whole room, the sender included. */
    say(&a, "/name Zed_2-x\n");
    snprintf(want, sizeof(want), "%s is now Zed_2-x", a.name);
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    /* 2 and 20 characters are fine. */
    say(&b, "/name ab\n");
    snprintf(want, sizeof(want), "%s is now ab", b.name);
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    say(&b, "/name 12345678901234567890\n");
    assert_true(expect(&b, "ab is now 12345678901234567890"));
    assert_true(expect(&a, "ab is now 12345678901234567890"));
    /* The old name is free again. */
    join(&s, &c);
    drain(&a);
    drain(&b);
    snprintf(want, sizeof(want), "/name %s\n", a.name);
    say(&c, want);
    snprintf(want, sizeof(want), "%s is now %s", c.name, a.name);
    assert_true(expect(&c, want));
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    /* Messages carry the new name. */
    say(&a, "hi\n");
    assert_true(expect(&b, "Zed_2-x: hi"));
    leave(&a);
    leave(&b);
    leave(&c);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_join_rules(void **state)
{
    server s;
    client a, b, c;
    char want[128];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    join(&s, &c);
    drain(&a);
    drain(&b);
    say(&a, "/join x\n");
    assert_true(expect(&a, "Room must be 2 - 20 alphanumeric chars"));
    say(&a, "/join\n");
    assert_true(expect(&a, "Room must be 2 - 20 alphanumeric chars"));
    say(&a, "/join no way\n");
    assert_true(expect(&a, "Room must be 2 - 20 alphanumeric chars"));
    say(&a, "/join main\n");
    assert_true(expect(&a, "You are in main"));
    /* b goes first to r1, then a: main hears each leave, r1 the joins. */
    say(&b, "/join r1\n");
    assert_true(expect(&b, "You joined r1"));
    joined_fmt(want, sizeof(want), &b, "left");
    assert_true(expect(&a, want));
    assert_true(expect(&c, want));
    say(&a, "/join r1\n");
    assert_true(expect(&a, "You joined r1"));
    joined_fmt(want, sizeof(want), &a, "left");
    assert_true(expect(&c, want));
    joined_fmt(want, sizeof(want), &a, "joined");
    assert_true(expect(&b, want));
    assert_true(quiet(&a));
    say(&a, "/join r1\n");
    assert_true(expect(&a, "You are in r1"));
    /* Rooms are apart. */
    say(&c, "only main\n");
    snprintf(want, sizeof(want), "%s: only main", c.name);
    assert_true(expect(&c, want));
    say(&a, "only r1\n");
    snprintf(want, sizeof(want), "%s: only r1", a.name);
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    assert_true(quiet(&a));
    assert_true(quiet(&b));
    assert_true(quiet(&c));
    leave(&a);
    leave(&b);
    leave(&c);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_rooms_and_users_are_listed_in_order(void **state)
{
    server s;
    client c[7];
    const char *room[7] = {"a1", "a1", "a1", "bb", "bb", "cc", "cc"};
    const char *name[3] = {"cy", "Bo", "Al"};

    (void)state;
    server_start(&s);
    for (int i = 0; i < 7; i++) {
        join(&s, &c[i]);
    }
    /* Join in reverse so that the counts, not the order, decide. */
    for (int i = 6; i >= 0; i--) {
        char cmd[32], want[32];
        snprintf(cmd, sizeof(cmd), "/join %s\n", room[i]);
        say(&c[i], cmd);
        snprintf(want, sizeof(want), "You joined %s", room[i]);
        for (;;) {
            char got[128];
            assert_true(tr_net_read_line(&c[i].r, got, sizeof(got), WAIT_MS) >=
                        0);
            if (strcmp(got, want) == 0) {
                break;
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "/name %s\n", name[i]);
        say(&c[i], cmd);
    }
    for (int i = 0; i < 7; i++) {
        drain(&c[i]);
    }
    /* main is empty: removed. Count descending, then name. */
    say(&c[3], "/rooms\n");
    assert_true(expect(&c[3], "Rooms - a1 (3), bb (2), cc (2)"));
    /* Users of the caller's room, sorted byte-wise. */
    say(&c[1], "/users\n");
    assert_true(expect(&c[1], "Users - Al, Bo, cy"));
    say(&c[5], "/name Zz\n");
    drain(&c[5]);
    drain(&c[6]);
    say(&c[6], "/name aa\n");
    drain(&c[5]);
    drain(&c[6]);
    say(&c[5], "/users\n");
    assert_true(expect(&c[5], "Users - Zz, aa"));
    /* The last member leaves: the room is gone. */
    say(&c[3], "/join cc\n");
    drain(&c[3]);
    say(&c[4], "/quit\n");
    assert_true(tr_net_wait_closed(c[4].r.fd, WAIT_MS));
    say(&c[3], "/rooms\n");
    assert_true(expect(&c[3], "Rooms - a1 (3), cc (3)"));
    /* A room created on demand again. */
    say(&c[3], "/join bb\n");
    assert_true(expect(&c[3], "You joined bb"));
    say(&c[3], "/rooms\n");
    assert_true(expect(&c[3], "Rooms - a1 (3), cc (2), bb (1)"));
    for (int i = 0; i < 7; i++) {
        leave(&c[i]);
    }
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_messages_reach_every_member_in_send_order(void **state)
{
    enum { N = 4, M = 200 };
    server s;
    client c[N];
    int next[N][N];

    (void)state;
    server_start(&s);
    for (int i = 0; i < N; i++) {
        join(&s, &c[i]);
    }
    for (int i = 0; i < N; i++) {
        drain(&c[i]);
    }
    memset(next, 0, sizeof(next));
    for (int k = 0; k < M; k++) {
        for (int i = 0; i < N; i++) {
            char line[64];
            snprintf(line, sizeof(line), "msg %d\n", k);
            say(&c[i], line);
        }
    }
    /* Every member, the sender included, gets every line, each sender's
     * in its order. */
    for (int r = 0; r < N; r++) {
        for (int n = 0; n < N * M; n++) {
            char got[128];
            assert_true(tr_net_read_line(&c[r].r, got, sizeof(got), WAIT_MS) >=
                        0);
            assert_null(strchr(got, '\r'));
            int from = -1;
            for (int i = 0; i < N; i++) {
                size_t l = strlen(c[i].name);
                if (strncmp(got, c[i].name, l) == 0 && got[l] == ':') {
                    from = i;
                }
            }
            assert_true(from >= 0);
            char want[128];
            snprintf(want, sizeof(want), "%s: msg %d", c[from].name,
                     next[r][from]++);
            assert_string_equal(got, want);
        }
        assert_true(quiet(&c[r]));
    }
    for (int i = 0; i < N; i++) {
        leave(&c[i]);
    }
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_quit_fin_and_reset_all_leave(void **state)
{
    server s;
    client a, b, c, d, e;
    char want[128];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    join(&s, &c);
    join(&s, &d);
    drain(&a);
    /* /quit: the server closes; the room hears it; the name is free. */
    char quitter[32];
    snprintf(quitter, sizeof(quitter), "%s", b.name);
    say(&b, "/quit\n");
    assert_true(tr_net_wait_closed(b.r.fd, WAIT_MS));
    leave(&b);
    snprintf(want, sizeof(want), "%s left", quitter);
    assert_true(expect(&a, want));
    /* FIN. */
    shutdown(c.r.fd, SHUT_WR);
    snprintf(want, sizeof(want), "%s left", c.name);
    assert_true(expect(&a, want));
    leave(&c);
    /* RST. */
    tr_net_reset(d.r.fd);
    snprintf(want, sizeof(want), "%s left", d.name);
    assert_true(expect(&a, want));
    join(&s, &e);
    drain(&a);
    snprintf(want, sizeof(want), "/name %s\n", quitter);
    say(&e, want);
    snprintf(want, sizeof(want), "%s is now %s", e.name, quitter);
    assert_true(expect(&e, want));
    leave(&a);
    leave(&e);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_unknown_commands_go_to_the_sender_only(void **state)
{
    server s;
    client a, b;

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    drain(&a);
    say(&a, "/foo bar\n");
    assert_true(expect(&a, "Unrecognized command /foo, try /help"));
    say(&a, "/\n");
    assert_true(expect(&a, "Unrecognized command /, try /help"));
    say(&a, "/HELP\n");
    assert_true(expect(&a, "Unrecognized command /HELP, try /help"));
    say(&a, "/helpme\n");
    assert_true(expect(&a, "Unrecognized command /helpme, try /help"));
    /* Fault switches exist only with --faults. */
    say(&a, "/crash\n");
    assert_true(expect(&a, "Unrecognized command /crash, try /help"));
    say(&a, "/admin\n");
    assert_true(expect(&a, "Unrecognized command /admin, try /help"));
    assert_true(quiet(&b));
    leave(&a);
    leave(&b);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_crlf_long_lines_and_utf8(void **state)
{
    server s;
    client a, b;
    char want[512];
    char line[512];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    drain(&a);
    /* A trailing CR is removed. */
    say(&a, "with cr\r\n");
    snprintf(want, sizeof(want), "%s: with cr", a.name);
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    /* 400 bytes pass; 401 do not, and only the sender hears why. */
    memset(line, 'x', 400);
    line[400] = '\n';
    line[401] = '\0';
    say(&a, line);
    snprintf(want, sizeof(want), "%s: %.400s", a.name, line);
    assert_true(expect(&b, want));
    assert_true(expect(&a, want));
    memset(line, 'y', 401);
    line[401] = '\n';
    line[402] = '\0';
    say(&a, line);
    assert_true(expect(&a, "Messages can only be 400 chars long"));
    assert_true(quiet(&b));
    /* Valid UTF-8 goes through; an invalid line is dropped, and the
     * connection goes on. */
    say(&a, "caf\xc3\xa9 \xf0\x9f\x98\x80\n");
    snprintf(want, sizeof(want), "%s: caf\xc3\xa9 \xf0\x9f\x98\x80", a.name);
    assert_true(expect(&b, want));
    assert_true(expect(&a, want));
    say(&a, "bad \xff\xfe\n");
    say(&a, "overlong \xc0\xaf\n");
    say(&a, "surrogate \xed\xa0\x80\n");
    say(&a, "after\n");
    snprintf(want, sizeof(want), "%s: after", a.name);
    assert_true(expect(&b, want));
    assert_true(expect(&a, want));

    /* 16 MiB without a newline: one notice, bounded memory, and the
     * connection goes on. */
    long rss0 = tr_net_rss_kb(s.pid, false);
    char *junk = malloc(1 << 16);
    memset(junk, 'z', 1 << 16);
    for (int i = 0; i < 256; i++) {
        assert_true(tr_net_send(a.r.fd, junk, 1 << 16));
        if (i == 0) {
            assert_true(expect(&a, "Messages can only be 400 chars long"));
        }
    }
    free(junk);
    say(&a, "\nstill here\n");
    snprintf(want, sizeof(want), "%s: still here", a.name);
    assert_true(expect(&b, want));
    assert_true(expect(&a, want));
    assert_true(quiet(&a));
    if (!SANITIZED) {
        assert_true(tr_net_rss_kb(s.pid, false) - rss0 < 4096);
    }
    leave(&a);
    leave(&b);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_lagging_member_is_told_the_exact_count(void **state)
{
    enum { SENT = 3000 };
    server s;
    client a, b;
    const char *faults[] = {"--faults", NULL};
    char got[512];

    (void)state;
    server_start_args(&s, faults);
    join(&s, &a);
    join(&s, &b);
    drain(&a);
    /* a's actor blocks for 3 s while b says 3000 lines. */
    say(&a, "/stall 3000\n");
    usleep(200 * 1000);
    size_t cap = (size_t)SENT * 16;
    char *burst = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < SENT; i++) {
        len += (size_t)snprintf(burst + len, cap - len, "n%d\n", i);
    }
    assert_true(tr_net_send(b.r.fd, burst, len));
    free(burst);
    /* b reads along (told of anything it missed too). */
    unsigned long long seen_b = 0;
    while (seen_b < SENT) {
        unsigned long long n;
        assert_true(tr_net_read_line(&b.r, got, sizeof(got), WAIT_MS) >= 0);
        if (strncmp(got, b.name, strlen(b.name)) == 0) {
            seen_b++;
        } else if (sscanf(got,
                          "Server is very busy and dropped %llu messages, "
                          "sorry!",
                          &n) == 1) {
            seen_b += n;
        }
    }
    /* a: told what it missed, then the rest, in order: together, all. */
    unsigned long long dropped = 0;
    int lines = 0;
    int last = -1;
    while (dropped + (unsigned long long)lines < SENT) {
        assert_true(tr_net_read_line(&a.r, got, sizeof(got), WAIT_MS) >= 0);
        unsigned long long n;
        if (sscanf(got, "Server is very busy and dropped %llu messages, sorry!",
                   &n) == 1) {
            dropped += n;
            continue;
        }
        size_t l = strlen(b.name);
        assert_true(strncmp(got, b.name, l) == 0);
        int k = atoi(got + l + 3);
        assert_true(k > last);
        last = k;
        lines++;
    }
    assert_int_equal(dropped + (unsigned long long)lines, SENT);
    assert_true(dropped > 0); /* it did fall behind */
    assert_int_equal(last, SENT - 1);
    assert_true(quiet(&a));
    leave(&a);
    leave(&b);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_reader_that_stops_is_disconnected(void **state)
{
    server s;
    client a, b, c;
    char want[128];
    char got[600];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    /* c stops reading (with a small receive buffer). */
    int small = 4096;
    join(&s, &c);
    assert_int_equal(
        setsockopt(c.r.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    drain(&a);
    drain(&b);
    /* a says a lot; b reads along; c never reads. */
    char line[320];
    memset(line, 'q', 300);
    line[300] = '\n';
    snprintf(want, sizeof(want), "%s left", c.name);
    bool c_left = false;
    for (int i = 0; i < 40000 && !c_left; i++) {
        assert_true(tr_net_send(a.r.fd, line, 301));
        while (!tr_net_quiet(&b.r, i % 100 == 99 ? 50 : 0)) {
            assert_true(tr_net_read_line(&b.r, got, sizeof(got), WAIT_MS) >= 0);
            if (strcmp(got, want) == 0) {
                c_left = true;
            }
        }
        while (!tr_net_quiet(&a.r, 0)) {
            assert_true(tr_net_read_line(&a.r, got, sizeof(got), WAIT_MS) >= 0);
        }
    }
    assert_true(c_left);
    /* c finds the end once it reads what was sent before it. */
    assert_true(tr_net_wait_closed(c.r.fd, WAIT_MS));
    /* The others go on. */
    say(&b, "fine\n");
    snprintf(want, sizeof(want), "%s: fine", b.name);
    for (;;) {
        assert_true(tr_net_read_line(&a.r, got, sizeof(got), WAIT_MS) >= 0);
        if (strcmp(got, want) == 0) {
            break;
        }
    }
    leave(&a);
    leave(&b);
    leave(&c);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_crashes_restart_only_their_part(void **state)
{
    server s;
    client a, b, c;
    const char *flags[] = {"--faults", "--admin", NULL};
    char want[128];
    char got[4096];

    (void)state;
    server_start_args(&s, flags);
    join_as(&s, &a, 8);
    join_as(&s, &b, 8);
    drain(&a);
    /* The room crashes and restarts in place: nobody notices. */
    say(&a, "/crashroom\n");
    usleep(100 * 1000);
    say(&b, "after the room crash\n");
    snprintf(want, sizeof(want), "%s: after the room crash", b.name);
    assert_true(expect(&a, want));
    assert_true(expect(&b, want));
    say(&a, "/admin\n");
    assert_true(expect(&a, "Supervision tree:"));
    bool restarted = false;
    bool counters = false;
    while (!counters) {
        assert_true(tr_net_read_line(&a.r, got, sizeof(got), WAIT_MS) >= 0);
        if (strstr(got, "/chat/rooms/") != NULL &&
            strstr(got, "restarts=1") != NULL) {
            restarted = true;
        }
        counters = strncmp(got, "Counters:", 9) == 0;
    }
    assert_true(restarted);
    drain(&a);
    /* A connection crashes: its client is disconnected, the room hears
     * it left, and everything else goes on. */
    say(&a, "/crash\n");
    assert_true(tr_net_wait_closed(a.r.fd, WAIT_MS));
    snprintf(want, sizeof(want), "%s left", a.name);
    assert_true(expect(&b, want));
    join_as(&s, &c, 8);
    snprintf(want, sizeof(want), "%s joined", c.name);
    assert_true(expect(&b, want));
    say(&c, "hello\n");
    snprintf(want, sizeof(want), "%s: hello", c.name);
    assert_true(expect(&b, want));
    leave(&a);
    leave(&b);
    leave(&c);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_shutdown_tells_every_client(void **state)
{
    server s;
    client c[5];

    (void)state;
    server_start(&s);
    for (int i = 0; i < 5; i++) {
        join(&s, &c[i]);
    }
    for (int i = 0; i < 5; i++) {
        drain(&c[i]);
    }
    kill(s.pid, SIGINT);
    for (int i = 0; i < 5; i++) {
        assert_true(expect(&c[i], "Server is shutting down"));
        assert_true(tr_net_wait_closed(c[i].r.fd, WAIT_MS));
        leave(&c[i]);
    }
    assert_int_equal(server_wait(&s), 0);
}

/* The peer's FIN, and only that, within WAIT_MS: no reset, no data. */
static bool
ends_cleanly(client *c)
{
    char got[4096];
    int n = tr_net_read_line(&c->r, got, sizeof(got), WAIT_MS);
    char byte;

    if (n >= 0 || c->r.end > c->r.start) {
        fprintf(stderr, "expected the end, got '%s'\n", n >= 0 ? got : "");
        return false;
    }
    return recv(c->r.fd, &byte, 1, MSG_DONTWAIT) == 0;
}

/* A client that sends its commands and then its FIN (`nc -N`, a script
 * piping into a socket) is answered, in order, before the server closes
 * its side cleanly. */
static void
test_chat_a_half_closed_client_gets_its_answers(void **state)
{
    server s;
    client a, b;
    char want[128];

    (void)state;
    server_start(&s);
    join(&s, &a);
    join(&s, &b);
    drain(&a);
    say(&b, "/rooms\n/users\n/join side\n/name Halfway\n/help\n");
    assert_int_equal(shutdown(b.r.fd, SHUT_WR), 0);
    assert_true(expect(&b, "Rooms - main (2)"));
    snprintf(want, sizeof(want), "Users - %s, %s",
             strcmp(a.name, b.name) < 0 ? a.name : b.name,
             strcmp(a.name, b.name) < 0 ? b.name : a.name);
    assert_true(expect(&b, want));
    assert_true(expect(&b, "You joined side"));
    /* The help, in order. The rename's notice comes through the room's
     * channel: anywhere among it or after it, or not at all if leaving
     * overtook it (leaving ends the subscription). Then the end. */
    snprintf(want, sizeof(want), "%s is now Halfway", b.name);
    int helped = 0;
    bool renamed = false;
    for (;;) {
        char got[256];
        if (tr_net_read_line(&b.r, got, sizeof(got), WAIT_MS) < 0) {
            break;
        }
        if (!renamed && strcmp(got, want) == 0) {
            renamed = true;
        } else {
            assert_true(helped < 7);
            assert_string_equal(got, help[helped++]);
        }
    }
    assert_int_equal(helped, 7);
    char byte;
    /* 0: the end came (a timeout would leave EAGAIN). */
    assert_int_equal(recv(b.r.fd, &byte, 1, MSG_DONTWAIT), 0);
    leave(&a);
    leave(&b);
    assert_int_equal(server_stop(&s), 0);
}

/* A client far behind when the server stops, more than the kernel's
 * buffers hold, reads on: it gets the rest, then "Server is shutting
 * down", then the end (the server lingers for it). */
static void
test_chat_shutdown_lets_a_slow_reader_catch_up(void **state)
{
    enum { LINES = 600, PAYLOAD = 300 };
    server s;
    client x, t;
    char line[PAYLOAD + 16];
    char got[4096];
    int rcvbuf = 4096;
    int seen = 0;
    int avail = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET};

    (void)state;
    server_start(&s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    sa.sin_port = htons(s.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    tr_net_lines_init(&x.r, fd);
    for (int i = 0; i < 8; i++) { /* the help, the name */
        assert_true(tr_net_read_line(&x.r, got, sizeof(got), WAIT_MS) >= 0);
    }
    assert_true(expect(&x, "You joined main"));
    join(&s, &t);
    drain(&x);
    /* x stops reading; t says LINES lines (about 190 kB for x). */
    memset(line, 'L', sizeof(line));
    for (int i = 0; i < LINES; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%06d ", i);
        memcpy(line, num, 7); /* i < 10^6: six digits and a space */
        line[PAYLOAD] = '\n';
        assert_true(tr_net_send(t.r.fd, line, PAYLOAD + 1));
    }
    /* The room has put every line on its channel once t has its own
     * (a member hears itself). */
    for (int echoed = 0; echoed < LINES;) {
        assert_true(tr_net_read_line(&t.r, got, sizeof(got), WAIT_MS) >= 0);
        echoed += strncmp(got, t.name, strlen(t.name)) == 0;
    }
    /* x's share is on its way: its receive buffer has filled. */
    for (int waited = 0; avail < rcvbuf / 2 && waited < WAIT_MS; waited++) {
        assert_int_equal(ioctl(fd, FIONREAD, &avail), 0);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    kill(s.pid, SIGINT);
    for (;;) {
        int n = tr_net_read_line(&x.r, got, sizeof(got), WAIT_MS);
        assert_true(n >= 0);
        if (strcmp(got, "Server is shutting down") == 0) {
            break;
        }
        char *colon = strstr(got, ": ");
        assert_non_null(colon);
        assert_int_equal(strlen(colon + 2), PAYLOAD); /* whole */
        assert_int_equal(atoi(colon + 2), seen);      /* in order */
        seen++;
    }
    print_message("the slow reader got %d of %d lines\n", seen, LINES);
    /* More than the kernel's buffers held when the server stopped (about
     * 330 lines, all the old server sent); all of them unless some had
     * yet to reach x's connection from the room's channel when it left
     * the room. */
    assert_true(seen > 400);
    assert_true(ends_cleanly(&x));
    leave(&x);
    leave(&t);
    assert_int_equal(server_wait(&s), 0);
}

static void
test_chat_no_descriptor_outlives_its_client(void **state)
{
    server s;
    client c[48];

    (void)state;
    server_start(&s);
    int before = server_fds(&s);
    assert_true(before > 0);
    for (int i = 0; i < 48; i++) {
        join(&s, &c[i]);
    }
    assert_true(server_fds(&s) >= before + 48);
    for (int i = 0; i < 48; i++) {
        if (i % 3 == 0) {
            say(&c[i], "/quit\n");
            assert_true(tr_net_wait_closed(c[i].r.fd, WAIT_MS));
            leave(&c[i]);
        } else if (i % 3 == 1) {
            leave(&c[i]);
        } else {
            tr_net_reset(c[i].r.fd);
        }
    }
    for (int t = 0; t < 500 && server_fds(&s) != before; t++) {
        usleep(10 * 1000);
    }
    assert_int_equal(server_fds(&s), before);
    assert_int_equal(server_stop(&s), 0);
}

static void
test_chat_command_line(void **state)
{
    char cmd[512];

    (void)state;
    snprintf(cmd, sizeof(cmd), "%s --help > /dev/null", server_path);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s -p 70000 2> /dev/null", server_path);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s --bogus 2> /dev/null", server_path);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    /* A port in use: a clear error and status 1. */
    server s;
    server_start(&s);
    snprintf(cmd, sizeof(cmd),
             "%s -p %u 2>&1 | grep -q 'cannot listen on 127.0.0.1:%u: "
             "address already in use'",
             server_path, (unsigned)s.port, (unsigned)s.port);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "%s -i 1.2.3 -p 0 2>&1 | grep -q 'bad network "
             "address'",
             server_path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(server_stop(&s), 0);
}

static int
kill_leftovers(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++) {
        if (running[i] != 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
            running[i] = 0;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: chat_test PATH_TO_sample_chat\n");
        return 2;
    }
    server_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TR_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("TR_TEST_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_chat_greets_with_help_a_unique_name_and_main, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_help_lists_seven_lines,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_chat_name_rules, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_join_rules, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_rooms_and_users_are_listed_in_order,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            test_chat_messages_reach_every_member_in_send_order,
            kill_leftovers),
        cmocka_unit_test_teardown(test_chat_quit_fin_and_reset_all_leave,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            test_chat_unknown_commands_go_to_the_sender_only, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_crlf_long_lines_and_utf8,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            test_chat_lagging_member_is_told_the_exact_count, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_reader_that_stops_is_disconnected,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_chat_crashes_restart_only_their_part,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_chat_shutdown_tells_every_client,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            test_chat_a_half_closed_client_gets_its_answers, kill_leftovers),
        cmocka_unit_test_teardown(
            test_chat_shutdown_lets_a_slow_reader_catch_up, kill_leftovers),
        cmocka_unit_test_teardown(test_chat_no_descriptor_outlives_its_client,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_chat_command_line, kill_leftovers),
    };
    return cmocka_run_group_tests_name("chat", tests, NULL, NULL);
}
