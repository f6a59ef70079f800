/* view_bounds.c: the guardrail gauge. Each proven bound beside the
 * threshold and the error actually measured, how tight the bound is, and the
 * rank grid with the ranks masked by the safety mask greyed out.
 * The bounds themselves are computed (and proven, with sources) in the
 * engine; this pane only shows them and flags a violation should one occur. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tui/views.h"

static void bounds_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "Bounds  L%d H%d", app->layer, app->head);
}

/* "label  [bar    |   ] value  note" with the threshold marked. */
static void gauge(Canvas *c, CanvasRect r, int y, const char *label, double v, double scale,
                  double threshold, int role, const char *note, int note_role)
{
    /* narrow panes: the label's first word ("tail", "output", ...) */
    int lw = r.w < 50 ? 7 : 13;
    char lab[16];
    snprintf(lab, sizeof lab, "%s", label);
    if (lw < 13)
        snprintf(lab, sizeof lab, "%s",
                 strncmp(label, "measured", 8) == 0 ? "error"
                 : strncmp(label, "guard", 5) == 0  ? "guard"
                                                    : label);
    if (lw < 13)
        lab[strcspn(lab, " ")] = 0;
    canvas_text(c, r.x, y, lw, CANVAS_ROLE_NORMAL, 0, lab);
    int nl = canvas_text_width(c, note);
    int bw = r.w - lw - 3 - 7 - 1 - (nl > 9 ? nl : 9); /* room for value and note */
    if (bw > 30)
        bw = 30;
    int x = r.x + lw;
    if (bw >= 6) {
        canvas_put(c, x, y, '[', CANVAS_ROLE_DIM, 0);
        canvas_hbar(c, x + 1, y, bw, isfinite(v) && scale > 0 ? v / scale : 0, role);
        if (threshold > 0 && scale > 0) {
            int tx = (int)lround(threshold / scale * bw);
            if (tx >= bw)
                tx = bw - 1;
            const CanvasCell *cell = canvas_cell(c, x + 1 + tx, y);
            if (cell && cell->ch == ' ')
                canvas_put(c, x + 1 + tx, y, canvas_glyphs(c)->cut, CANVAS_ROLE_WARN, 0);
            else
                canvas_paint(c, x + 1 + tx, y, 1, CANVAS_ROLE_WARN, CANVAS_BOLD);
        }
        canvas_put(c, x + 1 + bw, y, ']', CANVAS_ROLE_DIM, 0);
        x += bw + 3;
    }
    if (isfinite(v))
        x += canvas_printf(c, x, y, r.x + r.w - x, role, CANVAS_BOLD, "%6.4f", v);
    else if (v > 0) /* +inf: the proven bound exceeds the output itself */
        x += canvas_text(c, x, y, r.x + r.w - x, CANVAS_ROLE_DIM, 0, "   inf");
    else
        x += canvas_text(c, x, y, r.x + r.w - x, CANVAS_ROLE_DIM, 0, "   n/a");
    if (*note)
        canvas_text(c, x + 1, y, r.x + r.w - x - 1, note_role, 0, note);
}

static void ranks_row(const App *app, Canvas *c, CanvasRect r, int y, const TraceRecord *rec)
{
    const TraceMeta *m = trace_store_meta(app->store);
    int grid[256], n = 0;
    if (m && m->n_grid > 0 && m->rank_grid) {
        for (int i = 0; i < m->n_grid && n < 256; i++)
            grid[n++] = m->rank_grid[i];
    } else {
        /* no metadata: the masked ranks and the chosen one, in order */
        for (int i = 0; i < rec->n_masked && n < 255; i++)
            grid[n++] = rec->masked[i];
        int k = n;
        while (k > 0 && grid[k - 1] > rec->rank)
            k--;
        if (!(k > 0 && grid[k - 1] == rec->rank)) {
            memmove(grid + k + 1, grid + k, (size_t)(n - k) * sizeof *grid);
            grid[k] = rec->rank;
            n++;
        }
    }
    canvas_text(c, r.x, y, r.w, CANVAS_ROLE_NORMAL, 0, "ranks");
    /* the numbers after the label, one space apart, or none when they would
     * not fit; the marks under them; the legend on its own line */
    int need = 0;
    for (int i = 0; i < n; i++)
        need += snprintf(NULL, 0, "%d", grid[i]) + 1;
    int x = r.x + (r.w >= 17 + need ? 17 : 6);
    int gap = x + need <= r.x + r.w + 1 ? 1 : 0;
    if (y + 2 < r.y + r.h)
        canvas_text(c, r.x, y + 2, r.w, CANVAS_ROLE_DIM, 0,
                    c->utf8 ? "\u00d7 masked: estimate > eps  ^ in use"
                            : "x masked: estimate > eps  ^ in use");
    int masked_n = 0;
    for (int i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", grid[i]);
        int w = (int)strlen(num);
        if (x + w > r.x + r.w)
            break;
        bool masked = false;
        for (int j = 0; j < rec->n_masked; j++)
            if (rec->masked[j] == grid[i])
                masked = true;
        masked_n += masked;
        bool used = grid[i] == rec->rank;
        int role = used ? CANVAS_ROLE_CURSOR : masked ? CANVAS_ROLE_MASKED : CANVAS_ROLE_OK;
        canvas_text(c, x, y, w, role, used ? CANVAS_BOLD | CANVAS_REVERSE : 0, num);
        uint32_t mark = used     ? '^'
                        : masked ? (canvas_glyphs(c)->hline == '-' ? 'x' : 0x00D7)
                                 : ' ';
        canvas_put(c, x + w - 1, y + 1, mark, role, 0);
        x += w + gap;
    }
    (void)masked_n;
}

