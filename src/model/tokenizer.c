/* tokenizer.c: byte-level and GPT-2 byte-level BPE tokenizers.
 *
 * GPT-2 BPE (Radford et al. 2019, OpenAI's encoder.py; the reference used by
 * the tests is npm gpt-3-encoder 1.1.4, a line-by-line port of it):
 *   1. Split the text with the pre-tokenizer regex
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (implemented by hand below, with Unicode classes from tokenizer_tables.h).
 *   2. Map each piece's bytes to the vocabulary's printable alphabet
 *      (bytes_to_unicode) - here, equivalently, start from the ids of the
 *      256 one-byte tokens.
 *   3. Repeatedly take the adjacent pair with the lowest merge rank and merge
 *      every non-overlapping occurrence of it, left to right, until no
 *      adjacent pair has a rank. A binary heap keyed by (rank, position)
 *      finds the pairs; all occurrences of one rank are taken out of the heap
 *      before any pair the merges create is considered, which is exactly the
 *      reference's "merge all occurrences of the best bigram" loop, in
 *      O(n log n) per piece instead of O(n^2).
 * Bytes that are not valid UTF-8 count as one "other" character each (neither
 * letter, number nor space) for splitting; byte-level BPE encodes any byte, so
 * decode(encode(x)) == x for every byte string.
 * Special tokens written in the text ("<|endoftext|>") are encoded as plain
 * text, as the reference encoder does.
 */
#include "model/tokenizer.h"

#include "base/fileio.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tokenizer_tables.h"

/* Largest vocabulary accepted (the largest real ones have ~256K tokens). */
#define TOKENIZER_MAX_VOCAB (1u << 22)
/* Ids must be nearly dense: arrays are sized by the largest id, so a file with
 * a few tokens at huge ids would cost memory out of all proportion. At most
 * this many ids, plus one per token, may lack a token. */
#define TOKENIZER_MAX_HOLES 1024

typedef struct MergeSlot {
    uint64_t key;   /* (uint64_t)left_id << 32 | right_id */
    uint32_t rank;  /* UINT32_MAX: empty slot */
    int32_t result; /* id of the merged token */
} MergeSlot;

struct Tokenizer {
    TokenizerKind kind;
    size_t n_ids; /* vocabulary size: 1 + largest id */
    char *bytes;  /* raw bytes of all tokens, concatenated */
    size_t bytes_len;
    uint32_t *off;      /* (n_ids) offset of each token in bytes */
    int32_t *len;       /* (n_ids) byte length of each token; -1: no token with this id */
    char *text;         /* NUL-terminated display strings, concatenated */
    uint32_t *text_off; /* (n_ids) offset of each display string in text */
    uint32_t *slots;    /* token lookup: open addressing, id + 1 (0 = empty) */
    size_t slot_mask;   /* capacity - 1 (capacity a power of two) */
    MergeSlot *merges;  /* merge lookup: open addressing */
    size_t merge_mask;
    size_t n_merges;
    int32_t byte_id[256]; /* id of the one-byte token for each byte; -1 if none */
};

/* ---- small helpers ---------------------------------------------------- */

/* GPT-2's bytes_to_unicode(): bytes that are printable Latin-1 (33..126,
 * 161..172, 174..255) map to themselves, the other 68 to U+0100..U+0143 in
 * increasing byte order: 0..32, then 127..160, then 173. */
/* The byte a code point of that alphabet stands for; -1 for one outside it. */
static int gpt2_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return cp <= 32 || (cp >= 127 && cp <= 160) || cp == 173 ? -1 : (int)cp;
    if (cp <= 256 + 32)
        return (int)(cp - 256);
    if (cp <= 256 + 66)
        return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67)
        return 173;
    return -1;
}

/* Decode one UTF-8 code point at s[0..n). Returns its length (1..4) and sets
 * *cp, or returns 0 for an invalid or truncated sequence (overlong forms,
 * surrogates and values above U+10FFFF are invalid). n must be >= 1. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return need;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum CharClass { CC_LETTER, CC_NUMBER, CC_SPACE, CC_OTHER };

static enum CharClass char_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return CC_LETTER;
        if (cp >= '0' && cp <= '9')
            return CC_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
            return CC_SPACE;
        return CC_OTHER;
    }
    if (in_ranges(tokenizer_class_letter, NELEM(tokenizer_class_letter), cp))
        return CC_LETTER;
    if (in_ranges(tokenizer_class_number, NELEM(tokenizer_class_number), cp))
        return CC_NUMBER;
    if (in_ranges(tokenizer_class_space, NELEM(tokenizer_class_space), cp))
        return CC_SPACE;
    return CC_OTHER;
}

/* Class and length of the character at s[i]; an invalid byte is CC_OTHER of
 * length 1. *cp is set to the code point (0xFFFFFFFF for an invalid byte). */
static enum CharClass class_at(const unsigned char *s, size_t n, size_t i, size_t *clen,
                               uint32_t *cp)
{
    size_t k = utf8_decode(s + i, n - i, cp);
    if (k == 0) {
        *clen = 1;
        *cp = 0xFFFFFFFFu;
        return CC_OTHER;
    }
    *clen = k;
    return char_class(*cp);
}

/* Write a short printable rendering of bytes s[0..n) into buf (for error
 * messages): printable ASCII as is, others as \xHH, cut after ~40 bytes. */
static const char *quote(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7F && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
    }
    buf[o] = '\0';
    return buf;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* splitmix64 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Read a whole file. *buf is malloc'ed with a NUL after the *len bytes. */
