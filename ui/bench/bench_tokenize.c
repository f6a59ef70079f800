/* bench_tokenize.c: `drrl bench tokenize` (bench_tokenize.h).
 *
 * Encodes a text, repeated to at least --mb megabytes, with each tokenizer
 * given, on the calling thread (the tokenizers are single-threaded), and
 * reports the median throughput of --repeat timed runs after one warm-up.
 * The text is encoded in pieces of at most 64 KiB cut at line ends, as a
 * prompt or a document would be, so that the whole-text word of
 * SentencePiece-style BPE does not grow with --mb. */
#include "config.h"

#include "bench/bench_tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "cli/cli.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl bench tokenize --tokenizer DIR [--tokenizer DIR ...] --text FILE\n"
    "                           [--mb N] [--repeat N]\n"
    "\n"
    "Encode FILE (repeated to at least N MB) with each tokenizer on one core and\n"
    "print the median megabytes (10^6 bytes) of text per second, with the ids\n"
    "per byte and the time to load the tokenizer.\n"
    "\n"
    "  --tokenizer DIR   a directory with tokenizer.json (or vocab.json and\n"
    "                    merges.txt); up to 8\n"
    "  --text FILE       the text (UTF-8)\n"
    "  --mb N            megabytes encoded per timed run (default 4)\n"
    "  --repeat N        timed runs, after one warm-up (default 5)\n"
    "  -h, --help        show this help\n";

#define MAX_TOK 8
#define PIECE (64 * 1024)

/* Encode buf[0..len) in pieces cut at line ends; the number of ids, or -1. */
static long encode_all(const Tokenizer *tok, const char *buf, size_t len)
{
    long total = 0;
    for (size_t p = 0; p < len;) {
        size_t e = p + PIECE < len ? p + PIECE : len;
        if (e < len) {
            const char *nl = memchr(buf + p + PIECE / 2, '\n', e - p - PIECE / 2);
            if (nl)
                e = (size_t)(nl - buf) + 1;
        }
        int32_t *ids;
        size_t n;
        DrrlError err;
        if (tokenizer_encode(tok, buf + p, e - p, &ids, &n, &err)) {
            cli_fail(&err);
            return -1;
        }
        free(ids);
        total += (long)n;
        p = e;
    }
    return total;
}

static int bench_one(const char *dir, const char *text, size_t len, int repeat)
{
    DrrlError err;
    drrl_error_clear(&err);
    Tokenizer *tok;
    double t0 = clock_now_s();
    if (tokenizer_load_dir(dir, -1, &tok, &err))
        return cli_fail(&err);
    double load = clock_now_s() - t0;
    double *mbs = malloc((size_t)repeat * sizeof *mbs);
    long ids = encode_all(tok, text, len); /* warm-up */
    for (int r = 0; r < repeat && ids >= 0 && mbs; r++) {
        t0 = clock_now_s();
        ids = encode_all(tok, text, len);
        mbs[r] = (double)len / 1e6 / (clock_now_s() - t0);
    }
    int rc = CLI_EXIT_OK;
    if (!mbs)
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    else if (ids >= 0)
        printf("%-18s %8.2f MB/s  %.3f ids/byte  load %.2f s  %s\n", tokenizer_kind_name(tok),
               bench_median(mbs, repeat), (double)ids / (double)len, load, dir);
    else
        rc = CLI_EXIT_FAIL;
    free(mbs);
    tokenizer_free(tok);
    return rc;
}

/* The tokenizer directories of --tokenizer (repeatable). */
typedef struct TokDirs {
    const char *dir[MAX_TOK];
    int n;
} TokDirs;

static int add_dir(const char *cmd, const CliOpt *o, const char *arg)
{
    TokDirs *d = o->dest;
    if (d->n == MAX_TOK)
        return cli_usage_error(cmd, "at most %d --tokenizer", MAX_TOK);
    d->dir[d->n++] = arg;
    return 0;
}

static int parse_mb(const char *cmd, const CliOpt *o, const char *arg)
{
    double mb = atof(arg);
    if (!(mb > 0 && mb <= 1024))
        return cli_usage_error(cmd, "--mb: expected 0 < N <= 1024");
    *(double *)o->dest = mb;
    return 0;
}

static int parse_repeat(const char *cmd, const CliOpt *o, const char *arg)
{
    int r = atoi(arg);
    if (r < 1 || r > 1000)
        return cli_usage_error(cmd, "--repeat: expected 1..1000");
    *(int *)o->dest = r;
    return 0;
}

int bench_tokenize(int argc, char **argv)
{
    TokDirs td = {.n = 0};
    const char *text = NULL;
    int repeat = 5;
    double mb = 4;
    const CliOpt opts[] = {
        CLI_FN("tokenizer", 1, add_dir, &td, 0),
        CLI_STR("text", &text),
        CLI_FN("mb", 1, parse_mb, &mb, 0),
        CLI_FN("repeat", 1, parse_repeat, &repeat, 0),
        CLI_END,
    };
    int r = cli_parse("bench tokenize", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    const char **dirs = td.dir;
    int n_dirs = td.n;
    if (!n_dirs || !text)
        return cli_usage_error("bench tokenize", "give --tokenizer DIR and --text FILE");
    char *one;
    size_t one_len;
    int rc = cli_read_file(text, &one, &one_len);
    if (rc)
        return rc;
    if (one_len == 0) {
        free(one);
        return cli_usage_error("bench tokenize", "%s: empty text", text);
    }
    size_t want = (size_t)(mb * 1e6), len = 0;
    char *buf = malloc(want + one_len);
    while (buf && len < want) {
        memcpy(buf + len, one, one_len);
        len += one_len;
    }
    free(one);
    if (!buf)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    printf("text %s repeated to %.2f MB; median of %d runs, one thread\n", text,
           (double)len / 1e6, repeat);
    for (int i = 0; i < n_dirs && rc == 0; i++)
        rc = bench_one(dirs[i], buf, len, repeat);
    free(buf);
    return rc;
}
