#!/bin/sh
# run.sh: build and run one of drrl's libFuzzer harnesses (not part of make check).
#
#   tests/fuzz/run.sh list                 the harnesses
#   tests/fuzz/run.sh NAME [SECONDS]       build fuzz_NAME and fuzz it (default 600 s)
#   tests/fuzz/run.sh cover NAME           line coverage of the corpus (llvm-cov)
#   tests/fuzz/run.sh repro NAME FILE...   run the harness once on each FILE
#   tests/fuzz/run.sh seeds                rewrite tests/fuzz/seeds/ (make_seeds.py)
#
# Needs clang with libFuzzer (Debian 12: apt-get install clang libclang-rt-14-dev)
# and the libraries drrl builds with. Builds go to build-fuzz/ in the source
# root (ASan + UBSan, -O1); the growing corpus to build-fuzz/corpus/NAME, seeded
# from tests/fuzz/seeds/NAME (committed); crashes to build-fuzz/crash-NAME-*.
# The run is niced (the machine is shared; NICE=0 to change). With KEEP_GOING=1
# libFuzzer runs in fork mode and goes on past crashes, timeouts and OOMs,
# saving each (so one run covers the whole time budget).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build-fuzz
CC=${CC:-clang}
NICE=${NICE:-19}
harnesses="tokenizer_bpe tokenizer_json tokenizer_encode safetensors config model shard_index method \
trace_csv policy_file"

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

deps_cflags() {
    pkg-config --cflags jansson openblas lapacke 2>/dev/null || true
}
deps_libs() {
    echo "$(pkg-config --libs jansson openblas lapacke 2>/dev/null || echo -ljansson -lopenblas -llapacke) -lcsv -lm -lpthread"
}

# build MODE: compile src/*.c into build-fuzz/MODE/libdrrl.a (MODE is fuzz or
# cover), recompiling what changed.
build_lib() {
    mode=$1
    dir=$out/$mode
    mkdir -p "$dir/obj"
    if [ ! -f "$dir/config.h" ]; then
        printf '#define PACKAGE_VERSION "fuzz"\n#define PACKAGE_NAME "drrl"\n' >"$dir/config.h"
    fi
    case $mode in
    fuzz) flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" ;;
    cover) flags="-fprofile-instr-generate -fcoverage-mapping" ;;
    esac
    newest_h=$(ls -t "$top"/src/*/*.h | head -1)
    changed=0
    for c in "$top"/src/*/*.c; do
        o=$dir/obj/$(basename "$c" .c).o
        if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
            # shellcheck disable=SC2046
            $CC -std=c11 -g -O1 $flags -D_POSIX_C_SOURCE=200809L -DDRRL_DATADIR='"."' \
                -DDRRL_SRCDATADIR='"'"$top"'/data"' -I"$top/src" -I"$dir" $(deps_cflags) \
                -c "$c" -o "$o"
            changed=1
        fi
    done
    if [ "$changed" = 1 ] || [ ! -f "$dir/libdrrl.a" ]; then
        rm -f "$dir/libdrrl.a"
        ar rcs "$dir/libdrrl.a" "$dir"/obj/*.o
    fi
}

build_harness() {
    mode=$1 name=$2
    dir=$out/$mode
    src=$here/fuzz_$name.c
    [ -f "$src" ] || { echo "run.sh: no harness '$name' (try: run.sh list)" >&2; exit 2; }
    build_lib "$mode"
    case $mode in
    fuzz) flags="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined" ;;
    cover) flags="-fprofile-instr-generate -fcoverage-mapping" ;;
    esac
    extra=
    [ "$mode" = cover ] && extra=$here/standalone_main.c
    # shellcheck disable=SC2046
    $CC -std=c11 -g -O1 $flags -D_POSIX_C_SOURCE=200809L -DFUZZ_SRCDIR='"'"$top"'"' \
        -I"$top/src" -I"$here" $(deps_cflags) "$src" $extra "$dir/libdrrl.a" $(deps_libs) \
        -o "$dir/fuzz_$name"
}

[ $# -ge 1 ] || usage
case $1 in
seeds)
    build_lib fuzz
    gen=$out/seedgen
    mkdir -p "$gen"
    # shellcheck disable=SC2046
    $CC -std=c11 -g -O1 -fsanitize=address,undefined -D_POSIX_C_SOURCE=200809L \
        -I"$top/src" -I"$top/tests" $(deps_cflags) "$here/seed_writer.c" "$top/tests/fixture.c" \
        "$out/fuzz/libdrrl.a" $(deps_libs) \
        -o "$gen/seed_writer"
    "$gen/seed_writer" "$gen"
    python3 "$here/make_seeds.py" "$gen"
    ;;
list)
    echo "$harnesses" | tr ' ' '\n' | grep -v '^$'
    ;;
cover)
    [ $# -eq 2 ] || usage
    name=$2
    build_harness cover "$name"
    corpus=$out/corpus/$name
    mkdir -p "$corpus"
    prof=$out/cover/$name.profraw
    LLVM_PROFILE_FILE=$prof "$out/cover/fuzz_$name" "$here/seeds/$name" "$corpus" >/dev/null 2>&1 || true
    llvm-profdata merge -sparse "$prof" -o "$out/cover/$name.profdata"
    llvm-cov report "$out/cover/fuzz_$name" -instr-profile="$out/cover/$name.profdata" \
        "$top"/src/*/*.c 2>/dev/null | awk 'NR<=2 || $4 != "0" && $1 != "TOTAL" || $1 == "TOTAL"' |
        grep -v '^ *$' | sed "s|$top/||"
    ;;
repro)
    [ $# -ge 3 ] || usage
    name=$2
    shift 2
    build_harness fuzz "$name"
    "$out/fuzz/fuzz_$name" "$@"
    ;;
*)
    name=$1
    secs=${2:-600}
    build_harness fuzz "$name"
    corpus=$out/corpus/$name
    mkdir -p "$corpus"
    keep=
    [ "${KEEP_GOING:-0}" = 1 ] && keep="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
    # shellcheck disable=SC2086
    nice -n "$NICE" "$out/fuzz/fuzz_$name" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$out/crash-$name-" $keep "$corpus" "$here/seeds/$name"
    ;;
esac
