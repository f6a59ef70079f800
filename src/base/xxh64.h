/* xxh64.h: XXH64, the 64-bit xxHash (Yann Collet; specification:
 * github.com/Cyan4973/xxHash, doc/xxhash_spec.md, "XXH64 Algorithm"), one
 * shot or streaming. Input words are read as little-endian, so on the
 * little-endian machines drrl runs on the digest equals `xxhsum -H1`'s.
 *
 * Four independent 64-bit lanes of one multiply per 8 bytes: several GB/s
 * on one core, where FNV-1a's chain of one multiply per byte gives well
 * under one.
 */
#ifndef DRRL_XXH64_H
#define DRRL_XXH64_H

#include <stddef.h>
#include <stdint.h>

/* Streaming state: init, update any number of times, digest (which does not
 * change the state). The digest equals xxh64() over the concatenation. */
typedef struct Xxh64 {
    uint64_t v[4];
    uint64_t total; /* bytes so far */
    uint64_t seed;
    unsigned char buf[32]; /* a partial stripe */
    size_t n_buf;
} Xxh64;

void xxh64_init(Xxh64 *s, uint64_t seed);
void xxh64_update(Xxh64 *s, const void *data, size_t n);
uint64_t xxh64_digest(const Xxh64 *s);

/* XXH64 of n bytes with a seed. */
uint64_t xxh64(const void *data, size_t n, uint64_t seed);

#endif
