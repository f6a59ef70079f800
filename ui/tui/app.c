/* app.c: the explorer's state and actions (see app.h). No curses here. */
#include "config.h"

#include "tui/app.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/canvas.h"
#include "tui/layout.h"
#include "tui/diff.h"
#include "trace/trace_csv.h"
#include "attn/flops.h"
#include "tui/views.h"

/* Playback speeds in steps per second. */
static const int speeds[] = {1, 2, 5, 10, 20, 50, 100};
#define N_SPEEDS ((int)(sizeof speeds / sizeof speeds[0]))

void app_init(App *app, TraceStore *store, AppSource *src, const char *model,
              const char *method, const char *mode)
{
    memset(app, 0, sizeof *app);
    app->store = store;
    app->src = src;
    app->model = model ? model : "?";
    app->method = method ? method : "?";
    app->mode = mode ? mode : "explore";
    app->focus = VIEW_ranks;
    app->speed = 3;
    app->cols = 80;
    app->rows = 24;
    app->match_first = app->match_last = -1;
    app->job_to = -1;
    app_sync(app); /* out of memory here shows as empty panes */
}

void app_done(App *app)
{
    free(app->cum);
    free(app->tot);
    app->cum = app->tot = NULL;
}

void app_message(App *app, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->msg, sizeof app->msg, fmt, ap);
    va_end(ap);
    app->msg_error = error;
}

int64_t app_n_steps(const App *app)
{
    return trace_store_n_steps(app->store);
}

int64_t app_n_tokens(const App *app)
{
    int64_t n = app_n_steps(app);
    if (app->src && app->src->n_tokens) {
        int64_t t = app->src->n_tokens(app->src->ctx);
        if (t > n)
            n = t;
    }
    return n;
}

const TraceRecord *app_rec(const App *app, int64_t step, int32_t layer, int32_t head)
{
    if (step < 0 || layer < 0 || head < 0)
        return NULL;
    return trace_store_get(app->store, step, layer, head);
}

bool app_read(const App *app, int64_t step, int32_t layer, int32_t head, TraceRecord *out)
{
    if (step < 0 || layer < 0 || head < 0)
        return false;
    return trace_store_read(app->store, step, layer, head, out) != 0;
}

int app_sync(App *app)
{
    int64_t n = app_n_steps(app);
    int32_t L = trace_store_n_layers(app->store), H = trace_store_n_heads(app->store);
    if (L != app->n_layers || H != app->n_heads || n < app->cum_steps) {
        free(app->cum);
        free(app->tot);
        app->cum = app->tot = NULL;
        app->cum_steps = 0;
        app->n_layers = L;
        app->n_heads = H;
        app->no_wall = false;
    }
    if (n <= app->cum_steps || L <= 0)
        return 0;
    size_t per = (size_t)L * 3, need, need_t;
    if (drrl_size_mul((size_t)n, per * sizeof(double), &need) ||
        drrl_size_mul((size_t)n, 3 * sizeof(double), &need_t))
        return -1;
    double *cum = realloc(app->cum, need);
    if (!cum)
        return -1;
    app->cum = cum;
    double *tot = realloc(app->tot, need_t);
    if (!tot)
        return -1;
    app->tot = tot;
    for (int64_t s = app->cum_steps; s < n; s++) {
        /* the whole step in the engine's order (layer, head), each row added
         * to the running total: the same sums as the engine's (attn_core.h) */
        double *t = tot + (size_t)s * 3;
        t[0] = s > 0 ? t[-3] : 0, t[1] = s > 0 ? t[-2] : 0, t[2] = 0;
        for (int32_t l = 0; l < L; l++) {
            double *d = cum + ((size_t)s * (size_t)L + (size_t)l) * 3;
            const double *p = s > 0 ? d - per : NULL;
            double e = 0, x = 0, w = 0;
            for (int32_t h = 0; h < H; h++) {
                TraceRecord r;
                if (!app_read(app, s, l, h, &r))
                    continue;
                e += r.flops_exact;
                x += r.flops_executed;
                t[0] += r.flops_exact;
                t[1] += r.flops_executed;
                t[2] = r.savings_cum; /* the step's last row */
                if (r.wall_ns < 0)
                    app->no_wall = true;
                else
                    w += (double)r.wall_ns;
            }
            d[0] = e + (p ? p[0] : 0);
            d[1] = x + (p ? p[1] : 0);
            d[2] = w + (p ? p[2] : 0);
        }
    }
    app->cum_steps = n;
    if (app->layer >= L)
        app->layer = L - 1;
    if (app->head >= H)
        app->head = H - 1;
    return 0;
}

