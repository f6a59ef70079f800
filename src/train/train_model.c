/* train_model.c: parameters, forward, backward and AdamW of the trainable
 * model (see train_model.h). */
#include "config.h"

#include "base/mem.h"
#include "train/train_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "train/train_ops.h"

/* Sequences at least this long use the sgemm attention path. */
#define TRAIN_ATTN_BLAS_MIN_T 1024

DrrlStatus train_model_config_check(const TrainModelConfig *c, DrrlError *err)
{
    if (c->n_layer < 1 || c->n_layer > 64)
        return drrl_error(err, DRRL_E_USAGE, "train: n_layer %d out of range 1..64",
                          c->n_layer);
    if (c->d_model < 2 || c->d_model > 8192)
        return drrl_error(err, DRRL_E_USAGE, "train: d_model %d out of range 2..8192",
                          c->d_model);
    if (c->n_head < 1 || c->n_head > 256)
        return drrl_error(err, DRRL_E_USAGE, "train: n_head %d out of range 1..256", c->n_head);
    if (c->head_dim < 2 || c->head_dim > 1024 || c->head_dim % 2)
        return drrl_error(err, DRRL_E_USAGE, "train: head_dim %d must be even, 2..1024",
                          c->head_dim);
    if (c->d_ff < 1 || c->d_ff > 65536)
        return drrl_error(err, DRRL_E_USAGE, "train: d_ff %d out of range 1..65536", c->d_ff);
    if (!(c->rms_eps > 0.0f) || !(c->rope_theta > 1.0))
        return drrl_error(err, DRRL_E_USAGE, "train: rms_eps must be > 0, rope_theta > 1");
    if (c->max_positions < 1)
        return drrl_error(err, DRRL_E_USAGE, "train: max_positions must be positive");
    return DRRL_OK;
}

void train_model_free(TrainModel *m)
{
    if (!m)
        return;
    DRRL_FREE(m->params, m->grads, m->layers, m->glayers, m->tensors, m);
}

/* Add a named tensor at *off in both arenas and advance *off. */
static float *model_take(TrainModel *m, size_t *off, const char *name, size_t rows, size_t cols,
                         int decay)
{
    TrainTensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->w = m->params + *off;
    t->g = m->grads + *off;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = rows * (cols ? cols : 1);
    t->decay = decay;
    *off += t->numel;
    return t->w;
}

