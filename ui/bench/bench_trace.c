/* bench_trace.c: `drrl bench trace` (bench_trace.h).
 *
 * Writes a synthetic trace through drrl's own writer, then loads it with
 * trace_csv_load (the one call drrl replay makes) several times, each in a
 * fresh process (this binary re-run with --load, so that each peak RSS,
 * getrusage's ru_maxrss, is that load's alone), and reports medians. */
#include "config.h"

#include "base/mem.h"
#include "bench/bench_trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "base/rng.h"
#include "cli/cli.h"
#include "trace/trace_csv.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uniform(void)
{
    return rng_unit(rng_xorshift64(&rng));
}

/* Write a synthetic trace of rows rows: layers x heads rows per step, one
 * token per step, rank grid {hd/4, hd/2, 3hd/4, hd}. Spectra, policy outputs,
 * ranks and masks change every seg steps (seg <= 0: every row, the worst case
 * for the store), as the attention core's do at segment boundaries; the other
 * columns change every row. Deterministic. */
static DrrlStatus synth_write(const char *out, unsigned flags, long rows, int hd, int layers,
                              int heads, int seg, DrrlError *err)
{
    rng = 0x9E3779B97F4A7C15ull;
    int32_t grid[4] = {hd / 4, hd / 2, 3 * hd / 4, hd};
    TraceMeta m;
    trace_meta_init(&m);
    m.drrl_version = PACKAGE_VERSION;
    m.model_path = "synthetic";
    m.model_hash = "0";
    m.text_hash = "0";
    m.method = "drrl";
    m.seed = 1;
    m.segment_len = seg > 0 ? seg : 1;
    m.n_layer = layers;
    m.n_head = heads;
    m.head_dim = hd;
    m.n_grid = 4;
    m.rank_grid = grid;
    m.alpha = 1.0;
    m.beta = 0.05;
    m.gamma = 0.1;
    m.eps_start = 0.1;
    m.eps_floor = 0.01;
    m.eps_decay = 0.999;
    TraceCsvWriter *w;
    DrrlStatus st = trace_csv_writer_open(&w, out, &m, flags, err);
    if (st)
        return st;
    size_t cells = (size_t)layers * (size_t)heads;
    float *sig = malloc(cells * (size_t)hd * sizeof *sig);
    float *sigv = malloc(cells * (size_t)hd * sizeof *sigv);
    float *pol = malloc(cells * 4 * sizeof *pol);
    int32_t *ranks = malloc(cells * sizeof *ranks);
    int32_t *n_masked = calloc(cells, sizeof *n_masked);
    if (!sig || !sigv || !pol || !ranks || !n_masked) {
        DRRL_FREE(n_masked, sig, sigv, pol, ranks);
        trace_csv_writer_abort(w);
        return drrl_error(err, DRRL_E_NOMEM, "out of memory");
    }
    int32_t masked[3];
    static const char *words[] = {"the",   " of", " and", ",",    " to", " a",  " in",  "\"",
                                  " that", " is", "\n",   " was", " he", " it", " for", "."};
    double savings_num = 0, savings_den = 0;
    long step = 0;
    for (long row = 0; row < rows; step++) {
        int fresh = seg <= 0 || step % seg == 0;
        for (size_t c = 0; c < cells && row < rows; c++, row++) {
            float *s = sig + c * (size_t)hd, *v = sigv + c * (size_t)hd, *p = pol + c * 4;
            if (fresh) {
                double a = 5 + 10 * uniform(), b = 2 + 5 * uniform();
                for (int i = 0; i < hd; i++) {
                    s[i] = (float)(a * exp(-0.3 * i) * (1 + 0.01 * uniform()));
                    v[i] = (float)(b * exp(-0.2 * i) * (1 + 0.01 * uniform()));
                }
                double z = 0;
                for (int i = 0; i < 4; i++)
                    z += p[i] = (float)(0.05 + uniform());
                for (int i = 0; i < 4; i++)
                    p[i] = (float)(p[i] / z);
                ranks[c] = grid[(int)(uniform() * 4) % 4];
                n_masked[c] = (int32_t)(uniform() * 3);
            }
            TraceRecord r = {0};
            r.step = step;
            r.token_index = step;
            r.token = words[step % 16];
            r.segment = (int32_t)(seg > 0 ? step / seg : step);
            r.layer = (int32_t)(c / (size_t)heads);
            r.head = (int32_t)(c % (size_t)heads);
            r.method = "drrl";
            r.rank = ranks[c];
            r.head_dim = hd;
            r.energy_kept = 1 - 0.1 * uniform();
            r.n_sigma = r.n_sigma_v = hd;
            r.sigma = s;
            r.sigma_v = v;
            r.tail_bound = 0.05 * uniform();
            r.sin_theta_bound = uniform();
            r.output_bound = 0.2 * uniform();
            r.threshold = 0.05;
            r.n_masked = n_masked[c];
            for (int i = 0; i < r.n_masked; i++)
                masked[i] = grid[i];
            r.masked = masked;
            r.measured_error = 0.01 * uniform();
            r.fidelity = 1 - 1e-4 * uniform();
            r.flops_exact = 4.0 * (double)(step + 1) * hd;
            r.flops_executed = 4.0 * (double)(step + 1) * r.rank + 2.0 * r.rank * hd;
            savings_num += r.flops_exact - r.flops_executed;
            savings_den += r.flops_exact;
            r.savings_cum = savings_num / savings_den;
            r.n_policy = 4;
            r.policy_probs = p;
            r.value = uniform() - 0.5;
            r.reward = uniform() - 0.5;
            r.wall_ns = 1000 + (int64_t)(uniform() * 9000);
            if ((st = trace_csv_writer_put(w, &r, err))) {
                DRRL_FREE(n_masked, sig, sigv, pol, ranks);
                trace_csv_writer_abort(w);
                return st;
            }
        }
    }
    DRRL_FREE(n_masked, sig, sigv, pol, ranks);
    return trace_csv_writer_finish(w, 0, err);
}

