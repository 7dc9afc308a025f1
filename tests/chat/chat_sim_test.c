/*
 * The chat server (samples/chat) in simulation: the sample's own actors
 * and supervision tree in a simulated system, with simulated clients (an
 * actor each, connecting over the simulated network, troupe/sim.h). Each
 * client sends a few lines to the main room, then /quit, and records what
 * it reads. A seed gives one run: the same step fingerprint and the same
 * lines at every client. Under resets and partitions every client's
 * connection still ends cleanly (TR_IO_CLOSED), the server keeps no
 * connection, and the system settles (tr_sim_liveness_check).
 *
 * The driving thread serves the chat's spawn requests between steps (in
 * place of the spawner thread a real server runs).
 */
#include "support/tr_test.h"

#include <stdlib.h>

#include "chat.h"

#include <stdio.h>
#include <string.h>

enum { CLIENTS = 5, SAYS = 4, PORT = 6142 };

typedef struct client_rec {
    uint64_t hash; /* FNV-1a over every line read, in order */
    uint32_t lines;
    uint32_t hellos; /* room lines with "hello" in them */
    uint32_t own;    /* of which its own */
    bool welcomed;   /* "You are ..." */
    bool connected;
    bool ended;
    tr_io_end reason;
} client_rec;

static client_rec recs[CLIENTS];

typedef struct client_state {
    uint32_t id;
    tr_io io;
} client_state;

static int
client_init(tr_ctx *ctx, void *state, const void *arg)
{
    client_state *st = state;
    tr_io_opts o = {.framing = TR_IO_LINES, .max_frame = 1024};

    st->id = (uint32_t)(uintptr_t)arg;
    return tr_io_connect(ctx, "10.0.0.1", PORT, &o, tr_ms(5000), &st->io);
}

static int
client_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *st = state;
    client_rec *r = &recs[st->id];
    const tr_io_event *ev = msg->data;
    char line[64];

    if (msg->type != TR_MSG_IO) {
        return TR_OK;
    }
    switch (ev->kind) {
    case TR_IO_CONNECTED:
        r->connected = true;
        for (uint32_t k = 0; k < SAYS; k++) {
            int n =
                snprintf(line, sizeof(line), "hello %u from %u\n", k, st->id);
            chat_ignore(tr_io_write(ctx, ev->io, line, (size_t)n));
        }
        break;
    case TR_IO_DATA: {
        const unsigned char *p = ev->data;
        r->lines++;
        for (size_t i = 0; i < ev->len; i++) {
            r->hash = (r->hash ^ p[i]) * UINT64_C(0x100000001b3);
        }
        r->hash = (r->hash ^ '\n') * UINT64_C(0x100000001b3);
        if (ev->len >= 8 && memcmp(ev->data, "You are ", 8) == 0) {
            r->welcomed = true;
        }
        if (memmem(ev->data, ev->len, "hello ", 6) != NULL) {
            int n = snprintf(line, sizeof(line), " from %u", st->id);
            r->hellos++;
            /* Its own lines came back from the room: it may leave. */
            if (ev->len >= (size_t)n &&
                memcmp((const char *)ev->data + ev->len - n, line, (size_t)n) ==
                    0 &&
                ++r->own == SAYS) {
                chat_ignore(tr_io_write(ctx, ev->io, "/quit\n", 6));
            }
        }
        break;
    }
    case TR_IO_CLOSED:
        r->ended = true;
        r->reason = ev->reason;
        tr_stop(ctx);
        break;
    default:
        break;
    }
    return TR_OK;
}

static const tr_behaviour client_behaviour = {
    .name = "chat_client",
    .state_size = sizeof(client_state),
    .init = client_init,
    .handle = client_handle,
};

typedef struct outcome {
    uint64_t fingerprint;
    client_rec recs[CLIENTS];
    uint64_t open_after; /* the server's connections once settled */
} outcome;

