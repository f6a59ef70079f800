#include "policy/policy_train.h"

#include "base/mem.h"
#include "base/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn_core.h"
#include "base/blas.h"
#include "base/clock.h"
#include "base/logsumexp.h"
#include "model/forward.h"
#include "attn/method.h"
#include "policy/policy_agent.h"
#include "policy/policy_features.h"
#include "policy/policy_file.h"

void policy_train_config_default(PolicyTrainConfig *c)
{
    memset(c, 0, sizeof *c);
    c->segment = 128;
    c->episode_len = 0; /* 8 T */
    c->episodes = 4;
    c->steps = 50;
    c->seed = 0;
    c->budget_lo = 0.3;
    c->budget_hi = 1.0;
    c->eps_start = 1.0;
    c->eps_floor = 0.25;
    c->eps_decay = 0.97;
    c->rot_tol = 0.1;
    policy_reward_defaults(&c->reward);
    ppo_config_default(&c->ppo);
    c->ppo.lr = 1e-3;
    c->ppo.ent_coef = 0.02; /* 0.01 let the policy collapse to exact within ~20 steps */
    c->d_model = 32;
    c->n_attn_head = 2;
    c->d_ff = 64;
    c->n_block = 2;
    c->conv_kernel = 4;
    c->conv_out = 8;
    c->features = 2; /* version 3 adds nothing measured yet (data/README.md) */
    c->checkpoint_every = 10;
}

static const float *cache_k(const void *ctx, int l, int g)
{
    return forward_cache_k(ctx, l, g);
}

static const float *cache_v(const void *ctx, int l, int g)
{
    return forward_cache_v(ctx, l, g);
}

static double eps_at(const PolicyTrainConfig *c, int64_t step)
{
    double e = c->eps_start * pow(c->eps_decay, (double)step);
    return e > c->eps_floor ? e : c->eps_floor;
}

/* Mean log-likelihood of ids[1..n] under logits (n, V) rows 0..n-1. */
static double mean_loglik(const float *logits, const int32_t *next, size_t n, int V)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)V;
        float mx;
        double ls = logsumexp_shifted(z, (size_t)V, &mx);
        acc += (double)z[next[i]] - mx - ls;
    }
    return n ? acc / (double)n : 0.0;
}

typedef struct Trainer {
    const Model *m;
    const PolicyTrainConfig *cfg;
    int32_t T, E;
    RankGrid grid;
    PolicyNet *net;
    PolicyAdam adam;
    int have_adam;
    PolicyRng rng;    /* the initial weights' stream (saved in checkpoints) */
    PolicyRng ep_rng; /* the running episode's stream */
    PolicyMeta meta;
    PpoBuffer buf;
    PolicyAgent *agent;
    Forward *fwd, *fwd_exact;
    float *logits, *logits_exact;
} Trainer;

static void trainer_done(Trainer *t)
{
    policy_agent_free(t->agent);
    forward_free(t->fwd);
    forward_free(t->fwd_exact);
    free(t->logits);
    free(t->logits_exact);
    ppo_buffer_done(&t->buf);
    if (t->have_adam)
        policy_adam_done(&t->adam);
    policy_net_free(t->net);
}

/* The stream of episode e of step `step` (e = -1: the step's minibatches). */
static uint64_t stream_seed(uint64_t seed, int64_t step, int64_t e)
{
    return rng_hash64(rng_hash64(rng_hash64(seed) ^ (uint64_t)step) + (uint64_t)(e + 1));
}

/* An episode's part of a step, exchanged between processes; its samples'
 * advantages (n_samples x H floats) follow it. */
typedef struct EpRec {
    int64_t e, n_samples, n_rew;
    double fidelity, flops_frac, band, budget, lm, total, ex, ax, error;
} EpRec;

/* What every process needs after the rollout of a step: the sample layout of
 * the update and the step's reward sums, added in episode order. */
typedef struct StepSums {
    PolicyRewardTerms sum;
    int64_t n_rew;
    double ex, ax;
} StepSums;

