#!/bin/sh
# The engine (src/) never includes curses and libdrrl.a references no curses
# symbol.
. "$top_srcdir/tests/cli/lib.sh"

if grep -rnE '#[[:space:]]*include[[:space:]]*[<"](n?curses|ncursesw/|term\.h|panel\.h)' \
        "$top_srcdir/src"; then
    fail "a file under src/ includes a curses header"
fi

[ -f "$DRRL_LIB" ] || fail "engine library $DRRL_LIB not built"
lib=$(pkg-config --variable=libdir ncursesw 2>/dev/null)/libncursesw.so
[ -e "$lib" ] || lib=$(ls /usr/lib/*/libncursesw.so.6 2>/dev/null | head -n 1)
[ -e "$lib" ] || fail "cannot find libncursesw to list its symbols"
"$NM" -D --defined-only "$lib" | awk '{print $NF}' | sort -u >"$tmpdir/curses.syms"
tinfo=$(ls /usr/lib/*/libtinfo.so.6 2>/dev/null | head -n 1)
[ -n "$tinfo" ] && "$NM" -D --defined-only "$tinfo" | awk '{print $NF}' | sort -u >>"$tmpdir/curses.syms"
sort -u -o "$tmpdir/curses.syms" "$tmpdir/curses.syms"
[ "$(wc -l <"$tmpdir/curses.syms")" -gt 100 ] || fail "too few curses symbols found"
"$NM" -u "$DRRL_LIB" | awk '{print $NF}' | sort -u >"$tmpdir/undef.syms"
bad=$(comm -12 "$tmpdir/curses.syms" "$tmpdir/undef.syms" | grep -v -E '^(_|__)' || true)
[ -z "$bad" ] || fail "engine library references curses symbols: $bad"
exit 0
