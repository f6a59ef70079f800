/* term.c: curses output and input for the TUI (see term.h). */
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include "config.h"

#include "tui/term.h"

#include <curses.h>
#include <langinfo.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui/keys.h"
#include "cli/signals.h"
#include "base/status.h"

static bool is_open;
static SCREEN *screen;
static TermColour colour = TERM_MONO;
static attr_t role_attr[CANVAS_ROLE_COUNT];
static short role_pair[CANVAS_ROLE_COUNT];
void term_catch_signals(void)
{
    signals_catch();
}

bool term_take_ctrl_c(void)
{
    return signals_take_sigint();
}

bool term_interrupted(void)
{
    return signals_caught() != 0;
}

bool term_locale_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

/* Colours per role: {8-colour fg, 256-colour fg, 256 bg, attribute}. -1 is
 * the terminal's default. */
typedef struct RoleStyle {
    short fg8, fg256, bg8, bg256;
    attr_t attr, mono;
} RoleStyle;

static RoleStyle style_of(int role)
{
    switch (role) {
    case CANVAS_ROLE_DIM:
        return (RoleStyle){-1, 245, -1, -1, A_DIM, A_DIM};
    case CANVAS_ROLE_TITLE:
        return (RoleStyle){COLOR_CYAN, 81, -1, -1, A_BOLD, A_BOLD};
    case CANVAS_ROLE_BORDER:
        return (RoleStyle){COLOR_BLUE, 240, -1, -1, 0, 0};
    case CANVAS_ROLE_FOCUS:
        return (RoleStyle){COLOR_YELLOW, 220, -1, -1, A_BOLD, A_BOLD};
    case CANVAS_ROLE_STATUS:
        return (RoleStyle){COLOR_BLACK, 255, COLOR_CYAN, 24, 0, A_REVERSE};
    case CANVAS_ROLE_CURSOR:
        return (RoleStyle){COLOR_YELLOW, 220, -1, -1, A_BOLD, A_BOLD};
    case CANVAS_ROLE_SEGMENT:
        return (RoleStyle){COLOR_MAGENTA, 170, -1, -1, A_BOLD, A_BOLD};
    case CANVAS_ROLE_OK:
        return (RoleStyle){COLOR_GREEN, 114, -1, -1, 0, 0};
    case CANVAS_ROLE_WARN:
        return (RoleStyle){COLOR_YELLOW, 214, -1, -1, 0, A_BOLD};
    case CANVAS_ROLE_BAD:
        return (RoleStyle){COLOR_RED, 196, -1, -1, A_BOLD, A_BOLD | A_UNDERLINE};
    case CANVAS_ROLE_MASKED:
        return (RoleStyle){-1, 239, -1, -1, A_DIM, A_DIM};
    case CANVAS_ROLE_KEYS:
        return (RoleStyle){COLOR_CYAN, 39, -1, -1, 0, 0};
    case CANVAS_ROLE_VALUES:
        return (RoleStyle){COLOR_MAGENTA, 176, -1, -1, 0, 0};
    case CANVAS_ROLE_TAIL:
        return (RoleStyle){-1, 241, -1, -1, A_DIM, A_DIM};
    case CANVAS_ROLE_BOUND:
        return (RoleStyle){COLOR_BLUE, 75, -1, -1, 0, 0};
    case CANVAS_ROLE_MEASURED:
        return (RoleStyle){COLOR_GREEN, 120, -1, -1, A_BOLD, A_BOLD};
    case CANVAS_ROLE_POS:
        return (RoleStyle){COLOR_RED, 203, -1, -1, 0, 0};
    case CANVAS_ROLE_NEG:
        return (RoleStyle){COLOR_BLUE, 69, -1, -1, 0, 0};
    default:
        break;
    }
    if (role >= CANVAS_ROLE_HEAT0 && role < CANVAS_ROLE_HEAT0 + CANVAS_HEAT_LEVELS) {
        /* low rank (cheap) blue to high rank (exact) red */
        static const short h8[CANVAS_HEAT_LEVELS] = {COLOR_BLUE,   COLOR_BLUE,  COLOR_CYAN,
                                                     COLOR_CYAN,   COLOR_GREEN, COLOR_YELLOW,
                                                     COLOR_YELLOW, COLOR_RED};
        static const short h256[CANVAS_HEAT_LEVELS] = {25, 31, 37, 72, 107, 178, 208, 196};
        int i = role - CANVAS_ROLE_HEAT0;
        return (RoleStyle){h8[i], h256[i], -1, -1, 0, 0};
    }
    return (RoleStyle){-1, -1, -1, -1, 0, 0};
}

static void setup_colours(void)
{
    const char *nc = getenv("NO_COLOR");
    colour = TERM_MONO;
    if ((!nc || !*nc) && has_colors() && start_color() == OK) {
        use_default_colors();
        colour = COLORS >= 256 && COLOR_PAIRS >= CANVAS_ROLE_COUNT + 1 ? TERM_COLOUR_256
                                                                       : TERM_COLOUR_8;
    }
    for (int r = 0; r < CANVAS_ROLE_COUNT; r++) {
        RoleStyle s = style_of(r);
        role_pair[r] = 0;
        if (colour == TERM_MONO) {
            role_attr[r] = s.mono;
            continue;
        }
        role_attr[r] = s.attr;
        short fg = colour == TERM_COLOUR_256 ? s.fg256 : s.fg8;
        short bg = colour == TERM_COLOUR_256 ? s.bg256 : s.bg8;
        if ((fg >= 0 || bg >= 0) && r + 1 < COLOR_PAIRS &&
            init_pair((short)(r + 1), fg, bg) == OK)
            role_pair[r] = (short)(r + 1);
    }
}

