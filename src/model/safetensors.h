/* safetensors.h: read (mmapped, validated) and write safetensors files.
 *
 * Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON, then the data section. The JSON maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte
 * offsets relative to the data section) and may hold "__metadata__", an
 * object of string values.
 *
 * safetensors_load() validates everything before use, as the reference Python
 * library does: header length against the file size, well-formed JSON with no
 * duplicate keys, known dtypes, non-negative integer shapes, offsets that are
 * in range, agree with dtype x shape, do not overlap, and cover the data
 * section exactly (no gaps). Every error message names the file and, where
 * there is one, the tensor: "PATH: tensor 'NAME': what".
 *
 * Host byte order is assumed little-endian (x86-64, arm64), as the format is.
 */
#ifndef DRRL_SAFETENSORS_H
#define DRRL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define SAFETENSORS_MAX_DIMS 8
/* Refuse headers larger than this (the reference library's limit is 100 MB). */
#define SAFETENSORS_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef enum SafetensorsDtype {
    SAFETENSORS_BOOL,
    SAFETENSORS_U8,
    SAFETENSORS_I8,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E5M2,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_U32,
    SAFETENSORS_F32,
    SAFETENSORS_F64,
    SAFETENSORS_I64,
    SAFETENSORS_U64,
    SAFETENSORS_DTYPE_COUNT
} SafetensorsDtype;

/* The format's spelling ("F32", "BF16", ...). Never NULL. */
const char *safetensors_dtype_name(SafetensorsDtype d);
/* Bytes per element. */
size_t safetensors_dtype_size(SafetensorsDtype d);
/* Parse a dtype name; returns 0 and stores it, or -1 if unknown. */
int safetensors_dtype_parse(const char *name, SafetensorsDtype *out);

typedef struct SafetensorsTensor {
    char *name; /* owned by the Safetensors */
    SafetensorsDtype dtype;
    int ndim; /* 0 (scalar) .. SAFETENSORS_MAX_DIMS */
    size_t shape[SAFETENSORS_MAX_DIMS];
    size_t numel;     /* product of shape (1 for a scalar) */
    size_t nbytes;    /* numel * dtype size */
    const void *data; /* into the mapping; may be unaligned */
} SafetensorsTensor;

typedef struct Safetensors {
    char *path; /* as given to safetensors_load */
    size_t n_tensors;
    SafetensorsTensor *tensors; /* in header order */
    char *metadata_json;        /* "__metadata__" re-serialised, or NULL */
    /* private */
    void *map_;
    size_t map_size_;
    size_t *sorted_; /* tensor indices sorted by name */
    void *metadata_; /* json_t object, or NULL */
} Safetensors;

/* Map and validate PATH. On success *out owns the mapping; free it with
 * safetensors_free(). Errors: DRRL_E_NOTFOUND (no such file), DRRL_E_INPUT
 * (anything malformed), DRRL_E_IO, DRRL_E_NOMEM. */
DrrlStatus safetensors_load(const char *path, Safetensors **out, DrrlError *err);
void safetensors_free(Safetensors *st);

/* The tensor called NAME, or NULL. O(log n). Valid until safetensors_free. */
const SafetensorsTensor *safetensors_find(const Safetensors *st, const char *name);

/* A metadata value by key (a pointer valid until safetensors_free), or NULL. */
const char *safetensors_metadata(const Safetensors *st, const char *key);

/* Convert t's elements to float32 into dst (t->numel floats). Supports F32,
 * F16, BF16, F64, I32, I64, U8, I8, I16, U16, U32, BOOL; others give
 * DRRL_E_INPUT naming the file, tensor and dtype. Values are converted, not
 * checked: callers that need finite values check them. */
DrrlStatus safetensors_to_f32(const Safetensors *st, const SafetensorsTensor *t, float *dst,
                              DrrlError *err);

/* The same for elements [first, first + n) of t into dst (n floats), so
 * that several threads can convert one tensor; a range beyond t is
 * DRRL_E_USAGE. Reads only t's mapped bytes: safe from several threads. */
DrrlStatus safetensors_to_f32_range(const Safetensors *st, const SafetensorsTensor *t,
                                    size_t first, size_t n, float *dst, DrrlError *err);

/* Drop the mapped pages of t's bytes from this process's memory (they come
 * back from the page cache if read again): a loader that has converted t
 * calls it, so a checkpoint is never resident twice (as stored and as
 * float32). The header and other tensors stay readable. */
void safetensors_release(const Safetensors *st, const SafetensorsTensor *t);
/* Convert an integer tensor (I32, I64, U8, I8, I16, U16, U32) to int32 into dst;
 * values outside int32 range are an error. */
DrrlStatus safetensors_to_i32(const Safetensors *st, const SafetensorsTensor *t, int32_t *dst,
                              DrrlError *err);

/* Half-precision conversions (IEEE 754 binary16 and bfloat16), exact. */
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t b);
/* float32 -> binary16 / bfloat16, rounded to nearest even; values beyond
 * binary16's range become +-inf (callers that must not lose them check). */
uint16_t safetensors_f32_to_f16(float f);
uint16_t safetensors_f32_to_bf16(float f);

/* One tensor to write. data holds numel elements of dtype, row-major. */
typedef struct SafetensorsWriteTensor {
    const char *name;
    SafetensorsDtype dtype; /* F32, I32, F16, BF16, F64, I64, ... any fixed size */
    int ndim;
    size_t shape[SAFETENSORS_MAX_DIMS];
    const void *data;
} SafetensorsWriteTensor;

/* Write n tensors to PATH atomically under the output rule of
 * base/fileio.h with FILEIO_FORCE (safetensors_write_flags: with the given
 * fileio flags): the file is written to a temporary in the same directory,
 * flushed, and renamed over PATH, so PATH is either the old file or the
 * complete new one. metadata_json is NULL or a JSON object
 * whose values are all strings (e.g. "{\"format\":\"pt\"}"). Tensors are stored
 * in the given order. Errors: DRRL_E_USAGE (duplicate or empty name, bad
 * ndim, bad metadata), DRRL_E_IO, DRRL_E_NOMEM. */
DrrlStatus safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, size_t n,
                             const char *metadata_json, DrrlError *err);
DrrlStatus safetensors_write_flags(const char *path, const SafetensorsWriteTensor *tensors,
                                   size_t n, const char *metadata_json, unsigned flags,
                                   DrrlError *err);

#endif
