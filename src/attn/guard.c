#include "attn/guard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/hot.h"
#include "attn/flops.h"

int32_t guard_sample_rows(int64_t seg_start, int32_t T, int32_t n_rows, int64_t *pos)
{
    if (n_rows > T)
        n_rows = T;
    if (n_rows < 1)
        return 0;
    /* row k (0-based, increasing) at seg_start + T - 1 - (n_rows - 1 - k) T / n_rows */
    for (int32_t k = 0; k < n_rows; k++)
        pos[k] = seg_start + T - 1 - (int64_t)(n_rows - 1 - k) * T / n_rows;
    return n_rows;
}

/* Hot loops are DRRL_HOT (base/hot.h): the same bits on every variant. */
#define GUARD_KB 8 /* keys per block of independent dot products */

/* s[t] = scale * x . k_t for t < m. Each key's sum runs over j in order from
 * 0.0, as one key at a time would; GUARD_KB keys go side by side (the keys
 * transposed into kt, in double), so the sums are independent chains instead
 * of one chain of m d dependent additions: the same bits, several times the
 * throughput. */
DRRL_HOT static void guard_scores(const double *x, const float *k, size_t m, int32_t d,
                                  double scale, double *s, double *kt)
{
    size_t t = 0;
    for (; t + GUARD_KB <= m; t += GUARD_KB) {
        const float *kb = k + t * (size_t)d;
        for (int u = 0; u < GUARD_KB; u++)
            for (int32_t j = 0; j < d; j++)
                kt[(size_t)j * GUARD_KB + u] = kb[(size_t)u * d + j];
        double a[GUARD_KB] = {0};
        for (int32_t j = 0; j < d; j++) {
            double xj = x[j];
            for (int u = 0; u < GUARD_KB; u++)
                a[u] += xj * kt[(size_t)j * GUARD_KB + u];
        }
        for (int u = 0; u < GUARD_KB; u++)
            s[t + u] = a[u] * scale;
    }
    for (; t < m; t++) {
        double a = 0.0;
        for (int32_t j = 0; j < d; j++)
            a += x[j] * k[t * d + j];
        s[t] = a * scale;
    }
}

/* out[j] = sum_t (s[t] / z) v_t[j], t in order (each j its own chain). */
DRRL_HOT static void guard_values(const double *s, double z, const float *v, size_t m,
                                  int32_t d, double *out)
{
    memset(out, 0, (size_t)d * sizeof *out);
    for (size_t t = 0; t < m; t++) {
        double p = s[t] / z;
        for (int32_t j = 0; j < d; j++)
            out[j] += p * v[t * d + j];
    }
}

/* s[t] <- exp(s[t] - max s) for t < m; returns their sum (in t order), the
 * softmax's denominator. */
static double exp_shifted(double *s, size_t m)
{
    double mx = -INFINITY, z = 0.0;
    for (size_t t = 0; t < m; t++)
        mx = s[t] > mx ? s[t] : mx;
    for (size_t t = 0; t < m; t++)
        z += (s[t] = exp(s[t] - mx));
    return z;
}

/* out = softmax(scale * x K^T) V over keys 0..m-1 (double); s: m scratch;
 * kt: GUARD_KB d scratch. */
static void attend(const double *x, const float *k, const float *v, size_t m, int32_t d,
                   double scale, double *s, double *kt, double *out)
{
    guard_scores(x, k, m, d, scale, s, kt);
    guard_values(s, exp_shifted(s, m), v, m, d, out);
}

/* s[t] -= sum_{r <= j < r0} c[j] P[j][t] for t < m, j from r0 - 1 down:
 * the sums over j < r0 become those over j < r. */
DRRL_HOT static void guard_proj_drop(const double *c, const float *const *P, int32_t r,
                                     int32_t r0, size_t m, double *s)
{
    for (int32_t j = r0 - 1; j >= r; j--) {
        double cj = c[j];
        const float *p = P[j];
        for (size_t t = 0; t < m; t++)
            s[t] -= cj * p[t];
    }
}

/* s[t] += sum_{r0 <= j < r} c[j] P[j][t] for t < m (P[j]: column j's
 * pointer), j in order up from r0 for every t (elementwise across t: the
 * same bits in every variant). */
DRRL_HOT static void guard_proj_add(const double *c, const float *const *P, int32_t r0,
                                    int32_t r, size_t m, double *s)
{
    for (int32_t j = r0; j < r; j++) {
        double cj = c[j];
        const float *p = P[j];
        for (size_t t = 0; t < m; t++)
            s[t] += cj * p[t];
    }
}

/* sum_t p[t] P[t] for t < m, in GUARD_KB interleaved partial sums (t mod
 * GUARD_KB, each in t order) added in order at the end: independent chains
 * a vector unit runs side by side, the same bits in every variant. */
