#include <criterion/criterion.h>
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
