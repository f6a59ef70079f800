/* The stale-basis tail the engine uses (bounds_side_res2) against the true
 * residual by direct SVD, its monotonicity on adversarial inputs, the
 * running minimum, and the guard's estimate (guard_estimate) against a
 * direct computation with explicit projectors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "attn_testutil.h"
#include "attn/basis.h"
#include "attn/bounds.h"
#include "attn/flops.h"
#include "attn/guard.h"

/* ||X||_2^2 of a rows x d double matrix (direct SVD). */
static double spec2(const double *X, int rows, int d)
{
    double *a = malloc((size_t)rows * d * sizeof *a);
    memcpy(a, X, (size_t)rows * d * sizeof *a);
    int k = rows < d ? rows : d;
    double *sv = malloc((size_t)k * sizeof *sv);
    LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', rows, d, a, d, sv, NULL, rows, NULL, d);
    double out = k > 0 ? sv[0] * sv[0] : 0.0;
    free(a), free(sv);
    return out;
}

/* One side: rows [0, na) in the reference Gram, rows [na, n) new; the basis
 * from the reference Gram; E, En at width w. adversarial: the new rows lie
 * in the first w basis directions, with large energy. */
static void side_case(TRng *r, int n, int na, int d, int w, int kind, int adversarial,
                      double *res2, double *truth)
{
    float *X = malloc((size_t)n * d * sizeof *X);
    t_matrix(r, X, na, d, kind, 0.5 + 4.0 * trng_unif(r));
    double *G = calloc((size_t)d * d, sizeof *G), *B = malloc((size_t)d * d * sizeof *B);
    double *lam = malloc((size_t)d * sizeof *lam);
    basis_gram_add(G, X, na, d, d);
    basis_gram_symmetrize(G, d);
    DrrlError e;
    cr_assert_eq(basis_eig_batch(G, 1, d, lam, B, &e), DRRL_OK);
    for (int i = na; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = 0.0;
            if (adversarial) /* inside the projected width, 10x the top sigma */
                for (int k = 0; k < (w > 0 ? w : 1); k++)
                    v += B[j * d + k] * trng_normal(r) * 10.0 * sqrt(lam[0] + 1.0);
            else
                v = trng_normal(r) * sqrt(lam[0] / d + 1e-3);
            X[(size_t)i * d + j] = (float)v;
        }
    double E[64] = {0}, En[64] = {0}, tot = 0, tot_new = 0, tr = 0;
    for (int i = 0; i < n; i++) {
        double r2 = 0;
        for (int j = 0; j < d; j++)
            r2 += (double)X[i * d + j] * X[i * d + j];
        tot += r2, tot_new += i >= na ? r2 : 0.0;
        for (int k = 0; k < w; k++) {
            double c = 0;
            for (int j = 0; j < d; j++)
                c += (double)X[i * d + j] * B[j * d + k];
            E[k] += c * c, En[k] += i >= na ? c * c : 0.0;
        }
    }
    for (int j = 0; j < d; j++)
        tr += G[j * d + j];
    BoundsSide s = {lam, E, En, tot, tot_new, tr, na, w};
    bounds_side_res2(&s, d, res2);
    /* truth: ||X (I - P_r)||_2^2 */
    double *R = malloc((size_t)n * d * sizeof *R);
    for (int rk = 0; rk <= d; rk++) {
        for (int i = 0; i < n; i++) {
            double x[64];
            for (int j = 0; j < d; j++)
                x[j] = X[i * d + j];
            t_residual(x, B, d, rk, R + (size_t)i * d);
        }
        truth[rk] = spec2(R, n, d);
    }
    free(R), free(X), free(G), free(B), free(lam);
}

