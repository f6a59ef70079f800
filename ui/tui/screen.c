/* screen.c: the whole screen (see screen.h). */
#include "config.h"

#include "tui/screen.h"

#include <stdio.h>
#include <string.h>

#include "tui/diff.h"
#include "tui/layout.h"
#include "tui/views.h"

/* Word-wrap text into r starting at line `skip`; returns the lines used. */
static int wrap(Canvas *c, CanvasRect r, int skip, int role, const char *text)
{
    int line = 0;
    const char *p = text;
    char buf[512];
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        /* take words while they fit in r.w columns */
        size_t n = 0, last_space = 0;
        int cols = 0;
        const char *q = p;
        while (*q && *q != '\n' && n + 1 < sizeof buf) {
            uint32_t ch;
            int k = canvas_utf8_decode(q, &ch);
            if (cols + 1 > r.w)
                break;
            if (ch == ' ')
                last_space = n;
            memcpy(buf + n, q, (size_t)k);
            n += (size_t)k;
            q += k;
            cols++;
        }
        if (*q && *q != '\n' && last_space > 0) {
            q = p + last_space;
            n = last_space;
        }
        buf[n] = 0;
        if (line >= skip && line - skip < r.h)
            canvas_text(c, r.x, r.y + line - skip, r.w, role, 0, buf);
        line++;
        p = q;
        if (*p == '\n')
            p++;
    }
    return line;
}

static CanvasRect centred(const Canvas *c, int w, int h)
{
    if (w > c->w)
        w = c->w;
    if (h > c->h - 1)
        h = c->h - 1;
    return (CanvasRect){(c->w - w) / 2, (c->h - 1 - h) / 2, w, h};
}

/* A key table's rows from line y on, those inside in; returns the line after them. */
static int draw_keys(Canvas *c, CanvasRect in, int y, const KeyBinding *table, int n)
{
    for (int i = 0; i < n; i++, y++) {
        if (y < in.y || y >= in.y + in.h)
            continue;
        canvas_text(c, in.x, y, 12, CANVAS_ROLE_TITLE, CANVAS_BOLD, table[i].keys);
        canvas_text(c, in.x + 12, y, in.w - 12, CANVAS_ROLE_NORMAL, 0, table[i].help);
    }
    return y;
}

static void draw_help(const App *app, Canvas *c)
{
    int n_diff = app->diff ? diff_keys_count + 1 : 0; /* the difference view's keys */
    int need = keys_count + n_diff + 6;
    CanvasRect r = centred(c, 80, need + 2);
    canvas_fill(c, r, ' ', CANVAS_ROLE_NORMAL, 0);
    canvas_box(c, r, "Keys  (Esc closes; j/k scroll)", CANVAS_ROLE_FOCUS);
    CanvasRect in = {r.x + 2, r.y + 1, r.w - 4, r.h - 2};
    int y = draw_keys(c, in, in.y - app->overlay_scroll, keys_table, keys_count);
    if (app->diff)
        y = draw_keys(c, in, y + 1, diff_keys, diff_keys_count);
    y++;
    static const char *more[] = {
        "Breakpoints (b):  rank [L.H]   err X [L.H]   masked [L.H]",
        "                  token N [L.H]   head L.H (rank change there)",
        "Mouse: click a cell of the rank grid to select that head.",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++, y++)
        if (y >= in.y && y < in.y + in.h)
            canvas_text(c, in.x, y, in.w, CANVAS_ROLE_DIM, 0, more[i]);
}

static void draw_info(const App *app, Canvas *c)
{
    const View *v = app->diff ? &view_diff : views[app->focus];
    CanvasRect r = centred(c, 70, 16);
    canvas_fill(c, r, ' ', CANVAS_ROLE_NORMAL, 0);
    char title[64];
    snprintf(title, sizeof title, "What the %s pane shows  (Esc closes)", v->name);
    canvas_box(c, r, title, CANVAS_ROLE_FOCUS);
    CanvasRect in = {r.x + 2, r.y + 1, r.w - 4, r.h - 2};
    wrap(c, in, app->overlay_scroll, CANVAS_ROLE_NORMAL, v->info);
}

