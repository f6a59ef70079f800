/* policy_features.h: the state the DR-RL policy sees, per (layer, head), at
 * a segment boundary (doc/method.md, "The policy").
 *
 * The state has three parts:
 *  1. Static features, one vector per head, in the layout below (the ONE place
 *     it is defined; policy files record it by name and refuse another).
 *  2. The convolution input: the layer's input over the segment just
 *     completed, as the layer's attention sees it: row t is the
 *     concatenation of the keys and values of every kv head at position t
 *     (K = LN(x) W_K^T, V = LN(x) W_V^T: linear images of the layer input),
 *     divided by its RMS. It comes from the KV cache, so it is causal (only
 *     completed tokens) and needs nothing beyond what the attention core
 *     already holds, in training and at inference alike. The causal
 *     convolution over it and its weights belong to the network
 *     (policy_net.h) and are trained.
 *  3. Layer and head embeddings: learned tables inside the network, indexed
 *     by the layer and head numbers.
 *
 * Static layout (n_grid = size of the rank grid):
 *   0  wq_mean_std     mean / std of the head's W_Q slice (D x C)
 *   1  wq_log_var      log(variance + 1e-12)
 *   2  wq_log_norm     log(spectral norm estimate + 1e-12)
 *   3..5               the same for W_K (the head's kv head)
 *   6..8               the same for W_V
 *   9  prev_rank       previous rank / head_dim (1 = exact, also at start)
 *   10 budget          FLOP budget: target executed / exact attention FLOPs
 *   11 log_context     log2(1 + keys seen before the segment) / 16
 *   12 .. 12+n_grid-1  energy_k[i]: fraction of the key energy kept at grid
 *                      rank i (attn_core.h's AttnDecision.energy)
 *   then n_grid        bound[i]: b / (1 + b) for the proven relative tail
 *                      bound b at grid rank i (the larger of the key and value
 *                      bounds, AttnDecision.bound), squashed into [0, 1)
 *   version 2 only: then n_grid  guard[i]: g / (1 + g) for the guard's causal
 *                      estimate g of the head's relative output error at grid
 *                      rank i (AttnDecision.guard: what the safety mask
 *                      compares with eps; 1 where it is unknown)
 *   version 3 only: then n_grid  energy_v[i]: fraction of the value energy
 *                      kept at grid rank i (AttnDecision.energy_v). energy:E
 *                      keeps E of both sides; before version 3 the policy
 *                      saw the values only through bound[i]
 * All three are read, so older policy files keep working; drrl train-policy
 * writes version 2 unless told --features 1 or 3 (version 3 gained nothing
 * measurable with the shipped recipe: data/README.md). A policy file's
 * version follows from its n_feat.
 * The spectral norm is estimated by power iteration: it is a feature here,
 * not a bound (bounds.h has the certified upper bound where one is needed).
 */
#ifndef DRRL_POLICY_FEATURES_H
#define DRRL_POLICY_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

enum {
    POLICY_FEAT_WQ = 0, /* 3 stats of W_Q */
    POLICY_FEAT_WK = 3, /* 3 stats of W_K */
    POLICY_FEAT_WV = 6, /* 3 stats of W_V */
    POLICY_FEAT_PREV_RANK = 9,
    POLICY_FEAT_BUDGET = 10,
    POLICY_FEAT_CONTEXT = 11,
    POLICY_FEAT_ENERGY = 12, /* n_grid key energies, then n_grid value energies */
};

/* Newest version of the layout above; bump it on any change. */
#define POLICY_FEATURES_VERSION 3

/* Static features per head for a grid of n_grid ranks, layout version 1, 2
 * or 3: 2, 3 or 4 values per grid rank. */
static inline int policy_features_count_v(int n_grid, int version)
{
    return POLICY_FEAT_ENERGY + (version >= 3 ? 4 : version == 2 ? 3 : 2) * n_grid;
}

/* Version 1's count (policy files written before the guard feature). */
static inline int policy_features_count(int n_grid)
{
    return policy_features_count_v(n_grid, 1);
}

