"""The prefix cache (Model(cache_mb=...)): a prompt that starts with tokens an earlier generation
computed starts from their keys and values.

Oracle: the same model with the cache off (cache_mb=0), itself checked against transformers by
test_logits.py. Reuse resumes at a multiple of the attention block (64 positions) and leaves at
least 16 prompt tokens to compute, so every row is computed by the same kernels, in the same
blocks, as a cold run computes it (cpp/attention/attention.h): tokens and logprobs must be
equal, exactly.
"""

from __future__ import annotations

import gc

import pytest
import wrenlm

TEXT = ("The quick brown fox jumps over the lazy dog while the committee debates the budget of the "
        "new library, which opens next spring with a reading room, a cafe and a garden. ") * 40


@pytest.fixture(scope="module")
def cached(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2)
    yield m
    m.close()


@pytest.fixture(scope="module")
def cold(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, cache_mb=0)
    yield m
    m.close()


def run(model, ids, n=16):
    st = model.stream(ids, max_tokens=n, ignore_eos=True, logprobs=2)
    for _ in st:
        pass
    return st


def same(got, want):
    assert got.tokens == want.tokens
    assert [x.logprob for x in got.logprobs] == [x.logprob for x in want.logprobs]


def reused(n_prompt, common):
    """What the cache reuses: the common prefix, at most all but 16 prompt tokens, down to 64s."""
    return min(common, n_prompt - 16) // 64 * 64


def test_default_budget_and_off(cached, cold):
    assert cached.cache_info["budget"] == 256 << 20
    assert cold.cache_info["budget"] == 0
    with pytest.raises(ValueError, match="cache_mb"):
        wrenlm.Model("unused.gguf", cache_mb=-1)


def test_a_prompt_extending_an_earlier_one_reuses_it(cached, cold):
    cached.clear_cache()
    p = cached.tokenize(TEXT)[:1000]
    first = run(cached, p)
    assert first.usage.cached_tokens == 0
    q = p + cached.tokenize(" And then what happened?", add_bos=False)
    again = run(cached, q)
    assert again.usage.cached_tokens == reused(len(q), len(p)) == 960
    ref = run(cold, q)
    assert ref.usage.cached_tokens == 0
    same(again, ref)


def test_the_same_prompt_again_reuses_all_of_it(cached, cold):
    """The entry of a prompt keeps its last position's logits: the same prompt again computes
    nothing and continues exactly as the first run (and as a cold one)."""
    cached.clear_cache()
    p = cached.tokenize(TEXT)[:300]
    a = run(cached, p)
    b = run(cached, p)
    assert b.usage.cached_tokens == len(p)
    same(a, b)
    same(b, run(cold, p))


def test_prompts_differing_in_the_last_token_do_not_leak(cached, cold):
    """P + [a] then P + [b]: the second reuses P's positions only; its output is the cold run's
    for P + [b], not anything of [a]'s."""
    cached.clear_cache()
    p = cached.tokenize(TEXT)[:600]
    for last in (1234, 4321):
        got = run(cached, p + [last])
        same(got, run(cold, p + [last]))
    assert got.usage.cached_tokens == reused(len(p) + 1, len(p)) == 576


def test_chat_turns_reuse_the_history(cached):
    cached.clear_cache()
    messages = [{"role": "system", "content": "You are a helpful assistant. " + TEXT[:2000]},
                {"role": "user", "content": "What opens next spring?"}]
    reply = cached.chat(messages, max_tokens=12)
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And what else?"}]
    ids = cached._chat_ids(messages)
    st = cached.stream(ids, max_tokens=4)
    for _ in st:
        pass
    print(f"turn 2: {st.usage.cached_tokens} of {st.usage.prompt_tokens} prompt tokens reused")
    # Turn 1's prompt (the reply's positions were computed one by one: recomputed, see prefix_cache.h).
    n_turn1 = len(cached._chat_ids(messages[:2]))
    assert st.usage.cached_tokens == reused(st.usage.prompt_tokens, n_turn1) > 0


def test_budget_is_kept_and_clear_gives_memory_back(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, cache_mb=20)
    try:
        ids = m.tokenize(TEXT)
        for k in range(4):  # each ~300-token prompt holds ~7 MB of pages
            run(m, ids[k * 300:(k + 1) * 300], n=4)
            assert m.cache_info["bytes"] <= 20 << 20
        assert 0 < m.cache_info["entries"] < 4
        gc.collect()
        assert m._engine.kv_bytes == m.cache_info["bytes"]
        m.clear_cache()
        assert m.cache_info == {"entries": 0, "bytes": 0, "budget": 20 << 20}
        assert m._engine.kv_bytes == 0
    finally:
        m.close()


def test_streams_sharing_a_cached_prefix_hold_it_once(cached):
    """8 streams whose prompts share a 1,000-token prefix already cached: the prefix's pages are
    held once (the KV bytes grow by each stream's own pages only)."""
    cached.clear_cache()
    prefix = cached.tokenize(TEXT)[:1000]
    run(cached, prefix, n=1)
    gc.collect()
    base = cached._engine.kv_bytes
    streams = [cached.stream(prefix + [100 + i] * 20, max_tokens=4, ignore_eos=True) for i in range(8)]
    for st in streams:
        next(st)
    held = cached._engine.kv_bytes - base
    page = 64 * 30 * 192 * 2 * 2  # SmolLM2: 30 layers x (K, V) x 192 x f16 per position, 64 positions
    print(f"8 streams over a shared 1,000-token prefix add {held / 2**20:.1f} MiB "
          f"(the prefix alone: {base / 2**20:.1f} MiB)")
    assert held <= 8 * 2 * page  # the page the suffix starts in (copied) and the next one
    for st in streams:
        assert st.usage.cached_tokens == reused(1020, 1000) == 960
        st.close()


def test_requests_arriving_together_compute_a_shared_prefix_once(cached, cold):
    """8 requests whose prompts share a 1,000-token prefix (a system prompt or RAG context) and
    differ after it, all submitted before any pass runs and nothing cached yet: the first computes
    the prefix and offers it to the cache when its prompt is in; the others wait for it instead of
    computing it alongside, then start from it. Their tokens and logprobs are a cold run's, exactly;
    the prefill passes take the prefix once plus each request's own tail."""
    cached.clear_cache()
    prefix = cached.tokenize(TEXT)[:1000]
    prompts = [prefix + [100 + i] * 20 for i in range(8)]
    before = cached._engine.scheduler_stats["tokens"]
    streams = [cached.stream(p, max_tokens=4, ignore_eos=True, logprobs=2) for p in prompts]
    for st in streams:
        st._gen.start()  # all in the scheduler before any pass
    for st in streams:
        for _ in st:
            pass
    evaluated = cached._engine.scheduler_stats["tokens"] - before
    shared = reused(1020, 1000)
    print(f"8 requests with a shared 1,000-token prefix: {evaluated} tokens evaluated "
          f"(cached: {[st.usage.cached_tokens for st in streams]})")
    assert [st.usage.cached_tokens for st in streams] == [0] + [shared] * 7
    # the first prompt whole, the others' 60-token tails, then 3 decode steps each (the 4th token
    # comes from the last pass's logits)
    assert evaluated == 1020 + 7 * (1020 - shared) + 8 * 3
    for st, p in zip(streams, prompts):
        same(st, run(cold, p, n=4))
