/* attn_cli.h: what `drrl run`, `drrl eval` and `drrl dump --method` share:
 * the attention-core options, reading the input tokens, and summaries. */
#ifndef DRRL_ATTN_CLI_H
#define DRRL_ATTN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attn/attn_core.h"
#include "attn/flops.h"
#include "cli/cli.h"
#include "run/session.h"

/* The options of the attention core: --method SPEC --segment T --seed N
 * --rank-min R --rank-step S --eps E --rot-tol X --no-exact, as a group of a
 * command's cli_parse table (cli.h), into the AttnCoreConfig *cfg. The plain
 * numbers are CLI_INT and CLI_DOUBLE entries; the others, which need more
 * than a range (the method is parsed, the seed is unsigned 64-bit,
 * --no-exact clears a field), go through attn_cli_option by their code
 * ATTN_CLI_OPT_*. */
enum {
    ATTN_CLI_OPT_METHOD = 0x100,
    ATTN_CLI_OPT_SEED,
    ATTN_CLI_OPT_NO_EXACT,
};
int attn_cli_opt(const char *cmd, const CliOpt *o, const char *arg);
#define ATTN_CLI_OPT(name, arg, code, cfg) CLI_FN(name, arg, attn_cli_opt, (cfg), code)
#define ATTN_CLI_OPTS(cfg)                                                                     \
    ATTN_CLI_OPT("method", 1, ATTN_CLI_OPT_METHOD, cfg),                                       \
        CLI_INT("segment", &(cfg)->segment, 1, 1 << 24),                                       \
        ATTN_CLI_OPT("seed", 1, ATTN_CLI_OPT_SEED, cfg),                                       \
        CLI_INT("rank-min", &(cfg)->r_min, 1, 4096),                                           \
        CLI_INT("rank-step", &(cfg)->r_step, 1, 4096),                                         \
        CLI_DOUBLE("eps", &(cfg)->eps, 0.0, 1e9),                                              \
        CLI_DOUBLE("rot-tol", &(cfg)->rot_tol, 0.0, 1.0),                                      \
        ATTN_CLI_OPT("no-exact", 0, ATTN_CLI_OPT_NO_EXACT, cfg)

/* The --method line with the command's default, then the other options. */
#define ATTN_CLI_METHOD_USAGE(dflt)                                                            \
    "  --method SPEC     attention method (default " dflt "): " METHOD_FORMS "\n"
#define ATTN_CLI_USAGE ATTN_CLI_METHOD_USAGE("full") ATTN_CLI_OTHER_USAGE
#define ATTN_CLI_OTHER_USAGE                                                                   \
    "  --segment T       tokens per rank decision (default 128; 1 = token by token)\n"         \
    "  --seed N          seed for random:A-B and performer features (default 0)\n"             \
    "  --rank-min R, --rank-step S\n"                                                          \
    "                    the rank grid {R, R+S, ..., head_dim} (default head_dim/8 each)\n"    \
    "  --eps E           safety threshold on the guard's estimate of the relative head\n"      \
    "                    output error (default 0.25; for drrl, the policy's floor)\n"          \
    "  --rot-tol X       keep a stale basis while its sin-theta bound is <= X (0.1)\n"         \
    "  --no-exact        do not compute exact attention alongside: faster, but no\n"           \
    "                    fidelity, measured error or bound check\n"

/* Handle the option ATTN_CLI_OPT_* c into cfg (the method is parsed).
 * Returns 1 when c was such an option and it parsed, 0 when c is not one of
 * them, or -1 after printing a usage error. */
int attn_cli_option(const char *cmd, int c, const char *arg, AttnCoreConfig *cfg);

/* drrl with no :POLICY (or drrl:@B, a budget only): fill in the default
 * policy file under cli_data_dir() (policy_agent.h's
 * POLICY_AGENT_DEFAULT_FILE), keeping "@B". Other methods are untouched. */
void attn_cli_resolve_method(Method *m);

/* A comma-separated --methods LIST into ms (at most max), each resolved
 * (attn_cli_resolve_method); *n gets how many. 0, or a usage error (2)
 * after printing it: a bad method, more than max, none. */
int attn_cli_methods(const char *cmd, const char *list, Method *ms, int max, int *n);

/* Print the session's warning (session_warning), if any, as one line. */
void attn_cli_warn(const Session *s);

/* The model directory: dir, or the default model under cli_data_dir(). */
const char *attn_cli_model_dir(const char *dir);

/* Token ids from exactly one of in->text (bytes from byte offset in->offset),
 * in->prompt, or in->ids_file (integers separated by whitespace or commas),
 * through the session's tokenizer, cut to in->seq_len tokens (0 = all), set
 * on the session. 0 or an exit code after printing the error. */
int attn_cli_set_input(const char *cmd, Session *s, const CliText *in);

/* The run summary of a finished session. */
typedef struct AttnSummary {
    int64_t tokens;
    double flops_exact, flops_executed, attn_flops_exact, attn_flops_executed;
    double savings, attn_savings; /* fractions, 1 - executed / exact */
    double fidelity;              /* mean cosine, NAN when not measured */
    int64_t bound_violations;     /* -1 when not measured */
    /* The guard and the proven output bound over measured low-rank rows (rank
     * below head_dim); NAN (and lowrank_rows 0) when none was measured. */
    int64_t lowrank_rows;
    int64_t guard_allowed_rows; /* rows whose rank the guard allowed (estimate <= eps) */
    int64_t guard_forced_rows;  /* rows at a rank the guard flagged (only an unguarded
                                   method, fixed or random, runs one) */
    int guard_binds;            /* the guard binds the method (method_is_guarded) */
    int64_t guard_decisions;    /* a guarded method's rank decisions ... */
    int64_t guard_raised;       /* ... where the guard raised the method's rank */
    double guard_exceeded;      /* fraction of guard_allowed_rows with measured error > eps */
    double bound_vacuous;       /* fraction of lowrank_rows whose relative bound is >= 1 */
    double bound_ratio_median;  /* median proven bound / measured error */
    double eps;                 /* the threshold in force */
    double wall_s;
    double loss; /* mean nats per predicted token, NAN if none */
    /* the ledgers by category (flops.h), summed over layers and heads: where
     * the executed FLOPs went, beside what exact attention would run */
    double cat_exact[FLOPS_CAT_COUNT], cat_executed[FLOPS_CAT_COUNT];
} AttnSummary;
void attn_cli_summary(Session *s, AttnSummary *out);

/* A progress bar on stderr when it is a terminal (no-op otherwise). */
void attn_cli_progress(const char *label, size_t done, size_t total);
void attn_cli_progress_end(void);

#endif