static void draw_status(const App *app, Canvas *c, CanvasRect r)
{
    canvas_fill(c, r, ' ', CANVAS_ROLE_STATUS, 0);
    if (app->prompt != PROMPT_NONE) {
        const char *what = app->prompt == PROMPT_GOTO     ? "go to token: "
                           : app->prompt == PROMPT_SEARCH ? "search: "
                           : app->prompt == PROMPT_WRITE
                               ? "write trace to: "
                               : "break (rank | err X | masked | token N | head L.H) [L.H]: ";
        int x = canvas_text(c, r.x, r.y, r.w, CANVAS_ROLE_STATUS, CANVAS_BOLD, what);
        x += canvas_text(c, r.x + x, r.y, r.w - x - 1, CANVAS_ROLE_STATUS, 0, app->input);
        canvas_put(c, r.x + x, r.y, '_', CANVAS_ROLE_STATUS, CANVAS_BOLD);
        return;
    }
    char left[256], right[160];
    int64_t n = app_n_tokens(app), have = app_n_steps(app);
    if (app_busy(app)) { /* a long jump: its progress, first, whatever the width */
        int64_t span = app->job_to + 1 - app->job_from, done = have - app->job_from;
        double f = span > 0 ? (double)done / (double)span : 1;
        int x = canvas_printf(c, r.x, r.y, r.w, CANVAS_ROLE_STATUS, CANVAS_BOLD,
                              " computing to token %lld: %lld/%lld ",
                              (long long)app->job_to + 1, (long long)have, (long long)n);
        int bw = r.w - x - 18 < 30 ? r.w - x - 18 : 30;
        if (bw >= 4) {
            canvas_put(c, r.x + x++, r.y, '[', CANVAS_ROLE_STATUS, 0);
            canvas_hbar(c, r.x + x, r.y, bw, f, CANVAS_ROLE_STATUS);
            x += bw;
            canvas_put(c, r.x + x++, r.y, ']', CANVAS_ROLE_STATUS, 0);
        }
        canvas_printf(c, r.x + x, r.y, r.w - x, CANVAS_ROLE_STATUS, CANVAS_BOLD,
                      " %.0f%% Esc stops", 100 * f);
        return;
    }
    char computed[48] = "";
    if (app->src && have < n)
        snprintf(computed, sizeof computed, " (%lld computed)", (long long)have);
    size_t k = 0;
    right[0] = 0;
    if (app->playing)
        k += (size_t)snprintf(right + k, sizeof right - k, " | playing %d/s",
                              1000 / app_tick_ms(app));
    if (app->n_breaks > 0 && k < sizeof right)
        k += (size_t)snprintf(right + k, sizeof right - k, " | %d break%s", app->n_breaks,
                              app->n_breaks == 1 ? "" : "s");
    if (k < sizeof right)
        snprintf(right + k, sizeof right - k, " | ? help ");
    /* The message and the help hint come first: the left part drops what
     * the line has no room for (mode, model, method, then the computed
     * count), so neither is cut at narrow widths. */
    long long tok = n > 0 ? (long long)app->step + 1 : 0LL;
    int need =
        (app->msg[0] ? canvas_text_width(c, app->msg) + 3 : 0) + canvas_text_width(c, right);
    for (int v = 0; v < 5; v++) {
        if (v == 0)
            snprintf(left, sizeof left, " %s | %s | %s | token %lld/%lld%s | L%d H%d",
                     app->mode, app->model, app->method, tok, (long long)n, computed,
                     app->layer, app->head);
        else if (v == 1)
            snprintf(left, sizeof left, " %s | %s | token %lld/%lld%s | L%d H%d", app->mode,
                     app->method, tok, (long long)n, computed, app->layer, app->head);
        else if (v == 2)
            snprintf(left, sizeof left, " %s | token %lld/%lld%s | L%d H%d", app->method, tok,
                     (long long)n, computed, app->layer, app->head);
        else if (v == 3)
            snprintf(left, sizeof left, " token %lld/%lld%s | L%d H%d", tok, (long long)n,
                     computed, app->layer, app->head);
        else
            snprintf(left, sizeof left, " token %lld/%lld | L%d H%d", tok, (long long)n,
                     app->layer, app->head);
        if (canvas_text_width(c, left) + need <= r.w)
            break;
    }
    int x = canvas_text(c, r.x, r.y, r.w, CANVAS_ROLE_STATUS, CANVAS_BOLD, left);
    if (app->msg[0] && x + 3 < r.w) {
        x += canvas_text(c, r.x + x, r.y, r.w - x, CANVAS_ROLE_STATUS, 0, " |");
        x += canvas_printf(c, r.x + x, r.y, r.w - x,
                           app->msg_error ? CANVAS_ROLE_BAD : CANVAS_ROLE_STATUS, CANVAS_BOLD,
                           " %s", app->msg);
    }
    if (x + canvas_text_width(c, right) <= r.w)
        canvas_text(c, r.x + x, r.y, r.w - x, CANVAS_ROLE_STATUS, 0, right);
}

