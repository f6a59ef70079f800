#include "attn/lowrank_kernel.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define LK_X86 1
#include <immintrin.h>
#else
#define LK_X86 0
#endif

#define LK_LANES 16 /* fixed lanes of every sum over keys */
#define LK_ROWS 16  /* query rows per block: a chunk of PK/PV is reused by each */

/* One row's state between chunks: the running maximum and the lane sums of
 * e^(s - m) and of its square, in double. Its value sums (R x 16 floats)
 * follow the LK_ROWS states in the scratch. */
typedef struct LkRow {
    double z[LK_LANES], pp[LK_LANES];
    float m;
} LkRow;

size_t lowrank_kernel_scratch(int32_t R)
{
    return LK_ROWS * (sizeof(LkRow) + (size_t)R * LK_LANES * sizeof(float));
}

/* e^x for x <= 0 (fastexp.h's method with every multiply-add fused):
 * x = k ln2 + r by Cody-Waite, ln2 in a high part exact in float and a low
 * part, the degree-7 Taylor polynomial of e^r (|r| <= ln2/2: truncation
 * < 6e-9 relative) by Horner, times 2^k. Below -87 it gives e^-87 (1.6e-38,
 * which changes no sum of a softmax, whose largest term is 1); NaN stays
 * NaN (max(-87, NaN) is NaN as written). Within 2 ulp of exp on [-87, 0]
 * (tests/test_lowrank_kernel.c). */
#define LK_EXP_LO (-87.0f)
#define LK_LOG2E 1.44269504088896341f
#define LK_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define LK_LN2_HI 0.693359375f
#define LK_LN2_LO (-2.12194440e-4f)
#define LK_C7 (1.0f / 5040.0f)
#define LK_C6 (1.0f / 720.0f)
#define LK_C5 (1.0f / 120.0f)
#define LK_C4 (1.0f / 24.0f)
#define LK_C3 (1.0f / 6.0f)
#define LK_C2 0.5f

static inline __attribute__((always_inline)) float lk_max1(float a, float b)
{
    return a > b ? a : b;
}

/* p * 2^k, k integral in [-126, 0]: 2^k built in the exponent bits. A NaN
 * k (p is NaN then too) is not converted (undefined in C). */
