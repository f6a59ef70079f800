/* forward.h: the exact forward pass of GPT-2 and Llama, full-sequence or token
 * by token with a KV cache, and the hook through which attention is computed.
 *
 * One call, forward_tokens(), runs n new tokens at positions
 * pos0 .. pos0+n-1 (pos0 = the cache length before the call) through the
 * model and appends their keys and values to the cache. A full-sequence
 * forward is one call with all tokens on an empty cache; an incremental
 * forward is one call per token. Both compute the same numbers (the
 * incremental path matches the full one to ~1e-6 relative; tests check
 * 1e-5).
 *
 * Numerics follow Hugging Face transformers' eager implementations
 * (modeling_gpt2.py, modeling_llama.py): float32 throughout, norms and softmax
 * sums accumulated in double, RoPE angles computed in float32 as transformers
 * does (inv_freq = 1 / theta^(2i/D), angle = pos * inv_freq, rotate_half
 * pairing (i, i + D/2)).
 *
 * KV cache layout (post-RoPE keys; values as projected):
 *   k: (L, K, cap, D)   keys of layer l, kv head g, position t at
 *                        k + ((l*K + g)*cap + t)*D
 *   v: (L, K, cap, D)   same layout
 * so one head's keys 0..len-1 are one contiguous (len, D) row-major matrix.
 * cap grows (doubling, copying) when a call needs more room; pointers into
 * the cache are valid until the next forward_tokens().
 *
 * Attention hook. Everything in a layer except "queries + cached keys/values
 * -> head outputs" is fixed. That one step goes through a ForwardAttn, called
 * once per (layer, head, block of query rows). The default is exact causal
 * softmax attention (forward_attn_exact). A low-rank method replaces it per
 * (layer, head) by installing its own ForwardAttn with forward_set_attn(), and
 * may call forward_attn_exact() for the heads it leaves exact.
 *
 * Memory: the exact hook holds at most one (rows x n_keys) block of scores
 * per worker thread (rows <= FORWARD_ATTN_BLOCK), never a whole T x T matrix,
 * so 8192+ token sequences need O(T * D) cache plus O(threads * block * T)
 * scratch.
 *
 * Threads: heads (and query blocks) run in parallel on forward's own worker
 * threads; while they run, OpenBLAS is set to one thread, and restored after,
 * so the two kinds of parallelism never nest. Projections and the MLP use
 * OpenBLAS's own threads.
 */
#ifndef DRRL_FORWARD_H
#define DRRL_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "base/status.h"

/* Query rows per exact attention call when the forward splits a call. */
#define FORWARD_ATTN_BLOCK 128

/* One attention call: n query rows of one head of one layer. The rows are the
 * queries at absolute positions pos0 .. pos0+n-1, and each attends causally to
 * keys 0 .. its own position. The call sees n_keys >= pos0 + n keys: pos0 + n,
 * except where the forward split a block of FORWARD_ATTN_BLOCK rows over its
 * threads (rows_per_call 0, threads more than tasks): then n_keys is the end
 * of the block, and each row's keys past its own position count as masked
 * (zero probability), so the call computes the block's products restricted to
 * its rows, with the same bits. */
typedef struct ForwardAttnArgs {
    int layer;      /* 0 .. L-1 */
    int head;       /* query head 0 .. H-1 */
    int kv_head;    /* head / (H / K) */
    int head_dim;   /* D */
    size_t pos0;    /* absolute position of query row 0 */
    size_t n;       /* query rows in this call (>= 1) */
    size_t n_keys;  /* >= pos0 + n (see above) */
    float scale;    /* multiply q.k by this before the softmax */
    const float *q; /* (n, D), row stride q_stride: post-RoPE queries */
    size_t q_stride;
    const float *k; /* (n_keys, D), contiguous: this kv head's keys */
    const float *v; /* (n_keys, D), contiguous: its values */
    float *out;     /* (n, D), row stride out_stride: write the outputs */
    size_t out_stride;
    float *probs; /* NULL, or (n, probs_stride): write the attention
                     probabilities; row i covers keys 0..pos0+i, the
                     rest of the row (up to n_keys) must be set to 0 */
    size_t probs_stride;
    float *scratch;   /* n * n_keys floats for this call alone */
    void *thread_ctx; /* ForwardAttn.thread_ctx[worker] or NULL */
    int worker;       /* 0 .. threads-1: which worker runs the call */
} ForwardAttnArgs;