Test(guard, side_res2_bounds_true_residual_and_is_monotone)
{
    TRng r = {3};
    static const int dims[] = {4, 8, 16, 32};
    int cases = 0, tight = 0;
    for (int di = 0; di < 4; di++)
        for (int kind = 0; kind < SPEC_COUNT; kind++)
            for (int trial = 0; trial < 12; trial++) {
                int d = dims[di], na = d + (int)(trng_u64(&r) % (uint64_t)(2 * d));
                int nn = trial % 3 == 0 ? 0 : 1 + (int)(trng_u64(&r) % (uint64_t)d);
                int w = (int)(trng_u64(&r) % (uint64_t)(d + 1));
                double res2[65], truth[65];
                side_case(&r, na + nn, na, d, w, kind, trial % 2, res2, truth);
                for (int rk = 0; rk <= d; rk++) {
                    double sc = truth[0] + 1e-30;
                    cr_assert(res2[rk] >= truth[rk] - 1e-9 * sc,
                              "d %d r %d w %d: res2 %g < true %g", d, rk, w, res2[rk],
                              truth[rk]);
                    if (rk > 0)
                        cr_assert(res2[rk] <= res2[rk - 1], "not monotone at r %d (w %d)", rk,
                                  w);
                    /* no new rows: the bound is sigma_{r+1}^2 + allowances (tight) */
                    if (nn == 0 && rk < d && res2[rk] <= truth[rk] * (1 + 1e-5) + 1e-9 * sc)
                        tight++;
                }
                cases++;
            }
    cr_assert_eq(cases, 192);
    cr_assert(tight > 200, "only %d tight ranks", tight);
}

/* The case that made the engine's mask non-monotone: the new rows carry
 * more energy than the reference tail, and the projected width w ends below
 * d, so the spectral route charges all of it from r = w + 1 on. */
Test(guard, side_res2_no_jump_past_the_projected_width)
{
    TRng r = {5};
    int jumps_without_min = 0;
    for (int trial = 0; trial < 50; trial++) {
        int d = 16, na = 40, nn = 8, w = 4 + (int)(trng_u64(&r) % 8);
        double res2[17], truth[17];
        side_case(&r, na + nn, na, d, w, SPEC_DECAY, 1, res2, truth);
        for (int rk = 1; rk <= d; rk++)
            cr_assert(res2[rk] <= res2[rk - 1]);
        /* the raw route (b) at w + 1 (lambda_{w+2} + every new row's energy)
         * exceeds the value at w: the running minimum is what removes it */
        if (res2[w + 1] == res2[w])
            jumps_without_min++;
    }
    cr_assert(jumps_without_min > 25, "the adversarial case never jumped (%d)",
              jumps_without_min);
}

Test(guard, prefix_min)
{
    TRng r = {9};
    for (int trial = 0; trial < 1000; trial++) {
        int n = 1 + (int)(trng_u64(&r) % 20);
        double b[20], c[20];
        for (int i = 0; i < n; i++)
            b[i] = trng_u64(&r) % 7 == 0 ? NAN : trng_normal(&r), c[i] = b[i];
        bounds_prefix_min(c, n);
        double m = INFINITY;
        for (int i = 0; i < n; i++) {
            if (isnan(b[i])) {
                cr_assert(isnan(c[i]));
                continue;
            }
            m = fmin(m, b[i]);
            cr_assert_eq(c[i], m);
        }
    }
}

Test(guard, sample_rows)
{
    int64_t pos[GUARD_ROWS_MAX];
    for (int T = 1; T < 300; T += 7)
        for (int S = 1; S <= 16; S++) {
            int n = guard_sample_rows(1000, T, S, pos);
            cr_assert_eq(n, S < T ? S : T);
            cr_assert_eq(pos[n - 1], 1000 + T - 1);
            for (int k = 0; k < n; k++) {
                cr_assert(pos[k] >= 1000 && pos[k] < 1000 + T);
                if (k)
                    cr_assert(pos[k] > pos[k - 1]);
            }
        }
}

/* The replay's input over rows pos (n_rows of them) with queries q, keys K
 * and values V (head_dim d) and bases Bk, Bv; scale 0.5. */
static GuardInput guard_input(const float *q, const int64_t *pos, int32_t n_rows, int32_t d,
                              const float *K, const float *V, const float *Bk, const float *Bv,
                              double margin)
{
    return (GuardInput){.q = q,
                        .pos = pos,
                        .n_rows = n_rows,
                        .d = d,
                        .k = K,
                        .v = V,
                        .Bk = Bk,
                        .Bv = Bv,
                        .scale = 0.5f,
                        .margin = margin};
}

