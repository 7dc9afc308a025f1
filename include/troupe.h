/*
 * troupe: an actor runtime for C. The one header users include.
 *
 * Conventions that hold across every header:
 *
 * - Errors. Every call that can fail returns int: TR_OK (0) or one
 *   negative TR_E* code from include/troupe/error.h, each with one meaning
 *   (tr_strerror, tr_errname). Results come back through the last
 *   out-parameters, untouched on error. A call that returns an error never
 *   runs the callback it was given.
 * - Arguments. A call made by an actor or a thread takes its context
 *   first; a read-only lookup any thread may make (tr_whereis, stats,
 *   members, snapshots) takes the system first. Then the address or object
 *   acted on, the message type and payload, options, and out-parameters.
 * - Time. Every timeout is a tr_timeout, a struct of milliseconds (`ms`)
 *   that the compiler keeps apart from sizes and counts, so a timeout
 *   swapped with a size does not compile: TR_NOWAIT (0) does not wait,
 *   TR_FOREVER (negative) has no limit, tr_ms(n) waits at most n
 *   milliseconds. A deadline of a
 *   call that goes through an actor's mailbox (tr_send_wait, tr_call,
 *   tr_ask_wait, the tr_sup_* calls) runs on the system's clock, as timers
 *   do (manual in tests); the others (tr_actor_wait, tr_system_wait,
 *   tr_system_shutdown, the channels' receives, sockets) run on the real
 *   (monotonic) clock.
 * - Waiting. A call that can block has a name ending in _wait (tr_send_wait,
 *   tr_ask_wait, tr_actor_wait, the channels' *_recv_wait and the rest) and
 *   refuses with TR_ESTATE, through the same check, on a worker thread of
 *   any system, and, when it takes a context, inside an actor's callbacks
 *   (an `init` that a plain thread's spawn runs included). Nothing else
 *   blocks but tr_system_shutdown, which gives the actors up to its
 *   timeout to stop, and which refuses in the same places.
 * - Ownership. Every declaration says what it borrows, takes, or returns
 *   owned; a send takes a buffer only on TR_OK.
 * - Memory. A send is a release and the receiving handler's start an
 *   acquire: everything the sender wrote before tr_send (or tr_call,
 *   tr_reply, a channel send) is visible to the handler that receives it,
 *   so a table filled before the send needs no further synchronisation.
 */
#ifndef TROUPE_H
#define TROUPE_H

#include <troupe/actor.h>
#include <troupe/broadcast.h>
#include <troupe/call.h>
#include <troupe/common.h>
#include <troupe/error.h>
#include <troupe/inspect.h>
#include <troupe/io.h>
#include <troupe/mailbox.h>
#include <troupe/monitor.h>
#include <troupe/oneshot.h>
#include <troupe/pg.h>
#include <troupe/sim.h>
#include <troupe/supervisor.h>
#include <troupe/system.h>
#include <troupe/timer.h>
#include <troupe/version.h>
#include <troupe/watch.h>

#endif /* TROUPE_H */
