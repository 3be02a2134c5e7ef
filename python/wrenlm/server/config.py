"""What ``wrenlm serve`` runs with: the models and their aliases, where it listens, and its limits;
checked (safe by default) before anything is loaded. No web framework is imported here."""

from __future__ import annotations

import ipaddress
import os
import warnings
from dataclasses import dataclass, field
from typing import Optional

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: its path (None: the default model) and the alias requests name it by
    (None: the file or folder name)."""

    path: Optional[str]
    alias: Optional[str] = None


def model_spec(value: str) -> ModelSpec:
    """``[ALIAS=]PATH`` -> ModelSpec. The text before the first '=' is an alias when it holds no path
    separator and the whole value is not an existing path."""
    alias, sep, path = value.partition("=")
    if sep and alias and path and os.sep not in alias and "/" not in alias and not os.path.exists(value):
        return ModelSpec(path, alias)
    return ModelSpec(value)


@dataclass(frozen=True)
class ServerConfig:
    """Every setting of the server, with the defaults of ``wrenlm serve``.

    Attributes:
        models: chat/completion models (none given: the default model).
        embedding_models: models answering ``/v1/embeddings``.
        host, port: where to listen; port 0 picks a free port (printed at start).
        api_key: the key clients must send (``Authorization: Bearer KEY``); None: no key.
        no_auth: explicitly allow a non-loopback host without a key.
        n_ctx, n_threads, cache_mb: as :class:`wrenlm.Model` takes them (cache_mb: the prefix cache's
            budget per chat model, which lets requests sharing a system prompt or a history reuse it).
        parallel: requests computed at once (they run batched on the engine).
        queue: requests waiting for a turn beyond those; more are answered 429.
        timeout: seconds a request may take, waiting included; then it is stopped (408).
        max_body_bytes: the largest request body accepted (413 beyond).
        log_prompts: include prompt text in the request log lines.
    """

    models: tuple[ModelSpec, ...] = ()
    embedding_models: tuple[ModelSpec, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: Optional[str] = field(default=None, repr=False)
    no_auth: bool = False
    n_ctx: int = 2048
    n_threads: Optional[int] = None
    cache_mb: float = 256
    parallel: int = 16
    queue: int = 64
    timeout: float = 600.0
    max_body_bytes: int = 4 * 2**20
    log_prompts: bool = False

    def check(self) -> None:
        """Raises ValueError for a setting out of range or an unsafe combination: a host other
        than loopback needs an API key, or ``no_auth`` (which warns)."""
        for name, low in (("port", 0), ("parallel", 1), ("queue", 0), ("max_body_bytes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.port > 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty; give a non-empty --api-key (or $WRENLM_API_KEY)")
        if self.api_key is not None and self.no_auth:
            raise ValueError("--no-auth and an API key contradict each other; give one")
        aliases = [s.alias for s in (*self.models, *self.embedding_models) if s.alias is not None]
        for a in aliases:
            if aliases.count(a) > 1:
                raise ValueError(f"the model alias {a!r} is given twice; aliases must be unique")
        if not is_loopback(self.host) and self.api_key is None:
            if not self.no_auth:
                raise ValueError(f"--host {self.host} is reachable from other machines: give --api-key KEY (or set "
                                 "$WRENLM_API_KEY), or --no-auth to serve without a key")
            warnings.warn(f"wrenlm serve: listening on {self.host} WITHOUT an API key (--no-auth): anyone who "
                          "can reach this port can use the models", stacklevel=2)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches: 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
