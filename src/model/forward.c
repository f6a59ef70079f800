#include "model/forward.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hot.h"
#include "base/mem.h"
#include "base/blas.h"
#include "base/fastexp.h"
#include "base/gemm.h"
#include "base/logsumexp.h"
#include "base/softmax.h"

/* Parallelism. A Forward owns a pool of threads-1 workers (plus the calling
 * thread) that runs every stage of a layer: row blocks of the matrix products
 * (each a single-threaded cblas_sgemm), row blocks of norms, RoPE and
 * activations, and (head, query block) attention calls. OpenBLAS is held at
 * one thread, its own threads stopped, from forward_new() to forward_free()
 * (blas_hold_serial, base/blas.h), so they never compete with the pool. Stages smaller than
 * these thresholds run on the calling thread alone. */
#define FORWARD_MAX_THREADS 256
#define FORWARD_PAR_MACS ((size_t)1 << 17)   /* multiply-adds of one product */
#define FORWARD_PAR_ELEMS ((size_t)1 << 14)  /* elements of an elementwise stage */
#define FORWARD_PAR_SCORES ((size_t)1 << 15) /* score entries of a layer */

typedef void (*PoolFn)(void *ctx, size_t task, int worker);

struct Forward {
    const Model *m;
    int threads;
    ForwardAttn attn;

    /* KV cache: (L, K, cap, D) each; len positions valid. */
    float *kc, *vc;
    size_t cap, len;
    size_t last_n; /* rows of the last call, whose final states f->h holds */

    /* Activations for up to rows tokens. */
    size_t rows;
    float *x;   /* (rows, C) residual stream */
    float *h;   /* (rows, C) normed input of a sublayer */
    float *q;   /* (rows, H*D) */
    float *k;   /* (rows, K*D) */
    float *v;   /* (rows, K*D) */
    float *att; /* (rows, H*D) attention output before o_proj */
    float *f1;  /* (rows, F) */
    float *f2;  /* (rows, F) */

    /* Per-worker attention scratch. */
    float **ws;
    size_t *ws_cap;

    /* The linear layers' kernel (base/gemm.h) and, per worker, room for the
     * weight panels one product's task packs (lin_pack_floats). */
    GemmIsa isa;
    float **wpk;

    /* Sub-block sizes of exact attention checked to reproduce a whole
     * block's bits (attn_split_checked): bit i for FORWARD_ATTN_ALIGN * i
     * rows, tried and passed. */
    uint32_t split_tried, split_ok;

    float *inv_freq; /* (D/2) RoPE inverse frequencies, Llama only */
    float *rope_cs;  /* (threads, D) cos and sin of one position per worker */

    /* The pool (see pool_run). */
    pthread_t *tid;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int pool_ok;
    int blas_held;                    /* a blas_hold_serial to release */
    int quit, sleepers, caller_waits; /* under mu */
    _Atomic uint64_t work;            /* stage << 32 | next task (POOL_CLOSED: none) */
    atomic_size_t done;               /* tasks of the stage finished */
    _Atomic(PoolFn) fn;               /* the stage: set while it is closed */
    _Atomic(void *) fn_ctx;
    atomic_size_t n_tasks;
    atomic_int want;
    /* stages run (pool_run calls with work), and those that met several
     * threads; per kind of stage, the wall time of those on several threads,
     * that times the threads asked, and the tasks' own time:
     * forward_pool_stats */
    uint64_t n_stages, n_meets;
    uint64_t n_calls, call_ns; /* forward_tokens calls and their wall time */
    uint64_t hook_ns;          /* of it, in the hook's call_begin and layer_begin */
    uint64_t k_stages[FORWARD_STAGE_KINDS], k_ns[FORWARD_STAGE_KINDS],
        k_slot_ns[FORWARD_STAGE_KINDS];
    _Atomic uint64_t k_busy_ns[FORWARD_STAGE_KINDS];
    _Atomic int cur_kind; /* the open stage's kind, for its tasks' time */
};

/* ---- the pool ------------------------------------------------------------ */

typedef struct PoolWorker {
    Forward *f;
    int id;
} PoolWorker;

/* A stage is published in one word, work = stage << 32 | next: a thread
 * claims task k by moving next from k to k + 1 (compare-and-swap on the whole
 * word), so a claim succeeds only while that stage is open. The caller waits
 * for the stage's tasks to finish (done == n_tasks), never for the workers
 * themselves: on a shared machine a worker that gets no CPU during a stage
 * costs nothing, the caller runs its tasks. Between stages the word says
 * POOL_CLOSED while the caller rewrites fn, fn_ctx, n_tasks and want (release
 * stores; a worker reads them with acquire loads after seeing the stage open,
 * and its claim fails if they changed since). Which thread runs a task never
 * changes what the task computes. */
#define POOL_CLOSED 0xffffffffu

