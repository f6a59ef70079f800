/* kernel_rates: the per-head attention kernels, per (query, key) pair and
 * per executed FLOP, over threads. The exact head kernel
 * (forward_attn_exact: sgemm, row softmax, sgemm, in calls of
 * FORWARD_ATTN_BLOCK rows as the forward runs it) at head_dim D against the
 * rank-r kernel (lowrank_kernel_rows, in calls of 32 rows as attn_core runs
 * it) at each rank of --ranks. Each of N threads (1, 2, 4, ... up to
 * --threads) runs one causal head of --len rows and keys on its own seeded
 * data, as the pool runs a layer's heads side by side; the median thread's
 * time of the faster of two passes is reported, as nanoseconds per causal
 * pair (row i attends keys 0..i) and as executed GFLOP/s by the ledger's
 * count (scores and value products: 4 D per key of a call's block for
 * exact, 4 r for rank r), and each rank's FLOP rate over exact's at the
 * same thread count. The rank-r head's projections (q B_K, back to
 * head_dim: 4 D r per row) are not in it: they are per row, not per pair.
 *
 *   kernel_rates [--threads 16] [--len 8192] [--dim 32] [--ranks 4,8,16]
 *                [--isa portable|avx2|avx512|avx512-8]
 *
 * --isa runs the rank-r kernel's variant for that instruction set (all
 * give the same bits; the default is the one drrl runs on this CPU,
 * lowrank_kernel_best).
 * Built by `make check` (not run there): build/bench/kernel_rates. The
 * README speed section quotes its output on the device and here.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/lowrank_kernel.h"
#include "base/blas.h"
#include "bench_threads.h"
#include "model/forward.h"

enum { MAX_THREADS = BENCH_MAX_THREADS, MAX_RANKS = 16, LOWRANK_ROWS = 32 };

typedef struct Job {
    int seed, len, dim, rank; /* rank 0: exact */
    double s;                 /* seconds, the faster pass */
    double flops;             /* the ledger's count of one pass */
    int failed;
} Job;

static void fill(float *x, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        x[i] = (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

static void exact_pass(const Job *j, const float *q, const float *k, const float *v, float *out,
                       float *S, double *flops)
{
    size_t L = (size_t)j->len, D = (size_t)j->dim;
    *flops = 0.0;
    for (size_t p = 0; p < L; p += FORWARD_ATTN_BLOCK) {
        size_t n = p + FORWARD_ATTN_BLOCK < L ? FORWARD_ATTN_BLOCK : L - p;
        ForwardAttnArgs a;
        memset(&a, 0, sizeof a);
        a.head_dim = j->dim, a.pos0 = p, a.n = n, a.n_keys = p + n;
        a.scale = 1.0f / sqrtf((float)D);
        a.q = q + p * D, a.q_stride = D, a.k = k, a.v = v;
        a.out = out + p * D, a.out_stride = D, a.scratch = S;
        forward_attn_exact(NULL, &a, NULL);
        *flops += 4.0 * (double)n * (double)(p + n) * (double)D;
    }
}

static LowrankIsa isa;

/* The projected keys and values' leading dimension: the length plus
 * LOWRANK_KERNEL_LD_PAD, as attn_core lays out its projected caches. */
#define KR_PAD LOWRANK_KERNEL_LD_PAD

static void lowrank_pass(const Job *j, const float *qs, const float *PK, const float *PV,
                         float *ab, void *scr, double *flops)
{
    size_t L = (size_t)j->len, r = (size_t)j->rank, ld = L + KR_PAD;
    *flops = 0.0;
    for (size_t p = 0; p < L; p += LOWRANK_ROWS) {
        size_t n = p + LOWRANK_ROWS < L ? LOWRANK_ROWS : L - p;
        lowrank_kernel_rows_isa(isa, qs + p * r, j->rank, PK, PV, ld, n, p, 0.25f, ab + p * r,
                                NULL, NULL, 0, p + n, scr);
        *flops += 4.0 * (double)n * (double)(p + n) * (double)r;
    }
}

static void *run(void *arg)
{
    Job *j = arg;
    size_t L = (size_t)j->len, D = (size_t)j->dim, r = (size_t)j->rank;
    size_t w = r ? r : D; /* the width of queries, keys and values */
    size_t nkv = r ? (L + KR_PAD) * w : L * w;
    uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)j->seed * 0x100000001b3ull);
    float *q = malloc(L * w * sizeof *q), *k = malloc(nkv * sizeof *k);
    float *v = malloc(nkv * sizeof *v), *out = malloc(L * w * sizeof *out);
    float *S = r ? NULL : malloc((size_t)FORWARD_ATTN_BLOCK * L * sizeof *S);
    void *scr = r ? malloc(lowrank_kernel_scratch(j->rank)) : NULL;
    if (!q || !k || !v || !out || (r ? !scr : !S)) {
        j->failed = 1;
        free(q), free(k), free(v), free(out), free(S), free(scr);
        return NULL;
    }
    fill(q, L * w, &s), fill(k, nkv, &s), fill(v, nkv, &s);
    j->s = INFINITY;
    for (int pass = 0; pass < 3; pass++) { /* one warm-up, two timed */
        double t0 = bench_now();
        if (r)
            lowrank_pass(j, q, k, v, out, scr, &j->flops);
        else
            exact_pass(j, q, k, v, out, S, &j->flops);
        double t = bench_now() - t0;
        if (pass > 0 && t < j->s)
            j->s = t;
    }
    for (size_t i = 0; i < L * w; i++)
        if (!isfinite(out[i]))
            j->failed = 1;
    free(q), free(k), free(v), free(out), free(S), free(scr);
    return NULL;
}

