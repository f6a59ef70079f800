/* trace_csv.c: trace files, written and read through libcsv (trace_csv.h). */
#define _GNU_SOURCE 1 /* sched_getaffinity: the CPUs this process may use */
#include "trace/trace_csv.h"

#include "base/mem.h"
#include "base/fileio.h"
#include "base/strbuf.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <libgen.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define TRACE_COL_NAME(name, kind, count, lo, hi, range) #name,
const char *const trace_csv_columns[TRACE_CSV_NCOLS] = {TRACE_COLUMNS(TRACE_COL_NAME)};
#undef TRACE_COL_NAME

/* Members of a record by column descriptor. */
#define FIELD(r, c, type) ((type *)(void *)((char *)(r) + (c)->offset))
#define CFIELD(r, c, type) ((const type *)(const void *)((const char *)(r) + (c)->offset))
#define COUNT(r, c) (*(const int32_t *)(const void *)((const char *)(r) + (c)->count_offset))

static int64_t col_int(const TraceRecord *r, const TraceColumn *c)
{
    return c->kind == TRACE_I32 ? *CFIELD(r, c, int32_t) : *CFIELD(r, c, int64_t);
}

static void col_set_int(TraceRecord *r, const TraceColumn *c, int64_t v)
{
    if (c->kind == TRACE_I32)
        *FIELD(r, c, int32_t) = (int32_t)v;
    else
        *FIELD(r, c, int64_t) = v;
}

/* ================================================================ locale */

/* Numbers are written and read in the C locale whatever the program set
 * (the TUI calls setlocale(LC_ALL, ""): a "de_DE" LC_NUMERIC would write
 * "0,5", breaking the CSV and byte-identity). uselocale is per thread. */
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
    c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Switch this thread to the C locale; returns what to pass to c_locale_leave. */
static locale_t c_locale_enter(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale_obj ? uselocale(c_locale_obj) : (locale_t)0;
}

static void c_locale_leave(locale_t old)
{
    if (old)
        uselocale(old);
}

/* ================================================================ formatting */

/* A real column: float32 precision, 9 significant digits (enough to round-trip
 * any float32), NaN/Inf spelled as Python, pandas and R all read them. */
static int fmt_real(char *b, double x)
{
    float f = trace_to_float(x);
    if (isnan(f))
        return (int)(memcpy(b, "NaN", 4), 3);
    if (isinf(f))
        return f > 0 ? (int)(memcpy(b, "Inf", 4), 3) : (int)(memcpy(b, "-Inf", 5), 4);
    return snprintf(b, 32, "%.9g", (double)f);
}

/* A FLOP count: a double printed with 17 significant digits (integers below
 * 1e17 come out as plain integers). */
static int fmt_flops(char *b, double x)
{
    if (isnan(x))
        return (int)(memcpy(b, "NaN", 4), 3);
    if (isinf(x))
        return x > 0 ? (int)(memcpy(b, "Inf", 4), 3) : (int)(memcpy(b, "-Inf", 5), 4);
    return snprintf(b, 32, "%.17g", x);
}

static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c == 0xE0)
        n = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        n = 3;
    else if (c == 0xED)
        n = 3, hi = 0x9F;
    else if (c == 0xF0)
        n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        n = 4;
    else if (c == 0xF4)
        n = 4, hi = 0x8F;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* Escape a token's bytes so the CSV stays valid UTF-8 with one row per line:
 * '\' -> "\\", control bytes and bytes of invalid UTF-8 -> "\xHH". */
static int escape_text(StrBuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_len(p);
        if (n == 1 && *p >= 0x20 && *p != 0x7F && *p != '\\') {
            if (strbuf_add(b, (const char *)p, 1))
                return 1;
        } else if (n > 1) {
            if (strbuf_add(b, (const char *)p, (size_t)n))
                return 1;
            p += n - 1;
        } else if (*p == '\\') {
            if (strbuf_add(b, "\\\\", 2))
                return 1;
        } else {
            char e[5];
            snprintf(e, sizeof e, "\\x%02X", *p);
            if (strbuf_add(b, e, 4))
                return 1;
        }
        p++;
    }
    return 0;
}

/* Append s, escaped and quoted by libcsv, to line. */
static int add_text(StrBuf *line, StrBuf *tmp, const char *s)
{
    tmp->len = 0;
    if (strbuf_add(tmp, "", 0) || escape_text(tmp, s ? s : ""))
        return 1;
    size_t need = tmp->len * 2 + 2; /* csv_write's worst case */
    if (strbuf_reserve(line, need + 1))
        return 1;
    line->len += csv_write(line->p + line->len, need, tmp->p, tmp->len);
    return 0;
}

static int add_str(StrBuf *b, const char *s)
{
    return strbuf_add(b, s, strlen(s));
}

static int add_fmt_i64(StrBuf *b, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    return strbuf_add(b, t, (size_t)n);
}

static int add_real(StrBuf *b, double x)
{
    char t[40];
    return strbuf_add(b, t, (size_t)fmt_real(t, x));
}

static int add_floats(StrBuf *b, const float *a, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if ((i && strbuf_add(b, ";", 1)) || add_real(b, a[i]))
            return 1;
    return 0;
}

static int add_ints(StrBuf *b, const int32_t *a, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if ((i && strbuf_add(b, ";", 1)) || add_fmt_i64(b, a[i]))
            return 1;
    return 0;
}

/* Column c of r as the file spells it: text quoted by libcsv (quoted) or only
 * escaped; an NS column empty unless timing. */
static int add_column(StrBuf *b, StrBuf *tmp, const TraceRecord *r, int col, int quoted,
                      int timing)
{
    const TraceColumn *c = &trace_columns[col];
    char t[40];
    switch (c->kind) {
    case TRACE_I64:
    case TRACE_I32:
        return add_fmt_i64(b, col_int(r, c));
    case TRACE_TEXT: {
        const char *s = *CFIELD(r, c, const char *);
        return quoted ? add_text(b, tmp, s) : escape_text(b, s ? s : "");
    }
    case TRACE_REAL:
        return add_real(b, *CFIELD(r, c, double));
    case TRACE_F64:
        return strbuf_add(b, t, (size_t)fmt_flops(t, *CFIELD(r, c, double)));
    case TRACE_FLOATS:
        return add_floats(b, *CFIELD(r, c, const float *), COUNT(r, c));
    case TRACE_INTS:
        return add_ints(b, *CFIELD(r, c, const int32_t *), COUNT(r, c));
    case TRACE_NS:
        return timing && *CFIELD(r, c, int64_t) >= 0 && add_fmt_i64(b, *CFIELD(r, c, int64_t));
    }
    return 1;
}

/* One CSV line (with '\n') for rec. */
static int format_row(StrBuf *line, StrBuf *tmp, const TraceRecord *r, int timing)
{
    line->len = 0;
    int bad = strbuf_add(line, "", 0);
    for (int c = 0; !bad && c < TRACE_NCOLS; c++)
        bad = (c && add_str(line, ",")) || add_column(line, tmp, r, c, 1, timing);
    return bad || add_str(line, "\n");
}

int trace_csv_field(const TraceRecord *r, int col, char *out, size_t n)
{
    StrBuf b = {0};
    locale_t loc = c_locale_enter();
    int bad = strbuf_add(&b, "", 0) || col < 0 || col >= TRACE_NCOLS ||
              add_column(&b, NULL, r, col, 0, 1);
    c_locale_leave(loc);
    if (bad) {
        free(b.p);
        if (n)
            out[0] = '\0';
        return -1;
    }
    if (n) {
        if (b.len < n)
            memcpy(out, b.p, b.len + 1);
        else if (n >= 4)
            snprintf(out, n, "%.*s...", (int)(n - 4), b.p);
        else
            out[0] = '\0';
    }
    free(b.p);
    return 0;
}

/* ================================================================ sidecar */

