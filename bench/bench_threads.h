/* bench_threads.h: the bench programs' runs of one job per thread. */
#ifndef DRRL_BENCH_THREADS_H
#define DRRL_BENCH_THREADS_H

#include <pthread.h>
#include <stdio.h>
#include <time.h>

enum { BENCH_MAX_THREADS = 256 };

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Run fn on each of jobs[0..nt) (job_size bytes apart), one thread each,
 * and wait for all. 0, or 1 after printing "PROG: cannot start thread i"
 * (the threads started are joined first). nt <= BENCH_MAX_THREADS. */
static inline int bench_threads_run(const char *prog, int nt, void *(*fn)(void *), void *jobs,
                                    size_t job_size)
{
    pthread_t tid[BENCH_MAX_THREADS];
    for (int t = 0; t < nt; t++)
        if (pthread_create(&tid[t], NULL, fn, (char *)jobs + (size_t)t * job_size) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", prog, t);
            for (int u = 0; u < t; u++)
                pthread_join(tid[u], NULL);
            return 1;
        }
    for (int t = 0; t < nt; t++)
        pthread_join(tid[t], NULL);
    return 0;
}

#endif