/* Direct: o(r) = softmax(s q P_K K^T) V P_V with explicit projector matrices. */
static double direct_err(const float *q, const float *K, const float *V, int m, int d,
                         const float *Bk, const float *Bv, int r, double scale)
{
    double PK[64 * 64], PV[64 * 64], qp[64], s[512], o[64] = {0}, ot[64] = {0}, u[64] = {0};
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < r; k++)
                a += (double)Bk[i * d + k] * Bk[j * d + k],
                    b += (double)Bv[i * d + k] * Bv[j * d + k];
            PK[i * d + j] = a, PV[i * d + j] = b;
        }
    for (int j = 0; j < d; j++) {
        qp[j] = 0;
        for (int i = 0; i < d; i++)
            qp[j] += q[i] * PK[i * d + j];
    }
    for (int pass = 0; pass < 2; pass++) {
        const double *x = pass ? qp : NULL;
        double mx = -INFINITY, z = 0;
        for (int t = 0; t < m; t++) {
            double a = 0;
            for (int j = 0; j < d; j++)
                a += (x ? x[j] : q[j]) * K[t * d + j];
            s[t] = a * scale, mx = fmax(mx, s[t]);
        }
        for (int t = 0; t < m; t++)
            z += (s[t] = exp(s[t] - mx));
        double *out = pass ? u : o;
        for (int t = 0; t < m; t++)
            for (int j = 0; j < d; j++)
                out[j] += s[t] / z * V[t * d + j];
    }
    for (int j = 0; j < d; j++)
        for (int i = 0; i < d; i++)
            ot[j] += u[i] * PV[i * d + j];
    double e2 = 0, n2 = 0;
    for (int j = 0; j < d; j++)
        e2 += (o[j] - ot[j]) * (o[j] - ot[j]), n2 += o[j] * o[j];
    return n2 > 0 ? sqrt(e2 / n2) : sqrt(e2);
}

