"""Streaming-read memory bandwidth, the ceiling for LLM decode.

Kernel: a float32 matrix-vector product ``A @ x`` (OpenBLAS sgemv) over an array far larger than
the last-level cache. Each element of A is read exactly once and takes one FMA, so the kernel is
bound by memory reads, not arithmetic (a plain ``np.sum`` is not: its pairwise summation is
compute-bound on one core). For t threads the array is split into t slices and each Python thread
runs sgemv on its own slice at the same time (numpy releases the GIL inside BLAS); OpenBLAS is
pinned to one thread so the thread count is exactly t.

Run as a script (compare.py does this in a subprocess, so the BLAS thread setting cannot leak):
    python bench/membw.py --threads 1 2 --mb 1024
prints one JSON object: {"1": {"best_gbs": ..., "median_gbs": ...}, "2": {...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402  (after the thread settings)


def measure(threads: int, a: np.ndarray, x: np.ndarray, passes: int) -> dict:
    rows = a.shape[0]
    bounds = [(rows * i // threads, rows * (i + 1) // threads) for i in range(threads)]
    slices = [a[lo:hi] for lo, hi in bounds]
    outs = [np.empty(hi - lo, dtype=np.float32) for lo, hi in bounds]
    barrier = threading.Barrier(threads + 1)
    stop = [False]

    def work(i: int) -> None:
        while True:
            barrier.wait()  # start of a pass
            if stop[0]:
                return
            np.dot(slices[i], x, out=outs[i])
            barrier.wait()  # end of the pass

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for th in pool:
        th.start()
    rates = []
    for _ in range(passes):
        t = time.perf_counter()
        barrier.wait()
        barrier.wait()
        rates.append(a.nbytes / (time.perf_counter() - t) / 1e9)
    stop[0] = True
    barrier.wait()
    for th in pool:
        th.join()
    return {"best_gbs": max(rates), "median_gbs": statistics.median(rates), "passes": rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mb", type=int, default=1024, help="array size in MiB (>> last-level cache)")
    ap.add_argument("--passes", type=int, default=12)
    args = ap.parse_args()
    cols = 4096
    rows = args.mb * 2**20 // (4 * cols)
    a = np.ones((rows, cols), dtype=np.float32)  # touched: every page is committed before timing
    x = np.ones(cols, dtype=np.float32)
    np.dot(a, x)  # warm-up: page tables, BLAS init
    res = {str(t): measure(t, a, x, args.passes) for t in args.threads}
    res["array_bytes"] = a.nbytes
    res["kernel"] = "float32 sgemv (A @ x), OpenBLAS 1 thread per Python thread, slices per thread"
    print(json.dumps(res))


if __name__ == "__main__":
    main()
