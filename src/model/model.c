/* mmap's MAP_ANONYMOUS (the weights arena) is not in POSIX */
#define _DEFAULT_SOURCE
#include "model/model.h"

#include "base/fileio.h"
#include "base/par.h"
#include "base/xxh64.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "model/safetensors.h"

/* Sizes beyond this in config.json are rejected as nonsense (and keep all
 * size arithmetic far from overflow on 64-bit hosts). */
#define MODEL_MAX_DIM (1 << 24)

const char *model_arch_short(ModelArch a)
{
    return a == MODEL_ARCH_GPT2 ? "gpt2" : "llama";
}

/* ---- config.json ------------------------------------------------------- */

/* Read an integer key; absent or null gives def (or an error when def < 0). */
static DrrlStatus cfg_int(const char *file, const json_t *root, const char *key, long def,
                          int *out, DrrlError *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0)
            return drrl_error(err, DRRL_E_INPUT, "%s: key '%s' is missing", file, key);
        *out = (int)def;
        return DRRL_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > MODEL_MAX_DIM)
        return drrl_error(err, DRRL_E_INPUT, "%s: key '%s' must be an integer in 1..%d", file,
                          key, MODEL_MAX_DIM);
    *out = (int)json_integer_value(v);
    return DRRL_OK;
}

static DrrlStatus cfg_num(const char *file, const json_t *root, const char *key, double def,
                          double *out, DrrlError *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DRRL_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0)
        return drrl_error(err, DRRL_E_INPUT, "%s: key '%s' must be a positive number", file,
                          key);
    *out = json_number_value(v);
    return DRRL_OK;
}

static int cfg_bool(const json_t *root, const char *key, int def)
{
    const json_t *v = json_object_get(root, key);
    if (json_is_boolean(v))
        return json_is_true(v);
    return def;
}

static const char *cfg_str(const json_t *root, const char *key)
{
    const json_t *v = json_object_get(root, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define TRY(expr)                                                                              \
    do {                                                                                       \
        DrrlStatus s_ = (expr);                                                                \
        if (s_ != DRRL_OK)                                                                     \
            return s_;                                                                         \
    } while (0)

/* GPT-2's fields (transformers' GPT2Config names). */
static DrrlStatus parse_gpt2(const char *file, const json_t *root, ModelConfig *c,
                             DrrlError *err)
{
    TRY(cfg_int(file, root, "n_layer", -1, &c->n_layer, err));
    TRY(cfg_int(file, root, "n_head", -1, &c->n_head, err));
    TRY(cfg_int(file, root, "n_embd", -1, &c->d_model, err));
    TRY(cfg_int(file, root, "vocab_size", -1, &c->vocab, err));
    TRY(cfg_int(file, root, "n_positions", -1, &c->n_ctx, err));
    TRY(cfg_int(file, root, "n_inner", 4L * c->d_model, &c->d_ff, err));
    TRY(cfg_num(file, root, "layer_norm_epsilon", 1e-5, &c->norm_eps, err));
    const char *act = cfg_str(root, "activation_function");
    if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: activation_function '%s' is not supported (supported: "
                          "gelu_new, gelu_pytorch_tanh)",
                          file, act);
    if (c->d_model % c->n_head != 0)
        return drrl_error(err, DRRL_E_INPUT, "%s: n_embd %d is not a multiple of n_head %d",
                          file, c->d_model, c->n_head);
    c->n_kv_head = c->n_head;
    c->head_dim = c->d_model / c->n_head;
    c->tied = cfg_bool(root, "tie_word_embeddings", 1);
    c->attn_bias = c->mlp_bias = 1;
    c->scale_attn = cfg_bool(root, "scale_attn_weights", 1);
    c->scale_attn_by_layer = cfg_bool(root, "scale_attn_by_inverse_layer_idx", 0);
    return DRRL_OK;
}

/* The RoPE base: transformers >= 5 writes rope_parameters.rope_theta, older
 * versions a top-level rope_theta (default 10000); no scaling. */
static DrrlStatus parse_rope(const char *file, const json_t *root, ModelConfig *c,
                             DrrlError *err)
{
    c->rope_theta = 10000.0;
    const json_t *rp = json_object_get(root, "rope_parameters");
    const json_t *rs = json_object_get(root, "rope_scaling");
    if (json_is_object(rp)) {
        TRY(cfg_num(file, rp, "rope_theta", 10000.0, &c->rope_theta, err));
        const char *type = cfg_str(rp, "rope_type");
        if (type && strcmp(type, "default") != 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: rope_parameters.rope_type '%s' is not supported "
                              "(supported: default)",
                              file, type);
    } else {
        TRY(cfg_num(file, root, "rope_theta", 10000.0, &c->rope_theta, err));
    }
    if (json_is_object(rs)) {
        const char *type = cfg_str(rs, "rope_type");
        if (!type)
            type = cfg_str(rs, "type");
        if (!type || strcmp(type, "default") != 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: rope_scaling '%s' is not supported (supported: none)", file,
                              type ? type : "?");
    }
    return DRRL_OK;
}

/* Llama's fields (LlamaConfig names). */
static DrrlStatus parse_llama(const char *file, const json_t *root, ModelConfig *c,
                              DrrlError *err)
{
    TRY(cfg_int(file, root, "num_hidden_layers", -1, &c->n_layer, err));
    TRY(cfg_int(file, root, "num_attention_heads", -1, &c->n_head, err));
    TRY(cfg_int(file, root, "hidden_size", -1, &c->d_model, err));
    TRY(cfg_int(file, root, "vocab_size", -1, &c->vocab, err));
    TRY(cfg_int(file, root, "intermediate_size", -1, &c->d_ff, err));
    TRY(cfg_int(file, root, "max_position_embeddings", 2048, &c->n_ctx, err));
    TRY(cfg_int(file, root, "num_key_value_heads", c->n_head, &c->n_kv_head, err));
    if (c->d_model % c->n_head != 0 && !json_is_integer(json_object_get(root, "head_dim")))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: hidden_size %d is not a multiple of num_attention_heads %d "
                          "and no head_dim is given",
                          file, c->d_model, c->n_head);
    TRY(cfg_int(file, root, "head_dim", c->d_model / c->n_head, &c->head_dim, err));
    TRY(cfg_num(file, root, "rms_norm_eps", 1e-6, &c->norm_eps, err));
    if (c->n_head % c->n_kv_head != 0)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: num_attention_heads %d is not a multiple of "
                          "num_key_value_heads %d",
                          file, c->n_head, c->n_kv_head);
    if (c->head_dim % 2 != 0)
        return drrl_error(err, DRRL_E_INPUT, "%s: head_dim %d must be even for RoPE", file,
                          c->head_dim);
    const char *act = cfg_str(root, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: hidden_act '%s' is not supported (supported: silu)", file, act);
    TRY(parse_rope(file, root, c, err));
    c->tied = cfg_bool(root, "tie_word_embeddings", 0);
    c->attn_bias = cfg_bool(root, "attention_bias", 0);
    c->mlp_bias = cfg_bool(root, "mlp_bias", 0);
    c->scale_attn = 1;
    return DRRL_OK;
}

static DrrlStatus parse_config(const char *file, const json_t *root, ModelConfig *c,
                               DrrlError *err)
{
    memset(c, 0, sizeof *c);
    const char *arch = NULL;
    const json_t *archs = json_object_get(root, "architectures");
    if (json_is_array(archs) && json_array_size(archs) > 0 &&
        json_is_string(json_array_get(archs, 0)))
        arch = json_string_value(json_array_get(archs, 0));
    const char *mtype = cfg_str(root, "model_type");
    if (!arch && mtype) {
        if (strcmp(mtype, "gpt2") == 0)
            arch = "GPT2LMHeadModel";
        else if (strcmp(mtype, "llama") == 0)
            arch = "LlamaForCausalLM";
        else
            arch = mtype;
    }
    if (!arch)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: neither 'architectures' nor 'model_type' names the model "
                          "(supported: %s)",
                          file, MODEL_SUPPORTED_ARCHS);
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    if (strcmp(arch, "GPT2LMHeadModel") == 0)
        c->arch = MODEL_ARCH_GPT2;
    else if (strcmp(arch, "LlamaForCausalLM") == 0)
        c->arch = MODEL_ARCH_LLAMA;
    else
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: architecture '%s' is not supported (supported: %s)", file, arch,
                          MODEL_SUPPORTED_ARCHS);

    const char *tok = cfg_str(root, "drrl_tokenizer");
    if (tok) {
        if (strcmp(tok, "byte") != 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: 'drrl_tokenizer' is '%s' (supported: byte)", file, tok);
        snprintf(c->tokenizer, sizeof c->tokenizer, "%s", tok);
    }

    return c->arch == MODEL_ARCH_GPT2 ? parse_gpt2(file, root, c, err)
                                      : parse_llama(file, root, c, err);
}

