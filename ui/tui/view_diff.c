/* view_diff.c: the difference view (drrl diff --tui): a layers x heads grid
 * at the current token with the signed rank delta B-A (or both ranks), the
 * diverging heads marked, the first divergence, and the selected head's
 * rank, measured error and FLOPs in A and B with their deltas. Colours are
 * roles (POS: B uses a higher rank, NEG: lower, WARN: same rank but another
 * column differs); the glyphs alone read the same in monochrome and in
 * text dumps: "=" agrees, "+N"/"-N" rank delta, "~" other column, "?" row in
 * one trace only, ">" before the selected head, "!" before the first
 * divergence. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tui/diff.h"
#include "trace/trace_csv.h"
#include "trace/trace_diff.h"

static void diff_title(const App *app, char *buf, size_t n)
{
    const AppDiff *d = app->diff;
    if (!d) {
        snprintf(buf, n, "Diff");
        return;
    }
    int64_t cells = app->step < d->n_steps ? d->step_cells[app->step] : 0;
    snprintf(buf, n, "Diff B-A  L%d H%d  %lld of %d heads diverge here", app->layer, app->head,
             (long long)cells, d->n_layers * d->n_heads);
}

/* A cell's text and role; returns the text's width in columns. */
static void cell_text(const AppDiff *d, int64_t step, int32_t l, int32_t h,
                      const TraceRecord *a, const TraceRecord *b, char *buf, size_t n,
                      int *role)
{
    if (!a || !b) {
        snprintf(buf, n, (a || b) ? "?" : "");
        *role = CANVAS_ROLE_BAD;
        return;
    }
    bool div = diff_cell(d, step, l, h);
    if (d->show_ranks) {
        snprintf(buf, n, "%d/%d", a->rank, b->rank);
        *role = !div                ? CANVAS_ROLE_DIM
                : b->rank > a->rank ? CANVAS_ROLE_POS
                : b->rank < a->rank ? CANVAS_ROLE_NEG
                                    : CANVAS_ROLE_WARN;
        return;
    }
    int dr = b->rank - a->rank;
    if (!div) {
        snprintf(buf, n, "=");
        *role = CANVAS_ROLE_DIM;
    } else if (dr == 0) {
        snprintf(buf, n, "~");
        *role = CANVAS_ROLE_WARN;
    } else {
        snprintf(buf, n, "%+d", dr);
        *role = dr > 0 ? CANVAS_ROLE_POS : CANVAS_ROLE_NEG;
    }
}

/* "A x  B y  B-A z" for one quantity, in fixed columns. */
static void detail_row(Canvas *c, int x, int y, int w, const char *label, const char *va,
                       const char *vb, const char *dv, int role)
{
    canvas_text(c, x, y, w, CANVAS_ROLE_DIM, 0, label);
    canvas_text(c, x + 14, y, w - 14, CANVAS_ROLE_NORMAL, 0, va);
    canvas_text(c, x + 27, y, w - 27, CANVAS_ROLE_NORMAL, 0, vb);
    canvas_text(c, x + 40, y, w - 40, role, CANVAS_BOLD, dv);
}

/* The role of a change from a to b: up when b > a, down when b < a, else
 * (equal, or not comparable) normal. */
static int delta_role(double a, double b, int up, int down)
{
    return b > a ? up : b < a ? down : CANVAS_ROLE_NORMAL;
}

