/* cmd_train_lm.c: `drrl train-lm`: train a byte-level Llama-style language
 * model on a text file and export it as a Hugging Face model directory; or,
 * with --eval-only, measure a model directory's bits per byte on a text. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "cli/cli.h"
#include "cli/signals.h"
#include "cmd/commands.h"
#include "train/train.h"
#include "model/safetensors.h"
#include "train/train_export.h"

static const char usage[] =
    "usage: drrl train-lm [options] [--out DIR]\n"
    "       drrl train-lm --resume [--checkpoint FILE] [--out DIR] [--max-seconds S]\n"
    "       drrl train-lm --eval-only [--model DIR] [--data FILE] [--ctx N] [--stride N]\n"
    "\n"
    "Train a byte-level Llama-style language model (RoPE, RMSNorm, SwiGLU; vocab\n"
    "256, token = byte) on a text file with AdamW, linear warmup and cosine\n"
    "decay, and write it as a Hugging Face model directory (config.json and\n"
    "model.safetensors, float32) that drrl and transformers load. Training is\n"
    "deterministic for a given seed and OpenBLAS thread count. Ctrl-C saves a\n"
    "checkpoint; --resume continues from it.\n"
    "\n"
    "Data:\n"
    "  --train FILE        training text (default DATA/brown/train.txt)\n"
    "  --valid FILE        validation text (default DATA/brown/valid.txt; 'none')\n"
    "Output:\n"
    "  --out DIR           model directory to write (default drrl-model)\n"
    "  --checkpoint FILE   checkpoint (default DIR.ckpt)\n"
    "  --init DIR          start from the weights of model directory DIR (same\n"
    "                      shape; fresh optimiser state): fine-tuning, e.g. at\n"
    "                      a longer --ctx\n"
    "  --resume            continue from the checkpoint (its options win, except\n"
    "                      --steps, which resets the total: the cosine decay is\n"
    "                      recomputed from the current step)\n"
    "  --force             overwrite an existing checkpoint when not resuming, the\n"
    "                      files of an existing --out directory, a --dump-logits file\n"
    "  --max-seconds S     stop after S seconds (checkpoint saved; resume later)\n"
    "Model:\n"
    "  --layers N (4)  --d-model N (256)  --heads N (8)  --head-dim N (32)\n"
    "  --d-ff N (688)  --untied (separate lm_head)  --rope-theta X (10000)\n"
    "  --max-positions N   max_position_embeddings written (4096)\n"
    "Optimisation:\n"
    "  --batch N (16)  --ctx N (256)  --steps N (2000)  --warmup N (100)\n"
    "  --lr X (2e-3)  --min-lr X (2e-4)  --weight-decay X (0.1)  --clip X (1.0)\n"
    "  --seed N (1)  --eval-every N (200)  --eval-bytes N (131072; 0 = all)\n"
    "  --ckpt-every N (200)  --threads N (drrl's threads; default: online CPUs)\n"
    "Rank-aware training (a model ready for low-rank attention):\n"
    "  --rank-aware        run attention as drrl's engine runs it at rank r: per\n"
    "                      sequence, head and decision segment after the first,\n"
    "                      key/value bases from the Grams of the completed\n"
    "                      segments, r drawn at random each step (bases held\n"
    "                      constant in backward)\n"
    "  --ra-segment N      decision segment (128, the engine's default)\n"
    "  --ra-min-rank N     lowest rank (head_dim/8)  --ra-rank-step N (head_dim/8)\n"
    "  --ra-max-rank N     highest reduced rank drawn (head_dim - 1)\n"
    "  --ra-exact P        probability of rank head_dim (exact) per draw (0.25)\n"
    "  --ra-tail LAMBDA    spectral-tail penalty (0 = off): adds LAMBDA times the\n"
    "                      mean, over the (layer, sequence, head, segment) items\n"
    "                      run at reduced rank r, of ||K(I-P_K)||^2/||K||^2 +\n"
    "                      ||V(I-P_V)||^2/||V||^2 (the segment's rotated keys and\n"
    "                      values outside their rank-r bases; bases constant in\n"
    "                      backward) to the loss, making keys and values low\n"
    "                      rank; progress lines show the mean fractions (tail K,\n"
    "                      V); the train bpb stays the cross-entropy alone\n"
    "Evaluation (--eval-only):\n"
    "  --model DIR         model directory (default DATA/model)\n"
    "  --data FILE         text (default DATA/brown/test.txt)\n"
    "  --ctx N             window length (256, the shipped model's training context)\n"
    "  --stride N          window step; each byte is scored once (default = ctx)\n"
    "  --batch N           windows per forward pass (default 4)\n"
    "  --rope-theta X      evaluate with this RoPE base instead of config.json's\n"
    "  --eval-rank R       run every head at rank R in every decision segment\n"
    "                      (--ra-segment) after the first, bases recomputed each\n"
    "                      segment (0 or head_dim: exact, the default)\n"
    "  --eval-basis B      keys (the engine's key basis, from the key Gram) or qk\n"
    "                      (query-aware: from G_K/tr G_K + G_Q/tr G_Q of the same\n"
    "                      completed segments), to compare bases at equal rank\n"
    "  --dump-logits FILE  also write the logits of the first window as\n"
    "                      safetensors (input_ids I32 [T], logits F32 [T, 256])\n"
    "Other:\n"
    "  -q, --quiet         no progress output\n"
    "  -h, --help          show this help\n"
    "\n"
    "DATA is drrl's data directory ($DRRL_DATA, or the installed one). The\n"
    "shipped Brown split is compressed: run `xz -dk DATA/brown/*.xz` first.\n";

typedef struct Progress {
    int quiet, tty;
    double last_draw;
} Progress;

/* Progress on stderr: a redrawn bar on a terminal (at most 10 times a
 * second), otherwise one line per validation and checkpoint. */