static DrrlStatus load_json(const char *file, json_t **out, DrrlError *err)
{
    DrrlStatus s = fileio_read_json(file, JSON_REJECT_DUPLICATES, out, err);
    if (s)
        return s;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return drrl_error(err, DRRL_E_INPUT, "%s: not a JSON object", file);
    }
    return DRRL_OK;
}

static DrrlStatus check_dir(const char *dir, DrrlError *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return drrl_error(err, errno == ENOENT ? DRRL_E_NOTFOUND : DRRL_E_IO, "%s: %s", dir,
                          strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: not a directory (give a model directory holding config.json)",
                          dir);
    return DRRL_OK;
}

DrrlStatus model_config_load(const char *dir, ModelConfig *cfg, DrrlError *err)
{
    TRY(check_dir(dir, err));
    char *file = fileio_join(dir, "config.json");
    if (!file)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
    json_t *root = NULL;
    DrrlStatus s = load_json(file, &root, err);
    if (s == DRRL_OK)
        s = parse_config(file, root, cfg, err);
    json_decref(root);
    free(file);
    return s;
}

/* ---- layout -------------------------------------------------------------- */

size_t model_param_count(const ModelConfig *c)
{
    size_t C = (size_t)c->d_model, L = (size_t)c->n_layer, V = (size_t)c->vocab;
    size_t H = (size_t)c->n_head, K = (size_t)c->n_kv_head, D = (size_t)c->head_dim;
    size_t F = (size_t)c->d_ff, P = (size_t)c->n_ctx;
    size_t n = V * C;
    if (c->arch == MODEL_ARCH_GPT2)
        n += P * C + 2 * C; /* wpe, ln_f */
    else
        n += C;                                         /* norm */
    size_t per = C * H * D + 2 * C * K * D + H * D * C; /* q, k, v, o */
    if (c->attn_bias)
        per += H * D + 2 * K * D + C;
    per += (c->arch == MODEL_ARCH_GPT2 ? 4 : 2) * C; /* norms */
    per += (c->arch == MODEL_ARCH_GPT2 ? 2 : 3) * C * F;
    if (c->mlp_bias)
        per += (c->arch == MODEL_ARCH_GPT2 ? F + C : 2 * F + C);
    n += L * per;
    if (!c->tied)
        n += V * C;
    return n;
}

