/* fuzz_util.h: helpers shared by drrl's libFuzzer harnesses (tests/fuzz/).
 *
 * Parsers that take a path get the fuzz input written to a file in a private
 * temporary directory (created once per process, under $TMPDIR or /tmp;
 * /dev/shm is preferred when it exists, being memory). Inputs holding two
 * files are split at the first NUL byte (no JSON, CSV or merges file may
 * contain a raw NUL, so nothing valid is lost). */
#ifndef DRRL_FUZZ_UTIL_H
#define DRRL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[256];

/* The private directory (created on first use; removed at exit). */
static void fuzz_rmdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (fuzz_dir[0])
        (void)!system(cmd);
}

static const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                           : getenv("TMPDIR")                                ? getenv("TMPDIR")
                                                                             : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/drrl-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir))
            abort();
        atexit(fuzz_rmdir);
    }
    return fuzz_dir;
}

/* Write data to NAME in the private directory; returns the path (static). */
static const char *fuzz_write(const char *name, const uint8_t *data, size_t n)
{
    static char path[2][400];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", fuzz_tmpdir(), name);
    FILE *f = fopen(path[which], "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        abort();
    return path[which];
}

static void fuzz_remove(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
    unlink(path);
}

/* Split data at the first NUL: [0, *n1) and [*off2, n). Without a NUL the
 * second part is empty. */
static void fuzz_split(const uint8_t *data, size_t n, size_t *n1, size_t *off2)
{
    const uint8_t *z = memchr(data, 0, n);
    *n1 = z ? (size_t)(z - data) : n;
    *off2 = z ? *n1 + 1 : n;
}

/* A one-line, non-empty error message, as every drrl error must be. */
#define FUZZ_CHECK_MSG(err)                                                                    \
    do {                                                                                       \
        if ((err).msg[0] == '\0' || strchr((err).msg, '\n'))                                   \
            abort();                                                                           \
    } while (0)

/* A parser's refusal: a one-line message, and no object returned in obj. */
#define FUZZ_CHECK_REFUSAL(err, obj)                                                           \
    do {                                                                                       \
        FUZZ_CHECK_MSG(err);                                                                   \
        if (obj)                                                                               \
            abort();                                                                           \
    } while (0)

#endif
