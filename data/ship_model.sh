#!/bin/sh
# data/ship_model.sh: replace the shipped default model and policy (issue 16),
# and regenerate everything that depends on them. A maintainer script: run
# it from a git checkout with a configured build tree.
#
#   data/ship_model.sh install [--force] [--beta0 P0] MODEL POLICY
#       MODEL: a model directory (drrl train-lm's float32 --out, or its
#       float16 copy: `drrl convert` gives the same bits from either); POLICY:
#       a policy trained on that float16 copy (train-policy --model on the
#       output of `drrl convert MODEL`), whose recorded weights hash must be
#       that copy's. It
#       1. moves data/model to data/model-base (and data/policy.safetensors
#          to data/policy-base.safetensors), once: when data/model-base
#          exists already, data/model is replaced (git holds it) and the
#          base stays; mk/data.am installs both;
#       2. writes MODEL's float16 copy (`drrl convert`) as data/model;
#       3. installs POLICY as data/policy.safetensors (and P0 as
#          data/policy-beta0.safetensors, the ablation of `drrl eval
#          --ablations`; without --beta0 the old one stays and is stale);
#       When MODEL holds data/model's weights (MODEL may be data/model),
#       only the policy is replaced: steps 1 and 2 are skipped (data/model,
#       model-base and policy-base stay), 3 to 5 run.
#       4. regenerates the golden screens (`make regen-golden`: only the
#          tour-*.txt may change; any other golden that moves is an error)
#          and the README's screen (its own capture command);
#       5. runs the tests that read the shipped model, policy or texts.
#     It refuses when any of the paths it writes has uncommitted changes in
#     git (--force: go on anyway), and never overwrites MODEL or POLICY.
#   data/ship_model.sh check
#       step 5 alone.
#   data/ship_model.sh demo [--write] [TEXT...]
#       how much the shipped policy's ranks vary (bench/rank_diversity.py)
#       on each data/texts/*.txt and each TEXT, with `drrl run --method drrl`
#       at 2,048 tokens at most, best first, each with the token to open at
#       (4 tokens into the segment where most of layer 0's heads change rank:
#       the rank history shows the tokens just before the cursor): plain
#       `drrl` opens the text data/texts/DEFAULT names ("NAME [TOKEN]"; else
#       the longest) there (else at its last token).
#       --write names the best there and regenerates the README's screen
#       (a TEXT must be copied into data/texts/ first, with its source in
#       data/README.md; `drrl tour` reads every data/texts/*.txt).
#   data/ship_model.sh screen
#       the README's screen alone (step 4's second half).
#   data/ship_model.sh results
#       bench/results.sh (11 to 22 minutes on 2 shared cores) spliced into
#       the README's Results section; run it on a committed tree, so that the
#       section names the commit.
#
# Knobs (environment): DRRL_BUILD the build tree (default build/), DRRL the
# binary (default DRRL_BUILD/ui/drrl); run it under `nice` on a shared machine.
# Afterwards: review `git diff` (the golden screens, the README's screen),
# update the prose that quotes the old model (the script lists it), commit.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${DRRL_BUILD:-$top/build}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
DRRL=${DRRL:-$B/ui/drrl}
case $DRRL in /*) ;; */*) DRRL=$(pwd)/$DRRL ;; esac
export DRRL_DATA="$top/data"
say() { echo "ship_model: $*" >&2; }
undo=
die() {
    say "$*"
    [ -z "$undo" ] || say "to undo the swap: $undo"
    exit 2
}
[ -x "$DRRL" ] || die "$DRRL: not found (build first, or set DRRL / DRRL_BUILD)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ship-model.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# what `install` writes (git must have no uncommitted change there)
OWNED="data/model data/model-base data/policy.safetensors data/policy-base.safetensors
data/policy-beta0.safetensors data/texts tests/golden README.md"
# the tests that read the shipped model, policy or texts (and the goldens)
TESTS="tests/test_tui tests/cli/tui_replay.sh tests/cli/tui_diff.sh tests/cli/tui_tour.sh"
TESTS="$TESTS tests/cli/tui_figures.sh tests/cli/tui_explore.sh tests/cli/guards.sh"
TESTS="$TESTS tests/cli/install.sh tests/cli/docs.sh tests/cli/exit_codes.sh tests/cli/hostile.sh"