static inline uint32_t pool_stage(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

/* Claim and run tasks of stage g as worker id until none is left. */
static void pool_tasks(Forward *f, uint32_t g, int id)
{
    for (;;) {
        uint64_t w = atomic_load_explicit(&f->work, memory_order_acquire);
        uint32_t k = (uint32_t)w;
        if (pool_stage(w) != g || k == POOL_CLOSED)
            return;
        size_t n = atomic_load_explicit(&f->n_tasks, memory_order_acquire);
        int want = atomic_load_explicit(&f->want, memory_order_acquire);
        PoolFn fn = atomic_load_explicit(&f->fn, memory_order_acquire);
        void *ctx = atomic_load_explicit(&f->fn_ctx, memory_order_acquire);
        if (k >= n || id >= want)
            return;
        if (!atomic_compare_exchange_weak_explicit(&f->work, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        int64_t t0 = clock_now_ns();
        fn(ctx, k, id);
        atomic_fetch_add_explicit(
            &f->k_busy_ns[atomic_load_explicit(&f->cur_kind, memory_order_relaxed)],
            (uint64_t)(clock_now_ns() - t0), memory_order_relaxed);
        if (atomic_fetch_add_explicit(&f->done, 1, memory_order_acq_rel) + 1 == n) {
            pthread_mutex_lock(&f->mu);
            if (f->caller_waits)
                pthread_cond_signal(&f->cv_done);
            pthread_mutex_unlock(&f->mu);
        }
    }
}

/* Workers and the caller spin this many pauses (a few to a few hundred
 * microseconds) for the next stage before sleeping on the condition
 * variable: stages follow each other closely within a forward pass, and a
 * futex wake-up per stage and thread would cost more than the short stages. */
#define FORWARD_SPIN 4000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* An open stage other than `seen`: its number, or 0 after quit. */
static int pool_next_stage(Forward *f, uint32_t seen, uint32_t *g)
{
    for (int i = 0; i < FORWARD_SPIN; i++) {
        uint64_t w = atomic_load_explicit(&f->work, memory_order_acquire);
        if (pool_stage(w) != seen && (uint32_t)w != POOL_CLOSED) {
            *g = pool_stage(w);
            return 1;
        }
        cpu_relax();
    }
    pthread_mutex_lock(&f->mu);
    f->sleepers++;
    for (;;) {
        uint64_t w = atomic_load_explicit(&f->work, memory_order_acquire);
        if (f->quit || (pool_stage(w) != seen && (uint32_t)w != POOL_CLOSED)) {
            *g = pool_stage(w);
            break;
        }
        pthread_cond_wait(&f->cv_work, &f->mu);
    }
    f->sleepers--;
    int quit = f->quit;
    pthread_mutex_unlock(&f->mu);
    return !quit;
}

static void *pool_main(void *arg)
{
    PoolWorker *w = arg;
    Forward *f = w->f;
    int id = w->id;
    free(w);
    uint32_t seen = 0, g;
    while (pool_next_stage(f, seen, &g)) {
        pool_tasks(f, g, id);
        seen = g;
    }
    return NULL;
}

static void pool_wait(Forward *f, size_t n_tasks);

/* Run fn for tasks 0..n_tasks-1 on up to `want` threads (the caller is
 * worker 0); returns when all are done. */
static void pool_run(Forward *f, ForwardStageKind kind, size_t n_tasks, int want, PoolFn fn,
                     void *ctx)
{
    if (n_tasks == 0)
        return;
    int nw = want < f->n_started + 1 ? want : f->n_started + 1;
    if ((size_t)nw > n_tasks)
        nw = (int)n_tasks;
    f->n_stages++;
    f->k_stages[kind]++;
    if (nw <= 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    f->n_meets++;
    int64_t t0 = clock_now_ns();
    atomic_store_explicit(&f->cur_kind, (int)kind, memory_order_relaxed);
    uint32_t g = pool_stage(atomic_load_explicit(&f->work, memory_order_relaxed)) + 1;
    if (g == 0) /* 0 is the workers' "seen nothing yet" */
        g = 1;
    atomic_store_explicit(&f->work, (uint64_t)g << 32 | POOL_CLOSED, memory_order_relaxed);
    atomic_store_explicit(&f->done, 0, memory_order_relaxed);
    atomic_store_explicit(&f->fn, fn, memory_order_release);
    atomic_store_explicit(&f->fn_ctx, ctx, memory_order_release);
    atomic_store_explicit(&f->n_tasks, n_tasks, memory_order_release);
    atomic_store_explicit(&f->want, nw, memory_order_release);
    atomic_store_explicit(&f->work, (uint64_t)g << 32, memory_order_release);
    pthread_mutex_lock(&f->mu);
    if (f->sleepers)
        pthread_cond_broadcast(&f->cv_work);
    pthread_mutex_unlock(&f->mu);
    pool_tasks(f, g, 0);
    pool_wait(f, n_tasks);
    uint64_t dt = (uint64_t)(clock_now_ns() - t0);
    f->k_ns[kind] += dt, f->k_slot_ns[kind] += dt * (uint64_t)nw;
}

/* The caller, its own tasks done: wait for the others' (spin, then sleep). */
static void pool_wait(Forward *f, size_t n_tasks)
{
    for (int i = 0; i < FORWARD_SPIN; i++) {
        if (atomic_load_explicit(&f->done, memory_order_acquire) == n_tasks)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&f->mu);
    f->caller_waits = 1;
    while (atomic_load_explicit(&f->done, memory_order_acquire) < n_tasks)
        pthread_cond_wait(&f->cv_done, &f->mu);
    f->caller_waits = 0;
    pthread_mutex_unlock(&f->mu);
}

void forward_parallel(Forward *f, size_t n_tasks, int want, ForwardTaskFn fn, void *ctx)
{
    pool_run(f, FORWARD_STAGE_HOOK, n_tasks, want < 1 ? 1 : want, fn, ctx);
}

void forward_pool_stats(const Forward *f, ForwardPoolStats *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->stages = f->n_stages, ps->meets = f->n_meets;
    ps->calls = f->n_calls, ps->call_s = 1e-9 * (double)f->call_ns;
    ps->hook_s = 1e-9 * (double)f->hook_ns;
    for (int k = 0; k < FORWARD_STAGE_KINDS; k++) {
        ps->kind_stages[k] = f->k_stages[k];
        ps->kind_s[k] = 1e-9 * (double)f->k_ns[k];
        ps->kind_slot_s[k] = 1e-9 * (double)f->k_slot_ns[k];
        ps->kind_busy_s[k] = 1e-9 * (double)atomic_load(&f->k_busy_ns[k]);
    }
}

/* Split n items into at most f->threads blocks of a multiple of `align`
 * items; returns the block size. */
static size_t block_of(const Forward *f, size_t n, size_t align)
{
    size_t b = (n + (size_t)f->threads - 1) / (size_t)f->threads;
    b = (b + align - 1) / align * align;
    return b ? b : 1;
}

/* ---- matrix products ------------------------------------------------------ */

typedef struct LinJob {
    Forward *f;
    float *y;
    const float *x, *w, *b;
    size_t n, in, out, rb, cb, n_cb;
    float beta;
    size_t period, tpp;    /* rows per piece (n: one), row tiles per piece */
    size_t n_rb, g, n_grp; /* row tiles; tiles per task; tasks per column block */
} LinJob;

/* Task t: output columns [c0, c1) of column block t / n_grp, for the g row
 * tiles [r0, r0 + rb), ... of row group t % n_grp (the bias added after).
 * The task packs its columns' weights once (gemm_pack, into the worker's
 * buffer) and runs every tile on them (gemm_packed): each output is one
 * chain of multiply-adds over k in order, so its bits depend on neither the
 * tiles nor the threads. A tile of fewer than FORWARD_LIN_PACKED rows (token
 * by token) goes to a single-threaded cblas_sgemm instead, which streams the
 * weights without packing them (bench/gemm_rates, this 2-core Intel Xeon, 384
 * columns of 768: 70 GFLOP/s at 1 row against 8 packing them, 22 against 24 at
 * 4; at 128 and 1,024 rows 122 / 128 against 161 / 160). A CPU
 * with neither AVX-512 nor AVX2 and FMA (gemm_best() portable: older x86,
 * ARM) keeps cblas_sgemm throughout: the portable kernel is there for its
 * bits (tests), not measured fast anywhere. The rows come in pieces of
 * `period` rows, each tiled from its own first row. */
#define FORWARD_LIN_PACKED 4

static void lin_task(void *ctx, size_t t, int worker)
{
    const LinJob *j = ctx;
    size_t c0 = t / j->n_grp * j->cb, c1 = c0 + j->cb < j->out ? c0 + j->cb : j->out;
    float *wp = j->f->wpk[worker];
    int packed = 0;
    for (size_t rt = t % j->n_grp * j->g; rt < (t % j->n_grp + 1) * j->g && rt < j->n_rb;
         rt++) {
        size_t p0 = rt / j->tpp * j->period, p1 = p0 + j->period < j->n ? p0 + j->period : j->n;
        size_t r0 = p0 + rt % j->tpp * j->rb, r1 = r0 + j->rb < p1 ? r0 + j->rb : p1;
        if (r0 >= r1 || c0 >= c1)
            return;
        if (r1 - r0 < FORWARD_LIN_PACKED || j->f->isa == GEMM_ISA_PORTABLE) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)(c1 - c0),
                        (int)j->in, 1.0f, j->x + r0 * j->in, (int)j->in, j->w + c0 * j->in,
                        (int)j->in, j->beta, j->y + r0 * j->out + c0, (int)j->out);
        } else {
            if (!packed)
                gemm_pack(j->f->isa, wp, j->w + c0 * j->in, j->in, c1 - c0, j->in);
            packed = 1;
            gemm_packed(j->f->isa, j->y + r0 * j->out + c0, j->out, j->x + r0 * j->in, j->in,
                        wp, r1 - r0, c1 - c0, j->in, j->beta != 0.0f);
        }
        if (j->b)
            for (size_t i = r0; i < r1; i++) {
                float *row = j->y + i * j->out;
                for (size_t c = c0; c < c1; c++)
                    row[c] += j->b[c];
            }
    }
}

/* y (n, out) = x (n, in) W^T + b, W (out, in); with accumulate, y += ... (the
 * residual connection, fused into the product). Split into tiles of at most
 * FORWARD_LIN_ROWS rows by a multiple of FORWARD_LIN_COLS output columns,
 * the columns chosen so that a tile holds about FORWARD_LIN_MACS
 * multiply-adds (and at most FORWARD_LIN_WEIGHTS weights): a 128-token segment of a 768-wide
 * model still gives dozens of tiles (whole rows alone would give two), and a long sequence
 * gives big ones. The tiles depend only on the shapes, never on the thread count (and the
 * packed kernel's bits not even on the tiles). A task packs its columns' weights once for
 * all its row tiles; until 2026-12-08 every tile was a cblas_sgemm, which packed them again
 * for each tile (a third of the products' time in perf, GPT-2 at T = 1024, 2 threads). */
#define FORWARD_LIN_ROWS 128
#define FORWARD_LIN_COLS 64
#define FORWARD_LIN_MACS ((size_t)1 << 23)
#define FORWARD_LIN_WEIGHTS ((size_t)1 << 18)
#define FORWARD_LIN_MAX 9

/* Output columns of a tile of rb rows by in inputs (before the product's
 * own width caps it); at most lin_cols(1, in) for any rb. */
static size_t lin_cols(size_t rb, size_t in)
{
    size_t per_col = rb * (in ? in : 1);
    size_t cb = (FORWARD_LIN_MACS + per_col - 1) / per_col;
    /* a few rows (token by token) read weights more than they compute: cap
     * a tile's weights at FORWARD_LIN_WEIGHTS floats so the threads share
     * the memory traffic */
    size_t cw = FORWARD_LIN_WEIGHTS / (in ? in : 1);
    cb = cw < cb ? cw : cb;
    cb = (cb + FORWARD_LIN_COLS - 1) / FORWARD_LIN_COLS * FORWARD_LIN_COLS;
    return cb ? cb : 1;
}

/* Floats of one task's packed weights for a product of in inputs. */
static size_t lin_pack_floats(GemmIsa isa, size_t in)
{
    return gemm_pack_floats(isa, lin_cols(1, in), in);
}

static LinJob lin_job_period(float *y, const float *x, const float *w, const float *b, size_t n,
                             size_t period, size_t in, size_t out, int accumulate)
{
    LinJob j = {NULL, y, x, w, b, n, in, out, 0, 0, 0, accumulate ? 1.0f : 0.0f, 0, 0, 0, 0, 0};
    j.period = period ? period : n;
    j.rb = j.period < FORWARD_LIN_ROWS ? j.period : FORWARD_LIN_ROWS;
    j.tpp = (j.period + j.rb - 1) / j.rb;
    size_t cb = lin_cols(j.rb, in);
    j.cb = cb < out ? cb : out;
    if (j.cb == 0)
        j.cb = 1;
    j.n_cb = (out + j.cb - 1) / j.cb;
    return j;
}

static LinJob lin_job(float *y, const float *x, const float *w, const float *b, size_t n,
                      size_t in, size_t out, int accumulate)
{
    return lin_job_period(y, x, w, b, n, n, in, out, accumulate);
}

/* Group j's row tiles into tasks: as many tiles per task as still leaves
 * about FORWARD_LIN_TASKS tasks per thread over the n_jobs products of one
 * pool run. Which tiles a task runs changes nothing in what a tile computes. */
#define FORWARD_LIN_TASKS 2

static size_t lin_tasks(LinJob *j, int threads, int n_jobs)
{
    j->n_rb = (j->n + j->period - 1) / j->period * j->tpp;
    size_t want = ((size_t)threads * FORWARD_LIN_TASKS + (size_t)n_jobs - 1) / (size_t)n_jobs;
    size_t grp = (want + j->n_cb - 1) / j->n_cb;
    grp = grp < 1 ? 1 : grp > j->n_rb ? j->n_rb : grp;
    j->g = (j->n_rb + grp - 1) / grp;
    j->n_grp = (j->n_rb + j->g - 1) / j->g;
    return j->n_grp * j->n_cb;
}

/* Several independent products (q, k, v; up and gate) in one pool run, so
 * the threads meet once instead of once per product; each product may take
 * up to three jobs (lin_add). */
typedef struct LinMulti {
    LinJob jobs[FORWARD_LIN_MAX];
    size_t first[FORWARD_LIN_MAX + 1]; /* task index where each job starts */
    int n;
} LinMulti;

static void lin_multi_task(void *ctx, size_t t, int worker)
{
    LinMulti *m = ctx;
    int i = 0;
    while (t >= m->first[i + 1])
        i++;
    lin_task(&m->jobs[i], t - m->first[i], worker);
}

static void linear_multi(Forward *f, LinMulti *m)
{
    size_t macs = 0;
    m->first[0] = 0;
    for (int i = 0; i < m->n; i++) {
        m->jobs[i].f = f;
        m->first[i + 1] = m->first[i] + lin_tasks(&m->jobs[i], f->threads, m->n);
        macs += m->jobs[i].n * m->jobs[i].in * m->jobs[i].out;
    }
    pool_run(f, FORWARD_STAGE_LINEAR, m->first[m->n], macs >= FORWARD_PAR_MACS ? f->threads : 1,
             lin_multi_task, m);
}

/* A call's rows in pieces (forward.h, ForwardAttn.segment): `head` rows up
 * to the first segment boundary (0 when the call starts on one), then k
 * whole segments of T rows, then `tail` rows. A call of an unsegmented hook
 * is one piece (head = n). */
typedef struct Pieces {
    size_t head, T, k, tail;
} Pieces;

static Pieces pieces_of(const Forward *f, size_t pos0, size_t n)
{
    Pieces pc = {n, 0, 0, 0};
    size_t T = f->attn.segment;
    if (T) {
        size_t off = pos0 % T;
        pc.head = off ? (n < T - off ? n : T - off) : 0;
        pc.T = T, pc.k = (n - pc.head) / T, pc.tail = (n - pc.head) % T;
    }
    return pc;
}

static size_t pieces_count(const Pieces *pc)
{
    return (pc->head > 0) + pc->k + (pc->tail > 0);
}

/* Piece i: rows [*r0, *r0 + *n) of the call. */
static void piece_at(const Pieces *pc, size_t i, size_t *r0, size_t *n)
{
    if (pc->head && i == 0) {
        *r0 = 0, *n = pc->head;
        return;
    }
    i -= pc->head > 0;
    *r0 = pc->head + i * pc->T;
    *n = i < pc->k ? pc->T : pc->tail;
}

/* y = x W^T + b (as lin_job) over the call's rows, each piece tiled as a
 * call of that piece alone would tile it (so every row gets the bits it
 * would get there): the head and the tail as jobs of their own, the whole
 * segments as one job of period T. */
static void lin_add(LinMulti *m, const Pieces *pc, float *y, const float *x, const float *w,
                    const float *b, size_t in, size_t out, int accumulate)
{
    size_t r = 0;
    if (pc->head) {
        m->jobs[m->n++] = lin_job(y, x, w, b, pc->head, in, out, accumulate);
        r = pc->head;
    }
    if (pc->k) {
        m->jobs[m->n++] = lin_job_period(y + r * out, x + r * in, w, b, pc->k * pc->T, pc->T,
                                         in, out, accumulate);
        r += pc->k * pc->T;
    }
    if (pc->tail)
        m->jobs[m->n++] = lin_job(y + r * out, x + r * in, w, b, pc->tail, in, out, accumulate);
}

static void linear_pieces(Forward *f, const Pieces *pc, float *y, const float *x,
                          const float *w, const float *b, size_t in, size_t out, int accumulate)
{
    LinMulti m;
    m.n = 0;
    lin_add(&m, pc, y, x, w, b, in, out, accumulate);
    linear_multi(f, &m);
}

static void linear(Forward *f, float *y, const float *x, const float *w, const float *b,
                   size_t n, size_t in, size_t out, int accumulate)
{
    LinMulti m;
    m.n = 1;
    m.jobs[0] = lin_job(y, x, w, b, n, in, out, accumulate);
    linear_multi(f, &m);
}

/* ---- elementwise stages ---------------------------------------------------- */

/* LayerNorm (biased variance, as torch.nn.LayerNorm), statistics in double. */
static void layernorm(float *y, const float *x, const float *w, const float *b, size_t n,
                      size_t C, double eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * C;
        float *yi = y + i * C;
        double mean = 0, var = 0;
        for (size_t j = 0; j < C; j++)
            mean += xi[j];
        mean /= (double)C;
        for (size_t j = 0; j < C; j++) {
            double d = xi[j] - mean;
            var += d * d;
        }
        var /= (double)C;
        double inv = 1.0 / sqrt(var + eps);
        for (size_t j = 0; j < C; j++)
            yi[j] = (float)((xi[j] - mean) * inv) * w[j] + b[j];
    }
}

