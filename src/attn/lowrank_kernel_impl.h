/* lowrank_kernel_impl.h: the body of the rank-r kernel, included by
 * lowrank_kernel.c once per variant (no include guard, on purpose).
 *
 * The includer defines: LK_SFX (name suffix), LK_ATTR (target attribute),
 * LK_W (floats per vector: 16, 8 or 1), LK_G (directions summed at a time
 * in registers: a multiple of 4), LK_NU (score vectors in flight), the
 * vector type VF, and VLOAD(p), VSTORE(p, v), VSET1(x), VADD(a, b),
 * VSUB(a, b), VMUL(a, b), VFMA(a, b, c) = a * b + c rounded once,
 * VMAX(a, b) = a > b ? a : b (per lane) and VSCALE2K(p, k) = p * 2^k for
 * integral k in [-126, 0] (one rounding: 2^k is exact). Every operation is
 * the same IEEE operation in every variant, so every variant gives the same
 * bits. The header undefines all of them at its end, so the includer
 * defines the next variant's afresh. */

#define LK_CAT2(a, b) a##_##b
#define LK_CAT(a, b) LK_CAT2(a, b)
#define LK_FN(name) LK_CAT(name, LK_SFX)
#define LK_PARTS (LK_LANES / LK_W) /* vectors per 16 lanes */
#define LK_VEXP LK_FN(lk_vexp)
#define LK_VSUM LK_FN(lk_vsum)
#define LK_FUSED LK_FN(lk_fused)
#define LK_CHUNK LK_FN(lk_chunk)
#define LK_PROBS LK_FN(lk_probs)
#define LK_ROWSFN LK_FN(lk_rows)

/* e^x for x <= 0, lane by lane: lk_exp1's operations (see there). */
static inline LK_ATTR __attribute__((always_inline)) VF LK_VEXP(VF x)
{
    VF xc = VMAX(VSET1(LK_EXP_LO), x); /* NaN stays NaN */
    VF k = VSUB(VFMA(xc, VSET1(LK_LOG2E), VSET1(LK_MAGIC)), VSET1(LK_MAGIC));
    VF r = VFMA(k, VSET1(-LK_LN2_HI), xc);
    r = VFMA(k, VSET1(-LK_LN2_LO), r);
    VF p = VSET1(LK_C7);
    p = VFMA(p, r, VSET1(LK_C6));
    p = VFMA(p, r, VSET1(LK_C5));
    p = VFMA(p, r, VSET1(LK_C4));
    p = VFMA(p, r, VSET1(LK_C3));
    p = VFMA(p, r, VSET1(LK_C2));
    p = VFMA(p, r, VSET1(1.0f));
    p = VFMA(p, r, VSET1(1.0f));
    return VSCALE2K(p, k);
}

/* The value sums of directions j0..j0+G-1 (G <= LK_G, a constant) over the
 * chunk's nv keys (a multiple of 16): acc[j][u] += e_t PV[j][t] for t in
 * lane u, in key order. */
static inline LK_ATTR __attribute__((always_inline)) void
LK_VSUM(const float *e, const float *pv, size_t ld, size_t nv, float *acc, const int G)
{
    for (int h = 0; h < LK_PARTS; h++) {
        VF a[LK_G];
#pragma GCC unroll 16
        for (int g = 0; g < G; g++)
            a[g] = VLOAD(acc + (size_t)g * LK_LANES + h * LK_W);
        for (size_t t = 0; t < nv; t += LK_LANES) {
            VF ev = VLOAD(e + t + h * LK_W);
#pragma GCC unroll 16
            for (int g = 0; g < G; g++)
                a[g] = VFMA(ev, VLOAD(pv + (size_t)g * ld + t + h * LK_W), a[g]);
        }
#pragma GCC unroll 16
        for (int g = 0; g < G; g++)
            VSTORE(acc + (size_t)g * LK_LANES + h * LK_W, a[g]);
    }
}

/* The exponentials of the chunk's nv keys (a multiple of 16) and, in the
 * same loop, their lane sums (zs, and of squares ps when want_pp) and the
 * value sums of directions 0..G-1 (G <= LK_G, a constant): the same
 * operations in the same order per lane as the exponentials-then-lk_vsum
 * path. es: NULL (G = R: the exponentials are not needed again), or where
 * to store them for the other directions' lk_vsum (s itself: each is
 * stored where its score was read). */
