#!/bin/sh
# The documentation works from a fresh clone: every command of drrl(1)'s
# EXAMPLES, of drrl-trace(5)'s examples and of the README runs (from a
# scratch copy of the data directory, `drrl` on the PATH as after
# `make install`; interactive replay/explore/tour lines run headless with
# --dump-screen; long ones with fewer steps or shorter texts, listed below),
# and no README, man page, doc, source, test or build file cites a path
# outside the repository.
. "$top_srcdir/tests/cli/lib.sh"

# no path outside the repository (documentation, sources, tests, build files)
hits=$(cd "$top_srcdir" && grep -rnE '/work/|\.\./shared|shared/design' README.md man doc src ui \
    bench tests/*.c tests/*.h tests/cli tests/fuzz/*.c tests/data/*.sh tests/data/*.mjs \
    tests/data/*/README.md tests/fixtures/README.md tests/fixtures/*.py data/README.md \
    data/*.py data/*.sh mk Makefile.am configure.ac bootstrap.sh autogen.sh \
    --exclude=docs.sh 2>/dev/null)
[ -z "$hits" ] || fail "paths outside the repository: $hits"

[ -f "$top_srcdir/data/model/model.safetensors" ] || { echo "SKIP: no data/model"; exit 0; }
command -v xz >/dev/null 2>&1 || { echo "SKIP: no xz"; exit 0; }
# a scratch tree: data/ as shipped (brown/ copied, so xz -dk writes here)
w="$tmpdir/w"
mkdir -p "$w/data/brown" "$w/bin"
# (the README's examples also use the test fixtures and bench/)
ln -s "$top_srcdir/tests" "$w/tests"
ln -s "$top_srcdir/bench" "$w/bench"
for f in "$top_srcdir"/data/*; do
    [ "$(basename "$f")" = brown ] || ln -s "$f" "$w/data/$(basename "$f")"
done
cp "$top_srcdir"/data/brown/*.xz "$w/data/brown/"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$DRRL" >"$w/bin/drrl"
chmod +x "$w/bin/drrl"
cd "$w" || fail "cd $w"
PATH="$w/bin:$PATH"
export PATH DRRL_DATA="$w/data"

# run_line LINE: a documented command line, headless where it would open the TUI
run_line() {
    l=$1
    case "$l" in
    *"drrl replay "* | *"drrl explore"* | *"drrl tour"*)
        case "$l" in *--dump-screen*) ;; *) l="$l --dump-screen -" ;; esac ;;
    esac
    sh -c "$l" >"$tmpdir/out" 2>"$tmpdir/err"
    rc=$?
    [ $rc -eq 0 ] || fail "documented line failed (exit $rc): $l: $(cat "$tmpdir/err")"
}

# drrl(1) EXAMPLES
sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$top_srcdir/man/drrl.1" | sed -n '/^\.EX/,/^\.EE/p' |
    grep -v '^\.E[XE]' | sed 's/\\-/-/g; s/\\(aq/'"'"'/g' >"$tmpdir/man.txt"
[ -s "$tmpdir/man.txt" ] || fail "drrl(1) has no EXAMPLES"
while IFS= read -r line; do
    run_line "$line"
done <"$tmpdir/man.txt"
grep -q "Tour 4/6" "$tmpdir/out" || fail "the man page's tour line did not reach stop 4"

# README: the trace section's lines, then the explorer's capture command
sed -n '/^## Traces/,/^A trace is/p' "$top_srcdir/README.md" | grep '^    [$ ] ' |
    sed 's/^    \$ //; s/^      *//' | awk '/\\$/ { sub(/\\$/, ""); printf "%s", $0; next } { print }' \
    >"$tmpdir/readme.txt"
n=$(wc -l <"$tmpdir/readme.txt")
[ "$n" -ge 4 ] || fail "the README's trace example has $n lines"
while IFS= read -r line; do
    case "$line" in
    *"diff "*) sh -c "$line" >"$tmpdir/out" 2>&1 ;; # exits 1: the traces differ
    *) run_line "$line" ;;
    esac
done <"$tmpdir/readme.txt"
grep -q "^1$" "$tmpdir/out" || fail "the README's diff example: $(cat "$tmpdir/out")"
grep -q "note: A and B ran different methods" "$tmpdir/out" || fail "diff: no note"
cap=$(grep -o 'build/ui/drrl explore --keys [^`]*' "$top_srcdir/README.md" | head -1)
[ -n "$cap" ] || fail "the README lost its screen-capture command"
run_line "$(echo "$cap" | sed 's|build/ui/drrl|drrl|')"
grep -q "token 300/" "$tmpdir/out" || fail "the README's capture command: $(tail -1 "$tmpdir/out")"

