#!/bin/sh
# drrl replay: bad input, golden screens rendered headless by the real
# binary, and the same keys played on a real (tmux) terminal giving the same
# screen, restored on q and on SIGINT.
# DRRL_REGEN_GOLDEN=1 rewrites the replay-*.txt goldens instead.
. "$top_srcdir/tests/cli/lib.sh"

trace="$top_srcdir/tests/golden/tui-small.csv"
gold="$top_srcdir/tests/golden"

run "$DRRL" replay "$tmpdir/missing.csv" --dump-screen -
expect_rc 2
expect_one_line_error
expect_err_contains "missing.csv"

printf 'step,token\n1,2\n' >"$tmpdir/bad.csv"
run "$DRRL" replay "$tmpdir/bad.csv" --dump-screen -
expect_rc 2
expect_one_line_error

run "$DRRL" replay "$trace" --size 80 --dump-screen -
expect_rc 2
expect_one_line_error

run "$DRRL" replay
expect_rc 2
expect_one_line_error

# Without a terminal and without --dump-screen: a clear error, not a crash.
run "$DRRL" replay "$trace" </dev/null
expect_rc 2
expect_one_line_error
expect_err_contains "terminal"

# check NAME KEYS SIZE LOCALE: the headless screen equals the golden file.
check() {
    expect_screen "$1" "$2" "$3" "$4" "$DRRL" replay "$trace"
}

keys_a="l l l l l l l l l l ] j . . Tab"
check replay-120x40 "$keys_a" 120x40 C.UTF-8
check replay-80x24-ascii "$keys_a" 80x24 C
check replay-break-100x30 "Tab Tab : 3 Enter b rank Enter c" 100x30 C.UTF-8
check replay-resize "l l resize=50x14 l" 200x60 C.UTF-8
check replay-tiny "l" 10x5 C.UTF-8
# text typed in a prompt, then a named key (a regression: the name was typed)
check replay-goto-search ": 25 Enter / lazy Enter n" 100x30 C.UTF-8
grep -q "search wrapped: 'lazy' at token 8" "$gold/replay-goto-search.txt" || fail "search for 'lazy' did not run"

# The screen on a real terminal equals the headless dump.
tmux_init replay
start() {
    tm_start 120 40 "'$DRRL' replay '$trace' --keys '$1'"
}

start "$keys_a"
wait_for "token 17/40"
expect_pane "$gold/replay-120x40.txt"
tm send-keys -t t q
wait_for "exit=0"
grep -q "Ranks" "$tmpdir/pane" && fail "the TUI's screen is still shown after q"

# Colours: 256 colours on xterm-256color; none at all with NO_COLOR.
# colours ENV: the escapes of the screen after one key, under ENV
colours() {
    tmux_next
    tm_start 120 40 "$1 '$DRRL' replay '$trace' --keys 'l'"
    wait_for "token 2/40"
    tm capture-pane -e -p -t t >"$tmpdir/esc"
    tm send-keys -t t q
    wait_for "exit=0"
}
colours ""
grep -q '38;5;' "$tmpdir/esc" || fail "no 256-colour cells on xterm-256color"
colours NO_COLOR=1
grep -q '\[3[0-7]m\|\[4[0-7]m\|38;5;\|48;5;' "$tmpdir/esc" && fail "colours despite NO_COLOR"

# A terminal that cannot address the cursor: a clear error, exit 2.
tmux_next
tm_start 120 40 "TERM=dumb '$DRRL' replay '$trace'"
wait_for "exit=2"
grep -q "cannot move the cursor" "$tmpdir/pane" || fail "no message for TERM=dumb"

# SIGINT: the terminal comes back and the exit status says interrupted.
tmux_next
start "l"
wait_for "token 2/40"
tm send-keys -t t C-c
wait_for "exit=1"
grep -q "Ranks" "$tmpdir/pane" && fail "the TUI's screen is still shown after SIGINT"

# Resize at any time: shrink below the minimum, then grow back.
tmux_next
start "l l"
wait_for "token 3/40"
tm resize-window -t t -x 30 -y 8 2>/dev/null || tm resize-pane -t t -x 30 -y 8
wait_for "too small"
tm resize-window -t t -x 120 -y 40 2>/dev/null || tm resize-pane -t t -x 120 -y 40
wait_for "token 3/40"
tm send-keys -t t q
wait_for "exit=0"
exit 0