Test(guard, estimate_matches_direct_and_is_monotone)
{
    TRng r = {21};
    for (int trial = 0; trial < 60; trial++) {
        int d = 4 + 4 * (int)(trng_u64(&r) % 4), m = 20 + (int)(trng_u64(&r) % 100);
        float *K = malloc((size_t)m * d * sizeof *K), *V = malloc((size_t)m * d * sizeof *V);
        t_matrix(&r, K, m, d, trial % SPEC_COUNT, 1.0 + 3.0 * trng_unif(&r));
        t_matrix(&r, V, m, d, (trial + 1) % SPEC_COUNT, 1.0);
        double Bd[2][64 * 64];
        float Bk[64 * 64], Bv[64 * 64], q[4 * 64];
        t_orth(&r, Bd[0], d, d), t_orth(&r, Bd[1], d, d);
        for (int i = 0; i < d * d; i++)
            Bk[i] = (float)Bd[0][i], Bv[i] = (float)Bd[1][i];
        int64_t pos[4];
        int ns = 1 + (int)(trng_u64(&r) % 4);
        for (int i = 0; i < ns; i++) {
            pos[i] = m - 1 - (ns - 1 - i) * 3;
            for (int j = 0; j < d; j++)
                q[i * d + j] = (float)(trng_normal(&r) * 2.0);
        }
        int32_t ranks[65], n = 0;
        for (int rk = 1; rk <= d; rk += 1 + (int)(trng_u64(&r) % 3))
            ranks[n++] = rk;
        if (ranks[n - 1] != d)
            ranks[n++] = d;
        GuardInput in = guard_input(q, pos, ns, d, K, V, Bk, Bv, 1.0);
        double g[65], g2[65], want[65];
        uint8_t ev[65];
        cr_assert(guard_estimate(&in, ranks, n, INFINITY, g, ev) > 0);
        double env = 0;
        for (int a = n - 1; a >= 0; a--) {
            double e = 0;
            for (int i = 0; i < ns; i++)
                e = fmax(
                    e, direct_err(q + i * d, K, V, (int)pos[i] + 1, d, Bk, Bv, ranks[a], 0.5));
            env = fmax(env, e);
            want[a] = env;
            cr_assert(ev[a]);
            cr_assert(fabs(g[a] - want[a]) <= 1e-6 * (1 + want[a]), "rank %d: %g vs %g",
                      ranks[a], g[a], want[a]);
            if (a < n - 1)
                cr_assert(g[a] >= g[a + 1]);
        }
        cr_assert_eq(g[n - 1], 0.0);
        /* early stop: evaluated ranks as before, the rest below their envelope */
        double stop = want[n / 2];
        guard_estimate(&in, ranks, n, stop, g2, ev);
        int stopped = 0;
        for (int a = n - 1; a >= 0; a--) {
            if (ev[a])
                cr_assert(fabs(g2[a] - g[a]) <= 1e-12 * (1 + g[a]));
            else {
                cr_assert(g2[a] <= g[a] && g2[a] > stop);
                stopped = 1;
            }
            if (a < n - 1)
                cr_assert(g2[a] >= g2[a + 1]);
        }
        (void)stopped;
        /* the margin scales the whole estimate and the stop compares the scaled value */
        GuardInput in2 = in;
        in2.margin = 2.0;
        double g3[65];
        guard_estimate(&in2, ranks, n, INFINITY, g3, ev);
        for (int a = 0; a < n; a++)
            cr_assert(g3[a] == 2.0 * g[a], "rank %d: %g vs 2 x %g", ranks[a], g3[a], g[a]);
        guard_estimate(&in2, ranks, n, 2.0 * stop, g3, ev);
        for (int a = 0; a < n; a++)
            if (ev[a])
                cr_assert(g3[a] == 2.0 * g[a]);
            else
                cr_assert(g3[a] > 2.0 * stop);
        free(K), free(V);
    }
}

Test(guard, no_evidence_masks_every_low_rank)
{
    int32_t ranks[] = {4, 8, 12, 16, 32, 40};
    double g[6];
    guard_no_evidence(ranks, 6, 32, g);
    for (int a = 0; a < 6; a++)
        cr_assert(ranks[a] >= 32 ? g[a] == 0.0 : isinf(g[a]) && g[a] > 0);
}

/* The forward's own outputs stand in for the replay's: with the exact
 * outputs (r_fwd = d) the exact reference is not run again, with the
 * rank-r outputs (r_fwd = r) rank r is not; the estimate is the same (to
 * float rounding of the handed-in outputs) for fewer FLOPs. */
static void direct_out(const float *q, const float *K, const float *V, int m, int d,
                       const float *Bk, const float *Bv, int r, double scale, float *out)
{
    double qp[64], s[512], u[64] = {0};
    for (int j = 0; j < d; j++) {
        qp[j] = 0;
        for (int i = 0; i < d; i++)
            for (int k = 0; k < r; k++)
                qp[j] += q[i] * (double)Bk[i * d + k] * Bk[j * d + k];
    }
    double mx = -INFINITY, z = 0;
    for (int t = 0; t < m; t++) {
        double a = 0;
        for (int j = 0; j < d; j++)
            a += qp[j] * K[t * d + j];
        s[t] = a * scale, mx = fmax(mx, s[t]);
    }
    for (int t = 0; t < m; t++)
        z += (s[t] = exp(s[t] - mx));
    for (int t = 0; t < m; t++)
        for (int j = 0; j < d; j++)
            u[j] += s[t] / z * V[t * d + j];
    for (int j = 0; j < d; j++) {
        double a = 0;
        for (int i = 0; i < d; i++)
            for (int k = 0; k < r; k++)
                a += u[i] * (double)Bv[i * d + k] * Bv[j * d + k];
        out[j] = (float)a;
    }
}

/* A replay case as the tests below draw it: head_dim d in {8, 12, 16}, m
 * rows of keys and values of spectrum kinds kk and kv, random orthonormal
 * bases (float), 4 sampled rows at m-10, m-7, m-4, m-1 with their queries,
 * the even ranks below d then d, and the GuardInput over them. */
