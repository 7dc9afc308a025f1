/*
 * troupe-top: watch a running troupe system from a terminal.
 *
 * It polls the live endpoint a program opened with tr_inspect_serve
 * (/tree.json) and prints the supervision tree with live counters,
 * refreshing in place like top: per node its status, restarts, mailbox
 * length and high-water mark, messages handled a second, time in
 * handlers, last failure. Siblings are sorted by mailbox depth, restarts
 * or handled rate (keys m, r, h; p for tree order; q quits). With --once
 * it prints one snapshot, as JSON or text, for scripts.
 *
 * Plain sockets and HTTP/1.1; no libraries beyond libc.
 *
 *   troupe-top [-a HOST:PORT] [-s mailbox|restarts|rate|path] [-d MS]
 *              [-n COUNT] [--once [--json|--text]]
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- HTTP ---- */

/* GET `path` from host:port; the body (malloc'd) or NULL with a message. */
static char *
http_get(const char *host, const char *port, const char *path, char *err,
         size_t ecap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int fd = -1;
    int rc = getaddrinfo(host, port, &hints, &res);

    if (rc != 0) {
        snprintf(err, ecap, "%s: %s", host, gai_strerror(rc));
        return NULL;
    }
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd =
            socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, ecap, "cannot connect to %s:%s: %s", host, port,
                 strerror(errno));
        return NULL;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
                     "User-Agent: troupe-top\r\nConnection: close\r\n\r\n",
                     path, strchr(host, ':') ? "[" : "", host,
                     strchr(host, ':') ? "]" : "", port);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(err, ecap, "send: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            break;
        }
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    if (buf == NULL) {
        snprintf(err, ecap, "out of memory");
        return NULL;
    }
    buf[len] = '\0';
    int status = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || body == NULL) {
        snprintf(err, ecap, "not an HTTP reply");
        free(buf);
        return NULL;
    }
    if (status != 200) {
        snprintf(err, ecap, "%s%s: HTTP %d", host, path, status);
        free(buf);
        return NULL;
    }
    body += 4;
    memmove(buf, body, strlen(body) + 1);
    return buf;
}

/* ---- a small JSON reader (enough for /tree.json) ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    double num;
    char *str; /* J_STR; a key for members */
    struct jval *kids;
    size_t n;
    char *key;
} jval;

typedef struct jparser {
    const char *p;
    bool bad;
} jparser;

static void
skip_ws(jparser *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t') {
        j->p++;
    }
}

static char *
parse_str(jparser *j)
{
    if (*j->p != '"') {
        j->bad = true;
        return NULL;
    }
    j->p++;
    size_t cap = 32, len = 0;
    char *s = malloc(cap);
    while (s != NULL && *j->p != '"' && *j->p != '\0') {
        char c = *j->p++;
        if (c == '\\') {
            char e = *j->p++;
            switch (e) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                unsigned v = 0;
                if (sscanf(j->p, "%4x", &v) != 1) {
                    j->bad = true;
                }
                j->p += 4;
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            case '\0':
                j->bad = true;
                c = '?';
                j->p--;
                break;
            default:
                c = e;
                break;
            }
        }
        if (len + 2 > cap) {
            cap *= 2;
            char *ns = realloc(s, cap);
            if (ns == NULL) {
                free(s);
                s = NULL;
                break;
            }
            s = ns;
        }
        s[len++] = c;
    }
    if (s == NULL || *j->p != '"') {
        free(s);
        j->bad = true;
        return NULL;
    }
    j->p++;
    s[len] = '\0';
    return s;
}

static void parse_val(jparser *j, jval *v, int depth);

static void
push_kid(jparser *j, jval *v, size_t *cap, int depth, char *key)
{
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        jval *nk = realloc(v->kids, sizeof(jval) * *cap);
        if (nk == NULL) {
            j->bad = true;
            free(key);
            return;
        }
        v->kids = nk;
    }
    jval *k = &v->kids[v->n++];
    memset(k, 0, sizeof(*k));
    k->key = key;
    parse_val(j, k, depth + 1);
}

