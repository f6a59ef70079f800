/* cli.h: helpers shared by the drrl subcommands (ui/ only).
 *
 * Conventions: exit 0 on success, 1 on a runtime failure, 2 on a usage error
 * or bad input. Every error is one line on stderr: "drrl: WHERE: what", and
 * its exit status comes from the error's status kind through the one table
 * of base/status.c (drrl_status_exit_code): commands name the kind
 * (cli_error(DRRL_E_NOMEM, ...)), never an exit code.
 */
#ifndef DRRL_CLI_H
#define DRRL_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "base/fileio.h"
#include "base/status.h"

enum {
    CLI_EXIT_OK = DRRL_EXIT_OK,
    CLI_EXIT_FAIL = DRRL_EXIT_FAIL,
    CLI_EXIT_USAGE = DRRL_EXIT_USAGE
};

/* Print "drrl: <err->msg>" and return the exit code for err->code. */
int cli_fail(const DrrlError *err);

/* Print "drrl: CMD: message (try 'drrl help CMD')" and return 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "drrl: message" and return the exit code of kind (status.c's table). */
int cli_error(DrrlStatus kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

/* A growing array of token ids, filled by the parsers of id lists (--ids,
 * --ids-file, tokenize --decode); starts as {0}, the owner frees v. */
typedef struct CliIds {
    int32_t *v;
    size_t n, cap;
} CliIds;
/* Append id: 0, or the exit code after printing "out of memory" (v is then
 * freed and the array empty again). */
int cli_ids_push(CliIds *ids, int32_t id);

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

/* cli_data_dir()/rel, malloc'ed (NULL when out of memory). */
char *cli_data_path(const char *rel);

/* s seconds as MM:SS, or H:MM:SS from an hour (negative or not finite: 00:00),
 * for progress lines. */
void cli_fmt_time(char *buf, size_t n, double s);

/* A row of a command table: `drrl NAME` (ui/cmd/commands.h) or a
 * subcommand such as `drrl bench NAME`. */
typedef struct CliCommand {
    const char *name; /* a C identifier: '_' is typed as '-' */
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the name as typed */
} CliCommand;

/* The row of table[0..n) whose name is typed ('-' matching '_'), or NULL. */
const CliCommand *cli_command_find(const CliCommand *table, size_t n, const char *typed);

/* Run a table's command on argv (argv[0] its name), getopt's state reset. */
int cli_command_run(const CliCommand *cmd, int argc, char **argv);

/* ---- declarative options ---------------------------------------------
 * A command describes its options as a table of CliOpt (the CLI_* macros
 * below, ended by CLI_END) and parses argv with cli_parse. Commands that
 * take the same inputs share groups of entries (CLI_MODEL_OPT,
 * CLI_TEXT_OPTS, CLI_THREADS_OPT, CLI_FORCE_OPT here; ATTN_CLI_OPTS in
 * attn_cli.h; TRACE_CLI_OPTS in trace_cli.h). Destinations are checked
 * for their type at compile time. */
typedef enum CliOptKind {
    CLI_OPT_FLAG,   /* no value: *(int *)dest = 1 */
    CLI_OPT_BITS,   /* no value: *(unsigned *)dest |= code */
    CLI_OPT_STR,    /* *(const char **)dest = the value */
    CLI_OPT_INT,    /* an integer in lo..hi into *(int *)dest */
    CLI_OPT_LONG,   /* an integer in lo..hi into *(long *)dest */
    CLI_OPT_DOUBLE, /* a finite number in dlo..dhi into *(double *)dest */
    CLI_OPT_FN,     /* fn(cmd, opt, value); the value is NULL when has_arg is 0 */
} CliOptKind;

typedef struct CliOpt CliOpt;
/* A handler: 0, or an exit code after printing a one-line error. */
typedef int (*CliOptFn)(const char *cmd, const CliOpt *o, const char *arg);
struct CliOpt {
    const char *name; /* the long name without "--"; NULL ends a table */
    CliOptKind kind;
    void *dest;
    long lo, hi;     /* CLI_OPT_INT, CLI_OPT_LONG */
    double dlo, dhi; /* CLI_OPT_DOUBLE */
    CliOptFn fn;     /* CLI_OPT_FN */
    int code;        /* CLI_OPT_BITS: the bits; CLI_OPT_FN: for the handler */
    int has_arg;     /* CLI_OPT_FN: it takes a value */
    char short_name; /* also -c, or 0 */
};

#define CLI_FLAG(n, d)                                                                         \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_FLAG, .dest = (1 ? (d) : (int *)0)                        \
    }
#define CLI_FLAG_SHORT(n, c, d)                                                                \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_FLAG, .dest = (1 ? (d) : (int *)0), .short_name = (c)     \
    }
#define CLI_BITS(n, d, bits)                                                                   \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_BITS, .dest = (1 ? (d) : (unsigned *)0), .code = (bits)   \
    }
#define CLI_STR(n, d)                                                                          \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_STR, .dest = (1 ? (d) : (const char **)0)                 \
    }
#define CLI_INT(n, d, l, h)                                                                    \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_INT, .dest = (1 ? (d) : (int *)0), .lo = (l), .hi = (h)   \
    }
#define CLI_LONG(n, d, l, h)                                                                   \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_LONG, .dest = (1 ? (d) : (long *)0), .lo = (l), .hi = (h) \
    }
#define CLI_DOUBLE(n, d, l, h)                                                                 \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_DOUBLE, .dest = (1 ? (d) : (double *)0), .dlo = (l),      \
        .dhi = (h)                                                                             \
    }
#define CLI_FN(n, arg, f, d, c)                                                                \
    {                                                                                          \
        .name = (n), .kind = CLI_OPT_FN, .fn = (f), .dest = (d), .code = (c), .has_arg = (arg) \
    }
#define CLI_END                                                                                \
    {                                                                                          \
        .name = NULL                                                                           \
    }

/* Shared groups. */
#define CLI_MODEL_OPT(d) CLI_STR("model", d)
#define CLI_THREADS_OPT(d) CLI_LONG("threads", d, 1, 256)
#define CLI_FORCE_OPT(d) CLI_FLAG("force", d)
/* --text FILE, --prompt S, --ids-file F, --seq-len N, --offset BYTES: the
 * input of a command that runs a session (attn_cli_set_input). */
typedef struct CliText {
    const char *text, *prompt, *ids_file;
    long seq_len, offset;
} CliText;
#define CLI_TEXT_OPTS(t)                                                                       \
    CLI_STR("text", &(t)->text), CLI_STR("prompt", &(t)->prompt),                              \
        CLI_STR("ids-file", &(t)->ids_file), CLI_LONG("seq-len", &(t)->seq_len, 1, 1L << 30),  \
        CLI_LONG("offset", &(t)->offset, 0, 1L << 40)

/* cli_parse's answer when the command goes on (every other answer is the
 * exit code to return: 0 after --help, 2 after a usage error). */
#define CLI_GO (-1)

/* Parse argv (argv[0] is the command) by the table opts, plus -h/--help
 * (prints usage to stdout). Options are handled in the order given; a bad one
 * is a one-line usage error naming it. With first_arg NULL the command takes
 * no other argument ("unexpected argument" otherwise); else *first_arg is the
 * index of the first one. */
int cli_parse(const char *cmd, const char *usage, const CliOpt *opts, int argc, char **argv,
              int *first_arg);

#endif
