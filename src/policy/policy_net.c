#include "policy/policy_net.h"
#include "base/mem.h"
#include "policy/policy_features.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f
/* Refuse networks beyond this many parameters: a policy is small by design. */
#define POLICY_NET_MAX_PARAMS ((size_t)64 * 1024 * 1024)

/* ---- parameter layout ------------------------------------------------- */

/* Offsets (in floats) of every parameter block; the same for params and grads. */
typedef struct Layout {
    size_t conv_w, conv_b;      /* (k, conv_in, conv_out), (conv_out) */
    size_t in_w, in_b;          /* (n_feat + conv_out, D), (D) */
    size_t layer_emb, head_emb; /* (n_layer, D), (n_head, D) */
    size_t lnf_g, lnf_b;        /* (D) */
    size_t actor_w, actor_b;    /* (D, n_action), (n_action) */
    size_t critic_w, critic_b;  /* (D, 1), (1) */
    size_t blk0;                /* first block's ln1_g */
    size_t blk_stride;          /* floats per block */
} Layout;

/* Offsets inside one encoder block, relative to its start. */
typedef struct BlockLayout {
    size_t ln1_g, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    size_t ln2_g, ln2_b, fc_w, fc_b, fc2_w, fc2_b;
} BlockLayout;

static BlockLayout block_layout(const PolicyNetConfig *c)
{
    size_t D = (size_t)c->d_model, M = (size_t)c->d_ff, o = 0;
    BlockLayout b;
    b.ln1_g = o, o += D;
    b.ln1_b = o, o += D;
    b.qkv_w = o, o += D * 3 * D;
    b.qkv_b = o, o += 3 * D;
    b.proj_w = o, o += D * D;
    b.proj_b = o, o += D;
    b.ln2_g = o, o += D;
    b.ln2_b = o, o += D;
    b.fc_w = o, o += D * M;
    b.fc_b = o, o += M;
    b.fc2_w = o, o += M * D;
    b.fc2_b = o, o += D;
    (void)o;
    return b;
}

static size_t block_floats(const PolicyNetConfig *c)
{
    size_t D = (size_t)c->d_model, M = (size_t)c->d_ff;
    return 4 * D + D * 3 * D + 3 * D + D * D + D + D * M + M + M * D + D;
}

int policy_net_prior_action(const PolicyNetConfig *c, const float *feat)
{
    int G = c->n_action;
    const float *ek = feat + POLICY_FEAT_ENERGY, *ev = feat + POLICY_FEAT_ENERGY + 3 * G;
    float e = (float)c->prior_energy;
    for (int i = 0; i < G - 1; i++)
        if (ek[i] >= e && ev[i] >= e)
            return i;
    return G - 1;
}

DrrlStatus policy_net_check_config(const PolicyNetConfig *c, DrrlError *err)
{
    const struct {
        const char *name;
        int v, min;
    } f[] = {
        {"n_feat", c->n_feat, 1},           {"conv_in", c->conv_in, 1},
        {"conv_kernel", c->conv_kernel, 1}, {"conv_out", c->conv_out, 1},
        {"n_layer", c->n_layer, 1},         {"n_head", c->n_head, 1},
        {"n_action", c->n_action, 1},       {"d_model", c->d_model, 1},
        {"n_attn_head", c->n_attn_head, 1}, {"d_ff", c->d_ff, 1},
        {"n_block", c->n_block, 0},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].v < f[i].min || f[i].v > 1 << 20)
            return drrl_error(err, DRRL_E_USAGE, "policy_net:%s: %d is out of range [%d, %d]",
                              f[i].name, f[i].v, f[i].min, 1 << 20);
    }
    if (!(c->prior_weight >= 0 && c->prior_weight <= 1e3))
        return drrl_error(err, DRRL_E_USAGE,
                          "policy_net:prior_weight: %g is out of range [0, 1000]",
                          c->prior_weight);
    if (c->prior_weight > 0 && (!(c->prior_energy > 0 && c->prior_energy <= 1) ||
                                policy_features_version_of(c->n_feat, c->n_action) != 3))
        return drrl_error(err, DRRL_E_USAGE,
                          "policy_net: the energy prior needs 0 < energy <= 1 (got %g) and the "
                          "value energies of feature layout 3",
                          c->prior_energy);
    if (c->d_model % c->n_attn_head)
        return drrl_error(err, DRRL_E_USAGE,
                          "policy_net:d_model: %d is not divisible by n_attn_head %d",
                          c->d_model, c->n_attn_head);
    /* Products of values below 2^20 fit size_t on 64-bit; bound the total. */
    size_t D = (size_t)c->d_model;
    double total = (double)c->conv_kernel * c->conv_in * c->conv_out +
                   (double)(c->n_feat + c->conv_out + c->n_layer + c->n_head + 4) * D +
                   (double)c->n_block * (double)block_floats(c) + (D + 1) * c->n_action;
    if (total > (double)POLICY_NET_MAX_PARAMS)
        return drrl_error(err, DRRL_E_USAGE, "policy_net: %.0f parameters exceed the limit %zu",
                          total, POLICY_NET_MAX_PARAMS);
    return DRRL_OK;
}

