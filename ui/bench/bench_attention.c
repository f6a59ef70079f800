/* bench_attention.c: `drrl bench attention` (see bench_attention.h).
 *
 * Part 1 (Fig. 3): for L = 512, 1024, ... up to --max-len, the default model
 * runs L tokens with full attention and with fixed ranks head_dim/8, /4, /2
 * (no exact path beside: --no-exact). Per (L, method): the attention-core
 * FLOPs the ledger says were executed, and the medians over --repeat runs
 * (--long-repeat from L = LONG_LEN on) of the forward's wall time and of the
 * time spent inside the attention hook (summed over worker threads). Methods are interleaved
 * within a repeat. Part 3: bases for every (layer, kv head) key matrix of L rows: one batched
 * eigensolve of the d x d Gram matrices (what drrl does at a refresh) against
 * a thin SVD of each L x d matrix (what a per-head SVD costs), both batches
 * on the same threads with single-threaded LAPACK per matrix; Gram build
 * timed separately. Pseudo-random data (xorshift, fixed seed): the work does
 * not depend on the values.
 * Part 2: rank head_dim/4 with the bounds deciding keep/recompute at each
 * refresh (--rot-tol default) against recomputing every basis at every
 * segment boundary (rot_tol < 0): refresh FLOPs executed (Gram, eigensolve,
 * rotation, projection) and decisions, and median wall times.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "attn/basis.h"
#include "attn/lowrank_kernel.h"
#include "base/rng.h"
#include "bench/bench_attention.h"
#include "bench/bench_util.h"
#include "cli/cli.h"
#include "cli/signals.h"
#include "run/session.h"

/* Most bytes of --text read (the text is repeated to the largest L). */
#define BENCH_TEXT_MAX (1u << 20)

static const char usage[] =
    "usage: drrl bench attention [--model DIR] [--text FILE] [--max-len N] [--repeat N]\n"
    "                            [--long-repeat N] [--segment T] [--threads N] [--csv F]\n"
    "\n"
    "Measure, for L = 512, 1024, ... up to --max-len: the executed attention FLOPs\n"
    "(from the FLOP ledger) and median wall times of exact attention and of fixed\n"
    "ranks head_dim/8, /4, /2 (the DR-RL paper's Fig. 3, measured); incremental\n"
    "basis refresh (keep a basis while the bounds allow) against full recompute at\n"
    "every segment boundary; bases for the model's L x head_dim key matrices (one\n"
    "per layer and kv head) from one batched Gram eigensolve (what drrl does)\n"
    "against one thin SVD per head. Both yield the same thing, singular values and\n"
    "right singular vectors; both batches run their matrices on the same threads\n"
    "with single-threaded LAPACK, and both include the float-to-double copy of\n"
    "the keys: 'gram s' builds the Gram matrices (dsyrk, L d^2 flops each), 'eig\n"
    "batch s' is their eigensolve (LAPACKE_dsyevr), 'svd/head s' is one\n"
    "LAPACKE_dgesvd per head with no left factor (QR first, about 2 L d^2 flops\n"
    "each, at Householder QR's memory-bound speed); the data are seeded\n"
    "pseudo-random numbers.\n"
    "Tables, terminal plots, and with --csv one CSV.\n"
    "\n"
    "  --model DIR     model directory (default: the data directory's model)\n"
    "  --text FILE     text whose bytes/tokens are repeated to length L (default:\n"
    "                  DATA/texts/brown-test-1-scifi.txt)\n"
    "  --max-len N     largest L (default 4096; 16384 for the paper's full range)\n"
    "  --repeat N      timed runs per point (median; default 3)\n"
    "  --long-repeat N timed runs per point at L >= 8192 (default: --repeat):\n"
    "                  those points take most of the time (the work grows as L^2)\n"
    "  --segment T     decision segment length (default 128)\n"
    "  --threads N     attention worker threads (default: online CPUs)\n"
    "  --csv F         write every measurement as CSV to F ('-' = stdout); Ctrl-C\n"
    "                  keeps the lengths finished\n"
    "  --force         replace an existing --csv file\n"
    "  -h, --help      show this help\n";

