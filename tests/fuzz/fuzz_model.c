/* fuzz_model.c: a whole model directory: config.json and model.safetensors
 * (split at the first NUL), loaded and validated against each other
 * (model_load: shapes, dtypes, finite values, missing tensors). */
#include <stdint.h>

#include "fuzz_util.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, off2;
    fuzz_split(data, size, &n1, &off2);
    fuzz_write("config.json", data, n1);
    fuzz_write("model.safetensors", data + off2, size - off2);
    Model *m = NULL;
    DrrlError err;
    if (model_load(fuzz_tmpdir(), &m, &err) != DRRL_OK)
        FUZZ_CHECK_MSG(err);
    model_free(m);
    return 0;
}
