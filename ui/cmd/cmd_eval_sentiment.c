/* cmd_eval_sentiment.c: `drrl eval-sentiment`: downstream accuracy of a
 * frozen language model's features under each attention method (a stand-in
 * for the DR-RL paper's SST-2 result), with multinomial naive Bayes over
 * words on the same folds as a reference point.
 *
 * Per method, each sentence runs alone (a fresh cache) through the model; its
 * features are the mean over its tokens of the last hidden state (after the
 * final norm). A logistic regression (classify.h) is fitted on the training
 * folds and scored on the held-out fold, for every fold of a seeded k-fold
 * split. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/attn_cli.h"
#include "attn/attn_core.h"
#include "eval/classify.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/forward.h"
#include "model/model.h"
#include "run/session.h"
#include "model/tokenizer.h"

static const char usage[] =
    "usage: drrl eval-sentiment [--model DIR] [--data FILE] [--methods LIST] [--folds K]\n"
    "                           [--seed N] [--l2 X] [--segment T] [--threads N] [--csv F]\n"
    "\n"
    "Sentence classification with a frozen model: features are each sentence's last\n"
    "hidden states (after the final norm), mean-pooled, computed with each attention\n"
    "method; an L2-regularised logistic regression is trained and tested by k-fold\n"
    "cross-validation (seeded folds). Multinomial naive Bayes over lower-cased words\n"
    "on the same folds is the reference. Prints accuracy mean and standard deviation\n"
    "over the folds, and the attention FLOPs each method executed.\n"
    "\n"
    "  --model DIR     model directory (default: the data directory's model)\n"
    "  --data FILE     LABEL<TAB>TEXT lines, LABEL 0 or 1 (default\n"
    "                  DATA/sentiment/imdb.tsv, made by data/fetch_sentiment.sh)\n"
    "  --methods LIST  attention methods (default full,drrl)\n"
    "  --folds K       cross-validation folds (default 10)\n"
    "  --seed N        fold seed (default 1)\n"
    "  --l2 X          logistic regression penalty (default 0.01)\n"
    "  --segment T     decision segment length (default 16: the sentences are short;\n"
    "                  the first segment of each is always exact)\n"
    "  --threads N     attention worker threads\n"
    "  --csv F         write one row per classifier as CSV to F ('-' = stdout)\n"
    "  --force         replace an existing --csv file\n"
    "  -h, --help      show this help\n";

typedef struct Sent {
    int label;
    char *text;
    size_t len;
} Sent;

static void sents_free(Sent *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].text);
    free(s);
}

static int read_tsv(const char *path, Sent **out, size_t *n_out)
{
    char *buf;
    size_t len;
    int r;
    if ((r = cli_read_file(path, &buf, &len)))
        return r;
    size_t cap = 1024, n = 0;
    Sent *s = malloc(cap * sizeof *s);
    if (!s) {
        free(buf);
        return cli_error(DRRL_E_NOMEM, "out of memory");
    }
    size_t line = 0;
    for (char *p = buf; p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        char *end = nl ? nl : buf + len;
        line++;
        if (end > p && end[-1] == '\r')
            end[-1] = '\0', end--;
        *end = '\0';
        if (end == p) { /* blank line */
            p = end + 1;
            continue;
        }
        if ((p[0] != '0' && p[0] != '1') || p[1] != '\t' || !p[2]) {
            sents_free(s, n), free(buf);
            return cli_error(DRRL_E_INPUT,
                             "%s:%zu:1: expected LABEL<TAB>TEXT with LABEL 0 or 1", path, line);
        }
        if (n == cap) {
            Sent *t = realloc(s, 2 * cap * sizeof *s);
            if (!t) {
                sents_free(s, n), free(buf);
                return cli_error(DRRL_E_NOMEM, "out of memory");
            }
            s = t, cap *= 2;
        }
        s[n].label = p[0] - '0';
        s[n].len = (size_t)(end - p - 2);
        s[n].text = malloc(s[n].len + 1);
        if (!s[n].text) {
            sents_free(s, n), free(buf);
            return cli_error(DRRL_E_NOMEM, "out of memory");
        }
        memcpy(s[n].text, p + 2, s[n].len + 1);
        n++;
        p = end + 1;
    }
    free(buf);
    *out = s, *n_out = n;
    return 0;
}

