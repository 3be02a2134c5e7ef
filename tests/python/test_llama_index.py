"""The LlamaIndex adapters (wrenlm.integrations.llama_index): WrenLM and WrenLMEmbedding.

Oracles:
- Prompt: what the adapter hands the engine for a conversation is the model's own chat template
  (``Model.apply_chat_template`` of the same messages), on a model whose template is like no generic
  format, and not LlamaIndex's generic ``messages_to_prompt``.
- Replies: the same request through ``Model.chat`` / ``Model.generate`` / ``Model.stream`` (greedy,
  or seeded sampling): the adapter must not change what is generated; streamed deltas concatenate to
  the whole reply; usage equals the Stream's.
- Embeddings: sentence-transformers' own vectors for all-MiniLM-L6-v2 (cosine >= 0.9999).
- LlamaIndex's own machinery: its ``TokenCountingHandler`` reads our usage, and a
  ``VectorStoreIndex`` built and queried with ``Settings.llm`` / ``Settings.embed_model`` set to ours
  retrieves with our vectors and answers with our model (its answer equals ``Model.chat`` of the
  messages LlamaIndex built).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import wrenlm
from conftest import require_module

# A template no generic prompt format resembles: if the adapter used anything else, prompts differ.
TEMPLATE = ("{{ bos_token }}{% for m in messages %}[[{{ m['role'] | upper }}]]{{ m['content'] }}[[/END]]\n"
            "{% endfor %}{% if add_generation_prompt %}[[ASSISTANT]]{% endif %}")
QUESTION = "What is the capital of France?"
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def li():
    """The adapter module (llama-index-core is the reference: a missing one fails under CI)."""
    require_module("llama_index.core")
    from wrenlm.integrations import llama_index

    return llama_index


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama whose chat template is TEMPLATE."""
    from wrenlm.testing import write_tiny_llama

    folder = write_tiny_llama(tmp_path_factory.mktemp("tiny-li"), seed=5)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    m = wrenlm.Model(folder, n_ctx=512, n_threads=1)
    yield m
    m.close()


def messages(li, *pairs):
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role=role, content=text) for role, text in pairs]


CONVERSATION = (("system", "You answer in one word."), ("user", "Hi"), ("assistant", "Hello"), ("user", QUESTION))
AS_DICTS = [{"role": r, "content": c} for r, c in CONVERSATION]


def record_prompts(monkeypatch, model):
    """Replaces model.stream on this instance by one that records each prompt (token ids or text)."""
    seen = []
    real = model.stream

    def stream(prompt, **kwargs):
        seen.append(prompt)
        return real(prompt, **kwargs)

    monkeypatch.setattr(model, "stream", stream)
    return seen


def run(coro):
    return asyncio.run(coro)


async def collect(agen):
    return [r async for r in agen]


def call_all(llm, kind, arg, **kwargs):
    """The four ways to call kind ("chat" or "complete"): (name, final text, deltas or None, last response)."""
    out = []
    r = getattr(llm, kind)(arg, **kwargs)
    out.append((kind, text_of(r), None, r))
    rs = list(getattr(llm, f"stream_{kind}")(arg, **kwargs))
    out.append((f"stream_{kind}", text_of(rs[-1]), [x.delta for x in rs], rs[-1]))
    r = run(getattr(llm, f"a{kind}")(arg, **kwargs))
    out.append((f"a{kind}", text_of(r), None, r))

    async def astream():
        return await collect(await getattr(llm, f"astream_{kind}")(arg, **kwargs))

    rs = run(astream())
    out.append((f"astream_{kind}", text_of(rs[-1]), [x.delta for x in rs], rs[-1]))
    return out


def text_of(response):
    return response.message.content if hasattr(response, "message") else response.text


# -- the prompt --------------------------------------------------------------------------------------
def test_chat_prompt_is_the_models_template(li, tiny, monkeypatch):
    from llama_index.core.base.llms.generic_utils import messages_to_prompt

    seen = record_prompts(monkeypatch, tiny)
    llm = li.WrenLM(tiny, max_tokens=4)
    msgs = messages(li, *CONVERSATION)
    call_all(llm, "chat", msgs)
    expected = tiny.apply_chat_template(AS_DICTS)
    assert expected.count("[[USER]]") == 2 and expected.endswith("[[ASSISTANT]]")  # the template did render
    assert len(seen) == 4
    for prompt in seen:
        assert tiny.detokenize(prompt) == expected
        assert prompt == tiny.tokenize(expected)
    assert tiny.detokenize(seen[0]) != messages_to_prompt(msgs)  # not LlamaIndex's generic format


