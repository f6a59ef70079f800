/* views.c: the view table and helpers shared by views (see views.h). */
#include "config.h"

#include "tui/views.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const View *const views[VIEW_COUNT] = {
#define X(name) [VIEW_##name] = &view_##name,
    UI_VIEWS(X)
#undef X
};

int views_available(const App *app, int id)
{
    if (id != VIEW_policy)
        return 1;
    /* The policy pane exists when a policy chose the ranks: the method is
     * drrl, or the records carry policy probabilities (the first segment
     * runs exact and has none). */
    const TraceMeta *m = trace_store_meta(app->store);
    if (m && m->method && strncmp(m->method, "drrl", 4) == 0)
        return 1;
    TraceRecord r;
    return app_read(app, app->step, app->layer, app->head, &r) && r.n_policy > 0;
}

const char *views_flops(double f, char *buf, size_t n)
{
    static const char *unit[] = {"", "k", "M", "G", "T", "P"};
    int u = 0;
    while (fabs(f) >= 1000 && u < 5) {
        f /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f F", f);
    else
        snprintf(buf, n, "%.*f %sF", fabs(f) < 10 ? 2 : fabs(f) < 100 ? 1 : 0, f, unit[u]);
    return buf;
}

const char *views_time(double ns, char *buf, size_t n)
{
    if (ns < 1e3)
        snprintf(buf, n, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, n, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, n, "%.1f ms", ns / 1e6);
    else
        snprintf(buf, n, "%.2f s", ns / 1e9);
    return buf;
}

void views_percent(Canvas *c, int x, int y, int w, double saving)
{
    canvas_printf(c, x, y, w, saving >= 0 ? CANVAS_ROLE_OK : CANVAS_ROLE_BAD, CANVAS_BOLD,
                  fabs(saving) < 9.99995 ? "%*.2f%%" : "%*.0f%%", w - 1, 100 * saving);
}

void views_note(Canvas *c, CanvasRect r, const char *msg)
{
    if (r.w <= 0 || r.h <= 0)
        return;
    /* split into lines of at most r.w columns at spaces (ASCII messages) */
    char lines[8][256];
    int n = 0;
    const char *p = msg;
    while (*p && n < 8) {
        while (*p == ' ')
            p++;
        size_t len = strlen(p), take = len;
        if ((int)len > r.w) {
            take = (size_t)r.w;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = (size_t)r.w;
        }
        if (take >= sizeof lines[0])
            take = sizeof lines[0] - 1;
        memcpy(lines[n], p, take);
        lines[n][take] = 0;
        n++;
        p += take;
    }
    int y0 = r.y + (r.h - n) / 2;
    if (y0 < r.y)
        y0 = r.y;
    for (int i = 0; i < n && y0 + i < r.y + r.h; i++) {
        int w = canvas_text_width(c, lines[i]);
        int x = r.x + (w < r.w ? (r.w - w) / 2 : 0);
        canvas_text(c, x, y0 + i, r.w, CANVAS_ROLE_DIM, 0, lines[i]);
    }
}

const TraceRecord *views_head_record(const App *app, Canvas *c, CanvasRect r, TraceRecord *buf)
{
    if (app_read(app, app->step, app->layer, app->head, buf))
        return buf;
    views_note(c, r, "no record for this head");
    return NULL;
}

int views_digits(int v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}