/* Features of every sentence under method cfg->method: (n, C) into feat;
 * attention FLOPs executed and exact summed into *fe, *fx. Each sentence
 * runs alone (the session restarts) and keeps its hidden states only. */
static int features(const Model *m, const Tokenizer *tok, const Sent *s, size_t n,
                    const AttnCoreConfig *acfg, int threads, float *feat, double *fe,
                    double *fx)
{
    size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.d_model;
    DrrlError err;
    Session *ss = NULL;
    if (session_new_shared(m, tok, acfg, threads, &ss, &err) != DRRL_OK)
        return cli_fail(&err);
    attn_cli_warn(ss);
    float *h = NULL;
    size_t h_cap = 0;
    double *acc = malloc(C * sizeof *acc);
    int rc = acc ? 0 : cli_error(DRRL_E_NOMEM, "out of memory");
    *fe = *fx = 0.0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t *ids = NULL;
        size_t T = 0;
        if (tokenizer_encode(tok, s[i].text, s[i].len, &ids, &T, &err) != DRRL_OK ||
            session_set_ids(ss, ids, T, &err) != DRRL_OK) {
            free(ids);
            rc = cli_fail(&err);
            break;
        }
        if ((L + 1) * T * C > h_cap) {
            free(h);
            h_cap = (L + 1) * T * C;
            if (!(h = malloc(h_cap * sizeof *h))) {
                free(ids);
                rc = cli_error(DRRL_E_NOMEM, "out of memory");
                break;
            }
        }
        session_set_capture(ss, &(SessionCapture){NULL, h, NULL, true});
        if (session_advance(ss, T, NULL, &err) != DRRL_OK)
            rc = cli_fail(&err);
        memset(acc, 0, C * sizeof *acc);
        for (size_t t = 0; t < T && !rc; t++)
            for (size_t c = 0; c < C; c++)
                acc[c] += h[(L * T + t) * C + c];
        for (size_t c = 0; c < C; c++)
            feat[i * C + c] = T ? (float)(acc[c] / (double)T) : 0.0f;
        *fe += flops_attn(attn_core_flops_executed(session_core(ss)));
        *fx += flops_attn(attn_core_flops_exact(session_core(ss)));
        free(ids);
        attn_cli_progress(acfg->method.spec, i + 1, n);
    }
    attn_cli_progress_end();
    free(h), free(acc);
    session_free(ss);
    return rc;
}

/* Words: maximal runs of ASCII letters, digits and apostrophes, lower-cased.
 * Ids are ranks in the sorted list of distinct words (deterministic). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int bag_of_words(const Sent *s, size_t n, int32_t **words_out, size_t **off_out,
                        int32_t *V_out)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += s[i].len / 2 + 1;
    char **w = malloc(cap * sizeof *w);
    size_t *off = malloc((n + 1) * sizeof *off);
    int32_t *ids = malloc(cap * sizeof *ids);
    char **uniq = malloc(cap * sizeof *uniq);
    if (!w || !off || !ids || !uniq) {
        DRRL_FREE(w, off, ids, uniq);
        return cli_error(DRRL_E_NOMEM, "out of memory");
    }
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = nw;
        const char *t = s[i].text;
        for (size_t a = 0; a < s[i].len;) {
            while (a < s[i].len && !(isalnum((unsigned char)t[a]) || t[a] == '\''))
                a++;
            size_t b = a;
            while (b < s[i].len && (isalnum((unsigned char)t[b]) || t[b] == '\''))
                b++;
            if (b > a) {
                char *x = malloc(b - a + 1);
                if (!x)
                    break;
                for (size_t j = a; j < b; j++)
                    x[j - a] = (char)tolower((unsigned char)t[j]);
                x[b - a] = '\0';
                w[nw++] = x;
            }
            a = b;
        }
    }
    off[n] = nw;
    memcpy(uniq, w, nw * sizeof *w);
    qsort(uniq, nw, sizeof *uniq, cmp_str);
    size_t V = 0;
    for (size_t i = 0; i < nw; i++)
        if (!V || strcmp(uniq[V - 1], uniq[i]) != 0)
            uniq[V++] = uniq[i];
    for (size_t i = 0; i < nw; i++) {
        char **hit = bsearch(&w[i], uniq, V, sizeof *uniq, cmp_str);
        ids[i] = (int32_t)(hit - uniq);
    }
    for (size_t i = 0; i < nw; i++)
        free(w[i]);
    free(w), free(uniq);
    *words_out = ids, *off_out = off, *V_out = (int32_t)(V ? V : 1);
    return 0;
}

typedef struct Result {
    char name[METHOD_SPEC_MAX + 16];
    double acc[64];
    double mean, std, attn_sav;
} Result;

/* One evaluation: options, sentences, folds, results. */
typedef struct Senti {
    const char *model, *data, *methods, *csv;
    long folds, seed, segment, threads;
    double l2;
    int force, n_methods;
    Method ms[16];
    Sent *s;
    size_t n, n1, C;
    int *y, *fold;
    size_t *train;
    float *feat;
    Result *res;
} Senti;

