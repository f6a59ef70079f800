/* blas.c: OpenBLAS single-threaded for a while (blas.h). */
#include "base/blas.h"

#include <cblas.h>

int blas_serial_begin(void)
{
    int saved = openblas_get_num_threads();
    if (saved > 1)
        openblas_set_num_threads(1);
    return saved;
}

void blas_serial_end(int saved)
{
    if (saved > 1)
        openblas_set_num_threads(saved);
}
