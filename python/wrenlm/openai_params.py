"""The request parameters of the OpenAI-shaped API: one table of what each endpoint accepts, with
defaults and ranges, checked once before anything runs.

Rules, in the order they apply:

- A parameter given as None counts as not given (OpenAI treats ``null`` as the default), so code that
  passes every keyword, as llama-cpp-python's wrappers do, works.
- A name OpenAI defines that wrenlm cannot honour (``tools``, ``response_format``, ``suffix``,
  ``best_of`` > 1, ...) is a ValueError naming it, never silently dropped; its neutral value (the one
  that asks for nothing, e.g. ``best_of=1``, ``tool_choice="none"``) is accepted.
- ``user`` and ``safety_identifier`` are accepted and ignored: OpenAI documents them as identifiers
  of the end user for abuse monitoring, with no effect on the output.
- ``model`` is accepted and only names the model in the response (this Model answers either way).
- Three extensions llama-cpp-python and vLLM also take: ``top_k``, ``min_p`` and ``repeat_penalty``
  (see :meth:`wrenlm.Model.stream`).
- Any other name is a ValueError listing the accepted ones.

Ranges are OpenAI's, except ``logprobs`` of completions (OpenAI: up to 5; here up to 20, what the
engine records) and ``stop`` (OpenAI: up to 4 strings; here any number).

Every check also carries a JSON schema of what it accepts (:func:`request_schema`), so the HTTP
server's OpenAPI description is read from this table too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from wrenlm._args import INT32_MAX, UINT64_MAX, check_text

COMPLETION = "completion"
CHAT = "chat"
EMBEDDING = "embedding"
_GEN = frozenset({COMPLETION, CHAT})
_ALL = frozenset({COMPLETION, CHAT, EMBEDDING})


class ParamError(ValueError):
    """A parameter that is unknown, unsupported or out of range; ``param`` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _with_schema(check: Callable[[str, Any], Any], schema: dict[str, Any]) -> Callable[[str, Any], Any]:
    check.schema = schema  # type: ignore[attr-defined]
    return check


def _number(lo: Optional[float], hi: Optional[float], *, integer: bool = False,
            above_lo: bool = False) -> Callable[[str, Any], Any]:
    """A number (an integer with integer=True) in [lo, hi]; above_lo: in (lo, hi]."""
    what = "an integer" if integer else "a number"
    span = f" in {'(' if above_lo else '['}{lo:g}, {hi:g}]" if lo is not None and hi is not None else \
        f" {'>' if above_lo else '>='} {lo:g}" if lo is not None else f" <= {hi:g}" if hi is not None else ""

    def check(name: str, value: Any) -> Any:
        ok_type = isinstance(value, (int, np.integer)) if integer else \
            isinstance(value, (int, float, np.integer, np.floating))
        if isinstance(value, bool) or not ok_type:
            raise ValueError(f"{name} must be {what}{span}, got {value!r}")
        v = int(value) if integer else float(value)
        if (not integer and math.isnan(v)) or (lo is not None and (v <= lo if above_lo else v < lo)) \
                or (hi is not None and v > hi):
            raise ValueError(f"{name} must be {what}{span}, got {value!r}")
        return v

    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    if lo is not None:
        schema["exclusiveMinimum" if above_lo else "minimum"] = int(lo) if integer else lo
    if hi is not None:
        schema["maximum"] = int(hi) if integer else hi
    return _with_schema(check, schema)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


_with_schema(_boolean, {"type": "boolean"})


def _string(name: str, value: Any) -> str:
    return check_text(name, value)


_with_schema(_string, {"type": "string"})


