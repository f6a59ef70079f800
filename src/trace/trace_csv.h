/* trace_csv.h: trace files (schema version 1, man drrl-trace(5)).
 *
 * A trace is TRACE.csv (one row per (step, layer, head), header first) plus
 * the JSON sidecar TRACE.csv.json describing the run (TraceMeta, row count).
 *
 * Writing is atomic: rows go to a temporary file beside the target
 * (TRACE.csv.tmp.XXXXXX); trace_csv_writer_finish flushes, fsyncs and renames
 * it (then the sidecar) into place. An existing file is never replaced without
 * TRACE_CSV_FORCE. Formatting is fixed (integers exactly, real columns as
 * float32 with %.9g, FLOPs with %.17g, NaN/Inf/-Inf), so the same records give
 * byte-identical files, and a trace read back and written again is
 * byte-identical.
 *
 * Reading streams the file through libcsv and validates everything: header,
 * column count, numbers, ranges, row order, the sidecar and its agreement with
 * the rows. Errors are DRRL_E_INPUT (DRRL_E_NOTFOUND for a missing file) with
 * "FILE:LINE:COLUMN: what" (COLUMN is the 1-based field number), or
 * "FILE.json:LINE:COLUMN: what" for the sidecar's JSON syntax.
 */
#ifndef DRRL_TRACE_CSV_H
#define DRRL_TRACE_CSV_H

#include <stddef.h>

#include "trace/trace.h"
#include "trace/trace_store.h"

/* The column names, in file order (trace_schema.h). */
enum { TRACE_CSV_NCOLS = TRACE_NCOLS };
extern const char *const trace_csv_columns[TRACE_CSV_NCOLS];

/* Column col (0..TRACE_CSV_NCOLS-1) of r as the file spells it (text
 * escaped, not quoted; wall_ns < 0 empty) into out[n], shortened with "..."
 * when longer. Returns 0, or -1 for a bad column or when out of memory. */
int trace_csv_field(const TraceRecord *r, int col, char *out, size_t n);

/* ---- writing ---- */

enum {
    TRACE_CSV_FORCE = 1,     /* replace an existing trace (CSV and sidecar) */
    TRACE_CSV_NO_TIMING = 2, /* leave wall_ns empty: a run's only nondeterministic column */
};

typedef struct TraceCsvWriter TraceCsvWriter;

/* Start a trace at path: checks that neither path nor its sidecar exists
 * (unless TRACE_CSV_FORCE: DRRL_E_EXISTS), creates the temporary file in the
 * same directory and writes the header. meta is copied (the sidecar is
 * written at finish; n_steps there is counted from the rows). On error *out
 * is NULL and nothing is left on disk. */
DrrlStatus trace_csv_writer_open(TraceCsvWriter **out, const char *path, const TraceMeta *meta,
                                 unsigned flags, DrrlError *err);

/* Replace the metadata the sidecar will carry (e.g. a hash known later). */
DrrlStatus trace_csv_writer_set_meta(TraceCsvWriter *w, const TraceMeta *meta, DrrlError *err);

/* Append one record (buffered). Records must come ordered by (step, layer,
 * head) without repeats (DRRL_E_INPUT otherwise); DRRL_E_IO on a write
 * failure. A failed writer accepts nothing more: abort it. */
DrrlStatus trace_csv_writer_put(TraceCsvWriter *w, const TraceRecord *rec, DrrlError *err);

/* A sink whose put() is trace_csv_writer_put on w. */
TraceSink trace_csv_writer_sink(TraceCsvWriter *w);

size_t trace_csv_writer_rows(const TraceCsvWriter *w);

/* Make the rows written so far a valid trace at the target path: flush, fsync,
 * write the sidecar ("complete": !interrupted), rename both into place, fsync
 * the directory. Call it at the end of a run and also when a signal stopped
 * the run (interrupted = 1): the partial trace is then replayable. Frees w
 * whatever happens. On failure the temporary files are removed, except when
 * the target appeared meanwhile without TRACE_CSV_FORCE: then the rows stay
 * in the temporary file, which the message names. */
DrrlStatus trace_csv_writer_finish(TraceCsvWriter *w, int interrupted, DrrlError *err);

/* Throw the trace away: remove the temporary file and free w (NULL is fine). */
void trace_csv_writer_abort(TraceCsvWriter *w);

/* Write every record of s to path (with s's metadata, or an empty one). */
DrrlStatus trace_csv_write_store(const char *path, const TraceStore *s, unsigned flags,
                                 DrrlError *err);

/* ---- reading ---- */

/* path + ".json", malloc'd (NULL when out of memory). */
char *trace_csv_sidecar_path(const char *path);

/* Read and validate the sidecar of the trace at path into meta (initialised
 * here; the caller trace_meta_done's it, also on error). rows/complete, if
 * non-NULL, receive the sidecar's row count and completeness flag. */
DrrlStatus trace_csv_read_meta(const char *path, TraceMeta *meta, size_t *rows, int *complete,
                               DrrlError *err);

/* Stream the trace at path to sink, row by row, after validating the sidecar
 * (into meta, as trace_csv_read_meta) and the header. Stops at the first error
 * (the sink's errors get the FILE:LINE: prefix). */
DrrlStatus trace_csv_read(const char *path, TraceMeta *meta, TraceSink *sink, DrrlError *err);

/* Load and validate a whole trace for replay: one call, a new store with the
 * sidecar's metadata. *out is NULL on error. */
DrrlStatus trace_csv_load(const char *path, TraceStore **out, DrrlError *err);

#endif