/* RMSNorm as transformers' LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w. */
static void rmsnorm(float *y, const float *x, const float *w, size_t n, size_t C, double eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * C;
        float *yi = y + i * C;
        double ss = 0;
        for (size_t j = 0; j < C; j++)
            ss += (double)xi[j] * xi[j];
        float inv = (float)(1.0 / sqrt(ss / (double)C + eps));
        for (size_t j = 0; j < C; j++)
            yi[j] = w[j] * (xi[j] * inv);
    }
}

/* Row-parallel stages share this description. */
typedef struct RowJob {
    Forward *f;
    int kind; /* ROW_NORM, ROW_ROPE, ROW_ACT */
    size_t n, block;
    float *y;
    const float *x, *w, *b;
    size_t layer, pos0;
} RowJob;

enum { ROW_NORM, ROW_ROPE, ROW_ACT };

static void row_task(void *ctx, size_t t, int worker);

static void rows_run(Forward *f, int kind, size_t n, size_t width, RowJob *j)
{
    j->f = f;
    j->kind = kind;
    j->n = n;
    size_t tasks = 1;
    if (n * width >= FORWARD_PAR_ELEMS && f->threads > 1 && n > 1) {
        j->block = block_of(f, n, 1);
        tasks = (n + j->block - 1) / j->block;
    } else {
        j->block = n;
    }
    pool_run(f, FORWARD_STAGE_ROWS, tasks, f->threads, row_task, j);
}

