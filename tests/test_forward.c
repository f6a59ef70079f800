/* Forward pass against Hugging Face transformers' outputs (tests/fixtures),
 * incremental against full, long sequences, and the attention hook. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "base/par.h"
#include "base/rng.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"

/* Tolerances (max abs difference / max abs reference value). */
#define TOL_REF 1e-4         /* logits, attention, hidden states vs transformers */
#define TOL_LOSS 1e-4        /* |loss - reference loss| */
#define TOL_INCREMENTAL 1e-5 /* incremental vs full-sequence logits */

/* Every fixture folder checked the same way: the two from transformers'
 * README and those tests/fixtures/make_fixtures.py generates. */
static const char *const fixtures[] = {
    "gpt2-tiny-b", "llama-tiny-b", "gpt2-3l4h", "llama-gqa-bf16", "llama-sharded-f16",
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static double rel_diff(const float *got, const float *want, size_t n)
{
    double md = 0, mv = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= md)) /* catches NaN too */
            md = d;
        if (fabs(want[i]) > mv)
            mv = fabs(want[i]);
    }
    return mv > 0 ? md / mv : md;
}

typedef struct Ref {
    Model *m;
    Safetensors *ref;
    int32_t *ids;
    size_t T;
    double loss;
} Ref;

static int load_ref(const char *name, Ref *r)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES_DIR, name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *probe = fopen(path, "r");
    if (!probe)
        return 0;
    fclose(probe);
    DrrlError e;
    cr_assert_eq(model_load(dir, &r->m, &e), DRRL_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    cr_assert_eq(safetensors_load(path, &r->ref, &e), DRRL_OK, "%s", e.msg);
    const SafetensorsTensor *t = safetensors_find(r->ref, "input_ids");
    cr_assert_not_null(t);
    r->T = t->numel;
    r->ids = malloc(r->T * sizeof *r->ids);
    cr_assert_eq(safetensors_to_i32(r->ref, t, r->ids, &e), DRRL_OK);
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    cr_assert_not_null(j);
    r->loss = json_number_value(json_object_get(j, "loss"));
    json_decref(j);
    return 1;
}

static void free_ref(Ref *r)
{
    free(r->ids);
    safetensors_free(r->ref);
    model_free(r->m);
}

static float *ref_tensor(const Ref *r, const char *name, size_t numel)
{
    const SafetensorsTensor *t = safetensors_find(r->ref, name);
    cr_assert_not_null(t, "reference lacks %s", name);
    cr_assert_eq(t->numel, numel, "%s: %zu elements, expected %zu", name, t->numel, numel);
    float *buf = malloc(numel * sizeof *buf);
    cr_assert_eq(safetensors_to_f32(r->ref, t, buf, NULL), DRRL_OK);
    return buf;
}

