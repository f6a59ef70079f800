/* mem.c: large buffers on transparent huge pages where the system allows (mem.h). */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE is not in POSIX */
#include "base/mem.h"

#include <sys/mman.h>

#define DRRL_HUGE_PAGE ((size_t)2 << 20)

void *drrl_alloc_large(size_t bytes)
{
    if (bytes < DRRL_HUGE_PAGE)
        return malloc(bytes ? bytes : 1);
    void *p = NULL;
    if (posix_memalign(&p, DRRL_HUGE_PAGE, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* advice only: where huge pages are off, or madvise fails, the buffer
     * is the same, on 4 KiB pages */
    (void)madvise(p, bytes - bytes % DRRL_HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return p;
}