typedef struct ReplayCase {
    int d, m, n;
    float *K, *V;
    float Bk[64 * 64], Bv[64 * 64], q[4 * 64];
    int64_t pos[4];
    int32_t ranks[16];
    GuardInput in;
} ReplayCase;

static void replay_case_make(TRng *r, int kk, int kv, ReplayCase *c)
{
    int d = c->d = 8 + 4 * (int)(trng_u64(r) % 3), m = c->m = 30 + (int)(trng_u64(r) % 60);
    c->K = malloc((size_t)m * d * sizeof *c->K), c->V = malloc((size_t)m * d * sizeof *c->V);
    t_matrix(r, c->K, m, d, kk, 2.0);
    t_matrix(r, c->V, m, d, kv, 1.0);
    double Bd[2][64 * 64];
    t_orth(r, Bd[0], d, d), t_orth(r, Bd[1], d, d);
    for (int i = 0; i < d * d; i++)
        c->Bk[i] = (float)Bd[0][i], c->Bv[i] = (float)Bd[1][i];
    int64_t pos[4] = {m - 10, m - 7, m - 4, m - 1};
    memcpy(c->pos, pos, sizeof pos);
    for (int i = 0; i < 4 * d; i++)
        c->q[i] = (float)(trng_normal(r) * 2.0);
    c->n = 0;
    for (int rk = 2; rk < d; rk += 2)
        c->ranks[c->n++] = rk;
    c->ranks[c->n++] = d;
    c->in = guard_input(c->q, c->pos, 4, d, c->K, c->V, c->Bk, c->Bv, 2.0);
}

/* The projected caches of the case's keys and values, P[j * ld + t] =
 * (x_t B)_j, as the engine lays them out (GuardInput's Pk, Pv). */
static void replay_case_project(const ReplayCase *c, size_t ld, float *Pk, float *Pv)
{
    int d = c->d;
    for (int j = 0; j < d; j++)
        for (int t = 0; t < c->m; t++) {
            double a = 0, b = 0;
            for (int i = 0; i < d; i++)
                a += (double)c->K[t * d + i] * c->Bk[i * d + j],
                    b += (double)c->V[t * d + i] * c->Bv[i * d + j];
            Pk[(size_t)j * ld + t] = (float)a, Pv[(size_t)j * ld + t] = (float)b;
        }
}

Test(guard, forward_outputs_replace_the_replay)
{
    TRng r = {41};
    for (int trial = 0; trial < 30; trial++) {
        ReplayCase rc;
        replay_case_make(&r, trial % SPEC_COUNT, (trial + 2) % SPEC_COUNT, &rc);
        int d = rc.d, m = rc.m, n = rc.n;
        const float *K = rc.K, *V = rc.V, *Bk = rc.Bk, *Bv = rc.Bv, *q = rc.q;
        const int64_t *pos = rc.pos;
        const int32_t *ranks = rc.ranks;
        GuardInput in = rc.in;
        float of[4 * 64];
        double g[16], gf[16];
        double fl = guard_estimate(&in, ranks, n, INFINITY, g, NULL);
        /* exact outputs handed in; then rank ranks[n / 2]'s */
        for (int pass = 0; pass < 2; pass++) {
            int rf = pass ? ranks[n / 2] : d;
            for (int i = 0; i < 4; i++)
                direct_out(q + i * d, K, V, (int)pos[i] + 1, d, Bk, Bv, rf, 0.5, of + i * d);
            GuardInput inf = in;
            inf.o_fwd = of, inf.r_fwd = rf;
            double flf = guard_estimate(&inf, ranks, n, INFINITY, gf, NULL);
            cr_assert(flf < fl - 3.0 * m * d, "pass %d: %g FLOPs, %g without", pass, flf, fl);
            for (int a = 0; a < n; a++)
                cr_assert(fabs(gf[a] - g[a]) <= 1e-4 * (1 + g[a]), "pass %d rank %d: %g vs %g",
                          pass, ranks[a], gf[a], g[a]);
        }
        free(rc.K), free(rc.V);
    }
}