/* Assign every pointer of m into an arena of the returned size (floats);
 * with arena == NULL only count. */
static size_t layout(Model *m, float *arena)
{
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, L = (size_t)c->n_layer, V = (size_t)c->vocab;
    size_t H = (size_t)c->n_head, K = (size_t)c->n_kv_head, D = (size_t)c->head_dim;
    size_t F = (size_t)c->d_ff, P = (size_t)c->n_ctx;
    int gpt2 = c->arch == MODEL_ARCH_GPT2;
    size_t off = 0;
#define TAKE(ptr, count, cond)                                                                 \
    do {                                                                                       \
        if (cond) {                                                                            \
            m->ptr = arena ? arena + off : NULL;                                               \
            off += (count);                                                                    \
        } else {                                                                               \
            m->ptr = NULL;                                                                     \
        }                                                                                      \
    } while (0)
    TAKE(tok_emb, V * C, 1);
    TAKE(pos_emb, P * C, gpt2);
    TAKE(ln1_w, L * C, 1);
    TAKE(ln1_b, L * C, gpt2);
    TAKE(wq, L * H * D * C, 1);
    TAKE(bq, L * H * D, c->attn_bias);
    TAKE(wk, L * K * D * C, 1);
    TAKE(bk, L * K * D, c->attn_bias);
    TAKE(wv, L * K * D * C, 1);
    TAKE(bv, L * K * D, c->attn_bias);
    TAKE(wo, L * C * H * D, 1);
    TAKE(bo, L * C, c->attn_bias);
    TAKE(ln2_w, L * C, 1);
    TAKE(ln2_b, L * C, gpt2);
    TAKE(w_up, L * F * C, 1);
    TAKE(b_up, L * F, c->mlp_bias);
    TAKE(w_gate, L * F * C, !gpt2);
    TAKE(b_gate, L * F, !gpt2 && c->mlp_bias);
    TAKE(w_down, L * C * F, 1);
    TAKE(b_down, L * C, c->mlp_bias);
    TAKE(lnf_w, C, 1);
    TAKE(lnf_b, C, gpt2);
    TAKE(lm_head, V * C, !c->tied);
#undef TAKE
    if (c->tied)
        m->lm_head = m->tok_emb;
    return off;
}

static DrrlStatus check_sizes(const ModelConfig *c, DrrlError *err)
{
    /* Dimensions are each <= 2^24; products of three could overflow 64 bits
     * only in theory, but check the arena size properly. */
    size_t C = (size_t)c->d_model, V = (size_t)c->vocab, F = (size_t)c->d_ff;
    size_t HD = (size_t)c->n_head * (size_t)c->head_dim, L = (size_t)c->n_layer;
    size_t a, b;
    if (drrl_size_mul(HD, C, &a) || drrl_size_mul(a, L, &a) || drrl_size_mul(F, C, &b) ||
        drrl_size_mul(b, L * 3, &b) || drrl_size_mul(V, C, &a) ||
        model_param_count(c) > ((size_t)1 << 40))
        return drrl_error(err, DRRL_E_INPUT, "config: model too large");
    return DRRL_OK;
}

