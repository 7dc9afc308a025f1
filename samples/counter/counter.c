/*
 * A counter actor that can be locked, fed through a bounded mailbox.
 *
 * What it shows:
 *  - dispatch tables: the counter handles each message type in its own
 *    function, with an `otherwise` handler for types it does not know;
 *  - tr_become: "lock" switches the counter to a second table in which
 *    increments are refused, and "unlock" switches back;
 *  - backpressure: the counter's mailbox holds at most COUNTER_CAP messages.
 *    Main (a plain thread) first tries tr_send and, when it gets
 *    TR_EFULL, falls back to tr_send_wait, which waits for room. A producer
 *    actor may not wait on its worker: on TR_EFULL it keeps the increment
 *    it could not send and tries again later.
 *
 * Main and the producer report to main through one standalone mailbox.
 * The program checks the counter's final numbers and exits 1 if any is
 * wrong.
 */
#include <troupe.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum {
    MSG_INC = 1,    /* payload: int64_t amount */
    MSG_LOCK = 2,   /* refuse increments until MSG_UNLOCK */
    MSG_UNLOCK = 3, /* accept increments again */
    MSG_GET = 4,    /* post a REPORT_COUNTER to the report mailbox */
    MSG_RESET = 5,  /* a type the counter has no row for */
    MSG_KICK = 6,   /* the producer's "send some more" */
};

enum {
    COUNTER_CAP = 8,
    MAIN_INCS = 200,
    LOCKED_INCS = 5,
    PRODUCER_INCS = 1000,
};

/* What arrives in main's report mailbox. */
enum { REPORT_COUNTER = 1, REPORT_PRODUCER = 2 };

typedef struct report {
    int kind;
    int64_t value;    /* counter: the count; producer: increments sent */
    uint64_t refused; /* counter: increments refused while locked */
    uint64_t unknown; /* counter: messages of unknown type */
    uint64_t full;    /* producer: TR_EFULL results from tr_try_send */
} report;

static void
post(tr_mailbox *to, const report *r)
{
    /* An unbounded mailbox refuses only when out of memory; main then
     * times out waiting, which it reports. */
    if (tr_mailbox_send(to, r, sizeof(*r)) != TR_OK) {
        fprintf(stderr, "counter: could not post a report\n");
    }
}

/* ---- the counter ---- */

typedef struct counter_args {
    tr_mailbox *reports;
} counter_args;

typedef struct counter {
    tr_mailbox *reports;
    int64_t value;
    uint64_t refused;
    uint64_t unknown;
} counter;

static int
counter_init(tr_ctx *ctx, void *state, const void *arg)
{
    counter *c = state;
    const counter_args *args = arg;

    (void)ctx;
    c->reports = args->reports;
    return TR_OK;
}

static int
on_inc(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    counter *c = state;
    int64_t amount;

    if (msg->size != sizeof(amount)) {
        /* A malformed message is the sender's bug: fail loudly rather
         * than count garbage. */
        return tr_fail(ctx, TR_EINVAL, "MSG_INC needs an int64_t");
    }
    memcpy(&amount, msg->data, sizeof(amount));
    c->value += amount;
    return TR_OK;
}

static int
on_inc_locked(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    counter *c = state;

    (void)ctx;
    (void)msg;
    c->refused++;
    return TR_OK;
}

static const tr_dispatch locked_table;

static int
on_lock(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    return tr_become(ctx, &locked_table);
}

static int
on_unlock(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    (void)msg;
    /* NULL goes back to the behaviour's own table. */
    return tr_become(ctx, NULL);
}

static int
on_get(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const counter *c = state;
    const report r = {
        .kind = REPORT_COUNTER,
        .value = c->value,
        .refused = c->refused,
        .unknown = c->unknown,
    };

    (void)ctx;
    (void)msg;
    post(c->reports, &r);
    return TR_OK;
}

static int
on_unknown(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    counter *c = state;

    (void)ctx;
    printf("counter: ignoring message type %" PRIu32 "\n", msg->type);
    c->unknown++;
    return TR_OK;
}

static const tr_handler unlocked_rows[] = {
    {MSG_INC, on_inc},
    {MSG_LOCK, on_lock},
    {MSG_GET, on_get},
};