char *trace_csv_sidecar_path(const char *path)
{
    size_t n = strlen(path);
    char *s = malloc(n + 6);
    if (s) {
        memcpy(s, path, n);
        memcpy(s + n, ".json", 6);
    }
    return s;
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *jreal(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static char *sidecar_text(const TraceMeta *m, size_t rows, int64_t steps, int complete)
{
    json_t *o = json_object(), *grid = json_array(), *eps = json_object(), *cols = json_array();
    if (!o || !grid || !eps || !cols)
        goto fail;
    for (int32_t i = 0; i < m->n_grid; i++)
        json_array_append_new(grid, json_integer(m->rank_grid[i]));
    json_object_set_new(eps, "start", jreal(m->eps_start));
    json_object_set_new(eps, "floor", jreal(m->eps_floor));
    json_object_set_new(eps, "decay", jreal(m->eps_decay));
    for (int i = 0; i < TRACE_CSV_NCOLS; i++)
        json_array_append_new(cols, json_string(trace_csv_columns[i]));
    json_object_set_new(o, "schema_version", json_integer(TRACE_SCHEMA_VERSION));
    json_object_set_new(o, "drrl_version",
                        jstr(m->drrl_version ? m->drrl_version : PACKAGE_VERSION));
    json_object_set_new(o, "model_path", jstr(m->model_path));
    json_object_set_new(o, "model_hash", jstr(m->model_hash));
    if (m->model_hash) /* a trace without a model hash names no algorithm */
        json_object_set_new(o, "model_hash_algo", jstr(m->model_hash_algo));
    json_object_set_new(o, "text_hash", jstr(m->text_hash));
    json_object_set_new(o, "method", jstr(m->method));
    /* JSON readers lose integers past 2^53 (JavaScript) or 2^63 (jansson):
     * larger seeds are written as decimal strings. */
    if (m->seed <= (1ull << 53))
        json_object_set_new(o, "seed", json_integer((json_int_t)m->seed));
    else {
        char t[32];
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->seed);
        json_object_set_new(o, "seed", json_string(t));
    }
    json_object_set_new(o, "segment_len", json_integer(m->segment_len));
    json_object_set_new(o, "n_layer", json_integer(m->n_layer));
    json_object_set_new(o, "n_head", json_integer(m->n_head));
    json_object_set_new(o, "head_dim", json_integer(m->head_dim));
    json_object_set_new(o, "n_steps", json_integer(steps));
    json_object_set_new(o, "rank_grid", grid);
    json_object_set_new(o, "alpha", jreal(m->alpha));
    json_object_set_new(o, "beta", jreal(m->beta));
    json_object_set_new(o, "gamma", jreal(m->gamma));
    json_object_set_new(o, "eps_schedule", eps);
    json_object_set_new(o, "rows", json_integer((json_int_t)rows));
    json_object_set_new(o, "complete", json_boolean(complete));
    json_object_set_new(o, "columns", cols);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
fail:
    json_decref(o);
    json_decref(grid);
    json_decref(eps);
    json_decref(cols);
    return NULL;
}

/* Most (layer, head) pairs a sidecar may declare (the largest open models
 * have about 10^4); drrl-trace(5) states it. */
#define TRACE_MAX_CELLS (1 << 20)
#define TRACE_MAX_CELLS_TEXT "1048576"
/* Layers and heads a row may name when the sidecar does not record the shape
 * (n_layer or n_head 0): 1024 x 1024 is TRACE_MAX_CELLS. */
#define TRACE_MAX_UNSHAPED 1024

/* ================================================================ writer */

struct TraceCsvWriter {
    char *path, *json_path;
    FileOut *out; /* the CSV (base/fileio.h); the sidecar is written at finish */
    FILE *f;      /* its stream */
    unsigned flags;
    TraceMeta meta;
    StrBuf line, tmp;
    size_t rows;
    int64_t steps;
    int failed;
    /* order and step consistency of what was written */
    int64_t last_step, last_token_index;
    int32_t last_layer, last_head, last_segment;
    char *last_token;
};

static void writer_free(TraceCsvWriter *w)
{
    if (!w)
        return;
    fileio_out_abort(w->out);
    free(w->path);
    free(w->json_path);
    trace_meta_done(&w->meta);
    DRRL_FREE(w->line.p, w->tmp.p, w->last_token, w);
}

DrrlStatus trace_csv_writer_open(TraceCsvWriter **out, const char *path, const TraceMeta *meta,
                                 unsigned flags, DrrlError *err)
{
    *out = NULL;
    TraceCsvWriter *w = calloc(1, sizeof *w);
    if (!w)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    trace_meta_init(&w->meta);
    w->flags = flags;
    w->last_step = -1;
    w->path = strdup(path);
    /* A trace written through to a character device (/dev/null) sends its
     * sidecar there too, never to a new file beside it (/dev/null.json). */
    struct stat sb;
    int device = stat(path, &sb) == 0 && S_ISCHR(sb.st_mode);
    w->json_path = device ? strdup(path) : trace_csv_sidecar_path(path);
    if (!w->path || !w->json_path) {
        writer_free(w);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    DrrlStatus st = meta ? trace_meta_copy(&w->meta, meta, err) : DRRL_OK;
    if (st) {
        writer_free(w);
        return st;
    }
    unsigned fl = (flags & TRACE_CSV_FORCE ? FILEIO_FORCE : 0) | FILEIO_KEEP_ON_CONFLICT;
    if ((st = fileio_out_check(w->json_path, fl, err)) ||
        (st = fileio_out_open(&w->out, path, fl, err))) {
        writer_free(w);
        return st;
    }
    w->f = fileio_out_stream(w->out);
    for (int i = 0; i < TRACE_CSV_NCOLS; i++)
        fprintf(w->f, "%s%c", trace_csv_columns[i], i + 1 < TRACE_CSV_NCOLS ? ',' : '\n');
    if (ferror(w->f)) {
        trace_csv_writer_abort(w);
        return drrl_error(err, DRRL_E_IO, "%s: write failed: %s", path, strerror(errno));
    }
    *out = w;
    return DRRL_OK;
}

DrrlStatus trace_csv_writer_set_meta(TraceCsvWriter *w, const TraceMeta *meta, DrrlError *err)
{
    return trace_meta_replace(&w->meta, meta, err);
}

DrrlStatus trace_csv_writer_put(TraceCsvWriter *w, const TraceRecord *r, DrrlError *err)
{
    if (w->failed)
        return drrl_error(err, DRRL_E_INTERNAL, "%s: writer already failed", w->path);
    DrrlError e;
    if (trace_record_check(r, &e))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: record %zu (step %lld, layer %d, head %d): %s", w->path,
                          w->rows + 1, (long long)r->step, (int)r->layer, (int)r->head, e.msg);
    const char *token = r->token ? r->token : "";
    if (w->rows > 0) {
        int same = r->step == w->last_step;
        if (r->step < w->last_step ||
            (same && (r->layer < w->last_layer ||
                      (r->layer == w->last_layer && r->head <= w->last_head))))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: record (step %lld, layer %d, head %d) after (step %lld, "
                              "layer %d, head %d): records must be ordered without repeats",
                              w->path, (long long)r->step, (int)r->layer, (int)r->head,
                              (long long)w->last_step, (int)w->last_layer, (int)w->last_head);
        if (same && (r->token_index != w->last_token_index || r->segment != w->last_segment ||
                     strcmp(token, w->last_token) != 0))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: step %lld: token_index, token and segment differ between "
                              "rows of one step",
                              w->path, (long long)r->step);
    }
    if (w->rows == 0 || r->step != w->last_step) {
        char *t = strdup(token);
        if (!t)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", w->path);
        free(w->last_token);
        w->last_token = t;
        w->steps++;
    }
    locale_t loc = c_locale_enter();
    int bad = format_row(&w->line, &w->tmp, r, !(w->flags & TRACE_CSV_NO_TIMING));
    c_locale_leave(loc);
    if (bad)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", w->path);
    if (fwrite(w->line.p, 1, w->line.len, w->f) != w->line.len) {
        w->failed = 1;
        return drrl_error(err, DRRL_E_IO, "%s: write failed: %s", fileio_out_temp_path(w->out),
                          strerror(errno));
    }
    w->last_step = r->step;
    w->last_layer = r->layer;
    w->last_head = r->head;
    w->last_token_index = r->token_index;
    w->last_segment = r->segment;
    w->rows++;
    return DRRL_OK;
}

