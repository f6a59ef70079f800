#!/bin/sh
# The catalogue of bad inputs: each one must give exit status 1 or
# 2 (never a signal), exactly one line on stderr starting "drrl: ", nothing on
# stdout, and no output file (or temporary) left behind. A few inputs that look
# bad but are valid (non-UTF-8 text, a one-token text, a tiny terminal) must
# work. Bad files are made here from the committed fixtures.
. "$top_srcdir/tests/cli/lib.sh"
export LC_ALL=C
gpt2=$FIXTURES/gpt2-tiny-b    # GPT-2, vocab 97, 64 positions, no tokenizer files
llama=$FIXTURES/llama-tiny-b  # Llama, vocab 256: byte-level tokenizer
shards=$FIXTURES/llama-sharded-f16
trace=$top_srcdir/tests/golden/tui-small.csv
outdir=$tmpdir/outputs
mkdir "$outdir"
n_bad=0
n_ok=0

# bad WHAT CMD...: the checks above; $outdir must stay empty.
bad() {
    what=$1
    shift
    n_bad=$((n_bad + 1))
    run "$@"
    case $rc in 1 | 2) ;; *) fail "$what: expected exit 1 or 2, got $rc" ;; esac
    n=$(wc -l <"$tmpdir/err")
    [ "$n" -eq 1 ] || fail "$what: expected one line on stderr, got $n"
    case "$err" in "drrl: "*) ;; *) fail "$what: stderr does not start with 'drrl: '" ;; esac
    [ ! -s "$tmpdir/out" ] || fail "$what: wrote to stdout"
    [ -z "$(ls -A "$outdir")" ] || fail "$what: left '$(ls -A "$outdir")' behind"
}

# says TEXT: the last bad case's message contains TEXT.
says() {
    case "$err" in *"$1"*) ;; *) fail "case $n_bad: stderr lacks '$1'" ;; esac
}

# ok WHAT CMD...: a valid input that merely looks odd: exit 0, nothing on stderr.
ok() {
    what=$1
    shift
    n_ok=$((n_ok + 1))
    run "$@"
    [ "$rc" -eq 0 ] || fail "$what: expected exit 0, got $rc"
    [ ! -s "$tmpdir/err" ] || fail "$what: wrote to stderr"
}

# A fresh copy of a model directory at $tmpdir/NAME.
model_copy() {
    rm -rf "${tmpdir:?}/$2"
    cp -r "$1" "$tmpdir/$2"
}

# Header length of a safetensors file (its first 8 bytes, little-endian).
header_len() {
    od -An -t u8 -N8 "$1" | tr -d ' '
}

