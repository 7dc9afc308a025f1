/* Test fixtures; see tr_test.h. */
#include "support/tr_test.h"

#include "actors/ext.h"

#include <stdlib.h>
#include <time.h>

/* TR_TEST_FILTER=<pattern> runs only the matching tests of a program (cmocka's
 * wildcards), e.g. to repeat one test by hand. */
__attribute__((constructor)) static void
filter_from_env(void)
{
    const char *pattern = getenv("TR_TEST_FILTER");

    if (pattern != NULL && *pattern != '\0') {
        cmocka_set_test_filter(pattern);
    }
}

tr_system *
tr_test_system_cfg(const tr_system_config *cfg)
{
    tr_system *sys = NULL;

    assert_int_equal(tr_system_start(cfg, &sys), TR_OK);
    assert_non_null(sys);
    return sys;
}

tr_system *
tr_test_system(unsigned workers)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;

    cfg.workers = workers;
    return tr_test_system_cfg(&cfg);
}

void
tr_test_shutdown(tr_system *sys)
{
    assert_int_equal(tr_system_shutdown(sys, tr_ms(10000)), TR_OK);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool
tr_test_wait_until(bool (*pred)(void *arg), void *arg, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;

    for (;;) {
        if (pred(arg)) {
            return true;
        }
        if (now_ms() >= deadline) {
            return false;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

typedef struct stopped_arg {
    tr_system *sys;
    tr_addr addr;
} stopped_arg;

static bool
is_stopped(void *p)
{
    stopped_arg *a = p;
    tr_actor_stats st;
    return tr_actor_stats_get(a->sys, a->addr, &st) == TR_ENOACTOR;
}

bool
tr_test_wait_stopped(tr_system *sys, tr_addr addr, unsigned timeout_ms)
{
    stopped_arg a = {sys, addr};
    return tr_test_wait_until(is_stopped, &a, timeout_ms);
}

typedef struct handled_arg {
    tr_system *sys;
    uint64_t n;
} handled_arg;

static bool
has_handled(void *p)
{
    handled_arg *a = p;
    tr_system_stats st;
    return tr_system_stats_get(a->sys, &st) == TR_OK &&
           st.messages_handled >= a->n;
}

bool
tr_test_wait_handled(tr_system *sys, uint64_t n, unsigned timeout_ms)
{
    handled_arg a = {sys, n};
    return tr_test_wait_until(has_handled, &a, timeout_ms);
}

long
tr_test_arg(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

int
tr_test_ask(tr_ctx *ctx, tr_addr to, uint32_t type, const void *data,
            size_t size, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    tr_reply_buf reply = {.data = buf, .cap = cap};
    int rc = tr_ask_wait(ctx, to, type, data, size, &reply,
                         timeout_ms == 0 ? TR_FOREVER : tr_ms(timeout_ms));
    if (len != NULL) {
        *len = reply.len;
    }
    return rc;
}

uint64_t
tr_test_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

typedef struct counts_arg {
    tr_system *sys;
    tr_addr who;
    uint32_t on, held;
    uint32_t got_on, got_held;
} counts_arg;

static bool
counts_are(void *p)
{
    counts_arg *c = p;

    tr__ext_monitor_counts(c->sys, c->who, &c->got_on, &c->got_held);
    return c->got_on == c->on && c->got_held == c->held;
}

bool
tr_test_wait_monitor_counts(tr_system *sys, tr_addr who, uint32_t on,
                            uint32_t held, unsigned timeout_ms,
                            uint32_t *got_on, uint32_t *got_held)
{
    counts_arg c = {sys, who, on, held, 0, 0};
    bool ok = tr_test_wait_until(counts_are, &c, timeout_ms);

    *got_on = c.got_on;
    *got_held = c.got_held;
    return ok;
}
