/* views.h: the explorer's panes as small vtables, registered in one table.
 *
 * A view draws the App into a rectangle of a Canvas and may handle actions
 * (a mouse click inside it, for instance). Adding a view is one file
 * (ui/view_NAME.c: NAME_title, NAME_draw and VIEW_DEFINE(NAME, ...)) and one
 * line in UI_VIEWS.
 * Views never call curses and never change the App while drawing.
 */
#ifndef DRRL_VIEWS_H
#define DRRL_VIEWS_H

#include <stddef.h>

#include "tui/app.h"
#include "tui/canvas.h"

/* X(name): in focus (Tab) order. */
#define UI_VIEWS(X)                                                                            \
    X(tokens)                                                                                  \
    X(ranks)                                                                                   \
    X(spectrum)                                                                                \
    X(bounds)                                                                                  \
    X(flops)                                                                                   \
    X(policy)                                                                                  \
    X(attention)

typedef enum ViewId {
#define X(name) VIEW_##name,
    UI_VIEWS(X)
#undef X
        VIEW_COUNT
} ViewId;

typedef struct View {
    const char *name; /* "ranks" */
    /* The pane's title into buf (e.g. "Spectrum  L2 H3  log"). */
    void (*title)(const App *app, char *buf, size_t n);
    /* Draw into r (the pane's inside, frame excluded). */
    void (*draw)(const App *app, Canvas *c, CanvasRect r);
    /* Handle an action aimed at this pane (e.g. ACTION_select_click with the
     * click at app->mouse_x/y, r being the pane's inside); returns
     * APP_REDRAW_* flags. May be NULL. */
    int (*handle)(App *app, KeyAction a, CanvasRect r);
    /* Plain-words explanation for the info overlay (teaching). */
    const char *info;
} View;

/* VIEW_DEFINE(id, handle, info): defines `const View view_id`, named "id",
 * drawn by id_title and id_draw, its actions handled by handle (or NULL),
 * and info the text of its info overlay. */
#define VIEW_DEFINE(id, handle_fn, info_text)                                                  \
    const View view_##id = {.name = #id,                                                       \
                            .title = id##_title,                                               \
                            .draw = id##_draw,                                                 \
                            .handle = handle_fn,                                               \
                            .info = info_text}

#define X(name) extern const View view_##name;
UI_VIEWS(X)
#undef X

/* The table, indexed by ViewId. */
extern const View *const views[VIEW_COUNT];

/* Whether the App has something for this view to show (the policy pane only
 * with a policy). */
int views_available(const App *app, int id);

/* Shared drawing helpers for views. */
/* Format a FLOP count as "1.23 GF" etc. into buf. */
const char *views_flops(double f, char *buf, size_t n);
/* Format nanoseconds as "12.3 ms" etc. */
const char *views_time(double ns, char *buf, size_t n);
/* A saving (fraction) as a percentage with two decimals, as `drrl run`
 * prints it ("11.31%"), right-aligned in w cells, good or bad by its sign. */
void views_percent(Canvas *c, int x, int y, int w, double saving);
/* A one-line message centred in r (e.g. "no data yet"). */
void views_note(Canvas *c, CanvasRect r, const char *msg);
/* The selected head's record at the current token into *buf (returns buf),
 * or NULL after noting "no record for this head" in r. */
const TraceRecord *views_head_record(const App *app, Canvas *c, CanvasRect r, TraceRecord *buf);
/* Decimal digits of v >= 0 (the width of a rank or layer number). */
int views_digits(int v);

#endif
