/* test_train.c: the trainer's kernels and model against central finite
 * differences, determinism, the learning-rate schedule, checkpoints, and the
 * Hugging Face export round trip.
 *
 * Gradient checks: each kernel's output y is reduced to L = sum(y * r) (r
 * fixed random, sum in double), so dL/dy = r is fed to backward, and
 * dL/dx_i is compared with (L(x + h e_i) - L(x - h e_i)) / 2h on sampled
 * entries. Forward passes run in float32, so the difference quotient carries
 * a rounding noise of about n_out * 2^-24 * |y r| / h; h = 1e-2 keeps that
 * near 1e-4 while the truncation error (h^2 / 6 * L''') stays below 1e-4 for
 * these O(1) inputs. The bound |fd - an| <= 2e-3 + 2e-2 |an| is a few times
 * the largest error seen on correct code, and far below the errors of a wrong
 * sign, a missing term or a transposed index (order |an|). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/train.h"
#include "train/train_export.h"
#include "train/train_model.h"
#include "train/train_ops.h"

static uint64_t rng_state = 12345;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static void fill(float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((urand() * 2.0 - 1.0) * scale);
}

typedef double (*LossFn)(void *ctx);

#define H_FD 1e-2
#define TOL_ABS 2e-3
#define TOL_REL 2e-2

/* Compare g with finite differences of f on up to `samples` entries of x. */
static void check_grad(const char *what, float *x, const float *g, size_t n, LossFn f,
                       void *ctx, size_t samples)
{
    size_t step = n > samples ? n / samples : 1;
    double worst = 0;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + (float)H_FD;
        double lp = f(ctx);
        x[i] = keep - (float)H_FD;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2 * H_FD), an = g[i];
        double e = fabs(fd - an) - TOL_REL * fabs(an);
        if (e > worst)
            worst = e;
        cr_expect(fabs(fd - an) <= TOL_ABS + TOL_REL * fabs(an),
                  "%s[%zu]: finite difference %.6g, backward %.6g", what, i, fd, an);
    }
    (void)worst;
}

