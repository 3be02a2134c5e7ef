"""Streaming-read memory bandwidth, the ceiling for LLM decode.

The ceiling must be the fastest streaming read we can show, or the roofline flatters every engine,
so several read kernels run over the same float32 array, far larger than the last-level cache, and
the best one counts:
- ``sgemv``: ``A @ x`` (OpenBLAS sgemv) on a (rows, 4096) view; each element read once, one FMA.
- ``sdot``: ``np.dot(s, s)`` (OpenBLAS sdot) on a 1-D view; both operands are the same memory, so
  each element is read once.
- ``max``: ``s.max()`` on a 1-D view (numpy's SIMD reduction). (A plain ``np.sum`` is not a
  bandwidth test: its pairwise summation is compute-bound on one core.)
No kernel writes more than a scalar or one float per row. For t threads the array is split into t
contiguous slices and each Python thread runs the kernel on its own slice at the same time (numpy
releases the GIL inside BLAS and its reductions); OpenBLAS is pinned to one thread so the thread
count is exactly t. A pass runs every kernel once, in turn, so a change in machine load between
passes hits all kernels alike.

Per thread count: ``best_gbs`` is the best over kernels and passes; ``median_gbs`` the median over
passes of each pass's best kernel; ``best_kernel`` the kernel of ``best_gbs``; ``kernels`` the
best, median and passes of each kernel; ``passes`` each pass's best over kernels.

Run as a script (compare.py does this in a subprocess, so the BLAS thread setting cannot leak):
    python bench/membw.py --threads 1 2 --mb 1024
prints one JSON object: {"1": {"best_gbs": ..., "median_gbs": ..., ...}, "2": {...}, ...}.

Persistent mode, for probes next to a benchmark (the array is allocated and touched once):
    python bench/membw.py --serve --mb 512
prints a ready line {"ok": true, "array_bytes": ..., "kernels": [...]}, then answers each JSON line
on stdin, e.g. {"threads": 2, "passes": 3} (optional "kernels": [...]), with one JSON line: the
per-thread-count object above plus "ok" and "wall_s". {"op": "quit"} (answered {"ok": true}) or
the end of input stops it. The protocol is bench/worker.py's, so compare.py drives both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402  (after the thread settings)

COLS = 4096
KERNELS = ("sgemv", "sdot", "max")
DESCRIPTION = {
    "sgemv": "float32 sgemv A @ x (OpenBLAS)",
    "sdot": "float32 sdot np.dot(s, s) (OpenBLAS)",
    "max": "float32 s.max() (numpy reduction)",
}


class Array:
    """The float32 array, touched (every page committed), and each kernel's per-thread work."""

    def __init__(self, mb: int) -> None:
        rows = mb * 2**20 // (4 * COLS)
        if rows < 2:
            raise ValueError(f"--mb {mb}: need at least {2 * 4 * COLS // 2**10} KiB")
        self.a = np.ones((rows, COLS), dtype=np.float32)  # (rows, COLS); written, so committed
        self.flat = self.a.reshape(-1)  # (rows*COLS,), the same memory
        self.x = np.ones(COLS, dtype=np.float32)  # (COLS,)
        self.nbytes = self.a.nbytes
        self._jobs: dict[int, dict[str, list]] = {}
        for k in KERNELS:  # warm-up: page tables, BLAS init
            for job in self.jobs(1)[k]:
                job()

    def jobs(self, threads: int) -> dict[str, list]:
        """kernel -> one callable per thread, each reading its own contiguous slice."""
        if threads not in self._jobs:
            rows = self.a.shape[0]
            if not 1 <= threads <= rows:
                raise ValueError(f"threads {threads}: expected 1..{rows}")
            bounds = [(rows * i // threads, rows * (i + 1) // threads) for i in range(threads)]
            mats = [self.a[lo:hi] for lo, hi in bounds]  # (hi-lo, COLS) each
            vecs = [self.flat[lo * COLS : hi * COLS] for lo, hi in bounds]  # ((hi-lo)*COLS,) each
            outs = [np.empty(hi - lo, dtype=np.float32) for lo, hi in bounds]  # (hi-lo,) each
            x = self.x
            self._jobs[threads] = {
                "sgemv": [lambda m=m, o=o: np.dot(m, x, out=o) for m, o in zip(mats, outs)],
                "sdot": [lambda v=v: np.dot(v, v) for v in vecs],
                "max": [lambda v=v: v.max() for v in vecs],
            }
        return self._jobs[threads]


def _run_parallel(jobs: list) -> float:
    """Runs jobs[i] on thread i, all released together; seconds from release to the last finish."""
    n = len(jobs)
    barrier = threading.Barrier(n + 1)

    def work(job) -> None:
        barrier.wait()  # start
        job()
        barrier.wait()  # end

    pool = [threading.Thread(target=work, args=(j,), daemon=True) for j in jobs]
    for th in pool:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    barrier.wait()
    dt = time.perf_counter() - t
    for th in pool:
        th.join()
    return dt


def measure(arr: Array, threads: int, passes: int, kernels: list[str] | None = None) -> dict:
    kernels = list(kernels or KERNELS)
    bad = [k for k in kernels if k not in KERNELS]
    if bad or not kernels:
        raise ValueError(f"kernels {kernels}: expected a non-empty subset of {list(KERNELS)}")
    if passes < 1:
        raise ValueError(f"passes {passes}: expected >= 1")
    jobs = arr.jobs(threads)
    rates: dict[str, list[float]] = {k: [] for k in kernels}
    for _ in range(passes):
        for k in kernels:  # every kernel in each pass: drift between passes hits all alike
            rates[k].append(arr.nbytes / _run_parallel(jobs[k]) / 1e9)
    per_pass = [max(rates[k][i] for k in kernels) for i in range(passes)]
    best_kernel = max(kernels, key=lambda k: max(rates[k]))
    return {
        "best_gbs": max(rates[best_kernel]),
        "median_gbs": statistics.median(per_pass),
        "best_kernel": best_kernel,
        "passes": per_pass,
        "kernels": {k: {"best_gbs": max(v), "median_gbs": statistics.median(v), "passes": v} for k, v in rates.items()},
    }


def _reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(arr: Array, default_passes: int) -> None:
    _reply({"ok": True, "array_bytes": arr.nbytes, "kernels": list(KERNELS), "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        t = time.perf_counter()
        try:
            req = json.loads(line)
            if req.get("op") == "quit":
                _reply({"ok": True})
                return
            res = measure(arr, int(req.get("threads", 1)), int(req.get("passes", default_passes)), req.get("kernels"))
        except (ValueError, TypeError, AttributeError) as e:
            _reply({"ok": False, "error": f"{type(e).__name__}: {e}", "request": line.strip()[:200]})
            continue
        res.update(ok=True, threads=int(req.get("threads", 1)), wall_s=time.perf_counter() - t)
        _reply(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mb", type=int, default=1024, help="array size in MiB (>> last-level cache)")
    ap.add_argument("--passes", type=int, default=12, help="passes per thread count; each runs every kernel once")
    ap.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    ap.add_argument("--serve", action="store_true", help="persistent: answer JSON-line requests on stdin")
    args = ap.parse_args()
    arr = Array(args.mb)
    if args.serve:
        serve(arr, args.passes)
        return
    res: dict = {str(t): measure(arr, t, args.passes, args.kernels) for t in args.threads}
    res["array_bytes"] = arr.nbytes
    res["kernels"] = args.kernels
    res["kernel"] = (
        "best of " + ", ".join(DESCRIPTION[k] for k in args.kernels) + "; OpenBLAS 1 thread per Python thread, "
        "one contiguous slice per thread"
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
