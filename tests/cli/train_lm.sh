#!/bin/sh
# drrl train-lm: a short training run end to end (train, checkpoint, resume,
# export, evaluate the exported directory) and its error paths.
. "$top_srcdir/tests/cli/lib.sh"

tmp=$tmpdir
text_lines 300 'the cat sat on the mat %d and the dog sat on the log .' 7 >"$tmp/t.txt"

small="--train $tmp/t.txt --valid $tmp/t.txt --layers 1 --d-model 16 --heads 2 --head-dim 8 --d-ff 32 --ctx 32 --batch 4 --warmup 2 --eval-every 5 --eval-bytes 2000 --threads 2 -q"

run "$DRRL" train-lm $small --steps 10 --max-seconds 0.000001 --out "$tmp/m"
expect_rc 0
[ -f "$tmp/m.ckpt" ] || fail "no checkpoint written"
[ -f "$tmp/m/config.json" ] || fail "no config.json written"

# a second fresh run refuses to overwrite the checkpoint
run "$DRRL" train-lm $small --steps 10 --out "$tmp/m"
expect_rc 2
expect_one_line_error
expect_err_contains "m.ckpt"

run "$DRRL" train-lm --resume --train "$tmp/t.txt" --valid "$tmp/t.txt" --out "$tmp/m" -q
expect_rc 0
expect_file_contains() { grep -q "$2" "$1" || fail "$1 lacks $2"; }
expect_file_contains "$tmp/m/config.json" '"LlamaForCausalLM"'
expect_file_contains "$tmp/m/config.json" '"drrl_tokenizer": "byte"'

run "$DRRL" train-lm --eval-only --model "$tmp/m" --data "$tmp/t.txt" --ctx 64 -q
expect_rc 0
expect_out_contains "bpb"

# bad input: a missing file, a garbage checkpoint, a bad flag value
run "$DRRL" train-lm --eval-only --model "$tmp/nope" --data "$tmp/t.txt"
expect_rc 2
expect_one_line_error
printf 'garbage' >"$tmp/bad.ckpt"
run "$DRRL" train-lm --resume --checkpoint "$tmp/bad.ckpt" --train "$tmp/t.txt" --valid none
expect_rc 2
expect_one_line_error
expect_err_contains "bad.ckpt"
run "$DRRL" train-lm --layers 0
expect_rc 2
expect_one_line_error

# --ra-tail: the mean tail fractions beside train bpb on the progress lines;
# it needs --rank-aware
run "$DRRL" train-lm --train "$tmp/t.txt" --valid "$tmp/t.txt" --layers 1 --d-model 16 --heads 2 --head-dim 8 --d-ff 32 --ctx 32 --batch 4 --warmup 2 --eval-every 1 --eval-bytes 2000 --threads 2 --steps 2 --rank-aware --ra-segment 8 --ra-tail 0.5 --out "$tmp/tail"
expect_rc 0
expect_err_contains "tail penalty 0.5"
grep -q "^step 2/2  train [0-9.]* bpb  tail K 0\.[0-9]* V 0\.[0-9]*  valid" "$tmp/err" ||
    fail "--ra-tail: no tail on the step line: $(cat "$tmp/err")"
run "$DRRL" train-lm --train "$tmp/t.txt" --valid none --steps 2 --ra-tail 0.5 --out "$tmp/tail0"
expect_rc 2
expect_one_line_error
expect_err_contains "rank-aware"

# Ctrl-C (SIGINT) stops a run with a checkpoint that --resume continues
"$DRRL" train-lm $small --steps 100000 --ckpt-every 1 --out "$tmp/sig" 2>"$tmp/sig.err" &
pid=$!
i=0
while [ ! -f "$tmp/sig.ckpt" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 1 ] || fail "SIGINT: exit $rc, expected 1"
grep -q "interrupted at step" "$tmp/sig.err" || fail "SIGINT: no message"
[ -f "$tmp/sig/model.safetensors" ] || fail "SIGINT: no model exported"
run "$DRRL" train-lm --resume --out "$tmp/sig" --train "$tmp/t.txt" --valid none --max-seconds 0.000001 -q
expect_rc 0

# drrl convert: float16 copy of the trained model, same bits per byte to 3
# decimals; refuses to overwrite, rejects a bad dtype and a missing model
run "$DRRL" convert "$tmp/m" "$tmp/m16"
expect_rc 0
expect_out_contains "float16 weights"
expect_file_contains "$tmp/m16/config.json" '"torch_dtype": "float16"'
head -c 400 "$tmp/m16/model.safetensors" | grep -q drrl_seed || fail "convert: training metadata lost"
s32=$(wc -c <"$tmp/m/model.safetensors")
s16=$(wc -c <"$tmp/m16/model.safetensors")
[ $((s16 * 2)) -lt $((s32 + 4096)) ] || fail "convert: f16 file $s16 bytes is not half of $s32"
b32=$("$DRRL" train-lm --eval-only --model "$tmp/m" --data "$tmp/t.txt" --ctx 64 -q 2>&1 | awk '/bpb/{print $1}')
b16=$("$DRRL" train-lm --eval-only --model "$tmp/m16" --data "$tmp/t.txt" --ctx 64 -q 2>&1 | awk '/bpb/{print $1}')
[ -n "$b32" ] && awk -v a="$b32" -v b="$b16" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.001) }' ||
    fail "convert: bpb $b32 (f32) vs $b16 (f16)"
run "$DRRL" convert "$tmp/m" "$tmp/m16"
expect_rc 2
expect_one_line_error
run "$DRRL" convert --dtype f8 "$tmp/m" "$tmp/m8"
expect_rc 2
expect_one_line_error
run "$DRRL" convert "$tmp/nope" "$tmp/m8"
expect_rc 2
expect_one_line_error
[ ! -e "$tmp/m8/model.safetensors" ] || fail "convert: output left behind after an error"
