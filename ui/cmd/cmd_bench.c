/* cmd_bench.c: `drrl bench SUBCOMMAND`: speed measurements.
 *
 * Subcommands are rows of bench_table below: a name, a summary and a
 * function taking (argc, argv) with argv[0] = the subcommand's name. Add a
 * benchmark by adding a row (and its function, here or in its own file). */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench_attention.h"
#include "bench/bench_tokenize.h"
#include "bench/bench_trace.h"
#include "bench/bench_tui.h"
#include "bench/bench_util.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/forward.h"
#include "model/model.h"
#include "run/session.h"

static int bench_forward(int argc, char **argv);

static const CliCommand bench_table[] = {
    {"forward", "tokens per second of the exact forward pass at T = 1024 and 4096",
     bench_forward},
    {"tui", "the explorer: median step (one token, all layers, panes) and frame times",
     bench_tui},
    {"trace", "load a 10^6-row trace for replay: median time and peak memory", bench_trace},
    {"attention",
     "executed FLOPs and wall time against L: exact vs ranks D/8, D/4, D/2; SVD; refresh",
     bench_attention},
    {"tokenize", "megabytes of text per second of tokenizers on one core", bench_tokenize},
};
static const size_t n_bench = sizeof bench_table / sizeof bench_table[0];

/* The usage text, with the table of benchmarks. */
static void bench_usage(char *buf, size_t n)
{
    size_t o =
        (size_t)snprintf(buf, n,
                         "usage: drrl bench SUBCOMMAND [options]\n"
                         "\n"
                         "Measure speed. Each benchmark reports medians of repeated runs.\n"
                         "\n"
                         "Subcommands:\n");
    for (size_t i = 0; i < n_bench && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "  %-12s %s\n", bench_table[i].name,
                              bench_table[i].summary);
    if (o < n)
        snprintf(buf + o, n - o, "\n'drrl bench SUBCOMMAND --help' describes one.\n");
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && argv[1][0] != '-') {
        const CliCommand *b = cli_command_find(bench_table, n_bench, argv[1]);
        if (!b)
            return cli_usage_error("bench", "unknown benchmark '%s'", argv[1]);
        return cli_command_run(b, argc - 1, argv + 1);
    }
    char usage[2048];
    bench_usage(usage, sizeof usage);
    const CliOpt opts[] = {CLI_END};
    int first, r = cli_parse("bench", usage, opts, argc, argv, &first);
    if (r != CLI_GO)
        return r;
    char names[256];
    size_t o = 0;
    names[0] = '\0';
    for (size_t i = 0; i < n_bench && o < sizeof names; i++)
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                              bench_table[i].name);
    return cli_usage_error("bench", "give a benchmark (one of: %s)", names);
}

/* ---- bench forward --------------------------------------------------- */

static const char forward_usage[] =
    "usage: drrl bench forward [--model DIR] [--tokens LIST] [--repeat N] [--threads N]\n"
    "                          [--session]\n"
    "\n"
    "Time the exact full-sequence forward pass (logits included) and print the\n"
    "median wall time and tokens per second for each sequence length.\n"
    "\n"
    "  --model DIR     a model directory (default: the default model in the data\n"
    "                  directory when it exists, else a Llama-style model of that\n"
    "                  size with random weights: d_model 256, 4 layers, 8 heads,\n"
    "                  d_ff 768, vocab 256)\n"
    "  --tokens LIST   sequence lengths, comma-separated (default 1024,4096)\n"
    "  --repeat N      timed runs per length, after one warm-up (default 5)\n"
    "  --threads N     threads for OpenBLAS and for the attention workers\n"
    "                  (default: OpenBLAS's count, OPENBLAS_NUM_THREADS)\n"
    "  --session       time the path `drrl run --method full --no-exact` takes\n"
    "                  instead (segment by segment through the attention core,\n"
    "                  logits and loss of every row), in one process: a warm-up\n"
    "                  run, then --repeat timed runs from position 0, as PyTorch\n"
    "                  is timed; `drrl run` itself times one cold run\n"
    "  -h, --help      show this help\n"
    "\n"
    "bench/forward_torch.py runs the same computation in PyTorch on the CPU with\n"
    "the same thread count and prints the ratio.\n";

