#!/bin/sh
# drrl under mpirun (README, "Past one machine"): eval shares its windows out
# over 2 processes and writes the same CSV as one process (wall_s aside);
# train-policy over 1, 2 or 3 processes writes the same policy file as a
# plain run, a run resumes at another process count exactly, and a rank
# killed mid-run stops the job and leaves the last checkpoint loadable.
# Skipped (77) when drrl was built without MPI or mpirun is missing.
. "$top_srcdir/tests/cli/lib.sh"

[ "${DRRL_HAVE_MPI:-0}" = 1 ] || { echo "drrl built without MPI: skipped"; exit 77; }
command -v mpirun >/dev/null 2>&1 || { echo "no mpirun: skipped"; exit 77; }
# Two processes on however many cores there are; root (CI containers) needs
# Open MPI's consent. Open MPI's own allocations are not drrl's leaks.
root=
[ "$(id -u)" != 0 ] || root=--allow-run-as-root
np() {
    n=$1
    shift
    ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe $root -np "$n" "$@" </dev/null
}
# The CSV without its wall_s column (the 15th).
nowall() {
    cut -d, -f1-14,16- "$1"
}
# eval_np12 TAG ARGS...: drrl ARGS --csv TAG1.csv in one process, then under
# np 2 with --csv TAG2.csv: both succeed and the two CSVs agree but for wall_s
# (TAG1.nw holds the first without it; $out is the np 2 run's).
eval_np12() {
    tag=$1
    shift
    run "$DRRL" "$@" --csv "$tmpdir/${tag}1.csv"
    expect_rc 0
    run np 2 "$DRRL" "$@" --csv "$tmpdir/${tag}2.csv"
    expect_rc 0
    [ -s "$tmpdir/${tag}2.csv" ] || fail "$tag: np 2: no CSV written"
    nowall "$tmpdir/${tag}1.csv" >"$tmpdir/${tag}1.nw"
    nowall "$tmpdir/${tag}2.csv" >"$tmpdir/${tag}2.nw"
    cmp -s "$tmpdir/${tag}1.nw" "$tmpdir/${tag}2.nw" || {
        diff "$tmpdir/${tag}1.nw" "$tmpdir/${tag}2.nw" >&2
        fail "$tag: np 2 CSV differs from one process's (wall_s aside)"
    }
}

model="$FIXTURES/llama-tiny-b"
text="$tmpdir/text.txt"
fox_text >"$text"

# eval: 5 windows (an odd number: rank 0 runs 3, rank 1 runs 2) and the
# bootstrap CIs against full; one process, then two.
windows="eval --model $model --data $text --seq-len 64 --segment 16 --windows 5 --threads 1"
ev="$windows --methods full,fixed:4,energy:0.9,random:2-8 --boot 500 --seed 3"
eval_np12 eval $ev
[ "$(wc -l <"$tmpdir/eval2.csv")" -eq 5 ] || fail "np 2: expected a header and 4 rows"
grep -q '^fixed:4,64,' "$tmpdir/eval2.csv" || fail "np 2: no fixed:4 row"
# One table on stdout (rank 0 alone prints).
[ "$(printf '%s\n' "$out" | grep -c '^full ')" -eq 1 ] || fail "np 2: expected one table"
# -np 1 is the plain run too.
run np 1 "$DRRL" $ev --csv "$tmpdir/np1.csv"
expect_rc 0
nowall "$tmpdir/np1.csv" | cmp -s - "$tmpdir/eval1.nw" || fail "eval: np 1 differs from plain"
# An existing --csv is refused once, by every rank together (no hang).
run np 2 "$DRRL" $ev --csv "$tmpdir/eval2.csv"
expect_rc 2
expect_err_contains "exists"
# Standard input reaches rank 0 alone: --data - is refused, once.
run sh -c "echo hello | ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe $root -np 2 \
    $DRRL eval --model $model --data - --seq-len 4 --methods full"
expect_rc 2
[ "$(grep -c '^drrl: ' "$tmpdir/err")" -eq 1 ] || fail "stdin refusal: expected one drrl line"
expect_err_contains "only rank 0 has standard input"

