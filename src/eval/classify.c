/* classify.c: logistic regression, naive Bayes and k-fold splits (see
 * classify.h). */
#include "config.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "eval/classify.h"

/* log(1 + exp(x)) without overflow */
static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* The objective at theta (d + 1 entries, bias last) over standardised rows Z. */
static double logreg_obj(const double *Z, const int *y, size_t n, int32_t d, const double *th,
                         double l2)
{
    size_t D = (size_t)d + 1;
    double f = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < D; j++)
            s += th[j] * Z[i * D + j];
        f += softplus(y[i] ? -s : s);
    }
    double r = 0.0;
    for (int32_t j = 0; j < d; j++)
        r += th[j] * th[j];
    return f / (double)n + 0.5 * l2 * r;
}

DrrlStatus classify_logreg_fit(ClassifyLogreg *m, const float *X, const int *y, size_t n,
                               int32_t d, const size_t *rows, size_t n_rows, double l2,
                               DrrlError *err)
{
    memset(m, 0, sizeof *m);
    if (!rows)
        n_rows = n;
    if (d < 1 || n_rows < 2 || !(l2 > 0.0))
        return drrl_error(err, DRRL_E_USAGE, "logreg: need d >= 1, >= 2 rows and l2 > 0");
    size_t D = (size_t)d + 1, n1 = 0;
    for (size_t k = 0; k < n_rows; k++) {
        size_t i = rows ? rows[k] : k;
        if (i >= n || (y[i] != 0 && y[i] != 1))
            return drrl_error(err, DRRL_E_USAGE, "logreg: row %zu: bad index or label", k);
        n1 += (size_t)y[i];
    }
    if (n1 == 0 || n1 == n_rows)
        return drrl_error(err, DRRL_E_USAGE, "logreg: the training rows hold one class only");
    m->d = d;
    m->mean = calloc((size_t)d, sizeof *m->mean);
    m->scale = calloc((size_t)d, sizeof *m->scale);
    m->w = calloc((size_t)d, sizeof *m->w);
    double *Z = malloc(n_rows * D * sizeof *Z), *th = calloc(D, sizeof *th);
    double *H = malloc(D * D * sizeof *H), *g = malloc(D * sizeof *g);
    double *tn = malloc(D * sizeof *tn);
    int *yy = malloc(n_rows * sizeof *yy);
    DrrlStatus st = DRRL_OK;
    if (!m->mean || !m->scale || !m->w || !Z || !th || !H || !g || !tn || !yy) {
        st = drrl_error(err, DRRL_E_NOMEM, "logreg: out of memory");
        goto done;
    }
    /* standardise with the training rows' mean and (population) std */
    for (size_t k = 0; k < n_rows; k++) {
        const float *x = X + (rows ? rows[k] : k) * (size_t)d;
        for (int32_t j = 0; j < d; j++)
            m->mean[j] += x[j];
    }
    for (int32_t j = 0; j < d; j++)
        m->mean[j] /= (double)n_rows;
    for (size_t k = 0; k < n_rows; k++) {
        const float *x = X + (rows ? rows[k] : k) * (size_t)d;
        for (int32_t j = 0; j < d; j++)
            m->scale[j] += (x[j] - m->mean[j]) * (x[j] - m->mean[j]);
    }
    for (int32_t j = 0; j < d; j++) {
        double s = sqrt(m->scale[j] / (double)n_rows);
        m->scale[j] = s > 1e-12 ? s : 1.0;
    }
    for (size_t k = 0; k < n_rows; k++) {
        size_t i = rows ? rows[k] : k;
        const float *x = X + i * (size_t)d;
        for (int32_t j = 0; j < d; j++)
            Z[k * D + (size_t)j] = (x[j] - m->mean[j]) / m->scale[j];
        Z[k * D + (size_t)d] = 1.0;
        yy[k] = y[i];
    }
    double f = logreg_obj(Z, yy, n_rows, d, th, l2);
    for (m->iters = 0; m->iters < 100; m->iters++) {
        memset(H, 0, D * D * sizeof *H);
        memset(g, 0, D * sizeof *g);
        for (size_t k = 0; k < n_rows; k++) {
            const double *z = Z + k * D;
            double s = 0.0;
            for (size_t j = 0; j < D; j++)
                s += th[j] * z[j];
            double p = sigmoid(s), r = p - yy[k], c = p * (1.0 - p);
            for (size_t a = 0; a < D; a++) {
                g[a] += r * z[a];
                double cz = c * z[a];
                for (size_t b = a; b < D; b++)
                    H[a * D + b] += cz * z[b];
            }
        }
        for (size_t a = 0; a < D; a++) {
            g[a] /= (double)n_rows;
            for (size_t b = a; b < D; b++)
                H[a * D + b] /= (double)n_rows, H[b * D + a] = H[a * D + b];
        }
        for (int32_t j = 0; j < d; j++)
            g[j] += l2 * th[j], H[(size_t)j * D + (size_t)j] += l2;
        H[D * D - 1] += 1e-12;
        if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)D, 1, H, (lapack_int)D, g, 1) !=
            0) {
            st =
                drrl_error(err, DRRL_E_INTERNAL, "logreg: Newton system not positive definite");
            goto done;
        }
        double step = 1.0, fn = f, dmax = 0.0;
        for (int h = 0; h < 40; h++, step *= 0.5) {
            for (size_t j = 0; j < D; j++)
                tn[j] = th[j] - step * g[j];
            fn = logreg_obj(Z, yy, n_rows, d, tn, l2);
            if (fn <= f)
                break;
        }
        if (!(fn <= f))
            break; /* no decrease along the Newton direction: at the optimum */
        for (size_t j = 0; j < D; j++)
            dmax = fmax(dmax, fabs(tn[j] - th[j]));
        memcpy(th, tn, D * sizeof *th);
        f = fn;
        if (dmax < 1e-10)
            break;
    }
    for (int32_t j = 0; j < d; j++)
        m->w[j] = th[j];
    m->b = th[d];
