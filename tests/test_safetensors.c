/* Unit tests for src/model/safetensors.c: round trips and every validation failure. */
#include <criterion/criterion.h>

#include "test_util.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"

TEST_SUITE_TMPDIR(safetensors, dir, "st");

static const char *path_of(const char *name)
{
    return test_path(dir, name);
}

/* Write a raw file: 8-byte length hlen (or the header's own length when
 * hlen == UINT64_MAX), the header text, then datalen bytes of data. */
static const char *write_raw(const char *header, uint64_t hlen, const void *data,
                             size_t datalen)
{
    const char *p = path_of("raw.safetensors");
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    if (hlen == UINT64_MAX)
        hlen = strlen(header);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (datalen)
        fwrite(data, 1, datalen, f);
    fclose(f);
    return p;
}

/* Load a raw file that must fail with DRRL_E_INPUT and a message containing
 * every given fragment. */
static void expect_invalid(const char *header, uint64_t hlen, size_t datalen, const char *frag1,
                           const char *frag2)
{
    unsigned char data[256] = {0};
    cr_assert(datalen <= sizeof data);
    const char *p = write_raw(header, hlen, data, datalen);
    Safetensors *st = (Safetensors *)1;
    DrrlError e;
    DrrlStatus s = safetensors_load(p, &st, &e);
    cr_assert_eq(s, DRRL_E_INPUT, "expected bad input for %s, got %d (%s)", header, s, e.msg);
    cr_assert_null(st);
    cr_assert(strstr(e.msg, p) != NULL, "message lacks the path: %s", e.msg);
    cr_assert(strstr(e.msg, frag1) != NULL, "message lacks '%s': %s", frag1, e.msg);
    if (frag2)
        cr_assert(strstr(e.msg, frag2) != NULL, "message lacks '%s': %s", frag2, e.msg);
    cr_assert(strchr(e.msg, '\n') == NULL);
}

