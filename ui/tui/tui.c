/* tui.c: the main loop (see tui.h). */
#include "config.h"

#include "tui/tui.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/canvas.h"
#include "cli/cli.h"
#include "tui/keys.h"
#include "tui/screen.h"
#include "tui/term.h"

int tui_parse_size(const char *s, int *cols, int *rows)
{
    long c, r;
    if (app_parse_pair(s, "xX", 1, 10000, &c, &r) != 0)
        return -1;
    *cols = (int)c;
    *rows = (int)r;
    return 0;
}

int tui_size_opt(const char *cmd, const CliOpt *opt, const char *arg)
{
    TuiOptions *o = opt->dest;
    if (tui_parse_size(arg, &o->cols, &o->rows) != 0)
        return cli_usage_error(cmd, "--size: expected COLSxROWS, e.g. 120x40, got '%s'", arg);
    return 0;
}

/* A scripted-key cursor over the --keys string. */
typedef struct Script {
    const char *p;
    char tok[128];
    const char *typing; /* characters left of a text token */
} Script;

typedef enum { SCRIPT_END, SCRIPT_KEY, SCRIPT_RESIZE, SCRIPT_CLICK, SCRIPT_TICK } ScriptKind;

/* Next scripted event. */
static ScriptKind script_next(Script *s, int32_t *key, int *a, int *b)
{
    if (s->typing && *s->typing) {
        uint32_t ch;
        int n = canvas_utf8_decode(s->typing, &ch);
        s->typing += n;
        *key = (int32_t)ch;
        return SCRIPT_KEY;
    }
    s->typing = NULL; /* it pointed into tok, which the next token reuses */
    if (!s->p)
        return SCRIPT_END;
    while (*s->p == ' ')
        s->p++;
    if (!*s->p)
        return SCRIPT_END;
    size_t n = 0;
    while (s->p[n] && s->p[n] != ' ')
        n++;
    if (n >= sizeof s->tok)
        n = sizeof s->tok - 1;
    memcpy(s->tok, s->p, n);
    s->tok[n] = 0;
    while (*s->p && *s->p != ' ')
        s->p++;
    if (strncmp(s->tok, "resize=", 7) == 0 && tui_parse_size(s->tok + 7, a, b) == 0)
        return SCRIPT_RESIZE;
    if (strncmp(s->tok, "click=", 6) == 0 && sscanf(s->tok + 6, "%d,%d", a, b) == 2)
        return SCRIPT_CLICK;
    if (strcmp(s->tok, "tick") == 0)
        return SCRIPT_TICK;
    int32_t k = keys_parse_name(s->tok);
    if (k != KEY_CODE_NONE) {
        *key = k;
        return SCRIPT_KEY;
    }
    s->typing = s->tok;
    return script_next(s, key, a, b);
}

/* Apply one scripted event to the app; returns redraw flags. */
static int script_apply(App *app, ScriptKind k, int32_t key, int a, int b)
{
    switch (k) {
    case SCRIPT_KEY:
        return app_key(app, key);
    case SCRIPT_RESIZE:
        app->cols = a;
        app->rows = b;
        return APP_REDRAW_ALL;
    case SCRIPT_CLICK:
        app->mouse_x = a;
        app->mouse_y = b;
        return app_key(app, KEY_CODE_MOUSE);
    case SCRIPT_TICK:
        return app_tick(app) | APP_REDRAW_ALL;
    case SCRIPT_END:
        break;
    }
    return APP_REDRAW_NONE;
}

