#!/bin/sh
# bench/results.sh: regenerate the README's Results section.
#
#   bench/results.sh > results.md
#   DRRL_RESULTS_BYTES=65536 bench/results.sh > results.md    # more test text
#
# Runs `drrl eval` on the Brown test split (data/brown/test.txt) at each
# window length L in $DRRL_RESULTS_LENGTHS (1024 4096 8192) and prints
# Markdown: the machine, date, commit, model and amount of test text, then
#   Table 1  exact, fixed low rank, energy (adaptive SVD), random, DR-RL, and
#            Performer and Nystrom with their feature/landmark count M chosen
#            so that their attention-core FLOPs come closest to DR-RL's (a
#            linear fit of the FLOPs measured at M = 16 and 64 on the first
#            window);
#   Table 2  DR-RL ablations (drrl eval --ablations);
#   Pareto   bits per byte against executed FLOPs over each method's knob
#            (Table 1's methods and the sweep run in one drrl eval per L);
#   Fig. 3   `drrl bench attention --max-len $DRRL_RESULTS_BENCH_LEN` output;
#   SST-2 stand-in  `drrl eval-sentiment` output (10-fold, seed 1);
# and last, how long each part took (also on stderr as it goes).
# Every figure in the output is printed by a command the script runs.
# Knobs (environment):
#   DRRL                    the drrl binary (default: drrl on PATH)
#   DRRL_RESULTS_BYTES      amount of test text: the first N bytes of the test
#                           split (default 16384, the least that gives L = 8192
#                           two windows; must be >= every L). The tables take
#                           time roughly in proportion to it: at the default,
#                           16 of the script's ~22 minutes on 2 cores shared
#                           with other jobs (load ~7), 1 minute per KiB.
#   DRRL_RESULTS_LENGTHS    window lengths of the three tables ("1024 4096 8192")
#   DRRL_RESULTS_BUDGET     DR-RL's budget (0.5: method drrl:@0.5)
#   DRRL_RESULTS_BOOT       bootstrap resamples (2000); DRRL_RESULTS_SEED (1)
#   DRRL_RESULTS_BETA0      the beta = 0 policy (data/policy-beta0.safetensors)
#   DRRL_RESULTS_BENCH_LEN  largest L of bench attention (16384)
#   DRRL_RESULTS_BENCH_REPEAT  bench attention's timed runs per point (3)
#   DRRL_RESULTS_PARTS      all (default), or table2: the header and Table 2
#                           only (a change that only touches DR-RL's mask or
#                           policy re-runs the table it changes in minutes)
#   DRRL_RESULTS_BENCH_LONG_REPEAT  ... at L >= 8192 (1: those points are most
#                           of its time; --max-len 16384 --long-repeat 1 takes
#                           about 3 minutes on 2 shared cores)
# Wall times are one pass per method, on whatever else the machine runs;
# FLOPs come from drrl's executed-FLOP ledger.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
DRRL=${DRRL:-drrl}
bytes=${DRRL_RESULTS_BYTES:-16384}
lengths=${DRRL_RESULTS_LENGTHS:-1024 4096 8192}
budget=${DRRL_RESULTS_BUDGET:-0.5}
boot=${DRRL_RESULTS_BOOT:-2000}
seed=${DRRL_RESULTS_SEED:-1}
bench_len=${DRRL_RESULTS_BENCH_LEN:-16384}
bench_repeat=${DRRL_RESULTS_BENCH_REPEAT:-3}
bench_long=${DRRL_RESULTS_BENCH_LONG_REPEAT:-1}
beta0=${DRRL_RESULTS_BETA0:-$top/data/policy-beta0.safetensors}
parts=${DRRL_RESULTS_PARTS:-all}
model=$top/data/model
# the policy (drrl:@B), beta = 0 policy and texts all come from this tree's data/
DRRL_DATA=$top/data
export DRRL_DATA
test_txt=$top/data/brown/test.txt

