/* canvas.h: an off-screen grid of character cells that views draw into.
 *
 * Views never talk to curses: they draw into a Canvas, and the main loop
 * flushes it to the terminal (ui/tui/term.c) or dumps it as plain UTF-8 text
 * (golden-screen tests, --dump-screen). A cell holds one character (a wide
 * character takes two cells: the second is a continuation cell), a semantic
 * colour role and attribute bits; the role -> colour mapping lives in term.c,
 * so the same canvas renders in 256 colours, 8 colours or monochrome.
 *
 * Glyphs: the canvas is either UTF-8 (box drawing, block elements) or ASCII
 * (fallback when the locale's codeset is not UTF-8). Views ask the canvas for
 * glyphs (canvas_glyphs) instead of hard-coding them.
 *
 * Drawing is clipped: any coordinate outside the canvas (or outside the
 * current clip rectangle) is ignored, so views may draw carelessly into a
 * small rectangle and never write out of bounds.
 */
#ifndef DRRL_CANVAS_H
#define DRRL_CANVAS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Semantic colour roles (term.c maps each to a colour pair or attribute). */
#define CANVAS_ROLES(X)                                                                        \
    X(NORMAL)   /* body text */                                                                \
    X(DIM)      /* secondary text, labels */                                                   \
    X(TITLE)    /* pane titles */                                                              \
    X(BORDER)   /* pane frames */                                                              \
    X(FOCUS)    /* frame and title of the focused pane */                                      \
    X(STATUS)   /* the status line */                                                          \
    X(CURSOR)   /* the current token, the selected head */                                     \
    X(SEGMENT)  /* segment boundary marks */                                                   \
    X(OK)       /* within bounds, savings */                                                   \
    X(WARN)     /* near a threshold */                                                         \
    X(BAD)      /* over a threshold, errors */                                                 \
    X(MASKED)   /* ranks removed by the safety mask: greyed */                                 \
    X(KEYS)     /* key singular values */                                                      \
    X(VALUES)   /* value singular values */                                                    \
    X(TAIL)     /* the discarded tail of a spectrum */                                         \
    X(BOUND)    /* proven bounds */                                                            \
    X(MEASURED) /* measured errors */                                                          \
    X(POS)      /* positive difference (approx > exact) */                                     \
    X(NEG)      /* negative difference */                                                      \
    X(HEAT0) X(HEAT1) X(HEAT2) X(HEAT3) X(HEAT4) X(HEAT5) X(HEAT6) X(HEAT7)

typedef enum CanvasRole {
#define X(name) CANVAS_ROLE_##name,
    CANVAS_ROLES(X)
#undef X
        CANVAS_ROLE_COUNT
} CanvasRole;

#define CANVAS_HEAT_LEVELS 8

/* Attribute bits, combined with a role. */
enum {
    CANVAS_BOLD = 1,
    CANVAS_REVERSE = 2,
    CANVAS_UNDERLINE = 4,
};

typedef struct CanvasCell {
    uint32_t ch;  /* Unicode scalar; 0 marks the right half of a wide char */
    uint8_t role; /* CanvasRole */
    uint8_t attr; /* CANVAS_BOLD | ... */
    uint8_t fg;   /* 0, or a 256-colour index overriding the role's colour */
    uint8_t bg;   /* 0, or a 256-colour index for the background */
} CanvasCell;

/* Glyphs for the canvas's character set (UTF-8 or ASCII). Each entry is a
 * Unicode scalar that is one column wide. */
typedef struct CanvasGlyphs {
    uint32_t hline, vline, tl, tr, bl, br, ltee, rtee;
    uint32_t spark[8];     /* sparkline levels, lowest to highest */
    uint32_t ramp[10];     /* monochrome heat ramp " .:-=+*#%@" */
    uint32_t full;         /* a full bar cell */
    uint32_t shade;        /* a shaded (discarded) bar cell */
    uint32_t upper, lower; /* half blocks: upper half, lower half */
    uint32_t cut;          /* the rank cut marker */
    uint32_t boundary;     /* segment boundary mark */
    uint32_t ellipsis;     /* text truncated */
    uint32_t arrow_r;      /* a right-pointing marker */
    uint32_t arrow_d;      /* a down-pointing marker */
    /* eighths of a horizontal bar, [0] unused, [8] full */
    uint32_t hbar[9];
} CanvasGlyphs;

typedef struct CanvasRect {
    int x, y, w, h;
} CanvasRect;

