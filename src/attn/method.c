#include "attn/method.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static DrrlStatus bad(DrrlError *err, const char *spec, const char *why)
{
    return drrl_error(err, DRRL_E_USAGE, "--method '%s': %s (valid forms: %s)", spec, why,
                      METHOD_FORMS);
}

/* Strict integer: all of s, in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int32_t *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static int parse_dbl(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

const char *method_budget_at(const char *policy)
{
    const char *at = strrchr(policy, '@');
    return at && !strchr(at, '/') ? at : NULL;
}

DrrlStatus method_parse(const char *spec, Method *m, DrrlError *err)
{
    memset(m, 0, sizeof *m);
    if (!spec || !*spec)
        return bad(err, spec ? spec : "", "empty method");
    if (strlen(spec) >= METHOD_SPEC_MAX)
        return bad(err, "...", "spec too long");
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
#define IS(name) (nlen == strlen(name) && strncmp(spec, name, nlen) == 0)
    if (IS("full")) {
        if (arg)
            return bad(err, spec, "'full' takes no argument");
        m->kind = METHOD_FULL;
        snprintf(m->spec, sizeof m->spec, "full");
    } else if (IS("fixed")) {
        m->kind = METHOD_FIXED;
        if (arg && strchr(arg, '/')) { /* one rank per layer */
            size_t o = (size_t)snprintf(m->spec, sizeof m->spec, "fixed:");
            for (const char *p = arg;;) {
                const char *sl = strchr(p, '/');
                size_t len = sl ? (size_t)(sl - p) : strlen(p);
                char a[32];
                int32_t r;
                if (len >= sizeof a || m->n_layer_ranks == METHOD_LAYERS_MAX)
                    return bad(err, spec, "fixed:R0/R1/... needs one rank >= 1 per layer");
                memcpy(a, p, len);
                a[len] = 0;
                if (parse_int(a, 1, 1 << 20, &r))
                    return bad(err, spec, "fixed:R0/R1/... needs one rank >= 1 per layer");
                m->layer_rank[m->n_layer_ranks++] = r;
                m->rank = r > m->rank ? r : m->rank;
                o += (size_t)snprintf(m->spec + o, sizeof m->spec - o, "%s%d",
                                      m->n_layer_ranks > 1 ? "/" : "", (int)r);
                if (!sl)
                    break;
                p = sl + 1;
            }
        } else if (!arg || parse_int(arg, 1, 1 << 20, &m->rank)) {
            return bad(err, spec, "fixed:R needs an integer rank R >= 1");
        } else {
            snprintf(m->spec, sizeof m->spec, "fixed:%d", (int)m->rank);
        }
    } else if (IS("energy")) {
        if (!arg || parse_dbl(arg, &m->energy) || !(m->energy > 0.0 && m->energy <= 1.0))
            return bad(err, spec, "energy:E needs a fraction 0 < E <= 1");
        m->kind = METHOD_ENERGY;
        snprintf(m->spec, sizeof m->spec, "energy:%g", m->energy);
    } else if (IS("random")) {
        const char *dash = arg ? strchr(arg, '-') : NULL;
        char a[32], b[32];
        if (!dash || (size_t)(dash - arg) >= sizeof a || strlen(dash + 1) >= sizeof b)
            return bad(err, spec, "random:A-B needs two ranks 1 <= A <= B");
        memcpy(a, arg, (size_t)(dash - arg));
        a[dash - arg] = 0;
        strcpy(b, dash + 1);
        if (parse_int(a, 1, 1 << 20, &m->lo) || parse_int(b, 1, 1 << 20, &m->hi) ||
            m->lo > m->hi)
            return bad(err, spec, "random:A-B needs two ranks 1 <= A <= B");
        m->kind = METHOD_RANDOM;
        snprintf(m->spec, sizeof m->spec, "random:%d-%d", (int)m->lo, (int)m->hi);
    } else if (IS("oracle")) {
        if (!arg || parse_dbl(arg, &m->eps) || !(m->eps > 0.0))
            return bad(err, spec, "oracle:EPS needs a bound EPS > 0");
        m->kind = METHOD_ORACLE;
        snprintf(m->spec, sizeof m->spec, "oracle:%g", m->eps);
    } else if (IS("performer") || IS("nystrom")) {
        int perf = IS("performer");
        if (!arg || parse_int(arg, 1, perf ? METHOD_PERFORMER_MAX : METHOD_NYSTROM_MAX, &m->m))
            return bad(err, spec,
                       perf ? "performer:M needs a feature count 1 <= M <= 65536"
                            : "nystrom:M needs a landmark count 1 <= M <= 4096");
        m->kind = perf ? METHOD_PERFORMER : METHOD_NYSTROM;
        snprintf(m->spec, sizeof m->spec, "%s:%d", perf ? "performer" : "nystrom", (int)m->m);
    } else if (IS("drrl")) {
        m->kind = METHOD_DRRL;
        if (arg) {
            if (!*arg)
                return bad(err, spec, "drrl:POLICY needs a policy path after ':'");
            snprintf(m->policy, sizeof m->policy, "%s", arg);
        }
        snprintf(m->spec, sizeof m->spec, "%s", spec);
    } else {
        return bad(err, spec, "unknown method");
    }
