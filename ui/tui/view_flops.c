/* view_flops.c: the FLOP ledger. Cumulative exact and executed FLOPs (the
 * engine counts overheads such as basis refreshes in "executed"), savings in
 * percent, per layer and in total, a sparkline of the savings per token, and
 * the wall time measured. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
    double sv = e > 0 ? 1 - x / e : 0;
    canvas_printf(c, r.x + 29, y, 8, sv >= 0 ? CANVAS_ROLE_OK : CANVAS_ROLE_BAD, CANVAS_BOLD,
                  fabs(sv) < 9.995 ? "%6.1f%%" : "%6.0f%%", 100 * sv);
    int bw = r.w - 38;
    if (bw > 4)
        canvas_hbar(c, r.x + 38, y, bw, sv, CANVAS_ROLE_OK);
}

static void flops_draw(const App *app, Canvas *c, CanvasRect r)
{
    if (app->n_layers <= 0 || app->step >= app->cum_steps) {
        views_note(c, r, "no FLOPs yet");
        return;
    }
    int y = r.y;
    canvas_text(c, r.x, y, r.w, CANVAS_ROLE_DIM, 0, "            exact   executed   saved");
    y++;
    double e, x, w;
    app_cum(app, app->step, -1, &e, &x, &w);
    row(c, r, y++, "total", e, x, false);
    /* rows left for layers: keep 2 for the sparkline and the time */
    int rows = r.y + r.h - y - 2;
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
        if (n < app->n_layers && y < r.y + r.h - 2)
            canvas_printf(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, "(layers %d-%d of %d)", first,
                          first + n - 1, app->n_layers);
    }
    if (y < r.y + r.h) {
        int lw = 17;
        canvas_text(c, r.x, y, lw, CANVAS_ROLE_DIM, 0, "saved per token");
        /* (the sparkline's range is the shown tokens' min..max with 0) */
        int sw = r.w - lw;
        int64_t n = app->step + 1;
        int64_t from = n > sw ? n - sw : 0;
        if (sw > 0) {
            double *v = malloc((size_t)(n - from) * sizeof *v);
            if (v) {
                for (int64_t s = from; s < n; s++) {
                    double e1, x1, w1, e0 = 0, x0 = 0, w0;
                    app_cum(app, s, -1, &e1, &x1, &w1);
                    if (s > 0)
                        app_cum(app, s - 1, -1, &e0, &x0, &w0);
                    double de = e1 - e0, dx = x1 - x0;
                    v[s - from] = de > 0 ? 1 - dx / de : NAN;
                }
                /* scaled to the values shown, 0 included: savings can be
                 * negative (overheads) and are shown so */
                double lo = 0, hi = 0;
                for (int64_t k = 0; k < n - from; k++)
                    if (!isnan(v[k])) {
                        lo = fmin(lo, v[k]);
                        hi = fmax(hi, v[k]);
                    }
                if (lo < -1) /* a basis refresh can cost many tokens' worth: clip */
                    lo = -1;
                if (hi - lo < 1e-9)
                    hi = lo + 1;
                canvas_sparkline(c, r.x + lw, y, (int)(n - from), v, (int)(n - from), lo, hi,
                                 CANVAS_ROLE_OK);
                free(v);
            }
        }
        y++;
    }
    if (y < r.y + r.h) {
        double e0 = 0, x0 = 0, w0 = 0;
        if (app->step > 0)
            app_cum(app, app->step - 1, -1, &e0, &x0, &w0);
        char a[32], b[32];
        canvas_printf(c, r.x, y, r.w, CANVAS_ROLE_DIM, 0, "wall time: this token %s, all %s",
                      views_time(w - w0, a, sizeof a), views_time(w, b, sizeof b));
    }
}

const View view_flops = {
    .name = "flops",
    .title = flops_title,
    .draw = flops_draw,
    .info = "A FLOP is one floating-point operation (a multiply or an add). "
            "'exact' is what full attention would have executed for the tokens so "
            "far; 'executed' is what drrl really executed at the chosen ranks, "
            "including the overheads of low rank (projecting onto the bases, "
            "refreshing them at segment boundaries). Saved = 1 - executed/exact: "
            "it can be negative when the overheads outweigh the savings, which is "
            "shown, not hidden. The sparkline shows the savings token by token; "
            "the wall time is measured, not estimated.",
};
