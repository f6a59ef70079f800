#!/bin/sh
# drrl info and drrl dump: fixtures, bad checkpoints, bad ids, outputs.
. "$top_srcdir/tests/cli/lib.sh"

# info on every fixture family.
run "$DRRL" info "$FIXTURES/llama-gqa-bf16"
expect_rc 0
expect_out_contains "LlamaForCausalLM"
expect_out_contains "kv heads      2"
expect_out_contains "head_dim      12"
expect_out_contains "dtype         BF16"
expect_out_contains "RoPE theta 500000"
expect_out_contains "lm_head       separate"
run "$DRRL" info "$FIXTURES/gpt2-tiny-b"
expect_rc 0
expect_out_contains "GPT2LMHeadModel"
expect_out_contains "parameters    30,624"
expect_out_contains "tied"
expect_out_contains "(xxh64-tree)"
# the hash older traces and policy files hold (drrl info at 97b8b34)
run "$DRRL" info --hash-algo fnv1a64 "$FIXTURES/gpt2-tiny-b"
expect_rc 0
expect_out_contains "weights hash  d0e943444c675d13 (fnv1a64)"
run "$DRRL" info --hash-algo md5 "$FIXTURES/gpt2-tiny-b"
expect_rc 2
expect_one_line_error
expect_err_contains "--hash-algo: 'md5'"
run "$DRRL" info "$FIXTURES/llama-sharded-f16"
expect_rc 0
expect_out_contains "dtype         F16"

run "$DRRL" info
expect_rc 2
expect_one_line_error
run "$DRRL" info "$tmpdir/absent"
expect_rc 2
expect_one_line_error
expect_err_contains "$tmpdir/absent"

# Bad checkpoints: exit 2 and one line naming the file and the tensor.
copy() { rm -rf "$tmpdir/$1"; cp -r "$FIXTURES/$2" "$tmpdir/$1"; }

copy trunc llama-tiny-b
size=$(wc -c <"$tmpdir/trunc/model.safetensors")
head -c $((size - 1000)) "$FIXTURES/llama-tiny-b/model.safetensors" >"$tmpdir/trunc/model.safetensors"
run "$DRRL" info "$tmpdir/trunc"
expect_rc 2
expect_one_line_error
expect_err_contains "trunc/model.safetensors"
expect_err_contains "tensor '"
expect_err_contains "truncated"

copy shape llama-tiny-b
sed -i 's/"intermediate_size": 88/"intermediate_size": 80/' "$tmpdir/shape/config.json"
run "$DRRL" info "$tmpdir/shape"
expect_rc 2
expect_one_line_error
expect_err_contains "shape/model.safetensors"
expect_err_contains "tensor 'model.layers.0.mlp.gate_proj.weight': shape [88, 32] but the config needs [80, 32]"

copy nan llama-tiny-b
size=$(wc -c <"$tmpdir/nan/model.safetensors")
printf '\000\000\300\177' | dd of="$tmpdir/nan/model.safetensors" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null
run "$DRRL" info "$tmpdir/nan"
expect_rc 2
expect_one_line_error
expect_err_contains "nan/model.safetensors: tensor '"
expect_err_contains "non-finite value nan"

copy arch llama-tiny-b
sed -i 's/LlamaForCausalLM/MistralForCausalLM/' "$tmpdir/arch/config.json"
run "$DRRL" info "$tmpdir/arch"
expect_rc 2
expect_one_line_error
expect_err_contains "arch/config.json: architecture 'MistralForCausalLM' is not supported (supported: GPT2LMHeadModel, LlamaForCausalLM)"

copy noweights gpt2-tiny-b
rm "$tmpdir/noweights/model.safetensors"
run "$DRRL" info "$tmpdir/noweights"
expect_rc 2
expect_one_line_error
expect_err_contains "no model.safetensors"

copy badjson gpt2-tiny-b
printf '{"n_layer": 2,\n "n_head": }\n' >"$tmpdir/badjson/config.json"
run "$DRRL" info "$tmpdir/badjson"
expect_rc 2
expect_one_line_error
expect_err_contains "badjson/config.json:2:"

run "$DRRL" dump --model "$tmpdir/nan" --ids 1,2 --out "$tmpdir/x.safetensors"
expect_rc 2
expect_one_line_error
expect_err_contains "non-finite"
[ ! -e "$tmpdir/x.safetensors" ] || fail "dump wrote output for a bad model"

# dump.
dumpf="$tmpdir/d.safetensors"
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids "5, 6,7 8" --out "$dumpf"
expect_rc 0
expect_out_contains "4 tokens, loss"
[ -s "$dumpf" ] || fail "no output file"
for key in '"input_ids":{"dtype":"I32","shape":[4]' '"logits":{"dtype":"F32","shape":[4,97]' \
    '"attn.1":{"dtype":"F32","shape":[2,4,4]' '"hidden.2":{"dtype":"F32","shape":[4,32]' \
    '"method":"exact"'; do
    head -c 2000 "$dumpf" | grep -qF "$key" || fail "output header lacks $key"
done
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids 1 --out "$dumpf"
expect_rc 2
expect_one_line_error
expect_err_contains "exists"
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids 1,2 --out "$dumpf" --force --no-attn --no-hidden
expect_rc 0
head -c 2000 "$dumpf" | grep -qF '"attn.0"' && fail "--no-attn kept attention"