DRRL_HOT static double guard_dot(const double *p, const float *P, size_t m)
{
    double a[GUARD_KB] = {0};
    size_t t = 0;
    for (; t + GUARD_KB <= m; t += GUARD_KB)
        for (int u = 0; u < GUARD_KB; u++)
            a[u] += p[t + u] * P[t + u];
    double r = 0.0;
    for (int u = 0; u < GUARD_KB; u++)
        r += a[u];
    for (; t < m; t++)
        r += p[t] * P[t];
    return r;
}

/* Scratch of one estimate. s: m_max; buf: (5 + GUARD_KB) d. With projected
 * keys, per row: acc, the unscaled scores sum_{j<racc} c_j P_K[j] of the
 * last rank replayed from them (m_max each), and c = B_K^T q (d each), so
 * that the next lower rank only drops directions. */
typedef struct GuardWork {
    double *s, *buf, *acc, *cc;
    int32_t racc[GUARD_ROWS_MAX];
    size_t m_max;
    /* the projected columns of keys and values, (d) pointers each: from P
     * below p_wk (p_wv), then from X up to wk (wv); wk_p = p_wk or 0 */
    const float **colk, **colv;
    int32_t wk_p, wk, wv_p, wv;
} GuardWork;

/* Whether rank r of a row of m keys has all its projected columns (width
 * w_p from P, up to w with X) over the row's keys. */
static int guard_has_cols(const GuardInput *in, int32_t r, size_t m, int32_t w_p, int32_t w)
{
    if (r > w || (int64_t)m > in->p_rows)
        return 0;
    return r <= w_p || (int64_t)m <= in->x_rows;
}

/* y = B[:, :r] B[:, :r]^T x (d x d row-major B, column j = direction j). */
static void project(const float *B, int32_t d, int32_t r, const double *x, double *c, double *y)
{
    for (int32_t j = 0; j < r; j++) {
        double a = 0.0;
        for (int32_t i = 0; i < d; i++)
            a += (double)B[(size_t)i * d + j] * x[i];
        c[j] = a;
    }
    for (int32_t i = 0; i < d; i++) {
        double a = 0.0;
        for (int32_t j = 0; j < r; j++)
            a += (double)B[(size_t)i * d + j] * c[j];
        y[i] = a;
    }
}

/* Row i's head output at rank r into out (rank_error's replay); returns its
 * FLOPs. Scores from the projected keys where r <= p_wk (only the dropped
 * directions when a higher rank of the row came from them before), else
 * from the raw keys; the value product likewise from the projected values
 * where r <= p_wv (GuardInput). */
static double replay_row(const GuardInput *in, int32_t r, int32_t i, GuardWork *w, double *out)
{
    int32_t d = in->d;
    size_t m = (size_t)in->pos[i] + 1;
    int pk = guard_has_cols(in, r, m, w->wk_p, w->wk);
    int pv = guard_has_cols(in, r, m, w->wv_p, w->wv);
    double *x = w->buf, *c = x + d, *qr = x + 2 * d, *u = x + 3 * d, *kt = x + 5 * d, *s = w->s;
    double fl = flops_softmax((double)m);
    for (int32_t j = 0; j < d; j++)
        x[j] = in->q[(size_t)i * d + j];
    if (pk) {
        double *a = w->acc + (size_t)i * w->m_max, *ci = w->cc + (size_t)i * d;
        int32_t r0 = w->racc[i];
        if (r0 > r) {
            guard_proj_drop(ci, w->colk, r, r0, m, a);
            fl += 2.0 * (double)m * (r0 - r);
        } else if (r0 < r) {
            /* grow the row's scores from rank r0 (the scan up), or from
             * none (r0 = 0: a first replay) */
            if (r0 == 0)
                for (size_t t = 0; t < m; t++)
                    a[t] = 0.0;
            for (int32_t j = r0; j < r; j++) {
                double v = 0.0;
                for (int32_t k = 0; k < d; k++)
                    v += (double)in->Bk[(size_t)k * d + j] * x[k];
                ci[j] = v;
            }
            guard_proj_add(ci, w->colk, r0, r, m, a);
            fl += 2.0 * d * (r - r0) + 2.0 * (double)m * (r - r0);
        }
        w->racc[i] = r;
        for (size_t t = 0; t < m; t++)
            s[t] = a[t] * in->scale;
    } else {
        project(in->Bk, d, r, x, c, qr);
        guard_scores(qr, in->k, m, d, in->scale, s, kt);
        fl += 4.0 * d * r + 2.0 * (double)m * d;
    }
    double z = exp_shifted(s, m);
    if (pv) {
        for (size_t t = 0; t < m; t++)
            s[t] /= z;
        for (int32_t j = 0; j < r; j++)
            c[j] = guard_dot(s, w->colv[j], m);
        for (int32_t k = 0; k < d; k++) {
            double a = 0.0;
            for (int32_t j = 0; j < r; j++)
                a += (double)in->Bv[(size_t)k * d + j] * c[j];
            out[k] = a;
        }
        fl += 2.0 * (double)m * r + 2.0 * d * r;
    } else {
        guard_values(s, z, in->v, m, d, u);
        project(in->Bv, d, r, u, c, out);
        fl += 2.0 * (double)m * d + 4.0 * d * r;
    }
    return fl;
}

