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

#include "base/mem.h"
#include "base/fileio.h"
#include "base/strbuf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tokenizer_text.h"

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
    /* Hugging Face tokenizer.json pipelines (see tokenizer.h): */
    int nfc;           /* normalizer: NFC */
    int max_digits;    /* Llama-3 / Qwen2 pre-tokenizer: digits per piece */
    int ignore_merges; /* a piece that is a token is taken whole */
    int strip_start;   /* SentencePiece-style decoder: leading spaces stripped */
    int sp_split;      /* SentencePiece-style: words may be cut (see sp_encode) */
    int sp_prepend;    /* SentencePiece-style: 1 '\u2581' prepended to the text (Prepend
                        * normalizer), 2 unless the text starts with one (Metaspace), 0
                        * never */
    int sp_split_all;  /* Metaspace with split: a word starts at every '\u2581' */
    /* SentencePiece-style: bytes/off/len hold the vocabulary strings ('\u2581'
     * for spaces, "<0xNN>"), raw/raw_off/raw_len what they decode to. */
    char *raw;
    uint32_t *raw_off;
    int32_t *raw_len;
    int32_t fallback_id[256]; /* id of "<0xNN>" for each byte; -1 if none */
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

#define utf8_decode tok_utf8_decode

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
static int render_display(StrBuf *g, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char tmp[16];
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        int r;
        if (k == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02X", u[i]);
            r = strbuf_add(g, tmp, 4);
            k = 1;
        } else if (cp == '\n') {
            r = strbuf_add(g, "\\n", 2);
        } else if (cp == '\t') {
            r = strbuf_add(g, "\\t", 2);
        } else if (cp == '\r') {
            r = strbuf_add(g, "\\r", 2);
        } else if (cp == '\\') {
            r = strbuf_add(g, "\\\\", 2);
        } else if (cp < 0x20 || cp == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\x%02X", (unsigned)cp);
            r = strbuf_add(g, tmp, 4);
        } else if ((cp >= 0x80 && cp < 0xA0) || cp == 0x2028 || cp == 0x2029 ||
                   tok_is_format(cp)) {
            /* C1 controls, line/paragraph separators and format characters
             * (invisible, or reordering the line: U+200D, U+202E...) */
            int k2 = cp > 0xFFFF ? snprintf(tmp, sizeof tmp, "\\U%08X", (unsigned)cp)
                                 : snprintf(tmp, sizeof tmp, "\\u%04X", (unsigned)cp);
            r = strbuf_add(g, tmp, (size_t)k2);
        } else {
            r = strbuf_add(g, s + i, k);
        }
        if (r)
            return -1;
        i += k;
    }
    return strbuf_add(g, "", 1); /* the NUL is part of the entry */
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

/* The bytes an id decodes to (raw form), or NULL with *n = 0 for none. */
static const char *raw_of(const Tokenizer *t, size_t id, size_t *n)
{
    if (t->len[id] < 0) {
        *n = 0;
        return NULL;
    }
    if (t->raw) {
        *n = (size_t)t->raw_len[id];
        return t->raw + t->raw_off[id];
    }
    *n = (size_t)t->len[id];
    return t->bytes + t->off[id];
}

/* (Re)build the display strings from the raw forms; ids without a token
 * share the "<?>" at offset 0. Returns 0 or -1 when out of memory. */
static int build_display(Tokenizer *t)
{
    StrBuf g = {0};
    free(t->text), t->text = NULL;
    free(t->text_off);
    t->text_off = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->text_off);
    if (!t->text_off || strbuf_add(&g, "<?>", 4)) {
        free(g.p);
        return -1;
    }
    for (size_t id = 0; id < t->n_ids; id++) {
        size_t n;
        const char *r = raw_of(t, id, &n);
        t->text_off[id] = r ? (uint32_t)g.len : 0;
        if ((r && render_display(&g, r, n)) || g.len > UINT32_MAX) {
            free(g.p);
            return -1;
        }
    }
    t->text = g.p;
    return 0;
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
        t->byte_id[i] = t->fallback_id[i] = -1;

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

    if (build_display(t)) {
        tokenizer_free(t);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
    }
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
    DRRL_FREE(tok->bytes, tok->off, tok->len, tok->text, tok->text_off, tok->slots, tok->merges,
              tok->raw, tok->raw_off, tok->raw_len, tok);
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

/* A vocabulary string as the bytes drrl keys it by: GPT-2's alphabet
 * unmapped for byte-level vocabularies, the string itself otherwise. */
static long key_bytes(int byte_level, const char *s, size_t n, char *out, uint32_t *bad_cp,
                      size_t *bad_at)
{
    if (byte_level)
        return gpt2_unmap(s, n, out, bad_cp, bad_at);
    memcpy(out, s, n);
    return (long)n;
}

/* Parse a vocab (JSON object token -> id) into a builder. where names the
 * object in messages ("vocab.json" or "tokenizer.json:model.vocab"). */
