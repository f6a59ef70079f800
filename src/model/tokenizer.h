/* tokenizer.h: text <-> token ids for the models drrl runs.
 *
 * Kinds (TokenizerKind):
 *   - byte-level: id i is the byte i (vocabulary 256); drrl's own models.
 *   - GPT-2 byte-level BPE (Radford et al. 2019; the reference is OpenAI's
 *     encoder.py / npm gpt-3-encoder): bytes are mapped to printable code
 *     points (bytes_to_unicode), text is split by GPT-2's pre-tokenizer
 *     regex, and each piece is merged pair by pair in merge-rank order.
 *     Read from a model directory's tokenizer.json (model.type "BPE"), or
 *     vocab.json + merges.txt.
 *   - Hugging Face tokenizer.json pipelines of today's families: the
 *     SentencePiece-style BPE of Llama-2, Mistral and TinyLlama ('\u2581'
 *     for spaces by Prepend + Replace normalizers or a Metaspace
 *     pre-tokenizer, byte fallback), and byte-level BPE after the Split
 *     regexes of Llama-3 (digits in threes) and Qwen2/3 (NFC, digits one
 *     by one). Ids equal Hugging Face's (tests/cli/tokenize_hf.sh); added
 *     and special tokens are never produced from plain text.
 * For any other tokenizer, drrl takes token ids directly (--ids).
 *
 * A Tokenizer is immutable after loading and may be shared between threads.
 * Errors: DRRL_E_NOTFOUND (no tokenizer files, missing file), DRRL_E_INPUT
 * (malformed file; the message names FILE:LINE:COLUMN or the JSON key),
 * DRRL_E_IO, DRRL_E_NOMEM. Messages follow status.h ("FILE:WHERE: what").
 */
#ifndef DRRL_TOKENIZER_H
#define DRRL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct Tokenizer Tokenizer;

typedef enum TokenizerKind {
    TOKENIZER_BYTES = 0,  /* id == byte value, vocabulary 256 */
    TOKENIZER_GPT2_BPE,   /* GPT-2 byte-level BPE */
    TOKENIZER_LLAMA3_BPE, /* byte-level BPE, Llama-3 pre-tokenizer */
    TOKENIZER_QWEN2_BPE,  /* byte-level BPE, Qwen2 pre-tokenizer (NFC as the file says) */
    TOKENIZER_SP_BPE,     /* SentencePiece-style BPE: Llama-2, Mistral, TinyLlama */
} TokenizerKind;

/* The byte-level tokenizer (vocabulary 256). Returns NULL only when out of
 * memory. Free with tokenizer_free. */
Tokenizer *tokenizer_bytes_new(void);

/* Load the tokenizer of the model directory dir. Order of preference:
 *   1. dir/tokenizer.json (a BPE model with one of the pipelines above;
 *      others are rejected naming the key and what was found);
 *   2. dir/vocab.json + dir/merges.txt;
 *   3. byte-level, when dir/config.json says "drrl_tokenizer": "byte" or
 *      vocab_size_from_config is 256 (pass 0 or -1 when unknown; config.json
 *      is then read for "vocab_size" itself when present);
 *   4. otherwise DRRL_E_NOTFOUND with a message saying that token ids must
 *      be given directly (--ids).
 * When vocab_size_from_config > 0, the tokenizer's ids must fit in it
 * (the model's embedding may be larger than the tokenizer's vocabulary, as
 * padded vocabularies are, but not smaller): else DRRL_E_INPUT.
 * On success *out owns the tokenizer (free with tokenizer_free). */
DrrlStatus tokenizer_load_dir(const char *dir, int vocab_size_from_config, Tokenizer **out,
                              DrrlError *err);

/* Load GPT-2 BPE from explicit files (used by tokenizer_load_dir and the
 * fuzzers). tokenizer_json may be given alone; otherwise both vocab_json and
 * merges_txt are needed. */
DrrlStatus tokenizer_load_bpe_files(const char *vocab_json, const char *merges_txt,
                                    Tokenizer **out, DrrlError *err);
DrrlStatus tokenizer_load_json_file(const char *tokenizer_json, Tokenizer **out,
                                    DrrlError *err);

/* Parse from memory (fuzzing entry points). name is used in messages. */
DrrlStatus tokenizer_parse_bpe(const char *vocab_json, size_t vocab_len, const char *vocab_name,
                               const char *merges_txt, size_t merges_len,
                               const char *merges_name, Tokenizer **out, DrrlError *err);
DrrlStatus tokenizer_parse_json(const char *json, size_t len, const char *name, Tokenizer **out,
                                DrrlError *err);

/* Free; NULL is a no-op. */
void tokenizer_free(Tokenizer *tok);

TokenizerKind tokenizer_kind(const Tokenizer *tok);
/* "bytes", "gpt2-bpe", "llama3-bpe", "qwen2-bpe" or "sentencepiece-bpe"
 * (static string). */
const char *tokenizer_kind_name(const Tokenizer *tok);
/* A one-line description of the pipeline for `drrl info` (static string). */
const char *tokenizer_describe(const Tokenizer *tok);
/* Number of ids: 256 for bytes; 1 + the largest id for BPE. */
size_t tokenizer_vocab_size(const Tokenizer *tok);

/* Encode len bytes (any bytes; invalid UTF-8 is encoded byte by byte as
 * GPT-2's byte-level scheme allows). On success *ids is a malloc'ed array
 * of *n ids (the caller frees it; NULL with *n == 0 for empty input).
 * Errors: DRRL_E_NOMEM; DRRL_E_INPUT when a BPE vocabulary lacks a byte's
 * token (a vocabulary that cannot represent the input). */
DrrlStatus tokenizer_encode(const Tokenizer *tok, const char *bytes, size_t len, int32_t **ids,
                            size_t *n, DrrlError *err);

/* Decode n ids to bytes. On success *bytes is malloc'ed, NUL-terminated
 * (the terminator is not counted in *len); the caller frees it.
 * decode(encode(x)) == x for every byte string x.
 * Errors: DRRL_E_INPUT naming the first id outside the vocabulary. */
DrrlStatus tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, char **bytes,
                            size_t *len, DrrlError *err);

/* The raw bytes of one token (not NUL-terminated; *len set), or NULL for an
 * id outside the vocabulary. Valid while tok lives. */
const char *tokenizer_token_bytes(const Tokenizer *tok, int32_t id, size_t *len);

/* A printable rendering of one token for display, valid while tok lives:
 * valid UTF-8 with no control characters; a space shows as itself,
 * newline as "\n", tab as "\t", other control bytes and bytes of invalid or
 * partial UTF-8 as "\xHH". Ids outside the vocabulary give "<?>". */
const char *tokenizer_token_text(const Tokenizer *tok, int32_t id);

/* The display text of ids[i] within the sequence ids[0..n) (i < n): as
 * tokenizer_token_text ('\u2581' shown as a space), except that a
 * character whose bytes are split over several tokens (byte-fallback
 * "<0xNN>" pieces, or byte-level BPE) is shown whole on the token holding
 * its first byte, and a token holding only the rest of such a character
 * shows as "". Bytes that form no complete character are escaped "\xHH".
 * Returns either a string valid while tok lives or buf (cap bytes, cut at a
 * character boundary when too long). */
const char *tokenizer_token_text_in(const Tokenizer *tok, const int32_t *ids, size_t n,
                                    size_t i, char *buf, size_t cap);

/* The id of a token given by its raw bytes, or -1 when it has none. */
int32_t tokenizer_token_id(const Tokenizer *tok, const char *bytes, size_t len);

#endif
