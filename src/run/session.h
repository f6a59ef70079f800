/* session.h: one model, its forward pass and an attention core, stepped
 * through a token sequence; the engine behind `drrl run`, `drrl eval` and the
 * TUI.
 *
 * A Session owns the model (loaded from a directory, or adopted), a Forward
 * with the AttnCore installed as its attention hook, the tokenizer (when the
 * model has one: token texts for display and records), the token ids to run,
 * and a list of TraceSinks. Each processed token emits one TraceRecord per
 * (layer, head) to every sink, in order of (step, layer, head).
 *
 * Stepping: session_step() runs exactly one token (the TUI); session_advance()
 * runs up to n tokens in calls that end at segment boundaries (faster: the
 * projections run as matrix products), several segments per call where the
 * method allows (session_chunk). Both give the same records up to float
 * round-off, and the same decisions.
 *
 * Errors: DRRL_E_USAGE (bad method for the model, nothing left to run),
 * DRRL_E_INPUT / DRRL_E_NOTFOUND (model or tokenizer files), DRRL_E_NOMEM,
 * and whatever a sink returns (a failing sink stops the step; the records it
 * already accepted stay).
 */
#ifndef DRRL_SESSION_H
#define DRRL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/attn_core.h"
#include "model/forward.h"
#include "model/model.h"
#include "base/status.h"
#include "model/tokenizer.h"
#include "trace/trace.h"

#define SESSION_MAX_SINKS 8

typedef struct Session Session;

/* Load DIR (model_load) and its tokenizer (tokenizer_load_dir; a model
 * without one is fine: ids must then be given with session_set_ids and token
 * texts show as "#ID"). threads: attention worker threads (0 = default). */
DrrlStatus session_open(const char *model_dir, const AttnCoreConfig *cfg, int threads,
                        Session **out, DrrlError *err);
/* Adopt an already loaded model (owned by the session from then on, even on
 * failure) and an optional tokenizer (likewise; NULL = none). */
DrrlStatus session_new(Model *m, Tokenizer *tok, const AttnCoreConfig *cfg, int threads,
                       Session **out, DrrlError *err);
/* Like session_new, but m and tok stay the caller's (they must outlive the
 * session): one model run with several methods in turn. */
DrrlStatus session_new_shared(const Model *m, const Tokenizer *tok, const AttnCoreConfig *cfg,
                              int threads, Session **out, DrrlError *err);
void session_free(Session *s); /* NULL is fine */

/* Capture options: what session_advance/session_step also record for the
 * ids set now, each call's part copied into place (session_set_ids drops
 * them). With T = session_len(s), L layers, H heads, C = d_model, V = vocab;
 * any array may be NULL:
 *   logits (T, V); hidden (L+1, T, C) as ForwardCapture's hidden;
 *   attn (L, H, T, T), row i over keys 0..i, zeros right of the diagonal.
 * no_logits skips the language-model head and the loss (session_nll_*,
 * session_logits stay as they were): hidden states only. */
typedef struct SessionCapture {
    float *logits, *hidden, *attn;
    bool no_logits;
} SessionCapture;
void session_set_capture(Session *s, const SessionCapture *cap);

/* The token sequence to run (copied; restarts at position 0). */
DrrlStatus session_set_ids(Session *s, const int32_t *ids, size_t n, DrrlError *err);
/* Tokenize text with the model's tokenizer and use it (DRRL_E_USAGE without
 * a tokenizer). */
DrrlStatus session_set_text(Session *s, const char *bytes, size_t len, DrrlError *err);

/* Add a sink (copied; at most SESSION_MAX_SINKS: DRRL_E_USAGE). */
DrrlStatus session_add_sink(Session *s, TraceSink sink, DrrlError *err);

/* Back to position 0 (same ids, same sinks); the core forgets its state. */
void session_restart(Session *s);

/* While muted, calls emit no records to the sinks (the explorer replays a
 * prefix it already holds). */
void session_mute(Session *s, bool mute);

/* The live knobs: the safety threshold and, for drrl, the policy's FLOP
 * budget (NAN when there is no policy). Setting applies from the next rank
 * decision (the next segment); budget is ignored without a policy. */
