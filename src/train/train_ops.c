/* train_ops.c: training kernels (see train_ops.h for shapes and contracts). */
#include "config.h"

#include "train/train_ops.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "base/logsumexp.h"

/* The hot loops are written as axpy's (independent lanes, no reduction to
 * reassociate), so vectorising them changes no result bit. -O2 in GCC 12
 * vectorises only loops needing no remainder; ask for O3 here, and an AVX2
 * clone picked at load time on CPUs that have it (same bits: no FMA
 * contraction under -std=c11, and lanes are computed independently). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TRAIN_HOT __attribute__((optimize("O3"), target_clones("avx2", "default")))
#else
#define TRAIN_HOT
#endif

/* ---- linear ------------------------------------------------------------ */

void train_ops_linear_forward(float *y, const float *x, const float *w, size_t n, size_t in,
                              size_t out, int accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f, x,
                (int)in, w, (int)in, accumulate ? 1.0f : 0.0f, y, (int)out);
}

void train_ops_linear_backward(float *dx, float *dw, const float *dy, const float *x,
                               const float *w, size_t n, size_t in, size_t out,
                               int dx_accumulate)
{
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0f,
                    dy, (int)out, w, (int)in, dx_accumulate ? 1.0f : 0.0f, dx, (int)in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f, dy,
                (int)out, x, (int)in, 1.0f, dw, (int)in);
}

/* ---- RMSNorm ----------------------------------------------------------- */

typedef struct RmsJob {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy, *rstd_in;
    size_t n, c;
    float eps;
    double *scratch;
} RmsJob;

TRAIN_HOT static void rms_fwd_item(void *ctx, size_t chunk, int thread)
{
    const RmsJob *j = ctx;
    size_t r0, r1;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->c;
        float *y = j->y + r * j->c;
        double ss = 0.0;
        for (size_t i = 0; i < j->c; i++)
            ss += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(ss / (double)j->c + j->eps));
        j->rstd[r] = rs;
        for (size_t i = 0; i < j->c; i++)
            y[i] = j->w[i] * (x[i] * rs);
    }
}

void train_ops_rmsnorm_forward(TrainPool *pool, float *y, float *rstd, const float *x,
                               const float *w, size_t n, size_t c, float eps)
{
    RmsJob j = {.y = y, .rstd = rstd, .x = x, .w = w, .n = n, .c = c, .eps = eps};
    train_pool_run(pool, rms_fwd_item, &j, TRAIN_POOL_CHUNKS);
}

/* y_i = w_i x_i r with r = (mean(x^2) + eps)^(-1/2), so
 *   dL/dx_i = r (w_i dy_i) - r^3 x_i / C * sum_k x_k w_k dy_k,
 *   dL/dw_i = sum over rows of dy_i x_i r. */
TRAIN_HOT static void rms_bwd_item(void *ctx, size_t chunk, int thread)
{
    const RmsJob *j = ctx;
    size_t r0, r1, c = j->c;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    double *dwp = j->scratch + chunk * c;
    memset(dwp, 0, c * sizeof *dwp);
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->x + r * c, *dy = j->dy + r * c;
        float *dx = j->dx + r * c;
        double rs = j->rstd_in[r], dot = 0.0;
        for (size_t i = 0; i < c; i++) {
            dot += (double)x[i] * j->w[i] * dy[i];
            dwp[i] += (double)dy[i] * x[i] * rs;
        }
        float a = (float)rs, b = (float)(rs * rs * rs * dot / (double)c);
        for (size_t i = 0; i < c; i++)
            dx[i] += a * j->w[i] * dy[i] - b * x[i];
    }
}

void train_ops_rmsnorm_backward(TrainPool *pool, float *dx, float *dw, const float *dy,
                                const float *x, const float *w, const float *rstd, size_t n,
                                size_t c, double *scratch)
{
    RmsJob j = {.dx = dx,
                .dw = dw,
                .dy = dy,
                .x = x,
                .w = w,
                .rstd_in = rstd,
                .n = n,
                .c = c,
                .scratch = scratch};
    train_pool_run(pool, rms_bwd_item, &j, TRAIN_POOL_CHUNKS);
    for (size_t i = 0; i < c; i++) {
        double s = 0.0;
        for (size_t ch = 0; ch < TRAIN_POOL_CHUNKS; ch++)
            s += scratch[ch * c + i];
        dw[i] += (float)s;
    }
}

/* ---- RoPE -------------------------------------------------------------- */

void train_ops_rope_table(float *cos_t, float *sin_t, size_t positions, size_t head_dim,
                          double theta)
{
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        double inv = pow(theta, -2.0 * (double)i / (double)head_dim);
        for (size_t p = 0; p < positions; p++) {
            double a = (double)p * inv;
            cos_t[p * half + i] = (float)cos(a);
            sin_t[p * half + i] = (float)sin(a);
        }
    }
}

