/* view_tokens.c: the token strip: the text around the cursor, the current
 * token bracketed and highlighted, segment boundaries marked. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tui/views.h"

/* The token's text with control characters escaped (\n, \t, \r). */
static const char *shown_token(const char *t, char *buf, size_t n)
{
    size_t k = 0;
    for (; t && *t && k + 3 < n; t++) {
        if (*t == '\n' || *t == '\t' || *t == '\r') {
            buf[k++] = '\\';
            buf[k++] = *t == '\n' ? 'n' : *t == '\t' ? 't' : 'r';
        } else {
            buf[k++] = *t;
        }
    }
    buf[k] = 0;
    return buf;
}

static const char *token_at(const App *app, int64_t s, int *segment)
{
    TraceRecord r;
    if (!app_read(app, s, 0, 0, &r)) {
        /* live: a token not computed yet, from the input itself */
        const TraceMeta *m = trace_store_meta(app->store);
        if (!app->src || !app->src->token_text || s < 0 || s >= app_n_tokens(app) || !m ||
            m->segment_len <= 0)
            return NULL;
        *segment = (int)(s / m->segment_len);
        return app->src->token_text(app->src->ctx, s);
    }
    *segment = r.segment;
    return r.token ? r.token : ""; /* interned in the store: stays valid */
}

static void tokens_title(const App *app, char *buf, size_t n)
{
    int seg = 0;
    if (token_at(app, app->step, &seg))
        snprintf(buf, n, "Tokens  segment %d", seg);
    else
        snprintf(buf, n, "Tokens");
}

/* Where the strip starts: its first token and x (the cursor token about
 * 40% in). -1 when there is no token. */
static int64_t strip_start(const App *app, const Canvas *c, CanvasRect r, int *x0)
{
    int seg = 0;
    char buf[256];
    const char *cur = token_at(app, app->step, &seg);
    if (!cur)
        return -1;
    /* Columns per token: its text, plus one for a boundary mark before the
     * first token of a segment. */
    int cw = canvas_text_width(c, shown_token(cur, buf, sizeof buf)) + 2;
    int left_room = (r.w - cw) * 2 / 5;
    int64_t first = app->step;
    int used = 0, s_seg = seg;
    while (first > 0) {
        int pseg = 0;
        const char *t = token_at(app, first - 1, &pseg);
        if (!t)
            break;
        int w = canvas_text_width(c, shown_token(t, buf, sizeof buf)) + (pseg != s_seg);
        if (used + w > left_room)
            break;
        used += w;
        first--;
        s_seg = pseg;
    }
    int x = r.x + (left_room - used > 0 && first == 0 ? 0 : left_room - used);
    *x0 = x < r.x ? r.x : x;
    return first;
}

/* The strip token by token: f(token, x, width, boundary mark before it).
 * Returns the token f stopped at (f returned true), or -1. */
typedef bool (*StripFn)(void *ctx, int64_t s, int x, int w, bool mark, const char *text);

static int64_t strip_walk(const App *app, const Canvas *c, CanvasRect r, StripFn f, void *ctx)
{
    int x;
    int64_t first = strip_start(app, c, r, &x), n = app_n_tokens(app);
    if (first < 0)
        return -1;
    int prev_seg = -1;
    char buf[256];
    if (first > 0)
        token_at(app, first - 1, &prev_seg);
    for (int64_t s = first; s < n && x < r.x + r.w; s++) {
        int tseg = 0;
        const char *t = token_at(app, s, &tseg);
        if (!t)
            break;
        bool mark = prev_seg >= 0 && tseg != prev_seg;
        prev_seg = tseg;
        shown_token(t, buf, sizeof buf);
        int w = canvas_text_width(c, buf) + (s == app->step ? 2 : 0);
        if (f(ctx, s, x, w, mark, buf))
            return s;
        x += w + mark;
    }
    return -1;
}

typedef struct DrawCtx {
    const App *app;
    Canvas *c;
    CanvasRect r;
    int y;
} DrawCtx;

static bool draw_one(void *ctx, int64_t s, int x, int w, bool mark, const char *buf)
{
    DrawCtx *d = ctx;
    const App *app = d->app;
    Canvas *c = d->c;
    int y = d->y, end = d->r.x + d->r.w;
    (void)w;
    if (mark)
        x += canvas_put(c, x, y, canvas_glyphs(c)->boundary, CANVAS_ROLE_SEGMENT, CANVAS_BOLD);
    int room = end - x;
    if (s == app->step) {
        x += canvas_text(c, x, y, room, CANVAS_ROLE_CURSOR, CANVAS_BOLD, "[");
        x += canvas_text(c, x, y, room - 1, CANVAS_ROLE_CURSOR, CANVAS_REVERSE | CANVAS_BOLD,
                         buf);
        canvas_text(c, x, y, end - x, CANVAS_ROLE_CURSOR, CANVAS_BOLD, "]");
    } else if (s >= app->match_first && s <= app->match_last && app->match_first >= 0) {
        canvas_text(c, x, y, room, CANVAS_ROLE_WARN, CANVAS_REVERSE | CANVAS_BOLD, buf);
    } else {
        canvas_text(c, x, y, room, s < app->step ? CANVAS_ROLE_NORMAL : CANVAS_ROLE_DIM, 0,
                    buf);
    }
    return false;
}

static void tokens_draw(const App *app, Canvas *c, CanvasRect r)
{
    int seg = 0;
    if (!token_at(app, app->step, &seg)) {
        views_note(c, r, "no tokens yet");
        return;
    }
    DrawCtx d = {app, c, r, r.y + (r.h - 1) / 2};
    strip_walk(app, c, r, draw_one, &d);
}

static bool hit_one(void *ctx, int64_t s, int x, int w, bool mark, const char *buf)
{
    (void)s, (void)buf;
    int mx = *(int *)ctx;
    return mx >= x + mark && mx < x + mark + w;
}

/* A click on a token goes to it (live: computing it first when needed). The
 * strip's widths are measured as a UTF-8 screen shows them. */
static int tokens_handle(App *app, KeyAction a, CanvasRect r)
{
    if (a != ACTION_select_click)
        return APP_REDRAW_NONE;
    Canvas *c = canvas_new(1, 1, true);
    if (!c)
        return APP_REDRAW_NONE;
    int mx = app->mouse_x;
    r.x += 1, r.w -= 2; /* the padding screen.c gives every pane */
    int64_t s = strip_walk(app, c, r, hit_one, &mx);
    canvas_free(c);
    if (s < 0 || s == app->step)
        return APP_REDRAW_ALL;
    return app_go_to(app, s);
}

VIEW_DEFINE(tokens, tokens_handle,
            "The token strip shows the text the model reads, cut into tokens. "
            "The bracketed token is the one being processed now: every pane shows "
            "what happened when the model read it. Tokens to its left are the "
            "context it can attend to; tokens to its right come later (in replay) "
            "or are not computed yet (live). A bar marks the start of a segment: "
            "ranks are chosen once per head and segment, and the low-rank bases "
            "are refreshed at each boundary from past tokens only.");
