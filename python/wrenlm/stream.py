"""The object ``Model.stream()`` returns: an iterator of text pieces that also reports, as it goes and
when it is done, the tokens, their log-probabilities, why it stopped and how many tokens it used."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class TopLogprob:
    """One alternative at a position: token id, its text, and its log-probability."""

    id: int
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """A token with its log-probability under the model (log_softmax of the raw logits, before
    logit_bias, penalties, temperature or filters) and the ``logprobs`` most likely tokens at its
    position. ``token`` is the token's text (a token may hold part of a UTF-8 character: its
    ``bytes`` are exact). The first prompt token has ``logprob`` None (nothing precedes it)."""

    id: int
    token: str
    bytes: bytes
    logprob: Optional[float]
    top_logprobs: list[TopLogprob]


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation (OpenAI's ``usage``); ``cached_tokens``: prompt tokens whose
    keys and values were reused rather than computed."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Stream(Iterator[str]):
    """Text pieces of a generation in progress (never a broken UTF-8 character).

    While or after iterating: ``tokens`` (generated ids so far), ``logprobs`` (with ``logprobs=n``),
    ``prompt_logprobs`` (with ``echo=True``); once exhausted: ``finish_reason`` (``"stop"`` for a
    stop string or the end-of-generation token, ``"length"`` for max_tokens) and ``usage``.
    ``close()`` stops it early; ``cancel()`` does the same from any thread, also while another
    thread is inside ``next()`` (it ends within one token, ``finish_reason`` ``"cancelled"``).
    """

    def __init__(self, native: Any, token_bytes: Callable[[int], bytes]) -> None:
        self._gen: Any = native
        self._token_bytes = token_bytes
        self._done = False
        self._logprobs: list[TokenLogprob] = []

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        while self._gen is not None and not self._done:
            piece = self._gen.next()
            if piece is None:
                self._done = True
                break
            if piece:
                return piece
        raise StopIteration

    def close(self) -> None:
        """Stops the generation: no more tokens are computed, and its memory is released."""
        if not self._done:
            self._gen.cancel()
            while self._gen.next() is not None:  # settles it: finish_reason set, the session freed
                pass
        self._done = True

    def cancel(self) -> None:
        """Stops the generation from any thread: a ``next()`` running elsewhere returns within one
        token (the text held back, then the end); ``finish_reason`` becomes ``"cancelled"``."""
        self._gen.cancel()

    @property
    def tokens(self) -> list[int]:
        return list(self._gen.tokens)

    @property
    def finish_reason(self) -> Optional[str]:
        """None while running; then ``"stop"`` or ``"length"`` (OpenAI's values), or ``"cancelled"``
        after ``cancel()``/``close()``."""
        reason = self._gen.finish_reason
        return {"": None, "eos": "stop"}.get(reason, reason)

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=int(self._gen.n_prompt_tokens), completion_tokens=int(self._gen.n_generated),
                     cached_tokens=int(self._gen.n_cached_tokens))

    @property
    def logprobs(self) -> list[TokenLogprob]:
        """One entry per generated token so far (empty unless ``logprobs`` was given)."""
        native = self._gen.logprobs
        self._logprobs.extend(self._convert(e) for e in native[len(self._logprobs):])
        return list(self._logprobs)

    @property
    def prompt_logprobs(self) -> list[TokenLogprob]:
        """One entry per prompt token (empty unless ``echo=True``), once generation has started."""
        return [self._convert(e) for e in self._gen.prompt_logprobs]

    def _convert(self, entry: tuple[int, float, list[tuple[int, float]]]) -> TokenLogprob:
        token_id, lp, top = entry
        raw = self._token_bytes(token_id)
        return TokenLogprob(id=token_id, token=raw.decode("utf-8", "replace"), bytes=raw,
                            logprob=None if math.isnan(lp) else lp,
                            top_logprobs=[TopLogprob(i, self._token_bytes(i).decode("utf-8", "replace"), v)
                                          for i, v in top])