def _stop(name: str, value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if isinstance(stops, (bytes, Mapping)) or not isinstance(stops, Sequence) or \
            not all(isinstance(s, str) for s in stops):
        raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")
    for k, s in enumerate(stops):
        check_text(f"{name}[{k}]", s)
        if not s:
            raise ValueError(f"{name} strings must not be empty ({name}[{k}] is '')")
    return list(stops)


_with_schema(_stop, {"anyOf": [{"type": "string", "minLength": 1},
                               {"type": "array", "items": {"type": "string", "minLength": 1}}]})


def _logit_bias(name: str, value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict {{token id: bias}}, got {type(value).__name__}")
    out = {}
    for key, bias in value.items():
        token = int(key) if isinstance(key, str) and key.strip().isdigit() else key  # JSON has string keys
        token = _number(0, INT32_MAX, integer=True)(f"{name} token id", token)
        out[token] = _number(-100, 100)(f"{name}[{key!r}]", bias)
    return out


_with_schema(_logit_bias, {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                           "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}})


def _stream_options(name: str, value: Any) -> dict[str, bool]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict such as {{'include_usage': True}}, got {value!r}")
    for key in value:
        if key != "include_usage":
            raise ValueError(f"{name}[{key!r}] is not supported; the only option is 'include_usage'")
    return {"include_usage": _boolean(f"{name}['include_usage']", value.get("include_usage", False))}


_with_schema(_stream_options, {"type": "object", "properties": {"include_usage": {"type": "boolean"}},
                               "additionalProperties": False})


def _one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return str(value)

    return _with_schema(check, {"enum": list(choices)})


_SAME: Any = object()


@dataclass(frozen=True)
class Param:
    """One accepted parameter: where it applies, its check (which returns the normalized value),
    and its default; the chat endpoint's check and default where they differ."""

    endpoints: frozenset[str]
    check: Callable[[str, Any], Any]
    default: Any = None
    chat_default: Any = _SAME
    chat_check: Any = _SAME

# Defaults are OpenAI's: temperature 1 (sampling, unlike Model.generate's greedy default), 16 tokens
# for completions, and for chat as many as the context window leaves (None).
PARAMS: dict[str, Param] = {
    "max_tokens": Param(_GEN, _number(0, None, integer=True), 16, None, _number(1, None, integer=True)),
    "max_completion_tokens": Param(frozenset({CHAT}), _number(1, None, integer=True)),
    "temperature": Param(_GEN, _number(0, 2), 1.0),
    "top_p": Param(_GEN, _number(0, 1, above_lo=True), 1.0),  # 0 would leave no token to sample
    "n": Param(_GEN, _number(1, 128, integer=True), 1),
    "stop": Param(_GEN, _stop, []),
    "seed": Param(_GEN, _number(0, UINT64_MAX, integer=True)),
    "presence_penalty": Param(_GEN, _number(-2, 2), 0.0),
    "frequency_penalty": Param(_GEN, _number(-2, 2), 0.0),
    "logit_bias": Param(_GEN, _logit_bias),
    # completions: how many alternatives per token (None: no logprobs); chat: a bool, with top_logprobs
    "logprobs": Param(_GEN, _number(0, 20, integer=True), None, False, _boolean),
    "top_logprobs": Param(frozenset({CHAT}), _number(0, 20, integer=True)),
    "echo": Param(frozenset({COMPLETION}), _boolean, False),
    "stream": Param(_GEN, _boolean, False),
    "stream_options": Param(_GEN, _stream_options),
    # wrenlm (and llama-cpp-python, vLLM) extensions: Model.stream's filters
    "top_k": Param(_GEN, _number(0, INT32_MAX, integer=True), 0),
    "min_p": Param(_GEN, _number(0, 1), 0.0),
    "repeat_penalty": Param(_GEN, _number(0, None), 1.0),
    # embeddings
    "encoding_format": Param(frozenset({EMBEDDING}), _one_of("float", "base64"), "float"),
    "dimensions": Param(frozenset({EMBEDDING}), _number(1, None, integer=True)),
    # accepted everywhere; see the module docstring
    "model": Param(_ALL, _string),
    "user": Param(_ALL, _string),
    "safety_identifier": Param(_ALL, _string),
}

# OpenAI parameters wrenlm does not implement, with the value that asks for nothing (accepted).
_NOTHING = object()
UNSUPPORTED: dict[str, Any] = {
    "suffix": _NOTHING, "best_of": 1, "tools": [], "tool_choice": "none", "functions": [],
    "function_call": "none", "parallel_tool_calls": _NOTHING, "response_format": {"type": "text"},
    "audio": _NOTHING, "modalities": ["text"], "prediction": _NOTHING, "reasoning_effort": _NOTHING,
    "service_tier": _NOTHING, "store": False, "metadata": _NOTHING, "web_search_options": _NOTHING,
    "verbosity": _NOTHING, "prompt_cache_key": _NOTHING, "prompt_cache_retention": _NOTHING,
    "prompt_cache_options": _NOTHING, "moderation": _NOTHING,
}


def _default(p: Param, endpoint: str) -> Any:
    d = p.chat_default if endpoint == CHAT and p.chat_default is not _SAME else p.default
    return list(d) if isinstance(d, list) else d


def check(endpoint: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every parameter of endpoint, checked and normalized, defaults filled in.

    Args:
        endpoint: ``"completion"``, ``"chat"`` or ``"embedding"``.
        given: the caller's keyword arguments (None values count as not given).
        where: the function name for messages (``create_completion``...).

    Raises:
        ValueError: an unknown or unsupported parameter, or a value outside its type or range.
    """
    out = {name: _default(p, endpoint) for name, p in PARAMS.items() if endpoint in p.endpoints}
    for name, value in given.items():
        if value is None:
            continue
        p = PARAMS.get(name)
        if p is not None and endpoint in p.endpoints:
            try:
                out[name] = _checker(p, endpoint)(name, value)
            except ValueError as e:
                raise ParamError(str(e), name) from None
        elif name in UNSUPPORTED:
            neutral = UNSUPPORTED[name]
            if neutral is _NOTHING or value != neutral:
                raise ParamError(f"{name} is not supported by wrenlm's {where}()"
                                 + ("" if neutral is _NOTHING else f" (only {name}={neutral!r}, the default)"), name)
        else:
            accepted = sorted(n for n, p in PARAMS.items() if endpoint in p.endpoints)
            raise ParamError(f"{where}() got an unknown parameter {name!r}; accepted: {', '.join(accepted)}", name)
    if out.get("stream_options") is not None and not out["stream"]:
        raise ParamError("stream_options is only allowed with stream=True", "stream_options")
    return out


def _checker(p: Param, endpoint: str) -> Callable[[str, Any], Any]:
    return p.chat_check if endpoint == CHAT and p.chat_check is not _SAME else p.check


def request_schema(endpoint: str) -> dict[str, Any]:
    """A JSON schema (OpenAPI 3.1) of the parameters endpoint accepts, read from the same table
    :func:`check` applies: each one's type and range, null allowed (null counts as not given)."""
    props = {name: {"anyOf": [_checker(p, endpoint).schema, {"type": "null"}]}  # type: ignore[attr-defined]
             for name, p in PARAMS.items() if endpoint in p.endpoints}
    return {"type": "object", "properties": props}


def chat_logprobs(params: Mapping[str, Any]) -> Optional[int]:
    """The chat endpoint's ``logprobs`` (bool) and ``top_logprobs`` (0..20, needs logprobs=True) as the
    engine's number of alternatives per token; None: no logprobs."""
    top = params.get("top_logprobs")
    if top is not None and not params["logprobs"]:
        raise ParamError("top_logprobs needs logprobs=True", "top_logprobs")
    return (top or 0) if params["logprobs"] else None
