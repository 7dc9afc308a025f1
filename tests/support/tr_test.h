/*
 * Test fixtures: systems with a given number of workers, waiting on a
 * predicate with a deadline, and recording from worker threads.
 *
 * cmocka's assertions longjmp back to the test's own thread, so handlers and
 * workers never assert: they record into atomics or arrays, and the test
 * thread asserts after a wait or after shutdown.
 */
#ifndef TR_TEST_H
#define TR_TEST_H

#include <troupe.h>

#include "common/tr_atomic.h"
#include "common/tr_defs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A started system with `workers` workers, or a failed test. */
tr_system *tr_test_system(unsigned workers);

/* A started system with a configuration, or a failed test. */
tr_system *tr_test_system_cfg(const tr_system_config *cfg);

/* Shut `sys` down within 10 s, asserting TR_OK. */
void tr_test_shutdown(tr_system *sys);

/*
 * Poll `pred(arg)` until it holds or `timeout_ms` passes; true when it
 * held. Polling (not sleeping a fixed time) with a deadline that fails
 * loudly is the only way tests wait.
 */
bool tr_test_wait_until(bool (*pred)(void *arg), void *arg,
                        unsigned timeout_ms);

/* Wait until the actor at `addr` has stopped. */
bool tr_test_wait_stopped(tr_system *sys, tr_addr addr, unsigned timeout_ms);

/* Wait until `who` has `on` monitors made on it and holds `held` on others
 * (an actor is counted out of the live ones before its end takes its
 * monitors from their targets); false after `timeout_ms`, with the last
 * counts seen in `*got_on` and `*got_held`. */
bool tr_test_wait_monitor_counts(tr_system *sys, tr_addr who, uint32_t on,
                                 uint32_t held, unsigned timeout_ms,
                                 uint32_t *got_on, uint32_t *got_held);

/* Wait until the system has handled at least `n` user messages. */
bool tr_test_wait_handled(tr_system *sys, uint64_t n, unsigned timeout_ms);

/*
 * tr_ask_wait with the reply buffer's parts as arguments, `*len` written
 * like the reply's length: the shape most tests want. `timeout_ms` 0 means
 * no limit (TR_FOREVER).
 */
int tr_test_ask(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
                size_t size, void *buf, size_t cap, size_t *len,
                int64_t timeout_ms);

/* Command-line integer argument `i`, or `dflt`. */
long tr_test_arg(int argc, char **argv, int i, long dflt);

/* A 64-bit mix (murmur3's finaliser): the stress tests' choices, spread
 * from a counter. */
uint64_t tr_test_mix(uint64_t x);

#endif /* TR_TEST_H */
