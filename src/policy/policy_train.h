/* policy_train.h: training the DR-RL policy with PPO on a frozen model.
 *
 * One PPO step:
 *   1. rollout: `episodes` windows of episode_len tokens at random offsets of
 *      the training text; each runs through the model with the attention
 *      core (attn_core.h) in drrl mode, one segment per forward call, the
 *      policy sampling ranks (policy_agent.h) under the safety mask at the
 *      step's threshold eps_t = max(eps_floor, eps_start * eps_decay^step);
 *      each episode draws its FLOP budget uniformly from the budget range;
 *   2. rewards per decision from the core's own measurements (fidelity of
 *      the head outputs against exact attention, executed FLOPs, band energy;
 *      policy_reward.h), optionally the LM term from an exact forward run
 *      beside it;
 *   3. GAE over each (episode, layer, head) trajectory and a PPO update
 *      (ppo.h).
 * Random draws come from PolicyRng streams derived from the seed alone:
 * the initial weights from the seed, episode e of step s (its offset,
 * budget and actions) from (seed, s, e), the minibatches of step s from
 * (seed, s). So the same inputs and seed give the same policy file, a run
 * resumed from a checkpoint continues exactly as an uninterrupted one would,
 * and neither depends on which process ran an episode.
 *
 * Across processes (cfg->dist, an MPI job; the engine sees only the PpoDist
 * callback): episode e runs on process e mod N; the per-episode reward sums
 * and every sample's advantages are exchanged; the PPO update adds the
 * per-sample gradients of all processes in minibatch order
 * (ppo_update_dist), so every process holds the same network after every
 * step and the result is byte-identical for any N, one process included.
 * Process 0 alone writes checkpoints; a stop asked on any process (the
 * callback's return) stops all of them after the same step.
 */
#ifndef DRRL_POLICY_TRAIN_H
#define DRRL_POLICY_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "policy/policy_net.h"
#include "policy/policy_reward.h"
#include "policy/ppo.h"
#include "base/status.h"

typedef struct PolicyTrainConfig {
    int32_t segment;       /* decision segment T (default 128) */
    int32_t r_min, r_step; /* rank grid (0: method_grid defaults) */
    int32_t episode_len;   /* tokens per episode, a multiple of T (default 8 T) */
    int32_t episodes;      /* episodes per PPO step (default 4) */
    int64_t steps;         /* total PPO steps (default 50) */
    uint64_t seed;
    double budget_lo, budget_hi;            /* budget range (default 0.3 .. 1.0) */
    double eps_start, eps_floor, eps_decay; /* safety threshold schedule */
    double rot_tol;                         /* attn_core's basis keep tolerance */
    PolicyRewardWeights reward;
    PpoConfig ppo;
    /* network shape (the rest follows from the model and the grid) */
    int32_t d_model, n_attn_head, d_ff, n_block, conv_kernel, conv_out;
    int32_t features; /* feature layout version of a new network (policy_features.h; 2) */
    double prior_weight, prior_energy; /* a new network's energy-rule prior
                                          (PolicyNetConfig; 0: none; needs layout 3) */
    int threads;                       /* forward worker threads (0: default) */
    int64_t checkpoint_every;          /* steps between checkpoints (0: only at the end) */
    const char *out_path;              /* policy file written at checkpoints and the end */
    unsigned out_flags;                /* base/fileio.h flags added to FILEIO_FORCE for out_path
                                          (FILEIO_UPDATE: it is the file resumed from) */
    const char *command;               /* recorded in the file */
    const PpoDist *dist;               /* processes sharing the work (NULL: this one alone) */
} PolicyTrainConfig;

void policy_train_config_default(PolicyTrainConfig *c);

typedef struct PolicyTrainProgress {
    int64_t step, steps; /* step just finished (1-based), total */
    double reward;       /* mean reward per decision */
    double fidelity, flops_frac, band, budget_excess, lm, error; /* mean terms */
    double attn_savings; /* 1 - executed / exact attention-core FLOPs */
    double entropy, approx_kl, value_loss, clip_frac;
    double eps;        /* safety threshold in force */
    int64_t decisions; /* in this step */
    int checkpoint;    /* a checkpoint was written after this step */
    double wall_s;     /* since the start of this run */
} PolicyTrainProgress;

/* Called after every step (on every process); return nonzero to stop (a
 * checkpoint is written first, and policy_train returns DRRL_E_INTERRUPTED). */
typedef int (*PolicyTrainCallback)(void *ctx, const PolicyTrainProgress *p);

/* Train on the token ids (n_ids >= episode_len + 1). resume_path: NULL, or a
 * checkpoint to continue from (same model shape and grid; its network, Adam
 * state, PRNG state and step count are restored, and training runs until
 * cfg->steps in total). Errors: DRRL_E_USAGE (bad config, text too short),
 * DRRL_E_INPUT (bad resume file, model mismatch), DRRL_E_IO, DRRL_E_NOMEM,
 * DRRL_E_INTERRUPTED. warn (may be NULL) receives a one-line warning when
 * the resume file was trained for another model of the same shape. */
DrrlStatus policy_train(const Model *m, const int32_t *ids, size_t n_ids,
                        const PolicyTrainConfig *cfg, const char *resume_path,
                        PolicyTrainCallback cb, void *cb_ctx, char *warn, size_t warn_n,
                        DrrlError *err);

#endif
