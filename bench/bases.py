#!/usr/bin/env python3
"""Key-only against query-aware bases at equal rank, causally (issue 16, part 2).

Usage: python3 bench/bases.py --drrl build/ui/drrl (--text FILE | --ids-file F) [--model data/model]
           [--seq-len 4096] [--segment 128] [--ranks 8,12,16,20,24]

drrl's low-rank attention projects queries and keys on one orthonormal basis
B per kv head, from the eigenvectors of the key Gram K^T K of the completed
segments: s~ = (q B)(K B)^T. Its error q (I - P) K^T depends on the queries
too, so a basis that knows them might do better at the same rank (the same
executed attention FLOPs). This script measures, on a Llama-architecture
model (the default data/model), with bases from completed segments only
(segment 0 exact, every basis recomputed at every segment boundary, values
on their own Gram's basis in every variant):
  key     top-r eigenvectors of K^T K (what drrl runs)
  qk      top-r eigenvectors of K^T K / tr + Q^T Q / tr (the stacked [Q; K],
          each part scaled to unit trace): orthonormal, so drrl's kernel,
          caches and bounds would take it unchanged
  2sided  the best rank-r bilinear form in expectation: q A (K C)^T from
          the SVD of S_q^{1/2} S_k^{1/2} (S = second moments); A and C are
          not orthonormal, so drrl's proven bounds would not hold for it;
          the same kernel FLOPs (q A per query, K C cached)
For each: the mean cosine fidelity and relative error of the head outputs
against exact attention, over every row of every head after segment 0, and
bits per byte with the low-rank attention carried through the whole model
(its layers' hidden states from the approximated ones). The query Gram costs
2 d^2 multiply-adds per query row and head more than key-only (reported as a
fraction of exact attention). Exact attention here must match drrl's
forward: the script checks its own exact pass against `drrl dump`'s hidden
states and loss (tolerance 2e-3 relative) before measuring.
Needs python3 with numpy, and drrl (for the dump and the tokens).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for k, v in head.items():
            if k == "__metadata__":
                continue
            dt = {"F32": np.float32, "F16": np.float16, "BF16": None, "I32": np.int32}[v["dtype"]]
            a, b = v["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            if dt is None:  # bfloat16: the high half of a float32
                x = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
                arr = x.view(np.float32)
            else:
                arr = np.frombuffer(raw, dt)
            out[k] = arr.reshape(v["shape"]).astype(np.float32 if dt != np.int32 else np.int32)
        return out, head.get("__metadata__", {})


def rms(x, w, eps):
    x64 = x.astype(np.float64)
    return (x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + eps)).astype(np.float32) * w


def rope(x, theta):
    """x (T, H, D), HF Llama rotate_half at positions 0..T-1."""
    T, _, D = x.shape
    inv = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1).astype(np.float32)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1).astype(np.float32)[:, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def softmax_rows(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def top_eig(G, r):
    w, U = np.linalg.eigh(G)
    return U[:, ::-1][:, :r]


def inv_sqrt_and_sqrt(S, eps=1e-8):
    w, U = np.linalg.eigh(S)
    w = np.maximum(w, eps * max(w.max(), 1e-30))
    return (U / np.sqrt(w)) @ U.T, (U * np.sqrt(w)) @ U.T


def head_attention(q, k, v, seg, variant, r, scale):
    """Rows of one head, (T, D) each: exact (variant None) or rank r with
    bases from completed segments; returns (T, D) outputs."""
    T, D = q.shape
    out = np.empty_like(q)
    for s0 in range(0, T, seg):
        s1 = min(s0 + seg, T)
        qs, ks, vs = q[s0:s1], k[:s1], v[:s1]
        if variant is None or s0 == 0 or r >= D:
            sc = qs @ ks.T * scale
        else:
            kp, qp = k[:s0], q[:s0]
            Gk = kp.T.astype(np.float64) @ kp
            if variant == "key":
                B = top_eig(Gk, r)
                A, C = B, B
            elif variant == "qk":
                Gq = qp.T.astype(np.float64) @ qp
                B = top_eig(Gk / np.trace(Gk) + Gq / np.trace(Gq), r)
                A, C = B, B
            else:  # 2sided
                Gq = qp.T.astype(np.float64) @ qp
                iq, sq = inv_sqrt_and_sqrt(Gq)
                ik, sk = inv_sqrt_and_sqrt(Gk)
                U, sv, Vt = np.linalg.svd(sq @ sk)
                A = iq @ U[:, :r] * sv[:r]
                C = ik @ Vt[:r].T
            sc = (qs @ A.astype(np.float32)) @ (ks @ C.astype(np.float32)).T * scale
        mask = np.arange(s0, s1)[:, None] < np.arange(s1)[None, :]
        sc[mask] = -np.inf
        p = softmax_rows(sc)
        if variant is None or s0 == 0 or r >= D:
            out[s0:s1] = p @ vs
        else:
            Bv = top_eig(v[:s0].T.astype(np.float64) @ v[:s0], r).astype(np.float32)
            out[s0:s1] = (p @ (vs @ Bv)) @ Bv.T
    return out


def layer_qkv(W, cfg, x, l):
    """Layer l's queries, keys and values (T, heads, D) from its input x."""
    H, K = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps, theta, p = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0), f"model.layers.{l}."
    xn = rms(x, W[p + "input_layernorm.weight"], eps)
    T = xn.shape[0]
    def proj(name, n):  # with attention_bias, q/k/v/o have biases
        y = xn @ W[p + f"self_attn.{name}.weight"].T
        return (y + W[p + f"self_attn.{name}.bias"] if p + f"self_attn.{name}.bias" in W
                else y).reshape(T, n, D)
    q = rope(proj("q_proj", H), theta)
    k = rope(proj("k_proj", K), theta)
    return q, k, proj("v_proj", K)


