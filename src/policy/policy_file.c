#include "policy/policy_file.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "policy/policy_features.h"
#include "model/safetensors.h"

#define FORMAT_TAG "drrl-policy"

static json_t *net_json(const PolicyNetConfig *c)
{
    json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "n_feat",
                          c->n_feat, "conv_in", c->conv_in, "conv_kernel", c->conv_kernel,
                          "conv_out", c->conv_out, "n_layer", c->n_layer, "n_head", c->n_head,
                          "n_action", c->n_action, "d_model", c->d_model, "n_attn_head",
                          c->n_attn_head, "d_ff", c->d_ff, "n_block", c->n_block);
    /* the energy prior only where set: files without it keep their bytes */
    if (j && c->prior_weight > 0 &&
        json_object_set_new(
            j, "prior",
            json_pack("{s:f, s:f}", "weight", c->prior_weight, "energy", c->prior_energy))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static char *meta_string(const PolicyNet *net, const PolicyMeta *m)
{
    json_t *grid = json_array();
    for (int i = 0; i < m->n_grid; i++)
        json_array_append_new(grid, json_integer(m->grid[i]));
    int fv = policy_features_version_of(net->cfg.n_feat, m->n_grid);
    char *layout = policy_features_layout_json_v(m->n_grid, fv ? fv : POLICY_FEATURES_VERSION);
    json_t *features = layout ? json_loads(layout, 0, NULL) : NULL;
    free(layout);
    char rng[4][17];
    for (int i = 0; i < 4; i++)
        snprintf(rng[i], sizeof rng[i], "%016" PRIx64, m->rng[i]);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, m->seed);
    json_t *doc = json_pack(
        "{s:i, s:o, s:o, s:i, s:o*, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f}, s:[f, f], s:{s:f, "
        "s:f, s:f},"
        " s:{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s},"
        " s:{s:I, s:s, s:I, s:o, s:s}}",
        "version", POLICY_FILE_VERSION, "net", net_json(&net->cfg), "rank_grid", grid,
        "segment", m->segment, "features", features, "reward", "alpha", m->reward.alpha, "beta",
        m->reward.beta, "gamma", m->reward.gamma, "kappa", m->reward.kappa, "lm", m->reward.lm,
        "err", m->reward.err, "price", m->reward.price, "budget_range", m->budget_lo,
        m->budget_hi, "eps", "start", m->eps_start, "floor", m->eps_floor, "decay",
        m->eps_decay, "model", "arch", m->model.arch, "n_layer", m->model.n_layer, "n_head",
        m->model.n_head, "n_kv_head", m->model.n_kv_head, "head_dim", m->model.head_dim,
        "d_model", m->model.d_model, "hash", m->model.hash, "hash_algo",
        m->model.hash_algo[0] ? m->model.hash_algo : MODEL_HASH_ALGO, "training", "steps",
        (json_int_t)m->steps, "seed", seed, "adam_t", (json_int_t)m->adam_t, "rng",
        m->has_rng ? json_pack("[s, s, s, s]", rng[0], rng[1], rng[2], rng[3]) : json_null(),
        "command", m->command);
    if (!doc)
        return NULL;
    /* err_power only where it is not 1: files of the linear error term keep
     * their bytes. */
    if (m->reward.err_power > 0 && m->reward.err_power != 1.0)
        json_object_set_new(json_object_get(doc, "reward"), "err_power",
                            json_real(m->reward.err_power));
    /* err_layers likewise only where set */
    if (m->reward.n_err_layer > 0) {
        json_t *a = json_array();
        for (int i = 0; a && i < m->reward.n_err_layer; i++)
            json_array_append_new(a, json_real(m->reward.err_layer[i]));
        if (!a || json_object_set_new(json_object_get(doc, "reward"), "err_layers", a)) {
            json_decref(doc);
            return NULL;
        }
    }
    char *inner = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!inner)
        return NULL;
    json_t *outer = json_pack("{s:s, s:s}", "format", FORMAT_TAG, "drrl_policy", inner);
    free(inner);
    char *s = outer ? json_dumps(outer, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(outer);
    return s;
}

DrrlStatus policy_file_save(const char *path, const PolicyNet *net, const PolicyMeta *meta,
                            const PolicyAdam *adam, DrrlError *err)
{
    return policy_file_save_flags(path, net, meta, adam, FILEIO_FORCE | FILEIO_UPDATE, err);
}

