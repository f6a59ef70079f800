/* train_ops.h: forward and backward kernels of a Llama-style block, for
 * training (float32 storage, double accumulation where sums are long).
 *
 * Conventions: row-major arrays; N = B * T rows (batch row b, position t is
 * row b * T + t); C model width; D = n_head * head_dim; F the SwiGLU width.
 * Backward kernels ACCUMULATE (+=) into parameter gradients and into the
 * input gradient where stated, so residual branches add up without copies.
 * Every kernel takes a TrainPool (NULL: serial) and gives bit-identical
 * results for any thread count: work is split into independent items, and
 * reductions sum TRAIN_POOL_CHUNKS partials in a fixed order.
 *
 * References: RMSNorm (Zhang & Sennrich 2019, eq. 4, as in transformers'
 * LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps)); RoPE (Su et al. 2021,
 * eq. 34, in the rotate-half layout of transformers' apply_rotary_pos_emb:
 * dimension i pairs with i + head_dim/2, inv_freq_i = theta^(-2i/head_dim));
 * SwiGLU (Shazeer 2020: down(silu(gate x) * up x)).
 */
#ifndef DRRL_TRAIN_OPS_H
#define DRRL_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "train/train_pool.h"

/* y = x @ W^T (+ y if accumulate): x (N, in), W (out, in), y (N, out).
 * OpenBLAS sgemm: bit-identical results for a fixed OpenBLAS thread count. */
void train_ops_linear_forward(float *y, const float *x, const float *w, size_t n, size_t in,
                              size_t out, int accumulate);
/* dx (N, in) = dy @ W, or += if dx_accumulate (dx may be NULL: skipped);
 * dw (out, in) += dy^T @ x. */
void train_ops_linear_backward(float *dx, float *dw, const float *dy, const float *x,
                               const float *w, size_t n, size_t in, size_t out,
                               int dx_accumulate);

/* y (N, C) = rmsnorm(x) * w; rstd (N) receives 1/sqrt(mean(x^2) + eps). */
void train_ops_rmsnorm_forward(TrainPool *pool, float *y, float *rstd, const float *x,
                               const float *w, size_t n, size_t c, float eps);
/* dx (N, C) += dL/dx; dw (C) += dL/dw. scratch: TRAIN_POOL_CHUNKS * C doubles. */
void train_ops_rmsnorm_backward(TrainPool *pool, float *dx, float *dw, const float *dy,
                                const float *x, const float *w, const float *rstd, size_t n,
                                size_t c, double *scratch);

/* Rotate, in place, n_head heads of head_dim at the start of each row of x
 * (row stride `stride` floats); row r is at position pos0 + r % t.
 * cos_t, sin_t: (positions, head_dim / 2) tables from train_ops_rope_table. */
void train_ops_rope_forward(TrainPool *pool, float *x, size_t n, size_t t, size_t pos0,
                            size_t stride, size_t n_head, size_t head_dim, const float *cos_t,
                            const float *sin_t);
/* The transpose (inverse) rotation, applied in place to a gradient. */
void train_ops_rope_backward(TrainPool *pool, float *dx, size_t n, size_t t, size_t pos0,
                             size_t stride, size_t n_head, size_t head_dim, const float *cos_t,
                             const float *sin_t);
/* Fill cos_t, sin_t (positions, head_dim / 2): angle = pos * theta^(-2i/hd),
 * computed in double and rounded once. */
void train_ops_rope_table(float *cos_t, float *sin_t, size_t positions, size_t head_dim,
                          double theta);

/* Causal softmax attention, per batch row b and head h:
 *   O_h = softmax(Q_h K_h^T / sqrt(head_dim) + causal mask) V_h.
 * q, k, v: row r holds head h at [h*hd, (h+1)*hd) of a row of stride
 * qkv_stride; out (N, n_head*hd) has stride o_stride. p, if not NULL,
 * receives the probabilities (B, n_head, T, T) (needed by backward; entries
 * above the diagonal are 0). scratch: train_ops_attention_scratch(s, threads)
 * floats for a pool of `threads` threads.
 *
 * Two implementations of the same arithmetic: with use_blas = 0, each
 * (b, h) is one pool item running vectorised loops over its causal
 * triangle (best for short T, many items); with use_blas = 1, each (b, h)
 * is one pool item running single-threaded sgemm's over 256-row blocks of
 * the causal triangle, the softmax of a block done while it is in cache
 * (best for long T, where the loops would be memory-bound). Both give the
 * same bits for any thread count. */
typedef struct TrainAttnShape {
    size_t b, t, n_head, head_dim;
    size_t qkv_stride, o_stride;
    int use_blas;
} TrainAttnShape;
size_t train_ops_attention_scratch(const TrainAttnShape *s, int threads);
void train_ops_attention_forward(TrainPool *pool, const TrainAttnShape *s, float *out, float *p,
                                 const float *q, const float *k, const float *v,
                                 float *scratch);
/* dq, dk, dv (same layout as q, k, v) are OVERWRITTEN for the head columns. */
void train_ops_attention_backward(TrainPool *pool, const TrainAttnShape *s, float *dq,
                                  float *dk, float *dv, const float *dout, const float *p,
                                  const float *q, const float *k, const float *v,
                                  float *scratch);

