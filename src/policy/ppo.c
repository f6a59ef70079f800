#include "policy/ppo.h"
#include "base/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ppo_config_default(PpoConfig *c)
{
    c->clip = 0.2;
    c->discount = 0.9;
    c->gae_lambda = 0.95;
    c->ent_coef = 0.01;
    c->value_coef = 0.5;
    c->lr = 3e-4;
    c->max_grad_norm = 0.5;
    c->epochs = 4;
    c->minibatch = 16;
}

double ppo_masked_softmax(const float *logits, const uint8_t *mask, int n, double *probs)
{
    double mx = -INFINITY;
    for (int j = 0; j < n; j++)
        if (mask[j] && logits[j] > mx)
            mx = logits[j];
    if (mx == -INFINITY) {
        for (int j = 0; j < n; j++)
            probs[j] = 0;
        return -INFINITY;
    }
    double sum = 0;
    for (int j = 0; j < n; j++) {
        probs[j] = mask[j] ? exp(logits[j] - mx) : 0.0;
        sum += probs[j];
    }
    for (int j = 0; j < n; j++)
        probs[j] /= sum;
    return mx + log(sum);
}

int ppo_sample(const double *probs, int n, PolicyRng *rng)
{
    double u = policy_rng_uniform(rng), acc = 0;
    int last = -1;
    for (int j = 0; j < n; j++) {
        if (probs[j] <= 0)
            continue;
        acc += probs[j];
        last = j;
        if (u < acc)
            return j;
    }
    return last; /* rounding: u beyond the accumulated sum */
}

int ppo_argmax(const float *logits, const uint8_t *mask, int n)
{
    int best = -1;
    for (int j = 0; j < n; j++)
        if (mask[j] && (best < 0 || logits[j] > logits[best]))
            best = j;
    return best;
}

DrrlStatus ppo_act(const PolicyNet *net, PolicyNetCache *cache, const PolicyNetInput *in,
                   const uint8_t *mask, PolicyRng *rng, int32_t *action, float *logp,
                   float *value, float *probs, DrrlError *err)
{
    int H = net->cfg.n_head, G = net->cfg.n_action;
    float logits[(size_t)H * G];
    DrrlStatus st = policy_net_forward(net, cache, in, logits, value, err);
    if (st)
        return st;
    double p[G];
    for (int h = 0; h < H; h++) {
        const float *lh = logits + (size_t)h * G;
        const uint8_t *mh = mask + (size_t)h * G;
        double lse = ppo_masked_softmax(lh, mh, G, p);
        if (lse == -INFINITY)
            return drrl_error(err, DRRL_E_INTERNAL,
                              "ppo: layer %d head %d: the safety mask allows no rank",
                              in->layer, h);
        int a = rng ? ppo_sample(p, G, rng) : ppo_argmax(lh, mh, G);
        action[h] = a;
        logp[h] = (float)(lh[a] - lse);
        if (probs)
            for (int j = 0; j < G; j++)
                probs[(size_t)h * G + j] = (float)p[j];
    }
    return DRRL_OK;
}

double ppo_decision_loss(const PpoConfig *cfg, const float *logits, const uint8_t *mask, int n,
                         int action, double logp_old, double adv, double value, double ret,
                         float *dlogits, float *dvalue, int *clipped, double *entropy,
                         double *logp_new)
{
    double p[n];
    double lse = ppo_masked_softmax(logits, mask, n, p);
    double lp = logits[action] - lse;
    double ratio = exp(lp - logp_old);
    double lo = 1.0 - cfg->clip, hi = 1.0 + cfg->clip;
    double rc = ratio < lo ? lo : ratio > hi ? hi : ratio;
    double s1 = ratio * adv, s2 = rc * adv;
    double pl = -(s1 < s2 ? s1 : s2);
    /* d(-min)/d logp: the unclipped branch is the active one unless the clip
     * binds in the direction that would increase the objective. */
    int active = (adv >= 0) ? (ratio <= hi) : (ratio >= lo);
    double dlp = active ? -adv * ratio : 0.0;
    double ent = 0;
    for (int j = 0; j < n; j++)
        if (p[j] > 0)
            ent -= p[j] * log(p[j]);
    for (int j = 0; j < n; j++) {
        if (!mask[j] || p[j] <= 0) {
            dlogits[j] = 0;
            continue;
        }
        /* d logp / d z_j = [j == a] - p_j;  d entropy / d z_j = -p_j (log p_j + H). */
        double g = dlp * ((j == action) - p[j]);
        g += cfg->ent_coef * p[j] * (log(p[j]) + ent);
        dlogits[j] = (float)g;
    }
    double vl = 0.5 * (value - ret) * (value - ret);
    *dvalue = (float)(cfg->value_coef * (value - ret));
    if (clipped)
        *clipped = ratio < lo || ratio > hi;
    if (entropy)
        *entropy = ent;
    if (logp_new)
        *logp_new = lp;
    return pl + cfg->value_coef * vl - cfg->ent_coef * ent;
}

