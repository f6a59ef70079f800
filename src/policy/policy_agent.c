#include "policy/policy_agent.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "policy/policy_features.h"

/* Per (layer, head) accumulators of the current segment's records. */
typedef struct SegAcc {
    double fid_sum, fl_exec, fl_exact, err_sum;
    int64_t rows, err_rows;
    int32_t rank;
} SegAcc;

struct PolicyAgent {
    const Model *model;
    PolicyNet *net;
    PolicyNet *owned_net; /* set when loaded from a file */
    PolicyMeta meta;
    int has_meta;
    PolicyNetCache *cache;
    int L, H, K, D, Cin, G, F, T;
    int fv;        /* feature layout version (policy_features.h), from the net's n_feat */
    int32_t *grid; /* (G) */
    float *wstats; /* (L, H, 9) */
    double budget;
    AttnCacheFn ck, cv;
    const void *cctx;
    PolicyRng *rng;    /* NULL: argmax */
    PpoBuffer *buf;    /* NULL: no recording */
    int *last_idx;     /* (L) last sample of each layer's trajectory, or -1 */
    int *seg_idx;      /* (L) sample of the current segment's decision, or -1 */
    int32_t *seg_prev; /* (L, H) rank before the current segment's decision */
    SegAcc *acc;       /* (L, H) */
    double *lambda;    /* (L, H, D) key Gram eigenvalues seen in the records */
    /* scratch */
    float *feat, *conv_x, *logp, *value;
    uint8_t *mask;
    int32_t *action;
    const float **kp, **vp;
    double flops_per_forward, flops;
    int64_t decisions;
};

static double net_flops(const PolicyNetConfig *c, int T)
{
    double H = c->n_head, D = c->d_model, M = c->d_ff, dh = (double)c->d_model / c->n_attn_head;
    double f = 2.0 * T * c->conv_kernel * c->conv_in * c->conv_out;
    f += 2.0 * H * (c->n_feat + c->conv_out) * D;
    f += c->n_block * (2.0 * H * D * 3 * D + 4.0 * c->n_attn_head * H * H * dh +
                       2.0 * H * D * D + 4.0 * H * D * M);
    f += 2.0 * H * D * (c->n_action + 1);
    return f;
}

DrrlStatus policy_agent_new(const Model *m, PolicyNet *net, const int32_t *grid, int n_grid,
                            int T, double budget, PolicyAgent **out, DrrlError *err)
{
    *out = NULL;
    const ModelConfig *mc = &m->cfg;
    const PolicyNetConfig *nc = &net->cfg;
    int cin = policy_features_conv_width(mc->n_kv_head, mc->head_dim);
    if (nc->n_layer != mc->n_layer || nc->n_head != mc->n_head || nc->conv_in != cin ||
        nc->n_action != n_grid || !policy_features_version_of(nc->n_feat, n_grid))
        return drrl_error(
            err, DRRL_E_INPUT,
            "policy: network for %d layers x %d heads, conv width %d, %d ranks, "
            "%d features does not fit this model (%d x %d, conv width %d) and "
            "grid (%d ranks, %d, %d or %d features)",
            nc->n_layer, nc->n_head, nc->conv_in, nc->n_action, nc->n_feat, mc->n_layer,
            mc->n_head, cin, n_grid, policy_features_count_v(n_grid, 1),
            policy_features_count_v(n_grid, 2), policy_features_count_v(n_grid, 3));
    if (n_grid < 1 || grid[n_grid - 1] != mc->head_dim || T < 1)
        return drrl_error(err, DRRL_E_INPUT, "policy: the rank grid must end at head_dim %d",
                          mc->head_dim);
    PolicyAgent *a = calloc(1, sizeof *a);
    if (!a)
        return drrl_error(err, DRRL_E_NOMEM, "policy: out of memory");
    a->model = m;
    a->net = net;
    a->L = mc->n_layer, a->H = mc->n_head, a->K = mc->n_kv_head, a->D = mc->head_dim;
    a->Cin = cin, a->G = n_grid, a->F = nc->n_feat, a->T = T;
    a->fv = policy_features_version_of(nc->n_feat, n_grid);
    a->budget = budget;
    size_t LH = (size_t)a->L * a->H;
    a->cache = policy_net_cache_new(net);
    a->grid = malloc((size_t)n_grid * sizeof *a->grid);
    a->wstats = malloc(LH * 9 * sizeof *a->wstats);
    a->last_idx = malloc((size_t)a->L * sizeof *a->last_idx);
    a->seg_idx = malloc((size_t)a->L * sizeof *a->seg_idx);
    a->seg_prev = calloc(LH, sizeof *a->seg_prev);
    a->acc = calloc(LH, sizeof *a->acc);
    a->lambda = calloc(LH * a->D, sizeof *a->lambda);
    a->feat = malloc((size_t)a->H * a->F * sizeof *a->feat);
    a->conv_x = malloc((size_t)T * cin * sizeof *a->conv_x);
    a->logp = malloc((size_t)a->H * sizeof *a->logp);
    a->value = malloc((size_t)a->H * sizeof *a->value);
    a->mask = malloc((size_t)a->H * a->G);
    a->action = malloc((size_t)a->H * sizeof *a->action);
    a->kp = malloc((size_t)a->K * sizeof *a->kp);
    a->vp = malloc((size_t)a->K * sizeof *a->vp);
    if (!a->cache || !a->grid || !a->wstats || !a->last_idx || !a->seg_idx || !a->seg_prev ||
        !a->acc || !a->lambda || !a->feat || !a->conv_x || !a->logp || !a->value || !a->mask ||
        !a->action || !a->kp || !a->vp) {
        policy_agent_free(a);
        return drrl_error(err, DRRL_E_NOMEM, "policy: out of memory");
    }
    memcpy(a->grid, grid, (size_t)n_grid * sizeof *grid);
    policy_features_model_stats(m->wq, m->wk, m->wv, a->L, a->H, a->K, a->D, mc->d_model,
                                a->wstats);
    a->flops_per_forward = net_flops(nc, T);
    policy_agent_begin_episode(a);
    *out = a;
    return DRRL_OK;
}

