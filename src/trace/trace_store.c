/* trace_store.c: the in-memory TraceRecord store (layout in trace_store.h). */
#include "trace/trace_store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- chunked arena: stable addresses, 4-byte aligned ---- */

typedef struct ArenaChunk {
    struct ArenaChunk *next;
    size_t used, cap;
    _Alignas(8) unsigned char data[];
} ArenaChunk;

typedef struct Arena {
    ArenaChunk *head; /* the chunk being filled; older ones follow ->next */
    size_t bytes;     /* total capacity allocated */
} Arena;

enum { ARENA_CHUNK = 1u << 22 }; /* 4 MiB */

static void *arena_alloc(Arena *a, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        ArenaChunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
        a->bytes += sizeof *c + cap;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

/* Give back the most recent allocation of n bytes (only valid right after). */
static void arena_unalloc(Arena *a, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    a->head->used -= n;
}

static void arena_done(Arena *a)
{
    for (ArenaChunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->bytes = 0;
}

/* ---- rows and steps ---- */

/* The scalar columns of trace_schema.h kept per row without special
 * handling, by storage class: F4 a REAL column as float32, D8 an F64 column,
 * I8 an NS column; NONE: kept elsewhere (step-level fields, lists in the
 * blob, layer/head/method/head_dim/rank below). */
#define SCLASS_I64 NONE
#define SCLASS_I32 NONE
#define SCLASS_TEXT NONE
#define SCLASS_REAL F4
#define SCLASS_F64 D8
#define SCLASS_FLOATS NONE
#define SCLASS_INTS NONE
#define SCLASS_NS I8
#define SCAT(a, b) SCAT_(a, b)
#define SCAT_(a, b) a##b
#define SCLASS_DO(what, name, kind) SCAT(what, SCLASS_##kind)(name)
/* 8-byte members first, then 4-byte ones (no padding). */
#define ROW8_NONE(n)
#define ROW8_F4(n)
#define ROW8_D8(n) double n;
#define ROW8_I8(n) int64_t n;
#define ROW4_NONE(n)
#define ROW4_F4(n) float n;
#define ROW4_D8(n)
#define ROW4_I8(n)
#define ROW8(name, kind, count, lo, hi, range) SCLASS_DO(ROW8_, name, kind)
#define ROW4(name, kind, count, lo, hi, range) SCLASS_DO(ROW4_, name, kind)
/* record -> row and back */
#define PUT_NONE(n)
#define PUT_F4(n) r->n = trace_to_float(rec->n);
#define PUT_D8(n) r->n = rec->n;
#define PUT_I8(n) r->n = rec->n;
#define GET_NONE(n)
#define GET_F4(n) o->n = r->n;
#define GET_D8(n) o->n = r->n;
#define GET_I8(n) o->n = r->n;
#define PUT(name, kind, count, lo, hi, range) SCLASS_DO(PUT_, name, kind)
#define GET(name, kind, count, lo, hi, range) SCLASS_DO(GET_, name, kind)

/* One record without its step-level fields and arrays: 88 bytes. */
typedef struct Row {
    const uint32_t *blob; /* NULL: all four arrays empty; else blob layout below */
    TRACE_COLUMNS(ROW8)   /* flops_exact, flops_executed, wall_ns */
    TRACE_COLUMNS(ROW4)   /* energy_kept, tail_bound, ..., value, reward (float32) */
    uint16_t layer, head, method, head_dim;
    int32_t rank;
} Row;

/* Blob: uint16 counts {n_sigma, n_sigma_v, n_masked, n_policy} (8 bytes),
 * then float sigma[n_sigma], float sigma_v[n_sigma_v], float policy[n_policy],
 * int32 masked[n_masked]. */
enum { BLOB_MAX = 65535 };

typedef struct Step {
    int64_t step, token_index;
    const char *token;
    int32_t segment;
    uint32_t first_row, n_rows;
    uint16_t n_layers, n_heads; /* max layer + 1, max head + 1 within the step */
} Step;

typedef struct CacheEntry {
    TraceRecord *recs;
    uint32_t n;
} CacheEntry;

typedef struct Retired {
    struct Retired *next;
    TraceRecord *recs;
} Retired;

struct TraceStore {
    Row *rows;
    size_t n_rows, cap_rows;
    Step *steps;
    size_t n_steps, cap_steps;
    Arena blobs, strings;
    /* string interning: open addressing over pointers into `strings` */
    const char **tab;
    size_t tab_cap, tab_n;
    const char **methods; /* method id -> interned string */
    size_t n_methods, cap_methods;
    int32_t n_layers, n_heads;
    TraceMeta meta;
    int has_meta;
    /* trace_store_get's cache (mutable behind a const store: see header) */
    CacheEntry *cache;
    size_t cache_cap;
    size_t cache_bytes;
    Retired *retired;
};

TraceStore *trace_store_new(void)
{
    TraceStore *s = calloc(1, sizeof *s);
    if (s)
        trace_meta_init(&s->meta);
    return s;
}

void trace_store_free(TraceStore *s)
{
    if (!s)
        return;
    free(s->rows);
    free(s->steps);
    arena_done(&s->blobs);
    arena_done(&s->strings);
    free(s->tab);
    free(s->methods);
    trace_meta_done(&s->meta);
    for (size_t i = 0; i < s->cache_cap; i++)
        free(s->cache[i].recs);
    free(s->cache);
    for (Retired *r = s->retired, *next; r; r = next) {
        next = r->next;
        free(r->recs);
        free(r);
    }
    free(s);
}

/* Grow *p (an array of elem-byte items with capacity *cap) to hold need items. */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return 1;
        nc *= 2;
    }
    size_t bytes;
    if (drrl_size_mul(nc, elem, &bytes))
        return 1;
    void *q = realloc(*p, bytes);
    if (!q)
        return 1;
    *p = q;
    *cap = nc;
    return 0;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The interned copy of str, or NULL when out of memory. */
static const char *intern(TraceStore *s, const char *str)
{
    if (s->tab_n * 2 >= s->tab_cap) {
        size_t nc = s->tab_cap ? s->tab_cap * 2 : 256;
        const char **nt = calloc(nc, sizeof *nt);
        if (!nt)
            return NULL;
        for (size_t i = 0; i < s->tab_cap; i++)
            if (s->tab[i]) {
                size_t j = hash_str(s->tab[i]) & (nc - 1);
                while (nt[j])
                    j = (j + 1) & (nc - 1);
                nt[j] = s->tab[i];
            }
        free(s->tab);
        s->tab = nt;
        s->tab_cap = nc;
    }
    size_t j = hash_str(str) & (s->tab_cap - 1);
    for (; s->tab[j]; j = (j + 1) & (s->tab_cap - 1))
        if (strcmp(s->tab[j], str) == 0)
            return s->tab[j];
    size_t len = strlen(str) + 1;
    char *c = arena_alloc(&s->strings, len);
    if (!c)
        return NULL;
    memcpy(c, str, len);
    s->tab[j] = c;
    s->tab_n++;
    return c;
}

/* Index of (layer, head) among a step's rows, or -1. */
static long step_find(const TraceStore *s, const Step *st, int32_t layer, int32_t head)
{
    if (layer < 0 || head < 0 || layer >= st->n_layers || head >= st->n_heads)
        return -1;
    const Row *r = s->rows + st->first_row;
    if (st->n_rows == (uint32_t)st->n_layers * st->n_heads) {
        /* Full grid: rows strictly ordered by (layer, head) and as many as
         * cells, so the cell's row is at its row-major position. */
        return (long)layer * st->n_heads + head;
    }
    long lo = 0, hi = (long)st->n_rows - 1;
    uint32_t key = (uint32_t)layer << 16 | (uint32_t)head;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        uint32_t k = (uint32_t)r[mid].layer << 16 | r[mid].head;
        if (k == key)
            return mid;
        if (k < key)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static long find_step(const TraceStore *s, int64_t step)
{
    if (s->n_steps == 0 || step < s->steps[0].step || step > s->steps[s->n_steps - 1].step)
        return -1;
    uint64_t d = (uint64_t)(step - s->steps[0].step);
    if (d < s->n_steps && s->steps[d].step == step)
        return (long)d; /* contiguous steps: the usual case */
    long lo = 0, hi = (long)s->n_steps - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (s->steps[mid].step == step)
            return mid;
        if (s->steps[mid].step < step)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static const Row *lookup(const TraceStore *s, int64_t step, int32_t layer, int32_t head,
                         long *step_idx)
{
    long si = find_step(s, step);
    if (si < 0)
        return NULL;
    long ri = step_find(s, &s->steps[si], layer, head);
    if (ri < 0)
        return NULL;
    if (step_idx)
        *step_idx = si;
    return s->rows + s->steps[si].first_row + ri;
}

/* The record is valid and comes after the last one: a new step, or the same
 * step's next (layer, head) with the same token and segment. */
static DrrlStatus check_order(const TraceStore *s, const TraceRecord *rec, const char *token,
                              int *new_step, DrrlError *err)
{
#define BAD(...) drrl_error(err, DRRL_E_INPUT, __VA_ARGS__)
    DrrlError e;
    if (trace_record_check(rec, &e))
        return BAD("trace record (step %lld, layer %d, head %d): %s", (long long)rec->step,
                   (int)rec->layer, (int)rec->head, e.msg);
    const Step *st = s->n_steps ? &s->steps[s->n_steps - 1] : NULL;
    *new_step = !st || rec->step > st->step;
    if (*new_step)
        return DRRL_OK;
    if (rec->step < st->step)
        return BAD("trace record: step %lld after step %lld (records must be ordered by "
                   "step, layer, head)",
                   (long long)rec->step, (long long)st->step);
    const Row *last = &s->rows[s->n_rows - 1];
    if (rec->layer < last->layer || (rec->layer == last->layer && rec->head <= last->head))
        return BAD("trace record: step %lld layer %d head %d after layer %d head %d "
                   "(records must be ordered by step, layer, head, without repeats)",
                   (long long)rec->step, (int)rec->layer, (int)rec->head, last->layer,
                   last->head);
    if (rec->token_index != st->token_index || rec->segment != st->segment ||
        strcmp(token, st->token) != 0)
        return BAD("trace record: step %lld: token_index, token and segment must be the "
                   "same for every row of a step",
                   (long long)rec->step);
    return DRRL_OK;
#undef BAD
}

/* The method's id (interned on first use): 0, or -1 out of memory, or -2
 * more than 65535 methods. */
static int method_id(TraceStore *s, const char *method, uint16_t *mid)
{
    size_t k = 0;
    for (; k < s->n_methods; k++)
        if (strcmp(s->methods[k], method) == 0)
            break;
    if (k == s->n_methods) {
        if (k >= 65535)
            return -2;
        const char *m = intern(s, method);
        if (!m || grow((void **)&s->methods, &s->cap_methods, k + 1, sizeof *s->methods))
            return -1;
        s->methods[s->n_methods++] = m;
    }
    *mid = (uint16_t)k;
    return 0;
}

/* The record's arrays packed into a blob, shared with the previous step's
 * blob of the same head when equal. 0 (*blob NULL when there are none), or
 * -1 out of memory. st: the last step (NULL if none). */
static int pack_blob(TraceStore *s, const TraceRecord *rec, const Step *st, int new_step,
                     const uint32_t **blob)
{
    *blob = NULL;
    size_t nwords = (size_t)rec->n_sigma + (size_t)rec->n_sigma_v + (size_t)rec->n_masked +
                    (size_t)rec->n_policy;
    if (nwords == 0)
        return 0;
    size_t bytes = 8 + 4 * nwords;
    uint32_t *b = arena_alloc(&s->blobs, bytes);
    if (!b)
        return -1;
    uint16_t *cnt = (uint16_t *)b;
    cnt[0] = (uint16_t)rec->n_sigma;
    cnt[1] = (uint16_t)rec->n_sigma_v;
    cnt[2] = (uint16_t)rec->n_masked;
    cnt[3] = (uint16_t)rec->n_policy;
    float *f = (float *)(b + 2);
    if (rec->n_sigma)
        memcpy(f, rec->sigma, 4 * (size_t)rec->n_sigma);
    f += rec->n_sigma;
    if (rec->n_sigma_v)
        memcpy(f, rec->sigma_v, 4 * (size_t)rec->n_sigma_v);
    f += rec->n_sigma_v;
    if (rec->n_policy)
        memcpy(f, rec->policy_probs, 4 * (size_t)rec->n_policy);
    f += rec->n_policy;
    if (rec->n_masked)
        memcpy(f, rec->masked, 4 * (size_t)rec->n_masked);
    *blob = b;
    if (s->n_steps > 0) {
        const Step *prev = new_step ? st : (s->n_steps > 1 ? st - 1 : NULL);
        long ri = prev ? step_find(s, prev, rec->layer, rec->head) : -1;
        const uint32_t *pb = ri >= 0 ? s->rows[prev->first_row + ri].blob : NULL;
        if (pb && memcmp(pb, b, bytes) == 0) {
            arena_unalloc(&s->blobs, bytes);
            *blob = pb;
        }
    }
    return 0;
}

DrrlStatus trace_store_put(TraceStore *s, const TraceRecord *rec, DrrlError *err)
{
    const char *token = rec->token ? rec->token : "";
    const char *method = rec->method ? rec->method : "";
    int new_step;
    DrrlStatus bad = check_order(s, rec, token, &new_step, err);
    if (bad)
        return bad;
    if (s->n_rows >= UINT32_MAX)
        return drrl_error(err, DRRL_E_NOMEM, "trace store: more than 2^32 rows");
    if (grow((void **)&s->rows, &s->cap_rows, s->n_rows + 1, sizeof *s->rows) ||
        (new_step && grow((void **)&s->steps, &s->cap_steps, s->n_steps + 1, sizeof *s->steps)))
        goto nomem;
    Step *st = s->n_steps ? &s->steps[s->n_steps - 1] : NULL; /* steps may have moved */
    uint16_t mid = 0;
    int m = method_id(s, method, &mid);
    if (m == -2)
        return drrl_error(err, DRRL_E_INPUT, "trace record: more than 65535 distinct methods");
    const uint32_t *blob;
    if (m || pack_blob(s, rec, st, new_step, &blob))
        goto nomem;
    if (new_step) {
        const char *tok = intern(s, token);
        if (!tok)
            goto nomem;
        Step *ns = &s->steps[s->n_steps++];
        ns->step = rec->step;
        ns->token_index = rec->token_index;
        ns->token = tok;
        ns->segment = rec->segment;
        ns->first_row = (uint32_t)s->n_rows;
        ns->n_rows = 0;
        ns->n_layers = ns->n_heads = 0;
        st = ns;
    }
    Row *r = &s->rows[s->n_rows++];
    r->blob = blob;
    TRACE_COLUMNS(PUT)
    r->layer = (uint16_t)rec->layer;
    r->head = (uint16_t)rec->head;
    r->method = mid;
    r->head_dim = (uint16_t)rec->head_dim;
    r->rank = rec->rank;
    st->n_rows++;
    if (rec->layer + 1 > st->n_layers)
        st->n_layers = (uint16_t)(rec->layer + 1);
    if (rec->head + 1 > st->n_heads)
        st->n_heads = (uint16_t)(rec->head + 1);
    if (rec->layer + 1 > s->n_layers)
        s->n_layers = rec->layer + 1;
    if (rec->head + 1 > s->n_heads)
        s->n_heads = rec->head + 1;
    return DRRL_OK;
nomem:
    return drrl_error(err, DRRL_E_NOMEM, "trace store: out of memory");
}

static DrrlStatus sink_put(TraceSink *self, const TraceRecord *rec, DrrlError *err)
{
    return trace_store_put(self->ctx, rec, err);
}

TraceSink trace_store_sink(TraceStore *s)
{
    TraceSink k = {sink_put, s};
    return k;
}

DrrlStatus trace_store_set_meta(TraceStore *s, const TraceMeta *meta, DrrlError *err)
{
    DrrlStatus st = trace_meta_replace(&s->meta, meta, err);
    if (!st)
        s->has_meta = 1;
    return st;
}

const TraceMeta *trace_store_meta(const TraceStore *s)
{
    return s->has_meta ? &s->meta : NULL;
}

size_t trace_store_n_rows(const TraceStore *s)
{
    return s->n_rows;
}

int64_t trace_store_n_steps(const TraceStore *s)
{
    return (int64_t)s->n_steps;
}

int32_t trace_store_n_layers(const TraceStore *s)
{
    return s->n_layers;
}

int32_t trace_store_n_heads(const TraceStore *s)
{
    return s->n_heads;
}

static void fill(const TraceStore *s, const Step *st, const Row *r, TraceRecord *o)
{
    o->step = st->step;
    o->token_index = st->token_index;
    o->token = st->token;
    o->segment = st->segment;
    o->layer = r->layer;
    o->head = r->head;
    o->method = s->methods[r->method];
    o->rank = r->rank;
    o->head_dim = r->head_dim;
    TRACE_COLUMNS(GET)
    if (r->blob) {
        const uint16_t *cnt = (const uint16_t *)r->blob;
        const float *f = (const float *)(r->blob + 2);
        o->n_sigma = cnt[0];
        o->sigma = f;
        f += cnt[0];
        o->n_sigma_v = cnt[1];
        o->sigma_v = f;
        f += cnt[1];
        o->n_policy = cnt[3];
        o->policy_probs = f;
        f += cnt[3];
        o->n_masked = cnt[2];
        o->masked = (const int32_t *)f;
    } else {
        o->n_sigma = o->n_sigma_v = o->n_masked = o->n_policy = 0;
        o->sigma = o->sigma_v = o->policy_probs = NULL;
        o->masked = NULL;
    }
    if (!o->n_sigma)
        o->sigma = NULL;
    if (!o->n_sigma_v)
        o->sigma_v = NULL;
    if (!o->n_policy)
        o->policy_probs = NULL;
    if (!o->n_masked)
        o->masked = NULL;
}

int trace_store_read(const TraceStore *s, int64_t step, int32_t layer, int32_t head,
                     TraceRecord *out)
{
    long si;
    const Row *r = lookup(s, step, layer, head, &si);
    if (!r)
        return 0;
    fill(s, &s->steps[si], r, out);
    return 1;
}

int trace_store_row(const TraceStore *s, size_t i, TraceRecord *out)
{
    if (i >= s->n_rows)
        return 0;
    /* The step holding row i: binary search over first_row. */
    size_t lo = 0, hi = s->n_steps - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (s->steps[mid].first_row <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    fill(s, &s->steps[lo], &s->rows[i], out);
    return 1;
}

const TraceRecord *trace_store_get(const TraceStore *cs, int64_t step, int32_t layer,
                                   int32_t head)
{
    TraceStore *s = (TraceStore *)cs; /* the cache is invisible to callers */
    long si;
    const Row *r = lookup(s, step, layer, head, &si);
    if (!r)
        return NULL;
    const Step *st = &s->steps[si];
    if ((size_t)si >= s->cache_cap) {
        size_t nc = s->cache_cap;
        if (grow((void **)&s->cache, &nc, (size_t)si + 1, sizeof *s->cache))
            return NULL;
        memset(s->cache + s->cache_cap, 0, (nc - s->cache_cap) * sizeof *s->cache);
        s->cache_cap = nc;
    }
    CacheEntry *ce = &s->cache[si];
    if (ce->n < st->n_rows) {
        /* First use, or the step gained rows since (live recording): build a
         * fresh block; an older block stays alive for pointers handed out. */
        TraceRecord *recs = malloc((size_t)st->n_rows * sizeof *recs);
        if (!recs)
            return NULL;
        if (ce->recs) {
            Retired *old = malloc(sizeof *old);
            if (!old) {
                free(recs);
                return NULL;
            }
            old->recs = ce->recs;
            old->next = s->retired;
            s->retired = old;
        }
        for (uint32_t k = 0; k < st->n_rows; k++)
            fill(s, st, &s->rows[st->first_row + k], &recs[k]);
        ce->recs = recs;
        ce->n = st->n_rows;
        s->cache_bytes += (size_t)st->n_rows * sizeof *recs;
    }
    return &ce->recs[r - (s->rows + st->first_row)];
}

int64_t trace_store_step_at(const TraceStore *s, size_t k)
{
    return k < s->n_steps ? s->steps[k].step : -1;
}

int64_t trace_store_step_index(const TraceStore *s, int64_t step)
{
    return find_step(s, step);
}

size_t trace_store_bytes(const TraceStore *s)
{
    return sizeof *s + s->cap_rows * sizeof *s->rows + s->cap_steps * sizeof *s->steps +
           s->blobs.bytes + s->strings.bytes + s->tab_cap * sizeof *s->tab +
           s->cap_methods * sizeof *s->methods + s->cache_cap * sizeof *s->cache +
           s->cache_bytes;
}
