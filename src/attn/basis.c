#include "attn/basis.h"

#include <cblas.h>
#include <lapacke.h>
#include <pthread.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/blas.h"

void basis_gram_add(double *G, const float *X, int64_t rows, int32_t d, int64_t ld)
{
    /* Blocks of rows converted to double, then G += Xb^T Xb on the upper
     * triangle with dsyrk (the same d(d+1)/2 multiply-adds per row as the
     * plain loop, in double). */
    enum { BLOCK = 256 };
    double *xb =
        rows > 0 ? malloc((size_t)(rows < BLOCK ? rows : BLOCK) * d * sizeof *xb) : NULL;
    if (!xb) { /* out of memory or nothing to do: the plain loop */
        for (int64_t t = 0; t < rows; t++) {
            const float *x = X + t * ld;
            for (int32_t i = 0; i < d; i++) {
                double xi = x[i];
                double *g = G + (size_t)i * d;
                for (int32_t k = i; k < d; k++)
                    g[k] += xi * (double)x[k];
            }
        }
        return;
    }
    for (int64_t t0 = 0; t0 < rows; t0 += BLOCK) {
        int64_t nb = rows - t0 < BLOCK ? rows - t0 : BLOCK;
        for (int64_t t = 0; t < nb; t++)
            for (int32_t k = 0; k < d; k++)
                xb[t * d + k] = X[(t0 + t) * ld + k];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)nb, 1.0, xb, d, 1.0, G, d);
    }
    free(xb);
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

/* One worker's share of a batch: matrices [from, to). */
typedef struct EigJob {
    const double *G;
    int32_t from, to, d;
    double *lambda, *B; /* B == NULL: eigenvalues only */
    int info, bad;
} EigJob;

static void *eig_job(void *arg)
{
    EigJob *j = arg;
    int32_t d = j->d;
    size_t dd = (size_t)d * d;
    double *a = malloc(dd * sizeof *a);
    double *w = malloc((size_t)d * sizeof *w);
    double *z = malloc(dd * sizeof *z);
    lapack_int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
    if (!a || !w || !z || !isuppz) {
        j->info = -1000, j->bad = j->from;
        DRRL_FREE(a, w, z, isuppz);
        return NULL;
    }
    for (int32_t h = j->from; h < j->to; h++) {
        memcpy(a, j->G + (size_t)h * dd, dd * sizeof *a);
        lapack_int m = 0;
        lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, j->B ? 'V' : 'N', 'A', 'U', d, a, d,
                                         0.0, 0.0, 0, 0, 0.0, &m, w, z, d, isuppz);
        if (info != 0 || m != d) {
            j->info = info ? (int)info : -2000, j->bad = h;
            break;
        }
        /* dsyevr returns ascending eigenvalues: reverse to descending. */
        double *lam = j->lambda + (size_t)h * d;
        for (int32_t c = 0; c < d; c++) {
            int32_t src = d - 1 - c;
            lam[c] = w[src] > 0.0 ? w[src] : 0.0;
        }
        if (!j->B)
            continue;
        double *b = j->B + (size_t)h * dd;
        for (int32_t c = 0; c < d; c++)
            for (int32_t i = 0; i < d; i++)
                b[(size_t)i * d + c] = z[(size_t)i * d + d - 1 - c];
        basis_fix_signs(b, d);
    }
    DRRL_FREE(a, w, z, isuppz);
    return NULL;
}

/* Independent problems: run them on up to BASIS_MAX_THREADS threads (each
 * LAPACK call single-threaded, so OpenBLAS's own threads are held at 1
 * meanwhile and restored after). Results do not depend on the thread count:
 * each matrix is solved by the same sequential code. */
enum { BASIS_MAX_THREADS = 16 };

/* Threads for n problems of size d: online CPUs, at most n, 1 for d < 16. */
static int batch_threads(int32_t n, int32_t d)
{
    if (n <= 1 || d < 16)
        return 1; /* (sysconf reads a file each call) */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = (int)(cores < 1 ? 1 : cores > BASIS_MAX_THREADS ? BASIS_MAX_THREADS : cores);
    if (nt > n)
        nt = n;
    if (d < 16 || nt < 1)
        nt = 1;
    return nt;
}

/* fn(job t) for t < nt, jobs spaced size bytes apart; job 0 on this thread,
 * a job whose thread cannot start runs here too. */
static void batch_run(void *(*fn)(void *), void *jobs, size_t size, int nt)
{
    pthread_t tid[BASIS_MAX_THREADS];
    int started[BASIS_MAX_THREADS] = {0};
    int saved = blas_serial_begin(); /* callers on worker threads are at 1 already */
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&tid[t], NULL, fn, (char *)jobs + (size_t)t * size) == 0;
    fn(jobs);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            fn((char *)jobs + (size_t)t * size);
    }
    blas_serial_end(saved);
}

static DrrlStatus eig_run(const double *G, int32_t n, int32_t d, double *lambda, double *B,
                          DrrlError *err)
{
    int nt = batch_threads(n, d);
    EigJob jobs[BASIS_MAX_THREADS];
    for (int t = 0; t < nt; t++)
        jobs[t] = (EigJob){G,
                           (int32_t)((int64_t)n * t / nt),
                           (int32_t)((int64_t)n * (t + 1) / nt),
                           d,
                           lambda,
                           B,
                           0,
                           0};
    batch_run(eig_job, jobs, sizeof jobs[0], nt);
    for (int t = 0; t < nt; t++) {
        if (jobs[t].info == -1000)
            return drrl_error(err, DRRL_E_NOMEM,
                              "basis: out of memory for a %d x %d eigensolve", (int)d, (int)d);
        if (jobs[t].info)
            return drrl_error(err, DRRL_E_INTERNAL, "basis: dsyevr failed on head %d (info %d)",
                              (int)jobs[t].bad, jobs[t].info);
    }
    return DRRL_OK;
}