/* Early stop inside a rank: the rank that crosses stop stops at its first
 * row over it, so it costs less than all rows would; every rank above it
 * keeps its exact value. */
Test(guard, early_stop_skips_rows)
{
    TRng r = {43};
    int fewer = 0;
    for (int trial = 0; trial < 30; trial++) {
        int d = 8, m = 60;
        float K[60 * 8], V[60 * 8], Bk[64], Bv[64], q[8 * 8];
        t_matrix(&r, K, m, d, trial % SPEC_COUNT, 2.0);
        t_matrix(&r, V, m, d, trial % SPEC_COUNT, 1.0);
        double Bd[2][64];
        t_orth(&r, Bd[0], d, d), t_orth(&r, Bd[1], d, d);
        for (int i = 0; i < d * d; i++)
            Bk[i] = (float)Bd[0][i], Bv[i] = (float)Bd[1][i];
        int64_t pos[8];
        for (int i = 0; i < 8; i++)
            pos[i] = m - 1 - 3 * (7 - i);
        for (int i = 0; i < 8 * d; i++)
            q[i] = (float)(trng_normal(&r) * 3.0);
        int32_t ranks[] = {1, 2, 3, 4, 5, 6, 7, 8};
        GuardInput in = guard_input(q, pos, 8, d, K, V, Bk, Bv, 1.0);
        double g[8], g2[8];
        uint8_t ev[8];
        double fl = guard_estimate(&in, ranks, 8, INFINITY, g, NULL);
        /* stop just below the estimate at rank 4: rank 4 crosses it */
        double stop = g[3] * 0.999;
        if (!(g[4] < stop))
            continue;
        double fl2 = guard_estimate(&in, ranks, 8, stop, g2, ev);
        for (int a = 4; a < 8; a++)
            cr_assert(ev[a] && g2[a] == g[a]);
        cr_assert(g2[3] > stop && g2[3] <= g[3]);
        cr_assert(fl2 < fl);
        fewer += !ev[3];
    }
    cr_assert(fewer > 5, "the crossing rank never stopped early (%d)", fewer);
}

/* FLOPs of the replay of rank ranks[a] on a row of m keys (every rank
 * evaluated, from the top down): scores from projected keys at ranks <= wk
 * (after the first such rank of the row, only the dropped directions),
 * values from projected values at ranks <= wv, the rest raw. */
static double want_row_flops(const int32_t *ranks, int n, int d, double m, int wk, int wv)
{
    double f = 0;
    int r0 = 0;
    for (int a = n - 1; a >= 0; a--) {
        int r = ranks[a];
        if (r >= d)
            continue;
        f += flops_softmax(m);
        if (r <= wk) {
            f += r0 > r ? 2.0 * m * (r0 - r) : 2.0 * d * r + 2.0 * m * r;
            r0 = r;
        } else {
            f += 4.0 * d * r + 2.0 * m * d;
        }
        f += r <= wv ? 2.0 * m * r + 2.0 * d * r : 2.0 * m * d + 4.0 * d * r;
    }
    return f;
}

/* The projected caches stand in for the raw ones at the ranks within their
 * widths (keys and values apart): the same estimate (to float rounding of
 * the projected rows), for the FLOPs of want_row_flops; rows past p_rows,
 * or no caches, replay raw, bit for bit. */
