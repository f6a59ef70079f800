#include "run/session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/clock.h"
#include "policy/policy_agent.h"

struct Session {
    Model *m;
    Tokenizer *tok;
    Forward *f;
    AttnCore *core;
    AttnCoreConfig cfg;
    int32_t *ids;
    size_t n_ids, pos;
    TraceSink sinks[SESSION_MAX_SINKS];
    int n_sinks;
    float *logits;     /* (chunk, V) of the last call */
    size_t logits_cap; /* rows */
    size_t last_rows;  /* rows in the last call */
    double nll;
    size_t nll_n;
    double wall;
    char idtext[32];
    /* display texts (tokenizer_token_text_in), one per id: the tokenizer's
     * own strings or strings in disp_arena */
    const char **disp;
    char *disp_arena;
    PolicyAgent *agent;   /* drrl: the policy choosing ranks (policy_agent.h) */
    bool muted;           /* session_mute: no records to the sinks */
    char warning[512];    /* e.g. a policy trained for another model of this shape */
    bool shared;          /* m and tok are the caller's */
    SessionCapture cap;   /* session_set_capture */
    float *cap_h, *cap_a; /* one call's hidden states and attention rows */
    size_t cap_h_n, cap_a_n;
    size_t chunk_segs; /* session_set_chunk: segments per call, 0 = automatic */
};

static const float *cache_k(const void *ctx, int l, int g)
{
    return forward_cache_k((const Forward *)ctx, l, g);
}
static const float *cache_v(const void *ctx, int l, int g)
{
    return forward_cache_v((const Forward *)ctx, l, g);
}

static DrrlStatus session_init(Session *s, const AttnCoreConfig *cfg, int threads,
                               DrrlError *err)
{
    const Model *m = s->m;
    s->cfg = *cfg;
    /* drrl: load the policy first, it fixes the rank grid (s->cfg). */
    DrrlStatus st =
        policy_agent_prepare(m, &s->cfg, 0.0, &s->agent, s->warning, sizeof s->warning, err);
    if (!st)
        st = attn_core_new(&m->cfg, &s->cfg, &s->core, err);
    if (!st)
        /* cache room for 1 position: session_set_ids reserves what the
         * text needs. n_ctx's room (the default) was zeroed by the kernel
         * at first touch whether or not the text reached it: on 2 MiB
         * pages, the default model's 32 per-head slabs of 512 KiB all fault
         * in at position 0 (32 MiB zeroed for a 1,024-token run). */
        st = forward_new(m, 1, threads, &s->f, err);
    if (st)
        return st;
    attn_core_bind_cache(s->core, cache_k, cache_v, s->f);
    attn_core_bind_pool(s->core, s->f);
    if (s->agent)
        policy_agent_connect(s->agent, s->core, cache_k, cache_v, s->f);
    ForwardAttn fa = attn_core_hook(s->core);
    forward_set_attn(s->f, &fa);
    return DRRL_OK;
}

DrrlStatus session_new(Model *m, Tokenizer *tok, const AttnCoreConfig *cfg, int threads,
                       Session **out, DrrlError *err)
{
    *out = NULL;
    Session *s = calloc(1, sizeof *s);
    if (!s) {
        model_free(m), tokenizer_free(tok);
        return drrl_error(err, DRRL_E_NOMEM, "session: out of memory");
    }
    s->m = m, s->tok = tok;
    DrrlStatus st = session_init(s, cfg, threads, err);
    if (st) {
        session_free(s);
        return st;
    }
    *out = s;
    return DRRL_OK;
}

DrrlStatus session_new_shared(const Model *m, const Tokenizer *tok, const AttnCoreConfig *cfg,
                              int threads, Session **out, DrrlError *err)
{
    *out = NULL;
    Session *s = calloc(1, sizeof *s);
    if (!s)
        return drrl_error(err, DRRL_E_NOMEM, "session: out of memory");
    /* never freed or written through: shared */
    s->m = (Model *)m, s->tok = (Tokenizer *)tok, s->shared = true;
    DrrlStatus st = session_init(s, cfg, threads, err);
    if (st) {
        session_free(s);
        return st;
    }
    *out = s;
    return DRRL_OK;
}

