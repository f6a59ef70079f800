/* test_tui.c: the TUI without a terminal: canvas, key table, layout, actions
 * and golden screens (tests/golden/NAME.txt, see tests/golden/README.md).
 *
 * DRRL_REGEN_GOLDEN=1 rewrites the golden files instead of comparing (then
 * review them by eye: `git diff tests/golden`). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#include "tui/app.h"
#include "tui/canvas.h"
#include "tui/diff.h"
#include "tui/keys.h"
#include "tui/layout.h"
#include "tui/screen.h"
#include "trace/trace_csv.h"
#include "tui_data.h"
#include "tui/views.h"

static void utf8_locale(void)
{
    setlocale(LC_ALL, "C.UTF-8");
}

TestSuite(canvas, .init = utf8_locale);
TestSuite(keys);
TestSuite(layout);
TestSuite(app, .init = utf8_locale);
TestSuite(golden, .init = utf8_locale);

/* ---- canvas ---- */

Test(canvas, text_is_clipped_and_dumped_without_trailing_spaces)
{
    Canvas *c = canvas_new(10, 2, true);
    cr_assert_not_null(c);
    int n = canvas_text(c, 2, 0, -1, CANVAS_ROLE_NORMAL, 0, "hello world");
    cr_assert_eq(n, 8); /* 7 characters and an ellipsis */
    canvas_text(c, -3, 1, 5, CANVAS_ROLE_NORMAL, 0, "abcdef");
    char *s = canvas_dump_string(c);
    cr_assert_str_eq(s, "  hello w\xe2\x80\xa6\nd\xe2\x80\xa6\n");
    free(s);
    canvas_free(c);
}

Test(canvas, wide_characters_take_two_cells)
{
    Canvas *c = canvas_new(6, 1, true);
    cr_assert_eq(canvas_text_width(c, "東京x"), 5);
    canvas_text(c, 0, 0, -1, CANVAS_ROLE_NORMAL, 0, "東京x");
    cr_assert_eq(canvas_cell(c, 1, 0)->ch, 0u); /* continuation */
    /* overwriting half of a wide character blanks the other half */
    canvas_put(c, 1, 0, 'a', CANVAS_ROLE_NORMAL, 0);
    char *s = canvas_dump_string(c);
    cr_assert_str_eq(s, " a京x\n");
    free(s);
    /* a wide character never straddles the right edge */
    canvas_clear(c);
    cr_assert_eq(canvas_put(c, 5, 0, 0x6771, CANVAS_ROLE_NORMAL, 0), 0);
    canvas_free(c);
}

Test(canvas, ascii_mode_replaces_non_ascii)
{
    Canvas *c = canvas_new(8, 3, false);
    canvas_text(c, 0, 0, -1, CANVAS_ROLE_NORMAL, 0, "a\xc3\xa9\xff\tb");
    canvas_box(c, (CanvasRect){0, 1, 8, 2}, NULL, CANVAS_ROLE_BORDER);
    char *s = canvas_dump_string(c);
    cr_assert_str_eq(s, "a?? b\n+------+\n+------+\n");
    free(s);
    canvas_free(c);
}

Test(canvas, drawing_outside_is_ignored)
{
    Canvas *c = canvas_new(3, 2, true);
    canvas_box(c, (CanvasRect){-5, -5, 100, 100}, "title", CANVAS_ROLE_BORDER);
    canvas_fill(c, (CanvasRect){1, 1, 50, 50}, '#', CANVAS_ROLE_NORMAL, 0);
    canvas_hbar(c, 2, 0, 100, 1.0, CANVAS_ROLE_OK);
    double v[3] = {1, NAN, 3};
    canvas_sparkline(c, -1, 1, 10, v, 3, 0, 3, CANVAS_ROLE_OK);
    cr_assert_eq(canvas_resize(c, 0, 0), 0);
    canvas_text(c, 0, 0, 5, CANVAS_ROLE_NORMAL, 0, "x");
    char *s = canvas_dump_string(c);
    cr_assert_str_eq(s, "");
    free(s);
    canvas_free(c);
}

