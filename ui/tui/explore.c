/* explore.c: the live explorer behind `drrl explore` (see explore.h). */
#include "config.h"

#include "tui/explore.h"
#include "cli/trace_cli.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/attn_cli.h"
#include "cli/cli.h"
#include "trace/trace_csv.h"
#include "trace/trace_store.h"

struct Explore {
    Session *s;
    TraceStore *store;
    TraceCsvWriter *writer;
    AppSource src;
    App app;
    char model_name[256];
    char method[128];
    /* Attention rows already computed (src_attention): rows [rows_first,
     * rows_first + rows_n) of (rows_layer, rows_head), rows_nk columns, valid
     * while the engine's basis and ranks are those of segment rows_epoch. */
    float *rows_exact, *rows_approx;
    size_t rows_first, rows_n, rows_nk;
    int32_t rows_layer, rows_head, rows_rank;
    int64_t rows_epoch;
    int32_t segment; /* T: bases and ranks change only at multiples of T */
};

static int src_knobs(void *ctx, int which, int dir, char *msg, size_t n);

/* The store sink: into ex->store, whichever it is (the knobs replace it). */
static DrrlStatus store_put(TraceSink *self, const TraceRecord *rec, DrrlError *err)
{
    Explore *ex = self->ctx;
    return trace_store_put(ex->store, rec, err);
}

static int64_t src_n_tokens(void *ctx)
{
    Explore *ex = ctx;
    return (int64_t)session_len(ex->s);
}

static DrrlStatus src_advance(void *ctx, DrrlError *err)
{
    return explore_step(ctx, err);
}

/* The attention pane asks for rows on every redraw and, stepping, for one new
 * row and many old ones. The approximate rows use the basis and ranks in
 * force (session.h), which change only at segment boundaries, so rows
 * computed in the same segment of the engine are reused: only the missing
 * ones are computed. */
static int64_t rows_epoch(Explore *ex)
{
    size_t pos = session_pos(ex->s);
    return pos == 0 ? -1 : (int64_t)((pos - 1) / (size_t)ex->segment);
}

/* Compute rows [lo, hi] into the new buffers (row i = query first + i). */
static int fill_rows(Explore *ex, int32_t layer, int32_t head, size_t lo, size_t hi,
                     size_t first, size_t nk, float *exact, float *approx, char *why, size_t n)
{
    SessionAttnRows r;
    DrrlError err;
    if (session_attention_rows(ex->s, layer, head, hi, hi - lo + 1, &r, &err) != DRRL_OK) {
        snprintf(why, n, "%s", err.msg);
        return -1;
    }
    for (size_t i = 0; i < r.n_rows; i++) {
        size_t q = r.first + i, k = q + 1 < nk ? q + 1 : nk;
        memcpy(exact + (q - first) * nk, r.exact + i * r.n_keys, k * sizeof *exact);
        memcpy(approx + (q - first) * nk, r.approx + i * r.n_keys, k * sizeof *approx);
    }
    ex->rows_rank = r.rank;
    session_attention_rows_free(&r);
    return 0;
}

