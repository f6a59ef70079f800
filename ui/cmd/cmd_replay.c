/* cmd_replay.c: `drrl replay TRACE.csv`: the explorer on a recorded trace,
 * without the model. Every pane but attention (which needs the model) works
 * as live; seeking is instant (the whole trace is loaded and indexed). */
#include "config.h"

#include <stdio.h>
#include <sys/stat.h>
#include <string.h>

#include "tui/app.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "cli/signals.h"
#include "trace/trace_csv.h"
#include "trace/trace_store.h"
#include "tui/tui.h"

static const char usage[] =
    "usage: drrl replay [OPTIONS] TRACE.csv\n"
    "\n"
    "Open a recorded trace (and its TRACE.csv.json sidecar) in the explorer,\n"
    "without the model: ranks, spectra, bounds, FLOPs and the policy, token by\n"
    "token. Keys as in drrl explore; press ? inside for the list.\n"
    "\n"
    "  --token N         start at token N (counted from 1, as the status line)\n" TUI_USAGE
    "  --force           let --dump-screen replace an existing file\n"
    "  -h, --help        show this help\n";

/* The last path component (what the status line shows of a model path). */
static const char *base_name(const char *p)
{
    if (!p || !*p)
        return NULL;
    const char *s = strrchr(p, '/');
    if (s && s[1])
        return s + 1;
    return p;
}

int cmd_replay(int argc, char **argv)
{
    TuiOptions to = {0};
    long start = 1;
    int force = 0, first;
    const CliOpt opts[] = {
        CLI_LONG("token", &start, 1, INT32_MAX),
        CLI_FORCE_OPT(&force),
        TUI_OPTS(&to),
        CLI_END,
    };
    int r = cli_parse("replay", usage, opts, argc, argv, &first);
    if (r != CLI_GO)
        return r;
    to.force = force;
    if (first >= argc)
        return cli_usage_error("replay", "expected a trace file (TRACE.csv)");
    if (first + 1 < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[first + 1]);
    const char *path = argv[first];

    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return cli_error(DRRL_E_INPUT,
                         "%s: is a directory: give a trace file (TRACE.csv, written by drrl "
                         "run --trace-out)",
                         path);
    TraceStore *store = NULL;
    DrrlError err;
    drrl_error_clear(&err);
    if (trace_csv_load(path, &store, &err) != DRRL_OK)
        return cli_fail(&err);
    if (trace_store_n_steps(store) == 0) {
        trace_store_free(store);
        return cli_error(DRRL_E_INPUT, "%s: the trace has no rows", path);
    }
    const TraceMeta *m = trace_store_meta(store);
    const char *model = m ? base_name(m->model_path) : NULL;
    App app;
    app_init(&app, store, NULL, model ? model : path, m && m->method ? m->method : "?",
             "replay");
    if (app_sync(&app) != 0) {
        app_done(&app);
        trace_store_free(store);
        return cli_error(DRRL_E_NOMEM, "replay: out of memory");
    }
    int64_t n = trace_store_n_steps(store);
    app.step = start - 1 < n ? start - 1 : n - 1;
    int rc = tui_run(&app, &to, "replay");
    app_done(&app);
    trace_store_free(store);
    if (rc == TUI_INTERRUPTED)
        rc = cli_error(DRRL_E_INTERRUPTED, "replay: interrupted (%s)", signals_name());
    signals_restore();
    return rc;
}