static int cmp(const void *x, const void *y)
{
    double a = ((const Job *)x)->s, b = ((const Job *)y)->s;
    return a < b ? -1 : a > b;
}

/* The median thread's job of nt threads running `rank` (0: exact). */
static int measure(int nt, int len, int dim, int rank, Job *med)
{
    Job jobs[MAX_THREADS];
    for (int t = 0; t < nt; t++)
        jobs[t] = (Job){t, len, dim, rank, 0.0, 0.0, 0};
    if (bench_threads_run("kernel_rates", nt, run, jobs, sizeof *jobs))
        return 1;
    for (int t = 0; t < nt; t++)
        if (jobs[t].failed) {
            fprintf(stderr, "kernel_rates: out of memory or a non-finite output\n");
            return 1;
        }
    qsort(jobs, (size_t)nt, sizeof *jobs, cmp);
    *med = jobs[nt / 2];
    return 0;
}

static int parse_int(const char *opt, const char *s, long hi, int *dst)
{
    char *end;
    long val = strtol(s, &end, 10);
    if (*end || val < 1 || val > hi) {
        fprintf(stderr, "kernel_rates: %s: %s is not in 1..%ld\n", opt, s, hi);
        return 2;
    }
    *dst = (int)val;
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 16, len = 8192, dim = 32, ranks[MAX_RANKS] = {4, 8, 16}, nr = 3;
    isa = lowrank_kernel_best();
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: kernel_rates [--threads N] [--len L] [--dim D] "
                            "[--ranks R1,R2,...] [--isa portable|avx2|avx512|avx512-8]\n");
            return 2;
        }
        const char *o = argv[i], *val = argv[i + 1];
        int st = 0;
        if (!strcmp(o, "--threads"))
            st = parse_int(o, val, MAX_THREADS, &threads);
        else if (!strcmp(o, "--len"))
            st = parse_int(o, val, 1 << 20, &len);
        else if (!strcmp(o, "--dim"))
            st = parse_int(o, val, 512, &dim);
        else if (!strcmp(o, "--isa")) {
            int k = 0;
            while (k < LOWRANK_ISA_COUNT && strcmp(val, lowrank_kernel_isa_name((LowrankIsa)k)))
                k++;
            if (k == LOWRANK_ISA_COUNT || !lowrank_kernel_supported((LowrankIsa)k)) {
                fprintf(stderr, "kernel_rates: --isa: %s is not a variant this CPU runs\n",
                        val);
                return 2;
            }
            isa = (LowrankIsa)k;
        } else if (!strcmp(o, "--ranks")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", val);
            nr = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (nr == MAX_RANKS) {
                    fprintf(stderr, "kernel_rates: --ranks: at most %d\n", MAX_RANKS);
                    return 2;
                }
                if ((st = parse_int(o, tok, LOWRANK_KERNEL_MAX_RANK, &ranks[nr++])))
                    break;
            }
        } else {
            fprintf(stderr, "kernel_rates: unknown option %s\n", o);
            return 2;
        }
        if (st)
            return st;
    }
    blas_hold_serial(); /* as the forward's pool runs the heads */
    printf("kernel_rates: L = %d causal rows and keys per head, head_dim %d, kernel %s; per "
           "thread count the median thread, the faster of 2 passes\n",
           len, dim, lowrank_kernel_isa_name(isa));
    printf("threads  kernel    ns/pair  GFLOP/s  rate / exact's\n");
    double pairs = (double)len * (len + 1) / 2.0;
    for (int nt = 1; nt <= threads; nt = nt * 2 > threads && nt < threads ? threads : nt * 2) {
        Job ex;
        if (measure(nt, len, dim, 0, &ex))
            return 1;
        double ex_rate = ex.flops / ex.s;
        printf("%7d  exact %3d %8.3f %8.1f  %5.2f\n", nt, dim, ex.s / pairs * 1e9,
               ex_rate / 1e9, 1.0);
        for (int i = 0; i < nr; i++) {
            Job lr;
            if (measure(nt, len, dim, ranks[i], &lr))
                return 1;
            double rate = lr.flops / lr.s;
            printf("%7d  rank %4d %8.3f %8.1f  %5.2f\n", nt, ranks[i], lr.s / pairs * 1e9,
                   rate / 1e9, rate / ex_rate);
        }
    }
    blas_release_serial();
    return 0;
}
