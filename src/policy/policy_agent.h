/* policy_agent.h: the DR-RL policy plugged into the attention core.
 *
 * A PolicyAgent is the rank chooser (attn_core.h's AttnChooser) of the drrl
 * method. At each (layer, segment) decision it builds the state of every head
 * of the layer (policy_features.h), runs the policy network once for the
 * whole layer (its heads attend to each other), masks unsafe ranks with the
 * core's safety mask, and returns one grid rank per head: the argmax at
 * inference, a sample from the masked distribution in training (exploration
 * is separate from the mask: a masked rank is never sampled).
 *
 * In training the agent also records every decision into a PpoBuffer,
 * linking the decisions of one layer across the segments of an episode, and
 * a reward sink (policy_agent_sink) turns the core's TraceRecords of a
 * segment into the rewards of that segment's decisions (policy_reward.h).
 *
 * Usage (inference):
 *   policy_agent_load(path, model, segment, budget, &agent, warn, err);
 *   policy_agent_bind_cache(agent, forward_cache_k, forward_cache_v, fwd);
 *   attn_core_set_chooser(core, policy_agent_choose, agent);
 * where the core's rank grid must be the policy's (policy_agent_grid()).
 */
#ifndef DRRL_POLICY_AGENT_H
#define DRRL_POLICY_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn_core.h"
#include "model/model.h"
#include "policy/policy_file.h"
#include "policy/policy_net.h"
#include "policy/policy_reward.h"
#include "policy/ppo.h"
#include "base/status.h"
#include "trace/trace.h"

typedef struct PolicyAgent PolicyAgent;

/* A new agent for model m (which must outlive it) using net (borrowed: the
 * caller keeps and frees it; training updates it in place) with rank grid
 * grid[n_grid] (ascending, last == head_dim) and segment length T.
 * Errors: DRRL_E_INPUT when net's shape does not fit the model and grid
 * (layers, heads, conv width, features, actions), DRRL_E_NOMEM. */
DrrlStatus policy_agent_new(const Model *m, PolicyNet *net, const int32_t *grid, int n_grid,
                            int T, double budget, PolicyAgent **out, DrrlError *err);
void policy_agent_free(PolicyAgent *a);

/* Load a policy file for model m: checks the file (policy_file.h), the model
 * shape (another shape: DRRL_E_INPUT, exit 2) and the content hash (another
 * model of the same shape: a warning in warn, warn[0] == 0 otherwise). The
 * agent owns the loaded network. budget <= 0 takes the middle of the
 * policy's training budget range. */
DrrlStatus policy_agent_load(const char *path, const Model *m, int T, double budget,
                             PolicyAgent **out, char *warn, size_t warn_n, DrrlError *err);

/* For the session (two calls around attn_core_new):
 *   policy_agent_prepare(m, &cfg, budget, &agent, warn, n, err); before attn_core_new
 *   policy_agent_connect(agent, core, cache_k, cache_v, fwd); after it
 * prepare does nothing (and sets *out = NULL) unless cfg->method is drrl;
 * then it loads cfg->method.policy, "PATH" or "PATH@B" where B in (0, 1] is
 * the FLOP budget fed to the policy (overriding budget; the caller resolves
 * an empty PATH to DATA/POLICY_AGENT_DEFAULT_FILE; still empty:
 * DRRL_E_USAGE, as is a bad B), checks the
 * model as policy_agent_load does, and sets cfg->r_min / r_step to the
 * policy's grid; budget <= 0 takes the middle of the policy's training
 * range. connect binds the KV cache and installs the chooser. */
DrrlStatus policy_agent_prepare(const Model *m, AttnCoreConfig *cfg, double budget,
                                PolicyAgent **out, char *warn, size_t warn_n, DrrlError *err);
void policy_agent_connect(PolicyAgent *a, AttnCore *core, AttnCacheFn k, AttnCacheFn v,
                          const void *ctx);

/* The policy's rank grid (valid while the agent lives). */
const int32_t *policy_agent_grid(const PolicyAgent *a, int *n_grid);

/* The attention core's grid parameters (AttnCoreConfig.r_min, r_step) that
 * rebuild the policy's rank grid with method_grid(). */
void policy_agent_core_grid(const PolicyAgent *a, int32_t *r_min, int32_t *r_step);

/* Default policy file name inside drrl's data directory (drrl with no
 * :POLICY): DATA/POLICY_AGENT_DEFAULT_FILE. */
#define POLICY_AGENT_DEFAULT_FILE "policy.safetensors"

/* Where the agent reads the KV cache (the same functions the core uses). */
void policy_agent_bind_cache(PolicyAgent *a, AttnCacheFn k, AttnCacheFn v, const void *ctx);

/* The FLOP budget fed to the policy (fraction of exact attention FLOPs). */
void policy_agent_set_budget(PolicyAgent *a, double budget);
double policy_agent_budget(const PolicyAgent *a);

/* Training mode: sample actions from rng (NULL: argmax) and record decisions
 * into buf (NULL: no recording). Starting an episode forgets the trajectory
 * links (the next decision of each layer starts a new trajectory). */
void policy_agent_set_training(PolicyAgent *a, PolicyRng *rng, PpoBuffer *buf);
void policy_agent_begin_episode(PolicyAgent *a);

/* The AttnChooser: ctx is the PolicyAgent. */
DrrlStatus policy_agent_choose(void *ctx, const AttnDecision *dec, int32_t *rank, float *probs,
                               double *value, DrrlError *err);

/* FLOPs the policy executed so far (closed form per forward: the network's
 * multiply-adds x 2 plus the convolution), and decisions taken. */
double policy_agent_flops(const PolicyAgent *a);
int64_t policy_agent_decisions(const PolicyAgent *a);

/* ---- rewards ---------------------------------------------------------- */

/* The sink that accumulates the core's TraceRecords (attn_core_finish_call)
 * of the current segment: per (layer, head) mean fidelity, executed and
 * exact FLOPs, and the key spectrum. */
TraceSink policy_agent_sink(PolicyAgent *a);

/* After the last call of a segment: turn the accumulated records into the
 * rewards of the decisions taken for that segment (stored into the PpoBuffer
 * samples) and clear the accumulators. sum (may be NULL) receives the sums of
 * each term over the rewarded decisions; *n_rewarded their count. lm_delta
 * is the segment's LM term (mean log-likelihood change; 0 when unused). */
void policy_agent_end_segment(PolicyAgent *a, const PolicyRewardWeights *w, double lm_delta,
                              PolicyRewardTerms *sum, int *n_rewarded);

#endif