Test(canvas, utf8_decoding_rejects_malformed_input)
{
    uint32_t ch;
    cr_assert_eq(canvas_utf8_decode("\xc0\xaf", &ch), 2);
    cr_assert_eq(ch, 0xFFFDu); /* overlong */
    cr_assert_eq(canvas_utf8_decode("\xe6\x9d", &ch), 1);
    cr_assert_eq(ch, 0xFFFDu); /* truncated */
    cr_assert_eq(canvas_utf8_decode("\xed\xa0\x80", &ch), 3);
    cr_assert_eq(ch, 0xFFFDu); /* surrogate */
    char buf[8];
    cr_assert_eq(canvas_utf8_encode(0x1F600, buf), 4);
    cr_assert_eq(canvas_utf8_decode(buf, &ch), 4);
    cr_assert_eq(ch, 0x1F600u);
}

Test(canvas, heat_levels_cover_the_range)
{
    cr_assert_eq(canvas_heat_role(0), CANVAS_ROLE_HEAT0);
    cr_assert_eq(canvas_heat_role(1), CANVAS_ROLE_HEAT7);
    cr_assert_eq(canvas_heat_role(NAN), CANVAS_ROLE_HEAT0);
    Canvas *c = canvas_new(1, 1, false);
    cr_assert_eq(canvas_ramp_glyph(c, 0), (uint32_t)' ');
    cr_assert_eq(canvas_ramp_glyph(c, 1), (uint32_t)'@');
    canvas_free(c);
}

/* ---- keys ---- */

Test(keys, every_key_has_one_action_and_help)
{
    for (int i = 0; i < keys_count; i++) {
        const KeyBinding *b = &keys_table[i];
        cr_assert(b->help && *b->help, "%s has no help", b->name);
        cr_assert(b->keys && *b->keys, "%s has no key label", b->name);
        cr_assert_eq(keys_action(b->key1), b->action, "%s: key1 maps elsewhere", b->name);
        if (b->key2 != KEY_CODE_NONE)
            cr_assert_eq(keys_action(b->key2), b->action, "%s: key2 maps elsewhere", b->name);
        for (int j = 0; j < i; j++) {
            const KeyBinding *o = &keys_table[j];
            cr_assert(b->key1 != o->key1 && b->key1 != o->key2, "%s and %s share a key",
                      b->name, o->name);
            cr_assert(b->key2 == KEY_CODE_NONE || (b->key2 != o->key1 && b->key2 != o->key2),
                      "%s and %s share a key", b->name, o->name);
        }
    }
    cr_assert_eq(keys_count, ACTION_COUNT - 1);
}

Test(keys, the_brief_keys_are_bound)
{
    cr_assert_eq(keys_action(KEY_CODE_RIGHT), ACTION_next_token);
    cr_assert_eq(keys_action('l'), ACTION_next_token);
    cr_assert_eq(keys_action(KEY_CODE_LEFT), ACTION_prev_token);
    cr_assert_eq(keys_action('h'), ACTION_prev_token);
    cr_assert_eq(keys_action('q'), ACTION_quit);
    cr_assert_eq(keys_action('?'), ACTION_help);
    cr_assert_eq(keys_action('x'), ACTION_NONE);
}

Test(keys, names_parse)
{
    cr_assert_eq(keys_parse_name("Right"), KEY_CODE_RIGHT);
    cr_assert_eq(keys_parse_name("s-tab"), KEY_CODE_BTAB);
    cr_assert_eq(keys_parse_name("l"), 'l');
    cr_assert_eq(keys_parse_name("Space"), ' ');
    cr_assert_eq(keys_parse_name("hello"), KEY_CODE_NONE);
}

/* The KEYS section of man/drrl.1 lists every key label and help text of the
 * explorer's table, then those of the difference view (drrl diff --tui), in
 * order, as the `?` overlay does. */
Test(keys, man_page_keys_table_matches)
{
    TestMan man;
    test_man_open(&man, "drrl.1", "KEYS");
    for (int i = 0; i < keys_count; i++)
        test_man_expect_tp(&man, keys_table[i].keys, keys_table[i].help);
    for (int i = 0; i < diff_keys_count; i++)
        test_man_expect_tp(&man, diff_keys[i].keys, diff_keys[i].help);
    test_man_close(&man);
}

/* ---- layout ---- */

