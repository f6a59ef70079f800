#!/bin/sh
# The bad-input catalogue, part 2 (part 1 is bad_inputs.sh): hostile inputs
# and outputs by class (issue 19). Every case asserts its exit status, one
# line on stderr starting "drrl: " that names the file (and position where
# there is one), no temporary file left anywhere under the test directory,
# and that every pre-existing user file is byte-identical afterwards. Every
# command runs under `timeout`: a hang fails the case.
. "$top_srcdir/tests/cli/lib.sh"
export LC_ALL=C
L=$FIXTURES/llama-tiny-b # Llama, 2 layers, 4 heads x 8, vocab 256, byte-level
G=$FIXTURES/gpt2-tiny-b
T=$top_srcdir/tests/golden/tui-small.csv
w=$tmpdir/w
mkdir "$w"
cd "$w" || exit 1
fox_text >text.txt
printf '1\tgood movie\n0\tbad movie\n1\tgreat fun\n0\tawful plot\n1\tfine film\n0\tdull\n' >s.tsv
cp -r "$L" m
cp "$T" t.csv
cp "$T.json" t.csv.json
"$DRRL" train-policy --model m --data text.txt --segment 16 --episode-len 64 --episodes 2 \
    --steps 1 --threads 1 -q --out p.st || fail "setup: train-policy"
n_cases=0
TO=${DRRL_TEST_TIMEOUT:-60}

# The user's files: their checksums now; every case checks them again.
sums=$tmpdir/keep.sums
keep_all() {
    find "$w" -type f ! -name '*.tmp.*' ! -name '.drrl.tmp.*' -exec sha256sum {} + \
        2>/dev/null | sort -k2 >"$sums"
}
intact() {
    sha256sum --quiet -c "$sums" >"$tmpdir/sumerr" 2>&1 ||
        fail "case $n_cases ($what): a user file changed: $(head -3 "$tmpdir/sumerr")"
}
no_temps() {
    t=$(find "$tmpdir" \( -name '*.tmp.??????' -o -name '.drrl.tmp.*' \) 2>/dev/null | head -3)
    [ -z "$t" ] || fail "case $n_cases ($what): temporary files left: $t"
}

# bad RC WHAT CMD...: exit RC, one line "drrl: ..." naming $name (when set),
# no temporaries, user files intact.
bad() {
    want=$1 what=$2
    shift 2
    n_cases=$((n_cases + 1))
    run timeout -k 5 "$TO" "$@"
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "case $n_cases ($what): hung (killed after ${TO}s)"
    [ "$rc" -eq "$want" ] || fail "case $n_cases ($what): expected exit $want, got $rc"
    n=$(wc -l <"$tmpdir/err")
    [ "$n" -eq 1 ] || fail "case $n_cases ($what): expected one line on stderr, got $n"
    case "$err" in "drrl: "*) ;; *) fail "case $n_cases ($what): stderr lacks 'drrl: '" ;; esac
    [ -z "${name:-}" ] || case "$err" in *"$name"*) ;;
    *) fail "case $n_cases ($what): the message does not name '$name'" ;; esac
    no_temps
    intact
}

# says TEXT: the last case's message contains TEXT.
says() {
    case "$err" in *"$1"*) ;; *) fail "case $n_cases ($what): stderr lacks '$1'" ;; esac
}

# good WHAT CMD...: exit 0, no temporaries (user files are the caller's to check).
good() {
    what=$1
    shift
    n_cases=$((n_cases + 1))
    run timeout -k 5 "$TO" "$@"
    [ "$rc" -eq 0 ] || fail "case $n_cases ($what): expected exit 0, got $rc"
    no_temps
}

lm="--train text.txt --valid none --layers 1 --d-model 16 --heads 2 --head-dim 8 --d-ff 32 --ctx 32 --batch 4 --threads 1 -q"
pol="--data text.txt --segment 16 --episode-len 64 --episodes 2 --steps 1 --threads 1 -q"
run_s="run --model m --text text.txt --seq-len 32 --segment 8"
keep_all

