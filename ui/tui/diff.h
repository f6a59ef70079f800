/* diff.h: the TUI's difference view of two traces (`drrl diff --tui A B`).
 *
 * The explorer's App runs on trace A (its tokens strip, status line, key
 * table and navigation); an AppDiff attached to it (app->diff) holds trace B
 * and which (step, layer, head) cells diverge. While app->diff is set,
 * screen_draw shows the tokens strip over view_diff (ui/tui/view_diff.c), and
 * app_key offers the keys of UI_DIFF_KEYS before the explorer's own.
 *
 * A cell diverges when its rows differ in a decision or a figure
 * (trace_diff_rows: not the method label, the threshold or wall_ns), or when
 * only one trace has the row. The first divergence is the first differing
 * decision (trace_diff_decision: a rank or the mask), else the first
 * differing figure; note says when the traces ran different methods or
 * thresholds.
 */
#ifndef DRRL_DIFF_H
#define DRRL_DIFF_H

#include <stdbool.h>
#include <stdint.h>

#include "tui/app.h"
#include "trace/trace_store.h"

/* X(name, key1, key2, "keys as shown", "help text"), as UI_KEYS (keys.h):
 * the keys only the difference view has. */
#define UI_DIFF_KEYS(X)                                                                        \
    X(first, 'f', KEY_CODE_NONE, "f", "go to the first divergence (its step and head)")        \
    X(next, 'd', KEY_CODE_NONE, "d", "next step where the traces diverge")                     \
    X(prev, 'D', KEY_CODE_NONE, "D", "previous step where the traces diverge")                 \
    X(show, 'v', KEY_CODE_NONE, "v", "grid: signed rank delta B-A, or ranks A/B")

typedef enum DiffAction {
    DIFF_ACTION_NONE = 0,
#define X(name, k1, k2, keys, help) DIFF_ACTION_##name,
    UI_DIFF_KEYS(X)
#undef X
        DIFF_ACTION_COUNT
} DiffAction;

extern const KeyBinding diff_keys[];
extern const int diff_keys_count;

typedef struct AppDiff {
    const TraceStore *b; /* borrowed */
    const char *name_a, *name_b;
    int64_t n_steps; /* steps of the longer trace */
    int32_t n_layers, n_heads;
    uint8_t *differs;    /* [n_steps * n_layers * n_heads]: 1 where the cell diverges */
    int64_t *step_cells; /* [n_steps]: diverging cells per step */
    /* The first divergence in (step, layer, head) order; first_step < 0: none. */
    int64_t first_step;
    int32_t first_layer, first_head;
    int first_column; /* trace_csv_columns index; -1: the row is in one trace only */
    bool first_is_decision;
    char note[320];      /* trace_diff_note: different methods or thresholds, or "" */
    int64_t total_cells; /* diverging cells over the whole traces */
    bool show_ranks;     /* grid shows "A/B" ranks instead of the delta */
} AppDiff;

/* Compare a (the App's store) with b into *d; names are borrowed labels.
 * Returns 0, or -1 when out of memory (*d is then empty; diff_done is safe). */
int diff_init(AppDiff *d, const TraceStore *a, const TraceStore *b, const char *name_a,
              const char *name_b);
void diff_done(AppDiff *d);

/* Whether (step, layer, head) diverges; out of range: false. */
bool diff_cell(const AppDiff *d, int64_t step, int32_t layer, int32_t head);

/* The next (dir > 0) or previous (dir < 0) step after/before `from` with a
 * diverging cell, or -1. */
int64_t diff_find_step(const AppDiff *d, int64_t from, int dir);

/* The action bound to key in the difference view, or DIFF_ACTION_NONE. */
DiffAction diff_key_action(int32_t key);

/* Apply a difference-view action to app (app->diff set). Returns
 * APP_REDRAW_* flags. */
int diff_apply(App *app, DiffAction a);

/* The difference view's frame on a cols x rows screen: the body below the
 * tokens strip, where the layout puts a zoomed pane (layout.h); w == 0 when
 * the screen is too small. */
#include "tui/canvas.h"
CanvasRect diff_frame(const App *app, int cols, int rows);

/* The view drawn below the tokens strip while app->diff is set. */
#include "tui/views.h"
extern const View view_diff;

#endif