/* The default model's shape, with random weights (a speed benchmark does
 * not need trained ones; the values do not change the work done). */
static int random_model(Model **out)
{
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_LLAMA;
    c.n_layer = 4;
    c.n_head = 8;
    c.n_kv_head = 8;
    c.d_model = 256;
    c.head_dim = 32;
    c.d_ff = 768;
    c.vocab = 256;
    c.n_ctx = 4096;
    c.norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tied = 1;
    DrrlError err;
    drrl_error_clear(&err);
    Model *m;
    if (model_new(&c, &m, &err) != DRRL_OK)
        return cli_fail(&err);
    uint64_t s = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < m->arena_floats; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        m->arena[i] = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.1f;
    }
    for (size_t i = 0; i < (size_t)c.n_layer * (size_t)c.d_model; i++)
        m->ln1_w[i] = m->ln2_w[i] = 1.0f;
    for (size_t i = 0; i < (size_t)c.d_model; i++)
        m->lnf_w[i] = 1.0f;
    model_rehash(m);
    *out = m;
    return 0;
}

/* --tokens LIST: comma-separated lengths into lens (at most 16). */
static int parse_lens(const char *tokens, long *lens, size_t *n_lens)
{
    *n_lens = 0;
    for (const char *p = tokens; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000 || (*end && *end != ',') || *n_lens == 16)
            return cli_usage_error("bench forward",
                                   "--tokens: '%s' is not a list of lengths in 1..1000000",
                                   tokens);
        lens[(*n_lens)++] = v;
        p = *end ? end + 1 : end;
    }
    if (*n_lens == 0)
        return cli_usage_error("bench forward", "--tokens: no lengths");
    return 0;
}

/* The default model when present, else random weights of its size. */
static int forward_model(const char **model_dir, Model **m)
{
    static char def[4096];
    struct stat sb;
    if (!*model_dir) {
        snprintf(def, sizeof def, "%s/model", cli_data_dir());
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", def);
        if (stat(cfg, &sb) == 0)
            *model_dir = def;
    }
    DrrlError err;
    if (*model_dir) {
        if (model_load(*model_dir, m, &err) != DRRL_OK)
            return cli_fail(&err);
    } else if (random_model(m)) {
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* T pseudo-random token ids below vocab (a fixed LCG: the same everywhere). */
static void bench_ids(int32_t *ids, size_t T, int32_t vocab)
{
    uint32_t s = 12345;
    for (size_t i = 0; i < T; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)vocab);
    }
}

/* One timed run of a length (forward_point, session_point): reset, then the
 * whole forward pass; DRRL_OK or the failure in *err. */
typedef DrrlStatus (*BenchRunFn)(void *ctx, DrrlError *err);

/* The median of repeat timed runs of fn after a warm-up (run -1), printed
 * as one row for length T; a failed run ends it with its error. */
static int bench_timed(size_t T, long repeat, BenchRunFn fn, void *ctx)
{
    DrrlError err;
    double *times = malloc((size_t)repeat * sizeof *times);
    if (!times)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    int rc = CLI_EXIT_OK;
    for (long r = -1; r < repeat && rc == CLI_EXIT_OK; r++) {
        double t0 = clock_now_s();
        if (fn(ctx, &err) != DRRL_OK)
            rc = cli_fail(&err);
        double dt = clock_now_s() - t0;
        if (r >= 0)
            times[r] = dt;
    }
    if (rc == CLI_EXIT_OK) {
        double med = bench_median(times, (int)repeat);
        printf("%-8zu %10.4f %12.1f %6ld\n", T, med, (double)T / med, repeat);
        fflush(stdout);
    }
    free(times);
    return rc;
}

typedef struct ForwardRun {
    Forward *f;
    const int32_t *ids;
    size_t T;
    float *logits;
} ForwardRun;

static DrrlStatus forward_run(void *ctx, DrrlError *err)
{
    ForwardRun *r = ctx;
    forward_reset(r->f);
    return forward_tokens(r->f, r->ids, r->T, r->logits, NULL, err);
}