static double dot_r(const float *y, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

/* ---- RMSNorm ---- */
typedef struct {
    size_t n, c;
    float *x, *w, *y, *rstd, *r;
} RmsCtx;
static double rms_loss(void *p)
{
    RmsCtx *k = p;
    train_ops_rmsnorm_forward(NULL, k->y, k->rstd, k->x, k->w, k->n, k->c, 1e-5f);
    return dot_r(k->y, k->r, k->n * k->c);
}
Test(train_grad, rmsnorm)
{
    size_t n = 5, c = 12;
    RmsCtx k = {n,
                c,
                malloc(n * c * 4),
                malloc(c * 4),
                malloc(n * c * 4),
                malloc(n * 4),
                malloc(n * c * 4)};
    fill(k.x, n * c, 1.5);
    fill(k.w, c, 1.0);
    fill(k.r, n * c, 1.0);
    float *dx = calloc(n * c, 4), *dw = calloc(c, 4);
    double *scratch = calloc(TRAIN_POOL_CHUNKS * c, sizeof(double));
    rms_loss(&k);
    train_ops_rmsnorm_backward(NULL, dx, dw, k.r, k.x, k.w, k.rstd, n, c, scratch);
    check_grad("rmsnorm dx", k.x, dx, n * c, rms_loss, &k, 60);
    check_grad("rmsnorm dw", k.w, dw, c, rms_loss, &k, 12);
    free(k.x), free(k.w), free(k.y), free(k.rstd), free(k.r), free(dx), free(dw), free(scratch);
}

/* ---- RoPE ---- */
typedef struct {
    size_t n, t, stride, heads, hd;
    float *x, *y, *r, *cs, *sn;
} RopeCtx;
static double rope_loss(void *p)
{
    RopeCtx *k = p;
    memcpy(k->y, k->x, k->n * k->stride * 4);
    train_ops_rope_forward(NULL, k->y, k->n, k->t, 0, k->stride, k->heads, k->hd, k->cs, k->sn);
    return dot_r(k->y, k->r, k->n * k->stride);
}
Test(train_grad, rope)
{
    size_t t = 6, n = 12, heads = 2, hd = 8, stride = 20; /* 4 spare columns */
    RopeCtx k = {n,
                 t,
                 stride,
                 heads,
                 hd,
                 malloc(n * stride * 4),
                 malloc(n * stride * 4),
                 malloc(n * stride * 4),
                 malloc(t * hd / 2 * 4),
                 malloc(t * hd / 2 * 4)};
    train_ops_rope_table(k.cs, k.sn, t, hd, 10000.0);
    fill(k.x, n * stride, 1.0);
    fill(k.r, n * stride, 1.0);
    float *d = malloc(n * stride * 4);
    memcpy(d, k.r, n * stride * 4);
    train_ops_rope_backward(NULL, d, n, t, 0, stride, heads, hd, k.cs, k.sn);
    check_grad("rope dx", k.x, d, n * stride, rope_loss, &k, 240);
    /* position 0 is the identity */
    memcpy(k.y, k.x, n * stride * 4);
    train_ops_rope_forward(NULL, k.y, n, t, 0, stride, heads, hd, k.cs, k.sn);
    cr_expect(memcmp(k.y, k.x, stride * 4) == 0);
    free(k.x), free(k.y), free(k.r), free(k.cs), free(k.sn), free(d);
}

/* ---- attention ---- */
typedef struct {
    TrainAttnShape s;
    float *qkv, *o, *p, *r, *scratch;
} AttnCtx;
static double attn_loss(void *pv)
{
    AttnCtx *k = pv;
    size_t D = k->s.n_head * k->s.head_dim;
    train_ops_attention_forward(NULL, &k->s, k->o, k->p, k->qkv, k->qkv + D, k->qkv + 2 * D,
                                k->scratch);
    return dot_r(k->o, k->r, k->s.b * k->s.t * D);
}
static void attention_check(size_t b, size_t t, int use_blas)
{
    size_t h = 2, hd = 4, D = h * hd, n = b * t;
    AttnCtx k = {{b, t, h, hd, 3 * D, D, use_blas}, malloc(n * 3 * D * 4), malloc(n * D * 4),
                 malloc(b * h * t * t * 4),         malloc(n * D * 4),     NULL};
    k.scratch = malloc(train_ops_attention_scratch(&k.s, 1) * 4);
    fill(k.qkv, n * 3 * D, 1.5);
    fill(k.r, n * D, 1.0);
    float *dqkv = malloc(n * 3 * D * 4);
    attn_loss(&k);
    /* causality: rows of P sum to 1 with zeros above the diagonal */
    for (size_t i = 0; i < b * h * t; i++) {
        double s = 0;
        for (size_t u = 0; u < t; u++) {
            s += k.p[i * t + u];
            if (u > i % t)
                cr_expect(k.p[i * t + u] == 0.0f);
        }
        cr_expect(fabs(s - 1) < 1e-5);
    }
    train_ops_attention_backward(NULL, &k.s, dqkv, dqkv + D, dqkv + 2 * D, k.r, k.p, k.qkv,
                                 k.qkv + D, k.qkv + 2 * D, k.scratch);
    check_grad(use_blas ? "attention (sgemm) dq/dk/dv" : "attention dq/dk/dv", k.qkv, dqkv,
               n * 3 * D, attn_loss, &k, 240);
    free(k.qkv), free(k.o), free(k.p), free(k.r), free(k.scratch), free(dqkv);
}
Test(train_grad, attention)
{
    attention_check(2, 5, 0);
}
/* 300 rows: two sgemm blocks (256 + 44), so block edges are crossed */
Test(train_grad, attention_sgemm)
{
    attention_check(2, 300, 1);
}

/* Both attention paths compute the same thing. */
Test(train, attention_paths_agree)
{
    size_t b = 2, t = 300, h = 2, hd = 8, D = h * hd, n = b * t;
    TrainAttnShape s0 = {b, t, h, hd, 3 * D, D, 0}, s1 = s0;
    s1.use_blas = 1;
    float *qkv = malloc(n * 3 * D * 4), *o0 = malloc(n * D * 4), *o1 = malloc(n * D * 4);
    float *sc0 = malloc(train_ops_attention_scratch(&s0, 1) * 4);
    float *sc1 = malloc(train_ops_attention_scratch(&s1, 1) * 4);
    fill(qkv, n * 3 * D, 2.0);
    train_ops_attention_forward(NULL, &s0, o0, NULL, qkv, qkv + D, qkv + 2 * D, sc0);
    train_ops_attention_forward(NULL, &s1, o1, NULL, qkv, qkv + D, qkv + 2 * D, sc1);
    for (size_t i = 0; i < n * D; i++)
        cr_assert(fabsf(o0[i] - o1[i]) <= 1e-5f * (1.0f + fabsf(o0[i])), "%zu: %g vs %g", i,
                  o0[i], o1[i]);
    free(qkv), free(o0), free(o1), free(sc0), free(sc1);
}

/* ---- rank-aware attention ---- */
typedef struct {
    AttnCtx a;
    TrainLowRank lr;
    float *q1; /* projected copy of qkv */
} LrCtx;
/* O = attention(q P_K, K, V) P_V with the projectors in k->lr (fixed). */
static double lr_loss(void *pv)
{
    LrCtx *k = pv;
    const TrainAttnShape *s = &k->a.s;
    size_t D = s->n_head * s->head_dim, n = s->b * s->t;
    memcpy(k->q1, k->a.qkv, n * 3 * D * 4);
    train_ops_lowrank_project(NULL, s, &k->lr, k->q1, 3 * D, 0);
    train_ops_attention_forward(NULL, s, k->a.o, k->a.p, k->q1, k->q1 + D, k->q1 + 2 * D,
                                k->a.scratch);
    train_ops_lowrank_project(NULL, s, &k->lr, k->a.o, D, 1);
    return dot_r(k->a.o, k->a.r, n * D);
}
static LrCtx lr_setup(size_t b, size_t t, size_t h, size_t hd, size_t seg, int32_t *rank)
{
    size_t D = h * hd, n = b * t;
    LrCtx k;
    memset(&k, 0, sizeof k);
    k.a = (AttnCtx){{b, t, h, hd, 3 * D, D, 0}, malloc(n * 3 * D * 4), malloc(n * D * 4),
                    malloc(b * h * t * t * 4),  malloc(n * D * 4),     NULL};
    k.a.scratch = malloc(train_ops_attention_scratch(&k.a.s, 1) * 4);
    k.lr.segment = seg;
    k.lr.n_seg = (t + seg - 1) / seg;
    k.lr.rank = rank;
    k.lr.proj = calloc(b * h * k.lr.n_seg * 2 * hd * hd, 4);
    k.q1 = malloc(n * 3 * D * 4);
    fill(k.a.qkv, n * 3 * D, 1.5);
    fill(k.a.r, n * D, 1.0);
    train_ops_lowrank_bases(NULL, &k.a.s, &k.lr, NULL, k.a.qkv + D, k.a.qkv + 2 * D);
    return k;
}
static void lr_free(LrCtx *k)
{
    free(k->a.qkv), free(k->a.o), free(k->a.p), free(k->a.r), free(k->a.scratch);
    free(k->lr.proj), free(k->q1);
}

/* Backward of rank-aware attention with the bases held constant (the
 * training rule): dO P_V in, exact backward on (q P_K, K, V), dq' P_K out,
 * against finite differences of the forward with the same projectors. */
Test(train_grad, attention_lowrank)
{
    size_t b = 2, t = 13, h = 2, hd = 6, seg = 4, D = h * hd, n = b * t;
    int32_t rank[2 * 2 * 4] = {6, 2, 4, 6, 6, 1, 3, 5, 6, 4, 2, 2, 6, 3, 6, 1};
    LrCtx k = lr_setup(b, t, h, hd, seg, rank);
    lr_loss(&k);
    float *dqkv = malloc(n * 3 * D * 4), *dout = malloc(n * D * 4);
    memcpy(dout, k.a.r, n * D * 4);
    train_ops_lowrank_project(NULL, &k.a.s, &k.lr, dout, D, 1);
    train_ops_attention_backward(NULL, &k.a.s, dqkv, dqkv + D, dqkv + 2 * D, dout, k.a.p, k.q1,
                                 k.q1 + D, k.q1 + 2 * D, k.a.scratch);
    train_ops_lowrank_project(NULL, &k.a.s, &k.lr, dqkv, 3 * D, 0);
    check_grad("rank-aware attention dq/dk/dv", k.a.qkv, dqkv, n * 3 * D, lr_loss, &k, 300);
    /* the projector of a rank-r cell is symmetric, idempotent, of trace r */
    const float *P = k.lr.proj + ((0 * h + 0) * k.lr.n_seg + 1) * 2 * hd * hd; /* rank 2 */
    double tr = 0, worst = 0;
    for (size_t i = 0; i < hd; i++) {
        tr += P[i * hd + i];
        for (size_t j = 0; j < hd; j++) {
            double pp = 0;
            for (size_t l = 0; l < hd; l++)
                pp += (double)P[i * hd + l] * P[l * hd + j];
            worst = fmax(worst, fabs(pp - P[i * hd + j]) + fabs(P[i * hd + j] - P[j * hd + i]));
        }
    }
    cr_expect(fabs(tr - 2.0) < 1e-5 && worst < 1e-5, "trace %g, |P^2 - P| + asym %g", tr,
              worst);
    free(dqkv), free(dout);
    lr_free(&k);
}

/* At rank head_dim the projectors are the identity: exact attention (to
 * float rounding); a lower rank changes the output; segment 0 is exact. */
Test(train, attention_lowrank_full_rank_is_exact)
{
    size_t b = 2, t = 20, h = 2, hd = 8, seg = 8, D = h * hd, n = b * t;
    int32_t rank[2 * 2 * 3];
    for (int i = 0; i < 12; i++)
        rank[i] = 8;
    LrCtx k = lr_setup(b, t, h, hd, seg, rank);
    k.lr.at_full = 1;
    train_ops_lowrank_bases(NULL, &k.a.s, &k.lr, NULL, k.a.qkv + D, k.a.qkv + 2 * D);
    lr_loss(&k);
    float *o = malloc(n * D * 4);
    train_ops_attention_forward(NULL, &k.a.s, o, NULL, k.a.qkv, k.a.qkv + D, k.a.qkv + 2 * D,
                                k.a.scratch);
    for (size_t i = 0; i < n * D; i++)
        cr_assert(fabsf(o[i] - k.a.o[i]) <= 1e-5f * (1.0f + fabsf(o[i])), "%zu: %g vs %g", i,
                  o[i], k.a.o[i]);
    for (int i = 0; i < 12; i++)
        rank[i] = 3;
    k.lr.at_full = 0;
    train_ops_lowrank_bases(NULL, &k.a.s, &k.lr, NULL, k.a.qkv + D, k.a.qkv + 2 * D);
    lr_loss(&k);
    double d0 = 0, d1 = 0;
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < D; i++) {
            double d = fabs(o[r * D + i] - k.a.o[r * D + i]);
            if (r % t < seg)
                d0 = fmax(d0, d);
            else
                d1 = fmax(d1, d);
        }
    cr_expect(d0 == 0.0, "segment 0 must run exact (max diff %g)", d0);
    cr_expect(d1 > 1e-2, "rank 3 of 8 must change the output (max diff %g)", d1);
    free(o);
    lr_free(&k);
}