static DrrlStatus share_rollout(Trainer *t, const char *mine, size_t n_mine, PpoLayout *lay,
                                int **owner, int **local, float **adv, StepSums *ss,
                                DrrlError *err)
{
    const PpoDist *d = t->cfg->dist;
    int np = d ? d->size : 1, E = t->cfg->episodes, H = t->buf.H;
    size_t *counts = malloc((size_t)np * sizeof *counts);
    const char **at = calloc((size_t)E, sizeof *at);
    char *all = NULL;
    DrrlStatus st = DRRL_OK;
    if (!counts || !at)
        st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    if (!st)
        st = ppo_allgather(d, mine, n_mine, (void **)&all, counts, err);
    size_t total = 0;
    for (int r = 0; !st && r < np; r++)
        total += counts[r];
    int64_t n = 0;
    for (size_t off = 0; !st && off + sizeof(EpRec) <= total;) {
        EpRec er;
        memcpy(&er, all + off, sizeof er);
        if (er.e < 0 || er.e >= E || at[er.e])
            st = drrl_error(err, DRRL_E_INTERNAL, "train-policy: bad episode record %lld",
                            (long long)er.e);
        else
            at[er.e] = all + off;
        n += er.n_samples;
        off += sizeof er + (size_t)er.n_samples * H * sizeof(float);
    }
    for (int e = 0; !st && e < E; e++)
        if (!at[e])
            st = drrl_error(err, DRRL_E_INTERNAL, "train-policy: episode %d missing", e);
    if (!st && n > INT32_MAX / 2)
        st = drrl_error(err, DRRL_E_USAGE, "train-policy: too many samples in a step");
    if (!st) {
        *owner = malloc((size_t)(n ? n : 1) * sizeof **owner);
        *local = malloc((size_t)(n ? n : 1) * sizeof **local);
        *adv = malloc((size_t)(n ? n * H : 1) * sizeof **adv);
        if (!*owner || !*local || !*adv)
            st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    }
    int *next_local = calloc((size_t)np, sizeof *next_local);
    if (!st && !next_local)
        st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    memset(ss, 0, sizeof *ss);
    int g = 0;
    for (int e = 0; !st && e < E; e++) {
        EpRec er;
        memcpy(&er, at[e], sizeof er);
        int r = e % np;
        for (int64_t j = 0; j < er.n_samples; j++, g++) {
            (*owner)[g] = r;
            (*local)[g] = next_local[r]++;
        }
        memcpy(*adv + (size_t)(g - er.n_samples) * H, at[e] + sizeof er,
               (size_t)er.n_samples * H * sizeof(float));
        PolicyRewardTerms *su = &ss->sum;
        su->fidelity += er.fidelity, su->flops_frac += er.flops_frac, su->band += er.band;
        su->budget += er.budget, su->lm += er.lm, su->total += er.total;
        su->error += er.error;
        ss->n_rew += er.n_rew, ss->ex += er.ex, ss->ax += er.ax;
    }
    if (!st) {
        lay->n = (int)n, lay->owner = *owner, lay->local = *local, lay->adv = *adv;
    }
    DRRL_FREE(next_local, all, at, counts);
    return st;
}

/* Agree after a step: the worst status and whether any process stops. */
static DrrlStatus agree(const PpoDist *d, DrrlStatus *st, int *stop, DrrlError *err)
{
    int32_t mine[2] = {(int32_t)*st, *stop != 0};
    int np = d ? d->size : 1;
    size_t counts[np];
    int32_t *all = NULL;
    DrrlError e2;
    DrrlStatus xs = ppo_allgather(d, mine, sizeof mine, (void **)&all, counts, &e2);
    if (xs) {
        if (!*st)
            *err = e2, *st = xs;
        return *st;
    }
    for (int r = 0; r < np; r++) {
        if (all[2 * r] && !*st) {
            *st = drrl_error(err, (DrrlStatus)all[2 * r],
                             "train-policy: process %d of %d failed (it says why)", r, np);
        }
        *stop |= all[2 * r + 1];
    }
    free(all);
    return *st;
}

static DrrlStatus save(Trainer *t, int64_t step, DrrlError *err)
{
    t->meta.steps = step;
    t->meta.adam_t = t->adam.t;
    t->meta.has_rng = 1;
    memcpy(t->meta.rng, t->rng.s, sizeof t->meta.rng);
    if (t->cfg->dist && t->cfg->dist->rank != 0)
        return DRRL_OK; /* process 0 alone writes */
    return policy_file_save_flags(t->cfg->out_path, t->net, &t->meta, &t->adam,
                                  FILEIO_FORCE | t->cfg->out_flags, err);
}