#define MAX_LENS 16
#define LONG_LEN 8192 /* --long-repeat applies from this L on */
#define N_METH 4
#define PLOT_W 56
#define PLOT_H 14

/* A log-log character plot of n_series series over the lengths: x = log2 L,
 * y = log10 value; each series drawn with its own mark. */
static void plot(const char *title, const char *unit, const long *lens, int n_lens,
                 const double vals[][MAX_LENS], int n_series, const char *marks,
                 const char *const *names)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < n_lens; i++)
            if (vals[s][i] > 0)
                lo = fmin(lo, log10(vals[s][i])), hi = fmax(hi, log10(vals[s][i]));
    if (!(hi > lo) || n_lens < 2)
        return;
    char g[PLOT_H][PLOT_W + 1];
    memset(g, ' ', sizeof g);
    for (int s = n_series - 1; s >= 0; s--)
        for (int i = 0; i < n_lens; i++) {
            if (!(vals[s][i] > 0))
                continue;
            int x = (int)lround((double)i * (PLOT_W - 1) / (n_lens - 1));
            int y = (int)lround((log10(vals[s][i]) - lo) / (hi - lo) * (PLOT_H - 1));
            g[PLOT_H - 1 - y][x] = marks[s];
        }
    printf("\n%s (log scale; ", title);
    for (int s = 0; s < n_series; s++)
        printf("%s%c = %s", s ? ", " : "", marks[s], names[s]);
    printf(")\n");
    for (int r = 0; r < PLOT_H; r++) {
        g[r][PLOT_W] = '\0';
        if (r == 0 || r == PLOT_H - 1)
            printf("%9.3g %s |%s\n", pow(10.0, r == 0 ? hi : lo), unit, g[r]);
        else
            printf("%*s |%s\n", 10 + (int)strlen(unit), "", g[r]);
    }
    printf("%*s +", 10 + (int)strlen(unit), "");
    for (int i = 0; i < PLOT_W; i++)
        putchar('-');
    printf("\n%*s  L = %ld", 10 + (int)strlen(unit), "", lens[0]);
    printf("%*s%ld (log2 steps)\n", PLOT_W - 18, "", lens[n_lens - 1]);
}

/* One session per method (fresh core state for every run via set_ids). */
static int run_point(Session *s, const int32_t *ids, size_t L, double *wall, double *attn_wall,
                     double *attn_flops, double *refresh_flops, int64_t *keep, int64_t *recomp)
{
    DrrlError err;
    if (session_set_ids(s, ids, L, &err) != DRRL_OK)
        return cli_fail(&err);
    double t0 = clock_now_s();
    if (session_advance(s, L, NULL, &err) != DRRL_OK)
        return cli_fail(&err);
    *wall = clock_now_s() - t0;
    AttnCore *ac = session_core(s);
    const AttnCoreStats *st = attn_core_stats(ac);
    const FlopLedger *fe = attn_core_flops_executed(ac);
    *attn_wall = st->attn_wall_s;
    *attn_flops = flops_attn(fe);
    *refresh_flops = 0.0;
    for (int32_t l = 0; l < fe->n_layer; l++)
        for (int32_t h = -1; h < fe->n_head; h++)
            for (FlopCat c = FLOPS_GRAM; c <= FLOPS_BASIS_PROJ; c++)
                *refresh_flops += flops_get(fe, l, h == -1 ? FLOPS_LAYER : h, c);
    *keep = st->refresh_keep, *recomp = st->refresh_recompute;
    return 0;
}