static DrrlStatus parse_vocab_object(json_t *vocab, const char *where, int byte_level,
                                     Builder *b, DrrlError *err)
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
        long m = key_bytes(byte_level, key, key_len, raw, &bad_cp, &bad_at);
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
    int bl = t->kind != TOKENIZER_SP_BPE;
    long am = key_bytes(bl, as, an, raw, &bad_cp, &bad_at);
    long bm = am < 0 ? -1 : key_bytes(bl, bs, bn, raw + am, &bad_cp, &bad_at);
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
    DrrlStatus st = parse_vocab_object(root, vocab_name, 1, &b, err);
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

/* ---- tokenizer.json pipelines ---------------------------------------- */

static int sp_can_split(const Tokenizer *t, size_t n_vocab);

/* The Split regexes drrl recognises (as the JSON strings decode). */
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
#define METASPACE "\xE2\x96\x81" /* U+2581, SentencePiece's space */

/* What a tokenizer.json asks for, before the vocabulary is read. */
typedef struct JsonPipeline {
    TokenizerKind kind;
    int nfc, sp_norm, max_digits, ignore_merges, strip_start;
    int sp_prepend, sp_split_all; /* see struct Tokenizer */
} JsonPipeline;

static const char *type_of(json_t *v)
{
    json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static int str_is(json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static DrrlStatus unsupported(const char *name, const char *key, json_t *v, DrrlError *err)
{
    const char *t = type_of(v);
    return drrl_error(err, DRRL_E_INPUT,
                      "%s:%s: unsupported %s%s%s (drrl reads the GPT-2, Llama-2/Mistral, "
                      "Llama-3 and Qwen2 pipelines; give token ids directly with --ids)",
                      name, key, key, t ? " " : "", t ? t : "");
}

/* normalizer: none, NFC, or SentencePiece's Prepend('\u2581') then
 * Replace(' ', '\u2581'). */
static DrrlStatus parse_normalizer(json_t *root, const char *name, JsonPipeline *p,
                                   DrrlError *err)
{
    json_t *v = json_object_get(root, "normalizer");
    if (!v || json_is_null(v))
        return DRRL_OK;
    const char *t = type_of(v);
    json_t *seq = json_object_get(v, "normalizers");
    if (t && strcmp(t, "Sequence") == 0 && json_is_array(seq) && json_array_size(seq) == 1) {
        v = json_array_get(seq, 0);
        t = type_of(v);
    }
    if (t && strcmp(t, "NFC") == 0) {
        p->nfc = 1;
        return DRRL_OK;
    }
    if (t && strcmp(t, "Sequence") == 0 && json_is_array(seq) && json_array_size(seq) == 2) {
        json_t *a = json_array_get(seq, 0), *b = json_array_get(seq, 1);
        json_t *pat = json_object_get(b, "pattern");
        if (str_is(json_object_get(a, "type"), "Prepend") &&
            str_is(json_object_get(a, "prepend"), METASPACE) &&
            str_is(json_object_get(b, "type"), "Replace") &&
            str_is(json_object_get(pat, "String"), " ") &&
            str_is(json_object_get(b, "content"), METASPACE)) {
            p->sp_norm = 1;
            p->sp_prepend = 1;
            return DRRL_OK;
        }
    }
    return unsupported(name, "normalizer", v, err);
}

/* ByteLevel without a prefix space; with_regex: GPT-2's regex on (1) or
 * off (0, after a Split). */
static DrrlStatus check_byte_level(json_t *pt, int with_regex, const char *name, DrrlError *err)
{
    if (json_is_true(json_object_get(pt, "add_prefix_space")))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:pre_tokenizer.add_prefix_space: true is not supported", name);
    json_t *ur = json_object_get(pt, "use_regex");
    if (with_regex ? json_is_false(ur) : !json_is_false(ur))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:pre_tokenizer.use_regex: %s is not supported here", name,
                          with_regex ? "false" : "true");
    return DRRL_OK;
}

/* Metaspace('\u2581') as a pre-tokenizer (SentencePiece-style files of
 * newer conversions, e.g. Mistral's, instead of the Prepend and Replace
 * normalizers): spaces become '\u2581'; prepend_scheme "always" or "first"
 * (the same for plain text) puts one before text that does not start with
 * one, "never" does not; split (the default, as in Hugging Face's Rust
 * crate) starts a word at every '\u2581'. The older add_prefix_space: false
 * means "never". */
static DrrlStatus parse_metaspace(json_t *pt, const char *name, JsonPipeline *p, DrrlError *err)
{
    json_t *rep = json_object_get(pt, "replacement");
    if (!str_is(rep, METASPACE))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:pre_tokenizer.replacement: expected \"\u2581\" (drrl reads "
                          "SentencePiece's space marker only)",
                          name);
    if (p->nfc || p->sp_norm)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:normalizer: not supported before a Metaspace pre-tokenizer "
                          "(give token ids directly with --ids)",
                          name);
    json_t *ps = json_object_get(pt, "prepend_scheme");
    json_t *aps = json_object_get(pt, "add_prefix_space");
    json_t *split = json_object_get(pt, "split");
    p->sp_prepend = 2;
    if (ps && !json_is_null(ps)) {
        if (str_is(ps, "never"))
            p->sp_prepend = 0;
        else if (!str_is(ps, "always") && !str_is(ps, "first"))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:pre_tokenizer.prepend_scheme: expected \"always\", "
                              "\"first\" or \"never\"",
                              name);
    }
    if (json_is_false(aps)) {
        if (p->sp_prepend != 0 && ps && !json_is_null(ps))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:pre_tokenizer.add_prefix_space: false contradicts "
                              "prepend_scheme",
                              name);
        p->sp_prepend = 0;
    }
    if (split && !json_is_boolean(split))
        return drrl_error(err, DRRL_E_INPUT, "%s:pre_tokenizer.split: expected true or false",
                          name);
    p->sp_split_all = !json_is_false(split);
    p->kind = TOKENIZER_SP_BPE;
    return DRRL_OK;
}

