/* attn_cli.c: shared options, input and summaries of run / eval / dump. */
#include "cli/attn_cli.h"

/* Bytes of text read and tokenized per token asked for (--seq-len): a
 * generous budget; a text whose tokens average more bytes gives fewer tokens. */
#define ATTN_CLI_BYTES_PER_TOKEN 64

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "policy/policy_agent.h"

void attn_cli_resolve_method(Method *m)
{
    if (m->kind == METHOD_DRRL && (!m->policy[0] || m->policy[0] == '@')) {
        char budget[sizeof m->policy];
        snprintf(budget, sizeof budget, "%s", m->policy); /* "" or "@B" */
        if (snprintf(m->policy, sizeof m->policy, "%s/%s%s", cli_data_dir(),
                     POLICY_AGENT_DEFAULT_FILE, budget) >= (int)sizeof m->policy)
            m->policy[0] = '\0'; /* too long: reported as "no policy file" */
    }
}

int attn_cli_methods(const char *cmd, const char *list, Method *ms, int max, int *n)
{
    DrrlError err;
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return cli_error(DRRL_E_NOMEM, "out of memory");
    int r = 0;
    *n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !r; tok = strtok_r(NULL, ",", &save)) {
        if (*n == max)
            r = cli_usage_error(cmd, "--methods: at most %d methods", max);
        else if (method_parse(tok, &ms[*n], &err) != DRRL_OK)
            r = cli_usage_error(cmd, "%s", err.msg);
        else
            attn_cli_resolve_method(&ms[(*n)++]);
    }
    free(copy);
    if (!r && !*n)
        r = cli_usage_error(cmd, "--methods: no method given");
    return r;
}

void attn_cli_warn(const Session *s)
{
    const char *w = session_warning(s);
    if (w && w[0])
        fprintf(stderr, "drrl: warning: %s\n", w);
}

int attn_cli_option(const char *cmd, int c, const char *arg, AttnCoreConfig *cfg)
{
    long v;
    DrrlError err;
    switch (c) {
    case ATTN_CLI_OPT_METHOD:
        if (method_parse(arg, &cfg->method, &err) != DRRL_OK) {
            cli_usage_error(cmd, "%s", err.msg);
            return -1;
        }
        attn_cli_resolve_method(&cfg->method);
        return 1;
    case ATTN_CLI_OPT_SEED:
        if (cli_parse_long(cmd, "--seed", arg, 0, LONG_MAX, &v))
            return -1;
        cfg->seed = (uint64_t)v;
        return 1;
    case ATTN_CLI_OPT_NO_EXACT:
        cfg->measure = 0;
        return 1;
    default:
        return 0;
    }
}

int attn_cli_opt(const char *cmd, const CliOpt *o, const char *arg)
{
    return attn_cli_option(cmd, o->code, arg, o->dest) < 0 ? CLI_EXIT_USAGE : 0;
}

const char *attn_cli_model_dir(const char *dir)
{
    static char buf[4096];
    if (dir)
        return dir;
    snprintf(buf, sizeof buf, "%s/model", cli_data_dir());
    return buf;
}