static DrrlStatus writer_sink_put(TraceSink *self, const TraceRecord *rec, DrrlError *err)
{
    return trace_csv_writer_put(self->ctx, rec, err);
}

TraceSink trace_csv_writer_sink(TraceCsvWriter *w)
{
    TraceSink k = {writer_sink_put, w};
    return k;
}

size_t trace_csv_writer_rows(const TraceCsvWriter *w)
{
    return w->rows;
}

void trace_csv_writer_abort(TraceCsvWriter *w)
{
    if (!w)
        return;
    writer_free(w);
}

DrrlStatus trace_csv_writer_finish(TraceCsvWriter *w, int interrupted, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    FileOut *js = NULL;
    if (w->failed) {
        st =
            drrl_error(err, DRRL_E_IO, "%s: an earlier write failed; trace not saved", w->path);
        goto done;
    }
    char *text = sidecar_text(&w->meta, w->rows, w->steps, !interrupted);
    if (!text) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", w->json_path);
        goto done;
    }
    unsigned fl = w->flags & TRACE_CSV_FORCE ? FILEIO_FORCE : 0;
    st = fileio_out_open(&js, w->json_path, fl, err);
    if (st == DRRL_OK) {
        fputs(text, fileio_out_stream(js));
        fputc('\n', fileio_out_stream(js));
    }
    free(text);
    if (st)
        goto done;
    /* Both files or neither: a pair from two writers is never mixed. */
    st = fileio_out_commit_pair(w->out, js, err);
    w->out = NULL;
done:
    writer_free(w);
    return st;
}

DrrlStatus trace_csv_write_store(const char *path, const TraceStore *s, unsigned flags,
                                 DrrlError *err)
{
    TraceCsvWriter *w;
    const TraceMeta *meta = trace_store_meta(s);
    DrrlStatus st = trace_csv_writer_open(&w, path, meta, flags, err);
    if (st)
        return st;
    TraceRecord r;
    for (size_t i = 0; trace_store_row(s, i, &r); i++)
        if ((st = trace_csv_writer_put(w, &r, err))) {
            trace_csv_writer_abort(w);
            return st;
        }
    return trace_csv_writer_finish(w, 0, err);
}

/* ================================================================ parsing */

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Parse a decimal real (or NaN, Inf, -Inf, case-insensitive) at s, ending at
 * '\0' or ';' (*end points there). Fast path (Clinger 1990, "How to read
 * floating point numbers accurately"): with at most 19 digits, a mantissa
 * <= 2^53 and |exp10| <= 22 both operands are exact doubles, so one IEEE
 * multiply or divide gives the correctly rounded result; anything else goes
 * to strtod. Returns 0 or -1. */
static int parse_real_end(const char *s, double *out, const char **end)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if ((*p | 0x20) == 'n' || (*p | 0x20) == 'i') {
        size_t n = strcspn(p, ";");
        if (n == 3 && strncasecmp(p, "nan", 3) == 0)
            *out = NAN;
        else if ((n == 3 && strncasecmp(p, "inf", 3) == 0) ||
                 (n == 8 && strncasecmp(p, "infinity", 8) == 0))
            *out = neg ? -INFINITY : INFINITY;
        else
            return -1;
        *end = p + n;
        return 0;
    }
    uint64_t m = 0;
    int nd = 0, any = 0, dropped = 0;
    long exp10 = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        any = 1;
        if (nd < 19) {
            m = m * 10 + (uint64_t)(*p - '0');
            nd += m != 0;
        } else {
            exp10++;
            dropped = 1;
        }
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            any = 1;
            if (nd < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                nd += m != 0;
                exp10--;
            } else {
                dropped = 1;
            }
        }
    }
    if (!any)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0;
        if (*p == '-' || *p == '+')
            eneg = *p++ == '-';
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        long e = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            if (e < 100000)
                e = e * 10 + (*p - '0');
        exp10 += eneg ? -e : e;
    }
    if (*p && *p != ';')
        return -1;
    *end = p;
    if (!dropped && m <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        *out = neg ? -d : d;
        return 0;
    }
    char *e2;
    double d = strtod(s, &e2); /* the grammar above was checked: strtod agrees on the end */
    if (e2 != p)
        return -1;
    *out = d;
    return 0;
}

static int parse_real(const char *s, double *out)
{
    const char *end;
    return parse_real_end(s, out, &end) != 0 || *end ? -1 : 0;
}

/* Parse a decimal integer in [lo, hi] filling the whole string. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-')
        neg = 1, p++;
    if (!(*p >= '0' && *p <= '9'))
        return -1;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p || v > (uint64_t)INT64_MAX)
        return -1;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* Undo escape_text into b. Returns 0, or -1 on a malformed escape. */
static int unescape_text(StrBuf *b, const char *s, size_t n)
{
    b->len = 0;
    if (strbuf_reserve(b, n + 1))
        return -2;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\0')
            return -1;
        if (c == '\\') {
            if (i + 1 < n && s[i + 1] == '\\') {
                i++;
            } else if (i + 3 < n && s[i + 1] == 'x') {
                int v = 0;
                for (int k = 2; k <= 3; k++) {
                    char h = s[i + (size_t)k];
                    int d = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                                   : -1;
                    if (d < 0)
                        return -1;
                    v = v * 16 + d;
                }
                if (v == 0)
                    return -1;
                c = (char)v;
                i += 3;
            } else {
                return -1;
            }
        }
        b->p[b->len++] = c;
    }
    b->p[b->len] = '\0';
    return 0;
}

/* ================================================================ reader */

/* RFC 4180: spaces are part of a field (libcsv trims them by default). */
static int no_space(unsigned char c)
{
    (void)c;
    return 0;
}

static int parser_init(struct csv_parser *p)
{
    if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return -1;
    csv_set_space_func(p, no_space);
    return 0;
}

typedef struct Reader {
    const char *path;
    TraceSink *sink;
    const TraceMeta *meta;
    DrrlError *err;
    DrrlStatus st;
    size_t line; /* line of the row being parsed, 1 = header */
    int col;     /* fields seen in the current row */
    int header_done;
    char *hdr[TRACE_CSV_NCOLS];
    TraceRecord rec;
    StrBuf text[TRACE_NCOLS]; /* TEXT columns, unescaped */
    void *list[TRACE_NCOLS];  /* FLOATS and INTS columns: 4-byte items */
    size_t list_cap[TRACE_NCOLS];
    size_t rows;
    int64_t steps, last_step;
    int split; /* parsing one part of a file split at '\n' (trace_csv_load) */
    /* Last text and values of the float lists per (layer, head): spectra and
     * policy outputs repeat for a whole segment, so most are not parsed. */
    struct ListCache *lc;
    size_t lc_cap, lc_n;
} Reader;

enum { NL = TRACE_N_FLOAT_LISTS };

typedef struct ListCache {
    uint32_t key; /* layer << 16 | head, + 1 (0: empty slot) */
    char *raw[NL];
    size_t rawlen[NL], rawcap[NL];
    float *vals[NL];
    int32_t n[NL];
    size_t valcap[NL];
} ListCache;

/* Which FLOATS column col is (0 .. TRACE_N_FLOAT_LISTS-1): its cache slot. */
static int float_slot(int col)
{
    int k = 0;
    for (int i = 0; i < col; i++)
        k += trace_columns[i].kind == TRACE_FLOATS;
    return k;
}

static void reader_done(Reader *r)
{
    for (size_t i = 0; i < r->lc_cap; i++)
        for (int k = 0; k < NL; k++) {
            free(r->lc[i].raw[k]);
            free(r->lc[i].vals[k]);
        }
    free(r->lc);
    for (int i = 0; i < TRACE_CSV_NCOLS; i++)
        free(r->hdr[i]);
    for (int i = 0; i < TRACE_NCOLS; i++) {
        free(r->text[i].p);
        free(r->list[i]);
    }
}

