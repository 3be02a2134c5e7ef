"""The FastAPI application of ``wrenlm serve``: OpenAI's ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` (server-sent events with ``stream``) and ``/v1/embeddings``, plus
``/health``, ``/tokenize`` and ``/detokenize``.

Requests are checked and answered by :mod:`wrenlm.openai_api` (the same code as
``Model.create_*``) and computed by :mod:`wrenlm.aio` in worker threads, so the event loop never
waits for the engine; requests computed at once run batched on the engine's scheduler, which
also evaluates a prompt start shared by requests arriving together (a system prompt) once. A request
is stopped within one token when its client disconnects or its time is up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException

from wrenlm import aio
from wrenlm import openai_api as api
from wrenlm import openai_params as params_
from wrenlm.server.admission import Admission, Slot
from wrenlm.server.config import ServerConfig
from wrenlm.server.errors import ApiError, from_exception, timed_out
from wrenlm.server.middleware import Guard
from wrenlm.server.models import CHAT, EMBEDDING, Models

log = logging.getLogger("wrenlm.server")
R = TypeVar("R")

# endpoint -> (the input field, the parameter table, how a request is readied)
_GENERATE: dict[str, tuple[str, str, Callable[..., api.Run]]] = {
    "completions": ("prompt", params_.COMPLETION, api.prepare_completion),
    "chat": ("messages", params_.CHAT, api.prepare_chat_completion),
}


class _ClientGone(Exception):
    """The client disconnected before its response was ready."""


def _input_schema(field: str) -> dict[str, Any]:
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
    text = {"type": "string", "minLength": 1}
    if field == "messages":
        content = {"anyOf": [{"type": "string"}, {"type": "array", "items": {
            "type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            "required": ["type", "text"]}}]}
        return {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["role", "content"],
            "properties": {"role": {"enum": ["system", "developer", "user", "assistant"]}, "content": content}}}
    return {"anyOf": [text, {"type": "array", "items": text, "minItems": 1}, ids,
                      {"type": "array", "items": ids, "minItems": 1}]}


def _body_schema(endpoint: str, field: str, models: Models, n_ctx: int) -> dict[str, Any]:
    """The request body of endpoint: its input field, and the parameters as openai_params checks them,
    with the aliases this server answers to and the context window as the bound of max_tokens."""
    props = dict(params_.request_schema(endpoint)["properties"])
    kind = EMBEDDING if endpoint == params_.EMBEDDING else CHAT
    props["model"] = {"anyOf": [{"enum": [s.alias for s in models if s.kind == kind]}, {"type": "null"}]}
    for name in ("max_tokens", "max_completion_tokens"):
        if name in props:
            props[name] = {"anyOf": [{**props[name]["anyOf"][0], "maximum": n_ctx}, {"type": "null"}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": [field], "properties": {field: _input_schema(field), **props},
        "additionalProperties": False}}}}}


def _object_schema(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": props, "additionalProperties": False}}}}}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_float(text: str) -> Any:
    """A JSON number with a fraction or exponent; an integral one (``16.0``) as an int, as JSON Schema
    counts it (so ``max_tokens: 16.0`` is accepted)."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_json_float)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}",
                       code="invalid_json")
    return body