static void check_fixture(const char *name)
{
    Ref r;
    cr_assert(load_ref(name, &r), "fixture %s is missing", name);
    const ModelConfig *c = &r.m->cfg;
    size_t T = r.T, V = (size_t)c->vocab, C = (size_t)c->d_model, H = (size_t)c->n_head;
    size_t L = (size_t)c->n_layer;
    Forward *f;
    DrrlError e;
    cr_assert_eq(forward_new(r.m, 0, 0, &f, &e), DRRL_OK, "%s", e.msg);
    float *logits = malloc(T * V * sizeof *logits);
    float *hidden = malloc((L + 1) * T * C * sizeof *hidden);
    float *attn = malloc(L * H * T * T * sizeof *attn);
    ForwardCapture cap = {hidden, attn, T};
    cr_assert_eq(forward_tokens(f, r.ids, T, logits, &cap, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(forward_len(f), T);

    float *want = ref_tensor(&r, "logits", T * V);
    double d = rel_diff(logits, want, T * V);
    cr_expect(d <= TOL_REF, "%s: logits differ by %g (relative)", name, d);
    free(want);
    for (size_t l = 0; l < L; l++) {
        char key[32];
        snprintf(key, sizeof key, "attn.%zu", l);
        want = ref_tensor(&r, key, H * T * T);
        d = rel_diff(attn + l * H * T * T, want, H * T * T);
        cr_expect(d <= TOL_REF, "%s: %s differs by %g", name, key, d);
        free(want);
    }
    for (size_t l = 0; l <= L; l++) {
        char key[32];
        snprintf(key, sizeof key, "hidden.%zu", l);
        want = ref_tensor(&r, key, T * C);
        d = rel_diff(hidden + l * T * C, want, T * C);
        cr_expect(d <= TOL_REF, "%s: %s differs by %g", name, key, d);
        free(want);
    }
    cr_log_info("%s (%s, %s): logits rel diff %.3g", name, c->arch_name, c->dtype,
                rel_diff(logits, want = ref_tensor(&r, "logits", T * V), T * V));
    free(want);
    double loss = forward_loss(logits, r.ids, T, c->vocab);
    cr_log_info("%s: loss %.7f, reference %.7f", name, loss, r.loss);
    cr_expect(fabs(loss - r.loss) <= TOL_LOSS, "%s: loss %.7f, reference %.7f", name, loss,
              r.loss);

    /* Incremental, one token at a time, gives the same logits. */
    forward_reset(f);
    cr_assert_eq(forward_len(f), 0);
    float *inc = malloc(T * V * sizeof *inc);
    float *arow = malloc(L * H * T * sizeof *arow);
    for (size_t t = 0; t < T; t++) {
        ForwardCapture c1 = {NULL, arow, t + 1};
        cr_assert_eq(forward_tokens(f, r.ids + t, 1, inc + t * V, &c1, &e), DRRL_OK, "%s",
                     e.msg);
        /* The step's attention row equals the full pass's row t. */
        for (size_t l = 0; l < L; l++)
            for (size_t h = 0; h < H; h++) {
                double da = rel_diff(arow + (l * H + h) * (t + 1),
                                     attn + ((l * H + h) * T + t) * T, t + 1);
                cr_expect(da <= TOL_INCREMENTAL, "%s: step %zu attn l%zu h%zu differs by %g",
                          name, t, l, h, da);
            }
    }
    d = rel_diff(inc, logits, T * V);
    cr_expect(d <= TOL_INCREMENTAL, "%s: incremental logits differ by %g", name, d);

    /* Chunks of uneven size, too. */
    forward_reset(f);
    for (size_t t = 0; t < T;) {
        size_t n = (t % 3) + 5;
        if (n > T - t)
            n = T - t;
        cr_assert_eq(forward_tokens(f, r.ids + t, n, inc + t * V, NULL, &e), DRRL_OK);
        t += n;
    }
    d = rel_diff(inc, logits, T * V);
    cr_expect(d <= TOL_INCREMENTAL, "%s: chunked logits differ by %g", name, d);

    free(arow);
    free(inc);
    free(logits);
    free(hidden);
    free(attn);
    forward_free(f);
    free_ref(&r);
}

Test(forward, gpt2_tiny_b_matches_transformers)
{
    check_fixture("gpt2-tiny-b");
}
Test(forward, llama_tiny_b_matches_transformers)
{
    check_fixture("llama-tiny-b");
}
Test(forward, generated_fixtures_match_transformers)
{
    for (size_t i = 2; i < N_FIXTURES; i++)
        check_fixture(fixtures[i]);
}

/* A model with random weights of a given shape, deterministic. */
static Model *random_model(ModelArch arch, int L, int H, int K, int C, int D, int F, int V,
                           int P)
{
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.n_layer = L;
    c.n_head = H;
    c.n_kv_head = K;
    c.d_model = C;
    c.head_dim = D;
    c.d_ff = F;
    c.vocab = V;
    c.n_ctx = P;
    c.tied = 1;
    Model *m;
    DrrlError e;
    cr_assert_eq(model_new(&c, &m, &e), DRRL_OK, "%s", e.msg);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < m->arena_floats; i++) {
        m->arena[i] = ((float)(rng_xorshift64(&s) >> 40) / (float)(1 << 24) - 0.5f) * 0.2f;
    }
    for (size_t i = 0; i < (size_t)L * (size_t)C; i++)
        m->ln1_w[i] = m->ln2_w[i] = 1.0f;
    for (size_t i = 0; i < (size_t)C; i++)
        m->lnf_w[i] = 1.0f;
    model_rehash(m);
    return m;
}

/* 8200 tokens, more than the 8192 the issue asks for: full pass (threads,
 * query blocks) against chunked incremental passes, compared on the last
 * rows, with the memory bound of one score block per worker. */
Test(forward, long_sequence_full_equals_chunked, .timeout = 120)
{
    Model *m = random_model(MODEL_ARCH_LLAMA, 2, 4, 2, 32, 8, 48, 64, 256);
    size_t T = 8200, V = 64;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 7919u + 13u) % V);
    Forward *f;
    DrrlError e;
    cr_assert_eq(forward_new(m, 1024, 4, &f, &e), DRRL_OK); /* cache grows past the hint */
    float *full = malloc(T * V * sizeof *full);
    cr_assert_eq(forward_tokens(f, ids, T, full, NULL, &e), DRRL_OK, "%s", e.msg);
    forward_reset(f);
    float *part = malloc(T * V * sizeof *part);
    size_t chunk = 2000;
    for (size_t t = 0; t < T; t += chunk) {
        size_t n = T - t < chunk ? T - t : chunk;
        cr_assert_eq(forward_tokens(f, ids + t, n, part + t * V, NULL, &e), DRRL_OK, "%s",
                     e.msg);
    }
    double d = rel_diff(part, full, T * V);
    cr_expect(d <= TOL_INCREMENTAL, "long sequence: chunked differs by %g", d);
    for (size_t i = 0; i < T * V; i++)
        cr_assert(isfinite(full[i]));
    free(full);
    free(part);
    free(ids);
    forward_free(f);
    model_free(m);
}