static void rfail(Reader *r, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rfail(Reader *r, int col, const char *fmt, ...)
{
    char what[DRRL_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (col > 0)
        drrl_error(r->err, DRRL_E_INPUT, "%s:%zu:%d: %s", r->path, r->line, col, what);
    else
        drrl_error(r->err, DRRL_E_INPUT, "%s:%zu: %s", r->path, r->line, what);
    r->st = DRRL_E_INPUT;
}

/* A field's text for messages: at most 40 bytes. */
static const char *shown(const char *s, char *buf, size_t n)
{
    size_t len = strlen(s);
    if (len + 1 <= n)
        return s;
    snprintf(buf, n, "%.*s...", (int)(n - 4), s);
    return buf;
}

static void bad_number(Reader *r, int c, const char *s, const char *what)
{
    char b[44];
    rfail(r, c + 1, "column '%s': '%s' is not %s", trace_csv_columns[c], shown(s, b, sizeof b),
          what);
}

static void field_int(Reader *r, int c, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (parse_int(s, lo, hi, out) != 0) {
        char what[96];
        snprintf(what, sizeof what, "an integer in %lld..%lld", (long long)lo, (long long)hi);
        bad_number(r, c, s, what);
    }
}

static void field_real(Reader *r, int c, const char *s, double *out)
{
    double d;
    if (parse_real(s, &d) != 0) {
        bad_number(r, c, s, "a number");
        return;
    }
    if (isfinite(d) && fabs(d) > FLT_MAX) {
        bad_number(r, c, s, "a number in float32 range");
        return;
    }
    *out = d;
}

/* One item of a list column at p (ending at '\0' or ';', *end there) into
 * item n of the column's buffer: a float32 (FLOATS) or an integer in lo..hi
 * (INTS). Returns 0, or -1 after reporting. */
static int list_item(Reader *r, int c, const char *p, int32_t n, const char **end)
{
    const TraceColumn *col = &trace_columns[c];
    const char *what;
    if (col->kind == TRACE_FLOATS) {
        double d;
        if (parse_real_end(p, &d, end) == 0 && !(isfinite(d) && fabs(d) > FLT_MAX)) {
            ((float *)r->list[c])[n] = (float)d;
            return 0;
        }
        what = "a float32 number";
    } else {
        int64_t v = 0;
        const char *e = p;
        int ok = *e >= '0' && *e <= '9';
        for (; ok && *e >= '0' && *e <= '9'; e++)
            if ((v = v * 10 + (*e - '0')) > col->hi)
                ok = 0;
        if (ok && v >= col->lo && (!*e || *e == ';')) {
            ((int32_t *)r->list[c])[n] = (int32_t)v;
            *end = e;
            return 0;
        }
        what = "an integer in range";
    }
    char b[44], item[44];
    snprintf(item, sizeof item, "%.*s", (int)strcspn(p, ";"), p);
    if (col->kind == TRACE_FLOATS)
        rfail(r, c + 1, "column '%s': item %d '%s' is not %s", col->name, (int)n + 1,
              shown(item, b, sizeof b), what);
    else
        rfail(r, c + 1, "column '%s': item %d '%s' is not an integer in %lld..%lld", col->name,
              (int)n + 1, shown(item, b, sizeof b), (long long)col->lo, (long long)col->hi);
    return -1;
}

/* A ';'-separated list column (FLOATS or INTS) into r->list[c]; its length. */
static int32_t field_list(Reader *r, int c, const char *s, size_t len)
{
    if (!*s)
        return 0;
    int32_t n = 0;
    const char *p = s;
    for (;;) {
        if (n >= 65535) {
            bad_number(r, c, s, "a list of at most 65535 numbers");
            return 0;
        }
        if ((size_t)n + 1 > r->list_cap[c]) {
            size_t nc = r->list_cap[c] ? r->list_cap[c] * 2 : 64;
            void *nl = realloc(r->list[c], nc * 4);
            if (!nl) {
                drrl_error(r->err, DRRL_E_NOMEM, "%s:%zu: out of memory", r->path, r->line);
                r->st = DRRL_E_NOMEM;
                return 0;
            }
            r->list[c] = nl;
            r->list_cap[c] = nc;
        }
        const char *end = p;
        if (list_item(r, c, p, n, &end) != 0)
            return 0;
        n++;
        if (!*end) {
            if ((size_t)(end - s) != len) {
                rfail(r, c + 1, "column '%s': NUL byte", trace_csv_columns[c]);
                return 0;
            }
            break;
        }
        p = end + 1;
        if (!*p || *p == ';') {
            bad_number(r, c, s, "a ';'-separated list of numbers (empty item)");
            return 0;
        }
    }
    return n;
}

/* The cache slot of (layer, head), created if needed; NULL when out of memory. */
static ListCache *list_slot(Reader *r, int32_t layer, int32_t head)
{
    uint32_t key = ((uint32_t)layer << 16 | (uint32_t)head) + 1;
    if (r->lc_n * 2 >= r->lc_cap) {
        size_t nc = r->lc_cap ? r->lc_cap * 2 : 64;
        ListCache *nt = calloc(nc, sizeof *nt);
        if (!nt)
            return NULL;
        for (size_t i = 0; i < r->lc_cap; i++)
            if (r->lc[i].key) {
                size_t j = (r->lc[i].key * 2654435761u) & (nc - 1);
                while (nt[j].key)
                    j = (j + 1) & (nc - 1);
                nt[j] = r->lc[i];
            }
        free(r->lc);
        r->lc = nt;
        r->lc_cap = nc;
    }
    size_t j = (key * 2654435761u) & (r->lc_cap - 1);
    while (r->lc[j].key && r->lc[j].key != key)
        j = (j + 1) & (r->lc_cap - 1);
    if (!r->lc[j].key) {
        r->lc[j].key = key;
        r->lc_n++;
    }
    return &r->lc[j];
}

/* field_list for a FLOATS column, skipping the parse when the text is the
 * same as this (layer, head)'s previous one. *vals gets the values. */
static int32_t field_floats(Reader *r, int c, const char *s, size_t len, const float **vals)
{
    int k = float_slot(c);
    ListCache *lc = list_slot(r, r->rec.layer, r->rec.head);
    if (lc && lc->raw[k] && lc->rawlen[k] == len && memcmp(lc->raw[k], s, len) == 0) {
        *vals = lc->vals[k];
        return lc->n[k];
    }
    int32_t n = field_list(r, c, s, len);
    const float *fa = r->list[c];
    *vals = fa;
    if (r->st || !lc)
        return n;
    if (lc->rawcap[k] < len + 1) {
        char *nr = realloc(lc->raw[k], len + 1);
        if (!nr)
            return n;
        lc->raw[k] = nr;
        lc->rawcap[k] = len + 1;
    }
    if (lc->valcap[k] < (size_t)n || !lc->vals[k]) {
        float *nv = realloc(lc->vals[k], ((size_t)n + 1) * sizeof *nv);
        if (!nv) {
            lc->rawlen[k] = (size_t)-1;
            return n;
        }
        lc->vals[k] = nv;
        lc->valcap[k] = (size_t)n + 1;
    }
    memcpy(lc->raw[k], s, len);
    lc->rawlen[k] = len;
    if (n)
        memcpy(lc->vals[k], fa, (size_t)n * sizeof *fa);
    lc->n[k] = n;
    *vals = lc->vals[k];
    return n;
}

static void field_text(Reader *r, int c, const char *s, size_t len, StrBuf *b)
{
    int e = unescape_text(b, s, len);
    if (e == -2) {
        drrl_error(r->err, DRRL_E_NOMEM, "%s:%zu: out of memory", r->path, r->line);
        r->st = DRRL_E_NOMEM;
    } else if (e) {
        rfail(r, c + 1, "column '%s': malformed escape (only \\\\ and \\xHH, HH not 00)",
              trace_csv_columns[c]);
    } else if (r->split && (memchr(s, '\n', len) || memchr(s, '\r', len))) {
        /* A raw line break inside a field: splitting the file at line breaks
         * was wrong; the caller reads it again in one piece. */
        rfail(r, c + 1, "raw line break inside a field");
    }
}

/* The ranges drrl-trace(5) states for the real-valued columns (NaN, "not
 * computed", passes everywhere; an infinity only where the range is open
 * there). SLACK admits float32 rounding of a value computed at a bound. */
#define TRACE_RANGE_SLACK 1e-6
static const struct {
    int col;
    double lo, hi;
} real_ranges[] = {
    {TRACE_COL_energy_kept, 0, 1},           {TRACE_COL_tail_bound, 0, INFINITY},
    {TRACE_COL_sin_theta_bound, 0, 1},       {TRACE_COL_output_bound, 0, INFINITY},
    {TRACE_COL_guard_estimate, 0, INFINITY}, {TRACE_COL_threshold, 0, INFINITY},
    {TRACE_COL_measured_error, 0, INFINITY}, {TRACE_COL_fidelity, -1, 1},
    {TRACE_COL_flops_exact, 0, INFINITY},    {TRACE_COL_flops_executed, 0, INFINITY},
    {TRACE_COL_savings_cum, -INFINITY, 1},
};

static void check_range(Reader *r, int c)
{
    for (size_t i = 0; i < sizeof real_ranges / sizeof *real_ranges; i++) {
        if (real_ranges[i].col != c)
            continue;
        double v =
            *(const double *)(const void *)((const char *)&r->rec + trace_columns[c].offset);
        double lo = real_ranges[i].lo, hi = real_ranges[i].hi;
        if (isnan(v) || (v >= lo - TRACE_RANGE_SLACK && v <= hi + TRACE_RANGE_SLACK))
            return;
        char lb[32], hb[32];
        snprintf(lb, sizeof lb, "%g", lo);
        snprintf(hb, sizeof hb, "%g", hi);
        rfail(r, c + 1, "column '%s': %g is outside [%s, %s] (drrl-trace(5))",
              trace_csv_columns[c], v, lb, hb);
        return;
    }
}

/* Checks that relate column c of r->rec to earlier columns or to the sidecar. */
static void check_field(Reader *r, int c)
{
    const TraceRecord *t = &r->rec;
    const TraceMeta *m = r->meta;
    char b[44];
    check_range(r, c);
    if (r->st)
        return;
    switch (c) {
    case TRACE_COL_layer:
        if (m->n_layer > 0 && t->layer >= m->n_layer)
            rfail(r, c + 1, "layer %d, but the sidecar says n_layer %d", (int)t->layer,
                  (int)m->n_layer);
        else if (m->n_layer == 0 && t->layer >= TRACE_MAX_UNSHAPED)
            rfail(r, c + 1, "layer %d: without n_layer in the sidecar, at most %d",
                  (int)t->layer, TRACE_MAX_UNSHAPED - 1);
        break;
    case TRACE_COL_head:
        if (m->n_head > 0 && t->head >= m->n_head)
            rfail(r, c + 1, "head %d, but the sidecar says n_head %d", (int)t->head,
                  (int)m->n_head);
        else if (m->n_head == 0 && t->head >= TRACE_MAX_UNSHAPED)
            rfail(r, c + 1, "head %d: without n_head in the sidecar, at most %d", (int)t->head,
                  TRACE_MAX_UNSHAPED - 1);
        break;
    case TRACE_COL_method:
        if (m->method && m->method[0] && strcmp(t->method, m->method) != 0)
            rfail(r, c + 1, "method '%s', but the sidecar says '%s'",
                  shown(t->method, b, sizeof b), m->method);
        break;
    case TRACE_COL_head_dim:
        if (m->head_dim > 0 && t->head_dim != m->head_dim)
            rfail(r, c + 1, "head_dim %d, but the sidecar says %d", (int)t->head_dim,
                  (int)m->head_dim);
        else if (t->rank > t->head_dim)
            rfail(r, TRACE_COL_rank + 1, "rank %d exceeds head_dim %d", (int)t->rank,
                  (int)t->head_dim);
        break;
    case TRACE_COL_masked:
        for (int32_t i = 0; !r->st && i < t->n_masked; i++)
            if (t->masked[i] > t->head_dim || (i && t->masked[i] <= t->masked[i - 1]))
                rfail(r, c + 1, "column 'masked': ranks must be ascending in 0..head_dim (%d)",
                      (int)t->head_dim);
        break;
    }
}

/* Parse field c (s, len bytes) into r->rec by its column's kind. */
static void parse_field(Reader *r, int c, const char *s, size_t len)
{
    const TraceColumn *col = &trace_columns[c];
    TraceRecord *t = &r->rec;
    int64_t v = 0;
    switch (col->kind) {
    case TRACE_NS:
        if (len == 0) {
            *FIELD(t, col, int64_t) = -1;
            break;
        }
        /* fall through */
    case TRACE_I64:
    case TRACE_I32:
        field_int(r, c, s, col->lo, col->hi, &v);
        if (!r->st)
            col_set_int(t, col, v);
        break;
    case TRACE_TEXT:
        field_text(r, c, s, len, &r->text[c]);
        *FIELD(t, col, const char *) = r->text[c].p;
        break;
    case TRACE_REAL:
        field_real(r, c, s, FIELD(t, col, double));
        break;
    case TRACE_F64:
        if (parse_real(s, FIELD(t, col, double)) != 0)
            bad_number(r, c, s, "a number");
        break;
    case TRACE_FLOATS:
        *(int32_t *)(void *)((char *)t + col->count_offset) =
            field_floats(r, c, s, len, FIELD(t, col, const float *));
        break;
    case TRACE_INTS:
        *(int32_t *)(void *)((char *)t + col->count_offset) = field_list(r, c, s, len);
        *FIELD(t, col, const int32_t *) = r->list[c];
        break;
    }
}

static void on_field(void *data, size_t len, void *ctx)
{
    Reader *r = ctx;
    if (r->st)
        return;
    const char *s = data ? data : "";
    int c = r->col++;
    if (!r->header_done) {
        if (c < TRACE_CSV_NCOLS && !(r->hdr[c] = strndup(s, len))) {
            drrl_error(r->err, DRRL_E_NOMEM, "%s: out of memory", r->path);
            r->st = DRRL_E_NOMEM;
        }
        return;
    }
    if (c >= TRACE_CSV_NCOLS) {
        rfail(r, c + 1, "row has more than %d fields", TRACE_CSV_NCOLS);
        return;
    }
    TraceKind kind = trace_columns[c].kind;
    int list = kind == TRACE_FLOATS || kind == TRACE_INTS;
    if (kind == TRACE_TEXT ? memchr(s, '\0', len) != NULL : !list && strlen(s) != len) {
        rfail(r, c + 1, "column '%s': NUL byte", trace_csv_columns[c]);
        return;
    }
    parse_field(r, c, s, len);
    if (!r->st)
        check_field(r, c);
}

static void check_header(Reader *r)
{
    int n = r->col < TRACE_CSV_NCOLS ? r->col : TRACE_CSV_NCOLS;
    for (int i = 0; i < TRACE_CSV_NCOLS; i++) {
        if (i < n && strcmp(r->hdr[i], trace_csv_columns[i]) == 0)
            continue;
        /* Say which column is missing, or what is there instead. */
        int present = 0;
        for (int k = 0; k < n; k++)
            present |= strcmp(r->hdr[k], trace_csv_columns[i]) == 0;
        char b[44];
        if (!present)
            rfail(r, i + 1,
                  "missing column '%s' (not a drrl trace, or schema version "
                  "mismatch: see drrl-trace(5))",
                  trace_csv_columns[i]);
        else if (i < n)
            rfail(r, i + 1, "wrong header: column %d is '%s', expected '%s'", i + 1,
                  shown(r->hdr[i], b, sizeof b), trace_csv_columns[i]);
        else
            rfail(r, i + 1, "wrong header: expected '%s'", trace_csv_columns[i]);
        return;
    }
    if (r->col > TRACE_CSV_NCOLS)
        rfail(r, TRACE_CSV_NCOLS + 1, "wrong header: %d columns, expected %d", r->col,
              TRACE_CSV_NCOLS);
}

static void on_row(int term, void *ctx)
{
    Reader *r = ctx;
    if (r->st)
        return;
    if (term == -1) {
        rfail(r, r->col, "truncated file: the last row has no line end (%d of %d fields)",
              r->col, TRACE_CSV_NCOLS);
        return;
    }
    if (!r->header_done) {
        check_header(r);
        r->header_done = 1;
    } else if (r->col != TRACE_CSV_NCOLS) {
        rfail(r, r->col, "wrong column count: %d fields, expected %d", r->col, TRACE_CSV_NCOLS);
    } else {
        DrrlError e;
        DrrlStatus st = r->sink->put(r->sink, &r->rec, &e);
        if (st) {
            drrl_error(r->err, st, "%s:%zu: %s", r->path, r->line, e.msg);
            r->st = st;
            return;
        }
        if (r->rows == 0 || r->rec.step != r->last_step)
            r->steps++;
        r->last_step = r->rec.step;
        r->rows++;
    }
    r->line++;
    r->col = 0;
}

/* ---- sidecar reading ---- */

static DrrlStatus meta_bad(DrrlError *err, const char *jpath, const char *key, const char *what)
{
    return drrl_error(err, DRRL_E_INPUT, "%s: key '%s': %s", jpath, key, what);
}

static DrrlStatus get_int(json_t *o, const char *jpath, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, DrrlError *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return meta_bad(err, jpath, key, "missing");
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char what[96];
        snprintf(what, sizeof what, "expected an integer in %lld..%lld", (long long)lo,
                 (long long)hi);
        return meta_bad(err, jpath, key, what);
    }
    *out = json_integer_value(v);
    return DRRL_OK;
}

static DrrlStatus get_str(json_t *o, const char *jpath, const char *key, char **out,
                          DrrlError *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return meta_bad(err, jpath, key, "missing");
    if (json_is_null(v))
        return DRRL_OK;
    if (!json_is_string(v))
        return meta_bad(err, jpath, key, "expected a string or null");
    return trace_meta_set_str(out, json_string_value(v), err);
}

/* model_hash_algo: absent in sidecars written before it was recorded, whose
 * model_hash is FNV-1a 64 (TRACE_MODEL_HASH_ALGO_V1). */
static DrrlStatus get_hash_algo(json_t *o, const char *jpath, TraceMeta *m, DrrlError *err)
{
    if (json_object_get(o, "model_hash_algo"))
        return get_str(o, jpath, "model_hash_algo", &m->model_hash_algo, err);
    return trace_meta_set_str(&m->model_hash_algo,
                              m->model_hash ? TRACE_MODEL_HASH_ALGO_V1 : NULL, err);
}

static DrrlStatus get_real(json_t *o, const char *jpath, const char *key, double *out,
                           DrrlError *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return meta_bad(err, jpath, key, "missing");
    if (json_is_null(v))
        *out = NAN;
    else if (json_is_number(v))
        *out = json_number_value(v);
    else
        return meta_bad(err, jpath, key, "expected a number or null");
    return DRRL_OK;
}

static int path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* The sidecar's JSON object. */
static DrrlStatus load_sidecar(const char *path, const char *jpath, json_t **o, DrrlError *err)
{
    if (!path_exists(jpath))
        return drrl_error(
            err, path_exists(path) ? DRRL_E_INPUT : DRRL_E_NOTFOUND,
            "%s: %s (a trace is TRACE.csv plus its sidecar TRACE.csv.json)", jpath,
            path_exists(path) ? "the trace's sidecar is missing" : "no such trace");
    DrrlStatus st = fileio_read_json(jpath, JSON_REJECT_DUPLICATES, o, err);
    if (st)
        return st;
    if (!json_is_object(*o))
        return drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object", jpath);
    return DRRL_OK;
}

/* "seed": a non-negative integer, or one written as a string (above 2^63). */
static DrrlStatus get_seed(json_t *o, const char *jpath, uint64_t *out, DrrlError *err)
{
    json_t *seed = json_object_get(o, "seed");
    if (seed && json_is_integer(seed) && json_integer_value(seed) >= 0) {
        *out = (uint64_t)json_integer_value(seed);
        return DRRL_OK;
    }
    if (seed && json_is_string(seed)) {
        const char *s = json_string_value(seed);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (!*s || *end || errno || *s == '-')
            return meta_bad(err, jpath, "seed", "expected a non-negative integer");
        *out = u;
        return DRRL_OK;
    }
    return meta_bad(err, jpath, "seed", seed ? "expected a non-negative integer" : "missing");
}

/* The shape: segment length, layers, heads, head_dim, steps; rows into
 * *nrows. */
static DrrlStatus get_shape(json_t *o, const char *jpath, TraceMeta *m, int64_t *nrows,
                            DrrlError *err)
{
    int64_t seg, nl, nh, hd, ns;
    DrrlStatus st;
    if ((st = get_int(o, jpath, "segment_len", 0, INT32_MAX, &seg, err)) ||
        (st = get_int(o, jpath, "n_layer", 0, 65536, &nl, err)) ||
        (st = get_int(o, jpath, "n_head", 0, 65536, &nh, err)) ||
        (st = get_int(o, jpath, "head_dim", 0, 65535, &hd, err)) ||
        (st = get_int(o, jpath, "n_steps", 0, INT32_MAX, &ns, err)) ||
        (st = get_int(o, jpath, "rows", 0, INT64_MAX, nrows, err)))
        return st;
    /* Views draw one cell per (layer, head): a shape of 65536 x 65536 would
     * make every redraw of replay take seconds for a one-row trace. */
    if (nl * nh > TRACE_MAX_CELLS)
        return meta_bad(err, jpath, "n_layer",
                        "n_layer x n_head is above " TRACE_MAX_CELLS_TEXT
                        " (layer, head) pairs");
    m->segment_len = (int32_t)seg;
    m->n_layer = (int32_t)nl;
    m->n_head = (int32_t)nh;
    m->head_dim = (int32_t)hd;
    m->n_steps = (int32_t)ns;
    return DRRL_OK;
}

/* "rank_grid": ascending integers in 0..65535. */
static DrrlStatus get_grid(json_t *o, const char *jpath, TraceMeta *m, DrrlError *err)
{
    json_t *grid = json_object_get(o, "rank_grid");
    if (!grid || !json_is_array(grid) || json_array_size(grid) > 65536)
        return meta_bad(err, jpath, "rank_grid", grid ? "expected an array" : "missing");
    size_t ng = json_array_size(grid);
    if (ng) {
        m->rank_grid = malloc(ng * sizeof *m->rank_grid);
        if (!m->rank_grid)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", jpath);
    }
    for (size_t i = 0; i < ng; i++) {
        json_t *g = json_array_get(grid, i);
        if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 65535 ||
            (i && json_integer_value(g) <= m->rank_grid[i - 1]))
            return meta_bad(err, jpath, "rank_grid", "expected ascending integers in 0..65535");
        m->rank_grid[i] = (int32_t)json_integer_value(g);
        m->n_grid = (int32_t)(i + 1);
    }
    return DRRL_OK;
}

