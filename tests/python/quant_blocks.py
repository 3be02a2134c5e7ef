"""Raw tensor bytes of any ggml weight type, for kernel and dequantization tests: gguf-py's quantizer
where it has one, else random bytes (every bit pattern of the quants and sub-scales exercised) with
the fp16 scale fields set to small finite values."""

from __future__ import annotations

from typing import Any

import numpy as np

# Byte offset and count of the fp16 fields of one block, for the types gguf-py cannot quantize.
FP16_FIELDS = {
    "Q2_K": (80, 2),    # scales[16], qs[64], d, dmin
    "Q3_K": (108, 1),   # hmask[32], qs[64], scales[12], d
    "Q4_K": (0, 2),     # d, dmin, scales[12], qs[128]
    "Q5_K": (0, 2),     # d, dmin, scales[12], qh[32], qs[128]
    "Q6_K": (208, 1),   # ql[128], qh[64], scales[16], d
    "IQ4_NL": (0, 1),   # d, qs[16]
    "IQ4_XS": (0, 1),   # d, scales_h, scales_l[4], qs[128]
}


def block_size(gguf: Any, name: str) -> int:
    return gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, name)][0]


def raw_matrix(gguf: Any, name: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, row_bytes) uint8: a rows x cols tensor of type `name` as the file stores it."""
    qt = getattr(gguf.GGMLQuantizationType, name)
    if name not in FP16_FIELDS:
        x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
        return np.ascontiguousarray(gguf.quants.quantize(x, qt)).view(np.uint8).reshape(rows, -1)
    block, size = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    at, count = FP16_FIELDS[name]
    scales = (rng.standard_normal((rows, cols // block, count)) * 0.05).astype(np.float16)
    raw[:, :, at:at + 2 * count] = scales.view(np.uint8).reshape(rows, cols // block, 2 * count)
    return raw.reshape(rows, -1)
