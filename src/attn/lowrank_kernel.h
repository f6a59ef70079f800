/* lowrank_kernel.h: the fused rank-r attention kernel of one head.
 *
 * For each query row i of a call (absolute position pos0 + i, keys
 * 0..pos0+i), with qs the row's projected query (R floats) and PK, PV the
 * projected key and value caches (R rows of ld floats, PK[j*ld + t]):
 *   s_t = scale * qs . PK[:, t],  p = softmax(s),  ab = sum_t p_t PV[:, t]
 * in one flash-style pass over the keys (Milakov & Gimelshein, "Online
 * normalizer calculation for softmax", 2018; Dao et al., FlashAttention,
 * 2022, Alg. 1): keys in chunks of LOWRANK_KERNEL_CHUNK at fixed absolute
 * positions, a chunk's scores kept in L1, the running maximum raised chunk
 * by chunk (the sums rescaled by e^(old - new) when it rises), the
 * exponentials accumulated straight into the r-dim value sum. No score
 * matrix is written; per (row, key) the work is r multiply-adds for the
 * score, one exponential and r multiply-adds for the value, all in
 * registers and L1.
 *
 * Determinism: every sum over keys runs over 16 fixed lanes (key t in lane
 * t mod 16) in key order, chunks start at fixed positions, lanes are added
 * in a fixed order at the end, and every multiply-add is fused (fmaf or its
 * vector form, one rounding), so a row's result depends on its inputs only:
 * not on the call or block it came in, the thread, or the variant picked
 * for the CPU (AVX-512, AVX2 with FMA, or portable C with fmaf, which is
 * slow where the CPU has no FMA but gives the same bits). */
#ifndef DRRL_ATTN_LOWRANK_KERNEL_H
#define DRRL_ATTN_LOWRANK_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define LOWRANK_KERNEL_MAX_RANK 64 /* wider ranks go through sgemm (attn_core.c) */
#define LOWRANK_KERNEL_CHUNK 256   /* keys per chunk (a multiple of 16) */
/* Floats to add to PK's and PV's leading dimension beyond the key count:
 * one cache line, so that directions are not a power of two apart in
 * memory (the kernel reads up to 2R of them side by side, and such rows
 * share L1 sets: measured 1.7x slower at R = 16). */
#define LOWRANK_KERNEL_LD_PAD 16

typedef enum LowrankIsa {
    LOWRANK_ISA_PORTABLE = 0,
    LOWRANK_ISA_AVX2 = 1, /* AVX2 and FMA */
    LOWRANK_ISA_AVX512 = 2,
    LOWRANK_ISA_AVX512_8 = 3, /* AVX-512, 8 score vectors in flight: best on Intel */
    LOWRANK_ISA_COUNT
} LowrankIsa;

/* Bytes of scratch lowrank_kernel_rows needs at rank R. */
size_t lowrank_kernel_scratch(int32_t R);

/* Rows [0, n) of a call: row i attends keys 0..pos0+i. qs: (n, R) projected
 * queries, row stride R; ab: (n, R) out, the value sum over the softmax
 * normaliser; pnorm: (n) ||p||_2 per row, or NULL; probs: row i's
 * probabilities at probs + i * probs_stride over keys 0..N-1 (0 past the
 * row's last key; N >= pos0 + n), or NULL. scratch:
 * lowrank_kernel_scratch(R) bytes. R in 1..LOWRANK_KERNEL_MAX_RANK. Runs
 * the best variant this CPU has (lowrank_kernel_best). */
void lowrank_kernel_rows(const float *qs, int32_t R, const float *PK, const float *PV,
                         size_t ld, size_t n, size_t pos0, float scale, float *ab,
                         double *pnorm, float *probs, size_t probs_stride, size_t N,
                         void *scratch);

/* The same with a given variant (tests: every variant gives the same bits);
 * isa must be supported (lowrank_kernel_supported). */
void lowrank_kernel_rows_isa(LowrankIsa isa, const float *qs, int32_t R, const float *PK,
                             const float *PV, size_t ld, size_t n, size_t pos0, float scale,
                             float *ab, double *pnorm, float *probs, size_t probs_stride,
                             size_t N, void *scratch);

/* The kernel's e^x for x <= 0 (every variant's, lane by lane), for tests. */
float lowrank_kernel_exp(float x);

/* Whether this build and CPU run isa; the best of them; its name
 * ("avx512-8", "avx512", "avx2", "portable"). */
int lowrank_kernel_supported(LowrankIsa isa);
LowrankIsa lowrank_kernel_best(void);
const char *lowrank_kernel_isa_name(LowrankIsa isa);

#endif
