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

#include "cli/cli.h"
#include "policy/policy_agent.h"
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
    "  hash.\n"
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
    size_t cap = 64, n = 0, line = 1, col = 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return cli_error(DRRL_E_NOMEM, "out of memory");
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
            free(ids);
            if (!ok)
                return cli_error(DRRL_E_INPUT, "%s:%zu:%zu: '%.*s' is not a token id", src,
                                 line, col, w, s + i);
            return cli_error(DRRL_E_INPUT,
                             "%s:%zu:%zu: token id %lld is outside the vocabulary 0..%d", src,
                             line, col, v, vocab - 1);
        }
        if (n == cap) {
            int32_t *p = realloc(ids, 2 * cap * sizeof *ids);
            if (!p) {
                free(ids);
                return cli_error(DRRL_E_NOMEM, "out of memory");
            }
            ids = p;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        col += j - i;
        i = j;
    }
    if (n == 0) {
        free(ids);
        return cli_error(DRRL_E_INPUT, "%s: no token ids", src);
    }
    *out = ids;
    *n_out = n;
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

static const float *dump_cache_k(const void *ctx, int l, int g)
{
    return forward_cache_k((const Forward *)ctx, l, g);
}
static const float *dump_cache_v(const void *ctx, int l, int g)
{
    return forward_cache_v((const Forward *)ctx, l, g);
}

/* --method: run the tokens through the attention core in calls that end at
 * segment boundaries (the core's contract), copying each call's capture
 * into the full (L, H, T, T) and (L+1, T, C) arrays. */
