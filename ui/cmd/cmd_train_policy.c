/* cmd_train_policy.c: `drrl train-policy`: train the DR-RL rank policy with
 * PPO on a frozen model (src/policy/policy_train.h) and write a policy file. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/signals.h"
#include "cmd/commands.h"
#include "model/model.h"
#include "policy/policy_train.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl train-policy [--model DIR] [--data FILE] --out POLICY [--budget B]\n"
    "                         [--steps N] [--seed N] [--resume POLICY] [options]\n"
    "\n"
    "Train the DR-RL rank policy with PPO on a frozen model: each step runs\n"
    "episodes of text through the model with the attention core choosing, per\n"
    "(layer, head, segment), the rank the policy samples under the safety mask;\n"
    "rewards come from the core's measurements (fidelity of the head outputs\n"
    "against exact attention, executed FLOPs, rank-transition band energy).\n"
    "The policy file (safetensors + JSON metadata) is written atomically at\n"
    "every checkpoint and at the end; it holds the optimiser and generator\n"
    "state, so --resume continues exactly. Training is deterministic for a\n"
    "seed and thread count. Ctrl-C saves a checkpoint.\n"
    "\n"
    "Input and output:\n"
    "  --model DIR         model directory (default DATA/model)\n"
    "  --data FILE         training text (default DATA/brown/train.txt)\n"
    "  --out POLICY        policy file to write (required)\n"
    "  --resume POLICY     continue from a checkpoint (may equal --out)\n"
    "  --force             overwrite an existing --out when not resuming from it\n"
    "  --max-tokens N      use the first N tokens of the text (default all)\n"
    "Training:\n"
    "  --steps N           total PPO steps (50)\n"
    "  --seed N            seed of every random draw (0)\n"
    "  --budget B|LO:HI    FLOP budget (fraction of exact attention FLOPs) or a\n"
    "                      range sampled per episode (0.3:1.0)\n"
    "  --segment T         decision segment length (128)\n"
    "  --episode-len N     tokens per episode, a multiple of T (8 T)\n"
    "  --episodes N        episodes per PPO step (4)\n"
    "  --rank-min R --rank-step S  rank grid {R, R+S, ..., head_dim} (head_dim/8 each)\n"
    "Reward (paper defaults):\n"
    "  --alpha X (1.0)  --beta X (0.05)  --gamma X (0.1)\n"
    "  --kappa X           weight of the budget overshoot (1.0)\n"
    "  --lm-reward X       weight of the change in next-token log-likelihood\n"
    "                      (0: off; on runs an exact forward beside)\n"
    "Safety mask: eps_t = max(FLOOR, START * DECAY^step)\n"
    "  --eps-start X (1.0)  --eps-floor X (0.25)  --eps-decay X (0.97)\n"
    "PPO:\n"
    "  --lr X (1e-3)  --epochs N (4)  --minibatch N (16)  --clip X (0.2)\n"
    "  --ent-coef X (0.02)  --value-coef X (0.5)  --discount X (0.9)  --gae-lambda X (0.95)\n"
    "Other:\n"
    "  --ckpt-every N      steps between checkpoints (10; 0 = only at the end)\n"
    "  --threads N         forward worker threads (default: online CPUs)\n"
    "  -q, --quiet         no progress output\n"
    "  -h, --help          show this help\n"
    "\n"
    "DATA is drrl's data directory ($DRRL_DATA, or the installed one).\n";

enum {
    OPT_MODEL = 256,
    OPT_DATA,
    OPT_OUT,
    OPT_RESUME,
    OPT_FORCE,
    OPT_MAXTOK,
    OPT_STEPS,
    OPT_SEED,
    OPT_BUDGET,
    OPT_SEGMENT,
    OPT_EPLEN,
    OPT_EPISODES,
    OPT_RMIN,
    OPT_RSTEP,
    OPT_ALPHA,
    OPT_BETA,
    OPT_GAMMA,
    OPT_KAPPA,
    OPT_LM,
    OPT_EPS0,
    OPT_EPSF,
    OPT_EPSD,
    OPT_LR,
    OPT_EPOCHS,
    OPT_MB,
    OPT_CLIP,
    OPT_ENT,
    OPT_VCOEF,
    OPT_DISC,
    OPT_GAE,
    OPT_CKPT,
    OPT_THREADS
};

static const struct option longopts[] = {
    {"model", required_argument, 0, OPT_MODEL},
    {"data", required_argument, 0, OPT_DATA},
    {"out", required_argument, 0, OPT_OUT},
    {"resume", required_argument, 0, OPT_RESUME},
    {"force", no_argument, 0, OPT_FORCE},
    {"max-tokens", required_argument, 0, OPT_MAXTOK},
    {"steps", required_argument, 0, OPT_STEPS},
    {"seed", required_argument, 0, OPT_SEED},
    {"budget", required_argument, 0, OPT_BUDGET},
    {"segment", required_argument, 0, OPT_SEGMENT},
    {"episode-len", required_argument, 0, OPT_EPLEN},
    {"episodes", required_argument, 0, OPT_EPISODES},
    {"rank-min", required_argument, 0, OPT_RMIN},
    {"rank-step", required_argument, 0, OPT_RSTEP},
    {"alpha", required_argument, 0, OPT_ALPHA},
    {"beta", required_argument, 0, OPT_BETA},
    {"gamma", required_argument, 0, OPT_GAMMA},
    {"kappa", required_argument, 0, OPT_KAPPA},
    {"lm-reward", required_argument, 0, OPT_LM},
    {"eps-start", required_argument, 0, OPT_EPS0},
    {"eps-floor", required_argument, 0, OPT_EPSF},
    {"eps-decay", required_argument, 0, OPT_EPSD},
    {"lr", required_argument, 0, OPT_LR},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"minibatch", required_argument, 0, OPT_MB},
    {"clip", required_argument, 0, OPT_CLIP},
    {"ent-coef", required_argument, 0, OPT_ENT},
    {"value-coef", required_argument, 0, OPT_VCOEF},
    {"discount", required_argument, 0, OPT_DISC},
    {"gae-lambda", required_argument, 0, OPT_GAE},
    {"ckpt-every", required_argument, 0, OPT_CKPT},
    {"threads", required_argument, 0, OPT_THREADS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef struct Progress {
    int quiet, tty;
    const char *warn; /* printed once, at the first step */
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