typedef struct RopeJob {
    float *x;
    size_t n, t, pos0, stride, n_head, head_dim;
    const float *cos_t, *sin_t;
    float sign; /* +1 forward rotation, -1 its transpose */
} RopeJob;

/* Forward (rotate-half): x'_i = x_i cos - x_{i+h} sin, x'_{i+h} = x_{i+h} cos +
 * x_i sin. The transpose swaps the sign of sin. */
TRAIN_HOT static void rope_item(void *ctx, size_t chunk, int thread)
{
    const RopeJob *j = ctx;
    size_t r0, r1, half = j->head_dim / 2;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        size_t pos = j->pos0 + r % j->t;
        const float *cs = j->cos_t + pos * half, *sn = j->sin_t + pos * half;
        for (size_t h = 0; h < j->n_head; h++) {
            float *x = j->x + r * j->stride + h * j->head_dim;
            for (size_t i = 0; i < half; i++) {
                float a = x[i], b = x[i + half], s = j->sign * sn[i];
                x[i] = a * cs[i] - b * s;
                x[i + half] = b * cs[i] + a * s;
            }
        }
    }
}

void train_ops_rope_forward(TrainPool *pool, float *x, size_t n, size_t t, size_t pos0,
                            size_t stride, size_t n_head, size_t head_dim, const float *cos_t,
                            const float *sin_t)
{
    RopeJob j = {x, n, t, pos0, stride, n_head, head_dim, cos_t, sin_t, 1.0f};
    train_pool_run(pool, rope_item, &j, TRAIN_POOL_CHUNKS);
}

void train_ops_rope_backward(TrainPool *pool, float *dx, size_t n, size_t t, size_t pos0,
                             size_t stride, size_t n_head, size_t head_dim, const float *cos_t,
                             const float *sin_t)
{
    RopeJob j = {dx, n, t, pos0, stride, n_head, head_dim, cos_t, sin_t, -1.0f};
    train_pool_run(pool, rope_item, &j, TRAIN_POOL_CHUNKS);
}

/* ---- attention --------------------------------------------------------- */

typedef struct AttnJob {
    const TrainAttnShape *s;
    float *out, *p, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *pin;
    float *scratch;
    size_t scratch_per_thread;
} AttnJob;

/* Loop path, per thread: transposed (head_dim, T) copies of K or V, dK, dV,
 * and two rows of T. */
static size_t attn_loop_scratch(const TrainAttnShape *s)
{
    return 3 * s->head_dim * s->t + 2 * s->t;
}

/* sgemm path, per thread: Q K V dO dQ dK dV (T, hd) and one (T, T). */
static size_t attn_blas_scratch(const TrainAttnShape *s)
{
    return 7 * s->t * s->head_dim + s->t * s->t;
}

size_t train_ops_attention_scratch(const TrainAttnShape *s, int threads)
{
    size_t per = s->use_blas ? attn_blas_scratch(s) : attn_loop_scratch(s);
    return (size_t)(threads < 1 ? 1 : threads) * per;
}

/* Row t of P (T columns): softmax over u <= t of the scaled scores already
 * in it; zeros above the diagonal. */
TRAIN_HOT static void soft_fwd_row(float *pr, size_t t, size_t T)
{
    float mx = pr[0];
    for (size_t u = 1; u <= t; u++)
        mx = pr[u] > mx ? pr[u] : mx;
    double sum = 0.0;
    for (size_t u = 0; u <= t; u++) {
        pr[u] = expf(pr[u] - mx);
        sum += pr[u];
    }
    float inv = (float)(1.0 / sum);
    for (size_t u = 0; u <= t; u++)
        pr[u] *= inv;
    for (size_t u = t + 1; u < T; u++)
        pr[u] = 0.0f;
}

/* Forward for one (b, h): for each query t, scores against keys 0..t are
 * built as axpy's over the transposed keys (vectorisable without
 * reassociating a dot product), softmax in float with the max subtracted,
 * then O_t = sum_s P_ts V_s. */