static int on_progress(void *user, const TrainProgress *p)
{
    Progress *pg = user;
    if (pg->quiet)
        return signals_caught() != 0;
    char eta[32], el[32];
    cli_fmt_time(eta, sizeof eta, p->eta_s);
    cli_fmt_time(el, sizeof el, p->elapsed_s);
    double bpb = p->loss / M_LN2;
    char tail[64] = ""; /* --ra-tail: the mean tail fractions beside train bpb */
    if (isfinite(p->tail_k))
        snprintf(tail, sizeof tail, "  tail K %.4f V %.4f", p->tail_k, p->tail_v);
    if (pg->tty && p->event == TRAIN_EVENT_STEP) {
        double now = clock_now_s();
        if (now - pg->last_draw < 0.1 && p->step != p->steps)
            return signals_caught() != 0;
        pg->last_draw = now;
        int width = 24, fill = (int)((double)width * (double)p->step / (double)p->steps);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %ld/%ld loss %.3f (%.3f bpb) lr %.2e %.0f tok/s ETA %s ", bar,
                p->step, p->steps, p->loss, bpb, p->lr, p->tok_per_s, eta);
        if (isfinite(p->tail_k))
            fprintf(stderr, "tail K %.3f V %.3f ", p->tail_k, p->tail_v);
        if (isfinite(p->valid_bpb))
            fprintf(stderr, "val %.3f ", p->valid_bpb);
        fflush(stderr);
    } else if (p->event == TRAIN_EVENT_EVAL) {
        fprintf(stderr,
                "%sstep %ld/%ld  train %.4f bpb%s  valid %.4f bpb  lr %.2e  |g| %.3f  "
                "%.0f tok/s  elapsed %s  ETA %s\n",
                pg->tty ? "\r\033[K" : "", p->step, p->steps, bpb, tail, p->valid_bpb, p->lr,
                p->grad_norm, p->tok_per_s, el, eta);
    } else if (p->event == TRAIN_EVENT_CHECKPOINT && !pg->tty) {
        fprintf(stderr,
                "step %ld/%ld  checkpoint saved  train %.4f bpb%s  %.0f tok/s  elapsed %s\n",
                p->step, p->steps, bpb, tail, p->tok_per_s, el);
    }
    return signals_caught() != 0;
}

/* A missing default data file gets a hint about the compressed copy. */
static int check_text(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    char xz[4096];
    snprintf(xz, sizeof xz, "%s.xz", path);
    if (stat(xz, &st) == 0)
        return cli_error(DRRL_E_INPUT, "%s: not found; decompress it first: xz -dk %s", path,
                         xz);
    return cli_error(DRRL_E_INPUT, "%s: %s", path, strerror(errno));
}

