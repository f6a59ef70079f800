/* bounds.h: proven perturbation bounds for low-rank attention.
 *
 * Notation (one head, head_dim d): keys K (n x d), values V (n x d), query q
 * (1 x d); orthonormal bases B_K, B_V (d x d, columns); P = B[:, :r] B[:, :r]^T
 * the rank-r projector. Low-rank attention computes
 *   s~ = q P_K K^T / sqrt(d),  p~ = softmax(s~),  o~ = p~ V P_V
 * against exact s = q K^T / sqrt(d), p = softmax(s), o = p V.
 * All bounds hold in exact arithmetic; comparisons with float32 results must
 * allow for round-off (bounds_roundoff gives the allowance drrl uses).
 * Every function returns a bound (never an estimate) unless it says so.
 */
#ifndef DRRL_BOUNDS_H
#define DRRL_BOUNDS_H

#include <stdint.h>

/* Eckart-Young-Mirsky (Eckart & Young 1936; Mirsky 1960): for the best rank-r
 * approximation X P_r, P_r onto the top-r right singular vectors,
 *   ||X - X P_r||_F = sqrt(sum_{k > r} sigma_k^2),  ||X - X P_r||_2 = sigma_{r+1}.
 * lambda: the d eigenvalues of G = X^T X (sigma_k^2), descending.
 * Returns the Frobenius tail (equality, not just a bound). */
double bounds_tail_fro(const double *lambda, int32_t d, int32_t r);
/* sigma_{r+1} (0 when r >= d). */
/* Eigenvalues from a double Gram matrix are accurate to an absolute error,
 * not a relative one: accumulating G = X^T X over n rows errs by at most
 * gamma_n trace(G) in ||.||_2 (|dG_ij| <= gamma_n a_i a_j, a_i = ||X e_i||,
 * Higham Sec. 3.5), and the eigensolver's eigenvalues (basis.c:
 * Householder reduction and implicit QL, the algorithms of LAPACK's dsytd2
 * and dsteqr) are exact for G + E with ||E||_2 <= p(d) u ||G||_2 (LAPACK
 * Users' Guide, Sec. 4.7; we take p(d) = 16 d, and tests/test_bounds.c
 * checks the solver against dsyevr within it). So sigma_k^2 computed this
 * way may be low by up to
 *   (gamma_n + 16 d u) trace(G),  u = 2^-53,
 * which bounds_gram_allowance returns; add it to any squared tail taken from
 * such eigenvalues (it matters only for tails near zero). */
double bounds_gram_allowance(double trace, int64_t n, int32_t d);
double bounds_tail_spec(const double *lambda, int32_t d, int32_t r);

/* Stale basis: for ANY orthonormal B and P = B_r B_r^T,
 *   ||X (I - P)||_F^2 = trace(G) - trace(B_r^T G B_r)            (exact)
 * since ||X(I-P)||_F^2 = trace((I-P) G (I-P)) = trace(G) - trace(P G).
 * G, B: (d, d) row-major double, G symmetric (full). O(d^2 r). */
double bounds_stale_tail2(const double *G, const double *B, int32_t d, int32_t r);

/* Nested projectors make tails non-increasing in rank (proof): every rank
 * uses the leading columns of ONE orthonormal basis B, so for r <= r' the
 * projectors are nested, P_r P_r' = P_r' P_r = P_r, hence
 * (I - P_r)(I - P_r') = I - P_r', and for any X and any unitarily invariant
 * norm (Frobenius, spectral)
 *   ||X (I - P_r')|| = ||X (I - P_r)(I - P_r')|| <= ||X (I - P_r)|| ||I - P_r'||_2
 *                    <= ||X (I - P_r)||.
 * So if b(r) >= ||X (I - P_r)|| at every rank r of an increasing list, then
 * min over r <= r' of b(r) >= ||X (I - P_r')|| too: a bound again, and one
 * that is non-increasing in rank (Horn & Johnson, Matrix Analysis, 2nd ed.,
 * Sec. 5.6 and 7.4, for the submultiplicative unitarily invariant norms).
 * bounds_prefix_min replaces b[i] by min_{j <= i} b[j] in place (b ordered
 * by increasing rank); NaN entries are left as they are and skipped. */
void bounds_prefix_min(double *b, int32_t n);

/* The stale-basis tail of one side (keys or values of one kv head) as the
 * engine keeps it: the basis B holds the top eigenvectors of Gref, the Gram
 * of the first n_ref rows (eigenvalues lam, descending); rows added since
 * (the "new" rows) are not in Gref. E[j] (j < w) is sum_t (x_t b_j)^2 over
 * every row, En[j] the same over the new rows, tot = sum_t ||x_t||^2 over
 * every row and tot_new over the new rows. */
typedef struct BoundsSide {
    const double *lam, *E, *En;
    double tot, tot_new, trace_ref;
    int64_t n_ref;
    int32_t w;
} BoundsSide;

