"""LangChain on wrenlm: :class:`ChatWrenLM`, a chat model, and :class:`WrenLMEmbeddings`, an embeddings
model, both running a :class:`wrenlm.Model` in this process. Needs ``langchain-core`` only
(``pip install "wrenlm[langchain]"``).

    >>> from wrenlm.integrations.langchain import ChatWrenLM, WrenLMEmbeddings
    >>> chat = ChatWrenLM(max_tokens=64)                  # the default SmolLM2-135M-Instruct
    >>> chat.invoke("What is RAG?").content
    >>> for chunk in chat.stream([("system", "Be brief."), ("human", "Hi!")]):
    ...     print(chunk.content, end="", flush=True)
    >>> emb = WrenLMEmbeddings(model="all-MiniLM-L6-v2/")
    >>> emb.embed_documents(["a doc", "another"])         # two lists of 384 floats

The chat model renders messages with the model's own chat template (system, human and AI messages
become the ``system``, ``user`` and ``assistant`` roles; a content given as a list of text parts is
their texts joined by newlines, as LangChain's ``convert_to_openai_messages`` joins them), reports
``usage_metadata`` (``input_token_details.cache_read``: prompt tokens the prefix cache supplied), and
streams one chunk per text piece; the last chunk carries the usage and ``finish_reason``. Its async
methods are native: several ``ainvoke``/``astream`` calls on one model decode together (continuous
batching), and cancelling the task stops the generation within a token. Tool calling and structured
output are not supported yet: tool messages, tool calls and non-text content parts raise ValueError.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel, LangSmithParams
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage, HumanMessage, SystemMessage
    from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("wrenlm.integrations.langchain needs langchain-core: pip install \"wrenlm[langchain]\"") from e
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

import wrenlm

ModelArg = Union[wrenlm.Model, str, Path, None]

# Options a call may give (``invoke(..., temperature=0.2)``, ``bind(seed=1)``) besides ``stop``; each is
# also a field of ChatWrenLM, and None there means wrenlm's default.
SAMPLING_OPTIONS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty",
                    "frequency_penalty", "seed")
_IGNORED_CALL_OPTIONS = ("stream",)  # LangChain's own switch between _generate and _stream


def load_model(model: ModelArg, model_kwargs: Mapping[str, Any], owner: str) -> wrenlm.Model:
    """The wrenlm Model an adapter runs: model itself when it is one, else ``wrenlm.Model(model,
    **model_kwargs)`` (a path; None: the default model).

    Raises:
        ValueError: model_kwargs given with a Model that is already loaded.
    """
    if isinstance(model, wrenlm.Model):
        if model_kwargs:
            raise ValueError(f"{owner}: model_kwargs ({', '.join(sorted(model_kwargs))}) apply when model is a path; "
                             f"this model is already loaded")
        return model
    return wrenlm.Model(model, **model_kwargs)


def model_name(lm: wrenlm.Model) -> str:
    """The model's name as LangChain reports it: its file or folder name."""
    return os.path.basename(os.path.normpath(lm.path))


