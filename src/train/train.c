/* train.c: the training loop, validation and checkpoints (see train.h). */
#include "config.h"

#include "base/mem.h"
#include "train/train.h"

#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "base/clock.h"
#include "base/rng.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_LN2
#define M_LN2 0.69314718055994530942
#endif

const char *train_blas_info(void)
{
    static char buf[96];
    snprintf(buf, sizeof buf, "OpenBLAS %s, %d threads", openblas_get_corename(),
             openblas_get_num_threads());
    return buf;
}

void train_options_default(TrainOptions *o)
{
    memset(o, 0, sizeof *o);
    o->model = (TrainModelConfig){.n_layer = 4,
                                  .d_model = 256,
                                  .n_head = 8,
                                  .head_dim = 32,
                                  .d_ff = 688,
                                  .tied = 1,
                                  .rms_eps = 1e-5f,
                                  .rope_theta = 10000.0,
                                  .max_positions = 4096};
    o->batch = 16;
    o->ctx = 256;
    o->steps = 2000;
    o->warmup = 100;
    o->lr = 2e-3;
    o->min_lr = 2e-4;
    o->weight_decay = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->clip = 1.0;
    o->seed = 1;
    o->eval_every = 200;
    o->eval_bytes = 131072;
    o->ckpt_every = 200;
    o->ra_segment = 128;
    o->ra_p_exact = 0.25;
}

double train_lr(const TrainOptions *o, long s)
{
    if (s < o->warmup)
        return o->lr * (double)(s + 1) / (double)o->warmup;
    long span = o->steps - o->warmup;
    double frac = span > 0 ? (double)(s - o->warmup) / (double)span : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * frac));
}

DrrlStatus train_read_text(const char *path, uint8_t **out, size_t *len, DrrlError *err)
{
    char *buf;
    DrrlStatus s = fileio_read_file(path, FILEIO_MAX_TEXT, 0, &buf, len, err);
    if (s)
        return s;
    if (*len == 0) {
        free(buf);
        return drrl_error(err, DRRL_E_INPUT, "%s: empty file", path);
    }
    *out = (uint8_t *)buf;
    return DRRL_OK;
}

struct TrainSession {
    TrainOptions opt;
    TrainModel *model;
    TrainPool *pool;
    TrainActs *acts;
    float *m1, *m2; /* AdamW moments */
    uint8_t *train, *valid;
    size_t train_len, valid_len;
    uint8_t *tok, *tgt; /* (batch * ctx) */
    long step;          /* steps done */
    double elapsed;     /* seconds of training, all sittings */
    double valid_bpb;   /* last validation, NaN if none */
};

void train_session_free(TrainSession *s)
{
    if (!s)
        return;
    train_model_free(s->model);
    train_acts_free(s->acts);
    train_pool_free(s->pool);
    DRRL_FREE(s->m1, s->m2, s->train, s->valid, s->tok, s->tgt, s);
}

DrrlStatus train_session_set_steps(TrainSession *s, long steps, DrrlError *err)
{
    if (steps < s->step || steps < 1)
        return drrl_error(err, DRRL_E_USAGE, "train: --steps %ld is below the %ld steps done",
                          steps, s->step);
    s->opt.steps = steps;
    return DRRL_OK;
}

const TrainOptions *train_session_options(const TrainSession *s)
{
    return &s->opt;
}
TrainModel *train_session_model(TrainSession *s)
{
    return s->model;
}
long train_session_step(const TrainSession *s)
{
    return s->step;
}
double train_session_elapsed(const TrainSession *s)
{
    return s->elapsed;
}
double train_session_valid_bpb(const TrainSession *s)
{
    return s->valid_bpb;
}

