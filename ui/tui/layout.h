/* layout.h: where each pane goes for a terminal size (pure: no drawing).
 *
 * Modes, by terminal size:
 *   FULL       >= 120 x 36: every pane at once.
 *   COMPACT    >= 80 x 24: tokens, ranks, spectrum and one detail pane (the
 *              focused one, else bounds); Tab brings the others in.
 *   SINGLE     >= 40 x 12: tokens and the focused pane.
 *   TOO_SMALL  below: a polite message, nothing else.
 * Zoom shows the focused pane alone in any mode but TOO_SMALL.
 */
#ifndef DRRL_LAYOUT_H
#define DRRL_LAYOUT_H

#include <stdbool.h>

#include "tui/canvas.h"
#include "tui/views.h"

typedef enum LayoutMode {
    LAYOUT_TOO_SMALL,
    LAYOUT_SINGLE,
    LAYOUT_COMPACT,
    LAYOUT_FULL,
} LayoutMode;

#define LAYOUT_MIN_COLS 40
#define LAYOUT_MIN_ROWS 12
#define LAYOUT_COMPACT_COLS 80
#define LAYOUT_COMPACT_ROWS 24
#define LAYOUT_FULL_COLS 120
#define LAYOUT_FULL_ROWS 36

typedef struct Layout {
    LayoutMode mode;
    CanvasRect pane[VIEW_COUNT]; /* frame rectangles; w == 0: not shown */
    CanvasRect status;           /* the status line */
} Layout;

/* Compute the layout for a cols x rows terminal of a model with n_layers x
 * n_heads (the rank grid's size). has_policy: whether the policy pane has
 * anything to show; focus: the focused ViewId; zoom: the focused pane
 * alone. */
void layout_compute(Layout *l, int cols, int rows, int n_layers, int n_heads, bool has_policy,
                    int focus, bool zoom);

/* The inside of a pane's frame. */
CanvasRect layout_inner(CanvasRect r);

/* The pane at (x, y), or -1. */
int layout_hit(const Layout *l, int x, int y);

const char *layout_mode_name(LayoutMode m);

#endif