/* The layout version with n_feat features for n_grid ranks (n_grid >= 1):
 * 1, 2, 3, or 0 when none fits. */
static inline int policy_features_version_of(int n_feat, int n_grid)
{
    for (int v = 1; v <= POLICY_FEATURES_VERSION; v++)
        if (n_feat == policy_features_count_v(n_grid, v))
            return v;
    return 0;
}

/* Name of static feature i (e.g. "wk_log_norm", "energy_k[3]") into buf.
 * Returns buf. */
const char *policy_features_name(int i, int n_grid, char *buf, size_t n);
const char *policy_features_name_v(int i, int n_grid, int version, char *buf, size_t n);

/* The layout as a JSON array string [{"name":..., "index":...}, ...] plus the
 * version: {"version":1,"static":[...],"conv":"rms-normalised layer input"}.
 * Returned string is malloc'd (caller frees) or NULL when out of memory. */
char *policy_features_layout_json(int n_grid);
/* The same for layout version 1, 2 or 3 (policy_features_layout_json is 1). */
char *policy_features_layout_json_v(int n_grid, int version);

/* Statistics of one weight slice W (rows x cols, row stride ld): writes
 * out[0] = mean/std, out[1] = log(var + 1e-12), out[2] = log(||W||_2 + 1e-12)
 * with ||W||_2 estimated by `iters` power iterations on W^T W from a fixed
 * start vector (deterministic). Accumulates in double. */
void policy_features_weight_stats(const float *W, int rows, int cols, size_t ld, int iters,
                                  float out[3]);

/* Per-model static weight statistics: (n_layer, n_head, 9) floats, from the
 * model's Q, K, V projections. wq (L, H*D, C), wk and wv (L, K*D, C) as in
 * model.h; query head h reads kv head h / (H / K). stats must hold
 * n_layer * n_head * 9 floats. */
void policy_features_model_stats(const float *wq, const float *wk, const float *wv, int n_layer,
                                 int n_head, int n_kv_head, int head_dim, int d_model,
                                 float *stats);

/* Fill one head's static features (policy_features_count(n_grid) floats).
 * wstats: the head's 9 weight statistics; prev_rank in [1, head_dim]; budget
 * in (0, 1]; n_keys = tokens seen before the segment; energy, bound: n_grid
 * values each (key energy kept and relative tail bound per grid rank), or
 * NULL (energy 1, bound 0: an exact head). */
void policy_features_head(float *feat, const float *wstats, int n_grid, int head_dim,
                          int prev_rank, double budget, int64_t n_keys, const double *energy,
                          const double *bound);
/* The same for layout version 1, 2 or 3 (policy_features_count_v floats);
 * guard: n_grid guard estimates, or NULL (0: an exact head); energy_v: n_grid
 * value energies kept (version 3), or NULL (1: an exact head). */
void policy_features_head_v(float *feat, int version, const float *wstats, int n_grid,
                            int head_dim, int prev_rank, double budget, int64_t n_keys,
                            const double *energy, const double *bound, const double *guard,
                            const double *energy_v);

/* Convolution input width for a model: keys and values of every kv head. */
static inline int policy_features_conv_width(int n_kv_head, int head_dim)
{
    return 2 * n_kv_head * head_dim;
}

/* Each of T rows of C (row stride ld) divided by its RMS, into out (T, C);
 * rows of zero RMS stay zero. out may be x when ld == C. */
void policy_features_conv_input(const float *x, int T, int C, size_t ld, float *out);

/* Gather the conv input of one layer from its KV cache: rows t0 .. t0+T-1 of
 * every kv head's keys k[g] and values v[g] ((len, head_dim) each), laid out
 * as [k_0 | ... | k_{K-1} | v_0 | ... | v_{K-1}] per row, RMS-normalised.
 * out: (T, 2 K head_dim). */
void policy_features_gather_kv(const float *const *k, const float *const *v, int n_kv_head,
                               int head_dim, int64_t t0, int T, float *out);

#endif
