"""Packed-kernel throughput per weight type and ISA, one thread: GB/s of packed weights streamed by a
decode product (one token) and GMAC/s of a prefill product (many tokens), on a random matrix of a
1.1B model's FFN size. For tuning kernels; the peer comparison is bench/compare.py.

    python bench/kernels.py [--types Q4_0 Q4_K ...] [--rows 5632] [--cols 2048] [--tokens 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="+", default=TYPES)
    ap.add_argument("--isas", nargs="+")
    ap.add_argument("--rows", type=int, default=5632)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    import gguf
    from quant_blocks import random_blocks
    from wrenlm import _core

    isas = a.isas or _core.kernels.available_isas()
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, a.cols)).astype(np.float32)
    xn = rng.standard_normal((a.tokens, a.cols)).astype(np.float32)
    print(f"{'type':8} {'isa':8} {'decode GB/s':>12} {'prefill GMAC/s':>15}")
    for name in a.types:
        tid = int(getattr(gguf.GGMLQuantizationType, name))
        raw = random_blocks(gguf, name, a.rows, a.cols, rng).reshape(-1)
        for isa in isas:
            t1 = _core.kernels.time_gemm_packed(isa, tid, raw, a.rows, x1, a.repeat)
            tn = _core.kernels.time_gemm_packed(isa, tid, raw, a.rows, xn, max(2, a.repeat // 3))
            print(f"{name:8} {isa:8} {raw.nbytes / t1 / 1e9:12.1f} {a.rows * a.cols * a.tokens / tn / 1e9:15.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
