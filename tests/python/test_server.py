"""`wrenlm serve` without a model: its safety rules, flags, admission control, request guards and error
mapping (the live server: test_server_live.py, test_server_fuzz.py, test_server_load.py).

Oracles: the rules as the issue states them (loopback unless a key or --no-auth; 401/413/429 in
OpenAI's error shape, which the ``openai`` client's exception types are chosen by), Python's
``ipaddress`` for what is loopback, and counting for the admission queue."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
import wrenlm
from conftest import require_module
from wrenlm.openai_params import ParamError
from wrenlm.server.config import ModelSpec, ServerConfig, is_loopback, model_spec


def test_defaults_are_safe():
    from wrenlm.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.api_key is None and not args.no_auth and not args.log_prompts
    c = ServerConfig()
    assert c.host == "127.0.0.1" and c.queue > 0 and c.timeout > 0 and c.max_body_bytes <= 64 * 2**20
    c.check()


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("192.168.1.5", False), ("example.com", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_other_hosts_need_a_key_or_no_auth():
    with pytest.raises(ValueError, match=r"--host 0\.0\.0\.0 .*--api-key.*--no-auth"):
        ServerConfig(host="0.0.0.0").check()
    ServerConfig(host="0.0.0.0", api_key="k").check()
    with pytest.warns(UserWarning, match="WITHOUT an API key"):
        ServerConfig(host="0.0.0.0", no_auth=True).check()
    with pytest.raises(ValueError, match="contradict"):
        ServerConfig(host="0.0.0.0", no_auth=True, api_key="k").check()
    with pytest.raises(ValueError, match="empty"):
        ServerConfig(api_key=" ").check()


@pytest.mark.parametrize("kw, match", [(dict(parallel=0), "parallel"), (dict(queue=-1), "queue"),
                                       (dict(port=70000), "port"), (dict(timeout=0), "timeout"),
                                       (dict(max_body_bytes=0), "max-body-bytes"),
                                       (dict(models=(ModelSpec("a", "x"), ModelSpec("b", "x"))), "alias 'x'")])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        ServerConfig(**kw).check()


def test_model_flag(tmp_path):
    assert model_spec("chat=/models/a.gguf") == ModelSpec("/models/a.gguf", "chat")
    assert model_spec("/models/a.gguf") == ModelSpec("/models/a.gguf")
    assert model_spec("dir/x=y.gguf") == ModelSpec("dir/x=y.gguf")  # a separator before '=': a path
    odd = tmp_path / "a=b.gguf"
    odd.write_bytes(b"")
    assert model_spec(str(odd)) == ModelSpec(str(odd))


def test_cli_refuses_an_open_host_before_loading_anything():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "wrenlm", "serve", "--host", "0.0.0.0", "--model", "/nonexistent.gguf"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--api-key" in r.stderr and "nonexistent" not in r.stderr  # refused before the model is looked at
    assert time.perf_counter() - t0 < 60


def test_the_cli_does_not_import_the_web_framework():
    code = ("import sys, wrenlm.cli; wrenlm.cli.build_parser(); "
            "assert not {'fastapi', 'uvicorn', 'sse_starlette', 'starlette'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_error_mapping():
    from wrenlm.server.errors import from_exception

    e = from_exception(wrenlm.ContextOverflowError("too long"), "messages", ["messages"])
    assert (e.status, e.param, e.code) == (400, "messages", "context_length_exceeded")
    e = from_exception(ParamError("top_k must be ...", "top_k"), "prompt", ["prompt", "top_k"])
    assert (e.status, e.param) == (400, "top_k")
    e = from_exception(ValueError("prompt[1] must be a string"), "prompt", ["prompt", "n"])
    assert (e.status, e.param) == (400, "prompt")
    e = from_exception(ValueError("nothing known"), "prompt", ["prompt", "n"])
    assert (e.status, e.param) == (400, None)
    assert from_exception(RuntimeError("bug"), "prompt", []) is None  # a 500, logged
    assert set(e.body()["error"]) == {"message", "type", "param", "code"}


def test_admission_queue_then_429():
    from wrenlm.server.admission import Admission
    from wrenlm.server.errors import ApiError

    async def main():
        adm = Admission(parallel=1, queue=1)
        first = await adm.acquire()
        second = asyncio.ensure_future(adm.acquire())
        await asyncio.sleep(0)
        assert (adm.running, adm.waiting) == (1, 1)
        with pytest.raises(ApiError) as e:
            await adm.acquire()
        assert e.value.status == 429 and e.value.body()["error"]["code"] == "rate_limit_exceeded"
        first.release()
        first.release()  # idempotent
        got = await second
        assert (adm.running, adm.waiting) == (1, 0)
        # a waiter that gives up leaves the queue
        third = asyncio.ensure_future(adm.acquire())
        await asyncio.sleep(0)
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)
        assert adm.waiting == 0
        got.release()
        assert adm.running == 0

    asyncio.run(main())


def test_guards_in_process():
    """401, 413 by Content-Length and by counting a chunked body, error shapes, on the real app
    (no model loaded: the guards answer before any model is needed)."""
    require_module("fastapi")
    httpx = require_module("httpx")
    from wrenlm.server.app import create_app
    from wrenlm.server.models import Models

    app = create_app(ServerConfig(api_key="k", max_body_bytes=1000), Models([]))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as h:
            assert (await h.get("/health")).status_code == 200
            r = await h.get("/v1/models")
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            auth = {"Authorization": "Bearer k"}
            assert (await h.get("/v1/models", headers=auth)).json() == {"object": "list", "data": []}
            r = await h.post("/tokenize", content=b"x" * 2000, headers=auth)
            assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

            async def chunks():
                for _ in range(20):
                    yield b"y" * 100

            r = await h.post("/tokenize", content=chunks(), headers=auth)  # no Content-Length
            assert r.status_code == 413
            r = await h.post("/v1/chat/completions", json={"messages": []}, headers=auth)
            assert r.status_code == 400 and r.json()["error"]["param"] == "model"  # no chat model here
            r = await h.get("/nope", headers=auth)
            assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
            r = await h.delete("/v1/models", headers=auth)
            assert r.status_code == 405 and "error" in r.json()

    asyncio.run(main())
