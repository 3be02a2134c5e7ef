"""Single-sequence speed of two wrenlm builds, interleaved in one run: did a change regress prefill
or decode? Each build is a Python interpreter whose environment has that build installed (e.g. a
git worktree at the old commit with its own venv).

    python bench/ab_builds.py --a /work/old/.venv/bin/python --b .venv/bin/python MODEL.gguf ...

Per model and build, in a fresh child process each round (rounds alternate which build goes
first): prefill tok/s of a 512-token prompt (time to the first token) and decode tok/s of 128
tokens after a 16-token prompt, through Model.stream (the user's path), greedy, EOS ignored.
Prints medians and the b/a ratio; writes --out (Markdown) when given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
import wrenlm
path, threads = sys.argv[1], int(sys.argv[2])
opts = dict(n_ctx=1024, n_threads=threads)
if "cache_mb" in wrenlm.Model.__init__.__code__.co_varnames:
    opts["cache_mb"] = 0  # no prefix reuse between the runs
m = wrenlm.Model(path, **opts)
rng = np.random.default_rng(0)
ids = [int(t) for t in rng.integers(100, min(m.info["n_vocab"], 30000), 600)]
m.generate(ids[:8], max_tokens=4, ignore_eos=True)  # warm-up: packs the weights
t = time.perf_counter()
s = m.stream(ids[:512], max_tokens=1, ignore_eos=True)
next(s)
pre = 512 / (time.perf_counter() - t)
list(s)
s = m.stream(ids[512:528], max_tokens=129, ignore_eos=True)
next(s); t = time.perf_counter()
for _ in s: pass
dec = 128 / (time.perf_counter() - t)
print(json.dumps({"prefill": pre, "decode": dec}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--a", required=True, help="python of build A (before)")
    ap.add_argument("--b", default=sys.executable, help="python of build B (after)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    lines = ["| model | figure | A (tok/s) | B (tok/s) | B / A |", "|---|---|---:|---:|---:|"]
    for path in args.models:
        runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
        for r in range(args.rounds):
            for which in (["a", "b"] if r % 2 == 0 else ["b", "a"]):
                py = os.path.abspath(args.a if which == "a" else args.b)
                out = subprocess.run([py, "-c", CHILD, path, str(args.threads)], capture_output=True, text=True,
                                     check=True, cwd="/")
                runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for fig in ("prefill", "decode"):
            a = statistics.median(x[fig] for x in runs["a"])
            b = statistics.median(x[fig] for x in runs["b"])
            lines.append(f"| {Path(path).name} | {fig} | {a:.1f} | {b:.1f} | {b / a:.3f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