DrrlStatus train_model_new(const TrainModelConfig *cfg, TrainModel **out, DrrlError *err)
{
    *out = NULL;
    DrrlStatus st = train_model_config_check(cfg, err);
    if (st)
        return st;
    size_t L = (size_t)cfg->n_layer, C = (size_t)cfg->d_model, F = (size_t)cfg->d_ff;
    size_t D = (size_t)cfg->n_head * (size_t)cfg->head_dim, V = TRAIN_VOCAB;
    /* At most 2^31 parameters; every product below stays far from overflow. */
    size_t per_layer = 2 * C + 3 * D * C + C * D + 3 * F * C;
    size_t n = V * C + L * per_layer + C + (cfg->tied ? 0 : V * C);
    if (n > ((size_t)1 << 31))
        return drrl_error(err, DRRL_E_USAGE, "train: model too large (%zu parameters)", n);
    TrainModel *m = calloc(1, sizeof *m);
    if (!m)
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory");
    m->cfg = *cfg;
    m->n_params = n;
    m->params = calloc(n, sizeof(float));
    m->grads = calloc(n, sizeof(float));
    m->layers = calloc(L, sizeof *m->layers);
    m->glayers = calloc(L, sizeof *m->glayers);
    m->tensors = calloc(3 + 9 * L, sizeof *m->tensors);
    if (!m->params || !m->grads || !m->layers || !m->glayers || !m->tensors) {
        train_model_free(m);
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory for %zu parameters", n);
    }
    size_t off = 0;
    char name[80];
    m->wte = model_take(m, &off, "model.embed_tokens.weight", V, C, 1);
    for (size_t l = 0; l < L; l++) {
        TrainLayer *ly = &m->layers[l];
#define NAME(s) (snprintf(name, sizeof name, "model.layers.%zu.%s", l, s), name)
        ly->ln1 = model_take(m, &off, NAME("input_layernorm.weight"), C, 0, 0);
        ly->wqkv = model_take(m, &off, NAME("self_attn.q_proj.weight"), D, C, 1);
        model_take(m, &off, NAME("self_attn.k_proj.weight"), D, C, 1);
        model_take(m, &off, NAME("self_attn.v_proj.weight"), D, C, 1);
        ly->wo = model_take(m, &off, NAME("self_attn.o_proj.weight"), C, D, 1);
        ly->ln2 = model_take(m, &off, NAME("post_attention_layernorm.weight"), C, 0, 0);
        ly->wgu = model_take(m, &off, NAME("mlp.gate_proj.weight"), F, C, 1);
        model_take(m, &off, NAME("mlp.up_proj.weight"), F, C, 1);
        ly->wd = model_take(m, &off, NAME("mlp.down_proj.weight"), C, F, 1);
#undef NAME
    }
    m->lnf = model_take(m, &off, "model.norm.weight", C, 0, 0);
    m->lm_head = cfg->tied ? m->wte : model_take(m, &off, "lm_head.weight", V, C, 1);
    /* Gradient views: same offsets in the grads arena. */
    ptrdiff_t shift = m->grads - m->params;
    m->gwte = m->wte + shift;
    m->glnf = m->lnf + shift;
    m->glm_head = m->lm_head + shift;
    for (size_t l = 0; l < L; l++) {
        const TrainLayer *p = &m->layers[l];
        m->glayers[l] = (TrainLayer){p->ln1 + shift, p->wqkv + shift, p->wo + shift,
                                     p->ln2 + shift, p->wgu + shift,  p->wd + shift};
    }
    if (off != n) {
        train_model_free(m);
        return drrl_error(err, DRRL_E_INTERNAL, "train: parameter layout mismatch");
    }
    *out = m;
    return DRRL_OK;
}

DrrlStatus train_model_copy_params(TrainModel *dst, const TrainModel *src, DrrlError *err)
{
    const TrainModelConfig *a = &dst->cfg, *b = &src->cfg;
    if (a->n_layer != b->n_layer || a->d_model != b->d_model || a->n_head != b->n_head ||
        a->head_dim != b->head_dim || a->d_ff != b->d_ff || a->tied != b->tied ||
        dst->n_params != src->n_params)
        return drrl_error(err, DRRL_E_INPUT,
                          "train: --init model has %d layers, d_model %d, %d heads x %d, "
                          "d_ff %d, %s; the run has %d, %d, %d x %d, %d, %s",
                          b->n_layer, b->d_model, b->n_head, b->head_dim, b->d_ff,
                          b->tied ? "tied" : "untied", a->n_layer, a->d_model, a->n_head,
                          a->head_dim, a->d_ff, a->tied ? "tied" : "untied");
    memcpy(dst->params, src->params, dst->n_params * sizeof(float));
    return DRRL_OK;
}