/* ---- buffer ----------------------------------------------------------- */

DrrlStatus ppo_buffer_init(PpoBuffer *b, int H, int F, int C, int G, DrrlError *err)
{
    memset(b, 0, sizeof *b);
    if (H < 1 || F < 1 || C < 1 || G < 1)
        return drrl_error(err, DRRL_E_USAGE, "ppo: bad buffer shape %dx%dx%dx%d", H, F, C, G);
    b->H = H;
    b->F = F;
    b->C = C;
    b->G = G;
    return DRRL_OK;
}

static void sample_free(PpoSample *s)
{
    DRRL_FREE(s->feat, s->conv_x, s->mask, s->action, s->logp);
}

void ppo_buffer_done(PpoBuffer *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->cap; i++)
        sample_free(&b->s[i]);
    free(b->s);
    memset(b, 0, sizeof *b);
}

void ppo_buffer_clear(PpoBuffer *b)
{
    b->n = 0;
}

DrrlStatus ppo_buffer_add(PpoBuffer *b, int prev, int layer, const float *feat,
                          const float *conv_x, int T, const uint8_t *mask,
                          const int32_t *action, const float *logp, const float *value,
                          int *idx, DrrlError *err)
{
    if (prev >= b->n || (prev >= 0 && b->s[prev].next >= 0))
        return drrl_error(err, DRRL_E_USAGE, "ppo: bad trajectory link %d", prev);
    if (T < 0)
        return drrl_error(err, DRRL_E_USAGE, "ppo: bad segment length %d", T);
    if (b->n == b->cap) {
        int ncap = b->cap ? 2 * b->cap : 64;
        PpoSample *ns = realloc(b->s, (size_t)ncap * sizeof *ns);
        if (!ns)
            return drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
        memset(ns + b->cap, 0, (size_t)(ncap - b->cap) * sizeof *ns);
        b->s = ns;
        b->cap = ncap;
    }
    PpoSample *s = &b->s[b->n];
    size_t H = (size_t)b->H;
    /* Arrays are kept across ppo_buffer_clear; conv_x grows with T. */
    if (!s->feat) {
        s->feat = malloc(H * (size_t)b->F * sizeof(float));
        s->mask = malloc(H * (size_t)b->G);
        s->action = malloc(H * sizeof(int32_t));
        s->logp = malloc(H * 6 * sizeof(float)); /* logp, value, reward, adv, ret, spare */
        s->T = 0;
        if (!s->feat || !s->mask || !s->action || !s->logp) {
            sample_free(s);
            memset(s, 0, sizeof *s);
            return drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
        }
    }
    size_t cx = (size_t)T * b->C;
    if (T > 0) {
        float *nx = realloc(s->conv_x, cx * sizeof(float));
        if (!nx)
            return drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
        s->conv_x = nx;
        memcpy(s->conv_x, conv_x, cx * sizeof(float));
    }
    s->T = T;
    s->layer = layer;
    s->value = s->logp + H;
    s->reward = s->logp + 2 * H;
    s->adv = s->logp + 3 * H;
    s->ret = s->logp + 4 * H;
    memcpy(s->feat, feat, H * (size_t)b->F * sizeof(float));
    memcpy(s->mask, mask, H * (size_t)b->G);
    memcpy(s->action, action, H * sizeof(int32_t));
    memcpy(s->logp, logp, H * sizeof(float));
    memcpy(s->value, value, H * sizeof(float));
    memset(s->reward, 0, 3 * H * sizeof(float));
    s->next = -1;
    if (prev >= 0)
        b->s[prev].next = b->n;
    *idx = b->n++;
    return DRRL_OK;
}

void ppo_compute_advantages(PpoBuffer *b, const PpoConfig *cfg)
{
    /* next > i always (links only go forward), so one backward sweep works. */
    for (int i = b->n - 1; i >= 0; i--) {
        PpoSample *s = &b->s[i];
        const PpoSample *nx = s->next >= 0 ? &b->s[s->next] : NULL;
        for (int h = 0; h < b->H; h++) {
            double nv = nx ? nx->value[h] : 0.0, na = nx ? nx->adv[h] : 0.0;
            double delta = s->reward[h] + cfg->discount * nv - s->value[h];
            s->adv[h] = (float)(delta + cfg->discount * cfg->gae_lambda * na);
            s->ret[h] = s->adv[h] + s->value[h];
        }
    }
}

