/* canvas.c: the off-screen cell grid (see canvas.h). No curses here. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* wcwidth */
#endif
#include "config.h"

#include "tui/canvas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static const CanvasGlyphs glyphs_utf8 = {
    .hline = 0x2500,
    .vline = 0x2502,
    .tl = 0x250C,
    .tr = 0x2510,
    .bl = 0x2514,
    .br = 0x2518,
    .ltee = 0x251C,
    .rtee = 0x2524,
    .spark = {0x2581, 0x2582, 0x2583, 0x2584, 0x2585, 0x2586, 0x2587, 0x2588},
    .ramp = {' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'},
    .full = 0x2588,
    .shade = 0x2591,
    .upper = 0x2580,
    .lower = 0x2584,
    .cut = 0x2503,
    .boundary = 0x2502,
    .ellipsis = 0x2026,
    .arrow_r = 0x25B8,
    .arrow_d = 0x25BE,
    .hbar = {' ', 0x258F, 0x258E, 0x258D, 0x258C, 0x258B, 0x258A, 0x2589, 0x2588},
};

static const CanvasGlyphs glyphs_ascii = {
    .hline = '-',
    .vline = '|',
    .tl = '+',
    .tr = '+',
    .bl = '+',
    .br = '+',
    .ltee = '+',
    .rtee = '+',
    .spark = {'_', '.', ',', '-', '=', '+', '*', '#'},
    .ramp = {' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'},
    .full = '#',
    .shade = ':',
    .upper = '"',
    .lower = '.',
    .cut = '|',
    .boundary = '|',
    .ellipsis = '~',
    .arrow_r = '>',
    .arrow_d = 'v',
    .hbar = {' ', ' ', ' ', ' ', '#', '#', '#', '#', '#'},
};

Canvas *canvas_new(int w, int h, bool utf8)
{
    Canvas *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->utf8 = utf8;
    c->g = utf8 ? &glyphs_utf8 : &glyphs_ascii;
    if (canvas_resize(c, w, h) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void canvas_free(Canvas *c)
{
    if (!c)
        return;
    free(c->cells);
    free(c);
}

int canvas_resize(Canvas *c, int w, int h)
{
    if (w < 0)
        w = 0;
    if (h < 0)
        h = 0;
    size_t n = (size_t)w * (size_t)h;
    CanvasCell *cells = malloc((n ? n : 1) * sizeof *cells);
    if (!cells)
        return -1;
    free(c->cells);
    c->cells = cells;
    c->w = w;
    c->h = h;
    canvas_clear(c);
    return 0;
}

void canvas_clear(Canvas *c)
{
    size_t n = (size_t)c->w * (size_t)c->h;
    for (size_t i = 0; i < n; i++)
        c->cells[i] = (CanvasCell){' ', CANVAS_ROLE_NORMAL, 0, 0, 0};
    canvas_unclip(c);
}

void canvas_clip(Canvas *c, CanvasRect r)
{
    int x0 = r.x < 0 ? 0 : r.x, y0 = r.y < 0 ? 0 : r.y;
    int x1 = r.x + r.w, y1 = r.y + r.h;
    if (x1 > c->w)
        x1 = c->w;
    if (y1 > c->h)
        y1 = c->h;
    c->clip = (CanvasRect){x0, y0, x1 > x0 ? x1 - x0 : 0, y1 > y0 ? y1 - y0 : 0};
}

void canvas_unclip(Canvas *c)
{
    c->clip = (CanvasRect){0, 0, c->w, c->h};
}

static bool inside(const Canvas *c, int x, int y)
{
    return x >= c->clip.x && y >= c->clip.y && x < c->clip.x + c->clip.w &&
           y < c->clip.y + c->clip.h;
}

const CanvasCell *canvas_cell(const Canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return NULL;
    return &c->cells[(size_t)y * (size_t)c->w + (size_t)x];
}

static CanvasCell *cell_at(Canvas *c, int x, int y)
{
    return &c->cells[(size_t)y * (size_t)c->w + (size_t)x];
}

/* Columns a character takes: 0 (combining/unprintable), 1 or 2. */
static int char_width(const Canvas *c, uint32_t ch)
{
    if (ch < 0x20 || ch == 0x7F)
        return 0;
    if (ch < 0x7F)
        return 1;
    if (!c->utf8)
        return 1; /* shown as '?' */
    int w = wcwidth((wchar_t)ch);
    return w < 0 ? 1 : w; /* unknown: shown as U+FFFD, one column */
}

/* Overwriting half of a wide character blanks its other half. */
static void break_wide(Canvas *c, int x, int y)
{
    CanvasCell *cell = cell_at(c, x, y);
    if (cell->ch == 0 && x > 0)
        cell_at(c, x - 1, y)->ch = ' ';
    if (x + 1 < c->w && cell_at(c, x + 1, y)->ch == 0)
        cell_at(c, x + 1, y)->ch = ' ';
}

int canvas_put(Canvas *c, int x, int y, uint32_t ch, int role, int attr)
{
    int w = char_width(c, ch);
    if (w == 0)
        return 0;
    if (!c->utf8 && ch >= 0x7F)
        ch = '?';
    else if (c->utf8 && ch >= 0x7F && wcwidth((wchar_t)ch) < 0)
        ch = 0xFFFD;
    if (!inside(c, x, y) || (w == 2 && !inside(c, x + 1, y)))
        return 0;
    break_wide(c, x, y);
    if (w == 2)
        break_wide(c, x + 1, y);
    *cell_at(c, x, y) = (CanvasCell){ch, (uint8_t)role, (uint8_t)attr, 0, 0};
    if (w == 2)
        *cell_at(c, x + 1, y) = (CanvasCell){0, (uint8_t)role, (uint8_t)attr, 0, 0};
    return w;
}

void canvas_paint(Canvas *c, int x, int y, int n, int role, int attr)
{
    for (int i = 0; i < n; i++)
        if (inside(c, x + i, y)) {
            CanvasCell *cell = cell_at(c, x + i, y);
            cell->role = (uint8_t)role;
            cell->attr = (uint8_t)attr;
        }
}

void canvas_fill(Canvas *c, CanvasRect r, uint32_t ch, int role, int attr)
{
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++)
            canvas_put(c, x, y, ch, role, attr);
}

int canvas_utf8_decode(const char *s, uint32_t *out)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] == 0) {
        *out = 0;
        return 0;
    }
    if (u[0] < 0x80) {
        *out = u[0];
        return 1;
    }
    int n;
    uint32_t ch;
    if ((u[0] & 0xE0) == 0xC0) {
        n = 2;
        ch = u[0] & 0x1F;
    } else if ((u[0] & 0xF0) == 0xE0) {
        n = 3;
        ch = u[0] & 0x0F;
    } else if ((u[0] & 0xF8) == 0xF0) {
        n = 4;
        ch = u[0] & 0x07;
    } else {
        *out = 0xFFFD;
        return 1;
    }
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *out = 0xFFFD;
            return 1;
        }
        ch = (ch << 6) | (u[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ch < min[n] || ch > 0x10FFFF || (ch >= 0xD800 && ch <= 0xDFFF))
        ch = 0xFFFD;
    *out = ch;
    return n;
}

