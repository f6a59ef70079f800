#include "cli/cli.h"

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
    return CLI_EXIT_USAGE;
}

int cli_error(int code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "drrl: %s\n", buf);
    return code;
}

void cli_getopt_reset(void)
{
    optind = 0; /* glibc: 0 fully reinitialises getopt's state */
    opterr = 0;
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
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return cli_error(CLI_EXIT_USAGE, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return cli_error(CLI_EXIT_USAGE, "%s: is a directory", path);
    }
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        if (n == cap) {
            char *p = realloc(b, cap * 2 + 1);
            if (!p) {
                free(b);
                b = NULL;
                break;
            }
            b = p, cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!b)
        return cli_error(CLI_EXIT_FAIL, "%s: out of memory", path);
    if (bad) {
        free(b);
        return cli_error(CLI_EXIT_FAIL, "%s: read error", path);
    }
    b[n] = 0;
    *buf = b, *len = n;
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
