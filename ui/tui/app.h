/* app.h: the explorer's state and the actions that change it.
 *
 * One App drives both `drrl explore` (live: an AppSource computes new steps
 * into the store) and `drrl replay` (the store was read from a trace; no
 * source). Views only read the App and its TraceStore; keys become actions
 * (keys.h) applied by app_apply(), which returns what needs redrawing. Only
 * the main loop (tui.c) draws.
 */
#ifndef DRRL_APP_H
#define DRRL_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tui/keys.h"
#include "base/status.h"
#include "trace/trace_store.h"

/* Attention rows for the attention pane: row i is query first + i over keys
 * 0 .. first + i (n_keys columns, zeros after). */
typedef struct AppAttnRows {
    size_t first, n_rows, n_keys;
    int32_t rank;  /* the head's rank used for the approximate rows */
    float *exact;  /* (n_rows, n_keys) */
    float *approx; /* (n_rows, n_keys) */
    void *owner;   /* the source's bookkeeping */
} AppAttnRows;

/* A live engine behind the explorer. All callbacks borrow ctx. */
typedef struct AppSource {
    void *ctx;
    /* Tokens in the input (the N of `token I/N`). */
    int64_t (*n_tokens)(void *ctx);
    /* Compute the next step and append its records to the App's store.
     * Returns DRRL_OK, or an error (the App shows it and stops playing). */
    DrrlStatus (*advance)(void *ctx, DrrlError *err);
    /* Attention rows of (layer, head) for the query positions
     * [first, first + n_rows) ending at pos (at most max_rows), exact beside
     * approximate, as session_attention_rows (session.h) gives them. Returns
     * 0, or -1 with a reason in why. Free with attention_free. May be NULL
     * (replay: the pane then says the rows need the model). */
    int (*attention)(void *ctx, int32_t layer, int32_t head, size_t pos, size_t max_rows,
                     struct AppAttnRows *out, char *why, size_t why_n);
    void (*attention_free)(void *ctx, struct AppAttnRows *rows);
    /* Tokens computed by the engine (its position): the approximate rows
     * use the basis and ranks of that position. */
    int64_t (*position)(void *ctx);
    /* Display text of token i of the input, computed or not (the strip shows
     * what comes next). May be NULL. */
    const char *(*token_text)(void *ctx, int64_t i);
    /* Token id of token i of the input (for "/#ID"), or -1. May be NULL. */
    long (*token_id)(void *ctx, int64_t i);
    /* The live knobs: which 0 = the policy's FLOP budget, 1 = the safety
     * threshold; dir +1 or -1. Recomputes from the cursor's segment and says
     * what it did in msg. Returns 0, or -1 with the reason in msg. May be
     * NULL (replay). */
    int (*knobs)(void *ctx, int which, int dir, char *msg, size_t n);
} AppSource;

typedef enum BreakKind {
    BREAK_RANK,   /* a head's rank changed at this step */
    BREAK_ERROR,  /* a head's measured error exceeds x */
    BREAK_MASKED, /* the safety mask removed ranks at a head */
    BREAK_TOKEN,  /* the step reached token n (counted from 1: token_index + 1) */
} BreakKind;

typedef struct Breakpoint {
    BreakKind kind;
    double x;            /* BREAK_ERROR: the error level */
    int64_t token;       /* BREAK_TOKEN */
    int32_t layer, head; /* -1: any head; else only this one */
} Breakpoint;

#define APP_MAX_BREAKS 16

typedef enum PromptKind {
    PROMPT_NONE,
    PROMPT_GOTO,
    PROMPT_SEARCH,
    PROMPT_BREAK,
    PROMPT_WRITE,
} PromptKind;

typedef enum Overlay {
    OVERLAY_NONE,
    OVERLAY_HELP,
    OVERLAY_INFO,
} Overlay;

/* Token numbers the user sees and types count from 1 (`token 1/N` is step
 * 0); the trace's step and token_index columns count from 0. */

/* What an action needs redrawn. */
enum {
    APP_REDRAW_NONE = 0,
    APP_REDRAW_ALL = 1,
    APP_QUIT = 2,
};

typedef struct App {
    TraceStore *store; /* borrowed; the source appends to it */
    AppSource *src;    /* NULL in replay */
    const char *model; /* shown in the status line */
    const char *method;
    const char *mode; /* "explore" or "replay" */

    int64_t step;        /* the cursor: current step */
    int32_t layer, head; /* the selected head */
    int focus;           /* index into the view table */
    bool zoom;           /* focused pane alone */
    bool log_scale;      /* spectrum scale */
    bool playing;
    int speed; /* index into the playback speeds */
    Overlay overlay;
    int overlay_scroll;

    PromptKind prompt;
    char input[128];
    size_t input_len;
    char search[128];
    int64_t match_first, match_last; /* the tokens of the last match, or -1 */
    /* A long jump on a live engine (app_go_to): go to job_to once computed;
     * -1: none. job_from: the steps computed when it started. */
    int64_t job_to, job_from;

    Breakpoint breaks[APP_MAX_BREAKS];
    int n_breaks;

    char msg[256]; /* one-line message in the status line */
    bool msg_error;

    int cols, rows;       /* terminal size */
    int mouse_x, mouse_y; /* last click */
    bool quit;
    /* Set by the loop: true when a signal asks to stop; long computations
     * (continue, next segment on a live engine) check it. May be NULL. */
    bool (*interrupted)(void);

    /* Cumulative FLOPs and wall time per layer, per step (grown by
     * app_sync): cum[(step * n_layers + layer) * 3 + {0: exact, 1: executed,
     * 2: wall ns}]. */
    double *cum;
    int64_t cum_steps;
    /* Per step: the attention core's exact and executed FLOPs over steps
     * 0..step summed in the engine's order, and the trace's savings_cum (the
     * whole model's savings): tot[step * 3 + {0, 1, 2}]. no_wall: some row
     * has no wall time (a trace recorded with --no-timing). */
    double *tot;
    bool no_wall;
    int32_t n_layers, n_heads;

    /* drrl diff --tui: trace B and the diverging cells (ui/tui/diff.h); NULL
     * otherwise. While set, the screen is the difference view. */
    struct AppDiff *diff;

    /* drrl tour (ui/tui/tour.h): its state, its keys (tried before the
     * explorer's; < 0: not a tour key) and the narration screen.c draws under
     * the panes; NULL otherwise. */
    struct Tour *tour;
    int (*tour_key)(struct App *app, int32_t key);
    const char *narration_title, *narration;
} App;

