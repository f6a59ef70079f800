/* fuzz_config.c: a model's config.json (model_config_load). */
#include <stdint.h>

#include "fuzz_util.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("config.json", data, size);
    ModelConfig cfg;
    DrrlError err;
    if (model_config_load(fuzz_tmpdir(), &cfg, &err) != DRRL_OK)
        FUZZ_CHECK_MSG(err);
    else
        (void)model_param_count(&cfg);
    return 0;
}
