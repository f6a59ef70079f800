#!/bin/sh
# The README's Quick start has exactly two command lines, and .ci/run runs the
# second (the test line) exactly as written.
. "$top_srcdir/tests/cli/lib.sh"
sed -n '/^## Quick start/,/^## /p' "$top_srcdir/README.md" |
    sed -n '/^```sh/,/^```$/p' | grep -v '^```' >"$tmpdir/lines"
n=$(wc -l <"$tmpdir/lines")
[ "$n" -eq 2 ] || fail "Quick start has $n command lines, not 2"
test_line=$(sed -n 2p "$tmpdir/lines")
grep -qxF "$test_line" "$top_srcdir/.ci/run" || fail ".ci/run does not run '$test_line'"
case "$(sed -n 1p "$tmpdir/lines")" in
./bootstrap.sh*) ;;
*) fail "the first Quick start line does not set up with ./bootstrap.sh" ;;
esac
exit 0
