/* fuzz_safetensors.c: the safetensors header and tensor table (safetensors_load),
 * then every tensor converted (safetensors_to_f32 / _to_i32) and looked up. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("t.safetensors", data, size);
    Safetensors *st = NULL;
    DrrlError err;
    if (safetensors_load(path, &st, &err) != DRRL_OK) {
        FUZZ_CHECK_MSG(err);
        return 0;
    }
    for (size_t i = 0; i < st->n_tensors; i++) {
        const SafetensorsTensor *t = &st->tensors[i];
        if (safetensors_find(st, t->name) == NULL)
            abort();
        if (t->numel > ((size_t)1 << 22))
            continue;
        float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
        int32_t *n = malloc((t->numel ? t->numel : 1) * sizeof *n);
        if (f && safetensors_to_f32(st, t, f, &err) != DRRL_OK)
            FUZZ_CHECK_MSG(err);
        if (n && safetensors_to_i32(st, t, n, &err) != DRRL_OK)
            FUZZ_CHECK_MSG(err);
        free(f);
        free(n);
    }
    (void)safetensors_metadata(st, "format");
    safetensors_free(st);
    return 0;
}
