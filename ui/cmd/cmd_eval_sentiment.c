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

#include "cli/attn_cli.h"
#include "attn/attn_core.h"
#include "eval/classify.h"
#include "cli/cli.h"
#include "cmd/commands.h"
#include "model/forward.h"
#include "model/model.h"
#include "policy/policy_agent.h"
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

static const float *cache_k(const void *ctx, int l, int g)
{
    return forward_cache_k((const Forward *)ctx, l, g);
}
static const float *cache_v(const void *ctx, int l, int g)
{
    return forward_cache_v((const Forward *)ctx, l, g);
}

/* Features of every sentence under method cfg->method: (n, C) into feat;
 * attention FLOPs executed and exact summed into *fe, *fx. */
static int features(const Model *m, const Tokenizer *tok, const Sent *s, size_t n,
                    const AttnCoreConfig *acfg, int threads, float *feat, double *fe,
                    double *fx)
{
    const ModelConfig *cf = &m->cfg;
    size_t L = (size_t)cf->n_layer, C = (size_t)cf->d_model, seg = (size_t)acfg->segment;
    DrrlError err;
    AttnCoreConfig cc = *acfg;
    PolicyAgent *agent = NULL;
    AttnCore *ac = NULL;
    Forward *f = NULL;
    char warn[512];
    int rc = 0;
    if (forward_new(m, 1024, threads, &f, &err) != DRRL_OK)
        return cli_fail(&err);
    if (policy_agent_prepare(m, &cc, 0.0, &agent, warn, sizeof warn, &err) != DRRL_OK ||
        attn_core_new(cf, &cc, &ac, &err) != DRRL_OK) {
        policy_agent_free(agent);
        forward_free(f);
        return cli_fail(&err);
    }
    if (warn[0])
        fprintf(stderr, "drrl: warning: %s\n", warn);
    attn_core_bind_cache(ac, cache_k, cache_v, f);
    if (agent)
        policy_agent_connect(agent, ac, cache_k, cache_v, f);
    ForwardAttn fa = attn_core_hook(ac);
    forward_set_attn(f, &fa);
    float *h = malloc((L + 1) * seg * C * sizeof *h);
    double *acc = malloc(C * sizeof *acc);
    if (!h || !acc)
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
    *fe = *fx = 0.0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t *ids = NULL;
        size_t T = 0;
        if (tokenizer_encode(tok, s[i].text, s[i].len, &ids, &T, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        forward_reset(f);
        attn_core_reset(ac);
        memset(acc, 0, C * sizeof *acc);
        for (size_t p = 0; p < T && !rc;) {
            size_t k = seg - p % seg;
            if (k > T - p)
                k = T - p;
            ForwardCapture cap = {h, NULL, 0};
            if (forward_tokens(f, ids + p, k, NULL, &cap, &err) != DRRL_OK ||
                attn_core_finish_call(ac, p, k, NULL, NULL, 0, &err) != DRRL_OK) {
                rc = cli_fail(&err);
                break;
            }
            for (size_t t = 0; t < k; t++)
                for (size_t c = 0; c < C; c++)
                    acc[c] += h[(L * k + t) * C + c];
            p += k;
        }
        for (size_t c = 0; c < C; c++)
            feat[i * C + c] = T ? (float)(acc[c] / (double)T) : 0.0f;
        *fe += flops_attn(attn_core_flops_executed(ac));
        *fx += flops_attn(attn_core_flops_exact(ac));
        free(ids);
        attn_cli_progress(acfg->method.spec, i + 1, n);
    }
    attn_cli_progress_end();
    forward_set_attn(f, NULL);
    free(h), free(acc);
    attn_core_free(ac);
    policy_agent_free(agent);
    forward_free(f);
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
        free(w), free(off), free(ids), free(uniq);
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

int cmd_eval_sentiment(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},   {"data", required_argument, 0, 'd'},
        {"methods", required_argument, 0, 'M'}, {"folds", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 's'},    {"l2", required_argument, 0, 'l'},
        {"segment", required_argument, 0, 'T'}, {"threads", required_argument, 0, 't'},
        {"csv", required_argument, 0, 'c'},     {"force", no_argument, 0, 'F'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *model = NULL, *data = NULL, *methods = "full,drrl", *csv = NULL;
    long folds = 10, seed = 1, segment = 16, threads = 0;
    double l2 = 0.01;
    int c, force = 0;
    while ((c = cli_getopt("eval-sentiment", argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'M':
            methods = optarg;
            break;
        case 'c':
            csv = optarg;
            break;
        case 'F':
            force = 1;
            break;
        case 'k':
            if (cli_parse_long("eval-sentiment", "--folds", optarg, 2, 64, &folds))
                return CLI_EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_long("eval-sentiment", "--seed", optarg, 0, 1L << 62, &seed))
                return CLI_EXIT_USAGE;
            break;
        case 'l':
            if (cli_parse_double("eval-sentiment", "--l2", optarg, 1e-12, 1e6, &l2))
                return CLI_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_long("eval-sentiment", "--segment", optarg, 1, 1 << 20, &segment))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_long("eval-sentiment", "--threads", optarg, 1, 256, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            cli_print_usage(usage);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("eval-sentiment", "unexpected argument '%s'", argv[optind]);
    Method ms[16];
    int n_methods = 0;
    DrrlError err;
    {
        char *list = strdup(methods), *save = NULL;
        if (!list)
            return cli_error(DRRL_E_NOMEM, "out of memory");
        for (char *tk = strtok_r(list, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
            if (n_methods == 16 || method_parse(tk, &ms[n_methods], &err) != DRRL_OK) {
                free(list);
                return cli_usage_error("eval-sentiment", "%s",
                                       n_methods == 16 ? "--methods: at most 16" : err.msg);
            }
            attn_cli_resolve_method(&ms[n_methods++]);
        }
        free(list);
        if (!n_methods)
            return cli_usage_error("eval-sentiment", "--methods: no method given");
    }
    char def[4096];
    if (!data) {
        snprintf(def, sizeof def, "%s/sentiment/imdb.tsv", cli_data_dir());
        data = def;
    }
    Sent *s = NULL;
    size_t n = 0;
    int rc = read_tsv(data, &s, &n);
    DrrlError oe; /* --csv checked before the long work (again when written) */
    if (!rc && csv && fileio_out_check(csv, FILEIO_STDOUT | (force ? FILEIO_FORCE : 0), &oe))
        rc = cli_fail(&oe), sents_free(s, n);
    if (rc)
        return rc;
    int *y = malloc((n ? n : 1) * sizeof *y), *fold = malloc((n ? n : 1) * sizeof *fold);
    size_t n1 = 0;
    for (size_t i = 0; y && i < n; i++)
        y[i] = s[i].label, n1 += (size_t)s[i].label;
    Model *m = NULL;
    Tokenizer *tok = NULL;
    float *feat = NULL;
    int32_t *words = NULL;
    size_t *off = NULL, *train = malloc((n ? n : 1) * sizeof *train);
    Result *res = calloc((size_t)n_methods + 1, sizeof *res);
    if (!y || !fold || !train || !res) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
        goto done;
    }
    if (n < (size_t)folds * 2 || n1 < (size_t)folds || n - n1 < (size_t)folds) {
        rc = cli_error(DRRL_E_INPUT, "%s: %zu sentences (%zu positive): too few for %ld folds",
                       data, n, n1, folds);
        goto done;
    }
    if (classify_folds(fold, n, (int)folds, (uint64_t)seed, &err) != DRRL_OK) {
        rc = cli_fail(&err);
        goto done;
    }
    const char *mdir = attn_cli_model_dir(model);
    if (model_load(mdir, &m, &err) != DRRL_OK ||
        tokenizer_load_dir(mdir, m->cfg.vocab, &tok, &err) != DRRL_OK) {
        rc = cli_fail(&err);
        goto done;
    }
    size_t C = (size_t)m->cfg.d_model;
    feat = malloc(n * C * sizeof *feat);
    if (!feat) {
        rc = cli_error(DRRL_E_NOMEM, "out of memory");
        goto done;
    }
    /* naive Bayes reference */
    int32_t V = 0;
    if ((rc = bag_of_words(s, n, &words, &off, &V)))
        goto done;
    snprintf(res[0].name, sizeof res[0].name, "naive-bayes (words)");
    res[0].attn_sav = NAN;
    for (int k = 0; k < folds && !rc; k++) {
        size_t nt = 0, ok = 0, nv = 0;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != k)
                train[nt++] = i;
        ClassifyNB nb;
        if (classify_nb_fit(&nb, words, off, y, V, train, nt, 1.0, &err) != DRRL_OK) {
            rc = cli_fail(&err);
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (fold[i] == k)
                nv++,
                    ok += classify_nb_predict(&nb, words + off[i], off[i + 1] - off[i]) == y[i];
        classify_nb_done(&nb);
        res[0].acc[k] = (double)ok / (double)nv;
    }
    for (int mi = 0; mi < n_methods && !rc; mi++) {
        AttnCoreConfig cfg;
        attn_core_config_default(&cfg);
        cfg.method = ms[mi];
        cfg.segment = (int32_t)segment;
        cfg.measure = 0;
        double fe = 0.0, fx = 0.0;
        if ((rc = features(m, tok, s, n, &cfg, (int)threads, feat, &fe, &fx)))
            break;
        Result *r = &res[mi + 1];
        snprintf(r->name, sizeof r->name, "logreg %s", ms[mi].spec);
        r->attn_sav = fx > 0 ? 1.0 - fe / fx : NAN;
        for (int k = 0; k < folds && !rc; k++) {
            size_t nt = 0, ok = 0, nv = 0;
            for (size_t i = 0; i < n; i++)
                if (fold[i] != k)
                    train[nt++] = i;
            ClassifyLogreg lr;
            if (classify_logreg_fit(&lr, feat, y, n, (int32_t)C, train, nt, l2, &err) !=
                DRRL_OK) {
                rc = cli_fail(&err);
                break;
            }
            for (size_t i = 0; i < n; i++)
                if (fold[i] == k)
                    nv++, ok += (classify_logreg_prob(&lr, feat + i * C) >= 0.5) == (y[i] == 1);
            classify_logreg_done(&lr);
            r->acc[k] = (double)ok / (double)nv;
        }
    }
    if (rc)
        goto done;
    printf("%zu sentences (%zu positive), %ld-fold cross-validation, seed %ld, l2 %g, "
           "segment %ld\n",
           n, n1, folds, seed, l2, segment);
    printf("%-32s %9s %9s %10s\n", "classifier", "accuracy", "std", "attn-sav");
    for (int i = 0; i <= n_methods; i++) {
        classify_mean_std(res[i].acc, (size_t)folds, &res[i].mean, &res[i].std);
        printf("%-32s %8.2f%% %8.2f%% ", res[i].name, 100 * res[i].mean, 100 * res[i].std);
        if (isnan(res[i].attn_sav))
            printf("%10s\n", "-");
        else
            printf("%9.2f%%\n", 100 * res[i].attn_sav);
    }
    FileOut *co;
    if (csv && !(rc = cli_out_open(csv, force, &co))) {
        FILE *f = fileio_out_stream(co);
        fprintf(f, "classifier,folds,seed,accuracy_mean,accuracy_std,attn_savings");
        for (int k = 0; k < folds; k++)
            fprintf(f, ",fold%d", k);
        fprintf(f, "\n");
        for (int i = 0; i <= n_methods; i++) {
            fprintf(f, "%s,%ld,%ld,%.6f,%.6f,", res[i].name, folds, seed, res[i].mean,
                    res[i].std);
            if (!isnan(res[i].attn_sav))
                fprintf(f, "%.6f", res[i].attn_sav);
            for (int k = 0; k < folds; k++)
                fprintf(f, ",%.6f", res[i].acc[k]);
            fprintf(f, "\n");
        }
        rc = cli_out_commit(co);
    }
done:
    sents_free(s, n);
    free(y), free(fold), free(train), free(res), free(feat), free(words), free(off);
    tokenizer_free(tok);
    model_free(m);
    if (!rc && fflush(stdout) != 0)
        rc = cli_error(DRRL_E_IO, "standard output: write error");
    return rc;
}
