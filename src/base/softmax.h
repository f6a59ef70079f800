/* softmax.h: the softmax row of the exact attention (src/model/forward.c)
 * and of the low-rank one (src/attn/attn_core.c), one function so both paths
 * compute the same bits, and the row maximum it subtracts, which the forward
 * pass's per-row NLL shares.
 *
 * Hot loops (base/hot.h): compiled for AVX-512, AVX2 and baseline x86-64, the
 * variant picked at load time; every variant gives the same bits. */
#ifndef DRRL_BASE_SOFTMAX_H
#define DRRL_BASE_SOFTMAX_H

#include <stddef.h>

/* The largest of row[0..n), n >= 1 (eight running maxima, then the tail: a
 * comparison, so the order does not change the result). */
float softmax_row_max(const float *row, size_t n);

/* Softmax of row[0..lim) in place (lim >= 1); row[lim..nk) set to 0.
 * Max-subtracted, exponentials from fastexp_nonpos (base/fastexp.h); the sum
 * accumulates in double in a fixed order (eight partial sums, then the tail),
 * so results do not depend on the thread or the instruction set. */
void softmax_row(float *row, size_t lim, size_t nk);

#endif