bool app_figures(const App *app, int64_t step, AppFigures *f)
{
    memset(f, 0, sizeof *f);
    if (!app->tot || step < 0 || app->n_layers <= 0)
        return false;
    if (step >= app->cum_steps)
        step = app->cum_steps - 1;
    const double *t = app->tot + (size_t)step * 3;
    f->attn_exact = t[0];
    f->attn_executed = t[1];
    f->attn_savings = flops_savings(t[0], t[1]);
    f->savings = t[2];
    double e, x;
    app_cum(app, step, -1, &e, &x, &f->wall_ns);
    f->wall_known = !app->no_wall;
    return true;
}

void app_cum(const App *app, int64_t step, int32_t layer, double *exact, double *executed,
             double *wall_ns)
{
    *exact = *executed = *wall_ns = 0;
    if (!app->cum || step < 0 || app->n_layers <= 0)
        return;
    if (step >= app->cum_steps)
        step = app->cum_steps - 1;
    for (int32_t l = 0; l < app->n_layers; l++) {
        if (layer >= 0 && l != layer)
            continue;
        const double *d = app->cum + ((size_t)step * (size_t)app->n_layers + (size_t)l) * 3;
        *exact += d[0];
        *executed += d[1];
        *wall_ns += d[2];
    }
}

/* Make step s available (live: compute steps up to s). Returns true when it
 * is. */
static bool ensure_step(App *app, int64_t s)
{
    while (app_n_steps(app) <= s) {
        if (app->interrupted && app->interrupted()) {
            app->playing = false;
            return false;
        }
        if (!app->src || !app->src->advance || app_n_steps(app) >= app_n_tokens(app))
            return false;
        DrrlError err;
        drrl_error_clear(&err);
        if (app->src->advance(app->src->ctx, &err) != DRRL_OK) {
            app_message(app, true, "%s", err.msg);
            app->playing = false;
            return false;
        }
        if (app_sync(app) != 0) {
            app_message(app, true, "out of memory");
            return false;
        }
    }
    return true;
}

static int segment_of(const App *app, int64_t s)
{
    TraceRecord r;
    return app_read(app, s, 0, 0, &r) ? r.segment : -1;
}

int app_go_to(App *app, int64_t s)
{
    if (s < 0)
        s = 0;
    if (app->src && s >= app_n_steps(app) && s < app_n_tokens(app)) {
        /* live and not computed yet: a job, computed a segment at a time by
         * app_work between keys (the loop draws its progress) */
        app->job_to = s;
        app->job_from = app_n_steps(app);
        return APP_REDRAW_ALL;
    }
    app->job_to = -1; /* a jump to a computed token supersedes a running one */
    if (s >= app_n_steps(app))
        s = app_n_steps(app) - 1;
    if (s >= 0)
        app->step = s;
    return APP_REDRAW_ALL;
}

bool app_busy(const App *app)
{
    return app->job_to >= 0;
}

int app_work(App *app)
{
    if (!app_busy(app))
        return APP_REDRAW_NONE;
    int64_t to = app->job_to;
    if (app_n_steps(app) <= to && !ensure_step(app, app_n_steps(app))) {
        app->job_to = -1; /* ensure_step said why */
        return APP_REDRAW_ALL;
    }
    if (app_n_steps(app) > to) {
        app->job_to = -1;
        app->step = to;
    }
    return APP_REDRAW_ALL;
}

void app_cancel(App *app)
{
    if (!app_busy(app))
        return;
    app->job_to = -1;
    app_message(app, false, "stopped: tokens 1-%lld computed, still at token %lld",
                (long long)app_n_steps(app), (long long)app->step + 1);
}