/* Integers separated by whitespace or commas; errors name file:line:column. */
static int parse_ids_file(const char *path, const char *text, size_t len, int32_t vocab,
                          int32_t **ids, size_t *n)
{
    size_t line = 1;
    const char *line_start = text;
    CliIds v = {0};
    const char *p = text, *end = text + len;
    while (p < end) {
        if (*p == '\n') {
            line++, p++, line_start = p;
            continue;
        }
        if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        char *e;
        errno = 0;
        long x = strtol(p, &e, 10);
        if (e == p || errno || x < 0 || x >= vocab ||
            (e < end && *e != ',' && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r')) {
            free(v.v);
            return cli_error(DRRL_E_INPUT, "%s:%zu:%zu: expected a token id in 0..%d", path,
                             line, (size_t)(p - line_start) + 1, (int)vocab - 1);
        }
        int rc = cli_ids_push(&v, (int32_t)x);
        if (rc)
            return rc;
        p = e;
    }
    *ids = v.v, *n = v.n;
    return 0;
}

int attn_cli_set_input(const char *cmd, Session *s, const CliText *in)
{
    const char *text_file = in->text, *prompt = in->prompt, *ids_file = in->ids_file;
    long offset = in->offset, seq_len = in->seq_len;
    int given = !!text_file + !!prompt + !!ids_file;
    if (given != 1)
        return cli_usage_error(cmd,
                               "give exactly one of --text FILE, --prompt S, --ids-file F");
    if (offset && !text_file)
        return cli_usage_error(cmd, "--offset needs --text FILE");
    char *buf = NULL;
    size_t len = 0;
    int rc;
    int32_t *ids = NULL;
    size_t n = 0;
    DrrlError err;
    if (prompt) {
        buf = strdup(prompt);
        if (!buf)
            return cli_error(DRRL_E_NOMEM, "out of memory");
        len = strlen(buf);
    } else if (text_file && seq_len > 0) {
        /* only the bytes the tokens can come from: `--text -` from an endless
         * stream stops there (ATTN_CLI_BYTES_PER_TOKEN, below) */
        if ((rc = cli_read_prefix(text_file,
                                  (size_t)offset + (size_t)seq_len * ATTN_CLI_BYTES_PER_TOKEN,
                                  &buf, &len)))
            return rc;
    } else if ((rc = cli_read_file(text_file ? text_file : ids_file, &buf, &len))) {
        return rc;
    }
    if (ids_file) {
        rc = parse_ids_file(ids_file, buf, len, session_model(s)->cfg.vocab, &ids, &n);
        free(buf);
        if (rc)
            return rc;
    } else {
        if (!session_tokenizer(s)) {
            free(buf);
            return cli_error(DRRL_E_INPUT, "%s: the model has no tokenizer; give --ids-file F",
                             session_model(s)->dir ? session_model(s)->dir : "model");
        }
        if ((size_t)offset > len) {
            free(buf);
            return cli_usage_error(cmd, "--offset %ld is past the end of %s (%zu bytes)",
                                   offset, text_file, len);
        }
        /* a generous byte budget: enough for seq_len tokens of any tokenizer */
        size_t take = len - (size_t)offset;
        if (seq_len > 0 && (size_t)seq_len * ATTN_CLI_BYTES_PER_TOKEN < take)
            take = (size_t)seq_len * ATTN_CLI_BYTES_PER_TOKEN;
        DrrlStatus st =
            tokenizer_encode(session_tokenizer(s), buf + offset, take, &ids, &n, &err);
        free(buf);
        if (st)
            return cli_fail(&err);
    }
    if (seq_len > 0 && n > (size_t)seq_len)
        n = (size_t)seq_len;
    if (n < 1) {
        free(ids);
        const char *src = text_file ? text_file : ids_file ? ids_file : "--prompt";
        return cli_error(DRRL_E_INPUT, "%s: no tokens (an empty input%s)",
                         strcmp(src, "-") == 0 ? "standard input" : src,
                         text_file && offset ? " after --offset" : "");
    }
    DrrlStatus st = session_set_ids(s, ids, n, &err);
    free(ids);
    if (st)
        return cli_fail(&err);
    return 0;
}

void attn_cli_summary(Session *s, AttnSummary *o)
{
    AttnCore *ac = session_core(s);
    const AttnCoreStats *st = attn_core_stats(ac);
    o->tokens = st->tokens;
    /* the totals the trace's rows and savings_cum are made of (one definition) */
    o->flops_exact = st->flops_exact;
    o->flops_executed = st->flops_executed;
    o->attn_flops_exact = st->attn_flops_exact;
    o->attn_flops_executed = st->attn_flops_executed;
    o->savings = flops_savings(o->flops_exact, o->flops_executed);
    o->attn_savings = flops_savings(o->attn_flops_exact, o->attn_flops_executed);
    o->fidelity = st->rows > 0 ? st->fidelity_sum / (double)st->rows : NAN;
    o->bound_violations = st->rows > 0 ? st->violations : -1;
    o->lowrank_rows = st->lowrank_rows;
    o->guard_allowed_rows = st->guarded_rows;
    o->guard_forced_rows = st->forced_rows;
    o->guard_binds = attn_core_guarded(ac);
    o->guard_decisions = st->guard_decisions;
    o->guard_raised = st->guard_raised;
    o->guard_exceeded =
        st->guarded_rows > 0 ? (double)st->guard_exceeded / (double)st->guarded_rows : NAN;
    o->bound_vacuous =
        st->lowrank_rows > 0 ? (double)st->bound_vacuous / (double)st->lowrank_rows : NAN;
    o->bound_ratio_median = attn_core_bound_ratio_median(ac);
    o->eps = attn_core_eps(ac);
    o->wall_s = session_wall_s(s);
    o->loss = session_nll_count(s) ? session_nll_sum(s) / (double)session_nll_count(s) : NAN;
    for (FlopCat c = 0; c < FLOPS_CAT_COUNT; c++) {
        o->cat_exact[c] = flops_get(attn_core_flops_exact(ac), -1, -1, c);
        o->cat_executed[c] = flops_get(attn_core_flops_executed(ac), -1, -1, c);
    }
}

static int progress_on = -1;

void attn_cli_progress(const char *label, size_t done, size_t total)
{
    if (progress_on < 0)
        progress_on = isatty(STDERR_FILENO);
    if (!progress_on || total == 0)
        return;
    int width = 30, fill = (int)((double)done / (double)total * width);
    fprintf(stderr, "\r%-24.24s [", label);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%%", (int)(100.0 * (double)done / (double)total));
    fflush(stderr);
}

void attn_cli_progress_end(void)
{
    if (progress_on > 0) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}
