#!/bin/sh
# drrl run --trace-out: byte-identical traces for the same inputs and seed,
# no overwrite without --force, and SIGINT mid-run leaving a valid trace that
# is exactly the prefix an uninterrupted run of that length records.
. "$top_srcdir/tests/cli/lib.sh"
model="$FIXTURES/llama-tiny-b"
prompt="A trace records every rank decision; replay needs no model. "
opts="--model $model --method energy:0.9 --segment 4 --seed 7"

run "$DRRL" run $opts --prompt "$prompt" --trace-out "$tmpdir/a.csv" --no-timing
expect_rc 0
run "$DRRL" run $opts --prompt "$prompt" --trace-out "$tmpdir/b.csv" --no-timing
expect_rc 0
cmp -s "$tmpdir/a.csv" "$tmpdir/b.csv" || fail "same inputs and seed, different CSV bytes"
cmp -s "$tmpdir/a.csv.json" "$tmpdir/b.csv.json" || fail "same inputs and seed, different sidecars"
grep -q '"seed": 7' "$tmpdir/a.csv.json" || fail "the sidecar lacks the seed"
grep -q '"complete": true' "$tmpdir/a.csv.json" || fail "a finished run is not complete"
run "$DRRL" diff "$tmpdir/a.csv" "$tmpdir/b.csv"
expect_rc 0

# With timing, only wall_ns (the last column) may differ.
run "$DRRL" run $opts --prompt "$prompt" --trace-out "$tmpdir/c.csv"
expect_rc 0
sed 's/,[0-9]*$/,/' "$tmpdir/c.csv" | cmp -s - "$tmpdir/a.csv" || fail "columns other than wall_ns differ"

# Never overwrite without --force; nothing is left behind.
cp "$tmpdir/a.csv" "$tmpdir/keep.csv"
run "$DRRL" run $opts --prompt "x$prompt" --trace-out "$tmpdir/a.csv"
expect_rc 2
expect_one_line_error
expect_err_contains "--force"
cmp -s "$tmpdir/a.csv" "$tmpdir/keep.csv" || fail "an existing trace was modified"
ls "$tmpdir" | grep -q tmp && fail "a temporary file was left behind"
run "$DRRL" run $opts --prompt "x$prompt" --trace-out "$tmpdir/a.csv" --force
expect_rc 0
cmp -s "$tmpdir/a.csv" "$tmpdir/keep.csv" && fail "--force did not replace the trace"

# SIGINT in the middle of a long run.
i=0
while [ $i -lt 300 ]; do printf 'the quick brown fox %d jumps over the lazy dog. ' $i; i=$((i + 1)); done >"$tmpdir/long.txt"
run_killed INT 1 "$DRRL" run $opts --text "$tmpdir/long.txt" --trace-out "$tmpdir/int.csv" \
    --no-timing
[ $rc -eq 0 ] && fail "the run finished before SIGINT arrived (make the text longer)"
expect_rc 1
expect_one_line_error
expect_err_contains "interrupted by SIGINT"
grep -q '"complete": false' "$tmpdir/int.csv.json" || fail "an interrupted trace is marked complete"
run "$DRRL" diff "$tmpdir/int.csv" "$tmpdir/int.csv"
expect_rc 0
rows=$(($(wc -l <"$tmpdir/int.csv") - 1))
[ $rows -gt 0 ] || fail "the interrupted trace has no rows"
[ $((rows % 8)) -eq 0 ] || fail "the interrupted trace ends inside a step ($rows rows)"
run "$DRRL" run $opts --text "$tmpdir/long.txt" --seq-len $((rows / 8)) \
    --trace-out "$tmpdir/prefix.csv" --no-timing
expect_rc 0
cmp -s "$tmpdir/int.csv" "$tmpdir/prefix.csv" || fail "the interrupted trace is not the run's prefix"

# SIGTERM likewise.
run_killed TERM 1 "$DRRL" run $opts --text "$tmpdir/long.txt" --trace-out "$tmpdir/term.csv"
expect_rc 1
expect_err_contains "interrupted by SIGTERM"
run "$DRRL" diff --quiet "$tmpdir/term.csv" "$tmpdir/term.csv"
expect_rc 0
exit 0
