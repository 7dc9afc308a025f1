/*
 * A seeded pseudo-random generator of troupe's own, for the simulation mode
 * (actors/sim.c): xoshiro256** (Blackman and Vigna, 2018), seeded through
 * SplitMix64 (Steele, Lea and Flood, 2014), as the authors recommend.
 *
 * Why not rand() or the platform's: a seed must replay the same run on
 * every platform and C library, so every operation here is fixed-width
 * unsigned arithmetic whose result the C standard defines exactly.
 *
 * Streams. A simulation draws for several concerns (scheduling, batch
 * boundaries, time, faults, user code). Each gets its own generator, seeded
 * from the run's seed and the stream's number, so that one more draw in one
 * concern does not shift the choices of the others.
 */
#ifndef TR_RAND_H
#define TR_RAND_H

#include <stdint.h>

typedef struct tr_rand {
    uint64_t s[4];
} tr_rand;

/* One step of SplitMix64: advances `*x` and returns a well-mixed word. */
static inline uint64_t
tr__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Seed stream `stream` of a run whose seed is `seed`. The state is never
 * all zero: SplitMix64 outputs four distinct words from any start. */
static inline void
tr__rand_seed(tr_rand *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xd1342543de82ef95));

    for (int i = 0; i < 4; i++) {
        r->s[i] = tr__splitmix64(&x);
    }
}

static inline uint64_t
tr__rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* The next 64 random bits (xoshiro256**). */
static inline uint64_t
tr__rand_next(tr_rand *r)
{
    uint64_t *s = r->s;
    uint64_t out = tr__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tr__rotl64(s[3], 45);
    return out;
}

/* A number in [0, bound) (`bound` > 0). The modulo's bias is below 2^-40
 * for the bounds a simulation uses, and unlike a rejection loop it draws
 * exactly one word, which keeps a recorded run's draws countable. */
static inline uint64_t
tr__rand_below(tr_rand *r, uint64_t bound)
{
    return tr__rand_next(r) % bound;
}

#endif /* TR_RAND_H */
