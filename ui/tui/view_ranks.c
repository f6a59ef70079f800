/* view_ranks.c: the rank grid (layers x heads, the chosen rank at the
 * current token, colour-coded, with a legend) and each head's rank history
 * as a sparkline. A click on a cell selects that head. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tui/views.h"

/* Geometry of the grid inside the pane. */
typedef struct Grid {
    int label_w, cell_w, digits;
    int x0, y0; /* top-left of the first cell (layer first_layer, head 0) */
    int first_layer, n_rows;
    int n_heads;
} Grid;

static int head_dim_of(const App *app)
{
    TraceRecord r_buf;
    const TraceRecord *r = app_read(app, app->step, 0, 0, &r_buf) ? &r_buf : NULL;
    return r && r->head_dim > 0 ? r->head_dim : 64;
}

static Grid grid_geometry(const App *app, CanvasRect r)
{
    Grid g;
    g.digits = views_digits(head_dim_of(app));
    g.label_w = 2 + views_digits(app->n_layers > 0 ? app->n_layers - 1 : 0) + 1;
    /* heat glyph + rank, and a space between cells when it fits beside the
     * history sparklines */
    g.cell_w = g.digits + 1;
    if (g.label_w + app->n_heads * (g.digits + 2) + 24 <= r.w)
        g.cell_w = g.digits + 2;
    /* too many heads for numbers: glyphs only (the legend reads them) */
    if (g.label_w + app->n_heads * g.cell_w > r.w)
        g.cell_w = g.label_w + app->n_heads * 2 <= r.w ? 2 : 1;
    g.x0 = r.x + g.label_w;
    g.y0 = r.y + 1;
    g.n_heads = app->n_heads;
    int rows = r.h - 3; /* header, legend and a gap */
    if (rows < 1)
        rows = 1;
    g.n_rows = app->n_layers < rows ? app->n_layers : rows;
    g.first_layer = app->layer - g.n_rows / 2;
    if (g.first_layer + g.n_rows > app->n_layers)
        g.first_layer = app->n_layers - g.n_rows;
    if (g.first_layer < 0)
        g.first_layer = 0;
    return g;
}

static double level_of(int rank, int head_dim)
{
    return head_dim > 0 ? (double)rank / head_dim : 0;
}

static void ranks_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "Ranks  L%d H%d", app->layer, app->head);
}

static void draw_legend(const App *app, Canvas *c, int x, int y, int w)
{
    const TraceMeta *m = trace_store_meta(app->store);
    int hd = head_dim_of(app);
    int col = canvas_text(c, x, y, w, CANVAS_ROLE_DIM, 0, "rank ");
    int n_grid = m && m->n_grid > 0 && m->rank_grid ? m->n_grid : 8;
    /* Show at most as many grid ranks as fit, always the last (exact). */
    for (int i = 0; i < n_grid && col < w; i++) {
        int rank = m && m->n_grid > 0 && m->rank_grid ? m->rank_grid[i] : hd * (i + 1) / 8;
        char num[16];
        snprintf(num, sizeof num, "%d", rank);
        int need = 1 + canvas_text_width(c, num) + 1;
        if (col + need > w)
            break;
        double lv = level_of(rank, hd);
        col += canvas_put(c, x + col, y, canvas_glyphs(c)->spark[canvas_level8(lv)],
                          canvas_heat_role(lv), 0);
        col += canvas_text(c, x + col, y, w - col, CANVAS_ROLE_DIM, 0, num);
        col++;
    }
    if (col + 9 <= w)
        canvas_text(c, x + col, y, w - col, CANVAS_ROLE_DIM, 0, "(exact=");
    if (col + 9 <= w) {
        char num[16];
        snprintf(num, sizeof num, "%d)", hd);
        canvas_text(c, x + col + 7, y, w - col - 7, CANVAS_ROLE_DIM, 0, num);
    }
}

static void draw_history(const App *app, Canvas *c, CanvasRect r)
{
    /* One line per head of the selected layer: "H3 ▁▂▃▅ 16". */
    if (r.w < 12 || r.h < 2)
        return;
    int hd = head_dim_of(app);
    canvas_printf(c, r.x, r.y, r.w, CANVAS_ROLE_DIM, 0, "L%d rank history", app->layer);
    int rows = r.h - 1;
    int first = 0;
    if (app->n_heads > rows) {
        first = app->head - rows / 2;
        if (first + rows > app->n_heads)
            first = app->n_heads - rows;
        if (first < 0)
            first = 0;
    }
    int lw = 2 + views_digits(app->n_heads - 1) + 1;
    int nw = views_digits(hd) + 1;
    int sw = r.w - lw - nw;
    if (sw < 2)
        return;
    int64_t n = app->step + 1;
    int64_t from = n > sw ? n - sw : 0;
    double *v = malloc((size_t)(n - from) * sizeof *v);
    if (!v)
        return;
    for (int h = first; h < app->n_heads && h - first < rows; h++) {
        int y = r.y + 1 + (h - first);
        bool sel = h == app->head;
        canvas_printf(c, r.x, y, lw, sel ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_DIM,
                      sel ? CANVAS_BOLD : 0, "%cH%d", sel ? '>' : ' ', h);
        for (int64_t s = from; s < n; s++) {
            TraceRecord rec;
            v[s - from] = app_read(app, s, app->layer, h, &rec) ? rec.rank : NAN;
        }
        /* the same glyph per rank as the grid and its legend (canvas_level8) */
        for (int64_t s = from; s < n; s++)
            if (!isnan(v[s - from]))
                canvas_put(
                    c, r.x + lw + (int)(s - from), y,
                    canvas_glyphs(c)->spark[canvas_level8(level_of((int)v[s - from], hd))],
                    CANVAS_ROLE_KEYS, 0);
        TraceRecord cur_buf;
        const TraceRecord *cur =
            app_read(app, app->step, app->layer, h, &cur_buf) ? &cur_buf : NULL;
        if (cur)
            canvas_printf(c, r.x + lw + sw, y, nw, CANVAS_ROLE_NORMAL, 0, "%*d", nw, cur->rank);
    }
    free(v);
}

