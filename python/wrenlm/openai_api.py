"""OpenAI-shaped completions, chat completions and embeddings on a :class:`~wrenlm.Model`, for code
moving from the OpenAI client or llama-cpp-python: ``create_completion``, ``create_chat_completion``
and ``create_embedding`` take OpenAI's parameter names (checked by :mod:`wrenlm.openai_params`) and
return OpenAI's response dicts (typed in :mod:`wrenlm.openai_types`); ``stream=True`` yields chunks.

    >>> m = wrenlm.Model()
    >>> r = m.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=16, seed=1)
    >>> r["choices"][0]["message"]["content"]
    >>> for chunk in m.create_completion("Once upon a time", stream=True, max_tokens=32):
    ...     print(chunk["choices"][0]["text"], end="")

Each request is prepared first (parameters checked, prompts tokenized and fitted to the context
window), so bad input raises at the call, also with ``stream=True``; then a :class:`Run` produces
its chunks, and a whole response is the same chunks put together (:meth:`Run.collect`), so the
streamed and the whole response always agree. :mod:`wrenlm.aio` drives the same Run from a worker
thread for the async variants.
"""

from __future__ import annotations

import base64
import codecs
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union, overload

import numpy as np

from wrenlm import _core
from wrenlm import openai_params as _params
from wrenlm import openai_types as T
from wrenlm.stream import Stream, TokenLogprob

if TYPE_CHECKING:
    from wrenlm.model import Model

Chunk = Union[T.Completion, T.ChatCompletionChunk]


