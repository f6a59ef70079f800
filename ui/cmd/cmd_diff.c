/* cmd_diff.c: `drrl diff A B`: compare two traces aligned by (step, layer,
 * head); exit 0 when identical, 1 when they differ, 2 on trouble (diff(1)). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tui/app.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "tui/diff.h"
#include "cli/signals.h"
#include "trace/trace_csv.h"
#include "trace/trace_diff.h"
#include "trace/trace_store.h"
#include "tui/tui.h"

static const char usage[] =
    "usage: drrl diff [--quiet] [--timing] [--tui [TUI OPTIONS]] A.csv B.csv\n"
    "\n"
    "Compare two traces row by row, aligned by step, layer and head: their\n"
    "decisions (ranks, masks) and figures (errors, bounds, FLOPs...), not labels:\n"
    "the method and threshold are noted once when they differ. Print the first\n"
    "divergence (the first differing decision, in step/layer/head order, or a\n"
    "row in one trace only, with both values), the first differing figure, the\n"
    "first differing sidecar key, and per layer: rows that differ, rank changes\n"
    "and mean ranks, mean measured error, and executed FLOPs.\n"
    "\n"
    "Exit status, as diff(1): 0 the traces are identical, 1 they differ,\n"
    "2 trouble (a missing or malformed trace, a bad flag).\n"
    "\n"
    "  -q, --quiet    print nothing; only the exit status tells\n"
    "      --timing   compare wall_ns too (measured time differs between any two\n"
    "                 runs, so it is ignored by default)\n"
    "      --tui      show the differences in the explorer instead: a layers x\n"
    "                 heads grid of rank B-A at each token, the selected head's\n"
    "                 rank, error and FLOPs in both (keys as in drrl replay, plus\n"
    "                 f first divergence, d/D next/previous, v ranks or deltas;\n"
    "                 exit status 0 on q, as replay)\n" TUI_USAGE
    "  -h, --help     show this help\n";

/* Any failure is exit 2 here: 1 means "the traces differ". */
static int fail2(const DrrlError *err)
{
    cli_fail(err);
    return CLI_EXIT_USAGE;
}

static double mean(double sum, size_t n)
{
    return n ? sum / (double)n : NAN;
}

static void print_diff(const char *pa, const char *pb, const TraceStore *a, const TraceStore *b,
                       const TraceDiff *d)
{
    printf("A: %s (%zu rows, %lld steps)\n", pa, d->rows_a, (long long)trace_store_n_steps(a));
    printf("B: %s (%zu rows, %lld steps)\n", pb, d->rows_b, (long long)trace_store_n_steps(b));
    if (d->identical) {
        printf("identical\n");
        return;
    }
    if (d->meta_key[0])
        printf("sidecar: %s: A %s, B %s\n", d->meta_key, d->meta_a, d->meta_b);
    if (d->meta_hash_algos_differ)
        printf("note: the model hashes were made by different algorithms (a trace written "
               "before drrl named its hash holds fnv1a64): they do not tell whether the "
               "weights differ; `drrl run` again to compare\n");
    char note[320];
    trace_diff_note(d, note, sizeof note);
    if (note[0])
        printf("note: %s: decisions may differ for that reason alone\n", note);
    if (d->has_first) {
        printf("first divergence (first differing decision): step %lld (token \"%s\"), "
               "layer %d, head %d: ",
               (long long)d->first_step, d->first_token, (int)d->first_layer,
               (int)d->first_head);
        if (d->first_column < 0)
            printf("row only in %s\n", strcmp(d->first_a, "(no row)") == 0 ? "B" : "A");
        else
            printf("%s: A %s, B %s\n", trace_csv_columns[d->first_column], d->first_a,
                   d->first_b);
    } else {
        printf("decisions: identical (every rank and mask)\n");
    }
    if (d->has_figure)
        printf("first differing figure: step %lld, layer %d, head %d: %s: A %s, B %s\n",
               (long long)d->fig_step, (int)d->fig_layer, (int)d->fig_head,
               trace_csv_columns[d->fig_column], d->fig_a, d->fig_b);
    else if (!d->has_first)
        printf("figures: identical\n");
    printf("rows: %zu aligned, %zu differ, %zu only in A, %zu only in B\n", d->aligned,
           d->differing, d->only_a, d->only_b);
    if (d->aligned == 0)
        return;
    printf("\n%5s %8s %8s %8s %8s %8s %8s %11s %11s %11s %13s %13s %8s\n", "layer", "aligned",
           "differ", "rank_chg", "rank_A", "rank_B", "d_rank", "err_A", "err_B", "max|d_err|",
           "flops_A", "flops_B", "d_flops");
    for (int32_t l = 0; l < d->n_layers; l++) {
        const TraceDiffLayer *L = &d->layers[l];
        if (L->aligned == 0)
            continue;
        double ra = mean(L->rank_sum_a, L->aligned), rb = mean(L->rank_sum_b, L->aligned);
        double dfl = L->flops_a != 0 ? (L->flops_b - L->flops_a) / L->flops_a * 100 : NAN;
        printf("%5d %8zu %8zu %8zu %8.3f %8.3f %+8.3f %11.4g %11.4g %11.4g %13.6g %13.6g "
               "%+7.2f%%\n",
               (int)l, L->aligned, L->differing, L->rank_changed, ra, rb, rb - ra,
               mean(L->err_sum_a, L->err_n_a), mean(L->err_sum_b, L->err_n_b), L->max_err_delta,
               L->flops_a, L->flops_b, dfl);
    }
}