static DrrlStatus read_file(const char *path, char **buf, size_t *len, DrrlError *err)
{
    return fileio_read_file(path, FILEIO_MAX_TOKENIZER, 0, buf, len, err);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- construction ----------------------------------------------------- */

/* A vocabulary under construction: tokens by id, with raw bytes. */
typedef struct Builder {
    size_t n_ids;
    char *bytes;
    size_t bytes_len, bytes_cap;
    uint32_t *off;
    int32_t *len;
} Builder;

static void builder_done(Builder *b)
{
    free(b->bytes);
    free(b->off);
    free(b->len);
    memset(b, 0, sizeof *b);
}

static DrrlStatus builder_init(Builder *b, size_t n_ids, const char *name, DrrlError *err)
{
    memset(b, 0, sizeof *b);
    b->n_ids = n_ids;
    b->off = calloc(n_ids ? n_ids : 1, sizeof *b->off);
    b->len = malloc((n_ids ? n_ids : 1) * sizeof *b->len);
    if (!b->off || !b->len) {
        builder_done(b);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
    }
    for (size_t i = 0; i < n_ids; i++)
        b->len[i] = -1;
    return DRRL_OK;
}

static DrrlStatus builder_set(Builder *b, size_t id, const char *s, size_t n, const char *name,
                              DrrlError *err)
{
    if (b->bytes_len + n > UINT32_MAX)
        return drrl_error(err, DRRL_E_INPUT, "%s: vocabulary too large", name);
    if (b->bytes_len + n > b->bytes_cap) {
        size_t cap = b->bytes_cap ? b->bytes_cap * 2 : 4096;
        while (cap < b->bytes_len + n)
            cap *= 2;
        char *p = realloc(b->bytes, cap);
        if (!p)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
        b->bytes = p;
        b->bytes_cap = cap;
    }
    memcpy(b->bytes + b->bytes_len, s, n);
    b->off[id] = (uint32_t)b->bytes_len;
    b->len[id] = (int32_t)n;
    b->bytes_len += n;
    return DRRL_OK;
}

/* Append a display rendering of token bytes s[0..n) to the growing buffer. */
typedef struct Growbuf {
    char *p;
    size_t len, cap;
} Growbuf;

static int grow_append(Growbuf *g, const char *s, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8192;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *p = realloc(g->p, cap);
        if (!p)
            return -1;
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, s, n);
    g->len += n;
    g->p[g->len] = '\0';
    return 0;
}

static int render_display(Growbuf *g, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char tmp[16];
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        int r;
        if (k == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02X", u[i]);
            r = grow_append(g, tmp, 4);
            k = 1;
        } else if (cp == '\n') {
            r = grow_append(g, "\\n", 2);
        } else if (cp == '\t') {
            r = grow_append(g, "\\t", 2);
        } else if (cp == '\r') {
            r = grow_append(g, "\\r", 2);
        } else if (cp == '\\') {
            r = grow_append(g, "\\\\", 2);
        } else if (cp < 0x20 || cp == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\x%02X", (unsigned)cp);
            r = grow_append(g, tmp, 4);
        } else if ((cp >= 0x80 && cp < 0xA0) || cp == 0x2028 || cp == 0x2029) {
            snprintf(tmp, sizeof tmp, "\\u%04X", (unsigned)cp);
            r = grow_append(g, tmp, 6);
        } else {
            r = grow_append(g, s + i, k);
        }
        if (r)
            return -1;
        i += k;
    }
    return grow_append(g, "", 1); /* the NUL is part of the entry */
}

static uint32_t token_lookup(const Tokenizer *t, const char *s, size_t n)
{
    if (!t->slots)
        return 0;
    for (size_t i = hash_bytes(s, n) & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        uint32_t v = t->slots[i];
        if (v == 0)
            return 0;
        uint32_t id = v - 1;
        if ((size_t)t->len[id] == n && memcmp(t->bytes + t->off[id], s, n) == 0)
            return v;
    }
}

static const MergeSlot *merge_lookup(const Tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const MergeSlot *m = &t->merges[i];
        if (m->rank == UINT32_MAX)
            return NULL;
        if (m->key == key)
            return m;
    }
}

/* Turn a builder into a tokenizer: take its arrays, build the token index
 * (ids in increasing order; with index_all == 0 only ids < n_index are
 * indexed), the display strings and the one-byte table. The builder is left
 * empty. Duplicate byte strings are reported as an error naming both ids. */
static DrrlStatus tokenizer_from_builder(Builder *b, TokenizerKind kind, size_t n_index,
                                         const char *name, Tokenizer **out, DrrlError *err)
{
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        builder_done(b);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
    }
    t->kind = kind;
    t->n_ids = b->n_ids;
    t->bytes = b->bytes;
    t->bytes_len = b->bytes_len;
    t->off = b->off;
    t->len = b->len;
    memset(b, 0, sizeof *b);
    t->merge_mask = 0;
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;

    size_t n_tokens = 0;
    for (size_t id = 0; id < t->n_ids; id++)
        n_tokens += t->len[id] >= 0;
    size_t cap = 16;
    while (cap < 2 * n_tokens)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        goto nomem;
    t->slot_mask = cap - 1;
    for (size_t id = 0; id < t->n_ids && id < n_index; id++) {
        if (t->len[id] < 0)
            continue;
        const char *s = t->bytes + t->off[id];
        size_t n = (size_t)t->len[id];
        uint32_t prev = token_lookup(t, s, n);
        if (prev) {
            char q[200];
            DrrlStatus st =
                drrl_error(err, DRRL_E_INPUT, "%s:\"%s\": ids %u and %zu are the same token",
                           name, quote(s, n, q, sizeof q), prev - 1, id);
            tokenizer_free(t);
            return st;
        }
        size_t i = hash_bytes(s, n) & t->slot_mask;
        while (t->slots[i])
            i = (i + 1) & t->slot_mask;
        t->slots[i] = (uint32_t)id + 1;
        if (n == 1)
            t->byte_id[(unsigned char)s[0]] = (int32_t)id;
    }

    /* Display strings; ids without a token share the "<?>" at offset 0. */
    Growbuf g = {0};
    t->text_off = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->text_off);
    if (!t->text_off || grow_append(&g, "<?>", 4)) {
        free(g.p);
        goto nomem;
    }
    for (size_t id = 0; id < t->n_ids; id++) {
        t->text_off[id] = t->len[id] < 0 ? 0 : (uint32_t)g.len;
        int r =
            t->len[id] < 0 ? 0 : render_display(&g, t->bytes + t->off[id], (size_t)t->len[id]);
        if (r || g.len > UINT32_MAX) {
            free(g.p);
            goto nomem;
        }
    }
    t->text = g.p;
    *out = t;
    return DRRL_OK;
