"""Low-rank terms (LoRA applied unmerged, kernels/low_rank.h) in every matmul path, against numpy.

matmul(W with terms) must equal x_w W^T + sum s (x A^T) B^T, where W is gguf-py's dequantization of
the weight bytes, x_w the activations the path multiplies W with (8-bit round-tripped on the packed
and codebook paths, float elsewhere) and the terms always use the float x. The oracle runs in
float64. Tolerance: 1e-5 of the sum of |terms| (both products), as test_kernels.py: float32
accumulation over at most ~800 terms, whatever the order. Each case also checks that the terms move
y by over 100x the tolerance, so a dropped, doubled or misplaced term cannot pass.

Paths and splits covered: decode (n = 1) and few tokens (n = 5: the terms run inside the product's
jobs), many tokens (n = 40, 70: after the product, over runs of tokens on several threads), exact
(float activations on dequantized tiles), packed / codebook / F16 / F32, several products sharing
one input (Q, K, V), two terms on one matrix, and a matrix that is a row slice of B (fused tensors)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module
from test_kernels import make_matrix


def dense(gguf, name, rows, cols, rng):
    """(type id, raw bytes, float64 values) for F32 / F16, which make_matrix's block generator does not make."""
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    if name == "F16":
        w16 = w.astype(np.float16)
        return int(gguf.GGMLQuantizationType.F16), w16.view(np.uint8).reshape(-1), w16.astype(np.float64)
    return int(gguf.GGMLQuantizationType.F32), w.view(np.uint8).reshape(-1), w.astype(np.float64)


def weights(gguf, name, rows, cols, rng):
    if name in ("F32", "F16"):
        return dense(gguf, name, rows, cols, rng)
    return make_matrix(gguf, name, rows, cols, rng)


def terms_for(rng, rows, cols, specs):
    """[(a, b, row0, scale)] for (rank, extra_rows, row0, scale) specs: B has rows + extra_rows rows,
    of which this matrix is rows row0.. (a fused tensor's part)."""
    out = []
    for rank, extra, row0, scale in specs:
        a = (rng.standard_normal((rank, cols)) * 0.5).astype(np.float32)
        b = (rng.standard_normal((rows + extra, rank)) * 0.5).astype(np.float32)
        out.append((a, b, row0, scale))
    return out


def oracle(x, xw, w, terms, rows):
    """(expected, bound, size of the terms' contribution) in float64."""
    x = x.astype(np.float64)
    base = xw @ w.T
    bound = np.abs(xw) @ np.abs(w).T
    lora = np.zeros_like(base)
    for a, b, row0, scale in terms:
        bs = b[row0:row0 + rows].astype(np.float64)
        lora += scale * (x @ a.T) @ bs.T
        bound += abs(scale) * (np.abs(x) @ np.abs(a).T) @ np.abs(bs).T
    return base + lora, 1e-5 * bound + 1e-6, np.abs(lora).max()


CASES = [
    # (type, rows, cols, n, exact, term specs (rank, extra rows of B, row0, scale), the path matmul takes)
    ("Q8_0", 48, 96, 1, False, [(4, 0, 0, 2.0)], "packed"),
    ("Q8_0", 48, 96, 5, False, [(4, 0, 0, 2.0), (3, 0, 0, -0.5)], "packed"),
    ("Q4_0", 37, 64, 1, False, [(5, 24, 11, 1.0)], "packed"),          # rows not a multiple of 16; a slice of B
    ("Q4_0", 96, 256, 40, False, [(8, 0, 0, 0.75)], "packed"),
    ("Q4_K", 40, 256, 1, False, [(4, 0, 0, 1.5)], "packed"),
    ("Q4_K", 40, 256, 5, True, [(4, 0, 0, 1.5)], "tiles"),
    ("TQ1_0", 33, 256, 1, False, [(6, 8, 8, 1.0)], "i8"),          # codebook: int8-decoded rows
    ("MXFP4", 20, 96, 5, False, [(2, 0, 0, 3.0), (4, 0, 0, 1.0)], "i8"),
    ("MXFP4", 20, 96, 40, False, [(2, 0, 0, 3.0)], "i8|tiles"),  # i8 where the ISA has gemm_i8_rows
    ("F32", 50, 64, 1, False, [(4, 10, 5, 1.0)], "matvec"),
    ("F32", 300, 768, 70, False, [(16, 0, 0, 0.25)], "tiles"),       # enough work to split across threads
    ("F16", 50, 64, 1, False, [(4, 0, 0, 1.0)], "matvec"),
    ("F16", 50, 64, 5, False, [(4, 0, 0, 1.0)], "f16"),
    ("Q8_0", 48, 96, 5, True, [(4, 0, 0, 2.0)], "tiles"),
]


@pytest.mark.parametrize("name, rows, cols, n, exact, specs, expected_path", CASES)
def test_matmul_with_low_rank_terms_matches_numpy(name, rows, cols, n, exact, specs, expected_path):
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(rows * cols + n)
    tid, raw, w = weights(gguf, name, rows, cols, rng)
    cols = w.shape[1]
    x = (rng.standard_normal((n, cols)) * 2).astype(np.float32)
    terms = terms_for(rng, rows, cols, specs)
    (y,), (path,) = _core.kernels.matmul([(tid, raw, rows, terms)], x, exact=exact)
    if expected_path == "i8|tiles":  # many tokens of a codebook format
        expected_path = "tiles" if _core.kernels.active_isa() == "generic" else "i8"
    assert path == expected_path
    quantized = path in ("packed", "i8")
    xw = np.stack([_core.kernels.quantize_act_q8(r) for r in x]) if quantized else x
    expected, bound, moved = oracle(x, xw.astype(np.float64), w, terms, rows)
    assert moved > 100 * bound.max(), "the terms must matter far beyond the tolerance"
    assert (np.abs(y - expected) <= bound).all(), f"path {path}: max err {np.abs(y - expected).max():.3g}"


@pytest.mark.parametrize("n", [1, 5, 40])
@pytest.mark.parametrize("name", ["Q8_0", "F32"])
def test_shared_input_products_with_low_rank_terms(name, n):
    """Q, K, V style: three matrices of one input in one call (one job over all their rows for packed
    types), the middle one without terms, the others each a slice of one fused B."""
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(n)
    cols, shapes = 64, [64, 32, 32]
    mats = [weights(gguf, name, r, cols, rng) for r in shapes]
    x = (rng.standard_normal((n, cols)) * 2).astype(np.float32)
    a = (rng.standard_normal((4, cols)) * 0.5).astype(np.float32)
    b = (rng.standard_normal((sum(shapes), 4)) * 0.5).astype(np.float32)  # one B for the fused Q|K|V rows
    term_lists = [[(a, b, 0, 1.5)], [], [(a, b, 96, 1.5)]]
    ys, paths = _core.kernels.matmul([(tid, raw, r, t) for (tid, raw, _), r, t in zip(mats, shapes, term_lists)], x)
    for y, path, (_, _, w), r, t in zip(ys, paths, mats, shapes, term_lists):
        xw = np.stack([_core.kernels.quantize_act_q8(v) for v in x]) if path in ("packed", "i8") else x
        expected, bound, _ = oracle(x, xw.astype(np.float64), w, t, r)
        assert (np.abs(y - expected) <= bound).all(), f"{path}: max err {np.abs(y - expected).max():.3g}"
