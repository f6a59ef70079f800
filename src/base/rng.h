/* rng.h: drrl's one pseudo-random module. No libc rand(), no global state:
 * the same seed gives the same numbers on every platform.
 *
 *   splitmix64   (Steele, Lea & Flood, "Fast splittable pseudorandom number
 *                generators", OOPSLA 2014): a 64-bit state advanced by the
 *                golden gamma; cheap, for seeding and simple streams.
 *   xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number
 *                generators", ACM TOMS 2021): the Rng below, seeded through
 *                splitmix64 as its authors recommend.
 *   xorshift64   (Marsaglia, "Xorshift RNGs", JSS 2003; shifts 13, 7, 17):
 *                synthetic benchmark and test data only.
 *
 * Uniforms and normals are built from 64 random bits by the mappings below;
 * each caller keeps the mapping it has always used, so streams (and the
 * traces and trained models made from them) stay the same.
 */
#ifndef DRRL_RNG_H
#define DRRL_RNG_H

#include <stdint.h>

#define RNG_GAMMA 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio, odd */

/* Advance *state by RNG_GAMMA and return its mix (splitmix64's next value). */
uint64_t rng_splitmix64(uint64_t *state);

/* splitmix64 as a stateless hash: the value rng_splitmix64 returns from
 * state x (x itself is not changed). */
uint64_t rng_hash64(uint64_t x);

/* Marsaglia's xorshift64 step: *state must be non-zero; returns the new state. */
uint64_t rng_xorshift64(uint64_t *state);

/* xoshiro256**. */
typedef struct Rng {
    uint64_t s[4];
} Rng;

/* Seed with four splitmix64 draws from seed (any seed, 0 included, gives a
 * valid non-zero state). */
void rng_seed(Rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t rng_u64(Rng *r);
/* Uniform double in [0, 1) with 53 random bits: rng_unit(rng_u64(r)). */
double rng_uniform(Rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias (rejection of the
 * draws at or above the largest multiple of n). */
uint64_t rng_below(Rng *r, uint64_t n);
/* Standard normal deviate: rng_box_muller of two rng_uniform draws, the first
 * raised to 1e-300 if it is smaller (keeps no state). */
double rng_normal(Rng *r);
/* Fisher-Yates shuffle of idx[0..n) with rng_below. */
void rng_shuffle(Rng *r, int *idx, int n);

/* 64 random bits x to a double: the top 53 bits as k = x >> 11, then
 *   rng_unit       k / 2^53          in [0, 1)
 *   rng_unit_open  (k + 1) / 2^53    in (0, 1]  (a safe log argument)
 *   rng_unit_mid   (k + 0.5) / 2^53  in (0, 1]  (rounded to double: the top k
 *                                               gives 1) */
double rng_unit(uint64_t x);
double rng_unit_open(uint64_t x);
double rng_unit_mid(uint64_t x);

/* Box-Muller (Box & Muller 1958): sqrt(-2 ln u1) cos(2 pi u2), a standard
 * normal deviate when u1 is uniform in (0, 1] and u2 uniform in [0, 1). */
double rng_box_muller(double u1, double u2);

#endif