/* Float32 projections make sum_{j<r} E_j differ from the exact
 * ||X P_r||_F^2 by a relative O(d u); subtracting it from the exact double
 * total could then understate a tail. We add 1e-6 of the total (about 16 d u
 * for d <= 1024) as an allowance, so the tails stay upper bounds. */
#define BOUNDS_PROJ_SLACK 1e-6

/* A bound on ||X (I - P_r)||_2^2 over all rows X of a side, for every rank
 * r = 0..d: res2[r] (d + 1 values). At each r, the smaller of
 *   (a) the Frobenius residual of every row, tot - sum_{j<r} E_j (exact: B is
 *       orthonormal; + BOUNDS_PROJ_SLACK tot), when r <= w, and
 *   (b) lambda_{r+1}(Gref) + bounds_gram_allowance + the Frobenius residual of
 *       the new rows (tot_new - sum_{j<r} En_j when r <= w, else tot_new, their
 *       whole energy), since with X = [A; C] (A the rows of Gref, C the new
 *       ones) ||X y||^2 = ||A y||^2 + ||C y||^2 <= (lambda_{r+1}(Gref) +
 *       ||C (I-P_r)||_F^2) ||y||^2 for y = (I - P_r) x;
 * then the running minimum over r (bounds_prefix_min: the projectors are
 * nested), so that res2 is non-increasing in r. Without that minimum (b)
 * jumps at r = w + 1, where it stops knowing the new rows' projections.
 * res2[d] = 0. O(d). */
void bounds_side_res2(const BoundsSide *s, int32_t d, double *res2);

/* Score error for one query row:
 *   s - s~ = q (I - P) K^T / sqrt(d) = q (I-P) (I-P) K^T / sqrt(d)
 *   ||s - s~||_2 <= ||q (I - P)||_2 ||K (I - P)||_2 / sqrt(d)
 * (submultiplicativity). With K's rows split as [A; C], ||K(I-P)||_2^2 <=
 * ||A(I-P)||_2^2 + ||C(I-P)||_F^2 because ||[A;C]x||^2 = ||Ax||^2 + ||Cx||^2;
 * with P from A's own top-r right singular vectors ||A(I-P)||_2 = sigma_{r+1}(A).
 * Arguments: q_res = ||q (I-P)||_2, key_res2 = a bound on ||K(I-P)||_2^2. */
double bounds_score(double q_res, double key_res2, int32_t d);

/* Softmax in l2 (proof): softmax's Jacobian J = diag(p) - p p^T is symmetric
 * positive semidefinite, and by Gershgorin (row i: p_i(1-p_i) + sum_{j!=i}
 * p_i p_j = 2 p_i (1 - p_i) <= 1/2) its largest eigenvalue is <= 1/2. By the
 * mean value theorem in integral form, softmax(x) - softmax(y) =
 * int_0^1 J(y + t(x-y)) (x-y) dt, so
 *   ||softmax(x) - softmax(y)||_2 <= (1/2) ||x - y||_2.
 * (Gao & Pavel, "On the properties of the softmax function", 2017, prove the
 * weaker constant 1.) Also <= sqrt(2) (two probability vectors). */
double bounds_softmax_l2(double ds2);

/* Softmax in l1 (proof): with x = y + delta, |delta_i| <= e, p = softmax(y),
 * p' = softmax(x): p'_i / p_i = e^{delta_i} / sum_j p_j e^{delta_j} lies in
 * [a, b] with b / a <= k = e^{2e}. Let S = {i : p'_i > p_i}, P = p(S),
 * Q = p'(S); then ||p' - p||_1 = 2 (Q - P), and Q / P <= b <= k a <=
 * k (1 - Q) / (1 - P), i.e. Q <= k P / (1 + (k - 1) P). Maximising
 * k P / (1 + (k - 1) P) - P over P in [0, 1] (at P = 1 / (1 + sqrt k)) gives
 *   ||softmax(x) - softmax(y)||_1 <= 2 (sqrt k - 1) / (sqrt k + 1) = 2 tanh(e / 2),
 * attained by p = (1/(1 + e^e), e^e/(1 + e^e)), delta = (+e, -e): the constant
 * is the best possible. (The earlier e^{2e} - 1, from the ratio bound alone,
 * is about twice as large for small e.) ds_inf: a bound on ||x - y||_inf
 * (||.||_2 is one). */
double bounds_softmax_l1(double ds_inf);

/* Head output, one row (proof):
 *   o - o~ = (p - p~) V + p~ V (I - P_V)
 *   ||(p - p~) V||_2 <= min(||p - p~||_2 ||V||_2, ||p - p~||_1 max_j ||v_j||_2)
 *   ||p~ V (I - P_V)||_2 <= ||p~||_2 ||V (I - P_V)||_2
 * (the paper's ||dO||_F <= ||dA||_2 ||V||_F is the first step's F-form).
 * Arguments: ds2 bound on ||s - s~||_2; v_spec bound on ||V||_2 (||V||_F is
 * one); v_rowmax = max_j ||v_j||; p_tilde2 = ||p~||_2 (<= 1); val_res2 bound on
 * ||V(I-P_V)||_2^2. Returns the bound on ||o - o~||_2. */