#undef IS
    return DRRL_OK;
}

DrrlStatus method_check(const Method *m, int32_t head_dim, int32_t n_layer, DrrlError *err)
{
    if (m->kind == METHOD_FIXED && m->n_layer_ranks && m->n_layer_ranks != n_layer)
        return drrl_error(err, DRRL_E_USAGE,
                          "--method '%s': %d ranks for the model's %d layers (give one per "
                          "layer)",
                          m->spec, (int)m->n_layer_ranks, (int)n_layer);
    if (m->kind == METHOD_FIXED && m->rank > head_dim)
        return drrl_error(err, DRRL_E_USAGE,
                          "--method '%s': rank %d exceeds the model's head_dim %d", m->spec,
                          (int)m->rank, (int)head_dim);
    if (m->kind == METHOD_RANDOM && m->hi > head_dim)
        return drrl_error(err, DRRL_E_USAGE,
                          "--method '%s': rank %d exceeds the model's head_dim %d", m->spec,
                          (int)m->hi, (int)head_dim);
    return DRRL_OK;
}

int32_t method_fixed_rank(const Method *m, int32_t l)
{
    return m->n_layer_ranks && l >= 0 && l < m->n_layer_ranks ? m->layer_rank[l] : m->rank;
}

int method_is_lowrank(const Method *m)
{
    return m->kind == METHOD_FIXED || m->kind == METHOD_ENERGY || m->kind == METHOD_RANDOM ||
           m->kind == METHOD_ORACLE || m->kind == METHOD_DRRL;
}

int method_is_guarded(const Method *m)
{
    return m->kind == METHOD_ENERGY || m->kind == METHOD_ORACLE || m->kind == METHOD_DRRL;
}

DrrlStatus method_grid(RankGrid *g, int32_t head_dim, int32_t r_min, int32_t step,
                       DrrlError *err)
{
    g->n = 0;
    if (head_dim < 1 || head_dim > 4096)
        return drrl_error(err, DRRL_E_USAGE, "rank grid: head_dim %d out of range [1, 4096]",
                          (int)head_dim);
    int32_t def = head_dim / 8 > 1 ? head_dim / 8 : 1;
    if (r_min == 0)
        r_min = def;
    if (step == 0)
        step = def;
    if (r_min < 1 || r_min > head_dim || step < 1)
        return drrl_error(err, DRRL_E_USAGE,
                          "rank grid: need 1 <= r_min <= head_dim (%d) and step >= 1, got "
                          "r_min %d step %d",
                          (int)head_dim, (int)r_min, (int)step);
    for (int32_t r = r_min; r < head_dim; r += step) {
        if (g->n >= RANK_GRID_MAX - 1)
            return drrl_error(err, DRRL_E_USAGE, "rank grid: more than %d ranks",
                              RANK_GRID_MAX);
        g->r[g->n++] = r;
    }
    g->r[g->n++] = head_dim;
    return DRRL_OK;
}

int32_t method_grid_index(const RankGrid *g, int32_t r)
{
    for (int32_t i = 0; i < g->n; i++)
        if (g->r[i] >= r)
            return i;
    return g->n - 1;
}
