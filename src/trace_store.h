/* trace_store.h: an in-memory, append-only store of TraceRecords, indexed by
 * (step, layer, head) for the views. Both the live engine and the CSV reader
 * fill one; the TUI only reads it.
 *
 * Ownership: the store copies every record (strings and arrays) it is given.
 * Pointers returned by trace_store_get stay valid until trace_store_free
 * (appending never moves earlier records).
 */
#ifndef DRRL_TRACE_STORE_H
#define DRRL_TRACE_STORE_H

#include "trace.h"

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

/* The record for (step, layer, head), or NULL if there is none. O(1). */
const TraceRecord *trace_store_get(const TraceStore *s, int64_t step, int32_t layer,
                                   int32_t head);

#endif