DrrlStatus policy_file_save_flags(const char *path, const PolicyNet *net,
                                  const PolicyMeta *meta, const PolicyAdam *adam,
                                  unsigned flags, DrrlError *err)
{
    if (meta->n_grid < 1 || meta->n_grid > POLICY_FILE_GRID_MAX)
        return drrl_error(err, DRRL_E_USAGE, "%s: bad rank grid size %d", path, meta->n_grid);
    char *md = meta_string(net, meta);
    if (!md)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory for the metadata", path);
    int n = net->n_blocks + (adam ? 2 : 0);
    SafetensorsWriteTensor *t = calloc((size_t)n, sizeof *t);
    if (!t) {
        free(md);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < net->n_blocks; i++) {
        const PolicyNetBlock *b = &net->blocks[i];
        t[i].name = b->name;
        t[i].dtype = SAFETENSORS_F32;
        t[i].ndim = b->ndim;
        for (int d = 0; d < b->ndim; d++)
            t[i].shape[d] = b->shape[d];
        t[i].data = net->params + b->offset;
    }
    if (adam) {
        const char *names[2] = {"adam.m", "adam.v"};
        const float *data[2] = {adam->m, adam->v};
        for (int k = 0; k < 2; k++) {
            SafetensorsWriteTensor *w = &t[net->n_blocks + k];
            w->name = names[k];
            w->dtype = SAFETENSORS_F32;
            w->ndim = 1;
            w->shape[0] = net->n_params;
            w->data = data[k];
        }
    }
    DrrlStatus st = safetensors_write_flags(path, t, (size_t)n, md, flags, err);
    free(t);
    free(md);
    return st;
}

/* ---- loading ---------------------------------------------------------- */

static DrrlStatus get_int(const char *path, json_t *obj, const char *where, const char *key,
                          long lo, long hi, long *out, DrrlError *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: metadata %s.%s: expected an integer in [%ld, %ld]", path, where,
                          key, lo, hi);
    *out = (long)json_integer_value(v);
    return DRRL_OK;
}

/* Integer members of one metadata object: each key in [lo, hi] into *dst. */
typedef struct IntField {
    const char *key;
    int *dst;
    long lo;
} IntField;

static DrrlStatus get_ints(const char *path, json_t *obj, const char *where, const IntField *f,
                           size_t n, long hi, DrrlError *err)
{
    for (size_t i = 0; i < n; i++) {
        long v;
        DrrlStatus st = get_int(path, obj, where, f[i].key, f[i].lo, hi, &v, err);
        if (st)
            return st;
        *f[i].dst = (int)v;
    }
    return DRRL_OK;
}

static DrrlStatus get_num(const char *path, json_t *obj, const char *where, const char *key,
                          double lo, double hi, double *out, DrrlError *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: metadata %s.%s: expected a number in [%g, %g]", path, where, key,
                          lo, hi);
    *out = json_number_value(v);
    return DRRL_OK;
}

static DrrlStatus get_obj(const char *path, json_t *doc, const char *key, json_t **out,
                          DrrlError *err)
{
    *out = json_object_get(doc, key);
    if (!json_is_object(*out))
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata: '%s' is missing or not an object",
                          path, key);
    return DRRL_OK;
}

#define TRY(x)                                                                                 \
    do {                                                                                       \
        st = (x);                                                                              \
        if (st)                                                                                \
            goto out;                                                                          \
    } while (0)

