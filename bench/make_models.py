#!/usr/bin/env python3
"""Write random models of real sizes for the speed benchmarks (numpy only).

Usage: python3 bench/make_models.py OUTDIR [--only gpt2-124m,tinyllama-1.1b]
                                           [--seed 1] [--layers N]

Writes Hugging Face model directories (config.json and model.safetensors, as
transformers saves them) with seeded pseudo-random weights:

  OUTDIR/gpt2-124m        GPT2LMHeadModel: 12 layers x 12 heads, d_model 768,
                          1,024 positions, vocabulary 50,257, float32, tied
                          lm_head (124M parameters, 498 MB)
  OUTDIR/tinyllama-1.1b   LlamaForCausalLM as TinyLlama-1.1B: 22 layers, 32
                          heads over 4 kv heads (head_dim 64), d_model 2,048,
                          d_ff 5,632, vocabulary 32,000, 2,048 positions,
                          untied lm_head, bfloat16 (1.1B parameters, 2.2 GB)

Weights are uniform in [-a, a] with a = sqrt(3) * 0.02 (standard deviation
0.02, as the models' initializer_range), norms 1 and biases 0, so
activations stay in range and every benchmark computes real numbers. A
directory that already holds both files is left alone (nothing is ever
overwritten); --layers N writes fewer layers (quick tests).
"""
import argparse
import json
import os
import sys

import numpy as np

STD = 0.02


def gpt2_spec(layers):
    C, F, V, P = 768, 3072, 50257, 1024
    cfg = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.0, "bos_token_id": 50256, "embd_pdrop": 0.0, "eos_token_id": 50256,
        "initializer_range": STD, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
        "n_embd": C, "n_head": 12, "n_inner": None, "n_layer": layers, "n_positions": P,
        "resid_pdrop": 0.0, "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True, "tie_word_embeddings": True, "dtype": "float32",
        "vocab_size": V,
    }
    t = [("transformer.wte.weight", (V, C), "w"), ("transformer.wpe.weight", (P, C), "w")]
    for l in range(layers):
        p = f"transformer.h.{l}."
        t += [(p + "ln_1.weight", (C,), "1"), (p + "ln_1.bias", (C,), "0"),
              (p + "attn.c_attn.weight", (C, 3 * C), "w"), (p + "attn.c_attn.bias", (3 * C,), "0"),
              (p + "attn.c_proj.weight", (C, C), "w"), (p + "attn.c_proj.bias", (C,), "0"),
              (p + "ln_2.weight", (C,), "1"), (p + "ln_2.bias", (C,), "0"),
              (p + "mlp.c_fc.weight", (C, F), "w"), (p + "mlp.c_fc.bias", (F,), "0"),
              (p + "mlp.c_proj.weight", (F, C), "w"), (p + "mlp.c_proj.bias", (C,), "0")]
    t += [("transformer.ln_f.weight", (C,), "1"), ("transformer.ln_f.bias", (C,), "0")]
    return cfg, t, "F32"


def tinyllama_spec(layers):
    C, F, V, H, K, D = 2048, 5632, 32000, 32, 4, 64
    cfg = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "head_dim": D,
        "hidden_act": "silu", "hidden_size": C, "initializer_range": STD,
        "intermediate_size": F, "max_position_embeddings": 2048, "mlp_bias": False,
        "model_type": "llama", "num_attention_heads": H, "num_hidden_layers": layers,
        "num_key_value_heads": K, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "dtype": "bfloat16",
        "vocab_size": V,
    }
    t = [("model.embed_tokens.weight", (V, C), "w")]
    for l in range(layers):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", (C,), "1"),
              (p + "self_attn.q_proj.weight", (H * D, C), "w"),
              (p + "self_attn.k_proj.weight", (K * D, C), "w"),
              (p + "self_attn.v_proj.weight", (K * D, C), "w"),
              (p + "self_attn.o_proj.weight", (C, H * D), "w"),
              (p + "post_attention_layernorm.weight", (C,), "1"),
              (p + "mlp.gate_proj.weight", (F, C), "w"),
              (p + "mlp.up_proj.weight", (F, C), "w"),
              (p + "mlp.down_proj.weight", (C, F), "w")]
    t += [("model.norm.weight", (C,), "1"), ("lm_head.weight", (V, C), "w")]
    return cfg, t, "BF16"


SPECS = {"gpt2-124m": gpt2_spec, "tinyllama-1.1b": tinyllama_spec}


def to_bf16(a):
    """float32 -> bfloat16 bits, rounding to nearest even."""
    b = a.view(np.uint32)
    b = b + (0x7FFF + ((b >> 16) & 1))
    return (b >> 16).astype(np.uint16)


def tensor_bytes(kind, shape, dtype, rng):
    n = int(np.prod(shape))
    if kind == "w":
        a = (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(2 * 3 ** 0.5 * STD)
    elif kind == "1":
        a = np.ones(n, dtype=np.float32)
    else:
        a = np.zeros(n, dtype=np.float32)
    a = a.astype("<f4")
    return (to_bf16(a).astype("<u2") if dtype == "BF16" else a).tobytes()


def write_model(out, name, layers, seed):
    cfg, tensors, dtype = SPECS[name](layers)
    d = os.path.join(out, name)
    cpath, mpath = os.path.join(d, "config.json"), os.path.join(d, "model.safetensors")
    if os.path.exists(cpath) and os.path.exists(mpath):
        print(f"{d}: exists, left alone")
        return
    if os.path.exists(cpath) or os.path.exists(mpath):
        sys.exit(f"make_models.py: {d} holds only part of a model; remove it first")
    os.makedirs(d, exist_ok=True)
    width = 2 if dtype == "BF16" else 4
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for tname, shape, _ in tensors:
        n = int(np.prod(shape)) * width
        header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(seed)
    tmp = mpath + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for tname, shape, kind in tensors:
            f.write(tensor_bytes(kind, shape, dtype, rng))
    os.rename(tmp, mpath)
    with open(cpath, "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"{d}: {off / 1e6:.0f} MB of {dtype} weights")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", default=",".join(SPECS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, default=0, help="fewer layers (0: the real count)")
    a = ap.parse_args()
    for name in a.only.split(","):
        if name not in SPECS:
            sys.exit(f"make_models.py: unknown model '{name}' (have: {', '.join(SPECS)})")
        real = 12 if name == "gpt2-124m" else 22
        write_model(a.outdir, name, a.layers or real, a.seed)


if __name__ == "__main__":
    main()
