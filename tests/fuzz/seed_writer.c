/* seed_writer.c: writes the binary seeds that need drrl's own writers:
 * a small trace (CSV + sidecar, joined with a NUL as fuzz_trace_csv reads
 * them) and a small policy file. Built and run by `run.sh seeds`.
 * usage: seed_writer OUTDIR   (writes OUTDIR/trace.csv[.json], OUTDIR/policy.safetensors) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "policy/policy_file.h"
#include "trace/trace_csv.h"

static int write_trace(const char *path, int with_policy)
{
    static int32_t grid[] = {2, 4};
    TraceMeta m;
    fixture_trace_meta(&m, with_policy ? "drrl" : "fixed:2", 7, 1, 2, 4, 2, 2, grid);
    m.drrl_version = "seed";
    m.model_path = "m";
    m.model_hash = "0123456789abcdef";
    m.text_hash = "fedcba9876543210";
    m.eps_decay = 0.99;
    TraceCsvWriter *w;
    DrrlError e;
    if (trace_csv_writer_open(&w, path, &m, TRACE_CSV_FORCE | TRACE_CSV_NO_TIMING, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    static const char *tokens[] = {"The", " cat", ",\n", "\"q\""};
    float sigma[4] = {3, 2, 1, 0.5f}, sigma_v[4] = {2, 1, 0.5f, 0.25f},
          probs[2] = {0.25f, 0.75f};
    int32_t masked[1] = {2};
    for (int s = 0; s < 4; s++)
        for (int h = 0; h < 2; h++) {
            TraceRecord r;
            memset(&r, 0, sizeof r);
            r.step = s;
            r.token_index = s;
            r.token = tokens[s];
            r.segment = s / 2;
            r.layer = 0;
            r.head = h;
            r.method = m.method;
            r.rank = h ? 4 : 2;
            r.head_dim = 4;
            r.energy_kept = 0.9;
            r.n_sigma = 4;
            r.sigma = sigma;
            r.n_sigma_v = h ? 0 : 4;
            r.sigma_v = sigma_v;
            r.tail_bound = 1e-3;
            r.sin_theta_bound = 0.5;
            r.output_bound = 0.03;
            r.threshold = 0.05;
            r.n_masked = h ? 0 : 1;
            r.masked = masked;
            r.measured_error = 1e-4;
            r.fidelity = 0.999;
            r.flops_exact = 64.0 * (s + 1);
            r.flops_executed = 40.0 * (s + 1);
            r.savings_cum = 0.3;
            r.n_policy = with_policy ? 2 : 0;
            r.policy_probs = probs;
            r.value = with_policy ? -0.5 : NAN;
            r.reward = with_policy ? 0.1 : NAN;
            if (trace_csv_writer_put(w, &r, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
        }
    if (trace_csv_writer_finish(w, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    return 0;
}

static int write_policy(const char *path)
{
    PolicyMeta m;
    PolicyModelShape s = {"gpt2", 1, 2, 2, 4, 8, "0123456789abcdef"};
    fixture_policy_meta(&m, s, 2, 2, 1, 1, "seed_writer");
    PolicyNetConfig c = fixture_policy_net(&m, 2, 4, 1, 4);
    PolicyRng r;
    policy_rng_seed(&r, 5);
    PolicyNet *net;
    DrrlError e;
    if (policy_net_new(&c, &r, &net, &e) || policy_file_save(path, net, &m, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    policy_net_free(net);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char p[4096];
    snprintf(p, sizeof p, "%s/trace.csv", argv[1]);
    if (write_trace(p, 0))
        return 1;
    snprintf(p, sizeof p, "%s/trace_policy.csv", argv[1]);
    if (write_trace(p, 1))
        return 1;
    snprintf(p, sizeof p, "%s/policy.safetensors", argv[1]);
    return write_policy(p);
}
