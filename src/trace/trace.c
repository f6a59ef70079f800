/* trace.c: TraceMeta lifetime helpers (see trace.h). */
#include "trace/trace.h"
#include "base/mem.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_COL_DESC(name, kind, count, lo, hi, range)                                       \
    {#name,                                                                                    \
     TRACE_##kind,                                                                             \
     (unsigned)offsetof(TraceRecord, name),                                                    \
     (unsigned)offsetof(TraceRecord, count),                                                   \
     lo,                                                                                       \
     hi,                                                                                       \
     range},
const TraceColumn trace_columns[TRACE_NCOLS] = {TRACE_COLUMNS(TRACE_COL_DESC)};
#undef TRACE_COL_DESC

void trace_meta_init(TraceMeta *m)
{
    memset(m, 0, sizeof *m);
    m->schema_version = TRACE_SCHEMA_VERSION;
}

void trace_meta_done(TraceMeta *m)
{
    if (!m)
        return;
    DRRL_FREE(m->drrl_version, m->model_path, m->model_hash, m->model_hash_algo, m->text_hash,
              m->method, m->rank_grid);
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
    dst->drrl_version = dst->model_path = dst->model_hash = dst->model_hash_algo = NULL;
    dst->text_hash = dst->method = NULL;
    dst->rank_grid = NULL;
    if (src->n_grid < 0 || (src->n_grid > 0 && !src->rank_grid)) {
        trace_meta_init(dst);
        return drrl_error(err, DRRL_E_INTERNAL, "trace metadata: bad rank grid");
    }
    if (trace_meta_set_str(&dst->drrl_version, src->drrl_version, err) ||
        trace_meta_set_str(&dst->model_path, src->model_path, err) ||
        trace_meta_set_str(&dst->model_hash, src->model_hash, err) ||
        trace_meta_set_str(&dst->model_hash_algo, src->model_hash_algo, err) ||
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

DrrlStatus trace_meta_replace(TraceMeta *dst, const TraceMeta *src, DrrlError *err)
{
    TraceMeta copy;
    DrrlStatus st = trace_meta_copy(&copy, src, err);
    if (st)
        return st;
    trace_meta_done(dst);
    *dst = copy;
    return DRRL_OK;
}

float trace_to_float(double x)
{
    if (x > FLT_MAX)
        return INFINITY;
    if (x < -FLT_MAX)
        return -INFINITY;
    return (float)x;
}

/* The integer value of column c of rec (I64, I32, NS). */
static int64_t int_at(const TraceRecord *rec, const TraceColumn *c)
{
    const char *p = (const char *)rec + c->offset;
    if (c->kind == TRACE_I32)
        return *(const int32_t *)(const void *)p;
    return *(const int64_t *)(const void *)p;
}

DrrlStatus trace_record_check(const TraceRecord *rec, DrrlError *err)
{
#define BAD(...) drrl_error(err, DRRL_E_INPUT, __VA_ARGS__)
    for (int i = 0; i < TRACE_NCOLS; i++) {
        const TraceColumn *c = &trace_columns[i];
        const char *p = (const char *)rec + c->offset;
        if (c->kind == TRACE_I64 || c->kind == TRACE_I32) {
            int64_t v = int_at(rec, c);
            if (v < c->lo || v > c->hi)
                return BAD("%s %lld is out of range %lld..%lld", c->name, (long long)v,
                           (long long)c->lo, (long long)c->hi);
        } else if (c->kind == TRACE_FLOATS || c->kind == TRACE_INTS) {
            int32_t n = *(const int32_t *)(const void *)((const char *)rec + c->count_offset);
            if (n < 0 || n > 65535 || (n > 0 && !*(const void *const *)(const void *)p))
                return BAD("%s has %d entries (0..65535 allowed)", c->name, (int)n);
        }
    }
    if (rec->rank > rec->head_dim)
        return BAD("rank %d is out of range 0..head_dim (%d)", (int)rec->rank,
                   (int)rec->head_dim);
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
