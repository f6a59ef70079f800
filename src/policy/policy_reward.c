#include "policy/policy_reward.h"

#include <math.h>

#include "attn/bounds.h"

void policy_reward_defaults(PolicyRewardWeights *w)
{
    w->alpha = 1.0;
    w->beta = 0.05;
    w->gamma = 0.1;
    w->kappa = 1.0;
    w->lm = 0.0;
    w->err = 0.0;
    w->err_power = 1.0;
    w->price = 0.0;
    w->n_err_layer = 0;
}

const PolicyRewardWeights *policy_reward_err_layer(const PolicyRewardWeights *w, int l,
                                                   PolicyRewardWeights *out)
{
    if (w->n_err_layer <= 0 || l < 0 || l >= w->n_err_layer)
        return w;
    *out = *w;
    out->err = w->err * w->err_layer[l];
    return out;
}

double policy_reward_cosine(const float *a, size_t lda, const float *b, size_t ldb, int rows,
                            int d)
{
    if (rows <= 0)
        return 1.0;
    double acc = 0;
    for (int i = 0; i < rows; i++) {
        const float *x = a + (size_t)i * lda, *y = b + (size_t)i * ldb;
        double xy = 0, xx = 0, yy = 0;
        for (int j = 0; j < d; j++) {
            xy += (double)x[j] * y[j];
            xx += (double)x[j] * x[j];
            yy += (double)y[j] * y[j];
        }
        if (xx == 0 && yy == 0)
            acc += 1.0;
        else if (xx > 0 && yy > 0)
            acc += xy / sqrt(xx * yy);
    }
    return acc / rows;
}

double policy_reward_band(const double *lambda, int d, int r_prev, int r)
{
    double total = bounds_band2(lambda, d, 0, d);
    return total > 0 ? sqrt(bounds_band2(lambda, d, r_prev, r) / total) : 0.0;
}

void policy_reward_layer(const PolicyRewardWeights *w, double budget, PolicyRewardTerms *terms,
                         int n_head)
{
    double mean = 0;
    for (int h = 0; h < n_head; h++)
        mean += terms[h].flops_frac;
    mean /= n_head > 0 ? n_head : 1;
    double excess = mean > budget ? mean - budget : 0.0;
    double price = budget > 0 && budget < 1 ? w->price * (1.0 / budget - 1.0) : 0.0;
    double pw = w->err_power > 0 ? w->err_power : 1.0;
    for (int h = 0; h < n_head; h++) {
        PolicyRewardTerms *t = &terms[h];
        /* Each head pays the layer's overshoot in proportion to its share of
         * the layer's cost (the shares sum to n_head, so the layer pays
         * n_head * excess in all). An equal split would give a head 1/n_head
         * of the effect of its own rank on the penalty, too weak a signal to
         * learn from (a policy trained that way collapsed to exact). */
        t->budget = mean > 0 ? excess * t->flops_frac / mean : excess;
        t->total = w->alpha * t->fidelity - w->beta * t->flops_frac - w->gamma * t->band -
                   w->kappa * t->budget + w->lm * t->lm -
                   w->err * (pw == 1.0 ? t->error : pow(t->error, pw)) - price * t->flops_frac;
    }
}
