#!/bin/sh
# data/train_rank_aware.sh: rank-aware fine-tuning of data/model (data/README.md,
# "Rank-aware fine-tuning"): resumable chunks of `drrl train-lm --rank-aware`,
# then the measurements and the float16 copy.
#
#   data/train_rank_aware.sh train      # (again after a stop: it resumes)
#   data/train_rank_aware.sh eval [MODEL]   # test bpb at 1,024 and 4,096, and
#                                       # the first 64 KiB at 4,096: exact, rank 16, 8
#   data/train_rank_aware.sh convert [MODEL]    # float16 copy as data/model-ra
#   data/train_rank_aware.sh tail       # the three --ra-tail 4 stages from
#                                       # model-ra that made data/model (2026-12-07)
#
# To ship a model as the default data/model (with a policy trained on its
# float16 copy): data/ship_model.sh install MODEL POLICY.
#
# The default recipe is data/model-ra's (batch 2 x 4,096, 380 steps planned,
# warmup 20, lr 3e-4 -> 3e-5, ranks 4, 8, ..., 28 plus exact with p 0.25,
# seed 5). data/model-ra was trained on the device machine (16 threads) and
# stopped by --max-seconds after step 345: to get the same point, press
# Ctrl-C while step 345 runs (RA_CKPT_EVERY=5 logs every 5th step to
# $RA_WORK/chunk.log; the checkpoint interval does not change the weights;
# Ctrl-C saves the checkpoint and the model after the step in progress).
# Another thread count or BLAS kernel gives the same numbers up to float32
# rounding, not the same bits.
# The local recipe of data/README.md (ctx 1,024; not shipped):
#   RA_CTX=1024 RA_BATCH=8 RA_STEPS=280 RA_SEED=7 RA_MAX_RANK=16 RA_EXACT=0.3 \
#     RA_CKPT_EVERY=25 data/train_rank_aware.sh train
#
# Knobs (environment):
#   DRRL         the drrl binary (default: drrl on PATH)
#   RA_WORK      scratch directory: the decompressed Brown split, the
#                checkpoint, the float32 model, the logs (default
#                $TMPDIR/drrl-ra, or /tmp/drrl-ra)
#   RA_CTX RA_BATCH RA_STEPS RA_SEED RA_MAX_RANK RA_EXACT RA_CKPT_EVERY
#                the recipe (4096, 2, 380, 5, 28, 0.25, 50); recorded in the
#                checkpoint at the first chunk (a resume keeps it, except
#                RA_STEPS, which re-plans the cosine from the current step)
#   RA_CHUNK     seconds per train-lm call (1200); each ends with a
#                checkpoint and the float32 model, the next one resumes
#   RA_THREADS   drrl and OpenBLAS threads (2). Training is deterministic for a
#                given seed and thread count: keep it the same across chunks.
#   RA_NICE      nice level of every command (19: fill idle CPU only)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
DRRL=${DRRL:-drrl}
W=${RA_WORK:-${TMPDIR:-/tmp}/drrl-ra}
STEPS=${RA_STEPS:-380}
CHUNK=${RA_CHUNK:-1200}
T=${RA_THREADS:-2}
N=${RA_NICE:-19}
export OPENBLAS_NUM_THREADS="$T"
# shellcheck source=data/brown_split.sh
. "$top/data/brown_split.sh"

