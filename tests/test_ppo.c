/* PPO: the per-decision loss gradient against finite differences, GAE
 * against a hand computation, the safety mask, determinism, and a real
 * learning test on a contextual bandit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy/ppo.h"

Test(ppo, masked_softmax_and_argmax)
{
    float z[4] = {3.0f, 1.0f, 2.0f, 5.0f};
    uint8_t m[4] = {1, 1, 1, 0};
    double p[4];
    double lse = ppo_masked_softmax(z, m, 4, p);
    cr_assert_eq(p[3], 0.0);
    cr_assert_float_eq(p[0] + p[1] + p[2], 1.0, 1e-12);
    cr_assert_float_eq(lse, log(exp(3.0) + exp(1.0) + exp(2.0)), 1e-9);
    cr_assert_eq(ppo_argmax(z, m, 4), 0);
    uint8_t none[4] = {0};
    cr_assert_eq(ppo_masked_softmax(z, none, 4, p), -INFINITY);
    cr_assert_eq(ppo_argmax(z, none, 4), -1);
    PolicyRng rng;
    policy_rng_seed(&rng, 5);
    ppo_masked_softmax(z, m, 4, p);
    for (int i = 0; i < 2000; i++)
        cr_assert_neq(ppo_sample(p, 4, &rng), 3);
}

/* Finite differences of ppo_decision_loss with respect to the logits and the
 * value, in every regime of the clipped objective. */
Test(ppo, decision_loss_gradient_matches_finite_differences)
{
    PpoConfig cfg;
    ppo_config_default(&cfg);
    cfg.ent_coef = 0.05;
    const float z0[5] = {0.3f, -0.7f, 1.1f, 0.2f, -0.4f};
    const uint8_t mask[5] = {1, 1, 0, 1, 1};
    /* (logp_old offset, adv): ratio inside the clip, above it, below it, both signs. */
    const double cases[][2] = {{0.0, 1.0},   {0.0, -1.3}, {-0.5, 0.8},
                               {-0.5, -0.8}, {0.5, 0.7},  {0.5, -0.9}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float z[5], dz[5], dv;
        memcpy(z, z0, sizeof z);
        double p[5];
        double lse = ppo_masked_softmax(z, mask, 5, p);
        double logp_old = (z[3] - lse) + cases[c][0];
        double adv = cases[c][1];
        ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4, 1.1, dz, &dv, NULL, NULL,
                          NULL);
        for (int j = 0; j < 5; j++) {
            const float eps = 1e-3f;
            float dd;
            float save = z[j];
            z[j] = save + eps;
            double lp = ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4, 1.1, dz + 0,
                                          &dd, NULL, NULL, NULL);
            z[j] = save - eps;
            double lm = ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4, 1.1, dz + 0,
                                          &dd, NULL, NULL, NULL);
            z[j] = save;
            float g[5];
            ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4, 1.1, g, &dd, NULL, NULL,
                              NULL);
            double fd = (lp - lm) / (2.0 * (double)eps);
            cr_expect_float_eq(g[j], fd, 2e-4, "case %zu logit %d: analytic %g fd %g", c, j,
                               (double)g[j], fd);
            if (!mask[j])
                cr_expect_eq(g[j], 0.0f);
        }
        double vp = ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4 + 1e-4, 1.1, dz,
                                      &dv, NULL, NULL, NULL);
        double vm = ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4 - 1e-4, 1.1, dz,
                                      &dv, NULL, NULL, NULL);
        ppo_decision_loss(&cfg, z, mask, 5, 3, logp_old, adv, 0.4, 1.1, dz, &dv, NULL, NULL,
                          NULL);
        cr_expect_float_eq(dv, (vp - vm) / 2e-4, 1e-6);
    }
}

