/*
 * A running tree for the page and troupe-top tests: app (one_for_one) with
 * a worker "w", a store (one_for_all: cache, loader) and a pool
 * (simple_one_for_one) of argv[1] workers (default 10; the first ten
 * registered as pool.1 ...). Serves the
 * endpoint on 127.0.0.1 and prints "port N" once ready; then reads
 * commands from standard input, one a line: "crash NAME" makes the actor
 * registered as NAME fail, "send NAME K" sends it K messages; end of input
 * or "quit" shuts down.
 */
#include <troupe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_CRASH = 1, MSG_HELLO = 2 };

static int
named_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    return arg != NULL ? tr_register(ctx, arg, tr_self(ctx)) : TR_OK;
}

static int
handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    return msg->type == MSG_CRASH ? tr_fail(ctx, -7, "crash requested") : TR_OK;
}

static const tr_behaviour worker = {
    .name = "worker", .init = named_init, .handle = handle};

static const tr_child_spec store_kids[] = {
    {.id = "cache", .behaviour = &worker, .arg = "cache"},
    {.id = "loader", .behaviour = &worker, .arg = "loader"},
};
static const tr_sup_spec store = {.name = "store",
                                  .strategy = TR_ONE_FOR_ALL,
                                  .max_restarts = 1000,
                                  .period_ms = 1000,
                                  .children = store_kids,
                                  .len = 2};
static const tr_child_spec pool_template[] = {
    {.id = "worker", .behaviour = &worker}};
static const tr_sup_spec pool = {.name = "pool",
                                 .strategy = TR_SIMPLE_ONE_FOR_ONE,
                                 .max_restarts = 1000,
                                 .period_ms = 1000,
                                 .children = pool_template,
                                 .len = 1};
static const tr_child_spec app_kids[] = {
    {.id = "w", .behaviour = &worker, .arg = "w"},
    {.id = "store",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &store,
     .kind = TR_SUPERVISOR},
    {.id = "pool",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &pool,
     .kind = TR_SUPERVISOR},
};
static const tr_sup_spec app = {.name = "app",
                                .strategy = TR_ONE_FOR_ONE,
                                .max_restarts = 1000,
                                .period_ms = 1000,
                                .children = app_kids,
                                .len = 3};

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
    tr_system *sys;
    tr_addr top;
    tr_child_info kids[3];
    size_t len;
    uint16_t port;
    char line[256];

    if (tr_system_start(NULL, &sys) != TR_OK) {
        return 1;
    }
    tr_ctx *ctx = tr_system_ctx(sys);
    int rc = tr_sup_start(ctx, &app, NULL, &top);
    if (rc == TR_OK) {
        rc = tr_sup_which_children_wait(ctx, top, kids, 3, &len, tr_ms(10000));
    }
    /* The first ten pool children are registered as pool.1 .. pool.10. */
    static char names[10][32];
    for (long i = 0; rc == TR_OK && i < n; i++) {
        const char *name = NULL;
        if (i < 10) {
            snprintf(names[i], sizeof(names[i]), "pool.%ld", i + 1);
            name = names[i];
        }
        rc = tr_sup_start_child_wait(ctx, kids[2].addr, NULL, name,
                                     tr_ms(10000), NULL);
    }
    if (rc == TR_OK) {
        rc = tr_inspect_serve(sys, "127.0.0.1:0", NULL, &port);
    }
    if (rc != TR_OK) {
        fprintf(stderr, "page_server: %s\n", tr_strerror(rc));
        (void)tr_system_shutdown(sys, tr_ms(5000));
        return 1;
    }
    printf("port %u\n", port);
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char name[64];
        long count = 1;
        tr_addr to;
        if (strncmp(line, "quit", 4) == 0) {
            break;
        }
        uint32_t type = strncmp(line, "crash ", 6) == 0 ? MSG_CRASH : MSG_HELLO;
        if (sscanf(line, "%*s %63s %ld", name, &count) < 1 ||
            tr_whereis(sys, name, &to) != TR_OK) {
            fprintf(stderr, "page_server: no actor for '%s'\n", line);
            continue;
        }
        for (long i = 0; i < count; i++) {
            if (tr_send(ctx, to, type, NULL, 0) != TR_OK) {
                fprintf(stderr, "page_server: send failed\n");
            }
        }
        printf("ok\n");
        fflush(stdout);
    }
    return tr_system_shutdown(sys, tr_ms(5000)) == TR_OK ? 0 : 1;
}