Test(safetensors, round_trip_f32_i32_scalar_empty_and_metadata)
{
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int32_t ids[3] = {7, -1, 2147483647};
    float sc = 42.0f;
    SafetensorsWriteTensor w[] = {
        {"layer.weight", SAFETENSORS_F32, 2, {2, 3}, a},
        {"input_ids", SAFETENSORS_I32, 1, {3}, ids},
        {"scalar", SAFETENSORS_F32, 0, {0}, &sc},
        {"empty", SAFETENSORS_F32, 2, {0, 5}, NULL},
    };
    const char *p = path_of("rt.safetensors");
    DrrlError e;
    cr_assert_eq(safetensors_write(p, w, 4, "{\"format\":\"pt\",\"note\":\"x y\"}", &e),
                 DRRL_OK, "%s", e.msg);
    Safetensors *st;
    cr_assert_eq(safetensors_load(p, &st, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(st->n_tensors, 4);
    cr_assert_str_eq(safetensors_metadata(st, "format"), "pt");
    cr_assert_str_eq(safetensors_metadata(st, "note"), "x y");
    cr_assert_null(safetensors_metadata(st, "absent"));

    const SafetensorsTensor *t = safetensors_find(st, "layer.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SAFETENSORS_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    float got[6];
    cr_assert_eq(safetensors_to_f32(st, t, got, &e), DRRL_OK);
    cr_assert_eq(memcmp(got, a, sizeof a), 0);

    t = safetensors_find(st, "input_ids");
    cr_assert_not_null(t);
    int32_t gi[3];
    cr_assert_eq(safetensors_to_i32(st, t, gi, &e), DRRL_OK);
    cr_assert_eq(memcmp(gi, ids, sizeof ids), 0);
    float gf[3];
    cr_assert_eq(safetensors_to_f32(st, t, gf, &e), DRRL_OK);
    cr_assert_eq(gf[0], 7.0f);

    t = safetensors_find(st, "scalar");
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->numel, 1);
    cr_assert_eq(safetensors_to_f32(st, t, got, &e), DRRL_OK);
    cr_assert_eq(got[0], 42.0f);

    t = safetensors_find(st, "empty");
    cr_assert_eq(t->numel, 0);
    cr_assert_null(safetensors_find(st, "nope"));
    cr_assert_null(safetensors_find(st, ""));
    cr_assert_eq(safetensors_to_i32(st, safetensors_find(st, "scalar"), gi, &e), DRRL_E_INPUT);
    safetensors_free(st);
    safetensors_free(NULL);
}

Test(safetensors, header_is_padded_and_data_aligned)
{
    float a[1] = {1.0f};
    SafetensorsWriteTensor w[] = {{"a", SAFETENSORS_F32, 1, {1}, a}};
    const char *p = path_of("pad.safetensors");
    cr_assert_eq(safetensors_write(p, w, 1, NULL, NULL), DRRL_OK);
    FILE *f = fopen(p, "rb");
    unsigned char lb[8];
    cr_assert_eq(fread(lb, 1, 8, f), 8);
    fclose(f);
    cr_assert_eq(lb[0] % 8, 0);
}

Test(safetensors, write_is_atomic_and_replaces)
{
    const char *p = path_of("a.safetensors");
    float x = 1.0f, y = 2.0f;
    SafetensorsWriteTensor w1[] = {{"x", SAFETENSORS_F32, 1, {1}, &x}};
    SafetensorsWriteTensor w2[] = {{"y", SAFETENSORS_F32, 1, {1}, &y}};
    cr_assert_eq(safetensors_write(p, w1, 1, NULL, NULL), DRRL_OK);
    cr_assert_eq(safetensors_write(p, w2, 1, NULL, NULL), DRRL_OK);
    Safetensors *st;
    cr_assert_eq(safetensors_load(p, &st, NULL), DRRL_OK);
    cr_assert_null(safetensors_find(st, "x"));
    cr_assert_not_null(safetensors_find(st, "y"));
    safetensors_free(st);
    /* A failed write leaves the old file and no temporary behind. */
    SafetensorsWriteTensor dup[] = {{"x", SAFETENSORS_F32, 1, {1}, &x},
                                    {"x", SAFETENSORS_F32, 1, {1}, &x}};
    DrrlError e;
    cr_assert_eq(safetensors_write(p, dup, 2, NULL, &e), DRRL_E_USAGE);
    cr_assert(strstr(e.msg, "duplicate") != NULL);
    cr_assert_eq(safetensors_load(p, &st, NULL), DRRL_OK);
    safetensors_free(st);
    DIR *d = opendir(dir);
    struct dirent *ent;
    int files = 0;
    while ((ent = readdir(d)) != NULL)
        if (ent->d_name[0] != '.')
            files++;
    closedir(d);
    cr_assert_eq(files, 1);
    /* Unwritable location: an i/o error naming the path. */
    cr_assert_eq(safetensors_write("/nonexistent-dir/x.safetensors", w1, 1, NULL, &e),
                 DRRL_E_NOTFOUND);
    cr_assert(strstr(e.msg, "/nonexistent-dir/x.safetensors") != NULL);
}

Test(safetensors, writer_rejects_bad_requests)
{
    float x = 1.0f;
    DrrlError e;
    const char *p = path_of("bad.safetensors");
    SafetensorsWriteTensor noname[] = {{"", SAFETENSORS_F32, 1, {1}, &x}};
    cr_assert_eq(safetensors_write(p, noname, 1, NULL, &e), DRRL_E_USAGE);
    SafetensorsWriteTensor meta[] = {{"__metadata__", SAFETENSORS_F32, 1, {1}, &x}};
    cr_assert_eq(safetensors_write(p, meta, 1, NULL, &e), DRRL_E_USAGE);
    SafetensorsWriteTensor nd[] = {{"a", SAFETENSORS_F32, 9, {1}, &x}};
    cr_assert_eq(safetensors_write(p, nd, 1, NULL, &e), DRRL_E_USAGE);
    SafetensorsWriteTensor nodata[] = {{"a", SAFETENSORS_F32, 1, {1}, NULL}};
    cr_assert_eq(safetensors_write(p, nodata, 1, NULL, &e), DRRL_E_USAGE);
    SafetensorsWriteTensor ok[] = {{"a", SAFETENSORS_F32, 1, {1}, &x}};
    cr_assert_eq(safetensors_write(p, ok, 1, "[1]", &e), DRRL_E_USAGE);
    cr_assert_eq(safetensors_write(p, ok, 1, "{\"a\":1}", &e), DRRL_E_USAGE);
    cr_assert_eq(safetensors_write(p, ok, 1, "{bad", &e), DRRL_E_USAGE);
    cr_assert_eq(access(p, F_OK), -1);
}

Test(safetensors, half_precision_conversion)
{
    cr_assert_eq(safetensors_f16_to_f32(0x3c00), 1.0f);
    cr_assert_eq(safetensors_f16_to_f32(0xc000), -2.0f);
    cr_assert_eq(safetensors_f16_to_f32(0x7bff), 65504.0f);
    cr_assert_eq(safetensors_f16_to_f32(0x0001), ldexpf(1.0f, -24)); /* smallest subnormal */
    cr_assert_eq(safetensors_f16_to_f32(0x03ff), ldexpf(1023.0f, -24));
    cr_assert_eq(safetensors_f16_to_f32(0x0400), ldexpf(1.0f, -14));
    cr_assert(isinf(safetensors_f16_to_f32(0x7c00)));
    cr_assert(isnan(safetensors_f16_to_f32(0x7e00)));
    cr_assert(signbit(safetensors_f16_to_f32(0x8000)));
    cr_assert_eq(safetensors_f16_to_f32(0x3555), 0.333251953125f);
    cr_assert_eq(safetensors_bf16_to_f32(0x3f80), 1.0f);
    cr_assert_eq(safetensors_bf16_to_f32(0xc040), -3.0f);
    cr_assert_eq(safetensors_bf16_to_f32(0x3eab), 0.333984375f);

    /* Through a file: F16 and BF16 tensors converted on read. */
    uint16_t h[3] = {0x3c00, 0xb800, 0x4200}; /* 1, -0.5, 3 */
    uint16_t b[2] = {0x4049, 0xbf00};         /* 3.140625, -0.5 */
    SafetensorsWriteTensor w[] = {{"h", SAFETENSORS_F16, 1, {3}, h},
                                  {"b", SAFETENSORS_BF16, 2, {1, 2}, b}};
    const char *p = path_of("half.safetensors");
    cr_assert_eq(safetensors_write(p, w, 2, NULL, NULL), DRRL_OK);
    Safetensors *st;
    cr_assert_eq(safetensors_load(p, &st, NULL), DRRL_OK);
    float out[3];
    cr_assert_eq(safetensors_to_f32(st, safetensors_find(st, "h"), out, NULL), DRRL_OK);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -0.5f);
    cr_assert_eq(out[2], 3.0f);
    cr_assert_eq(safetensors_to_f32(st, safetensors_find(st, "b"), out, NULL), DRRL_OK);
    cr_assert_eq(out[0], 3.140625f);
    cr_assert_eq(out[1], -0.5f);
    safetensors_free(st);
}

Test(safetensors, missing_file_is_not_found)
{
    Safetensors *st;
    DrrlError e;
    cr_assert_eq(safetensors_load(path_of("absent.safetensors"), &st, &e), DRRL_E_NOTFOUND);
    cr_assert(strstr(e.msg, "absent.safetensors") != NULL);
    cr_assert_eq(safetensors_load(dir, &st, &e), DRRL_E_INPUT); /* a directory */
}

Test(safetensors, too_short_file)
{
    const char *p = path_of("short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    Safetensors *st;
    DrrlError e;
    cr_assert_eq(safetensors_load(p, &st, &e), DRRL_E_INPUT);
    cr_assert(strstr(e.msg, "too short") != NULL, "%s", e.msg);
}

#define TENSOR_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

Test(safetensors, valid_raw_file_loads)
{
    unsigned char data[8] = {0};
    Safetensors *st;
    DrrlError e;
    const char *p = write_raw("{" TENSOR_A "}  ", UINT64_MAX, data, 8);
    cr_assert_eq(safetensors_load(p, &st, &e), DRRL_OK, "%s", e.msg);
    safetensors_free(st);
}

Test(safetensors, header_length_checks)
{
    expect_invalid("{" TENSOR_A "}", 1000, 8, "header length 1000", "truncated");
    expect_invalid("{" TENSOR_A "}", (uint64_t)1 << 40, 8, "exceeds the limit", NULL);
    expect_invalid("[1,2]", UINT64_MAX, 0, "JSON object", NULL);
    expect_invalid("{\"a\"", UINT64_MAX, 0, "header JSON", NULL);
    expect_invalid("{", UINT64_MAX, 0, "JSON object", NULL);
}

Test(safetensors, malformed_json)
{
    expect_invalid("{\"a\":{\"dtype\":\"F32\",}", UINT64_MAX, 0, "header JSON", NULL);
    expect_invalid("{" TENSOR_A "," TENSOR_A "}", UINT64_MAX, 8, "header JSON", "duplicate");
    expect_invalid("{} trailing", UINT64_MAX, 0, "header JSON", NULL);
}

Test(safetensors, bad_entries)
{
    expect_invalid("{\"a\":3}", UINT64_MAX, 0, "tensor 'a'", "not a JSON object");
    expect_invalid("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
                   "tensor 'a'", "dtype");
    expect_invalid("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "unknown dtype 'F33'");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
                   "tensor 'a'", "shape");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "shape[0]");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "shape[0]");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                   "\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "dimensions");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                   "\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "overflow");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", UINT64_MAX, 4, "tensor 'a'",
                   "data_offsets");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", UINT64_MAX,
                   4, "tensor 'a'", "data_offsets");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}",
                   UINT64_MAX, 4, "tensor 'a'", "data_offsets");
    expect_invalid("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 4, "empty name", NULL);
}