DrrlStatus session_open(const char *model_dir, const AttnCoreConfig *cfg, int threads,
                        Session **out, DrrlError *err)
{
    *out = NULL;
    Model *m = NULL;
    DrrlStatus st = model_load(model_dir, &m, err);
    if (st)
        return st;
    Tokenizer *tok = NULL;
    DrrlError terr;
    if (tokenizer_load_dir(model_dir, m->cfg.vocab, &tok, &terr) != DRRL_OK) {
        if (terr.code != DRRL_E_NOTFOUND) {
            model_free(m);
            if (err)
                *err = terr;
            return terr.code;
        }
        tok = NULL; /* no tokenizer: ids only */
    }
    return session_new(m, tok, cfg, threads, out, err);
}

void session_free(Session *s)
{
    if (!s)
        return;
    forward_free(s->f);
    attn_core_free(s->core);
    policy_agent_free(s->agent);
    if (!s->shared) {
        model_free(s->m);
        tokenizer_free(s->tok);
    }
    DRRL_FREE(s->ids, s->logits, s->cap_h, s->cap_a, s->disp, s->disp_arena, s);
}

void session_mute(Session *s, bool mute)
{
    s->muted = mute;
}

double session_budget(const Session *s)
{
    return s->agent ? policy_agent_budget(s->agent) : NAN;
}

void session_set_knobs(Session *s, double eps, double budget)
{
    attn_core_set_eps(s->core, eps);
    if (s->agent && budget > 0)
        policy_agent_set_budget(s->agent, budget);
}

void session_restart(Session *s)
{
    forward_reset(s->f);
    attn_core_reset(s->core);
    s->pos = 0, s->nll = 0.0, s->nll_n = 0, s->wall = 0.0, s->last_rows = 0;
}

/* The display text of every token in its context (tokenizer_token_text_in:
 * SentencePiece's '\u2581' as a space, a character split over byte pieces
 * shown whole on its first piece, partial UTF-8 escaped): *disp[i] is the
 * tokenizer's own string or one in *arena. Returns 0, or -1 when out of
 * memory. */
static int display_texts(const Tokenizer *tok, const int32_t *ids, size_t n,
                         const char ***disp_out, char **arena_out)
{
    const char **disp = malloc((n ? n : 1) * sizeof *disp);
    size_t *off = malloc((n ? n : 1) * sizeof *off);
    char *arena = NULL;
    size_t len = 0, cap = 0;
    if (!disp || !off)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        const char *t = tokenizer_token_text_in(tok, ids, n, i, buf, sizeof buf);
        disp[i] = t;
        off[i] = SIZE_MAX;
        if (t != buf)
            continue;
        size_t k = strlen(buf) + 1;
        if (len + k > cap) {
            size_t nc = cap ? 2 * cap : 1024;
            while (nc < len + k)
                nc *= 2;
            char *a = realloc(arena, nc);
            if (!a)
                goto fail;
            arena = a, cap = nc;
        }
        memcpy(arena + len, buf, k);
        off[i] = len;
        len += k;
    }
    for (size_t i = 0; i < n; i++)
        if (off[i] != SIZE_MAX)
            disp[i] = arena + off[i];
    free(off);
    *disp_out = disp, *arena_out = arena;
    return 0;
fail:
    free(disp), free(off), free(arena);
    return -1;
}

DrrlStatus session_set_ids(Session *s, const int32_t *ids, size_t n, DrrlError *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->m->cfg.vocab)
            return drrl_error(err, DRRL_E_INPUT,
                              "token %zu: id %d outside the model's vocabulary "
                              "(0..%d)",
                              i, (int)ids[i], s->m->cfg.vocab - 1);
    int32_t *c = malloc((n ? n : 1) * sizeof *c);
    if (!c)
        return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for %zu ids", n);
    memcpy(c, ids, n * sizeof *c);
    const char **disp = NULL;
    char *arena = NULL;
    if (s->tok && display_texts(s->tok, c, n, &disp, &arena)) {
        free(c);
        return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for %zu token texts", n);
    }
    free(s->ids), free(s->disp), free(s->disp_arena);
    s->ids = c, s->n_ids = n, s->disp = disp, s->disp_arena = arena;
    memset(&s->cap, 0, sizeof s->cap);
    session_restart(s);
    DrrlStatus st = forward_reserve(s->f, n, err);
    return st ? st : attn_core_reserve(s->core, n, err);
}

