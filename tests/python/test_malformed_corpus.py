"""The committed regression corpus of malformed model files (tests/corpus/malformed, written by
malformed_files.py): every class of damage raises its clear error, through the entry point a user
calls (`wrenlm.Model` for a GGUF file; the safetensors reader under `Model(folder)`), in under 100 ms
and 64 MiB.

The bounds are the issue's: a malformed file must be refused before any work or allocation that
scales with the numbers it claims. A reader that trusted a count or a length would take seconds or
gigabytes here (the corpus claims 2^40-byte strings, 2^61-element arrays and 2^62-byte tensors), so
the bounds are far from what a correct reader needs (about a millisecond and no measurable memory)
and the time is the best of three tries, which keeps the test steady on a loaded machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from malformed_files import CORPUS_DIR, manifest, write_corpus

MAX_SECONDS = 0.100
MAX_PEAK_MIB = 64

# Runs every corpus file in a fresh interpreter. The peak RSS of each attempt is measured by resetting
# the high-water mark (writing 5 to /proc/self/clear_refs) before it and reading VmHWM after it.
CHILD = r"""
import json, sys, time
from pathlib import Path
import wrenlm
from wrenlm import _core

def status_kib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

root = Path(sys.argv[1])
out = {}
for rel in json.loads((root / "manifest.json").read_text()):
    path = str(root / rel)
    best, peak_kib = float("inf"), 0
    for _ in range(3):
        reset_peak()
        base = status_kib("VmRSS:")
        t0 = time.perf_counter()
        try:
            if rel.endswith(".gguf"):
                wrenlm.Model(path, n_threads=1)
            else:
                _core.SafetensorsFile(path)
            error = ("no error", "")
        except Exception as e:
            error = (type(e).__name__, str(e))
        best = min(best, time.perf_counter() - t0)
        peak_kib = max(peak_kib, status_kib("VmHWM:") - base)
    out[rel] = {"error": error[0], "message": error[1], "seconds": best, "peak_mib": peak_kib / 1024}
print(json.dumps(out))
"""


def test_committed_corpus_is_current(tmp_path):
    """The files in the repository are exactly what malformed_files.py writes (regenerate with
    `python tests/python/malformed_files.py` after changing a case)."""
    write_corpus(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(CORPUS_DIR).as_posix(): p.read_bytes() for p in CORPUS_DIR.rglob("*") if p.is_file()}
    assert sorted(committed) == sorted(fresh)
    stale = [rel for rel in fresh if committed[rel] != fresh[rel]]
    assert not stale, f"regenerate the corpus: {stale}"


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(CORPUS_DIR)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("rel", sorted(manifest()))
def test_malformed_file_is_refused_clearly_fast_and_small(results, rel):
    expected = manifest()[rel]
    got = results[rel]
    path = str(CORPUS_DIR / rel)
    assert got["error"] == expected["error"], got["message"]
    assert path in got["message"], got["message"]  # names the file ...
    assert re.search(expected["match"], got["message"]), got["message"]  # ... and the field or rule broken
    assert "\n" not in got["message"]
    assert got["seconds"] < MAX_SECONDS, f"{rel}: {got['seconds'] * 1000:.1f} ms"
    assert got["peak_mib"] < MAX_PEAK_MIB, f"{rel}: peak RSS +{got['peak_mib']:.1f} MiB"
