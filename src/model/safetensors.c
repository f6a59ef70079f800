/* madvise (MADV_DONTNEED: safetensors_release) is not in POSIX; glibc's
 * posix_madvise ignores POSIX_MADV_DONTNEED */
#define _DEFAULT_SOURCE
#include "model/safetensors.h"

#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per dtype: the format's name, the bytes of one element, and what elem()
 * converts it to: to_f32 (safetensors_to_f32), to_i32 (safetensors_to_i32,
 * the integer types). */
static const struct {
    const char *name;
    size_t size;
    unsigned char to_f32, to_i32;
} dtype_table[SAFETENSORS_DTYPE_COUNT] = {
    [SAFETENSORS_BOOL] = {"BOOL", 1, 1, 0},       [SAFETENSORS_U8] = {"U8", 1, 1, 1},
    [SAFETENSORS_I8] = {"I8", 1, 1, 1},           [SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1, 0, 0},
    [SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1, 0, 0}, [SAFETENSORS_I16] = {"I16", 2, 1, 1},
    [SAFETENSORS_U16] = {"U16", 2, 1, 1},         [SAFETENSORS_F16] = {"F16", 2, 1, 0},
    [SAFETENSORS_BF16] = {"BF16", 2, 1, 0},       [SAFETENSORS_I32] = {"I32", 4, 1, 1},
    [SAFETENSORS_U32] = {"U32", 4, 1, 1},         [SAFETENSORS_F32] = {"F32", 4, 1, 0},
    [SAFETENSORS_F64] = {"F64", 8, 1, 0},         [SAFETENSORS_I64] = {"I64", 8, 1, 1},
    [SAFETENSORS_U64] = {"U64", 8, 0, 0},
};

const char *safetensors_dtype_name(SafetensorsDtype d)
{
    if ((int)d < 0 || d >= SAFETENSORS_DTYPE_COUNT)
        return "?";
    return dtype_table[d].name;
}

size_t safetensors_dtype_size(SafetensorsDtype d)
{
    if ((int)d < 0 || d >= SAFETENSORS_DTYPE_COUNT)
        return 0;
    return dtype_table[d].size;
}

int safetensors_dtype_parse(const char *name, SafetensorsDtype *out)
{
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (SafetensorsDtype)i;
            return 0;
        }
    return -1;
}

/* ---- half precision ---------------------------------------------------- */

float safetensors_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float safetensors_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            man &= 0x3ffu;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* inf or nan */
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float -> binary16, round to nearest even (IEEE 754-2008 section 4.3.1);
 * overflow gives +-inf, NaN stays NaN (quiet), tiny values go subnormal or 0. */
uint16_t safetensors_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half (or zero): shift the full significand */
        if (e < -10)
            return sign;
        uint32_t m = man | 0x800000u;
        unsigned shift = (unsigned)(14 - e);
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* a carry into the exponent is the correct rounding, up to inf */
    return (uint16_t)(sign | half);
}

/* float -> bfloat16, round to nearest even; NaN stays NaN. */
uint16_t safetensors_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu))
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- reader ------------------------------------------------------------ */

typedef struct Range {
    size_t begin, end, index;
} Range;

static int range_cmp(const void *a, const void *b)
{
    const Range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* qsort has no context argument: name sorting uses this file-local pointer,
 * guarded by building the index before the Safetensors is shared. */
static _Thread_local const SafetensorsTensor *sort_tensors;

static int name_cmp(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    return strcmp(sort_tensors[i].name, sort_tensors[j].name);
}

void safetensors_free(Safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    free(st->sorted_);
    free(st->metadata_json);
    json_decref(st->metadata_);
    if (st->map_ && st->map_ != MAP_FAILED)
        munmap(st->map_, st->map_size_);
    free(st->path);
    free(st);
}

/* Read a JSON integer that must be >= 0 into a size_t. */
static int json_size(const json_t *v, size_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (unsigned long long)x > SIZE_MAX)
        return -1;
    *out = (size_t)x;
    return 0;
}

