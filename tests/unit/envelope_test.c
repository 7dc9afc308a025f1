/*
 * Envelope caches and their depot: a consumer's cache that overflows hands
 * batches to the depot only as far as producers have shown they take
 * them, and the rest to the allocator; a producer's cache that takes the
 * depot's last batch doubles what it keeps, up to its bound. Envelopes
 * freed by another worker's cache go back to the one that allocated them,
 * in batches, on one thread and between two.
 */
#include "support/tr_test.h"

#include "actors/internal.h"
#include "mailbox/envelope.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE = 8 }; /* a 64-bit payload: one class */

/* A system of three workers' caches; the third, `other`, is a second
 * producer. */
typedef struct depot_fx {
    tr_env_depot *d;
    tr_env_cache producer;
    tr_env_cache consumer;
    tr_env_cache other;
} depot_fx;

static int
setup(void **state)
{
    depot_fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL || tr__env_depot_create(&fx->d, 3) != TR_OK) {
        free(fx);
        return -1;
    }
    tr__env_cache_init(&fx->producer, fx->d, 0);
    tr__env_cache_init(&fx->consumer, fx->d, 1);
    tr__env_cache_init(&fx->other, fx->d, 2);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    depot_fx *fx = *state;

    tr__env_cache_flush(&fx->producer);
    tr__env_cache_flush(&fx->consumer);
    tr__env_cache_flush(&fx->other);
    tr__env_depot_destroy(fx->d);
    free(fx);
    return 0;
}

static void
expect_depot(depot_fx *fx, uint32_t held, uint32_t keep)
{
    uint32_t h = 99;
    uint32_t k = 99;

    tr__env_depot_count(fx->d, SIZE, &h, &k);
    assert_int_equal(h, held);
    assert_int_equal(k, keep);
}

/* `n` envelopes from the allocator (a plain thread's), or from the
 * producer's cache when `from` is set. */
static tr_envelope **
take(tr_env_cache *from, uint32_t n)
{
    tr_envelope **env = calloc(n, sizeof(*env));

    assert_non_null(env);
    for (uint32_t i = 0; i < n; i++) {
        env[i] = tr__env_create_in(from, SIZE);
        assert_non_null(env[i]);
        assert_int_equal(env[i]->size, SIZE);
    }
    return env;
}

/* `n` envelopes of `c`'s own, as its cache allocates them when it has
 * none: the allocator's, of the class's size, with `c`'s worker as home. */
static tr_envelope **
own(tr_env_cache *c, uint32_t n)
{
    tr_envelope **env = take(NULL, n);

    for (uint32_t i = 0; i < n; i++) {
        env[i]->home = c->home;
    }
    return env;
}

/* The consumer frees them: its cache, when full, spills a batch to the
 * depot (or the allocator) every TR_ENV_BATCH frees. */
static void
give(depot_fx *fx, tr_envelope **env, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        tr__env_destroy_in(&fx->consumer, env[i]);
    }
    free(env);
}

static void
test_depot_keeps_what_producers_take(void **state)
{
    depot_fx *fx = *state;
    uint32_t keep = TR_ENV_DEPOT_MIN;
    uint32_t n;

    expect_depot(fx, 0, keep);
    /* A consumer alone (a worker that frees a burst of its own): after
     * its cache is full, the depot keeps a few batches, the rest goes
     * back. */
    n = TR_ENV_CACHE_MAX + 40 * TR_ENV_BATCH;
    give(fx, own(&fx->consumer, n), n);
    expect_depot(fx, keep, keep);
    /* A producer that takes the last batch doubles what the depot keeps,
     * up to its bound. */
    while (keep < TR_ENV_DEPOT_MAX) {
        n = keep * TR_ENV_BATCH;
        tr_envelope **drawn = take(&fx->producer, n);
        expect_depot(fx, 0, 2 * keep);
        keep *= 2;
        give(fx, drawn, n);
        expect_depot(fx, keep / 2, keep);
        n = keep * TR_ENV_BATCH;
        give(fx, own(&fx->consumer, n), n);
        expect_depot(fx, keep, keep);
    }
    n = keep * TR_ENV_BATCH;
    give(fx, take(&fx->producer, n), n);
    expect_depot(fx, keep, TR_ENV_DEPOT_MAX);
    /* A producer that takes from the depot only part of it keeps the
     * bound where it was. */
    n = TR_ENV_BATCH;
    give(fx, take(&fx->producer, n), n);
    expect_depot(fx, keep, TR_ENV_DEPOT_MAX);
}

