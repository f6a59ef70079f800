/* test_classify.c: logistic regression, naive Bayes and folds on constructed
 * data with known answers. */
#include <criterion/criterion.h>
#include <math.h>

#include "eval/classify.h"

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* Symmetric 1-D data: x = +1 with label 1 in a fraction q of the rows and
 * x = -1 mirrored. The bias is 0 by symmetry and the optimality condition
 * of the objective reduces to sigma(w) - q + l2 w = 0 (features standardise
 * to themselves: mean 0, std 1), solved here by bisection. */
Test(classify, logreg_known_optimum)
{
    enum { N = 40 };
    float X[N];
    int y[N];
    double q = 0.8, l2 = 0.1;
    for (int i = 0; i < N / 2; i++) {
        X[i] = 1.0f, y[i] = i < (int)(q * N / 2);
        X[N / 2 + i] = -1.0f, y[N / 2 + i] = !(i < (int)(q * N / 2));
    }
    double lo = 0.0, hi = 20.0;
    for (int k = 0; k < 200; k++) {
        double mid = 0.5 * (lo + hi);
        if (sig(mid) - q + l2 * mid > 0)
            hi = mid;
        else
            lo = mid;
    }
    ClassifyLogreg m;
    DrrlError err;
    cr_assert_eq(classify_logreg_fit(&m, X, y, N, 1, NULL, 0, l2, &err), DRRL_OK, "%s",
                 err.msg);
    cr_assert_float_eq(m.w[0], lo, 1e-7, "w %.10f, expected %.10f", m.w[0], lo);
    cr_assert_float_eq(m.b, 0.0, 1e-7);
    cr_assert_float_eq(classify_logreg_prob(&m, &X[0]), sig(lo), 1e-7);
    classify_logreg_done(&m);
    /* a stronger penalty shrinks the weight */
    cr_assert_eq(classify_logreg_fit(&m, X, y, N, 1, NULL, 0, 1.0, &err), DRRL_OK);
    cr_assert(m.w[0] > 0 && m.w[0] < lo);
    classify_logreg_done(&m);
}

/* The gradient vanishes at the fit on a 3-feature problem with an offset
 * and scaled features (standardisation and the bias both matter), and the
 * fit is invariant to the rows' order. */
Test(classify, logreg_stationary_and_row_subset)
{
    enum { N = 60, D = 3 };
    float X[N * D];
    int y[N];
    uint32_t s = 7;
    for (int i = 0; i < N; i++) {
        double t = 0;
        for (int j = 0; j < D; j++) {
            s = s * 1664525u + 1013904223u;
            X[i * D + j] = (float)(((s >> 8) % 1000) / 100.0 - 5.0) * (j + 1) + 3.0f * j;
            t += (j == 1 ? -1 : 1) * (X[i * D + j] - 3.0 * j) / (j + 1);
        }
        s = s * 1664525u + 1013904223u;
        y[i] = t + ((s >> 8) % 1000) / 250.0 - 2.0 > 0; /* noisy: not separable */
    }
    ClassifyLogreg m;
    DrrlError err;
    double l2 = 0.05;
    cr_assert_eq(classify_logreg_fit(&m, X, y, N, D, NULL, 0, l2, &err), DRRL_OK, "%s",
                 err.msg);
    double g[D + 1] = {0};
    for (int i = 0; i < N; i++) {
        double r = classify_logreg_prob(&m, &X[i * D]) - y[i];
        for (int j = 0; j < D; j++)
            g[j] += r * (X[i * D + j] - m.mean[j]) / m.scale[j] / N;
        g[D] += r / N;
    }
    for (int j = 0; j < D; j++)
        cr_assert(fabs(g[j] + l2 * m.w[j]) < 1e-9, "gradient %d: %g", j, g[j] + l2 * m.w[j]);
    cr_assert(fabs(g[D]) < 1e-9);
    /* the same rows given as a reversed index list: the same model */
    size_t rows[N];
    for (int i = 0; i < N; i++)
        rows[i] = (size_t)(N - 1 - i);
    ClassifyLogreg m2;
    cr_assert_eq(classify_logreg_fit(&m2, X, y, N, D, rows, N, l2, &err), DRRL_OK);
    for (int j = 0; j < D; j++)
        cr_assert_float_eq(m.w[j], m2.w[j], 1e-9);
    classify_logreg_done(&m), classify_logreg_done(&m2);
}

