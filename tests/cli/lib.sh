# lib.sh: helpers for drrl's shell tests. Source it; it defines:
#   run CMD...      runs CMD, storing stdout in $out, stderr in $err, status in $rc
#   fail MSG        prints MSG and exits 1
#   expect_rc N     fails unless $rc is N
#   expect_one_line_error   fails unless stderr is exactly one line starting "drrl: "
#   expect_golden FILE NAME fails unless FILE equals tests/golden/NAME
#                   (DRRL_REGEN_GOLDEN=1: FILE becomes the golden instead)
set -u
: "${DRRL:?DRRL must point at the drrl binary}"
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/drrl-test.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT INT TERM

run() {
    "$@" >"$tmpdir/out" 2>"$tmpdir/err"
    rc=$?
    out=$(cat "$tmpdir/out")
    err=$(cat "$tmpdir/err")
}

fail() {
    echo "FAIL: $*" >&2
    echo "--- stdout:" >&2; cat "$tmpdir/out" >&2 2>/dev/null
    echo "--- stderr:" >&2; cat "$tmpdir/err" >&2 2>/dev/null
    exit 1
}

expect_rc() {
    [ "$rc" -eq "$1" ] || fail "expected exit $1, got $rc"
}

expect_one_line_error() {
    n=$(wc -l <"$tmpdir/err")
    [ "$n" -eq 1 ] || fail "expected one line on stderr, got $n"
    case "$err" in drrl:\ *) ;; *) fail "stderr does not start with 'drrl: '" ;; esac
}

expect_out_contains() {
    case "$out" in *"$1"*) ;; *) fail "stdout lacks '$1'" ;; esac
}

expect_err_contains() {
    case "$err" in *"$1"*) ;; *) fail "stderr lacks '$1'" ;; esac
}

expect_golden() {
    golden="$top_srcdir/tests/golden/$2"
    if [ "${DRRL_REGEN_GOLDEN:-0}" = 1 ]; then
        cp "$1" "$golden"
    else
        diff -u "$golden" "$1" >"$tmpdir/diff" || {
            cat "$tmpdir/diff" >&2
            fail "$1 differs from tests/golden/$2"
        }
    fi
}