/* One redrawn line on a terminal, one line per step otherwise. */
static int on_progress(void *user, const PolicyTrainProgress *p)
{
    Progress *pg = user;
    if (pg->warn && pg->warn[0]) {
        fprintf(stderr, "drrl: warning: %s\n", pg->warn);
        pg->warn = NULL;
    }
    if (pg->quiet)
        return signals_caught() != 0;
    static double first_wall = -1;
    static int64_t first_step;
    if (first_wall < 0)
        first_wall = p->wall_s, first_step = p->step - 1;
    double per = (p->step - first_step) > 0 ? p->wall_s / (double)(p->step - first_step) : 0;
    char eta[32];
    fmt_time(eta, sizeof eta, per * (double)(p->steps - p->step));
    char bar[32];
    int width = 20, fill = (int)((double)width * (double)p->step / (double)p->steps);
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr,
            "%s[%s] %lld/%lld reward %.4f (fid %.4f flops %.3f band %.3f over %.3f) "
            "attn savings %.1f%% ent %.2f eps %.2f ETA %s%s",
            pg->tty ? "\r\033[K" : "", bar, (long long)p->step, (long long)p->steps, p->reward,
            p->fidelity, p->flops_frac, p->band, p->budget_excess, 100.0 * p->attn_savings,
            p->entropy, p->eps, eta, p->checkpoint ? " [saved]" : "");
    if (!pg->tty || p->step == p->steps)
        fputc('\n', stderr);
    fflush(stderr);
    return signals_caught() != 0;
}

/* The engine's view of the MPI job (cli/dist.h): moving bytes only. */
static DrrlStatus dist_cb(void *ctx, const void *mine, size_t n, void **all, size_t *counts,
                          DrrlError *err)
{
    (void)ctx;
    return dist_allgather(mine, n, all, counts, err);
}

static char *data_path(const char *rel)
{
    const char *d = cli_data_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", d, rel);
    return p;
}

