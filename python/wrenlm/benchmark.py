"""A quick speed measurement of a model on this machine: prefill, time to first token, and decode
with 1, 4, 8... sequences at once (what ``wrenlm bench`` prints).

    >>> from wrenlm import benchmark
    >>> with wrenlm.Model(cache_mb=0) as m:
    ...     print(benchmark.run(m, seconds=30).table())

Every figure comes from ``Model.stream`` generations (greedy, end-of-generation ignored so each
sequence makes exactly the tokens asked), timed token by token as they arrive:

- prefill: one sequence with a ``prompt_tokens``-token prompt and one new token. Time to first token
  (TTFT) is from the call to that token, which the prompt's prefill pass produces; prefill tok/s is
  prompt tokens / TTFT.
- decode with N sequences: N different ``decode_prompt``-token prompts submitted together, each making
  ``tokens`` tokens; the engine runs them in shared forward passes. Decode tok/s is the tokens that
  arrive after every sequence has its first one, divided by the time from then to the last token:
  aggregate over the N sequences, prefill excluded. TTFT is the mean over the sequences.

The time budget is shared out evenly between the measurements; each repeats its run while its share
lasts and always completes at least one, so a slow model can take longer than the budget. The
model's prefix cache must be off (``cache_mb=0``), or repeated prompts would not be computed again.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

# Prompt material: plain English prose, tokenized and cut to the lengths asked for.
_TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps out of "
    "habit rather than need. From the lamp room he could see the whole bay: fishing boats returning with "
    "their lanterns lit, the harbour wall where children waited for their fathers, and beyond it the "
    "long grey line of the open sea. He wrote in his logbook the direction of the wind, the height of "
    "the swell, the ships that passed and the time the light was lit. Some nights nothing happened at "
    "all, and those were the nights he liked best, with only the slow turn of the lens and the sound of "
    "the water against the rocks below. In winter the storms came from the north-west and the spray "
    "reached the gallery rail, salt crusting on the glass until he went out with a cloth and a bucket. "
)

#: Progress callback: (label of the measurement running, seconds of the budget used so far).
ProgressFn = Callable[[str, float], None]


@dataclass
class Measurement:
    """One row of the table: a measurement repeated ``runs`` times.

    ``prompt_tokens`` and ``tokens`` are per sequence and run (tokens: new tokens asked for);
    ``generated`` counts the tokens that arrived over all runs and sequences (= runs x sequences x
    tokens); ``measured_tokens`` the tokens the rate counts (prefill: prompt tokens; decode: the tokens
    after each sequence's first) and ``seconds`` the time they took (prefill: to the first token;
    decode: from every sequence having its first token to the last token), both summed over runs;
    ``tokens_per_second`` = measured_tokens / seconds; ``ttft_ms``: mean time to first token."""

    name: str
    sequences: int
    prompt_tokens: int
    tokens: int
    runs: int = 0
    generated: int = 0
    measured_tokens: int = 0
    seconds: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0


@dataclass
class BenchResult:
    """Everything ``wrenlm bench`` reports: the machine, the model, and one Measurement per row."""

    model: str
    architecture: str
    quant: str
    n_params: int
    threads: int
    cpu: str
    budget_seconds: float
    elapsed_seconds: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """An aligned text table, one row per measurement, with a header line and a legend."""
        head = (f"{self.model}: {self.architecture}, {_params(self.n_params)} params, {self.quant}; "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}; {self.cpu}; {self.elapsed_seconds:.0f} s")
        cols = ["test", "sequences", "prompt tok", "new tok", "runs", "tok/s", "TTFT ms"]
        rows = [[m.name, str(m.sequences), str(m.prompt_tokens), str(m.tokens), str(m.runs),
                 f"{m.tokens_per_second:.1f}", f"{m.ttft_ms:.1f}"] for m in self.measurements]
        widths = [max(len(r[k]) for r in [cols, *rows]) for k in range(len(cols))]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

        legend = ("tok/s: prefill = prompt tokens per second; decode = new tokens per second of all "
                  "sequences together, after each has its first token. TTFT: mean time to first token.")
        return "\n".join([head, line(cols), line(["-" * w for w in widths]), *map(line, rows), legend])


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def prompts(model: Any, n: int, length: int) -> list[list[int]]:
    """n different prompts of exactly length token ids each (the BOS token first when the model adds
    one), cut from the prose above at different offsets."""
    head = model.tokenize("", add_bos=True, special=False)  # [BOS] or []
    body_len = length - len(head)
    if body_len < 1:
        raise ValueError(f"prompts must be longer than {len(head)} token(s), got {length}")
    text = _TEXT
    body = model.tokenize(text, add_bos=False, special=False)
    while len(body) < body_len + 8 * n:
        text += _TEXT
        body = model.tokenize(text, add_bos=False, special=False)
    return [head + body[8 * k: 8 * k + body_len] for k in range(n)]


@dataclass
class _RunTiming:
    ttft: list[float]        # seconds from submission to each sequence's first token
    decode_tokens: int       # tokens that arrived after every sequence had its first one
    decode_seconds: float    # from that moment to the last token
    generated: int           # every token that arrived


def timed_run(model: Any, batch: Sequence[Sequence[int]], tokens: int) -> _RunTiming:
    """Generates tokens new tokens for each prompt of batch, all submitted together, and times them.

    Each sequence's tokens are read in turn (one per sequence per round), so every sequence stays
    within the engine's lookahead and they advance in the same forward passes."""
    streams = [model.stream(list(p), max_tokens=tokens, ignore_eos=True) for p in batch]
    gens = [s._gen for s in streams]  # the native generators: one next() per token, '' included
    try:
        t0 = time.perf_counter()
        for g in gens:
            g.start()
        ttft = []
        for g in gens:
            if g.next() is None:
                raise RuntimeError("a generation ended before its first token")
            ttft.append(time.perf_counter() - t0)
        t_first = t_last = time.perf_counter()
        decode_tokens = 0
        alive = list(gens)
        while alive:
            still = []
            for g in alive:
                if g.next() is not None:
                    decode_tokens += 1
                    t_last = time.perf_counter()
                    still.append(g)
            alive = still
        generated = sum(int(g.n_generated) for g in gens)
        for s in streams:
            if s.usage.cached_tokens:
                raise ValueError("the prefix cache served a prompt: measure with Model(..., cache_mb=0)")
    finally:
        for s in streams:
            s.close()
    return _RunTiming(ttft, decode_tokens, t_last - t_first, generated)