static void draw_details(const App *app, Canvas *c, int x, int y, int w, int h)
{
    const AppDiff *d = app->diff;
    if (h < 1)
        return;
    TraceRecord ra, rb;
    bool ha = app_read(app, app->step, app->layer, app->head, &ra);
    bool hb = trace_store_read(d->b, app->step, app->layer, app->head, &rb) != 0;
    char head[48];
    snprintf(head, sizeof head, "L%d H%d", app->layer, app->head);
    detail_row(c, x, y, w, head, "A", "B", "B-A", CANVAS_ROLE_TITLE);
    if (!ha || !hb) {
        if (h >= 2)
            canvas_printf(c, x, y + 1, w, CANVAS_ROLE_BAD, 0, "no row in %s at this token",
                          !ha && !hb ? "either trace"
                          : !ha      ? "A"
                                     : "B");
        return;
    }
    char va[32], vb[32], dv[32];
    int dr = rb.rank - ra.rank;
    snprintf(va, sizeof va, "%d/%d", ra.rank, ra.head_dim);
    snprintf(vb, sizeof vb, "%d/%d", rb.rank, rb.head_dim);
    snprintf(dv, sizeof dv, "%+d", dr);
    if (h >= 2)
        detail_row(c, x, y + 1, w, "rank", va, vb, dv,
                   delta_role(ra.rank, rb.rank, CANVAS_ROLE_POS, CANVAS_ROLE_NEG));
    double de = rb.measured_error - ra.measured_error;
    snprintf(va, sizeof va, "%.4g", ra.measured_error);
    snprintf(vb, sizeof vb, "%.4g", rb.measured_error);
    snprintf(dv, sizeof dv, "%+.3g", de);
    if (h >= 3)
        detail_row(
            c, x, y + 2, w, "error", va, vb, dv,
            delta_role(ra.measured_error, rb.measured_error, CANVAS_ROLE_BAD, CANVAS_ROLE_OK));
    /* FLOPs executed at this token, and summed over tokens 1..this one */
    double fa = ra.flops_executed, fb = rb.flops_executed, ca = 0, cb = 0;
    for (int64_t s = 0; s <= app->step; s++) {
        TraceRecord x1, x2;
        if (trace_store_read(app->store, s, app->layer, app->head, &x1))
            ca += x1.flops_executed;
        if (trace_store_read(d->b, s, app->layer, app->head, &x2))
            cb += x2.flops_executed;
    }
    double pair[2][2] = {{fa, fb}, {ca, cb}};
    static const char *labels[2] = {"FLOPs", "FLOPs so far"};
    for (int i = 0; i < 2 && 3 + i < h; i++) {
        double p = pair[i][0], q = pair[i][1];
        views_flops(p, va, sizeof va);
        views_flops(q, vb, sizeof vb);
        if (p != 0)
            snprintf(dv, sizeof dv, "%+.1f%%", (q - p) / p * 100);
        else
            snprintf(dv, sizeof dv, "%s", q == 0 ? "+0" : "new");
        detail_row(c, x, y + 3 + i, w, labels[i], va, vb, dv,
                   delta_role(p, q, CANVAS_ROLE_BAD, CANVAS_ROLE_OK));
    }
    if (h >= 6) {
        TraceRecord rb2 = rb;
        rb2.method = ra.method;
        int col = trace_diff_rows(&ra, &rb2, 0);
        if (col < 0)
            canvas_text(c, x, y + 5, w, CANVAS_ROLE_DIM, 0, "rows agree (method label aside)");
        else
            canvas_printf(c, x, y + 5, w, CANVAS_ROLE_WARN, 0, "first differing column: %s",
                          trace_csv_columns[col]);
    }
}

/* Where the grid goes in the pane's inside r: two lines of text, a gap and
 * the heads' header above it, the legend and the details below; the rows
 * scroll to keep the selected layer in view. */
typedef struct DiffGrid {
    int cell_w, label_w; /* a cell: its text and a marker column before it */
    int first, n_rows;   /* layers shown */
    int x0, y0;          /* the first cell (layer first, head 0) */
} DiffGrid;

static DiffGrid grid_of(const App *app, CanvasRect r)
{
    const AppDiff *d = app->diff;
    DiffGrid g;
    TraceRecord probe;
    int hd = app_read(app, app->step, 0, 0, &probe) ? probe.head_dim : 64;
    int dig = views_digits(hd);
    g.cell_w = (d->show_ranks ? 2 * dig + 1 : dig + 1) + 1;
    g.label_w = 2 + views_digits(d->n_layers > 0 ? d->n_layers - 1 : 0) + 1;
    int bottom = r.y + r.h, y = r.y + 2 < bottom ? r.y + 2 : bottom;
    int detail_h = 6;
    int room = bottom - y - 3 - detail_h; /* gap, header, legend, details */
    if (room < 1)
        room = bottom - y - 2;
    g.n_rows = d->n_layers < room ? d->n_layers : room;
    if (g.n_rows < 0)
        g.n_rows = 0;
    g.first = app->layer - g.n_rows / 2;
    if (g.first + g.n_rows > d->n_layers)
        g.first = d->n_layers - g.n_rows;
    if (g.first < 0)
        g.first = 0;
    g.x0 = r.x + g.label_w;
    g.y0 = y + 2;
    return g;
}

/* A click on a cell selects that head. */
static int diff_handle(App *app, KeyAction a, CanvasRect r)
{
    if (a != ACTION_select_click || !app->diff)
        return APP_REDRAW_NONE;
    DiffGrid g = grid_of(app, r);
    int dx = app->mouse_x - g.x0, dy = app->mouse_y - g.y0;
    if (dx < 0 || dy < 0 || dy >= g.n_rows || dx / g.cell_w >= app->diff->n_heads ||
        g.x0 + (dx / g.cell_w + 1) * g.cell_w > r.x + r.w)
        return APP_REDRAW_NONE;
    int32_t l = g.first + dy, h = dx / g.cell_w;
    if (l >= app->n_layers || h >= app->n_heads)
        return APP_REDRAW_NONE;
    app->layer = l;
    app->head = h;
    return APP_REDRAW_ALL;
}

