"""Chat templates: the model's Jinja template, rendered only inside a sandbox."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wrenlm import WrenError


class ChatTemplateError(WrenError):
    """The model has no chat template, or its template failed to render these messages."""


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _environment() -> ImmutableSandboxedEnvironment:
    # Templates come from model files, i.e. from strangers: the immutable sandbox blocks attribute
    # access to internals and mutation of the passed-in objects. Whitespace options as HF uses them.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checks the OpenAI-style message list; returns plain dict copies."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise ValueError("messages is empty")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise ValueError(f"messages[{i}] must be a dict, got {type(msg).__name__}")
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{i}]['role'] must be a non-empty string, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}]['content'] must be a string, got {type(content).__name__}")
        out.append(dict(msg))
    return out


def render(
    template: str | None,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    model_path: str = "",
) -> str:
    """Renders a conversation with the model's template (from tokenizer.chat_template).

    Raises:
        ChatTemplateError: the model has no template, or rendering failed.
        ValueError: malformed messages.
    """
    msgs = validate_messages(messages)
    if not template:
        raise ChatTemplateError(
            f"{model_path or 'this model'} has no chat template (tokenizer.chat_template is missing); "
            "use generate() with your own prompt format instead"
        )
    try:
        tmpl = _environment().from_string(template)
        return tmpl.render(
            messages=msgs,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except TemplateError as e:
        raise ChatTemplateError(f"chat template of {model_path or 'the model'} failed: {e}") from e