bool app_break_hits(const App *app, const Breakpoint *b, int64_t step)
{
    TraceRecord r0;
    if (!app_read(app, step, 0, 0, &r0))
        return false;
    if (b->kind == BREAK_TOKEN)
        return r0.token_index + 1 == b->token; /* the UI counts tokens from 1 */
    for (int32_t l = 0; l < app->n_layers; l++) {
        if (b->layer >= 0 && l != b->layer)
            continue;
        for (int32_t h = 0; h < app->n_heads; h++) {
            if (b->head >= 0 && h != b->head)
                continue;
            TraceRecord rr, pp;
            if (!app_read(app, step, l, h, &rr))
                continue;
            const TraceRecord *r = &rr;
            const TraceRecord *p = step > 0 && app_read(app, step - 1, l, h, &pp) ? &pp : NULL;
            switch (b->kind) {
            case BREAK_RANK:
                if (p && p->rank != r->rank)
                    return true;
                break;
            case BREAK_ERROR:
                if (r->measured_error > b->x)
                    return true;
                break;
            case BREAK_MASKED:
                /* A rank masked now that was not masked at the previous step. */
                for (int32_t i = 0; i < r->n_masked; i++) {
                    bool was = false;
                    for (int32_t j = 0; p && j < p->n_masked; j++)
                        if (p->masked[j] == r->masked[i])
                            was = true;
                    if (!was)
                        return true;
                }
                break;
            case BREAK_TOKEN:
                break;
            }
        }
    }
    return false;
}

/* Select the first head where b fires at step (for the user's eye). */
static void select_hit(App *app, const Breakpoint *b, int64_t step)
{
    if (b->kind == BREAK_TOKEN) {
        if (b->layer >= 0)
            app->layer = b->layer;
        if (b->head >= 0)
            app->head = b->head;
        return;
    }
    for (int32_t l = 0; l < app->n_layers; l++)
        for (int32_t h = 0; h < app->n_heads; h++) {
            if ((b->layer >= 0 && l != b->layer) || (b->head >= 0 && h != b->head))
                continue;
            Breakpoint one = *b;
            one.layer = l;
            one.head = h;
            if (app_break_hits(app, &one, step)) {
                app->layer = l;
                app->head = h;
                return;
            }
        }
}

/* The first breakpoint firing at step, or -1. */
static int break_at(const App *app, int64_t step)
{
    for (int i = 0; i < app->n_breaks; i++)
        if (app_break_hits(app, &app->breaks[i], step))
            return i;
    return -1;
}

static void report_break(App *app, int i)
{
    char d[160];
    select_hit(app, &app->breaks[i], app->step);
    app_describe_break(&app->breaks[i], d, sizeof d);
    TraceRecord r_buf;
    const TraceRecord *r =
        app_read(app, app->step, app->layer, app->head, &r_buf) ? &r_buf : NULL;
    TraceRecord p_buf;
    const TraceRecord *p =
        app_read(app, app->step - 1, app->layer, app->head, &p_buf) ? &p_buf : NULL;
    if (app->breaks[i].kind == BREAK_RANK && r && p)
        app_message(app, false, "break %d (%s): L%d H%d rank %d -> %d", i + 1, d, app->layer,
                    app->head, p->rank, r->rank);
    else if (app->breaks[i].kind == BREAK_ERROR && r)
        app_message(app, false, "break %d (%s): L%d H%d error %.4g", i + 1, d, app->layer,
                    app->head, r->measured_error);
    else
        app_message(app, false, "break %d (%s) at L%d H%d", i + 1, d, app->layer, app->head);
}

static int cont(App *app, int dir)
{
    if (app->n_breaks == 0) {
        app_message(app, true, "no breakpoints: add one with b");
        return APP_REDRAW_ALL;
    }
    for (int64_t s = app->step + dir; s >= 0; s += dir) {
        if (dir > 0 && !ensure_step(app, s))
            break;
        if (dir < 0 && s >= app_n_steps(app))
            continue;
        int i = break_at(app, s);
        if (i >= 0) {
            app->step = s;
            report_break(app, i);
            return APP_REDRAW_ALL;
        }
    }
    if (dir > 0) {
        app->step = app_n_steps(app) > 0 ? app_n_steps(app) - 1 : 0;
        app_message(app, false, "no breakpoint fired before the last token");
    } else {
        app->step = 0;
        app_message(app, false, "no breakpoint fired before the first token");
    }
    return APP_REDRAW_ALL;
}