DrrlStatus ppo_allgather(const PpoDist *d, const void *mine, size_t n, void **all,
                         size_t *counts, DrrlError *err)
{
    if (d)
        return d->allgather(d->ctx, mine, n, all, counts, err);
    /* one process: the allgather is a copy */
    *all = malloc(n ? n : 1);
    if (!*all)
        return drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
    if (n)
        memcpy(*all, mine, n);
    counts[0] = n;
    return DRRL_OK;
}

DrrlStatus ppo_update(PolicyNet *net, PolicyNetCache *cache, PolicyAdam *opt, PpoBuffer *b,
                      const PpoConfig *cfg, PolicyRng *rng, PpoStats *stats, DrrlError *err)
{
    int n = b->n, H = b->H;
    int *owner = calloc(n ? (size_t)n : 1, sizeof *owner);
    int *local = malloc((n ? (size_t)n : 1) * sizeof *local);
    float *adv = malloc((n ? (size_t)n * H : 1) * sizeof *adv);
    DrrlStatus st;
    if (!owner || !local || !adv) {
        st = drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
    } else {
        for (int i = 0; i < n; i++) {
            local[i] = i;
            memcpy(adv + (size_t)i * H, b->s[i].adv, (size_t)H * sizeof *adv);
        }
        PpoLayout lay = {n, owner, local, adv};
        st = ppo_update_dist(net, cache, opt, b, &lay, NULL, cfg, rng, stats, err);
    }
    free(owner), free(local), free(adv);
    return st;
}

/* A sample's record in the exchange: its minibatch position, its loss terms
 * summed over heads, then its gradient (n_params floats). */
typedef struct GradHead {
    int64_t k;
    double pl, vl, ent, kl, clip;
} GradHead;

/* One sample alone: its decisions' losses into gh, its gradient (scaled by
 * 1 / n_dec) into net->grads. */
static DrrlStatus sample_grad(PolicyNet *net, PolicyNetCache *cache, const PpoSample *s,
                              const PpoConfig *cfg, int H, int G, double mean, double sd,
                              double n_dec, float *logits, float *dlogits, float *value,
                              float *dvalue, GradHead *gh, DrrlError *err)
{
    PolicyNetInput in = {.layer = s->layer, .feat = s->feat, .conv_x = s->conv_x, .T = s->T};
    policy_net_zero_grad(net);
    DrrlStatus st = policy_net_forward(net, cache, &in, logits, value, err);
    if (st)
        return st;
    for (int h = 0; h < H; h++) {
        int clipped;
        double e, lpn;
        double A = (s->adv[h] - mean) / sd;
        double L = ppo_decision_loss(cfg, logits + (size_t)h * G, s->mask + (size_t)h * G, G,
                                     s->action[h], s->logp[h], A, value[h], s->ret[h],
                                     dlogits + (size_t)h * G, &dvalue[h], &clipped, &e, &lpn);
        double v_err = value[h] - s->ret[h];
        gh->vl += 0.5 * v_err * v_err;
        gh->pl += L - cfg->value_coef * 0.5 * v_err * v_err + cfg->ent_coef * e;
        gh->ent += e;
        gh->kl += s->logp[h] - lpn;
        gh->clip += clipped;
    }
    for (size_t j = 0; j < (size_t)H * G; j++)
        dlogits[j] = (float)(dlogits[j] / n_dec);
    for (int h = 0; h < H; h++)
        dvalue[h] = (float)(dvalue[h] / n_dec);
    policy_net_backward(net, cache, dlogits, dvalue);
    return DRRL_OK;
}

/* Every process's samples of the minibatch [start, end) (the records in
 * all, counts[r] bytes from rank r), added in minibatch order: the loss
 * terms into sum, the gradients into net->grads. */
static DrrlStatus sum_minibatch(PolicyNet *net, const char *all, const size_t *counts, int np,
                                size_t rec, int start, int end, const char **at, GradHead *sum,
                                DrrlError *err)
{
    size_t P = net->n_params;
    for (int k = 0; k < end - start; k++)
        at[k] = NULL;
    size_t total = 0;
    for (int r = 0; r < np; r++)
        total += counts[r];
    for (size_t off = 0; off + rec <= total; off += rec) {
        GradHead gh;
        memcpy(&gh, all + off, sizeof gh);
        if (gh.k >= start && gh.k < end)
            at[gh.k - start] = all + off;
    }
    memset(net->grads, 0, P * sizeof(float));
    for (int k = 0; k < end - start; k++) {
        if (!at[k]) {
            return drrl_error(err, DRRL_E_INTERNAL,
                              "ppo: the gradient of minibatch sample %d is missing", start + k);
        }
        GradHead gh;
        memcpy(&gh, at[k], sizeof gh);
        sum->pl += gh.pl, sum->vl += gh.vl, sum->ent += gh.ent, sum->kl += gh.kl,
            sum->clip += gh.clip;
        const float *gk = (const float *)(at[k] + sizeof gh);
        for (size_t j = 0; j < P; j++)
            net->grads[j] += gk[j];
    }
    return DRRL_OK;
}