static DrrlStatus alloc_model(const ModelConfig *cfg, Model **out, DrrlError *err)
{
    TRY(check_sizes(cfg, err));
    Model *m = calloc(1, sizeof *m);
    if (!m)
        return drrl_error(err, DRRL_E_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    size_t n = layout(m, NULL);
    size_t bytes;
    void *p = MAP_FAILED;
    /* fresh anonymous pages: zero already, and touched only as the weights
     * are written (a memset of a 4 GB arena first doubled the page work) */
    if (!drrl_size_mul(n, sizeof(float), &bytes))
        p = mmap(NULL, bytes ? bytes : 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
#ifdef MADV_HUGEPAGE
    /* 2 MiB pages where the kernel has them: a 4 GB arena then takes about
     * 2,000 page faults instead of a million (a third of a 1.1B model's
     * load went to faults); advice only, so a refusal changes nothing */
    if (p != MAP_FAILED && bytes >= ((size_t)4 << 20))
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
    if (p == MAP_FAILED) {
        free(m);
        return drrl_error(err, DRRL_E_NOMEM, "model: out of memory for %zu weights", n);
    }
    m->arena = p;
    m->arena_floats = n;
    layout(m, m->arena);
    m->n_params = model_param_count(cfg);
    *out = m;
    return DRRL_OK;
}

void model_rehash(Model *m)
{
    m->hash[0] = '\0'; /* model_hash() computes it when first asked */
    m->hash_v1[0] = '\0';
}

/* The architecture and dimensions, hashed after the weights so that two
 * shapes of the same bytes differ (ten 4-byte integers, native order). */
static void model_dims(const Model *m, int dims[10])
{
    const ModelConfig *c = &m->cfg;
    int d[10] = {c->arch,     c->n_layer, c->n_head, c->n_kv_head, c->d_model,
                 c->head_dim, c->d_ff,    c->vocab,  c->n_ctx,     c->tied};
    memcpy(dims, d, sizeof d);
}

/* Version 1, "fnv1a64": FNV-1a, 64-bit (Fowler, Noll, Vo; offset basis
 * 14695981039346656037, prime 1099511628211) over the arena's bytes, then
 * the dimensions. One multiply per byte in a chain: seconds for a 1B model. */
static uint64_t hash_fnv1a64(const Model *m)
{
    uint64_t h = 14695981039346656037ull;
    const unsigned char *p = (const unsigned char *)m->arena;
    size_t n = m->arena_floats * sizeof(float);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    int dims[10];
    model_dims(m, dims);
    const unsigned char *q = (const unsigned char *)dims;
    for (size_t i = 0; i < sizeof dims; i++) {
        h ^= q[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Version 2, "xxh64-tree": XXH64 (seed 0) of every MODEL_HASH_CHUNK bytes
 * of the arena in order (the last chunk shorter), then XXH64 (seed 0) of
 * those digests as 8-byte words followed by the dimensions. Chunks are
 * hashed on par_for's threads HASH_BATCH at a time and their digests fed
 * in chunk order, so the value does not depend on the thread count. */
#define MODEL_HASH_CHUNK ((size_t)1 << 20)
#define HASH_BATCH 256

typedef struct HashJob {
    const unsigned char *p;
    size_t n;     /* bytes in the arena */
    size_t first; /* the batch's first chunk */
    uint64_t digest[HASH_BATCH];
} HashJob;

static void hash_chunk(void *ctx, size_t i)
{
    HashJob *j = ctx;
    size_t off = (j->first + i) * MODEL_HASH_CHUNK, len = j->n - off;
    j->digest[i] = xxh64(j->p + off, len < MODEL_HASH_CHUNK ? len : MODEL_HASH_CHUNK, 0);
}

static uint64_t hash_xxh64_tree(const Model *m)
{
    HashJob j = {.p = (const unsigned char *)m->arena, .n = m->arena_floats * sizeof(float)};
    size_t chunks = (j.n + MODEL_HASH_CHUNK - 1) / MODEL_HASH_CHUNK;
    int threads = par_threads();
    Xxh64 top;
    xxh64_init(&top, 0);
    for (j.first = 0; j.first < chunks; j.first += HASH_BATCH) {
        size_t b = chunks - j.first < HASH_BATCH ? chunks - j.first : HASH_BATCH;
        par_for(threads, b, hash_chunk, &j);
        for (size_t i = 0; i < b; i++) {
            unsigned char le[8];
            for (int k = 0; k < 8; k++)
                le[k] = (unsigned char)(j.digest[i] >> (8 * k));
            xxh64_update(&top, le, sizeof le);
        }
    }
    int dims[10];
    model_dims(m, dims);
    xxh64_update(&top, dims, sizeof dims);
    return xxh64_digest(&top);
}

const char *model_hash_by(const Model *cm, const char *algo)
{
    Model *m = (Model *)cm; /* the cache only; every Model is allocated writable */
    int v1 = algo && strcmp(algo, MODEL_HASH_ALGO_V1) == 0;
    if (!algo || (!v1 && strcmp(algo, MODEL_HASH_ALGO) != 0))
        return NULL;
    char *out = v1 ? m->hash_v1 : m->hash;
    if (!out[0])
        snprintf(out, sizeof m->hash, "%016llx",
                 (unsigned long long)(v1 ? hash_fnv1a64(m) : hash_xxh64_tree(m)));
    return out;
}

const char *model_hash(const Model *m)
{
    return model_hash_by(m, MODEL_HASH_ALGO);
}

DrrlStatus model_new(const ModelConfig *cfg, Model **out, DrrlError *err)
{
    ModelConfig c = *cfg;
    if (c.n_layer < 1 || c.n_head < 1 || c.d_model < 1 || c.vocab < 1 || c.n_ctx < 1 ||
        c.d_ff < 1 || c.n_layer > MODEL_MAX_DIM || c.n_head > MODEL_MAX_DIM ||
        c.d_model > MODEL_MAX_DIM || c.vocab > MODEL_MAX_DIM || c.n_ctx > MODEL_MAX_DIM ||
        c.d_ff > MODEL_MAX_DIM)
        return drrl_error(err, DRRL_E_USAGE, "model_new: sizes must be positive");
    if (c.n_kv_head < 1)
        c.n_kv_head = c.n_head;
    if (c.head_dim < 1)
        c.head_dim = c.d_model / c.n_head;
    if (c.n_head % c.n_kv_head || c.head_dim < 1 || c.head_dim > MODEL_MAX_DIM ||
        (c.arch == MODEL_ARCH_GPT2 &&
         (c.n_kv_head != c.n_head || c.head_dim * c.n_head != c.d_model)) ||
        (c.arch == MODEL_ARCH_LLAMA && c.head_dim % 2))
        return drrl_error(err, DRRL_E_USAGE, "model_new: inconsistent head sizes");
    if (c.norm_eps <= 0)
        c.norm_eps = 1e-5;
    if (c.arch == MODEL_ARCH_LLAMA && c.rope_theta <= 0)
        c.rope_theta = 10000.0;
    if (c.arch == MODEL_ARCH_GPT2) {
        c.attn_bias = c.mlp_bias = 1;
        c.scale_attn = 1;
    } else {
        c.scale_attn = 1;
    }
    snprintf(c.arch_name, sizeof c.arch_name, "%s",
             c.arch == MODEL_ARCH_GPT2 ? "GPT2LMHeadModel" : "LlamaForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "F32");
    DrrlStatus s = alloc_model(&c, out, err);
    if (s == DRRL_OK)
        model_rehash(*out);
    return s;
}

void model_free(Model *m)
{
    if (!m)
        return;
    if (m->arena)
        munmap(m->arena, m->arena_floats ? m->arena_floats * sizeof(float) : 64);
    free(m->dir);
    free(m);
}

/* ---- weights --------------------------------------------------------------- */

typedef struct Shard {
    char *file; /* name in the directory */
    Safetensors *st;
} Shard;

typedef struct Source {
    const char *dir;
    json_t *weight_map; /* index "weight_map", or NULL for one file */
    char *index_path;
    Shard *shards;
    size_t n_shards;
    int dtype_seen[SAFETENSORS_DTYPE_COUNT];
    float *tmp; /* conversion buffer */
    size_t tmp_cap;
    int threads; /* par_for's threads for converting tensors */
} Source;

static void source_done(Source *s)
{
    for (size_t i = 0; i < s->n_shards; i++) {
        free(s->shards[i].file);
        safetensors_free(s->shards[i].st);
    }
    free(s->shards);
    json_decref(s->weight_map);
    free(s->index_path);
    free(s->tmp);
}

static DrrlStatus open_shard(Source *s, const char *file, Shard **out, DrrlError *err)
{
    for (size_t i = 0; i < s->n_shards; i++)
        if (strcmp(s->shards[i].file, file) == 0) {
            *out = &s->shards[i];
            return DRRL_OK;
        }
    if (strchr(file, '/') || file[0] == '\0' || file[0] == '.')
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: shard name '%s' is not a file in the directory",
                          s->index_path ? s->index_path : s->dir, file);
    Shard *ns = realloc(s->shards, (s->n_shards + 1) * sizeof *ns);
    if (!ns)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", s->dir);
    s->shards = ns;
    Shard *sh = &s->shards[s->n_shards];
    sh->file = strdup(file);
    sh->st = NULL;
    char *path = fileio_join(s->dir, file);
    if (!sh->file || !path) {
        free(sh->file);
        free(path);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", s->dir);
    }
    DrrlStatus st = safetensors_load(path, &sh->st, err);
    free(path);
    if (st != DRRL_OK) {
        free(sh->file);
        return st;
    }
    s->n_shards++;
    *out = sh;
    return DRRL_OK;
}

static DrrlStatus source_open(Source *s, const char *dir, DrrlError *err)
{
    memset(s, 0, sizeof *s);
    s->dir = dir;
    s->threads = par_threads();
    char *single = fileio_join(dir, "model.safetensors");
    char *index = fileio_join(dir, "model.safetensors.index.json");
    if (!single || !index) {
        free(single);
        free(index);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
    }
    struct stat sb;
    DrrlStatus st = DRRL_OK;
    if (stat(single, &sb) == 0) {
        Shard *sh;
        st = open_shard(s, "model.safetensors", &sh, err);
        free(index);
    } else if (stat(index, &sb) == 0) {
        s->index_path = index;
        json_t *root;
        st = load_json(index, &root, err);
        if (st == DRRL_OK) {
            json_t *wm = json_object_get(root, "weight_map");
            if (!json_is_object(wm)) {
                st = drrl_error(err, DRRL_E_INPUT,
                                "%s: 'weight_map' is missing or not an object", index);
            } else {
                const char *k;
                json_t *v;
                json_object_foreach(wm, k, v)
                {
                    if (!json_is_string(v)) {
                        st = drrl_error(err, DRRL_E_INPUT,
                                        "%s: weight_map entry '%s' is not a file name", index,
                                        k);
                        break;
                    }
                }
                if (st == DRRL_OK)
                    s->weight_map = json_incref(wm);
            }
            json_decref(root);
        }
    } else {
        st = drrl_error(err, DRRL_E_NOTFOUND,
                        "%s: no model.safetensors or model.safetensors.index.json (a Hugging "
                        "Face model directory saved with safetensors is needed)",
                        dir);
        free(index);
    }
    free(single);
    return st;
}

/* Find tensor NAME. On success *t is the tensor and *sh its shard; when it
 * does not exist, *t is NULL and *where names where it was looked for. */
static DrrlStatus source_find(Source *s, const char *name, const SafetensorsTensor **t,
                              Shard **sh, const char **where, DrrlError *err)
{
    *t = NULL;
    *sh = NULL;
    if (s->weight_map) {
        *where = s->index_path;
        const json_t *v = json_object_get(s->weight_map, name);
        if (!v)
            return DRRL_OK;
        TRY(open_shard(s, json_string_value(v), sh, err));
        *t = safetensors_find((*sh)->st, name);
        if (!*t)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: tensor '%s': listed in model.safetensors.index.json but "
                              "missing from the file",
                              (*sh)->st->path, name);
        return DRRL_OK;
    }
    *sh = &s->shards[0];
    *where = (*sh)->st->path;
    *t = safetensors_find((*sh)->st, name);
    return DRRL_OK;
}

enum { XF_COPY, XF_TRANSPOSE, XF_SPLIT3_T, XF_SPLIT3 };

/* One checkpoint tensor and where it goes. */
typedef struct Spec {
    char name[160];
    int ndim;
    size_t shape[2];
    int xf;        /* how to place it */
    float *dst[3]; /* destination(s) */
} Spec;

/* Converting one tensor to float32 on par_for's threads, in blocks of
 * CONV_BLOCK elements, each widened and then checked for non-finite values
 * while it is still in cache. */
#define CONV_BLOCK ((size_t)1 << 16)

typedef struct ConvJob {
    const Safetensors *st;
    const SafetensorsTensor *t;
    float *dst;
    atomic_size_t bad; /* the first non-finite element's index, or SIZE_MAX */
} ConvJob;

static void conv_block(void *ctx, size_t b)
{
    ConvJob *j = ctx;
    size_t first = b * CONV_BLOCK, n = j->t->numel - first;
    if (n > CONV_BLOCK)
        n = CONV_BLOCK;
    float *x = j->dst + first;
    DrrlError ignored; /* load_spec checked the dtype; the range is inside t */
    safetensors_to_f32_range(j->st, j->t, first, n, x, &ignored);
    /* an exponent of all ones is inf or nan */
    uint32_t any = 0;
    size_t i = 0;
#ifdef __SSE2__
    const __m128i top = _mm_set1_epi32(0x7f800000);
    __m128i acc = _mm_setzero_si128();
    for (; i + 4 <= n; i += 4) {
        __m128i u = _mm_loadu_si128((const __m128i *)(const void *)(x + i));
        acc = _mm_or_si128(acc, _mm_cmpeq_epi32(_mm_and_si128(u, top), top));
    }
    any = (uint32_t)_mm_movemask_epi8(acc);
#endif
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!any)
        return;
    i = 0;
    while (isfinite(x[i]))
        i++;
    size_t cur = atomic_load(&j->bad);
    while (first + i < cur && !atomic_compare_exchange_weak(&j->bad, &cur, first + i)) {
    }
}

/* Convert t (a dtype safetensors_to_f32 takes) into dst; returns the index
 * of its first non-finite value, or t->numel when all are finite. The same
 * for any thread count. */
static size_t convert(const Source *s, const Safetensors *st, const SafetensorsTensor *t,
                      float *dst)
{
    ConvJob j = {.st = st, .t = t, .dst = dst};
    atomic_init(&j.bad, SIZE_MAX);
    size_t blocks = (t->numel + CONV_BLOCK - 1) / CONV_BLOCK;
    par_for(blocks >= 4 ? s->threads : 1, blocks, conv_block, &j);
    size_t bad = atomic_load(&j.bad);
    return bad < t->numel ? bad : t->numel;
}

static void fmt_shape(char *buf, size_t n, int ndim, const size_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%zu", i ? ", " : "", shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static DrrlStatus load_spec(Source *s, const Spec *sp, const char *alt_prefix, DrrlError *err)
{
    const SafetensorsTensor *t;
    Shard *sh;
    const char *where;
    const char *name = sp->name;
    TRY(source_find(s, name, &t, &sh, &where, err));
    if (!t && alt_prefix && strncmp(name, alt_prefix, strlen(alt_prefix)) == 0) {
        /* Original GPT-2 checkpoints store names without "transformer.". */
        const char *bare = name + strlen(alt_prefix);
        const char *w2;
        TRY(source_find(s, bare, &t, &sh, &w2, err));
        if (t)
            name = bare;
    }
    if (!t)
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s' is missing", where, sp->name);
    const char *file = sh->st->path;
    int ok = t->ndim == sp->ndim;
    for (int i = 0; ok && i < sp->ndim; i++)
        ok = t->shape[i] == sp->shape[i];
    if (!ok) {
        char got[96], want[96];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, sp->ndim, sp->shape);
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': shape %s but the config needs %s", file, name, got,
                          want);
    }
    if (t->dtype != SAFETENSORS_F32 && t->dtype != SAFETENSORS_F16 &&
        t->dtype != SAFETENSORS_BF16 && t->dtype != SAFETENSORS_F64)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': dtype %s (supported: F32, F16, BF16, F64)", file,
                          name, safetensors_dtype_name(t->dtype));
    s->dtype_seen[t->dtype] = 1;
    float *buf = sp->dst[0];
    if (sp->xf != XF_COPY) {
        if (s->tmp_cap < t->numel) {
            float *nb = realloc(s->tmp, t->numel * sizeof *nb);
            if (!nb)
                return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", file);
            s->tmp = nb;
            s->tmp_cap = t->numel;
        }
        buf = s->tmp;
    }
    size_t bad = convert(s, sh->st, t, buf);
    safetensors_release(sh->st, t);
    if (bad < t->numel) {
        char idx[64];
        if (t->ndim == 2)
            snprintf(idx, sizeof idx, "[%zu, %zu]", bad / t->shape[1], bad % t->shape[1]);
        else
            snprintf(idx, sizeof idx, "[%zu]", bad);
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': non-finite value %s at %s", file,
                          name, isnan(buf[bad]) ? "nan" : "inf", idx);
    }
    if (sp->xf == XF_TRANSPOSE) {
        /* [in, out] -> [out, in] */
        size_t in = t->shape[0], out = t->shape[1];
        for (size_t i = 0; i < in; i++)
            for (size_t o = 0; o < out; o++)
                sp->dst[0][o * in + i] = buf[i * out + o];
    } else if (sp->xf == XF_SPLIT3_T) {
        /* GPT-2 c_attn [C, 3C] -> q, k, v each [C(out), C(in)] */
        size_t in = t->shape[0], out3 = t->shape[1], out = out3 / 3;
        for (int part = 0; part < 3; part++)
            for (size_t i = 0; i < in; i++)
                for (size_t o = 0; o < out; o++)
                    sp->dst[part][o * in + i] = buf[i * out3 + (size_t)part * out + o];
    } else if (sp->xf == XF_SPLIT3) {
        size_t out = t->shape[0] / 3;
        for (int part = 0; part < 3; part++)
            memcpy(sp->dst[part], buf + (size_t)part * out, out * sizeof *buf);
    }
    return DRRL_OK;
}

