/* test_basis_svd.c: basis_svd (the per-head SVD that `drrl bench attention`
 * times against the batched Gram path) on matrices with known singular
 * values and vectors: tall (rows >> d, the thin path), wide (rows < d, the
 * orthonormal completion), strided rows, and repeatability. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/basis.h"

/* X (rows x d, row stride ld): column j is s[j] times a unit vector that is
 * nonzero only on the rows t with t % d == j, so the columns are orthogonal,
 * the singular values are s (any order) and the right singular vectors are
 * the coordinate vectors. */
static float *known(int64_t rows, int32_t d, int64_t ld, const double *s)
{
    float *X = calloc((size_t)rows * ld, sizeof *X);
    cr_assert_not_null(X);
    for (int32_t j = 0; j < d; j++) {
        int64_t n = 0;
        for (int64_t t = j; t < rows; t += d)
            n++;
        for (int64_t t = j; t < rows; t += d)
            X[t * ld + j] = (float)(s[j] / sqrt((double)n));
    }
    return X;
}

/* n uniform numbers in [-0.5, 0.5) from an LCG seeded with seed */
static void fill_uniform(float *X, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        X[i] = (float)((double)(seed >> 11) * 0x1.0p-53 - 0.5);
    }
}

static void check_orthonormal(const double *V, int32_t d)
{
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double dot = 0;
            for (int i = 0; i < d; i++)
                dot += V[i * d + a] * V[i * d + b];
            cr_assert(fabs(dot - (a == b)) < 1e-12, "V^T V (%d, %d) = %g", a, b, dot);
        }
}

Test(basis_svd, tall_known_values_and_vectors)
{
    enum { D = 8 };
    const int64_t rows = 20000, ld = D + 3; /* strided rows */
    const double s[D] = {3, 7, 1, 8, 5, 2, 6, 4};
    float *X = known(rows, D, ld, s);
    double sig[D], V[D * D];
    DrrlError err;
    cr_assert_eq(basis_svd(X, rows, D, ld, sig, V, &err), DRRL_OK);
    check_orthonormal(V, D);
    for (int k = 0; k < D; k++) {
        /* descending: 8, 7, ..., 1; vector k is the coordinate of s = 8 - k */
        cr_assert(fabs(sig[k] - (8 - k)) < 1e-5, "sigma %d = %g", k, sig[k]);
        int col = -1;
        for (int j = 0; j < D; j++)
            if (s[j] == 8 - k)
                col = j;
        for (int i = 0; i < D; i++)
            cr_assert(fabs(V[i * D + k] - (i == col)) < 1e-6, "V[%d][%d] = %g", i, k,
                      V[i * D + k]); /* sign-fixed: +1 */
    }
    /* values only */
    double sig2[D];
    cr_assert_eq(basis_svd(X, rows, D, ld, sig2, NULL, &err), DRRL_OK);
    for (int k = 0; k < D; k++)
        cr_assert(fabs(sig2[k] - sig[k]) < 1e-9);
    free(X);
}

/* rows < d: min(rows, d) singular values, zeros beyond, and a full
 * orthonormal V whose completion columns X maps to zero. */
Test(basis_svd, wide_completion)
{
    enum { R = 3, D = 8 };
    float X[R * D];
    fill_uniform(X, R * D, 12345);
    double sig[D], V[D * D];
    DrrlError err;
    cr_assert_eq(basis_svd(X, R, D, D, sig, V, &err), DRRL_OK);
    check_orthonormal(V, D);
    for (int k = 0; k < D; k++) {
        cr_assert(k == 0 || sig[k] <= sig[k - 1]);
        if (k >= R)
            cr_assert_eq(sig[k], 0.0);
        /* ||X v_k|| = sigma_k */
        double n2 = 0;
        for (int t = 0; t < R; t++) {
            double y = 0;
            for (int i = 0; i < D; i++)
                y += (double)X[t * D + i] * V[i * D + k];
            n2 += y * y;
        }
        cr_assert(fabs(sqrt(n2) - sig[k]) < 1e-6, "||X v_%d|| = %g, sigma %g", k, sqrt(n2),
                  sig[k]);
    }
}

/* The same input gives bit-identical output (traces depend on it). */
Test(basis_svd, repeatable)
{
    enum { D = 32 };
    const int64_t rows = 3000;
    float *X = malloc((size_t)rows * D * sizeof *X);
    cr_assert_not_null(X);
    fill_uniform(X, (size_t)rows * D, 99);
    double s1[D], s2[D], V1[D * D], V2[D * D];
    DrrlError err;
    cr_assert_eq(basis_svd(X, rows, D, D, s1, V1, &err), DRRL_OK);
    cr_assert_eq(basis_svd(X, rows, D, D, s2, V2, &err), DRRL_OK);
    cr_assert(memcmp(s1, s2, sizeof s1) == 0 && memcmp(V1, V2, sizeof V1) == 0);
    check_orthonormal(V1, D);
    free(X);
}

Test(basis_svd, empty_is_an_error)
{
    double s[4], V[16];
    float x = 0;
    DrrlError err;
    cr_assert_eq(basis_svd(&x, 0, 4, 4, s, V, &err), DRRL_E_USAGE);
}

/* The batch gives each matrix what basis_svd gives it alone (to rounding:
 * the batch runs LAPACK single-threaded, a lone call with OpenBLAS's
 * threads), the same bits on every call; stride 0 repeats one matrix. */
Test(basis_svd, batch_matches_single)
{
    enum { N = 5, D = 16 };
    const int64_t rows = 700, ld = D + 1, stride = rows * ld;
    float *X = malloc((size_t)N * stride * sizeof *X);
    cr_assert_not_null(X);
    fill_uniform(X, (size_t)N * stride, 7);
    static double sb[N * D], Vb[N * D * D], sc[N * D], Vc[N * D * D];
    double s1[D], V1[D * D];
    DrrlError err;
    cr_assert_eq(basis_svd_batch(X, N, rows, D, ld, stride, sb, Vb, &err), DRRL_OK);
    cr_assert_eq(basis_svd_batch(X, N, rows, D, ld, stride, sc, Vc, &err), DRRL_OK);
    cr_assert(memcmp(sb, sc, sizeof sb) == 0 && memcmp(Vb, Vc, sizeof Vb) == 0);
    for (int h = 0; h < N; h++) {
        cr_assert_eq(basis_svd(X + h * stride, rows, D, ld, s1, V1, &err), DRRL_OK);
        for (int k = 0; k < D; k++) {
            cr_assert(fabs(s1[k] - sb[h * D + k]) <= 1e-12 * s1[0], "sigma %d of matrix %d", k,
                      h);
            for (int i = 0; i < D; i++)
                cr_assert(fabs(V1[i * D + k] - Vb[(h * D + i) * D + k]) < 1e-9,
                          "V[%d][%d] of matrix %d", i, k, h);
        }
    }
    cr_assert_eq(basis_svd_batch(X, N, rows, D, ld, 0, sb, NULL, &err), DRRL_OK);
    for (int h = 1; h < N; h++)
        cr_assert(memcmp(sb, sb + h * D, D * sizeof *sb) == 0, "stride 0, matrix %d", h);
    cr_assert(fabs(sb[0] - sc[0]) <= 1e-12 * sc[0]);
    cr_assert_eq(basis_svd_batch(X, N, 0, D, ld, stride, sb, Vb, &err), DRRL_E_USAGE);
    free(X);
}
