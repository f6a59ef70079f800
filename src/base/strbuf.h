/* strbuf.h: a growing byte string, NUL-terminated after every append.
 *
 *     StrBuf b = {0};                 (empty; b.p is NULL until the first append)
 *     if (strbuf_add(&b, s, n)) ...   (out of memory)
 *     use b.p[0 .. b.len), then free(b.p)
 *
 * The caller owns p (malloc'ed) and may reset len to 0 to reuse the room. */
#ifndef DRRL_STRBUF_H
#define DRRL_STRBUF_H

#include <stddef.h>

typedef struct StrBuf {
    char *p;
    size_t len, cap; /* bytes used (the NUL not counted), bytes allocated */
} StrBuf;

/* Room for extra more bytes after len (capacity doubles). 0, or -1 when out
 * of memory or the size overflows (b unchanged). */
int strbuf_reserve(StrBuf *b, size_t extra);

/* Append s[0..n) and a NUL after it (not counted in len). 0, or -1 as
 * strbuf_reserve. */
int strbuf_add(StrBuf *b, const char *s, size_t n);

#endif