# ---- outputs onto the command's own inputs: refused with or without --force
name=text.txt
bad 2 "summary JSON onto the text" "$DRRL" $run_s --summary-json text.txt
says "is an input"
bad 2 "summary JSON onto the text, --force" "$DRRL" $run_s --summary-json text.txt --force
bad 2 "trace onto the text, --force" "$DRRL" $run_s --trace-out text.txt --force
bad 2 "eval CSV onto the text, --force" "$DRRL" eval --model m --data text.txt --seq-len 16 \
    --windows 1 --methods full --csv text.txt --force
bad 2 "explore trace onto the text, --force" "$DRRL" explore --model m --text text.txt \
    --seq-len 16 --trace-out text.txt --force --dump-screen -
# refused before the work, not at its end: an endless run would time out
bad 2 "train-policy onto its text, --force" "$DRRL" train-policy --model m $pol --out text.txt \
    --force --steps 1000000 --ckpt-every 0
TO=10
bad 2 "bench attention CSV onto its text, --force" "$DRRL" bench attention --model m \
    --text text.txt --max-len 65536 --csv text.txt --force
TO=${DRRL_TEST_TIMEOUT:-60}
bad 2 "train-lm checkpoint onto its text, --force" "$DRRL" train-lm $lm --steps 1 --out lm1 \
    --checkpoint text.txt --force
[ ! -e lm1 ] || fail "train-lm left its --out directory behind"
name=s.tsv
bad 2 "eval-sentiment CSV onto its data, --force" "$DRRL" eval-sentiment --model m --data s.tsv \
    --folds 2 --methods full --csv s.tsv --force
name=t.csv
bad 2 "screen dump onto the trace" "$DRRL" replay t.csv --dump-screen t.csv
bad 2 "screen dump onto the trace, --force" "$DRRL" replay t.csv --dump-screen t.csv --force
bad 2 "diff screen onto a trace" "$DRRL" diff --tui t.csv "$T" --dump-screen t.csv
name=t.csv.json
bad 2 "screen dump onto the sidecar, --force" "$DRRL" replay t.csv --dump-screen t.csv.json \
    --force
name=m/model.safetensors
bad 2 "dump onto the model, --force" "$DRRL" dump --model m --ids 1,2 \
    --out m/model.safetensors --force
bad 2 "logits dump onto the model, --force" "$DRRL" train-lm --eval-only --model m \
    --data text.txt --ctx 16 --dump-logits m/model.safetensors --force
bad 2 "train-policy onto the model, --force" "$DRRL" train-policy --model m $pol \
    --out m/model.safetensors --force
bad 2 "convert onto its own directory, --force" "$DRRL" convert --dtype f32 m m --force
bad 2 "eval CSV onto the model, --force" "$DRRL" eval --model m --data text.txt --seq-len 16 \
    --methods full,fixed:2 --csv m/model.safetensors --force
name=m/config.json
bad 2 "summary JSON onto config.json, --force" "$DRRL" $run_s --summary-json m/config.json \
    --force
name=p.st
bad 2 "summary JSON onto the policy, --force" "$DRRL" $run_s --method drrl:p.st \
    --summary-json p.st --force
bad 2 "trace onto the policy, --force" "$DRRL" $run_s --method drrl:p.st --trace-out p.st --force
bad 2 "eval CSV onto a policy, --force" "$DRRL" eval --model m --data text.txt --seq-len 16 \
    --windows 1 --methods full,drrl:p.st --csv p.st --force
ln -s text.txt link-to-text
ln text.txt hardlink-to-text
keep_all
name=link-to-text
bad 2 "output through a symlink onto the text, --force" "$DRRL" $run_s \
    --summary-json link-to-text --force
