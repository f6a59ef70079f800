#include "base/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int exit_code;
} status_table[DRRL_STATUS_COUNT] = {
    [DRRL_OK] = {"ok", DRRL_EXIT_OK},
    [DRRL_E_USAGE] = {"usage error", DRRL_EXIT_USAGE},
    [DRRL_E_INPUT] = {"bad input", DRRL_EXIT_USAGE},
    [DRRL_E_NOTFOUND] = {"not found", DRRL_EXIT_USAGE},
    [DRRL_E_IO] = {"i/o error", DRRL_EXIT_FAIL},
    [DRRL_E_NOMEM] = {"out of memory", DRRL_EXIT_FAIL},
    [DRRL_E_EXISTS] = {"file exists", DRRL_EXIT_USAGE},
    [DRRL_E_INTERRUPTED] = {"interrupted", DRRL_EXIT_FAIL},
    [DRRL_E_INTERNAL] = {"internal error", DRRL_EXIT_FAIL},
    [DRRL_E_NUMERIC] = {"non-finite value", DRRL_EXIT_FAIL},
};

const char *drrl_status_name(DrrlStatus s)
{
    if ((int)s < 0 || s >= DRRL_STATUS_COUNT)
        return "unknown status";
    return status_table[s].name;
}

/* One row an errno: the status when reading an input, then when writing an
 * output (the two columns differ on purpose: an unreadable input is bad
 * input, an unwritable output the user's choice of path). */
static const struct {
    int e;
    DrrlStatus read, write;
} errno_table[] = {
    {ENOENT, DRRL_E_NOTFOUND, DRRL_E_NOTFOUND}, {ENOTDIR, DRRL_E_NOTFOUND, DRRL_E_NOTFOUND},
    {EACCES, DRRL_E_INPUT, DRRL_E_USAGE},       {EPERM, DRRL_E_INPUT, DRRL_E_USAGE},
    {ELOOP, DRRL_E_INPUT, DRRL_E_USAGE},        {ENAMETOOLONG, DRRL_E_INPUT, DRRL_E_USAGE},
    {EISDIR, DRRL_E_INPUT, DRRL_E_USAGE},       {ENXIO, DRRL_E_INPUT, DRRL_E_IO},
    {ENODEV, DRRL_E_INPUT, DRRL_E_IO},          {ENOMEM, DRRL_E_NOMEM, DRRL_E_IO},
    {EROFS, DRRL_E_IO, DRRL_E_USAGE},           {EEXIST, DRRL_E_IO, DRRL_E_USAGE},
    {ETXTBSY, DRRL_E_IO, DRRL_E_USAGE},
};

static DrrlStatus status_of_errno(int e, int writing)
{
    for (size_t i = 0; i < sizeof errno_table / sizeof errno_table[0]; i++)
        if (errno_table[i].e == e)
            return writing ? errno_table[i].write : errno_table[i].read;
    return DRRL_E_IO;
}

DrrlStatus drrl_status_of_read_errno(int e)
{
    return status_of_errno(e, 0);
}

DrrlStatus drrl_status_of_write_errno(int e)
{
    return status_of_errno(e, 1);
}

int drrl_status_exit_code(DrrlStatus s)
{
    if ((int)s < 0 || s >= DRRL_STATUS_COUNT)
        return DRRL_EXIT_FAIL;
    return status_table[s].exit_code;
}

DrrlStatus drrl_error(DrrlError *err, DrrlStatus code, const char *fmt, ...)
{
    if (err) {
        /* Format into a copy first: an argument may be err->msg itself
         * ("%s: %s", path, err->msg), which vsnprintf must not alias. */
        char buf[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        memcpy(err->msg, buf, sizeof buf);
        err->code = code;
        /* Messages are one line: fold any newline a caller let through. */
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    return code;
}

void drrl_error_clear(DrrlError *err)
{
    if (err) {
        err->code = DRRL_OK;
        err->msg[0] = '\0';
    }
}

int drrl_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

int drrl_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 1;
    *out = a + b;
    return 0;
}
