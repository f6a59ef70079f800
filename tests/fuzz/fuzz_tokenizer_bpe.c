/* fuzz_tokenizer_bpe.c: vocab.json + merges.txt (split at the first NUL).
 * A tokenizer that loads must encode and decode text losslessly, with every
 * id inside its vocabulary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, off2;
    fuzz_split(data, size, &n1, &off2);
    Tokenizer *tok;
    DrrlError err;
    if (tokenizer_parse_bpe((const char *)data, n1, "vocab.json", (const char *)data + off2,
                            size - off2, "merges.txt", &tok, &err) != DRRL_OK) {
        FUZZ_CHECK_REFUSAL(err, tok);
        return 0;
    }
    /* (encoding may fail: a vocabulary without some byte's token) */
    size_t n;
    (void)fuzz_round_trip(tok, fuzz_text, sizeof fuzz_text - 1, &n);
    (void)fuzz_round_trip(tok, (const char *)data + off2, size - off2, &n);
    for (size_t i = 0; i < tokenizer_vocab_size(tok); i++)
        if (strlen(tokenizer_token_text(tok, (int32_t)i)) == 0)
            abort();
    tokenizer_free(tok);
    return 0;
}
