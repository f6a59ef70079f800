/* Property tests: no perturbation bound in bounds.h is ever violated, over
 * thousands of random matrices of several sizes, spectra (decaying, flat,
 * clustered, low-rank) and ranks. Reference quantities are computed directly
 * (dense products, direct SVD) in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "attn_testutil.h"
#include "attn/basis.h"
#include "attn/bounds.h"

#define REL 1e-9 /* slack for double round-off in the reference computation */

static const int sizes[][2] = {{6, 4}, {24, 8}, {48, 16}, {96, 32}};

typedef struct Case {
    int n, d;
    float *K;
    double *G, *lam, *B;
} Case;

static void case_make(Case *c, TRng *r, int n, int d, int kind, double scale)
{
    c->n = n, c->d = d;
    c->K = malloc((size_t)n * d * sizeof *c->K);
    t_matrix(r, c->K, n, d, kind, scale);
    c->G = calloc((size_t)d * d, sizeof *c->G);
    c->lam = malloc((size_t)d * sizeof *c->lam);
    c->B = malloc((size_t)d * d * sizeof *c->B);
    basis_gram_add(c->G, c->K, n, d, d);
    basis_gram_symmetrize(c->G, d);
    DrrlError e;
    cr_assert_eq(basis_eig_batch(c->G, 1, d, c->lam, c->B, &e), DRRL_OK);
}

static void case_free(Case *c)
{
    free(c->K), free(c->G), free(c->lam), free(c->B);
}

/* ||X||_2 of a rows x d double matrix by direct SVD. */
static double spec_norm(const double *X, int rows, int d)
{
    float *f = malloc((size_t)rows * d * sizeof *f);
    for (int i = 0; i < rows * d; i++)
        f[i] = (float)X[i];
    double *s = malloc((size_t)d * sizeof *s);
    DrrlError e;
    /* float copy would lose precision: use a double SVD directly instead */
    free(f);
    double *a = malloc((size_t)rows * d * sizeof *a);
    memcpy(a, X, (size_t)rows * d * sizeof *a);
    int k = rows < d ? rows : d;
    double *sv = malloc((size_t)k * sizeof *sv);
    LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', rows, d, a, d, sv, NULL, rows, NULL, d);
    double out = sv[0];
    (void)e;
    free(a), free(sv), free(s);
    return out;
}

Test(bounds, eckart_young_and_stale_tail)
{
    TRng r = {1};
    int n_cases = 0;
    for (int si = 0; si < 4; si++)
        for (int kind = 0; kind < SPEC_COUNT; kind++)
            for (int trial = 0; trial < 40; trial++) {
                Case c;
                int n = sizes[si][0], d = sizes[si][1];
                case_make(&c, &r, n, d, kind, 0.1 + 20.0 * trng_unif(&r));
                int rk = (int)(trng_u64(&r) % (uint64_t)(d + 1));
                double *R = malloc((size_t)n * d * sizeof *R), x[64], y[64];
                double fro2 = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < d; j++)
                        x[j] = c.K[i * d + j];
                    t_residual(x, c.B, d, rk, y);
                    for (int j = 0; j < d; j++)
                        R[i * d + j] = y[j], fro2 += y[j] * y[j];
                }
                double tf = bounds_tail_fro(c.lam, d, rk);
                double scale = sqrt(c.lam[0] * d) + 1e-300;
                cr_assert(fabs(sqrt(fro2) - tf) <= 1e-6 * scale, "EY fro %g vs %g", sqrt(fro2),
                          tf);
                double sn = spec_norm(R, n, d);
                cr_assert(sn <= bounds_tail_spec(c.lam, d, rk) + 1e-6 * scale,
                          "EY spec %g > %g", sn, bounds_tail_spec(c.lam, d, rk));
                /* stale basis: a random orthonormal basis */
                double *Bs = malloc((size_t)d * d * sizeof *Bs);
                t_orth(&r, Bs, d, d);
                double st = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < d; j++)
                        x[j] = c.K[i * d + j];
                    t_residual(x, Bs, d, rk, y);
                    for (int j = 0; j < d; j++)
                        st += y[j] * y[j];
                }
                cr_assert(fabs(st - bounds_stale_tail2(c.G, Bs, d, rk)) <= 1e-9 * scale * scale,
                          "stale %g vs %g", st, bounds_stale_tail2(c.G, Bs, d, rk));
                /* band energy (Eq. 8): ||K P_r - K P_r'||_F */
                int r2 = (int)(trng_u64(&r) % (uint64_t)(d + 1));
                double band2 = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < d; j++)
                        x[j] = c.K[i * d + j];
                    double y2[64];
                    t_residual(x, c.B, d, rk, y);
                    t_residual(x, c.B, d, r2, y2);
                    for (int j = 0; j < d; j++)
                        band2 += (y[j] - y2[j]) * (y[j] - y2[j]);
                }
                cr_assert(fabs(sqrt(band2) - bounds_band(c.lam, d, rk, r2)) <= 1e-6 * scale);
                free(R), free(Bs);
                case_free(&c);
                n_cases++;
            }
    cr_assert_eq(n_cases, 640);
}

