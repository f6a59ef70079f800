/* bootstrap.h: paired bootstrap confidence intervals over windows.
 *
 * A method and the reference (exact attention) are run on the same n windows.
 * Window i gives the method's summed loss a[i], the reference's b[i] and a
 * weight w[i] > 0 (predicted tokens, or bytes * ln 2 for bits per byte). The
 * statistic is the difference of pooled means
 *     D = sum_i (a[i] - b[i]) / sum_i w[i].
 * The paired bootstrap (Efron & Tibshirani, "An Introduction to the
 * Bootstrap", 1993, ch. 13, percentile interval) resamples window indices with
 * replacement, the same indices for both sides (the pairing), recomputes D on
 * each of B resamples, and takes the alpha/2 and 1 - alpha/2 quantiles
 * (linear interpolation between order statistics, Hyndman & Fan type 7).
 * The draws come from a seeded xoshiro256** generator (splitmix64 seeding),
 * so the same inputs and seed give the same interval on every machine.
 */
#ifndef DRRL_BOOTSTRAP_H
#define DRRL_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define BOOTSTRAP_DEFAULT_B 2000
#define BOOTSTRAP_DEFAULT_SEED 20251215u

typedef struct BootstrapCI {
    double estimate; /* D on the original windows */
    double lo, hi;   /* percentile interval, lo <= estimate-ish <= hi */
} BootstrapCI;

/* Paired percentile bootstrap of D (above). n >= 1 windows; a, b, w of n
 * entries, all finite, w[i] > 0; n_boot >= 1 resamples; 0 < level < 1 (e.g.
 * 0.95). DRRL_E_USAGE on bad arguments, DRRL_E_NOMEM. With n == 1 the
 * interval is [D, D]. */
DrrlStatus bootstrap_paired(const double *a, const double *b, const double *w, size_t n,
                            int n_boot, double level, uint64_t seed, BootstrapCI *out,
                            DrrlError *err);

/* The q-quantile (0 <= q <= 1) of n >= 1 ascending values, type 7. */
double bootstrap_quantile(const double *sorted, size_t n, double q);

#endif