/* gelu_new (GPT-2; Hendrycks & Gimpel 2016, tanh approximation), with
 * tanh(u) = sign(u) (1 - e^{-2|u|}) / (1 + e^{-2|u|}). */
static inline __attribute__((always_inline)) float gelu_new(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    float u = k * (x + 0.044715f * x * x * x);
    float e = fastexp_nonpos(-2.0f * fabsf(u));
    float t = (1.0f - e) / (1.0f + e);
    t = u < 0 ? -t : t;
    return 0.5f * x * (1.0f + t);
}

/* silu(x) = x sigmoid(x), sigmoid from e^{-|x|} (no overflow either side). */
static inline __attribute__((always_inline)) float silu(float x)
{
    float e = fastexp_nonpos(-fabsf(x));
    float s = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    return x * s;
}

DRRL_HOT static void act_gelu(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = gelu_new(v[i]);
}

DRRL_HOT static void act_swiglu(float *up, const float *gate, size_t n)
{
    for (size_t i = 0; i < n; i++)
        up[i] *= silu(gate[i]);
}

/* RoPE angles of position pos (transformers' convention, in float32 as it
 * computes them: angle_j = float(pos) * inv_freq[j]); cs = (cos[D/2], sin[D/2]). */
static void rope_angles(float *cs, size_t D, size_t pos, const float *inv_freq)
{
    size_t half = D / 2;
    for (size_t j = 0; j < half; j++) {
        float angle = (float)pos * inv_freq[j];
        cs[j] = (float)cos((double)angle);
        cs[half + j] = (float)sin((double)angle);
    }
}

/* Rotate one head vector in place (rotate_half: element j pairs with j + D/2). */
static void rope(float *v, size_t D, const float *cs)
{
    size_t half = D / 2;
    for (size_t j = 0; j < half; j++) {
        float c = cs[j], s = cs[half + j];
        float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
    }
}

static float *cache_at(const Forward *f, float *base, size_t l, size_t g, size_t t)
{
    const ModelConfig *c = &f->m->cfg;
    return base + ((l * (size_t)c->n_kv_head + g) * f->cap + t) * (size_t)c->head_dim;
}

static void row_task(void *ctx, size_t t, int worker)
{
    RowJob *j = ctx;
    Forward *f = j->f;
    const ModelConfig *c = &f->m->cfg;
    size_t r0 = t * j->block, r1 = r0 + j->block < j->n ? r0 + j->block : j->n;
    if (r0 >= r1)
        return;
    size_t C = (size_t)c->d_model, H = (size_t)c->n_head, K = (size_t)c->n_kv_head;
    size_t D = (size_t)c->head_dim, F = (size_t)c->d_ff, HD = H * D, KD = K * D;
    switch (j->kind) {
    case ROW_NORM:
        if (c->arch == MODEL_ARCH_GPT2)
            layernorm(j->y + r0 * C, j->x + r0 * C, j->w, j->b, r1 - r0, C, c->norm_eps);
        else
            rmsnorm(j->y + r0 * C, j->x + r0 * C, j->w, r1 - r0, C, c->norm_eps);
        break;
    case ROW_ROPE: {
        /* RoPE on this step's queries and keys (Llama), then keys and values
         * into the cache at their positions. */
        float *cs = f->rope_cs ? f->rope_cs + (size_t)worker * D : NULL;
        for (size_t i = r0; i < r1; i++) {
            if (cs) {
                rope_angles(cs, D, j->pos0 + i, f->inv_freq);
                for (size_t h = 0; h < H; h++)
                    rope(f->q + i * HD + h * D, D, cs);
                for (size_t g = 0; g < K; g++)
                    rope(f->k + i * KD + g * D, D, cs);
            }
            for (size_t g = 0; g < K; g++) {
                memcpy(cache_at(f, f->kc, j->layer, g, j->pos0 + i), f->k + i * KD + g * D,
                       D * sizeof(float));
                memcpy(cache_at(f, f->vc, j->layer, g, j->pos0 + i), f->v + i * KD + g * D,
                       D * sizeof(float));
            }
        }
        break;
    }
    case ROW_ACT:
        if (c->arch == MODEL_ARCH_GPT2)
            act_gelu(f->f1 + r0 * F, (r1 - r0) * F);
        else
            act_swiglu(f->f1 + r0 * F, f->f2 + r0 * F, (r1 - r0) * F);
        break;
    }
}

static void norm(Forward *f, float *y, const float *x, const float *w, const float *b, size_t n)
{
    RowJob j = {0};
    j.y = y;
    j.x = x;
    j.w = w;
    j.b = b;
    rows_run(f, ROW_NORM, n, (size_t)f->m->cfg.d_model, &j);
}

/* ---- exact attention ----------------------------------------------------- */

/* Hot loops (DRRL_HOT) are written so that GCC vectorises them (no
 * reductions across lanes in float, no calls), and are compiled for AVX-512,
 * AVX2 and baseline x86-64, picked at load time (target_clones); with
 * -std=c11 no multiply-add is contracted, so every variant gives the same
 * bits. */

float forward_exp_nonpos(float x)
{
    return fastexp_nonpos(x);
}

DrrlStatus forward_attn_exact(void *ctx, const ForwardAttnArgs *a, DrrlError *err)
{
    (void)ctx;
    (void)err;
    size_t n = a->n, nk = a->n_keys, D = (size_t)a->head_dim;
    float *S = a->scratch; /* (n, nk) */
    /* S = scale * q k^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nk, (int)D, a->scale,
                a->q, (int)a->q_stride, a->k, (int)D, 0.0f, S, (int)nk);
    for (size_t i = 0; i < n; i++) {
        float *row = S + i * nk;
        softmax_row(row, a->pos0 + i + 1, nk); /* causal: keys 0 .. pos0+i */
        if (a->probs)
            memcpy(a->probs + i * a->probs_stride, row, nk * sizeof *row);
    }
    /* out = P v */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)nk, 1.0f, S,
                (int)nk, a->v, (int)D, 0.0f, a->out, (int)a->out_stride);
    return DRRL_OK;
}

/* ---- lifetime ------------------------------------------------------------ */

static const ForwardAttn exact_attn = {"exact", NULL, forward_attn_exact, NULL, 0, NULL, 0,
                                       0,       NULL};

