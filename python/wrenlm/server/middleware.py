"""The guards every HTTP request passes, as one ASGI middleware (streaming responses pass through
untouched): the API key, the body size limit, and one log line per request."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, Callable

from wrenlm.server.errors import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("wrenlm.server")

OPEN_PATHS = frozenset({"/health"})  # answered without the key (for load balancers and probes)


async def send_error(send: Send, err: ApiError) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the app: 401 without the API key (when one is set), 413 for a body over max_body_bytes
    (by its Content-Length, or counted as the app reads it), and after each request one log line: method,
    path, status, seconds, client, and what the handler noted in ``scope["state"]["log"]``."""

    def __init__(self, app: App, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]
        notes: dict[str, Any] = {}
        scope.setdefault("state", {})["log"] = notes

        async def send_noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            err = self._refuse(scope)
            if err is not None:
                await send_error(send_noting, err)
                return
            await self.app(scope, self._limited(receive), send_noting)
        finally:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            extra = " ".join(f"{k}={v}" for k, v in notes.items())
            log.info("%s %s %s %.3fs %s%s", scope["method"], scope["path"], status[0] or "-",
                     time.perf_counter() - start, where, f" {extra}" if extra else "")

    def _refuse(self, scope: Scope) -> ApiError | None:
        headers = dict(scope.get("headers") or [])
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
                return ApiError(401, "a valid API key is required: send the header 'Authorization: Bearer KEY'",
                                code="invalid_api_key")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return self._too_large()
            except ValueError:
                return ApiError(400, "the Content-Length header is not a number", code="invalid_value")
        return None

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the request body is larger than the server's limit of {self.max_body} bytes "
                             "(--max-body-bytes)", code="request_too_large")

    def _limited(self, receive: Receive) -> Receive:
        seen = [0]

        async def receive_limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    raise self._too_large()  # the app's ApiError handler answers it
            return message

        return receive_limited
