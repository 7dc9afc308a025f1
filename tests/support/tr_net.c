/* Test clients; see tr_net.h. */
#include "support/tr_net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
tr_net_connect(const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof(*v6);
    } else {
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int
tr_net_connect_unix(const char *path)
{
    struct sockaddr_un un;
    size_t n = strlen(path);
    int fd;

    if (n == 0 || n >= sizeof(un.sun_path)) {
        return -1;
    }
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, n);
    if (path[0] == '@') {
        un.sun_path[0] = '\0';
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                                (path[0] == '@' ? 0 : 1));
    if (connect(fd, (struct sockaddr *)&un, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool
tr_net_send(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool
tr_net_send_str(int fd, const char *s)
{
    return tr_net_send(fd, s, strlen(s));
}

/* Wait until `fd` is readable; false on timeout. */
static bool
wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0) {
            return true;
        }
        if (rc < 0 && errno != EINTR) {
            return false;
        }
    }
}

bool
tr_net_read_exact(int fd, void *buf, size_t len, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char *p = buf;

    while (len > 0) {
        if (!wait_readable(fd, deadline)) {
            return false;
        }
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool
tr_net_wait_closed(int fd, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char sink[4096];

    for (;;) {
        if (!wait_readable(fd, deadline)) {
            return false;
        }
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0) {
            return true;
        }
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            return true; /* reset */
        }
    }
}

void
tr_net_reset(int fd)
{
    struct linger l = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

void
tr_net_lines_init(tr_net_lines *r, int fd)
{
    r->fd = fd;
    r->start = r->end = 0;
}

int
tr_net_read_line(tr_net_lines *r, char *out, size_t cap, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            size_t len = (size_t)(nl - (r->buf + r->start));
            size_t k = len < cap - 1 ? len : cap - 1;
            memcpy(out, r->buf + r->start, k);
            out[k] = '\0';
            r->start += len + 1;
            return (int)len;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == sizeof(r->buf)) {
            return -1;
        }
        if (!wait_readable(r->fd, deadline)) {
            return -1;
        }
        /* read(2), not recv(2): the reader also serves pipes. */
        ssize_t n = read(r->fd, r->buf + r->end, sizeof(r->buf) - r->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        r->end += (size_t)n;
    }
}

bool
tr_net_expect(tr_net_lines *r, const char *want, unsigned timeout_ms)
{
    char got[4096];

    if (tr_net_read_line(r, got, sizeof(got), timeout_ms) < 0) {
        fprintf(stderr, "expected '%s', got nothing\n", want);
        return false;
    }
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "expected '%s', got '%s'\n", want, got);
        return false;
    }
    return true;
}

bool
tr_net_quiet(tr_net_lines *r, unsigned ms)
{
    if (memchr(r->buf + r->start, '\n', r->end - r->start) != NULL) {
        return false;
    }
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    return poll(&p, 1, (int)ms) == 0;
}

int
tr_net_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

long
tr_net_rss_kb(int pid, bool peak)
{
    char path[64];
    char line[256];
    long kb = 0;
    const char *key = peak ? "VmHWM:" : "VmRSS:";

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/status");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            kb = strtol(line + strlen(key), NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}