TrainTensor *train_model_find(TrainModel *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* Standard normal by Box-Muller over splitmix64, in double. */
static double model_normal(uint64_t *s)
{
    double u1 = rng_unit_mid(rng_splitmix64(s));
    double u2 = rng_unit(rng_splitmix64(s));
    return rng_box_muller(u1, u2);
}

void train_model_init(TrainModel *m, uint64_t seed)
{
    uint64_t s = seed;
    double out_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (size_t i = 0; i < m->n_tensors; i++) {
        TrainTensor *t = &m->tensors[i];
        if (t->ndim == 1) {
            for (size_t k = 0; k < t->numel; k++)
                t->w[k] = 1.0f;
            continue;
        }
        int is_out = strstr(t->name, "o_proj") || strstr(t->name, "down_proj");
        double std = is_out ? out_std : 0.02;
        for (size_t k = 0; k < t->numel; k++)
            t->w[k] = (float)(std * model_normal(&s));
    }
}

/* ---- activations ------------------------------------------------------- */

static float *acts_alloc(size_t a, size_t b, size_t c, int *fail);

struct TrainActs {
    size_t b, t, n, layers_kept;
    int for_training;
    float *x;             /* (L+1, N, C) residual stream entering each layer; [L] final */
    float *xmid;          /* (Lk, N, C) after the attention residual */
    float *xn1, *xn2;     /* (Lk, N, C) normed inputs of attention and MLP */
    float *rstd1, *rstd2; /* (Lk, N) */
    float *qkv;           /* (Lk, N, 3D), q and k rotated */
    float *p;             /* (L, B, H, T, T) attention probabilities (training) */
    float *ao;            /* (Lk, N, D) attention output before Wo */
    float *gu;            /* (Lk, N, 2F) gate and up projections */
    float *hh;            /* (Lk, N, F) silu(gate) * up */
    float *xf;            /* (N, C) final norm output */
    float *rstdf;         /* (N) */
    float *logits;        /* (N, V); after a training forward: d(mean loss)/d(logits) */
    float *dx, *dxn, *dqkv, *dao, *dgu, *dh; /* backward buffers (training) */
    float *attn_scratch;
    double *rms_scratch;
    float *cos_t, *sin_t; /* (T, head_dim / 2) */
    TrainAttnShape shape;
    int32_t *ranks;                  /* (L, B, H, n_seg) rank-aware ranks, or NULL (exact) */
    float *proj;                     /* (Lk, B, H, n_seg, 2, hd, hd) projectors */
    TrainLowRank lr;                 /* segment, n_seg, at_full; rank and proj set per layer */
    int lr_frozen;                   /* tests: keep the projectors of the last pass */
    double tail_lambda;              /* spectral-tail penalty weight (0: off) */
    double *tail;                    /* (L, B, H, n_seg, 2) f_K, f_V of the last forward */
    size_t tail_items;               /* active items of the last forward */
    double tail_k, tail_v, tail_pen; /* their means; the penalty */
};

void train_acts_free(TrainActs *a)
{
    if (!a)
        return;
    float *bufs[] = {a->x,     a->xmid,   a->xn1,          a->xn2,   a->rstd1, a->rstd2,
                     a->qkv,   a->p,      a->ao,           a->gu,    a->hh,    a->xf,
                     a->rstdf, a->logits, a->dx,           a->dxn,   a->dqkv,  a->dao,
                     a->dgu,   a->dh,     a->attn_scratch, a->cos_t, a->sin_t};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    DRRL_FREE(a->rms_scratch, a->ranks, a->proj, a->tail, a);
}

DrrlStatus train_acts_set_lowrank(TrainActs *a, const TrainModel *m, size_t segment,
                                  DrrlError *err)
{
    if (segment < 1)
        return drrl_error(err, DRRL_E_USAGE, "train: rank-aware segment must be positive");
    const TrainModelConfig *c = &m->cfg;
    size_t L = (size_t)c->n_layer, H = (size_t)c->n_head, hd = (size_t)c->head_dim;
    size_t n_seg = (a->t + segment - 1) / segment, cells = a->b * H * n_seg;
    DRRL_FREE(a->ranks, a->proj, a->tail);
    a->ranks = NULL, a->proj = NULL, a->tail = NULL;
    int fail = 0;
    a->ranks = calloc(L * cells, sizeof *a->ranks);
    a->proj = acts_alloc(a->layers_kept * cells, 2 * hd, hd, &fail);
    if (a->for_training && !(a->tail = calloc(L * cells * 2, sizeof *a->tail)))
        fail = 1;
    if (!a->ranks || fail) {
        DRRL_FREE(a->ranks, a->proj, a->tail);
        a->ranks = NULL, a->proj = NULL, a->tail = NULL;
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory for rank-aware attention");
    }
    for (size_t i = 0; i < L * cells; i++)
        a->ranks[i] = c->head_dim;
    a->lr.segment = segment;
    a->lr.n_seg = n_seg;
    return DRRL_OK;
}

int32_t *train_acts_ranks(TrainActs *a, size_t *n_seg)
{
    if (n_seg)
        *n_seg = a->ranks ? a->lr.n_seg : 0;
    return a->ranks;
}

void train_acts_lowrank_basis(TrainActs *a, int qk)
{
    a->lr.key_basis_qk = qk;
}

void train_acts_lowrank_tail(TrainActs *a, double lambda)
{
    a->tail_lambda = lambda;
}

double train_acts_tail(const TrainActs *a, size_t *n_items, double *tail_k, double *tail_v)
{
    if (n_items)
        *n_items = a->tail_items;
    if (tail_k)
        *tail_k = a->tail_k;
    if (tail_v)
        *tail_v = a->tail_v;
    return a->tail_pen;
}

/* Whether training forward and backward carry the tail penalty. */
static int acts_tail_on(const TrainActs *a)
{
    return a->tail && a->for_training && a->tail_lambda > 0;
}

void train_acts_lowrank_debug(TrainActs *a, int frozen, int at_full)
{
    a->lr_frozen = frozen;
    a->lr.at_full = at_full;
}

const float *train_acts_logits(const TrainActs *a)
{
    return a->logits;
}

/* calloc of a*b*c floats with overflow check; NULL on failure. */
static float *acts_alloc(size_t a, size_t b, size_t c, int *fail)
{
    size_t n1, n2;
    if (drrl_size_mul(a, b, &n1) || drrl_size_mul(n1, c, &n2)) {
        *fail = 1;
        return NULL;
    }
    float *p = calloc(n2 ? n2 : 1, sizeof(float));
    if (!p)
        *fail = 1;
    return p;
}

DrrlStatus train_acts_new(const TrainModel *m, size_t b, size_t t, int for_training,
                          int n_threads, TrainActs **out, DrrlError *err)
{
    *out = NULL;
    if (b < 1 || t < 1)
        return drrl_error(err, DRRL_E_USAGE, "train: batch and context must be positive");
    TrainActs *a = calloc(1, sizeof *a);
    if (!a)
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory");
    const TrainModelConfig *c = &m->cfg;
    size_t L = (size_t)c->n_layer, C = (size_t)c->d_model, F = (size_t)c->d_ff;
    size_t H = (size_t)c->n_head, hd = (size_t)c->head_dim, D = H * hd;
    size_t Lk = for_training ? L : 1;
    int fail = 0;
    a->b = b;
    a->t = t;
    a->n = b * t;
    a->for_training = for_training;
    a->layers_kept = Lk;
    size_t n = a->n;
    if (n / b != t)
        fail = 1;
    /* long sequences: sgemm attention (see train_ops.h) */
    a->shape = (TrainAttnShape){b, t, H, hd, 3 * D, D, t >= TRAIN_ATTN_BLAS_MIN_T};
    if (n_threads < 1)
        n_threads = 1;
    if (!fail) {
        a->x = acts_alloc(L + 1, n, C, &fail);
        a->xmid = acts_alloc(Lk, n, C, &fail);
        a->xn1 = acts_alloc(Lk, n, C, &fail);
        a->xn2 = acts_alloc(Lk, n, C, &fail);
        a->rstd1 = acts_alloc(Lk, n, 1, &fail);
        a->rstd2 = acts_alloc(Lk, n, 1, &fail);
        a->qkv = acts_alloc(Lk, n, 3 * D, &fail);
        a->ao = acts_alloc(Lk, n, D, &fail);
        a->gu = acts_alloc(Lk, n, 2 * F, &fail);
        a->hh = acts_alloc(Lk, n, F, &fail);
        a->xf = acts_alloc(1, n, C, &fail);
        a->rstdf = acts_alloc(1, n, 1, &fail);
        a->logits = acts_alloc(1, n, TRAIN_VOCAB, &fail);
        a->attn_scratch =
            acts_alloc(1, train_ops_attention_scratch(&a->shape, n_threads), 1, &fail);
        a->rms_scratch = calloc(TRAIN_POOL_CHUNKS * C, sizeof(double));
        if (!a->rms_scratch)
            fail = 1;
        a->cos_t = acts_alloc(t, hd / 2, 1, &fail);
        a->sin_t = acts_alloc(t, hd / 2, 1, &fail);
    }
    if (!fail && for_training) {
        a->p = acts_alloc(L * b, H * t, t, &fail);
        a->dx = acts_alloc(1, n, C, &fail);
        a->dxn = acts_alloc(1, n, C, &fail);
        a->dqkv = acts_alloc(1, n, 3 * D, &fail);
        a->dao = acts_alloc(1, n, D, &fail);
        a->dgu = acts_alloc(1, n, 2 * F, &fail);
        a->dh = acts_alloc(1, n, F, &fail);
    }
    if (fail) {
        train_acts_free(a);
        return drrl_error(err, DRRL_E_NOMEM,
                          "train: out of memory for activations (batch %zu x context %zu)", b,
                          t);
    }
    train_ops_rope_table(a->cos_t, a->sin_t, t, hd, c->rope_theta);
    *out = a;
    return DRRL_OK;
}

/* ---- forward / backward ------------------------------------------------ */

/* The rank-aware state of layer l (projectors in slot k), or NULL. */
static const TrainLowRank *acts_lowrank(TrainActs *a, size_t l, size_t k)
{
    if (!a->ranks)
        return NULL;
    size_t cells = a->b * a->shape.n_head * a->lr.n_seg, hd = a->shape.head_dim;
    a->lr.rank = a->ranks + l * cells;
    a->lr.proj = a->proj + k * cells * 2 * hd * hd;
    return &a->lr;
}

double train_model_forward(TrainModel *m, TrainActs *a, TrainPool *pool, const uint8_t *tokens,
                           const uint8_t *targets, size_t score_from, double *nll)
{
    const TrainModelConfig *c = &m->cfg;
    size_t L = (size_t)c->n_layer, C = (size_t)c->d_model, F = (size_t)c->d_ff;
    size_t H = (size_t)c->n_head, hd = (size_t)c->head_dim, D = H * hd;
    size_t n = a->n, V = TRAIN_VOCAB;
    size_t tail_cells = a->ranks ? a->b * H * a->lr.n_seg * 2 : 0;
    a->tail_items = 0, a->tail_k = a->tail_v = a->tail_pen = 0.0;
    train_ops_embedding_forward(pool, a->x, m->wte, tokens, n, C);
    for (size_t l = 0; l < L; l++) {
        size_t k = a->for_training ? l : 0;
        const TrainLayer *ly = &m->layers[l];
        float *x = a->x + l * n * C, *xnext = a->x + (l + 1) * n * C;
        float *xmid = a->xmid + k * n * C, *xn1 = a->xn1 + k * n * C;
        float *xn2 = a->xn2 + k * n * C, *qkv = a->qkv + k * n * 3 * D;
        float *ao = a->ao + k * n * D, *gu = a->gu + k * n * 2 * F;
        float *hh = a->hh + k * n * F;
        float *p = a->for_training ? a->p + l * a->b * H * a->t * a->t : NULL;
        train_ops_rmsnorm_forward(pool, xn1, a->rstd1 + k * n, x, ly->ln1, n, C, c->rms_eps);
        train_ops_linear_forward(qkv, xn1, ly->wqkv, n, C, 3 * D, 0);
        train_ops_rope_forward(pool, qkv, n, a->t, 0, 3 * D, 2 * H, hd, a->cos_t, a->sin_t);
        const TrainLowRank *lr = acts_lowrank(a, l, k);
        if (lr) {
            if (!a->lr_frozen)
                train_ops_lowrank_bases(pool, &a->shape, lr, qkv, qkv + D, qkv + 2 * D);
            if (acts_tail_on(a)) /* before q is projected; k and v stay as they are */
                a->tail_items += train_ops_lowrank_tail(pool, &a->shape, lr, qkv + D,
                                                        qkv + 2 * D, a->tail + l * tail_cells);
            train_ops_lowrank_project(pool, &a->shape, lr, qkv, 3 * D, 0); /* q P_K */
        }
        train_ops_attention_forward(pool, &a->shape, ao, p, qkv, qkv + D, qkv + 2 * D,
                                    a->attn_scratch);
        if (lr)
            train_ops_lowrank_project(pool, &a->shape, lr, ao, D, 1); /* O P_V */
        memcpy(xmid, x, n * C * sizeof(float));
        train_ops_linear_forward(xmid, ao, ly->wo, n, D, C, 1);
        train_ops_rmsnorm_forward(pool, xn2, a->rstd2 + k * n, xmid, ly->ln2, n, C, c->rms_eps);
        train_ops_linear_forward(gu, xn2, ly->wgu, n, C, 2 * F, 0);
        train_ops_swiglu_forward(pool, hh, gu, n, F);
        memcpy(xnext, xmid, n * C * sizeof(float));
        train_ops_linear_forward(xnext, hh, ly->wd, n, F, C, 1);
    }
    if (acts_tail_on(a) && a->tail_items) {
        /* inactive items hold 0: a plain sum in a fixed order */
        double sk = 0.0, sv = 0.0;
        for (size_t i = 0; i < L * tail_cells; i += 2)
            sk += a->tail[i], sv += a->tail[i + 1];
        a->tail_k = sk / (double)a->tail_items;
        a->tail_v = sv / (double)a->tail_items;
        a->tail_pen = a->tail_lambda * (a->tail_k + a->tail_v);
    }
    train_ops_rmsnorm_forward(pool, a->xf, a->rstdf, a->x + L * n * C, m->lnf, n, C,
                              c->rms_eps);
    train_ops_linear_forward(a->logits, a->xf, m->lm_head, n, C, V, 0);
    if (a->for_training) {
        /* all rows scored: the mean loss's gradient, in place */
        return train_ops_crossentropy(pool, a->logits, nll, a->logits, targets, n, V,
                                      1.0f / (float)n);
    }
    if (score_from == 0)
        return train_ops_crossentropy(pool, NULL, nll, a->logits, targets, n, V, 0.0f);
    double sum = 0.0;
    for (size_t b = 0; b < a->b; b++) {
        size_t r0 = b * a->t + score_from;
        if (score_from >= a->t)
            continue;
        sum += train_ops_crossentropy(pool, NULL, nll ? nll + r0 : NULL, a->logits + r0 * V,
                                      targets + r0, a->t - score_from, V, 0.0f);
    }
    return sum;
}

void train_model_backward(TrainModel *m, TrainActs *a, TrainPool *pool, const uint8_t *tokens)
{
    const TrainModelConfig *c = &m->cfg;
    size_t L = (size_t)c->n_layer, C = (size_t)c->d_model, F = (size_t)c->d_ff;
    size_t H = (size_t)c->n_head, hd = (size_t)c->head_dim, D = H * hd;
    size_t n = a->n, V = TRAIN_VOCAB;
    /* logits = xf lm_head^T; a->logits holds dlogits */
    train_ops_linear_backward(a->dxn, m->glm_head, a->logits, a->xf, m->lm_head, n, C, V, 0);
    memset(a->dx, 0, n * C * sizeof(float));
    train_ops_rmsnorm_backward(pool, a->dx, m->glnf, a->dxn, a->x + L * n * C, m->lnf, a->rstdf,
                               n, C, a->rms_scratch);
    for (size_t l = L; l-- > 0;) {
        const TrainLayer *ly = &m->layers[l], *gl = &m->glayers[l];
        float *x = a->x + l * n * C, *xmid = a->xmid + l * n * C;
        float *xn1 = a->xn1 + l * n * C, *xn2 = a->xn2 + l * n * C;
        float *qkv = a->qkv + l * n * 3 * D, *ao = a->ao + l * n * D;
        float *gu = a->gu + l * n * 2 * F, *hh = a->hh + l * n * F;
        float *p = a->p + l * a->b * H * a->t * a->t;
        /* MLP branch: a->dx is dL/d(x_{l+1}) */
        train_ops_linear_backward(a->dh, gl->wd, a->dx, hh, ly->wd, n, F, C, 0);
        train_ops_swiglu_backward(pool, a->dgu, a->dh, gu, n, F);
        train_ops_linear_backward(a->dxn, gl->wgu, a->dgu, xn2, ly->wgu, n, C, 2 * F, 0);
        train_ops_rmsnorm_backward(pool, a->dx, gl->ln2, a->dxn, xmid, ly->ln2,
                                   a->rstd2 + l * n, n, C, a->rms_scratch);
        /* attention branch: a->dx is now dL/d(xmid) */
        train_ops_linear_backward(a->dao, gl->wo, a->dx, ao, ly->wo, n, D, C, 0);
        const TrainLowRank *lr = acts_lowrank(a, l, l);
        if (lr) /* projectors constant: dO P_V in, dq' P_K out */
            train_ops_lowrank_project(pool, &a->shape, lr, a->dao, D, 1);
        train_ops_attention_backward(pool, &a->shape, a->dqkv, a->dqkv + D, a->dqkv + 2 * D,
                                     a->dao, p, qkv, qkv + D, qkv + 2 * D, a->attn_scratch);
        if (lr)
            train_ops_lowrank_project(pool, &a->shape, lr, a->dqkv, 3 * D, 0);
        if (lr && acts_tail_on(a) && a->tail_items) /* d(penalty)/d(K, V), rotated K */
            train_ops_lowrank_tail_backward(pool, &a->shape, lr, a->dqkv + D, a->dqkv + 2 * D,
                                            qkv + D, qkv + 2 * D,
                                            (float)(a->tail_lambda / (double)a->tail_items));
        train_ops_rope_backward(pool, a->dqkv, n, a->t, 0, 3 * D, 2 * H, hd, a->cos_t,
                                a->sin_t);
        train_ops_linear_backward(a->dxn, gl->wqkv, a->dqkv, xn1, ly->wqkv, n, C, 3 * D, 0);
        train_ops_rmsnorm_backward(pool, a->dx, gl->ln1, a->dxn, x, ly->ln1, a->rstd1 + l * n,
                                   n, C, a->rms_scratch);
    }
    train_ops_embedding_backward(pool, m->gwte, a->dx, tokens, n, C);
}

void train_model_zero_grad(TrainModel *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

/* Chunk [i0, i1) of the squared gradient norm. */
static double norm_part(void *ctx, size_t i0, size_t i1)
{
    const float *g = ctx;
    double s = 0.0;
    for (size_t i = i0; i < i1; i++)
        s += (double)g[i] * g[i];
    return s;
}

double train_model_grad_norm(const TrainModel *m, TrainPool *pool)
{
    return sqrt(train_pool_sum(pool, norm_part, m->grads, m->n_params));
}

typedef struct AdamJob {
    TrainModel *m;
    float *m1, *m2;
    const TrainAdamW *opt;
    float scale, bc1, bc2;
} AdamJob;

/* Item = (tensor, chunk). */
static void adam_item(void *ctx, size_t item, int thread)
{
    const AdamJob *j = ctx;
    const TrainTensor *t = &j->m->tensors[item / TRAIN_POOL_CHUNKS];
    size_t i0, i1, off = (size_t)(t->w - j->m->params);
    train_pool_chunk(t->numel, item % TRAIN_POOL_CHUNKS, &i0, &i1);
    const TrainAdamW *o = j->opt;
    float decay = t->decay ? 1.0f - o->lr * o->weight_decay : 1.0f;
    for (size_t i = i0; i < i1; i++) {
        float g = t->g[i] * j->scale;
        float *mm = j->m1 + off + i, *vv = j->m2 + off + i;
        *mm = o->beta1 * *mm + (1.0f - o->beta1) * g;
        *vv = o->beta2 * *vv + (1.0f - o->beta2) * g * g;
        float mhat = *mm / j->bc1, vhat = *vv / j->bc2;
        t->w[i] = t->w[i] * decay - o->lr * mhat / (sqrtf(vhat) + o->eps);
    }
}

void train_model_adamw(TrainModel *m, TrainPool *pool, float *m1, float *m2,
                       const TrainAdamW *opt, long step, float grad_scale)
{
    AdamJob j = {m,
                 m1,
                 m2,
                 opt,
                 grad_scale,
                 (float)(1.0 - pow(opt->beta1, (double)step)),
                 (float)(1.0 - pow(opt->beta2, (double)step))};
    train_pool_run(pool, adam_item, &j, m->n_tensors * TRAIN_POOL_CHUNKS);
}
