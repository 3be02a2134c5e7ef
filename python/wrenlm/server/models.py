"""The models a server answers with, by alias: chat/completion models and embedding models."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from wrenlm.model import Model
from wrenlm.server.config import ModelSpec, ServerConfig
from wrenlm.server.errors import ApiError

CHAT = "chat"
EMBEDDING = "embedding"


@dataclass(frozen=True)
class Served:
    alias: str
    kind: str  # CHAT or EMBEDDING
    model: Model
    created: int

    def card(self) -> dict[str, Any]:
        """The model as ``/v1/models`` lists it."""
        return {"id": self.alias, "object": "model", "created": self.created, "owned_by": "wrenlm"}


class Models:
    """Aliases -> loaded models. The first model of each kind answers requests that name none."""

    def __init__(self, served: Sequence[Served]) -> None:
        self._all = {s.alias: s for s in served}

    @classmethod
    def load(cls, config: ServerConfig) -> Models:
        """Loads every model the config names (the default model when it names no chat model)."""
        specs = [(s, CHAT) for s in (config.models or (() if config.embedding_models else (ModelSpec(None),)))]
        specs += [(s, EMBEDDING) for s in config.embedding_models]
        served: list[Served] = []
        for spec, kind in specs:
            model = Model(spec.path, n_ctx=config.n_ctx, n_threads=config.n_threads, cache_mb=config.cache_mb)
            alias = spec.alias or os.path.basename(os.path.normpath(model.path))
            if any(s.alias == alias for s in served):
                raise ValueError(f"two models are both called {alias!r}; give them aliases (--model ALIAS=PATH)")
            served.append(Served(alias, kind, model, int(time.time())))
        return cls(served)

    def __iter__(self) -> Any:
        return iter(self._all.values())

    def get(self, alias: str) -> Served:
        s = self._all.get(alias)
        if s is None:
            raise ApiError(404, f"the model {alias!r} does not exist; this server has: {', '.join(self._all)}",
                           param="model", code="model_not_found")
        return s

    def pick(self, name: Any, kind: Optional[str]) -> Served:
        """The model a request names (None: the first of kind), checked to be of kind."""
        if name is None:
            first = next((s for s in self._all.values() if kind is None or s.kind == kind), None)
            if first is None:
                raise ApiError(400, f"this server has no {kind} model (see --embedding-model)", param="model",
                               code="model_not_found")
            return first
        if not isinstance(name, str):
            raise ApiError(400, f"model must be a string, got {type(name).__name__}", param="model",
                           code="invalid_value")
        s = self.get(name)
        if kind is not None and s.kind != kind:
            others = [a.alias for a in self._all.values() if a.kind == kind]
            raise ApiError(400, f"the model {name!r} is {'a chat' if s.kind == CHAT else 'an embedding'} model and "
                                f"does not answer this endpoint; {kind} models: {', '.join(others) or 'none'}",
                           param="model", code="model_not_supported")
        return s

    def close(self) -> None:
        for s in self._all.values():
            s.model.close()
