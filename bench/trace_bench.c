/* trace_bench: writes synthetic traces and times loading them (bench/trace_load.sh).
 *
 *   trace_bench gen OUT.csv ROWS [HEAD_DIM [LAYERS [HEADS [SEGMENT]]]]
 *       writes a trace of ROWS rows (LAYERS x HEADS rows per step) through
 *       drrl's own writer. SEGMENT 0 (default): every row has fresh spectra and
 *       policy outputs, the worst case for the store; SEGMENT T > 0: they change
 *       every T steps, as when decisions and bases refresh per segment.
 *   trace_bench load TRACE.csv
 *       loads it with trace_csv_load (the call drrl replay makes) and prints
 *       one line: seconds, rows, store bytes, peak RSS (getrusage ru_maxrss).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "trace_csv.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uniform(void)
{
    rng ^= rng << 13; /* xorshift64 (Marsaglia 2003) */
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int gen(const char *out, long rows, int hd, int layers, int heads, int seg)
{
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
    DrrlError e;
    if (trace_csv_writer_open(&w, out, &m, TRACE_CSV_FORCE, &e)) {
        fprintf(stderr, "trace_bench: %s\n", e.msg);
        return 1;
    }
    size_t cells = (size_t)layers * (size_t)heads;
    float *sig = malloc(cells * (size_t)hd * sizeof *sig);
    float *sigv = malloc(cells * (size_t)hd * sizeof *sigv);
    float *pol = malloc(cells * 4 * sizeof *pol);
    int32_t *ranks = malloc(cells * sizeof *ranks);
    int32_t masked[3];
    static const char *words[] = {"the", " of", " and", ",", " to", " a", " in", "\"",
                                  " that", " is", "\n", " was", " he", " it", " for", "."};
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
            r.n_masked = (int32_t)(uniform() * 3);
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
            if (trace_csv_writer_put(w, &r, &e)) {
                fprintf(stderr, "trace_bench: %s\n", e.msg);
                trace_csv_writer_abort(w);
                return 1;
            }
        }
    }
    free(sig);
    free(sigv);
    free(pol);
    free(ranks);
    if (trace_csv_writer_finish(w, 0, &e)) {
        fprintf(stderr, "trace_bench: %s\n", e.msg);
        return 1;
    }
    return 0;
}

static int load(const char *path)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    TraceStore *s;
    DrrlError e;
    if (trace_csv_load(path, &s, &e)) {
        fprintf(stderr, "trace_bench: %s\n", e.msg);
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    /* Seek to the middle and the end, as a replay would. */
    int64_t n = trace_store_n_steps(s);
    if (n > 0 && (!trace_store_get(s, trace_store_step_at(s, (size_t)n / 2), 0, 0) ||
                  !trace_store_get(s, trace_store_step_at(s, (size_t)n - 1), 0, 0))) {
        fprintf(stderr, "trace_bench: lookup failed\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("load_s %.3f rows %zu store_mb %.1f maxrss_mb %.1f\n", secs, trace_store_n_rows(s),
           (double)trace_store_bytes(s) / 1048576.0, (double)ru.ru_maxrss / 1024.0);
    trace_store_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], atol(argv[3]), argc > 4 ? atoi(argv[4]) : 16,
                   argc > 5 ? atoi(argv[5]) : 8, argc > 6 ? atoi(argv[6]) : 8,
                   argc > 7 ? atoi(argv[7]) : 0);
    if (argc == 3 && strcmp(argv[1], "load") == 0)
        return load(argv[2]);
    fprintf(stderr, "usage: trace_bench gen OUT ROWS [HEAD_DIM [LAYERS [HEADS [SEGMENT]]]]\n"
                    "       trace_bench load TRACE.csv\n");
    return 2;
}