static int src_attention(void *ctx, int32_t layer, int32_t head, size_t pos, size_t max_rows,
                         AppAttnRows *out, char *why, size_t why_n)
{
    Explore *ex = ctx;
    if (max_rows < 1)
        max_rows = 1;
    size_t first = pos + 1 > max_rows ? pos + 1 - max_rows : 0;
    size_t nr = pos + 1 - first, nk = pos + 1;
    if (pos >= session_pos(ex->s)) {
        snprintf(why, why_n, "token %zu has not run yet", pos + 1);
        return -1;
    }
    bool reuse = ex->rows_exact && ex->rows_layer == layer && ex->rows_head == head &&
                 ex->rows_epoch == rows_epoch(ex);
    size_t c_lo = ex->rows_first, c_hi = ex->rows_first + ex->rows_n; /* [c_lo, c_hi) */
    if (reuse && first == c_lo && nr == ex->rows_n && nk == ex->rows_nk) {
        *out =
            (AppAttnRows){first, nr, nk, ex->rows_rank, ex->rows_exact, ex->rows_approx, NULL};
        return 0;
    }
    float *exact = calloc(nr * nk, sizeof *exact), *approx = calloc(nr * nk, sizeof *approx);
    if (!exact || !approx) {
        free(exact);
        free(approx);
        snprintf(why, why_n, "out of memory");
        return -1;
    }
    /* rows already known, then the missing ones: at most one range before
     * and one after them */
    size_t have_lo = first, have_hi = first; /* copied: [have_lo, have_hi) */
    if (reuse && c_lo < pos + 1 && c_hi > first) {
        have_lo = c_lo > first ? c_lo : first;
        have_hi = c_hi < pos + 1 ? c_hi : pos + 1;
        for (size_t q = have_lo; q < have_hi; q++) {
            size_t k = q + 1;
            memcpy(exact + (q - first) * nk, ex->rows_exact + (q - c_lo) * ex->rows_nk,
                   k * sizeof *exact);
            memcpy(approx + (q - first) * nk, ex->rows_approx + (q - c_lo) * ex->rows_nk,
                   k * sizeof *approx);
        }
    }
    int rc = 0;
    if (have_hi == have_lo) /* nothing reused */
        rc = fill_rows(ex, layer, head, first, pos, first, nk, exact, approx, why, why_n);
    else {
        if (have_lo > first)
            rc = fill_rows(ex, layer, head, first, have_lo - 1, first, nk, exact, approx, why,
                           why_n);
        if (rc == 0 && have_hi < pos + 1)
            rc = fill_rows(ex, layer, head, have_hi, pos, first, nk, exact, approx, why, why_n);
    }
    if (rc != 0) {
        free(exact);
        free(approx);
        return -1;
    }
    free(ex->rows_exact);
    free(ex->rows_approx);
    ex->rows_exact = exact;
    ex->rows_approx = approx;
    ex->rows_first = first;
    ex->rows_n = nr;
    ex->rows_nk = nk;
    ex->rows_layer = layer;
    ex->rows_head = head;
    ex->rows_epoch = rows_epoch(ex);
    *out = (AppAttnRows){first, nr, nk, ex->rows_rank, exact, approx, NULL};
    return 0;
}

static void src_attention_free(void *ctx, AppAttnRows *rows)
{
    (void)ctx; /* the rows stay cached in the Explore */
    memset(rows, 0, sizeof *rows);
}

static const char *src_token_text(void *ctx, int64_t i)
{
    Explore *ex = ctx;
    return i >= 0 ? session_token_text(ex->s, (size_t)i) : "";
}

static long src_token_id(void *ctx, int64_t i)
{
    Explore *ex = ctx;
    return i >= 0 && (size_t)i < session_len(ex->s) ? (long)session_ids(ex->s)[i] : -1;
}

static int64_t src_position(void *ctx)
{
    Explore *ex = ctx;
    return (int64_t)session_pos(ex->s);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    while (s && !s[1] && s > p) { /* trailing slash */
        const char *t = s - 1;
        while (t > p && *t != '/')
            t--;
        if (*t == '/')
            return t + 1;
        return p;
    }
    return s ? s + 1 : p;
}

/* The run's metadata for the store and the trace sidecar: the same as
 * `drrl run` writes (trace_cli_meta), plus the number of steps. */
static DrrlStatus fill_meta(Explore *ex, const ExploreOptions *o, TraceMeta *m, DrrlError *err)
{
    DrrlStatus st = trace_cli_meta(ex->s, &o->cfg, m, err);
    if (st == DRRL_OK)
        m->n_steps = (int32_t)session_len(ex->s);
    return st;
}

/* The file DATA/texts/DEFAULT names (its first line: "NAME [TOKEN]", NAME a
 * file in DATA/texts), when that is a regular file; malloc'd, else NULL.
 * *token: TOKEN when it is a number > 0, else 0. */
static char *named_default_text(const char *dir, long *token)
{
    char p[4096 + 256], line[512] = "", name[256] = "";
    snprintf(p, sizeof p, "%s/DEFAULT", dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    long tok = 0;
    char extra;
    int n = sscanf(line, "%255s %ld %c", name, &tok, &extra);
    struct stat st;
    if (n < 1 || name[0] == '.' || strchr(name, '/'))
        return NULL;
    *token = n == 2 && tok > 0 ? tok : 0;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? strdup(p) : NULL;
}

/* The text DATA/texts/DEFAULT names, else the longest DATA/texts/NAME.txt,
 * else DATA/brown/test.txt; malloc'd, or NULL when none exists. */
char *explore_default_text(long *token)
{
    const char *data = cli_data_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/texts", data);
    long tok = 0;
    char *named = named_default_text(dir, &tok);
    if (token)
        *token = named ? tok : 0;
    if (named)
        return named;
    char *best = NULL;
    off_t best_size = -1;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n <= 4 || strcmp(e->d_name + n - 4, ".txt") != 0)
                continue;
            /* the longest text (ties: the first by name): the most segments,
             * so the most rank decisions to look at */
            char p[4096 + 256];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat es;
            if (stat(p, &es) != 0 || !S_ISREG(es.st_mode))
                continue;
            if (!best || es.st_size > best_size ||
                (es.st_size == best_size && strcmp(e->d_name, best) < 0)) {
                free(best);
                best = strdup(e->d_name);
                best_size = es.st_size;
            }
        }
        closedir(d);
    }
    char path[4096 + 256];
    struct stat st;
    if (best) {
        snprintf(path, sizeof path, "%s/%s", dir, best);
        free(best);
        return strdup(path);
    }
    snprintf(path, sizeof path, "%s/brown/test.txt", data);
    if (stat(path, &st) == 0)
        return strdup(path);
    return NULL;
}

