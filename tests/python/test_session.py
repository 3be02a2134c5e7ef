"""Explicit sessions (Model.session()): a conversation keeps its keys and values across turns, and
save()/load_session() carry it to another process.

Oracle: a cold run of the same prompt (a model with the prefix cache off), itself checked against
transformers by test_logits.py. A session keeps its earlier replies' positions as they were
computed (one token per pass, decode kernels) where a cold run computes them as prompt rows, so
the two agree within test_logits.py's tolerance for the generation path: the same greedy tokens
unless they part at a near-tie of the cold run (top-2 gap < 0.5 nats, printed), and the first
token's logprob within 0.3 nats (measured up to 0.10; a session that lost or garbled its context
is off by whole nats). A saved and loaded session continues exactly (same tokens and
logprobs as the session that was saved: the rows are restored bit for bit).
"""

from __future__ import annotations

import pytest
import wrenlm

SYSTEM = {"role": "system", "content": "You are a concise assistant. Answer in one sentence."}
TURNS = ["What is the capital of France?", "And of Italy?", "Which of the two is larger?", "Name a river in it.",
         "Thanks!"]


@pytest.fixture(scope="module")
def model(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, cache_mb=0)
    yield m
    m.close()


def drain(st):
    for _ in st:
        pass
    return st


def agree(got, want):
    for k, (a, b) in enumerate(zip(got.tokens, want.tokens)):
        if a != b:
            top = want.logprobs[k].top_logprobs
            gap = top[0].logprob - top[1].logprob
            print(f"parted at token {k}: cold top-2 gap {gap:.3f}")
            return gap < 0.5
    return True


def test_five_turn_chat_evaluates_only_each_turns_new_tokens(model):
    s = model.session()
    for k, turn in enumerate(TURNS):
        before = len(s.tokens)
        message = [SYSTEM, {"role": "user", "content": turn}] if k == 0 else turn
        pieces = list(s.chat(message, stream=True, max_tokens=24, logprobs=2))
        st = s._running
        prompt = model._chat_ids(s.messages[:-1])
        new = st.usage.prompt_tokens - st.usage.cached_tokens
        print(f"turn {k + 1}: prompt {st.usage.prompt_tokens} tokens, {st.usage.cached_tokens} reused, "
              f"{new} evaluated")
        assert st.usage.prompt_tokens == len(prompt)
        # Everything the session held is reused, but for a token or two where the template's
        # rendering of the last reply may tokenize otherwise than it was generated.
        assert st.usage.cached_tokens >= before - 2
        if k:
            assert new <= len(model.tokenize(turn, add_bos=False)) + 12  # the turn + the template's markup
        # Against a cold run of the whole conversation so far.
        cold = drain(model.stream(prompt, max_tokens=24, logprobs=2))
        assert agree(st, cold)
        print(f"  first-token logprob {st.logprobs[0].logprob:.4f} vs cold {cold.logprobs[0].logprob:.4f}")
        assert abs(st.logprobs[0].logprob - cold.logprobs[0].logprob) < 0.3
        assert s.messages[-1] == {"role": "assistant", "content": "".join(pieces)}
    assert len(s.messages) == 1 + 2 * len(TURNS)


def test_stream_appends_text(model):
    s = model.session()
    first = s.generate("The capital of France is", max_tokens=6)
    n = len(s.tokens)
    st = s.stream(" Also, the capital of Spain is", max_tokens=6)
    drain(st)
    # Everything before was kept, but the last generated token, which was never fed to the model.
    assert st.usage.cached_tokens == n - 1
    assert model.detokenize(s.tokens).startswith("The capital of France is" + first)
    s.reset()
    assert s.tokens == [] and s.kv_bytes == 0


def test_close_keeps_what_was_computed(model):
    s = model.session()
    st = s.stream("Once upon a time", max_tokens=100, ignore_eos=True)
    for _, _piece in zip(range(5), st):
        pass
    st.close()
    n_prompt = len(model.tokenize("Once upon a time"))
    s.generate(" The end.", max_tokens=2)
    assert len(s.tokens) >= n_prompt + 5


def test_save_and_load_continue_exactly(model, tmp_path):
    s = model.session()
    s.chat("Tell me about Paris.", max_tokens=16)
    path = tmp_path / "paris.wrens"
    s.save(path)
    loaded = model.load_session(path)
    assert loaded.tokens == s.tokens and loaded.messages == s.messages
    a = drain(s.stream(" More:", max_tokens=12, logprobs=2, ignore_eos=True))
    b = drain(loaded.stream(" More:", max_tokens=12, logprobs=2, ignore_eos=True))
    assert a.tokens == b.tokens
    assert [x.logprob for x in a.logprobs] == [x.logprob for x in b.logprobs]
    assert b.usage.cached_tokens == a.usage.cached_tokens > 0


def test_sliding_window_session_round_trip(gemma3_path, tmp_path):
    """Gemma 3: sliding layers keep only their window's pages; a saved session restores them."""
    m = wrenlm.Model(gemma3_path, n_ctx=2048, n_threads=2, cache_mb=0)
    try:
        s = m.session()
        s.generate(" ".join(["word"] * 700), max_tokens=4, ignore_eos=True)
        s.save(tmp_path / "g.wrens")
        loaded = m.load_session(tmp_path / "g.wrens")
        assert loaded.kv_bytes == s.kv_bytes  # window pages only, as saved
        a = drain(s.stream(" next", max_tokens=6, ignore_eos=True))
        b = drain(loaded.stream(" next", max_tokens=6, ignore_eos=True))
        assert a.tokens == b.tokens
    finally:
        m.close()


def test_bad_session_files_are_format_errors(model, tmp_path, smollm2_path):
    s = model.session()
    s.generate("Hello there", max_tokens=4)
    good = tmp_path / "good.wrens"
    s.save(good)
    data = good.read_bytes()
    cases = {
        "empty": b"",
        "not-a-session": b"GGUF" + b"\0" * 100,
        "truncated-half": data[: len(data) // 2],
        "truncated-tail": data[:-3],
        "flipped-byte": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
        "flipped-last-row": data[:-20] + bytes([data[-20] ^ 0x01]) + data[-19:],
        "bad-messages": data[:24] + b"x" + data[25:],
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.wrens"
        p.write_bytes(blob)
        with pytest.raises(wrenlm.FormatError):
            model.load_session(p)
    with pytest.raises(FileNotFoundError):
        model.load_session(tmp_path / "missing.wrens")
    # Another model's options: an F32 cache has other rows.
    other = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, kv_cache="f32", cache_mb=0)
    try:
        with pytest.raises(wrenlm.FormatError, match="kv_cache type"):
            other.load_session(good)
    finally:
        other.close()
    # A session file holding more positions than this model's context.
    small = wrenlm.Model(smollm2_path, n_ctx=4, n_threads=1, cache_mb=0)
    try:
        with pytest.raises(wrenlm.FormatError):
            small.load_session(good)
    finally:
        small.close()
