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
from quant_blocks import block_size, random_blocks

DOT_TYPES = ["F32", "F16"]
PACKED_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS",
                "TQ2_0"]
# The codebook formats, decoded row by row to int8 (tensor/decode_i8.h) for 8-bit products.
I8_TYPES = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "MXFP4", "NVFP4"]


def assert_twins(run, expected, bound):
    """run(isa) -> result. The scalar twin ("generic") must match the independent oracle `expected`
    within `bound` (elementwise), and every ISA this CPU offers must match the scalar twin."""
    from wrenlm import _core

    ref = np.asarray(run("generic"))
    assert ref.shape == np.shape(expected)
    assert (np.abs(ref - expected) <= bound).all(), "generic vs oracle"
    for isa in _core.kernels.available_isas():
        assert (np.abs(np.asarray(run(isa)) - ref) <= bound).all(), f"{isa} vs generic"


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
    assert_twins(lambda isa: _core.kernels.dot(isa, tid, raw, x), expected, bound)


@pytest.mark.parametrize("rows,cols,n,r0,r1", [(1, 16, 1, 0, 1), (7, 37, 5, 0, 7), (13, 96, 4, 2, 11),
                                             (64, 576, 9, 0, 64), (9, 2048, 17, 1, 9)])
def test_gemm_f16_twins_and_numpy(rows, cols, n, r0, r1):
    """The F16 rows-times-tokens product (few-token and prefill steps of F16 models): every ISA vs the
    scalar twin and vs numpy in float64, for column counts that leave SIMD tails, row counts that
    leave register-block tails and a sub-range of rows (untouched rows stay 0)."""
    from wrenlm import _core

    rng = np.random.default_rng(rows * cols + n)
    w = rng.standard_normal((rows, cols)).astype(np.float16)
    x = (rng.standard_normal((n, cols)) * 2).astype(np.float32)
    wa = w.astype(np.float64)
    expected = np.zeros((n, rows))
    expected[:, r0:r1] = x.astype(np.float64) @ wa[r0:r1].T
    bound = 1e-5 * (np.abs(x).astype(np.float64) @ np.abs(wa).T) + 1e-6
    assert_twins(lambda isa: _core.kernels.gemm_f16(isa, w.view(np.uint16), x, r0, r1), expected, bound)


def make_matrix(gguf, name, rows, cols, rng):
    """A rows x cols matrix of type `name` (cols rounded up to whole blocks): type id, raw bytes and
    gguf-py's dequantization (float64)."""
    qt = getattr(gguf.GGMLQuantizationType, name)
    raw = random_blocks(gguf, name, rows, cols, rng)
    return int(qt), raw.reshape(-1), gguf.quants.dequantize(raw, qt).astype(np.float64)


def act_q8_oracle(w, n, rng):
    """n random activation rows x for the weights w (rows, cols, float64), and the oracle of the 8-bit
    products: the float64 product with the round-tripped 8-bit activations, and its bound."""
    from wrenlm import _core

    x = (rng.standard_normal((n, w.shape[1])) * 2).astype(np.float32)
    xa = np.stack([_core.kernels.quantize_act_q8(r) for r in x]).astype(np.float64)
    bound = 1e-5 * (np.abs(xa) @ np.abs(w).T) + 1e-6
    return x, xa @ w.T, bound  # expected: (n, rows)