static inline LK_ATTR __attribute__((always_inline)) void
LK_FUSED(const float *s, VF M, const float *pv, size_t ld, size_t nv, float *acc, float *zs,
         float *ps, int want_pp, const int G, float *es)
{
    for (int h = 0; h < LK_PARTS; h++) {
        VF a[LK_G], z = VSET1(0.0f), p2 = VSET1(0.0f);
#pragma GCC unroll 16
        for (int g = 0; g < G; g++)
            a[g] = VLOAD(acc + (size_t)g * LK_LANES + h * LK_W);
        if (want_pp)
            for (size_t t = 0; t < nv; t += LK_LANES) {
                VF e = LK_VEXP(VSUB(VLOAD(s + t + h * LK_W), M));
                if (es)
                    VSTORE(es + t + h * LK_W, e);
                z = VADD(z, e);
                p2 = VFMA(e, e, p2);
#pragma GCC unroll 16
                for (int g = 0; g < G; g++)
                    a[g] = VFMA(e, VLOAD(pv + (size_t)g * ld + t + h * LK_W), a[g]);
            }
        else
            for (size_t t = 0; t < nv; t += LK_LANES) {
                VF e = LK_VEXP(VSUB(VLOAD(s + t + h * LK_W), M));
                if (es)
                    VSTORE(es + t + h * LK_W, e);
                z = VADD(z, e);
#pragma GCC unroll 16
                for (int g = 0; g < G; g++)
                    a[g] = VFMA(e, VLOAD(pv + (size_t)g * ld + t + h * LK_W), a[g]);
            }
#pragma GCC unroll 16
        for (int g = 0; g < G; g++)
            VSTORE(acc + (size_t)g * LK_LANES + h * LK_W, a[g]);
        VSTORE(zs + h * LK_W, z);
        VSTORE(ps + h * LK_W, p2);
    }
}

/* One row over keys [t0, t1) (t0 a multiple of the chunk, t1 - t0 <= the
 * chunk): scores into buf, the running maximum, the exponentials, their
 * lane sums (and of squares), the value sums. raw: the row's
 * probabilities to be, where the raw scores are kept, or NULL. */