static DrrlStatus parse_entry(Safetensors *st, const char *name, const json_t *v,
                              SafetensorsTensor *t, Range *r, size_t data_size, DrrlError *err)
{
    const char *path = st->path;
    if (!json_is_object(v))
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': entry is not a JSON object",
                          path, name);
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': missing or non-string \"dtype\"",
                          path, name);
    if (safetensors_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': unknown dtype '%s'", path, name,
                          json_string_value(jd));
    if (!json_is_array(js))
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': missing or non-array \"shape\"",
                          path, name);
    size_t nd = json_array_size(js);
    if (nd > SAFETENSORS_MAX_DIMS)
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': %zu dimensions (at most %d)",
                          path, name, nd, SAFETENSORS_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        if (json_size(json_array_get(js, i), &t->shape[i]) != 0)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: tensor '%s': shape[%zu] is not a non-negative integer", path,
                              name, i);
        if (drrl_size_mul(numel, t->shape[i], &numel))
            return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': shape overflows", path,
                              name);
    }
    t->numel = numel;
    if (drrl_size_mul(numel, safetensors_dtype_size(t->dtype), &t->nbytes))
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': size overflows", path, name);
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        json_size(json_array_get(jo, 0), &r->begin) != 0 ||
        json_size(json_array_get(jo, 1), &r->end) != 0)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': \"data_offsets\" must be [begin, end] with "
                          "non-negative integers",
                          path, name);
    if (r->begin > r->end)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': data_offsets [%zu, %zu] decrease", path, name,
                          r->begin, r->end);
    if (r->end > data_size)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': data_offsets end %zu beyond the data section "
                          "(%zu bytes; file truncated?)",
                          path, name, r->end, data_size);
    if (r->end - r->begin != t->nbytes)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': data_offsets span %zu bytes but %s x %zu elements "
                          "need %zu",
                          path, name, r->end - r->begin, safetensors_dtype_name(t->dtype),
                          t->numel, t->nbytes);
    return DRRL_OK;
}

/* Map the file (a FIFO or device is refused; at least the 8-byte length). */
static DrrlStatus map_file(Safetensors *st, const char *path, DrrlError *err)
{
    int fd;
    DrrlStatus s = fileio_open_input(path, 0, &fd, err);
    if (s)
        return s;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = drrl_error(err, DRRL_E_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    size_t fsize = (size_t)sb.st_size;
    if (fsize < 8) {
        close(fd);
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: %zu bytes, too short for a safetensors header (8-byte length)",
                          path, fsize);
    }
    st->map_ = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (st->map_ == MAP_FAILED) {
        st->map_ = NULL;
        return drrl_error(err, DRRL_E_IO, "%s: mmap: %s", path, strerror(errno));
    }
    st->map_size_ = fsize;
    return DRRL_OK;
}

/* The header's length (checked against the limit and the file) and its
 * JSON object. */
static DrrlStatus parse_header(const Safetensors *st, const char *path, uint64_t *hlen_out,
                               json_t **root, DrrlError *err)
{
    const unsigned char *bytes = st->map_;
    size_t fsize = st->map_size_;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | bytes[i];
    if (hlen > SAFETENSORS_MAX_HEADER)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: header length %llu exceeds the limit of %llu bytes (not a "
                          "safetensors file?)",
                          path, (unsigned long long)hlen,
                          (unsigned long long)SAFETENSORS_MAX_HEADER);
    if (hlen > fsize - 8)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: header length %llu exceeds the file's remaining %zu bytes (file "
                          "truncated?)",
                          path, (unsigned long long)hlen, fsize - 8);
    if (hlen < 2 || bytes[8] != '{')
        return drrl_error(err, DRRL_E_INPUT, "%s: header does not start with a JSON object",
                          path);
    json_error_t jerr;
    *root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root)
        return drrl_error(err, DRRL_E_INPUT, "%s: header JSON at byte %d: %s", path,
                          jerr.position + 8, jerr.text);
    if (!json_is_object(*root))
        return drrl_error(err, DRRL_E_INPUT, "%s: header is not a JSON object", path);
    *hlen_out = hlen;
    return DRRL_OK;
}

/* "__metadata__": an object of strings, kept as compact JSON. */
static DrrlStatus parse_metadata(Safetensors *st, const char *path, json_t *val, DrrlError *err)
{
    if (!json_is_object(val))
        return drrl_error(err, DRRL_E_INPUT, "%s: \"__metadata__\" is not an object", path);
    const char *mk;
    json_t *mv;
    json_object_foreach(val, mk, mv)
    {
        if (!json_is_string(mv))
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: \"__metadata__\" value '%s' is not a string", path, mk);
    }
    st->metadata_json = json_dumps(val, JSON_COMPACT | JSON_PRESERVE_ORDER);
    st->metadata_ = json_incref(val);
    if (!st->metadata_json)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    return DRRL_OK;
}

