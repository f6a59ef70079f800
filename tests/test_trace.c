/* Tests of the trace store and trace files (src/trace/trace_store.c, src/trace/trace_csv.c). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "fixture.h"
#include "test_util.h"
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace/trace_csv.h"
#include "trace/trace_store.h"

/* ---- fixtures ---- */

TEST_SUITE_TMPDIR(trace_csv, dir, "test-trace");

static const char *in_dir(const char *name)
{
    return test_path(dir, name);
}

static int n_files(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* Deterministic record content: tokens with CSV and escaping hazards. */
static const char *tokens[] = {"the",         " quote\"d",         "a,b",         "line\nbreak",
                               "back\\slash", "\xff\xfe bad utf8", "caf\xc3\xa9", "\t"};

typedef struct Gen {
    float sigma[16], sigma_v[16], probs[4];
    int32_t masked[3];
    TraceRecord rec;
} Gen;

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352d;
    x ^= x >> 15;
    x *= 0x846ca68b;
    return x ^ (x >> 16);
}

static double unit(uint32_t seed)
{
    return (mix(seed) >> 8) / 16777216.0;
}

static const TraceRecord *gen(Gen *g, int64_t step, int32_t layer, int32_t head)
{
    uint32_t s = (uint32_t)(step * 131 + layer * 17 + head);
    TraceRecord *r = &g->rec;
    memset(r, 0, sizeof *r);
    r->step = step;
    r->token_index = step;
    r->token = tokens[step % 8];
    r->segment = (int32_t)(step / 4);
    r->layer = layer;
    r->head = head;
    r->method = "drrl";
    r->head_dim = 16;
    r->rank = 4 * (1 + (int32_t)(mix(s) % 4));
    r->energy_kept = unit(s + 1);
    for (int i = 0; i < 16; i++) {
        g->sigma[i] = (float)(10.0 * unit(s * 7 + (uint32_t)i) / (i + 1));
        g->sigma_v[i] = (float)(3.0 / (i + 1));
    }
    r->n_sigma = 16;
    r->sigma = g->sigma;
    r->n_sigma_v = head == 1 ? 0 : 16; /* one head without value spectrum */
    r->sigma_v = g->sigma_v;
    r->tail_bound = unit(s + 2) * 1e-3;
    r->sin_theta_bound = unit(s + 3);
    r->output_bound = 0.1 / 3.0;
    r->threshold = 0.05;
    r->n_masked = (int32_t)(mix(s + 4) % 3);
    for (int i = 0; i < r->n_masked; i++)
        g->masked[i] = 4 * (i + 1);
    r->masked = g->masked;
    r->measured_error = unit(s + 5) * 1e-4;
    r->fidelity = 1.0 - unit(s + 6) * 1e-6;
    r->flops_exact = 4.0 * 16 * (double)(step + 1);
    r->flops_executed = r->flops_exact * 0.5 + 3;
    r->savings_cum = 0.25;
    r->n_policy = step % 2 ? 4 : 0;
    for (int i = 0; i < 4; i++)
        g->probs[i] = (float)(0.1 * (i + 1));
    r->policy_probs = g->probs;
    r->value = step % 2 ? -0.5 : NAN;
    r->reward = step % 3 ? 1e-30 : INFINITY;
    r->wall_ns = 1000 + step;
    return r;
}

static void meta_fill(TraceMeta *m)
{
    static int32_t grid[] = {4, 8, 12, 16};
    fixture_trace_meta(m, "drrl", 42, 2, 3, 16, 4, 4, grid);
    m->drrl_version = "test";
    m->model_path = "tests/fixtures/gpt2-tiny-b";
    m->model_hash = "abc123";
    m->model_hash_algo = "xxh64-tree";
    m->text_hash = "def456";
}

/* Put the records of steps x layers x heads into w, in order, stopping after
 * max_rows of them. */
static void put_rows(TraceCsvWriter *w, int steps, int layers, int heads, long max_rows)
{
    Gen g;
    DrrlError e;
    long n = 0;
    for (int s = 0; s < steps; s++)
        for (int l = 0; l < layers; l++)
            for (int h = 0; h < heads && n < max_rows; h++, n++)
                cr_assert_eq(trace_csv_writer_put(w, gen(&g, s, l, h), &e), DRRL_OK, "%s",
                             e.msg);
}

/* Write steps x 2 layers x 3 heads to path. */
static DrrlStatus write_trace(const char *path, int steps, unsigned flags, int interrupted)
{
    TraceMeta m;
    meta_fill(&m);
    TraceCsvWriter *w;
    DrrlError e;
    DrrlStatus st = trace_csv_writer_open(&w, path, &m, flags, &e);
    if (st)
        return st;
    put_rows(w, steps, 2, 3, LONG_MAX);
    return trace_csv_writer_finish(w, interrupted, &e);
}

