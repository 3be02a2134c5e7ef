"""wrenlm.integrations.langchain beyond LangChain's conformance suites (test_langchain_standard.py).

Oracles: the prompt LangChain messages make is checked against transformers' own chat-template
rendering of LangChain's own OpenAI-format conversion (``convert_to_openai_messages``), on a tiny
random Llama folder; replies against ``Model.stream`` on those reference ids and against
``Model.chat`` with the same sampling options (the adapter must not change what the engine does);
stop sequences against the unstopped greedy reply cut at the stop string; embeddings against
sentence-transformers' all-MiniLM-L6-v2.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRE_REFERENCE, require_module

try:
    import pydantic
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        ChatMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        convert_to_openai_messages,
    )
    from langchain_core.vectorstores import InMemoryVectorStore
except ImportError as e:  # langchain-core comes with the test extra (langchain-tests)
    if REQUIRE_REFERENCE:
        raise
    pytest.skip(f"reference unavailable: langchain-core: {e!r}", allow_module_level=True)

import wrenlm
from wrenlm.integrations.langchain import ChatWrenLM, WrenLMEmbeddings
from wrenlm.testing import write_tiny_llama

MESSAGES = [
    SystemMessage("You are a helpful assistant."),
    HumanMessage([{"type": "text", "text": "Once upon a time"}, "there was a robot."]),
    AIMessage("The robot lived by the sea."),
    ChatMessage(role="user", content="What is the capital of France?"),
    HumanMessage("Thank you very much!", name="bob"),
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tiny_llama(tmp_path_factory.mktemp("lc-tiny"), seed=5))


@pytest.fixture(scope="module")
def tiny(tiny_folder: str) -> wrenlm.Model:
    with wrenlm.Model(tiny_folder, n_ctx=1024, n_threads=1) as m:
        yield m


def reference_ids(folder: str, messages: list[Any]) -> list[int]:
    """transformers' prompt ids for LangChain's own OpenAI-format version of the messages."""
    transformers = require_module("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    openai_messages = convert_to_openai_messages(messages, text_format="string")
    ids = tok.apply_chat_template(openai_messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)


def test_prompt_is_the_chat_template_of_langchains_openai_messages(tiny, tiny_folder):
    ids = reference_ids(tiny_folder, MESSAGES)
    chat = ChatWrenLM(model=tiny, max_tokens=8)
    assert chat.get_num_tokens_from_messages(MESSAGES) == len(ids)
    reply = chat.invoke(MESSAGES)
    assert reply.usage_metadata["input_tokens"] == len(ids)
    assert reply.content == "".join(tiny.stream(ids, max_tokens=8))  # greedy from the reference prompt
    assert chat.get_token_ids("Once upon a time") == tiny.tokenize("Once upon a time", add_bos=False)


def test_usage_and_finish_reason(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=6)
    reply = chat.invoke("Hello")
    u = reply.usage_metadata
    ref = tiny.chat([{"role": "user", "content": "Hello"}], stream=True, max_tokens=6)
    text = "".join(ref)
    assert reply.content == text
    assert (u["input_tokens"], u["output_tokens"]) == (ref.usage.prompt_tokens, len(ref.tokens))
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    assert reply.response_metadata["finish_reason"] == ref.finish_reason
    if ref.finish_reason == "length":
        assert u["output_tokens"] == 6
    assert reply.response_metadata["model_name"] == chat.model_name == os.path.basename(os.path.normpath(tiny.path))


def test_cache_read_counts_reused_prompt_tokens(tiny_folder):
    with wrenlm.Model(tiny_folder, n_ctx=1024, n_threads=1) as m:  # a cold prefix cache
        chat = ChatWrenLM(model=m, max_tokens=4)
        first = chat.invoke(MESSAGES).usage_metadata
        second = chat.invoke(MESSAGES).usage_metadata
    assert first["input_token_details"]["cache_read"] == 0
    assert 0 < second["input_token_details"]["cache_read"] <= second["input_tokens"] == first["input_tokens"]


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def check_chunks(chunks: list[AIMessageChunk], whole: AIMessage) -> None:
    """Streamed chunks add up to the whole reply; only the last carries usage and finish reason."""
    assert "".join(c.content for c in chunks) == whole.content
    assert [c.chunk_position for c in chunks] == [None] * (len(chunks) - 1) + ["last"]
    assert [c.usage_metadata is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    counts = ("input_tokens", "output_tokens", "total_tokens")  # cache_read differs: the prompt is cached now
    assert [chunks[-1].usage_metadata[k] for k in counts] == [whole.usage_metadata[k] for k in counts]
    assert chunks[-1].response_metadata["finish_reason"] == whole.response_metadata["finish_reason"]


def test_stream_and_astream_add_up_to_invoke(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=12, temperature=0.8, seed=3)
    whole = chat.invoke(MESSAGES)
    handler = Tokens()
    chunks = list(chat.stream(MESSAGES, config={"callbacks": [handler]}))
    check_chunks(chunks, whole)
    assert handler.tokens == [c.content for c in chunks]  # callbacks see every chunk as it comes

    async def collect() -> list[AIMessageChunk]:
        return [c async for c in chat.astream(MESSAGES)]

    check_chunks(asyncio.run(collect()), whole)
    # streaming=True: invoke streams inside, callbacks see every piece, the result is the same
    handler = Tokens()
    streamed = ChatWrenLM(model=tiny, max_tokens=12, temperature=0.8, seed=3, streaming=True)
    again = streamed.invoke(MESSAGES, config={"callbacks": [handler]})
    assert again.content == whole.content and "".join(handler.tokens) == whole.content


def test_sampling_options_reach_the_engine(tiny):
    plain = [{"role": "user", "content": "Tell me a story."}]
    options = dict(temperature=0.9, top_k=40, top_p=0.95, min_p=0.01, repeat_penalty=1.1, presence_penalty=0.2,
                   frequency_penalty=0.1, seed=7, max_tokens=12)
    chat = ChatWrenLM(model=tiny, **options)
    assert chat.invoke("Tell me a story.").content == tiny.chat(plain, **options)
    # per-call options override the fields; bind() passes them the same way
    assert chat.invoke("Tell me a story.", seed=8).content == tiny.chat(plain, **{**options, "seed": 8})
    assert chat.bind(temperature=0).invoke("Tell me a story.").content == tiny.chat(plain, **{**options,
                                                                                              "temperature": 0})
    assert chat._get_ls_params() == {"ls_provider": "wrenlm", "ls_model_name": chat.model_name,
                                     "ls_model_type": "chat", "ls_temperature": 0.9, "ls_max_tokens": 12}


def test_stop_sequences_cut_the_reply(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=24)
    full = chat.invoke("Once upon a time").content
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert len(stop) == 3 and stop in full
    expected = full[:full.index(stop)]
    cut = chat.invoke("Once upon a time", stop=[stop])
    assert cut.content == expected and cut.response_metadata["finish_reason"] == "stop"
    field = ChatWrenLM(model=tiny, max_tokens=24, stop=[stop])
    assert field.invoke("Once upon a time").content == expected
    assert "".join(c.content for c in field.stream("Once upon a time")) == expected
    assert field.invoke("Once upon a time", stop=[]).content == full  # a call's stop replaces the field's


def test_concurrent_async_calls_equal_sequential_ones(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=10)
    prompts = ["Hello", "Once upon a time", "The capital of France is", "def hello(name):"]
    expected = [chat.invoke(p).content for p in prompts]

    async def main() -> tuple[list[AIMessage], list[AIMessage]]:
        together = await asyncio.gather(*(chat.ainvoke(p) for p in prompts))
        return together, await chat.abatch(prompts)

    together, batched = asyncio.run(main())
    assert [r.content for r in together] == expected == [r.content for r in batched]
    assert [r.content for r in chat.batch(prompts)] == expected


def test_leaving_a_stream_early_stops_it(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=500)
    for _ in chat.stream("Hello"):
        break  # the generator is closed: the generation is cancelled, the model stays usable

    async def partial() -> str:
        agen = chat.astream("Hello")
        first = await agen.__anext__()
        await agen.aclose()
        return first.content

    asyncio.run(partial())
    assert ChatWrenLM(model=tiny, max_tokens=3).invoke("Hello").usage_metadata["output_tokens"] <= 3


def test_bad_input_raises_clear_errors(tiny):
    chat = ChatWrenLM(model=tiny, max_tokens=4)
    with pytest.raises(ValueError, match=r"messages\[1\] is a ToolMessage"):
        chat.invoke([HumanMessage("hi"), ToolMessage("42", tool_call_id="1")])
    with pytest.raises(ValueError, match="tool calls"):
        chat.invoke([AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]), HumanMessage("hi")])
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[1\] is a 'image' part"):
        chat.invoke([HumanMessage([{"type": "text", "text": "see"}, {"type": "image", "url": "http://x/y.png"}])])
    with pytest.raises(ValueError, match="does not take tools"):
        chat.invoke("hi", tools=[{"type": "function"}])
    with pytest.raises(NotImplementedError):
        chat.bind_tools([])
    with pytest.raises(ValueError, match="temperature"):
        chat.invoke("hi", temperature="hot")
    with pytest.raises(pydantic.ValidationError, match="temprature"):
        ChatWrenLM(model=tiny, temprature=0.5)
    with pytest.raises(ValueError, match="model_kwargs"):
        ChatWrenLM(model=tiny, model_kwargs={"n_ctx": 64})
    with pytest.raises((FileNotFoundError, wrenlm.WrenError, ValueError)):
        ChatWrenLM(model="/nonexistent/model.gguf")
    with pytest.raises(wrenlm.ContextOverflowError):
        ChatWrenLM(model=tiny, max_tokens=4).invoke("hello " * 2000)
    with pytest.raises(pydantic.ValidationError):
        WrenLMEmbeddings(model=tiny, batch_size=0)
    with pytest.raises(ValueError, match="embed_query"):
        WrenLMEmbeddings(model=tiny).embed_documents("one text")


# -- embeddings ----------------------------------------------------------------------------------------
DOCS = ["A cat sleeps on the warm windowsill.", "The stock market fell sharply on Monday.",
        "Kittens need food rich in protein.", "Paris is the capital of France.", "Quantum computers use qubits."]


def test_embeddings_equal_sentence_transformers(minilm_dir):
    st = require_module("sentence_transformers")
    require_module("torch").set_num_threads(2)
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(DOCS + ["What do kittens eat?"])
    emb = WrenLMEmbeddings(model=str(minilm_dir), batch_size=2)  # 5 documents: batches of 2, 2, 1
    docs = np.array(emb.embed_documents(DOCS))
    query = np.array(emb.embed_query("What do kittens eat?"))
    assert docs.shape == (5, 384) and isinstance(emb.embed_documents(DOCS[:1])[0][0], float)
    ours = np.vstack([docs, query])
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos  # test_embeddings.py's bar for this quantized-activation path
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)  # the folder's Normalize
    np.testing.assert_allclose(np.array(WrenLMEmbeddings(model=emb.wrenlm_model).embed_documents(DOCS)), docs,
                               atol=1e-6)

    async def main() -> tuple[list[list[float]], list[float]]:
        return await emb.aembed_documents(DOCS), await emb.aembed_query("What do kittens eat?")

    adocs, aquery = asyncio.run(main())
    np.testing.assert_allclose(np.array(adocs), docs, atol=1e-6)
    np.testing.assert_allclose(np.array(aquery), query, atol=1e-6)
    assert emb.embed_documents([]) == []

    # In a LangChain vector store, retrieval ranks the documents as sentence-transformers' vectors do.
    store = InMemoryVectorStore.from_texts(DOCS, emb)
    found = [d.page_content for d in store.similarity_search("What do kittens eat?", k=2)]
    order = np.argsort(-(ref[:5] @ ref[5]))[:2]
    assert found == [DOCS[i] for i in order]


def test_cancelling_ainvoke_stops_promptly(smollm2):
    """A reply of up to the whole context window (a minute or more here), cancelled after 0.3 s: the task
    ends within a couple of tokens' time, and the model answers the next call."""
    chat = ChatWrenLM(model=smollm2, max_tokens=None)

    async def main() -> float:
        task = asyncio.create_task(chat.ainvoke("Write a very long essay about the sea."))
        await asyncio.sleep(0.3)
        task.cancel()
        t0 = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - t0

    assert asyncio.run(main()) < 2.0
    assert ChatWrenLM(model=smollm2, max_tokens=4).invoke("Hi").usage_metadata["output_tokens"] <= 4