die() { echo "bench/results.sh: $*" >&2; exit 2; }
posint() { case $2 in '' | *[!0-9]*) die "$1: '$2' is not a positive integer" ;; esac
           [ "$2" -gt 0 ] || die "$1: '$2' is not a positive integer"; }
posint DRRL_RESULTS_BYTES "$bytes"
case $parts in all | table2) ;; *) die "DRRL_RESULTS_PARTS: '$parts' is not all or table2" ;; esac
for L in $lengths; do
    posint "window length" "$L"
    [ "$L" -le "$bytes" ] ||
        die "DRRL_RESULTS_BYTES=$bytes is less than the window length $L: no window to evaluate"
done
posint DRRL_RESULTS_BOOT "$boot"
posint DRRL_RESULTS_BENCH_LEN "$bench_len"
posint DRRL_RESULTS_BENCH_REPEAT "$bench_repeat"
posint DRRL_RESULTS_BENCH_LONG_REPEAT "$bench_long"
command -v "$DRRL" >/dev/null 2>&1 || die "$DRRL: not found (set DRRL=path/to/drrl)"
# a relative DRRL keeps working from $top (bench attention runs there)
case $DRRL in /*) ;; */*) DRRL=$(pwd)/$DRRL ;; esac

[ -f "$test_txt" ] || xz -dk "$test_txt.xz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c "$bytes" "$test_txt" >"$tmp/test.txt"
have=$(wc -c <"$tmp/test.txt" | tr -d ' ')
[ "$have" -eq "$bytes" ] || die "data/brown/test.txt has only $have bytes, DRRL_RESULTS_BYTES=$bytes"
drrl_m="drrl:@$budget"
ev() { "$DRRL" eval --model "$model" --data "$tmp/test.txt" --no-exact --boot "$boot" \
    --seed "$seed" "$@" >/dev/null; }

