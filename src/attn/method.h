/* method.h: attention methods (--method SPEC) and the rank grid.
 *
 * A method decides, per (layer, head, segment), how a head's attention is
 * computed. Specs (see doc/method.md):
 *   full            exact attention (no basis work at all)
 *   fixed:R         rank R (1 <= R <= head_dim) for every head
 *   fixed:R0/R1/... rank Ri for every head of layer i (one rank per layer)
 *   energy:E        smallest grid rank keeping fraction E (0 < E <= 1) of the
 *                   key and value energy (the paper's "adaptive SVD")
 *   random:A-B      a grid rank drawn uniformly from [A, B], seeded
 *   oracle:EPS      smallest grid rank whose proven bound is <= EPS (EPS > 0)
 *   performer:M     Performer FAVOR+ with M positive orthogonal random features
 *   nystrom:M       causal Nystrom with M landmarks from completed segments
 *   drrl[:POLICY]   the learned policy (POLICY: a policy file; default data/)
 */
#ifndef DRRL_METHOD_H
#define DRRL_METHOD_H

#include <stdint.h>

#include "base/status.h"

typedef enum MethodKind {
    METHOD_FULL = 0,
    METHOD_FIXED,
    METHOD_ENERGY,
    METHOD_RANDOM,
    METHOD_ORACLE,
    METHOD_PERFORMER,
    METHOD_NYSTROM,
    METHOD_DRRL,
    METHOD_KIND_COUNT
} MethodKind;

#define METHOD_SPEC_MAX 256

/* nystrom:M landmark limit: the attention core keeps a row's landmark
 * weights on the stack (method_parse enforces it). */
#define METHOD_NYSTROM_MAX 4096
/* fixed:R0/R1/...: at most this many layers. */
#define METHOD_LAYERS_MAX 256
/* performer:M feature limit. */
#define METHOD_PERFORMER_MAX 65536

typedef struct Method {
    MethodKind kind;
    int32_t rank;          /* fixed:R (per layer: the largest Ri) */
    int32_t n_layer_ranks; /* fixed:R0/R1/...: one rank per layer; 0 = fixed:R */
    int32_t layer_rank[METHOD_LAYERS_MAX];
    double energy;                /* energy:E, in (0, 1] */
    int32_t lo, hi;               /* random:A-B, 1 <= lo <= hi */
    double eps;                   /* oracle:EPS, > 0 */
    int32_t m;                    /* performer:M / nystrom:M, >= 1 */
    char policy[METHOD_SPEC_MAX]; /* drrl:POLICY ("" = default) */
    char spec[METHOD_SPEC_MAX];   /* canonical spec, e.g. "fixed:8" */
} Method;

/* One line listing the valid forms (used in usage errors and --help). */
#define METHOD_FORMS                                                                           \
    "full, fixed:R, fixed:R0/R1/..., energy:E, random:A-B, oracle:EPS, performer:M, "          \
    "nystrom:M, drrl[:POLICY]"

/* Parse spec into *m. A bad spec is DRRL_E_USAGE with a message that names
 * the spec, says what is wrong and lists METHOD_FORMS. */
DrrlStatus method_parse(const char *spec, Method *m, DrrlError *err);

/* In a drrl policy "PATH@B": the '@' that starts the budget suffix, or NULL.
 * Only the last '@' counts, and only when no '/' follows it: an '@' inside a
 * directory name (runs@home/p.safetensors) is part of the path. */
const char *method_budget_at(const char *policy);

/* Check a parsed method against a model's head_dim (fixed:R and random:A-B
 * need ranks <= head_dim) and layer count (fixed:R0/R1/... gives one rank
 * per layer): DRRL_E_USAGE otherwise. */
DrrlStatus method_check(const Method *m, int32_t head_dim, int32_t n_layer, DrrlError *err);

/* The rank fixed:R or fixed:R0/R1/... gives the heads of layer l. */
int32_t method_fixed_rank(const Method *m, int32_t l);

/* Whether the method uses the low-rank basis machinery (fixed, energy,
 * random, oracle, drrl). */
int method_is_lowrank(const Method *m);

/* Whether the safety guard binds the method's ranks (guard.h): the adaptive
 * methods energy, oracle and drrl. Their rank is never one the guard flags:
 * drrl's policy chooses among the allowed ranks only, and a rank that energy
 * or oracle picks and the guard flags is raised to the smallest allowed rank
 * above it (exact when none). fixed:R and random:A-B are unguarded (their
 * ranks are the point of the ablation); the guard is only measured for
 * them. */
int method_is_guarded(const Method *m);

/* The rank grid {r_min, r_min + step, ..., head_dim}: head_dim is always the
 * last entry even when (head_dim - r_min) is not a multiple of step. */
typedef struct RankGrid {
    int32_t n;
    int32_t r[512]; /* ascending, r[n-1] == head_dim */
} RankGrid;

#define RANK_GRID_MAX 512

/* Build the grid. r_min >= 1, step >= 1, r_min <= head_dim <= 4096, and at
 * most RANK_GRID_MAX entries; else DRRL_E_USAGE. r_min = 0 or step = 0 pick
 * defaults: r_min = step = max(1, head_dim / 8). */
DrrlStatus method_grid(RankGrid *g, int32_t head_dim, int32_t r_min, int32_t step,
                       DrrlError *err);

/* Index of the smallest grid rank >= r (n-1 if r > head_dim). */
int32_t method_grid_index(const RankGrid *g, int32_t r);

#endif
