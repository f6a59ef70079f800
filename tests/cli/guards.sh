#!/bin/sh
# The safety guard on the shipped model and English text it never saw
# (tests/data/guard-prose.txt, written for this test): the mask is monotone
# in every trace row (no grid rank above the smallest allowed one masked,
# the rank in force aside), at least 90% of drrl's low-rank rows at ranks the
# guard allowed have a measured error within the threshold, 0 bound
# violations, and the summary's bound_vacuous / guard_exceeded /
# bound_ratio_median; checked by tests/guard_check.sh, whose own failures
# are tested on small hand-made traces first. Deterministic (--no-timing,
# one thread).
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
for m in drrl energy:0.9; do
    run "$DRRL" run --method "$m" --text "$T" --trace-out "$tmpdir/$m.csv" \
        --summary-json "$tmpdir/$m.json" --no-timing --threads 1
    expect_rc 0
    expect_out_contains "bound violations  0"
done
# drrl: the mask decides its ranks, so the allowed rows must be within eps;
# every low-rank row (the rank in force included) is reported, not required
run sh "$CHECK" -f 0 "$tmpdir/drrl.csv" "$tmpdir/drrl.json"
expect_rc 0
echo "drrl: $out"
# energy:0.9 does not consult the mask: monotone mask, keys and 0 violations
run sh "$CHECK" -f 0 -g 0 "$tmpdir/energy:0.9.csv" "$tmpdir/energy:0.9.json"
expect_rc 0
echo "energy:0.9: $out"
exit 0