/* The training indices of fold k into e->train; returns how many. */
static size_t fold_train(const Senti *e, int k)
{
    size_t nt = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->fold[i] != k)
            e->train[nt++] = i;
    return nt;
}

/* The naive Bayes reference into res[0]. */
static int naive_bayes(Senti *e)
{
    DrrlError err;
    int32_t *words = NULL, V = 0;
    size_t *off = NULL;
    int rc = bag_of_words(e->s, e->n, &words, &off, &V);
    Result *r = &e->res[0];
    snprintf(r->name, sizeof r->name, "naive-bayes (words)");
    r->attn_sav = NAN;
    for (int k = 0; k < e->folds && !rc; k++) {
        size_t nt = fold_train(e, k), ok = 0, nv = 0;
        ClassifyNB nb;
        if (classify_nb_fit(&nb, words, off, e->y, V, e->train, nt, 1.0, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        for (size_t i = 0; i < e->n; i++)
            if (e->fold[i] == k)
                nv++, ok +=
                      classify_nb_predict(&nb, words + off[i], off[i + 1] - off[i]) == e->y[i];
        classify_nb_done(&nb);
        r->acc[k] = (double)ok / (double)nv;
    }
    free(words), free(off);
    return rc;
}

/* Method mi's features and logistic regression into res[mi + 1]. */
static int logreg(Senti *e, const Model *m, const Tokenizer *tok, int mi)
{
    DrrlError err;
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    cfg.method = e->ms[mi];
    cfg.segment = (int32_t)e->segment;
    cfg.measure = 0;
    double fe = 0.0, fx = 0.0;
    size_t C = e->C;
    int rc = features(m, tok, e->s, e->n, &cfg, (int)e->threads, e->feat, &fe, &fx);
    Result *r = &e->res[mi + 1];
    snprintf(r->name, sizeof r->name, "logreg %s", e->ms[mi].spec);
    r->attn_sav = fx > 0 ? 1.0 - fe / fx : NAN;
    for (int k = 0; k < e->folds && !rc; k++) {
        size_t nt = fold_train(e, k), ok = 0, nv = 0;
        ClassifyLogreg lr;
        if (classify_logreg_fit(&lr, e->feat, e->y, e->n, (int32_t)C, e->train, nt, e->l2,
                                &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        for (size_t i = 0; i < e->n; i++)
            if (e->fold[i] == k)
                nv++,
                    ok += (classify_logreg_prob(&lr, e->feat + i * C) >= 0.5) == (e->y[i] == 1);
        classify_logreg_done(&lr);
        r->acc[k] = (double)ok / (double)nv;
    }
    return rc;
}

static int report(Senti *e)
{
    printf("%zu sentences (%zu positive), %ld-fold cross-validation, seed %ld, l2 %g, "
           "segment %ld\n",
           e->n, e->n1, e->folds, e->seed, e->l2, e->segment);
    printf("%-32s %9s %9s %10s\n", "classifier", "accuracy", "std", "attn-sav");
    Result *res = e->res;
    for (int i = 0; i <= e->n_methods; i++) {
        classify_mean_std(res[i].acc, (size_t)e->folds, &res[i].mean, &res[i].std);
        printf("%-32s %8.2f%% %8.2f%% ", res[i].name, 100 * res[i].mean, 100 * res[i].std);
        if (isnan(res[i].attn_sav))
            printf("%10s\n", "-");
        else
            printf("%9.2f%%\n", 100 * res[i].attn_sav);
    }
    FileOut *co;
    int rc = 0;
    if (e->csv && !(rc = cli_out_open(e->csv, e->force, &co))) {
        FILE *f = fileio_out_stream(co);
        fprintf(f, "classifier,folds,seed,accuracy_mean,accuracy_std,attn_savings");
        for (int k = 0; k < e->folds; k++)
            fprintf(f, ",fold%d", k);
        fprintf(f, "\n");
        for (int i = 0; i <= e->n_methods; i++) {
            fprintf(f, "%s,%ld,%ld,%.6f,%.6f,", res[i].name, e->folds, e->seed, res[i].mean,
                    res[i].std);
            if (!isnan(res[i].attn_sav))
                fprintf(f, "%.6f", res[i].attn_sav);
            for (int k = 0; k < e->folds; k++)
                fprintf(f, ",%.6f", res[i].acc[k]);
            fprintf(f, "\n");
        }
        rc = cli_out_commit(co);
    }
    return rc;
}

/* Folds, model, classifiers, report. */
static int evaluate(Senti *e)
{
    DrrlError err;
    size_t n = e->n;
    for (size_t i = 0; i < n; i++)
        e->y[i] = e->s[i].label, e->n1 += (size_t)e->s[i].label;
    if (n < (size_t)e->folds * 2 || e->n1 < (size_t)e->folds || n - e->n1 < (size_t)e->folds)
        return cli_error(DRRL_E_INPUT,
                         "%s: %zu sentences (%zu positive): too few for %ld folds", e->data, n,
                         e->n1, e->folds);
    if (classify_folds(e->fold, n, (int)e->folds, (uint64_t)e->seed, &err) != DRRL_OK)
        return cli_fail(&err);
    Model *m = NULL;
    Tokenizer *tok = NULL;
    const char *mdir = attn_cli_model_dir(e->model);
    int rc = 0;
    if (model_load(mdir, &m, &err) != DRRL_OK ||
        tokenizer_load_dir(mdir, m->cfg.vocab, &tok, &err) != DRRL_OK)
        rc = cli_fail(&err);
    else if (e->C = (size_t)m->cfg.d_model, !(e->feat = malloc(n * e->C * sizeof *e->feat)))
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    else
        rc = naive_bayes(e);
    for (int mi = 0; mi < e->n_methods && !rc; mi++)
        rc = logreg(e, m, tok, mi);
    if (!rc)
        rc = report(e);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}

int cmd_eval_sentiment(int argc, char **argv)
{
    Senti e = {.methods = "full,drrl", .folds = 10, .seed = 1, .segment = 16, .l2 = 0.01};
    const CliOpt opts[] = {
        CLI_MODEL_OPT(&e.model),
        CLI_STR("data", &e.data),
        CLI_STR("methods", &e.methods),
        CLI_LONG("folds", &e.folds, 2, 64),
        CLI_LONG("seed", &e.seed, 0, 1L << 62),
        CLI_DOUBLE("l2", &e.l2, 1e-12, 1e6),
        CLI_LONG("segment", &e.segment, 1, 1 << 20),
        CLI_THREADS_OPT(&e.threads),
        CLI_STR("csv", &e.csv),
        CLI_FORCE_OPT(&e.force),
        CLI_END,
    };
    int rc = cli_parse("eval-sentiment", usage, opts, argc, argv, NULL);
    if (rc != CLI_GO)
        return rc;
    if ((rc = attn_cli_methods("eval-sentiment", e.methods, e.ms, 16, &e.n_methods)))
        return rc;
    char def[4096];
    if (!e.data) {
        snprintf(def, sizeof def, "%s/sentiment/imdb.tsv", cli_data_dir());
        e.data = def;
    }
    if ((rc = read_tsv(e.data, &e.s, &e.n)))
        return rc;
    DrrlError oe; /* --csv checked before the long work (again when written) */
    size_t n1 = e.n ? e.n : 1;
    if (e.csv && fileio_out_check(e.csv, FILEIO_STDOUT | (e.force ? FILEIO_FORCE : 0), &oe))
        rc = cli_fail(&oe);
    else if (!(e.y = malloc(n1 * sizeof *e.y)) || !(e.fold = malloc(n1 * sizeof *e.fold)) ||
             !(e.train = malloc(n1 * sizeof *e.train)) ||
             !(e.res = calloc((size_t)e.n_methods + 1, sizeof *e.res)))
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    else
        rc = evaluate(&e);
    sents_free(e.s, e.n);
    DRRL_FREE(e.y, e.fold, e.train, e.res, e.feat);
    if (!rc && fflush(stdout) != 0)
        rc = cli_error(DRRL_E_IO, "standard output: write error");
    return rc;
}