static void
parse_val(jparser *j, jval *v, int depth)
{
    size_t cap = 0;

    skip_ws(j);
    if (depth > 64) {
        j->bad = true;
        return;
    }
    switch (*j->p) {
    case '{':
        v->t = J_OBJ;
        j->p++;
        skip_ws(j);
        while (!j->bad && *j->p != '}') {
            char *key = parse_str(j);
            skip_ws(j);
            if (key == NULL || *j->p != ':') {
                free(key);
                j->bad = true;
                return;
            }
            j->p++;
            push_kid(j, v, &cap, depth, key);
            skip_ws(j);
            if (*j->p == ',') {
                j->p++;
                skip_ws(j);
            } else if (*j->p != '}') {
                j->bad = true;
            }
        }
        j->p++;
        return;
    case '[':
        v->t = J_ARR;
        j->p++;
        skip_ws(j);
        while (!j->bad && *j->p != ']') {
            push_kid(j, v, &cap, depth, NULL);
            skip_ws(j);
            if (*j->p == ',') {
                j->p++;
            } else if (*j->p != ']') {
                j->bad = true;
            }
        }
        j->p++;
        return;
    case '"':
        v->t = J_STR;
        v->str = parse_str(j);
        return;
    case 't':
    case 'f':
        v->t = J_BOOL;
        v->num = *j->p == 't';
        j->p += *j->p == 't' ? 4 : 5;
        return;
    case 'n':
        v->t = J_NULL;
        j->p += 4;
        return;
    default: {
        char *end;
        v->t = J_NUM;
        v->num = strtod(j->p, &end);
        if (end == j->p) {
            j->bad = true;
        }
        j->p = end;
        return;
    }
    }
}

static void
jfree(jval *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->kids[i]);
    }
    free(v->kids);
    free(v->str);
    free(v->key);
}

static const jval *
jget(const jval *v, const char *key)
{
    if (v == NULL || v->t != J_OBJ) {
        return NULL;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->kids[i].key, key) == 0) {
            return &v->kids[i];
        }
    }
    return NULL;
}

static double
jnum(const jval *v, const char *key)
{
    const jval *k = jget(v, key);
    return k != NULL && k->t == J_NUM ? k->num : 0.0;
}

static const char *
jstr(const jval *v, const char *key)
{
    const jval *k = jget(v, key);
    return k != NULL && k->t == J_STR ? k->str : "";
}

/* ---- the display ---- */

typedef enum { SORT_PATH, SORT_MAILBOX, SORT_RESTARTS, SORT_RATE } sort_key;

typedef struct row {
    const jval *n;
    const char *path;
    unsigned depth;
    double mailbox, hwm, restarts, handled, rate, handler_ns;
    size_t parent; /* index, or SIZE_MAX */
    size_t *kids;
    size_t nkids;
} row;

/* Handled counts of the last sample, by path, for the rates. */
typedef struct prev_count {
    char *path;
    double handled;
} prev_count;

static prev_count *prev;
static size_t nprev;
static double prev_at;

static double
prev_handled(const char *path, bool *found)
{
    for (size_t i = 0; i < nprev; i++) {
        if (strcmp(prev[i].path, path) == 0) {
            *found = true;
            return prev[i].handled;
        }
    }
    *found = false;
    return 0.0;
}

static sort_key sort_by = SORT_MAILBOX;
static row *rows_for_sort;

static int
cmp_rows(const void *a, const void *b)
{
    const row *x = &rows_for_sort[*(const size_t *)a];
    const row *y = &rows_for_sort[*(const size_t *)b];
    double dx = 0, dy = 0;

    switch (sort_by) {
    case SORT_MAILBOX:
        dx = x->mailbox;
        dy = y->mailbox;
        break;
    case SORT_RESTARTS:
        dx = x->restarts;
        dy = y->restarts;
        break;
    case SORT_RATE:
        dx = x->rate;
        dy = y->rate;
        break;
    default:
        break;
    }
    if (dx != dy) {
        return dx > dy ? -1 : 1;
    }
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1; /* tree order */
}

static void
fmt_ns(char *buf, size_t cap, double ns)
{
    if (ns < 1e3) {
        snprintf(buf, cap, "%.0fns", ns);
    } else if (ns < 1e6) {
        snprintf(buf, cap, "%.1fus", ns / 1e3);
    } else if (ns < 1e9) {
        snprintf(buf, cap, "%.1fms", ns / 1e6);
    } else {
        snprintf(buf, cap, "%.2fs", ns / 1e9);
    }
}

static void
print_row(FILE *out, const row *r, int width)
{
    char name[160];
    char busy[16];
    const char *leaf = strrchr(r->path, '/');

    snprintf(name, sizeof(name), "%*s%s", (int)r->depth * 2, "",
             r->depth == 0 || leaf == NULL ? r->path : leaf + 1);
    fmt_ns(busy, sizeof(busy), r->handler_ns);
    const jval *lf = jget(r->n, "last_failure");
    fprintf(out, "%-36.36s %-10.10s %8.0f %8.0f %8.0f %9.1f %9s  %.*s\n", name,
            jstr(r->n, "status"), r->restarts, r->mailbox, r->hwm, r->rate,
            busy, width > 100 ? width - 100 : 0,
            lf != NULL && lf->t == J_OBJ ? jstr(lf, "reason") : "");
}