DrrlStatus ppo_update_dist(PolicyNet *net, PolicyNetCache *cache, PolicyAdam *opt,
                           const PpoBuffer *b, const PpoLayout *lay, const PpoDist *dist,
                           const PpoConfig *cfg, PolicyRng *rng, PpoStats *stats,
                           DrrlError *err)
{
    memset(stats, 0, sizeof *stats);
    int n = lay->n;
    if (n == 0)
        return DRRL_OK;
    int H = b->H, G = b->G, me = dist ? dist->rank : 0, np = dist ? dist->size : 1;
    /* Advantage normalisation over every sample, in sample order. */
    double mean = 0, var = 0;
    size_t cnt = (size_t)n * H;
    for (size_t i = 0; i < cnt; i++)
        mean += lay->adv[i];
    mean /= (double)cnt;
    for (size_t i = 0; i < cnt; i++)
        var += (lay->adv[i] - mean) * (lay->adv[i] - mean);
    double sd = sqrt(var / (double)cnt) + 1e-8;
    int mb = cfg->minibatch > 0 ? cfg->minibatch : n;
    size_t P = net->n_params, rec = sizeof(GradHead) + P * sizeof(float);
    int *order = malloc((size_t)n * sizeof(int));
    float *logits = malloc((size_t)H * G * sizeof(float));
    float *dlogits = malloc((size_t)H * G * sizeof(float));
    float *value = malloc((size_t)H * sizeof(float));
    float *dvalue = malloc((size_t)H * sizeof(float));
    char *pack = malloc((size_t)mb * rec);
    const char **at = malloc((size_t)mb * sizeof *at);
    size_t *counts = malloc((size_t)np * sizeof *counts);
    char *all = NULL;
    DrrlStatus st = DRRL_OK;
    if (!order || !logits || !dlogits || !value || !dvalue || !pack || !at || !counts) {
        st = drrl_error(err, DRRL_E_NOMEM, "ppo: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int ep = 0; ep < cfg->epochs; ep++) {
        int last = ep == cfg->epochs - 1;
        policy_rng_shuffle(rng, order, n);
        for (int start = 0; start < n; start += mb) {
            int end = start + mb < n ? start + mb : n;
            double n_dec = (double)(end - start) * H;
            size_t used = 0;
            /* this process's samples of the minibatch, each alone */
            for (int k = start; k < end; k++) {
                int g = order[k];
                if (lay->owner[g] != me)
                    continue;
                const PpoSample *s = &b->s[lay->local[g]];
                GradHead gh = {k, 0, 0, 0, 0, 0};
                st = sample_grad(net, cache, s, cfg, H, G, mean, sd, n_dec, logits, dlogits,
                                 value, dvalue, &gh, err);
                if (st)
                    goto out;
                memcpy(pack + used * rec, &gh, sizeof gh);
                memcpy(pack + used * rec + sizeof gh, net->grads, P * sizeof(float));
                used++;
            }
            /* every process's samples, added in minibatch order */
            st = ppo_allgather(dist, pack, used * rec, (void **)&all, counts, err);
            if (st)
                goto out;
            GradHead sum = {0, 0, 0, 0, 0, 0};
            if ((st = sum_minibatch(net, all, counts, np, rec, start, end, at, &sum, err)))
                goto out;
            double pl = sum.pl, vl = sum.vl, ent = sum.ent, kl = sum.kl, clip = sum.clip;
            free(all);
            all = NULL;
            double gn = policy_net_clip_grad(net, cfg->max_grad_norm);
            policy_adam_step(opt, net);
            if (last) {
                stats->policy_loss += pl / n_dec;
                stats->value_loss += vl / n_dec;
                stats->entropy += ent / n_dec;
                stats->approx_kl += kl / n_dec;
                stats->clip_frac += clip / n_dec;
                stats->grad_norm += gn;
                stats->minibatches++;
            }
        }
    }
    if (stats->minibatches) {
        double m = stats->minibatches;
        stats->policy_loss /= m;
        stats->value_loss /= m;
        stats->entropy /= m;
        stats->approx_kl /= m;
        stats->clip_frac /= m;
        stats->grad_norm /= m;
    }
out:
    DRRL_FREE(all, order, logits, dlogits, value, dvalue, pack, at, counts);
    return st;
}
