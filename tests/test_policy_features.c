/* Policy features and rewards: layouts, statistics and formulas by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy_features.h"
#include "policy/policy_reward.h"

Test(policy_features, weight_stats_of_a_known_matrix)
{
    /* W = 3 u v^T with unit u (4), v (6): ||W||_2 = 3. */
    float W[4 * 8];
    double u[4] = {0.5, 0.5, 0.5, 0.5}, v[6];
    for (int j = 0; j < 6; j++)
        v[j] = (j % 2 ? 1.0 : -1.0) / sqrt(6.0);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) {
            W[i * 8 + j] = j < 6 ? (float)(3.0 * u[i] * v[j]) : 99.0f; /* ld 8: padding */
            if (j < 6) {
                sum += W[i * 8 + j];
                sum2 += (double)W[i * 8 + j] * W[i * 8 + j];
            }
        }
    float out[3];
    policy_features_weight_stats(W, 4, 6, 8, 20, out);
    double mean = sum / 24, var = sum2 / 24 - mean * mean;
    cr_assert_float_eq(out[0], mean / sqrt(var), 1e-5);
    cr_assert_float_eq(out[1], log(var + 1e-12), 1e-5);
    cr_assert_float_eq(out[2], log(3.0), 1e-5);
}

Test(policy_features, spectral_estimate_of_a_diagonal)
{
    float W[3 * 3] = {1, 0, 0, 0, -5, 0, 0, 0, 2};
    float out[3];
    policy_features_weight_stats(W, 3, 3, 3, 60, out);
    cr_assert_float_eq(out[2], log(5.0), 1e-4);
}

Test(policy_features, model_stats_follow_gqa_groups)
{
    /* L = 1, H = 4, K = 2, D = 2, C = 3: heads 0,1 read kv head 0; 2,3 kv head 1. */
    float wq[8 * 3], wk[4 * 3], wv[4 * 3], stats[4 * 9];
    for (int i = 0; i < 24; i++)
        wq[i] = (float)sin(i + 1.0);
    for (int i = 0; i < 12; i++) {
        wk[i] = (float)cos((i % 6) * 0.7) * (i < 6 ? 1.0f : 3.0f);
        wv[i] = (float)(i % 5) - 2.0f;
    }
    policy_features_model_stats(wq, wk, wv, 1, 4, 2, 2, 3, stats);
    cr_assert_eq(memcmp(stats + 3, stats + 9 + 3, 6 * sizeof(float)), 0);
    cr_assert_eq(memcmp(stats + 18 + 3, stats + 27 + 3, 6 * sizeof(float)), 0);
    cr_assert_neq(stats[3 + 2], stats[18 + 3 + 2]); /* kv heads differ (x3 scale) */
    cr_assert_float_eq(stats[18 + 5] - stats[5], log(3.0), 1e-4);
    cr_assert_neq(stats[0], stats[9]); /* query heads differ */
}

