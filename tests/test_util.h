/* test_util.h: what the unit tests share: a temporary directory for a suite
 * (created in .init, removed in .fini), paths inside it, and whole files read
 * into memory. Header only: include it after <criterion/criterion.h>. */
#ifndef DRRL_TEST_UTIL_H
#define DRRL_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fresh directory /tmp/drrl-TAG-XXXXXX into buf. */
static inline void test_tmpdir(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/drrl-%s-XXXXXX", tag);
    cr_assert_not_null(mkdtemp(buf));
}

/* Remove path and everything in it. */
static inline void test_rmtree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

/* TEST_SUITE_TMPDIR(suite, dir, tag): declares suite, whose tests each run
 * with a fresh directory /tmp/drrl-TAG-XXXXXX in static char dir[256],
 * removed after the test. */
#define TEST_SUITE_TMPDIR(suite, dir, tag)                                                     \
    static char dir[256];                                                                      \
    static void suite##_make_tmpdir(void)                                                      \
    {                                                                                          \
        test_tmpdir(dir, sizeof dir, tag);                                                     \
    }                                                                                          \
    static void suite##_remove_tmpdir(void)                                                    \
    {                                                                                          \
        test_rmtree(dir);                                                                      \
    }                                                                                          \
    TestSuite(suite, .init = suite##_make_tmpdir, .fini = suite##_remove_tmpdir)

/* base/name, in one of 8 static buffers used in turn (several may be live in
 * one call). */
static inline const char *test_path(const char *base, const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", base, name);
    return p[k];
}

/* The whole file at path, NUL-terminated, in memory from malloc (the caller
 * frees it); its length into *len unless len is NULL. Fails the test when the
 * file cannot be read. */
static inline char *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

/* Write text to path (replacing it). */
static inline void test_spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The worst error of exp_fn against exp(), in units of the float's last place,
 * over 2,000,001 points evenly spread on [-87, 0]: where a softmax's
 * exponential (of a score minus the row's maximum) must be accurate. */
static inline double test_exp_worst_ulp(float (*exp_fn)(float))
{
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f * (float)i / 2000000.0f;
        double want = exp((double)x);
        double got = exp_fn(x);
        double e = fabs(got - want) / ldexp(1.0, ilogb(want) - 23);
        if (e > worst)
            worst = e;
    }
    return worst;
}

#ifdef TEST_SRCDIR
/* The file at TEST_SRCDIR/rel (rel: "../man/drrl.1", "golden/x.txt"), as
 * test_slurp reads it. */
static inline char *test_slurp_src(const char *rel)
{
    return test_slurp(test_path(TEST_SRCDIR, rel), NULL);
}

/* A section of a man page read in order: test_man_open finds ".SH SECTION"
 * in man/PAGE, test_man_expect_tp the next ".TP\n.B LABEL\nTEXT\n" paragraph
 * in it (a '-' of label and text written "\\-", as roff wants). */
typedef struct TestMan {
    char *text;
    const char *at, *end; /* where the next search starts; the next section */
} TestMan;

static inline void test_man_open(TestMan *m, const char *page, const char *section)
{
    char rel[256], head[64];
    snprintf(rel, sizeof rel, "../man/%s", page);
    snprintf(head, sizeof head, "\n.SH %s", section);
    m->text = test_slurp_src(rel);
    m->at = strstr(m->text, head);
    cr_assert_not_null(m->at, "man/%s has no %s section", page, section);
    m->end = strstr(m->at + 1, "\n.SH ");
}

/* src with each '-' written "\\-", into dst (n bytes, truncated). */
static inline const char *test_roff_dashes(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (; *src && k + 2 < n; src++) {
        if (*src == '-')
            dst[k++] = '\\';
        dst[k++] = *src;
    }
    dst[k] = 0;
    return dst;
}

static inline void test_man_expect_tp(TestMan *m, const char *label, const char *text)
{
    char want[640], esc[512];
    snprintf(want, sizeof want, ".TP\n.B %s\n", test_roff_dashes(esc, sizeof esc, label));
    const char *hit = strstr(m->at, want);
    cr_assert(hit && (!m->end || hit < m->end), "man: lacks (in order) '%s'", label);
    m->at = hit + strlen(want);
    snprintf(want, sizeof want, "%s\n", test_roff_dashes(esc, sizeof esc, text));
    cr_assert(strncmp(m->at, want, strlen(want)) == 0, "man: '%s' should read '%s'", label,
              text);
    m->at += strlen(want);
}

static inline void test_man_close(TestMan *m)
{
    free(m->text);
}
#endif

#endif