/* What `c` shares: its outbox and return stacks. */
static tr_env_home *
outbox(tr_env_cache *c)
{
    return &c->homes[c->home];
}

/*
 * Producers that each send a few thousand in a run, all before their
 * consumer drains them (four of 3,000: a swing of twelve runs' worth):
 * once the depot has learnt the swing, it holds at the top of the swing
 * all that the cache cannot, and gives all of it back at the bottom, so
 * that none goes through the allocator.
 */
static void
test_depot_holds_a_swing_of_twelve_runs(void **state)
{
    enum {
        SWING = 12 * TR_BATCH,
        OVER = (SWING - TR_ENV_CACHE_MAX) / TR_ENV_BATCH,
    };
    depot_fx *fx = *state;
    tr_env_cache *c = &fx->consumer;
    uint32_t held;
    uint32_t keep;

    for (int i = 0; i < 10; i++) {
        give(fx, take(c, SWING), SWING);
    }
    for (int i = 0; i < 4; i++) {
        tr_envelope **env = take(c, SWING);
        tr__env_depot_count(fx->d, SIZE, &held, &keep);
        assert_int_equal(held, 0);
        give(fx, env, SWING);
        tr__env_depot_count(fx->d, SIZE, &held, &keep);
        assert_int_equal(held, OVER);
    }
}

/*
 * A plain thread's envelope has no home: a small one is its class's size,
 * a larger one whole cache lines; a worker's cache that frees one gives it
 * back to the allocator and keeps nothing of it. Each payload is written
 * whole, which ASan checks against the block.
 */
/*
 * A worker whose runs swing through a run's worth of envelopes and a few
 * more (a consumer's run of TR_BATCH, its producers' values and notes to
 * themselves) after a start that left it four runs' worth (two workers'
 * producers all ran before the consumer): once settled, it trades no
 * batch with the depot, at the swing's bottom or its top. A cache bounded
 * at one run spilled a batch at every top and took it back at every
 * bottom.
 */
static void
test_cache_settles_on_a_swing_of_a_run(void **state)
{
    enum { SWING = TR_BATCH + TR_ENV_BATCH / 2 };
    depot_fx *fx = *state;
    tr_env_cache *c = &fx->consumer;
    uint32_t held;
    uint32_t keep;

    give(fx, take(c, 4 * TR_BATCH), 4 * TR_BATCH);
    for (int i = 0; i < 4; i++) {
        give(fx, take(c, SWING), SWING);
    }
    tr__env_depot_count(fx->d, SIZE, &held, &keep);
    for (int i = 0; i < 16; i++) {
        tr_envelope **env = take(c, SWING);
        expect_depot(fx, held, keep);
        give(fx, env, SWING);
        expect_depot(fx, held, keep);
    }
}

static void
test_plain_envelopes_go_back_to_the_allocator(void **state)
{
    static const uint32_t sizes[] = {0,  1,  8,  31, 32,  33,
                                     64, 95, 96, 97, 200, 4000};
    enum { N = 16 };
    depot_fx *fx = *state;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t size = sizes[i];
        unsigned k = tr__env_class(size);
        tr_envelope *env[N];

        for (int j = 0; j < N; j++) {
            env[j] = tr__env_create(size);
            assert_non_null(env[j]);
            assert_int_equal(env[j]->home, TR_ENV_NO_HOME);
            assert_int_equal(env[j]->size, size);
            if (size <= TR_ENV_SMALL) {
                assert_int_equal(env[j]->block, sizeof(tr_envelope) + 16 * k);
            } else {
                assert_int_equal(env[j]->block, 0);
                assert_int_equal((uintptr_t)env[j] % TR_CACHE_LINE, 0);
            }
            memset(tr__env_data(env[j]), 0xa5, size);
        }
        for (int j = 0; j < N; j++) {
            tr__env_destroy_in(&fx->producer, env[j]);
        }
        if (size <= TR_ENV_SMALL) {
            assert_int_equal(fx->producer.len[k], 0);
            assert_null(fx->producer.free[k]);
        }
    }
    assert_null(outbox(&fx->producer)->out_first[tr__env_class(SIZE)]);
}

