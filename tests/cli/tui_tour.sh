#!/bin/sh
# drrl tour: every stop rendered headless at 120x40 equals its golden screen
# (tests/golden/tour-*.txt; the measured wall-time line is left out), the
# stops are where the records say (not hard-coded), n past the end and p
# before the start stay put, and 80x24 draws. The goldens depend on the
# shipped model and policy: DRRL_REGEN_GOLDEN=1 rewrites them (see
# tests/golden/README.md).
. "$top_srcdir/tests/cli/lib.sh"

[ -f "$top_srcdir/data/model/model.safetensors" ] || { echo "SKIP: no data/model"; exit 0; }
gold="$top_srcdir/tests/golden"
keys=""
for i in 1 2 3 4 5 6; do
    run env LC_ALL=C.UTF-8 "$DRRL" tour --keys "$keys" --size 120x40 --dump-screen "$tmpdir/s$i"
    expect_rc 0
    grep -q "Tour $i/6: " "$tmpdir/s$i" || fail "stop $i: no narration: $(cat "$tmpdir/s$i")"
    grep -v "wall time" "$tmpdir/s$i" >"$tmpdir/tour-$i.txt"
    expect_golden "$tmpdir/tour-$i.txt" "tour-$i-120x40.txt"
    keys="$keys n"
done
# the stops follow the records: stop 2 is the first token of segment 1
grep -q "token 129/" "$gold/tour-2-120x40.txt" || fail "stop 2 is not the first basis"
grep -q "Tour 6/6" "$tmpdir/s6" || fail "the last stop"
run "$DRRL" tour --keys "n n n n n n n n" --size 120x40 --dump-screen -
expect_out_contains "Tour 6/6"
expect_out_contains "the end of the tour"
run "$DRRL" tour --keys "p n p" --size 120x40 --dump-screen -
expect_out_contains "Tour 1/6"
# the brief's own line, and a small screen
run "$DRRL" tour --keys 'n n n' --dump-screen "$tmpdir/out.txt"
expect_rc 0
grep -q "Tour 4/6" "$tmpdir/out.txt" || fail "n n n at 80x24: $(cat "$tmpdir/out.txt")"
run "$DRRL" tour --text "$tmpdir/none.txt" --dump-screen -
expect_rc 2
expect_one_line_error
exit 0
