#!/usr/bin/env python3
"""Every row of drrl's speed table, measured in one run, with its ratio.

Usage: python3 bench/speed_table.py --drrl build/ui/drrl [--models DIR]
           [--threads 1,16] [--repeat 3] [--skip tinyllama,load,torch,lowrank]
           [--lengths 4096,8192,16384] [--out FILE]

Rows (medians of --repeat runs; one warm-up for PyTorch; wall times are what
`drrl run` prints, the forward pass through the attention core a segment at
a time, logits and loss included):
  1. exact forward, default model (data/model), T = 1024 and 4096:
     `drrl run --method full --no-exact` tokens/s against PyTorch
     (bench/forward_torch.py's model of the same shape, fused attention);
     beside it, warm (a warm-up run, then the median, as PyTorch is timed):
     `drrl bench forward --session` (drrl run's path, in one process) and
     `drrl bench forward` (one full-sequence pass).
  2. GPT-2 124M shape (random weights from bench/make_models.py), T = 1024:
     `drrl run --method full --no-exact` against transformers'
     GPT2LMHeadModel (sdpa attention, float32) on the same weights; and
     `drrl bench forward --session` and `drrl bench forward` on it.
  3. TinyLlama-1.1B shape (22 layers, 32 heads over 4 kv heads, bfloat16),
     T = 2048: the same against transformers' LlamaForCausalLM in float32.
  4. GPT-2 124M run rate (whole-model FLOPs the ledger counted / wall; in
     brackets over the warm session path's time) against
     numpy float32 matmul (4096^3) on the same threads, measured here: the
     two alternate, --repeat pairs, the median of the per-pair ratios.
  5. low rank against exact: `drrl run --no-exact` with fixed:D/4 against
     full on the default model, L = --lengths, text data/brown/test.txt.xz
     (targets: <= 1.0 at 4096, 0.65 at 8192, 0.5 at 16384); full and
     fixed alternate, the median of the per-pair wall ratios (a shared
     machine's load moves between pairs less than within a batch); after
     the table, where each method's time goes (DRRL_POOL_STATS: per kind
     of pool stage, its time and how busy its threads were).
  6. loading the 1.1B BF16 checkpoint: `drrl info` wall and peak RSS
     against its float32 weights (targets 3 s and 1.2x).
  7. the explorer on the 1.1B model at context 2048 (`drrl bench tui`, its
     defaults: energy:0.95, exact alongside): the median step (one token)
     and the segment step (128 tokens computed) per token (target 150 ms).
The load average is printed before and after (a shared machine's numbers
are only as good as its load).
Each row prints the machine (CPU model, CPUs), the thread count and the
target; PyTorch rows are left out (with a note) when torch or transformers
is missing. Needs python3 with numpy; makes the models under --models (by
bench/make_models.py) when missing.
"""
import argparse
import json
import lzma
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def machine():
    name = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def blas_coretype():
    """OpenBLAS 0.3.21 runs its SSE kernels on CPUs it does not know (drrl
    then re-runs itself with OPENBLAS_CORETYPE set; see ui/cmd/main.c): give
    numpy and drrl the same kernels by setting it for every child."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return os.environ["OPENBLAS_CORETYPE"]
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    return "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else ""


def env_threads(n):
    e = dict(os.environ)
    if blas_coretype():
        e["OPENBLAS_CORETYPE"] = blas_coretype()
    e["OPENBLAS_NUM_THREADS"] = str(n)
    e["OMP_NUM_THREADS"] = str(n)
    return e


def run_child(argv, env):
    """Run argv; return (stdout, wall seconds, peak RSS bytes of the child)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"speed_table.py: {' '.join(argv)} failed:\n{out}")
    return out, wall, ru.ru_maxrss * 1024


def field(out, key):
    for line in out.splitlines():
        if line.startswith(key):
            return float(line[len(key):].split()[0])
    sys.exit(f"speed_table.py: no '{key}' in drrl's output:\n{out}")


def drrl_run(a, threads, model, inp, method, n=None):
    """Median wall time and whole-model FLOPs of `drrl run ... --no-exact`."""
    argv = [a.drrl, "run", "--threads", str(threads), "--method", method, "--no-exact"]
    argv += (["--model", model] if model else []) + inp + (["--seq-len", str(n)] if n else [])
    walls, flops = [], 0.0
    for _ in range(a.repeat):
        out, _, _ = run_child(argv, env_threads(threads))
        walls.append(field(out, "wall time"))
        flops = field(out, "flops executed")
    return statistics.median(walls), flops