# -- prompts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Prompt:
    ids: list[int]
    text: str  # what echo puts before the completion: the prompt as given, or its ids' text
    max_tokens: int


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _inputs(value: Any, name: str) -> list[Union[str, list[int]]]:
    """OpenAI's prompt / input forms: a str, a list of str, a list of token ids, or a list of lists of
    token ids; as a list of single prompts (a str or a list of ids)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a string, a list of strings, a list of token ids or a list of lists of "
                         f"token ids, got {type(value).__name__}")
    items = list(value)
    if not items:
        raise ValueError(f"{name} is empty")
    if all(_is_int(x) for x in items):
        return [[int(x) for x in items]]
    out: list[Union[str, list[int]]] = []
    for k, x in enumerate(items):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, Sequence) and not isinstance(x, (str, bytes)) and x and all(_is_int(t) for t in x):
            out.append([int(t) for t in x])
        else:
            raise ValueError(f"{name}[{k}] must be a string or a non-empty list of token ids, got {x!r}")
    return out


def _fit(lm: Model, ids: list[int], max_tokens: Optional[int], where: str) -> int:
    """max_tokens checked against the context window (None: what the window leaves)."""
    n_ctx = lm.n_ctx
    if max_tokens is None:
        max_tokens = n_ctx - len(ids)
        if max_tokens < 1:
            raise _core.ContextOverflowError(f"{where} has {len(ids)} tokens, which leaves no room to generate in the "
                                             f"context window n_ctx={n_ctx}")
    elif len(ids) + max_tokens > n_ctx:
        raise _core.ContextOverflowError(f"{where} has {len(ids)} tokens; with max_tokens={max_tokens} that exceeds "
                                         f"the context window n_ctx={n_ctx}")
    return max_tokens


def _chat_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI messages as the chat template takes them: a content given as a list of text parts
    becomes their texts joined by newlines, and the ``developer`` role (OpenAI's newer name for
    ``system``) becomes ``system``, the role chat templates know. Other checks: chat.validate_messages."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise ValueError(f"messages[{i}] must be a dict, got {type(msg).__name__}")
        msg = dict(msg)
        content = msg.get("content")
        if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
            texts = []
            for k, part in enumerate(content):
                if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ValueError(f"messages[{i}]['content'][{k}]: only text parts "
                                     f"({{'type': 'text', 'text': ...}}) are supported, got {part!r}")
                texts.append(part["text"])
            msg["content"] = "\n".join(texts)
        if msg.get("role") == "developer":
            msg["role"] = "system"
        out.append(msg)
    return out


# -- the n generations of a request --------------------------------------------------------------------
@dataclass
class _Event:
    """What one step of a choice produced: a text piece, the logprobs of the tokens generated since
    the last event, on the choice's first event the prompt's logprobs (echo), and on its last the
    finish reason."""

    index: int
    text: str
    logprobs: list[TokenLogprob]
    prompt_logprobs: list[TokenLogprob]
    finish_reason: Optional[str]
    first: bool


@dataclass
class Generations:
    """Every choice of a request, as events: for each prompt, ``n`` generations, choice ``j`` of a
    prompt sampled with ``seed + j`` (so ``n=1`` with seed s gives ``Model.generate(..., seed=s)``'s
    text, and the choices of a seeded request are reproducible one by one). Choice indexes are
    ``prompt number * n + j``.

    All choices of all prompts run together: each prompt is evaluated once and its n streams start
    from its KV pages (``Model.streams``), and the engine decodes every stream in shared passes;
    events come round-robin, one piece per choice in turn. This class is the one place that decides
    how the choices are computed. ``cancel()`` works from any thread.
    """

    lm: Model
    prompts: list[_Prompt]
    n: int
    seed: Optional[int]
    logprobs: Optional[int]  # alternatives per token; None: no logprobs
    echo: bool  # record the prompt's logprobs (with logprobs)
    sampling: dict[str, Any]
    completion_tokens: int = 0
    cached_tokens: int = 0
    _streams: list[Stream] = field(default_factory=list, repr=False)
    _cancelled: bool = False

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p.ids) for p in self.prompts)

    def cancel(self) -> None:
        """Stops the request: every choice in progress ends within one token."""
        self._cancelled = True
        for s in self._streams:
            s.cancel()

    def __iter__(self) -> Iterator[_Event]:
        record_prompt = self.echo and self.logprobs is not None
        choices: list[Iterator[_Event]] = []
        try:
            for k, prompt in enumerate(self.prompts):
                if self._cancelled:
                    return
                if prompt.max_tokens == 0:
                    choices += [self._prompt_only(k * self.n + j, prompt, record_prompt) for j in range(self.n)]
                    continue
                streams = self.lm.streams(prompt.ids, self.n, max_tokens=prompt.max_tokens, seed=self.seed,
                                          logprobs=self.logprobs, echo=record_prompt, **self.sampling)
                self._streams += streams
                choices += [self._choice(k * self.n + j, s, record_prompt) for j, s in enumerate(streams)]
            # Round-robin: one event of each choice in turn, so every stream keeps decoding in the
            # shared passes (a stream waits for its reader after a token or two).
            while choices and not self._cancelled:
                for c in list(choices):
                    ev = next(c, None)
                    if ev is None:
                        choices.remove(c)
                    else:
                        yield ev
        finally:
            for s in self._streams:
                s.close()  # also when the consumer stops early: no token is computed after that
            self._streams = []

    def _prompt_only(self, index: int, prompt: _Prompt, record_prompt: bool) -> Iterator[_Event]:
        """max_tokens=0: nothing to generate; with echo, the prompt's logprobs still."""
        prompt_lps: list[TokenLogprob] = []
        if record_prompt:
            s = self.lm.stream(prompt.ids, max_tokens=1, logprobs=self.logprobs, echo=True)
            self._streams.append(s)
            next(s, None)  # evaluates the prompt (and one token, not reported)
            prompt_lps = s.prompt_logprobs
            s.close()
            if self._cancelled:
                return
        yield _Event(index, "", [], prompt_lps, "length", True)

    def _choice(self, index: int, s: Stream, record_prompt: bool) -> Iterator[_Event]:
        seen, first = 0, True
        for piece in s:
            new, seen = self._new_logprobs(s, seen)
            yield _Event(index, piece, new, s.prompt_logprobs if first and record_prompt else [], None, first)
            first = False
        if s.finish_reason == "cancelled" or self._cancelled:
            return
        new, seen = self._new_logprobs(s, seen)
        usage = s.usage
        self.completion_tokens += usage.completion_tokens
        if self.n == 1:  # with n > 1 the shared prefill was computed for this request: no cache hit
            self.cached_tokens += usage.cached_tokens
        yield _Event(index, "", new, s.prompt_logprobs if first and record_prompt else [], s.finish_reason, first)

    def _new_logprobs(self, s: Stream, seen: int) -> tuple[list[TokenLogprob], int]:
        """Entries of tokens generated since ``seen``, without end-of-generation tokens (they have no
        text: the reply's tokens then join to its text)."""
        if self.logprobs is None:
            return [], seen
        entries = s.logprobs
        return [e for e in entries[seen:] if not self.lm.is_eog(e.id)], len(entries)