void policy_agent_free(PolicyAgent *a)
{
    if (!a)
        return;
    policy_net_cache_free(a->cache);
    policy_net_free(a->owned_net);
    DRRL_FREE(a->grid, a->wstats, a->last_idx, a->seg_idx, a->seg_prev, a->acc, a->lambda,
              a->feat, a->conv_x, a->logp, a->value, a->mask, a->action, a->kp, a->vp, a);
}

DrrlStatus policy_agent_load(const char *path, const Model *m, int T, double budget,
                             PolicyAgent **out, char *warn, size_t warn_n, DrrlError *err)
{
    *out = NULL;
    PolicyNet *net;
    PolicyMeta meta;
    DrrlStatus st = policy_file_load(path, &net, &meta, NULL, NULL, err);
    if (st)
        return st;
    PolicyModelShape shape;
    policy_model_shape(m, meta.model.hash_algo, &shape);
    st = policy_file_check_model(path, &meta, &shape, warn, warn_n, err);
    if (!st) {
        if (budget <= 0)
            budget = 0.5 * (meta.budget_lo + meta.budget_hi);
        st = policy_agent_new(m, net, meta.grid, meta.n_grid, T, budget, out, err);
    }
    if (st) {
        policy_net_free(net);
        return st;
    }
    (*out)->owned_net = net;
    (*out)->meta = meta;
    (*out)->has_meta = 1;
    return DRRL_OK;
}

const int32_t *policy_agent_grid(const PolicyAgent *a, int *n_grid)
{
    *n_grid = a->G;
    return a->grid;
}

DrrlStatus policy_agent_prepare(const Model *m, AttnCoreConfig *cfg, double budget,
                                PolicyAgent **out, char *warn, size_t warn_n, DrrlError *err)
{
    *out = NULL;
    if (warn && warn_n)
        warn[0] = '\0';
    if (cfg->method.kind != METHOD_DRRL)
        return DRRL_OK;
    /* drrl:PATH@B: a budget B in (0, 1] after the last '@' overrides budget;
     * an '@' elsewhere in the path (a@b/p.safetensors) is part of the path. */
    char path[sizeof cfg->method.policy];
    snprintf(path, sizeof path, "%s", cfg->method.policy);
    char *at = (char *)method_budget_at(path);
    if (at) {
        char *end;
        double b = strtod(at + 1, &end);
        if (end == at + 1 || *end || !(b > 0 && b <= 1))
            return drrl_error(err, DRRL_E_USAGE,
                              "--method %s: the budget after '@' must be a number in (0, 1]",
                              cfg->method.spec);
        budget = b;
        *at = '\0';
    }
    if (!path[0])
        return drrl_error(err, DRRL_E_USAGE,
                          "--method %s: no policy file (give drrl:POLICY, or install %s)",
                          cfg->method.spec, POLICY_AGENT_DEFAULT_FILE);
    DrrlStatus st = policy_agent_load(path, m, cfg->segment, budget, out, warn, warn_n, err);
    if (st)
        return st;
    policy_agent_core_grid(*out, &cfg->r_min, &cfg->r_step);
    /* eps auto: the safety floor the policy was trained under, so inference
     * masks what training masked at the end. */
    if (isnan(cfg->eps))
        cfg->eps = (*out)->meta.eps_floor;
    return DRRL_OK;
}