/* pre_tokenizer: none (SentencePiece-style), Metaspace (likewise), GPT-2's
 * ByteLevel, or Split(Llama-3 or Qwen2 regex, Isolated) then ByteLevel
 * without regex. */
static DrrlStatus parse_pre_tokenizer(json_t *root, const char *name, JsonPipeline *p,
                                      DrrlError *err)
{
    json_t *pt = json_object_get(root, "pre_tokenizer");
    if (!pt || json_is_null(pt)) {
        if (!p->sp_norm)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:pre_tokenizer: none, and no SentencePiece normalizer "
                              "(give token ids directly with --ids)",
                              name);
        p->kind = TOKENIZER_SP_BPE;
        return DRRL_OK;
    }
    const char *t = type_of(pt);
    json_t *seq = json_object_get(pt, "pretokenizers");
    size_t n = t && strcmp(t, "Sequence") == 0 && json_is_array(seq) ? json_array_size(seq) : 0;
    if (n == 1)
        pt = json_array_get(seq, 0), t = type_of(pt), n = 0;
    if (t && strcmp(t, "Metaspace") == 0)
        return parse_metaspace(pt, name, p, err);
    if (!p->sp_norm && t && strcmp(t, "ByteLevel") == 0) {
        p->kind = TOKENIZER_GPT2_BPE;
        return check_byte_level(pt, 1, name, err);
    }
    if (!p->sp_norm && n == 2) {
        json_t *sp = json_array_get(seq, 0), *bl = json_array_get(seq, 1);
        json_t *re = json_object_get(json_object_get(sp, "pattern"), "Regex");
        int digits = str_is(re, llama3_regex) ? 3 : str_is(re, qwen2_regex) ? 1 : 0;
        if (str_is(json_object_get(sp, "type"), "Split") && digits &&
            str_is(json_object_get(sp, "behavior"), "Isolated") &&
            !json_is_true(json_object_get(sp, "invert")) &&
            str_is(json_object_get(bl, "type"), "ByteLevel")) {
            p->kind = digits == 3 ? TOKENIZER_LLAMA3_BPE : TOKENIZER_QWEN2_BPE;
            p->max_digits = digits;
            return check_byte_level(bl, 0, name, err);
        }
        if (str_is(json_object_get(sp, "type"), "Split") && !digits)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s:pre_tokenizer.pretokenizers[0].pattern: a Split regex "
                              "drrl does not know (it reads Llama-3's and Qwen2's; give "
                              "token ids directly with --ids)",
                              name);
    }
    return unsupported(name, "pre_tokenizer", pt, err);
}

/* model.type: BPE. Older files omit it; vocab + merges identify BPE. */
static DrrlStatus check_model_type(json_t *model, const char *name, DrrlError *err)
{
    json_t *type = json_object_get(model, "type");
    if (type ? !str_is(type, "BPE") : !json_object_get(model, "merges"))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:model.type: %s is not supported (drrl reads BPE; give token ids "
                          "directly with --ids)",
                          name,
                          json_is_string(type) ? json_string_value(type) : "unknown model");
    return DRRL_OK;
}

/* model: BPE without dropout or affixes; byte_fallback exactly for the
 * SentencePiece-style pipeline (which needs it: drrl has no <unk>). */
static DrrlStatus check_model(json_t *model, const char *name, JsonPipeline *p, DrrlError *err)
{
    json_t *v;
    if ((v = json_object_get(model, "dropout")) && !json_is_null(v) &&
        !(json_is_number(v) && json_number_value(v) == 0.0))
        return drrl_error(err, DRRL_E_INPUT, "%s:model.dropout: BPE dropout is not supported",
                          name);
    if ((v = json_object_get(model, "continuing_subword_prefix")) && !json_is_null(v) &&
        !(json_is_string(v) && json_string_length(v) == 0))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:model.continuing_subword_prefix: not supported", name);
    if ((v = json_object_get(model, "end_of_word_suffix")) && !json_is_null(v) &&
        !(json_is_string(v) && json_string_length(v) == 0))
        return drrl_error(err, DRRL_E_INPUT, "%s:model.end_of_word_suffix: not supported",
                          name);
    int fallback = json_is_true(json_object_get(model, "byte_fallback"));
    if (fallback != (p->kind == TOKENIZER_SP_BPE))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:model.byte_fallback: %s is not supported with this "
                          "pre-tokenizer",
                          name, fallback ? "true" : "false");
    p->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    return DRRL_OK;
}