/* One tensor of 1 or 2 dimensions into DST through XF (sp, alt, s and err
 * in scope). */
#define SPEC1(NAME_FMT, N0, DST, XF, ...)                                                      \
    do {                                                                                       \
        memset(&sp, 0, sizeof sp);                                                             \
        snprintf(sp.name, sizeof sp.name, NAME_FMT, __VA_ARGS__);                              \
        sp.ndim = 1;                                                                           \
        sp.shape[0] = (N0);                                                                    \
        sp.xf = (XF);                                                                          \
        sp.dst[0] = (DST);                                                                     \
        TRY(load_spec(s, &sp, alt, err));                                                      \
    } while (0)
#define SPEC2(NAME_FMT, N0, N1, DST, XF, ...)                                                  \
    do {                                                                                       \
        memset(&sp, 0, sizeof sp);                                                             \
        snprintf(sp.name, sizeof sp.name, NAME_FMT, __VA_ARGS__);                              \
        sp.ndim = 2;                                                                           \
        sp.shape[0] = (N0);                                                                    \
        sp.shape[1] = (N1);                                                                    \
        sp.xf = (XF);                                                                          \
        sp.dst[0] = (DST);                                                                     \
        TRY(load_spec(s, &sp, alt, err));                                                      \
    } while (0)
