#!/bin/sh
# Trace files end to end through the CLI: drrl diff's exit statuses (0 same,
# 1 different, 2 trouble) and one-line errors for malformed traces.
. "$top_srcdir/tests/cli/lib.sh"
a="$tmpdir/a.csv"
b="$tmpdir/b.csv"
synth="--rows 600 --head-dim 8 --layers 2 --heads 3 --segment 4"
"$DRRL" bench trace --write "$a" $synth || fail "cannot generate a trace"
"$DRRL" bench trace --write "$b" $synth || fail "cannot generate a trace"
cmp -s "$a" "$b" || fail "the same synthetic run gave different CSV bytes"
cmp -s "$a.json" "$b.json" || fail "the same synthetic run gave different sidecars"

run "$DRRL" diff "$a" "$b"
expect_rc 0
expect_out_contains "identical"
run "$DRRL" diff --quiet "$a" "$b"
expect_rc 0
[ -z "$out" ] || fail "--quiet printed something"

# Change one rank (row 100, column 8) and one error (row 200, column 18).
awk -F, 'BEGIN { OFS = "," } NR == 101 { $8 = ($8 == 2 ? 4 : 2) } { print }' "$a" >"$b"
run "$DRRL" diff "$a" "$b"
expect_rc 1
expect_out_contains "first divergence (first differing decision): step 16"
expect_out_contains "rank: A"
expect_out_contains "1 differ"

# A row missing in B (the sidecar's count follows).
head -n 600 "$a" >"$b"
sed 's/"rows": 600/"rows": 599/' "$a.json" >"$b.json"
run "$DRRL" diff "$a" "$b"
expect_rc 1
expect_out_contains "row only in A"

# drrl bench trace end to end, small.
run "$DRRL" bench trace --rows 2000 --repeat 3 --dir "$tmpdir" --head-dim 8
expect_rc 0
expect_out_contains "median: "
ls "$tmpdir" | grep -q drrl-bench && fail "bench trace left files behind"

# Trouble: exit 2 with one line naming the file and position.
printf 'step,token\n' >"$b"
cp "$a.json" "$b.json"
run "$DRRL" diff "$a" "$b"
expect_rc 2
expect_one_line_error
expect_err_contains "b.csv:1:2: missing column 'token_index'"
run "$DRRL" diff "$a" "$tmpdir/none.csv"
expect_rc 2
expect_one_line_error
run "$DRRL" diff "$a"
expect_rc 2
expect_one_line_error
exit 0
