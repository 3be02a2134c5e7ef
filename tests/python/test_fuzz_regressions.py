"""Regression tests for the findings of the fuzzers (fuzz/README.md), one per fixed finding.

Each names its target and the sanitizer report; the crashing input is kept in the target's seed
corpus (fuzz/corpus/<target>/crash-*), so the smoke run replays it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import wrenlm
from conftest import require_module
from tiny_models import rewrite_gguf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz" / "python"))
from tiny_gguf import write_tiny_llama  # noqa: E402


def test_non_finite_activations_quantize_to_nan(tmp_path):
    """fuzz_model_load, UBSan: "nan is outside the range of representable values of type 'int'" in
    quantize_act_q8 (tensor/quant.cpp). A model file whose weights make an activation NaN or inf had
    the 8-bit activation path convert it to int -- undefined behaviour, which on x86 made the value 0
    (NaN) or turned the whole block's scale into garbage (inf): finite made-up numbers in every product.
    Oracle: numpy's float products of the same weights with the same activations, which are NaN (or
    +-inf) in every row -- the non-finite value must reach every output, never a finite number."""
    gguf = require_module("gguf")
    from wrenlm import _core

    rng = np.random.default_rng(7)
    rows, cols = 16, 64
    qt = gguf.GGMLQuantizationType.Q8_0
    raw = gguf.quants.quantize((rng.standard_normal((rows, cols)) * 0.1).astype(np.float32), qt)
    w = gguf.quants.dequantize(raw, qt).astype(np.float64)  # (rows, cols)
    for bad in (np.nan, np.inf, -np.inf):
        x = rng.standard_normal((2, cols)).astype(np.float32)  # (n, cols)
        x[1, 37] = bad
        expected = x.astype(np.float64) @ w.T  # (n, rows)
        assert np.isfinite(expected[0]).all() and not np.isfinite(expected[1]).any()
        # The round trip of the quantized activations: the block holding the value is NaN, the other
        # block is untouched.
        q = _core.kernels.quantize_act_q8(x[1])
        assert np.isnan(q[32:]).all() and np.isfinite(q[:32]).all(), bad
        for isa in _core.kernels.available_isas():
            y = _core.kernels.gemm_packed(isa, int(qt), raw.reshape(-1), rows, x)
            assert np.isfinite(y[0]).all(), (isa, bad)
            assert np.isnan(y[1]).all(), (isa, bad, y[1])


def test_tiny_activation_blocks_quantize_within_the_bound():
    """fuzz_model_load, UBSan: "-inf is outside the range of representable values of type 'int'" in
    quantize_act_q8. For a block whose largest magnitude is below ~3.7e-37 the scale d = amax / 127 is
    subnormal and 1 / d overflows to inf: each x * inf was +-inf (NaN for 0) before the int conversion,
    and on x86 the block quantized to zeros. Oracle: the quantizer's own contract, checked in numpy --
    round to nearest on the grid d * k, |k| <= 127, so each round-tripped value is within d / 2 of x
    (plus the rounding of d * k in subnormal float32, at most one subnormal step)."""
    from wrenlm import _core

    rng = np.random.default_rng(11)
    for amax in (3e-37, 1e-38, 1e-40):
        x = rng.uniform(-1, 1, 64).astype(np.float32)
        x[5] = 0.0
        x = (x / np.abs(x).max() * amax).astype(np.float32)
        got = _core.kernels.quantize_act_q8(x)
        for block in (slice(0, 32), slice(32, 64)):
            d = np.float64(np.abs(x[block]).max()) / 127
            err = np.abs(got[block].astype(np.float64) - x[block].astype(np.float64))
            assert np.isfinite(got[block]).all(), amax
            assert err.max() <= d / 2 * 1.001 + 127 * 2.0**-149, (amax, err.max(), d)


def test_nan_in_a_model_file_gives_nan_logits(tmp_path):
    """The same finding end to end, as the fuzzer met it: a Q8_0 model whose embedding row of one token
    holds a NaN (this passed before the fix too -- the residual stream carried the NaN around the
    made-up products -- and guards that the fix keeps NaN flowing to the logits). Oracle: IEEE
    arithmetic -- RMSNorm of a row holding a NaN is NaN in every element, so every logit of that
    token is NaN on both numerics paths (the other tokens' logits are NaN only in
    the column of the broken token, whose row is also the tied output head's)."""
    require_module("gguf")
    src = tmp_path / "llama-q8_0.gguf"
    write_tiny_llama(str(src), dim=32, ffn=64, n_head=2, n_kv=1, n_vocab=272, matrix_type="Q8_0")
    bad_token = 5

    def with_nan(t):
        if t.name != "token_embd.weight":
            return t.data, t.tensor_type
        data = np.array(t.data, dtype=np.float32, copy=True)  # (n_vocab, dim)
        data[bad_token, 3] = np.nan
        return data, t.tensor_type

    m = wrenlm.Model(rewrite_gguf(src, tmp_path / "nan.gguf", tensor=with_nan), n_ctx=16, n_threads=1)
    for exact in (False, True):
        both = m.logits([6, bad_token], exact=exact)  # (2, n_vocab)
        assert np.isnan(both[1]).all(), exact
        others = np.delete(both[0], bad_token)
        assert np.isfinite(others).all() and np.isnan(both[0, bad_token]), exact


def test_template_compiling_to_bad_python_leaks_no_file(tmp_path, monkeypatch):
    """fuzz_chat_template: `{{ O[a, b:c] }}` parses as Jinja but becomes Python that does not compile.
    CPython then reads the failing line from a file named after the code ("<template>", relative
    to the working directory) into SyntaxError.text. With such a file present, the error wrenlm
    raises must be a ChatTemplateError that neither says nor chains the file's text."""
    import traceback

    from wrenlm import chat

    canary = "CANARY-7f3a9c-secret"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "<template>").write_text("\n".join([canary] * 200))
    try:
        chat.render("{{ O[a, b:c] }}", [{"role": "user", "content": "hi"}], add_generation_prompt=True,
                    bos_token="", eos_token="")
    except wrenlm.ChatTemplateError as e:
        shown = "".join(traceback.format_exception(e))
        assert "SyntaxError" in str(e)
        assert canary not in shown
        assert e.__cause__ is None and e.__suppress_context__
    else:
        raise AssertionError("the template rendered")


def test_widths_the_file_cannot_hold_are_refused_before_allocating():
    """fuzz_model_load: a 77 KB GGUF declaring feed_forward_length 1,048,640 (its tensors are 64 wide)
    made the engine size its activation buffers by it (a 2 GiB allocation) before binding a tensor.
    Hyper-parameters are now bounded by what the file can hold (at least 1.5 bits per weight of one
    feed-forward and the query matrix per layer): FormatError naming the key, at once."""
    import resource
    import time

    corpus = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "fuzz_model_load"
    path = corpus / "crash-oom-ffn-width-beyond-file"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    try:
        wrenlm.Model(str(path), n_threads=1)
    except wrenlm.FormatError as e:
        assert "feed_forward_length" in str(e) and "the file has 77632" in str(e)
    else:
        raise AssertionError("the model loaded")
    assert time.perf_counter() - t < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB: no big buffer
