#!/bin/sh
# .ci/run must run the README's test line exactly as written.
. "$top_srcdir/tests/cli/lib.sh"
line=$(grep -E '^\./bootstrap\.sh && make' "$top_srcdir/README.md" | head -n 1)
[ -n "$line" ] || fail "README has no test line"
grep -qxF "$line" "$top_srcdir/.ci/run" || fail ".ci/run does not run '$line'"
n=$(sed -n '/^## Quick start/,/^## /p' "$top_srcdir/README.md" | sed -n '/^```sh/,/^```$/p' | grep -vc '^```')
[ "$n" -eq 2 ] || fail "Quick start has $n command lines, not 2"
exit 0