# -- a prepared request ---------------------------------------------------------------------------------
class Run(Iterator[Any]):
    """A checked, ready request: iterate it for its chunks (what ``stream=True`` returns), or
    :meth:`collect` the whole response. :meth:`cancel` stops it from any thread within one token;
    :meth:`close` stops it from the iterating thread."""

    def __init__(self, gens: Generations, chunks: Iterator[Any], collect: Callable[[Iterator[Any]], Any]) -> None:
        self._gens = gens
        self._chunks = chunks
        self._collect = collect

    def __iter__(self) -> Run:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def collect(self) -> Any:
        """The whole response (consumes the chunks)."""
        return self._collect(self._chunks)

    def cancel(self) -> None:
        self._gens.cancel()

    def usage(self) -> T.CompletionUsage:
        """Token counts so far (final once the chunks are exhausted)."""
        return _usage(self._gens)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _usage(gens: Generations) -> T.CompletionUsage:
    return {"prompt_tokens": gens.prompt_tokens, "completion_tokens": gens.completion_tokens,
            "total_tokens": gens.prompt_tokens + gens.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": gens.cached_tokens}}


def _model_name(lm: Model, params: Mapping[str, Any]) -> str:
    return params.get("model") or os.path.basename(os.path.normpath(lm.path))


def _generations(lm: Model, prompts: list[_Prompt], params: Mapping[str, Any], logprobs: Optional[int],
                 echo: bool) -> Generations:
    sampling = {k: params[k] for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "stop",
                                       "presence_penalty", "frequency_penalty", "logit_bias")}
    return Generations(lm, prompts, params["n"], params["seed"], logprobs, echo, sampling)


