/* diff.c: the difference view's state and keys (see diff.h). */
#include "config.h"

#include "tui/diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/layout.h"
#include "trace/trace_diff.h"

const KeyBinding diff_keys[] = {
#define X(name, k1, k2, keys, help) {DIFF_ACTION_##name, #name, k1, k2, keys, help},
    UI_DIFF_KEYS(X)
#undef X
};
const int diff_keys_count = DIFF_ACTION_COUNT - 1;

DiffAction diff_key_action(int32_t key)
{
    return (DiffAction)keys_lookup(diff_keys, diff_keys_count, key);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

int diff_init(AppDiff *d, const TraceStore *a, const TraceStore *b, const char *name_a,
              const char *name_b)
{
    memset(d, 0, sizeof *d);
    d->b = b;
    d->name_a = name_a;
    d->name_b = name_b;
    d->first_step = -1;
    /* steps are 0-based and dense in a trace: the last present step + 1 */
    int64_t na = trace_store_n_steps(a), nb = trace_store_n_steps(b);
    int64_t sa = na > 0 ? trace_store_step_at(a, (size_t)na - 1) + 1 : 0;
    int64_t sb = nb > 0 ? trace_store_step_at(b, (size_t)nb - 1) + 1 : 0;
    d->n_steps = max64(sa, sb);
    d->n_layers = (int32_t)max64(trace_store_n_layers(a), trace_store_n_layers(b));
    d->n_heads = (int32_t)max64(trace_store_n_heads(a), trace_store_n_heads(b));
    size_t cells = (size_t)d->n_steps * (size_t)d->n_layers * (size_t)d->n_heads;
    if (d->n_steps > 0 && (size_t)d->n_steps > SIZE_MAX / 64 / (cells / (size_t)d->n_steps + 1))
        return -1;
    d->differs = calloc(cells ? cells : 1, 1);
    d->step_cells = calloc((size_t)(d->n_steps ? d->n_steps : 1), sizeof *d->step_cells);
    if (!d->differs || !d->step_cells) {
        diff_done(d);
        return -1;
    }
    TraceRecord r0a, r0b;
    if (trace_store_row(a, 0, &r0a) && trace_store_row(b, 0, &r0b)) {
        TraceDiff td;
        memset(&td, 0, sizeof td);
        snprintf(td.method_a, sizeof td.method_a, "%s", r0a.method ? r0a.method : "");
        snprintf(td.method_b, sizeof td.method_b, "%s", r0b.method ? r0b.method : "");
        td.methods_differ = strcmp(td.method_a, td.method_b) != 0;
        td.threshold_a = r0a.threshold, td.threshold_b = r0b.threshold;
        td.thresholds_differ = (float)r0a.threshold != (float)r0b.threshold;
        trace_diff_note(&td, d->note, sizeof d->note);
    }
    int64_t fig_step = -1;
    int32_t fig_layer = 0, fig_head = 0;
    int fig_col = -1;
    size_t k = 0;
    for (int64_t s = 0; s < d->n_steps; s++)
        for (int32_t l = 0; l < d->n_layers; l++)
            for (int32_t h = 0; h < d->n_heads; h++, k++) {
                TraceRecord ra, rb;
                int ha = trace_store_read(a, s, l, h, &ra);
                int hb = trace_store_read(b, s, l, h, &rb);
                if (!ha && !hb)
                    continue;
                int col = -1, dec = -1;
                if (ha && hb) {
                    col = trace_diff_rows(&ra, &rb, 0);
                    if (col < 0)
                        continue;
                    dec = trace_diff_decision(&ra, &rb);
                }
                d->differs[k] = 1;
                d->step_cells[s]++;
                d->total_cells++;
                if (d->first_step < 0 && (dec >= 0 || col < 0)) {
                    d->first_step = s;
                    d->first_layer = l;
                    d->first_head = h;
                    d->first_column = dec;
                    d->first_is_decision = true;
                } else if (fig_step < 0 && dec < 0) {
                    fig_step = s, fig_layer = l, fig_head = h, fig_col = col;
                }
            }
    if (d->first_step < 0 && fig_step >= 0) { /* no decision differs: the first figure */
        d->first_step = fig_step;
        d->first_layer = fig_layer;
        d->first_head = fig_head;
        d->first_column = fig_col;
    }
    return 0;
}

void diff_done(AppDiff *d)
{
    if (!d)
        return;
    free(d->differs);
    free(d->step_cells);
    d->differs = NULL;
    d->step_cells = NULL;
}

bool diff_cell(const AppDiff *d, int64_t step, int32_t layer, int32_t head)
{
    if (!d->differs || step < 0 || step >= d->n_steps || layer < 0 || layer >= d->n_layers ||
        head < 0 || head >= d->n_heads)
        return false;
    return d->differs[((size_t)step * (size_t)d->n_layers + (size_t)layer) *
                          (size_t)d->n_heads +
                      (size_t)head] != 0;
}

int64_t diff_find_step(const AppDiff *d, int64_t from, int dir)
{
    if (!d->step_cells)
        return -1;
    for (int64_t s = from + (dir > 0 ? 1 : -1); s >= 0 && s<d->n_steps; s += dir> 0 ? 1 : -1)
        if (d->step_cells[s] > 0)
            return s;
    return -1;
}

/* Select the first diverging head of step s (row-major), if any. */
static void select_first_cell(App *app, int64_t s)
{
    const AppDiff *d = app->diff;
    for (int32_t l = 0; l < d->n_layers; l++)
        for (int32_t h = 0; h < d->n_heads; h++)
            if (diff_cell(d, s, l, h)) {
                app->layer = l;
                app->head = h;
                return;
            }
}

int diff_apply(App *app, DiffAction a)
{
    AppDiff *d = app->diff;
    int64_t n = app_n_steps(app);
    switch (a) {
    case DIFF_ACTION_first:
        if (d->first_step < 0) {
            app_message(app, false, "the traces do not diverge");
            return APP_REDRAW_ALL;
        }
        app->step = d->first_step < n ? d->first_step : n - 1;
        app->layer = d->first_layer < app->n_layers ? d->first_layer : app->layer;
        app->head = d->first_head < app->n_heads ? d->first_head : app->head;
        app_message(app, false, "first divergence");
        return APP_REDRAW_ALL;
    case DIFF_ACTION_next:
    case DIFF_ACTION_prev: {
        int64_t s = diff_find_step(d, app->step, a == DIFF_ACTION_next ? 1 : -1);
        if (s < 0 || s >= n) {
            app_message(app, false, "no %s divergence",
                        a == DIFF_ACTION_next ? "later" : "earlier");
            return APP_REDRAW_ALL;
        }
        app->step = s;
        if (!diff_cell(d, s, app->layer, app->head))
            select_first_cell(app, s);
        return APP_REDRAW_ALL;
    }
    case DIFF_ACTION_show:
        d->show_ranks = !d->show_ranks;
        return APP_REDRAW_ALL;
    case DIFF_ACTION_NONE:
    case DIFF_ACTION_COUNT:
        break;
    }
    return APP_REDRAW_NONE;
}

CanvasRect diff_frame(const App *app, int cols, int rows)
{
    Layout z;
    layout_compute(&z, cols, rows, app->n_layers, app->n_heads, false, VIEW_ranks, true);
    return z.pane[VIEW_ranks];
}