/* decoder (SentencePiece-style only): how many leading spaces a Strip
 * takes off the decoded text, or Metaspace's one (unless its
 * prepend_scheme is "never"). */
static void parse_decoder(json_t *root, JsonPipeline *p)
{
    json_t *dec = json_object_get(root, "decoder");
    if (str_is(json_object_get(dec, "type"), "Metaspace")) {
        json_t *ps = json_object_get(dec, "prepend_scheme");
        json_t *aps = json_object_get(dec, "add_prefix_space");
        p->strip_start = str_is(ps, "never") || json_is_false(aps) ? 0 : 1;
        return;
    }
    json_t *seq = str_is(json_object_get(dec, "type"), "Sequence")
                      ? json_object_get(dec, "decoders")
                      : NULL;
    size_t i;
    json_t *d;
    json_array_foreach(seq, i, d)
    {
        json_t *start = json_object_get(d, "start");
        if (str_is(json_object_get(d, "type"), "Strip") &&
            str_is(json_object_get(d, "content"), " ") && json_is_integer(start) &&
            json_integer_value(start) >= 0 && json_integer_value(start) <= 16)
            p->strip_start = (int)json_integer_value(start);
    }
}

/* added_tokens: ids outside model.vocab get their content as a token
 * (decoded as written; never produced from plain text). */
static DrrlStatus add_added_tokens(json_t *root, const char *name, Builder *b, size_t n_vocab,
                                   DrrlError *err)
{
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added))
        return drrl_error(err, DRRL_E_INPUT, "%s:added_tokens: expected an array", name);
    size_t ai;
    json_t *at;
    size_t max_id = b->n_ids;
    json_array_foreach(added, ai, at)
    {
        json_t *id = json_object_get(at, "id");
        json_t *content = json_object_get(at, "content");
        if (!json_is_integer(id) || !json_is_string(content) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t)TOKENIZER_MAX_VOCAB)
            return drrl_error(
                err, DRRL_E_INPUT,
                "%s:added_tokens[%zu]: expected {\"id\": 0..%u, \"content\": string}", name, ai,
                TOKENIZER_MAX_VOCAB - 1);
        if ((size_t)json_integer_value(id) + 1 > max_id)
            max_id = (size_t)json_integer_value(id) + 1;
    }
    if (max_id > 2 * (n_vocab + json_array_size(added)) + TOKENIZER_MAX_HOLES)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s:added_tokens: ids go up to %zu, far beyond the %zu tokens (ids "
                          "must be nearly dense)",
                          name, max_id - 1, n_vocab + json_array_size(added));
    if (max_id > b->n_ids) {
        uint32_t *off = realloc(b->off, max_id * sizeof *off);
        if (off)
            b->off = off;
        int32_t *l = off ? realloc(b->len, max_id * sizeof *l) : NULL;
        if (!l)
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
        b->len = l;
        for (size_t i = b->n_ids; i < max_id; i++)
            b->off[i] = 0, b->len[i] = -1;
        b->n_ids = max_id;
    }
    json_array_foreach(added, ai, at)
    {
        size_t id = (size_t)json_integer_value(json_object_get(at, "id"));
        json_t *content = json_object_get(at, "content");
        if (id < n_vocab)
            continue;
        if (b->len[id] >= 0)
            return drrl_error(err, DRRL_E_INPUT, "%s:added_tokens[%zu]: id %zu is used twice",
                              name, ai, id);
        DrrlStatus st = builder_set(b, id, json_string_value(content),
                                    json_string_length(content), name, err);
        if (st)
            return st;
    }
    return DRRL_OK;
}

static DrrlStatus parse_json_merges(Tokenizer *t, json_t *model, const char *name,
                                    DrrlError *err)
{
    char where[600];
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return drrl_error(err, DRRL_E_INPUT, "%s:model.merges: missing or not an array", name);
    DrrlStatus st = merges_reserve(t, json_array_size(merges), name, err);
    size_t ai;
    json_t *at;
    json_array_foreach(merges, ai, at)
    {
        if (st)
            break;
        snprintf(where, sizeof where, "%s:model.merges[%zu]", name, ai);
        const char *as, *bs;
        size_t an, bn;
        if (json_is_string(at)) {
            /* "A B": exactly one space. */
            const char *s = json_string_value(at);
            size_t n = json_string_length(at);
            const char *sp = memchr(s, ' ', n);
            if (!sp || sp == s || sp == s + n - 1 ||
                memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
                return drrl_error(err, DRRL_E_INPUT,
                                  "%s: expected two tokens separated by one space", where);
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
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: expected \"A B\" or [\"A\", \"B\"] (two non-empty tokens)",
                              where);
        }
        st = merges_add(t, as, an, bs, bn, where, err);
    }
    return st;
}