static bool overlap(CanvasRect a, CanvasRect b)
{
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

static void check_layout(int cols, int rows, int n_layers, bool policy, int focus, bool zoom)
{
    Layout l;
    layout_compute(&l, cols, rows, n_layers, n_layers, policy, focus, zoom);
    if (l.mode == LAYOUT_TOO_SMALL) {
        cr_assert(cols < LAYOUT_MIN_COLS || rows < LAYOUT_MIN_ROWS);
        return;
    }
    int shown = 0;
    for (int i = 0; i < VIEW_COUNT; i++) {
        CanvasRect r = l.pane[i];
        if (r.w == 0)
            continue;
        shown++;
        cr_assert(r.x >= 0 && r.y >= 0 && r.x + r.w <= cols && r.y + r.h <= rows - 1,
                  "%dx%d: pane %d out of the screen", cols, rows, i);
        cr_assert(r.w >= 10 && r.h >= 3, "%dx%d: pane %d too small (%dx%d)", cols, rows, i, r.w,
                  r.h);
        for (int j = 0; j < i; j++)
            if (l.pane[j].w)
                cr_assert(!overlap(r, l.pane[j]), "%dx%d: panes %d and %d overlap", cols, rows,
                          i, j);
    }
    cr_assert(shown >= 1);
    int f = (focus == VIEW_policy && !policy) ? VIEW_ranks : focus;
    cr_assert(l.pane[f].w > 0, "%dx%d %s: the focused pane %d is not shown", cols, rows,
              layout_mode_name(l.mode), f);
    if (l.mode == LAYOUT_FULL && !zoom)
        for (int i = 0; i < VIEW_COUNT; i++)
            cr_assert(l.pane[i].w > 0 || (i == VIEW_policy && !policy), "full: pane %d hidden",
                      i);
}

Test(layout, modes_by_size)
{
    Layout l;
    layout_compute(&l, 10, 5, 12, 12, false, VIEW_ranks, false);
    cr_assert_eq(l.mode, LAYOUT_TOO_SMALL);
    layout_compute(&l, 60, 20, 12, 12, false, VIEW_ranks, false);
    cr_assert_eq(l.mode, LAYOUT_SINGLE);
    layout_compute(&l, 80, 24, 12, 12, false, VIEW_ranks, false);
    cr_assert_eq(l.mode, LAYOUT_COMPACT);
    layout_compute(&l, 120, 40, 12, 12, false, VIEW_ranks, false);
    cr_assert_eq(l.mode, LAYOUT_FULL);
}

Test(layout, panes_fit_and_never_overlap)
{
    static const int sizes[][2] = {{40, 12},  {60, 20},  {79, 23},  {80, 24},
                                   {100, 30}, {119, 35}, {120, 36}, {120, 40},
                                   {160, 50}, {200, 60}, {300, 90}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int focus = 0; focus < VIEW_COUNT; focus++)
            for (int p = 0; p < 2; p++)
                for (int z = 0; z < 2; z++)
                    for (int L = 1; L <= 48; L += 11)
                        check_layout(sizes[s][0], sizes[s][1], L, p, focus, z);
}

Test(layout, hit_finds_the_pane)
{
    Layout l;
    layout_compute(&l, 120, 40, 4, 4, true, VIEW_ranks, false);
    CanvasRect r = l.pane[VIEW_spectrum];
    cr_assert_eq(layout_hit(&l, r.x + 1, r.y + 1), VIEW_spectrum);
    cr_assert_eq(layout_hit(&l, 0, 39), -1); /* the status line */
}

/* ---- app: actions ---- */

typedef struct Fixture {
    TraceStore *s;
    App app;
} Fixture;

static void fixture(Fixture *f, int steps, bool policy)
{
    f->s = tui_data_store(steps, 4, 4, 16, policy);
    cr_assert_not_null(f->s);
    app_init(&f->app, f->s, NULL, "tui-data", "drrl", "replay");
    cr_assert_eq(app_sync(&f->app), 0);
}

static void fixture_done(Fixture *f)
{
    app_done(&f->app);
    trace_store_free(f->s);
}

static void keys(App *app, const char *s)
{
    for (; *s; s++)
        app_key(app, (unsigned char)*s);
}

/* Type s (its first key opens a prompt: ':', '/', 'b', ...), then Enter. */
static void enter(App *app, const char *s)
{
    keys(app, s);
    app_key(app, KEY_CODE_ENTER);
}

Test(app, navigation_stays_in_range)
{
    Fixture f;
    fixture(&f, 20, false);
    App *a = &f.app;
    cr_assert_eq(app_apply(a, ACTION_prev_token), APP_REDRAW_ALL);
    cr_assert_eq(a->step, 0);
    for (int i = 0; i < 30; i++)
        app_apply(a, ACTION_next_token);
    cr_assert_eq(a->step, 19);
    app_apply(a, ACTION_first_token);
    app_apply(a, ACTION_next_segment);
    cr_assert_eq(a->step, 8);
    app_apply(a, ACTION_next_segment);
    cr_assert_eq(a->step, 16);
    app_apply(a, ACTION_next_token);
    app_apply(a, ACTION_prev_segment);
    cr_assert_eq(a->step, 16);
    app_apply(a, ACTION_prev_segment);
    cr_assert_eq(a->step, 8);
    for (int i = 0; i < 10; i++) {
        app_apply(a, ACTION_layer_down);
        app_apply(a, ACTION_head_next);
    }
    cr_assert_eq(a->layer, 3);
    cr_assert_eq(a->head, 3);
    cr_assert_eq(app_apply(a, ACTION_quit), APP_QUIT);
    fixture_done(&f);
}

Test(app, goto_and_search_prompts)
{
    Fixture f;
    fixture(&f, 40, false);
    App *a = &f.app;
    keys(a, ":13");
    cr_assert_eq(a->prompt, PROMPT_GOTO);
    app_key(a, KEY_CODE_ENTER);
    cr_assert_eq(a->step, 12);
    enter(a, ":41");
    cr_assert_eq(a->step, 12);
    enter(a, ":0");
    cr_assert_eq(a->step, 12);
    cr_assert(a->msg_error);
    enter(a, "/FOX");
    cr_assert_eq(a->step, 3); /* " fox", wrapping around */
    enter(a, "/the");
    cr_assert_eq(a->step, 6);
    app_key(a, 'n');
    cr_assert_eq(a->step, 17);
    app_key(a, 'N');
    cr_assert_eq(a->step, 6);
    keys(a, "/zzz");
    app_key(a, KEY_CODE_ESC);
    cr_assert_eq(a->prompt, PROMPT_NONE);
    fixture_done(&f);
}

/* A live source for the long-jump tests: advance copies the next segment
 * (8 steps) of a full store into the App's store. */
typedef struct FakeLive {
    TraceStore *full, *live;
    int64_t done;
    int calls;
} FakeLive;

static int64_t fake_n_tokens(void *ctx)
{
    return trace_store_n_steps(((FakeLive *)ctx)->full);
}

static DrrlStatus fake_advance(void *ctx, DrrlError *err)
{
    FakeLive *f = ctx;
    f->calls++;
    for (int64_t end = f->done + 8; f->done < end && f->done < fake_n_tokens(f); f->done++)
        for (int32_t l = 0; l < 4; l++)
            for (int32_t h = 0; h < 4; h++) {
                TraceRecord r;
                cr_assert(trace_store_read(f->full, f->done, l, h, &r));
                DrrlStatus st = trace_store_put(f->live, &r, err);
                if (st)
                    return st;
            }
    return DRRL_OK;
}

/* Long jumps on a live source are jobs: nothing is computed until the loop
 * calls app_work, one segment a call, keys are taken meanwhile, and Esc
 * stops the job where it is; G goes to the end of the text. */
Test(app, long_jumps_are_jobs_that_esc_cancels)
{
    FakeLive fl = {tui_data_store(80, 4, 4, 16, false), trace_store_new(), 0, 0};
    cr_assert(fl.full && fl.live);
    DrrlError err;
    cr_assert_eq(trace_store_set_meta(fl.live, trace_store_meta(fl.full), &err), DRRL_OK);
    AppSource src = {.ctx = &fl, .n_tokens = fake_n_tokens, .advance = fake_advance};
    App app;
    app_init(&app, fl.live, &src, "fake", "drrl", "explore");
    cr_assert_eq(fake_advance(&fl, &err), DRRL_OK);
    cr_assert_eq(app_sync(&app), 0);
    enter(&app, ":60");
    cr_assert(app_busy(&app));
    cr_assert_eq(fl.calls, 1, "computed before the loop asked");
    cr_assert_eq(app.step, 0);
    app_work(&app);
    cr_assert_eq(fl.calls, 2);
    app_key(&app, 'j'); /* keys are taken during the job */
    cr_assert_eq(app.layer, 1);
    app_key(&app, KEY_CODE_ESC);
    cr_assert(!app_busy(&app));
    cr_assert_eq(app.step, 0);
    cr_assert(strstr(app.msg, "stopped"), "%s", app.msg);
    app_apply(&app, ACTION_last_token);
    while (app_busy(&app))
        app_work(&app);
    cr_assert_eq(app.step, 79);
    cr_assert_eq(fl.calls, 10);
    app_done(&app);
    trace_store_free(fl.live);
    trace_store_free(fl.full);
}

/* F10 quits, C-d / C-u page through the tokens, the wheel scrolls the pane
 * under the pointer, a click on a token goes to it; breakpoints outside the
 * model or the text are refused. */
Test(app, mouse_pages_and_checked_breakpoints)
{
    Fixture f;
    fixture(&f, 40, false);
    App *a = &f.app;
    a->cols = 80, a->rows = 24;
    app_key(a, KEY_CODE_CTRL_D);
    cr_assert_gt(a->step, 5, "a page is the tokens the strip shows: %lld", (long long)a->step);
    cr_assert_lt(a->step, 39);
    app_key(a, KEY_CODE_CTRL_U);
    cr_assert_eq(a->step, 0);
    /* the strip at step 0 reads "[The] quick brown": " quick" is token 2 */
    a->mouse_x = 9, a->mouse_y = 1;
    app_key(a, KEY_CODE_MOUSE);
    cr_assert_eq(a->step, 1, "%s", a->msg);
    a->mouse_x = 2, a->mouse_y = 1; /* the strip: the wheel moves tokens */
    app_key(a, KEY_CODE_WHEEL_DOWN);
    cr_assert_eq(a->step, 2);
    a->mouse_x = 10, a->mouse_y = 6; /* the rank grid: it moves layers */
    app_key(a, KEY_CODE_WHEEL_DOWN);
    cr_assert_eq(a->layer, 1);
    cr_assert_eq(a->step, 2);
    app_key(a, KEY_CODE_WHEEL_UP);
    cr_assert_eq(a->layer, 0);
    enter(a, "bhead 9.9");
    cr_assert_eq(a->n_breaks, 0);
    cr_assert(a->msg_error);
    enter(a, "btoken 41");
    cr_assert_eq(a->n_breaks, 0);
    enter(a, "btoken 40");
    cr_assert_eq(a->n_breaks, 1);
    app_key(a, KEY_CODE_F10);
    cr_assert(a->quit);
    fixture_done(&f);
}

/* Search runs over the joined text: a word split over tokens is found and
 * its tokens are the match; "#ID" needs a live engine. */
Test(app, search_spans_tokens)
{
    Fixture f;
    fixture(&f, 40, false);
    App *a = &f.app;
    enter(a, "/OWN FO");
    cr_assert_eq(a->step, 2); /* " brown" " fox" */
    cr_assert_eq(a->match_first, 2);
    cr_assert_eq(a->match_last, 3);
    cr_assert(!a->msg_error, "%s", a->msg);
    enter(a, "/.\\nlow-r");
    cr_assert_eq(a->step, 9, "%s", a->msg); /* "." "\n" "Low" "-" "rank" */
    cr_assert_eq(a->match_last, 13);
    enter(a, "/dog");
    cr_assert_eq(a->step, 8);
    app_key(a, 'n'); /* the only one: found again, wrapped */
    cr_assert_eq(a->step, 8);
    cr_assert(!a->msg_error, "%s", a->msg);
    enter(a, "/nowhere");
    cr_assert(a->msg_error);
    cr_assert_eq(a->match_first, -1);
    enter(a, "/#3");
    cr_assert(a->msg_error); /* a trace has no token ids */
    fixture_done(&f);
}

Test(app, breakpoints_stop_where_they_should)
{
    Fixture f;
    fixture(&f, 40, false);
    App *a = &f.app;
    Breakpoint b;
    char why[160];
    cr_assert_eq(app_parse_break("rank", &b, why, sizeof why), 0);
    cr_assert_eq(app_parse_break("err 0.05 1.2", &b, why, sizeof why), 0);
    cr_assert_eq(b.layer, 1);
    cr_assert_eq(b.head, 2);
    cr_assert_neq(app_parse_break("err", &b, why, sizeof why), 0);
    cr_assert_neq(app_parse_break("head 3", &b, why, sizeof why), 0);
    cr_assert_neq(app_parse_break("bogus", &b, why, sizeof why), 0);
    cr_assert_neq(app_parse_break("token 5 1.1 extra", &b, why, sizeof why), 0);

    /* rank changes happen at segment boundaries (8, 16, ...) in the data */
    enter(a, "brank");
    cr_assert_eq(a->n_breaks, 1);
    app_key(a, 'c');
    cr_assert_eq(a->step, 8);
    const TraceRecord *r = app_rec(a, 8, a->layer, a->head);
    const TraceRecord *p = app_rec(a, 7, a->layer, a->head);
    cr_assert_neq(r->rank, p->rank, "the selected head is one whose rank changed");
    app_key(a, 'c');
    cr_assert_eq(a->step, 16);
    app_key(a, 'C');
    cr_assert_eq(a->step, 8);
    app_key(a, 'B');
    enter(a, "btoken 31 2.1");
    app_key(a, 'c');
    cr_assert_eq(a->step, 30);
    cr_assert_eq(a->layer, 2);
    cr_assert_eq(a->head, 1);
    /* an error threshold no head reaches runs to the end */
    app_key(a, 'B');
    enter(a, "berr 5");
    app_key(a, 'c');
    cr_assert_eq(a->step, 39);
    fixture_done(&f);
}

Test(app, breakpoints_brute_force_agree)
{
    /* every step where `c` stops is one where some head changed rank, and
     * no such step is skipped */
    Fixture f;
    fixture(&f, 40, false);
    App *a = &f.app;
    enter(a, "brank");
    int64_t at = 0;
    for (int64_t s = 1; s < 40; s++) {
        bool changed = false;
        for (int l = 0; l < 4; l++)
            for (int h = 0; h < 4; h++)
                changed |= app_rec(a, s, l, h)->rank != app_rec(a, s - 1, l, h)->rank;
        if (changed) {
            app_key(a, 'c');
            cr_assert_eq(a->step, s);
            at = s;
        }
    }
    cr_assert_gt(at, 0);
    fixture_done(&f);
}

Test(app, w_writes_a_trace_that_loads_back_and_never_overwrites)
{
    Fixture f;
    fixture(&f, 10, true);
    App *a = &f.app;
    char dir[] = "/tmp/drrl-tui-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/t.csv", dir);
    app_key(a, 'w');
    enter(a, path);
    cr_assert(!a->msg_error, "%s", a->msg);
    TraceStore *back = NULL;
    DrrlError err;
    cr_assert_eq(trace_csv_load(path, &back, &err), DRRL_OK, "%s", err.msg);
    cr_assert_eq(trace_store_n_rows(back), trace_store_n_rows(f.s));
    trace_store_free(back);
    app_key(a, 'w');
    enter(a, path);
    cr_assert(a->msg_error, "an existing trace must not be replaced");
    char side[300];
    snprintf(side, sizeof side, "%s.json", path);
    unlink(path);
    unlink(side);
    rmdir(dir);
    fixture_done(&f);
}

