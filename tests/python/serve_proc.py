"""A live `wrenlm serve` for the tests: a real subprocess on a free port of 127.0.0.1 (--port 0, the
port read from its start line), its log in a file, stopped with SIGINT (then killed) at the end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import require_module

KEY = "test-key-123"


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@contextmanager
def serve(tmp_path: Path, *args: str, api_key: str | None = KEY, startup_s: float = 120):
    """Starts `python -m wrenlm serve --port 0 ARGS` and yields a Server once /health answers."""
    require_module("fastapi")
    require_module("uvicorn")
    require_module("sse_starlette")
    httpx = require_module("httpx")
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "wrenlm", "serve", "--port", "0", "--threads", "1", *args]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = None
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"wrenlm serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            m = re.search(r"wrenlm serve: (http://[0-9.]+:\d+)/v1", log.read_text(errors="replace"))
            if m:
                try:
                    if httpx.get(m.group(1) + "/health", timeout=5).status_code == 200:
                        url = m.group(1)
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        if url is None:
            pytest.fail(f"wrenlm serve did not start in {startup_s} s:\n{log.read_text(errors='replace')}")
        yield Server(proc, url, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
