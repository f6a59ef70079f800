/* trace_cli.c: --trace-out for commands that run a session (trace_cli.h). */
#include "config.h"

#include "trace_cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "signals.h"

int trace_cli_option(TraceCli *t, int c)
{
    switch (c) {
    case TRACE_CLI_OPT_OUT: t->out = optarg; return 1;
    case TRACE_CLI_OPT_FORCE: t->flags |= TRACE_CSV_FORCE; return 1;
    case TRACE_CLI_OPT_NO_TIMING: t->flags |= TRACE_CSV_NO_TIMING; return 1;
    default: return 0;
    }
}

/* FNV-1a 64 over the ids as 4-byte little-endian integers, 16 hex digits. */
static void ids_hash(const int32_t *ids, size_t n, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++)
            h = (h ^ ((v >> (8 * k)) & 0xFFu)) * 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int trace_cli_start(TraceCli *t, const char *cmd, Session *s, const AttnCoreConfig *cfg)
{
    if (!t->out)
        return 0;
    const Model *m = session_model(s);
    const RankGrid *g = attn_core_grid(session_core(s));
    char text_hash[17];
    ids_hash(session_ids(s), session_len(s), text_hash);
    TraceMeta meta;
    trace_meta_init(&meta);
    meta.drrl_version = (char *)PACKAGE_VERSION;
    meta.model_path = m->dir;
    meta.model_hash = (char *)m->hash;
    meta.text_hash = text_hash;
    meta.method = (char *)attn_core_method(session_core(s));
    meta.seed = cfg->seed;
    meta.segment_len = cfg->segment;
    meta.n_layer = m->cfg.n_layer;
    meta.n_head = m->cfg.n_head;
    meta.head_dim = m->cfg.head_dim;
    meta.n_grid = g ? g->n : 0;
    meta.rank_grid = g ? (int32_t *)g->r : NULL;
    /* Reward weights belong to a policy's training, not to a run. */
    meta.alpha = meta.beta = meta.gamma = NAN;
    /* A run uses one threshold throughout. */
    meta.eps_start = meta.eps_floor = cfg->eps;
    meta.eps_decay = 1.0;
    DrrlError err;
    if (trace_csv_writer_open(&t->w, t->out, &meta, t->flags, &err) != DRRL_OK)
        return cli_fail(&err);
    if (session_add_sink(s, trace_csv_writer_sink(t->w), &err) != DRRL_OK) {
        trace_csv_writer_abort(t->w);
        t->w = NULL;
        return cli_fail(&err);
    }
    (void)cmd;
    return 0;
}

int trace_cli_finish(TraceCli *t, int interrupted)
{
    if (!t->w)
        return 0;
    size_t rows = trace_csv_writer_rows(t->w);
    DrrlError err;
    DrrlStatus st = trace_csv_writer_finish(t->w, interrupted, &err);
    t->w = NULL;
    (void)rows;
    if (st != DRRL_OK)
        return cli_fail(&err);
    return 0;
}

int trace_cli_interrupted(TraceCli *t, const char *cmd)
{
    if (!t->w)
        return cli_error(drrl_status_exit_code(DRRL_E_INTERRUPTED), "%s: interrupted by %s",
                         cmd, signals_name());
    size_t rows = trace_csv_writer_rows(t->w);
    DrrlError err;
    DrrlStatus st = trace_csv_writer_finish(t->w, 1, &err);
    t->w = NULL;
    if (st != DRRL_OK)
        return cli_fail(&err);
    return cli_error(drrl_status_exit_code(DRRL_E_INTERRUPTED),
                     "%s: interrupted by %s; %s holds the %zu rows recorded", cmd,
                     signals_name(), t->out, rows);
}
