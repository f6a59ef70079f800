/* layout.c: pane rectangles for a terminal size (see layout.h). */
#include "config.h"

#include "tui/layout.h"

#include <string.h>

static CanvasRect rect(int x, int y, int w, int h)
{
    if (w < 0)
        w = 0;
    if (h < 0)
        h = 0;
    return (CanvasRect){x, y, w, h};
}

CanvasRect layout_inner(CanvasRect r)
{
    return rect(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
}

const char *layout_mode_name(LayoutMode m)
{
    switch (m) {
    case LAYOUT_TOO_SMALL:
        return "too-small";
    case LAYOUT_SINGLE:
        return "single";
    case LAYOUT_COMPACT:
        return "compact";
    case LAYOUT_FULL:
        return "full";
    }
    return "?";
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void layout_compute(Layout *l, int cols, int rows, int n_layers, int n_heads, bool has_policy,
                    int focus, bool zoom)
{
    memset(l, 0, sizeof *l);
    if (focus < 0 || focus >= VIEW_COUNT || (focus == VIEW_policy && !has_policy))
        focus = VIEW_ranks;
    if (cols < LAYOUT_MIN_COLS || rows < LAYOUT_MIN_ROWS) {
        l->mode = LAYOUT_TOO_SMALL;
        return;
    }
    l->status = rect(0, rows - 1, cols, 1);
    int body_y = 3, body_h = rows - 4;
    l->pane[VIEW_tokens] = rect(0, 0, cols, 3);

    if (cols >= LAYOUT_FULL_COLS && rows >= LAYOUT_FULL_ROWS)
        l->mode = LAYOUT_FULL;
    else if (cols >= LAYOUT_COMPACT_COLS && rows >= LAYOUT_COMPACT_ROWS)
        l->mode = LAYOUT_COMPACT;
    else
        l->mode = LAYOUT_SINGLE;

    if (zoom || l->mode == LAYOUT_SINGLE) {
        if (focus == VIEW_tokens) {
            l->pane[VIEW_tokens] = rect(0, 0, cols, rows - 1);
            return;
        }
        l->pane[focus] = rect(0, body_y, cols, body_h);
        return;
    }

    if (l->mode == LAYOUT_COMPACT) {
        int lw = cols / 2;
        l->pane[VIEW_ranks] = rect(0, body_y, lw, body_h);
        int sh = body_h / 2;
        l->pane[VIEW_spectrum] = rect(lw, body_y, cols - lw, sh);
        int detail = (focus == VIEW_tokens || focus == VIEW_ranks || focus == VIEW_spectrum)
                         ? VIEW_bounds
                         : focus;
        l->pane[detail] = rect(lw, body_y + sh, cols - lw, body_h - sh);
        return;
    }

    /* FULL: left column ranks over flops; right column spectrum, bounds,
     * then policy beside attention. */
    int lw = clampi(cols * 5 / 12, 50, 90);
    int rw = cols - lw;
    /* the grid, and below it the history sparklines when they do not fit
     * beside it (view_ranks.c: cells of about 3 columns, 16 for the side) */
    int want = n_layers + 6;
    if (lw - 4 - (5 + 3 * n_heads) - 2 < 16)
        want += (n_heads < 8 ? n_heads : 8) + 2;
    int rh = clampi(want, 12, body_h - 10);
    if (rh < 14 && body_h >= 30)
        rh = 14;
    l->pane[VIEW_ranks] = rect(0, body_y, lw, rh);
    l->pane[VIEW_flops] = rect(0, body_y + rh, lw, body_h - rh);
    int sh = clampi(body_h * 2 / 5, 10, 20);
    int bh = 9;
    l->pane[VIEW_spectrum] = rect(lw, body_y, rw, sh);
    l->pane[VIEW_bounds] = rect(lw, body_y + sh, rw, bh);
    int ay = body_y + sh + bh, ah = body_h - sh - bh;
    if (has_policy) {
        int pw = clampi(rw * 2 / 5, 30, rw - 30);
        l->pane[VIEW_policy] = rect(lw, ay, pw, ah);
        l->pane[VIEW_attention] = rect(lw + pw, ay, rw - pw, ah);
    } else {
        l->pane[VIEW_attention] = rect(lw, ay, rw, ah);
    }
}

int layout_hit(const Layout *l, int x, int y)
{
    for (int i = 0; i < VIEW_COUNT; i++) {
        CanvasRect r = l->pane[i];
        if (r.w > 0 && x >= r.x && y >= r.y && x < r.x + r.w && y < r.y + r.h)
            return i;
    }
    return -1;
}