/* The file version and the network's shape (net). */
static DrrlStatus parse_net(const char *path, json_t *doc, PolicyNetConfig *nc, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    long v;
    json_t *o;
    TRY(get_int(path, doc, "policy", "version", 1, 1000000, &v, err));
    if (v != POLICY_FILE_VERSION)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: policy file version %ld, this drrl reads version %d", path, v,
                          POLICY_FILE_VERSION);
    TRY(get_obj(path, doc, "net", &o, err));
    const IntField nf[] = {{"n_feat", &nc->n_feat, 1},           {"conv_in", &nc->conv_in, 1},
                           {"conv_kernel", &nc->conv_kernel, 1}, {"conv_out", &nc->conv_out, 1},
                           {"n_layer", &nc->n_layer, 1},         {"n_head", &nc->n_head, 1},
                           {"n_action", &nc->n_action, 1},       {"d_model", &nc->d_model, 1},
                           {"n_attn_head", &nc->n_attn_head, 1}, {"d_ff", &nc->d_ff, 1},
                           {"n_block", &nc->n_block, 0}};
    TRY(get_ints(path, o, "net", nf, sizeof nf / sizeof nf[0], 1 << 20, err));
    nc->prior_weight = nc->prior_energy = 0;
    json_t *pr = json_object_get(o, "prior");
    if (pr) {
        if (!json_is_object(pr))
            return drrl_error(err, DRRL_E_INPUT, "%s: metadata net.prior: expected an object",
                              path);
        TRY(get_num(path, pr, "net.prior", "weight", 0, 1e3, &nc->prior_weight, err));
        TRY(get_num(path, pr, "net.prior", "energy", 1e-9, 1, &nc->prior_energy, err));
    }
out:
    return st;
}

/* The rank grid, the segment and the feature layout (exactly this build's). */
static DrrlStatus parse_grid(const char *path, json_t *doc, const PolicyNetConfig *nc,
                             PolicyMeta *m, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    long v;
    json_t *grid = json_object_get(doc, "rank_grid");
    if (!json_is_array(grid) || json_array_size(grid) < 1 ||
        json_array_size(grid) > POLICY_FILE_GRID_MAX)
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata rank_grid: expected 1..%d ranks",
                          path, POLICY_FILE_GRID_MAX);
    m->n_grid = (int)json_array_size(grid);
    for (int i = 0; i < m->n_grid; i++) {
        json_t *r = json_array_get(grid, (size_t)i);
        if (!json_is_integer(r) || json_integer_value(r) < 1 ||
            json_integer_value(r) > 1 << 20 ||
            (i > 0 && json_integer_value(r) <= m->grid[i - 1]))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: metadata rank_grid[%d]: expected ascending positive ranks",
                              path, i);
        m->grid[i] = (int32_t)json_integer_value(r);
    }
    if (nc->n_action != m->n_grid)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: net.n_action %d but the rank grid has %d ranks", path,
                          nc->n_action, m->n_grid);
    TRY(get_int(path, doc, "policy", "segment", 1, 1 << 24, &v, err));
    m->segment = (int)v;

    /* Features: the layout must be exactly one this build reads (versions 1 to 3). */
    json_t *feat = json_object_get(doc, "features");
    json_t *fvj = feat ? json_object_get(feat, "version") : NULL;
    int fv = json_is_integer(fvj) && json_integer_value(fvj) >= 1 &&
                     json_integer_value(fvj) <= POLICY_FEATURES_VERSION
                 ? (int)json_integer_value(fvj)
                 : 0;
    char *mine = fv ? policy_features_layout_json_v(m->n_grid, fv) : NULL;
    json_t *mj = mine ? json_loads(mine, 0, NULL) : NULL;
    free(mine);
    int same = feat && mj && json_equal(feat, mj);
    json_decref(mj);
    if (!same)
        return drrl_error(
            err, DRRL_E_INPUT,
            "%s: metadata features: the policy was trained on another feature "
            "layout (this drrl reads versions 1 to %d); retrain it with drrl train-policy",
            path, POLICY_FEATURES_VERSION);
    if (nc->n_feat != policy_features_count_v(m->n_grid, fv))
        return drrl_error(err, DRRL_E_INPUT, "%s: net.n_feat %d, the feature layout has %d",
                          path, nc->n_feat, policy_features_count_v(m->n_grid, fv));

out:
    return st;
}

