/* trace.h: the record of one rank decision, and the sinks that receive them.
 *
 * Data flows one way (see ../shared/design/style.md):
 *   forward pass -> TraceRecord per (step, layer, head) -> sinks
 *   (TraceStore in memory for the views, the CSV writer for files).
 * A TraceRecord only borrows its strings and arrays: every sink copies what
 * it is given, so a producer may reuse its buffers after the call returns.
 *
 * Column meanings are documented in man/drrl-trace.5 (schema version 1).
 */
#ifndef DRRL_TRACE_H
#define DRRL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define TRACE_SCHEMA_VERSION 1

typedef struct TraceRecord {
    int64_t step;        /* forward step, 0-based, one per token processed */
    int64_t token_index; /* position of the token in the sequence, 0-based */
    const char *token;   /* the token's text (bytes, NUL-terminated) */
    int32_t segment;     /* segment number: token_index / segment_len */
    int32_t layer;       /* 0-based */
    int32_t head;        /* 0-based query head */
    const char *method;  /* method spec, e.g. "fixed:8", "drrl" */
    int32_t rank;        /* rank used for this head at this step; == head_dim: exact */
    int32_t head_dim;
    double energy_kept;        /* fraction of the key Gram's energy kept at rank, [0, 1] */
    int32_t n_sigma;           /* number of key singular values (head_dim, or 0) */
    const float *sigma;        /* key singular values, descending, >= 0 */
    int32_t n_sigma_v;         /* number of value singular values (head_dim, or 0) */
    const float *sigma_v;      /* value singular values, descending, >= 0 */
    double tail_bound;         /* proven bound on the relative score error at rank */
    double sin_theta_bound;    /* Wedin/Davis-Kahan bound on subspace rotation, [0, 1] */
    double output_bound;       /* proven bound on relative head-output error at rank */
    double threshold;          /* eps_t: the safety threshold in force */
    int32_t n_masked;          /* number of ranks masked by the safety mask */
    const int32_t *masked;     /* the masked ranks, ascending */
    double measured_error;     /* measured relative head-output error ||o - o~|| / ||o|| */
    double fidelity;           /* cosine(o_exact, o_approx), [-1, 1] */
    double flops_exact;        /* FLOPs exact attention would execute for this head/step */
    double flops_executed;     /* FLOPs actually executed, overheads included */
    double savings_cum;        /* cumulative savings of the whole run so far, [.., 1] */
    int32_t n_policy;          /* number of policy probabilities (0 without a policy) */
    const float *policy_probs; /* probabilities over the rank grid */
    double value;              /* critic's value estimate (NAN without a policy) */
    double reward;             /* reward of this decision (NAN when not computed) */
    int64_t wall_ns;           /* wall time spent on this head at this step, ns */
} TraceRecord;

/* What produced a trace (the CSV's JSON sidecar). Strings owned by the
 * struct's owner; trace_meta_done frees those set by trace_meta_* helpers. */
typedef struct TraceMeta {
    int schema_version; /* TRACE_SCHEMA_VERSION */
    char *drrl_version;
    char *model_path;
    char *model_hash; /* hex content hash of the model's weights */
    char *text_hash;  /* hex hash of the token ids */
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
