/* cmd_dump.c: `drrl dump`: run the exact forward pass over token ids or a
 * text and write logits, attention probabilities and hidden states to a
 * safetensors file (loadable with Python's safetensors). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "run/session.h"
#include "cmd/commands.h"
#include "cli/attn_cli.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl dump --model DIR (--ids IDS | --ids-file F | --text FILE | --prompt S)\n"
    "                 --out OUT.safetensors [--force] [--no-attn] [--no-hidden]\n"
    "                 [--threads N] [--method SPEC [--segment T] [--seed N]]\n"
    "\n"
    "Run the exact forward pass and write float32 tensors to OUT.safetensors:\n"
    "  logits [T, vocab], attn.L [heads, T, T] (attention probabilities of layer L),\n"
    "  hidden.L [T, d_model] for L = 0..n_layer (transformers' output_hidden_states:\n"
    "  hidden.0 is the embedding output, the last is after the final norm), and\n"
    "  input_ids [T] (I32). The header's metadata holds the loss and the weights'\n"
    "  hash and its algorithm.\n"
    "\n"
    "  --model DIR       a Hugging Face GPT-2 or Llama model directory\n"
    "  --ids IDS         token ids separated by commas or whitespace\n"
    "  --ids-file F      token ids from a file, separated by whitespace or commas\n"
    "  --text FILE       the file's bytes, encoded with the model's tokenizer\n"
    "  --prompt S        the string S, encoded with the model's tokenizer\n"
    "  --out FILE        the safetensors file to write (atomically)\n"
    "  --force           replace FILE if it exists\n"
    "  --no-attn         leave out attn.L (they take layers x heads x T x T floats)\n"
    "  --no-hidden       leave out hidden.L\n"
    "  --threads N       attention worker threads (default: OpenBLAS's count)\n"
    "  --method SPEC     approximate attention with SPEC (default full: exact); the\n"
    "                    logits, attn.L and hidden.L are then the approximated ones.\n"
    "                    performer and nystrom form no attention matrix: their\n"
    "                    attn.L rows are the weights they apply implicitly\n"
    "  --segment T, --seed N, --rank-min R, --rank-step S, --eps E, --rot-tol X\n"
    "                    as for drrl run\n"
    "  -h, --help        show this help\n";

/* Parse ids separated by commas and/or whitespace; errors name SRC and the
 * line:column of the bad token. */