/* The reward weights, the budget range and the threshold schedule. */
static DrrlStatus parse_reward(const char *path, json_t *doc, PolicyMeta *m, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    json_t *o;
    TRY(get_obj(path, doc, "reward", &o, err));
    TRY(get_num(path, o, "reward", "alpha", -1e6, 1e6, &m->reward.alpha, err));
    TRY(get_num(path, o, "reward", "beta", -1e6, 1e6, &m->reward.beta, err));
    TRY(get_num(path, o, "reward", "gamma", -1e6, 1e6, &m->reward.gamma, err));
    TRY(get_num(path, o, "reward", "kappa", -1e6, 1e6, &m->reward.kappa, err));
    TRY(get_num(path, o, "reward", "lm", -1e6, 1e6, &m->reward.lm, err));
    /* err and price came later: a file without them was trained without them. */
    m->reward.err = m->reward.price = 0;
    m->reward.err_power = 1; /* and err_power later still: 1 before it */
    if (json_object_get(o, "err_power"))
        TRY(get_num(path, o, "reward", "err_power", 0.01, 100, &m->reward.err_power, err));
    if (json_object_get(o, "err"))
        TRY(get_num(path, o, "reward", "err", -1e6, 1e6, &m->reward.err, err));
    if (json_object_get(o, "price"))
        TRY(get_num(path, o, "reward", "price", -1e6, 1e6, &m->reward.price, err));
    m->reward.n_err_layer = 0;
    json_t *el = json_object_get(o, "err_layers");
    if (el) {
        size_t ne = json_is_array(el) ? json_array_size(el) : 0;
        if (ne < 1 || ne > POLICY_REWARD_MAX_LAYERS)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: metadata reward.err_layers: expected 1 to %d numbers", path,
                              POLICY_REWARD_MAX_LAYERS);
        for (size_t i = 0; i < ne; i++) {
            json_t *v = json_array_get(el, i);
            double x = json_is_number(v) ? json_number_value(v) : -1;
            if (!(x >= 0 && x <= 1e6))
                return drrl_error(err, DRRL_E_INPUT,
                                  "%s: metadata reward.err_layers[%zu]: expected a number in "
                                  "[0, 1e6]",
                                  path, i);
            m->reward.err_layer[i] = x;
        }
        m->reward.n_err_layer = (int)ne;
    }
    json_t *br = json_object_get(doc, "budget_range");
    if (!json_is_array(br) || json_array_size(br) != 2 ||
        !json_is_number(json_array_get(br, 0)) || !json_is_number(json_array_get(br, 1)))
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata budget_range: expected [lo, hi]",
                          path);
    m->budget_lo = json_number_value(json_array_get(br, 0));
    m->budget_hi = json_number_value(json_array_get(br, 1));
    if (!(m->budget_lo > 0 && m->budget_lo <= m->budget_hi && m->budget_hi <= 1))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: metadata budget_range: expected 0 < lo <= hi <= 1", path);
    TRY(get_obj(path, doc, "eps", &o, err));
    TRY(get_num(path, o, "eps", "start", 0, 1e30, &m->eps_start, err));
    TRY(get_num(path, o, "eps", "floor", 0, 1e30, &m->eps_floor, err));
    TRY(get_num(path, o, "eps", "decay", 0, 1, &m->eps_decay, err));

out:
    return st;
}

/* The model the policy was trained for; its shape against the network's. */
static DrrlStatus parse_model(const char *path, json_t *doc, const PolicyNetConfig *nc,
                              PolicyMeta *m, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    json_t *o;
    TRY(get_obj(path, doc, "model", &o, err));
    json_t *s = json_object_get(o, "arch");
    if (!json_is_string(s) || strlen(json_string_value(s)) >= sizeof m->model.arch)
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata model.arch: expected a name", path);
    snprintf(m->model.arch, sizeof m->model.arch, "%s", json_string_value(s));
    const IntField mf[] = {{"n_layer", &m->model.n_layer, 1},
                           {"n_head", &m->model.n_head, 1},
                           {"n_kv_head", &m->model.n_kv_head, 1},
                           {"head_dim", &m->model.head_dim, 1},
                           {"d_model", &m->model.d_model, 1}};
    TRY(get_ints(path, o, "model", mf, sizeof mf / sizeof mf[0], 1 << 24, err));
    s = json_object_get(o, "hash");
    if (!json_is_string(s) || strlen(json_string_value(s)) != 16)
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata model.hash: expected 16 hex digits",
                          path);
    snprintf(m->model.hash, sizeof m->model.hash, "%s", json_string_value(s));
    s = json_object_get(o, "hash_algo"); /* absent before it was recorded: FNV-1a */
    if (s && (!json_is_string(s) || !json_string_value(s)[0] ||
              strlen(json_string_value(s)) >= sizeof m->model.hash_algo))
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata model.hash_algo: expected a name",
                          path);
    snprintf(m->model.hash_algo, sizeof m->model.hash_algo, "%s",
             s ? json_string_value(s) : MODEL_HASH_ALGO_V1);
    if (m->grid[m->n_grid - 1] != m->model.head_dim)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: metadata rank_grid ends at %d, not at head_dim %d", path,
                          m->grid[m->n_grid - 1], m->model.head_dim);
    if (nc->n_layer != m->model.n_layer || nc->n_head != m->model.n_head ||
        nc->conv_in != policy_features_conv_width(m->model.n_kv_head, m->model.head_dim))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: the network's shape does not match its model section", path);

