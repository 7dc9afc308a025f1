/*
 * Snapshots of the supervision tree: the JSON, text and DOT renderings of a
 * known tree, restarts and failure reasons in them, the size cap (reported,
 * never silent), paths, and snapshots taken while children crash and
 * restart on other threads.
 */
#include "support/tr_test.h"

#include <pthread.h>

enum { MSG_CRASH = 1, MSG_HELLO = 2 };

static tr_atomic(uint64_t) inits;

static int
w_init(tr_ctx *ctx, void *state, const void *arg)
{
    (void)ctx;
    (void)state;
    (void)arg;
    tr_faa_seqcst(&inits, 1);
    return TR_OK;
}

static int
w_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->type == MSG_CRASH ? tr_fail(ctx, -42, "asked to crash") : TR_OK;
}

static const tr_behaviour worker = {
    .name = "kv_worker", .init = w_init, .handle = w_handle};

static const tr_child_spec db_kids[2] = {
    {.id = "cache", .behaviour = &worker},
    {.id = "loader", .behaviour = &worker},
};
static const tr_sup_spec db = {.name = "db",
                               .strategy = TR_ONE_FOR_ALL,
                               .max_restarts = 3,
                               .period_ms = 1000,
                               .children = db_kids,
                               .len = 2};
static const tr_child_spec app_kids[2] = {
    {.id = "w", .behaviour = &worker},
    {.id = "db",
     .behaviour = &tr_supervisor_behaviour,
     .arg = &db,
     .kind = TR_SUPERVISOR},
};
static const tr_sup_spec app = {.name = "app",
                                .strategy = TR_ONE_FOR_ONE,
                                .max_restarts = 10,
                                .period_ms = 1000,
                                .children = app_kids,
                                .len = 2};

typedef struct fixture {
    tr_system *sys;
    tr_addr app;
} fixture;

static fixture fx;