nomem:
    tokenizer_free(t);
    return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
}

Tokenizer *tokenizer_bytes_new(void)
{
    Builder b;
    if (builder_init(&b, 256, "bytes", NULL))
        return NULL;
    for (unsigned i = 0; i < 256; i++) {
        char c = (char)i;
        if (builder_set(&b, i, &c, 1, "bytes", NULL)) {
            builder_done(&b);
            return NULL;
        }
    }
    Tokenizer *t = NULL;
    if (tokenizer_from_builder(&b, TOKENIZER_BYTES, 256, "bytes", &t, NULL))
        return NULL;
    return t;
}

void tokenizer_free(Tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->bytes);
    free(tok->off);
    free(tok->len);
    free(tok->text);
    free(tok->text_off);
    free(tok->slots);
    free(tok->merges);
    free(tok);
}

/* Convert a vocabulary string in GPT-2's printable alphabet (UTF-8, n bytes)
 * to raw bytes in out (at least n bytes). Returns the raw length, or -1 and
 * sets *bad_cp / *bad_at (byte offset) for a character outside the alphabet. */
static long gpt2_unmap(const char *s, size_t n, char *out, uint32_t *bad_cp, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        int b = k ? gpt2_cp_to_byte(cp) : -1;
        if (b < 0) {
            *bad_cp = k ? cp : u[i];
            *bad_at = i;
            return -1;
        }
        out[o++] = (char)b;
        i += k;
    }
    return (long)o;
}

/* Parse a vocab (JSON object token -> id) into a builder. where names the
 * object in messages ("vocab.json" or "tokenizer.json:model.vocab"). */
static DrrlStatus parse_vocab_object(json_t *vocab, const char *where, Builder *b,
                                     DrrlError *err)
{
    if (!json_is_object(vocab))
        return drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object of token: id", where);
    size_t n = json_object_size(vocab);
    if (n == 0)
        return drrl_error(err, DRRL_E_INPUT, "%s: the vocabulary is empty", where);
    /* First pass: the largest id, checking every value. */
    size_t max_id = 0;
    const char *key;
    size_t key_len;
    json_t *val;
    char q[200];
    json_object_keylen_foreach(vocab, key, key_len, val)
    {
        if (!json_is_integer(val))
            return drrl_error(err, DRRL_E_INPUT, "%s:\"%s\": the id is not an integer", where,
                              quote(key, key_len, q, sizeof q));
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= (json_int_t)TOKENIZER_MAX_VOCAB)
            return drrl_error(err, DRRL_E_INPUT, "%s:\"%s\": id %lld is out of range 0..%u",
                              where, quote(key, key_len, q, sizeof q), (long long)id,
                              TOKENIZER_MAX_VOCAB - 1);
        if ((size_t)id > max_id)
            max_id = (size_t)id;
    }
    if (max_id + 1 > 2 * n + TOKENIZER_MAX_HOLES)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: ids go up to %zu but there are only %zu tokens (ids must be "
                          "nearly dense)",
                          where, max_id, n);
    DrrlStatus st = builder_init(b, max_id + 1, where, err);
    if (st)
        return st;
    char *raw = NULL;
    size_t raw_cap = 0;
    json_object_keylen_foreach(vocab, key, key_len, val)
    {
        size_t id = (size_t)json_integer_value(val);
        if (key_len == 0) {
            st = drrl_error(err, DRRL_E_INPUT, "%s:\"\": empty token", where);
            break;
        }
        if (key_len > raw_cap) {
            char *p = realloc(raw, key_len);
            if (!p) {
                st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", where);
                break;
            }
            raw = p;
            raw_cap = key_len;
        }
        uint32_t bad_cp;
        size_t bad_at;
        long m = gpt2_unmap(key, key_len, raw, &bad_cp, &bad_at);
        if (m < 0) {
            st = drrl_error(err, DRRL_E_INPUT,
                            "%s:\"%s\": character U+%04X is not in GPT-2's byte-level alphabet "
                            "(not a byte-level BPE vocabulary?)",
                            where, quote(key, key_len, q, sizeof q), (unsigned)bad_cp);
            break;
        }
        if (b->len[id] >= 0) {
            st = drrl_error(err, DRRL_E_INPUT, "%s:\"%s\": id %zu is used twice", where,
                            quote(key, key_len, q, sizeof q), id);
            break;
        }
        st = builder_set(b, id, raw, (size_t)m, where, err);
        if (st)
            break;
    }
    free(raw);
    if (st)
        builder_done(b);
    return st;
}

