/* strbuf.c: a growing byte string (strbuf.h). */
#include "base/strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int strbuf_reserve(StrBuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t nc = b->cap ? b->cap : 64;
    while (nc - b->len < extra) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    char *q = realloc(b->p, nc);
    if (!q)
        return -1;
    b->p = q;
    b->cap = nc;
    return 0;
}

int strbuf_add(StrBuf *b, const char *s, size_t n)
{
    if (n == SIZE_MAX || strbuf_reserve(b, n + 1))
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}
