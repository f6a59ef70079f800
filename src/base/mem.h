/* mem.h: freeing several blocks at once, in order (a destructor's list). */
#ifndef DRRL_MEM_H
#define DRRL_MEM_H

#include <stddef.h>
#include <stdlib.h>

static inline void drrl_free_each(void *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}

/* DRRL_FREE(a, b, c) frees a, b and c (NULL is fine), left to right. */
#define DRRL_FREE(...)                                                                         \
    drrl_free_each((void *const[]){__VA_ARGS__},                                               \
                   sizeof((void *const[]){__VA_ARGS__}) / sizeof(void *))

#endif
