"""Embedding throughput on Ray against plain wrenlm, with the same two CPU threads in all:

- plain wrenlm: one ``wrenlm.Model(n_threads=2)`` in this process, no Ray;
- Ray, 2 actors x 1 thread: ``wrenlm.integrations.ray.embed(concurrency=2, n_threads=1)``;
- Ray, 1 actor x 2 threads: ``embed(concurrency=1, n_threads=2)``.

Each run is timed end to end as a user waits for it: plain wrenlm from ``wrenlm.Model(...)`` to the
array; Ray from ``embed(...)`` to ``take_all()``'s last row (actor start-up and model loading
included: Ray Data starts the actors for each execution). The Ray cluster itself
(``ray.init(num_cpus=2)``) is started once, beforehand, and timed apart. Every result is checked
against the plain run (same vectors, bit for bit, and the same order).

    python bench/ray_embed.py                             # 2,000 short texts, all-MiniLM-L6-v2, 2 reps
    python bench/ray_embed.py --texts 500 --reps 1 --model PATH

Needs ``wrenlm[ray]``. Writes bench/results/ray-embed.md. Keep the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import wrenlm

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WRENLM_CACHE_DIR", Path.home() / ".cache" / "wrenlm"))
SUBJECTS = ["the cat", "a train to Lyon", "my neighbour", "the old library", "this recipe", "the river",
            "a small robot", "the committee"]
VERBS = ["sleeps through", "arrives late for", "argues about", "closes early on", "needs more salt for",
         "floods during", "learns from", "votes against"]
OBJECTS = ["the storm", "every meeting", "the new budget", "Sunday lunch", "a rainy week", "the spring",
           "its mistakes", "the proposal"]


def texts(n: int) -> list[str]:
    """n short sentences (8 to 12 words), all different."""
    return [f"{k}: {SUBJECTS[k % 8]} {VERBS[(k // 8) % 8]} {OBJECTS[(k // 64) % 8]}." for k in range(n)]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_plain(model: str, data: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    with wrenlm.Model(model, n_threads=2) as m:
        vecs = m.embed(data, batch_size=batch_size)
    return time.perf_counter() - t0, vecs


def run_ray(ray, wren_ray, model: str, data: list[str], batch_size: int, concurrency: int,
            n_threads: int) -> tuple[float, np.ndarray]:
    ds = ray.data.from_items([{"id": k, "text": t} for k, t in enumerate(data)])
    t0 = time.perf_counter()
    rows = wren_ray.embed(ds, model, concurrency=concurrency, n_threads=n_threads, batch_size=batch_size,
                          id_column="id", progress=False).take_all()
    elapsed = time.perf_counter() - t0
    if [r["id"] for r in rows] != list(range(len(data))):
        raise AssertionError("rows came back out of order")
    return elapsed, np.stack([r["embedding"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(CACHE / "all-MiniLM-L6-v2"))
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ray-embed.md"))
    args = ap.parse_args()

    import ray
    from wrenlm.integrations import ray as wren_ray

    data = texts(args.texts)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False)
    init_s = time.perf_counter() - t0
    one = args.batch_size  # a single batch: what starting the actors and loading the models costs
    configs = [("plain wrenlm (no Ray), 1 model x 2 threads", None, len(data)),
               ("Ray, 2 actors x 1 thread", (2, 1), len(data)),
               ("Ray, 1 actor x 2 threads", (1, 2), len(data)),
               (f"plain wrenlm, {one} texts only", None, one),
               (f"Ray, 2 actors x 1 thread, {one} texts only", (2, 1), one),
               (f"Ray, 1 actor x 2 threads, {one} texts only", (1, 2), one)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    reference = None
    try:
        for rep in range(args.reps):
            for name, shape, n in configs:  # interleaved, so a busy spell on the machine hits all alike
                if shape is None:
                    elapsed, vecs = run_plain(args.model, data[:n], args.batch_size)
                else:
                    elapsed, vecs = run_ray(ray, wren_ray, args.model, data[:n], args.batch_size, *shape)
                if reference is None:
                    reference = vecs
                elif not np.array_equal(vecs, reference[:n]):
                    raise AssertionError(f"{name}: vectors differ from the first run")
                times[name].append(elapsed)
                print(f"rep {rep + 1}: {name}: {elapsed:.2f} s ({n / elapsed:.0f} texts/s)", flush=True)
    finally:
        ray.shutdown()

    load_after = os.getloadavg()[0]
    words = sum(len(t.split()) for t in data) / len(data)
    lines = [
        "# Embeddings on Ray vs plain wrenlm",
        "",
        f"`python bench/ray_embed.py --texts {args.texts} --reps {args.reps}` on {time.strftime('%Y-%m-%d')}: "
        f"{Path(args.model).name}, {len(data)} short texts ({words:.1f} words on average), batches of "
        f"{args.batch_size}; {cpu_name()}, {os.cpu_count()} CPUs visible; Ray {ray.__version__}, "
        f"local cluster `ray.init(num_cpus=2)` (started once, {init_s:.1f} s, not counted).",
        "",
        "**Indicative only**: the machine was shared with other jobs during the run (2 cores for several "
        "agents and a CI run), so the absolute numbers and small differences are noise-prone. "
        f"Load average (1 min) {load_before:.1f} before the run, {load_after:.1f} after it.",
        "",
        "Each time runs from the start of the call to the last vector: plain wrenlm includes loading the "
        "model; each Ray run includes starting its actors and loading one model in each (Ray Data starts the "
        "actors per execution). Every run gave the same vectors, in the same order, as the first.",
        "",
        "| configuration | " + " | ".join(f"rep {r + 1} (s)" for r in range(args.reps)) + " | best texts/s |",
        "|---|" + "---:|" * (args.reps + 1),
    ]
    for name, _, n in configs:
        ts = times[name]
        lines.append(f"| {name} | " + " | ".join(f"{t:.2f}" for t in ts) + f" | {n / min(ts):.0f} |")
    lines += ["", f"The {one}-text rows are one batch: mostly the fixed cost of a run (for Ray: scheduling the "
              "actors, starting their processes, loading a model in each)."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