/* ---- spectral tail of the rank-r bases (--ra-tail) ---- */
typedef struct {
    LrCtx *k;
    double *tail;
    float coef;
} TailCtx;
/* coef * sum over items of (f_K + f_V), bases fixed */
static double tail_loss(void *pv)
{
    TailCtx *c = pv;
    const TrainAttnShape *s = &c->k->a.s;
    size_t D = s->n_head * s->head_dim, items = s->b * s->n_head * c->k->lr.n_seg;
    train_ops_lowrank_tail(NULL, s, &c->k->lr, c->k->a.qkv + D, c->k->a.qkv + 2 * D, c->tail);
    double sum = 0;
    for (size_t i = 0; i < 2 * items; i++)
        sum += c->tail[i];
    return c->coef * sum;
}

/* The tail fractions against a direct computation, their gradient against
 * finite differences, and the same bits from a pool of 3 threads. The loss
 * is computed in double from float inputs, so the difference quotient is
 * limited by truncation (h^2/6 f''' ~ 1e-6 here) and by the rounding of
 * x +- h to float (relative 2^-24 |x| / h ~ 1e-5): the bound is
 * |fd - an| <= 1e-4 + 1e-3 |an|, against gradients of order 0.05. */
Test(train_grad, lowrank_tail)
{
    size_t b = 2, t = 13, h = 2, hd = 6, seg = 4, D = h * hd, n = b * t;
    int32_t rank[2 * 2 * 4] = {6, 2, 4, 6, 6, 1, 3, 5, 6, 4, 2, 2, 6, 3, 6, 1};
    LrCtx k = lr_setup(b, t, h, hd, seg, rank);
    size_t items = b * h * k.lr.n_seg;
    double *tail = calloc(2 * items, sizeof *tail), *tail3 = calloc(2 * items, sizeof *tail3);
    TailCtx c = {&k, tail, 0.7f};
    size_t n_active =
        train_ops_lowrank_tail(NULL, &k.a.s, &k.lr, k.a.qkv + D, k.a.qkv + 2 * D, tail);
    cr_expect_eq(n_active, 10, "active items %zu", n_active); /* 12 after segment 0, 2 at 6 */
    /* f_K of (b 0, h 0, segment 1, rank 2) directly: sum |x - x P|^2 / sum |x|^2 */
    const float *P = k.lr.proj + ((0 * h + 0) * k.lr.n_seg + 1) * 2 * hd * hd;
    double res = 0, nrm = 0;
    for (size_t r = seg; r < 2 * seg; r++) {
        const float *x = k.a.qkv + r * 3 * D + D;
        for (size_t j = 0; j < hd; j++) {
            double y = 0;
            for (size_t i = 0; i < hd; i++)
                y += (double)x[i] * P[i * hd + j];
            res += (x[j] - y) * (x[j] - y), nrm += (double)x[j] * x[j];
        }
    }
    cr_expect(fabs(tail[2 * 1] - res / nrm) < 1e-12, "f_K %.9g vs %.9g", tail[2], res / nrm);
    cr_expect(tail[2 * 1] > 0.2 && tail[2 * 1] < 1.0, "f_K at rank 2 of 6: %g", tail[2]);
    cr_expect(tail[0] == 0 && tail[1] == 0, "segment 0 is exact: no tail");
    /* gradient, accumulated (+=) onto what is there */
    float *dqkv = malloc(n * 3 * D * 4), *base = malloc(n * 3 * D * 4);
    fill(base, n * 3 * D, 0.1);
    memcpy(dqkv, base, n * 3 * D * 4);
    train_ops_lowrank_tail_backward(NULL, &k.a.s, &k.lr, dqkv + D, dqkv + 2 * D, k.a.qkv + D,
                                    k.a.qkv + 2 * D, c.coef);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n * 3 * D; i++) {
        float keep = k.a.qkv[i];
        k.a.qkv[i] = keep + (float)H_FD;
        double lp = tail_loss(&c);
        k.a.qkv[i] = keep - (float)H_FD;
        double lm = tail_loss(&c);
        k.a.qkv[i] = keep;
        double fd = (lp - lm) / (2 * H_FD), an = (double)dqkv[i] - base[i];
        worst = fmax(worst, fabs(fd - an) - 1e-3 * fabs(an));
        gmax = fmax(gmax, fabs(an));
        cr_expect(fabs(fd - an) <= 1e-4 + 1e-3 * fabs(an),
                  "tail d[%zu]: fd %.8g, backward %.8g", i, fd, an);
    }
    cr_expect(gmax > 1e-2, "the tail gradient must not vanish (max %g)", gmax);
    /* a pool of 3 threads: the same bits */
    TrainPool *pool;
    cr_assert_eq(train_pool_new(3, &pool, NULL), DRRL_OK);
    float *dqkv3 = malloc(n * 3 * D * 4);
    memcpy(dqkv3, base, n * 3 * D * 4);
    cr_expect_eq(
        train_ops_lowrank_tail(pool, &k.a.s, &k.lr, k.a.qkv + D, k.a.qkv + 2 * D, tail3),
        n_active);
    train_ops_lowrank_tail_backward(pool, &k.a.s, &k.lr, dqkv3 + D, dqkv3 + 2 * D, k.a.qkv + D,
                                    k.a.qkv + 2 * D, c.coef);
    tail_loss(&c);
    cr_expect(memcmp(tail, tail3, 2 * items * sizeof *tail) == 0);
    cr_expect(memcmp(dqkv, dqkv3, n * 3 * D * 4) == 0);
    train_pool_free(pool);
    free(tail), free(tail3), free(dqkv), free(dqkv3), free(base);
    lr_free(&k);
}