DrrlStatus forward_new(const Model *m, size_t cap_hint, int threads, Forward **out,
                       DrrlError *err)
{
    *out = NULL;
    Forward *f = calloc(1, sizeof *f);
    if (!f)
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory");
    f->m = m;
    if (threads <= 0)
        threads = blas_threads();
    if (threads < 1)
        threads = 1;
    if (threads > FORWARD_MAX_THREADS)
        threads = FORWARD_MAX_THREADS;
    f->threads = threads;
    f->attn = exact_attn;
    f->ws = calloc((size_t)threads, sizeof *f->ws);
    f->ws_cap = calloc((size_t)threads, sizeof *f->ws_cap);
    const ModelConfig *c = &m->cfg;
    size_t D = (size_t)c->head_dim;
    /* every product's inputs: the model width, the heads' outputs, the MLP's;
     * no buffers where the linear layers stay on cblas_sgemm (lin_task) */
    f->isa = gemm_best();
    size_t pk = lin_pack_floats(f->isa, (size_t)c->d_model),
           pk2 = lin_pack_floats(f->isa, (size_t)c->n_head * D),
           pk3 = lin_pack_floats(f->isa, (size_t)c->d_ff);
    pk = pk2 > pk ? pk2 : pk;
    pk = pk3 > pk ? pk3 : pk;
    f->wpk = calloc((size_t)threads, sizeof *f->wpk);
    for (int i = 0; f->wpk && f->isa != GEMM_ISA_PORTABLE && i < threads; i++)
        if (!(f->wpk[i] = aligned_alloc(64, (pk * sizeof(float) + 63) / 64 * 64))) {
            forward_free(f);
            return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory");
        }
    if (c->arch == MODEL_ARCH_LLAMA) {
        f->inv_freq = malloc(D / 2 * sizeof *f->inv_freq);
        f->rope_cs = malloc((size_t)threads * D * sizeof *f->rope_cs);
        if (f->inv_freq)
            for (size_t j = 0; j < D / 2; j++) {
                /* transformers: 1.0 / (base ** (arange(0, D, 2).float() / D)),
                 * in float32. */
                float e = (float)(2 * j) / (float)D;
                float p = (float)pow((double)(float)c->rope_theta, (double)e);
                f->inv_freq[j] = 1.0f / p;
            }
    }
    if (!f->ws || !f->ws_cap || !f->wpk ||
        (c->arch == MODEL_ARCH_LLAMA && (!f->inv_freq || !f->rope_cs))) {
        forward_free(f);
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory");
    }
    f->cap = cap_hint ? cap_hint : (size_t)c->n_ctx;
    size_t per, total;
    if (drrl_size_mul((size_t)c->n_layer * (size_t)c->n_kv_head, D, &per) ||
        drrl_size_mul(per, f->cap, &total) || drrl_size_mul(total, sizeof(float), &total) ||
        !(f->kc = drrl_alloc_large(total)) || !(f->vc = drrl_alloc_large(total))) {
        forward_free(f);
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory for a %zu-token cache",
                          cap_hint);
    }
    /* The pool: threads-1 workers. If some fail to start, run with fewer. */
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv_work, NULL);
    pthread_cond_init(&f->cv_done, NULL);
    f->pool_ok = 1;
    atomic_init(&f->work, 0);
    atomic_init(&f->done, 0);
    atomic_init(&f->fn, NULL);
    atomic_init(&f->fn_ctx, NULL);
    atomic_init(&f->n_tasks, 0);
    atomic_init(&f->want, 0);
    f->tid = calloc((size_t)threads, sizeof *f->tid);
    for (int i = 1; f->tid && i < threads; i++) {
        PoolWorker *w = malloc(sizeof *w);
        if (!w)
            break;
        w->f = f;
        w->id = i;
        if (pthread_create(&f->tid[i], NULL, pool_main, w) != 0) {
            free(w);
            break;
        }
        f->n_started = i;
    }
    /* every product runs single-threaded in the pool: OpenBLAS's own
     * threads would only spin beside ours (blas.h) */
    f->blas_held = 1;
    blas_hold_serial();
    *out = f;
    return DRRL_OK;
}

static void free_rows(Forward *f)
{
    DRRL_FREE(f->x, f->h, f->q, f->k, f->v, f->att, f->f1, f->f2);
    f->x = f->h = f->q = f->k = f->v = f->att = f->f1 = f->f2 = NULL;
    f->rows = 0;
}

void forward_free(Forward *f)
{
    if (!f)
        return;
    if (f->pool_ok) {
        pthread_mutex_lock(&f->mu);
        f->quit = 1;
        pthread_cond_broadcast(&f->cv_work);
        pthread_mutex_unlock(&f->mu);
        for (int i = 1; i <= f->n_started; i++)
            pthread_join(f->tid[i], NULL);
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv_work);
        pthread_cond_destroy(&f->cv_done);
    }
    free(f->tid);
    free_rows(f);
    for (int i = 0; i < f->threads; i++) {
        if (f->ws)
            free(f->ws[i]);
        if (f->wpk)
            free(f->wpk[i]);
    }
    if (f->blas_held)
        blas_release_serial();
    DRRL_FREE(f->ws, f->ws_cap, f->wpk, f->kc, f->vc, f->inv_freq, f->rope_cs, f);
}

void forward_reset(Forward *f)
{
    f->len = 0, f->last_n = 0;
}

size_t forward_len(const Forward *f)
{
    return f->len;
}

int forward_threads(const Forward *f)
{
    return f->threads;
}

void forward_set_attn(Forward *f, const ForwardAttn *attn)
{
    f->attn = attn ? *attn : exact_attn;
    if (!f->attn.head)
        f->attn.head = forward_attn_exact;
}

const float *forward_cache_k(const Forward *f, int l, int g)
{
    const ModelConfig *c = &f->m->cfg;
    return f->kc +
           (((size_t)l * (size_t)c->n_kv_head + (size_t)g) * f->cap) * (size_t)c->head_dim;
}

const float *forward_cache_v(const Forward *f, int l, int g)
{
    const ModelConfig *c = &f->m->cfg;
    return f->vc +
           (((size_t)l * (size_t)c->n_kv_head + (size_t)g) * f->cap) * (size_t)c->head_dim;
}

/* Make room for need positions, keeping the first len. */
static DrrlStatus grow_cache(Forward *f, size_t need, DrrlError *err)
{
    if (need <= f->cap)
        return DRRL_OK;
    const ModelConfig *c = &f->m->cfg;
    size_t ncap = f->cap * 2 > need ? f->cap * 2 : need;
    size_t heads = (size_t)c->n_layer * (size_t)c->n_kv_head, D = (size_t)c->head_dim;
    size_t total;
    if (drrl_size_mul(heads * D, ncap, &total) || drrl_size_mul(total, sizeof(float), &total))
        return drrl_error(err, DRRL_E_NOMEM, "forward: cache of %zu tokens too large", need);
    float *nk = drrl_alloc_large(total), *nv = drrl_alloc_large(total);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory for a %zu-token cache",
                          need);
    }
    for (size_t hh = 0; hh < heads; hh++) {
        memcpy(nk + hh * ncap * D, f->kc + hh * f->cap * D, f->len * D * sizeof(float));
        memcpy(nv + hh * ncap * D, f->vc + hh * f->cap * D, f->len * D * sizeof(float));
    }
    free(f->kc);
    free(f->vc);
    f->kc = nk;
    f->vc = nv;
    f->cap = ncap;
    return DRRL_OK;
}

DrrlStatus forward_reserve(Forward *f, size_t n, DrrlError *err)
{
    return grow_cache(f, n, err);
}

static DrrlStatus grow_rows(Forward *f, size_t n, DrrlError *err)
{
    if (n <= f->rows)
        return DRRL_OK;
    const ModelConfig *c = &f->m->cfg;
    size_t C = (size_t)c->d_model, HD = (size_t)c->n_head * (size_t)c->head_dim;
    size_t KD = (size_t)c->n_kv_head * (size_t)c->head_dim, F = (size_t)c->d_ff;
    free_rows(f);
    /* rewritten by every call: huge pages (mem.h) for a long call's
     * megabytes, one page fault per 2 MiB on their first writes */
    f->x = drrl_alloc_large(n * C * sizeof(float));
    f->h = drrl_alloc_large(n * C * sizeof(float));
    f->q = drrl_alloc_large(n * HD * sizeof(float));
    f->k = drrl_alloc_large(n * KD * sizeof(float));
    f->v = drrl_alloc_large(n * KD * sizeof(float));
    f->att = drrl_alloc_large(n * HD * sizeof(float));
    f->f1 = drrl_alloc_large(n * F * sizeof(float));
    f->f2 = drrl_alloc_large(n * F * sizeof(float));
    if (!f->x || !f->h || !f->q || !f->k || !f->v || !f->att || !f->f1 || !f->f2) {
        free_rows(f);
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory for %zu tokens", n);
    }
    f->rows = n;
    return DRRL_OK;
}

/* ---- attention stage ------------------------------------------------------ */

/* Exact attention runs as tasks of (head, block of FORWARD_ATTN_BLOCK query
 * rows); a 128-token segment gives only H tasks per layer (12 for GPT-2),
 * fewer than 16 threads. When tasks are fewer than threads and the hook lets
 * the forward choose its rows, each block is split further into sub-blocks
 * of sb query rows (a multiple of FORWARD_ATTN_ALIGN; the last sub-block
 * takes the rest of the block), every sub-block called with the block's
 * n_keys, so that each of its products is the block's product restricted to
 * its rows: the same sgemm shapes along keys and dimensions, rows starting at
 * multiples of 12. A score or output's bits depend on where its row falls in
 * OpenBLAS's micro-tiles (Haswell's are 12 rows by 24 columns; a row in the
 * block's last, partial tile goes through other code), so rows cut at
 * multiples of 12 are computed with the same operations as in the whole
 * block, and the result depends neither on the split nor on the thread
 * count. Sub-blocks also keep sb * n_keys * D above OpenBLAS's small-matrix
 * limit (100^3), under which the SkylakeX kernels sum differently. Checked
 * bit for bit with Debian's OpenBLAS 0.3.21 on this machine, for the Haswell
 * and the SkylakeX kernels (D = 32, 64, 128, every 12-multiple sb, n_keys up
 * to 4096), and at run time for each sub-block size before its first use
 * (attn_split_checked): a BLAS that does not reproduce a block's bits is
 * never split. */