int canvas_utf8_encode(uint32_t ch, char *buf)
{
    unsigned char *b = (unsigned char *)buf;
    int n;
    if (ch < 0x80) {
        b[0] = (unsigned char)ch;
        n = 1;
    } else if (ch < 0x800) {
        b[0] = (unsigned char)(0xC0 | (ch >> 6));
        b[1] = (unsigned char)(0x80 | (ch & 0x3F));
        n = 2;
    } else if (ch < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (ch >> 12));
        b[1] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (ch & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (ch >> 18));
        b[1] = (unsigned char)(0x80 | ((ch >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (ch & 0x3F));
        n = 4;
    }
    b[n] = 0;
    return n;
}

/* The character text drawing shows for a decoded scalar. */
static uint32_t shown(const Canvas *c, uint32_t ch)
{
    if (ch == '\t')
        return ' ';
    if (ch < 0x20 || ch == 0x7F)
        return '?';
    if (!c->utf8 && ch >= 0x80)
        return '?';
    return ch;
}

int canvas_text_width(const Canvas *c, const char *s)
{
    int w = 0;
    uint32_t ch;
    int n;
    while ((n = canvas_utf8_decode(s, &ch)) > 0) {
        s += n;
        w += char_width(c, shown(c, ch));
    }
    return w;
}

int canvas_text(Canvas *c, int x, int y, int maxw, int role, int attr, const char *s)
{
    if (maxw < 0)
        maxw = c->clip.x + c->clip.w - x;
    if (maxw <= 0 || !s)
        return 0;
    int total = canvas_text_width(c, s);
    bool cut = total > maxw;
    int limit = cut ? maxw - 1 : maxw; /* leave room for the ellipsis */
    int col = 0;
    uint32_t ch;
    int n;
    while ((n = canvas_utf8_decode(s, &ch)) > 0) {
        s += n;
        ch = shown(c, ch);
        int w = char_width(c, ch);
        if (w == 0)
            continue;
        if (col + w > limit)
            break;
        canvas_put(c, x + col, y, ch, role, attr);
        col += w;
    }
    if (cut) {
        canvas_put(c, x + col, y, c->g->ellipsis, CANVAS_ROLE_DIM, 0);
        col++;
    }
    return col;
}

int canvas_printf(Canvas *c, int x, int y, int maxw, int role, int attr, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return canvas_text(c, x, y, maxw, role, attr, buf);
}

void canvas_box(Canvas *c, CanvasRect r, const char *title, int role)
{
    if (r.w < 2 || r.h < 2)
        return;
    const CanvasGlyphs *g = c->g;
    int x1 = r.x + r.w - 1, y1 = r.y + r.h - 1;
    for (int x = r.x + 1; x < x1; x++) {
        canvas_put(c, x, r.y, g->hline, role, 0);
        canvas_put(c, x, y1, g->hline, role, 0);
    }
    for (int y = r.y + 1; y < y1; y++) {
        canvas_put(c, r.x, y, g->vline, role, 0);
        canvas_put(c, x1, y, g->vline, role, 0);
    }
    canvas_put(c, r.x, r.y, g->tl, role, 0);
    canvas_put(c, x1, r.y, g->tr, role, 0);
    canvas_put(c, r.x, y1, g->bl, role, 0);
    canvas_put(c, x1, y1, g->br, role, 0);
    if (title && *title && r.w > 6) {
        int tr = role == CANVAS_ROLE_FOCUS ? CANVAS_ROLE_FOCUS : CANVAS_ROLE_TITLE;
        canvas_put(c, r.x + 1, r.y, ' ', role, 0);
        int n = canvas_text(c, r.x + 2, r.y, r.w - 5, tr, CANVAS_BOLD, title);
        canvas_put(c, r.x + 2 + n, r.y, ' ', role, 0);
    }
}

int canvas_hbar(Canvas *c, int x, int y, int w, double frac, int role)
{
    if (w <= 0 || !(frac > 0))
        return 0;
    if (frac > 1)
        frac = 1;
    const CanvasGlyphs *g = c->g;
    int eighths = (int)lround(frac * w * 8);
    if (eighths == 0)
        eighths = 1; /* a nonzero value is never invisible */
    int full = eighths / 8, rem = eighths % 8;
    int col = 0;
    for (; col < full; col++)
        canvas_put(c, x + col, y, g->full, role, 0);
    if (rem && col < w) {
        uint32_t ch = c->utf8 ? g->hbar[rem] : (rem >= 4 ? g->full : '.');
        canvas_put(c, x + col, y, ch, role, 0);
        col++;
    }
    return col;
}

void canvas_sparkline(Canvas *c, int x, int y, int w, const double *v, int n, double lo,
                      double hi, int role)
{
    if (w <= 0 || n <= 0)
        return;
    int first = n > w ? n - w : 0;
    int off = n > w ? 0 : w - n;
    double span = hi - lo;
    for (int i = first; i < n; i++) {
        double t = v[i];
        uint32_t ch = ' ';
        if (!isnan(t)) {
            double f = span > 0 ? (t - lo) / span : 1.0;
            if (f < 0)
                f = 0;
            if (f > 1)
                f = 1;
            int level = (int)lround(f * 7);
            ch = c->g->spark[level];
        }
        canvas_put(c, x + off + (i - first), y, ch, role, 0);
    }
}

int canvas_level8(double level)
{
    /* (0, 1/8] -> 0, ..., (7/8, 1] -> 7: rank r of d lands in level
     * ceil(8 r / d) - 1, so the eight grid ranks d/8 .. d differ */
    if (!(level > 0))
        return 0;
    if (level > 1)
        level = 1;
    int i = (int)ceil(level * 8 - 1e-9) - 1;
    return i < 0 ? 0 : i > 7 ? 7 : i;
}

int canvas_heat_role(double level)
{
    if (!(level > 0))
        level = 0;
    if (level > 1)
        level = 1;
    return CANVAS_ROLE_HEAT0 + canvas_level8(level);
}

uint32_t canvas_ramp_glyph(const Canvas *c, double level)
{
    if (!(level > 0))
        level = 0;
    if (level > 1)
        level = 1;
    int i = (int)lround(level * 9);
    return c->g->ramp[i];
}

/* Append the text of row y (trailing spaces removed) to buf. */
static size_t row_text(const Canvas *c, int y, char *buf)
{
    size_t len = 0, keep = 0;
    for (int x = 0; x < c->w; x++) {
        const CanvasCell *cell = canvas_cell(c, x, y);
        if (cell->ch == 0)
            continue;
        len += (size_t)canvas_utf8_encode(cell->ch, buf + len);
        if (cell->ch != ' ')
            keep = len;
    }
    buf[keep] = 0;
    return keep;
}

int canvas_dump(const Canvas *c, FILE *f)
{
    char *buf = malloc((size_t)c->w * 4 + 8);
    if (!buf)
        return -1;
    int rc = 0;
    for (int y = 0; y < c->h; y++) {
        size_t n = row_text(c, y, buf);
        buf[n++] = '\n';
        if (fwrite(buf, 1, n, f) != n)
            rc = -1;
    }
    free(buf);
    return rc;
}

char *canvas_dump_string(const Canvas *c)
{
    size_t cap = ((size_t)c->w * 4 + 1) * (size_t)c->h + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t len = 0;
    for (int y = 0; y < c->h; y++) {
        len += row_text(c, y, out + len);
        out[len++] = '\n';
    }
    out[len] = 0;
    return out;
}