static DrrlStatus options_check(const TrainOptions *o, DrrlError *err)
{
    if (o->batch < 1 || o->batch > 4096 || o->ctx < 2 || o->ctx > 65536)
        return drrl_error(err, DRRL_E_USAGE,
                          "train: batch must be 1..4096 and context 2..65536");
    if (o->steps < 1 || o->warmup < 0 || o->eval_every < 0 || o->ckpt_every < 0)
        return drrl_error(err, DRRL_E_USAGE, "train: steps must be positive");
    if (o->rank_aware &&
        (o->ra_segment < 1 || o->ra_r_min < 0 || o->ra_r_step < 0 || o->ra_r_max < 0 ||
         o->ra_r_min > o->model.head_dim || !(o->ra_p_exact >= 0 && o->ra_p_exact <= 1)))
        return drrl_error(err, DRRL_E_USAGE,
                          "train: rank-aware needs segment >= 1, 0 <= r_min <= head_dim, "
                          "step >= 0 and 0 <= p_exact <= 1");
    if (!(o->ra_tail >= 0 && o->ra_tail <= 1e6) || (o->ra_tail > 0 && !o->rank_aware))
        return drrl_error(err, DRRL_E_USAGE,
                          "train: the tail penalty needs rank-aware training and 0..1e6");
    if (!(o->lr > 0) || !(o->min_lr >= 0) || !(o->weight_decay >= 0) ||
        !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) ||
        !(o->clip >= 0))
        return drrl_error(err, DRRL_E_USAGE, "train: bad optimizer hyperparameters");
    return DRRL_OK;
}

/* Everything but the parameters' values and the moments' contents. */
static DrrlStatus session_setup(TrainSession *s, const char *train_path, const char *valid_path,
                                int threads, DrrlError *err)
{
    DrrlStatus st = options_check(&s->opt, err);
    if (st)
        return st;
    st = train_model_new(&s->opt.model, &s->model, err);
    if (st)
        return st;
    st = train_read_text(train_path, &s->train, &s->train_len, err);
    if (st)
        return st;
    if (s->train_len <= s->opt.ctx)
        return drrl_error(err, DRRL_E_INPUT, "%s: %zu bytes, need more than the context %zu",
                          train_path, s->train_len, s->opt.ctx);
    if (valid_path) {
        st = train_read_text(valid_path, &s->valid, &s->valid_len, err);
        if (st)
            return st;
        if (s->valid_len < 2)
            return drrl_error(err, DRRL_E_INPUT, "%s: too short to validate on", valid_path);
    }
    st = train_pool_new(threads, &s->pool, err);
    if (st)
        return st;
    st = train_acts_new(s->model, s->opt.batch, s->opt.ctx, 1, threads, &s->acts, err);
    if (st)
        return st;
    if (s->opt.rank_aware &&
        (st = train_acts_set_lowrank(s->acts, s->model, s->opt.ra_segment, err)))
        return st;
    train_acts_lowrank_tail(s->acts, s->opt.ra_tail);
    size_t n = s->opt.batch * s->opt.ctx;
    s->m1 = calloc(s->model->n_params, sizeof(float));
    s->m2 = calloc(s->model->n_params, sizeof(float));
    s->tok = malloc(n);
    s->tgt = malloc(n);
    if (!s->m1 || !s->m2 || !s->tok || !s->tgt)
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory");
    s->valid_bpb = NAN;
    return DRRL_OK;
}

DrrlStatus train_session_new(const TrainOptions *opt, const char *train_path,
                             const char *valid_path, int threads, TrainSession **out,
                             DrrlError *err)
{
    *out = NULL;
    TrainSession *s = calloc(1, sizeof *s);
    if (!s)
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory");
    s->opt = *opt;
    DrrlStatus st = session_setup(s, train_path, valid_path, threads, err);
    if (st) {
        train_session_free(s);
        return st;
    }
    train_model_init(s->model, opt->seed);
    *out = s;
    return DRRL_OK;
}

/* ---- checkpoints ------------------------------------------------------- */

/* Layout: 8-byte magic, CKPT_NI int64 fields, CKPT_ND doubles (host order,
 * little-endian on the platforms drrl supports), then params, AdamW m and v
 * (n_params float32 each). */
static const char CKPT_MAGIC[8] = {'D', 'R', 'R', 'L', 'T', 'R', 'N', '1'};
enum { CKPT_NI = 24, CKPT_ND = 16 };