static bool
among(tr_envelope **env, uint32_t n, const tr_envelope *e)
{
    for (uint32_t i = 0; i < n; i++) {
        if (env[i] == e) {
            return true;
        }
    }
    return false;
}

/*
 * What a consumer frees of a producer's goes back to the producer: none
 * enters the consumer's cache; each batch of TR_ENV_BATCH reaches the
 * producer's return stack whole, the rest waits in the consumer's outbox
 * until a batch fills or one of another home comes, and the producer
 * takes all returned when its free list runs dry, before the depot or the
 * allocator. A plain thread's envelope goes back to the allocator.
 */
static void
test_envelopes_go_home_in_batches(void **state)
{
    enum { N = 3 * TR_ENV_BATCH + 5 };
    depot_fx *fx = *state;
    unsigned k = tr__env_class(SIZE);
    tr_envelope **env = take(&fx->producer, N);
    tr_envelope *plain = tr__env_create(SIZE);

    assert_non_null(plain);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(env[i]->home, fx->producer.home);
    }
    assert_int_equal(fx->producer.len[k], 0);
    for (uint32_t i = 0; i < N; i++) {
        tr__env_destroy_in(&fx->consumer, env[i]);
    }
    assert_int_equal(fx->consumer.len[k], 0);
    assert_null(fx->consumer.free[k]);
    assert_int_equal(outbox(&fx->consumer)->out_len[k], N - 3 * TR_ENV_BATCH);
    assert_int_equal(outbox(&fx->consumer)->out_home[k], fx->producer.home);

    tr_envelope *again = tr__env_create_in(&fx->producer, SIZE);
    assert_true(among(env, N, again));
    assert_int_equal(again->home, fx->producer.home);
    assert_int_equal(fx->producer.len[k], 3 * TR_ENV_BATCH - 1);

    /* One of another home posts the outbox as it is. */
    tr_envelope *foreign = tr__env_create_in(&fx->other, SIZE);
    assert_non_null(foreign);
    tr__env_destroy_in(&fx->consumer, foreign);
    assert_int_equal(outbox(&fx->consumer)->out_len[k], 1);
    assert_int_equal(outbox(&fx->consumer)->out_home[k], fx->other.home);
    /* The producer's free list runs dry: then it takes those five. */
    tr_envelope **drawn = calloc(N, sizeof(*drawn));
    assert_non_null(drawn);
    for (uint32_t i = 0; i < N - 1; i++) {
        drawn[i] = tr__env_create_in(&fx->producer, SIZE);
        assert_true(among(env, N, drawn[i]));
        assert_int_equal(fx->producer.len[k], i < 3 * TR_ENV_BATCH - 1
                                                  ? 3 * TR_ENV_BATCH - 2 - i
                                                  : N - 2 - i);
    }
    assert_null(fx->producer.free[k]);
    for (uint32_t i = 0; i < N - 1; i++) {
        tr__env_destroy(drawn[i]);
    }
    free(drawn);

    /* A plain thread's goes back to the allocator. */
    tr__env_destroy_in(&fx->consumer, plain);
    assert_int_equal(fx->consumer.len[k], 0);
    assert_int_equal(outbox(&fx->consumer)->out_len[k], 1);
    tr__env_destroy(again);
    free(env);
}
/* The envelopes on `h`'s return stack of class `k`. */
static uint32_t
stacked(tr_env_home *h, unsigned k)
{
    uint32_t n = 0;

    for (tr_mnode *m = tr_load_relaxed(&h->returned[k]); m != NULL;
         m = tr_load_relaxed(&m->next)) {
        n++;
    }
    return n;
}

/*
 * A burst: a worker sends many envelopes away, and they all come back
 * while it allocates no more. What comes back stops gathering on its
 * return stack at TR_ENV_CACHE_MAX; later batches go to the allocator,
 * not to the depot, where a third worker that runs dry would take them
 * and use them away from their home. The stack's count is its length,
 * and the home takes them all when it next runs dry.
 */
