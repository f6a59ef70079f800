/* cmd_eval.c: `drrl eval`: language-model quality and cost of attention
 * methods over consecutive windows of a text. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/flops.h"
#include "cli/attn_cli.h"
#include "eval/bootstrap.h"
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/signals.h"
#include "cmd/commands.h"
#include "run/session.h"

static const char usage[] =
    "usage: drrl eval [--model DIR] --data FILE --seq-len N --methods LIST [--csv F]\n"
    "                 [--windows K] [options]\n"
    "\n"
    "Cut the text into consecutive windows of N tokens and run every window with\n"
    "each method. Report bits per byte and perplexity over every predicted token,\n"
    "executed FLOPs (attention core and whole model) against exact, wall time,\n"
    "mean fidelity and bound violations: a table on stdout, and with --csv one\n"
    "row per method. A progress bar shows on a terminal.\n"
    "\n"
    "  --model DIR       model directory (default: the data directory's model)\n"
    "  --data FILE       the text\n"
    "  --seq-len N       tokens per window (>= 2)\n"
    "  --methods LIST    comma-separated method specs, e.g. full,fixed:16,energy:0.9\n"
    "  --windows K       use at most the first K windows (default: all)\n"
    "  --csv F           write the results as CSV to F ('-' = stdout); Ctrl-C\n"
    "                    keeps the methods finished so far (their rows are written)\n"
    "  --force           replace an existing --csv file\n"
    "  --segment T, --seed N, --rank-min R, --rank-step S, --eps E, --rot-tol X,\n"
    "  --no-exact        as for drrl run (--method is replaced by --methods)\n"
    "  --threads N       attention worker threads\n"
    "  --ablations       after each drrl method, run it without RL (fixed rank at\n"
    "                    its mean rank), without the safety mask, and with the\n"
    "                    policy trained with beta = 0 (--beta0-policy)\n"
    "  --beta0-policy F  the beta = 0 policy (default DATA/policy-beta0.safetensors)\n"
    "  --boot B          bootstrap resamples for the 95% CIs (default 2000)\n"
    "\n"
    "With a 'full' method in the list, each other method gets the paired\n"
    "bootstrap 95% confidence interval (over windows, seeded by --seed) of its\n"
    "loss difference against exact: the dloss column (nats per token), and CSV\n"
    "columns loss_diff[_lo,_hi] and bpb_diff[_lo,_hi].\n"
    "  -h, --help        show this help\n";

typedef struct Row {
    char method[METHOD_SPEC_MAX];
    double tokens, nll, nll_n, bytes;
    double fe, fx, afe, afx, fid_sum, fid_rows, wall;
    int64_t viol;
    int64_t lowrank, guarded, gexc, forced, vacuous; /* guard and bound rows */
    double *ratios;                                  /* proven bound / measured error */
    size_t n_ratios;
    double bmed; /* their median */
    int measured;
    double *win_nll, *win_cnt, *win_bytes; /* (n_win) per-window sums, for the CI */
    size_t n_win;
    double rank_sum, rank_n; /* ranks of decisions after the first segment */
    double eps;              /* safety threshold for this row (ablation: +inf) */
    int norl_of;             /* >= 0: fixed rank at the mean rank of row norl_of */
    int has_ci;
    BootstrapCI dloss, dbpb;
} Row;

/* One window of one method: what eval adds up. Windows are shared out over
 * the processes of an MPI job (window w to rank w mod N, cli/dist.h) and
 * their sums gathered to rank 0, which adds them in window order: the same
 * additions in the same order as one process makes, so every figure is
 * byte-identical for any N (wall_s aside). */
typedef struct WinSums {
    uint64_t w;
    double tokens, nll, nll_n, bytes, bytes_nats; /* bytes_nats: bytes x ln 2 */
    double fe, fx, afe, afx, fid_sum, fid_rows, wall;
    int64_t viol, lowrank, guarded, gexc, forced, vacuous;
    double rank_sum, rank_n;
    uint64_t n_ratios; /* bound ratios following the record when packed */
} WinSums;

/* The window's guard and bound rows into its sums; its bound ratios appended
 * to *buf (n bytes used of cap). 0, or -1 when out of memory. */
