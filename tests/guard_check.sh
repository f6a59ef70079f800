#!/bin/sh
# guard_check.sh: check a drrl trace (and optionally a run --summary-json
# file) against the safety guard's promises (issue 15's "Done when").
#
#   tests/guard_check.sh [-f MIN] [-g MIN] [-b] [-s] TRACE.csv [SUMMARY.json]
#
# Reads TRACE.csv and its sidecar TRACE.csv.json (the rank grid) and checks:
#   monotone   in every row, no grid rank above the smallest allowed one is
#              masked, where "allowed" leaves out the rank in force before
#              the decision (the previous segment's rank of that head, which
#              the mask of traces before the guard bound the methods never
#              forbade); -s (strict) counts it like any other rank;
#   binding    with -b, every low-rank row runs at a rank the guard allowed
#              (guard_estimate <= threshold and the rank not in masked): the
#              guard binds the method (drrl, energy, oracle);
#   within     the fraction of low-rank rows (rank < head_dim, measured_error
#              known) with measured_error <= threshold is >= the -f MIN
#              (default 0.9), and the same fraction among the low-rank rows
#              whose rank the guard allowed (guard_estimate <= threshold;
#              the others run at the rank in force, which the mask never
#              forbade) is >= the -g MIN (default 0.9);
#   violations the summary's bound_violations is 0 (when SUMMARY is given);
#   keys       the summary holds bound_vacuous, guard_exceeded and
#              bound_ratio_median.
# Prints one line of numbers; exit 0 when every check passes, 1 when one
# fails, 2 on bad input. Plain POSIX sh and awk (mawk is enough).
set -u
min=0.9
gmin=0.9
binding=0
strict=0
while :; do
    case "${1:-}" in
    -f) min=$2; shift 2 ;;
    -g) gmin=$2; shift 2 ;;
    -b) binding=1; shift ;;
    -s) strict=1; shift ;;
    *) break ;;
    esac
done
trace=${1:?usage: guard_check.sh [-f MIN] [-g MIN] [-b] [-s] TRACE.csv [SUMMARY.json]}
summary=${2:-}
[ -r "$trace" ] || { echo "guard_check: $trace: cannot read" >&2; exit 2; }
[ -r "$trace.json" ] || { echo "guard_check: $trace.json: cannot read" >&2; exit 2; }

# the rank grid from the sidecar's "rank_grid": [ ... ] (pretty-printed or not)
grid=$(tr -d ' \n\t' <"$trace.json" | sed -n 's/.*"rank_grid":\[\([0-9,]*\)\].*/\1/p')
[ -n "$grid" ] || { echo "guard_check: $trace.json: no rank_grid" >&2; exit 2; }

awk -v grid="$grid" -v min="$min" -v gmin="$gmin" -v binding="$binding" -v strict="$strict" '
function num(s) { return s + 0 }
BEGIN { ng = split(grid, g, ","); bad = 0; lr = 0; ok = 0; alr = 0; aok = 0; rows = 0; unbound = 0 }
{
    line = $0
    gsub(/"([^"]|"")*"/, "Q", line)   # quoted fields (token, method, ...) hold no number we need
    n = split(line, f, ",")
    if (NR == 1) {
        for (i = 1; i <= n; i++) col[f[i]] = i
        need = "segment layer head rank head_dim guard_estimate threshold masked measured_error"
        m = split(need, nd, " ")
        for (i = 1; i <= m; i++)
            if (!(nd[i] in col)) { print "guard_check: " FILENAME ": no column " nd[i] > "/dev/stderr"; exit 2 }
        next
    }
    rows++
    key = f[col["layer"]] "," f[col["head"]]
    seg = num(f[col["segment"]]); r = num(f[col["rank"]]); D = num(f[col["head_dim"]])
    if (!(key in curseg) || curseg[key] != seg) {
        prev[key] = (key in currank) ? currank[key] : D
        curseg[key] = seg
    }
    currank[key] = r
    # monotone: every masked rank lies below the smallest allowed rank other than prev
    delete msk
    nm = split(f[col["masked"]], ms, ";")
    for (i = 1; i <= nm; i++) msk[num(ms[i])] = 1
    lo = -1
    for (i = 1; i <= ng; i++) {
        gr = num(g[i])
        if (!(gr in msk) && (strict || gr != prev[key])) { lo = gr; break }
    }
    for (i = 1; i <= nm; i++)
        if (lo >= 0 && num(ms[i]) > lo) {
            if (bad < 5)
                print "guard_check: row " NR ": rank " ms[i] " masked above allowed rank " lo " (layer,head " key ", segment " seg ")" > "/dev/stderr"
            bad++
            break
        }
    # within: measured error of low-rank rows against the threshold
    me = f[col["measured_error"]]; th = num(f[col["threshold"]]); ge = f[col["guard_estimate"]]
    if (binding && r < D && ((r in msk) || ge == "" || ge == "NaN" || num(ge) > th)) {
        if (unbound < 5)
            print "guard_check: row " NR ": rank " r " runs where the guard flagged it (estimate " ge ", layer,head " key ", segment " seg ")" > "/dev/stderr"
        unbound++
    }
    if (r < D && me != "" && me != "NaN") {
        lr++
        if (num(me) <= th) ok++
        if (ge != "" && ge != "NaN" && num(ge) <= th) { alr++; if (num(me) <= th) aok++ }
    }
}
END {
    if (NR < 2) { print "guard_check: " FILENAME ": no rows" > "/dev/stderr"; exit 2 }
    frac = lr ? ok / lr : 1; afrac = alr ? aok / alr : 1
    printf "rows %d  mask_nonmonotone_rows %d  lowrank_rows %d  within_eps %.4f  allowed_rows %d  within_eps_allowed %.4f", rows, bad, lr, frac, alr, afrac
    if (binding) printf "  unbound_rows %d", unbound
    printf "\n"
    if (frac < min) print "guard_check: within_eps " frac " < " min > "/dev/stderr"
    if (afrac < gmin) print "guard_check: within_eps_allowed " afrac " < " gmin > "/dev/stderr"
    exit (bad > 0 || unbound > 0 || frac < min || afrac < gmin) ? 1 : 0
}' "$trace"
st=$?
[ $st -eq 2 ] && exit 2
if [ -n "$summary" ]; then
    [ -r "$summary" ] || { echo "guard_check: $summary: cannot read" >&2; exit 2; }
    s=$(tr -d ' \n\t' <"$summary")
    for k in bound_vacuous guard_exceeded bound_ratio_median; do
        v=$(printf '%s' "$s" | sed -n "s/.*\"$k\":\([^,}]*\).*/\1/p")
        [ -n "$v" ] || { echo "guard_check: $summary: no key $k" >&2; st=1; }
        printf '%s %s  ' "$k" "$v"
    done
    bv=$(printf '%s' "$s" | sed -n 's/.*"bound_violations":\([0-9]*\).*/\1/p')
    printf 'bound_violations %s\n' "$bv"
    [ "$bv" = 0 ] || { echo "guard_check: $summary: bound_violations ${bv:-missing}" >&2; st=1; }
fi
exit $st
