#!/bin/sh
# The safety guard on the shipped model and English text it never saw
# (tests/data/guard-prose.txt, written for this test), for drrl and
# energy:0.9, both bound by the guard: the mask is monotone in every trace
# row (no grid rank above the smallest allowed one masked, the rank in force
# included: -s), every low-rank row runs at a rank the guard allowed (-b),
# at least 90% of ALL low-rank rows have a measured error within the
# threshold, 0 bound violations, and the summary's bound_vacuous /
# guard_exceeded / bound_ratio_median; fixed:R, unguarded, runs where the
# guard flags it and says so. Checked by tests/guard_check.sh, whose own
# failures are tested on small hand-made traces first. Deterministic
# (--no-timing, one thread).
. "$top_srcdir/tests/cli/lib.sh"
CHECK="$top_srcdir/tests/guard_check.sh"

# the checker fails where it should: a mask with a hole, an error over eps
mk() { # mk NAME ROW...: a trace with the checker's columns and its sidecar
    name=$1
    shift
    printf 'segment,layer,head,token,rank,head_dim,guard_estimate,threshold,masked,measured_error\n' \
        >"$tmpdir/$name.csv"
    for row in "$@"; do printf '%s\n' "$row" >>"$tmpdir/$name.csv"; done
    printf '{"rank_grid": [4, 8, 12, 16]}\n' >"$tmpdir/$name.csv.json"
}
mk ok '0,0,0,"a,""b",16,16,NaN,0.5,,0' '1,0,0,"x",8,16,0.1,0.5,4,0.2'
run sh "$CHECK" "$tmpdir/ok.csv"
expect_rc 0
expect_out_contains "mask_nonmonotone_rows 0  lowrank_rows 1  within_eps 1.0000"
mk hole '0,0,0,"a",16,16,NaN,0.5,,0' '1,0,0,"x",8,16,0.1,0.5,4;12,0.2'
run sh "$CHECK" "$tmpdir/hole.csv"
expect_rc 1
expect_out_contains "mask_nonmonotone_rows 1"
# the rank in force (8, from segment 1) may stay below masked ranks
mk inforce '0,0,0,"a",16,16,NaN,0.5,,0' '1,0,0,"x",8,16,0.1,0.5,4,0.2' \
    '2,0,0,"y",8,16,0.9,0.5,4;12,0.2'
run sh "$CHECK" -g 0 "$tmpdir/inforce.csv"
expect_rc 0
expect_out_contains "mask_nonmonotone_rows 0"
# ... but not under -s (strict: no exemption for the rank in force)
run sh "$CHECK" -s -g 0 "$tmpdir/inforce.csv"
expect_rc 1
expect_out_contains "mask_nonmonotone_rows 1"
# -b: a low-rank row at a rank the guard flagged (estimate over eps, masked)
mk unbound '0,0,0,"a",16,16,NaN,0.5,,0' '1,0,0,"x",8,16,0.7,0.5,4;8,0.2'
run sh "$CHECK" -g 0 "$tmpdir/unbound.csv"
expect_rc 0
run sh "$CHECK" -g 0 -b "$tmpdir/unbound.csv"
expect_rc 1
expect_out_contains "unbound_rows 1"
run sh "$CHECK" -b -s "$tmpdir/ok.csv"
expect_rc 0
expect_out_contains "unbound_rows 0"
mk over '0,0,0,"a",16,16,NaN,0.5,,0' '1,0,0,"x",8,16,0.1,0.5,4,0.7'
run sh "$CHECK" "$tmpdir/over.csv"
expect_rc 1
expect_out_contains "within_eps_allowed 0.0000"
run sh "$CHECK" -f 0 -g 0 "$tmpdir/over.csv"
expect_rc 0
printf 'a,b\n1,2\n' >"$tmpdir/bad.csv"
cp "$tmpdir/ok.csv.json" "$tmpdir/bad.csv.json"
run sh "$CHECK" "$tmpdir/bad.csv"
expect_rc 2

[ -f "$top_srcdir/data/model/model.safetensors" ] || { echo "SKIP: no data/model"; exit 0; }
T="$top_srcdir/tests/data/guard-prose.txt"
for m in drrl energy:0.9 fixed:24; do
    run "$DRRL" run --method "$m" --text "$T" --trace-out "$tmpdir/$m.csv" \
        --summary-json "$tmpdir/$m.json" --no-timing --threads 1
    expect_rc 0
    expect_out_contains "bound violations  0"
done
# drrl and energy:0.9: the guard binds them, so every low-rank row is at an
# allowed rank and at least 90% of all of them are within eps
for m in drrl energy:0.9; do
    run sh "$CHECK" -b -s "$tmpdir/$m.csv" "$tmpdir/$m.json"
    expect_rc 0
    echo "$m: $out"
    grep -q '"guard_binds": true' "$tmpdir/$m.json" || fail "$m: guard_binds not true"
done
# energy:0.9 alone picks ranks the guard flags (about 70% of its low-rank
# rows exceeded eps before the guard bound it): the guard raised them
grep -q '"guard_raised": [1-9]' "$tmpdir/energy:0.9.json" || fail "energy:0.9: nothing raised"
# fixed:24 is unguarded: it runs where the guard flags it, and says so
run sh "$CHECK" -f 0 -g 0 -b "$tmpdir/fixed:24.csv" "$tmpdir/fixed:24.json"
expect_rc 1
expect_out_contains "unbound_rows"
grep -q '"guard_binds": false' "$tmpdir/fixed:24.json" || fail "fixed:24: guard_binds not false"
run "$DRRL" run --method fixed:24 --text "$T" --seq-len 300 --no-timing --threads 1
expect_out_contains "not binding (an unguarded method)"
exit 0
