/* trace_diff.c: row-aligned comparison of two traces (trace_diff.h). */
#include "trace/trace_diff.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_csv.h"

/* Real columns compare as the file stores them: float32, NaN == NaN. */
static int real_eq(double a, double b)
{
    float x = trace_to_float(a), y = trace_to_float(b);
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y);
    return x == y && signbit(x) == signbit(y);
}

static int dbl_eq(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

static int floats_eq(const float *a, int32_t na, const float *b, int32_t nb)
{
    if (na != nb)
        return 0;
    for (int32_t i = 0; i < na; i++)
        if (!real_eq(a[i], b[i]))
            return 0;
    return 1;
}

static int str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

#define AT(r, c, type) (*(const type *)(const void *)((const char *)(r) + (c)->offset))
#define COUNT(r, c) (*(const int32_t *)(const void *)((const char *)(r) + (c)->count_offset))

/* Column c of a and b equal as a trace file stores it. */
static int column_eq(const TraceRecord *a, const TraceRecord *b, const TraceColumn *c,
                     unsigned flags)
{
    switch (c->kind) {
    case TRACE_I64:
        return AT(a, c, int64_t) == AT(b, c, int64_t);
    case TRACE_I32:
        return AT(a, c, int32_t) == AT(b, c, int32_t);
    case TRACE_TEXT:
        return str_eq(AT(a, c, const char *), AT(b, c, const char *));
    case TRACE_REAL:
        return real_eq(AT(a, c, double), AT(b, c, double));
    case TRACE_F64:
        return dbl_eq(AT(a, c, double), AT(b, c, double));
    case TRACE_FLOATS:
        return floats_eq(AT(a, c, const float *), COUNT(a, c), AT(b, c, const float *),
                         COUNT(b, c));
    case TRACE_INTS:
        return COUNT(a, c) == COUNT(b, c) &&
               (!COUNT(a, c) || !memcmp(AT(a, c, const int32_t *), AT(b, c, const int32_t *),
                                        (size_t)COUNT(a, c) * sizeof(int32_t)));
    case TRACE_NS: {
        int64_t x = AT(a, c, int64_t), y = AT(b, c, int64_t);
        return !(flags & TRACE_DIFF_TIMING) || (x < 0 ? -1 : x) == (y < 0 ? -1 : y);
    }
    }
    return 0;
}

static bool has_policy(const TraceRecord *r)
{
    return r->n_policy > 0 || !isnan(r->value);
}

int trace_diff_rows(const TraceRecord *a, const TraceRecord *b, unsigned flags)
{
    bool policies = has_policy(a) && has_policy(b);
    for (int c = 0; c < TRACE_NCOLS; c++) {
        if (c == TRACE_COL_method || c == TRACE_COL_threshold)
            continue; /* labels and settings: trace_diff_note */
        if (!policies &&
            (c == TRACE_COL_policy_probs || c == TRACE_COL_value || c == TRACE_COL_reward))
            continue;
        if (!column_eq(a, b, &trace_columns[c], flags))
            return c;
    }
    return -1;
}

int trace_diff_decision(const TraceRecord *a, const TraceRecord *b)
{
    if (a->rank != b->rank)
        return TRACE_COL_rank;
    if (!column_eq(a, b, &trace_columns[TRACE_COL_masked], 0))
        return TRACE_COL_masked;
    return -1;
}

void trace_diff_note(const TraceDiff *d, char *buf, size_t n)
{
    char m[160] = "", t[96] = "";
    if (d->methods_differ)
        snprintf(m, sizeof m, "methods (%s, %s)", d->method_a, d->method_b);
    if (d->thresholds_differ)
        snprintf(t, sizeof t, "thresholds (%.4g, %.4g)", d->threshold_a, d->threshold_b);
    if (!m[0] && !t[0]) {
        snprintf(buf, n, "%s", "");
        return;
    }
    snprintf(buf, n, "A and B ran different %s%s%s", m, m[0] && t[0] ? " and " : "", t);
}

/* (step, layer, head) order: <0, 0, >0. */
static int key_cmp(const TraceRecord *a, const TraceRecord *b)
{
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    if (a->head != b->head)
        return a->head < b->head ? -1 : 1;
    return 0;
}

static void note_first(TraceDiff *d, const TraceRecord *a, const TraceRecord *b, int col)
{
    if (d->has_first)
        return;
    const TraceRecord *any = a ? a : b;
    d->has_first = 1;
    d->first_step = any->step;
    d->first_layer = any->layer;
    d->first_head = any->head;
    d->first_column = col;
    snprintf(d->first_token, sizeof d->first_token, "%s", "");
    trace_csv_field(any, TRACE_COL_token, d->first_token, sizeof d->first_token);
    if (col < 0) {
        snprintf(d->first_a, sizeof d->first_a, "%s", a ? "(row)" : "(no row)");
        snprintf(d->first_b, sizeof d->first_b, "%s", b ? "(row)" : "(no row)");
    } else {
        trace_csv_field(a, col, d->first_a, sizeof d->first_a);
        trace_csv_field(b, col, d->first_b, sizeof d->first_b);
    }
}

static void note_figure(TraceDiff *d, const TraceRecord *a, const TraceRecord *b, int col)
{
    if (d->has_figure)
        return;
    d->has_figure = 1;
    d->fig_step = a->step;
    d->fig_layer = a->layer;
    d->fig_head = a->head;
    d->fig_column = col;
    trace_csv_field(a, col, d->fig_a, sizeof d->fig_a);
    trace_csv_field(b, col, d->fig_b, sizeof d->fig_b);
}

static void note_settings(TraceDiff *d, const TraceRecord *a, const TraceRecord *b)
{
    snprintf(d->method_a, sizeof d->method_a, "%s", a->method ? a->method : "");
    snprintf(d->method_b, sizeof d->method_b, "%s", b->method ? b->method : "");
    d->methods_differ = !str_eq(a->method, b->method);
    d->threshold_a = a->threshold, d->threshold_b = b->threshold;
    d->thresholds_differ = !real_eq(a->threshold, b->threshold);
}

/* The first differing sidecar key, or 0 when they agree. */
static void meta_compare(TraceDiff *d, const TraceMeta *a, const TraceMeta *b)
{
    static const TraceMeta empty = {0};
    if (!a)
        a = &empty;
    if (!b)
        b = &empty;
#define STR(key)                                                                               \
    if (!str_eq(a->key, b->key)) {                                                             \
        snprintf(d->meta_key, sizeof d->meta_key, "%s", #key);                                 \
        snprintf(d->meta_a, sizeof d->meta_a, "%s", a->key ? a->key : "null");                 \
        snprintf(d->meta_b, sizeof d->meta_b, "%s", b->key ? b->key : "null");                 \
        return;                                                                                \
    }
#define NUM(key, fmt, cast)                                                                    \
    if (!(a->key == b->key || (a->key != a->key && b->key != b->key))) {                       \
        snprintf(d->meta_key, sizeof d->meta_key, "%s", #key);                                 \
        snprintf(d->meta_a, sizeof d->meta_a, fmt, (cast)a->key);                              \
        snprintf(d->meta_b, sizeof d->meta_b, fmt, (cast)b->key);                              \
        return;                                                                                \
    }
    STR(model_path)
    if (!str_eq(a->model_hash_algo, b->model_hash_algo) && a->model_hash && b->model_hash) {
        /* hashes by two algorithms (an older drrl wrote one trace) say
         * nothing about whether the weights differ */
        d->meta_hash_algos_differ = 1;
        snprintf(d->meta_key, sizeof d->meta_key, "model_hash");
        snprintf(d->meta_a, sizeof d->meta_a, "%s (%s)", a->model_hash,
                 a->model_hash_algo ? a->model_hash_algo : "null");
        snprintf(d->meta_b, sizeof d->meta_b, "%s (%s)", b->model_hash,
                 b->model_hash_algo ? b->model_hash_algo : "null");
        return;
    }
    STR(model_hash)
    STR(model_hash_algo)
    STR(text_hash)
    STR(method)
    NUM(seed, "%llu", unsigned long long)
    NUM(segment_len, "%d", int)
    NUM(n_layer, "%d", int)
    NUM(n_head, "%d", int)
    NUM(head_dim, "%d", int)
    NUM(n_steps, "%d", int)
    NUM(alpha, "%.17g", double)
    NUM(beta, "%.17g", double)
    NUM(gamma, "%.17g", double)
    NUM(eps_start, "%.17g", double)
    NUM(eps_floor, "%.17g", double)
    NUM(eps_decay, "%.17g", double)
    NUM(n_grid, "%d", int)
    for (int32_t i = 0; i < a->n_grid; i++)
        if (a->rank_grid[i] != b->rank_grid[i]) {
            snprintf(d->meta_key, sizeof d->meta_key, "rank_grid[%d]", (int)i);
            snprintf(d->meta_a, sizeof d->meta_a, "%d", (int)a->rank_grid[i]);
            snprintf(d->meta_b, sizeof d->meta_b, "%d", (int)b->rank_grid[i]);
            return;
        }
    STR(drrl_version)
#undef STR
#undef NUM
}

DrrlStatus trace_diff_compute(const TraceStore *a, const TraceStore *b, unsigned flags,
                              TraceDiff *d, DrrlError *err)
{
    memset(d, 0, sizeof *d);
    d->rows_a = trace_store_n_rows(a);
    d->rows_b = trace_store_n_rows(b);
    int32_t la = trace_store_n_layers(a), lb = trace_store_n_layers(b);
    d->n_layers = la > lb ? la : lb;
    if (d->n_layers > 0) {
        d->layers = calloc((size_t)d->n_layers, sizeof *d->layers);
        if (!d->layers)
            return drrl_error(err, DRRL_E_NOMEM, "trace diff: out of memory");
    }
    meta_compare(d, trace_store_meta(a), trace_store_meta(b));
    /* Merge walk over both row sequences, each sorted by (step, layer, head). */
    size_t i = 0, j = 0;
    TraceRecord ra, rb;
    int ha = trace_store_row(a, 0, &ra), hb = trace_store_row(b, 0, &rb);
    while (ha || hb) {
        int c = !ha ? 1 : !hb ? -1 : key_cmp(&ra, &rb);
        if (c < 0) {
            d->only_a++;
            d->layers[ra.layer].only_a++;
            note_first(d, &ra, NULL, -1);
            ha = trace_store_row(a, ++i, &ra);
            continue;
        }
        if (c > 0) {
            d->only_b++;
            d->layers[rb.layer].only_b++;
            note_first(d, NULL, &rb, -1);
            hb = trace_store_row(b, ++j, &rb);
            continue;
        }
        TraceDiffLayer *L = &d->layers[ra.layer];
        if (d->aligned++ == 0)
            note_settings(d, &ra, &rb);
        L->aligned++;
        int col = trace_diff_rows(&ra, &rb, flags);
        if (col >= 0) {
            d->differing++;
            L->differing++;
            int dec = trace_diff_decision(&ra, &rb);
            if (dec >= 0)
                note_first(d, &ra, &rb, dec);
            else
                note_figure(d, &ra, &rb, col);
        }
        L->rank_changed += ra.rank != rb.rank;
        L->rank_sum_a += ra.rank;
        L->rank_sum_b += rb.rank;
        if (isfinite(ra.measured_error)) {
            L->err_sum_a += ra.measured_error;
            L->err_n_a++;
        }
        if (isfinite(rb.measured_error)) {
            L->err_sum_b += rb.measured_error;
            L->err_n_b++;
        }
        double de = fabs(rb.measured_error - ra.measured_error);
        if (isfinite(de) && de > L->max_err_delta)
            L->max_err_delta = de;
        L->flops_exact_a += ra.flops_exact;
        L->flops_exact_b += rb.flops_exact;
        L->flops_a += ra.flops_executed;
        L->flops_b += rb.flops_executed;
        ha = trace_store_row(a, ++i, &ra);
        hb = trace_store_row(b, ++j, &rb);
    }
    d->identical = !d->has_first && !d->has_figure && !d->meta_key[0];
    return DRRL_OK;
}

void trace_diff_done(TraceDiff *d)
{
    if (!d)
        return;
    free(d->layers);
    memset(d, 0, sizeof *d);
}
