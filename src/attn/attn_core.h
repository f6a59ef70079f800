/* attn_core.h: DR-RL's attention core, plugged into the forward pass through
 * its attention hook (forward.h).
 *
 * Per (layer, kv head) it keeps, for keys and for values, the Gram matrix of
 * all completed segments (double), an orthonormal basis B (d x d, columns by
 * decreasing singular value) and the projected cache X B (stored transposed,
 * (d, cap), so the first r basis directions are r contiguous rows). Per
 * (layer, query head, segment) the method picks a rank r; the head then runs
 *   scores  (Q B_K[:, :r]) (K B_K[:, :r])^T * scale        inner dimension r
 *   probs   causal softmax
 *   output  (P (V B_V[:, :r])) B_V[:, :r]^T                 inner dimension r
 * and never rebuilds dense Q or K. r == head_dim runs exact attention
 * (forward_attn_exact). The first segment is exact (no basis yet); a basis
 * comes from completed segments only, so no token depends on a later token.
 *
 * At each segment boundary the completed segment is folded into the Grams and
 * each basis is KEPT (stale) or RECOMPUTED, decided by the bounds, cheapest
 * test first: kept when its exact residual energy is within (1 + rot_tol)
 * of a Weyl lower bound on the Eckart-Young optimum (no eigensolve), or when
 * Davis-Kahan bounds the rotation of every rank in use by rot_tol, or when
 * the residual is within (1 + rot_tol) of the optimum from G's eigenvalues;
 * otherwise eigenvectors are recomputed and the projected cache is
 * re-projected from the raw cache at the width in use (2 t D w FLOPs, never
 * more than rotating it, (K B_old)(B_old^T B_new) at 2 t D^2). The projected
 * caches hold only the w leading directions any head of the kv group uses.
 * Refresh and projection run per (kv head, side) on the forward's threads
 * (attn_core_bind_pool). Each
 * decision is counted (attn_core_stats) per (layer, kv head, side, boundary).
 *
 * Calls: forward_tokens() calls must not cross a segment boundary (drive the
 * forward one segment, or one token, at a time; session.h does), except
 * with a layer-major method (attn_core_layer_major): a call may then span
 * several segments, which the forward cuts into pieces at the boundaries
 * (the hook's segment, forward.h); the core keeps what each piece's records
 * show. After each forward_tokens(), call attn_core_finish_call() to fold
 * the call's per-row results into the FLOP ledgers and statistics and to
 * emit TraceRecords (once for the call, or once per run of its segments).
 *
 * Thread safety: the hook's head() runs concurrently for different (head,
 * rows) pairs and writes only its own rows' slots; everything shared is
 * written in layer_begin on the calling thread.
 */
#ifndef DRRL_ATTN_CORE_H
#define DRRL_ATTN_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "attn/flops.h"
#include "model/forward.h"
#include "attn/method.h"
#include "model/model.h"
#include "base/status.h"
#include "trace/trace.h"

typedef struct AttnCoreConfig {
    Method method;
    int32_t segment;       /* T >= 1 (default 128) */
    int32_t r_min, r_step; /* rank grid (0: defaults, see method_grid) */
    uint64_t seed;         /* random:A-B and performer features */
    int measure;           /* compute exact attention alongside: measured error,
                              fidelity, bound violations */
    double eps;            /* safety threshold eps_t on the guard's estimate of the
                              relative head-output error (guard.h); NAN (the
                              default) = auto: the policy's trained floor for drrl
                              (policy_agent_prepare), else ATTN_CORE_EPS */
    int32_t guard_rows;    /* rows of the completed segment the guard re-runs
                              (0: GUARD_ROWS) */
    int guard_envelope;    /* 1: the guard's envelope scan down from the largest
                              rank, as before 2026-12-08 (tests, comparisons);
                              0 (default): the scan up (guard.h) */
    double rot_tol;        /* keep a stale basis while the bounds allow (above); < 0:
                              always recompute */
    int keep_queries;      /* keep every query (for attn_core_query: the views) */
    int lowrank_at_full;   /* run the rank-r kernel even at r == head_dim (tests:
                              it must then equal exact attention to 1e-5) */
    int no_guard;          /* skip the guard where it does not bind the method
                              (fixed, random: method_is_guarded): it is then
                              instrumentation that nobody reads (no measured rows,
                              no trace, no view); the estimate is NaN and no rank
                              is masked */
    int32_t fine_rows;     /* query rows per head call in a segment where every
                              head runs the rank-r kernel and nothing is measured
                              (0: ATTN_CORE_FINE_ROWS); the same bits for any
                              value (tests compare) */
} AttnCoreConfig;

