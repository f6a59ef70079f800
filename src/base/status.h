/* status.h: status codes and error messages shared by the whole engine.
 *
 * Engine functions never exit and never print. They return a DrrlStatus and,
 * on failure, fill a caller-owned DrrlError whose message has the form
 * "FILE:WHERE: what is wrong" (the CLI prefixes "drrl: "). A NULL DrrlError
 * pointer is allowed everywhere: the message is then dropped.
 */
#ifndef DRRL_STATUS_H
#define DRRL_STATUS_H

#include <stddef.h>
#include <stdint.h>

/* The process exit codes, the only ones drrl uses: every command's exit
 * status comes from its status kind through drrl_status_exit_code (the
 * table in status.c), never from a literal. Usage and input errors (a bad
 * flag, a malformed or missing input, an output path that cannot be
 * created or is refused by the output rule) are 2; runtime failures (a
 * write that fails midway, no memory, an interruption, a NaN) are 1. */
enum { DRRL_EXIT_OK = 0, DRRL_EXIT_FAIL = 1, DRRL_EXIT_USAGE = 2 };

typedef enum DrrlStatus {
    DRRL_OK = 0,
    DRRL_E_USAGE,       /* bad flag or argument: exit 2 */
    DRRL_E_INPUT,       /* malformed or inconsistent input file: exit 2 */
    DRRL_E_NOTFOUND,    /* a named file or item does not exist: exit 2 */
    DRRL_E_IO,          /* read/write failure at runtime: exit 1 */
    DRRL_E_NOMEM,       /* allocation failed or size overflow: exit 1 */
    DRRL_E_EXISTS,      /* output exists and --force not given: exit 2 */
    DRRL_E_INTERRUPTED, /* stopped by a signal; partial results saved: exit 1 */
    DRRL_E_INTERNAL,    /* a bug: exit 1 */
    DRRL_E_NUMERIC,     /* a NaN or Inf produced at run time (float32 overflow): exit 1 */
    DRRL_STATUS_COUNT
} DrrlStatus;

#define DRRL_ERROR_MAX 512

typedef struct DrrlError {
    DrrlStatus code;
    char msg[DRRL_ERROR_MAX];
} DrrlError;

/* Short fixed description of a status ("bad input", ...). Never NULL. */
const char *drrl_status_name(DrrlStatus s);

/* Process exit status for a status code: 0 ok, 2 usage/input, 1 runtime. */
int drrl_status_exit_code(DrrlStatus s);

/* The status for a failed open/create/mkdir/rename's errno when writing
 * output: a path that does not exist (ENOENT, or a component that is not a
 * directory, ENOTDIR) is DRRL_E_NOTFOUND; a path the user may not or cannot
 * write (EACCES, EPERM, EROFS, EISDIR, ENAMETOOLONG, ELOOP, EEXIST, ETXTBSY)
 * is DRRL_E_USAGE: both are the user's choice of output, exit 2, for every
 * command. Anything else (ENOSPC, EIO, EFBIG, EDQUOT...) is DRRL_E_IO. */
DrrlStatus drrl_status_of_write_errno(int e);

/* The status for a failed open of an input: missing (ENOENT, ENOTDIR) is
 * DRRL_E_NOTFOUND; not readable by the user (EACCES, EPERM, ELOOP,
 * ENAMETOOLONG, EISDIR, ENXIO, ENODEV) DRRL_E_INPUT; ENOMEM DRRL_E_NOMEM;
 * anything else DRRL_E_IO. */
DrrlStatus drrl_status_of_read_errno(int e);

/* Fill err (if non-NULL) with code and a printf-formatted message; returns
 * code so callers can write `return drrl_error(err, DRRL_E_INPUT, ...)`. */
DrrlStatus drrl_error(DrrlError *err, DrrlStatus code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear err to DRRL_OK with an empty message. */
void drrl_error_clear(DrrlError *err);

/* Checked size arithmetic: return 0 and store the result, or 1 on overflow. */
int drrl_size_mul(size_t a, size_t b, size_t *out);
int drrl_size_add(size_t a, size_t b, size_t *out);

#endif
