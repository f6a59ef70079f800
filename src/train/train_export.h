/* train_export.h: write a trained model as a Hugging Face model directory
 * (config.json + model.safetensors, float32) that transformers'
 * LlamaForCausalLM loads, and read such a directory back for evaluation.
 *
 * config.json carries architectures ["LlamaForCausalLM"], model_type
 * "llama", the shapes, rms_norm_eps, rope_theta (top level, transformers 4)
 * and rope_parameters.rope_theta (transformers 5), vocab_size 256,
 * tie_word_embeddings, and "drrl_tokenizer": "byte" (token id = byte value).
 * Tensor names are transformers' (model.layers.N.self_attn.q_proj.weight,
 * ...); lm_head.weight is stored only when untied.
 */
#ifndef DRRL_TRAIN_EXPORT_H
#define DRRL_TRAIN_EXPORT_H

#include "model/safetensors.h"
#include "base/status.h"
#include "train/train_model.h"

/* Write DIR/config.json and DIR/model.safetensors, each atomically (DIR is
 * created if missing), the weights stored as dtype: SAFETENSORS_F32, or
 * SAFETENSORS_F16 / SAFETENSORS_BF16 rounded to nearest even (half the
 * size; config.json's torch_dtype says which). metadata_json: NULL or a JSON
 * object of strings stored in the safetensors header (e.g. how the model was
 * trained). max_change, if not NULL, receives the largest |w - stored w|
 * over all weights (0 for F32). Errors: DRRL_E_USAGE (another dtype),
 * DRRL_E_INPUT (a weight beyond the 16-bit type's range), DRRL_E_IO,
 * DRRL_E_NOMEM. flags: base/fileio.h output flags (FILEIO_FORCE to replace
 * the files of an existing model directory; both are checked first). */
DrrlStatus train_export_write(const TrainModel *m, const char *dir, const char *metadata_json,
                              SafetensorsDtype dtype, unsigned flags, double *max_change,
                              DrrlError *err);

/* config.json's torch_dtype for F32, F16 and BF16 ("float32", ...); NULL for
 * any other dtype. */
const char *train_export_torch_dtype(SafetensorsDtype dtype);

/* Read a directory written by train_export_write (or any F32/F16/BF16 Llama
 * byte-level model of this shape family: vocab 256, as many KV heads as
 * heads, no biases) into a new TrainModel. Errors: DRRL_E_NOTFOUND,
 * DRRL_E_INPUT (naming the file and key or tensor), DRRL_E_NOMEM.
 * metadata_json, if not NULL, receives a malloc'd copy of the safetensors
 * header's "__metadata__" (NULL when it has none); the caller frees it. */
DrrlStatus train_export_load(const char *dir, TrainModel **out, char **metadata_json,
                             DrrlError *err);

#endif
