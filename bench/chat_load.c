/*
 * Load generator for the chat server (samples/chat).
 *
 *   bench_chat_load [--host IP] [--port P] [--clients C] [--rooms R]
 *                   [--rate MSGS_PER_S] [--secs S] [--pid SERVER_PID]
 *                   [--idle] [--chaos N] [--admin]
 *
 * Opens C clients, puts them in R rooms ("room0".."room<R-1>"), and has
 * each send a line every 1/rate seconds for S seconds (rate 0: as fast as
 * the room echoes: each client sends its next line when its previous one
 * has come back, the saturation mode). Every line carries its sender, a
 * sequence number and the time it was sent; every member of the room
 * (the sender included) receives it, and the time from send to each
 * receipt is the fan-out latency. At the end it waits for what is in
 * flight, then prints one line:
 *
 *   workload=chat clients= rooms= sent= delivered= lost= p50_ms= p99_ms=
 *   rss_kb= secs= delivered_per_s= dropped= reordered= crashes=
 *
 * lost = (lines sent x members of the sender's room) - receipts; dropped
 * is what the server reported as dropped to lagging members (part of
 * lost); rss_kb is the server's peak RSS (--pid; 0 without it).
 *
 * --idle: C clients connect and are greeted, then stay idle for S
 *   seconds; prints the server's RSS before they came and at the end
 *   (workload=chat_idle, bytes_per_conn).
 * --chaos N: N more clients (not measured) pull the server's fault
 *   switches while the load runs (the server needs --faults): one crashes
 *   its room every 300 ms, another its own connection (and reconnects).
 * --admin: print the server's /admin report (to stderr) at the end (the
 *   server needs --admin).
 *
 * Exits 1 with "FAIL <why>" when a line arrives out of order or a
 * measured client is disconnected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    RBUF = 2048,
    WBUF = 1024,
    HIST_US = 200000, /* 1 us buckets up to 200 ms, then one more */
    MAX_PENDING_CONNECTS = 256,
};

typedef enum state {
    ST_IDLE = 0,
    ST_CONNECTING,
    ST_GREETING, /* until "You joined main" */
    ST_JOINING,  /* until "You joined roomN" */
    ST_READY,
    ST_DEAD
} state;

typedef struct client {
    int fd;
    int id;
    int room;
    state st;
    bool chaos;
    bool measured;
    size_t rlen;
    char rbuf[RBUF];
    size_t wlen;
    char wbuf[WBUF];
    uint64_t next_send;
    uint32_t seq;
    uint32_t inflight;
    uint32_t *last; /* per sender: the next sequence number expected */
} client;

static struct {
    const char *host;
    uint16_t port;
    int clients;
    int rooms;
    double rate;
    double secs;
    int pid;
    bool idle;
    int chaos;
    bool admin;
} opt = {"127.0.0.1", 42069, 200, 10, 5.0, 20.0, 0, false, 0, false};

static client *cl;
static int ncl;
static int ep;
static int *members; /* measured clients per room */
static uint64_t hist[HIST_US + 1];
static uint64_t sent, delivered, dropped, reordered, expected, crashes;
static int disconnected;
static bool measuring;
static struct sockaddr_in addr;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long
rss_kb(int pid, const char *key)
{
    char path[64], line[256];
    long kb = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            kb = strtol(line + strlen(key), NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

static void
die(const char *why)
{
    printf("FAIL %s\n", why);
    exit(1);
}

static void
arm(client *c, bool out)
{
    struct epoll_event e = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                            .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static bool
start_connect(client *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    c->st = ST_CONNECTING;
    c->rlen = c->wlen = 0;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
    return true;
}

static void
put(client *c, const char *s, size_t n)
{
    if (c->fd < 0) {
        return;
    }
    if (c->wlen == 0) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k == (ssize_t)n) {
            return;
        }
        if (k < 0) {
            k = 0;
        }
        s += k;
        n -= (size_t)k;
    }
    if (c->wlen + n > WBUF) {
        return; /* the server is not reading: drop (counted as lost) */
    }
    memcpy(c->wbuf + c->wlen, s, n);
    c->wlen += n;
    arm(c, true);
}

static void
send_line(client *c)
{
    char line[96];
    int n = snprintf(line, sizeof(line), "L %d %u %llu\n", c->id, c->seq++,
                     (unsigned long long)now_ns());
    put(c, line, (size_t)n);
    c->inflight++;
    if (measuring) {
        sent++;
        expected += (uint64_t)members[c->room];
    }
}

static void
close_client(client *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->measured && c->st == ST_READY) {
        disconnected++;
    }
    c->st = ST_DEAD;
}