/* Merge table construction. */
static DrrlStatus merges_reserve(Tokenizer *t, size_t n, const char *name, DrrlError *err)
{
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < cap; i++)
        t->merges[i].rank = UINT32_MAX;
    t->merge_mask = cap - 1;
    t->n_merges = 0;
    return DRRL_OK;
}

/* Add the merge (a_str, b_str), both in GPT-2's alphabet. where is the
 * "FILE:LINE:COL" or "FILE:KEY" prefix for messages. *dup_rank is set when the
 * pair was seen before. */
static DrrlStatus merges_add(Tokenizer *t, const char *as, size_t an, const char *bs, size_t bn,
                             const char *where, DrrlError *err)
{
    char q[200];
    char *raw = malloc(an + bn + 1);
    if (!raw)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", where);
    uint32_t bad_cp;
    size_t bad_at;
    long am = gpt2_unmap(as, an, raw, &bad_cp, &bad_at);
    long bm = am < 0 ? -1 : gpt2_unmap(bs, bn, raw + am, &bad_cp, &bad_at);
    if (am < 0 || bm < 0) {
        free(raw);
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: character U+%04X is not in GPT-2's byte-level alphabet", where,
                          (unsigned)bad_cp);
    }
    uint32_t a = token_lookup(t, raw, (size_t)am);
    uint32_t b = token_lookup(t, raw + am, (size_t)bm);
    uint32_t r = token_lookup(t, raw, (size_t)(am + bm));
    DrrlStatus st = DRRL_OK;
    if (!a)
        st = drrl_error(err, DRRL_E_INPUT, "%s: token \"%s\" is not in the vocabulary", where,
                        quote(as, an, q, sizeof q));
    else if (!b)
        st = drrl_error(err, DRRL_E_INPUT, "%s: token \"%s\" is not in the vocabulary", where,
                        quote(bs, bn, q, sizeof q));
    else if (!r)
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: the merged token \"%s\" is not in the vocabulary", where,
                        quote(raw, (size_t)(am + bm), q, sizeof q));
    free(raw);
    if (st)
        return st;
    uint64_t key = (uint64_t)(a - 1) << 32 | (b - 1);
    size_t i = hash_u64(key) & t->merge_mask;
    for (; t->merges[i].rank != UINT32_MAX; i = (i + 1) & t->merge_mask)
        if (t->merges[i].key == key)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: duplicate merge (first given as merge %u)", where,
                              t->merges[i].rank + 1);
    t->merges[i].key = key;
    t->merges[i].rank = (uint32_t)t->n_merges++;
    t->merges[i].result = (int32_t)(r - 1);
    return DRRL_OK;
}

static DrrlStatus parse_merges_txt(Tokenizer *t, const char *txt, size_t len, const char *name,
                                   DrrlError *err)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += txt[i] == '\n';
    DrrlStatus st = merges_reserve(t, lines, name, err);
    if (st)
        return st;
    char where[600];
    size_t lineno = 0;
    for (size_t p = 0; p < len;) {
        lineno++;
        const char *nl = memchr(txt + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - txt) : len;
        size_t e = end;
        if (e > p && txt[e - 1] == '\r')
            e--;
        const char *s = txt + p;
        size_t n = e - p;
        p = nl ? end + 1 : len;
        if (n == 0)
            continue;
        if (lineno == 1 && n >= 8 && memcmp(s, "#version", 8) == 0)
            continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp == s + n - 1) {
            size_t col = sp ? (size_t)(sp - s) + 1 : n + 1;
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:%zu:%zu: expected two tokens separated by one space", name,
                              lineno, col);
        }
        const char *sp2 = memchr(sp + 1, ' ', (size_t)(s + n - sp - 1));
        if (sp2)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:%zu:%zu: expected two tokens separated by one space, found "
                              "another space",
                              name, lineno, (size_t)(sp2 - s) + 1);
        if (memchr(s, '\0', n))
            return drrl_error(err, DRRL_E_INPUT, "%s:%zu:%zu: NUL byte", name, lineno,
                              (size_t)((const char *)memchr(s, '\0', n) - s) + 1);
        snprintf(where, sizeof where, "%s:%zu:1", name, lineno);
        st = merges_add(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), where, err);
        if (st)
            return st;
    }
    return DRRL_OK;
}

static DrrlStatus json_parse_error(const char *name, const json_error_t *je, DrrlError *err)
{
    if (je->line > 0)
        return drrl_error(err, DRRL_E_INPUT, "%s:%d:%d: %s", name, je->line, je->column,
                          je->text);
    return drrl_error(err, DRRL_E_INPUT, "%s: %s", name, je->text);
}

