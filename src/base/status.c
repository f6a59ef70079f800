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

DrrlStatus drrl_status_of_write_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return DRRL_E_NOTFOUND;
    case EACCES:
    case EPERM:
    case EROFS:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case EEXIST:
    case ETXTBSY:
        return DRRL_E_USAGE;
    default:
        return DRRL_E_IO;
    }
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