Test(guard, projected_caches_replace_the_raw_replay)
{
    TRng r = {47};
    for (int trial = 0; trial < 30; trial++) {
        ReplayCase rc;
        replay_case_make(&r, trial % SPEC_COUNT, (trial + 1) % SPEC_COUNT, &rc);
        int d = rc.d, m = rc.m, n = rc.n;
        const int64_t *pos = rc.pos;
        const int32_t *ranks = rc.ranks;
        GuardInput in = rc.in;
        size_t ld = (size_t)m + 3;
        float *Pk = malloc(ld * d * sizeof *Pk), *Pv = malloc(ld * d * sizeof *Pv);
        replay_case_project(&rc, ld, Pk, Pv);
        double g[16], gp[16], g0[16];
        double fl = guard_estimate(&in, ranks, n, INFINITY, g, NULL), fl_exact = 0;
        for (int i = 0; i < 4; i++)
            fl_exact += 4.0 * (pos[i] + 1.0) * d + flops_softmax(pos[i] + 1.0);
        /* widths: equal, keys wider, values wider */
        for (int c = 0; c < 3; c++) {
            int wk = ranks[n / 2] + (c == 1 ? 2 : 0), wv = ranks[n / 2] + (c == 2 ? 4 : 0);
            GuardInput ip = in;
            ip.Pk = Pk, ip.Pv = Pv, ip.p_ld = ld, ip.p_wk = wk, ip.p_wv = wv, ip.p_rows = m;
            double flp = guard_estimate(&ip, ranks, n, INFINITY, gp, NULL);
            double want = fl_exact;
            for (int i = 0; i < 4; i++)
                want += want_row_flops(ranks, n, d, pos[i] + 1.0, wk, wv);
            cr_assert(fabs(flp - want) <= 1e-9 * fl, "widths %d/%d: %g FLOPs, want %g", wk, wv,
                      flp, want);
            cr_assert(flp < fl);
            for (int a = 0; a < n; a++)
                cr_assert(fabs(gp[a] - g[a]) <= 1e-4 * (1 + g[a]),
                          "widths %d/%d rank %d: %g vs %g", wk, wv, ranks[a], gp[a], g[a]);
        }
        /* the guard's own columns X (guard.h) extend the widths to x1 when
         * they start within them; with a gap (x0 > p_w) they are unused */
        for (int c = 0; c < 2; c++) {
            int wk = ranks[n / 2], x0 = c ? wk + 1 : wk - 1, x1 = ranks[n - 2];
            float *Xk = Pk + (size_t)x0 * ld, *Xv = Pv + (size_t)x0 * ld;
            GuardInput ip = in;
            ip.Pk = Pk, ip.Pv = Pv, ip.p_ld = ld, ip.p_wk = wk, ip.p_wv = wk, ip.p_rows = m;
            ip.Xk = Xk, ip.Xv = Xv, ip.x_ld = ld, ip.xk0 = ip.xv0 = x0, ip.xk1 = ip.xv1 = x1;
            ip.x_rows = m;
            double flp = guard_estimate(&ip, ranks, n, INFINITY, gp, NULL);
            int w = c ? wk : x1;
            double want = fl_exact;
            for (int i = 0; i < 4; i++)
                want += want_row_flops(ranks, n, d, pos[i] + 1.0, w, w);
            cr_assert(fabs(flp - want) <= 1e-9 * fl, "X from %d to %d: %g FLOPs, want %g", x0,
                      x1, flp, want);
            for (int a = 0; a < n; a++)
                cr_assert(fabs(gp[a] - g[a]) <= 1e-4 * (1 + g[a]), "X rank %d: %g vs %g",
                          ranks[a], gp[a], g[a]);
        }
        /* the raw replay's FLOPs are want_row_flops with no widths */
        double want = fl_exact;
        for (int i = 0; i < 4; i++)
            want += want_row_flops(ranks, n, d, pos[i] + 1.0, 0, 0);
        cr_assert(fabs(fl - want) <= 1e-9 * fl, "raw: %g FLOPs, want %g", fl, want);
        /* every row past the projected rows: the raw replay, bit for bit */
        GuardInput ip = in;
        ip.Pk = Pk, ip.Pv = Pv, ip.p_ld = ld, ip.p_wk = d, ip.p_wv = d, ip.p_rows = pos[0];
        cr_assert(guard_estimate(&ip, ranks, n, INFINITY, g0, NULL) == fl);
        for (int a = 0; a < n; a++)
            cr_assert(g0[a] == g[a]);
        free(rc.K), free(rc.V), free(Pk), free(Pv);
    }
}