def pool_kinds(out):
    """{kind: (seconds, busy %)} from the per-kind lines DRRL_POOL_STATS prints
    ("pool KIND N stages, X s on several threads, threads busy P% of it")."""
    kinds, calls = {}, None
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 14 and f[0] == "pool" and f[3] == "stages," and f[-4] == "busy":
            kinds[f[1]] = (float(f[4]), float(f[-3].rstrip("%")))
        elif len(f) >= 10 and f[0] == "pool" and f[1] == "calls" and f[4] == "calls,":
            calls = float(f[5])
    if calls is not None and kinds:
        # the calling thread's own work between the stages (busy: none)
        kinds["serial"] = (calls - sum(v[0] for v in kinds.values()), -1.0)
    return kinds


def drrl_pair(a, threads, model, inp, methods, n=None, stages=None):
    """Alternate `drrl run ... --no-exact` over methods, --repeat rounds:
    (median wall per method, median over rounds of wall[m] / wall[methods[0]]).
    With stages (a dict), the runs print DRRL_POOL_STATS (printing only: the
    pool times its stages whether or not it is set) and stages[m][kind]
    gets the medians of each kind of stage's time and busy share."""
    walls = {m: [] for m in methods}
    ratios = {m: [] for m in methods}
    kinds = {m: {} for m in methods}
    env = env_threads(threads)
    if stages is not None:
        env["DRRL_POOL_STATS"] = "1"
    for _ in range(a.repeat):
        w = {}
        for m in methods:
            argv = [a.drrl, "run", "--threads", str(threads), "--method", m, "--no-exact"]
            argv += (["--model", model] if model else []) + inp
            argv += ["--seq-len", str(n)] if n else []
            out, _, _ = run_child(argv, env)
            w[m] = field(out, "wall time")
            walls[m].append(w[m])
            for k, v in pool_kinds(out).items():
                kinds[m].setdefault(k, []).append(v)
        for m in methods:
            ratios[m].append(w[m] / w[methods[0]])
    if stages is not None:
        for m in methods:
            stages[m] = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                         for k, v in kinds[m].items()}
    return ({m: statistics.median(v) for m, v in walls.items()},
            {m: statistics.median(v) for m, v in ratios.items()})


def drrl_bench_tui(a, threads, model, T, ids):
    """(median step ms, segment step ms) of `drrl bench tui` at context T."""
    argv = [a.drrl, "bench", "tui", "--threads", str(threads), "--tokens", str(T),
            "--steps", "16", "--frames", "10", "--ids-file", ids]
    argv += ["--model", model] if model else []
    out, _, _ = run_child(argv, env_threads(threads))
    step = field(out, "step median")
    seg = field(out, "  slowest step")
    return step, seg


def drrl_bench_forward(a, threads, model, T, session=False):
    """Median seconds of `drrl bench forward` (warm: after a warm-up run, as
    PyTorch is timed); with session, of the path `drrl run` takes."""
    argv = [a.drrl, "bench", "forward", "--threads", str(threads), "--tokens", str(T),
            "--repeat", str(a.repeat)] + (["--model", model] if model else [])
    argv += ["--session"] if session else []
    out, _, _ = run_child(argv, env_threads(threads))
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == str(T):
            return float(f[1])
    sys.exit(f"speed_table.py: could not read drrl bench forward:\n{out}")


def ids_file(tmp, n, vocab, seed):
    path = os.path.join(tmp, f"ids-{vocab}-{n}.txt")
    x, ids = seed, []
    for _ in range(n):  # a plain LCG: the same ids everywhere
        x = (x * 6364136223846793005 + 1442695040888963407) % 2 ** 64
        ids.append(str((x >> 33) % vocab))
    with open(path, "w") as f:
        f.write(",".join(ids) + "\n")
    return path


CHILD_MATMUL = """
import sys, time, statistics, numpy as np
n = 4096
a = np.random.default_rng(1).random((n, n), dtype=np.float32)
b = np.random.default_rng(2).random((n, n), dtype=np.float32)
a @ b
ts = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(2.0 * n ** 3 / statistics.median(ts) / 1e9)
"""

CHILD_HF = """
import sys, time, statistics, torch
from transformers import AutoModelForCausalLM
d, T, threads, repeat, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="sdpa")
m.eval()
ids = torch.randint(0, vocab, (1, T), generator=torch.Generator().manual_seed(T))
ts = []
with torch.inference_mode():
    for r in range(repeat + 1):
        t = time.perf_counter(); m(ids).logits; dt = time.perf_counter() - t
        if r: ts.append(dt)
print(statistics.median(ts))
"""


def numpy_rate(a, threads, repeat=None):
    out, _, _ = run_child([sys.executable, "-c", CHILD_MATMUL, str(repeat or max(a.repeat, 3))],
                          env_threads(threads))
    return float(out.split()[-1])


