/* Policy training end to end on the tiny Llama fixture: determinism by seed,
 * exact continuation with --resume, the same file from 2 and 3 processes
 * (threads standing in for MPI ranks), and learning (a FLOP-only reward must
 * drive the chosen ranks down). */
#include <criterion/criterion.h>

#include "test_util.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/forward.h"
#include "attn/method.h"
#include "policy/policy_features.h"
#include "base/fileio.h"
#include "model/model.h"
#include "policy/policy_agent.h"
#include "policy/policy_file.h"
#include "policy/policy_train.h"

static char dir[64];
static Model *model;
static int32_t ids[4096];

static void setup(void)
{
    test_tmpdir(dir, sizeof dir, "pt");
    DrrlError err;
    cr_assert_eq(model_load(FIXTURES_DIR "/llama-tiny-b", &model, &err), DRRL_OK, "%s",
                 err.msg);
    const char *text = "The quick brown fox jumps over the lazy dog while the cat sleeps. ";
    size_t n = strlen(text);
    PolicyRng r;
    policy_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        ids[i] = (unsigned char)text[(i + policy_rng_below(&r, 3)) % n];
}

static void teardown(void)
{
    model_free(model);
    test_rmtree(dir);
}

TestSuite(policy_train, .init = setup, .fini = teardown, .timeout = 120);

static const char *path_of(const char *name)
{
    return test_path(dir, name);
}

static void small_cfg(PolicyTrainConfig *c, const char *out, int64_t steps)
{
    policy_train_config_default(c);
    c->segment = 16;
    c->episode_len = 64;
    c->episodes = 2;
    c->steps = steps;
    c->seed = 7;
    c->r_min = 2;
    c->r_step = 2;
    c->threads = 1;
    c->checkpoint_every = 0;
    c->d_model = 16;
    c->d_ff = 32;
    c->n_block = 1;
    c->out_path = out;
    c->command = "test";
}

static PolicyNet *load(const char *p, PolicyMeta *m)
{
    PolicyNet *net;
    DrrlError err;
    cr_assert_eq(policy_file_load(p, &net, m, NULL, NULL, &err), DRRL_OK, "%s", err.msg);
    return net;
}

static void train(const PolicyTrainConfig *c, const char *resume)
{
    DrrlError err;
    char warn[256];
    cr_assert_eq(policy_train(model, ids, sizeof ids / sizeof ids[0], c, resume, NULL, NULL,
                              warn, sizeof warn, &err),
                 DRRL_OK, "%s", err.msg);
}

Test(policy_train, deterministic_by_seed_and_resume_is_exact)
{
    PolicyTrainConfig c;
    const char *a = path_of("a.st"), *b = path_of("b.st"), *r = path_of("r.st");
    small_cfg(&c, a, 4);
    train(&c, NULL);
    small_cfg(&c, b, 4);
    train(&c, NULL);
    small_cfg(&c, r, 2);
    train(&c, NULL);
    small_cfg(&c, r, 4);
    c.out_flags = FILEIO_UPDATE; /* resume in place, as train-policy does */
    train(&c, r);
    PolicyMeta ma, mb, mr;
    PolicyNet *na = load(a, &ma), *nb = load(b, &mb), *nr = load(r, &mr);
    cr_assert_eq(memcmp(na->params, nb->params, na->n_params * sizeof(float)), 0);
    cr_assert_eq(memcmp(na->params, nr->params, na->n_params * sizeof(float)), 0,
                 "a resumed run must equal an uninterrupted one");
    cr_assert_eq(mr.steps, 4);
    cr_assert_eq(memcmp(ma.rng, mr.rng, sizeof ma.rng), 0);
    /* Another seed gives another policy. */
    const char *s8 = path_of("s8.st"); /* b was read: an input now, never written */
    small_cfg(&c, s8, 4);
    c.seed = 8;
    train(&c, NULL);
    PolicyMeta m8;
    PolicyNet *n8 = load(s8, &m8);
    cr_assert_neq(memcmp(na->params, n8->params, na->n_params * sizeof(float)), 0);
    cr_assert_str_eq(ma.model.hash, model->hash);
    cr_assert_eq(ma.grid[ma.n_grid - 1], 8);
    policy_net_free(na);
    policy_net_free(nb);
    policy_net_free(nr);
    policy_net_free(n8);
}

