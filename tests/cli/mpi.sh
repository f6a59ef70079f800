#!/bin/sh
# drrl under mpirun (README, "Past one machine"): eval shares its windows out
# over 2 processes and writes the same CSV as one process (wall_s aside).
# Skipped (77) when drrl was built without MPI or mpirun is missing.
. "$top_srcdir/tests/cli/lib.sh"

[ "${DRRL_HAVE_MPI:-0}" = 1 ] || { echo "drrl built without MPI: skipped"; exit 77; }
command -v mpirun >/dev/null 2>&1 || { echo "no mpirun: skipped"; exit 77; }
# Two processes on however many cores there are; root (CI containers) needs
# Open MPI's consent. Open MPI's own allocations are not drrl's leaks.
np() {
    n=$1
    shift
    root=
    [ "$(id -u)" != 0 ] || root=--allow-run-as-root
    ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe $root -np "$n" "$@" </dev/null
}
# The CSV without its wall_s column (the 15th).
nowall() {
    cut -d, -f1-14,16- "$1"
}

model="$FIXTURES/llama-tiny-b"
text="$tmpdir/text.txt"
i=0
while [ $i -lt 40 ]; do
    echo "The quick brown fox jumps over the lazy dog; the cat sleeps on line $i." >>"$text"
    i=$((i + 1))
done

# eval: 5 windows (an odd number: rank 0 runs 3, rank 1 runs 2) and the
# bootstrap CIs against full; one process, then two.
ev="eval --model $model --data $text --seq-len 64 --windows 5 --threads 1"
ev="$ev --methods full,fixed:4,energy:0.9,random:2-8 --boot 500 --seed 3"
run "$DRRL" $ev --csv "$tmpdir/one.csv"
expect_rc 0
run np 2 "$DRRL" $ev --csv "$tmpdir/two.csv"
expect_rc 0
[ -s "$tmpdir/two.csv" ] || fail "np 2: no CSV written"
[ "$(wc -l <"$tmpdir/two.csv")" -eq 5 ] || fail "np 2: expected a header and 4 rows"
nowall "$tmpdir/one.csv" >"$tmpdir/one.nw"
nowall "$tmpdir/two.csv" >"$tmpdir/two.nw"
cmp -s "$tmpdir/one.nw" "$tmpdir/two.nw" || {
    diff "$tmpdir/one.nw" "$tmpdir/two.nw" >&2
    fail "eval: np 2 CSV differs from one process's (wall_s aside)"
}
grep -q '^fixed:4,64,' "$tmpdir/two.csv" || fail "np 2: no fixed:4 row"
# One table on stdout (rank 0 alone prints).
[ "$(printf '%s\n' "$out" | grep -c '^full ')" -eq 1 ] || fail "np 2: expected one table"
# -np 1 is the plain run too.
run np 1 "$DRRL" $ev --csv "$tmpdir/np1.csv"
expect_rc 0
nowall "$tmpdir/np1.csv" | cmp -s - "$tmpdir/one.nw" || fail "eval: np 1 differs from plain"
# An existing --csv is refused once, by every rank together (no hang).
run np 2 "$DRRL" $ev --csv "$tmpdir/two.csv"
expect_rc 2
expect_err_contains "exists"
exit 0
