/* attn_testutil.h: random matrices with prescribed spectra for the
 * attention-core tests, and the core's configuration they start from
 * (header-only, test code; include it after <criterion/criterion.h>). */
#ifndef DRRL_ATTN_TESTUTIL_H
#define DRRL_ATTN_TESTUTIL_H

#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn_core.h"
#include "attn/method.h"
#include "base/rng.h"

typedef struct TRng {
    uint64_t s;
} TRng;

static inline uint64_t trng_u64(TRng *r)
{
    return rng_splitmix64(&r->s);
}
static inline double trng_unif(TRng *r)
{
    return rng_unit(trng_u64(r));
}
static inline double trng_normal(TRng *r)
{
    double u1 = trng_unif(r), u2 = trng_unif(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return rng_box_muller(u1, u2);
}

/* Q (rows x cols, rows >= cols) with orthonormal columns, row-major. */
static inline void t_orth(TRng *r, double *Q, int rows, int cols)
{
    for (int i = 0; i < rows * cols; i++)
        Q[i] = trng_normal(r);
    double *tau = malloc((size_t)cols * sizeof *tau);
    LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, cols, Q, cols, tau);
    LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, cols, cols, Q, cols, tau);
    free(tau);
}

enum { SPEC_DECAY, SPEC_FLAT, SPEC_CLUSTER, SPEC_LOWRANK, SPEC_COUNT };

/* sigma (k values, descending) of the given kind and scale. */
static inline void t_spectrum(TRng *r, double *sigma, int k, int kind, double scale)
{
    for (int i = 0; i < k; i++) {
        double s;
        switch (kind) {
        case SPEC_DECAY:
            s = exp(-0.4 * i);
            break;
        case SPEC_FLAT:
            s = 1.0 + 0.05 * trng_unif(r);
            break;
        case SPEC_CLUSTER:
            s = (i < k / 3 ? 3.0 : i < 2 * k / 3 ? 1.0 : 0.2) + 1e-3 * trng_unif(r);
            break;
        default:
            s = i < (k + 3) / 4 ? 1.0 + trng_unif(r) : 0.0;
            break;
        }
        sigma[i] = s * scale;
    }
    for (int i = 1; i < k; i++) /* sort descending */
        for (int j = i; j > 0 && sigma[j] > sigma[j - 1]; j--) {
            double t = sigma[j];
            sigma[j] = sigma[j - 1];
            sigma[j - 1] = t;
        }
}

/* X = U diag(sigma) V^T, n x d (n >= d) row-major float. */
static inline void t_matrix(TRng *r, float *X, int n, int d, int kind, double scale)
{
    double *U = malloc((size_t)n * d * sizeof *U), *V = malloc((size_t)d * d * sizeof *V);
    double *s = malloc((size_t)d * sizeof *s);
    t_orth(r, U, n, d);
    t_orth(r, V, d, d);
    t_spectrum(r, s, d, kind, scale);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int k = 0; k < d; k++)
                acc += U[i * d + k] * s[k] * V[j * d + k];
            X[i * d + j] = (float)acc;
        }
    free(U), free(V), free(s);
}

/* y = x (I - P) with P = B[:, :r] B[:, :r]^T (B: d x d, orthonormal columns),
 * x and y of length d (distinct). */
static inline void t_residual(const double *x, const double *B, int d, int r, double *y)
{
    for (int i = 0; i < d; i++)
        y[i] = x[i];
    for (int j = 0; j < r; j++) {
        double c = 0;
        for (int i = 0; i < d; i++)
            c += x[i] * B[i * d + j];
        for (int i = 0; i < d; i++)
            y[i] -= c * B[i * d + j];
    }
}

/* The attention core's default configuration with the method spec (which
 * must parse) and segments of segment tokens. */
static inline AttnCoreConfig t_attn_config(const char *spec, int segment)
{
    AttnCoreConfig c;
    attn_core_config_default(&c);
    DrrlError e;
    cr_assert_eq(method_parse(spec, &c.method, &e), DRRL_OK, "%s: %s", spec, e.msg);
    c.segment = segment;
    return c;
}

#endif