/* Logits of the model on text[0, t) (one sequence) to a safetensors file,
 * for comparison with another implementation (bench/check_hf_logits.py). */
static DrrlStatus dump_logits(TrainModel *m, TrainPool *pool, const uint8_t *text, size_t len,
                              size_t t, const char *path, unsigned flags, DrrlError *err)
{
    if (t > len - 1)
        t = len - 1;
    TrainActs *a;
    DrrlStatus st = train_acts_new(m, 1, t, 0, train_pool_threads(pool), &a, err);
    if (st)
        return st;
    int32_t *ids = malloc(t * sizeof *ids);
    float *logits = malloc(t * TRAIN_VOCAB * sizeof *logits);
    if (!ids || !logits) {
        st = drrl_error(err, DRRL_E_NOMEM, "%s: out of memory", path);
    } else {
        train_model_forward(m, a, pool, text, text + 1, 0, NULL);
        memcpy(logits, train_acts_logits(a), t * TRAIN_VOCAB * sizeof *logits);
        for (size_t i = 0; i < t; i++)
            ids[i] = text[i];
        SafetensorsWriteTensor w[2] = {{.name = "input_ids",
                                        .dtype = SAFETENSORS_I32,
                                        .ndim = 1,
                                        .shape = {t},
                                        .data = ids},
                                       {.name = "logits",
                                        .dtype = SAFETENSORS_F32,
                                        .ndim = 2,
                                        .shape = {t, TRAIN_VOCAB},
                                        .data = logits}};
        st = safetensors_write_flags(path, w, 2, NULL, flags, err);
    }
    free(ids);
    free(logits);
    train_acts_free(a);
    return st;
}

typedef struct EvalRank {
    long segment, rank;
    int basis_qk;
} EvalRank;

static int eval_only(const char *model_dir, const char *data, long ctx, long stride, long batch,
                     long threads, int quiet, const char *dump, int force, double theta,
                     const EvalRank *er)
{
    DrrlError err;
    TrainModel *m = NULL;
    TrainPool *pool = NULL;
    uint8_t *text = NULL;
    size_t len = 0, n = 0;
    double bpb = 0;
    int rc = check_text(data);
    if (rc)
        return rc;
    DrrlStatus st = train_export_load(model_dir, &m, NULL, &err);
    if (!st && theta > 0)
        m->cfg.rope_theta = theta; /* evaluate another RoPE base */
    if (!st)
        st = train_read_text(data, &text, &len, &err);
    if (!st)
        st = train_pool_new((int)threads, &pool, &err);
    if (!st && dump)
        st = dump_logits(m, pool, text, len, (size_t)ctx, dump, force ? FILEIO_FORCE : 0, &err);
    double t0 = clock_now_s();
    if (!st)
        st = train_eval_bpb_rank(m, pool, text, len, (size_t)ctx, (size_t)stride, (size_t)batch,
                                 (size_t)er->segment, (int)er->rank, er->basis_qk, &bpb, &n,
                                 &err);
    if (!st) {
        char how[96] = "";
        if (er->rank > 0 && er->rank < m->cfg.head_dim)
            snprintf(how, sizeof how, ", rank %ld after the first segment of %ld%s", er->rank,
                     er->segment, er->basis_qk ? ", [Q;K] key basis" : "");
        printf("%.4f bpb  (%s, %zu bytes scored, ctx %ld, stride %ld%s, model %s)\n", bpb, data,
               n, ctx, stride ? stride : ctx, how, model_dir);
        if (!quiet)
            fprintf(stderr, "evaluated in %.1f s\n", clock_now_s() - t0);
    }
    train_pool_free(pool);
    train_model_free(m);
    free(text);
    return st ? cli_fail(&err) : CLI_EXIT_OK;
}

/* The model directory OUT (created if missing) may receive config.json and
 * model.safetensors under the output rule (base/fileio.h). Returns the exit
 * code (0 when it may). */