static int add_guard(WinSums *ws, const AttnCore *ac, char **buf, size_t *n, size_t *cap)
{
    const AttnCoreStats *st = attn_core_stats(ac);
    ws->lowrank = st->lowrank_rows, ws->guarded = st->guarded_rows;
    ws->gexc = st->guard_exceeded, ws->forced = st->forced_rows;
    ws->vacuous = st->bound_vacuous;
    size_t k;
    const double *r = attn_core_bound_ratios(ac, &k);
    ws->n_ratios = k;
    size_t need = *n + sizeof *ws + k * sizeof *r;
    if (need > *cap) {
        size_t nc = need > 2 * *cap ? need : 2 * *cap;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb, *cap = nc;
    }
    memcpy(*buf + *n, ws, sizeof *ws);
    if (k)
        memcpy(*buf + *n + sizeof *ws, r, k * sizeof *r);
    *n = need;
    return 0;
}

/* The outcome of one method on every rank, decided by rank 0. */
typedef struct MethodEnd {
    int32_t rc, interrupted;
    double rank_sum, rank_n; /* for the no-RL ablation of a later row */
} MethodEnd;

/* Gather every rank's windows of row (the packed WinSums records, after a
 * header of its exit code and interrupt flag) to rank 0, which adds them up
 * in window order; every rank gets the outcome. */
static int gather_windows(Row *row, char *mine, size_t n_mine, int rc, int interrupted,
                          int measured, int *out_interrupted)
{
    DrrlError err;
    MethodEnd end = {rc, interrupted, 0, 0};
    int32_t head[2] = {rc, interrupted};
    memcpy(mine, head, sizeof head); /* the buffer starts with room for it */
    size_t *counts = calloc((size_t)dist_size(), sizeof *counts);
    const WinSums **at = calloc(row->n_win ? row->n_win : 1, sizeof *at);
    char *all = NULL;
    if (!counts || !at) {
        free(counts), free(at);
        return cli_error(DRRL_E_NOMEM, "out of memory");
    }
    if (dist_gather(mine, n_mine, (void **)&all, counts, &err) != DRRL_OK) {
        free(counts), free(at);
        return cli_fail(&err);
    }
    if (dist_rank() == 0) {
        size_t off = 0;
        for (int r = 0; r < dist_size(); r++) {
            size_t endr = off + counts[r];
            int32_t h[2];
            memcpy(h, all + off, sizeof h);
            if (h[0] > end.rc)
                end.rc = h[0];
            end.interrupted |= h[1];
            for (off += sizeof h; off + sizeof(WinSums) <= endr;) {
                const WinSums *ws = (const WinSums *)(all + off);
                if (ws->w < row->n_win)
                    at[ws->w] = ws;
                off += sizeof *ws + ws->n_ratios * sizeof(double);
            }
            off = endr;
        }
        for (size_t w = 0; w < row->n_win && !end.rc && !end.interrupted; w++) {
            const WinSums *ws = at[w];
            if (!ws) {
                end.rc = cli_error(DRRL_E_INTERNAL, "eval: window %zu: no result gathered", w);
                break;
            }
            row->tokens += ws->tokens, row->nll += ws->nll, row->nll_n += ws->nll_n;
            row->win_nll[w] = ws->nll, row->win_cnt[w] = ws->nll_n;
            row->bytes += ws->bytes, row->win_bytes[w] = ws->bytes_nats;
            row->fe += ws->fe, row->fx += ws->fx, row->afe += ws->afe, row->afx += ws->afx;
            row->fid_sum += ws->fid_sum, row->fid_rows += ws->fid_rows;
            row->viol += ws->viol;
            row->lowrank += ws->lowrank, row->guarded += ws->guarded;
            row->gexc += ws->gexc, row->forced += ws->forced, row->vacuous += ws->vacuous;
            row->rank_sum += ws->rank_sum, row->rank_n += ws->rank_n;
            row->wall += ws->wall;
            if (ws->n_ratios) {
                double *nr = realloc(row->ratios, (row->n_ratios + ws->n_ratios) * sizeof *nr);
                if (!nr) {
                    end.rc = cli_error(DRRL_E_NOMEM, "out of memory");
                    break;
                }
                memcpy(nr + row->n_ratios, ws + 1, ws->n_ratios * sizeof *nr);
                row->ratios = nr, row->n_ratios += ws->n_ratios;
            }
        }
        row->measured = measured;
        end.rank_sum = row->rank_sum, end.rank_n = row->rank_n;
    }
    free(all), free(counts), free(at);
    if (dist_bcast(&end, sizeof end, &err) != DRRL_OK)
        return cli_fail(&err);
    row->rank_sum = end.rank_sum, row->rank_n = end.rank_n;
    *out_interrupted = end.interrupted;
    return end.rc;
}