static int parse_budget(const char *s, double *lo, double *hi)
{
    char *end;
    errno = 0;
    double a = strtod(s, &end), b = a;
    if (end != s && *end == ':') {
        const char *t = end + 1;
        b = strtod(t, &end);
        if (end == t)
            end = (char *)t - 1; /* force failure */
    }
    if (errno || end == s || *end || !(a > 0 && a <= b && b <= 1))
        return cli_usage_error("train-policy",
                               "--budget '%s': expected B or LO:HI with 0 < LO <= HI <= 1", s);
    *lo = a, *hi = b;
    return 0;
}

int cmd_train_policy(int argc, char **argv)
{
    const char *model_dir = NULL, *data = NULL, *out = NULL, *resume = NULL;
    int force = 0, quiet = 0;
    long maxtok = 0;
    PolicyTrainConfig cfg;
    policy_train_config_default(&cfg);
    int c;
    long v;
    double d;
    cli_getopt_reset();
#define L(opt, lo, hi, dst)                                                                    \
    do {                                                                                       \
        if (cli_parse_long("train-policy", opt, optarg, lo, hi, &v))                           \
            return CLI_EXIT_USAGE;                                                             \
        dst = v;                                                                               \
    } while (0)
#define D(opt, lo, hi, dst)                                                                    \
    do {                                                                                       \
        if (cli_parse_double("train-policy", opt, optarg, lo, hi, &d))                         \
            return CLI_EXIT_USAGE;                                                             \
        dst = d;                                                                               \
    } while (0)
    while ((c = cli_getopt("train-policy", argc, argv, "qh", longopts)) != -1) {
        switch (c) {
        case OPT_MODEL:
            model_dir = optarg;
            break;
        case OPT_DATA:
            data = optarg;
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_RESUME:
            resume = optarg;
            break;
        case OPT_FORCE:
            force = 1;
            break;
        case OPT_MAXTOK:
            L("--max-tokens", 1, 1L << 40, maxtok);
            break;
        case OPT_STEPS:
            L("--steps", 1, 100000000, cfg.steps);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return cli_usage_error("train-policy", "--seed '%s': expected an integer",
                                       optarg);
            cfg.seed = s;
            break;
        }
        case OPT_BUDGET:
            if (parse_budget(optarg, &cfg.budget_lo, &cfg.budget_hi))
                return CLI_EXIT_USAGE;
            break;
        case OPT_SEGMENT:
            L("--segment", 1, 1 << 20, cfg.segment);
            break;
        case OPT_EPLEN:
            L("--episode-len", 2, 1 << 24, cfg.episode_len);
            break;
        case OPT_EPISODES:
            L("--episodes", 1, 1 << 20, cfg.episodes);
            break;
        case OPT_RMIN:
            L("--rank-min", 1, 4096, cfg.r_min);
            break;
        case OPT_RSTEP:
            L("--rank-step", 1, 4096, cfg.r_step);
            break;
        case OPT_ALPHA:
            D("--alpha", -1e6, 1e6, cfg.reward.alpha);
            break;
        case OPT_BETA:
            D("--beta", -1e6, 1e6, cfg.reward.beta);
            break;
        case OPT_GAMMA:
            D("--gamma", -1e6, 1e6, cfg.reward.gamma);
            break;
        case OPT_KAPPA:
            D("--kappa", -1e6, 1e6, cfg.reward.kappa);
            break;
        case OPT_LM:
            D("--lm-reward", -1e6, 1e6, cfg.reward.lm);
            break;
        case OPT_EPS0:
            D("--eps-start", 0, 1e30, cfg.eps_start);
            break;
        case OPT_EPSF:
            D("--eps-floor", 0, 1e30, cfg.eps_floor);
            break;
        case OPT_EPSD:
            D("--eps-decay", 0, 1, cfg.eps_decay);
            break;
        case OPT_LR:
            D("--lr", 0, 1, cfg.ppo.lr);
            break;
        case OPT_EPOCHS:
            L("--epochs", 1, 1000, cfg.ppo.epochs);
            break;
        case OPT_MB:
            L("--minibatch", 1, 1 << 20, cfg.ppo.minibatch);
            break;
        case OPT_CLIP:
            D("--clip", 0, 10, cfg.ppo.clip);
            break;
        case OPT_ENT:
            D("--ent-coef", 0, 100, cfg.ppo.ent_coef);
            break;
        case OPT_VCOEF:
            D("--value-coef", 0, 100, cfg.ppo.value_coef);
            break;
        case OPT_DISC:
            D("--discount", 0, 1, cfg.ppo.discount);
            break;
        case OPT_GAE:
            D("--gae-lambda", 0, 1, cfg.ppo.gae_lambda);
            break;
        case OPT_CKPT:
            L("--ckpt-every", 0, 1L << 40, cfg.checkpoint_every);
            break;
        case OPT_THREADS:
            L("--threads", 1, 1024, cfg.threads);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        case '?':
            return CLI_EXIT_USAGE;
        default:
            return CLI_EXIT_USAGE;
        }
    }