/* Score, softmax and output bounds together, with the key set split into a
 * "completed" part A (whose basis is used) and a current segment C. */
Test(bounds, score_softmax_output_never_violated)
{
    TRng r = {7};
    int n_cases = 0, nontrivial = 0;
    for (int si = 0; si < 4; si++)
        for (int kind = 0; kind < SPEC_COUNT; kind++)
            for (int trial = 0; trial < 80; trial++) {
                int n = sizes[si][0], d = sizes[si][1];
                int na = n / 2 + (int)(trng_u64(&r) % (uint64_t)(n / 2)); /* rows in A */
                double scale = 0.2 + 6.0 * trng_unif(&r);
                float *K = malloc((size_t)n * d * sizeof *K),
                      *V = malloc((size_t)n * d * sizeof *V);
                t_matrix(&r, K, n, d, kind, scale);
                t_matrix(&r, V, n, d, (kind + 1) % SPEC_COUNT, 1.0 + trng_unif(&r));
                double *GA = calloc((size_t)d * d, sizeof *GA),
                       *GV = calloc((size_t)d * d, sizeof *GV);
                double lamA[64], lamV[64], *BA = malloc((size_t)d * d * sizeof *BA);
                double *BV = malloc((size_t)d * d * sizeof *BV);
                basis_gram_add(GA, K, na, d, d);
                basis_gram_add(GV, V, na, d, d);
                DrrlError e;
                cr_assert_eq(basis_eig_batch(GA, 1, d, lamA, BA, &e), DRRL_OK);
                cr_assert_eq(basis_eig_batch(GV, 1, d, lamV, BV, &e), DRRL_OK);
                int rk = 1 + (int)(trng_u64(&r) % (uint64_t)d);
                double q[64], qr[64], x[64], y[64];
                for (int j = 0; j < d; j++)
                    q[j] = trng_normal(&r) * scale;
                t_residual(q, BA, d, rk, qr);
                double q_res = 0;
                for (int j = 0; j < d; j++)
                    q_res += qr[j] * qr[j];
                q_res = sqrt(q_res);
                /* key residual bound: sigma_{r+1}(A)^2 + ||C(I-P)||_F^2; value likewise */
                double cres = 0, vres = 0, vfro2 = 0, vrowmax = 0;
                for (int i = na; i < n; i++) {
                    for (int j = 0; j < d; j++)
                        x[j] = K[i * d + j];
                    t_residual(x, BA, d, rk, y);
                    for (int j = 0; j < d; j++)
                        cres += y[j] * y[j];
                    for (int j = 0; j < d; j++)
                        x[j] = V[i * d + j];
                    t_residual(x, BV, d, rk, y);
                    for (int j = 0; j < d; j++)
                        vres += y[j] * y[j];
                }
                for (int i = 0; i < n; i++) {
                    double rn = 0;
                    for (int j = 0; j < d; j++)
                        rn += (double)V[i * d + j] * V[i * d + j];
                    vfro2 += rn;
                    vrowmax = fmax(vrowmax, sqrt(rn));
                }
                double trA = 0, trV = 0;
                for (int j = 0; j < d; j++)
                    trA += lamA[j], trV += lamV[j];
                double key_res2 =
                    (rk < d ? lamA[rk] + bounds_gram_allowance(trA, na, d) : 0) + cres;
                double val_res2 =
                    (rk < d ? lamV[rk] + bounds_gram_allowance(trV, na, d) : 0) + vres;
                /* exact and approximate scores, probabilities, outputs */
                double s[128], st[128], p[128], pt[128];
                double isd = 1.0 / sqrt((double)d);
                double qp[64];
                for (int j = 0; j < d; j++)
                    qp[j] = q[j] - qr[j]; /* q P */
                for (int i = 0; i < n; i++) {
                    double a = 0, b = 0;
                    for (int j = 0; j < d; j++)
                        a += q[j] * K[i * d + j], b += qp[j] * K[i * d + j];
                    s[i] = a * isd, st[i] = b * isd;
                }
                double ms = -INFINITY, mt = -INFINITY, zs = 0, zt = 0;
                for (int i = 0; i < n; i++)
                    ms = fmax(ms, s[i]), mt = fmax(mt, st[i]);
                for (int i = 0; i < n; i++)
                    zs += (p[i] = exp(s[i] - ms)), zt += (pt[i] = exp(st[i] - mt));
                double ds2 = 0, dp2 = 0, dp1 = 0, pt2 = 0;
                for (int i = 0; i < n; i++) {
                    p[i] /= zs, pt[i] /= zt;
                    ds2 += (s[i] - st[i]) * (s[i] - st[i]);
                    dp2 += (p[i] - pt[i]) * (p[i] - pt[i]);
                    dp1 += fabs(p[i] - pt[i]);
                    pt2 += pt[i] * pt[i];
                }
                ds2 = sqrt(ds2), dp2 = sqrt(dp2), pt2 = sqrt(pt2);
                double sb = bounds_score(q_res, key_res2, d);
                cr_assert(ds2 <= sb * (1 + REL) + 1e-12, "score %g > %g", ds2, sb);
                cr_assert(dp2 <= bounds_softmax_l2(ds2) * (1 + REL) + 1e-15);
                cr_assert(dp1 <= bounds_softmax_l1(ds2) * (1 + REL) + 1e-15);
                double o[64] = {0}, ot[64] = {0}, tmp[64] = {0};
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < d; j++)
                        o[j] += p[i] * V[i * d + j], tmp[j] += pt[i] * V[i * d + j];
                double tp[64];
                t_residual(tmp, BV, d, rk, tp);
                double err2 = 0, no = 0;
                for (int j = 0; j < d; j++) {
                    ot[j] = tmp[j] - tp[j]; /* p~ V P_V */
                    err2 += (o[j] - ot[j]) * (o[j] - ot[j]);
                    no += ot[j] * ot[j];
                }
                double ob = bounds_output(sb, sqrt(vfro2), vrowmax, pt2, val_res2);
                cr_assert(sqrt(err2) <= ob * (1 + REL) + 1e-12, "output %g > %g", sqrt(err2),
                          ob);
                double rel = bounds_relative(ob, sqrt(no));
                double on = 0;
                for (int j = 0; j < d; j++)
                    on += o[j] * o[j];
                if (isfinite(rel) && on > 0) {
                    cr_assert(sqrt(err2 / on) <= rel * (1 + REL) + 1e-12);
                    if (rel < 1.0)
                        nontrivial++;
                }
                free(K), free(V), free(GA), free(GV), free(BA), free(BV);
                n_cases++;
            }
    cr_assert_eq(n_cases, 1280);
    cr_assert(nontrivial > 100, "only %d informative relative bounds", nontrivial);
}

