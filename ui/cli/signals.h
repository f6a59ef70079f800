/* signals.h: SIGINT, SIGTERM and SIGHUP turned into a flag that the main loop
 * polls (ui/ only).
 *
 * Contract for every long-running command and for the TUI:
 *   signals_catch();                      at start
 *   ... work in steps; between steps: if (signals_caught()) stop cleanly:
 *       finish the trace being recorded (trace_csv_writer_finish with
 *       interrupted = 1: the rows so far stay a valid trace), restore the
 *       terminal, save what must be saved ...
 *   signals_restore();                    at the end
 *   and report DRRL_E_INTERRUPTED (exit status 1, status.h) naming what was
 *   saved, e.g. "drrl: run: interrupted (SIGINT): trace t.csv holds 1234 rows".
 * The handler only stores the signal number (async-signal-safe). A second
 * signal while the first is still unhandled restores the default action and
 * re-raises it, so a stuck program still dies on a second Ctrl-C.
 * Handlers use SA_RESTART: blocking reads are not interrupted; poll the flag
 * (for curses, with a getch timeout).
 */
#ifndef DRRL_SIGNALS_H
#define DRRL_SIGNALS_H

#include <stdbool.h>

/* At program start: SIGINT, SIGTERM and SIGHUP (unless ignored) remove the
 * temporary files of base/fileio.h and then kill the process as before; the
 * same removal runs at exit. */
void signals_init(void);

/* Install the handlers (remembering the previous ones) and clear the flag. */
void signals_catch(void);

/* Put back the handlers signals_catch replaced. */
void signals_restore(void);

/* The signal caught since signals_catch (SIGINT, SIGTERM or SIGHUP), or 0. */
int signals_caught(void);

/* When the signal caught is SIGINT, clear it and return true (the TUI's
 * Ctrl-C during a long jump cancels the jump, not the program). */
bool signals_take_sigint(void);

/* "SIGINT", "SIGTERM", "SIGHUP" for the caught signal, or "" when none. */
const char *signals_name(void);

#endif
