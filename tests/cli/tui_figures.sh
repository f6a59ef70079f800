#!/bin/sh
# One definition of every figure: `drrl run`'s summary, its trace, the replay
# of that trace and the live explorer's trace agree exactly.
#   - the sum of the trace's flops_exact / flops_executed (in file order) is
#     the summary's attention-core FLOPs, to the last bit;
#   - the last savings_cum is the summary's whole-model savings (float32);
#   - `drrl replay T --keys G` shows both savings as run printed them;
#   - the explorer's trace of the same inputs equals run's but for wall_ns;
# and search over the shipped model's text.
. "$top_srcdir/tests/cli/lib.sh"

data="$top_srcdir/data"
[ -f "$data/model/model.safetensors" ] || { echo "SKIP: no data/model"; exit 0; }
text="$data/texts/brown-test-1-scifi.txt"

for method in drrl energy:0.9 fixed:8; do
    T="$tmpdir/run-$method.csv"
    S="$tmpdir/run-$method.json"
    run "$DRRL" run --model "$data/model" --text "$text" --seq-len 300 --method "$method" \
        --trace-out "$T" --summary-json "$S" --no-timing
    expect_rc 0
    line=$(printf '%s\n' "$out" | grep '^savings')
    model=$(printf '%s\n' "$line" | sed -n 's/.*whole model \(-\{0,1\}[0-9.]*%\).*/\1/p')
    core=$(printf '%s\n' "$line" | sed -n 's/.*attention core \(-\{0,1\}[0-9.]*%\).*/\1/p')
    [ -n "$model" ] && [ -n "$core" ] || fail "$method: run printed no labelled savings: '$line'"
    js() { grep -o "\"$1\": *[^,}]*" "$S" | sed 's/.*: *//'; }
    # the rows add up to the summary's attention-core FLOPs exactly
    col() { head -1 "$T" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
    ce=$(col flops_exact) cx=$(col flops_executed) cs=$(col savings_cum)
    # (token texts are quoted and may hold commas: count fields from the end)
    nf=$(head -1 "$T" | tr ',' '\n' | wc -l)
    sums=$(tail -n +2 "$T" | awk -F, -v a=$((nf - ce)) -v b=$((nf - cx)) -v c=$((nf - cs)) \
        '{ e += $(NF - a); x += $(NF - b); s = $(NF - c) }
         END { printf "%.17g %.17g %.9g\n", e, x, s }')
    set -- $sums
    [ "$1" = "$(js attn_flops_exact)" ] || fail "$method: rows' flops_exact sum $1, summary $(js attn_flops_exact)"
    [ "$2" = "$(js attn_flops_executed)" ] ||
        fail "$method: rows' flops_executed sum $2, summary $(js attn_flops_executed)"
    awk -v a="$3" -v b="$(js savings)" 'BEGIN { d = a - b; if (d < 0) d = -d;
        exit !(d <= 1e-7 * (1 + (b < 0 ? -b : b))) }' ||
        fail "$method: last savings_cum $3, summary savings $(js savings)"
    # the replay of the trace shows run's figures
    run env LC_ALL=C.UTF-8 "$DRRL" replay "$T" --keys G --size 120x40 --dump-screen "$tmpdir/F-$method"
    expect_rc 0
    grep -q "token 300/300" "$tmpdir/F-$method" || fail "$method: replay G is not at the last token"
    grep "^│ total " "$tmpdir/F-$method" | grep -qF " $core " ||
        fail "$method: replay's attention core is not run's $core: $(grep '│ total' "$tmpdir/F-$method")"
    grep "whole model" "$tmpdir/F-$method" | grep -qF " $model " ||
        fail "$method: replay's whole model is not run's $model: $(grep 'whole model' "$tmpdir/F-$method")"
    # the live explorer's trace of the same inputs: identical but for wall_ns
    E="$tmpdir/explore-$method.csv"
    run "$DRRL" explore --model "$data/model" --text "$text" --seq-len 300 --method "$method" \
        --trace-out "$E" --keys ': 300 Enter' --dump-screen "$tmpdir/live-$method"
    expect_rc 0
    sed 's/,[0-9]*$/,/' "$E" >"$tmpdir/e"
    cmp -s "$T" "$tmpdir/e" || {
        diff "$T" "$tmpdir/e" | head -4 >&2
        fail "$method: the explorer's trace differs from run's"
    }
    cmp -s "$T.json" "$E.json" || fail "$method: the sidecars differ"
done

# The live knobs: the threshold (and the policy's budget) change the ranks
# from the cursor's segment on; the tokens before it keep their records.
# (eps 0.5 x 0.8^8 = 0.084: low enough to mask a rank the policy chose in
# segment 2 on a model much closer to low rank than the shipped one)
ex="$DRRL explore --model $data/model --method drrl --text $text --size 120x40"
run env LC_ALL=C.UTF-8 $ex --keys ': 300 Enter' --dump-screen "$tmpdir/k0"
run env LC_ALL=C.UTF-8 $ex --keys ': 300 Enter < < < < < < < <' --dump-screen "$tmpdir/k1"
expect_rc 0
tail -1 "$tmpdir/k1" | grep -q "recomputed from token 257 (segment 2)" ||
    fail "knobs: $(tail -1 "$tmpdir/k1")"
sed -n 5,9p "$tmpdir/k0" >"$tmpdir/a"
sed -n 5,9p "$tmpdir/k1" >"$tmpdir/b"
cmp -s "$tmpdir/a" "$tmpdir/b" && fail "a lower threshold changed no rank of segment 2"
run env LC_ALL=C.UTF-8 $ex --keys ': 200 Enter' --dump-screen "$tmpdir/k2"
run env LC_ALL=C.UTF-8 $ex --keys ': 300 Enter < < < < } : 200 Enter' --dump-screen "$tmpdir/k3"
# (the panes but attention, whose approximate rows use the engine's
# current basis and say so)
for k in k2 k3; do
    n=$(grep -n "Attention" "$tmpdir/$k" | head -1 | cut -d: -f1)
    head -n $((n - 1)) "$tmpdir/$k" >"$tmpdir/$k.cut"
done
cp "$tmpdir/k2.cut" "$tmpdir/a"
cp "$tmpdir/k3.cut" "$tmpdir/b"
diff -u "$tmpdir/a" "$tmpdir/b" >&2 || fail "knobs changed a token before the cursor's segment"
run "$DRRL" replay "$T" --keys '<' --dump-screen -
expect_out_contains "the knobs need the live engine"

# replay on a directory says so (it used to say the sidecar was missing)
run "$DRRL" replay "$tmpdir"
expect_rc 2
expect_one_line_error
expect_err_contains "is a directory"

# Search over the text (the shipped model's tokens are bytes, so every word
# spans tokens): after a long jump, '/' finds the next occurrence; its token
# is its byte offset + 1.
text="$data/texts/brown-test-3-romance.txt"
want=$(grep -ob "hunger" "$text" | head -1 | cut -d: -f1)
[ -n "$want" ] || fail "the test text lost its word"
run env LC_ALL=C.UTF-8 "$DRRL" explore --text "$text" --keys ': 700 Enter / hunger Enter' \
    --size 120x40 --dump-screen "$tmpdir/s"
expect_rc 0
tail -1 "$tmpdir/s" | grep -qF "'hunger' at token $((want + 1)) (tokens $((want + 1))-$((want + 6)))" ||
    fail "search: $(tail -1 "$tmpdir/s")"
sed -n 2p "$tmpdir/s" | grep -qF "[h]unger" || fail "search: the cursor is not on the word"

# A long jump on a terminal: the screen shows its progress (never blank),
# Esc stops it where it is, and G then goes to the end of the text.
tmux_init figures
command -v xz >/dev/null 2>&1 || { echo "SKIP: no xz (tmux part)"; exit 0; }
xz -dc "$data/brown/test.txt.xz" >"$tmpdir/brown.txt"
tm_linger=900
tm_start 80 24 "'$DRRL' explore --text '$tmpdir/brown.txt' --seq-len 4096 --token 4096"
wait_for "computing to token 4096" 30 "--token 4096's progress"
grep -q "Ranks" "$tmpdir/pane" || fail "the screen is blank while computing"
tm send-keys -t t Escape
wait_for "stopped: tokens 1-" 30 "Esc's stop"
grep -q "token 1/4096" "$tmpdir/pane" || fail "Esc moved the cursor"
tm send-keys -t t G
# (a liveness bound, not a timing test: 4096 tokens take seconds in a plain
# build and minutes in a sanitizer build on a loaded 2-core machine)
wait_for "token 4096/4096" 900 "G to the end of the text"
exit 0
