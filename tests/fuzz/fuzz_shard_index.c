/* fuzz_shard_index.c: a sharded checkpoint's index on its own
 * (model.safetensors.index.json: "weight_map" from tensor names to shard file
 * names), read by model_load beside a fixed, valid config.json and the three
 * real shards of tests/fixtures/llama-sharded-f16 (copied once into the
 * harness's directory). Only the index varies.
 * Checks: every error is one non-empty line; an index that loads gives the
 * very weights of the fixture (same weights hash), since each shard holds
 * only its own tensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/model.h"

#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

#define FIXTURE FUZZ_SRCDIR "/tests/fixtures/llama-sharded-f16"

static char want_hash[sizeof((Model *)0)->hash];
static int ready;

static void copy_in(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURE, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_shard_index: %s: cannot open\n", path);
        abort();
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    fuzz_write(name, buf, n);
    free(buf);
}

/* The fixture's files go in once; the fixture itself gives the hash an index
 * that loads must reproduce. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    Model *m = NULL;
    DrrlError err;
    if (model_load(FIXTURE, &m, &err) != DRRL_OK) {
        fprintf(stderr, "fuzz_shard_index: %s\n", err.msg);
        abort();
    }
    memcpy(want_hash, m->hash, sizeof want_hash);
    model_free(m);
    copy_in("config.json");
    copy_in("model-00001-of-00003.safetensors");
    copy_in("model-00002-of-00003.safetensors");
    copy_in("model-00003-of-00003.safetensors");
    ready = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        LLVMFuzzerInitialize(NULL, NULL); /* standalone_main.c does not call it */
    fuzz_write("model.safetensors.index.json", data, size);
    Model *m = NULL;
    DrrlError err;
    if (model_load(fuzz_tmpdir(), &m, &err) != DRRL_OK) {
        FUZZ_CHECK_MSG(err);
        return 0;
    }
    if (memcmp(m->hash, want_hash, sizeof want_hash) != 0)
        abort();
    model_free(m);
    return 0;
}
