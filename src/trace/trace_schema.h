/* trace_schema.h: the trace columns (schema version 1), in file order, in one table.
 *
 * TRACE_COLUMNS(X) calls X(name, kind, count, lo, hi, range) once per column:
 *   name   the CSV column and the TraceRecord member that holds it;
 *   kind   how it is stored, written, read and compared:
 *          I64, I32  an integer (int64_t, int32_t), decimal, read within lo..hi;
 *          TEXT      a string (const char *), escaped ('\\', \xHH) and quoted;
 *          REAL      a double kept and written as float32, %.9g, NaN/Inf/-Inf;
 *          F64       a double written with %.17g (FLOP counts);
 *          FLOATS    a ';'-separated list of REALs (const float *, length in count);
 *          INTS      a ';'-separated list of integers in lo..hi (const int32_t *);
 *          NS        a measured time in ns (int64_t): empty when negative or when
 *                    the trace is written without timing, compared by a diff only
 *                    on request (the one nondeterministic kind);
 *   count  the int32_t member holding a list's length (FLOATS, INTS); the name
 *          again for other kinds;
 *   lo, hi the integer range the reader accepts (I64, I32, INTS items, NS);
 *   range  the range as drrl-trace(5) states it in the column's entry: the
 *          test test_trace checks that the man page lists these columns in this
 *          order, each entry containing its range text, and names the REAL and
 *          FLOATS columns as the float32 ones.
 *
 * Generated from the table: the TraceRecord members (trace.h), the column
 * names and descriptors (trace_columns), the CSV writer, the reader's parsing
 * and range checks, the store's real-valued fields (trace_store.c) and the
 * diff's comparison (trace_diff.c).
 *
 * Adding a column: one line here (where it goes in the file), its entry in
 * man/drrl-trace.5 (same place, with the range text), and the producer that
 * fills it (src/attn/attn_core.c). REAL, F64 and NS columns need nothing
 * else; checks that relate a column to another one or to the sidecar are in
 * check_field (trace_csv.c); a new list also needs the store's blob
 * (trace_store.c). Old traces then fail to load with "missing column": bump
 * TRACE_SCHEMA_VERSION when the meaning of a column changes.
 */
#ifndef DRRL_TRACE_SCHEMA_H
#define DRRL_TRACE_SCHEMA_H

#include <stdint.h>

#define TRACE_COLUMNS(X)                                                                       \
    /* forward step, 0-based, one per token processed */                                       \
    X(step, I64, step, 0, INT64_MAX, "Integer, >= 0.")                                         \
    /* position of the token in the sequence, 0-based */                                       \
    X(token_index, I64, token_index, 0, INT64_MAX, "Integer, >= 0.")                           \
    /* the token's text (bytes, NUL-terminated) */                                             \
    X(token, TEXT, token, 0, 0, "always quoted")                                               \
    /* segment number: token_index / segment_len */                                            \
    X(segment, I32, segment, 0, INT32_MAX, "Integer, >= 0.")                                   \
    /* 0-based */                                                                              \
    X(layer, I32, layer, 0, 65535, "0-based, below the sidecar's n_layer")                     \
    /* 0-based query head */                                                                   \
    X(head, I32, head, 0, 65535, "0-based, below the sidecar's n_head")                        \
    /* method spec, e.g. "fixed:8", "drrl" */                                                  \
    X(method, TEXT, method, 0, 0, "equal to the sidecar's method")                             \
    /* rank used for this head at this step; == head_dim: exact */                             \
    X(rank, I32, rank, 0, 65535, "Integer, 0 .. head_dim")                                     \
    X(head_dim, I32, head_dim, 0, 65535, "Integer, 0 .. 65535")                                \
    /* fraction of the key Gram's energy kept at rank, [0, 1] */                               \
    X(energy_kept, REAL, energy_kept, 0, 0, "Range [0, 1]")                                    \
    /* key singular values, descending, >= 0 (n_sigma: head_dim, or 0) */                      \
    X(sigma, FLOATS, n_sigma, 0, 0, "head_dim values, or empty when not computed")             \
    /* value singular values, descending, >= 0 (n_sigma_v: head_dim, or 0) */                  \
    X(sigma_v, FLOATS, n_sigma_v, 0, 0, "as sigma")                                            \
    /* proven bound on the relative score error at rank */                                     \
    X(tail_bound, REAL, tail_bound, 0, 0, ">= 0; 0 at full rank")                              \
    /* Wedin/Davis-Kahan bound on subspace rotation, [0, 1] */                                 \
    X(sin_theta_bound, REAL, sin_theta_bound, 0, 0, "Range [0, 1]")                            \
    /* proven bound on relative head-output error at rank */                                   \
    X(output_bound, REAL, output_bound, 0, 0, ">= 0")                                          \
    /* the guard's ESTIMATE (not a bound) of the relative head-output error at rank */         \
    X(guard_estimate, REAL, guard_estimate, 0, 0, ">= 0, or NaN")                              \
    /* eps_t: the safety threshold in force */                                                 \
    X(threshold, REAL, threshold, 0, 0, ">= 0")                                                \
    /* the ranks masked by the safety mask, ascending */                                       \
    X(masked, INTS, n_masked, 0, 65535, "Integers in 0 .. head_dim")                           \
    /* measured relative head-output error ||o - o~|| / ||o|| */                               \
    X(measured_error, REAL, measured_error, 0, 0, ">= 0, or NaN")                              \
    /* cosine(o_exact, o_approx), [-1, 1] */                                                   \
    X(fidelity, REAL, fidelity, 0, 0, "Range [-1, 1], or NaN")                                 \
    /* attention-core FLOPs exact attention would execute for this head/step */                \
    X(flops_exact, F64, flops_exact, 0, 0, ">= 0")                                             \
    /* attention-core FLOPs executed, the low-rank overheads included */                       \
    X(flops_executed, F64, flops_executed, 0, 0, ">= 0")                                       \
    /* whole-model savings over tokens 0..token_index (flops_savings), [.., 1] */              \
    X(savings_cum, REAL, savings_cum, 0, 0, "At most 1")                                       \
    /* probabilities over the rank grid (n_policy 0 without a policy) */                       \
    X(policy_probs, FLOATS, n_policy, 0, 0, "they sum to 1")                                   \
    /* critic's value estimate (NAN without a policy) */                                       \
    X(value, REAL, value, 0, 0, "NaN without a policy")                                        \
    /* reward of this decision (NAN when not computed) */                                      \
    X(reward, REAL, reward, 0, 0, "NaN when not computed")                                     \
    /* wall time spent on this head at this step, ns (< 0: not measured) */                    \
    X(wall_ns, NS, wall_ns, 0, INT64_MAX, "Integer >= 0, or empty")