/* The scan up (the engine's, guard.h): the smallest rank whose own estimate
 * is within stop ends it, with every rank above it allowed at its estimate
 * and not replayed; every rank below it is over stop. That rank is never
 * above the envelope scan's smallest allowed one. From the projected caches
 * (each row's scores grown by the added directions) it finds the same rank
 * and estimates, for fewer FLOPs. */
Test(guard, scan_up_stops_at_the_smallest_passing_rank)
{
    TRng r = {53};
    for (int trial = 0; trial < 30; trial++) {
        ReplayCase rc;
        replay_case_make(&r, trial % SPEC_COUNT, (trial + 2) % SPEC_COUNT, &rc);
        int d = rc.d, m = rc.m, n = rc.n;
        double own[16], genv[16], g[16], gp[16];
        uint8_t ev[16];
        for (int a = 0; a < n; a++) {
            double e = 0;
            for (int i = 0; i < 4; i++)
                e = fmax(e, direct_err(rc.q + i * d, rc.K, rc.V, (int)rc.pos[i] + 1, d, rc.Bk,
                                       rc.Bv, rc.ranks[a], 0.5));
            own[a] = 2.0 * e;
        }
        cr_assert(guard_estimate(&rc.in, rc.ranks, n, INFINITY, genv, NULL) > 0);
        size_t ld = (size_t)m + 5;
        float *Pk = malloc(ld * d * sizeof *Pk), *Pv = malloc(ld * d * sizeof *Pv);
        replay_case_project(&rc, ld, Pk, Pv);
        for (int c = 0; c < n; c++) {
            /* stops just above and just below each rank's own estimate */
            double stop = own[c / 2] * (c % 2 ? 1.001 : 0.999);
            int near = 0; /* float rounding may decide (the projected run) */
            for (int a = 0; a < n; a++)
                near |= fabs(own[a] - stop) <= 1e-4 * stop;
            int want = n - 1;
            for (int a = 0; a < n; a++)
                if (own[a] <= stop || rc.ranks[a] >= d) {
                    want = a;
                    break;
                }
            GuardInput in = rc.in;
            in.scan_up = 1;
            double fl = guard_estimate(&in, rc.ranks, n, stop, g, ev);
            cr_assert(fl >= 0);
            for (int a = 0; a < n; a++) {
                if (a < want)
                    cr_assert(g[a] > stop, "rank %d below the passing %d: %g <= %g",
                              rc.ranks[a], rc.ranks[want], g[a], stop);
                else if (a == want) {
                    cr_assert(ev[a]);
                    cr_assert(fabs(g[a] - (rc.ranks[a] >= d ? 0.0 : own[a])) <=
                                  1e-6 * (1 + own[a]),
                              "rank %d: %g vs %g", rc.ranks[a], g[a], own[a]);
                } else if (rc.ranks[a] >= d) {
                    cr_assert(g[a] == 0.0 && ev[a]); /* exact */
                } else {
                    cr_assert(g[a] == g[want] && !ev[a]);
                }
                if (a > 0)
                    cr_assert(g[a] <= g[a - 1] || !(g[a - 1] <= stop));
            }
            int env_first = n - 1;
            while (env_first > 0 && genv[env_first - 1] <= stop)
                env_first--;
            cr_assert(want <= env_first, "up: rank %d, envelope: rank %d", rc.ranks[want],
                      rc.ranks[env_first]);
            if (near)
                continue;
            /* from the projected caches: the added directions' scores */
            in.Pk = Pk, in.Pv = Pv, in.p_ld = ld, in.p_wk = d, in.p_wv = d, in.p_rows = m;
            double flp = guard_estimate(&in, rc.ranks, n, stop, gp, NULL);
            for (int a = 0; a < n; a++)
                cr_assert(fabs(gp[a] - g[a]) <= 1e-4 * (1 + g[a]) ||
                              (g[a] > stop && gp[a] > stop),
                          "projected, rank %d: %g vs %g", rc.ranks[a], gp[a], g[a]);
            cr_assert(flp <= fl);
        }
        free(rc.K), free(rc.V), free(Pk), free(Pv);
    }
}
