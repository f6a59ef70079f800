/* ppo.h: proximal policy optimisation for the DR-RL rank policy.
 *
 * PPO with the clipped surrogate objective (Schulman et al. 2017, "Proximal
 * Policy Optimization Algorithms", eq. 7), generalised advantage estimation
 * (Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE",
 * eq. 16), an entropy bonus and a value loss, optimised in minibatch epochs
 * with Adam. The loss per decision is
 *     L = -min(rho A, clip(rho, 1-c, 1+c) A) + value_coef * 0.5 (V - R)^2
 *         - ent_coef * entropy(pi),     rho = pi(a|s) / pi_old(a|s),
 * averaged over the decisions of a minibatch.
 *
 * One sample is one layer at one segment boundary: n_head decisions taken
 * together by one forward pass of the policy network (policy_net.h). A
 * trajectory is the sequence of decisions of one (episode, layer, head) over
 * segments; samples are linked to the next sample of the same (episode,
 * layer) for GAE.
 *
 * The safety mask and exploration are separate: the mask removes unsafe ranks
 * (their logits become -inf, so they are never sampled and get no gradient);
 * exploration is sampling from the masked distribution during training,
 * the argmax at inference. Every random draw comes from a PolicyRng, so
 * training is deterministic by seed.
 */
#ifndef DRRL_PPO_H
#define DRRL_PPO_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy_net.h"
#include "policy/policy_rng.h"
#include "base/status.h"

typedef struct PpoConfig {
    double clip;          /* c in the clipped objective (0.2) */
    double discount;      /* discount over segments (0.9) */
    double gae_lambda;    /* GAE lambda (0.95) */
    double ent_coef;      /* entropy bonus weight (0.01) */
    double value_coef;    /* value loss weight (0.5) */
    double lr;            /* Adam learning rate (3e-4) */
    double max_grad_norm; /* global gradient norm clip; <= 0 disables (0.5) */
    int epochs;           /* passes over the buffer per update (4) */
    int minibatch;        /* samples per minibatch (16) */
} PpoConfig;

void ppo_config_default(PpoConfig *c);

/* ---- masked categorical ---------------------------------------------- */

/* probs over the allowed actions (mask[j] != 0) from logits (n); masked
 * entries get probability 0. Returns log of the normaliser (logsumexp over the
 * allowed logits), or -INFINITY if the mask is empty (probs then all zero). */
double ppo_masked_softmax(const float *logits, const uint8_t *mask, int n, double *probs);

/* Sample an allowed action from probs (as from ppo_masked_softmax). */
int ppo_sample(const double *probs, int n, PolicyRng *rng);

/* The allowed action of largest logit (lowest index on ties), or -1 if none. */
int ppo_argmax(const float *logits, const uint8_t *mask, int n);

/* Act for one layer: forward the network, apply the mask, and pick an action
 * per head (sampled from rng when rng != NULL, else the argmax). Writes
 * action (n_head), logp (n_head, log-probability of the chosen action under
 * the masked policy), value (n_head) and, if probs != NULL, the masked
 * probabilities (n_head, n_action). Errors: DRRL_E_INTERNAL when a head's
 * mask is empty (the safety mask must always allow exact and the current
 * rank), and policy_net_forward's errors. */
DrrlStatus ppo_act(const PolicyNet *net, PolicyNetCache *cache, const PolicyNetInput *in,
                   const uint8_t *mask, PolicyRng *rng, int32_t *action, float *logp,
                   float *value, float *probs, DrrlError *err);

/* Loss of one decision and its gradients (see the header comment).
 * logits (n), mask (n): the current network's raw logits and the mask in
 * force when the action was taken. Writes dlogits (n; zero on masked entries)
 * and *dvalue; returns the loss. clipped (may be NULL) is set to 1 when the
 * ratio lies outside [1-c, 1+c]; *entropy and *logp_new likewise optional. */
double ppo_decision_loss(const PpoConfig *cfg, const float *logits, const uint8_t *mask, int n,
                         int action, double logp_old, double adv, double value, double ret,
                         float *dlogits, float *dvalue, int *clipped, double *entropy,
                         double *logp_new);

/* ---- rollout buffer -------------------------------------------------- */

typedef struct PpoSample {
    int layer;
    int T;            /* segment length of conv_x */
    float *feat;      /* (H, F) */
    float *conv_x;    /* (T, C) */
    uint8_t *mask;    /* (H, G), 1 = allowed */
    int32_t *action;  /* (H) */
    float *logp;      /* (H) behaviour log-probabilities */
    float *value;     /* (H) critic values when acting */
    float *reward;    /* (H) filled by the caller after acting */
    float *adv, *ret; /* (H) filled by ppo_compute_advantages */
    int next;         /* next sample of the same trajectory, or -1 (terminal) */
} PpoSample;

