#!/bin/sh
# trace_load.sh: how fast a 1,000,000-row trace loads for replay, and in how
# much memory (issue 8: <= 2 s, <= 300 MB resident).
#
# usage: bench/trace_load.sh [ROWS [RUNS [HEAD_DIM [SEGMENT]]]]
#   run from a build directory (it builds bench/trace_bench there), or set
#   TRACE_BENCH to the binary. Defaults: 1000000 rows, 5 runs, head_dim 16,
#   SEGMENT 0 (fresh spectra and policy outputs in every row: the worst case).
#   8 layers x 8 heads per step. CPUS="0-3" pins the loads to those CPUs
#   (taskset) to see what a smaller machine gets.
# Prints the file size, then each run (each a fresh process: peak RSS is
# getrusage's ru_maxrss) and the medians.
set -eu
rows=${1:-1000000}
runs=${2:-5}
hd=${3:-16}
seg=${4:-0}
bin=${TRACE_BENCH:-}
if [ -z "$bin" ]; then
    make bench/trace_bench >/dev/null
    bin=./bench/trace_bench
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/drrl-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
"$bin" gen "$dir/t.csv" "$rows" "$hd" 8 8 "$seg"
echo "trace: $rows rows, head_dim $hd, segment $seg, $(wc -c <"$dir/t.csv") bytes"
pin=""
[ -n "${CPUS:-}" ] && pin="taskset -c $CPUS"
i=0
while [ "$i" -lt "$runs" ]; do
    $pin "$bin" load "$dir/t.csv"
    i=$((i + 1))
done | tee "$dir/runs" 
sort -n -k2 "$dir/runs" | awk -v n="$runs" 'NR == int((n + 1) / 2) { t = $2 }
    { print $8 > "/dev/stderr" } END { printf "median load_s %s\n", t }' 2>"$dir/rss"
sort -n "$dir/rss" | awk -v n="$runs" 'NR == int((n + 1) / 2) { printf "median maxrss_mb %s\n", $1 }'