Test(ppo, gae_matches_hand_computation)
{
    PpoBuffer b;
    cr_assert_eq(ppo_buffer_init(&b, 1, 1, 1, 2, NULL), DRRL_OK);
    PpoConfig cfg;
    ppo_config_default(&cfg);
    cfg.discount = 0.9;
    cfg.gae_lambda = 0.8;
    float f = 0, x = 0, lp = 0;
    uint8_t m[2] = {1, 1};
    int32_t a = 0;
    const float v[3] = {0.5f, 0.2f, -0.1f}, r[3] = {1.0f, 0.0f, 2.0f};
    int idx[3], prev = -1;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ppo_buffer_add(&b, prev, 0, &f, &x, 1, m, &a, &lp, &v[i], &idx[i], NULL),
                     DRRL_OK);
        b.s[idx[i]].reward[0] = r[i];
        prev = idx[i];
    }
    /* A second, unlinked trajectory must not leak into the first. */
    int other;
    float v9 = 9.0f;
    cr_assert_eq(ppo_buffer_add(&b, -1, 0, &f, &x, 1, m, &a, &lp, &v9, &other, NULL), DRRL_OK);
    cr_assert_eq(ppo_buffer_add(&b, idx[0], 0, &f, &x, 1, m, &a, &lp, &v9, &other, NULL),
                 DRRL_E_USAGE);
    ppo_compute_advantages(&b, &cfg);
    double d2 = 2.0 - (-0.1);
    double d1 = 0.0 + 0.9 * -0.1 - 0.2;
    double d0 = 1.0 + 0.9 * 0.2 - 0.5;
    double a2 = d2, a1 = d1 + 0.72 * a2, a0 = d0 + 0.72 * a1;
    cr_assert_float_eq(b.s[idx[2]].adv[0], a2, 1e-6);
    cr_assert_float_eq(b.s[idx[1]].adv[0], a1, 1e-6);
    cr_assert_float_eq(b.s[idx[0]].adv[0], a0, 1e-6);
    cr_assert_float_eq(b.s[idx[0]].ret[0], a0 + 0.5, 1e-6);
    cr_assert_float_eq(b.s[3].adv[0], -9.0, 1e-6);
    ppo_buffer_done(&b);
}

/* ---- contextual bandit -------------------------------------------------- */

enum { BH = 2, BF = 4, BC = 2, BT = 3, BG = 4 };

/* Reward of arm a in context c: the arm matching the context pays 1, arm 3
 * pays 0.5 everywhere, the others 0. */
static float bandit_reward(int c, int a)
{
    return a == c ? 1.0f : a == 3 ? 0.5f : 0.0f;
}

static void bandit_state(PolicyRng *rng, const int *ctx, float *feat, float *x)
{
    for (int h = 0; h < BH; h++) {
        for (int i = 0; i < BF; i++)
            feat[h * BF + i] = 0.0f;
        feat[h * BF + ctx[h]] = 1.0f;
        feat[h * BF + 3] = 1.0f;
    }
    for (int i = 0; i < BT * BC; i++)
        x[i] = (float)policy_rng_normal(rng);
}

typedef struct BanditRun {
    PolicyNet *net;
    PolicyNetCache *cache;
    double first_reward, last_reward;
} BanditRun;

/* A network for the bandit's heads, features and arms, of width d_model. */
static PolicyNetConfig bandit_net(int d_model, int d_ff)
{
    PolicyNetConfig nc = {.n_feat = BF,
                          .conv_in = BC,
                          .conv_kernel = 2,
                          .conv_out = 2,
                          .n_layer = 1,
                          .n_head = BH,
                          .n_action = BG,
                          .d_model = d_model,
                          .n_attn_head = 2,
                          .d_ff = d_ff,
                          .n_block = 1};
    return nc;
}

/* Train on the bandit; mask_arm0 forbids arm 0 for every head. */
static BanditRun bandit_train(uint64_t seed, int mask_arm0, int iters)
{
    PolicyNetConfig nc = bandit_net(16, 32);
    PolicyRng rng;
    policy_rng_seed(&rng, seed);
    BanditRun run = {0};
    cr_assert_eq(policy_net_new(&nc, &rng, &run.net, NULL), DRRL_OK);
    run.cache = policy_net_cache_new(run.net);
    PpoConfig cfg;
    ppo_config_default(&cfg);
    cfg.lr = 3e-3;
    PolicyAdam opt;
    cr_assert_eq(policy_adam_init(&opt, run.net, cfg.lr, NULL), DRRL_OK);
    PpoBuffer buf;
    cr_assert_eq(ppo_buffer_init(&buf, BH, BF, BC, BG, NULL), DRRL_OK);
    uint8_t mask[BH * BG];
    for (int i = 0; i < BH * BG; i++)
        mask[i] = !(mask_arm0 && i % BG == 0);
    for (int it = 0; it < iters; it++) {
        ppo_buffer_clear(&buf);
        double total = 0;
        for (int n = 0; n < 64; n++) {
            int ctx[BH];
            float feat[BH * BF], x[BT * BC], logp[BH], value[BH];
            int32_t act[BH];
            for (int h = 0; h < BH; h++)
                ctx[h] = (int)policy_rng_below(&rng, 3);
            bandit_state(&rng, ctx, feat, x);
            PolicyNetInput in = {.layer = 0, .feat = feat, .conv_x = x, .T = BT};
            cr_assert_eq(
                ppo_act(run.net, run.cache, &in, mask, &rng, act, logp, value, NULL, NULL),
                DRRL_OK);
            int idx;
            cr_assert_eq(
                ppo_buffer_add(&buf, -1, 0, feat, x, BT, mask, act, logp, value, &idx, NULL),
                DRRL_OK);
            for (int h = 0; h < BH; h++) {
                cr_assert(mask[h * BG + act[h]], "a masked arm was sampled");
                buf.s[idx].reward[h] = bandit_reward(ctx[h], act[h]);
                total += buf.s[idx].reward[h];
            }
        }
        if (it == 0)
            run.first_reward = total / (64 * BH);
        run.last_reward = total / (64 * BH);
        ppo_compute_advantages(&buf, &cfg);
        PpoStats stats;
        cr_assert_eq(ppo_update(run.net, run.cache, &opt, &buf, &cfg, &rng, &stats, NULL),
                     DRRL_OK);
        cr_assert(isfinite(stats.policy_loss) && isfinite(stats.value_loss));
    }
    ppo_buffer_done(&buf);
    policy_adam_done(&opt);
    return run;
}