static void
walk_print(FILE *out, row *rows, size_t i, int width, int *lines, int max)
{
    if (*lines >= max) {
        return;
    }
    print_row(out, &rows[i], width);
    (*lines)++;
    rows_for_sort = rows;
    qsort(rows[i].kids, rows[i].nkids, sizeof(size_t), cmp_rows);
    for (size_t k = 0; k < rows[i].nkids; k++) {
        walk_print(out, rows, rows[i].kids[k], width, lines, max);
    }
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const sort_names[] = {"tree order", "mailbox", "restarts",
                                         "handled rate"};

/* One screen from a /tree.json document; false when it does not parse. */
static bool
show(FILE *out, const char *doc, const char *endpoint, bool clear)
{
    jparser j = {doc, false};
    jval root = {0};
    parse_val(&j, &root, 0);
    const jval *nodes = jget(&root, "nodes");
    if (j.bad || nodes == NULL || nodes->t != J_ARR) {
        jfree(&root);
        return false;
    }
    size_t n = nodes->n;
    row *rows = calloc(n + 1, sizeof(row));
    size_t *kidbuf = calloc(n + 1, sizeof(size_t));
    size_t *stack = calloc(n + 1, sizeof(size_t));
    double t = now_s();
    double dt = prev_at > 0 ? t - prev_at : 0;
    size_t depth_top = 0;

    for (size_t i = 0; rows != NULL && kidbuf != NULL && stack != NULL && i < n;
         i++) {
        row *r = &rows[i];
        const jval *nd = &nodes->kids[i];
        r->n = nd;
        r->path = jstr(nd, "path");
        r->depth = (unsigned)jnum(nd, "depth");
        r->restarts = jnum(nd, "restarts");
        r->handled = jnum(nd, "handled");
        r->handler_ns = jnum(nd, "handler_ns");
        const jval *mb = jget(nd, "mailbox");
        r->mailbox = jnum(mb, "length");
        r->hwm = jnum(mb, "high_water");
        bool found;
        double before = prev_handled(r->path, &found);
        r->rate = found && dt > 0 && r->handled >= before
                      ? (r->handled - before) / dt
                      : 0.0;
        /* The parent is the nearest earlier node one level up. */
        while (depth_top > 0 && rows[stack[depth_top - 1]].depth >= r->depth) {
            depth_top--;
        }
        r->parent = depth_top > 0 ? stack[depth_top - 1] : SIZE_MAX;
        stack[depth_top++] = i;
    }
    /* Children lists, in one buffer. */
    size_t used = 0;
    for (size_t i = 0; rows != NULL && kidbuf != NULL && i < n; i++) {
        rows[i].kids = kidbuf + used;
        for (size_t k = i + 1; k < n && rows[k].depth > rows[i].depth; k++) {
            if (rows[k].parent == i) {
                rows[i].kids[rows[i].nkids++] = k;
            }
        }
        used += rows[i].nkids;
    }

    struct winsize ws = {0};
    int height = 50, width = 120;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
        height = ws.ws_row;
        width = ws.ws_col;
    }
    const jval *sys = jget(&root, "system");
    if (clear) {
        fputs("\033[H\033[2J", out);
    }
    fprintf(out,
            "troupe-top %s  workers %.0f  actors %.0f  handled %.0f  failed "
            "%.0f  dead letters %.0f  sort: %s\n",
            endpoint, jnum(sys, "workers"), jnum(sys, "live_actors"),
            jnum(sys, "handled"), jnum(sys, "failed"),
            jnum(sys, "dead_letters"), sort_names[sort_by]);
    const jval *warn = jget(sys, "warnings");
    int lines = 3;
    for (size_t i = 0; warn != NULL && warn->t == J_ARR && i < warn->n; i++) {
        fprintf(out, "WARNING %s %s: %.1f (threshold %.0f)\n",
                jstr(&warn->kids[i], "kind"), jstr(&warn->kids[i], "path"),
                jnum(&warn->kids[i], "value"),
                jnum(&warn->kids[i], "threshold"));
        lines++;
    }
    fprintf(out, "%-36s %-10s %8s %8s %8s %9s %9s  %s\n", "NODE", "STATUS",
            "RESTARTS", "MAILBOX", "HWM", "HANDLED/s", "HANDLERS",
            "LAST FAILURE");
    for (size_t i = 0; rows != NULL && kidbuf != NULL && i < n; i++) {
        if (rows[i].parent == SIZE_MAX) {
            walk_print(out, rows, i, width, &lines,
                       clear ? height - 1 : 1 << 30);
        }
    }
    if (clear && (size_t)lines < n + 3) {
        fprintf(out, "... (keys: m r h p sort, q quit)");
    }
    fflush(out);

    /* Keep the counts for the next rates. */
    for (size_t i = 0; i < nprev; i++) {
        free(prev[i].path);
    }
    free(prev);
    prev = calloc(n + 1, sizeof(prev_count));
    nprev = 0;
    for (size_t i = 0; prev != NULL && rows != NULL && i < n; i++) {
        prev[nprev].path = strdup(rows[i].path);
        prev[nprev++].handled = rows[i].handled;
    }
    prev_at = t;
    free(rows);
    free(kidbuf);
    free(stack);
    jfree(&root);
    return true;
}