typedef struct ForwardAttn {
    const char *name; /* "exact", ... */
    void *ctx;
    /* Compute one call. Called concurrently from several worker threads for
     * different (head, row block) pairs of the same layer; never for two
     * layers at once. Return DRRL_OK or an error (the forward then stops). */
    DrrlStatus (*head)(void *ctx, const ForwardAttnArgs *a, DrrlError *err);
    /* Optional, called on the calling thread before a layer's attention
     * calls: lets a method decide per (layer, head) before the heads run.
     * q: (n, H*D) post-RoPE queries of the step; the cache already holds this
     * step's keys and values (forward_cache_k/v). */
    DrrlStatus (*layer_begin)(void *ctx, int layer, size_t pos0, size_t n, const float *q,
                              DrrlError *err);
    /* Query rows per call: 0 lets the forward choose (FORWARD_ATTN_BLOCK,
     * split further into rows at multiples of 12 when threads would idle);
     * SIZE_MAX gives each head all n rows in one call (scratch is then
     * n * n_keys floats: mind the memory for long sequences). */
    size_t rows_per_call;
    /* Optional, called on the calling thread at the start of every
     * forward_tokens() call, before its first layer: positions pos0 ..
     * pos0+n-1. */
    DrrlStatus (*call_begin)(void *ctx, size_t pos0, size_t n, DrrlError *err);
    /* 0, or the hook's segment length T: a call is then cut into pieces at
     * the positions that are multiples of T, and each layer runs its
     * projections, norms and MLP once over all the call's rows ("layer
     * major"), but layer_begin and the attention stage once per piece, in
     * order, each as a call of that piece alone would (the same head()
     * calls). Every product is tiled piece by piece as such a call tiles
     * it, so a call over several pieces gives bit for bit what one call per
     * piece gives; only the order across layers changes (layer l of every
     * piece runs before layer l+1 of the first): the hook must not carry
     * anything from a layer to a later one within a call. */
    size_t segment;
    /* With segment: nothing a piece's head() calls read is changed by a
     * later piece's layer_begin, nor written by an earlier piece's head()
     * calls (exact attention): a layer then runs the layer_begin of every
     * piece first, then one attention stage for all. */
    int pieces_together;
    /* Optional: query rows per call for the piece of n rows at pos0 of
     * layer `layer` (0: rows_per_call), asked on the calling thread after
     * that piece's layer_begin (with pieces_together, after every piece's),
     * so that a hook can cut finer where its calls' bits do not depend on
     * the rows that come with them. */
    size_t (*piece_rows)(void *ctx, int layer, size_t pos0, size_t n);
} ForwardAttn;

/* The exact hook: scores = scale * q k^T (cblas_sgemm), causal mask, softmax
 * (max-subtracted, sum in double), out = P v (cblas_sgemm). ctx is unused.
 * Thread-safe; results do not depend on the thread or CPU features. */
DrrlStatus forward_attn_exact(void *ctx, const ForwardAttnArgs *a, DrrlError *err);

/* The exp the exact softmax uses, for x <= 0 (exposed for its test):
 * within 2 ulp of exp(x); 0 below -87. */
float forward_exp_nonpos(float x);

/* What forward_tokens() can record besides the logits. Any pointer may be
 * NULL. n = tokens in the call, n_keys = pos0 + n. */
typedef struct ForwardCapture {
    float *hidden;      /* (L+1, n, C): transformers' output_hidden_states:
                           hidden[0] = embeddings, hidden[l] = input of layer
                           l, hidden[L] = after the final norm */
    float *attn;        /* (L, H, n, attn_stride): attention probabilities
                           of the n new queries over keys 0..n_keys-1 (zeros
                           right of the diagonal) */
    size_t attn_stride; /* >= n_keys */
} ForwardCapture;

typedef struct Forward Forward;

/* A forward pass over model m (which must outlive it). cap_hint: expected
 * sequence length (the cache grows past it as needed; 0 = m's n_ctx).
 * threads: worker threads for attention (0 = OpenBLAS's thread count). */
DrrlStatus forward_new(const Model *m, size_t cap_hint, int threads, Forward **out,
                       DrrlError *err);
void forward_free(Forward *f);

/* Empty the cache (position 0 again); keeps the memory. */
void forward_reset(Forward *f);

/* Room in the cache for n positions, so that a run of n tokens never grows
 * (and copies) it; keeps what is cached. DRRL_E_NOMEM. */
DrrlStatus forward_reserve(Forward *f, size_t n, DrrlError *err);