const char *explore_default_method(void)
{
    char pol[4096];
    struct stat st;
    snprintf(pol, sizeof pol, "%s/%s", cli_data_dir(), EXPLORE_POLICY_FILE);
    return stat(pol, &st) == 0 ? "drrl" : "energy:0.95";
}

int explore_open(Explore **out, const ExploreOptions *o, const char *cmd)
{
    *out = NULL;
    Explore *ex = calloc(1, sizeof *ex);
    if (!ex)
        return cli_error(DRRL_E_NOMEM, "%s: out of memory", cmd);
    DrrlError err;
    drrl_error_clear(&err);
    AttnCoreConfig cfg = o->cfg;
    cfg.keep_queries = 1; /* the attention pane recomputes rows from them */
    ex->segment = cfg.segment > 0 ? cfg.segment : 1;
    if (session_open(attn_cli_model_dir(o->model_dir), &cfg, o->threads, &ex->s, &err) !=
        DRRL_OK) {
        free(ex);
        return cli_fail(&err);
    }
    CliText in = o->in;
    if (in.seq_len <= 0) {
        int n_ctx = session_model(ex->s)->cfg.n_ctx;
        in.seq_len = n_ctx > 0 && n_ctx < 2048 ? n_ctx : 2048;
    }
    int rc = attn_cli_set_input(cmd, ex->s, &in);
    if (rc != 0) {
        session_free(ex->s);
        free(ex);
        return rc;
    }
    ex->store = trace_store_new();
    if (!ex->store) {
        explore_close(ex, 0);
        return cli_error(DRRL_E_NOMEM, "%s: out of memory", cmd);
    }
    TraceMeta meta;
    if (fill_meta(ex, o, &meta, &err) != DRRL_OK ||
        trace_store_set_meta(ex->store, &meta, &err) != DRRL_OK ||
        session_add_sink(ex->s, (TraceSink){store_put, ex}, &err) != DRRL_OK) {
        trace_meta_done(&meta);
        explore_close(ex, 0);
        return cli_fail(&err);
    }
    if (o->trace_out) {
        if (trace_csv_writer_open(&ex->writer, o->trace_out, &meta,
                                  o->force ? TRACE_CSV_FORCE : 0, &err) != DRRL_OK ||
            session_add_sink(ex->s, trace_csv_writer_sink(ex->writer), &err) != DRRL_OK) {
            trace_meta_done(&meta);
            explore_close(ex, 0);
            return cli_fail(&err);
        }
    }
    trace_meta_done(&meta);
    snprintf(ex->model_name, sizeof ex->model_name, "%s", base_name(session_model(ex->s)->dir));
    snprintf(ex->method, sizeof ex->method, "%s", attn_core_method(session_core(ex->s)));
    ex->src = (AppSource){
        .ctx = ex,
        .n_tokens = src_n_tokens,
        .advance = src_advance,
        .attention = src_attention,
        .attention_free = src_attention_free,
        .position = src_position,
        .token_text = src_token_text,
        .token_id = src_token_id,
        .knobs = src_knobs,
    };
    app_init(&ex->app, ex->store, &ex->src, ex->model_name, ex->method, "explore");
    if (explore_step(ex, &err) != DRRL_OK) {
        explore_close(ex, 0);
        return cli_fail(&err);
    }
    const char *warn = session_warning(ex->s);
    if (warn && warn[0]) /* e.g. a policy trained for another model of this shape */
        app_message(&ex->app, true, "%s", warn);
    *out = ex;
    return 0;
}

/* The engine runs a whole segment per call, as `drrl run` does: the same
 * calls give the same floating-point results, so the explorer's trace equals
 * run's (apart from wall_ns). Tokens after the cursor are computed but shown
 * only when the cursor gets there; a row never depends on a later token. */
