"""Serving benchmark: aggregate decode throughput and time to first token (p50/p95) with 1, 4 and 16
concurrent streaming chat clients, against `wrenlm serve`, llama.cpp's `llama-server --parallel N`
and llama-cpp-python's server, on the same GGUF file with the same thread count.

Each server is started fresh for each concurrency level N (llama-server with --parallel N and N times
the per-request context, so each slot has --n-ctx; wrenlm with --parallel N), on 127.0.0.1. N clients
each send --requests streamed chat completions one after another (temperature 0, --max-tokens, a
distinct prompt per request so no answer comes from a prompt cache), measured from the request to the
first content event (TTFT) and to the end. Throughput = completion tokens of all requests / wall time
of the level (tokens counted from the stream's usage when the server sends it, else content events).

    python bench/serve.py --llama-server "$(bash bench/build_llama_tools.sh llama-server)/llama-server"
    python bench/serve.py --peers wrenlm --clients 1 2 --requests 2 --max-tokens 8   # a quick check

A peer that is not available (no llama-server binary given or found, llama-cpp-python's server
extras missing) is skipped with a note. Writes bench/results/serve.{json,md} (or --out PREFIX).
Keep the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WRENLM_CACHE_DIR", Path.home() / ".cache" / "wrenlm"))
DEFAULT_MODEL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
TOPICS = ["rivers", "mountains", "the sea", "forests", "deserts", "cities", "the moon", "winter"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# -- peers ------------------------------------------------------------------------------------------
def wrenlm_cmd(a: argparse.Namespace, n: int, port: int) -> list[str]:
    return [sys.executable, "-m", "wrenlm", "serve", "--model", f"bench={a.model}", "--port", str(port),
            "--threads", str(a.threads), "--n-ctx", str(a.n_ctx), "--parallel", str(n)]


def llama_server_cmd(a: argparse.Namespace, n: int, port: int) -> list[str]:
    return [a.llama_server, "-m", str(a.model), "--host", "127.0.0.1", "--port", str(port), "-t", str(a.threads),
            "--parallel", str(n), "-c", str(a.n_ctx * n), "--alias", "bench", "--log-disable",
            "--threads-http", str(n + 2)]  # its default (-1: one per CPU) dropped connections at 16 clients


def llama_cpp_python_cmd(a: argparse.Namespace, n: int, port: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(a.model), "--model_alias", "bench",
            "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(a.threads), "--n_ctx", str(a.n_ctx)]


def available(peer: str, a: argparse.Namespace) -> Optional[str]:
    """None when the peer can run, else why not."""
    if peer == "llama-server":
        if not a.llama_server:
            return "no --llama-server binary given (build it with bench/build_llama_tools.sh llama-server)"
        if not os.access(a.llama_server, os.X_OK):
            return f"{a.llama_server} is not an executable file"
    if peer == "llama-cpp-python":
        for mod in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
            if importlib.util.find_spec(mod) is None:
                return f"module {mod} is missing (pip install 'llama-cpp-python[server]')"
    if peer == "wrenlm":
        for mod in ("fastapi", "uvicorn", "sse_starlette"):
            if importlib.util.find_spec(mod) is None:
                return f"module {mod} is missing (pip install 'wrenlm[server]')"
    return None


COMMANDS = {"wrenlm": wrenlm_cmd, "llama-server": llama_server_cmd, "llama-cpp-python": llama_cpp_python_cmd}


def start(cmd: list[str], port: int, log: Path, timeout: float = 300) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- clients ----------------------------------------------------------------------------------------
async def one_request(h: httpx.AsyncClient, url: str, k: int, max_tokens: int) -> dict[str, float]:
    topic = TOPICS[k % len(TOPICS)]
    body = {"model": "bench", "messages": [{"role": "user", "content": f"Request {k}: write about {topic}."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first: Optional[float] = None
    events, usage_tokens = 0, None
    async with h.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage_tokens = chunk["usage"].get("completion_tokens")
            for c in chunk.get("choices", []):
                if (c.get("delta") or {}).get("content"):
                    events += 1
                    if first is None:
                        first = time.perf_counter()
    end = time.perf_counter()
    return {"ttft": (first or end) - t0, "total": end - t0, "tokens": float(usage_tokens or events)}


async def level(url: str, n: int, requests: int, max_tokens: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=n + 2)) as h:
        await one_request(h, url, 10_000, 2)  # warm-up (not measured)

        async def request(k: int) -> Optional[dict[str, float]]:
            try:
                return await one_request(h, url, k, max_tokens)
            except (httpx.HTTPError, RuntimeError) as e:  # a failed request is counted, not fatal
                errors.append(f"{type(e).__name__}: {e}")
                return None

        async def client(c: int) -> list[Optional[dict[str, float]]]:
            return [await request(c * requests + j) for j in range(requests)]

        errors: list[str] = []
        t0 = time.perf_counter()
        answered = [r for rs in await asyncio.gather(*[client(c) for c in range(n)]) for r in rs]
        wall = time.perf_counter() - t0
    results = [r for r in answered if r is not None]
    if not results:
        raise RuntimeError(f"every request failed, e.g. {errors[0]}")
    ttft = [r["ttft"] for r in results]
    tokens = sum(r["tokens"] for r in results)
    return {"clients": n, "requests": len(results), "failed": len(errors), "first_error": errors[0] if errors else "",
            "completion_tokens": int(tokens), "wall_s": wall,
            "tokens_per_s": tokens / wall, "ttft_p50_ms": 1000 * statistics.median(ttft),
            "ttft_p95_ms": 1000 * percentile(ttft, 0.95)}


# -- main -------------------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="GGUF chat model (default SmolLM2 Q4_1)")
    p.add_argument("--peers", nargs="+", default=["wrenlm", "llama-server", "llama-cpp-python"],
                   choices=list(COMMANDS))
    p.add_argument("--llama-server", default=None, metavar="PATH",
                   help="llama.cpp's llama-server binary (bench/build_llama_tools.sh llama-server); absent: skipped")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=4, help="requests per client at each level (default 4)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--n-ctx", type=int, default=512, help="context per request (default 512)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve",
                   help="output prefix: writes PREFIX.json and PREFIX.md")
    a = p.parse_args(argv)
    if not a.model.is_file():
        p.error(f"--model {a.model} does not exist (run `wrenlm fetch` for the default model)")

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    logs = Path(tempfile.mkdtemp(prefix="wrenlm-bench-serve-"))
    for peer in a.peers:
        why = available(peer, a)
        if why is not None:
            skipped[peer] = why
            print(f"[skip] {peer}: {why}", file=sys.stderr)
            continue
        for n in a.clients:
            port = free_port()
            proc = start(COMMANDS[peer](a, n, port), port, logs / f"{peer}-{n}.log")
            try:
                r = asyncio.run(level(f"http://127.0.0.1:{port}", n, a.requests, a.max_tokens))
            finally:
                stop(proc)
            rows.append({"peer": peer, **r})
            print(f"{peer:18s} clients={n:3d} {r['tokens_per_s']:8.1f} tok/s  TTFT p50 {r['ttft_p50_ms']:7.1f} ms  "
                  f"p95 {r['ttft_p95_ms']:7.1f} ms  ({r['requests']} requests, {r['completion_tokens']} tokens"
                  + (f"; {r['failed']} FAILED: {r['first_error']}" if r["failed"] else "") + ")",
                  flush=True)

    meta = {"model": str(a.model), "threads": a.threads, "n_ctx": a.n_ctx, "max_tokens": a.max_tokens,
            "requests_per_client": a.requests, "machine": platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "skipped": skipped}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"Serving: {a.model.name}, {a.threads} threads, {a.max_tokens} tokens per request, "
             f"{a.requests} requests per client, streamed chat, temperature 0.", "",
             "| server | clients | tokens/s | TTFT p50 (ms) | TTFT p95 (ms) | failed requests |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['peer']} | {r['clients']} | {r['tokens_per_s']:.1f} | {r['ttft_p50_ms']:.1f} | "
              f"{r['ttft_p95_ms']:.1f} | {r['failed']} |" for r in rows]
    if skipped:
        lines += ["", *[f"- skipped {peer}: {why}" for peer, why in skipped.items()]]
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out.with_suffix('.json')} and {a.out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