/* TraceRecord members of each kind. */
#define TRACE_MEMBER_I64(name, count) int64_t name;
#define TRACE_MEMBER_I32(name, count) int32_t name;
#define TRACE_MEMBER_TEXT(name, count) const char *name;
#define TRACE_MEMBER_REAL(name, count) double name;
#define TRACE_MEMBER_F64(name, count) double name;
#define TRACE_MEMBER_FLOATS(name, count)                                                       \
    int32_t count;                                                                             \
    const float *name;
#define TRACE_MEMBER_INTS(name, count)                                                         \
    int32_t count;                                                                             \
    const int32_t *name;
#define TRACE_MEMBER_NS(name, count) int64_t name;
#define TRACE_MEMBER(name, kind, count, lo, hi, range) TRACE_MEMBER_##kind(name, count)

typedef enum TraceKind {
    TRACE_I64,
    TRACE_I32,
    TRACE_TEXT,
    TRACE_REAL,
    TRACE_F64,
    TRACE_FLOATS,
    TRACE_INTS,
    TRACE_NS,
} TraceKind;

/* TRACE_COL_step, TRACE_COL_token_index, ...: column indices in file order. */
#define TRACE_COL_ENUM(name, kind, count, lo, hi, range) TRACE_COL_##name,
enum { TRACE_COLUMNS(TRACE_COL_ENUM) TRACE_NCOLS };
#undef TRACE_COL_ENUM

/* How many FLOATS columns (the reader keeps a parse cache per list). */
#define TRACE_IS_FLOATS_I64 0
#define TRACE_IS_FLOATS_I32 0
#define TRACE_IS_FLOATS_TEXT 0
#define TRACE_IS_FLOATS_REAL 0
#define TRACE_IS_FLOATS_F64 0
#define TRACE_IS_FLOATS_FLOATS 1
#define TRACE_IS_FLOATS_INTS 0
#define TRACE_IS_FLOATS_NS 0
#define TRACE_COUNT_FLOATS(name, kind, count, lo, hi, range) +TRACE_IS_FLOATS_##kind
enum { TRACE_N_FLOAT_LISTS = 0 TRACE_COLUMNS(TRACE_COUNT_FLOATS) };

/* One column as data: what the writer, reader and diff loop over. */
typedef struct TraceColumn {
    const char *name;
    TraceKind kind;
    unsigned offset;       /* offsetof(TraceRecord, name) */
    unsigned count_offset; /* offsetof(TraceRecord, count) */
    int64_t lo, hi;        /* integer range (I64, I32, INTS items, NS) */
    const char *range;     /* the range as drrl-trace(5) states it */
} TraceColumn;

#endif