/* GPT-2's tensors (transformer.h.L...; Conv1D weights transposed, c_attn
 * split into q, k, v). */
static DrrlStatus load_gpt2(Model *m, Source *s, DrrlError *err)
{
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, V = (size_t)c->vocab;
    size_t F = (size_t)c->d_ff, P = (size_t)c->n_ctx;
    Spec sp;
    const char *alt = "transformer.";
    SPEC2("%s", V, C, m->tok_emb, XF_COPY, "transformer.wte.weight");
    SPEC2("%s", P, C, m->pos_emb, XF_COPY, "transformer.wpe.weight");
    for (int l = 0; l < c->n_layer; l++) {
        size_t L = (size_t)l;
        SPEC1("transformer.h.%d.ln_1.weight", C, m->ln1_w + L * C, XF_COPY, l);
        SPEC1("transformer.h.%d.ln_1.bias", C, m->ln1_b + L * C, XF_COPY, l);
        memset(&sp, 0, sizeof sp);
        snprintf(sp.name, sizeof sp.name, "transformer.h.%d.attn.c_attn.weight", l);
        sp.ndim = 2;
        sp.shape[0] = C;
        sp.shape[1] = 3 * C;
        sp.xf = XF_SPLIT3_T;
        sp.dst[0] = m->wq + L * C * C;
        sp.dst[1] = m->wk + L * C * C;
        sp.dst[2] = m->wv + L * C * C;
        TRY(load_spec(s, &sp, alt, err));
        snprintf(sp.name, sizeof sp.name, "transformer.h.%d.attn.c_attn.bias", l);
        sp.ndim = 1;
        sp.shape[0] = 3 * C;
        sp.xf = XF_SPLIT3;
        sp.dst[0] = m->bq + L * C;
        sp.dst[1] = m->bk + L * C;
        sp.dst[2] = m->bv + L * C;
        TRY(load_spec(s, &sp, alt, err));
        SPEC2("transformer.h.%d.attn.c_proj.weight", C, C, m->wo + L * C * C, XF_TRANSPOSE, l);
        SPEC1("transformer.h.%d.attn.c_proj.bias", C, m->bo + L * C, XF_COPY, l);
        SPEC1("transformer.h.%d.ln_2.weight", C, m->ln2_w + L * C, XF_COPY, l);
        SPEC1("transformer.h.%d.ln_2.bias", C, m->ln2_b + L * C, XF_COPY, l);
        SPEC2("transformer.h.%d.mlp.c_fc.weight", C, F, m->w_up + L * F * C, XF_TRANSPOSE, l);
        SPEC1("transformer.h.%d.mlp.c_fc.bias", F, m->b_up + L * F, XF_COPY, l);
        SPEC2("transformer.h.%d.mlp.c_proj.weight", F, C, m->w_down + L * C * F, XF_TRANSPOSE,
              l);
        SPEC1("transformer.h.%d.mlp.c_proj.bias", C, m->b_down + L * C, XF_COPY, l);
    }
    SPEC1("%s", C, m->lnf_w, XF_COPY, "transformer.ln_f.weight");
    SPEC1("%s", C, m->lnf_b, XF_COPY, "transformer.ln_f.bias");
    if (!c->tied)
        SPEC2("%s", V, C, m->lm_head, XF_COPY, "lm_head.weight");
    return DRRL_OK;
}