/* Relative error of rank r, the largest over the rows, taken in the order
 * ord (n_rows indices) and each row's error written to er[row]. Once
 * margin times the largest so far exceeds stop, the remaining rows are
 * skipped (their er is NAN) and *partial is set: the result is then a lower
 * bound of the full maximum, over stop too. */
static double rank_error(const GuardInput *in, int32_t r, const double *o, const int32_t *ord,
                         double stop, double *er, int *partial, GuardWork *w, double *fl)
{
    int32_t d = in->d;
    double *orr = w->buf + 4 * d;
    double worst = 0.0;
    *partial = 0;
    for (int32_t k = 0; k < in->n_rows; k++) {
        int32_t i = ord[k];
        if (!(in->margin * worst <= stop)) {
            er[i] = NAN, *partial = 1;
            continue;
        }
        if (in->o_fwd && r == in->r_fwd) { /* the forward ran this rank */
            for (int32_t j = 0; j < d; j++)
                orr[j] = in->o_fwd[(size_t)i * d + j];
        } else {
            *fl += replay_row(in, r, i, w, orr);
        }
        const double *oi = o + (size_t)i * d;
        double e2 = 0.0, n2 = 0.0;
        for (int32_t j = 0; j < d; j++)
            e2 += (oi[j] - orr[j]) * (oi[j] - orr[j]), n2 += oi[j] * oi[j];
        double e = n2 > 0.0 ? sqrt(e2 / n2) : sqrt(e2);
        er[i] = e;
        if (!(e <= worst)) /* NaN propagates */
            worst = e;
    }
    return worst;
}

/* ord: the rows by decreasing error er (NaN first, then ties by index), so
 * that the next rank meets its likeliest failing row first. Insertion sort:
 * n_rows <= GUARD_ROWS_MAX. */
static void order_rows(const double *er, int32_t n, int32_t *ord)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t k = i;
        double ei = er[i] == er[i] ? er[i] : INFINITY;
        while (k > 0) {
            double ep = er[ord[k - 1]] == er[ord[k - 1]] ? er[ord[k - 1]] : INFINITY;
            if (!(ep < ei))
                break;
            ord[k] = ord[k - 1];
            k--;
        }
        ord[k] = i;
    }
}

/* guard_estimate's scans (guard.h) over the rows' exact outputs o, in the
 * row order ord (reordered as they go) with the rows' errors er; the
 * replays' FLOPs added to *fl. */

/* Up from the smallest rank: the first whose c e is within stop is allowed
 * with every rank above it, which are not replayed. */
static void scan_up(const GuardInput *in, const int32_t *ranks, int32_t n, double stop,
                    const double *o, int32_t *ord, double *er, GuardWork *w, double *fl,
                    double *g, uint8_t *evaluated)
{
    int32_t d = in->d, nr = in->n_rows;
    int found = 0;
    double gf = 0.0;
    for (int32_t a = 0; a < n; a++) {
        if (evaluated)
            evaluated[a] = 0;
        if (ranks[a] >= d) {
            g[a] = 0.0; /* exact: e = 0 */
            if (evaluated)
                evaluated[a] = 1;
            continue;
        }
        if (found) {
            g[a] = gf;
            continue;
        }
        int partial = 0;
        double e = nr > 0 ? rank_error(in, ranks[a], o, ord, stop, er, &partial, w, fl) : 0.0;
        if (evaluated)
            evaluated[a] = !partial;
        g[a] = in->margin * e;
        if (g[a] <= stop)
            found = 1, gf = g[a];
        else
            order_rows(er, nr, ord);
    }
    /* the failing ranks' estimates (lower bounds when their rows
     * stopped early) made non-increasing: each at least the next's */
    for (int32_t a = n - 2; a >= 0; a--)
        if (g[a] < g[a + 1]) /* a NaN stays (not within stop) */
            g[a] = g[a + 1];
}

/* Down from the largest rank, the envelope: a rank whose c e exceeds stop
 * stops the scan, and its rows stop there too. */
