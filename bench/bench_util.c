/*
 * Helpers shared by the benchmark programs (see bench_util.h). Memory comes
 * from /proc/self/status, so the numbers are Linux's view of the process,
 * allocator caches included.
 */
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An environment variable as an unsigned number; `dflt` when unset. */
static uint64_t
env_number(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0') {
        return dflt;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-') {
        bench_fail("%s=%s is not a number", name, s);
    }
    return v;
}

unsigned
bench_workers(void)
{
    uint64_t n = env_number("WORKERS", 0);

    if (n > 4096) {
        bench_fail("WORKERS=%" PRIu64 " is too many", n);
    }
    return (unsigned)n;
}

uint64_t
bench_scale(void)
{
    uint64_t k = env_number("SCALE", 1);

    if (k == 0) {
        bench_fail("SCALE must be at least 1");
    }
    return k;
}

uint64_t
bench_scaled(uint64_t n)
{
    uint64_t v = n / bench_scale();

    return v != 0 ? v : 1;
}

double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The value of the "<key>:   <n> kB" line of /proc/self/status. */
static long
status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t klen = strlen(key);
    long kb = -1;

    if (f == NULL) {
        bench_fail("cannot open /proc/self/status");
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    if (kb < 0) {
        bench_fail("no %s in /proc/self/status", key);
    }
    return kb;
}

long
bench_rss_peak_kb(void)
{
    return status_kb("VmHWM");
}

long
bench_rss_kb(void)
{
    return status_kb("VmRSS");
}

void
bench_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("FAIL ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    exit(1);
}

void
bench_check(int rc, const char *what)
{
    if (rc != TR_OK) {
        bench_fail("%s: %s", what, tr_errname(rc));
    }
}

tr_system *
bench_system_start(void)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_system *sys;

    cfg.workers = bench_workers();
    bench_check(tr_system_start(&cfg, &sys), "tr_system_start");
    /* INSPECT=1: the live endpoint on, nobody watching (its cost). */
    const char *inspect = getenv("INSPECT");
    if (inspect != NULL && strcmp(inspect, "1") == 0) {
        bench_check(tr_inspect_serve(sys, "127.0.0.1:0", NULL, NULL),
                    "tr_inspect_serve");
    }
    return sys;
}

tr_mailbox *
bench_mailbox_create(void)
{
    tr_mailbox *mb;

    bench_check(tr_mailbox_create(0, &mb), "tr_mailbox_create");
    return mb;
}

static void
post(tr_mailbox *mb, const bench_done *d)
{
    /* An unbounded mailbox refuses only when out of memory; the main thread
     * then times out, which it reports. */
    if (tr_mailbox_send(mb, d, sizeof(*d)) != TR_OK) {
        fprintf(stderr, "bench: could not post the result\n");
    }
}

void
bench_post(tr_mailbox *mb, uint64_t value)
{
    const bench_done d = {.rc = TR_OK, .value = value, .t = bench_now()};

    post(mb, &d);
}

void
bench_post_fail(tr_mailbox *mb, int rc, const char *why)
{
    const bench_done d = {.rc = rc, .why = why, .t = bench_now()};

    post(mb, &d);
}

bench_done
bench_wait(tr_mailbox *mb)
{
    bench_done d;
    size_t len;
    int rc =
        tr_mailbox_recv_wait(mb, &d, sizeof(d), &len, tr_ms(BENCH_TIMEOUT_MS));

    if (rc == TR_ETIMEDOUT) {
        bench_fail("timed out after %d s", BENCH_TIMEOUT_MS / 1000);
    }
    bench_check(rc, "tr_mailbox_recv_wait");
    if (len != sizeof(d)) {
        bench_fail("a result of %zu bytes", len);
    }
    if (d.rc != TR_OK) {
        bench_fail("%s: %s", d.why, tr_errname(d.rc));
    }
    return d;
}

void
bench_finish(tr_system *sys, tr_mailbox *mb)
{
    bench_check(tr_system_shutdown(sys, tr_ms(10000)), "tr_system_shutdown");
    tr_mailbox_destroy(mb);
}

void
bench_report(const char *name, uint64_t n, double secs, const char *extra)
{
    printf("workload=%s impl=troupe n=%" PRIu64 " secs=%.6f rate=%.0f "
           "rss_kb=%ld%s\n",
           name, n, secs, secs > 0 ? (double)n / secs : 0.0,
           bench_rss_peak_kb(), extra != NULL ? extra : "");
}

int
bench_init_mailbox(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(tr_mailbox *));
    return TR_OK;
}

/* ---- the call benchmarks' server ---- */

/* A request: reply with the request's value + 1. */
static int
server_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_mailbox *const *done = state;
    uint64_t v;
    int rc;

    if (msg->size != sizeof(v)) {
        bench_post_fail(*done, TR_EINVAL, "a request of the wrong size");
        return tr_stop(ctx);
    }
    memcpy(&v, msg->data, sizeof(v));
    v++;
    rc = tr_reply(ctx, msg, &v, sizeof(v));
    if (rc != TR_OK) {
        bench_post_fail(*done, rc, "reply");
        return tr_stop(ctx);
    }
    return TR_OK;
}

const tr_behaviour bench_call_server = {
    .name = "bench_call_server",
    .state_size = sizeof(tr_mailbox *),
    .init = bench_init_mailbox,
    .handle = server_handle,
};