void policy_agent_connect(PolicyAgent *a, AttnCore *core, AttnCacheFn k, AttnCacheFn v,
                          const void *ctx)
{
    policy_agent_bind_cache(a, k, v, ctx);
    attn_core_set_chooser(core, policy_agent_choose, a);
}

void policy_agent_core_grid(const PolicyAgent *a, int32_t *r_min, int32_t *r_step)
{
    *r_min = a->grid[0];
    *r_step = a->G > 1 ? a->grid[1] - a->grid[0] : 1;
}

void policy_agent_bind_cache(PolicyAgent *a, AttnCacheFn k, AttnCacheFn v, const void *ctx)
{
    a->ck = k, a->cv = v, a->cctx = ctx;
}

double policy_agent_budget(const PolicyAgent *a)
{
    return a->budget;
}

void policy_agent_set_budget(PolicyAgent *a, double budget)
{
    a->budget = budget;
}

void policy_agent_set_training(PolicyAgent *a, PolicyRng *rng, PpoBuffer *buf)
{
    a->rng = rng;
    a->buf = buf;
}

void policy_agent_begin_episode(PolicyAgent *a)
{
    for (int l = 0; l < a->L; l++)
        a->last_idx[l] = a->seg_idx[l] = -1;
    memset(a->acc, 0, (size_t)a->L * a->H * sizeof *a->acc);
}

double policy_agent_flops(const PolicyAgent *a)
{
    return a->flops;
}

int64_t policy_agent_decisions(const PolicyAgent *a)
{
    return a->decisions;
}

DrrlStatus policy_agent_choose(void *ctx, const AttnDecision *dec, int32_t *rank, float *probs,
                               double *value, DrrlError *err)
{
    PolicyAgent *a = ctx;
    int l = dec->layer, H = a->H, G = a->G;
    if (dec->n_head != H || dec->head_dim != a->D || dec->grid->n != G ||
        memcmp(dec->grid->r, a->grid, (size_t)G * sizeof *a->grid))
        return drrl_error(err, DRRL_E_USAGE,
                          "policy: the attention core's rank grid (%d ranks, up to %d) is not "
                          "the policy's (%d ranks, up to %d)",
                          dec->grid->n, dec->grid->n ? dec->grid->r[dec->grid->n - 1] : 0, G,
                          a->grid[G - 1]);
    if (!a->ck || !a->cv)
        return drrl_error(err, DRRL_E_INTERNAL, "policy: no KV cache bound");
    int64_t pos = (int64_t)dec->segment * a->T; /* first position of the new segment */
    int T = pos >= a->T ? a->T : (int)pos;
    for (int h = 0; h < H; h++)
        policy_features_head_v(
            a->feat + (size_t)h * a->F, a->fv, a->wstats + ((size_t)l * H + h) * 9, G, a->D,
            dec->prev_rank[h], a->budget, pos, dec->energy + (size_t)h * G,
            dec->bound + (size_t)h * G, dec->guard ? dec->guard + (size_t)h * G : NULL,
            dec->energy_v ? dec->energy_v + (size_t)h * G : NULL);
    for (int g = 0; g < a->K; g++) {
        a->kp[g] = a->ck(a->cctx, l, g);
        a->vp[g] = a->cv(a->cctx, l, g);
    }
    policy_features_gather_kv(a->kp, a->vp, a->K, a->D, pos - T, T, a->conv_x);
    memcpy(a->mask, dec->mask, (size_t)H * G);
    PolicyNetInput in = {.layer = l, .feat = a->feat, .conv_x = a->conv_x, .T = T};
    DrrlStatus st = ppo_act(a->net, a->cache, &in, a->mask, a->rng, a->action, a->logp,
                            a->value, probs, err);
    if (st)
        return st;
    for (int h = 0; h < H; h++) {
        rank[h] = a->grid[a->action[h]];
        if (value)
            value[h] = a->value[h];
        a->seg_prev[(size_t)l * H + h] = dec->prev_rank[h];
    }
    a->flops += a->flops_per_forward;
    if (dec->policy_flops)
        *dec->policy_flops += a->flops_per_forward;
    a->decisions += H;
    if (a->buf) {
        int idx;
        st = ppo_buffer_add(a->buf, a->last_idx[l], l, a->feat, a->conv_x, T, a->mask,
                            a->action, a->logp, a->value, &idx, err);
        if (st)
            return st;
        a->last_idx[l] = idx;
        a->seg_idx[l] = idx;
    }
    return DRRL_OK;
}