static void ranks_draw(const App *app, Canvas *c, CanvasRect r)
{
    TraceRecord first;
    if (app->n_layers <= 0 || !app_read(app, app->step, 0, 0, &first)) {
        views_note(c, r, "no ranks yet");
        return;
    }
    const CanvasGlyphs *gl = canvas_glyphs(c);
    Grid g = grid_geometry(app, r);
    int hd = head_dim_of(app);
    int grid_w = g.label_w + g.n_heads * g.cell_w;
    if (grid_w > r.w)
        grid_w = r.w;
    /* header: head numbers, the selected one marked */
    if (g.cell_w <= g.digits)
        canvas_put(c, g.x0 + app->head * g.cell_w, r.y, gl->arrow_d, CANVAS_ROLE_CURSOR,
                   CANVAS_BOLD);
    for (int h = 0; h < g.n_heads && g.cell_w > g.digits; h++) {
        int x = g.x0 + h * g.cell_w;
        canvas_printf(c, x + 1, r.y, g.digits,
                      h == app->head ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_DIM,
                      h == app->head ? CANVAS_BOLD : 0, "%*d", g.digits, h);
        if (h == app->head)
            canvas_put(c, x + g.digits - views_digits(h), r.y, gl->arrow_d, CANVAS_ROLE_CURSOR,
                       CANVAS_BOLD);
    }
    for (int i = 0; i < g.n_rows; i++) {
        int l = g.first_layer + i;
        int y = g.y0 + i;
        bool sel_l = l == app->layer;
        if (sel_l)
            canvas_put(c, r.x, y, gl->arrow_r, CANVAS_ROLE_CURSOR, CANVAS_BOLD);
        canvas_printf(c, r.x + 1, y, g.label_w - 1,
                      sel_l ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_DIM, sel_l ? CANVAS_BOLD : 0,
                      "L%d", l);
        for (int h = 0; h < g.n_heads; h++) {
            int x = g.x0 + h * g.cell_w;
            if (x + (g.cell_w > g.digits ? g.digits + 1 : 1) > r.x + r.w)
                break;
            TraceRecord rec_buf;
            const TraceRecord *rec = app_read(app, app->step, l, h, &rec_buf) ? &rec_buf : NULL;
            if (!rec)
                continue;
            TraceRecord prev_buf;
            const TraceRecord *prev =
                app_read(app, app->step - 1, l, h, &prev_buf) ? &prev_buf : NULL;
            double lv = level_of(rec->rank, hd);
            int role = canvas_heat_role(lv);
            int attr = prev && prev->rank != rec->rank ? CANVAS_BOLD | CANVAS_UNDERLINE : 0;
            bool sel = sel_l && h == app->head;
            if (sel)
                attr |= CANVAS_REVERSE;
            canvas_put(c, x, y, gl->spark[canvas_level8(lv)], role, attr);
            if (g.cell_w > g.digits)
                canvas_printf(c, x + 1, y, g.digits, sel ? CANVAS_ROLE_CURSOR : role, attr,
                              "%*d", g.digits, rec->rank);
        }
    }
    if (g.first_layer > 0 || g.first_layer + g.n_rows < app->n_layers)
        canvas_printf(c, r.x, g.y0 + g.n_rows, r.w, CANVAS_ROLE_DIM, 0, "layers %d-%d of %d",
                      g.first_layer, g.first_layer + g.n_rows - 1, app->n_layers);
    draw_legend(app, c, r.x, r.y + r.h - 1, r.w);
    /* sparklines beside the grid when there is room, else below it */
    int side = r.w - grid_w - 2;
    if (side >= 16) {
        draw_history(app, c, (CanvasRect){r.x + grid_w + 2, r.y, side, r.h - 1});
    } else {
        int below = g.y0 + g.n_rows + 1;
        int hh = r.y + r.h - 1 - below;
        if (hh >= 2)
            draw_history(app, c, (CanvasRect){r.x, below, r.w, hh});
    }
}

static int ranks_handle(App *app, KeyAction a, CanvasRect r)
{
    if (a != ACTION_select_click)
        return APP_REDRAW_NONE;
    Grid g = grid_geometry(app, r);
    int dx = app->mouse_x - g.x0, dy = app->mouse_y - g.y0;
    if (dx < 0 || dy < 0 || dy >= g.n_rows)
        return APP_REDRAW_NONE;
    int h = dx / g.cell_w;
    if (h >= g.n_heads)
        return APP_REDRAW_NONE;
    app->layer = g.first_layer + dy;
    app->head = h;
    return APP_REDRAW_ALL;
}

VIEW_DEFINE(ranks, ranks_handle,
            "Each cell is one attention head (rows are layers, columns heads) and "
            "shows the rank it used for the current token: how many directions of "
            "its keys and values were kept. The taller the block, the higher the "
            "rank; the largest rank is exact attention. A rank r costs about r/d "
            "of the exact work, so low blocks are where the savings come from. "
            "Underlined cells changed rank at this token. On the right, each head "
            "of the selected layer has its rank history over the tokens so far. "
            "Arrows or a click select a head; the other panes follow it.");
