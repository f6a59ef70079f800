/* policy_net.h: the DR-RL policy network, forward and backward by hand.
 *
 * One network serves every layer of a model. A call sees one layer at one
 * segment boundary: its n_head attention heads are the tokens of a small
 * Transformer encoder, so the decision for a head can depend on the other
 * heads of the layer (doc/method.md, "The policy").
 *
 *   conv_x (T, conv_in)  --causal conv1d, width k-->  Z (T, conv_out)
 *   s = mean_t tanh(Z)                                 (conv_out)
 *   x_h = [feat_h, s]                                  (n_head, n_feat + conv_out)
 *   e_h = x_h W_in + b_in + layer_emb[layer] + head_emb[h]      (n_head, D)
 *   n_block pre-LN blocks:  e += MHA(LN1(e));  e += W2 gelu(W1 LN2(e))
 *   f = LN_f(e);  logits = f W_actor + b_actor  (n_head, n_action)
 *                 value  = f w_critic + b_critic (n_head)
 *
 * The attention across heads is bidirectional (all heads of a layer are known
 * at the boundary). GELU is the tanh form (Hendrycks and Gimpel 2016, eq. in
 * sec. 2), LayerNorm as Ba et al. 2016 with eps 1e-5.
 *
 * Logits are returned raw: the safety mask (-inf on unsafe ranks) is applied
 * by the caller (ppo.h), so exploration and masking stay separate; a masked
 * action must get a zero gradient from the caller.
 *
 * All parameters live in one arena (params) described by a table of named
 * blocks; grads, and the Adam moments, use the same layout. The block names
 * are the tensor names of the policy file.
 */
#ifndef DRRL_POLICY_NET_H
#define DRRL_POLICY_NET_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy_rng.h"
#include "base/status.h"

typedef struct PolicyNetConfig {
    int n_feat;      /* static features per head (policy_features.h layout) */
    int conv_in;     /* channels of the layer input (the model's hidden size) */
    int conv_kernel; /* causal convolution width k, >= 1 */
    int conv_out;    /* convolution summary channels */
    int n_layer;     /* model layers: rows of the layer embedding */
    int n_head;      /* model heads per layer: encoder tokens, head embedding rows */
    int n_action;    /* size of the rank grid */
    int d_model;     /* encoder width D */
    int n_attn_head; /* encoder attention heads; divides d_model */
    int d_ff;        /* encoder MLP width */
    int n_block;     /* encoder blocks, >= 0 */
    /* The energy-rule prior (0: none): the logit of the rank energy:E would
     * take, the smallest grid rank keeping prior_energy of both the keys'
     * and the values' energy as the head's features give them (layout 3),
     * gets +prior_weight. A constant of the state, not a parameter: the
     * network learns a residual on the rule (policy_net_prior_action). */
    double prior_weight, prior_energy;
} PolicyNetConfig;

#define POLICY_NET_MAX_DIMS 3
#define POLICY_NET_NAME_MAX 32

/* The grid index the prior favours for one head's features feat (n_feat of
 * layout 3, n_action grid ranks): the first i with energy_k[i] and
 * energy_v[i] >= prior_energy, else the last (exact). */
int policy_net_prior_action(const PolicyNetConfig *c, const float *feat);

typedef struct PolicyNetBlock {
    char name[POLICY_NET_NAME_MAX]; /* e.g. "conv.w", "block0.qkv.w" */
    int ndim;
    size_t shape[POLICY_NET_MAX_DIMS];
    size_t offset; /* into params / grads, in floats */
    size_t numel;
} PolicyNetBlock;

typedef struct PolicyNet {
    PolicyNetConfig cfg;
    size_t n_params;
    float *params; /* (n_params) owned */
    float *grads;  /* (n_params) owned; backward accumulates here */
    int n_blocks;
    PolicyNetBlock *blocks; /* owned, in file order */
} PolicyNet;

/* Check a configuration: every size positive (n_block >= 0), d_model divisible
 * by n_attn_head, parameter count within limits. DRRL_E_USAGE naming the field. */
DrrlStatus policy_net_check_config(const PolicyNetConfig *cfg, DrrlError *err);

/* Allocate a network and initialise it from rng (scaled normal weights, unit
 * LayerNorm gains, a near-zero actor so the first policy is close to uniform
 * over the allowed ranks). Errors: DRRL_E_USAGE (config), DRRL_E_NOMEM. */
DrrlStatus policy_net_new(const PolicyNetConfig *cfg, PolicyRng *rng, PolicyNet **out,
                          DrrlError *err);
void policy_net_free(PolicyNet *net);

/* The block called NAME, or NULL. */
const PolicyNetBlock *policy_net_find(const PolicyNet *net, const char *name);

void policy_net_zero_grad(PolicyNet *net);

/* Activations of one forward pass, kept for the backward pass. One cache per
 * thread; it grows to the largest T it has seen. */
typedef struct PolicyNetCache PolicyNetCache;
PolicyNetCache *policy_net_cache_new(const PolicyNet *net);
void policy_net_cache_free(PolicyNetCache *c);

/* One layer's heads at one segment boundary. */
typedef struct PolicyNetInput {
    int layer;           /* 0 .. n_layer-1 */
    const float *feat;   /* (n_head, n_feat) */
    const float *conv_x; /* (T, conv_in), row-major; NULL allowed when T == 0 */
    int T;               /* segment length; 0 gives a zero summary */
} PolicyNetInput;

/* Forward pass. logits (n_head, n_action) and value (n_head) are written (raw,
 * unmasked). c keeps what backward needs. Errors: DRRL_E_USAGE (layer out of
 * range, T < 0), DRRL_E_NOMEM. */
DrrlStatus policy_net_forward(const PolicyNet *net, PolicyNetCache *c, const PolicyNetInput *in,
                              float *logits, float *value, DrrlError *err);

/* Backward pass of the last forward through c: given dL/dlogits (n_head,
 * n_action) and dL/dvalue (n_head), ADD dL/dparams into net->grads. Either
 * gradient may be NULL (taken as zero). */
void policy_net_backward(PolicyNet *net, PolicyNetCache *c, const float *dlogits,
                         const float *dvalue);

/* L2 norm of the gradient; if max_norm > 0 and the norm exceeds it, scale the
 * gradient down to max_norm. Returns the norm before clipping. */
double policy_net_clip_grad(PolicyNet *net, double max_norm);

/* Adam (Kingma and Ba 2015, Algorithm 1, bias-corrected), over the whole
 * arena. m and v have the net's layout and are saved in checkpoints. */
typedef struct PolicyAdam {
    size_t n;
    float *m, *v; /* owned */
    int64_t t;    /* steps taken */
    double lr, beta1, beta2, eps;
} PolicyAdam;

DrrlStatus policy_adam_init(PolicyAdam *a, const PolicyNet *net, double lr, DrrlError *err);
void policy_adam_done(PolicyAdam *a);
/* params -= lr * mhat / (sqrt(vhat) + eps), using net->grads. */
void policy_adam_step(PolicyAdam *a, PolicyNet *net);

#endif