/* Rank-aware attention: rank-r attention as drrl's engine runs it (attn/
 * attn_core.h), for training. Per sequence b and head h, the keys and values
 * are cut into decision segments of `segment` rows; for segment s >= 1 the
 * bases are the eigenvectors of the Grams G_K = K^T K and G_V = V^T V of the
 * rows of segments 0..s-1 (completed segments only: causal), and with rank r
 * and P_K = B_K[:, :r] B_K[:, :r]^T (likewise P_V) the segment's rows run
 *   scores  (q P_K) K^T * scale = (q B_K)(K B_K)^T * scale
 *   output  softmax(scores) V P_V = (P (V B_V)) B_V^T
 * which is the engine's kernel. Segment 0, and r >= head_dim, run exact.
 *
 * Training treats the projectors as constants in backward (the gradient
 * does not flow through the eigenvectors): with q' = q P_K and
 * O = attention(q', K, V) P_V, backward projects dO by P_V, runs the exact
 * attention backward on (q', K, V) and projects dq' by P_K.
 *
 * Storage: rank (b, n_head, n_seg) ranks; proj (b, n_head, n_seg, 2, hd, hd)
 * projectors (float, computed in double), [0] P_K and [1] P_V. */
typedef struct TrainLowRank {
    size_t segment, n_seg; /* n_seg = ceil(t / segment) */
    const int32_t *rank;
    float *proj;
    int at_full;      /* build projectors even at rank head_dim (tests: then P = I) */
    int key_basis_qk; /* 0: key basis from G_K (the engine's); 1: from
                         G_K / tr G_K + G_Q / tr G_Q of the same completed
                         rows (the Gram of [K; Q] with both scaled to unit
                         energy: a query-aware basis, for measurement) */
} TrainLowRank;
/* Whether (b, h, segment s) runs at reduced rank. */
int train_ops_lowrank_active(const TrainAttnShape *s, const TrainLowRank *lr, size_t b,
                             size_t h, size_t seg);
/* Compute the projectors of every active (b, h, segment) from k and v (and
 * q when key_basis_qk; else q may be NULL) (row layout of
 * train_ops_attention_forward). A failed eigensolve (LAPACK dsyevr,
 * as the engine) leaves that projector the identity. */
void train_ops_lowrank_bases(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                             const float *q, const float *k, const float *v);
/* In place: every row of head h in an active segment becomes row P (side 0:
 * P_K, 1: P_V). x rows have stride `stride` floats, head h at h * hd. */
void train_ops_lowrank_project(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                               float *x, size_t stride, int side);
/* Spectral tail of the rank-r bases (`drrl train-lm --ra-tail`): for every
 * active (b, h, segment s) with K_s, V_s that segment's key and value rows
 * (k, v in the row layout of train_ops_attention_forward: the rotated keys
 * the bases come from),
 *   f_K = ||K_s (I - P_K)||_F^2 / ||K_s||_F^2,  f_V likewise with P_V
 * (0 where ||K_s|| = 0). tail (b, n_head, n_seg, 2) receives f_K, f_V (0 for
 * inactive items); returns the number of active items. */
size_t train_ops_lowrank_tail(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                              const float *k, const float *v, double *tail);
/* dk, dv (same layout, stride qkv_stride) += coef * d(f_K + f_V)/d(K_s, V_s)
 * over the active items, the projectors constant (P symmetric idempotent):
 *   d f / dX = 2 (X (I - P) - f X) / ||X||_F^2. */
void train_ops_lowrank_tail_backward(TrainPool *pool, const TrainAttnShape *s,
                                     const TrainLowRank *lr, float *dk, float *dv,
                                     const float *k, const float *v, float coef);

/* h (N, F) = silu(g) * u where gu row r = [g (F) | u (F)]. */
void train_ops_swiglu_forward(TrainPool *pool, float *h, const float *gu, size_t n, size_t f);
/* dgu (N, 2F) OVERWRITTEN with [dg | du]. */
void train_ops_swiglu_backward(TrainPool *pool, float *dgu, const float *dh, const float *gu,
                               size_t n, size_t f);

/* Gather: x (N, C) = table[tokens[r]]. */
void train_ops_embedding_forward(TrainPool *pool, float *x, const float *table,
                                 const uint8_t *tokens, size_t n, size_t c);
/* dtable (V, C) += scatter of dx by token, rows summed in row order. */
void train_ops_embedding_backward(TrainPool *pool, float *dtable, const float *dx,
                                  const uint8_t *tokens, size_t n, size_t c);

/* Softmax cross-entropy of logits (N, V) against targets (N): returns the sum
 * over rows of -log p(target) in nats (double). If dlogits is not NULL it
 * receives (softmax - onehot) * grad_scale (it may alias logits). nll, if
 * not NULL, receives each row's -log p(target). */
double train_ops_crossentropy(TrainPool *pool, float *dlogits, double *nll, const float *logits,
                              const uint8_t *targets, size_t n, size_t v, float grad_scale);

#endif
