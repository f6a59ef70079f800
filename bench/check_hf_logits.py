#!/usr/bin/env python3
"""check_hf_logits.py: does Hugging Face transformers compute the same logits
as drrl for a model directory written by `drrl train-lm`?

Usage:
  drrl train-lm --eval-only --model DIR --data TEXT --ctx T --dump-logits L.safetensors
  python3 bench/check_hf_logits.py DIR L.safetensors [--tol 1e-4]

Loads DIR with transformers' AutoModelForCausalLM (eager attention,
float32, on the CPU), runs it on the input_ids stored in L.safetensors and
compares with the logits drrl stored there. Prints one JSON line with the
maximum absolute difference, that divided by the largest |logit| (the
relative error the fixtures in tests/fixtures are held to), and the argmax
agreement; exits 1 when the relative error exceeds --tol.
Needs torch, transformers and safetensors (not needed to build drrl).
"""
import argparse
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("dump")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = AutoConfig.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        args.model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ref = load_file(args.dump)
    ids = ref["input_ids"].long().unsqueeze(0)
    with torch.no_grad():
        out = model(input_ids=ids).logits[0].float()
    drrl = ref["logits"].float()
    diff = (out - drrl).abs().max().item()
    scale = drrl.abs().max().item()
    rel = diff / scale if scale > 0 else diff
    agree = (out.argmax(-1) == drrl.argmax(-1)).float().mean().item()
    # mean next-byte cross-entropy of both, in bits per byte
    tgt = ids[0, 1:]
    bpb_hf = torch.nn.functional.cross_entropy(out[:-1], tgt).item() / 0.6931471805599453
    bpb_drrl = torch.nn.functional.cross_entropy(drrl[:-1], tgt).item() / 0.6931471805599453
    import transformers
    res = {"transformers": transformers.__version__, "torch": torch.__version__,
           "architectures": cfg.architectures, "tokens": ids.shape[1],
           "max_abs_diff": diff, "max_abs_logit": scale, "rel_err": rel,
           "tol": args.tol, "argmax_agreement": agree,
           "bpb_transformers": bpb_hf, "bpb_drrl": bpb_drrl, "pass": rel <= args.tol}
    print(json.dumps(res))
    return 0 if rel <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