/* Every entry of the header: the metadata and the tensors, their byte
 * ranges into ranges. */
static DrrlStatus parse_entries(Safetensors *st, const char *path, json_t *root,
                                const unsigned char *data, size_t data_size, Range *ranges,
                                DrrlError *err)
{
    const char *key;
    json_t *val;
    DrrlStatus s;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if ((s = parse_metadata(st, path, val, err)))
                return s;
            continue;
        }
        if (key[0] == '\0')
            return drrl_error(err, DRRL_E_INPUT, "%s: a tensor has an empty name", path);
        size_t k = st->n_tensors;
        SafetensorsTensor *t = &st->tensors[k];
        if (!(t->name = strdup(key)))
            return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
        st->n_tensors++;
        ranges[k].index = k;
        if ((s = parse_entry(st, key, val, t, &ranges[k], data_size, err)))
            return s;
        t->data = data + ranges[k].begin;
    }
    return DRRL_OK;
}

/* No overlap, no gap: sorted by begin, each range starts where the last
 * ended, and the last ends at the end of the file. Empty tensors (0 bytes)
 * take no room and may sit anywhere in range. */
static DrrlStatus check_ranges(const Safetensors *st, const char *path, Range *ranges,
                               size_t data_size, DrrlError *err)
{
    qsort(ranges, st->n_tensors, sizeof *ranges, range_cmp);
    size_t pos = 0;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const Range *r = &ranges[i];
        if (r->begin == r->end)
            continue;
        if (r->begin < pos)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: tensor '%s': data_offsets [%zu, %zu] overlap another "
                              "tensor ending at %zu",
                              path, st->tensors[r->index].name, r->begin, r->end, pos);
        if (r->begin > pos)
            return drrl_error(
                err, DRRL_E_INPUT,
                "%s: tensor '%s': gap of %zu bytes before data_offsets [%zu, %zu]", path,
                st->tensors[r->index].name, r->begin - pos, r->begin, r->end);
        pos = r->end;
    }
    if (pos != data_size)
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: data section has %zu bytes but the tensors cover %zu (trailing "
                          "bytes)",
                          path, data_size, pos);
    return DRRL_OK;
}

/* The tensors' indices sorted by name, for safetensors_find. */
static DrrlStatus sort_names(Safetensors *st, const char *path, DrrlError *err)
{
    st->sorted_ = malloc((st->n_tensors ? st->n_tensors : 1) * sizeof *st->sorted_);
    if (!st->sorted_)
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < st->n_tensors; i++)
        st->sorted_[i] = i;
    sort_tensors = st->tensors;
    qsort(st->sorted_, st->n_tensors, sizeof *st->sorted_, name_cmp);
    sort_tensors = NULL;
    return DRRL_OK;
}

DrrlStatus safetensors_load(const char *path, Safetensors **out, DrrlError *err)
{
    *out = NULL;
    Safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    json_t *root = NULL;
    Range *ranges = NULL;
    uint64_t hlen = 0;
    DrrlStatus s = map_file(st, path, err);
    if (!s)
        s = parse_header(st, path, &hlen, &root, err);
    if (!s) {
        size_t n = json_object_size(root);
        st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
        ranges = calloc(n ? n : 1, sizeof *ranges);
        if (!st->tensors || !ranges)
            s = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    }
    const unsigned char *data = NULL;
    size_t data_size = 0;
    if (!s) {
        data = (const unsigned char *)st->map_ + 8 + hlen;
        data_size = st->map_size_ - 8 - (size_t)hlen;
        s = parse_entries(st, path, root, data, data_size, ranges, err);
    }
    if (!s)
        s = check_ranges(st, path, ranges, data_size, err);
    if (!s)
        s = sort_names(st, path, err);
    free(ranges);
    json_decref(root);
    if (s) {
        safetensors_free(st);
        return s;
    }
    *out = st;
    return DRRL_OK;
}

