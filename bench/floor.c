/*
 * The floor of one message, for the instruction budget of BENCH.md: on
 * one thread, allocate a 40-byte envelope with the runtime's allocator
 * switch (jemalloc's mallocx in release builds), push it on the intrusive
 * MPSC queue under every mailbox, pop it and free it (sdallocx). This is
 * not a workload: it is what a message cannot cost less than, measured by
 * callgrind the same way as pingpong (see docs/benchmarks.md):
 *
 *   valgrind --tool=callgrind bench_floor N   (for two N; the difference
 *   of the totals over the difference of N is the cost of one message)
 */
#include "common/tr_alloc.h"
#include "mailbox/mpsc.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    tr_mpsc_prod p;
    tr_mpsc_cons c;
    unsigned long sum = 0;

    tr__mpsc_init(&p, &c, false);
    for (long i = 0; i < n; i++) {
        tr_mnode *node = tr__alloc(40);
        tr_mnode *done;

        if (node == NULL) {
            return 1;
        }
        ((unsigned long *)(void *)node)[1] = (unsigned long)i;
        (void)tr__mpsc_push(&p, node);
        tr_mnode *got = tr__mpsc_pop(&c, &done);
        sum += ((unsigned long *)(void *)got)[1];
        tr__free(done, 40);
    }
    tr_mnode *last = tr__mpsc_dummy(&c);
    tr__free(last, 40);
    printf("workload=floor n=%ld sum=%lu\n", n, sum);
    return 0;
}