static int check_out_dir(const char *out, unsigned flags, int *created)
{
    *created = mkdir(out, 0755) == 0;
    if (!*created && errno != EEXIST)
        return cli_error(drrl_status_of_write_errno(errno), "%s: cannot create directory: %s",
                         out, strerror(errno));
    DrrlError e;
    DrrlStatus s = DRRL_OK;
    const char *names[2] = {"model.safetensors", "config.json"};
    for (int i = 0; i < 2 && !s; i++) {
        char *p = fileio_join(out, names[i]);
        s = p ? fileio_out_check(p, flags, &e) : drrl_error(&e, DRRL_E_NOMEM, "out of memory");
        free(p);
    }
    return s ? cli_fail(&e) : 0;
}

/* --eval-basis keys|qk */
static int parse_basis(const char *cmd, const CliOpt *o, const char *arg)
{
    if (strcmp(arg, "keys") && strcmp(arg, "qk"))
        return cli_usage_error(cmd, "--eval-basis: '%s' is not keys or qk", arg);
    *(int *)o->dest = strcmp(arg, "qk") == 0;
    return 0;
}

/* The command line of train-lm: the training options and what decides the
 * mode (values -1 / 0: not given). */
typedef struct LmArgs {
    TrainOptions o;
    const char *train, *valid, *out, *ckpt, *model_dir, *data, *dump, *init_dir;
    int resume, force, quiet, evalonly, untied;
    double maxsec, theta;
    EvalRank er;
    long threads, stride, steps, seed, eval_bytes, ra_seg, batch, ctx;
} LmArgs;

static int parse_args(LmArgs *a, int argc, char **argv)
{
    TrainOptions *o = &a->o;
    TrainModelConfig *mc = &o->model;
    const CliOpt opts[] = {
        CLI_FLAG_SHORT("quiet", 'q', &a->quiet),
        CLI_STR("train", &a->train),
        CLI_STR("valid", &a->valid),
        CLI_STR("out", &a->out),
        CLI_STR("checkpoint", &a->ckpt),
        CLI_FLAG("resume", &a->resume),
        CLI_FORCE_OPT(&a->force),
        CLI_DOUBLE("max-seconds", &a->maxsec, 0, 1e9),
        CLI_INT("layers", &mc->n_layer, 1, 64),
        CLI_INT("d-model", &mc->d_model, 2, 8192),
        CLI_INT("heads", &mc->n_head, 1, 256),
        CLI_INT("head-dim", &mc->head_dim, 2, 1024),
        CLI_INT("d-ff", &mc->d_ff, 1, 65536),
        CLI_FLAG("untied", &a->untied),
        CLI_DOUBLE("rope-theta", &a->theta, 1.0001, 1e9),
        CLI_INT("max-positions", &mc->max_positions, 1, 1 << 24),
        CLI_LONG("batch", &a->batch, 1, 4096),
        CLI_LONG("ctx", &a->ctx, 2, 65536),
        CLI_LONG("steps", &a->steps, 1, 100000000),
        CLI_LONG("warmup", &o->warmup, 0, 100000000),
        CLI_DOUBLE("lr", &o->lr, 1e-9, 10),
        CLI_DOUBLE("min-lr", &o->min_lr, 0, 10),
        CLI_DOUBLE("weight-decay", &o->weight_decay, 0, 10),
        CLI_DOUBLE("clip", &o->clip, 0, 1e6),
        CLI_LONG("seed", &a->seed, 0, 0x7fffffffL),
        CLI_LONG("eval-every", &o->eval_every, 0, 100000000),
        CLI_LONG("eval-bytes", &a->eval_bytes, 0, 0x7fffffffL),
        CLI_LONG("ckpt-every", &o->ckpt_every, 0, 100000000),
        CLI_LONG("threads", &a->threads, 1, 1024),
        CLI_FLAG("eval-only", &a->evalonly),
        CLI_MODEL_OPT(&a->model_dir),
        CLI_STR("data", &a->data),
        CLI_LONG("stride", &a->stride, 1, 65536),
        CLI_STR("dump-logits", &a->dump),
        CLI_STR("init", &a->init_dir),
        CLI_FLAG("rank-aware", &o->rank_aware),
        CLI_LONG("ra-segment", &a->ra_seg, 1, 65536),
        CLI_INT("ra-min-rank", &o->ra_r_min, 1, 1024),
        CLI_INT("ra-rank-step", &o->ra_r_step, 1, 1024),
        CLI_DOUBLE("ra-exact", &o->ra_p_exact, 0, 1),
        CLI_DOUBLE("ra-tail", &o->ra_tail, 0, 1e6),
        CLI_LONG("eval-rank", &a->er.rank, 0, 1024),
        CLI_INT("ra-max-rank", &o->ra_r_max, 1, 1024),
        CLI_FN("eval-basis", 1, parse_basis, &a->er.basis_qk, 0),
        CLI_END,
    };
    int r = cli_parse("train-lm", usage, opts, argc, argv, NULL);
    if (r != CLI_GO)
        return r;
    if (a->steps > 0)
        o->steps = a->steps;
    if (a->seed >= 0)
        o->seed = (uint64_t)a->seed;
    if (a->eval_bytes >= 0)
        o->eval_bytes = (size_t)a->eval_bytes;
    if (a->ra_seg > 0)
        o->ra_segment = (size_t)a->ra_seg, a->er.segment = a->ra_seg;
    if (a->batch > 0)
        o->batch = (size_t)a->batch;
    if (a->ctx > 0)
        o->ctx = (size_t)a->ctx;
    if (a->theta > 0)
        mc->rope_theta = a->theta;
    if (a->untied)
        mc->tied = 0;
    return CLI_GO;
}