Test(policy_features, head_features_by_hand)
{
    double en[3] = {0.4, 0.7, 1.0}, bd[3] = {3.0, 1.0, 0.0};
    float ws[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int nf = policy_features_count(3);
    cr_assert_eq(nf, 18);
    float f[18];
    policy_features_head(f, ws, 3, 4, 2, 0.6, 255, en, bd);
    cr_assert_eq(memcmp(f, ws, sizeof ws), 0);
    cr_assert_float_eq(f[POLICY_FEAT_PREV_RANK], 0.5, 1e-7);
    cr_assert_float_eq(f[POLICY_FEAT_BUDGET], 0.6, 1e-7);
    cr_assert_float_eq(f[POLICY_FEAT_CONTEXT], 8.0 / 16.0, 1e-7);
    cr_assert_float_eq(f[12], 0.4, 1e-7);
    cr_assert_float_eq(f[13], 0.7, 1e-7);
    cr_assert_float_eq(f[14], 1.0, 1e-7);
    cr_assert_float_eq(f[15], 0.75, 1e-7);
    cr_assert_float_eq(f[16], 0.5, 1e-7);
    cr_assert_float_eq(f[17], 0.0, 1e-7);
    bd[0] = 1.0 / 0.0;
    bd[1] = 0.0 / 0.0;
    policy_features_head(f, ws, 3, 4, 4, 1.0, 0, en, bd);
    cr_assert_eq(f[15], 1.0f);
    cr_assert_eq(f[16], 0.0f);
    policy_features_head(f, ws, 3, 4, 4, 1.0, 0, NULL, NULL);
    for (int i = 12; i < 15; i++)
        cr_assert_eq(f[i], 1.0f);
    for (int i = 15; i < 18; i++)
        cr_assert_eq(f[i], 0.0f);
    cr_assert_eq(f[POLICY_FEAT_CONTEXT], 0.0f);
}

Test(policy_features, guard_features_v2_by_hand)
{
    double en[3] = {0.4, 0.7, 1.0}, bd[3] = {3.0, 1.0, 0.0}, gd[3] = {1.0, 0.25, 0.0};
    float ws[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(policy_features_count_v(3, 1), 18);
    cr_assert_eq(policy_features_count_v(3, 2), 21);
    cr_assert_eq(policy_features_version_of(18, 3), 1);
    cr_assert_eq(policy_features_version_of(21, 3), 2);
    cr_assert_eq(policy_features_version_of(19, 3), 0);
    float f1[18], f[21];
    policy_features_head(f1, ws, 3, 4, 2, 0.6, 255, en, bd);
    policy_features_head_v(f, 2, ws, 3, 4, 2, 0.6, 255, en, bd, gd, NULL);
    cr_assert_eq(memcmp(f, f1, sizeof f1), 0); /* version 2 extends version 1 */
    cr_assert_float_eq(f[18], 0.5, 1e-7);
    cr_assert_float_eq(f[19], 0.2, 1e-7);
    cr_assert_float_eq(f[20], 0.0, 1e-7);
    gd[0] = 0.0 / 0.0; /* unknown estimate: the worst value */
    gd[1] = 1.0 / 0.0;
    policy_features_head_v(f, 2, ws, 3, 4, 2, 0.6, 255, en, bd, gd, NULL);
    cr_assert_eq(f[18], 1.0f);
    cr_assert_eq(f[19], 1.0f);
    policy_features_head_v(f, 2, ws, 3, 4, 4, 1.0, 0, NULL, NULL, NULL, NULL);
    for (int i = 18; i < 21; i++)
        cr_assert_eq(f[i], 0.0f);
    char b[32];
    cr_assert_str_eq(policy_features_name_v(20, 3, 2, b, sizeof b), "guard[2]");
    cr_assert_str_eq(policy_features_name_v(20, 3, 1, b, sizeof b), "?");
    char *j = policy_features_layout_json_v(3, 2);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"version\":2"));
    cr_assert(strstr(j, "\"bound[2]\",\"guard[0]\""));
    cr_assert(strstr(j, "\"guard[2]\"]"));
    free(j);
}

Test(policy_features, gather_kv_rows)
{
    /* K = 2 kv heads, D = 2, cache of 4 rows; gather rows 1..2. */
    float k0[8] = {0, 0, 1, 1, 2, 2, 3, 3}, k1[8] = {0, 0, -1, 1, -2, 2, -3, 3};
    float v0[8] = {0, 0, 5, 5, 6, 6, 7, 7}, v1[8] = {0, 0, 1, 0, 0, 1, 1, 1};
    const float *k[2] = {k0, k1}, *v[2] = {v0, v1};
    cr_assert_eq(policy_features_conv_width(2, 2), 8);
    float out[2 * 8];
    policy_features_gather_kv(k, v, 2, 2, 1, 2, out);
    float raw[8] = {1, 1, -1, 1, 5, 5, 1, 0};
    double ss = 0;
    for (int i = 0; i < 8; i++)
        ss += raw[i] * raw[i];
    double rms = sqrt(ss / 8);
    for (int i = 0; i < 8; i++)
        cr_assert_float_eq(out[i], raw[i] / rms, 1e-6, "col %d", i);
    cr_assert_float_eq(out[8 + 4] / out[8 + 0], 3.0, 1e-6); /* v0 row 2 / k0 row 2 */
}

Test(policy_features, layout_names_and_json)
{
    char b[32];
    cr_assert_str_eq(policy_features_name(0, 3, b, sizeof b), "wq_mean_std");
    cr_assert_str_eq(policy_features_name(5, 3, b, sizeof b), "wk_log_norm");
    cr_assert_str_eq(policy_features_name(13, 3, b, sizeof b), "energy_k[1]");
    cr_assert_str_eq(policy_features_name(17, 3, b, sizeof b), "bound[2]");
    cr_assert_str_eq(policy_features_name(18, 3, b, sizeof b), "?");
    char *j = policy_features_layout_json(3);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"version\":1"));
    cr_assert(strstr(j, "\"bound[2]\"]"));
    free(j);
}

