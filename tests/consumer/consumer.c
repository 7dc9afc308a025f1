/* The smallest user of an installed troupe: one actor, one message. */
#include <troupe.h>

#include <stdio.h>

static int
handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    tr_mailbox *done = *(tr_mailbox *const *)msg->data;
    int rc = tr_mailbox_send(done, "ok", 2);
    return rc != TR_OK ? rc : tr_stop(ctx);
}

static const tr_behaviour behaviour = {.name = "consumer", .handle = handle};

int
main(void)
{
    tr_system *sys;
    tr_mailbox *done;
    tr_addr a;
    char reply[2];
    size_t len = 0;

    if (tr_system_start(NULL, &sys) != TR_OK ||
        tr_mailbox_create(0, &done) != TR_OK) {
        return 1;
    }
    tr_ctx *ctx = tr_system_ctx(sys);
    int rc = tr_spawn(ctx, &behaviour, NULL, NULL, &a);
    if (rc == TR_OK) {
        rc = tr_send(ctx, a, 1, &done, sizeof(done));
    }
    if (rc == TR_OK) {
        rc = tr_mailbox_recv_wait(done, reply, sizeof(reply), &len,
                                  tr_ms(10000));
    }
    tr_system_shutdown(sys, tr_ms(1000));
    tr_mailbox_destroy(done);
    printf("troupe %s: %s\n", tr_version(),
           rc == TR_OK ? "ok" : tr_strerror(rc));
    return rc == TR_OK && len == 2 ? 0 : 1;
}
