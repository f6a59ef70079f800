/* fuzz_tokenizer_encode.c: GPT-2's pre-tokenizer and BPE on arbitrary bytes,
 * with the real GPT-2 vocabulary (tests/data/gpt2-bpe, loaded once).
 * Checks: ids inside the vocabulary, at most one id per byte, and
 * decode(encode(x)) == x. Also the byte-level tokenizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/tokenizer.h"

#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

static Tokenizer *gpt2, *bytes;

static void check(const Tokenizer *tok, const uint8_t *data, size_t size)
{
    int32_t *ids;
    size_t n;
    DrrlError err;
    if (tokenizer_encode(tok, (const char *)data, size, &ids, &n, &err) != DRRL_OK)
        abort();
    if (n > size)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(tok))
            abort();
    char *back;
    size_t blen;
    if (tokenizer_decode(tok, ids, n, &back, &blen, &err) != DRRL_OK)
        abort();
    if (blen != size || memcmp(back, data, size) != 0)
        abort();
    free(back);
    free(ids);
}

/* Load the vocabulary once, before fuzzing starts: under ASan on a busy
 * machine it takes seconds, which must not count against the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    DrrlError err;
    if (tokenizer_load_dir(FUZZ_SRCDIR "/tests/data/gpt2-bpe", 50257, &gpt2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    bytes = tokenizer_bytes_new();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!gpt2)
        LLVMFuzzerInitialize(NULL, NULL); /* standalone_main.c does not call it */
    check(gpt2, data, size);
    check(bytes, data, size);
    return 0;
}