done:
    DRRL_FREE(Z, th, H, g, tn, yy);
    if (st != DRRL_OK)
        classify_logreg_done(m);
    return st;
}

double classify_logreg_prob(const ClassifyLogreg *m, const float *x)
{
    double s = m->b;
    for (int32_t j = 0; j < m->d; j++)
        s += m->w[j] * ((x[j] - m->mean[j]) / m->scale[j]);
    return sigmoid(s);
}

void classify_logreg_done(ClassifyLogreg *m)
{
    free(m->mean), free(m->scale), free(m->w);
    memset(m, 0, sizeof *m);
}

DrrlStatus classify_nb_fit(ClassifyNB *m, const int32_t *words, const size_t *off, const int *y,
                           int32_t V, const size_t *rows, size_t n_rows, double alpha,
                           DrrlError *err)
{
    memset(m, 0, sizeof *m);
    if (V < 1 || n_rows < 1 || !(alpha > 0.0))
        return drrl_error(err, DRRL_E_USAGE, "naive Bayes: need V >= 1, rows and alpha > 0");
    m->V = V;
    m->loglik = calloc(2 * (size_t)V, sizeof *m->loglik);
    m->seen = calloc((size_t)V, 1);
    if (!m->loglik || !m->seen) {
        classify_nb_done(m);
        return drrl_error(err, DRRL_E_NOMEM, "naive Bayes: out of memory");
    }
    double nc[2] = {0, 0}, tot[2] = {0, 0};
    for (size_t k = 0; k < n_rows; k++) {
        size_t i = rows[k];
        int c = y[i] ? 1 : 0;
        nc[c] += 1.0;
        for (size_t t = off[i]; t < off[i + 1]; t++) {
            int32_t w = words[t];
            if (w < 0 || w >= V) {
                classify_nb_done(m);
                return drrl_error(err, DRRL_E_USAGE, "naive Bayes: word id %d outside 0..%d",
                                  (int)w, (int)V - 1);
            }
            m->loglik[(size_t)c * (size_t)V + (size_t)w] += 1.0;
            m->seen[w] = 1;
            tot[c] += 1.0;
        }
    }
    double vt = 0.0;
    for (int32_t w = 0; w < V; w++)
        vt += m->seen[w];
    for (int c = 0; c < 2; c++) {
        /* a class absent from training gets log(0): never predicted */
        m->prior[c] = nc[c] > 0 ? log(nc[c] / (double)n_rows) : -HUGE_VAL;
        for (int32_t w = 0; w < V; w++) {
            double *l = &m->loglik[(size_t)c * (size_t)V + (size_t)w];
            *l = log((*l + alpha) / (tot[c] + alpha * vt));
        }
    }
    return DRRL_OK;
}

int classify_nb_predict(const ClassifyNB *m, const int32_t *words, size_t n)
{
    double s[2] = {m->prior[0], m->prior[1]};
    for (size_t t = 0; t < n; t++) {
        int32_t w = words[t];
        if (w < 0 || w >= m->V || !m->seen[w])
            continue;
        s[0] += m->loglik[w], s[1] += m->loglik[(size_t)m->V + (size_t)w];
    }
    return s[1] >= s[0];
}

void classify_nb_done(ClassifyNB *m)
{
    free(m->loglik), free(m->seen);
    memset(m, 0, sizeof *m);
}

DrrlStatus classify_folds(int *fold, size_t n, int k, uint64_t seed, DrrlError *err)
{
    if (k < 2 || n < (size_t)k)
        return drrl_error(err, DRRL_E_USAGE, "folds: need 2 <= k <= n (k = %d, n = %zu)", k, n);
    size_t *p = malloc(n * sizeof *p);
    if (!p)
        return drrl_error(err, DRRL_E_NOMEM, "folds: out of memory");
    for (size_t i = 0; i < n; i++)
        p[i] = i;
    uint64_t x = seed;
    for (size_t i = n - 1; i > 0; i--) {
        uint64_t z = rng_splitmix64(&x);
        size_t j = (size_t)(z % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j], p[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        fold[p[i]] = (int)(i % (size_t)k);
    free(p);
    return DRRL_OK;
}

void classify_mean_std(const double *v, size_t n, double *mean, double *std)
{
    double s = 0.0, q = 0.0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    *mean = n ? s / (double)n : NAN;
    for (size_t i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *std = n > 1 ? sqrt(q / (double)(n - 1)) : 0.0;
}