#define FORWARD_ATTN_ALIGN 12
#define FORWARD_ATTN_SMALL 1e6
#define FORWARD_ATTN_TASKS 4 /* aim at this many tasks per thread when splitting */

/* Does forward_attn_exact give the same bits for a block of FORWARD_ATTN_BLOCK
 * rows over n_keys keys whole and in sub-blocks of sb rows? Deterministic
 * data; 0 when out of memory. */
static int attn_split_same(size_t sb, size_t D, size_t nk)
{
    size_t n = FORWARD_ATTN_BLOCK;
    float *q = malloc(n * D * sizeof *q), *k = malloc(nk * D * sizeof *k);
    float *v = malloc(nk * D * sizeof *v), *s = malloc(n * nk * sizeof *s);
    float *o1 = malloc(n * D * sizeof *o1), *o2 = malloc(n * D * sizeof *o2);
    int same = q && k && v && s && o1 && o2;
    if (same) {
        uint32_t x = 12345u;
        for (size_t i = 0; i < n * D; i++, x = x * 1103515245u + 12345u)
            q[i] = (float)((x >> 9) & 0xffff) / 16384.0f - 2.0f;
        for (size_t i = 0; i < nk * D; i++, x = x * 1103515245u + 12345u) {
            k[i] = (float)((x >> 9) & 0xffff) / 16384.0f - 2.0f;
            v[i] = (float)((x >> 3) & 0xffff) / 32768.0f - 1.0f;
        }
        ForwardAttnArgs a;
        memset(&a, 0, sizeof a);
        a.head_dim = (int)D;
        a.pos0 = nk - n;
        a.n = n;
        a.n_keys = nk;
        a.scale = 0.125f;
        a.q = q;
        a.q_stride = D;
        a.k = k;
        a.v = v;
        a.out = o1;
        a.out_stride = D;
        a.scratch = s;
        forward_attn_exact(NULL, &a, NULL);
        for (size_t r0 = 0; r0 < n; r0 += sb) {
            size_t r1 = r0 + 2 * sb <= n ? r0 + sb : n;
            ForwardAttnArgs b = a;
            b.pos0 = a.pos0 + r0;
            b.n = r1 - r0;
            b.q = q + r0 * D;
            b.out = o2 + r0 * D;
            forward_attn_exact(NULL, &b, NULL);
            if (r1 == n)
                break;
        }
        same = memcmp(o1, o2, n * D * sizeof *o1) == 0;
    }
    DRRL_FREE(q, k, v, s, o1, o2);
    return same;
}

/* sb is safe to use on this BLAS: tried once per Forward and size, with
 * n_keys past a K-blocking boundary and off the 24-column micro-tiles. */
static int attn_split_checked(Forward *f, size_t sb, size_t D)
{
    uint32_t bit = (uint32_t)1 << (sb / FORWARD_ATTN_ALIGN);
    if (!(f->split_tried & bit)) {
        size_t nk = (size_t)(FORWARD_ATTN_SMALL / (double)(sb * D)) + 1;
        nk = nk < 1000 ? 1000 : nk + 37;
        f->split_tried |= bit;
        if (attn_split_same(sb, D, nk))
            f->split_ok |= bit;
    }
    return (f->split_ok & bit) != 0;
}

/* Rows per sub-block for a call of `tasks` (head, block) tasks whose first
 * block sees nk keys: FORWARD_ATTN_BLOCK (no split) unless threads would
 * idle. */
static size_t attn_sub_rows(Forward *f, size_t tasks, size_t block, size_t nk, size_t D)
{
    size_t threads = (size_t)f->n_started + 1;
    if (f->attn.rows_per_call || block != FORWARD_ATTN_BLOCK || tasks >= threads)
        return block;
    size_t per = (threads * FORWARD_ATTN_TASKS + tasks - 1) / tasks; /* sub-blocks wanted */
    size_t sb =
        (block / per + FORWARD_ATTN_ALIGN - 1) / FORWARD_ATTN_ALIGN * FORWARD_ATTN_ALIGN;
    if (sb < FORWARD_ATTN_ALIGN)
        sb = FORWARD_ATTN_ALIGN;
    while (sb < block && (double)sb * (double)nk * (double)D <= FORWARD_ATTN_SMALL)
        sb += FORWARD_ATTN_ALIGN;
    while (sb <= block / 2 && !attn_split_checked(f, sb, D))
        sb += FORWARD_ATTN_ALIGN;
    return sb <= block / 2 ? sb : block;
}

/* One piece of a call in an attention stage: rows [row0, row0 + n) of the
 * call at positions pos0.., its blocks and sub-blocks as attention() would
 * cut a call of this piece alone, and its first task in the stage. */
typedef struct AttnPiece {
    size_t row0, pos0, n, block, n_blocks;
    size_t sb, s_full, s_last, units; /* sub-blocks: rows, per full block, in the
                                         last block, per head */
    size_t first;
} AttnPiece;

typedef struct AttnJob {
    Forward *f;
    int layer;
    size_t n_call; /* rows of the call (the capture's rows per head) */
    const AttnPiece *pc;
    size_t n_pc;
    float scale;
    float *probs; /* capture for this layer: (H, n_call, stride) or NULL */
    size_t probs_stride;
    atomic_int failed;
    pthread_mutex_t lock;
    DrrlStatus status;
    DrrlError err;
} AttnJob;

static void attn_task(void *ctx, size_t t, int worker)
{
    AttnJob *j = ctx;
    if (atomic_load(&j->failed))
        return;
    Forward *f = j->f;
    const ModelConfig *c = &f->m->cfg;
    size_t H = (size_t)c->n_head, D = (size_t)c->head_dim, HD = H * D;
    size_t group = H / (size_t)c->n_kv_head;
    size_t lo = 0, hi = j->n_pc; /* the piece of task t: pc[lo].first <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t >= j->pc[mid].first)
            lo = mid;
        else
            hi = mid;
    }
    const AttnPiece *p = &j->pc[lo];
    t -= p->first;
    size_t h = t / p->units, u = t % p->units;
    size_t b = u / p->s_full, sub = u % p->s_full, s_b = p->s_full;
    if (b >= p->n_blocks - 1) { /* the last block (maybe partial) */
        b = p->n_blocks - 1;
        sub = u - b * p->s_full;
        s_b = p->s_last;
    }
    size_t b0 = b * p->block, b1 = b0 + p->block < p->n ? b0 + p->block : p->n;
    size_t r0 = b0 + sub * p->sb, r1 = sub + 1 == s_b ? b1 : r0 + p->sb;
    size_t row = p->row0 + r0; /* in the call */
    ForwardAttnArgs a;
    a.layer = j->layer;
    a.head = (int)h;
    a.kv_head = (int)(h / group);
    a.head_dim = (int)D;
    a.pos0 = p->pos0 + r0;
    a.n = r1 - r0;
    a.n_keys = p->pos0 + b1;
    a.scale = j->scale;
    a.q = f->q + row * HD + h * D;
    a.q_stride = HD;
    a.k = forward_cache_k(f, j->layer, a.kv_head);
    a.v = forward_cache_v(f, j->layer, a.kv_head);
    a.out = f->att + row * HD + h * D;
    a.out_stride = HD;
    a.probs = j->probs ? j->probs + (h * j->n_call + row) * j->probs_stride : NULL;
    a.probs_stride = j->probs_stride;
    a.scratch = f->ws[worker];
    a.thread_ctx = NULL;
    a.worker = worker;
    DrrlError e;
    drrl_error_clear(&e);
    DrrlStatus s = f->attn.head(f->attn.ctx, &a, &e);
    if (s != DRRL_OK) {
        pthread_mutex_lock(&j->lock);
        if (j->status == DRRL_OK) {
            j->status = s;
            j->err = e;
        }
        pthread_mutex_unlock(&j->lock);
        atomic_store(&j->failed, 1);
    }
}

/* The attention of pieces [i0, i1) of a call of n rows at pos0 (Pieces) in
 * one pool stage; each piece cut into blocks and sub-blocks as a call of
 * that piece alone would be (the same head() calls, so the same bits). */