static void ckpt_pack(const TrainSession *s, int64_t *iv, double *dv)
{
    const TrainOptions *o = &s->opt;
    const TrainModelConfig *c = &o->model;
    memset(iv, 0, CKPT_NI * sizeof *iv);
    memset(dv, 0, CKPT_ND * sizeof *dv);
    int64_t i[] = {1,
                   c->n_layer,
                   c->d_model,
                   c->n_head,
                   c->head_dim,
                   c->d_ff,
                   c->tied,
                   c->max_positions,
                   (int64_t)o->batch,
                   (int64_t)o->ctx,
                   o->steps,
                   o->warmup,
                   (int64_t)o->seed,
                   o->eval_every,
                   (int64_t)o->eval_bytes,
                   o->ckpt_every,
                   s->step,
                   (int64_t)s->model->n_params,
                   o->rank_aware,
                   (int64_t)o->ra_segment,
                   o->ra_r_min,
                   o->ra_r_step,
                   o->ra_r_max};
    double d[] = {c->rms_eps,   c->rope_theta, o->lr,     o->min_lr, o->weight_decay,
                  o->beta1,     o->beta2,      o->eps,    o->clip,   s->elapsed,
                  s->valid_bpb, o->ra_p_exact, o->ra_tail};
    memcpy(iv, i, sizeof i);
    memcpy(dv, d, sizeof d);
}

static void ckpt_unpack(TrainOptions *o, long *step, double *elapsed, double *vbpb,
                        const int64_t *iv, const double *dv)
{
    TrainModelConfig *c = &o->model;
    c->n_layer = (int)iv[1];
    c->d_model = (int)iv[2];
    c->n_head = (int)iv[3];
    c->head_dim = (int)iv[4];
    c->d_ff = (int)iv[5];
    c->tied = (int)iv[6];
    c->max_positions = (int)iv[7];
    o->batch = (size_t)iv[8];
    o->ctx = (size_t)iv[9];
    o->steps = (long)iv[10];
    o->warmup = (long)iv[11];
    o->seed = (uint64_t)iv[12];
    o->eval_every = (long)iv[13];
    o->eval_bytes = (size_t)iv[14];
    o->ckpt_every = (long)iv[15];
    *step = (long)iv[16];
    /* iv[17] is n_params; older checkpoints hold zeros below: not rank-aware */
    o->rank_aware = (int)iv[18];
    o->ra_segment = iv[19] > 0 ? (size_t)iv[19] : 128;
    o->ra_r_min = (int)iv[20];
    o->ra_r_step = (int)iv[21];
    o->ra_r_max = (int)iv[22];
    o->ra_p_exact = dv[11];
    o->ra_tail = dv[12]; /* 0 in older checkpoints: off */
    c->rms_eps = (float)dv[0];
    c->rope_theta = dv[1];
    o->lr = dv[2];
    o->min_lr = dv[3];
    o->weight_decay = dv[4];
    o->beta1 = dv[5];
    o->beta2 = dv[6];
    o->eps = dv[7];
    o->clip = dv[8];
    *elapsed = dv[9];
    *vbpb = dv[10];
}

DrrlStatus train_session_save(const TrainSession *s, const char *path, DrrlError *err)
{
    /* The checkpoint replaces the previous one (also the one resumed from,
     * which train_session_resume reads without registering it as an input),
     * never one of the texts. */
    FileOut *o;
    DrrlStatus st = fileio_out_open(&o, path, FILEIO_FORCE, err);
    if (st)
        return st;
    FILE *f = fileio_out_stream(o);
    int64_t iv[CKPT_NI];
    double dv[CKPT_ND];
    ckpt_pack(s, iv, dv);
    size_t n = s->model->n_params;
    fwrite(CKPT_MAGIC, 1, 8, f);
    fwrite(iv, sizeof *iv, CKPT_NI, f);
    fwrite(dv, sizeof *dv, CKPT_ND, f);
    fwrite(s->model->params, sizeof(float), n, f);
    fwrite(s->m1, sizeof(float), n, f);
    fwrite(s->m2, sizeof(float), n, f);
    return fileio_out_commit(o, err); /* reports a failed write above */
}