static const tr_dispatch unlocked_table = {
    .handlers = unlocked_rows,
    .len = sizeof(unlocked_rows) / sizeof(unlocked_rows[0]),
    .otherwise = on_unknown,
};

static const tr_handler locked_rows[] = {
    {MSG_INC, on_inc_locked},
    {MSG_UNLOCK, on_unlock},
    {MSG_GET, on_get},
};

static const tr_dispatch locked_table = {
    .handlers = locked_rows,
    .len = sizeof(locked_rows) / sizeof(locked_rows[0]),
    .otherwise = on_unknown,
};

static const tr_behaviour counter_behaviour = {
    .name = "counter",
    .state_size = sizeof(counter),
    .init = counter_init,
    .dispatch = &unlocked_table,
};

/* ---- the producer: an actor that must not wait ---- */

typedef struct producer_args {
    tr_addr counter;
    tr_mailbox *reports;
} producer_args;

typedef struct producer {
    tr_addr counter;
    tr_mailbox *reports;
    int64_t sent;
    uint64_t full;
    uint64_t kicks;
} producer;

static int
producer_init(tr_ctx *ctx, void *state, const void *arg)
{
    producer *p = state;
    const producer_args *args = arg;

    p->counter = args->counter;
    p->reports = args->reports;
    /* Start working once init has returned, from the mailbox like any
     * other work. */
    return tr_send(ctx, tr_self(ctx), MSG_KICK, NULL, 0);
}

/*
 * Send the increments 1, 2, ... PRODUCER_INCS until the counter's mailbox
 * is full, then kick ourselves to go on later. The increment that met
 * TR_EFULL was not sent, so it is sent again on the next kick: the sum
 * main checks shows that none was lost or sent twice. There are no timers
 * yet; the kick waits its turn in the producer's own mailbox, and workers
 * run other actors between batches, so the counter gets to drain. Retrying
 * this eagerly burns CPU for as long as the counter is behind (the summary
 * shows how many kicks it took), so it suits short bursts only.
 */
static int
producer_kick(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer *p = state;

    (void)msg;
    p->kicks++;
    while (p->sent < PRODUCER_INCS) {
        const int64_t amount = p->sent + 1;
        int rc = tr_send(ctx, p->counter, MSG_INC, &amount, sizeof(amount));
        if (rc == TR_EFULL) {
            p->full++;
            return tr_send(ctx, tr_self(ctx), MSG_KICK, NULL, 0);
        }
        if (rc != TR_OK) {
            return rc;
        }
        p->sent++;
    }
    printf("producer: sent %" PRId64 " increments in %" PRIu64
           " kicks; the mailbox was full %" PRIu64 " times\n",
           p->sent, p->kicks, p->full);
    const report r = {
        .kind = REPORT_PRODUCER,
        .value = p->sent,
        .full = p->full,
    };
    post(p->reports, &r);
    return tr_stop(ctx);
}

static const tr_behaviour producer_behaviour = {
    .name = "producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_kick,
};

/* ---- main ---- */

static int
send_empty(tr_ctx *ctx, tr_addr to, uint32_t type)
{
    return tr_send_wait(ctx, to, type, NULL, 0, TR_FOREVER);
}

/* Wait for the next report; it must be of `kind`. */
static int
wait_report(tr_mailbox *reports, int kind, report *out)
{
    size_t len;
    int rc =
        tr_mailbox_recv_wait(reports, out, sizeof(*out), &len, tr_ms(10000));

    if (rc == TR_OK && (len != sizeof(*out) || out->kind != kind)) {
        rc = TR_ESTATE;
    }
    return rc;
}

/* Phase 1: a plain thread may wait for room, so nothing is ever dropped. */
static int
feed_from_main(tr_ctx *ctx, tr_addr to, uint64_t *full)
{
    const int64_t one = 1;

    for (int i = 0; i < MAIN_INCS; i++) {
        int rc = tr_send(ctx, to, MSG_INC, &one, sizeof(one));
        if (rc == TR_EFULL) {
            ++*full;
            rc = tr_send_wait(ctx, to, MSG_INC, &one, sizeof(one), TR_FOREVER);
        }
        if (rc != TR_OK) {
            return rc;
        }
    }
    return TR_OK;
}

