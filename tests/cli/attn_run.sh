#!/bin/sh
# drrl run / drrl eval on the fixture models: summaries, JSON keys, CSV rows,
# determinism, and one-line usage errors.
. "$top_srcdir/tests/cli/lib.sh"
M="$FIXTURES/llama-tiny-b"
G="$FIXTURES/gpt2-tiny-b"
P="the quick brown fox jumps over the lazy dog; the dog sleeps."

run "$DRRL" run --model "$M" --prompt "$P" --method fixed:4 --segment 8 \
    --summary-json "$tmpdir/s.json"
expect_rc 0
expect_out_contains "bound violations  0"
expect_out_contains "output bound      proven; vacuous (relative bound >= 1) on "
expect_out_contains "guard             estimate (not a bound), eps 0.25, not binding (an unguarded method): measured error > eps on "
for k in tokens flops_exact flops_executed attn_flops_exact attn_flops_executed savings \
         attn_savings fidelity bound_violations bound_vacuous guard_exceeded \
         bound_ratio_median lowrank_rows guard_allowed_rows guard_forced_rows guard_binds \
         guard_decisions guard_raised wall_s; do
    grep -q "\"$k\": " "$tmpdir/s.json" || fail "summary JSON lacks $k"
done
grep -q '"bound_violations": 0,' "$tmpdir/s.json" || fail "violations not 0"
# the ledger by category: every category once, and the executed column sums
# to flops_executed (the exact one to flops_exact)
if command -v python3 >/dev/null 2>&1; then
    python3 - "$tmpdir/s.json" <<'PY' || fail "flops_by_category wrong"
import json, sys
j = json.load(open(sys.argv[1]))
c = j["flops_by_category"]
assert list(c) == ["projections", "gram", "eigensolve", "rotation", "basis_proj", "scores",
                   "softmax", "value", "out_proj", "mlp", "policy", "other", "guard"], list(c)
for k, i in (("flops_exact", 0), ("flops_executed", 1)):
    s = sum(v[i] for v in c.values())
    assert abs(s - j[k]) <= 1e-9 * j[k], (k, s, j[k])
assert c["gram"][1] > 0 and c["gram"][0] == 0, c["gram"]
PY
fi
grep -q '"tokens": 60,' "$tmpdir/s.json" || fail "expected 60 byte tokens"

# every method form runs on both fixture families
for spec in full fixed:2 energy:0.9 random:1-4 oracle:0.2 performer:8 nystrom:3; do
    for model in "$M" "$G"; do
        run "$DRRL" run --model "$model" --ids-file /dev/stdin --segment 4 --method "$spec" \
            --summary-json - <<IDS
1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
21 22 23 24 25 26 27 28 29 30
IDS
        expect_rc 0
        case "$out" in *'"bound_violations": 0,'*) ;; *) fail "$spec: violations" ;; esac
    done
done

# usage errors: one line, exit 2
run "$DRRL" run --model "$M" --prompt "$P" --method lowrank:3
expect_rc 2; expect_one_line_error; expect_err_contains "fixed:R"
run "$DRRL" run --model "$M" --prompt "$P" --method fixed:99
expect_rc 2; expect_one_line_error; expect_err_contains "head_dim"
run "$DRRL" run --model "$M"
expect_rc 2; expect_one_line_error
run "$DRRL" run --model "$M" --prompt "$P" --method fixed:2/2/2
expect_rc 2; expect_one_line_error; expect_err_contains "3 ranks for the model's 2 layers"
run "$DRRL" run --model "$M" --prompt "$P" --method fixed:2/
expect_rc 2; expect_one_line_error; expect_err_contains "one rank >= 1 per layer"

# fixed:R0/R1 (one rank per layer): the same rank in every layer is fixed:R
# bit for bit; other ranks per layer run at those ranks (the trace's rank
# column, per layer) and change the loss
pl() { # pl NAME SPEC: trace NAME.csv and the loss line NAME.loss
    "$DRRL" run --model "$M" --prompt "$P" --method "$2" --segment 8 --no-timing \
        --trace-out "$tmpdir/$1.csv" --force >"$tmpdir/$1.out" || fail "run --method $2 failed"
    grep '^loss' "$tmpdir/$1.out" >"$tmpdir/$1.loss" || fail "no loss line for $2"
}
pl u fixed:2; pl s fixed:2/2; pl d fixed:2/6
cmp -s "$tmpdir/u.loss" "$tmpdir/s.loss" || fail "fixed:2/2 differs from fixed:2"
cmp -s "$tmpdir/u.loss" "$tmpdir/d.loss" && fail "fixed:2/6 gives fixed:2's loss"
grep -q 'fixed:2/6' "$tmpdir/d.csv.json" || fail "trace sidecar lacks the spec fixed:2/6"
awk -F, '$5 == 0 && $8 == 2' "$tmpdir/d.csv" | grep -q . || fail "fixed:2/6: no layer-0 row at rank 2"
awk -F, '$5 == 1 && $8 == 6' "$tmpdir/d.csv" | grep -q . || fail "fixed:2/6: no layer-1 row at rank 6"
awk -F, '$5 == 1 && $8 == 2' "$tmpdir/d.csv" | grep -q . && fail "fixed:2/6: a layer-1 row at rank 2"
run "$DRRL" run --model "$M" --prompt "$P" --segment 0
expect_rc 2; expect_one_line_error
printf '1 2 3\n4 x 5\n' >"$tmpdir/bad.ids"
run "$DRRL" run --model "$M" --ids-file "$tmpdir/bad.ids"
expect_rc 2; expect_one_line_error; expect_err_contains "bad.ids:2:3"
run "$DRRL" run --model "$tmpdir/nope" --prompt "$P"
expect_rc 2; expect_one_line_error

