"""Chat templates: the model's Jinja template, rendered only inside a sandbox."""

from __future__ import annotations

import datetime
import operator
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wrenlm import WrenError
from wrenlm._args import check_text

# Budget of one rendering. A template is a program from a stranger: it may loop for ever or build
# huge strings, so its run time and output are bounded (limits documented in the README).
TIME_BUDGET_S = 2.0
# Output characters allowed: this base, plus OUTPUT_PER_INPUT_CHAR per character of the messages
# (a template writes each message once or a few times).
OUTPUT_BASE_CHARS = 1 << 20
OUTPUT_PER_INPUT_CHAR = 8


class ChatTemplateError(WrenError):
    """The model has no chat template, or its template failed to render these messages (an error,
    or a template over its time or output budget)."""


class _BudgetExceeded(Exception):
    pass


# printf-style conversions with their width and precision (a "*" takes them from the arguments).
_PERCENT_FIELD = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class _BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, where no single operation may build more than max_chars characters:
    repetition (``"x" * n``), powers, printf widths, and integer arguments (``ljust(n)``, ``center(n)``)
    are checked before they run."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_chars = max_chars
        self.filters = {name: self._checked(f) for name, f in self.filters.items()}

    def _too_big(self, what: str) -> _BudgetExceeded:
        return _BudgetExceeded(f"{what} exceeds the output budget of {self.max_chars} characters")

    def _check_ints(self, args: Sequence[Any]) -> None:
        for a in args:
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > self.max_chars:
                raise self._too_big(f"argument {a}")

    def _checked(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._check_ints([*args, *kwargs.values()])
            return f(*args, **kwargs)

        for attr in ("jinja_pass_arg",):  # keeps @pass_context / @pass_environment working
            if hasattr(f, attr):
                setattr(call, attr, getattr(f, attr))
        return call

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_ints([*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > self.max_chars:
                    raise self._too_big(f"repetition of {len(seq)} items x {n}")
            return operator.mul(left, right)
        if op == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and \
                    max(abs(left), 2).bit_length() * right > 4 * self.max_chars:
                raise self._too_big(f"{left} ** {right}")
            return operator.pow(left, right)
        if isinstance(left, str):
            for width, precision in _PERCENT_FIELD.findall(left):
                for v in (width, precision):
                    if v == "*" or (v and int(v) > self.max_chars):
                        raise self._too_big(f"format field width {v}")
        return operator.mod(left, right)


def _environment(max_chars: int = OUTPUT_BASE_CHARS) -> ImmutableSandboxedEnvironment:
    # Templates come from model files, i.e. from strangers: the immutable sandbox blocks attribute
    # access to internals and mutation of the passed-in objects. Whitespace options as HF uses them.
    env = _BudgetedEnvironment(max_chars, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _render_within_budget(tmpl: Any, max_chars: int, variables: dict[str, Any]) -> str:
    """Renders piece by piece, stopping once the output passes max_chars or the time budget is spent.
    The clock is read on every line the template's own code runs (a trace function limited to it), so
    a loop that writes nothing is stopped too. Under a debugger or coverage tool (a trace function
    already installed), only the output budget applies."""
    deadline = time.monotonic() + TIME_BUDGET_S

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _BudgetExceeded(f"rendering took longer than the {TIME_BUDGET_S:g} s time budget")
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return on_line(frame, event, arg) if frame.f_code.co_filename == "<template>" else None

    traced = sys.gettrace() is None
    pieces: list[str] = []
    size = 0
    if traced:
        sys.settrace(on_call)
    try:
        for piece in tmpl.generate(**variables):
            size += len(piece)
            if size > max_chars:
                raise _BudgetExceeded(f"output exceeds the budget of {max_chars} characters")
            pieces.append(piece)
    finally:
        if traced:
            sys.settrace(None)
    return "".join(pieces)


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
        check_text(f"messages[{i}]['role']", role)
        check_text(f"messages[{i}]['content']", content)
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

    Rendering is bounded: at most TIME_BUDGET_S seconds, and OUTPUT_BASE_CHARS plus
    OUTPUT_PER_INPUT_CHAR characters per character of the messages.

    Raises:
        ChatTemplateError: the model has no template, or rendering failed or ran over its budget
            (every failure of the template itself: syntax, raise_exception, recursion, memory, ...).
        ValueError: malformed messages.
    """
    msgs = validate_messages(messages)
    if not template:
        raise ChatTemplateError(
            f"{model_path or 'this model'} has no chat template (tokenizer.chat_template is missing); "
            "use generate() with your own prompt format instead"
        )
    max_chars = OUTPUT_BASE_CHARS + OUTPUT_PER_INPUT_CHAR * sum(len(m["content"]) + len(m["role"]) for m in msgs)
    where = model_path or "the model"
    try:
        tmpl = _environment(max_chars).from_string(template)
        return _render_within_budget(tmpl, max_chars, dict(
            messages=msgs,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        ))
    except TemplateError as e:
        raise ChatTemplateError(f"chat template of {where} failed: {e}") from e
    except _BudgetExceeded as e:
        raise ChatTemplateError(f"chat template of {where} stopped: {e}") from None
    except RecursionError:
        raise ChatTemplateError(f"chat template of {where} failed: recursion too deep") from None
    except MemoryError:
        raise ChatTemplateError(f"chat template of {where} failed: out of memory") from None
    except SyntaxError as e:
        # Jinja turned the template into Python that does not compile. CPython then looks for the
        # failing line in a file named after the code ("<template>", relative to the working
        # directory) and keeps it in e.text: never chained, so no such file's text is shown.
        raise ChatTemplateError(f"chat template of {where} failed: SyntaxError: {e.msg} (line {e.lineno} of "
                                "the Python that Jinja generated)") from None
    except Exception as e:  # whatever else a stranger's template raises: the template's fault, not ours
        raise ChatTemplateError(f"chat template of {where} failed: {type(e).__name__}: {e}") from e
