/* train_export.c: Hugging Face model directory writer and reader for the
 * trainer (see train_export.h). */
#include "config.h"

#include "train/train_export.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "model/safetensors.h"

static json_t *export_config_json(const TrainModelConfig *c, const char *torch_dtype)
{
    json_t *o = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("LlamaForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "hidden_size", json_integer(c->d_model));
    json_object_set_new(o, "intermediate_size", json_integer(c->d_ff));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_head));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_head));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layer));
    /* the float eps printed with float precision: 1e-05, not 9.99999997e-06 */
    char eps[32];
    snprintf(eps, sizeof eps, "%.7g", (double)c->rms_eps);
    json_object_set_new(o, "rms_norm_eps", json_real(strtod(eps, NULL)));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    json_t *rp = json_object();
    json_object_set_new(rp, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(rp, "rope_type", json_string("default"));
    json_object_set_new(o, "rope_parameters", rp);
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_positions));
    json_object_set_new(o, "vocab_size", json_integer(TRAIN_VOCAB));
    json_object_set_new(o, "tie_word_embeddings", c->tied ? json_true() : json_false());
    json_object_set_new(o, "bos_token_id", json_null());
    json_object_set_new(o, "eos_token_id", json_null());
    json_object_set_new(o, "pad_token_id", json_null());
    json_object_set_new(o, "initializer_range", json_real(0.02));
    json_object_set_new(o, "pretraining_tp", json_integer(1));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "torch_dtype", json_string(torch_dtype));
    json_object_set_new(o, "drrl_tokenizer", json_string("byte"));
    return o;
}

const char *train_export_torch_dtype(SafetensorsDtype dtype)
{
    return dtype == SAFETENSORS_F16    ? "float16"
           : dtype == SAFETENSORS_BF16 ? "bfloat16"
           : dtype == SAFETENSORS_F32  ? "float32"
                                       : NULL;
}

DrrlStatus train_export_write(const TrainModel *m, const char *dir, const char *metadata_json,
                              SafetensorsDtype dtype, unsigned flags, double *max_change,
                              DrrlError *err)
{
    const char *tdt = train_export_torch_dtype(dtype);
    if (max_change)
        *max_change = 0.0;
    if (!tdt)
        return drrl_error(err, DRRL_E_USAGE, "%s: weights can be written as F32, F16 or BF16",
                          dir);
    int created = mkdir(dir, 0755) == 0; /* removed again if nothing is written */
    if (!created && errno != EEXIST)
        return drrl_error(err, drrl_status_of_write_errno(errno),
                          "%s: cannot create directory: %s", dir, strerror(errno));
    char *cpath = fileio_join(dir, "config.json");
    char *wpath = fileio_join(dir, "model.safetensors");
    json_t *cfg = export_config_json(&m->cfg, tdt);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    SafetensorsWriteTensor *wt = calloc(m->n_tensors, sizeof *wt);
    /* 16-bit copies of all parameters, when asked for (params is contiguous). */
    uint16_t *half = dtype == SAFETENSORS_F32 ? NULL : malloc(m->n_params * sizeof *half);
    DrrlStatus st = DRRL_OK;
    if (!cpath || !wpath || !text || !wt || (dtype != SAFETENSORS_F32 && !half)) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    /* Both files checked before either is written. */
    if ((st = fileio_out_check(wpath, flags, err)) ||
        (st = fileio_out_check(cpath, flags, err)))
        goto done;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const TrainTensor *t = &m->tensors[i];
        const void *data = t->w;
        if (half) {
            uint16_t *h = half + (size_t)(t->w - m->params);
            for (size_t k = 0; k < t->numel; k++) {
                h[k] = dtype == SAFETENSORS_F16 ? safetensors_f32_to_f16(t->w[k])
                                                : safetensors_f32_to_bf16(t->w[k]);
                float back = dtype == SAFETENSORS_F16 ? safetensors_f16_to_f32(h[k])
                                                      : safetensors_bf16_to_f32(h[k]);
                if (!isfinite(back)) {
                    st = drrl_error(err, DRRL_E_INPUT,
                                    "%s: tensor '%s' element %zu (%g) does not fit %s", dir,
                                    t->name, k, (double)t->w[k], tdt);
                    goto done;
                }
                double d = fabs((double)back - (double)t->w[k]);
                if (max_change && d > *max_change)
                    *max_change = d;
            }
            data = h;
        }
        wt[i] = (SafetensorsWriteTensor){
            .name = t->name, .dtype = dtype, .ndim = t->ndim, .data = data};
        wt[i].shape[0] = t->shape[0];
        wt[i].shape[1] = t->shape[1];
    }
    st = safetensors_write_flags(wpath, wt, m->n_tensors,
                                 metadata_json ? metadata_json : "{\"format\":\"pt\"}", flags,
                                 err);
    if (st)
        goto done;
    size_t tl = strlen(text);
    char *withnl = malloc(tl + 2);
    if (!withnl) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    memcpy(withnl, text, tl);
    memcpy(withnl + tl, "\n", 2);
    st = fileio_write_all(cpath, withnl, tl + 1, flags, err);
    free(withnl);
done:
    free(half);
    free(wt);
    free(text);
    json_decref(cfg);
    free(cpath);
    free(wpath);
    if (st && created)
        rmdir(dir); /* fails, harmlessly, if a file was published */
    return st;
}