/* One episode starting at token offset off. Accumulates reward terms. */
static DrrlStatus episode(Trainer *t, AttnCore *core, const int32_t *ids, size_t off,
                          double budget, PolicyRewardTerms *sum, int *n_rew, double *ex,
                          double *ax, DrrlError *err)
{
    const PolicyTrainConfig *c = t->cfg;
    int V = t->m->cfg.vocab;
    forward_reset(t->fwd);
    attn_core_reset(core);
    policy_agent_set_budget(t->agent, budget);
    policy_agent_begin_episode(t->agent);
    TraceSink sink = policy_agent_sink(t->agent);
    if (t->fwd_exact)
        forward_reset(t->fwd_exact);
    for (int32_t start = 0; start < t->E; start += t->T) {
        const int32_t *seg = ids + off + (size_t)start;
        DrrlStatus st = forward_tokens(t->fwd, seg, (size_t)t->T, t->logits, NULL, err);
        if (st)
            return st;
        st = attn_core_finish_call(core, (size_t)start, (size_t)t->T, NULL, &sink, 1, err);
        if (st)
            return st;
        double lm = 0;
        if (t->fwd_exact) {
            st = forward_tokens(t->fwd_exact, seg, (size_t)t->T, t->logits_exact, NULL, err);
            if (st)
                return st;
            lm = mean_loglik(t->logits, seg + 1, (size_t)t->T, V) -
                 mean_loglik(t->logits_exact, seg + 1, (size_t)t->T, V);
        }
        PolicyRewardTerms s;
        int n;
        policy_agent_end_segment(t->agent, &c->reward, lm, &s, &n);
        sum->fidelity += s.fidelity, sum->flops_frac += s.flops_frac, sum->band += s.band;
        sum->budget += s.budget, sum->lm += s.lm, sum->total += s.total;
        sum->error += s.error;
        *n_rew += n;
    }
    const FlopLedger *le = attn_core_flops_exact(core), *lx = attn_core_flops_executed(core);
    *ex += flops_attn(le);
    *ax += flops_attn(lx);
    return DRRL_OK;
}

/* The configuration against the model and the text. */
static DrrlStatus check_config(const Trainer *t, size_t n_ids, DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const ModelConfig *mc = &t->m->cfg;
    if (t->T < 1 || t->E % t->T || t->E < 2 * t->T)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: the episode length %d must be a multiple (>= 2) of "
                          "the segment %d",
                          t->E, t->T);
    if (mc->arch == MODEL_ARCH_GPT2 && t->E > mc->n_ctx)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: episodes of %d tokens exceed the model's %d positions",
                          t->E, mc->n_ctx);
    if (n_ids < (size_t)t->E + 1)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: the text has %zu tokens, an episode needs %d", n_ids,
                          t->E + 1);
    if (!(cfg->budget_lo > 0 && cfg->budget_lo <= cfg->budget_hi && cfg->budget_hi <= 1))
        return drrl_error(err, DRRL_E_USAGE, "train-policy: budget range must be in (0, 1]");
    if (cfg->reward.n_err_layer && cfg->reward.n_err_layer != mc->n_layer)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: --err-layers has %d factors, the model %d layers",
                          cfg->reward.n_err_layer, mc->n_layer);
    if (cfg->features < 1 || cfg->features > POLICY_FEATURES_VERSION)
        return drrl_error(err, DRRL_E_USAGE, "train-policy: --features must be 1 to %d",
                          POLICY_FEATURES_VERSION);
    if (cfg->episodes < 1 || cfg->steps < 1)
        return drrl_error(err, DRRL_E_USAGE, "train-policy: steps and episodes must be >= 1");
    return DRRL_OK;
}

/* Resume from a checkpoint: the network, Adam's state and the rng; its
 * grid and segment must be this run's (the caller frees t on failure). */
static DrrlStatus trainer_resume(Trainer *t, const char *resume_path, char *warn, size_t warn_n,
                                 int64_t *step0, DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const Model *m = t->m;
    DrrlStatus st =
        policy_file_load(resume_path, &t->net, &t->meta, &t->adam, &t->have_adam, err);
    if (st)
        return st;
    PolicyModelShape shape;
    policy_model_shape(m, t->meta.model.hash_algo, &shape);
    st = policy_file_check_model(resume_path, &t->meta, &shape, warn, warn_n, err);
    if (!st && (t->meta.n_grid != t->grid.n ||
                memcmp(t->meta.grid, t->grid.r, (size_t)t->grid.n * sizeof *t->grid.r)))
        st = drrl_error(err, DRRL_E_USAGE,
                        "%s: the checkpoint's rank grid differs from --rank-min/--rank-step",
                        resume_path);
    if (!st && t->meta.segment != t->T)
        st = drrl_error(err, DRRL_E_USAGE,
                        "%s: the checkpoint was trained with --segment %d, not %d", resume_path,
                        t->meta.segment, t->T);
    if (!st && !t->meta.has_rng)
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: not a checkpoint (no training state); cannot resume", resume_path);
    if (st)
        return st;
    memcpy(t->rng.s, t->meta.rng, sizeof t->rng.s);
    *step0 = t->meta.steps;
    if (!t->have_adam) {
        if ((st = policy_adam_init(&t->adam, t->net, cfg->ppo.lr, err)))
            return st;
        t->have_adam = 1;
    }
    t->adam.lr = cfg->ppo.lr;
    return DRRL_OK;
}