/* ---- rewards ---------------------------------------------------------- */

static DrrlStatus sink_put(TraceSink *self, const TraceRecord *r, DrrlError *err)
{
    PolicyAgent *a = self->ctx;
    (void)err;
    if (r->layer < 0 || r->layer >= a->L || r->head < 0 || r->head >= a->H)
        return DRRL_OK;
    size_t i = (size_t)r->layer * a->H + r->head;
    SegAcc *s = &a->acc[i];
    if (isfinite(r->fidelity)) {
        s->fid_sum += r->fidelity;
        s->rows++;
    }
    if (isfinite(r->measured_error)) {
        s->err_sum += r->measured_error;
        s->err_rows++;
    }
    if (isfinite(r->flops_executed) && isfinite(r->flops_exact)) {
        s->fl_exec += r->flops_executed;
        s->fl_exact += r->flops_exact;
    }
    s->rank = r->rank;
    if (r->n_sigma == a->D && r->sigma)
        for (int k = 0; k < a->D; k++)
            a->lambda[i * a->D + k] = (double)r->sigma[k] * r->sigma[k];
    return DRRL_OK;
}

TraceSink policy_agent_sink(PolicyAgent *a)
{
    TraceSink s = {sink_put, a};
    return s;
}

void policy_agent_end_segment(PolicyAgent *a, const PolicyRewardWeights *w, double lm_delta,
                              PolicyRewardTerms *sum, int *n_rewarded)
{
    int H = a->H, n = 0;
    PolicyRewardTerms terms[H];
    if (sum)
        memset(sum, 0, sizeof *sum);
    for (int l = 0; l < a->L; l++) {
        if (a->seg_idx[l] < 0 || !a->buf)
            continue;
        PpoSample *s = &a->buf->s[a->seg_idx[l]];
        for (int h = 0; h < H; h++) {
            size_t i = (size_t)l * H + h;
            const SegAcc *c = &a->acc[i];
            PolicyRewardTerms *t = &terms[h];
            memset(t, 0, sizeof *t);
            t->fidelity = c->rows ? c->fid_sum / (double)c->rows : 1.0;
            t->flops_frac = c->fl_exact > 0 ? c->fl_exec / c->fl_exact : 1.0;
            t->band = policy_reward_band(a->lambda + i * a->D, a->D, a->seg_prev[i],
                                         a->grid[s->action[h]]);
            t->lm = lm_delta;
            t->error = c->err_rows ? c->err_sum / (double)c->err_rows : 0.0;
        }
        PolicyRewardWeights wl;
        policy_reward_layer(policy_reward_err_layer(w, l, &wl), a->budget, terms, H);
        for (int h = 0; h < H; h++) {
            s->reward[h] = (float)terms[h].total;
            if (sum) {
                sum->fidelity += terms[h].fidelity;
                sum->flops_frac += terms[h].flops_frac;
                sum->band += terms[h].band;
                sum->budget += terms[h].budget;
                sum->lm += terms[h].lm;
                sum->error += terms[h].error;
                sum->total += terms[h].total;
            }
            n++;
        }
        a->seg_idx[l] = -1;
    }
    memset(a->acc, 0, (size_t)a->L * H * sizeof *a->acc);
    if (n_rewarded)
        *n_rewarded = n;
}