/* The explorer on A with B attached (ui/tui/diff.h). */
static int diff_tui(const char *pa, const char *pb, TraceStore *a, const TraceStore *b,
                    const TuiOptions *to)
{
    if (trace_store_n_steps(a) == 0)
        return cli_error(DRRL_E_INPUT, "%s: the trace has no rows", pa);
    const TraceMeta *ma = trace_store_meta(a), *mb = trace_store_meta(b);
    char method[160];
    snprintf(method, sizeof method, "%s vs %s", ma && ma->method ? ma->method : "?",
             mb && mb->method ? mb->method : "?");
    AppDiff d;
    App app;
    app_init(&app, a, NULL, "A vs B", method, "diff");
    if (app_sync(&app) != 0 || diff_init(&d, a, b, pa, pb) != 0) {
        app_done(&app);
        diff_done(&d);
        return cli_error(DRRL_E_NOMEM, "diff: out of memory");
    }
    app.diff = &d;
    int rc = tui_run(&app, to, "diff");
    app_done(&app);
    diff_done(&d);
    if (rc == TUI_INTERRUPTED)
        rc = cli_error(DRRL_E_INTERRUPTED, "diff: interrupted (%s)", signals_name());
    signals_restore();
    return rc;
}

int cmd_diff(int argc, char **argv)
{
    TuiOptions to = {0};
    int tui = 0, quiet = 0, first;
    unsigned flags = 0;
    const CliOpt opts[] = {
        CLI_FLAG_SHORT("quiet", 'q', &quiet),
        CLI_BITS("timing", &flags, TRACE_DIFF_TIMING),
        CLI_FLAG("tui", &tui),
        TUI_OPTS(&to),
        CLI_END,
    };
    int r = cli_parse("diff", usage, opts, argc, argv, &first);
    if (r != CLI_GO)
        return r;
    if (argc - first != 2)
        return cli_usage_error("diff", "expected two traces (A.csv B.csv)");
    const char *pa = argv[first], *pb = argv[first + 1];
    DrrlError err;
    TraceStore *a = NULL, *b = NULL;
    if (trace_csv_load(pa, &a, &err) != DRRL_OK)
        return fail2(&err);
    if (trace_csv_load(pb, &b, &err) != DRRL_OK) {
        trace_store_free(a);
        return fail2(&err);
    }
    if (tui || to.keys || to.dump_path || to.cols) {
        int rc = diff_tui(pa, pb, a, b, &to);
        trace_store_free(a);
        trace_store_free(b);
        return rc;
    }
    TraceDiff d;
    int rc;
    if (trace_diff_compute(a, b, flags, &d, &err) != DRRL_OK) {
        rc = fail2(&err);
    } else {
        if (!quiet)
            print_diff(pa, pb, a, b, &d);
        rc = d.identical ? 0 : 1;
        /* diff's exit 1 means "they differ": trouble is 2, as in diff(1). */
        if (fflush(stdout) != 0)
            rc = cli_error(DRRL_E_USAGE, "diff: standard output: write error");
    }
    trace_diff_done(&d);
    trace_store_free(a);
    trace_store_free(b);
    return rc;
}
