#!/bin/sh
# valgrind memcheck: no leak (definite or indirect) and no invalid
# access in drrl run, dump and replay, and in an explore session played on a
# real (tmux) terminal and headless. Every run goes through valgrind with
# --error-exitcode=99, so any memcheck error or leak fails the test; its log
# is shown. Tiny inputs (a 2-layer fixture, a 53-byte text), one thread.
#
# Skipped (exit 77) without valgrind, and in a sanitizer build: ASan's shadow
# memory and valgrind cannot run together (tests/cli/*.sh under
# --enable-sanitizers already check leaks with LeakSanitizer).
. "$top_srcdir/tests/cli/lib.sh"

command -v valgrind >/dev/null 2>&1 || { echo "SKIP: valgrind not installed"; exit 77; }
if grep -q __asan_init "$DRRL" 2>/dev/null; then
    echo "SKIP: $DRRL is built with AddressSanitizer (valgrind cannot run it)"
    exit 77
fi

# One OpenBLAS thread: no thread pool whose workers are still alive at exit.
export OPENBLAS_NUM_THREADS=1 LC_ALL=C.UTF-8
# Only definite and indirect leaks are errors: "still reachable" blocks
# (ncurses' terminfo, libc's stdio buffers, OpenBLAS's per-thread buffers)
# are held until exit by design and freed by the OS; "possibly lost" ones
# are interior pointers into such blocks. No suppressions are needed: with
# these settings OpenBLAS, LAPACKE, jansson and ncurses report nothing (the
# headless explore even ends with every heap block freed).
VG="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --num-callers=30"
n_runs=0

# vg NAME CMD...: run drrl's CMD under memcheck (log in $tmpdir/vg-NAME.log);
# fails on a memcheck error or leak (exit 99) and on any other non-zero exit.
vg() {
    name=$1
    shift
    n_runs=$((n_runs + 1))
    t0=$(date +%s)
    # shellcheck disable=SC2086
    run $VG --log-file="$tmpdir/vg-$name.log" "$DRRL" "$@"
    echo "$name: exit $rc, $(($(date +%s) - t0)) s under valgrind"
    if [ "$rc" -ne 0 ] || [ -s "$tmpdir/vg-$name.log" ]; then
        cat "$tmpdir/vg-$name.log" >&2
        fail "$name: exit $rc under valgrind (99 = memcheck errors or leaks)"
    fi
}

model=$FIXTURES/llama-tiny-b  # Llama, 2 layers, 4 heads, byte-level tokenizer
printf 'The quick brown fox jumps over the lazy dog. It ran.\n' >"$tmpdir/short.txt"
common="--model $model --text $tmpdir/short.txt --method energy:0.9 --segment 4 --threads 1"

# shellcheck disable=SC2086
vg run run $common --trace-out "$tmpdir/t.csv" --summary-json "$tmpdir/summary.json"
expect_out_contains "bound violations  0"
[ -s "$tmpdir/t.csv" ] && [ -s "$tmpdir/t.csv.json" ] || fail "run: no trace written"
# The drrl method itself: a policy trained for one step (also under memcheck),
# choosing the ranks.
for i in 1 2 3 4 5 6 7 8; do echo "The cat sleeps on the mat, line $i."; done >"$tmpdir/data.txt"
vg train-policy train-policy --model "$model" --data "$tmpdir/data.txt" --segment 16 \
    --episode-len 64 --episodes 2 --steps 1 --threads 1 -q --out "$tmpdir/p.safetensors"
vg run-drrl run --model "$model" --text "$tmpdir/short.txt" --segment 4 --threads 1 \
    --method "drrl:$tmpdir/p.safetensors"
expect_out_contains "bound violations  0"
# GPT-2 (fused c_attn, learned positions), token ids, a random rank per head.
seq 1 30 >"$tmpdir/ids.txt"
vg run-gpt2 run --model "$FIXTURES/gpt2-3l4h" --ids-file "$tmpdir/ids.txt" --threads 1 \
    --method random:2-4 --segment 3
# shellcheck disable=SC2086
vg dump dump $common --out "$tmpdir/d.safetensors"
[ -s "$tmpdir/d.safetensors" ] || fail "dump: no output"
vg dump-exact dump --model "$model" --prompt "abc def" --threads 1 --out "$tmpdir/e.safetensors"
vg replay replay "$tmpdir/t.csv" --keys "l l l ] j . Tab z z s G [ / fox Enter n : 9 Enter" \
    --size 100x30 --dump-screen "$tmpdir/replay.txt"
grep -q "token 9/" "$tmpdir/replay.txt" || fail "replay: not at token 9"
# shellcheck disable=SC2086
vg explore-headless explore $common --keys "l l l l l ] j . Tab z z s i Esc ? Esc G" \
    --size 100x30 --dump-screen "$tmpdir/explore.txt"

# The explore session on a real terminal: started in tmux, driven by keys
# sent one at a time, ended with q; the trace it records must replay.
command -v tmux >/dev/null 2>&1 || {
    echo "SKIP: tmux not installed (the explore session on a terminal)"
    exit 0
}
sock="drrl-valgrind-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'tm kill-server >/dev/null 2>&1; rm -rf "$tmpdir"' EXIT INT TERM
t0=$(date +%s)
tm new-session -d -s v -x 100 -y 30 \
    "TERM=xterm-256color $VG --log-file='$tmpdir/vg-explore.log' '$DRRL' explore $common \
     --trace-out '$tmpdir/x.csv' 2>'$tmpdir/explore.err'; echo \$? >'$tmpdir/explore.rc'; sleep 60"
# wait_for TEXT: until the pane shows TEXT (valgrind starts slowly).
wait_for() {
    i=0
    until tm capture-pane -p -t v 2>/dev/null | grep -q "$1"; do
        i=$((i + 1))
        [ $i -lt 600 ] || { tm capture-pane -p -t v >&2; fail "explore never showed '$1'"; }
        sleep 0.1
    done
}
wait_for "token 1/"
for k in l l l l l ']' j . Tab z z s i Escape '?' Escape G : 2 0 Enter; do
    tm send-keys -t v "$k"
    sleep 0.05
done
wait_for "token 20/"
tm send-keys -t v q
i=0
until [ -s "$tmpdir/explore.rc" ]; do
    i=$((i + 1))
    [ $i -lt 600 ] || { tm capture-pane -p -t v >&2; fail "explore did not quit on q"; }
    sleep 0.1
done
n_runs=$((n_runs + 1))
erc=$(cat "$tmpdir/explore.rc")
echo "explore (tmux): exit $erc, $(($(date +%s) - t0)) s under valgrind"
if [ "$erc" -ne 0 ] || [ -s "$tmpdir/vg-explore.log" ]; then
    cat "$tmpdir/explore.err" "$tmpdir/vg-explore.log" >&2
    fail "explore session: exit $erc under valgrind (99 = memcheck errors or leaks)"
fi
run "$DRRL" replay "$tmpdir/x.csv" --keys G --dump-screen -
expect_rc 0
echo "valgrind: $n_runs drrl runs, no memcheck error, no leak"
exit 0
