#!/bin/sh
# The engine (src/) never includes curses and libdrrl.a references no curses
# symbol; a folder includes only its own headers and those of folders below it
# (doc/ARCHITECTURE.md draws the layers), so no two folders include each other.
. "$top_srcdir/tests/cli/lib.sh"

# rank FOLDER: the folder's layer; a file may include "G/x.h" only when G is its
# own folder or of a lower layer.
rank() {
    case $1 in
    base) echo 0 ;;
    model | trace | eval) echo 1 ;;
    attn | train) echo 2 ;;
    policy) echo 3 ;;
    run) echo 4 ;;
    cli) echo 5 ;;
    tui) echo 6 ;;
    bench) echo 7 ;;
    cmd) echo 8 ;;
    *) echo 99 ;;
    esac
}
for f in "$top_srcdir"/src/*/*.[ch] "$top_srcdir"/ui/*/*.[ch]; do
    own=$(basename "$(dirname "$f")")
    [ "$(rank "$own")" -lt 99 ] || fail "$f: folder $own has no layer in tests/cli/layering.sh"
    for g in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' "$f" | sort -u); do
        [ "$g" = "$own" ] && continue
        [ "$(rank "$g")" -lt "$(rank "$own")" ] ||
            fail "$f (layer $own) includes a header of $g, which is not below it"
    done
done

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
