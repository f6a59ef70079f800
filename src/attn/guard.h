/* guard.h: the safety guard's output-level ESTIMATE (not a bound).
 *
 * The safety mask must guard what a user cares about, the head output, and
 * the quantity it compares with the threshold must be non-increasing in rank
 * (else it masks the safer ranks). No proven output bound is informative on
 * the shipped model before a segment's queries are known, so the guard
 * measures instead, causally: at a segment boundary it re-runs a few query
 * rows of the COMPLETED segment (their queries, keys and values are all in
 * the past) exactly and at rank r on the bases that were in force while
 * it ran (so, like the next segment's rows, they attend recent keys the
 * bases never saw), and takes the largest relative output error
 *   e(r) = max over sampled rows of ||o - o_r||_2 / ||o||_2
 * (||o - o_r|| when o = 0). Scanning the grid up from its smallest rank,
 * the first rank r* with c e(r*) <= eps (c the margin) is the smallest safe
 * rank, and
 *   g(r) = c e(r) below r*, c e(r*) at and above it (not replayed above;
 *   exact, r = head_dim, is 0 as always),
 * made non-increasing below r* (a failing rank's e, a lower bound when its
 * rows stopped early, raised to the next one's), so the ranks with
 * g(r) <= eps are exactly {r >= r*}. Until 2026-12-08 the guard scanned
 * down and formed the envelope g(r) = c max over r' >= r of e(r'), which
 * also masks r when any rank above it fails, at the cost of a replay of
 * every rank above r* (kept: AttnCoreConfig.guard_envelope; tests compare
 * the two). The scan up differs where a rank above r* would fail on its
 * own: measured with the shipped model and policy (drrl, first 8 KiB at
 * L = 4,096), r* was below the envelope's smallest safe rank in 56 of the
 * first 1,500 (layer, head, segment) estimates on Brown valid and 47 of
 * 1,500 on GPL-3; the low-rank rows over eps at allowed ranks went from
 * 1.68% to 1.71% of 106,752 / 106,880 (first 4,096 tokens of Brown valid),
 * and the guard's replay from 5.47% to 3.21% of the whole model's
 * exact FLOPs (README, "What the guards guarantee"). g is an
 * estimate of a high quantile (about the 90th percentile) of the next
 * segment's row errors, not a bound: the next rows have other queries and
 * more keys. Everything that shows it calls it an estimate.
 *
 * Why a margin (c = GUARD_MARGIN = 2), measured: the largest error over 4
 * sampled rows is near the MEDIAN of the next segment's row errors, not its
 * 90th percentile (on Brown valid, 2,048 tokens, the next segment's 90th
 * percentile over g at c = 1 has median 1.3-1.9 and 75th percentile
 * 1.6-2.5 across (segment, head)), and 8 or 32 rows instead of 4 did not
 * close the gap (70-80% of allowed rows within eps) at 2-8x the cost.
 * Calibrated on Brown valid only (offsets 0 and 300000, 2,048 tokens,
 * drrl at eps 0.5, 4 rows), the fraction of low-rank rows at ranks the
 * guard allowed whose measured error was <= eps: c = 1: 0.78 / 0.78;
 * 1.5: 0.86 / 0.85; 2: 0.92 / 0.91; 2.5: 0.96 / 0.94. c = 2 is the
 * smallest of these over 0.9 on both. README "What the guards guarantee"
 * gives the numbers on unseen text.
 *
 * No evidence, no low rank: when the bases in force already saw the keys
 * of the segment being replayed (the second segment, whose replay of the
 * first runs on the basis fitted to it), the replay is in-sample and
 * optimistic (42-82% of the next segment's allowed rows exceeded eps in
 * measurement); the guard then reports +inf for every rank below head_dim
 * (guard_no_evidence) and evaluates nothing.
 *
 * What it binds (method.h, method_is_guarded): the mask allows exact and
 * the ranks with g(r) <= eps, and the rank in force has no exemption;
 * drrl's policy chooses among them, and energy's and
 * oracle's flagged picks are raised to the smallest allowed rank. fixed and
 * random are unguarded (only measured).
 *
 * Its work (the exact and rank-r attention of the sampled rows) is real and
 * the engine charges it to the FLOP ledger (FLOPS_GUARD) for the methods it
 * binds, less what the forward already computed (o_fwd below: the sampled
 * rows' outputs at the rank the head ran, exact where it ran exact). Cost
 * measured on GPL-3 at 2,048 tokens (drrl, this 2-core AMD EPYC): 7.2% of
 * exact attention with every row and rank replayed; 3.1% with the scan's
 * early stop inside the failing rank and the forward's exact outputs
 * reused; 2.8% with its rank-r outputs reused too; the same decisions in
 * all three. Tried and not kept: accepting a rank after 2 of the 4 rows
 * when their estimate is under half of eps (about 0.6 percentage points of
 * attention saved for drrl) held 0.91-0.94 of low-rank rows within eps on
 * Brown valid and the unseen texts, but at 0.7 of eps it fell to 0.887 on
 * Brown valid: too little margin left for what it saves.
 *
 * Ranks within the projected caches' widths (the engine's P = x B, in the
 * very bases the guard replays on: it runs before the boundary's refresh)
 * replay from them at a rank-r row's cost, and a row's next lower rank
 * only drops directions from its score sums (GuardInput: Pk, Pv). On the
 * default model (data/model, drrl run --seq-len 4096, first 4 KiB of Brown
 * valid, this 2-core AMD EPYC) that took the guard from 7.99% to 6.32% of
 * the whole model's exact FLOPs for drrl (8.07% to 6.25% for energy:0.9),
 * with the same rank and mask in every trace row. What is left: the exact
 * reference (about 1.5%) and the ranks above the widths (about 3.5%: the
 * head ran lower, so its caches are narrower), replayed raw. Tried, not
 * shipped: widening the caches of the guarded methods to the largest grid
 * rank below head_dim (a prototype in attn_core's w_need) cut the guard
 * to 4.85% for 0.25 + 0.27 points more rotation and projection: drrl
 * 17.67 -> 18.92% saved, energy:0.9 18.88 -> 19.91% on the same 4 KiB;
 * but the width enters the refresh's keep tests and the per-direction
 * energies (E, the tail bounds, the policy's features), so the bases and
 * 8% of drrl's ranks changed (loss 1.383491 -> 1.382870 nats/token,
 * energy:0.9 1.383034 -> 1.383252): a change to the refresh, left to it.
 * Instead the engine keeps the guard its own columns in the same bases
 * (Xk, Xv: from the width a basis had at its first replay up to that
 * grid rank, rebuilt after each new basis, charged to the guard), which
 * changes no width, refresh or decision: guard 6.32% -> 5.65%, drrl
 * 17.67 -> 18.34% saved, energy:0.9 18.88 -> 19.51% on the same 4 KiB.
 * Carrying a rank's previous estimate when it was far below eps would
 * have let through ranks whose error had grown past eps/c (15 of 657
 * carried at a quarter of eps, simulated on the same run): not done.
 */
