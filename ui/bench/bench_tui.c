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

int bench_tui(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"text", required_argument, 0, 'f'},
        {"ids-file", required_argument, 0, 'i'},
        {"tokens", required_argument, 0, 'n'},
        {"steps", required_argument, 0, 'k'},
        {"frames", required_argument, 0, 'F'},
        {"size", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        ATTN_CLI_LONGOPTS,
        {0, 0, 0, 0},
    };
    ExploreOptions eo = {0};
    attn_core_config_default(&eo.cfg);
    long tokens = 2048, steps = 32, frames = 200, threads = 0;
    int cols = 200, rows = 60;
    bool method_given = false;
    int c, r;
    while ((c = cli_getopt("bench tui", argc, argv, "h", longopts)) != -1) {
        if (c == ATTN_CLI_OPT_METHOD)
            method_given = true;
        if ((r = attn_cli_option("bench tui", c, optarg, &eo.cfg)) != 0) {
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
        case 'i':
            eo.ids_file = optarg;
            break;
        case 'n':
            if (cli_parse_long("bench tui", "--tokens", optarg, 2, 1L << 20, &tokens))
                return CLI_EXIT_USAGE;
            break;
        case 'k':
            if (cli_parse_long("bench tui", "--steps", optarg, 1, 100000, &steps))
                return CLI_EXIT_USAGE;
            break;
        case 'F':
            if (cli_parse_long("bench tui", "--frames", optarg, 1, 1000000, &frames))
                return CLI_EXIT_USAGE;
            break;
        case 's':
            if (tui_parse_size(optarg, &cols, &rows) != 0)
                return cli_usage_error("bench tui", "--size: expected COLSxROWS, got '%s'",
                                       optarg);
            break;
        case 't':
            if (cli_parse_long("bench tui", "--threads", optarg, 1, 256, &threads))
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
        return cli_usage_error("bench tui", "unexpected argument '%s'", argv[optind]);
    if (!method_given &&
        attn_cli_option("bench tui", ATTN_CLI_OPT_METHOD,
                        eo.model_dir ? "energy:0.95" : explore_default_method(), &eo.cfg) < 0)
        return CLI_EXIT_USAGE;
    char *def_text = NULL;
    if (!eo.text && !eo.ids_file) {
        def_text = explore_default_text();
        if (!def_text)
            return cli_error(DRRL_E_USAGE, "bench tui: no input: give --text FILE");
        eo.text = def_text;
    }
    eo.seq_len = tokens;
    eo.threads = (int)threads;
    Explore *ex;
    int rc = explore_open(&ex, &eo, "bench tui");
    free(def_text);
    if (rc != 0)
        return rc;
    App *app = explore_app(ex);
    Session *s = explore_session(ex);
    size_t n = session_len(s);
    if ((long)n < steps + 1) {
        explore_close(ex, 0);
        return cli_error(DRRL_E_USAGE,
                         "bench tui: the input has %zu tokens, fewer than --steps + 1", n);
    }
    Canvas *cv = canvas_new(cols, rows, true);
    double *t = malloc((size_t)(steps > frames ? steps : frames) * sizeof *t);
    if (!cv || !t) {
        canvas_free(cv);
        free(t);
        explore_close(ex, 0);
        return cli_error(DRRL_E_NOMEM, "bench tui: out of memory");
    }
    app->cols = cols;
    app->rows = rows;
    app->focus = 6; /* attention: its rows are recomputed each frame too */
    DrrlError err;
    drrl_error_clear(&err);
    /* warm up to the segment boundary before the last `steps` tokens
     * (segment-sized calls), so the first step computes a whole segment */
    size_t T = eo.cfg.segment > 0 ? (size_t)eo.cfg.segment : 1;
    size_t warm = (n - (size_t)steps) / T * T;
    while (session_pos(s) < warm) {
        size_t done;
        size_t chunk = warm - session_pos(s);
        if (chunk > (size_t)eo.cfg.segment)
            chunk = (size_t)eo.cfg.segment;
        if (session_advance(s, chunk, &done, &err) != DRRL_OK || app_sync(app) != 0)
            goto fail;
    }
    double *te = malloc((size_t)steps * sizeof *te), *td = malloc((size_t)steps * sizeof *td);
    if (!te || !td) {
        free(te);
        free(td);
        drrl_error(&err, DRRL_E_NOMEM, "bench tui: out of memory");
        goto fail;
    }
    /* the cursor a token at a time, as the key l does: inside a computed
     * segment only the panes; at the next segment's first token the engine
     * runs that whole segment (as drrl run does) */
    app->step = app_n_steps(app) - 1;
    double seg_max = 0;
    for (long i = 0; i < steps; i++) {
        double t0 = clock_now_s();
        app_apply(app, ACTION_next_token);
        while (app_busy(app))
            app_work(app);
        if (app->msg_error) {
            drrl_error(&err, DRRL_E_INTERNAL, "bench tui: %s", app->msg);
            free(te);
            free(td);
            goto fail;
        }
        double t1 = clock_now_s();
        screen_draw(app, cv);
        double t2 = clock_now_s();
        t[i] = t2 - t0;
        te[i] = t1 - t0;
        td[i] = t2 - t1;
        if (t[i] > seg_max)
            seg_max = t[i];
    }
    double step_ms = 1e3 * bench_median(t, (int)steps);
    double engine_ms = 1e3 * bench_median(te, (int)steps),
           draw_ms = 1e3 * bench_median(td, (int)steps);
    free(te);
    free(td);
    FILE *devnull = fopen("/dev/null", "w"), *devin = fopen("/dev/null", "r");
    if (!devnull || !devin || term_open_on("xterm-256color", devnull, devin) != 0) {
        if (devnull)
            fclose(devnull);
        if (devin)
            fclose(devin);
        drrl_error(&err, DRRL_E_IO, "bench tui: cannot open a terminal on /dev/null");
        goto fail;
    }
    /* redraws of the same state (a resize, a playback tick at the end) */
    for (long i = 0; i < frames; i++) {
        double t0 = clock_now_s();
        screen_draw(app, cv);
        term_flush(cv);
        t[i] = clock_now_s() - t0;
    }
    double frame_ms = 1e3 * bench_median(t, (int)frames);
    /* frames after selecting another head: new spectrum, bounds, policy and
     * attention rows (recomputed by the engine for that head) */
    for (long i = 0; i < frames; i++) {
        app->head = (int32_t)((i + 1) % (app->n_heads > 0 ? app->n_heads : 1));
        if (app->n_heads <= 1)
            app->layer = (int32_t)((i + 1) % (app->n_layers > 0 ? app->n_layers : 1));
        double t0 = clock_now_s();
        screen_draw(app, cv);
        term_flush(cv);
        t[i] = clock_now_s() - t0;
    }
    double head_ms = 1e3 * bench_median(t, (int)frames);
    term_close();
    fclose(devnull);
    fclose(devin);
    const Model *m = session_model(s);
    printf("model          %s (%d layers x %d heads, head_dim %d)\n", m->dir, m->cfg.n_layer,
           m->cfg.n_head, m->cfg.head_dim);
    printf("method         %s\n", app->method);
    printf("context        %zu tokens\n", n);
    printf("step median    %.2f ms over the last %ld tokens (target <= 30 ms)\n", step_ms,
           steps);
    printf("  engine       %.2f ms (median; the engine runs a whole segment when the\n"
           "               cursor enters it, records stored)\n",
           engine_ms);
    printf("  slowest step %.2f ms (a segment of %d tokens computed)\n", 1e3 * seg_max,
           (int)eo.cfg.segment);
    printf("  panes        %.2f ms (every pane drawn; the attention rows recomputed)\n",
           draw_ms);
    printf("frame median   %.3f ms at %dx%d over %ld frames (target <= 5 ms)\n", frame_ms, cols,
           rows, frames);
    printf("head change    %.3f ms per frame after selecting another head (attention rows\n"
           "               recomputed by the engine)\n",
           head_ms);
    canvas_free(cv);
    free(t);
    explore_close(ex, 0);
    return CLI_EXIT_OK;
fail:
    canvas_free(cv);
    free(t);
    explore_close(ex, 0);
    return cli_fail(&err);
}