/* The guard and bound columns of the CSV (empty when no low-rank row was
 * measured), then the line end. */
static void write_guard(FILE *f, const Row *w)
{
    if (!w->measured || w->lowrank == 0) {
        fprintf(f, ",,,%lld,,\n", (long long)w->lowrank);
        return;
    }
    fprintf(f, "%.9g,", (double)w->vacuous / (double)w->lowrank);
    if (w->guarded > 0)
        fprintf(f, "%.9g,", (double)w->gexc / (double)w->guarded);
    else
        fprintf(f, ",");
    if (isfinite(w->bmed))
        fprintf(f, "%.9g,", w->bmed);
    else
        fprintf(f, ",");
    fprintf(f, "%lld,%lld,%lld\n", (long long)w->lowrank, (long long)w->guarded,
            (long long)w->forced);
}

/* Mean rank of a drrl run (for the no-RL ablation): a sink over the records
 * of segments after the first (the first is exact for every method). */
static DrrlStatus rank_sink_put(TraceSink *self, const TraceRecord *rec, DrrlError *err)
{
    (void)err;
    WinSums *ws = self->ctx;
    if (rec->segment > 0)
        ws->rank_sum += rec->rank, ws->rank_n += 1.0;
    return DRRL_OK;
}

/* Add the three ablations of drrl method ms[i] at the end of ms/rows. */
static int add_ablations(Method *ms, Row *rows, int *n, int i, const char *beta0, double eps)
{
    if (*n + 3 > 64)
        return cli_usage_error("eval", "--methods: at most 64 methods with --ablations");
    const char *at = method_budget_at(ms[i].policy);
    char spec[METHOD_SPEC_MAX + 32];
    DrrlError err;
    int k = *n;
    /* without RL: fixed:R, R resolved after row i ran */
    ms[k] = ms[i], rows[k].eps = eps, rows[k].norl_of = i;
    snprintf(rows[k].method, sizeof rows[k].method, "%.200s no-RL", ms[i].spec);
    /* without the perturbation mask: no rank is ever unsafe */
    ms[k + 1] = ms[i], rows[k + 1].eps = INFINITY, rows[k + 1].norl_of = -1;
    snprintf(rows[k + 1].method, sizeof rows[k + 1].method, "%.200s no-mask", ms[i].spec);
    /* without the FLOP term: the policy trained with beta = 0, same budget */
    if (snprintf(spec, sizeof spec, "drrl:%s%s", beta0, at ? at : "") >= METHOD_SPEC_MAX ||
        method_parse(spec, &ms[k + 2], &err) != DRRL_OK)
        return cli_usage_error("eval", "--beta0-policy: %s: bad policy path", beta0);
    rows[k + 2].eps = eps, rows[k + 2].norl_of = -1;
    snprintf(rows[k + 2].method, sizeof rows[k + 2].method, "%.200s beta=0", ms[i].spec);
    *n = k + 3;
    return 0;
}

/* One evaluation: the options, the methods and their rows, the tokens. */
typedef struct Eval {
    AttnCoreConfig cfg;
    const char *model, *data, *methods, *csv, *beta0;
    long seq_len, windows, threads, n_boot;
    int ablations, force, interrupted;
    Method ms[64];
    Row *rows;
    int n_methods, n_started;
    char *text;
    size_t tlen;
    int32_t *ids;
    size_t n_ids;
    char b0[METHOD_SPEC_MAX];
    WinSums cur; /* the window running, the rank sink's sums */
    char *pack;  /* this rank's windows of the method running, packed */
    size_t n_pack, pack_cap;
} Eval;

static int reject_method(const char *cmd, const CliOpt *o, const char *arg)
{
    (void)o, (void)arg;
    return cli_usage_error(cmd, "use --methods LIST");
}