static void add_block(PolicyNet *net, size_t *off, const char *name, int ndim, size_t d0,
                      size_t d1, size_t d2)
{
    PolicyNetBlock *b = &net->blocks[net->n_blocks++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->ndim = ndim;
    b->shape[0] = d0;
    b->shape[1] = d1;
    b->shape[2] = d2;
    b->numel = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    b->offset = *off;
    *off += b->numel;
}

/* Build the block table; returns the total parameter count. The order here is
 * the order of Layout's offsets (checked by layout_of). */
static size_t build_blocks(PolicyNet *net)
{
    const PolicyNetConfig *c = &net->cfg;
    size_t D = (size_t)c->d_model, M = (size_t)c->d_ff, off = 0;
    size_t fin = (size_t)(c->n_feat + c->conv_out);
    net->n_blocks = 0;
    add_block(net, &off, "conv.w", 3, (size_t)c->conv_kernel, (size_t)c->conv_in,
              (size_t)c->conv_out);
    add_block(net, &off, "conv.b", 1, (size_t)c->conv_out, 0, 0);
    add_block(net, &off, "in.w", 2, fin, D, 0);
    add_block(net, &off, "in.b", 1, D, 0, 0);
    add_block(net, &off, "layer_emb", 2, (size_t)c->n_layer, D, 0);
    add_block(net, &off, "head_emb", 2, (size_t)c->n_head, D, 0);
    add_block(net, &off, "lnf.g", 1, D, 0, 0);
    add_block(net, &off, "lnf.b", 1, D, 0, 0);
    add_block(net, &off, "actor.w", 2, D, (size_t)c->n_action, 0);
    add_block(net, &off, "actor.b", 1, (size_t)c->n_action, 0, 0);
    add_block(net, &off, "critic.w", 2, D, 1, 0);
    add_block(net, &off, "critic.b", 1, 1, 0, 0);
    for (int l = 0; l < c->n_block; l++) {
        char n[POLICY_NET_NAME_MAX];
#define BLK(suffix, nd, a, b)                                                                  \
    do {                                                                                       \
        snprintf(n, sizeof n, "block%d." suffix, l);                                           \
        add_block(net, &off, n, nd, a, b, 0);                                                  \
    } while (0)
        BLK("ln1.g", 1, D, 0);
        BLK("ln1.b", 1, D, 0);
        BLK("qkv.w", 2, D, 3 * D);
        BLK("qkv.b", 1, 3 * D, 0);
        BLK("proj.w", 2, D, D);
        BLK("proj.b", 1, D, 0);
        BLK("ln2.g", 1, D, 0);
        BLK("ln2.b", 1, D, 0);
        BLK("fc.w", 2, D, M);
        BLK("fc.b", 1, M, 0);
        BLK("fc2.w", 2, M, D);
        BLK("fc2.b", 1, D, 0);
#undef BLK
    }
    return off;
}

static Layout layout_of(const PolicyNet *net)
{
    Layout L;
    const PolicyNetBlock *b = net->blocks;
    L.conv_w = b[0].offset;
    L.conv_b = b[1].offset;
    L.in_w = b[2].offset;
    L.in_b = b[3].offset;
    L.layer_emb = b[4].offset;
    L.head_emb = b[5].offset;
    L.lnf_g = b[6].offset;
    L.lnf_b = b[7].offset;
    L.actor_w = b[8].offset;
    L.actor_b = b[9].offset;
    L.critic_w = b[10].offset;
    L.critic_b = b[11].offset;
    L.blk0 = net->n_blocks > 12 ? b[12].offset : b[11].offset + 1;
    L.blk_stride = block_floats(&net->cfg);
    return L;
}

const PolicyNetBlock *policy_net_find(const PolicyNet *net, const char *name)
{
    for (int i = 0; i < net->n_blocks; i++)
        if (!strcmp(net->blocks[i].name, name))
            return &net->blocks[i];
    return NULL;
}

static void fill_normal(PolicyRng *rng, float *p, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(std * policy_rng_normal(rng));
}

static void fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

DrrlStatus policy_net_new(const PolicyNetConfig *cfg, PolicyRng *rng, PolicyNet **out,
                          DrrlError *err)
{
    *out = NULL;
    DrrlStatus st = policy_net_check_config(cfg, err);
    if (st)
        return st;
    PolicyNet *net = calloc(1, sizeof *net);
    if (!net)
        return drrl_error(err, DRRL_E_NOMEM, "policy_net: out of memory");
    net->cfg = *cfg;
    net->blocks = calloc(12 + 12 * (size_t)cfg->n_block, sizeof *net->blocks);
    if (!net->blocks) {
        free(net);
        return drrl_error(err, DRRL_E_NOMEM, "policy_net: out of memory");
    }
    net->n_params = build_blocks(net);
    net->params = calloc(net->n_params, sizeof(float));
    net->grads = calloc(net->n_params, sizeof(float));
    if (!net->params || !net->grads) {
        size_t n = net->n_params;
        policy_net_free(net);
        return drrl_error(err, DRRL_E_NOMEM, "policy_net: out of memory for %zu parameters", n);
    }
    /* Initialisation: weights N(0, 1/fan_in), embeddings N(0, 0.1^2), biases 0,
     * LayerNorm gains 1; the residual output projections are scaled by
     * 1/sqrt(2 n_block) (GPT-2's scheme) and the actor by 0.01 so the initial
     * policy is nearly uniform over the allowed ranks. */
    const PolicyNetConfig *c = cfg;
    Layout L = layout_of(net);
    float *P = net->params;
    size_t D = (size_t)c->d_model, M = (size_t)c->d_ff;
    size_t fin = (size_t)(c->n_feat + c->conv_out);
    fill_normal(rng, P + L.conv_w, (size_t)c->conv_kernel * c->conv_in * c->conv_out,
                1.0 / sqrt((double)c->conv_kernel * c->conv_in));
    fill_normal(rng, P + L.in_w, fin * D, 1.0 / sqrt((double)fin));
    fill_normal(rng, P + L.layer_emb, (size_t)c->n_layer * D, 0.1);
    fill_normal(rng, P + L.head_emb, (size_t)c->n_head * D, 0.1);
    fill_const(P + L.lnf_g, D, 1.0f);
    fill_normal(rng, P + L.actor_w, D * c->n_action, 0.01);
    fill_normal(rng, P + L.critic_w, D, 0.01);
    double res = 1.0 / sqrt(2.0 * (c->n_block > 0 ? c->n_block : 1));
    BlockLayout B = block_layout(c);
    for (int l = 0; l < c->n_block; l++) {
        float *b = P + L.blk0 + (size_t)l * L.blk_stride;
        fill_const(b + B.ln1_g, D, 1.0f);
        fill_const(b + B.ln2_g, D, 1.0f);
        fill_normal(rng, b + B.qkv_w, D * 3 * D, 1.0 / sqrt((double)D));
        fill_normal(rng, b + B.proj_w, D * D, res / sqrt((double)D));
        fill_normal(rng, b + B.fc_w, D * M, 1.0 / sqrt((double)D));
        fill_normal(rng, b + B.fc2_w, M * D, res / sqrt((double)M));
    }
    *out = net;
    return DRRL_OK;
}

void policy_net_free(PolicyNet *net)
{
    if (!net)
        return;
    DRRL_FREE(net->params, net->grads, net->blocks, net);
}

void policy_net_zero_grad(PolicyNet *net)
{
    memset(net->grads, 0, net->n_params * sizeof(float));
}

/* ---- kernels ---------------------------------------------------------- */

/* C (m, n) = beta*C + A (m, k) B (k, n), with optional transposes given as the
 * stored shapes: ta means A is stored (k, m); tb means B is stored (n, k). */
static void mm(float *C, const float *A, const float *B, int m, int n, int k, int ta, int tb,
               float beta)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        if (beta == 0.0f)
            memset(C, 0, (size_t)m * n * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0f, A, ta ? m : k, B, tb ? k : n, beta, C, n);
}

