/* logsumexp.h: the log-sum-exp of a row of logits in double, as the exact
 * losses compute it (forward_loss, the trainer's cross-entropy, the policy's
 * language-model reward): the row's maximum m subtracted, libm's exp, the
 * terms added in order. Header-only so it inlines into their loops; the
 * forward pass's own per-row NLL (forward_nll_rows) uses the fast exponential
 * instead and is not this. */
#ifndef DRRL_LOGSUMEXP_H
#define DRRL_LOGSUMEXP_H

#include <math.h>
#include <stddef.h>

/* log sum_j e^(x_j - m) over x[0..n), n >= 1, with *max = m = max_j x_j; the
 * log-sum-exp is m + the result. */
static inline double logsumexp_shifted(const float *x, size_t n, float *max)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        if (x[j] > m)
            m = x[j];
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += exp((double)x[j] - m);
    *max = m;
    return log(s);
}

#endif
