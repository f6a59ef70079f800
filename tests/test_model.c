/* Model loading: configs of both families, dtypes, shards, and every kind of
 * bad checkpoint (one-line errors naming the file and the tensor). */
#include <criterion/criterion.h>

#include "test_util.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "base/xxh64.h"
#include "model/model.h"
#include "model/safetensors.h"

TEST_SUITE_TMPDIR(model, tmp, "model");

static Model *load_ok(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES_DIR, name);
    Model *m;
    DrrlError e;
    cr_assert_eq(model_load(dir, &m, &e), DRRL_OK, "%s", e.msg);
    return m;
}

/* Number of elements stored in a safetensors file. */
static size_t stored_params(const char *path)
{
    Safetensors *st;
    cr_assert_eq(safetensors_load(path, &st, NULL), DRRL_OK);
    size_t n = 0;
    for (size_t i = 0; i < st->n_tensors; i++)
        n += st->tensors[i].numel;
    safetensors_free(st);
    return n;
}

Test(model, gpt2_config_and_counts)
{
    Model *m = load_ok("gpt2-tiny-b");
    const ModelConfig *c = &m->cfg;
    cr_assert_eq(c->arch, MODEL_ARCH_GPT2);
    cr_assert_str_eq(c->arch_name, "GPT2LMHeadModel");
    cr_assert_eq(c->n_layer, 2);
    cr_assert_eq(c->n_head, 2);
    cr_assert_eq(c->n_kv_head, 2);
    cr_assert_eq(c->d_model, 32);
    cr_assert_eq(c->head_dim, 16);
    cr_assert_eq(c->d_ff, 128);
    cr_assert_eq(c->vocab, 97);
    cr_assert_eq(c->n_ctx, 64);
    cr_assert(c->tied);
    cr_assert_str_eq(c->dtype, "F32");
    cr_assert_eq(m->lm_head, m->tok_emb);
    cr_assert_eq(m->n_params, stored_params(FIXTURES_DIR "/gpt2-tiny-b/model.safetensors"));
    cr_assert_eq(m->hash[0], '\0'); /* not computed until asked: a load never waits */
    cr_assert_eq(strlen(model_hash(m)), 16);
    cr_assert_eq(model_hash(m), m->hash); /* then cached */
    /* Conv1D [in, out] is transposed: wq row o (output o) holds c_attn
     * column o. */
    Safetensors *st;
    cr_assert_eq(safetensors_load(FIXTURES_DIR "/gpt2-tiny-b/model.safetensors", &st, NULL),
                 DRRL_OK);
    const SafetensorsTensor *t = safetensors_find(st, "transformer.h.1.attn.c_attn.weight");
    float *w = malloc(t->numel * sizeof *w);
    safetensors_to_f32(st, t, w, NULL);
    size_t C = 32;
    /* element (in=3, out=C+5) is k's output 5, input 3 */
    cr_assert_eq(m->wk[1 * C * C + 5 * C + 3], w[3 * 3 * C + C + 5]);
    free(w);
    safetensors_free(st);

    /* The hash is a function of the weights. */
    Model *m2 = load_ok("gpt2-tiny-b");
    cr_assert_str_eq(model_hash(m), model_hash(m2));
    m2->wo[7] += 1e-3f;
    model_rehash(m2);
    cr_assert_str_neq(model_hash(m), model_hash(m2));
    model_free(m2);
    model_free(m);
    model_free(NULL);
}

