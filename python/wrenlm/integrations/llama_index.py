"""LlamaIndex adapters: :class:`WrenLM`, an LLM, and :class:`WrenLMEmbedding`, an embedding model, both
over a :class:`wrenlm.Model` (extra ``wrenlm[llama-index]``, on ``llama-index-core``).

:class:`WrenLM` is a chat model to LlamaIndex (``metadata.is_chat_model`` is True), so query engines,
chat engines and agents talk to it with messages, and those messages go through the model's own chat
template (:meth:`wrenlm.Model.apply_chat_template`), never through a generic "role: text" prompt.
``complete`` is a raw completion of the text it is given.

    >>> from llama_index.core import Settings, VectorStoreIndex, Document
    >>> from wrenlm.integrations.llama_index import WrenLM, WrenLMEmbedding
    >>> Settings.llm = WrenLM()                                   # SmolLM2-135M-Instruct by default
    >>> Settings.embed_model = WrenLMEmbedding("all-MiniLM-L6-v2/")
    >>> index = VectorStoreIndex.from_documents([Document(text="wrenlm runs GGUF models on CPUs.")])
    >>> print(index.as_query_engine().query("What does wrenlm run?"))
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Optional, Union

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        ChatResponseAsyncGen,
        ChatResponseGen,
        CompletionResponse,
        CompletionResponseAsyncGen,
        CompletionResponseGen,
        LLMMetadata,
        LogProb,
        MessageRole,
        TextBlock,
    )
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.custom import CustomLLM
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("wrenlm.integrations.llama_index needs llama-index-core: "
                      "pip install 'wrenlm[llama-index]'") from e

from wrenlm.model import Model
from wrenlm.stream import Stream, TokenLogprob

__all__ = ["WrenLM", "WrenLMEmbedding", "to_wrenlm_messages"]

ModelArg = Union[Model, str, "os.PathLike[str]", None]

# Generation options Model.stream takes, the names WrenLM passes through.
_GENERATION_OPTIONS = frozenset(inspect.signature(Model.stream).parameters) - {"self", "prompt"}

# LlamaIndex roles that chat templates know under another name; the rest keep their own name.
_ROLE_ALIASES = {"developer": "system", "chatbot": "assistant", "model": "assistant", "function": "tool"}


def _open_model(model: ModelArg, model_kwargs: Optional[Mapping[str, Any]]) -> Model:
    """model itself when it is a Model, else a Model opened from that path (None: the default model)."""
    if isinstance(model, Model):
        if model_kwargs:
            raise ValueError("model_kwargs are for opening a model from a path; this Model is already open")
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a wrenlm.Model, a path or None, got {type(model).__name__}")
    return Model(model, **dict(model_kwargs or {}))


def _model_name(model: Model) -> str:
    name = model.info.get("name")
    return str(name) if name else os.path.basename(os.path.normpath(model.path))


def to_wrenlm_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """LlamaIndex chat messages as the ``{"role", "content"}`` dicts :meth:`wrenlm.Model.chat` takes.

    Roles keep their names (``system``, ``user``, ``assistant``, ``tool``), except ``developer``
    (becomes ``system``), ``chatbot`` and ``model`` (``assistant``) and ``function`` (``tool``); the
    model's chat template decides what each role looks like. A message's text blocks are joined with
    newlines, as ``ChatMessage.content`` joins them.

    Raises:
        ValueError: a message holds an image, audio, document or other non-text block.
    """
    if isinstance(messages, (str, bytes, ChatMessage)) or not isinstance(messages, Sequence):
        raise ValueError("messages must be a list of llama_index ChatMessage objects")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, ChatMessage):
            raise ValueError(f"messages[{i}] must be a llama_index ChatMessage, got {type(msg).__name__}")
        for block in msg.blocks:
            if not isinstance(block, TextBlock):
                raise ValueError(f"messages[{i}] holds a {type(block).__name__}: wrenlm models take text only")
        role = msg.role.value if isinstance(msg.role, MessageRole) else str(msg.role)
        out.append({"role": _ROLE_ALIASES.get(role, role), "content": msg.content or ""})
    return out


def _usage_facts(stream: Any) -> dict[str, Any]:
    """Token counts and finish reason of a (finished) wrenlm stream, in OpenAI's names."""
    usage = stream.usage
    facts: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}
    if usage is not None:
        facts.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                     total_tokens=usage.total_tokens, cached_tokens=usage.cached_tokens)
    facts["finish_reason"] = stream.finish_reason
    return facts


