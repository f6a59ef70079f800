/* term.h: the curses side of the TUI: open and restore the terminal, map
 * canvas roles to colours, flush a canvas, read keys. The only TUI file that
 * includes curses (besides the bench's flush timing, which goes through
 * term_flush too).
 *
 * Colour: NO_COLOR (any non-empty value) or a terminal without colours gives
 * monochrome (attributes only; heatmaps keep their glyphs); 256 colours when
 * the terminal has them, else the 8 basic ones.
 * Restoring: term_close is idempotent and registered with atexit and as the
 * engine's fatal hook, so every exit path leaves the terminal usable; SIGINT,
 * SIGTERM and SIGHUP set a flag (ui/cli/signals.h; term_interrupted) that the
 * loop checks between keys and between computed tokens.
 */
#ifndef DRRL_TERM_H
#define DRRL_TERM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tui/canvas.h"

typedef enum TermColour { TERM_MONO, TERM_COLOUR_8, TERM_COLOUR_256 } TermColour;

/* Open the terminal on stdin/stdout (both must be ttys). Returns 0, or -1
 * with a message in why (n bytes). */
int term_open(char *why, size_t n);

/* Open a terminal of type `term` writing to `out` (benchmarks: /dev/null).
 * Returns 0 or -1. */
int term_open_on(const char *term, FILE *out, FILE *in);

/* Restore the terminal (no-op when not open). */
void term_close(void);

void term_size(int *cols, int *rows);

/* Draw the canvas on the terminal and refresh. */
void term_flush(const Canvas *c);

/* Wait up to timeout_ms (< 0: forever) for a key; returns a KEY_CODE_* or a
 * character, KEY_CODE_TICK on timeout, KEY_CODE_NONE on nothing useful.
 * A click stores its position in *mx, *my. */
int32_t term_key(int timeout_ms, int *mx, int *my);

/* A signal asked us to stop (SIGINT, SIGTERM, SIGHUP): signals_caught(). */
bool term_interrupted(void);
/* Ctrl-C (SIGINT) caught: clear it and return true (a long jump cancels). */
bool term_take_ctrl_c(void);
/* Install the signal handlers (signals_catch; term_open does it too). */
void term_catch_signals(void);

/* Whether the locale's codeset is UTF-8 (setlocale must have run). */
bool term_locale_utf8(void);

#endif
