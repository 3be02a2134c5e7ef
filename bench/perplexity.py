"""Perplexity per weight type: wrenlm beside llama.cpp on the same file, text and windows.

Both engines score the same token ids (wrenlm's tokenization of the text, which the tokenizer tests
hold equal to llama.cpp's) on the windows llama.cpp's `perplexity` tool uses (see
wrenlm.perplexity): windows of --n-ctx tokens, each in a fresh context, scored on its second half.
wrenlm's figure is its generation path (8-bit activations), llama.cpp's its own; --exact adds
wrenlm's float32 path. The rate column is window tokens per second of each engine's evaluation
(prompt processing at batch n_ctx, interleaved window by window on the same threads): wrenlm's
includes its log-softmax; llama.cpp's is its eval call alone, which computes the logits of every
position (llama-cpp-python's logits_all) where wrenlm computes those of the scored half.

The text: Python's own pydoc topics (`pydoc_data.topics`, the Language Reference pages `help()`
shows), English prose and code that every Python installation has; the same Python version gives
the same text. Models as in bench/compare.py (smollm2, llama1b-MIX@llama.cpp, a GGUF path), plus
smollm2-MIX@llama.cpp: SmolLM2's Q4_1 file requantized by llama.cpp's quantizer, and
smollm2-MIX@wrenlm: the same file requantized by `wrenlm quantize`.

    python bench/perplexity.py smollm2 smollm2-q4_k_m@llama.cpp llama1b-q4_k_m@llama.cpp --windows 8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent  # on sys.path when run as a script (compare, llama_quant)


def reference_text() -> str:
    """Python's pydoc topics, in sorted order: a few hundred thousand characters of real English."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def log_softmax_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits[j])[targets[j]] per row, in float64."""
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    return np.log(np.exp(x).sum(axis=1)) - x[np.arange(len(targets)), targets]


class LlamaCppScorer:
    """llama.cpp (llama-cpp-python) scoring windows as its perplexity tool does: one fresh context per
    window, every position's logits, the second half scored."""

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                                   logits_all=True, n_threads=threads, n_threads_batch=threads, verbose=False)

    def nll(self, ids: list[int], first: int) -> np.ndarray:
        return self.timed_nll(ids, first)[0]

    def timed_nll(self, ids: list[int], first: int) -> tuple[np.ndarray, float]:
        """The window's scores and the seconds of llama.cpp's evaluation alone (not the copy of its
        logits into Python nor the log-softmax here, which its own perplexity tool does not pay)."""
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(ids)
        seconds = time.perf_counter() - t0
        logits = np.asarray(self.llm.scores[first:len(ids) - 1])
        return log_softmax_nll(logits, np.asarray(ids[first + 1:])), seconds

    def close(self) -> None:
        self.llm.close()


def resolve(spec: str) -> tuple[str, Path]:
    import compare
    import llama_quant

    key = spec.lower()
    if key.startswith("smollm2-") and key.endswith("@llama.cpp"):
        mix = key[len("smollm2-"):-len("@llama.cpp")]
        return key, llama_quant.quantize(compare.smollm2_path(), mix, log=compare.log, allow_requantize=True,
                                         out_dir=llama_quant.cache_dir())
    if key.startswith("smollm2-") and key.endswith("@wrenlm"):  # the same source through wrenlm quantize
        import wrenlm

        mix = key[len("smollm2-"):-len("@wrenlm")].upper()
        src = compare.smollm2_path()
        out = llama_quant.cache_dir() / f"{src.stem}.{mix}.wrenlm.gguf"
        if not out.exists():
            wrenlm.quantize(src, out, type=mix)
        return key, out
    return compare.resolve_model(spec)


