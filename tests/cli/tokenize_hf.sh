#!/bin/sh
# drrl tokenize on Hugging Face tokenizer.json files of three families
# (Llama-2/Mistral: SentencePiece-style BPE with byte fallback, written with
# Prepend and Replace normalizers or with a Metaspace pre-tokenizer;
# Llama-3 and Qwen3: byte-level BPE after a Split regex, Qwen3 with NFC):
# every line of tests/data/hf-tokenizers/texts (heldout.txt: 102 lines
# written after drrl's tokenizers, checked without changes to them) gives
# the ids of Hugging Face's JavaScript implementation (committed under ids/, made by
# tests/data/fetch_hf_tokenizers.sh --ids), so do whole files, and decoding
# gives the text back. The tokenizer.json files are fetched, not committed:
# without them (bootstrap.sh fetches them) this test is skipped (77).
. "$top_srcdir/tests/cli/lib.sh"
hf=$top_srcdir/tests/data/hf-tokenizers
for family in llama2 llama3 qwen3; do
    if [ ! -f "$hf/fetched/$family/tokenizer.json" ]; then
        echo "SKIP: $hf/fetched/$family/tokenizer.json is missing (run tests/data/fetch_hf_tokenizers.sh)" >&2
        exit 77
    fi
done

# tiny_llama DIR VOCAB: a Llama-shaped model (1 layer, d_model 8, zero
# weights) with VOCAB ids, for `drrl info`.
tiny_llama() {
    d=$1 v=$2
    mkdir -p "$d"
    sed -e "s/\"vocab_size\": 256/\"vocab_size\": $v/" -e 's/"hidden_size": 32/"hidden_size": 8/' \
        -e 's/"intermediate_size": 88/"intermediate_size": 8/' \
        -e 's/"num_attention_heads": 4/"num_attention_heads": 1/' \
        -e 's/"num_key_value_heads": 4/"num_key_value_heads": 1/' \
        -e 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' \
        "$FIXTURES/llama-tiny-b/config.json" >"$d/config.json"
    off=0 hdr=""
    add() { # NAME ROWS [COLS]
        shape=$2 n=$2
        [ $# -eq 3 ] && shape="$2, $3" n=$(($2 * $3))
        hdr="$hdr\"$1\": {\"dtype\": \"F32\", \"shape\": [$shape], \"data_offsets\": [$off, $((off + 4 * n))]}, "
        off=$((off + 4 * n))
    }
    add model.embed_tokens.weight "$v" 8
    add model.layers.0.input_layernorm.weight 8
    add model.layers.0.post_attention_layernorm.weight 8
    for p in q k v o; do add "model.layers.0.self_attn.${p}_proj.weight" 8 8; done
    for p in gate up down; do add "model.layers.0.mlp.${p}_proj.weight" 8 8; done
    add model.norm.weight 8
    hdr="{${hdr%, }}"
    while [ $(((${#hdr} + 8) % 8)) -ne 0 ]; do hdr="$hdr "; done
    len=${#hdr}
    {
        for s in 0 8 16 24 32 40 48 56; do
            printf "\\$(printf %03o $(((len >> s) & 255)))"
        done
        printf '%s' "$hdr"
        head -c "$off" /dev/zero
    } >"$d/model.safetensors"
}

# llama2-metaspace (the llama2 file with a Metaspace pre-tokenizer instead
# of the Prepend and Replace normalizers) is derived by the fetch script;
# fetched/ made before it was added lacks it: that family only is skipped.
families="llama2 llama3 qwen3"
if [ -f "$hf/fetched/llama2-metaspace/tokenizer.json" ]; then
    families="llama2 llama2-metaspace llama3 qwen3"
else
    echo "note: $hf/fetched/llama2-metaspace is missing (rerun tests/data/fetch_hf_tokenizers.sh): not checked" >&2
fi
for family in $families; do
    dir=$hf/fetched/$family
    # Every line of every text, one drrl run (loading Llama-3's file takes
    # a second or two).
    : >"$tmpdir/all.txt"
    : >"$tmpdir/all.ref"
    for f in "$hf"/texts/*.txt; do
        name=$(basename "$f" .txt)
        cat "$f" >>"$tmpdir/all.txt"
        cat "$hf/ids/$family/$name.lines" >>"$tmpdir/all.ref"
    done
    "$DRRL" tokenize --tokenizer "$dir" --text "$tmpdir/all.txt" --lines >"$tmpdir/all.ids" ||
        fail "$family: --lines: exit $?"
    if ! cmp -s "$tmpdir/all.ids" "$tmpdir/all.ref"; then
        diff "$tmpdir/all.ids" "$tmpdir/all.ref" | head -5 >&2
        fail "$family: ids of some lines differ from the reference"
    fi
    lines=$(wc -l <"$tmpdir/all.ref")
    [ "$lines" -ge 400 ] || fail "$family: only $lines reference lines"

    # Whole files (runs of newlines and spaces across lines), and back.
    for name in newlines spaces_digits code unicode_spaces heldout; do
        "$DRRL" tokenize --tokenizer "$dir" --text "$hf/texts/$name.txt" >"$tmpdir/ids" ||
            fail "$family: $name: exit $?"
        cmp -s "$tmpdir/ids" "$hf/ids/$family/$name.ids" ||
            fail "$family: $name: ids of the whole file differ from the reference"
        "$DRRL" tokenize --tokenizer "$dir" --decode "$(cat "$tmpdir/ids")" >"$tmpdir/back" ||
            fail "$family: $name: decode failed"
        # (Qwen's NFC composes heldout.txt's combining marks: not x again)
        [ "$family/$name" = qwen3/heldout ] || cmp -s "$tmpdir/back" "$hf/texts/$name.txt" ||
            fail "$family: $name: decode(encode(x)) != x"
    done

    # Bytes that are not UTF-8 survive: byte fallback (Llama-2) or
    # byte-level tokens (Llama-3, Qwen3).
    printf 'a\377\344b\344\275 c\n' >"$tmpdir/bad.txt"
    run "$DRRL" tokenize --tokenizer "$dir" --text "$tmpdir/bad.txt"
    expect_rc 0
    "$DRRL" tokenize --tokenizer "$dir" --decode "$out" >"$tmpdir/back" || fail "$family: decode"
    cmp -s "$tmpdir/back" "$tmpdir/bad.txt" || fail "$family: invalid UTF-8 does not round-trip"
done

# Qwen3 normalises to NFC: a decomposed é comes back composed.
run "$DRRL" tokenize --tokenizer "$hf/fetched/qwen3" --prompt "$(printf 'e\314\201')"
expect_rc 0
ids=$out
run "$DRRL" tokenize --tokenizer "$hf/fetched/qwen3" --decode "$ids"
[ "$out" = "$(printf '\303\251')" ] || fail "qwen3: NFC: got '$out'"

# Special tokens written in the text are plain text.
run "$DRRL" tokenize --tokenizer "$hf/fetched/llama2" --prompt "<s>"
expect_rc 0
[ "$out" != "1" ] || fail "llama2: <s> in the text became the special token"
run "$DRRL" tokenize --tokenizer "$hf/fetched/llama3" --prompt "<|begin_of_text|>"
expect_rc 0
case " $out " in *" 128000 "*) fail "llama3: <|begin_of_text|> became the special token" ;; esac

# --pieces shows SentencePiece's spaces as spaces and joins byte-fallback
# pieces into the character.
run "$DRRL" tokenize --tokenizer "$hf/fetched/llama2" --prompt "a 👨‍👩" --pieces
expect_rc 0
case "$out" in *"	 a"*) ;; *) fail "llama2 --pieces: no ' a' piece: $out" ;; esac
case "$out" in *"	👨"*) ;; *) fail "llama2 --pieces: the man emoji is not joined: $out" ;; esac
# drrl info names the tokenizer of a model directory.
for spec in llama2:32000:sentencepiece-bpe llama3:128256:llama3-bpe qwen3:151669:qwen2-bpe; do
    family=${spec%%:*} rest=${spec#*:}
    vocab=${rest%%:*} kind=${rest#*:}
    tiny_llama "$tmpdir/model-$family" "$vocab"
    cp "$hf/fetched/$family/tokenizer.json" "$tmpdir/model-$family/"
    run "$DRRL" info "$tmpdir/model-$family"
    expect_rc 0
    expect_out_contains "tokenizer     $kind ($vocab ids): "
    rm -rf "$tmpdir/model-$family"
done

# The explorer, traces and diff show Llama-2's tokens as text: '\u2581' as a
# space, the byte-fallback pieces of a character joined on the first ("" on
# the others), the invisible zero-width joiner as \u200D, a character cut at
# the end of the text escaped.
m=$tmpdir/model-llama2
tiny_llama "$m" 32000
cp "$hf/fetched/llama2/tokenizer.json" "$m/"
printf 'H\303\251llo \342\230\203 \360\237\221\250\342\200\215\360\237\221\251 \346\227\245\346\234\254 \342\230' >"$tmpdir/t.txt"
"$DRRL" run --model "$m" --text "$tmpdir/t.txt" --method full --segment 4 --no-timing \
    --trace-out "$tmpdir/a.csv" >/dev/null || fail "run: exit $?"
# one row per token (1 layer, 1 head): the token column in order
tokens=$(tail -n +2 "$tmpdir/a.csv" | cut -d, -f3 | tr '\n' '|')
want='" H"|"é"|"ll"|"o"|" "|"☃"|" "|"👨"|""|""|""|"\\u200D"|"👩"|""|""|""|" "|"日"|"本"|" "|"\\xE2"|"\\x98"|'
[ "$tokens" = "$want" ] || fail "trace tokens: $tokens, want $want"
run "$DRRL" explore --model "$m" --text "$tmpdir/t.txt" --method full --segment 4 \
    --size 100x30 --keys ': 8 Enter' --dump-screen "$tmpdir/explore.txt"
expect_rc 0
grep -q 'Héllo│ ☃ \[👨\]│\\u200D│👩│ 日本 │\\xE2\\x98' "$tmpdir/explore.txt" ||
    fail "explore: token strip: $(head -2 "$tmpdir/explore.txt" | tail -1)"
run "$DRRL" replay "$tmpdir/a.csv" --size 100x30 --keys ': 8 Enter' --dump-screen "$tmpdir/replay.txt"
expect_rc 0
[ "$(head -3 "$tmpdir/explore.txt")" = "$(head -3 "$tmpdir/replay.txt")" ] ||
    fail "replay's token strip differs from the explorer's"
# (segments of 5: the first divergence is at token 5, the snowman)
for spec in full:c fixed:4:d; do
    "$DRRL" run --model "$m" --text "$tmpdir/t.txt" --method "${spec%:*}" --segment 5 \
        --no-timing --trace-out "$tmpdir/${spec##*:}.csv" >/dev/null || fail "run $spec: exit $?"
done
run "$DRRL" diff "$tmpdir/c.csv" "$tmpdir/d.csv"
expect_rc 1
expect_out_contains '(token "☃")'
exit 0
