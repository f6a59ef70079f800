/* Policy network: shapes, determinism, and a finite-difference check of the
 * hand-written backward pass over every parameter block. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy_features.h"
#include "policy/policy_net.h"
#include "policy/policy_rng.h"

static PolicyNetConfig small_cfg(void)
{
    PolicyNetConfig c = {.n_feat = 5,
                         .conv_in = 6,
                         .conv_kernel = 3,
                         .conv_out = 3,
                         .n_layer = 2,
                         .n_head = 3,
                         .n_action = 4,
                         .d_model = 8,
                         .n_attn_head = 2,
                         .d_ff = 12,
                         .n_block = 2};
    return c;
}

typedef struct Fixture {
    PolicyNet *net;
    PolicyNetCache *cache;
    float feat[3 * 5];
    float x[7 * 6];
    float wl[3 * 4], wv[3];
    PolicyNetInput in;
} Fixture;

static void fixture_init(Fixture *f, int T, uint64_t seed)
{
    PolicyNetConfig c = small_cfg();
    PolicyRng rng;
    policy_rng_seed(&rng, seed);
    DrrlError err;
    cr_assert_eq(policy_net_new(&c, &rng, &f->net, &err), DRRL_OK, "%s", err.msg);
    /* Perturb every parameter (gains, biases and the small actor included) so
     * no block sits at a special point where a wrong gradient could hide. */
    for (size_t i = 0; i < f->net->n_params; i++)
        f->net->params[i] += (float)(0.3 * policy_rng_normal(&rng));
    f->cache = policy_net_cache_new(f->net);
    cr_assert_not_null(f->cache);
    for (int i = 0; i < 15; i++)
        f->feat[i] = (float)policy_rng_normal(&rng);
    for (int i = 0; i < 42; i++)
        f->x[i] = (float)policy_rng_normal(&rng);
    for (int i = 0; i < 12; i++)
        f->wl[i] = (float)policy_rng_normal(&rng);
    for (int i = 0; i < 3; i++)
        f->wv[i] = (float)policy_rng_normal(&rng);
    f->in = (PolicyNetInput){.layer = 1, .feat = f->feat, .conv_x = f->x, .T = T};
}

static void fixture_done(Fixture *f)
{
    policy_net_cache_free(f->cache);
    policy_net_free(f->net);
}

/* A scalar loss that depends on every output: sum wl*logits + sum wv*value,
 * plus a quadratic term so the output gradient is not constant. */
static double loss_of(Fixture *f, float *dl, float *dv)
{
    float logits[12], value[3];
    DrrlError err;
    cr_assert_eq(policy_net_forward(f->net, f->cache, &f->in, logits, value, &err), DRRL_OK);
    double L = 0;
    for (int i = 0; i < 12; i++) {
        L += f->wl[i] * logits[i] + 0.5 * logits[i] * logits[i];
        if (dl)
            dl[i] = f->wl[i] + logits[i];
    }
    for (int i = 0; i < 3; i++) {
        L += f->wv[i] * value[i] + 0.5 * value[i] * value[i];
        if (dv)
            dv[i] = f->wv[i] + value[i];
    }
    return L;
}

static void check_gradients(int T)
{
    Fixture f;
    fixture_init(&f, T, 42 + (uint64_t)T);
    float dl[12], dv[3];
    policy_net_zero_grad(f.net);
    loss_of(&f, dl, dv);
    policy_net_backward(f.net, f.cache, dl, dv);
    float *an = malloc(f.net->n_params * sizeof(float));
    memcpy(an, f.net->grads, f.net->n_params * sizeof(float));
    const float eps = 1e-2f;
    for (int b = 0; b < f.net->n_blocks; b++) {
        const PolicyNetBlock *blk = &f.net->blocks[b];
        double dd = 0, na = 0;
        for (size_t i = 0; i < blk->numel; i++) {
            float *p = &f.net->params[blk->offset + i], save = *p;
            *p = save + eps;
            double lp = loss_of(&f, NULL, NULL);
            *p = save - eps;
            double lm = loss_of(&f, NULL, NULL);
            *p = save;
            double fd = (lp - lm) / (2.0 * eps), g = an[blk->offset + i];
            dd += (fd - g) * (fd - g);
            na += g * g;
        }
        dd = sqrt(dd);
        na = sqrt(na);
        int conv = !strncmp(blk->name, "conv.", 5);
        int other_layer_rows = !strcmp(blk->name, "layer_emb");
        if (T == 0 && conv) {
            cr_expect_eq(na, 0.0, "%s: gradient must be zero without a segment", blk->name);
            continue;
        }
        /* Every block must influence the loss (else this test could not fail). */
        cr_expect_gt(na, 1e-3, "%s: analytic gradient is zero", blk->name);
        cr_expect_leq(dd, 2e-2 * na + 1e-3, "%s (T=%d): |fd - analytic| = %g, |analytic| = %g",
                      blk->name, T, dd, na);
        (void)other_layer_rows;
    }
    /* Rows of the layer embedding for another layer get nothing. */
    const PolicyNetBlock *le = policy_net_find(f.net, "layer_emb");
    for (int d = 0; d < 8; d++)
        cr_expect_eq(an[le->offset + d], 0.0f);
    free(an);
    fixture_done(&f);
}