/* Phase 2: lock, try to increment, send a type nobody handles, unlock.
 * One sender's messages arrive in order, so all of them hit the locked
 * table. */
static int
exercise_lock(tr_ctx *ctx, tr_addr to)
{
    const int64_t one = 1;
    int rc = send_empty(ctx, to, MSG_LOCK);

    for (int i = 0; rc == TR_OK && i < LOCKED_INCS; i++) {
        rc = tr_send_wait(ctx, to, MSG_INC, &one, sizeof(one), TR_FOREVER);
    }
    if (rc == TR_OK) {
        rc = send_empty(ctx, to, MSG_RESET);
    }
    if (rc == TR_OK) {
        rc = send_empty(ctx, to, MSG_UNLOCK);
    }
    return rc;
}

static int
run(tr_ctx *ctx, tr_mailbox *reports, report *final)
{
    const tr_spawn_opts opts = {.mailbox_cap = COUNTER_CAP};
    tr_addr counter_addr;
    uint64_t main_full = 0;
    report r;
    int rc;

    const counter_args cargs = {.reports = reports};
    rc = tr_spawn(ctx, &counter_behaviour, &cargs, &opts, &counter_addr);
    if (rc != TR_OK) {
        return rc;
    }
    rc = feed_from_main(ctx, counter_addr, &main_full);
    if (rc != TR_OK) {
        return rc;
    }
    printf("main: sent %d increments; the mailbox was full %" PRIu64
           " times and tr_send_wait waited for room\n",
           MAIN_INCS, main_full);

    rc = exercise_lock(ctx, counter_addr);
    if (rc != TR_OK) {
        return rc;
    }
    printf("main: locked, sent %d increments and an unknown type, unlocked\n",
           LOCKED_INCS);

    const producer_args pargs = {.counter = counter_addr, .reports = reports};
    rc = tr_spawn(ctx, &producer_behaviour, &pargs, NULL, NULL);
    if (rc == TR_OK) {
        rc = wait_report(reports, REPORT_PRODUCER, &r);
    }
    if (rc != TR_OK) {
        return rc;
    }
    /* Every producer increment is queued before its report was posted, so
     * this MSG_GET arrives after all of them. */
    rc = send_empty(ctx, counter_addr, MSG_GET);
    if (rc == TR_OK) {
        rc = wait_report(reports, REPORT_COUNTER, final);
    }
    return rc;
}

int
main(void)
{
    tr_system *sys;
    tr_mailbox *reports;
    tr_system_stats stats;
    tr_system_config cfg = TR_SYSTEM_CONFIG_INIT;
    report final = {0};
    int rc;

    if (tr_mailbox_create(0, &reports) != TR_OK) {
        return 1;
    }
    cfg.final_stats = &stats;
    rc = tr_system_start(&cfg, &sys);
    if (rc != TR_OK) {
        fprintf(stderr, "start: %s\n", tr_strerror(rc));
        tr_mailbox_destroy(reports);
        return 1;
    }
    rc = run(tr_system_ctx(sys), reports, &final);
    if (rc != TR_OK) {
        fprintf(stderr, "counter: %s\n", tr_strerror(rc));
    }
    if (tr_system_shutdown(sys, tr_ms(1000)) != TR_OK) {
        fprintf(stderr, "counter: shutdown timed out\n");
        rc = TR_ETIMEDOUT;
    }
    tr_mailbox_destroy(reports);

    const int64_t want =
        MAIN_INCS + (int64_t)PRODUCER_INCS * (PRODUCER_INCS + 1) / 2;
    printf("summary: value %" PRId64 " (want %" PRId64 "), refused %" PRIu64
           " (want %d), unknown %" PRIu64 " (want 1), failed actors %" PRIu64
           ", messages handled %" PRIu64 "\n",
           final.value, want, final.refused, LOCKED_INCS, final.unknown,
           stats.failed, stats.messages_handled);
    if (rc != TR_OK || final.value != want || final.refused != LOCKED_INCS ||
        final.unknown != 1 || stats.failed != 0) {
        fprintf(stderr, "counter: FAILED\n");
        return 1;
    }
    printf("counter: ok\n");
    return 0;
}
