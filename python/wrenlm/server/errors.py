"""Errors as OpenAI answers them: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx
status for what the client can fix. Every exception a request raises is mapped here, in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from wrenlm import ContextOverflowError, WrenError
from wrenlm.chat import ChatTemplateError
from wrenlm.openai_params import ParamError

INVALID = "invalid_request_error"


class ApiError(Exception):
    """An error response: HTTP status, message, OpenAI's error type, the parameter at fault, a code."""

    def __init__(self, status: int, message: str, type: str = INVALID, param: Optional[str] = None,
                 code: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(what: str) -> ApiError:
    return ApiError(404, what, param=None, code="not_found")


def too_busy(running: int, queued: int) -> ApiError:
    return ApiError(429, f"the server is at capacity ({running} requests running, {queued} waiting); retry later",
                    type="rate_limit_exceeded", code="rate_limit_exceeded", headers={"Retry-After": "1"})


def timed_out(seconds: float) -> ApiError:
    # The openai client retries a 408 unless told not to: the same request would time out again.
    return ApiError(408, f"the request took longer than the server's timeout ({seconds:g} s) and was stopped",
                    type="timeout", code="request_timeout", headers={"x-should-retry": "false"})


def from_exception(e: BaseException, main_field: str, fields: Iterable[str]) -> Optional[ApiError]:
    """The response for an exception a request raised; None for an unexpected one (a bug: 500).

    Args:
        main_field: the request's input field (``prompt``, ``messages``, ``input``...), which a
            context overflow is about.
        fields: the request's field names: a ValueError whose message starts with one is about it.
    """
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ContextOverflowError):
        return ApiError(400, str(e), param=main_field, code="context_length_exceeded")
    if isinstance(e, ChatTemplateError):
        return ApiError(400, str(e), param="messages", code="chat_template_error")
    if isinstance(e, ParamError):
        return ApiError(400, str(e), param=e.param, code="invalid_value")
    if isinstance(e, (ValueError, WrenError)):
        message = str(e)
        param = next((f for f in sorted(fields, key=len, reverse=True)
                      if message.startswith(f) and message[len(f):len(f) + 1] in ("", " ", "[", ":", "'")), None)
        return ApiError(400, message, param=param, code="invalid_value")
    return None
