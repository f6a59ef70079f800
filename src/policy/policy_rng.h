/* policy_rng.h: the RL side's own pseudo-random generator.
 *
 * xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number
 * generators", ACM TOMS 2021) seeded through splitmix64, as its authors
 * recommend. Everything random in policy training (initial weights, action
 * sampling, minibatch shuffles, budgets) draws from a PolicyRng, so the same
 * seed gives byte-identical results on every platform: no libc rand(), no
 * global state.
 */
#ifndef DRRL_POLICY_RNG_H
#define DRRL_POLICY_RNG_H

#include <stdint.h>

typedef struct PolicyRng {
    uint64_t s[4];
} PolicyRng;

/* Seed the generator (any seed, 0 included, gives a valid non-zero state). */
void policy_rng_seed(PolicyRng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t policy_rng_u64(PolicyRng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double policy_rng_uniform(PolicyRng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method). */
uint64_t policy_rng_below(PolicyRng *r, uint64_t n);
/* Standard normal deviate (Box-Muller; draws two uniforms, keeps no state). */
double policy_rng_normal(PolicyRng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void policy_rng_shuffle(PolicyRng *r, int *idx, int n);

#endif
