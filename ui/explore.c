/* explore.c: the live explorer behind `drrl explore` (see explore.h). */
#include "config.h"

#include "explore.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn_cli.h"
#include "cli.h"
#include "policy_reward.h"
#include "trace_csv.h"
#include "trace_store.h"

struct Explore {
    Session *s;
    TraceStore *store;
    TraceCsvWriter *writer;
    AppSource src;
    App app;
    char model_name[256];
    char method[128];
    /* the attention rows last shown (src_attention) */
    SessionAttnRows rows;
    bool rows_valid;
    int32_t rows_layer, rows_head;
    size_t rows_pos, rows_max, rows_engine_pos;
};

static int64_t src_n_tokens(void *ctx)
{
    Explore *ex = ctx;
    return (int64_t)session_len(ex->s);
}

static DrrlStatus src_advance(void *ctx, DrrlError *err)
{
    return explore_step(ctx, err);
}

/* The attention pane asks for the same rows on every redraw: the last
 * answer is kept until the head, the position or the engine moves. */
static int src_attention(void *ctx, int32_t layer, int32_t head, size_t pos, size_t max_rows,
                         AppAttnRows *out, char *why, size_t why_n)
{
    Explore *ex = ctx;
    SessionAttnRows *r = &ex->rows;
    if (!ex->rows_valid || ex->rows_layer != layer || ex->rows_head != head ||
        ex->rows_pos != pos || ex->rows_max != max_rows ||
        ex->rows_engine_pos != session_pos(ex->s)) {
        if (ex->rows_valid)
            session_attention_rows_free(r);
        ex->rows_valid = false;
        DrrlError err;
        if (session_attention_rows(ex->s, layer, head, pos, max_rows, r, &err) != DRRL_OK) {
            snprintf(why, why_n, "%s", err.msg);
            return -1;
        }
        ex->rows_valid = true;
        ex->rows_layer = layer;
        ex->rows_head = head;
        ex->rows_pos = pos;
        ex->rows_max = max_rows;
        ex->rows_engine_pos = session_pos(ex->s);
    }
    *out = (AppAttnRows){r->first, r->n_rows, r->n_keys, r->rank, r->exact, r->approx, NULL};
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

/* The run's metadata for the store and the trace sidecar. */
static DrrlStatus fill_meta(Explore *ex, const ExploreOptions *o, TraceMeta *m, DrrlError *err)
{
    const Model *model = session_model(ex->s);
    const RankGrid *g = attn_core_grid(session_core(ex->s));
    trace_meta_init(m);
    DrrlStatus st;
    if ((st = trace_meta_set_str(&m->drrl_version, PACKAGE_VERSION, err)) ||
        (st = trace_meta_set_str(&m->model_path, model->dir, err)) ||
        (st = trace_meta_set_str(&m->model_hash, model->hash, err)) ||
        (st = trace_meta_set_str(&m->method, attn_core_method(session_core(ex->s)), err)))
        return st;
    m->seed = o->cfg.seed;
    m->segment_len = o->cfg.segment;
    m->n_layer = model->cfg.n_layer;
    m->n_head = model->cfg.n_head;
    m->head_dim = model->cfg.head_dim;
    m->n_steps = (int32_t)session_len(ex->s);
    if (g && g->n > 0) {
        m->rank_grid = malloc((size_t)g->n * sizeof *m->rank_grid);
        if (!m->rank_grid)
            return drrl_error(err, DRRL_E_NOMEM, "explore: out of memory");
        memcpy(m->rank_grid, g->r, (size_t)g->n * sizeof *m->rank_grid);
        m->n_grid = g->n;
    }
    PolicyRewardWeights w;
    policy_reward_defaults(&w);
    m->alpha = w.alpha;
    m->beta = w.beta;
    m->gamma = w.gamma;
    m->eps_start = m->eps_floor = o->cfg.eps;
    m->eps_decay = 0;
    return DRRL_OK;
}

/* The first DATA/texts/NAME.txt (by name), else DATA/brown/test.txt; malloc'd,
 * or NULL when neither exists. */
char *explore_default_text(void)
{
    const char *data = cli_data_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/texts", data);
    char *best = NULL;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".txt") == 0 &&
                (!best || strcmp(e->d_name, best) < 0)) {
                free(best);
                best = strdup(e->d_name);
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
        return cli_error(CLI_EXIT_FAIL, "%s: out of memory", cmd);
    DrrlError err;
    drrl_error_clear(&err);
    AttnCoreConfig cfg = o->cfg;
    cfg.keep_queries = 1; /* the attention pane recomputes rows from them */
    if (session_open(attn_cli_model_dir(o->model_dir), &cfg, o->threads, &ex->s, &err) !=
        DRRL_OK) {
        free(ex);
        return cli_fail(&err);
    }
    long seq_len = o->seq_len;
    if (seq_len <= 0) {
        int n_ctx = session_model(ex->s)->cfg.n_ctx;
        seq_len = n_ctx > 0 && n_ctx < 2048 ? n_ctx : 2048;
    }
    int rc = attn_cli_set_input(cmd, ex->s, o->text, o->prompt, o->ids_file, o->offset, seq_len);
    if (rc != 0) {
        session_free(ex->s);
        free(ex);
        return rc;
    }
    ex->store = trace_store_new();
    if (!ex->store) {
        explore_close(ex, 0);
        return cli_error(CLI_EXIT_FAIL, "%s: out of memory", cmd);
    }
    TraceMeta meta;
    if (fill_meta(ex, o, &meta, &err) != DRRL_OK ||
        trace_store_set_meta(ex->store, &meta, &err) != DRRL_OK ||
        session_add_sink(ex->s, trace_store_sink(ex->store), &err) != DRRL_OK) {
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
    snprintf(ex->model_name, sizeof ex->model_name, "%s",
             base_name(session_model(ex->s)->dir));
    snprintf(ex->method, sizeof ex->method, "%s", attn_core_method(session_core(ex->s)));
    ex->src = (AppSource){
        .ctx = ex,
        .n_tokens = src_n_tokens,
        .advance = src_advance,
        .attention = src_attention,
        .attention_free = src_attention_free,
        .position = src_position,
        .token_text = src_token_text,
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

DrrlStatus explore_step(Explore *ex, DrrlError *err)
{
    DrrlStatus st = session_step(ex->s, err);
    if (st != DRRL_OK)
        return st;
    if (app_sync(&ex->app) != 0)
        return drrl_error(err, DRRL_E_NOMEM, "explore: out of memory");
    return DRRL_OK;
}

App *explore_app(Explore *ex) { return &ex->app; }
Session *explore_session(Explore *ex) { return ex->s; }

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
    if (ex->rows_valid)
        session_attention_rows_free(&ex->rows);
    app_done(&ex->app);
    session_free(ex->s);
    trace_store_free(ex->store);
    free(ex);
    return rc;
}