/* Run the chat and its clients on seed `seed` to the end. */
static void
run_chat(uint64_t seed, const tr_sim_net *net, outcome *out)
{
    tr_sim_config sim = {.seed = seed, .net = *net};
    chat_server srv = {.cfg = {.port = PORT, .quiet = true, .sim = &sim}};
    tr_sim_stats st;
    char why[160];
    int rc;

    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < CLIENTS; i++) {
        recs[i].hash = UINT64_C(0xcbf29ce484222325);
    }
    assert_int_equal(chat_start(&srv), TR_OK);
    for (uintptr_t i = 0; i < CLIENTS; i++) {
        tr_addr a;
        assert_int_equal(tr_spawn(tr_system_ctx(srv.sys), &client_behaviour,
                                  (const void *)i, NULL, &a),
                         TR_OK);
    }
    /* Steps until idle, serving spawn requests as they come. */
    for (;;) {
        rc = tr_sim_step(srv.sys);
        if (rc == TR_ESTUCK && chat_serve_spawns(&srv) == 0) {
            break;
        }
        assert_true(rc == TR_OK || rc == TR_ESTUCK);
        (void)chat_serve_spawns(&srv);
    }
    rc = tr_sim_liveness_check(srv.sys, why, sizeof(why));
    if (rc != TR_OK) {
        print_message("seed %llu: %s\n", (unsigned long long)seed, why);
    }
    assert_int_equal(rc, TR_OK);
    assert_int_equal(tr_sim_stats_get(srv.sys, &st), TR_OK);
    out->fingerprint = st.fingerprint;
    out->open_after = atomic_load(&srv.connections);
    memcpy(out->recs, recs, sizeof(recs));
    assert_int_equal(chat_stop(&srv), TR_OK);
}

static void
test_chat_sim_clients_talk_and_quit(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1, .latency_max_ms = 20};
    outcome o;

    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        run_chat(seed, &net, &o);
        assert_int_equal(o.open_after, 0);
        for (int i = 0; i < CLIENTS; i++) {
            assert_true(o.recs[i].connected);
            assert_true(o.recs[i].welcomed);
            /* Its own lines at least: the room sends every member each. */
            assert_int_equal(o.recs[i].own, SAYS);
            assert_true(o.recs[i].ended);
            assert_int_equal(o.recs[i].reason, TR_IO_END_PEER);
        }
    }
}

static void
test_chat_sim_same_seed_same_run(void **state)
{
    tr_sim_net net = {
        .latency_min_ms = 1, .latency_max_ms = 40, .loss_ppm = 50000};
    outcome a;
    outcome b;
    bool differs = false;

    (void)state;
    run_chat(42, &net, &a);
    run_chat(42, &net, &b);
    assert_true(a.fingerprint == b.fingerprint);
    assert_memory_equal(a.recs, b.recs, sizeof(a.recs));
    for (uint64_t seed = 43; seed < 48 && !differs; seed++) {
        run_chat(seed, &net, &b);
        differs = b.fingerprint != a.fingerprint;
    }
    assert_true(differs);
}

static void
test_chat_sim_survives_resets_and_partitions(void **state)
{
    tr_sim_net net = {.latency_min_ms = 1,
                      .latency_max_ms = 10,
                      .reset_ppm = 30000,
                      .partition_ppm = 10000,
                      .partition_max_ms = 400,
                      .partition_reset_pct = 50};
    unsigned cut = 0;
    outcome o;

    /* TROUPE_SIM_BASE moves the seeds, as for tr_sim_check: CI runs each
     * commit's own (scripts/sim.sh). */
    const char *base_env = getenv("TROUPE_SIM_BASE");
    uint64_t base = base_env != NULL ? strtoull(base_env, NULL, 0) : 0;

    (void)state;
    for (uint64_t seed = base + 1; seed <= base + 20; seed++) {
        run_chat(seed, &net, &o);
        assert_int_equal(o.open_after, 0);
        for (int i = 0; i < CLIENTS; i++) {
            /* Every client heard its connection end, one way or another. */
            assert_true(o.recs[i].ended);
            if (o.recs[i].reason != TR_IO_END_PEER) {
                /* A reset, a connect that timed out in a partition, or
                 * one refused by a reset before it was up. */
                assert_true(o.recs[i].reason == TR_IO_END_RESET ||
                            o.recs[i].reason == TR_IO_END_TIMEOUT ||
                            (o.recs[i].reason == TR_IO_END_ERROR &&
                             !o.recs[i].connected));
                cut++;
            }
        }
    }
    assert_true(cut > 0); /* the faults did strike */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_sim_clients_talk_and_quit),
        cmocka_unit_test(test_chat_sim_same_seed_same_run),
        cmocka_unit_test(test_chat_sim_survives_resets_and_partitions),
    };
    return cmocka_run_group_tests_name("chat_sim", tests, NULL, NULL);
}
