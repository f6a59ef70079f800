# data/brown_split.sh: sourced by data/train_rank_aware.sh and
# data/train_policy_ra.sh (not run by itself). Defines split: decompress the
# Brown train, valid and test splits (data/brown/*.txt.xz) into the scratch
# directory $W once; needs $top (the source tree) and $W set.
# shellcheck shell=sh disable=SC2154
split() {
    mkdir -p "$W"
    for s in train valid test; do
        [ -s "$W/$s.txt" ] || xz -dc "$top/data/brown/$s.txt.xz" >"$W/$s.txt"
    done
}
