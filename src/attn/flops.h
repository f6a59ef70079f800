/* flops.h: the FLOP ledger, per (layer, head, category).
 *
 * Every kernel adds what it executed. A multiply-add counts 2 FLOPs; a
 * compare, add, multiply, divide or exp counts 1. The closed forms below are
 * the counting rules: kernels call them with the sizes they actually ran, and
 * tests compare the ledger against the same formulas evaluated by hand.
 *
 * Two ledgers are usually kept side by side: "executed" (what ran) and
 * "exact" (what exact attention would have run for the same tokens).
 * Work that belongs to a whole layer rather than one head (the model's linear
 * projections, the MLP, norms) is filed under head == FLOPS_LAYER.
 */
#ifndef DRRL_FLOPS_H
#define DRRL_FLOPS_H

#include <stdint.h>

#include "base/status.h"

typedef enum FlopCat {
    FLOPS_PROJ = 0,   /* model linear projections Q, K, V, O (per layer) */
    FLOPS_GRAM,       /* basis refresh: Gram update G += X^T X */
    FLOPS_EIG,        /* basis refresh: eigensolve (or SVD / pinv for baselines) */
    FLOPS_ROTATE,     /* basis refresh: cache rotation K B_new = (K B_old)(B_old^T B_new) */
    FLOPS_BASIS_PROJ, /* new q, k, v projected into the basis / feature space */
    FLOPS_SCORES,     /* q . k (inner dimension r, or head_dim when exact) */
    FLOPS_SOFTMAX,    /* softmax (or the kernel normaliser for baselines) */
    FLOPS_VALUE,      /* a . V (inner dimension r, or head_dim) */
    FLOPS_OUT_PROJ,   /* rank-r output back to head_dim: o~ B_V[:, :r]^T */
    FLOPS_MLP,        /* feed-forward block (per layer) */
    FLOPS_POLICY,     /* the rank policy network */
    FLOPS_OTHER,      /* embeddings, norms, residuals, lm head */
    FLOPS_GUARD,      /* the safety guard's estimate: exact and rank-r attention of
                         sampled rows of the completed segment (guard.h) */
    FLOPS_CAT_COUNT
} FlopCat;

#define FLOPS_LAYER (-1) /* head index for per-layer work */

/* Short name of a category ("scores", ...). */
const char *flops_cat_name(FlopCat c);

/* Whether a category belongs to the attention core: everything an attention
 * method changes (basis refresh, basis projection, scores, softmax, value
 * product, output back-projection) and the safety guard's estimate. */
int flops_cat_is_attn(FlopCat c);

typedef struct FlopLedger {
    int32_t n_layer, n_head;
    double *c; /* (n_layer, n_head + 1, FLOPS_CAT_COUNT); slot n_head = FLOPS_LAYER */
} FlopLedger;

DrrlStatus flops_init(FlopLedger *l, int32_t n_layer, int32_t n_head, DrrlError *err);
void flops_done(FlopLedger *l);
void flops_clear(FlopLedger *l);

/* Add n FLOPs. layer in [0, n_layer), head in [0, n_head) or FLOPS_LAYER.
 * Out-of-range indices are ignored (callers are engine code). */
void flops_add(FlopLedger *l, int32_t layer, int32_t head, FlopCat c, double n);

/* Sums; layer or head == -1 means "all" (for head, -1 also includes the
 * per-layer slot); cat == FLOPS_CAT_COUNT means all categories. */
double flops_get(const FlopLedger *l, int32_t layer, int32_t head, FlopCat c);
double flops_total(const FlopLedger *l);
double flops_attn(const FlopLedger *l); /* attention-core categories only */
double flops_head_attn(const FlopLedger *l, int32_t layer, int32_t head);

/* The one definition of a saving, used by every command, the trace and the
 * explorer: 1 - executed / exact (0 when nothing was counted). Two figures are
 * reported, each labelled:
 *   - whole model: every category (projections, MLP, norms, lm head, policy
 *     network and the attention core) over every token so far;
 *   - attention core: the categories of flops_cat_is_attn only (the policy
 *     network is not part of it).
 * At most 1; negative when the overheads of low rank exceed what it saved.
 * Per-token counts use each query's causal keys (positions 0..t), so a count
 * does not depend on how many tokens were computed in one call. */
static inline double flops_savings(double exact, double executed)
{
    return exact > 0.0 ? 1.0 - executed / exact : 0.0;
}

/* ---- closed-form counting rules (sizes as executed) ---- */

/* Softmax over n scores: max (1), subtract (1), exp (1), sum (1), scale (1). */
#define FLOPS_SOFTMAX_PER_ELEM 5.0

static inline double flops_dot(double n, double inner)
{
    return 2.0 * n * inner;
}
/* x (rows x in) times W (in x out). */
static inline double flops_linear(double rows, double in, double out)
{
    return 2.0 * rows * in * out;
}
static inline double flops_softmax(double n)
{
    return FLOPS_SOFTMAX_PER_ELEM * n;
}
/* Exact attention of one query over n keys, head_dim d: scores, softmax, value. */
static inline double flops_exact_attn(double n, double d)
{
    return 2.0 * n * d + flops_softmax(n) + 2.0 * n * d;
}
/* Rank-r attention of one query over n keys: q B[:, :r] (2dr, BASIS_PROJ),
 * scores 2nr, softmax, value 2nr, back-projection 2rd (OUT_PROJ). */
static inline double flops_lowrank_attn(double n, double r, double d)
{
    return 2.0 * d * r + 2.0 * n * r + flops_softmax(n) + 2.0 * n * r + 2.0 * r * d;
}
/* Upper triangle of X^T X for `rows` rows of width d: d(d+1)/2 multiply-adds
 * per row. */
static inline double flops_gram(double rows, double d)
{
    return rows * d * (d + 1.0);
}
/* Symmetric eigendecomposition with eigenvectors of a d x d matrix: the
 * standard count of about 9 d^3 for tridiagonal reduction, accumulation of the
 * transform and implicit QR (Golub & Van Loan, Matrix Computations, 4th ed.,
 * Sec. 8.3.6). LAPACK's dsyevr usually does less; this is a model count, the
 * same for every method, not a measurement. */
static inline double flops_eig(double d)
{
    return 9.0 * d * d * d;
}
/* Eigenvalues only: the tridiagonal reduction, 4 d^3 / 3 (Golub & Van Loan,
 * Alg. 8.3.1); the eigenvalues of the tridiagonal matrix cost O(d^2). */
static inline double flops_eigvals(double d)
{
    return 4.0 * d * d * d / 3.0;
}
/* Full SVD of an m x n matrix (m >= n) with both singular vector sets:
 * 4 m^2 n + 8 m n^2 + 9 n^3 (Golub & Van Loan, 4th ed., Fig. 8.6.1, R-SVD). */
static inline double flops_svd(double m, double n)
{
    return 4.0 * m * m * n + 8.0 * m * n * n + 9.0 * n * n * n;
}
/* Rotating a cache of t rows: M = B_old^T B_new (2 d^3), then t rows x M
 * (2 t d^2). */
static inline double flops_rotate(double t, double d)
{
    return 2.0 * d * d * d + 2.0 * t * d * d;
}
/* Projecting one new key (or value) row into the full basis: 2 d^2. */
static inline double flops_cache_proj(double d)
{
    return 2.0 * d * d;
}

#endif
