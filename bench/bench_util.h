/*
 * What every benchmark program shares: the environment (WORKERS, SCALE),
 * the clock, memory readings, the main thread's wait for the result, and
 * the one result line that BENCH.md defines.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <troupe.h>

#include <stdint.h>

/* How long the main thread waits for a workload to finish. */
enum { BENCH_TIMEOUT_MS = 120000 };

/* What the actor that finishes a workload posts to the main thread. */
typedef struct bench_done {
    int rc;          /* TR_OK, or the error that stopped the work */
    const char *why; /* with an error: what failed (a static string) */
    uint64_t value;  /* the workload's result: a sum, a count, an index */
    double t;        /* bench_now() when it was posted */
} bench_done;

/* WORKERS from the environment; 0 (unset) means one per online CPU. */
unsigned bench_workers(void);

/* SCALE from the environment; 1 when unset. */
uint64_t bench_scale(void);

/* `n` divided by SCALE, at least 1. */
uint64_t bench_scaled(uint64_t n);

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Peak resident memory of the process (VmHWM), in KiB. */
long bench_rss_peak_kb(void);

/* Resident memory of the process now (VmRSS), in KiB. */
long bench_rss_kb(void);

/* Print `FAIL <why>` on stdout and exit 1. */
_Noreturn void bench_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Fail with `what` and the error's name unless `rc` is TR_OK. */
void bench_check(int rc, const char *what);

/* Start a system with WORKERS workers; fails the program on error. */
tr_system *bench_system_start(void);

/* Create the unbounded mailbox the main thread waits on. */
tr_mailbox *bench_mailbox_create(void);

/* Post a successful bench_done stamped with the time now; any thread. */
void bench_post(tr_mailbox *mb, uint64_t value);

/* Post a failed bench_done: `why` (a static string) failed with `rc`. */
void bench_post_fail(tr_mailbox *mb, int rc, const char *why);

/* Wait for one bench_done; fails the program on timeout or an error. */
bench_done bench_wait(tr_mailbox *mb);

/* Shut the system down and free the mailbox; fails the program if the
 * shutdown reports an error. */
void bench_finish(tr_system *sys, tr_mailbox *mb);

/* Print the result line; `extra` (may be NULL) is appended as given. */
void bench_report(const char *name, uint64_t n, double secs, const char *extra);

/*
 * An `init` for actors whose state starts with the tr_mailbox * that
 * failures are posted to: its start argument is that pointer's address.
 */
int bench_init_mailbox(tr_ctx *ctx, void *state, const void *arg);

/*
 * W3's server: answers each call with its uint64_t request + 1. Its start
 * argument is the address of the tr_mailbox * that failures are posted to.
 */
extern const tr_behaviour bench_call_server;

#endif /* BENCH_UTIL_H */
