"""The response shapes of OpenAI's API as typed dicts: what :meth:`Model.create_completion`,
:meth:`Model.create_chat_completion` and :meth:`Model.create_embedding` return.

Field names and nesting follow OpenAI's API reference (and the ``openai`` Python package's
``openai.types``), so a response parses as that package's models, e.g.
``openai.types.chat.ChatCompletion.model_validate(d)``. Two shapes look alike but differ:

- the legacy completions endpoint reports logprobs as parallel lists (``tokens``,
  ``token_logprobs``, ``top_logprobs`` as ``{token text: logprob}`` dicts, ``text_offset``);
- the chat endpoint reports them as one object per token (``token``, ``logprob``, ``bytes``,
  ``top_logprobs`` as a list of objects), under ``logprobs.content``.

Keys a response may omit are declared in a ``total=False`` subclass (Python 3.9 has no
``NotRequired``).
"""

from __future__ import annotations

from typing import Literal, Optional, TypedDict, Union

FinishReason = Literal["stop", "length"]


# -- usage -------------------------------------------------------------------------------------
class PromptTokensDetails(TypedDict):
    """Breakdown of the prompt tokens: ``cached_tokens`` had their keys and values reused."""

    cached_tokens: int


class _CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionUsage(_CompletionUsage, total=False):
    """Token counts of a request (``usage``). With ``n`` > 1, the prompt counts once per prompt and
    the completion tokens of every choice add up, as OpenAI bills them."""

    prompt_tokens_details: PromptTokensDetails


# -- legacy completions ----------------------------------------------------------------------------
class CompletionLogprobs(TypedDict):
    """Per-token log-probabilities of a completion choice, as parallel lists.

    ``tokens``: each token's text (``"bytes:\\xe2\\x80"`` for a token that is not whole UTF-8, as
    OpenAI writes them); ``token_logprobs``: its log-probability (None for the first prompt token
    under ``echo``: nothing precedes it); ``top_logprobs``: ``{text: logprob}`` of the most likely
    tokens at that position, plus the chosen token (so up to ``logprobs + 1`` entries; None for the
    first prompt token); ``text_offset``: where each token's text starts, in characters from the
    start of the prompt text (even without ``echo``, as OpenAI counts).
    """

    tokens: list[str]
    token_logprobs: list[Optional[float]]
    top_logprobs: list[Optional[dict[str, float]]]
    text_offset: list[int]


class CompletionChoice(TypedDict):
    """One completion. In a streamed chunk ``text`` is the new piece and ``finish_reason`` is None
    until the choice's last chunk."""

    text: str
    index: int
    logprobs: Optional[CompletionLogprobs]
    finish_reason: Optional[FinishReason]


class _Completion(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]


class Completion(_Completion, total=False):
    """A ``text_completion`` response; streamed chunks have the same shape. ``usage`` is present on
    a whole response, and on streamed chunks only with ``stream_options={"include_usage": True}``
    (None on every chunk but the last, whose ``choices`` is empty)."""

    usage: Optional[CompletionUsage]


CompletionChunk = Completion  # OpenAI streams legacy completions as Completion objects


# -- chat completions ------------------------------------------------------------------------------
class TopLogprob(TypedDict):
    """One of the most likely tokens at a position: its text, UTF-8 bytes and log-probability."""

    token: str
    bytes: list[int]
    logprob: float


class ChatCompletionTokenLogprob(TypedDict):
    """A generated token: text, UTF-8 bytes (exact, also for a token holding part of a character),
    log-probability, and the ``top_logprobs`` most likely tokens at its position."""

    token: str
    bytes: list[int]
    logprob: float
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(TypedDict):
    """``content``: one entry per generated token; ``refusal``: always None (no refusals here)."""

    content: Optional[list[ChatCompletionTokenLogprob]]
    refusal: Optional[list[ChatCompletionTokenLogprob]]


class ChatCompletionMessage(TypedDict):
    """The assistant's reply."""

    role: Literal["assistant"]
    content: Optional[str]
    refusal: Optional[str]


class ChatCompletionChoice(TypedDict):
    index: int
    message: ChatCompletionMessage
    logprobs: Optional[ChoiceLogprobs]
    finish_reason: FinishReason


class _ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatCompletionChoice]


class ChatCompletion(_ChatCompletion, total=False):
    """A ``chat.completion`` response."""

    usage: CompletionUsage


class ChoiceDelta(TypedDict, total=False):
    """What a chunk adds to a choice: ``role`` on its first chunk, then ``content`` pieces; the
    last chunk of a choice has an empty delta and its ``finish_reason``."""

    role: Literal["assistant"]
    content: str


class ChatCompletionChunkChoice(TypedDict):
    index: int
    delta: ChoiceDelta
    logprobs: Optional[ChoiceLogprobs]
    finish_reason: Optional[FinishReason]


class _ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]


class ChatCompletionChunk(_ChatCompletionChunk, total=False):
    """One streamed piece of a chat completion; every chunk of a response has the same ``id`` and
    ``created``. ``usage`` as for :class:`Completion` chunks."""

    usage: Optional[CompletionUsage]


# -- embeddings ------------------------------------------------------------------------------------
class Embedding(TypedDict):
    """One input's vector: a list of floats, or with ``encoding_format="base64"`` the base64 of its
    little-endian float32 bytes (what the ``openai`` client decodes)."""

    object: Literal["embedding"]
    index: int
    embedding: Union[list[float], str]


class EmbeddingUsage(TypedDict):
    """Tokens of all inputs (special tokens such as CLS/SEP included); embeddings have no output
    tokens, so ``total_tokens`` equals ``prompt_tokens``."""

    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(TypedDict):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


__all__ = [
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionChunkChoice",
    "ChatCompletionMessage",
    "ChatCompletionTokenLogprob",
    "ChoiceDelta",
    "ChoiceLogprobs",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionLogprobs",
    "CompletionUsage",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "FinishReason",
    "PromptTokensDetails",
    "TopLogprob",
]
