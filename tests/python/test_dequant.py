"""Dequantization of every supported tensor type vs gguf-py's numpy dequantizers (independent code).

Tolerance: rtol 1e-6 / atol 1e-6 * max|x|. Both sides compute scale * integer (+ offset) in float32;
only the order of the offset-and-scale operations may differ, which is at most an ulp or two.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K"]


def random_blocks(gguf, name: str, n_rows: int, n_cols: int, rng: np.random.Generator) -> np.ndarray:
    """Raw bytes (n_rows, row_bytes) of a tensor of this type, with every bit pattern exercised but
    the fp16 scales kept finite."""
    qt = getattr(gguf.GGMLQuantizationType, name)
    x = (rng.standard_normal((n_rows, n_cols)) * 3).astype(np.float32)
    if name in ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        raw = gguf.quants.quantize(x, qt)
        return np.ascontiguousarray(raw).view(np.uint8).reshape(n_rows, -1)
    block, size = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(n_rows, n_cols // block, size), dtype=np.uint8)
    scales = (rng.standard_normal((n_rows, n_cols // block, 2)) * 0.05).astype(np.float16).view(np.uint8)
    if name == "Q4_K":  # d, dmin at the start
        raw[:, :, 0:4] = scales.reshape(n_rows, n_cols // block, 4)
    else:  # Q6_K: d at the end
        raw[:, :, size - 2:size] = scales.reshape(n_rows, n_cols // block, 4)[:, :, :2]
    return raw.reshape(n_rows, -1)


@pytest.mark.parametrize("name", TYPES)
def test_dequantize_matches_gguf_py(name):
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(1234)
    raw = random_blocks(gguf, name, 8, 512, rng)
    qt = getattr(gguf.GGMLQuantizationType, name)
    expected = gguf.quants.dequantize(raw, qt).astype(np.float32).reshape(-1)
    got = _core.kernels.dequantize(int(qt), raw.reshape(-1))
    assert got.shape == expected.shape
    assert np.isfinite(expected).all()
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * scale)


def test_dequantize_rejects_partial_blocks():
    from wrenlm import _core

    with pytest.raises(ValueError, match="whole number"):
        _core.kernels.dequantize(3, np.zeros(21, np.uint8))  # Q4_1 blocks are 20 bytes
    with pytest.raises(ValueError, match="unsupported"):
        _core.kernels.dequantize(99, np.zeros(20, np.uint8))
