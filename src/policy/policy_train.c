#include "policy/policy_train.h"

#include "base/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn_core.h"
#include "base/clock.h"
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
        float mx = z[0];
        for (int j = 1; j < V; j++)
            if (z[j] > mx)
                mx = z[j];
        double s = 0;
        for (int j = 0; j < V; j++)
            s += exp((double)z[j] - mx);
        acc += (double)z[next[i]] - mx - log(s);
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
    PolicyRng rng;
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

static DrrlStatus save(Trainer *t, int64_t step, DrrlError *err)
{
    t->meta.steps = step;
    t->meta.adam_t = t->adam.t;
    t->meta.has_rng = 1;
    memcpy(t->meta.rng, t->rng.s, sizeof t->meta.rng);
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
        *n_rew += n;
    }
    const FlopLedger *le = attn_core_flops_exact(core), *lx = attn_core_flops_executed(core);
    *ex += flops_attn(le);
    *ax += flops_attn(lx);
    return DRRL_OK;
}

DrrlStatus policy_train(const Model *m, const int32_t *ids, size_t n_ids,
                        const PolicyTrainConfig *cfg, const char *resume_path,
                        PolicyTrainCallback cb, void *cb_ctx, char *warn, size_t warn_n,
                        DrrlError *err)
{
    if (warn && warn_n)
        warn[0] = '\0';
    const ModelConfig *mc = &m->cfg;
    Trainer t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.cfg = cfg;
    t.T = cfg->segment;
    t.E = cfg->episode_len > 0 ? cfg->episode_len : 8 * cfg->segment;
    if (t.T < 1 || t.E % t.T || t.E < 2 * t.T)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: the episode length %d must be a multiple (>= 2) of "
                          "the segment %d",
                          t.E, t.T);
    if (mc->arch == MODEL_ARCH_GPT2 && t.E > mc->n_ctx)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: episodes of %d tokens exceed the model's %d positions",
                          t.E, mc->n_ctx);
    if (n_ids < (size_t)t.E + 1)
        return drrl_error(err, DRRL_E_USAGE,
                          "train-policy: the text has %zu tokens, an episode needs %d", n_ids,
                          t.E + 1);
    if (!(cfg->budget_lo > 0 && cfg->budget_lo <= cfg->budget_hi && cfg->budget_hi <= 1))
        return drrl_error(err, DRRL_E_USAGE, "train-policy: budget range must be in (0, 1]");
    if (cfg->episodes < 1 || cfg->steps < 1)
        return drrl_error(err, DRRL_E_USAGE, "train-policy: steps and episodes must be >= 1");
    DrrlStatus st = method_grid(&t.grid, mc->head_dim, cfg->r_min, cfg->r_step, err);
    if (st)
        return st;

    int64_t step0 = 0;
    if (resume_path) {
        st = policy_file_load(resume_path, &t.net, &t.meta, &t.adam, &t.have_adam, err);
        if (st)
            return st;
        PolicyModelShape shape;
        snprintf(shape.arch, sizeof shape.arch, "%s", model_arch_short(mc->arch));
        shape.n_layer = mc->n_layer, shape.n_head = mc->n_head, shape.n_kv_head = mc->n_kv_head;
        shape.head_dim = mc->head_dim, shape.d_model = mc->d_model;
        snprintf(shape.hash, sizeof shape.hash, "%s", m->hash);
        st = policy_file_check_model(resume_path, &t.meta, &shape, warn, warn_n, err);
        if (!st && (t.meta.n_grid != t.grid.n ||
                    memcmp(t.meta.grid, t.grid.r, (size_t)t.grid.n * sizeof *t.grid.r)))
            st =
                drrl_error(err, DRRL_E_USAGE,
                           "%s: the checkpoint's rank grid differs from --rank-min/--rank-step",
                           resume_path);
        if (!st && t.meta.segment != t.T)
            st = drrl_error(err, DRRL_E_USAGE,
                            "%s: the checkpoint was trained with --segment %d, not %d",
                            resume_path, t.meta.segment, t.T);
        if (!st && !t.meta.has_rng)
            st = drrl_error(err, DRRL_E_INPUT,
                            "%s: not a checkpoint (no training state); cannot resume",
                            resume_path);
        if (st) {
            trainer_done(&t);
            return st;
        }
        memcpy(t.rng.s, t.meta.rng, sizeof t.rng.s);
        step0 = t.meta.steps;
        if (!t.have_adam) {
            if ((st = policy_adam_init(&t.adam, t.net, cfg->ppo.lr, err))) {
                trainer_done(&t);
                return st;
            }
            t.have_adam = 1;
        }
        t.adam.lr = cfg->ppo.lr;
    } else {
        policy_rng_seed(&t.rng, cfg->seed);
        PolicyNetConfig nc = {
            .n_feat = policy_features_count(t.grid.n),
            .conv_in = policy_features_conv_width(mc->n_kv_head, mc->head_dim),
            .conv_kernel = cfg->conv_kernel,
            .conv_out = cfg->conv_out,
            .n_layer = mc->n_layer,
            .n_head = mc->n_head,
            .n_action = t.grid.n,
            .d_model = cfg->d_model,
            .n_attn_head = cfg->n_attn_head,
            .d_ff = cfg->d_ff,
            .n_block = cfg->n_block,
        };
        if ((st = policy_net_new(&nc, &t.rng, &t.net, err)))
            return st;
        if ((st = policy_adam_init(&t.adam, t.net, cfg->ppo.lr, err))) {
            trainer_done(&t);
            return st;
        }
        t.have_adam = 1;
        PolicyMeta *me = &t.meta;
        me->seed = cfg->seed;
    }
    /* Metadata: what this run trains with (a resumed run keeps its seed). */
    PolicyMeta *me = &t.meta;
    me->n_grid = t.grid.n;
    memcpy(me->grid, t.grid.r, (size_t)t.grid.n * sizeof *t.grid.r);
    me->segment = t.T;
    me->reward = cfg->reward;
    me->budget_lo = cfg->budget_lo;
    me->budget_hi = cfg->budget_hi;
    me->eps_start = cfg->eps_start;
    me->eps_floor = cfg->eps_floor;
    me->eps_decay = cfg->eps_decay;
    snprintf(me->model.arch, sizeof me->model.arch, "%s", model_arch_short(mc->arch));
    me->model.n_layer = mc->n_layer, me->model.n_head = mc->n_head;
    me->model.n_kv_head = mc->n_kv_head, me->model.head_dim = mc->head_dim;
    me->model.d_model = mc->d_model;
    snprintf(me->model.hash, sizeof me->model.hash, "%s", m->hash);
    snprintf(me->command, sizeof me->command, "%s", cfg->command ? cfg->command : "");

    if ((st = ppo_buffer_init(&t.buf, mc->n_head, t.net->cfg.n_feat, t.net->cfg.conv_in,
                              t.grid.n, err)) ||
        (st = policy_agent_new(m, t.net, t.grid.r, t.grid.n, t.T, cfg->budget_hi, &t.agent,
                               err)) ||
        (st = forward_new(m, (size_t)t.E, cfg->threads, &t.fwd, err))) {
        trainer_done(&t);
        return st;
    }
    t.logits = malloc((size_t)t.T * mc->vocab * sizeof *t.logits);
    if (cfg->reward.lm != 0) {
        t.logits_exact = malloc((size_t)t.T * mc->vocab * sizeof *t.logits_exact);
        st = forward_new(m, (size_t)t.E, cfg->threads, &t.fwd_exact, err);
    }
    if (!st && (!t.logits || (cfg->reward.lm != 0 && !t.logits_exact)))
        st = drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    if (st) {
        trainer_done(&t);
        return st;
    }
    policy_agent_bind_cache(t.agent, cache_k, cache_v, t.fwd);
    policy_agent_set_training(t.agent, &t.rng, &t.buf);
    PolicyNetCache *ucache = policy_net_cache_new(t.net);
    if (!ucache) {
        trainer_done(&t);
        return drrl_error(err, DRRL_E_NOMEM, "train-policy: out of memory");
    }

    double t0 = clock_now_s();
    if (step0 >= cfg->steps)
        st = save(&t, step0, err); /* nothing left to do: write the checkpoint as is */
    for (int64_t step = step0; step < cfg->steps; step++) {
        AttnCoreConfig ac;
        attn_core_config_default(&ac);
        method_parse("drrl", &ac.method, NULL);
        ac.segment = t.T;
        ac.r_min = cfg->r_min;
        ac.r_step = cfg->r_step;
        ac.seed = cfg->seed;
        ac.measure = 1;
        ac.eps = eps_at(cfg, step);
        ac.rot_tol = cfg->rot_tol;
        AttnCore *core;
        if ((st = attn_core_new(mc, &ac, &core, err)))
            break;
        attn_core_bind_cache(core, cache_k, cache_v, t.fwd);
        attn_core_set_chooser(core, policy_agent_choose, t.agent);
        ForwardAttn hook = attn_core_hook(core);
        forward_set_attn(t.fwd, &hook);

        ppo_buffer_clear(&t.buf);
        PolicyRewardTerms sum;
        memset(&sum, 0, sizeof sum);
        int n_rew = 0;
        double ex = 0, ax = 0;
        for (int e = 0; e < cfg->episodes && !st; e++) {
            size_t off = (size_t)policy_rng_below(&t.rng, (uint64_t)(n_ids - (size_t)t.E));
            double span = cfg->budget_hi - cfg->budget_lo;
            double budget = cfg->budget_lo + span * policy_rng_uniform(&t.rng);
            st = episode(&t, core, ids, off, budget, &sum, &n_rew, &ex, &ax, err);
        }
        forward_set_attn(t.fwd, NULL);
        attn_core_free(core);
        if (st)
            break;
        ppo_compute_advantages(&t.buf, &cfg->ppo);
        PpoStats ps;
        if ((st = ppo_update(t.net, ucache, &t.adam, &t.buf, &cfg->ppo, &t.rng, &ps, err)))
            break;

        PolicyTrainProgress p;
        memset(&p, 0, sizeof p);
        p.step = step + 1;
        p.steps = cfg->steps;
        double nr = n_rew ? n_rew : 1;
        p.reward = sum.total / nr;
        p.fidelity = sum.fidelity / nr;
        p.flops_frac = sum.flops_frac / nr;
        p.band = sum.band / nr;
        p.budget_excess = sum.budget / nr;
        p.lm = sum.lm / nr;
        p.attn_savings = ex > 0 ? 1.0 - ax / ex : 0.0;
        p.entropy = ps.entropy;
        p.approx_kl = ps.approx_kl;
        p.value_loss = ps.value_loss;
        p.clip_frac = ps.clip_frac;
        p.eps = ac.eps;
        p.decisions = n_rew;
        int last = step + 1 == cfg->steps;
        int stop = 0;
        p.checkpoint =
            last || (cfg->checkpoint_every > 0 && (step + 1) % cfg->checkpoint_every == 0);
        if (p.checkpoint && (st = save(&t, step + 1, err)))
            break;
        p.wall_s = clock_now_s() - t0;
        if (cb)
            stop = cb(cb_ctx, &p);
        if (stop && !last) {
            if (!p.checkpoint && (st = save(&t, step + 1, err)))
                break;
            st = drrl_error(err, DRRL_E_INTERRUPTED,
                            "train-policy: stopped after step %lld; checkpoint saved to %s "
                            "(continue with --resume)",
                            (long long)(step + 1), cfg->out_path);
            break;
        }
    }
    policy_net_cache_free(ucache);
    trainer_done(&t);
    return st;
}