const SafetensorsTensor *safetensors_find(const Safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const SafetensorsTensor *t = &st->tensors[st->sorted_[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *safetensors_metadata(const Safetensors *st, const char *key)
{
    const json_t *v = st->metadata_ ? json_object_get(st->metadata_, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int is_convertible(SafetensorsDtype d)
{
    return (int)d >= 0 && d < SAFETENSORS_DTYPE_COUNT && dtype_table[d].to_f32;
}

static int is_integer(SafetensorsDtype d)
{
    return (int)d >= 0 && d < SAFETENSORS_DTYPE_COUNT && dtype_table[d].to_i32;
}

/* One element of a dtype, read from unaligned memory. */
#define READ_AS(NAME, TYPE)                                                                    \
    static TYPE read_##NAME(const unsigned char *p)                                            \
    {                                                                                          \
        TYPE v;                                                                                \
        memcpy(&v, p, sizeof v);                                                               \
        return v;                                                                              \
    }
READ_AS(f32, float)
READ_AS(f64, double)
READ_AS(u16, uint16_t)
READ_AS(i16, int16_t)
READ_AS(u32, uint32_t)
READ_AS(i32, int32_t)
READ_AS(i64, int64_t)
#undef READ_AS

/* Element i of t as a double (the widest type all supported dtypes fit). */
static double elem(const SafetensorsTensor *t, size_t i)
{
    const unsigned char *p =
        (const unsigned char *)t->data + i * safetensors_dtype_size(t->dtype);
    switch (t->dtype) {
    case SAFETENSORS_F32:
        return read_f32(p);
    case SAFETENSORS_F16:
        return safetensors_f16_to_f32(read_u16(p));
    case SAFETENSORS_BF16:
        return safetensors_bf16_to_f32(read_u16(p));
    case SAFETENSORS_F64:
        return read_f64(p);
    case SAFETENSORS_I32:
        return read_i32(p);
    case SAFETENSORS_I64:
        return (double)read_i64(p);
    case SAFETENSORS_U8:
    case SAFETENSORS_BOOL:
        return p[0];
    case SAFETENSORS_I8:
        return (int8_t)p[0];
    case SAFETENSORS_I16:
        return read_i16(p);
    case SAFETENSORS_U16:
        return read_u16(p);
    case SAFETENSORS_U32:
        return read_u32(p);
    default:
        return NAN;
    }
}

DrrlStatus safetensors_to_f32(const Safetensors *st, const SafetensorsTensor *t, float *dst,
                              DrrlError *err)
{
    return safetensors_to_f32_range(st, t, 0, t->numel, dst, err);
}

DrrlStatus safetensors_to_f32_range(const Safetensors *st, const SafetensorsTensor *t,
                                    size_t first, size_t n, float *dst, DrrlError *err)
{
    if (!is_convertible(t->dtype))
        return drrl_error(err, DRRL_E_INPUT,
                          "%s: tensor '%s': dtype %s cannot be converted to float32", st->path,
                          t->name, safetensors_dtype_name(t->dtype));
    if (first > t->numel || n > t->numel - first)
        return drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': elements %zu..%zu of %zu",
                          st->path, t->name, first, first + n, t->numel);
    const unsigned char *p =
        (const unsigned char *)t->data + first * safetensors_dtype_size(t->dtype);
    if (t->dtype == SAFETENSORS_F32) {
        memcpy(dst, p, n * sizeof *dst);
        return DRRL_OK;
    }
    if (t->dtype == SAFETENSORS_BF16) { /* the high half of a float32: one shift */
        size_t i = 0;
#ifdef __SSE2__
        /* eight at a time: interleaving zeros below each 16-bit value is the
         * shift (x86 is little-endian, as the file) */
        const __m128i zero = _mm_setzero_si128();
        for (; i + 8 <= n; i += 8) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_unpacklo_epi16(zero, v));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 4), _mm_unpackhi_epi16(zero, v));
        }
#endif
        for (; i < n; i++) {
            uint32_t u = (uint32_t)((unsigned)p[2 * i] | (unsigned)p[2 * i + 1] << 8) << 16;
            memcpy(dst + i, &u, sizeof u);
        }
        return DRRL_OK;
    }
    if (t->dtype == SAFETENSORS_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = safetensors_f16_to_f32(h);
        }
        return DRRL_OK;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)elem(t, first + i);
    return DRRL_OK;
}

void safetensors_release(const Safetensors *st, const SafetensorsTensor *t)
{
    if (!st->map_ || !t->nbytes)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t ps = pg > 0 ? (uintptr_t)pg : 4096;
    /* whole pages inside the tensor only: its neighbours' stay mapped in */
    uintptr_t a = ((uintptr_t)t->data + ps - 1) / ps * ps;
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) / ps * ps;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

