/*
 * A million pending timers with random delays on a manual clock: each
 * fires exactly once, never before its deadline, and the system's memory
 * per pending timer stays bounded (256 bytes from 100,000 timers up, 512
 * below).
 *
 * Usage: timer_stress [timers]
 */
#include "support/tr_test.h"

#include <stdio.h>

static long n_timers = 1000000;

typedef struct fired {
    tr_system *sys;
    tr_atomic(long) count;
    tr_atomic(long) early;
} fired;

static fired stats;

static int
on_tick(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    uint64_t due;
    (void)ctx;
    (void)state;
    memcpy(&due, msg->data, sizeof(due));
    if (tr_now_ms(stats.sys) < due) {
        tr_faa_relaxed(&stats.early, 1);
    }
    tr_faa_seqcst(&stats.count, 1);
    return TR_OK;
}

static const tr_behaviour ticked = {.name = "ticked", .handle = on_tick};

static long
rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb;
}

static bool
all_fired(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&stats.count) >= n_timers;
}

static void
test_timer_stress_a_million_pending_timers(void **state)
{
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    tr_addr a;
    uint64_t rng = 88172645463325252ull;
    uint64_t max_delay = 0;

    (void)state;
    cfg.manual_clock = true;
    stats.sys = tr_test_system_cfg(&cfg);
    tr_ctx *ctx = tr_system_ctx(stats.sys);
    assert_int_equal(tr_spawn(ctx, &ticked, NULL, NULL, &a), TR_OK);
    long before = rss_kb();
    for (long i = 0; i < n_timers; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uint64_t delay = 1 + rng % 100000;
        max_delay = delay > max_delay ? delay : max_delay;
        assert_int_equal(
            tr_send_after(ctx, a, 1, &delay, sizeof(delay), delay, NULL),
            TR_OK);
    }
    long per_timer = (rss_kb() - before) * 1024 / n_timers;
    print_message("%ld timers pending: %ld bytes each\n", n_timers, per_timer);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Sanitizers' allocators add their own bookkeeping to every block. A
     * few thousand timers do not amortise the fixed costs (the timers'
     * arrays left behind by their doubling, the allocator's fresh slabs):
     * at 5,000 they add 60 to 100 bytes a timer, at 1,000,000 a few. */
    assert_true(per_timer < (n_timers >= 100000 ? 256 : 512));
#endif
    /* Move time in uneven steps; every timer fires once, never early. */
    for (uint64_t now = 0; now <= max_delay; now += 997) {
        assert_int_equal(tr_clock_advance(stats.sys, 997), TR_OK);
    }
    assert_true(tr_test_wait_until(all_fired, NULL, 60000));
    tr_test_shutdown(stats.sys);
    assert_int_equal(tr_load_relaxed(&stats.count), n_timers);
    assert_int_equal(tr_load_relaxed(&stats.early), 0);
}

int
main(int argc, char **argv)
{
    n_timers = tr_test_arg(argc, argv, 1, n_timers);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_stress_a_million_pending_timers),
    };
    return cmocka_run_group_tests_name("timer_stress", tests, NULL, NULL);
}