/* Softmax constants on adversarial inputs: large logits, one-hot limits. */
Test(bounds, softmax_lipschitz_random)
{
    TRng r = {11};
    for (int trial = 0; trial < 5000; trial++) {
        int n = 2 + (int)(trng_u64(&r) % 60);
        double x[64], y[64], px[64], py[64], sc = exp(6.0 * trng_unif(&r) - 3.0);
        double mx = -INFINITY, my = -INFINITY, zx = 0, zy = 0, d2 = 0, dinf = 0;
        for (int i = 0; i < n; i++) {
            x[i] = trng_normal(&r) * sc;
            y[i] = x[i] + trng_normal(&r) * sc * trng_unif(&r);
            mx = fmax(mx, x[i]), my = fmax(my, y[i]);
            d2 += (x[i] - y[i]) * (x[i] - y[i]);
            dinf = fmax(dinf, fabs(x[i] - y[i]));
        }
        for (int i = 0; i < n; i++)
            zx += (px[i] = exp(x[i] - mx)), zy += (py[i] = exp(y[i] - my));
        double e2 = 0, e1 = 0;
        for (int i = 0; i < n; i++) {
            double a = px[i] / zx - py[i] / zy;
            e2 += a * a, e1 += fabs(a);
        }
        cr_assert(sqrt(e2) <= bounds_softmax_l2(sqrt(d2)) * (1 + REL) + 1e-15);
        cr_assert(e1 <= bounds_softmax_l1(dinf) * (1 + REL) + 1e-15);
    }
}

