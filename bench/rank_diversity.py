#!/usr/bin/env python3
"""bench/rank_diversity.py: how much a trace's ranks vary (Python standard library).

    python3 bench/rank_diversity.py TRACE.csv [TRACE.csv ...]

For each trace written by `drrl run --trace-out` prints, over the segments
after the first (the first is always exact): the distinct ranks used and how
often each was used, the fraction of (layer, segment) decisions in which the
heads of the layer do not all run the same rank, the fraction of (layer,
head) pairs whose rank changes at least once over time, and the number of
rank changes per head. A rank is one decision per (segment, layer, head),
read from the first record of that triple.
"""
import csv
import sys
from collections import Counter, defaultdict


def stats(path):
    dec = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (int(row["segment"]), int(row["layer"]), int(row["head"]))
            if key not in dec:
                dec[key] = int(row["rank"])
    segs = sorted({k[0] for k in dec})
    later = [k for k in dec if k[0] > 0]
    hist = Counter(dec[k] for k in later)
    by_ls = defaultdict(list)
    for (s, l, h) in later:
        by_ls[(l, s)].append(dec[(s, l, h)])
    differ = sum(1 for v in by_ls.values() if len(set(v)) > 1)
    by_lh = defaultdict(list)
    for (s, l, h) in sorted(later):
        by_lh[(l, h)].append(dec[(s, l, h)])
    changes = {k: sum(1 for a, b in zip(v, v[1:]) if a != b) for k, v in by_lh.items()}
    moving = sum(1 for c in changes.values() if c > 0)
    n_ls = len(by_ls) or 1
    n_lh = len(by_lh) or 1
    print(f"{path}: {len(segs)} segments, {len(by_lh)} heads")
    print("  ranks after the first segment: " +
          ", ".join(f"{r} x{n}" for r, n in sorted(hist.items())) +
          f"  ({len(hist)} distinct)")
    print(f"  (layer, segment) decisions where the heads differ: {differ}/{len(by_ls)}"
          f" = {differ / n_ls:.1%}")
    print(f"  heads whose rank changes over time: {moving}/{len(by_lh)} = {moving / n_lh:.1%};"
          f" changes per head {sum(changes.values()) / n_lh:.2f} over {max(len(segs) - 1, 0)}"
          " segments")
    return len(hist), differ / n_ls, moving / n_lh


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    for p in sys.argv[1:]:
        stats(p)
