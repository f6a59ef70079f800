#include "policy_reward.h"

#include <math.h>

void policy_reward_defaults(PolicyRewardWeights *w)
{
    w->alpha = 1.0;
    w->beta = 0.05;
    w->gamma = 0.1;
    w->kappa = 1.0;
    w->lm = 0.0;
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
    int lo = r < r_prev ? r : r_prev, hi = r < r_prev ? r_prev : r;
    if (lo < 0)
        lo = 0;
    if (hi > d)
        hi = d;
    double total = 0, band = 0;
    for (int k = 0; k < d; k++) {
        double l = lambda[k] > 0 ? lambda[k] : 0;
        total += l;
        if (k >= lo && k < hi)
            band += l;
    }
    return total > 0 ? sqrt(band / total) : 0.0;
}

void policy_reward_layer(const PolicyRewardWeights *w, double budget, PolicyRewardTerms *terms,
                         int n_head)
{
    double mean = 0;
    for (int h = 0; h < n_head; h++)
        mean += terms[h].flops_frac;
    mean /= n_head > 0 ? n_head : 1;
    double excess = mean > budget ? mean - budget : 0.0;
    for (int h = 0; h < n_head; h++) {
        PolicyRewardTerms *t = &terms[h];
        t->budget = excess;
        t->total = w->alpha * t->fidelity - w->beta * t->flops_frac - w->gamma * t->band -
                   w->kappa * excess + w->lm * t->lm;
    }
}