static int parse_ids(const char *src, const char *s, size_t len, int vocab, int32_t **out,
                     size_t *n_out)
{
    size_t line = 1, col = 1;
    CliIds ids = {0};
    size_t i = 0;
    while (i < len) {
        char ch = s[i];
        if (ch == ',' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            if (ch == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
            i++;
            continue;
        }
        size_t j = i;
        long long v = 0;
        int ok = 1;
        while (j < len &&
               !(s[j] == ',' || s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) {
            if (s[j] < '0' || s[j] > '9' || v > 100000000)
                ok = 0;
            else
                v = v * 10 + (s[j] - '0');
            j++;
        }
        if (!ok || v >= vocab) {
            int w = (int)(j - i > 20 ? 20 : j - i);
            free(ids.v);
            if (!ok)
                return cli_error(DRRL_E_INPUT, "%s:%zu:%zu: '%.*s' is not a token id", src,
                                 line, col, w, s + i);
            return cli_error(DRRL_E_INPUT,
                             "%s:%zu:%zu: token id %lld is outside the vocabulary 0..%d", src,
                             line, col, v, vocab - 1);
        }
        int rc = cli_ids_push(&ids, (int32_t)v);
        if (rc)
            return rc;
        col += j - i;
        i = j;
    }
    if (ids.n == 0)
        return cli_error(DRRL_E_INPUT, "%s: no token ids", src);
    *out = ids.v;
    *n_out = ids.n;
    return 0;
}

/* The ids to run, from whichever source was given. */
static int get_ids(const char *model, const Model *m, const char *ids_arg, const char *ids_file,
                   const char *text, const char *prompt, int32_t **ids, size_t *n)
{
    int vocab = m->cfg.vocab;
    if (ids_arg)
        return parse_ids("--ids", ids_arg, strlen(ids_arg), vocab, ids, n);
    char *buf = NULL;
    size_t len = 0;
    int rc;
    if (ids_file) {
        if ((rc = cli_read_file(ids_file, &buf, &len)) != 0)
            return rc;
        rc = parse_ids(ids_file, buf, len, vocab, ids, n);
        free(buf);
        return rc;
    }
    if (text) {
        if ((rc = cli_read_file(text, &buf, &len)) != 0)
            return rc;
    } else {
        len = strlen(prompt);
        buf = strdup(prompt);
        if (!buf)
            return cli_error(DRRL_E_NOMEM, "out of memory");
    }
    DrrlError err;
    drrl_error_clear(&err);
    Tokenizer *tok = NULL;
    rc = 0;
    if (tokenizer_load_dir(model, vocab, &tok, &err) != DRRL_OK ||
        tokenizer_encode(tok, buf, len, ids, n, &err) != DRRL_OK)
        rc = cli_fail(&err);
    else if (*n == 0)
        rc = cli_error(DRRL_E_INPUT, "%s: the text has no tokens", text ? text : "--prompt");
    if (rc)
        free(*ids);
    tokenizer_free(tok);
    free(buf);
    return rc;
}

/* --method: the session runs the tokens through the attention core in calls
 * that end at segment boundaries (the core's contract), capturing logits,
 * attention rows and hidden states into the full arrays. */
static int dump_approx(const Model *m, const AttnCoreConfig *acfg, int threads,
                       const int32_t *ids, size_t T, const SessionCapture *cap)
{
    DrrlError err;
    Session *s = NULL;
    int rc = 0;
    if (session_new_shared(m, NULL, acfg, threads, &s, &err) != DRRL_OK)
        return cli_fail(&err);
    attn_cli_warn(s);
    if (session_set_ids(s, ids, T, &err) != DRRL_OK)
        rc = cli_fail(&err);
    session_set_capture(s, cap);
    if (!rc && session_advance(s, T, NULL, &err) != DRRL_OK)
        rc = cli_fail(&err);
    session_free(s);
    return rc;
}

/* OUT's directory must exist before the forward pass is run: bad input,
 * exit 2, one line naming OUT and the directory. */
static int check_out_dir(const char *out)
{
    const char *slash = strrchr(out, '/');
    if (!slash)
        return 0;
    size_t n = slash == out ? 1 : (size_t)(slash - out);
    char *dir = strndup(out, n);
    if (!dir)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    struct stat sb;
    int rc = 0;
    if (stat(dir, &sb) != 0)
        rc = cli_error(DRRL_E_NOTFOUND, "%s: cannot write there: %s: %s", out, dir,
                       strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        rc = cli_error(DRRL_E_NOTFOUND, "%s: cannot write there: %s is not a directory", out,
                       dir);
    free(dir);
    return rc;
}

/* The tensors of one dump. */
typedef struct Dump {
    const Model *m;
    size_t T, L, H, C, V;
    const int32_t *ids;
    float *logits, *hidden, *attn;
    double loss;
} Dump;

/* Check the sizes (attention is L*H*T*T floats) and allocate the arrays. */
static int dump_alloc(Dump *d, const char *model, int no_attn, int no_hidden)
{
    const ModelConfig *cf = &d->m->cfg;
    size_t T = d->T, L = d->L, H = d->H;
    if (cf->arch == MODEL_ARCH_GPT2 && T > (size_t)cf->n_ctx)
        return cli_error(DRRL_E_USAGE, "%zu tokens exceed %s's %d positions (n_positions)", T,
                         model, cf->n_ctx);
    size_t n_logits, n_hidden = 0, n_attn = 0;
    int overflow = drrl_size_mul(T, d->V, &n_logits);
    if (!no_hidden)
        overflow |= drrl_size_mul((L + 1) * d->C, T, &n_hidden);
    if (!no_attn)
        overflow |= drrl_size_mul(L * H * T, T, &n_attn);
    if (overflow || n_attn > ((size_t)1 << 32))
        return cli_error(DRRL_E_USAGE,
                         "%zu tokens: the attention probabilities would take %.1f GiB; use "
                         "--no-attn or fewer tokens",
                         T, (double)L * H * T * T * 4 / (1 << 30));
    d->logits = malloc(n_logits * sizeof(float));
    d->hidden = n_hidden ? malloc(n_hidden * sizeof(float)) : NULL;
    d->attn = n_attn ? malloc(n_attn * sizeof(float)) : NULL;
    if (!d->logits || (n_hidden && !d->hidden) || (n_attn && !d->attn))
        return cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
    return 0;
}

/* The forward pass, exact or with the method, into the arrays. */
static int dump_forward(Dump *d, const AttnCoreConfig *acfg, int threads)
{
    DrrlError err;
    int rc = 0;
    if (acfg->method.kind != METHOD_FULL) {
        SessionCapture cap = {d->logits, d->hidden, d->attn, false};
        rc = dump_approx(d->m, acfg, threads, d->ids, d->T, &cap);
    } else {
        Forward *f = NULL;
        ForwardCapture cap = {d->hidden, d->attn, d->T};
        if (forward_new(d->m, d->T, threads, &f, &err) != DRRL_OK ||
            forward_tokens(f, d->ids, d->T, d->logits, &cap, &err) != DRRL_OK)
            rc = cli_fail(&err);
        forward_free(f);
    }
    if (!rc)
        d->loss = d->T >= 2 ? forward_loss(d->logits, d->ids, d->T, d->m->cfg.vocab) : 0.0;
    return rc;
}

/* Write the safetensors file and say so. */
static int dump_write(const Dump *d, const AttnCoreConfig *acfg, const char *out,
                      unsigned oflags)
{
    size_t T = d->T, L = d->L, H = d->H, C = d->C, k = 0;
    SafetensorsWriteTensor *w = calloc(2 + 2 * L + 1, sizeof *w);
    char(*names)[32] = calloc(2 * L + 1, sizeof *names);
    if (!w || !names) {
        free(w), free(names);
        return cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
    }
    w[k++] = (SafetensorsWriteTensor){"input_ids", SAFETENSORS_I32, 1, {T}, d->ids};
    w[k++] = (SafetensorsWriteTensor){"logits", SAFETENSORS_F32, 2, {T, d->V}, d->logits};
    for (size_t l = 0; d->attn && l < L; l++) {
        snprintf(names[l], sizeof names[l], "attn.%zu", l);
        w[k++] = (SafetensorsWriteTensor){
            names[l], SAFETENSORS_F32, 3, {H, T, T}, d->attn + l * H * T * T};
    }
    for (size_t l = 0; d->hidden && l <= L; l++) {
        snprintf(names[L + l], sizeof names[L + l], "hidden.%zu", l);
        w[k++] = (SafetensorsWriteTensor){
            names[L + l], SAFETENSORS_F32, 2, {T, C}, d->hidden + l * T * C};
    }
    char meta[1024], loss_s[64];
    if (T >= 2)
        snprintf(loss_s, sizeof loss_s, "%.9g", d->loss);
    else
        snprintf(loss_s, sizeof loss_s, "none");
    /* Metadata values are strings; the model path is left out (it may hold
     * characters that would need JSON escaping and says little). */
    snprintf(meta, sizeof meta,
             "{\"format\":\"pt\",\"producer\":\"drrl %s\",\"method\":\"%s\","
             "\"architecture\":\"%s\",\"weights_hash\":\"%s\",\"weights_hash_algo\":\"%s\","
             "\"tokens\":\"%zu\",\"loss\":\"%s\"}",
             PACKAGE_VERSION, acfg->method.kind == METHOD_FULL ? "exact" : acfg->method.spec,
             d->m->cfg.arch_name, model_hash(d->m), MODEL_HASH_ALGO, T, loss_s);
    DrrlError err;
    int rc = 0;
    if (safetensors_write_flags(out, w, k, meta, oflags, &err) != DRRL_OK)
        rc = cli_fail(&err);
    else if (T >= 2)
        printf("%s: %zu tokens, loss %.6f (perplexity %.3f)\n", out, T, d->loss, exp(d->loss));
    else
        printf("%s: %zu token\n", out, T);
    if (!rc && fflush(stdout) != 0)
        rc = cli_error(DRRL_E_IO, "standard output: write error");
    free(names);
    free(w);
    return rc;
}

int cmd_dump(int argc, char **argv)
{
    AttnCoreConfig acfg;
    attn_core_config_default(&acfg);
    acfg.measure = 0;
    const char *model = NULL, *ids_arg = NULL, *out = NULL;
    CliText in = {0};
    int force = 0, no_attn = 0, no_hidden = 0;
    long threads = 0;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&model),
        CLI_STR("ids", &ids_arg),
        CLI_STR("ids-file", &in.ids_file),
        CLI_STR("text", &in.text),
        CLI_STR("prompt", &in.prompt),
        CLI_STR("out", &out),
        CLI_FORCE_OPT(&force),
        CLI_FLAG("no-attn", &no_attn),
        CLI_FLAG("no-hidden", &no_hidden),
        CLI_THREADS_OPT(&threads),
        ATTN_CLI_OPTS(&acfg),
        CLI_END,
    };
    int rc = cli_parse("dump", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    if (!model)
        return cli_usage_error("dump", "give --model DIR");
    if ((ids_arg != NULL) + (in.ids_file != NULL) + (in.text != NULL) + (in.prompt != NULL) !=
        1)
        return cli_usage_error("dump",
                               "give exactly one of --ids, --ids-file, --text and --prompt");
    if (!out)
        return cli_usage_error("dump", "give --out FILE");
    unsigned oflags = force ? FILEIO_FORCE : 0;
    DrrlError err; /* checked now, and again once the inputs are read */
    if (fileio_out_check(out, oflags, &err))
        return cli_fail(&err);
    if ((rc = check_out_dir(out)))
        return rc;
    Model *m = NULL;
    if (model_load(model, &m, &err) != DRRL_OK)
        return cli_fail(&err);
    int32_t *ids = NULL;
    const ModelConfig *cf = &m->cfg;
    Dump d = {.m = m,
              .L = (size_t)cf->n_layer,
              .H = (size_t)cf->n_head,
              .C = (size_t)cf->d_model,
              .V = (size_t)cf->vocab};
    rc = get_ids(model, m, ids_arg, in.ids_file, in.text, in.prompt, &ids, &d.T);
    d.ids = ids;
    if (!rc && !(rc = dump_alloc(&d, model, no_attn, no_hidden)) &&
        !(rc = dump_forward(&d, &acfg, (int)threads)))
        rc = dump_write(&d, &acfg, out, oflags);
    DRRL_FREE(d.logits, d.hidden, d.attn, ids);
    model_free(m);
    return rc;
}