TRAIN_HOT static void attn_fwd_item(void *ctx, size_t item, int thread)
{
    const AttnJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t b = item / s->n_head, h = item % s->n_head, T = s->t, hd = s->head_dim;
    float *kt = j->scratch + (size_t)thread * j->scratch_per_thread;
    float *row = kt + hd * T;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t base = b * T;
    for (size_t t = 0; t < T; t++) {
        const float *kr = j->k + (base + t) * s->qkv_stride + h * hd;
        for (size_t i = 0; i < hd; i++)
            kt[i * T + t] = kr[i];
    }
    for (size_t t = 0; t < T; t++) {
        const float *qr = j->q + (base + t) * s->qkv_stride + h * hd;
        float *pr = j->p ? j->p + ((b * s->n_head + h) * T + t) * T : row;
        for (size_t u = 0; u <= t; u++)
            pr[u] = 0.0f;
        for (size_t i = 0; i < hd; i++) {
            float qi = qr[i] * scale;
            const float *kti = kt + i * T;
            for (size_t u = 0; u <= t; u++)
                pr[u] += qi * kti[u];
        }
        soft_fwd_row(pr, t, j->p ? T : t + 1); /* the scratch row needs no zeros */
        float *orow = j->out + (base + t) * s->o_stride + h * hd;
        for (size_t i = 0; i < hd; i++)
            orow[i] = 0.0f;
        for (size_t u = 0; u <= t; u++) {
            const float *vr = j->v + (base + u) * s->qkv_stride + h * hd;
            float pu = pr[u];
            for (size_t i = 0; i < hd; i++)
                orow[i] += pu * vr[i];
        }
    }
}

/* ---- attention, sgemm path ------------------------------------------- */

#define ATTN_BLOCK 256

/* Copy head h of sequence b out of (or into) strided rows. */
static void attn_gather(float *dst, const float *src, size_t stride, size_t base, size_t h,
                        size_t t, size_t hd)
{
    for (size_t r = 0; r < t; r++)
        memcpy(dst + r * hd, src + (base + r) * stride + h * hd, hd * sizeof(float));
}
static void attn_scatter(float *dst, const float *src, size_t stride, size_t base, size_t h,
                         size_t t, size_t hd)
{
    for (size_t r = 0; r < t; r++)
        memcpy(dst + (base + r) * stride + h * hd, src + r * hd, hd * sizeof(float));
}

/* Row t: dP in d, dS = P (dP - <P, dP>) scale out. */
TRAIN_HOT static void soft_bwd_row(const float *pr, float *d, size_t t, size_t T, float scale)
{
    double dot = 0.0;
    for (size_t u = 0; u <= t; u++)
        dot += (double)pr[u] * d[u];
    float fd = (float)dot;
    for (size_t u = 0; u <= t; u++)
        d[u] = pr[u] * (d[u] - fd) * scale;
    for (size_t u = t + 1; u < T; u++)
        d[u] = 0.0f;
}

/* One (b, h) per pool item; each item's sgemm's run single-threaded in the
 * worker (the caller sets OpenBLAS to one thread), so the pairs run in
 * parallel and the result does not depend on the thread count. */
static void attn_blas_fwd_item(void *ctx, size_t item, int thread)
{
    const AttnJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t b = item / s->n_head, h = item % s->n_head, T = s->t, hd = s->head_dim;
    float *Q = j->scratch + (size_t)thread * j->scratch_per_thread;
    float *K = Q + T * hd, *V = K + T * hd, *O = V + T * hd;
    float *P = j->p ? j->p + ((b * s->n_head + h) * T) * T : Q + 7 * T * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    attn_gather(Q, j->q, s->qkv_stride, b * T, h, T, hd);
    attn_gather(K, j->k, s->qkv_stride, b * T, h, T, hd);
    attn_gather(V, j->v, s->qkv_stride, b * T, h, T, hd);
    for (size_t r0 = 0; r0 < T; r0 += ATTN_BLOCK) {
        size_t r1 = r0 + ATTN_BLOCK < T ? r0 + ATTN_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)r1, (int)hd,
                    scale, Q + r0 * hd, (int)hd, K, (int)hd, 0.0f, P + r0 * T, (int)T);
        for (size_t t = r0; t < r1; t++)
            soft_fwd_row(P + t * T, t, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)hd, (int)r1,
                    1.0f, P + r0 * T, (int)T, V, (int)hd, 0.0f, O + r0 * hd, (int)hd);
    }
    attn_scatter(j->out, O, s->o_stride, b * T, h, T, hd);
}