Test(app, playback_ticks_and_stops_at_a_breakpoint)
{
    Fixture f;
    fixture(&f, 20, false);
    App *a = &f.app;
    cr_assert_eq(app_tick(a), APP_REDRAW_NONE);
    app_key(a, ' ');
    cr_assert(a->playing);
    enter(a, "btoken 6");
    for (int i = 0; i < 10; i++)
        app_tick(a);
    cr_assert_eq(a->step, 5);
    cr_assert(!a->playing);
    int ms = app_tick_ms(a);
    app_key(a, '+');
    cr_assert_lt(app_tick_ms(a), ms);
    fixture_done(&f);
}

Test(app, a_click_on_the_grid_selects_that_head)
{
    Fixture f;
    fixture(&f, 12, false);
    App *a = &f.app;
    a->cols = 120;
    a->rows = 40;
    Canvas *c = canvas_new(120, 40, true);
    screen_draw(a, c);
    /* find the cell of layer 2 head 3: the row labelled L2 in the ranks pane */
    Layout l;
    layout_compute(&l, 120, 40, a->n_layers, a->n_heads, false, a->focus, false);
    CanvasRect r = layout_inner(l.pane[VIEW_ranks]);
    int y = r.y + 1 + 2, x = -1;
    char *dump = canvas_dump_string(c);
    cr_assert_not_null(strstr(dump, "L2"));
    free(dump);
    /* the fourth rank number on that row */
    int seen = 0;
    for (int i = r.x + 5; i < r.x + r.w && x < 0; i++) {
        const CanvasCell *cell = canvas_cell(c, i, y);
        const CanvasCell *prev = canvas_cell(c, i - 1, y);
        if (cell->ch >= 0x2581 && cell->ch <= 0x2588 && prev->ch != cell->ch && ++seen == 4)
            x = i + 1;
    }
    cr_assert_geq(x, 0);
    a->mouse_x = x;
    a->mouse_y = y;
    cr_assert_eq(app_key(a, KEY_CODE_MOUSE), APP_REDRAW_ALL);
    cr_assert_eq(a->layer, 2);
    cr_assert_eq(a->head, 3);
    /* a click on the spectrum focuses it */
    a->mouse_x = l.pane[VIEW_spectrum].x + 3;
    a->mouse_y = l.pane[VIEW_spectrum].y + 3;
    app_key(a, KEY_CODE_MOUSE);
    cr_assert_eq(a->focus, VIEW_spectrum);
    canvas_free(c);
    fixture_done(&f);
}

