/* view_spectrum.c: the selected head's key and value singular values as
 * vertical bars (linear or log scale), the cut at the chosen rank, the
 * discarded tail shaded, and the energy kept in percent. */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "tui/views.h"

#define SPEC_FLOOR 1e-5 /* see chart(): below this fraction of sigma_max is 0 */

/* Fraction of sum(sigma^2) kept by the first r values. */
static double energy_kept(const float *s, int n, int r)
{
    double kept = 0, all = 0;
    for (int i = 0; i < n; i++) {
        double e = (double)s[i] * s[i];
        all += e;
        if (i < r)
            kept += e;
    }
    return all > 0 ? kept / all : 1.0;
}

static void spectrum_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "Spectrum  L%d H%d  %s", app->layer, app->head,
             app->log_scale ? "log" : "linear");
}

/* Height of value v on the chart, in [0, 1]. */
static double height_of(double v, double max, double min_pos, bool log_scale)
{
    if (!(v > 0) || !(max > 0))
        return 0;
    if (!log_scale)
        return v / max;
    double lo = log10(min_pos), hi = log10(max);
    if (hi - lo < 1e-9)
        return 1;
    double f = (log10(v) - lo) / (hi - lo);
    return 0.04 + 0.96 * (f < 0 ? 0 : f); /* the smallest value stays visible */
}

/* Columns for n values in aw cells: *cw cells per value (at most 4), or,
 * when they do not fit, *bin values pooled per column; returns how many
 * columns. The chart and its axis share it, so the cut lines up. */
static int chart_columns(int n, int aw, int *cw, int *bin)
{
    *cw = aw / n;
    *bin = 1;
    if (*cw > 4)
        *cw = 4;
    if (*cw == 0) {
        *cw = 1;
        *bin = (n + aw - 1) / aw;
    }
    return (n + *bin - 1) / *bin;
}

/* Draw one chart of n values in r; the first `rank` are kept. Columns map
 * to values: cw columns per value, or `bin` values pooled (max) per column. */
static void chart(const App *app, Canvas *c, CanvasRect r, const float *s, int n, int rank,
                  int role, const char *label)
{
    const CanvasGlyphs *g = canvas_glyphs(c);
    canvas_text(c, r.x, r.y + r.h - 1, 2, CANVAS_ROLE_TITLE, CANVAS_BOLD, label);
    int x0 = r.x + 2, aw = r.w - 2;
    if (aw <= 0 || n <= 0 || r.h <= 0)
        return;
    double max = 0, min_pos = INFINITY;
    for (int i = 0; i < n; i++) {
        if (s[i] > max)
            max = s[i];
        if (s[i] > 0 && s[i] < min_pos)
            min_pos = s[i];
    }
    /* Singular values below SPEC_FLOOR x the largest are numerically zero:
     * they come from a double Gram's eigenvalues, which err by up to about
     * 1e-11 x lambda_max for these sizes (bounds_gram_allowance), so sigma
     * errs by up to a few 1e-6 x sigma_max and such a value is 0 on one CPU
     * and a hair above on another. They are drawn as nothing. */
    const double floor = max * SPEC_FLOOR;
    if (!(min_pos < INFINITY) || min_pos < floor)
        min_pos = floor;
    int cw, bin;
    int ncol = chart_columns(n, aw, &cw, &bin);
    for (int col = 0; col < ncol; col++) {
        double v = 0;
        for (int i = col * bin; i < (col + 1) * bin && i < n; i++)
            if (s[i] > v)
                v = s[i];
        bool tail = col * bin >= rank;
        int eighths = (int)lround(height_of(v, max, min_pos, app->log_scale) * r.h * 8);
        if (v <= floor)
            eighths = 0;
        else if (eighths == 0)
            eighths = 1;
        for (int k = 0; k < r.h; k++) {
            int y = r.y + r.h - 1 - k;
            int e = eighths - 8 * k;
            if (e <= 0)
                break;
            uint32_t ch = tail ? g->shade : e >= 8 ? g->full : g->spark[e - 1];
            for (int j = 0; j < (cw > 1 ? cw - 1 : 1); j++)
                canvas_put(c, x0 + col * cw + j, y, ch, tail ? CANVAS_ROLE_TAIL : role, 0);
        }
    }
}

