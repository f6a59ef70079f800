#!/bin/sh
# drrl explore (live) on the fixture models: headless screens, --trace-out,
# and the replayed screen at a step equal to the live screen at that step.
. "$top_srcdir/tests/cli/lib.sh"

model="$FIXTURES/gpt2-tiny-b"
seq 1 40 | tr '\n' ' ' >"$tmpdir/ids.txt"
common="--model $model --ids-file $tmpdir/ids.txt --method energy:0.9 --segment 4"

run "$DRRL" explore --model "$tmpdir/none" --ids-file "$tmpdir/ids.txt" --dump-screen -
expect_rc 2
expect_one_line_error

run "$DRRL" explore $common --method bogus:1 --dump-screen -
expect_rc 2
expect_one_line_error

run "$DRRL" explore $common --size 0x0 --dump-screen -
expect_rc 2
expect_one_line_error

run "$DRRL" explore $common </dev/null
expect_rc 2
expect_one_line_error
expect_err_contains "terminal"

# Live, recording a trace: 12 steps forward, 2 back, 3 forward again, then to
# the end of the input and back to token 14 (the whole input is in the
# trace, so the token strip shows the same upcoming tokens in both).
keys="l l l l l l l l l l l l h h l l l : 40 Enter : 14 Enter"
run env LC_ALL=C.UTF-8 "$DRRL" explore $common --trace-out "$tmpdir/t.csv" --keys "$keys" \
    --size 120x40 --dump-screen "$tmpdir/live.txt"
expect_rc 0
[ -s "$tmpdir/t.csv" ] && [ -s "$tmpdir/t.csv.json" ] || fail "no trace written"
grep -q "token 14/40" "$tmpdir/live.txt" || fail "live screen is not at token 14"
grep -q "relerr" "$tmpdir/live.txt" || fail "live screen has no attention rows"
# Its sidecar holds the same metadata as `drrl run` writes for this input.
run "$DRRL" run $common --trace-out "$tmpdir/run.csv"
expect_rc 0
for key in text_hash model_hash method segment_len start decay; do
    a=$(grep -o "\"$key\": *[^,}]*" "$tmpdir/t.csv.json")
    b=$(grep -o "\"$key\": *[^,}]*" "$tmpdir/run.csv.json")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "sidecar $key: explore '$a', run '$b'"
done

# An existing trace is not replaced without --force.
run "$DRRL" explore $common --trace-out "$tmpdir/t.csv" --dump-screen -
expect_rc 2
expect_one_line_error
run "$DRRL" explore $common --trace-out "$tmpdir/t2.csv" --force --dump-screen /dev/null
expect_rc 0

# The replayed screen at that step equals the live one, but for the status
# line (explore vs replay) and the attention pane (live only): compare the
# panes above the attention pane.
run env LC_ALL=C.UTF-8 "$DRRL" replay "$tmpdir/t.csv" --keys ": 14 Enter" --size 120x40 \
    --dump-screen "$tmpdir/replay.txt"
expect_rc 0
grep -q "token 14/40" "$tmpdir/replay.txt" || fail "replay is not at token 14"
n=$(grep -n "Attention" "$tmpdir/live.txt" | head -1 | cut -d: -f1)
[ -n "$n" ] || fail "no attention pane in the live screen"
head -n $((n - 1)) "$tmpdir/live.txt" >"$tmpdir/a"
head -n $((n - 1)) "$tmpdir/replay.txt" >"$tmpdir/b"
diff -u "$tmpdir/a" "$tmpdir/b" >"$tmpdir/diff" || {
    cat "$tmpdir/diff" >&2
    fail "replayed screen differs from the live screen"
}
# the whole screen at 80x24 (tokens, ranks, spectrum, bounds): only the
# status line may differ
run env LC_ALL=C.UTF-8 "$DRRL" explore $common --keys "$keys" --size 80x24 \
    --trace-out "$tmpdir/t80.csv" --dump-screen "$tmpdir/live80.txt"
expect_rc 0
run env LC_ALL=C.UTF-8 "$DRRL" replay "$tmpdir/t80.csv" --keys ": 14 Enter" --size 80x24 \
    --dump-screen "$tmpdir/replay80.txt"
expect_rc 0
head -n 23 "$tmpdir/live80.txt" >"$tmpdir/a"
head -n 23 "$tmpdir/replay80.txt" >"$tmpdir/b"
diff -u "$tmpdir/a" "$tmpdir/b" >"$tmpdir/diff" || {
    cat "$tmpdir/diff" >&2
    fail "replayed 80x24 screen differs from the live screen"
}