Test(app, cumulative_flops_match_a_direct_sum)
{
    Fixture f;
    fixture(&f, 30, false);
    double e = 0, x = 0;
    for (int s = 0; s <= 17; s++)
        for (int l = 0; l < 4; l++)
            for (int h = 0; h < 4; h++) {
                e += app_rec(&f.app, s, l, h)->flops_exact;
                x += app_rec(&f.app, s, l, h)->flops_executed;
            }
    double ce, cx, cw;
    app_cum(&f.app, 17, -1, &ce, &cx, &cw);
    cr_assert_float_eq(ce, e, 1e-9 * e);
    cr_assert_float_eq(cx, x, 1e-9 * x);
    fixture_done(&f);
}

/* Drawing never writes outside the canvas and never crashes, whatever the
 * size, focus, zoom or overlay (ASan checks the memory side). */
Test(app, any_size_draws)
{
    Fixture f;
    fixture(&f, 12, true);
    App *a = &f.app;
    for (int w = 0; w <= 130; w += 7)
        for (int h = 0; h <= 45; h += 4) {
            Canvas *c = canvas_new(w, h, (w + h) % 2);
            a->cols = w;
            a->rows = h;
            for (int k = 0; k < 6; k++) {
                a->focus = k % VIEW_COUNT;
                a->zoom = k == 3;
                a->overlay = (Overlay)(k % 3);
                a->prompt = k == 4 ? PROMPT_BREAK : PROMPT_NONE;
                screen_draw(a, c);
            }
            canvas_free(c);
        }
    fixture_done(&f);
}

