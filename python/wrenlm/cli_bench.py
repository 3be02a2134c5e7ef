"""``wrenlm bench``: a one-minute speed measurement of a model on this machine (see
:mod:`wrenlm.benchmark` for what is measured), printed as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """\
Measure the model on this machine for about --seconds (default 60): prefill speed and time to first
token on a --prompt-tokens prompt (default 512), then decode speed with 1, 4 and 8 sequences at once
(--concurrency; aggregate tokens per second of the sequences together, after their first token), each
sequence making --tokens new tokens per run (default 128). Greedy, end-of-generation ignored, prefix
cache off. Each measurement gets an equal share of the time and completes at least one run. Progress
goes to stderr; the table (or --json) to stdout."""


def _concurrency(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 1,4,8; got {value!r}") from None
    if not out or any(not 1 <= n <= 256 for n in out):
        raise argparse.ArgumentTypeError(f"each number of sequences must be in 1..256, got {value!r}")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, metavar="S",
                   help="time budget in seconds, shared evenly between the measurements (default 60)")
    p.add_argument("--prompt-tokens", type=int, default=512, metavar="N",
                   help="prompt length of the prefill measurement (default 512)")
    p.add_argument("--tokens", type=int, default=128, metavar="N",
                   help="new tokens per sequence and run in the decode measurements (default 128)")
    p.add_argument("--concurrency", type=_concurrency, default=[1, 4, 8], metavar="N,N,...",
                   help="numbers of sequences decoded at once (default 1,4,8)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object instead of a table")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    """The command."""
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    for flag, value, low in (("--prompt-tokens", args.prompt_tokens, 2), ("--tokens", args.tokens, 2)):
        if value < low:
            raise ValueError(f"{flag} must be at least {low}, got {value}")
    import wrenlm
    from wrenlm import benchmark
    from wrenlm._progress import Progress

    show = Progress(args.seconds, desc="bench: loading", unit="s", enabled=not args.quiet, steps=True)
    with wrenlm.Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads, lora=args.lora,
                      cache_mb=0) as model:
        def progress(label: str, used: float) -> None:
            show.update(used)
            show.describe(f"bench: {label}")

        try:
            result = benchmark.run(model, seconds=args.seconds, prompt_tokens=args.prompt_tokens,
                                   tokens=args.tokens, concurrency=args.concurrency, progress=progress)
        finally:
            show.close()  # the bar goes before the table, or before an error message
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    sys.stdout.flush()
    return 0
