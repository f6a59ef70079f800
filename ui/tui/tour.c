/* tour.c: `drrl tour`, a guided lesson on the live engine (tour.h). */
#include "config.h"

#include "tui/tour.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn/guard.h"
#include "tui/views.h"

static void stop_at(Tour *t, int64_t step, int32_t l, int32_t h, int focus, const char *title)
{
    TourStop *s = &t->stops[t->n++];
    s->step = step, s->layer = l, s->head = h, s->focus = focus;
    snprintf(s->title, sizeof s->title, "%s", title);
    s->text[0] = 0;
}

#define SAY(...) snprintf(s->text, sizeof s->text, __VA_ARGS__)

static int32_t seg_len(const App *app)
{
    const TraceMeta *m = trace_store_meta(app->store);
    return m && m->segment_len > 0 ? m->segment_len : 128;
}

/* 1: the exact first segment. */
static void stop_exact(Tour *t, const App *app)
{
    int32_t T = seg_len(app);
    int64_t n = app_n_steps(app), at = n > 10 ? 10 : n - 1;
    stop_at(t, at, 0, 0, VIEW_ranks, "the exact first segment");
    TourStop *s = &t->stops[t->n - 1];
    TraceRecord r;
    int hd = app_read(app, at, 0, 0, &r) ? r.head_dim : 0;
    SAY("The model reads the text one token at a time (the strip at the top); every head "
        "of every layer attends to all earlier tokens. For the first %d tokens there is "
        "nothing to compress: the low-rank bases are built only from completed segments, "
        "so that no token depends on a later one. Every head therefore runs exact "
        "attention at its full rank %d: the Ranks grid shows %d everywhere.",
        (int)T, hd, hd);
}

/* 2: the first basis and its spectrum. */
static void stop_basis(Tour *t, const App *app)
{
    int32_t T = seg_len(app);
    TraceRecord r;
    if (!app_read(app, T, 0, 0, &r))
        return;
    stop_at(t, T, 0, 0, VIEW_spectrum, "the first basis and its spectrum");
    TourStop *s = &t->stops[t->n - 1];
    if (r.rank < r.head_dim)
        SAY("Token %d: the first segment is complete. Each head's keys and values from it "
            "are decomposed into directions ordered by energy (eigenvectors of their Gram "
            "matrices); the Spectrum pane shows their singular values. A few large ones "
            "carry most of the energy, so a head can work in fewer directions: L0 H0 now "
            "runs at rank %d of %d, keeping %.1f%% of its key energy (the cut line).",
            (int)T + 1, (int)r.rank, (int)r.head_dim, 100 * r.energy_kept);
    else
        SAY("Token %d: the first segment is complete. Each head's keys and values from it "
            "are decomposed into directions ordered by energy (eigenvectors of their Gram "
            "matrices); the Spectrum pane shows their singular values. A few large ones "
            "carry most of the energy, so a head could work in fewer directions, but the "
            "safety guard has no evidence yet (the only rows it could re-run are the ones "
            "the basis was fitted to), so L0 H0 stays at rank %d of %d for this segment; "
            "low ranks become possible from the next one.",
            (int)T + 1, (int)r.rank, (int)r.head_dim);
}

/* 3: the first rank change after the first basis, and the policy's reasons. */
static void stop_change(Tour *t, const App *app)
{
    int32_t T = seg_len(app);
    for (int64_t st = T + 1; st < app_n_steps(app); st++)
        for (int32_t l = 0; l < app->n_layers; l++)
            for (int32_t h = 0; h < app->n_heads; h++) {
                TraceRecord a, b;
                if (!app_read(app, st - 1, l, h, &a) || !app_read(app, st, l, h, &b) ||
                    a.rank == b.rank)
                    continue;
                const TraceMeta *m = trace_store_meta(app->store);
                double p = NAN;
                for (int32_t i = 0; m && i < b.n_policy && i < m->n_grid; i++)
                    if (m->rank_grid[i] == b.rank)
                        p = b.policy_probs[i];
                stop_at(t, st, l, h, b.n_policy > 0 ? VIEW_policy : VIEW_ranks,
                        "a rank change and why");
                TourStop *s = &t->stops[t->n - 1];
                if (b.n_policy > 0)
                    SAY("Token %lld starts segment %d and L%d H%d changes rank from %d to "
                        "%d. Ranks are chosen once per head and segment by the policy, a "
                        "small network that reads the spectrum, the bounds and the FLOP "
                        "cost. The Policy pane shows its probabilities: it gave rank %d "
                        "%.0f%%; masked ranks get none. It was trained to weigh fidelity "
                        "(alpha) against FLOPs (beta), the terms shown at the top.",
                        (long long)st + 1, (int)b.segment, (int)l, (int)h, (int)a.rank,
                        (int)b.rank, (int)b.rank, 100 * p);
                else
                    SAY("Token %lld starts segment %d and L%d H%d changes rank from %d to "
                        "%d: the method (%s) chose it from the new spectrum.",
                        (long long)st + 1, (int)b.segment, (int)l, (int)h, (int)a.rank,
                        (int)b.rank, b.method ? b.method : "?");
                return;
            }
}

