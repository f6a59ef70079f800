/* policy_file.h: the DR-RL policy file (weights + what they were made for).
 *
 * A policy file is a safetensors file (safetensors.h). Tensors: one F32
 * tensor per network block, named as in policy_net.h ("conv.w", "block0.qkv.w",
 * ...); a training checkpoint also holds the Adam moments "adam.m" and
 * "adam.v" (flat, n_params each). The "__metadata__" object holds
 *   "format": "drrl-policy"
 *   "drrl_policy": a JSON document (as a string) with
 *     version, net (PolicyNetConfig fields), rank_grid, segment,
 *     features (policy_features_layout_json), reward {alpha, beta, gamma,
 *     kappa, lm}, budget_range [lo, hi], eps {start, floor, decay},
 *     model {arch, n_layer, n_head, n_kv_head, head_dim, d_model, hash,
 *     hash_algo (model.h's MODEL_HASH_ALGO; files without it hold a
 *     MODEL_HASH_ALGO_V1 hash)},
 *     training {steps, seed, adam_t, rng (4 hex words), command}.
 *
 * Loading validates everything before use: the format tag, the JSON fields and
 * their ranges, the feature layout against this build's (a policy computed on
 * other features is refused), each tensor's presence, dtype and shape, and
 * finite values. Errors name the file and what is wrong: DRRL_E_INPUT,
 * DRRL_E_NOTFOUND, DRRL_E_IO, DRRL_E_NOMEM.
 */
#ifndef DRRL_POLICY_FILE_H
#define DRRL_POLICY_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "policy/policy_net.h"
#include "policy/policy_reward.h"
#include "base/status.h"

#define POLICY_FILE_VERSION 1
#define POLICY_FILE_GRID_MAX 512

/* The model a policy was trained for. */
typedef struct PolicyModelShape {
    char arch[16]; /* "gpt2" / "llama" */
    int n_layer, n_head, n_kv_head, head_dim, d_model;
    char hash[17];      /* model.h's content hash (16 hex digits), or "" */
    char hash_algo[16]; /* its algorithm: MODEL_HASH_ALGO, or MODEL_HASH_ALGO_V1 in
                           files written before the algorithm was recorded */
} PolicyModelShape;

typedef struct PolicyMeta {
    int n_grid;
    int32_t grid[POLICY_FILE_GRID_MAX]; /* ascending, last == head_dim */
    int segment;                        /* segment length T trained with */
    PolicyRewardWeights reward;
    double budget_lo, budget_hi;            /* budgets sampled in training, (0, 1] */
    double eps_start, eps_floor, eps_decay; /* safety threshold schedule */
    PolicyModelShape model;
    int64_t steps; /* PPO iterations done */
    uint64_t seed;
    int64_t adam_t; /* Adam step count (checkpoints) */
    int has_rng;
    uint64_t rng[4];   /* training PRNG state, for --resume */
    char command[512]; /* the command line that made it */
} PolicyMeta;

/* Write net and meta (and, if adam != NULL, its moments) to path atomically
 * (temporary file + rename). Errors: DRRL_E_IO, DRRL_E_NOMEM, DRRL_E_USAGE. */
DrrlStatus policy_file_save(const char *path, const PolicyNet *net, const PolicyMeta *meta,
                            const PolicyAdam *adam, DrrlError *err);
/* The same under the output rule with base/fileio.h's flags (policy_file_save
 * is FILEIO_FORCE | FILEIO_UPDATE: it replaces any regular file, even one this
 * process read). */
DrrlStatus policy_file_save_flags(const char *path, const PolicyNet *net,
                                  const PolicyMeta *meta, const PolicyAdam *adam,
                                  unsigned flags, DrrlError *err);

/* Load path: *net is a new network (caller frees), meta is filled. If adam is
 * non-NULL and the file holds Adam moments, *adam is initialised from them and
 * *has_adam = 1; else *has_adam = 0 (and adam untouched). */
DrrlStatus policy_file_load(const char *path, PolicyNet **net, PolicyMeta *meta,
                            PolicyAdam *adam, int *has_adam, DrrlError *err);

/* m's shape and content hash by the algorithm hash_algo (a policy file's
 * model.hash_algo, so that an old file is compared with the hash it holds;
 * NULL for MODEL_HASH_ALGO); an algorithm model.h does not know leaves
 * hash "". Computing a hash reads every weight (model_hash_by). */
void policy_model_shape(const Model *m, const char *hash_algo, PolicyModelShape *out);

/* Check that a loaded policy fits a model: another shape (arch, layers,
 * heads, kv heads, head_dim, d_model) is DRRL_E_INPUT naming both shapes; the
 * same shape with another content hash is allowed but writes a one-line
 * warning into warn (warn[0] = 0 otherwise), and so is a hash whose
 * algorithm differs from model's or is unknown (no hash to compare). path
 * is used in messages. */
DrrlStatus policy_file_check_model(const char *path, const PolicyMeta *meta,
                                   const PolicyModelShape *model, char *warn, size_t warn_n,
                                   DrrlError *err);

#endif
