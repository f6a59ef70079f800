#!/bin/sh
# drrl train-policy: usage errors, refusal to overwrite, a small deterministic
# training run on the tiny Llama fixture, and resuming from its checkpoint.
. "$top_srcdir/tests/cli/lib.sh"

model="$FIXTURES/llama-tiny-b"
text="$tmpdir/text.txt"
fox_text >"$text"
small="--model $model --data $text --segment 16 --episode-len 64 --episodes 2 --threads 1 -q"

run "$DRRL" train-policy --help
expect_rc 0
expect_out_contains "usage: drrl train-policy"

run "$DRRL" train-policy --model "$model" --data "$text"
expect_rc 2
expect_one_line_error
expect_err_contains "--out"

run "$DRRL" train-policy $small --out "$tmpdir/p.st" --budget 1.5
expect_rc 2
expect_one_line_error
expect_err_contains "--budget"

run "$DRRL" train-policy $small --out "$tmpdir/p.st" --episode-len 40
expect_rc 2
expect_one_line_error

run "$DRRL" train-policy --model "$tmpdir/nope" --data "$text" --out "$tmpdir/p.st"
expect_rc 2
expect_one_line_error

# Two runs with the same seed and command give byte-identical files.
run "$DRRL" train-policy $small --out "$tmpdir/p.st" --steps 3 --seed 5
expect_rc 0
[ -s "$tmpdir/p.st" ] || fail "no policy file written"
cp "$tmpdir/p.st" "$tmpdir/first.st"
run "$DRRL" train-policy $small --out "$tmpdir/p.st" --steps 3 --seed 5
expect_rc 2
expect_one_line_error
expect_err_contains "exists"
cmp -s "$tmpdir/p.st" "$tmpdir/first.st" || fail "a refused run changed the file"
rm "$tmpdir/p.st"
run "$DRRL" train-policy $small --out "$tmpdir/p.st" --steps 3 --seed 5
expect_rc 0
cmp -s "$tmpdir/p.st" "$tmpdir/first.st" || fail "same seed, different policy files"
run "$DRRL" train-policy $small --out "$tmpdir/f.st" --steps 1 --seed 6
run "$DRRL" train-policy $small --out "$tmpdir/f.st" --steps 1 --seed 5 --force
expect_rc 0

# Resume in place to more steps; a truncated checkpoint is a one-line error.
run "$DRRL" train-policy $small --out "$tmpdir/p.st" --resume "$tmpdir/p.st" --steps 4
expect_rc 0
cmp -s "$tmpdir/p.st" "$tmpdir/first.st" && fail "resume did not train"
head -c 200 "$tmpdir/p.st" >"$tmpdir/bad.st"
run "$DRRL" train-policy $small --out "$tmpdir/q.st" --resume "$tmpdir/bad.st" --steps 5
expect_rc 2
expect_one_line_error
expect_err_contains "bad.st"

# The trained policy drives `drrl run --method drrl:POLICY` (argmax); a model
# of another shape is refused with one line and exit 2.
run "$DRRL" run --model "$model" --text "$text" --seq-len 96 --segment 16 --method "drrl:$tmpdir/p.st"
expect_rc 0
expect_out_contains "drrl:"
expect_out_contains "bound violations  0"
run "$DRRL" run --model "$model" --text "$text" --seq-len 96 --segment 16 \
    --method "drrl:$tmpdir/p.st@0.4"
expect_rc 0
run "$DRRL" run --model "$model" --text "$text" --seq-len 96 --segment 16 \
    --method "drrl:$tmpdir/p.st@1.5"
expect_rc 2
expect_one_line_error
expect_err_contains "budget"
run "$DRRL" run --model "$FIXTURES/gpt2-tiny-b" --text "$text" --seq-len 48 --segment 16 \
    --method "drrl:$tmpdir/p.st"
expect_rc 2
expect_one_line_error
expect_err_contains "trained for a llama model"
run "$DRRL" eval --model "$model" --data "$text" --seq-len 64 --segment 16 \
    --methods "full,drrl:$tmpdir/p.st"
expect_rc 0
expect_out_contains "drrl:"
run "$DRRL" dump --model "$model" --text "$text" --method "drrl:$tmpdir/p.st" --segment 16 \
    --out "$tmpdir/dump.safetensors" --no-attn --no-hidden
expect_rc 0
[ -s "$tmpdir/dump.safetensors" ] || fail "dump --method drrl wrote nothing"

# The safety threshold at inference is the floor the policy was trained
# under (recorded in the file), unless --eps says otherwise.
run "$DRRL" train-policy $small --out "$tmpdir/e.st" --steps 1 --seed 5 --eps-floor 0.5
expect_rc 0
run "$DRRL" run --model "$model" --text "$text" --seq-len 48 --segment 16 \
    --method "drrl:$tmpdir/e.st" --trace-out "$tmpdir/e.csv"
expect_rc 0
grep -q '"floor": 0.5,' "$tmpdir/e.csv.json" || fail "inference eps is not the policy's floor"
run "$DRRL" run --model "$model" --text "$text" --seq-len 48 --segment 16 \
    --method "drrl:$tmpdir/e.st" --eps 0.375 --trace-out "$tmpdir/e3.csv"
expect_rc 0
grep -q '"floor": 0.375,' "$tmpdir/e3.csv.json" || fail "--eps does not override the policy's floor"
run "$DRRL" run --model "$model" --text "$text" --seq-len 48 --segment 16 \
    --method energy:0.9 --trace-out "$tmpdir/e4.csv"
expect_rc 0
grep -q '"floor": 0.25,' "$tmpdir/e4.csv.json" || fail "default eps is not 0.25 without a policy"
# Feature layout 3 and per-layer error factors from the command line; a
# factor list that does not fit the model is a one-line usage error.
run "$DRRL" train-policy $small --out "$tmpdir/v3.st" --steps 1 --features 3 \
    --err-weight 2 --err-layers 2,0.5
expect_rc 0
run "$DRRL" run --model "$model" --text "$text" --seq-len 48 --segment 16 \
    --method "drrl:$tmpdir/v3.st"
expect_rc 0
run "$DRRL" train-policy $small --out "$tmpdir/v4.st" --steps 1 --features 4
expect_rc 2
expect_one_line_error
run "$DRRL" train-policy $small --out "$tmpdir/v4.st" --steps 1 --err-layers 1,2,3
expect_rc 2
expect_one_line_error
expect_err_contains "--err-layers"
run "$DRRL" train-policy $small --out "$tmpdir/v4.st" --steps 1 --err-layers 1,x
expect_rc 2
expect_one_line_error
expect_err_contains "--err-layers"
run "$DRRL" train-policy $small --out "$tmpdir/pr.st" --steps 1 --energy-prior 0.9:3
expect_rc 0
run "$DRRL" run --model "$model" --text "$text" --seq-len 48 --segment 16 \
    --method "drrl:$tmpdir/pr.st"
expect_rc 0
for bad in 0.9 1.5:3 0.9:0 0.9:x; do
    run "$DRRL" train-policy $small --out "$tmpdir/v4.st" --steps 1 --energy-prior "$bad"
    expect_rc 2
    expect_one_line_error
    expect_err_contains "--energy-prior"
done
run "$DRRL" train-policy $small --out "$tmpdir/v4.st" --steps 1 --energy-prior 0.9:3 \
    --features 2
expect_rc 2
expect_one_line_error
expect_err_contains "prior"
[ -e "$tmpdir/v4.st" ] && fail "a refused run wrote a policy"
exit 0
