/* fuzz_policy_file.c: a policy file (safetensors with a JSON document in its
 * metadata), loaded and validated (policy_file_load). */
#include <stdint.h>

#include "fuzz_util.h"
#include "policy/policy_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("p.safetensors", data, size);
    PolicyNet *net = NULL;
    PolicyMeta *meta = malloc(sizeof *meta);
    PolicyAdam adam;
    int has_adam = 0;
    DrrlError err;
    if (!meta)
        return 0;
    if (policy_file_load(path, &net, meta, &adam, &has_adam, &err) != DRRL_OK) {
        FUZZ_CHECK_MSG(err);
    } else {
        if (has_adam)
            policy_adam_done(&adam);
        policy_net_free(net);
    }
    free(meta);
    return 0;
}
