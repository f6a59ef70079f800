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

enum {
    OPT_TRAIN = 256,
    OPT_VALID,
    OPT_OUT,
    OPT_CKPT,
    OPT_RESUME,
    OPT_FORCE,
    OPT_MAXSEC,
    OPT_LAYERS,
    OPT_DMODEL,
    OPT_HEADS,
    OPT_HEADDIM,
    OPT_DFF,
    OPT_UNTIED,
    OPT_THETA,
    OPT_MAXPOS,
    OPT_BATCH,
    OPT_CTX,
    OPT_STEPS,
    OPT_WARMUP,
    OPT_LR,
    OPT_MINLR,
    OPT_WD,
    OPT_CLIP,
    OPT_SEED,
    OPT_EVALEVERY,
    OPT_EVALBYTES,
    OPT_CKPTEVERY,
    OPT_THREADS,
    OPT_EVALONLY,
    OPT_MODEL,
    OPT_DATA,
    OPT_STRIDE,
    OPT_DUMP,
    OPT_INIT,
    OPT_RANKAWARE,
    OPT_RASEG,
    OPT_RAMIN,
    OPT_RASTEP,
    OPT_RAEXACT,
    OPT_EVALRANK,
    OPT_RAMAX,
    OPT_EVALBASIS
};

static const struct option longopts[] = {
    {"train", required_argument, 0, OPT_TRAIN},
    {"valid", required_argument, 0, OPT_VALID},
    {"out", required_argument, 0, OPT_OUT},
    {"checkpoint", required_argument, 0, OPT_CKPT},
    {"resume", no_argument, 0, OPT_RESUME},
    {"force", no_argument, 0, OPT_FORCE},
    {"max-seconds", required_argument, 0, OPT_MAXSEC},
    {"layers", required_argument, 0, OPT_LAYERS},
    {"d-model", required_argument, 0, OPT_DMODEL},
    {"heads", required_argument, 0, OPT_HEADS},
    {"head-dim", required_argument, 0, OPT_HEADDIM},
    {"d-ff", required_argument, 0, OPT_DFF},
    {"untied", no_argument, 0, OPT_UNTIED},
    {"rope-theta", required_argument, 0, OPT_THETA},
    {"max-positions", required_argument, 0, OPT_MAXPOS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"ctx", required_argument, 0, OPT_CTX},
    {"steps", required_argument, 0, OPT_STEPS},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"lr", required_argument, 0, OPT_LR},
    {"min-lr", required_argument, 0, OPT_MINLR},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"clip", required_argument, 0, OPT_CLIP},
    {"seed", required_argument, 0, OPT_SEED},
    {"eval-every", required_argument, 0, OPT_EVALEVERY},
    {"eval-bytes", required_argument, 0, OPT_EVALBYTES},
    {"ckpt-every", required_argument, 0, OPT_CKPTEVERY},
    {"threads", required_argument, 0, OPT_THREADS},
    {"eval-only", no_argument, 0, OPT_EVALONLY},
    {"model", required_argument, 0, OPT_MODEL},
    {"data", required_argument, 0, OPT_DATA},
    {"stride", required_argument, 0, OPT_STRIDE},
    {"dump-logits", required_argument, 0, OPT_DUMP},
    {"init", required_argument, 0, OPT_INIT},
    {"rank-aware", no_argument, 0, OPT_RANKAWARE},
    {"ra-segment", required_argument, 0, OPT_RASEG},
    {"ra-min-rank", required_argument, 0, OPT_RAMIN},
    {"ra-rank-step", required_argument, 0, OPT_RASTEP},
    {"ra-exact", required_argument, 0, OPT_RAEXACT},
    {"eval-rank", required_argument, 0, OPT_EVALRANK},
    {"ra-max-rank", required_argument, 0, OPT_RAMAX},
    {"eval-basis", required_argument, 0, OPT_EVALBASIS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef struct Progress {
    int quiet, tty;
    double last_draw;
} Progress;

static void fmt_time(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

/* Progress on stderr: a redrawn bar on a terminal (at most 10 times a
 * second), otherwise one line per validation and checkpoint. */
static int on_progress(void *user, const TrainProgress *p)
{
    Progress *pg = user;
    if (pg->quiet)
        return signals_caught() != 0;
    char eta[32], el[32];
    fmt_time(eta, sizeof eta, p->eta_s);
    fmt_time(el, sizeof el, p->elapsed_s);
    double bpb = p->loss / M_LN2;
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
        if (isfinite(p->valid_bpb))
            fprintf(stderr, "val %.3f ", p->valid_bpb);
        fflush(stderr);
    } else if (p->event == TRAIN_EVENT_EVAL) {
        fprintf(stderr,
                "%sstep %ld/%ld  train %.4f bpb  valid %.4f bpb  lr %.2e  |g| %.3f  "
                "%.0f tok/s  elapsed %s  ETA %s\n",
                pg->tty ? "\r\033[K" : "", p->step, p->steps, bpb, p->valid_bpb, p->lr,
                p->grad_norm, p->tok_per_s, el, eta);
    } else if (p->event == TRAIN_EVENT_CHECKPOINT && !pg->tty) {
        fprintf(stderr,
                "step %ld/%ld  checkpoint saved  train %.4f bpb  %.0f tok/s  elapsed %s\n",
                p->step, p->steps, bpb, p->tok_per_s, el);
    }
    return signals_caught() != 0;
}

static int parse_l(const char *opt, const char *s, long lo, long hi, long *out)
{
    return cli_parse_long("train-lm", opt, s, lo, hi, out);
}

static int parse_d(const char *opt, const char *s, double lo, double hi, double *out)
{
    return cli_parse_double("train-lm", opt, s, lo, hi, out);
}

static char *default_path(const char *rel)
{
    const char *d = cli_data_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", d, rel);
    return p;
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

int cmd_train_lm(int argc, char **argv)
{
    TrainOptions o;
    train_options_default(&o);
    const char *train = NULL, *valid = NULL, *out = "drrl-model", *ckpt = NULL;
    const char *model_dir = NULL, *data = NULL, *dump = NULL, *init_dir = NULL;
    int resume = 0, steps_set = 0, theta_set = 0, force = 0, quiet = 0, evalonly = 0,
        ctx_set = 0, batch_set = 0;
    double maxsec = 0;
    EvalRank er = {128, 0, 0};
    long threads = sysconf(_SC_NPROCESSORS_ONLN), stride = 0, v;
    double d;
    if (threads < 1)
        threads = 1;
    int c;
    while ((c = cli_getopt("train-lm", argc, argv, "qh", longopts)) != -1) {
        int e = 0;
        switch (c) {
        case 'h':
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        case 'q':
            quiet = 1;
            break;
        case OPT_TRAIN:
            train = optarg;
            break;
        case OPT_VALID:
            valid = optarg;
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_CKPT:
            ckpt = optarg;
            break;
        case OPT_RESUME:
            resume = 1;
            break;
        case OPT_FORCE:
            force = 1;
            break;
        case OPT_EVALONLY:
            evalonly = 1;
            break;
        case OPT_MODEL:
            model_dir = optarg;
            break;
        case OPT_DATA:
            data = optarg;
            break;
        case OPT_DUMP:
            dump = optarg;
            break;
        case OPT_INIT:
            init_dir = optarg;
            break;
        case OPT_RANKAWARE:
            o.rank_aware = 1;
            break;
        case OPT_RASEG:
            e = parse_l("--ra-segment", optarg, 1, 65536, &v);
            if (!e)
                o.ra_segment = (size_t)v, er.segment = v;
            break;
        case OPT_EVALBASIS:
            if (strcmp(optarg, "keys") && strcmp(optarg, "qk"))
                return cli_usage_error("train-lm", "--eval-basis: '%s' is not keys or qk",
                                       optarg);
            er.basis_qk = strcmp(optarg, "qk") == 0;
            break;
        case OPT_RAEXACT:
            e = parse_d("--ra-exact", optarg, 0, 1, &o.ra_p_exact);
            break;
        case OPT_UNTIED:
            o.model.tied = 0;
            break;
        case OPT_MAXSEC:
            e = parse_d("--max-seconds", optarg, 0, 1e9, &maxsec);
            break;
#define INT_OPT(K, NAME, LO, HI, DST)                                                          \
    case K:                                                                                    \
        e = parse_l(NAME, optarg, LO, HI, &v);                                                 \
        if (!e)                                                                                \
            DST = v;                                                                           \
        break;
            INT_OPT(OPT_LAYERS, "--layers", 1, 64, o.model.n_layer)
            INT_OPT(OPT_DMODEL, "--d-model", 2, 8192, o.model.d_model)
            INT_OPT(OPT_HEADS, "--heads", 1, 256, o.model.n_head)
            INT_OPT(OPT_HEADDIM, "--head-dim", 2, 1024, o.model.head_dim)
            INT_OPT(OPT_DFF, "--d-ff", 1, 65536, o.model.d_ff)
            INT_OPT(OPT_MAXPOS, "--max-positions", 1, 1 << 24, o.model.max_positions)
        case OPT_STEPS:
            e = parse_l("--steps", optarg, 1, 100000000, &v);
            if (!e)
                o.steps = v, steps_set = 1;
            break;
            INT_OPT(OPT_WARMUP, "--warmup", 0, 100000000, o.warmup)
            INT_OPT(OPT_SEED, "--seed", 0, 0x7fffffffL, o.seed)
            INT_OPT(OPT_EVALEVERY, "--eval-every", 0, 100000000, o.eval_every)
            INT_OPT(OPT_EVALBYTES, "--eval-bytes", 0, 0x7fffffffL, o.eval_bytes)
            INT_OPT(OPT_CKPTEVERY, "--ckpt-every", 0, 100000000, o.ckpt_every)
            INT_OPT(OPT_THREADS, "--threads", 1, 1024, threads)
            INT_OPT(OPT_STRIDE, "--stride", 1, 65536, stride)
            INT_OPT(OPT_RAMIN, "--ra-min-rank", 1, 1024, o.ra_r_min)
            INT_OPT(OPT_RASTEP, "--ra-rank-step", 1, 1024, o.ra_r_step)
            INT_OPT(OPT_RAMAX, "--ra-max-rank", 1, 1024, o.ra_r_max)
            INT_OPT(OPT_EVALRANK, "--eval-rank", 0, 1024, er.rank)
#undef INT_OPT
        case OPT_BATCH:
            e = parse_l("--batch", optarg, 1, 4096, &v);
            if (!e)
                o.batch = (size_t)v, batch_set = 1;
            break;
        case OPT_CTX:
            e = parse_l("--ctx", optarg, 2, 65536, &v);
            if (!e)
                o.ctx = (size_t)v, ctx_set = 1;
            break;
        case OPT_THETA:
            e = parse_d("--rope-theta", optarg, 1.0001, 1e9, &o.model.rope_theta);
            theta_set = 1;
            break;
        case OPT_LR:
            e = parse_d("--lr", optarg, 1e-9, 10, &o.lr);
            break;
        case OPT_MINLR:
            e = parse_d("--min-lr", optarg, 0, 10, &o.min_lr);
            break;
        case OPT_WD:
            e = parse_d("--weight-decay", optarg, 0, 10, &o.weight_decay);
            break;
        case OPT_CLIP:
            e = parse_d("--clip", optarg, 0, 1e6, &o.clip);
            break;
        default:
            return CLI_EXIT_USAGE;
        }
        if (e)
            return e;
    }
    if (optind < argc)
        return cli_usage_error("train-lm", "unexpected argument '%s'", argv[optind]);
    (void)d;

    char *def_a = NULL, *def_b = NULL, *def_ckpt = NULL;
    int rc = CLI_EXIT_OK, out_created = 0;
    if (evalonly) {
        if (!model_dir)
            model_dir = def_a = default_path("model");
        if (!data)
            data = def_b = default_path("brown/test.txt");
        if (!model_dir || !data)
            return cli_error(DRRL_E_NOMEM, "out of memory");
        rc = eval_only(model_dir, data, ctx_set ? (long)o.ctx : 256, stride,
                       batch_set ? (long)o.batch : 4, threads, quiet, dump, force,
                       theta_set ? o.model.rope_theta : 0.0, &er);
        free(def_a);
        free(def_b);
        return rc;
    }
    if (dump)
        return cli_usage_error("train-lm", "--dump-logits works with --eval-only");
    if (!train)
        train = def_a = default_path("brown/train.txt");
    if (!valid)
        valid = def_b = default_path("brown/valid.txt");
    if (!ckpt) {
        size_t n = strlen(out) + 6;
        def_ckpt = malloc(n);
        if (def_ckpt)
            snprintf(def_ckpt, n, "%s.ckpt", out);
        ckpt = def_ckpt;
    }
    if (!train || !valid || !ckpt) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
        goto done;
    }
    if (strcmp(valid, "none") == 0)
        valid = NULL;
    if ((rc = check_text(train)) || (valid && (rc = check_text(valid))))
        goto done;
    struct stat sb;
    if (!resume && !force && stat(ckpt, &sb) == 0) {
        rc = cli_error(DRRL_E_EXISTS,
                       "%s: checkpoint exists; --resume to continue it or --force to restart",
                       ckpt);
        goto done;
    }
    /* The model directory: its files are replaced only with --force or when
     * resuming (the interrupted run wrote them); checked before training. */
    unsigned out_flags = force || resume ? FILEIO_FORCE : 0;
    if ((rc = check_out_dir(out, out_flags, &out_created)))
        goto done;

    DrrlError err;
    TrainSession *s = NULL;
    DrrlStatus st = resume ? train_session_resume(ckpt, train, valid, (int)threads, &s, &err)
                           : train_session_new(&o, train, valid, (int)threads, &s, &err);
    if (!st && resume && steps_set && (st = train_session_set_steps(s, o.steps, &err)))
        train_session_free(s);
    if (!st && !resume && init_dir) {
        TrainModel *src = NULL;
        st = train_export_load(init_dir, &src, NULL, &err);
        if (!st)
            st = train_model_copy_params(train_session_model(s), src, &err);
        train_model_free(src);
        if (st)
            train_session_free(s);
    }
    if (st) {
        rc = cli_fail(&err);
        goto done;
    }
    const TrainOptions *so = train_session_options(s);
    const TrainModelConfig *mc = &so->model;
    Progress pg = {.quiet = quiet, .tty = isatty(2)};
    if (!quiet)
        fprintf(stderr,
                "train-lm: %d layers, d_model %d, %d heads x %d, d_ff %d, %s, %zu parameters; "
                "batch %zu x ctx %zu, %ld steps, lr %.2e, seed %llu, %ld threads (%s)%s%s\n",
                mc->n_layer, mc->d_model, mc->n_head, mc->head_dim, mc->d_ff,
                mc->tied ? "tied" : "untied", train_session_model(s)->n_params, so->batch,
                so->ctx, so->steps, so->lr, (unsigned long long)so->seed, threads,
                train_blas_info(), resume ? "; resumed" : "",
                so->rank_aware ? "; rank-aware" : "");
    signals_catch(); /* Ctrl-C: stop at the next step, checkpoint saved */
    st = train_session_run(s, ckpt, maxsec, on_progress, &pg, &err);
    signals_restore();
    if (pg.tty && !quiet)
        fprintf(stderr, "\n");
    DrrlError err2;
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"format\":\"pt\",\"drrl_step\":\"%ld\",\"drrl_steps\":\"%ld\","
             "\"drrl_seed\":\"%llu\",\"drrl_train_seconds\":\"%.0f\"}",
             train_session_step(s), so->steps, (unsigned long long)so->seed,
             train_session_elapsed(s));
    /* The model directory always reflects the latest step, even when stopped;
     * a run that failed otherwise (a refused checkpoint path, a NaN) writes
     * nothing. */
    DrrlStatus st2 = st && st != DRRL_E_INTERRUPTED
                         ? DRRL_OK
                         : train_export_write(train_session_model(s), out, meta,
                                              SAFETENSORS_F32, out_flags, NULL, &err2);
    if (st2) {
        rc = cli_fail(&err2);
    } else if (st) {
        rc = cli_fail(&err);
    } else if (!quiet) {
        fprintf(stderr,
                "train-lm: step %ld/%ld, %.0f s of training; valid %.4f bpb; model in %s%s\n",
                train_session_step(s), so->steps, train_session_elapsed(s),
                train_session_valid_bpb(s), out,
                train_session_step(s) < so->steps ? " (not finished: --resume to continue)"
                                                  : "");
    }
    train_session_free(s);
done:
    if (rc && out_created)
        rmdir(out); /* a failure leaves no empty directory behind */
    free(def_a);
    free(def_b);
    free(def_ckpt);
    return rc;
}
