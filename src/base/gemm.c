#include "base/gemm.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define GEMM_X86 1
#else
#define GEMM_X86 0
#endif

/* Kernels. Each computes an mr x P block of y (mr <= its MR) from mr rows of
 * x and one packed panel: P accumulators per row, all from 0, each taking one
 * fused multiply-add per k in order (the contract in gemm.h); the panel's
 * P weights of one k are one or two vector loads, each x value a broadcast.
 * MR x P is what the registers hold: AVX-512 12 x 32 (24 of 32 registers),
 * AVX2 6 x 16 (12 of 16). x is not packed: a block's MR rows stay in L1
 * while the kernel runs over every panel of the call. */
#define GEMM_P512 32
#define GEMM_MR512 12
#define GEMM_P256 16
#define GEMM_MR256 6
#define GEMM_PPORT 16
#define GEMM_MRPORT 4

static void kern_port(size_t mr, size_t k, const float *x, size_t ldx, const float *b, float *y,
                      size_t ldy, int acc)
{
    float c[GEMM_MRPORT][GEMM_PPORT];
    memset(c, 0, sizeof c);
    for (size_t kk = 0; kk < k; kk++) {
        const float *bk = b + kk * GEMM_PPORT;
        for (size_t i = 0; i < mr; i++) {
            float a = x[i * ldx + kk];
            for (size_t j = 0; j < GEMM_PPORT; j++)
                c[i][j] = fmaf(a, bk[j], c[i][j]);
        }
    }
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < GEMM_PPORT; j++)
            y[i * ldy + j] = acc ? y[i * ldy + j] + c[i][j] : c[i][j];
}

#if GEMM_X86
#define GEMM_T512 __attribute__((target("avx512f,fma")))

#define GK_SFX 512
#define GK_ATTR GEMM_T512
#define GK_MR GEMM_MR512
#define GK_W 16
#define GK_VT __m512
#define GK_ZERO() _mm512_setzero_ps()
#define GK_LOAD(p) _mm512_loadu_ps(p)
#define GK_STORE(p, v) _mm512_storeu_ps((p), (v))
#define GK_SET1(x) _mm512_set1_ps(x)
#define GK_ADD(a, b) _mm512_add_ps((a), (b))
#define GK_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#include "base/gemm_kernel_impl.h"

#define GK_SFX 256
#define GK_ATTR __attribute__((target("avx2,fma")))
#define GK_MR GEMM_MR256
#define GK_W 8
#define GK_VT __m256
#define GK_ZERO() _mm256_setzero_ps()
#define GK_LOAD(p) _mm256_loadu_ps(p)
#define GK_STORE(p, v) _mm256_storeu_ps((p), (v))
#define GK_SET1(x) _mm256_set1_ps(x)
#define GK_ADD(a, b) _mm256_add_ps((a), (b))
#define GK_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#include "base/gemm_kernel_impl.h"
#endif