/* Parse every method first: a bad one is a usage error before any work. */
static int parse_methods(Eval *e)
{
    int r = attn_cli_methods("eval", e->methods, e->ms, 64, &e->n_methods);
    for (int n = 0; !r && n < e->n_methods; n++) {
        e->rows[n].eps = e->cfg.eps, e->rows[n].norl_of = -1;
        snprintf(e->rows[n].method, sizeof e->rows[n].method, "%s", e->ms[n].spec);
    }
    return r;
}

/* --ablations: the three ablations of every drrl method. */
static int setup_ablations(Eval *e)
{
    if (!e->beta0) {
        snprintf(e->b0, sizeof e->b0, "%s/policy-beta0.safetensors", cli_data_dir());
        e->beta0 = e->b0;
    }
    if (access(e->beta0, R_OK) != 0)
        return cli_error(DRRL_E_INPUT,
                         "%s: cannot read the beta = 0 policy: %s (train it "
                         "with drrl train-policy --beta 0, or give --beta0-policy)",
                         e->beta0, strerror(errno));
    int n0 = e->n_methods, r;
    for (int i = 0; i < n0; i++)
        if (e->ms[i].kind == METHOD_DRRL &&
            (r = add_ablations(e->ms, e->rows, &e->n_methods, i, e->beta0, e->cfg.eps)))
            return r;
    if (e->n_methods == n0)
        return cli_usage_error("eval", "--ablations needs a drrl method in --methods");
    return 0;
}

/* Row mi's method into e->cfg (the no-RL ablation: the fixed rank nearest
 * the drrl run's mean rank). */
static void method_config(Eval *e, int mi)
{
    Row *rows = e->rows;
    e->cfg.method = e->ms[mi];
    e->cfg.eps = rows[mi].eps;
    if (rows[mi].norl_of < 0)
        return;
    const Row *p = &rows[rows[mi].norl_of];
    long rk = p->rank_n > 0 ? lround(p->rank_sum / p->rank_n) : 0;
    Method *m = &e->cfg.method;
    m->kind = METHOD_FIXED, m->rank = (int32_t)(rk < 1 ? 1 : rk);
    snprintf(m->spec, sizeof m->spec, "fixed:%d", (int)m->rank);
    snprintf(rows[mi].method, sizeof rows[mi].method, "%.200s no-RL=fixed:%d",
             e->ms[rows[mi].norl_of].spec, (int)m->rank);
}

/* The text's tokens, once, with the first session's tokenizer. */
static int tokenize(Eval *e, Session *s)
{
    DrrlError err;
    if (!session_tokenizer(s))
        return cli_error(DRRL_E_INPUT, "%s: the model has no tokenizer",
                         attn_cli_model_dir(e->model));
    if (tokenizer_encode(session_tokenizer(s), e->text, e->tlen, &e->ids, &e->n_ids, &err))
        return cli_fail(&err);
    if (e->n_ids < (size_t)e->seq_len)
        return cli_error(DRRL_E_INPUT, "%s: %zu tokens, fewer than one window of %ld", e->data,
                         e->n_ids, e->seq_len);
    return 0;
}

/* The window just run into e->cur, packed after this rank's others. */
static int add_window(Eval *e, Session *s, const int32_t *wid)
{
    WinSums *cur = &e->cur;
    AttnSummary sum;
    attn_cli_summary(s, &sum);
    cur->tokens = (double)sum.tokens;
    cur->nll = session_nll_sum(s);
    cur->nll_n = (double)session_nll_count(s);
    for (size_t t = 1; t < (size_t)e->seq_len; t++) {
        size_t bl = 0;
        tokenizer_token_bytes(session_tokenizer(s), wid[t], &bl);
        cur->bytes += (double)bl;
        cur->bytes_nats += (double)bl * log(2.0);
    }
    cur->fe = sum.flops_executed, cur->fx = sum.flops_exact;
    cur->afe = sum.attn_flops_executed, cur->afx = sum.attn_flops_exact;
    const AttnCoreStats *st = attn_core_stats(session_core(s));
    cur->fid_sum = st->fidelity_sum, cur->fid_rows = (double)st->rows;
    cur->viol = st->violations;
    cur->wall = sum.wall_s;
    if (add_guard(cur, session_core(s), &e->pack, &e->n_pack, &e->pack_cap))
        return cli_error(DRRL_E_NOMEM, "out of memory");
    return 0;
}

/* The row's per-window arrays and an empty pack (room for the header
 * gather_windows fills). */