static void
on_line(client *c, char *line, size_t len)
{
    line[len] = '\0';
    switch (c->st) {
    case ST_GREETING:
        if (strcmp(line, "You joined main") == 0) {
            if (opt.idle) {
                c->st = ST_READY;
            } else {
                char cmd[32];
                int n = snprintf(cmd, sizeof(cmd), "/join room%d\n", c->room);
                put(c, cmd, (size_t)n);
                c->st = ST_JOINING;
            }
        }
        return;
    case ST_JOINING: {
        char want[32];
        snprintf(want, sizeof(want), "You joined room%d", c->room);
        if (strcmp(line, want) == 0) {
            c->st = ST_READY;
        }
        return;
    }
    case ST_READY:
        break;
    default:
        return;
    }
    unsigned long long n;
    if (sscanf(line, "Server is very busy and dropped %llu", &n) == 1) {
        dropped += n;
        return;
    }
    char *p = strstr(line, ": L ");
    if (p == NULL || c->chaos) {
        return; /* joined, left, renamed, or a chaos client */
    }
    int from;
    unsigned seq;
    unsigned long long t;
    if (sscanf(p + 4, "%d %u %llu", &from, &seq, &t) != 3 || from < 0 ||
        from >= ncl) {
        return;
    }
    uint64_t us = (now_ns() - t) / 1000;
    delivered++;
    hist[us < HIST_US ? us : HIST_US]++;
    if (c->last != NULL) {
        if (seq < c->last[from]) {
            reordered++;
        }
        c->last[from] = seq + 1;
    }
    if (from == c->id && c->inflight > 0) {
        c->inflight--;
        if (opt.rate == 0 && measuring) {
            send_line(c); /* closed loop: the next one */
        }
    }
}

static void
on_readable(client *c)
{
    for (;;) {
        ssize_t n =
            recv(c->fd, c->rbuf + c->rlen, RBUF - 1 - c->rlen, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close_client(c);
            return;
        }
        if (n < 0) {
            return;
        }
        c->rlen += (size_t)n;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(c->rbuf + start, '\n', c->rlen - start);
            if (nl == NULL) {
                break;
            }
            size_t len = (size_t)(nl - (c->rbuf + start));
            on_line(c, c->rbuf + start, len);
            if (c->st == ST_DEAD) {
                return;
            }
            start += len + 1;
        }
        memmove(c->rbuf, c->rbuf + start, c->rlen - start);
        c->rlen -= start;
        if (c->rlen >= RBUF - 1) {
            c->rlen = 0; /* an over-long line: not ours */
        }
    }
}

static void
on_writable(client *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0) {
            close_client(c);
            return;
        }
        c->st = ST_GREETING;
    }
    while (c->wlen > 0) {
        ssize_t k = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0) {
            return;
        }
        memmove(c->wbuf, c->wbuf + k, c->wlen - (size_t)k);
        c->wlen -= (size_t)k;
    }
    arm(c, false);
}

static void
poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        client *c = evs[i].data.ptr;
        if (c->fd < 0) {
            continue;
        }
        if (evs[i].events & EPOLLOUT) {
            on_writable(c);
        }
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            on_readable(c);
        }
    }
}