/* Add bias b (n) to each of m rows of X (m, n). */
static void add_bias(float *X, const float *b, int m, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            X[(size_t)i * n + j] += b[j];
}

/* db (n) += column sums of dX (m, n). */
static void bias_grad(float *db, const float *dX, int m, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            db[j] += dX[(size_t)i * n + j];
}

/* y = LN(x) * g + b row-wise over n; stores xhat and rstd for backward. */
static void ln_forward(float *y, float *xhat, float *rstd, const float *x, const float *g,
                       const float *b, int m, int n)
{
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * n;
        double mu = 0, var = 0;
        for (int j = 0; j < n; j++)
            mu += xi[j];
        mu /= n;
        for (int j = 0; j < n; j++)
            var += (xi[j] - mu) * (xi[j] - mu);
        var /= n;
        float rs = (float)(1.0 / sqrt(var + LN_EPS));
        rstd[i] = rs;
        for (int j = 0; j < n; j++) {
            float h = (float)((xi[j] - mu) * rs);
            xhat[(size_t)i * n + j] = h;
            y[(size_t)i * n + j] = h * g[j] + b[j];
        }
    }
}

/* Given dy, ADD dx into dx, and accumulate dg, db. */
static void ln_backward(float *dx, float *dg, float *db, const float *dy, const float *xhat,
                        const float *rstd, const float *g, int m, int n)
{
    for (int i = 0; i < m; i++) {
        const float *dyi = dy + (size_t)i * n, *hi = xhat + (size_t)i * n;
        double mean_d = 0, mean_dh = 0;
        for (int j = 0; j < n; j++) {
            float d = dyi[j] * g[j];
            mean_d += d;
            mean_dh += d * hi[j];
            dg[j] += dyi[j] * hi[j];
            db[j] += dyi[j];
        }
        mean_d /= n;
        mean_dh /= n;
        for (int j = 0; j < n; j++) {
            float d = dyi[j] * g[j];
            dx[(size_t)i * n + j] += (float)(rstd[i] * (d - mean_d - hi[j] * mean_dh));
        }
    }
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

static float gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_C * (x + 0.044715f * x * x * x)));
}