static void scan_down(const GuardInput *in, const int32_t *ranks, int32_t n, double stop,
                      const double *o, int32_t *ord, double *er, GuardWork *w, double *fl,
                      double *g, uint8_t *evaluated)
{
    int32_t d = in->d, nr = in->n_rows;
    double env = 0.0;
    int stopped = 0;
    for (int32_t a = n - 1; a >= 0; a--) {
        if (evaluated)
            evaluated[a] = 0;
        if (ranks[a] >= d) {
            g[a] = in->margin * env; /* exact: e = 0 */
            if (evaluated)
                evaluated[a] = 1;
            continue;
        }
        if (!stopped) {
            int partial = 0;
            double e =
                nr > 0 ? rank_error(in, ranks[a], o, ord, stop, er, &partial, w, fl) : 0.0;
            if (!(e <= env))
                env = e;
            if (evaluated)
                evaluated[a] = !partial;
            if (!(in->margin * env <= stop))
                stopped = 1;
            else
                order_rows(er, nr, ord);
        }
        g[a] = in->margin * env;
    }
}

double guard_estimate(const GuardInput *in, const int32_t *ranks, int32_t n, double stop,
                      double *g, uint8_t *evaluated)
{
    int32_t d = in->d, nr = in->n_rows;
    size_t m_max = 1;
    for (int32_t i = 0; i < nr; i++)
        if ((size_t)in->pos[i] + 1 > m_max)
            m_max = (size_t)in->pos[i] + 1;
    double *s = malloc(m_max * sizeof *s);
    double *o = malloc(((size_t)nr + 1) * d * sizeof *o);
    double *buf = malloc((5 + GUARD_KB) * (size_t)d * sizeof *buf);
    GuardWork w = {s, buf, NULL, NULL, {0}, m_max, NULL, NULL, 0, 0, 0, 0};
    w.wk_p = w.wk = in->Pk ? in->p_wk : 0;
    w.wv_p = w.wv = in->Pv ? in->p_wv : 0;
    if (in->Xk && in->xk0 <= w.wk_p && in->xk1 > w.wk)
        w.wk = in->xk1;
    if (in->Xv && in->xv0 <= w.wv_p && in->xv1 > w.wv)
        w.wv = in->xv1;
    if (w.wk > d)
        w.wk = d;
    if (w.wv > d)
        w.wv = d;
    int cols = (w.wk > 0 || w.wv > 0) && nr > 0;
    if (cols) {
        w.acc = malloc((size_t)nr * m_max * sizeof *w.acc);
        w.cc = malloc((size_t)nr * d * sizeof *w.cc);
        w.colk = malloc(2 * (size_t)d * sizeof *w.colk);
        w.colv = w.colk ? w.colk + d : NULL;
    }
    if (!s || !o || !buf || (cols && (!w.acc || !w.cc || !w.colk))) {
        free(s), free(o), free(buf), free(w.acc), free(w.cc), free(w.colk);
        return -1.0;
    }
    for (int32_t j = 0; cols && j < d; j++) {
        w.colk[j] = j < w.wk_p ? in->Pk + (size_t)j * in->p_ld
                    : j < w.wk ? in->Xk + (size_t)(j - in->xk0) * in->x_ld
                               : NULL;
        w.colv[j] = j < w.wv_p ? in->Pv + (size_t)j * in->p_ld
                    : j < w.wv ? in->Xv + (size_t)(j - in->xv0) * in->x_ld
                               : NULL;
    }
    double fl = 0.0, er[GUARD_ROWS_MAX];
    int32_t ord[GUARD_ROWS_MAX];
    for (int32_t i = 0; i < nr; i++) {
        size_t m = (size_t)in->pos[i] + 1;
        er[i] = 0.0;
        if (in->o_fwd && in->r_fwd >= d) { /* the forward's exact output */
            for (int32_t j = 0; j < d; j++)
                o[(size_t)i * d + j] = in->o_fwd[(size_t)i * d + j];
            continue;
        }
        for (int32_t j = 0; j < d; j++)
            buf[j] = in->q[(size_t)i * d + j];
        attend(buf, in->k, in->v, m, d, in->scale, s, buf + 5 * d, o + (size_t)i * d);
        fl += 4.0 * (double)m * d + flops_softmax((double)m);
    }
    order_rows(er, nr, ord);
    if (in->scan_up)
        scan_up(in, ranks, n, stop, o, ord, er, &w, &fl, g, evaluated);
    else
        scan_down(in, ranks, n, stop, o, ord, er, &w, &fl, g, evaluated);
    free(s), free(o), free(buf), free(w.acc), free(w.cc), free(w.colk);
    return fl;
}

void guard_no_evidence(const int32_t *ranks, int32_t n, int32_t d, double *g)
{
    for (int32_t a = 0; a < n; a++)
        g[a] = ranks[a] >= d ? 0.0 : INFINITY;
}
