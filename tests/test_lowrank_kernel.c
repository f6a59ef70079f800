/* The fused rank-r kernel (src/attn/lowrank_kernel.c): against softmax
 * attention in double, the same bits from every variant this CPU runs and
 * whatever the call split, NaN propagation, and its exponential's accuracy. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_testutil.h"
#include "attn/lowrank_kernel.h"
#include "test_util.h"

typedef struct Case {
    int32_t R;
    size_t n, pos0, N, ld;
    float scale;
    float *qs, *PK, *PV;
} Case;

/* Scores of spread sc: large enough that the softmax is far from uniform. */
static void case_make(Case *c, TRng *r, int32_t R, size_t n, size_t pos0, double sc)
{
    c->R = R, c->n = n, c->pos0 = pos0, c->N = pos0 + n, c->ld = c->N + 5;
    c->scale = 0.3f;
    c->qs = malloc(n * (size_t)R * sizeof *c->qs);
    c->PK = malloc((size_t)R * c->ld * sizeof *c->PK);
    c->PV = malloc((size_t)R * c->ld * sizeof *c->PV);
    for (size_t i = 0; i < n * (size_t)R; i++)
        c->qs[i] = (float)(sc * trng_normal(r));
    for (size_t i = 0; i < (size_t)R * c->ld; i++)
        c->PK[i] = (float)trng_normal(r), c->PV[i] = (float)trng_normal(r);
}

static void case_free(Case *c)
{
    free(c->qs), free(c->PK), free(c->PV);
}

typedef struct Out {
    float *ab, *probs;
    double *pnorm;
} Out;

static void run(const Case *c, LowrankIsa isa, Out *o)
{
    o->ab = calloc(c->n * (size_t)c->R, sizeof *o->ab);
    o->probs = malloc(c->n * c->N * sizeof *o->probs);
    o->pnorm = calloc(c->n, sizeof *o->pnorm);
    for (size_t i = 0; i < c->n * c->N; i++)
        o->probs[i] = NAN; /* every entry must be written */
    void *scr = malloc(lowrank_kernel_scratch(c->R));
    lowrank_kernel_rows_isa(isa, c->qs, c->R, c->PK, c->PV, c->ld, c->n, c->pos0, c->scale,
                            o->ab, o->pnorm, o->probs, c->N, c->N, scr);
    free(scr);
}

static void out_free(Out *o)
{
    free(o->ab), free(o->probs), free(o->pnorm);
}

/* Row i against softmax attention in double over keys 0..pos0+i. */
static void check_reference(const Case *c, const Out *o)
{
    size_t N = c->N;
    double *s = malloc(N * sizeof *s);
    for (size_t i = 0; i < c->n; i++) {
        size_t m = c->pos0 + i + 1;
        double mx = -INFINITY, z = 0, pp = 0;
        for (size_t t = 0; t < m; t++) {
            double a = 0;
            for (int32_t j = 0; j < c->R; j++)
                a += (double)c->qs[i * c->R + j] * c->PK[j * c->ld + t];
            s[t] = a * c->scale;
            mx = fmax(mx, s[t]);
        }
        for (size_t t = 0; t < m; t++)
            s[t] = exp(s[t] - mx), z += s[t], pp += s[t] * s[t];
        for (int32_t j = 0; j < c->R; j++) {
            double want = 0, mag = 0;
            for (size_t t = 0; t < m; t++)
                want += s[t] * c->PV[j * c->ld + t], mag += s[t] * fabs(c->PV[j * c->ld + t]);
            want /= z, mag /= z;
            double got = o->ab[i * c->R + j];
            cr_assert(fabs(got - want) <= 1e-5 * mag + 1e-30,
                      "R %d row %zu dir %d: %.9g, want %.9g", (int)c->R, i, (int)j, got, want);
        }
        cr_assert(fabs(o->pnorm[i] - sqrt(pp) / z) <= 1e-5 * sqrt(pp) / z, "pnorm row %zu", i);
        for (size_t t = 0; t < N; t++) {
            double want = t < m ? s[t] / z : 0.0, got = o->probs[i * N + t];
            cr_assert(fabs(got - want) <= 2e-5 * want + 1e-12, "p row %zu key %zu: %g, want %g",
                      i, t, got, want);
        }
    }
    free(s);
}

static void check_same(const Case *c, const Out *a, const Out *b, const char *what)
{
    cr_assert(memcmp(a->ab, b->ab, c->n * c->R * sizeof *a->ab) == 0, "%s: ab differs (R %d)",
              what, (int)c->R);
    cr_assert(memcmp(a->pnorm, b->pnorm, c->n * sizeof *a->pnorm) == 0, "%s: pnorm differs",
              what);
    cr_assert(memcmp(a->probs, b->probs, c->n * c->N * sizeof *a->probs) == 0,
              "%s: probs differ", what);
}

/* Ranks that take every path (fused 4 and 8, groups of 8 and 4, single
 * directions), lengths with a partial last chunk and a tail under 16. */