DrrlStatus session_set_text(Session *s, const char *bytes, size_t len, DrrlError *err)
{
    if (!s->tok)
        return drrl_error(err, DRRL_E_USAGE, "%s: the model has no tokenizer; give token ids",
                          s->m->dir ? s->m->dir : "model");
    int32_t *ids = NULL;
    size_t n = 0;
    DrrlStatus st = tokenizer_encode(s->tok, bytes, len, &ids, &n, err);
    if (st)
        return st;
    st = session_set_ids(s, ids, n, err);
    free(ids);
    return st;
}

DrrlStatus session_add_sink(Session *s, TraceSink sink, DrrlError *err)
{
    if (s->n_sinks >= SESSION_MAX_SINKS)
        return drrl_error(err, DRRL_E_USAGE, "session: at most %d trace sinks",
                          SESSION_MAX_SINKS);
    s->sinks[s->n_sinks++] = sink;
    return DRRL_OK;
}

const char *session_token_text(const Session *s, size_t i)
{
    if (i >= s->n_ids)
        return "";
    if (s->tok)
        return s->disp[i];
    snprintf(((Session *)s)->idtext, sizeof s->idtext, "#%d", (int)s->ids[i]);
    return s->idtext;
}

void session_set_capture(Session *s, const SessionCapture *cap)
{
    s->cap = *cap;
}

/* One call's capture buffers (n tokens) for the arrays asked for. */
static DrrlStatus capture_buffers(Session *s, size_t n, ForwardCapture *fc, DrrlError *err)
{
    const ModelConfig *c = &s->m->cfg;
    size_t L = (size_t)c->n_layer, H = (size_t)c->n_head, C = (size_t)c->d_model;
    size_t nh = s->cap.hidden ? (L + 1) * n * C : 0,
           na = s->cap.attn ? L * H * n * s->n_ids : 0;
    if (nh > s->cap_h_n) {
        free(s->cap_h);
        if (!(s->cap_h = malloc(nh * sizeof *s->cap_h)))
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for %zu tokens", n);
        s->cap_h_n = nh;
    }
    if (na > s->cap_a_n) {
        free(s->cap_a);
        if (!(s->cap_a = malloc(na * sizeof *s->cap_a)))
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for %zu tokens",
                              s->n_ids);
        s->cap_a_n = na;
    }
    fc->hidden = nh ? s->cap_h : NULL, fc->attn = na ? s->cap_a : NULL;
    return DRRL_OK;
}

/* The rows [r0, r0 + n) of a call of n_call rows (one piece, at s->pos)
 * into place: their logits (lg, (n, V)), hidden states and attention
 * rows. */
static void capture_copy(Session *s, size_t r0, size_t n, size_t n_call, const float *lg,
                         const ForwardCapture *fc)
{
    const ModelConfig *c = &s->m->cfg;
    size_t L = (size_t)c->n_layer, H = (size_t)c->n_head, C = (size_t)c->d_model;
    size_t V = (size_t)c->vocab, T = s->n_ids, p = s->pos;
    if (s->cap.logits && !s->cap.no_logits)
        memcpy(s->cap.logits + p * V, lg, n * V * sizeof *lg);
    for (size_t l = 0; fc->hidden && l <= L; l++)
        memcpy(s->cap.hidden + (l * T + p) * C, fc->hidden + (l * n_call + r0) * C,
               n * C * sizeof(float));
    for (size_t lh = 0; fc->attn && lh < L * H; lh++)
        for (size_t i = 0; i < n; i++) {
            float *dst = s->cap.attn + (lh * T + p + i) * T;
            memcpy(dst, fc->attn + (lh * n_call + r0 + i) * T, (p + n) * sizeof(float));
            memset(dst + p + n, 0, (T - p - n) * sizeof(float));
        }
}

