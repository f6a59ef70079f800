/* trace.h: the record of one rank decision, and the sinks that receive them.
 *
 * Data flows one way (see doc/style.md):
 *   forward pass -> TraceRecord per (step, layer, head) -> sinks
 *   (TraceStore in memory for the views, the CSV writer for files).
 * A TraceRecord only borrows its strings and arrays: every sink copies what
 * it is given, so a producer may reuse its buffers after the call returns.
 *
 * The columns are listed once, in trace_schema.h; their meanings are
 * documented in man/drrl-trace.5 (schema version 1).
 */
#ifndef DRRL_TRACE_H
#define DRRL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "trace/trace_schema.h"

#define TRACE_SCHEMA_VERSION 1

/* One row of a trace: the members are the columns of trace_schema.h, in
 * file order (lists as a count and a pointer). */
typedef struct TraceRecord {
    TRACE_COLUMNS(TRACE_MEMBER)
} TraceRecord;

/* The columns as data, in file order (trace.c). */
extern const TraceColumn trace_columns[TRACE_NCOLS];

/* The hash algorithm of a sidecar's model_hash when it names none: traces
 * written before the algorithm was recorded hold FNV-1a 64 (model.h's
 * MODEL_HASH_ALGO_V1). */
#define TRACE_MODEL_HASH_ALGO_V1 "fnv1a64"

/* What produced a trace (the CSV's JSON sidecar). Strings owned by the
 * struct's owner; trace_meta_done frees those set by trace_meta_* helpers. */
typedef struct TraceMeta {
    int schema_version; /* TRACE_SCHEMA_VERSION */
    char *drrl_version;
    char *model_path;
    char *model_hash;      /* hex content hash of the model's weights */
    char *model_hash_algo; /* the algorithm that made model_hash (model.h's
                              MODEL_HASH_ALGO), TRACE_MODEL_HASH_ALGO_V1
                              when a sidecar names none, or NULL */
    char *text_hash;       /* hex hash of the token ids */
    char *method;
    uint64_t seed;
    int32_t segment_len;
    int32_t n_layer, n_head, head_dim, n_steps;
    int32_t n_grid;
    int32_t *rank_grid; /* ascending, last == head_dim */
    double alpha, beta, gamma;
    double eps_start, eps_floor, eps_decay; /* eps schedule */
} TraceMeta;

/* Zero m (strings NULL, rank_grid NULL), schema_version = TRACE_SCHEMA_VERSION,
 * value/reward-free defaults: alpha/beta/gamma and eps_* 0. */
void trace_meta_init(TraceMeta *m);

/* Free the strings and rank_grid of m (each may be NULL) and zero it.
 * m == NULL is fine. */
void trace_meta_done(TraceMeta *m);

/* Deep-copy src into dst (dst is overwritten, not freed first: init or done it
 * beforehand). On DRRL_E_NOMEM dst is left empty (as after trace_meta_init). */
DrrlStatus trace_meta_copy(TraceMeta *dst, const TraceMeta *src, DrrlError *err);

/* Replace *dst (an initialised metadata, freed) by a deep copy of src. On
 * DRRL_E_NOMEM dst is left as it was. */
DrrlStatus trace_meta_replace(TraceMeta *dst, const TraceMeta *src, DrrlError *err);

/* Set *field to a malloc'd copy of s (NULL stays NULL), freeing the old one. */
DrrlStatus trace_meta_set_str(char **field, const char *s, DrrlError *err);

/* Check the ranges every stored or written record must satisfy: step,
 * token_index, segment >= 0; layer, head, head_dim in 0..65535; 0 <= rank <=
 * head_dim; array counts in 0..65535 with non-NULL arrays when non-zero;
 * masked ranks ascending in 0..head_dim. DRRL_E_INPUT naming the field. */
DrrlStatus trace_record_check(const TraceRecord *rec, DrrlError *err);

/* x as float32, out-of-range magnitudes becoming +-infinity (a plain cast
 * would be undefined behaviour there). */
float trace_to_float(double x);

/* A sink receives records in order of (step, layer, head). */
typedef struct TraceSink {
    /* Copy rec; return DRRL_OK or an error (e.g. a write failure). */
    DrrlStatus (*put)(struct TraceSink *self, const TraceRecord *rec, DrrlError *err);
    void *ctx;
} TraceSink;

#endif
