#include "basis.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void basis_gram_add(double *G, const float *X, int64_t rows, int32_t d, int64_t ld)
{
    for (int64_t t = 0; t < rows; t++) {
        const float *x = X + t * ld;
        for (int32_t i = 0; i < d; i++) {
            double xi = x[i];
            double *g = G + (size_t)i * d;
            for (int32_t j = i; j < d; j++)
                g[j] += xi * (double)x[j];
        }
    }
}

void basis_gram_symmetrize(double *G, int32_t d)
{
    for (int32_t i = 0; i < d; i++)
        for (int32_t j = 0; j < i; j++)
            G[(size_t)i * d + j] = G[(size_t)j * d + i];
}

void basis_fix_signs(double *B, int32_t d)
{
    for (int32_t j = 0; j < d; j++) {
        double best = 0.0;
        for (int32_t i = 0; i < d; i++) {
            double v = B[(size_t)i * d + j];
            if (fabs(v) > fabs(best) + 1e-12 * fabs(best))
                best = v;
        }
        if (best < 0.0)
            for (int32_t i = 0; i < d; i++)
                B[(size_t)i * d + j] = -B[(size_t)i * d + j];
    }
}

DrrlStatus basis_eig_batch(const double *G, int32_t n, int32_t d, double *lambda, double *B,
                           DrrlError *err)
{
    size_t dd = (size_t)d * d;
    double *a = malloc(dd * sizeof *a);
    double *w = malloc((size_t)d * sizeof *w);
    double *z = malloc(dd * sizeof *z);
    lapack_int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
    if (!a || !w || !z || !isuppz) {
        free(a), free(w), free(z), free(isuppz);
        return drrl_error(err, DRRL_E_NOMEM, "basis: out of memory for a %d x %d eigensolve",
                          (int)d, (int)d);
    }
    DrrlStatus st = DRRL_OK;
    for (int32_t h = 0; h < n && st == DRRL_OK; h++) {
        memcpy(a, G + (size_t)h * dd, dd * sizeof *a);
        lapack_int m = 0;
        lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'A', 'U', d, a, d, 0.0, 0.0,
                                         0, 0, 0.0, &m, w, z, d, isuppz);
        if (info != 0 || m != d) {
            st = drrl_error(err, DRRL_E_INTERNAL,
                            "basis: dsyevr failed on head %d (info %d, %d of %d eigenvalues)",
                            (int)h, (int)info, (int)m, (int)d);
            break;
        }
        /* dsyevr returns ascending eigenvalues: reverse to descending. */
        double *lam = lambda + (size_t)h * d, *b = B + (size_t)h * dd;
        for (int32_t j = 0; j < d; j++) {
            int32_t src = d - 1 - j;
            lam[j] = w[src] > 0.0 ? w[src] : 0.0;
            for (int32_t i = 0; i < d; i++)
                b[(size_t)i * d + j] = z[(size_t)i * d + src];
        }
        basis_fix_signs(b, d);
    }
    free(a), free(w), free(z), free(isuppz);
    return st;
}

DrrlStatus basis_svd(const float *X, int64_t rows, int32_t d, int64_t ld, double *sigma,
                     double *V, DrrlError *err)
{
    if (rows < 1 || d < 1)
        return drrl_error(err, DRRL_E_USAGE, "basis: empty matrix for SVD");
    int64_t k = rows < d ? rows : d;
    size_t n = (size_t)rows * d;
    double *a = malloc(n * sizeof *a);
    double *s = malloc((size_t)k * sizeof *s);
    double *vt = malloc((size_t)d * d * sizeof *vt);
    if (!a || !s || !vt) {
        free(a), free(s), free(vt);
        return drrl_error(err, DRRL_E_NOMEM, "basis: out of memory for SVD");
    }
    for (int64_t t = 0; t < rows; t++)
        for (int32_t j = 0; j < d; j++)
            a[(size_t)t * d + j] = X[t * ld + j];
    /* jobz 'A' gives a full d x d V^T (orthonormal completion included). */
    double *u = malloc((size_t)rows * rows * sizeof *u);
    if (!u) {
        free(a), free(s), free(vt);
        return drrl_error(err, DRRL_E_NOMEM, "basis: out of memory for SVD");
    }
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, V ? 'A' : 'N', (lapack_int)rows, d, a,
                                     d, s, u, (lapack_int)rows, vt, d);
    DrrlStatus st = DRRL_OK;
    if (info != 0) {
        st = drrl_error(err, DRRL_E_INTERNAL, "basis: dgesdd failed (info %d)", (int)info);
    } else {
        for (int32_t j = 0; j < d; j++)
            sigma[j] = j < k ? s[j] : 0.0;
        if (V) {
            for (int32_t i = 0; i < d; i++)
                for (int32_t j = 0; j < d; j++)
                    V[(size_t)i * d + j] = vt[(size_t)j * d + i];
            basis_fix_signs(V, d);
        }
    }
    free(a), free(s), free(vt), free(u);
    return st;
}
