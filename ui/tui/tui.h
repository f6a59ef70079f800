/* tui.h: the explorer's main loop, interactive or headless.
 *
 * Interactive: opens the terminal, feeds the scripted keys (if any) and then
 * the user's, draws only when an action asks for it, handles resizes,
 * playback ticks and signals, and restores the terminal on the way out.
 * Headless (dump_path set): no terminal at all; the scripted keys are applied
 * to an off-screen canvas of the given size and the final screen is written
 * as text to dump_path ("-" for standard output).
 *
 * Scripted keys (--keys): tokens separated by spaces; each is a key name
 * (keys_parse_name: Right, Left, Up, Down, Tab, Enter, Esc, Space, ...) or
 * text typed character by character; also "resize=COLSxROWS" (headless: the
 * canvas changes size), "click=X,Y" (a mouse click) and "tick" (one
 * playback tick).
 */
#ifndef DRRL_TUI_H
#define DRRL_TUI_H

#include <stdbool.h>

#include "cli/cli.h"
#include "tui/app.h"

typedef struct TuiOptions {
    const char *keys;      /* scripted keys, or NULL */
    const char *dump_path; /* headless: write the final screen here */
    int cols, rows;        /* headless size; 0: 80x24 */
    bool force;            /* --force: dump_path may replace a regular file */
} TuiOptions;

/* Run the explorer on app; returns a process exit code (0, or 1/2 with a
 * one-line message printed after the terminal was restored), or
 * TUI_INTERRUPTED, printing nothing, when a signal stopped it (the caller
 * saves what it must and reports it: signals_name()). cmd names the
 * command in messages. Signal handlers are installed for the run
 * (signals_catch) and left installed; the caller restores them. */
#define TUI_INTERRUPTED (-1)
int tui_run(App *app, const TuiOptions *o, const char *cmd);

/* Parse "COLSxROWS" (each 1..10000). Returns 0 or -1. */
int tui_parse_size(const char *s, int *cols, int *rows);

/* The options every TUI command accepts, as a group of a cli_parse table
 * (cli/cli.h): --keys S, --dump-screen F, --size CxR, into the TuiOptions
 * *o. tui_size_opt parses --size. */
int tui_size_opt(const char *cmd, const CliOpt *opt, const char *arg);
#define TUI_OPTS(o)                                                                            \
    CLI_STR("keys", &(o)->keys), CLI_STR("dump-screen", &(o)->dump_path),                      \
        CLI_FN("size", 1, tui_size_opt, (o), 0)

/* Usage lines for those options. */
#define TUI_USAGE                                                                              \
    "  --keys KEYS       play these keys first (e.g. \"l l ] j Tab q\")\n"                     \
    "  --dump-screen F   headless: apply --keys, write the screen as text to F\n"              \
    "                    (- for stdout) and exit; no terminal needed\n"                        \
    "  --size COLSxROWS  headless screen size (default 80x24)\n"

#endif