DrrlStatus train_session_resume(const char *path, const char *train_path,
                                const char *valid_path, int threads, TrainSession **out,
                                DrrlError *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return drrl_error(err, errno == ENOENT ? DRRL_E_NOTFOUND : DRRL_E_IO, "%s: %s", path,
                          strerror(errno));
    char magic[8];
    int64_t iv[CKPT_NI];
    double dv[CKPT_ND];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CKPT_MAGIC, 8) != 0) {
        fclose(f);
        return drrl_error(err, DRRL_E_INPUT, "%s: not a drrl training checkpoint (bad magic)",
                          path);
    }
    if (fread(iv, sizeof *iv, CKPT_NI, f) != CKPT_NI ||
        fread(dv, sizeof *dv, CKPT_ND, f) != CKPT_ND) {
        fclose(f);
        return drrl_error(err, DRRL_E_INPUT, "%s: truncated header", path);
    }
    if (iv[0] != 1) {
        fclose(f);
        return drrl_error(err, DRRL_E_INPUT, "%s: checkpoint version %lld, expected 1", path,
                          (long long)iv[0]);
    }
    TrainSession *s = calloc(1, sizeof *s);
    if (!s) {
        fclose(f);
        return drrl_error(err, DRRL_E_NOMEM, "train: out of memory");
    }
    ckpt_unpack(&s->opt, &s->step, &s->elapsed, &s->valid_bpb, iv, dv);
    double vbpb = s->valid_bpb;
    DrrlStatus st = session_setup(s, train_path, valid_path, threads, err);
    if (!st && (int64_t)s->model->n_params != iv[17])
        st = drrl_error(err, DRRL_E_INPUT, "%s: %lld parameters stored, config gives %zu", path,
                        (long long)iv[17], s->model->n_params);
    if (!st && (s->step < 0 || s->step > s->opt.steps))
        st = drrl_error(err, DRRL_E_INPUT, "%s: step %ld outside 0..%ld", path, s->step,
                        s->opt.steps);
    size_t n = st ? 0 : s->model->n_params;
    if (!st &&
        (fread(s->model->params, sizeof(float), n, f) != n ||
         fread(s->m1, sizeof(float), n, f) != n || fread(s->m2, sizeof(float), n, f) != n))
        st = drrl_error(err, DRRL_E_INPUT,
                        "%s: truncated (expected %zu parameters and moments)", path, n);
    if (!st && fgetc(f) != EOF)
        st = drrl_error(err, DRRL_E_INPUT, "%s: trailing bytes after the moments", path);
    for (size_t i = 0; !st && i < n; i++)
        if (!isfinite(s->model->params[i]))
            st = drrl_error(err, DRRL_E_INPUT, "%s: parameter %zu is not finite", path, i);
    fclose(f);
    if (st) {
        train_session_free(s);
        return st;
    }
    s->valid_bpb = vbpb;
    *out = s;
    return DRRL_OK;
}

/* ---- evaluation -------------------------------------------------------- */

DrrlStatus train_eval_bpb(TrainModel *m, TrainPool *pool, const uint8_t *text, size_t len,
                          size_t ctx, size_t stride, size_t batch, double *bpb,
                          size_t *n_scored, DrrlError *err)
{
    return train_eval_bpb_rank(m, pool, text, len, ctx, stride, batch, 128, 0, 0, bpb, n_scored,
                               err);
}

/* Every rank of the acts' table set to r. */
static DrrlStatus eval_set_rank(TrainActs *a, const TrainModel *m, size_t batch, size_t segment,
                                int r, DrrlError *err)
{
    if (r <= 0 || r >= m->cfg.head_dim)
        return DRRL_OK;
    DrrlStatus st = train_acts_set_lowrank(a, m, segment, err);
    if (st)
        return st;
    size_t n_seg;
    int32_t *rk = train_acts_ranks(a, &n_seg);
    size_t cells = (size_t)m->cfg.n_layer * batch * (size_t)m->cfg.n_head * n_seg;
    for (size_t i = 0; i < cells; i++)
        rk[i] = r;
    return DRRL_OK;
}