# A rank failing alone (here: rank 1 is given a missing file, mpirun's
# MPMD form) does not leave rank 0 waiting: it aborts the job after the
# grace period, saying so.
run env DRRL_DIST_GRACE=1 ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe $root \
    -np 1 "$DRRL" $ev --csv "$tmpdir/alone.csv" : -np 1 "$DRRL" $ev --data "$tmpdir/nope.txt" </dev/null
[ "$rc" -ne 0 ] || fail "a rank failed alone and the job exited 0"
expect_err_contains "nope.txt"
expect_err_contains "rank 1 of 2 failed (exit status 2)"
[ -e "$tmpdir/alone.csv" ] && fail "a failed job wrote its CSV"

# Several hosts (README): a hostfile naming two hosts, reached through a
# stand-in for ssh (Open MPI's plm_rsh_agent) that logs the host and runs
# the command here, with a TMPDIR per host (the hosts share this machine's
# name: in one /tmp their orteds' session directories would collide);
# mpirun starts an orted per host, the ranks under them, with the README's
# options: the same CSV as one process.
cat >"$tmpdir/fakessh" <<'EOF'
#!/bin/sh
d=${0%/*}
echo "$1" >>"$d/ssh.log"
mkdir -p "$d/host-$1"
export TMPDIR="$d/host-$1"
shift
exec sh -c "$*"
EOF
chmod +x "$tmpdir/fakessh"
printf 'node1 slots=1\nnode2 slots=1\n' >"$tmpdir/hosts"
run env ASAN_OPTIONS=detect_leaks=0 mpirun $root --mca plm_rsh_agent "$tmpdir/fakessh" \
    --hostfile "$tmpdir/hosts" -np 2 --bind-to core "$DRRL" $ev --csv "$tmpdir/hosts.csv" </dev/null
expect_rc 0
[ "$(sort "$tmpdir/ssh.log" | tr '\n' ' ')" = "node1 node2 " ] ||
    fail "hostfile: expected one launch on node1 and one on node2, got: $(cat "$tmpdir/ssh.log")"
nowall "$tmpdir/hosts.csv" | cmp -s - "$tmpdir/eval1.nw" || fail "eval: 2 hosts differ from one process"

# train-policy: the file records the command line, so every run below writes
# p.st in a directory of its own.
tp="train-policy --model $model --data $text --segment 16 --episode-len 64 --episodes 3"
tp="$tp --threads 1 -q --seed 5 --out p.st"
train() { # DIR NP|plain STEPS [ARGS...]
    d=$tmpdir/$1 n=$2 s=$3
    shift 3
    mkdir -p "$d"
    cd "$d" || fail "cd $d"
    if [ "$n" = plain ]; then
        run "$DRRL" $tp --steps "$s" "$@"
    else
        run np "$n" "$DRRL" $tp --steps "$s" "$@"
    fi
    cd "$tmpdir" || fail "cd $tmpdir"
    expect_rc 0
    [ -s "$d/p.st" ] || fail "$1: no policy written"
}
# The tensors of a policy file (weights and Adam moments), without the
# metadata (which holds the command line: a resumed run's differs).
payload() {
    h=$(od -An -t u8 -N8 "$1" | tr -d ' ')
    s=$(wc -c <"$1")
    tail -c $((s - 8 - h)) "$1"
}
train plain plain 3
train np1 1 3
train np2 2 3
train np2b 2 3
train np3 3 3
cmp -s "$tmpdir/plain/p.st" "$tmpdir/np1/p.st" || fail "train-policy: np 1 differs from plain"
cmp -s "$tmpdir/np2/p.st" "$tmpdir/np2b/p.st" || fail "train-policy: np 2 not deterministic"
cmp -s "$tmpdir/plain/p.st" "$tmpdir/np2/p.st" || fail "train-policy: np 2 differs from plain"
cmp -s "$tmpdir/plain/p.st" "$tmpdir/np3/p.st" || fail "train-policy: np 3 differs from plain"
train other 2 3 --seed 6
cmp -s "$tmpdir/plain/p.st" "$tmpdir/other/p.st" && fail "train-policy: the seed is ignored"
# 2 steps at np 2, then resumed in place to 4 at np 1 (and at np 3): the
# tensors of 4 uninterrupted steps.
train long 2 4
train half 2 2
train half 1 4 --resume p.st
payload "$tmpdir/long/p.st" >"$tmpdir/long.t"
payload "$tmpdir/half/p.st" | cmp -s - "$tmpdir/long.t" ||
    fail "train-policy: 2 steps at np 2 resumed to 4 at np 1 differ from 4 steps"
train half3 plain 2
train half3 3 4 --resume p.st
payload "$tmpdir/half3/p.st" | cmp -s - "$tmpdir/long.t" ||
    fail "train-policy: 2 steps plain resumed to 4 at np 3 differ from 4 steps"

# eval --ablations with the policies just trained: the no-RL row's rank
# comes from the drrl row's mean rank over all windows, which every rank
# must get from rank 0.
ab="$windows --boot 200 --methods full,drrl:$tmpdir/plain/p.st --ablations"
eval_np12 ablations $ab --beta0-policy "$tmpdir/other/p.st"
grep -q "no-RL=fixed:[2-9]" "$tmpdir/ablations2.csv" || fail "ablations: no no-RL row above rank 1"

# A rank killed mid-run, rank 1 and then rank 0 (the one that writes the
# checkpoints): mpirun stops the job (non-zero exit, a message naming the
# rank), and the last checkpoint resumes at another N (3) to exactly the
# tensors of an uninterrupted plain run of one step more.
command -v pgrep >/dev/null 2>&1 || exit 0
# The steps recorded in a policy file's metadata ("training":{"steps":K).
steps_of() {
    h=$(od -An -t u8 -N8 "$1" | tr -d ' ')
    head -c $((8 + h)) "$1" | tail -c "$h" |
        sed -n 's/.*\\"training\\":{\\"steps\\":\([0-9]*\).*/\1/p'
}
[ "$(steps_of "$tmpdir/long/p.st")" = 4 ] || fail "steps_of: expected 4 steps in long/p.st"
kill_rank() { # RANK
    d=$tmpdir/kill$1
    mkdir "$d"
    cd "$d" || fail "cd $d"
    np 2 "$DRRL" $tp --steps 1000000 --ckpt-every 1 >out 2>err &
    job=$!
    i=0
    while [ ! -s p.st ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -s p.st ] || fail "no checkpoint within 60 s"
    # the ranks are mpirun's children (the shell may have exec'ed mpirun as
    # $job); Open MPI gives each its rank in OMPI_COMM_WORLD_RANK
    mp=$job
    [ "$(ps -o comm= -p "$job")" = mpirun ] || mp=$(pgrep -P "$job" | head -n 1)
    kid=
    for c in $(pgrep -P "$mp"); do
        tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
            kid=$c
    done
    [ -n "$kid" ] && [ "$(ps -o comm= -p "$kid")" = drrl ] || fail "no rank $1 to kill"
    kill -9 "$kid"
    i=0
    while kill -0 "$job" 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$job" 2>/dev/null && { kill "$job"; fail "the job did not stop within 30 s of rank $1's death"; }
    wait "$job"
    jrc=$?
    [ "$jrc" -ne 0 ] || fail "rank $1 died and mpirun exited 0"
    grep -q "process rank $1 with PID .*exited on signal 9" err ||
        { cat err >&2; fail "no message naming the dead rank $1"; }
    k=$(steps_of p.st)
    [ -n "$k" ] && [ "$k" -ge 1 ] || fail "rank $1 killed: the checkpoint has no steps"
    echo "rank $1 killed: checkpoint at step $k, resumed at np 3 to $((k + 1))"
    cd "$tmpdir" || fail "cd"
    train kill$1 3 $((k + 1)) --resume p.st
    train ref$1 plain $((k + 1))
    payload "$tmpdir/ref$1/p.st" >"$tmpdir/ref$1.t"
    payload "$tmpdir/kill$1/p.st" | cmp -s - "$tmpdir/ref$1.t" ||
        fail "rank $1 killed at step $k: resumed at np 3 to $((k + 1)) differs from a plain run"
}
kill_rank 1
kill_rank 0
exit 0
