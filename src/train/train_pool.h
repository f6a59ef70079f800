/* train_pool.h: a small persistent pthread pool for the trainer.
 *
 * train_pool_run(pool, fn, ctx, n) calls fn(ctx, i, thread) for every i in [0, n),
 * spread over the pool's threads (the caller's thread takes part), and
 * returns when all calls are done. Items are independent: fn must write only
 * what item i owns, so results never depend on which thread ran which item
 * or on the number of threads. Reductions are done by giving each of a FIXED
 * number of chunks (TRAIN_POOL_CHUNKS, independent of the thread count) its
 * own partial result and summing the partials in chunk order afterwards.
 *
 * Not reentrant: fn must not call train_pool_run on the same pool.
 */
#ifndef DRRL_TRAIN_POOL_H
#define DRRL_TRAIN_POOL_H

#include <stddef.h>

#include "base/status.h"

/* Reductions split their range into this many chunks, whatever the thread
 * count, so that summation order (and therefore every bit of the result) is
 * the same with 1 or 16 threads. */
#define TRAIN_POOL_CHUNKS 64

typedef struct TrainPool TrainPool;
/* thread is in [0, train_pool_threads(pool)): an index for per-thread scratch
 * buffers; results must not depend on it. */
typedef void (*TrainPoolFn)(void *ctx, size_t item, int thread);

/* A pool of n_threads threads in all (n_threads - 1 workers plus the caller);
 * n_threads <= 1 runs everything on the caller's thread. Errors: DRRL_E_NOMEM,
 * DRRL_E_INTERNAL (pthread_create failed). */
DrrlStatus train_pool_new(int n_threads, TrainPool **out, DrrlError *err);
void train_pool_free(TrainPool *pool);
int train_pool_threads(const TrainPool *pool);

/* Run fn(ctx, i, thread) for i in [0, n). pool may be NULL (then serial). */
void train_pool_run(TrainPool *pool, TrainPoolFn fn, void *ctx, size_t n);

/* Chunk c of TRAIN_POOL_CHUNKS over [0, n): [*begin, *end). */
void train_pool_chunk(size_t n, size_t c, size_t *begin, size_t *end);

/* A reduction over [0, n): fn(ctx, begin, end) returns the partial result of
 * one chunk's range (it may also write what its range owns). */
typedef double (*TrainPoolSumFn)(void *ctx, size_t begin, size_t end);

/* The sum of fn over the TRAIN_POOL_CHUNKS chunks of [0, n), the partials
 * added in chunk order: the same bits whatever the thread count. */
double train_pool_sum(TrainPool *pool, TrainPoolSumFn fn, void *ctx, size_t n);

#endif