#undef L
#undef D
    if (optind < argc)
        return cli_usage_error("train-policy", "unexpected argument '%s'", argv[optind]);
    if (!out)
        return cli_usage_error("train-policy", "--out POLICY is required");
    struct stat sb, rb;
    int same = resume && stat(resume, &rb) == 0 && stat(out, &sb) == 0 &&
               rb.st_dev == sb.st_dev && rb.st_ino == sb.st_ino; /* resumed in place */
    int32_t orc = 0; /* process 0 of an MPI job alone writes, and checks */
    DrrlError oerr;  /* the output rule: a regular file (or /dev/null), never a FIFO */
    if (dist_rank() == 0 && !force && !same && lstat(out, &sb) == 0)
        orc = cli_error(DRRL_E_EXISTS,
                        "%s: exists; use --force to overwrite it or --resume %s to continue",
                        out, out);
    else if (dist_rank() == 0 &&
             fileio_out_check(out, FILEIO_FORCE | (same ? FILEIO_UPDATE : 0), &oerr))
        orc = cli_fail(&oerr);
    if (dist_bcast(&orc, sizeof orc, &oerr))
        return cli_fail(&oerr);
    if (orc)
        return orc;

    char *mdir = model_dir ? strdup(model_dir) : data_path("model");
    char *dpath = data ? strdup(data) : data_path("brown/train.txt");
    Model *m = NULL;
    Tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n_text = 0, n_ids = 0;
    DrrlError err;
    int rc = CLI_EXIT_OK;
    if (!mdir || !dpath) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
        goto done;
    }
    if (model_load(mdir, &m, &err) || tokenizer_load_dir(mdir, m->cfg.vocab, &tok, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    if ((rc = cli_read_file(dpath, &text, &n_text)))
        goto done;
    if (tokenizer_encode(tok, text, n_text, &ids, &n_ids, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    if (maxtok > 0 && (size_t)maxtok < n_ids)
        n_ids = (size_t)maxtok;

    /* The command line, recorded in the policy file. */
    char cmdline[512];
    size_t len = 0;
    cmdline[0] = 0;
    for (int i = 0; i < argc && len < sizeof cmdline - 1; i++)
        len += (size_t)snprintf(cmdline + len, sizeof cmdline - len, "%s%s", i ? " " : "drrl ",
                                argv[i]);
    cfg.out_path = out;
    cfg.out_flags = same ? FILEIO_UPDATE : 0;
    cfg.command = cmdline;
    PpoDist pd = {dist_rank(), dist_size(), dist_cb, NULL};
    cfg.dist = &pd; /* one process: the gathers are copies */

    char warn[512] = "";
    Progress pg = {quiet || dist_rank() != 0, isatty(2), dist_rank() == 0 ? warn : NULL};
    signals_catch(); /* Ctrl-C: stop at the next step, checkpoint saved */
    DrrlStatus st =
        policy_train(m, ids, n_ids, &cfg, resume, on_progress, &pg, warn, sizeof warn, &err);
    signals_restore();
    if (pg.warn && warn[0])
        fprintf(stderr, "drrl: warning: %s\n", warn);
    if (st) {
        if (pg.tty && !quiet)
            fputc('\n', stderr);
        rc = cli_fail(&err);
        goto done;
    }
    if (!quiet && dist_rank() == 0)
        fprintf(stderr, "wrote %s\n", out);
done:
    free(ids);
    free(text);
    tokenizer_free(tok);
    model_free(m);
    free(mdir);
    free(dpath);
    return rc;
}
