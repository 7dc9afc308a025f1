/*
 * Timers and the system clock. Every timer and timeout reads one clock owned
 * by the system; a system started with `manual_clock` has a clock that moves
 * only when tr_clock_advance says so, so tests of timeouts and intervals run
 * without sleeping.
 */
#ifndef TROUPE_TIMER_H
#define TROUPE_TIMER_H

#include <troupe/common.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A pending timer; a small value. The zero value names no timer. */
typedef struct tr_timer {
    uint64_t id;
} tr_timer;

/**
 * Send a copy of `data` to `to` as a message of `type` once `delay_ms` has
 * passed on the system's clock. It travels in the control lane: it is never
 * refused by a bounded mailbox and is handled ahead of queued user messages.
 * If `to` has stopped by then, it becomes a dead letter. Time saturates:
 * a delay whose deadline would pass the clock's end (2^64 ns) never
 * fires.
 *
 * Ownership: borrows `data` (copied now); writes `*out` (may be NULL).
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL context, NULL `data` with a
 *            non-zero size, or a size over UINT32_MAX; TR_ENOACTOR if `to`
 *            has stopped already; TR_ENOMEM; TR_ESHUTDOWN once shutdown has
 *            begun (from any context: pending timers are dropped then).
 */
TR_API int tr_send_after(tr_ctx *ctx, tr_addr to, uint32_t type,
                         const void *data, size_t size, uint64_t delay_ms,
                         tr_timer *out);

/**
 * Like tr_send_after, but again every `period_ms` (the first one after
 * `period_ms`), without drift, until cancelled or until `to` stops. Ticks
 * missed while the clock jumped are delivered in a burst of at most 1000;
 * a jump over more delivers one tick and resumes on the period's grid.
 *
 * Returns:   as tr_send_after; TR_EINVAL for a zero period.
 */
TR_API int tr_send_interval(tr_ctx *ctx, tr_addr to, uint32_t type,
                            const void *data, size_t size, uint64_t period_ms,
                            tr_timer *out);

/**
 * Cancel a timer. After TR_OK it sends nothing more (a message it already
 * sent may still be queued).
 *
 * Context:   any thread.
 * Returns:   TR_OK; TR_EINVAL for a NULL system; TR_EALREADY if the timer
 *            already fired its last message or was cancelled, or is
 *            another system's (which it leaves alone); TR_ESHUTDOWN
 *            off the workers once shutdown has begun (which drops every
 *            timer).
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_timer_cancel(tr_system *sys, tr_timer timer);

/**
 * The system's clock in milliseconds since the system started.
 *
 * Context:   any thread.
 * Returns:   the time; 0 for a NULL system, and off the workers once
 *            shutdown has begun.
 */
TR_API uint64_t tr_now_ms(tr_system *sys);

/**
 * Move a manual clock forward by `ms` and fire every timer now due, on the
 * calling thread, in deadline order. The clock saturates at its end (2^64
 * ns) instead of wrapping.
 *
 * Context:   a plain thread, one at a time.
 * Returns:   TR_OK; TR_EINVAL for a NULL system; TR_ESTATE if the system
 *            does not have a manual clock, or on a worker; TR_ESHUTDOWN
 *            once shutdown has begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_clock_advance(tr_system *sys, uint64_t ms);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_TIMER_H */