/* Logits of at most this many floats are computed in the forward call;
 * beyond, a call over several segments hands them out a segment at a
 * time (forward_logits): the same bits, a segment's worth of memory. */
#define SESSION_LOGITS_WHOLE ((size_t)4 << 20)

/* Piece r0.. (n rows, at s->pos) of a call of n_call rows, run: its logits
 * lg, captures, records and loss (its rows' terms from nll + r0 when the
 * call's were computed at once, else here); then s->pos moves past it. */
static DrrlStatus finish_piece(Session *s, size_t r0, size_t n, size_t n_call, const float *lg,
                               const ForwardCapture *fc, const double *nll_call, DrrlError *err)
{
    bool logits = !s->cap.no_logits;
    capture_copy(s, r0, n, n_call, lg, fc);
    /* token texts for the records (the display texts live as long as the
     * ids; the "#ID" fallback needs per-row storage) */
    const char **texts = NULL;
    char(*idt)[16] = NULL;
    if (s->n_sinks) {
        texts = malloc(n * sizeof *texts);
        idt = s->tok ? NULL : malloc(n * sizeof *idt);
        if (!texts || (!s->tok && !idt)) {
            free(texts), free(idt);
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            if (s->tok) {
                texts[i] = s->disp[s->pos + i];
            } else {
                snprintf(idt[i], sizeof idt[i], "#%d", (int)s->ids[s->pos + i]);
                texts[i] = idt[i];
            }
        }
    }
    DrrlStatus st = attn_core_finish_call(s->core, s->pos, n, texts, s->sinks,
                                          s->muted ? 0 : s->n_sinks, err);
    free(texts), free(idt);
    if (st)
        return st;
    /* next-token loss (forward_nll_rows: log-sum-exp on the forward's
     * threads), summed in row order */
    size_t nn = s->pos + n < s->n_ids ? n : s->n_ids - s->pos - 1;
    if (logits && s->pos + 1 < s->n_ids && nn > 0) {
        double *nll = nll_call ? NULL : malloc(nn * sizeof *nll);
        if (!nll_call && !nll)
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory");
        if (!nll_call)
            forward_nll_rows(s->f, lg, s->ids + s->pos + 1, nn, nll);
        const double *t = nll_call ? nll_call + r0 : nll;
        for (size_t i = 0; i < nn; i++)
            s->nll += t[i];
        s->nll_n += nn;
        free(nll);
    }
    s->pos += n;
    return DRRL_OK;
}

/* Run n tokens from s->pos in one forward call: within one segment, or
 * from a segment boundary over several with a layer-major method
 * (session_chunk); then each segment's records, in order. */