def measure(key: str, path: Path, args, text: str) -> dict:
    import wrenlm
    from wrenlm import perplexity as ppl

    model = wrenlm.Model(str(path), n_ctx=args.n_ctx, n_threads=args.threads)
    ids = model.tokenize(text)
    wins = model._perplexity_windows(ids, args.n_ctx)[:args.windows]
    runs: dict[str, list[np.ndarray]] = {"wrenlm": [], "llama.cpp": []}
    seconds = {"wrenlm": 0.0, "llama.cpp": 0.0}
    if args.exact:
        runs["wrenlm exact"], seconds["wrenlm exact"] = [], 0.0
    peer = LlamaCppScorer(path, args.n_ctx, args.threads)
    try:
        for k, w in enumerate(wins, 1):
            for name in runs:  # interleaved: each window by each engine in turn
                t0 = time.perf_counter()
                if name == "llama.cpp":
                    nll, took = peer.timed_nll(w.ids, w.first)
                else:
                    nll = model._e.token_nll(w.ids, first=w.first, exact=name == "wrenlm exact")
                    took = time.perf_counter() - t0
                seconds[name] += took
                runs[name].append(np.asarray(nll))
            print(f"  [{k}/{len(wins)}] " + "  ".join(f"{n} {ppl.running_perplexity(r):.4f}" for n, r in runs.items()),
                  file=sys.stderr, flush=True)
    finally:
        peer.close()
        model.close()
    evaluated = sum(len(w.ids) for w in wins)
    out = {"model": key, "path": str(path), "size_mib": path.stat().st_size / 2**20, "n_ctx": args.n_ctx,
           "windows": len(wins), "quant": wrenlm_quant(path)}
    for name, r in runs.items():
        res = ppl.summarize(r, n_ctx=len(wins[0].ids), n_tokens=len(ids))
        out[name] = {"ppl": res.perplexity, "stderr": res.stderr, "tok_s": evaluated / seconds[name]}
    ours, theirs = out["wrenlm"]["ppl"], out["llama.cpp"]["ppl"]
    out["delta_pct"] = 100.0 * (ours - theirs) / theirs
    return out


def wrenlm_quant(path: Path) -> str:
    import wrenlm

    with wrenlm.Model(str(path), n_ctx=16, n_threads=1) as m:
        return str(m.info["quant"])


def render(rows: list[dict], args, facts: dict) -> str:
    exact = args.exact
    head = ("| model | main type | MiB | PPL wrenlm | PPL llama.cpp | wrenlm − llama.cpp |"
            + (" PPL wrenlm exact |" if exact else "") + " tok/s wrenlm | tok/s llama.cpp | ratio |")
    sep = "|" + "---|" * (head.count("|") - 1)
    lines = [f"Perplexity on Python {facts['python']}'s pydoc topics, {args.windows} windows of {args.n_ctx} tokens "
             f"(second halves scored), {args.threads} threads, {facts['cpu']}, {facts['date']}.", "", head, sep]
    for r in rows:
        w, c = r["wrenlm"], r["llama.cpp"]
        cells = [r["model"], r["quant"], f"{r['size_mib']:.0f}", f"{w['ppl']:.4f} ± {w['stderr']:.3f}",
                 f"{c['ppl']:.4f} ± {c['stderr']:.3f}", f"{r['delta_pct']:+.2f}%"]
        if exact:
            cells.append(f"{r['wrenlm exact']['ppl']:.4f}")
        cells += [f"{w['tok_s']:.0f}", f"{c['tok_s']:.0f}", f"{w['tok_s'] / c['tok_s']:.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--windows", type=int, default=8, help="windows scored per model (from the text's start)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exact", action="store_true", help="also wrenlm's float32 path")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "perplexity.md")
    args = ap.parse_args(argv)
    import compare

    facts = compare.machine_facts()
    facts = {"python": ".".join(map(str, sys.version_info[:3])), "cpu": facts.get("cpu", "?"),
             "date": time.strftime("%Y-%m-%d")}
    text = reference_text()
    rows = []
    for spec in args.models:
        key, path = resolve(spec)
        print(f"{key}: {path}", file=sys.stderr, flush=True)
        rows.append(measure(key, path, args, text))
    md = render(rows, args, facts)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps({"facts": facts, "rows": rows}, indent=1))
    if any(not math.isfinite(r["wrenlm"]["ppl"]) for r in rows):
        raise SystemExit("non-finite perplexity")


if __name__ == "__main__":
    main()