static const char *next_word(const char **p)
{
    static char buf[64];
    while (isspace((unsigned char)**p))
        (*p)++;
    size_t n = 0;
    while (**p && !isspace((unsigned char)**p) && n + 1 < sizeof buf)
        buf[n++] = *(*p)++;
    buf[n] = 0;
    return buf;
}

int app_parse_pair(const char *s, const char *seps, long lo, long hi, long *a, long *b)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || !*end || !strchr(seps, *end) || x < lo || x > hi)
        return -1;
    const char *p = end + 1;
    long y = strtol(p, &end, 10);
    if (end == p || *end || y < lo || y > hi)
        return -1;
    *a = x;
    *b = y;
    return 0;
}

static int parse_head(const char *w, int32_t *l, int32_t *h)
{
    long a, b;
    if (app_parse_pair(w, ".", 0, 100000, &a, &b) != 0)
        return -1;
    *l = (int32_t)a;
    *h = (int32_t)b;
    return 0;
}

int app_parse_break(const char *spec, Breakpoint *b, char *why, size_t why_n)
{
    const char *p = spec;
    char kind[64];
    snprintf(kind, sizeof kind, "%s", next_word(&p));
    memset(b, 0, sizeof *b);
    b->layer = b->head = -1;
    const char *w;
    if (strcmp(kind, "rank") == 0 || strcmp(kind, "head") == 0) {
        b->kind = BREAK_RANK;
        w = next_word(&p);
        if (*w && parse_head(w, &b->layer, &b->head) != 0)
            goto bad_head;
        if (strcmp(kind, "head") == 0 && b->layer < 0)
            goto bad_head;
    } else if (strcmp(kind, "err") == 0 || strcmp(kind, "error") == 0) {
        b->kind = BREAK_ERROR;
        w = next_word(&p);
        char *end;
        b->x = strtod(w, &end);
        if (!*w || *end || !isfinite(b->x) || b->x < 0) {
            snprintf(why, why_n, "err needs a level, e.g. 'err 0.05'");
            return -1;
        }
        w = next_word(&p);
        if (*w && parse_head(w, &b->layer, &b->head) != 0)
            goto bad_head;
    } else if (strcmp(kind, "masked") == 0) {
        b->kind = BREAK_MASKED;
        w = next_word(&p);
        if (*w && parse_head(w, &b->layer, &b->head) != 0)
            goto bad_head;
    } else if (strcmp(kind, "token") == 0) {
        b->kind = BREAK_TOKEN;
        w = next_word(&p);
        char *end;
        long long t = strtoll(w, &end, 10);
        if (!*w || *end || t < 1) {
            snprintf(why, why_n, "token needs a number from 1, e.g. 'token 120'");
            return -1;
        }
        b->token = t;
        w = next_word(&p);
        if (*w && parse_head(w, &b->layer, &b->head) != 0)
            goto bad_head;
    } else {
        snprintf(why, why_n,
                 "unknown breakpoint '%s': use rank, err X, masked, token N or head L.H", kind);
        return -1;
    }
    if (*next_word(&p)) {
        snprintf(why, why_n, "unexpected text after the breakpoint");
        return -1;
    }
    return 0;
bad_head:
    snprintf(why, why_n, "a head is written LAYER.HEAD, e.g. 2.3");
    return -1;
}

void app_describe_break(const Breakpoint *b, char *buf, size_t n)
{
    char where[48] = "";
    if (b->layer >= 0)
        snprintf(where, sizeof where, " at L%d H%d", b->layer, b->head);
    switch (b->kind) {
    case BREAK_RANK:
        snprintf(buf, n, "rank change%s", where);
        break;
    case BREAK_ERROR:
        snprintf(buf, n, "error > %g%s", b->x, where);
        break;
    case BREAK_MASKED:
        snprintf(buf, n, "newly masked rank%s", where);
        break;
    case BREAK_TOKEN:
        snprintf(buf, n, "token %lld%s", (long long)b->token, where);
        break;
    }
}

static int next_segment(App *app)
{
    int seg = segment_of(app, app->step);
    for (int64_t s = app->step + 1;; s++) {
        if (!ensure_step(app, s)) {
            app_message(app, false, "no later segment");
            return app_go_to(app, s);
        }
        if (segment_of(app, s) != seg) {
            app->step = s;
            return APP_REDRAW_ALL;
        }
    }
}