def test_roles_and_text_blocks(li, tiny, monkeypatch):
    from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock

    seen = record_prompts(monkeypatch, tiny)
    llm = li.WrenLM(tiny, max_tokens=2)
    msgs = [ChatMessage(role="developer", content="Be brief."),
            ChatMessage(role="user", blocks=[TextBlock(text="first part"), TextBlock(text="second part")]),
            ChatMessage(role="model", content="ok"), ChatMessage(role="user", content="again")]
    llm.chat(msgs)
    expected = tiny.apply_chat_template([{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "first part\nsecond part"},
                                         {"role": "assistant", "content": "ok"},
                                         {"role": "user", "content": "again"}])
    assert tiny.detokenize(seen[0]) == expected
    image = ChatMessage(role="user", blocks=[TextBlock(text="look"), ImageBlock(url="http://x/y.png")])
    with pytest.raises(ValueError, match="ImageBlock"):
        llm.chat([image])
    with pytest.raises(ValueError, match="ChatMessage"):
        llm.chat([{"role": "user", "content": "a dict"}])


# -- replies -----------------------------------------------------------------------------------------
def test_chat_replies_equal_model_chat(li, smollm2):
    llm = li.WrenLM(smollm2, max_tokens=24)
    ref = smollm2.chat(AS_DICTS, stream=True, max_tokens=24, temperature=0.0)
    ref_text = "".join(ref)
    assert ref_text.strip()
    for name, text, deltas, last in call_all(llm, "chat", messages(li, *CONVERSATION)):
        assert text == ref_text, name
        if deltas is not None:
            assert "".join(deltas) == ref_text, name
            assert deltas[-1] == "" and all(deltas[:-1]), name  # one piece each, then the final response
        facts = last.additional_kwargs
        assert facts["prompt_tokens"] == ref.usage.prompt_tokens, name
        assert facts["completion_tokens"] == ref.usage.completion_tokens, name
        assert facts["total_tokens"] == ref.usage.total_tokens, name
        assert facts["finish_reason"] == ref.finish_reason, name
        assert last.raw["usage"]["prompt_tokens"] == ref.usage.prompt_tokens, name
        assert last.message.role.value == "assistant", name


def test_complete_is_a_raw_completion(li, smollm2):
    prompt = "The three primary colors are"
    ref = smollm2.stream(prompt, max_tokens=16)
    ref_text = "".join(ref)
    llm = li.WrenLM(smollm2, max_tokens=16)
    for name, text, deltas, last in call_all(llm, "complete", prompt):
        assert text == ref_text, name
        if deltas is not None:
            assert "".join(deltas) == ref_text, name
        assert last.additional_kwargs["prompt_tokens"] == ref.usage.prompt_tokens == len(smollm2.tokenize(prompt))
        assert last.additional_kwargs["completion_tokens"] == ref.usage.completion_tokens, name


def test_async_calls_in_flight_together(li, tiny):
    llm = li.WrenLM(tiny, max_tokens=10)
    msgs = messages(li, ("user", "tell me a story"))
    options = [dict(), dict(temperature=0.9, seed=1), dict(temperature=0.9, seed=2, top_p=0.8)]

    async def together():
        return await asyncio.gather(*(llm.achat(msgs, **o) for o in options),
                                    llm.acomplete("abc", temperature=0.7, seed=5))

    got = [text_of(r) for r in run(together())]
    ref = [tiny.chat([{"role": "user", "content": "tell me a story"}], max_tokens=10, **o) for o in options]
    assert got == ref + [tiny.generate("abc", max_tokens=10, temperature=0.7, seed=5)]
    assert len(set(ref)) == 3  # the options did make the replies differ


def test_formatted_and_completion_to_prompt(li, tiny):
    llm = li.WrenLM(tiny, max_tokens=6, completion_to_prompt=lambda p: f"Q: {p}\nA:")
    prompt = "why is the sky blue"
    wrapped = tiny.generate(f"Q: {prompt}\nA:", max_tokens=6)
    raw = tiny.generate(prompt, max_tokens=6)
    assert wrapped != raw  # the check below can tell them apart
    for name, text, _, _ in call_all(llm, "complete", prompt):
        assert text == wrapped, name
    for name, text, _, _ in call_all(llm, "complete", prompt, formatted=True):
        assert text == raw, name


