/* tokenizer_text.h: the text side of the tokenizers (internal to
 * src/model/tokenizer*.c): UTF-8 decoding, Unicode character classes and
 * NFC (from utf8proc, see tokenizer_text.c), normalizers and the
 * pre-tokenizer regexes of GPT-2 and of the Llama-3 / Qwen2 family.
 */
#ifndef DRRL_TOKENIZER_TEXT_H
#define DRRL_TOKENIZER_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Decode one UTF-8 code point at s[0..n). Returns its length (1..4) and sets
 * *cp, or returns 0 for an invalid or truncated sequence (overlong forms,
 * surrogates and values above U+10FFFF are invalid). n must be >= 1. */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Which whitespace \s means: JavaScript's (WhiteSpace + LineTerminator:
 * includes U+FEFF, excludes U+0085), as GPT-2's reference encoder sees it,
 * or Unicode's White_Space property, as Oniguruma (Hugging Face tokenizers)
 * sees it. */
typedef enum TokSpace { TOK_SPACE_JS, TOK_SPACE_UNICODE } TokSpace;

/* Length of the pre-token that starts at s[i] (i < n; the result is >= 1)
 * under GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with JavaScript's \s. Bytes that are not valid UTF-8 count as one
 * "other" character each (neither letter, number nor space). */
size_t tok_pretoken_gpt2(const unsigned char *s, size_t n, size_t i);

/* The same under the Llama-3 / Qwen2 regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with Unicode's White_Space for \s, ASCII case folding in (?i:...) and D
 * = max_digits (3 for Llama-3; Qwen2's \p{N} is D = 1). */
size_t tok_pretoken_llama3(const unsigned char *s, size_t n, size_t i, int max_digits);

/* NFC of s[0..n): *out is malloc'ed (NUL after *out_n bytes). Runs of valid
 * UTF-8 are normalised; bytes that are not valid UTF-8 are kept as they are
 * (they separate the runs, as a U+FFFD would). Returns 0, or -1 when out of
 * memory. */
int tok_nfc(const char *s, size_t n, char **out, size_t *out_n);

/* Is cp a format character (general category Cf: zero-width joiner and
 * non-joiner, zero-width space, soft hyphen, word joiner, BOM, the
 * bidirectional marks, embeddings, overrides and isolates, tags)? They
 * draw nothing, and the bidirectional ones reorder what follows on a
 * terminal line, so token display text escapes them. */
int tok_is_format(uint32_t cp);

/* The version of the Unicode data behind the character classes and NFC
 * (utf8proc's), e.g. "15.0.0". */
const char *tok_unicode_version(void);

#endif
