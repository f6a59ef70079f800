/* guard.h: the safety guard's output-level ESTIMATE (not a bound).
 *
 * The safety mask must guard what a user cares about, the head output, and
 * the quantity it compares with the threshold must be non-increasing in rank
 * (else it masks the safer ranks). No proven output bound is informative on
 * the shipped model before a segment's queries are known, so the guard
 * measures instead, causally: at a segment boundary it re-runs a few query
 * rows of the COMPLETED segment (their queries, keys and values are all in
 * the past) exactly and at rank r with the basis that will be in force for
 * the next segment, and takes the largest relative output error
 *   e(r) = max over sampled rows of ||o - o_r||_2 / ||o||_2
 * (||o - o_r|| when o = 0). It then forms the envelope
 *   g(r) = max over grid ranks r' >= r of e(r'),
 * which is non-increasing in r by construction and never below e(r), so the
 * ranks with g(r) <= eps are exactly {r >= smallest such rank}. g is an
 * estimate of the next segment's error: the next rows have other queries and
 * more keys. Everything that shows it calls it an estimate.
 *
 * Its work (the exact and rank-r attention of the sampled rows) is real and
 * the engine charges it to the FLOP ledger (FLOPS_GUARD) when the method's
 * decision uses the mask.
 */
#ifndef DRRL_GUARD_H
#define DRRL_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* Default number of sampled rows per (layer, head, segment). */
#define GUARD_ROWS 4
#define GUARD_ROWS_MAX 64

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
} GuardInput;

/* The envelope g over the grid ranks (n increasing ranks; a rank >= d is
 * exact, e = 0). Ranks are evaluated from the top down; once g exceeds stop,
 * no lower rank is evaluated and each gets the envelope at that point (a
 * lower bound of its own g, which is then also > stop): pass INFINITY to
 * evaluate all. evaluated[i] (may be NULL) says which were. Returns the
 * FLOPs executed (flops.h rules), or -1 when out of memory. */
double guard_estimate(const GuardInput *in, const int32_t *ranks, int32_t n, double stop,
                      double *g, uint8_t *evaluated);

#endif
