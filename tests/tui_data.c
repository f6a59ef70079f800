/* tui_data.c: deterministic TraceStore contents for TUI tests (tui_data.h). */
#include "config.h"

#include "tui_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static const char *words[] = {
    "The",   " quick", " brown",     " fox",        " jumps", " over", " the",       " lazy",
    " dog",  ".",      "\n",         "Low",         "-",      "rank",  " attention", " keeps",
    " only", " the",   " strongest", " directions", " of",    " each", " head",      ",",
    " and",  " the",   " bounds",    " say",        " how",   " much", " that",      " can",
    " cost", ".",      " 東京",      " is",         " far",   " away", "!",          "\n",
};
#define N_WORDS ((int)(sizeof words / sizeof words[0]))

TraceStore *tui_data_store(int n_steps, int L, int H, int d, bool policy)
{
    TraceStore *s = trace_store_new();
    if (!s)
        return NULL;
    int32_t grid[5] = {d / 8, d / 4, d / 2, 3 * d / 4, d};
    TraceMeta m;
    fixture_trace_meta(&m, "drrl", 7, L, H, d, 8, 5, grid);
    m.model_path = "tests/tui-data";
    m.n_steps = n_steps;
    m.eps_floor = 0.2; /* a constant threshold */
    m.eps_decay = 0;
    DrrlError err;
    if (trace_store_set_meta(s, &m, &err) != DRRL_OK) {
        trace_store_free(s);
        return NULL;
    }
    float sig[256], sigv[256], probs[5];
    int32_t masked[5];
    for (int t = 0; t < n_steps; t++) {
        int seg = t / 8;
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                /* decay rate varies by head and drifts by segment */
                double k = 0.08 + 0.05 * ((l * 7 + h * 3) % 9) + 0.02 * ((seg + l + h) % 3);
                double total = 0, totv = 0;
                for (int i = 0; i < d; i++) {
                    sig[i] = (float)((4.0 + l) * exp(-k * i));
                    sigv[i] = (float)((3.0 + h) * exp(-0.8 * k * i));
                    total += (double)sig[i] * sig[i];
                    totv += (double)sigv[i] * sigv[i];
                }
                (void)totv;
                /* the smallest grid rank keeping 95% of the key energy */
                int rank = d, gi = 4;
                for (int g = 0; g < 5; g++) {
                    double kept = 0;
                    for (int i = 0; i < grid[g]; i++)
                        kept += (double)sig[i] * sig[i];
                    if (kept / total >= 0.95) {
                        rank = grid[g];
                        gi = g;
                        break;
                    }
                }
                if (seg == 0) { /* the first segment runs exact */
                    rank = d;
                    gi = 4;
                }
                double kept = 0;
                for (int i = 0; i < rank; i++)
                    kept += (double)sig[i] * sig[i];
                double tail = sqrt(fmax(0, 1 - kept / total));
                int nm = 0;
                for (int g = 0; g < 4; g++) {
                    double kg = 0;
                    for (int i = 0; i < grid[g]; i++)
                        kg += (double)sig[i] * sig[i];
                    if (1.5 * sqrt(fmax(0, 1 - kg / total)) > 0.2 && grid[g] != rank)
                        masked[nm++] = grid[g];
                }
                double tt = t + 1;
                double fe = 4.0 * tt * d;
                double fx = rank == d ? fe : 4.0 * tt * rank + 2.0 * rank * d;
                double sum = 0;
                for (int g = 0; g < 5; g++) {
                    bool mk = false;
                    for (int j = 0; j < nm; j++)
                        mk |= masked[j] == grid[g];
                    probs[g] = mk ? 0.0f : (float)exp(-1.5 * fabs((double)(g - gi)));
                    sum += probs[g];
                }
                for (int g = 0; g < 5; g++)
                    probs[g] = (float)(probs[g] / sum);
                double fid = 1 - 0.5 * tail * tail;
                TraceRecord r = {
                    .step = t,
                    .token_index = t,
                    .token = words[t % N_WORDS],
                    .segment = seg,
                    .layer = l,
                    .head = h,
                    .method = "drrl",
                    .rank = rank,
                    .head_dim = d,
                    .energy_kept = kept / total,
                    .n_sigma = d,
                    .sigma = sig,
                    .n_sigma_v = d,
                    .sigma_v = sigv,
                    .tail_bound = tail,
                    .sin_theta_bound = fmin(1, 0.1 + 0.3 * tail),
                    .output_bound = 1.5 * tail,
                    .threshold = 0.2,
                    .n_masked = nm,
                    .masked = masked,
                    .measured_error = 0.3 * tail,
                    .guard_estimate = 0.4 * tail,
                    .fidelity = fid,
                    .flops_exact = fe,
                    .flops_executed = fx,
                    /* whole-model savings: the same on every row of a step */
                    .savings_cum = 0.004 * t - 0.05,
                    .n_policy = policy ? 5 : 0,
                    .policy_probs = policy ? probs : NULL,
                    .value = policy ? 0.9 - 0.01 * l : NAN,
                    .reward = policy ? fid - 0.05 * fx / fe - 0.1 * 0.02 * h : NAN,
                    .wall_ns = 1000 + 10 * (int64_t)tt * rank,
                };
                if (trace_store_put(s, &r, &err) != DRRL_OK) {
                    fprintf(stderr, "tui_data: %s\n", err.msg);
                    trace_store_free(s);
                    return NULL;
                }
            }
    }
    return s;
}