/* Integer field KEY of the config (required unless dflt >= 0). */
static DrrlStatus cfg_int(const char *path, json_t *o, const char *key, long dflt, long lo,
                          long hi, int *out, DrrlError *err)
{
    json_t *v = json_object_get(o, key);
    if (!v && dflt >= 0) {
        *out = (int)dflt;
        return DRRL_OK;
    }
    if (!json_is_integer(v))
        return drrl_error(err, DRRL_E_INPUT, "%s: \"%s\": expected an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return drrl_error(err, DRRL_E_INPUT, "%s: \"%s\" = %lld outside %ld..%ld", path, key,
                          (long long)x, lo, hi);
    *out = (int)x;
    return DRRL_OK;
}

static DrrlStatus parse_config(const char *path, TrainModelConfig *c, DrrlError *err)
{
    json_t *o;
    DrrlStatus st = fileio_read_json(path, 0, &o, err);
    if (st)
        return st;
    memset(c, 0, sizeof *c);
    json_t *mt = json_object_get(o, "model_type");
    int vocab = 0, kv = 0;
    if (!json_is_object(o))
        st = drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object", path);
    else if (!json_is_string(mt) || strcmp(json_string_value(mt), "llama") != 0)
        st = drrl_error(err, DRRL_E_INPUT, "%s: \"model_type\": expected \"llama\"", path);
    if (!st)
        st = cfg_int(path, o, "num_hidden_layers", -1, 1, 64, &c->n_layer, err);
    if (!st)
        st = cfg_int(path, o, "hidden_size", -1, 2, 8192, &c->d_model, err);
    if (!st)
        st = cfg_int(path, o, "num_attention_heads", -1, 1, 256, &c->n_head, err);
    if (!st)
        st = cfg_int(path, o, "num_key_value_heads", c->n_head, 1, 256, &kv, err);
    if (!st)
        st = cfg_int(path, o, "head_dim", c->n_head ? c->d_model / c->n_head : 0, 2, 1024,
                     &c->head_dim, err);
    if (!st)
        st = cfg_int(path, o, "intermediate_size", -1, 1, 65536, &c->d_ff, err);
    if (!st)
        st = cfg_int(path, o, "vocab_size", -1, 1, 1 << 20, &vocab, err);
    if (!st)
        st = cfg_int(path, o, "max_position_embeddings", 4096, 1, 1 << 24, &c->max_positions,
                     err);
    if (!st && vocab != TRAIN_VOCAB)
        st = drrl_error(err, DRRL_E_INPUT, "%s: \"vocab_size\" = %d, expected 256 (bytes)",
                        path, vocab);
    if (!st && kv != c->n_head)
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: \"num_key_value_heads\" = %d, the trainer needs %d (no GQA)", path,
                        kv, c->n_head);
    if (!st) {
        json_t *eps = json_object_get(o, "rms_norm_eps");
        c->rms_eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-6f;
        json_t *rp = json_object_get(o, "rope_parameters");
        json_t *th = json_is_object(rp) ? json_object_get(rp, "rope_theta") : NULL;
        if (!json_is_number(th))
            th = json_object_get(o, "rope_theta");
        c->rope_theta = json_is_number(th) ? json_number_value(th) : 10000.0;
        json_t *tie = json_object_get(o, "tie_word_embeddings");
        c->tied = tie ? json_is_true(tie) : 1;
    }
    json_decref(o);
    return st;
}

DrrlStatus train_export_load(const char *dir, TrainModel **out, char **metadata_json,
                             DrrlError *err)
{
    *out = NULL;
    if (metadata_json)
        *metadata_json = NULL;
    char *cpath = fileio_join(dir, "config.json");
    char *wpath = fileio_join(dir, "model.safetensors");
    TrainModel *m = NULL;
    Safetensors *sf = NULL;
    TrainModelConfig cfg;
    DrrlStatus st = DRRL_OK;
    if (!cpath || !wpath) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    st = parse_config(cpath, &cfg, err);
    if (!st)
        st = train_model_new(&cfg, &m, err);
    if (!st)
        st = safetensors_load(wpath, &sf, err);
    for (size_t i = 0; !st && i < m->n_tensors; i++) {
        TrainTensor *t = &m->tensors[i];
        const SafetensorsTensor *s = safetensors_find(sf, t->name);
        if (!s) {
            st = drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s' missing", wpath, t->name);
            break;
        }
        if (s->ndim != t->ndim || s->shape[0] != t->shape[0] ||
            (t->ndim == 2 && s->shape[1] != t->shape[1])) {
            st = drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': shape does not match %s",
                            wpath, t->name, cpath);
            break;
        }
        st = safetensors_to_f32(sf, s, t->w, err);
        for (size_t k = 0; !st && k < t->numel; k++)
            if (!isfinite(t->w[k]))
                st = drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': element %zu not finite",
                                wpath, t->name, k);
    }
    if (!st && metadata_json && sf->metadata_json &&
        !(*metadata_json = strdup(sf->metadata_json)))
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", wpath);
done:
    safetensors_free(sf);
    free(cpath);
    free(wpath);
    if (st) {
        train_model_free(m);
        return st;
    }
    *out = m;
    return DRRL_OK;
}