run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids 1,97 --out "$tmpdir/y.safetensors"
expect_rc 2
expect_one_line_error
expect_err_contains "--ids:1:3: token id 97 is outside the vocabulary 0..96"
printf '1 2 3\n4 x5 6\n' >"$tmpdir/ids.txt"
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids-file "$tmpdir/ids.txt" --out "$tmpdir/y.safetensors"
expect_rc 2
expect_one_line_error
expect_err_contains "ids.txt:2:3: 'x5' is not a token id"
printf '1,2,3\n4\t5 6\n' >"$tmpdir/ids.txt"
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids-file "$tmpdir/ids.txt" --out "$tmpdir/y.safetensors"
expect_rc 0
expect_out_contains "6 tokens"
seq 1 65 | tr '\n' ' ' >"$tmpdir/long.txt"
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids-file "$tmpdir/long.txt" --out "$tmpdir/z.safetensors"
expect_rc 2
expect_one_line_error
expect_err_contains "65 tokens exceed"

run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --out "$tmpdir/y.safetensors"
expect_rc 2
expect_one_line_error
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids 1 --prompt hi --out "$tmpdir/y.safetensors"
expect_rc 2
expect_one_line_error
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --ids 1
expect_rc 2
expect_one_line_error

# Text needs a tokenizer: none in the fixture, a clear error; drrl's byte
# marker gives one.
run "$DRRL" dump --model "$FIXTURES/gpt2-tiny-b" --prompt "hello" --out "$tmpdir/t.safetensors"
expect_rc 2
expect_one_line_error
copy bytes llama-tiny-b
sed -i 's/"architectures"/"drrl_tokenizer": "byte",\n  "architectures"/' "$tmpdir/bytes/config.json"
run "$DRRL" info "$tmpdir/bytes"
expect_rc 0
expect_out_contains "tokenizer     bytes (256 ids)"
printf 'hi\nthere' >"$tmpdir/text.txt"
run "$DRRL" dump --model "$tmpdir/bytes" --text "$tmpdir/text.txt" --out "$tmpdir/t.safetensors"
expect_rc 0
expect_out_contains "8 tokens"
run "$DRRL" dump --model "$tmpdir/bytes" --prompt "hello" --out "$tmpdir/t2.safetensors"
expect_rc 0
expect_out_contains "5 tokens"

# bench forward, full pass and through the session (drrl run's path), on a fixture
run "$DRRL" bench forward --model "$FIXTURES/gpt2-tiny-b" --tokens 20,60 --repeat 1 --threads 1
expect_rc 0
expect_out_contains "full-sequence forward pass"
expect_out_contains "60 "
run "$DRRL" bench forward --session --model "$FIXTURES/gpt2-tiny-b" --tokens 20,60 --repeat 2 --threads 1
expect_rc 0
expect_out_contains "through the session, segment by segment"
expect_out_contains "20 "
expect_out_contains "60 "
run "$DRRL" bench forward --session --model "$FIXTURES/gpt2-tiny-b" --tokens 0
expect_rc 2
expect_one_line_error

# DRRL_POOL_STATS: stage counts, and per kind of stage its time and how busy
# its threads were, on 2 threads (the low-rank method adds its own stages)
printf 'the cat sat on the mat and the dog sat on the log. ' >"$tmpdir/p.txt"
for i in 1 2 3 4 5 6; do cat "$tmpdir/p.txt" "$tmpdir/p.txt" >"$tmpdir/p2.txt"; mv "$tmpdir/p2.txt" "$tmpdir/p.txt"; done
# (the default model: the fixtures are too small for stages on several threads)
run env DRRL_POOL_STATS=1 "$DRRL" run --text "$tmpdir/p.txt" --seq-len 600 --segment 32 --method fixed:4 --no-exact --threads 2
expect_rc 0
expect_err_contains "pool stages "
expect_err_contains "pool linear "
expect_err_contains "pool attention "
expect_err_contains "pool hook "
printf "%s\n" "$err" | grep -q "^pool attention .* stages, .* s on several threads, threads busy  *[0-9]*% of it$" ||
    fail "DRRL_POOL_STATS: no attention line with its time and busy share"
printf "%s\n" "$err" | grep -q "^pool calls  *[1-9][0-9]* forward calls,  *[0-9.]* s inside them,  *[0-9.]* s of it in the hook's call and layer set-up" ||
    fail "DRRL_POOL_STATS: no line with the forward calls' time"

# bench/speed_table.py's low-rank rows and, after the table, where each
# method's time goes (from DRRL_POOL_STATS): the default model, 512 tokens
if command -v python3 >/dev/null 2>&1; then
    python3 "$top_srcdir/bench/speed_table.py" --drrl "$DRRL" --threads 2 --repeat 1 \
        --skip tinyllama,load,tui,torch,gpt2,default --lengths 512 --models "$tmpdir/models" \
        >"$tmpdir/st.md" 2>&1 || fail "speed_table.py: $(cat "$tmpdir/st.md")"
    grep -q '^| fixed:8 (d/4) against full, default model, --no-exact, L=512, 2 threads' "$tmpdir/st.md" ||
        fail "speed_table.py: no low-rank row: $(cat "$tmpdir/st.md")"
    grep -q '^- L=512, 2 threads, fixed:8: wall [0-9.]* s; stages on several threads: .*attention [0-9.]* s (busy [0-9]*%)' "$tmpdir/st.md" ||
        fail "speed_table.py: no stage breakdown: $(cat "$tmpdir/st.md")"
    grep -q '^- L=512, 2 threads, fixed:8: wall .*, serial -*[0-9.]* s (the calling thread between stages)$' "$tmpdir/st.md" ||
        fail "speed_table.py: no serial share: $(cat "$tmpdir/st.md")"
fi
exit 0
