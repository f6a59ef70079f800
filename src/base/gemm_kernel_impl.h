/* gemm_kernel_impl.h: the register-blocked kernel of gemm.c, included once
 * per vector variant (no include guard, on purpose). The includer defines
 * GK_SFX (name suffix), GK_ATTR (target attribute), GK_MR (rows per block),
 * GK_W (floats per vector; a panel is two vectors, 2 * GK_W columns), the
 * vector type GK_VT and GK_ZERO(), GK_LOAD(p), GK_STORE(p, v), GK_SET1(x),
 * GK_ADD(a, b) and GK_FMA(a, b, c) = a * b + c rounded once; this header
 * undefines them all at its end. */

#define GK_CAT2(a, b) a##_##b
#define GK_CAT(a, b) GK_CAT2(a, b)
#define GK_KERN GK_CAT(kern, GK_SFX)
#define GK_RUN GK_CAT(run, GK_SFX)

/* An mr x (2 GK_W) block of y from mr rows of x and one packed panel b:
 * each accumulator from 0, one multiply-add per kk in order. */
GK_ATTR static inline __attribute__((always_inline)) void GK_KERN(const size_t mr, size_t k,
                                                                  const float *x, size_t ldx,
                                                                  const float *b, float *y,
                                                                  size_t ldy, int acc)
{
    GK_VT c0[GK_MR], c1[GK_MR];
#pragma GCC unroll 12
    for (size_t i = 0; i < mr; i++)
        c0[i] = c1[i] = GK_ZERO();
    for (size_t kk = 0; kk < k; kk++) {
        GK_VT b0 = GK_LOAD(b + kk * 2 * GK_W);
        GK_VT b1 = GK_LOAD(b + kk * 2 * GK_W + GK_W);
#pragma GCC unroll 12
        for (size_t i = 0; i < mr; i++) {
            GK_VT a = GK_SET1(x[i * ldx + kk]);
            c0[i] = GK_FMA(a, b0, c0[i]);
            c1[i] = GK_FMA(a, b1, c1[i]);
        }
    }
#pragma GCC unroll 12
    for (size_t i = 0; i < mr; i++) {
        float *yi = y + i * ldy;
        if (acc) {
            c0[i] = GK_ADD(GK_LOAD(yi), c0[i]);
            c1[i] = GK_ADD(GK_LOAD(yi + GK_W), c1[i]);
        }
        GK_STORE(yi, c0[i]);
        GK_STORE(yi + GK_W, c1[i]);
    }
}

#define GK_CASE(M)                                                                             \
    case M:                                                                                    \
        GK_KERN(M, k, x, ldx, b, y, ldy, acc);                                                 \
        break;

/* The kernel for mr rows (1 .. GK_MR), each count its own unrolled copy. */
GK_ATTR static void GK_RUN(size_t mr, size_t k, const float *x, size_t ldx, const float *b,
                           float *y, size_t ldy, int acc)
{
    switch (mr) {
        GK_CASE(1)
        GK_CASE(2)
        GK_CASE(3)
        GK_CASE(4)
        GK_CASE(5)
        GK_CASE(6)
#if GK_MR >= 12
        GK_CASE(7)
        GK_CASE(8)
        GK_CASE(9)
        GK_CASE(10)
        GK_CASE(11)
        GK_CASE(12)
#endif
    default:
        break;
    }
}

#undef GK_CASE
#undef GK_RUN
#undef GK_KERN
#undef GK_CAT
#undef GK_CAT2
#undef GK_SFX
#undef GK_ATTR
#undef GK_MR
#undef GK_W
#undef GK_VT
#undef GK_ZERO
#undef GK_LOAD
#undef GK_STORE
#undef GK_SET1
#undef GK_ADD
#undef GK_FMA
