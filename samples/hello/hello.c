/*
 * The smallest troupe program: one actor that greets whoever it is told to,
 * and stops after the second greeting. When it stops it posts "done" to a
 * mailbox that main waits on, so main knows the greetings were handled
 * before it shuts the system down.
 */
#include <troupe.h>

#include <stdio.h>
#include <string.h>

enum { MSG_GREET = 1 };

/* The start argument: borrowed by init only, so init copies what it keeps. */
typedef struct greeter_args {
    tr_mailbox *done;
} greeter_args;

typedef struct greeter {
    tr_mailbox *done;
    int greeted;
} greeter;

static int
greeter_init(tr_ctx *ctx, void *state, const void *arg)
{
    greeter *g = state;
    const greeter_args *args = arg;

    (void)ctx;
    g->done = args->done;
    return TR_OK;
}

static int
greeter_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    greeter *g = state;

    printf("hello, %.*s\n", (int)msg->size, (const char *)msg->data);
    if (++g->greeted == 2) {
        return tr_stop(ctx);
    }
    return TR_OK;
}

static void
greeter_stop(tr_ctx *ctx, void *state, const tr_exit *exit)
{
    const greeter *g = state;

    (void)ctx;
    printf("greeter stops (%s) after %d greetings\n", exit->text, g->greeted);
    /* A stop callback cannot fail, so a lost "done" is only reported; main
     * then gives up waiting at its timeout. */
    if (tr_mailbox_send(g->done, "done", strlen("done")) != TR_OK) {
        fprintf(stderr, "greeter: could not post done\n");
    }
}

static const tr_behaviour greeter_behaviour = {
    .name = "greeter",
    .state_size = sizeof(greeter),
    .init = greeter_init,
    .handle = greeter_handle,
    .stop = greeter_stop,
};

int
main(void)
{
    tr_system *sys;
    tr_mailbox *done;
    tr_addr greeter_addr;
    char reply[8];
    size_t len;
    int rc;

    if (tr_mailbox_create(0, &done) != TR_OK) {
        return 1;
    }
    rc = tr_system_start(NULL, &sys);
    if (rc != TR_OK) {
        fprintf(stderr, "start: %s\n", tr_strerror(rc));
        tr_mailbox_destroy(done);
        return 1;
    }
    tr_ctx *ctx = tr_system_ctx(sys);
    const greeter_args args = {.done = done};
    rc = tr_spawn(ctx, &greeter_behaviour, &args, NULL, &greeter_addr);
    if (rc == TR_OK) {
        rc = tr_send(ctx, greeter_addr, MSG_GREET, "world", strlen("world"));
    }
    if (rc == TR_OK) {
        rc = tr_send(ctx, greeter_addr, MSG_GREET, "troupe", strlen("troupe"));
    }
    if (rc == TR_OK) {
        rc =
            tr_mailbox_recv_wait(done, reply, sizeof(reply), &len, tr_ms(5000));
    }
    if (rc != TR_OK) {
        fprintf(stderr, "hello: %s\n", tr_strerror(rc));
    }
    if (tr_system_shutdown(sys, tr_ms(1000)) != TR_OK) {
        rc = TR_ETIMEDOUT;
    }
    /* Only now is the greeter certainly done with the mailbox: it may still
     * be inside tr_mailbox_send when main has already received "done". */
    tr_mailbox_destroy(done);
    return rc == TR_OK ? 0 : 1;
}