# -- messages ------------------------------------------------------------------------------------------
def _text(content: Union[str, list[Any]], where: str) -> str:
    """A message content as one string: text parts joined by newlines; any other part is an error."""
    if isinstance(content, str):
        return content
    texts = []
    for k, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ValueError(f"{where}.content[{k}] is a {kind!r} part; ChatWrenLM takes text only "
                             f"(strings and {{'type': 'text', 'text': ...}} parts)")
    return "\n".join(texts)


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as the chat template takes them: ``{"role", "content"}`` dicts.

    System, human and AI messages become the ``system``, ``user`` and ``assistant`` roles, a
    :class:`~langchain_core.messages.ChatMessage` keeps its role; ``name`` fields are dropped (chat
    templates have no place for them).

    Raises:
        ValueError: a tool or function message, an AI message with tool calls, or a content part
            other than text (the message's index says which).
    """
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            if m.tool_calls or m.invalid_tool_calls:
                raise ValueError(f"{where} is an AI message with tool calls; ChatWrenLM has no tool calling yet")
            role = "assistant"
        elif isinstance(m, ChatMessage):
            role = m.role
        else:
            raise ValueError(f"{where} is a {type(m).__name__}; ChatWrenLM takes system, human, AI and chat "
                             f"messages (no tool calling yet)")
        out.append({"role": role, "content": _text(m.content, where)})
    return out


def usage_metadata(usage: wrenlm.Usage) -> UsageMetadata:
    """A generation's token counts as LangChain's ``usage_metadata``."""
    return UsageMetadata(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens,
                         input_token_details=InputTokenDetails(cache_read=usage.cached_tokens))


# -- chat ----------------------------------------------------------------------------------------------
class ChatWrenLM(BaseChatModel):
    """A LangChain chat model that runs a :class:`wrenlm.Model` in this process.

    Messages go through the model's own chat template; ``invoke``, ``stream``, ``batch`` and their
    async forms all work, and async calls on one model are batched by the engine. Results carry
    ``usage_metadata`` and ``response_metadata`` (``model_name``, ``finish_reason``: ``"stop"`` or
    ``"length"``). Sampling options may also be given per call (``invoke(msgs, temperature=0.7)``) and
    override the fields below; ``stop`` given to a call replaces the field.

    Args:
        model: a path (GGUF file or Hugging Face folder), a loaded :class:`wrenlm.Model` (several
            adapters may share one), or None for the default model (SmolLM2-135M-Instruct Q4_1).
        model_kwargs: options for ``wrenlm.Model(path, ...)`` when model is a path (``n_ctx``,
            ``n_threads``, ``cache_mb``, ``lora``, ...).
        max_tokens: at most this many new tokens per reply (None: until the model ends its turn).
        temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty, frequency_penalty, seed:
            as for :meth:`wrenlm.Model.stream`; None: wrenlm's default (temperature 0: greedy).
        stop: strings that end the reply (not included in it).
        streaming: ``invoke`` streams internally (callbacks get each token).
        timeout, max_retries, api_key: accepted so that code written for a hosted provider runs
            unchanged; a model in this process has no use for them.

    Raises:
        pydantic.ValidationError: an unknown field or a value of the wrong type.
        ValueError: model_kwargs with a loaded Model; at a call: an unsupported message or option.
        wrenlm.FormatError, FileNotFoundError: the model file cannot be loaded.

    Example:
        >>> chat = ChatWrenLM(model="SmolLM2-135M-Instruct.Q4_1.gguf", max_tokens=64, seed=1)
        >>> msg = chat.invoke([("system", "Answer in one line."), ("human", "What is a GGUF file?")])
        >>> msg.content, msg.usage_metadata["output_tokens"]
    """

    model: ModelArg = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_tokens: Optional[int] = 256
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    repeat_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    seed: Optional[int] = None
    stop: Optional[list[str]] = None
    streaming: bool = False
    timeout: Optional[float] = None
    max_retries: Optional[int] = None
    api_key: Optional[SecretStr] = None

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    _lm: wrenlm.Model = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._lm = load_model(self.model, self.model_kwargs, type(self).__name__)

    @property
    def wrenlm_model(self) -> wrenlm.Model:
        """The :class:`wrenlm.Model` this chat model runs."""
        return self._lm

    @property
    def model_name(self) -> str:
        """The model's file or folder name (``response_metadata["model_name"]``)."""
        return model_name(self._lm)

    @property
    def _llm_type(self) -> str:
        return "wrenlm-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, **{k: getattr(self, k) for k in SAMPLING_OPTIONS}, "stop": self.stop}

    def _get_ls_params(self, stop: Optional[list[str]] = None, **kwargs: Any) -> LangSmithParams:
        name = kwargs.get("model")
        params = LangSmithParams(ls_provider="wrenlm", ls_model_name=name if isinstance(name, str) else self.model_name,
                                 ls_model_type="chat")
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            params["ls_max_tokens"] = max_tokens
        stops = self.stop if stop is None else stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # -- tokens ----------------------------------------------------------------------------------
    def get_token_ids(self, text: str) -> list[int]:
        """The model's own token ids of text (no BOS; special-token text is plain text)."""
        return self._lm.tokenize(text, add_bos=False, special=False)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Optional[Sequence[Any]] = None) -> int:
        """Exactly the prompt tokens a call with these messages takes: their chat-template text,
        generation prompt included, tokenized as generation tokenizes it.

        Raises:
            ValueError: tools given (no tool calling yet), or a message :func:`to_chat_messages` refuses.
        """
        if tools:
            raise ValueError("ChatWrenLM has no tool calling yet")
        return len(self._lm._chat_ids(to_chat_messages(messages)))

    # -- generation ------------------------------------------------------------------------------
    def _options(self, stop: Optional[list[str]], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The sampling options of one call: the fields, overridden by the call's options."""
        unknown = sorted(set(kwargs) - set(SAMPLING_OPTIONS) - set(_IGNORED_CALL_OPTIONS))
        if unknown:
            raise ValueError(f"ChatWrenLM does not take {', '.join(unknown)} (no tool calling or structured output "
                             f"yet); a call may give stop and {', '.join(SAMPLING_OPTIONS)}")
        options = {}
        for name in SAMPLING_OPTIONS:
            value = kwargs[name] if name in kwargs else getattr(self, name)
            if value is not None or name == "max_tokens":
                options[name] = value
        stops = self.stop if stop is None else stop
        if isinstance(stops, str):
            stops = [stops]
        if stops:
            options["stop"] = list(stops)
        return options

    def _response_metadata(self, finish_reason: Optional[str]) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_provider": "wrenlm", "finish_reason": finish_reason}

    def _result(self, text: str, usage: wrenlm.Usage, finish_reason: Optional[str]) -> ChatResult:
        message = AIMessage(content=text, usage_metadata=usage_metadata(usage),
                            response_metadata=self._response_metadata(finish_reason))
        generation = ChatGeneration(message=message, generation_info={"finish_reason": finish_reason})
        return ChatResult(generations=[generation], llm_output={"model_name": self.model_name})

    def _last_chunk(self, usage: wrenlm.Usage, finish_reason: Optional[str]) -> ChatGenerationChunk:
        """The chunk that ends a stream: no text, the usage and the finish reason."""
        message = AIMessageChunk(content="", usage_metadata=usage_metadata(usage),
                                 response_metadata=self._response_metadata(finish_reason), chunk_position="last")
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": finish_reason})

    def _start(self, messages: list[BaseMessage], stop: Optional[list[str]],
               kwargs: Mapping[str, Any]) -> wrenlm.Stream:
        pieces = self._lm.chat(to_chat_messages(messages), stream=True, **self._options(stop, kwargs))
        assert isinstance(pieces, wrenlm.Stream)
        return pieces

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        pieces = self._start(messages, stop, kwargs)
        try:
            text = "".join(pieces)
        finally:
            pieces.close()
        return self._result(text, pieces.usage, pieces.finish_reason)

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        pieces = self._start(messages, stop, kwargs)
        try:  # a consumer that stops early closes this generator: the finally stops the generation
            for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            pieces.close()
        yield self._last_chunk(pieces.usage, pieces.finish_reason)

    async def _astart(self, messages: list[BaseMessage], stop: Optional[list[str]],
                      kwargs: Mapping[str, Any]) -> wrenlm.AsyncStream:
        chat, options = to_chat_messages(messages), self._options(stop, kwargs)
        pieces = await self._lm.achat(chat, stream=True, **options)
        assert isinstance(pieces, wrenlm.AsyncStream)
        return pieces

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        pieces = await self._astart(messages, stop, kwargs)
        try:
            text = "".join([piece async for piece in pieces])
        finally:
            await pieces.aclose()
        assert pieces.usage is not None
        return self._result(text, pieces.usage, pieces.finish_reason)

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        pieces = await self._astart(messages, stop, kwargs)
        try:
            async for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            await pieces.aclose()
        assert pieces.usage is not None
        yield self._last_chunk(pieces.usage, pieces.finish_reason)


# -- embeddings ----------------------------------------------------------------------------------------
class WrenLMEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings from a :class:`wrenlm.Model` (``Model.embed``: a sentence-transformers
    folder embeds as sentence-transformers does).

    Args:
        model: a path (a sentence-transformers folder such as all-MiniLM-L6-v2, a GGUF file or a Hugging
            Face folder) or a loaded :class:`wrenlm.Model`.
        model_kwargs: options for ``wrenlm.Model(path, ...)`` when model is a path.
        batch_size: texts computed per native call (async: per worker-thread hop).
        normalize: unit-length vectors; None: as the model says (see :meth:`wrenlm.Model.embed`).

    Raises:
        pydantic.ValidationError: an unknown field, a value of the wrong type, or batch_size < 1.
        ValueError: model_kwargs with a loaded Model; at a call: a text that is not a str.

    Example:
        >>> emb = WrenLMEmbeddings(model="all-MiniLM-L6-v2/")
        >>> vectors = emb.embed_documents(["a doc", "another"])   # two lists of 384 floats
        >>> query = emb.embed_query("which doc?")
    """

    model: ModelArg
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(default=32, ge=1)
    normalize: Optional[bool] = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())
    _lm: wrenlm.Model = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._lm = load_model(self.model, self.model_kwargs, type(self).__name__)

    @property
    def wrenlm_model(self) -> wrenlm.Model:
        """The :class:`wrenlm.Model` these embeddings run."""
        return self._lm

    @staticmethod
    def _texts(texts: Any) -> list[str]:
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise ValueError("embed_documents takes a list of strings; use embed_query for a single text")
        for k, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{k}] must be a str, got {type(t).__name__}")
        return list(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, computed batch_size texts at a time."""
        return self._lm.embed(self._texts(texts), batch_size=self.batch_size, normalize=self.normalize).tolist()

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text (the same as its :meth:`embed_documents` vector)."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` without blocking the event loop (one worker-thread call per batch)."""
        vectors = await self._lm.aembed(self._texts(texts), batch_size=self.batch_size, normalize=self.normalize)
        return vectors.tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` without blocking the event loop."""
        return (await self.aembed_documents([text]))[0]


__all__ = ["ChatWrenLM", "WrenLMEmbeddings", "to_chat_messages", "usage_metadata"]
