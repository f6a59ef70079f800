/* cmd_run.c: `drrl run`: one forward pass over N tokens with an attention
 * method, then a summary (and --summary-json). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/flops.h"
#include "cli/attn_cli.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "run/session.h"
#include "cli/signals.h"
#include "cli/trace_cli.h"

static const char usage[] =
    "usage: drrl run [--model DIR] (--text FILE | --prompt S | --ids-file F) [--seq-len N]\n"
    "                [--offset BYTES] [--method SPEC] [--segment T] [--seed N]\n"
    "                [--summary-json F] [options]\n"
    "\n"
    "Run the model over N tokens with an attention method and print a summary:\n"
    "tokens, exact and executed FLOPs (attention core and whole model), savings,\n"
    "mean fidelity (cosine of head outputs against exact attention), bound\n"
    "violations (must be 0), loss and wall time.\n"
    "\n"
    "  --model DIR       model directory (default: the data directory's model)\n"
    "  --text FILE       input text ('-' = standard input)\n"
    "  --prompt S        input string\n"
    "  --ids-file F      token ids, separated by whitespace or commas\n"
    "  --seq-len N       use the first N tokens (default: all)\n"
    "  --offset BYTES    start reading --text at this byte offset\n" ATTN_CLI_USAGE
    "  --summary-json F  also write the summary as a JSON object to F ('-' = "
    "stdout)\n" TRACE_CLI_USAGE
    "  --threads N       attention worker threads (default: as OpenBLAS)\n"
    "  -h, --help        show this help\n";

/* A number for JSON: non-finite values become null. */
static void json_num(FILE *f, const char *key, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "  \"%s\": %.17g%s\n", key, v, last ? "" : ",");
    else
        fprintf(f, "  \"%s\": null%s\n", key, last ? "" : ",");
}

static int write_json(FileOut *o, const AttnSummary *s)
{
    FILE *f = fileio_out_stream(o);
    fprintf(f, "{\n  \"tokens\": %lld,\n", (long long)s->tokens);
    json_num(f, "flops_exact", s->flops_exact, 0);
    json_num(f, "flops_executed", s->flops_executed, 0);
    json_num(f, "attn_flops_exact", s->attn_flops_exact, 0);
    json_num(f, "attn_flops_executed", s->attn_flops_executed, 0);
    json_num(f, "savings", s->savings, 0);
    json_num(f, "attn_savings", s->attn_savings, 0);
    json_num(f, "fidelity", s->fidelity, 0);
    if (s->bound_violations >= 0)
        fprintf(f, "  \"bound_violations\": %lld,\n", (long long)s->bound_violations);
    else
        fprintf(f, "  \"bound_violations\": null,\n");
    fprintf(f, "  \"lowrank_rows\": %lld,\n", (long long)s->lowrank_rows);
    fprintf(f, "  \"guard_allowed_rows\": %lld,\n", (long long)s->guard_allowed_rows);
    fprintf(f, "  \"guard_forced_rows\": %lld,\n", (long long)s->guard_forced_rows);
    fprintf(f, "  \"guard_binds\": %s,\n", s->guard_binds ? "true" : "false");
    fprintf(f, "  \"guard_decisions\": %lld,\n", (long long)s->guard_decisions);
    fprintf(f, "  \"guard_raised\": %lld,\n", (long long)s->guard_raised);
    json_num(f, "guard_exceeded", s->guard_exceeded, 0);
    json_num(f, "bound_vacuous", s->bound_vacuous, 0);
    json_num(f, "bound_ratio_median", s->bound_ratio_median, 0);
    json_num(f, "eps", s->eps, 0);
    /* where the FLOPs went: {"category": [exact, executed], ...} (flops.h) */
    fprintf(f, "  \"flops_by_category\": {");
    for (FlopCat c = 0; c < FLOPS_CAT_COUNT; c++)
        fprintf(f, "%s\n    \"%s\": [%.17g, %.17g]", c ? "," : "", flops_cat_name(c),
                s->cat_exact[c], s->cat_executed[c]);
    fprintf(f, "\n  },\n");
    json_num(f, "wall_s", s->wall_s, 1);
    fprintf(f, "}\n");
    return cli_out_commit(o);
}

/* The proven output bound's and the guard's record over the measured
 * low-rank rows, in words. */
static void print_guard(const AttnSummary *s)
{
    if (s->guard_binds && s->guard_decisions > 0)
        printf("guard binds       %lld of %lld rank decisions raised to the smallest allowed "
               "rank\n",
               (long long)s->guard_raised, (long long)s->guard_decisions);
    if (s->lowrank_rows <= 0)
        return;
    printf("output bound      proven; vacuous (relative bound >= 1) on %.1f%% of %lld low-rank "
           "rows; median bound / measured error %.3g\n",
           100.0 * s->bound_vacuous, (long long)s->lowrank_rows, s->bound_ratio_median);
    printf("guard             estimate (not a bound), eps %.3g, %s: measured error > eps on ",
           s->eps, s->guard_binds ? "binding" : "not binding (an unguarded method)");
    if (s->guard_allowed_rows > 0)
        printf("%.1f%% of %lld low-rank rows at ranks it allowed", 100.0 * s->guard_exceeded,
               (long long)s->guard_allowed_rows);
    else
        printf("no low-rank row at a rank it allowed");
    printf("; %lld rows at ranks it flagged\n", (long long)s->guard_forced_rows);
}

