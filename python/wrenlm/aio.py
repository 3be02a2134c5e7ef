"""Async generation and embeddings: ``agenerate``, ``astream``, ``achat``, ``aembed`` and the async
OpenAI-shaped calls ``acreate_completion``, ``acreate_chat_completion``, ``acreate_embedding``.

Every native call runs in a worker thread of the event loop's default executor (the GIL is released
while it computes), so the loop keeps serving other tasks; a stream advances one piece per hop.
Cancelling the awaiting task cancels the generation: the worker returns within one token, the task
waits for that (so when ``await task`` raises CancelledError, no token is being computed any more and
the generation's memory is released), then the CancelledError goes on. Embeddings run batch by batch:
a cancelled ``aembed`` returns at once and computes no further batch, the batch in flight finishing
in its thread.

    >>> async def main(m):
    ...     async for piece in m.astream("Once upon a time", max_tokens=32):
    ...         print(piece, end="", flush=True)
    ...     reply = await m.achat([{"role": "user", "content": "Hi"}], max_tokens=32)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, Protocol, TypeVar, Union

import numpy as np

from wrenlm import openai_api as _api
from wrenlm import openai_types as T
from wrenlm.stream import Stream, TokenLogprob, Usage

if TYPE_CHECKING:
    from wrenlm.model import Model

R = TypeVar("R")
Item = TypeVar("Item")


async def run_blocking(fn: Callable[[], R], cancel: Optional[Callable[[], None]] = None) -> R:
    """fn() in a worker thread, without blocking the event loop.

    If the awaiting task is cancelled: with ``cancel``, calls it, waits (without blocking the loop,
    ignoring further cancellations) for fn to return, then re-raises the CancelledError; without,
    re-raises at once and lets fn finish in its thread, its result dropped.
    """
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, fn))
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "exception never retrieved"
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if cancel is not None:
            cancel()
            while not fut.done():  # within one token
                try:
                    await asyncio.wait([fut])
                except asyncio.CancelledError:
                    pass
        raise


class _Steppable(Protocol[Item]):
    def __next__(self) -> Item: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class AsyncIter(AsyncIterator[Item], Generic[Item]):
    """An async iterator over a blocking one (a :class:`~wrenlm.Stream` or an OpenAI-shaped
    :class:`~wrenlm.openai_api.Run`), each step in a worker thread.

    ``open`` makes the blocking iterator (in a worker thread, on the first step: tokenizing and
    checking happen there, so bad arguments raise from the first ``__anext__``). Cancelling a step
    cancels the generation (see the module docstring); ``aclose()`` stops it, and so does leaving
    an ``async for`` early once the async iterator is closed or collected.
    """

    def __init__(self, open: Callable[[], _Steppable[Item]]) -> None:
        self._open: Optional[Callable[[], _Steppable[Item]]] = open
        self._it: Optional[_Steppable[Item]] = None
        self._done = False

    def __aiter__(self) -> AsyncIter[Item]:
        return self

    async def __anext__(self) -> Item:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._it is None:
                assert self._open is not None
                self._it, self._open = await run_blocking(self._open), None
            it = self._it
            item = await run_blocking(functools.partial(next, it, _END), it.cancel)
        except BaseException:  # cancelled, or failed: nothing more comes
            self._finish()
            raise
        if item is _END:
            self._finish()
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    def _finish(self) -> None:
        # Only ever called when no worker is inside the iterator (run_blocking waited for it).
        self._done = True
        if self._it is not None:
            self._it.close()

    def cancel(self) -> None:
        """Stops the generation from any thread; the step in flight ends within one token."""
        if self._it is not None:
            self._it.cancel()
        self._done = True

    async def aclose(self) -> None:
        """Stops the generation and releases it (waits for a step in flight, if any, to end)."""
        if not self._done:
            self._finish()

    def __del__(self) -> None:
        it = getattr(self, "_it", None)
        if it is not None and not self._done:
            it.cancel()  # whatever thread runs a step, it ends within one token


_END: Any = object()


class AsyncStream(AsyncIter[str]):
    """Text pieces of a generation, asynchronously (what :meth:`Model.astream` returns). Once started,
    the same facts as :class:`~wrenlm.Stream`: ``tokens``, ``logprobs``, ``prompt_logprobs``, and when
    done ``finish_reason`` and ``usage`` (None / empty before the first piece is awaited)."""

    @property
    def _stream(self) -> Optional[Stream]:
        return self._it  # type: ignore[return-value]

    @property
    def tokens(self) -> list[int]:
        return self._stream.tokens if self._stream is not None else []

    @property
    def finish_reason(self) -> Optional[str]:
        return self._stream.finish_reason if self._stream is not None else None

    @property
    def usage(self) -> Optional[Usage]:
        return self._stream.usage if self._stream is not None else None

    @property
    def logprobs(self) -> list[TokenLogprob]:
        return self._stream.logprobs if self._stream is not None else []

    @property
    def prompt_logprobs(self) -> list[TokenLogprob]:
        return self._stream.prompt_logprobs if self._stream is not None else []


# -- the calls -----------------------------------------------------------------------------------------
def astream(lm: Model, prompt: Any, **kwargs: Any) -> AsyncStream:
    """:meth:`Model.stream`, asynchronously."""
    return AsyncStream(lambda: lm.stream(prompt, **kwargs))


async def agenerate(lm: Model, prompt: Any, **kwargs: Any) -> str:
    """:meth:`Model.generate`, asynchronously."""
    return "".join([piece async for piece in astream(lm, prompt, **kwargs)])


async def achat(lm: Model, messages: Sequence[Mapping[str, Any]], *, stream: bool = False,
                **kwargs: Any) -> Union[str, AsyncStream]:
    """:meth:`Model.chat`, asynchronously."""
    pieces = AsyncStream(lambda: lm.chat(messages, stream=True, **kwargs))  # type: ignore[arg-type, return-value]
    return pieces if stream else "".join([piece async for piece in pieces])


async def aembed(lm: Model, texts: Sequence[Any], *, batch_size: int = 32, **kwargs: Any) -> np.ndarray:
    """:meth:`Model.embed`, asynchronously, one batch of batch_size texts per worker-thread call."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence) or len(texts) <= batch_size \
            or isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        return await run_blocking(lambda: lm.embed(texts, batch_size=batch_size, **kwargs))  # embed checks all
    parts = [await run_blocking(functools.partial(lm.embed, texts[i:i + batch_size], batch_size=batch_size,
                                                  **kwargs))
             for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts, axis=0)