/* A fresh network from the seed (the caller frees t on failure). */
static DrrlStatus trainer_fresh(Trainer *t, DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const ModelConfig *mc = &t->m->cfg;
    policy_rng_seed(&t->rng, cfg->seed);
    PolicyNetConfig nc = {
        .n_feat = policy_features_count_v(t->grid.n, cfg->features),
        .conv_in = policy_features_conv_width(mc->n_kv_head, mc->head_dim),
        .conv_kernel = cfg->conv_kernel,
        .conv_out = cfg->conv_out,
        .n_layer = mc->n_layer,
        .n_head = mc->n_head,
        .n_action = t->grid.n,
        .d_model = cfg->d_model,
        .n_attn_head = cfg->n_attn_head,
        .d_ff = cfg->d_ff,
        .n_block = cfg->n_block,
        .prior_weight = cfg->prior_weight,
        .prior_energy = cfg->prior_energy,
    };
    DrrlStatus st;
    if ((st = policy_net_new(&nc, &t->rng, &t->net, err)) ||
        (st = policy_adam_init(&t->adam, t->net, cfg->ppo.lr, err)))
        return st;
    t->have_adam = 1;
    PolicyMeta *me = &t->meta;
    me->seed = cfg->seed;
    return DRRL_OK;
}

/* Metadata: what this run trains with (a resumed run keeps its seed). */
static void set_meta(Trainer *t)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const Model *m = t->m;
    PolicyMeta *me = &t->meta;
    me->n_grid = t->grid.n;
    memcpy(me->grid, t->grid.r, (size_t)t->grid.n * sizeof *t->grid.r);
    me->segment = t->T;
    me->reward = cfg->reward;
    me->budget_lo = cfg->budget_lo;
    me->budget_hi = cfg->budget_hi;
    me->eps_start = cfg->eps_start;
    me->eps_floor = cfg->eps_floor;
    me->eps_decay = cfg->eps_decay;
    policy_model_shape(m, MODEL_HASH_ALGO, &me->model);
    snprintf(me->command, sizeof me->command, "%s", cfg->command ? cfg->command : "");
}

/* The rollout buffer, the agent, the forward passes and the update's
 * cache (the caller frees t on failure). */
static DrrlStatus trainer_alloc(Trainer *t, PolicyNetCache **ucache, DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const Model *m = t->m;
    const ModelConfig *mc = &m->cfg;
    DrrlStatus st;
    if ((st = ppo_buffer_init(&t->buf, mc->n_head, t->net->cfg.n_feat, t->net->cfg.conv_in,
                              t->grid.n, err)) ||
        (st = policy_agent_new(m, t->net, t->grid.r, t->grid.n, t->T, cfg->budget_hi, &t->agent,
                               err)) ||
        (st = forward_new(m, (size_t)t->E, cfg->threads, &t->fwd, err)))
        return st;
    t->logits = malloc((size_t)t->T * mc->vocab * sizeof *t->logits);
    if (cfg->reward.lm != 0) {
        t->logits_exact = malloc((size_t)t->T * mc->vocab * sizeof *t->logits_exact);
        st = forward_new(m, (size_t)t->E, cfg->threads, &t->fwd_exact, err);
    }
    if (!st && (!t->logits || (cfg->reward.lm != 0 && !t->logits_exact)))
        st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    if (st)
        return st;
    policy_agent_bind_cache(t->agent, cache_k, cache_v, t->fwd);
    policy_agent_set_training(t->agent, &t->ep_rng, &t->buf);
    *ucache = policy_net_cache_new(t->net);
    if (!*ucache)
        return drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");

    return DRRL_OK;
}

/* This process's episodes of step `step` (e = rank, rank + N, ...), each
 * with its budget and offset from its own stream: the samples into t->buf,
 * a record per episode into *pack (with room for the advantages). */