Test(safetensors, offsets_against_shape_and_file)
{
    /* decreasing */
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
                   UINT64_MAX, 8, "tensor 'a'", "decrease");
    /* beyond the data section: a truncated file */
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                   UINT64_MAX, 8, "tensor 'a'", "beyond the data section");
    /* span disagrees with dtype x shape */
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                   UINT64_MAX, 8, "tensor 'a'", "need 12");
    expect_invalid("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                   UINT64_MAX, 8, "tensor 'a'", "need 4");
}

Test(safetensors, overlap_gap_and_trailing_bytes)
{
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   UINT64_MAX, 12, "tensor 'b'", "overlap");
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   UINT64_MAX, 12, "tensor 'b'", "gap");
    expect_invalid("{" TENSOR_A "}", UINT64_MAX, 12, "trailing", NULL);
    /* two tensors at the same place */
    expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   UINT64_MAX, 8, "overlap", NULL);
}

Test(safetensors, metadata_must_be_strings)
{
    expect_invalid("{\"__metadata__\":{\"k\":1}," TENSOR_A "}", UINT64_MAX, 8, "__metadata__",
                   "'k'");
    expect_invalid("{\"__metadata__\":[]," TENSOR_A "}", UINT64_MAX, 8, "__metadata__", NULL);
}