name=hardlink-to-text
bad 2 "output onto a hard link of the text, --force" "$DRRL" $run_s \
    --summary-json hardlink-to-text --force

# ---- existing outputs without --force: refused, untouched
echo keep >old.out
printf 'keep\n' >old.csv.json
mkdir old-model && cp m/config.json m/model.safetensors old-model/
keep_all
name=old.out
bad 2 "summary JSON exists" "$DRRL" $run_s --summary-json old.out
says "already exists"
bad 2 "trace CSV exists" "$DRRL" $run_s --trace-out old.out
bad 2 "eval CSV exists" "$DRRL" eval --model m --data text.txt --seq-len 16 --windows 1 \
    --methods full --csv old.out
bad 2 "eval-sentiment CSV exists" "$DRRL" eval-sentiment --model m --data s.tsv --folds 2 \
    --methods full --csv old.out
bad 2 "replay screen dump exists" "$DRRL" replay t.csv --dump-screen old.out
bad 2 "explore screen dump exists" "$DRRL" explore --model m --text text.txt --seq-len 16 \
    --dump-screen old.out
bad 2 "diff screen dump exists" "$DRRL" diff --tui t.csv "$T" --dump-screen old.out
bad 2 "tour screen dump exists" "$DRRL" tour --dump-screen old.out
bad 2 "dump exists" "$DRRL" dump --model m --ids 1,2 --out old.out
bad 2 "logits dump exists" "$DRRL" train-lm --eval-only --model m --data text.txt --ctx 16 \
    --dump-logits old.out
bad 2 "bench trace --write exists" "$DRRL" bench trace --write old.out --rows 10
bad 2 "bench attention --csv exists" "$DRRL" bench attention --model m --text text.txt \
    --csv old.out
bad 2 "train-policy --out exists" "$DRRL" train-policy --model m $pol --out old.out
name=old.csv.json
bad 2 "trace sidecar exists (CSV does not)" "$DRRL" $run_s --trace-out old.csv
[ ! -e old.csv ] || fail "the trace CSV was published without its sidecar"
name=old-model/
bad 2 "train-lm --out: a model directory exists" "$DRRL" train-lm $lm --steps 1 --out old-model \
    --checkpoint lm.ckpt
[ ! -e lm.ckpt ] || fail "train-lm wrote a checkpoint for a refused --out"
bad 2 "convert: the output model exists" "$DRRL" convert --dtype f32 m old-model

# ---- FIFOs as inputs: never waited on
mkfifo fifo
cp -r "$L" mf && rm mf/config.json && mkfifo mf/config.json
cp -r "$L" ms && rm ms/model.safetensors && mkfifo ms/model.safetensors
cp "$T" tf.csv && mkfifo tf.csv.json
mkfifo ff.csv && cp "$T.json" ff.csv.json
keep_all
name=ff.csv
bad 2 "FIFO as a trace" "$DRRL" replay ff.csv --dump-screen -
says "FIFO"
name=fifo
bad 2 "FIFO as a policy" "$DRRL" run --model m --prompt abc --method drrl:fifo
bad 2 "FIFO as a text without a writer (empty)" "$DRRL" run --model m --text fifo
name=ff.csv
bad 2 "FIFO as a diff trace" "$DRRL" diff t.csv ff.csv
name=fifo
name=mf/config.json
bad 2 "FIFO as config.json" "$DRRL" info mf
name=ms/model.safetensors
bad 2 "FIFO as the model file" "$DRRL" run --model ms --prompt abc
name=tf.csv.json
bad 2 "FIFO as the trace sidecar" "$DRRL" replay tf.csv --dump-screen -
name=
n_cases=$((n_cases + 1))
what="FIFO as a text with an endless writer"
exec 3<>fifo # a writer is there before drrl opens the FIFO
yes >&3 2>/dev/null &
ypid=$!
run timeout -k 5 "$TO" "$DRRL" run --model m --text fifo --seq-len 16
kill $ypid
wait $ypid 2>/dev/null
exec 3>&-
[ "$rc" -eq 0 ] || fail "$what: expected exit 0, got $rc: $err"