static void bounds_draw(const App *app, Canvas *c, CanvasRect r)
{
    TraceRecord rec_buf;
    const TraceRecord *rec = views_head_record(app, c, r, &rec_buf);
    if (!rec)
        return;
    double eps = rec->threshold;
    double scale = 0;
    const double vals[] = {eps, rec->tail_bound, rec->output_bound, rec->measured_error,
                           rec->guard_estimate};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (isfinite(vals[i]) && vals[i] > scale)
            scale = vals[i];
    scale *= 1.1;
    int y = r.y;
    int x = r.x + canvas_printf(c, r.x, y, r.w, CANVAS_ROLE_NORMAL, 0, "eps %.4f", eps);
    if (rec->rank >= rec->head_dim)
        canvas_text(c, x, y, r.x + r.w - x, CANVAS_ROLE_DIM, 0, "  exact: nothing to bound");
    else if (rec->measured_error > 0 && isfinite(rec->output_bound))
        canvas_printf(c, x, y, r.x + r.w - x, CANVAS_ROLE_DIM, 0, "  bound/measured %.1fx",
                      rec->output_bound / rec->measured_error);
    else if (isinf(rec->output_bound))
        canvas_text(c, x, y, r.x + r.w - x, CANVAS_ROLE_DIM, 0,
                    "  output bound vacuous: proves nothing");
    y++;
    gauge(c, r, y++, "tail bound", rec->tail_bound, scale, eps, CANVAS_ROLE_BOUND,
          !isfinite(rec->tail_bound) ? "" : "proven",
          rec->tail_bound <= eps ? CANVAS_ROLE_OK : CANVAS_ROLE_WARN);
    gauge(c, r, y++, "output bound", rec->output_bound, scale, eps, CANVAS_ROLE_BOUND,
          isinf(rec->output_bound) && rec->output_bound > 0 ? "vacuous"
          : !isfinite(rec->output_bound)                    ? ""
                                                            : "proven",
          isinf(rec->output_bound)   ? CANVAS_ROLE_DIM
          : rec->output_bound <= eps ? CANVAS_ROLE_OK
                                     : CANVAS_ROLE_WARN);
    if (isfinite(rec->guard_estimate))
        gauge(c, r, y++, "guard est.", rec->guard_estimate, scale, eps, CANVAS_ROLE_MEASURED,
              rec->guard_estimate > eps ? "estimate > eps" : "estimate",
              rec->guard_estimate > eps ? CANVAS_ROLE_WARN : CANVAS_ROLE_DIM);
    bool violated = isfinite(rec->output_bound) &&
                    rec->measured_error > rec->output_bound * (1 + 1e-6) + 1e-12;
    bool above = isfinite(rec->measured_error) && rec->measured_error > eps;
    gauge(c, r, y++, "measured err", rec->measured_error, scale, eps, CANVAS_ROLE_MEASURED,
          violated                        ? "BOUND VIOLATED"
          : above                         ? "ABOVE eps"
          : isfinite(rec->measured_error) ? "measured"
                                          : "",
          violated || above ? CANVAS_ROLE_BAD : CANVAS_ROLE_DIM);
    if (y < r.y + r.h - 2)
        gauge(c, r, y++, "sin theta", rec->sin_theta_bound, 1.0, 0, CANVAS_ROLE_BOUND,
              isfinite(rec->sin_theta_bound) ? "proven" : "", CANVAS_ROLE_DIM);
    if (y + 1 < r.y + r.h)
        ranks_row(app, c, r, y, rec);
}

VIEW_DEFINE(bounds, NULL,
            "Cutting a head to rank r changes its output. The bounds are proven "
            "inequalities: whatever the input, the true relative error cannot be "
            "larger than them. The tail bound follows from the singular values "
            "dropped (Eckart-Young); the output bound carries that error through "
            "the softmax to the head's output; sin theta bounds how far the kept "
            "directions can turn when the basis is refreshed (Wedin, Davis-Kahan). "
            "Each line says what its number is: proven (a bound), measured (what "
            "really happened) or estimated. The threshold eps is the safety line: "
            "the guard re-runs a few rows of the last segment at ranks from the "
            "smallest up until one passes, and masks (greyed, x) the ranks below "
            "it, whose measured error there, an estimate for the next segment, is "
            "above eps, so the policy cannot pick them; the ranks above it carry "
            "its estimate (the 'guard estimate' line, at the rank in use). "
            "A measured error above eps is flagged ABOVE eps; the ratio "
            "bound/measured on the first line says how tight, i.e. how cautious, "
            "the output bound is. An output bound shown as inf is vacuous: the "
            "worst case the proof allows is at least as large as the head's output "
            "itself, so it proves nothing here; n/a means no bound applies (exact, "
            "or a baseline without one). A measured error above the bound would be "
            "a bug and is shown as BOUND VIOLATED.");