def _logprobs(entries: Sequence[TokenLogprob]) -> Optional[list[list[LogProb]]]:
    """Per generated token, its most likely alternatives (the token itself when none were asked for),
    as LlamaIndex's OpenAI adapter lays them out; None when logprobs were not requested."""
    if not entries:
        return None
    out = []
    for e in entries:
        if e.top_logprobs:
            out.append([LogProb(token=t.token, logprob=t.logprob, bytes=list(t.token.encode("utf-8")))
                        for t in e.top_logprobs])
        else:
            out.append([LogProb(token=e.token, logprob=e.logprob or 0.0, bytes=list(e.bytes))])
    return out


class WrenLM(CustomLLM):
    """A wrenlm model as a LlamaIndex LLM (a chat model: LlamaIndex sends it messages).

    ``chat`` / ``stream_chat`` / ``achat`` / ``astream_chat`` render the messages with the model's own
    chat template (:meth:`wrenlm.Model.apply_chat_template`) and answer as :meth:`wrenlm.Model.chat`
    does. ``complete`` / ``stream_complete`` / ``acomplete`` / ``astream_complete`` continue the prompt
    text as it is (after ``completion_to_prompt`` unless ``formatted=True``; that function is the
    identity unless one is given). The async calls run on wrenlm's async calls (worker threads, the
    event loop never blocks); several calls in flight on one model are batched by the engine.

    Each response has ``additional_kwargs`` (and ``raw["usage"]``, where LlamaIndex's
    ``TokenCountingHandler`` reads it) with ``prompt_tokens``, ``completion_tokens``, ``total_tokens``,
    ``cached_tokens`` and ``finish_reason`` (``"stop"`` or ``"length"``). A streamed answer ends with a
    response whose ``delta`` is ``""`` and which carries those final counts.

    Args:
        model: a :class:`wrenlm.Model`, a path to open (GGUF file or model folder), or None for the
            default model (SmolLM2-135M-Instruct Q4_1, see :class:`wrenlm.Model`).
        max_tokens: new tokens per answer unless a call says otherwise (``metadata.num_output``).
        temperature: 0 (default) is greedy.
        generate_kwargs: other generation options for every call, as :meth:`wrenlm.Model.stream`
            takes them (``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``, ``seed``, ``stop``...).
        model_kwargs: options to open ``model`` with (``n_ctx``, ``n_threads``, ``cache_mb``...).
        **kwargs: LlamaIndex's LLM fields (``system_prompt``, ``completion_to_prompt``,
            ``callback_manager``...).

    Options given to a call (``llm.chat(messages, max_tokens=64, stop=["\\n"])``) override these.

    Raises:
        ValueError: an unknown generation option (the message names it and the known ones), an
            invalid value, or a message with non-text content.
        ContextOverflowError: the prompt and ``max_tokens`` do not fit the context window.
        ChatTemplateError: ``chat`` on a model without a chat template.

    Example:
        >>> llm = WrenLM(max_tokens=64)
        >>> llm.chat([ChatMessage(role="user", content="What is RAG?")]).message.content
        >>> for r in llm.stream_complete("Once upon a time"):
        ...     print(r.delta, end="", flush=True)
    """

    model_path: str = Field(default="", description="Path of the model file or folder.")
    model_name: str = Field(default="", description="The model's name (its file's general.name, else its path).")
    max_tokens: int = Field(default=256, gt=0, description="New tokens per answer, unless a call says otherwise.")
    temperature: float = Field(default=0.0, ge=0.0, description="Sampling temperature; 0 is greedy.")
    generate_kwargs: dict[str, Any] = Field(default_factory=dict,
                                            description="Other options of wrenlm.Model.stream for every call.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Options the model was opened with.")

    _model: Model = PrivateAttr()

    def __init__(self, model: ModelArg = None, *, max_tokens: int = 256, temperature: float = 0.0,
                 generate_kwargs: Optional[Mapping[str, Any]] = None,
                 model_kwargs: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        # model_path / model_name come back in kwargs when LlamaIndex rebuilds the LLM from its dict.
        path = kwargs.pop("model_path", None)
        name = kwargs.pop("model_name", None)
        opened = _open_model(path if model is None and path else model, model_kwargs)
        gen = dict(generate_kwargs or {})
        _check_options(gen, "generate_kwargs")
        for key in ("max_tokens", "temperature"):
            if key in gen:
                raise ValueError(f"give {key} as WrenLM({key}=...), not in generate_kwargs")
        super().__init__(model_path=opened.path, model_name=name or _model_name(opened), max_tokens=max_tokens,
                         temperature=temperature, generate_kwargs=gen, model_kwargs=dict(model_kwargs or {}),
                         **kwargs)
        self._model = opened

    @classmethod
    def class_name(cls) -> str:
        return "WrenLM"

    @property
    def model(self) -> Model:
        """The :class:`wrenlm.Model` that answers."""
        return self._model

    @property
    def metadata(self) -> LLMMetadata:
        """Context window (the model's ``n_ctx``), ``num_output`` (``max_tokens``), a chat model."""
        return LLMMetadata(context_window=self._model.n_ctx, num_output=self.max_tokens, is_chat_model=True,
                           is_function_calling_model=False, model_name=self.model_name)

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """This call's generation options: the LLM's, overridden by the call's."""
        _check_options(kwargs, "generation option")
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, **self.generate_kwargs, **kwargs}

    def _prompt(self, prompt: str, formatted: bool) -> str:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
        return prompt if formatted else self.completion_to_prompt(prompt)

    # -- completion ------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The continuation of prompt (see the class docstring); kwargs: generation options."""
        stream = self._model.stream(self._prompt(prompt, formatted), **self._options(kwargs))
        text = "".join(stream)
        return _completion(text, None, stream)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """The continuation of prompt, one response per piece (``delta``; ``text`` so far)."""
        stream = self._model.stream(self._prompt(prompt, formatted), **self._options(kwargs))
        return _stream_responses(stream, _completion)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """:meth:`complete`, asynchronously."""
        stream = self._model.astream(self._prompt(prompt, formatted), **self._options(kwargs))
        text = "".join([piece async for piece in stream])
        return _completion(text, None, stream)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        """:meth:`stream_complete`, asynchronously (``async for r in await llm.astream_complete(...)``)."""
        stream = self._model.astream(self._prompt(prompt, formatted), **self._options(kwargs))
        return _astream_responses(stream, _completion)

    # -- chat ------------------------------------------------------------------------------------
    def _chat_stream(self, messages: Sequence[ChatMessage], kwargs: Mapping[str, Any]) -> Stream:
        return self._model.chat(to_wrenlm_messages(messages), stream=True,  # type: ignore[return-value]
                                **self._options(kwargs))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """The assistant's reply to messages, through the model's chat template; kwargs: generation options."""
        stream = self._chat_stream(messages, kwargs)
        text = "".join(stream)
        return _chat(text, None, stream)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """The reply, one response per piece (``delta``; ``message.content`` so far)."""
        return _stream_responses(self._chat_stream(messages, kwargs), _chat)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """:meth:`chat`, asynchronously."""
        msgs, options = to_wrenlm_messages(messages), self._options(kwargs)
        stream = await self._model.achat(msgs, stream=True, **options)
        text = "".join([piece async for piece in stream])  # type: ignore[union-attr]
        return _chat(text, None, stream)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """:meth:`stream_chat`, asynchronously (``async for r in await llm.astream_chat(...)``)."""
        msgs, options = to_wrenlm_messages(messages), self._options(kwargs)
        stream = await self._model.achat(msgs, stream=True, **options)
        return _astream_responses(stream, _chat)