static DrrlStatus run_episodes(Trainer *t, AttnCore *core, const int32_t *ids, size_t n_ids,
                               int64_t step, char **pack_out, size_t *n_out, DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    const PpoDist *d = cfg->dist;
    int rank = d ? d->rank : 0, np = d ? d->size : 1, H = t->buf.H;
    uint64_t seed = t->meta.seed;
    char *pack = NULL;
    size_t n_pack = 0;
    DrrlStatus st = DRRL_OK;
    for (int e = rank; e < cfg->episodes && !st; e += np) {
        policy_rng_seed(&t->ep_rng, stream_seed(seed, step, e));
        size_t off = (size_t)policy_rng_below(&t->ep_rng, (uint64_t)(n_ids - (size_t)t->E));
        double span = cfg->budget_hi - cfg->budget_lo;
        double budget = cfg->budget_lo + span * policy_rng_uniform(&t->ep_rng);
        PolicyRewardTerms sum;
        memset(&sum, 0, sizeof sum);
        int n_rew = 0, n0 = t->buf.n;
        double ex = 0, ax = 0;
        st = episode(t, core, ids, off, budget, &sum, &n_rew, &ex, &ax, err);
        if (st)
            break;
        EpRec er = {e,        t->buf.n - n0, n_rew,  sum.fidelity, sum.flops_frac,
                    sum.band, sum.budget,    sum.lm, sum.total,    ex,
                    ax,       sum.error};
        size_t need = n_pack + sizeof er + (size_t)er.n_samples * H * sizeof(float);
        char *np2 = realloc(pack, need);
        if (!np2) {
            st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
            break;
        }
        pack = np2;
        memcpy(pack + n_pack, &er, sizeof er);
        n_pack += sizeof er;
        /* advantages come later: reserve their room now */
        n_pack = need;
    }
    *pack_out = pack, *n_out = n_pack;
    return st;
}

/* The step's progress from its sums and the update's statistics. */
static void fill_progress(PolicyTrainProgress *p, int64_t step, int64_t steps,
                          const StepSums *ss, const PpoStats *ps, double eps)
{
    PolicyRewardTerms sum = ss->sum;
    int64_t n_rew = ss->n_rew;
    double ex = ss->ex, ax = ss->ax;
    memset(p, 0, sizeof *p);
    p->step = step + 1;
    p->steps = steps;
    double nr = n_rew ? n_rew : 1;
    p->reward = sum.total / nr;
    p->fidelity = sum.fidelity / nr;
    p->flops_frac = sum.flops_frac / nr;
    p->band = sum.band / nr;
    p->budget_excess = sum.budget / nr;
    p->lm = sum.lm / nr;
    p->error = sum.error / nr;
    p->attn_savings = ex > 0 ? 1.0 - ax / ex : 0.0;
    p->entropy = ps->entropy;
    p->approx_kl = ps->approx_kl;
    p->value_loss = ps->value_loss;
    p->clip_frac = ps->clip_frac;
    p->eps = eps;
    p->decisions = n_rew;
}

/* One PPO step: this process's episodes with the threshold of the step,
 * the advantages, the rollout shared with the other processes and the
 * update. */
static DrrlStatus train_step(Trainer *t, const int32_t *ids, size_t n_ids, int64_t step,
                             PolicyNetCache *ucache, StepSums *ss, PpoStats *ps, double *eps,
                             DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    AttnCoreConfig ac;
    attn_core_config_default(&ac);
    method_parse("drrl", &ac.method, NULL);
    ac.segment = t->T;
    ac.r_min = cfg->r_min;
    ac.r_step = cfg->r_step;
    ac.seed = cfg->seed;
    ac.measure = 1;
    ac.eps = *eps = eps_at(cfg, step);
    ac.rot_tol = cfg->rot_tol;
    AttnCore *core;
    DrrlStatus st = attn_core_new(&t->m->cfg, &ac, &core, err);
    if (st)
        return st;
    attn_core_bind_cache(core, cache_k, cache_v, t->fwd);
    attn_core_bind_pool(core, t->fwd);
    attn_core_set_chooser(core, policy_agent_choose, t->agent);
    ForwardAttn hook = attn_core_hook(core);
    forward_set_attn(t->fwd, &hook);
    ppo_buffer_clear(&t->buf);
    char *pack = NULL;
    size_t n_pack = 0;
    st = run_episodes(t, core, ids, n_ids, step, &pack, &n_pack, err);
    forward_set_attn(t->fwd, NULL);
    attn_core_free(core);
    if (st) {
        free(pack);
        return st;
    }
    ppo_compute_advantages(&t->buf, &cfg->ppo);
    /* the advantages into the records, each episode's samples in order */
    int H = t->buf.H;
    for (size_t off = 0, i = 0; off < n_pack;) {
        EpRec er;
        memcpy(&er, pack + off, sizeof er);
        off += sizeof er;
        for (int64_t j = 0; j < er.n_samples; j++, i++, off += (size_t)H * sizeof(float))
            memcpy(pack + off, t->buf.s[i].adv, (size_t)H * sizeof(float));
    }
    PpoLayout lay;
    int *owner = NULL, *local = NULL;
    float *adv = NULL;
    st = share_rollout(t, pack, n_pack, &lay, &owner, &local, &adv, ss, err);
    free(pack);
    if (!st) {
        PolicyRng urng;
        policy_rng_seed(&urng, stream_seed(t->meta.seed, step, -1));
        st = ppo_update_dist(t->net, ucache, &t->adam, &t->buf, &lay, cfg->dist, &cfg->ppo,
                             &urng, ps, err);
    }
    free(owner), free(local), free(adv);
    return st;
}

