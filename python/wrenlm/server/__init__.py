"""``wrenlm serve``: an OpenAI-compatible HTTP server (extra ``wrenlm[server]``: FastAPI, uvicorn,
sse-starlette).

    $ wrenlm serve --model chat=SmolLM2-135M-Instruct.Q4_1.gguf --embedding-model all-MiniLM-L6-v2/

    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    >>> client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}])

Safe by default: it listens on 127.0.0.1; another host needs ``--api-key`` (or ``--no-auth``, which
warns); bodies, queue and request time are bounded. The command's flags are registered here; the web
framework is imported only when the server starts (:func:`serve`).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from wrenlm.server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, model_spec

_MISSING = ("wrenlm serve needs the server extra (FastAPI, uvicorn, sse-starlette): "
            "pip install 'wrenlm[server]'")


def add_serve_command(sub: Any) -> None:
    """Registers ``serve`` on the ``wrenlm`` command's subparsers."""
    d = ServerConfig()
    s = sub.add_parser("serve", help="serve models over an OpenAI-compatible HTTP API",
                       description="Serve chat/completion and embedding models over OpenAI's HTTP API "
                                   "(/v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings) plus "
                                   "/health, /tokenize and /detokenize. Listens on 127.0.0.1 unless told "
                                   "otherwise; another host needs --api-key or --no-auth.")
    s.add_argument("--model", "-m", action="append", type=model_spec, metavar="[ALIAS=]PATH",
                   help="chat/completion model (GGUF file), requested as ALIAS (default: its file name); "
                        "repeatable. Default: $WRENLM_MODEL, else SmolLM2-135M-Instruct Q4_1 (none when only "
                        "--embedding-model is given)")
    s.add_argument("--embedding-model", action="append", type=model_spec, metavar="[ALIAS=]PATH",
                   help="embedding model answering /v1/embeddings (GGUF file or sentence-transformers "
                        "folder); repeatable")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: a free one)")
    s.add_argument("--api-key", default=None, metavar="KEY",
                   help="key clients must send as 'Authorization: Bearer KEY' (default: $WRENLM_API_KEY, else "
                        "none; required for a non-loopback --host)")
    s.add_argument("--no-auth", action="store_true",
                   help="allow a non-loopback --host without an API key (prints a warning)")
    s.add_argument("--n-ctx", type=int, default=d.n_ctx, metavar="N",
                   help=f"context window of each model in tokens (default {d.n_ctx}; 0: the model's own)")
    s.add_argument("--threads", type=int, default=None, metavar="N",
                   help="compute threads per model (default: the number of physical cores)")
    s.add_argument("--cache-mb", type=float, default=d.cache_mb, metavar="MB",
                   help=f"prefix cache budget per model: prompts sharing a start (a system prompt, a chat "
                        f"history) reuse its computation (default {d.cache_mb:g}; 0: off)")
    s.add_argument("--parallel", type=int, default=d.parallel, metavar="N",
                   help=f"requests computed at once, batched together (default {d.parallel})")
    s.add_argument("--queue", type=int, default=d.queue, metavar="N",
                   help=f"requests waiting beyond those; more are answered 429 (default {d.queue})")
    s.add_argument("--timeout", type=float, default=d.timeout, metavar="SECONDS",
                   help=f"longest a request may take, waiting included; then it is stopped and answered 408 "
                        f"(default {d.timeout:g})")
    s.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, metavar="N",
                   help=f"largest request body accepted; larger ones are answered 413 (default {d.max_body_bytes})")
    s.add_argument("--log-prompts", action="store_true",
                   help="include prompts and inputs in the per-request log lines (default: counts only)")
    s.set_defaults(func=_cmd_serve)


def _config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(models=tuple(args.model or ()), embedding_models=tuple(args.embedding_model or ()),
                        host=args.host, port=args.port,
                        api_key=args.api_key if args.api_key is not None else os.environ.get("WRENLM_API_KEY"),
                        no_auth=args.no_auth, n_ctx=args.n_ctx, n_threads=args.threads, cache_mb=args.cache_mb,
                        parallel=args.parallel,
                        queue=args.queue, timeout=args.timeout, max_body_bytes=args.max_body_bytes,
                        log_prompts=args.log_prompts)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        serve(_config(args))
    except ModuleNotFoundError as e:
        print(f"wrenlm: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


def serve(config: ServerConfig) -> None:
    """Loads config's models and serves them until interrupted (Ctrl-C or SIGTERM).

    Raises:
        ValueError: an unsafe or invalid setting (checked before anything is loaded).
        ModuleNotFoundError: the server extra is not installed.
    """
    config.check()
    try:
        import uvicorn

        from wrenlm.server.app import create_app
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"{_MISSING} ({e})") from None
    from wrenlm.server.models import Models

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logger = logging.getLogger("wrenlm.server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host.strip("[]"), config.port))  # before loading: a taken port fails at once
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
    models = None
    try:
        models = Models.load(config)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        print(f"wrenlm serve: http://{shown}:{port}/v1 ({', '.join(f'{s.alias} [{s.kind}]' for s in models)}); "
              f"{'API key required' if config.api_key else 'no API key'}", file=sys.stderr, flush=True)
        server = uvicorn.Server(uvicorn.Config(create_app(config, models), log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    finally:
        sock.close()
        if models is not None:
            models.close()