#ifndef DRRL_GUARD_H
#define DRRL_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* Default number of sampled rows per (layer, head, segment). */
#define GUARD_ROWS 4
#define GUARD_ROWS_MAX 64
/* The margin c on the largest sampled error (above). */
#define GUARD_MARGIN 2.0

/* Positions of the n_rows (<= T) sampled rows of the completed segment
 * [seg_start, seg_start + T): evenly spread, the last row always included,
 * increasing. Returns the number written (min(n_rows, T)). */
int32_t guard_sample_rows(int64_t seg_start, int32_t T, int32_t n_rows, int64_t *pos);

typedef struct GuardInput {
    const float *q;     /* (n_rows, d): the sampled rows' queries (post-RoPE) */
    const int64_t *pos; /* (n_rows): row i attends keys 0..pos[i] */
    int32_t n_rows, d;
    const float *k, *v;   /* raw caches, (> max pos, d) */
    const float *Bk, *Bv; /* (d, d) row-major, column j = basis direction j */
    float scale;          /* the attention scale */
    double margin;        /* c: g = c * envelope (GUARD_MARGIN in the engine) */
    const float *o_fwd;   /* (n_rows, d) the rows' head outputs as the forward
                             computed them at rank r_fwd, or NULL: with
                             r_fwd >= d they are the exact reference, else the
                             rank-r_fwd outputs; either way not computed again */
    int32_t r_fwd;
    /* The projected caches in the bases Bk and Bv, as the forward's rank-r
     * kernel reads them, or NULL: P[j * p_ld + t] = (x_t B)_j (float) for
     * directions j < p_wk (keys) or p_wv (values) and rows t < p_rows. A
     * rank r <= p_wk of a row below p_rows takes its scores from Pk (2 m r
     * + 2 d r instead of 2 m d + 4 d r; at the row's next lower rank only
     * the dropped directions, 2 m per direction), a rank r <= p_wv its value
     * product from Pv (2 m r + 2 d r instead of 2 m d + 4 d r): the same
     * quantity, to float rounding of the projected keys and values. */
    const float *Pk, *Pv;
    size_t p_ld;
    int32_t p_wk, p_wv;
    int64_t p_rows;
    /* More directions in the same bases, kept for the guard beyond the
     * projected caches' widths, or NULL: X[(j - x0) * x_ld + t] for
     * directions x0 <= j < x1 (xk0/xk1 for Xk, xv0/xv1 for Xv) and rows
     * t < x_rows. With x0 <= p_w they extend the width to x1 for rows below
     * x_rows (a rank replayed from them costs as above). */
    const float *Xk, *Xv;
    size_t x_ld;
    int32_t xk0, xk1, xv0, xv1;
    int64_t x_rows;
    /* 1: the scan up (guard_estimate): from the smallest rank, stopping at
     * the first within stop; 0: the envelope scan down */
    int scan_up;
} GuardInput;

