/* explore.h: the live explorer: a Session (model + forward + attention core)
 * whose TraceRecords fill the TraceStore the views read (and a CSV trace with
 * --trace-out), wrapped as the App's source. Used by `drrl explore` and by
 * `drrl bench tui`. */
#ifndef DRRL_EXPLORE_H
#define DRRL_EXPLORE_H

#include <stdbool.h>

#include "tui/app.h"
#include "cli/cli.h"
#include "attn/attn_core.h"
#include "run/session.h"

typedef struct ExploreOptions {
    const char *model_dir; /* NULL: DATA/model */
    /* exactly one of text, prompt, ids_file; offset: bytes into text;
     * seq_len 0: the model's context, at most 2048 */
    CliText in;
    AttnCoreConfig cfg; /* method and core settings */
    int threads;
    const char *trace_out; /* NULL: no trace file */
    bool force;            /* replace an existing trace */
} ExploreOptions;

typedef struct Explore Explore;

/* Load the model and the input, set up the store (and the trace writer) and
 * the App, and compute the first token. Returns 0, or an exit code after
 * printing a one-line error (then *out is NULL). cmd names the command. */
int explore_open(Explore **out, const ExploreOptions *o, const char *cmd);

/* Finish: the trace (if any) becomes a valid file with what was computed
 * (interrupted marks it incomplete), everything is freed. Returns 0 or an
 * exit code after printing the error. */
int explore_close(Explore *ex, int interrupted);

App *explore_app(Explore *ex);
Session *explore_session(Explore *ex);

/* The default input text: the one DATA/texts/DEFAULT names (its first line,
 * "NAME [TOKEN]", NAME a file in DATA/texts; data/ship_model.sh demo picks
 * it), else the longest DATA/texts/NAME.txt (ties: the first by name), else
 * DATA/brown/test.txt; malloc'd, or NULL when none exists. token (may be
 * NULL): DEFAULT's TOKEN, where plain drrl opens, else 0 (its last token). */
char *explore_default_text(long *token);

/* The default method: drrl with the shipped policy when DATA holds one
 * (EXPLORE_POLICY_FILE), else energy:0.95. */
#define EXPLORE_POLICY_FILE "policy.safetensors"
const char *explore_default_method(void);

/* Compute the next token (what the App's source does on Right). */
DrrlStatus explore_step(Explore *ex, DrrlError *err);

#endif