DrrlStatus basis_eig_batch(const double *G, int32_t n, int32_t d, double *lambda, double *B,
                           DrrlError *err)
{
    return eig_run(G, n, d, lambda, B, err);
}

DrrlStatus basis_eigvals_batch(const double *G, int32_t n, int32_t d, double *lambda,
                               DrrlError *err)
{
    return eig_run(G, n, d, lambda, NULL, err);
}

DrrlStatus basis_svd(const float *X, int64_t rows, int32_t d, int64_t ld, double *sigma,
                     double *V, DrrlError *err)
{
    if (rows < 1 || d < 1)
        return drrl_error(err, DRRL_E_USAGE, "basis: empty matrix for SVD");
    if (rows > INT32_MAX)
        return drrl_error(err, DRRL_E_USAGE, "basis: %lld rows too many for LAPACK",
                          (long long)rows);
    int64_t k = rows < d ? rows : d;
    /* X copied to double in column-major order (a[j * rows + t] = X[t][j]),
     * so LAPACK gets it without a layout transpose inside LAPACKE. dgesvd
     * with jobu 'N', jobvt 'A' forms sigma and the d x d V^T only (with an
     * orthonormal completion when rows < d), never a rows-long factor: for
     * rows >> d it takes a QR factorization first and works on the d x d
     * triangle R (LAPACK Users' Guide, 3rd ed., Sec. 2.4.2 and dgesvd's
     * path for M much larger than N): about 2 rows d^2 flops, O(rows d)
     * memory. Measured against dgesdd (jobz 'S' or 'O') and against dgesvd
     * on X^T (an LQ first), this was the fastest way to sigma and V here. */
    double *a = malloc((size_t)rows * d * sizeof *a);
    double *s = malloc((size_t)k * sizeof *s);
    double *vt = V ? malloc((size_t)d * d * sizeof *vt) : NULL;
    double *superb = malloc((size_t)k * sizeof *superb);
    if (!a || !s || !superb || (V && !vt)) {
        DRRL_FREE(a, s, vt, superb);
        return drrl_error(err, DRRL_E_NOMEM, "basis: out of memory for SVD");
    }
    for (int64_t t = 0; t < rows; t++)
        for (int32_t j = 0; j < d; j++)
            a[(size_t)j * rows + t] = X[t * ld + j];
    double dummy = 0.0;
    lapack_int info =
        LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'N', V ? 'A' : 'N', (lapack_int)rows, d, a,
                       (lapack_int)rows, s, &dummy, 1, V ? vt : &dummy, V ? d : 1, superb);
    DrrlStatus st = DRRL_OK;
    if (info != 0) {
        st = drrl_error(err, DRRL_E_INTERNAL, "basis: dgesvd failed (info %d)", (int)info);
    } else {
        for (int32_t j = 0; j < d; j++)
            sigma[j] = j < k ? s[j] : 0.0;
        if (V) {
            /* vt is V^T column-major: (V^T)[j][i] = V[i][j] sits at vt[i * d + j],
             * which is V row-major with vector j in column j, as promised */
            memcpy(V, vt, (size_t)d * d * sizeof *V);
            basis_fix_signs(V, d);
        }
    }
    DRRL_FREE(a, s, vt, superb);
    return st;
}

/* One worker's share of an SVD batch: matrices [from, to). */
typedef struct SvdJob {
    const float *X;
    int64_t rows, ld, stride;
    int32_t from, to, d;
    double *sigma, *V;
    DrrlStatus st;
    DrrlError err;
} SvdJob;

static void *svd_job(void *arg)
{
    SvdJob *j = arg;
    size_t dd = (size_t)j->d * j->d;
    for (int32_t h = j->from; h < j->to && j->st == DRRL_OK; h++)
        j->st = basis_svd(j->X + h * j->stride, j->rows, j->d, j->ld,
                          j->sigma + (size_t)h * j->d, j->V ? j->V + h * dd : NULL, &j->err);
    return NULL;
}

DrrlStatus basis_svd_batch(const float *X, int32_t n, int64_t rows, int32_t d, int64_t ld,
                           int64_t stride, double *sigma, double *V, DrrlError *err)
{
    if (n < 1)
        return drrl_error(err, DRRL_E_USAGE, "basis: empty SVD batch");
    int nt = batch_threads(n, d);
    SvdJob jobs[BASIS_MAX_THREADS];
    for (int t = 0; t < nt; t++)
        jobs[t] = (SvdJob){X,
                           rows,
                           ld,
                           stride,
                           (int32_t)((int64_t)n * t / nt),
                           (int32_t)((int64_t)n * (t + 1) / nt),
                           d,
                           sigma,
                           V,
                           DRRL_OK,
                           {0}};
    batch_run(svd_job, jobs, sizeof jobs[0], nt);
    for (int t = 0; t < nt; t++)
        if (jobs[t].st != DRRL_OK) {
            if (err)
                *err = jobs[t].err;
            return jobs[t].st;
        }
    return DRRL_OK;
}
