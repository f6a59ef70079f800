#!/bin/sh
# drrl eval: paired bootstrap CIs against exact and --ablations.
. "$top_srcdir/tests/cli/lib.sh"

M="$FIXTURES/llama-tiny-b"
head -c 3000 "$top_srcdir/tests/fixtures/README.md" >"$tmpdir/text.txt"
ev="$DRRL eval --model $M --data $tmpdir/text.txt --seq-len 64 --segment 16"

# CI columns: empty for full; for the others loss_diff is the difference of
# the two loss columns and lies inside [lo, hi]; deterministic.
run $ev --windows 6 --methods full,fixed:3,performer:8 --csv "$tmpdir/a.csv"
expect_rc 0
expect_out_contains "dloss [95% CI]"
head -1 "$tmpdir/a.csv" | grep -q ',wall_s,loss_diff,loss_diff_lo,loss_diff_hi,bpb_diff,bpb_diff_lo,bpb_diff_hi,mean_rank,bound_vacuous,guard_exceeded,bound_ratio_median,lowrank_rows,guard_allowed_rows,guard_forced_rows$' ||
    fail "CSV header: $(head -1 "$tmpdir/a.csv")"
awk -F, 'NR == 2 { if ($16 != "" || $17 != "") exit 1; full = $4 }
         NR > 2 { d = $4 - full; if ($16 - d > 1e-6 || d - $16 > 1e-6) exit 2
                  if (!($17 <= $16 && $16 <= $18 && $17 < $18)) exit 3
                  if (!($20 <= $19 && $19 <= $21)) exit 4 }' "$tmpdir/a.csv" ||
    fail "CI columns wrong (awk rc $?): $(cat "$tmpdir/a.csv")"
"$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --seq-len 64 --segment 16 --windows 6 \
    --methods full,fixed:3,performer:8 --csv "$tmpdir/b.csv" >/dev/null || fail "second eval"
# guard and bound columns: none for full (no low-rank row); for fixed:3 the
# fractions lie in [0, 1] and the allowed and flagged rows make up the low-rank ones
awk -F, 'NR == 2 { if ($26 != 0 || $23 != "") exit 1 }
         NR == 3 { if (!($26 > 0 && $23 >= 0 && $23 <= 1 && $25 > 0 && $27 + $28 == $26)) exit 2
                   if ($27 > 0 && !($24 >= 0 && $24 <= 1)) exit 3 }' "$tmpdir/a.csv" ||
    fail "guard columns wrong (awk rc $?): $(cat "$tmpdir/a.csv")"
cut -d, -f16-21 "$tmpdir/a.csv" >"$tmpdir/a.cut"
cut -d, -f16-21 "$tmpdir/b.csv" >"$tmpdir/b.cut"
cmp -s "$tmpdir/a.cut" "$tmpdir/b.cut" || fail "CIs are not deterministic"
# another seed resamples differently (same point estimate)
"$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --seq-len 64 --segment 16 --windows 6 \
    --methods full,fixed:3 --seed 9 --csv "$tmpdir/c.csv" >/dev/null || fail "seeded eval"
a=$(sed -n 3p "$tmpdir/a.csv" | cut -d, -f16-18)
c=$(sed -n 3p "$tmpdir/c.csv" | cut -d, -f16-18)
[ "${a%%,*}" = "${c%%,*}" ] || fail "point estimate changed with the seed"
[ "$a" != "$c" ] || fail "--seed does not reach the bootstrap"
# one window: the interval is the point
run $ev --windows 1 --methods full,fixed:3 --csv "$tmpdir/d.csv"
expect_rc 0
awk -F, 'NR == 3 { if (!($16 == $17 && $17 == $18)) exit 1 }' "$tmpdir/d.csv" ||
    fail "one window must give a point interval: $(sed -n 3p "$tmpdir/d.csv")"
# no full method: no CI
run $ev --windows 2 --methods fixed:3,fixed:2 --csv "$tmpdir/e.csv"
expect_rc 0
awk -F, 'NR > 1 && $16 != "" { exit 1 }' "$tmpdir/e.csv" || fail "CI without a reference"

# --ablations
run $ev --methods full --ablations --beta0-policy "$tmpdir/nope.st"
expect_rc 2; expect_one_line_error; expect_err_contains "nope.st"
run $ev --methods full,fixed:3 --ablations --beta0-policy "$M/config.json"
expect_rc 2; expect_one_line_error; expect_err_contains "drrl"
run $ev --methods full --boot 0
expect_rc 2; expect_one_line_error
fox_text >"$tmpdir/train.txt"
"$DRRL" train-policy --model "$M" --data "$tmpdir/train.txt" --segment 16 --episode-len 64 \
    --episodes 2 --threads 1 -q --out "$tmpdir/p.st" --steps 2 --seed 1 || fail "train-policy"
