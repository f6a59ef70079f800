#!/usr/bin/env python3
"""Rewrite the model hash recorded in drrl policy files to today's algorithm.

Usage: python3 data/rehash_policy.py DRRL MODEL_DIR POLICY...

Policy files written before drrl named its hash algorithm hold the FNV-1a 64
hash of their model (model.hash, no model.hash_algo). drrl still reads them
and compares that hash, recomputed (slowly, every byte in one chain), when
they are loaded. This script replaces it by today's xxh64-tree hash and adds
model.hash_algo, touching nothing else: the header's JSON changes only in
those two keys (re-padded with spaces to 8 bytes) and every tensor byte
stays the same. Each POLICY must hold MODEL_DIR's old hash (`DRRL info
--hash-algo fnv1a64 MODEL_DIR`); a file already rewritten is left alone.
Needs python3 only (no numpy). How data/policy*.safetensors were updated:

    python3 data/rehash_policy.py build/ui/drrl data/model \\
        data/policy.safetensors data/policy-beta0.safetensors
"""
import os
import struct
import subprocess
import sys


def weights_hash(drrl, model, algo):
    out = subprocess.run([drrl, "info", "--hash-algo", algo, model], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("weights hash"):
            h, name = line.split()[2], line.split()[3].strip("()")
            if name != algo or len(h) != 16:
                sys.exit(f"rehash_policy.py: unexpected line from drrl info: {line}")
            return h
    sys.exit(f"rehash_policy.py: no 'weights hash' in drrl info's output:\n{out}")


def rehash(path, old, new, algo):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header, body = data[8:8 + n], data[8 + n:]
    # inside the metadata string the inner JSON's quotes are escaped
    had = b'\\"hash\\":\\"%s\\"' % old.encode()
    done = b'\\"hash_algo\\":'
    if done in header:
        print(f"{path}: names its hash algorithm already; left alone")
        return
    if header.count(had) != 1:
        sys.exit(f"rehash_policy.py: {path}: model.hash is not {old} (the old hash of the "
                 "model given): not rewritten")
    header = header.rstrip(b" ").replace(
        had, b'\\"hash\\":\\"%s\\",\\"hash_algo\\":\\"%s\\"' % (new.encode(), algo.encode()))
    header += b" " * (-(8 + len(header)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + body)
    os.replace(tmp, path)
    print(f"{path}: model.hash {old} (fnv1a64) -> {new} ({algo}); tensors unchanged")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__.split("\n\n")[1])
    drrl, model, policies = sys.argv[1], sys.argv[2], sys.argv[3:]
    old = weights_hash(drrl, model, "fnv1a64")
    new = weights_hash(drrl, model, "xxh64-tree")
    for p in policies:
        rehash(p, old, new, "xxh64-tree")


if __name__ == "__main__":
    main()