Test(policy_features, conv_input_rows_have_unit_rms)
{
    float x[3 * 5] = {1, 2, 3, 4, 5, 0, 0, 0, 0, 0, -10, 10, -10, 10, 0};
    float out[3 * 4];
    policy_features_conv_input(x, 3, 4, 5, out); /* C = 4 of ld 5 */
    double ss = 0;
    for (int c = 0; c < 4; c++)
        ss += out[c] * out[c];
    cr_assert_float_eq(ss / 4, 1.0, 1e-6);
    for (int c = 0; c < 4; c++)
        cr_assert_eq(out[4 + c], 0.0f);
    cr_assert_float_eq(out[8], -1.0, 1e-6);
}

Test(policy_reward, cosine_cases)
{
    float a[2 * 3] = {1, 2, 3, 0, 0, 0}, b[2 * 3] = {2, 4, 6, 0, 0, 0};
    cr_assert_float_eq(policy_reward_cosine(a, 3, b, 3, 2, 3), 1.0, 1e-12);
    float c[3] = {-1, -2, -3}, d[3] = {3, 0, -1}, z[3] = {0, 0, 0};
    cr_assert_float_eq(policy_reward_cosine(a, 3, c, 3, 1, 3), -1.0, 1e-12);
    cr_assert_float_eq(policy_reward_cosine(a, 3, d, 3, 1, 3), 0.0, 1e-12);
    cr_assert_float_eq(policy_reward_cosine(a, 3, z, 3, 1, 3), 0.0, 1e-12);
    cr_assert_float_eq(policy_reward_cosine(a, 3, b, 3, 0, 3), 1.0, 1e-12);
}

Test(policy_reward, band_energy_by_hand)
{
    double l[4] = {4, 3, 2, 1};
    cr_assert_float_eq(policy_reward_band(l, 4, 1, 3), sqrt(5.0 / 10.0), 1e-12);
    cr_assert_float_eq(policy_reward_band(l, 4, 3, 1), sqrt(5.0 / 10.0), 1e-12);
    cr_assert_float_eq(policy_reward_band(l, 4, 2, 2), 0.0, 1e-12);
    cr_assert_float_eq(policy_reward_band(l, 4, 0, 4), 1.0, 1e-12);
}

Test(policy_reward, layer_totals_follow_the_formula)
{
    PolicyRewardWeights w;
    policy_reward_defaults(&w);
    cr_assert_float_eq(w.alpha, 1.0, 0);
    cr_assert_float_eq(w.beta, 0.05, 0);
    cr_assert_float_eq(w.gamma, 0.1, 0);
    w.lm = 0.5;
    PolicyRewardTerms t[2] = {{.fidelity = 0.9, .flops_frac = 0.5, .band = 0.2, .lm = -0.1},
                              {.fidelity = 1.0, .flops_frac = 1.0, .band = 0.0, .lm = -0.1}};
    policy_reward_layer(&w, 0.6, t, 2); /* mean cost 0.75: excess 0.15, shares 2/3, 4/3 */
    cr_assert_float_eq(t[0].budget, 0.15 * 0.5 / 0.75, 1e-12);
    cr_assert_float_eq(t[1].budget, 0.15 * 1.0 / 0.75, 1e-12);
    cr_assert_float_eq(t[0].budget + t[1].budget, 2 * 0.15, 1e-12);
    cr_assert_float_eq(t[0].total, 0.9 - 0.05 * 0.5 - 0.1 * 0.2 - 0.1 - 0.05, 1e-12);
    cr_assert_float_eq(t[1].total, 1.0 - 0.05 - 0.2 - 0.05, 1e-12);
    policy_reward_layer(&w, 0.8, t, 2);
    cr_assert_eq(t[1].budget, 0.0);
}