# -- completions ---------------------------------------------------------------------------------------
def _legacy_text(raw: bytes) -> str:
    """A token's text in the completions logprobs: its UTF-8 text, or ``bytes:\\xNN...`` when it is not
    whole UTF-8 (how OpenAI writes such tokens)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


class _Offsets:
    """Character offsets of tokens in a text, from their bytes (a character split across tokens is
    counted once it is whole)."""

    def __init__(self, start: int) -> None:
        self.position = start
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def take(self, raw: bytes) -> int:
        at = self.position
        self.position += len(self._decoder.decode(raw))
        return at


class _CompletionFormat:
    """Events to ``text_completion`` chunks."""

    def __init__(self, lm: Model, prompts: list[_Prompt], n: int, echo: bool, logprobs: bool) -> None:
        self.lm, self.prompts, self.n, self.echo, self.logprobs = lm, prompts, n, echo, logprobs
        self._offsets: dict[int, _Offsets] = {}

    def choice(self, ev: _Event) -> T.CompletionChoice:
        prompt = self.prompts[ev.index // self.n]
        text = prompt.text + ev.text if ev.first and self.echo else ev.text
        return {"text": text, "index": ev.index, "logprobs": self._logprobs(ev, prompt) if self.logprobs else None,
                "finish_reason": ev.finish_reason}  # type: ignore[typeddict-item]

    def _logprobs(self, ev: _Event, prompt: _Prompt) -> T.CompletionLogprobs:
        out: T.CompletionLogprobs = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        if ev.first:
            if ev.prompt_logprobs:
                # the prompt tokens' text ends where the prompt text does (a BOS token the prompt string
                # does not spell starts at 0)
                measure = _Offsets(0)
                ends = [measure.take(e.bytes) for e in ev.prompt_logprobs]
                shift = len(prompt.text) - measure.position
                for e, at in zip(ev.prompt_logprobs, ends):
                    self._add(out, e, max(0, at + shift))
            self._offsets[ev.index] = _Offsets(len(prompt.text))
        offsets = self._offsets[ev.index]
        for e in ev.logprobs:
            self._add(out, e, offsets.take(e.bytes))
        return out

    def _add(self, out: T.CompletionLogprobs, e: TokenLogprob, offset: int) -> None:
        out["tokens"].append(_legacy_text(e.bytes))
        out["token_logprobs"].append(e.logprob)
        out["text_offset"].append(offset)
        if e.logprob is None:  # the first prompt token: nothing predicts it
            out["top_logprobs"].append(None)
            return
        token_bytes = self.lm._e.token_bytes
        top = {_legacy_text(token_bytes(t.id)): t.logprob for t in e.top_logprobs}
        top.setdefault(_legacy_text(e.bytes), e.logprob)  # OpenAI: the chosen token is always listed
        out["top_logprobs"].append(top)


def _completion_chunks(gens: Generations, fmt: _CompletionFormat, head: dict[str, Any],
                       include_usage: bool) -> Iterator[T.Completion]:
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    for ev in gens:
        yield {**head, "choices": [fmt.choice(ev)], **extra}  # type: ignore[typeddict-item]
    if include_usage:
        yield {**head, "choices": [], "usage": _usage(gens)}  # type: ignore[typeddict-item]


def _collect_completion(gens: Generations, head: dict[str, Any]) -> Callable[[Iterator[Any]], T.Completion]:
    def collect(chunks: Iterator[Any]) -> T.Completion:
        choices: dict[int, T.CompletionChoice] = {}
        for chunk in chunks:
            for c in chunk["choices"]:
                have = choices.get(c["index"])
                if have is None:
                    choices[c["index"]] = c
                    continue
                have["text"] += c["text"]
                have["finish_reason"] = c["finish_reason"]
                if have["logprobs"] is not None and c["logprobs"] is not None:
                    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                        have["logprobs"][key] += c["logprobs"][key]  # type: ignore[literal-required]
        return {**head, "choices": [choices[k] for k in sorted(choices)], "usage": _usage(gens)}  # type: ignore

    return collect


def prepare_completion(lm: Model, prompt: Any, params: Mapping[str, Any]) -> Run:
    """Checks a completions request and readies its Run (see :func:`create_completion`)."""
    p = _params.check(_params.COMPLETION, params, "create_completion")
    prompts = []
    items = _inputs(prompt, "prompt")
    for k, x in enumerate(items):
        ids = lm.tokenize(x) if isinstance(x, str) else x
        text = x if isinstance(x, str) else lm.detokenize(ids)  # also checks the ids against the vocabulary
        if not ids:
            raise ValueError("the prompt is empty (no tokens); pass some text")
        need = p["max_tokens"] or (1 if p["echo"] and p["logprobs"] is not None else 0)
        _fit(lm, ids, need, "the prompt" if len(items) == 1 else f"prompt[{k}]")
        prompts.append(_Prompt(ids, text, p["max_tokens"]))
    gens = _generations(lm, prompts, p, p["logprobs"], p["echo"])
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": _model_name(lm, p)}
    fmt = _CompletionFormat(lm, prompts, p["n"], p["echo"], p["logprobs"] is not None)
    include_usage = bool(p["stream"] and p["stream_options"] and p["stream_options"]["include_usage"])
    return Run(gens, _completion_chunks(gens, fmt, head, include_usage), _collect_completion(gens, head))


@overload
def create_completion(lm: Model, prompt: Any, *, stream: Literal[False] = ..., **params: Any) -> T.Completion: ...
@overload
def create_completion(lm: Model, prompt: Any, *, stream: Literal[True], **params: Any) -> Iterator[T.Completion]: ...
def create_completion(lm: Model, prompt: Any, **params: Any) -> Union[T.Completion, Iterator[T.Completion]]:
    """OpenAI's legacy completions (``POST /v1/completions``) on lm: see :meth:`Model.create_completion`."""
    run = prepare_completion(lm, prompt, params)
    return run if params.get("stream") else run.collect()


