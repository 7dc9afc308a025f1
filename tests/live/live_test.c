/*
 * The live endpoint over loopback: every route with its content checked
 * (JSON by jq, DOT by Graphviz's dot, /metrics line by line against the
 * text exposition format), the /events stream while actors fail and
 * restart, the Host check, read-only routes, bad requests, clients that
 * half-close, vanish mid-reply or drip their requests, the cap on
 * connections, watchers that come and go, fall behind or stall (and what
 * they hold), warnings with their hysteresis, and the endpoint's own start
 * and stop.
 */
#include "support/tr_test.h"

#include "http.h"

#include "actors/actor.h"

#include <ctype.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MSG_CRASH = 1, MSG_HELLO = 2, MSG_BLOCK = 3 };

/* A handler told to block waits here until the test lets it go. */
static tr_atomic(uint32_t) release_block;
static tr_atomic(uint32_t) blocked;

static int
w_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (msg->type == MSG_CRASH) {
        return tr_fail(ctx, -42, "asked to crash");
    }
    if (msg->type == MSG_BLOCK) {
        tr_store_relaxed(&blocked, 1);
        /* Bounded: never hold a worker past 5 s, whatever the test does. */
        for (int i = 0; i < 5000 && tr_load_acq(&release_block) == 0; i++) {
            usleep(1000);
        }
        tr_store_relaxed(&blocked, 0);
    }
    return TR_OK;
}

static int
named_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)state;
    return arg != NULL ? tr_register(ctx, arg, tr_self(ctx)) : TR_OK;
}

static const tr_behaviour worker = {
    .name = "kv_worker", .init = named_init, .handle = w_handle};

static const tr_child_spec db_kids[2] = {
    {.id = "cache", .behaviour = &worker, .arg = "cache"},
    {.id = "loader", .behaviour = &worker},
};
static const tr_sup_spec db = {.name = "db",
                               .strategy = TR_ONE_FOR_ALL,
                               .max_restarts = 3,
                               .period_ms = 1000,
                               .children = db_kids,
                               .len = 2};
static const tr_child_spec pool_template[1] = {
    {.id = "w", .behaviour = &worker}};
static const tr_sup_spec pool = {.name = "pool",
                                 .strategy = TR_SIMPLE_ONE_FOR_ONE,
                                 .max_restarts = 100000,
                                 .period_ms = 1000,
                                 .children = pool_template,
                                 .len = 1};
static const tr_child_spec app_kids[3] = {
    {.id = "w", .behaviour = &worker, .arg = "w"},
    {.id = "db",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &db,
     .kind = TR_SUPERVISOR},
    {.id = "pool",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &pool,
     .kind = TR_SUPERVISOR},
};
static const tr_sup_spec app = {.name = "app",
                                .strategy = TR_ONE_FOR_ONE,
                                .max_restarts = 100000,
                                .period_ms = 1000,
                                .children = app_kids,
                                .len = 3};

/* Warnings the callback saw, in order. */
enum { MAX_SEEN = 256 };
typedef struct seen_warning {
    tr_warning_kind kind;
    bool raised;
    char path[128];
} seen_warning;
static seen_warning seen[MAX_SEEN];
static tr_atomic(uint32_t) nseen;

static void
on_warning(void *arg, const tr_warning *w)
{
    (void)arg;
    uint32_t i = tr_load_relaxed(&nseen);
    if (i < MAX_SEEN) {
        seen[i].kind = w->kind;
        seen[i].raised = w->raised;
        snprintf(seen[i].path, sizeof(seen[i].path), "%s", w->path);
        /* Release: the test thread reads the entry after the count. */
        tr_store_rel(&nseen, i + 1);
    }
}

typedef struct fixture {
    tr_system *sys;
    tr_addr app;
    uint16_t port;
} fixture;

static fixture fx;

static void
start(const tr_inspect_opts *opts)
{
    tr_store_relaxed(&release_block, 0);
    tr_store_relaxed(&nseen, 0);
    fx.sys = tr_test_system(2);
    assert_int_equal(tr_sup_start(tr_system_ctx(fx.sys), &app, NULL, &fx.app),
                     TR_OK);
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:0", opts, &fx.port),
                     TR_OK);
    assert_true(fx.port != 0);
}

static int
setup(void **state)
{
    (void)state;
    start(NULL);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tr_store_rel(&release_block, 1);
    tr_test_shutdown(fx.sys);
    return 0;
}

static tr_addr
whereis(const char *name)
{
    tr_addr a = TR_ADDR_NONE;
    for (int i = 0; i < 5000; i++) {
        if (tr_whereis(fx.sys, name, &a) == TR_OK) {
            return a;
        }
        usleep(1000);
    }
    fail_msg("no actor named %s", name);
    return a;
}

/* Write `body` to a temporary file; its name in `path`. */
static void
temp_file(const char *body, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/troupe_live_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, body, len), (ssize_t)len);
    close(fd);
}

/* Run a shell command on the file; its exit status. */
static int
run_on(const char *cmd_fmt, const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), cmd_fmt, path);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static bool
tool_missing(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) != 0;
}

/* ---- the documents ---- */

static void
test_live_tree_json_is_valid_and_counts(void **state)
{
    http_reply r;
    char path[64];

    (void)state;
    if (tool_missing("jq")) {
        fail_msg("jq is missing: run scripts/install-deps.sh");
    }
    assert_int_equal(
        tr_send(tr_system_ctx(fx.sys), whereis("w"), MSG_HELLO, NULL, 0),
        TR_OK);
    assert_int_equal(
        tr_send(tr_system_ctx(fx.sys), whereis("w"), MSG_CRASH, NULL, 0),
        TR_OK);
    /* Until the restart shows (the failure shows first, while the child
     * is held, then the count moves to 1). */
    bool ok = false;
    for (int i = 0; i < 500 && !ok; i++) {
        assert_true(http_get(fx.port, "/tree.json", &r));
        temp_file(r.body, r.len, path, sizeof(path));
        ok = run_on("jq -e '.nodes[] | select(.path == \"/app/w\") | "
                    ".restarts == 1 and .status == \"running\" and "
                    ".name == \"w\" and "
                    ".last_failure.reason == \"asked to crash\" and "
                    ".last_failure.code == -42' %s >/dev/null",
                    path) == 0;
        unlink(path);
        if (!ok) {
            http_reply_free(&r);
            usleep(10000);
        }
    }
    assert_true(ok);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_header(&r, "Content-Type"), "application/json");
    temp_file(r.body, r.len, path, sizeof(path));
    /* The document parses, and every node carries its counters. */
    assert_int_equal(
        run_on("jq -e '.version == 1 and .omitted == 0 and "
               "([.nodes[].path] == [\"/app\",\"/app/w\",\"/app/db\","
               "\"/app/db/cache\",\"/app/db/loader\",\"/app/pool\"]) and "
               "all(.nodes[]; (.handled|type) == \"number\" and "
               "(.mailbox.length|type) == \"number\" and "
               "(.mailbox.high_water|type) == \"number\" and "
               "(.restarts|type) == \"number\" and "
               "(.handler_ns|type) == \"number\" and "
               "(.dead_letters|type) == \"number\" and has(\"last_failure\"))"
               " and (.system.workers == 2) and "
               "(.system.workers_detail|length) == 2' %s >/dev/null",
               path),
        0);
    unlink(path);
    http_reply_free(&r);
}

