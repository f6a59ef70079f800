/* Unit tests: method specs, rank grid, FLOP ledger, Gram/eigen bases. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn_testutil.h"
#include "attn/basis.h"
#include "attn/flops.h"
#include "attn/method.h"

Test(method, parses_every_form)
{
    Method m;
    DrrlError e;
    cr_assert_eq(method_parse("full", &m, &e), DRRL_OK);
    cr_assert_eq(m.kind, METHOD_FULL);
    cr_assert_eq(method_parse("fixed:8", &m, &e), DRRL_OK);
    cr_assert_eq(m.kind, METHOD_FIXED);
    cr_assert_eq(m.rank, 8);
    cr_assert_eq(method_parse("energy:0.9", &m, &e), DRRL_OK);
    cr_assert_float_eq(m.energy, 0.9, 1e-12);
    cr_assert_eq(method_parse("random:2-6", &m, &e), DRRL_OK);
    cr_assert(m.lo == 2 && m.hi == 6);
    cr_assert_eq(method_parse("oracle:0.05", &m, &e), DRRL_OK);
    cr_assert_float_eq(m.eps, 0.05, 1e-12);
    cr_assert_eq(method_parse("performer:16", &m, &e), DRRL_OK);
    cr_assert(m.kind == METHOD_PERFORMER && m.m == 16);
    cr_assert_eq(method_parse("nystrom:8", &m, &e), DRRL_OK);
    cr_assert(m.kind == METHOD_NYSTROM && m.m == 8);
    cr_assert_eq(method_parse("drrl", &m, &e), DRRL_OK);
    cr_assert(m.kind == METHOD_DRRL && m.policy[0] == 0);
    cr_assert_eq(method_parse("drrl:p.bin", &m, &e), DRRL_OK);
    cr_assert_str_eq(m.policy, "p.bin");
    cr_assert_str_eq(m.spec, "drrl:p.bin");
}

/* The landmark limit is the attention core's stack arrays (METHOD_NYSTROM_MAX). */
Test(method, nystrom_landmark_limit)
{
    Method m;
    DrrlError e;
    char spec[32];
    snprintf(spec, sizeof spec, "nystrom:%d", METHOD_NYSTROM_MAX);
    cr_assert_eq(method_parse(spec, &m, &e), DRRL_OK);
    cr_assert_eq(m.m, METHOD_NYSTROM_MAX);
    snprintf(spec, sizeof spec, "nystrom:%d", METHOD_NYSTROM_MAX + 1);
    cr_assert_eq(method_parse(spec, &m, &e), DRRL_E_USAGE);
    cr_assert(strstr(e.msg, "1 <= M <= 4096"), "%s", e.msg);
}

Test(method, rejects_bad_specs_listing_forms)
{
    const char *bad[] = {
        "",           "fixed",        "fixed:0",         "fixed:x",  "fixed:3x", "energy:0",
        "energy:1.5", "energy:",      "random:5-2",      "random:3", "random:-", "oracle:0",
        "oracle:-1",  "performer",    "nystrom:0",       "drrl:",    "full:3",   "lowrank:4",
        "FULL",       "nystrom:4097", "performer:65537", "fixed:8/", "fixed:/8", "fixed:8//8",
        "fixed:8/0",  "fixed:8/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Method m;
        DrrlError e;
        cr_assert_eq(method_parse(bad[i], &m, &e), DRRL_E_USAGE, "accepted '%s'", bad[i]);
        cr_assert(strstr(e.msg, METHOD_FORMS), "message lacks forms: %s", e.msg);
        cr_assert(strchr(e.msg, '\n') == NULL);
    }
}

Test(method, check_against_head_dim)
{
    Method m;
    DrrlError e;
    method_parse("fixed:9", &m, &e);
    cr_assert_eq(method_check(&m, 8, 4, &e), DRRL_E_USAGE);
    cr_assert_eq(method_check(&m, 16, 4, &e), DRRL_OK);
    method_parse("random:1-17", &m, &e);
    cr_assert_eq(method_check(&m, 16, 4, &e), DRRL_E_USAGE);
}

