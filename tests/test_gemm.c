/* The linear layers' kernel (src/base/gemm.c): every output is the chain of
 * fused multiply-adds over k in order from 0 (checked bit for bit against
 * that chain written out), on every variant this CPU runs, whatever the
 * call's rows and columns; the packing against its definition; accumulation
 * adds to y once. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/gemm.h"
#include "base/rng.h"

typedef struct Case {
    size_t m, n, k, ldx, ldw, ldy;
    float *x, *w, *wp, *want;
} Case;

static float unif(uint64_t *s)
{
    return (float)(2.0 * rng_unit(rng_splitmix64(s)) - 1.0);
}

/* want[i][j] = fmaf chain over k of x[i][kk] * W[j][kk], from 0. */
static void case_make(Case *c, size_t m, size_t n, size_t k, uint64_t seed)
{
    c->m = m, c->n = n, c->k = k, c->ldx = k + 3, c->ldw = k + 5, c->ldy = n + 7;
    c->x = malloc(m * c->ldx * sizeof *c->x);
    c->w = malloc(n * c->ldw * sizeof *c->w);
    c->wp = aligned_alloc(64, (gemm_pack_floats(GEMM_ISA_PORTABLE, n, k) +
                               gemm_pack_floats(GEMM_ISA_AVX512, n, k) + 16) *
                                  sizeof(float));
    c->want = malloc(m * c->ldy * sizeof *c->want);
    cr_assert(c->x && c->w && c->wp && c->want);
    for (size_t i = 0; i < m * c->ldx; i++)
        c->x[i] = unif(&seed);
    for (size_t i = 0; i < n * c->ldw; i++)
        c->w[i] = unif(&seed);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float a = 0.0f;
            for (size_t kk = 0; kk < k; kk++)
                a = fmaf(c->x[i * c->ldx + kk], c->w[j * c->ldw + kk], a);
            c->want[i * c->ldy + j] = a;
        }
}

static void case_free(Case *c)
{
    free(c->x), free(c->w), free(c->wp), free(c->want);
}

/* Rows [i0, i1) and columns [j0, j1) of the case in one call on isa, into
 * y (ldy = c->ldy), packing just those columns. */
static void call_block(const Case *c, GemmIsa isa, float *y, size_t i0, size_t i1, size_t j0,
                       size_t j1, int acc)
{
    gemm_pack(isa, c->wp, c->w + j0 * c->ldw, c->ldw, j1 - j0, c->k);
    gemm_packed(isa, y + i0 * c->ldy + j0, c->ldy, c->x + i0 * c->ldx, c->ldx, c->wp, i1 - i0,
                j1 - j0, c->k, acc);
}

static size_t mismatches(const Case *c, const float *y)
{
    size_t bad = 0;
    for (size_t i = 0; i < c->m; i++)
        for (size_t j = 0; j < c->n; j++)
            bad += memcmp(&y[i * c->ldy + j], &c->want[i * c->ldy + j], sizeof(float)) != 0;
    return bad;
}

/* Shapes with remainders everywhere: rows past every kernel's block, columns
 * past a panel, depths that are not multiples of 16 (the packing's
 * transposes) and depth 1. */
static const size_t SHAPES[][3] = {{1, 1, 1},    {3, 17, 16},   {12, 32, 48},  {13, 33, 17},
                                   {25, 70, 96}, {7, 100, 1},   {40, 64, 130}, {6, 16, 768},
                                   {31, 97, 33}, {128, 128, 64}};

Test(gemm, every_output_is_the_fma_chain_on_every_variant)
{
    int ran = 0;
    for (int isa = 0; isa < GEMM_ISA_COUNT; isa++) {
        if (!gemm_supported((GemmIsa)isa))
            continue;
        ran++;
        for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
            Case c;
            case_make(&c, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 11 + s);
            float *y = malloc(c.m * c.ldy * sizeof *y);
            for (size_t i = 0; i < c.m * c.ldy; i++)
                y[i] = NAN; /* past column n must stay untouched */
            call_block(&c, (GemmIsa)isa, y, 0, c.m, 0, c.n, 0);
            cr_expect_eq(mismatches(&c, y), 0, "%s, %zu x %zu x %zu: %zu outputs differ",
                         gemm_isa_name((GemmIsa)isa), c.m, c.n, c.k, mismatches(&c, y));
            for (size_t i = 0; i < c.m; i++)
                for (size_t j = c.n; j < c.ldy; j++)
                    cr_expect(isnan(y[i * c.ldy + j]), "%s wrote past column n",
                              gemm_isa_name((GemmIsa)isa));
            free(y);
            case_free(&c);
        }
    }
    cr_expect_geq(ran, 1);
    cr_log_info("variants run here: %d (best %s)", ran, gemm_isa_name(gemm_best()));
}

