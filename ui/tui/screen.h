/* screen.h: draw the whole explorer screen into a canvas: the layout's
 * panes (frames, titles, views), the status line or the active prompt, and
 * the overlays (help, info), or the "terminal too small" message. Pure
 * drawing: it reads the App and changes nothing. */
#ifndef DRRL_SCREEN_H
#define DRRL_SCREEN_H

#include "tui/app.h"
#include "tui/canvas.h"

/* Draw app into c; the screen size is the canvas's size. */
void screen_draw(const App *app, Canvas *c);

#endif
