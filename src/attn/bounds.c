#include "attn/bounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double bounds_tail_fro(const double *lambda, int32_t d, int32_t r)
{
    double s = 0.0;
    for (int32_t k = d - 1; k >= (r > 0 ? r : 0); k--) /* small ones first */
        s += lambda[k] > 0.0 ? lambda[k] : 0.0;
    return sqrt(s);
}

double bounds_tail_spec(const double *lambda, int32_t d, int32_t r)
{
    if (r >= d)
        return 0.0;
    if (r < 0)
        r = 0;
    return lambda[r] > 0.0 ? sqrt(lambda[r]) : 0.0;
}

double bounds_stale_tail2(const double *G, const double *B, int32_t d, int32_t r)
{
    double tr = 0.0, kept = 0.0;
    for (int32_t i = 0; i < d; i++)
        tr += G[(size_t)i * d + i];
    for (int32_t j = 0; j < r && j < d; j++) {
        /* b_j^T G b_j */
        double s = 0.0;
        for (int32_t i = 0; i < d; i++) {
            double gi = 0.0;
            for (int32_t k = 0; k < d; k++)
                gi += G[(size_t)i * d + k] * B[(size_t)k * d + j];
            s += B[(size_t)i * d + j] * gi;
        }
        kept += s;
    }
    double t = tr - kept;
    return t > 0.0 ? t : 0.0;
}

double bounds_score(double q_res, double key_res2, int32_t d)
{
    return q_res * sqrt(key_res2 > 0.0 ? key_res2 : 0.0) / sqrt((double)d);
}

double bounds_softmax_l2(double ds2)
{
    double b = 0.5 * ds2;
    return b < sqrt(2.0) ? b : sqrt(2.0);
}

double bounds_softmax_l1(double ds_inf)
{
    if (!(ds_inf > 0.0))
        return 0.0;
    return 2.0 * tanh(0.5 * ds_inf); /* < 2 */
}

double bounds_output(double ds2, double v_spec, double v_rowmax, double p_tilde2,
                     double val_res2)
{
    double a = bounds_softmax_l2(ds2) * v_spec;
    double b = bounds_softmax_l1(ds2) * v_rowmax;
    double first = a < b ? a : b;
    double second = (p_tilde2 < 1.0 ? p_tilde2 : 1.0) * sqrt(val_res2 > 0.0 ? val_res2 : 0.0);
    return first + second;
}

double bounds_relative(double b, double norm_approx)
{
    if (b == 0.0)
        return 0.0;
    if (norm_approx > b)
        return b / (norm_approx - b);
    return INFINITY;
}

double bounds_band(const double *lambda, int32_t d, int32_t r, int32_t r2)
{
    return sqrt(bounds_band2(lambda, d, r, r2));
}

double bounds_band2(const double *lambda, int32_t d, int32_t r, int32_t r2)
{
    int32_t lo = r < r2 ? r : r2, hi = r < r2 ? r2 : r;
    if (lo < 0)
        lo = 0;
    if (hi > d)
        hi = d;
    double s = 0.0;
    for (int32_t k = lo; k < hi; k++)
        s += lambda[k] > 0.0 ? lambda[k] : 0.0;
    return s;
}

double bounds_sin_theta(const double *lambda, int32_t d, int32_t r, double e_norm)
{
    if (r >= d || r <= 0)
        return 0.0; /* the whole space (or nothing) cannot rotate */
    if (e_norm <= 0.0)
        return 0.0;
    double gap = lambda[r - 1] - lambda[r] - e_norm;
    if (gap <= 0.0)
        return 1.0;
    double b = e_norm / gap;
    return b < 1.0 ? b : 1.0;
}