async def acreate_completion(lm: Model, /, prompt: Any,
                             **params: Any) -> Union[T.Completion, AsyncIter[T.Completion]]:
    """:meth:`Model.create_completion`, asynchronously: the response, or with ``stream=True`` an async
    iterator of chunks (``async for chunk in await m.acreate_completion(..., stream=True)``)."""
    run = await run_blocking(lambda: _api.prepare_completion(lm, prompt, params))
    return await respond(run, bool(params.get("stream")))


async def acreate_chat_completion(lm: Model, /, messages: Any,
                                  **params: Any) -> Union[T.ChatCompletion, AsyncIter[T.ChatCompletionChunk]]:
    """:meth:`Model.create_chat_completion`, asynchronously (``stream=True``: an async iterator of chunks)."""
    run = await run_blocking(lambda: _api.prepare_chat_completion(lm, messages, params))
    return await respond(run, bool(params.get("stream")))


async def respond(run: _api.Run, stream: bool) -> Any:
    """A prepared Run's whole response, computed in a worker thread (cancelling the awaiting task
    cancels the run within one token), or with stream an :class:`AsyncIter` of its chunks."""
    if stream:
        return AsyncIter(lambda: run)
    try:
        return await run_blocking(run.collect, run.cancel)
    finally:
        run.close()  # run_blocking returned: no worker is inside the run


async def acreate_embedding(lm: Model, /, input: Any, **params: Any) -> T.CreateEmbeddingResponse:
    """:meth:`Model.create_embedding`, asynchronously (batch by batch, as :func:`aembed`)."""
    req = await run_blocking(lambda: _api.prepare_embedding(lm, input, params))
    return _api.embedding_response(lm, req, await aembed(lm, req.ids))


class AsyncMethods:
    """The async methods of Model (Model inherits them); see the module docstring for cancellation."""

    def astream(self, prompt: Any, **kwargs: Any) -> AsyncStream:
        """:meth:`stream` as an async iterator of text pieces; same arguments.

        Example:
            >>> async for piece in m.astream("Once upon a time", max_tokens=32):
            ...     print(piece, end="")
        """
        return astream(self, prompt, **kwargs)  # type: ignore[arg-type]

    async def agenerate(self, prompt: Any, **kwargs: Any) -> str:
        """:meth:`generate`, awaitable; same arguments. Cancelling the task stops it within one token."""
        return await agenerate(self, prompt, **kwargs)  # type: ignore[arg-type]

    async def achat(self, messages: Sequence[Mapping[str, Any]], *, stream: bool = False,
                    **kwargs: Any) -> Union[str, AsyncStream]:
        """:meth:`chat`, awaitable: the reply, or with stream=True an :class:`AsyncStream` of pieces."""
        return await achat(self, messages, stream=stream, **kwargs)  # type: ignore[arg-type]

    async def aembed(self, texts: Sequence[Any], **kwargs: Any) -> np.ndarray:
        """:meth:`embed`, awaitable (one worker-thread call per batch); same arguments and result."""
        return await aembed(self, texts, **kwargs)  # type: ignore[arg-type]

    async def acreate_completion(self, prompt: Any, **params: Any) -> Union[T.Completion, AsyncIter[T.Completion]]:
        """:meth:`create_completion`, awaitable; with stream=True, an async iterator of chunks."""
        return await acreate_completion(self, prompt, **params)  # type: ignore[arg-type]

    async def acreate_chat_completion(self, messages: Any, **params: Any
                                      ) -> Union[T.ChatCompletion, AsyncIter[T.ChatCompletionChunk]]:
        """:meth:`create_chat_completion`, awaitable; with stream=True, an async iterator of chunks."""
        return await acreate_chat_completion(self, messages, **params)  # type: ignore[arg-type]

    async def acreate_embedding(self, input: Any, **params: Any) -> T.CreateEmbeddingResponse:
        """:meth:`create_embedding`, awaitable."""
        return await acreate_embedding(self, input, **params)  # type: ignore[arg-type]


__all__ = ["AsyncIter", "AsyncStream", "run_blocking", "respond", "astream", "agenerate", "achat", "aembed",
           "acreate_completion", "acreate_chat_completion", "acreate_embedding"]
