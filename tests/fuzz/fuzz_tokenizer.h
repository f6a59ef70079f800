/* fuzz_tokenizer.h: the round trip the tokenizer harnesses check
 * (fuzz_tokenizer_bpe, fuzz_tokenizer_encode, fuzz_tokenizer_json). Include
 * after fuzz_util.h. */
#ifndef DRRL_FUZZ_TOKENIZER_H
#define DRRL_FUZZ_TOKENIZER_H

#include "model/tokenizer.h"

/* A text with spaces, digits, a contraction, tabs, UTF-8 and an invalid byte. */
static const char fuzz_text[] =
    "Hello, world! It's 2024 -- don't  panic\n\tab abab \xc3\xa9\xff";

/* Encode text (len bytes) with tok. When that fails, its error must be one
 * line and the status is returned. Else every id must lie inside tok's
 * vocabulary and decoding must give text back byte for byte (abort
 * otherwise); *n_ids is the number of ids. */
static DrrlStatus fuzz_round_trip(const Tokenizer *tok, const char *text, size_t len,
                                  size_t *n_ids)
{
    int32_t *ids;
    size_t n;
    DrrlError err;
    DrrlStatus st = tokenizer_encode(tok, text, len, &ids, &n, &err);
    if (st != DRRL_OK) {
        FUZZ_CHECK_MSG(err);
        return st;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(tok))
            abort();
    char *back;
    size_t blen;
    if (tokenizer_decode(tok, ids, n, &back, &blen, &err) != DRRL_OK)
        abort();
    if (blen != len || memcmp(back, text, len) != 0)
        abort();
    free(back);
    free(ids);
    *n_ids = n;
    return DRRL_OK;
}

#endif