/* Tokens processed so far (the cache length). */
size_t forward_len(const Forward *f);
int forward_threads(const Forward *f);

/* Run fn(ctx, task, worker) for task 0..n_tasks-1 on up to `want` of f's
 * threads (the caller is worker 0, workers 0..forward_threads(f)-1), and
 * return when all are done. For a hook's layer_begin (it runs on the
 * calling thread between the forward's own stages); never from inside a
 * task or a head() call. */
typedef void (*ForwardTaskFn)(void *ctx, size_t task, int worker);
void forward_parallel(Forward *f, size_t n_tasks, int want, ForwardTaskFn fn, void *ctx);

/* Counters for tuning: the pool stages run so far (every stage,
 * forward_parallel's included) and how many of them met several threads (a
 * barrier each), deterministic for a given model, input and thread count;
 * and per kind of stage, measured (wall clock) over the stages on several
 * threads: their time from opening to the last task's end, that times the
 * threads the stage asked for (the room), and the time its tasks ran
 * (busy / slot is how well the stage kept its threads working). */
typedef enum ForwardStageKind {
    FORWARD_STAGE_LINEAR, /* linear layers (sgemm tiles) */
    FORWARD_STAGE_ROWS,   /* row-wise work: norms, RoPE, activations, losses */
    FORWARD_STAGE_ATTN,   /* the attention heads (exact, or the hook's head()) */
    FORWARD_STAGE_HOOK,   /* the hook's own stages (forward_parallel) */
    FORWARD_STAGE_KINDS
} ForwardStageKind;
typedef struct ForwardPoolStats {
    uint64_t stages, meets;
    uint64_t calls; /* forward_tokens calls, */
    double call_s;  /* and their wall time, the stages' included; */
    double hook_s;  /* of it, in the hook's call_begin and layer_begin (its
                       stages included) */
    uint64_t kind_stages[FORWARD_STAGE_KINDS];
    double kind_s[FORWARD_STAGE_KINDS], kind_slot_s[FORWARD_STAGE_KINDS],
        kind_busy_s[FORWARD_STAGE_KINDS];
} ForwardPoolStats;
void forward_pool_stats(const Forward *f, ForwardPoolStats *ps);

/* Install an attention hook (copied); NULL restores exact attention. */
void forward_set_attn(Forward *f, const ForwardAttn *attn);

/* Run n tokens (ids in 0..V-1) at positions forward_len(f) ... and append them
 * to the cache. logits: NULL or (n, V). cap: NULL or what to record.
 * Errors: DRRL_E_USAGE (id out of range; GPT-2 past n_ctx positions),
 * DRRL_E_NOMEM, or a hook's error. On error the cache is left as before the
 * call. */
DrrlStatus forward_tokens(Forward *f, const int32_t *ids, size_t n, float *logits,
                          const ForwardCapture *cap, DrrlError *err);

/* The language-model head of rows row0 .. row0+n-1 of the last successful
 * forward_tokens() call (which may have been given logits NULL): logits
 * (n, V). The same bits as that call gives when row0 .. row0+n-1 is one of
 * its pieces (ForwardAttn.segment; the whole call for an unsegmented hook),
 * so a long call can hand its logits out a segment at a time. Valid until
 * the next forward_tokens() or forward_reset(). DRRL_E_USAGE for rows the
 * call did not run; DRRL_E_NUMERIC as forward_tokens(). */
DrrlStatus forward_logits(Forward *f, size_t row0, size_t n, float *logits, DrrlError *err);

/* The cache of layer l, kv head g: (forward_len(f), D) contiguous rows. */
const float *forward_cache_k(const Forward *f, int l, int g);
const float *forward_cache_v(const Forward *f, int l, int g);

/* Per-row next-token negative log-likelihood (natural log) on f's threads:
 * nll[i] = logsumexp(logits[i, :]) - logits[i, next[i]] for n rows of (n, V)
 * logits; NAN where next[i] is outside 0..V-1. Exponentials in float
 * (forward_exp_nonpos, within 2 ulp), sums in double; each row's result
 * depends on that row alone, whatever the thread count. */
void forward_nll_rows(Forward *f, const float *logits, const int32_t *next, size_t n,
                      double *nll);

/* Mean next-token cross-entropy (natural log) of ids[1..n-1] given logits
 * (n, V) of ids[0..n-2], log-sum-exp in double. n >= 2. */
double forward_loss(const float *logits, const int32_t *ids, size_t n, int vocab);

#endif
