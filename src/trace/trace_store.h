/* trace_store.h: an in-memory, append-only store of TraceRecords, indexed by
 * (step, layer, head) for the views. Both the live engine and the CSV reader
 * fill one; the TUI only reads it.
 *
 * Ownership: the store copies every record (strings and arrays) it is given.
 * Pointers returned by trace_store_get stay valid until trace_store_free
 * (appending never moves earlier records).
 *
 * Precision: the store keeps what a trace file keeps (man drrl-trace(5)):
 * the real-valued columns energy_kept, tail_bound, sin_theta_bound,
 * output_bound, threshold, measured_error, fidelity, savings_cum, value and
 * reward as float32 (the engine computes in float32; a CSV writes them with
 * 9 significant digits), flops_* as double, integers exactly. So a record read
 * back equals the record as written to the CSV, live or replayed.
 *
 * Layout (for 10^6-row traces in a few hundred MB): one fixed 88-byte row per
 * record in a growing array; the four arrays of a record (sigma, sigma_v,
 * masked, policy_probs) packed together in a chunked arena, shared with the
 * previous step's row of the same (layer, head) when equal (spectra and
 * policy outputs change only at segment boundaries); token and method strings
 * interned; a per-step table of (step, token_index, token, segment, first row)
 * gives the O(1) index. Not thread-safe: one writer, readers on the same
 * thread (trace_store_get fills a cache).
 */
#ifndef DRRL_TRACE_STORE_H
#define DRRL_TRACE_STORE_H

#include "trace/trace.h"

typedef struct TraceStore TraceStore;

/* A new empty store, or NULL when out of memory. */
TraceStore *trace_store_new(void);
void trace_store_free(TraceStore *s); /* NULL is fine */

/* Copy rec into the store. Records arrive ordered by (step, layer, head);
 * anything else is DRRL_E_INPUT. */
DrrlStatus trace_store_put(TraceStore *s, const TraceRecord *rec, DrrlError *err);

/* A sink whose put() is trace_store_put on s. */
TraceSink trace_store_sink(TraceStore *s);

/* Metadata (copied in; the store owns its copy). */
DrrlStatus trace_store_set_meta(TraceStore *s, const TraceMeta *meta, DrrlError *err);
const TraceMeta *trace_store_meta(const TraceStore *s);

size_t trace_store_n_rows(const TraceStore *s);
int64_t trace_store_n_steps(const TraceStore *s); /* steps with at least one row */
int32_t trace_store_n_layers(const TraceStore *s);
int32_t trace_store_n_heads(const TraceStore *s);

/* The record for (step, layer, head), or NULL if there is none. O(1).
 * The first call for a step builds that step's TraceRecords (about 230 bytes
 * each) in a cache kept until trace_store_free; code that walks many steps
 * should prefer trace_store_read, which allocates nothing. */
const TraceRecord *trace_store_get(const TraceStore *s, int64_t step, int32_t layer,
                                   int32_t head);

/* Fill *out with the record for (step, layer, head) and return 1, or return 0
 * if there is none. O(1), allocation-free; out's strings and arrays point into
 * the store and stay valid until trace_store_free. */
int trace_store_read(const TraceStore *s, int64_t step, int32_t layer, int32_t head,
                     TraceRecord *out);

/* Fill *out with the i-th record in (step, layer, head) order, i < n_rows;
 * return 1, or 0 when i is out of range. Same lifetime as trace_store_read. */
int trace_store_row(const TraceStore *s, size_t i, TraceRecord *out);

/* The k-th distinct step present (ascending), k < n_steps; -1 when out of
 * range. With trace_store_step_index this maps steps to slider positions. */
int64_t trace_store_step_at(const TraceStore *s, size_t k);

/* The position k of step among the present steps, or -1 when it is absent. */
int64_t trace_store_step_index(const TraceStore *s, int64_t step);

/* Bytes the store holds on the heap (rows, arenas, indexes, cache). */
size_t trace_store_bytes(const TraceStore *s);

#endif