Test(classify, logreg_bad_input)
{
    float X[4] = {1, 2, 3, 4};
    int y1[4] = {1, 1, 1, 1}, y2[4] = {0, 1, 0, 1};
    ClassifyLogreg m;
    DrrlError err;
    cr_assert_eq(classify_logreg_fit(&m, X, y1, 4, 1, NULL, 0, 0.1, &err), DRRL_E_USAGE);
    cr_assert_eq(classify_logreg_fit(&m, X, y2, 4, 1, NULL, 0, 0.0, &err), DRRL_E_USAGE);
    size_t bad[2] = {0, 9};
    cr_assert_eq(classify_logreg_fit(&m, X, y2, 4, 1, bad, 2, 0.1, &err), DRRL_E_USAGE);
}

/* Hand-computed: class 1 = "a a b", class 0 = "c c b", alpha 1, training
 * vocabulary {a, b, c} (word 3 never occurs in training). */
Test(classify, nb_hand_computed)
{
    int32_t words[] = {0, 0, 1, 2, 2, 1, 3, 3, 3};
    size_t off[] = {0, 3, 6, 9};
    int y[] = {1, 0, 1};
    size_t rows[] = {0, 1}; /* doc 2 (word 3 only) is a test doc */
    ClassifyNB m;
    DrrlError err;
    cr_assert_eq(classify_nb_fit(&m, words, off, y, 4, rows, 2, 1.0, &err), DRRL_OK);
    cr_assert_float_eq(m.prior[1], log(0.5), 1e-12);
    cr_assert_float_eq(m.loglik[4 + 0], log(3.0 / 6.0), 1e-12); /* P(a|1) */
    cr_assert_float_eq(m.loglik[4 + 1], log(2.0 / 6.0), 1e-12); /* P(b|1) */
    cr_assert_float_eq(m.loglik[4 + 2], log(1.0 / 6.0), 1e-12); /* P(c|1) */
    cr_assert_float_eq(m.loglik[2], log(3.0 / 6.0), 1e-12);     /* P(c|0) */
    int32_t a[] = {0}, c[] = {2, 1}, u[] = {3, 3};
    cr_assert_eq(classify_nb_predict(&m, a, 1), 1);
    cr_assert_eq(classify_nb_predict(&m, c, 2), 0);
    cr_assert_eq(classify_nb_predict(&m, u, 2), 1); /* unseen words ignored: tie -> 1 */
    classify_nb_done(&m);
    int32_t badw[] = {7};
    size_t off2[] = {0, 1};
    size_t r0[] = {0};
    cr_assert_eq(classify_nb_fit(&m, badw, off2, y, 4, r0, 1, 1.0, &err), DRRL_E_USAGE);
}

Test(classify, folds)
{
    enum { N = 103, K = 10 };
    int f[N], g[N], h[N], cnt[K] = {0};
    DrrlError err;
    cr_assert_eq(classify_folds(f, N, K, 1, &err), DRRL_OK);
    cr_assert_eq(classify_folds(g, N, K, 1, &err), DRRL_OK);
    cr_assert_eq(classify_folds(h, N, K, 2, &err), DRRL_OK);
    int same = 1, diff = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(f[i] >= 0 && f[i] < K);
        cnt[f[i]]++;
        same &= f[i] == g[i];
        diff |= f[i] != h[i];
    }
    cr_assert(same && diff);
    for (int k = 0; k < K; k++)
        cr_assert(cnt[k] == 10 || cnt[k] == 11);
    cr_assert_eq(classify_folds(f, 5, 10, 1, &err), DRRL_E_USAGE);
    cr_assert_eq(classify_folds(f, 5, 1, 1, &err), DRRL_E_USAGE);
}

Test(classify, mean_std)
{
    double v[] = {2, 4, 4, 4, 5, 5, 7, 9}, m, s;
    classify_mean_std(v, 8, &m, &s);
    cr_assert_float_eq(m, 5.0, 1e-12);
    cr_assert_float_eq(s, sqrt(32.0 / 7.0), 1e-12);
    classify_mean_std(v, 1, &m, &s);
    cr_assert(m == 2.0 && s == 0.0);
}
