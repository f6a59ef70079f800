/* trace_cli.h: recording a trace from a command (`drrl run --trace-out F`):
 * the options, the sidecar's metadata from a session, and the writer's
 * lifetime including the stop on a signal (signals.h). ui/ only. */
#ifndef DRRL_TRACE_CLI_H
#define DRRL_TRACE_CLI_H

#include "attn/attn_core.h"
#include "cli/cli.h"
#include "run/session.h"
#include "trace/trace_csv.h"

#define TRACE_CLI_USAGE                                                                        \
    "  --trace-out F     record every decision to the trace F and its sidecar F.json\n"        \
    "                    (drrl-trace(5)); Ctrl-C keeps the rows recorded so far\n"             \
    "  --force           replace existing output files\n"                                      \
    "  --no-timing       leave wall_ns empty: equal runs give byte-identical traces\n"

typedef struct TraceCli {
    const char *out; /* --trace-out, or NULL: no trace */
    unsigned flags;  /* TRACE_CSV_FORCE, TRACE_CSV_NO_TIMING */
    TraceCsvWriter *w;
} TraceCli;

/* The same options as a group of a command's cli_parse table (cli.h). */
#define TRACE_CLI_OPTS(t)                                                                      \
    CLI_STR("trace-out", &(t)->out), CLI_BITS("force", &(t)->flags, TRACE_CSV_FORCE),          \
        CLI_BITS("no-timing", &(t)->flags, TRACE_CSV_NO_TIMING)

/* The sidecar metadata of a session run with cfg (model path and hash, hash
 * of the session's token ids, method, seed, segment length, shape, rank grid,
 * the reward weights the records' reward column uses, the threshold). m is
 * initialised here; its strings are owned (trace_meta_done). For every
 * command that records, so that their sidecars agree. */
DrrlStatus trace_cli_meta(Session *s, const AttnCoreConfig *cfg, TraceMeta *m, DrrlError *err);

/* With --trace-out: open the trace (refusing to overwrite without --force),
 * describe the session's model, ids, method and settings in its sidecar, and
 * add its sink to s. Call after the session has its ids. Returns 0, or an
 * exit status after printing one line. Without --trace-out: 0, nothing. */
int trace_cli_start(TraceCli *t, const char *cmd, Session *s, const AttnCoreConfig *cfg);

/* Finish the trace (no-op without one): interrupted = 1 marks it incomplete
 * (an error that stopped the run: its rows stay a valid trace). Returns 0 or
 * an exit status after printing one line. */
int trace_cli_finish(TraceCli *t, int interrupted);

/* A signal stopped CMD (signals_caught()): finish the trace as incomplete and
 * print one line, "drrl: CMD: interrupted by SIGINT; F holds the N rows
 * recorded". Returns the exit status for DRRL_E_INTERRUPTED (1). */
int trace_cli_interrupted(TraceCli *t, const char *cmd);

#endif