Test(policy_net, backward_matches_finite_differences)
{
    check_gradients(7);
}

Test(policy_net, backward_without_segment)
{
    check_gradients(0);
}

Test(policy_net, forward_is_deterministic_and_finite)
{
    Fixture a, b;
    fixture_init(&a, 7, 9);
    fixture_init(&b, 7, 9);
    float la[12], va[3], lb[12], vb[3];
    cr_assert_eq(policy_net_forward(a.net, a.cache, &a.in, la, va, NULL), DRRL_OK);
    cr_assert_eq(policy_net_forward(b.net, b.cache, &b.in, lb, vb, NULL), DRRL_OK);
    cr_assert_eq(memcmp(la, lb, sizeof la), 0);
    cr_assert_eq(memcmp(va, vb, sizeof va), 0);
    for (int i = 0; i < 12; i++)
        cr_assert(isfinite(la[i]));
    /* Heads attend to each other: changing head 0's features moves head 2. */
    a.feat[0] += 1.0f;
    float lc[12], vc[3];
    cr_assert_eq(policy_net_forward(a.net, a.cache, &a.in, lc, vc, NULL), DRRL_OK);
    cr_assert_neq(lc[2 * 4], la[2 * 4]);
    fixture_done(&a);
    fixture_done(&b);
}

Test(policy_net, bad_config_and_input_are_errors)
{
    PolicyNetConfig c = small_cfg();
    c.d_model = 9;
    PolicyRng rng;
    policy_rng_seed(&rng, 1);
    PolicyNet *net = (PolicyNet *)1;
    DrrlError err;
    cr_assert_eq(policy_net_new(&c, &rng, &net, &err), DRRL_E_USAGE);
    cr_assert_null(net);
    cr_assert(strstr(err.msg, "n_attn_head"));
    Fixture f;
    fixture_init(&f, 3, 1);
    f.in.layer = 2;
    float l[12], v[3];
    cr_assert_eq(policy_net_forward(f.net, f.cache, &f.in, l, v, &err), DRRL_E_USAGE);
    fixture_done(&f);
    policy_net_free(NULL);
}

Test(policy_net, adam_descends_a_quadratic)
{
    Fixture f;
    fixture_init(&f, 5, 3);
    PolicyAdam opt;
    cr_assert_eq(policy_adam_init(&opt, f.net, 1e-2, NULL), DRRL_OK);
    float dl[12], dv[3];
    double first = 0, last = 0;
    for (int it = 0; it < 200; it++) {
        policy_net_zero_grad(f.net);
        double L = loss_of(&f, dl, dv);
        if (it == 0)
            first = L;
        last = L;
        policy_net_backward(f.net, f.cache, dl, dv);
        policy_net_clip_grad(f.net, 10.0);
        policy_adam_step(&opt, f.net);
    }
    /* The loss is bounded below by -sum w^2/2; it must fall well toward it. */
    cr_assert_lt(last, first - 1.0, "first %g last %g", first, last);
    policy_adam_done(&opt);
    fixture_done(&f);
}

