"""Dequantization of every supported tensor type vs gguf-py's numpy dequantizers (independent code).

Tolerance: rtol 1e-6 / atol 1e-6 * max|x|. Both sides compute scale * integer (+ offset) in float32;
only the order of the offset-and-scale operations may differ, which is at most an ulp or two. (Our
dequantizers follow gguf-py's operation order, so today they agree bit for bit; the tolerance leaves
room for a compiler that fuses a multiply-add.)

The random blocks (quant_blocks.py) exercise every bit of every field, every grid entry and sign
pattern of the I-quants, and the edge scales of MXFP4/NVFP4; the real Gemma 3 file checks the types
published models use, byte for byte as the file holds them.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module
from quant_blocks import ALL_TYPES, GRID_BLOCKS, random_blocks

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-6


def assert_dequant_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    assert np.isfinite(expected).all()
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_dequantize_matches_gguf_py(name):
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(1234)
    n_rows, n_cols = 8, 2048
    qt = getattr(gguf.GGMLQuantizationType, name)
    block, _ = gguf.GGML_QUANT_SIZES[qt]
    assert n_rows * n_cols // block >= GRID_BLOCKS.get(name, 0), "too few blocks to use every grid entry"
    raw = random_blocks(gguf, name, n_rows, n_cols, rng)
    expected = gguf.quants.dequantize(raw, qt).astype(np.float32).reshape(-1)
    got = _core.kernels.dequantize(int(qt), raw.reshape(-1))
    assert_dequant_close(got, expected)


def test_iq_tables_are_generated(tmp_path):
    """cpp/tensor/iq_tables.inc is what tools/gen_iq_tables.py writes from this gguf-py (comments aside)."""
    require_module("gguf")
    out = tmp_path / "iq_tables.inc"
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_iq_tables.py"), str(out)], check=True, timeout=120)

    def code(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("//")]

    assert code(out.read_text()) == code((ROOT / "cpp" / "tensor" / "iq_tables.inc").read_text())


def test_dequantize_rejects_partial_blocks():
    from wrenlm import _core

    with pytest.raises(ValueError, match="whole number"):
        _core.kernels.dequantize(3, np.zeros(21, np.uint8))  # Q4_1 blocks are 20 bytes
    with pytest.raises(ValueError, match="unsupported"):
        _core.kernels.dequantize(99, np.zeros(20, np.uint8))


ROWS_PER_TENSOR = 96  # rows compared per tensor, spread over it (first and last included)


def test_gemma3_tensors_match_gguf_py(gemma3_path):
    """Every tensor of the real Gemma 3 270M Q4_K_M file, as our reader returns its bytes, dequantized by
    us and by gguf-py (from gguf-py's reader). Tensors with more than ROWS_PER_TENSOR rows are sampled:
    ROWS_PER_TENSOR rows evenly spaced (the 262k-row embedding alone would be 670 MB of float32)."""
    gguf = require_module("gguf")
    from wrenlm import _core

    ours = _core.GgufFile(gemma3_path)
    ours_types = {name: ttype for name, ttype, *_ in ours.tensors}
    reader = gguf.GGUFReader(gemma3_path)
    seen: Counter[str] = Counter()
    for t in reader.tensors:
        assert ours_types[t.name] == t.tensor_type.name
        ref = np.asarray(t.data).view(np.uint8)
        n_rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
        ref = ref.reshape(n_rows, -1)
        rows = np.unique(np.linspace(0, n_rows - 1, min(n_rows, ROWS_PER_TENSOR)).round().astype(np.int64))
        mine = np.frombuffer(ours.tensor_bytes(t.name), np.uint8).reshape(n_rows, -1)[rows]
        assert np.array_equal(mine, ref[rows]), f"{t.name}: our reader's bytes differ from gguf-py's"
        expected = gguf.quants.dequantize(ref[rows], t.tensor_type).astype(np.float32)
        got = _core.kernels.dequantize(int(t.tensor_type), np.ascontiguousarray(mine).reshape(-1))
        assert_dequant_close(got.reshape(expected.shape), expected)
        seen[t.tensor_type.name] += 1
    print("tensors compared per type:", dict(seen))
    assert {"Q4_K", "Q6_K", "Q8_0", "F32"} <= set(seen)