def torch_hf(a, threads, model, T, vocab):
    """Median seconds of transformers' forward, or None (with a note) when it
    fails: a PyTorch row left out must not cost the rest of the table."""
    try:
        out, _, _ = run_child([sys.executable, "-c", CHILD_HF, model, str(T), str(threads),
                               str(a.repeat), str(vocab)], env_threads(threads))
        return float(out.split()[-1])
    except (SystemExit, ValueError, IndexError) as e:
        print(f"note: PyTorch reference for {model} failed: {str(e)[-400:]}", flush=True)
        return None


def torch_default(threads, lengths, repeat):
    try:
        sys.path.insert(0, HERE)
        import forward_torch  # noqa: E402  (bench/forward_torch.py)
        import torch
        torch.set_num_threads(threads)
        return forward_torch.bench_torch(lengths, repeat)
    except Exception as e:  # noqa: BLE001  (a missing reference row, not a failed table)
        print(f"note: PyTorch reference for the default model failed: {e}", flush=True)
        return {}


def have_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


class Table:
    def __init__(self, mach, out):
        self.mach, self.out, self.rows = mach, out, []
        self.notes = []  # printed after the table (not in --out: rows only)

    def row(self, what, drrl, ref, ratio, target):
        r = f"| {what} | {drrl} | {ref} | {ratio} | {target} | {self.mach} |"
        self.rows.append(r)
        print(r, flush=True)
        if self.out:
            with open(self.out, "a") as f:
                f.write(r + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drrl", required=True)
    ap.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "drrl-bench-models"))
    ap.add_argument("--threads", default=str(os.cpu_count()))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lengths", default="4096,8192,16384")
    ap.add_argument("--skip", default="",
                    help="any of tinyllama,load,tui,torch,lowrank,gpt2,default")
    ap.add_argument("--out", help="also append the rows to this file")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    torch_ok = "torch" not in skip and have_torch()
    mach = machine()
    ver = subprocess.run([a.drrl, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{ver}; machine: {mach}; OPENBLAS_CORETYPE={blas_coretype()}; "
          f"medians of {a.repeat}; PyTorch rows {'on' if torch_ok else 'off (no torch/transformers)'}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| what | drrl | reference | drrl / reference | target | machine |")
    print("|---|---|---|---|---|---|")
    t = Table(mach, a.out)
    need = [m for m in ("gpt2-124m", "tinyllama-1.1b")
            if not (m == "tinyllama-1.1b" and {"tinyllama", "load", "tui"} <= skip)
            and not (m == "gpt2-124m" and "gpt2" in skip)]
    if need:
        subprocess.run([sys.executable, os.path.join(HERE, "make_models.py"), a.models,
                        "--only", ",".join(need)], check=True, stdout=subprocess.DEVNULL)
    gpt2, tl = os.path.join(a.models, "gpt2-124m"), os.path.join(a.models, "tinyllama-1.1b")
    tmp = tempfile.mkdtemp(prefix="drrl-speed-")
    text = os.path.join(tmp, "test.txt")
    with lzma.open(os.path.join(ROOT, "data", "brown", "test.txt.xz")) as f, open(text, "wb") as g:
        g.write(f.read())
    for n in [int(x) for x in a.threads.split(",")]:
        if "default" not in skip:
            tref = torch_default(n, [1024, 4096], a.repeat) if torch_ok else {}
            for T in (1024, 4096):
                w, _ = drrl_run(a, n, None, ["--ids-file", ids_file(tmp, T, 256, T)], "full")
                bs = drrl_bench_forward(a, n, None, T, session=True)
                bf = drrl_bench_forward(a, n, None, T)
                ref = f"PyTorch {T / tref[T]:,.0f} tok/s" if T in tref else "-"
                t.row(f"exact forward, default model, T={T}, {n} threads: `drrl run` / warm "
                      f"(`bench forward --session` / `bench forward`)",
                      f"{T / w:,.0f} ({T / bs:,.0f} / {T / bf:,.0f}) tok/s", ref,
                      f"{tref[T] / w:.2f} ({tref[T] / bs:.2f} / {tref[T] / bf:.2f})"
                      if T in tref else "-", ">= 1.0")
        if "gpt2" not in skip:
            ids = ["--ids-file", ids_file(tmp, 1024, 50257, 7)]
            ws, rates, sgs = [], [], []
            for _ in range(a.repeat):  # drrl and numpy alternate: paired rates
                sg = numpy_rate(a, n, 3)
                out, _, _ = run_child([a.drrl, "run", "--threads", str(n), "--method", "full",
                                       "--no-exact", "--model", gpt2] + ids, env_threads(n))
                w, fl = field(out, "wall time"), field(out, "flops executed")
                ws.append(w), sgs.append(sg), rates.append(fl / w / 1e9 / sg)
            w, sg = statistics.median(ws), statistics.median(sgs)
            bs = drrl_bench_forward(a, n, gpt2, 1024, session=True)
            bf = drrl_bench_forward(a, n, gpt2, 1024)
            tw = torch_hf(a, n, gpt2, 1024, 50257) if torch_ok else None
            t.row(f"GPT-2 124M shape, T=1024, {n} threads: `drrl run --method full --no-exact` "
                  f"/ warm (`bench forward --session` / `bench forward`)",
                  f"{w:.2f} s ({bs:.2f} s / {bf:.2f} s)",
                  f"PyTorch {tw:.2f} s" if tw else "-",
                  f"{tw / w:.2f} ({tw / bs:.2f} / {tw / bf:.2f})" if tw else "-", ">= 1.0")
            t.row(f"GPT-2 124M, T=1024, {n} threads: `drrl run` rate (warm `bench forward "
                  f"--session`) against numpy float32 matmul 4096^3 (alternating, median of "
                  f"per-pair ratios)",
                  f"{fl / w / 1e9:.0f} ({fl / bs / 1e9:.0f}) GFLOP/s", f"numpy {sg:.0f} GFLOP/s",
                  f"{statistics.median(rates):.2f} ({fl / bs / 1e9 / sg:.2f})", ">= 0.60")
        if "tinyllama" not in skip and n > 1:
            ids = ["--ids-file", ids_file(tmp, 2048, 32000, 11)]
            w, _ = drrl_run(a, n, tl, ids, "full")
            tw = torch_hf(a, n, tl, 2048, 32000) if torch_ok else None
            t.row(f"TinyLlama-1.1B shape (BF16), T=2048, {n} threads: `drrl run --method full "
                  f"--no-exact`", f"{w:.2f} s", f"PyTorch {tw:.2f} s" if tw else "-",
                  f"{tw / w:.2f}" if tw else "-", ">= 1.0")
        if "lowrank" not in skip:
            D = 32  # the default model's head_dim
            for L in [int(x) for x in a.lengths.split(",")]:
                fx = f"fixed:{D // 4}"
                st = {}
                w, r = drrl_pair(a, n, None, ["--text", text], ["full", fx], L, st)
                tgt = "<= 1.0" if L <= 4096 else "<= 0.65" if L <= 8192 else "<= 0.5"
                t.row(f"fixed:{D // 4} (d/4) against full, default model, --no-exact, L={L}, "
                      f"{n} threads (alternating, median of per-pair ratios)",
                      f"{w[fx]:.2f} s", f"full {w['full']:.2f} s", f"{r[fx]:.2f}", tgt)
                for m in ("full", fx):
                    parts = ", ".join(f"{k} {v[0]:.3f} s" +
                                      (f" (busy {v[1]:.0f}%)" if v[1] >= 0 else
                                       " (the calling thread between stages)")
                                      for k, v in st[m].items())
                    t.notes.append(f"- L={L}, {n} threads, {m}: wall {w[m]:.3f} s; stages on "
                                   f"several threads: {parts or 'none'}")
    if "load" not in skip:
        walls, rss = [], []
        for _ in range(a.repeat):
            _, w, r = run_child([a.drrl, "info", tl], dict(os.environ))
            walls.append(w)
            rss.append(r)
        cfg = json.load(open(os.path.join(tl, "config.json")))
        params = 0
        with open(os.path.join(tl, "model.safetensors"), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            for k, v in json.loads(f.read(n)).items():
                if k != "__metadata__":
                    p = 1
                    for s in v["shape"]:
                        p *= s
                    params += p
        f32 = params * 4
        t.row(f"load 1.1B BF16 checkpoint ({cfg['num_hidden_layers']} layers): `drrl info` wall",
              f"{statistics.median(walls):.2f} s", "-", "-", "<= 3 s")
        t.row("same: peak RSS against its float32 weights", f"{max(rss) / 1e9:.2f} GB",
              f"float32 {f32 / 1e9:.2f} GB", f"{max(rss) / f32:.2f}", "<= 1.2")
    if "tui" not in skip:
        n = max(int(x) for x in a.threads.split(","))
        step, seg = drrl_bench_tui(a, n, tl, 2048, ids_file(tmp, 2048, 32000, 11))
        t.row(f"explorer on the 1.1B model, context 2048, {n} threads (`drrl bench tui`, "
              f"energy:0.95, exact alongside): median step (segment step / 128 tokens)",
              f"{step:.1f} ms ({seg / 128:.1f} ms/token)", "-", "-", "<= 150 ms/token")
    if t.notes:
        print("\nWhere the low-rank rows' time goes (DRRL_POOL_STATS=1, medians of the runs "
              "above; linear layers, row-wise work, attention heads, the method's own stages):")
        print("\n".join(t.notes))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