/* ---- SwiGLU ---- */
typedef struct {
    size_t n, f;
    float *gu, *h, *r;
} GluCtx;
static double glu_loss(void *p)
{
    GluCtx *k = p;
    train_ops_swiglu_forward(NULL, k->h, k->gu, k->n, k->f);
    return dot_r(k->h, k->r, k->n * k->f);
}
Test(train_grad, swiglu)
{
    size_t n = 4, f = 9;
    GluCtx k = {n, f, malloc(n * 2 * f * 4), malloc(n * f * 4), malloc(n * f * 4)};
    fill(k.gu, n * 2 * f, 3.0);
    fill(k.r, n * f, 1.0);
    float *d = malloc(n * 2 * f * 4);
    train_ops_swiglu_backward(NULL, d, k.r, k.gu, n, f);
    check_grad("swiglu dg/du", k.gu, d, n * 2 * f, glu_loss, &k, 72);
    free(k.gu), free(k.h), free(k.r), free(d);
}

/* ---- linear ---- */
typedef struct {
    size_t n, in, out;
    float *x, *w, *y, *r;
} LinCtx;
static double lin_loss(void *p)
{
    LinCtx *k = p;
    train_ops_linear_forward(k->y, k->x, k->w, k->n, k->in, k->out, 0);
    return dot_r(k->y, k->r, k->n * k->out);
}
Test(train_grad, linear)
{
    size_t n = 6, in = 7, out = 5;
    LinCtx k = {n,
                in,
                out,
                malloc(n * in * 4),
                malloc(out * in * 4),
                malloc(n * out * 4),
                malloc(n * out * 4)};
    fill(k.x, n * in, 1.0);
    fill(k.w, out * in, 1.0);
    fill(k.r, n * out, 1.0);
    float *dx = calloc(n * in, 4), *dw = calloc(out * in, 4);
    train_ops_linear_backward(dx, dw, k.r, k.x, k.w, n, in, out, 1);
    check_grad("linear dx", k.x, dx, n * in, lin_loss, &k, 42);
    check_grad("linear dw", k.w, dw, out * in, lin_loss, &k, 35);
    free(k.x), free(k.w), free(k.y), free(k.r), free(dx), free(dw);
}

