"""Generation behaviour on the real model: streaming, seeds, stop strings, context limits, errors.
The oracle here is the model's own greedy decode through a different code path (token ids and the
reference detokenizer), plus exact string properties; logits themselves are checked in test_logits."""

from __future__ import annotations

import pytest
import wrenlm

PROMPT = "Once upon a time"


def test_stream_pieces_join_to_generate(smollm2):
    pieces = list(smollm2.stream(PROMPT, max_tokens=40, temperature=0.8, top_p=0.9, seed=7))
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == smollm2.generate(PROMPT, max_tokens=40, temperature=0.8, top_p=0.9, seed=7)


def test_greedy_text_is_detokenized_ids(smollm2):
    ids = smollm2.generate_ids(PROMPT, max_tokens=24)
    text = smollm2.generate(PROMPT, max_tokens=24)
    assert text == smollm2.detokenize([t for t in ids if not smollm2.is_eog(t)], skip_special=True)
    assert len(ids) <= 24


def test_same_seed_same_text_different_seed_differs(smollm2):
    kw = dict(max_tokens=32, temperature=1.0, top_k=50, top_p=0.95, min_p=0.02, repeat_penalty=1.1)
    a = smollm2.generate(PROMPT, seed=1, **kw)
    b = smollm2.generate(PROMPT, seed=1, **kw)
    outs = {smollm2.generate(PROMPT, seed=s, **kw) for s in range(2, 6)}
    assert a == b
    assert len(outs | {a}) > 1


def test_max_tokens_counts_tokens(smollm2):
    for n in (1, 5, 17):
        ids = smollm2.generate_ids(PROMPT, max_tokens=n, ignore_eos=True)
        assert len(ids) == n


def test_stop_string_within_and_across_tokens(smollm2):
    full = smollm2.generate(PROMPT, max_tokens=40, ignore_eos=True)
    assert len(full) > 20
    # a stop string that starts mid-text: the result is the text before it, without it
    for start, length in [(10, 3), (5, 8), (len(full) // 2, 6)]:
        stop = full[start:start + length]
        if not stop.strip():
            continue
        first = full.find(stop)
        out = smollm2.generate(PROMPT, max_tokens=40, ignore_eos=True, stop=[stop])
        assert out == full[:first]
        assert stop not in out
    # several stop strings: the earliest wins; a stop string that never occurs changes nothing
    out = smollm2.generate(PROMPT, max_tokens=40, ignore_eos=True, stop=[full[20:24], full[8:11], "\x00zz"])
    assert out == full[:min(full.find(full[20:24]), full.find(full[8:11]))]
    assert smollm2.generate(PROMPT, max_tokens=40, ignore_eos=True, stop="\x00never") == full


def test_stop_string_is_never_streamed(smollm2):
    full = smollm2.generate(PROMPT, max_tokens=40, ignore_eos=True)
    stop = full[12:18]
    pieces = list(smollm2.stream(PROMPT, max_tokens=40, ignore_eos=True, stop=stop))
    assert "".join(pieces) == full[:full.find(stop)]


def test_context_overflow(tmp_path, smollm2_path):
    with wrenlm.Model(smollm2_path, n_ctx=64, n_threads=1) as m:
        long_prompt = "word " * 100
        with pytest.raises(wrenlm.ContextOverflowError, match="n_ctx=64"):
            m.generate(long_prompt, max_tokens=4)
        with pytest.raises(wrenlm.ContextOverflowError, match="max_tokens"):
            m.generate(PROMPT, max_tokens=100)
        with pytest.raises(wrenlm.ContextOverflowError):
            m.logits(list(range(65)))
        # max_tokens=None runs until the window is full, then says so instead of truncating
        with pytest.raises(wrenlm.ContextOverflowError, match="context window"):
            m.generate(PROMPT, max_tokens=None, ignore_eos=True)
        # the model is still usable afterwards
        assert m.generate(PROMPT, max_tokens=4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(min_p=-1), "min_p"),
    (dict(top_k=-3), "top_k"),
    (dict(repeat_penalty=0), "repeat_penalty"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(max_tokens=2.5), "max_tokens"),
    (dict(seed=-1), "seed"),
    (dict(stop=[""]), "stop"),
    (dict(stop=[3]), "stop"),
])
def test_invalid_sampling_parameters(smollm2, kwargs, match):
    with pytest.raises(ValueError, match=match):
        smollm2.generate(PROMPT, **kwargs)


def test_bad_token_ids(smollm2):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        smollm2.logits([1, 2, smollm2.n_vocab])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        smollm2.detokenize([-1])
    with pytest.raises(ValueError):
        smollm2.generate([], max_tokens=2)
    with pytest.raises(ValueError):
        smollm2.logits([])


def test_repr_and_close(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=256, n_threads=1)
    r = repr(m)
    assert "llama" in r and "Q4_1" in r and "n_ctx=256" in r and "135M" in r
    m.close()
    assert "closed" in repr(m)
    with pytest.raises(ValueError, match="closed"):
        m.generate("x")


def test_bad_files(tmp_path):
    p = tmp_path / "not.gguf"
    p.write_bytes(b"PK\x03\x04 not a gguf at all")
    with pytest.raises(wrenlm.FormatError, match="not.gguf"):
        wrenlm.Model(p)
    with pytest.raises(FileNotFoundError):
        wrenlm.Model(tmp_path / "missing.gguf")


def test_chat_uses_the_template(smollm2):
    msgs = [{"role": "user", "content": "Say hi"}]
    text = smollm2.apply_chat_template(msgs)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    reply = smollm2.chat(msgs, max_tokens=32)
    assert isinstance(reply, str) and reply and "<|im_end|>" not in reply
    assert "".join(smollm2.chat(msgs, max_tokens=32, stream=True)) == reply
    # the reply is what greedy generation from the rendered prompt gives
    assert reply == smollm2.generate(smollm2.tokenize(text), max_tokens=32)


def test_chat_errors(smollm2):
    with pytest.raises(ValueError):
        smollm2.chat("hello")
    with pytest.raises(ValueError):
        smollm2.chat([{"role": "user"}])
