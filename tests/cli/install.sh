#!/bin/sh
# `make install` leaves drrl working: installed into a scratch DESTDIR, the
# binary runs, `man drrl` and `man drrl-trace` find the pages (MANPATH, and
# man -l on the files), and the installed data directory alone (DRRL_DATA)
# holds what plain drrl and drrl tour use: the model, the texts and the
# shipped policy (plain drrl runs the drrl method, not a fallback).
. "$top_srcdir/tests/cli/lib.sh"

builddir=${DRRL%/ui/drrl}
[ -f "$builddir/Makefile" ] || { echo "SKIP: no build tree at $builddir"; exit 77; }
dest=$tmpdir/dest
# (MAKEFLAGS from make check's own make would leak in: a fresh make)
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$builddir" install DESTDIR="$dest" \
    >"$tmpdir/install.log" 2>&1 || {
    tail -5 "$tmpdir/install.log" >&2
    fail "make install DESTDIR=$dest failed"
}
bin=$(find "$dest" -path '*/bin/drrl' -type f | head -1)
[ -n "$bin" ] && [ -x "$bin" ] || fail "no bin/drrl under $dest"
prefix=${bin%/bin/drrl}
data=$(find "$dest" -path '*/share/drrl/model/config.json' | head -1)
data=${data%/model/config.json}
[ -n "$data" ] || fail "no share/drrl/model under $dest"
for f in model/model.safetensors policy.safetensors policy-beta0.safetensors README.md \
    texts/brown-test-1-scifi.txt texts/DEFAULT brown/test.txt.xz sentiment/imdb.tsv; do
    [ -f "$data/$f" ] || fail "make install did not install DATA/$f"
done

run "$bin" --version
expect_rc 0
case "$out" in "drrl "[0-9]*) ;; *) fail "installed drrl --version: '$out'" ;; esac

# the installed data alone (not the source tree's data/)
run env DRRL_DATA="$data" "$bin" explore --keys ': 10 Enter' --dump-screen -
expect_rc 0
tail -1 "$tmpdir/out" | grep -q "| model | drrl | token 10/" ||
    fail "installed plain drrl: $(tail -1 "$tmpdir/out")"
run env DRRL_DATA="$data" "$bin" tour --keys 'n' --dump-screen -
expect_rc 0
tail -1 "$tmpdir/out" | grep -q "| drrl |" || fail "installed drrl tour: $(tail -1 "$tmpdir/out")"

command -v man >/dev/null 2>&1 || { echo "SKIP: man not installed (man part)"; exit 0; }
for page in "1 drrl" "5 drrl-trace"; do
    set -- $page
    f="$prefix/share/man/man$1/$2.$1"
    [ -f "$f" ] || fail "no $f"
    run env MANWIDTH=80 man -l "$f"
    expect_rc 0
    expect_out_contains "$(echo "$2" | tr a-z A-Z)($1)"
    # as `man drrl` finds it once the prefix's man directory is searched
    run env MANPATH="$prefix/share/man" MANWIDTH=80 man "$1" "$2"
    expect_rc 0
    expect_out_contains "$(echo "$2" | tr a-z A-Z)($1)"
    [ "$(env MANPATH="$prefix/share/man" man -w "$1" "$2")" = "$f" ] ||
        fail "man -w $1 $2 does not find the installed page"
done
exit 0
