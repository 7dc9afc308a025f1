/*
 * chat: the chat server of the tokio tutorial, as a troupe service.
 *
 *   sample_chat [-i IP] [-p PORT] [--admin] [--faults]
 *
 * Talk to it with `nc 127.0.0.1 42069`. SIGINT or SIGTERM stops it
 * cleanly: every client is told, and has up to 3 seconds to read what is
 * left for it (CHAT_LINGER_MS); then every socket is closed.
 */
#include "chat.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void
usage(FILE *to)
{
    fprintf(to, "usage: sample_chat [options]\n"
                "  -i, --ip IP          listen on IP (default 127.0.0.1)\n"
                "  -p, --port PORT      listen on PORT (default 42069; 0 picks "
                "one)\n"
                "      --admin          add /admin: the live supervision tree "
                "and counters\n"
                "      --faults         add fault switches: /crash (this "
                "connection),\n"
                "                       /crashroom (this room), /stall MS "
                "(block this\n"
                "                       connection's actor)\n"
                "  -w, --workers N      worker threads (default: one per CPU)\n"
                "      --io-threads N   I/O loop threads (default 1)\n"
                "      --inspect ADDR   serve the live inspection endpoint on "
                "ADDR\n"
                "                       (127.0.0.1:0 picks a port)\n"
                "  -q, --quiet          print nothing but errors\n"
                "  -h, --help           this text\n");
}

static bool
number(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* As many descriptors as the hard limit allows: one per connection. */
static void
raise_fd_limit(void)
{
    struct rlimit r;

    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &r);
    }
}

int
main(int argc, char **argv)
{
    static chat_server srv;
    static const struct option longs[] = {
        {"ip", required_argument, NULL, 'i'},
        {"port", required_argument, NULL, 'p'},
        {"admin", no_argument, NULL, 'A'},
        {"faults", no_argument, NULL, 'F'},
        {"workers", required_argument, NULL, 'w'},
        {"io-threads", required_argument, NULL, 'I'},
        {"inspect", required_argument, NULL, 'S'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long v;
    int c;
    sigset_t sigs;
    const char *inspect = NULL;

    srv.cfg.ip = "127.0.0.1";
    srv.cfg.port = 42069;
    while ((c = getopt_long(argc, argv, "i:p:w:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'i':
            srv.cfg.ip = optarg;
            break;
        case 'p':
            if (!number(optarg, 65535, &v)) {
                fprintf(stderr, "chat: bad port '%s'\n", optarg);
                return 2;
            }
            srv.cfg.port = (uint16_t)v;
            break;
        case 'A':
            srv.cfg.admin = true;
            break;
        case 'F':
            srv.cfg.faults = true;
            break;
        case 'w':
            if (!number(optarg, 1024, &v)) {
                fprintf(stderr, "chat: bad worker count '%s'\n", optarg);
                return 2;
            }
            srv.cfg.workers = (unsigned)v;
            break;
        case 'I':
            if (!number(optarg, 64, &v)) {
                fprintf(stderr, "chat: bad I/O thread count '%s'\n", optarg);
                return 2;
            }
            srv.cfg.io_threads = (unsigned)v;
            break;
        case 'S':
            inspect = optarg;
            break;
        case 'q':
            srv.cfg.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* Every thread inherits this mask: the signals wait for sigwait. A
     * shell starts background jobs with SIGINT ignored, and an ignored
     * signal is discarded even while blocked: take them back first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    int rc = chat_start(&srv);
    if (rc != TR_OK) {
        int lrc = atomic_load(&srv.listen_rc);
        fprintf(stderr, "chat: cannot listen on %s:%u: %s\n", srv.cfg.ip,
                (unsigned)srv.cfg.port, tr_strerror(lrc != TR_OK ? lrc : rc));
        return 1;
    }
    printf("chat: listening on %s:%u\n", srv.cfg.ip,
           (unsigned)atomic_load(&srv.port));
    if (inspect != NULL) {
        uint16_t iport = 0;
        int irc = tr_inspect_serve(srv.sys, inspect, NULL, &iport);
        if (irc == TR_OK) {
            char host[64];
            snprintf(host, sizeof(host), "%s", inspect);
            char *colon = strrchr(host, ':');
            if (colon != NULL) {
                *colon = '\0';
            }
            printf("chat: live tree on http://%s:%u/\n", host, (unsigned)iport);
        } else {
            fprintf(stderr,
                    "chat: cannot serve the inspection endpoint on "
                    "%s: %s\n",
                    inspect, tr_strerror(irc));
        }
    }
    fflush(stdout);

    int code = 0;
    for (;;) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
        if (tr_system_wait(srv.sys, tr_ms(1)) == TR_OK) {
            fprintf(stderr, "chat: the supervision tree gave up\n");
            code = 1;
            break;
        }
    }
    if (!srv.cfg.quiet) {
        printf("chat: shutting down (connections=%llu accepted=%llu "
               "said=%llu)\n",
               (unsigned long long)atomic_load(&srv.connections),
               (unsigned long long)atomic_load(&srv.accepted),
               (unsigned long long)atomic_load(&srv.said));
        fflush(stdout);
    }
    if (chat_stop(&srv) != TR_OK) {
        code = code != 0 ? code : 1;
    }
    if (!srv.cfg.quiet) {
        printf("chat: stopped\n");
    }
    return code;
}
