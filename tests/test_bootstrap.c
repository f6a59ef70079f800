/* test_bootstrap.c: the paired bootstrap on cases with known answers. */
#include <criterion/criterion.h>
#include <math.h>

#include "eval/bootstrap.h"

Test(bootstrap, quantile_type7)
{
    double v[] = {1, 2, 3, 4, 5};
    cr_assert_float_eq(bootstrap_quantile(v, 5, 0.0), 1.0, 1e-12);
    cr_assert_float_eq(bootstrap_quantile(v, 5, 1.0), 5.0, 1e-12);
    cr_assert_float_eq(bootstrap_quantile(v, 5, 0.5), 3.0, 1e-12);
    cr_assert_float_eq(bootstrap_quantile(v, 5, 0.1), 1.4, 1e-12);
    cr_assert_float_eq(bootstrap_quantile(v, 5, 0.975), 4.9, 1e-12);
    cr_assert_float_eq(bootstrap_quantile(v, 1, 0.3), 1.0, 1e-12);
}

/* Every window's difference is the same: every resample gives it. */
Test(bootstrap, constant_difference_is_a_point)
{
    double a[7], b[7], w[7];
    for (int i = 0; i < 7; i++)
        b[i] = 100.0 * i, w[i] = 10.0, a[i] = b[i] + 0.5 * w[i];
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, 7, 500, 0.95, 1, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.estimate, 0.5, 1e-12);
    cr_assert_float_eq(ci.lo, 0.5, 1e-12);
    cr_assert_float_eq(ci.hi, 0.5, 1e-12);
}

/* Pairing: the reference's losses vary wildly between windows but the method
 * is always 1 above it: the paired interval has no width. (An unpaired
 * bootstrap, resampling the two sides independently, would be wide.) */
Test(bootstrap, pairing_removes_window_variance)
{
    double a[50], b[50], w[50];
    for (int i = 0; i < 50; i++)
        w[i] = 1.0, b[i] = (i % 2) ? 1000.0 : 0.0, a[i] = b[i] + 1.0;
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, 50, 1000, 0.95, 7, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.lo, 1.0, 1e-9);
    cr_assert_float_eq(ci.hi, 1.0, 1e-9);
}

/* Two windows with differences 0 and 1: a resample's mean is 0, 1/2 or 1 with
 * probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are 0 and 1. */
Test(bootstrap, two_windows_exact_distribution)
{
    double a[] = {0.0, 1.0}, b[] = {0.0, 0.0}, w[] = {1.0, 1.0};
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, 2, 4000, 0.95, 3, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.estimate, 0.5, 1e-12);
    cr_assert_float_eq(ci.lo, 0.0, 1e-12);
    cr_assert_float_eq(ci.hi, 1.0, 1e-12);
    /* at level 0.4 the quantiles 0.3 and 0.7 fall inside the 1/2 mass */
    cr_assert_eq(bootstrap_paired(a, b, w, 2, 4000, 0.4, 3, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.lo, 0.5, 1e-12);
    cr_assert_float_eq(ci.hi, 0.5, 1e-12);
}

/* Many windows: the interval matches the normal one, mean -+ 1.96 sd/sqrt(n),
 * within a few percent, and sits around the mean (lo < mean < hi). */
Test(bootstrap, matches_normal_theory)
{
    enum { N = 400 };
    double a[N], b[N], w[N], mean = 0.0, var = 0.0;
    for (int i = 0; i < N; i++) {
        /* a fixed, symmetric spread of differences: uniform grid on [-1, 3] */
        double d = -1.0 + 4.0 * (double)((i * 37) % N) / (N - 1);
        w[i] = 1.0, b[i] = 5.0 + (i % 3), a[i] = b[i] + d;
        mean += d;
    }
    mean /= N;
    for (int i = 0; i < N; i++)
        var += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
    var /= N; /* the bootstrap's plug-in variance */
    double half = 1.959964 * sqrt(var / N);
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, N, 4000, 0.95, 11, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.estimate, mean, 1e-12);
    cr_assert(ci.lo < mean && mean < ci.hi);
    cr_assert(fabs((mean - ci.lo) - half) < 0.08 * half, "lo %g, expected %g", ci.lo,
              mean - half);
    cr_assert(fabs((ci.hi - mean) - half) < 0.08 * half, "hi %g, expected %g", ci.hi,
              mean + half);
}

/* Weights: windows of unequal length pool by their weights, not per window. */
Test(bootstrap, weighted_pooled_mean)
{
    double a[] = {3.0, 10.0}, b[] = {1.0, 0.0}, w[] = {1.0, 4.0};
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, 2, 100, 0.95, 1, &ci, &err), DRRL_OK);
    cr_assert_float_eq(ci.estimate, 12.0 / 5.0, 1e-12); /* not (2 + 2.5) / 2 */
    cr_assert_float_eq(ci.lo, 2.0, 1e-12);              /* both draws window 0 */
    cr_assert_float_eq(ci.hi, 2.5, 1e-12);              /* both draws window 1 */
}

Test(bootstrap, deterministic_for_a_seed)
{
    double a[30], b[30], w[30];
    for (int i = 0; i < 30; i++)
        w[i] = 2.0, b[i] = 0.0, a[i] = sin(i * 1.7);
    BootstrapCI x, y, z;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, b, w, 30, 999, 0.95, 42, &x, &err), DRRL_OK);
    cr_assert_eq(bootstrap_paired(a, b, w, 30, 999, 0.95, 42, &y, &err), DRRL_OK);
    cr_assert_eq(bootstrap_paired(a, b, w, 30, 999, 0.95, 43, &z, &err), DRRL_OK);
    cr_assert(x.lo == y.lo && x.hi == y.hi);
    cr_assert(x.lo != z.lo || x.hi != z.hi);
}

Test(bootstrap, bad_arguments)
{
    double a[] = {1.0}, b[] = {NAN}, w[] = {1.0}, w0[] = {0.0};
    BootstrapCI ci;
    DrrlError err;
    cr_assert_eq(bootstrap_paired(a, a, w, 0, 10, 0.95, 1, &ci, &err), DRRL_E_USAGE);
    cr_assert_eq(bootstrap_paired(a, a, w, 1, 0, 0.95, 1, &ci, &err), DRRL_E_USAGE);
    cr_assert_eq(bootstrap_paired(a, a, w, 1, 10, 1.0, 1, &ci, &err), DRRL_E_USAGE);
    cr_assert_eq(bootstrap_paired(a, b, w, 1, 10, 0.95, 1, &ci, &err), DRRL_E_USAGE);
    cr_assert_eq(bootstrap_paired(a, a, w0, 1, 10, 0.95, 1, &ci, &err), DRRL_E_USAGE);
    cr_assert_eq(bootstrap_paired(a, a, w, 1, 10, 0.95, 1, &ci, &err), DRRL_OK);
    cr_assert(ci.lo == 0.0 && ci.hi == 0.0);
}
