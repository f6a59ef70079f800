#!/usr/bin/env python3
"""The computation of `drrl bench forward`, in PyTorch on the CPU.

Usage: python3 bench/forward_torch.py [--threads N] [--tokens 1024,4096]
                                      [--repeat 5] [--drrl CMD]

Builds the Llama-style model drrl benchmarks (d_model 256, 4 layers, 8 heads,
head_dim 32, d_ff 768, vocab 256, RMSNorm, RoPE, SwiGLU, tied lm_head) with
random weights, and times a full-sequence forward pass with logits at each
length: torch.inference_mode, float32, attention through
torch.nn.functional.scaled_dot_product_attention(is_causal=True) (PyTorch's
fused CPU kernel; on torch < 2.0, such as Debian 12's python3-torch 1.13, the
plain product, mask and softmax), one warm-up run and the median of --repeat
runs.

With --drrl CMD (the drrl binary, or a command line that runs it), it also
runs `CMD bench forward` with the same thread count, lengths and repeats, and
prints the ratio of tokens per second, drrl / PyTorch (> 1: drrl is faster).

Needs torch (Debian: python3-torch); nothing else.
"""
import argparse
import math
import os
import shlex
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("forward_torch.py: PyTorch is not installed (Debian: apt-get install python3-torch)")

L, H, D, C, FF, V = 4, 8, 32, 256, 768, 256
EPS, THETA = 1e-5, 10000.0


def make_weights(seed=1):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return (torch.rand(*shape, generator=g) - 0.5) * 0.1

    return {
        "emb": r(V, C),
        "ln1": [torch.ones(C) for _ in range(L)],
        "ln2": [torch.ones(C) for _ in range(L)],
        "wq": [r(H * D, C) for _ in range(L)],
        "wk": [r(H * D, C) for _ in range(L)],
        "wv": [r(H * D, C) for _ in range(L)],
        "wo": [r(C, H * D) for _ in range(L)],
        "wg": [r(FF, C) for _ in range(L)],
        "wu": [r(FF, C) for _ in range(L)],
        "wd": [r(C, FF) for _ in range(L)],
        "lnf": torch.ones(C),
    }


def rmsnorm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rope_tables(T):
    inv = 1.0 / (THETA ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([-x2, x1], dim=-1)


def attention(q, k, v):
    """Causal softmax attention: PyTorch's fused kernel when it has one
    (torch >= 2.0), else the plain product, mask and softmax."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v


def forward(w, ids, cos, sin):
    T = ids.shape[0]
    x = w["emb"][ids]
    for l in range(L):
        h = rmsnorm(x, w["ln1"][l])
        q = (h @ w["wq"][l].T).view(T, H, D).transpose(0, 1)
        k = (h @ w["wk"][l].T).view(T, H, D).transpose(0, 1)
        v = (h @ w["wv"][l].T).view(T, H, D).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = attention(q, k, v)
        x = x + o.transpose(0, 1).reshape(T, H * D) @ w["wo"][l].T
        h = rmsnorm(x, w["ln2"][l])
        x = x + (F.silu(h @ w["wg"][l].T) * (h @ w["wu"][l].T)) @ w["wd"][l].T
    return rmsnorm(x, w["lnf"]) @ w["emb"].T


def bench_torch(lengths, repeat):
    w = make_weights()
    out = {}
    with torch.inference_mode():
        for T in lengths:
            ids = torch.randint(0, V, (T,), generator=torch.Generator().manual_seed(T))
            cos, sin = rope_tables(T)
            times = []
            for r in range(repeat + 1):
                t0 = time.perf_counter()
                logits = forward(w, ids, cos, sin)
                dt = time.perf_counter() - t0
                assert logits.shape == (T, V) and torch.isfinite(logits).all()
                if r > 0:  # run 0 is the warm-up
                    times.append(dt)
            out[T] = statistics.median(times)
    return out


def bench_drrl(cmd, threads, lengths, repeat):
    argv = shlex.split(cmd) + [
        "bench", "forward", "--threads", str(threads),
        "--tokens", ",".join(map(str, lengths)), "--repeat", str(repeat),
    ]
    res = subprocess.run(argv, check=True, capture_output=True, text=True)
    out = {}
    for line in res.stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[0].isdigit():
            out[int(f[0])] = float(f[1])
    if set(out) != set(lengths):
        sys.exit("forward_torch.py: could not read drrl's output:\n" + res.stdout + res.stderr)
    return out, res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0)
                    or os.cpu_count())
    ap.add_argument("--tokens", default="1024,4096")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--drrl", help="the drrl binary (or a command running it) to compare with")
    a = ap.parse_args()
    lengths = [int(t) for t in a.tokens.split(",")]
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; median of {a.repeat} runs after a warm-up")
    t = bench_torch(lengths, a.repeat)
    d = None
    if a.drrl:
        d, text = bench_drrl(a.drrl, a.threads, lengths, a.repeat)
        sys.stdout.write(text)
    hdr = f"{'T':>6} {'torch_s':>9} {'torch_tok/s':>12}"
    if d:
        hdr += f" {'drrl_s':>9} {'drrl_tok/s':>11} {'drrl/torch':>10}"
    print(hdr)
    for T in lengths:
        line = f"{T:>6} {t[T]:>9.4f} {T / t[T]:>12.1f}"
        if d:
            line += f" {d[T]:>9.4f} {T / d[T]:>11.1f} {t[T] / d[T]:>10.2f}"
        print(line)


if __name__ == "__main__":
    main()
