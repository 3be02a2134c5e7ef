"""Perplexity of a text under a model, measured on the windows llama.cpp's ``perplexity`` tool uses.

The token ids of the whole text are cut into consecutive windows of ``n_ctx`` tokens (a last,
shorter remainder is dropped). Each window is evaluated in a fresh context, its first token
replaced by BOS when the model's tokenizer adds one, and only the predictions of its second half
are scored: every scored token has seen at least ``n_ctx / 2`` tokens of context, so the number
measures the model rather than the cut. These are llama.cpp's rules, so the two tools' figures on
the same file, text and ``n_ctx`` are directly comparable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

# (window index from 1, number of windows, perplexity of the windows so far)
ProgressFn = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Window:
    """One evaluated window: its token ids (BOS already in place) and the first scored position."""

    start: int  # offset of the window in the text's token ids
    ids: list[int]
    first: int  # ids[first + 1:] are scored, each predicted from the ids before it


@dataclass(frozen=True)
class PerplexityResult:
    """What :meth:`wrenlm.Model.perplexity` measured. ``float(result)`` is the perplexity.

    Attributes:
        perplexity: exp(mean negative log-likelihood) over every scored token.
        stderr: standard error of that perplexity (from the spread of the per-token values).
        nll: float64 array, the negative log-likelihood (nats) of each scored token, window by window.
        window_perplexity: one perplexity per window.
        n_ctx: tokens per window.
        n_tokens: tokens in the text (windows use ``n_windows * n_ctx`` of them).
    """

    perplexity: float
    stderr: float
    nll: np.ndarray = field(repr=False)
    window_perplexity: list[float] = field(repr=False)
    n_ctx: int
    n_tokens: int

    @property
    def n_windows(self) -> int:
        return len(self.window_perplexity)

    def __float__(self) -> float:
        return self.perplexity

    def __str__(self) -> str:
        return (f"PPL = {self.perplexity:.4f} +/- {self.stderr:.4f} ({self.n_windows} windows of {self.n_ctx} tokens, "
                f"{self.nll.size} scored)")


def windows(ids: Sequence[int], n_ctx: int, bos_id: Optional[int]) -> Iterator[Window]:
    """The windows of ids that llama.cpp scores with this n_ctx (see the module's docstring).

    Text shorter than one window becomes a single window of all its tokens, scored from the half.
    """
    n_windows = len(ids) // n_ctx
    if n_windows == 0:
        n_windows, n_ctx = 1, len(ids)
    for w in range(n_windows):
        chunk = list(ids[w * n_ctx:(w + 1) * n_ctx])
        if bos_id is not None:
            chunk[0] = bos_id
        yield Window(start=w * n_ctx, ids=chunk, first=n_ctx // 2)


def summarize(per_window: Sequence[np.ndarray], n_ctx: int, n_tokens: int) -> PerplexityResult:
    """The result from the per-token negative log-likelihoods of each window."""
    nll = np.concatenate(per_window).astype(np.float64)
    mean = float(nll.mean())
    ppl = math.exp(mean)
    # Delta method: d exp(m) = exp(m) dm, with dm the standard error of the mean.
    sem = float(nll.std(ddof=1) / math.sqrt(nll.size)) if nll.size > 1 else float("nan")
    return PerplexityResult(perplexity=ppl, stderr=ppl * sem, nll=nll,
                            window_perplexity=[math.exp(float(w.mean())) for w in per_window],
                            n_ctx=n_ctx, n_tokens=n_tokens)


def running_perplexity(per_window: Sequence[np.ndarray]) -> float:
    """exp(mean nll) over the windows scored so far."""
    total = sum(float(w.sum()) for w in per_window)
    count = sum(w.size for w in per_window)
    return math.exp(total / count)
