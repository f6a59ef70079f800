/* classify.h: small deterministic classifiers for probing a frozen model:
 * L2-regularised logistic regression (Newton's method), multinomial naive
 * Bayes over bag-of-words counts, and seeded k-fold splits.
 *
 * Everything is deterministic: no random initialisation (Newton starts at
 * w = 0), and the folds come from a seeded Fisher-Yates shuffle.
 */
#ifndef DRRL_CLASSIFY_H
#define DRRL_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Binary logistic regression on standardised features.
 * Fit minimises  (1/n) sum_i log(1 + exp(-y~_i (w.z_i + b))) + (l2/2) ||w||^2
 * (y~ = +-1, z = (x - mean) / std with the training rows' mean and std; the
 * bias b is not penalised) by Newton's method with a Cholesky solve
 * (LAPACKE_dposv) of the (d+1) x (d+1) Hessian: the objective is strictly
 * convex for l2 > 0, so the minimiser is unique and Newton converges to it
 * (Boyd & Vandenberghe, Convex Optimization, 2004, Sec. 9.5); a step is
 * halved until the objective does not increase. */
typedef struct ClassifyLogreg {
    int32_t d;
    double *mean, *scale; /* (d): standardisation from the training rows */
    double *w;            /* (d): weights on standardised features */
    double b;             /* bias */
    int iters;            /* Newton iterations used */
} ClassifyLogreg;

/* X: (n, d) row-major, y: n labels in {0, 1} (both present), rows: NULL for
 * all n rows or the n_rows indices to train on. l2 > 0. DRRL_E_USAGE on bad
 * arguments, DRRL_E_NOMEM, DRRL_E_INTERNAL if the solve fails. */
DrrlStatus classify_logreg_fit(ClassifyLogreg *m, const float *X, const int *y, size_t n,
                               int32_t d, const size_t *rows, size_t n_rows, double l2,
                               DrrlError *err);
/* P(y = 1 | x) for one row x (d floats). */
double classify_logreg_prob(const ClassifyLogreg *m, const float *x);
void classify_logreg_done(ClassifyLogreg *m); /* zeroed m is fine */

/* Multinomial naive Bayes with Laplace smoothing alpha (> 0) over a
 * vocabulary of V word ids: doc i is the word ids words[off[i] ..
 * off[i+1]-1]. Trained on the docs in rows; only words seen in training
 * count (the vocabulary is the training fold's; unseen words are ignored
 * at prediction), so no test document leaks into the model. */
typedef struct ClassifyNB {
    int32_t V;
    double prior[2]; /* log P(class) */
    double *loglik;  /* (2, V): log P(word | class); -INFINITY-free */
    uint8_t *seen;   /* (V): word occurs in the training docs */
} ClassifyNB;

DrrlStatus classify_nb_fit(ClassifyNB *m, const int32_t *words, const size_t *off, const int *y,
                           int32_t V, const size_t *rows, size_t n_rows, double alpha,
                           DrrlError *err);
/* The predicted class (0 or 1; ties go to 1) of doc words[0..n-1]. */
int classify_nb_predict(const ClassifyNB *m, const int32_t *words, size_t n);
void classify_nb_done(ClassifyNB *m);

/* fold[i] in 0..k-1 for i < n: a seeded shuffle of 0..n-1 dealt round-robin
 * (fold sizes differ by at most one). k >= 2, n >= k, else DRRL_E_USAGE. */
DrrlStatus classify_folds(int *fold, size_t n, int k, uint64_t seed, DrrlError *err);

/* Mean and sample standard deviation (n - 1 in the denominator; 0 for n = 1)
 * of v[0..n-1]. */
void classify_mean_std(const double *v, size_t n, double *mean, double *std);

#endif
