#!/bin/sh
# drrl diff --tui: the difference view of two traces recorded by `drrl run
# --trace-out` on the tiny fixture model with two methods: bad input, golden
# screens rendered headless by the real binary, and the same keys on a real
# (tmux) terminal giving the same screen, restored on q.
# DRRL_REGEN_GOLDEN=1 rewrites the diff-*.txt goldens instead.
. "$top_srcdir/tests/cli/lib.sh"

gold=$(cd "$top_srcdir/tests/golden" && pwd)
model="$FIXTURES/llama-tiny-b"
prompt="A trace records every rank decision; replay needs no model. "
opts="--model $model --segment 4 --seed 7 --prompt"
run "$DRRL" run $opts "$prompt" --method energy:0.9 --trace-out "$tmpdir/a.csv" --no-timing
expect_rc 0
run "$DRRL" run $opts "$prompt" --method fixed:4 --trace-out "$tmpdir/b.csv" --no-timing
expect_rc 0
# the screen names the traces as given: relative names keep the goldens
# independent of where the test runs
case $DRRL in /*) ;; *) DRRL=$(pwd)/$DRRL ;; esac
cd "$tmpdir" || fail "cd $tmpdir"

run "$DRRL" diff --tui a.csv missing.csv --dump-screen -
expect_rc 2
expect_one_line_error
expect_err_contains "missing.csv"
run "$DRRL" diff --tui a.csv b.csv --size 80 --dump-screen -
expect_rc 2
expect_one_line_error
run "$DRRL" diff --tui a.csv
expect_rc 2
expect_one_line_error
# Without a terminal and without --dump-screen: a clear error, not a crash.
run "$DRRL" diff --tui a.csv b.csv </dev/null
expect_rc 2
expect_one_line_error
expect_err_contains "terminal"
# The text report is unchanged by the TUI's options being there.
run "$DRRL" diff a.csv b.csv
expect_rc 1
# decisions, not labels: the first segment is exact in both, so the first
# differing decision is in the second (step 4); the methods are noted once
expect_out_contains "first divergence (first differing decision): step 4 "
expect_out_contains "note: A and B ran different methods (energy:0.9, fixed:4):"
# the same method at two thresholds: noted, and the label never counts
run "$DRRL" run $opts "$prompt" --method energy:0.9 --eps 0.5 --trace-out "$tmpdir/c.csv" \
    --no-timing
expect_rc 0
run "$DRRL" diff a.csv c.csv
expect_out_contains "note: A and B ran different thresholds (0.25, 0.5):"
case "$out" in *"method: A"*) fail "the method label was compared" ;; esac
sed 's/"energy:0.9"/"energy:0.90"/' a.csv >relabel.csv
sed 's/"energy:0.9"/"energy:0.90"/' a.csv.json >relabel.csv.json
run "$DRRL" diff a.csv relabel.csv
expect_out_contains "decisions: identical"
expect_out_contains "figures: identical"

# check NAME KEYS SIZE LOCALE: the headless screen equals the golden file.
check() {
    expect_screen "$1" "$2" "$3" "$4" "$DRRL" diff --tui a.csv b.csv
}
# first divergence, next two diverging tokens, another head and layer
keys_a="f d d . j"
check diff-100x30 "$keys_a" 100x30 C.UTF-8
# ranks A/B instead of deltas, ASCII, back one divergence
check diff-80x24-ascii "f d v D" 80x24 C
grep -q "!first differing decision: token 5, L0 H0, rank  (this token)" "$gold/diff-80x24-ascii.txt" ||
    fail "the first divergence is not marked at its token"
grep -q "first differing column: rank" "$gold/diff-100x30.txt" || fail "no column for the head"

# The screen on a real terminal equals the headless dump; q restores it.
tmux_init diff
tm_start 100 30 "'$DRRL' diff --tui a.csv b.csv --keys '$keys_a'"
wait_for "L1 H1"
expect_pane "$gold/diff-100x30.txt"
tm send-keys -t t q
wait_for "exit=0"
grep -q "Diff B-A" "$tmpdir/pane" && fail "the TUI's screen is still shown after q"
exit 0