static int prev_segment(App *app)
{
    int64_t s = app->step;
    int seg = segment_of(app, s);
    while (s > 0 && segment_of(app, s - 1) == seg)
        s--;
    if (s == app->step && s > 0) { /* already at a boundary: previous segment */
        seg = segment_of(app, s - 1);
        s--;
        while (s > 0 && segment_of(app, s - 1) == seg)
            s--;
    }
    app->step = s;
    return APP_REDRAW_ALL;
}

static void cycle_focus(App *app, int dir)
{
    for (int k = 0; k < VIEW_COUNT; k++) {
        app->focus = (app->focus + dir + VIEW_COUNT) % VIEW_COUNT;
        if (views_available(app, app->focus))
            return;
    }
}

static int click(App *app)
{
    if (app->diff) {
        /* the difference view's inside, padded as screen.c draws it */
        CanvasRect in = layout_inner(diff_frame(app, app->cols, app->rows));
        in.x += 1;
        in.w -= 2;
        return view_diff.handle(app, ACTION_select_click, in);
    }
    Layout l;
    layout_compute(&l, app->cols, app->rows, app->n_layers, app->n_heads,
                   views_available(app, VIEW_policy), app->focus, app->zoom);
    int v = layout_hit(&l, app->mouse_x, app->mouse_y);
    if (v < 0)
        return APP_REDRAW_NONE;
    app->focus = v;
    if (views[v]->handle)
        return views[v]->handle(app, ACTION_select_click, layout_inner(l.pane[v])) |
               APP_REDRAW_ALL;
    return APP_REDRAW_ALL;
}

/* A page of tokens: as many as the token strip shows (about cols - 4
 * columns of token text from the cursor, forward or back). */
static int64_t page_tokens(const App *app, int dir)
{
    int64_t n = app_n_tokens(app), k = 0;
    int room = app->cols - 4;
    for (int64_t s = app->step + (dir < 0 ? -1 : 0); s >= 0 && s < n && room > 0;
         s += dir, k++) {
        const char *t = app_token_text(app, s);
        room -= t ? (int)strlen(t) : 1;
    }
    return k > 1 ? k : 1;
}

static int page(App *app, int dir)
{
    if (app->overlay != OVERLAY_NONE) {
        app->overlay_scroll += dir * (app->rows > 8 ? app->rows - 6 : 2);
        if (app->overlay_scroll < 0)
            app->overlay_scroll = 0;
        return APP_REDRAW_ALL;
    }
    int64_t to = app->step + dir * page_tokens(app, dir);
    if (to >= app_n_tokens(app))
        to = app_n_tokens(app) - 1;
    return app_go_to(app, to < 0 ? 0 : to);
}

/* The wheel scrolls the pane under the pointer (it gets the focus). */
static int wheel(App *app, int dir)
{
    if (app->overlay != OVERLAY_NONE) {
        app->overlay_scroll += dir * 3;
        if (app->overlay_scroll < 0)
            app->overlay_scroll = 0;
        return APP_REDRAW_ALL;
    }
    if (!app->diff) {
        Layout l;
        layout_compute(&l, app->cols, app->rows, app->n_layers, app->n_heads,
                       views_available(app, VIEW_policy), app->focus, app->zoom);
        int v = layout_hit(&l, app->mouse_x, app->mouse_y);
        if (v >= 0)
            app->focus = v;
    }
    if (!app->diff && (app->focus == VIEW_ranks || app->focus == VIEW_flops))
        return app_apply(app, dir > 0 ? ACTION_layer_down : ACTION_layer_up);
    return app_apply(app, dir > 0 ? ACTION_next_token : ACTION_prev_token);
}

/* What app_apply's helpers answer for an action that is not theirs. */
#define APP_NOT_MINE (-1)

