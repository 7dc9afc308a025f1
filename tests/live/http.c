/* See http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Connect to `ip` (numeric, IPv4 or IPv6) at `port`; -1 on failure. */
static int
connect_to(const char *ip, uint16_t port, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6,
                               .sin6_port = htons(port)};
    struct timeval tv = {.tv_sec = 10};
    bool v6 = strchr(ip, ':') != NULL;

    if ((v6 ? inet_pton(AF_INET6, ip, &sa6.sin6_addr)
            : inet_pton(AF_INET, ip, &sa.sin_addr)) != 1) {
        return -1;
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((v6 ? connect(fd, (struct sockaddr *)&sa6, sizeof(sa6))
            : connect(fd, (struct sockaddr *)&sa, sizeof(sa))) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
http_connect(uint16_t port, int rcvbuf)
{
    return connect_to("127.0.0.1", port, rcvbuf);
}

static bool
send_all(int fd, const char *p, size_t len)
{
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

/* Decode a chunked body in place; its new length. */
static size_t
dechunk(char *body, size_t len)
{
    size_t in = 0, out = 0;

    while (in < len) {
        char *end;
        unsigned long n = strtoul(body + in, &end, 16);
        char *crlf = strstr(body + in, "\r\n");
        if (crlf == NULL || n == 0) {
            break;
        }
        in = (size_t)(crlf - body) + 2;
        if (in + n > len) {
            n = len - in;
        }
        memmove(body + out, body + in, n);
        out += n;
        in += n + 2;
        (void)end;
    }
    body[out] = '\0';
    return out;
}

bool
http_raw(uint16_t port, const char *raw, size_t len, http_reply *out)
{
    return http_raw_at("127.0.0.1", port, raw, len, out);
}

bool
http_raw_at(const char *ip, uint16_t port, const char *raw, size_t len,
            http_reply *out)
{
    int fd = connect_to(ip, port, 0);
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);

    memset(out, 0, sizeof(*out));
    if (fd < 0 || buf == NULL) {
        free(buf);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    /* The server may answer and close before reading all of a long
     * request: a failed send is not a failure here. */
    (void)send_all(fd, raw, len);
    shutdown(fd, SHUT_WR);
    for (;;) {
        if (got == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                break;
            }
            buf = nb;
        }
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        out->status = 0;
        out->headers = buf;
        out->body = strdup("");
        return got != 0;
    }
    *sep = '\0';
    out->headers = strdup(buf);
    out->len = got - (size_t)(sep + 4 - buf);
    out->body = malloc(out->len + 1);
    memcpy(out->body, sep + 4, out->len);
    out->body[out->len] = '\0';
    free(buf);
    const char *te = http_header(out, "Transfer-Encoding");
    if (te != NULL && strcasecmp(te, "chunked") == 0) {
        out->len = dechunk(out->body, out->len);
    }
    return true;
}

bool
http_get(uint16_t port, const char *path, http_reply *out)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Connection: close\r\n\r\n",
                     path, port);
    return http_raw(port, req, (size_t)n, out);
}

void
http_reply_free(http_reply *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *
http_header(const http_reply *r, const char *name)
{
    static char value[512];
    size_t nlen = strlen(name);

    for (const char *p = r->headers; p != NULL && *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        size_t llen = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (llen > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = llen - (size_t)(v - p);
            if (vlen >= sizeof(value)) {
                vlen = sizeof(value) - 1;
            }
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return value;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

bool
sse_open(sse *s, uint16_t port, int rcvbuf)
{
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     port);

    s->len = 0;
    s->fd = http_connect(port, rcvbuf);
    if (s->fd < 0 || !send_all(s->fd, req, (size_t)n)) {
        return false;
    }
    /* The reply's headers. */
    for (;;) {
        char *sep = strstr(s->buf, "\r\n\r\n");
        if (s->len > 0 && sep != NULL) {
            if (strncmp(s->buf, "HTTP/1.1 200", 12) != 0) {
                return false;
            }
            size_t used = (size_t)(sep + 4 - s->buf);
            memmove(s->buf, sep + 4, s->len - used);
            s->len -= used;
            s->buf[s->len] = '\0';
            return true;
        }
        ssize_t got =
            recv(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, 0);
        if (got <= 0) {
            return false;
        }
        s->len += (size_t)got;
        s->buf[s->len] = '\0';
    }
}

/* Drop chunk-size lines: in this stream a line of hex digits alone is a
 * chunk header (event lines always have a colon or are empty). */
static bool
chunk_line(const char *line, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool
sse_next(sse *s, char *event, size_t ecap, uint64_t *id, char *data,
         size_t dcap, unsigned timeout_ms)
{
    bool any = false;

    snprintf(event, ecap, "message");
    *id = 0;
    data[0] = '\0';
    for (;;) {
        char *eol = memchr(s->buf, '\n', s->len);
        if (eol != NULL) {
            size_t llen = (size_t)(eol - s->buf);
            if (llen > 0 && s->buf[llen - 1] == '\r') {
                llen--;
            }
            char line[8192];
            size_t copy = llen < sizeof(line) - 1 ? llen : sizeof(line) - 1;
            memcpy(line, s->buf, copy);
            line[copy] = '\0';
            size_t used = (size_t)(eol + 1 - s->buf);
            memmove(s->buf, eol + 1, s->len - used);
            s->len -= used;
            if (chunk_line(line, copy)) {
                continue;
            }
            if (copy == 0) {
                if (any) {
                    return true;
                }
                continue;
            }
            if (line[0] == ':') {
                continue;
            }
            any = true;
            if (strncmp(line, "event: ", 7) == 0) {
                snprintf(event, ecap, "%s", line + 7);
            } else if (strncmp(line, "id: ", 4) == 0) {
                *id = strtoull(line + 4, NULL, 10);
            } else if (strncmp(line, "data: ", 6) == 0) {
                snprintf(data, dcap, "%s", line + 6);
            }
            continue;
        }
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, (int)timeout_ms) <= 0) {
            return false;
        }
        ssize_t got =
            recv(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, 0);
        if (got <= 0) {
            return false;
        }
        s->len += (size_t)got;
    }
}

void
sse_close(sse *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}