DrrlStatus tokenizer_parse_bpe(const char *vocab_json, size_t vocab_len, const char *vocab_name,
                               const char *merges_txt, size_t merges_len,
                               const char *merges_name, Tokenizer **out, DrrlError *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(vocab_json, vocab_len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return json_parse_error(vocab_name, &je, err);
    Builder b;
    DrrlStatus st = parse_vocab_object(root, vocab_name, &b, err);
    json_decref(root);
    if (st)
        return st;
    Tokenizer *t;
    st = tokenizer_from_builder(&b, TOKENIZER_GPT2_BPE, SIZE_MAX, vocab_name, &t, err);
    if (st)
        return st;
    st = parse_merges_txt(t, merges_txt, merges_len, merges_name, err);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return DRRL_OK;
}

DrrlStatus tokenizer_load_bpe_files(const char *vocab_json, const char *merges_txt,
                                    Tokenizer **out, DrrlError *err)
{
    *out = NULL;
    char *v, *m;
    size_t vn, mn;
    DrrlStatus st = read_file(vocab_json, &v, &vn, err);
    if (st)
        return st;
    st = read_file(merges_txt, &m, &mn, err);
    if (st) {
        free(v);
        return st;
    }
    st = tokenizer_parse_bpe(v, vn, vocab_json, m, mn, merges_txt, out, err);
    free(v);
    free(m);
    return st;
}

/* Check that a tokenizer.json component is absent/null, naming it otherwise. */
static DrrlStatus expect_null(json_t *root, const char *key, const char *name, DrrlError *err)
{
    json_t *v = json_object_get(root, key);
    if (v && !json_is_null(v)) {
        json_t *type = json_is_object(v) ? json_object_get(v, "type") : NULL;
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:%s: unsupported %s%s%s (drrl reads GPT-2 byte-level BPE only; "
                          "give token ids directly with --ids)",
                          name, key, key, json_is_string(type) ? " " : "",
                          json_is_string(type) ? json_string_value(type) : "");
    }
    return DRRL_OK;
}

/* The pre-tokenizer must be GPT-2's: ByteLevel with its regex and without
 * an added prefix space (alone or as the only member of a Sequence). */
static DrrlStatus check_pre_tokenizer(json_t *root, const char *name, DrrlError *err)
{
    json_t *pt = json_object_get(root, "pre_tokenizer");
    json_t *type = pt ? json_object_get(pt, "type") : NULL;
    if (json_is_string(type) && strcmp(json_string_value(type), "Sequence") == 0) {
        json_t *seq = json_object_get(pt, "pretokenizers");
        if (json_is_array(seq) && json_array_size(seq) == 1) {
            pt = json_array_get(seq, 0);
            type = json_object_get(pt, "type");
        }
    }
    if (!json_is_object(pt) || !json_is_string(type) ||
        strcmp(json_string_value(type), "ByteLevel") != 0)
        return drrl_error(
            err, DRRL_E_INPUT,
            "%s:pre_tokenizer: expected GPT-2's ByteLevel pre-tokenizer, found %s "
            "(give token ids directly with --ids)",
            name,
            json_is_string(type) ? json_string_value(type)
                                 : (pt && !json_is_null(pt) ? "another" : "none"));
    json_t *aps = json_object_get(pt, "add_prefix_space");
    if (json_is_true(aps))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:pre_tokenizer.add_prefix_space: true is not supported (GPT-2 "
                          "uses false)",
                          name);
    json_t *ur = json_object_get(pt, "use_regex");
    if (json_is_false(ur))
        return drrl_error(
            err, DRRL_E_INPUT,
            "%s:pre_tokenizer.use_regex: false is not supported (GPT-2 uses true)", name);
    return DRRL_OK;
}

DrrlStatus tokenizer_parse_json(const char *json, size_t len, const char *name, Tokenizer **out,
                                DrrlError *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return json_parse_error(name, &je, err);
    DrrlStatus st = DRRL_OK;
    Tokenizer *t = NULL;
    Builder b = {0};
    char where[600];
    if (!json_is_object(root)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object", name);
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    json_t *type = json_is_object(model) ? json_object_get(model, "type") : NULL;
    if (!json_is_object(model)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:model: missing or not an object", name);
        goto done;
    }
    /* Older files omit model.type for BPE; vocab + merges identify it. */
    if (type ? !json_is_string(type) || strcmp(json_string_value(type), "BPE") != 0
             : !json_object_get(model, "merges")) {
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s:model.type: %s is not supported (drrl reads BPE; give token ids "
                        "directly with --ids)",
                        name, json_is_string(type) ? json_string_value(type) : "unknown model");
        goto done;
    }
    if ((st = expect_null(root, "normalizer", name, err)))
        goto done;
    if ((st = check_pre_tokenizer(root, name, err)))
        goto done;
    json_t *v;
    if ((v = json_object_get(model, "dropout")) && !json_is_null(v) &&
        !(json_is_number(v) && json_number_value(v) == 0.0)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:model.dropout: BPE dropout is not supported",
                        name);
        goto done;
    }
    if ((v = json_object_get(model, "continuing_subword_prefix")) && !json_is_null(v) &&
        !(json_is_string(v) && json_string_length(v) == 0)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:model.continuing_subword_prefix: not supported",
                        name);
        goto done;
    }
    if ((v = json_object_get(model, "end_of_word_suffix")) && !json_is_null(v) &&
        !(json_is_string(v) && json_string_length(v) == 0)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:model.end_of_word_suffix: not supported", name);
        goto done;
    }
    snprintf(where, sizeof where, "%s:model.vocab", name);
    json_t *vocab = json_object_get(model, "vocab");
    if (!vocab) {
        st = drrl_error(err, DRRL_E_INPUT, "%s: missing", where);
        goto done;
    }
    if ((st = parse_vocab_object(vocab, where, &b, err)))
        goto done;
    size_t n_vocab = b.n_ids;

    /* Added tokens whose ids lie outside model.vocab are decoded as their
     * literal content (they are never produced by encoding). */
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:added_tokens: expected an array", name);
        goto done;
    }
    size_t ai;
    json_t *at;
    size_t max_id = b.n_ids;
    json_array_foreach(added, ai, at)
    {
        json_t *id = json_object_get(at, "id");
        json_t *content = json_object_get(at, "content");
        if (!json_is_integer(id) || !json_is_string(content) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t)TOKENIZER_MAX_VOCAB) {
            st = drrl_error(
                err, DRRL_E_INPUT,
                "%s:added_tokens[%zu]: expected {\"id\": 0..%u, \"content\": string}", name, ai,
                TOKENIZER_MAX_VOCAB - 1);
            goto done;
        }
        if ((size_t)json_integer_value(id) + 1 > max_id)
            max_id = (size_t)json_integer_value(id) + 1;
    }
    if (max_id > 2 * (n_vocab + json_array_size(added)) + TOKENIZER_MAX_HOLES) {
        st =
            drrl_error(err, DRRL_E_INPUT,
                       "%s:added_tokens: ids go up to %zu, far beyond the %zu tokens (ids must "
                       "be nearly dense)",
                       name, max_id - 1, n_vocab + json_array_size(added));
        goto done;
    }
    if (max_id > b.n_ids) {
        uint32_t *off = realloc(b.off, max_id * sizeof *off);
        if (off)
            b.off = off;
        int32_t *l = off ? realloc(b.len, max_id * sizeof *l) : NULL;
        if (!l) {
            st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
            goto done;
        }
        b.len = l;
        for (size_t i = b.n_ids; i < max_id; i++)
            b.off[i] = 0, b.len[i] = -1;
        b.n_ids = max_id;
    }
    json_array_foreach(added, ai, at)
    {
        size_t id = (size_t)json_integer_value(json_object_get(at, "id"));
        json_t *content = json_object_get(at, "content");
        if (id < n_vocab)
            continue;
        if (b.len[id] >= 0) {
            st = drrl_error(err, DRRL_E_INPUT, "%s:added_tokens[%zu]: id %zu is used twice",
                            name, ai, id);
            goto done;
        }
        if ((st = builder_set(&b, id, json_string_value(content), json_string_length(content),
                              name, err)))
            goto done;
    }

    if ((st = tokenizer_from_builder(&b, TOKENIZER_GPT2_BPE, n_vocab, name, &t, err)))
        goto done;
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) {
        st = drrl_error(err, DRRL_E_INPUT, "%s:model.merges: missing or not an array", name);
        goto done;
    }
    if ((st = merges_reserve(t, json_array_size(merges), name, err)))
        goto done;
    json_array_foreach(merges, ai, at)
    {
        snprintf(where, sizeof where, "%s:model.merges[%zu]", name, ai);
        const char *as, *bs;
        size_t an, bn;
        if (json_is_string(at)) {
            /* "A B": exactly one space. */
            const char *s = json_string_value(at);
            size_t n = json_string_length(at);
            const char *sp = memchr(s, ' ', n);
            if (!sp || sp == s || sp == s + n - 1 ||
                memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
                st = drrl_error(err, DRRL_E_INPUT,
                                "%s: expected two tokens separated by one space", where);
                goto done;
            }
            as = s, an = (size_t)(sp - s), bs = sp + 1, bn = (size_t)(s + n - sp - 1);
        } else if (json_is_array(at) && json_array_size(at) == 2 &&
                   json_is_string(json_array_get(at, 0)) &&
                   json_is_string(json_array_get(at, 1)) &&
                   json_string_length(json_array_get(at, 0)) > 0 &&
                   json_string_length(json_array_get(at, 1)) > 0) {
            as = json_string_value(json_array_get(at, 0));
            an = json_string_length(json_array_get(at, 0));
            bs = json_string_value(json_array_get(at, 1));
            bn = json_string_length(json_array_get(at, 1));
        } else {
            st = drrl_error(err, DRRL_E_INPUT,
                            "%s: expected \"A B\" or [\"A\", \"B\"] (two non-empty tokens)",
                            where);
            goto done;
        }
        if ((st = merges_add(t, as, an, bs, bn, where, err)))
            goto done;
    }
