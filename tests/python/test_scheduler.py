"""Continuous batching: generations from one call, several threads or n continuations of one prompt
run in shared forward passes (cpp/runtime/scheduler.*).

Oracle: each generation run alone on the same model (itself checked against transformers by
test_logits.py / test_generate.py). On the generation path a sequence's rows are computed the
same way in a batch as alone (per-row 8-bit activations, the attention path chosen per sequence):
test_batch.py measured max |diff| 0 against single-sequence passes, so greedy continuations must be
identical here, token for token.
"""

from __future__ import annotations

import gc
import random
import threading
import time

import pytest
import wrenlm

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "안녕하세요! 오늘은",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Once upon a time",
    "List three colors:",
    "In 1969, the first",
]


def drain(st):
    for _ in st:
        pass
    return st.tokens


@pytest.fixture(scope="module")
def model(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=1024, n_threads=2)
    yield m
    m.close()


@pytest.fixture(scope="module")
def alone(model):
    return [model.generate_ids(p, max_tokens=24, ignore_eos=True) for p in PROMPTS]


def test_generate_list_equals_each_prompt_alone(model, alone):
    before = model._engine.scheduler_stats
    texts = model.generate(PROMPTS, max_tokens=24, ignore_eos=True)
    after = model._engine.scheduler_stats
    assert texts == [model._e.detokenize(ids, skip_special=True) for ids in alone]
    passes = after["passes"] - before["passes"]
    # Alone: 8 prompts x (1 prefill + 23 decode passes). Together: the decode steps are shared.
    print(f"{passes} passes for 8 x 24 tokens; widest pass {after['max_sequences']} sequences")
    assert passes <= 24 + 8
    assert after["max_sequences"] == 8


def test_generate_list_edge_cases(model):
    assert model.generate([[1, 2, 3]], max_tokens=2, ignore_eos=True) == [
        model.generate([1, 2, 3], max_tokens=2, ignore_eos=True)]
    with pytest.raises(ValueError, match="empty"):
        model.generate([], max_tokens=2)


def test_streams_from_threads_run_batched_and_equal_alone(model, alone):
    """8 threads each iterate their own stream; the engine runs them in shared passes."""
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(len(PROMPTS))

    def worker(i):
        barrier.wait()
        st = model.stream(PROMPTS[i], max_tokens=24, ignore_eos=True)
        for _ in st:
            pass
        results[i] = st.tokens

    before = model._engine.scheduler_stats
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    after = model._engine.scheduler_stats
    assert [results[i] for i in range(len(PROMPTS))] == alone
    passes = after["passes"] - before["passes"]
    print(f"{passes} passes for 8 threads x 24 tokens")
    assert passes < len(PROMPTS) * 24 / 2  # serialized would be 8 x 24


def test_n_continuations_share_one_prefill(model):
    prompt = PROMPTS[4]
    n_prompt = len(model.tokenize(prompt))
    streams = model.streams(prompt, n=4, max_tokens=16, temperature=0.8, seed=11, ignore_eos=True)
    got = [drain(st) for st in streams]
    want = [model.generate_ids(prompt, max_tokens=16, temperature=0.8, seed=11 + j, ignore_eos=True)
            for j in range(4)]
    assert got == want
    assert len({tuple(g) for g in got}) > 1  # different seeds, different samples
    for st in streams:
        assert st.usage.cached_tokens == n_prompt
        assert st.usage.prompt_tokens == n_prompt
        assert st.finish_reason == "length"


def test_cancel_one_stream_of_a_batch(model, alone):
    """One of 4 running streams is cancelled from another thread: it ends as "cancelled" within a
    token or so; the other three complete, equal to their runs alone."""
    streams = [model.stream(p, max_tokens=24, ignore_eos=True) for p in PROMPTS[:4]]
    for st in streams:
        st._gen.start(run_ahead=True)
    victim = streams[1]
    next(victim)
    threading.Thread(target=victim.cancel).start()
    outs = []
    for st in streams:
        for _ in st:
            pass
        outs.append(st.tokens)
    assert victim.finish_reason == "cancelled"
    assert len(outs[1]) < 24
    for i in (0, 2, 3):
        assert outs[i] == alone[i]
        assert streams[i].finish_reason == "length"


def test_dropped_and_closed_streams_free_their_pages(model):
    model.clear_cache()
    gc.collect()
    base = model._engine.kv_bytes
    streams = [model.stream(p, max_tokens=200, ignore_eos=True) for p in PROMPTS]
    for st in streams:
        next(st)
    assert model._engine.kv_bytes > base
    for st in streams[:4]:
        st.close()
    del streams
    gc.collect()
    deadline = time.monotonic() + 10
    while model._engine.kv_bytes != base + model.cache_info["bytes"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert model._engine.kv_bytes == base + model.cache_info["bytes"]  # the prompts stay in the prefix cache
    model.clear_cache()
    assert model._engine.kv_bytes == base


def test_stress_submit_cancel_close_from_many_threads(model):
    """16 threads for 60 s: random prompts, lengths and sampling; each stream is read to its end,
    closed early, cancelled from another thread, or dropped unread. No crash, no deadlock (every
    thread finishes), every stream ends as "length"/"stop"/"cancelled", and every KV page is given
    back at the end (the prefix cache's once it is cleared)."""
    model.clear_cache()
    gc.collect()
    base = model._engine.kv_bytes
    stop_at = time.monotonic() + 60
    errors: list[BaseException] = []
    counts = {"done": 0, "cancelled": 0, "closed": 0, "dropped": 0}
    lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop_at:
                prompt = rng.choice(PROMPTS)[: rng.randint(3, 60)]
                st = model.stream(prompt, max_tokens=rng.randint(1, 40), temperature=rng.choice([0.0, 0.7]),
                                  seed=rng.randint(0, 1000))
                action = rng.choice(["done", "cancelled", "closed", "dropped"])
                if action == "done":
                    for _ in st:
                        pass
                    assert st.finish_reason in ("length", "stop")
                elif action == "cancelled":
                    threading.Timer(rng.random() * 0.05, st.cancel).start()
                    for _ in st:
                        pass
                    assert st.finish_reason in ("length", "stop", "cancelled")
                elif action == "closed":
                    for _, _piece in zip(range(rng.randint(0, 5)), st):
                        pass
                    st.close()
                    assert st.finish_reason in ("length", "stop", "cancelled")
                else:
                    next(st, None)
                    del st
                with lock:
                    counts[action] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock)"
    assert not errors, errors[:3]
    print(counts)
    assert all(v > 0 for v in counts.values())
    gc.collect()
    deadline = time.monotonic() + 10
    while model._engine.kv_bytes != base + model.cache_info["bytes"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert model._engine.kv_bytes == base + model.cache_info["bytes"]
    assert model.cache_info["bytes"] <= model.cache_info["budget"]
    model.clear_cache()
    assert model._engine.kv_bytes == base