/* An infinite output bound (the proof allows an error as large as the output)
 * reads "inf vacuous"; a NaN one (no bound applies) reads "n/a". */
static char *bounds_screen(double output_bound)
{
    TraceStore *s = trace_store_new();
    cr_assert_not_null(s);
    float sig[4] = {4, 2, 1, 0.5f};
    TraceRecord r = {.token = "a",
                     .method = "fixed:2",
                     .rank = 2,
                     .head_dim = 4,
                     .energy_kept = 0.9,
                     .n_sigma = 4,
                     .sigma = sig,
                     .n_sigma_v = 4,
                     .sigma_v = sig,
                     .tail_bound = 0.1,
                     .output_bound = output_bound,
                     .threshold = 0.25,
                     .measured_error = 0.3,
                     .fidelity = 0.95,
                     .flops_exact = 10,
                     .flops_executed = 5,
                     .value = NAN,
                     .reward = NAN};
    DrrlError err;
    cr_assert_eq(trace_store_put(s, &r, &err), DRRL_OK);
    App app;
    app_init(&app, s, NULL, "t", "fixed:2", "replay");
    cr_assert_eq(app_sync(&app), 0);
    app.focus = VIEW_bounds;
    app.zoom = true;
    app.cols = 80;
    app.rows = 24;
    Canvas *c = canvas_new(80, 24, true);
    screen_draw(&app, c);
    char *got = canvas_dump_string(c);
    canvas_free(c);
    app_done(&app);
    trace_store_free(s);
    return got;
}