static void draw_too_small(Canvas *c)
{
    /* the longest message that fits */
    char msgs[4][160];
    snprintf(msgs[0], sizeof msgs[0],
             "Terminal too small (%dx%d). drrl needs at least %dx%d: enlarge the window, or "
             "press q to quit.",
             c->w, c->h, LAYOUT_MIN_COLS, LAYOUT_MIN_ROWS);
    snprintf(msgs[1], sizeof msgs[1], "Too small: need %dx%d. q quits.", LAYOUT_MIN_COLS,
             LAYOUT_MIN_ROWS);
    snprintf(msgs[2], sizeof msgs[2], "Too small");
    snprintf(msgs[3], sizeof msgs[3], "!");
    const char *msg = msgs[3];
    int lines = 1;
    for (int i = 0; i < 4; i++) {
        lines = wrap(c, (CanvasRect){0, c->h, c->w, 0}, 0, 0, msgs[i]); /* count only */
        /* fits when no word had to be cut */
        bool cut = false;
        for (const char *p = msgs[i]; *p;) {
            size_t n = strcspn(p, " ");
            if ((int)n > c->w)
                cut = true;
            p += n;
            p += strspn(p, " ");
        }
        if (lines <= c->h && !cut) {
            msg = msgs[i];
            break;
        }
    }
    int y = (c->h - lines) / 2;
    if (y < 0)
        y = 0;
    wrap(c, (CanvasRect){0, y, c->w, c->h - y}, 0, CANVAS_ROLE_NORMAL, msg);
}

/* One pane: its frame and title (the focused one marked, for monochrome and
 * text dumps), and the view inside; r.w == 0: not shown. */
static void draw_pane(const App *app, Canvas *c, const View *v, CanvasRect r, bool focused)
{
    if (r.w <= 0 || r.h <= 0)
        return;
    char title[160];
    size_t k = 0;
    if (focused)
        k = (size_t)canvas_utf8_encode(canvas_glyphs(c)->arrow_r, title);
    v->title(app, title + k, sizeof title - k);
    canvas_box(c, r, title, focused ? CANVAS_ROLE_FOCUS : CANVAS_ROLE_BORDER);
    CanvasRect in = layout_inner(r);
    in.x += 1; /* one column of padding */
    in.w -= 2;
    canvas_clip(c, in);
    v->draw(app, c, in);
    canvas_unclip(c);
}

void screen_draw(const App *app, Canvas *c)
{
    canvas_clear(c);
    if (c->w <= 0 || c->h <= 0)
        return;
    Layout l;
    bool has_policy = views_available(app, VIEW_policy);
    /* the tour's narration takes rows under the panes, above the status line */
    int nh = app->narration ? (c->h >= 36 ? 8 : 7) : 0;
    if (nh && c->h - nh < LAYOUT_MIN_ROWS)
        nh = 0;
    layout_compute(&l, c->w, c->h - nh, app->n_layers, app->n_heads, has_policy, app->focus,
                   app->zoom);
    if (l.mode == LAYOUT_TOO_SMALL) {
        draw_too_small(c);
        return;
    }
    if (nh) {
        CanvasRect nr = {0, c->h - nh - 1, c->w, nh};
        canvas_box(c, nr, app->narration_title ? app->narration_title : "", CANVAS_ROLE_FOCUS);
        CanvasRect in = {2, nr.y + 1, c->w - 4, nh - 2};
        canvas_clip(c, in);
        wrap(c, in, 0, CANVAS_ROLE_NORMAL, app->narration);
        canvas_unclip(c);
        l.status.y = c->h - 1;
    }
    if (app->diff) {
        /* the difference view: the tokens strip over the diff pane, which
         * takes the body as a zoomed pane would (layout.h) */
        layout_compute(&l, c->w, c->h, app->n_layers, app->n_heads, false, VIEW_ranks, true);
        draw_pane(app, c, &view_tokens, l.pane[VIEW_tokens], false);
        draw_pane(app, c, &view_diff, diff_frame(app, c->w, c->h), true);
    } else {
        for (int i = 0; i < VIEW_COUNT; i++)
            draw_pane(app, c, views[i], l.pane[i], i == app->focus);
    }
    draw_status(app, c, l.status);
    if (app->overlay == OVERLAY_HELP)
        draw_help(app, c);
    else if (app->overlay == OVERLAY_INFO)
        draw_info(app, c);
}
