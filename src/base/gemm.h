/* gemm.h: y = x W^T (or y += x W^T) for a model's linear layers, with W's
 * rows (the output columns) packed first into panels of gemm_panel()
 * columns. Each output y[i][j] is one chain of fused multiply-adds over
 * k = 0, 1, ..., K-1 in order, from 0 (then added to y when accumulating),
 * so its bits depend on row i of x and row j of W alone: never on how many
 * rows or columns a call covers, how the work is tiled, or the thread count;
 * and they are the same on every kernel (AVX-512, AVX2 with FMA, portable
 * fmaf). Row-major throughout. */
#ifndef DRRL_GEMM_H
#define DRRL_GEMM_H

#include <stddef.h>

typedef enum { GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512, GEMM_ISA_COUNT } GemmIsa;

/* The fastest kernel this CPU runs, and whether it runs isa. */
GemmIsa gemm_best(void);
int gemm_supported(GemmIsa isa);
const char *gemm_isa_name(GemmIsa isa);

/* Columns per packed panel for isa's kernel. */
size_t gemm_panel(GemmIsa isa);

/* Floats gemm_pack writes for n columns of depth k (whole panels). */
size_t gemm_pack_floats(GemmIsa isa, size_t n, size_t k);

/* Pack rows 0..n-1 of W (row stride ldw, k floats each) into wp, panel by
 * panel: panel p holds, for each kk < k, columns p*P .. p*P+P-1 of W^T row
 * kk (P = gemm_panel(isa)), zeros past column n. wp: gemm_pack_floats(isa,
 * n, k) floats, 64-byte aligned for speed. */
void gemm_pack(GemmIsa isa, float *wp, const float *w, size_t ldw, size_t n, size_t k);

/* y[i*ldy + j] = (accumulate ? y[i*ldy + j] : 0) + sum_kk x[i*ldx + kk] *
 * W[j][kk] for i < m, j < n, with wp from gemm_pack(isa, wp, W, ., n, k). */
void gemm_packed(GemmIsa isa, float *y, size_t ldy, const float *x, size_t ldx, const float *wp,
                 size_t m, size_t n, size_t k, int accumulate);

#endif