"$DRRL" train-policy --model "$M" --data "$tmpdir/train.txt" --segment 16 --episode-len 64 \
    --episodes 2 --threads 1 -q --out "$tmpdir/p0.st" --steps 2 --seed 2 --beta 0 ||
    fail "train-policy --beta 0"
run $ev --windows 3 --methods "full,drrl:$tmpdir/p.st@0.5" --ablations \
    --beta0-policy "$tmpdir/p0.st" --csv "$tmpdir/f.csv"
expect_rc 0
[ "$(wc -l <"$tmpdir/f.csv")" -eq 6 ] || fail "expected full, drrl and 3 ablations"
grep -q "^drrl:.*@0.5 no-RL=fixed:[0-9]*," "$tmpdir/f.csv" || fail "no-RL row"
grep -q "^drrl:.*@0.5 no-mask," "$tmpdir/f.csv" || fail "no-mask row"
grep -q "^drrl:.*@0.5 beta=0," "$tmpdir/f.csv" || fail "beta=0 row"
# the no-RL rank is the drrl row's mean rank, rounded
awk -F, 'NR == 3 { r = int($22 + 0.5) } NR == 4 { split($1, p, "fixed:"); if (p[2] + 0 != r) exit 1 }' \
    "$tmpdir/f.csv" || fail "no-RL rank is not the mean rank: $(cat "$tmpdir/f.csv")"

# bench attention: CSV of measured points; executed attention FLOPs grow with
# the rank and stay below exact; the SVD part has its three timings;
# --long-repeat sets the runs from L = 8192 on, --repeat those below
run "$DRRL" bench attention --model "$M" --text "$tmpdir/text.txt" --max-len 8192 --repeat 2 \
    --long-repeat 1 --segment 64 --csv "$tmpdir/ba.csv"
expect_rc 0
expect_out_contains "Executed attention FLOPs against L"
expect_out_contains "median of 2 (of 1 at L >= 8192)"
expect_out_contains "per-head thin SVD (LAPACKE_dgesvd"
[ "$(grep -c '^scaling,' "$tmpdir/ba.csv")" -eq 20 ] || fail "expected 5 lengths x 4 methods"
[ "$(grep -c '^refresh,' "$tmpdir/ba.csv")" -eq 5 ] || fail "expected 5 refresh rows"
[ "$(grep -c '^svd,' "$tmpdir/ba.csv")" -eq 15 ] || fail "expected 5 x 3 SVD rows"
awk -F, 'NR > 1 && $10 != ($2 >= 8192 ? 1 : 2) { exit 1 }' "$tmpdir/ba.csv" ||
    fail "repeats column: $(cat "$tmpdir/ba.csv")"
run "$DRRL" bench attention --long-repeat 0
expect_rc 2; expect_one_line_error
awk -F, '$1 == "scaling" { f[$2, ++n[$2]] = $4 }
    END { for (L in n) if (!(f[L, 2] < f[L, 3] && f[L, 3] < f[L, 4] && f[L, 4] < f[L, 1])) exit 1 }' \
    "$tmpdir/ba.csv" || fail "attention FLOPs not ordered by rank: $(cat "$tmpdir/ba.csv")"
run "$DRRL" bench attention --max-len 100
expect_rc 2; expect_one_line_error

# eval-sentiment: word-separable sentences; naive Bayes gets them all right
i=0
while [ $i -lt 12 ]; do
    printf '1\tA wonderful, great film number %d.\n0\tAn awful, boring film number %d.\n' $i $i \
        >>"$tmpdir/s.tsv"
    i=$((i + 1))
done
run "$DRRL" eval-sentiment --model "$M" --data "$tmpdir/s.tsv" --folds 3 --methods full,fixed:2 \
    --segment 8 --csv "$tmpdir/s.csv"
expect_rc 0
expect_out_contains "24 sentences (12 positive), 3-fold"
[ "$(wc -l <"$tmpdir/s.csv")" -eq 4 ] || fail "expected NB and two logreg rows"
grep -q '^naive-bayes (words),3,1,1.000000,0.000000,,1.000000,1.000000,1.000000$' "$tmpdir/s.csv" ||
    fail "naive Bayes should separate these: $(cat "$tmpdir/s.csv")"
grep -q '^logreg fixed:2,3,1,' "$tmpdir/s.csv" || fail "logreg row"
printf '1\tgood\n2\tbad\n' >"$tmpdir/bad.tsv"
run "$DRRL" eval-sentiment --model "$M" --data "$tmpdir/bad.tsv"
expect_rc 2; expect_one_line_error; expect_err_contains "bad.tsv:2:1"
run "$DRRL" eval-sentiment --model "$M" --data "$tmpdir/s.tsv" --folds 20
expect_rc 2; expect_one_line_error
exit 0