Test(bounds_view, infinite_output_bound_reads_vacuous)
{
    utf8_locale();
    char *inf = bounds_screen(INFINITY), *nan = bounds_screen(NAN);
    cr_assert_not_null(strstr(inf, "inf vacuous"), "%s", inf);
    cr_assert_null(strstr(nan, "vacuous"), "%s", nan);
    cr_assert_not_null(strstr(nan, "n/a"), "%s", nan);
    free(inf);
    free(nan);
}

/* ---- golden screens ---- */

static void golden(const char *name, App *app, int w, int h, bool utf8)
{
    Canvas *c = canvas_new(w, h, utf8);
    app->cols = w;
    app->rows = h;
    screen_draw(app, c);
    char *got = canvas_dump_string(c);
    canvas_free(c);
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s.txt", name);
    const char *regen = getenv("DRRL_REGEN_GOLDEN");
    if (regen && strcmp(regen, "1") == 0) {
        test_spit(test_path(TEST_SRCDIR, rel), got);
        free(got);
        return;
    }
    char *want = test_slurp_src(rel);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "--- %s: got\n%s", name, got);
        cr_assert_fail("screen differs from tests/%s (DRRL_REGEN_GOLDEN=1 rewrites it)", rel);
    }
    free(want);
    free(got);
}

