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
#include "policy/policy_features.h"
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
    "  --features V        state layout of a new policy: 2 (with the guard's\n"
    "                      estimates), 3 (and the values' energies) or 1\n"
    "                      (neither, as the oldest policies) (2)\n"
    "  --energy-prior E:W  add W to the logit of the rank energy:E would take\n"
    "                      (a fixed prior: the network learns a residual on\n"
    "                      the rule; needs layout 3, the default with it)\n"
    "Reward (paper defaults):\n"
    "  --alpha X (1.0)  --beta X (0.05)  --gamma X (0.1)\n"
    "  --kappa X           weight of the budget overshoot (1.0)\n"
    "  --lm-reward X       weight of the change in next-token log-likelihood\n"
    "                      (0: off; on runs an exact forward beside)\n"
    "  --err-weight X      weight of each head's measured relative output error (0)\n"
    "  --err-power P       the error term is X e^P for the head's error e (1)\n"
    "  --err-layers W0,... a factor of the error term per model layer (all 1)\n"
    "  --price X           each head's FLOP price at budget 1/2, (1/B - 1) X at\n"
    "                      budget B (0: off)\n"
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

typedef struct Progress {
    int quiet, tty;
    const char *warn; /* printed once, at the first step */
} Progress;

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
    cli_fmt_time(eta, sizeof eta, per * (double)(p->steps - p->step));
    char bar[32];
    int width = 20, fill = (int)((double)width * (double)p->step / (double)p->steps);
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr,
            "%s[%s] %lld/%lld reward %.4f (fid %.4f err %.3f flops %.3f band %.3f over %.3f "
            "lm %.3f) attn savings %.1f%% ent %.2f eps %.2f ETA %s%s",
            pg->tty ? "\r\033[K" : "", bar, (long long)p->step, (long long)p->steps, p->reward,
            p->fidelity, p->error, p->flops_frac, p->band, p->budget_excess, p->lm,
            100.0 * p->attn_savings, p->entropy, p->eps, eta, p->checkpoint ? " [saved]" : "");
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

/* --budget B or LO:HI into the PolicyTrainConfig. */
/* "A" or "A:B", the numbers and nothing else: 1 (*b untouched) or 2, 0 when
 * malformed. */
static int parse_pair(const char *s, double *a, double *b)
{
    char *end;
    errno = 0;
    *a = strtod(s, &end);
    if (errno || end == s)
        return 0;
    if (!*end)
        return 1;
    if (*end != ':')
        return 0;
    const char *t = end + 1;
    *b = strtod(t, &end);
    return errno || end == t || *end ? 0 : 2;
}

static int parse_budget(const char *cmd, const CliOpt *o, const char *s)
{
    PolicyTrainConfig *cfg = o->dest;
    double a, b;
    int n = parse_pair(s, &a, &b);
    if (n == 1)
        b = a;
    if (!n || !(a > 0 && a <= b && b <= 1))
        return cli_usage_error(cmd, "--budget '%s': expected B or LO:HI with 0 < LO <= HI <= 1",
                               s);
    cfg->budget_lo = a, cfg->budget_hi = b;
    return 0;
}

/* --err-layers W0,W1,...: one factor of the error term per model layer
 * (its count is checked against the model in policy_train). */
static int parse_err_layers(const char *cmd, const CliOpt *o, const char *s)
{
    PolicyRewardWeights *rw = o->dest;
    const char *p = s;
    int n = 0;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !(v >= 0 && v <= 1e6) || (*end && *end != ','))
            return cli_usage_error(cmd,
                                   "--err-layers '%s': expected a factor >= 0 per layer, "
                                   "separated by commas",
                                   s);
        if (n == POLICY_REWARD_MAX_LAYERS)
            return cli_usage_error(cmd, "--err-layers '%s': more than %d factors", s,
                                   POLICY_REWARD_MAX_LAYERS);
        rw->err_layer[n++] = v;
        if (!*end)
            break;
        p = end + 1;
    }
    rw->n_err_layer = n;
    return 0;
}

/* --energy-prior E:W: a new network's energy-rule prior (policy_net.h). */
static int parse_prior(const char *cmd, const CliOpt *o, const char *s)
{
    PolicyTrainConfig *cfg = o->dest;
    double e, w;
    if (parse_pair(s, &e, &w) != 2 || !(e > 0 && e <= 1) || !(w > 0 && w <= 1e3))
        return cli_usage_error(cmd,
                               "--energy-prior '%s': expected E:W with 0 < E <= 1 and 0 < W "
                               "<= 1000",
                               s);
    cfg->prior_energy = e, cfg->prior_weight = w;
    return 0;
}