def _check_options(options: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(options) - _GENERATION_OPTIONS)
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(map(repr, unknown))}; WrenLM passes on "
                         f"{', '.join(sorted(_GENERATION_OPTIONS))}")


def _completion(text: str, delta: Optional[str], stream: Any) -> CompletionResponse:
    facts = _usage_facts(stream)
    return CompletionResponse(text=text, delta=delta, additional_kwargs=facts, logprobs=_logprobs(stream.logprobs),
                              raw={"usage": {k: v for k, v in facts.items() if k != "finish_reason"},
                                   "finish_reason": facts["finish_reason"]})


def _chat(text: str, delta: Optional[str], stream: Any) -> ChatResponse:
    facts = _usage_facts(stream)
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta,
                        additional_kwargs=facts, logprobs=_logprobs(stream.logprobs),
                        raw={"usage": {k: v for k, v in facts.items() if k != "finish_reason"},
                             "finish_reason": facts["finish_reason"]})


def _stream_responses(stream: Stream, make: Any) -> Iterator[Any]:
    """One response per piece of stream, then a last one with delta "" and the final counts; leaving
    early stops the generation."""
    def responses() -> Iterator[Any]:
        text = ""
        try:
            for piece in stream:
                text += piece
                yield make(text, piece, stream)
            yield make(text, "", stream)
        finally:
            stream.close()

    return responses()


