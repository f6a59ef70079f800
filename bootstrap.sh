#!/bin/sh
# bootstrap.sh: install what is missing (Debian 12, as root), configure once,
# build. Idempotent: a second run only rebuilds what changed.
set -e
cd "$(dirname "$0")"
pkgs="build-essential autoconf automake pkg-config libncurses-dev libopenblas-dev
      liblapacke-dev libcsv-dev libcriterion-dev libjansson-dev tmux"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure
make -j"$(nproc)"
