/* bench_tui.c: `drrl bench tui`: how fast the explorer is.
 *
 * step:  the cursor moved one token (the key l) plus drawing every pane,
 *        timed for each of the last --steps tokens before the context reaches
 *        --tokens; the live engine runs a whole segment (every TraceRecord
 *        into the store, the App's caches) when the cursor enters it, as drrl
 *        run does. The median is reported, and the slowest step (a segment).
 * frame: drawing the whole screen (--size) into the canvas and flushing it
 *        through curses to a terminal on /dev/null, at the final token,
 *        --frames times, the selected head changing every frame; median.
 * Targets: step <= 30 ms at context 2048 on the default model,
 * frame <= 5 ms. */
#include "config.h"

#include "bench/bench_tui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tui/app.h"
#include "cli/attn_cli.h"
#include "tui/canvas.h"
#include "bench/bench_util.h"
#include "cli/cli.h"
#include "tui/explore.h"
#include "tui/screen.h"
#include "tui/term.h"
#include "tui/tui.h"

static const char usage[] =
    "usage: drrl bench tui [--model DIR] [--text FILE | --ids-file F] [--tokens N] [--steps "
    "K]\n"
    "                      [--frames F] [--size COLSxROWS] [--method SPEC] [options]\n"
    "\n"
    "Time the explorer: the median of one step (the cursor moved one token, every\n"
    "pane redrawn; the live engine runs a whole segment when the cursor enters\n"
    "it) over the last K tokens before the context reaches N, the slowest step\n"
    "(a segment computed), and the median of one frame (draw the screen and\n"
    "flush it through curses to /dev/null).\n"
    "\n"
    "  --model DIR       model directory (default: DATA/model)\n"
    "  --text FILE       input text (default as drrl explore)\n"
    "  --ids-file F      token ids instead of a text\n"
    "  --tokens N        context length reached (default 2048, at most the\n"
    "                    model's context)\n"
    "  --steps K         steps timed (default 32)\n"
    "  --frames F        frames timed (default 200)\n"
    "  --size COLSxROWS  screen size for the frames (default 200x60)\n" ATTN_CLI_METHOD_USAGE(
        "drrl with DATA's policy; with --model,\n"
        "                    energy:0.95") ATTN_CLI_OTHER_USAGE
    "  --threads N       attention worker threads (default: as OpenBLAS)\n"
    "  -h, --help        show this help\n";

/* One run: the explorer, the canvas and the measurements. */
typedef struct BenchTui {
    Explore *ex;
    App *app;
    Session *s;
    Canvas *cv;
    double *t;
    long steps, frames;
    int cols, rows;
    double step_ms, engine_ms, draw_ms, seg_max, frame_ms, head_ms;
} BenchTui;

/* Warm up to the segment boundary before the last `steps` tokens
 * (segment-sized calls), so the first step computes a whole segment. */
static DrrlStatus warm_up(BenchTui *b, int32_t segment, DrrlError *err)
{
    size_t n = session_len(b->s), T = segment > 0 ? (size_t)segment : 1;
    size_t warm = (n - (size_t)b->steps) / T * T;
    while (session_pos(b->s) < warm) {
        size_t done, chunk = warm - session_pos(b->s);
        if (chunk > (size_t)segment)
            chunk = (size_t)segment;
        if (session_advance(b->s, chunk, &done, err) != DRRL_OK)
            return err->code;
        if (app_sync(b->app) != 0)
            return DRRL_E_NOMEM;
    }
    return DRRL_OK;
}

/* The cursor a token at a time, as the key l does: inside a computed
 * segment only the panes; at the next segment's first token the engine runs
 * that whole segment (as drrl run does). */
static DrrlStatus time_steps(BenchTui *b, DrrlError *err)
{
    long steps = b->steps;
    double *te = malloc((size_t)steps * sizeof *te), *td = malloc((size_t)steps * sizeof *td);
    DrrlStatus st = DRRL_OK;
    if (!te || !td)
        st = drrl_error(err, DRRL_E_NOMEM, "bench tui: out of memory");
    b->app->step = app_n_steps(b->app) - 1;
    for (long i = 0; i < steps && !st; i++) {
        double t0 = clock_now_s();
        app_apply(b->app, ACTION_next_token);
        while (app_busy(b->app))
            app_work(b->app);
        if (b->app->msg_error) {
            st = drrl_error(err, DRRL_E_INTERNAL, "bench tui: %s", b->app->msg);
            break;
        }
        double t1 = clock_now_s();
        screen_draw(b->app, b->cv);
        double t2 = clock_now_s();
        b->t[i] = t2 - t0, te[i] = t1 - t0, td[i] = t2 - t1;
        if (b->t[i] > b->seg_max)
            b->seg_max = b->t[i];
    }
    if (!st) {
        b->step_ms = 1e3 * bench_median(b->t, (int)steps);
        b->engine_ms = 1e3 * bench_median(te, (int)steps);
        b->draw_ms = 1e3 * bench_median(td, (int)steps);
    }
    free(te);
    free(td);
    return st;
}

/* Whole frames through curses to a terminal on /dev/null: redraws of the
 * same state (a resize, a playback tick at the end), then frames after
 * selecting another head (new spectrum, bounds, policy and attention rows,
 * recomputed by the engine for that head). */
