/* cli.h: helpers shared by the drrl subcommands (ui/ only).
 *
 * Conventions: exit 0 on success, 1 on a runtime failure, 2 on a usage error
 * or bad input. Every error is one line on stderr: "drrl: WHERE: what".
 */
#ifndef DRRL_CLI_H
#define DRRL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "base/fileio.h"
#include "base/status.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Print "drrl: <err->msg>" and return the exit code for err->code. */
int cli_fail(const DrrlError *err);

/* Print "drrl: CMD: message (try 'drrl help CMD')" and return 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "drrl: message" and return code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long with drrl's conventions: resets optind, silences getopt's own
 * messages, and turns an unknown or incomplete option into a one-line usage
 * error. Returns the option character, -1 at the end, or '?' after having
 * printed the error (the caller then returns CLI_EXIT_USAGE).
 * Every command's long options should include {"help", no_argument, 0, 'h'}. */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
void cli_getopt_reset(void);

/* Parse integers/doubles with range checks; on failure print a usage error
 * naming the option and return CLI_EXIT_USAGE, else 0. */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi,
                   long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out);

/* Read a whole file ("-" = standard input; a FIFO or device is read up to
 * FILEIO_MAX_TEXT bytes) into a malloc'ed, NUL-terminated buffer (the NUL is
 * not counted in *len; the caller frees *buf) with fileio_read_file. On
 * failure prints one line ("drrl: PATH: what") and returns the exit code: 2
 * when the file cannot be opened, is a directory or is over the limit, 1 on a
 * read error or no memory. */
int cli_read_file(const char *path, char **buf, size_t *len);

/* Open an output file under the output rule of base/fileio.h ("-" is
 * standard output; an existing file is replaced only with force). Open it
 * after the command's inputs are read, so that an input is never
 * overwritten. On failure prints one line and returns the exit code. */
int cli_out_open(const char *path, int force, FileOut **o);

/* Publish o (fileio_out_commit); prints one line and returns the exit code
 * on failure, else 0. */
int cli_out_commit(FileOut *o);

/* Like cli_read_file, but only the first max bytes are needed: reading stops
 * there (an endless standard input is never read whole). */
int cli_read_prefix(const char *path, size_t max, char **buf, size_t *len);

/* Print a command's usage text (to stdout for --help). */
void cli_print_usage(const char *usage);

/* The data directory holding the default model, policy and texts: $DRRL_DATA,
 * else the source tree's data/ when running from a build tree, else the
 * installed pkgdatadir. The returned string is static. */
const char *cli_data_dir(void);

#endif