out:
    return st;
}

/* The training state: steps, Adam step, seed, command, rng. */
static DrrlStatus parse_training(const char *path, json_t *doc, PolicyMeta *m, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    json_t *o;
    TRY(get_obj(path, doc, "training", &o, err));
    json_t *ts = json_object_get(o, "steps"), *ta = json_object_get(o, "adam_t");
    json_t *sd = json_object_get(o, "seed"), *cmd = json_object_get(o, "command");
    if (!json_is_integer(ts) || json_integer_value(ts) < 0 || !json_is_integer(ta) ||
        json_integer_value(ta) < 0 || !json_is_string(sd) || !json_is_string(cmd))
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata training: malformed", path);
    m->steps = (int64_t)json_integer_value(ts);
    m->adam_t = (int64_t)json_integer_value(ta);
    char *end;
    m->seed = strtoull(json_string_value(sd), &end, 10);
    if (*end)
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata training.seed: not a number", path);
    snprintf(m->command, sizeof m->command, "%s", json_string_value(cmd));
    json_t *rng = json_object_get(o, "rng");
    if (json_is_array(rng) && json_array_size(rng) == 4) {
        for (int i = 0; i < 4; i++) {
            json_t *w = json_array_get(rng, (size_t)i);
            if (!json_is_string(w) || strlen(json_string_value(w)) != 16)
                return drrl_error(err, DRRL_E_INPUT, "%s: metadata training.rng: malformed",
                                  path);
            m->rng[i] = strtoull(json_string_value(w), &end, 16);
            if (*end)
                return drrl_error(err, DRRL_E_INPUT, "%s: metadata training.rng: malformed",
                                  path);
        }
        m->has_rng = 1;
    } else if (!json_is_null(rng)) {
        return drrl_error(err, DRRL_E_INPUT, "%s: metadata training.rng: malformed", path);
    }
out:
    return st;
}

static DrrlStatus parse_meta(const char *path, json_t *doc, PolicyNetConfig *nc, PolicyMeta *m,
                             DrrlError *err)
{
    DrrlStatus st;
    memset(m, 0, sizeof *m);
    if ((st = parse_net(path, doc, nc, err)) || (st = parse_grid(path, doc, nc, m, err)) ||
        (st = parse_reward(path, doc, m, err)) || (st = parse_model(path, doc, nc, m, err)))
        return st;
    return parse_training(path, doc, m, err);
}

static DrrlStatus read_f32(const char *path, const Safetensors *st, const char *name, int ndim,
                           const size_t *shape, float *dst, DrrlError *err)
{
    const SafetensorsTensor *t = safetensors_find(st, name);
    if (!t)
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s' is missing", path, name);
    int ok = t->dtype == SAFETENSORS_F32 && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[64] = "", *p = want;
        for (int d = 0; d < ndim; d++)
            p +=
                snprintf(p, (size_t)(want + sizeof want - p), "%s%zu", d ? ", " : "", shape[d]);
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': expected F32 [%s]", path, name,
                          want);
    }
    DrrlStatus s = safetensors_to_f32(st, t, dst, err);
    if (s)
        return s;
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(dst[i]))
            return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': element %zu is not finite",
                              path, name, i);
    return DRRL_OK;
}