static void attn_blas_bwd_item(void *ctx, size_t item, int thread)
{
    const AttnJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t b = item / s->n_head, h = item % s->n_head, T = s->t, hd = s->head_dim;
    float *Q = j->scratch + (size_t)thread * j->scratch_per_thread;
    float *K = Q + T * hd, *V = K + T * hd, *dO = V + T * hd;
    float *dQ = dO + T * hd, *dK = dQ + T * hd, *dV = dK + T * hd;
    float *dS = Q + 7 * T * hd;
    const float *P = j->pin + ((b * s->n_head + h) * T) * T;
    const float scale = 1.0f / sqrtf((float)hd);
    attn_gather(Q, j->q, s->qkv_stride, b * T, h, T, hd);
    attn_gather(K, j->k, s->qkv_stride, b * T, h, T, hd);
    attn_gather(V, j->v, s->qkv_stride, b * T, h, T, hd);
    attn_gather(dO, j->dout, s->o_stride, b * T, h, T, hd);
    memset(dK, 0, 2 * T * hd * sizeof(float)); /* dK and dV */
    for (size_t r0 = 0; r0 < T; r0 += ATTN_BLOCK) {
        size_t r1 = r0 + ATTN_BLOCK < T ? r0 + ATTN_BLOCK : T;
        int m = (int)(r1 - r0);
        /* dP = dO V^T on the causal block, then dS in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, (int)r1, (int)hd, 1.0f,
                    dO + r0 * hd, (int)hd, V, (int)hd, 0.0f, dS + r0 * T, (int)T);
        for (size_t t = r0; t < r1; t++)
            soft_bwd_row(P + t * T, dS + t * T, t, T, scale);
        /* dQ rows = dS K; dK += dS^T Q; dV += P^T dO (column range 0..r1) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, (int)hd, (int)r1, 1.0f,
                    dS + r0 * T, (int)T, K, (int)hd, 0.0f, dQ + r0 * hd, (int)hd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r1, (int)hd, m, 1.0f,
                    dS + r0 * T, (int)T, Q + r0 * hd, (int)hd, 1.0f, dK, (int)hd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r1, (int)hd, m, 1.0f,
                    P + r0 * T, (int)T, dO + r0 * hd, (int)hd, 1.0f, dV, (int)hd);
    }
    attn_scatter(j->dq, dQ, s->qkv_stride, b * T, h, T, hd);
    attn_scatter(j->dk, dK, s->qkv_stride, b * T, h, T, hd);
    attn_scatter(j->dv, dV, s->qkv_stride, b * T, h, T, hd);
}

/* Run fn over the (b, h) pairs with OpenBLAS single-threaded in the workers. */
static void attn_blas_run(TrainPool *pool, TrainPoolFn fn, AttnJob *j)
{
    int saved = blas_serial_begin();
    train_pool_run(pool, fn, j, j->s->b * j->s->n_head);
    blas_serial_end(saved);
}

/* Run the job over the (b, h) pairs: with OpenBLAS (blas_fn) or the loops
 * (loop_fn), each worker with its scratch. */
static void attn_dispatch(TrainPool *pool, AttnJob *j, TrainPoolFn blas_fn, TrainPoolFn loop_fn)
{
    const TrainAttnShape *s = j->s;
    j->scratch_per_thread = s->use_blas ? attn_blas_scratch(s) : attn_loop_scratch(s);
    if (s->use_blas)
        attn_blas_run(pool, blas_fn, j);
    else
        train_pool_run(pool, loop_fn, j, s->b * s->n_head);
}

void train_ops_attention_forward(TrainPool *pool, const TrainAttnShape *s, float *out, float *p,
                                 const float *q, const float *k, const float *v, float *scratch)
{
    AttnJob j = {.s = s, .out = out, .p = p, .q = q, .k = k, .v = v, .scratch = scratch};
    attn_dispatch(pool, &j, attn_blas_fwd_item, attn_fwd_item);
}

/* Backward for one (b, h), with S = scale Q K^T, P = softmax(S), O = P V:
 *   dV_u = sum_t P_tu dO_t;  dP_tu = dO_t . V_u;
 *   dS_tu = P_tu (dP_tu - sum_u' P_tu' dP_tu');
 *   dQ_t = scale sum_u dS_tu K_u;  dK_u = scale sum_t dS_tu Q_t.
 * dK and dV are accumulated transposed, (head_dim, T), so that every inner
 * loop runs over keys u (long, vectorisable) rather than over head_dim. */
TRAIN_HOT static void attn_bwd_item(void *ctx, size_t item, int thread)
{
    const AttnJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t b = item / s->n_head, h = item % s->n_head, T = s->t, hd = s->head_dim;
    size_t st = s->qkv_stride;
    float *vt = j->scratch + (size_t)thread * j->scratch_per_thread;
    float *dkt = vt + hd * T, *dvt = dkt + hd * T;
    float *dp = dvt + hd * T, *ds = dp + T;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t base = b * T;
    for (size_t t = 0; t < T; t++) {
        const float *vr = j->v + (base + t) * st + h * hd;
        for (size_t i = 0; i < hd; i++)
            vt[i * T + t] = vr[i];
    }
    memset(dkt, 0, 2 * hd * T * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        const float *pr = j->pin + ((b * s->n_head + h) * T + t) * T;
        const float *dor = j->dout + (base + t) * s->o_stride + h * hd;
        const float *qr = j->q + (base + t) * st + h * hd;
        size_t nu = t + 1;
        for (size_t u = 0; u < nu; u++)
            dp[u] = 0.0f;
        for (size_t i = 0; i < hd; i++) {
            float di = dor[i];
            const float *vti = vt + i * T;
            for (size_t u = 0; u < nu; u++)
                dp[u] += di * vti[u];
        }
        double dot = 0.0;
        for (size_t u = 0; u < nu; u++)
            dot += (double)pr[u] * dp[u];
        float fd = (float)dot;
        for (size_t u = 0; u < nu; u++)
            ds[u] = pr[u] * (dp[u] - fd) * scale;
        for (size_t i = 0; i < hd; i++) {
            float qi = qr[i], di = dor[i];
            float *dki = dkt + i * T, *dvi = dvt + i * T;
            for (size_t u = 0; u < nu; u++) {
                dki[u] += ds[u] * qi;
                dvi[u] += pr[u] * di;
            }
        }
        float *dqr = j->dq + (base + t) * st + h * hd;
        for (size_t i = 0; i < hd; i++)
            dqr[i] = 0.0f;
        for (size_t u = 0; u < nu; u++) {
            const float *kr = j->k + (base + u) * st + h * hd;
            float dsu = ds[u];
            for (size_t i = 0; i < hd; i++)
                dqr[i] += dsu * kr[i];
        }
    }
    for (size_t u = 0; u < T; u++) {
        float *dkr = j->dk + (base + u) * st + h * hd, *dvr = j->dv + (base + u) * st + h * hd;
        for (size_t i = 0; i < hd; i++) {
            dkr[i] = dkt[i * T + u];
            dvr[i] = dvt[i * T + u];
        }
    }
}

void train_ops_attention_backward(TrainPool *pool, const TrainAttnShape *s, float *dq,
                                  float *dk, float *dv, const float *dout, const float *p,
                                  const float *q, const float *k, const float *v,
                                  float *scratch)
{
    AttnJob j = {.s = s,
                 .dq = dq,
                 .dk = dk,
                 .dv = dv,
                 .dout = dout,
                 .pin = p,
                 .q = q,
                 .k = k,
                 .v = v,
                 .scratch = scratch};
    attn_dispatch(pool, &j, attn_blas_bwd_item, attn_bwd_item);
}

/* ---- rank-aware attention --------------------------------------------- */

int train_ops_lowrank_active(const TrainAttnShape *s, const TrainLowRank *lr, size_t b,
                             size_t h, size_t seg)
{
    if (seg == 0 || seg >= lr->n_seg)
        return 0;
    int32_t r = lr->rank[(b * s->n_head + h) * lr->n_seg + seg];
    return r < (int32_t)s->head_dim || lr->at_full;
}

typedef struct LowRankJob {
    const TrainAttnShape *s;
    const TrainLowRank *lr;
    const float *q, *k, *v;
    float *x;
    size_t stride;
    int side;
} LowRankJob;

/* G += X^T X over rows [r0, r1) of head h of sequence b (double). */
TRAIN_HOT static void lowrank_gram_add(double *G, const float *x, size_t stride, size_t base,
                                       size_t h, size_t hd, size_t r0, size_t r1)
{
    for (size_t r = r0; r < r1; r++) {
        const float *xr = x + (base + r) * stride + h * hd;
        for (size_t i = 0; i < hd; i++) {
            double xi = xr[i];
            double *gi = G + i * hd;
            for (size_t j = 0; j < hd; j++)
                gi[j] += xi * xr[j];
        }
    }
}

/* P = U_r U_r^T for the r leading eigenvectors of G (a destroyed copy in
 * a); identity if the eigensolve fails. z, w, isuppz: scratch. */
static void lowrank_projector(float *P, const double *G, size_t hd, int32_t r, double *a,
                              double *z, double *w, lapack_int *isuppz)
{
    memcpy(a, G, hd * hd * sizeof *a);
    lapack_int m = 0, d = (lapack_int)hd;
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'A', 'U', d, a, d, 0.0, 0.0, 0, 0,
                                     0.0, &m, w, z, d, isuppz);
    if (r > (int32_t)hd)
        r = (int32_t)hd;
    for (size_t i = 0; i < hd; i++)
        for (size_t j = 0; j < hd; j++) {
            double acc = 0.0;
            if (info != 0 || m != d) {
                acc = i == j ? 1.0 : 0.0;
            } else {
                /* ascending eigenvalues: the leading r are the last r columns */
                for (size_t c = hd - (size_t)r; c < hd; c++)
                    acc += z[i * hd + c] * z[j * hd + c];
            }
            P[i * hd + j] = (float)acc;
        }
}

static void lowrank_bases_item(void *ctx, size_t item, int thread)
{
    const LowRankJob *j = ctx;
    const TrainAttnShape *s = j->s;
    const TrainLowRank *lr = j->lr;
    size_t b = item / s->n_head, h = item % s->n_head, hd = s->head_dim, T = s->t;
    size_t dd = hd * hd, seg = lr->segment;
    double *g = calloc(7 * dd + hd, sizeof *g);
    lapack_int *isuppz = malloc(2 * hd * sizeof *isuppz);
    if (!g || !isuppz) {
        free(g), free(isuppz);
        return; /* projectors stay as they were */
    }
    double *gk = g, *gv = g + dd, *a = g + 2 * dd, *z = g + 3 * dd, *w = g + 5 * dd;
    double *gq = g + 5 * dd + hd, *gqk = gq + dd; /* [Q; K] basis (measurement) */
    for (size_t sg = 1; sg < lr->n_seg; sg++) {
        size_t r0 = (sg - 1) * seg, r1 = sg * seg < T ? sg * seg : T;
        lowrank_gram_add(gk, j->k, s->qkv_stride, b * T, h, hd, r0, r1);
        lowrank_gram_add(gv, j->v, s->qkv_stride, b * T, h, hd, r0, r1);
        if (lr->key_basis_qk)
            lowrank_gram_add(gq, j->q, s->qkv_stride, b * T, h, hd, r0, r1);
        if (!train_ops_lowrank_active(s, lr, b, h, sg))
            continue;
        int32_t r = lr->rank[(b * s->n_head + h) * lr->n_seg + sg];
        float *P = lr->proj + ((b * s->n_head + h) * lr->n_seg + sg) * 2 * dd;
        const double *gkey = gk;
        if (lr->key_basis_qk) {
            double tk = 0.0, tq = 0.0;
            for (size_t i = 0; i < hd; i++)
                tk += gk[i * hd + i], tq += gq[i * hd + i];
            for (size_t i = 0; i < dd; i++)
                gqk[i] = (tk > 0 ? gk[i] / tk : 0.0) + (tq > 0 ? gq[i] / tq : 0.0);
            gkey = gqk;
        }
        lowrank_projector(P, gkey, hd, r, a, z, w, isuppz);
        lowrank_projector(P + dd, gv, hd, r, a, z, w, isuppz);
    }
    free(g), free(isuppz);
}

void train_ops_lowrank_bases(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                             const float *q, const float *k, const float *v)
{
    LowRankJob j = {.s = s, .lr = lr, .q = q, .k = k, .v = v};
    int saved = blas_serial_begin(); /* LAPACK single-threaded in the workers */
    train_pool_run(pool, lowrank_bases_item, &j, s->b * s->n_head);
    blas_serial_end(saved);
}

/* Item = (b, h, segment) of the rank-aware ops: its coordinates, its rows
 * [r0, r1) and its two projectors (key, then value); 0 when the segment
 * runs exact (nothing to do). */
typedef struct LowRankItem {
    size_t b, h, r0, r1;
    const float *P; /* key projector; the value projector follows at hd * hd */
} LowRankItem;

static int lowrank_item(const TrainAttnShape *s, const TrainLowRank *lr, size_t item,
                        LowRankItem *it)
{
    size_t sg = item % lr->n_seg, bh = item / lr->n_seg, hd = s->head_dim, T = s->t;
    it->b = bh / s->n_head, it->h = bh % s->n_head;
    if (!train_ops_lowrank_active(s, lr, it->b, it->h, sg))
        return 0;
    it->P = lr->proj + (bh * lr->n_seg + sg) * 2 * hd * hd;
    it->r0 = sg * lr->segment;
    it->r1 = it->r0 + lr->segment < T ? it->r0 + lr->segment : T;
    return 1;
}

/* row <- row P for the rows of one (b, h, segment): axpy's over P's rows
 * (P is symmetric), accumulated in float like the other kernels. */
TRAIN_HOT static void lowrank_project_item(void *ctx, size_t item, int thread)
{
    const LowRankJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t hd = s->head_dim, T = s->t;
    LowRankItem it;
    if (!lowrank_item(s, j->lr, item, &it))
        return;
    const float *P = it.P + (size_t)j->side * hd * hd;
    float tmp[1024];
    for (size_t r = it.r0; r < it.r1; r++) {
        float *x = j->x + (it.b * T + r) * j->stride + it.h * hd;
        for (size_t c = 0; c < hd; c++)
            tmp[c] = 0.0f;
        for (size_t i = 0; i < hd; i++) {
            float xi = x[i];
            const float *pi = P + i * hd;
            for (size_t c = 0; c < hd; c++)
                tmp[c] += xi * pi[c];
        }
        memcpy(x, tmp, hd * sizeof(float));
    }
}

void train_ops_lowrank_project(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                               float *x, size_t stride, int side)
{
    LowRankJob j = {.s = s, .lr = lr, .x = x, .stride = stride, .side = side};
    train_pool_run(pool, lowrank_project_item, &j, s->b * s->n_head * lr->n_seg);
}

/* ---- spectral tail of the rank-r bases ------------------------------- */

typedef struct TailJob {
    const TrainAttnShape *s;
    const TrainLowRank *lr;
    const float *x[2]; /* k, v */
    float *dx[2];      /* dk, dv (backward) or NULL */
    double *tail;      /* (b, n_head, n_seg, 2) (forward) or NULL */
    float coef;
} TailJob;

/* e = x (I - P) for one row, in double (P symmetric). */
static inline void tail_resid(double *e, const float *x, const float *P, size_t hd)
{
    for (size_t c = 0; c < hd; c++)
        e[c] = x[c];
    for (size_t i = 0; i < hd; i++) {
        double xi = x[i];
        const float *pi = P + i * hd;
        for (size_t c = 0; c < hd; c++)
            e[c] -= xi * pi[c];
    }
}

/* One (b, h, segment): f = ||X (I - P)||^2 / ||X||^2 for X = K_s and V_s;
 * with dx, dX += coef * 2 (X (I - P) - f X) / ||X||^2 on the segment's rows,
 * which no other item touches. */
TRAIN_HOT static void tail_item(void *ctx, size_t item, int thread)
{
    const TailJob *j = ctx;
    const TrainAttnShape *s = j->s;
    size_t hd = s->head_dim, T = s->t;
    LowRankItem it;
    if (!lowrank_item(s, j->lr, item, &it))
        return;
    size_t b = it.b, h = it.h, r0 = it.r0, r1 = it.r1;
    double e[1024];
    for (int side = 0; side < 2; side++) {
        const float *P = it.P + (size_t)side * hd * hd;
        double res = 0.0, nrm = 0.0;
        for (size_t r = r0; r < r1; r++) {
            const float *x = j->x[side] + (b * T + r) * s->qkv_stride + h * hd;
            tail_resid(e, x, P, hd);
            for (size_t c = 0; c < hd; c++)
                res += e[c] * e[c], nrm += (double)x[c] * x[c];
        }
        double f = nrm > 0.0 ? res / nrm : 0.0;
        if (j->tail)
            j->tail[item * 2 + (size_t)side] = f;
        if (!j->dx[side] || !(nrm > 0.0))
            continue;
        double g = 2.0 * (double)j->coef / nrm;
        for (size_t r = r0; r < r1; r++) {
            const float *x = j->x[side] + (b * T + r) * s->qkv_stride + h * hd;
            float *dx = j->dx[side] + (b * T + r) * s->qkv_stride + h * hd;
            tail_resid(e, x, P, hd);
            for (size_t c = 0; c < hd; c++)
                dx[c] += (float)(g * (e[c] - f * x[c]));
        }
    }
}

size_t train_ops_lowrank_tail(TrainPool *pool, const TrainAttnShape *s, const TrainLowRank *lr,
                              const float *k, const float *v, double *tail)
{
    size_t items = s->b * s->n_head * lr->n_seg, n_active = 0;
    memset(tail, 0, items * 2 * sizeof *tail);
    TailJob j = {.s = s, .lr = lr, .x = {k, v}, .dx = {NULL, NULL}, .tail = tail};
    train_pool_run(pool, tail_item, &j, items);
    for (size_t i = 0; i < items; i++) {
        size_t bh = i / lr->n_seg;
        n_active += (size_t)train_ops_lowrank_active(s, lr, bh / s->n_head, bh % s->n_head,
                                                     i % lr->n_seg);
    }
    return n_active;
}

void train_ops_lowrank_tail_backward(TrainPool *pool, const TrainAttnShape *s,
                                     const TrainLowRank *lr, float *dk, float *dv,
                                     const float *k, const float *v, float coef)
{
    TailJob j = {.s = s, .lr = lr, .x = {k, v}, .dx = {dk, dv}, .coef = coef};
    train_pool_run(pool, tail_item, &j, s->b * s->n_head * lr->n_seg);
}

/* ---- SwiGLU ------------------------------------------------------------ */

typedef struct GluJob {
    float *h, *dgu;
    const float *gu, *dh;
    size_t n, f;
} GluJob;

TRAIN_HOT static void glu_fwd_item(void *ctx, size_t chunk, int thread)
{
    const GluJob *j = ctx;
    size_t r0, r1;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        const float *g = j->gu + r * 2 * j->f, *u = g + j->f;
        float *h = j->h + r * j->f;
        for (size_t i = 0; i < j->f; i++)
            h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void train_ops_swiglu_forward(TrainPool *pool, float *h, const float *gu, size_t n, size_t f)
{
    GluJob j = {.h = h, .gu = gu, .n = n, .f = f};
    train_pool_run(pool, glu_fwd_item, &j, TRAIN_POOL_CHUNKS);
}

/* silu(g) = g sig(g); silu'(g) = sig(g) (1 + g (1 - sig(g))). */
TRAIN_HOT static void glu_bwd_item(void *ctx, size_t chunk, int thread)
{
    const GluJob *j = ctx;
    size_t r0, r1;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        const float *g = j->gu + r * 2 * j->f, *u = g + j->f, *dh = j->dh + r * j->f;
        float *dg = j->dgu + r * 2 * j->f, *du = dg + j->f;
        for (size_t i = 0; i < j->f; i++) {
            float sg = 1.0f / (1.0f + expf(-g[i]));
            du[i] = dh[i] * g[i] * sg;
            dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        }
    }
}

void train_ops_swiglu_backward(TrainPool *pool, float *dgu, const float *dh, const float *gu,
                               size_t n, size_t f)
{
    GluJob j = {.dgu = dgu, .gu = gu, .dh = dh, .n = n, .f = f};
    train_pool_run(pool, glu_bwd_item, &j, TRAIN_POOL_CHUNKS);
}

/* ---- embedding --------------------------------------------------------- */

typedef struct EmbJob {
    float *x, *dtable;
    const float *table, *dx;
    const uint8_t *tokens;
    size_t n, c;
} EmbJob;

static void emb_fwd_item(void *ctx, size_t chunk, int thread)
{
    const EmbJob *j = ctx;
    size_t r0, r1;
    train_pool_chunk(j->n, chunk, &r0, &r1);
    for (size_t r = r0; r < r1; r++)
        memcpy(j->x + r * j->c, j->table + (size_t)j->tokens[r] * j->c, j->c * sizeof(float));
}

void train_ops_embedding_forward(TrainPool *pool, float *x, const float *table,
                                 const uint8_t *tokens, size_t n, size_t c)
{
    EmbJob j = {.x = x, .table = table, .tokens = tokens, .n = n, .c = c};
    train_pool_run(pool, emb_fwd_item, &j, TRAIN_POOL_CHUNKS);
}

/* Each chunk owns a slice of the C columns and walks all rows in order, so
 * no two threads touch the same gradient entry and the order is fixed. */
static void emb_bwd_item(void *ctx, size_t chunk, int thread)
{
    const EmbJob *j = ctx;
    size_t c0, c1;
    train_pool_chunk(j->c, chunk, &c0, &c1);
    if (c0 == c1)
        return;
    for (size_t r = 0; r < j->n; r++) {
        float *d = j->dtable + (size_t)j->tokens[r] * j->c;
        const float *g = j->dx + r * j->c;
        for (size_t i = c0; i < c1; i++)
            d[i] += g[i];
    }
}

void train_ops_embedding_backward(TrainPool *pool, float *dtable, const float *dx,
                                  const uint8_t *tokens, size_t n, size_t c)
{
    EmbJob j = {.dtable = dtable, .dx = dx, .tokens = tokens, .n = n, .c = c};
    train_pool_run(pool, emb_bwd_item, &j, TRAIN_POOL_CHUNKS);
}

/* ---- cross-entropy ----------------------------------------------------- */

typedef struct CeJob {
    float *dlogits;
    double *nll;
    const float *logits;
    const uint8_t *targets;
    size_t v;
    float scale;
} CeJob;

/* Rows [r0, r1): their NLL sum; per-row NLLs and gradients where asked. */
static double ce_part(void *ctx, size_t r0, size_t r1)
{
    const CeJob *j = ctx;
    double acc = 0.0;
    for (size_t r = r0; r < r1; r++) {
        const float *l = j->logits + r * j->v;
        float mx;
        double ls = logsumexp_shifted(l, j->v, &mx);
        double lse = mx + ls;
        double nll = lse - l[j->targets[r]];
        acc += nll;
        if (j->nll)
            j->nll[r] = nll;
        if (j->dlogits) {
            float *d = j->dlogits + r * j->v;
            size_t tgt = j->targets[r];
            for (size_t i = 0; i < j->v; i++)
                d[i] = (float)exp((double)l[i] - lse) * j->scale;
            d[tgt] -= j->scale;
        }
    }
    return acc;
}

double train_ops_crossentropy(TrainPool *pool, float *dlogits, double *nll, const float *logits,
                              const uint8_t *targets, size_t n, size_t v, float grad_scale)
{
    CeJob j = {.dlogits = dlogits,
               .nll = nll,
               .logits = logits,
               .targets = targets,
               .v = v,
               .scale = grad_scale};
    return train_pool_sum(pool, ce_part, &j, n);
}