Test(method, fixed_per_layer)
{
    Method m;
    DrrlError e;
    cr_assert_eq(method_parse("fixed:20/016/16/12", &m, &e), DRRL_OK);
    cr_assert_str_eq(m.spec, "fixed:20/16/16/12");
    cr_assert_eq(m.n_layer_ranks, 4);
    cr_assert_eq(m.rank, 20);
    cr_assert_eq(method_fixed_rank(&m, 0), 20);
    cr_assert_eq(method_fixed_rank(&m, 3), 12);
    cr_assert_eq(method_check(&m, 32, 4, &e), DRRL_OK);
    cr_assert_eq(method_check(&m, 32, 5, &e), DRRL_E_USAGE);
    cr_assert(strstr(e.msg, "4 ranks for the model's 5 layers"), "%s", e.msg);
    cr_assert_eq(method_check(&m, 16, 4, &e), DRRL_E_USAGE); /* 20 > head_dim */
    cr_assert_eq(method_parse("fixed:8", &m, &e), DRRL_OK);
    cr_assert_eq(m.n_layer_ranks, 0);
    cr_assert_eq(method_fixed_rank(&m, 2), 8);
}

Test(method, rank_grid)
{
    RankGrid g;
    DrrlError e;
    cr_assert_eq(method_grid(&g, 64, 8, 8, &e), DRRL_OK);
    cr_assert_eq(g.n, 8);
    cr_assert(g.r[0] == 8 && g.r[7] == 64);
    cr_assert_eq(method_grid(&g, 10, 3, 4, &e), DRRL_OK); /* 3 7 10 */
    cr_assert(g.n == 3 && g.r[0] == 3 && g.r[1] == 7 && g.r[2] == 10);
    cr_assert_eq(method_grid(&g, 8, 0, 0, &e), DRRL_OK); /* defaults 1..8 */
    cr_assert(g.n == 8 && g.r[0] == 1);
    cr_assert_eq(method_grid_index(&g, 5), 4);
    cr_assert_eq(method_grid(&g, 8, 9, 1, &e), DRRL_E_USAGE);
    cr_assert_eq(method_grid(&g, 8, 1, 0 - 1, &e), DRRL_E_USAGE);
}

Test(flops, ledger_sums_and_categories)
{
    FlopLedger l;
    DrrlError e;
    cr_assert_eq(flops_init(&l, 2, 3, &e), DRRL_OK);
    flops_add(&l, 0, 1, FLOPS_SCORES, flops_dot(10, 4));
    flops_add(&l, 1, 2, FLOPS_VALUE, flops_dot(10, 4));
    flops_add(&l, 1, FLOPS_LAYER, FLOPS_MLP, flops_linear(1, 32, 128));
    flops_add(&l, 5, 0, FLOPS_MLP, 1e9); /* ignored: bad layer */
    flops_add(&l, 0, 9, FLOPS_MLP, 1e9); /* ignored: bad head */
    cr_assert_float_eq(flops_get(&l, 0, 1, FLOPS_SCORES), 80.0, 0);
    cr_assert_float_eq(flops_attn(&l), 160.0, 0);
    cr_assert_float_eq(flops_total(&l), 160.0 + 2 * 32 * 128, 0);
    cr_assert_float_eq(flops_get(&l, 1, -1, FLOPS_CAT_COUNT), 80.0 + 2 * 32 * 128, 0);
    cr_assert_float_eq(flops_head_attn(&l, 1, 2), 80.0, 0);
    cr_assert(flops_cat_is_attn(FLOPS_EIG) && !flops_cat_is_attn(FLOPS_MLP));
    cr_assert_str_eq(flops_cat_name(FLOPS_ROTATE), "rotation");
    flops_clear(&l);
    cr_assert_float_eq(flops_total(&l), 0.0, 0);
    flops_done(&l);
    flops_done(NULL);
}