# eval: table and CSV, deterministic up to wall time
head -c 3000 "$top_srcdir/tests/fixtures/README.md" >"$tmpdir/text.txt"
run "$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --seq-len 64 --windows 3 \
    --methods full,fixed:3,performer:8 --segment 16 --csv "$tmpdir/a.csv"
expect_rc 0
expect_out_contains "fixed:3"
[ "$(wc -l <"$tmpdir/a.csv")" -eq 4 ] || fail "expected a header and 3 rows"
head -1 "$tmpdir/a.csv" | grep -q '^method,seq_len,tokens,loss,bpb,ppl,' || fail "CSV header"
grep -q '^full,64,192,' "$tmpdir/a.csv" || fail "full row"
"$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --seq-len 64 --windows 3 \
    --methods full,fixed:3,performer:8 --segment 16 --csv "$tmpdir/b.csv" >/dev/null ||
    fail "second eval"
cut -d, -f1-14 "$tmpdir/a.csv" >"$tmpdir/a.cut"
cut -d, -f1-14 "$tmpdir/b.csv" >"$tmpdir/b.cut"
cmp -s "$tmpdir/a.cut" "$tmpdir/b.cut" || fail "eval is not deterministic"
run "$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --seq-len 64 --methods full,bogus
expect_rc 2; expect_one_line_error
run "$DRRL" eval --model "$M" --data "$tmpdir/text.txt" --methods full
expect_rc 2; expect_one_line_error

# dump --method: at rank head_dim the approximated dump equals the exact one
run "$DRRL" dump --model "$M" --prompt "$P" --out "$tmpdir/e.st"
expect_rc 0
exact_line=$(echo "$out" | sed 's/^[^:]*: //')
run "$DRRL" dump --model "$M" --prompt "$P" --method fixed:8 --segment 8 --out "$tmpdir/f.st"
expect_rc 0
[ "$(echo "$out" | sed 's/^[^:]*: //')" = "$exact_line" ] || fail "fixed:head_dim dump differs"
run "$DRRL" dump --model "$M" --prompt "$P" --method fixed:2 --segment 8 --out "$tmpdir/g.st"
expect_rc 0
[ "$(echo "$out" | sed 's/^[^:]*: //')" != "$exact_line" ] || fail "fixed:2 dump equals exact"
run "$DRRL" dump --model "$M" --prompt "$P" --method nope --out "$tmpdir/h.st"
expect_rc 2; expect_one_line_error
exit 0

# bench/layer_ranks.py: the uniform sweep, then the greedy per-layer path
# down to rank 1 everywhere (the random fixture's bpb never passes --stop)
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$P" "$P" "$P" "$P" "$P" >"$tmpdir/lr.txt"
    python3 "$top_srcdir/bench/layer_ranks.py" --drrl "$DRRL" --model "$M" \
        --data "$tmpdir/lr.txt" --seq-len 64 --stop 10 --check "$tmpdir/lr.txt" \
        >"$tmpdir/lr.md" 2>&1 || fail "layer_ranks.py: $(cat "$tmpdir/lr.md")"
    grep -q '^| fixed:7 | ' "$tmpdir/lr.md" || fail "layer_ranks.py: no uniform sweep"
    grep -q '^| fixed:8/7 | \|^| fixed:7/8 | ' "$tmpdir/lr.md" || fail "layer_ranks.py: no first step"
    grep -q '^| fixed:1/1 | .* | same as fixed:1 |$' "$tmpdir/lr.md" ||
        fail "layer_ranks.py: the path does not end at fixed:1/1 = fixed:1"
    grep -q '^# the same points on ' "$tmpdir/lr.md" || fail "layer_ranks.py: no --check table"
fi

# bench/bases.py (needs numpy): its exact pass must match drrl's (GQA, attention
# biases, BF16), then key-only against query-aware bases at one rank
if python3 -c 'import numpy' 2>/dev/null; then
    seq 1 100 >"$tmpdir/b.ids"
    python3 "$top_srcdir/bench/bases.py" --drrl "$DRRL" --model "$FIXTURES/llama-gqa-bf16" \
        --ids-file "$tmpdir/b.ids" --seq-len 100 --segment 16 --ranks 4 >"$tmpdir/b.md" 2>&1 ||
        fail "bases.py: $(cat "$tmpdir/b.md")"
    for v in key qk 2sided; do
        grep -q "^| 4 | $v | 0\.[0-9]* | " "$tmpdir/b.md" || fail "bases.py: no rank-4 $v row"
    done
fi

# bench/kernel_rates (a check program): both kernels on a short head, every
# output finite (its own check), a line per kernel and thread count; a
# variant the CPU lacks or a bad option exits 2
kr="${DRRL%/ui/drrl}/bench/kernel_rates"
"$kr" --threads 2 --len 300 --ranks 4,8 --isa portable >"$tmpdir/kr.txt" 2>&1 ||
    fail "kernel_rates: $(cat "$tmpdir/kr.txt")"
[ "$(grep -c '^ *[12]  \(exact  32\|rank    [48]\) ' "$tmpdir/kr.txt")" = 6 ] ||
    fail "kernel_rates: $(cat "$tmpdir/kr.txt")"
grep -q 'kernel portable' "$tmpdir/kr.txt" || fail "kernel_rates: --isa portable not run"
"$kr" --isa nosuch >/dev/null 2>&1
[ $? = 2 ] || fail "kernel_rates --isa nosuch: not exit 2"
"$kr" --ranks 0 >/dev/null 2>&1
[ $? = 2 ] || fail "kernel_rates --ranks 0: not exit 2"