static void
test_return_stack_holds_at_most_a_cache(void **state)
{
    enum { SENT = 40 * TR_ENV_BATCH };
    depot_fx *fx = *state;
    unsigned k = tr__env_class(SIZE);
    tr_env_home *home = outbox(&fx->producer);
    tr_envelope **sent = take(&fx->producer, SENT);

    for (uint32_t i = 0; i < SENT; i++) {
        tr__env_destroy_in(&fx->consumer, sent[i]);
        assert_true(stacked(home, k) <= TR_ENV_CACHE_MAX);
    }
    free(sent);
    assert_int_equal(stacked(home, k), TR_ENV_CACHE_MAX);
    assert_int_equal(tr_load_relaxed(&home->returned_len[k]), TR_ENV_CACHE_MAX);
    expect_depot(fx, 0, TR_ENV_DEPOT_MIN);

    /* A third worker, dry, allocates its own. */
    tr_envelope **drawn = take(&fx->other, TR_ENV_BATCH);
    for (uint32_t i = 0; i < TR_ENV_BATCH; i++) {
        assert_int_equal(drawn[i]->home, fx->other.home);
        tr__env_destroy_in(&fx->other, drawn[i]);
    }
    free(drawn);

    /* Dry, the home takes the whole stack. */
    drawn = take(&fx->producer, TR_ENV_CACHE_MAX);
    assert_int_equal(stacked(home, k), 0);
    assert_int_equal(tr_load_relaxed(&home->returned_len[k]), 0);
    assert_int_equal(fx->producer.len[k], 0);
    for (uint32_t i = 0; i < TR_ENV_CACHE_MAX; i++) {
        assert_int_equal(drawn[i]->home, fx->producer.home);
        tr__env_destroy_in(&fx->producer, drawn[i]);
    }
    free(drawn);
}

/*
 * The same bound while the home takes its stack: one thread allocates
 * bursts (taking back what came home whenever it runs dry) and hands them
 * to another, which frees them, posting them home as the first takes.
 * When both are done, the stack's count is its length, and the stack
 * holds at most a cache's worth and the batch that reached it.
 * (ThreadSanitizer checks the count's and the stack's hand-over.)
 */
enum { BURST = 12 * TR_ENV_BATCH, BURSTS = 40 };

/* Burst r is handed over in slot r % 2 before the r-th barrier: the
 * other thread frees it while this one allocates the next. */
typedef struct bursts {
    depot_fx *fx;
    pthread_barrier_t handed;
    tr_envelope **slot[2];
} bursts;

static void *
burst_free_main(void *arg)
{
    bursts *b = arg;

    for (uint32_t r = 0; r < BURSTS; r++) {
        pthread_barrier_wait(&b->handed);
        tr_envelope **env = b->slot[r % 2];
        for (uint32_t i = 0; i < BURST; i++) {
            tr__env_destroy_in(&b->fx->consumer, env[i]);
        }
        free(env);
    }
    return NULL;
}

static void
test_return_stack_bound_holds_while_its_home_takes(void **state)
{
    bursts b = {.fx = *state};
    unsigned k = tr__env_class(SIZE);
    tr_env_home *home = outbox(&b.fx->producer);
    pthread_t t;

    assert_int_equal(pthread_barrier_init(&b.handed, NULL, 2), 0);
    assert_int_equal(pthread_create(&t, NULL, burst_free_main, &b), 0);
    for (uint32_t r = 0; r < BURSTS; r++) {
        b.slot[r % 2] = take(&b.fx->producer, BURST);
        pthread_barrier_wait(&b.handed);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_barrier_destroy(&b.handed);

    uint32_t n = stacked(home, k);
    assert_int_equal(tr_load_relaxed(&home->returned_len[k]), n);
    assert_true(n <= TR_ENV_CACHE_MAX + TR_ENV_BATCH - 1);
    assert_true(n >= TR_ENV_BATCH);
}

/*
 * Two workers' threads, each sending the other envelopes of every class
 * and freeing what it receives: every one arrives with its sender's home
 * and payload, goes back to its home, and is allocated there again, so
 * each thread's distinct envelopes are a few batches, not all it sent,
 * and no envelope is ever allocated by both.
 * (ThreadSanitizer checks the return stacks' hand-over in its build.)
 */
enum { ROUNDS = 200, PER_ROUND = 300 };

typedef struct mail {
    pthread_mutex_t lock;
    tr_envelope *env[2 * PER_ROUND];
    uint32_t n;
} mail;

typedef struct side {
    tr_env_cache *cache;
    mail *in;
    mail *out;
    pthread_barrier_t *round; /* sends of a round before its receives */
    uint16_t peer;            /* the other side's home */
    uintptr_t *sent;          /* every envelope it allocated */
    uint32_t bad;             /* received with a wrong home or payload */
} side;

static unsigned char
pattern(uint16_t home, uint32_t size)
{
    return (unsigned char)(home * 131 + size);
}

/* Free all that came, checking each. */
static void
receive(side *sd)
{
    tr_envelope *got[2 * PER_ROUND];
    uint32_t n;

    pthread_mutex_lock(&sd->in->lock);
    n = sd->in->n;
    memcpy(got, sd->in->env, n * sizeof(got[0]));
    sd->in->n = 0;
    pthread_mutex_unlock(&sd->in->lock);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = tr__env_data(got[i]);
        bool ok = got[i]->home == sd->peer;
        for (uint32_t b = 0; ok && b < got[i]->size; b++) {
            ok = p[b] == pattern(sd->peer, got[i]->size);
        }
        sd->bad += !ok;
        tr__env_destroy_in(sd->cache, got[i]);
    }
}

