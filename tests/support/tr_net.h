/*
 * Test clients for socket tests: blocking sockets with deadlines, a line
 * reader, and counting the process's open descriptors (the leak check of
 * every io test: /proc/self/fd).
 */
#ifndef TR_NET_H
#define TR_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A connected TCP client socket to host:port (numeric), or -1. */
int tr_net_connect(const char *host, uint16_t port);
/* A connected Unix-domain client socket ('@' for abstract), or -1. */
int tr_net_connect_unix(const char *path);
/* Send all of it; false on error. */
bool tr_net_send(int fd, const void *data, size_t len);
bool tr_net_send_str(int fd, const char *s);
/* Read exactly `len` bytes within `timeout_ms`; false on EOF, error or
 * timeout. */
bool tr_net_read_exact(int fd, void *buf, size_t len, unsigned timeout_ms);
/* Read until EOF or reset (discarding), within `timeout_ms`: true when
 * the peer closed. */
bool tr_net_wait_closed(int fd, unsigned timeout_ms);
/* Close with a reset (SO_LINGER 0). */
void tr_net_reset(int fd);

/* A buffered line reader over one socket. */
typedef struct tr_net_lines {
    int fd;
    size_t start, end;
    char buf[1 << 16];
} tr_net_lines;

void tr_net_lines_init(tr_net_lines *r, int fd);
/* The next line (LF stripped, NUL-terminated) into `out`, within
 * `timeout_ms`; its length, or -1 on EOF, error or timeout. */
int tr_net_read_line(tr_net_lines *r, char *out, size_t cap,
                     unsigned timeout_ms);
/* Read one line and compare; on a mismatch, print both and return
 * false. */
bool tr_net_expect(tr_net_lines *r, const char *want, unsigned timeout_ms);
/* True when no line arrives within `ms` (nothing is consumed). */
bool tr_net_quiet(tr_net_lines *r, unsigned ms);

/* Open descriptors of this process. */
int tr_net_count_fds(void);
/* Peak and current resident set of a process (0: this one), in KiB. */
long tr_net_rss_kb(int pid, bool peak);

#endif /* TR_NET_H */
