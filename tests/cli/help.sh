#!/bin/sh
# CLI basics: help, version, unknown command, bad flag.
. "$top_srcdir/tests/cli/lib.sh"

run "$DRRL" --help
expect_rc 0
expect_out_contains "usage: drrl"
expect_out_contains "version"

run "$DRRL" --version
expect_rc 0
expect_out_contains "drrl "
expect_out_contains "kernels: linear "

run "$DRRL" help version
expect_rc 0
expect_out_contains "usage: drrl version"

run "$DRRL" no-such-command
expect_rc 2
expect_one_line_error
expect_err_contains "no-such-command"

run "$DRRL" --bogus-flag
expect_rc 2
expect_one_line_error

run "$DRRL" help no-such-command
expect_rc 2
expect_one_line_error

# Every listed command answers --help with exit 0 and its own usage line,
# and rejects an unknown flag with exit 2 and one line.
for cmd in $("$DRRL" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF>1 && $1!="Commands:" {print $1}'); do
    run "$DRRL" "$cmd" --help
    expect_rc 0
    expect_out_contains "usage: drrl $cmd"
    run "$DRRL" help "$cmd"
    expect_rc 0
    run "$DRRL" "$cmd" --no-such-flag
    expect_rc 2
    expect_one_line_error
done
exit 0
