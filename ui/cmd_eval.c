/* cmd_eval.c: `drrl eval`: language-model quality and cost of attention
 * methods over consecutive windows of a text. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_cli.h"
#include "cli.h"
#include "commands.h"
#include "session.h"

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
    "  --csv F           write the results as CSV to F ('-' = stdout)\n"
    "  --segment T, --seed N, --rank-min R, --rank-step S, --eps E, --rot-tol X,\n"
    "  --no-exact        as for drrl run (--method is replaced by --methods)\n"
    "  --threads N       attention worker threads\n"
    "  -h, --help        show this help\n";

typedef struct Row {
    char method[METHOD_SPEC_MAX];
    double tokens, nll, nll_n, bytes;
    double fe, fx, afe, afx, fid_sum, fid_rows, wall;
    int64_t viol;
    int measured;
} Row;

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},   {"data", required_argument, 0, 'd'},
        {"seq-len", required_argument, 0, 'n'}, {"methods", required_argument, 0, 'M'},
        {"csv", required_argument, 0, 'c'},     {"windows", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        ATTN_CLI_LONGOPTS,                      {0, 0, 0, 0},
    };
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    const char *model = NULL, *data = NULL, *methods = NULL, *csv = NULL;
    long seq_len = 0, windows = 0, threads = 0;
    int c, r;
    while ((c = cli_getopt("eval", argc, argv, "h", longopts)) != -1) {
        if (c == ATTN_CLI_OPT_METHOD)
            return cli_usage_error("eval", "use --methods LIST");
        if ((r = attn_cli_option("eval", c, optarg, &cfg)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'M': methods = optarg; break;
        case 'c': csv = optarg; break;
        case 'n':
            if (cli_parse_long("eval", "--seq-len", optarg, 2, 1L << 30, &seq_len))
                return CLI_EXIT_USAGE;
            break;
        case 'w':
            if (cli_parse_long("eval", "--windows", optarg, 1, 1L << 30, &windows))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_long("eval", "--threads", optarg, 1, 256, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 'h': cli_print_usage(usage); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!data || !seq_len || !methods)
        return cli_usage_error("eval", "--data FILE, --seq-len N and --methods LIST are required");
    /* parse every method first: a bad one is a usage error before any work */
    Method ms[64];
    int n_methods = 0;
    DrrlError err;
    {
        char *list = strdup(methods), *save = NULL;
        if (!list)
            return cli_error(CLI_EXIT_FAIL, "out of memory");
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n_methods == 64) {
                free(list);
                return cli_usage_error("eval", "--methods: at most 64 methods");
            }
            if (method_parse(tok, &ms[n_methods], &err) != DRRL_OK) {
                free(list);
                return cli_usage_error("eval", "%s", err.msg);
            }
            attn_cli_resolve_method(&ms[n_methods]);
            n_methods++;
        }
        free(list);
        if (!n_methods)
            return cli_usage_error("eval", "--methods: no method given");
    }
    char *text;
    size_t tlen;
    if ((r = attn_cli_read_file(data, &text, &tlen)))
        return r;
    Row *rows = calloc((size_t)n_methods, sizeof *rows);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = CLI_EXIT_OK;
    Session *s = NULL;
    for (int mi = 0; mi < n_methods && rc == CLI_EXIT_OK; mi++) {
        cfg.method = ms[mi];
        if (session_open(attn_cli_model_dir(model), &cfg, (int)threads, &s, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        attn_cli_warn(s);
        if (!ids) {
            if (!session_tokenizer(s)) {
                rc = cli_error(CLI_EXIT_USAGE, "%s: the model has no tokenizer",
                               attn_cli_model_dir(model));
                break;
            }
            if (tokenizer_encode(session_tokenizer(s), text, tlen, &ids, &n_ids, &err)) {
                rc = cli_fail(&err);
                break;
            }
            if (n_ids < (size_t)seq_len) {
                rc = cli_error(CLI_EXIT_USAGE, "%s: %zu tokens, fewer than one window of %ld",
                               data, n_ids, seq_len);
                break;
            }
        }
        size_t n_win = n_ids / (size_t)seq_len;
        if (windows && (size_t)windows < n_win)
            n_win = (size_t)windows;
        Row *row = &rows[mi];
        snprintf(row->method, sizeof row->method, "%s", ms[mi].spec);
        char label[64];
        snprintf(label, sizeof label, "%s", ms[mi].spec);
        for (size_t w = 0; w < n_win && rc == CLI_EXIT_OK; w++) {
            const int32_t *wid = ids + w * (size_t)seq_len;
            if (session_set_ids(s, wid, (size_t)seq_len, &err) ||
                session_advance(s, (size_t)seq_len, NULL, &err)) {
                attn_cli_progress_end();
                rc = cli_fail(&err);
                break;
            }
            AttnSummary sum;
            attn_cli_summary(s, &sum);
            row->tokens += (double)sum.tokens;
            row->nll += session_nll_sum(s);
            row->nll_n += (double)session_nll_count(s);
            for (size_t t = 1; t < (size_t)seq_len; t++) {
                size_t bl = 0;
                tokenizer_token_bytes(session_tokenizer(s), wid[t], &bl);
                row->bytes += (double)bl;
            }
            row->fe += sum.flops_executed, row->fx += sum.flops_exact;
            row->afe += sum.attn_flops_executed, row->afx += sum.attn_flops_exact;
            const AttnCoreStats *st = attn_core_stats(session_core(s));
            row->fid_sum += st->fidelity_sum, row->fid_rows += (double)st->rows;
            row->viol += st->violations;
            row->measured = cfg.measure;
            row->wall += sum.wall_s;
            attn_cli_progress(label, w + 1, n_win);
        }
        attn_cli_progress_end();
        session_free(s);
        s = NULL;
    }
    session_free(s);
    free(text);
    free(ids);
    if (rc != CLI_EXIT_OK) {
        free(rows);
        return rc;
    }
    printf("%-16s %8s %9s %8s %10s %9s %9s %9s %6s %9s\n", "method", "tokens", "loss", "bpb",
           "ppl", "attn-sav", "savings", "fidelity", "viol", "wall-s");
    for (int mi = 0; mi < n_methods; mi++) {
        Row *w = &rows[mi];
        double loss = w->nll / w->nll_n, bpb = w->nll / log(2.0) / w->bytes;
        double fid = w->fid_rows > 0 ? w->fid_sum / w->fid_rows : NAN;
        printf("%-16s %8.0f %9.5f %8.5f %10.4f %8.2f%% %8.2f%% ", w->method, w->tokens, loss,
               bpb, exp(loss), 100.0 * (1.0 - w->afe / w->afx), 100.0 * (1.0 - w->fe / w->fx));
        if (w->measured)
            printf("%9.6f %6lld", fid, (long long)w->viol);
        else
            printf("%9s %6s", "-", "-");
        printf(" %9.3f\n", w->wall);
    }
    if (csv) {
        FILE *f = strcmp(csv, "-") == 0 ? stdout : fopen(csv, "w");
        if (!f) {
            free(rows);
            return cli_error(CLI_EXIT_USAGE, "%s: cannot create: %s", csv, strerror(errno));
        }
        fprintf(f, "method,seq_len,tokens,loss,bpb,ppl,flops_exact,flops_executed,savings,"
                   "attn_flops_exact,attn_flops_executed,attn_savings,fidelity,"
                   "bound_violations,wall_s\n");
        for (int mi = 0; mi < n_methods; mi++) {
            Row *w = &rows[mi];
            double loss = w->nll / w->nll_n;
            fprintf(f, "%s,%ld,%.0f,%.9g,%.9g,%.9g,%.17g,%.17g,%.9g,%.17g,%.17g,%.9g,", w->method,
                    seq_len, w->tokens, loss, w->nll / log(2.0) / w->bytes, exp(loss), w->fx,
                    w->fe, 1.0 - w->fe / w->fx, w->afx, w->afe, 1.0 - w->afe / w->afx);
            if (w->measured && w->fid_rows > 0)
                fprintf(f, "%.9g,%lld,", w->fid_sum / w->fid_rows, (long long)w->viol);
            else
                fprintf(f, ",,");
            fprintf(f, "%.6f\n", w->wall);
        }
        int bad = ferror(f);
        bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
        if (bad) {
            free(rows);
            return cli_error(CLI_EXIT_FAIL, "%s: write error", csv);
        }
    }
    free(rows);
    if (fflush(stdout) != 0)
        return cli_error(CLI_EXIT_FAIL, "standard output: write error");
    return CLI_EXIT_OK;
}
