/* fastexp.h: a vectorisable e^x for x <= 0, shared by the exact softmax
 * (src/model/forward.c) and the low-rank one (src/attn/attn_core.c), so both paths
 * compute the same bits.
 *
 * Accuracy: within 2 ulp of expf (checked in tests/test_forward.c against
 * exp() in double through forward_exp_nonpos). Cody-Waite reduction
 * x = k ln2 + r, |r| <= ln2/2, with ln2 split in a high part exact in float
 * and a low part (Cody & Waite, Software Manual for the Elementary Functions,
 * 1980), then the degree-7 Taylor polynomial of e^r (truncation error
 * |r|^8/8! < 6e-9 relative) scaled by 2^k built in the exponent bits. Below
 * -87 the result (< 2^-125) is 0, which changes a softmax probability by less
 * than 1e-37. Used because libm's expf is a call per element and dominated
 * the softmax. Header-only so it inlines into the vectorised loops.
 * Defined for every float: NaN gives NaN, x > 0 gives 1 (the clamp), so a
 * NaN from an overflowing layer propagates to the per-layer check instead of
 * reaching an undefined conversion. */
#ifndef DRRL_FASTEXP_H
#define DRRL_FASTEXP_H

#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float fastexp_nonpos(float x)
{
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f,
                magic = 12582912.0f; /* 1.5 * 2^23 */
    /* Clamp into [-87, 0] before the float -> int conversion below, which is
     * undefined behaviour for NaN or values outside int32: NaN and -Inf go to
     * -87 (and come out as NaN and 0 below), anything above 0 to 0. */
    float xc = !(x >= -87.0f) ? -87.0f : x > 0.0f ? 0.0f : x;
    float k = (xc * log2e + magic) - magic; /* round to nearest */
    float r = (xc - k * ln2_hi) - k * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : x != x ? x : p * scale; /* NaN stays NaN */
}

#endif