static int
count_state(state st, bool chaos_too)
{
    int n = 0;
    for (int i = 0; i < ncl; i++) {
        n += cl[i].st == st && (chaos_too || !cl[i].chaos);
    }
    return n;
}

/* Connect everyone, a window at a time, until all are in their rooms. */
static void
bring_up(void)
{
    int next = 0;
    uint64_t deadline = now_ns() + 120ull * 1000000000u;

    for (;;) {
        int busy = count_state(ST_CONNECTING, true) +
                   count_state(ST_GREETING, true) +
                   count_state(ST_JOINING, true);
        while (next < ncl && busy < MAX_PENDING_CONNECTS) {
            if (!start_connect(&cl[next])) {
                die("cannot connect (is the server running?)");
            }
            next++;
            busy++;
        }
        if (next == ncl && busy == 0) {
            break;
        }
        if (now_ns() > deadline) {
            die("clients were not all greeted within 120 s");
        }
        poll_once(10);
    }
    if (count_state(ST_READY, true) != ncl) {
        die("a client was disconnected while joining");
    }
}

static double
pct_ms(double p)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        total += hist[i];
    }
    if (total == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)(p * (double)total);
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) {
            return (i + 0.5) / 1000.0;
        }
    }
    return HIST_US / 1000.0;
}