/* Initialise app on a store (borrowed) and an optional live source.
 * model/method/mode are borrowed strings shown in the status line. */
void app_init(App *app, TraceStore *store, AppSource *src, const char *model,
              const char *method, const char *mode);
void app_done(App *app);

/* Bring the App's caches up to date with the store. Returns 0, or -1 when
 * out of memory. */
int app_sync(App *app);

/* Apply an action (from a key); returns APP_REDRAW_* flags. */
int app_apply(App *app, KeyAction a);

/* Feed one key: prompts take text, overlays take Esc, otherwise the key's
 * action is applied. Returns APP_REDRAW_* flags. */
int app_key(App *app, int32_t key);

/* A playback tick: advance one step when playing. Returns redraw flags. */
int app_tick(App *app);
/* Milliseconds between playback ticks at the current speed. */
int app_tick_ms(const App *app);

/* Steps available now, and tokens in total (live: the whole input). */
int64_t app_n_steps(const App *app);
int64_t app_n_tokens(const App *app);

/* The record at (step, layer, head), or NULL (trace_store_get: caches the
 * step's records; use for the current step). */
const TraceRecord *app_rec(const App *app, int64_t step, int32_t layer, int32_t head);

/* Fill *out with the record at (step, layer, head); false when there is none.
 * Allocation-free (trace_store_read): use it in loops over many steps. */
bool app_read(const App *app, int64_t step, int32_t layer, int32_t head, TraceRecord *out);

/* Cumulative exact/executed FLOPs and wall ns of one layer (layer < 0: all)
 * over steps 0..step. */
void app_cum(const App *app, int64_t step, int32_t layer, double *exact, double *executed,
             double *wall_ns);

/* The figures every command reports (flops_savings in attn/flops.h), over
 * steps 0..step: the attention core's FLOPs and savings (the sums of the
 * trace's flops_exact and flops_executed) and the whole model's savings (the
 * trace's savings_cum). False when there are none yet. */
typedef struct AppFigures {
    double attn_exact, attn_executed, attn_savings;
    double savings; /* whole model */
    double wall_ns;
    bool wall_known;
} AppFigures;
bool app_figures(const App *app, int64_t step, AppFigures *f);

/* Whether a breakpoint fires at step (step > 0 compares with step - 1). */
bool app_break_hits(const App *app, const Breakpoint *b, int64_t step);

/* Two integers in lo..hi written A<sep>B, sep one of the characters seps
 * (a breakpoint's L.H with ".", --size COLSxROWS with "xX"), nothing after:
 * 0, or -1 when s is not such a pair. */
int app_parse_pair(const char *s, const char *seps, long lo, long hi, long *a, long *b);

/* Parse a breakpoint spec ("rank", "rank 2.3", "err 0.05", "err 0.05 2.3",
 * "masked", "token 120", "head 2.3" = rank change at layer 2 head 3).
 * Returns 0, or -1 with a message in why (at least 128 bytes). */
int app_parse_break(const char *spec, Breakpoint *b, char *why, size_t why_n);

/* Describe a breakpoint in words into buf. */
void app_describe_break(const Breakpoint *b, char *buf, size_t n);

/* Go to step s. Live, when s is not computed yet, this starts a job
 * instead: the loop calls app_work until app_busy is false (headless: at
 * once; on a terminal: between keys, drawing the progress), and Esc or
 * Ctrl-C cancel it (app_cancel). Returns APP_REDRAW_*. */
int app_go_to(App *app, int64_t s);
bool app_busy(const App *app);
/* One piece of the job: one call of the source's advance (a segment). */
int app_work(App *app);
/* Stop the job where it is (the cursor stays), saying so. */
void app_cancel(App *app);

/* Display text of token s: the store's, else (live) the input's; NULL when
 * there is none. */
const char *app_token_text(const App *app, int64_t s);

/* Search (search.c) for app->search from the cursor, forward (dir > 0) or
 * back, wrapping: a substring of the text, across tokens and ignoring ASCII
 * case (\n, \t, \r as the token strip writes them), or "#ID" for a token
 * id (live only). Moves the cursor to the match's first token and sets
 * match_first/match_last, which the token strip highlights. */
int app_search(App *app, int dir);

/* Set the status-line message (printf-style). */
void app_message(App *app, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