/* One run of the benchmark: options, lengths, sessions and results. */
typedef struct BenchAttn {
    const char *model, *text, *csv;
    long max_len, repeat, long_repeat, segment, threads, rmax;
    int force, n_lens, D, n_kv;
    long lens[MAX_LENS], reps[MAX_LENS];
    FILE *cf;
    FileOut *co;
    Session *ss[N_METH + 1];
    char names[N_METH + 1][48];
    int32_t *ids;
    double afl[N_METH + 1][MAX_LENS], rfl[N_METH + 1][MAX_LENS];
    double wmed[N_METH + 1][MAX_LENS], awmed[N_METH + 1][MAX_LENS];
    int64_t keep[N_METH + 1][MAX_LENS], recomp[N_METH + 1][MAX_LENS];
} BenchAttn;

/* The first session's text (its first BENCH_TEXT_MAX bytes), its ids
 * repeated to the largest L. */
static int load_ids(BenchAttn *b)
{
    DrrlError err;
    char *buf;
    size_t nb;
    if (fileio_read_file(b->text, BENCH_TEXT_MAX, FILEIO_TRUNCATE | FILEIO_SPECIAL_OK, &buf,
                         &nb, &err) != DRRL_OK)
        return cli_fail(&err);
    DrrlStatus st = session_set_text(b->ss[0], buf, nb, &err);
    free(buf);
    if (st != DRRL_OK)
        return cli_fail(&err);
    size_t nt = session_len(b->ss[0]);
    if (nt == 0)
        return cli_error(DRRL_E_INPUT, "%s: no tokens", b->text);
    b->ids = malloc((size_t)b->max_len * sizeof *b->ids);
    if (!b->ids)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    for (long i = 0; i < b->max_len; i++)
        b->ids[i] = session_ids(b->ss[0])[(size_t)i % nt];
    return 0;
}

/* Sessions: full, fixed D/8, D/4, D/2, and D/4 with full recompute. */
static int open_sessions(BenchAttn *b)
{
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    /* as `drrl run --no-exact` without a trace: no exact pass alongside,
     * and no guard where it does not bind the method (for fixed ranks it
     * would only be instrumentation: 40% of this benchmark's time at L =
     * 8192, and it keeps the refresh out of the attention stage) */
    cfg.measure = 0, cfg.no_guard = 1;
    cfg.segment = (int32_t)b->segment;
    DrrlError err;
    int rc = CLI_EXIT_OK;
    for (int k = 0; k <= N_METH && rc == CLI_EXIT_OK; k++) {
        if (k == 0) {
            snprintf(b->names[k], sizeof b->names[k], "full");
        } else {
            int den = k == 1 ? 8 : k == 2 ? 4 : k == 3 ? 2 : 4;
            snprintf(b->names[k], sizeof b->names[k], "fixed:%d%s",
                     b->D / den > 0 ? b->D / den : 1, k == N_METH ? " recompute" : "");
        }
        char spec[48];
        snprintf(spec, sizeof spec, "%.40s", b->names[k]);
        spec[strcspn(spec, " ")] = '\0';
        if (method_parse(spec, &cfg.method, &err) != DRRL_OK)
            return cli_fail(&err);
        cfg.rot_tol = k == N_METH ? -1.0 : 0.1;
        if (session_open(b->model, &cfg, (int)b->threads, &b->ss[k], &err) != DRRL_OK)
            return cli_fail(&err);
        if (k == 0) {
            const ModelConfig *mc = &session_model(b->ss[0])->cfg;
            b->D = mc->head_dim;
            b->n_kv = mc->n_layer * mc->n_kv_head;
            rc = load_ids(b);
        }
    }
    return rc;
}

/* " (of N at L >= LONG_LEN)" when the longest lengths repeat otherwise. */
static void print_long_repeat(const BenchAttn *b)
{
    if (b->long_repeat != b->repeat && b->lens[b->n_lens - 1] >= LONG_LEN)
        printf(" (of %ld at L >= %d)", b->long_repeat, LONG_LEN);
    printf("\n");
}

/* Part 1 (attention core against L) and its CSV rows; stops after a length
 * on a signal. */