clean_or_force() {
    git -C "$top" rev-parse --git-dir >/dev/null 2>&1 || die "$top is not a git checkout"
    # shellcheck disable=SC2086 # OWNED is a list of paths
    d=$(cd "$top" && git status --porcelain -- $OWNED)
    [ -z "$d" ] || [ "$1" = 1 ] ||
        die "uncommitted changes where this script writes (--force to go on): $(echo "$d" | tr '\n' ' ')"
}

# the shape lines of `drrl info` (no path, dtype or hash)
shape() { "$DRRL" info "$1" | grep -v '^model \|^dtype \|^weights hash'; }
whash() { "$DRRL" info "$1" | awk '/^weights hash/ { print $3 }'; }

# POLICY on MODEL_DIR: runs, and was trained for these weights
policy_fits() {
    "$DRRL" run --model "$2" --method "drrl:$1" --prompt 'The policy fits.' --no-timing \
        >"$tmp/pf.out" 2>"$tmp/pf.err" || die "$1 does not run on $2: $(cat "$tmp/pf.err")"
    ! grep -q "another model" "$tmp/pf.err" ||
        die "$1 was not trained on ${3:-$2} (weights $(whash "$2")): $(cat "$tmp/pf.err")"
}

# The README's screen: its own capture command, run again, replaces the
# text block after <!-- tui-screen -->.
readme_screen() {
    r=$top/README.md
    cap=$(grep -o 'build/ui/drrl explore --keys [^`]*' "$r" | head -1)
    [ -n "$cap" ] || die "README.md: no capture command"
    keys=$(echo "$cap" | sed -n "s/.*--keys '\([^']*\)'.*/\1/p")
    size=$(echo "$cap" | sed -n 's/.*--size \([0-9]*x[0-9]*\).*/\1/p')
    LC_ALL=C.UTF-8 "$DRRL" explore --keys "$keys" --size "$size" --dump-screen "$tmp/screen.txt"
    awk -v f="$tmp/screen.txt" '
        /^<!-- tui-screen -->$/ { inb = 1; print; next }
        inb == 1 && /^```text$/ { print; while ((getline l < f) > 0) print l; inb = 2; next }
        inb == 2 { if ($0 == "```") { print; inb = 0 } ; next }
        { print }' "$r" >"$tmp/README.md"
    cmp -s "$r" "$tmp/README.md" && say "README.md: screen unchanged" && return 0
    cat "$tmp/README.md" >"$r"
    say "README.md: screen regenerated ($cap); its prose below it quotes the old screen"
}

run_tests() {
    say "tests: $TESTS"
    tt=$(date +%s)
    make -C "$B" -s check TESTS="$TESTS" || die "tests failed (see $B/tests/cli/*.log)"
    say "tests passed in $(($(date +%s) - tt)) s"
}