# time of each part: on stderr as it ends, and in the last section
t_start=$(date +%s)
t_last=$t_start
timing=
lap() {
    t_now=$(date +%s)
    echo "bench/results.sh: $1: $((t_now - t_last)) s" >&2
    timing="$timing${timing:+; }$1 $((t_now - t_last)) s"
    t_last=$t_now
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "Generated by \`bench/results.sh\` (DRRL_RESULTS_BYTES=$bytes${DRRL_RESULTS_PARTS:+ DRRL_RESULTS_PARTS=$parts})."
echo
echo "- machine: \`$(uname -a)\`"
echo "- CPU: $cpu, $(nproc) cores online (shared with other jobs while this ran)"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
dirty=$(git -C "$top" status --porcelain -- data src ui bench 2>/dev/null | cut -c4- |
    awk '{ n++; if (n <= 6) s = s (n > 1 ? " " : "") $0 }
         END { if (n > 6) s = s " and " n - 6 " more"; printf "%s", s }')
echo "- commit: \`$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)\`${dirty:+ with uncommitted changes to \`$dirty\`}"
echo "- data: the first $have bytes of \`data/brown/test.txt\` (sha256 \`$(sha256sum "$tmp/test.txt" | cut -c1-16)...\`), cut into consecutive windows of L tokens (the column 'windows' says how many); every token after a window's first is predicted"
echo "- model: \`data/model\` (sha256 of model.safetensors \`$(sha256sum "$model/model.safetensors" | cut -c1-16)...\`); DR-RL: \`data/policy.safetensors\` at budget $budget (\`$drrl_m\`)"
echo "- wall time: one pass per method, \`--no-exact\`; CI: paired bootstrap over windows, $boot resamples, seed $seed"
echo

# CSV columns: 1 method 2 seq_len 3 tokens 4 loss 5 bpb 8 flops_executed
# 11 attn_flops_executed 12 attn_savings 9 savings 15 wall_s 19-21 bpb_diff.
# windows: tokens predicted / (L - 1), from the CSV.
table() {
    awk -F, 'NR > 1 {
        ci = ($19 == "") ? "(reference)" : sprintf("%+.4f [%+.4f, %+.4f]", $19, $20, $21)
        printf "| %s | %d | `%s` | %.4f | %s | %.3e | %.1f%% | %.1f%% | %.2f |\n",
            $2, int($3 / ($2 - 1) + 0.5), $1, $5, ci, $8, 100 * $9, 100 * $12, $15 }' "$1"
}
hdr='| L | windows | method | bits per byte | Δ bpb vs exact [95% CI] | executed FLOPs | whole-model savings | attention savings | wall s |
|---|---|---|---|---|---|---|---|---|'

# M for performer/nystrom whose attention FLOPs come closest to target
calib() { # kind L target
    # (one file per kind and L: drrl never overwrites an output)
    ev --seq-len "$2" --windows 1 --methods "$1:16,$1:64" --csv "$tmp/cal-$1-$2.csv"
    awk -F, -v t="$3" 'NR == 2 { a = $11 } NR == 3 { b = $11 }
        END { s = (b - a) / 48; m = (s > 0) ? 16 + (t - a) / s : 64
              m = int(m + 0.5); if (m < 1) m = 1; if (m > 4096) m = 4096; print m }' \
        "$tmp/cal-$1-$2.csv"
}

# the knob sweep of the Pareto table (Table 1's methods are in it too): every
# rank of the default grid {D/8, 2 D/8, ..., D - D/8} (D = head_dim from the
# model's config.json), so no fixed rank is left out of the comparison
hd=$(sed -n 's/^ *"head_dim": *\([0-9][0-9]*\).*/\1/p' "$model/config.json" | head -1)
if [ -z "$hd" ]; then
    hs=$(sed -n 's/^ *"hidden_size": *\([0-9][0-9]*\).*/\1/p' "$model/config.json" | head -1)
    nh=$(sed -n 's/^ *"num_attention_heads": *\([0-9][0-9]*\).*/\1/p' "$model/config.json" | head -1)
    hd=$((hs / nh))
fi
step=$((hd / 8))
[ "$step" -ge 1 ] || step=1
fixed_sweep=
r=$step
while [ "$r" -lt "$hd" ]; do
    fixed_sweep="$fixed_sweep${fixed_sweep:+,}fixed:$r"
    r=$((r + step))
done
sweep="$fixed_sweep,energy:0.8,energy:0.95,energy:0.99,random:4-16,drrl,drrl:@0.3,drrl:@0.5,drrl:@0.7,drrl:@0.9,performer:16,performer:64,performer:256,nystrom:4,nystrom:16"
for L in $lengths; do
    if [ "$parts" = table2 ]; then
        ev --seq-len "$L" --methods "full,$drrl_m" --ablations --beta0-policy "$beta0" \
            --csv "$tmp/t2-$L.csv"
        table "$tmp/t2-$L.csv" >>"$tmp/table2.md"
        lap "table 2 at L=$L"
        continue
    fi
    # DR-RL's attention FLOPs on the first window: the calibration target
    ev --seq-len "$L" --windows 1 --methods "$drrl_m" --csv "$tmp/d-$L.csv"
    target=$(awk -F, 'NR == 2 { printf "%.0f", $11 }' "$tmp/d-$L.csv")
    mp=$(calib performer "$L" "$target")
    mn=$(calib nystrom "$L" "$target")
    base="full,fixed:16,energy:0.9,random:4-32,$drrl_m,performer:$mp,nystrom:$mn"
    all=$base
    for m in $(echo "$sweep" | tr , ' '); do
        case ",$all," in *",$m,"*) ;; *) all="$all,$m" ;; esac
    done
    # one pass per method; Table 1 is the first 7 rows (base), Pareto all
    ev --seq-len "$L" --methods "$all" --csv "$tmp/t1-$L.csv"
    head -n 8 "$tmp/t1-$L.csv" >"$tmp/base.csv"
    table "$tmp/base.csv" >>"$tmp/table1.md"
    ev --seq-len "$L" --methods "full,$drrl_m" --ablations --beta0-policy "$beta0" \
        --csv "$tmp/t2-$L.csv"
    table "$tmp/t2-$L.csv" >>"$tmp/table2.md"
    lap "tables at L=$L"
