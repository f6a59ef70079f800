/* fuzz_tokenizer_encode.c: GPT-2's pre-tokenizer and BPE on arbitrary bytes,
 * with the real GPT-2 vocabulary (tests/data/gpt2-bpe, loaded once).
 * Checks: ids inside the vocabulary, at most one id per byte, and
 * decode(encode(x)) == x. Also the byte-level tokenizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "fuzz_tokenizer.h"

#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

static Tokenizer *gpt2, *bytes;

/* The round trip, never refused, with at most one id per byte. */
static void check(const Tokenizer *tok, const uint8_t *data, size_t size)
{
    size_t n;
    if (fuzz_round_trip(tok, (const char *)data, size, &n) != DRRL_OK || n > size)
        abort();
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
