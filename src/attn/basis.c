#include "attn/basis.h"

#include <cblas.h>
#include <lapacke.h>
#include <pthread.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/hot.h"
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

/* sqrt(a^2 + b^2) without overflow or underflow for extreme inputs (hypot
 * there), the plain formula for the rest (hypot is a slow libm call, and
 * the QL sweep below calls this once per rotation). */
static inline double pyth(double a, double b)
{
    double m = fmax(fabs(a), fabs(b));
    if (m > 0x1p500 || (m < 0x1p-500 && m > 0.0))
        return hypot(a, b);
    return sqrt(a * a + b * b);
}

/* The eigensolver's loops over a row, for GCC to vectorise (base/hot.h:
 * no reductions across lanes, so the same bits on every variant): each
 * output element is one chain in the order of the plain loop. */

/* p[i] = sum_{j in [k, n)} a[j][i] v[j] for i in [k, n), j in order. */
DRRL_HOT static void hh_matvec(const double *a, int32_t n, int32_t k, const double *v,
                               double *p)
{
    for (int32_t i = k; i < n; i++)
        p[i] = 0.0;
    for (int32_t j = k; j < n; j++) {
        const double *aj = a + (size_t)j * n;
        double vj = v[j];
        for (int32_t i = k; i < n; i++)
            p[i] += aj[i] * vj;
    }
}

/* a[i][j] -= v[i] q[j] + q[i] v[j] for i, j in [k, n). */
DRRL_HOT static void hh_rank2(double *a, int32_t n, int32_t k, const double *v, const double *q)
{
    for (int32_t i = k; i < n; i++) {
        double *ai = a + (size_t)i * n;
        double vi = v[i], qi = q[i];
        for (int32_t j = k; j < n; j++)
            ai[j] -= vi * q[j] + qi * v[j];
    }
}

/* Z <- (I - v v^T / h) Z on rows and columns [k, n): t[j] = sum_i v[i]
 * z[i][j] (i in order), then z[i][j] -= (t[j] / h) v[i]. */
DRRL_HOT static void hh_apply(double *z, int32_t n, int32_t k, const double *v, double h,
                              double *t)
{
    hh_matvec(z, n, k, v, t); /* t[j] = sum_i z[i][j] v[i], i in order */
    for (int32_t j = k; j < n; j++)
        t[j] /= h;
    for (int32_t i = k; i < n; i++) {
        double *zi = z + (size_t)i * n;
        double vi = v[i];
        for (int32_t j = k; j < n; j++)
            zi[j] -= t[j] * vi;
    }
}

/* The plane rotation of rows x and y (n entries): y' = s x + c y,
 * x' = c x - s y. */
DRRL_HOT static void rot_rows(double *x, double *y, int32_t n, double c, double s)
{
    for (int32_t k = 0; k < n; k++) {
        double t = y[k];
        y[k] = s * x[k] + c * t;
        x[k] = c * x[k] - s * t;
    }
}

/* Eigenvalues (and, if z is non-NULL, eigenvectors) of the symmetric n x n
 * matrix a (row-major, both triangles), with no BLAS or LAPACK call: each
 * OpenBLAS level-2 call inside LAPACK's dsyevr takes a lock of OpenBLAS's
 * buffer allocator, some 60 per 32 x 32 solve, which serialised the basis
 * refreshes of 16 threads (dsyevr's eigenvalues of a 32 x 32 matrix: 43 us
 * on one thread, 488 us each on 16 at once, 16-core Xeon). The
 * algorithms are LAPACK's dsytd2 and dsteqr in substance (Golub & Van Loan,
 * Matrix Computations, 4th ed., Alg. 8.3.1 and Sec. 8.3.5): Householder
 * reduction to tridiagonal T = Q^T a Q, then implicit QL sweeps with
 * Wilkinson-type shifts on T, the rotations accumulated into Q. Both steps
 * are backward stable (ibid. Sec. 8.3.1 and 8.3.6; Wilkinson, The
 * Algebraic Eigenvalue Problem, Ch. 5 and 8): the computed eigenvalues are
 * exact for a + E with ||E||_2 <= p(n) u ||a||_2, p a modest polynomial, the
 * class bounds_gram_allowance assumes (bounds.h, p(n) = 16 n; tested against
 * dsyevr in tests/test_bounds.c). On return w holds the eigenvalues
 * (unordered) and row j of z (n x n) the unit eigenvector of w[j]; a is
 * destroyed. e, p: n doubles each of scratch. Returns 0, or -1 if
 * a QL sweep did not converge (30 sweeps per eigenvalue, as dsteqr; a NaN
 * in a never converges). */
