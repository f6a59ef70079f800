#!/usr/bin/env python3
"""Greedy search for one rank per layer (fixed:R0/R1/...) against uniform fixed:R.

Usage: python3 bench/layer_ranks.py --drrl build/ui/drrl --data FILE [--seq-len 4096]
           [--model DIR] [--threads 2] [--stop 0.03] [--check FILE2]

Asks whether spending a model's ranks unevenly across layers buys anything
over the same rank everywhere, the question a dynamic-rank policy has to win:
- the uniform sweep: `drrl eval --methods full,fixed:R,...` for every grid
  rank R (head_dim/8 steps), whole-model savings and bits per byte against
  exact;
- the greedy path: from every layer exact, lower one layer by one grid step
  at a time, the step with the least bpb increase per point of savings
  (each step one `drrl eval` over the candidates, methods fixed:R0/R1/...),
  until bpb is --stop (relative) over exact;
- each greedy point names the uniform ranks with at least its savings and
  at most its bpb, one of them strictly (it is dominated), or the one it
  equals, or says "not dominated".
With --check FILE2 the greedy path found on --data is run again on FILE2
(text the search never saw) beside the uniform sweep there.
Everything runs with --no-exact (bits per byte do not need the exact
pass). Needs only python3 and drrl.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile


def evaluate(a, data, methods):
    """{method: (bpb, savings)} and exact's bpb, from one `drrl eval`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "e.csv")
        argv = [a.drrl, "eval", "--data", data, "--seq-len", str(a.seq_len), "--methods",
                ",".join(["full"] + methods), "--no-exact", "--csv", out, "--threads",
                str(a.threads)] + (["--model", a.model] if a.model else [])
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"layer_ranks.py: drrl eval failed: {p.stderr.strip()}")
        rows = {r["method"]: r for r in csv.DictReader(open(out))}
    full = float(rows["full"]["bpb"])
    return full, {m: (float(rows[m]["bpb"]), float(rows[m]["savings"])) for m in methods}


def spec(ranks):
    return "fixed:" + "/".join(map(str, ranks))


def model_shape(a):
    """(layers, head_dim) from the model's config.json."""
    cfg = os.path.join(a.model, "config.json")
    if not os.path.exists(cfg):
        sys.exit(f"layer_ranks.py: {cfg}: no such file (give --model DIR)")
    c = json.load(open(cfg))
    L = c.get("num_hidden_layers", c.get("n_layer"))
    H = c.get("num_attention_heads", c.get("n_head"))
    C = c.get("hidden_size", c.get("n_embd"))
    return L, c.get("head_dim") or C // H


def dominated(pt, uniform):
    """What to say of a point against the uniform ranks: the ones with at
    least its savings and at most its bpb, one of them strictly; the one it
    equals; or "not dominated"."""
    b, s = pt
    same = [m for m, (ub, us) in uniform.items() if ub == b and us == s]
    if same:
        return "same as " + same[0]
    dom = [m for m, (ub, us) in uniform.items() if ub <= b and us >= s]
    return ", ".join(dom) if dom else "not dominated"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drrl", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--check")
    ap.add_argument("--model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "data", "model"))
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stop", type=float, default=0.03)
    a = ap.parse_args()
    L, D = model_shape(a)
    step = max(D // 8, 1)
    grid = list(range(D, 0, -step))
    full, uni = evaluate(a, a.data, [f"fixed:{r}" for r in grid[1:]])
    print(f"# {a.data}, L={a.seq_len}: exact {full:.5f} bpb; {L} layers, head_dim {D}")
    print("| method | bits per byte | vs exact | whole-model savings | dominated by |")
    print("|---|---|---|---|---|")
    for m, (b, s) in uni.items():
        print(f"| {m} | {b:.5f} | {100 * (b / full - 1):+.2f}% | {100 * s:.2f}% | |")
    cur, path = [D] * L, []
    cb, cs = full, 0.0
    while True:
        cands = []
        for l in range(L):
            i = grid.index(cur[l])
            if i + 1 < len(grid):
                t = list(cur)
                t[l] = grid[i + 1]
                cands.append(t)
        if not cands:
            break
        _, res = evaluate(a, a.data, [spec(t) for t in cands])
        best = min(cands, key=lambda t: (res[spec(t)][0] - cb) / max(res[spec(t)][1] - cs, 1e-9))
        cur, (cb, cs) = best, res[spec(best)]
        path.append(spec(cur))
        print(f"| {spec(cur)} | {cb:.5f} | {100 * (cb / full - 1):+.2f}% | {100 * cs:.2f}% | "
              f"{dominated((cb, cs), uni)} |", flush=True)
        if cb / full - 1 > a.stop:
            break
    if a.check:
        full2, uni2 = evaluate(a, a.check, [f"fixed:{r}" for r in grid[1:]])
        _, res2 = evaluate(a, a.check, path)
        print(f"\n# the same points on {a.check}: exact {full2:.5f} bpb")
        print("| method | bits per byte | vs exact | whole-model savings | dominated by |")
        print("|---|---|---|---|---|")
        for m, (b, s) in list(uni2.items()) + list(res2.items()):
            tag = dominated((b, s), uni2) if m in res2 else ""
            print(f"| {m} | {b:.5f} | {100 * (b / full2 - 1):+.2f}% | {100 * s:.2f}% | {tag} |")


if __name__ == "__main__":
    main()
