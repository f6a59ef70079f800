/* xxh64.c: XXH64 (xxh64.h), written from the specification. */
#include "base/xxh64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint32_t read32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    return rotl(acc, 31) * P1;
}

static uint64_t merge(uint64_t acc, uint64_t v)
{
    acc ^= round64(0, v);
    return acc * P1 + P4;
}

/* Whole 32-byte stripes of p (n / 32 of them) into the four lanes. */
static const unsigned char *stripes(uint64_t v[4], const unsigned char *p, size_t n)
{
    uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
    for (const unsigned char *end = p + n / 32 * 32; p < end; p += 32) {
        a = round64(a, read64(p));
        b = round64(b, read64(p + 8));
        c = round64(c, read64(p + 16));
        d = round64(d, read64(p + 24));
    }
    v[0] = a, v[1] = b, v[2] = c, v[3] = d;
    return p;
}

void xxh64_init(Xxh64 *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void xxh64_update(Xxh64 *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->total += n;
    if (s->n_buf) {
        size_t take = 32 - s->n_buf < n ? 32 - s->n_buf : n;
        memcpy(s->buf + s->n_buf, p, take);
        s->n_buf += take, p += take, n -= take;
        if (s->n_buf < 32)
            return;
        stripes(s->v, s->buf, 32);
        s->n_buf = 0;
    }
    const unsigned char *q = stripes(s->v, p, n);
    s->n_buf = n - (size_t)(q - p);
    memcpy(s->buf, q, s->n_buf);
}

uint64_t xxh64_digest(const Xxh64 *s)
{
    uint64_t h;
    if (s->total >= 32) {
        h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
        for (int i = 0; i < 4; i++)
            h = merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    const unsigned char *p = s->buf, *end = s->buf + s->n_buf;
    for (; end - p >= 8; p += 8)
        h = rotl(h ^ round64(0, read64(p)), 27) * P1 + P4;
    if (end - p >= 4) {
        h = rotl(h ^ (uint64_t)read32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++)
        h = rotl(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t xxh64(const void *data, size_t n, uint64_t seed)
{
    Xxh64 s;
    xxh64_init(&s, seed);
    xxh64_update(&s, data, n);
    return xxh64_digest(&s);
}
