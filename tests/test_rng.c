/* Tests of the pseudo-random module (src/base/rng.c): known answers from the
 * generators' reference implementations, the mappings' ranges, and the
 * streams every user relies on. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "base/rng.h"

/* splitmix64.c (Vigna's reference) from state 0. */
Test(rng, splitmix64_known_answers)
{
    uint64_t s = 0;
    cr_assert_eq(rng_splitmix64(&s), 0xe220a8397b1dcdafull);
    cr_assert_eq(rng_splitmix64(&s), 0x6e789e6aa1b965f4ull);
    cr_assert_eq(rng_splitmix64(&s), 0x06c45d188009454full);
    cr_assert_eq(s, 3 * RNG_GAMMA);
    cr_assert_eq(rng_hash64(0), 0xe220a8397b1dcdafull);
    cr_assert_eq(rng_hash64(RNG_GAMMA), 0x6e789e6aa1b965f4ull);
}

/* xoshiro256**.c (Blackman & Vigna's reference) from state {1, 2, 3, 4}. */
Test(rng, xoshiro256starstar_known_answers)
{
    Rng r = {{1, 2, 3, 4}};
    cr_assert_eq(rng_u64(&r), 11520ull);
    cr_assert_eq(rng_u64(&r), 0ull);
    cr_assert_eq(rng_u64(&r), 1509978240ull);
    cr_assert_eq(rng_u64(&r), 1215971899390074240ull);
}

/* Seeding is four splitmix64 draws from the seed. */
Test(rng, seed_is_splitmix64)
{
    Rng r;
    rng_seed(&r, 0);
    uint64_t s = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(r.s[i], rng_splitmix64(&s));
}

/* Marsaglia's xorshift64 (13, 7, 17) from 1: 1 ^ 1 << 13 = 8193, ... */
Test(rng, xorshift64_steps)
{
    uint64_t s = 1;
    uint64_t x = 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    cr_assert_eq(rng_xorshift64(&s), x);
    cr_assert_eq(s, x);
    cr_assert_eq(x, 0x40822041ull);
}

Test(rng, unit_mappings_ranges_and_ends)
{
    cr_assert_eq(rng_unit(0), 0.0);
    cr_assert_eq(rng_unit(UINT64_MAX), 1.0 - 0x1.0p-53);
    cr_assert_eq(rng_unit_open(0), 0x1.0p-53);
    cr_assert_eq(rng_unit_open(UINT64_MAX), 1.0);
    cr_assert_eq(rng_unit_mid(0), 0x1.0p-54);
    /* 2^53 - 0.5 rounds (to even) to 2^53: the top value maps to 1 */
    cr_assert_eq(rng_unit_mid(UINT64_MAX), 1.0);
    cr_assert_eq(rng_unit_mid(1ull << 11), 1.5 * 0x1.0p-53);
    cr_assert_eq(rng_unit(1ull << 63), 0.5);
}

/* Box-Muller at points with known values: u2 = 0 gives sqrt(-2 ln u1). */
Test(rng, box_muller_known_values)
{
    cr_assert_float_eq(rng_box_muller(exp(-0.5), 0.0), 1.0, 1e-15);
    cr_assert_float_eq(rng_box_muller(exp(-2.0), 0.5), -2.0, 1e-15);
    cr_assert_float_eq(rng_box_muller(1.0, 0.3), 0.0, 1e-15);
}

/* rng_below is uniform (chi-square over 7 cells, 70,000 draws: 99.9 %
 * quantile of chi2(6) is 22.46) and never reaches n; rng_normal has mean 0
 * and variance 1 (200,000 draws: 5 standard errors). */
Test(rng, below_and_normal_statistics)
{
    Rng r;
    rng_seed(&r, 42);
    long cnt[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rng_below(&r, 7);
        cr_assert_lt(v, 7u);
        cnt[v]++;
    }
    double chi = 0;
    for (int k = 0; k < 7; k++)
        chi += (cnt[k] - 10000.0) * (cnt[k] - 10000.0) / 10000.0;
    cr_assert_lt(chi, 22.46, "chi2 %g", chi);
    double m = 0, v = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double g = rng_normal(&r);
        m += g;
        v += g * g;
    }
    m /= n;
    v = v / n - m * m;
    cr_assert_lt(fabs(m), 5.0 / sqrt(n), "mean %g", m);
    cr_assert_lt(fabs(v - 1.0), 5.0 * sqrt(2.0 / n), "variance %g", v);
}

Test(rng, shuffle_is_a_permutation_and_seeded)
{
    int a[50], b[50], seen[50] = {0};
    for (int i = 0; i < 50; i++)
        a[i] = b[i] = i;
    Rng r1, r2;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    rng_shuffle(&r1, a, 50);
    rng_shuffle(&r2, b, 50);
    int moved = 0;
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(a[i], b[i]);
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 50; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_gt(moved, 40);
}
