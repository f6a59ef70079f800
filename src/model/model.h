/* model.h: Hugging Face GPT-2 and Llama checkpoints, loaded and validated.
 *
 * model_load(DIR) reads DIR/config.json and DIR/model.safetensors, or the
 * shards listed in DIR/model.safetensors.index.json. Every tensor the
 * architecture needs must be present with the shape the config implies and a
 * float dtype (F32, F16, BF16, F64); values are converted to float32 into one
 * arena and must be finite. Tensors the model does not use (GPT-2's attn.bias
 * buffers, a tied lm_head.weight) are ignored.
 *
 * Errors are one line naming the file and the tensor, for example
 *   "m/model.safetensors: tensor 'model.layers.0.self_attn.q_proj.weight':
 *    shape [32, 16] but the config needs [32, 32]"
 * with DRRL_E_INPUT (bad or inconsistent files), DRRL_E_NOTFOUND (missing
 * directory or file), DRRL_E_IO, DRRL_E_NOMEM.
 *
 * Weight layout (llm.c style): all weights live in one float32 arena; each
 * pointer below is a view into it, with the shape in its comment, where
 *   L = n_layer, C = d_model, H = n_head, K = n_kv_head, D = head_dim,
 *   F = d_ff, V = vocab, P = n_ctx.
 * Per-layer tensors are stacked over layers: layer l of wq starts at
 * wq + l * (H*D*C). Every linear weight is stored [out, in] (nn.Linear's
 * layout; y = x W^T + b). GPT-2's Conv1D weights, stored [in, out] in the
 * checkpoint, are transposed on load, and its fused c_attn is split into
 * wq, wk, wv.
 */
#ifndef DRRL_MODEL_H
#define DRRL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef enum ModelArch { MODEL_ARCH_GPT2, MODEL_ARCH_LLAMA } ModelArch;

/* "GPT2LMHeadModel, LlamaForCausalLM": what an error about an unknown
 * architecture lists. */
#define MODEL_SUPPORTED_ARCHS "GPT2LMHeadModel, LlamaForCausalLM"

typedef struct ModelConfig {
    ModelArch arch;
    char arch_name[64];      /* as in config.json ("GPT2LMHeadModel") */
    int n_layer;             /* L */
    int n_head;              /* H: query heads */
    int n_kv_head;           /* K: key/value heads (GQA); H % K == 0; GPT-2: K = H */
    int d_model;             /* C */
    int head_dim;            /* D; GPT-2: C / H; Llama: config head_dim or C / H */
    int d_ff;                /* F: MLP inner size */
    int vocab;               /* V */
    int n_ctx;               /* P: n_positions / max_position_embeddings */
    double norm_eps;         /* layer_norm_epsilon / rms_norm_eps */
    double rope_theta;       /* Llama: rope_theta or rope_parameters.rope_theta */
    int tied;                /* lm_head shares the token embedding */
    int attn_bias;           /* q/k/v/o projections have biases (GPT-2 always) */
    int mlp_bias;            /* MLP projections have biases (GPT-2 always) */
    int scale_attn;          /* GPT-2 scale_attn_weights: scores / sqrt(D) */
    int scale_attn_by_layer; /* GPT-2 scale_attn_by_inverse_layer_idx */
    char dtype[8];           /* storage dtype of the weights: "F32", "BF16", ...,
                                or "mixed" */
    char tokenizer[16];      /* config "drrl_tokenizer" ("byte"), or "" */
} ModelConfig;