def packed_cols(gguf, name, cols):
    """cols for the 32-column types; the same number of 256-column blocks' worth, scaled down, for the
    K-quants (at least one block, and more than one where cols spans several 32-blocks)."""
    block = block_size(gguf, name)
    return cols if block == 32 else block * max(1, cols // 96)


@pytest.mark.parametrize("name", PACKED_TYPES)
@pytest.mark.parametrize("rows", [16, 37, 192])
def test_packed_layout_round_trip(name, rows):
    """Packing re-lays out bytes only: dequantizing the packed copy equals gguf-py's dequantization
    of the file bytes exactly (d*u + mw is exact in float32 for these formats)."""
    gguf = require_module("gguf")
    from wrenlm import _core

    tid, raw, ref = make_matrix(gguf, name, rows, packed_cols(gguf, name, 96), np.random.default_rng(rows))
    np.testing.assert_array_equal(_core.kernels.dequantize_packed(tid, raw, rows), ref.astype(np.float32))


@pytest.mark.parametrize("name", PACKED_TYPES)
@pytest.mark.parametrize("rows,cols,n", [(16, 32, 1), (37, 96, 1), (37, 96, 7), (192, 576, 9), (48, 1536, 4)])
def test_packed_gemm_twins_and_numpy(name, rows, cols, n):
    """Packed products (decode n == 1 and prefill n > 1, rows not a multiple of 16 included) of every
    ISA vs the scalar twin and vs numpy on gguf-py's dequantized weights."""
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(rows * cols + n)
    cols = packed_cols(gguf, name, cols)
    tid, raw, w = make_matrix(gguf, name, rows, cols, rng)
    x, expected, bound = act_q8_oracle(w, n, rng)
    assert_twins(lambda isa: _core.kernels.gemm_packed(isa, tid, raw, rows, x), expected, bound)


@pytest.mark.parametrize("name,rows,cols,n", [
    *[(name, *shape) for name in I8_TYPES
      for shape in [(3, 256, 1), (17, 768, 1), (6, 512, 3), (6, 512, 4), (9, 512, 5), (5, 2304, 16), (37, 768, 21)]],
    ("MXFP4", 4, 96, 3),  # an odd number of 32-blocks: the AVX-512 kernel's one-block tail
    ("MXFP4", 20, 96, 13),  # groups of rows: a partial one, and a partial 256-column chunk
])
def test_i8_gemm_twins_and_numpy(name, rows, cols, n):
    """Codebook rows decoded to int8 times 8-bit activations on every ISA vs the scalar twin, and vs
    numpy on gguf-py's dequantized weights: up to 4 tokens, the ISA's fused row kernel (DotRowFn,
    runs of 4, 2 and 1 tokens) where it has one, else the decoder and dot_i8; from 5 tokens on, 16
    rows at a time times every token (gemm_i8_rows: 37 rows and 21 tokens take every run length of
    its token loop and a partial group)."""
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(rows * cols + n)
    tid, raw, w = make_matrix(gguf, name, rows, cols, rng)
    x, expected, bound = act_q8_oracle(w, n, rng)
    assert_twins(lambda isa: _core.kernels.gemm_i8(isa, tid, raw, rows, x), expected, bound)


@pytest.mark.parametrize("n_rows", [1, 8, 13, 37])
@pytest.mark.parametrize("k", [4, 8, 16, 19, 64])
def test_rows_dot_twins_and_numpy(n_rows, k):
    """LoRA's B h on decode (y += s B h for a run of B's rows of a few floats each): eight-row blocks,
    k and row tails, on every ISA vs the scalar twin and vs numpy in float64."""
    from wrenlm import _core

    rng = np.random.default_rng(n_rows * 100 + k)
    b = rng.standard_normal((n_rows, k)).astype(np.float32)
    h = rng.standard_normal(k).astype(np.float32)
    y = rng.standard_normal(n_rows).astype(np.float32)
    expected = y + 0.75 * (b.astype(np.float64) @ h)
    bound = 1e-5 * (np.abs(y) + 0.75 * np.abs(b).astype(np.float64) @ np.abs(h)) + 1e-6
    assert_twins(lambda isa: _core.kernels.rows_dot_f32(isa, b, h, 0.75, y), expected, bound)


def test_activation_quantization_error_bound():
    from wrenlm import _core

    rng = np.random.default_rng(0)
    x = rng.standard_normal(4096).astype(np.float32)
    q = _core.kernels.quantize_act_q8(x)
    # Symmetric 8-bit per 32-block: error <= half a step = max|block| / 254.
    blocks = np.abs(x.reshape(-1, 32)).max(axis=1, keepdims=True) / 254 * (1 + 1e-6)
    assert (np.abs(q - x).reshape(-1, 32) <= blocks).all()


def quantize_act_oracle(x):
    """numpy float32 model of the 8-bit activation blocks (the rule llama.cpp's q8 activations use):
    d = max|x| / 127 per 32-block, q = x * (1 / d) rounded half away from zero, and each half's
    integer sum. Every step is one float32 operation, so the expected bits are exact."""
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    divide = ~np.isfinite(inv)  # subnormal d: 1/d overflows, so x / d is used
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(divide[:, None], b / d[:, None], b * inv[:, None]).astype(np.float32)
    v = (v + np.where(v >= 0, np.float32(0.5), np.float32(-0.5))).astype(np.float32)
    q = np.trunc(v).astype(np.int32)
    isum = np.stack([q[:, :16].sum(1), q[:, 16:].sum(1)], axis=1)
    return q.astype(np.int8).reshape(-1), d, isum


def quantize_act_inputs():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(32 * 64).astype(np.float32) * np.float32(10.0) ** rng.integers(-6, 6, 32 * 64)
    blocks = [
        np.zeros(32, np.float32),                                   # d = 0
        np.full(32, -0.0, np.float32),
        (np.arange(32, dtype=np.float32) - 16) * np.float32(1e-38),  # subnormal d: the divide branch
        np.array([127, -127] + [k + 0.5 for k in range(-15, 15)], np.float32),  # d = 1: ties round away
        np.full(32, 3.0e38, np.float32) * np.sign(np.arange(32) - 15.5).astype(np.float32),
    ]
    return np.concatenate([x, *blocks]).astype(np.float32)


# The activation quantizer: every ISA gives the scalar twin's bits, which are the numpy model's.
def test_quantize_act_twins_are_bit_identical_to_numpy():
    from wrenlm import _core

    x = quantize_act_inputs()
    qs_ref, d_ref, isum_ref = quantize_act_oracle(x)
    for isa in _core.kernels.available_isas():
        qs, scales, isum = _core.kernels.quantize_act(isa, x)
        assert (qs == qs_ref).all(), isa
        assert (scales[:, 0].view(np.uint32) == d_ref.view(np.uint32)).all(), isa
        assert (isum == isum_ref).all(), isa
        with np.errstate(over="ignore"):
            total = (d_ref * (isum_ref[:, 0] + isum_ref[:, 1]).astype(np.float32)).astype(np.float32)
        assert (scales[:, 1].view(np.uint32) == total.view(np.uint32)).all(), isa
        with np.errstate(over="ignore"):  # the 3e38 block's sums overflow to inf, as in the kernels
            halves = (d_ref[:, None] * isum_ref.astype(np.float32)).astype(np.float32)
        assert (scales[:, 2:].view(np.uint32) == halves.view(np.uint32)).all(), isa


# A block holding NaN or inf takes the twin's path on every ISA: NaN scale and sums, zero codes.
def test_quantize_act_non_finite_block_is_nan_on_every_isa():
    from wrenlm import _core

    x = np.ones(96, np.float32)
    x[40], x[70] = np.nan, np.inf
    for isa in _core.kernels.available_isas():
        qs, scales, isum = _core.kernels.quantize_act(isa, x)
        assert np.isfinite(scales[0]).all() and np.isnan(scales[1:]).all(), isa
        assert (qs[32:] == 0).all() and (isum[1:] == 0).all(), isa


# silu(g) * u against float64 numpy: the twins' exp (libm; the SIMD kernels' 8-term polynomial,
# kernels/exp_poly.h, under 1e-7 relative) and one division and two roundings give a few float32
# ulps, so 2**-20 relative; plus 1e-35 absolute for g < -88, where AVX2's exp saturates (silu there
# is below 1e-35 in size either way).
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 33, 1000])
def test_silu_mul_twins_and_numpy(n):
    from wrenlm import _core

    rng = np.random.default_rng(n)
    g = (rng.standard_normal(n) * 8).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    if n >= 7:
        g[:7] = [0.0, -0.0, 100.0, -100.0, -90.0, 88.5, 1e-30]
    g64 = g.astype(np.float64)
    expected = g64 / (1 + np.exp(-g64)) * u
    bound = 2.0**-20 * np.abs(expected) + 1e-35
    assert_twins(lambda isa: _core.kernels.silu_mul(isa, g, u), expected, bound)