/* Llama's tensors (model.layers.L...). */
static DrrlStatus load_llama(Model *m, Source *s, DrrlError *err)
{
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, V = (size_t)c->vocab, H = (size_t)c->n_head;
    size_t K = (size_t)c->n_kv_head, D = (size_t)c->head_dim, F = (size_t)c->d_ff;
    Spec sp;
    const char *alt = NULL;
    SPEC2("%s", V, C, m->tok_emb, XF_COPY, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layer; l++) {
        size_t L = (size_t)l;
        SPEC1("model.layers.%d.input_layernorm.weight", C, m->ln1_w + L * C, XF_COPY, l);
        SPEC2("model.layers.%d.self_attn.q_proj.weight", H * D, C, m->wq + L * H * D * C,
              XF_COPY, l);
        SPEC2("model.layers.%d.self_attn.k_proj.weight", K * D, C, m->wk + L * K * D * C,
              XF_COPY, l);
        SPEC2("model.layers.%d.self_attn.v_proj.weight", K * D, C, m->wv + L * K * D * C,
              XF_COPY, l);
        SPEC2("model.layers.%d.self_attn.o_proj.weight", C, H * D, m->wo + L * C * H * D,
              XF_COPY, l);
        if (c->attn_bias) {
            SPEC1("model.layers.%d.self_attn.q_proj.bias", H * D, m->bq + L * H * D, XF_COPY,
                  l);
            SPEC1("model.layers.%d.self_attn.k_proj.bias", K * D, m->bk + L * K * D, XF_COPY,
                  l);
            SPEC1("model.layers.%d.self_attn.v_proj.bias", K * D, m->bv + L * K * D, XF_COPY,
                  l);
            SPEC1("model.layers.%d.self_attn.o_proj.bias", C, m->bo + L * C, XF_COPY, l);
        }
        SPEC1("model.layers.%d.post_attention_layernorm.weight", C, m->ln2_w + L * C, XF_COPY,
              l);
        SPEC2("model.layers.%d.mlp.gate_proj.weight", F, C, m->w_gate + L * F * C, XF_COPY, l);
        SPEC2("model.layers.%d.mlp.up_proj.weight", F, C, m->w_up + L * F * C, XF_COPY, l);
        SPEC2("model.layers.%d.mlp.down_proj.weight", C, F, m->w_down + L * C * F, XF_COPY, l);
        if (c->mlp_bias) {
            SPEC1("model.layers.%d.mlp.gate_proj.bias", F, m->b_gate + L * F, XF_COPY, l);
            SPEC1("model.layers.%d.mlp.up_proj.bias", F, m->b_up + L * F, XF_COPY, l);
            SPEC1("model.layers.%d.mlp.down_proj.bias", C, m->b_down + L * C, XF_COPY, l);
        }
    }
    SPEC1("%s", C, m->lnf_w, XF_COPY, "model.norm.weight");
    if (!c->tied)
        SPEC2("%s", V, C, m->lm_head, XF_COPY, "lm_head.weight");
    return DRRL_OK;
}
#undef SPEC1
#undef SPEC2