static int feq(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* a and b agree field by field: integers and strings exactly, the REAL
 * columns as float32 (what the file keeps), the F64 ones as doubles, NaN
 * equal to NaN; each failure names the field. */
#define SAME(f) cr_assert_eq(a->f, b->f, #f)
#define SAME_STR(f) cr_assert_str_eq(a->f, b->f, #f)
#define SAME_F32(f) cr_assert(feq((float)a->f, (float)b->f), #f)
#define SAME_F64(f) cr_assert(feq(a->f, b->f), #f)
#define SAME_LIST(n, v)                                                                        \
    do {                                                                                       \
        SAME(n);                                                                               \
        for (int i = 0; i < a->n; i++)                                                         \
            cr_assert_eq(a->v[i], b->v[i], #v "[%d]", i);                                      \
    } while (0)

static void expect_same(const TraceRecord *a, const TraceRecord *b)
{
    SAME(step);
    SAME(token_index);
    SAME_STR(token);
    SAME(segment);
    SAME(layer);
    SAME(head);
    SAME_STR(method);
    SAME(rank);
    SAME(head_dim);
    SAME_F32(energy_kept);
    SAME_LIST(n_sigma, sigma);
    SAME_LIST(n_sigma_v, sigma_v);
    SAME_F32(tail_bound);
    SAME_F32(sin_theta_bound);
    SAME_F32(output_bound);
    SAME_F32(threshold);
    SAME_LIST(n_masked, masked);
    SAME_F32(measured_error);
    SAME_F32(fidelity);
    SAME_F64(flops_exact);
    SAME_F64(flops_executed);
    SAME_F32(savings_cum);
    SAME_LIST(n_policy, policy_probs);
    SAME_F32(value);
    SAME_F32(reward);
    SAME(wall_ns);
}

/* Replace the first occurrence of from with to. */
static void replace(char **text, const char *from, const char *to)
{
    char *at = strstr(*text, from);
    cr_assert_not_null(at, "'%s' not in the text", from);
    size_t n = strlen(*text), a = strlen(from), b = strlen(to);
    char *out = malloc(n - a + b + 1);
    size_t pre = (size_t)(at - *text);
    memcpy(out, *text, pre);
    memcpy(out + pre, to, b);
    memcpy(out + pre + b, at + a, n - pre - a + 1);
    free(*text);
    *text = out;
}

/* ---- the store ---- */

Test(trace_store, put_get_dense_grid)
{
    TraceStore *s = trace_store_new();
    Gen g;
    DrrlError e;
    for (int st = 0; st < 5; st++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 3; h++)
                cr_assert_eq(trace_store_put(s, gen(&g, st, l, h), &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(trace_store_n_rows(s), 30);
    cr_assert_eq(trace_store_n_steps(s), 5);
    cr_assert_eq(trace_store_n_layers(s), 2);
    cr_assert_eq(trace_store_n_heads(s), 3);
    for (int st = 0; st < 5; st++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 3; h++) {
                const TraceRecord *r = trace_store_get(s, st, l, h);
                cr_assert_not_null(r);
                expect_same(r, gen(&g, st, l, h));
                TraceRecord c;
                cr_assert(trace_store_read(s, st, l, h, &c));
                expect_same(&c, gen(&g, st, l, h));
                cr_assert_eq(c.sigma, r->sigma, "both views point into the store");
            }
    cr_assert_null(trace_store_get(s, 5, 0, 0));
    cr_assert_null(trace_store_get(s, 0, 2, 0));
    cr_assert_null(trace_store_get(s, 0, 0, 3));
    cr_assert_null(trace_store_get(s, -1, 0, 0));
    const TraceRecord *first = trace_store_get(s, 2, 1, 1);
    cr_assert_eq(trace_store_get(s, 2, 1, 1), first, "pointers are stable");
    cr_assert_eq(trace_store_step_at(s, 3), 3);
    cr_assert_eq(trace_store_step_index(s, 4), 4);
    cr_assert_eq(trace_store_step_at(s, 5), -1);
    cr_assert_null(trace_store_meta(s));
    trace_store_free(s);
    trace_store_free(NULL);
}

Test(trace_store, sparse_steps_and_heads)
{
    TraceStore *s = trace_store_new();
    Gen g;
    DrrlError e;
    /* steps 3, 7, 100; step 7 lacks (0,1) and (1,0) */
    int64_t steps[] = {3, 7, 100};
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 3; h++) {
                if (steps[k] == 7 && ((l == 0 && h == 1) || (l == 1 && h == 0)))
                    continue;
                cr_assert_eq(trace_store_put(s, gen(&g, steps[k], l, h), &e), DRRL_OK);
            }
    cr_assert_eq(trace_store_n_steps(s), 3);
    cr_assert_eq(trace_store_n_rows(s), 16);
    cr_assert_null(trace_store_get(s, 7, 0, 1));
    cr_assert_null(trace_store_get(s, 7, 1, 0));
    cr_assert_null(trace_store_get(s, 4, 0, 0));
    expect_same(trace_store_get(s, 7, 1, 2), gen(&g, 7, 1, 2));
    expect_same(trace_store_get(s, 100, 0, 0), gen(&g, 100, 0, 0));
    cr_assert_eq(trace_store_step_index(s, 100), 2);
    cr_assert_eq(trace_store_step_index(s, 50), -1);
    TraceRecord r;
    cr_assert(trace_store_row(s, 7, &r));
    cr_assert_eq(r.step, 7);
    cr_assert_eq(r.layer, 0);
    cr_assert_eq(r.head, 2);
    cr_assert_not(trace_store_row(s, 16, &r));
    trace_store_free(s);
}

Test(trace_store, rejects_disorder_and_inconsistent_steps)
{
    TraceStore *s = trace_store_new();
    Gen g;
    DrrlError e;
    cr_assert_eq(trace_store_put(s, gen(&g, 1, 0, 1), &e), DRRL_OK);
    cr_assert_eq(trace_store_put(s, gen(&g, 1, 0, 1), &e), DRRL_E_INPUT, "repeat");
    cr_assert_eq(trace_store_put(s, gen(&g, 1, 0, 0), &e), DRRL_E_INPUT, "head goes back");
    cr_assert_eq(trace_store_put(s, gen(&g, 0, 1, 0), &e), DRRL_E_INPUT, "step goes back");
    cr_assert(strstr(e.msg, "ordered") != NULL, "%s", e.msg);
    TraceRecord r = *gen(&g, 1, 1, 0);
    r.token_index = 5;
    cr_assert_eq(trace_store_put(s, &r, &e), DRRL_E_INPUT, "token_index changes in a step");
    r = *gen(&g, 2, 0, 0);
    r.rank = 17;
    cr_assert_eq(trace_store_put(s, &r, &e), DRRL_E_INPUT, "rank > head_dim");
    r = *gen(&g, 2, 0, 0);
    r.layer = -1;
    cr_assert_eq(trace_store_put(s, &r, &e), DRRL_E_INPUT);
    cr_assert_eq(trace_store_n_rows(s), 1);
    trace_store_free(s);
}

Test(trace_store, equal_arrays_are_shared_across_steps)
{
    TraceStore *a = trace_store_new(), *b = trace_store_new();
    Gen g;
    DrrlError e;
    for (int st = 0; st < 50; st++) {
        TraceRecord r = *gen(&g, 0, 0, 0);
        r.step = r.token_index = st;
        r.token = "x";
        r.segment = 0;
        cr_assert_eq(trace_store_put(a, &r, &e), DRRL_OK);
        cr_assert_eq(trace_store_put(b, gen(&g, st, 0, 0), &e), DRRL_OK);
    }
    cr_assert_eq(trace_store_get(a, 0, 0, 0)->sigma, trace_store_get(a, 49, 0, 0)->sigma);
    cr_assert_eq(trace_store_get(a, 49, 0, 0)->sigma_v, trace_store_get(a, 1, 0, 0)->sigma_v);
    cr_assert_neq(trace_store_get(b, 0, 0, 0)->sigma, trace_store_get(b, 49, 0, 0)->sigma);
    trace_store_free(a);
    trace_store_free(b);
}

/* ---- writing ---- */

Test(trace_csv, round_trip_is_byte_identical)
{
    const char *a = in_dir("a.csv"), *b = in_dir("b.csv");
    cr_assert_eq(write_trace(a, 9, 0, 0), DRRL_OK);
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(a, &s, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(trace_store_n_rows(s), 9 * 6);
    Gen g;
    for (int st = 0; st < 9; st++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 3; h++)
                expect_same(trace_store_get(s, st, l, h), gen(&g, st, l, h));
    const TraceMeta *m = trace_store_meta(s);
    cr_assert_not_null(m);
    cr_assert_str_eq(m->model_hash, "abc123");
    cr_assert_str_eq(m->model_hash_algo, "xxh64-tree");
    cr_assert_eq(m->seed, 42);
    cr_assert_eq(m->n_grid, 4);
    cr_assert_eq(m->rank_grid[3], 16);
    cr_assert_eq(m->n_steps, 9);
    cr_assert_eq(m->eps_decay, 0.999);
    cr_assert_eq(trace_csv_write_store(b, s, 0, &e), DRRL_OK, "%s", e.msg);
    trace_store_free(s);
    size_t na, nb;
    char *ta = test_slurp(a, &na), *tb = test_slurp(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(ta, tb, na) == 0, "CSV differs after a round trip");
    free(ta);
    free(tb);
    ta = test_slurp(in_dir("a.csv.json"), &na);
    tb = test_slurp(in_dir("b.csv.json"), &nb);
    cr_assert_str_eq(ta, tb);
    free(ta);
    free(tb);
}

Test(trace_csv, same_records_give_identical_bytes)
{
    cr_assert_eq(write_trace(in_dir("1.csv"), 8, 0, 0), DRRL_OK);
    cr_assert_eq(write_trace(in_dir("2.csv"), 8, 0, 0), DRRL_OK);
    char *a = test_slurp(in_dir("1.csv"), NULL), *b = test_slurp(in_dir("2.csv"), NULL);
    cr_assert_str_eq(a, b);
    /* Fixed formats: header, quoting, escapes, NaN/Inf, FLOPs as integers. */
    cr_assert(
        strncmp(a, "step,token_index,token,segment,layer,head,method,rank,head_dim,", 63) == 0);
    cr_assert(strstr(a, "\" quote\"\"d\"") != NULL, "libcsv doubles quotes");
    cr_assert(strstr(a, "\"line\\x0Abreak\"") != NULL, "newline escaped");
    cr_assert(strstr(a, "\"back\\\\slash\"") != NULL);
    cr_assert(strstr(a, "\"\\xFF\\xFE bad utf8\"") != NULL, "invalid UTF-8 escaped");
    cr_assert(strstr(a, "\"caf\xc3\xa9\"") != NULL, "valid UTF-8 kept");
    cr_assert(strstr(a, ",NaN,") != NULL);
    cr_assert(strstr(a, ",Inf,") != NULL);
    cr_assert(strstr(a, ",0.0333333351,") != NULL, "%.9g of float32(0.1/3)");
    cr_assert(strstr(a, ",64,35,") != NULL, "FLOPs 64 and 35 written as integers");
    free(a);
    free(b);
}

Test(trace_csv, no_timing_leaves_wall_ns_empty)
{
    cr_assert_eq(write_trace(in_dir("t.csv"), 2, TRACE_CSV_NO_TIMING, 0), DRRL_OK);
    char *a = test_slurp(in_dir("t.csv"), NULL);
    cr_assert(strstr(a, ",1000\n") == NULL);
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(in_dir("t.csv"), &s, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(trace_store_get(s, 1, 1, 2)->wall_ns, -1);
    trace_store_free(s);
    free(a);
}

Test(trace_csv, never_overwrites_without_force)
{
    const char *p = in_dir("t.csv");
    test_spit(p, "precious\n");
    TraceMeta m;
    meta_fill(&m);
    TraceCsvWriter *w = (TraceCsvWriter *)1;
    DrrlError e;
    cr_assert_eq(trace_csv_writer_open(&w, p, &m, 0, &e), DRRL_E_EXISTS);
    cr_assert_null(w);
    cr_assert(strstr(e.msg, "--force") != NULL, "%s", e.msg);
    char *t = test_slurp(p, NULL);
    cr_assert_str_eq(t, "precious\n");
    free(t);
    cr_assert_eq(n_files(), 1, "no temporary file left");
    /* A sidecar alone also blocks. */
    unlink(p);
    test_spit(in_dir("t.csv.json"), "{}");
    cr_assert_eq(write_trace(p, 1, 0, 0), DRRL_E_EXISTS);
    cr_assert_eq(write_trace(p, 1, TRACE_CSV_FORCE, 0), DRRL_OK);
    TraceStore *s;
    cr_assert_eq(trace_csv_load(p, &s, &e), DRRL_OK, "%s", e.msg);
    trace_store_free(s);
    cr_assert_eq(n_files(), 2);
}

Test(trace_csv, atomic_nothing_visible_until_finish_and_nothing_left_on_failure)
{
    const char *p = in_dir("t.csv");
    TraceMeta m;
    meta_fill(&m);
    TraceCsvWriter *w;
    DrrlError e;
    Gen g;
    cr_assert_eq(trace_csv_writer_open(&w, p, &m, 0, &e), DRRL_OK);
    cr_assert_eq(trace_csv_writer_put(w, gen(&g, 0, 0, 0), &e), DRRL_OK);
    cr_assert_neq(access(p, F_OK), 0, "target appears only at finish");
    cr_assert_eq(n_files(), 1, "one temporary file");
    /* A bad record is refused; aborting removes everything. */
    cr_assert_eq(trace_csv_writer_put(w, gen(&g, 0, 0, 0), &e), DRRL_E_INPUT);
    trace_csv_writer_abort(w);
    cr_assert_eq(n_files(), 0);
    trace_csv_writer_abort(NULL);
    /* An impossible directory: error, nothing created. */
    cr_assert_eq(trace_csv_writer_open(&w, in_dir("no/such/dir/t.csv"), &m, 0, &e),
                 DRRL_E_NOTFOUND);
    cr_assert(strstr(e.msg, "no/such/dir/t.csv") != NULL, "%s", e.msg);
    cr_assert_eq(n_files(), 0);
    /* The target appears while recording: it is not replaced, rows are kept. */
    cr_assert_eq(trace_csv_writer_open(&w, p, &m, 0, &e), DRRL_OK);
    cr_assert_eq(trace_csv_writer_put(w, gen(&g, 0, 0, 0), &e), DRRL_OK);
    test_spit(p, "someone else's\n");
    cr_assert_eq(trace_csv_writer_finish(w, 0, &e), DRRL_E_EXISTS);
    cr_assert(strstr(e.msg, "kept in") != NULL, "%s", e.msg);
    char *t = test_slurp(p, NULL);
    cr_assert_str_eq(t, "someone else's\n");
    free(t);
    cr_assert_eq(n_files(), 2, "target + the kept temporary file");
}

Test(trace_csv, interrupted_run_is_a_valid_partial_trace)
{
    const char *p = in_dir("t.csv");
    TraceMeta m;
    meta_fill(&m);
    TraceCsvWriter *w;
    DrrlError e;
    cr_assert_eq(trace_csv_writer_open(&w, p, &m, 0, &e), DRRL_OK);
    put_rows(w, 3, 2, 3, 15); /* stopped in the middle of step 2 */
    cr_assert_eq(trace_csv_writer_rows(w), 15);
    cr_assert_eq(trace_csv_writer_finish(w, 1, &e), DRRL_OK, "%s", e.msg);
    TraceStore *s;
    cr_assert_eq(trace_csv_load(p, &s, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(trace_store_n_rows(s), 15);
    cr_assert_eq(trace_store_n_steps(s), 3);
    cr_assert_null(trace_store_get(s, 2, 1, 0));
    trace_store_free(s);
    TraceMeta mm;
    int complete = 1;
    size_t rows = 0;
    cr_assert_eq(trace_csv_read_meta(p, &mm, &rows, &complete, &e), DRRL_OK);
    cr_assert_eq(complete, 0);
    cr_assert_eq(rows, 15);
    trace_meta_done(&mm);
}

Test(trace_csv, empty_trace_is_valid)
{
    cr_assert_eq(write_trace(in_dir("t.csv"), 0, 0, 1), DRRL_OK);
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(in_dir("t.csv"), &s, &e), DRRL_OK, "%s", e.msg);
    cr_assert_eq(trace_store_n_rows(s), 0);
    cr_assert_null(trace_store_get(s, 0, 0, 0));
    trace_store_free(s);
}

Test(trace_csv, parallel_load_of_many_windows_equals_sequential_read)
{
    /* About 24 MB: several load windows, each split between threads. */
    const char *p = in_dir("big.csv");
    TraceMeta m;
    meta_fill(&m);
    m.n_layer = 4;
    m.n_head = 4;
    TraceCsvWriter *w;
    DrrlError e;
    Gen g;
    cr_assert_eq(trace_csv_writer_open(&w, p, &m, 0, &e), DRRL_OK);
    put_rows(w, 3000, 4, 4, LONG_MAX);
    cr_assert_eq(trace_csv_writer_finish(w, 0, &e), DRRL_OK);
    TraceStore *a, *b = trace_store_new();
    cr_assert_eq(trace_csv_load(p, &a, &e), DRRL_OK, "%s", e.msg);
    TraceSink sink = trace_store_sink(b);
    TraceMeta mb;
    cr_assert_eq(trace_csv_read(p, &mb, &sink, &e), DRRL_OK, "%s", e.msg);
    trace_meta_done(&mb);
    cr_assert_eq(trace_store_n_rows(a), 48000);
    cr_assert_eq(trace_store_n_rows(b), 48000);
    for (size_t i = 0; i < 48000; i += 7) {
        TraceRecord ra, rb;
        cr_assert(trace_store_row(a, i, &ra));
        cr_assert(trace_store_row(b, i, &rb));
        expect_same(&ra, &rb);
        expect_same(&ra, gen(&g, ra.step, ra.layer, ra.head));
    }
    trace_store_free(a);
    trace_store_free(b);
}

Test(trace_csv, raw_line_break_in_a_quoted_field_still_loads)
{
    const char *p = in_dir("t.csv");
    cr_assert_eq(write_trace(p, 8, 0, 0), DRRL_OK);
    char *t = test_slurp(p, NULL);
    replace(&t, "\"line\\x0Abreak\"", "\"line\nbreak\"");
    test_spit(p, t);
    free(t);
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(p, &s, &e), DRRL_OK, "%s", e.msg);
    cr_assert_str_eq(trace_store_get(s, 3, 1, 2)->token, "line\nbreak");
    cr_assert_eq(trace_store_n_rows(s), 48);
    trace_store_free(s);
}

/* ---- reading malformed input ---- */

/* The start of line k (1-based). */
static char *line_at(char *t, int k)
{
    for (int i = 1; i < k; i++)
        t = strchr(t, '\n') + 1;
    return t;
}

static void e_bad_number(char **t)
{
    /* row 3 (line 4): the rank field */
    char *l = line_at(*t, 4);
    char *f = l;
    for (int i = 0; i < 7; i++) /* skip 7 fields; token has no comma in step 0 */
        f = strchr(f, ',') + 1;
    *f = 'x';
}
static void e_bad_list_item(char **t)
{
    char *l = line_at(*t, 2);
    char *semi = strchr(l, ';');
    *semi = '!';
}
static void e_column_count(char **t)
{
    char *l = line_at(*t, 3);
    char *nl = strchr(l, '\n');
    char *c = nl;
    while (*c != ',')
        c--;
    memmove(c, nl, strlen(nl) + 1); /* drop the last field */
}
static void e_truncated(char **t)
{
    size_t n = strlen(*t);
    (*t)[n - 7] = '\0'; /* cut inside the last row */
}
static void e_truncated_rows(char **t)
{
    char *l = line_at(*t, 7);
    *l = '\0'; /* the file ends cleanly after 5 rows: only the sidecar tells */
}
static void e_order(char **t)
{
    /* line 3 (step 0, layer 0, head 1) -> head 0 again */
    char *l = line_at(*t, 3);
    char *f = l;
    for (int i = 0; i < 5; i++)
        f = strchr(f, ',') + 1;
    *f = '0';
}
static void e_empty(char **t)
{
    (*t)[0] = '\0';
}

/* A malformed trace: a valid 3-step trace with one file (t.csv or its
 * sidecar t.csv.json) edited, by replacing from with to or by edit; loading
 * it must fail with DRRL_E_INPUT and a message starting with the directory
 * and then want. */
typedef struct BadTrace {
    const char *what, *file, *from, *to;
    void (*edit)(char **text);
    const char *want;
} BadTrace;

static const BadTrace bad_traces[] = {
    {"wrong header", "t.csv", "tail_bound", "tail_bnd", NULL,
     "/t.csv:1:13: missing column 'tail_bound'"},
    {"missing column", "t.csv", "sigma_v,", "", NULL, "/t.csv:1:12: missing column 'sigma_v'"},
    {"columns out of order", "t.csv", "layer,head", "head,layer", NULL,
     "/t.csv:1:5: wrong header: column 5 is 'head', expected 'layer'"},
    {"bad number", "t.csv", NULL, NULL, e_bad_number, "/t.csv:4:8: column 'rank': 'x"},
    {"bad list item", "t.csv", NULL, NULL, e_bad_list_item,
     "/t.csv:2:11: column 'sigma': item 1"},
    {"wrong column count", "t.csv", NULL, NULL, e_column_count,
     "/t.csv:3:26: wrong column count: 26 fields, expected 27"},
    {"truncated last row", "t.csv", NULL, NULL, e_truncated, "/t.csv:19:26: truncated file"},
    {"truncated at a row boundary", "t.csv", NULL, NULL, e_truncated_rows,
     "/t.csv: 5 rows, but the sidecar says 18"},
    {"unknown schema version", "t.csv.json", "\"schema_version\": 1", "\"schema_version\": 2",
     NULL, "/t.csv.json: unknown schema version 2"},
    {"sidecar head_dim mismatch", "t.csv.json", "\"head_dim\": 16", "\"head_dim\": 8", NULL,
     "/t.csv:2:9: head_dim 16, but the sidecar says 8"},
    {"sidecar method mismatch", "t.csv.json", "\"method\": \"drrl\"", "\"method\": \"fixed:8\"",
     NULL, "/t.csv:2:7: method 'drrl', but the sidecar says 'fixed:8'"},
    {"sidecar json syntax", "t.csv.json", "\"seed\": 42,", "\"seed\": 42,,", NULL,
     "/t.csv.json:9:"},
    {"malformed quotes", "t.csv", "\"the\"", "\"th\"e\"", NULL, "/t.csv:2:3: malformed CSV"},
    {"malformed escape", "t.csv", "\"the\"", "\"t\\qhe\"", NULL,
     "/t.csv:2:3: column 'token': malformed escape"},
    {"rows out of order", "t.csv", NULL, NULL, e_order,
     "/t.csv:3: trace record: step 0 layer 0 head 0 after"},
    {"empty file", "t.csv", NULL, NULL, e_empty, "/t.csv:1: empty file"},
};

#define N_BAD_TRACES (sizeof bad_traces / sizeof bad_traces[0])

/* The parameter is an index into bad_traces (Criterion copies parameters
 * into the worker; the table's pointers are the worker's own). */
ParameterizedTestParameters(trace_csv, malformed_input)
{
    static size_t index[N_BAD_TRACES];
    for (size_t i = 0; i < N_BAD_TRACES; i++)
        index[i] = i;
    return cr_make_param_array(size_t, index, N_BAD_TRACES);
}

ParameterizedTest(const size_t *i, trace_csv, malformed_input)
{
    const BadTrace *c = &bad_traces[*i];
    const char *p = in_dir("t.csv");
    cr_assert_eq(write_trace(p, 3, 0, 0), DRRL_OK);
    char *t = test_slurp(in_dir(c->file), NULL);
    if (c->edit)
        c->edit(&t);
    else
        replace(&t, c->from, c->to);
    test_spit(in_dir(c->file), t);
    free(t);
    TraceStore *s = (TraceStore *)1;
    DrrlError e;
    DrrlStatus st = trace_csv_load(p, &s, &e);
    cr_assert_eq(st, DRRL_E_INPUT, "%s: status %d: %s", c->what, st, e.msg);
    cr_assert_null(s);
    char full[600];
    snprintf(full, sizeof full, "%s%s", dir, c->want);
    cr_assert(strncmp(e.msg, full, strlen(full)) == 0, "%s: got '%s', want prefix '%s'",
              c->what, e.msg, full);
}

Test(trace_csv, missing_files)
{
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(in_dir("none.csv"), &s, &e), DRRL_E_NOTFOUND);
    test_spit(in_dir("alone.csv"), "step\n");
    cr_assert_eq(trace_csv_load(in_dir("alone.csv"), &s, &e), DRRL_E_INPUT);
    cr_assert(strstr(e.msg, "sidecar is missing") != NULL, "%s", e.msg);
}

/* ---- diff ---- */

#include "trace/trace_diff.h"

static TraceStore *store_of(int steps, int32_t bump_step, int32_t bump_layer, int skip_last)
{
    TraceStore *s = trace_store_new();
    Gen g;
    DrrlError e;
    for (int st = 0; st < steps; st++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 3; h++) {
                if (skip_last && st == steps - 1 && l == 1 && h == 2)
                    continue;
                TraceRecord r = *gen(&g, st, l, h);
                if (st == bump_step && l == bump_layer && h == 0) {
                    r.rank = r.rank == 16 ? 4 : 16;
                    r.measured_error += 0.5;
                    r.flops_executed *= 2;
                }
                cr_assert_eq(trace_store_put(s, &r, &e), DRRL_OK);
            }
    return s;
}

Test(trace_diff, identical_traces)
{
    TraceStore *a = store_of(4, -1, 0, 0), *b = store_of(4, -1, 0, 0);
    TraceDiff d;
    cr_assert_eq(trace_diff_compute(a, b, 0, &d, NULL), DRRL_OK);
    cr_assert(d.identical);
    cr_assert_not(d.has_first);
    cr_assert_eq(d.aligned, 24);
    cr_assert_eq(d.n_layers, 2);
    cr_assert_eq(d.layers[1].aligned, 12);
    cr_assert_eq(d.layers[1].rank_sum_a, d.layers[1].rank_sum_b);
    trace_diff_done(&d);
    /* wall_ns only counts with TRACE_DIFF_TIMING */
    TraceRecord ra;
    cr_assert(trace_store_read(a, 0, 0, 0, &ra));
    TraceRecord rb = ra;
    rb.wall_ns += 1;
    cr_assert_eq(trace_diff_rows(&ra, &rb, 0), -1);
    cr_assert_eq(trace_diff_rows(&ra, &rb, TRACE_DIFF_TIMING), TRACE_COL_wall_ns);
    trace_store_free(a);
    trace_store_free(b);
}

Test(trace_diff, first_divergence_and_layer_deltas)
{
    TraceStore *a = store_of(4, -1, 0, 0), *b = store_of(4, 2, 1, 1);
    TraceDiff d;
    cr_assert_eq(trace_diff_compute(a, b, 0, &d, NULL), DRRL_OK);
    cr_assert_not(d.identical);
    cr_assert(d.has_first);
    cr_assert_eq(d.first_step, 2);
    cr_assert_eq(d.first_layer, 1);
    cr_assert_eq(d.first_head, 0);
    cr_assert_str_eq(trace_csv_columns[d.first_column], "rank");
    cr_assert_eq(d.differing, 1);
    cr_assert_eq(d.only_a, 1);
    cr_assert_eq(d.only_b, 0);
    cr_assert_eq(d.layers[1].rank_changed, 1);
    cr_assert_eq(d.layers[0].rank_changed, 0);
    cr_assert_eq(d.layers[1].only_a, 1);
    cr_assert_float_eq(d.layers[1].max_err_delta, 0.5, 1e-6);
    cr_assert_gt(d.layers[1].flops_b, d.layers[1].flops_a);
    cr_assert_eq(d.layers[0].flops_b, d.layers[0].flops_a);
    trace_diff_done(&d);
    /* The other way round: the missing row is B's extra. */
    cr_assert_eq(trace_diff_compute(b, a, 0, &d, NULL), DRRL_OK);
    cr_assert_eq(d.only_b, 1);
    trace_diff_done(&d);
    trace_store_free(a);
    trace_store_free(b);
}

Test(trace_diff, sidecar_differences_count)
{
    TraceStore *a = store_of(2, -1, 0, 0), *b = store_of(2, -1, 0, 0);
    TraceMeta m;
    meta_fill(&m);
    cr_assert_eq(trace_store_set_meta(a, &m, NULL), DRRL_OK);
    m.seed = 43;
    cr_assert_eq(trace_store_set_meta(b, &m, NULL), DRRL_OK);
    TraceDiff d;
    cr_assert_eq(trace_diff_compute(a, b, 0, &d, NULL), DRRL_OK);
    cr_assert_not(d.identical);
    cr_assert_not(d.has_first);
    cr_assert_str_eq(d.meta_key, "seed");
    cr_assert_str_eq(d.meta_a, "42");
    cr_assert_str_eq(d.meta_b, "43");
    trace_diff_done(&d);
    trace_store_free(a);
    trace_store_free(b);
}

/* Sidecars written before the hash algorithm was recorded name none: their
 * model_hash reads as FNV-1a 64, and a diff against a trace of today's hash
 * says the two cannot be compared instead of calling the models different
 * (or, for equal digits, the same). */
Test(trace_csv, model_hashes_by_two_algorithms)
{
    const char *a = in_dir("old.csv");
    cr_assert_eq(write_trace(a, 2, 0, 0), DRRL_OK);
    char *side = test_slurp(in_dir("old.csv.json"), NULL);
    char *k = strstr(side, "\"model_hash_algo\"");
    cr_assert_not_null(k, "%s", side);
    char *end = strchr(k, '\n'); /* the key's whole line, as an older drrl wrote none */
    memmove(k, end + 1, strlen(end + 1) + 1);
    test_spit(in_dir("old.csv.json"), side);
    free(side);
    TraceStore *old, *now = store_of(2, -1, 0, 0);
    DrrlError e;
    cr_assert_eq(trace_csv_load(a, &old, &e), DRRL_OK, "%s", e.msg);
    cr_assert_str_eq(trace_store_meta(old)->model_hash_algo, TRACE_MODEL_HASH_ALGO_V1);
    TraceMeta m;
    meta_fill(&m);
    cr_assert_eq(trace_store_set_meta(now, &m, NULL), DRRL_OK);
    TraceDiff d;
    cr_assert_eq(trace_diff_compute(old, now, 0, &d, NULL), DRRL_OK);
    cr_assert_not(d.identical);
    cr_assert(d.meta_hash_algos_differ);
    cr_assert_str_eq(d.meta_key, "model_hash");
    cr_assert_str_eq(d.meta_a, "abc123 (fnv1a64)");
    cr_assert_str_eq(d.meta_b, "abc123 (xxh64-tree)");
    trace_diff_done(&d);
    /* the same algorithm on both sides: compared as before */
    m.model_hash_algo = TRACE_MODEL_HASH_ALGO_V1;
    cr_assert_eq(trace_store_set_meta(now, &m, NULL), DRRL_OK);
    cr_assert_eq(trace_diff_compute(old, now, 0, &d, NULL), DRRL_OK);
    cr_assert_not(d.meta_hash_algos_differ);
    cr_assert_str_neq(d.meta_key, "model_hash");
    trace_diff_done(&d);
    trace_store_free(old);
    trace_store_free(now);
}

/* ---- locale ---- */

#include <locale.h>

/* A program may set a locale whose decimal point is ',' (the TUI calls
 * setlocale(LC_ALL, "")): traces must not change. The locale is built with
 * localedef into the test directory; without localedef the test is skipped. */
Test(trace_csv, numbers_ignore_the_program_locale)
{
    cr_assert_eq(write_trace(in_dir("c.csv"), 4, 0, 0), DRRL_OK);
    const char *def = in_dir("comma.def");
    test_spit(def, "LC_CTYPE\ncopy \"POSIX\"\nEND LC_CTYPE\nLC_COLLATE\ncopy \"POSIX\"\nEND "
                   "LC_COLLATE\nLC_MONETARY\ncopy \"POSIX\"\nEND LC_MONETARY\nLC_NUMERIC\n"
                   "decimal_point \",\"\nthousands_sep \".\"\ngrouping 3;3\nEND LC_NUMERIC\n"
                   "LC_TIME\ncopy \"POSIX\"\nEND LC_TIME\nLC_MESSAGES\ncopy \"POSIX\"\nEND "
                   "LC_MESSAGES\n");
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "localedef -c -i '%s' -f ANSI_X3.4-1968 '%s/loc/comma' >/dev/null 2>&1", def, dir);
    mkdir(in_dir("loc"), 0700);
    int made = system(cmd);
    (void)made;
    setenv("LOCPATH", in_dir("loc"), 1);
    if (!setlocale(LC_NUMERIC, "comma"))
        cr_skip_test("localedef could not build a comma-decimal locale");
    char b[16];
    snprintf(b, sizeof b, "%.1f", 1.5);
    cr_assert_str_eq(b, "1,5", "the comma locale is active");
    cr_assert_eq(write_trace(in_dir("l.csv"), 4, 0, 0), DRRL_OK);
    char *x = test_slurp(in_dir("c.csv"), NULL), *y = test_slurp(in_dir("l.csv"), NULL);
    cr_assert_str_eq(x, y, "the trace depends on LC_NUMERIC");
    free(x);
    free(y);
    TraceStore *s;
    DrrlError e;
    cr_assert_eq(trace_csv_load(in_dir("l.csv"), &s, &e), DRRL_OK, "%s", e.msg);
    Gen g;
    expect_same(trace_store_get(s, 3, 1, 2), gen(&g, 3, 1, 2)); /* 1e-30 goes through strtod */
    TraceStore *q = trace_store_new();
    TraceSink sink = trace_store_sink(q);
    TraceMeta m;
    cr_assert_eq(trace_csv_read(in_dir("l.csv"), &m, &sink, &e), DRRL_OK, "%s", e.msg);
    trace_meta_done(&m);
    expect_same(trace_store_get(q, 2, 0, 1), gen(&g, 2, 0, 1));
    trace_store_free(q);
    trace_store_free(s);
    /* teardown removes files, not directories below dir */
    snprintf(cmd, sizeof cmd, "rm -rf '%s/loc'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- the schema table against drrl-trace(5) ---- */

/* Section sec of man/drrl-trace.5 as plain text: one entry per ".TP\n.B name"
 * paragraph, "name: text" with font macros and escapes removed, entries
 * separated by '\n' (the text before the first entry comes first). */
static char *man_section(const char *sec)
{
    char *man = test_slurp_src("../man/drrl-trace.5");
    char head[64];
    snprintf(head, sizeof head, "\n.SH %s\n", sec);
    char *p = strstr(man, head);
    cr_assert_not_null(p, "drrl-trace.5 has no %s section", sec);
    p += strlen(head);
    char *end = strstr(p, "\n.SH ");
    if (end)
        end[1] = 0;
    char *out = calloc(1, strlen(p) * 2 + 2), *o = out;
    cr_assert_not_null(out);
    int new_entry = 0;
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
        const char *text = line;
        int join = 0; /* alternating-font macros join their arguments */
        if (line[0] == '.') {
            if (!strcmp(line, ".TP")) {
                new_entry = 1;
                continue;
            }
            size_t m = strcspn(line, " ");
            if (!line[m])
                continue; /* .PP, .EX, ... */
            join = m == 3;
            text = line + m + 1;
        }
        if (new_entry) {
            o += sprintf(o, "\n%s:", text);
            new_entry = 0;
            continue;
        }
        *o++ = ' ';
        for (const char *s = text; *s; s++) {
            if (*s == '"' || (join && *s == ' '))
                continue;
            if (s[0] == '\\' && s[1] == '(' && s[2] && s[3])
                *o++ = '-', s += 3; /* \(en */
            else if (s[0] == '\\' && (s[1] == '-' || s[1] == 'e'))
                *o++ = s[1] == 'e' ? '\\' : '-', s++;
            else
                *o++ = *s;
        }
    }
    *o = 0;
    free(man);
    return out;
}

/* COLUMNS lists the table's columns in order, each entry stating the table's
 * range text; NUMBERS names the REAL and FLOATS columns as the float32 ones
 * and the F64 ones as doubles. */
Test(trace_schema, man_page_matches_the_table)
{
    char *cols = man_section("COLUMNS");
    char *p = strchr(cols, '\n');
    for (int i = 0; i < TRACE_NCOLS; i++) {
        const TraceColumn *c = &trace_columns[i];
        cr_assert_not_null(p, "drrl-trace(5) COLUMNS ends before column '%s'", c->name);
        char *next = strchr(p + 1, '\n');
        if (next)
            *next = 0;
        size_t n = strlen(c->name);
        cr_assert(!strncmp(p + 1, c->name, n) && p[1 + n] == ':',
                  "drrl-trace(5) COLUMNS entry %d is '%.20s', the table says '%s'", i + 1,
                  p + 1, c->name);
        cr_assert_not_null(strstr(p + 1, c->range),
                           "drrl-trace(5) entry '%s' does not say '%s': %s", c->name, c->range,
                           p + 1);
        p = next;
    }
    cr_assert_null(p, "drrl-trace(5) COLUMNS has more entries than the table: %.40s", p + 1);
    free(cols);

    char *num = man_section("NUMBERS");
    char want[1024] = "The real-valued columns (", *w = want + strlen(want);
    for (int i = 0, k = 0; i < TRACE_NCOLS; i++)
        if (trace_columns[i].kind == TRACE_REAL || trace_columns[i].kind == TRACE_FLOATS)
            w += sprintf(w, "%s%s", k++ ? ", " : "", trace_columns[i].name);
    strcpy(w, ") hold float32 values");
    cr_assert_not_null(strstr(num, want), "drrl-trace(5) NUMBERS lacks '%s': %s", want, num);
    w = want;
    for (int i = 0, k = 0; i < TRACE_NCOLS; i++)
        if (trace_columns[i].kind == TRACE_F64)
            w += sprintf(w, "%s%s", k++ ? " and " : "", trace_columns[i].name);
    strcpy(w, " are doubles");
    cr_assert_not_null(strstr(num, want), "drrl-trace(5) NUMBERS lacks '%s': %s", want, num);
    free(num);
}

/* The column names, descriptors and generated record members agree. */
Test(trace_schema, columns_and_header_agree)
{
    cr_assert_eq(TRACE_CSV_NCOLS, TRACE_NCOLS);
    for (int i = 0; i < TRACE_NCOLS; i++)
        cr_assert_str_eq(trace_csv_columns[i], trace_columns[i].name);
    cr_assert_str_eq(trace_columns[TRACE_COL_wall_ns].name, "wall_ns");
    cr_assert_eq(trace_columns[TRACE_COL_sigma].count_offset,
                 (unsigned)offsetof(TraceRecord, n_sigma));
    cr_assert_eq(TRACE_N_FLOAT_LISTS, 3);
}