# Llama (grouped heads) and every panel zoomed in turn: no crash.
for k in "Tab z" "Tab Tab z" "Tab Tab Tab z" "Tab Tab Tab Tab z" "Tab Tab Tab Tab Tab z" "? " "i"; do
    run "$DRRL" explore --model "$FIXTURES/llama-tiny-b" --ids-file "$tmpdir/ids.txt" \
        --method oracle:0.2 --segment 3 --keys "l l l l l l l $k" --size 90x28 --dump-screen -
    expect_rc 0
done
# Plain drrl's text: the one DATA/texts/DEFAULT names (its first line, "NAME
# [TOKEN]"), else the longest DATA/texts/*.txt; a name outside DATA/texts,
# or of no file, counts as none. It opens at TOKEN, else (none, past the
# end, not a number) at the last token.
if [ -f "$top_srcdir/data/model/model.safetensors" ]; then
    d=$tmpdir/data
    mkdir -p "$d/texts"
    ln -s "$top_srcdir/data/model" "$d/model"
    text_lines 2 'A short text, line %d.' >"$d/texts/a.txt"
    text_lines 3 'A longer text, line %d.' >"$d/texts/b.txt"
    cp "$d/texts/b.txt" "$d/c.txt"
    demo_text() { # TEXT: plain explore opens DATA/texts/TEXT
        run env DRRL_DATA="$d" "$DRRL" explore --keys ': 2 Enter' --dump-screen -
        expect_rc 0
        tail -1 "$tmpdir/out" | grep -q "| token 2/$(wc -c <"$d/texts/$1" | tr -d ' ') |" ||
            fail "DEFAULT '$(cat "$d/texts/DEFAULT" 2>/dev/null)': not $1: $(tail -1 "$tmpdir/out")"
    }
    demo_text b.txt
    printf 'a.txt\nb.txt\n' >"$d/texts/DEFAULT"
    demo_text a.txt
    for bad in ../c.txt missing.txt ''; do
        echo "$bad" >"$d/texts/DEFAULT"
        demo_text b.txt
    done
    na=$(wc -c <"$d/texts/a.txt" | tr -d ' ')
    for line in "a.txt 7:7" "a.txt:$na" "a.txt 999:$na" "a.txt x:$na" "a.txt 7 x:$na"; do
        echo "${line%:*}" >"$d/texts/DEFAULT"
        run env DRRL_DATA="$d" "$DRRL" explore --dump-screen -
        expect_rc 0
        tail -1 "$tmpdir/out" | grep -q "| token ${line##*:}/$na |" ||
            fail "DEFAULT '${line%:*}': not at token ${line##*:}: $(tail -1 "$tmpdir/out")"
    done
fi

# Ctrl-C on a real terminal: the terminal comes back, exit status 1, one
# line naming the trace, and the trace holds what was computed.
tmux_init explore
tm_start 100 30 "'$DRRL' explore $common --trace-out '$tmpdir/int.csv' --keys 'l l l l'"
wait_for "token 5/40" 30 "explore in tmux"
tm send-keys -t t C-c
wait_for "exit=1" 30 "explore after Ctrl-C"
# (the engine runs whole segments of 4 tokens, as drrl run does: token 5
# computed the second segment, 8 tokens of 4 heads)
grep -q "interrupted (SIGINT): trace .*int.csv holds 32 rows" "$tmpdir/pane" || {
    cat "$tmpdir/pane" >&2; fail "no one-line report naming the trace"; }
grep -q "Ranks" "$tmpdir/pane" && fail "the TUI's screen is still shown after Ctrl-C"
run env LC_ALL=C.UTF-8 "$DRRL" replay "$tmpdir/int.csv" --keys G --dump-screen -
expect_rc 0
expect_out_contains "token 8/8"

# Redrawn after every key on a terminal, the attention rows are reused from
# one step to the next (explore.c); drawn once, headless, they are computed
# afresh: the two screens must agree (but for the measured wall times).
tmux_next
K="l l l l l l l l l l l l l l l l l l l l l l Tab Tab Tab Tab h h h l"
run env LC_ALL=C.UTF-8 "$DRRL" explore $common --keys "$K" --size 120x40 --dump-screen "$tmpdir/h.txt"
expect_rc 0
grep -q "relerr" "$tmpdir/h.txt" || fail "no attention rows on the screen"
tm_start 120 40 "'$DRRL' explore $common --keys '$K'"
expect_pane "$tmpdir/h.txt" "wall time"
exit 0