static int dump_approx(const Model *m, Forward *f, const AttnCoreConfig *acfg,
                       const int32_t *ids, size_t T, float *logits, float *hidden, float *attn)
{
    const ModelConfig *cf = &m->cfg;
    size_t L = (size_t)cf->n_layer, H = (size_t)cf->n_head, C = (size_t)cf->d_model;
    size_t V = (size_t)cf->vocab, seg = (size_t)acfg->segment;
    DrrlError err;
    AttnCore *ac;
    /* drrl: the policy fixes the rank grid and chooses the ranks. */
    AttnCoreConfig cc = *acfg;
    PolicyAgent *agent = NULL;
    char warn[512];
    if (policy_agent_prepare(m, &cc, 0.0, &agent, warn, sizeof warn, &err) != DRRL_OK)
        return cli_fail(&err);
    if (warn[0])
        fprintf(stderr, "drrl: warning: %s\n", warn);
    if (attn_core_new(cf, &cc, &ac, &err) != DRRL_OK) {
        policy_agent_free(agent);
        return cli_fail(&err);
    }
    attn_core_bind_cache(ac, dump_cache_k, dump_cache_v, f);
    if (agent)
        policy_agent_connect(agent, ac, dump_cache_k, dump_cache_v, f);
    ForwardAttn fa = attn_core_hook(ac);
    forward_set_attn(f, &fa);
    size_t chunk = seg < T ? seg : T;
    float *h = hidden ? malloc((L + 1) * chunk * C * sizeof *h) : NULL;
    float *a = attn ? malloc(L * H * chunk * T * sizeof *a) : NULL;
    int rc = 0;
    if ((hidden && !h) || (attn && !a))
        rc = cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
    for (size_t p = 0; p < T && !rc;) {
        size_t n = seg - p % seg;
        if (n > T - p)
            n = T - p;
        ForwardCapture cap = {h, a, T};
        if (forward_tokens(f, ids + p, n, logits + p * V, &cap, &err) != DRRL_OK ||
            attn_core_finish_call(ac, p, n, NULL, NULL, 0, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        for (size_t l = 0; h && l <= L; l++)
            memcpy(hidden + (l * T + p) * C, h + l * n * C, n * C * sizeof *h);
        for (size_t lh = 0; a && lh < L * H; lh++)
            for (size_t i = 0; i < n; i++) {
                float *dst = attn + (lh * T + p + i) * T;
                memcpy(dst, a + (lh * n + i) * T, (p + n) * sizeof *a);
                memset(dst + p + n, 0, (T - p - n) * sizeof *a);
            }
        p += n;
    }
    forward_set_attn(f, NULL);
    free(h), free(a);
    attn_core_free(ac);
    policy_agent_free(agent);
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

int cmd_dump(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"ids", required_argument, 0, 'i'},
        {"ids-file", required_argument, 0, 'I'},
        {"text", required_argument, 0, 'f'},
        {"prompt", required_argument, 0, 'p'},
        {"out", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},
        {"no-attn", no_argument, 0, 'A'},
        {"no-hidden", no_argument, 0, 'H'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        ATTN_CLI_LONGOPTS,
        {0, 0, 0, 0},
    };
    AttnCoreConfig acfg;
    attn_core_config_default(&acfg);
    acfg.measure = 0;
    const char *model = NULL, *ids_arg = NULL, *ids_file = NULL, *text = NULL, *prompt = NULL;
    const char *out = NULL;
    int force = 0, no_attn = 0, no_hidden = 0, c;
    long threads = 0;
    while ((c = cli_getopt("dump", argc, argv, "h", longopts)) != -1) {
        int ar = attn_cli_option("dump", c, optarg, &acfg);
        if (ar < 0)
            return CLI_EXIT_USAGE;
        if (ar > 0)
            continue;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'i':
            ids_arg = optarg;
            break;
        case 'I':
            ids_file = optarg;
            break;
        case 'f':
            text = optarg;
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'F':
            force = 1;
            break;
        case 'A':
            no_attn = 1;
            break;
        case 'H':
            no_hidden = 1;
            break;
        case 't':
            if (cli_parse_long("dump", "--threads", optarg, 1, 256, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("dump", "unexpected argument '%s'", argv[optind]);
    if (!model)
        return cli_usage_error("dump", "give --model DIR");
    if ((ids_arg != NULL) + (ids_file != NULL) + (text != NULL) + (prompt != NULL) != 1)
        return cli_usage_error("dump",
                               "give exactly one of --ids, --ids-file, --text and --prompt");
    if (!out)
        return cli_usage_error("dump", "give --out FILE");
    unsigned oflags = force ? FILEIO_FORCE : 0;
    DrrlError oerr; /* checked now, and again once the inputs are read */
    if (fileio_out_check(out, oflags, &oerr))
        return cli_fail(&oerr);
    int orc = check_out_dir(out);
    if (orc)
        return orc;

    DrrlError err;
    drrl_error_clear(&err);
    Model *m = NULL;
    if (model_load(model, &m, &err) != DRRL_OK)
        return cli_fail(&err);
    const ModelConfig *cf = &m->cfg;
    int32_t *ids = NULL;
    size_t T = 0;
    int rc = get_ids(model, m, ids_arg, ids_file, text, prompt, &ids, &T);
    if (rc) {
        model_free(m);
        return rc;
    }
    size_t L = (size_t)cf->n_layer, H = (size_t)cf->n_head, C = (size_t)cf->d_model;
    size_t V = (size_t)cf->vocab;
    if (cf->arch == MODEL_ARCH_GPT2 && T > (size_t)cf->n_ctx) {
        rc = cli_error(DRRL_E_USAGE, "%zu tokens exceed %s's %d positions (n_positions)", T,
                       model, cf->n_ctx);
        goto done;
    }

    /* Sizes, checked: attention is L*H*T*T floats. */
    size_t n_logits, n_hidden = 0, n_attn = 0;
    int overflow = drrl_size_mul(T, V, &n_logits);
    if (!no_hidden)
        overflow |= drrl_size_mul((L + 1) * C, T, &n_hidden);
    if (!no_attn)
        overflow |= drrl_size_mul(L * H * T, T, &n_attn);
    if (overflow || n_attn > ((size_t)1 << 32)) {
        rc = cli_error(DRRL_E_USAGE,
                       "%zu tokens: the attention probabilities would take %.1f GiB; use "
                       "--no-attn or fewer tokens",
                       T, (double)L * H * T * T * 4 / (1 << 30));
        goto done;
    }
    float *logits = malloc(n_logits * sizeof(float));
    float *hidden = n_hidden ? malloc(n_hidden * sizeof(float)) : NULL;
    float *attn = n_attn ? malloc(n_attn * sizeof(float)) : NULL;
    Forward *f = NULL;
    SafetensorsWriteTensor *w = calloc(2 + 2 * L + 1, sizeof *w);
    char(*names)[32] = calloc(2 * L + 1, sizeof *names);
    if (!logits || (n_hidden && !hidden) || (n_attn && !attn) || !w || !names) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
        goto done2;
    }
    if (forward_new(m, T, (int)threads, &f, &err) != DRRL_OK) {
        rc = cli_fail(&err);
        goto done2;
    }
    if (acfg.method.kind == METHOD_FULL) {
        ForwardCapture cap = {hidden, attn, T};
        if (forward_tokens(f, ids, T, logits, &cap, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            goto done2;
        }
    } else if ((rc = dump_approx(m, f, &acfg, ids, T, logits, hidden, attn))) {
        goto done2;
    }
    double loss = T >= 2 ? forward_loss(logits, ids, T, cf->vocab) : 0.0;

    size_t k = 0;
    w[k++] = (SafetensorsWriteTensor){"input_ids", SAFETENSORS_I32, 1, {T}, ids};
    w[k++] = (SafetensorsWriteTensor){"logits", SAFETENSORS_F32, 2, {T, V}, logits};
    for (size_t l = 0; attn && l < L; l++) {
        snprintf(names[l], sizeof names[l], "attn.%zu", l);
        w[k++] = (SafetensorsWriteTensor){
            names[l], SAFETENSORS_F32, 3, {H, T, T}, attn + l * H * T * T};
    }
    for (size_t l = 0; hidden && l <= L; l++) {
        snprintf(names[L + l], sizeof names[L + l], "hidden.%zu", l);
        w[k++] = (SafetensorsWriteTensor){
            names[L + l], SAFETENSORS_F32, 2, {T, C}, hidden + l * T * C};
    }
    char meta[1024];
    char loss_s[64];
    if (T >= 2)
        snprintf(loss_s, sizeof loss_s, "%.9g", loss);
    else
        snprintf(loss_s, sizeof loss_s, "none");
    /* Metadata values are strings; the model path is left out (it may hold
     * characters that would need JSON escaping and says little). */
    snprintf(meta, sizeof meta,
             "{\"format\":\"pt\",\"producer\":\"drrl %s\",\"method\":\"%s\","
             "\"architecture\":\"%s\",\"weights_hash\":\"%s\",\"tokens\":\"%zu\","
             "\"loss\":\"%s\"}",
             PACKAGE_VERSION, acfg.method.kind == METHOD_FULL ? "exact" : acfg.method.spec,
             cf->arch_name, m->hash, T, loss_s);
    if (safetensors_write_flags(out, w, k, meta, oflags, &err) != DRRL_OK) {
        rc = cli_fail(&err);
        goto done2;
    }
    if (T >= 2)
        printf("%s: %zu tokens, loss %.6f (perplexity %.3f)\n", out, T, loss, exp(loss));
    else
        printf("%s: %zu token\n", out, T);
    if (fflush(stdout) != 0)
        rc = cli_error(DRRL_E_IO, "standard output: write error");

done2:
    forward_free(f);
    free(names);
    free(w);
    free(logits);
    free(hidden);
    free(attn);
done:
    free(ids);
    model_free(m);
    return rc;
}