/* --seed N: any unsigned 64-bit integer. */
static int parse_seed(const char *cmd, const CliOpt *o, const char *arg)
{
    char *end;
    errno = 0;
    unsigned long long s = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-')
        return cli_usage_error(cmd, "--seed '%s': expected an integer", arg);
    *(uint64_t *)o->dest = s;
    return 0;
}

/* The output rule for --out (process 0 of an MPI job alone writes, and
 * checks): an existing file only with --force or resumed in place. */
static int check_out(const char *out, const char *resume, int force, int *same)
{
    struct stat sb, rb;
    *same = resume && stat(resume, &rb) == 0 && stat(out, &sb) == 0 && rb.st_dev == sb.st_dev &&
            rb.st_ino == sb.st_ino; /* resumed in place */
    int32_t orc = 0;
    DrrlError oerr; /* the output rule: a regular file (or /dev/null), never a FIFO */
    if (dist_rank() == 0 && !force && !*same && lstat(out, &sb) == 0)
        orc = cli_error(DRRL_E_EXISTS,
                        "%s: exists; use --force to overwrite it or --resume %s to continue",
                        out, out);
    else if (dist_rank() == 0 &&
             fileio_out_check(out, FILEIO_FORCE | (*same ? FILEIO_UPDATE : 0), &oerr))
        orc = cli_fail(&oerr);
    if (dist_bcast(&orc, sizeof orc, &oerr))
        return cli_fail(&oerr);
    return orc;
}

/* The model, its tokenizer and the first maxtok tokens of the text. */
static int load_inputs(const char *mdir, const char *dpath, long maxtok, Model **m,
                       Tokenizer **tok, int32_t **ids, size_t *n_ids)
{
    DrrlError err;
    char *text = NULL;
    size_t n_text = 0;
    int rc;
    if (!mdir || !dpath)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    if (model_load(mdir, m, &err) || tokenizer_load_dir(mdir, (*m)->cfg.vocab, tok, &err))
        return cli_fail(&err);
    if ((rc = dist_refuse_stdin("train-policy", "--data", dpath)) ||
        (rc = cli_read_file(dpath, &text, &n_text)))
        return rc;
    if (tokenizer_encode(*tok, text, n_text, ids, n_ids, &err))
        rc = cli_fail(&err);
    free(text);
    if (!rc && maxtok > 0 && (size_t)maxtok < *n_ids)
        *n_ids = (size_t)maxtok;
    return rc;
}

/* Train, with the progress line and signals. */
static int train(const Model *m, const int32_t *ids, size_t n_ids, PolicyTrainConfig *cfg,
                 const char *resume, int quiet)
{
    DrrlError err;
    PpoDist pd = {dist_rank(), dist_size(), dist_cb, NULL};
    cfg->dist = &pd; /* one process: the gathers are copies */
    char warn[512] = "";
    Progress pg = {quiet || dist_rank() != 0, isatty(2), dist_rank() == 0 ? warn : NULL};
    signals_catch(); /* Ctrl-C: stop at the next step, checkpoint saved */
    DrrlStatus st =
        policy_train(m, ids, n_ids, cfg, resume, on_progress, &pg, warn, sizeof warn, &err);
    signals_restore();
    if (pg.warn && warn[0])
        fprintf(stderr, "drrl: warning: %s\n", warn);
    if (st) {
        if (pg.tty && !pg.quiet)
            fputc('\n', stderr);
        if (st == DRRL_E_INTERRUPTED && dist_rank() != 0) /* the ranks stopped together: */
            return drrl_status_exit_code(st);             /* rank 0 says so, once */
        return cli_fail(&err);
    }
    if (!quiet && dist_rank() == 0)
        fprintf(stderr, "wrote %s\n", cfg->out_path);
    return 0;
}