/* forward_reserve makes room once: a run of the reserved length then
 * neither moves the cache (no grow-and-copy per doubling) nor changes the
 * numbers; the cache's contents survive a reserve past them. */
Test(forward, reserve_keeps_cache_in_place)
{
    Model *m = random_model(MODEL_ARCH_LLAMA, 2, 4, 2, 32, 8, 48, 64, 256);
    size_t T = 3000, V = 64;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 7919u + 13u) % V);
    Forward *f, *g;
    DrrlError e;
    cr_assert_eq(forward_new(m, 256, 2, &f, &e), DRRL_OK);
    cr_assert_eq(forward_new(m, 256, 2, &g, &e), DRRL_OK);
    cr_assert_eq(forward_tokens(f, ids, 100, NULL, NULL, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(forward_reserve(f, T, &e), DRRL_OK, "%s", e.msg);
    const float *k0 = forward_cache_k(f, 1, 1);
    float *lf = malloc(V * sizeof *lf), *lg = malloc(V * sizeof *lg);
    for (size_t t = 100; t < T; t += 700) {
        size_t n = T - t < 700 ? T - t : 700;
        cr_assert_eq(forward_tokens(f, ids + t, n, NULL, NULL, &e), DRRL_OK, "%s", e.msg);
        cr_assert_eq(forward_cache_k(f, 1, 1), k0, "the cache moved at position %zu", t);
    }
    cr_assert_eq(forward_tokens(g, ids, T - 1, NULL, NULL, &e), DRRL_OK, "%s", e.msg);
    forward_reset(f);
    cr_assert_eq(forward_tokens(f, ids, T - 1, NULL, NULL, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(forward_tokens(f, ids + T - 1, 1, lf, NULL, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(forward_tokens(g, ids + T - 1, 1, lg, NULL, &e), DRRL_OK, "%s", e.msg);
    cr_assert(memcmp(lf, lg, V * sizeof *lf) == 0, "a reserved cache changed the logits");
    free(lf), free(lg), free(ids);
    forward_free(f), forward_free(g);
    model_free(m);
}

/* Thread count does not change the numbers. */
Test(forward, threads_give_identical_results)
{
    Model *m = random_model(MODEL_ARCH_GPT2, 2, 4, 4, 32, 8, 64, 50, 600);
    size_t T = 600, V = 50;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)(i % V);
    float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b);
    Forward *f1, *f4;
    cr_assert_eq(forward_new(m, 0, 1, &f1, NULL), DRRL_OK);
    cr_assert_eq(forward_new(m, 0, 4, &f4, NULL), DRRL_OK);
    cr_assert_eq(forward_threads(f4), 4);
    cr_assert_eq(forward_tokens(f1, ids, T, a, NULL, NULL), DRRL_OK);
    cr_assert_eq(forward_tokens(f4, ids, T, b, NULL, NULL), DRRL_OK);
    cr_assert_eq(memcmp(a, b, T * V * sizeof *a), 0);
    free(a);
    free(b);
    free(ids);
    forward_free(f1);
    forward_free(f4);
    model_free(m);
}

/* A NaN or an infinity anywhere in a query, key, value or hidden state is
 * an error naming the layer, what and the token (forward.c check_finite,
 * whose fast path is a vectorised scan): token 37 of 40 and, in another
 * run, token 0, each at the last element of its row and at the first. */
Test(forward, non_finite_values_named)
{
    Model *m = random_model(MODEL_ARCH_LLAMA, 2, 4, 2, 32, 8, 48, 64, 256);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = i % 60;
    const struct {
        int tok, col;
        float v;
        const char *want;
    } cases[] = {
        {37, 31, NAN, "layer 0: a query of token 37 is NaN"},
        {0, 0, INFINITY, "layer 0: a query of token 0 is"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Model *mk = random_model(MODEL_ARCH_LLAMA, 2, 4, 2, 32, 8, 48, 64, 256);
        /* a non-finite embedding of the token's id: RMSNorm carries it into q */
        mk->tok_emb[(size_t)ids[cases[k].tok] * 32 + cases[k].col] = cases[k].v;
        Forward *f;
        DrrlError e;
        cr_assert_eq(forward_new(mk, 0, 2, &f, NULL), DRRL_OK);
        cr_assert_eq(forward_tokens(f, ids, 40, NULL, NULL, &e), DRRL_E_NUMERIC);
        cr_assert(strstr(e.msg, cases[k].want) != NULL, "%s", e.msg);
        forward_free(f);
        model_free(mk);
    }
    Forward *f;
    cr_assert_eq(forward_new(m, 0, 2, &f, NULL), DRRL_OK);
    cr_assert_eq(forward_tokens(f, ids, 40, NULL, NULL, NULL), DRRL_OK, "finite: no error");
    forward_free(f);
    model_free(m);
}

/* A forward holds OpenBLAS at one thread with its threads stopped
 * (base/blas.h) until it is freed; OpenBLAS must then start them again for
 * a threaded product, and get it right (against one thread's, within float
 * rounding: the blocking may differ). */
Test(forward, openblas_threads_stopped_and_restarted)
{
    Model *m = random_model(MODEL_ARCH_GPT2, 1, 2, 2, 16, 8, 32, 20, 64);
    Forward *f;
    openblas_set_num_threads(3);
    cr_assert_eq(forward_new(m, 0, 3, &f, NULL), DRRL_OK);
    cr_assert_eq(openblas_get_num_threads(), 1);
    cr_assert_eq(blas_hold_serial(), 0, "held already: nothing to stop");
    blas_release_serial();
    cr_assert_eq(openblas_get_num_threads(), 1, "the forward still holds");
    /* "0 threads" is the user's count, not the held 1: a second forward
     * opened beside the first (bench attention's sessions) got 1 thread */
    cr_assert_eq(blas_threads(), 3);
    cr_assert_eq(par_threads(), 3);
    Forward *f2;
    cr_assert_eq(forward_new(m, 0, 0, &f2, NULL), DRRL_OK);
    cr_assert_eq(forward_threads(f2), 3, "threads 0 beside a held forward: %d",
                 forward_threads(f2));
    forward_free(f2);
    cr_assert_eq(openblas_get_num_threads(), 1, "the first forward still holds");
    forward_free(f);
    cr_assert_eq(blas_threads(), 3);
    cr_assert_eq(openblas_get_num_threads(), 3, "restored when the forward went");
    cr_assert_eq(blas_hold_serial(), 1, "linked BLAS has no blas_thread_shutdown_");
    blas_release_serial();
    enum { N = 300 };
    float *a = malloc(N * N * sizeof *a), *c1 = malloc(N * N * sizeof *c1),
          *c4 = malloc(N * N * sizeof *c4);
    for (int i = 0; i < N * N; i++)
        a[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, N, 1.0f, a, N, a, N, 0.0f, c1,
                N);
    openblas_set_num_threads(4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, N, 1.0f, a, N, a, N, 0.0f, c4,
                N);
    double md = 0.0;
    for (int i = 0; i < N * N; i++)
        md = fmax(md, fabs((double)c1[i] - c4[i]));
    cr_assert_lt(md, 1e-4, "threaded sgemm after the stop: max difference %g", md);
    free(a);
    free(c1);
    free(c4);
    model_free(m);
}

/* A 128-token segment gives each layer only H attention tasks; with more
 * threads the forward splits each block of query rows (see forward.h): the
 * numbers must stay those of 1 thread, bit for bit. Two heads of dimension
 * 64 over 768 tokens in segments of 128, as drrl run feeds them; a hook
 * around the exact one checks the calls were split. */
typedef struct SplitCtx {
    int split_calls;
} SplitCtx;

static DrrlStatus split_counting_head(void *ctx, const ForwardAttnArgs *a, DrrlError *err)
{
    SplitCtx *c = ctx;
    cr_assert(a->n_keys >= a->pos0 + a->n);
    if (a->n < FORWARD_ATTN_BLOCK)
        __atomic_add_fetch(&c->split_calls, 1, __ATOMIC_SEQ_CST);
    return forward_attn_exact(NULL, a, err);
}

Test(forward, split_attention_blocks_keep_bits)
{
    Model *m = random_model(MODEL_ARCH_GPT2, 2, 2, 2, 128, 64, 256, 50, 768);
    size_t T = 768, V = 50, seg = 128;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 7919u + 3u) % V);
    float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b);
    Forward *f1, *f8;
    cr_assert_eq(forward_new(m, 0, 1, &f1, NULL), DRRL_OK);
    cr_assert_eq(forward_new(m, 0, 8, &f8, NULL), DRRL_OK);
    SplitCtx sc = {0};
    ForwardAttn hook = {"split-counting", &sc, split_counting_head, NULL, 0, NULL, 0, 0, NULL};
    forward_set_attn(f8, &hook);
    for (size_t t = 0; t < T; t += seg) {
        cr_assert_eq(forward_tokens(f1, ids + t, seg, a + t * V, NULL, NULL), DRRL_OK);
        cr_assert_eq(forward_tokens(f8, ids + t, seg, b + t * V, NULL, NULL), DRRL_OK);
    }
    cr_assert(sc.split_calls > 0, "no attention block was split");
    cr_assert_eq(memcmp(a, b, T * V * sizeof *a), 0);
    free(a);
    free(b);
    free(ids);
    forward_free(f1);
    forward_free(f8);
    model_free(m);
}

/* ---- the attention hook ---- */

typedef struct HookCtx {
    int calls[2][8];
    int layer_begins;
    int fail_layer;
    size_t max_rows;
} HookCtx;

static DrrlStatus counting_head(void *ctx, const ForwardAttnArgs *a, DrrlError *err)
{
    HookCtx *h = ctx;
    if (a->layer == h->fail_layer)
        return drrl_error(err, DRRL_E_INTERNAL, "hook: refused layer %d", a->layer);
    __atomic_add_fetch(&h->calls[a->layer][a->head], 1, __ATOMIC_SEQ_CST);
    cr_assert_eq(a->n_keys, a->pos0 + a->n);
    cr_assert(a->n <= h->max_rows);
    /* Head h of 4 with 2 kv heads uses kv head h / 2. */
    cr_assert_eq(a->kv_head, a->head / 2);
    return forward_attn_exact(NULL, a, err);
}

static DrrlStatus counting_layer(void *ctx, int layer, size_t pos0, size_t n, const float *q,
                                 DrrlError *err)
{
    HookCtx *h = ctx;
    h->layer_begins++;
    (void)layer;
    (void)pos0;
    (void)n;
    (void)q;
    (void)err;
    return DRRL_OK;
}

static size_t five_rows_past_layer0(void *ctx, int layer, size_t pos0, size_t n)
{
    (void)ctx, (void)pos0, (void)n;
    return layer > 0 ? 5 : 0;
}

/* A pass of T ids through hook (counting into hc, at most max_rows per
 * call) into b: the numbers of a, up to rounding. */
static void counting_pass(Forward *f, ForwardAttn *hook, HookCtx *hc, size_t max_rows,
                          const int32_t *ids, size_t T, float *b, const float *a, size_t V)
{
    memset(hc, 0, sizeof *hc);
    hc->fail_layer = -1;
    hc->max_rows = max_rows;
    forward_set_attn(f, hook);
    forward_reset(f);
    cr_assert_eq(forward_tokens(f, ids, T, b, NULL, NULL), DRRL_OK);
    cr_assert(rel_diff(b, a, T * V) <= TOL_INCREMENTAL);
}

Test(forward, hook_replaces_attention_per_head)
{
    Model *m = random_model(MODEL_ARCH_LLAMA, 2, 4, 2, 32, 8, 48, 64, 256);
    size_t T = 100, V = 64;
    int32_t ids[100];
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 31) % V);
    float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b);
    Forward *f;
    cr_assert_eq(forward_new(m, 0, 2, &f, NULL), DRRL_OK);
    cr_assert_eq(forward_tokens(f, ids, T, a, NULL, NULL), DRRL_OK);

    HookCtx hc;
    memset(&hc, 0, sizeof hc);
    hc.fail_layer = -1;
    hc.max_rows = FORWARD_ATTN_BLOCK;
    ForwardAttn hook = {"counting", &hc, counting_head, counting_layer, 0, NULL, 0, 0, NULL};
    forward_set_attn(f, &hook);
    forward_reset(f);
    cr_assert_eq(forward_tokens(f, ids, T, b, NULL, NULL), DRRL_OK);
    cr_assert_eq(memcmp(a, b, T * V * sizeof *a), 0); /* exact through the hook */
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 4; h++)
            cr_assert_eq(hc.calls[l][h], 1);
    cr_assert_eq(hc.layer_begins, 2);

    /* Smaller row blocks: more calls, same numbers up to rounding. */
    hook.rows_per_call = 16;
    counting_pass(f, &hook, &hc, 16, ids, T, b, a, V);
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 4; h++)
            cr_assert_eq(hc.calls[l][h], 7); /* ceil(100 / 16) row blocks */

    /* Rows per call from piece_rows, asked per piece: 0 (layer 0 here)
     * keeps rows_per_call, else it wins. */
    hook.piece_rows = five_rows_past_layer0;
    counting_pass(f, &hook, &hc, 16, ids, T, b, a, V);
    for (int h = 0; h < 4; h++) {
        cr_assert_eq(hc.calls[0][h], 7);
        cr_assert_eq(hc.calls[1][h], 20); /* 100 / 5 */
    }
    hook.piece_rows = NULL;
    forward_set_attn(f, &hook);

    /* A hook's error stops the pass and leaves the cache as it was. */
    hc.fail_layer = 1;
    DrrlError e;
    size_t before = forward_len(f);
    cr_assert_eq(forward_tokens(f, ids, 5, b, NULL, &e), DRRL_E_INTERNAL);
    cr_assert(strstr(e.msg, "refused layer 1") != NULL);
    cr_assert_eq(forward_len(f), before);

    forward_set_attn(f, NULL);
    forward_reset(f);
    cr_assert_eq(forward_tokens(f, ids, T, b, NULL, NULL), DRRL_OK);
    cr_assert_eq(memcmp(a, b, T * V * sizeof *a), 0);
    free(a);
    free(b);
    forward_free(f);
    model_free(m);
}