Test(model, llama_configs)
{
    Model *m = load_ok("llama-tiny-b");
    cr_assert_eq(m->cfg.arch, MODEL_ARCH_LLAMA);
    cr_assert_eq(m->cfg.rope_theta, 10000.0); /* rope_parameters.rope_theta */
    cr_assert(m->cfg.tied);
    cr_assert_eq(m->cfg.d_ff, 88);
    cr_assert_null(m->pos_emb);
    cr_assert_eq(m->n_params, stored_params(FIXTURES_DIR "/llama-tiny-b/model.safetensors"));
    model_free(m);

    m = load_ok("llama-gqa-bf16");
    cr_assert_eq(m->cfg.n_head, 4);
    cr_assert_eq(m->cfg.n_kv_head, 2);
    cr_assert_eq(m->cfg.head_dim, 12);
    cr_assert_eq(m->cfg.rope_theta, 500000.0); /* top-level rope_theta */
    cr_assert(!m->cfg.tied);
    cr_assert(m->cfg.attn_bias);
    cr_assert_neq(m->lm_head, m->tok_emb);
    cr_assert_str_eq(m->cfg.dtype, "BF16");
    cr_assert_eq(m->n_params, stored_params(FIXTURES_DIR "/llama-gqa-bf16/model.safetensors"));
    cr_assert_eq(m->n_params, model_param_count(&m->cfg));
    model_free(m);

    m = load_ok("llama-sharded-f16");
    cr_assert_str_eq(m->cfg.dtype, "F16");
    cr_assert_eq(m->cfg.n_kv_head, 2);
    model_free(m);
}

/* ---- bad checkpoints ---- */

typedef enum { MOD_NONE, MOD_DROP, MOD_SHAPE, MOD_NAN, MOD_INF, MOD_DTYPE } Mod;

/* Copy fixtures/llama-tiny-b (or gpt2-tiny-b) into tmp/NAME with one tensor
 * modified. Returns the directory. */
static const char *make_dir(const char *fixture, const char *name, Mod mod, const char *target)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/%s/config.json", FIXTURES_DIR, fixture);
    char *cfg = test_slurp(src, NULL);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    test_spit(dst, cfg);
    free(cfg);

    snprintf(src, sizeof src, "%s/%s/model.safetensors", FIXTURES_DIR, fixture);
    Safetensors *st;
    cr_assert_eq(safetensors_load(src, &st, NULL), DRRL_OK);
    SafetensorsWriteTensor *w = calloc(st->n_tensors, sizeof *w);
    float **bufs = calloc(st->n_tensors, sizeof *bufs);
    size_t n = 0;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const SafetensorsTensor *t = &st->tensors[i];
        int hit = target && strcmp(t->name, target) == 0;
        if (hit && mod == MOD_DROP)
            continue;
        bufs[i] = malloc(t->numel * sizeof(float));
        safetensors_to_f32(st, t, bufs[i], NULL);
        w[n].name = t->name;
        w[n].dtype = SAFETENSORS_F32;
        w[n].ndim = t->ndim;
        memcpy(w[n].shape, t->shape, sizeof t->shape);
        w[n].data = bufs[i];
        if (hit && mod == MOD_SHAPE) {
            w[n].shape[0] = t->shape[0] / 2; /* a smaller tensor */
        } else if (hit && mod == MOD_NAN) {
            bufs[i][t->numel - 1] = NAN;
        } else if (hit && mod == MOD_INF) {
            bufs[i][0] = -INFINITY;
        } else if (hit && mod == MOD_DTYPE) {
            w[n].dtype = SAFETENSORS_I32;
        }
        n++;
    }
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    cr_assert_eq(safetensors_write(dst, w, n, "{\"format\":\"pt\"}", NULL), DRRL_OK);
    for (size_t i = 0; i < st->n_tensors; i++)
        free(bufs[i]);
    free(bufs);
    free(w);
    safetensors_free(st);
    return dir;
}

static void expect_fail(const char *dir, DrrlStatus code, const char *f1, const char *f2,
                        const char *f3)
{
    Model *m = (Model *)1;
    DrrlError e;
    DrrlStatus s = model_load(dir, &m, &e);
    cr_assert_eq(s, code, "expected status %d, got %d: %s", code, s, e.msg);
    cr_assert_null(m);
    cr_assert(strchr(e.msg, '\n') == NULL);
    const char *frags[] = {f1, f2, f3};
    for (int i = 0; i < 3; i++)
        if (frags[i])
            cr_assert(strstr(e.msg, frags[i]) != NULL, "message lacks '%s': %s", frags[i],
                      e.msg);
}