static int part_scaling(BenchAttn *b)
{
    int rc = CLI_EXIT_OK;
    long rmax = b->rmax;
    double *wt = calloc((size_t)(N_METH + 1) * (size_t)rmax, sizeof *wt);
    double *awt = calloc((size_t)(N_METH + 1) * (size_t)rmax, sizeof *awt);
    if (!wt || !awt) {
        free(wt), free(awt);
        return cli_error(DRRL_E_NOMEM, "out of memory");
    }
    const Model *m = session_model(b->ss[0]);
    printf("drrl bench attention: %s (%d layers, %d heads, head_dim %d), segment %ld, "
           "rank-r kernel %s, median of %ld",
           b->model, m->cfg.n_layer, m->cfg.n_head, b->D, b->segment,
           lowrank_kernel_isa_name(lowrank_kernel_best()), b->repeat);
    print_long_repeat(b);
    printf("\n1. Attention core against L (executed FLOPs from the ledger; wall: whole "
           "forward; hook: inside attention, summed over threads; rate: the FLOPs less the "
           "refresh's over hook s, and against full's)\n");
    printf("%6s %-18s %14s %10s %10s %10s %8s %8s\n", "L", "method", "attn FLOPs", "vs full",
           "wall s", "hook s", "GFLOP/s", "vs full");
    fflush(stdout);
    for (int li = 0; li < b->n_lens && rc == CLI_EXIT_OK && !signals_caught(); li++) {
        const long nr = b->reps[li];
        for (long r = 0; r < nr && rc == CLI_EXIT_OK; r++)
            for (int k = 0; k <= N_METH && rc == CLI_EXIT_OK; k++)
                rc = run_point(b->ss[k], b->ids, (size_t)b->lens[li], &wt[k * rmax + r],
                               &awt[k * rmax + r], &b->afl[k][li], &b->rfl[k][li],
                               &b->keep[k][li], &b->recomp[k][li]);
        for (int k = 0; k <= N_METH && rc == CLI_EXIT_OK; k++) {
            b->wmed[k][li] = bench_median(&wt[k * rmax], (int)nr);
            b->awmed[k][li] = bench_median(&awt[k * rmax], (int)nr);
            if (k < N_METH) {
                double rate = (b->afl[k][li] - b->rfl[k][li]) / b->awmed[k][li] / 1e9;
                double rfull = (b->afl[0][li] - b->rfl[0][li]) / b->awmed[0][li] / 1e9;
                printf("%6ld %-18s %14.4e %9.1f%% %10.4f %10.4f %8.2f %8.2f\n", b->lens[li],
                       b->names[k], b->afl[k][li], 100.0 * b->afl[k][li] / b->afl[0][li],
                       b->wmed[k][li], b->awmed[k][li], rate, rate / rfull);
            }
            if (b->cf)
                fprintf(b->cf, "%s,%ld,%s,%.17g,%.17g,%lld,%lld,%.6f,%.6f,%ld\n",
                        k == N_METH ? "refresh" : "scaling", b->lens[li], b->names[k],
                        b->afl[k][li], b->rfl[k][li], (long long)b->keep[k][li],
                        (long long)b->recomp[k][li], b->wmed[k][li], b->awmed[k][li], nr);
        }
        fflush(stdout);
    }
    free(wt), free(awt);
    return rc;
}

/* The figures of part 1 and the table of part 2 (basis refresh). */
static void part_refresh(const BenchAttn *b)
{
    char leg[N_METH][64];
    const char *pn[N_METH];
    for (int k = 0; k < N_METH; k++) {
        if (k)
            snprintf(leg[k], sizeof leg[k], "D/%d %.40s",
                     k == 1   ? 8
                     : k == 2 ? 4
                              : 2,
                     b->names[k]);
        else
            snprintf(leg[k], sizeof leg[k], "%.40s", b->names[k]);
        pn[k] = leg[k];
    }
    plot("Executed attention FLOPs against L", "FLOPs", b->lens, b->n_lens,
         (const double(*)[MAX_LENS])b->afl, N_METH, "F842", pn);
    plot("Attention hook wall time against L", "s", b->lens, b->n_lens,
         (const double(*)[MAX_LENS])b->awmed, N_METH, "F842", pn);
    printf("\n2. Basis refresh at rank %s: incremental (keep while the bounds allow) "
           "against recomputing every basis at every boundary\n",
           b->names[2]);
    printf("%6s %16s %16s %9s %9s %10s %10s\n", "L", "refresh FLOPs", "recompute FLOPs", "keep",
           "recomp", "wall s", "recomp s");
    for (int li = 0; li < b->n_lens; li++)
        printf("%6ld %16.4e %16.4e %9lld %9lld %10.4f %10.4f\n", b->lens[li], b->rfl[2][li],
               b->rfl[N_METH][li], (long long)b->keep[2][li], (long long)b->recomp[2][li],
               b->wmed[2][li], b->wmed[N_METH][li]);
}