static void
test_live_tree_dot_renders(void **state)
{
    http_reply r;
    char path[64];

    (void)state;
    if (tool_missing("dot")) {
        fail_msg("Graphviz's dot is missing: run scripts/install-deps.sh");
    }
    assert_true(http_get(fx.port, "/tree.dot", &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"/app/db\" -> \"/app/db/cache\""));
    temp_file(r.body, r.len, path, sizeof(path));
    assert_int_equal(run_on("dot -Tsvg -o /dev/null %s", path), 0);
    unlink(path);
    http_reply_free(&r);

    assert_true(http_get(fx.port, "/tree.txt", &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "/app/db/loader (kv_worker) running"));
    http_reply_free(&r);
}

/* ---- /metrics against the text exposition format 0.0.4 ---- */

static bool
metric_name_ok(const char *s, size_t n)
{
    if (n == 0 ||
        !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':')) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')) {
            return false;
        }
    }
    return true;
}

/* `{a="x",b="y"}`: names valid, values with only \\, \" and \n escapes;
 * returns the position after '}', or NULL. */
static const char *
labels_ok(const char *p)
{
    if (*p != '{') {
        return p;
    }
    p++;
    while (*p != '}') {
        const char *start = p;
        while (isalnum((unsigned char)*p) || *p == '_') {
            p++;
        }
        if (p == start || isdigit((unsigned char)*start) || *p != '=' ||
            p[1] != '"') {
            return NULL;
        }
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n') {
                return NULL;
            }
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                    return NULL;
                }
                p++;
            }
            p++;
        }
        p++;
        if (*p == ',') {
            p++;
        } else if (*p != '}') {
            return NULL;
        }
    }
    return p + 1;
}

typedef struct family {
    char name[128];
    char type[16];
    bool help;
} family;

