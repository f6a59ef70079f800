/* blas.c: OpenBLAS single-threaded for a while (blas.h). */
#include "base/blas.h"

#include <cblas.h>
#include <pthread.h>

/* OpenBLAS's own (exported by its pthreads and OpenMP builds, declared in no
 * header): weak, so a BLAS without it links and the call is skipped. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

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

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static int holds, held_threads;

int blas_hold_serial(void)
{
    int stopped = 0;
    pthread_mutex_lock(&hold_mu);
    if (holds++ == 0) {
        held_threads = openblas_get_num_threads();
        if (held_threads > 1)
            openblas_set_num_threads(1);
        if (blas_thread_shutdown_) {
            blas_thread_shutdown_();
            stopped = 1;
        }
    }
    pthread_mutex_unlock(&hold_mu);
    return stopped;
}

void blas_release_serial(void)
{
    pthread_mutex_lock(&hold_mu);
    if (holds > 0 && --holds == 0 && held_threads > 1)
        openblas_set_num_threads(held_threads);
    pthread_mutex_unlock(&hold_mu);
}

int blas_threads(void)
{
    pthread_mutex_lock(&hold_mu);
    int t = holds > 0 ? held_threads : openblas_get_num_threads();
    pthread_mutex_unlock(&hold_mu);
    return t;
}