def _notes(request: Request) -> dict[str, Any]:
    return request.scope.setdefault("state", {}).setdefault("log", {})


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(config: ServerConfig, models: Models) -> Any:
    """The ASGI application serving models with config's limits (auth, body size, queue, timeout)."""
    admission = Admission(config.parallel, config.queue)
    n_ctx = max((s.model.n_ctx for s in models if s.kind == CHAT), default=0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each request computing uses one worker thread at a time (aio.run_blocking): room for all of
        # them, plus a few for tokenizing and preparing.
        pool = ThreadPoolExecutor(max_workers=config.parallel + 8, thread_name_prefix="wrenlm-serve")
        asyncio.get_running_loop().set_default_executor(pool)
        yield

    app = FastAPI(title="wrenlm", description="An OpenAI-compatible server for wrenlm models.", lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        what = {404: f"no such endpoint: {request.method} {request.url.path}",
                405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        err = ApiError(e.status_code, what, code="not_found" if e.status_code == 404 else None)
        return JSONResponse(err.body(), status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse(ApiError(400, f"invalid request: {e.errors()}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        err = ApiError(500, f"internal error: {type(e).__name__}: {e}", type="server_error")
        return JSONResponse(err.body(), status_code=500)

    def fail(e: BaseException, field: str, fields: Any) -> ApiError:
        err = from_exception(e, field, fields)
        if err is None:
            raise e
        return err

    def remaining(deadline: float) -> float:
        return deadline - asyncio.get_running_loop().time()

    async def admit(deadline: float) -> Slot:
        try:
            return await asyncio.wait_for(admission.acquire(), max(remaining(deadline), 0.0))
        except asyncio.TimeoutError:
            raise timed_out(config.timeout) from None

    async def guarded(request: Request, deadline: float, work: Awaitable[R]) -> R:
        """work's result; stopped (within one token) when the client disconnects or time is up."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(_until_disconnect(request))
        try:
            done, _ = await asyncio.wait({task, gone}, timeout=max(remaining(deadline), 0.0),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # the worker stops within one token
        if task in done:
            return task.result()
        if gone in done:
            raise _ClientGone
        raise timed_out(config.timeout)

    async def whole_response(request: Request, deadline: float, work: Awaitable[Any], notes: dict[str, Any],
                             field: str, fields: Any) -> Any:
        """A whole (not streamed) response from work: 499 when the client went away, API errors as
        they are, the library's errors mapped to OpenAI's shape (others are internal errors)."""
        try:
            return await guarded(request, deadline, work)
        except _ClientGone:
            notes["cancelled"] = "client_disconnected"
            return Response(status_code=499)
        except ApiError:
            raise
        except Exception as e:
            raise fail(e, field, fields) from None

    # -- models and health ----------------------------------------------------------------------
    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and load: requests running and waiting; the chat engines' batching counters since
        start (forward passes, tokens they took, the most generations one pass served)."""
        stats = [s.model._e.scheduler_stats for s in models if s.kind == CHAT]
        return {"status": "ok", "running": admission.running, "queued": admission.waiting,
                "engine": {"passes": sum(int(x["passes"]) for x in stats),
                           "tokens": sum(int(x["tokens"]) for x in stats),
                           "max_sequences": max((int(x["max_sequences"]) for x in stats), default=0)}}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [s.card() for s in models]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        return models.get(model_id).card()

    # -- completions and chat -------------------------------------------------------------------
    async def generate(request: Request, endpoint: str) -> Any:
        field, table, prepare = _GENERATE[endpoint]
        body = await _json_object(request)
        fields = list(body)
        served = models.pick(body.get("model"), CHAT)
        notes = _notes(request)
        notes["model"] = served.alias
        if body.get(field) is None:
            raise ApiError(400, f"{field} is required", param=field, code="missing_required_parameter")
        data = body.pop(field)
        if config.log_prompts:
            notes[field] = json.dumps(data, ensure_ascii=False)
        params = {**body, "model": served.alias}
        deadline = asyncio.get_running_loop().time() + config.timeout
        slot = await admit(deadline)
        streaming = False
        try:
            try:
                run = await asyncio.wait_for(aio.run_blocking(lambda: prepare(served.model, data, params)),
                                             max(remaining(deadline), 0.0))
            except asyncio.TimeoutError:
                raise timed_out(config.timeout) from None
            except Exception as e:
                raise fail(e, field, fields) from None
            if body.get("stream"):
                notes["stream"] = 1
                streaming = True
                return _EventStream(stream_events(run, deadline, notes, field, fields), slot)
            result = await whole_response(request, deadline, aio.respond(run, False), notes, field, fields)
            if not isinstance(result, Response):
                _note_usage(notes, result.get("usage"))
            return result
        finally:
            if not streaming:
                slot.release()

    async def stream_events(run: api.Run, deadline: float, notes: dict[str, Any], field: str,
                            fields: Any) -> AsyncIterator[dict[str, str]]:
        loop = asyncio.get_running_loop()
        expired = []

        def expire() -> None:  # the time is up: the run ends within one token, its chunks stop
            expired.append(True)
            run.cancel()

        timer = loop.call_at(deadline, expire)
        chunks: aio.AsyncIter[Any] = await aio.respond(run, True)
        try:
            async for chunk in chunks:
                yield {"data": json.dumps(chunk)}
            if expired:
                notes["cancelled"] = "timeout"
                yield {"data": json.dumps(timed_out(config.timeout).body())}
                return
            yield {"data": "[DONE]"}
        except Exception as e:  # mid-stream: the status is sent, the error goes as an event
            err = from_exception(e, field, fields)
            if err is None:
                log.exception("internal error while streaming")
                err = ApiError(500, f"internal error: {type(e).__name__}: {e}", type="server_error")
            notes["error"] = err.code or err.type
            yield {"data": json.dumps(err.body())}
        except asyncio.CancelledError:  # the client went away: the step in flight was cancelled and awaited
            notes["cancelled"] = "client_disconnected"
            raise
        finally:
            timer.cancel()
            await chunks.aclose()
            _note_usage(notes, run.usage())

    @app.post("/v1/completions", openapi_extra=_body_schema(params_.COMPLETION, "prompt", models, n_ctx))
    async def completions(request: Request) -> Any:
        return await generate(request, "completions")

    @app.post("/v1/chat/completions", openapi_extra=_body_schema(params_.CHAT, "messages", models, n_ctx))
    async def chat_completions(request: Request) -> Any:
        return await generate(request, "chat")

    # -- embeddings -----------------------------------------------------------------------------
    @app.post("/v1/embeddings", openapi_extra=_body_schema(params_.EMBEDDING, "input", models, n_ctx))
    async def embeddings(request: Request) -> Any:
        body = await _json_object(request)
        fields = list(body)
        served = models.pick(body.get("model"), EMBEDDING)
        notes = _notes(request)
        notes["model"] = served.alias
        if body.get("input") is None:
            raise ApiError(400, "input is required", param="input", code="missing_required_parameter")
        data = body.pop("input")
        if config.log_prompts:
            notes["input"] = json.dumps(data, ensure_ascii=False)
        params = {**body, "model": served.alias}
        deadline = asyncio.get_running_loop().time() + config.timeout
        slot = await admit(deadline)
        try:
            result = await whole_response(request, deadline, aio.acreate_embedding(served.model, data, **params),
                                          notes, "input", fields)
        finally:
            slot.release()
        if not isinstance(result, Response):
            _note_usage(notes, result.get("usage"))
        return result

    # -- tokens ---------------------------------------------------------------------------------
    tokenize_props = {"content": {"type": "string"}, "add_special": {"type": "boolean"},
                      "model": {"type": "string"}}

    @app.post("/tokenize", openapi_extra=_object_schema(tokenize_props, ["content"]))
    async def tokenize(request: Request) -> dict[str, Any]:
        """``{"content": str, "add_special": bool = true, "model": alias}`` -> ``{"tokens": [...]}``
        (add_special: the BOS token when the model adds one; special-token text is parsed)."""
        body = _only(await _json_object(request), tokenize_props, "content")
        served = models.pick(body.get("model"), None)
        content, add_special = body["content"], body.get("add_special", True)
        if not isinstance(add_special, bool):
            raise ApiError(400, f"add_special must be true or false, got {add_special!r}", param="add_special")
        try:
            tokens = await aio.run_blocking(lambda: served.model.tokenize(content, add_bos=add_special))
        except Exception as e:
            raise fail(e, "content", ["content", "text"]) from None
        return {"tokens": tokens}

    detokenize_props = {"tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "model": {"type": "string"}}

    @app.post("/detokenize", openapi_extra=_object_schema(detokenize_props, ["tokens"]))
    async def detokenize(request: Request) -> dict[str, Any]:
        """``{"tokens": [...], "model": alias}`` -> ``{"content": str}``."""
        body = _only(await _json_object(request), detokenize_props, "tokens")
        served = models.pick(body.get("model"), None)
        tokens = body["tokens"]
        if not isinstance(tokens, list):
            raise ApiError(400, f"tokens must be a list of token ids, got {type(tokens).__name__}", param="tokens")
        try:
            content = await aio.run_blocking(lambda: served.model.detokenize(tokens))
        except Exception as e:
            raise fail(e, "tokens", ["tokens", "token id"]) from None
        return {"content": content}

    return Guard(app, api_key=config.api_key, max_body_bytes=config.max_body_bytes)


def _only(body: dict[str, Any], props: dict[str, Any], required: str) -> dict[str, Any]:
    for key in body:
        if key not in props:
            raise ApiError(400, f"unknown field {key!r}; accepted: {', '.join(props)}", param=key)
    if body.get(required) is None:
        raise ApiError(400, f"{required} is required", param=required, code="missing_required_parameter")
    return body


def _note_usage(notes: dict[str, Any], usage: Optional[dict[str, Any]]) -> None:
    if usage:
        notes["prompt_tokens"] = usage.get("prompt_tokens")
        if "completion_tokens" in usage:
            notes["completion_tokens"] = usage["completion_tokens"]


class _EventStream(EventSourceResponse):
    """Server-sent events that give the request's slot back however the response ends (also when
    the client went away before the first event, so the events never started)."""

    def __init__(self, events: AsyncIterator[dict[str, str]], slot: Slot) -> None:
        super().__init__(events)
        self._slot = slot
        self._events = events

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._events.aclose()  # type: ignore[attr-defined]
            finally:
                self._slot.release()
