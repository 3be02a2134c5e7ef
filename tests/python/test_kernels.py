"""Every SIMD kernel against its scalar twin, and both against numpy on the dequantized data.

Tolerances: twins accumulate the same integer block sums and differ only in float summation order,
so rtol 1e-5 of the sum of |terms|. Against numpy the quantized-activation kernels are compared to a
float64 product of gguf-py's dequantized weights with the round-tripped 8-bit activation (same math,
no quantization error left), again within 1e-5 of the sum of |terms|.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module

DOT_TYPES = ["F32", "F16"]
PACKED_TYPES = ["Q8_0", "Q4_0", "Q4_1"]


def make_row(gguf, name, n, rng):
    qt = getattr(gguf.GGMLQuantizationType, name)
    w = rng.standard_normal((1, n)).astype(np.float32)
    raw = np.ascontiguousarray(gguf.quants.quantize(w, qt)).view(np.uint8).reshape(-1)
    return int(qt), raw


@pytest.mark.parametrize("name", DOT_TYPES)
@pytest.mark.parametrize("n", [32, 576, 1536])
def test_dot_twins_and_numpy(name, n):
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(n)
    tid, raw = make_row(gguf, name, n, rng)
    x = (rng.standard_normal(n) * 2).astype(np.float32)
    w = _core.kernels.dequantize(tid, raw).astype(np.float64)
    xa = x.astype(np.float64)
    expected = float(np.dot(w, xa))
    bound = 1e-5 * float(np.abs(w * xa).sum()) + 1e-6
    ref = _core.kernels.dot("generic", tid, raw, x)
    assert abs(ref - expected) <= bound
    for isa in _core.kernels.available_isas():
        got = _core.kernels.dot(isa, tid, raw, x)
        assert abs(got - ref) <= bound, f"{isa} vs generic"


def make_matrix(gguf, name, rows, cols, rng):
    qt = getattr(gguf.GGMLQuantizationType, name)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    raw = np.ascontiguousarray(gguf.quants.quantize(w, qt)).view(np.uint8)
    return int(qt), raw.reshape(-1), gguf.quants.dequantize(raw.reshape(rows, -1), qt).astype(np.float64)


@pytest.mark.parametrize("name", PACKED_TYPES)
@pytest.mark.parametrize("rows", [16, 37, 192])
def test_packed_layout_round_trip(name, rows):
    """Packing re-lays out bytes only: dequantizing the packed copy equals gguf-py's dequantization
    of the file bytes exactly (d*u + mw is exact in float32 for these formats)."""
    gguf = require_module("gguf")
    from wrenlm import _core

    tid, raw, ref = make_matrix(gguf, name, rows, 96, np.random.default_rng(rows))
    np.testing.assert_array_equal(_core.kernels.dequantize_packed(tid, raw, rows), ref.astype(np.float32))


@pytest.mark.parametrize("name", PACKED_TYPES)
@pytest.mark.parametrize("rows,cols,n", [(16, 32, 1), (37, 96, 1), (37, 96, 7), (192, 576, 9), (48, 1536, 4)])
def test_packed_gemm_twins_and_numpy(name, rows, cols, n):
    """Packed products (decode n == 1 and prefill n > 1, rows not a multiple of 16 included) of every
    ISA vs the scalar twin and vs numpy on gguf-py's dequantized weights."""
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(rows * cols + n)
    tid, raw, w = make_matrix(gguf, name, rows, cols, rng)
    x = (rng.standard_normal((n, cols)) * 2).astype(np.float32)
    xa = np.stack([_core.kernels.quantize_act_q8(r) for r in x]).astype(np.float64)
    expected = xa @ w.T  # (n, rows)
    bound = 1e-5 * (np.abs(xa) @ np.abs(w).T) + 1e-6
    ref = _core.kernels.gemm_packed("generic", tid, raw, rows, x)
    assert ref.shape == (n, rows)
    assert (np.abs(ref - expected) <= bound).all()
    for isa in _core.kernels.available_isas():
        got = _core.kernels.gemm_packed(isa, tid, raw, rows, x)
        assert (np.abs(got - ref) <= bound).all(), f"{isa} vs generic"


def test_activation_quantization_error_bound():
    from wrenlm import _core

    rng = np.random.default_rng(0)
    x = rng.standard_normal(4096).astype(np.float32)
    q = _core.kernels.quantize_act_q8(x)
    # Symmetric 8-bit per 32-block: error <= half a step = max|block| / 254.
    blocks = np.abs(x.reshape(-1, 32)).max(axis=1, keepdims=True) / 254 * (1 + 1e-6)
    assert (np.abs(q - x).reshape(-1, 32) <= blocks).all()


def test_active_isa_is_known():
    from wrenlm import _core

    assert _core.kernels.active_isa() in _core.kernels.available_isas()
