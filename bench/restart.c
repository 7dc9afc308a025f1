/*
 * W7 restart: a one_for_one supervisor with one worker child; a driver
 * sends 100,000 crash requests, each makes the child fail (error return)
 * and be restarted by the supervisor; the driver waits for each restart
 * before the next crash.
 *
 * How the driver learns of a restart: the child's `init`, which runs at
 * its first start and again at every restart, sends the driver MSG_UP.
 * That is the cheapest faithful signal: one message per restart, sent by
 * the new incarnation itself once it is ready, so the next crash request
 * can only reach a restarted child. A monitor would not do (a restart in
 * place keeps the address alive, so no DOWN comes), and a tr_call per
 * restart would cost a call record and a reply on top. One cycle is then
 * three messages: MSG_CRASH (driver to child), the child's report to its
 * supervisor (control lane), MSG_UP (the new `init` to the driver).
 *
 * The driver checks that every MSG_UP comes from the same address (the
 * restart is in place); main checks, through tr_sup_which_children_wait, that
 * the supervisor counted exactly n restarts. The supervisor's intensity
 * allows n restarts in 1 ms, so it never gives up however fast the
 * restarts come; a longer period would only make the supervisor keep more
 * timestamps. The clock starts when main sends the driver MSG_GO and
 * stops when the n-th MSG_UP arrives.
 */
#include "bench_util.h"

#include <string.h>

enum { MSG_GO = 1, MSG_UP = 2, MSG_CRASH = 3 };

/* The code the child fails with: a user code, outside TR_ERROR_MAP. */
enum { CRASH_CODE = -1000 };

/* ---- the child ---- */

/* Every start, first and restarts alike: tell the driver we are up. */
static int
child_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    return tr_send(ctx, *(const tr_addr *)arg, MSG_UP, NULL, 0);
}

/* MSG_CRASH: fail by returning an error; the supervisor restarts us. */
static int
child_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->type == MSG_CRASH ? CRASH_CODE : TR_OK;
}

static const tr_behaviour child_behaviour = {
    .name = "restart_child",
    .init = child_init,
    .handle = child_handle,
};

/* ---- the driver ---- */

typedef struct driver {
    tr_mailbox *done;  /* set by driver_init */
    uint64_t n;        /* restarts to drive; from MSG_GO */
    uint64_t restarts; /* MSG_UPs after the first */
    tr_addr child;     /* from the first MSG_UP */
    bool go;           /* MSG_GO has come */
} driver;

static int
driver_init(tr_ctx *ctx, void *state, const void *arg)
{
    driver *d = state;

    (void)ctx;
    memcpy(&d->done, arg, sizeof(d->done));
    return TR_OK;
}

static int
crash(tr_ctx *ctx, driver *d)
{
    int rc = tr_send(ctx, d->child, MSG_CRASH, NULL, 0);

    if (rc != TR_OK) {
        bench_post_fail(d->done, rc, "send crash");
        return tr_stop(ctx);
    }
    return TR_OK;
}

/* MSG_GO and the first MSG_UP may come in either order. */
static int
on_go(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    driver *d = state;

    memcpy(&d->n, msg->data, sizeof(d->n));
    d->go = true;
    return tr_addr_is_none(d->child) ? TR_OK : crash(ctx, d);
}

static int
on_up(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    driver *d = state;

    if (tr_addr_is_none(d->child)) {
        d->child = msg->from; /* the first start */
    } else if (!tr_addr_eq(msg->from, d->child)) {
        bench_post_fail(d->done, TR_EINVAL, "a restart at a new address");
        return tr_stop(ctx);
    } else if (++d->restarts == d->n) {
        bench_post(d->done, d->restarts);
        return TR_OK;
    }
    return d->go ? crash(ctx, d) : TR_OK;
}

static const tr_handler driver_handlers[] = {
    {MSG_GO, on_go},
    {MSG_UP, on_up},
};

static const tr_dispatch driver_dispatch = {
    .handlers = driver_handlers,
    .len = sizeof(driver_handlers) / sizeof(driver_handlers[0]),
};

static const tr_behaviour driver_behaviour = {
    .name = "restart_driver",
    .state_size = sizeof(driver),
    .init = driver_init,
    .dispatch = &driver_dispatch,
};

int
main(void)
{
    const uint64_t n = bench_scaled(100000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_addr driver_addr;
    tr_addr sup;
    tr_child_info info;
    size_t len = 0;
    bench_done d;
    double t0;

    bench_check(tr_spawn(ctx, &driver_behaviour, &done, NULL, &driver_addr),
                "spawn driver");
    /* The child's arg is borrowed for the supervisor's life: driver_addr
     * outlives the system. */
    const tr_child_spec child = {
        .id = "worker",
        .behaviour = &child_behaviour,
        .arg = &driver_addr,
        .restart = TR_PERMANENT,
    };
    const tr_sup_spec spec = {
        .name = "restart",
        .strategy = TR_ONE_FOR_ONE,
        /* Never give up: no more than this many restarts fit in 1 ms. */
        .max_restarts = TR_SUP_RESTARTS_MAX,
        .period_ms = 1,
        .children = &child,
        .len = 1,
    };
    bench_check(tr_sup_start(ctx, &spec, NULL, &sup), "tr_sup_start");

    t0 = bench_now();
    bench_check(tr_send(ctx, driver_addr, MSG_GO, &n, sizeof(n)), "send go");
    d = bench_wait(done);
    if (d.value != n) {
        bench_fail("%llu restarts seen, expected %llu",
                   (unsigned long long)d.value, (unsigned long long)n);
    }
    memset(&info, 0, sizeof(info));
    bench_check(
        tr_sup_which_children_wait(ctx, sup, &info, 1, &len, tr_ms(10000)),
        "tr_sup_which_children_wait");
    if (len != 1 || info.restarts != n || info.status != TR_CHILD_RUNNING) {
        bench_fail("the supervisor counted %u restarts (%zu children), "
                   "expected %llu",
                   info.restarts, len, (unsigned long long)n);
    }
    bench_finish(sys, done);
    bench_report("restart", n, d.t - t0, NULL);
    return 0;
}
