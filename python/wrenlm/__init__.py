"""wrenlm: fast, dependable CPU inference for open-weight LLMs, from Python.

    >>> import wrenlm
    >>> m = wrenlm.Model("SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=2048)
    >>> for piece in m.stream("Once upon a time", max_tokens=32):
    ...     print(piece, end="", flush=True)
"""

from __future__ import annotations

from wrenlm._loader import load_core as _load_core

_core = _load_core()

WrenError = _core.WrenError
FormatError = _core.FormatError
UnsupportedError = _core.UnsupportedError
ContextOverflowError = _core.ContextOverflowError

from wrenlm.aio import AsyncStream  # noqa: E402
from wrenlm.chat import ChatTemplateError  # noqa: E402
from wrenlm.model import Model  # noqa: E402
from wrenlm.perplexity import PerplexityResult  # noqa: E402
from wrenlm.quantize import quantize  # noqa: E402
from wrenlm.quantize import types as quantize_types  # noqa: E402
from wrenlm.session import Session  # noqa: E402
from wrenlm.stream import Stream, TokenLogprob, TopLogprob, Usage  # noqa: E402
from wrenlm.tokenizer import Tokenizer  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "Model",
    "Tokenizer",
    "PerplexityResult",
    "Session",
    "Stream",
    "AsyncStream",
    "TokenLogprob",
    "TopLogprob",
    "Usage",
    "quantize",
    "quantize_types",
    "WrenError",
    "FormatError",
    "UnsupportedError",
    "ContextOverflowError",
    "ChatTemplateError",
    "__version__",
]
