/* par.h: a loop's iterations on a few short-lived threads.
 *
 * par_for(threads, n, fn, ctx) calls fn(ctx, i) once for every i in [0, n),
 * on up to `threads` threads (the caller is one of them), and returns when
 * all calls have returned. Iterations are handed out in order from a shared
 * counter, so which thread runs which is not fixed: fn must write only what
 * iteration i owns, and then the result is the same for any thread count.
 * Threads that fail to start are done without (the caller runs the rest):
 * par_for cannot fail. Meant for loops of milliseconds or more per call
 * (a model load, a hash over gigabytes): it starts its threads each time.
 * Not reentrant from inside fn.
 */
#ifndef DRRL_PAR_H
#define DRRL_PAR_H

#include <stddef.h>

typedef void (*ParFn)(void *ctx, size_t i);

/* The most threads par_for starts. */
#define PAR_MAX_THREADS 64

/* The default thread count: OpenBLAS's (OPENBLAS_NUM_THREADS, else the
 * online CPUs), as the forward pass's default; at least 1, at most
 * PAR_MAX_THREADS. */
int par_threads(void);

void par_for(int threads, size_t n, ParFn fn, void *ctx);

#endif