static int start_row(Eval *e, Row *row, size_t n_win)
{
    row->n_win = n_win;
    row->win_nll = calloc(n_win, sizeof *row->win_nll);
    row->win_cnt = calloc(n_win, sizeof *row->win_cnt);
    row->win_bytes = calloc(n_win, sizeof *row->win_bytes);
    if (!row->win_nll || !row->win_cnt || !row->win_bytes)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    e->n_pack = 2 * sizeof(int32_t);
    if (e->n_pack > e->pack_cap) {
        char *nb = realloc(e->pack, 4096);
        if (!nb)
            return cli_error(DRRL_E_NOMEM, "out of memory");
        e->pack = nb, e->pack_cap = 4096;
    }
    return 0;
}

/* This rank's windows (w = rank, rank + N, ...) with the session's method;
 * rc: an error in a window (the windows are gathered all the same). */
static void run_windows(Eval *e, Session *s, const Row *row, int *rc)
{
    DrrlError err;
    size_t L = (size_t)e->seq_len, n_win = row->n_win;
    char label[64];
    snprintf(label, sizeof label, "%.63s", row->method);
    size_t step = (size_t)dist_size(), mine = 0;
    for (size_t w = (size_t)dist_rank(); w < n_win && *rc == CLI_EXIT_OK; w += step) {
        if ((e->interrupted = signals_caught() != 0))
            break;
        const int32_t *wid = e->ids + w * L;
        memset(&e->cur, 0, sizeof e->cur);
        e->cur.w = w;
        if (session_set_ids(s, wid, L, &err) || session_advance(s, L, NULL, &err)) {
            attn_cli_progress_end();
            *rc = cli_fail(&err);
            break;
        }
        if ((*rc = add_window(e, s, wid)))
            break;
        mine++;
        if (dist_rank() == 0) /* its own windows, scaled: the job's progress */
            attn_cli_progress(label, mine * step < n_win ? mine * step : n_win, n_win);
    }
    attn_cli_progress_end();
}

/* Every method in turn, until the end, an error or a signal. */
static int run_methods(Eval *e)
{
    DrrlError err;
    int rc = CLI_EXIT_OK;
    for (int mi = 0; mi < e->n_methods && rc == CLI_EXIT_OK && !e->interrupted; mi++) {
        Session *s = NULL;
        Row *row = &e->rows[mi];
        e->n_started = mi + 1;
        method_config(e, mi);
        e->cfg.no_guard = !e->cfg.measure; /* its columns come from measured rows only */
        if (session_open(attn_cli_model_dir(e->model), &e->cfg, (int)e->threads, &s, &err) !=
            DRRL_OK)
            return cli_fail(&err);
        if (dist_rank() == 0)
            attn_cli_warn(s);
        /* --csv onto an input just read (the model, a policy) is refused now,
         * not after the evaluation (one process; under MPI at the commit). */
        DrrlError oerr;
        if (dist_size() == 1 && e->csv &&
            fileio_out_check(e->csv, FILEIO_STDOUT | (e->force ? FILEIO_FORCE : 0), &oerr)) {
            session_free(s);
            return cli_fail(&oerr);
        }
        if (e->ablations && e->cfg.method.kind == METHOD_DRRL &&
            session_add_sink(s, (TraceSink){rank_sink_put, &e->cur}, &err) != DRRL_OK)
            rc = cli_fail(&err);
        else if (!e->ids)
            rc = tokenize(e, s);
        if (!rc) {
            size_t n_win = e->n_ids / (size_t)e->seq_len;
            if (e->windows && (size_t)e->windows < n_win)
                n_win = (size_t)e->windows;
            rc = start_row(e, row, n_win);
        }
        if (rc) {
            session_free(s);
            return rc;
        }
        run_windows(e, s, row, &rc);
        session_free(s);
        int any_int = 0; /* every rank stops, or goes on, together */
        rc = gather_windows(row, e->pack, e->n_pack, rc, e->interrupted, e->cfg.measure,
                            &any_int);
        e->interrupted = any_int;
    }
    return rc;
}

static void free_rows(Row *rows, int from, int to)
{
    for (int k = from; k < to; k++)
        free(rows[k].win_nll), free(rows[k].win_cnt), free(rows[k].win_bytes),
            free(rows[k].ratios);
}