/* One length of part 3: gram, eigensolve and SVD times into t1. */
static int svd_point(int n, long L, int D, long nr, long rmax, const float *X, double *G,
                     double *lam, double *B, double *sig, double *V, double *t1)
{
    DrrlError err;
    for (long r = 0; r < nr; r++) {
        double t0 = clock_now_s();
        memset(G, 0, (size_t)n * D * D * sizeof *G);
        for (int h = 0; h < n; h++)
            basis_gram_add(G + (size_t)h * D * D, X, L, D, D);
        double t_1 = clock_now_s();
        if (basis_eig_batch(G, n, D, lam, B, &err) != DRRL_OK)
            return cli_fail(&err);
        double t_2 = clock_now_s();
        if (basis_svd_batch(X, n, L, D, D, 0, sig, V, &err) != DRRL_OK)
            return cli_fail(&err);
        double t_3 = clock_now_s();
        t1[r] = t_1 - t0, t1[rmax + r] = t_2 - t_1, t1[2 * rmax + r] = t_3 - t_2;
    }
    return 0;
}

/* Part 3: batched Gram eigensolve against per-head SVD. */
static int part_svd(const BenchAttn *b)
{
    int n = b->n_kv, D = b->D, rc = CLI_EXIT_OK; /* one key matrix per (layer, kv head) */
    long rmax = b->rmax, Lmax = b->lens[b->n_lens - 1];
    printf("\n3. Bases for %d key matrices (L x %d): batched Gram eigensolve against "
           "per-head thin SVD (LAPACKE_dgesvd, values and right vectors only, no L-row "
           "factor); median of %ld",
           n, D, b->repeat);
    print_long_repeat(b);
    printf("%6s %12s %12s %12s %10s %12s\n", "L", "gram s", "eig batch s", "svd/head s",
           "svd/eig", "svd/(g+eig)");
    float *X = malloc((size_t)Lmax * (size_t)D * sizeof *X);
    double *G = malloc((size_t)n * D * D * sizeof *G),
           *lam = malloc((size_t)n * D * sizeof *lam);
    double *B = malloc((size_t)n * D * D * sizeof *B),
           *sig = malloc((size_t)n * D * sizeof *sig);
    double *V = malloc((size_t)n * D * D * sizeof *V),
           *t1 = malloc((size_t)rmax * 3 * sizeof *t1);
    if (!X || !G || !lam || !B || !sig || !V || !t1) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    } else {
        uint64_t s = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < (size_t)Lmax * (size_t)D; i++)
            X[i] = (float)(rng_unit(rng_xorshift64(&s)) - 0.5);
        for (int li = 0; li < b->n_lens && rc == CLI_EXIT_OK; li++) {
            long L = b->lens[li], nr = b->reps[li];
            if ((rc = svd_point(n, L, D, nr, rmax, X, G, lam, B, sig, V, t1)))
                break;
            double g = bench_median(t1, (int)nr), e = bench_median(t1 + rmax, (int)nr);
            double v = bench_median(t1 + 2 * rmax, (int)nr);
            printf("%6ld %12.6f %12.6f %12.6f %9.1fx %11.1fx\n", L, g, e, v, v / e,
                   v / (g + e));
            if (b->cf)
                fprintf(b->cf,
                        "svd,%ld,gram,,,,,%.6f,,%ld\nsvd,%ld,eig_batch,,,,,%.6f,,%ld\n"
                        "svd,%ld,svd_per_head,,,,,%.6f,,%ld\n",
                        L, g, nr, L, e, nr, L, v, nr);
        }
    }
    DRRL_FREE(X, G, lam, B, sig, V, t1);
    return rc;
}