/* The knobs: the policy's FLOP budget and the safety threshold (live). */
static int apply_knobs(App *app, KeyAction a)
{
    switch (a) {
    case ACTION_budget_up:
    case ACTION_budget_down:
    case ACTION_eps_up:
    case ACTION_eps_down: {
        if (!app->src || !app->src->knobs) {
            app_message(app, true, "the knobs need the live engine (drrl explore)");
            return APP_REDRAW_ALL;
        }
        char msg[200];
        int which = a == ACTION_budget_up || a == ACTION_budget_down ? 0 : 1;
        int dir = a == ACTION_budget_up || a == ACTION_eps_up ? 1 : -1;
        int r = app->src->knobs(app->src->ctx, which, dir, msg, sizeof msg);
        app_message(app, r != 0, "%s", msg);
        return APP_REDRAW_ALL;
    }
    default:
        return APP_NOT_MINE;
    }
}

/* The cursor: tokens, segments, layers, heads. */
static int apply_cursor(App *app, KeyAction a)
{
    switch (a) {
    case ACTION_next_token:
        if (app->step + 1 >= app_n_tokens(app)) {
            app_message(app, false, "last token");
            return APP_REDRAW_ALL;
        }
        return app_go_to(app, app->step + 1);
    case ACTION_prev_token:
        if (app->step == 0) {
            app_message(app, false, "first token");
            return APP_REDRAW_ALL;
        }
        app->step--;
        return APP_REDRAW_ALL;
    case ACTION_next_segment:
        return next_segment(app);
    case ACTION_prev_segment:
        return prev_segment(app);
    case ACTION_first_token:
        app->step = 0;
        return APP_REDRAW_ALL;
    case ACTION_last_token: /* the end of the text, computed if need be */
        return app_go_to(app, app_n_tokens(app) - 1);
    case ACTION_layer_up:
        if (app->layer > 0)
            app->layer--;
        return APP_REDRAW_ALL;
    case ACTION_layer_down:
        if (app->layer + 1 < app->n_layers)
            app->layer++;
        return APP_REDRAW_ALL;
    case ACTION_head_prev:
        if (app->head > 0)
            app->head--;
        return APP_REDRAW_ALL;
    case ACTION_head_next:
        if (app->head + 1 < app->n_heads)
            app->head++;
        return APP_REDRAW_ALL;
    default:
        return APP_NOT_MINE;
    }
}

/* The view: focus, zoom, playback, scale, overlays. */
static int apply_view(App *app, KeyAction a)
{
    switch (a) {
    case ACTION_focus_next:
        cycle_focus(app, 1);
        return APP_REDRAW_ALL;
    case ACTION_focus_prev:
        cycle_focus(app, -1);
        return APP_REDRAW_ALL;
    case ACTION_zoom:
        app->zoom = !app->zoom;
        return APP_REDRAW_ALL;
    case ACTION_play:
        app->playing = !app->playing;
        if (!app->playing) /* playing shows in the status line itself */
            app_message(app, false, "paused");
        return APP_REDRAW_ALL;
    case ACTION_faster:
    case ACTION_slower:
        app->speed += a == ACTION_faster ? 1 : -1;
        if (app->speed < 0)
            app->speed = 0;
        if (app->speed >= N_SPEEDS)
            app->speed = N_SPEEDS - 1;
        app_message(app, false, "speed: %d tokens/s", speeds[app->speed]);
        return APP_REDRAW_ALL;
    case ACTION_scale:
        app->log_scale = !app->log_scale;
        return APP_REDRAW_ALL;
    case ACTION_info:
        app->overlay = app->overlay == OVERLAY_INFO ? OVERLAY_NONE : OVERLAY_INFO;
        app->overlay_scroll = 0;
        return APP_REDRAW_ALL;
    case ACTION_help:
        app->overlay = app->overlay == OVERLAY_HELP ? OVERLAY_NONE : OVERLAY_HELP;
        app->overlay_scroll = 0;
        return APP_REDRAW_ALL;
    default:
        return APP_NOT_MINE;
    }
}

