/* attn_bench: attention-core savings and wall time of fixed low-rank methods
 * against exact attention, measured in one process (bench/attention_evidence.sh).
 *
 *   attn_bench [--model DIR] [--text FILE] [--lengths 4096,8192] [--reps 3]
 *              [--segment 128] [--threads N] [--fractions 4,2]
 *
 * Without --model it builds a Llama model shaped like tests/fixtures/
 * llama-tiny-b but larger (4 layers, 8 heads of head_dim 64, d_model 512,
 * d_ff 1408, byte vocabulary, 8192 positions) with seeded N(0, 0.02) weights
 * (transformers' initializer_range) and unit norms. Tokens: the text's bytes
 * (byte models) or its tokens, repeated as needed; random bytes without
 * --text.
 *
 * For each length L and method (full, fixed:D/f for each fraction f) it runs
 * `reps` timed passes with --no-exact (methods interleaved, medians
 * reported), then one pass with exact attention alongside for fidelity and
 * the bound check. Prints a Markdown table: the ideal saving 1 - r/D, the
 * attention-core saving from the FLOP ledger, the overhead between them
 * (basis refresh and projections), and wall-time ratios against full from
 * the same run.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "run/session.h"

static uint64_t rs = 0x243F6A8885A308D3ull;
static double gauss(void)
{
    double u1 = rng_unit_open(rng_splitmix64(&rs)), u2 = rng_unit_open(rng_splitmix64(&rs));
    return rng_box_muller(u1, u2);
}

static Model *random_model(void)
{
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_LLAMA;
    c.n_layer = 4, c.n_head = 8, c.n_kv_head = 8, c.head_dim = 64, c.d_model = 512;
    c.d_ff = 1408, c.vocab = 256, c.n_ctx = 8192;
    c.norm_eps = 1e-5, c.rope_theta = 10000.0, c.tied = 1, c.scale_attn = 1;
    snprintf(c.tokenizer, sizeof c.tokenizer, "byte");
    Model *m;
    DrrlError e;
    if (model_new(&c, &m, &e)) {
        fprintf(stderr, "attn_bench: %s\n", e.msg);
        return NULL;
    }
    rs = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < m->arena_floats; i++)
        m->arena[i] = (float)(0.02 * gauss());
    size_t LC = (size_t)c.n_layer * c.d_model;
    for (size_t i = 0; i < LC; i++)
        m->ln1_w[i] = 1.0f, m->ln2_w[i] = 1.0f;
    for (int i = 0; i < c.d_model; i++)
        m->lnf_w[i] = 1.0f;
    model_rehash(m);
    return m;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct Res {
    double attn_sav, sav, wall[16], attn_wall[16], fid;
    int64_t viol;
} Res;

static int one_run(const char *model_dir, const char *spec, int32_t *ids, size_t L, int T,
                   int threads, int measure, Res *r, int rep)
{
    AttnCoreConfig cfg;
    attn_core_config_default(&cfg);
    DrrlError e;
    if (method_parse(spec, &cfg.method, &e))
        return fprintf(stderr, "attn_bench: %s\n", e.msg), 1;
    cfg.segment = T;
    cfg.measure = measure;
    Session *s;
    DrrlStatus st;
    if (model_dir) {
        st = session_open(model_dir, &cfg, threads, &s, &e);
    } else {
        Model *m = random_model();
        if (!m)
            return 1;
        st = session_new(m, NULL, &cfg, threads, &s, &e);
    }
    if (st || session_set_ids(s, ids, L, &e) || session_advance(s, L, NULL, &e)) {
        fprintf(stderr, "attn_bench: %s\n", e.msg);
        session_free(s);
        return 1;
    }
    AttnCore *ac = session_core(s);
    const FlopLedger *ex = attn_core_flops_executed(ac), *xx = attn_core_flops_exact(ac);
    const AttnCoreStats *as = attn_core_stats(ac);
    if (measure) {
        r->fid = as->rows ? as->fidelity_sum / as->rows : NAN;
        r->viol = as->violations;
    } else {
        r->attn_sav = 1.0 - flops_attn(ex) / flops_attn(xx);
        r->sav = 1.0 - flops_total(ex) / flops_total(xx);
        r->wall[rep] = session_wall_s(s);
        r->attn_wall[rep] = as->attn_wall_s;
    }
    session_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *lengths = "4096,8192", *fracs = "4,2";
    int reps = 3, T = 128, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "attn_bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--text"))
            text = v;
        else if (!strcmp(a, "--lengths"))
            lengths = v;
        else if (!strcmp(a, "--fractions"))
            fracs = v;
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--segment"))
            T = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else {
            fprintf(stderr, "attn_bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (reps < 1 || reps > 16 || T < 1) {
        fprintf(stderr, "attn_bench: --reps 1..16, --segment >= 1\n");
        return 2;
    }
    /* model shape and tokens */
    int D, vocab;
    Tokenizer *tok = NULL;
    if (model) {
        ModelConfig c;
        DrrlError e;
        if (model_config_load(model, &c, &e)) {
            fprintf(stderr, "attn_bench: %s\n", e.msg);
            return 2;
        }
        D = c.head_dim, vocab = c.vocab;
        if (tokenizer_load_dir(model, vocab, &tok, &e))
            tok = NULL;
    } else {
        D = 64, vocab = 256;
        tok = tokenizer_bytes_new();
    }
    size_t maxL = 0;
    size_t Ls[8];
    int nL = 0;
    for (const char *p = lengths; *p && nL < 8;) {
        Ls[nL] = strtoul(p, (char **)&p, 10);
        if (Ls[nL] > maxL)
            maxL = Ls[nL];
        nL++;
        if (*p == ',')
            p++;
    }
    int32_t *ids = malloc(maxL * sizeof *ids);
    size_t have = 0;
    if (text && tok) {
        FILE *f = fopen(text, "rb");
        if (!f) {
            fprintf(stderr, "attn_bench: cannot open %s\n", text);
            return 2;
        }
        size_t cap = maxL * 8;
        char *buf = malloc(cap);
        size_t n = fread(buf, 1, cap, f);
        fclose(f);
        int32_t *t = NULL;
        size_t nt = 0;
        DrrlError e;
        if (tokenizer_encode(tok, buf, n, &t, &nt, &e) || nt == 0) {
            fprintf(stderr, "attn_bench: cannot tokenize %s\n", text);
            return 2;
        }
        for (have = 0; have < maxL; have++)
            ids[have] = t[have % nt];
        free(t), free(buf);
    } else {
        for (have = 0; have < maxL; have++)
            ids[have] = (int32_t)(fabs(gauss()) * 1e6) % vocab;
    }
    tokenizer_free(tok);
    char specs[8][32];
    int nm = 0;
    snprintf(specs[nm++], 32, "full");
    for (const char *p = fracs; *p && nm < 8;) {
        int f = (int)strtol(p, (char **)&p, 10);
        if (f >= 1)
            snprintf(specs[nm++], 32, "fixed:%d", D / f);
        if (*p == ',')
            p++;
    }
    printf("| L | method | r/D | ideal 1-r/D | attn-core savings (ledger) | overhead | "
           "whole-model savings | wall s (median of %d) | wall ratio | attn-core time ratio | "
           "fidelity | bound violations |\n",
           reps);
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (int li = 0; li < nL; li++) {
        Res res[8];
        memset(res, 0, sizeof res);
        for (int rep = 0; rep < reps; rep++)
            for (int mi = 0; mi < nm; mi++)
                if (one_run(model, specs[mi], ids, Ls[li], T, threads, 0, &res[mi], rep))
                    return 1;
        for (int mi = 0; mi < nm; mi++)
            if (one_run(model, specs[mi], ids, Ls[li], T, threads, 1, &res[mi], 0))
                return 1;
        double w[8], aw[8];
        for (int mi = 0; mi < nm; mi++) {
            qsort(res[mi].wall, (size_t)reps, sizeof(double), cmpd);
            qsort(res[mi].attn_wall, (size_t)reps, sizeof(double), cmpd);
            w[mi] = res[mi].wall[reps / 2];
            aw[mi] = res[mi].attn_wall[reps / 2];
        }
        for (int mi = 0; mi < nm; mi++) {
            int r = mi == 0 ? D : atoi(specs[mi] + 6);
            double ideal = 1.0 - (double)r / D;
            printf(
                "| %zu | %s | %d/%d | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.3f | %.3f | %.3f | "
                "%.4f | %lld |\n",
                Ls[li], specs[mi], r, D, 100 * ideal, 100 * res[mi].attn_sav,
                100 * (ideal - res[mi].attn_sav), 100 * res[mi].sav, w[mi], w[mi] / w[0],
                aw[mi] / aw[0], res[mi].fid, (long long)res[mi].viol);
        }
        fflush(stdout);
    }
    free(ids);
    return 0;
}