static const char usage[] =
    "usage: drrl bench trace [--rows N] [--head-dim D] [--layers L] [--heads H]\n"
    "                        [--segment T] [--repeat N] [--dir DIR]\n"
    "       drrl bench trace --write F [--rows N] [--head-dim D] [--layers L] [--heads H]\n"
    "                        [--segment T]\n"
    "\n"
    "Write a synthetic trace of N rows, then load it for replay (trace_csv_load:\n"
    "parse, validate, index) --repeat times, each in a fresh process, and print\n"
    "each load's wall time and peak resident memory (ru_maxrss), then the medians.\n"
    "\n"
    "  --rows N        rows (default 1000000)\n"
    "  --head-dim D    head dimension: sigma and sigma_v have D values (default 32)\n"
    "  --layers L, --heads H\n"
    "                  rows per step L x H (default 4 x 8: with D = 32, the shape\n"
    "                  of drrl's default model)\n"
    "  --segment T     spectra, policy outputs, ranks and masks change every T steps,\n"
    "                  as in real runs (default 128); 0 = in every row (worst case)\n"
    "  --repeat N      loads (default 5)\n"
    "  --dir DIR       where to write the trace (default $TMPDIR or /tmp); removed\n"
    "                  afterwards\n"
    "  --write F       only write the synthetic trace to F (and F.json)\n"
    "  --force         let --write replace an existing trace\n"
    "  -h, --help      show this help\n";

