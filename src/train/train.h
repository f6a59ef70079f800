/* train.h: the training loop of `drrl train-lm`: byte-level language
 * modelling on a text file, AdamW with linear warmup and cosine decay,
 * gradient clipping, validation bits per byte, atomic checkpoints, resume.
 *
 * Determinism: with the same options, data and seed, and the same OpenBLAS
 * thread count, training is bit-for-bit reproducible, including across a
 * checkpoint and --resume. drrl's own kernels give the same bits for any
 * number of threads (train_pool.h); OpenBLAS sgemm splits its work by its
 * thread count, so a different OPENBLAS thread count may change the last
 * bits. Batches are drawn from a generator keyed by (seed, step), so
 * resuming needs no generator state.
 *
 * The engine never prints: progress goes to a callback.
 */
#ifndef DRRL_TRAIN_H
#define DRRL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "train/train_model.h"
#include "train/train_pool.h"

typedef struct TrainOptions {
    TrainModelConfig model;
    size_t batch;      /* sequences per step */
    size_t ctx;        /* bytes per training sequence */
    long steps;        /* total optimizer steps */
    long warmup;       /* linear warmup steps */
    double lr, min_lr; /* peak and final learning rates (cosine) */
    double weight_decay, beta1, beta2, eps, clip;
    uint64_t seed;
    long eval_every;   /* steps between validations (0: only at the end) */
    size_t eval_bytes; /* bytes of the validation text used (0: all) */
    long ckpt_every;   /* steps between checkpoints (0: only at the end) */
    /* Rank-aware training (train_ops.h, TrainLowRank): each step draws, for
     * every (layer, sequence, head, decision segment after the first), rank
     * head_dim with probability ra_p_exact, else a rank uniformly from the
     * grid ra_r_min, ra_r_min + ra_r_step, ... below head_dim (the engine's
     * grid) and at most ra_r_max; draws are keyed by (seed, step), so resuming needs no state.
     */
    int rank_aware;
    size_t ra_segment;       /* decision segment (128, the engine's default) */
    int ra_r_min, ra_r_step; /* 0: head_dim / 8 each (the engine's default grid) */
    int ra_r_max;            /* highest reduced rank drawn (0: any below head_dim) */
    double ra_p_exact;       /* 0.25 */
    /* Spectral-tail penalty (needs rank_aware; 0: off): the loss gains
     * ra_tail * mean over the active (layer, sequence, head, segment) items
     * of ||K_s (I - P_K)||^2 / ||K_s||^2 + ||V_s (I - P_V)||^2 / ||V_s||^2
     * (train_acts_lowrank_tail), pushing keys and values towards rank r. */
    double ra_tail;
} TrainOptions;

/* The defaults of `drrl train-lm` (a 4-layer, 256-wide model). */
void train_options_default(TrainOptions *o);

/* Learning rate at 0-based step s: linear warmup from lr/warmup to lr over
 * `warmup` steps, then cosine decay to min_lr at `steps` (Loshchilov & Hutter
 * 2017, SGDR, eq. 5 without restarts). */
double train_lr(const TrainOptions *o, long s);

enum { TRAIN_EVENT_STEP, TRAIN_EVENT_EVAL, TRAIN_EVENT_CHECKPOINT };

typedef struct TrainProgress {
    int event;             /* TRAIN_EVENT_* */
    long step, steps;      /* steps done, total */
    double loss;           /* last step's training loss, nats per byte */
    double lr, grad_norm;  /* grad_norm before clipping */
    double tok_per_s;      /* over this sitting */
    double elapsed_s;      /* training time, all sittings */
    double eta_s;          /* remaining, at this sitting's speed */
    double valid_bpb;      /* on TRAIN_EVENT_EVAL */
    double tail_k, tail_v; /* last step's mean tail fractions (ra_tail > 0), else NaN */
} TrainProgress;

/* Return nonzero to stop: the loop then saves a checkpoint and returns
 * DRRL_E_INTERRUPTED. */
