/* tour.h: `drrl tour`, a guided lesson on the live engine and the shipped
 * model. The whole text is computed first; the tour then stops at the
 * moments that matter, found in the records (not hard-coded): the exact
 * first segment, the first basis and its spectrum, the first rank change and
 * the policy's probabilities, the first masked rank and the bounds beside
 * it, the attention core's FLOP ledger turning positive, exact against
 * approximate attention rows. Each stop moves the explorer (token, head,
 * focused pane) and sets its narration (App.narration, drawn by screen.c
 * under the panes); n / Enter go on, p / Backspace go back, every other key
 * is the explorer's. */
#ifndef DRRL_TOUR_H
#define DRRL_TOUR_H

#include "tui/app.h"

typedef struct TourStop {
    int64_t step;
    int32_t layer, head;
    int focus; /* VIEW_* */
    char title[64];
    char text[1024];
} TourStop;

typedef struct Tour {
    TourStop stops[8];
    int n, at;
    char heading[128];
} Tour;

/* Find the stops in app's store (every step computed) and show the first.
 * Returns 0, or -1 when the text is too short for any stop. */
int tour_prepare(App *app, Tour *t);

/* Show stop i (clamped). */
void tour_show(App *app, Tour *t, int i);

#endif
