/* train_model.h: a trainable Llama-style byte-level language model.
 *
 * Architecture (that of transformers' LlamaForCausalLM, which loads the
 * export bit for bit): token embedding (V, C); n_layer blocks of
 *   x = x + Wo attn(RoPE(Wq n1(x)), RoPE(Wk n1(x)), Wv n1(x))
 *   x = x + Wd (silu(Wg n2(x)) * Wu n2(x))
 * with RMSNorms n1, n2 (weights, no bias), causal softmax attention with
 * n_head heads of head_dim (as many key/value heads as query heads), then a
 * final RMSNorm and lm_head (V, C), tied to the embedding or not. No biases.
 *
 * Storage: every parameter lives in one arena (params), its gradient at the
 * same offset in another (grads); TrainModel.tensors names each with its
 * Hugging Face name and shape. Wq, Wk, Wv are stored stacked as one (3D, C)
 * matrix and Wg, Wu as one (2F, C) matrix, so one sgemm computes each; the
 * named tensors point at the slices.
 */
#ifndef DRRL_TRAIN_MODEL_H
#define DRRL_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "train/train_pool.h"

#define TRAIN_VOCAB 256

typedef struct TrainModelConfig {
    int n_layer;
    int d_model;       /* C */
    int n_head;        /* query heads = key/value heads */
    int head_dim;      /* even; D = n_head * head_dim */
    int d_ff;          /* F, SwiGLU width */
    int tied;          /* lm_head shares the embedding matrix */
    float rms_eps;     /* 1e-5 */
    double rope_theta; /* 10000 */
    int max_positions; /* max_position_embeddings written to config.json */
} TrainModelConfig;

/* A check of a configuration's ranges; DRRL_E_USAGE naming the field. */
DrrlStatus train_model_config_check(const TrainModelConfig *cfg, DrrlError *err);

typedef struct TrainTensor {
    char name[80]; /* Hugging Face name */
    float *w, *g;  /* into the params / grads arenas */
    int ndim;
    size_t shape[2];
    size_t numel;
    int decay; /* weight decay applies (matrices yes, norms no) */
} TrainTensor;

typedef struct TrainLayer {
    float *ln1;  /* (C) */
    float *wqkv; /* (3D, C): rows [0,D) Wq, [D,2D) Wk, [2D,3D) Wv */
    float *wo;   /* (C, D) */
    float *ln2;  /* (C) */
    float *wgu;  /* (2F, C): rows [0,F) gate, [F,2F) up */
    float *wd;   /* (C, F) */
} TrainLayer;

typedef struct TrainModel {
    TrainModelConfig cfg;
    size_t n_params;
    float *params, *grads;        /* arenas of n_params floats */
    TrainLayer *layers, *glayers; /* n_layer each: into params / grads */
    float *wte, *gwte;            /* (V, C) */
    float *lnf, *glnf;            /* (C) */
    float *lm_head, *glm_head;    /* (V, C); == wte / gwte when tied */
    TrainTensor *tensors;
    size_t n_tensors;
} TrainModel;

/* Allocate a model (parameters zero). Errors: DRRL_E_USAGE (bad config),
 * DRRL_E_NOMEM. */
DrrlStatus train_model_new(const TrainModelConfig *cfg, TrainModel **out, DrrlError *err);
void train_model_free(TrainModel *m);

/* Initialise from seed: matrices N(0, 0.02), the two residual output
 * projections (Wo, Wd) N(0, 0.02 / sqrt(2 n_layer)) (GPT-2, Radford et al.
 * 2019, section 2.3), norm weights 1. Deterministic. */
void train_model_init(TrainModel *m, uint64_t seed);

/* Copy src's parameter values into dst. Errors: DRRL_E_INPUT when the two
 * differ in shape (config). */
DrrlStatus train_model_copy_params(TrainModel *dst, const TrainModel *src, DrrlError *err);

/* The tensor called NAME, or NULL. */
TrainTensor *train_model_find(TrainModel *m, const char *name);