int app_apply(App *app, KeyAction a)
{
    int r;
    if ((r = apply_knobs(app, a)) != APP_NOT_MINE ||
        (r = apply_cursor(app, a)) != APP_NOT_MINE || (r = apply_view(app, a)) != APP_NOT_MINE)
        return r;
    switch (a) {
    case ACTION_NONE:
        return APP_REDRAW_NONE;
    case ACTION_page_down:
    case ACTION_page_up:
        return page(app, a == ACTION_page_down ? 1 : -1);
    case ACTION_wheel_down:
    case ACTION_wheel_up:
        return wheel(app, a == ACTION_wheel_down ? 1 : -1);
    case ACTION_select_click:
        return click(app);
    case ACTION_goto_token:
    case ACTION_search:
    case ACTION_break_add:
    case ACTION_write_trace:
        app->prompt = a == ACTION_goto_token  ? PROMPT_GOTO
                      : a == ACTION_search    ? PROMPT_SEARCH
                      : a == ACTION_break_add ? PROMPT_BREAK
                                              : PROMPT_WRITE;
        app->input[0] = 0;
        app->input_len = 0;
        return APP_REDRAW_ALL;
    case ACTION_search_next:
        return app_search(app, 1);
    case ACTION_search_prev:
        return app_search(app, -1);
    case ACTION_break_clear:
        app_message(app, false, "deleted %d breakpoint%s", app->n_breaks,
                    app->n_breaks == 1 ? "" : "s");
        app->n_breaks = 0;
        return APP_REDRAW_ALL;
    case ACTION_cont:
        return cont(app, 1);
    case ACTION_reverse_cont:
        return cont(app, -1);
    case ACTION_redraw:
        return APP_REDRAW_ALL;
    case ACTION_quit:
        app->quit = true;
        return APP_QUIT;
    default:
        break;
    }
    return APP_REDRAW_NONE;
}