static DrrlStatus run_call(Session *s, size_t n, DrrlError *err)
{
    size_t V = (size_t)s->m->cfg.vocab, T = (size_t)s->cfg.segment;
    bool logits = !s->cap.no_logits;
    size_t first = T - s->pos % T < n ? T - s->pos % T : n; /* rows of the first piece */
    bool whole = first == n || n * V <= SESSION_LOGITS_WHOLE;
    size_t lrows = whole ? n : T;
    if (logits && lrows > s->logits_cap) {
        /* a segment's logits (26 MB for GPT-2's vocabulary): huge pages */
        float *l = drrl_alloc_large(lrows * V * sizeof *l);
        if (!l)
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for logits");
        if (s->logits)
            memcpy(l, s->logits, s->last_rows * V * sizeof *l);
        free(s->logits);
        s->logits = l, s->logits_cap = lrows;
    }
    ForwardCapture fc = {NULL, NULL, s->n_ids};
    DrrlStatus st = capture_buffers(s, n, &fc, err);
    if (st)
        return st;
    int64_t t0 = clock_now_ns();
    st = forward_tokens(s->f, s->ids + s->pos, n, logits && whole ? s->logits : NULL,
                        fc.hidden || fc.attn ? &fc : NULL, err);
    s->wall += 1e-9 * (double)(clock_now_ns() - t0);
    if (st)
        return st;
    /* logits of several segments at hand: their rows' losses in one stage
     * (each row's term depends on that row alone) */
    double *nll = NULL;
    size_t nn = s->pos + n < s->n_ids ? n : s->n_ids - s->pos - 1;
    if (logits && whole && first < n && s->pos + 1 < s->n_ids && nn > 0) {
        if (!(nll = malloc(nn * sizeof *nll)))
            return drrl_error(err, DRRL_E_NOMEM, "session: out of memory");
        forward_nll_rows(s->f, s->logits, s->ids + s->pos + 1, nn, nll);
    }
    for (size_t r0 = 0, pn = first; r0 < n; r0 += pn, pn = n - r0 < T ? n - r0 : T) {
        const float *lg = s->logits ? s->logits + (whole ? r0 : 0) * V : NULL;
        if (logits && !whole) {
            t0 = clock_now_ns();
            st = forward_logits(s->f, r0, pn, s->logits, err);
            s->wall += 1e-9 * (double)(clock_now_ns() - t0);
            if (st)
                break;
            s->last_rows = pn;
        } else if (logits) {
            s->last_rows = r0 + pn;
        }
        if ((st = finish_piece(s, r0, pn, n, lg, &fc, nll, err)))
            break;
    }
    free(nll);
    return st;
}

/* Tokens per forward call from a segment boundary: several segments
 * (layer-major, forward.h) where the method allows, about
 * SESSION_CHUNK_ROWS_PER_THREAD rows per thread of the forward (each stage
 * then has a few row tiles per thread, where one 128-token segment leaves
 * most of 16 threads idle; and a linear task packs its weights once for
 * more rows: 512 since 2026-12-08, was 128), at most SESSION_CHUNK_ROWS, and as many
 * as keep the call's activations, row statistics and captures within
 * SESSION_CHUNK_BYTES; else one segment. */
#define SESSION_CHUNK_ROWS_PER_THREAD ((size_t)512)
#define SESSION_CHUNK_ROWS ((size_t)2048)
#define SESSION_CHUNK_BYTES ((size_t)256 << 20)

size_t session_chunk(const Session *s)
{
    size_t T = (size_t)s->cfg.segment;
    if (!attn_core_layer_major(s->core) || T >= SESSION_CHUNK_ROWS)
        return T;
    const ModelConfig *c = &s->m->cfg;
    size_t L = (size_t)c->n_layer, H = (size_t)c->n_head, C = (size_t)c->d_model;
    size_t HD = H * (size_t)c->head_dim, KD = (size_t)c->n_kv_head * (size_t)c->head_dim;
    /* per row: x, h, q, att, k, v, f1, f2; the core's row statistics;
     * captures (the logits take at most SESSION_LOGITS_WHOLE floats) */
    double row = 4.0 * (2.0 * C + 2.0 * HD + 2.0 * KD + 2.0 * (double)c->d_ff) +
                 (double)attn_core_row_bytes(s->core);
    if (s->cap.hidden)
        row += 4.0 * (double)(L + 1) * C;
    if (s->cap.attn)
        row += 4.0 * (double)(L * H) * (double)s->n_ids;
    double segs = (double)SESSION_CHUNK_BYTES / (row * (double)T);
    size_t rows = (size_t)forward_threads(s->f) * SESSION_CHUNK_ROWS_PER_THREAD;
    size_t k = (rows < SESSION_CHUNK_ROWS ? rows : SESSION_CHUNK_ROWS) / T;
    if (s->chunk_segs)
        k = s->chunk_segs;
    if (segs < (double)k)
        k = (size_t)segs;
    return (k ? k : 1) * T;
}

void session_set_chunk(Session *s, size_t segments)
{
    s->chunk_segs = segments;
}

void session_pool_stats(const Session *s, ForwardPoolStats *ps)
{
    forward_pool_stats(s->f, ps);
}

