/* fixture.c: see fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <string.h>

#include "policy/policy_features.h"

void fixture_trace_meta(TraceMeta *m, const char *method, uint64_t seed, int32_t n_layer,
                        int32_t n_head, int32_t head_dim, int32_t segment_len, int32_t n_grid,
                        int32_t *grid)
{
    trace_meta_init(m);
    m->method = (char *)method;
    m->seed = seed;
    m->n_layer = n_layer;
    m->n_head = n_head;
    m->head_dim = head_dim;
    m->segment_len = segment_len;
    m->n_grid = n_grid;
    m->rank_grid = grid;
    m->alpha = 1.0;
    m->beta = 0.05;
    m->gamma = 0.1;
    m->eps_start = 0.2;
    m->eps_floor = 0.01;
    m->eps_decay = 0.999;
}

void fixture_policy_meta(PolicyMeta *m, PolicyModelShape s, int n_grid, int segment,
                         int64_t steps, uint64_t seed, const char *command)
{
    memset(m, 0, sizeof *m);
    m->n_grid = n_grid;
    for (int i = 0; i < n_grid; i++)
        m->grid[i] = 2 * (i + 1);
    m->segment = segment;
    policy_reward_defaults(&m->reward);
    m->budget_lo = 0.3;
    m->budget_hi = 0.9;
    m->eps_start = 0.5;
    m->eps_floor = 0.05;
    m->eps_decay = 0.99;
    m->model = s;
    m->steps = steps;
    m->seed = seed;
    snprintf(m->command, sizeof m->command, "%s", command);
}

PolicyNetConfig fixture_policy_net(const PolicyMeta *m, int conv, int d_model, int n_attn_head,
                                   int d_ff)
{
    PolicyNetConfig c = {
        .n_feat = policy_features_count(m->n_grid),
        .conv_in = policy_features_conv_width(m->model.n_kv_head, m->model.head_dim),
        .conv_kernel = conv,
        .conv_out = conv,
        .n_layer = m->model.n_layer,
        .n_head = m->model.n_head,
        .n_action = m->n_grid,
        .d_model = d_model,
        .n_attn_head = n_attn_head,
        .d_ff = d_ff,
        .n_block = 1,
    };
    return c;
}
