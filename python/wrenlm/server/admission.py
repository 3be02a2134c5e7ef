"""Admission of requests: at most ``parallel`` are computed at once (together, batched by the engine's
scheduler), at most ``queue`` more wait for a turn in arrival order, and any beyond that is answered
429 at once instead of queueing without bound."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional

from wrenlm.server.errors import too_busy


class Slot:
    """A turn to compute; ``release()`` gives it back (once, however often it is called)."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Optional[Admission] = admission

    def release(self) -> None:
        if self._admission is not None:
            admission, self._admission = self._admission, None
            admission._release()


class Admission:
    """Counts running and waiting requests; runs on the event loop's thread only."""

    def __init__(self, parallel: int, queue: int) -> None:
        self.parallel, self.queue = parallel, queue
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Slot:
        """A slot, after waiting for one if all are taken.

        Raises:
            ApiError: 429 when the queue is full.
        """
        if self.running < self.parallel and not self._waiters:
            self.running += 1
            return Slot(self)
        if len(self._waiters) >= self.queue:
            raise too_busy(self.running, len(self._waiters))
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn  # _release() counted this request as running before waking it
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release()  # granted, but the waiter went away (cancelled, timed out) meanwhile
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise
        return Slot(self)

    def _release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to it: running stays the same
                return
        self.running -= 1