/* Parts 1-3 (3 not after a signal); publishes the CSV when all went well. */
static int bench_run(BenchAttn *b)
{
    int rc = open_sessions(b);
    /* Again, now that the model and the text are known inputs: --csv onto
     * one of them is refused before measuring, not after. */
    DrrlError oerr;
    if (rc == CLI_EXIT_OK && b->csv &&
        fileio_out_check(b->csv, FILEIO_STDOUT | (b->force ? FILEIO_FORCE : 0), &oerr))
        rc = cli_fail(&oerr);
    signals_catch(); /* Ctrl-C: stop after this length; the CSV keeps what was measured */
    if (rc == CLI_EXIT_OK && (rc = part_scaling(b)) == CLI_EXIT_OK)
        part_refresh(b);
    for (int k = 0; k <= N_METH; k++)
        session_free(b->ss[k]);
    free(b->ids);
    int stopped = signals_caught() != 0;
    signals_restore();
    if (rc == CLI_EXIT_OK && !stopped)
        rc = part_svd(b);
    if (b->co && rc == CLI_EXIT_OK)
        rc = cli_out_commit(b->co);
    else
        fileio_out_abort(b->co);
    if (stopped && rc == CLI_EXIT_OK)
        rc = cli_error(DRRL_E_INTERRUPTED, "bench attention: interrupted by %s%s",
                       signals_name(), b->csv ? "; the lengths finished are in the CSV" : "");
    return rc;
}

int bench_attention(int argc, char **argv)
{
    static BenchAttn b;
    memset(&b, 0, sizeof b);
    b.max_len = 4096, b.repeat = 3, b.segment = 128;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&b.model),
        CLI_STR("text", &b.text),
        CLI_LONG("max-len", &b.max_len, 512, 1L << 20),
        CLI_LONG("repeat", &b.repeat, 1, 1000),
        CLI_LONG("segment", &b.segment, 1, 1 << 20),
        CLI_THREADS_OPT(&b.threads),
        CLI_STR("csv", &b.csv),
        CLI_LONG("long-repeat", &b.long_repeat, 1, 1000),
        CLI_FORCE_OPT(&b.force),
        CLI_END,
    };
    int rc = cli_parse("bench attention", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    char def_model[4096], def_text[4096];
    if (!b.model) {
        snprintf(def_model, sizeof def_model, "%s/model", cli_data_dir());
        b.model = def_model;
    }
    if (!b.text) {
        snprintf(def_text, sizeof def_text, "%s/texts/brown-test-1-scifi.txt", cli_data_dir());
        b.text = def_text;
    }
    if (b.long_repeat == 0)
        b.long_repeat = b.repeat;
    /* runs at each length; buffers hold rmax runs per method */
    b.rmax = b.repeat > b.long_repeat ? b.repeat : b.long_repeat;
    for (long L = 512; L <= b.max_len && b.n_lens < MAX_LENS; L *= 2)
        b.reps[b.n_lens] = L >= LONG_LEN ? b.long_repeat : b.repeat, b.lens[b.n_lens++] = L;
    if (b.csv) { /* the rule is checked again when published (the inputs known) */
        if ((rc = cli_out_open(b.csv, b.force, &b.co)))
            return rc;
        b.cf = fileio_out_stream(b.co);
        fprintf(b.cf, "part,L,method,attn_flops_executed,refresh_flops_executed,refresh_keep,"
                      "refresh_recompute,wall_s_median,attn_wall_s_median,repeats\n");
    }
    rc = bench_run(&b);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = cli_error(DRRL_E_IO, "standard output: write error");
    return rc;
}