def test_generation_options_pass_through(li, tiny):
    prompt = "once upon a time"
    llm = li.WrenLM(tiny, temperature=0.9, max_tokens=12, generate_kwargs={"seed": 3, "top_k": 20})
    ref = tiny.generate(prompt, temperature=0.9, max_tokens=12, seed=3, top_k=20)
    assert ref != tiny.generate(prompt, max_tokens=12)  # sampling did change the text
    r = llm.complete(prompt)
    assert r.text == ref and r.additional_kwargs["completion_tokens"] == 12
    assert r.additional_kwargs["finish_reason"] == "length"
    # Options of a call override the LLM's.
    assert llm.complete(prompt, seed=4, max_tokens=5).text == tiny.generate(prompt, temperature=0.9, max_tokens=5,
                                                                              seed=4, top_k=20)
    greedy = tiny.generate(prompt, max_tokens=12)
    stop = greedy[len(greedy) // 2:len(greedy) // 2 + 3]
    assert llm.complete(prompt, temperature=0.0, stop=[stop]).text == tiny.generate(prompt, max_tokens=12, stop=[stop])
    r = llm.complete(prompt, max_tokens=3, logprobs=2)
    assert len(r.logprobs) == 3 and all(len(alts) == 2 for alts in r.logprobs)


def test_bad_arguments(li, tiny):
    from llama_index.core.llms import ChatMessage

    llm = li.WrenLM(tiny)
    with pytest.raises(ValueError, match="'max_new_tokens'"):
        llm.complete("x", max_new_tokens=3)
    with pytest.raises(ValueError, match="'colour'"):
        li.WrenLM(tiny, generate_kwargs={"colour": 1})
    with pytest.raises(ValueError, match="max_tokens"):
        li.WrenLM(tiny, generate_kwargs={"max_tokens": 1})
    with pytest.raises(ValueError):
        li.WrenLM(tiny, max_tokens=0)
    with pytest.raises(ValueError, match="model_kwargs"):
        li.WrenLM(tiny, model_kwargs={"n_ctx": 64})
    with pytest.raises(ValueError, match="model must be"):
        li.WrenLM(42)
    with pytest.raises(ValueError, match="temperature"):
        llm.chat([ChatMessage(role="user", content="x")], temperature="hot")
    with pytest.raises(wrenlm.ContextOverflowError):
        llm.complete("x", max_tokens=10_000)
    with pytest.raises(ValueError, match="WrenLMEmbedding needs a model"):
        li.WrenLMEmbedding()


def test_metadata_and_round_trip(li, tiny):
    llm = li.WrenLM(tiny, max_tokens=77, temperature=0.5, generate_kwargs={"top_p": 0.9})
    md = llm.metadata
    assert (md.context_window, md.num_output, md.is_chat_model) == (512, 77, True)
    assert md.model_name == llm.model_name and md.model_name
    assert llm.model is tiny
    # LlamaIndex's own serialization gives back an LLM on the same file with the same settings.
    again = li.WrenLM.from_dict(llm.to_dict())
    assert (again.model_path, again.max_tokens, again.temperature, again.generate_kwargs) == (
        tiny.path, 77, 0.5, {"top_p": 0.9})
    assert again.complete("abc", seed=1).text == llm.complete("abc", seed=1).text


def test_leaving_a_stream_early_stops_the_generation(li, tiny, monkeypatch):
    streams = []
    real = tiny.stream
    monkeypatch.setattr(tiny, "stream", lambda p, **kw: streams.append(real(p, **kw)) or streams[-1])
    gen = li.WrenLM(tiny, max_tokens=200).stream_complete("abc", ignore_eos=True)
    next(gen)
    gen.close()
    assert streams[0].finish_reason == "cancelled"
    assert len(streams[0].tokens) < 200


def test_token_counting_handler_reads_usage(li, tiny):
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

    counter = TokenCountingHandler(tokenizer=tiny.tokenize)
    llm = li.WrenLM(tiny, max_tokens=9, callback_manager=CallbackManager([counter]))
    ref = tiny.chat(AS_DICTS, stream=True, max_tokens=9)
    "".join(ref)
    llm.chat(messages(li, *CONVERSATION))
    list(llm.stream_chat(messages(li, *CONVERSATION)))
    events = counter.llm_token_counts
    assert len(events) == 2
    for e in events:
        assert (e.prompt_token_count, e.completion_token_count) == (ref.usage.prompt_tokens,
                                                                    ref.usage.completion_tokens)


# -- embeddings --------------------------------------------------------------------------------------
TEXTS = ["A man is eating food.", "A man is riding a horse.", "Das Wetter ist heute schön.",
         "The new movie is awesome.", "def add(a, b): return a + b"]


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    st = require_module("sentence_transformers")
    require_module("torch").set_num_threads(2)
    return st.SentenceTransformer(str(minilm_dir), device="cpu")


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_embeddings_equal_sentence_transformers_in_batches(li, minilm_dir, st_model, monkeypatch):
    emb = li.WrenLMEmbedding(str(minilm_dir), embed_batch_size=2, model_kwargs={"n_threads": 2})
    batches = []
    real = emb.model.embed
    monkeypatch.setattr(emb.model, "embed", lambda texts, **kw: batches.append(list(texts)) or real(texts, **kw))
    ref = st_model.encode(TEXTS, convert_to_numpy=True)
    ours = np.asarray(emb.get_text_embedding_batch(TEXTS))
    assert batches == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:]]  # embed_batch_size texts per embed call
    assert ours.shape == (5, 384)
    assert cosines(ours, ref).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the folder's Normalize module
    # One text at a time and the async batch give the same vectors.
    np.testing.assert_allclose(emb.get_text_embedding(TEXTS[3]), ours[3], atol=1e-5)
    np.testing.assert_allclose(run(emb.aget_text_embedding_batch(TEXTS)), ours, atol=1e-5)
    query = "Who is eating?"
    q = emb.get_query_embedding(query)
    assert cosines(q, st_model.encode(query)) >= MIN_COSINE
    np.testing.assert_allclose(run(emb.aget_query_embedding(query)), q, atol=1e-5)
    assert int(np.argmax(ours @ np.asarray(q))) == 0  # retrieves the eating sentence