double bounds_spec_upper(const double *A, int32_t d, int32_t squarings)
{
    size_t dd = (size_t)d * d;
    double *x = malloc(dd * sizeof *x), *y = malloc(dd * sizeof *y);
    double fro = 0.0;
    for (size_t i = 0; i < dd; i++)
        fro += A[i] * A[i];
    fro = sqrt(fro);
    if (!x || !y || fro == 0.0) {
        free(x), free(y);
        return fro;
    }
    /* Keep M = A^m / c with log-scale tracking to avoid overflow:
     * ||A||_2 <= (||M||_F c)^{1/m}. */
    double logc = log(fro);
    for (size_t i = 0; i < dd; i++)
        x[i] = A[i] / fro;
    double best = fro, m = 1.0;
    for (int32_t s = 0; s < squarings; s++) {
        for (int32_t i = 0; i < d; i++)
            for (int32_t j = 0; j < d; j++) {
                double acc = 0.0;
                for (int32_t k = 0; k < d; k++)
                    acc += x[(size_t)i * d + k] * x[(size_t)k * d + j];
                y[(size_t)i * d + j] = acc;
            }
        m *= 2.0;
        logc *= 2.0;
        double f = 0.0;
        for (size_t i = 0; i < dd; i++)
            f += y[i] * y[i];
        f = sqrt(f);
        if (f == 0.0)
            break;
        logc += log(f);
        for (size_t i = 0; i < dd; i++)
            x[i] = y[i] / f;
        /* ||A^m||_F = exp(logc) * ||x||_F = exp(logc). Round-off in the
         * squarings is relative ~ d u per step; inflate by (1 + 1e-12 d). */
        double b = exp(logc / m) * (1.0 + 1e-12 * d);
        if (b < best)
            best = b;
    }
    free(x), free(y);
    return best;
}

double bounds_spec_lower(const double *A, int32_t d, int32_t iters)
{
    double *x = malloc((size_t)d * sizeof *x), *y = malloc((size_t)d * sizeof *y);
    if (!x || !y) {
        free(x), free(y);
        return 0.0;
    }
    for (int32_t i = 0; i < d; i++)
        x[i] = 1.0 / sqrt((double)d) * (1.0 + 0.01 * i);
    double est = 0.0;
    for (int32_t it = 0; it < iters; it++) {
        double n = 0.0;
        for (int32_t i = 0; i < d; i++) {
            double acc = 0.0;
            for (int32_t k = 0; k < d; k++)
                acc += A[(size_t)i * d + k] * x[k];
            y[i] = acc;
        }
        double xn = 0.0;
        for (int32_t i = 0; i < d; i++)
            n += y[i] * y[i], xn += x[i] * x[i];
        n = sqrt(n);
        if (n == 0.0)
            break;
        est = n / sqrt(xn); /* ||A x|| / ||x|| <= ||A||_2: a lower estimate */
        for (int32_t i = 0; i < d; i++)
            x[i] = y[i] / n;
    }
    free(x), free(y);
    return est;
}

double bounds_roundoff(int64_t n, int32_t d, double scale)
{
    const double u = 5.9604644775390625e-08; /* 2^-24 */
    double nu = (double)(n + d) * u;
    double gamma = nu < 0.5 ? nu / (1.0 - nu) : 1.0;
    return 8.0 * gamma * scale;
}

double bounds_gram_allowance(double trace, int64_t n, int32_t d)
{
    const double u = 1.1102230246251565e-16; /* 2^-53 */
    double nu = (double)n * u;
    double gamma = nu < 0.5 ? nu / (1.0 - nu) : 1.0;
    return (gamma + 16.0 * d * u) * (trace > 0.0 ? trace : 0.0);
}

double bounds_sin_theta_residual(double gap, double off, double comp)
{
    double delta = gap - comp;
    if (delta <= 0.0)
        return 1.0;
    if (off <= 0.0)
        return 0.0;
    double b = off / delta;
    return b < 1.0 ? b : 1.0;
}

void bounds_prefix_min(double *b, int32_t n)
{
    double m = INFINITY;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(b[i]))
            continue;
        if (b[i] < m)
            m = b[i];
        else
            b[i] = m;
    }
}

void bounds_side_res2(const BoundsSide *s, int32_t d, double *res2)
{
    double allow = bounds_gram_allowance(s->trace_ref, s->n_ref, d);
    double kept = 0.0, kept_new = 0.0;
    for (int32_t r = 0; r < d; r++) {
        if (r > 0 && r <= s->w)
            kept += s->E[r - 1], kept_new += s->En[r - 1];
        double fresh = s->tot_new;
        double spec;
        if (r <= s->w) {
            fresh = s->tot_new - kept_new + BOUNDS_PROJ_SLACK * s->tot_new;
            if (fresh < 0.0)
                fresh = 0.0;
        }
        spec = (s->lam[r] > 0.0 ? s->lam[r] : 0.0) + allow + fresh;
        if (r <= s->w) {
            double fro = s->tot - kept + BOUNDS_PROJ_SLACK * s->tot;
            if (fro < 0.0)
                fro = 0.0;
            if (fro < spec)
                spec = fro;
        }
        res2[r] = spec;
    }
    res2[d] = 0.0;
    bounds_prefix_min(res2, d + 1);
}