static void setup_screen(void)
{
    is_open = true;
    atexit(term_close);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    setup_colours();
}

int term_open(char *why, size_t n)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(why, n,
                 "not a terminal: run it in a terminal, or render headless with "
                 "--dump-screen FILE");
        return -1;
    }
    term_catch_signals();
    screen = newterm(NULL, stdout, stdin);
    if (!screen) {
        const char *t = getenv("TERM");
        snprintf(why, n, "cannot open the terminal (TERM=%s): set TERM to your terminal's type",
                 t ? t : "unset");
        return -1;
    }
    set_term(screen);
    /* a terminal that cannot move the cursor cannot show a full screen */
    char *cup = tigetstr("cup");
    if (!cup || cup == (char *)-1) {
        endwin();
        delscreen(screen);
        screen = NULL;
        const char *t = getenv("TERM");
        snprintf(why, n,
                 "the terminal (TERM=%s) cannot move the cursor: use a full-screen "
                 "terminal, or render headless with --dump-screen FILE",
                 t ? t : "unset");
        return -1;
    }
    setup_screen();
    return 0;
}

int term_open_on(const char *term, FILE *out, FILE *in)
{
    screen = newterm(term, out, in);
    if (!screen)
        return -1;
    set_term(screen);
    setup_screen();
    return 0;
}

void term_close(void)
{
    if (!is_open)
        return;
    is_open = false;
    endwin();
    if (screen) {
        delscreen(screen);
        screen = NULL;
    }
}

void term_size(int *cols, int *rows)
{
    getmaxyx(stdscr, *rows, *cols);
}

void term_flush(const Canvas *c)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    for (int y = 0; y < c->h && y < rows; y++) {
        for (int x = 0; x < c->w && x < cols; x++) {
            const CanvasCell *cell = canvas_cell(c, x, y);
            if (cell->ch == 0)
                continue; /* right half of a wide character */
            if (y == rows - 1 && x == cols - 1)
                continue; /* writing the last cell would scroll */
            attr_t a = role_attr[cell->role < CANVAS_ROLE_COUNT ? cell->role : 0];
            if (cell->attr & CANVAS_BOLD)
                a |= A_BOLD;
            if (cell->attr & CANVAS_REVERSE)
                a |= A_REVERSE;
            if (cell->attr & CANVAS_UNDERLINE)
                a |= A_UNDERLINE;
            wchar_t wc[2] = {(wchar_t)cell->ch, 0};
            cchar_t cc;
            setcchar(&cc, wc, a, role_pair[cell->role < CANVAS_ROLE_COUNT ? cell->role : 0],
                     NULL);
            mvwadd_wch(stdscr, y, x, &cc);
        }
    }
    wnoutrefresh(stdscr);
    doupdate();
}

int32_t term_key(int timeout_ms, int *mx, int *my)
{
    wtimeout(stdscr, timeout_ms);
    wint_t ch;
    int rc = wget_wch(stdscr, &ch);
    if (rc == ERR)
        return KEY_CODE_TICK;
    if (rc == KEY_CODE_YES) {
        switch (ch) {
        case KEY_LEFT:
            return KEY_CODE_LEFT;
        case KEY_RIGHT:
            return KEY_CODE_RIGHT;
        case KEY_UP:
            return KEY_CODE_UP;
        case KEY_DOWN:
            return KEY_CODE_DOWN;
        case KEY_SLEFT:
            return KEY_CODE_SLEFT;
        case KEY_SRIGHT:
            return KEY_CODE_SRIGHT;
        case KEY_HOME:
            return KEY_CODE_HOME;
        case KEY_END:
            return KEY_CODE_END;
        case KEY_PPAGE:
            return KEY_CODE_PGUP;
        case KEY_NPAGE:
            return KEY_CODE_PGDN;
        case KEY_BTAB:
            return KEY_CODE_BTAB;
        case KEY_F(1):
            return KEY_CODE_F1;
        case KEY_F(10):
            return KEY_CODE_F10;
        case KEY_ENTER:
            return KEY_CODE_ENTER;
        case KEY_BACKSPACE:
            return KEY_CODE_BACKSPACE;
        case KEY_RESIZE:
            return KEY_CODE_RESIZE;
        case KEY_MOUSE: {
            MEVENT ev;
            if (getmouse(&ev) != OK)
                return KEY_CODE_NONE;
            *mx = ev.x;
            *my = ev.y;
            if (ev.bstate & BUTTON4_PRESSED)
                return KEY_CODE_WHEEL_UP;
#ifdef BUTTON5_PRESSED
            if (ev.bstate & BUTTON5_PRESSED)
                return KEY_CODE_WHEEL_DOWN;
#endif
            if (ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED))
                return KEY_CODE_MOUSE;
            return KEY_CODE_NONE;
        }
        default:
            return KEY_CODE_NONE;
        }
    }
    if (ch == '\r')
        return KEY_CODE_ENTER;
    if (ch == 8)
        return KEY_CODE_BACKSPACE;
    return (int32_t)ch;
}
