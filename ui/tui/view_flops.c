/* view_flops.c: the FLOP ledger. Cumulative exact and executed FLOPs (the
 * engine counts overheads such as basis refreshes in "executed"), savings in
 * percent, per layer and in total, a sparkline of the savings per token, and
 * the wall time measured. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn/flops.h"
#include "tui/views.h"

static void flops_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "FLOP ledger  tokens 1-%lld", (long long)app->step + 1);
}

static void row(Canvas *c, CanvasRect r, int y, const char *label, double e, double x, bool sel)
{
    char a[32], b[32];
    int role = sel ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_NORMAL;
    canvas_text(c, r.x, y, 7, role, sel ? CANVAS_BOLD : 0, label);
    canvas_printf(c, r.x + 7, y, 11, CANVAS_ROLE_NORMAL, 0, "%10s",
                  views_flops(e, a, sizeof a));
    canvas_printf(c, r.x + 18, y, 11, CANVAS_ROLE_NORMAL, 0, "%10s",
                  views_flops(x, b, sizeof b));
    double sv = flops_savings(e, x);
    views_percent(c, r.x + 29, y, 8, sv);
    int bw = r.w - 38;
    if (bw > 4)
        canvas_hbar(c, r.x + 38, y, bw, sv, CANVAS_ROLE_OK);
}

/* Savings token by token: blank at 0, '-' (bad) below 0, blocks from 0 up
 * to the largest saving shown. */
static void per_token(const App *app, Canvas *c, int x, int y, int w)
{
    int64_t n = app->step + 1, from = n > w ? n - w : 0;
    double hi = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t s = from; s < n; s++) {
            double e1, x1, w1, e0 = 0, x0 = 0, w0;
            app_cum(app, s, -1, &e1, &x1, &w1);
            if (s > 0)
                app_cum(app, s - 1, -1, &e0, &x0, &w0);
            double v = flops_savings(e1 - e0, x1 - x0);
            if (pass == 0) {
                hi = fmax(hi, v);
                continue;
            }
            uint32_t ch = ' ';
            int role = CANVAS_ROLE_OK;
            if (v < 0)
                ch = '-', role = CANVAS_ROLE_BAD;
            else if (v > 0)
                ch = c->g->spark[canvas_level8(v / hi)];
            canvas_put(c, x + (int)(s - from), y, ch, role, 0);
        }
}

static void flops_draw(const App *app, Canvas *c, CanvasRect r)
{
    AppFigures f;
    if (app->n_layers <= 0 || app->step >= app->cum_steps || !app_figures(app, app->step, &f)) {
        views_note(c, r, "no FLOPs yet");
        return;
    }
    int y = r.y;
    canvas_text(c, r.x, y, r.w, CANVAS_ROLE_DIM, 0, "attn core   exact   executed   saved");
    y++;
    row(c, r, y++, "total", f.attn_exact, f.attn_executed, false);
    /* rows left for layers: keep 3 for the whole model, the sparkline and the time */
    int rows = r.y + r.h - y - 3;
    if (rows > 0) {
        int n = app->n_layers < rows ? app->n_layers : rows;
        int first = app->layer - n / 2;
        if (first + n > app->n_layers)
            first = app->n_layers - n;
        if (first < 0)
            first = 0;
        if (n < app->n_layers && n >= 2) {
            n--; /* one line says which layers are shown */
            if (app->layer >= first + n)
                first = app->layer - n + 1;
        }
        for (int l = first; l < first + n; l++) {
            double le, lx, lw;
            app_cum(app, app->step, l, &le, &lx, &lw);
            char lab[16];
            snprintf(lab, sizeof lab, "L%d", l);
            row(c, r, y++, lab, le, lx, l == app->layer);
        }
        if (n < app->n_layers && y < r.y + r.h - 3)
            canvas_printf(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, "(layers %d-%d of %d)", first,
                          first + n - 1, app->n_layers);
    }
    if (y < r.y + r.h) {
        canvas_text(c, r.x, y, 29, CANVAS_ROLE_NORMAL, CANVAS_BOLD, "whole model (all FLOPs)");
        views_percent(c, r.x + 29, y, 8, f.savings);
        y++;
    }
    if (y < r.y + r.h) {
        int lw = 17;
        canvas_text(c, r.x, y, lw, CANVAS_ROLE_DIM, 0, "core per token");
        if (r.w > lw)
            per_token(app, c, r.x + lw, y, r.w - lw);
        y++;
    }
    if (y < r.y + r.h) {
        double e0 = 0, x0 = 0, w0 = 0;
        if (app->step > 0)
            app_cum(app, app->step - 1, -1, &e0, &x0, &w0);
        char a[32], b[32];
        if (f.wall_known)
            canvas_printf(
                c, r.x, y, r.w, CANVAS_ROLE_DIM, 0, "wall time: this token %s, all %s",
                views_time(f.wall_ns - w0, a, sizeof a), views_time(f.wall_ns, b, sizeof b));
        else
            canvas_text(c, r.x, y, r.w, CANVAS_ROLE_DIM, 0,
                        "wall time: not recorded (--no-timing)");
    }
}

VIEW_DEFINE(flops, NULL,
            "A FLOP is one floating-point operation (a multiply or an add). "
            "The table is the attention core, the part a rank changes: 'exact' is "
            "what full attention would have executed for the tokens so far, "
            "'executed' what drrl really executed at the chosen ranks, with the "
            "overheads of low rank (projecting onto the bases, refreshing them at "
            "segment boundaries). Saved = 1 - executed/exact: negative when the "
            "overheads outweigh the savings, which is shown, not hidden. 'whole "
            "model' counts every FLOP (projections, MLP, norms, the policy "
            "network and the output layer too): the same two figures drrl run "
            "prints, and the trace's savings_cum. The per-token line shows the "
            "core's savings token by token ('-': a loss, blank: none); the wall "
            "time is measured, not estimated.");
