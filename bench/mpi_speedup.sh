#!/bin/bash
# mpi_speedup.sh: drrl eval's wall time under `mpirun -np N` for each N of
# $NS, one rank per core (--bind-to core; with more ranks than Open MPI's
# slots, --oversubscribe --bind-to none, said in the output), --threads 1
# per rank, and whether every CSV equals N = 1's apart from wall_s. The
# README's speed-up figures come from it. Environment:
#   TEXT     the text (default: the first 49,153 bytes of Brown valid,
#            unpacked from data/brown/valid.txt.xz: 48 windows of 1,024)
#   NS       the process counts (default "1 2 4 8 16")
#   WINDOWS  windows to run (default 48; a multiple of every N balances)
#   BUNDLE   a directory made by bench/mpi_bundle.sh: its Open MPI and drrl
#            are unpacked and used (a machine without Open MPI)
#   DRRL     the drrl binary otherwise (default build/ui/drrl)
#   OUT      where the CSVs and outputs go (default a temporary directory)
# Prints the machine (lscpu), then per N: real, user and sys seconds (all
# ranks), the load average after, and at the end the CSV comparison.
set -u
t0=$(date +%s)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ -n "${BUNDLE:-}" ]; then
    m=$(mktemp -d)
    trap 'rm -rf "$m"' EXIT
    tar -C "$m" -xzf "$BUNDLE/ompi.tar.gz" || exit 1
    R=$m/ompi
    . "$BUNDLE/env.sh"
    DRRL=$R/bin/drrl
    echo "bundle unpacked in $(($(date +%s) - t0)) s"
fi
DRRL=${DRRL:-build/ui/drrl}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
if [ -z "${TEXT:-}" ]; then
    TEXT=$OUT/valid48k.txt
    xz -dc "$(dirname "$0")/../data/brown/valid.txt.xz" | head -c 49153 >"$TEXT"
fi
NS=${NS:-1 2 4 8 16}
root=
[ "$(id -u)" != 0 ] || root=--allow-run-as-root
date -u
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket)'
"$DRRL" --version
args="--data $TEXT --seq-len 1024 --methods full,fixed:8,drrl --threads 1 --windows ${WINDOWS:-48}"
echo "drrl eval $args --csv OUT/nN.csv, under mpirun $root -np N"
TIMEFORMAT='%R %U %S'
for n in $NS; do
    opts="--bind-to core"
    for try in 1 2; do
        { time mpirun $root $opts -np "$n" "$DRRL" eval $args --csv "$OUT/n$n.csv" --force \
            >"$OUT/n$n.out" 2>&1; } 2>"$OUT/n$n.time"
        rc=$?
        [ $try = 1 ] && grep -Eq 'not enough slots|binding more processes than' "$OUT/n$n.out" ||
            break
        opts="--oversubscribe --bind-to none"
    done
    echo "N=$n rc=$rc ($opts) real/user/sys: $(tail -n 1 "$OUT/n$n.time") load: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ $rc = 0 ] || tail -n 5 "$OUT/n$n.out"
done
cut -d, -f1-14,16- "$OUT/n1.csv" >"$OUT/ref.nw" 2>/dev/null
for n in $NS; do
    if cut -d, -f1-14,16- "$OUT/n$n.csv" 2>/dev/null | cmp -s - "$OUT/ref.nw"; then
        echo "N=$n: CSV same as N=1's apart from wall_s"
    else
        echo "N=$n: CSV DIFFERS from N=1's"
    fi
done
echo "total $(($(date +%s) - t0)) s; outputs in $OUT"