typedef struct Track {
    double first, last;
} Track;

static int track(void *ctx, const PolicyTrainProgress *p)
{
    Track *t = ctx;
    if (p->step == 1)
        t->first = p->flops_frac;
    t->last = p->flops_frac;
    return 0;
}

/* With only the FLOP term (alpha = gamma = 0, no budget), the best policy
 * takes the smallest allowed rank everywhere: PPO must move there. */
Test(policy_train, learns_to_cut_flops_when_only_flops_count)
{
    PolicyTrainConfig c;
    small_cfg(&c, path_of("f.st"), 25);
    c.reward.alpha = 0;
    c.reward.gamma = 0;
    c.reward.kappa = 0;
    c.reward.beta = 1.0;
    c.eps_start = c.eps_floor = 1e9; /* nothing masked */
    c.ppo.lr = 3e-3;
    Track t = {0, 0};
    DrrlError err;
    cr_assert_eq(policy_train(model, ids, sizeof ids / sizeof ids[0], &c, NULL, track, &t, NULL,
                              0, &err),
                 DRRL_OK, "%s", err.msg);
    cr_assert_lt(t.last, t.first - 0.1, "flops fraction %g -> %g", t.first, t.last);
}

Test(policy_train, bad_inputs)
{
    PolicyTrainConfig c;
    DrrlError err;
    small_cfg(&c, path_of("x.st"), 1);
    c.episode_len = 40; /* not a multiple of 16 */
    cr_assert_eq(policy_train(model, ids, 4096, &c, NULL, NULL, NULL, NULL, 0, &err),
                 DRRL_E_USAGE);
    small_cfg(&c, path_of("x.st"), 1);
    cr_assert_eq(policy_train(model, ids, 60, &c, NULL, NULL, NULL, NULL, 0, &err),
                 DRRL_E_USAGE);
    cr_assert(strstr(err.msg, "60 tokens"), "%s", err.msg);
    cr_assert_eq(
        policy_train(model, ids, 4096, &c, path_of("missing.st"), NULL, NULL, NULL, 0, &err),
        DRRL_E_NOTFOUND);
}

/* The shipped-style inference path: load the file as an agent for the
 * model; another shape is refused; the argmax is deterministic. */
Test(policy_train, agent_load_checks_the_model)
{
    PolicyTrainConfig c;
    const char *p = path_of("g.st");
    small_cfg(&c, p, 1);
    train(&c, NULL);
    PolicyAgent *ag;
    char warn[512];
    DrrlError err;
    cr_assert_eq(policy_agent_load(p, model, 16, 0, &ag, warn, sizeof warn, &err), DRRL_OK,
                 "%s", err.msg);
    cr_assert_str_eq(warn, "");
    int ng;
    const int32_t *g = policy_agent_grid(ag, &ng);
    cr_assert_eq(ng, 4);
    cr_assert_eq(g[0], 2);
    int32_t rmin, rstep;
    policy_agent_core_grid(ag, &rmin, &rstep);
    cr_assert_eq(rmin, 2);
    cr_assert_eq(rstep, 2);
    policy_agent_free(ag);
    Model *gpt;
    cr_assert_eq(model_load(FIXTURES_DIR "/gpt2-tiny-b", &gpt, &err), DRRL_OK);
    cr_assert_eq(policy_agent_load(p, gpt, 16, 0, &ag, warn, sizeof warn, &err), DRRL_E_INPUT);
    cr_assert(strstr(err.msg, "trained for a llama model"), "%s", err.msg);
    model_free(gpt);
    /* Same shape, other weights: a warning. */
    model->arena[0] += 1.0f;
    model_rehash(model);
    cr_assert_eq(policy_agent_load(p, model, 16, 0, &ag, warn, sizeof warn, &err), DRRL_OK);
    cr_assert(strstr(warn, "another model of this shape"), "%s", warn);
    policy_agent_free(ag);
}

