"""KV-cache memory and prefix reuse, measured: what the paged cache holds and what reuse saves.

1. Prefix reuse: time to first token of a call whose first 1,500 tokens an earlier call computed
   (prefix cache on) against the same call cold (cache_mb=0), SmolLM2, median of 5.
2. Shared prefix: 8 sequences whose prompts share a 1,500-token prefix, running at once: the KV
   bytes the engine holds, against 8 separate copies.
3. Sliding windows: Gemma 3 270M after a long context (default 32,768 tokens): KV bytes held
   against a flat cache of every layer at every position.

    python bench/kv_memory.py [--gemma-ctx 32768] [--threads 2]

Writes bench/results/kv-memory-prefix.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WRENLM_CACHE_DIR", Path.home() / ".cache" / "wrenlm"))


def ttft(model, ids) -> float:
    t = time.perf_counter()
    st = model.stream(ids, max_tokens=1, ignore_eos=True)
    next(st, None)
    dt = time.perf_counter() - t
    st.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemma-ctx", type=int, default=32768)
    args = ap.parse_args()
    import wrenlm

    lines = [f"# KV-cache memory and prefix reuse ({args.threads} threads)", ""]
    smol = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    rng = np.random.default_rng(0)

    # 1. time to first token with a 1,500-token prefix computed before
    warm = wrenlm.Model(str(smol), n_ctx=2048, n_threads=args.threads)
    cold = wrenlm.Model(str(smol), n_ctx=2048, n_threads=args.threads, cache_mb=0)
    cold_t, warm_t = [], []
    for _ in range(5):
        prefix = [int(t) for t in rng.integers(100, 30000, 1500)]
        question = [int(t) for t in rng.integers(100, 30000, 40)]
        ttft(warm, prefix)  # the earlier call
        cold_t.append(ttft(cold, prefix + question))
        warm_t.append(ttft(warm, prefix + question))
    c, w = statistics.median(cold_t), statistics.median(warm_t)
    lines += ["## Prefix reuse (SmolLM2-135M Q4_1)", "",
              "Time to first token of a 1,540-token prompt whose first 1,500 tokens an earlier call computed:",
              "", "| | time to first token (ms) |", "|---|---:|",
              f"| cold (cache_mb=0) | {c * 1000:.0f} |", f"| prefix cache | {w * 1000:.0f} |",
              f"| ratio | {c / w:.1f}x lower |", ""]
    print("\n".join(lines[-9:]), flush=True)

    # 2. eight sequences sharing a 1,500-token prefix
    warm.clear_cache()
    gc.collect()
    prefix = [int(t) for t in rng.integers(100, 30000, 1500)]
    ttft(warm, prefix)
    gc.collect()
    base = warm._engine.kv_bytes
    streams = [warm.stream(prefix + [int(t) for t in rng.integers(100, 30000, 30)], max_tokens=8, ignore_eos=True)
               for _ in range(8)]
    for st in streams:
        next(st)
    held = warm._engine.kv_bytes
    per_position = 30 * 192 * 2 * 2  # layers x kv_dim x (K, V) x f16
    copies = 8 * 1531 * per_position
    lines += ["## Eight sequences sharing a 1,500-token prefix", "",
              f"KV bytes held with the 8 running: {held / 2**20:.1f} MiB (of which the cached prefix: "
              f"{base / 2**20:.1f} MiB); 8 separate caches would hold {copies / 2**20:.1f} MiB.", ""]
    print(lines[-2], flush=True)
    for st in streams:
        st.close()
    warm.close()
    cold.close()

    # 3. Gemma 3 sliding windows at a long context
    gemma = CACHE / "gemma-3-270m-q4_k_m.gguf"
    if gemma.exists():
        n = args.gemma_ctx
        m = wrenlm.Model(str(gemma), n_ctx=n + 16, n_threads=args.threads, cache_mb=0)
        info = m._engine.info
        s = m._engine.session()
        ids = [int(t) for t in rng.integers(100, 20000, n)]
        t = time.perf_counter()
        m._engine.eval_batch([(s, ids, False)])
        el = time.perf_counter() - t
        flat = info["n_layers"] * n * info["kv_dim"] * 2 * 2
        lines += [f"## Gemma 3 270M at {n} positions", "",
                  f"{info['n_sliding_layers']} of {info['n_layers']} layers slide (window "
                  f"{info['sliding_window']}): KV bytes held {s.kv_bytes / 2**20:.1f} MiB, against "
                  f"{flat / 2**20:.1f} MiB for a flat cache of every layer at every position "
                  f"({flat / s.kv_bytes:.1f}x). Prefill took {el:.0f} s.", ""]
        print(lines[-2], flush=True)
        m.close()
    out = ROOT / "bench" / "results" / "kv-memory-prefix.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