/* The reward weights and the threshold schedule. */
static DrrlStatus get_weights(json_t *o, const char *jpath, TraceMeta *m, DrrlError *err)
{
    DrrlStatus st;
    if ((st = get_real(o, jpath, "alpha", &m->alpha, err)) ||
        (st = get_real(o, jpath, "beta", &m->beta, err)) ||
        (st = get_real(o, jpath, "gamma", &m->gamma, err)))
        return st;
    json_t *eps = json_object_get(o, "eps_schedule");
    if (!eps || !json_is_object(eps))
        return meta_bad(err, jpath, "eps_schedule", eps ? "expected an object" : "missing");
    if ((st = get_real(eps, jpath, "start", &m->eps_start, err)) ||
        (st = get_real(eps, jpath, "floor", &m->eps_floor, err)) ||
        (st = get_real(eps, jpath, "decay", &m->eps_decay, err)))
        return st;
    return DRRL_OK;
}

/* Every field of the sidecar object o. */
static DrrlStatus parse_sidecar(json_t *o, const char *jpath, TraceMeta *m, size_t *rows,
                                int *complete, DrrlError *err)
{
    int64_t v, nrows;
    DrrlStatus st;
    if ((st = get_int(o, jpath, "schema_version", INT64_MIN, INT64_MAX, &v, err)))
        return st;
    if (v != TRACE_SCHEMA_VERSION)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: unknown schema version %lld (this drrl reads version %d)", jpath,
                          (long long)v, TRACE_SCHEMA_VERSION);
    if ((st = get_str(o, jpath, "drrl_version", &m->drrl_version, err)) ||
        (st = get_str(o, jpath, "model_path", &m->model_path, err)) ||
        (st = get_str(o, jpath, "model_hash", &m->model_hash, err)) ||
        (st = get_hash_algo(o, jpath, m, err)) ||
        (st = get_str(o, jpath, "text_hash", &m->text_hash, err)) ||
        (st = get_str(o, jpath, "method", &m->method, err)) ||
        (st = get_seed(o, jpath, &m->seed, err)) ||
        (st = get_shape(o, jpath, m, &nrows, err)) || (st = get_grid(o, jpath, m, err)) ||
        (st = get_weights(o, jpath, m, err)))
        return st;
    json_t *cpl = json_object_get(o, "complete");
    if (!cpl || !json_is_boolean(cpl))
        return meta_bad(err, jpath, "complete", cpl ? "expected true or false" : "missing");
    if (rows)
        *rows = (size_t)nrows;
    if (complete)
        *complete = json_is_true(cpl);
    return DRRL_OK;
}