Test(policy_reward, per_head_error_and_budget_price)
{
    PolicyRewardWeights w;
    policy_reward_defaults(&w);
    cr_assert_eq(w.err, 0.0);
    cr_assert_eq(w.price, 0.0);
    w.kappa = 0;
    w.err = 2.0;
    w.price = 0.5;
    PolicyRewardTerms t[2] = {{.fidelity = 0.9, .flops_frac = 0.5, .error = 0.3},
                              {.fidelity = 1.0, .flops_frac = 1.0, .error = 0.0}};
    /* budget 0.4: price 0.5 x (1/0.4 - 1) = 0.75 per unit of the head's cost */
    policy_reward_layer(&w, 0.4, t, 2);
    cr_assert_float_eq(t[0].total, 0.9 - 0.05 * 0.5 - 2.0 * 0.3 - 0.75 * 0.5, 1e-12);
    cr_assert_float_eq(t[1].total, 1.0 - 0.05 - 0.75, 1e-12);
    /* budget 1: no price; a lower budget never makes a cheaper head pay more
       relative to a dearer one */
    policy_reward_layer(&w, 1.0, t, 2);
    cr_assert_float_eq(t[1].total, 1.0 - 0.05, 1e-12);
    double gap_hi = t[1].total - t[0].total;
    policy_reward_layer(&w, 0.3, t, 2);
    double gap_lo = t[1].total - t[0].total;
    cr_assert_lt(gap_lo, gap_hi);
}

Test(policy_reward, error_power)
{
    PolicyRewardWeights w;
    policy_reward_defaults(&w);
    cr_assert_eq(w.err_power, 1.0);
    w.kappa = 0;
    w.err = 10.0;
    w.err_power = 2.0;
    PolicyRewardTerms t[3] = {{.fidelity = 1.0, .flops_frac = 0.5, .error = 0.1},
                              {.fidelity = 1.0, .flops_frac = 0.75, .error = 0.05},
                              {.fidelity = 1.0, .flops_frac = 1.0, .error = 0.0}};
    policy_reward_layer(&w, 1.0, t, 3);
    cr_assert_float_eq(t[0].total, 1.0 - 0.05 * 0.5 - 10.0 * 0.01, 1e-12);
    cr_assert_float_eq(t[1].total, 1.0 - 0.05 * 0.75 - 10.0 * 0.0025, 1e-12);
    cr_assert_float_eq(t[2].total, 1.0 - 0.05, 1e-12);
    cr_assert_float_eq(t[0].error, 0.1, 0); /* the term shown stays the error */
    /* squared: halving the error costs a quarter, where linear costs half */
    double sq = (1.0 - 0.05 * 0.75) - t[1].total;
    w.err_power = 1.0;
    policy_reward_layer(&w, 1.0, t, 3);
    cr_assert_float_eq((1.0 - 0.05 * 0.75) - t[1].total, 10.0 * 0.05, 1e-12);
    cr_assert_float_eq(sq, 10.0 * 0.05 * 0.05, 1e-12);
}

Test(policy_features, value_energy_v3_by_hand)
{
    double en[3] = {0.4, 0.7, 1.0}, bd[3] = {3.0, 1.0, 0.0}, gd[3] = {1.0, 0.25, 0.0};
    double ev[3] = {0.3, 0.0 / 0.0, 1.5};
    float ws[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(policy_features_count_v(3, 3), 24);
    cr_assert_eq(policy_features_version_of(24, 3), 3);
    cr_assert_eq(policy_features_version_of(21, 3), 2);
    cr_assert_eq(policy_features_version_of(25, 3), 0);
    float f2[21], f[24];
    policy_features_head_v(f2, 2, ws, 3, 4, 2, 0.6, 255, en, bd, gd, ev);
    policy_features_head_v(f, 3, ws, 3, 4, 2, 0.6, 255, en, bd, gd, ev);
    cr_assert_eq(memcmp(f, f2, sizeof f2), 0); /* version 3 extends version 2 */
    cr_assert_float_eq(f[21], 0.3, 1e-7);
    cr_assert_eq(f[22], 0.0f); /* NaN: none kept, as the keys' */
    cr_assert_eq(f[23], 1.0f); /* clamped */
    policy_features_head_v(f, 3, ws, 3, 4, 4, 1.0, 0, NULL, NULL, NULL, NULL);
    for (int i = 21; i < 24; i++)
        cr_assert_eq(f[i], 1.0f); /* an exact head keeps all */
    char b[32];
    cr_assert_str_eq(policy_features_name_v(21, 3, 3, b, sizeof b), "energy_v[0]");
    cr_assert_str_eq(policy_features_name_v(23, 3, 3, b, sizeof b), "energy_v[2]");
    cr_assert_str_eq(policy_features_name_v(21, 3, 2, b, sizeof b), "?");
    char *j = policy_features_layout_json_v(3, 3);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"version\":3"));
    cr_assert(strstr(j, "\"guard[2]\",\"energy_v[0]\""));
    cr_assert(strstr(j, "\"energy_v[2]\"]"));
    free(j);
}
