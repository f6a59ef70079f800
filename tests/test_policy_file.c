/* Policy file: round trips, checkpoints, model checks and bad files. */
#include <criterion/criterion.h>

#include "fixture.h"
#include "test_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy_features.h"
#include "policy/policy_file.h"
#include "model/safetensors.h"

TEST_SUITE_TMPDIR(policy_file, dir, "pf");

static const char *path_of(const char *name)
{
    return test_path(dir, name);
}

static void make(PolicyNet **net, PolicyMeta *m)
{
    PolicyModelShape s = {"gpt2", 2, 2, 2, 8, 16, "0123456789abcdef", MODEL_HASH_ALGO};
    fixture_policy_meta(m, s, 4, 16, 12, 18446744073709551615ULL,
                        "drrl train-policy --steps 12");
    m->adam_t = 12;
    m->has_rng = 1;
    m->rng[0] = 1;
    m->rng[1] = 0xffffffffffffffffULL;
    m->rng[2] = 3;
    m->rng[3] = 4;
    PolicyNetConfig c = fixture_policy_net(m, 4, 8, 2, 16);
    PolicyRng r;
    policy_rng_seed(&r, 5);
    cr_assert_eq(policy_net_new(&c, &r, net, NULL), DRRL_OK);
}

Test(policy_file, round_trip_with_checkpoint)
{
    PolicyNet *net, *back;
    PolicyMeta m, mb;
    make(&net, &m);
    PolicyAdam a, ab;
    cr_assert_eq(policy_adam_init(&a, net, 1e-3, NULL), DRRL_OK);
    for (size_t i = 0; i < a.n; i++) {
        a.m[i] = (float)i * 0.5f;
        a.v[i] = (float)i;
    }
    a.t = 12;
    DrrlError err;
    const char *p = path_of("p.safetensors");
    cr_assert_eq(policy_file_save(p, net, &m, &a, &err), DRRL_OK, "%s", err.msg);
    int has = 0;
    cr_assert_eq(policy_file_load(p, &back, &mb, &ab, &has, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(has, 1);
    cr_assert_eq(back->n_params, net->n_params);
    cr_assert_eq(memcmp(back->params, net->params, net->n_params * sizeof(float)), 0);
    cr_assert_eq(memcmp(ab.m, a.m, a.n * sizeof(float)), 0);
    cr_assert_eq(memcmp(ab.v, a.v, a.n * sizeof(float)), 0);
    cr_assert_eq(ab.t, 12);
    cr_assert_eq(mb.n_grid, 4);
    cr_assert_eq(mb.grid[3], 8);
    cr_assert_eq(mb.segment, 16);
    cr_assert_float_eq(mb.reward.beta, 0.05, 1e-15);
    cr_assert_float_eq(mb.budget_lo, 0.3, 1e-15);
    cr_assert_str_eq(mb.model.hash, "0123456789abcdef");
    cr_assert_str_eq(mb.model.hash_algo, MODEL_HASH_ALGO);
    cr_assert_eq(mb.seed, m.seed);
    cr_assert_eq(mb.has_rng, 1);
    cr_assert_eq(memcmp(mb.rng, m.rng, sizeof m.rng), 0);
    cr_assert_str_eq(mb.command, m.command);
    policy_adam_done(&a);
    policy_adam_done(&ab);
    policy_net_free(back);
    /* Without Adam state: has_adam stays 0. */
    cr_assert_eq(policy_file_save(p, net, &m, NULL, &err), DRRL_OK);
    cr_assert_eq(policy_file_load(p, &back, &mb, &ab, &has, &err), DRRL_OK);
    cr_assert_eq(has, 0);
    policy_net_free(back);
    policy_net_free(net);
}

Test(policy_file, model_checks)
{
    PolicyNet *net;
    PolicyMeta m;
    make(&net, &m);
    char warn[512];
    DrrlError err;
    PolicyModelShape same = m.model;
    cr_assert_eq(policy_file_check_model("p", &m, &same, warn, sizeof warn, &err), DRRL_OK);
    cr_assert_str_eq(warn, "");
    PolicyModelShape other = same;
    snprintf(other.hash, sizeof other.hash, "fedcba9876543210");
    cr_assert_eq(policy_file_check_model("p", &m, &other, warn, sizeof warn, &err), DRRL_OK);
    cr_assert(strstr(warn, "another model of this shape"), "%s", warn);
    other = same;
    other.n_head = 4;
    cr_assert_eq(policy_file_check_model("p", &m, &other, warn, sizeof warn, &err),
                 DRRL_E_INPUT);
    cr_assert(strstr(err.msg, "p: the policy was trained for a gpt2 model"), "%s", err.msg);
    policy_net_free(net);
}

/* `drrl info tests/fixtures/gpt2-tiny-b` at 97b8b34, the last drrl whose
 * hash was FNV-1a 64 */
#define OLD_HASH_GPT2_TINY "d0e943444c675d13"

/* The policy's shape with model's hash by algo (policy_model_shape's). */
static void hash_of(const Model *model, const char *algo, const PolicyModelShape *policy,
                    PolicyModelShape *out)
{
    PolicyModelShape s;
    policy_model_shape(model, algo, &s);
    *out = *policy;
    memcpy(out->hash, s.hash, sizeof s.hash);
    memcpy(out->hash_algo, s.hash_algo, sizeof s.hash_algo);
}

/* A policy file written before the hash algorithm was recorded (no
 * model.hash_algo) holds FNV-1a 64 of its model: it loads as such and is
 * compared with that hash of the model, recomputed, not with today's. */
Test(policy_file, old_files_compare_by_their_hash)
{
    Model *model;
    DrrlError err;
    cr_assert_eq(model_load(FIXTURES_DIR "/gpt2-tiny-b", &model, &err), DRRL_OK, "%s", err.msg);
    /* what drrl printed for this fixture before the algorithm changed
     * (`drrl info` at 97b8b34) */
    cr_assert_str_eq(model_hash_by(model, MODEL_HASH_ALGO_V1), OLD_HASH_GPT2_TINY);
    cr_assert_str_neq(model_hash(model), OLD_HASH_GPT2_TINY);
    PolicyNet *net, *back;
    PolicyMeta m, mb;
    make(&net, &m); /* its shape is not the model's: only the hash is compared here */
    snprintf(m.model.hash, sizeof m.model.hash, "%s", OLD_HASH_GPT2_TINY);
    snprintf(m.model.hash_algo, sizeof m.model.hash_algo, "%s", MODEL_HASH_ALGO_V1);
    const char *p = path_of("old.safetensors");
    cr_assert_eq(policy_file_save(p, net, &m, NULL, &err), DRRL_OK, "%s", err.msg);
    /* as an older drrl wrote it: the key blanked out (the header keeps its size) */
    size_t n;
    char *bytes = test_slurp(p, &n);
    const char key[] = ",\\\"hash_algo\\\":\\\"fnv1a64\\\"";
    char *k = NULL;
    for (size_t i = 0; !k && i + sizeof key - 1 <= n; i++)
        if (memcmp(bytes + i, key, sizeof key - 1) == 0)
            k = bytes + i;
    cr_assert_not_null(k);
    memset(k, ' ', sizeof key - 1);
    FILE *f = fopen(p, "wb");
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
    cr_assert_eq(policy_file_load(p, &back, &mb, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    cr_assert_str_eq(mb.model.hash_algo, MODEL_HASH_ALGO_V1);
    cr_assert_str_eq(mb.model.hash, OLD_HASH_GPT2_TINY);
    char warn[512];
    PolicyModelShape shape;
    hash_of(model, mb.model.hash_algo, &mb.model, &shape);
    cr_assert_eq(policy_file_check_model(p, &mb, &shape, warn, sizeof warn, &err), DRRL_OK);
    cr_assert_str_eq(warn, "", "%s", warn);
    /* another model of the shape is still told apart */
    model->wq[3] += 0.5f;
    model_rehash(model);
    hash_of(model, mb.model.hash_algo, &mb.model, &shape);
    cr_assert_eq(policy_file_check_model(p, &mb, &shape, warn, sizeof warn, &err), DRRL_OK);
    cr_assert(strstr(warn, "another model of this shape"), "%s", warn);
    /* an algorithm this drrl does not know: a warning, no comparison */
    snprintf(mb.model.hash_algo, sizeof mb.model.hash_algo, "sha3-tree");
    hash_of(model, mb.model.hash_algo, &mb.model, &shape);
    cr_assert_str_eq(shape.hash, "");
    cr_assert_eq(policy_file_check_model(p, &mb, &shape, warn, sizeof warn, &err), DRRL_OK);
    cr_assert(strstr(warn, "sha3-tree hash, which this drrl cannot compute"), "%s", warn);
    policy_net_free(back);
    policy_net_free(net);
    model_free(model);
}

/* Save net and m (without Adam moments) as name in the directory and load it
 * back: the load's status. */
static DrrlStatus save_load(const char *name, const PolicyNet *net, const PolicyMeta *m,
                            PolicyNet **back, PolicyMeta *mb, DrrlError *err)
{
    const char *p = path_of(name);
    cr_assert_eq(policy_file_save(p, net, m, NULL, err), DRRL_OK, "%s", err->msg);
    return policy_file_load(p, back, mb, NULL, NULL, err);
}

Test(policy_file, bad_files_are_input_errors)
{
    PolicyNet *net, *back = NULL;
    PolicyMeta m, mb;
    make(&net, &m);
    DrrlError err;
    cr_assert_eq(policy_file_load(path_of("missing"), &back, &mb, NULL, NULL, &err),
                 DRRL_E_NOTFOUND);
    /* A safetensors file that is not a policy. */
    float x = 1.0f;
    SafetensorsWriteTensor t = {
        .name = "x", .dtype = SAFETENSORS_F32, .ndim = 1, .shape = {1}, .data = &x};
    const char *p = path_of("notpolicy.safetensors");
    cr_assert_eq(safetensors_write(p, &t, 1, "{\"format\":\"pt\"}", &err), DRRL_OK);
    cr_assert_eq(policy_file_load(p, &back, &mb, NULL, NULL, &err), DRRL_E_INPUT);
    cr_assert(strstr(err.msg, "not a drrl policy file"), "%s", err.msg);
    /* Truncated policy file. */
    p = path_of("p.safetensors");
    cr_assert_eq(policy_file_save(p, net, &m, NULL, &err), DRRL_OK);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(p, n - 10), 0);
    cr_assert_eq(policy_file_load(p, &back, &mb, NULL, NULL, &err), DRRL_E_INPUT);
    cr_assert(strstr(err.msg, p), "%s", err.msg);
    /* A non-finite weight. */
    net->params[3] = 1.0f / 0.0f;
    cr_assert_eq(save_load("p.safetensors", net, &m, &back, &mb, &err), DRRL_E_INPUT);
    cr_assert(strstr(err.msg, "not finite"), "%s", err.msg);
    net->params[3] = 0.0f;
    /* Grid not ending at head_dim. */
    m.model.head_dim = 16;
    cr_assert_eq(save_load("p.safetensors", net, &m, &back, &mb, &err), DRRL_E_INPUT);
    cr_assert(strstr(err.msg, "head_dim"), "%s", err.msg);
    cr_assert_null(back);
    policy_net_free(net);
}

/* Saved as name and loaded back, net and m read as feature layout version
 * with the reward's error and price terms err and price. */
static void expect_layout(const char *name, const PolicyNet *net, const PolicyMeta *m,
                          int version, double err, double price)
{
    PolicyNet *back;
    PolicyMeta mb;
    DrrlError e;
    cr_assert_eq(save_load(name, net, m, &back, &mb, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(back->cfg.n_feat, policy_features_count_v(4, version));
    cr_assert_float_eq(mb.reward.err, err, 1e-15);
    cr_assert_float_eq(mb.reward.price, price, 1e-15);
    policy_net_free(back);
}

Test(policy_file, feature_versions_and_new_reward_terms)
{
    PolicyNet *net, *back;
    PolicyMeta m, mb;
    make(&net, &m); /* version 1 layout (no guard features) */
    expect_layout("v1.safetensors", net, &m, 1, 0.0, 0.0);
    /* Version 2 (guard features) with the per-head error and price terms. */
    PolicyNetConfig c = net->cfg;
    c.n_feat = policy_features_count_v(4, 2);
    PolicyNet *net2;
    PolicyRng r;
    policy_rng_seed(&r, 6);
    cr_assert_eq(policy_net_new(&c, &r, &net2, NULL), DRRL_OK);
    m.reward.err = 1.5;
    m.reward.price = 0.75;
    expect_layout("v2.safetensors", net2, &m, 2, 1.5, 0.75);
    /* err_power travels when it is not 1 and reads as 1 when absent */
    PolicyMeta mp;
    DrrlError err2;
    cr_assert_eq(save_load("v2p.safetensors", net2, &m, &back, &mp, &err2), DRRL_OK);
    cr_assert_float_eq(mp.reward.err_power, 1.0, 0);
    policy_net_free(back);
    m.reward.err_power = 2.0;
    cr_assert_eq(save_load("v2p.safetensors", net2, &m, &back, &mp, &err2), DRRL_OK);
    cr_assert_float_eq(mp.reward.err_power, 2.0, 0);
    cr_assert_eq(mp.reward.n_err_layer, 0); /* absent: none */
    policy_net_free(back);
    m.reward.err_power = 1.0;
    /* per-layer error factors travel, in order */
    m.reward.n_err_layer = 3;
    m.reward.err_layer[0] = 2.0, m.reward.err_layer[1] = 0.5, m.reward.err_layer[2] = 0.0;
    cr_assert_eq(save_load("v2l.safetensors", net2, &m, &back, &mp, &err2), DRRL_OK);
    cr_assert_eq(mp.reward.n_err_layer, 3);
    cr_assert_float_eq(mp.reward.err_layer[0], 2.0, 0);
    cr_assert_float_eq(mp.reward.err_layer[1], 0.5, 0);
    cr_assert_float_eq(mp.reward.err_layer[2], 0.0, 0);
    policy_net_free(back);
    m.reward.err_layer[1] = -1.0; /* written as given, refused on load */
    cr_assert_eq(save_load("v2n.safetensors", net2, &m, &back, &mp, &err2), DRRL_E_INPUT);
    cr_assert(strstr(err2.msg, "err_layers[1]"), "%s", err2.msg);
    m.reward.n_err_layer = 0;
    /* the energy prior travels with the network's shape (layout 3) */
    PolicyNetConfig c3 = net->cfg;
    c3.n_feat = policy_features_count_v(4, 3);
    c3.prior_weight = 3.0, c3.prior_energy = 0.985;
    PolicyNet *net3;
    cr_assert_eq(policy_net_new(&c3, &r, &net3, NULL), DRRL_OK);
    cr_assert_eq(save_load("v3p.safetensors", net3, &m, &back, &mp, &err2), DRRL_OK, "%s",
                 err2.msg);
    cr_assert_float_eq(back->cfg.prior_weight, 3.0, 0);
    cr_assert_float_eq(back->cfg.prior_energy, 0.985, 0);
    cr_assert_eq(memcmp(back->params, net3->params, net3->n_params * sizeof(float)), 0);
    policy_net_free(back);
    policy_net_free(net3);
    cr_assert_eq(save_load("v2np.safetensors", net2, &m, &back, &mp, &err2), DRRL_OK);
    cr_assert_eq(back->cfg.prior_weight, 0.0); /* absent: none */
    policy_net_free(back);
    /* A network whose n_feat fits neither layout is refused on load. */
    c.n_feat = policy_features_count_v(4, 2) + 1;
    PolicyNet *bad;
    cr_assert_eq(policy_net_new(&c, &r, &bad, NULL), DRRL_OK);
    DrrlError err;
    cr_assert_eq(save_load("bad.safetensors", bad, &m, &back, &mb, &err), DRRL_E_INPUT);
    policy_net_free(bad);
    policy_net_free(net2);
    policy_net_free(net);
}