/* A round: allocate and send PER_ROUND, wait for the other's, free what
 * came while the other frees too (its returns race this side's next
 * allocations). */
static void *
exchange_main(void *arg)
{
    side *sd = arg;
    uint32_t sent = 0;

    for (uint32_t r = 0; r < ROUNDS; r++) {
        tr_envelope *batch[PER_ROUND];
        for (uint32_t i = 0; i < PER_ROUND; i++) {
            uint32_t size = (r + i) % (TR_ENV_SMALL + 1);
            batch[i] = tr__env_create_in(sd->cache, size);
            if (batch[i] == NULL) {
                abort(); /* the allocator's; no test to fail here */
            }
            sd->bad += batch[i]->home != sd->cache->home;
            memset(tr__env_data(batch[i]), pattern(sd->cache->home, size),
                   size);
            sd->sent[sent++] = (uintptr_t)batch[i];
        }
        pthread_mutex_lock(&sd->out->lock);
        memcpy(&sd->out->env[sd->out->n], batch, sizeof(batch));
        sd->out->n += PER_ROUND;
        pthread_mutex_unlock(&sd->out->lock);
        pthread_barrier_wait(sd->round);
        receive(sd);
    }
    return NULL;
}

static int
cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a;
    uintptr_t y = *(const uintptr_t *)b;

    return (x > y) - (x < y);
}

/* Both sorted: true when `a` and `b` hold an address in common. */
static bool
overlap(const uintptr_t *a, const uintptr_t *b, uint32_t n)
{
    for (uint32_t i = 0, j = 0; i < n && j < n;) {
        if (a[i] == b[j]) {
            return true;
        }
        a[i] < b[j] ? i++ : j++;
    }
    return false;
}

static uint32_t
distinct(uintptr_t *v, uint32_t n)
{
    uint32_t d = 0;

    qsort(v, n, sizeof(v[0]), cmp_addr);
    for (uint32_t i = 0; i < n; i++) {
        d += i == 0 || v[i] != v[i - 1];
    }
    return d;
}