/* Activations for batches of b sequences of t tokens. for_training keeps what
 * backward needs (every layer's activations and the attention
 * probabilities); otherwise only one layer's buffers are kept and
 * train_model_backward must not be called. */
typedef struct TrainActs TrainActs;
DrrlStatus train_acts_new(const TrainModel *m, size_t b, size_t t, int for_training,
                          int n_threads, TrainActs **out, DrrlError *err);
void train_acts_free(TrainActs *a);
/* Rank-aware attention (train_ops.h, TrainLowRank) with decision segments
 * of `segment` rows: allocates the rank table, initially head_dim
 * everywhere (exact). DRRL_E_USAGE (segment 0), DRRL_E_NOMEM. */
DrrlStatus train_acts_set_lowrank(TrainActs *a, const TrainModel *m, size_t segment,
                                  DrrlError *err);
/* The rank table (n_layer, b, n_head, n_seg) to fill before a forward pass
 * (NULL without train_acts_set_lowrank); *n_seg receives n_seg. */
int32_t *train_acts_ranks(TrainActs *a, size_t *n_seg);
/* Key basis: 0 from the key Gram (the engine's), 1 query-aware (TrainLowRank
 * key_basis_qk). */
void train_acts_lowrank_basis(TrainActs *a, int qk);
/* Spectral-tail penalty of rank-aware training acts (train_ops.h,
 * train_ops_lowrank_tail): with lambda > 0, each training forward pass also
 * computes, over every active (layer, sequence, head, segment) item,
 *   penalty = lambda * mean over items of (f_K + f_V)
 * and the next backward adds its gradient (projectors constant) into the
 * key and value gradients before RoPE and the QKV projection. The penalty
 * is not part of train_model_forward's return value. lambda 0 (the
 * default): nothing computed. */
void train_acts_lowrank_tail(TrainActs *a, double lambda);
/* After a training forward with a tail penalty: the number of active items
 * (0: none, or no penalty), and in *tail_k, *tail_v (may be NULL) the mean
 * f_K and f_V over them (0 when none). Returns the penalty. */
double train_acts_tail(const TrainActs *a, size_t *n_items, double *tail_k, double *tail_v);
/* Tests: with frozen set, forward passes reuse the projectors of the last
 * unfrozen pass (so finite differences see fixed bases); at_full builds
 * projectors at rank head_dim too. */
void train_acts_lowrank_debug(TrainActs *a, int frozen, int at_full);

/* The logits (b * t, 256) of the last forward pass of non-training acts. */
const float *train_acts_logits(const TrainActs *a);

/* Forward pass over tokens (b * t bytes) with next-byte targets (b * t).
 * Positions restart at 0 in each sequence. Returns the summed cross-entropy
 * in nats over the rows r with score_from <= r % t (all rows: 0); nll, if not
 * NULL, receives every row's -log p(target). When the acts are for training
 * the logits gradient for the mean loss over all b * t rows is kept for
 * train_model_backward. */
double train_model_forward(TrainModel *m, TrainActs *a, TrainPool *pool, const uint8_t *tokens,
                           const uint8_t *targets, size_t score_from, double *nll);

/* Backward pass of the last forward: grads += d(mean loss)/d(params).
 * Call train_model_zero_grad first. */
void train_model_backward(TrainModel *m, TrainActs *a, TrainPool *pool, const uint8_t *tokens);

void train_model_zero_grad(TrainModel *m);

/* Global L2 norm of the gradients (double, summed in a fixed order). */
double train_model_grad_norm(const TrainModel *m, TrainPool *pool);

/* One AdamW step (Loshchilov & Hutter 2019, Algorithm 2) with decoupled
 * weight decay on tensors marked decay; grads are first scaled by
 * grad_scale (clipping). m1, m2: moment arenas of n_params floats; step is
 * 1-based for bias correction. */
typedef struct TrainAdamW {
    float lr, beta1, beta2, eps, weight_decay;
} TrainAdamW;
void train_model_adamw(TrainModel *m, TrainPool *pool, float *m1, float *m2,
                       const TrainAdamW *opt, long step, float grad_scale);

#endif