/* The summary in words. */
static void print_summary(const Session *s, const AttnSummary *sum)
{
    printf("method            %s\n", attn_core_method(session_core((Session *)s)));
    printf("tokens            %lld\n", (long long)sum->tokens);
    printf("flops exact       %.6g (attention core %.6g)\n", sum->flops_exact,
           sum->attn_flops_exact);
    printf("flops executed    %.6g (attention core %.6g)\n", sum->flops_executed,
           sum->attn_flops_executed);
    printf("savings           whole model %.2f%%, attention core %.2f%%\n",
           100.0 * sum->savings, 100.0 * sum->attn_savings);
    if (isfinite(sum->fidelity))
        printf("fidelity          %.6f\n", sum->fidelity);
    else
        printf("fidelity          not measured (--no-exact)\n");
    if (sum->bound_violations >= 0)
        printf("bound violations  %lld\n", (long long)sum->bound_violations);
    else
        printf("bound violations  not checked (--no-exact)\n");
    print_guard(sum);
    if (isfinite(sum->loss))
        printf("loss              %.6f nats/token (perplexity %.4g)\n", sum->loss,
               exp(sum->loss));
    printf("wall time         %.3f s\n", sum->wall_s);
}

/* Run the session to the end in segment-sized calls, with a progress bar on
 * a terminal; Ctrl-C stops between chunks and keeps the trace. 0 or the exit
 * code, after printing one line. */
static int run_all(Session *s, TraceCli *tc, int32_t segment)
{
    size_t total = session_len(s), done = 0;
    /* progress steps of a few segments, whole layer-major calls */
    size_t step = session_chunk(s);
    while (step < (size_t)segment * 4)
        step += session_chunk(s);
    DrrlError err;
    int r = 0;
    signals_catch();
    while (session_pos(s) < total) {
        if (signals_caught()) {
            attn_cli_progress_end();
            r = trace_cli_interrupted(tc, "run");
            break;
        }
        if (session_advance(s, step, &done, &err) != DRRL_OK) {
            attn_cli_progress_end();
            trace_cli_finish(tc, 1); /* the rows so far stay a valid trace */
            r = cli_fail(&err);
            break;
        }
        attn_cli_progress("run", session_pos(s), total);
    }
    attn_cli_progress_end();
    signals_restore();
    return r ? r : trace_cli_finish(tc, 0);
}

int cmd_run(int argc, char **argv)
{
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    const char *model = NULL, *json = NULL;
    CliText in = {0};
    long threads = 0;
    TraceCli tc = {0};
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&model),
        CLI_TEXT_OPTS(&in),
        CLI_STR("summary-json", &json),
        CLI_THREADS_OPT(&threads),
        ATTN_CLI_OPTS(&cfg),
        TRACE_CLI_OPTS(&tc),
        CLI_END,
    };
    int r = cli_parse("run", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    if (!!in.text + !!in.prompt + !!in.ids_file != 1)
        return cli_usage_error("run",
                               "give exactly one of --text FILE, --prompt S, --ids-file F");
    /* --no-exact and no trace: nothing reads the guard's estimate unless the
     * method decides by it */
    cfg.no_guard = !cfg.measure && !tc.out;
    Session *s;
    DrrlError err;
    if (session_open(attn_cli_model_dir(model), &cfg, (int)threads, &s, &err) != DRRL_OK)
        return cli_fail(&err);
    attn_cli_warn(s);
    FileOut *jo = NULL;       /* opened after the inputs are read: never one of them */
    if (getenv("DRRL_CHUNK")) /* tuning: segments per layer-major call (session.h) */
        session_set_chunk(s, (size_t)strtoul(getenv("DRRL_CHUNK"), NULL, 10));
    if ((r = attn_cli_set_input("run", s, &in)) ||
        (json && (r = cli_out_open(json, tc.flags & TRACE_CSV_FORCE, &jo))) ||
        (r = trace_cli_start(&tc, "run", s, &cfg)) || (r = run_all(s, &tc, cfg.segment))) {
        fileio_out_abort(jo);
        session_free(s);
        return r;
    }
    if (getenv("DRRL_POOL_STATS")) { /* tuning: the forward's stages (forward.h) */
        ForwardPoolStats ps;
        session_pool_stats(s, &ps);
        fprintf(stderr, "pool stages %llu, %llu of them on several threads\n",
                (unsigned long long)ps.stages, (unsigned long long)ps.meets);
        fprintf(stderr,
                "pool calls  %6llu forward calls, %8.4f s inside them, %8.4f s of it in the "
                "hook's call and layer set-up (its stages included)\n",
                (unsigned long long)ps.calls, ps.call_s, ps.hook_s);
        static const char *const kn[FORWARD_STAGE_KINDS] = {"linear", "rows", "attention",
                                                            "hook"};
        for (int k = 0; k < FORWARD_STAGE_KINDS; k++)
            if (ps.kind_stages[k])
                fprintf(stderr,
                        "pool %-9s %6llu stages, %8.4f s on several threads, threads busy "
                        "%3.0f%% of it\n",
                        kn[k], (unsigned long long)ps.kind_stages[k], ps.kind_s[k],
                        ps.kind_slot_s[k] > 0.0 ? 100.0 * ps.kind_busy_s[k] / ps.kind_slot_s[k]
                                                : 0.0);
    }
    AttnSummary sum;
    attn_cli_summary(s, &sum);
    if (!json || strcmp(json, "-") != 0)
        print_summary(s, &sum);
    session_free(s);
    if (jo && (r = write_json(jo, &sum)))
        return r;
    if (fflush(stdout) != 0)
        return cli_error(DRRL_E_IO, "standard output: write error");
    return CLI_EXIT_OK;
}
