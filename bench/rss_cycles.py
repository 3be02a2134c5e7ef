"""Resident memory across rounds of loading several models at once and closing them.

Each round opens every model given (at once), runs a short generation on each (an embedding for
encoder models), closes them all and records the process's resident size (VmRSS) and glibc's own
account of its heap (mallinfo2): bytes in use and bytes free. A leak shows as heap in use growing
round after round; allocator retention shows as resident memory above the heap in use, made of free
heap chunks whose pages the allocator kept. wrenlm trims the heap when a model closes (util/heap.h):
the free chunks stay in the allocator's books but their pages go back to the OS, so the resident size
after each round comes back to the first round's.

    python bench/rss_cycles.py --rounds 6 MODEL...      # a table
    python bench/rss_cycles.py --rounds 4 --json MODEL...  # what tests/python/test_memory.py reads
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_mib() -> tuple[float, float]:
    """(in use, free but kept) MiB of the C heap over all arenas; (nan, nan) without glibc's mallinfo2."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        mi = libc.mallinfo2()
    except (OSError, AttributeError):
        return float("nan"), float("nan")
    return mi.uordblks / 2**20, mi.fordblks / 2**20


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def run(paths: list[str], rounds: int, n_threads: int) -> list[dict[str, float]]:
    import wrenlm

    out = []
    for _ in range(rounds):
        models = [wrenlm.Model(p, n_ctx=256, n_threads=n_threads) for p in paths]
        for m in models:
            if not m.info["causal"]:
                m.embed(["A short sentence to embed."])
            else:
                m.generate("Hello there, how", max_tokens=4)
        loaded = rss_mib()
        for m in models:
            m.close()
        del models
        gc.collect()
        in_use, kept = heap_mib()
        out.append({"rss_loaded": loaded, "rss_closed": rss_mib(), "heap_in_use": in_use, "heap_free_kept": kept})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the rounds as one JSON line")
    args = ap.parse_args()
    base = rss_mib()
    rounds = run(args.models, args.rounds, args.threads)
    if args.json:
        print(json.dumps({"base": base, "rounds": rounds}))
        return
    print(f"{len(args.models)} models at once, {args.threads} threads; RSS before the first load {base:.0f} MiB\n")
    print("| round | RSS loaded (MiB) | RSS after close (MiB) | heap in use (MiB) | heap free (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for k, r in enumerate(rounds, 1):
        print(f"| {k} | {r['rss_loaded']:.0f} | {r['rss_closed']:.0f} | {r['heap_in_use']:.1f} | "
              f"{r['heap_free_kept']:.1f} |")


if __name__ == "__main__":
    main()