/* A segmented hook (ForwardAttn.segment): one call over several segments,
 * starting and ending inside one, gives the bits of one call per piece
 * (logits, hidden states, attention rows), calls layer_begin once per piece
 * and layer, in order, and hands the logits out a piece at a time
 * (forward_logits) with the same bits. */
typedef struct PieceCtx {
    int begins, calls;
    size_t last_pos0[4], call_pos0, call_n;
} PieceCtx;

static DrrlStatus piece_layer(void *ctx, int layer, size_t pos0, size_t n, const float *q,
                              DrrlError *err)
{
    PieceCtx *p = ctx;
    (void)q, (void)err;
    cr_assert(p->begins == 0 || pos0 > p->last_pos0[layer] || pos0 == p->call_pos0);
    cr_assert_eq(pos0 / 16, (pos0 + n - 1) / 16, "a piece crosses a segment");
    p->last_pos0[layer] = pos0;
    p->begins++;
    return DRRL_OK;
}

static DrrlStatus piece_call(void *ctx, size_t pos0, size_t n, DrrlError *err)
{
    PieceCtx *p = ctx;
    (void)err;
    p->call_pos0 = pos0, p->call_n = n, p->calls++;
    return DRRL_OK;
}

Test(forward, pieces_of_a_segmented_hook_keep_bits)
{
    for (int together = 0; together < 2; together++)
        for (int arch = 0; arch < 2; arch++) {
            Model *m = random_model(arch ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2, 2, 4,
                                    arch ? 2 : 4, 96, 24, 160, 50, 256);
            size_t T = 100, V = 50, C = 96, L = 2, H = 4, seg = 16, cut = 7;
            int32_t ids[100];
            for (size_t i = 0; i < T; i++)
                ids[i] = (int32_t)((i * 7919u + 3u) % V);
            float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b);
            float *c = malloc(T * V * sizeof *c);
            float *ha = calloc((L + 1) * T * C, sizeof *ha),
                  *pa = calloc(L * H * T * T, sizeof *pa);
            PieceCtx pc;
            memset(&pc, 0, sizeof pc);
            ForwardAttn hook = {"pieces",   &pc, NULL,     piece_layer, 0,
                                piece_call, seg, together, NULL};
            Forward *f;
            cr_assert_eq(forward_new(m, 0, 3, &f, NULL), DRRL_OK);
            forward_set_attn(f, &hook);
            /* one call per piece: [0, cut), then up to each boundary */
            for (size_t t = 0; t < T;) {
                size_t n = t < cut ? cut : (t / seg + 1) * seg - t;
                if (n > T - t)
                    n = T - t;
                float *hid = malloc((L + 1) * n * C * sizeof *hid);
                float *att = malloc(L * H * n * T * sizeof *att);
                ForwardCapture cap = {hid, att, T};
                cr_assert_eq(forward_tokens(f, ids + t, n, a + t * V, &cap, NULL), DRRL_OK);
                for (size_t l = 0; l <= L; l++)
                    memcpy(ha + (l * T + t) * C, hid + l * n * C, n * C * sizeof *hid);
                for (size_t lh = 0; lh < L * H; lh++)
                    memcpy(pa + (lh * T + t) * T, att + lh * n * T, n * T * sizeof *att);
                free(hid), free(att);
                t += n;
            }
            cr_assert_eq(pc.calls, 8); /* [0,7) [7,16) ... [96,100) */
            /* [0, cut) then one call over the rest: a head piece, five
             * whole segments and a tail */
            forward_reset(f);
            memset(&pc, 0, sizeof pc);
            cr_assert_eq(forward_tokens(f, ids, cut, b, NULL, NULL), DRRL_OK);
            size_t n = T - cut;
            float *hid = malloc((L + 1) * n * C * sizeof *hid);
            float *att = malloc(L * H * n * T * sizeof *att);
            ForwardCapture cap = {hid, att, T};
            cr_assert_eq(forward_tokens(f, ids + cut, n, b + cut * V, &cap, NULL), DRRL_OK);
            cr_assert_eq(pc.calls, 2);
            cr_assert_eq(pc.begins, (int)(L * (1 + 7)), "%d layer_begins", pc.begins);
            cr_assert_eq(memcmp(a, b, T * V * sizeof *a), 0, "logits differ");
            for (size_t l = 0; l <= L; l++)
                cr_assert_eq(
                    memcmp(ha + (l * T + cut) * C, hid + l * n * C, n * C * sizeof *hid), 0,
                    "hidden states of layer %zu differ", l);
            for (size_t lh = 0; lh < L * H; lh++)
                cr_assert_eq(
                    memcmp(pa + (lh * T + cut) * T, att + lh * n * T, n * T * sizeof *att), 0,
                    "attention rows differ");
            /* the same call without logits, handed out a piece at a time */
            forward_reset(f);
            cr_assert_eq(forward_tokens(f, ids, cut, c, NULL, NULL), DRRL_OK);
            cr_assert_eq(forward_tokens(f, ids + cut, n, NULL, NULL, NULL), DRRL_OK);
            for (size_t r0 = 0, pn = seg - cut; r0 < n;
                 r0 += pn, pn = n - r0 < seg ? n - r0 : seg)
                cr_assert_eq(forward_logits(f, r0, pn, c + (cut + r0) * V, NULL), DRRL_OK);
            cr_assert_eq(memcmp(a, c, T * V * sizeof *a), 0, "forward_logits differ");
            DrrlError e;
            cr_assert_eq(forward_logits(f, n - 1, 2, c, &e), DRRL_E_USAGE);
            free(hid), free(att);
            free(a), free(b), free(c), free(ha), free(pa);
            forward_free(f);
            model_free(m);
        }
}

