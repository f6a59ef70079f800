/* cmd_tokenize.c: `drrl tokenize`: text to token ids (and back) with a
 * model's tokenizer. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl tokenize (--model DIR | --tokenizer DIR) (--text FILE | --prompt S) "
    "[--pieces | --lines]\n"
    "       drrl tokenize (--model DIR | --tokenizer DIR) --decode IDS\n"
    "\n"
    "Print the token ids of a text on one line, separated by single spaces.\n"
    "\n"
    "  --model DIR       a model directory: its tokenizer.json, or vocab.json and\n"
    "                    merges.txt (GPT-2 byte-level BPE), or byte-level for\n"
    "                    drrl's own models (config.json needed)\n"
    "  --tokenizer DIR   a directory holding only tokenizer files\n"
    "  --text FILE       encode the file's bytes exactly, newlines included\n"
    "                    ('-' reads standard input)\n"
    "  --prompt S        encode the string S\n"
    "  --pieces          print one token a line: id, a tab, and the token's text\n"
    "                    (control characters and partial UTF-8 escaped)\n"
    "  --lines           encode each line of the text on its own (without its\n"
    "                    newline) and print one line of ids for each\n"
    "  --decode IDS      print the bytes of the ids IDS (separated by commas or\n"
    "                    whitespace) instead\n"
    "  -h, --help        show this help\n";

/* Parse ids separated by commas and/or whitespace. */
static int parse_ids(const char *s, int32_t **ids, size_t *n)
{
    CliIds v = {0};
    const char *p = s;
    size_t index = 0;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        index++;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX ||
            (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n' &&
             *end != '\r')) {
            free(v.v);
            return cli_usage_error("tokenize",
                                   "--decode: id %zu ('%.20s') is not an integer in 0..%ld",
                                   index, p, (long)INT32_MAX);
        }
        int rc = cli_ids_push(&v, (int32_t)x);
        if (rc)
            return rc;
        p = end;
    }
    *ids = v.v;
    *n = v.n;
    return 0;
}

static int finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_error(DRRL_E_IO, "standard output: write error: %s", strerror(errno));
    return CLI_EXIT_OK;
}

/* Encode text[0..len) and print its ids on one line, or one token a line
 * with its text (pieces). */
static int print_ids(const Tokenizer *tok, const char *text, size_t len, int pieces)
{
    DrrlError err;
    drrl_error_clear(&err);
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, &ids, &n, &err))
        return cli_fail(&err);
    char buf[256];
    for (size_t i = 0; i < n; i++) {
        if (pieces)
            printf("%ld\t%s\n", (long)ids[i],
                   tokenizer_token_text_in(tok, ids, n, i, buf, sizeof buf));
        else
            printf(i ? " %ld" : "%ld", (long)ids[i]);
    }
    if (!pieces)
        putchar('\n');
    free(ids);
    return CLI_EXIT_OK;
}

/* --lines: each line (without its newline) encoded on its own. */
static int print_lines(const Tokenizer *tok, const char *text, size_t len)
{
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(text + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - text) : len;
        int rc = print_ids(tok, text + p, e - p, 0);
        if (rc)
            return rc;
        p = e + 1;
    }
    return CLI_EXIT_OK;
}

/* --decode IDS: the bytes of the ids. */
static int decode_ids(const Tokenizer *tok, const char *decode)
{
    DrrlError err;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    char *bytes = NULL;
    int rc = parse_ids(decode, &ids, &n);
    if (rc == 0 && tokenizer_decode(tok, ids, n, &bytes, &len, &err))
        rc = cli_fail(&err);
    if (rc == 0) {
        fwrite(bytes, 1, len, stdout);
        /* the exact bytes into a pipe; on a terminal, a final newline so
         * the prompt starts on its own line */
        if (isatty(STDOUT_FILENO) && (len == 0 || bytes[len - 1] != '\n'))
            putchar('\n');
        rc = finish_output();
    }
    free(ids);
    free(bytes);
    return rc;
}

/* --text FILE or --prompt S: the ids (--pieces, --lines). */
static int encode_text(const Tokenizer *tok, const char *text, const char *prompt, int pieces,
                       int lines)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if (text) {
        rc = cli_read_file(text, &buf, &len);
    } else {
        len = strlen(prompt);
        buf = malloc(len + 1);
        if (buf)
            memcpy(buf, prompt, len + 1);
        else
            rc = cli_error(DRRL_E_NOMEM, "out of memory");
    }
    if (rc == 0)
        rc = lines ? print_lines(tok, buf, len) : print_ids(tok, buf, len, pieces);
    if (rc == 0)
        rc = finish_output();
    free(buf);
    return rc;
}

/* A model directory has a config.json; say so before anything else. */
static int check_model_dir(const char *model)
{
    char cfg[4096];
    struct stat st;
    int n = snprintf(cfg, sizeof cfg, "%s/config.json", model);
    if (n > 0 && (size_t)n < sizeof cfg && stat(model, &st) == 0 && S_ISDIR(st.st_mode) &&
        stat(cfg, &st) != 0)
        return cli_error(DRRL_E_INPUT,
                         "%s: not found (is %s a model directory? --tokenizer takes a "
                         "directory of tokenizer files only)",
                         cfg, model);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *tokdir = NULL, *text = NULL, *prompt = NULL, *decode = NULL;
    int pieces = 0, lines = 0;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&model),       CLI_STR("tokenizer", &tokdir),
        CLI_STR("text", &text),      CLI_STR("prompt", &prompt),
        CLI_FLAG("pieces", &pieces), CLI_STR("decode", &decode),
        CLI_FLAG("lines", &lines),   CLI_END,
    };
    int rc = cli_parse("tokenize", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    if (!model == !tokdir)
        return cli_usage_error("tokenize",
                               "give exactly one of --model DIR and --tokenizer DIR");
    if ((text != NULL) + (prompt != NULL) + (decode != NULL) != 1)
        return cli_usage_error("tokenize",
                               "give exactly one of --text FILE, --prompt S and --decode IDS");
    if (decode && (pieces || lines))
        return cli_usage_error("tokenize", "--%s goes with --text or --prompt, not --decode",
                               pieces ? "pieces" : "lines");
    if (pieces && lines)
        return cli_usage_error("tokenize", "give at most one of --pieces and --lines");
    if (model && (rc = check_model_dir(model)))
        return rc;
    DrrlError err;
    Tokenizer *tok = NULL;
    if (tokenizer_load_dir(model ? model : tokdir, -1, &tok, &err))
        return cli_fail(&err);
    rc = decode ? decode_ids(tok, decode) : encode_text(tok, text, prompt, pieces, lines);
    tokenizer_free(tok);
    return rc;
}