static void
raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* One more client, just to read the server's /admin report. */
static void
admin_report(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char buf[1 << 16];
    size_t len = 0;
    struct timeval tv = {1, 0};

    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* Skip the greeting, ask, read until the counters' lines. */
    (void)!write(fd, "/admin\n", 7);
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "Runtime:") != NULL &&
            strchr(strstr(buf, "Runtime:"), '\n') != NULL) {
            break;
        }
    }
    close(fd);
    char *from = strstr(buf, "Supervision tree:");
    if (from != NULL) {
        fprintf(stderr, "%s", from);
    }
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_chat_load [--host IP] [--port P] [--clients C] "
            "[--rooms R]\n"
            "       [--rate MSGS_PER_S (0: closed loop)] [--secs S] "
            "[--pid SERVER_PID]\n"
            "       [--idle] [--chaos N] [--admin]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'c'},
        {"rooms", required_argument, NULL, 'r'},
        {"rate", required_argument, NULL, 'R'},
        {"secs", required_argument, NULL, 's'},
        {"pid", required_argument, NULL, 'P'},
        {"idle", no_argument, NULL, 'i'},
        {"chaos", required_argument, NULL, 'x'},
        {"admin", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = (uint16_t)atoi(optarg);
            break;
        case 'c':
            opt.clients = atoi(optarg);
            break;
        case 'r':
            opt.rooms = atoi(optarg);
            break;
        case 'R':
            opt.rate = atof(optarg);
            break;
        case 's':
            opt.secs = atof(optarg);
            break;
        case 'P':
            opt.pid = atoi(optarg);
            break;
        case 'i':
            opt.idle = true;
            break;
        case 'x':
            opt.chaos = atoi(optarg);
            break;
        case 'a':
            opt.admin = true;
            break;
        default:
            usage();
        }
    }
    if (opt.clients <= 0 || opt.rooms <= 0 || opt.rate < 0 || opt.secs < 0) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) {
        die("bad --host");
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    ncl = opt.clients + opt.chaos;
    cl = calloc((size_t)ncl, sizeof(*cl));
    members = calloc((size_t)opt.rooms, sizeof(*members));
    for (int i = 0; i < ncl; i++) {
        cl[i].fd = -1;
        cl[i].id = i;
        cl[i].room = i % opt.rooms;
        cl[i].chaos = i >= opt.clients;
        cl[i].measured = !cl[i].chaos;
        if (cl[i].measured) {
            members[cl[i].room]++;
        }
    }

    long base_kb = opt.pid != 0 ? rss_kb(opt.pid, "VmRSS:") : 0;
    bring_up();

    if (opt.idle) {
        /* Everyone is greeted; the notices of the last joins settle, then
         * the server's resident set is read. */
        uint64_t end = now_ns() + (uint64_t)(opt.secs * 1e9);
        while (now_ns() < end) {
            poll_once(50);
        }
        long kb = opt.pid != 0 ? rss_kb(opt.pid, "VmRSS:") : 0;
        int greeted = count_state(ST_READY, false);
        printf("workload=chat_idle clients=%d greeted=%d rss_base_kb=%ld "
               "rss_kb=%ld bytes_per_conn=%.0f\n",
               opt.clients, greeted, base_kb, kb,
               opt.pid != 0 ? (double)(kb - base_kb) * 1024.0 / opt.clients
                            : 0.0);
        if (opt.admin) {
            admin_report();
        }
        return greeted == opt.clients ? 0 : 1;
    }

    for (int i = 0; i < ncl; i++) {
        if (cl[i].measured) {
            cl[i].last = calloc((size_t)ncl, sizeof(uint32_t));
        }
    }
    /* Let the joins settle, then measure. */
    uint64_t settle = now_ns() + 200000000u;
    while (now_ns() < settle) {
        poll_once(10);
    }
    memset(hist, 0, sizeof(hist));
    delivered = 0;
    measuring = true;
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(opt.secs * 1e9);
    uint64_t period = opt.rate > 0 ? (uint64_t)(1e9 / opt.rate) : 0;
    uint64_t rng = 88172645463325252ull;
    for (int i = 0; i < opt.clients; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        cl[i].next_send = t0 + (period != 0 ? rng % period : 0);
        if (period == 0) {
            send_line(&cl[i]);
        }
    }
    uint64_t next_chaos = t0 + 300000000u;
    int chaos_turn = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end) {
            break;
        }
        if (period != 0) {
            for (int i = 0; i < opt.clients; i++) {
                if (cl[i].st == ST_READY && now >= cl[i].next_send) {
                    send_line(&cl[i]);
                    cl[i].next_send += period;
                }
            }
        }
        if (opt.chaos > 0 && now >= next_chaos) {
            client *c = &cl[opt.clients + chaos_turn % opt.chaos];
            chaos_turn++;
            if (c->st == ST_READY) {
                bool room = chaos_turn % 2 == 1;
                put(c, room ? "/crashroom\n" : "/crash\n", room ? 11 : 7);
                crashes++;
            } else if (c->st == ST_DEAD) {
                start_connect(c); /* it crashed: back in */
            }
            next_chaos += 300000000u;
        }
        poll_once(1);
    }
    measuring = false;
    double secs = (double)(now_ns() - t0) / 1e9;
    /* What is in flight arrives within a moment. */
    uint64_t drain = now_ns() + 3000000000ull;
    while (now_ns() < drain && delivered + dropped < expected) {
        poll_once(10);
    }
    uint64_t lost = expected > delivered ? expected - delivered : 0;
    long peak = opt.pid != 0 ? rss_kb(opt.pid, "VmHWM:") : 0;
    if (opt.admin) {
        admin_report();
    }
    printf("workload=chat clients=%d rooms=%d sent=%llu delivered=%llu "
           "lost=%llu p50_ms=%.3f p99_ms=%.3f rss_kb=%ld secs=%.1f "
           "delivered_per_s=%.0f dropped=%llu reordered=%llu crashes=%llu\n",
           opt.clients, opt.rooms, (unsigned long long)sent,
           (unsigned long long)delivered, (unsigned long long)lost,
           pct_ms(0.50), pct_ms(0.99), peak, secs, (double)delivered / secs,
           (unsigned long long)dropped, (unsigned long long)reordered,
           (unsigned long long)crashes);
    if (reordered != 0) {
        die("lines arrived out of order");
    }
    if (disconnected != 0) {
        die("a measured client was disconnected");
    }
    return 0;
}