install() {
    force=0 beta0=
    while [ $# -gt 0 ]; do
        case $1 in
        --force) force=1 ;;
        --beta0) beta0=$2; shift ;;
        -*) die "install: unknown option $1" ;;
        *) break ;;
        esac
        shift
    done
    [ $# -eq 2 ] || die "usage: $0 install [--force] [--beta0 P0] MODEL POLICY"
    model=$(cd "$1" && pwd) || die "$1: not a directory"
    policy=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    if [ ! -f "$model/config.json" ] || [ ! -f "$model/model.safetensors" ]; then
        die "$model: no config.json and model.safetensors"
    fi
    [ -f "$policy" ] || die "$2: no such file"
    [ -z "$beta0" ] || [ -f "$beta0" ] || die "$beta0: no such file"
    clean_or_force "$force"
    d=$top/data
    t0=$(date +%s)
    [ "$(shape "$model")" = "$(shape "$d/model")" ] ||
        die "$model's shape differs from data/model's (drrl info): the tests and texts assume it"
    # 2 (first, into scratch: nothing moves if it fails)
    "$DRRL" convert "$model" "$tmp/model" >"$tmp/convert.txt" || die "drrl convert failed"
    same=0
    if [ "$(whash "$tmp/model")" = "$(whash "$d/model")" ]; then
        # a policy-only swap: data/model stays, and so do model-base and
        # policy-base (the replaced policy was trained for data/model: git
        # holds it)
        cmp -s "$policy" "$d/policy.safetensors" &&
            die "$model holds data/model's weights and $2 is data/policy.safetensors: nothing to replace"
        same=1
        say "$model holds data/model's weights: only the policy is replaced"
    fi
    policy_fits "$policy" "$tmp/model" "$1's float16 copy"
    [ -z "$beta0" ] || policy_fits "$beta0" "$tmp/model" "$1's float16 copy"
    # 1
    undo="git checkout -- data/model data/policy.safetensors data/policy-beta0.safetensors tests/golden README.md"
    if [ $same = 1 ]; then
        :
    elif [ -e "$d/model-base" ]; then
        say "data/model-base exists: kept; data/model is replaced"
    else
        undo="$undo; rm -rf data/model-base data/policy-base.safetensors"
        mv "$d/model" "$d/model-base"
        cp "$d/policy.safetensors" "$d/policy-base.safetensors"
        say "data/model -> data/model-base, data/policy.safetensors -> data/policy-base.safetensors"
    fi
    # 2 (not for a policy-only swap: the same weights), 3
    if [ $same = 0 ]; then
        rm -rf "$d/model"
        mkdir "$d/model"
        cp "$tmp/model/config.json" "$tmp/model/model.safetensors" "$d/model/"
    fi
    cp "$policy" "$d/policy.safetensors"
    [ -z "$beta0" ] || cp "$beta0" "$d/policy-beta0.safetensors"
    [ -n "$beta0" ] || say "data/policy-beta0.safetensors still belongs to the old model" \
        "(drrl eval --ablations warns): retrain it with --beta 0 (data/README.md) and --beta0"
    # 4
    say "regenerating the golden screens (make regen-golden)"
    make -C "$B" -s regen-golden >"$tmp/regen.log" 2>&1 || {
        tail -20 "$tmp/regen.log" >&2
        die "make regen-golden failed"
    }
    moved=$(git -C "$top" status --porcelain -- tests/golden | cut -c4- | grep -v 'tour-') || :
    [ -z "$moved" ] || die "goldens that do not depend on the model changed: $moved (git diff)"
    readme_screen
    t1=$(date +%s)
    # 5
    run_tests
    sz=$(wc -c <"$d/model/model.safetensors" | tr -d ' ')
    new="New files: git add data/model-base data/policy-base.safetensors (first swap)"
    [ $same = 0 ] || new="Only the policy was replaced: data/model, model-base and policy-base are as they were"
    cat >&2 <<EOF
ship_model: installed in $((t1 - t0)) s, tests in $(($(date +%s) - t1)) s. For data/README.md:
  $(cat "$tmp/convert.txt")
  data/model: weights hash $(whash "$d/model"), $sz bytes, sha256 $(sha256sum "$d/model/model.safetensors" | cut -c1-16)...
  data/model-base: weights hash $(whash "$d/model-base")
  data/policy.safetensors: sha256 $(sha256sum "$d/policy.safetensors" | cut -d' ' -f1)
  data/policy-beta0.safetensors: sha256 $(sha256sum "$d/policy-beta0.safetensors" | cut -d' ' -f1)
$new
Review: git diff --stat; git diff tests/golden README.md (UTF-8 and ASCII);
then the prose that quotes the old model or policy (not regenerated):
  README.md: the text under the screen, "bench tui" output, "The DR-RL policy",
    "The shipped policy and how it compares", "Measured again under the
    output-error guard", "Evidence", the paper's claims table; Results:
    data/ship_model.sh results (after committing)
  data/README.md: "model/: the default model", "policy.safetensors", model-base
  man/drrl.1 (DATA/model-base if it names the models), tests/golden/README.md
Plain drrl's text: data/ship_model.sh demo
EOF
}