def _astream_responses(stream: Any, make: Any) -> AsyncIterator[Any]:
    """:func:`_stream_responses` over a :class:`wrenlm.AsyncStream`."""
    async def responses() -> AsyncIterator[Any]:
        text = ""
        try:
            async for piece in stream:
                text += piece
                yield make(text, piece, stream)
            yield make(text, "", stream)
        finally:
            await stream.aclose()

    return responses()


class WrenLMEmbedding(BaseEmbedding):
    """A wrenlm embedding model as a LlamaIndex embedding model.

    Texts are embedded as :meth:`wrenlm.Model.embed` embeds them (a sentence-transformers folder as
    sentence-transformers does), ``embed_batch_size`` at a time: ``get_text_embedding_batch`` hands
    each batch to one ``embed`` call. Queries and texts get the same treatment unless
    ``query_instruction`` / ``text_instruction`` are given (prefixes such as ``"query: "`` for models
    trained with them). The async calls run on :meth:`wrenlm.Model.aembed`.

    Args:
        model: a :class:`wrenlm.Model`, or a path to open (a sentence-transformers folder, a GGUF file).
        embed_batch_size: texts per ``embed`` call (1..2048).
        normalize: unit vectors or not; None (default): as the model says (see :meth:`wrenlm.Model.embed`).
        query_instruction: text put before every query.
        text_instruction: text put before every document text.
        model_kwargs: options to open ``model`` with (``n_threads``...).
        **kwargs: LlamaIndex's embedding fields (``callback_manager``, ``num_workers``...).

    Raises:
        ValueError: an invalid argument, or a text that is not a str.
        ContextOverflowError: as :meth:`wrenlm.Model.embed` says.

    Example:
        >>> emb = WrenLMEmbedding("all-MiniLM-L6-v2/", embed_batch_size=64)
        >>> vectors = emb.get_text_embedding_batch(["a doc", "another"])   # 2 lists of 384 floats
    """

    model_path: str = Field(default="", description="Path of the model file or folder.")
    normalize: Optional[bool] = Field(default=None, description="Unit vectors; None: as the model says.")
    query_instruction: Optional[str] = Field(default=None, description="Text put before every query.")
    text_instruction: Optional[str] = Field(default=None, description="Text put before every document text.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Options the model was opened with.")

    _model: Model = PrivateAttr()

    def __init__(self, model: ModelArg = None, *, embed_batch_size: int = 32, normalize: Optional[bool] = None,
                 query_instruction: Optional[str] = None, text_instruction: Optional[str] = None,
                 model_kwargs: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        path = kwargs.pop("model_path", None)
        name = kwargs.pop("model_name", None)
        if model is None and not path:
            raise ValueError("WrenLMEmbedding needs a model: a wrenlm.Model or a path (e.g. a "
                             "sentence-transformers folder)")
        opened = _open_model(path if model is None else model, model_kwargs)
        super().__init__(model_path=opened.path, model_name=name or _model_name(opened),
                         embed_batch_size=embed_batch_size, normalize=normalize, query_instruction=query_instruction,
                         text_instruction=text_instruction, model_kwargs=dict(model_kwargs or {}), **kwargs)
        self._model = opened

    @classmethod
    def class_name(cls) -> str:
        return "WrenLMEmbedding"

    @property
    def model(self) -> Model:
        """The :class:`wrenlm.Model` that embeds."""
        return self._model

    def _texts(self, texts: Sequence[str], prefix: Optional[str]) -> list[str]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ValueError("texts must be a list of strings")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__}")
        return [prefix + t for t in texts] if prefix else list(texts)

    def _embed(self, texts: list[str]) -> list[Embedding]:
        vecs = self._model.embed(texts, normalize=self.normalize, batch_size=self.embed_batch_size)
        return vecs.tolist()  # type: ignore[no-any-return]

    async def _aembed(self, texts: list[str]) -> list[Embedding]:
        vecs = await self._model.aembed(texts, normalize=self.normalize, batch_size=self.embed_batch_size)
        return vecs.tolist()  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed(self._texts([query], self.query_instruction))[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed(self._texts([query], self.query_instruction)))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed(self._texts([text], self.text_instruction))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed(self._texts([text], self.text_instruction)))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(self._texts(texts, self.text_instruction))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(self._texts(texts, self.text_instruction))
