/* fixture.h: the small trace and policy metadata that several tests, the
 * TUI's test data (tests/tui_data.c) and the fuzz seed writer
 * (tests/fuzz/seed_writer.c) build. Plain C (no Criterion): the seed writer
 * links it too. */
#ifndef DRRL_TEST_FIXTURE_H
#define DRRL_TEST_FIXTURE_H

#include <stdint.h>

#include "policy/policy_file.h"
#include "trace/trace.h"

/* m from trace_meta_init, then a synthetic trace's metadata: method and seed,
 * n_layer x n_head heads of head_dim, segments of segment_len tokens, the
 * rank grid grid[0..n_grid), the reward weights alpha 1, beta 0.05, gamma 0.1
 * and the threshold schedule eps 0.2 to 0.01 by 0.999 a step. method and grid
 * are borrowed, not copied; version, paths and hashes are left NULL. */
void fixture_trace_meta(TraceMeta *m, const char *method, uint64_t seed, int32_t n_layer,
                        int32_t n_head, int32_t head_dim, int32_t segment_len, int32_t n_grid,
                        int32_t *grid);

/* A small policy's metadata for the model shape s: the grid 2, 4, ..., 2 n_grid,
 * segments of segment tokens, the default reward, budgets 0.3 to 0.9, the
 * threshold schedule 0.5 to 0.05 by 0.99, and steps, seed and command as
 * given; the rest zero (no Adam steps, no PRNG state). */
void fixture_policy_meta(PolicyMeta *m, PolicyModelShape s, int n_grid, int segment,
                         int64_t steps, uint64_t seed, const char *command);

/* The network of a small policy for m: the features of m's grid, the model's
 * layers, heads and convolution input, a causal convolution of conv channels
 * and width conv, and one block of d_model with n_attn_head heads and d_ff. */
PolicyNetConfig fixture_policy_net(const PolicyMeta *m, int conv, int d_model, int n_attn_head,
                                   int d_ff);

#endif