demo() {
    write=0
    [ "${1:-}" = --write ] && write=1 && shift
    : >"$tmp/list"
    for f in "$top"/data/texts/*.txt "$@"; do
        [ -f "$f" ] || die "$f: no such file"
        "$DRRL" run --method drrl --text "$f" --seq-len 2048 --trace-out "$tmp/t.csv" --force \
            --no-timing >/dev/null 2>"$tmp/err" || die "drrl run on $f: $(cat "$tmp/err")"
        python3 - "$top/bench" "$tmp/t.csv" "$f" >>"$tmp/list" <<'EOF'
import contextlib, csv, io, sys
sys.path.insert(0, sys.argv[1])
import rank_diversity
with contextlib.redirect_stdout(io.StringIO()):
    distinct, differ, moving = rank_diversity.stats(sys.argv[2])
# The token to open at: the rank history shows the tokens just before the
# cursor (9 at 120x40) and ranks change at segment starts, so 4 tokens after
# the start of the segment where most of layer 0's heads change rank (ties:
# the most distinct ranks there, then the later), from segment 3 on (segment
# 0 is exact, and the guard has no evidence in segment 1, so segment 2's
# change is from exact for every method); 0 (the last token) if none.
dec, first = {}, {}
with open(sys.argv[2], newline="") as f:
    for r in csv.DictReader(f):
        s, l, h, st = int(r["segment"]), int(r["layer"]), int(r["head"]), int(r["step"])
        dec.setdefault((s, l, h), int(r["rank"]))
        first[s] = min(first.get(s, st), st)
heads = sorted({h for (s, l, h) in dec if l == 0})
best, token = (0, 0, 0), 0
for s in sorted(first):
    if s < 3 or any((s - 1, 0, h) not in dec or (s, 0, h) not in dec for h in heads):
        continue
    key = (sum(dec[(s - 1, 0, h)] != dec[(s, 0, h)] for h in heads),
           len({dec[(s, 0, h)] for h in heads}), s)
    if key[0] > 0 and key > best:
        best, token = key, first[s] + 5
# score: heads differing and heads changing, each up to 1, then distinct ranks
print(f"{differ + moving:.4f}\t{distinct}\t{differ:.3f}\t{moving:.3f}\t{token}"
      f"\t{best[0]}/{len(heads)}\t{sys.argv[3]}")
EOF
    done
    echo "score	distinct ranks	heads of a layer differ	heads change over time	token	L0 heads changing there	text"
    sort -t '	' -k1,1gr -k2,2nr "$tmp/list" | tee "$tmp/sorted"
    best=$(head -1 "$tmp/sorted" | cut -f7)
    token=$(head -1 "$tmp/sorted" | cut -f5)
    cur=$(sed -n 1p "$top/data/texts/DEFAULT" 2>/dev/null || true)
    say "best: $best at token $token (0: the last; data/texts/DEFAULT: ${cur:-none, so the longest text})"
    [ $write = 1 ] || return 0
    case $best in "$top/data/texts/"*) ;; *)
        die "$best is not in data/texts/: copy it there (and say where it comes from in data/README.md)" ;;
    esac
    if [ "$token" -gt 0 ]; then
        echo "$(basename "$best") $token" >"$top/data/texts/DEFAULT"
    else
        basename "$best" >"$top/data/texts/DEFAULT"
    fi
    say "data/texts/DEFAULT: $(cat "$top/data/texts/DEFAULT")"
    readme_screen
}

results() {
    clean_or_force 0
    say "bench/results.sh (11 to 22 minutes on 2 shared cores)"
    DRRL=$DRRL sh "$top/bench/results.sh" >"$tmp/results.md"
    r=$top/README.md
    grep -q '^Generated by .bench/results.sh.' "$r" || die "README.md: no generated Results section"
    awk -v f="$tmp/results.md" '
        /^Generated by `bench\/results.sh`/ { while ((getline l < f) > 0) print l; skip = 1; next }
        skip && /^## / { skip = 0; print ""; }
        !skip { print }' "$r" >"$tmp/README.md"
    cat "$tmp/README.md" >"$r"
    say "README.md: Results regenerated; review git diff README.md and the prose above it"
}

case "${1:-}" in
install) shift; install "$@" ;;
check) run_tests ;;
demo) shift; demo "$@" ;;
screen) readme_screen ;;
results) results ;;
*) die "usage: $0 install [--force] [--beta0 P0] MODEL POLICY | check | demo [--write] [TEXT...] | screen | results" ;;
esac