/* Weyl, Davis-Kahan/Wedin and spectral-norm bounds for a growing key set:
 * G' = G + C^T C. */
Test(bounds, weyl_davis_kahan_spectral)
{
    TRng r = {23};
    int n_cases = 0, informative = 0, informative_res = 0;
    for (int si = 0; si < 4; si++)
        for (int kind = 0; kind < SPEC_COUNT; kind++)
            for (int trial = 0; trial < 40; trial++) {
                Case c;
                int n = sizes[si][0], d = sizes[si][1];
                case_make(&c, &r, n, d, kind, 1.0 + 5 * trng_unif(&r));
                int nc = 1 + (int)(trng_u64(&r) % 8);
                float *C = malloc((size_t)nc * d * sizeof *C);
                double eps = exp(-6.0 * trng_unif(&r));
                for (int i = 0; i < nc * d; i++)
                    C[i] = (float)(trng_normal(&r) * eps);
                double *dG = calloc((size_t)d * d, sizeof *dG),
                       *G2 = malloc((size_t)d * d * sizeof *G2);
                basis_gram_add(dG, C, nc, d, d);
                basis_gram_symmetrize(dG, d);
                double efro = 0;
                for (int i = 0; i < d * d; i++)
                    G2[i] = c.G[i] + dG[i], efro += dG[i] * dG[i];
                efro = sqrt(efro);
                double e_up = bounds_spec_upper(dG, d, 4);
                double e_lo = bounds_spec_lower(dG, d, 30);
                double lam2[64], *B2 = malloc((size_t)d * d * sizeof *B2), lamE[64];
                double *BE = malloc((size_t)d * d * sizeof *BE);
                DrrlError e;
                cr_assert_eq(basis_eig_batch(G2, 1, d, lam2, B2, &e), DRRL_OK);
                cr_assert_eq(basis_eig_batch(dG, 1, d, lamE, BE, &e), DRRL_OK);
                double etrue = lamE[0];
                cr_assert(e_up >= etrue * (1 - REL), "spec upper %g < %g", e_up, etrue);
                cr_assert(e_up <= efro * (1 + REL));
                cr_assert(e_lo <= etrue * (1 + REL));
                /* Weyl on eigenvalues of the Grams: half-width ||dG||_2 <= e_up */
                for (int k = 0; k < d; k++) {
                    cr_assert(fabs(lam2[k] - c.lam[k]) <= e_up * (1 + 1e-7) + 1e-9 * c.lam[0]);
                    cr_assert(lam2[k] >= c.lam[k] - 1e-9 * c.lam[0]); /* PSD update */
                }
                /* C = B^T dG B in the old eigenbasis, for the residual form */
                double *Cm = calloc((size_t)d * d, sizeof *Cm);
                for (int a = 0; a < d; a++)
                    for (int b = 0; b < d; b++) {
                        double acc = 0;
                        for (int i = 0; i < d; i++)
                            for (int j = 0; j < d; j++)
                                acc += c.B[i * d + a] * dG[i * d + j] * c.B[j * d + b];
                        Cm[a * d + b] = acc;
                    }
                /* sin theta between top-r eigenspaces */
                for (int rk = 1; rk < d; rk++) {
                    double bnd = bounds_sin_theta(c.lam, d, rk, e_up);
                    double off = 0, comp = 0;
                    for (int a = rk; a < d; a++)
                        for (int b = 0; b < d; b++)
                            *(b < rk ? &off : &comp) += Cm[a * d + b] * Cm[a * d + b];
                    double bres = bounds_sin_theta_residual(c.lam[rk - 1] - c.lam[rk],
                                                            sqrt(off), sqrt(comp));
                    if (bres < 0.5)
                        informative_res++;
                    /* sin theta = ||(I - U'U'^T) U||_2 = ||U_perp'^T U||_2 */
                    int m = d - rk;
                    double *M = malloc((size_t)m * rk * sizeof *M);
                    for (int a = 0; a < m; a++)
                        for (int b = 0; b < rk; b++) {
                            double dot = 0;
                            for (int i = 0; i < d; i++)
                                dot += B2[i * d + rk + a] * c.B[i * d + b];
                            M[a * rk + b] = dot;
                        }
                    double st = spec_norm(M, m, rk);
                    cr_assert(st <= bnd + 1e-7, "sin theta %g > bound %g (r %d)", st, bnd, rk);
                    cr_assert(st <= bres + 1e-7, "sin theta %g > residual bound %g (r %d)", st,
                              bres, rk);
                    if (bnd < 0.5)
                        informative++;
                    free(M);
                }
                free(C), free(dG), free(G2), free(B2), free(BE), free(Cm);
                case_free(&c);
                n_cases++;
            }
    cr_assert_eq(n_cases, 640);
    cr_assert(informative > 500, "only %d informative sin-theta bounds", informative);
    cr_assert(informative_res >= informative, "residual form less informative: %d vs %d",
              informative_res, informative);
}

