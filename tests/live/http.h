/*
 * A small HTTP/1.1 client over loopback for the live endpoint's tests:
 * whole requests (Connection: close) and Server-Sent Event streams.
 */
#ifndef TR_TEST_LIVE_HTTP_H
#define TR_TEST_LIVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_reply {
    int status;    /* 0 when no reply came */
    char *headers; /* owned, NUL-terminated */
    char *body;    /* owned, NUL-terminated (chunked transfer decoded) */
    size_t len;
} http_reply;

/* Connect to 127.0.0.1:port; -1 on failure. `rcvbuf` > 0 shrinks the
 * receive buffer first. */
int http_connect(uint16_t port, int rcvbuf);

/* Send `raw` as it is and read the reply until the server closes. */
bool http_raw(uint16_t port, const char *raw, size_t len, http_reply *out);

/* The same to `ip` (numeric, IPv4 or IPv6) instead of 127.0.0.1. */
bool http_raw_at(const char *ip, uint16_t port, const char *raw, size_t len,
                 http_reply *out);

/* GET `path` with Host: 127.0.0.1:port. */
bool http_get(uint16_t port, const char *path, http_reply *out);

void http_reply_free(http_reply *r);

/* The value of header `name` in `r` (a static copy), or NULL. */
const char *http_header(const http_reply *r, const char *name);

/* An /events stream: GET sent, reply headers read. */
typedef struct sse {
    int fd;
    char buf[65536];
    size_t len;
} sse;

bool sse_open(sse *s, uint16_t port, int rcvbuf);
/*
 * The next event, within `timeout_ms`: its name ("message" when none),
 * id (0 when none) and data. Comments are skipped. False on timeout or
 * close.
 */
bool sse_next(sse *s, char *event, size_t ecap, uint64_t *id, char *data,
              size_t dcap, unsigned timeout_ms);
void sse_close(sse *s);

#endif