done:
    builder_done(&b);
    json_decref(root);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return DRRL_OK;
}

DrrlStatus tokenizer_load_json_file(const char *tokenizer_json, Tokenizer **out, DrrlError *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    DrrlStatus st = read_file(tokenizer_json, &buf, &n, err);
    if (st)
        return st;
    st = tokenizer_parse_json(buf, n, tokenizer_json, out, err);
    free(buf);
    return st;
}

/* Read "drrl_tokenizer" and "vocab_size" from dir/config.json when present.
 * *byte_marker is set when "drrl_tokenizer" is "byte". */
static DrrlStatus read_config(const char *path, int *vocab_size, int *byte_marker,
                              DrrlError *err)
{
    char *buf;
    size_t n;
    DrrlStatus st = read_file(path, &buf, &n, err);
    if (st)
        return st;
    json_error_t je;
    json_t *root = json_loadb(buf, n, 0, &je);
    free(buf);
    if (!root)
        return json_parse_error(path, &je, err);
    if (!json_is_object(root)) {
        json_decref(root);
        return drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object", path);
    }
    json_t *dt = json_object_get(root, "drrl_tokenizer");
    if (dt) {
        if (!json_is_string(dt) || strcmp(json_string_value(dt), "byte") != 0) {
            json_decref(root);
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:drrl_tokenizer: expected \"byte\" (the only kind drrl's own "
                              "models use)",
                              path);
        }
        *byte_marker = 1;
    }
    json_t *vs = json_object_get(root, "vocab_size");
    if (vs) {
        if (!json_is_integer(vs) || json_integer_value(vs) <= 0 ||
            json_integer_value(vs) > INT32_MAX) {
            json_decref(root);
            return drrl_error(err, DRRL_E_INPUT, "%s:vocab_size: expected a positive integer",
                              path);
        }
        *vocab_size = (int)json_integer_value(vs);
    }
    json_decref(root);
    return DRRL_OK;
}

