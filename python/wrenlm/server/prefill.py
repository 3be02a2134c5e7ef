"""Shared prompt starts are computed once, also when their requests arrive together.

The engine's prefix cache offers a prompt to later requests once it has been evaluated; requests
that arrive while it is still being evaluated would each compute it again (16 clients sending the same
system prompt at once: 16 prefills of it). So a request whose prompt shares at least ``min_shared``
tokens with a prompt being evaluated right now waits for that evaluation (its first chunk) and then
starts from the cache, computing only the rest of its prompt. Only requests that did not wait lead;
a follower never waits twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


class SharedPrefills:
    """The prompts being evaluated on one model, each with an event set when its evaluation is done.
    Used on the event loop's thread only."""

    def __init__(self, min_shared: int = 64) -> None:
        self.min_shared = min_shared
        self._leaders: list[tuple[Sequence[int], asyncio.Event]] = []

    async def turn(self, ids: Sequence[int], timeout: float) -> asyncio.Event | None:
        """Waits (at most timeout seconds) for the evaluation of the prompt sharing the longest start
        with ids, if one is running. Returns the event to set when this prompt's evaluation is done if
        it leads (nothing to wait for), else None.

        Raises:
            asyncio.TimeoutError: the wait took longer than timeout.
        """
        best, shared = None, self.min_shared - 1
        for other, done in self._leaders:
            k = _common(ids, other)
            if k > shared and not done.is_set():
                best, shared = done, k
        if best is not None:
            await asyncio.wait_for(best.wait(), timeout)
            return None
        done = asyncio.Event()
        self._leaders.append((ids, done))
        return done

    def finished(self, done: asyncio.Event | None) -> None:
        """The leader's evaluation is done (or it ended): its followers go on."""
        if done is not None and not done.is_set():
            done.set()
            self._leaders = [(ids, ev) for ids, ev in self._leaders if ev is not done]
