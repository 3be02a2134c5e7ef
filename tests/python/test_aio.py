"""Async calls: agenerate / astream / achat / aembed and acreate_*.

Oracles: the sync calls with the same arguments (the async layer must not change results); for
"never blocks the event loop", a ticker coroutine whose longest silence during a generation is
measured (a blocked loop would be silent for the whole generation); for cancellation, the native
generator's own finish_reason and token count, and the time cancellation takes against the measured
time per token. Plain asyncio.run: no pytest plugin needed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np
import pytest
import wrenlm

PROMPT = "Once upon a time"
MESSAGES = [{"role": "user", "content": "Tell me about cats."}]


def strip(response):
    """A response without the fields that differ per request (id, created)."""
    if isinstance(response, dict):
        return {k: strip(v) for k, v in response.items() if k not in ("id", "created")}
    if isinstance(response, list):
        return [strip(v) for v in response]
    return response


async def collect(aiter):
    return [x async for x in aiter]


@pytest.fixture(scope="module")
def uncached(smollm2_path):
    """SmolLM2 without the prefix cache: a call and its twin then both compute their prompt, so
    their usage (cached_tokens included) is equal too."""
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, cache_mb=0)
    yield m
    m.close()


def test_async_results_equal_sync(uncached):
    smollm2 = uncached
    kw = dict(max_tokens=16, temperature=0.8, top_p=0.9, seed=4)

    async def main():
        s = smollm2.astream(PROMPT, logprobs=2, **kw)
        assert s.finish_reason is None and s.tokens == [] and s.usage is None  # not started
        pieces = await collect(s)
        ref = smollm2.stream(PROMPT, logprobs=2, **kw)
        assert pieces == list(ref)
        assert (s.tokens, s.finish_reason, s.usage, s.logprobs) == (ref.tokens, ref.finish_reason, ref.usage,
                                                                     ref.logprobs)
        assert await smollm2.agenerate(PROMPT, **kw) == smollm2.generate(PROMPT, **kw)
        assert await smollm2.achat(MESSAGES, **kw) == smollm2.chat(MESSAGES, **kw)
        assert "".join(await collect(await smollm2.achat(MESSAGES, stream=True, **kw))) == smollm2.chat(MESSAGES, **kw)
        assert strip(await smollm2.acreate_completion(PROMPT, n=2, **kw)) == \
            strip(smollm2.create_completion(PROMPT, n=2, **kw))
        assert strip(await smollm2.acreate_chat_completion(MESSAGES, logprobs=True, **kw)) == \
            strip(smollm2.create_chat_completion(MESSAGES, logprobs=True, **kw))
        chunks = await collect(await smollm2.acreate_chat_completion(
            MESSAGES, stream=True, stream_options={"include_usage": True}, **kw))
        assert strip(chunks) == strip(list(smollm2.create_chat_completion(
            MESSAGES, stream=True, stream_options={"include_usage": True}, **kw)))
        chunks = await collect(await smollm2.acreate_completion(PROMPT, stream=True, **kw))
        assert strip(chunks) == strip(list(smollm2.create_completion(PROMPT, stream=True, **kw)))

    asyncio.run(main())


def test_aembed_equals_embed(minilm_dir):
    texts = ["a cat", "a dog", "the weather today", "안녕하세요"]
    with wrenlm.Model(str(minilm_dir), n_threads=1) as m:
        async def main():
            np.testing.assert_array_equal(await m.aembed(texts, batch_size=3), m.embed(texts))  # two batches
            np.testing.assert_array_equal(await m.aembed(texts[:1]), m.embed(texts[:1]))
            assert strip(await m.acreate_embedding(texts)) == strip(m.create_embedding(texts))
            with pytest.raises(ValueError, match="wrap a single text"):
                await m.aembed("not a list")

        asyncio.run(main())


def test_concurrent_generations_on_one_model(smollm2):
    """Tasks sharing a model (the engine serializes its calls) get what they get alone."""
    prompts = [PROMPT, "The capital of France is", "def add(a, b):"]

    async def main():
        return await asyncio.gather(*(smollm2.agenerate(p, max_tokens=12) for p in prompts))

    assert asyncio.run(main()) == [smollm2.generate(p, max_tokens=12) for p in prompts]


async def ticker(ticks: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.005)


def test_generation_never_blocks_the_loop(smollm2_path):
    """During a generation (a long prompt's prefill in one native call, then a token per call), a
    ticker coroutine keeps running: its longest silence is a small part of the generation's time;
    a loop blocked by the generation would be silent for all of it."""
    with wrenlm.Model(smollm2_path, n_ctx=1024, n_threads=1) as m:
        long_prompt = m.tokenize("The quick brown fox jumps over the lazy dog. " * 40)[:400]

        async def main():
            ticks: list[float] = []
            stop = asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            await asyncio.sleep(0.02)
            t0 = time.perf_counter()
            text = await m.agenerate(long_prompt, max_tokens=48, ignore_eos=True)
            t1 = time.perf_counter()
            stop.set()
            await tick_task
            during = [t for t in ticks if t0 <= t <= t1]
            gaps = np.diff([t0, *during, t1])
            return text, t1 - t0, len(during), float(gaps.max())

        text, duration, n_ticks, longest = asyncio.run(main())
    print(f"generation {duration:.3f} s, {n_ticks} ticks, longest silence {longest * 1000:.1f} ms")
    assert text
    assert n_ticks >= 10
    assert longest < 0.25 * duration


def test_cancelling_the_task_stops_generation_within_a_token(smollm2_path):
    """An endless generation (max_tokens=None, ignore_eos) consumed by a task, cancelled after a few
    pieces: the task ends within a few token times (measured on this run), the native generator
    reports "cancelled" having made at most the one token in flight, the loop kept ticking, and the
    model works afterwards."""
    with wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=1) as m:
        async def main():
            s = m.astream(PROMPT, max_tokens=None, ignore_eos=True)
            stamps: list[float] = []
            seen = {"tokens": 0}

            async def consume():
                async for _ in s:
                    stamps.append(time.perf_counter())
                    seen["tokens"] = len(s.tokens)  # read between steps: no worker is inside the stream

            ticks: list[float] = []
            stop = asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            task = asyncio.create_task(consume())
            while len(stamps) < 8:
                await asyncio.sleep(0.002)
            token_time = statistics.median(np.diff(stamps[2:]))
            t0 = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            latency = time.perf_counter() - t0
            stop.set()
            await tick_task
            return s, token_time, latency, seen["tokens"], ticks

        s, token_time, latency, tokens_at_cancel, ticks = asyncio.run(main())
        print(f"token {token_time * 1000:.1f} ms, cancel took {latency * 1000:.1f} ms")
        assert s.finish_reason == "cancelled"
        assert len(s.tokens) <= tokens_at_cancel + 1  # only the token in flight
        # the step in flight is one token: allow scheduling noise on a shared machine, not a generation
        assert latency < max(10 * token_time, 0.25)
        # the loop kept ticking through the stream: a loop blocked by the generation would fall silent
        # for the 8 token times before the cancel (the tick count itself depends on the token speed)
        assert len(ticks) >= 5
        span = ticks[-1] - ticks[0]
        assert float(np.diff(ticks).max()) < 0.5 * span
        n = len(s.tokens)
        time.sleep(0.1)
        assert len(s.tokens) == n  # nothing runs on in the background
        assert m.generate("The capital of France is", max_tokens=3)


@pytest.mark.parametrize("call", ["agenerate", "acreate_chat_completion", "achat"])
def test_cancelling_a_whole_response_stops_it(smollm2_path, call):
    """Awaited calls that return a whole response stop as quickly: the task would otherwise run for
    ~1800 tokens."""
    with wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=1) as m:
        no_end = {m._e.eos_id: -100, m.tokenize("<|im_end|>", add_bos=False)[0]: -100}

        async def main():
            if call == "agenerate":
                coro = m.agenerate(PROMPT, max_tokens=None, ignore_eos=True)
            elif call == "achat":
                coro = m.achat(MESSAGES, max_tokens=1800, logit_bias=no_end)
            else:
                coro = m.acreate_chat_completion(MESSAGES, max_tokens=1800, logit_bias=no_end, temperature=0)
            task = asyncio.create_task(coro)
            await asyncio.sleep(0.4)  # well into the generation
            t0 = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.perf_counter() - t0

        latency = asyncio.run(main())
        print(f"{call}: cancel took {latency * 1000:.1f} ms")
        assert latency < 0.5  # SmolLM2 decodes well above 20 tokens/s on one thread: 10 token times
        t0 = time.perf_counter()
        assert m.generate("The capital of France is", max_tokens=3)  # no generation left running
        assert time.perf_counter() - t0 < 2.0


def test_leaving_early_stops_the_stream(smollm2):
    async def main():
        s = smollm2.astream(PROMPT, max_tokens=200, ignore_eos=True)
        async for _ in s:
            break
        await s.aclose()
        return s

    s = asyncio.run(main())
    assert s.finish_reason == "cancelled" and len(s.tokens) < 5


def test_async_errors(smollm2):
    async def main():
        with pytest.raises(ValueError, match="temperature must be a number"):
            await smollm2.acreate_completion(PROMPT, temperature=5)
        with pytest.raises(ValueError, match="tools is not supported"):
            await smollm2.acreate_chat_completion(MESSAGES, stream=True, tools=[{"type": "function"}])
        s = smollm2.astream(PROMPT, top_k=-1)
        with pytest.raises(ValueError, match="top_k"):
            await s.__anext__()
        with pytest.raises(StopAsyncIteration):  # and then it is over
            await s.__anext__()
        with pytest.raises(wrenlm.ContextOverflowError):
            await smollm2.agenerate(PROMPT, max_tokens=10**6)

    asyncio.run(main())