done

# Table 2 (the DR-RL ablations), and the run time that closes the page.
table2_section() {
    echo "### Table 2: DR-RL ablations"
    echo
    echo "no-RL: the fixed rank nearest the policy's mean rank on these windows; no-mask: safety threshold +inf (no rank ever masked); beta=0: \`data/policy-beta0.safetensors\`, trained by the shipped policy's command with \`--beta 0\`."
    echo
    echo "$hdr"
    cat "$tmp/table2.md"
    echo
}
run_time_section() {
    echo "### Run time"
    echo
    echo "$(($(date +%s) - t_start)) s in all ($timing), measured by the script with \`date\`."
}

if [ "$parts" = table2 ]; then
    table2_section
    run_time_section
    exit 0
fi

echo "### Table 1: Brown test, bits per byte and executed cost"
echo
echo "Performer and Nystrom take the M whose attention FLOPs come closest to DR-RL's at the same L on the first window (Nystrom's landmarks come from completed segments, so its cost cannot grow to DR-RL's)."
echo
echo "$hdr"
cat "$tmp/table1.md"
echo

table2_section

echo "### Pareto: bits per byte against executed FLOPs"
echo
echo "Each method over its knob (Table 1's calibrated Performer and Nystrom included), from the same \`drrl eval\` run as Table 1, sorted by executed FLOPs; * marks a point no other point at that L beats on both."
for L in $lengths; do
    echo
    echo "L = $L, $(awk -F, 'NR == 2 { print int($3 / ($2 - 1) + 0.5) }' "$tmp/t1-$L.csv") windows:"
    echo
    echo "| method | executed FLOPs | bits per byte | Δ bpb [95% CI] | wall s | Pareto |"
    echo "|---|---|---|---|---|---|"
    # by FLOPs, then bits per byte: a point is starred when every point before
    # it (no more FLOPs) has higher bits per byte, i.e. none beats it on both
    awk -F, 'NR > 1 { print $8 "," $0 }' "$tmp/t1-$L.csv" | sort -t, -k1,1g -k6,6g | cut -d, -f2- |
        awk -F, '{ n++; m[n] = $1; f[n] = $8; b[n] = $5; w[n] = $15
                   ci[n] = ($19 == "") ? "(reference)" : sprintf("%+.4f [%+.4f, %+.4f]", $19, $20, $21) }
            END { best = 1e300
                  for (i = 1; i <= n; i++) { star = (b[i] < best) ? "*" : ""; if (b[i] < best) best = b[i]
                      printf "| `%s` | %.3e | %.4f | %s | %.2f | %s |\n", m[i], f[i], b[i], ci[i], w[i], star } }'
done
echo

echo "### Fig. 3, measured: \`drrl bench attention --max-len $bench_len --repeat $bench_repeat --long-repeat $bench_long\`"
echo
echo '```'
# from $top with paths relative to it: the output names the model by the
# path given, and the README holds no path outside the repository
(cd "$top" && "$DRRL" bench attention --model data/model --text data/texts/brown-test-1-scifi.txt \
    --max-len "$bench_len" --repeat "$bench_repeat" --long-repeat "$bench_long")
echo '```'
echo
lap "bench attention"

echo "### Downstream stand-in for SST-2: \`drrl eval-sentiment\`"
echo
echo "The 1,000 IMDb sentences of UCI Sentiment Labelled Sentences (\`data/sentiment/imdb.tsv\`); features are the frozen model's mean-pooled last hidden states; DR-RL is \`drrl\` at the policy's default budget (the command's output says the segment length)."
echo
echo '```'
"$DRRL" eval-sentiment --model "$model" --data "$top/data/sentiment/imdb.tsv" --methods full,drrl \
    2>"$tmp/sent.err" || { cat "$tmp/sent.err" >&2; die "drrl eval-sentiment failed"; }
echo '```'
echo
lap "eval-sentiment"

run_time_section