DrrlStatus explore_step(Explore *ex, DrrlError *err)
{
    size_t T = ex->segment > 0 ? (size_t)ex->segment : 1;
    DrrlStatus st = session_advance(ex->s, T - session_pos(ex->s) % T, NULL, err);
    if (st != DRRL_OK)
        return st;
    if (app_sync(&ex->app) != 0)
        return drrl_error(err, DRRL_E_NOMEM, "explore: out of memory");
    return DRRL_OK;
}

/* A new store holding the steps before cut of the current one. */
static TraceStore *store_prefix(Explore *ex, int64_t cut, DrrlError *err)
{
    TraceStore *ns = trace_store_new();
    if (!ns) {
        drrl_error(err, DRRL_E_NOMEM, "explore: out of memory");
        return NULL;
    }
    int32_t L = trace_store_n_layers(ex->store), H = trace_store_n_heads(ex->store);
    DrrlStatus st = trace_store_set_meta(ns, trace_store_meta(ex->store), err);
    for (int64_t s = 0; st == DRRL_OK && s < cut; s++)
        for (int32_t l = 0; st == DRRL_OK && l < L; l++)
            for (int32_t h = 0; st == DRRL_OK && h < H; h++) {
                TraceRecord r;
                if (trace_store_read(ex->store, s, l, h, &r))
                    st = trace_store_put(ns, &r, err);
            }
    if (st != DRRL_OK) {
        trace_store_free(ns);
        return NULL;
    }
    return ns;
}

/* The live knobs (AppSource.knobs): which 0 = the policy's FLOP budget
 * (+-0.05), 1 = the safety threshold (x1.25 or x0.8). The steps before the
 * cursor's segment stay as computed; the engine is replayed to that
 * segment's start with the old knobs (no records: the same ones), the new
 * knobs are set, and the segment is computed again. */
static int src_knobs(void *ctx, int which, int dir, char *msg, size_t n)
{
    Explore *ex = ctx;
    App *app = &ex->app;
    if (ex->writer) {
        snprintf(msg, n, "knobs change the run: not while recording a trace (--trace-out)");
        return -1;
    }
    double eps = attn_core_eps(session_core(ex->s)), budget = session_budget(ex->s);
    if (which == 0) {
        if (isnan(budget)) {
            snprintf(msg, n, "budget: only the drrl method's policy has one");
            return -1;
        }
        budget = fmin(1.0, fmax(0.05, budget + 0.05 * dir));
    } else {
        eps = fmin(10.0, fmax(0.01, eps * (dir > 0 ? 1.25 : 0.8)));
    }
    int64_t T = ex->segment, cut = app->step / T * T;
    DrrlError err;
    drrl_error_clear(&err);
    TraceStore *ns = store_prefix(ex, cut, &err);
    if (!ns) {
        snprintf(msg, n, "%s", err.msg);
        return -1;
    }
    session_restart(ex->s);
    session_mute(ex->s, true);
    DrrlStatus st = session_advance(ex->s, (size_t)cut, NULL, &err);
    session_mute(ex->s, false);
    session_set_knobs(ex->s, eps, budget);
    trace_store_free(ex->store);
    ex->store = app->store = ns;
    free(ex->rows_exact), free(ex->rows_approx);
    ex->rows_exact = ex->rows_approx = NULL;
    app->cum_steps = 0; /* every cache again */
    if (st == DRRL_OK)
        st = explore_step(ex, &err);
    if (st != DRRL_OK || app_sync(app) != 0) {
        snprintf(msg, n, "%s", err.msg[0] ? err.msg : "out of memory");
        return -1;
    }
    if (app->step >= app_n_steps(app))
        app->step = app_n_steps(app) - 1;
    if (isnan(budget))
        snprintf(msg, n, "eps %.3g: recomputed from token %lld (segment %lld)", eps,
                 (long long)cut + 1, (long long)(cut / T));
    else
        snprintf(msg, n, "eps %.3g, budget %.2f: recomputed from token %lld (segment %lld)",
                 eps, budget, (long long)cut + 1, (long long)(cut / T));
    return 0;
}

App *explore_app(Explore *ex)
{
    return &ex->app;
}
Session *explore_session(Explore *ex)
{
    return ex->s;
}

int explore_close(Explore *ex, int interrupted)
{
    if (!ex)
        return 0;
    int rc = 0;
    if (ex->writer) {
        DrrlError err;
        drrl_error_clear(&err);
        /* the rows computed so far become a valid trace */
        if (trace_csv_writer_finish(ex->writer, interrupted, &err) != DRRL_OK)
            rc = cli_fail(&err);
        ex->writer = NULL;
    }
    free(ex->rows_exact);
    free(ex->rows_approx);
    app_done(&ex->app);
    session_free(ex->s);
    trace_store_free(ex->store);
    free(ex);
    return rc;
}
