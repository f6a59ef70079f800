/* fuzz_tokenizer_json.c: tokenizer.json. A tokenizer that loads must encode
 * and decode text losslessly, with every id inside its vocabulary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Tokenizer *tok;
    DrrlError err;
    if (tokenizer_parse_json((const char *)data, size, "tokenizer.json", &tok, &err) !=
        DRRL_OK) {
        FUZZ_CHECK_REFUSAL(err, tok);
        return 0;
    }
    size_t n;
    (void)fuzz_round_trip(tok, fuzz_text, sizeof fuzz_text - 1, &n);
    for (size_t i = 0; i < tokenizer_vocab_size(tok); i++)
        (void)tokenizer_token_text(tok, (int32_t)i);
    tokenizer_free(tok);
    return 0;
}