/* ---- embedding + cross-entropy ---- */
typedef struct {
    size_t n, v;
    float *logits, *table, *x, *r;
    uint8_t *tok, *tgt;
} CeCtx;
static double ce_loss(void *p)
{
    CeCtx *k = p;
    return train_ops_crossentropy(NULL, NULL, NULL, k->logits, k->tgt, k->n, k->v, 0.0f);
}
static double emb_loss(void *p)
{
    CeCtx *k = p;
    train_ops_embedding_forward(NULL, k->x, k->table, k->tok, k->n, 3);
    return dot_r(k->x, k->r, k->n * 3);
}
Test(train_grad, crossentropy_and_embedding)
{
    size_t n = 4, v = 256;
    CeCtx k = {n,
               v,
               malloc(n * v * 4),
               malloc(v * 3 * 4),
               malloc(n * 3 * 4),
               malloc(n * 3 * 4),
               malloc(n),
               malloc(n)};
    fill(k.logits, n * v, 3.0);
    uint8_t tok[] = {7, 200, 7, 0}, tgt[] = {1, 2, 255, 1};
    memcpy(k.tok, tok, n);
    memcpy(k.tgt, tgt, n);
    float *d = malloc(n * v * 4);
    double loss = train_ops_crossentropy(NULL, d, NULL, k.logits, k.tgt, n, v, 1.0f);
    cr_expect(loss > 0);
    check_grad("crossentropy dlogits", k.logits, d, n * v, ce_loss, &k, 400);
    fill(k.table, v * 3, 1.0);
    fill(k.r, n * 3, 1.0);
    float *dt = calloc(v * 3, 4);
    train_ops_embedding_backward(NULL, dt, k.r, k.tok, n, 3);
    /* token 7 appears twice: its gradient row is the sum of both */
    for (size_t i = 0; i < 3; i++)
        cr_expect(fabsf(dt[7 * 3 + i] - (k.r[i] + k.r[2 * 3 + i])) < 1e-6f);
    check_grad("embedding dtable", k.table, dt, v * 3, emb_loss, &k, 768);
    free(k.logits), free(k.table), free(k.x), free(k.r), free(k.tok), free(k.tgt), free(d),
        free(dt);
}

/* ---- whole model ---- */
static const TrainModelConfig tiny = {.n_layer = 2,
                                      .d_model = 16,
                                      .n_head = 2,
                                      .head_dim = 8,
                                      .d_ff = 24,
                                      .tied = 0,
                                      .rms_eps = 1e-5f,
                                      .rope_theta = 10000.0,
                                      .max_positions = 64};
typedef struct {
    TrainModel *m;
    TrainActs *a;
    uint8_t tok[16], tgt[16];
} ModelCtx;
static double model_loss(void *p)
{
    ModelCtx *k = p;
    return train_model_forward(k->m, k->a, NULL, k->tok, k->tgt, 0, NULL) / 16.0;
}
static void model_check(int tied, int rank_aware)
{
    TrainModelConfig cfg = tiny;
    cfg.tied = tied;
    ModelCtx k;
    cr_assert_eq(train_model_new(&cfg, &k.m, NULL), DRRL_OK);
    cr_assert_eq(train_acts_new(k.m, 2, 8, 1, 1, &k.a, NULL), DRRL_OK);
    if (rank_aware) { /* segments of 3 rows: 0-2 exact, 3-5 and 6-7 at ranks 1..8 */
        cr_assert_eq(train_acts_set_lowrank(k.a, k.m, 3, NULL), DRRL_OK);
        size_t n_seg;
        int32_t *rk = train_acts_ranks(k.a, &n_seg);
        cr_assert_eq(n_seg, 3);
        for (size_t i = 0; i < 2 * 2 * 2 * 3; i++)
            rk[i] = 1 + (int32_t)(i * 5 % 8);
    }
    train_model_init(k.m, 7);
    /* larger weights than the 0.02 init so every path carries gradient */
    for (size_t i = 0; i < k.m->n_tensors; i++)
        if (k.m->tensors[i].ndim == 2)
            fill(k.m->tensors[i].w, k.m->tensors[i].numel, 0.4);
        else
            for (size_t j = 0; j < k.m->tensors[i].numel; j++)
                k.m->tensors[i].w[j] = 1.0f + (float)(urand() - 0.5);
    for (int i = 0; i < 16; i++) {
        k.tok[i] = (uint8_t)(urand() * 256);
        k.tgt[i] = (uint8_t)(urand() * 256);
    }
    train_model_zero_grad(k.m);
    double l = model_loss(&k);
    cr_expect(isfinite(l));
    if (rank_aware) /* bases constant for the finite differences, as in backward */
        train_acts_lowrank_debug(k.a, 1, 0);
    train_model_backward(k.m, k.a, NULL, k.tok);
    /* the training forward overwrote logits with their gradient: the FD
     * passes below recompute them, which is all they need */
    for (size_t i = 0; i < k.m->n_tensors; i++) {
        TrainTensor *t = &k.m->tensors[i];
        float *g = malloc(t->numel * 4);
        memcpy(g, t->g, t->numel * 4);
        check_grad(t->name, t->w, g, t->numel, model_loss, &k, 24);
        free(g);
    }
    train_acts_free(k.a);
    train_model_free(k.m);
}
Test(train_grad, model_untied)
{
    model_check(0, 0);
}
Test(train_grad, model_tied)
{
    model_check(1, 0);
}
Test(train_grad, model_rank_aware)
{
    model_check(1, 1);
}