/* Near-tight cases: each bound is met (to rounding) or nearly met by a
 * constructed input, so a weaker constant or a dropped term fails here. */

/* ||o|| < ||o~||: o = o~ (1 - b / ||o~||) is at distance b from o~ and has
 * relative error b / (||o~|| - b) exactly; b / ||o~|| would understate it. */
Test(bounds, relative_tight_when_the_exact_output_is_shorter)
{
    for (int k = 1; k < 100; k++) {
        double n = 1.0 + k, b = n * k / 101.0;
        double o_norm = n - b; /* ||o|| = ||o~|| - b */
        double rel = b / o_norm;
        double bound = bounds_relative(b, n);
        cr_assert(rel <= bound * (1 + 1e-12), "relative %g > bound %g", rel, bound);
        cr_assert(bound <= rel * (1 + 1e-12), "not tight: %g vs %g", bound, rel);
    }
    cr_assert(isinf(bounds_relative(2.0, 2.0)));
}

/* Davis-Kahan with the perturbation aligned to the eigengap: on the top two
 * eigenvalues 11 and 10 (gap 1), E = [[-e, e], [e, e]] narrows the gap to
 * 1 - 2e and rotates by theta with tan 2 theta = 2e / (1 - 2e); ||E||_2 =
 * e sqrt 2. At e = 0.3, sin theta = 0.472 > ||E|| / gap = 0.424: the bound
 * needs the ||E|| shift of the gap (0.424 / 0.576 = 0.737). */
