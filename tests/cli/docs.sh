#!/bin/sh
# The documentation works from a fresh clone: every command of drrl(1)'s
# EXAMPLES and of the README's trace and explorer examples runs (from a
# scratch copy of the data directory, `drrl` on the PATH as after
# `make install`; interactive replay/explore/tour lines run headless with
# --dump-screen), and no README, man page, doc or source file cites a path
# outside the repository.
. "$top_srcdir/tests/cli/lib.sh"

# no path outside the repository
hits=$(cd "$top_srcdir" && grep -rnE '/work/|\.\./shared|shared/design' README.md man doc src ui \
    2>/dev/null)
[ -z "$hits" ] || fail "paths outside the repository: $hits"

[ -f "$top_srcdir/data/model/model.safetensors" ] || { echo "SKIP: no data/model"; exit 0; }
command -v xz >/dev/null 2>&1 || { echo "SKIP: no xz"; exit 0; }
# a scratch tree: data/ as shipped (brown/ copied, so xz -dk writes here)
w="$tmpdir/w"
mkdir -p "$w/data/brown" "$w/bin"
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
exit 0