static inline __attribute__((always_inline)) float lk_scale2k1(float p, float k)
{
    int32_t bits = ((k == k ? (int32_t)k : 0) + 127) * (1 << 23);
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

static inline __attribute__((always_inline)) float lk_exp1(float x)
{
    float xc = lk_max1(LK_EXP_LO, x);
    float k = fmaf(xc, LK_LOG2E, LK_MAGIC) - LK_MAGIC;
    float r = fmaf(k, -LK_LN2_HI, xc);
    r = fmaf(k, -LK_LN2_LO, r);
    float p = LK_C7;
    p = fmaf(p, r, LK_C6);
    p = fmaf(p, r, LK_C5);
    p = fmaf(p, r, LK_C4);
    p = fmaf(p, r, LK_C3);
    p = fmaf(p, r, LK_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    return lk_scale2k1(p, k);
}

/* ---- portable C: one float per "vector" ---- */
#define LK_SFX portable
#define LK_ATTR
#define LK_W 1
#define LK_G 8
#define LK_NU 4
#define VF float
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(x) (x)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) fmaf((a), (b), (c))
#define VMAX(a, b) lk_max1((a), (b))
#define VSCALE2K(p, k) lk_scale2k1((p), (k))
#include "attn/lowrank_kernel_impl.h"

#if LK_X86
/* ---- AVX2 with FMA: a "vector" of 8 floats, two per 16 lanes ---- */
#define LK_SFX avx2
#define LK_ATTR __attribute__((target("avx2,fma")))
#define LK_W 8
#define LK_G 8 /* 16 ymm registers */
#define LK_NU 8
#define VF __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VMAX(a, b) _mm256_max_ps((a), (b)) /* a > b ? a : b, as maxps */
#define VSCALE2K(p, k)                                                                         \
    _mm256_mul_ps((p),                                                                         \
                  _mm256_castsi256_ps(_mm256_slli_epi32(                                       \
                      _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23)))
#include "attn/lowrank_kernel_impl.h"

/* ---- AVX-512: 16 floats, the 16 lanes in one register ---- */
#define LK_SFX avx512
#define LK_NU 4
#include "attn/lowrank_kernel_avx512.h"

/* ---- the same with 8 score vectors in flight instead of 4 (pass 1): two
 * 512-bit FMA ports with 4-cycle latency want 8 independent sums. Intel
 * Xeon (the device machine, 16 threads, `drrl run --method fixed:8
 * --no-exact --seq-len 8192`, 3 alternating rounds): 0.269-0.276 s against
 * 0.286-0.309 s, attention stage 0.156-0.159 s against 0.174-0.190 s. AMD
 * Zen, which splits 512-bit operations in two, runs it slower (this 2-core
 * AMD EPYC, 2 threads, 4 rounds: 0.954-0.970 s against 0.925-0.986 s;
 * kernel_rates rank 8, 1 thread: 0.541 against 0.50 ns per pair), so
 * lowrank_kernel_best picks it on Intel only. Same bits (the key order of
 * every sum is the same). ---- */
#define LK_SFX avx512_8
#define LK_NU 8
#include "attn/lowrank_kernel_avx512.h"
#endif

float lowrank_kernel_exp(float x)
{
    return lk_exp1(x);
}

int lowrank_kernel_supported(LowrankIsa isa)
{
    switch (isa) {
    case LOWRANK_ISA_PORTABLE:
        return 1;
#if LK_X86
    case LOWRANK_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case LOWRANK_ISA_AVX512:
    case LOWRANK_ISA_AVX512_8:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

LowrankIsa lowrank_kernel_best(void)
{
#if LK_X86
    /* AVX512_8 on Intel, where it measured faster (the device Xeon);
     * AVX512 elsewhere (AMD Zen, slower with 8: the comment above) */
    if (lowrank_kernel_supported(LOWRANK_ISA_AVX512))
        return __builtin_cpu_is("intel") ? LOWRANK_ISA_AVX512_8 : LOWRANK_ISA_AVX512;
#endif
    for (int i = LOWRANK_ISA_AVX512 - 1; i > 0; i--)
        if (lowrank_kernel_supported((LowrankIsa)i))
            return (LowrankIsa)i;
    return LOWRANK_ISA_PORTABLE;
}

const char *lowrank_kernel_isa_name(LowrankIsa isa)
{
    static const char *const names[LOWRANK_ISA_COUNT] = {"portable", "avx2", "avx512",
                                                         "avx512-8"};
    return isa >= 0 && isa < LOWRANK_ISA_COUNT ? names[isa] : "?";
}

void lowrank_kernel_rows_isa(LowrankIsa isa, const float *qs, int32_t R, const float *PK,
                             const float *PV, size_t ld, size_t n, size_t pos0, float scale,
                             float *ab, double *pnorm, float *probs, size_t probs_stride,
                             size_t N, void *scratch)
{
    switch (isa) {
#if LK_X86
    case LOWRANK_ISA_AVX512_8:
        lk_rows_avx512_8(qs, R, PK, PV, ld, n, pos0, scale, ab, pnorm, probs, probs_stride, N,
                         scratch);
        return;
    case LOWRANK_ISA_AVX512:
        lk_rows_avx512(qs, R, PK, PV, ld, n, pos0, scale, ab, pnorm, probs, probs_stride, N,
                       scratch);
        return;
    case LOWRANK_ISA_AVX2:
        lk_rows_avx2(qs, R, PK, PV, ld, n, pos0, scale, ab, pnorm, probs, probs_stride, N,
                     scratch);
        return;
#endif
    default:
        lk_rows_portable(qs, R, PK, PV, ld, n, pos0, scale, ab, pnorm, probs, probs_stride, N,
                         scratch);
    }
}

void lowrank_kernel_rows(const float *qs, int32_t R, const float *PK, const float *PV,
                         size_t ld, size_t n, size_t pos0, float scale, float *ab,
                         double *pnorm, float *probs, size_t probs_stride, size_t N,
                         void *scratch)
{
    lowrank_kernel_rows_isa(lowrank_kernel_best(), qs, R, PK, PV, ld, n, pos0, scale, ab, pnorm,
                            probs, probs_stride, N, scratch);
}