static inline LK_ATTR __attribute__((always_inline)) void
LK_CHUNK(const float *q, int32_t R, const float *PK, const float *PV, size_t ld, size_t t0,
         size_t t1, float *buf, LkRow *st, float *acc, int want_pp, float *raw)
{
    size_t nk = t1 - t0, nv = nk / LK_LANES * LK_LANES, t = 0;
    const float *pk = PK + t0, *pv = PV + t0;
    /* pass 1: scores s_t = sum_j q_j PK[j][t] (q scaled), in j order */
    VF mxv = VSET1(-INFINITY);
    for (; t + LK_NU * LK_W <= nv; t += LK_NU * LK_W) {
        VF a[LK_NU];
#pragma GCC unroll 16
        for (int u = 0; u < LK_NU; u++)
            a[u] = VSET1(0.0f);
        for (int32_t j = 0; j < R; j++) {
            VF qj = VSET1(q[j]);
            const float *p = pk + (size_t)j * ld + t;
#pragma GCC unroll 16
            for (int u = 0; u < LK_NU; u++)
                a[u] = VFMA(qj, VLOAD(p + u * LK_W), a[u]);
        }
#pragma GCC unroll 16
        for (int u = 0; u < LK_NU; u++) {
            VSTORE(buf + t + u * LK_W, a[u]);
            mxv = VMAX(a[u], mxv);
        }
    }
    for (; t < nv; t += LK_W) {
        VF a = VSET1(0.0f);
        for (int32_t j = 0; j < R; j++)
            a = VFMA(VSET1(q[j]), VLOAD(pk + (size_t)j * ld + t), a);
        VSTORE(buf + t, a);
        mxv = VMAX(a, mxv);
    }
    float lanes[LK_W], mc = -INFINITY;
    VSTORE(lanes, mxv);
#pragma GCC unroll 16
    for (int u = 0; u < LK_W; u++)
        mc = lk_max1(lanes[u], mc);
    for (; t < nk; t++) {
        float a = 0.0f;
        for (int32_t j = 0; j < R; j++)
            a = fmaf(q[j], pk[(size_t)j * ld + t], a);
        buf[t] = a;
        mc = lk_max1(a, mc);
    }
    if (raw)
        memcpy(raw + t0, buf, nk * sizeof *buf);
    if (mc > st->m) { /* a new maximum: rescale what was summed under the old one */
        float f = lk_exp1(st->m - mc);
        VF fv = VSET1(f);
        for (size_t i = 0; i < (size_t)R * LK_LANES; i += LK_W)
            VSTORE(acc + i, VMUL(VLOAD(acc + i), fv));
        for (int u = 0; u < LK_LANES; u++)
            st->z[u] *= f, st->pp[u] *= (double)f * f;
        st->m = mc;
    }
    /* pass 2: e_t = exp(s_t - m), their lane sums (float within the chunk,
     * then into double) and the value sums */
    float zs[LK_LANES], ps[LK_LANES];
    VF M = VSET1(st->m);
    if (R == 4)
        LK_FUSED(buf, M, pv, ld, nv, acc, zs, ps, want_pp, 4, NULL);
    else if (R == 8 && LK_G >= 8)
        LK_FUSED(buf, M, pv, ld, nv, acc, zs, ps, want_pp, 8, NULL);
    else if (R == 12 && LK_G >= 12)
        LK_FUSED(buf, M, pv, ld, nv, acc, zs, ps, want_pp, 12, NULL);
    else if (R == 16 && LK_G >= 16)
        LK_FUSED(buf, M, pv, ld, nv, acc, zs, ps, want_pp, 16, NULL);
    else {
        /* above LK_G directions, the first LK_G fused with the
         * exponentials, which are stored in place for the rest (one pass
         * over the chunk fewer); else the exponentials in place first.
         * Then the value sums LK_G directions at a time, then 8, then 4,
         * then one by one. */
        int32_t j = 0;
        if (R > LK_G) {
            LK_FUSED(buf, M, pv, ld, nv, acc, zs, ps, want_pp, LK_G, buf);
            j = LK_G;
        } else {
            VF zc[LK_PARTS], pc[LK_PARTS];
#pragma GCC unroll 16
            for (int h = 0; h < LK_PARTS; h++)
                zc[h] = VSET1(0.0f), pc[h] = VSET1(0.0f);
            for (t = 0; t < nv; t += LK_LANES)
#pragma GCC unroll 16
                for (int h = 0; h < LK_PARTS; h++) {
                    VF e = LK_VEXP(VSUB(VLOAD(buf + t + h * LK_W), M));
                    VSTORE(buf + t + h * LK_W, e);
                    zc[h] = VADD(zc[h], e);
                    pc[h] = VFMA(e, e, pc[h]);
                }
#pragma GCC unroll 16
            for (int h = 0; h < LK_PARTS; h++)
                VSTORE(zs + h * LK_W, zc[h]), VSTORE(ps + h * LK_W, pc[h]);
        }
        for (; j + LK_G <= R; j += LK_G)
            LK_VSUM(buf, pv + (size_t)j * ld, ld, nv, acc + (size_t)j * LK_LANES, LK_G);
        if (LK_G > 8 && j + 8 <= R)
            LK_VSUM(buf, pv + (size_t)j * ld, ld, nv, acc + (size_t)j * LK_LANES, 8), j += 8;
        if (j + 4 <= R)
            LK_VSUM(buf, pv + (size_t)j * ld, ld, nv, acc + (size_t)j * LK_LANES, 4), j += 4;
        for (; j < R; j++)
            LK_VSUM(buf, pv + (size_t)j * ld, ld, nv, acc + (size_t)j * LK_LANES, 1);
    }
    /* the last keys (fewer than 16), lane t mod 16 each */
    for (t = nv; t < nk; t++) {
        float e = lk_exp1(buf[t] - st->m);
        int u = (int)(t % LK_LANES);
        zs[u] += e;
        ps[u] = fmaf(e, e, ps[u]);
        for (int32_t j = 0; j < R; j++)
            acc[(size_t)j * LK_LANES + u] =
                fmaf(e, pv[(size_t)j * ld + t], acc[(size_t)j * LK_LANES + u]);
    }
    for (int u = 0; u < LK_LANES; u++)
        st->z[u] += zs[u], st->pp[u] += ps[u];
}