Test(flops, closed_forms)
{
    /* Exact attention of one query over n keys: 4 n d + 5 n. */
    cr_assert_float_eq(flops_exact_attn(100, 64), 4.0 * 100 * 64 + 500, 0);
    /* Rank r: 2dr + 4nr + 5n + 2rd. */
    cr_assert_float_eq(flops_lowrank_attn(100, 16, 64),
                       2.0 * 64 * 16 * 2 + 4.0 * 100 * 16 + 500, 0);
    cr_assert_float_eq(flops_gram(128, 64), 128.0 * 64 * 65, 0);
    cr_assert_float_eq(flops_eig(10), 9000.0, 0);
    cr_assert_float_eq(flops_rotate(100, 8), 2.0 * 512 + 2.0 * 100 * 64, 0);
}

Test(basis, gram_counts_upper_triangle)
{
    float X[6] = {1, 2, 3, 4, 5, 6}; /* 2 x 3 */
    double G[9] = {0};
    basis_gram_add(G, X, 2, 3, 3);
    cr_assert_float_eq(G[0 * 3 + 1], 1 * 2 + 4 * 5, 0);
    cr_assert_float_eq(G[1 * 3 + 0], 0.0, 0); /* lower untouched */
    basis_gram_symmetrize(G, 3);
    cr_assert_float_eq(G[1 * 3 + 0], 22.0, 0);
    cr_assert_float_eq(G[2 * 3 + 2], 9 + 36, 0);
}

/* The Gram/eigensolve path agrees with a direct SVD of the same matrix, for
 * many random matrices, in singular values and (away from ties) in the
 * spanned subspaces. */
Test(basis, gram_path_matches_direct_svd)
{
    TRng r = {42};
    const int sizes[][2] = {{4, 4}, {40, 8}, {64, 16}, {200, 32}};
    int checked = 0;
    for (int si = 0; si < 4; si++)
        for (int kind = 0; kind < SPEC_COUNT; kind++)
            for (int trial = 0; trial < 10; trial++) {
                int n = sizes[si][0], d = sizes[si][1];
                float *X = malloc((size_t)n * d * sizeof *X);
                t_matrix(&r, X, n, d, kind, 1.0 + 10.0 * trng_unif(&r));
                double *G = calloc((size_t)d * d, sizeof *G), *lam = malloc(d * sizeof *lam);
                double *B = malloc((size_t)d * d * sizeof *B), *sig = malloc(d * sizeof *sig);
                double *V = malloc((size_t)d * d * sizeof *V);
                /* accumulate in two chunks, as segments would */
                basis_gram_add(G, X, n / 2, d, d);
                basis_gram_add(G, X + (size_t)(n / 2) * d, n - n / 2, d, d);
                DrrlError e;
                cr_assert_eq(basis_eig_batch(G, 1, d, lam, B, &e), DRRL_OK);
                cr_assert_eq(basis_svd(X, n, d, d, sig, V, &e), DRRL_OK);
                double smax = sig[0];
                for (int k = 0; k < d; k++) {
                    cr_assert(k == 0 || lam[k] <= lam[k - 1]);
                    cr_assert(fabs(sqrt(lam[k]) - sig[k]) <= 1e-6 * smax + 1e-9,
                              "sigma %d: %g vs %g", k, sqrt(lam[k]), sig[k]);
                }
                /* orthonormal columns */
                for (int a = 0; a < d; a++)
                    for (int b = 0; b < d; b++) {
                        double dot = 0;
                        for (int i = 0; i < d; i++)
                            dot += B[i * d + a] * B[i * d + b];
                        cr_assert(fabs(dot - (a == b)) < 1e-10);
                    }
                /* well separated singular vectors agree up to sign (both sign-fixed) */
                for (int k = 0; k < d; k++) {
                    double gap = 1e300;
                    if (k > 0)
                        gap = fmin(gap, sig[k - 1] - sig[k]);
                    if (k + 1 < d)
                        gap = fmin(gap, sig[k] - sig[k + 1]);
                    if (gap < 1e-2 * smax || sig[k] < 1e-3 * smax)
                        continue;
                    double dot = 0;
                    for (int i = 0; i < d; i++)
                        dot += B[i * d + k] * V[i * d + k];
                    cr_assert(fabs(fabs(dot) - 1.0) < 1e-6, "vector %d: |dot| %g", k, dot);
                    checked++;
                }
                free(X), free(G), free(lam), free(B), free(sig), free(V);
            }
    cr_assert(checked > 100);
}