int gemm_supported(GemmIsa isa)
{
    switch (isa) {
    case GEMM_ISA_PORTABLE:
        return 1;
#if GEMM_X86
    case GEMM_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GEMM_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

GemmIsa gemm_best(void)
{
    for (int i = GEMM_ISA_COUNT - 1; i > 0; i--)
        if (gemm_supported((GemmIsa)i))
            return (GemmIsa)i;
    return GEMM_ISA_PORTABLE;
}

const char *gemm_isa_name(GemmIsa isa)
{
    static const char *const names[GEMM_ISA_COUNT] = {"portable", "avx2", "avx512"};
    return isa >= 0 && isa < GEMM_ISA_COUNT ? names[isa] : "?";
}

size_t gemm_panel(GemmIsa isa)
{
    return isa == GEMM_ISA_AVX512 ? GEMM_P512 : isa == GEMM_ISA_AVX2 ? GEMM_P256 : GEMM_PPORT;
}

static size_t gemm_mr(GemmIsa isa)
{
    return isa == GEMM_ISA_AVX512 ? GEMM_MR512
           : isa == GEMM_ISA_AVX2 ? GEMM_MR256
                                  : GEMM_MRPORT;
}

size_t gemm_pack_floats(GemmIsa isa, size_t n, size_t k)
{
    size_t P = gemm_panel(isa);
    return (n + P - 1) / P * P * k;
}

/* In blocks of 16 k: a block's destination (16 x P floats) stays in L1
 * while the P source rows are read 64 bytes at a time. */
#define GEMM_PACK_K 16

#if GEMM_X86
/* d[e * P + c] = s[c * ld + e] for c, e < 16: a 16 x 16 transpose in
 * registers (pairs unpacked, then 128-bit lanes moved twice): about 5 floats
 * a cycle where the scalar loop moves one. */
GEMM_T512 static void transpose16(float *d, size_t P, const float *s, size_t ld)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(s + (size_t)i * ld);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4q + e]: rows 4q .. 4q+3, element 4L + e of each 128-bit lane L */
    for (int q = 0; q < 4; q++) {
        r[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        r[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        r[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        r[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xDD);
        _mm512_storeu_ps(d + (size_t)(e + 0) * P, _mm512_shuffle_f32x4(v0, w0, 0x88));
        _mm512_storeu_ps(d + (size_t)(e + 8) * P, _mm512_shuffle_f32x4(v0, w0, 0xDD));
        _mm512_storeu_ps(d + (size_t)(e + 4) * P, _mm512_shuffle_f32x4(v1, w1, 0x88));
        _mm512_storeu_ps(d + (size_t)(e + 12) * P, _mm512_shuffle_f32x4(v1, w1, 0xDD));
    }
}

/* The same for 8 x 8 with AVX: d[e * P + c] = s[c * ld + e], c, e < 8. */
__attribute__((target("avx2"))) static void transpose8(float *d, size_t P, const float *s,
                                                       size_t ld)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(s + (size_t)i * ld);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4h + e]: rows 4h .. 4h+3, element 4L + e of each 128-bit lane L */
    for (int h = 0; h < 2; h++) {
        r[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        r[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        r[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        r[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        _mm256_storeu_ps(d + (size_t)e * P, _mm256_permute2f128_ps(r[e], r[4 + e], 0x20));
        _mm256_storeu_ps(d + (size_t)(e + 4) * P, _mm256_permute2f128_ps(r[e], r[4 + e], 0x31));
    }
}
#endif

void gemm_pack(GemmIsa isa, float *wp, const float *w, size_t ldw, size_t n, size_t k)
{
    size_t P = gemm_panel(isa);
    for (size_t p0 = 0; p0 < n; p0 += P) {
        float *d = wp + p0 * k;
        for (size_t k0 = 0; k0 < k; k0 += GEMM_PACK_K) {
            size_t k1 = k0 + GEMM_PACK_K < k ? k0 + GEMM_PACK_K : k;
            size_t c = 0;
#if GEMM_X86
            if (isa == GEMM_ISA_AVX512 && k1 - k0 == 16)
                for (; c + 16 <= P && p0 + c + 16 <= n; c += 16)
                    transpose16(d + k0 * P + c, P, w + (p0 + c) * ldw + k0, ldw);
            if (isa == GEMM_ISA_AVX2 && k1 - k0 == 16)
                for (; c + 8 <= P && p0 + c + 8 <= n; c += 8)
                    for (size_t h = 0; h < 16; h += 8)
                        transpose8(d + (k0 + h) * P + c, P, w + (p0 + c) * ldw + k0 + h, ldw);
#endif
            for (; c < P; c++) {
                if (p0 + c < n) {
                    const float *s = w + (p0 + c) * ldw;
                    for (size_t kk = k0; kk < k1; kk++)
                        d[kk * P + c] = s[kk];
                } else
                    for (size_t kk = k0; kk < k1; kk++)
                        d[kk * P + c] = 0.0f;
            }
        }
    }
}

static void kern(GemmIsa isa, size_t mr, size_t k, const float *x, size_t ldx, const float *b,
                 float *y, size_t ldy, int acc)
{
#if GEMM_X86
    if (isa == GEMM_ISA_AVX512) {
        run_512(mr, k, x, ldx, b, y, ldy, acc);
        return;
    }
    if (isa == GEMM_ISA_AVX2) {
        run_256(mr, k, x, ldx, b, y, ldy, acc);
        return;
    }
#endif
    (void)isa;
    kern_port(mr, k, x, ldx, b, y, ldy, acc);
}

void gemm_packed(GemmIsa isa, float *y, size_t ldy, const float *x, size_t ldx, const float *wp,
                 size_t m, size_t n, size_t k, int accumulate)
{
    size_t P = gemm_panel(isa), MR = gemm_mr(isa);
    float
        tmp[GEMM_MR512 * GEMM_P512]; /* a panel past column n: its sums, then the valid ones */
    for (size_t i0 = 0; i0 < m; i0 += MR) {
        size_t mr = m - i0 < MR ? m - i0 : MR;
        const float *xi = x + i0 * ldx;
        for (size_t p0 = 0; p0 < n; p0 += P) {
            const float *b = wp + p0 * k;
            float *yi = y + i0 * ldy + p0;
            if (n - p0 >= P) {
                kern(isa, mr, k, xi, ldx, b, yi, ldy, accumulate);
                continue;
            }
            kern(isa, mr, k, xi, ldx, b, tmp, P, 0);
            for (size_t i = 0; i < mr; i++)
                for (size_t j = 0; j < n - p0; j++)
                    yi[i * ldy + j] =
                        accumulate ? yi[i * ldy + j] + tmp[i * P + j] : tmp[i * P + j];
        }
    }
}