static void diff_draw(const App *app, Canvas *c, CanvasRect r)
{
    const AppDiff *d = app->diff;
    if (!d) {
        views_note(c, r, "no second trace (drrl diff --tui A B)");
        return;
    }
    const CanvasGlyphs *g = canvas_glyphs(c);
    int y = r.y, bottom = r.y + r.h;
    const TraceMeta *ma = trace_store_meta(app->store), *mb = trace_store_meta(d->b);
    canvas_printf(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, "A %s (%s)   B %s (%s)", d->name_a,
                  ma && ma->method ? ma->method : "?", d->name_b,
                  mb && mb->method ? mb->method : "?");
    if (y < bottom) {
        if (d->first_step < 0) {
            canvas_text(c, r.x, y, r.w, CANVAS_ROLE_OK, 0,
                        "no divergence: every decision and figure agrees");
        } else {
            bool here = app->step == d->first_step;
            int x = r.x;
            if (here)
                x += canvas_put(c, x, y, '!', CANVAS_ROLE_BAD, CANVAS_BOLD);
            canvas_printf(c, x, y, r.w - (x - r.x), here ? CANVAS_ROLE_BAD : CANVAS_ROLE_NORMAL,
                          here ? CANVAS_BOLD : 0, "first %s: token %lld, L%d H%d, %s%s",
                          d->first_is_decision ? "differing decision" : "differing figure",
                          (long long)d->first_step + 1, d->first_layer, d->first_head,
                          d->first_column < 0 ? "a row in one trace only"
                                              : trace_csv_columns[d->first_column],
                          here ? "  (this token)" : "  (f goes there)");
        }
        y++;
    }
    /* the grid */
    DiffGrid gr = grid_of(app, r);
    int cell_w = gr.cell_w, label_w = gr.label_w, first = gr.first, n_rows = gr.n_rows;
    if (y < bottom) { /* the settings that differ, else a gap */
        if (d->note[0])
            canvas_text(c, r.x, y, r.w, CANVAS_ROLE_WARN, 0, d->note);
        y++;
    }
    if (y < bottom && n_rows > 0) {
        int x = r.x + label_w;
        for (int32_t h = 0; h < d->n_heads && x + cell_w <= r.x + r.w; h++, x += cell_w) {
            char lab[16];
            snprintf(lab, sizeof lab, "H%d", h);
            int lw = canvas_text_width(c, lab);
            canvas_text(c, x + cell_w - lw, y, lw, CANVAS_ROLE_DIM, 0, lab);
        }
        y++;
    }
    for (int i = 0; i < n_rows && y < bottom; i++, y++) {
        int32_t l = first + i;
        canvas_printf(c, r.x, y, label_w,
                      l == app->layer ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_DIM, 0, "L%d", l);
        int x = r.x + label_w;
        for (int32_t h = 0; h < d->n_heads && x + cell_w <= r.x + r.w; h++, x += cell_w) {
            TraceRecord ra, rb;
            bool ha = app_read(app, app->step, l, h, &ra);
            bool hb = trace_store_read(d->b, app->step, l, h, &rb) != 0;
            char txt[32];
            int role;
            cell_text(d, app->step, l, h, ha ? &ra : NULL, hb ? &rb : NULL, txt, sizeof txt,
                      &role);
            bool sel = l == app->layer && h == app->head;
            bool firstcell =
                app->step == d->first_step && l == d->first_layer && h == d->first_head;
            int tw = canvas_text_width(c, txt);
            if (tw > cell_w - 1)
                tw = cell_w - 1;
            int tx = x + cell_w - tw;
            if (sel)
                canvas_put(c, tx - 1, y, g->arrow_r, CANVAS_ROLE_CURSOR, CANVAS_BOLD);
            else if (firstcell)
                canvas_put(c, tx - 1, y, '!', CANVAS_ROLE_BAD, CANVAS_BOLD);
            canvas_text(c, tx, y, tw, role, sel ? CANVAS_REVERSE : 0, txt);
        }
    }
    if (y < bottom) {
        canvas_text(c, r.x, y, r.w, CANVAS_ROLE_DIM, 0,
                    d->show_ranks ? "cells: rank A/B   v: deltas   d/D: next/prev divergence"
                                  : "= same  +N/-N rank B-A  ~ other column  ? one trace only"
                                    "   v: ranks");
        y++;
    }
    draw_details(app, c, r.x, y, r.w, bottom - y);
}

VIEW_DEFINE(diff, diff_handle,
            "Two traces of the same text side by side, aligned by token, layer and head. "
            "Each cell of the grid is one head at this token: '=' when its rows agree in "
            "every column (the method's label and timing aside), '+N' or '-N' when trace B "
            "chose N more or fewer ranks than A, '~' when the ranks agree but another column "
            "(error, bounds, spectrum) differs, '?' when only one trace has the row. Below: "
            "the selected head's rank, measured output error and executed FLOPs in A and B, "
            "with B-A. f jumps to the first divergence, d and D to the next and previous "
            "token where any head diverges, v shows both ranks instead of the delta.");
