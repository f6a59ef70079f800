/* test_tui_diff.c: the TUI's difference view (ui/tui/diff.h, ui/tui/view_diff.c):
 * which cells diverge, the first divergence, navigation between diverging
 * tokens, and what the screen shows, on deterministic test data (B is A
 * with a few rows changed or left out). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tui/app.h"
#include "tui/canvas.h"
#include "tui/diff.h"
#include "tui/screen.h"
#include "trace/trace_csv.h"
#include "tui_data.h"

#define STEPS 24

/* B: a copy of a with rank + delta at (step, layer, head) for each change,
 * rows of steps >= keep_steps left out, and another method label. */
typedef struct Change {
    int64_t step;
    int32_t layer, head, delta;
    double err; /* added to measured_error */
} Change;

static TraceStore *derive(const TraceStore *a, const Change *ch, int n, int64_t keep_steps)
{
    TraceStore *b = trace_store_new();
    cr_assert_not_null(b);
    DrrlError err;
    TraceRecord r;
    for (size_t i = 0; trace_store_row(a, i, &r); i++) {
        if (r.step >= keep_steps)
            continue;
        r.method = "fixed:4"; /* a label only: never a divergence by itself */
        for (int k = 0; k < n; k++)
            if (ch[k].step == r.step && ch[k].layer == r.layer && ch[k].head == r.head) {
                r.rank += ch[k].delta;
                r.measured_error += ch[k].err;
            }
        cr_assert_eq(trace_store_put(b, &r, &err), DRRL_OK, "%s", err.msg);
    }
    return b;
}

typedef struct Fx {
    TraceStore *a, *b;
    AppDiff d;
    App app;
} Fx;

static void fx_init(Fx *f, const Change *ch, int n, int64_t keep)
{
    f->a = tui_data_store(STEPS, 4, 4, 16, false);
    cr_assert_not_null(f->a);
    f->b = derive(f->a, ch, n, keep);
    cr_assert_eq(diff_init(&f->d, f->a, f->b, "a.csv", "b.csv"), 0);
    app_init(&f->app, f->a, NULL, "A vs B", "drrl vs fixed:4", "diff");
    cr_assert_eq(app_sync(&f->app), 0);
    f->app.diff = &f->d;
}

static void fx_done(Fx *f)
{
    app_done(&f->app);
    diff_done(&f->d);
    trace_store_free(f->a);
    trace_store_free(f->b);
}

static char *screen(const App *app, int w, int h, bool utf8)
{
    Canvas *c = canvas_new(w, h, utf8);
    cr_assert_not_null(c);
    screen_draw(app, c);
    char *s = canvas_dump_string(c);
    canvas_free(c);
    cr_assert_not_null(s);
    return s;
}

Test(tui_diff, identical_traces_do_not_diverge)
{
    Fx f;
    fx_init(&f, NULL, 0, STEPS);
    cr_assert_eq(f.d.first_step, -1);
    cr_assert_eq(f.d.total_cells, 0);
    cr_assert_eq(diff_find_step(&f.d, -1, 1), -1);
    cr_assert_eq(diff_apply(&f.app, DIFF_ACTION_first), APP_REDRAW_ALL);
    cr_assert_eq(f.app.step, 0);
    cr_assert_str_eq(f.app.msg, "the traces do not diverge");
    char *s = screen(&f.app, 100, 30, true);
    cr_assert(strstr(s, "no divergence"), "%s", s);
    cr_assert(!strstr(s, "+1") && !strstr(s, "-1"), "%s", s);
    free(s);
    fx_done(&f);
}

Test(tui_diff, cells_first_divergence_and_navigation)
{
    static const Change ch[] = {
        {5, 2, 1, -2, 0},    /* the first divergence: rank */
        {5, 3, 3, 0, 0.125}, /* same rank, another column */
        {11, 0, 2, -1, 0},
    };
    Fx f;
    fx_init(&f, ch, 3, STEPS - 1); /* B lacks the last token */
    AppDiff *d = &f.d;
    cr_assert_eq(d->n_steps, STEPS);
    cr_assert_eq(d->first_step, 5);
    cr_assert_eq(d->first_layer, 2);
    cr_assert_eq(d->first_head, 1);
    cr_assert_str_eq(trace_csv_columns[d->first_column], "rank");
    cr_assert(diff_cell(d, 5, 2, 1) && diff_cell(d, 5, 3, 3) && diff_cell(d, 11, 0, 2));
    cr_assert(!diff_cell(d, 5, 2, 2) && !diff_cell(d, 4, 2, 1) && !diff_cell(d, 99, 0, 0));
    cr_assert_eq(d->step_cells[5], 2);
    cr_assert_eq(d->step_cells[STEPS - 1], 16); /* every row of the last token is A's only */
    cr_assert_eq(d->total_cells, 2 + 1 + 16);

    App *a = &f.app;
    app_key(a, 'f');
    cr_assert_eq(a->step, 5);
    cr_assert_eq(a->layer, 2);
    cr_assert_eq(a->head, 1);
    app_key(a, 'd'); /* selected head agrees at 11: the first diverging one is chosen */
    cr_assert_eq(a->step, 11);
    cr_assert_eq(a->layer, 0);
    cr_assert_eq(a->head, 2);
    app_key(a, 'd');
    cr_assert_eq(a->step, STEPS - 1);
    app_key(a, 'd');
    cr_assert_eq(a->step, STEPS - 1);
    cr_assert_str_eq(a->msg, "no later divergence");
    app_key(a, 'D');
    app_key(a, 'D');
    cr_assert_eq(a->step, 5);
    app_key(a, 'D');
    cr_assert_eq(a->step, 5);
    cr_assert_str_eq(a->msg, "no earlier divergence");
    /* the explorer's own keys still work */
    app_key(a, 'l');
    cr_assert_eq(a->step, 6);
    app_key(a, 'q');
    cr_assert(a->quit);
    fx_done(&f);
}