static const int32_t ranks[] = {1, 3, 4, 8, 12, 13, 16, 24, 31, 64};
static const size_t starts[] = {0, 7, 250, 529};

Test(lowrank_kernel, matches_double_reference)
{
    TRng r = {41};
    for (size_t k = 0; k < sizeof ranks / sizeof *ranks; k++) {
        Case c;
        case_make(&c, &r, ranks[k], 37, starts[k % 4], k % 2 ? 3.0 : 0.7);
        Out o;
        run(&c, lowrank_kernel_best(), &o);
        check_reference(&c, &o);
        out_free(&o);
        case_free(&c);
    }
}

/* The variant engines run: AVX-512 with 8 score vectors in flight on Intel
 * (two full-width FMA ports), with 4 elsewhere (AMD splits 512-bit FMAs). */
Test(lowrank_kernel, best_variant_follows_the_cpu)
{
    LowrankIsa b = lowrank_kernel_best();
    cr_assert(lowrank_kernel_supported(b));
#if defined(__x86_64__) || defined(__i386__)
    if (lowrank_kernel_supported(LOWRANK_ISA_AVX512))
        cr_assert_eq(b, __builtin_cpu_is("intel") ? LOWRANK_ISA_AVX512_8 : LOWRANK_ISA_AVX512,
                     "%s", lowrank_kernel_isa_name(b));
    else if (lowrank_kernel_supported(LOWRANK_ISA_AVX2))
        cr_assert_eq(b, LOWRANK_ISA_AVX2);
#endif
    cr_assert_str_eq(lowrank_kernel_isa_name(LOWRANK_ISA_AVX512_8), "avx512-8");
}

Test(lowrank_kernel, every_variant_gives_the_same_bits)
{
    TRng r = {43};
    int variants = 0;
    for (int v = 0; v < LOWRANK_ISA_COUNT; v++)
        variants += lowrank_kernel_supported((LowrankIsa)v);
    cr_assert(variants >= 1 && lowrank_kernel_supported(LOWRANK_ISA_PORTABLE));
    for (size_t k = 0; k < sizeof ranks / sizeof *ranks; k++) {
        Case c;
        case_make(&c, &r, ranks[k], 21, starts[(k + 1) % 4] + 300, 2.0);
        Out ref;
        run(&c, LOWRANK_ISA_PORTABLE, &ref);
        for (int v = 1; v < LOWRANK_ISA_COUNT; v++) {
            if (!lowrank_kernel_supported((LowrankIsa)v))
                continue;
            Out o;
            run(&c, (LowrankIsa)v, &o);
            check_same(&c, &ref, &o, lowrank_kernel_isa_name((LowrankIsa)v));
            out_free(&o);
        }
        out_free(&ref);
        case_free(&c);
    }
}

/* Rows computed one call at a time (as token-by-token stepping does) give
 * the bits of one call over all of them. */
Test(lowrank_kernel, independent_of_the_call_split)
{
    TRng r = {47};
    for (int k = 0; k < 3; k++) {
        int32_t R = k == 0 ? 8 : k == 1 ? 5 : 16;
        Case c;
        case_make(&c, &r, R, 40, 500, 1.5);
        Out all;
        run(&c, lowrank_kernel_best(), &all);
        void *scr = malloc(lowrank_kernel_scratch(R));
        float *ab = malloc((size_t)R * sizeof *ab);
        double pn;
        for (size_t i = 0; i < c.n; i++) {
            lowrank_kernel_rows(c.qs + i * R, R, c.PK, c.PV, c.ld, 1, c.pos0 + i, c.scale, ab,
                                &pn, NULL, 0, c.N, scr);
            cr_assert(memcmp(ab, all.ab + i * R, (size_t)R * sizeof *ab) == 0, "row %zu", i);
            cr_assert(pn == all.pnorm[i]);
        }
        free(scr), free(ab);
        out_free(&all);
        case_free(&c);
    }
}

Test(lowrank_kernel, nan_propagates)
{
    TRng r = {53};
    Case c;
    case_make(&c, &r, 8, 4, 300, 1.0);
    c.PV[3 * c.ld + 100] = NAN; /* one value of direction 3 */
    Out o;
    run(&c, lowrank_kernel_best(), &o);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(isnan(o.ab[i * c.R + 3]), "row %zu", i);
    out_free(&o);
    c.PK[100] = NAN; /* a score */
    run(&c, lowrank_kernel_best(), &o);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(isnan(o.ab[i * c.R]), "row %zu", i);
    out_free(&o);
    case_free(&c);
}

/* The kernel's exponential: within 2 ulp of exp() where a softmax needs it. */
Test(lowrank_kernel, exp_is_accurate)
{
    double worst = test_exp_worst_ulp(lowrank_kernel_exp);
    cr_assert(worst <= 2.0, "exp error %.2f ulp", worst);
    cr_assert_eq(lowrank_kernel_exp(0.0f), 1.0f);
    cr_assert(lowrank_kernel_exp(-100.0f) < 1e-37f);
    cr_assert(isnan(lowrank_kernel_exp(NAN)));
}