double session_budget(const Session *s);
void session_set_knobs(Session *s, double eps, double budget);

/* Run the next token. DRRL_E_USAGE when every token has run. */
DrrlStatus session_step(Session *s, DrrlError *err);
/* Run up to n more tokens (stopping at the end of the ids); *done (if
 * non-NULL) gets how many ran. */
DrrlStatus session_advance(Session *s, size_t n, size_t *done, DrrlError *err);

/* Tokens session_advance() runs per forward call from a segment boundary:
 * one segment, or several where the method allows layer-major calls
 * (attn_core_layer_major): each layer's projections and MLP then run once
 * over all their rows (far fewer, bigger stages for the forward's threads),
 * bounded by the memory the call's activations, row statistics and
 * captures take. The records, losses and ledgers are bit for bit those of
 * one call per segment. */
size_t session_chunk(const Session *s);
/* For tuning: at most `segments` segments per layer-major call (the memory
 * bound still applies); 0 (the default) chooses by the thread count. */
void session_set_chunk(Session *s, size_t segments);
/* The forward's pool counters and stage times (forward_pool_stats). */
void session_pool_stats(const Session *s, ForwardPoolStats *ps);

size_t session_pos(const Session *s); /* tokens run so far */
size_t session_len(const Session *s); /* tokens in the sequence */
const int32_t *session_ids(const Session *s);
/* Display text of the token at position i in its context
 * (tokenizer_token_text_in: SentencePiece's spaces as spaces, a character
 * split over byte pieces shown whole on its first piece and "" on the rest,
 * partial UTF-8 escaped), valid until the ids change; "#ID" without a
 * tokenizer, "" when out of range. */
const char *session_token_text(const Session *s, size_t i);

/* Logits (vocab floats) of the last token run, or NULL before the first. */
const float *session_logits(const Session *s);
/* Sum of -log p(ids[t+1] | ids[..t]) over the predicted tokens so far, in
 * nats, and how many (positions t whose successor is in the sequence). */
double session_nll_sum(const Session *s);
size_t session_nll_count(const Session *s);
/* Wall time spent in forward calls so far, seconds. */
double session_wall_s(const Session *s);

const Model *session_model(const Session *s);
const Tokenizer *session_tokenizer(const Session *s); /* NULL if none */
AttnCore *session_core(Session *s);

/* Method drrl[:POLICY] (policy_agent.h): the session loads the policy file
 * (cfg->method.policy; the caller resolves an empty one to the default) and
 * runs the core on the policy's rank grid. A policy for another model shape
 * is DRRL_E_INPUT from session_new/open; for another model of the same shape
 * the session opens and session_warning() says so (one line, "" if none).
 * The FLOP budget fed to the policy is the middle of the policy's training
 * range. */
const char *session_warning(const Session *s);

/* Attention rows of one head near a position, exact beside approximate, for
 * the attention pane. Rows are the query positions
 *   [first, first + n_rows), first = max(0, pos + 1 - max_rows), pos < session_pos(),
 * each over keys 0 .. its own position (row i has first + i + 1 valid
 * entries, zeros after, up to n_keys = first + n_rows). The approximate rows
 * are computed with the basis and rank in force now (performer and nystrom:
 * the weights they apply implicitly, see attn_core_row_probs; for the newest row
 * that is what the run used). exact and approx are malloc'ed (n_rows,
 * n_keys); free with session_attention_rows_free. Errors: DRRL_E_USAGE for a
 * bad layer/head/pos, DRRL_E_NOMEM. */
typedef struct SessionAttnRows {
    size_t first, n_rows, n_keys;
    int32_t rank;  /* the head's rank now (head_dim: exact) */
    float *exact;  /* (n_rows, n_keys) */
    float *approx; /* (n_rows, n_keys) */
} SessionAttnRows;
DrrlStatus session_attention_rows(Session *s, int32_t layer, int32_t head, size_t pos,
                                  size_t max_rows, SessionAttnRows *out, DrrlError *err);
void session_attention_rows_free(SessionAttnRows *r);

#endif