Test(forward, bad_ids_and_positions)
{
    Model *m = random_model(MODEL_ARCH_GPT2, 1, 2, 2, 16, 8, 32, 20, 8);
    Forward *f;
    cr_assert_eq(forward_new(m, 0, 1, &f, NULL), DRRL_OK);
    DrrlError e;
    int32_t bad[2] = {3, 20};
    cr_assert_eq(forward_tokens(f, bad, 2, NULL, NULL, &e), DRRL_E_USAGE);
    cr_assert(strstr(e.msg, "id 20") != NULL, "%s", e.msg);
    int32_t neg = -1;
    cr_assert_eq(forward_tokens(f, &neg, 1, NULL, NULL, &e), DRRL_E_USAGE);
    int32_t ids[9] = {0};
    cr_assert_eq(forward_tokens(f, ids, 9, NULL, NULL, &e), DRRL_E_USAGE);
    cr_assert(strstr(e.msg, "positions") != NULL, "%s", e.msg);
    cr_assert_eq(forward_tokens(f, ids, 8, NULL, NULL, &e), DRRL_OK);
    cr_assert_eq(forward_tokens(f, ids, 1, NULL, NULL, &e), DRRL_E_USAGE);
    cr_assert_eq(forward_len(f), 8);
    cr_assert_eq(forward_tokens(f, ids, 0, NULL, NULL, &e), DRRL_OK);
    forward_free(f);
    forward_free(NULL);
    model_free(m);
}

Test(forward, loss_of_uniform_logits_is_log_vocab)
{
    float logits[3 * 10] = {0};
    int32_t ids[3] = {1, 2, 3};
    cr_assert_float_eq(forward_loss(logits, ids, 3, 10), log(10.0), 1e-12);
}

/* The softmax's exp: within 2 ulp of exp() over the range that matters. */
Test(forward, exp_nonpos_is_accurate)
{
    double worst = test_exp_worst_ulp(forward_exp_nonpos);
    cr_assert(worst <= 2.0, "exp error %.2f ulp", worst);
    cr_assert_eq(forward_exp_nonpos(0.0f), 1.0f);
    cr_assert_eq(forward_exp_nonpos(-100.0f), 0.0f);
    cr_assert_eq(forward_exp_nonpos(-INFINITY), 0.0f);
}
