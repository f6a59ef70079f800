/* eig_threads: does a 32 x 32 symmetric eigensolve scale over threads? The
 * basis refresh solves one per side and segment boundary, on every thread
 * of the pool at once. Each of N threads (1, 2, 4, ... up to --threads)
 * solves the same seeded Gram matrix `--iters` times, eigenvalues only, with
 * LAPACK's dsyevr (OpenBLAS held at one thread, as drrl's pool runs it) and
 * with drrl's own eigensolver (basis_eigvals_batch); prints the median
 * thread's microseconds per solve for each.
 *
 *   eig_threads [--threads 16] [--iters 1000] [--dim 32]
 *
 * Built by `make check` (not run there): build/bench/eig_threads. The README
 * speed table's "488 us each on 16" is its dsyevr column on the device.
 */
#include "config.h"

#include <cblas.h>
#include <lapacke.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/basis.h"
#include "base/blas.h"
#include "bench_threads.h"

enum { MAX_THREADS = BENCH_MAX_THREADS };

typedef struct Job {
    const double *G;
    int d, iters, lapack;
    double us; /* per solve */
    int failed;
} Job;

static void *run(void *arg)
{
    Job *j = arg;
    int d = j->d;
    double *a = malloc((size_t)d * d * sizeof *a), *w = malloc((size_t)d * sizeof *w);
    double *z = malloc((size_t)d * d * sizeof *z);
    lapack_int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
    if (!a || !w || !z || !isuppz) {
        j->failed = 1;
        free(a), free(w), free(z), free(isuppz);
        return NULL;
    }
    DrrlError err;
    double t0 = 0.0;
    for (int it = -10; it < j->iters; it++) { /* 10 warm-up solves */
        if (it == 0)
            t0 = bench_now();
        if (j->lapack) {
            memcpy(a, j->G, (size_t)d * d * sizeof *a);
            lapack_int m = 0;
            if (LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'A', 'U', d, a, d, 0.0, 0.0, 0, 0, 0.0,
                               &m, w, z, d, isuppz) != 0)
                j->failed = 1;
        } else if (basis_eigvals_batch(j->G, 1, d, w, &err) != DRRL_OK) {
            j->failed = 1;
        }
    }
    j->us = (bench_now() - t0) / j->iters * 1e6;
    free(a), free(w), free(z), free(isuppz);
    return NULL;
}

static int cmp(const void *x, const void *y)
{
    double a = ((const Job *)x)->us, b = ((const Job *)y)->us;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    int threads = 16, iters = 1000, d = 32;
    for (int i = 1; i < argc; i += 2) {
        int *dst = !strcmp(argv[i], "--threads") ? &threads
                   : !strcmp(argv[i], "--iters") ? &iters
                   : !strcmp(argv[i], "--dim")   ? &d
                                                 : NULL;
        long hi = dst == &threads ? MAX_THREADS : dst == &iters ? 1000000 : 512;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "usage: eig_threads [--threads N] [--iters N] [--dim D]\n");
            return 2;
        }
        char *end;
        long val = strtol(argv[i + 1], &end, 10);
        if (*end || val < 1 || val > hi) {
            fprintf(stderr, "eig_threads: %s: %s is not in 1..%ld\n", argv[i], argv[i + 1], hi);
            return 2;
        }
        *dst = (int)val;
    }
    /* a seeded Gram matrix of 4 d rows, as a side's G */
    double *G = calloc((size_t)d * d, sizeof *G);
    float *X = malloc((size_t)4 * d * d * sizeof *X);
    if (!G || !X)
        return 1;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 4 * d * d; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        X[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    basis_gram_add(G, X, 4 * d, d, d);
    basis_gram_symmetrize(G, d);
    blas_hold_serial();
    printf("threads  dsyevr us/solve  drrl us/solve  (d = %d, %d solves per thread, median "
           "thread)\n",
           d, iters);
    for (int nt = 1; nt <= threads; nt = nt * 2 > threads && nt < threads ? threads : nt * 2) {
        double med[2];
        for (int lapack = 1; lapack >= 0; lapack--) {
            Job jobs[MAX_THREADS];
            for (int t = 0; t < nt; t++)
                jobs[t] = (Job){G, d, iters, lapack, 0.0, 0};
            if (bench_threads_run("eig_threads", nt, run, jobs, sizeof *jobs))
                return 1;
            for (int t = 0; t < nt; t++)
                if (jobs[t].failed) {
                    fprintf(stderr, "eig_threads: an eigensolve failed\n");
                    return 1;
                }
            qsort(jobs, (size_t)nt, sizeof *jobs, cmp);
            med[lapack] = jobs[nt / 2].us;
        }
        printf("%7d  %15.1f  %13.1f\n", nt, med[1], med[0]);
    }
    blas_release_serial();
    free(G), free(X);
    return 0;
}
