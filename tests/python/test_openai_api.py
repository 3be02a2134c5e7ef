"""The OpenAI-shaped API: Model.create_completion / create_chat_completion / create_embedding.

Oracles:
- Shapes: the official ``openai`` package's pydantic models (``openai.types.Completion``,
  ``ChatCompletion``, ``ChatCompletionChunk``, ``CreateEmbeddingResponse``) parse every response, and
  no object carries a field those models do not define (they accept extras, so that is checked
  separately); every response is plain JSON.
- Values: the same request through Model.generate / Model.stream / Model.chat / Model.embed (the
  layer must not change what is generated), log_softmax of ``Model.logits(ids, exact=False)`` for
  log-probabilities (tolerance 1e-4 and the sequence-length caveat of test_logprobs.py), token counts
  against tokenize() and, for embeddings, the HF ``tokenizers`` library and sentence-transformers.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import wrenlm
from conftest import require_module

PROMPT = "The capital of France is"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOL = 1e-4  # float32 logits, float64 log_softmax: as test_logprobs.py


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def openai_types():
    require_module("openai")
    import openai.types
    import openai.types.chat

    return openai.types


def strict(cls, data):
    """data parsed by the openai model cls, with no field the model does not define, anywhere."""
    require_module("pydantic")
    import pydantic

    json.dumps(data)  # plain JSON: str, int, float, bool, None, list, dict
    obj = cls.model_validate(data)

    def walk(x, path):
        if isinstance(x, pydantic.BaseModel):
            assert not x.model_extra, f"{path}: fields OpenAI does not define: {sorted(x.model_extra)}"
            for name in type(x).model_fields:
                walk(getattr(x, name), f"{path}.{name}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]")

    walk(obj, cls.__name__)
    return obj


def strict_completion_chunk(data):
    """A streamed text_completion chunk. OpenAI streams these as Completion objects with
    ``finish_reason: null`` until a choice's last chunk, while the openai package's Completion model
    (used without validation by its client) types finish_reason as non-null: the chunk is checked
    with that one field filled in."""
    t = openai_types()
    filled = {**data, "choices": [{**c, "finish_reason": c["finish_reason"] or "length"} for c in data["choices"]]}
    return strict(t.Completion, filled)


def test_strict_catches_an_unknown_field():
    """The shape oracle itself fails on an extra field (pydantic alone would accept it)."""
    t = openai_types()
    ok = {"id": "x", "object": "text_completion", "created": 1, "model": "m",
          "choices": [{"text": "a", "index": 0, "logprobs": None, "finish_reason": "length"}]}
    strict(t.Completion, ok)
    bad = {**ok, "choices": [{**ok["choices"][0], "extra": 1}]}
    with pytest.raises(AssertionError, match="extra"):
        strict(t.Completion, bad)


# -- completions -------------------------------------------------------------------------------------
def test_completion_is_generate(smollm2):
    t = openai_types()
    kw = dict(max_tokens=12, temperature=0.8, top_p=0.9, seed=7)
    smollm2.clear_cache()  # earlier tests computed PROMPT: the first call here must compute it (cached_tokens 0)
    r = smollm2.create_completion(PROMPT, **kw)
    strict(t.Completion, r)
    (choice,) = r["choices"]
    s = smollm2.stream(PROMPT, **kw)
    assert choice["text"] == "".join(s)
    assert choice["finish_reason"] == s.finish_reason and choice["index"] == 0 and choice["logprobs"] is None
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-")
    n_prompt = len(smollm2.tokenize(PROMPT))
    assert r["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": len(s.tokens),
                          "total_tokens": n_prompt + len(s.tokens), "prompt_tokens_details": {"cached_tokens": 0}}
    again = smollm2.create_completion(PROMPT, **kw)  # the prompt is in the prefix cache now
    assert again["choices"][0]["text"] == choice["text"]
    assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": n_prompt}
    assert r["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm2.create_completion(PROMPT, model="my-name", **kw)["model"] == "my-name"


def test_completion_defaults_are_openais(smollm2):
    """max_tokens 16, temperature 1 (sampling): with a seed, the same text as generate() with those."""
    r = smollm2.create_completion(PROMPT, seed=3)
    assert r["choices"][0]["text"] == smollm2.generate(PROMPT, max_tokens=16, temperature=1.0, seed=3)
    assert r["usage"]["completion_tokens"] <= 16


def test_completion_stream_chunks(smollm2):
    kw = dict(max_tokens=10, temperature=0.7, seed=11, stop=["\n\n"])
    whole = smollm2.create_completion(PROMPT, **kw)
    chunks = list(smollm2.create_completion(PROMPT, stream=True, stream_options={"include_usage": True}, **kw))
    for c in chunks:
        strict_completion_chunk(c)
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    *pieces, last = chunks
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in pieces)  # OpenAI: null on every chunk but the last
    assert "".join(c["choices"][0]["text"] for c in pieces) == whole["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in pieces] == [None] * (len(pieces) - 1) + \
        [whole["choices"][0]["finish_reason"]]
    # without include_usage, no usage key at all
    assert all("usage" not in c for c in smollm2.create_completion(PROMPT, stream=True, **kw))


def check_legacy_logprobs(lp, ref_rows, n_top, text, start):
    """lp (completions logprobs) against reference log_softmax rows (one per token)."""
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ref_rows)
    for k, row in enumerate(ref_rows):
        top = lp["top_logprobs"][k]
        assert n_top <= len(top) <= n_top + 1  # the chosen token is added when not among the best
        for value in top.values():
            assert value >= np.sort(row)[::-1][n_top - 1] - TOL or value == pytest.approx(lp["token_logprobs"][k])
        assert lp["token_logprobs"][k] == pytest.approx(top[lp["tokens"][k]])
        # offsets count characters from the start of the prompt text; each token's text is there
        at = lp["text_offset"][k]
        assert text[at - start:].startswith(lp["tokens"][k])


def test_completion_logprobs_are_log_softmax_of_the_logits(smollm2):
    ids = smollm2.tokenize(PROMPT)
    r = smollm2.create_completion(PROMPT, max_tokens=8, temperature=0, logprobs=3)  # 5 + 8 < 16 tokens
    strict(openai_types().Completion, r)
    choice = r["choices"][0]
    lp = choice["logprobs"]
    gen = smollm2.generate_ids(ids, max_tokens=8)
    ref = log_softmax(smollm2.logits(ids + gen[:-1], exact=False))[len(ids) - 1:]
    assert "".join(lp["tokens"]) == choice["text"]
    for k, token in enumerate(gen):
        assert lp["tokens"][k] == smollm2.detokenize([token])
        assert lp["token_logprobs"][k] == pytest.approx(ref[k][token], abs=TOL)
        best = np.argsort(ref[k])[::-1][:3]
        assert sorted(lp["top_logprobs"][k]) == sorted(smollm2.detokenize([int(b)]) for b in best)
        for b in best:
            assert lp["top_logprobs"][k][smollm2.detokenize([int(b)])] == pytest.approx(ref[k][b], abs=TOL)
    check_legacy_logprobs(lp, ref, 3, choice["text"], len(PROMPT))
    assert lp["text_offset"][0] == len(PROMPT)


def test_echo_scores_the_prompt(smollm2):
    """echo + logprobs + max_tokens=0: the prompt's own log-probabilities, nothing generated (how
    evaluation harnesses score text). The first token has null logprobs, as OpenAI returns them (the
    openai package's Logprobs model types the list as floats, so this shape is checked by hand)."""
    text = " ".join(f"item {k} is {k * k}," for k in range(8))
    ids = smollm2.tokenize(text)
    r = smollm2.create_completion(text, max_tokens=0, echo=True, logprobs=2)
    choice = r["choices"][0]
    assert choice["text"] == text and choice["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 0 and r["usage"]["prompt_tokens"] == len(ids)
    lp = choice["logprobs"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None and lp["text_offset"][0] == 0
    ref = log_softmax(smollm2.logits(ids, exact=False))
    for i in range(1, len(ids)):
        assert lp["token_logprobs"][i] == pytest.approx(ref[i - 1][ids[i]], abs=TOL)
    check_legacy_logprobs({k: v[1:] for k, v in lp.items()}, ref[:-1], 2, text, 0)
    assert "".join(lp["tokens"]) == text
    # echo with generation: the text is prompt + completion, offsets continue after the prompt
    r = smollm2.create_completion(PROMPT, max_tokens=4, temperature=0, echo=True, logprobs=1)
    choice = r["choices"][0]
    assert choice["text"] == PROMPT + smollm2.generate(PROMPT, max_tokens=4)
    assert len(choice["logprobs"]["tokens"]) == len(smollm2.tokenize(PROMPT)) + 4
    assert choice["logprobs"]["text_offset"][len(smollm2.tokenize(PROMPT))] == len(PROMPT)


def test_n_choices_are_seeded_generations(smollm2):
    t = openai_types()
    kw = dict(max_tokens=8, temperature=1.0, top_p=0.95)
    r = smollm2.create_completion(PROMPT, n=3, seed=5, **kw)
    strict(t.Completion, r)
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    texts = [c["text"] for c in r["choices"]]
    assert texts == [smollm2.generate(PROMPT, seed=5 + j, **kw) for j in range(3)]
    assert len(set(texts)) > 1
    n_gen = sum(len(smollm2.generate_ids(PROMPT, seed=5 + j, **kw)) for j in range(3))
    assert r["usage"]["prompt_tokens"] == len(smollm2.tokenize(PROMPT))  # counted once per prompt
    assert r["usage"]["completion_tokens"] == n_gen
    # several prompts: choice index = prompt number * n + j
    prompts = [PROMPT, "Once upon a time"]
    r = smollm2.create_completion(prompts, n=2, seed=5, **kw)
    assert [c["text"] for c in r["choices"]] == [smollm2.generate(p, seed=5 + j, **kw) for p in prompts
                                                  for j in range(2)]
    assert r["usage"]["prompt_tokens"] == sum(len(smollm2.tokenize(p)) for p in prompts)
    # streamed: chunks carry each choice's index; joined per index they are the whole response
    chunks = list(smollm2.create_completion(prompts, n=2, seed=5, stream=True, **kw))
    joined = {}
    for c in chunks:
        strict_completion_chunk(c)
        (choice,) = c["choices"]
        joined[choice["index"]] = joined.get(choice["index"], "") + choice["text"]
    assert [joined[i] for i in range(4)] == [c["text"] for c in r["choices"]]


def test_token_id_prompts(smollm2):
    ids = smollm2.tokenize(PROMPT)
    a = smollm2.create_completion(ids, max_tokens=6, temperature=0)
    b = smollm2.create_completion([ids, ids], max_tokens=6, temperature=0)
    assert a["choices"][0]["text"] == smollm2.generate(PROMPT, max_tokens=6)
    assert [c["text"] for c in b["choices"]] == [a["choices"][0]["text"]] * 2


# -- chat --------------------------------------------------------------------------------------------
def test_chat_completion_is_chat(smollm2):
    t = openai_types()
    kw = dict(max_tokens=16, temperature=0.7, seed=3)
    r = smollm2.create_chat_completion(MESSAGES, **kw)
    strict(t.chat.ChatCompletion, r)
    (choice,) = r["choices"]
    assert choice["message"]["content"] == smollm2.chat(MESSAGES, **kw)
    assert choice["message"]["role"] == "assistant" and r["object"] == "chat.completion"
    n_prompt = len(smollm2.tokenize(smollm2.apply_chat_template(MESSAGES)))
    s = smollm2.stream(smollm2.tokenize(smollm2.apply_chat_template(MESSAGES)), **kw)
    "".join(s)
    assert r["usage"]["prompt_tokens"] == n_prompt
    assert r["usage"]["completion_tokens"] == len(s.tokens)
    assert choice["finish_reason"] == s.finish_reason


def test_chat_stream_chunks(smollm2):
    t = openai_types()
    kw = dict(max_tokens=12, temperature=0.5, seed=2, n=2)
    whole = smollm2.create_chat_completion(MESSAGES, **kw)
    chunks = list(smollm2.create_chat_completion(MESSAGES, stream=True, stream_options={"include_usage": True}, **kw))
    for c in chunks:
        strict(t.chat.ChatCompletionChunk, c)
        assert c["object"] == "chat.completion.chunk"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    for i in range(2):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == i]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert mine[-1]["delta"] == {} and mine[-1]["finish_reason"] == whole["choices"][i]["finish_reason"]
        assert all(c["finish_reason"] is None for c in mine[:-1])
        assert "".join(c["delta"].get("content", "") for c in mine) == whole["choices"][i]["message"]["content"]


def test_chat_logprobs(smollm2):
    """The chat logprobs shape (one object per token, bytes, top_logprobs list). Values: the first
    generated token against log_softmax of the prompt's logits (the prompt is evaluated in one batch,
    as logits() does); every token against Model.stream's logprobs (checked against the logits in
    test_logprobs.py; later tokens are decoded one at a time, see that file's caveat)."""
    t = openai_types()
    r = smollm2.create_chat_completion(MESSAGES, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    strict(t.chat.ChatCompletion, r)
    content = r["choices"][0]["logprobs"]["content"]
    ids = smollm2.tokenize(smollm2.apply_chat_template(MESSAGES))
    s = smollm2.stream(ids, max_tokens=6, logprobs=3)
    text = "".join(s)
    expected = [e for e in s.logprobs if not smollm2.is_eog(e.id)]
    assert len(content) == len(expected) > 0
    assert b"".join(bytes(e["bytes"]) for e in content).decode() == text == r["choices"][0]["message"]["content"]
    for got, e in zip(content, expected):
        assert got["token"] == e.token and bytes(got["bytes"]) == e.bytes and got["logprob"] == e.logprob
        assert [(x["token"], x["logprob"]) for x in got["top_logprobs"]] == \
            [(x.token, x.logprob) for x in e.top_logprobs]
    ref = log_softmax(smollm2.logits(ids, exact=False)[-1])
    first = content[0]
    assert first["logprob"] == pytest.approx(ref[expected[0].id], abs=TOL)
    best = np.argsort(ref)[::-1][:3]
    assert [x["logprob"] for x in first["top_logprobs"]] == pytest.approx(ref[best], abs=TOL)
    assert [bytes(x["bytes"]) for x in first["top_logprobs"]] == [smollm2._e.token_bytes(int(b)) for b in best]
    # logprobs without top_logprobs: the tokens' own, no alternatives; not asked: null
    r = smollm2.create_chat_completion(MESSAGES, max_tokens=3, temperature=0, logprobs=True)
    assert all(e["top_logprobs"] == [] for e in r["choices"][0]["logprobs"]["content"])
    assert smollm2.create_chat_completion(MESSAGES, max_tokens=3)["choices"][0]["logprobs"] is None


def test_chat_message_forms_and_token_limits(smollm2):
    kw = dict(max_tokens=8, temperature=0)
    base = smollm2.create_chat_completion(MESSAGES, **kw)["choices"][0]["message"]["content"]
    parts = [{"role": "user", "content": [{"type": "text", "text": MESSAGES[0]["content"]}]}]
    assert smollm2.create_chat_completion(parts, **kw)["choices"][0]["message"]["content"] == base
    sysmsg = [{"role": "system", "content": "Answer in one word."}, *MESSAGES]
    devmsg = [{"role": "developer", "content": "Answer in one word."}, *MESSAGES]
    assert smollm2.create_chat_completion(devmsg, **kw)["choices"][0]["message"]["content"] == \
        smollm2.chat(sysmsg, **kw)
    long_q = [{"role": "user", "content": "Write a long story about a dragon."}]
    r = smollm2.create_chat_completion(long_q, max_completion_tokens=5, temperature=0)
    assert r["usage"]["completion_tokens"] == 5 and r["choices"][0]["finish_reason"] == "length"
    same = smollm2.create_chat_completion(long_q, max_tokens=5, max_completion_tokens=5, temperature=0)
    assert same["choices"] == r["choices"]  # both names given, equal: accepted


def test_chat_default_max_tokens_is_the_rest_of_the_context(smollm2_path):
    with wrenlm.Model(smollm2_path, n_ctx=48, n_threads=1) as m:
        ids = m.tokenize(m.apply_chat_template([{"role": "user", "content": "Count to one hundred."}]))
        r = m.create_chat_completion([{"role": "user", "content": "Count to one hundred."}], temperature=0,
                                     logit_bias={m._e.eos_id: -100, m.tokenize("<|im_end|>", add_bos=False)[0]: -100})
        assert r["usage"]["completion_tokens"] == 48 - len(ids)
        assert r["choices"][0]["finish_reason"] == "length"
        with pytest.raises(wrenlm.ContextOverflowError, match="n_ctx=48"):
            m.create_chat_completion(MESSAGES, max_tokens=40, stream=True)  # at the call, not on iteration
        with pytest.raises(wrenlm.ContextOverflowError, match="prompt"):
            m.create_completion("word " * 60, stream=True)


# -- parameters --------------------------------------------------------------------------------------
COMPLETION, CHAT, EMBEDDING = "completion", "chat", "embedding"


@pytest.mark.parametrize("endpoint, kwargs, match", [
    (CHAT, dict(tools=[{"type": "function", "function": {"name": "f"}}]), "tools is not supported"),
    (CHAT, dict(tool_choice="auto"), "tool_choice is not supported"),
    (CHAT, dict(response_format={"type": "json_object"}), "response_format is not supported"),
    (CHAT, dict(functions=[{"name": "f"}]), "functions is not supported"),
    (CHAT, dict(audio={"voice": "x"}), "audio is not supported"),
    (CHAT, dict(store=True), "store is not supported"),
    (COMPLETION, dict(suffix="x"), "suffix is not supported"),
    (COMPLETION, dict(best_of=2), r"best_of is not supported.*best_of=1"),
    (COMPLETION, dict(temprature=0.5), "unknown parameter 'temprature'; accepted: "),
    (CHAT, dict(echo=True), "unknown parameter 'echo'"),
    (COMPLETION, dict(top_logprobs=2), "unknown parameter 'top_logprobs'"),
    (COMPLETION, dict(temperature=2.5), r"temperature must be a number in \[0, 2\]"),
    (COMPLETION, dict(temperature=float("nan")), "temperature must be a number"),
    (COMPLETION, dict(temperature="hot"), "temperature must be a number"),
    (CHAT, dict(top_p=1.5), r"top_p must be a number in \(0, 1\]"),
    (CHAT, dict(top_p=0), r"top_p must be a number in \(0, 1\]"),
    (COMPLETION, dict(n=0), r"n must be an integer in \[1, 128\]"),
    (CHAT, dict(n=129), r"n must be an integer in \[1, 128\]"),
    (COMPLETION, dict(n=2.0), "n must be an integer"),
    (COMPLETION, dict(max_tokens=-1), "max_tokens must be an integer >= 0"),
    (CHAT, dict(max_tokens=0), "max_tokens must be an integer >= 1"),
    (CHAT, dict(max_completion_tokens=0), "max_completion_tokens must be an integer >= 1"),
    (CHAT, dict(max_tokens=4, max_completion_tokens=5), "disagree"),
    (COMPLETION, dict(logprobs=21), r"logprobs must be an integer in \[0, 20\]"),
    (COMPLETION, dict(logprobs=True), "logprobs must be an integer"),
    (CHAT, dict(logprobs=3), "logprobs must be True or False"),
    (CHAT, dict(top_logprobs=21, logprobs=True), r"top_logprobs must be an integer in \[0, 20\]"),
    (CHAT, dict(top_logprobs=2), "top_logprobs needs logprobs=True"),
    (CHAT, dict(presence_penalty=-2.5), r"presence_penalty must be a number in \[-2, 2\]"),
    (COMPLETION, dict(frequency_penalty=3), r"frequency_penalty must be a number in \[-2, 2\]"),
    (COMPLETION, dict(logit_bias={"5": 101}), r"logit_bias\['5'\] must be a number in \[-100, 100\]"),
    (COMPLETION, dict(logit_bias={"-5": 1}), "logit_bias token id must be an integer"),
    (CHAT, dict(logit_bias=[1, 2]), "logit_bias must be a dict"),
    (COMPLETION, dict(stop=[""]), "stop strings must not be empty"),
    (COMPLETION, dict(stop=5), "stop must be a string or a list of strings"),
    (COMPLETION, dict(seed=-1), "seed must be an integer in"),
    (COMPLETION, dict(seed=2**64), "seed must be an integer in"),
    (COMPLETION, dict(stream_options={"include_usage": True}), "stream_options is only allowed with stream=True"),
    (CHAT, dict(stream=True, stream_options={"include_obfuscation": True}), "'include_obfuscation'"),
    (CHAT, dict(stream=True, stream_options={"include_usage": 1}), "include_usage'] must be True or False"),
    (CHAT, dict(stream="yes"), "stream must be True or False"),
    (CHAT, dict(user=5), "user must be a str"),
    (COMPLETION, dict(top_k=-1), "top_k must be an integer"),
    (EMBEDDING, dict(encoding_format="int8"), "encoding_format must be one of 'float', 'base64'"),
    (EMBEDDING, dict(dimensions=64), "dimensions=64 is not supported"),
    (EMBEDDING, dict(temperature=0.5), "unknown parameter 'temperature'"),
])
def test_bad_parameters_raise_before_anything_runs(smollm2, endpoint, kwargs, match):
    """Every check fires at the call, also with stream=True (nothing is generated first)."""
    for stream in ([False, True] if endpoint != EMBEDDING and "stream" not in kwargs and
                   "stream_options" not in kwargs else [None]):
        extra = {} if stream is None else {"stream": stream}
        with pytest.raises(ValueError, match=match):
            if endpoint == COMPLETION:
                smollm2.create_completion(PROMPT, **{"max_tokens": 2, **kwargs, **extra})
            elif endpoint == CHAT:
                smollm2.create_chat_completion(MESSAGES, **{"max_tokens": 2, **kwargs, **extra})
            else:
                smollm2.create_embedding("text", **kwargs)


@pytest.mark.parametrize("endpoint, kwargs", [
    (COMPLETION, dict(best_of=1)), (COMPLETION, dict(user="u-1")), (CHAT, dict(safety_identifier="s")),
    (CHAT, dict(tool_choice="none")), (CHAT, dict(tools=[])), (CHAT, dict(response_format={"type": "text"})),
    (CHAT, dict(store=False)), (COMPLETION, dict(suffix=None, best_of=None, logprobs=None, echo=None)),
    (CHAT, dict(tools=None, response_format=None, top_logprobs=None)), (COMPLETION, dict(logit_bias={}, stop=[])),
])
def test_neutral_values_are_accepted(smollm2, endpoint, kwargs):
    """Values that ask for nothing (None is not given: OpenAI's null) change nothing."""
    call, arg = (smollm2.create_completion, PROMPT) if endpoint == COMPLETION else \
        (smollm2.create_chat_completion, MESSAGES)
    base = call(arg, max_tokens=4, temperature=0, seed=1)
    got = call(arg, **{"max_tokens": 4, "temperature": 0, "seed": 1, **kwargs})
    strip = ("id", "created")
    assert {k: v for k, v in got.items() if k not in strip} == {k: v for k, v in base.items() if k not in strip}


@pytest.mark.parametrize("prompt, match", [
    ([], "prompt is empty"), ([1.5], r"prompt\[0\] must be a string or a non-empty list of token ids"),
    ([[1], []], r"prompt\[1\]"), (b"bytes", "prompt must be a string"), ([10**9], "outside the vocabulary"),
    ("", "the prompt is empty"),
])
def test_bad_prompts(smollm2, prompt, match):
    with pytest.raises(ValueError, match=match):
        smollm2.create_completion(prompt, max_tokens=2)


@pytest.mark.parametrize("messages, match", [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "only text parts"),
    ([{"role": "user", "content": None}], "content'] must be a string"),
    ("hello", "messages must be a list"),
    ([], "messages is empty"),
])
def test_bad_messages(smollm2, messages, match):
    with pytest.raises(ValueError, match=match):
        smollm2.create_chat_completion(messages, max_tokens=2)


# -- embeddings --------------------------------------------------------------------------------------
SENTENCES = ["The cat sits on the mat.", "Ein Hund läuft im Park.", "안녕하세요, 세계!"]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    m = wrenlm.Model(str(minilm_dir), n_threads=2)
    yield m
    m.close()


def test_embedding_response(minilm, minilm_dir):
    t = openai_types()
    tokenizers = require_module("tokenizers")
    r = minilm.create_embedding(SENTENCES)
    strict(t.CreateEmbeddingResponse, r)
    assert [d["index"] for d in r["data"]] == [0, 1, 2]
    got = np.array([d["embedding"] for d in r["data"]], dtype=np.float32)
    np.testing.assert_array_equal(got, minilm.embed(SENTENCES))  # float32 -> float -> float32 is exact
    # token counts: the HF tokenizer of the same model (CLS and SEP included, as it encodes)
    hf = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    hf.no_padding()  # the file pads every input to 128 tokens
    n = sum(len(hf.encode(s).ids) for s in SENTENCES)
    assert r["usage"] == {"prompt_tokens": n, "total_tokens": n}
    # against sentence-transformers: cosine >= 0.9999, the bound test_embeddings.py holds
    st = require_module("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    assert (np.sum(got * ref, axis=1) >= 0.9999).all()
    # one string; token ids
    one = minilm.create_embedding(SENTENCES[0])
    assert one["data"][0]["embedding"] == r["data"][0]["embedding"]
    ids = minilm.tokenize(SENTENCES[1], add_bos=True, special=False)
    assert minilm.create_embedding(ids)["data"][0]["embedding"] == r["data"][1]["embedding"]
    # base64: the openai client (openai/lib/_parsing/_embeddings.py) decodes each string with
    # np.frombuffer(base64.b64decode(s), dtype="float32").tolist(), then has the float response
    b64 = minilm.create_embedding(SENTENCES, encoding_format="base64", dimensions=384, user="u")
    assert all(isinstance(d["embedding"], str) for d in b64["data"])
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="float32").tolist() for d in b64["data"]]
    strict(t.CreateEmbeddingResponse, {**b64, "data": [{**d, "embedding": v} for d, v in zip(b64["data"], decoded)]})
    assert decoded == [d["embedding"] for d in r["data"]]


def test_embedding_bad_input(minilm):
    with pytest.raises(ValueError, match="input is empty"):
        minilm.create_embedding([])
    with pytest.raises(ValueError, match=r"input\[1\] must be a string"):
        minilm.create_embedding(["a", 3.0])
    # Longer than the folder's max_seq_length (256): cut as sentence-transformers cuts it (the
    # model's own rule, test_st_folder.py), not an error.
    long = minilm.create_embedding("word " * 1000)["data"][0]["embedding"]
    np.testing.assert_allclose(long, minilm.embed(["word " * 1000])[0], rtol=0, atol=1e-6)


def test_streamed_logprobs_add_up_to_the_whole(smollm2):
    """Each chunk carries the logprobs of the tokens generated since the one before; per choice they
    concatenate to the whole response's (which is the same request run again: seeded)."""
    kw = dict(max_tokens=8, temperature=0.9, seed=21, n=2)
    whole = smollm2.create_completion(PROMPT, logprobs=2, echo=True, **kw)
    got: dict[int, dict[str, list]] = {}
    for c in smollm2.create_completion(PROMPT, logprobs=2, echo=True, stream=True, **kw):
        (choice,) = c["choices"]
        keys = ("tokens", "token_logprobs", "top_logprobs", "text_offset")
        acc = got.setdefault(choice["index"], {k: [] for k in keys})
        for key in acc:
            acc[key] += choice["logprobs"][key]
    assert [got[i] for i in range(2)] == [c["logprobs"] for c in whole["choices"]]

    whole = smollm2.create_chat_completion(MESSAGES, logprobs=True, top_logprobs=2, **kw)
    chat: dict[int, list] = {0: [], 1: []}
    for c in smollm2.create_chat_completion(MESSAGES, logprobs=True, top_logprobs=2, stream=True, **kw):
        (choice,) = c["choices"]
        chat[choice["index"]] += (choice["logprobs"] or {}).get("content") or []
    assert [chat[i] for i in range(2)] == [c["logprobs"]["content"] for c in whole["choices"]]
    assert all(len(chat[i]) > 0 for i in range(2))