#define Q "model.layers.1.self_attn.q_proj.weight"

Test(model, unmodified_copy_loads)
{
    const char *d = make_dir("llama-tiny-b", "ok", MOD_NONE, NULL);
    Model *m;
    DrrlError e;
    cr_assert_eq(model_load(d, &m, &e), DRRL_OK, "%s", e.msg);
    Model *ref = load_ok("llama-tiny-b");
    cr_assert_str_eq(model_hash(m), model_hash(ref));
    model_free(ref);
    model_free(m);
}

Test(model, missing_directory_and_files)
{
    char p[512];
    snprintf(p, sizeof p, "%s/absent", tmp);
    expect_fail(p, DRRL_E_NOTFOUND, "absent", NULL, NULL);
    expect_fail(FIXTURES_DIR "/README.md", DRRL_E_INPUT, "not a directory", NULL, NULL);
    expect_fail(tmp, DRRL_E_NOTFOUND, "config.json", NULL, NULL);
    const char *d = make_dir("llama-tiny-b", "noweights", MOD_NONE, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    expect_fail(d, DRRL_E_NOTFOUND, "noweights", "no model.safetensors", NULL);
}

Test(model, missing_tensor_names_file_and_tensor)
{
    const char *d = make_dir("llama-tiny-b", "drop", MOD_DROP, Q);
    expect_fail(d, DRRL_E_INPUT, "drop/model.safetensors", "'" Q "'", "missing");
    d = make_dir("gpt2-tiny-b", "drop2", MOD_DROP, "transformer.ln_f.bias");
    expect_fail(d, DRRL_E_INPUT, "drop2/model.safetensors", "'transformer.ln_f.bias'",
                "missing");
}

Test(model, wrong_shape)
{
    const char *d = make_dir("llama-tiny-b", "shape", MOD_SHAPE, Q);
    expect_fail(d, DRRL_E_INPUT, "shape/model.safetensors", "'" Q "'",
                "shape [16, 32] but the config needs [32, 32]");
}

Test(model, non_finite_values)
{
    const char *d = make_dir("llama-tiny-b", "nan", MOD_NAN, Q);
    expect_fail(d, DRRL_E_INPUT, "nan/model.safetensors", "'" Q "'", "nan at [31, 31]");
    d = make_dir("gpt2-tiny-b", "inf", MOD_INF, "transformer.wpe.weight");
    expect_fail(d, DRRL_E_INPUT, "'transformer.wpe.weight'", "inf at [0, 0]", NULL);
}

/* A BF16 Llama whose embedding (V x 32, V = 8200: five conversion blocks of
 * 65,536 values) is converted on several threads: every value lands where
 * it belongs, and of two non-finite values the first in the tensor is
 * reported, whichever thread met it first. nan_at[] lists flat indices to
 * poison (-1 for none). Returns the directory. */
static const char *make_big_bf16(const char *name, const long *nan_at, int n_nan)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/llama-tiny-b/config.json", FIXTURES_DIR);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_object_set_new(cfg, "vocab_size", json_integer(8200));
    snprintf(path, sizeof path, "%s/config.json", dir);
    cr_assert_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);

    snprintf(path, sizeof path, "%s/llama-tiny-b/model.safetensors", FIXTURES_DIR);
    Safetensors *st;
    cr_assert_eq(safetensors_load(path, &st, NULL), DRRL_OK);
    SafetensorsWriteTensor *w = calloc(st->n_tensors, sizeof *w);
    uint16_t **bufs = calloc(st->n_tensors, sizeof *bufs);
    for (size_t i = 0; i < st->n_tensors; i++) {
        const SafetensorsTensor *t = &st->tensors[i];
        w[i].name = t->name;
        w[i].dtype = SAFETENSORS_BF16;
        w[i].ndim = t->ndim;
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        int emb = strcmp(t->name, "model.embed_tokens.weight") == 0;
        size_t n = t->numel;
        if (emb)
            n = (size_t)(w[i].shape[0] = 8200) * t->shape[1];
        float *f = malloc(n * sizeof *f);
        if (emb)
            for (size_t k = 0; k < n; k++)
                f[k] = (float)((long)(k % 251) - 125) / 64.0f; /* exact in BF16 */
        else
            safetensors_to_f32(st, t, f, NULL);
        for (int k = 0; emb && k < n_nan; k++)
            f[nan_at[k]] = NAN;
        bufs[i] = malloc(n * sizeof **bufs);
        for (size_t k = 0; k < n; k++)
            bufs[i][k] = safetensors_f32_to_bf16(f[k]);
        free(f);
        w[i].data = bufs[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(safetensors_write(path, w, st->n_tensors, NULL, NULL), DRRL_OK);
    for (size_t i = 0; i < st->n_tensors; i++)
        free(bufs[i]);
    free(bufs);
    free(w);
    safetensors_free(st);
    return dir;
}

Test(model, large_tensors_convert_in_parallel)
{
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(3); /* par_threads(): more than one, on any machine */
    const char *d = make_big_bf16("big", NULL, 0);
    Model *m;
    DrrlError e;
    cr_assert_eq(model_load(d, &m, &e), DRRL_OK, "%s", e.msg);
    cr_assert_str_eq(m->cfg.dtype, "BF16");
    for (size_t k = 0; k < (size_t)8200 * 32; k++)
        cr_assert_eq(m->tok_emb[k], (float)((long)(k % 251) - 125) / 64.0f, "element %zu", k);
    model_free(m);
    const long at[] = {200000 + 5, 70000}; /* blocks 3 and 1; 70000 = [2187, 16] */
    d = make_big_bf16("bignan", at, 2);
    expect_fail(d, DRRL_E_INPUT, "'model.embed_tokens.weight'", "nan at [2187, 16]", NULL);
    openblas_set_num_threads(saved);
}

/* XXH64 against `xxhsum -H1` (xxHash 0.8.1) on the same bytes, one shot
 * and fed in pieces that cross its 32-byte stripes. */
Test(model, xxh64_matches_xxhsum)
{
    cr_assert_eq(xxh64("", 0, 0), 0xef46db3751d8e999ull);
    cr_assert_eq(xxh64("abc", 3, 0), 0x44bc2cf5ad770999ull);
    unsigned char b[1025];
    for (int i = 0; i < 1024; i++)
        b[i] = (unsigned char)i;
    b[1024] = 'x';
    cr_assert_eq(xxh64(b, sizeof b, 0), 0xd45268781c4d3e74ull);
    Xxh64 s;
    xxh64_init(&s, 0);
    for (size_t i = 0, k = 1; i < sizeof b; i += k, k = k * 3 % 41 + 1)
        xxh64_update(&s, b + i, k < sizeof b - i ? k : sizeof b - i);
    cr_assert_eq(xxh64_digest(&s), 0xd45268781c4d3e74ull);
}

/* The weights hash as man/drrl-trace.5 defines it, computed here in one
 * thread: XXH64 of each 1 MiB of the float32 arena, then XXH64 of those
 * digests (8-byte little-endian) and ten 4-byte sizes. */
static void spec_hash(const Model *m, char out[17])
{
    const unsigned char *p = (const unsigned char *)m->arena;
    size_t n = m->arena_floats * sizeof(float), chunk = (size_t)1 << 20;
    Xxh64 top;
    xxh64_init(&top, 0);
    for (size_t off = 0; off < n; off += chunk) {
        uint64_t h = xxh64(p + off, n - off < chunk ? n - off : chunk, 0);
        unsigned char le[8];
        for (int k = 0; k < 8; k++)
            le[k] = (unsigned char)(h >> (8 * k));
        xxh64_update(&top, le, 8);
    }
    const ModelConfig *c = &m->cfg;
    int32_t dims[10] = {c->arch,     c->n_layer, c->n_head, c->n_kv_head, c->d_model,
                        c->head_dim, c->d_ff,    c->vocab,  c->n_ctx,     c->tied};
    xxh64_update(&top, dims, sizeof dims);
    snprintf(out, 17, "%016llx", (unsigned long long)xxh64_digest(&top));
}

/* A model of more than one chunk: the hash follows the definition and does
 * not depend on the thread count; the old one is still there by name and is
 * what drrl printed before (FNV-1a, `drrl info` at 97b8b34 for the
 * fixtures). */
Test(model, weights_hash_by_definition_and_any_thread_count)
{
    int saved = openblas_get_num_threads();
    Model *m;
    DrrlError e;
    cr_assert_eq(model_load(make_big_bf16("bighash", NULL, 0), &m, &e), DRRL_OK, "%s", e.msg);
    cr_assert_gt(m->arena_floats * sizeof(float), (size_t)1 << 20);
    char want[17];
    spec_hash(m, want);
    for (int t = 1; t <= 5; t += 2) {
        openblas_set_num_threads(t);
        model_rehash(m);
        cr_assert_str_eq(model_hash(m), want, "%d threads", t);
    }
    openblas_set_num_threads(saved);
    cr_assert_eq(model_hash_by(m, MODEL_HASH_ALGO), model_hash(m));
    cr_assert_null(model_hash_by(m, "md5"));
    cr_assert_null(model_hash_by(m, NULL));
    model_free(m);
    m = load_ok("gpt2-tiny-b");
    cr_assert_str_eq(model_hash_by(m, MODEL_HASH_ALGO_V1), "d0e943444c675d13");
    model_free(m);
    m = load_ok("llama-tiny-b");
    cr_assert_str_eq(model_hash_by(m, MODEL_HASH_ALGO_V1), "63ca415f4fc7e81c");
    model_free(m);
}

Test(model, wrong_dtype)
{
    const char *d = make_dir("llama-tiny-b", "dtype", MOD_DTYPE, Q);
    expect_fail(d, DRRL_E_INPUT, "'" Q "'", "dtype I32", NULL);
}

Test(model, truncated_safetensors)
{
    const char *d = make_dir("llama-tiny-b", "trunc", MOD_NONE, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    struct stat sb;
    stat(p, &sb);
    cr_assert_eq(truncate(p, sb.st_size - 100), 0);
    expect_fail(d, DRRL_E_INPUT, "trunc/model.safetensors", "truncated", NULL);
    cr_assert_eq(truncate(p, 5), 0);
    expect_fail(d, DRRL_E_INPUT, "trunc/model.safetensors", "too short", NULL);
}

static void set_config(const char *dir, const char *key, json_t *value)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *root = json_load_file(p, 0, NULL);
    cr_assert_not_null(root);
    if (value)
        json_object_set_new(root, key, value);
    else
        json_object_del(root, key);
    cr_assert_eq(json_dump_file(root, p, JSON_INDENT(2)), 0);
    json_decref(root);
}

Test(model, config_errors)
{
    const char *d = make_dir("llama-tiny-b", "cfg", MOD_NONE, NULL);
    set_config(d, "architectures", json_pack("[s]", "BertForMaskedLM"));
    expect_fail(d, DRRL_E_INPUT, "cfg/config.json",
                "architecture 'BertForMaskedLM' is not supported",
                "GPT2LMHeadModel, LlamaForCausalLM");

    d = make_dir("llama-tiny-b", "cfg2", MOD_NONE, NULL);
    set_config(d, "num_hidden_layers", NULL);
    expect_fail(d, DRRL_E_INPUT, "cfg2/config.json", "'num_hidden_layers'", NULL);

    d = make_dir("llama-tiny-b", "cfg3", MOD_NONE, NULL);
    set_config(d, "hidden_size", json_string("32"));
    expect_fail(d, DRRL_E_INPUT, "'hidden_size'", NULL, NULL);

    d = make_dir("llama-tiny-b", "cfg4", MOD_NONE, NULL);
    set_config(d, "num_key_value_heads", json_integer(3));
    expect_fail(d, DRRL_E_INPUT, "num_key_value_heads 3", NULL, NULL);

    d = make_dir("llama-tiny-b", "cfg5", MOD_NONE, NULL);
    set_config(d, "hidden_act", json_string("relu"));
    expect_fail(d, DRRL_E_INPUT, "hidden_act 'relu'", NULL, NULL);

    /* More layers in the config than in the file: the first absent tensor. */
    d = make_dir("llama-tiny-b", "cfg6", MOD_NONE, NULL);
    set_config(d, "num_hidden_layers", json_integer(3));
    expect_fail(d, DRRL_E_INPUT, "'model.layers.2.input_layernorm.weight' is missing", NULL,
                NULL);

    d = make_dir("llama-tiny-b", "cfg7", MOD_NONE, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", d);
    test_spit(p, "{\"architectures\": [\"LlamaForCausalLM\"],\n  \"hidden_size\": 32,,}");
    expect_fail(d, DRRL_E_INPUT, "cfg7/config.json:2:", NULL, NULL);

    d = make_dir("gpt2-tiny-b", "cfg8", MOD_NONE, NULL);
    set_config(d, "activation_function", json_string("relu"));
    expect_fail(d, DRRL_E_INPUT, "activation_function 'relu'", NULL, NULL);

    /* drrl's byte-level marker is kept for the tokenizer. */
    d = make_dir("llama-tiny-b", "cfg9", MOD_NONE, NULL);
    set_config(d, "drrl_tokenizer", json_string("byte"));
    ModelConfig c;
    cr_assert_eq(model_config_load(d, &c, NULL), DRRL_OK);
    cr_assert_str_eq(c.tokenizer, "byte");
    set_config(d, "drrl_tokenizer", json_string("sentencepiece"));
    expect_fail(d, DRRL_E_INPUT, "drrl_tokenizer", NULL, NULL);

    /* Untied Llama needs lm_head.weight. */
    d = make_dir("llama-tiny-b", "cfg10", MOD_NONE, NULL);
    set_config(d, "tie_word_embeddings", json_false());
    expect_fail(d, DRRL_E_INPUT, "'lm_head.weight' is missing", NULL, NULL);
}

/* A sharded copy of llama-tiny-b: layers in one file, the rest in another. */
static const char *make_sharded(const char *name)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/llama-tiny-b/config.json", FIXTURES_DIR);
    char *cfg = test_slurp(src, NULL);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    test_spit(dst, cfg);
    free(cfg);
    snprintf(src, sizeof src, "%s/llama-tiny-b/model.safetensors", FIXTURES_DIR);
    Safetensors *st;
    cr_assert_eq(safetensors_load(src, &st, NULL), DRRL_OK);
    SafetensorsWriteTensor *w[2];
    size_t n[2] = {0, 0};
    w[0] = calloc(st->n_tensors, sizeof **w);
    w[1] = calloc(st->n_tensors, sizeof **w);
    json_t *map = json_object();
    for (size_t i = 0; i < st->n_tensors; i++) {
        const SafetensorsTensor *t = &st->tensors[i];
        int part = strstr(t->name, "layers.") ? 0 : 1;
        SafetensorsWriteTensor *x = &w[part][n[part]++];
        x->name = t->name;
        x->dtype = t->dtype;
        x->ndim = t->ndim;
        memcpy(x->shape, t->shape, sizeof t->shape);
        x->data = t->data;
        json_object_set_new(map, t->name,
                            json_string(part ? "model-00002-of-00002.safetensors"
                                             : "model-00001-of-00002.safetensors"));
    }
    snprintf(dst, sizeof dst, "%s/model-00001-of-00002.safetensors", dir);
    cr_assert_eq(safetensors_write(dst, w[0], n[0], NULL, NULL), DRRL_OK);
    snprintf(dst, sizeof dst, "%s/model-00002-of-00002.safetensors", dir);
    cr_assert_eq(safetensors_write(dst, w[1], n[1], NULL, NULL), DRRL_OK);
    json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", map);
    snprintf(dst, sizeof dst, "%s/model.safetensors.index.json", dir);
    cr_assert_eq(json_dump_file(idx, dst, JSON_INDENT(2)), 0);
    json_decref(idx);
    free(w[0]);
    free(w[1]);
    safetensors_free(st);
    return dir;
}

/* make_sharded(name) with the index's entry for model.norm.weight naming the
 * shard file (NULL: the entry removed). */
static const char *sharded_with_norm_in(const char *name, const char *file)
{
    const char *d = make_sharded(name);
    const char *p = test_path(d, "model.safetensors.index.json");
    json_t *idx = json_load_file(p, 0, NULL);
    cr_assert_not_null(idx);
    json_t *map = json_object_get(idx, "weight_map");
    if (file)
        json_object_set_new(map, "model.norm.weight", json_string(file));
    else
        json_object_del(map, "model.norm.weight");
    cr_assert_eq(json_dump_file(idx, p, 0), 0);
    json_decref(idx);
    return d;
}

Test(model, sharded_checkpoints)
{
    const char *d = make_sharded("sh");
    Model *m;
    DrrlError e;
    cr_assert_eq(model_load(d, &m, &e), DRRL_OK, "%s", e.msg);
    Model *ref = load_ok("llama-tiny-b");
    cr_assert_str_eq(model_hash(m), model_hash(ref)); /* same weights, however stored */
    model_free(ref);
    model_free(m);

    /* A shard file that is gone. */
    d = make_sharded("sh2");
    char p[600];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    unlink(p);
    expect_fail(d, DRRL_E_NOTFOUND, "sh2/model-00001-of-00002.safetensors", NULL, NULL);

    /* A tensor the index does not list. */
    d = sharded_with_norm_in("sh3", NULL);
    expect_fail(d, DRRL_E_INPUT, "sh3/model.safetensors.index.json", "'model.norm.weight'",
                "missing");

    /* The index points at the wrong shard. */
    d = sharded_with_norm_in("sh4", "model-00001-of-00002.safetensors");
    expect_fail(d, DRRL_E_INPUT, "sh4/model-00001-of-00002.safetensors", "'model.norm.weight'",
                "missing from the file");

    /* A shard name that escapes the directory. */
    d = sharded_with_norm_in("sh5", "../sh/model-00002-of-00002.safetensors");
    expect_fail(d, DRRL_E_INPUT, "not a file in the directory", NULL, NULL);
}

Test(model, model_new_checks_heads)
{
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_LLAMA;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = 3;
    c.d_model = 32;
    c.d_ff = 64;
    c.vocab = 10;
    c.n_ctx = 16;
    Model *m;
    cr_assert_eq(model_new(&c, &m, NULL), DRRL_E_USAGE);
    c.n_kv_head = 2;
    cr_assert_eq(model_new(&c, &m, NULL), DRRL_OK);
    cr_assert_eq(m->cfg.head_dim, 8);
    cr_assert_eq(m->n_params, model_param_count(&m->cfg));
    cr_assert_eq(m->arena_floats, m->n_params);
    cr_assert_eq(m->lm_head + 10 * 32, m->arena + m->arena_floats); /* untied: last */
    model_free(m);
}