train() {
    split
    while :; do
        if [ -f "$W/ra.ckpt" ]; then
            set -- --resume --steps "$STEPS"
        else
            set -- --init "$top/data/model" --force --rank-aware --ra-min-rank 4 \
                --ra-rank-step 4 --ra-max-rank "${RA_MAX_RANK:-28}" \
                --ra-exact "${RA_EXACT:-0.25}" --batch "${RA_BATCH:-2}" \
                --ctx "${RA_CTX:-4096}" --steps "$STEPS" --warmup 20 --lr 3e-4 \
                --min-lr 3e-5 --weight-decay 0.1 --clip 1.0 --seed "${RA_SEED:-5}" \
                --eval-every 100000 --ckpt-every "${RA_CKPT_EVERY:-50}"
        fi
        nice -n "$N" "$DRRL" train-lm "$@" --out "$W/ra" --checkpoint "$W/ra.ckpt" \
            --train "$W/train.txt" --valid none --threads "$T" --max-seconds "$CHUNK" \
            2>"$W/chunk.log" || true
        cat "$W/chunk.log" >>"$W/train.log"
        tail -1 "$W/chunk.log"
        grep -q 'not finished' "$W/chunk.log" || break
    done
}

evaluate() {
    split
    head -c 65536 "$W/test.txt" >"$W/test64k.txt"
    for c in 1024 4096; do
        nice -n "$N" "$DRRL" train-lm --eval-only --model "$1" --data "$W/test.txt" \
            --ctx "$c" --threads "$T"
    done
    for r in 0 16 8; do
        nice -n "$N" "$DRRL" train-lm --eval-only --model "$1" --data "$W/test64k.txt" \
            --ctx 4096 --eval-rank "$r" --threads "$T"
    done
}

# One stage of the spectral-tail recipe (data/README.md, "model/"): NAME INIT
# SEED STEPS LR MIN_LR THREADS; resumes NAME's checkpoint after a stop, skips a
# finished stage.
tail_stage() {
    n=$1 thr=$7
    if [ -f "$W/$n.done" ]; then
        return 0
    elif [ -f "$W/$n.ckpt" ]; then
        set -- --resume
    else
        set -- --init "$2" --force --rank-aware --ra-tail 4 --ra-min-rank 8 \
            --ra-rank-step 4 --ra-max-rank 24 --batch 2 --ctx 4096 --steps "$4" \
            --warmup 10 --lr "$5" --min-lr "$6" --seed "$3" --eval-every 100000 \
            --ckpt-every 10
    fi
    # the stage's own thread count, for drrl and OpenBLAS alike (the run's
    # bits depend on both), on every chunk of it
    OPENBLAS_NUM_THREADS=$thr nice -n "$N" "$DRRL" train-lm "$@" --threads "$thr" \
        --out "$W/$n" --checkpoint "$W/$n.ckpt" --train "$W/train.txt" --valid none \
        --max-seconds "$CHUNK" 2>"$W/$n.log" || true
    tail -1 "$W/$n.log"
    if grep -q 'not finished' "$W/$n.log"; then
        echo "$0: stage $n stopped; run again to resume" >&2
        exit 1
    fi
    : >"$W/$n.done"
}

# data/model (2026-12-07): from model-ra, three stages at --ra-tail 4, ranks
# 8..24; the thread counts are the ones used (stage 1 on this project's 2-core
# development machine, 2 and 3 on the device machine's Xeon at 5 threads each,
# three runs side by side; RA_THREADS does not apply); other thread counts give
# the same model up to float32 rounding, not the same bits. RA_FROM: the starting weights (default
# data/model-ra; the original run started from its float32 weights, of which
# data/model-ra is the float16 copy).
tail_recipe() {
    split
    tail_stage t1 "${RA_FROM:-$top/data/model-ra}" 7 120 2e-4 2e-5 2
    tail_stage t2 "$W/t1" 11 120 1.5e-4 1.5e-5 5
    tail_stage t3 "$W/t2" 12 100 1e-4 1e-5 5
    echo "model in $W/t3; data/ship_model.sh install $W/t3 POLICY ships it"
}

case "${1:-}" in
train) train ;;
tail) tail_recipe ;;
eval) evaluate "${2:-$W/ra}" ;;
convert) "$DRRL" convert --force "${2:-$W/ra}" "$top/data/model-ra" ;;
*)
    echo "usage: $0 train | tail | eval [MODEL] | convert [MODEL]" >&2
    exit 2
    ;;
esac
