/* mem.h: freeing several blocks at once, in order (a destructor's list);
 * large buffers on huge pages. */
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

/* A buffer of bytes for data written once per run and read often, such as
 * the KV cache: from 2 MiB up, aligned to 2 MiB and advised onto transparent
 * huge pages (madvise MADV_HUGEPAGE; THP's "madvise" mode), so that first
 * writes take one page fault per 2 MiB instead of one per 4 KiB and reads
 * miss the TLB less (measured: `drrl run --no-exact --seq-len 8192`, page
 * faults 26k -> 10k, fixed:8 CPU time -13%; this 2-core AMD EPYC, where a
 * fault costs microseconds under its hypervisor). Contents uninitialised,
 * as malloc's; release with free(). NULL when out of memory. */
void *drrl_alloc_large(size_t bytes);

#endif
