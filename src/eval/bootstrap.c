/* bootstrap.c: paired percentile bootstrap (see bootstrap.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "eval/bootstrap.h"

typedef struct Rng {
    uint64_t s[4];
} Rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna, 2018). */
static uint64_t rng_next(Rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n) without modulo bias (Lemire's rejection on the low word
 * would need 128-bit products; plain rejection sampling is enough here). */
static size_t rng_below(Rng *r, size_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n, x;
    do
        x = rng_next(r);
    while (x >= lim);
    return (size_t)(x % (uint64_t)n);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double bootstrap_quantile(const double *sorted, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i >= n - 1)
        return sorted[n - 1];
    return sorted[i] + (h - (double)i) * (sorted[i + 1] - sorted[i]);
}

DrrlStatus bootstrap_paired(const double *a, const double *b, const double *w, size_t n,
                            int n_boot, double level, uint64_t seed, BootstrapCI *out,
                            DrrlError *err)
{
    if (n < 1 || n_boot < 1 || !(level > 0.0 && level < 1.0))
        return drrl_error(err, DRRL_E_USAGE,
                          "bootstrap: need n >= 1 windows, B >= 1 and 0 < level < 1");
    double sd = 0.0, sw = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]) || !(w[i] > 0.0) || !isfinite(w[i]))
            return drrl_error(err, DRRL_E_USAGE,
                              "bootstrap: window %zu: losses must be finite, weight > 0", i);
        sd += a[i] - b[i], sw += w[i];
    }
    out->estimate = sd / sw;
    double *stat = malloc((size_t)n_boot * sizeof *stat);
    if (!stat)
        return drrl_error(err, DRRL_E_NOMEM, "bootstrap: out of memory");
    Rng r;
    uint64_t x = seed;
    for (int k = 0; k < 4; k++)
        r.s[k] = splitmix64(&x);
    for (int k = 0; k < n_boot; k++) {
        double num = 0.0, den = 0.0;
        for (size_t j = 0; j < n; j++) {
            size_t i = rng_below(&r, n);
            num += a[i] - b[i], den += w[i];
        }
        stat[k] = num / den;
    }
    qsort(stat, (size_t)n_boot, sizeof *stat, cmp_double);
    out->lo = bootstrap_quantile(stat, (size_t)n_boot, (1.0 - level) / 2.0);
    out->hi = bootstrap_quantile(stat, (size_t)n_boot, 1.0 - (1.0 - level) / 2.0);
    free(stat);
    return DRRL_OK;
}