# gelu_tanh(g) * u, GELU's tanh form (Gemma's GeGLU), against float64 numpy. Oracle and kernels use
# g / 2 (1 + tanh(y)) = g / (1 + e^-2y): 1 + tanh(y) cancels for y << 0 (in float64 too: all digits
# lost by y = -19). Float32 rounding of y (a few 2**-24 relative) becomes |2y| times that in
# e^-2y, so the bound grows with |y|.
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 33, 1000])
def test_gelu_tanh_mul_twins_and_numpy(n):
    from wrenlm import _core

    rng = np.random.default_rng(n + 50)
    g = (rng.standard_normal(n) * 4).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    if n >= 7:
        g[:7] = [0.0, -0.0, 30.0, -30.0, -6.0, 1e-30, 3.0]
    g64 = g.astype(np.float64)
    y = np.sqrt(2 / np.pi) * (g64 + 0.044715 * g64**3)
    with np.errstate(over="ignore"):  # e^-2y = inf for g = -30: the value is -0, as in the kernels
        expected = g64 / (1 + np.exp(-2 * y)) * u
    assert np.allclose(expected[np.abs(y) < 3], (0.5 * g64 * (1 + np.tanh(y)) * u)[np.abs(y) < 3], rtol=1e-12)
    bound = 2.0**-21 * (4 + np.abs(2 * y)) * np.abs(expected) + 1e-35
    assert_twins(lambda isa: _core.kernels.gelu_tanh_mul(isa, g, u), expected, bound)