/* The tail penalty through the whole model: the gradient it adds (with
 * lambda 1.5, minus the gradient without it) against finite differences of
 * the penalty alone, the bases frozen as in backward; tolerance as for the
 * model checks above (float32 activations). */
static double model_tail(void *p)
{
    ModelCtx *k = p;
    train_model_forward(k->m, k->a, NULL, k->tok, k->tgt, 0, NULL);
    return train_acts_tail(k->a, NULL, NULL, NULL);
}
Test(train_grad, model_rank_aware_tail)
{
    ModelCtx k;
    cr_assert_eq(train_model_new(&tiny, &k.m, NULL), DRRL_OK);
    cr_assert_eq(train_acts_new(k.m, 2, 8, 1, 1, &k.a, NULL), DRRL_OK);
    cr_assert_eq(train_acts_set_lowrank(k.a, k.m, 3, NULL), DRRL_OK);
    size_t n_seg;
    int32_t *rk = train_acts_ranks(k.a, &n_seg);
    for (size_t i = 0; i < 2 * 2 * 2 * 3; i++)
        rk[i] = 1 + (int32_t)(i * 5 % 8);
    train_model_init(k.m, 7);
    for (size_t i = 0; i < k.m->n_tensors; i++)
        if (k.m->tensors[i].ndim == 2)
            fill(k.m->tensors[i].w, k.m->tensors[i].numel, 0.4);
    for (int i = 0; i < 16; i++) {
        k.tok[i] = (uint8_t)(urand() * 256);
        k.tgt[i] = (uint8_t)(urand() * 256);
    }
    size_t np = k.m->n_params;
    float *g0 = malloc(np * 4), *g1 = malloc(np * 4);
    train_model_zero_grad(k.m);
    model_loss(&k); /* bases computed here, then frozen */
    train_acts_lowrank_debug(k.a, 1, 0);
    size_t items;
    double tk, tv;
    cr_expect(train_acts_tail(k.a, &items, &tk, &tv) == 0 && items == 0, "lambda 0: no tail");
    train_model_backward(k.m, k.a, NULL, k.tok);
    memcpy(g0, k.m->grads, np * 4);
    train_acts_lowrank_tail(k.a, 1.5);
    train_model_zero_grad(k.m);
    double pen = model_tail(&k);
    train_acts_tail(k.a, &items, &tk, &tv);
    cr_expect(items > 0 && tk > 0 && tv > 0 && fabs(pen - 1.5 * (tk + tv)) < 1e-12,
              "%zu items, tail K %g V %g, penalty %g", items, tk, tv, pen);
    train_model_backward(k.m, k.a, NULL, k.tok);
    memcpy(g1, k.m->grads, np * 4);
    double gmax = 0;
    for (size_t i = 0; i < np; i++) {
        g1[i] -= g0[i];
        gmax = fmax(gmax, fabs(g1[i]));
    }
    cr_expect(gmax > 1e-2, "the penalty must add gradient (max %g)", gmax);
    for (size_t i = 0; i < k.m->n_tensors; i++) {
        TrainTensor *t = &k.m->tensors[i];
        check_grad(t->name, t->w, g1 + (t->w - k.m->params), t->numel, model_tail, &k, 24);
    }
    free(g0), free(g1);
    train_acts_free(k.a);
    train_model_free(k.m);
}

/* ---- schedule ---- */
Test(train, lr_schedule)
{
    TrainOptions o;
    train_options_default(&o);
    o.steps = 1000;
    o.warmup = 100;
    o.lr = 1e-3;
    o.min_lr = 1e-4;
    cr_expect(fabs(train_lr(&o, 0) - 1e-5) < 1e-12);
    cr_expect(fabs(train_lr(&o, 99) - 1e-3) < 1e-12);
    cr_expect(fabs(train_lr(&o, 100) - 1e-3) < 1e-12);
    cr_expect(fabs(train_lr(&o, 550) - 5.5e-4) < 1e-9);
    cr_expect(fabs(train_lr(&o, 1000) - 1e-4) < 1e-12);
    for (long s = 101; s < 1000; s++)
        cr_expect(train_lr(&o, s) <= train_lr(&o, s - 1));
}

/* ---- training: determinism, resume, export ---- */
static char *write_text(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/drrl_test_train_%ld_%s", (long)getpid(), name);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 400; i++)
        fprintf(f, "the quick brown fox %d jumps over the lazy dog .\n", i % 17);
    fclose(f);
    return strdup(path);
}

static TrainOptions small_opts(void)
{
    TrainOptions o;
    train_options_default(&o);
    o.model = tiny;
    o.batch = 4;
    o.ctx = 32;
    o.steps = 30;
    o.warmup = 2;
    o.lr = 1e-2;
    o.min_lr = 1e-3;
    o.eval_every = 6;
    o.eval_bytes = 2000;
    o.ckpt_every = 0;
    return o;
}