/* Paired bootstrap CIs against the first exact row (its index, or -1), and
 * every row's median bound ratio; frees the per-window arrays. */
static int finish_rows(Eval *e, int *ref_out)
{
    DrrlError err;
    Row *rows = e->rows;
    int ref = -1, rc = 0;
    for (int mi = 0; mi < e->n_methods && ref < 0; mi++)
        if (e->ms[mi].kind == METHOD_FULL)
            ref = mi;
    for (int mi = 0; ref >= 0 && mi < e->n_methods; mi++) {
        Row *w = &rows[mi], *x = &rows[ref];
        if (mi == ref || w->n_win != x->n_win)
            continue;
        uint64_t seed = BOOTSTRAP_DEFAULT_SEED + e->cfg.seed;
        if (bootstrap_paired(w->win_nll, x->win_nll, w->win_cnt, w->n_win, (int)e->n_boot, 0.95,
                             seed, &w->dloss, &err) != DRRL_OK ||
            bootstrap_paired(w->win_nll, x->win_nll, w->win_bytes, w->n_win, (int)e->n_boot,
                             0.95, seed, &w->dbpb, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        w->has_ci = 1;
    }
    for (int mi = 0; mi < e->n_methods; mi++)
        rows[mi].bmed = attn_core_median(rows[mi].ratios, rows[mi].n_ratios);
    free_rows(rows, 0, e->n_methods);
    *ref_out = ref;
    return rc;
}

static void print_table(const Row *rows, int n, int ref)
{
    int mw = 16;
    for (int mi = 0; mi < n; mi++)
        if ((int)strlen(rows[mi].method) > mw)
            mw = (int)strlen(rows[mi].method);
    printf("%-*s %8s %9s %8s %10s %9s %9s %9s %6s %9s", mw, "method", "tokens", "loss", "bpb",
           "ppl", "attn-sav", "model-sav", "fidelity", "viol", "wall-s");
    if (ref >= 0)
        printf(" %s", "dloss [95% CI]");
    printf("\n");
    for (int mi = 0; mi < n; mi++) {
        const Row *w = &rows[mi];
        double loss = w->nll / w->nll_n, bpb = w->nll / log(2.0) / w->bytes;
        double fid = w->fid_rows > 0 ? w->fid_sum / w->fid_rows : NAN;
        printf("%-*s %8.0f %9.5f %8.5f %10.4f %8.2f%% %8.2f%% ", mw, w->method, w->tokens, loss,
               bpb, exp(loss), 100.0 * flops_savings(w->afx, w->afe),
               100.0 * flops_savings(w->fx, w->fe));
        if (w->measured)
            printf("%9.6f %6lld", fid, (long long)w->viol);
        else
            printf("%9s %6s", "-", "-");
        printf(" %9.3f", w->wall);
        if (w->has_ci)
            printf(" %+.5f [%+.5f, %+.5f]", w->dloss.estimate, w->dloss.lo, w->dloss.hi);
        printf("\n");
    }
}

static int write_csv(FileOut *co, const Row *rows, int n, long seq_len)
{
    FILE *f = fileio_out_stream(co);
    fprintf(f, "method,seq_len,tokens,loss,bpb,ppl,flops_exact,flops_executed,savings,"
               "attn_flops_exact,attn_flops_executed,attn_savings,fidelity,"
               "bound_violations,wall_s,loss_diff,loss_diff_lo,loss_diff_hi,bpb_diff,"
               "bpb_diff_lo,bpb_diff_hi,mean_rank,bound_vacuous,guard_exceeded,"
               "bound_ratio_median,lowrank_rows,guard_allowed_rows,guard_forced_rows\n");
    for (int mi = 0; mi < n; mi++) {
        const Row *w = &rows[mi];
        double loss = w->nll / w->nll_n;
        fprintf(f, "%s,%ld,%.0f,%.9g,%.9g,%.9g,%.17g,%.17g,%.9g,%.17g,%.17g,%.9g,", w->method,
                seq_len, w->tokens, loss, w->nll / log(2.0) / w->bytes, exp(loss), w->fx, w->fe,
                flops_savings(w->fx, w->fe), w->afx, w->afe, flops_savings(w->afx, w->afe));
        if (w->measured && w->fid_rows > 0)
            fprintf(f, "%.9g,%lld,", w->fid_sum / w->fid_rows, (long long)w->viol);
        else
            fprintf(f, ",,");
        fprintf(f, "%.6f,", w->wall);
        if (w->has_ci)
            fprintf(f, "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,", w->dloss.estimate, w->dloss.lo,
                    w->dloss.hi, w->dbpb.estimate, w->dbpb.lo, w->dbpb.hi);
        else
            fprintf(f, ",,,,,,");
        if (w->rank_n > 0)
            fprintf(f, "%.4f,", w->rank_sum / w->rank_n);
        else
            fprintf(f, ",");
        write_guard(f, w);
    }
    return cli_out_commit(co);
}

/* Run, then report what finished: the table, --csv, the interruption. */
static int run_and_report(Eval *e, FileOut *co)
{
    signals_catch(); /* Ctrl-C: stop, keep the methods finished */
    int rc = run_methods(e), ref;
    free(e->pack);
    free(e->text);
    free(e->ids);
    signals_restore();
    if (rc != CLI_EXIT_OK || dist_rank() != 0) { /* rank 0 alone reports */
        free_rows(e->rows, 0, e->n_methods);
        fileio_out_abort(co);
        return rc;
    }
    int n_asked = e->n_methods;
    if (e->interrupted) { /* only the methods finished: the one stopped is dropped */
        free_rows(e->rows, e->n_started - 1, e->n_methods);
        e->n_methods = e->n_started - 1;
    }
    if ((rc = finish_rows(e, &ref))) {
        fileio_out_abort(co);
        return rc;
    }
    print_table(e->rows, e->n_methods, ref);
    if (co && (rc = write_csv(co, e->rows, e->n_methods, e->seq_len)))
        return rc;
    if (e->interrupted) {
        fflush(stdout);
        return cli_error(DRRL_E_INTERRUPTED,
                         "eval: interrupted by %s; %d of %d methods finished%s", signals_name(),
                         e->n_methods, n_asked, e->csv ? ", their rows written" : "");
    }
    if (fflush(stdout) != 0)
        return cli_error(DRRL_E_IO, "standard output: write error");
    return CLI_EXIT_OK;
}

int cmd_eval(int argc, char **argv)
{
    static Eval e;
    static Row rows_buf[64];
    memset(&e, 0, sizeof e);
    memset(rows_buf, 0, sizeof rows_buf);
    e.rows = rows_buf, e.n_boot = BOOTSTRAP_DEFAULT_B;
    attn_core_config_default(&e.cfg);
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&e.model),
        CLI_STR("data", &e.data),
        CLI_LONG("seq-len", &e.seq_len, 2, 1L << 30),
        CLI_STR("methods", &e.methods),
        CLI_STR("csv", &e.csv),
        CLI_FORCE_OPT(&e.force),
        CLI_LONG("windows", &e.windows, 1, 1L << 30),
        CLI_THREADS_OPT(&e.threads),
        CLI_FLAG("ablations", &e.ablations),
        CLI_STR("beta0-policy", &e.beta0),
        CLI_LONG("boot", &e.n_boot, 1, 1000000),
        CLI_FN("method", 1, reject_method, NULL, 0),
        ATTN_CLI_OPTS(&e.cfg),
        CLI_END,
    };
    int r = cli_parse("eval", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    if (!e.data || !e.seq_len || !e.methods)
        return cli_usage_error("eval",
                               "--data FILE, --seq-len N and --methods LIST are required");
    if ((r = parse_methods(&e)) || (e.ablations && (r = setup_ablations(&e))) ||
        (r = dist_refuse_stdin("eval", "--data", e.data)) ||
        (r = cli_read_file(e.data, &e.text, &e.tlen)))
        return r;
    FileOut *co = NULL; /* --csv, checked now; the rule is checked again at commit */
    r = 0;
    if (e.csv && dist_rank() == 0) /* rank 0 alone writes */
        r = cli_out_open(e.csv, e.force, &co);
    DrrlError berr;
    int32_t r32 = r;
    if (dist_bcast(&r32, sizeof r32, &berr) != DRRL_OK)
        r32 = r ? r : cli_fail(&berr);
    if ((r = r32)) {
        fileio_out_abort(co);
        free(e.text);
        return r;
    }
    return run_and_report(&e, co);
}
