#include "policy/policy_features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const static_names[POLICY_FEAT_ENERGY] = {
    "wq_mean_std", "wq_log_var", "wq_log_norm", "wk_mean_std", "wk_log_var", "wk_log_norm",
    "wv_mean_std", "wv_log_var", "wv_log_norm", "prev_rank",   "budget",     "log_context",
};

const char *policy_features_name_v(int i, int n_grid, int version, char *buf, size_t n)
{
    if (i < 0 || i >= policy_features_count_v(n_grid, version))
        snprintf(buf, n, "?");
    else if (i < POLICY_FEAT_ENERGY)
        snprintf(buf, n, "%s", static_names[i]);
    else if (i < POLICY_FEAT_ENERGY + n_grid)
        snprintf(buf, n, "energy_k[%d]", i - POLICY_FEAT_ENERGY);
    else if (i < POLICY_FEAT_ENERGY + 2 * n_grid)
        snprintf(buf, n, "bound[%d]", i - POLICY_FEAT_ENERGY - n_grid);
    else if (i < POLICY_FEAT_ENERGY + 3 * n_grid)
        snprintf(buf, n, "guard[%d]", i - POLICY_FEAT_ENERGY - 2 * n_grid);
    else
        snprintf(buf, n, "energy_v[%d]", i - POLICY_FEAT_ENERGY - 3 * n_grid);
    return buf;
}

const char *policy_features_name(int i, int n_grid, char *buf, size_t n)
{
    return policy_features_name_v(i, n_grid, 1, buf, n);
}

char *policy_features_layout_json(int n_grid)
{
    return policy_features_layout_json_v(n_grid, 1);
}

char *policy_features_layout_json_v(int n_grid, int version)
{
    int nf = policy_features_count_v(n_grid, version);
    size_t cap = 256 + (size_t)nf * 24;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t len = (size_t)snprintf(s, cap, "{\"version\":%d,\"static\":[", version);
    for (int i = 0; i < nf; i++) {
        char nm[32];
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\"", i ? "," : "",
                                policy_features_name_v(i, n_grid, version, nm, sizeof nm));
    }
    snprintf(s + len, cap - len,
             "],\"conv\":\"completed segment's [keys | values] of all kv heads, rows / RMS; "
             "causal conv, tanh, mean over rows\"}");
    return s;
}

void policy_features_weight_stats(const float *W, int rows, int cols, size_t ld, int iters,
                                  float out[3])
{
    double sum = 0, sum2 = 0, n = (double)rows * cols;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double w = W[(size_t)i * ld + j];
            sum += w;
            sum2 += w * w;
        }
    double mean = sum / n, var = sum2 / n - mean * mean;
    if (var < 0)
        var = 0;
    /* Power iteration on W^T W: v <- W^T W v / ||W^T W v||; sigma^2 ~ ||W^T W v||
     * for unit v (Golub & Van Loan, 4th ed., Sec. 8.2.1). */
    double *v = malloc((size_t)cols * sizeof(double));
    double *u = malloc((size_t)rows * sizeof(double));
    double sigma = 0;
    if (v && u) {
        for (int j = 0; j < cols; j++)
            v[j] = 1.0 / sqrt((double)cols) * (1.0 + 0.01 * (j % 7)); /* fixed, non-special */
        for (int it = 0; it < iters; it++) {
            double nu = 0, nv = 0;
            for (int i = 0; i < rows; i++) {
                double a = 0;
                for (int j = 0; j < cols; j++)
                    a += W[(size_t)i * ld + j] * v[j];
                u[i] = a;
            }
            for (int j = 0; j < cols; j++)
                v[j] = 0;
            for (int i = 0; i < rows; i++) {
                nu += u[i] * u[i];
                for (int j = 0; j < cols; j++)
                    v[j] += W[(size_t)i * ld + j] * u[i];
            }
            for (int j = 0; j < cols; j++)
                nv += v[j] * v[j];
            nv = sqrt(nv);
            /* With unit v_prev: ||W v_prev||^2 = nu is the Rayleigh quotient. */
            sigma = sqrt(nu);
            if (nv == 0)
                break;
            for (int j = 0; j < cols; j++)
                v[j] /= nv;
        }
    }
    free(v);
    free(u);
    double sd = sqrt(var);
    out[0] = (float)(sd > 0 ? mean / sd : 0.0);
    out[1] = (float)log(var + 1e-12);
    out[2] = (float)log(sigma + 1e-12);
}

