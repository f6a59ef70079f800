/* gemm_rates: the linear layers' product y = x W^T on one thread, as the
 * forward's tasks run it: OpenBLAS (cblas_sgemm on tiles of --tile rows, as
 * the forward called it until 2026-12-08, which packs W's panel again for
 * every tile) against drrl's own kernel (src/base/gemm.c: W's columns packed
 * once, then every tile), for each kernel variant this CPU runs. Shapes are
 * rows x columns x inputs (M x N x K); the defaults are GPT-2 124M's (a
 * 1,024-token call, a 128-column task, inputs 768 and 3,072) and a few rows
 * (token steps). Each figure is the median of --repeat timed runs after one
 * warm-up, in GFLOP/s (2 M N K per run); "pack" is the share of the packed
 * run spent packing.
 *
 *   gemm_rates [--repeat 15] [--tile 128] [--shapes 1024x128x768,...]
 *
 * Built by `make check` (not run there): build/bench/gemm_rates. Set
 * OPENBLAS_CORETYPE to compare against another of OpenBLAS's kernels (the
 * README quotes Haswell against the AVX2 variant).
 */
#include "config.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn_core.h"
#include "base/blas.h"
#include "base/gemm.h"
#include "bench_threads.h"

enum { MAX_SHAPES = 16, MAX_REPEAT = 101 };

typedef struct Shape {
    size_t m, n, k;
} Shape;

static int parse_shapes(const char *s, Shape *out, int *count)
{
    *count = 0;
    while (*s) {
        if (*count == MAX_SHAPES)
            return -1;
        char *e;
        Shape sh;
        sh.m = strtoul(s, &e, 10);
        if (*e != 'x')
            return -1;
        sh.n = strtoul(e + 1, &e, 10);
        if (*e != 'x')
            return -1;
        sh.k = strtoul(e + 1, &e, 10);
        if ((*e && *e != ',') || !sh.m || !sh.n || !sh.k)
            return -1;
        out[(*count)++] = sh;
        s = *e ? e + 1 : e;
    }
    return *count ? 0 : -1;
}

static void openblas_run(const Shape *s, size_t tile, const float *x, const float *w, float *y)
{
    for (size_t i = 0; i < s->m; i += tile) {
        size_t m = s->m - i < tile ? s->m - i : tile;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)s->n, (int)s->k, 1.0f,
                    x + i * s->k, (int)s->k, w, (int)s->k, 0.0f, y + i * s->n, (int)s->n);
    }
}

int main(int argc, char **argv)
{
    int repeat = 15;
    size_t tile = 128;
    const char *shapes = "1024x128x768,1024x128x3072,128x128x768,1x384x768,4x384x768";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tile") && i + 1 < argc)
            tile = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            shapes = argv[++i];
        else {
            fprintf(stderr,
                    "usage: gemm_rates [--repeat N] [--tile ROWS] [--shapes MxNxK,...]\n");
            return 2;
        }
    }
    Shape sh[MAX_SHAPES];
    int ns;
    if (repeat < 1 || repeat > MAX_REPEAT || tile < 1 || parse_shapes(shapes, sh, &ns)) {
        fprintf(stderr, "gemm_rates: bad --repeat (1..%d), --tile or --shapes\n", MAX_REPEAT);
        return 2;
    }
    blas_hold_serial();
    printf("gemm_rates: 1 thread, median of %d; OpenBLAS in tiles of %zu rows; GFLOP/s\n",
           repeat, tile);
    printf("%-18s %10s", "M x N x K", "openblas");
    for (int isa = 0; isa < GEMM_ISA_COUNT; isa++)
        if (gemm_supported((GemmIsa)isa))
            printf(" %10s %6s", gemm_isa_name((GemmIsa)isa), "pack");
    printf("\n");
    for (int si = 0; si < ns; si++) {
        const Shape *s = &sh[si];
        float *x = malloc(s->m * s->k * sizeof *x), *w = malloc(s->n * s->k * sizeof *w);
        float *y = malloc(s->m * s->n * sizeof *y);
        /* AVX-512's panels are the widest: room for every variant's */
        float *wp = aligned_alloc(64, (gemm_pack_floats(GEMM_ISA_AVX512, s->n, s->k) + 16) *
                                          sizeof(float));
        if (!x || !w || !y || !wp) {
            fprintf(stderr, "gemm_rates: out of memory\n");
            return 1;
        }
        uint64_t r = 88172645463325252ull;
        for (size_t i = 0; i < s->m * s->k; i++)
            r ^= r << 13, r ^= r >> 7, r ^= r << 17,
                x[i] = (float)(r >> 40) / 16777216.0f - .5f;
        for (size_t i = 0; i < s->n * s->k; i++)
            r ^= r << 13, r ^= r >> 7, r ^= r << 17,
                w[i] = (float)(r >> 40) / 16777216.0f - .5f;
        double fl = 2.0 * (double)s->m * (double)s->n * (double)s->k, t[MAX_REPEAT];
        char name[40];
        snprintf(name, sizeof name, "%zux%zux%zu", s->m, s->n, s->k);
        openblas_run(s, tile, x, w, y);
        for (int i = 0; i < repeat; i++) {
            double t0 = bench_now();
            openblas_run(s, tile, x, w, y);
            t[i] = bench_now() - t0;
        }
        printf("%-18s %10.1f", name, fl / attn_core_median(t, (size_t)repeat) / 1e9);
        for (int isa = 0; isa < GEMM_ISA_COUNT; isa++) {
            if (!gemm_supported((GemmIsa)isa))
                continue;
            double tp[MAX_REPEAT];
            for (int i = 0; i <= repeat; i++) {
                double t0 = bench_now();
                gemm_pack((GemmIsa)isa, wp, w, s->k, s->n, s->k);
                double t1 = bench_now();
                gemm_packed((GemmIsa)isa, y, s->n, x, s->k, wp, s->m, s->n, s->k, 0);
                double t2 = bench_now();
                if (i)
                    t[i - 1] = t2 - t0, tp[i - 1] = t1 - t0;
            }
            double whole = attn_core_median(t, (size_t)repeat),
                   pack = attn_core_median(tp, (size_t)repeat);
            printf(" %10.1f %5.1f%%", fl / whole / 1e9, 100.0 * pack / whole);
        }
        printf("\n");
        free(x), free(w), free(y), free(wp);
    }
    blas_release_serial();
    return 0;
}