static DrrlStatus join_path(char *buf, size_t cap, const char *dir, const char *file,
                            DrrlError *err)
{
    size_t dl = strlen(dir);
    int slash = dl > 0 && dir[dl - 1] == '/';
    int n = snprintf(buf, cap, "%s%s%s", dir, slash ? "" : "/", file);
    if (n < 0 || (size_t)n >= cap)
        return drrl_error(err, DRRL_E_USAGE, "%s: path too long", dir);
    return DRRL_OK;
}

DrrlStatus tokenizer_load_dir(const char *dir, int vocab_size_from_config, Tokenizer **out,
                              DrrlError *err)
{
    *out = NULL;
    char tj[4096], vj[4096], mt[4096], cj[4096];
    DrrlStatus st;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return drrl_error(err, DRRL_E_NOTFOUND, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return drrl_error(err, DRRL_E_USAGE, "%s: not a directory", dir);
    if ((st = join_path(tj, sizeof tj, dir, "tokenizer.json", err)) ||
        (st = join_path(vj, sizeof vj, dir, "vocab.json", err)) ||
        (st = join_path(mt, sizeof mt, dir, "merges.txt", err)) ||
        (st = join_path(cj, sizeof cj, dir, "config.json", err)))
        return st;

    int vocab_size = vocab_size_from_config, byte_marker = 0;
    if (file_exists(cj)) {
        int cfg_vocab = 0;
        if ((st = read_config(cj, &cfg_vocab, &byte_marker, err)))
            return st;
        if (vocab_size <= 0)
            vocab_size = cfg_vocab;
    }

    Tokenizer *t = NULL;
    if (byte_marker) {
        t = tokenizer_bytes_new();
        if (!t)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
    } else if (file_exists(tj)) {
        if ((st = tokenizer_load_json_file(tj, &t, err)))
            return st;
    } else if (file_exists(vj) || file_exists(mt)) {
        if (!file_exists(vj))
            return drrl_error(err, DRRL_E_NOTFOUND, "%s: not found (%s needs it)", vj, mt);
        if (!file_exists(mt))
            return drrl_error(err, DRRL_E_NOTFOUND, "%s: not found (%s needs it)", mt, vj);
        if ((st = tokenizer_load_bpe_files(vj, mt, &t, err)))
            return st;
    } else if (vocab_size == 256) {
        t = tokenizer_bytes_new();
        if (!t)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", dir);
    } else {
        return drrl_error(
            err, DRRL_E_NOTFOUND,
            "%s: no tokenizer found (tokenizer.json, or vocab.json and merges.txt); "
            "give token ids directly with --ids",
            dir);
    }
    if (vocab_size > 0 && t->n_ids > (size_t)vocab_size) {
        size_t n = t->n_ids;
        tokenizer_free(t);
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: the tokenizer has %zu ids but the model's vocab_size is %d", dir,
                          n, vocab_size);
    }
    *out = t;
    return DRRL_OK;
}

/* ---- queries ---------------------------------------------------------- */

TokenizerKind tokenizer_kind(const Tokenizer *tok)
{
    return tok->kind;
}

const char *tokenizer_kind_name(const Tokenizer *tok)
{
    return tok->kind == TOKENIZER_BYTES ? "bytes" : "gpt2-bpe";
}

size_t tokenizer_vocab_size(const Tokenizer *tok)
{
    return tok->n_ids;
}

const char *tokenizer_token_bytes(const Tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids || tok->len[id] < 0) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)tok->len[id];
    return tok->bytes + tok->off[id];
}

const char *tokenizer_token_text(const Tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_ids)
        return "<?>";
    return tok->text + tok->text_off[id];
}

int32_t tokenizer_token_id(const Tokenizer *tok, const char *bytes, size_t len)
{
    uint32_t v = token_lookup(tok, bytes, len);
    return v ? (int32_t)(v - 1) : -1;
}

/* ---- encoding --------------------------------------------------------- */

typedef struct HeapItem {
    uint32_t rank;
    uint32_t pos; /* index of the left symbol of the pair */
} HeapItem;

/* Scratch space for one piece, grown as needed and reused. */
typedef struct Scratch {
    int32_t *id, *prev, *next; /* symbols: a doubly linked list over positions */
    HeapItem *heap;
    HeapItem *batch;
    size_t cap, heap_cap, n_heap;
} Scratch;

static int item_less(HeapItem a, HeapItem b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(Scratch *s, HeapItem it)
{
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(it, s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = it;
}

static HeapItem heap_pop(Scratch *s)
{
    HeapItem top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && item_less(s->heap[c + 1], s->heap[c]))
            c++;
        if (!item_less(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0)
        s->heap[i] = last;
    return top;
}

static int scratch_reserve(Scratch *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    /* Every merge pushes at most two pairs: n - 1 initial + 2 (n - 1). */
    size_t hcap = 3 * cap;
    int32_t *id = realloc(s->id, cap * sizeof *id);
    if (id)
        s->id = id;
    int32_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev)
        s->prev = prev;
    int32_t *next = realloc(s->next, cap * sizeof *next);
    if (next)
        s->next = next;
    HeapItem *heap = realloc(s->heap, hcap * sizeof *heap);
    if (heap)
        s->heap = heap;
    HeapItem *batch = realloc(s->batch, hcap * sizeof *batch);
    if (batch)
        s->batch = batch;
    if (!id || !prev || !next || !heap || !batch)
        return -1;
    s->cap = cap;
    s->heap_cap = hcap;
    return 0;
}

static void scratch_done(Scratch *s)
{
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->batch);
}

