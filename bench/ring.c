/*
 * W5 ring: 1,000 actors in a ring pass one token 10,000,000 hops.
 *
 * The token carries the hops still to go; each actor that receives it
 * passes it on with one hop less, and the actor that receives 0 posts its
 * index, which must be hops mod actors. Actors are spawned from the last to
 * the first, each knowing the next; the last learns the first with
 * MSG_LINK and confirms before the clock starts.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_LINK = 1, MSG_TOKEN = 2 };

typedef struct member_args {
    tr_mailbox *done;
    tr_addr next;
    uint64_t index;
} member_args;

typedef struct member {
    tr_mailbox *done;
    tr_addr next;
    uint64_t index;
} member;

static int
member_init(tr_ctx *ctx, void *state, const void *arg)
{
    member *m = state;
    const member_args *a = arg;

    (void)ctx;
    m->done = a->done;
    m->next = a->next;
    m->index = a->index;
    return TR_OK;
}

static int
on_link(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    member *m = state;

    (void)ctx;
    memcpy(&m->next, msg->data, sizeof(m->next));
    bench_post(m->done, m->index);
    return TR_OK;
}

static int
on_token(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    member *m = state;
    uint64_t hops;
    int rc;

    memcpy(&hops, msg->data, sizeof(hops));
    if (hops == 0) {
        bench_post(m->done, m->index);
        return TR_OK;
    }
    hops--;
    rc = tr_send(ctx, m->next, MSG_TOKEN, &hops, sizeof(hops));
    if (rc != TR_OK) {
        bench_post_fail(m->done, rc, "pass the token");
        return tr_stop(ctx);
    }
    return TR_OK;
}

static const tr_handler member_handlers[] = {
    {MSG_LINK, on_link},
    {MSG_TOKEN, on_token},
};

static const tr_dispatch member_dispatch = {
    .handlers = member_handlers,
    .len = sizeof(member_handlers) / sizeof(member_handlers[0]),
};

static const tr_behaviour member_behaviour = {
    .name = "ring_member",
    .state_size = sizeof(member),
    .init = member_init,
    .dispatch = &member_dispatch,
};

int
main(void)
{
    const uint64_t actors = bench_scaled(1000);
    const uint64_t hops = bench_scaled(10000000);
    tr_system *sys = bench_system_start();
    tr_ctx *ctx = tr_system_ctx(sys);
    tr_mailbox *done = bench_mailbox_create();
    tr_addr last = TR_ADDR_NONE;
    tr_addr next = TR_ADDR_NONE;
    bench_done d;
    double t0;

    for (uint64_t i = actors; i-- > 0;) {
        member_args args = {.done = done, .next = next, .index = i};
        bench_check(tr_spawn(ctx, &member_behaviour, &args, NULL, &next),
                    "spawn");
        if (i == actors - 1) {
            last = next;
        }
    }
    /* `next` is now the first actor. */
    bench_check(tr_send(ctx, last, MSG_LINK, &next, sizeof(next)), "send link");
    d = bench_wait(done);

    t0 = bench_now();
    bench_check(tr_send(ctx, next, MSG_TOKEN, &hops, sizeof(hops)),
                "send token");
    d = bench_wait(done);
    if (d.value != hops % actors) {
        bench_fail("the token stopped at actor %" PRIu64 ", expected %" PRIu64,
                   d.value, hops % actors);
    }
    bench_finish(sys, done);
    bench_report("ring", hops, d.t - t0, NULL);
    return 0;
}