typedef struct Canvas {
    int w, h;
    bool utf8;
    CanvasCell *cells; /* h rows of w cells */
    CanvasRect clip;   /* drawing is limited to this rectangle */
    const CanvasGlyphs *g;
} Canvas;

/* A new blank canvas of w x h cells (w, h >= 0), or NULL when out of memory.
 * utf8 selects the glyph set. */
Canvas *canvas_new(int w, int h, bool utf8);
void canvas_free(Canvas *c); /* NULL is fine */

/* Resize to w x h and clear. Returns 0, or -1 when out of memory (the canvas
 * is then unchanged). */
int canvas_resize(Canvas *c, int w, int h);

/* Fill every cell with a space of role NORMAL, reset the clip. */
void canvas_clear(Canvas *c);

/* Limit drawing to r (intersected with the canvas); canvas_unclip resets. */
void canvas_clip(Canvas *c, CanvasRect r);
void canvas_unclip(Canvas *c);

/* The glyph set in use. */
static inline const CanvasGlyphs *canvas_glyphs(const Canvas *c)
{
    return c->g;
}

/* Put one character at (x, y); a wide character takes two cells. Returns the
 * number of columns it takes (0 for unprintable characters, which are
 * skipped, and for characters that do not fit). */
int canvas_put(Canvas *c, int x, int y, uint32_t ch, int role, int attr);

/* Set the role/attributes of the cells [x, x+n) on row y without changing
 * their characters. */
void canvas_paint(Canvas *c, int x, int y, int n, int role, int attr);

/* Fill [x, x+w) x [y, y+h) with ch. */
void canvas_fill(Canvas *c, CanvasRect r, uint32_t ch, int role, int attr);

/* Draw UTF-8 text starting at (x, y), at most maxw columns (maxw < 0: to the
 * clip's right edge). A tab shows as a space and other control characters
 * as '?' (callers that want "\n" escape it first). Invalid UTF-8 bytes show
 * as U+FFFD; in ASCII mode every non-ASCII character shows as '?'. If the
 * text is cut, its last column shows an ellipsis. Returns the number of
 * columns drawn. */
int canvas_text(Canvas *c, int x, int y, int maxw, int role, int attr, const char *s);

/* printf into canvas_text. */
int canvas_printf(Canvas *c, int x, int y, int maxw, int role, int attr, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Display width in columns of UTF-8 text as canvas_text would draw it
 * (without a limit). */
int canvas_text_width(const Canvas *c, const char *s);

/* A frame around r with a title in its top edge; role is BORDER or FOCUS. */
void canvas_box(Canvas *c, CanvasRect r, const char *title, int role);

/* Horizontal bar of `frac` (0..1) of w cells, with eighth-block resolution in
 * UTF-8 and '#' in ASCII. Returns the number of cells drawn. */
int canvas_hbar(Canvas *c, int x, int y, int w, double frac, int role);

/* A sparkline of n values (NAN values are drawn as a space) scaled to
 * [lo, hi] over w columns: the last w values are shown, right-aligned. */
void canvas_sparkline(Canvas *c, int x, int y, int w, const double *v, int n, double lo,
                      double hi, int role);

/* The eighth a level in [0, 1] falls in: 0..7 (ceil(8 level) - 1). */
int canvas_level8(double level);
/* The heat role for level in [0, 1] (HEAT0 + canvas_level8). */
int canvas_heat_role(double level);
/* The monochrome ramp glyph for level in [0, 1]. */
uint32_t canvas_ramp_glyph(const Canvas *c, double level);

/* Write the canvas as text: one line per row, UTF-8 (or ASCII), trailing
 * spaces removed. Returns 0, or -1 on a write error. */
int canvas_dump(const Canvas *c, FILE *f);

/* The canvas as a newly allocated NUL-terminated string (caller frees), or
 * NULL when out of memory. */
char *canvas_dump_string(const Canvas *c);

/* The cell at (x, y), or NULL outside the canvas. */
const CanvasCell *canvas_cell(const Canvas *c, int x, int y);

/* Encode a Unicode scalar as UTF-8 into buf (at least 5 bytes); returns the
 * number of bytes written (not counting the NUL). */
int canvas_utf8_encode(uint32_t ch, char *buf);

/* Decode one UTF-8 character from s; stores the scalar (U+FFFD for invalid
 * bytes) and returns the number of bytes consumed (>= 1, or 0 at NUL). */
int canvas_utf8_decode(const char *s, uint32_t *out);

#endif