static DrrlStatus time_frames(BenchTui *b, DrrlError *err)
{
    App *app = b->app;
    FILE *devnull = fopen("/dev/null", "w"), *devin = fopen("/dev/null", "r");
    if (!devnull || !devin || term_open_on("xterm-256color", devnull, devin) != 0) {
        if (devnull)
            fclose(devnull);
        if (devin)
            fclose(devin);
        return drrl_error(err, DRRL_E_IO, "bench tui: cannot open a terminal on /dev/null");
    }
    for (int pass = 0; pass < 2; pass++) {
        for (long i = 0; i < b->frames; i++) {
            if (pass) {
                app->head = (int32_t)((i + 1) % (app->n_heads > 0 ? app->n_heads : 1));
                if (app->n_heads <= 1)
                    app->layer = (int32_t)((i + 1) % (app->n_layers > 0 ? app->n_layers : 1));
            }
            double t0 = clock_now_s();
            screen_draw(app, b->cv);
            term_flush(b->cv);
            b->t[i] = clock_now_s() - t0;
        }
        *(pass ? &b->head_ms : &b->frame_ms) = 1e3 * bench_median(b->t, (int)b->frames);
    }
    term_close();
    fclose(devnull);
    fclose(devin);
    return DRRL_OK;
}

static void report(const BenchTui *b, int segment)
{
    const Model *m = session_model(b->s);
    printf("model          %s (%d layers x %d heads, head_dim %d)\n", m->dir, m->cfg.n_layer,
           m->cfg.n_head, m->cfg.head_dim);
    printf("method         %s\n", b->app->method);
    printf("context        %zu tokens\n", session_len(b->s));
    printf("step median    %.2f ms over the last %ld tokens (target <= 30 ms)\n", b->step_ms,
           b->steps);
    printf("  engine       %.2f ms (median; the engine runs a whole segment when the\n"
           "               cursor enters it, records stored)\n",
           b->engine_ms);
    printf("  slowest step %.2f ms (a segment of %d tokens computed)\n", 1e3 * b->seg_max,
           segment);
    printf("  panes        %.2f ms (every pane drawn; the attention rows recomputed)\n",
           b->draw_ms);
    printf("frame median   %.3f ms at %dx%d over %ld frames (target <= 5 ms)\n", b->frame_ms,
           b->cols, b->rows, b->frames);
    printf("head change    %.3f ms per frame after selecting another head (attention rows\n"
           "               recomputed by the engine)\n",
           b->head_ms);
}

/* The explorer on the input, then the measurements. */
static int bench_run(BenchTui *b, ExploreOptions *eo)
{
    int rc = explore_open(&b->ex, eo, "bench tui");
    if (rc != 0)
        return rc;
    b->app = explore_app(b->ex);
    b->s = explore_session(b->ex);
    size_t n = session_len(b->s);
    DrrlError err;
    drrl_error_clear(&err);
    b->cv = canvas_new(b->cols, b->rows, true);
    b->t = malloc((size_t)(b->steps > b->frames ? b->steps : b->frames) * sizeof *b->t);
    if ((long)n < b->steps + 1)
        rc = cli_error(DRRL_E_USAGE,
                       "bench tui: the input has %zu tokens, fewer than --steps + 1", n);
    else if (!b->cv || !b->t)
        rc = cli_error(DRRL_E_NOMEM, "bench tui: out of memory");
    if (!rc) {
        b->app->cols = b->cols;
        b->app->rows = b->rows;
        b->app->focus = 6; /* attention: its rows are recomputed each frame too */
        if (warm_up(b, eo->cfg.segment, &err) || time_steps(b, &err) || time_frames(b, &err))
            rc = cli_fail(&err);
        else
            report(b, (int)eo->cfg.segment);
    }
    canvas_free(b->cv);
    free(b->t);
    explore_close(b->ex, 0);
    return rc;
}

static int parse_size(const char *cmd, const CliOpt *o, const char *arg)
{
    BenchTui *b = o->dest;
    if (tui_parse_size(arg, &b->cols, &b->rows) != 0)
        return cli_usage_error(cmd, "--size: expected COLSxROWS, got '%s'", arg);
    return 0;
}

int bench_tui(int argc, char **argv)
{
    ExploreOptions eo = {0};
    attn_core_config_default(&eo.cfg);
    eo.cfg.method.spec[0] = '\0'; /* --method sets it: whether one was given */
    BenchTui b = {.steps = 32, .frames = 200, .cols = 200, .rows = 60};
    long tokens = 2048, threads = 0;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&eo.model_dir),
        CLI_STR("text", &eo.in.text),
        CLI_STR("ids-file", &eo.in.ids_file),
        CLI_LONG("tokens", &tokens, 2, 1L << 20),
        CLI_LONG("steps", &b.steps, 1, 100000),
        CLI_LONG("frames", &b.frames, 1, 1000000),
        CLI_FN("size", 1, parse_size, &b, 0),
        CLI_THREADS_OPT(&threads),
        ATTN_CLI_OPTS(&eo.cfg),
        CLI_END,
    };
    int rc = cli_parse("bench tui", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    if (!eo.cfg.method.spec[0] &&
        attn_cli_option("bench tui", ATTN_CLI_OPT_METHOD,
                        eo.model_dir ? "energy:0.95" : explore_default_method(), &eo.cfg) < 0)
        return CLI_EXIT_USAGE;
    char *def_text = NULL;
    if (!eo.in.text && !eo.in.ids_file) {
        def_text = explore_default_text(NULL);
        if (!def_text)
            return cli_error(DRRL_E_USAGE, "bench tui: no input: give --text FILE");
        eo.in.text = def_text;
    }
    eo.in.seq_len = tokens;
    eo.threads = (int)threads;
    rc = bench_run(&b, &eo);
    free(def_text);
    return rc;
}