typedef int (*TrainProgressFn)(void *user, const TrainProgress *p);

typedef struct TrainSession TrainSession;

/* "OpenBLAS <core>, <n> threads": which kernels and thread count sgemm uses
 * (static string). */
const char *train_blas_info(void);

/* Read a whole text file as bytes. Errors: DRRL_E_NOTFOUND, DRRL_E_IO,
 * DRRL_E_NOMEM, DRRL_E_INPUT (empty). The caller frees *out. */
DrrlStatus train_read_text(const char *path, uint8_t **out, size_t *len, DrrlError *err);

/* A new run from options (model initialised from opt->seed), or a resumed one
 * from a checkpoint (options come from the checkpoint). train_path must hold
 * more than ctx bytes; valid_path may be NULL (no validation). threads: drrl's
 * own worker threads (OpenBLAS's are set by OPENBLAS_NUM_THREADS). */
DrrlStatus train_session_new(const TrainOptions *opt, const char *train_path,
                             const char *valid_path, int threads, TrainSession **out,
                             DrrlError *err);
DrrlStatus train_session_resume(const char *ckpt_path, const char *train_path,
                                const char *valid_path, int threads, TrainSession **out,
                                DrrlError *err);
void train_session_free(TrainSession *s);

/* Change the total step count of a (resumed) run: the cosine schedule is
 * recomputed for the new total from the current step on. steps must be at
 * least the steps already done. Errors: DRRL_E_USAGE. */
DrrlStatus train_session_set_steps(TrainSession *s, long steps, DrrlError *err);

const TrainOptions *train_session_options(const TrainSession *s);
TrainModel *train_session_model(TrainSession *s);
long train_session_step(const TrainSession *s);
double train_session_elapsed(const TrainSession *s);
double train_session_valid_bpb(const TrainSession *s); /* last; NaN if none */

/* Train until opt->steps, or until max_seconds of this sitting have passed
 * (0: no limit), saving checkpoints to ckpt_path every ckpt_every steps and
 * at the end. Returns DRRL_OK (done or out of time: check
 * train_session_step), DRRL_E_INTERRUPTED (callback asked to stop;
 * checkpoint saved), or an error. */
DrrlStatus train_session_run(TrainSession *s, const char *ckpt_path, double max_seconds,
                             TrainProgressFn fn, void *user, DrrlError *err);

/* Atomic checkpoint: model, AdamW moments, options, step (tmp + rename). */
DrrlStatus train_session_save(const TrainSession *s, const char *ckpt_path, DrrlError *err);

/* Bits per byte of model on text: windows of ctx bytes advancing by stride
 * (1 <= stride <= ctx); each byte after the first is predicted once, from the
 * window that first reaches it (so with stride < ctx every byte after the
 * first window sees at least ctx - stride bytes of context). batch windows go
 * through one forward pass. *n_scored receives the number of bytes scored
 * (len - 1). Errors: DRRL_E_USAGE, DRRL_E_NOMEM. */
DrrlStatus train_eval_bpb(TrainModel *m, TrainPool *pool, const uint8_t *text, size_t len,
                          size_t ctx, size_t stride, size_t batch, double *bpb,
                          size_t *n_scored, DrrlError *err);

/* The same with every head of every layer at rank `rank` in each decision
 * segment of `segment` rows after the first (rank-aware attention as the
 * engine runs it, bases recomputed every segment); rank 0 or >= head_dim:
 * exact (train_eval_bpb). basis_qk: the query-aware key basis
 * (TrainLowRank.key_basis_qk) instead of the engine's. */
DrrlStatus train_eval_bpb_rank(TrainModel *m, TrainPool *pool, const uint8_t *text, size_t len,
                               size_t ctx, size_t stride, size_t batch, size_t segment,
                               int rank, int basis_qk, double *bpb, size_t *n_scored,
                               DrrlError *err);

#endif
