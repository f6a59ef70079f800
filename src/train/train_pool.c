/* train_pool.c: persistent pthread pool (see train_pool.h). */
#include "config.h"

#include "train/train_pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct PoolWorkerArg {
    TrainPool *pool;
    int thread;
} PoolWorkerArg;

struct TrainPool {
    int n_threads;
    pthread_t *threads;
    PoolWorkerArg *args;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    unsigned long generation; /* bumped for every job */
    int quitting;
    /* the current job */
    TrainPoolFn fn;
    void *ctx;
    size_t n_items, next_item;
    int busy; /* workers still inside the current job */
};

/* Take items one at a time under the lock until none is left. Items are
 * coarse (a batch row, a head, a chunk) so the lock is not contended. */
static void pool_drain(TrainPool *p, int thread)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next_item < p->n_items ? p->next_item++ : p->n_items;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n_items)
            return;
        p->fn(p->ctx, i, thread);
    }
}

static void *pool_worker(void *arg)
{
    TrainPool *p = ((PoolWorkerArg *)arg)->pool;
    int thread = ((PoolWorkerArg *)arg)->thread;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quitting)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->quitting)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        pool_drain(p, thread);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

DrrlStatus train_pool_new(int n_threads, TrainPool **out, DrrlError *err)
{
    *out = NULL;
    TrainPool *p = calloc(1, sizeof *p);
    if (!p)
        return drrl_error(err, DRRL_E_NOMEM, "train_pool: out of memory");
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (p->n_threads > 1) {
        p->threads = calloc((size_t)p->n_threads - 1, sizeof *p->threads);
        p->args = calloc((size_t)p->n_threads - 1, sizeof *p->args);
        if (!p->threads || !p->args) {
            p->n_threads = 1;
            train_pool_free(p);
            return drrl_error(err, DRRL_E_NOMEM, "train_pool: out of memory");
        }
        for (int i = 0; i < p->n_threads - 1; i++) {
            p->args[i].pool = p;
            p->args[i].thread = i + 1;
            if (pthread_create(&p->threads[i], NULL, pool_worker, &p->args[i]) != 0) {
                p->n_threads = i + 1; /* join only the ones that started */
                train_pool_free(p);
                return drrl_error(err, DRRL_E_INTERNAL, "train_pool: cannot start thread %d",
                                  i + 1);
            }
        }
    }
    *out = p;
    return DRRL_OK;
}

void train_pool_free(TrainPool *p)
{
    if (!p)
        return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        p->quitting = 1;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n_threads - 1; i++)
            pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    free(p->args);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}

int train_pool_threads(const TrainPool *p)
{
    return p ? p->n_threads : 1;
}

void train_pool_run(TrainPool *p, TrainPoolFn fn, void *ctx, size_t n)
{
    if (!p || p->n_threads <= 1 || n <= 1) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_items = n;
    p->next_item = 0;
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    pool_drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void train_pool_chunk(size_t n, size_t c, size_t *begin, size_t *end)
{
    *begin = n * c / TRAIN_POOL_CHUNKS;
    *end = n * (c + 1) / TRAIN_POOL_CHUNKS;
}

typedef struct SumJob {
    TrainPoolSumFn fn;
    void *ctx;
    size_t n;
    double partial[TRAIN_POOL_CHUNKS];
} SumJob;

static void sum_item(void *ctx, size_t chunk, int thread)
{
    SumJob *j = ctx;
    size_t begin, end;
    train_pool_chunk(j->n, chunk, &begin, &end);
    j->partial[chunk] = j->fn(j->ctx, begin, end);
}

double train_pool_sum(TrainPool *pool, TrainPoolSumFn fn, void *ctx, size_t n)
{
    SumJob j = {.fn = fn, .ctx = ctx, .n = n};
    train_pool_run(pool, sum_item, &j, TRAIN_POOL_CHUNKS);
    double s = 0.0;
    for (size_t c = 0; c < TRAIN_POOL_CHUNKS; c++)
        s += j.partial[c];
    return s;
}