def layer_heads(cfg, q, k, v, seg, variant, r):
    H, K = q.shape[1], k.shape[1]
    D = q.shape[2]
    return np.stack([head_attention(q[:, h], k[:, h * K // H], v[:, h * K // H], seg, variant, r,
                                    1.0 / np.sqrt(D)) for h in range(H)], 1)


def forward(W, cfg, ids, seg, variant, r):
    """Whole-model forward with every layer's attention at (variant, r);
    returns (hidden states, loss in nats per predicted token)."""
    eps = cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][ids]
    hs = [x]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        q, k, v = layer_qkv(W, cfg, x, l)
        o = layer_heads(cfg, q, k, v, seg, variant, r)
        T = x.shape[0]
        x = x + o.reshape(T, -1) @ W[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in W:
            x = x + W[p + "self_attn.o_proj.bias"]
        xn = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g = xn @ W[p + "mlp.gate_proj.weight"].T
        u = xn @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
        hs.append(x)
    xf = rms(x, W["model.norm.weight"], eps)
    hs.append(xf)
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = (xf @ lm.T).astype(np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(logits - m).sum(-1)))[:-1]
    nll = lse - logits[np.arange(len(ids) - 1), ids[1:]]
    return hs, float(nll.mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drrl", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text")
    src.add_argument("--ids-file", help="token ids separated by whitespace or commas")
    ap.add_argument("--model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "data", "model"))
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--segment", type=int, default=128)
    ap.add_argument("--ranks", default="8,12,16,20,24")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    if cfg.get("model_type") != "llama":
        sys.exit("bases.py: needs a Llama-architecture model")
    index = os.path.join(a.model, "model.safetensors.index.json")
    W = {}
    if os.path.exists(index):  # sharded
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            W.update(read_st(os.path.join(a.model, shard))[0])
    else:
        W = read_st(os.path.join(a.model, "model.safetensors"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        if a.ids_file:
            ids_txt = open(a.ids_file).read().replace(",", " ").split()
        else:
            p = subprocess.run([a.drrl, "tokenize", "--model", a.model, "--text", a.text],
                               capture_output=True, text=True)
            if p.returncode:
                sys.exit(f"bases.py: drrl tokenize failed: {p.stderr.strip()}")
            ids_txt = p.stdout.split()
        ids = np.array([int(t) for t in ids_txt[: a.seq_len]], np.int64)
        with open(os.path.join(tmp, "ids"), "w") as f:
            f.write(" ".join(map(str, ids)))
        dump = os.path.join(tmp, "d.safetensors")
        subprocess.run([a.drrl, "dump", "--model", a.model, "--ids-file", os.path.join(tmp, "ids"),
                        "--out", dump, "--no-attn"], check=True, capture_output=True)
        ref, meta = read_st(dump)
    hs, loss = forward(W, cfg, ids, a.segment, None, 0)
    L = cfg["num_hidden_layers"]
    mine = hs[:L] + [hs[-1]]  # transformers' last hidden state is after the final norm
    worst = max(float(np.abs(mine[i] - ref[f"hidden.{i}"]).max() /
                      (np.abs(ref[f"hidden.{i}"]).max() + 1e-30)) for i in range(L + 1))
    dl = abs(loss - float(meta["loss"])) / float(meta["loss"])
    print(f"# {a.text or a.ids_file}: {len(ids)} tokens, segment {a.segment}; this script's exact pass "
          f"against `drrl dump`: hidden states within {worst:.1e} (max abs difference / max "
          f"abs), loss {loss:.6f} against {float(meta['loss']):.6f}")
    if worst > 2e-3 or dl > 2e-3:
        sys.exit("bases.py: this script's exact pass does not match drrl's: not measuring")
    qkv = [layer_qkv(W, cfg, hs[l], l) for l in range(L)]
    exact = [layer_heads(cfg, *qkv[l], a.segment, None, 0) for l in range(L)]
    D = qkv[0][0].shape[2]
    print(f"exact: {loss / np.log(2.0):.5f} bits per token; the query Gram costs 2 d^2 "
          f"multiply-adds per query row, {D / len(ids):.2%} of exact attention's 2 L d here")
    print("| rank | basis | fidelity (mean cos) | relative error (mean) | bits per token | vs exact |")
    print("|---|---|---|---|---|---|")
    for r in [int(x) for x in a.ranks.split(",")]:
        for var in ("key", "qk", "2sided"):
            # fidelity: each layer's heads at rank r on the exact model's
            # inputs to that layer (the error the layer makes by itself);
            # bits: every layer at rank r, carried through the model
            cos, rel = [], []
            for l in range(L):
                ex = exact[l][a.segment:]
                ap_ = layer_heads(cfg, *qkv[l], a.segment, var, r)[a.segment:]
                ne, na = np.linalg.norm(ex, axis=-1), np.linalg.norm(ap_, axis=-1)
                cos.append((ex * ap_).sum(-1) / (ne * na + 1e-30))
                rel.append(np.linalg.norm(ex - ap_, axis=-1) / (ne + 1e-30))
            _, lo = forward(W, cfg, ids, a.segment, var, r)
            print(f"| {r} | {var} | {np.mean(cos):.4f} | {np.mean(rel):.4f} | "
                  f"{lo / np.log(2.0):.5f} | {100 * (lo / loss - 1):+.2f}% |", flush=True)


if __name__ == "__main__":
    main()