# -- chat completions ----------------------------------------------------------------------------------
class _ChatFormat:
    """Events to ``chat.completion.chunk`` chunks."""

    def __init__(self, lm: Model, logprobs: bool) -> None:
        self.lm, self.logprobs = lm, logprobs

    def choices(self, ev: _Event) -> Iterator[T.ChatCompletionChunkChoice]:
        if ev.first:  # OpenAI's first chunk of a choice names the role
            yield {"index": ev.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                   "finish_reason": None}
        lps: Optional[T.ChoiceLogprobs] = None
        if self.logprobs and (ev.logprobs or ev.finish_reason is None):
            lps = {"content": [self._entry(e) for e in ev.logprobs], "refusal": None}
        if ev.finish_reason is None:
            yield {"index": ev.index, "delta": {"content": ev.text}, "logprobs": lps, "finish_reason": None}
        else:
            yield {"index": ev.index, "delta": {}, "logprobs": lps,
                   "finish_reason": ev.finish_reason}  # type: ignore[typeddict-item]

    def _entry(self, e: TokenLogprob) -> T.ChatCompletionTokenLogprob:
        token_bytes = self.lm._e.token_bytes
        top: list[T.TopLogprob] = [{"token": t.token, "bytes": list(token_bytes(t.id)), "logprob": t.logprob}
                                   for t in e.top_logprobs]
        return {"token": e.token, "bytes": list(e.bytes), "logprob": e.logprob, "top_logprobs": top}  # type: ignore


def _chat_chunks(gens: Generations, fmt: _ChatFormat, head: dict[str, Any],
                 include_usage: bool) -> Iterator[T.ChatCompletionChunk]:
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    for ev in gens:
        for choice in fmt.choices(ev):
            yield {**head, "choices": [choice], **extra}  # type: ignore[typeddict-item]
    if include_usage:
        yield {**head, "choices": [], "usage": _usage(gens)}  # type: ignore[typeddict-item]


def _collect_chat(gens: Generations, head: dict[str, Any],
                  logprobs: bool) -> Callable[[Iterator[Any]], T.ChatCompletion]:
    def collect(chunks: Iterator[Any]) -> T.ChatCompletion:
        texts: dict[int, list[str]] = {}
        lps: dict[int, list[T.ChatCompletionTokenLogprob]] = {}
        reasons: dict[int, Any] = {}
        for chunk in chunks:
            for c in chunk["choices"]:
                i = c["index"]
                texts.setdefault(i, []).append(c["delta"].get("content", ""))
                lps.setdefault(i, []).extend((c["logprobs"] or {}).get("content") or [])
                reasons[i] = c["finish_reason"]
        choices: list[T.ChatCompletionChoice] = [
            {"index": i, "message": {"role": "assistant", "content": "".join(texts[i]), "refusal": None},
             "logprobs": {"content": lps[i], "refusal": None} if logprobs else None, "finish_reason": reasons[i]}
            for i in sorted(texts)]
        return {**head, "object": "chat.completion", "choices": choices, "usage": _usage(gens)}  # type: ignore

    return collect