# ---- special files and links as outputs
ln -s real.json link.json
echo old >real.json
ln -s missing.json dangling.json
keep_all
name=fifo
bad 2 "FIFO as an output, --force" "$DRRL" $run_s --summary-json fifo --force
says "FIFO"
[ -p fifo ] || fail "the FIFO was replaced"
name="$w"
bad 2 "a directory as an output, --force" "$DRRL" $run_s --summary-json "$w" --force
name=dangling.json
bad 2 "a dangling symlink as an output" "$DRRL" $run_s --summary-json dangling.json --force
[ -L dangling.json ] && [ ! -e missing.json ] || fail "the dangling link was followed"
name=link.json
bad 2 "a symlink to an existing file, no --force" "$DRRL" $run_s --summary-json link.json
good "a symlink output with --force writes through" "$DRRL" $run_s --summary-json link.json \
    --force
[ -L link.json ] || fail "the symlink was replaced by a file"
grep -q '"tokens": 32' real.json || fail "the link's target was not written"
keep_all
name=/dev/null
bad 2 "/dev/null without --force" "$DRRL" $run_s --summary-json /dev/null
good "/dev/null with --force is written through" "$DRRL" $run_s --summary-json /dev/null \
    --force
[ -c /dev/null ] || fail "/dev/null is no longer a character device"
good "/dev/null as a trace" "$DRRL" $run_s --trace-out /dev/null --force
[ -c /dev/null ] || fail "/dev/null is no longer a character device"
ls /dev/null.json >/dev/null 2>&1 && fail "a trace sidecar was written to /dev/null.json"

# ---- concurrent writers to the same output: exactly one wins
conc() {
    what=$1
    shift
    n_cases=$((n_cases + 1))
    rm -f c.out c.out.json
    ("$@" c.out >c1.o 2>c1.e; echo $? >c1.rc) &
    ("$@" c.out >c2.o 2>c2.e; echo $? >c2.rc) &
    wait
    r1=$(cat c1.rc) r2=$(cat c2.rc)
    [ $((r1 + r2)) -eq 2 ] && { [ "$r1" -eq 0 ] || [ "$r2" -eq 0 ]; } ||
        fail "$what: expected one 0 and one 2, got $r1 and $r2: $(cat c1.e c2.e)"
    loser=c1.e
    [ "$r1" -eq 0 ] && loser=c2.e
    [ "$(wc -l <$loser)" -eq 1 ] || fail "$what: the loser's message is not one line"
    grep -q "c.out.*\(already exists\|appeared while\)" $loser ||
        fail "$what: the loser does not say why: $(cat $loser)"
    no_temps
    rm -f c1.* c2.*
}
conc "two summary JSON writers" "$DRRL" $run_s --summary-json
conc "two dumps" "$DRRL" dump --model m --ids 1,2,3 --out
conc "two trace writers (CSV + sidecar)" "$DRRL" $run_s --trace-out
"$DRRL" replay c.out --dump-screen - >/dev/null || fail "the winning trace does not replay"
keep_all