static const float *fk(const void *ctx, int l, int g)
{
    return forward_cache_k(ctx, l, g);
}
static const float *fv(const void *ctx, int l, int g)
{
    return forward_cache_v(ctx, l, g);
}

/* Run 96 tokens with --method drrl:P through a core set up the session's way;
 * returns the executed attention FLOPs. */
static double infer(const char *policy, int32_t *ranks_out)
{
    DrrlError err;
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    char spec[256];
    snprintf(spec, sizeof spec, "drrl:%s", policy);
    cr_assert_eq(method_parse(spec, &cfg.method, &err), DRRL_OK, "%s", err.msg);
    cfg.segment = 16;
    PolicyAgent *ag;
    char warn[256];
    cr_assert_eq(policy_agent_prepare(model, &cfg, 0.5, &ag, warn, sizeof warn, &err), DRRL_OK,
                 "%s", err.msg);
    cr_assert_eq(cfg.r_min, 2);
    cr_assert_eq(cfg.r_step, 2);
    AttnCore *core;
    Forward *f;
    cr_assert_eq(attn_core_new(&model->cfg, &cfg, &core, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(forward_new(model, 96, 1, &f, &err), DRRL_OK);
    attn_core_bind_cache(core, fk, fv, f);
    policy_agent_connect(ag, core, fk, fv, f);
    ForwardAttn hook = attn_core_hook(core);
    forward_set_attn(f, &hook);
    for (int s = 0; s < 6; s++) {
        cr_assert_eq(forward_tokens(f, ids + 16 * s, 16, NULL, NULL, &err), DRRL_OK, "%s",
                     err.msg);
        cr_assert_eq(attn_core_finish_call(core, (size_t)(16 * s), 16, NULL, NULL, 0, &err),
                     DRRL_OK, "%s", err.msg);
    }
    for (int l = 0; l < model->cfg.n_layer; l++)
        for (int h = 0; h < model->cfg.n_head; h++)
            ranks_out[l * model->cfg.n_head + h] = attn_core_rank(core, l, h);
    double fl = flops_attn(attn_core_flops_executed(core));
    /* The policy's own work is in the ledger, under FLOPS_POLICY. */
    double pf = flops_get(attn_core_flops_executed(core), -1, -1, FLOPS_POLICY);
    cr_assert_gt(pf, 0.0);
    cr_assert_float_eq(pf, policy_agent_flops(ag), 1e-6 * pf);
    cr_assert_eq(flops_get(attn_core_flops_exact(core), -1, -1, FLOPS_POLICY), 0.0);
    cr_assert_eq(policy_agent_decisions(ag), 5 * model->cfg.n_layer * model->cfg.n_head);
    forward_free(f);
    attn_core_free(core);
    policy_agent_free(ag);
    return fl;
}

Test(policy_train, inference_takes_the_argmax_deterministically)
{
    PolicyTrainConfig c;
    const char *p = path_of("i.st");
    small_cfg(&c, p, 2);
    train(&c, NULL);
    int32_t r1[8], r2[8];
    double a = infer(p, r1), b = infer(p, r2);
    cr_assert_eq(a, b);
    cr_assert_eq(memcmp(r1, r2, sizeof r1), 0);
    for (int i = 0; i < 8; i++)
        cr_assert(r1[i] >= 2 && r1[i] <= 8 && r1[i] % 2 == 0, "rank %d", r1[i]);
    /* Without a policy path: a usage error, not a crash. */
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    cr_assert_eq(method_parse("drrl", &cfg.method, NULL), DRRL_OK);
    PolicyAgent *ag;
    DrrlError err;
    cr_assert_eq(policy_agent_prepare(model, &cfg, 0, &ag, NULL, 0, &err), DRRL_E_USAGE);
}

/* A policy of feature layout 3 (value energies) trains, saves, loads and
 * decides; its file records the layout and loads as version 3. */
Test(policy_train, features_v3_round_trip)
{
    PolicyTrainConfig c;
    const char *p = path_of("v3.st");
    small_cfg(&c, p, 2);
    c.features = 3;
    train(&c, NULL);
    PolicyMeta m;
    PolicyNet *net = load(p, &m);
    cr_assert_eq(net->cfg.n_feat, policy_features_count_v(m.n_grid, 3));
    cr_assert_eq(policy_features_version_of(net->cfg.n_feat, m.n_grid), 3);
    policy_net_free(net);
    int32_t r1[8], r2[8];
    double a = infer(p, r1), b = infer(p, r2);
    cr_assert_eq(a, b);
    cr_assert_eq(memcmp(r1, r2, sizeof r1), 0);
}

/* --err-layers: all-1 factors train the very policy no factors do; other
 * factors another; a count other than the model's layers is refused. */
Test(policy_train, err_layer_factors)
{
    PolicyTrainConfig c;
    const char *a = path_of("e0.st"), *b = path_of("e1.st"), *d = path_of("e2.st");
    small_cfg(&c, a, 3);
    c.reward.err = 5.0;
    c.eps_start = c.eps_floor = 1e9; /* nothing masked: low ranks, errors to weigh */
    train(&c, NULL);
    c.out_path = b;
    c.reward.n_err_layer = model->cfg.n_layer;
    for (int l = 0; l < model->cfg.n_layer; l++)
        c.reward.err_layer[l] = 1.0;
    train(&c, NULL);
    c.out_path = d;
    c.reward.err_layer[0] = 20.0;
    train(&c, NULL);
    PolicyMeta ma, mb, md;
    PolicyNet *na = load(a, &ma), *nb = load(b, &mb), *nd = load(d, &md);
    cr_assert_eq(memcmp(na->params, nb->params, na->n_params * sizeof(float)), 0);
    cr_assert_neq(memcmp(na->params, nd->params, na->n_params * sizeof(float)), 0,
                  "a layer's factor changed nothing");
    cr_assert_eq(md.reward.n_err_layer, model->cfg.n_layer);
    cr_assert_float_eq(md.reward.err_layer[0], 20.0, 0);
    policy_net_free(na);
    policy_net_free(nb);
    policy_net_free(nd);
    c.out_path = path_of("e3.st");
    c.reward.n_err_layer = model->cfg.n_layer + 1;
    DrrlError err;
    cr_assert_eq(policy_train(model, ids, sizeof ids / sizeof ids[0], &c, NULL, NULL, NULL,
                              NULL, 0, &err),
                 DRRL_E_USAGE);
    cr_assert(strstr(err.msg, "--err-layers"), "%s", err.msg);
}

typedef struct LmSeen {
    int steps;
    double lm;
} LmSeen;

static int seen_lm(void *ctx, const PolicyTrainProgress *p)
{
    LmSeen *s = ctx;
    s->steps++;
    s->lm = p->lm;
    return 0;
}

/* The optional LM reward runs an exact forward beside. With the safety
 * threshold at 0 every head must stay exact, so the term is 0; with nothing
 * masked the policy explores low ranks and the term moves. */
Test(policy_train, lm_reward_term)
{
    PolicyTrainConfig c;
    small_cfg(&c, path_of("lm.st"), 2);
    c.reward.lm = 0.5;
    c.eps_start = c.eps_floor = 0.0;
    LmSeen s = {0, 0};
    DrrlError err;
    cr_assert_eq(policy_train(model, ids, sizeof ids / sizeof ids[0], &c, NULL, seen_lm, &s,
                              NULL, 0, &err),
                 DRRL_OK, "%s", err.msg);
    cr_assert_eq(s.steps, 2);
    cr_assert_float_eq(s.lm, 0.0, 1e-6, "exact heads, lm term %g", s.lm);
    c.eps_start = c.eps_floor = 1e9;
    cr_assert_eq(policy_train(model, ids, sizeof ids / sizeof ids[0], &c, NULL, seen_lm, &s,
                              NULL, 0, &err),
                 DRRL_OK, "%s", err.msg);
    cr_assert(isfinite(s.lm) && fabs(s.lm) > 1e-4, "lm term %g", s.lm);
    PolicyMeta m;
    PolicyNet *net = load(path_of("lm.st"), &m);
    cr_assert_float_eq(m.reward.lm, 0.5, 0);
    policy_net_free(net);
}

/* ---- spread over processes: threads with a barrier stand in for MPI ---- */

typedef struct Group {
    int size;
    pthread_barrier_t bar;
    const void *blk[4];
    size_t n[4];
} Group;

typedef struct Member {
    Group *g;
    PpoDist dist;
    PolicyTrainConfig cfg;
    const char *resume;
    DrrlStatus st;
    DrrlError err;
} Member;

/* Everyone posts its block, everyone copies all of them, then the slots are
 * free again: an allgather. */
static DrrlStatus thread_allgather(void *ctx, const void *mine, size_t n, void **all,
                                   size_t *counts, DrrlError *err)
{
    Member *m = ctx;
    Group *g = m->g;
    g->blk[m->dist.rank] = mine, g->n[m->dist.rank] = n;
    pthread_barrier_wait(&g->bar);
    size_t total = 0;
    for (int r = 0; r < g->size; r++)
        total += counts[r] = g->n[r];
    char *buf = malloc(total ? total : 1);
    for (size_t r = 0, off = 0; buf && r < (size_t)g->size; off += g->n[r], r++)
        memcpy(buf + off, g->blk[r], g->n[r]);
    pthread_barrier_wait(&g->bar);
    *all = buf;
    return buf ? DRRL_OK : drrl_error(err, DRRL_E_NOMEM, "out of memory");
}

static void *member_run(void *arg)
{
    Member *m = arg;
    char warn[256];
    m->st = policy_train(model, ids, sizeof ids / sizeof ids[0], &m->cfg, m->resume, NULL, NULL,
                         warn, sizeof warn, &m->err);
    return NULL;
}

/* Train with cfg on `size` members (threads); member 0 writes cfg->out_path. */
static void train_spread(const PolicyTrainConfig *cfg, const char *resume, int size)
{
    Group g = {.size = size};
    Member m[4];
    pthread_t th[4];
    cr_assert_eq(pthread_barrier_init(&g.bar, NULL, (unsigned)size), 0);
    for (int r = 0; r < size; r++) {
        m[r] = (Member){.g = &g, .cfg = *cfg, .resume = resume};
        m[r].dist = (PpoDist){r, size, thread_allgather, &m[r]};
        m[r].cfg.dist = &m[r].dist;
        cr_assert_eq(pthread_create(&th[r], NULL, member_run, &m[r]), 0);
    }
    for (int r = 0; r < size; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&g.bar);
    for (int r = 0; r < size; r++)
        cr_assert_eq(m[r].st, DRRL_OK, "member %d: %s", r, m[r].err.msg);
}

static void same_params(const char *a, const char *b, const char *what)
{
    PolicyMeta ma, mb;
    PolicyNet *na = load(a, &ma), *nb = load(b, &mb);
    cr_assert_eq(na->n_params, nb->n_params);
    cr_assert_eq(memcmp(na->params, nb->params, na->n_params * sizeof(float)), 0, "%s", what);
    cr_assert_eq(ma.steps, mb.steps, "%s", what);
    policy_net_free(na);
    policy_net_free(nb);
}

Test(policy_train, the_same_policy_from_any_number_of_processes)
{
    PolicyTrainConfig c;
    const char *one = path_of("one.st"), *two = path_of("two.st"), *three = path_of("three.st");
    small_cfg(&c, one, 3);
    c.episodes = 3; /* 3 episodes over 2 processes: 2 + 1 */
    train(&c, NULL);
    c.out_path = two;
    train_spread(&c, NULL, 2);
    same_params(one, two, "2 processes differ from one");
    c.out_path = three;
    train_spread(&c, NULL, 3);
    same_params(one, three, "3 processes differ from one");
    /* 1 step on 3 processes, resumed to 3 on 2 */
    const char *half = path_of("half.st");
    c.out_path = half;
    c.steps = 1;
    train_spread(&c, NULL, 3);
    c.steps = 3;
    c.out_flags = FILEIO_UPDATE;
    train_spread(&c, half, 2);
    same_params(one, half, "resumed at another process count differs");
}
