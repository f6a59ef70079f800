# lib.sh: helpers for drrl's shell tests. Source it; it defines:
#   run CMD...      runs CMD, storing stdout in $out, stderr in $err, status in $rc
#   run_killed SIG SECONDS CMD...  as run, with signal SIG sent to CMD (process $pid)
#                   SECONDS after its start
#   fail MSG        prints MSG and exits 1
#   expect_rc N     fails unless $rc is N
#   expect_one_line_error   fails unless stderr is exactly one line starting "drrl: "
#   expect_golden FILE NAME fails unless FILE equals tests/golden/NAME
#                   (DRRL_REGEN_GOLDEN=1: FILE becomes the golden instead)
#   expect_screen NAME KEYS SIZE LOCALE CMD...  runs CMD --keys KEYS --size SIZE --dump-screen
#                   under LC_ALL=LOCALE: exit 0 and the screen tests/golden/NAME.txt
#   text_lines N FORMAT [M]  prints N lines: printf FORMAT with i mod M (M: N), i = 0..N-1
#   fox_text        prints the 40 lines of English the train and eval tests read
# and, for the tests that drive the explorer on a real terminal (tmux):
#   tmux_init NAME  exits 0 (SKIP) without tmux; else tm runs tmux on a server of its own
#   tmux_next       a fresh server for the next part of a test
#   tm_start W H CMD    session t, W x H, runs CMD under LC_ALL=C.UTF-8 TERM=xterm-256color
#                   (assignments at the start of CMD override them), then "exit=STATUS"
#   wait_for TEXT [SECONDS [WHAT]]  polls session t until it shows TEXT
#   expect_pane FILE [SKIP]         polls session t until it equals FILE (less lines matching SKIP)
set -u
: "${DRRL:?DRRL must point at the drrl binary}"
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/drrl-test.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT INT TERM

run() {
    "$@" >"$tmpdir/out" 2>"$tmpdir/err"
    rc=$?
    out=$(cat "$tmpdir/out")
    err=$(cat "$tmpdir/err")
}

run_killed() {
    rk_sig=$1 rk_delay=$2
    shift 2
    "$@" >"$tmpdir/out" 2>"$tmpdir/err" &
    pid=$!
    sleep "$rk_delay"
    kill -"$rk_sig" $pid 2>/dev/null
    wait $pid
    rc=$?
    out=$(cat "$tmpdir/out")
    err=$(cat "$tmpdir/err")
}

fail() {
    echo "FAIL: $*" >&2
    echo "--- stdout:" >&2; cat "$tmpdir/out" >&2 2>/dev/null
    echo "--- stderr:" >&2; cat "$tmpdir/err" >&2 2>/dev/null
    exit 1
}

expect_rc() {
    [ "$rc" -eq "$1" ] || fail "expected exit $1, got $rc"
}

expect_one_line_error() {
    n=$(wc -l <"$tmpdir/err")
    [ "$n" -eq 1 ] || fail "expected one line on stderr, got $n"
    case "$err" in drrl:\ *) ;; *) fail "stderr does not start with 'drrl: '" ;; esac
}

expect_out_contains() {
    case "$out" in *"$1"*) ;; *) fail "stdout lacks '$1'" ;; esac
}

expect_err_contains() {
    case "$err" in *"$1"*) ;; *) fail "stderr lacks '$1'" ;; esac
}

expect_golden() {
    golden="$top_srcdir/tests/golden/$2"
    if [ "${DRRL_REGEN_GOLDEN:-0}" = 1 ]; then
        cp "$1" "$golden"
    else
        diff -u "$golden" "$1" >"$tmpdir/diff" || {
            cat "$tmpdir/diff" >&2
            fail "$1 differs from tests/golden/$2"
        }
    fi
}

expect_screen() {
    es_name=$1 es_keys=$2 es_size=$3 es_locale=$4
    shift 4
    run env LC_ALL="$es_locale" "$@" --keys "$es_keys" --size "$es_size" \
        --dump-screen "$tmpdir/$es_name.txt"
    expect_rc 0
    expect_golden "$tmpdir/$es_name.txt" "$es_name.txt"
}

text_lines() {
    i=0
    while [ $i -lt "$1" ]; do
        # shellcheck disable=SC2059 # FORMAT is the caller's printf format
        printf "$2\n" $((i % ${3:-$1}))
        i=$((i + 1))
    done
}

fox_text() {
    text_lines 40 'The quick brown fox jumps over the lazy dog; the cat sleeps on line %d.'
}

tmux_init() {
    command -v tmux >/dev/null 2>&1 || { echo "SKIP: tmux not installed (tmux part)"; exit 0; }
    tmux_name=$1
    tmux_phase=0
    sock="drrl-$tmux_name-$$-$tmux_phase"
    trap 'tm kill-server >/dev/null 2>&1; cd /; rm -rf "$tmpdir"' EXIT INT TERM
}

tm() { tmux -L "$sock" -f /dev/null "$@"; }

tmux_next() {
    tm kill-server >/dev/null 2>&1
    tmux_phase=$((tmux_phase + 1))
    sock="drrl-$tmux_name-$$-$tmux_phase"
}

# (the session stays tm_linger seconds after CMD, 30 by default, so that its
# last screen can be read)
tm_start() {
    tm new-session -d -s t -x "$1" -y "$2" \
        "env LC_ALL=C.UTF-8 TERM=xterm-256color $3; echo \"exit=\$?\"; sleep ${tm_linger:-30}"
}

# The pane as last polled stays in $tmpdir/pane. The bound (30 s by default)
# is for liveness: make check may run under load and under the sanitizers.
wait_for() {
    i=0
    while [ $i -lt $((${2:-30} * 10)) ]; do
        tm capture-pane -p -t t >"$tmpdir/pane" 2>/dev/null
        grep -q -- "$1" "$tmpdir/pane" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    cat "$tmpdir/pane" >&2
    fail "${3:-the terminal} never showed '$1'"
}

# capture-pane keeps each line's trailing blanks off, as --dump-screen does;
# polled until the frame is complete (30 s at most).
pane_lines() {
    if [ -n "$pane_skip" ]; then grep -v -- "$pane_skip"; else cat; fi
}

expect_pane() {
    pane_skip=${2:-}
    pane_lines <"$1" >"$tmpdir/want"
    i=0
    until tm capture-pane -p -t t 2>/dev/null | pane_lines >"$tmpdir/pane" &&
        cmp -s "$tmpdir/want" "$tmpdir/pane"; do
        i=$((i + 1))
        if [ $i -ge 300 ]; then
            diff -u "$tmpdir/want" "$tmpdir/pane" >&2
            fail "the terminal's screen differs from $1"
        fi
        sleep 0.1
    done
}
