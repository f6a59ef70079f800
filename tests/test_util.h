/* test_util.h: what the unit tests share: a temporary directory for a suite
 * (created in .init, removed in .fini) and paths inside it. Header only:
 * include it after <criterion/criterion.h>. */
#ifndef DRRL_TEST_UTIL_H
#define DRRL_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

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

#endif
