/*
 * W8 skynet: a root actor spawns 10 children, each 10 more, down to
 * 1,000,000 leaves (SCALE rounds the leaves down to a power of ten). Each
 * leaf replies its ordinal to its parent; each parent sums its 10
 * children's replies, sends the sum up and stops. The root posts the total,
 * which must be 499,999,500,000.
 *
 * Every node starts work on a message to itself sent from `init`, so a
 * parent's handler only spawns and the children run on whichever worker
 * takes them; spawning grandchildren inside `init` would build the whole
 * tree on the root's thread. The clock runs from the root's spawn to the
 * total.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <string.h>

enum { FANOUT = 10 };
enum { MSG_START = 1, MSG_SUM = 2 };

typedef struct node_args {
    tr_mailbox *done;
    tr_addr parent; /* TR_ADDR_NONE for the root */
    uint64_t first; /* the first leaf ordinal under this node */
    uint64_t size;  /* leaves under this node */
} node_args;

typedef struct node {
    node_args a;
    uint64_t pending; /* children that have not replied */
    uint64_t sum;
} node;

static const tr_behaviour node_behaviour;

static int
node_init(tr_ctx *ctx, void *state, const void *arg)
{
    node *n = state;

    memcpy(&n->a, arg, sizeof(n->a));
    return tr_send(ctx, tr_self(ctx), MSG_START, NULL, 0);
}

/* Send `value` to the parent (or post it, at the root) and stop. */
static int
reply(tr_ctx *ctx, node *n, uint64_t value)
{
    int rc;

    if (tr_addr_is_none(n->a.parent)) {
        bench_post(n->a.done, value);
    } else {
        rc = tr_send(ctx, n->a.parent, MSG_SUM, &value, sizeof(value));
        if (rc != TR_OK) {
            bench_post_fail(n->a.done, rc, "send a sum");
        }
    }
    return tr_stop(ctx);
}

static int
on_start(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    node *n = state;
    node_args child = {.done = n->a.done, .parent = tr_self(ctx)};
    int rc;

    (void)msg;
    if (n->a.size == 1) {
        return reply(ctx, n, n->a.first);
    }
    child.size = n->a.size / FANOUT;
    for (unsigned i = 0; i < FANOUT; i++) {
        child.first = n->a.first + i * child.size;
        rc = tr_spawn(ctx, &node_behaviour, &child, NULL, NULL);
        if (rc != TR_OK) {
            bench_post_fail(n->a.done, rc, "spawn a child");
            return tr_stop(ctx);
        }
    }
    n->pending = FANOUT;
    return TR_OK;
}

static int
on_sum(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    node *n = state;
    uint64_t v;

    memcpy(&v, msg->data, sizeof(v));
    n->sum += v;
    if (--n->pending == 0) {
        return reply(ctx, n, n->sum);
    }
    return TR_OK;
}

static const tr_handler node_handlers[] = {
    {MSG_START, on_start},
    {MSG_SUM, on_sum},
};

static const tr_dispatch node_dispatch = {
    .handlers = node_handlers,
    .len = sizeof(node_handlers) / sizeof(node_handlers[0]),
};

static const tr_behaviour node_behaviour = {
    .name = "skynet_node",
    .state_size = sizeof(node),
    .init = node_init,
    .dispatch = &node_dispatch,
};

int
main(void)
{
    const uint64_t want = bench_scaled(1000000);
    uint64_t leaves = 1;
    uint64_t actors = 1;
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    node_args root;
    bench_done d;
    double t0;

    while (leaves * FANOUT <= want) {
        leaves *= FANOUT;
        actors += leaves;
    }
    root = (node_args){.done = done, .first = 0, .size = leaves};

    t0 = bench_now();
    bench_check(tr_spawn(ctx, &node_behaviour, &root, NULL, NULL),
                "spawn root");
    d = bench_wait(done);
    if (d.value != leaves * (leaves - 1) / 2) {
        bench_fail("total %" PRIu64 ", expected %" PRIu64, d.value,
                   leaves * (leaves - 1) / 2);
    }
    bench_finish(sys, done);
    bench_report("skynet", actors, d.t - t0, NULL);
    return 0;
}
