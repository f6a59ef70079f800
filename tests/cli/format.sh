#!/bin/sh
# Every C source and header of the tree is formatted as .clang-format says.
# Skipped without clang-format (bootstrap.sh installs it). To fix:
# clang-format -i FILE.
. "$top_srcdir/tests/cli/lib.sh"

command -v clang-format >/dev/null 2>&1 || exit 77
cd "$top_srcdir" || fail "cannot enter $top_srcdir"
files=$(find src ui tests bench -name '*.[ch]' | sort)
[ -n "$files" ] || fail "no C sources found under $top_srcdir"
bad=""
for f in $files; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
[ -z "$bad" ] || fail "not clang-formatted (run clang-format -i):$bad"
exit 0