DrrlStatus session_step(Session *s, DrrlError *err)
{
    if (s->pos >= s->n_ids)
        return drrl_error(err, DRRL_E_USAGE, "session: every token has run (%zu)", s->n_ids);
    return run_call(s, 1, err);
}

DrrlStatus session_advance(Session *s, size_t n, size_t *done, DrrlError *err)
{
    size_t ran = 0, T = (size_t)s->cfg.segment, chunk = session_chunk(s);
    DrrlStatus st = DRRL_OK;
    while (ran < n && s->pos < s->n_ids) {
        size_t k = s->pos % T ? T - s->pos % T : chunk;
        if (k > n - ran)
            k = n - ran;
        if (k > s->n_ids - s->pos)
            k = s->n_ids - s->pos;
        if ((st = run_call(s, k, err)))
            break;
        ran += k;
    }
    if (done)
        *done = ran;
    return st;
}

size_t session_pos(const Session *s)
{
    return s->pos;
}
size_t session_len(const Session *s)
{
    return s->n_ids;
}
const int32_t *session_ids(const Session *s)
{
    return s->ids;
}
double session_nll_sum(const Session *s)
{
    return s->nll;
}
size_t session_nll_count(const Session *s)
{
    return s->nll_n;
}
double session_wall_s(const Session *s)
{
    return s->wall;
}
const Model *session_model(const Session *s)
{
    return s->m;
}
const Tokenizer *session_tokenizer(const Session *s)
{
    return s->tok;
}
AttnCore *session_core(Session *s)
{
    return s->core;
}
const char *session_warning(const Session *s)
{
    return s->warning;
}
const float *session_logits(const Session *s)
{
    if (!s->last_rows)
        return NULL;
    return s->logits + (s->last_rows - 1) * (size_t)s->m->cfg.vocab;
}

DrrlStatus session_attention_rows(Session *s, int32_t layer, int32_t head, size_t pos,
                                  size_t max_rows, SessionAttnRows *out, DrrlError *err)
{
    memset(out, 0, sizeof *out);
    const ModelConfig *c = &s->m->cfg;
    if (layer < 0 || layer >= c->n_layer || head < 0 || head >= c->n_head)
        return drrl_error(err, DRRL_E_USAGE, "no head %d of layer %d (model has %d x %d)",
                          (int)head, (int)layer, c->n_layer, c->n_head);
    if (pos >= s->pos)
        return drrl_error(err, DRRL_E_USAGE, "position %zu has not run yet (%zu tokens run)",
                          pos, s->pos);
    if (max_rows < 1)
        max_rows = 1;
    size_t first = pos + 1 > max_rows ? pos + 1 - max_rows : 0;
    size_t nr = pos + 1 - first, nk = pos + 1;
    out->exact = calloc(nr * nk, sizeof *out->exact);
    out->approx = calloc(nr * nk, sizeof *out->approx);
    if (!out->exact || !out->approx) {
        session_attention_rows_free(out);
        return drrl_error(err, DRRL_E_NOMEM, "session: out of memory for attention rows");
    }
    out->first = first, out->n_rows = nr, out->n_keys = nk;
    out->rank = attn_core_rank(s->core, layer, head);
    int g = head / (c->n_head / c->n_kv_head);
    const float *k = forward_cache_k(s->f, layer, g);
    for (size_t i = 0; i < nr; i++) {
        const float *q = attn_core_query(s->core, layer, head, first + i);
        if (!q) {
            session_attention_rows_free(out);
            return drrl_error(err, DRRL_E_USAGE,
                              "session: queries are not kept (set "
                              "keep_queries in the core's config)");
        }
        DrrlStatus st = attn_core_row_probs(s->core, layer, head, q, k, first + i + 1,
                                            out->approx + i * nk, out->exact + i * nk, err);
        if (st) {
            session_attention_rows_free(out);
            return st;
        }
    }
    return DRRL_OK;
}

void session_attention_rows_free(SessionAttnRows *r)
{
    if (!r)
        return;
    free(r->exact), free(r->approx);
    r->exact = r->approx = NULL;
}