static DrrlStatus attention(Forward *f, int layer, size_t pos0, size_t n, const Pieces *pcs,
                            size_t i0, size_t i1, float *probs, size_t probs_stride,
                            DrrlError *err)
{
    const ModelConfig *c = &f->m->cfg;
    size_t H = (size_t)c->n_head, D = (size_t)c->head_dim;
    AttnPiece one, *pc = i1 - i0 > 1 ? malloc((i1 - i0) * sizeof *pc) : &one;
    if (!pc)
        return drrl_error(err, DRRL_E_NOMEM, "forward: out of memory");
    size_t np = i1 - i0, blocks = 0, need = 0;
    double scores = 0.0;
    for (size_t i = 0; i < np; i++) {
        AttnPiece *p = &pc[i];
        /* the last piece first: it attends the most keys, and its tasks,
         * the longest, then start first (the order changes no result) */
        piece_at(pcs, i1 - 1 - i, &p->row0, &p->n);
        p->pos0 = pos0 + p->row0;
        p->block = f->attn.rows_per_call ? f->attn.rows_per_call : FORWARD_ATTN_BLOCK;
        size_t pr =
            f->attn.piece_rows ? f->attn.piece_rows(f->attn.ctx, layer, p->pos0, p->n) : 0;
        if (pr)
            p->block = pr;
        if (p->block > p->n)
            p->block = p->n;
        p->n_blocks = (p->n + p->block - 1) / p->block;
        blocks += H * p->n_blocks;
        scores += (double)(H * p->n) * (double)(p->pos0 + p->n);
        size_t nd;
        if (drrl_size_mul(p->block, p->pos0 + p->n, &nd)) {
            if (pc != &one)
                free(pc);
            return drrl_error(err, DRRL_E_NOMEM, "forward: attention scratch too large");
        }
        need = nd > need ? nd : need;
    }
    int nt = scores < (double)FORWARD_PAR_SCORES ? 1 : f->threads;
    if (nt > f->n_started + 1)
        nt = f->n_started + 1;
    size_t n_tasks = 0;
    for (size_t i = 0; i < np; i++) {
        AttnPiece *p = &pc[i];
        p->sb = nt > 1 ? attn_sub_rows(f, blocks, p->block, p->pos0 + p->block, D) : p->block;
        size_t last = p->n - (p->n_blocks - 1) * p->block;
        p->s_full = p->block / p->sb, p->s_last = last / p->sb ? last / p->sb : 1;
        p->units = (p->n_blocks - 1) * p->s_full + p->s_last;
        p->first = n_tasks;
        n_tasks += H * p->units;
    }
    if ((size_t)nt > n_tasks)
        nt = (int)n_tasks;
    /* Scratch only (nothing in it outlives a task): a fresh buffer, not a
     * realloc that would copy the old contents on this thread, and grown by
     * half again so that a run's growing key count reallocates it a few
     * times, not every call (16 workers' score blocks are tens of MB). */
    size_t grow = need + need / 2;
    for (int w = 0; w < nt; w++)
        if (f->ws_cap[w] < need) {
            free(f->ws[w]);
            f->ws[w] = NULL, f->ws_cap[w] = 0;
            float *p = malloc(grow * sizeof(float));
            if (!p) {
                if (pc != &one)
                    free(pc);
                return drrl_error(err, DRRL_E_NOMEM,
                                  "forward: out of memory for attention scratch (%zu floats)",
                                  need);
            }
            f->ws[w] = p;
            f->ws_cap[w] = grow;
        }

    float scale = 1.0f;
    if (c->scale_attn)
        scale = (float)(1.0 / sqrt((double)D));
    if (c->scale_attn_by_layer)
        scale /= (float)(layer + 1);

    AttnJob j;
    memset(&j, 0, sizeof j);
    j.f = f;
    j.layer = layer;
    j.n_call = n;
    j.pc = pc;
    j.n_pc = np;
    j.scale = scale;
    j.probs = probs;
    j.probs_stride = probs_stride;
    atomic_init(&j.failed, 0);
    pthread_mutex_init(&j.lock, NULL);
    j.status = DRRL_OK;
    pool_run(f, FORWARD_STAGE_ATTN, n_tasks, nt, attn_task, &j);
    pthread_mutex_destroy(&j.lock);
    if (pc != &one)
        free(pc);
    if (j.status != DRRL_OK) {
        if (err)
            *err = j.err;
        return j.status;
    }
    return DRRL_OK;
}

/* ---- the forward pass --------------------------------------------------- */

/* Whether every x[0, n) is finite: an exponent field of all ones is a NaN
 * or an infinity. One OR over the bits, no early exit, so GCC vectorises it
 * (it runs on the calling thread over every query, key, value and hidden
 * state of a call, while the pool waits). */
DRRL_HOT static int all_finite(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

/* DRRL_E_NUMERIC naming layer l (or the output when l < 0) and what when one
 * of x[0, n) is NaN or Inf: finite weights can still overflow float32 on an
 * input, and nothing computed from such a value may be reported. The token
 * is counted from the start of its piece (pc; NULL: of x), as a call of
 * that piece alone would name it. */
static DrrlStatus check_finite(const Model *m, const float *x, size_t n, size_t width, long l,
                               const char *what, const Pieces *pc, DrrlError *err)
{
    const char *dir = m->dir ? m->dir : "model";
    if (all_finite(x, n))
        return DRRL_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            size_t tok = i / width;
            if (pc && tok >= pc->head)
                tok = (tok - pc->head) % pc->T;
            if (l < 0)
                return drrl_error(err, DRRL_E_NUMERIC,
                                  "%s: output layer: %s of token %zu is %s (float32 overflow)",
                                  dir, what, tok, isnan(x[i]) ? "NaN" : "infinite");
            return drrl_error(err, DRRL_E_NUMERIC,
                              "%s: layer %ld: %s of token %zu is %s (float32 overflow)", dir, l,
                              what, tok, isnan(x[i]) ? "NaN" : "infinite");
        }
    return DRRL_OK;
}