Test(safetensors, unconvertible_dtype_is_named)
{
    unsigned char data[2] = {0};
    const char *p =
        write_raw("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                  UINT64_MAX, data, 2);
    Safetensors *st;
    DrrlError e;
    cr_assert_eq(safetensors_load(p, &st, &e), DRRL_OK, "%s", e.msg);
    float out[2];
    cr_assert_eq(safetensors_to_f32(st, safetensors_find(st, "a"), out, &e), DRRL_E_INPUT);
    cr_assert(strstr(e.msg, "F8_E4M3") != NULL && strstr(e.msg, "'a'") != NULL);
    safetensors_free(st);
}

Test(safetensors, reads_the_transformers_fixture)
{
    Safetensors *st;
    DrrlError e;
    cr_assert_eq(safetensors_load(FIXTURES_DIR "/gpt2-tiny-b/model.safetensors", &st, &e),
                 DRRL_OK, "%s", e.msg);
    const SafetensorsTensor *t = safetensors_find(st, "transformer.wte.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 97);
    cr_assert_eq(t->shape[1], 32);
    safetensors_free(st);
}

/* float32 -> float16 / bfloat16: every finite 16-bit value survives the round
 * trip, and values between two neighbours round to the nearer one, ties to
 * the even one (IEEE 754 round-to-nearest-even), overflow to infinity. */
Test(safetensors, narrowing_rounds_to_nearest_even)
{
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u)
            continue; /* inf and NaN below */
        float f = safetensors_f16_to_f32((uint16_t)h);
        cr_assert_eq(safetensors_f32_to_f16(f), h, "f16 %#x", h);
        float g = safetensors_bf16_to_f32((uint16_t)h);
        if (!isnan(g) && !isinf(g))
            cr_assert_eq(safetensors_f32_to_bf16(g), h, "bf16 %#x", h);
    }
    /* neighbours a < b (positive, finite, below the largest): midpoint and
     * just either side of it */
    for (uint32_t h = 0; h < 0x7bffu; h += 7) {
        double a = safetensors_f16_to_f32((uint16_t)h),
               b = safetensors_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2); /* exact in float32 */
        uint16_t even = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        cr_assert_eq(safetensors_f32_to_f16(mid), even, "tie above %#x", h);
        cr_assert_eq(safetensors_f32_to_f16(nextafterf(mid, 0.0f)), h, "below mid %#x", h);
        cr_assert_eq(safetensors_f32_to_f16(nextafterf(mid, 1e9f)), h + 1, "above mid %#x", h);
        cr_assert_eq(safetensors_f32_to_f16(-mid), even | 0x8000u);
    }
    cr_assert_eq(safetensors_f32_to_f16(65520.0f), 0x7c00u); /* rounds past 65504 */
    cr_assert_eq(safetensors_f32_to_f16(65519.0f), 0x7bffu);
    cr_assert_eq(safetensors_f32_to_f16(-1e10f), 0xfc00u);
    cr_assert_eq(safetensors_f32_to_f16(ldexpf(1.0f, -25)), 0x0000u); /* tie to even 0 */
    cr_assert_eq(safetensors_f32_to_f16(ldexpf(1.5f, -25)), 0x0001u);
    cr_assert(isnan(safetensors_f16_to_f32(safetensors_f32_to_f16(NAN))));
    cr_assert(isinf(safetensors_f16_to_f32(safetensors_f32_to_f16(INFINITY))));
    cr_assert_eq(safetensors_f32_to_bf16(1.00390625f), 0x3f80u); /* 1 + 2^-8: tie to even */
    cr_assert_eq(safetensors_f32_to_bf16(1.01171875f), 0x3f82u); /* 1 + 3*2^-8: tie to even */
    cr_assert(isnan(safetensors_bf16_to_f32(safetensors_f32_to_bf16(NAN))));
}