DrrlStatus trace_csv_read_meta(const char *path, TraceMeta *m, size_t *rows, int *complete,
                               DrrlError *err)
{
    trace_meta_init(m);
    char *jpath = trace_csv_sidecar_path(path);
    if (!jpath)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    json_t *o = NULL;
    DrrlStatus st = load_sidecar(path, jpath, &o, err);
    if (!st)
        st = parse_sidecar(o, jpath, m, rows, complete, err);
    json_decref(o);
    free(jpath);
    return st;
}

DrrlStatus trace_csv_read(const char *path, TraceMeta *meta, TraceSink *sink, DrrlError *err)
{
    size_t want_rows = 0;
    DrrlStatus st = trace_csv_read_meta(path, meta, &want_rows, NULL, err);
    if (st)
        return st;
    int fd;
    if ((st = fileio_open_input(path, 0, &fd, err))) /* a FIFO is refused, never waited on */
        return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    Reader r = {0};
    r.path = path;
    r.sink = sink;
    r.meta = meta;
    r.err = err;
    r.line = 1;
    struct csv_parser p;
    if (parser_init(&p) != 0) {
        fclose(f);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    enum { CHUNK = 1 << 20 };
    char *chunk = malloc(CHUNK);
    if (!chunk) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t n;
    int any = 0;
    locale_t loc = c_locale_enter();
    while (!r.st && (n = fread(chunk, 1, CHUNK, f)) > 0) {
        any = 1;
        if (csv_parse(&p, chunk, n, on_field, on_row, &r) != n && !r.st)
            rfail(&r, r.col + 1, "malformed CSV: %s", csv_strerror(csv_error(&p)));
    }
    if (!r.st && ferror(f))
        st = drrl_error(err, DRRL_E_IO, "%s: read failed: %s", path, strerror(errno));
    else if (!r.st && !any)
        rfail(&r, 0, "empty file (expected the header row)");
    else if (!r.st && csv_fini(&p, on_field, on_row, &r) != 0 && !r.st)
        rfail(&r, r.col + 1, "truncated file: unterminated quoted field");
    c_locale_leave(loc);
    if (r.st)
        st = r.st;
    else if (!r.header_done)
        st = drrl_error(err, DRRL_E_INPUT, "%s:1: no header row", path);
    else if (r.rows != want_rows)
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: %zu rows, but the sidecar says %zu (truncated or edited?)", path,
                        r.rows, want_rows);
    else if (meta->n_steps != r.steps)
        st = drrl_error(err, DRRL_E_INPUT, "%s: %lld steps, but the sidecar says %d", path,
                        (long long)r.steps, (int)meta->n_steps);
out:
    free(chunk);
    csv_free(&p);
    fclose(f);
    reader_done(&r);
    return st;
}