/* --eval-only: score a model directory on a text. */
static int eval_mode(LmArgs *a)
{
    char *def_a = NULL, *def_b = NULL;
    if (!a->model_dir)
        a->model_dir = def_a = cli_data_path("model");
    if (!a->data)
        a->data = def_b = cli_data_path("brown/test.txt");
    int rc;
    if (!a->model_dir || !a->data)
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    else
        rc = eval_only(a->model_dir, a->data, a->ctx > 0 ? (long)a->o.ctx : 256, a->stride,
                       a->batch > 0 ? (long)a->o.batch : 4, a->threads, a->quiet, a->dump,
                       a->force, a->theta > 0 ? a->o.model.rope_theta : 0.0, &a->er);
    free(def_a);
    free(def_b);
    return rc;
}

/* A new or resumed training session (--init: starting from a model's
 * weights). */
static DrrlStatus open_session(const LmArgs *a, const char *train, const char *valid,
                               TrainSession **s, DrrlError *err)
{
    DrrlStatus st = a->resume
                        ? train_session_resume(a->ckpt, train, valid, (int)a->threads, s, err)
                        : train_session_new(&a->o, train, valid, (int)a->threads, s, err);
    if (!st && a->resume && a->steps > 0 && (st = train_session_set_steps(*s, a->o.steps, err)))
        train_session_free(*s);
    if (!st && !a->resume && a->init_dir) {
        TrainModel *src = NULL;
        st = train_export_load(a->init_dir, &src, NULL, err);
        if (!st)
            st = train_model_copy_params(train_session_model(*s), src, err);
        train_model_free(src);
        if (st)
            train_session_free(*s);
    }
    return st;
}

/* Train, then write the model directory (it always reflects the latest
 * step, even when stopped; a run that failed otherwise, a refused
 * checkpoint path or a NaN, writes nothing). */
