/* trace_cli.c: --trace-out for commands that run a session (trace_cli.h). */
#include "config.h"

#include "cli/trace_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"
#include "policy/policy_reward.h"
#include "cli/signals.h"

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

DrrlStatus trace_cli_meta(Session *s, const AttnCoreConfig *cfg, TraceMeta *m, DrrlError *err)
{
    const Model *model = session_model(s);
    const RankGrid *g = attn_core_grid(session_core(s));
    char text_hash[17];
    ids_hash(session_ids(s), session_len(s), text_hash);
    trace_meta_init(m);
    DrrlStatus st;
    if ((st = trace_meta_set_str(&m->drrl_version, PACKAGE_VERSION, err)) ||
        (st = trace_meta_set_str(&m->model_path, model->dir, err)) ||
        (st = trace_meta_set_str(&m->model_hash, model_hash(model), err)) ||
        (st = trace_meta_set_str(&m->model_hash_algo, MODEL_HASH_ALGO, err)) ||
        (st = trace_meta_set_str(&m->text_hash, text_hash, err)) ||
        (st = trace_meta_set_str(&m->method, attn_core_method(session_core(s)), err)))
        goto fail;
    m->seed = cfg->seed;
    m->segment_len = cfg->segment;
    m->n_layer = model->cfg.n_layer;
    m->n_head = model->cfg.n_head;
    m->head_dim = model->cfg.head_dim;
    if (g && g->n > 0) {
        m->rank_grid = malloc((size_t)g->n * sizeof *m->rank_grid);
        if (!m->rank_grid) {
            st = drrl_error(err, DRRL_E_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->rank_grid, g->r, (size_t)g->n * sizeof *m->rank_grid);
        m->n_grid = g->n;
    }
    PolicyRewardWeights w;
    policy_reward_defaults(&w);
    m->alpha = w.alpha;
    m->beta = w.beta;
    m->gamma = w.gamma;
    /* A run keeps one threshold: start = floor, no decay. */
    m->eps_start = m->eps_floor = attn_core_eps(session_core(s));
    m->eps_decay = 1.0;
    return DRRL_OK;
fail:
    trace_meta_done(m);
    return st;
}

int trace_cli_start(TraceCli *t, const char *cmd, Session *s, const AttnCoreConfig *cfg)
{
    if (!t->out)
        return 0;
    TraceMeta meta;
    DrrlError err;
    if (trace_cli_meta(s, cfg, &meta, &err) != DRRL_OK)
        return cli_fail(&err);
    DrrlStatus st = trace_csv_writer_open(&t->w, t->out, &meta, t->flags, &err);
    trace_meta_done(&meta);
    if (st != DRRL_OK)
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
        return cli_error(DRRL_E_INTERRUPTED, "%s: interrupted by %s", cmd, signals_name());
    size_t rows = trace_csv_writer_rows(t->w);
    DrrlError err;
    DrrlStatus st = trace_csv_writer_finish(t->w, 1, &err);
    t->w = NULL;
    if (st != DRRL_OK)
        return cli_fail(&err);
    return cli_error(DRRL_E_INTERRUPTED,
                     "%s: interrupted by %s; %s holds the %zu rows recorded", cmd,
                     signals_name(), t->out, rows);
}