def test_embedding_instructions_and_options(li, minilm_dir, st_model):
    m = wrenlm.Model(minilm_dir, n_threads=2)
    emb = li.WrenLMEmbedding(m, query_instruction="query: ", text_instruction="passage: ", normalize=False)
    assert emb.model is m and emb.model_name
    q = emb.get_query_embedding("horses")
    t = emb.get_text_embedding_batch(["riding"])[0]
    assert cosines(q, st_model.encode("query: horses")) >= MIN_COSINE
    assert cosines(t, st_model.encode("passage: riding")) >= MIN_COSINE
    np.testing.assert_allclose(q, m.embed(["query: horses"], normalize=False)[0], atol=1e-6)
    with pytest.raises(ValueError, match="str"):
        emb.get_text_embedding_batch([b"bytes"])
    with pytest.raises(ValueError):
        li.WrenLMEmbedding(m, embed_batch_size=0)
    m.close()


# -- LlamaIndex end to end ---------------------------------------------------------------------------
DOCS = ["Paris is the capital and largest city of France.",
        "The mitochondrion is the powerhouse of the cell; it makes ATP.",
        "Rust is a systems programming language focused on memory safety."]


def test_vector_index_query_engine_end_to_end(li, smollm2, minilm_dir, monkeypatch):
    from llama_index.core import Document, Settings, VectorStoreIndex

    chats = []
    real_chat = smollm2.chat
    monkeypatch.setattr(smollm2, "chat", lambda msgs, **kw: chats.append((list(msgs), kw)) or real_chat(msgs, **kw))
    saved = (Settings._llm, Settings._embed_model)
    try:
        Settings.llm = li.WrenLM(smollm2, max_tokens=24)
        Settings.embed_model = li.WrenLMEmbedding(str(minilm_dir), model_kwargs={"n_threads": 2})
        index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS])
        engine = index.as_query_engine(similarity_top_k=1)
        response = engine.query("What does the mitochondrion make?")
        assert [n.node.get_content() for n in response.source_nodes] == [DOCS[1]]  # our vectors retrieved it
        (msgs, kw), = chats
        assert any(DOCS[1] in m["content"] for m in msgs)  # LlamaIndex put the context in the messages
        assert msgs[-1]["role"] == "user"
        assert str(response) == real_chat(msgs, max_tokens=24, temperature=0.0)
        # Streaming through LlamaIndex's stream path gives the same answer.
        streamed = index.as_query_engine(similarity_top_k=1, streaming=True).query("What does the mitochondrion make?")
        assert "".join(streamed.response_gen) == str(response)
    finally:
        Settings._llm, Settings._embed_model = saved


def test_missing_llama_index_says_which_extra(li, monkeypatch):
    import importlib
    import subprocess
    import sys

    import wrenlm.integrations

    # Importing wrenlm and its integrations package loads no LlamaIndex.
    code = "import sys, wrenlm.integrations; print(any(m.startswith('llama_index') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    monkeypatch.delitem(sys.modules, "wrenlm.integrations.llama_index")
    monkeypatch.delattr(wrenlm.integrations, "llama_index", raising=False)
    monkeypatch.setitem(sys.modules, "llama_index.core.base.embeddings.base", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'wrenlm\[llama-index\]'"):
        importlib.import_module("wrenlm.integrations.llama_index")
