/* cmd_run.c: `drrl run`: one forward pass over N tokens with an attention
 * method, then a summary (and --summary-json). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    json_num(f, "guard_exceeded", s->guard_exceeded, 0);
    json_num(f, "bound_vacuous", s->bound_vacuous, 0);
    json_num(f, "bound_ratio_median", s->bound_ratio_median, 0);
    json_num(f, "eps", s->eps, 0);
    json_num(f, "wall_s", s->wall_s, 1);
    fprintf(f, "}\n");
    return cli_out_commit(o);
}

/* The proven output bound's and the guard's record over the measured
 * low-rank rows, in words. */
static void print_guard(const AttnSummary *s)
{
    if (s->lowrank_rows <= 0)
        return;
    printf("output bound      proven; vacuous (relative bound >= 1) on %.1f%% of %lld low-rank "
           "rows; median bound / measured error %.3g\n",
           100.0 * s->bound_vacuous, (long long)s->lowrank_rows, s->bound_ratio_median);
    printf("guard             estimate (not a bound), eps %.3g: measured error > eps on ",
           s->eps);
    if (s->guard_allowed_rows > 0)
        printf("%.1f%% of %lld low-rank rows at ranks it allowed", 100.0 * s->guard_exceeded,
               (long long)s->guard_allowed_rows);
    else
        printf("no low-rank row at a rank it allowed");
    printf("; %lld rows at ranks it flagged\n", (long long)s->guard_forced_rows);
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"text", required_argument, 0, 'f'},
        {"prompt", required_argument, 0, 'p'},
        {"ids-file", required_argument, 0, 'i'},
        {"seq-len", required_argument, 0, 'n'},
        {"offset", required_argument, 0, 'o'},
        {"summary-json", required_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        ATTN_CLI_LONGOPTS,
        TRACE_CLI_LONGOPTS,
        {0, 0, 0, 0},
    };
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    const char *model = NULL, *text = NULL, *prompt = NULL, *idsf = NULL, *json = NULL;
    long seq_len = 0, offset = 0, threads = 0;
    int c, r;
    TraceCli tc = {0};
    while ((c = cli_getopt("run", argc, argv, "h", longopts)) != -1) {
        if (trace_cli_option(&tc, c))
            continue;
        if ((r = attn_cli_option("run", c, optarg, &cfg)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'f':
            text = optarg;
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'i':
            idsf = optarg;
            break;
        case 'j':
            json = optarg;
            break;
        case 'n':
            if (cli_parse_long("run", "--seq-len", optarg, 1, 1L << 30, &seq_len))
                return CLI_EXIT_USAGE;
            break;
        case 'o':
            if (cli_parse_long("run", "--offset", optarg, 0, 1L << 40, &offset))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_long("run", "--threads", optarg, 1, 256, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (!!text + !!prompt + !!idsf != 1)
        return cli_usage_error("run",
                               "give exactly one of --text FILE, --prompt S, --ids-file F");
    Session *s;
    DrrlError err;
    if (session_open(attn_cli_model_dir(model), &cfg, (int)threads, &s, &err) != DRRL_OK)
        return cli_fail(&err);
    attn_cli_warn(s);
    if ((r = attn_cli_set_input("run", s, text, prompt, idsf, offset, seq_len))) {
        session_free(s);
        return r;
    }
    FileOut *jo = NULL; /* opened after the inputs are read: never one of them */
    if ((json && (r = cli_out_open(json, tc.flags & TRACE_CSV_FORCE, &jo))) ||
        (r = trace_cli_start(&tc, "run", s, &cfg))) {
        fileio_out_abort(jo);
        session_free(s);
        return r;
    }
    signals_catch(); /* Ctrl-C: stop between chunks, keep the trace */
    /* Run in segment-sized calls, with a progress bar on a terminal. */
    size_t total = session_len(s), done = 0;
    while (session_pos(s) < total) {
        size_t chunk = (size_t)cfg.segment * 4;
        if (signals_caught()) {
            attn_cli_progress_end();
            r = trace_cli_interrupted(&tc, "run");
            fileio_out_abort(jo);
            signals_restore();
            session_free(s);
            return r;
        }
        if (session_advance(s, chunk, &done, &err) != DRRL_OK) {
            attn_cli_progress_end();
            trace_cli_finish(&tc, 1); /* the rows so far stay a valid trace */
            fileio_out_abort(jo);
            signals_restore();
            session_free(s);
            return cli_fail(&err);
        }
        attn_cli_progress("run", session_pos(s), total);
    }
    attn_cli_progress_end();
    signals_restore();
    if ((r = trace_cli_finish(&tc, 0))) {
        fileio_out_abort(jo);
        session_free(s);
        return r;
    }
    AttnSummary sum;
    attn_cli_summary(s, &sum);
    if (!json || strcmp(json, "-") != 0) {
        printf("method            %s\n", attn_core_method(session_core(s)));
        printf("tokens            %lld\n", (long long)sum.tokens);
        printf("flops exact       %.6g (attention core %.6g)\n", sum.flops_exact,
               sum.attn_flops_exact);
        printf("flops executed    %.6g (attention core %.6g)\n", sum.flops_executed,
               sum.attn_flops_executed);
        printf("savings           whole model %.2f%%, attention core %.2f%%\n",
               100.0 * sum.savings, 100.0 * sum.attn_savings);
        if (isfinite(sum.fidelity))
            printf("fidelity          %.6f\n", sum.fidelity);
        else
            printf("fidelity          not measured (--no-exact)\n");
        if (sum.bound_violations >= 0)
            printf("bound violations  %lld\n", (long long)sum.bound_violations);
        else
            printf("bound violations  not checked (--no-exact)\n");
        print_guard(&sum);
        if (isfinite(sum.loss))
            printf("loss              %.6f nats/token (perplexity %.4g)\n", sum.loss,
                   exp(sum.loss));
        printf("wall time         %.3f s\n", sum.wall_s);
    }
    session_free(s);
    if (jo && (r = write_json(jo, &sum)))
        return r;
    if (fflush(stdout) != 0)
        return cli_error(CLI_EXIT_FAIL, "standard output: write error");
    return CLI_EXIT_OK;
}