/* The estimate at every grid rank (n increasing ranks; a rank >= d is
 * exact, e = 0), by one of two scans.
 *
 * Envelope, down (scan_up 0): g = margin * envelope, ranks evaluated from
 * the top down; once g exceeds stop, no lower rank is evaluated and each
 * gets g at that point (a lower bound of its own g, which is then also >
 * stop): pass INFINITY to evaluate all. Within the rank that crosses stop,
 * the rows stop at the first one that crosses it (they run in decreasing
 * order of their error at the rank above, the likeliest to fail first), so
 * its g is also a lower bound > stop. Every decision g <= stop is the same
 * as with all rows and ranks evaluated.
 *
 * Up (scan_up 1, the engine's since 2026-12-08): ranks evaluated from the
 * smallest up, g(r) = margin * e(r), each failing rank stopped at its first
 * row over stop as above (rows in decreasing order of their error at the
 * rank below); the first rank r* with g(r*) <= stop ends the scan, and every
 * rank above it but exact gets g(r*) without a replay (not evaluated;
 * exact gets 0). So g is
 * non-increasing, the ranks with g <= stop are exactly {r >= r*}, and r* is
 * never above the envelope scan's smallest allowed rank (that rank passes
 * on its own). It differs where a rank above r* would fail on its own (the
 * envelope blocks r* and below then): README, "What the guards guarantee",
 * measures how often and what it changes. With stop INFINITY only the
 * smallest rank is evaluated.
 *
 * evaluated[i] (may be NULL) says which ranks were evaluated on every row
 * (g exact). Returns the FLOPs executed (flops.h rules), or -1 when out of
 * memory. */
double guard_estimate(const GuardInput *in, const int32_t *ranks, int32_t n, double stop,
                      double *g, uint8_t *evaluated);

/* No evidence (above): g = +inf below head_dim d, 0 at and above it. */
void guard_no_evidence(const int32_t *ranks, int32_t n, int32_t d, double *g);

#endif