DrrlStatus train_eval_bpb_rank(TrainModel *m, TrainPool *pool, const uint8_t *text, size_t len,
                               size_t ctx, size_t stride, size_t batch, size_t segment,
                               int rank, int basis_qk, double *bpb, size_t *n_scored,
                               DrrlError *err)
{
    if (len < 2)
        return drrl_error(err, DRRL_E_USAGE, "eval: text shorter than 2 bytes");
    if (ctx > len - 1)
        ctx = len - 1;
    if (stride < 1 || stride > ctx)
        stride = ctx;
    if (batch < 1)
        batch = 1;
    TrainActs *a;
    DrrlStatus st = train_acts_new(m, batch, ctx, 0, train_pool_threads(pool), &a, err);
    if (!st && (st = eval_set_rank(a, m, batch, segment, rank, err)))
        train_acts_free(a);
    if (!st)
        train_acts_lowrank_basis(a, basis_qk);
    if (st)
        return st;
    size_t n = batch * ctx;
    uint8_t *tok = malloc(n), *tgt = malloc(n);
    double *nll = malloc(n * sizeof *nll);
    size_t *starts = malloc(batch * sizeof *starts), *from = malloc(batch * sizeof *from);
    if (!tok || !tgt || !nll || !starts || !from) {
        DRRL_FREE(tok, tgt, nll, starts, from);
        train_acts_free(a);
        return drrl_error(err, DRRL_E_NOMEM, "eval: out of memory");
    }
    /* Targets are bytes 1..len-1; `done` is the last target index scored. */
    size_t done = 0, next = 0;
    double sum = 0.0;
    while (done < len - 1) {
        size_t nb = 0;
        while (nb < batch && done < len - 1) {
            size_t s0 = next + ctx > len - 1 ? len - 1 - ctx : next;
            starts[nb] = s0;
            from[nb] = done - s0; /* window row r predicts target s0 + r + 1 */
            done = s0 + ctx;
            next += stride;
            nb++;
        }
        for (size_t b = 0; b < batch; b++) {
            size_t s0 = starts[b < nb ? b : 0];
            memcpy(tok + b * ctx, text + s0, ctx);
            memcpy(tgt + b * ctx, text + s0 + 1, ctx);
        }
        train_model_forward(m, a, pool, tok, tgt, 0, nll);
        for (size_t b = 0; b < nb; b++)
            for (size_t r = from[b]; r < ctx; r++)
                sum += nll[b * ctx + r];
    }
    DRRL_FREE(tok, tgt, nll, starts, from);
    train_acts_free(a);
    *bpb = sum / ((double)(len - 1) * M_LN2);
    if (n_scored)
        *n_scored = len - 1;
    return DRRL_OK;
}

/* ---- the loop ---------------------------------------------------------- */

static void fill_batch(TrainSession *s, long step)
{
    size_t T = s->opt.ctx, span = s->train_len - T; /* start in [0, span) */
    for (size_t b = 0; b < s->opt.batch; b++) {
        uint64_t r = rng_hash64(rng_hash64(s->opt.seed ^ 0xD1B54A32D192ED03ULL) +
                                (uint64_t)step * 0x10000ULL + b);
        size_t off = (size_t)(r % span);
        memcpy(s->tok + b * T, s->train + off, T);
        memcpy(s->tgt + b * T, s->train + off + 1, T);
    }
}

/* Rank-aware draws for this step (TrainOptions): keyed by (seed, step). */
static void fill_ranks(TrainSession *s, long step)
{
    size_t n_seg;
    int32_t *rk = train_acts_ranks(s->acts, &n_seg);
    if (!rk)
        return;
    const TrainOptions *o = &s->opt;
    int32_t hd = o->model.head_dim, def = hd / 8 > 1 ? hd / 8 : 1;
    int32_t r0 = o->ra_r_min ? o->ra_r_min : def, dr = o->ra_r_step ? o->ra_r_step : def;
    int32_t top = o->ra_r_max > 0 && o->ra_r_max < hd ? o->ra_r_max : hd - 1;
    int32_t n_low = r0 <= top ? (top - r0) / dr + 1 : 0;
    size_t cells = (size_t)o->model.n_layer * o->batch * (size_t)o->model.n_head * n_seg;
    uint64_t key = rng_hash64(rng_hash64(o->seed ^ 0x7A3C5E1F2B4D6987ULL) + (uint64_t)step);
    for (size_t i = 0; i < cells; i++) {
        uint64_t u = rng_hash64(key + (uint64_t)i * 0x9E3779B97F4A7C15ULL);
        double p = (double)(u >> 11) / 9007199254740992.0;
        rk[i] =
            n_low == 0 || p < o->ra_p_exact ? hd : r0 + dr * (int32_t)((u & 0xFFFF) % n_low);
    }
}