/* ---- parallel loading ----
 * trace_csv_load reads the file in windows of up to LOAD_WINDOW bytes, splits
 * each window at line breaks into one part per thread, parses the parts with
 * one libcsv parser each into batches, and appends the batches to the store
 * in file order. Rows never contain raw line breaks (text fields escape them),
 * so a split at '\n' is a split between rows; a file where that does not hold
 * (a raw break inside a quoted field) makes a part fail. On any failure the
 * file is read again by the sequential reader, whose messages carry the exact
 * line and column. */

enum { LOAD_WINDOW = 8 << 20, LOAD_MAX_THREADS = 8 };

typedef struct BatchRow {
    TraceRecord rec; /* pointers unset: its strings and lists follow each other
                        in column order from off, each 4-byte aligned */
    size_t off;
} BatchRow;

typedef struct Batch {
    BatchRow *rows;
    size_t n, cap;
    StrBuf bytes; /* strings and arrays, 4-byte aligned items */
} Batch;

static int batch_add(Batch *b, const void *p, size_t n, size_t *off)
{
    size_t pad = (4 - b->bytes.len % 4) % 4;
    if (strbuf_reserve(&b->bytes, pad + n + 1))
        return 1;
    b->bytes.len += pad;
    *off = b->bytes.len;
    if (n)
        memcpy(b->bytes.p + b->bytes.len, p, n);
    b->bytes.len += n;
    return 0;
}

static DrrlStatus batch_put(TraceSink *self, const TraceRecord *rec, DrrlError *err)
{
    Batch *b = self->ctx;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        BatchRow *nr = realloc(b->rows, nc * sizeof *nr);
        if (!nr)
            return drrl_error(err, DRRL_E_NOMEM, "out of memory");
        b->rows = nr;
        b->cap = nc;
    }
    BatchRow *row = &b->rows[b->n];
    row->rec = *rec;
    row->off = (b->bytes.len + 3) & ~(size_t)3;
    for (int i = 0; i < TRACE_NCOLS; i++) {
        const TraceColumn *c = &trace_columns[i];
        if (c->kind != TRACE_TEXT && c->kind != TRACE_FLOATS && c->kind != TRACE_INTS)
            continue;
        const void *p = *CFIELD(rec, c, const void *);
        size_t n = c->kind == TRACE_TEXT ? strlen(p) + 1 : 4 * (size_t)COUNT(rec, c), off;
        if (batch_add(b, p, n, &off))
            return drrl_error(err, DRRL_E_NOMEM, "out of memory");
    }
    b->n++;
    return DRRL_OK;
}

/* Row i of b with its pointers resolved. */
static void batch_get(const Batch *b, size_t i, TraceRecord *r)
{
    const BatchRow *row = &b->rows[i];
    *r = row->rec;
    size_t off = row->off;
    for (int k = 0; k < TRACE_NCOLS; k++) {
        const TraceColumn *c = &trace_columns[k];
        if (c->kind != TRACE_TEXT && c->kind != TRACE_FLOATS && c->kind != TRACE_INTS)
            continue;
        off = (off + 3) & ~(size_t)3;
        const char *p = b->bytes.p + off;
        *FIELD(r, c, const void *) = p;
        off += c->kind == TRACE_TEXT ? strlen(p) + 1 : 4 * (size_t)COUNT(r, c);
    }
}

