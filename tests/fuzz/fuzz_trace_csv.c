/* fuzz_trace_csv.c: a trace CSV and its JSON sidecar (split at the first
 * NUL), read for replay (trace_csv_load). */
#include <stdint.h>

#include "fuzz_util.h"
#include "trace/trace_csv.h"
#include "trace/trace_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, off2;
    fuzz_split(data, size, &n1, &off2);
    const char *path = fuzz_write("t.csv", data, n1);
    fuzz_write("t.csv.json", data + off2, size - off2);
    TraceStore *s = NULL;
    DrrlError err;
    if (trace_csv_load(path, &s, &err) != DRRL_OK) {
        FUZZ_CHECK_REFUSAL(err, s);
    }
    trace_store_free(s);
    return 0;
}