DrrlStatus safetensors_to_i32(const Safetensors *st, const SafetensorsTensor *t, int32_t *dst,
                              DrrlError *err)
{
    if (!is_integer(t->dtype))
        return drrl_error(err, DRRL_E_INPUT, "%s: tensor '%s': dtype %s is not an integer type",
                          st->path, t->name, safetensors_dtype_name(t->dtype));
    for (size_t i = 0; i < t->numel; i++) {
        double v = elem(t, i);
        if (v < INT32_MIN || v > INT32_MAX)
            return drrl_error(err, DRRL_E_INPUT,
                              "%s: tensor '%s': element %zu (%.0f) does not fit int32",
                              st->path, t->name, i, v);
        dst[i] = (int32_t)v;
    }
    return DRRL_OK;
}

/* ---- writer ------------------------------------------------------------ */

DrrlStatus safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, size_t n,
                             const char *metadata_json, DrrlError *err)
{
    return safetensors_write_flags(path, tensors, n, metadata_json, FILEIO_FORCE, err);
}

DrrlStatus safetensors_write_flags(const char *path, const SafetensorsWriteTensor *tensors,
                                   size_t n, const char *metadata_json, unsigned flags,
                                   DrrlError *err)
{
    DrrlStatus s = DRRL_OK;
    json_t *hdr = json_object();
    char *text = NULL;
    size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
    if (!hdr || !sizes) {
        s = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (metadata_json) {
        json_error_t jerr;
        json_t *m = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!m || !json_is_object(m)) {
            json_decref(m);
            s = drrl_error(err, DRRL_E_USAGE, "%s: metadata is not a JSON object", path);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            if (!json_is_string(v)) {
                s = drrl_error(err, DRRL_E_USAGE, "%s: metadata value '%s' is not a string",
                               path, k);
                json_decref(m);
                goto done;
            }
        }
        json_object_set_new(hdr, "__metadata__", m);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const SafetensorsWriteTensor *t = &tensors[i];
        const char *name = t->name ? t->name : "";
        if (!name[0] || strcmp(name, "__metadata__") == 0) {
            s = drrl_error(err, DRRL_E_USAGE, "%s: tensor %zu: invalid name '%s'", path, i,
                           name);
            goto done;
        }
        if (json_object_get(hdr, name)) {
            s = drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': duplicate name", path, name);
            goto done;
        }
        if (t->ndim < 0 || t->ndim > SAFETENSORS_MAX_DIMS ||
            safetensors_dtype_size(t->dtype) == 0) {
            s = drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': bad ndim or dtype", path, name);
            goto done;
        }
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
            if (drrl_size_mul(numel, t->shape[d], &numel)) {
                json_decref(shape);
                s = drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': shape overflows", path,
                               name);
                goto done;
            }
        }
        if (drrl_size_mul(numel, safetensors_dtype_size(t->dtype), &sizes[i])) {
            json_decref(shape);
            s = drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': size overflows", path, name);
            goto done;
        }
        if (sizes[i] > 0 && !t->data) {
            json_decref(shape);
            s = drrl_error(err, DRRL_E_USAGE, "%s: tensor '%s': no data", path, name);
            goto done;
        }
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", safetensors_dtype_name(t->dtype),
                              "shape", shape, "data_offsets", (json_int_t)offset,
                              (json_int_t)(offset + sizes[i]));
        if (!e || json_object_set_new(hdr, name, e) != 0) {
            s = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
            goto done;
        }
        offset += sizes[i];
    }
    text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        s = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    /* Pad the header with spaces so the data section starts 8-byte aligned,
     * as the reference writer does. */
    size_t tlen = strlen(text);
    size_t hlen = (tlen + 7) / 8 * 8;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));

    FileOut *o;
    if ((s = fileio_out_open(&o, path, flags, err)))
        goto done;
    FILE *f = fileio_out_stream(o);
    static const char spaces[8] = "        ";
    fwrite(lenbuf, 1, 8, f);
    fwrite(text, 1, tlen, f);
    fwrite(spaces, 1, hlen - tlen, f);
    for (size_t i = 0; i < n && !ferror(f); i++)
        if (sizes[i])
            fwrite(tensors[i].data, 1, sizes[i], f);
    s = fileio_out_commit(o, err); /* reports any write error seen above */

done:
    free(text);
    free(sizes);
    json_decref(hdr);
    return s;
}