# ---- config.json: huge or odd sizes, checked before any allocation
cfg() {
    rm -rf mc && cp -r "$L" mc
    sed "$1" "$L/config.json" >mc/config.json
    keep_all
}
name=config.json
cfg 's/"num_hidden_layers": 2/"num_hidden_layers": 1000000000/'
bad 2 "a billion layers" "$DRRL" run --model mc --prompt abc
cfg 's/"vocab_size": 256/"vocab_size": 1099511627776/'
bad 2 "a 2^40 vocabulary" "$DRRL" info mc
cfg 's/"hidden_size": 32/"hidden_size": 4294967296/'
bad 2 "d_model 2^32" "$DRRL" run --model mc --prompt abc
cfg 's/"intermediate_size": 88/"intermediate_size": 1e300/'
bad 2 "MLP size 1e300" "$DRRL" info mc
cfg 's/"max_position_embeddings": 256/"max_position_embeddings": 99999999999/'
bad 2 "10^11 positions" "$DRRL" run --model mc --prompt abc
cfg 's/"num_attention_heads": 4/"num_attention_heads": "4"/'
bad 2 "head count as a string" "$DRRL" info mc
cfg 's/"head_dim": 8/"head_dim": -8/'
bad 2 "negative head_dim" "$DRRL" info mc
rm -rf mc && cp -r "$L" mc && truncate -s 100M mc/config.json
keep_all
bad 2 "a 100 MB config.json" "$DRRL" info mc
says "limit"
rm -rf mc