static void
test_live_metrics_follow_the_exposition_format(void **state)
{
    http_reply r;
    family fams[128];
    size_t nfam = 0;
    size_t samples = 0;

    (void)state;
    assert_true(http_get(fx.port, "/metrics", &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(http_header(&r, "Content-Type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_true(r.len > 0 && r.body[r.len - 1] == '\n');
    char *save = NULL;
    for (char *line = strtok_r(r.body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0 ||
            strncmp(line, "# TYPE ", 7) == 0) {
            bool help = line[2] == 'H';
            char rest[256];
            assert_int_equal(sscanf(line + 7, "%127s %255[^\n]", name, rest),
                             2);
            assert_true(metric_name_ok(name, strlen(name)));
            family *f = NULL;
            for (size_t i = 0; i < nfam; i++) {
                if (strcmp(fams[i].name, name) == 0) {
                    f = &fams[i];
                }
            }
            if (f == NULL) {
                assert_true(nfam < 128);
                f = &fams[nfam++];
                memset(f, 0, sizeof(*f));
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (help) {
                assert_false(f->help); /* once */
                f->help = true;
            } else {
                assert_string_equal(f->type, ""); /* once */
                assert_true(strcmp(rest, "counter") == 0 ||
                            strcmp(rest, "gauge") == 0 ||
                            strcmp(rest, "histogram") == 0);
                snprintf(f->type, sizeof(f->type), "%.15s", rest);
                /* Counters are named ..._total. */
                if (strcmp(rest, "counter") == 0) {
                    size_t n = strlen(name);
                    assert_true(n > 6 && strcmp(name + n - 6, "_total") == 0);
                }
            }
            continue;
        }
        assert_true(line[0] != '#');
        /* A sample: name, labels, one space, a value. */
        size_t n = strcspn(line, "{ ");
        assert_true(metric_name_ok(line, n));
        memcpy(name, line, n);
        name[n] = '\0';
        const char *after = labels_ok(line + n);
        assert_non_null(after);
        assert_true(*after == ' ');
        char *end;
        double v = strtod(after + 1, &end);
        assert_true(end != after + 1 && *end == '\0');
        assert_false(isnan(v));
        /* Its family was declared before it, with HELP and TYPE. */
        family *f = NULL;
        for (size_t i = 0; i < nfam && f == NULL; i++) {
            size_t fl = strlen(fams[i].name);
            if (strcmp(fams[i].name, name) == 0 ||
                (strcmp(fams[i].type, "histogram") == 0 &&
                 strncmp(name, fams[i].name, fl) == 0 &&
                 (strcmp(name + fl, "_bucket") == 0 ||
                  strcmp(name + fl, "_sum") == 0 ||
                  strcmp(name + fl, "_count") == 0))) {
                f = &fams[i];
            }
        }
        assert_non_null(f);
        assert_true(f->help && f->type[0] != '\0');
        assert_null(strstr(line, "0x")); /* no addresses in labels */
        samples++;
    }
    assert_true(samples > 40);
    http_reply_free(&r);

    /* The families the issue names, with their labels. */
    assert_true(http_get(fx.port, "/metrics", &r));
    const char *want[] = {
        "troupe_worker_busy_seconds_total{worker=\"0\"} ",
        "troupe_worker_run_queue_length{worker=\"1\"} ",
        "troupe_worker_steals_total{worker=\"0\"} ",
        "troupe_worker_parks_total{worker=\"1\"} ",
        "troupe_actor_mailbox_length{path=\"/app/db/cache\"} 0",
        "troupe_actor_messages_handled_total{path=\"/app/w\"} ",
        "troupe_actor_restarts_total{path=\"/app/db\"} 0",
        "troupe_actor_dead_letters_total{path=\"/app/w\"} ",
        "troupe_handler_duration_seconds_bucket{le=\"+Inf\"} ",
        "troupe_handler_duration_seconds_sum ",
        "troupe_dead_letters_total ",
        "troupe_actors_failed_total ",
        "troupe_warnings_total{kind=\"restart_storm\"} 0",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(r.body, want[i]) == NULL) {
            fail_msg("/metrics lacks '%s'", want[i]);
        }
    }
    http_reply_free(&r);
}

/* ---- /events ---- */

static bool
next_tree_event(sse *s, char *data, size_t cap, uint64_t *id)
{
    char event[32];
    while (sse_next(s, event, sizeof(event), id, data, cap, 5000)) {
        if (strcmp(event, "tree") == 0) {
            return true;
        }
    }
    return false;
}

static void
test_live_events_follow_failures_and_restarts_in_order(void **state)
{
    sse s;
    char event[32];
    char data[1024];
    uint64_t id;
    uint64_t last = 0;

    (void)state;
    assert_true(sse_open(&s, fx.port, 0));
    assert_true(
        sse_next(&s, event, sizeof(event), &id, data, sizeof(data), 5000));
    assert_string_equal(event, "hello");
    tr_addr w = whereis("w");
    for (unsigned round = 1; round <= 3; round++) {
        assert_int_equal(tr_send(tr_system_ctx(fx.sys), w, MSG_CRASH, NULL, 0),
                         TR_OK);
        char want[128];
        /* The failure with its reason, then the restart. */
        assert_true(next_tree_event(&s, data, sizeof(data), &id));
        assert_true(id > last);
        last = id;
        assert_non_null(strstr(data, "\"type\":\"failure\""));
        assert_non_null(strstr(data, "\"path\":\"/app/w\""));
        assert_non_null(strstr(data, "\"reason\":\"asked to crash\""));
        assert_true(next_tree_event(&s, data, sizeof(data), &id));
        assert_true(id == last + 1);
        last = id;
        assert_non_null(strstr(data, "\"type\":\"restart\""));
        snprintf(want, sizeof(want), "\"restarts\":%u", round);
        assert_non_null(strstr(data, want));
    }
    /* A whole subtree: one_for_all restarts both of db's children. */
    assert_int_equal(
        tr_send(tr_system_ctx(fx.sys), whereis("cache"), MSG_CRASH, NULL, 0),
        TR_OK);
    const char *order[] = {"failure\",\"path\":\"/app/db/cache",
                           "exit\",\"path\":\"/app/db/loader",
                           "restart\",\"path\":\"/app/db/cache",
                           "restart\",\"path\":\"/app/db/loader"};
    for (size_t i = 0; i < 4; i++) {
        assert_true(next_tree_event(&s, data, sizeof(data), &id));
        assert_true(id == last + 1);
        last = id;
        if (strstr(data, order[i]) == NULL) {
            fail_msg("event %zu: want %s, got %s", i, order[i], data);
        }
    }
    /* Pool children come and go. */
    tr_addr pool_addr;
    tr_addr kid;
    size_t n;
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    tr_child_info kids[3];
    assert_int_equal(
        tr_sup_which_children_wait(ctx, fx.app, kids, 3, &n, tr_ms(5000)),
        TR_OK);
    pool_addr = kids[2].addr;
    assert_int_equal(
        tr_sup_start_child_wait(ctx, pool_addr, NULL, NULL, tr_ms(5000), &kid),
        TR_OK);
    assert_true(next_tree_event(&s, data, sizeof(data), &id));
    assert_non_null(strstr(data, "\"type\":\"start\",\"path\":\"/app/pool/"));
    /* simple_one_for_one children are named by their ordinal. */
    assert_int_equal(
        tr_sup_terminate_child_wait(ctx, pool_addr, "1", tr_ms(5000)), TR_OK);
    assert_true(next_tree_event(&s, data, sizeof(data), &id));
    assert_non_null(strstr(data, "\"type\":\"exit\",\"path\":\"/app/pool/"));
    assert_true(next_tree_event(&s, data, sizeof(data), &id));
    assert_non_null(strstr(data, "\"type\":\"stop\",\"path\":\"/app/pool/"));
    sse_close(&s);
}

/* ---- security and robustness ---- */

/* Start `n` more workers in the pool. */
static void
grow_pool(size_t n)
{
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    tr_child_info kids[3];
    size_t len;
    tr_addr kid;

    assert_int_equal(
        tr_sup_which_children_wait(ctx, fx.app, kids, 3, &len, tr_ms(5000)),
        TR_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tr_sup_start_child_wait(ctx, kids[2].addr, NULL, NULL,
                                                 tr_ms(5000), &kid),
                         TR_OK);
    }
}

static void
test_live_half_closed_client_gets_the_whole_reply(void **state)
{
    const char *paths[] = {"/tree.json", "/tree.txt", "/tree.dot", "/metrics"};
    http_reply r;

    (void)state;
    /* Every document past the 16 KiB that one write sends. */
    grow_pool(400);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        /* http_get sends its request and half-closes (shutdown SHUT_WR),
         * as nc -N does: the FIN arrives while the reply is written. */
        assert_true(http_get(fx.port, paths[i], &r));
        assert_int_equal(r.status, 200);
        const char *cl = http_header(&r, "Content-Length");
        assert_non_null(cl);
        size_t want = strtoul(cl, NULL, 10);
        if (want <= 16384 || r.len != want) {
            fail_msg("%s: %zu bytes of %zu", paths[i], r.len, want);
        }
        http_reply_free(&r);
    }
    /* HTTP/1.0: the reply has no length and ends at the close; the
     * document ends whole. */
    char raw[256];
    snprintf(raw, sizeof(raw),
             "GET /tree.json HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n\r\n", fx.port);
    assert_true(http_raw(fx.port, raw, strlen(raw), &r));
    assert_int_equal(r.status, 200);
    assert_true(r.len > 16384);
    assert_string_equal(r.body + r.len - 4, "]}}\n");
    http_reply_free(&r);
}

static void
test_live_client_gone_mid_reply_harms_nothing(void **state)
{
    char raw[256];
    http_reply r;

    (void)state;
    grow_pool(400);
    snprintf(raw, sizeof(raw),
             "GET /tree.json HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", fx.port);
    /* Each client asks and leaves at once (its FIN before the reply):
     * the first write reaches a closed socket, which answers with a
     * reset, and the next one fails with EPIPE. */
    for (int i = 0; i < 20; i++) {
        int fd = http_connect(fx.port, 0);
        assert_true(fd >= 0);
        assert_int_equal(send(fd, raw, strlen(raw), MSG_NOSIGNAL),
                         (ssize_t)strlen(raw));
        close(fd);
    }
    /* The process is alive (no SIGPIPE) and the endpoint serves. */
    assert_true(http_get(fx.port, "/tree.txt", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

static int
status_of(const char *raw)
{
    http_reply r;
    if (!http_raw(fx.port, raw, strlen(raw), &r)) {
        return 0; /* closed without a reply */
    }
    int st = r.status;
    http_reply_free(&r);
    return st;
}

static void
test_live_foreign_host_is_forbidden(void **state)
{
    char raw[256];

    (void)state;
    snprintf(raw, sizeof(raw),
             "GET /tree.json HTTP/1.1\r\nHost: evil.example:%u\r\n"
             "Connection: close\r\n\r\n",
             fx.port);
    assert_int_equal(status_of(raw), 403);
    snprintf(raw, sizeof(raw),
             "GET / HTTP/1.1\r\nHost: 127.0.0.1.evil.example:%u\r\n"
             "Connection: close\r\n\r\n",
             fx.port);
    assert_int_equal(status_of(raw), 403);
    snprintf(raw, sizeof(raw),
             "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
             "Connection: close\r\n\r\n",
             (unsigned)(fx.port + 1));
    assert_int_equal(status_of(raw), 403); /* another port */
    assert_int_equal(
        status_of("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"), 403);
    snprintf(raw, sizeof(raw),
             "GET /metrics HTTP/1.1\r\nHost: localhost:%u\r\n"
             "Connection: close\r\n\r\n",
             fx.port);
    assert_int_equal(status_of(raw), 200);
    snprintf(raw, sizeof(raw),
             "GET /tree.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Connection: close\r\n\r\n");
    assert_int_equal(status_of(raw), 200);
}

/* The status of GET /tree.txt with `headers` (each ending in CRLF), from
 * 127.0.0.1 or `ip`, for `target`. */
static int
status_with(const char *ip, const char *target, const char *headers)
{
    char raw[512];
    http_reply r;

    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\n%sConnection: close\r\n\r\n",
             target, headers);
    if (!http_raw_at(ip, fx.port, raw, strlen(raw), &r)) {
        return 0;
    }
    int st = r.status;
    http_reply_free(&r);
    return st;
}

static void
test_live_host_check_is_strict(void **state)
{
    char h[256];
    char t[256];
    unsigned p = fx.port;

    (void)state;
    /* Two Host headers: malformed (RFC 9112), whichever comes first. */
    snprintf(h, sizeof(h), "Host: 127.0.0.1:%u\r\nHost: 127.0.0.1:%u\r\n", p,
             p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 400);
    snprintf(h, sizeof(h), "Host: 127.0.0.1:%u\r\nHost: evil.example\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 400);
    /* A target that names another host, with a good Host header. */
    snprintf(h, sizeof(h), "Host: 127.0.0.1:%u\r\n", p);
    assert_int_equal(
        status_with("127.0.0.1", "http://evil.example/tree.txt", h), 403);
    snprintf(t, sizeof(t), "http://evil.example:%u/tree.txt", p);
    assert_int_equal(status_with("127.0.0.1", t, h), 403);
    assert_int_equal(status_with("127.0.0.1", "//evil.example/tree.txt", h),
                     403);
    snprintf(t, sizeof(t), "http://127.0.0.1:%u/tree.txt", p + 1);
    assert_int_equal(status_with("127.0.0.1", t, h), 403);
    /* A port with a sign or a space (strtoul takes both). */
    snprintf(h, sizeof(h), "Host: localhost:+%u\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 403);
    snprintf(h, sizeof(h), "Host: localhost: %u\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 403);
    snprintf(h, sizeof(h), "Host: 127.0.0.1:\t%u\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 403);
    /* What is ours still is. */
    snprintf(h, sizeof(h), "Host: 127.0.0.1:%u\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 200);
    snprintf(t, sizeof(t), "http://127.0.0.1:%u/tree.txt", p);
    assert_int_equal(status_with("127.0.0.1", t, h), 200);
    snprintf(h, sizeof(h), "Host: LocalHost:%u\r\n", p);
    assert_int_equal(status_with("127.0.0.1", "/tree.txt", h), 200);
    assert_int_equal(
        status_with("127.0.0.1", "/tree.txt", "Host: localhost\r\n"), 200);
    /* Bound to ::1: its own name, bracketed. */
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    assert_int_equal(tr_inspect_serve(fx.sys, "[::1]:0", NULL, &fx.port),
                     TR_OK);
    p = fx.port;
    snprintf(h, sizeof(h), "Host: [::1]:%u\r\n", p);
    assert_int_equal(status_with("::1", "/tree.txt", h), 200);
    snprintf(t, sizeof(t), "http://[::1]:%u/tree.txt", p);
    assert_int_equal(status_with("::1", t, h), 200);
    assert_int_equal(status_with("::1", "/tree.txt", "Host: [::1]\r\n"), 200);
    snprintf(h, sizeof(h), "Host: localhost:%u\r\n", p);
    assert_int_equal(status_with("::1", "/tree.txt", h), 200);
    snprintf(h, sizeof(h), "Host: [::1]:+%u\r\n", p);
    assert_int_equal(status_with("::1", "/tree.txt", h), 403);
    snprintf(h, sizeof(h), "Host: 127.0.0.1:%u\r\n", p);
    assert_int_equal(status_with("::1", "/tree.txt", h), 403);
}

static void
test_live_no_route_writes(void **state)
{
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    char raw[256];
    http_reply r;

    (void)state;
    for (size_t i = 0; i < 5; i++) {
        snprintf(raw, sizeof(raw),
                 "%s /tree.json HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                 methods[i], fx.port);
        assert_true(http_raw(fx.port, raw, strlen(raw), &r));
        assert_int_equal(r.status, 405);
        assert_string_equal(http_header(&r, "Allow"), "GET, HEAD");
        http_reply_free(&r);
    }
    assert_true(http_get(fx.port, "/nothing/here", &r));
    assert_int_equal(r.status, 404);
    http_reply_free(&r);
    /* HEAD gets the headers only. */
    snprintf(raw, sizeof(raw),
             "HEAD /tree.json HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
             "Connection: close\r\n\r\n",
             fx.port);
    assert_true(http_raw(fx.port, raw, strlen(raw), &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    http_reply_free(&r);
    /* So does a HEAD that fails: on a kept connection, the next response
     * follows its headers at once (an error's body was read as the start
     * of it). */
    snprintf(raw, sizeof(raw),
             "HEAD /nothing/here HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n"
             "GET /tree.txt HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
             "Connection: close\r\n\r\n",
             fx.port, fx.port);
    /* Both at once, and the client's side shut down after them: both
     * are answered. */
    int fd = http_connect(fx.port, 0);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, raw, strlen(raw), MSG_NOSIGNAL),
                     (ssize_t)strlen(raw));
    shutdown(fd, SHUT_WR);
    char got[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(got) - 1 &&
           (k = recv(fd, got + n, sizeof(got) - 1 - n, 0)) > 0) {
        n += (size_t)k;
    }
    close(fd);
    got[n] = '\0';
    assert_true(strncmp(got, "HTTP/1.1 404 ", 13) == 0);
    char *next = strstr(got, "\r\n\r\n");
    assert_non_null(next);
    assert_true(strncmp(next + 4, "HTTP/1.1 200 ", 13) == 0);
}

static void
test_live_bad_requests_get_errors_and_harm_nothing(void **state)
{
    (void)state;
    size_t big = 200000;
    char *raw = malloc(big + 256);
    assert_non_null(raw);

    /* A request line far too long. */
    int n = sprintf(raw, "GET /");
    memset(raw + n, 'a', big);
    n += (int)big;
    n += sprintf(raw + n, " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", fx.port);
    int st = status_of(raw);
    assert_true(st == 0 || (st >= 400 && st < 500));
    /* A header far too long. */
    n = sprintf(
        raw, "GET /tree.json HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nX: ", fx.port);
    memset(raw + n, 'b', big);
    n += (int)big;
    n += sprintf(raw + n, "\r\n\r\n");
    st = status_of(raw);
    assert_true(st == 0 || (st >= 400 && st < 500));
    /* A body past the limit. */
    n = sprintf(raw,
                "GET /tree.json HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                "Content-Length: %zu\r\n\r\n",
                fx.port, big);
    memset(raw + n, 'c', big);
    st = status_of(raw);
    assert_true(st == 0 || (st >= 400 && st < 500));
    free(raw);
    /* Garbage, a bad version, binary noise. */
    st = status_of("GARBAGE\r\n\r\n");
    assert_true(st == 0 || st == 400);
    st = status_of("GET / HTTP/9.9\r\n\r\n");
    assert_true(st == 0 || (st >= 400 && st < 600));
    st = status_of("\x01\x02\x03\xff\xfe\r\n\r\n");
    assert_true(st == 0 || st == 400);
    /* A half-sent request, abandoned. */
    int fd = http_connect(fx.port, 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "GET /tree.json HTT", 18), 18);
    close(fd);
    /* The endpoint still serves. */
    http_reply r;
    assert_true(http_get(fx.port, "/tree.json", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

/* Milliseconds on the monotonic clock. */
static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read one reply on a kept connection (its headers, then Content-Length
 * bytes of body); its status, 0 when none came whole. */
static int
read_one_reply(int fd)
{
    char buf[8192];
    size_t n = 0;
    char *sep = NULL;

    while (sep == NULL) {
        ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (k <= 0) {
            return 0;
        }
        n += (size_t)k;
        buf[n] = '\0';
        sep = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl == NULL || cl > sep) {
        return 0;
    }
    size_t want = (size_t)(sep + 4 - buf) +
                  strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    while (n < want && n < sizeof(buf) - 1) {
        ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (k <= 0) {
            return 0;
        }
        n += (size_t)k;
    }
    int status = 0;
    return n == want && sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

static void
test_live_slow_request_is_cut(void **state)
{
    char head[256];
    char req[256];
    int slow = http_connect(fx.port, 0);
    int kept = http_connect(fx.port, 0);

    (void)state;
    assert_true(slow >= 0 && kept >= 0);
    /* One client drips a request's headers, a byte a second (the idle
     * timeout never fires); another asks on one kept connection every 3 s,
     * for longer than a request may take. */
    int hn = snprintf(head, sizeof(head),
                      "GET /tree.txt HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                      "X-Slow: ",
                      fx.port);
    int rn = snprintf(req, sizeof(req),
                      "GET /tree.txt HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                      fx.port);
    assert_int_equal(send(slow, head, (size_t)hn, MSG_NOSIGNAL), hn);
    uint64_t t0 = mono_ms();
    uint64_t next_drip = t0 + 1000;
    uint64_t next_ask = t0;
    uint64_t cut_at = 0;
    unsigned answered = 0;
    for (uint64_t now = t0;
         now - t0 < 25000 && (cut_at == 0 || now - t0 < 13000);
         now = mono_ms()) {
        if (now >= next_ask && next_ask - t0 <= 12000) {
            assert_int_equal(send(kept, req, (size_t)rn, MSG_NOSIGNAL), rn);
            assert_int_equal(read_one_reply(kept), 200);
            answered++;
            next_ask += 3000;
        }
        if (cut_at != 0) {
            usleep(100000);
            continue;
        }
        if (now >= next_drip) {
            (void)send(slow, "a", 1, MSG_NOSIGNAL);
            next_drip += 1000;
        }
        struct pollfd p = {.fd = slow, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            char c;
            /* The end, and no reply: the request never arrived whole. */
            assert_true(recv(slow, &c, 1, 0) <= 0);
            cut_at = mono_ms();
        }
    }
    close(slow);
    close(kept);
    if (cut_at == 0) {
        fail_msg("a request dripping a byte a second was never cut");
    }
    /* Cut at its bound (10 s), not before; the kept connection, older
     * than that, was answered every time. */
    assert_true(cut_at - t0 >= 8000 && cut_at - t0 <= 20000);
    assert_int_equal(answered, 5);
}

static void
test_live_connections_past_the_cap_wait(void **state)
{
    /* max_watchers (64) + 64. */
    enum { CAP = 128 };
    static int fds[CAP];
    char req[256];

    (void)state;
    for (int i = 0; i < CAP; i++) {
        fds[i] = http_connect(fx.port, 0);
        assert_true(fds[i] >= 0);
    }
    int rn = snprintf(req, sizeof(req),
                      "GET /tree.txt HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                      fx.port);
    /* Three times: one more, whose handshake the kernel completes, is not
     * taken while all the others are open; one leaves, and the late one
     * is taken and answered soon (the sweep that notices runs often while
     * the endpoint is full), and then holds that slot. */
    for (int k = 0; k < 3; k++) {
        int late = http_connect(fx.port, 0);
        assert_true(late >= 0);
        assert_int_equal(send(late, req, (size_t)rn, MSG_NOSIGNAL), rn);
        struct pollfd p = {.fd = late, .events = POLLIN};
        assert_int_equal(poll(&p, 1, k == 0 ? 1000 : 200), 0);
        uint64_t t0 = mono_ms();
        close(fds[k]);
        assert_int_equal(read_one_reply(late), 200);
        uint64_t waited = mono_ms() - t0;
        if (waited > 900) {
            fail_msg("answered %" PRIu64 " ms after a slot was let go", waited);
        }
        fds[k] = late;
    }
    for (int i = 0; i < CAP; i++) {
        close(fds[i]);
    }
    http_reply r;
    assert_true(http_get(fx.port, "/tree.txt", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

/* The watchers the endpoint counts, from /metrics. */
static long
watchers_now(void)
{
    http_reply r;
    long n = -1;
    if (http_get(fx.port, "/metrics", &r)) {
        const char *p = strstr(r.body, "\ntroupe_inspect_watchers ");
        if (p != NULL) {
            n = strtol(p + strlen("\ntroupe_inspect_watchers "), NULL, 10);
        }
        http_reply_free(&r);
    }
    return n;
}

static void
test_live_a_hundred_watchers_come_and_go(void **state)
{
    enum { N = 100 };
    static sse s[N];
    char event[32];
    char data[512];
    uint64_t id;

    (void)state;
    for (int round = 0; round < 2; round++) {
        int open = 0;
        for (int i = 0; i < N; i++) {
            if (sse_open(&s[i], fx.port, 0)) {
                open++;
                /* Some read the greeting; the rest just vanish. */
                if (i % 2 == 0) {
                    assert_true(sse_next(&s[i], event, sizeof(event), &id, data,
                                         sizeof(data), 5000));
                }
            } else {
                sse_close(&s[i]);
            }
        }
        /* max_watchers is 64 by default: the rest got 503. */
        assert_int_equal(open, 64);
        assert_int_equal(watchers_now(), 64);
        /* A failure reaches the ones still reading. */
        assert_int_equal(
            tr_send(tr_system_ctx(fx.sys), whereis("w"), MSG_CRASH, NULL, 0),
            TR_OK);
        for (int i = 0; i < N; i++) {
            sse_close(&s[i]);
        }
        long left = -1;
        for (int i = 0; i < 500 && left != 0; i++) {
            left = watchers_now();
            if (left != 0) {
                usleep(10000);
            }
        }
        assert_int_equal(left, 0);
    }
}

/* Bytes the process has allocated now, libevent's included: the
 * sanitizer's count, else jemalloc's (it replaces malloc in the default
 * build), else glibc's. */
extern size_t __sanitizer_get_current_allocated_bytes(void)
    __attribute__((weak));
extern int mallctl(const char *name, void *old, size_t *oldlen, void *new_,
                   size_t newlen) __attribute__((weak));

static size_t
allocated_bytes(void)
{
    if (__sanitizer_get_current_allocated_bytes != NULL) {
        return __sanitizer_get_current_allocated_bytes();
    }
    if (mallctl != NULL) {
        uint64_t epoch = 1;
        size_t v = 0;
        size_t len = sizeof(v);
        mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
        mallctl("stats.allocated", &v, &len, NULL, 0);
        return v;
    }
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A counter or gauge from /metrics; -1 when it cannot be read. */
static long
metric_now(const char *name)
{
    http_reply r;
    char want[128];
    long n = -1;

    snprintf(want, sizeof(want), "\n%s ", name);
    if (http_get(fx.port, "/metrics", &r)) {
        const char *p = strstr(r.body, want);
        if (p != NULL) {
            n = strtol(p + strlen(want), NULL, 10);
        }
        http_reply_free(&r);
    }
    return n;
}

static void
test_live_stalled_watchers_hold_about_their_buffer(void **state)
{
    enum { N = 32, CRASHES = 3000 };
    static sse s[N];

    (void)state;
    tr_addr w = whereis("w");
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    /* Watchers that read their reply's headers and nothing more, with
     * small receive buffers: the kernel holds little of what they miss. */
    for (int i = 0; i < N; i++) {
        assert_true(sse_open(&s[i], fx.port, 2048));
    }
    size_t before = allocated_bytes();
    /* 6000 events of some 150 bytes: each watcher is offered about 900
     * KiB, far past its 64 KiB buffer and the kernel's. */
    for (int i = 0; i < CRASHES; i++) {
        assert_int_equal(tr_send(ctx, w, MSG_CRASH, NULL, 0), TR_OK);
        if (i % 100 == 99) {
            usleep(20000);
        }
    }
    /* Until the endpoint has handed out all it will. */
    long done = -1;
    long last = -2;
    for (int i = 0; i < 600 && (done != last || done < CRASHES); i++) {
        usleep(100000);
        last = done;
        done = metric_now("troupe_inspect_events_total");
    }
    size_t after = allocated_bytes();
    assert_true(done >= CRASHES);
    /* Each watcher lost most of them: all are full. */
    assert_true(metric_now("troupe_inspect_events_lost_total") >=
                (long)N * CRASHES);
    /* What one holds: its 64 KiB (watcher_buffer) and some slack; the
     * allocator's own caches, shared by all, blur the count a little. */
    size_t per = after > before ? (after - before) / N : 0;
    if (per > 2 * 65536) {
        fail_msg("a stalled watcher holds %zu bytes (watcher_buffer 65536)",
                 per);
    }
    for (int i = 0; i < N; i++) {
        sse_close(&s[i]);
    }
}

static void
test_live_watcher_that_talks_is_not_buffered(void **state)
{
    enum { LIMIT = 64 << 20 };
    static char junk[65536];
    sse s;
    size_t sent = 0;

    (void)state;
    memset(junk, 'x', sizeof(junk));
    assert_true(sse_open(&s, fx.port, 0));
    size_t before = allocated_bytes();
    /* A watcher has nothing to say; this one says it as fast as it can,
     * until the endpoint stops taking it (the kernel's buffers full). */
    for (;;) {
        struct pollfd p = {.fd = s.fd, .events = POLLOUT};
        if (sent >= LIMIT || poll(&p, 1, 1000) != 1) {
            break;
        }
        ssize_t n = send(s.fd, junk, sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        sent += (size_t)n;
    }
    size_t after = allocated_bytes();
    sse_close(&s);
    if (sent >= LIMIT || after > before + (4u << 20)) {
        fail_msg("sent %zu bytes; the process holds %zu more", sent,
                 after > before ? after - before : 0);
    }
}

/* ---- warnings ---- */

static bool
seen_warning_of(tr_warning_kind kind, bool raised, const char *path)
{
    uint32_t n = tr_load_acq(&nseen);
    for (uint32_t i = 0; i < n; i++) {
        if (seen[i].kind == kind && seen[i].raised == raised &&
            (path == NULL || strcmp(seen[i].path, path) == 0)) {
            return true;
        }
    }
    return false;
}

static uint32_t
count_of(tr_warning_kind kind, bool raised)
{
    uint32_t n = tr_load_acq(&nseen), c = 0;
    for (uint32_t i = 0; i < n; i++) {
        c += seen[i].kind == kind && seen[i].raised == raised;
    }
    return c;
}

typedef struct want_warning {
    tr_warning_kind kind;
    bool raised;
    const char *path;
} want_warning;

static bool
has_warning(void *arg)
{
    const want_warning *w = arg;
    return seen_warning_of(w->kind, w->raised, w->path);
}

static int
setup_warnings(void **state)
{
    (void)state;
    tr_inspect_opts o = TR_INSPECT_OPTS_INIT;
    o.slow_handler_ms = 100;
    o.mailbox_len = 50;
    o.restart_rate = 20;
    o.dead_letter_rate = 50;
    o.call_overdue_ms = 100;
    o.hold_ms = 300;
    o.sample_ms = 20;
    o.on_warning = on_warning;
    start(&o);
    return 0;
}

static void
test_live_warnings_rise_and_clear_once(void **state)
{
    sse s;
    char event[32];
    char data[1024];
    uint64_t id;

    (void)state;
    assert_true(sse_open(&s, fx.port, 0));
    tr_addr cache = whereis("cache");
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    /* The cache blocks in one handler while 100 messages queue. */
    assert_int_equal(tr_send(ctx, cache, MSG_BLOCK, NULL, 0), TR_OK);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tr_send(ctx, cache, MSG_HELLO, NULL, 0), TR_OK);
    }
    want_warning slow = {TR_WARN_SLOW_HANDLER, true, "/app/db/cache"};
    want_warning mbox = {TR_WARN_MAILBOX, true, "/app/db/cache"};
    assert_true(tr_test_wait_until(has_warning, &slow, 5000));
    assert_true(tr_test_wait_until(has_warning, &mbox, 5000));
    /* Raised ones show in /metrics. */
    http_reply r;
    assert_true(http_get(fx.port, "/metrics", &r));
    assert_non_null(strstr(
        r.body,
        "troupe_warning_active{kind=\"mailbox\",path=\"/app/db/cache\"} "));
    http_reply_free(&r);
    /* And on /events. */
    bool got = false;
    while (!got &&
           sse_next(&s, event, sizeof(event), &id, data, sizeof(data), 5000)) {
        got = strcmp(event, "warning") == 0 &&
              strstr(data, "\"type\":\"raised\",\"kind\":\"mailbox\","
                           "\"path\":\"/app/db/cache\"") != NULL;
    }
    assert_true(got);
    sse_close(&s);
    /* Let it go: both clear, after the hold, once each. */
    tr_store_rel(&release_block, 1);
    want_warning slow_off = {TR_WARN_SLOW_HANDLER, false, "/app/db/cache"};
    want_warning mbox_off = {TR_WARN_MAILBOX, false, "/app/db/cache"};
    assert_true(tr_test_wait_until(has_warning, &slow_off, 5000));
    assert_true(tr_test_wait_until(has_warning, &mbox_off, 5000));
    usleep(500000);
    assert_int_equal(count_of(TR_WARN_MAILBOX, true), 1);
    assert_int_equal(count_of(TR_WARN_MAILBOX, false), 1);
    assert_int_equal(count_of(TR_WARN_SLOW_HANDLER, true), 1);
    assert_int_equal(count_of(TR_WARN_SLOW_HANDLER, false), 1);
}

static void
test_live_mailbox_hovering_at_the_threshold_does_not_flap(void **state)
{
    (void)state;
    tr_addr cache = whereis("cache");
    tr_ctx *ctx = tr_system_ctx(fx.sys);

    /* Around the threshold (50) for a while: 45..55 queued, five times. */
    for (int round = 0; round < 5; round++) {
        tr_store_rel(&release_block, 0);
        assert_int_equal(tr_send(ctx, cache, MSG_BLOCK, NULL, 0), TR_OK);
        for (int i = 0; i < 45 + (round % 2) * 10; i++) {
            assert_int_equal(tr_send(ctx, cache, MSG_HELLO, NULL, 0), TR_OK);
        }
        usleep(60000);
        tr_store_rel(&release_block, 1);
        usleep(20000);
    }
    want_warning off = {TR_WARN_MAILBOX, false, "/app/db/cache"};
    if (count_of(TR_WARN_MAILBOX, true) != 0) {
        assert_true(tr_test_wait_until(has_warning, &off, 5000));
    }
    assert_true(count_of(TR_WARN_MAILBOX, true) <= 1);
}

static void
test_live_restart_storms_and_dead_letters_warn(void **state)
{
    (void)state;
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    tr_addr w = whereis("w");

    /* Far more than 20 a second, even under the sanitizers: bursts of
     * crashes until the warning shows (a loaded machine may run a whole
     * burst inside one sampling period), for at most 10 s. */
    want_warning storm = {TR_WARN_RESTART_STORM, true, "/app"};
    bool stormed = false;
    for (int burst = 0; burst < 20 && !stormed; burst++) {
        for (int i = 0; i < 100; i++) {
            assert_int_equal(tr_send(ctx, w, MSG_CRASH, NULL, 0), TR_OK);
        }
        stormed = tr_test_wait_until(has_warning, &storm, 500);
    }
    assert_true(stormed);
    /* Sends to an address that is gone: dead letters. */
    tr_addr gone;
    assert_int_equal(tr_spawn(ctx, &worker, NULL, NULL, &gone), TR_OK);
    assert_int_equal(tr_actor_stop(ctx, gone), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, gone, 5000));
    for (int i = 0; i < 200; i++) {
        int rc = tr_send(ctx, gone, MSG_HELLO, NULL, 0);
        assert_int_equal(rc, TR_ENOACTOR);
    }
    want_warning dead = {TR_WARN_DEAD_LETTERS, true, ""};
    assert_true(tr_test_wait_until(has_warning, &dead, 5000));
}

/* ---- the endpoint itself ---- */

/*
 * Starting and stopping the endpoint is a plain thread's: from its own
 * thread (an `on_warning` callback) a stop would join that thread, and
 * shutdown would too; from a handler it would block a worker. Each is
 * refused, and the endpoint serves on.
 */
static tr_atomic(int) refused[6];
static tr_atomic(uint32_t) refusals_in;

static void
warning_calls_back(void *arg, const tr_warning *w)
{
    (void)arg;
    (void)w;
    if (tr_load_relaxed(&refusals_in) & 1) {
        return; /* the first warning only */
    }
    tr_store_relaxed(&refused[0], tr_inspect_stop(fx.sys));
    tr_store_relaxed(&refused[1],
                     tr_inspect_serve(fx.sys, "127.0.0.1:0", NULL, NULL));
    tr_store_relaxed(&refused[2], tr_system_wait(fx.sys, tr_ms(10)));
    tr_store_relaxed(&refused[3], tr_system_shutdown(fx.sys, TR_NOWAIT));
    /* Release: the test thread reads the codes after the flag. */
    tr_for_acqrel(&refusals_in, 1);
}

static int
serve_in_handler(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_system *sys = tr_ctx_system(ctx);
    (void)state;
    (void)msg;
    tr_store_relaxed(&refused[4], tr_inspect_stop(sys));
    tr_store_relaxed(&refused[5],
                     tr_inspect_serve(sys, "127.0.0.1:0", NULL, NULL));
    tr_for_acqrel(&refusals_in, 2);
    return TR_OK;
}

static bool
refusals_done(void *arg)
{
    (void)arg;
    return tr_load_acq(&refusals_in) == 3;
}

static bool
handler_done(void *arg)
{
    (void)arg;
    return (tr_load_acq(&refusals_in) & 2) != 0;
}

static void
test_live_callbacks_cannot_stop_the_endpoint(void **state)
{
    static const tr_behaviour server = {.name = "server",
                                        .handle = serve_in_handler};
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    tr_addr a;

    (void)state;
    tr_store_relaxed(&refusals_in, 0);
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    tr_inspect_opts o = TR_INSPECT_OPTS_INIT;
    o.dead_letter_rate = 1;
    o.sample_ms = 20;
    o.on_warning = warning_calls_back;
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:0", &o, &fx.port),
                     TR_OK);
    assert_int_equal(tr_spawn(ctx, &server, NULL, NULL, &a), TR_OK);
    assert_int_equal(tr_send(ctx, a, MSG_HELLO, NULL, 0), TR_OK);
    /* Handled before the stop, which would overtake it. */
    assert_true(tr_test_wait_until(handler_done, NULL, 5000));
    assert_int_equal(tr_actor_stop(ctx, a), TR_OK);
    assert_true(tr_test_wait_stopped(fx.sys, a, 5000));
    /* Dead letters, until the warning has come. */
    for (int i = 0; i < 500 && !refusals_done(NULL); i++) {
        assert_int_equal(tr_send(ctx, a, MSG_HELLO, NULL, 0), TR_ENOACTOR);
        usleep(5000);
    }
    assert_true(tr_test_wait_until(refusals_done, NULL, 5000));
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tr_load_relaxed(&refused[i]), TR_ESTATE);
    }
    http_reply r;
    assert_true(http_get(fx.port, "/tree.txt", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

/* Every option at the edge of its type: the endpoint serves, and a
 * watcher gets its hello. */
static void
test_live_absurd_options_still_serve(void **state)
{
    tr_inspect_opts o;
    http_reply r;
    sse s;
    char event[32];
    char data[256];
    uint64_t id;

    (void)state;
    memset(&o, 0xff, sizeof(o));
    o.on_warning = NULL;
    o.on_warning_arg = NULL;
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:0", &o, &fx.port),
                     TR_OK);
    assert_true(http_get(fx.port, "/tree.txt", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
    assert_true(sse_open(&s, fx.port, 0));
    assert_true(
        sse_next(&s, event, sizeof(event), &id, data, sizeof(data), 5000));
    assert_string_equal(event, "hello");
    sse_close(&s);
    /* Past the endpoint's once-a-second sweep of its connections. */
    usleep(1500000);
    assert_true(http_get(fx.port, "/metrics", &r));
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

static void
test_live_serve_and_stop(void **state)
{
    uint16_t port;

    (void)state;
    assert_int_equal(tr_inspect_serve(NULL, "127.0.0.1:0", NULL, &port),
                     TR_EINVAL);
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:0", NULL, &port),
                     TR_EALREADY);
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    assert_int_equal(tr_inspect_stop(fx.sys), TR_ESTATE);
    assert_int_equal(tr_inspect_serve(fx.sys, "nonsense", NULL, &port),
                     TR_EINVAL);
    /* Numeric hosts only: a name is not resolved. */
    assert_int_equal(tr_inspect_serve(fx.sys, "localhost:0", NULL, &port),
                     TR_EINVAL);
    assert_int_equal(tr_inspect_serve(fx.sys, "[localhost]:0", NULL, &port),
                     TR_EINVAL);
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:99999", NULL, &port),
                     TR_EINVAL);
    /* A port is digits only. */
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:+0", NULL, &port),
                     TR_EINVAL);
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1: 0", NULL, &port),
                     TR_EINVAL);
    /* Not ours to bind. */
    assert_int_equal(tr_inspect_serve(fx.sys, "192.0.2.1:0", NULL, &port),
                     TR_ESTATE);
    /* Nobody watches: nothing is timed. */
    assert_int_equal(tr_load_acq(&fx.sys->watched), 0);
    tr_inspect_opts o = TR_INSPECT_OPTS_INIT;
    o.linger_ms = 50;
    assert_int_equal(tr_inspect_serve(fx.sys, "127.0.0.1:0", &o, &fx.port),
                     TR_OK);
    assert_int_equal(tr_load_acq(&fx.sys->watched), 0);
    /* A watcher turns the timing on; its leaving, off again. */
    sse s;
    assert_true(sse_open(&s, fx.port, 0));
    for (int i = 0; i < 500 && tr_load_acq(&fx.sys->watched) == 0; i++) {
        usleep(2000);
    }
    assert_int_equal(tr_load_acq(&fx.sys->watched), 1);
    sse_close(&s);
    for (int i = 0; i < 1000 && tr_load_acq(&fx.sys->watched) != 0; i++) {
        usleep(2000);
    }
    assert_int_equal(tr_load_acq(&fx.sys->watched), 0);
    /* No address: nothing served, warnings only, for the callback (which
     * counts as watching). */
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    o = (tr_inspect_opts)TR_INSPECT_OPTS_INIT;
    o.on_warning = on_warning;
    assert_int_equal(tr_inspect_serve(fx.sys, NULL, &o, NULL), TR_OK);
    for (int i = 0; i < 500 && tr_load_acq(&fx.sys->watched) == 0; i++) {
        usleep(2000);
    }
    assert_int_equal(tr_load_acq(&fx.sys->watched), 1);
    /* Served again on another port; shutdown stops it (teardown). */
    assert_int_equal(tr_inspect_stop(fx.sys), TR_OK);
    assert_int_equal(tr_inspect_serve(fx.sys, "[::1]:0", NULL, &port), TR_OK);
}

static void
test_live_slow_watcher_is_told_what_it_lost(void **state)
{
    sse slow;
    char event[32];
    char data[1024];
    uint64_t id;

    (void)state;
    /* A tiny receive buffer, and nothing read while events pour. */
    assert_true(sse_open(&slow, fx.port, 2048));
    tr_addr w = whereis("w");
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    for (int i = 0; i < 1500; i++) {
        assert_int_equal(tr_send(ctx, w, MSG_CRASH, NULL, 0), TR_OK);
        if (i % 100 == 99) {
            usleep(20000);
        }
    }
    usleep(300000);
    /* Now read: ids jump where events were lost, and a "lost" event
     * before the jump says by how much. */
    uint64_t last = 0, lost = 0, received = 0, told = 0;
    bool gap_told = true;
    bool nudged = false;
    for (;;) {
        if (!sse_next(&slow, event, sizeof(event), &id, data, sizeof(data),
                      1000)) {
            if (nudged) {
                break;
            }
            /* One more event after the ones it lost shows the gap. */
            nudged = true;
            assert_int_equal(tr_send(ctx, w, MSG_CRASH, NULL, 0), TR_OK);
            continue;
        }
        if (strcmp(event, "lost") == 0) {
            told += strtoull(strstr(data, ":") + 1, NULL, 10);
            continue;
        }
        if (id == 0) {
            continue; /* hello */
        }
        /* Tree events and warnings share one numbering. */
        if (last != 0 && id != last + 1) {
            lost += id - last - 1;
            gap_told = gap_told && told >= lost;
        }
        last = id;
        received++;
    }
    sse_close(&slow);
    assert_true(received > 0);
    assert_true(lost > 0);
    assert_true(gap_told);
    assert_int_equal(told, lost);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_tree_json_is_valid_and_counts,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_tree_dot_renders, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_live_metrics_follow_the_exposition_format, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_events_follow_failures_and_restarts_in_order, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_live_half_closed_client_gets_the_whole_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_client_gone_mid_reply_harms_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_foreign_host_is_forbidden,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_host_check_is_strict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_live_no_route_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_live_bad_requests_get_errors_and_harm_nothing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_live_slow_request_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_live_connections_past_the_cap_wait,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_a_hundred_watchers_come_and_go, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_slow_watcher_is_told_what_it_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_stalled_watchers_hold_about_their_buffer, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_live_watcher_that_talks_is_not_buffered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_warnings_rise_and_clear_once,
                                        setup_warnings, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_mailbox_hovering_at_the_threshold_does_not_flap,
            setup_warnings, teardown),
        cmocka_unit_test_setup_teardown(
            test_live_restart_storms_and_dead_letters_warn, setup_warnings,
            teardown),
        cmocka_unit_test_setup_teardown(test_live_absurd_options_still_serve,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_serve_and_stop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_live_callbacks_cannot_stop_the_endpoint, setup, teardown),
    };
    return cmocka_run_group_tests_name("live", tests, NULL, NULL);
}
