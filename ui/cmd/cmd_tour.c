/* cmd_tour.c: `drrl tour`: a guided lesson on the live engine and the
 * shipped model (ui/tui/tour.h): the explorer, computed over the whole text
 * first, stopping at the moments that matter with a narration pane. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/attn_cli.h"
#include "cli/cli.h"
#include "cli/signals.h"
#include "cmd/commands.h"
#include "trace/trace_store.h"
#include "tui/app.h"
#include "tui/explore.h"
#include "tui/tour.h"
#include "tui/tui.h"

static const char usage[] =
    "usage: drrl tour [--text FILE] [--keys KEYS] [--dump-screen F] [--size COLSxROWS]\n"
    "\n"
    "A guided lesson on the live engine: the shipped model reads a shipped\n"
    "text with the drrl method and its policy, and the explorer stops at the\n"
    "moments that matter, each explained in a narration pane: the exact first\n"
    "segment, the first basis and its spectrum, a rank change and why the\n"
    "policy chose it, a masked rank and the bounds behind it, the FLOP ledger\n"
    "turning positive, exact against approximate attention rows. n (or Enter)\n"
    "goes on, p (or Backspace) back, q quits; every explorer key works too.\n"
    "Nothing to prepare: it runs from the data directory as installed.\n"
    "\n"
    "  --text FILE       input text (default: the data directory's texts, joined)\n" TUI_USAGE
    "  -h, --help        show this help\n";

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_txt(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && strcmp(e->d_name + n - 4, ".txt") == 0;
}

/* Every DATA/texts/NAME.txt by name, joined with blank lines: long enough for
 * the ledger to turn positive (malloc'd; NULL when there is none). */
static char *shipped_texts(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/texts", cli_data_dir());
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_txt, by_name);
    char *all = NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char path[4096 + 256], *buf = NULL;
        size_t k = 0;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (cli_read_file(path, &buf, &k) == 0) {
            char *m = realloc(all, len + k + 3);
            if (m) {
                all = m;
                if (len)
                    all[len++] = '\n';
                memcpy(all + len, buf, k);
                len += k;
                all[len] = 0;
            }
        }
        free(buf);
        free(names[i]);
    }
    free(names);
    return all;
}

int cmd_tour(int argc, char **argv)
{
    ExploreOptions eo = {0};
    TuiOptions to = {0};
    const CliOpt opts[] = {CLI_STR("text", &eo.in.text), TUI_OPTS(&to), CLI_END};
    int r = cli_parse("tour", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    char *def_text = NULL;
    if (!eo.in.text) {
        def_text = shipped_texts();
        if (!def_text)
            return cli_error(DRRL_E_USAGE,
                             "tour: no text: give --text FILE (no %s/texts/*.txt)",
                             cli_data_dir());
        eo.in.prompt = def_text;
    }
    eo.in.seq_len = 4096; /* as long as the shipped texts, within the model's context */
    attn_core_config_default(&eo.cfg);
    if (attn_cli_option("tour", ATTN_CLI_OPT_METHOD, explore_default_method(), &eo.cfg) < 0) {
        free(def_text);
        return CLI_EXIT_USAGE;
    }
    Explore *ex = NULL;
    int rc = explore_open(&ex, &eo, "tour");
    free(def_text);
    if (rc != 0)
        return rc;
    App *app = explore_app(ex);
    app->mode = "tour";
    signals_catch();
    /* the whole text first: the stops are found in its records */
    if (!to.dump_path && isatty(STDERR_FILENO))
        fprintf(stderr, "drrl tour: reading %lld tokens with the shipped model...\n",
                (long long)app_n_tokens(app));
    app_go_to(app, app_n_tokens(app) - 1);
    while (app_busy(app) && !signals_caught())
        app_work(app);
    Tour tour;
    if (!signals_caught() && tour_prepare(app, &tour) != 0) {
        explore_close(ex, 0);
        signals_restore();
        return cli_error(DRRL_E_USAGE, "tour: the text is too short for a tour");
    }
    rc = signals_caught() ? TUI_INTERRUPTED : tui_run(app, &to, "tour");
    int rc2 = explore_close(ex, 0);
    if (rc == TUI_INTERRUPTED)
        rc = cli_error(DRRL_E_INTERRUPTED, "tour: interrupted (%s)", signals_name());
    signals_restore();
    return rc != 0 ? rc : rc2;
}