static DrrlStatus load_weights(Model *m, Source *s, DrrlError *err)
{
    TRY(m->cfg.arch == MODEL_ARCH_GPT2 ? load_gpt2(m, s, err) : load_llama(m, s, err));
    int kinds = 0, last = 0;
    for (int d = 0; d < SAFETENSORS_DTYPE_COUNT; d++)
        if (s->dtype_seen[d]) {
            kinds++;
            last = d;
        }
    snprintf(m->cfg.dtype, sizeof m->cfg.dtype, "%s",
             kinds == 1 ? safetensors_dtype_name((SafetensorsDtype)last) : "mixed");
    return DRRL_OK;
}

/* The sizes in config.json against the checkpoint, before anything is
 * allocated: every weight the config needs is stored in some tensor, so the
 * checkpoint's element count (all shards: each is only mapped) bounds it.
 * Only a config asking for more than twice that (plus 2^20) is refused here,
 * so that the weights arena stays within about twice the checkpoint; smaller
 * mismatches get load_spec's message naming the tensor. */
static DrrlStatus check_against_checkpoint(Source *s, const ModelConfig *cfg, DrrlError *err)
{
    if (s->weight_map) {
        const char *k;
        json_t *v;
        json_object_foreach(s->weight_map, k, v)
        {
            Shard *sh;
            TRY(open_shard(s, json_string_value(v), &sh, err));
        }
    }
    size_t have = 0;
    for (size_t i = 0; i < s->n_shards; i++)
        for (size_t j = 0; j < s->shards[i].st->n_tensors; j++)
            have += s->shards[i].st->tensors[j].numel; /* each <= file size: no overflow */
    size_t need = model_param_count(cfg);
    if (need / 2 > have + ((size_t)1 << 19))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s/config.json: the sizes ask for %zu weights but the checkpoint "
                          "holds %zu values",
                          s->dir, need, have);
    return DRRL_OK;
}

DrrlStatus model_load(const char *dir, Model **out, DrrlError *err)
{
    *out = NULL;
    ModelConfig cfg;
    TRY(model_config_load(dir, &cfg, err));
    TRY(check_sizes(&cfg, err));
    Source src;
    Model *m = NULL;
    DrrlStatus s = source_open(&src, dir, err);
    if (s == DRRL_OK)
        s = check_against_checkpoint(&src, &cfg, err);
    if (s == DRRL_OK)
        s = alloc_model(&cfg, &m, err);
    if (s == DRRL_OK && !(m->dir = strdup(dir)))
        s = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
    if (s == DRRL_OK)
        s = load_weights(m, &src, err);
    source_done(&src);
    if (s != DRRL_OK) {
        model_free(m);
        return s;
    }
    model_rehash(m);
    *out = m;
    return DRRL_OK;
}
