/* par.c: a loop on short-lived threads (par.h). */
#include "base/par.h"

#include "base/blas.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct ParJob {
    ParFn fn;
    void *ctx;
    size_t n;
    atomic_size_t next;
} ParJob;

static void *par_main(void *arg)
{
    ParJob *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n)
            return NULL;
        j->fn(j->ctx, i);
    }
}

int par_threads(void)
{
    int t = blas_threads();
    return t < 1 ? 1 : t > PAR_MAX_THREADS ? PAR_MAX_THREADS : t;
}

void par_for(int threads, size_t n, ParFn fn, void *ctx)
{
    ParJob j = {.fn = fn, .ctx = ctx, .n = n};
    atomic_init(&j.next, 0);
    if (threads > PAR_MAX_THREADS)
        threads = PAR_MAX_THREADS;
    if ((size_t)threads > n)
        threads = (int)n;
    pthread_t tid[PAR_MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[started], NULL, par_main, &j) == 0)
            started++;
    par_main(&j);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
}
