/* policy_rng.h: the RL side's generator, base/rng.h's xoshiro256** under the
 * names policy code uses. Everything random in policy training (initial
 * weights, action sampling, minibatch shuffles, budgets) draws from a
 * PolicyRng, so the same seed gives byte-identical results on every platform.
 */
#ifndef DRRL_POLICY_RNG_H
#define DRRL_POLICY_RNG_H

#include <stdint.h>

#include "base/rng.h"

typedef Rng PolicyRng;

#define policy_rng_seed rng_seed       /* (PolicyRng *r, uint64_t seed) */
#define policy_rng_u64 rng_u64         /* next 64 random bits */
#define policy_rng_uniform rng_uniform /* [0, 1), 53 bits */
#define policy_rng_below rng_below     /* [0, n), unbiased */
#define policy_rng_normal rng_normal   /* standard normal, Box-Muller */
#define policy_rng_shuffle rng_shuffle /* Fisher-Yates over idx[0..n) */

#endif