/* 4: the first masked rank and the numbers behind it. */
static void stop_masked(Tour *t, const App *app)
{
    for (int64_t st = 0; st < app_n_steps(app); st++)
        for (int32_t l = 0; l < app->n_layers; l++)
            for (int32_t h = 0; h < app->n_heads; h++) {
                TraceRecord r;
                /* the second segment's mask says only that the guard had no
                 * evidence yet (guard.h): look for one it measured */
                if (!app_read(app, st, l, h, &r) || r.n_masked <= 0 || r.segment <= 1)
                    continue;
                stop_at(t, st, l, h, VIEW_bounds, "a masked rank and the bound behind it");
                TourStop *s = &t->stops[t->n - 1];
                char out[64];
                if (isinf(r.output_bound))
                    snprintf(out, sizeof out, "is vacuous here (it proves nothing)");
                else
                    snprintf(out, sizeof out, "is %.4f", r.output_bound);
                SAY("At token %lld, L%d H%d may not use %d of the ranks (x in the Bounds "
                    "pane): a safety guard re-ran a few rows of the last segment at every "
                    "rank, and %g times the largest error it measured there exceeds the "
                    "threshold eps = %.2f: an estimate for the next segment, not a "
                    "proof. The proven numbers at "
                    "the rank in use (%d): the tail bound is %.4f; the output bound %s. "
                    "The error measured against exact attention is %.4f.",
                    (long long)st + 1, (int)l, (int)h, (int)r.n_masked, GUARD_MARGIN,
                    r.threshold, (int)r.rank, r.tail_bound, out, r.measured_error);
                return;
            }
}

/* 5: the FLOP ledger turning positive. */
static void stop_ledger(Tour *t, const App *app)
{
    int64_t n = app_n_steps(app), turn = -1;
    AppFigures f, last;
    for (int64_t st = n - 1; st >= 0 && app_figures(app, st, &f) && f.attn_savings > 0; st--)
        turn = st;
    if (!app_figures(app, n - 1, &last))
        return;
    stop_at(t, turn >= 0 ? turn : n - 1, 0, 0, VIEW_flops, "the ledger turning positive");
    TourStop *s = &t->stops[t->n - 1];
    if (turn >= 0)
        SAY("Low rank has costs: projecting onto the bases and refreshing them. Early on "
            "the attention core executes more FLOPs than exact attention would; from token "
            "%lld on, its cumulative savings stay positive, %.2f%% by the end of the text. "
            "The whole model saves %.2f%%: attention is only part of its FLOPs, and the "
            "savings grow with the context, since attention grows with it.",
            (long long)turn + 1, 100 * last.attn_savings, 100 * last.savings);
    else
        SAY("Low rank has costs: projecting onto the bases and refreshing them. On this "
            "short text they outweigh what it saves: the attention core ends at %.2f%% "
            "(whole model %.2f%%). Savings appear at longer contexts, where attention "
            "grows with every token.",
            100 * last.attn_savings, 100 * last.savings);
}

/* 6: exact against approximate attention rows. */
static void stop_rows(Tour *t, const App *app)
{
    int64_t n = app_n_steps(app);
    TraceRecord r;
    if (n <= seg_len(app) || !app_read(app, n - 1, 0, 0, &r))
        return;
    stop_at(t, n - 1, 0, 0, VIEW_attention, "exact against approximate attention");
    TourStop *s = &t->stops[t->n - 1];
    SAY("The Attention pane recomputes the last query tokens' attention weights both "
        "ways: exact (ex) and at rank %d (ap), their difference and the relative error, "
        "and how many of the exact top 5 keys the approximation kept. Low rank blurs the "
        "weights a little; the measured error of this head's output here is %.4f. q "
        "quits; the explorer keys still work, and drrl explore goes on from here.",
        (int)r.rank, r.measured_error);
}

void tour_show(App *app, Tour *t, int i)
{
    if (t->n <= 0)
        return;
    t->at = i < 0 ? 0 : i >= t->n ? t->n - 1 : i;
    const TourStop *s = &t->stops[t->at];
    app->step = s->step;
    app->layer = s->layer;
    app->head = s->head;
    if (views_available(app, s->focus))
        app->focus = s->focus;
    app->zoom = false;
    snprintf(t->heading, sizeof t->heading, "Tour %d/%d: %s   (n next, p back, q quits)",
             t->at + 1, t->n, s->title);
    app->narration_title = t->heading;
    app->narration = s->text;
}

static int tour_key(App *app, int32_t key)
{
    Tour *t = app->tour;
    if (key == 'n' || key == KEY_CODE_ENTER) {
        if (t->at + 1 >= t->n) {
            app_message(app, false, "the end of the tour: q quits");
            return APP_REDRAW_ALL;
        }
        tour_show(app, t, t->at + 1);
        return APP_REDRAW_ALL;
    }
    if (key == 'p' || key == KEY_CODE_BACKSPACE) {
        tour_show(app, t, t->at - 1);
        return APP_REDRAW_ALL;
    }
    return -1; /* the explorer's own keys */
}

int tour_prepare(App *app, Tour *t)
{
    memset(t, 0, sizeof *t);
    stop_exact(t, app);
    stop_basis(t, app);
    stop_change(t, app);
    stop_masked(t, app);
    stop_ledger(t, app);
    stop_rows(t, app);
    if (t->n == 0)
        return -1;
    app->tour = t;
    app->tour_key = tour_key;
    tour_show(app, t, 0);
    return 0;
}
