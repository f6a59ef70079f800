/* view_attention.c: the selected head's attention rows near the cursor,
 * exact and approximate side by side, their signed difference in half-block
 * cells, and per row the relative error, the KL divergence and the top-k
 * overlap. Live only: a trace does not hold attention rows. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>

#include "tui/views.h"

#define TOPK 5

static void attention_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "Attention  L%d H%d", app->layer, app->head);
}

/* |top-k(a) intersect top-k(b)| for k = min(TOPK, n). */
static int topk_overlap(const float *a, const float *b, int n, int *k_out)
{
    int k = n < TOPK ? n : TOPK, ia[TOPK], ib[TOPK];
    for (int t = 0; t < k; t++) {
        ia[t] = ib[t] = -1;
        for (int i = 0; i < n; i++) {
            bool ua = false, ub = false;
            for (int s = 0; s < t; s++) {
                ua |= ia[s] == i;
                ub |= ib[s] == i;
            }
            if (!ua && (ia[t] < 0 || a[i] > a[ia[t]]))
                ia[t] = i;
            if (!ub && (ib[t] < 0 || b[i] > b[ib[t]]))
                ib[t] = i;
        }
    }
    int o = 0;
    for (int s = 0; s < k; s++)
        for (int t = 0; t < k; t++)
            o += ia[s] == ib[t];
    *k_out = k;
    return o;
}

static void attention_draw(const App *app, Canvas *c, CanvasRect r)
{
    if (!app->src || !app->src->attention) {
        views_note(c, r,
                   "attention rows need the model: a trace does not keep them "
                   "(open it live with drrl explore)");
        return;
    }
    if (r.h < 2 || r.w < 30) {
        views_note(c, r, "too small: z zooms this pane");
        return;
    }
    const CanvasGlyphs *g = canvas_glyphs(c);
    /* metrics: " relerr     KL top5", or without KL when narrow */
    bool with_kl = r.w >= 60;
    int mw = with_kl ? 22 : 14;
    int bw = (r.w - 5 - mw - 3) / 3;
    if (bw < 3) {
        views_note(c, r, "too narrow: z zooms this pane");
        return;
    }
    AppAttnRows rows;
    char why[256] = "";
    if (app->src->attention(app->src->ctx, app->layer, app->head, (size_t)app->step,
                            (size_t)(r.h - 1), &rows, why, sizeof why) != 0) {
        views_note(c, r, why);
        return;
    }
    bool narrow = bw < 12;
    canvas_text(c, r.x + 5, r.y, bw, CANVAS_ROLE_DIM, 0, narrow ? "ex" : "exact");
    canvas_text(c, r.x + 6 + bw, r.y, bw, CANVAS_ROLE_DIM, 0, narrow ? "ap" : "approx");
    canvas_text(c, r.x + 7 + 2 * bw, r.y, bw, CANVAS_ROLE_DIM, 0,
                narrow ? "diff" : "approx-exact");
    canvas_printf(c, r.x + r.w - mw, r.y, mw, CANVAS_ROLE_DIM, 0,
                  with_kl ? " relerr     KL top%d" : " relerr top%d", TOPK);
    /* each row shows its own last bw keys, right-aligned: the rightmost
     * column is the token itself, the one left of it the token before, so
     * attention to "k tokens back" lines up in a column */
    size_t nk = rows.n_keys;
    for (size_t i = 0; i < rows.n_rows; i++) {
        size_t q = rows.first + i;
        int y = r.y + 1 + (int)i;
        const float *ex = rows.exact + i * nk, *ap = rows.approx + i * nk;
        size_t n = q + 1; /* valid keys of this row */
        bool cur = (int64_t)q == app->step;
        canvas_printf(c, r.x, y, 5, cur ? CANVAS_ROLE_CURSOR : CANVAS_ROLE_DIM,
                      cur ? CANVAS_BOLD : 0, "%4zu", q + 1);
        double mx = 0, num = 0, den = 0, kl = 0;
        for (size_t k = 0; k < n; k++) {
            mx = fmax(mx, fmax(ex[k], ap[k]));
            double d = (double)ap[k] - ex[k];
            num += d * d;
            den += (double)ex[k] * ex[k];
            if (ex[k] > 0) /* KL(exact || approx), approx floored */
                kl += ex[k] * log(ex[k] / fmax(ap[k], 1e-12));
        }
        size_t k0 = n > (size_t)bw ? n - (size_t)bw : 0;
        int off = bw - (int)(n - k0);
        for (size_t k = k0; k < n; k++) {
            int col = off + (int)(k - k0);
            double le = mx > 0 ? ex[k] / mx : 0, la = mx > 0 ? ap[k] / mx : 0;
            canvas_put(c, r.x + 5 + col, y, canvas_ramp_glyph(c, le), canvas_heat_role(le), 0);
            canvas_put(c, r.x + 6 + bw + col, y, canvas_ramp_glyph(c, la), canvas_heat_role(la),
                       0);
            double d = mx > 0 ? ((double)ap[k] - ex[k]) / mx : 0;
            uint32_t ch = d > 0.02 ? g->upper : d < -0.02 ? g->lower : (uint32_t)'.';
            canvas_put(c, r.x + 7 + 2 * bw + col, y, ch,
                       d > 0.02    ? CANVAS_ROLE_POS
                       : d < -0.02 ? CANVAS_ROLE_NEG
                                   : CANVAS_ROLE_DIM,
                       0);
        }
        int k = 0, o = topk_overlap(ex, ap, (int)n, &k);
        double rel = den > 0 ? sqrt(num / den) : 0;
        if (with_kl)
            canvas_printf(c, r.x + r.w - mw, y, mw,
                          rel > 0.1 ? CANVAS_ROLE_WARN : CANVAS_ROLE_NORMAL, 0,
                          "%7.4f %6.4f  %d/%d", rel, kl, o, k);
        else
            canvas_printf(c, r.x + r.w - mw, y, mw,
                          rel > 0.1 ? CANVAS_ROLE_WARN : CANVAS_ROLE_NORMAL, 0, "%7.4f  %d/%d",
                          rel, o, k);
    }
    int64_t pos = app->src->position ? app->src->position(app->src->ctx) : app->step + 1;
    if (pos > app->step + 1 && (int)rows.n_rows + 1 < r.h)
        canvas_printf(c, r.x, r.y + r.h - 1, r.w, CANVAS_ROLE_DIM, 0,
                      "approx uses the basis and rank %d of token %lld", rows.rank,
                      (long long)pos);
    app->src->attention_free(app->src->ctx, &rows);
}

VIEW_DEFINE(
    attention, NULL,
    "Each line is one query token (the bottom one is the current token) "
    "and shows how much it attends to the tokens just before it (the "
    "rightmost column is the token itself, then one back, two back...): left with exact "
    "attention, middle with the low-rank approximation, right their "
    "difference (upper half block: the approximation gives more weight, "
    "lower half block: less). relerr is the relative error of the row, KL "
    "the information lost (Kullback-Leibler divergence, 0 = identical), "
    "and top5 how many of the five most attended tokens agree.");