static int
setup(void **state)
{
    (void)state;
    tr_store_relaxed(&inits, 0);
    fx.sys = tr_test_system(2);
    assert_int_equal(tr_sup_start(tr_system_ctx(fx.sys), &app, NULL, &fx.app),
                     TR_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tr_test_shutdown(fx.sys);
    return 0;
}

/* Brackets and braces balance outside strings, and strings close. */
static bool
json_balanced(const char *s)
{
    int depth = 0;
    bool in_str = false;

    for (; *s != '\0'; s++) {
        if (in_str) {
            if (*s == '\\') {
                s++;
            } else if (*s == '"') {
                in_str = false;
            }
        } else if (*s == '"') {
            in_str = true;
        } else if (*s == '{' || *s == '[') {
            depth++;
        } else if (*s == '}' || *s == ']') {
            if (--depth < 0) {
                return false;
            }
        }
    }
    return depth == 0 && !in_str;
}

static size_t
count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p != NULL;
         p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static char out[16384];

static void
snapshot(tr_inspect_format f)
{
    size_t len = 0;
    assert_int_equal(tr_inspect_snapshot(fx.sys, f, out, sizeof(out), &len),
                     TR_OK);
    assert_int_equal(len, strlen(out));
}

static bool
five_inits(void *arg)
{
    (void)arg;
    return tr_load_seqcst(&inits) >= 5;
}

static void
test_inspect_json_lists_the_tree_in_order(void **state)
{
    (void)state;
    snapshot(TR_INSPECT_JSON);
    assert_true(json_balanced(out));
    assert_non_null(strstr(out, "{\"version\":1,\"nodes\":["));
    const char *paths[] = {"\"/app\"", "\"/app/w\"", "\"/app/db\"",
                           "\"/app/db/cache\"", "\"/app/db/loader\""};
    const char *at = out;
    for (size_t i = 0; i < 5; i++) {
        const char *p = strstr(at, paths[i]);
        if (p == NULL) {
            fail_msg("%s missing or out of order in %s", paths[i], out);
        }
        at = p;
    }
    assert_non_null(strstr(out, "\"strategy\":\"one_for_all\""));
    assert_non_null(
        strstr(out, "\"intensity\":{\"max_restarts\":3,\"period_ms\":1000}"));
    assert_non_null(strstr(out, "\"omitted\":0}"));
    assert_int_equal(count(out, "\"status\":\"running\""), 5);
    assert_int_equal(count(out, "\"last_failure\":null"), 5);
}

static void
test_inspect_shows_restarts_and_the_last_failure(void **state)
{
    (void)state;
    tr_addr cache;
    tr_ctx *ctx = tr_system_ctx(fx.sys);

    assert_int_equal(tr_whereis_path(fx.sys, "/app/db/cache", &cache), TR_OK);
    assert_int_equal(tr_send(ctx, cache, MSG_CRASH, NULL, 0), TR_OK);
    /* one_for_all: both db children start again (3 first inits + 2). */
    assert_true(tr_test_wait_until(five_inits, NULL, 5000));
    snapshot(TR_INSPECT_JSON);
    assert_true(json_balanced(out));
    const char *node = strstr(out, "\"/app/db/cache\"");
    assert_non_null(node);
    const char *end = strstr(node, "\"path\"");
    assert_non_null(strstr(node, "\"restarts\":1"));
    const char *why = strstr(node, "\"reason\":\"asked to crash\"");
    assert_non_null(why);
    assert_true(end == NULL || why < end);
    assert_non_null(strstr(node, "\"code\":-42"));

    snapshot(TR_INSPECT_TEXT);
    assert_non_null(strstr(out, "/app [one_for_one 10/1000ms] running"));
    assert_non_null(strstr(out, "\n    /app/db/cache (kv_worker) running"));
    assert_non_null(strstr(out, "last: asked to crash"));
    assert_int_equal(count(out, "\n"), 5);

    snapshot(TR_INSPECT_DOT);
    assert_non_null(strstr(out, "digraph troupe {"));
    assert_non_null(strstr(out, "\"/app/db\" -> \"/app/db/loader\";"));
    assert_non_null(strstr(out, "\"/app\" -> \"/app/w\";"));
    assert_int_equal(count(out, "->"), 4);
}

static void
test_inspect_cap_is_reported(void **state)
{
    (void)state;
    char small[300];
    size_t len;

    assert_int_equal(tr_inspect_snapshot(fx.sys, TR_INSPECT_JSON, small,
                                         sizeof(small), &len),
                     TR_ETRUNCATED);
    assert_int_equal(len, strlen(small));
    assert_true(len < sizeof(small));
    assert_true(json_balanced(small));
    size_t shown = count(small, "\"path\"");
    char tail[32];
    snprintf(tail, sizeof(tail), "\"omitted\":%zu}", 5 - shown);
    assert_non_null(strstr(small, tail));

    assert_int_equal(tr_inspect_snapshot(fx.sys, TR_INSPECT_TEXT, small,
                                         sizeof(small), &len),
                     TR_ETRUNCATED);
    assert_non_null(strstr(small, "more nodes omitted"));
    assert_int_equal(
        tr_inspect_snapshot(fx.sys, TR_INSPECT_DOT, small, sizeof(small), &len),
        TR_ETRUNCATED);
    assert_non_null(strstr(small, "more\"];\n}\n"));

    assert_int_equal(
        tr_inspect_snapshot(fx.sys, TR_INSPECT_JSON, small, 10, &len),
        TR_EINVAL);
    assert_int_equal(tr_inspect_snapshot(fx.sys, (tr_inspect_format)7, small,
                                         sizeof(small), &len),
                     TR_EINVAL);
    assert_int_equal(
        tr_inspect_snapshot(NULL, TR_INSPECT_JSON, small, sizeof(small), &len),
        TR_EINVAL);
}

/* Every cap, every format: a whole, valid document, or TR_EINVAL and an
 * empty string (never a cut one). */
static void
test_inspect_any_cap_gives_a_valid_document(void **state)
{
    (void)state;
    static char buf[2048];
    const tr_inspect_format formats[] = {TR_INSPECT_JSON, TR_INSPECT_TEXT,
                                         TR_INSPECT_DOT};

    for (size_t f = 0; f < 3; f++) {
        for (size_t cap = 1; cap < sizeof(buf); cap++) {
            size_t len = 0;
            memset(buf, 'Z', sizeof(buf));
            int rc = tr_inspect_snapshot(fx.sys, formats[f], buf, cap, &len);
            if (rc == TR_EINVAL) {
                assert_true(cap < TR_INSPECT_MIN_CAP);
                assert_int_equal(buf[0], '\0');
                continue;
            }
            assert_true(rc == TR_OK || rc == TR_ETRUNCATED);
            assert_int_equal(len, strlen(buf));
            assert_true(len < cap);
            if (formats[f] == TR_INSPECT_JSON) {
                assert_true(json_balanced(buf));
                assert_true(strncmp(buf, "{\"version\":", 11) == 0);
                assert_non_null(strstr(buf, "],\"omitted\":"));
                assert_int_equal(buf[len - 1], '}');
            } else if (formats[f] == TR_INSPECT_DOT) {
                assert_true(strncmp(buf, "digraph troupe {\n", 17) == 0);
                assert_true(len >= 2 && strcmp(buf + len - 2, "}\n") == 0);
            } else if (rc == TR_ETRUNCATED) {
                assert_non_null(strstr(buf, "more nodes omitted\n"));
            }
        }
    }
}

static void
test_inspect_paths_name_supervised_actors(void **state)
{
    (void)state;
    tr_addr a, w;
    tr_child_info info[2];
    size_t n;

    assert_int_equal(tr_whereis_path(fx.sys, "/app", &a), TR_OK);
    assert_int_equal(a.id, fx.app.id);
    assert_int_equal(tr_whereis_path(fx.sys, "/app/w", &w), TR_OK);
    assert_int_equal(tr_sup_which_children_wait(tr_system_ctx(fx.sys), fx.app,
                                                info, 2, &n, tr_ms(5000)),
                     TR_OK);
    assert_int_equal(w.id, info[0].addr.id);
    assert_int_equal(tr_whereis_path(fx.sys, "/app/nope", &a), TR_ENOTFOUND);
    assert_int_equal(tr_whereis_path(fx.sys, "/app/w/deeper", &a),
                     TR_ENOTFOUND);
    assert_int_equal(tr_whereis_path(fx.sys, "/other", &a), TR_ENOTFOUND);
    assert_int_equal(tr_whereis_path(fx.sys, "app", &a), TR_ENOTFOUND);
    assert_int_equal(tr_whereis_path(fx.sys, NULL, &a), TR_EINVAL);
}

/* Snapshots from a thread while children crash and restart. */
typedef struct crasher {
    tr_system *sys;
    tr_atomic(bool) stop;
    tr_atomic(uint64_t) bad; /* unbalanced documents */
    tr_atomic(uint64_t) taken;
} crasher;

static void *
snapshotter(void *arg)
{
    crasher *c = arg;
    static char buf[65536];
    size_t len;

    while (!tr_load_acq(&c->stop)) {
        int rc = tr_inspect_snapshot(c->sys, TR_INSPECT_JSON, buf, sizeof(buf),
                                     &len);
        if ((rc != TR_OK && rc != TR_ETRUNCATED) || !json_balanced(buf)) {
            tr_faa_relaxed(&c->bad, 1);
        }
        tr_faa_relaxed(&c->taken, 1);
    }
    return NULL;
}

/* The snapshot count a round began with. */
typedef struct taken_round {
    crasher *c;
    uint64_t before;
} taken_round;

static bool
snapshot_since(void *arg)
{
    taken_round *t = arg;
    return tr_load_relaxed(&t->c->taken) > t->before;
}

static bool
inits_reach(void *want)
{
    return tr_load_seqcst(&inits) >= *(uint64_t *)want;
}

static void
test_inspect_snapshots_while_the_tree_changes(void **state)
{
    (void)state;
    enum { POOL = 40, ROUNDS = 200 };
    tr_ctx *ctx = tr_system_ctx(fx.sys);
    tr_child_spec tmpl = {.id = "pool", .behaviour = &worker};
    tr_sup_spec pool = {.name = "pool",
                        .strategy = TR_SIMPLE_ONE_FOR_ONE,
                        .max_restarts = POOL * ROUNDS,
                        .period_ms = 1000,
                        .children = &tmpl,
                        .len = 1};
    tr_addr sup, kids[POOL];
    crasher c = {.sys = fx.sys};
    pthread_t th;

    assert_int_equal(tr_sup_start(ctx, &pool, NULL, &sup), TR_OK);
    for (int i = 0; i < POOL; i++) {
        assert_int_equal(tr_sup_start_child_wait(ctx, sup, NULL, NULL,
                                                 tr_ms(5000), &kids[i]),
                         TR_OK);
    }
    assert_int_equal(pthread_create(&th, NULL, snapshotter, &c), 0);
    for (int r = 0; r < ROUNDS; r++) {
        /* A snapshot taken after each round's crashes are sent, while
         * their restarts run: without the wait, the rounds could all end
         * before the thread took its first one. */
        taken_round t = {&c, tr_load_relaxed(&c.taken)};
        for (int i = 0; i < POOL; i++) {
            assert_int_equal(tr_send(ctx, kids[i], MSG_CRASH, NULL, 0), TR_OK);
        }
        assert_true(tr_test_wait_until(snapshot_since, &t, 5000));
    }
    /* The fixture's 3 workers, POOL first starts, a restart per crash. */
    uint64_t want = 3 + POOL + (uint64_t)POOL * ROUNDS;
    bool all = tr_test_wait_until(inits_reach, &want, 30000);
    tr_store_rel(&c.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(all);
    assert_true(tr_load_relaxed(&c.taken) >= ROUNDS);
    assert_int_equal(tr_load_relaxed(&c.bad), 0);
    tr_child_counts counts;
    assert_int_equal(tr_sup_count_children_wait(ctx, sup, &counts, tr_ms(5000)),
                     TR_OK);
    assert_int_equal(counts.active, POOL);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_inspect_json_lists_the_tree_in_order),
        T(test_inspect_shows_restarts_and_the_last_failure),
        T(test_inspect_cap_is_reported),
        T(test_inspect_any_cap_gives_a_valid_document),
        T(test_inspect_paths_name_supervised_actors),
        T(test_inspect_snapshots_while_the_tree_changes),
    };
#undef T
    return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