double bounds_output(double ds2, double v_spec, double v_rowmax, double p_tilde2,
                     double val_res2);

/* Relative form: ||o - o~|| / ||o|| <= b / (||o~|| - b) when ||o~|| > b (by
 * ||o|| >= ||o~|| - ||o - o~||); +INFINITY otherwise. */
double bounds_relative(double b, double norm_approx);

/* Rank transition (paper Eq. 8): moving from rank r to r' changes the
 * truncation error X P_r - X P_r' = X (P_r - P_r') whose Frobenius norm is
 * exactly the band energy sqrt(sum_{k between r and r'} sigma_k^2) when P
 * comes from X's singular vectors (orthogonality of the bands). */
double bounds_band(const double *lambda, int32_t d, int32_t r, int32_t r2);
/* Its square: sum over k in [min(r, r2), max(r, r2)) of max(lambda_k, 0),
 * summed in ascending k. */
double bounds_band2(const double *lambda, int32_t d, int32_t r, int32_t r2);

/* Weyl (Weyl 1912; Horn & Johnson, Matrix Analysis, Cor. 7.3.5):
 * |sigma_k(M + E) - sigma_k(M)| <= ||E||_2, so any e_norm >= ||E||_2 is the
 * half-width. For the Gram matrices of a growing key set, G_new = G_ref + dG
 * with dG PSD, so lambda_k(G_ref) <= lambda_k(G_new) <= lambda_k(G_ref) +
 * ||dG||_2. */

/* Davis-Kahan sin(theta) (Davis & Kahan 1970; Stewart & Sun, Matrix
 * Perturbation Theory, Thm V.3.6) with Weyl for the perturbed spectrum: for
 * symmetric A and A + E, the top-r eigenspaces U, U' satisfy
 *   ||sin Theta(U, U')||_2 <= ||E||_2 / (lambda_r(A) - lambda_{r+1}(A) - ||E||_2)
 * when the denominator is positive; else the bound is the trivial 1. Applied
 * to Gram matrices this is Wedin's theorem for the right singular subspace.
 * lambda: eigenvalues of A descending (d values); r in [1, d]; r == d gives 0.
 * e_norm >= ||E||_2 (e.g. ||E||_F). Result in [0, 1]. */
double bounds_sin_theta(const double *lambda, int32_t d, int32_t r, double e_norm);

/* Davis-Kahan in residual form, for a PSD update A' = A + E of a symmetric A
 * whose top-r eigenvectors U (and the rest, U_perp) are known. With
 * M = U^T A' U and the residual R = A'U - U M = U_perp U_perp^T E U:
 *   - the eigenvalues of M = Lambda_r + U^T E U are >= lambda_r(A) (E PSD);
 *   - lambda_{r+1}(A') <= max_{x in span U_perp} x^T A' x
 *       <= lambda_{r+1}(A) + ||U_perp^T E U_perp||_2     (Courant-Fischer);
 * so the sin(theta) theorem (Davis & Kahan 1970; Stewart & Sun Thm V.3.6)
 * with separation delta = lambda_r(A) - lambda_{r+1}(A) - ||U_perp^T E U_perp||_2 gives
 *   ||sin Theta(U, U')||_2 <= ||U_perp^T E U||_2 / delta     (delta > 0),
 * usually far tighter than bounds_sin_theta when E mostly lies in span U
 * (new keys like old ones). Arguments: gap = lambda_r(A) - lambda_{r+1}(A),
 * off >= ||U_perp^T E U||_2 and comp >= ||U_perp^T E U_perp||_2 (Frobenius
 * norms of the blocks of B^T E B will do). Result in [0, 1]. */
double bounds_sin_theta_residual(double gap, double off, double comp);

/* Certified upper bound on ||A||_2 for a symmetric PSD d x d A (row-major,
 * full): ||A||_2 <= ||A^m||_F^{1/m} for m = 2^squarings (because
 * ||A^m||_2 = ||A||_2^m <= ||A^m||_F), tightening as m grows (the factor is at
 * most d^{1/(2m)}). O(squarings d^3). Use it where a bound needs ||.||_2:
 * power iteration (bounds_spec_lower) only estimates from below. */
double bounds_spec_upper(const double *A, int32_t d, int32_t squarings);
/* Power iteration estimate of ||A||_2 from below (A symmetric PSD); NOT a
 * bound on ||A||_2, for display beside bounds_spec_upper. */
double bounds_spec_lower(const double *A, int32_t d, int32_t iters);

/* Round-off allowance used when comparing float32 results with a bound:
 * standard dot-product analysis gives |fl(x.y) - x.y| <= gamma_n |x|.|y| with
 * gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability of
 * Numerical Algorithms, 2nd ed., Sec. 3.1). For the attention output we allow
 * 8 gamma_{n+d} times scale (scale = max_j ||v_j||, covering both the exact
 * and the approximate path and the softmax's relative error). This is an
 * allowance for comparing computed numbers, not part of any bound. */
double bounds_roundoff(int64_t n, int32_t d, double scale);

#endif