static void axis(Canvas *c, CanvasRect r, int n, int rank)
{
    const CanvasGlyphs *g = canvas_glyphs(c);
    int x0 = r.x + 2, aw = r.w - 2;
    int cw, bin;
    int ncol = chart_columns(n, aw, &cw, &bin);
    canvas_text(c, x0, r.y, 2, CANVAS_ROLE_DIM, 0, "1");
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    int nw = (int)canvas_text_width(c, num);
    int xe = x0 + (ncol - 1) * cw + (cw > 1 ? cw - 2 : 0) - nw + 1;
    if (rank < n) {
        int xc = x0 + (rank / bin) * cw;
        canvas_put(c, xc, r.y, g->cut, CANVAS_ROLE_CURSOR, CANVAS_BOLD);
        char lab[32];
        snprintf(lab, sizeof lab, "r=%d cut", rank);
        int lw = canvas_text_width(c, lab);
        int xl = xc + 1 + lw <= r.x + r.w ? xc + 1 : xc - lw;
        canvas_text(c, xl, r.y, lw, CANVAS_ROLE_CURSOR, CANVAS_BOLD, lab);
        if (xe > xl + lw)
            canvas_text(c, xe, r.y, nw, CANVAS_ROLE_DIM, 0, num);
    } else {
        char lab[32];
        snprintf(lab, sizeof lab, "r=%d: exact, nothing cut", rank);
        canvas_text(c, x0 + 3, r.y, r.w - 5, CANVAS_ROLE_DIM, 0, lab);
    }
}

static void spectrum_draw(const App *app, Canvas *c, CanvasRect r)
{
    TraceRecord rec_buf;
    const TraceRecord *rec = views_head_record(app, c, r, &rec_buf);
    if (!rec)
        return;
    if (rec->n_sigma <= 0) {
        const TraceMeta *m = trace_store_meta(app->store);
        char msg[160];
        if (rec->rank >= rec->head_dim && m && m->segment_len > 0 &&
            rec->token_index < m->segment_len)
            snprintf(msg, sizeof msg,
                     "first segment: exact; the first basis comes from its %d tokens, "
                     "at token %d",
                     (int)m->segment_len, (int)m->segment_len + 1);
        else
            snprintf(msg, sizeof msg, "no spectrum here (%s keeps none)",
                     rec->method ? rec->method : "this method");
        views_note(c, r, msg);
        return;
    }
    double ek = rec->energy_kept;
    double ev = rec->n_sigma_v > 0 ? energy_kept(rec->sigma_v, rec->n_sigma_v, rec->rank) : NAN;
    double kmax = rec->sigma[0], vmax = rec->n_sigma_v > 0 ? rec->sigma_v[0] : NAN;
    int x = r.x;
    x += canvas_printf(c, x, r.y, r.w, CANVAS_ROLE_NORMAL, 0, "r %d/%d  energy kept ",
                       rec->rank, rec->head_dim);
    x += canvas_printf(c, x, r.y, r.x + r.w - x, CANVAS_ROLE_KEYS, CANVAS_BOLD, "K %.1f%%",
                       100 * ek);
    if (!isnan(ev))
        x += canvas_printf(c, x, r.y, r.x + r.w - x, CANVAS_ROLE_VALUES, CANVAS_BOLD,
                           "  V %.1f%%", 100 * ev);
    int body = r.h - 1;
    bool both = rec->n_sigma_v > 0 && body >= 7;
    int kh = both ? (body - 1) / 2 : body - 1;
    int vh = both ? body - 1 - kh : 0;
    if (kh < 1)
        return;
    /* max values as scale labels, right-aligned */
    char lab[48];
    snprintf(lab, sizeof lab, "max %.3g", kmax);
    canvas_text(c, r.x + r.w - canvas_text_width(c, lab), r.y + 1, r.w, CANVAS_ROLE_DIM, 0,
                lab);
    chart(app, c, (CanvasRect){r.x, r.y + 1, r.w, kh}, rec->sigma, rec->n_sigma, rec->rank,
          CANVAS_ROLE_KEYS, "K");
    if (both) {
        chart(app, c, (CanvasRect){r.x, r.y + 1 + kh, r.w, vh}, rec->sigma_v, rec->n_sigma_v,
              rec->rank, CANVAS_ROLE_VALUES, "V");
        snprintf(lab, sizeof lab, "max %.3g", vmax);
        canvas_text(c, r.x + r.w - canvas_text_width(c, lab), r.y + 1 + kh, r.w,
                    CANVAS_ROLE_DIM, 0, lab);
    }
    axis(c, (CanvasRect){r.x, r.y + 1 + kh + vh, r.w, 1}, rec->n_sigma, rec->rank);
}

VIEW_DEFINE(spectrum, NULL,
            "A head's keys (and values) form a matrix with one row per past token "
            "and one column per dimension. Its singular values, drawn here from "
            "largest to smallest, say how much of that matrix lies along each of "
            "its independent directions. Keeping only the first r directions (the "
            "solid bars, left of the cut) replaces every product over d dimensions "
            "by one over r, so the head does about r/d of the work. The shaded "
            "tail is what is thrown away; the energy kept is the share of the sum "
            "of squared singular values left of the cut. A steep spectrum loses "
            "little; a flat one loses a lot. s switches between linear and log "
            "scale (log shows the small values in the tail).");