typedef struct Model {
    ModelConfig cfg;
    char *dir;        /* the directory loaded from */
    size_t n_params;  /* parameters as stored (a tied head counted once) */
    char hash[17];    /* MODEL_HASH_ALGO of the weights, 16 hex digits, or ""
                         until model_hash() first needs it: read it through that */
    char hash_v1[17]; /* the same for MODEL_HASH_ALGO_V1 (model_hash_by) */
    float *arena;     /* every weight below points into this */
    size_t arena_floats;

    float *tok_emb; /* (V, C)  wte / embed_tokens */
    float *pos_emb; /* (P, C)  GPT-2 wpe; NULL for Llama */
    float *ln1_w;   /* (L, C)  ln_1 / input_layernorm */
    float *ln1_b;   /* (L, C)  GPT-2 only, else NULL */
    float *wq;      /* (L, H*D, C) */
    float *bq;      /* (L, H*D)  or NULL */
    float *wk;      /* (L, K*D, C) */
    float *bk;      /* (L, K*D)  or NULL */
    float *wv;      /* (L, K*D, C) */
    float *bv;      /* (L, K*D)  or NULL */
    float *wo;      /* (L, C, H*D)  c_proj / o_proj */
    float *bo;      /* (L, C)  or NULL */
    float *ln2_w;   /* (L, C)  ln_2 / post_attention_layernorm */
    float *ln2_b;   /* (L, C)  GPT-2 only, else NULL */
    float *w_up;    /* (L, F, C)  GPT-2 c_fc / Llama up_proj */
    float *b_up;    /* (L, F)  or NULL */
    float *w_gate;  /* (L, F, C)  Llama gate_proj; NULL for GPT-2 */
    float *b_gate;  /* (L, F)  or NULL */
    float *w_down;  /* (L, C, F)  GPT-2 mlp.c_proj / Llama down_proj */
    float *b_down;  /* (L, C)  or NULL */
    float *lnf_w;   /* (C)  ln_f / norm */
    float *lnf_b;   /* (C)  GPT-2 only, else NULL */
    float *lm_head; /* (V, C)  == tok_emb when tied */
} Model;

/* Parse DIR/config.json only (no weights). Errors as model_load. */
DrrlStatus model_config_load(const char *dir, ModelConfig *cfg, DrrlError *err);

/* Load and validate a model directory. *out is owned by the caller. */
DrrlStatus model_load(const char *dir, Model **out, DrrlError *err);
void model_free(Model *m);

/* Allocate a model with the given config and zeroed weights (for benchmarks
 * and trainers that fill the weights themselves). cfg->arch and sizes must be
 * set; dtype, arch_name are filled in. Errors: DRRL_E_USAGE (bad config),
 * DRRL_E_NOMEM. Call model_rehash() after changing weights. */
DrrlStatus model_new(const ModelConfig *cfg, Model **out, DrrlError *err);
void model_rehash(Model *m);

/* The weights hash (16 hex digits), by the algorithm MODEL_HASH_ALGO names:
 * XXH64 of every 1 MiB of the float32 weights' bytes, then XXH64 of those
 * digests and the architecture and sizes (man/drrl-trace.5 gives it
 * exactly). The chunks are hashed on par_threads() threads; the value is
 * the same for any thread count and for any storage dtype of the same
 * values. Computed on the first call after a load or model_rehash() (about
 * a second for a 1B model on 2 cores), so commands that never show or
 * record it do not wait for it. The first call writes the cached string:
 * not from two threads at once. */
const char *model_hash(const Model *m);

/* Traces and policy files name the algorithm of the hash they record; files
 * written before drrl had MODEL_HASH_ALGO name none and hold a
 * MODEL_HASH_ALGO_V1 hash (FNV-1a 64 over the same bytes and sizes, one
 * chain of a multiply per byte: seconds for a 1B model). */
#define MODEL_HASH_ALGO "xxh64-tree"
#define MODEL_HASH_ALGO_V1 "fnv1a64"

/* The weights hash by a named algorithm (MODEL_HASH_ALGO or
 * MODEL_HASH_ALGO_V1; NULL for any other name), cached as model_hash's, so
 * that an old file is compared with the hash it holds. */
const char *model_hash_by(const Model *m, const char *algo);

/* Parameter count implied by a config (a tied head counted once). */
size_t model_param_count(const ModelConfig *cfg);

/* Short architecture name: "gpt2" or "llama". */
const char *model_arch_short(ModelArch a);

#endif