/* One golden screen: the app 20 tokens in, on layer 1 head 2 (with or
 * without the policy pane), then the keys pressed and the pane focused
 * before it is drawn at w x h. */
typedef struct GoldenCase {
    char name[32]; /* in the struct: Criterion hands the worker a copy */
    int w, h;
    bool utf8, policy;
    int32_t keys[3]; /* pressed in turn, up to the first 0 */
    int focus;       /* a View to focus, or -1 */
} GoldenCase;

static const GoldenCase golden_cases[] = {
    {"compact-80x24", 80, 24, true, false, {0}, -1},
    {"compact-80x24-ascii", 80, 24, false, false, {0}, -1},
    {"full-120x40", 120, 40, true, true, {0}, -1},
    {"full-200x60-log", 200, 60, true, true, {'s', KEY_CODE_TAB}, -1}, /* log scale */
    {"single-60x20", 60, 20, true, false, {0}, VIEW_bounds},
    {"too-small-10x5", 10, 5, true, false, {0}, -1},
    {"help-100x40", 100, 40, true, false, {'?'}, -1},
    {"info-80x24", 80, 24, true, false, {KEY_CODE_TAB, 'i'}, -1}, /* spectrum's */
};

ParameterizedTestParameters(golden, screens)
{
    return cr_make_param_array(GoldenCase, (void *)golden_cases,
                               sizeof golden_cases / sizeof golden_cases[0]);
}

ParameterizedTest(const GoldenCase *gc, golden, screens)
{
    Fixture f;
    fixture(&f, 40, gc->policy);
    App *a = &f.app;
    for (int i = 0; i < 20; i++)
        app_apply(a, ACTION_next_token);
    app_apply(a, ACTION_layer_down);
    app_apply(a, ACTION_head_next);
    app_apply(a, ACTION_head_next);
    for (int i = 0; i < 3 && gc->keys[i]; i++)
        app_key(a, gc->keys[i]);
    if (gc->focus >= 0)
        a->focus = gc->focus;
    golden(gc->name, a, gc->w, gc->h, gc->utf8);
    fixture_done(&f);
}

/* The trace the CLI tests replay (tests/golden/tui-small.csv) is this data
 * written by the trace writer; regenerated with the goldens. */
Test(golden, trace_file_for_cli_tests)
{
    const char *regen = getenv("DRRL_REGEN_GOLDEN");
    if (!regen || strcmp(regen, "1") != 0)
        return;
    TraceStore *s = tui_data_store(40, 4, 4, 16, true);
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/tui-small.csv", TEST_SRCDIR);
    DrrlError err;
    cr_assert_eq(trace_csv_write_store(path, s, TRACE_CSV_FORCE, &err), DRRL_OK, "%s", err.msg);
    trace_store_free(s);
}