static DrrlStatus validate(TrainSession *s, DrrlError *err)
{
    size_t len = s->valid_len;
    if (s->opt.eval_bytes && s->opt.eval_bytes < len)
        len = s->opt.eval_bytes;
    return train_eval_bpb(s->model, s->pool, s->valid, len, s->opt.ctx, s->opt.ctx,
                          s->opt.batch, &s->valid_bpb, NULL, err);
}

DrrlStatus train_session_run(TrainSession *s, const char *ckpt_path, double max_seconds,
                             TrainProgressFn fn, void *user, DrrlError *err)
{
    const TrainOptions *o = &s->opt;
    double t0 = clock_now_s(), elapsed0 = s->elapsed;
    long step0 = s->step;
    TrainProgress pr = {.steps = o->steps, .valid_bpb = NAN, .tail_k = NAN, .tail_v = NAN};
    DrrlStatus st = DRRL_OK;
    int stop = 0;
    /* The checkpoint's path under the output rule before the first step. */
    if (ckpt_path && (st = fileio_out_check(ckpt_path, FILEIO_FORCE, err)))
        return st;
    while (s->step < o->steps) {
        long step = s->step;
        double lr = train_lr(o, step);
        fill_batch(s, step);
        fill_ranks(s, step);
        train_model_zero_grad(s->model);
        double loss = train_model_forward(s->model, s->acts, s->pool, s->tok, s->tgt, 0, NULL);
        loss /= (double)(o->batch * o->ctx);
        double tail_k = NAN, tail_v = NAN;
        if (o->ra_tail > 0 && !isfinite(train_acts_tail(s->acts, NULL, &tail_k, &tail_v)))
            loss = NAN;
        if (!isfinite(loss))
            return drrl_error(err, DRRL_E_NUMERIC,
                              "train: loss is not finite at step %ld (lower --lr?)", step);
        train_model_backward(s->model, s->acts, s->pool, s->tok);
        double gn = train_model_grad_norm(s->model, s->pool);
        float scale = (o->clip > 0 && gn > o->clip) ? (float)(o->clip / gn) : 1.0f;
        TrainAdamW adam = {(float)lr, (float)o->beta1, (float)o->beta2, (float)o->eps,
                           (float)o->weight_decay};
        train_model_adamw(s->model, s->pool, s->m1, s->m2, &adam, step + 1, scale);
        s->step++;
        double now = clock_now_s();
        s->elapsed = elapsed0 + (now - t0);
        double rate = (double)(s->step - step0) * (double)(o->batch * o->ctx) / (now - t0);
        pr = (TrainProgress){TRAIN_EVENT_STEP,
                             s->step,
                             o->steps,
                             loss,
                             lr,
                             gn,
                             rate,
                             s->elapsed,
                             (double)(o->steps - s->step) * (now - t0) /
                                 (double)(s->step - step0),
                             s->valid_bpb,
                             tail_k,
                             tail_v};
        if (fn && fn(user, &pr))
            stop = 1;
        int last = s->step == o->steps;
        int out_of_time = max_seconds > 0 && now - t0 >= max_seconds;
        if (s->valid && ((o->eval_every && s->step % o->eval_every == 0) || last)) {
            st = validate(s, err);
            if (st)
                return st;
            pr.event = TRAIN_EVENT_EVAL;
            pr.valid_bpb = s->valid_bpb;
            if (fn && fn(user, &pr))
                stop = 1;
        }
        if (ckpt_path &&
            (stop || last || out_of_time || (o->ckpt_every && s->step % o->ckpt_every == 0))) {
            st = train_session_save(s, ckpt_path, err);
            if (st)
                return st;
            pr.event = TRAIN_EVENT_CHECKPOINT;
            if (fn)
                fn(user, &pr);
        }
        if (stop)
            return drrl_error(
                err, DRRL_E_INTERRUPTED, "train: interrupted at step %ld; checkpoint saved%s%s",
                s->step, ckpt_path ? " to " : " (none: no path)", ckpt_path ? ckpt_path : "");
        if (out_of_time)
            break;
    }
    return DRRL_OK;
}