def prepare_chat_completion(lm: Model, messages: Any, params: Mapping[str, Any]) -> Run:
    """Checks a chat completions request and readies its Run (see :func:`create_chat_completion`)."""
    p = _params.check(_params.CHAT, params, "create_chat_completion")
    logprobs = _params.chat_logprobs(p)
    if p["max_tokens"] is not None and p["max_completion_tokens"] is not None \
            and p["max_tokens"] != p["max_completion_tokens"]:
        raise ValueError(f"max_tokens ({p['max_tokens']}) and max_completion_tokens ({p['max_completion_tokens']}) "
                         "disagree; give one (max_completion_tokens is OpenAI's newer name)")
    limit = p["max_completion_tokens"] if p["max_completion_tokens"] is not None else p["max_tokens"]
    ids = lm._chat_ids(_chat_messages(messages))
    prompt = _Prompt(ids, "", _fit(lm, ids, limit, "the conversation"))
    gens = _generations(lm, [prompt], p, logprobs, False)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": _model_name(lm, p)}
    include_usage = bool(p["stream"] and p["stream_options"] and p["stream_options"]["include_usage"])
    return Run(gens, _chat_chunks(gens, _ChatFormat(lm, logprobs is not None), head, include_usage),
               _collect_chat(gens, head, logprobs is not None))


@overload
def create_chat_completion(lm: Model, messages: Any, *, stream: Literal[False] = ...,
                           **params: Any) -> T.ChatCompletion: ...
@overload
def create_chat_completion(lm: Model, messages: Any, *, stream: Literal[True],
                           **params: Any) -> Iterator[T.ChatCompletionChunk]: ...
def create_chat_completion(lm: Model, messages: Any,
                           **params: Any) -> Union[T.ChatCompletion, Iterator[T.ChatCompletionChunk]]:
    """OpenAI's chat completions (``POST /v1/chat/completions``) on lm: see :meth:`Model.create_chat_completion`."""
    run = prepare_chat_completion(lm, messages, params)
    return run if params.get("stream") else run.collect()


# -- embeddings ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingRequest:
    """A checked embeddings request: the token ids of every input, and the parameters."""

    ids: list[list[int]]
    params: dict[str, Any]


def prepare_embedding(lm: Model, input: Any, params: Mapping[str, Any]) -> EmbeddingRequest:
    """Checks an embeddings request and tokenizes its inputs as :meth:`Model.embed` does."""
    p = _params.check(_params.EMBEDDING, params, "create_embedding")
    dim = int(lm.info["dim"])
    if p["dimensions"] is not None and p["dimensions"] != dim:
        raise ValueError(f"dimensions={p['dimensions']} is not supported: this model's embeddings have {dim} "
                         "dimensions, and shortening them is not implemented")
    seqs = []
    for k, x in enumerate(_inputs(input, "input")):
        ids = lm.tokenize(x, add_bos=True, special=False) if isinstance(x, str) else x  # CLS/SEP as Model.embed
        if not ids:
            raise ValueError(f"input[{k}] has no tokens")
        seqs.append(ids)
    return EmbeddingRequest(seqs, p)


def embedding_response(lm: Model, req: EmbeddingRequest, vectors: np.ndarray) -> T.CreateEmbeddingResponse:
    """The OpenAI response for req, given its vectors (float32, one row per input)."""
    if req.params["encoding_format"] == "base64":
        values: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
    else:
        values = [v.tolist() for v in vectors]
    n = sum(len(s) for s in req.ids)
    return {"object": "list",
            "data": [{"object": "embedding", "index": k, "embedding": v} for k, v in enumerate(values)],
            "model": _model_name(lm, req.params), "usage": {"prompt_tokens": n, "total_tokens": n}}


def create_embedding(lm: Model, input: Any, **params: Any) -> T.CreateEmbeddingResponse:
    """OpenAI's embeddings (``POST /v1/embeddings``) on lm: see :meth:`Model.create_embedding`."""
    req = prepare_embedding(lm, input, params)
    return embedding_response(lm, req, lm.embed(req.ids, progress=False))  # a response: no bar in server logs