typedef struct Part {
    const char *text;
    size_t len;
    const char *path;
    const TraceMeta *meta;
    Batch batch;
    TraceSink sink;
    DrrlError err;
    DrrlStatus st;
} Part;

static void *part_run(void *arg)
{
    Part *pt = arg;
    pt->batch.n = 0;
    pt->batch.bytes.len = 0;
    pt->sink.put = batch_put;
    pt->sink.ctx = &pt->batch;
    Reader r = {0};
    r.path = pt->path;
    r.sink = &pt->sink;
    r.meta = pt->meta;
    r.err = &pt->err;
    r.header_done = 1;
    r.split = 1;
    struct csv_parser p;
    if (parser_init(&p) != 0) {
        pt->st = DRRL_E_NOMEM;
        return NULL;
    }
    locale_t loc = c_locale_enter();
    if (csv_parse(&p, pt->text, pt->len, on_field, on_row, &r) != pt->len && !r.st)
        r.st = DRRL_E_INPUT;
    if (!r.st && csv_fini(&p, on_field, on_row, &r) != 0 && !r.st)
        r.st = DRRL_E_INPUT;
    c_locale_leave(loc);
    csv_free(&p);
    reader_done(&r);
    pt->st = r.st;
    return NULL;
}

/* Parser threads: the CPUs this process may run on (taskset, cgroups'
 * cpusets), at most LOAD_MAX_THREADS. */
static int load_threads(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                         : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > LOAD_MAX_THREADS ? LOAD_MAX_THREADS : (int)n;
}

typedef struct LoadCount {
    size_t rows;
    int64_t steps, last_step;
} LoadCount;

/* Append the parsed parts to the store, in order. */
static DrrlStatus put_parts(Part *parts, int np, TraceStore *s, LoadCount *c)
{
    for (int k = 0; k < np; k++) {
        if (parts[k].st)
            return parts[k].st;
        for (size_t i = 0; i < parts[k].batch.n; i++) {
            TraceRecord r;
            batch_get(&parts[k].batch, i, &r);
            DrrlError e;
            DrrlStatus st = trace_store_put(s, &r, &e);
            if (st)
                return st;
            if (c->rows == 0 || r.step != c->last_step)
                c->steps++;
            c->last_step = r.step;
            c->rows++;
        }
    }
    return DRRL_OK;
}

/* Parse the header line (buf[0, len), ending in '\n') with the usual checks. */
static DrrlStatus load_header(const char *path, const TraceMeta *meta, const char *buf,
                              size_t len)
{
    Reader r = {0};
    DrrlError e;
    r.path = path;
    r.meta = meta;
    r.err = &e;
    r.line = 1;
    struct csv_parser p;
    if (parser_init(&p) != 0)
        return DRRL_E_NOMEM;
    DrrlStatus st = DRRL_OK;
    if (csv_parse(&p, buf, len, on_field, on_row, &r) != len || r.st || !r.header_done)
        st = DRRL_E_INPUT;
    csv_free(&p);
    reader_done(&r);
    return st;
}

/* Returns DRRL_OK with the rows in s, or an error status meaning "read it
 * again sequentially" (no message). Pipelined: while the workers parse window
 * k + 1, this thread appends window k's batches to the store (appending must
 * keep file order, so it is the one sequential part). */
static DrrlStatus load_parallel(const char *path, const TraceMeta *meta, size_t want_rows,
                                TraceStore *s)
{
    int nt = load_threads();
    Part parts[2][LOAD_MAX_THREADS];
    memset(parts, 0, sizeof parts);
    int np[2] = {0, 0}, cur = 0;
    DrrlStatus st = DRRL_OK;
    LoadCount count = {0, 0, -1};
    int fd;
    if (fileio_open_input(path, 0, &fd, NULL))
        return DRRL_E_IO;
    size_t cap = LOAD_WINDOW, have = 0;
    char *buf = malloc(cap + 1);
    int header_done = 0, eof = 0;
    if (!buf) {
        close(fd);
        return DRRL_E_NOMEM;
    }
    while (!st) {
        if (!eof) {
            ssize_t got = read(fd, buf + have, cap - have);
            if (got < 0) {
                st = DRRL_E_IO;
                break;
            }
            eof = got == 0;
            have += (size_t)got;
        }
        size_t end = 0;
        for (size_t i = have; i > 0; i--)
            if (buf[i - 1] == '\n') {
                end = i;
                break;
            }
        if (end == 0) {
            if (eof) {
                /* Leftover bytes without a line end: a truncated last row. */
                st = have || !header_done ? DRRL_E_INPUT : DRRL_OK;
                break;
            }
            if (have == cap) { /* a line longer than the window */
                char *nb = cap < SIZE_MAX / 4 ? realloc(buf, 2 * cap + 1) : NULL;
                if (!nb) {
                    st = DRRL_E_NOMEM;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            continue;
        }
        size_t start = 0;
        if (!header_done) {
            start = (size_t)((const char *)memchr(buf, '\n', end) - buf) + 1;
            if ((st = load_header(path, meta, buf, start)))
                break;
            header_done = 1;
        }
        /* Split [start, end) into parts at line breaks and start parsing. */
        Part *pp = parts[cur];
        np[cur] = 0;
        for (size_t pos = start; pos < end && np[cur] < nt;) {
            size_t target = start + (end - start) * (size_t)(np[cur] + 1) / (size_t)nt;
            if (target < pos + 1)
                target = pos + 1;
            const char *q = memchr(buf + target - 1, '\n', end - (target - 1));
            size_t stop = q ? (size_t)(q - buf) + 1 : end;
            Part *pt = &pp[np[cur]++];
            pt->text = buf + pos;
            pt->len = stop - pos;
            pt->path = path;
            pt->meta = meta;
            pos = stop;
        }
        pthread_t tid[LOAD_MAX_THREADS];
        int started[LOAD_MAX_THREADS];
        for (int k = 0; k < np[cur]; k++)
            started[k] = pthread_create(&tid[k], NULL, part_run, &pp[k]) == 0;
        /* Meanwhile: the previous window into the store. */
        st = put_parts(parts[cur ^ 1], np[cur ^ 1], s, &count);
        np[cur ^ 1] = 0;
        for (int k = 0; k < np[cur]; k++) {
            if (started[k])
                pthread_join(tid[k], NULL);
            else
                part_run(&pp[k]);
        }
        memmove(buf, buf + end, have - end);
        have -= end;
        cur ^= 1;
    }
    if (!st)
        st = put_parts(parts[cur ^ 1], np[cur ^ 1], s, &count);
    if (!st && (count.rows != want_rows || count.steps != meta->n_steps))
        st = DRRL_E_INPUT;
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < LOAD_MAX_THREADS; k++) {
            free(parts[w][k].batch.rows);
            free(parts[w][k].batch.bytes.p);
        }
    free(buf);
    close(fd);
    return st;
}

DrrlStatus trace_csv_load(const char *path, TraceStore **out, DrrlError *err)
{
    *out = NULL;
    TraceMeta meta;
    size_t want_rows = 0;
    DrrlStatus st = trace_csv_read_meta(path, &meta, &want_rows, NULL, err);
    if (st) {
        trace_meta_done(&meta);
        return st;
    }
    TraceStore *s = trace_store_new();
    if (!s) {
        trace_meta_done(&meta);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    DrrlStatus pst = load_parallel(path, &meta, want_rows, s);
    if (pst != DRRL_OK) {
        /* Read again in one piece for the exact diagnostic (or the rare file
         * that cannot be split at line breaks). */
        trace_store_free(s);
        trace_meta_done(&meta);
        if (!(s = trace_store_new()))
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
        TraceSink sink = trace_store_sink(s);
        st = trace_csv_read(path, &meta, &sink, err);
    }
    if (!st)
        st = trace_store_set_meta(s, &meta, err);
    trace_meta_done(&meta);
    if (st) {
        trace_store_free(s);
        return st;
    }
    *out = s;
    return DRRL_OK;
}