Test(train, deterministic_resume_and_export)
{
    char *text = write_text("text");
    char ck[256], dir[256];
    snprintf(ck, sizeof ck, "%s.ckpt", text);
    snprintf(dir, sizeof dir, "%s.model", text);
    TrainOptions o = small_opts();
    DrrlError err;
    /* A: 30 steps in one go, 1 drrl thread */
    TrainSession *a;
    cr_assert_eq(train_session_new(&o, text, text, 1, &a, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(a, NULL, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_expect(train_session_valid_bpb(a) < 8.0 * 0.8, "training should beat uniform: %.3f bpb",
              train_session_valid_bpb(a));
    /* B: 3 threads, stopped after one step (max_seconds tiny), checkpoint,
     * resumed with 2 threads to the end */
    TrainOptions o6 = o;
    TrainSession *b;
    cr_assert_eq(train_session_new(&o6, text, text, 3, &b, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(b, ck, 1e-9, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(train_session_step(b), 1); /* out of time after one step */
    train_session_free(b);
    cr_assert_eq(train_session_resume(ck, text, text, 2, &b, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(train_session_step(b), 1);
    cr_assert_eq(train_session_run(b, ck, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    TrainModel *ma = train_session_model(a), *mb = train_session_model(b);
    cr_expect(memcmp(ma->params, mb->params, ma->n_params * sizeof(float)) == 0,
              "resumed run with other thread counts must be bit-identical");
    /* export and load back */
    cr_assert_eq(train_export_write(ma, dir, NULL, SAFETENSORS_F32, 0, NULL, &err), DRRL_OK,
                 "%s", err.msg);
    TrainModel *mc;
    cr_assert_eq(train_export_load(dir, &mc, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_expect_eq(mc->n_params, ma->n_params);
    cr_expect(memcmp(ma->params, mc->params, ma->n_params * sizeof(float)) == 0);
    /* a truncated checkpoint is refused with the path in the message */
    FILE *f = fopen(ck, "r+b");
    cr_assert(f);
    cr_assert_eq(ftruncate(fileno(f), 300), 0);
    fclose(f);
    TrainSession *c;
    cr_expect_eq(train_session_resume(ck, text, text, 1, &c, &err), DRRL_E_INPUT);
    cr_expect(strstr(err.msg, ck) != NULL, "%s", err.msg);
    train_model_free(mc);
    train_session_free(a);
    train_session_free(b);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", text, ck, dir);
    cr_expect_eq(system(cmd), 0);
    free(text);
}

/* Rank-aware training resumes bit for bit (the draws are keyed by seed and
 * step, the options travel in the checkpoint), differs from exact training,
 * and --eval-rank at head_dim is exact. */
Test(train, rank_aware_resume)
{
    char *text = write_text("ra");
    char ck[256];
    snprintf(ck, sizeof ck, "%s.ckpt", text);
    TrainOptions o = small_opts();
    o.steps = 8;
    o.eval_every = 0;
    o.rank_aware = 1;
    o.ra_segment = 8;
    o.ra_r_min = 2;
    o.ra_r_step = 2;
    o.ra_r_max = 6;
    DrrlError err;
    TrainSession *a, *b, *e;
    cr_assert_eq(train_session_new(&o, text, text, 1, &a, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(a, NULL, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_new(&o, text, text, 2, &b, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(b, ck, 1e-9, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    train_session_free(b);
    cr_assert_eq(train_session_resume(ck, text, text, 3, &b, &err), DRRL_OK, "%s", err.msg);
    const TrainOptions *ob = train_session_options(b);
    cr_expect(ob->rank_aware == 1 && ob->ra_segment == 8 && ob->ra_r_min == 2 &&
              ob->ra_r_step == 2 && ob->ra_r_max == 6 && ob->ra_p_exact == o.ra_p_exact);
    cr_assert_eq(train_session_run(b, ck, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    TrainModel *ma = train_session_model(a), *mb = train_session_model(b);
    cr_expect(memcmp(ma->params, mb->params, ma->n_params * sizeof(float)) == 0,
              "resumed rank-aware run must be bit-identical");
    TrainOptions ox = o;
    ox.rank_aware = 0;
    cr_assert_eq(train_session_new(&ox, text, text, 1, &e, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(e, NULL, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_expect(memcmp(ma->params, train_session_model(e)->params, ma->n_params * 4) != 0,
              "rank-aware training must differ from exact training");
    /* evaluation: rank head_dim (8) is exact; rank 2 differs */
    uint8_t *txt;
    size_t len;
    cr_assert_eq(train_read_text(text, &txt, &len, &err), DRRL_OK);
    double b0, b8, b2;
    cr_assert_eq(train_eval_bpb(ma, NULL, txt, 3000, 32, 32, 2, &b0, NULL, &err), DRRL_OK);
    cr_assert_eq(train_eval_bpb_rank(ma, NULL, txt, 3000, 32, 32, 2, 8, 8, 0, &b8, NULL, &err),
                 DRRL_OK);
    cr_assert_eq(train_eval_bpb_rank(ma, NULL, txt, 3000, 32, 32, 2, 8, 2, 0, &b2, NULL, &err),
                 DRRL_OK);
    cr_expect(b0 == b8, "%.6f vs %.6f", b0, b8);
    cr_expect(b2 != b0, "rank 2 of 8 must change the loss: %.6f vs exact %.6f", b2, b0);
    free(txt);
    train_session_free(a);
    train_session_free(b);
    train_session_free(e);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s'", text, ck);
    cr_expect_eq(system(cmd), 0);
    free(text);
}

/* --ra-tail 0 is off: three model-level training steps with lambda 0 give
 * the same loss bytes and parameters as acts that never heard of the
 * penalty (the code before it); lambda > 0 leaves the first loss alone
 * (the penalty is not in it) and changes the training after. */
static void tail_steps(double lambda, int set, double *loss, float *params)
{
    TrainModel *m;
    TrainActs *a;
    cr_assert_eq(train_model_new(&tiny, &m, NULL), DRRL_OK);
    cr_assert_eq(train_acts_new(m, 2, 8, 1, 1, &a, NULL), DRRL_OK);
    cr_assert_eq(train_acts_set_lowrank(a, m, 3, NULL), DRRL_OK);
    if (set)
        train_acts_lowrank_tail(a, lambda);
    int32_t *rk = train_acts_ranks(a, NULL);
    for (size_t i = 0; i < 2 * 2 * 2 * 3; i++)
        rk[i] = 1 + (int32_t)(i * 5 % 8);
    train_model_init(m, 7);
    float *m1 = calloc(m->n_params, 4), *m2 = calloc(m->n_params, 4);
    uint8_t tok[16], tgt[16];
    for (int i = 0; i < 16; i++)
        tok[i] = (uint8_t)(i * 37 + 5), tgt[i] = (uint8_t)(i * 11 + 3);
    TrainAdamW adam = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (long s = 0; s < 3; s++) {
        train_model_zero_grad(m);
        loss[s] = train_model_forward(m, a, NULL, tok, tgt, 0, NULL);
        train_model_backward(m, a, NULL, tok);
        train_model_adamw(m, NULL, m1, m2, &adam, s + 1, 1.0f);
    }
    memcpy(params, m->params, m->n_params * 4);
    free(m1), free(m2);
    train_acts_free(a);
    train_model_free(m);
}

static int record_step(void *user, const TrainProgress *p)
{
    double *rec = user; /* per step: loss, tail K, tail V */
    if (p->event == TRAIN_EVENT_STEP && p->step <= 8) {
        rec[3 * (p->step - 1)] = p->loss;
        rec[3 * (p->step - 1) + 1] = p->tail_k;
        rec[3 * (p->step - 1) + 2] = p->tail_v;
    }
    return 0;
}

Test(train, ra_tail_zero_unchanged)
{
    TrainModel *probe;
    cr_assert_eq(train_model_new(&tiny, &probe, NULL), DRRL_OK);
    size_t np = probe->n_params;
    train_model_free(probe);
    double l_none[3], l_zero[3], l_on[3];
    float *p_none = malloc(np * 4), *p_zero = malloc(np * 4), *p_on = malloc(np * 4);
    tail_steps(0.0, 0, l_none, p_none);
    tail_steps(0.0, 1, l_zero, p_zero);
    tail_steps(2.0, 1, l_on, p_on);
    cr_expect(memcmp(l_none, l_zero, sizeof l_none) == 0, "lambda 0: loss bytes changed");
    cr_expect(memcmp(p_none, p_zero, np * 4) == 0, "lambda 0: parameters changed");
    cr_expect(l_on[0] == l_none[0], "the penalty is not part of the returned loss");
    cr_expect(memcmp(p_none, p_on, np * 4) != 0, "lambda 2 must change training");
    free(p_none), free(p_zero), free(p_on);

    /* The session: progress shows the tail only when on; a tail run resumes
     * bit for bit with other thread counts (lambda travels in the
     * checkpoint); the penalty needs rank-aware training. */
    char *text = write_text("tail");
    char ck[256];
    snprintf(ck, sizeof ck, "%s.ckpt", text);
    TrainOptions o = small_opts();
    o.steps = 8;
    o.eval_every = 0;
    o.rank_aware = 1;
    o.ra_segment = 8;
    o.ra_r_min = 2;
    o.ra_r_step = 2;
    o.ra_r_max = 6;
    DrrlError err;
    TrainSession *a, *b, *c;
    double ra[24], rb[24];
    cr_assert_eq(train_session_new(&o, text, text, 1, &a, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(a, NULL, 0, record_step, ra, &err), DRRL_OK, "%s", err.msg);
    o.ra_tail = 1.0;
    cr_assert_eq(train_session_new(&o, text, text, 1, &b, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(b, NULL, 0, record_step, rb, &err), DRRL_OK, "%s", err.msg);
    cr_expect(ra[0] == rb[0], "step 1: same loss (%.9g vs %.9g)", ra[0], rb[0]);
    for (int s = 0; s < 8; s++) {
        cr_expect(isnan(ra[3 * s + 1]) && isnan(ra[3 * s + 2]), "off: no tail reported");
        cr_expect(rb[3 * s + 1] > 0 && rb[3 * s + 1] < 1 && rb[3 * s + 2] > 0 &&
                      rb[3 * s + 2] < 1,
                  "step %d: tail K %g V %g", s + 1, rb[3 * s + 1], rb[3 * s + 2]);
    }
    TrainModel *mb = train_session_model(b);
    cr_expect(memcmp(train_session_model(a)->params, mb->params, mb->n_params * 4) != 0);
    cr_assert_eq(train_session_new(&o, text, text, 2, &c, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(train_session_run(c, ck, 1e-9, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    train_session_free(c);
    cr_assert_eq(train_session_resume(ck, text, text, 3, &c, &err), DRRL_OK, "%s", err.msg);
    cr_expect(train_session_options(c)->ra_tail == 1.0);
    cr_assert_eq(train_session_run(c, NULL, 0, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_expect(memcmp(train_session_model(c)->params, mb->params, mb->n_params * 4) == 0,
              "tail run resumed with other thread counts must be bit-identical");
    train_session_free(c);
    o.rank_aware = 0;
    cr_expect_eq(train_session_new(&o, text, text, 1, &c, &err), DRRL_E_USAGE);
    train_session_free(a);
    train_session_free(b);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s'", text, ck);
    cr_expect_eq(system(cmd), 0);
    free(text);
}
