#!/bin/sh
# attention_evidence.sh: regenerate the README's attention-core evidence.
#
#   bench/attention_evidence.sh [BUILD_DIR] [extra attn_bench options]
#
# Runs bench/attn_bench (built by `make check` or `make bench/attn_bench` in
# BUILD_DIR, default ./build) at L = 4096 and 8192 with fixed ranks
# head_dim/4 and head_dim/2 against full attention: the attention-core
# savings from the FLOP ledger beside the ideal 1 - r/head_dim, the overhead
# between them, and wall-time ratios measured in the same run (medians of 3).
# Uses data/model when it exists, else a fixture-shaped random Llama model
# (see bench/attn_bench.c). Text: data/brown/valid.txt when present.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$here/build"}
[ $# -gt 0 ] && shift
bin="$build/bench/attn_bench"
[ -x "$bin" ] || { echo "attention_evidence.sh: build $bin first (make bench/attn_bench)" >&2; exit 2; }
model_opt=""
if [ -f "$here/data/model/config.json" ]; then
    model_opt="--model $here/data/model"
fi
text_opt=""
if [ -f "$here/data/brown/valid.txt" ]; then
    text_opt="--text $here/data/brown/valid.txt"
fi
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) CPUs, model: ${model_opt:-fixture-shaped random Llama (4 layers, 8 heads, head_dim 64)}"
# shellcheck disable=SC2086
exec "$bin" $model_opt $text_opt --lengths "${LENGTHS:-4096,8192}" --reps "${REPS:-3}" \
    --segment "${SEGMENT:-128}" "$@"
