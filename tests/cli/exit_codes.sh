#!/bin/sh
# Exit codes from one table (base/status.c), the same for every command: a bad
# option, a missing input file and an output that cannot be created (under a
# missing directory, under a regular file, in a directory drrl may not write)
# are usage or input errors: exit 2 and one line naming the path; a write
# that fails midway (a full standard output) is a runtime failure: exit 1.
. "$top_srcdir/tests/cli/lib.sh"
export LC_ALL=C
L=$FIXTURES/llama-tiny-b
T=$top_srcdir/tests/golden/tui-small.csv
fox_text >"$tmpdir/text.txt"
printf '1\tgood movie\n0\tbad movie\n1\tgreat\n0\tawful\n' >"$tmpdir/s.tsv"
: >"$tmpdir/afile"
no=$tmpdir/no-such
cases=0

# code WANT WHAT CMD...: exit WANT, one line on stderr starting "drrl: ",
# naming $name when set; nothing left in $tmpdir that was not there.
code() {
    want=$1 what=$2
    shift 2
    cases=$((cases + 1))
    before=$(ls -A "$tmpdir" | grep -v '^out$\|^err$')
    run "$@"
    [ "$rc" -eq "$want" ] || fail "$what: expected exit $want, got $rc"
    expect_one_line_error
    [ -z "${name:-}" ] || expect_err_contains "$name"
    after=$(ls -A "$tmpdir" | grep -v '^out$\|^err$')
    [ "$before" = "$after" ] || fail "$what: left files behind: $after"
}

# Every command, one line each: a bad option.
for c in info dump bench tokenize explore replay tour diff version run eval eval-sentiment \
    train-lm train-policy convert; do
    name=--bogus code 2 "$c: bad option" "$DRRL" $c --bogus
done

# A missing input file.
name=$no
code 2 "info: missing model" "$DRRL" info "$no"
code 2 "dump: missing model" "$DRRL" dump --model "$no" --ids 1 --out "$tmpdir/o"
code 2 "bench: missing model" "$DRRL" bench forward --model "$no"
code 2 "tokenize: missing text" "$DRRL" tokenize --model "$L" --text "$no"
code 2 "explore: missing text" "$DRRL" explore --model "$L" --text "$no" --dump-screen -
code 2 "replay: missing trace" "$DRRL" replay "$no" --dump-screen -
code 2 "tour: missing text" "$DRRL" tour --text "$no" --dump-screen -
code 2 "diff: missing trace" "$DRRL" diff "$no" "$T"
code 2 "run: missing text" "$DRRL" run --model "$L" --text "$no"
code 2 "eval: missing text" "$DRRL" eval --model "$L" --data "$no" --seq-len 8 --methods full
code 2 "eval-sentiment: missing data" "$DRRL" eval-sentiment --model "$L" --data "$no"
code 2 "train-lm: missing text" "$DRRL" train-lm --train "$no" --valid none --out "$tmpdir/m"
code 2 "train-policy: missing text" "$DRRL" train-policy --model "$L" --data "$no" \
    --out "$tmpdir/p.st"
code 2 "convert: missing model" "$DRRL" convert "$no" "$tmpdir/m"

# Outputs that cannot be created: every writing option of every command.
small_lm="--train $tmpdir/text.txt --valid none --layers 1 --d-model 16 --heads 2 --head-dim 8 --d-ff 32 --ctx 32 --batch 4 --steps 1 -q"
small_pol="--model $L --data $tmpdir/text.txt --segment 16 --episode-len 64 --episodes 2 --steps 1 -q"
unwritable() {
    o=$1 why=$2
    name=$o
    code 2 "dump --out ($why)" "$DRRL" dump --model "$L" --ids 1,2 --out "$o"
    code 2 "explore --dump-screen ($why)" "$DRRL" explore --model "$L" --text "$tmpdir/text.txt" \
        --dump-screen "$o"
    code 2 "explore --trace-out ($why)" "$DRRL" explore --model "$L" --text "$tmpdir/text.txt" \
        --trace-out "$o" --dump-screen -
    code 2 "replay --dump-screen ($why)" "$DRRL" replay "$T" --dump-screen "$o"
    code 2 "tour --dump-screen ($why)" "$DRRL" tour --dump-screen "$o"
    code 2 "diff --dump-screen ($why)" "$DRRL" diff --tui "$T" "$T" --dump-screen "$o"
    code 2 "run --summary-json ($why)" "$DRRL" run --model "$L" --text "$tmpdir/text.txt" \
        --summary-json "$o"
    code 2 "run --trace-out ($why)" "$DRRL" run --model "$L" --text "$tmpdir/text.txt" \
        --trace-out "$o"
    code 2 "eval --csv ($why)" "$DRRL" eval --model "$L" --data "$tmpdir/text.txt" --seq-len 8 \
        --methods full --csv "$o"
    code 2 "eval-sentiment --csv ($why)" "$DRRL" eval-sentiment --model "$L" \
        --data "$tmpdir/s.tsv" --folds 2 --methods full --csv "$o"
    code 2 "train-lm --out ($why)" "$DRRL" train-lm $small_lm --out "$o"
    code 2 "train-lm --dump-logits ($why)" "$DRRL" train-lm --eval-only --model "$L" \
        --data "$tmpdir/text.txt" --ctx 16 -q \
        --dump-logits "$o"
    code 2 "train-policy --out ($why)" "$DRRL" train-policy $small_pol --out "$o"
    code 2 "convert ($why)" "$DRRL" convert "$L" "$o"
    code 2 "bench trace --write ($why)" "$DRRL" bench trace --write "$o" --rows 10
}
unwritable "$no/x" "missing directory"
unwritable "$tmpdir/afile/x" "under a regular file"
# A directory drrl may not write: read-only for a user; root writes through
# modes, so then sysfs, where creating a file is refused even to root.
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$tmpdir/ro" && chmod 555 "$tmpdir/ro"
    unwritable "$tmpdir/ro/x" "read-only directory"
elif [ -d /sys/kernel ] && ! (: >/sys/kernel/drrl-probe) 2>/dev/null; then
    unwritable /sys/kernel/drrl-x "directory refusing new files"
fi
name=

# A write that fails midway: standard output full, for every command that
# prints (exit 1, one line).
for args in "--help" "version" "info $L" "tokenize --model $L --prompt abc" \
    "run --model $L --prompt abcdef" "dump --help" "eval --model $L --data $tmpdir/text.txt --seq-len 8 --methods full" \
    "replay $T --dump-screen -"; do
    name="standard output" code 1 "$args >/dev/full" sh -c "exec \"\$0\" $args >/dev/full" "$DRRL"
done
# diff's exit 1 means "the traces differ": its trouble is 2, as diff(1)'s.
name="standard output" code 2 "diff >/dev/full" sh -c "exec \"\$0\" diff $T $T >/dev/full" "$DRRL"
echo "exit codes: $cases cases"