static int run_headless(App *app, const TuiOptions *o, const char *cmd, bool utf8)
{
    app->cols = o->cols > 0 ? o->cols : 80;
    app->rows = o->rows > 0 ? o->rows : 24;
    Script s = {.p = o->keys};
    ScriptKind k;
    int32_t key = 0;
    int a = 0, b = 0;
    app->interrupted = term_interrupted;
    /* jobs (long jumps) run to their end before the next key: the same
     * screens as on a terminal where each waits for the last */
    while (app_busy(app) && !term_interrupted())
        app_work(app);
    while (!app->quit && !term_interrupted() &&
           (k = script_next(&s, &key, &a, &b)) != SCRIPT_END) {
        script_apply(app, k, key, a, b);
        while (app_busy(app) && !term_interrupted())
            app_work(app);
    }
    if (term_interrupted())
        return TUI_INTERRUPTED;
    Canvas *c = canvas_new(app->cols, app->rows, utf8);
    if (!c)
        return cli_error(DRRL_E_NOMEM, "%s: out of memory", cmd);
    screen_draw(app, c);
    FileOut *out; /* the output rule: never the trace, its sidecar or a FIFO */
    int rc = cli_out_open(o->dump_path, o->force, &out);
    if (rc == 0) {
        (void)canvas_dump(c, fileio_out_stream(out)); /* errors surface at commit */
        rc = cli_out_commit(out);
    }
    canvas_free(c);
    return rc;
}

static int run_interactive(App *app, const TuiOptions *o, const char *cmd, bool utf8)
{
    char why[256];
    if (term_open(why, sizeof why) != 0)
        return cli_error(DRRL_E_USAGE, "%s: %s", cmd, why);
    int cols, rows;
    term_size(&cols, &rows);
    app->cols = cols;
    app->rows = rows;
    Canvas *c = canvas_new(cols, rows, utf8);
    if (!c) {
        term_close();
        return cli_error(DRRL_E_NOMEM, "%s: out of memory", cmd);
    }
    Script s = {.p = o->keys};
    int flags = APP_REDRAW_ALL;
    app->interrupted = term_interrupted;
    while (!app->quit) {
        if (term_interrupted()) {
            /* Ctrl-C stops a long jump; otherwise (or any other signal) the
             * program */
            if (!app_busy(app) || !term_take_ctrl_c())
                break;
            app_cancel(app);
            flags = APP_REDRAW_ALL;
        }
        if (flags & APP_REDRAW_ALL) {
            term_size(&cols, &rows);
            if (cols != c->w || rows != c->h) {
                if (canvas_resize(c, cols, rows) != 0)
                    break;
                app->cols = cols;
                app->rows = rows;
            }
            screen_draw(app, c);
            term_flush(c);
        }
        int32_t key = 0;
        int a = 0, b = 0;
        if (app_busy(app)) {
            /* a long jump: one segment, then the keys typed meanwhile (Esc
             * cancels; a resize redraws), then the progress drawn */
            flags = app_work(app);
            while ((key = term_key(0, &app->mouse_x, &app->mouse_y)) != KEY_CODE_NONE &&
                   key != KEY_CODE_TICK)
                flags |= app_key(app, key);
            continue;
        }
        ScriptKind k = script_next(&s, &key, &a, &b);
        if (k != SCRIPT_END) {
            if (k == SCRIPT_RESIZE) /* a real terminal has its own size */
                continue;
            flags = script_apply(app, k, key, a, b);
            continue;
        }
        key = term_key(app->playing ? app_tick_ms(app) : 250, &app->mouse_x, &app->mouse_y);
        if (key == KEY_CODE_TICK)
            flags = app_tick(app);
        else if (key == KEY_CODE_NONE)
            flags = APP_REDRAW_NONE;
        else
            flags = app_key(app, key);
    }
    bool sig = term_interrupted();
    canvas_free(c);
    term_close();
    return sig ? TUI_INTERRUPTED : CLI_EXIT_OK;
}

int tui_run(App *app, const TuiOptions *o, const char *cmd)
{
    setlocale(LC_ALL, "");
    bool utf8 = term_locale_utf8();
    term_catch_signals();
    if (o->dump_path)
        return run_headless(app, o, cmd, utf8);
    return run_interactive(app, o, cmd, utf8);
}
