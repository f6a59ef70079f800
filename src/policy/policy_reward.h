/* policy_reward.h: the reward of one DR-RL rank decision.
 *
 * Per (layer, head, segment), with rank r chosen after rank r_prev
 * (doc/method.md, "The policy"; paper defaults alpha = 1.0,
 * beta = 0.05, gamma = 0.1):
 *   R = alpha * cos(O_exact, O_r)            fidelity of the head's output rows
 *     - beta  * FLOPs_r / FLOPs_exact        attention-core cost of the head
 *     - gamma * band(r_prev, r) / ||K||_F    rank-transition energy (paper Eq. 8)
 *     - kappa * max(0, c_mean - budget) * c_h / c_mean        (layer budget)
 *     + lm * (log p_r(next) - log p_exact(next))   (optional LM term)
 *     - err * f_l * (||O_exact - O_r|| / ||O_exact||)^err_power  (optional, per head;
 *                                            f_l: layer l's factor, 1 unless set)
 *     - price * (1 / budget - 1) * FLOPs_r / FLOPs_exact   (optional, per head)
 * with c_h = FLOPs_r/FLOPs_exact of head h and c_mean its mean over the
 * layer's heads. The budget term is ours: it is what makes the budget feature
 * matter. A layer whose mean cost exceeds the budget pays the overshoot, each
 * head in proportion to its share of the cost (the encoder sees all heads, so
 * it can learn to share the budget). The LM
 * term is the change in mean next-token log-likelihood over the segment,
 * shared by all decisions of the segment; 0 disables it.
 *
 * The last two terms (ours, both off by default) price each head on its own:
 * its measured relative output error (mean over the segment's rows) against
 * its own FLOPs at a price set by the budget, 0 at budget 1 and rising as
 * the budget falls. The best rank of a head is then the one where its error
 * curve meets the price, so heads whose spectra decay differently get
 * different ranks, and a lower budget never pays for a higher rank. The
 * cosine and the shared LM term give every head of a segment nearly the same
 * signal; these do not.
 *
 * err_power (ours, 1 by default): the error term is err * e^err_power for
 * the head's mean relative error e. With 1, a head's error curve is concave
 * in its FLOPs on a rank-aware model (the first step below exact costs the
 * most error), so the best rank of a head is a corner (exact or the lowest
 * allowed); the loss grows faster than the error (about as e^2 over ranks
 * 24, 20, 16 of the rank-aware model), and with 2 moderate ranks on many
 * heads pay less than low ranks on a few, as for the loss.
 */
#ifndef DRRL_POLICY_REWARD_H
#define DRRL_POLICY_REWARD_H

#include <stddef.h>
#include <stdint.h>

/* Most layers --err-layers can weigh (PolicyRewardWeights.err_layer). */
#define POLICY_REWARD_MAX_LAYERS 256

typedef struct PolicyRewardWeights {
    double alpha;     /* fidelity weight (1.0) */
    double beta;      /* FLOP weight (0.05) */
    double gamma;     /* band-energy weight (0.1) */
    double kappa;     /* budget hinge weight (1.0) */
    double lm;        /* LM reward weight (0: off) */
    double err;       /* weight of the head's measured relative output error (0: off) */
    double err_power; /* the error enters as error^err_power (1; 2: squared) */
    double price;     /* per-head FLOP price at budget 1/2; (1/b - 1) x at budget b (0: off) */
    /* Per-layer factors of the error term: layer l's heads pay
     * err * err_layer[l] * e^err_power (n_err_layer = 0: 1 for every layer;
     * else the model's layer count). What a head's output error does to the
     * loss depends on its layer (data/README.md, "Value energies in the
     * state"): the factors let the reward say so. */
    int n_err_layer;
    double err_layer[POLICY_REWARD_MAX_LAYERS];
} PolicyRewardWeights;

void policy_reward_defaults(PolicyRewardWeights *w);

/* The terms of one decision, as shown in progress bars and traces. */
typedef struct PolicyRewardTerms {
    double fidelity;   /* cos(O_exact, O_r), mean over the segment's rows */
    double flops_frac; /* FLOPs_r / FLOPs_exact for this head and segment */
    double band;       /* band energy / ||K||_F in [0, 1] */
    double budget;     /* the head's share of the layer's overshoot (see above) */
    double lm;         /* LM log-likelihood change (0 when unused) */
    double error;      /* measured relative output error, mean over the rows (0: exact) */
    double total;      /* the reward */
} PolicyRewardTerms;

/* Mean over rows of cos(a_i, b_i) for two (rows, d) matrices with row
 * strides lda, ldb; accumulated in double. A pair of zero rows counts as 1,
 * one zero row against a non-zero one as 0. rows == 0 gives 1. */
double policy_reward_cosine(const float *a, size_t lda, const float *b, size_t ldb, int rows,
                            int d);

/* band(r_prev, r) / ||K||_F = sqrt(sum_{min(r,r') <= k < max(r,r')} lambda_k /
 * sum_k lambda_k) from the key Gram eigenvalues (d, descending; negative
 * rounding clamped to 0). 0 when r == r_prev or the trace is 0. */
double policy_reward_band(const double *lambda, int d, int r_prev, int r);

/* Fill terms[h].total for the n_head decisions of one layer, given each
 * head's fidelity, flops_frac, band, lm and error already set in terms[h].
 * The error term's weight is w->err; the caller applies err_layer
 * (policy_reward_err_layer). */
void policy_reward_layer(const PolicyRewardWeights *w, double budget, PolicyRewardTerms *terms,
                         int n_head);

/* w with its error weight multiplied by layer l's factor (w itself when no
 * factors are set), into *out; returns out. */
const PolicyRewardWeights *policy_reward_err_layer(const PolicyRewardWeights *w, int l,
                                                   PolicyRewardWeights *out);

#endif