Test(bounds, davis_kahan_gap_aligned)
{
    double lam[4] = {11.0, 10.0, 1.0, 0.5};
    int tested = 0;
    for (double e = 0.02; e < 0.35; e += 0.02) {
        double th = 0.5 * atan2(2.0 * e, 1.0 - 2.0 * e), s = sin(th);
        double enorm = e * sqrt(2.0);
        double bnd = bounds_sin_theta(lam, 4, 1, enorm);
        cr_assert(s <= bnd * (1 + 1e-12), "e %g: sin %g > bound %g", e, s, bnd);
        if (e > 0.25) {
            cr_assert(s > enorm / (lam[0] - lam[1]), "no longer needs the shift at e %g", e);
            tested++;
        }
        /* residual form with a PSD update along the gap: E = v v^T, v = (a, c) */
        double a = sqrt(e), c = sqrt(e) * 0.5;
        double th2 = 0.5 * atan2(2.0 * a * c, 1.0 + a * a - c * c);
        double br = bounds_sin_theta_residual(1.0, a * c, c * c);
        cr_assert(sin(th2) <= br * (1 + 1e-12), "residual: %g > %g", sin(th2), br);
    }
    cr_assert(tested >= 3);
}

/* Softmax l2: at p = (1/2, 1/2) the Jacobian's eigenvalue 1/2 lies along
 * (1, -1): a small step there moves the probabilities by half its length.
 * Softmax l1: 2 tanh(e / 2) is attained at p_1 = 1 / (1 + e^e), delta = (e, -e). */
Test(bounds, softmax_worst_case_directions)
{
    for (double d = 1e-4; d < 1.0; d *= 3.0) {
        double x = d / sqrt(2.0); /* y = (0, 0) + d (1, -1) / sqrt 2 */
        double p1 = 1.0 / (1.0 + exp(-2.0 * x)), dp2 = sqrt(2.0) * fabs(p1 - 0.5);
        double bl2 = bounds_softmax_l2(d);
        cr_assert(dp2 <= bl2 * (1 + 1e-12));
        if (d < 1e-2)
            cr_assert(dp2 >= 0.999 * bl2, "l2 not tight: %g vs %g", dp2, bl2);
    }
    for (double e = 1e-3; e < 5.0; e *= 2.0) {
        double y1 = -e / 1.0, q1 = 1.0 / (1.0 + exp(e)); /* p = (q1, 1 - q1) */
        (void)y1;
        double w1 = q1 * exp(e), w2 = (1.0 - q1) * exp(-e), z = w1 + w2;
        double l1 = fabs(w1 / z - q1) + fabs(w2 / z - (1.0 - q1));
        double b = bounds_softmax_l1(e);
        cr_assert(l1 <= b * (1 + 1e-12), "l1 %g > %g", l1, b);
        cr_assert(l1 >= b * (1 - 1e-9), "l1 not tight: %g vs %g", l1, b);
    }
}

/* The engine's eigensolver (basis.c: Householder + implicit QL, no BLAS)
 * against LAPACK's dsyevr, over Grams of every spectrum kind, scales from
 * 1e-6 to 1e6 and sizes 1 to 64, plus a diagonal, a zero and a matrix of
 * two repeated eigenvalues. The allowance bounds_gram_allowance takes for
 * the eigensolver is 16 d u ||G||_2 (bounds.h): each eigenvalue within that
 * of dsyevr's (both backward stable: 2 x 16 d u ||G||), the eigenvectors'
 * residual ||G b - lambda b|| and orthonormality within 16 d u ||G|| and
 * 16 d u. A NaN gives an error, not a hang. */