/* --load F: one load in this process; one line "SECONDS MAXRSS_KB ROWS STORE_BYTES". */
static int load_once(const char *path)
{
    double t0 = clock_now_s();
    TraceStore *s;
    DrrlError err;
    if (trace_csv_load(path, &s, &err) != DRRL_OK)
        return cli_fail(&err);
    double secs = clock_now_s() - t0;
    /* Seek to the middle and the end, as a replay does. */
    int64_t n = trace_store_n_steps(s);
    if (n > 0 && (!trace_store_get(s, trace_store_step_at(s, (size_t)n / 2), 0, 0) ||
                  !trace_store_get(s, trace_store_step_at(s, (size_t)n - 1), 0, 0))) {
        trace_store_free(s);
        return cli_error(DRRL_E_INTERNAL, "bench trace: lookup failed");
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.6f %ld %zu %zu\n", secs, ru.ru_maxrss, trace_store_n_rows(s),
           trace_store_bytes(s));
    trace_store_free(s);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* Run this binary with "bench trace --load path"; parse its line. */
static int load_child(const char *path, double *secs, double *rss_mb, double *store_mb)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "drrl", "bench", "trace", "--load", path, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[256];
    FILE *f = fdopen(fd[0], "r");
    int ok = f && fgets(line, sizeof line, f) != NULL;
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    long rss_kb;
    size_t rows, bytes;
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(line, "%lf %ld %zu %zu", secs, &rss_kb, &rows, &bytes) != 4)
        return -1;
    *rss_mb = (double)rss_kb / 1024.0;
    *store_mb = (double)bytes / 1048576.0;
    return 0;
}

int bench_trace(int argc, char **argv)
{
    long rows = 1000000, hd = 32, layers = 4, heads = 8, seg = 128, repeat = 5;
    const char *dir = NULL, *write_to = NULL, *load = NULL;
    unsigned wflags = 0;
    const CliOpt opts[] = {
        CLI_LONG("rows", &rows, 0, 1L << 31),
        CLI_LONG("head-dim", &hd, 4, 4096),
        CLI_LONG("layers", &layers, 1, 1024),
        CLI_LONG("heads", &heads, 1, 1024),
        CLI_LONG("segment", &seg, 0, 1L << 30),
        CLI_LONG("repeat", &repeat, 1, 1000),
        CLI_STR("dir", &dir),
        CLI_STR("write", &write_to),
        CLI_STR("load", &load),
        CLI_BITS("force", &wflags, TRACE_CSV_FORCE),
        CLI_END,
    };
    int r = cli_parse("bench trace", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    if (load)
        return load_once(load);
    DrrlError err;
    if (write_to) {
        if (synth_write(write_to, wflags, rows, (int)hd, (int)layers, (int)heads, (int)seg,
                        &err))
            return cli_fail(&err);
        return CLI_EXIT_OK;
    }
    if (!dir)
        dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tdir[4096], path[4200], json[4300];
    snprintf(tdir, sizeof tdir, "%s/drrl-bench-trace.XXXXXX", dir);
    if (!mkdtemp(tdir))
        return cli_error(DRRL_E_IO, "%s: cannot create a directory: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/bench.csv", tdir);
    snprintf(json, sizeof json, "%s.json", path);
    int rc = CLI_EXIT_OK;
    double t0 = clock_now_s();
    if (synth_write(path, TRACE_CSV_FORCE, rows, (int)hd, (int)layers, (int)heads, (int)seg,
                    &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    struct stat st;
    double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : NAN;
    printf("trace: %ld rows (%ld layers x %ld heads per step), head_dim %ld, segment %ld, "
           "%.1f MB of CSV, written in %.1f s\n",
           rows, layers, heads, hd, seg, mb, clock_now_s() - t0);
    printf("load (trace_csv_load, %ld CPUs online), each in a fresh process:\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    double secs[1000], rss[1000], store = 0;
    for (int i = 0; i < repeat; i++) {
        if (load_child(path, &secs[i], &rss[i], &store) != 0) {
            rc = cli_error(DRRL_E_INTERNAL, "bench trace: a load run failed");
            goto out;
        }
        printf("  run %d: %.3f s, peak RSS %.1f MB\n", i + 1, secs[i], rss[i]);
        fflush(stdout);
    }
    double ms = bench_median(secs, (int)repeat), mr = bench_median(rss, (int)repeat);
    printf("median: %.3f s, peak RSS %.1f MB (store %.1f MB; %.0f rows/s, %.0f MB/s)\n", ms, mr,
           store, (double)rows / ms, mb / ms);
out:
    unlink(path);
    unlink(json);
    rmdir(tdir);
    return rc;
}