#define ATTN_CORE_EPS 0.25 /* the safety threshold when nothing else sets it */

/* Defaults: full, T = 128, default grid, seed 0, measure on, eps auto (NAN,
 * see eps above), rot_tol 0.1. */
void attn_core_config_default(AttnCoreConfig *c);

/* What a rank chooser (the DR-RL policy) sees at a (layer, segment) decision.
 * Arrays are (n_head, grid.n) row-major; owned by the core, valid during the
 * call only. */
typedef struct AttnDecision {
    int32_t layer, segment, n_head, head_dim;
    const RankGrid *grid;
    const int32_t *prev_rank; /* (n_head) */
    const double *energy;     /* (n_head, n): key energy kept at each rank */
    const double *energy_v;   /* (n_head, n): value energy kept at each rank */
    const double *bound;      /* (n_head, n): relative K/V tail bound at each rank
                                 (proven, non-increasing in rank) */
    const double *guard;      /* (n_head, n): the guard's estimate of the relative
                                 output error (guard.h; an ESTIMATE, non-increasing) */
    const uint8_t *mask;      /* (n_head, n): 1 = allowed: guard <= eps, or exact
                                 (the rank in force gets no exemption) */
    const float *q;           /* (n_q, H*D) queries of the segment's first call */
    size_t n_q;
    double *policy_flops; /* out: the chooser adds the FLOPs it executed; they
                             are charged to FLOPS_POLICY, split over the heads */
} AttnDecision;

/* Fill rank[h] (a grid rank allowed by the mask) for every head; optionally
 * probs (n_head, grid.n) and value (n_head); return an error to stop. */
typedef DrrlStatus (*AttnChooser)(void *ctx, const AttnDecision *dec, int32_t *rank,
                                  float *probs, double *value, DrrlError *err);

typedef struct AttnCore AttnCore;

/* A core for model config cfg; checks the method against head_dim
 * (DRRL_E_USAGE). drrl needs a chooser (attn_core_set_chooser) before the
 * first segment boundary, else DRRL_E_USAGE then. */
DrrlStatus attn_core_new(const ModelConfig *cfg, const AttnCoreConfig *c, AttnCore **out,
                         DrrlError *err);
void attn_core_free(AttnCore *ac);
void attn_core_set_chooser(AttnCore *ac, AttnChooser fn, void *ctx);

/* Where the core reads the forward's KV cache (forward_cache_k/v in a
 * session; tests pass their own): (len, D) rows of layer l, kv head g. */
typedef const float *(*AttnCacheFn)(const void *ctx, int l, int g);
void attn_core_bind_cache(AttnCore *ac, AttnCacheFn k, AttnCacheFn v, const void *ctx);

/* Run the segment-boundary work (Gram updates, eigensolves, re-projection,
 * the guard) and the projection of new rows on f's worker threads
 * (forward_parallel), one (kv head, side) or one head per task: the forward
 * that drives the hook. Unbound (the default), it runs on the calling
 * thread. Either way the same numbers. */
void attn_core_bind_pool(AttnCore *ac, Forward *f);

/* The hook to install with forward_set_attn (ctx = ac). */
ForwardAttn attn_core_hook(AttnCore *ac);

/* Whether calls may span several segments ("layer-major": forward.h,
 * ForwardAttn.segment): the method decides a layer's ranks from that
 * layer's own state (its earlier segments' keys, values, bases and guard
 * replays) and nothing run-wide, so running layer l of several segments
 * before layer l+1 of the first changes no number: full, fixed, energy,
 * oracle. Not random (one generator across layers), drrl (its policy reads
 * the records of the segment before), performer and nystrom. A call that
 * spans segments with another method fails (DRRL_E_INTERNAL). */
int attn_core_layer_major(const AttnCore *ac);
/* Bytes the core holds per row of a call (its per-(layer, head) row
 * statistics), to size calls by. */
size_t attn_core_row_bytes(const AttnCore *ac);

/* Reserve room for n positions in the core's caches (optional: they grow
 * by doubling otherwise). DRRL_E_NOMEM. */
DrrlStatus attn_core_reserve(AttnCore *ac, size_t n, DrrlError *err);

/* Forget all state (new sequence); keeps memory. */
void attn_core_reset(AttnCore *ac);

/* After forward_tokens(f, ids, n, ...) at positions pos0..pos0+n-1 (or, for
 * a call over several segments, after it for each run of whole segments of
 * it in turn, the last maybe partial): update
 * the ledgers (model FLOPs outside attention are counted here by closed form
 * from the config), the run statistics, and, if n_sinks > 0, emit one
 * TraceRecord per (token, layer, head) to every sink in order. tokens: n
 * token texts for the records (NULL: empty). */