# Overwrite bytes at an offset (printf escapes).
poke() {
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# ---- checkpoints (drrl info, drrl dump) ----
st=$tmpdir/m/model.safetensors
model_copy "$gpt2" m
size=$(wc -c <"$st")
hl=$(header_len "$st")

: >"$st"
bad "empty safetensors" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
printf 'abc' >"$st"
bad "3-byte safetensors" "$DRRL" info "$tmpdir/m"; says "model.safetensors"

model_copy "$gpt2" m
head -c $((8 + hl / 2)) "$gpt2/model.safetensors" >"$st"
bad "truncated in the header" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
head -c $((size - 100)) "$gpt2/model.safetensors" >"$st"
bad "truncated in the data" "$DRRL" info "$tmpdir/m"; says "model.safetensors"

printf 'PK\003\004\024\000\000\000\010\000zip archive, not safetensors' >"$st"
bad "wrong magic (a zip file)" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
printf '\377\377\377\377\377\377\377\377{}' >"$st"
bad "huge header length" "$DRRL" info "$tmpdir/m"; says "header"
printf '\350\003\000\000\000\000\000\000{}' >"$st"
bad "header length beyond the file" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
printf '\004\000\000\000\000\000\000\000abcd' >"$st"
bad "header is not JSON" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
printf '\002\000\000\000\000\000\000\000[]' >"$st"
bad "header is a JSON array" "$DRRL" info "$tmpdir/m"; says "model.safetensors"

# Length-preserving edits of the header.
edit_header() {
    model_copy "$gpt2" m
    sed "$1" "$gpt2/model.safetensors" >"$st"
    [ "$(wc -c <"$st")" -eq "$size" ] || fail "edit_header '$1' changed the size"
    cmp -s "$st" "$gpt2/model.safetensors" && fail "edit_header '$1' changed nothing"
}
edit_header 's/"shape":\[64,32\]/"shape":[32,64]/'
bad "shape mismatch (wpe transposed)" "$DRRL" info "$tmpdir/m"; says "transformer.wpe.weight"
edit_header 's/"dtype":"F32"/"dtype":"Q32"/'
bad "unknown dtype" "$DRRL" info "$tmpdir/m"; says "Q32"
edit_header 's/"data_offsets":\[0,384\]/"data_offsets":[4,388]/'
bad "overlapping data offsets" "$DRRL" info "$tmpdir/m"; says "model.safetensors"
edit_header 's/"transformer.ln_f.weight"/"transformer.ln_f.weighx"/'
bad "missing tensor" "$DRRL" info "$tmpdir/m"; says "transformer.ln_f.weight"

# Non-finite weights: the first tensor in the data section (c_attn.bias of layer 0).
model_copy "$gpt2" m
poke "$st" $((8 + hl)) '\000\000\300\177'
bad "NaN weight" "$DRRL" info "$tmpdir/m"; says "transformer.h.0.attn.c_attn.bias"
model_copy "$gpt2" m
poke "$st" $((8 + hl + 4)) '\000\000\200\377'
bad "-Inf weight" "$DRRL" info "$tmpdir/m"; says "transformer.h.0.attn.c_attn.bias"
model_copy "$gpt2" m
poke "$st" $((8 + hl)) '\000\000\300\177'
bad "NaN weight (dump)" "$DRRL" dump --model "$tmpdir/m" --ids 1,2,3 --out "$outdir/x.safetensors"

# config.json
model_copy "$gpt2" m
rm "$tmpdir/m/config.json"
bad "missing config.json" "$DRRL" info "$tmpdir/m"; says "config.json"
head -c 100 "$gpt2/config.json" >"$tmpdir/m/config.json"
bad "truncated config.json" "$DRRL" info "$tmpdir/m"; says "config.json"
sed 's/GPT2LMHeadModel/BertForMaskedLM/' "$gpt2/config.json" >"$tmpdir/m/config.json"
bad "unknown architecture" "$DRRL" info "$tmpdir/m"; says "BertForMaskedLM"
sed 's/"n_layer": 2/"n_layer": -1/' "$gpt2/config.json" >"$tmpdir/m/config.json"
bad "negative layer count" "$DRRL" info "$tmpdir/m"; says "n_layer"
sed 's/"n_head": 2/"n_head": 3/' "$gpt2/config.json" >"$tmpdir/m/config.json"
bad "heads do not divide d_model" "$DRRL" info "$tmpdir/m"; says "config.json"
sed 's/"n_layer": 2/"n_layer": 3/' "$gpt2/config.json" >"$tmpdir/m/config.json"
bad "more layers than tensors" "$DRRL" info "$tmpdir/m"; says "transformer.h.2"
bad "no such model directory" "$DRRL" info "$tmpdir/no-such-model"; says "no-such-model"
bad "model path is a file" "$DRRL" info "$gpt2/config.json"

# Sharded checkpoints.
model_copy "$shards" s
rm "$tmpdir/s/model-00002-of-00003.safetensors"
bad "index names a missing shard" "$DRRL" info "$tmpdir/s"; says "model-00002-of-00003"
model_copy "$shards" s
head -c 200 "$shards/model.safetensors.index.json" >"$tmpdir/s/model.safetensors.index.json"
bad "truncated shard index" "$DRRL" info "$tmpdir/s"; says "model.safetensors.index.json"
sed 's|"model-00003-of-00003.safetensors"|"../../../etc/passwd"|' \
    "$shards/model.safetensors.index.json" >"$tmpdir/s/model.safetensors.index.json"
bad "index names a file outside the directory" "$DRRL" info "$tmpdir/s"

# ---- texts and ids (drrl run, drrl dump) ----
: >"$tmpdir/empty.txt"
bad "empty text" "$DRRL" run --model "$llama" --text "$tmpdir/empty.txt"
bad "empty text (dump)" "$DRRL" dump --model "$llama" --text "$tmpdir/empty.txt" \
    --out "$outdir/x.safetensors"
bad "text file missing" "$DRRL" run --model "$llama" --text "$tmpdir/no-such.txt"
says "no-such.txt"
bad "text is a directory" "$DRRL" dump --model "$llama" --text "$tmpdir" \
    --out "$outdir/x.safetensors"
seq 0 90 >"$tmpdir/ids91"
bad "longer than the context (64 positions)" "$DRRL" dump --model "$gpt2" \
    --ids-file "$tmpdir/ids91" --out "$outdir/x.safetensors"; says "64"
bad "longer than the context (run)" "$DRRL" run --model "$gpt2" --ids-file "$tmpdir/ids91"
bad "id outside the vocabulary" "$DRRL" dump --model "$gpt2" --ids 1,2,97 \
    --out "$outdir/x.safetensors"; says "97"
printf '1 2 x 4\n' >"$tmpdir/ids-bad"
bad "ids file with a word" "$DRRL" dump --model "$gpt2" --ids-file "$tmpdir/ids-bad" \
    --out "$outdir/x.safetensors"; says "ids-bad"
bad "text without a tokenizer" "$DRRL" dump --model "$gpt2" --prompt hello \
    --out "$outdir/x.safetensors"; says "--ids"
model_copy "$gpt2" m
printf '{"a": 0,\n "b" 1}' >"$tmpdir/m/vocab.json"
printf '#version: 0.2\n' >"$tmpdir/m/merges.txt"
bad "malformed vocab.json" "$DRRL" dump --model "$tmpdir/m" --prompt ab \
    --out "$outdir/x.safetensors"; says "vocab.json:2:"
printf 'ab\377\376cd\n' >"$tmpdir/latin1.txt"
ok "non-UTF-8 text (byte-level)" "$DRRL" run --model "$llama" --text "$tmpdir/latin1.txt"
ok "non-UTF-8 text (GPT-2 BPE)" "$DRRL" tokenize --tokenizer "$top_srcdir/tests/data/gpt2-bpe" \
    --text "$tmpdir/latin1.txt"
ok "one-token text" "$DRRL" run --model "$llama" --prompt a

# ---- methods and ranks ----
bad "unknown method spec" "$DRRL" run --model "$llama" --prompt abc --method bogus:3
says "bogus:3"
bad "rank above head_dim" "$DRRL" run --model "$llama" --prompt abc --method fixed:999
says "999"
bad "rank zero" "$DRRL" run --model "$llama" --prompt abc --method fixed:0
bad "random range reversed" "$DRRL" run --model "$llama" --prompt abc --method random:6-2
bad "rank grid step outside head_dim" "$DRRL" run --model "$llama" --prompt abc \
    --method drrl --rank-step 99
printf 'not a policy' >"$tmpdir/policy.safetensors"
bad "malformed policy file" "$DRRL" run --model "$llama" --prompt abc \
    --method "drrl:$tmpdir/policy.safetensors"; says "policy.safetensors"

# ---- traces (drrl replay) ----
cp "$trace" "$tmpdir/t.csv"
cp "$trace.json" "$tmpdir/t.csv.json"
ok "trace copy replays" "$DRRL" replay "$tmpdir/t.csv" --dump-screen "$tmpdir/screen.txt"
sed '1s/,rank,/,rnak,/' "$trace" >"$tmpdir/t.csv"
bad "CSV with a wrong column name" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -
says "t.csv:1"
sed '1s/,rank,/,/' "$trace" >"$tmpdir/t.csv"
bad "CSV with a column missing" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -
sed '3s/,[^,]*$//' "$trace" >"$tmpdir/t.csv"
bad "CSV row with a field missing" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -
says "t.csv:3"
head -c $(($(wc -c <"$trace") / 2)) "$trace" >"$tmpdir/t.csv"
bad "truncated CSV" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -
: >"$tmpdir/t.csv"
bad "empty CSV" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -
cp "$trace" "$tmpdir/t.csv"
rm "$tmpdir/t.csv.json"
bad "missing sidecar" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -; says "t.csv.json"
head -c 50 "$trace.json" >"$tmpdir/t.csv.json"
bad "truncated sidecar" "$DRRL" replay "$tmpdir/t.csv" --dump-screen -; says "t.csv.json"
ok "10x5 terminal" "$DRRL" replay "$trace" --size 10x5 --force --dump-screen "$tmpdir/screen.txt"
[ -s "$tmpdir/screen.txt" ] || fail "10x5 terminal: empty screen"

# ---- outputs ----
# exit2: the last bad case was bad input (exit 2), not a runtime failure.
exit2() {
    [ "$rc" -eq 2 ] || fail "case $n_bad: expected exit 2, got $rc"
}
bad "output directory does not exist" "$DRRL" dump --model "$gpt2" --ids 1,2,3 \
    --out "$tmpdir/no-such-dir/x.safetensors"; exit2; says "$tmpdir/no-such-dir/x.safetensors"
bad "output directory does not exist (text)" "$DRRL" dump --model "$llama" --prompt abc \
    --out "$tmpdir/no-such-dir/deeper/x.safetensors"; exit2; says "no-such-dir/deeper"
: >"$tmpdir/afile"
bad "output parent is a file" "$DRRL" dump --model "$gpt2" --ids 1,2,3 \
    --out "$tmpdir/afile/x.safetensors"; exit2; says "afile"
bad "output is a directory" "$DRRL" dump --model "$gpt2" --ids 1,2,3 --out "$outdir"
bad "converted model's directory does not exist" "$DRRL" convert "$llama" \
    "$tmpdir/no-such-dir/m16"; exit2; says "no-such-dir/m16"
printf 'keep' >"$tmpdir/exists.safetensors"
bad "output exists without --force" "$DRRL" dump --model "$gpt2" --ids 1,2,3 \
    --out "$tmpdir/exists.safetensors"
[ "$(cat "$tmpdir/exists.safetensors")" = keep ] || fail "existing output was changed"
# A full file system: RLIMIT_FSIZE of 16 blocks (8 or 16 KiB; the dump of 64
# tokens is over 64 KiB of logits alone).
bad "full file system (RLIMIT_FSIZE)" sh -c \
    'ulimit -f 16 && exec "$0" dump --model "$1" --prompt "$2" --out "$3"' \
    "$DRRL" "$llama" "$(printf '%064d' 0)" "$outdir/x.safetensors"

# ---- flags ----
bad "thread count zero" "$DRRL" dump --model "$gpt2" --ids 1,2 --threads 0 \
    --out "$outdir/x.safetensors"
bad "segment length not a number" "$DRRL" run --model "$llama" --prompt abc --segment x

echo "bad inputs: $n_bad cases rejected cleanly, $n_ok odd but valid inputs accepted"
[ "$n_bad" -ge 30 ] || fail "the catalogue has only $n_bad cases"
exit 0