/* ---- main ---- */

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: troupe-top [-a HOST:PORT] [-s mailbox|restarts|rate|path]"
            " [-d MS] [-n COUNT]\n"
            "       troupe-top [-a HOST:PORT] --once [--json|--text]\n"
            "Watches a troupe program's live endpoint (tr_inspect_serve).\n"
            "  -a   the endpoint (default 127.0.0.1:9091, or $TROUPE_TOP)\n"
            "  -s   sort siblings by mailbox depth (default), restarts,\n"
            "       handled rate, or keep tree order\n"
            "  -d   refresh every MS milliseconds (default 1000)\n"
            "  -n   stop after COUNT refreshes\n"
            "  --once  print one snapshot and exit: --json (the /tree.json\n"
            "          document) or --text (default: the tree as text)\n"
            "Keys while it runs: m r h p change the sort, q quits.\n");
}

int
main(int argc, char **argv)
{
    const char *endpoint = getenv("TROUPE_TOP");
    long delay_ms = 1000, count = -1;
    bool once = false, json = false;

    if (endpoint == NULL) {
        endpoint = "127.0.0.1:9091";
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--once") == 0) {
            once = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--text") == 0) {
            json = false;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (v != NULL && strcmp(a, "-a") == 0) {
            endpoint = v;
            i++;
        } else if (v != NULL && strcmp(a, "-d") == 0) {
            delay_ms = strtol(v, NULL, 10);
            i++;
        } else if (v != NULL && strcmp(a, "-n") == 0) {
            count = strtol(v, NULL, 10);
            i++;
        } else if (v != NULL && strcmp(a, "-s") == 0) {
            sort_by = strcmp(v, "restarts") == 0 ? SORT_RESTARTS
                      : strcmp(v, "rate") == 0   ? SORT_RATE
                      : strcmp(v, "path") == 0   ? SORT_PATH
                                                 : SORT_MAILBOX;
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    char host[256];
    const char *colon = strrchr(endpoint, ':');
    if (colon == NULL || colon == endpoint || delay_ms <= 0) {
        usage(stderr);
        return 2;
    }
    size_t hlen = (size_t)(colon - endpoint);
    if (endpoint[0] == '[' && hlen >= 2 && endpoint[hlen - 1] == ']') {
        endpoint++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        usage(stderr);
        return 2;
    }
    memcpy(host, endpoint, hlen);
    host[hlen] = '\0';
    const char *port = colon + 1;
    char err[256];

    if (once) {
        char *body = http_get(host, port, json ? "/tree.json" : "/tree.txt",
                              err, sizeof(err));
        if (body == NULL) {
            fprintf(stderr, "troupe-top: %s\n", err);
            return 1;
        }
        fputs(body, stdout);
        free(body);
        return 0;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct termios saved;
    bool raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (raw) {
        struct termios t = saved;
        t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
    int rc = 0;
    bool clear = isatty(STDOUT_FILENO) || getenv("TROUPE_TOP_CLEAR") != NULL;
    for (long shown = 0; !stop && (count < 0 || shown < count); shown++) {
        char *body = http_get(host, port, "/tree.json", err, sizeof(err));
        if (body == NULL) {
            fprintf(stderr, "troupe-top: %s\n", err);
            rc = 1;
            break;
        }
        if (!show(stdout, body, endpoint, clear)) {
            fprintf(stderr, "troupe-top: the endpoint's JSON did not parse\n");
            free(body);
            rc = 1;
            break;
        }
        free(body);
        if (count >= 0 && shown + 1 >= count) {
            break;
        }
        /* Wait for the next refresh, or a key. */
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&p, raw ? 1 : 0, (int)delay_ms) > 0) {
            char c = 0;
            if (read(STDIN_FILENO, &c, 1) == 1) {
                sort_by = c == 'm'   ? SORT_MAILBOX
                          : c == 'r' ? SORT_RESTARTS
                          : c == 'h' ? SORT_RATE
                          : c == 'p' ? SORT_PATH
                                     : sort_by;
                stop = c == 'q';
            }
        }
    }
    if (raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    }
    if (clear) {
        fputs("\n", stdout);
    }
    for (size_t i = 0; i < nprev; i++) {
        free(prev[i].path);
    }
    free(prev);
    return rc;
}
