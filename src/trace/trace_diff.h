/* trace_diff.h: compare two traces row by row, aligned by (step, layer, head).
 *
 * Decisions and figures are compared, not labels or settings: the method
 * label and the threshold in force are the same on every row of a trace and
 * differ on every row between two methods, so they are left out of the row
 * comparison and reported once (methods_differ, thresholds_differ; the
 * sidecars say the same). The policy's columns (policy_probs, value,
 * reward) are compared only when both rows have them. Two rows are equal
 * when every other column is equal as a trace file stores it (integers and
 * strings exactly, real columns as float32, FLOPs as double, arrays element
 * by element; NaN equals NaN). wall_ns is measured time, not a decision: it
 * is compared only with TRACE_DIFF_TIMING.
 *
 * The first divergence is the first decision that differs: a rank or the
 * safety mask (or a row present in one trace only). The first differing
 * figure (error, bound, FLOPs...) is reported beside it: it may come first,
 * e.g. from floating-point differences between builds.
 * Used by `drrl diff` and by the TUI's difference view.
 */
#ifndef DRRL_TRACE_DIFF_H
#define DRRL_TRACE_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "trace/trace.h"
#include "trace/trace_store.h"

enum { TRACE_DIFF_TIMING = 1 };

/* Per-layer deltas over the rows present in both traces ("aligned"). */
typedef struct TraceDiffLayer {
    size_t aligned;                      /* rows of this layer present in both */
    size_t only_a, only_b;               /* rows of this layer present in one trace only */
    size_t differing;                    /* aligned rows with any column different */
    size_t rank_changed;                 /* aligned rows whose rank differs */
    double rank_sum_a, rank_sum_b;       /* sums of rank over aligned rows */
    double err_sum_a, err_sum_b;         /* sums of measured_error (finite values only) */
    size_t err_n_a, err_n_b;             /* how many finite measured_error values */
    double max_err_delta;                /* max |error_b - error_a| over aligned rows */
    double flops_exact_a, flops_exact_b; /* sums of flops_exact over aligned rows */
    double flops_a, flops_b;             /* sums of flops_executed over aligned rows */
} TraceDiffLayer;

typedef struct TraceDiff {
    int identical; /* same rows, same columns, same sidecar */
    size_t rows_a, rows_b, aligned, only_a, only_b, differing;
    /* The first divergence in (step, layer, head) order, if any row differs
     * or is missing on one side. */
    int has_first;
    int64_t first_step;
    int32_t first_layer, first_head;
    int first_column; /* rank or masked (trace_csv_columns); -1: row missing on one side */
    char first_a[96], first_b[96]; /* the values as in the CSV (shortened), or "(no row)" */
    char first_token[64];          /* the token at that step (from whichever side has it) */
    /* The first aligned row where a figure (a compared column other than a
     * decision) differs, if any. */
    int has_figure;
    int64_t fig_step;
    int32_t fig_layer, fig_head;
    int fig_column;
    char fig_a[96], fig_b[96];
    /* Settings that differ between the traces (from the first aligned row):
     * a note for the reader, not a divergence. */
    int methods_differ, thresholds_differ;
    char method_a[64], method_b[64];
    double threshold_a, threshold_b;
    int32_t n_layers;       /* max of both traces' layer counts */
    TraceDiffLayer *layers; /* [n_layers] */
    /* The first differing sidecar key, if any ("" when the sidecars agree). */
    char meta_key[32];
    char meta_a[96], meta_b[96];
    /* meta_key is model_hash, and the two hashes were made by different
     * algorithms (meta_a and meta_b name them): not comparable. */
    int meta_hash_algos_differ;
} TraceDiff;

/* Compare a with b into *out (initialised here; trace_diff_done frees it).
 * DRRL_E_NOMEM is the only error. */
DrrlStatus trace_diff_compute(const TraceStore *a, const TraceStore *b, unsigned flags,
                              TraceDiff *out, DrrlError *err);
void trace_diff_done(TraceDiff *d);

/* The first compared column (index into trace_csv_columns) where rows a and
 * b differ, or -1 when they are equal. step/layer/head are compared too; the
 * method label and threshold are not (see above). */
int trace_diff_rows(const TraceRecord *a, const TraceRecord *b, unsigned flags);

/* The first decision column (rank, masked) where rows a and b differ, or -1. */
int trace_diff_decision(const TraceRecord *a, const TraceRecord *b);

/* A note on settings that differ ("A and B ran different methods (drrl,
 * energy:0.9) and thresholds (0.5, 0.25)") into buf; "" when they agree. */
void trace_diff_note(const TraceDiff *d, char *buf, size_t n);

#endif