/* The value of an upper-case hex digit ("<0xNN>" as SentencePiece writes
 * it), or -1. */
static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* SentencePiece-style tokens: what each decodes to ('\u2581' -> ' ',
 * "<0xNN>" -> the byte NN) and the byte-fallback table. */
static int sp_raw_forms(Tokenizer *t)
{
    t->raw = malloc(t->bytes_len + 1);
    t->raw_off = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->raw_off);
    t->raw_len = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->raw_len);
    if (!t->raw || !t->raw_off || !t->raw_len)
        return -1;
    size_t o = 0;
    for (size_t id = 0; id < t->n_ids; id++) {
        const char *s = t->bytes + t->off[id];
        int32_t n = t->len[id];
        t->raw_off[id] = (uint32_t)o;
        t->raw_len[id] = n;
        if (n < 0)
            continue;
        int hi = n == 6 ? hexval(s[3]) : -1, lo = n == 6 ? hexval(s[4]) : -1;
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && hi >= 0 &&
            lo >= 0) {
            t->raw[o++] = (char)(hi << 4 | lo);
            t->raw_len[id] = 1;
            if (t->fallback_id[hi << 4 | lo] < 0)
                t->fallback_id[hi << 4 | lo] = (int32_t)id;
            continue;
        }
        size_t start = o;
        for (int32_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, METASPACE, 3) == 0) {
                t->raw[o++] = ' ';
                i += 3;
            } else {
                t->raw[o++] = s[i++];
            }
        }
        t->raw_len[id] = (int32_t)(o - start);
    }
    return 0;
}

static DrrlStatus parse_json_root(json_t *root, const char *name, Tokenizer **out,
                                  DrrlError *err)
{
    JsonPipeline p = {0};
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return drrl_error(err, DRRL_E_INPUT, "%s:model: missing or not an object", name);
    DrrlStatus st;
    if ((st = check_model_type(model, name, err)) ||
        (st = parse_normalizer(root, name, &p, err)) ||
        (st = parse_pre_tokenizer(root, name, &p, err)) ||
        (st = check_model(model, name, &p, err)))
        return st;
    parse_decoder(root, &p);
    char where[600];
    snprintf(where, sizeof where, "%s:model.vocab", name);
    json_t *vocab = json_object_get(model, "vocab");
    if (!vocab)
        return drrl_error(err, DRRL_E_INPUT, "%s: missing", where);
    Builder b = {0};
    if ((st = parse_vocab_object(vocab, where, p.kind != TOKENIZER_SP_BPE, &b, err)))
        return st;
    size_t n_vocab = b.n_ids;
    Tokenizer *t = NULL;
    if ((st = add_added_tokens(root, name, &b, n_vocab, err)) ||
        (st = tokenizer_from_builder(&b, p.kind, n_vocab, name, &t, err))) {
        builder_done(&b);
        return st;
    }
    t->nfc = p.nfc;
    t->max_digits = p.max_digits;
    t->ignore_merges = p.ignore_merges;
    t->strip_start = p.strip_start;
    t->sp_prepend = p.sp_prepend;
    t->sp_split_all = p.sp_split_all;
    if (p.kind == TOKENIZER_SP_BPE)
        t->sp_split = sp_can_split(t, n_vocab);
    if (p.kind == TOKENIZER_SP_BPE && (sp_raw_forms(t) || build_display(t))) {
        tokenizer_free(t);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", name);
    }
    if ((st = parse_json_merges(t, model, name, err))) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
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
    DrrlStatus st = json_is_object(root)
                        ? parse_json_root(root, name, out, err)
                        : drrl_error(err, DRRL_E_INPUT, "%s: expected a JSON object", name);
    json_decref(root);
    return st;
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

/* Per kind: its name, its description, and the description when the
 * tokenizer normalises to NFC (NULL: the kind never does). */
static const struct {
    const char *name, *plain, *nfc;
} kind_info[] = {
    [TOKENIZER_BYTES] = {"bytes", "byte-level (one id per byte)", NULL},
    [TOKENIZER_GPT2_BPE] = {"gpt2-bpe", "GPT-2 byte-level BPE", NULL},
    [TOKENIZER_LLAMA3_BPE] = {"llama3-bpe",
                              "byte-level BPE, Llama-3 pre-tokenizer (digits in threes)",
                              "byte-level BPE, NFC, Llama-3 pre-tokenizer (digits in threes)"},
    [TOKENIZER_QWEN2_BPE] = {"qwen2-bpe",
                             "byte-level BPE, Qwen2 pre-tokenizer (digits one by one)",
                             "byte-level BPE, NFC, Qwen2 pre-tokenizer (digits one by one)"},
    [TOKENIZER_SP_BPE] = {"sentencepiece-bpe",
                          "SentencePiece-style BPE (U+2581 spaces, byte fallback), as Llama-2 "
                          "and Mistral",
                          NULL},
};

const char *tokenizer_kind_name(const Tokenizer *tok)
{
    size_t k = (size_t)tok->kind;
    return k < sizeof kind_info / sizeof kind_info[0] ? kind_info[k].name : "?";
}

const char *tokenizer_describe(const Tokenizer *tok)
{
    size_t k = (size_t)tok->kind;
    if (k >= sizeof kind_info / sizeof kind_info[0])
        return "?";
    return tok->nfc && kind_info[k].nfc ? kind_info[k].nfc : kind_info[k].plain;
}

size_t tokenizer_vocab_size(const Tokenizer *tok)
{
    return tok->n_ids;
}

const char *tokenizer_token_bytes(const Tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids) {
        *len = 0;
        return NULL;
    }
    return raw_of(tok, (size_t)id, len);
}

