#!/bin/sh
# drrl tokenize: ids equal to the reference encoder's, exact bytes from
# --text, round trip through --decode, and one-line errors.
. "$top_srcdir/tests/cli/lib.sh"
bpe=$top_srcdir/tests/data/gpt2-bpe

run "$DRRL" tokenize --tokenizer "$bpe" --prompt "Hello world"
expect_rc 0
[ "$out" = "15496 995" ] || fail "Hello world: got '$out'"

# Every committed text, read with --text, gives the reference ids exactly.
for f in "$bpe"/texts/*.txt; do
    name=$(basename "$f" .txt)
    "$DRRL" tokenize --tokenizer "$bpe" --text "$f" >"$tmpdir/ids" 2>"$tmpdir/err" ||
        fail "$name: exit $?"
    cmp -s "$tmpdir/ids" "$bpe/ids/$name.ids" || fail "$name: ids differ from the reference"
    # Round trip: decode the ids back to the file's exact bytes.
    "$DRRL" tokenize --tokenizer "$bpe" --decode "$(cat "$tmpdir/ids")" >"$tmpdir/back" ||
        fail "$name: decode failed"
    cmp -s "$tmpdir/back" "$f" || fail "$name: decode(encode(x)) != x"
done

# --text - reads standard input; --pieces shows one token a line.
printf 'a\n' | "$DRRL" tokenize --tokenizer "$bpe" --text - >"$tmpdir/ids" || fail "stdin"
[ "$(cat "$tmpdir/ids")" = "64 198" ] || fail "stdin: got '$(cat "$tmpdir/ids")'"
run "$DRRL" tokenize --tokenizer "$bpe" --prompt " the
" --pieces
expect_rc 0
[ "$out" = "$(printf '262\t the\n198\t\\n')" ] || fail "--pieces: got '$out'"

# Byte-level models: ids are the bytes.
mkdir "$tmpdir/bytes"
echo '{"vocab_size": 256, "drrl_tokenizer": "byte"}' >"$tmpdir/bytes/config.json"
run "$DRRL" tokenize --model "$tmpdir/bytes" --prompt "Az
"
expect_rc 0
[ "$out" = "65 122 10" ] || fail "bytes: got '$out'"

# Empty text: an empty line.
: >"$tmpdir/empty"
run "$DRRL" tokenize --model "$tmpdir/bytes" --text "$tmpdir/empty"
expect_rc 0
[ "$out" = "" ] || fail "empty: got '$out'"

# Errors: one line, exit 2.
run "$DRRL" tokenize --tokenizer "$bpe"
expect_rc 2; expect_one_line_error
run "$DRRL" tokenize --prompt x
expect_rc 2; expect_one_line_error
run "$DRRL" tokenize --tokenizer "$bpe" --model "$bpe" --prompt x
expect_rc 2; expect_one_line_error
run "$DRRL" tokenize --tokenizer "$bpe" --prompt x --text /dev/null
expect_rc 2; expect_one_line_error
run "$DRRL" tokenize --tokenizer "$bpe" --text "$tmpdir/no-such-file"
expect_rc 2; expect_one_line_error; expect_err_contains "no-such-file"
run "$DRRL" tokenize --tokenizer "$tmpdir/no-such-dir" --prompt x
expect_rc 2; expect_one_line_error; expect_err_contains "no-such-dir"
run "$DRRL" tokenize --model "$bpe" --prompt x
expect_rc 2; expect_one_line_error; expect_err_contains "config.json"
run "$DRRL" tokenize --tokenizer "$bpe" --decode "1,2,x"
expect_rc 2; expect_one_line_error
run "$DRRL" tokenize --tokenizer "$bpe" --decode "50257"
expect_rc 2; expect_one_line_error; expect_err_contains "50257"
run "$DRRL" tokenize --tokenizer "$bpe" --prompt x extra
expect_rc 2; expect_one_line_error

# A model directory with no tokenizer: says to give ids directly.
mkdir "$tmpdir/none"
echo '{"vocab_size": 1000}' >"$tmpdir/none/config.json"
run "$DRRL" tokenize --model "$tmpdir/none" --prompt x
expect_rc 2; expect_one_line_error; expect_err_contains "--ids"

# Malformed tokenizer files: one line naming file:line:column.
mkdir "$tmpdir/bad"
printf '{"a": 0, "b": 1, "ab": 2}' >"$tmpdir/bad/vocab.json"
printf '#version: 0.2\na b\nab\n' >"$tmpdir/bad/merges.txt"
run "$DRRL" tokenize --tokenizer "$tmpdir/bad" --prompt ab
expect_rc 2; expect_one_line_error; expect_err_contains "merges.txt:3:3:"
printf '{"a": 0,\n "b" 1}' >"$tmpdir/bad/vocab.json"
run "$DRRL" tokenize --tokenizer "$tmpdir/bad" --prompt ab
expect_rc 2; expect_one_line_error; expect_err_contains "vocab.json:2:"

# Write errors are reported (exit 1), not ignored.
if [ -w /dev/full ]; then
    run sh -c "'$DRRL' tokenize --tokenizer '$bpe' --prompt hello >/dev/full"
    expect_rc 1; expect_one_line_error
fi
exit 0
