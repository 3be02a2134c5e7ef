"""Argument checks shared by every public surface (Model, Tokenizer, chat, CLI).

A value that cannot reach the native core intact is a ValueError naming the parameter: an integer
outside its C++ type's range, a float where an integer is meant, a string holding a lone surrogate
(not encodable as UTF-8). The native bindings check the same ranges again (bindings/args.h).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int = INT64_MAX,
              allow_none: bool = False) -> int | None:
    """An int (numpy integers too, never bool) in [minimum, maximum]; maximum defaults to the int64 range."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer{' or None' if allow_none else ''}, got {value!r}")
    value = int(value)
    low = -INT64_MAX - 1 if minimum is None else minimum
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(name: str, value: Any) -> float:
    """A real number as a Python float (an int too large for a double is an error, not inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large: {value}") from None


def check_text(name: str, value: Any) -> str:
    """A str that encodes as UTF-8 (no lone surrogates, as from a mis-decoded file name or JSON)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} is not valid Unicode text: a lone surrogate {value[e.start]!r} at index "
                         f"{e.start} cannot be encoded as UTF-8") from None
    return value


LoraArg = Union[str, "os.PathLike[str]", tuple[Any, float], Sequence[Any], None]


def lora_specs(lora: Any) -> list[tuple[str, float]]:
    """[(path, scale), ...] from the lora argument of Model and quantize: None, a path, a (path, scale)
    pair, or a list of paths and (path, scale) pairs (a bare path has scale 1.0)."""
    def is_path(x: Any) -> bool:
        return isinstance(x, (str, os.PathLike))

    def is_scale(x: Any) -> bool:
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)

    if lora is None:
        return []
    if is_path(lora) or (isinstance(lora, tuple) and len(lora) == 2 and is_path(lora[0]) and is_scale(lora[1])):
        lora = [lora]
    if isinstance(lora, (bytes, Mapping)) or not isinstance(lora, Sequence):
        raise ValueError(f"lora must be a path, a (path, scale) pair or a list of them, got {type(lora).__name__}")
    out = []
    for k, item in enumerate(lora):
        if is_path(item):
            path, scale = item, 1.0
        elif isinstance(item, (tuple, list)) and len(item) == 2 and is_path(item[0]) and is_scale(item[1]):
            path, scale = item
        else:
            raise ValueError(f"lora[{k}] must be a path or a (path, scale) pair, got {item!r}")
        scale = float(scale)
        if not math.isfinite(scale):
            raise ValueError(f"lora[{k}]: the scale must be a finite number, got {scale}")
        out.append((os.fspath(path), scale))
    return out