static float gelu_grad(float x)
{
    float t = tanhf(GELU_C * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
}

/* ---- cache ------------------------------------------------------------ */

struct PolicyNetCache {
    int T_cap; /* capacity of conv buffers (rows) */
    int T;     /* of the last forward */
    int layer;
    const float *conv_x; /* borrowed from the last forward's input */
    float *convz;        /* (T_cap, conv_out): tanh(Z) */
    float *dconv;        /* (T_cap, conv_out) scratch */
    float *s;            /* (conv_out) */
    float *xin;          /* (H, fin) */
    float *e0;           /* (H, D) embedding output */
    /* per block b (n_block of each): */
    float *bx;           /* (nb, H, D) block input */
    float *a1;           /* (nb, H, D) LN1 output */
    float *h1;           /* (nb, H, D) LN1 xhat */
    float *r1;           /* (nb, H) LN1 rstd */
    float *qkv;          /* (nb, H, 3D) */
    float *att;          /* (nb, NA, H, H) probabilities */
    float *y;            /* (nb, H, D) attention output before proj */
    float *xm;           /* (nb, H, D) after the attention residual */
    float *a2, *h2, *r2; /* LN2: (nb, H, D), (nb, H, D), (nb, H) */
    float *pre;          /* (nb, H, M) */
    float *act;          /* (nb, H, M) */
    float *xf;           /* (H, D) final block output */
    float *hf, *rf;      /* LNf xhat (H, D), rstd (H) */
    float *f;            /* (H, D) LNf output */
    /* backward scratch */
    float *dx, *dx2, *dtmp, *dqkv, *dpre, *dxin, *datt;
};

PolicyNetCache *policy_net_cache_new(const PolicyNet *net)
{
    const PolicyNetConfig *c = &net->cfg;
    PolicyNetCache *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    size_t H = (size_t)c->n_head, D = (size_t)c->d_model, M = (size_t)c->d_ff;
    size_t nb = (size_t)c->n_block, NA = (size_t)c->n_attn_head;
    size_t fin = (size_t)(c->n_feat + c->conv_out);
    size_t big = 3 * D > M ? 3 * D : M;
#define ALLOC(p, n)                                                                            \
    do {                                                                                       \
        size_t n_ = (n);                                                                       \
        k->p = calloc(n_ ? n_ : 1, sizeof(float));                                             \
        if (!k->p) {                                                                           \
            policy_net_cache_free(k);                                                          \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)
    ALLOC(s, (size_t)c->conv_out);
    ALLOC(xin, H * fin);
    ALLOC(e0, H * D);
    ALLOC(bx, nb * H * D);
    ALLOC(a1, nb * H * D);
    ALLOC(h1, nb * H * D);
    ALLOC(r1, nb * H);
    ALLOC(qkv, nb * H * 3 * D);
    ALLOC(att, nb * NA * H * H);
    ALLOC(y, nb * H * D);
    ALLOC(xm, nb * H * D);
    ALLOC(a2, nb * H * D);
    ALLOC(h2, nb * H * D);
    ALLOC(r2, nb * H);
    ALLOC(pre, nb * H * M);
    ALLOC(act, nb * H * M);
    ALLOC(xf, H * D);
    ALLOC(hf, H * D);
    ALLOC(rf, H);
    ALLOC(f, H * D);
    ALLOC(dx, H * D);
    ALLOC(dx2, H * D);
    ALLOC(dtmp, H * big);
    ALLOC(dqkv, H * 3 * D);
    ALLOC(dpre, H * M);
    ALLOC(dxin, H * fin);
    ALLOC(datt, H * H);
#undef ALLOC
    return k;
}

void policy_net_cache_free(PolicyNetCache *k)
{
    if (!k)
        return;
    float **all[] = {&k->convz, &k->dconv, &k->s,    &k->xin,  &k->e0,  &k->bx, &k->a1, &k->h1,
                     &k->r1,    &k->qkv,   &k->att,  &k->y,    &k->xm,  &k->a2, &k->h2, &k->r2,
                     &k->pre,   &k->act,   &k->xf,   &k->hf,   &k->rf,  &k->f,  &k->dx, &k->dx2,
                     &k->dtmp,  &k->dqkv,  &k->dpre, &k->dxin, &k->datt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(*all[i]);
    free(k);
}

static int cache_reserve(PolicyNetCache *k, int T, int conv_out)
{
    if (T <= k->T_cap)
        return 0;
    float *a = realloc(k->convz, (size_t)T * conv_out * sizeof(float));
    if (!a)
        return -1;
    k->convz = a;
    float *b = realloc(k->dconv, (size_t)T * conv_out * sizeof(float));
    if (!b)
        return -1;
    k->dconv = b;
    k->T_cap = T;
    return 0;
}

/* ---- forward ---------------------------------------------------------- */

/* Causal convolution over the segment's rows: Z[t] = b + sum_j X[t-j] W_j
 * (zero before the segment), then s = mean_t tanh(Z[t]). */
static void conv_forward(PolicyNetCache *k, const float *P, const Layout *Lp, const float *X,
                         int T, int Ci, int Co, int K)
{
    Layout L = *Lp;
    for (int o = 0; o < Co; o++)
        k->s[o] = 0.0f;
    if (T > 0) {
        for (int t = 0; t < T; t++)
            memcpy(k->convz + (size_t)t * Co, P + L.conv_b, (size_t)Co * sizeof(float));
        for (int j = 0; j < K && j < T; j++)
            mm(k->convz + (size_t)j * Co, X, P + L.conv_w + (size_t)j * Ci * Co, T - j, Co, Ci,
               0, 0, 1.0f);
        double acc[Co > 0 ? Co : 1];
        for (int o = 0; o < Co; o++)
            acc[o] = 0;
        for (int t = 0; t < T; t++)
            for (int o = 0; o < Co; o++) {
                float u = tanhf(k->convz[(size_t)t * Co + o]);
                k->convz[(size_t)t * Co + o] = u;
                acc[o] += u;
            }
        for (int o = 0; o < Co; o++)
            k->s[o] = (float)(acc[o] / T);
    }
}

/* Multi-head self-attention across the H heads' rows of qkv (H, 3D):
 * probabilities into att (NA, H, H), outputs into y (H, D). */
static void mhsa_forward(float *att, float *y, const float *qkv, int H, int D, int NA,
                         float scale)
{
    int dh = D / NA;
    for (int a = 0; a < NA; a++) {
        float *A = att + (size_t)a * H * H;
        for (int i = 0; i < H; i++) {
            const float *q = qkv + (size_t)i * 3 * D + a * dh;
            float mx = -INFINITY;
            for (int j = 0; j < H; j++) {
                const float *kk = qkv + (size_t)j * 3 * D + D + a * dh;
                float sdot = 0;
                for (int t = 0; t < dh; t++)
                    sdot += q[t] * kk[t];
                A[(size_t)i * H + j] = sdot * scale;
                if (A[(size_t)i * H + j] > mx)
                    mx = A[(size_t)i * H + j];
            }
            double sum = 0;
            for (int j = 0; j < H; j++) {
                float e = expf(A[(size_t)i * H + j] - mx);
                A[(size_t)i * H + j] = e;
                sum += e;
            }
            for (int j = 0; j < H; j++)
                A[(size_t)i * H + j] = (float)(A[(size_t)i * H + j] / sum);
            float *yi = y + (size_t)i * D + a * dh;
            for (int t = 0; t < dh; t++)
                yi[t] = 0;
            for (int j = 0; j < H; j++) {
                const float *v = qkv + (size_t)j * 3 * D + 2 * D + a * dh;
                float p = A[(size_t)i * H + j];
                for (int t = 0; t < dh; t++)
                    yi[t] += p * v[t];
            }
        }
    }
}

DrrlStatus policy_net_forward(const PolicyNet *net, PolicyNetCache *k, const PolicyNetInput *in,
                              float *logits, float *value, DrrlError *err)
{
    const PolicyNetConfig *c = &net->cfg;
    if (in->layer < 0 || in->layer >= c->n_layer)
        return drrl_error(err, DRRL_E_USAGE, "policy_net: layer %d out of range [0, %d)",
                          in->layer, c->n_layer);
    if (in->T < 0 || (in->T > 0 && !in->conv_x))
        return drrl_error(err, DRRL_E_USAGE, "policy_net: bad segment length %d", in->T);
    if (cache_reserve(k, in->T, c->conv_out))
        return drrl_error(err, DRRL_E_NOMEM, "policy_net: out of memory for T = %d", in->T);
    const float *P = net->params;
    Layout L = layout_of(net);
    BlockLayout BL = block_layout(c);
    int H = c->n_head, D = c->d_model, M = c->d_ff, NA = c->n_attn_head, dh = D / NA;
    int T = in->T, Ci = c->conv_in, Co = c->conv_out, K = c->conv_kernel;
    int F = c->n_feat, fin = F + Co;
    k->T = T;
    k->layer = in->layer;
    k->conv_x = in->conv_x;

    conv_forward(k, P, &L, in->conv_x, T, Ci, Co, K);

    /* Token inputs and embedding. */
    for (int h = 0; h < H; h++) {
        memcpy(k->xin + (size_t)h * fin, in->feat + (size_t)h * F, (size_t)F * sizeof(float));
        memcpy(k->xin + (size_t)h * fin + F, k->s, (size_t)Co * sizeof(float));
    }
    mm(k->e0, k->xin, P + L.in_w, H, D, fin, 0, 0, 0.0f);
    for (int h = 0; h < H; h++)
        for (int d = 0; d < D; d++)
            k->e0[(size_t)h * D + d] += P[L.in_b + d] +
                                        P[L.layer_emb + (size_t)in->layer * D + d] +
                                        P[L.head_emb + (size_t)h * D + d];

    const float *x = k->e0;
    float scale = 1.0f / sqrtf((float)dh);
    size_t HD = (size_t)H * D;
    for (int b = 0; b < c->n_block; b++) {
        const float *W = P + L.blk0 + (size_t)b * L.blk_stride;
        float *bx = k->bx + b * HD, *a1 = k->a1 + b * HD, *h1 = k->h1 + b * HD;
        float *r1 = k->r1 + (size_t)b * H, *qkv = k->qkv + b * HD * 3;
        float *att = k->att + (size_t)b * NA * H * H, *y = k->y + b * HD;
        float *xm = k->xm + b * HD, *a2 = k->a2 + b * HD, *h2 = k->h2 + b * HD;
        float *r2 = k->r2 + (size_t)b * H;
        float *pre = k->pre + (size_t)b * H * M, *act = k->act + (size_t)b * H * M;
        memcpy(bx, x, HD * sizeof(float));
        ln_forward(a1, h1, r1, bx, W + BL.ln1_g, W + BL.ln1_b, H, D);
        mm(qkv, a1, W + BL.qkv_w, H, 3 * D, D, 0, 0, 0.0f);
        add_bias(qkv, W + BL.qkv_b, H, 3 * D);
        mhsa_forward(att, y, qkv, H, D, NA, scale);
        memcpy(xm, bx, HD * sizeof(float));
        mm(xm, y, W + BL.proj_w, H, D, D, 0, 0, 1.0f);
        add_bias(xm, W + BL.proj_b, H, D);
        ln_forward(a2, h2, r2, xm, W + BL.ln2_g, W + BL.ln2_b, H, D);
        mm(pre, a2, W + BL.fc_w, H, M, D, 0, 0, 0.0f);
        add_bias(pre, W + BL.fc_b, H, M);
        for (size_t i = 0; i < (size_t)H * M; i++)
            act[i] = gelu(pre[i]);
        /* next block input = xm + act W2 + b2, written to xf as a staging row */
        memcpy(k->xf, xm, HD * sizeof(float));
        mm(k->xf, act, W + BL.fc2_w, H, D, M, 0, 0, 1.0f);
        add_bias(k->xf, W + BL.fc2_b, H, D);
        x = k->xf;
    }
    if (c->n_block == 0)
        memcpy(k->xf, k->e0, HD * sizeof(float));
    ln_forward(k->f, k->hf, k->rf, k->xf, P + L.lnf_g, P + L.lnf_b, H, D);
    mm(logits, k->f, P + L.actor_w, H, c->n_action, D, 0, 0, 0.0f);
    add_bias(logits, P + L.actor_b, H, c->n_action);
    if (c->prior_weight > 0) /* constant in the parameters: backward is unchanged */
        for (int h = 0; h < H; h++)
            logits[(size_t)h * c->n_action +
                   policy_net_prior_action(c, in->feat + (size_t)h * F)] +=
                (float)c->prior_weight;
    for (int h = 0; h < H; h++) {
        double v = P[L.critic_b];
        for (int d = 0; d < D; d++)
            v += (double)k->f[(size_t)h * D + d] * P[L.critic_w + d];
        value[h] = (float)v;
    }
    return DRRL_OK;
}

/* ---- backward --------------------------------------------------------- */

/* mhsa_forward's backward: dy (H, D) into dqkv (H, 3D, zeroed by the
 * caller), with dS (H, H) as scratch. */
static void mhsa_backward(float *dqkv, float *dS, const float *dy, const float *att,
                          const float *qkv, int H, int D, int NA, float scale)
{
    int dh = D / NA;
    for (int a = 0; a < NA; a++) {
        const float *A = att + (size_t)a * H * H;
        for (int i = 0; i < H; i++) {
            const float *dyi = dy + (size_t)i * D + a * dh;
            double dot = 0;
            for (int j = 0; j < H; j++) {
                const float *v = qkv + (size_t)j * 3 * D + 2 * D + a * dh;
                float *dv = dqkv + (size_t)j * 3 * D + 2 * D + a * dh;
                float p = A[(size_t)i * H + j], dp = 0;
                for (int t = 0; t < dh; t++) {
                    dp += dyi[t] * v[t];
                    dv[t] += p * dyi[t];
                }
                dS[(size_t)i * H + j] = dp;
                dot += (double)p * dp;
            }
            for (int j = 0; j < H; j++)
                dS[(size_t)i * H + j] =
                    A[(size_t)i * H + j] * (float)(dS[(size_t)i * H + j] - dot) * scale;
        }
        for (int i = 0; i < H; i++) {
            const float *q = qkv + (size_t)i * 3 * D + a * dh;
            float *dq = dqkv + (size_t)i * 3 * D + a * dh;
            for (int j = 0; j < H; j++) {
                const float *kk = qkv + (size_t)j * 3 * D + D + a * dh;
                float *dk = dqkv + (size_t)j * 3 * D + D + a * dh;
                float s = dS[(size_t)i * H + j];
                for (int t = 0; t < dh; t++) {
                    dq[t] += s * kk[t];
                    dk[t] += s * q[t];
                }
            }
        }
    }
}

/* The convolution's backward, from dx (the embedding's input gradient). */
static void conv_backward(PolicyNet *net, PolicyNetCache *k, const float *dx)
{
    const PolicyNetConfig *c = &net->cfg;
    const float *P = net->params;
    float *G = net->grads;
    Layout L = layout_of(net);
    int H = c->n_head, D = c->d_model, T = k->T, Ci = c->conv_in, Co = c->conv_out;
    int K = c->conv_kernel, F = c->n_feat, fin = F + Co;
    mm(k->dxin, dx, P + L.in_w, H, fin, D, 0, 1, 0.0f);
    /* ds = sum over heads of the summary part of dxin; dZ[t] = ds/T (1 - u^2). */
    float ds[Co];
    for (int o = 0; o < Co; o++) {
        double acc = 0;
        for (int h = 0; h < H; h++)
            acc += k->dxin[(size_t)h * fin + F + o];
        ds[o] = (float)(acc / T);
    }
    for (int t = 0; t < T; t++)
        for (int o = 0; o < Co; o++) {
            float u = k->convz[(size_t)t * Co + o];
            float dz = ds[o] * (1.0f - u * u);
            k->dconv[(size_t)t * Co + o] = dz;
            G[L.conv_b + o] += dz;
        }
    for (int j = 0; j < K && j < T; j++)
        mm(G + L.conv_w + (size_t)j * Ci * Co, k->conv_x, k->dconv + (size_t)j * Co, Ci, Co,
           T - j, 1, 0, 1.0f);
}

void policy_net_backward(PolicyNet *net, PolicyNetCache *k, const float *dlogits,
                         const float *dvalue)
{
    const PolicyNetConfig *c = &net->cfg;
    const float *P = net->params;
    float *G = net->grads;
    Layout L = layout_of(net);
    BlockLayout BL = block_layout(c);
    int H = c->n_head, D = c->d_model, M = c->d_ff, NA = c->n_attn_head, dh = D / NA;
    int T = k->T, Co = c->conv_out;
    int F = c->n_feat, fin = F + Co, NAct = c->n_action;
    size_t HD = (size_t)H * D;
    float scale = 1.0f / sqrtf((float)dh);

    /* Heads: df = dlogits Wa^T + dvalue wc^T. */
    float *df = k->dx2;
    memset(df, 0, HD * sizeof(float));
    if (dlogits) {
        mm(G + L.actor_w, k->f, dlogits, D, NAct, H, 1, 0, 1.0f);
        bias_grad(G + L.actor_b, dlogits, H, NAct);
        mm(df, dlogits, P + L.actor_w, H, D, NAct, 0, 1, 0.0f);
    }
    if (dvalue) {
        for (int h = 0; h < H; h++) {
            G[L.critic_b] += dvalue[h];
            for (int d = 0; d < D; d++) {
                G[L.critic_w + d] += k->f[(size_t)h * D + d] * dvalue[h];
                df[(size_t)h * D + d] += dvalue[h] * P[L.critic_w + d];
            }
        }
    }
    /* dx: gradient w.r.t. the current residual stream. */
    float *dx = k->dx;
    memset(dx, 0, HD * sizeof(float));
    ln_backward(dx, G + L.lnf_g, G + L.lnf_b, df, k->hf, k->rf, P + L.lnf_g, H, D);

    for (int b = c->n_block - 1; b >= 0; b--) {
        const float *W = P + L.blk0 + (size_t)b * L.blk_stride;
        float *GW = G + L.blk0 + (size_t)b * L.blk_stride;
        const float *a1 = k->a1 + b * HD, *h1 = k->h1 + b * HD, *r1 = k->r1 + (size_t)b * H;
        const float *qkv = k->qkv + b * HD * 3, *att = k->att + (size_t)b * NA * H * H;
        const float *y = k->y + b * HD, *a2 = k->a2 + b * HD, *h2 = k->h2 + b * HD;
        const float *r2 = k->r2 + (size_t)b * H;
        const float *pre = k->pre + (size_t)b * H * M, *act = k->act + (size_t)b * H * M;

        /* MLP branch: out = act W2 + b2. */
        mm(GW + BL.fc2_w, act, dx, M, D, H, 1, 0, 1.0f);
        bias_grad(GW + BL.fc2_b, dx, H, D);
        float *dact = k->dpre;
        mm(dact, dx, W + BL.fc2_w, H, M, D, 0, 1, 0.0f);
        for (size_t i = 0; i < (size_t)H * M; i++)
            dact[i] *= gelu_grad(pre[i]);
        mm(GW + BL.fc_w, a2, dact, D, M, H, 1, 0, 1.0f);
        bias_grad(GW + BL.fc_b, dact, H, M);
        float *da2 = k->dtmp;
        mm(da2, dact, W + BL.fc_w, H, D, M, 0, 1, 0.0f);
        /* dx now holds d(xm) after adding the LN2 path. */
        ln_backward(dx, GW + BL.ln2_g, GW + BL.ln2_b, da2, h2, r2, W + BL.ln2_g, H, D);

        /* Attention branch: xm = bx + y Wp + bp. */
        mm(GW + BL.proj_w, y, dx, D, D, H, 1, 0, 1.0f);
        bias_grad(GW + BL.proj_b, dx, H, D);
        float *dy = k->dx2;
        mm(dy, dx, W + BL.proj_w, H, D, D, 0, 1, 0.0f);
        float *dqkv = k->dqkv;
        memset(dqkv, 0, HD * 3 * sizeof(float));
        mhsa_backward(dqkv, k->datt, dy, att, qkv, H, D, NA, scale);
        mm(GW + BL.qkv_w, a1, dqkv, D, 3 * D, H, 1, 0, 1.0f);
        bias_grad(GW + BL.qkv_b, dqkv, H, 3 * D);
        float *da1 = k->dtmp;
        mm(da1, dqkv, W + BL.qkv_w, H, D, 3 * D, 0, 1, 0.0f);
        ln_backward(dx, GW + BL.ln1_g, GW + BL.ln1_b, da1, h1, r1, W + BL.ln1_g, H, D);
    }

    /* Embedding: e0 = xin Win + bin + layer_emb[l] + head_emb[h]. */
    mm(G + L.in_w, k->xin, dx, fin, D, H, 1, 0, 1.0f);
    bias_grad(G + L.in_b, dx, H, D);
    for (int h = 0; h < H; h++)
        for (int d = 0; d < D; d++) {
            G[L.layer_emb + (size_t)k->layer * D + d] += dx[(size_t)h * D + d];
            G[L.head_emb + (size_t)h * D + d] += dx[(size_t)h * D + d];
        }
    if (T == 0)
        return;
    conv_backward(net, k, dx);
}

/* ---- optimiser -------------------------------------------------------- */

double policy_net_clip_grad(PolicyNet *net, double max_norm)
{
    double ss = 0;
    for (size_t i = 0; i < net->n_params; i++)
        ss += (double)net->grads[i] * net->grads[i];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / norm);
        for (size_t i = 0; i < net->n_params; i++)
            net->grads[i] *= s;
    }
    return norm;
}

DrrlStatus policy_adam_init(PolicyAdam *a, const PolicyNet *net, double lr, DrrlError *err)
{
    memset(a, 0, sizeof *a);
    a->n = net->n_params;
    a->m = calloc(a->n, sizeof(float));
    a->v = calloc(a->n, sizeof(float));
    if (!a->m || !a->v) {
        policy_adam_done(a);
        return drrl_error(err, DRRL_E_NOMEM, "policy_adam: out of memory");
    }
    a->lr = lr;
    a->beta1 = 0.9;
    a->beta2 = 0.999;
    a->eps = 1e-8;
    return DRRL_OK;
}

void policy_adam_done(PolicyAdam *a)
{
    if (!a)
        return;
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void policy_adam_step(PolicyAdam *a, PolicyNet *net)
{
    a->t++;
    double bc1 = 1.0 - pow(a->beta1, (double)a->t), bc2 = 1.0 - pow(a->beta2, (double)a->t);
    float b1 = (float)a->beta1, b2 = (float)a->beta2;
    float step = (float)(a->lr / bc1), ibc2 = (float)(1.0 / bc2), eps = (float)a->eps;
    for (size_t i = 0; i < a->n; i++) {
        float g = net->grads[i];
        a->m[i] = b1 * a->m[i] + (1.0f - b1) * g;
        a->v[i] = b2 * a->v[i] + (1.0f - b2) * g * g;
        net->params[i] -= step * a->m[i] / (sqrtf(a->v[i] * ibc2) + eps);
    }
}