# drrl-trace(5): its examples read run.csv (written above) and compare two
# traces; the Python, pandas and R ones run where those are installed.
sed -n '/^\.EX/,/^\.EE/p' "$top_srcdir/man/drrl-trace.5" | sed 's/\\e/\\/g' >"$tmpdir/t5.txt"
awk '/^\.EX/ { n++; next } /^\.EE/ { next } { print > (dir "/t5-" n ".txt") }' \
    dir="$tmpdir" "$tmpdir/t5.txt"
[ -f "$tmpdir/t5-4.txt" ] || fail "drrl-trace(5) lost an example"
if command -v python3 >/dev/null 2>&1; then
    python3 "$tmpdir/t5-1.txt" >"$tmpdir/out" 2>&1 || fail "drrl-trace(5) csv example: $(cat "$tmpdir/out")"
    [ "$(wc -l <"$tmpdir/out")" -ge 100 ] || fail "drrl-trace(5) csv example printed too little"
    if python3 -c 'import pandas' 2>/dev/null; then
        python3 "$tmpdir/t5-2.txt" >"$tmpdir/out" 2>&1 ||
            fail "drrl-trace(5) pandas example: $(cat "$tmpdir/out")"
    fi
fi
if command -v Rscript >/dev/null 2>&1; then
    Rscript "$tmpdir/t5-3.txt" >"$tmpdir/out" 2>&1 || fail "drrl-trace(5) R example: $(cat "$tmpdir/out")"
fi
run_line "drrl run --text data/brown/test.txt --seq-len 200 --method fixed:8 --trace-out base.csv"
run_line "drrl run --text data/brown/test.txt --seq-len 200 --method energy:0.9 --trace-out pinned.csv"
grep -q '^drrl diff base.csv pinned.csv; echo \$?' "$tmpdir/t5-4.txt" ||
    fail "drrl-trace(5)'s diff example changed: $(cat "$tmpdir/t5-4.txt")"
sh "$tmpdir/t5-4.txt" >"$tmpdir/out" 2>&1
[ "$(tail -1 "$tmpdir/out")" = 1 ] || fail "drrl-trace(5) diff example: $(tail -3 "$tmpdir/out")"