const char *tokenizer_token_text(const Tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_ids)
        return "<?>";
    return tok->text + tok->text_off[id];
}

/* Is s[0..n) whole characters of valid UTF-8? */
static int utf8_whole(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* The byte at offset d (may be negative or past the token) from the start
 * of token i's raw bytes, walking into neighbouring tokens; -1 outside. */
static int byte_near(const Tokenizer *t, const int32_t *ids, size_t n, size_t i, long d)
{
    size_t len;
    const char *r;
    while (d < 0) {
        if (i == 0)
            return -1;
        i--;
        r = tokenizer_token_bytes(t, ids[i], &len);
        d += (long)len;
    }
    for (;;) {
        r = tokenizer_token_bytes(t, ids[i], &len);
        if ((size_t)d < len)
            return (unsigned char)r[d];
        d -= (long)len;
        if (++i >= n)
            return -1;
    }
}

const char *tokenizer_token_text_in(const Tokenizer *tok, const int32_t *ids, size_t n,
                                    size_t i, char *buf, size_t cap)
{
    size_t len;
    const char *r = i < n ? tokenizer_token_bytes(tok, ids[i], &len) : NULL;
    if (!r || len > 64 || utf8_whole(r, len) || cap < 8)
        return i < n ? tokenizer_token_text(tok, ids[i]) : "<?>";
    /* A window of the bytes around the token: 3 before, the token, 3 after. */
    unsigned char w[3 + 64 + 3];
    size_t tl = len < 64 ? len : 64;
    long lo = -3, hi = (long)tl + 3;
    for (long d = lo; d < hi; d++) {
        int b = byte_near(tok, ids, n, i, d);
        w[d - lo] = (unsigned char)(b < 0 ? 0xFF : b); /* 0xFF is never valid UTF-8 */
    }
    /* Skip the token's first bytes when a character starting before it
     * covers them. */
    size_t start = 3;
    for (size_t back = 1; back <= 3; back++) {
        uint32_t cp;
        size_t k = utf8_decode(w + 3 - back, sizeof w - (3 - back), &cp);
        if (k > back) {
            start = 3 - back + k;
            break;
        }
    }
    /* Characters that start in the token, completed from the next tokens. */
    size_t end = start;
    while (end < 3 + tl) {
        uint32_t cp;
        size_t k = utf8_decode(w + end, sizeof w - end, &cp);
        end += k ? k : 1;
    }
    StrBuf g = {0};
    if (render_display(&g, (const char *)w + start, end > start ? end - start : 0)) {
        free(g.p);
        return tokenizer_token_text(tok, ids[i]);
    }
    size_t m = strlen(g.p);
    if (m >= cap) {
        m = cap - 1;
        while (m > 0 && ((unsigned char)g.p[m] & 0xC0) == 0x80)
            m--;
    }
    memcpy(buf, g.p, m);
    buf[m] = '\0';
    free(g.p);
    return buf;
}

int32_t tokenizer_token_id(const Tokenizer *tok, const char *bytes, size_t len)
{
    if (tok->kind != TOKENIZER_SP_BPE) {
        uint32_t v = token_lookup(tok, bytes, len);
        return v ? (int32_t)(v - 1) : -1;
    }
    /* SentencePiece-style: spaces are '\u2581' in the vocabulary. */
    if (len == 0)
        return -1;
    char *key = len < SIZE_MAX / 3 ? malloc(3 * len + 1) : NULL;
    if (!key)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] == ' ')
            memcpy(key + k, METASPACE, 3), k += 3;
        else
            key[k++] = bytes[i];
    }
    uint32_t v = token_lookup(tok, key, k);
    free(key);
    if (v)
        return (int32_t)(v - 1);
    return len == 1 ? tok->fallback_id[(unsigned char)bytes[0]] : -1;
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
    /* An array whose realloc fails keeps its old block (freed with s). */
    int ok = 1;
#define GROW(field, count)                                                                     \
    do {                                                                                       \
        void *p_ = realloc(s->field, (count) * sizeof *s->field);                              \
        if (p_)                                                                                \
            s->field = p_;                                                                     \
        else                                                                                   \
            ok = 0;                                                                            \
    } while (0)
    GROW(id, cap);
    GROW(prev, cap);
    GROW(next, cap);
    GROW(heap, hcap);
    GROW(batch, hcap);