static int train_and_write(const LmArgs *a, TrainSession *s, unsigned out_flags)
{
    DrrlError err, err2;
    const TrainOptions *so = train_session_options(s);
    const TrainModelConfig *mc = &so->model;
    Progress pg = {.quiet = a->quiet, .tty = isatty(2)};
    char tail_note[48] = "";
    if (so->ra_tail > 0)
        snprintf(tail_note, sizeof tail_note, ", tail penalty %g", so->ra_tail);
    if (!a->quiet)
        fprintf(stderr,
                "train-lm: %d layers, d_model %d, %d heads x %d, d_ff %d, %s, %zu parameters; "
                "batch %zu x ctx %zu, %ld steps, lr %.2e, seed %llu, %ld threads (%s)%s%s%s\n",
                mc->n_layer, mc->d_model, mc->n_head, mc->head_dim, mc->d_ff,
                mc->tied ? "tied" : "untied", train_session_model(s)->n_params, so->batch,
                so->ctx, so->steps, so->lr, (unsigned long long)so->seed, a->threads,
                train_blas_info(), a->resume ? "; resumed" : "",
                so->rank_aware ? "; rank-aware" : "", tail_note);
    signals_catch(); /* Ctrl-C: stop at the next step, checkpoint saved */
    DrrlStatus st = train_session_run(s, a->ckpt, a->maxsec, on_progress, &pg, &err);
    signals_restore();
    if (pg.tty && !a->quiet)
        fprintf(stderr, "\n");
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"format\":\"pt\",\"drrl_step\":\"%ld\",\"drrl_steps\":\"%ld\","
             "\"drrl_seed\":\"%llu\",\"drrl_train_seconds\":\"%.0f\"}",
             train_session_step(s), so->steps, (unsigned long long)so->seed,
             train_session_elapsed(s));
    DrrlStatus st2 = st && st != DRRL_E_INTERRUPTED
                         ? DRRL_OK
                         : train_export_write(train_session_model(s), a->out, meta,
                                              SAFETENSORS_F32, out_flags, NULL, &err2);
    if (st2)
        return cli_fail(&err2);
    if (st)
        return cli_fail(&err);
    if (!a->quiet)
        fprintf(stderr,
                "train-lm: step %ld/%ld, %.0f s of training; valid %.4f bpb; model in %s%s\n",
                train_session_step(s), so->steps, train_session_elapsed(s),
                train_session_valid_bpb(s), a->out,
                train_session_step(s) < so->steps ? " (not finished: --resume to continue)"
                                                  : "");
    return 0;
}

/* The inputs and outputs checked, then the session trained. */
static int train_mode(LmArgs *a, const char *train, const char *valid, int *out_created)
{
    int rc;
    if (strcmp(valid, "none") == 0)
        valid = NULL;
    if ((rc = check_text(train)) || (valid && (rc = check_text(valid))))
        return rc;
    struct stat sb;
    if (!a->resume && !a->force && stat(a->ckpt, &sb) == 0)
        return cli_error(DRRL_E_EXISTS,
                         "%s: checkpoint exists; --resume to continue it or --force to restart",
                         a->ckpt);
    /* The model directory: its files are replaced only with --force or when
     * resuming (the interrupted run wrote them); checked before training. */
    unsigned out_flags = a->force || a->resume ? FILEIO_FORCE : 0;
    if ((rc = check_out_dir(a->out, out_flags, out_created)))
        return rc;
    DrrlError err;
    TrainSession *s = NULL;
    if (open_session(a, train, valid, &s, &err))
        return cli_fail(&err);
    rc = train_and_write(a, s, out_flags);
    train_session_free(s);
    return rc;
}

int cmd_train_lm(int argc, char **argv)
{
    static LmArgs a;
    memset(&a, 0, sizeof a);
    train_options_default(&a.o);
    a.out = "drrl-model";
    a.er = (EvalRank){128, 0, 0};
    a.threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (a.threads < 1)
        a.threads = 1;
    a.steps = a.seed = a.eval_bytes = a.ra_seg = a.batch = a.ctx = -1;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_GO)
        return rc;
    if (a.evalonly)
        return eval_mode(&a);
    if (a.dump)
        return cli_usage_error("train-lm", "--dump-logits works with --eval-only");
    char *def_a = NULL, *def_b = NULL, *def_ckpt = NULL;
    const char *train = a.train ? a.train : (def_a = cli_data_path("brown/train.txt"));
    const char *valid = a.valid ? a.valid : (def_b = cli_data_path("brown/valid.txt"));
    if (!a.ckpt) {
        size_t n = strlen(a.out) + 6;
        if ((def_ckpt = malloc(n)))
            snprintf(def_ckpt, n, "%s.ckpt", a.out);
        a.ckpt = def_ckpt;
    }
    int out_created = 0;
    if (!train || !valid || !a.ckpt)
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    else
        rc = train_mode(&a, train, valid, &out_created);
    if (rc && out_created)
        rmdir(a.out); /* a failure leaves no empty directory behind */
    free(def_a);
    free(def_b);
    free(def_ckpt);
    return rc;
}
