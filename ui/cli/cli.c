#include "cli/cli.h"

#include "base/fileio.h"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(const DrrlError *err)
{
    fprintf(stderr, "drrl: %s\n", err->msg[0] ? err->msg : drrl_status_name(err->code));
    return drrl_status_exit_code(err->code);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "drrl: %s: %s (try 'drrl help %s')\n", cmd, buf, cmd);
    else
        fprintf(stderr, "drrl: %s (try 'drrl --help')\n", buf);
    return drrl_status_exit_code(DRRL_E_USAGE);
}

int cli_error(DrrlStatus kind, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "drrl: %s\n", buf);
    return drrl_status_exit_code(kind);
}

void cli_getopt_reset(void)
{
    optind = 0; /* glibc: 0 fully reinitialises getopt's state */
    opterr = 0;
}

/* Compare a typed name with a table name, '-' in the typed one matching '_'. */
static int name_matches(const char *typed, const char *table)
{
    for (; *typed && *table; typed++, table++)
        if (*typed != *table && !(*typed == '-' && *table == '_'))
            return 0;
    return *typed == *table;
}

const CliCommand *cli_command_find(const CliCommand *table, size_t n, const char *typed)
{
    for (size_t i = 0; i < n; i++)
        if (name_matches(typed, table[i].name))
            return &table[i];
    return NULL;
}

int cli_command_run(const CliCommand *cmd, int argc, char **argv)
{
    cli_getopt_reset();
    return cmd->run(argc, argv);
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char spec[128];
    /* Leading ':' makes getopt report a missing argument as ':'. */
    snprintf(spec, sizeof spec, ":%s", shortopts);
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == '?') {
        if (optopt)
            cli_usage_error(cmd, "unknown option '-%c'", optopt);
        else
            cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        return '?';
    }
    return c;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return cli_usage_error(cmd, "%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        return cli_usage_error(cmd, "%s: %ld is outside %ld..%ld", opt, v, lo, hi);
    *out = v;
    return 0;
}

int cli_ids_push(CliIds *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        int32_t *v = cap <= SIZE_MAX / sizeof *v ? realloc(ids->v, cap * sizeof *v) : NULL;
        if (!v) {
            free(ids->v);
            *ids = (CliIds){0};
            return cli_error(DRRL_E_NOMEM, "out of memory");
        }
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return cli_usage_error(cmd, "%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi)
        return cli_usage_error(cmd, "%s: %g is outside %g..%g", opt, v, lo, hi);
    *out = v;
    return 0;
}

int cli_read_file(const char *path, char **buf, size_t *len)
{
    DrrlError err;
    if (fileio_read_file(path, FILEIO_MAX_TEXT, FILEIO_STDIN | FILEIO_SPECIAL_OK, buf, len,
                         &err))
        return cli_fail(&err);
    return 0;
}

int cli_read_prefix(const char *path, size_t max, char **buf, size_t *len)
{
    DrrlError err;
    if (fileio_read_file(path, max < FILEIO_MAX_TEXT ? max : FILEIO_MAX_TEXT,
                         FILEIO_STDIN | FILEIO_SPECIAL_OK |
                             (max < FILEIO_MAX_TEXT ? FILEIO_TRUNCATE : 0),
                         buf, len, &err))
        return cli_fail(&err);
    return 0;
}

int cli_out_open(const char *path, int force, FileOut **o)
{
    DrrlError err;
    if (fileio_out_open(o, path, FILEIO_STDOUT | (force ? FILEIO_FORCE : 0), &err))
        return cli_fail(&err);
    return 0;
}

int cli_out_commit(FileOut *o)
{
    DrrlError err;
    if (fileio_out_commit(o, &err))
        return cli_fail(&err);
    return 0;
}

void cli_print_usage(const char *usage)
{
    fputs(usage, stdout);
}

const char *cli_data_dir(void)
{
    static char buf[4096];
    const char *env = getenv("DRRL_DATA");
    if (env && *env)
        return env;
    struct stat st;
    /* A build tree runs against the sources' data/ so that `drrl` works
     * before `make install`. */
    if (stat(DRRL_SRCDATADIR "/README.md", &st) == 0) {
        snprintf(buf, sizeof buf, "%s", DRRL_SRCDATADIR);
        return buf;
    }
    return DRRL_DATADIR;
}

char *cli_data_path(const char *rel)
{
    const char *d = cli_data_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", d, rel);
    return p;
}

void cli_fmt_time(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

enum { CLI_MAX_OPTS = 96, CLI_OPT_BASE = 0x1000 };

/* One option's value into its destination: 0 or an exit code. */
static int opt_apply(const char *cmd, const CliOpt *o, const char *arg)
{
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", o->name);
    long v;
    double d;
    switch (o->kind) {
    case CLI_OPT_FLAG:
        *(int *)o->dest = 1;
        return 0;
    case CLI_OPT_BITS:
        *(unsigned *)o->dest |= (unsigned)o->code;
        return 0;
    case CLI_OPT_STR:
        *(const char **)o->dest = arg;
        return 0;
    case CLI_OPT_INT:
        if (cli_parse_long(cmd, flag, arg, o->lo, o->hi, &v))
            return CLI_EXIT_USAGE;
        *(int *)o->dest = (int)v;
        return 0;
    case CLI_OPT_LONG:
        return cli_parse_long(cmd, flag, arg, o->lo, o->hi, o->dest) ? CLI_EXIT_USAGE : 0;
    case CLI_OPT_DOUBLE:
        if (cli_parse_double(cmd, flag, arg, o->dlo, o->dhi, &d))
            return CLI_EXIT_USAGE;
        *(double *)o->dest = d;
        return 0;
    case CLI_OPT_FN:
        return o->fn(cmd, o, arg);
    }
    return CLI_EXIT_USAGE;
}

int cli_parse(const char *cmd, const char *usage, const CliOpt *opts, int argc, char **argv,
              int *first_arg)
{
    struct option lo[CLI_MAX_OPTS + 2];
    char shorts[2 * CLI_MAX_OPTS + 2] = "h";
    size_t n = 0, ns = 1;
    for (; opts[n].name && n < CLI_MAX_OPTS; n++) {
        const CliOpt *o = &opts[n];
        int arg = o->kind == CLI_OPT_FN ? o->has_arg
                                        : o->kind != CLI_OPT_FLAG && o->kind != CLI_OPT_BITS;
        lo[n] = (struct option){o->name, arg ? required_argument : no_argument, 0,
                                CLI_OPT_BASE + (int)n};
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (arg)
                shorts[ns++] = ':';
        }
    }
    shorts[ns] = 0;
    lo[n] = (struct option){"help", no_argument, 0, 'h'};
    lo[n + 1] = (struct option){0, 0, 0, 0};
    cli_getopt_reset();
    int c;
    while ((c = cli_getopt(cmd, argc, argv, shorts, lo)) != -1) {
        if (c == 'h') {
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        }
        const CliOpt *o = NULL;
        if (c >= CLI_OPT_BASE && c < CLI_OPT_BASE + (int)n)
            o = &opts[c - CLI_OPT_BASE];
        for (size_t i = 0; !o && i < n; i++)
            if (opts[i].short_name && opts[i].short_name == c)
                o = &opts[i];
        if (!o)
            return CLI_EXIT_USAGE;
        int r = opt_apply(cmd, o, optarg);
        if (r)
            return r;
    }
    if (first_arg)
        *first_arg = optind;
    else if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    return CLI_GO;
}