void policy_features_model_stats(const float *wq, const float *wk, const float *wv, int n_layer,
                                 int n_head, int n_kv_head, int head_dim, int d_model,
                                 float *stats)
{
    size_t D = (size_t)head_dim, C = (size_t)d_model;
    int group = n_head / (n_kv_head > 0 ? n_kv_head : 1);
    if (group < 1)
        group = 1;
    for (int l = 0; l < n_layer; l++)
        for (int h = 0; h < n_head; h++) {
            int g = h / group;
            float *o = stats + ((size_t)l * n_head + h) * 9;
            const float *q = wq + ((size_t)l * n_head + h) * D * C;
            const float *k = wk + ((size_t)l * n_kv_head + g) * D * C;
            const float *v = wv + ((size_t)l * n_kv_head + g) * D * C;
            policy_features_weight_stats(q, head_dim, d_model, C, 20, o);
            policy_features_weight_stats(k, head_dim, d_model, C, 20, o + 3);
            policy_features_weight_stats(v, head_dim, d_model, C, 20, o + 6);
        }
}

void policy_features_head(float *feat, const float *wstats, int n_grid, int head_dim,
                          int prev_rank, double budget, int64_t n_keys, const double *energy,
                          const double *bound)
{
    policy_features_head_v(feat, 1, wstats, n_grid, head_dim, prev_rank, budget, n_keys, energy,
                           bound, NULL, NULL);
}

void policy_features_head_v(float *feat, int version, const float *wstats, int n_grid,
                            int head_dim, int prev_rank, double budget, int64_t n_keys,
                            const double *energy, const double *bound, const double *guard,
                            const double *energy_v)
{
    memcpy(feat, wstats, 9 * sizeof(float));
    feat[POLICY_FEAT_PREV_RANK] = (float)prev_rank / (float)head_dim;
    feat[POLICY_FEAT_BUDGET] = (float)budget;
    feat[POLICY_FEAT_CONTEXT] = (float)(log2(1.0 + (double)(n_keys > 0 ? n_keys : 0)) / 16.0);
    for (int i = 0; i < n_grid; i++) {
        double e = energy ? energy[i] : 1.0, b = bound ? bound[i] : 0.0;
        if (!(e >= 0))
            e = 0; /* NaN guard */
        if (!(b >= 0))
            b = 0;
        feat[POLICY_FEAT_ENERGY + i] = (float)(e > 1 ? 1 : e);
        feat[POLICY_FEAT_ENERGY + n_grid + i] = isinf(b) ? 1.0f : (float)(b / (1.0 + b));
        if (version >= 2) {
            double g = guard ? guard[i] : 0.0;
            feat[POLICY_FEAT_ENERGY + 2 * n_grid + i] =
                !(g >= 0) || isinf(g) ? 1.0f : (float)(g / (1.0 + g)); /* NaN: unknown */
        }
        if (version >= 3) {
            double ev = energy_v ? energy_v[i] : 1.0;
            if (!(ev >= 0))
                ev = 0; /* NaN guard, as the keys' */
            feat[POLICY_FEAT_ENERGY + 3 * n_grid + i] = (float)(ev > 1 ? 1 : ev);
        }
    }
}

void policy_features_conv_input(const float *x, int T, int C, size_t ld, float *out)
{
    for (int t = 0; t < T; t++) {
        const float *r = x + (size_t)t * ld;
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += (double)r[c] * r[c];
        double rms = sqrt(ss / C);
        float inv = rms > 0 ? (float)(1.0 / rms) : 0.0f;
        for (int c = 0; c < C; c++)
            out[(size_t)t * C + c] = r[c] * inv;
    }
}

void policy_features_gather_kv(const float *const *k, const float *const *v, int n_kv_head,
                               int head_dim, int64_t t0, int T, float *out)
{
    size_t D = (size_t)head_dim, W = 2 * (size_t)n_kv_head * D;
    for (int t = 0; t < T; t++) {
        float *row = out + (size_t)t * W;
        for (int g = 0; g < n_kv_head; g++) {
            memcpy(row + g * D, k[g] + (size_t)(t0 + t) * D, D * sizeof(float));
            memcpy(row + (n_kv_head + g) * D, v[g] + (size_t)(t0 + t) * D, D * sizeof(float));
        }
    }
    policy_features_conv_input(out, T, (int)W, W, out);
}