typedef struct PpoBuffer {
    int H, F, C, G; /* heads, features, conv channels, actions */
    int n, cap;
    PpoSample *s; /* owned, with every array */
} PpoBuffer;

DrrlStatus ppo_buffer_init(PpoBuffer *b, int H, int F, int C, int G, DrrlError *err);
void ppo_buffer_done(PpoBuffer *b);
/* Forget all samples (keeps the allocation). */
void ppo_buffer_clear(PpoBuffer *b);

/* Append a sample (everything is copied). prev is the index of the previous
 * sample of the same trajectory, or -1; its next is set to the new sample.
 * Rewards start at 0. Returns the new index in *idx.
 * Errors: DRRL_E_USAGE (prev out of range or already linked), DRRL_E_NOMEM. */
DrrlStatus ppo_buffer_add(PpoBuffer *b, int prev, int layer, const float *feat,
                          const float *conv_x, int T, const uint8_t *mask,
                          const int32_t *action, const float *logp, const float *value,
                          int *idx, DrrlError *err);

/* GAE: delta = r + discount V(next) - V, A = delta + discount lambda A(next),
 * with V(next) = A(next) = 0 at a terminal sample; ret = A + V. */
void ppo_compute_advantages(PpoBuffer *b, const PpoConfig *cfg);

typedef struct PpoStats {
    double policy_loss, value_loss, entropy, approx_kl, clip_frac, grad_norm;
    int minibatches;
} PpoStats;

/* Run cfg->epochs of minibatch updates over the buffer (advantages computed
 * beforehand, normalised here to zero mean and unit variance over the whole
 * buffer). Statistics are means over all minibatches of the last epoch.
 * The gradient of a minibatch is the sum of its samples' gradients, each
 * computed alone and added in minibatch order (so that the same sum comes
 * out however the samples are spread over processes: ppo_update_dist).
 * Errors: those of policy_net_forward. */
DrrlStatus ppo_update(PolicyNet *net, PolicyNetCache *cache, PolicyAdam *opt, PpoBuffer *b,
                      const PpoConfig *cfg, PolicyRng *rng, PpoStats *stats, DrrlError *err);

/* ---- across processes ------------------------------------------------ */

/* How training is spread over processes (an MPI job; the engine knows only
 * this). allgather: every process gives n bytes at mine and receives the
 * blocks of processes 0 .. size-1 concatenated in rank order in *all
 * (malloc'ed; the caller frees it) and their sizes in counts (size
 * entries). It must only move bytes. */
typedef struct PpoDist {
    int rank, size;
    DrrlStatus (*allgather)(void *ctx, const void *mine, size_t n, void **all, size_t *counts,
                            DrrlError *err);
    void *ctx;
} PpoDist;

/* d->allgather, or with d NULL (one process) a malloc'ed copy of mine with
 * counts[0] = n. Errors: the callback's, DRRL_E_NOMEM. */
DrrlStatus ppo_allgather(const PpoDist *d, const void *mine, size_t n, void **all,
                         size_t *counts, DrrlError *err);

/* The samples of one update spread over processes: sample g (0 .. n-1, the
 * order one process alone would have them in its buffer) is sample local[g]
 * of process owner[g]'s buffer; adv (n, H) holds every sample's advantages
 * (ppo_compute_advantages run by each process on its own buffer). */
typedef struct PpoLayout {
    int n;
    const int *owner, *local;
    const float *adv;
} PpoLayout;

/* ppo_update over samples spread by lay over the processes of dist (NULL:
 * one process). Every process runs it with the same lay, cfg and rng state:
 * the minibatches are drawn over all n samples; each process computes the
 * gradients of its own samples; they are exchanged (dist->allgather) and
 * every process adds all of them in minibatch order, clips and takes the
 * same Adam step. So the network after the update is byte-identical on
 * every process and for any number of processes. Errors: as ppo_update,
 * the allgather's, DRRL_E_INTERNAL when a sample's gradient is missing. */
DrrlStatus ppo_update_dist(PolicyNet *net, PolicyNetCache *cache, PolicyAdam *opt,
                           const PpoBuffer *b, const PpoLayout *lay, const PpoDist *dist,
                           const PpoConfig *cfg, PolicyRng *rng, PpoStats *stats,
                           DrrlError *err);

#endif