# -- the methods on Model --------------------------------------------------------------------------------
class OpenAIMethods:
    """``Model.create_completion``, ``create_chat_completion`` and ``create_embedding`` (Model inherits them)."""

    def create_completion(self, prompt: Any, **params: Any) -> Union[T.Completion, Iterator[T.Completion]]:
        """A completion of prompt as OpenAI's ``/v1/completions`` returns it.

        Args:
            prompt: a str, a list of str (one set of choices each), a list of token ids, or a list
                of lists of token ids.
            **params: OpenAI's parameters: ``max_tokens`` (default 16; 0 with ``echo`` and
                ``logprobs`` scores the prompt), ``temperature`` (default 1: sampling), ``top_p``,
                ``n`` (choices per prompt; choice j uses ``seed + j``), ``stop``, ``seed``,
                ``logprobs`` (0..20 alternatives per token), ``echo``, ``presence_penalty``,
                ``frequency_penalty``, ``logit_bias``, ``stream``, ``stream_options``
                (``include_usage``), ``model`` (the name in the response), ``user``; extensions
                ``top_k``, ``min_p``, ``repeat_penalty``. The rules: :mod:`wrenlm.openai_params`.

        Returns:
            A :class:`~wrenlm.openai_types.Completion` dict; with ``stream=True`` an iterator of them
            (chunks: each choice's pieces, then its ``finish_reason``; the choices interleaved).

        Raises:
            ValueError: an unknown or unsupported parameter (``suffix``, ``best_of`` > 1...), or a
                value out of range.
            ContextOverflowError: a prompt + max_tokens exceeds the context window.

        Example:
            >>> r = m.create_completion("The capital of France is", max_tokens=8, temperature=0)
            >>> r["choices"][0]["text"], r["usage"]["completion_tokens"]
        """
        return create_completion(self, prompt, **params)  # type: ignore[arg-type, call-overload]

    def create_chat_completion(self, messages: Any,
                               **params: Any) -> Union[T.ChatCompletion, Iterator[T.ChatCompletionChunk]]:
        """The assistant's reply to messages as OpenAI's ``/v1/chat/completions`` returns it.

        Args:
            messages: OpenAI's messages (``role``, ``content`` as a str or a list of text parts;
                ``developer`` is taken as ``system``), rendered with the model's chat template.
            **params: as :meth:`create_completion`, except: ``max_tokens`` / ``max_completion_tokens``
                default to what the context window leaves, ``logprobs`` is a bool and
                ``top_logprobs`` (0..20) the alternatives per token, no ``echo``. ``tools``,
                ``response_format`` and the like raise ValueError.

        Returns:
            A :class:`~wrenlm.openai_types.ChatCompletion` dict; with ``stream=True`` an iterator of
            :class:`~wrenlm.openai_types.ChatCompletionChunk` (per choice: the role, the pieces, an
            empty delta with the ``finish_reason``).

        Raises:
            ValueError: as :meth:`create_completion`; malformed messages.
            ChatTemplateError: the model has no chat template.
            ContextOverflowError: the conversation + max_tokens exceeds the context window.

        Example:
            >>> r = m.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=32, seed=1)
            >>> r["choices"][0]["message"]["content"]
        """
        return create_chat_completion(self, messages, **params)  # type: ignore[arg-type, call-overload]

    def create_embedding(self, input: Any, **params: Any) -> T.CreateEmbeddingResponse:
        """Embeddings of input as OpenAI's ``/v1/embeddings`` returns them (normalized, pooled as
        :meth:`embed` does).

        Args:
            input: a str, a list of str, a list of token ids, or a list of lists of token ids.
            **params: ``encoding_format`` (``"float"`` or ``"base64"``: little-endian float32),
                ``dimensions`` (only the model's own), ``model``, ``user``.

        Returns:
            A :class:`~wrenlm.openai_types.CreateEmbeddingResponse` dict.

        Raises:
            ValueError: an unknown or unsupported parameter or a malformed input.
            ContextOverflowError: an input is longer than the context window.

        Example:
            >>> wrenlm.Model("all-MiniLM-L6-v2/").create_embedding(["a doc"])["data"][0]["embedding"][:3]
        """
        return create_embedding(self, input, **params)  # type: ignore[arg-type]
