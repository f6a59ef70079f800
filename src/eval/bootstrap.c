/* bootstrap.c: paired percentile bootstrap (see bootstrap.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "eval/bootstrap.h"

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
    rng_seed(&r, seed);
    for (int k = 0; k < n_boot; k++) {
        double num = 0.0, den = 0.0;
        for (size_t j = 0; j < n; j++) {
            size_t i = (size_t)rng_below(&r, (uint64_t)n);
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