DrrlStatus policy_file_load(const char *path, PolicyNet **net_out, PolicyMeta *meta,
                            PolicyAdam *adam, int *has_adam, DrrlError *err)
{
    *net_out = NULL;
    if (has_adam)
        *has_adam = 0;
    Safetensors *sf = NULL;
    PolicyNet *net = NULL;
    json_t *doc = NULL;
    DrrlStatus st = safetensors_load(path, &sf, err);
    if (st)
        return st;
    const char *fmt = safetensors_metadata(sf, "format");
    const char *md = safetensors_metadata(sf, "drrl_policy");
    if (!fmt || strcmp(fmt, FORMAT_TAG) || !md) {
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: not a drrl policy file (no \"format\": \"%s\" metadata)", path,
                        FORMAT_TAG);
        goto out;
    }
    json_error_t jerr;
    doc = json_loads(md, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s: metadata drrl_policy:%d:%d: %s", path,
                        jerr.line, jerr.column, jerr.text);
        goto out;
    }
    PolicyNetConfig nc;
    TRY(parse_meta(path, doc, &nc, meta, err));
    PolicyRng rng;
    policy_rng_seed(&rng, 0);
    st = policy_net_new(&nc, &rng, &net, err);
    if (st) {
        st = drrl_error(err, DRRL_E_INPUT, "%s: metadata net: %s", path, err ? err->msg : "");
        goto out;
    }
    for (int i = 0; i < net->n_blocks; i++) {
        const PolicyNetBlock *b = &net->blocks[i];
        TRY(read_f32(path, sf, b->name, b->ndim, b->shape, net->params + b->offset, err));
    }
    if (adam && safetensors_find(sf, "adam.m")) {
        PolicyAdam a;
        TRY(policy_adam_init(&a, net, 0.0, err));
        size_t shape[1] = {net->n_params};
        st = read_f32(path, sf, "adam.m", 1, shape, a.m, err);
        if (!st)
            st = read_f32(path, sf, "adam.v", 1, shape, a.v, err);
        if (st) {
            policy_adam_done(&a);
            goto out;
        }
        a.t = meta->adam_t;
        *adam = a;
        if (has_adam)
            *has_adam = 1;
    }
out:
    json_decref(doc);
    safetensors_free(sf);
    if (st)
        policy_net_free(net);
    else
        *net_out = net;
    return st;
}

DrrlStatus policy_file_check_model(const char *path, const PolicyMeta *meta,
                                   const PolicyModelShape *model, char *warn, size_t warn_n,
                                   DrrlError *err)
{
    if (warn && warn_n)
        warn[0] = '\0';
    const PolicyModelShape *p = &meta->model;
    if (strcmp(p->arch, model->arch) || p->n_layer != model->n_layer ||
        p->n_head != model->n_head || p->n_kv_head != model->n_kv_head ||
        p->head_dim != model->head_dim || p->d_model != model->d_model)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: the policy was trained for a %s model with %d layers, %d heads "
                          "(%d kv), head_dim %d, d_model %d; this model is %s with %d layers, "
                          "%d heads (%d kv), head_dim %d, d_model %d",
                          path, p->arch, p->n_layer, p->n_head, p->n_kv_head, p->head_dim,
                          p->d_model, model->arch, model->n_layer, model->n_head,
                          model->n_kv_head, model->head_dim, model->d_model);
    if (!warn || !warn_n)
        return DRRL_OK;
    if (strcmp(p->hash_algo, model->hash_algo) || !model->hash[0])
        snprintf(warn, warn_n,
                 "%s: the policy names its model by a %s hash, which this drrl cannot "
                 "compute (it knows %s and %s): it may have been trained for another model",
                 path, p->hash_algo, MODEL_HASH_ALGO, MODEL_HASH_ALGO_V1);
    else if (strcmp(p->hash, model->hash))
        snprintf(warn, warn_n,
                 "%s: the policy was trained for another model of this shape (weights %s, "
                 "this model %s, %s); its decisions may be poor",
                 path, p->hash, model->hash, p->hash_algo);
    return DRRL_OK;
}

void policy_model_shape(const Model *m, const char *hash_algo, PolicyModelShape *out)
{
    const ModelConfig *c = &m->cfg;
    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "%s", model_arch_short(c->arch));
    out->n_layer = c->n_layer, out->n_head = c->n_head, out->n_kv_head = c->n_kv_head;
    out->head_dim = c->head_dim, out->d_model = c->d_model;
    if (!hash_algo)
        hash_algo = MODEL_HASH_ALGO;
    snprintf(out->hash_algo, sizeof out->hash_algo, "%s", hash_algo);
    const char *h = model_hash_by(m, hash_algo);
    snprintf(out->hash, sizeof out->hash, "%s", h ? h : "");
}