#undef GROW
    if (!ok)
        return -1;
    s->cap = cap;
    s->heap_cap = hcap;
    return 0;
}

static void scratch_done(Scratch *s)
{
    DRRL_FREE(s->id, s->prev, s->next, s->heap, s->batch);
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

/* BPE-merge the n symbols s->id[0..n) and append the result to out.
 * GPT-2 (OpenAI's encoder.py) merges every occurrence of the best pair
 * before it looks at the pairs those merges create; Hugging Face's BPE
 * (tokenizers' Word::merge_all, and its JavaScript port) pops one pair at a
 * time by (rank, position), so a created pair of better rank goes first.
 * The two agree unless a merge's rank is better than that of a merge that
 * makes one of its parts (never so in trained vocabularies). */
static void bpe_merge(const Tokenizer *t, Scratch *s, size_t n, int32_t *out, size_t *n_out)
{
    int batch = t->kind == TOKENIZER_GPT2_BPE;
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->n_heap = 0;
    if (t->merges)
        for (size_t i = 0; i + 1 < n; i++)
            push_pair(t, s, (int32_t)i);
    while (s->n_heap > 0) {
        /* Take every queued occurrence of the best rank (in position order),
         * then merge them left to right; pairs the merges create wait in the
         * heap until this rank is done (the reference's one pass per bigram). */
        uint32_t rank = s->heap[0].rank;
        size_t nb = 0;
        while (s->n_heap > 0 && s->heap[0].rank == rank && (batch || nb == 0))
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
    for (int32_t i = 0; n > 0 && i >= 0; i = s->next[i])
        out[(*n_out)++] = s->id[i];
}

/* Byte-level BPE of the piece p[0..n), appended to out. */
static DrrlStatus bpe_piece(const Tokenizer *t, Scratch *s, const unsigned char *p, size_t n,
                            int32_t *out, size_t *n_out, DrrlError *err)
{
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] < 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "text: byte 0x%02X has no token in this vocabulary", p[i]);
    if (t->ignore_merges && n > 1) {
        uint32_t v = token_lookup(t, (const char *)p, n);
        if (v) {
            out[(*n_out)++] = (int32_t)(v - 1);
            return DRRL_OK;
        }
    }
    if (n == 1 || !t->merges) {
        for (size_t i = 0; i < n; i++)
            out[(*n_out)++] = t->byte_id[p[i]];
        return DRRL_OK;
    }
    if (n > INT32_MAX || scratch_reserve(s, n))
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    for (size_t i = 0; i < n; i++)
        s->id[i] = t->byte_id[p[i]];
    bpe_merge(t, s, n, out, n_out);
    return DRRL_OK;
}

/* SentencePiece-style BPE of the word p[0..n): one symbol per character
 * that is a token, else its bytes' "<0xNN>" tokens (bytes of invalid UTF-8
 * too); then the merges. */
static DrrlStatus sp_word(const Tokenizer *t, Scratch *s, const unsigned char *p, size_t n,
                          int32_t *out, size_t *n_out, DrrlError *err)
{
    if (n > INT32_MAX || scratch_reserve(s, n))
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t c = utf8_decode(p + i, n - i, &cp);
        uint32_t v = c ? token_lookup(t, (const char *)p + i, c) : 0;
        if (v) {
            s->id[k++] = (int32_t)(v - 1);
            i += c;
            continue;
        }
        for (size_t j = 0; j < (c ? c : 1); j++, i++) {
            if (t->fallback_id[p[i]] < 0)
                return drrl_error(err, DRRL_E_INPUT,
                                  "text: byte 0x%02X has no <0x%02X> token in this vocabulary",
                                  p[i], p[i]);
            s->id[k++] = t->fallback_id[p[i]];
        }
    }
    bpe_merge(t, s, k, out, n_out);
    return DRRL_OK;
}

static int is_metaspace(const unsigned char *p)
{
    return p[0] == 0xE2 && p[1] == 0x96 && p[2] == 0x81;
}

/* SentencePiece-style BPE of the normalised text p[0..n). Hugging Face
 * merges the whole text as one word. When no token has a '\u2581' right
 * after another character (t->sp_split, checked at load), no merge can
 * join the text across such a place, and merges on either side never meet:
 * cutting the text into words before each '\u2581' that follows another
 * character gives the same ids, with short words for the heap. */
static DrrlStatus sp_encode(const Tokenizer *t, Scratch *s, const unsigned char *p, size_t n,
                            int32_t *out, size_t *n_out, DrrlError *err)
{
    if (!t->sp_split && !t->sp_split_all)
        return sp_word(t, s, p, n, out, n_out, err);
    size_t start = 0;
    for (size_t j = 1; j + 3 <= n; j++) {
        /* Metaspace's split: before every '\u2581' (but the first byte);
         * else before one that follows another character. */
        if (is_metaspace(p + j) && (t->sp_split_all || (j >= 3 && !is_metaspace(p + j - 3)))) {
            DrrlStatus st = sp_word(t, s, p + start, j - start, out, n_out, err);
            if (st)
                return st;
            start = j;
        }
    }
    return sp_word(t, s, p + start, n - start, out, n_out, err);
}