static int sym_eig(double *a, int32_t n, double *w, double *z, double *e, double *p)
{
    /* Householder: step k zeroes row (and column) k beyond the superdiagonal
     * with H = I - v v^T / h acting on rows and columns k+1..n-1; v is kept
     * in row k (a[k][k+1..]) and h in a[k+1][k], both free afterwards. */
    for (int32_t k = 0; k + 2 < n; k++) {
        double *ak = a + (size_t)k * n;
        double sc = 0.0;
        for (int32_t i = k + 1; i < n; i++)
            sc += fabs(ak[i]);
        if (sc == 0.0) { /* already reduced: H = I */
            e[k] = 0.0;
            a[(size_t)(k + 1) * n + k] = 0.0;
            continue;
        }
        double sig = 0.0;
        for (int32_t i = k + 1; i < n; i++) {
            ak[i] /= sc; /* scaled: H does not depend on the scale */
            sig += ak[i] * ak[i];
        }
        double f = ak[k + 1], g = f >= 0.0 ? -sqrt(sig) : sqrt(sig);
        double h = sig - f * g; /* = ||v||^2 / 2 for v = x - g e_1 */
        e[k] = sc * g;
        ak[k + 1] = f - g;
        /* p = A v / h, K = v^T p / (2 h), q = p - K v; A <- A - v q^T - q v^T
         * on the trailing block (H A H, symmetric: both triangles kept) */
        hh_matvec(a, n, k + 1, ak, p); /* A v, by columns (A is symmetric) */
        double K = 0.0;
        for (int32_t i = k + 1; i < n; i++) {
            p[i] /= h;
            K += ak[i] * p[i];
        }
        K /= 2.0 * h;
        for (int32_t i = k + 1; i < n; i++)
            p[i] -= K * ak[i];
        hh_rank2(a, n, k + 1, ak, p);
        a[(size_t)(k + 1) * n + k] = h;
    }
    for (int32_t k = 0; k < n; k++)
        w[k] = a[(size_t)k * n + k];
    if (n >= 2)
        e[n - 2] = a[(size_t)(n - 2) * n + n - 1];
    e[n - 1] = 0.0;
    if (z) { /* Q = H_0 H_1 ... H_{n-3}, built from the right: Z <- H_k Z */
        for (int32_t i = 0; i < n; i++)
            for (int32_t j = 0; j < n; j++)
                z[(size_t)i * n + j] = i == j ? 1.0 : 0.0;
        for (int32_t k = n - 3; k >= 0; k--) {
            double h = a[(size_t)(k + 1) * n + k];
            if (h != 0.0)
                hh_apply(z, n, k + 1, a + (size_t)k * n, h, p);
        }
        /* transposed, so that a QL rotation works on two rows: row j of z
         * is now the eigenvector of w[j] */
        for (int32_t i = 0; i < n; i++)
            for (int32_t j = 0; j < i; j++) {
                double t = z[(size_t)i * n + j];
                z[(size_t)i * n + j] = z[(size_t)j * n + i];
                z[(size_t)j * n + i] = t;
            }
    }
    /* Implicit QL on (w, e), e[i] coupling i and i + 1: deflate at the first
     * negligible e[m] at or after l, else one sweep from m up to l with the
     * shift from the leading 2 x 2 block, until e[l] is negligible. */
    double tn = 0.0; /* ||T||_1 >= ||T||_2 */
    for (int32_t i = 0; i < n; i++)
        tn = fmax(tn, fabs(w[i]) + fabs(e[i]) + (i > 0 ? fabs(e[i - 1]) : 0.0));
    for (int32_t l = 0; l < n; l++) {
        for (int iter = 0;; iter++) {
            /* negligible: below u times its neighbours (relative accuracy
             * where it costs nothing) or times ||T|| (norm-wise, the
             * backward error model above: zeroing it perturbs T by that) */
            int32_t m = l;
            while (m + 1 < n && !(fabs(e[m]) <= 0x1p-53 * (fabs(w[m]) + fabs(w[m + 1])) ||
                                  fabs(e[m]) <= 0x1p-53 * tn))
                m++;
            if (m == l)
                break;
            if (iter >= 30)
                return -1;
            double g = (w[l + 1] - w[l]) / (2.0 * e[l]);
            double r = pyth(g, 1.0);
            g = w[m] - w[l] + e[l] / (g + (g >= 0.0 ? r : -r));
            double s = 1.0, c = 1.0, pp = 0.0;
            int32_t i;
            for (i = m - 1; i >= l; i--) {
                double f = s * e[i], b = c * e[i];
                r = pyth(f, g);
                e[i + 1] = r;
                if (r == 0.0) { /* underflow: split here and sweep again */
                    w[i + 1] -= pp;
                    e[m] = 0.0;
                    break;
                }
                s = f / r, c = g / r;
                g = w[i + 1] - pp;
                r = (w[i] - g) * s + 2.0 * c * b;
                pp = s * r;
                w[i + 1] = g + pp;
                g = c * r - b;
                if (z)
                    rot_rows(z + (size_t)i * n, z + (size_t)(i + 1) * n, n, c, s);
            }
            if (i >= l) /* the underflow split above */
                continue;
            w[l] -= pp;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    return 0;
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
    double *w = malloc(3 * (size_t)d * sizeof *w);
    double *z = j->B ? malloc(dd * sizeof *z) : NULL;
    int32_t *ord = malloc((size_t)d * sizeof *ord);
    if (!a || !w || !ord || (j->B && !z)) {
        j->info = -1000, j->bad = j->from;
        DRRL_FREE(a, w, z, ord);
        return NULL;
    }
    for (int32_t h = j->from; h < j->to; h++) {
        const double *g = j->G + (size_t)h * dd;
        for (int32_t r = 0; r < d; r++) /* the upper triangle, mirrored */
            for (int32_t c = r; c < d; c++)
                a[(size_t)r * d + c] = a[(size_t)c * d + r] = g[(size_t)r * d + c];
        if (sym_eig(a, d, w, z, w + d, w + 2 * (size_t)d) != 0) {
            j->info = -2000, j->bad = h;
            break;
        }
        /* descending (selection: d is small), vectors along */
        for (int32_t c = 0; c < d; c++)
            ord[c] = c;
        for (int32_t c = 0; c < d; c++) {
            int32_t best = c;
            for (int32_t q = c + 1; q < d; q++)
                if (w[ord[q]] > w[ord[best]])
                    best = q;
            int32_t t = ord[c];
            ord[c] = ord[best], ord[best] = t;
        }
        double *lam = j->lambda + (size_t)h * d;
        for (int32_t c = 0; c < d; c++)
            lam[c] = w[ord[c]] > 0.0 ? w[ord[c]] : 0.0;
        if (!j->B)
            continue;
        double *b = j->B + (size_t)h * dd;
        for (int32_t c = 0; c < d; c++)
            for (int32_t i = 0; i < d; i++)
                b[(size_t)i * d + c] = z[(size_t)ord[c] * d + i];
        basis_fix_signs(b, d);
    }
    DRRL_FREE(a, w, z, ord);
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
            return drrl_error(err, DRRL_E_INTERNAL,
                              "basis: the eigensolver did not converge on matrix %d (a NaN or "
                              "an infinity in it?)",
                              (int)jobs[t].bad);
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
