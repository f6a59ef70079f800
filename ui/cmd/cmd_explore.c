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
    "for the keys. With no arguments: the data directory's model and default\n"
    "text, the drrl method with its policy when the data directory has one,\n"
    "opened at DATA/texts/DEFAULT's token, else the text's last token (computed\n"
    "up to there); with --model and no --method, energy:0.95.\n"
    "\n"
    "  --model DIR       model directory (default: DATA/model)\n"
    "  --text FILE       input text (default: the DATA/texts/*.txt that\n"
    "                    DATA/texts/DEFAULT names, else the longest, else\n"
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
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    cfg.method.spec[0] = '\0'; /* --method sets it: whether one was given */
    ExploreOptions eo = {0};
    TuiOptions to = {0};
    long threads = 0, start = 0; /* 0: no --token */
    int force = 0;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&eo.model_dir),
        CLI_TEXT_OPTS(&eo.in),
        CLI_STR("trace-out", &eo.trace_out),
        CLI_FORCE_OPT(&force),
        CLI_THREADS_OPT(&threads),
        CLI_LONG("token", &start, 1, 1L << 30),
        ATTN_CLI_OPTS(&cfg),
        TUI_OPTS(&to),
        CLI_END,
    };
    int r = cli_parse("explore", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    eo.force = to.force = force;
    if (!!eo.in.text + !!eo.in.prompt + !!eo.in.ids_file > 1)
        return cli_usage_error("explore", "give at most one of --text, --prompt, --ids-file");
    char *def_text = NULL;
    long demo_token = 0; /* DATA/texts/DEFAULT's TOKEN: where the demo opens */
    /* the demo (plain drrl): no input, model, method or position given */
    int demo = !eo.in.text && !eo.in.prompt && !eo.in.ids_file && !eo.model_dir &&
               !cfg.method.spec[0] && start == 0 && eo.in.offset == 0;
    if (!eo.in.text && !eo.in.prompt && !eo.in.ids_file) {
        def_text = explore_default_text(&demo_token);
        if (!def_text)
            return cli_error(
                DRRL_E_USAGE,
                "explore: no input: give --text FILE or --prompt S (no %s/texts/*.txt "
                "or %s/brown/test.txt; `xz -dk DATA/brown/*.xz` makes the latter)",
                cli_data_dir(), cli_data_dir());
        eo.in.text = def_text;
    }
    if (!cfg.method.spec[0]) {
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
    else if (demo && app_n_tokens(app) > 0) {
        /* the demo opens at DEFAULT's token, else at the end of the text,
         * computed up to there: the grid shows that segment's ranks, the
         * rank history the tokens before it */
        int64_t n = app_n_tokens(app);
        app_go_to(app, (demo_token > 0 && demo_token <= n ? demo_token : n) - 1);
    }
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
