#include "policy/policy_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void policy_rng_seed(PolicyRng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is the one fixed point */
}

uint64_t policy_rng_u64(PolicyRng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double policy_rng_uniform(PolicyRng *r)
{
    return (double)(policy_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t policy_rng_below(PolicyRng *r, uint64_t n)
{
    /* Rejection sampling: draws at or above the largest multiple of n are
     * redrawn, so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = policy_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double policy_rng_normal(PolicyRng *r)
{
    double u1 = policy_rng_uniform(r), u2 = policy_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void policy_rng_shuffle(PolicyRng *r, int *idx, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)policy_rng_below(r, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