Test(bounds, eigensolver_matches_lapack)
{
    TRng r = {2027};
    const double u = 0x1p-53;
    for (int d = 1; d <= 64; d += d < 8 ? 1 : 7) {
        for (int kind = 0; kind < SPEC_COUNT + 3; kind++) {
            double scale = pow(10.0, (double)(kind % 5) * 3.0 - 6.0);
            double *G = calloc((size_t)d * d, sizeof *G),
                   *a = malloc((size_t)d * d * sizeof *a);
            double *lam = malloc((size_t)d * sizeof *lam),
                   *B = malloc((size_t)d * d * sizeof *B);
            double *w = malloc((size_t)d * sizeof *w);
            if (kind < SPEC_COUNT) {
                int n = 2 * d + 3;
                float *X = malloc((size_t)n * d * sizeof *X);
                t_matrix(&r, X, n, d, kind, scale);
                basis_gram_add(G, X, n, d, d);
                basis_gram_symmetrize(G, d);
                free(X);
            } else if (kind == SPEC_COUNT) { /* diagonal, unsorted */
                for (int i = 0; i < d; i++)
                    G[i * d + i] = (double)((i * 7) % 5) * scale;
            } else if (kind == SPEC_COUNT + 2) { /* eigenvalues 2 and 1, many times */
                double *U = malloc((size_t)d * d * sizeof *U);
                t_orth(&r, U, d, d);
                for (int i = 0; i < d; i++)
                    for (int j = 0; j < d; j++) {
                        double s = 0.0;
                        for (int k = 0; k < d; k++)
                            s += U[i * d + k] * (k % 2 ? 1.0 : 2.0) * U[j * d + k];
                        G[i * d + j] = s;
                    }
                basis_gram_symmetrize(G, d); /* exactly symmetric */
                free(U);
            }                 /* SPEC_COUNT + 1: zero */
            double nrm = 0.0; /* ||G||_F >= ||G||_2 */
            for (int i = 0; i < d * d; i++)
                nrm += G[i] * G[i];
            nrm = sqrt(nrm);
            DrrlError e;
            cr_assert_eq(basis_eig_batch(G, 1, d, lam, B, &e), DRRL_OK);
            memcpy(a, G, (size_t)d * d * sizeof *a);
            lapack_int m = 0;
            lapack_int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
            double *zz = malloc((size_t)d * d * sizeof *zz);
            cr_assert_eq(LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'A', 'U', d, a, d, 0.0, 0.0, 0,
                                        0, 0.0, &m, w, zz, d, isuppz),
                         0);
            double tol = 16.0 * d * u * nrm;
            for (int i = 0; i < d; i++) {
                double ref = w[d - 1 - i] > 0.0 ? w[d - 1 - i] : 0.0;
                cr_assert_leq(fabs(lam[i] - ref), 2.0 * tol,
                              "d %d kind %d: lambda_%d %.17g vs %.17g", d, kind, i, lam[i],
                              ref);
                if (i > 0)
                    cr_assert_geq(lam[i - 1], lam[i], "descending");
            }
            for (int j = 0; j < d; j++)
                for (int i = 0; i < d; i++) {
                    double gb = 0.0, bb = 0.0;
                    for (int k = 0; k < d; k++) {
                        gb += G[i * d + k] * B[k * d + j];
                        bb += B[k * d + i] * B[k * d + j];
                    }
                    /* lam is clamped at 0: a tiny negative eigenvalue's residual is its size */
                    cr_assert_leq(fabs(gb - lam[j] * B[i * d + j]), 2.0 * tol,
                                  "d %d kind %d: residual", d, kind);
                    cr_assert_leq(fabs(bb - (i == j)), 16.0 * d * u, "d %d kind %d: B^T B", d,
                                  kind);
                }
            free(G), free(a), free(lam), free(B), free(w), free(isuppz), free(zz);
        }
    }
    double G[9] = {1, 2, 3, 2, NAN, 4, 3, 4, 5}, lam[3], B[9];
    DrrlError e;
    cr_assert_eq(basis_eig_batch(G, 1, 3, lam, B, &e), DRRL_E_INTERNAL);
    cr_assert(strstr(e.msg, "did not converge") != NULL, "%s", e.msg);
}