/* p_t = e^(s_t - m) / z in place over the row's keys [0, m), 0 after, to N. */
static inline LK_ATTR __attribute__((always_inline)) void
LK_PROBS(float *pr, size_t m, size_t N, float mx, float inv)
{
    size_t t = 0;
    for (; t + LK_W <= m; t += LK_W)
        VSTORE(pr + t, VMUL(LK_VEXP(VSUB(VLOAD(pr + t), VSET1(mx))), VSET1(inv)));
    for (; t < m; t++)
        pr[t] = lk_exp1(pr[t] - mx) * inv;
    for (; t < N; t++)
        pr[t] = 0.0f;
}

static LK_ATTR void LK_ROWSFN(const float *qs, int32_t R, const float *PK, const float *PV,
                              size_t ld, size_t n, size_t pos0, float scale, float *ab,
                              double *pnorm, float *probs, size_t probs_stride, size_t N,
                              void *scratch)
{
    LkRow *st = scratch;
    float *acc = (float *)(st + LK_ROWS);
    float buf[LOWRANK_KERNEL_CHUNK], q[LOWRANK_KERNEL_MAX_RANK * LK_ROWS];
    for (size_t i0 = 0; i0 < n; i0 += LK_ROWS) {
        size_t i1 = i0 + LK_ROWS < n ? i0 + LK_ROWS : n, last = pos0 + i1;
        for (size_t i = i0; i < i1; i++) {
            LkRow *x = &st[i - i0];
            x->m = -INFINITY;
            for (int u = 0; u < LK_LANES; u++)
                x->z[u] = 0.0, x->pp[u] = 0.0;
            memset(acc + (i - i0) * (size_t)R * LK_LANES, 0,
                   (size_t)R * LK_LANES * sizeof *acc);
            for (int32_t j = 0; j < R; j++)
                q[(i - i0) * (size_t)R + j] = qs[i * (size_t)R + j] * scale;
        }
        /* chunks outer, rows inner: a chunk of PK and PV is read from
         * cache by every row of the block */
        for (size_t t0 = 0; t0 < last; t0 += LOWRANK_KERNEL_CHUNK)
            for (size_t i = i0; i < i1; i++) {
                size_t m = pos0 + i + 1;
                size_t t1 = t0 + LOWRANK_KERNEL_CHUNK < m ? t0 + LOWRANK_KERNEL_CHUNK : m;
                if (t0 < t1)
                    LK_CHUNK(q + (i - i0) * (size_t)R, R, PK, PV, ld, t0, t1, buf, &st[i - i0],
                             acc + (i - i0) * (size_t)R * LK_LANES, pnorm != NULL,
                             probs ? probs + i * probs_stride : NULL);
            }
        for (size_t i = i0; i < i1; i++) {
            const LkRow *x = &st[i - i0];
            const float *a = acc + (i - i0) * (size_t)R * LK_LANES;
            double z = 0.0, pp = 0.0;
            for (int u = 0; u < LK_LANES; u++)
                z += x->z[u], pp += x->pp[u];
            for (int32_t j = 0; j < R; j++) {
                float sj = 0.0f;
                for (int u = 0; u < LK_LANES; u++)
                    sj += a[(size_t)j * LK_LANES + u];
                ab[i * (size_t)R + (size_t)j] = (float)((double)sj / z);
            }
            if (pnorm)
                pnorm[i] = sqrt(pp) / z;
            if (probs)
                LK_PROBS(probs + i * probs_stride, pos0 + i + 1, N, x->m, (float)(1.0 / z));
        }
    }
}

#undef LK_CAT2
#undef LK_CAT
#undef LK_FN
#undef LK_PARTS
#undef LK_VEXP
#undef LK_VSUM
#undef LK_FUSED
#undef LK_CHUNK
#undef LK_PROBS
#undef LK_ROWSFN
/* the includer's parameters */
#undef LK_SFX
#undef LK_ATTR
#undef LK_W
#undef LK_G
#undef LK_NU
#undef VF
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VFMA
#undef VMAX
#undef VSCALE2K
