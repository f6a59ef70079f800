#!/bin/sh
# bench/results.sh: its knobs are checked before anything runs (exit 2, one
# line on stderr naming the knob); the full script is too slow for make check.
. "$top_srcdir/tests/cli/lib.sh"

rs="$top_srcdir/bench/results.sh"
# a drrl that does not exist: if a check stopped working, the script fails
# at once on that instead of running for twenty minutes
nodrrl="$tmpdir/no-such-drrl"
one_line() {
    expect_rc 2
    [ "$(wc -l <"$tmpdir/err")" -eq 1 ] || fail "expected one line on stderr"
    expect_err_contains "bench/results.sh: $1"
}
run env DRRL="$nodrrl" DRRL_RESULTS_BYTES=abc sh "$rs"
one_line "DRRL_RESULTS_BYTES: 'abc' is not a positive integer"
run env DRRL="$nodrrl" DRRL_RESULTS_BYTES=0 sh "$rs"
one_line "DRRL_RESULTS_BYTES: '0' is not a positive integer"
# less text than one window at the longest L
run env DRRL="$nodrrl" DRRL_RESULTS_BYTES=5000 sh "$rs"
one_line "DRRL_RESULTS_BYTES=5000 is less than the window length 8192"
run env DRRL="$nodrrl" DRRL_RESULTS_BYTES=1000 DRRL_RESULTS_LENGTHS="512 2048" sh "$rs"
one_line "DRRL_RESULTS_BYTES=1000 is less than the window length 2048"
run env DRRL="$nodrrl" DRRL_RESULTS_BENCH_LONG_REPEAT=0 sh "$rs"
one_line "DRRL_RESULTS_BENCH_LONG_REPEAT: '0' is not a positive integer"
run env DRRL="$nodrrl" sh "$rs"
one_line "$nodrrl: not found (set DRRL=path/to/drrl)"
[ -z "$out" ] || fail "wrote to stdout before failing"
exit 0
