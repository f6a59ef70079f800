/* trace.c: TraceMeta lifetime helpers (see trace.h). */
#include "trace/trace.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void trace_meta_init(TraceMeta *m)
{
    memset(m, 0, sizeof *m);
    m->schema_version = TRACE_SCHEMA_VERSION;
}

void trace_meta_done(TraceMeta *m)
{
    if (!m)
        return;
    free(m->drrl_version);
    free(m->model_path);
    free(m->model_hash);
    free(m->text_hash);
    free(m->method);
    free(m->rank_grid);
    trace_meta_init(m);
}

DrrlStatus trace_meta_set_str(char **field, const char *s, DrrlError *err)
{
    char *c = NULL;
    if (s) {
        c = strdup(s);
        if (!c)
            return drrl_error(err, DRRL_E_NOMEM, "trace metadata: out of memory");
    }
    free(*field);
    *field = c;
    return DRRL_OK;
}

DrrlStatus trace_meta_copy(TraceMeta *dst, const TraceMeta *src, DrrlError *err)
{
    *dst = *src;
    dst->drrl_version = dst->model_path = dst->model_hash = NULL;
    dst->text_hash = dst->method = NULL;
    dst->rank_grid = NULL;
    if (src->n_grid < 0 || (src->n_grid > 0 && !src->rank_grid)) {
        trace_meta_init(dst);
        return drrl_error(err, DRRL_E_INTERNAL, "trace metadata: bad rank grid");
    }
    if (trace_meta_set_str(&dst->drrl_version, src->drrl_version, err) ||
        trace_meta_set_str(&dst->model_path, src->model_path, err) ||
        trace_meta_set_str(&dst->model_hash, src->model_hash, err) ||
        trace_meta_set_str(&dst->text_hash, src->text_hash, err) ||
        trace_meta_set_str(&dst->method, src->method, err))
        goto nomem;
    if (src->n_grid > 0) {
        dst->rank_grid = malloc((size_t)src->n_grid * sizeof *dst->rank_grid);
        if (!dst->rank_grid)
            goto nomem;
        memcpy(dst->rank_grid, src->rank_grid, (size_t)src->n_grid * sizeof *dst->rank_grid);
    }
    return DRRL_OK;
nomem:
    trace_meta_done(dst);
    return drrl_error(err, DRRL_E_NOMEM, "trace metadata: out of memory");
}

float trace_to_float(double x)
{
    if (x > FLT_MAX)
        return INFINITY;
    if (x < -FLT_MAX)
        return -INFINITY;
    return (float)x;
}

DrrlStatus trace_record_check(const TraceRecord *rec, DrrlError *err)
{
#define BAD(...) drrl_error(err, DRRL_E_INPUT, __VA_ARGS__)
    if (rec->step < 0)
        return BAD("step %lld is negative", (long long)rec->step);
    if (rec->token_index < 0)
        return BAD("token_index %lld is negative", (long long)rec->token_index);
    if (rec->segment < 0)
        return BAD("segment %d is negative", (int)rec->segment);
    if (rec->layer < 0 || rec->layer > 65535)
        return BAD("layer %d is out of range 0..65535", (int)rec->layer);
    if (rec->head < 0 || rec->head > 65535)
        return BAD("head %d is out of range 0..65535", (int)rec->head);
    if (rec->head_dim < 0 || rec->head_dim > 65535)
        return BAD("head_dim %d is out of range 0..65535", (int)rec->head_dim);
    if (rec->rank < 0 || rec->rank > rec->head_dim)
        return BAD("rank %d is out of range 0..head_dim (%d)", (int)rec->rank,
                   (int)rec->head_dim);
    struct {
        const char *name;
        int32_t n;
        const void *p;
    } arr[] = {{"sigma", rec->n_sigma, rec->sigma},
               {"sigma_v", rec->n_sigma_v, rec->sigma_v},
               {"masked", rec->n_masked, rec->masked},
               {"policy_probs", rec->n_policy, rec->policy_probs}};
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
        if (arr[i].n < 0 || arr[i].n > 65535 || (arr[i].n > 0 && !arr[i].p))
            return BAD("%s has %d entries (0..65535 allowed)", arr[i].name, (int)arr[i].n);
    for (int32_t i = 0; i < rec->n_masked; i++) {
        if (rec->masked[i] < 0 || rec->masked[i] > rec->head_dim)
            return BAD("masked rank %d is out of range 0..head_dim (%d)", (int)rec->masked[i],
                       (int)rec->head_dim);
        if (i > 0 && rec->masked[i] <= rec->masked[i - 1])
            return BAD("masked ranks are not strictly ascending");
    }
    return DRRL_OK;
#undef BAD
}