static int greedy_arm(BanditRun *run, int c0, int c1, int head, const uint8_t *mask)
{
    int ctx[BH] = {c0, c1};
    float feat[BH * BF], x[BT * BC], logp[BH], value[BH];
    int32_t act[BH];
    PolicyRng r;
    policy_rng_seed(&r, 77);
    bandit_state(&r, ctx, feat, x);
    PolicyNetInput in = {.layer = 0, .feat = feat, .conv_x = x, .T = BT};
    cr_assert_eq(ppo_act(run->net, run->cache, &in, mask, NULL, act, logp, value, NULL, NULL),
                 DRRL_OK);
    return act[head];
}

Test(ppo, learns_the_best_arm_of_a_contextual_bandit)
{
    /* 80 iterations: at 40 the arms learnt depend on OpenBLAS's kernel (all 18
     * right on an AMD EPYC, 16 of 18 on an Intel Xeon), so it is not a test of PPO. */
    BanditRun run = bandit_train(2026, 0, 80);
    uint8_t mask[BH * BG];
    memset(mask, 1, sizeof mask);
    /* Uniform play earns (1 + 0.5) / 4 = 0.375; the optimum is 1. */
    cr_assert_lt(run.first_reward, 0.6, "first %g", run.first_reward);
    cr_assert_gt(run.last_reward, 0.85, "last %g", run.last_reward);
    for (int c0 = 0; c0 < 3; c0++)
        for (int c1 = 0; c1 < 3; c1++) {
            cr_expect_eq(greedy_arm(&run, c0, c1, 0, mask), c0);
            cr_expect_eq(greedy_arm(&run, c0, c1, 1, mask), c1);
        }
    policy_net_cache_free(run.cache);
    policy_net_free(run.net);
}

Test(ppo, learns_the_best_allowed_arm_under_the_mask)
{
    BanditRun run = bandit_train(7, 1, 40);
    uint8_t mask[BH * BG];
    for (int i = 0; i < BH * BG; i++)
        mask[i] = i % BG != 0;
    for (int c = 0; c < 3; c++) {
        int a = greedy_arm(&run, c, c, 0, mask);
        cr_expect_eq(a, c == 0 ? 3 : c, "context %d: arm %d", c, a);
    }
    policy_net_cache_free(run.cache);
    policy_net_free(run.net);
}

Test(ppo, training_is_deterministic_by_seed)
{
    BanditRun a = bandit_train(11, 0, 3), b = bandit_train(11, 0, 3);
    cr_assert_eq(a.net->n_params, b.net->n_params);
    cr_assert_eq(memcmp(a.net->params, b.net->params, a.net->n_params * sizeof(float)), 0);
    BanditRun c = bandit_train(12, 0, 3);
    cr_assert_neq(memcmp(a.net->params, c.net->params, a.net->n_params * sizeof(float)), 0);
    BanditRun *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        policy_net_cache_free(all[i]->cache);
        policy_net_free(all[i]->net);
    }
}

Test(ppo, empty_mask_is_an_error)
{
    PolicyNetConfig nc = bandit_net(8, 8);
    PolicyRng rng;
    policy_rng_seed(&rng, 1);
    PolicyNet *net;
    cr_assert_eq(policy_net_new(&nc, &rng, &net, NULL), DRRL_OK);
    PolicyNetCache *cache = policy_net_cache_new(net);
    float feat[BH * BF] = {0}, logp[BH], value[BH];
    int32_t act[BH];
    uint8_t mask[BH * BG] = {1, 1, 1, 1, 0, 0, 0, 0};
    PolicyNetInput in = {.layer = 0, .feat = feat, .conv_x = NULL, .T = 0};
    DrrlError err;
    cr_assert_eq(ppo_act(net, cache, &in, mask, &rng, act, logp, value, NULL, &err),
                 DRRL_E_INTERNAL);
    cr_assert(strstr(err.msg, "head 1"));
    policy_net_cache_free(cache);
    policy_net_free(net);
}