/* Does no token of the first n_vocab ids hold '\u2581' right after another
 * character? (See sp_encode.) */
static int sp_can_split(const Tokenizer *t, size_t n_vocab)
{
    for (size_t id = 0; id < n_vocab && id < t->n_ids; id++) {
        const unsigned char *k = (const unsigned char *)t->bytes + t->off[id];
        int32_t n = t->len[id];
        for (int32_t j = 1; j + 3 <= n; j++)
            if (is_metaspace(k + j) && (j < 3 || !is_metaspace(k + j - 3)))
                return 0;
    }
    return 1;
}

/* The normalised text: NFC, or SentencePiece's '\u2581' for every space
 * and prepended as t->sp_prepend says. *norm is malloc'ed, or NULL when the
 * text is used as it is. */
static int normalize(const Tokenizer *t, const char *s, size_t n, char **norm, size_t *nn)
{
    *norm = NULL;
    *nn = n;
    if (t->nfc)
        return tok_nfc(s, n, norm, nn);
    if (t->kind != TOKENIZER_SP_BPE || n == 0)
        return 0;
    size_t spaces = 1;
    for (size_t i = 0; i < n; i++)
        spaces += s[i] == ' ';
    char *o = malloc(n + 2 * spaces + 2); /* each space and the prefix: 3 bytes */
    if (!o)
        return -1;
    size_t k = 0;
    if (t->sp_prepend == 1 ||
        (t->sp_prepend == 2 && s[0] != ' ' && !(n >= 3 && memcmp(s, METASPACE, 3) == 0)))
        memcpy(o, METASPACE, 3), k = 3;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(o + k, METASPACE, 3), k += 3;
        else
            o[k++] = s[i];
    }
    o[k] = '\0';
    *norm = o;
    *nn = k;
    return 0;
}

static DrrlStatus encode_normalized(const Tokenizer *tok, const unsigned char *s, size_t len,
                                    int32_t *out, size_t *n_out, DrrlError *err)
{
    DrrlStatus st = DRRL_OK;
    Scratch sc = {0};
    if (tok->kind == TOKENIZER_SP_BPE) {
        st = sp_encode(tok, &sc, s, len, out, n_out, err);
    } else {
        for (size_t i = 0; i < len && !st;) {
            size_t k = tok->kind == TOKENIZER_GPT2_BPE
                           ? tok_pretoken_gpt2(s, len, i)
                           : tok_pretoken_llama3(s, len, i, tok->max_digits);
            st = bpe_piece(tok, &sc, s + i, k, out, n_out, err);
            i += k;
        }
    }
    scratch_done(&sc);
    return st;
}

DrrlStatus tokenizer_encode(const Tokenizer *tok, const char *bytes, size_t len, int32_t **ids,
                            size_t *n, DrrlError *err)
{
    *ids = NULL;
    *n = 0;
    if (len == 0)
        return DRRL_OK;
    char *norm = NULL;
    if (normalize(tok, bytes, len, &norm, &len))
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    if (norm)
        bytes = norm;
    /* at most one id per byte of the normalised text */
    int32_t *out = len < SIZE_MAX / sizeof(int32_t) ? malloc(len * sizeof *out) : NULL;
    if (!out) {
        free(norm);
        return drrl_error(err, DRRL_E_NOMEM, "text: out of memory");
    }
    const unsigned char *s = (const unsigned char *)bytes;
    size_t n_out = 0;
    DrrlStatus st = DRRL_OK;
    if (tok->kind == TOKENIZER_BYTES) {
        for (size_t i = 0; i < len; i++)
            out[i] = s[i];
        n_out = len;
    } else {
        st = encode_normalized(tok, s, len, out, &n_out, err);
    }
    free(norm);
    if (st || n_out == 0) {
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
    size_t total = 0, k;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= tok->n_ids || tok->len[ids[i]] < 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "ids:%zu: %ld is not a token id of this tokenizer (0..%zu)",
                              i + 1, (long)ids[i], tok->n_ids - 1);
        raw_of(tok, (size_t)ids[i], &k);
        total += k;
    }
    char *out = malloc(total + 1);
    if (!out)
        return drrl_error(err, DRRL_E_NOMEM, "ids: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *r = raw_of(tok, (size_t)ids[i], &k);
        memcpy(out + o, r, k);
        o += k;
    }
    /* SentencePiece's decoder strips the space its normalizer prepended. */
    size_t cut = 0;
    while (cut < o && cut < (size_t)tok->strip_start && out[cut] == ' ')
        cut++;
    memmove(out, out + cut, o - cut);
    o -= cut;
    out[o] = '\0';
    *bytes = out;
    *len = o;
    return DRRL_OK;
}
