"""Weights stay in the mapped file: loading does not copy them to F32. Measured in a child process
(peak RSS, from getrusage) so other tests' memory does not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    # An F32 copy of the weights would add ~540 MB; allow the file, the 512-token KV cache (~45 MB if
    # fully touched) and scratch buffers.
    assert r["after_gen"] - r["base"] <= 1.1 * file_mb + 80