# README: every other command line. Each command the README shows (indented
# and ```sh code, and commands with options in backquotes) is listed in the
# table below with what this test runs for it: "=" the line as it is, a
# shortened line (the same command and options with fewer steps or a
# shorter text), or "- WHY" when it is not run here. A README command not
# in the table fails the test, so a new example must be added to it.
readme_commands() {
    awk '
    /^```/ { if (fence) { fence = sh = 0 } else { fence = 1; sh = ($0 ~ /^```sh/) }; next }
    sh { print; next }
    fence { next }
    /^    +(\$ )?(drrl |build\/ui\/drrl|xz |taskset |mpirun |DRRL_[A-Z_]*=|\.\/)/ || cont {
        l = $0; sub(/^ +/, "", l); sub(/^\$ /, "", l)
        buf = cont ? buf l : l
        if (buf ~ /\\$/) { sub(/\\$/, "", buf); cont = 1; next }
        cont = 0; sub(/ +$/, "", buf); print buf; next
    }
    { s = $0
      while (match(s, /`(build\/ui\/)?(drrl|taskset) [^`]* -[^`]*`/)) {
          print substr(s, RSTART + 1, RLENGTH - 2); s = substr(s, RSTART + RLENGTH) } }
    ' "$top_srcdir/README.md"
}
# README LINE => WHAT RUNS ("=" as is; "- why" not run)
cat >"$tmpdir/table" <<'EOF'
./bootstrap.sh && build/ui/drrl => - installs Debian packages and builds: quickstart.sh checks the Quick start, .ci/run runs its second line
./bootstrap.sh check => - the whole test suite, this test included (.ci/run runs it)
./autogen.sh && ./configure && make && make check => - the build and the test suite this test is part of
build/ui/drrl explore --keys ': 300 Enter' --size 120x40 --dump-screen - => - run above (the README's capture command)
drrl tour --keys 'n n n' --dump-screen - => =
xz -dk data/brown/test.txt.xz => - run above (the trace example)
xz -dk data/brown/test.txt.xz              # the Brown test split ships compressed => - run above (the trace example)
drrl run --text data/brown/test.txt --seq-len 512 --method energy:0.9 --trace-out run.csv --no-timing => - run above (the trace example)
drrl replay run.csv => - run above (the trace example)
drrl run --text data/brown/test.txt --seq-len 512 --method drrl --trace-out other.csv --no-timing => - run above (the trace example)
drrl diff run.csv other.csv; echo $?     # 0 identical, 1 differ, 2 trouble => - run above (the trace example)
build/ui/drrl bench tui --text data/brown/test.txt => drrl bench tui --text data/texts/brown-test-1-scifi.txt
drrl run --trace-out => - an option named in the text, not a command
taskset -c 0-1 drrl bench trace --repeat 3 => taskset -c 0-1 drrl bench trace --repeat 1 --rows 20000
drrl bench trace --segment 0 --repeat 3 => drrl bench trace --segment 0 --repeat 1 --rows 20000
xz -dkf data/brown/*.xz                      # the Brown split, see data/README.md => =
drrl train-lm --out my-model --steps 2000    # 4 layers x 256 by default => drrl train-lm --out my-model --steps 2 --batch 2 --ctx 64 --eval-bytes 2048
drrl train-lm --resume --out my-model        # after Ctrl-C or --max-seconds => drrl train-lm --resume --out my-model --steps 3
drrl train-lm --init my-model --ctx 4096 --batch 2 --out my-model-4k   # longer context => drrl train-lm --init my-model --ctx 128 --batch 2 --out my-model-4k --steps 1 --eval-bytes 2048
drrl convert my-model-4k my-model-f16        # float16 weights => =
drrl train-lm --eval-only --model data/model --data data/brown/test.txt --ctx 4096 => drrl train-lm --eval-only --model data/model --data short.txt --ctx 4096
drrl info tests/fixtures/llama-gqa-bf16      # architecture, sizes, dtype, hash, tokenizer => =
drrl dump --model tests/fixtures/gpt2-3l4h --ids 1,2,3 --out out.safetensors => =
drrl dump --method => - an option named in the text, not a command
drrl train-policy --model DIR --data FILE --out POLICY [--budget LO:HI] => drrl train-policy --model data/model --data short.txt --out pol.safetensors --budget 0.5:1.0 --steps 1 --episodes 1 --episode-len 256
drrl run --model DIR --text FILE --method drrl:POLICY@0.5 => drrl run --model data/model --text short.txt --method drrl:pol.safetensors@0.5
drrl eval --model data/model-base --data data/brown/valid.txt --seq-len 4096 --windows 2 --threads 2 --methods full,fixed:28,fixed:24,fixed:20,fixed:16,energy:0.99,energy:0.95,energy:0.9,energy:0.8,drrl:@0.5,drrl:@0.6,drrl:@0.7,drrl:@0.8,drrl:@0.9,drrl:@1.0 => drrl eval --model data/model --data data/brown/valid.txt --seq-len 256 --windows 1 --threads 2 --methods full,fixed:28,fixed:24,fixed:20,fixed:16,energy:0.99,energy:0.95,energy:0.9,energy:0.8,drrl:@0.5,drrl:@0.6,drrl:@0.7,drrl:@0.8,drrl:@0.9,drrl:@1.0
drrl tokenize --tokenizer tests/data/gpt2-bpe --prompt "Hello world"    # 15496 995 => =
drrl tokenize --model DIR --text FILE [--pieces | --lines] => drrl tokenize --model data/model --text short.txt --pieces && drrl tokenize --model data/model --text short.txt --lines
drrl tokenize --model DIR --decode 15496,995 => drrl tokenize --tokenizer tests/data/gpt2-bpe --decode 15496,995
drrl bench tokenize --tokenizer DIR --text FILE    # MB/s on one core => drrl bench tokenize --tokenizer tests/data/gpt2-bpe --text short.txt
drrl bench tokenize --text => - an option named in the text, not a command
DRRL_RESULTS_BYTES=65536 bench/results.sh > results.md   # DRRL=path/to/drrl if drrl is not on PATH => - about 20 minutes even with its smallest knobs (eval-sentiment alone 9 minutes on 2 shared cores); results_args.sh checks its knobs
drrl eval --no-exact => - an option named in the text, not a command
drrl eval --ablations => - an option named in the text, not a command
drrl train-policy --model data/model --data data/brown/train.txt --out tmp/pol/policy-beta0.safetensors --force --seed 1 --threads 1 --steps 30 --episodes 2 --episode-len 4096 --budget 0.2:0.8 --kappa 0 --price 0.85 --eps-start 0.25 --eps-floor 0.25 --discount 0 --gae-lambda 0 --lr 2e-3 --ckpt-every 5 --err-weight 25 --err-power 2 --beta 0 => mkdir -p tmp/pol && drrl train-policy --model data/model --data data/brown/train.txt --out tmp/pol/policy-beta0.safetensors --force --seed 1 --threads 1 --steps 1 --episodes 1 --episode-len 256 --budget 0.2:0.8 --kappa 0 --price 0.85 --eps-start 0.25 --eps-floor 0.25 --discount 0 --gae-lambda 0 --lr 2e-3 --ckpt-every 5 --err-weight 25 --err-power 2 --beta 0
drrl bench attention --max-len 16384 --repeat 3 --long-repeat 1 => drrl bench attention --max-len 512 --repeat 1 --long-repeat 1
mpirun --hostfile hosts -np 32 --bind-to core drrl eval --data test.txt --seq-len 1024 --methods full,fixed:8,drrl --threads 1 --csv results.csv => - several hosts and a hostfile; tests/cli/mpi.sh runs drrl eval under mpirun
mpirun --hostfile hosts -np 32 --bind-to core drrl train-policy --model data/model --data data/brown/train.txt --episodes 32 --episode-len 2048 --threads 1 --out policy.safetensors => - several hosts and a hostfile; tests/cli/mpi.sh runs drrl train-policy under mpirun
drrl run --method full --no-exact => - the command the speed table's rows measured (bench/speed_table.py runs it), not an example
drrl run --seq-len 1024 => - the command a measurement was made with (an instrumented build), not an example
drrl train-policy --data train.txt --steps 2 --episodes 4 --episode-len 1024 --seed 1 --threads 1 -q => - the command a table measured (about 35 s here); tests/cli/mpi.sh runs train-policy under mpirun
drrl eval --data valid8k.txt --seq-len 4096 --threads 1 --methods full,fixed:4,fixed:8,fixed:12,fixed:16,fixed:20,fixed:24,fixed:28,energy:0.95,energy:0.99 => - the command a table measured (2,556 s here); the eval example above runs the same options shortened
drrl eval --data valid8k.txt --seq-len 4096 --threads 1 --methods full,drrl,drrl:@0.3,drrl:@0.5,drrl:@0.8,energy:0.9 => - the command a table measured (1,125 s here); the eval example above runs drrl at several budgets
drrl train-policy --model data/model --data train.txt --out policy.safetensors --force --seed 1 --threads 1 --steps 30 --episodes 2 --episode-len 4096 --budget 0.2:0.8 --kappa 0 --price 0.85 --eps-start 0.25 --eps-floor 0.25 --discount 0 --gae-lambda 0 --lr 2e-3 --ckpt-every 5 --err-weight 25 --err-power 2 => drrl train-policy --model data/model --data short.txt --out policy.safetensors --force --seed 1 --threads 1 --steps 1 --episodes 1 --episode-len 256 --budget 0.2:0.8 --kappa 0 --price 0.85 --eps-start 0.25 --eps-floor 0.25 --discount 0 --gae-lambda 0 --lr 2e-3 --ckpt-every 5 --err-weight 25 --err-power 2
drrl run --method drrl --text valid8k.txt --seq-len 4096 --trace-out ranks.csv => drrl run --method drrl --text short.txt --seq-len 512 --trace-out ranks.csv
EOF
head -c 2000 "$w/data/texts/brown-test-1-scifi.txt" >short.txt
readme_commands >"$tmpdir/readme-all.txt"
[ "$(wc -l <"$tmpdir/readme-all.txt")" -ge 30 ] || fail "found only $(wc -l <"$tmpdir/readme-all.txt") README commands"
while IFS= read -r line; do
    entry=$(L=$line awk 'BEGIN { l = ENVIRON["L"]; n = length(l) + 4 }
        substr($0, 1, n) == l " => " { print substr($0, n + 1); exit }' "$tmpdir/table")
    [ -n "$entry" ] || fail "a README command docs.sh does not run (add it to its table): $line"
    case "$entry" in
    "- "*) continue ;;
    =) cmd=$line ;;
    *) cmd=$entry ;;
    esac
    case "$cmd" in taskset*)
        [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] || continue ;;
    esac
    run_line "$cmd" </dev/null
    case "$line" in *'"Hello world"'*)
        [ "$(cat "$tmpdir/out")" = "15496 995" ] || fail "tokenize example: $(cat "$tmpdir/out")" ;;
    *"--decode 15496,995"*)
        [ "$(cat "$tmpdir/out")" = "Hello world" ] || fail "decode example: $(cat "$tmpdir/out")" ;;
    esac
done <"$tmpdir/readme-all.txt"
exit 0