def test_active_isa_is_known():
    from wrenlm import _core

    assert _core.kernels.active_isa() in _core.kernels.available_isas()


# -- KV cache / attention kernels -------------------------------------------------------------
# Scores and values over cache rows (float32 or float16) for n_q query heads sharing one KV head.
# Tolerance as for the dots: twins and a float64 numpy product of the same (F16-decoded) inputs
# differ by summation order only, so 1e-5 of the sum of |terms|.


@pytest.mark.parametrize("cache_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("n_q", [1, 3, 4, 7])
# head_dim 64 and 128 take AVX-512's unrolled paths, 48 and 80 its general one, 8 and 36 the AVX2
# kernels on every SIMD table; key counts off a multiple of 16 exercise the last partial block.
@pytest.mark.parametrize("head_dim,n_keys", [(64, 1), (64, 130), (8, 5), (36, 70), (48, 37), (80, 16), (128, 300)])
def test_attention_scores_twins(cache_dtype, n_q, head_dim, n_keys):
    from wrenlm import _core

    rng = np.random.default_rng(head_dim * 1000 + n_keys + n_q)
    offset = head_dim  # second head of a 3-head row: exercises the row stride
    keys = (rng.standard_normal((n_keys, 3 * head_dim)) * 3).astype(cache_dtype)
    q = rng.standard_normal((n_q, head_dim)).astype(np.float32)
    scale = 1 / np.sqrt(head_dim)
    k = keys[:, offset:offset + head_dim].astype(np.float64)
    expected = scale * q.astype(np.float64) @ k.T
    bound = 1e-5 * scale * (np.abs(q).astype(np.float64) @ np.abs(k).T) + 1e-6
    assert expected.shape == (n_q, n_keys)
    assert_twins(lambda isa: _core.kernels.attn_scores(isa, q, keys, offset, scale), expected, bound)


@pytest.mark.parametrize("cache_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("n_q", [1, 3, 4, 6])
# 256 needs several column tiles and key blocks; 48 and 80 end on a single-vector tile.
@pytest.mark.parametrize("head_dim,n_keys", [(64, 1), (64, 200), (8, 5), (36, 70), (48, 37), (80, 9), (128, 65),
                                             (256, 150)])
def test_attention_values_twins(cache_dtype, n_q, head_dim, n_keys):
    from wrenlm import _core

    rng = np.random.default_rng(head_dim * 1000 + n_keys + n_q + 1)
    offset = 2 * head_dim
    values = (rng.standard_normal((n_keys, 3 * head_dim)) * 3).astype(cache_dtype)
    p = rng.random((n_q, n_keys)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    v = values[:, offset:offset + head_dim].astype(np.float64)
    expected = p.astype(np.float64) @ v
    bound = 1e-5 * (p.astype(np.float64) @ np.abs(v)) + 1e-6
    assert expected.shape == (n_q, head_dim)
    assert_twins(lambda isa: _core.kernels.attn_values(isa, p, values, offset, head_dim), expected, bound)


# Softmax numerators exp(x - shift) and their sum. Oracle: float64 exp of the float32 difference (the
# kernels subtract in float32 too). Each value within 2 ulps (2**-22 relative) of it, or 1.2e-38
# absolute: the AVX2 kernel returns 0 below the normal range (e^-87.33), where the true value is
# smaller than that. The sum within its worst-case float32 rounding, n * 2**-24 relative.
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 100, 1000])
def test_exp_sum_twins_and_numpy(n):
    from wrenlm import _core

    rng = np.random.default_rng(n)
    x = (rng.random(n) * -110 + 3).astype(np.float32)  # e^... down to the subnormal range and below
    if n >= 3:  # a masked-out score, the maximum, just below the normal range
        x[:3] = [-np.inf, 3.0, -87.34]
    shift = np.float32(x.max())
    expected = np.exp((x - shift).astype(np.float64))
    bound = 2.0**-22 * expected + 1.2e-38
    assert_twins(lambda isa: _core.kernels.exp_sum(isa, x, shift)[0], expected, bound)
    total = expected.sum()
    assert_twins(lambda isa: _core.kernels.exp_sum(isa, x, shift)[1], total, n * 2.0**-24 * total)


def test_f16_conversions_match_numpy_exactly():
    from wrenlm import _core

    rng = np.random.default_rng(7)
    # Normals across the whole range, subnormals, halfway cases, overflow, zeros and infinities.
    x = np.concatenate([
        rng.standard_normal(1000) * 10.0 ** rng.integers(-8, 6, 1000),
        np.float32(2.0 ** -24) * np.arange(-40, 40, 0.5),
        [65504, 65519.99, 65520, 1e6, -1e6, 0.0, -0.0, np.inf, -np.inf, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11],
    ]).astype(np.float32)
    with np.errstate(over="ignore"):  # the overflow to inf is one of the cases
        expected = x.astype(np.float16).view(np.uint16)
    all_bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    finite = ~np.isnan(all_bits.view(np.float16))
    for isa in _core.kernels.available_isas():
        assert (_core.kernels.f32_to_f16(isa, x) == expected).all(), isa
        back = _core.kernels.f16_to_f32(isa, all_bits)
        assert (back[finite] == all_bits.view(np.float16)[finite].astype(np.float32)).all(), isa
        assert np.isnan(back[~finite]).all(), isa
        nan16 = _core.kernels.f32_to_f16(isa, np.array([np.nan], np.float32)).view(np.float16)
        assert np.isnan(nan16).all(), isa