static void push_pair(const Tokenizer *t, Scratch *s, int32_t left)
{
    int32_t right = s->next[left];
    if (right < 0)
        return;
    const MergeSlot *m = merge_lookup(t, s->id[left], s->id[right]);
    if (m)
        heap_push(s, (HeapItem){m->rank, (uint32_t)left});
}

/* BPE-merge the piece p[0..n) and append its ids to out. */
static DrrlStatus bpe_piece(const Tokenizer *t, Scratch *s, const unsigned char *p, size_t n,
                            int32_t *out, size_t *n_out, DrrlError *err)
{
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] < 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "text: byte 0x%02X has no token in this vocabulary", p[i]);
    if (n == 1 || !t->merges) {
        for (size_t i = 0; i < n; i++)
            out[(*n_out)++] = t->byte_id[p[i]];
        return DRRL_OK;
    }
    if (n > INT32_MAX || scratch_reserve(s, n))
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    for (size_t i = 0; i < n; i++) {
        s->id[i] = t->byte_id[p[i]];
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, s, (int32_t)i);
    while (s->n_heap > 0) {
        /* Take every queued occurrence of the best rank (in position order),
         * then merge them left to right; pairs the merges create wait in the
         * heap until this rank is done (the reference's one pass per bigram). */
        uint32_t rank = s->heap[0].rank;
        size_t nb = 0;
        while (s->n_heap > 0 && s->heap[0].rank == rank)
            s->batch[nb++] = heap_pop(s);
        for (size_t k = 0; k < nb; k++) {
            int32_t left = (int32_t)s->batch[k].pos;
            int32_t right = s->next[left];
            if (s->id[left] < 0 || right < 0)
                continue;
            const MergeSlot *m = merge_lookup(t, s->id[left], s->id[right]);
            if (!m || m->rank != rank)
                continue; /* stale: a neighbour changed since it was queued */
            s->id[left] = m->result;
            s->id[right] = -1;
            s->next[left] = s->next[right];
            if (s->next[right] >= 0)
                s->prev[s->next[right]] = left;
            if (s->prev[left] >= 0)
                push_pair(t, s, s->prev[left]);
            push_pair(t, s, left);
        }
    }
    for (int32_t i = 0; i >= 0; i = s->next[i])
        out[(*n_out)++] = s->id[i];
    return DRRL_OK;
}

/* Length of the pre-tokenizer match at s[i] (see the regex at the top). */
static size_t pretoken_len(const unsigned char *s, size_t n, size_t i)
{
    size_t clen;
    uint32_t cp;
    enum CharClass c = class_at(s, n, i, &clen, &cp);
    /* 's|'t|'re|'ve|'m|'ll|'d (lower case only, as in GPT-2) */
    if (cp == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    /* ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+' */
    size_t j = i;
    enum CharClass c2 = c;
    size_t c2len = clen;
    if (cp == ' ' && i + 1 < n) {
        j = i + 1;
        c2 = class_at(s, n, j, &c2len, &cp);
    }
    if (c2 != CC_SPACE) {
        size_t e = j + c2len;
        while (e < n) {
            size_t k;
            if (class_at(s, n, e, &k, &cp) != c2)
                break;
            e += k;
        }
        return e - i;
    }
    /* '\s+(?!\S)|\s+': a run of spaces, less its last character when a
     * non-space follows and the run is longer than one character. */
    size_t e = i, last = i;
    while (e < n) {
        size_t k;
        if (class_at(s, n, e, &k, &cp) != CC_SPACE)
            break;
        last = e;
        e += k;
    }
    if (e < n && last > i)
        return last - i;
    return e - i;
}

DrrlStatus tokenizer_encode(const Tokenizer *tok, const char *bytes, size_t len, int32_t **ids,
                            size_t *n, DrrlError *err)
{
    *ids = NULL;
    *n = 0;
    if (len == 0)
        return DRRL_OK;
    if (len > SIZE_MAX / sizeof(int32_t))
        return drrl_error(err, DRRL_E_NOMEM, "text: too long");
    int32_t *out = malloc(len * sizeof *out); /* at most one id per byte */
    if (!out)
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    const unsigned char *s = (const unsigned char *)bytes;
    size_t n_out = 0;
    DrrlStatus st = DRRL_OK;
    if (tok->kind == TOKENIZER_BYTES) {
        for (size_t i = 0; i < len; i++)
            out[i] = s[i];
        n_out = len;
    } else {
        Scratch sc = {0};
        for (size_t i = 0; i < len && !st;) {
            size_t k = pretoken_len(s, len, i);
            st = bpe_piece(tok, &sc, s + i, k, out, &n_out, err);
            i += k;
        }
        scratch_done(&sc);
    }
    if (st) {
        free(out);
        return st;
    }
    int32_t *shrunk = realloc(out, n_out * sizeof *out);
    *ids = shrunk ? shrunk : out;
    *n = n_out;
    return DRRL_OK;
}

DrrlStatus tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, char **bytes,
                            size_t *len, DrrlError *err)
{
    *bytes = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= tok->n_ids || tok->len[ids[i]] < 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "ids:%zu: %ld is not a token id of this tokenizer (0..%zu)",
                              i + 1, (long)ids[i], tok->n_ids - 1);
        total += (size_t)tok->len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out)
        return drrl_error(err, DRRL_E_NOMEM, "ids: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + o, tok->bytes + tok->off[ids[i]], (size_t)tok->len[ids[i]]);
        o += (size_t)tok->len[ids[i]];
    }
    out[o] = '\0';
    *bytes = out;
    *len = o;
    return DRRL_OK;
}
