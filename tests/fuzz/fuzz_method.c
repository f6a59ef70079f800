/* fuzz_method.c: attention method specs (method_parse, method_check). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "attn/method.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char spec[8192];
    if (size >= sizeof spec)
        size = sizeof spec - 1;
    memcpy(spec, data, size);
    spec[size] = '\0';
    Method m;
    DrrlError err;
    if (method_parse(spec, &m, &err) != DRRL_OK) {
        FUZZ_CHECK_MSG(err);
        return 0;
    }
    /* A parsed spec's canonical form parses to itself. */
    Method again;
    if (method_parse(m.spec, &again, &err) != DRRL_OK || strcmp(again.spec, m.spec) != 0)
        abort();
    static const int32_t dims[] = {1, 8, 64};
    for (size_t i = 0; i < 3; i++)
        if (method_check(&m, dims[i], 4, &err) != DRRL_OK)
            FUZZ_CHECK_MSG(err);
    (void)method_is_lowrank(&m);
    return 0;
}
