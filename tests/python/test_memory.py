"""Weights are not expanded to F32: peak RSS after load stays about the file size. Measured in a child
process (peak RSS from /proc/self/status VmHWM, which starts afresh at exec; getrusage's ru_maxrss
would inherit the parent's high-water mark from fork and hide the load) so other tests' memory does
not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UNDER_ASAN

CHILD = r"""
import json, sys
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
import numpy, wrenlm
base = peak_mb()
m = wrenlm.Model(sys.argv[1], n_ctx=512, n_threads=1)
loaded = peak_mb()
m.generate("Hello", max_tokens=8)
after_gen = peak_mb()
print(json.dumps({"base": base, "loaded": loaded, "after_gen": after_gen}))
"""


def test_peak_rss_is_about_the_file_size(smollm2_path):
    out = subprocess.run([sys.executable, "-c", CHILD, smollm2_path], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    file_mb = os.path.getsize(smollm2_path) / 2**20
    print(f"file {file_mb:.0f} MB; peak RSS over the interpreter: after load {r['loaded'] - r['base']:.0f} MB, "
          f"after generating {r['after_gen'] - r['base']:.0f} MB")
    # An F32 copy of the weights would add ~540 MB. Allow the weights once (the quantized matrices as
    # a packed copy whose file pages are released), the 512-token KV cache and scratch buffers.
    assert r["after_gen"] - r["base"] <= 1.1 * file_mb + 80


@pytest.mark.skipif(UNDER_ASAN, reason="resident size under ASan's allocator (quarantine) says nothing of "
                    "glibc's arenas: 391-472 MiB after close in 4 rounds, 165-212 MiB with its quarantine off")
def test_rss_returns_to_the_first_round_after_repeated_loads(smollm2_path, gemma3_path, minilm_dir):
    """Five models open at once (three formats, two of them twice), then closed, four rounds in a row
    (bench/rss_cycles.py, in a child process): the resident size after each later round is within
    5% of the first round's, and the heap in use does not grow (no leak). glibc used to keep ~110-150
    MB of freed heap after each round, and more after later rounds (128 MiB, then 171, 139, 180 MiB),
    until closing a model trimmed the heap (util/heap.h)."""
    models = [smollm2_path, gemma3_path, str(minilm_dir), smollm2_path, gemma3_path]
    script = Path(__file__).resolve().parents[2] / "bench" / "rss_cycles.py"
    out = subprocess.run([sys.executable, str(script), "--rounds", "4", "--json", *models], capture_output=True,
                         text=True, check=True)
    rounds = json.loads(out.stdout.strip().splitlines()[-1])["rounds"]
    closed = [r["rss_closed"] for r in rounds]
    in_use = [r["heap_in_use"] for r in rounds]
    print("RSS after close (MiB):", [f"{c:.0f}" for c in closed], "heap in use:", [f"{u:.1f}" for u in in_use])
    for later in closed[1:]:
        assert abs(later - closed[0]) <= 0.05 * closed[0], closed
    # A model's weights are ~100-300 MB: closing must give back all but the interpreter's share.
    assert max(closed) < 0.2 * rounds[0]["rss_loaded"], (closed, rounds[0]["rss_loaded"])
    # Heap in use: Python's own objects move it by a few hundred KiB; a leaked tokenizer or KV cache
    # would add megabytes per round.
    assert max(in_use[1:]) - in_use[0] < 1.0, in_use