Test(tui_diff, screen_marks_deltas_and_details)
{
    static const Change ch[] = {{5, 2, 1, -2, 0}, {5, 3, 3, 0, 0.125}};
    Fx f;
    fx_init(&f, ch, 2, STEPS);
    App *a = &f.app;
    app_key(a, 'f');
    char *s = screen(a, 100, 30, false);
    cr_assert(strstr(s, "2 of 16 heads diverge here"), "%s", s);
    cr_assert(strstr(s, "!first differing decision: token 6, L2 H1, rank  (this token)"), "%s",
              s);
    cr_assert(strstr(s, "A and B ran different methods (drrl, fixed:4)"), "%s", s);
    cr_assert(strstr(s, ">-2"), "the selected cell shows -2: %s", s);
    cr_assert(strstr(s, " ~"), "the error-only change shows ~: %s", s);
    cr_assert(strstr(s, "first differing column: rank"), "%s", s);
    free(s);
    /* ranks A/B instead of deltas, and the error-only head's details */
    app_key(a, 'v');
    app_key(a, 'j');
    app_key(a, '.');
    app_key(a, '.');
    cr_assert_eq(a->layer, 3);
    cr_assert_eq(a->head, 3);
    s = screen(a, 100, 30, false);
    cr_assert(strstr(s, "first differing column: measured_error"), "%s", s);
    cr_assert(strstr(s, "+0.125"), "%s", s);
    TraceRecord r;
    cr_assert(app_read(a, 5, 3, 3, &r));
    char ab[32];
    snprintf(ab, sizeof ab, ">%d/%d", r.rank, r.rank);
    cr_assert(strstr(s, ab), "cell shows %s: %s", ab, s);
    free(s);
    /* the help lists the difference view's keys; any size draws */
    app_key(a, '?');
    s = screen(a, 100, 60, true);
    cr_assert(strstr(s, "next step where the traces diverge"), "%s", s);
    free(s);
    for (int w = 0; w <= 130; w += 13)
        for (int h = 0; h <= 45; h += 5) {
            a->overlay = (Overlay)((w + h) % 3);
            free(screen(a, w, h, (w + h) % 2));
        }
    fx_done(&f);
}

/* A click on a cell of the grid selects that head (found on the drawn
 * screen, so drawing and clicking agree on where the cells are). */
Test(tui_diff, click_selects_the_head)
{
    static const Change ch[] = {{5, 2, 1, -2, 0}};
    Fx f;
    fx_init(&f, ch, 1, STEPS);
    App *a = &f.app;
    a->cols = 100;
    a->rows = 30;
    app_key(a, 'f');
    Canvas *c = canvas_new(100, 30, false);
    cr_assert_not_null(c);
    screen_draw(a, c);
    /* the "-2" cell of L2 H1: click on its '2' */
    int hx = -1, hy = -1;
    for (int y = 0; y < c->h && hx < 0; y++)
        for (int x = 0; x + 1 < c->w; x++)
            if (canvas_cell(c, x, y)->ch == '-' && canvas_cell(c, x + 1, y)->ch == '2' &&
                canvas_cell(c, x - 1, y)->ch == '>') {
                hx = x + 1;
                hy = y;
                break;
            }
    cr_assert(hx >= 0, "no -2 cell on the screen");
    app_key(a, 'g'); /* elsewhere first */
    a->layer = 0;
    a->head = 3;
    app_key(a, 'f');
    a->layer = 0;
    a->head = 3;
    a->mouse_x = hx;
    a->mouse_y = hy;
    cr_assert_eq(app_key(a, KEY_CODE_MOUSE), APP_REDRAW_ALL);
    cr_assert_eq(a->layer, 2);
    cr_assert_eq(a->head, 1);
    /* the header row selects nothing */
    a->mouse_y = hy - 3;
    app_key(a, KEY_CODE_MOUSE);
    cr_assert_eq(a->layer, 2);
    canvas_free(c);
    fx_done(&f);
}