Test(policy_rng, deterministic_and_uniform)
{
    PolicyRng a, b;
    policy_rng_seed(&a, 123);
    policy_rng_seed(&b, 123);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(policy_rng_u64(&a), policy_rng_u64(&b));
    int counts[5] = {0};
    for (int i = 0; i < 50000; i++)
        counts[policy_rng_below(&a, 5)]++;
    for (int i = 0; i < 5; i++)
        cr_assert(counts[i] > 9500 && counts[i] < 10500, "bucket %d: %d", i, counts[i]);
    double s = 0, s2 = 0;
    for (int i = 0; i < 50000; i++) {
        double z = policy_rng_normal(&a);
        s += z;
        s2 += z * z;
    }
    cr_assert(fabs(s / 50000) < 0.03 && fabs(s2 / 50000 - 1) < 0.05);
}

/* The energy prior adds its weight to the logit of the rank energy:E would
 * take from each head's features (keys' and values' energies, layout 3),
 * and nothing else: two networks with the same parameters, with and without
 * it, differ by exactly the weight there. */
Test(policy_net, energy_prior_adds_its_weight_at_the_rules_rank)
{
    enum { G = 4, F = POLICY_FEAT_ENERGY + 4 * G, H = 3 };
    PolicyNetConfig c = small_cfg();
    c.n_feat = F;
    PolicyNetConfig cp = c;
    cp.prior_weight = 2.5, cp.prior_energy = 0.9;
    PolicyRng r1, r2;
    policy_rng_seed(&r1, 4), policy_rng_seed(&r2, 4);
    PolicyNet *a, *b;
    DrrlError err;
    cr_assert_eq(policy_net_new(&c, &r1, &a, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(policy_net_new(&cp, &r2, &b, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0);
    /* per head: keys' energies, values' energies; the rule's index */
    static const float ek[H][G] = {
        {0.5f, 0.95f, 0.99f, 1}, {0.99f, 0.99f, 0.99f, 1}, {0.91f, 0.95f, 0.99f, 1}};
    static const float ev[H][G] = {
        {0.95f, 0.95f, 0.99f, 1}, {0.2f, 0.5f, 0.8f, 1}, {0.92f, 0.95f, 0.99f, 1}};
    static const int want[H] = {1, 3, 0};
    float feat[H * F], x[7 * 6];
    PolicyRng r;
    policy_rng_seed(&r, 5);
    for (int i = 0; i < H * F; i++)
        feat[i] = (float)policy_rng_normal(&r);
    for (int i = 0; i < 42; i++)
        x[i] = (float)policy_rng_normal(&r);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < G; i++) {
            feat[h * F + POLICY_FEAT_ENERGY + i] = ek[h][i];
            feat[h * F + POLICY_FEAT_ENERGY + 3 * G + i] = ev[h][i];
        }
    for (int h = 0; h < H; h++)
        cr_assert_eq(policy_net_prior_action(&cp, feat + h * F), want[h], "head %d", h);
    PolicyNetCache *ka = policy_net_cache_new(a), *kb = policy_net_cache_new(b);
    PolicyNetInput in = {.layer = 1, .feat = feat, .conv_x = x, .T = 7};
    float la[H * G], lb[H * G], va[H], vb[H];
    cr_assert_eq(policy_net_forward(a, ka, &in, la, va, NULL), DRRL_OK);
    cr_assert_eq(policy_net_forward(b, kb, &in, lb, vb, NULL), DRRL_OK);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < G; i++) {
            float e = i == want[h] ? la[h * G + i] + 2.5f : la[h * G + i];
            cr_assert_eq(lb[h * G + i], e, "head %d rank %d: %g, want %g", h, i, lb[h * G + i],
                         e);
        }
    cr_assert_eq(memcmp(va, vb, sizeof va), 0);
    policy_net_cache_free(ka), policy_net_cache_free(kb);
    policy_net_free(a), policy_net_free(b);
    /* the prior reads layout 3's value energies: another layout is refused */
    cp.n_feat = POLICY_FEAT_ENERGY + 3 * G;
    PolicyNet *bad = NULL;
    cr_assert_eq(policy_net_new(&cp, &r1, &bad, &err), DRRL_E_USAGE);
    cr_assert(strstr(err.msg, "prior"), "%s", err.msg);
    cp.n_feat = F, cp.prior_energy = 1.5;
    cr_assert_eq(policy_net_new(&cp, &r1, &bad, &err), DRRL_E_USAGE);
}