Test(gemm, bits_do_not_depend_on_the_blocks_of_a_call)
{
    Case c;
    case_make(&c, 29, 150, 77, 5);
    GemmIsa isa = gemm_best();
    float *y = malloc(c.m * c.ldy * sizeof *y);
    /* uneven row and column blocks, each its own pack and call */
    static const size_t rs[] = {0, 1, 4, 17, 29}, cs[] = {0, 5, 64, 101, 150};
    for (size_t a = 0; a + 1 < sizeof rs / sizeof rs[0]; a++)
        for (size_t b = 0; b + 1 < sizeof cs / sizeof cs[0]; b++)
            call_block(&c, isa, y, rs[a], rs[a + 1], cs[b], cs[b + 1], 0);
    cr_expect_eq(mismatches(&c, y), 0, "%s: blocks changed %zu outputs", gemm_isa_name(isa),
                 mismatches(&c, y));
    free(y);
    case_free(&c);
}

Test(gemm, accumulate_adds_the_chain_to_y_once)
{
    Case c;
    case_make(&c, 14, 45, 40, 9);
    GemmIsa isa = gemm_best();
    float *y = malloc(c.m * c.ldy * sizeof *y), *y0 = malloc(c.m * c.ldy * sizeof *y0);
    uint64_t s = 3;
    for (size_t i = 0; i < c.m * c.ldy; i++)
        y[i] = y0[i] = 100.0f * unif(&s);
    call_block(&c, isa, y, 0, c.m, 0, c.n, 1);
    size_t bad = 0;
    for (size_t i = 0; i < c.m; i++)
        for (size_t j = 0; j < c.ldy; j++) {
            float want =
                j < c.n ? y0[i * c.ldy + j] + c.want[i * c.ldy + j] : y0[i * c.ldy + j];
            bad += memcmp(&y[i * c.ldy + j], &want, sizeof want) != 0;
        }
    cr_expect_eq(bad, 0, "%s: %zu accumulated outputs differ", gemm_isa_name(isa), bad);
    free(y), free(y0);
    case_free(&c);
}

Test(gemm, packing_follows_its_definition)
{
    for (int isa = 0; isa < GEMM_ISA_COUNT; isa++) {
        if (!gemm_supported((GemmIsa)isa))
            continue;
        Case c;
        case_make(&c, 1, 53, 37, 21);
        size_t P = gemm_panel((GemmIsa)isa), nf = gemm_pack_floats((GemmIsa)isa, c.n, c.k);
        cr_assert_eq(nf % (P * c.k), 0);
        cr_assert_geq(nf, c.n * c.k);
        gemm_pack((GemmIsa)isa, c.wp, c.w, c.ldw, c.n, c.k);
        size_t bad = 0;
        for (size_t p0 = 0; p0 < c.n; p0 += P)
            for (size_t kk = 0; kk < c.k; kk++)
                for (size_t j = 0; j < P; j++) {
                    float want = p0 + j < c.n ? c.w[(p0 + j) * c.ldw + kk] : 0.0f;
                    bad += memcmp(&c.wp[p0 * c.k + kk * P + j], &want, sizeof want) != 0;
                }
        cr_expect_eq(bad, 0, "%s: %zu packed floats wrong", gemm_isa_name((GemmIsa)isa), bad);
        case_free(&c);
    }
}

Test(gemm, nan_and_inf_propagate)
{
    Case c;
    case_make(&c, 5, 40, 20, 2);
    c.x[2 * c.ldx + 7] = NAN;
    c.w[33 * c.ldw + 4] = INFINITY;
    GemmIsa isa = gemm_best();
    float *y = malloc(c.m * c.ldy * sizeof *y);
    call_block(&c, isa, y, 0, c.m, 0, c.n, 0);
    for (size_t j = 0; j < c.n; j++)
        cr_expect(isnan(y[2 * c.ldy + j]), "row 2 column %zu: %g", j, y[2 * c.ldy + j]);
    for (size_t i = 0; i < c.m; i++)
        if (i != 2)
            cr_expect(isinf(y[i * c.ldy + 33]) || isnan(y[i * c.ldy + 33]), "row %zu: %g", i,
                      y[i * c.ldy + 33]);
    free(y);
    case_free(&c);
}
