/*
 * Private: the in-memory network a simulated system's sockets use
 * (troupe/sim.h, "Network"). See simnet.c.
 *
 * Its calls stand in for the socket system calls at the narrowest seam of
 * the I/O module: a simulated slot's `fd` is the index of its endpoint
 * here, and the few places in sock.c, conn.c and loop.c that call the
 * kernel (or libevent) call these instead when the module has a network
 * (`tr_io_sys.net`). Like the calls they replace, they report failures as
 * -1 with errno set, so that the code that frames, buffers and delivers
 * stays one for both backends. Everything runs on the driving thread.
 */
#ifndef TR_IO_SIMNET_H
#define TR_IO_SIMNET_H

#include <troupe/io.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct tr_simnet tr_simnet;
struct io_slot;

/* Create the network of simulated system `sys` and plug it into its
 * steps: TR_OK or TR_ENOMEM. */
int tr__simnet_create(tr_system *sys, tr_simnet **out);
/* Unplug and free it, with every endpoint and segment left. */
void tr__simnet_destroy(tr_simnet *net);
/* The virtual clock in milliseconds. */
int64_t tr__simnet_now_ms(const tr_simnet *net);

/* A listener on `host` (NULL, "", "0.0.0.0", "::": every host) and `port`
 * (0: one is picked): its endpoint, or a negative TR_ code
 * (TR_EADDRINUSE, TR_ENOMEM). */
int tr__simnet_listen(tr_simnet *net, const char *host, uint16_t port,
                      int backlog);
/* A connection from client host `client` to `host`:`port`, its SYN on the
 * way: its endpoint, or TR_ENOMEM. */
int tr__simnet_connect(tr_simnet *net, uint32_t client, const char *host,
                       uint16_t port);
/* The socket `s` now stands for endpoint `fd`. */
void tr__simnet_attach(tr_simnet *net, int fd, struct io_slot *s);
/* Take a pending connection of listener `fd`: its endpoint, or -1 with
 * errno EAGAIN. */
int tr__simnet_accept(tr_simnet *net, int fd);
/* recv(2), send(2) (gathering `iov`), shutdown(2) of the write side,
 * close(2). */
ssize_t tr__simnet_recv(tr_simnet *net, int fd, void *buf, size_t len);
ssize_t tr__simnet_send(tr_simnet *net, int fd, const struct iovec *iov, int n);
void tr__simnet_shutdown(tr_simnet *net, int fd);
void tr__simnet_close(tr_simnet *net, int fd);
/* SO_ERROR of a connecting endpoint: 0 once connected, EINPROGRESS
 * before, ECONNREFUSED (or another errno) when it failed. */
int tr__simnet_error(tr_simnet *net, int fd);
/* The endpoint's local port. */
uint16_t tr__simnet_port(tr_simnet *net, int fd);
/* The socket's timer (idle, connect, accept retry) on the virtual clock:
 * RD_TIMER is posted `ms` from now; arming again replaces it. */
void tr__simnet_timer_arm(tr_simnet *net, int fd, int64_t ms);
void tr__simnet_timer_stop(tr_simnet *net, int fd);

#endif /* TR_IO_SIMNET_H */
