/* cmd_explore.c: `drrl explore`: step a model through a text token by token
 * in the TUI, live. Each step runs one token through every layer (the
 * Session), its TraceRecords go to the in-memory store the views read and,
 * with --trace-out, to a CSV trace. `drrl` with no arguments runs this on
 * the data directory's model, text and (if present) policy. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tui/app.h"
#include "cli/attn_cli.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "tui/explore.h"
#include "run/session.h"
#include "cli/signals.h"
#include "trace/trace_csv.h"
#include "trace/trace_store.h"
#include "tui/tui.h"

static const char usage[] =
    "usage: drrl explore [--model DIR] [--text FILE | --prompt S | --ids-file F]\n"
    "                    [--method SPEC] [--segment T] [--trace-out F] [options]\n"
    "\n"
    "Step the model through a text token by token and watch each head's rank,\n"
    "spectrum, bounds, FLOP savings, policy and attention, live. Press ? inside\n"
    "for the keys. With no arguments: the data directory's model and text, and\n"
    "the drrl method with its policy when the data directory has one; with\n"
    "--model and no --method, energy:0.95.\n"
    "\n"
    "  --model DIR       model directory (default: DATA/model)\n"
    "  --text FILE       input text (default: DATA/texts/*.txt, else\n"
    "                    DATA/brown/test.txt)\n"
    "  --prompt S        input string\n"
    "  --ids-file F      token ids, separated by whitespace or commas\n"
    "  --seq-len N       at most N tokens (default: the model's context, <= 2048)\n"
    "  --offset BYTES    start reading --text at this byte offset\n" ATTN_CLI_METHOD_USAGE(
        "drrl with DATA's policy; with --model,\n"
        "                    energy:0.95") ATTN_CLI_OTHER_USAGE
    "  --trace-out F     also record the run as a CSV trace (F and F.json); what\n"
    "                    was computed is kept on quit, error or Ctrl-C\n"
    "  --force           replace existing output files (trace, screen dump)\n"
    "  --threads N       attention worker threads (default: as OpenBLAS)\n"
    "  --token N         compute the first N tokens and start at token N\n" TUI_USAGE
    "  -h, --help        show this help\n";

int cmd_explore(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"text", required_argument, 0, 'f'},
        {"prompt", required_argument, 0, 'p'},
        {"ids-file", required_argument, 0, 'i'},
        {"seq-len", required_argument, 0, 'n'},
        {"offset", required_argument, 0, 'o'},
        {"trace-out", required_argument, 0, 'T'},
        {"force", no_argument, 0, 'F'},
        {"threads", required_argument, 0, 't'},
        {"token", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        ATTN_CLI_LONGOPTS,
        TUI_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    ExploreOptions eo = {0};
    TuiOptions to = {0};
    long threads = 0, start = 1;
    bool method_given = false;
    int c, r;
    while ((c = cli_getopt("explore", argc, argv, "h", longopts)) != -1) {
        if (c == ATTN_CLI_OPT_METHOD)
            method_given = true;
        if ((r = attn_cli_option("explore", c, optarg, &cfg)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if ((r = tui_option("explore", c, optarg, &to)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        switch (c) {
        case 'm':
            eo.model_dir = optarg;
            break;
        case 'f':
            eo.text = optarg;
            break;
        case 'p':
            eo.prompt = optarg;
            break;
        case 'i':
            eo.ids_file = optarg;
            break;
        case 'T':
            eo.trace_out = optarg;
            break;
        case 'F':
            eo.force = true;
            to.force = true;
            break;
        case 'n':
            if (cli_parse_long("explore", "--seq-len", optarg, 1, 1L << 30, &eo.seq_len))
                return CLI_EXIT_USAGE;
            break;
        case 'o':
            if (cli_parse_long("explore", "--offset", optarg, 0, 1L << 40, &eo.offset))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_long("explore", "--threads", optarg, 1, 256, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_long("explore", "--token", optarg, 1, 1L << 30, &start))
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
        return cli_usage_error("explore", "unexpected argument '%s'", argv[optind]);
    if (!!eo.text + !!eo.prompt + !!eo.ids_file > 1)
        return cli_usage_error("explore", "give at most one of --text, --prompt, --ids-file");
    char *def_text = NULL;
    if (!eo.text && !eo.prompt && !eo.ids_file) {
        def_text = explore_default_text();
        if (!def_text)
            return cli_error(
                DRRL_E_USAGE,
                "explore: no input: give --text FILE or --prompt S (no %s/texts/*.txt "
                "or %s/brown/test.txt; `xz -dk DATA/brown/*.xz` makes the latter)",
                cli_data_dir(), cli_data_dir());
        eo.text = def_text;
    }
    if (!method_given) {
        /* the shipped policy belongs to the shipped model */
        const char *spec = eo.model_dir ? "energy:0.95" : explore_default_method();
        if (attn_cli_option("explore", ATTN_CLI_OPT_METHOD, spec, &cfg) < 0) {
            free(def_text);
            return CLI_EXIT_USAGE;
        }
    }
    eo.cfg = cfg;
    eo.threads = (int)threads;

    Explore *ex = NULL;
    int rc = explore_open(&ex, &eo, "explore");
    free(def_text);
    if (rc != 0)
        return rc;
    App *app = explore_app(ex);
    DrrlError err;
    drrl_error_clear(&err);
    signals_catch();
    /* --token N: a long jump, computed by the loop with its progress shown
     * (never a blank screen), cancelled by Esc or Ctrl-C */
    if (start > 1)
        app_go_to(app, start - 1);
    rc = tui_run(app, &to, "explore");
    size_t rows = trace_store_n_rows(app->store);
    /* the trace keeps what was computed, whatever ended the run */
    int rc2 = explore_close(ex, rc != 0);
    if (rc == TUI_INTERRUPTED) {
        if (eo.trace_out && rc2 == 0)
            rc = cli_error(DRRL_E_INTERRUPTED,
                           "explore: interrupted (%s): trace %s holds %zu rows", signals_name(),
                           eo.trace_out, rows);
        else
            rc = cli_error(DRRL_E_INTERRUPTED, "explore: interrupted (%s)", signals_name());
    }
    signals_restore();
    return rc != 0 ? rc : rc2;
}