DrrlStatus attn_core_finish_call(AttnCore *ac, size_t pos0, size_t n, const char *const *tokens,
                                 TraceSink *sinks, int n_sinks, DrrlError *err);

/* Ledgers: what ran, and what the exact model would have run. */
const FlopLedger *attn_core_flops_executed(const AttnCore *ac);
const FlopLedger *attn_core_flops_exact(const AttnCore *ac);

typedef struct AttnCoreStats {
    int64_t tokens;
    int64_t rows;            /* (token, layer, head) rows measured */
    double fidelity_sum;     /* sum of cos(o_exact, o~) over measured rows */
    int64_t violations;      /* rows whose measured error exceeded a bound */
    int64_t lowrank_rows;    /* measured rows run at a rank below head_dim */
    int64_t guarded_rows;    /* ... whose rank the guard allowed (estimate <= eps) */
    int64_t guard_exceeded;  /* ... of those, measured relative error > eps */
    int64_t forced_rows;     /* low-rank rows at a rank the guard flagged: only an
                                unguarded method (fixed, random) runs one */
    int64_t bound_vacuous;   /* low-rank rows whose proven relative output bound is
                                >= 1 (infinite included): it certifies nothing */
    int64_t guard_decisions; /* rank decisions of a guarded method (method_is_guarded) */
    int64_t guard_raised;    /* ... where the guard flagged the method's rank and raised
                                it to the smallest allowed one (never for drrl, whose
                                policy chooses among the allowed ranks) */
    int64_t refresh_keep, refresh_recompute; /* basis refresh decisions */
    int64_t refresh_keep_stale; /* ... kept on an earlier boundary's eigenvalues (no solve) */
    int64_t refresh_eigvals;    /* eigenvalue-only solves at boundaries */
    double attn_wall_s;         /* wall time inside the hook (all threads) */
    /* FLOP totals over every token so far, summed in trace order (token, layer,
     * head), so the trace's rows add up to them exactly; savings from them
     * with flops_savings. Whole model: every category; attention core: the
     * flops_cat_is_attn categories (the sums of the rows' flops_exact and
     * flops_executed). */
    double flops_exact, flops_executed;
    double attn_flops_exact, attn_flops_executed;
} AttnCoreStats;
const AttnCoreStats *attn_core_stats(const AttnCore *ac);
/* Median over measured low-rank rows of (proven output bound) / (measured
 * output error), rows with a zero error left out; NAN when there is none. */
double attn_core_bound_ratio_median(const AttnCore *ac);
/* The ratios themselves, in row order (valid until the next call or reset);
 * *n gets their number. */
const double *attn_core_bound_ratios(const AttnCore *ac, size_t *n);
/* Median of n values (sorted in place); NAN when n is 0. */
double attn_core_median(double *v, size_t n);

/* The last emitted state of one head (for views): rank in force. */
int32_t attn_core_rank(const AttnCore *ac, int32_t layer, int32_t head);
const RankGrid *attn_core_grid(const AttnCore *ac);
const char *attn_core_method(const AttnCore *ac);
/* Whether the safety guard binds the method's ranks (method_is_guarded). */
int attn_core_guarded(const AttnCore *ac);
/* The safety threshold in force (auto resolved). */
double attn_core_eps(const AttnCore *ac);
/* Change the safety threshold; it applies from the next rank decision. */
void attn_core_set_eps(AttnCore *ac, double eps);

/* The post-RoPE query of (layer, head) at position pos, D floats, or NULL
 * (keep_queries off, or pos not run yet). Valid until the next forward call. */
const float *attn_core_query(const AttnCore *ac, int32_t layer, int32_t head, size_t pos);

/* Approximate attention probabilities of one query row as this core computes
 * them (for the attention pane): the query q (D floats, post-RoPE), the
 * forward's cache k, v of its kv head ((n_keys, D)). Writes n_keys probs and,
 * if exact_probs is non-NULL, the exact ones. Uses the basis and rank in
 * force now. Performer and Nystrom form no attention matrix: their rows are
 * the weights their prefix sums apply implicitly (Nystrom's from the
 * landmarks in force now; exact in its first segment). */
DrrlStatus attn_core_row_probs(AttnCore *ac, int32_t layer, int32_t head, const float *q,
                               const float *k, size_t n_keys, float *probs, float *exact_probs,
                               DrrlError *err);

#endif
