#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/status.h"

Test(status, exit_codes_follow_the_contract)
{
    cr_assert_eq(drrl_status_exit_code(DRRL_OK), 0);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_USAGE), 2);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_INPUT), 2);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_IO), 1);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_NOMEM), 1);
    cr_assert_eq(drrl_status_exit_code((DrrlStatus)999), 1);
}

Test(status, error_message_is_one_line)
{
    DrrlError e;
    DrrlStatus s = drrl_error(&e, DRRL_E_INPUT, "%s:%d: bad\nthing", "f.json", 3);
    cr_assert_eq(s, DRRL_E_INPUT);
    cr_assert_eq(e.code, DRRL_E_INPUT);
    cr_assert_str_eq(e.msg, "f.json:3: bad thing");
    cr_assert_eq(drrl_error(NULL, DRRL_E_IO, "x"), DRRL_E_IO);
}

Test(status, checked_size_arithmetic)
{
    size_t r;
    cr_assert_eq(drrl_size_mul(3, 4, &r), 0);
    cr_assert_eq(r, 12);
    cr_assert_eq(drrl_size_mul(SIZE_MAX / 2 + 1, 2, &r), 1);
    cr_assert_eq(drrl_size_add(SIZE_MAX, 1, &r), 1);
    cr_assert_eq(drrl_size_add(1, 2, &r), 0);
    cr_assert_eq(r, 3);
}

Test(status, output_path_errors_are_the_users)
{
    /* An output that cannot be created is exit 2 for every command; a
     * write that fails midway is exit 1. */
    int path_errors[] = {ENOENT, ENOTDIR, EACCES, EPERM, EROFS, EISDIR, ENAMETOOLONG, ELOOP};
    for (size_t i = 0; i < sizeof path_errors / sizeof *path_errors; i++)
        cr_assert_eq(drrl_status_exit_code(drrl_status_of_write_errno(path_errors[i])), 2,
                     "errno %d", path_errors[i]);
    int runtime_errors[] = {ENOSPC, EIO, EFBIG, EDQUOT};
    for (size_t i = 0; i < sizeof runtime_errors / sizeof *runtime_errors; i++)
        cr_assert_eq(drrl_status_exit_code(drrl_status_of_write_errno(runtime_errors[i])), 1,
                     "errno %d", runtime_errors[i]);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_EXISTS), 2);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_INTERRUPTED), 1);
    cr_assert_eq(drrl_status_exit_code(DRRL_E_NUMERIC), 1);
}

/* The same errno can mean different things for an input and an output: an
 * input the user may not read is bad input (DRRL_E_INPUT), an output path the
 * user may not write a usage error; a read-only file system only matters for
 * writing, out of memory only for reading. */
Test(status, read_and_write_errno_differ_where_they_should)
{
    cr_assert_eq(drrl_status_of_read_errno(ENOENT), DRRL_E_NOTFOUND);
    cr_assert_eq(drrl_status_of_write_errno(ENOENT), DRRL_E_NOTFOUND);
    cr_assert_eq(drrl_status_of_read_errno(EACCES), DRRL_E_INPUT);
    cr_assert_eq(drrl_status_of_write_errno(EACCES), DRRL_E_USAGE);
    cr_assert_eq(drrl_status_of_read_errno(ENXIO), DRRL_E_INPUT);
    cr_assert_eq(drrl_status_of_write_errno(ENXIO), DRRL_E_IO);
    cr_assert_eq(drrl_status_of_read_errno(EROFS), DRRL_E_IO);
    cr_assert_eq(drrl_status_of_write_errno(EROFS), DRRL_E_USAGE);
    cr_assert_eq(drrl_status_of_read_errno(ENOMEM), DRRL_E_NOMEM);
    cr_assert_eq(drrl_status_of_write_errno(ENOMEM), DRRL_E_IO);
    cr_assert_eq(drrl_status_of_read_errno(ENOSPC), DRRL_E_IO);
}
