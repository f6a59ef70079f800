/* cmd_convert.c: `drrl convert`: rewrite a drrl-trained model directory with
 * its weights stored as float32, float16 or bfloat16. */
#include "config.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/safetensors.h"
#include "train/train_export.h"

static const char usage[] =
    "usage: drrl convert [--dtype f16|bf16|f32] [--force] IN_DIR OUT_DIR\n"
    "\n"
    "Rewrite a byte-level Llama model directory of the kind `drrl train-lm`\n"
    "writes (config.json and model.safetensors) with its weights stored as\n"
    "another dtype; config.json's torch_dtype follows. float16 halves the file;\n"
    "every weight is rounded to the nearest float16 (ties to even), and a\n"
    "weight beyond float16's range is an error. drrl and transformers widen the\n"
    "stored weights back to float32 exactly when they load them.\n"
    "\n"
    "  --dtype T     f16 (default), bf16 or f32\n"
    "  --force       replace OUT_DIR's model files if they exist\n"
    "  -h, --help    show this help\n"
    "\n"
    "Prints the largest absolute change of a weight and the new file's size.\n";

int cmd_convert(int argc, char **argv)
{
    const char *dt = "f16";
    int force = 0, first;
    const CliOpt opts[] = {CLI_STR("dtype", &dt), CLI_FORCE_OPT(&force), CLI_END};
    int r = cli_parse("convert", usage, opts, argc, argv, &first);
    if (r != CLI_GO)
        return r;
    SafetensorsDtype dtype;
    if (strcmp(dt, "f16") == 0)
        dtype = SAFETENSORS_F16;
    else if (strcmp(dt, "bf16") == 0)
        dtype = SAFETENSORS_BF16;
    else if (strcmp(dt, "f32") == 0)
        dtype = SAFETENSORS_F32;
    else
        return cli_usage_error("convert", "--dtype: '%s' is not f16, bf16 or f32", dt);
    if (argc - first != 2)
        return cli_usage_error("convert", "expected IN_DIR and OUT_DIR");
    const char *in = argv[first], *out = argv[first + 1];
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", out);

    DrrlError err;
    TrainModel *m = NULL;
    char *meta = NULL; /* the input's safetensors metadata (how train-lm made it), kept */
    if (train_export_load(in, &m, &meta, &err))
        return cli_fail(&err);
    double maxdiff = 0.0;
    DrrlStatus st = train_export_write(m, out, meta ? meta : "{\"format\":\"pt\"}", dtype,
                                       force ? FILEIO_FORCE : 0, &maxdiff, &err);
    free(meta);
    train_model_free(m);
    if (st)
        return cli_fail(&err);
    if (stat(path, &sb) != 0)
        return cli_error(DRRL_E_IO, "%s: not written", path);
    printf("%s: %s weights, %lld bytes; largest change of a weight %.3g\n", path,
           train_export_torch_dtype(dtype), (long long)sb.st_size, maxdiff);
    return CLI_EXIT_OK;
}