# ---- NaN and huge finite weights: exit 1 naming the layer, never a figure from NaN
scale() { # scale DIR TENSOR VALUE: set every float of TENSOR to VALUE
    python3 - "$1/model.safetensors" "$2" "$3" <<'EOF'
import json, struct, sys
p, name, val = sys.argv[1], sys.argv[2], float(sys.argv[3])
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
t = json.loads(b[8:8 + n])[name]
s, e = t['data_offsets']
b[8 + n + s:8 + n + e] = struct.pack('<f', val) * ((e - s) // 4)
open(p, 'wb').write(b)
EOF
}
if command -v python3 >/dev/null 2>&1; then
    rm -rf mh && cp -r "$L" mh
    scale mh model.layers.1.self_attn.q_proj.weight 3e38
    keep_all
    name="layer 1"
    bad 1 "huge q weights: run" "$DRRL" run --model mh --text text.txt --seq-len 32
    says "mh"
    bad 1 "huge q weights: low-rank method" "$DRRL" run --model mh --text text.txt --seq-len 32 \
        --method energy:0.9 --segment 8
    bad 1 "huge q weights: eval" "$DRRL" eval --model mh --data text.txt --seq-len 16 \
        --windows 1 --methods full,fixed:2 --csv ev.csv
    [ ! -e ev.csv ] || fail "eval wrote a CSV computed from NaN"
    bad 1 "huge q weights: dump" "$DRRL" dump --model mh --ids 1,2,3 --out d.st
    [ ! -e d.st ] || fail "dump wrote logits computed from NaN"
    name=q_proj
    bad 2 "huge weights cannot be float16" "$DRRL" convert mh mh16
    [ ! -e mh16 ] || fail "convert left a directory behind"
    rm -rf mh
else
    echo "hostile: python3 missing, NaN weight cases skipped"
fi

# ---- traces with values outside drrl-trace(5)'s ranges
tr_edit() { # tr_edit AWK: t2.csv = t.csv with row 2 edited, sidecar copied
    awk -F, -v OFS=, "NR == 2 { $1 } { print }" t.csv >t2.csv
    cp t.csv.json t2.csv.json
    cmp -s t.csv t2.csv && fail "tr_edit '$1' changed nothing"
    keep_all
}
name=t2.csv:2
tr_edit '$8 = 999'
bad 2 "rank above head_dim" "$DRRL" replay t2.csv --dump-screen -
tr_edit '$5 = -1'
bad 2 "negative layer" "$DRRL" replay t2.csv --dump-screen -
tr_edit '$21 = "-5"'
bad 2 "negative FLOPs" "$DRRL" diff t2.csv t.csv
tr_edit '$14 = 1.5'
bad 2 "sin theta above 1" "$DRRL" replay t2.csv --dump-screen -
tr_edit '$20 = 2'
bad 2 "fidelity above 1" "$DRRL" replay t2.csv --dump-screen -
# A 1-row trace with huge layer and head indices (shape not recorded).
head -2 t.csv | awk -F, -v OFS=, 'NR == 2 { $5 = 1000000000; $6 = 2000000000 } { print }' >t1.csv
sed 's/"n_layer": 4/"n_layer": 0/; s/"n_head": 4/"n_head": 0/; s/"rows": 640/"rows": 1/; s/"n_steps": 40/"n_steps": 1/' \
    t.csv.json >t1.csv.json
keep_all
name=t1.csv:2
bad 2 "1-row trace with huge indices" "$DRRL" replay t1.csv --dump-screen -

# ---- endless and huge standard input
name=
n_cases=$((n_cases + 1))
what="endless --text - with --seq-len"
yes | timeout -k 5 20 "$DRRL" run --model m --text - --seq-len 64 >/dev/null 2>"$tmpdir/err"
rc=$?
[ "$rc" -eq 0 ] || fail "$what: expected exit 0, got $rc: $(cat "$tmpdir/err")"
n_cases=$((n_cases + 1))
what="endless --text - without --seq-len: bounded"
yes | timeout -k 5 60 "$DRRL" tokenize --model m --text - >/dev/null 2>"$tmpdir/err"
rc=$?
[ "$rc" -eq 2 ] || fail "$what: expected exit 2, got $rc: $(cat "$tmpdir/err")"
grep -q "limit" "$tmpdir/err" || fail "$what: no limit named: $(cat "$tmpdir/err")"
good "/dev/zero as a text with --seq-len: read as far as needed" "$DRRL" run --model m \
    --text /dev/zero --seq-len 8
name=/dev/zero
bad 2 "/dev/zero as a whole text: bounded" "$DRRL" tokenize --model m --text /dev/zero
says "limit"
keep_all

# ---- --help and version onto a full standard output
for a in --help version "help run" "run --help" "info $L"; do
    name="standard output" bad 1 "drrl $a >/dev/full" sh -c "exec \"\$0\" $a >/dev/full" "$DRRL"
done

# ---- interruptions: no temporaries, finished results kept
# sig_case WHAT SIG DELAY CMD...: start CMD, send SIG after DELAY seconds.
sig_case() {
    what=$1
    shift
    n_cases=$((n_cases + 1))
    run_killed "$@"
    no_temps
}
seq 0 60 | tr '\n' ' ' >ids.txt
for i in 1 2 3 4 5 6 7 8; do cat text.txt; done >long.txt
keep_all
sig_case "SIGINT during run --trace-out" INT 2 "$DRRL" run --model m --text long.txt \
    --method energy:0.9 --segment 1 --trace-out int.csv
[ "$rc" -eq 1 ] || fail "$what: expected exit 1, got $rc: $err"
grep -q "interrupted by SIGINT; int.csv holds" "$tmpdir/err" || fail "$what: $(cat "$tmpdir/err")"
"$DRRL" replay int.csv --dump-screen - >/dev/null || fail "$what: the kept trace does not replay"
sig_case "two SIGINTs during run --trace-out" INT 2 "$DRRL" run --model m --text long.txt \
    --method energy:0.9 --segment 1 --trace-out int2.csv
kill -INT $pid 2>/dev/null
[ "$rc" -ne 0 ] || fail "$what: exit 0"
sig_case "SIGTERM during run --trace-out" TERM 2 "$DRRL" run --model m --text long.txt \
    --method energy:0.9 --segment 1 --trace-out term.csv
[ "$rc" -eq 1 ] || fail "$what: expected exit 1, got $rc"
sig_case "SIGTERM during dump" TERM 1 "$DRRL" dump --model m --text long.txt --threads 1 \
    --out dump.st
[ ! -e dump.st ] || [ "$rc" -eq 0 ] || fail "$what: a partial dump was published"
sig_case "SIGINT during eval keeps finished rows" INT 4 "$DRRL" eval --model m --data long.txt \
    --seq-len 64 --methods full,fixed:2,fixed:4,energy:0.9,fixed:6,energy:0.5 --csv ev.csv
if [ "$rc" -eq 0 ]; then
    [ "$(wc -l <ev.csv)" -eq 7 ] || fail "$what: finished without all rows"
else
    [ "$rc" -eq 1 ] || fail "$what: expected exit 1, got $rc"
    grep -q "interrupted" "$tmpdir/err" || fail "$what: $(cat "$tmpdir/err")"
    [ -f ev.csv ] && [ "$(head -c 7 ev.csv)" = "method," ] || fail "$what: no CSV kept"
fi
intact

# train-lm and train-policy stop on Ctrl-C through ui/signals (no handler of
# their own) with the last checkpoint valid: --resume continues from it; a
# second Ctrl-C kills at once and still leaves a valid checkpoint, no temps.
grep -l 'sigaction\|signal(SIG' "$top_srcdir/ui/cmd/cmd_train_lm.c" \
    "$top_srcdir/ui/cmd/cmd_train_policy.c" && fail "a training command handles signals itself"
waitfor() { # waitfor FILE: until FILE exists (at most 10 s)
    i=0
    while [ ! -f "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
train_int() { # train_int WHAT NSIGNALS CKPT CMD...
    what=$1 nsig=$2 ck=$3
    shift 3
    n_cases=$((n_cases + 1))
    "$@" >"$tmpdir/out" 2>"$tmpdir/err" &
    pid=$!
    waitfor "$ck"
    sleep 0.3
    kill -INT $pid
    [ "$nsig" -eq 1 ] || kill -INT $pid 2>/dev/null
    wait $pid
    rc=$?
    if [ "$nsig" -eq 1 ]; then
        [ "$rc" -eq 1 ] || fail "$what: expected exit 1, got $rc: $(cat "$tmpdir/err")"
        grep -q "interrupted" "$tmpdir/err" || fail "$what: $(cat "$tmpdir/err")"
    else
        [ "$rc" -eq 1 ] || [ "$rc" -eq 130 ] || fail "$what: expected exit 1 or 130, got $rc"
    fi
    no_temps
}
train_int "train-lm: SIGINT" 1 lmi.ckpt "$DRRL" train-lm $lm --steps 100000 --ckpt-every 1 \
    --out lmi
[ -f lmi/model.safetensors ] || fail "$what: no model exported"
good "train-lm: resume after SIGINT" "$DRRL" train-lm --resume --out lmi --train text.txt \
    --valid none --max-seconds 0.000001 -q
train_int "train-lm: two SIGINTs" 2 lmj.ckpt "$DRRL" train-lm $lm --steps 100000 \
    --ckpt-every 1 --out lmj
good "train-lm: resume after two SIGINTs" "$DRRL" train-lm --resume --out lmj --train text.txt \
    --valid none --max-seconds 0.000001 -q --force
pol_long="--data long.txt --segment 16 --episode-len 64 --episodes 2 --threads 1 -q"
train_int "train-policy: SIGINT" 1 pi.st "$DRRL" train-policy --model m $pol_long --steps 100000 \
    --ckpt-every 1 --out pi.st
done_steps=$(head -c 8000 pi.st | grep -ao '\\"steps\\":[0-9]*' | head -1 | tr -dc 0-9)
[ -n "$done_steps" ] && [ "$done_steps" -ge 1 ] || fail "$what: no steps recorded in pi.st"
good "train-policy: resume after SIGINT" "$DRRL" train-policy --model m $pol_long \
    --resume pi.st --out pi.st --steps $((done_steps + 1))
train_int "train-policy: two SIGINTs" 2 pj.st "$DRRL" train-policy --model m $pol_long \
    --steps 100000 --ckpt-every 1 --out pj.st
"$DRRL" run --model m --prompt abcdefgh --segment 4 --method drrl:pj.st >/dev/null ||
    fail "train-policy: the checkpoint after two SIGINTs does not load"

echo "hostile: $n_cases cases"
[ "$n_cases" -ge 90 ] || fail "the catalogue has only $n_cases cases"
exit 0