static void
test_two_threads_send_envelopes_home(void **state)
{
    depot_fx *fx = *state;
    mail box[2];
    pthread_barrier_t round;
    side sd[2] = {
        {.cache = &fx->producer, .in = &box[0], .out = &box[1], .peer = 1},
        {.cache = &fx->consumer, .in = &box[1], .out = &box[0], .peer = 0},
    };
    pthread_t t[2];

    assert_int_equal(pthread_barrier_init(&round, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        pthread_mutex_init(&box[i].lock, NULL);
        box[i].n = 0;
        sd[i].round = &round;
        sd[i].sent = calloc(ROUNDS * PER_ROUND, sizeof(uintptr_t));
        assert_non_null(sd[i].sent);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, exchange_main, &sd[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    for (int i = 0; i < 2; i++) {
        receive(&sd[i]);
    }
    pthread_barrier_destroy(&round);
    for (int i = 0; i < 2; i++) {
        uint32_t d = distinct(sd[i].sent, ROUNDS * PER_ROUND);
        assert_int_equal(sd[i].bad, 0);
        /* In flight at once: a round or two, the outboxes' batches, and
         * what waits in return stacks. */
        assert_true(d < ROUNDS * PER_ROUND / 8);
    }
    assert_false(overlap(sd[0].sent, sd[1].sent, ROUNDS * PER_ROUND));
    for (int i = 0; i < 2; i++) {
        free(sd[i].sent);
        pthread_mutex_destroy(&box[i].lock);
    }
}

/*
 * What the envelopes stand on: tr__alloc_aligned and tr__calloc_aligned
 * start a line at every size, from one byte through jemalloc's small
 * classes to large blocks, although they no longer pass jemalloc an
 * alignment (common/tr_alloc.c); the whole lines are the block's
 * (written whole; ASan checks them in its build), and calloc's are zero.
 * Blocks of one size are allocated several at a time, so that a class's
 * regions after the first are looked at too.
 */
static void
test_aligned_blocks_start_a_line_at_every_size(void **state)
{
    static const size_t large[] = {4000,  8192,  14336,   14337,
                                   16384, 20000, 1 << 16, 1 << 20};
    enum { N = 4, SMALL = 1100 };

    (void)state;
    for (size_t k = 0; k < SMALL + sizeof(large) / sizeof(large[0]); k++) {
        size_t size = k < SMALL ? k + 1 : large[k - SMALL];
        size_t lines = (size + TR_CACHE_LINE - 1) / TR_CACHE_LINE;
        unsigned char *p[N];
        unsigned char *z[N];

        for (int i = 0; i < N; i++) {
            p[i] = tr__alloc_aligned(size);
            z[i] = tr__calloc_aligned(size);
            assert_non_null(p[i]);
            assert_non_null(z[i]);
            assert_int_equal((uintptr_t)p[i] % TR_CACHE_LINE, 0);
            assert_int_equal((uintptr_t)z[i] % TR_CACHE_LINE, 0);
            for (size_t b = 0; b < lines * TR_CACHE_LINE; b++) {
                assert_int_equal(z[i][b], 0);
            }
            memset(p[i], 0x5a, lines * TR_CACHE_LINE);
        }
        for (int i = 0; i < N; i++) {
            tr__free_aligned(p[i], size);
            tr__free_aligned(z[i], size);
        }
    }
}

/*
 * A cache allocates each class's size as it is, 32 to 128 bytes by 16,
 * and says so in the header; one freed into it serves the largest size of
 * its class next. Each goes back to the allocator as it was allocated,
 * whoever frees it, and so do the batches a full cache spills (checked
 * builds assert the size: common/tr_alloc.c).
 */
static void
test_packed_cache_allocates_each_class_as_it_is(void **state)
{
    enum { SPILLED = TR_ENV_CACHE_MAX + 2 * TR_ENV_BATCH };
    tr_env_cache packed;

    (void)state;
    tr__env_cache_init(&packed, NULL, 0);
    for (uint32_t size = 0; size <= TR_ENV_SMALL; size++) {
        uint32_t top = 16 * tr__env_class(size); /* the class's largest */
        tr_envelope *env = tr__env_create_in(&packed, size);

        assert_non_null(env);
        assert_int_equal(env->block, sizeof(tr_envelope) + top);
        assert_int_equal(env->home, packed.home);
        memset(tr__env_data(env), 0x5a, top);
        tr__env_destroy_in(&packed, env);
        tr_envelope *again = tr__env_create_in(&packed, top);
        assert_ptr_equal(again, env);
        assert_int_equal(again->size, top);
        memset(tr__env_data(again), 0xa5, top);
        tr__env_destroy(again);
    }
    tr_envelope **env = calloc(SPILLED, sizeof(*env));
    assert_non_null(env);
    for (uint32_t i = 0; i < SPILLED; i++) {
        env[i] = tr__env_create_in(&packed, i % (TR_ENV_SMALL + 1));
        assert_non_null(env[i]);
    }
    for (uint32_t i = 0; i < SPILLED; i++) {
        tr__env_destroy_in(&packed, env[i]);
    }
    free(env);
    tr__env_cache_flush(&packed);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_depot_keeps_what_producers_take,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_settles_on_a_swing_of_a_run,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_depot_holds_a_swing_of_twelve_runs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plain_envelopes_go_back_to_the_allocator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelopes_go_home_in_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_threads_send_envelopes_home,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_stack_holds_at_most_a_cache,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_return_stack_bound_holds_while_its_home_takes, setup,
            teardown),
        cmocka_unit_test(test_aligned_blocks_start_a_line_at_every_size),
        cmocka_unit_test(test_packed_cache_allocates_each_class_as_it_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