int cmd_train_policy(int argc, char **argv)
{
    const char *model_dir = NULL, *data = NULL, *out = NULL, *resume = NULL;
    int force = 0, quiet = 0, same;
    long maxtok = 0;
    PolicyTrainConfig cfg;
    policy_train_config_default(&cfg);
    int features = 0; /* 0: not given */
    PpoConfig *ppo = &cfg.ppo;
    PolicyRewardWeights *rw = &cfg.reward;
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&model_dir),
        CLI_STR("data", &data),
        CLI_STR("out", &out),
        CLI_STR("resume", &resume),
        CLI_FORCE_OPT(&force),
        CLI_LONG("max-tokens", &maxtok, 1, 1L << 40),
        CLI_LONG("steps", &cfg.steps, 1, 100000000),
        CLI_FN("seed", 1, parse_seed, &cfg.seed, 0),
        CLI_FN("budget", 1, parse_budget, &cfg, 0),
        CLI_INT("segment", &cfg.segment, 1, 1 << 20),
        CLI_INT("episode-len", &cfg.episode_len, 2, 1 << 24),
        CLI_INT("episodes", &cfg.episodes, 1, 1 << 20),
        CLI_INT("rank-min", &cfg.r_min, 1, 4096),
        CLI_INT("rank-step", &cfg.r_step, 1, 4096),
        CLI_INT("features", &features, 1, POLICY_FEATURES_VERSION),
        CLI_DOUBLE("alpha", &rw->alpha, -1e6, 1e6),
        CLI_DOUBLE("beta", &rw->beta, -1e6, 1e6),
        CLI_DOUBLE("gamma", &rw->gamma, -1e6, 1e6),
        CLI_DOUBLE("kappa", &rw->kappa, -1e6, 1e6),
        CLI_DOUBLE("lm-reward", &rw->lm, -1e6, 1e6),
        CLI_DOUBLE("err-weight", &rw->err, -1e6, 1e6),
        CLI_DOUBLE("price", &rw->price, -1e6, 1e6),
        CLI_DOUBLE("err-power", &rw->err_power, 0.01, 100),
        CLI_FN("err-layers", 1, parse_err_layers, rw, 0),
        CLI_FN("energy-prior", 1, parse_prior, &cfg, 0),
        CLI_DOUBLE("eps-start", &cfg.eps_start, 0, 1e30),
        CLI_DOUBLE("eps-floor", &cfg.eps_floor, 0, 1e30),
        CLI_DOUBLE("eps-decay", &cfg.eps_decay, 0, 1),
        CLI_DOUBLE("lr", &ppo->lr, 0, 1),
        CLI_INT("epochs", &ppo->epochs, 1, 1000),
        CLI_INT("minibatch", &ppo->minibatch, 1, 1 << 20),
        CLI_DOUBLE("clip", &ppo->clip, 0, 10),
        CLI_DOUBLE("ent-coef", &ppo->ent_coef, 0, 100),
        CLI_DOUBLE("value-coef", &ppo->value_coef, 0, 100),
        CLI_DOUBLE("discount", &ppo->discount, 0, 1),
        CLI_DOUBLE("gae-lambda", &ppo->gae_lambda, 0, 1),
        CLI_LONG("ckpt-every", &cfg.checkpoint_every, 0, 1L << 40),
        CLI_INT("threads", &cfg.threads, 1, 1024),
        CLI_FLAG_SHORT("quiet", 'q', &quiet),
        CLI_END,
    };
    int rc = cli_parse("train-policy", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    /* the prior reads the value energies: layout 3 unless told otherwise
     * (which the network's check then refuses) */
    cfg.features = features ? features : cfg.prior_weight > 0 ? 3 : cfg.features;
    if (!out)
        return cli_usage_error("train-policy", "--out POLICY is required");
    if ((rc = check_out(out, resume, force, &same)))
        return rc;
    char *mdir = model_dir ? strdup(model_dir) : cli_data_path("model");
    char *dpath = data ? strdup(data) : cli_data_path("brown/train.txt");
    Model *m = NULL;
    Tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* check_out again once the model and the text are known inputs: --out
     * onto one of them is refused before training, not at the first save. */
    if (!(rc = load_inputs(mdir, dpath, maxtok, &m, &tok, &ids, &n_ids)) &&
        !(rc = check_out(out, resume, force, &same))) {
        /* The command line, recorded in the policy file. */
        char cmdline[512];
        size_t len = 0;
        cmdline[0] = 0;
        for (int i = 0; i < argc && len < sizeof cmdline - 1; i++)
            len += (size_t)snprintf(cmdline + len, sizeof cmdline - len, "%s%s",
                                    i ? " " : "drrl ", argv[i]);
        cfg.out_path = out;
        cfg.out_flags = same ? FILEIO_UPDATE : 0;
        cfg.command = cmdline;
        rc = train(m, ids, n_ids, &cfg, resume, quiet);
    }
    free(ids);
    tokenizer_free(tok);
    model_free(m);
    free(mdir);
    free(dpath);
    return rc;
}