/* One length: the median of repeat timed runs after a warm-up. */
static int forward_point(const Model *m, size_t T, long repeat, long threads)
{
    const ModelConfig *cf = &m->cfg;
    DrrlError err;
    int rc = CLI_EXIT_OK;
    int32_t *ids = malloc(T * sizeof *ids);
    float *logits = malloc(T * (size_t)cf->vocab * sizeof *logits);
    Forward *f = NULL;
    if (!ids || !logits) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
    } else if (forward_new(m, T, (int)threads, &f, &err) != DRRL_OK) {
        rc = cli_fail(&err);
    } else {
        bench_ids(ids, T, cf->vocab);
        ForwardRun run = {f, ids, T, logits};
        rc = bench_timed(T, repeat, forward_run, &run);
    }
    forward_free(f);
    free(ids);
    free(logits);
    return rc;
}

static DrrlStatus session_run(void *ctx, DrrlError *err)
{
    Session *s = ctx;
    session_restart(s);
    size_t done = 0;
    return session_advance(s, session_len(s), &done, err);
}

/* One length through a session (the path of `drrl run --method full
 * --no-exact`): the median of repeat timed runs after a warm-up, each from
 * position 0 (session_restart) on the same session, so that only the first
 * run pays for first touches of its buffers. */
static int session_point(const Model *m, size_t T, long repeat, long threads)
{
    DrrlError err;
    int rc = CLI_EXIT_OK;
    int32_t *ids = malloc(T * sizeof *ids);
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    cfg.measure = 0, cfg.no_guard = 1; /* as `drrl run --no-exact` without a trace */
    Session *s = NULL;
    if (!ids) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory for %zu tokens", T);
    } else if (session_new_shared(m, NULL, &cfg, (int)threads, &s, &err) != DRRL_OK) {
        rc = cli_fail(&err);
    } else {
        bench_ids(ids, T, m->cfg.vocab);
        if (session_set_ids(s, ids, T, &err) != DRRL_OK)
            rc = cli_fail(&err);
        else
            rc = bench_timed(T, repeat, session_run, s);
    }
    session_free(s);
    free(ids);
    return rc;
}

static int bench_forward(int argc, char **argv)
{
    const char *model_dir = NULL, *tokens = "1024,4096";
    long repeat = 5, threads = 0;
    int session = 0;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&model_dir),
        CLI_STR("tokens", &tokens),
        CLI_LONG("repeat", &repeat, 1, 1000),
        CLI_THREADS_OPT(&threads),
        CLI_FLAG("session", &session),
        CLI_END,
    };
    int rc = cli_parse("bench forward", forward_usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    long lens[16];
    size_t n_lens = 0;
    if ((rc = parse_lens(tokens, lens, &n_lens)))
        return rc;
    if (threads > 0)
        openblas_set_num_threads((int)threads);
    threads = openblas_get_num_threads();
    Model *m = NULL;
    if ((rc = forward_model(&model_dir, &m)))
        return rc;
    const ModelConfig *cf = &m->cfg;
    for (size_t i = 0; i < n_lens; i++)
        if (cf->arch == MODEL_ARCH_GPT2 && lens[i] > cf->n_ctx) {
            model_free(m);
            return cli_usage_error("bench forward",
                                   "--tokens: %ld exceeds the model's %d positions", lens[i],
                                   cf->n_ctx);
        }
    if (session)
        printf("drrl bench forward: exact forward through the session, segment by segment "
               "(drrl run's path), logits and loss included\n");
    else
        printf("drrl bench forward: exact full-sequence forward pass, logits included\n");
    printf("model    %s: %s, d_model %d, %d layers, %d heads (%d kv), head_dim %d, d_ff %d, "
           "vocab %d\n",
           model_dir ? model_dir : "random weights", cf->arch_name, cf->d_model, cf->n_layer,
           cf->n_head, cf->n_kv_head, cf->head_dim, cf->d_ff, cf->vocab);
    printf("threads  %ld (OpenBLAS and attention workers)\n", threads);
    printf("%-8s %10s %12s %6s\n", "T", "median_s", "tokens_per_s", "runs");
    fflush(stdout);
    for (size_t li = 0; li < n_lens && rc == CLI_EXIT_OK; li++)
        rc = (session ? session_point : forward_point)(m, (size_t)lens[li], repeat, threads);
    model_free(m);
    return rc;
}