static DrrlStatus run_tokens(Forward *f, const int32_t *ids, size_t n, float *logits,
                             const ForwardCapture *cap, DrrlError *err)
{
    const Model *m = f->m;
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, H = (size_t)c->n_head, K = (size_t)c->n_kv_head;
    size_t D = (size_t)c->head_dim, F = (size_t)c->d_ff, V = (size_t)c->vocab;
    size_t L = (size_t)c->n_layer, HD = H * D, KD = K * D;
    size_t pos0 = f->len, n_keys = pos0 + n;
    int gpt2 = c->arch == MODEL_ARCH_GPT2;
    DrrlStatus s;
    /* the hook's pieces (one for an unsegmented hook): the products run
     * over all rows, each piece tiled as alone; attention piece by piece */
    Pieces pc = pieces_of(f, pos0, n);
    size_t np = pieces_count(&pc);
    int64_t th = clock_now_ns();
    if (f->attn.call_begin && (s = f->attn.call_begin(f->attn.ctx, pos0, n, err)))
        return s;
    f->hook_ns += (uint64_t)(clock_now_ns() - th);

    /* Embeddings. */
    for (size_t i = 0; i < n; i++) {
        float *xi = f->x + i * C;
        const float *te = m->tok_emb + (size_t)ids[i] * C;
        if (gpt2) {
            const float *pe = m->pos_emb + (pos0 + i) * C;
            for (size_t j = 0; j < C; j++)
                xi[j] = te[j] + pe[j];
        } else {
            memcpy(xi, te, C * sizeof *xi);
        }
    }

    for (size_t l = 0; l < L; l++) {
        if (cap && cap->hidden)
            memcpy(cap->hidden + l * n * C, f->x, n * C * sizeof(float));
        /* Attention sublayer. */
        norm(f, f->h, f->x, m->ln1_w + l * C, m->ln1_b ? m->ln1_b + l * C : NULL, n);
        LinMulti qkv;
        qkv.n = 0;
        lin_add(&qkv, &pc, f->q, f->h, m->wq + l * HD * C, m->bq ? m->bq + l * HD : NULL, C, HD,
                0);
        lin_add(&qkv, &pc, f->k, f->h, m->wk + l * KD * C, m->bk ? m->bk + l * KD : NULL, C, KD,
                0);
        lin_add(&qkv, &pc, f->v, f->h, m->wv + l * KD * C, m->bv ? m->bv + l * KD : NULL, C, KD,
                0);
        linear_multi(f, &qkv);
        RowJob rj = {0};
        rj.layer = l;
        rj.pos0 = pos0;
        rows_run(f, ROW_ROPE, n, HD + 2 * KD, &rj);
        /* before any attention method (an SVD of a NaN fails obscurely) */
        if ((s = check_finite(m, f->q, n * HD, HD, (long)l, "a query", &pc, err)) ||
            (s = check_finite(m, f->k, n * KD, KD, (long)l, "a key", &pc, err)) ||
            (s = check_finite(m, f->v, n * KD, KD, (long)l, "a value", &pc, err)))
            return s;
        float *probs = NULL;
        size_t pstride = 0;
        if (cap && cap->attn) {
            pstride = cap->attn_stride;
            probs = cap->attn + l * H * n * pstride;
            memset(probs, 0, H * n * pstride * sizeof(float));
        }
        /* Piece by piece (all pieces in one stage when the hook allows):
         * layer_begin, then the heads. The keys of the pieces are in the
         * cache; count them while the hook runs (restored on error by the
         * caller). */
        for (size_t i = 0; i < np;) {
            size_t i1 = f->attn.pieces_together ? np : i + 1, r0 = 0, pn = 0;
            for (size_t k = i; k < i1; k++) {
                piece_at(&pc, k, &r0, &pn);
                th = clock_now_ns();
                if (f->attn.layer_begin &&
                    (s = f->attn.layer_begin(f->attn.ctx, (int)l, pos0 + r0, pn, f->q + r0 * HD,
                                             err)))
                    return s;
                f->hook_ns += (uint64_t)(clock_now_ns() - th);
            }
            f->len = pos0 + r0 + pn;
            s = attention(f, (int)l, pos0, n, &pc, i, i1, probs, pstride, err);
            f->len = pos0;
            if (s != DRRL_OK)
                return s;
            i = i1;
        }
        /* x += att Wo^T + bo */
        linear_pieces(f, &pc, f->x, f->att, m->wo + l * C * HD, m->bo ? m->bo + l * C : NULL,
                      HD, C, 1);

        /* MLP sublayer. */
        norm(f, f->h, f->x, m->ln2_w + l * C, m->ln2_b ? m->ln2_b + l * C : NULL, n);
        LinMulti up;
        up.n = 0;
        lin_add(&up, &pc, f->f1, f->h, m->w_up + l * F * C, m->b_up ? m->b_up + l * F : NULL, C,
                F, 0);
        if (!gpt2)
            lin_add(&up, &pc, f->f2, f->h, m->w_gate + l * F * C,
                    m->b_gate ? m->b_gate + l * F : NULL, C, F, 0);
        linear_multi(f, &up);
        RowJob aj = {0};
        rows_run(f, ROW_ACT, n, F, &aj);
        /* x += act Wdown^T + bdown */
        linear_pieces(f, &pc, f->x, f->f1, m->w_down + l * C * F,
                      m->b_down ? m->b_down + l * C : NULL, F, C, 1);
        if ((s = check_finite(m, f->x, n * C, C, (long)l, "the hidden state", &pc, err)))
            return s;
    }

    norm(f, f->h, f->x, m->lnf_w, m->lnf_b, n);
    if (cap && cap->hidden)
        memcpy(cap->hidden + L * n * C, f->h, n * C * sizeof(float));
    if (logits) {
        linear_pieces(f, &pc, logits, f->h, m->lm_head, NULL, C, V, 0);
        if ((s = check_finite(m, logits, n * V, V, -1, "a logit", &pc, err)))
            return s;
    }
    f->len = n_keys;
    return DRRL_OK;
}

DrrlStatus forward_tokens(Forward *f, const int32_t *ids, size_t n, float *logits,
                          const ForwardCapture *cap, DrrlError *err)
{
    const ModelConfig *c = &f->m->cfg;
    if (n == 0)
        return DRRL_OK;
    size_t V = (size_t)c->vocab, pos0 = f->len, n_keys = pos0 + n;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= V)
            return drrl_error(err, DRRL_E_USAGE,
                              "token %zu: id %d outside the vocabulary 0..%zu", pos0 + i,
                              ids[i], V - 1);
    if (c->arch == MODEL_ARCH_GPT2 && n_keys > (size_t)c->n_ctx)
        return drrl_error(err, DRRL_E_USAGE,
                          "%zu tokens exceed the model's %d positions (n_positions)", n_keys,
                          c->n_ctx);
    if (cap && cap->attn && cap->attn_stride < n_keys)
        return drrl_error(err, DRRL_E_USAGE, "forward: attention capture stride %zu < %zu keys",
                          cap->attn_stride, n_keys);
    DrrlStatus s = grow_cache(f, n_keys, err);
    if (s == DRRL_OK)
        s = grow_rows(f, n, err);
    if (s != DRRL_OK)
        return s;
    /* Every product runs single-threaded inside the pool (see the top). */
    f->last_n = 0;
    int64_t t0 = clock_now_ns();
    s = run_tokens(f, ids, n, logits, cap, err);
    f->n_calls++, f->call_ns += (uint64_t)(clock_now_ns() - t0);
    if (s != DRRL_OK)
        f->len = pos0;
    else
        f->last_n = n;
    return s;
}

DrrlStatus forward_logits(Forward *f, size_t row0, size_t n, float *logits, DrrlError *err)
{
    const Model *m = f->m;
    size_t C = (size_t)m->cfg.d_model, V = (size_t)m->cfg.vocab;
    if (row0 > f->last_n || n > f->last_n - row0)
        return drrl_error(err, DRRL_E_USAGE,
                          "forward: logits of rows %zu..%zu asked, the last call ran %zu", row0,
                          row0 + n, f->last_n);
    if (n == 0)
        return DRRL_OK;
    linear(f, logits, f->h + row0 * C, m->lm_head, NULL, n, C, V, 0);
    return check_finite(m, logits, n * V, V, -1, "a logit", NULL, err);
}

/* Next-token negative log-likelihood of one logits row: log-sum-exp (max
 * subtracted, exponentials from fastexp_nonpos, the sum in double over eight
 * fixed lanes) minus the target's logit. */
DRRL_HOT static double nll_row(const float *row, size_t V, int32_t target)
{
    float mx = softmax_row_max(row, V);
    double s8[8] = {0};
    size_t j;
    for (j = 0; j + 8 <= V; j += 8)
        for (int u = 0; u < 8; u++)
            s8[u] += fastexp_nonpos(row[j + u] - mx);
    double sum = 0;
    for (int u = 0; u < 8; u++)
        sum += s8[u];
    for (; j < V; j++)
        sum += fastexp_nonpos(row[j] - mx);
    return (log(sum) + (double)mx) - (double)row[target];
}

typedef struct NllJob {
    const float *logits;
    const int32_t *next;
    size_t n, V;
    double *nll;
} NllJob;

#define FORWARD_NLL_ROWS 8

static void nll_task(void *ctx, size_t t, int worker)
{
    (void)worker;
    const NllJob *j = ctx;
    for (size_t i = t * FORWARD_NLL_ROWS; i < j->n && i < (t + 1) * FORWARD_NLL_ROWS; i++)
        j->nll[i] = j->next[i] >= 0 && (size_t)j->next[i] < j->V
                        ? nll_row(j->logits + i * j->V, j->V, j->next[i])
                        : NAN;
}

void forward_nll_rows(Forward *f, const float *logits, const int32_t *next, size_t n,
                      double *nll)
{
    NllJob j = {logits, next, n, (size_t)f->m->cfg.vocab, nll};
    size_t tasks = (n + FORWARD_NLL_ROWS - 1) / FORWARD_NLL_ROWS;
    pool_run(f, FORWARD_STAGE_ROWS, tasks, n * j.V >= FORWARD_PAR_ELEMS ? f->threads : 1,
             nll_task, &j);
}

double forward_loss(const float *logits, const int32_t *ids, size_t n, int vocab)
{
    if (n < 2)
        return 0.0;
    double total = 0;
    size_t V = (size_t)vocab;
    for (size_t i = 0; i + 1 < n; i++) {
        const float *row = logits + i * V;
        float mx;
        double ls = logsumexp_shifted(row, V, &mx);
        total += ((double)mx + ls) - (double)row[ids[i + 1]];
    }
    return total / (double)(n - 1);
}
