/*
 * The systematic build's blocking I/O (common/tr_systematic.c): a thread
 * that blocked in the kernel would keep the token and stop every thread.
 * So poll, and send, recv, read and write on a descriptor in blocking
 * mode, try without waiting and, while the call would wait, sleep a
 * logical millisecond between tries, so that the thread that makes the
 * descriptor ready can run. Non-blocking descriptors and MSG_DONTWAIT
 * calls go straight through, after a switch point. Writes to standard
 * output and error never wait here.
 *
 * What the kernel has ready at a try is an input the seed does not choose;
 * on loopback it has been the same from run to run so far.
 */
#include "common/tr_systematic.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define TR_SYS_EXPORT __attribute__((visibility("default")))

/* The real functions behind the wrapped ones (ld --wrap). */
int __real_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __real_read(int fd, void *buf, size_t len);
ssize_t __real_write(int fd, const void *buf, size_t len);

static bool
would_block_here(int fd, int flags)
{
    int fl;

    if ((flags & MSG_DONTWAIT) != 0) {
        return false;
    }
    fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK) == 0;
}

/* After a call that would have waited: sleep, and say to try again. */
static bool
try_again(ssize_t rc)
{
    if (rc >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        return false;
    }
    tr__sys_sleep_ns(1000000u);
    return true;
}

/* read and write: the descriptor may be no socket (a pipe, an eventfd),
 * so the wait is a poll for it without waiting. */
static void
wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};

    while (__real_poll(&p, 1, 0) == 0) {
        tr__sys_sleep_ns(1000000u);
    }
}

TR_SYS_EXPORT int
__wrap_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    uint64_t deadline = tr__sys_now_ns();

    deadline = timeout_ms < 0 ? UINT64_MAX
                              : deadline + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int rc = __real_poll(fds, n, 0);
        if (rc != 0 || tr__sys_now_ns() >= deadline) {
            return rc;
        }
        tr__sys_sleep_ns(1000000u);
    }
}

TR_SYS_EXPORT ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
    ssize_t rc;

    tr__sys_point();
    if (!would_block_here(fd, flags)) {
        return __real_send(fd, buf, len, flags);
    }
    do {
        rc = __real_send(fd, buf, len, flags | MSG_DONTWAIT);
    } while (try_again(rc));
    return rc;
}

TR_SYS_EXPORT ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t rc;

    tr__sys_point();
    if (!would_block_here(fd, flags)) {
        return __real_recv(fd, buf, len, flags);
    }
    do {
        rc = __real_recv(fd, buf, len, flags | MSG_DONTWAIT);
    } while (try_again(rc));
    return rc;
}

TR_SYS_EXPORT ssize_t
__wrap_read(int fd, void *buf, size_t len)
{
    tr__sys_point();
    if (would_block_here(fd, 0)) {
        wait_fd(fd, POLLIN);
    }
    return __real_read(fd, buf, len);
}

TR_SYS_EXPORT ssize_t
__wrap_write(int fd, const void *buf, size_t len)
{
    tr__sys_point();
    if (fd > STDERR_FILENO && would_block_here(fd, 0)) {
        wait_fd(fd, POLLOUT);
    }
    return __real_write(fd, buf, len);
}