/* The steps from step0: progress, checkpoints and a stop asked for by the
 * callback, agreed between the processes. */
static DrrlStatus train_steps(Trainer *t, const int32_t *ids, size_t n_ids, int64_t step0,
                              PolicyNetCache *ucache, PolicyTrainCallback cb, void *cb_ctx,
                              DrrlError *err)
{
    const PolicyTrainConfig *cfg = t->cfg;
    DrrlStatus st = DRRL_OK;
    double t0 = clock_now_s();
    if (step0 >= cfg->steps)
        st = save(t, step0, err); /* nothing left to do: write the checkpoint as is */
    for (int64_t step = step0; step < cfg->steps; step++) {
        StepSums ss;
        PpoStats ps;
        double eps;
        if ((st = train_step(t, ids, n_ids, step, ucache, &ss, &ps, &eps, err)))
            break;
        PolicyTrainProgress p;
        fill_progress(&p, step, cfg->steps, &ss, &ps, eps);
        int last = step + 1 == cfg->steps;
        int stop = 0;
        p.checkpoint =
            last || (cfg->checkpoint_every > 0 && (step + 1) % cfg->checkpoint_every == 0);
        if (p.checkpoint)
            st = save(t, step + 1, err);
        p.wall_s = clock_now_s() - t0;
        if (cb && !st)
            stop = cb(cb_ctx, &p);
        if (agree(cfg->dist, &st, &stop, err)) /* every process stops together */
            break;
        if (stop && !last) {
            if (!p.checkpoint && (st = save(t, step + 1, err)))
                break;
            st = drrl_error(err, DRRL_E_INTERRUPTED,
                            "train-policy: interrupted after step %lld; checkpoint saved to %s "
                            "(continue with --resume)",
                            (long long)(step + 1), cfg->out_path);
            break;
        }
    }
    return st;
}

DrrlStatus policy_train(const Model *m, const int32_t *ids, size_t n_ids,
                        const PolicyTrainConfig *cfg, const char *resume_path,
                        PolicyTrainCallback cb, void *cb_ctx, char *warn, size_t warn_n,
                        DrrlError *err)
{
    if (warn && warn_n)
        warn[0] = '\0';
    Trainer t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.cfg = cfg;
    t.T = cfg->segment;
    t.E = cfg->episode_len > 0 ? cfg->episode_len : 8 * cfg->segment;
    DrrlStatus st = check_config(&t, n_ids, err);
    if (!st)
        st = method_grid(&t.grid, m->cfg.head_dim, cfg->r_min, cfg->r_step, err);
    if (st)
        return st;
    int64_t step0 = 0;
    PolicyNetCache *ucache = NULL;
    st = resume_path ? trainer_resume(&t, resume_path, warn, warn_n, &step0, err)
                     : trainer_fresh(&t, err);
    if (!st) {
        set_meta(&t);
        st = trainer_alloc(&t, &ucache, err);
    }
    if (st) {
        trainer_done(&t);
        return st;
    }
    /* OpenBLAS at one thread throughout: its results for some products
     * depend on its thread count, which differs between a plain run (every
     * core) and an MPI rank (bound to one core); the products here are
     * small, and the forward runs on threads of its own. */
    int blas_saved = blas_serial_begin();
    st = train_steps(&t, ids, n_ids, step0, ucache, cb, cb_ctx, err);
    blas_serial_end(blas_saved);
    policy_net_cache_free(ucache);
    trainer_done(&t);
    return st;
}