def run(model: Any, *, seconds: float = 60.0, prompt_tokens: int = 512, tokens: int = 128,
        decode_prompt: int = 32, concurrency: Sequence[int] = (1, 4, 8),
        progress: Optional[ProgressFn] = None) -> BenchResult:
    """Measures model; see the module's docstring. progress(label, seconds of the budget used) is
    called before each run and after each measurement.

    Raises:
        ValueError: a bad argument, a context window (``model.n_ctx``) too small for the prompts and
            tokens asked, or a model whose prefix cache is on.
    """
    from wrenlm._args import check_float, check_int

    seconds = check_float("seconds", seconds)
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    prompt_tokens = int(check_int("prompt_tokens", prompt_tokens, minimum=2))  # type: ignore[arg-type]
    tokens = int(check_int("tokens", tokens, minimum=2))  # type: ignore[arg-type]
    decode_prompt = int(check_int("decode_prompt", decode_prompt, minimum=2))  # type: ignore[arg-type]
    concurrency = [int(check_int("concurrency", c, minimum=1, maximum=256)) for c in concurrency]  # type: ignore[arg-type]
    if not concurrency:
        raise ValueError("concurrency must list at least one number of sequences")
    if not model.info.get("causal", True):
        raise ValueError(f"bench needs a causal language model; {model.info['architecture']!r} is not one")
    if model.cache_info["budget"] > 0:
        raise ValueError("bench needs the prefix cache off: load the model with cache_mb=0")
    for what, need in (("prompt_tokens + 1", prompt_tokens + 1), ("decode_prompt + tokens", decode_prompt + tokens)):
        if need > model.n_ctx:
            raise ValueError(f"{what} = {need} exceeds the context window n_ctx={model.n_ctx}")

    info = model.info
    result = BenchResult(model=os.path.basename(model.path), architecture=str(info["architecture"]),
                         quant=str(info["quant"]), n_params=int(info["n_params"]),
                         threads=int(model._e.n_threads), cpu=cpu_name(), budget_seconds=seconds)
    long_prompt = prompts(model, 1, prompt_tokens)
    short = prompts(model, max(concurrency), decode_prompt)
    timed_run(model, [short[0][:8]], 4)  # warm-up (first touch of the weights and buffers), not counted

    plan = [Measurement("prefill", 1, prompt_tokens, 1)]
    plan += [Measurement("decode", n, decode_prompt, tokens) for n in concurrency]
    start = time.perf_counter()
    for k, m in enumerate(plan):
        label = f"{m.name}, {m.sequences} sequence{'s' if m.sequences > 1 else ''}"
        used = time.perf_counter() - start
        deadline = start + used + (seconds - used) / (len(plan) - k)  # what is left, shared evenly
        ttfts: list[float] = []
        while m.runs == 0 or time.perf_counter() < deadline:
            if progress is not None:
                progress(label, time.perf_counter() - start)
            batch = long_prompt if m.name == "prefill" else short[:m.sequences]
            t = timed_run(model, batch, m.tokens)
            m.runs += 1
            m.generated += t.generated
            ttfts += t.ttft
            if m.name == "prefill":
                m.measured_tokens += m.prompt_tokens
                m.seconds += t.ttft[0]
            else:
                m.measured_tokens += t.decode_tokens
                m.seconds += t.decode_seconds
        m.ttft_ms = 1000 * sum(ttfts) / len(ttfts)
        m.tokens_per_second = m.measured_tokens / m.seconds if m.seconds > 0 else 0.0
        result.measurements.append(m)
        if progress is not None:
            progress(label, time.perf_counter() - start)
    result.elapsed_seconds = time.perf_counter() - start
    return result
