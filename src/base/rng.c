/* rng.c: splitmix64, xoshiro256**, xorshift64, uniforms, Box-Muller (rng.h). */
#include "base/rng.h"

#include <math.h>

uint64_t rng_hash64(uint64_t x)
{
    uint64_t z = x + RNG_GAMMA;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rng_splitmix64(uint64_t *state)
{
    uint64_t z = rng_hash64(*state);
    *state += RNG_GAMMA;
    return z;
}

uint64_t rng_xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(Rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
    /* splitmix64 maps distinct states to distinct values, so at most one of
     * the four is 0; kept as a guard for the one fixed point anyway. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

uint64_t rng_u64(Rng *r)
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

double rng_unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

double rng_unit_open(uint64_t x)
{
    return (double)((x >> 11) + 1) * 0x1.0p-53;
}

double rng_unit_mid(uint64_t x)
{
    return ((double)(x >> 11) + 0.5) * 0x1.0p-53;
}

double rng_box_muller(double u1, double u2)
{
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double rng_uniform(Rng *r)
{
    return rng_unit(rng_u64(r));
}

uint64_t rng_below(Rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

double rng_normal(Rng *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return rng_box_muller(u1, u2);
}

void rng_shuffle(Rng *r, int *idx, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