static int commit_prompt(App *app)
{
    PromptKind k = app->prompt;
    app->prompt = PROMPT_NONE;
    const char *in = app->input;
    if (k == PROMPT_GOTO) {
        char *end;
        long long t = strtoll(in, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (!*in || *end || t < 1) {
            app_message(app, true, "go to: '%s' is not a token number (1..%lld)", in,
                        (long long)app_n_tokens(app));
            return APP_REDRAW_ALL;
        }
        if (t > app_n_tokens(app)) {
            app_message(app, true, "go to: there are %lld tokens (1..%lld)",
                        (long long)app_n_tokens(app), (long long)app_n_tokens(app));
            return APP_REDRAW_ALL;
        }
        return app_go_to(app, t - 1);
    }
    if (k == PROMPT_SEARCH) {
        if (*in)
            snprintf(app->search, sizeof app->search, "%s", in);
        return app_search(app, 1);
    }
    if (k == PROMPT_WRITE) {
        if (!*in) {
            app_message(app, true, "write: no file name");
            return APP_REDRAW_ALL;
        }
        DrrlError err;
        drrl_error_clear(&err);
        /* atomic, and never over an existing trace (trace_csv.h) */
        if (trace_csv_write_store(in, app->store, 0, &err) != DRRL_OK) {
            if (err.code == DRRL_E_EXISTS) /* (the message suggests --force) */
                app_message(app, true, "write: %s already exists: give another name", in);
            else
                app_message(app, true, "%s", err.msg);
            return APP_REDRAW_ALL;
        }
        app_message(app, false, "wrote %zu rows (%lld tokens) to %s",
                    trace_store_n_rows(app->store), (long long)app_n_steps(app), in);
        return APP_REDRAW_ALL;
    }
    if (k == PROMPT_BREAK) {
        Breakpoint b;
        char why[160];
        if (app_parse_break(in, &b, why, sizeof why) != 0) {
            app_message(app, true, "break: %s", why);
            return APP_REDRAW_ALL;
        }
        if (b.layer >= app->n_layers || b.head >= app->n_heads) {
            app_message(app, true,
                        "break: no head %d.%d: the model has layers 0-%d, heads 0-%d", b.layer,
                        b.head, app->n_layers - 1, app->n_heads - 1);
            return APP_REDRAW_ALL;
        }
        if (b.kind == BREAK_TOKEN && (b.token < 1 || b.token > app_n_tokens(app))) {
            app_message(app, true, "break: no token %lld: the text has tokens 1-%lld",
                        (long long)b.token, (long long)app_n_tokens(app));
            return APP_REDRAW_ALL;
        }
        if (app->n_breaks >= APP_MAX_BREAKS) {
            app_message(app, true, "break: at most %d breakpoints (B deletes them)",
                        APP_MAX_BREAKS);
            return APP_REDRAW_ALL;
        }
        app->breaks[app->n_breaks++] = b;
        char d[160];
        app_describe_break(&b, d, sizeof d);
        app_message(app, false, "breakpoint %d: %s (c: continue, C: back)", app->n_breaks, d);
    }
    return APP_REDRAW_ALL;
}

int app_key(App *app, int32_t key)
{
    if (key == KEY_CODE_RESIZE)
        return APP_REDRAW_ALL;
    if (app_busy(app) && app->prompt == PROMPT_NONE && key == KEY_CODE_ESC) {
        app_cancel(app);
        return APP_REDRAW_ALL;
    }
    if (app->prompt != PROMPT_NONE) {
        if (key == KEY_CODE_ESC) {
            app->prompt = PROMPT_NONE;
            return APP_REDRAW_ALL;
        }
        if (key == KEY_CODE_ENTER || key == '\r')
            return commit_prompt(app);
        if (key == KEY_CODE_BACKSPACE || key == 8) {
            /* drop one UTF-8 character */
            while (app->input_len > 0) {
                unsigned char ch = (unsigned char)app->input[--app->input_len];
                if ((ch & 0xC0) != 0x80)
                    break;
            }
            app->input[app->input_len] = 0;
            return APP_REDRAW_ALL;
        }
        if (key >= 0x20 && key < KEY_CODE_SPECIAL && key != 0x7F) {
            char buf[8];
            int n = canvas_utf8_encode((uint32_t)key, buf);
            if (app->input_len + (size_t)n < sizeof app->input) {
                memcpy(app->input + app->input_len, buf, (size_t)n);
                app->input_len += (size_t)n;
                app->input[app->input_len] = 0;
            }
            return APP_REDRAW_ALL;
        }
        return APP_REDRAW_NONE;
    }
    if (app->overlay != OVERLAY_NONE) {
        KeyAction a = keys_action(key);
        if (key == KEY_CODE_ESC || a == ACTION_quit || a == ACTION_help || a == ACTION_info) {
            app->overlay = OVERLAY_NONE;
            return APP_REDRAW_ALL;
        }
        if (a == ACTION_layer_down || key == KEY_CODE_PGDN) {
            app->overlay_scroll += a == ACTION_layer_down ? 1 : 10;
            return APP_REDRAW_ALL;
        }
        if (a == ACTION_layer_up || key == KEY_CODE_PGUP) {
            app->overlay_scroll -= a == ACTION_layer_up ? 1 : 10;
            if (app->overlay_scroll < 0)
                app->overlay_scroll = 0;
            return APP_REDRAW_ALL;
        }
        if (a == ACTION_page_down || a == ACTION_page_up || a == ACTION_wheel_down ||
            a == ACTION_wheel_up)
            return app_apply(app, a); /* scroll the overlay */
        if (key == KEY_CODE_MOUSE)
            return APP_REDRAW_NONE;
        /* any other key closes the overlay and acts */
        app->overlay = OVERLAY_NONE;
    }
    if (key == KEY_CODE_ESC) {
        if (app->zoom) {
            app->zoom = false;
            return APP_REDRAW_ALL;
        }
        return APP_REDRAW_NONE;
    }
    app->msg[0] = 0;
    if (app->tour_key) {
        int r = app->tour_key(app, key);
        if (r >= 0)
            return r;
    }
    if (app->diff) {
        DiffAction da = diff_key_action(key);
        if (da != DIFF_ACTION_NONE)
            return diff_apply(app, da);
    }
    KeyAction a = keys_action(key);
    if (a == ACTION_NONE) {
        app_message(app, true, "no action on this key (? lists the keys)");
        return APP_REDRAW_ALL;
    }
    return app_apply(app, a);
}

int app_tick(App *app)
{
    if (!app->playing)
        return APP_REDRAW_NONE;
    if (app->step + 1 >= app_n_tokens(app)) {
        app->playing = false;
        app_message(app, false, "paused at the last token");
        return APP_REDRAW_ALL;
    }
    app_go_to(app, app->step + 1);
    int i = break_at(app, app->step);
    if (i >= 0) {
        app->playing = false;
        report_break(app, i);
    }
    return APP_REDRAW_ALL;
}

int app_tick_ms(const App *app)
{
    return 1000 / speeds[app->speed];
}
