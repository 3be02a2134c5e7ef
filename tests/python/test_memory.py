"""Weights are not expanded to F32: peak RSS after load stays about the file size. Measured in a child
process (peak RSS from /proc/self/status VmHWM, which starts afresh at exec; getrusage's ru_maxrss
would inherit the parent's high-water mark from fork and hide the load) so other tests' memory does
not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
