/* basis.h: batched partial SVD of attention keys and values through their
 * Gram matrices.
 *
 * For X (rows x d), G = X^T X is d x d and symmetric positive semidefinite;
 * its eigenvectors are the right singular vectors of X and its eigenvalues
 * the squared singular values (e.g. Golub & Van Loan, Matrix Computations,
 * 4th ed., Sec. 8.6.1). So a basis for X costs a d x d eigensolve, whatever
 * the number of rows. G is accumulated in double over completed segments.
 *
 * Layouts: Gram matrices (d, d) row-major double, upper triangle maintained
 * by basis_gram_add (basis_gram_symmetrize fills the lower). Bases (d, d)
 * row-major with basis vector j in COLUMN j, ordered by decreasing singular
 * value, each column's sign fixed so its largest-magnitude entry is positive
 * (deterministic output).
 */
#ifndef DRRL_BASIS_H
#define DRRL_BASIS_H

#include <stdint.h>

#include "base/status.h"

/* G += X^T X over the upper triangle (i <= j). X: (rows, d) float with row
 * stride ld >= d. Executes flops_gram(rows, d). */
void basis_gram_add(double *G, const float *X, int64_t rows, int32_t d, int64_t ld);

/* Copy the upper triangle into the lower. */
void basis_gram_symmetrize(double *G, int32_t d);

/* Eigendecomposition of n symmetric d x d matrices G[i] (only the upper
 * triangle is read): lambda (n, d) descending and clamped at >= 0 (a PSD
 * matrix's tiny negative eigenvalues are rounding), B (n, d, d) as described
 * above. drrl's own eigensolver (basis.c: Householder reduction and
 * implicit QL, no BLAS or LAPACK calls, so that threads solving at once do
 * not meet on OpenBLAS's allocator lock; backward stable like dsyevr).
 * DRRL_E_INTERNAL if it fails to converge (a NaN or an infinity in G),
 * DRRL_E_NOMEM if workspace cannot be allocated. */
DrrlStatus basis_eig_batch(const double *G, int32_t n, int32_t d, double *lambda, double *B,
                           DrrlError *err);

/* Eigenvalues only (descending, clamped at >= 0) of n symmetric d x d
 * matrices: the same eigensolver without the vectors, about a third of the work with
 * vectors (the tridiagonal reduction dominates). Errors as basis_eig_batch. */
DrrlStatus basis_eigvals_batch(const double *G, int32_t n, int32_t d, double *lambda,
                               DrrlError *err);

/* Direct path (used by tests to check the Gram path, and timed by `drrl
 * bench attention` as the per-head alternative): SVD of X (rows x d, row
 * stride ld) in double with LAPACKE_dgesvd, singular values and right
 * singular vectors only (no rows-long left factor: O(rows d^2) time, O(rows
 * d) memory). sigma (min(rows, d)
 * values, descending; entries beyond rows are set to 0 up to d) and, if V is
 * non-NULL, V (d, d) with right singular vector j in column j, sign-fixed as
 * above (columns beyond rank(X) are an arbitrary orthonormal completion). */
DrrlStatus basis_svd(const float *X, int64_t rows, int32_t d, int64_t ld, double *sigma,
                     double *V, DrrlError *err);

/* basis_svd of n matrices, matrix h at X + h * stride (stride 0: the same
 * matrix n times), on parallel threads with single-threaded LAPACK, exactly
 * as basis_eig_batch runs its eigensolves (so the two compare like with
 * like). sigma (n, d), V (n, d, d) or NULL. Output does not depend on the
 * thread count. Errors as basis_svd (the first failing matrix's). */
DrrlStatus basis_svd_batch(const float *X, int32_t n, int64_t rows, int32_t d, int64_t ld,
                           int64_t stride, double *sigma, double *V, DrrlError *err);

/* Fix the sign of each column of B (d x d row-major) so its largest-
 * magnitude entry is positive. */
void basis_fix_signs(double *B, int32_t d);

#endif
