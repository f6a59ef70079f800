/* cmd_info.c: `drrl info DIR`: what a model directory holds, after loading
 * and validating every weight. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/model.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl info [--hash-algo NAME] DIR\n"
    "\n"
    "Load and validate the Hugging Face model directory DIR (config.json and\n"
    "model.safetensors, or a sharded model.safetensors.index.json) and print its\n"
    "architecture, parameter count, layers, heads and kv heads, d_model,\n"
    "head_dim, MLP size, vocabulary, context length, weight dtype, a hash of the\n"
    "weights (and its algorithm, as traces record it), and the tokenizer found.\n"
    "\n"
    "  --hash-algo NAME  the weights hash by NAME: xxh64-tree (the default, what\n"
    "                    drrl records) or fnv1a64 (what traces and policy files\n"
    "                    written before drrl named its hash hold; slower)\n"
    "  -h, --help        show this help\n";

/* 1234567 -> "1,234,567" */
static const char *grouped(size_t v, char *buf, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

int cmd_info(int argc, char **argv)
{
    const char *algo = MODEL_HASH_ALGO;
    const CliOpt opts[] = {CLI_STR("hash-algo", &algo), CLI_END};
    int first, r = cli_parse("info", usage, opts, argc, argv, &first);
    if (r != CLI_GO)
        return r;
    if (first >= argc)
        return cli_usage_error("info", "give a model directory");
    if (first + 1 < argc)
        return cli_usage_error("info", "unexpected argument '%s'", argv[first + 1]);
    const char *dir = argv[first];
    if (strcmp(algo, MODEL_HASH_ALGO) && strcmp(algo, MODEL_HASH_ALGO_V1))
        return cli_usage_error("info", "--hash-algo: '%s' is not %s or %s", algo,
                               MODEL_HASH_ALGO, MODEL_HASH_ALGO_V1);

    DrrlError err;
    drrl_error_clear(&err);
    Model *m;
    if (model_load(dir, &m, &err) != DRRL_OK)
        return cli_fail(&err);
    const ModelConfig *cf = &m->cfg;

    char tokdesc[DRRL_ERROR_MAX + 64];
    Tokenizer *tok = NULL;
    DrrlError terr;
    drrl_error_clear(&terr);
    DrrlStatus ts = tokenizer_load_dir(dir, cf->vocab, &tok, &terr);
    if (ts == DRRL_OK)
        snprintf(tokdesc, sizeof tokdesc, "%s (%zu ids): %s", tokenizer_kind_name(tok),
                 tokenizer_vocab_size(tok), tokenizer_describe(tok));
    else if (ts == DRRL_E_NOTFOUND)
        snprintf(tokdesc, sizeof tokdesc, "none (give token ids with --ids)");
    else
        snprintf(tokdesc, sizeof tokdesc, "unusable: %s", terr.msg);
    tokenizer_free(tok);

    char num[48];
    printf("model         %s\n", dir);
    printf("architecture  %s (%s)\n", cf->arch_name, model_arch_short(cf->arch));
    printf("parameters    %s (%.2f M)\n", grouped(m->n_params, num, sizeof num),
           (double)m->n_params / 1e6);
    printf("layers        %d\n", cf->n_layer);
    printf("heads         %d\n", cf->n_head);
    printf("kv heads      %d\n", cf->n_kv_head);
    printf("d_model       %d\n", cf->d_model);
    printf("head_dim      %d\n", cf->head_dim);
    printf("d_ff          %d\n", cf->d_ff);
    printf("vocab         %d\n", cf->vocab);
    printf("context       %d\n", cf->n_ctx);
    if (cf->arch == MODEL_ARCH_GPT2)
        printf("positions     learned; LayerNorm eps %g; gelu_new\n", cf->norm_eps);
    else
        printf("positions     RoPE theta %g; RMSNorm eps %g; SwiGLU\n", cf->rope_theta,
               cf->norm_eps);
    printf("lm_head       %s\n", cf->tied ? "tied to the token embedding" : "separate");
    printf("dtype         %s (computed in F32)\n", cf->dtype);
    printf("weights hash  %s (%s)\n", model_hash_by(m, algo), algo);
    printf("tokenizer     %s\n", tokdesc);
    model_free(m);
    if (fflush(stdout) != 0)
        return cli_error(DRRL_E_IO, "standard output: write error");
    return CLI_EXIT_OK;
}
