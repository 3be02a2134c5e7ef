"""wrenlm.quantize / `wrenlm quantize`: our quantizers and llama.cpp's mixes, against independent oracles.

- Round-trip formats (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): our bytes equal gguf-py's numpy
  quantizer's (gguf.quants.quantize) exactly, on random rows, edge blocks and real SmolLM2 rows.
- Search formats (Q2_K..Q6_K, IQ4_NL, IQ4_XS) have no unique encoding, so: gguf-py's dequantizer reads
  our blocks as ours does (bit-equal floats), and the RMS error of every tensor is at most 1.05x that
  of llama.cpp's quantizer on the same source tensor. Both searches minimise a squared error weighted
  towards large weights (ours: tensor/quantize_search.cpp), not the plain RMS, so the plain RMS can
  land on either side: measured 0.90-1.03x. A quantizer with a wrong scale rule is 1.2x or worse.
- Mixes: the file llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize) writes from the
  same source is the oracle for which tensor gets which type, the tensor order and the metadata keys,
  on a tiny Llama whose rows are multiples of 256 (K-quants apply, 8 layers so the "more bits" layers
  differ from the rest, GQA 4) and on SmolLM2 (576-wide rows: the K-quant fallbacks, tied embeddings).
- The output loads in gguf-py and in llama.cpp, whose logits on our file agree with ours.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from test_quant_mixes import quantize_with_llama_cpp
from tiny_models import convert_to_gguf, rewrite_gguf, save_hf_model
from wrenlm import _core

ROUND_TRIP = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
SEARCHED = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"}
# Mixes compared with llama.cpp on the tiny Llama: between them every type we write appears.
MIXES = ["Q4_K_M", "Q2_K", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_XS", "IQ4_NL",
         "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "F16", "BF16"]
RMS_RATIO = 1.05  # see the module docstring


def gguf_py():
    return require_module("gguf")


def edge_rows(rng: np.random.Generator) -> np.ndarray:
    """(rows, 256) float32: random scales from 1e-6 to 1e3, and blocks that test the corner cases of
    the scale and rounding rules (all zero, constant, one spike, exact .5 ties, tiny values whose
    scale is an fp16 subnormal, mixed signs of equal magnitude)."""
    rows = [rng.standard_normal(256) * s for s in (1e-6, 1e-3, 0.02, 1.0, 1e3)]
    rows += [rng.standard_t(3, 256) * 0.05, rng.uniform(-1, 1, 256)]
    rows.append(np.zeros(256))
    rows.append(np.full(256, 0.37))
    rows.append(np.full(256, -2.5))
    spike = np.zeros(256)
    spike[::32] = 5.0
    rows.append(spike)
    rows.append(np.round(rng.standard_normal(256) * 8) / 8)  # many values on exact quantization ties
    rows.append(rng.standard_normal(256) * 1e-7)              # fp16 subnormal scales
    pm = np.ones(256)
    pm[1::2] = -1
    rows.append(pm * 0.75)
    return np.asarray(rows, dtype=np.float32)


def smollm2_rows(smollm2_path: str, n: int = 64) -> np.ndarray:
    """Real weights: the first rows of two SmolLM2 matrices (dequantized from its Q4_1 file)."""
    gguf = gguf_py()
    out = []
    for t in gguf.GGUFReader(smollm2_path).tensors:
        if t.name in ("blk.0.attn_q.weight", "blk.5.ffn_down.weight"):
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            out.append(w[:n, :512])
    return np.concatenate(out)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_formats_equal_gguf_py(name, smollm2_path):
    gguf = gguf_py()
    qt = gguf.GGMLQuantizationType[name]
    rng = np.random.default_rng(7)
    for x in (edge_rows(rng), (rng.standard_normal((32, 1024)) * 0.02).astype(np.float32),
              smollm2_rows(smollm2_path)):
        expected = np.asarray(gguf.quants.quantize(x, qt)).view(np.uint8).tobytes()
        got = _core.quantize_row(int(qt), x)
        if got != expected:
            a = np.frombuffer(got, np.uint8)
            b = np.frombuffer(expected, np.uint8)
            first = int(np.flatnonzero(a != b)[0])
            pytest.fail(f"{name}: first differing byte {first} of {a.size}: ours {a[first]} gguf-py {b[first]}")


@pytest.mark.parametrize("name", sorted(SEARCHED))
def test_search_formats_decode_as_gguf_py(name):
    gguf = gguf_py()
    qt = gguf.GGMLQuantizationType[name]
    rng = np.random.default_rng(3)
    x = np.concatenate([edge_rows(rng), (rng.standard_normal((16, 256)) * 0.02).astype(np.float32)])
    raw = np.frombuffer(_core.quantize_row(int(qt), x), np.uint8)
    ours = _core.kernels.dequantize(int(qt), raw).reshape(x.shape)
    theirs = gguf.quants.dequantize(raw.reshape(x.shape[0], -1), qt).astype(np.float32)
    np.testing.assert_array_equal(ours, theirs)
    # A zero block stays zero; no row blows up. (Rows of magnitude 1e-6 and below are left out: their
    # ideal scales, divided by up to 127 levels and 63 sub-scale steps, fall below fp16's smallest
    # subnormal, in llama.cpp's encoding as in ours.)
    np.testing.assert_array_equal(ours[7], 0.0)
    rel = np.sqrt(((ours - x) ** 2).mean(1)) / np.maximum(np.sqrt((x**2).mean(1)), 1e-30)
    big = np.abs(x).max(1) > 1e-4
    assert rel[big].max() < 0.6, f"{name}: relative RMS error per row {np.round(rel, 3)}"


def test_bad_rows_are_rejected():
    with pytest.raises(ValueError, match="block size"):
        _core.quantize_row(12, np.zeros(100, np.float32))
    x = np.zeros(256, np.float32)
    x[17] = np.nan
    with pytest.raises(ValueError, match="element 17"):
        _core.quantize_row(2, x)
    with pytest.raises(wrenlm.UnsupportedError, match="IQ2_XXS"):
        _core.quantize_row(16, np.zeros(256, np.float32))


# -- whole models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("quantize")


@pytest.fixture(scope="module")
def tiny_llama(work) -> Path:
    """A tiny Llama as F32 GGUF written by llama.cpp's converter: rows of 256 and 512 (K-quants apply),
    8 layers, 4 query heads per KV head, untied output, a 384-piece SentencePiece vocabulary."""
    transformers = require_module("transformers")
    cfg = transformers.LlamaConfig(vocab_size=384, hidden_size=256, intermediate_size=512, num_hidden_layers=8,
                                   num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
                                   tie_word_embeddings=False, rms_norm_eps=1e-5)
    hf = save_hf_model(work / "hf", cfg, transformers.LlamaForCausalLM, None, init_std=0.2)
    return convert_to_gguf(hf, work / "tiny-f32.gguf")


@pytest.fixture(scope="module")
def smollm2_f16(smollm2_path, work) -> Path:
    """SmolLM2 with its matrices dequantized to F16 (what a user would quantize from)."""
    gguf = gguf_py()

    def f16(t):
        if len(t.shape) < 2:
            return t.data, t.tensor_type
        return gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float16), gguf.GGMLQuantizationType.F16

    return rewrite_gguf(Path(smollm2_path), work / "smollm2-f16.gguf", tensor=f16)


def table(reader) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, t.tensor_type.name, tuple(int(d) for d in t.shape)) for t in reader.tensors]


def field_value(reader, key):
    f = reader.fields[key]
    return f.contents()


def sampled(name: str, n_layer: int) -> bool:
    """The tensors outside the layers and those of the first two and the last layer."""
    if not name.startswith("blk."):
        return True
    return int(name.split(".")[1]) in (0, 1, n_layer - 1)


def compare_with_llama_cpp(src: Path, mix: str, work: Path, logits: bool, sample: bool = False) -> None:
    """Quantizes src with us and with llama.cpp and compares the files (sample: check the blocks of
    `sampled` tensors only; the table of types is always compared whole)."""
    gguf = gguf_py()
    ours_path = work / f"{src.stem}-{mix}-ours.gguf"
    wrenlm.quantize(src, ours_path, type=mix, n_threads=2, progress=False, force=True)
    ref_path = quantize_with_llama_cpp(str(src), mix, work / f"{src.stem}-{mix}-llama.gguf")
    ours, ref, source = (gguf.GGUFReader(str(p)) for p in (ours_path, ref_path, src))

    # The mix: the same tensors, in the same order, with the same types and shapes.
    assert table(ours) == table(ref)
    # The metadata: the same keys and values (llama.cpp sets file_type and quantization_version too).
    keys = [k for k in ref.fields if not k.startswith("GGUF.")]
    assert [k for k in ours.fields if not k.startswith("GGUF.")] == keys or set(ours.fields) == set(ref.fields)
    for k in keys:
        assert field_value(ours, k) == field_value(ref, k), k
    assert field_value(ours, "general.file_type") == field_value(ref, "general.file_type")

    src_tensors = {t.name: t for t in source.tensors}
    n_layer = 1 + max(int(t.name.split(".")[1]) for t in source.tensors if t.name.startswith("blk."))
    ratios: dict[str, list[float]] = {}
    for a, b in zip(ours.tensors, ref.tensors):
        if sample and not sampled(a.name, n_layer):
            continue
        s = src_tensors[a.name]
        x = np.asarray(gguf.quants.dequantize(s.data, s.tensor_type), dtype=np.float32)
        raw = np.ascontiguousarray(a.data).view(np.uint8).reshape(-1)
        deq = gguf.quants.dequantize(np.asarray(a.data), a.tensor_type).astype(np.float32)
        np.testing.assert_array_equal(_core.kernels.dequantize(int(a.tensor_type), raw), deq.reshape(-1),
                                      err_msg=a.name)
        name = a.tensor_type.name
        if a.tensor_type == s.tensor_type:  # kept: copied byte for byte
            assert raw.tobytes() == np.ascontiguousarray(s.data).view(np.uint8).tobytes(), a.name
        elif name in SEARCHED:
            err = float(np.sqrt(np.mean((deq.reshape(x.shape) - x) ** 2)))
            err_ref = float(np.sqrt(np.mean((gguf.quants.dequantize(b.data, b.tensor_type) - x) ** 2)))
            ratios.setdefault(name, []).append(err / err_ref)
            assert err <= RMS_RATIO * err_ref, f"{mix} {a.name} {name}: RMS {err:.4g} vs llama.cpp {err_ref:.4g}"
        else:  # a round-trip type: gguf-py's quantizer is the oracle, byte for byte
            expected = np.asarray(gguf.quants.quantize(x, a.tensor_type)).view(np.uint8).tobytes()
            assert raw.tobytes() == expected, f"{mix} {a.name} {name}"
    print(f"{src.stem} {mix}: RMS error / llama.cpp's: " +
          ", ".join(f"{k} {min(v):.3f}..{max(v):.3f}" for k, v in sorted(ratios.items())))
    if logits:
        check_llama_cpp_logits(ours_path, ref_path)


def llama_cpp_deviation(path: Path) -> tuple[float, float]:
    """How far llama.cpp's logits on a file are from our exact ones on the same file (float32
    activations on the dequantized weights, F32 cache: transformers' numbers within 1e-4, see
    test_quant_mixes.py): (mean |diff| / max|logit|, top-1 agreement)."""
    llama_cpp = require_module("llama_cpp")
    with wrenlm.Model(path, n_ctx=128, n_threads=2, kv_cache="f32") as m:
        ids = m.tokenize("The quick brown fox jumps over the lazy dog, then counts: one, two, three.")
        exact = m.logits(ids)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, logits_all=True, verbose=False)
    try:
        llm.eval(ids)
        theirs = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()
    scale = float(np.abs(exact).max())
    return float(np.abs(theirs - exact).mean()) / scale, float(np.mean(theirs.argmax(-1) == exact.argmax(-1)))


def check_llama_cpp_logits(ours: Path, ref: Path) -> None:
    """llama.cpp loads our file and computes with it as well as with its own file. llama.cpp rounds
    activations to 8 bits before its quantized products, so its logits move away from the exact ones
    on any quantized file (on llama.cpp's own Q4_K_M files: max |diff| 2-3 logits, on the F32 source
    0.1); a misread block would move them much further. So: its deviation on our file is at most 1.5x
    its deviation on its own file (measured 0.8-1.3x). (Top-1 agreement is printed, not asserted: this
    random model has many near-ties, where llama.cpp's rounding flips the winner on either file.)"""
    dev_ours, top1_ours = llama_cpp_deviation(ours)
    dev_ref, top1_ref = llama_cpp_deviation(ref)
    print(f"{ours.name}: llama.cpp vs exact: mean |diff| {dev_ours:.4f} (its own file {dev_ref:.4f}), "
          f"top-1 {top1_ours:.2f} ({top1_ref:.2f})")
    assert dev_ours <= 1.5 * dev_ref + 1e-4


@pytest.mark.parametrize("mix", MIXES)
def test_tiny_llama_mix_matches_llama_cpp(mix, tiny_llama, work):
    compare_with_llama_cpp(tiny_llama, mix, work, logits=mix in ("Q4_K_M", "Q2_K", "IQ4_XS", "Q8_0"))


@pytest.mark.parametrize("mix", ["Q4_K_M", "Q2_K"])
def test_smollm2_fallback_mix_matches_llama_cpp(mix, smollm2_f16, work):
    """576-wide rows: K-quants fall back to Q5_0 / Q4_0 / Q8_0 there; the tied token_embd is treated
    as the output matrix (Q8_0, as 576 is no multiple of 256)."""
    compare_with_llama_cpp(smollm2_f16, mix, work, logits=mix == "Q4_K_M", sample=True)


def test_requantize_from_a_quantized_file(smollm2_path, work):
    """A quantized source is dequantized first: Q4_1 -> Q8_0 equals gguf-py quantizing gguf-py's
    dequantization, and the kept tensors (norms) are copied."""
    gguf = gguf_py()
    out = work / "smollm2-requant-q8_0.gguf"
    wrenlm.quantize(smollm2_path, out, type="Q8_0", n_threads=2, progress=False, force=True)
    src = {t.name: t for t in gguf.GGUFReader(smollm2_path).tensors}
    for t in gguf.GGUFReader(str(out)).tensors[:12]:
        s = src[t.name]
        if t.tensor_type == s.tensor_type:
            continue
        x = gguf.quants.dequantize(s.data, s.tensor_type).astype(np.float32)
        expected = np.asarray(gguf.quants.quantize(x, t.tensor_type)).view(np.uint8).tobytes()
        assert np.ascontiguousarray(t.data).view(np.uint8).tobytes() == expected, t.name


# -- errors, interruption, CLI -------------------------------------------------------------------


def no_leftovers(path: Path) -> None:
    assert not path.exists()
    assert not Path(str(path) + ".tmp").exists()


def test_errors_are_clear(tiny_llama, work, tmp_path):
    out = tmp_path / "out.gguf"
    with pytest.raises(ValueError, match=r"unknown quantization type 'Q4_K_X' \(valid: Q4_0, .*Q4_K_M"):
        wrenlm.quantize(tiny_llama, out, type="Q4_K_X", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        wrenlm.quantize(tmp_path / "missing.gguf", out, progress=False)
    with pytest.raises(ValueError, match="overwrite the source"):
        wrenlm.quantize(tiny_llama, tiny_llama, progress=False, force=True)
    with pytest.raises(ValueError, match="n_threads"):
        wrenlm.quantize(tiny_llama, out, n_threads=0, progress=False)
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_bytes(b"hello, this is not a model" * 10)
    with pytest.raises(wrenlm.FormatError, match="notes.gguf.*magic"):
        wrenlm.quantize(not_gguf, out, progress=False)
    no_leftovers(out)
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="force"):
        wrenlm.quantize(tiny_llama, out, type="Q8_0", progress=False)
    assert out.read_bytes() == b"keep me"
    wrenlm.quantize(tiny_llama, out, type="Q8_0", progress=False, force=True)
    assert gguf_py().GGUFReader(str(out)).tensors


def test_non_finite_weights_name_the_tensor(tiny_llama, tmp_path):
    gguf = gguf_py()

    def poison(t):
        if t.name != "blk.2.ffn_up.weight":
            return t.data, t.tensor_type
        w = np.array(t.data, dtype=np.float32)
        w[3, 5] = np.inf
        return w, t.tensor_type

    bad = rewrite_gguf(tiny_llama, tmp_path / "bad.gguf", tensor=poison)
    assert gguf.GGUFReader(str(bad)).tensors
    out = tmp_path / "out.gguf"
    with pytest.raises(wrenlm.FormatError, match=r"bad.gguf.*blk\.2\.ffn_up\.weight' row 3.*element 5 is inf"):
        wrenlm.quantize(bad, out, type="Q4_K_M", progress=False)
    no_leftovers(out)


def test_interrupt_leaves_no_output(smollm2_f16, tmp_path):
    out = tmp_path / "out.gguf"

    def stop(i, n, *rest):
        if i == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wrenlm.quantize(smollm2_f16, out, type="Q4_K_M", n_threads=2, progress=stop)
    no_leftovers(out)

    # A real SIGINT (Ctrl-C) while the C++ side runs with the GIL released.
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            wrenlm.quantize(smollm2_f16, out, type="Q4_K_M", n_threads=2, progress=False)
    finally:
        timer.cancel()
    no_leftovers(out)


def test_cli(tiny_llama, tmp_path, capsys):
    from wrenlm.cli import main

    out = tmp_path / "cli.gguf"
    assert main(["quantize", str(tiny_llama), str(out), "--type", "q4_k_m", "--threads", "2"]) == 0
    err = capsys.readouterr().err
    assert "[1/" in err and "MB/s" in err and "wrote" in err
    assert {t.tensor_type.name for t in gguf_py().GGUFReader(str(out)).tensors} >= {"Q4_K", "Q6_K", "F32"}
    assert main(["quantize", str(tiny_llama), str(out), "--type", "Q8_0"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama), str(out), "--type", "Q9"]) == 2
    assert "valid: Q4_0" in capsys.readouterr().err
    assert main(["quantize", "--list-types"]) == 0
    listing = capsys.readouterr().out
    assert "Q4_K_M" in listing and "IQ4_XS" in listing


def test_hf_folder_source(smollm2_path, work):
    """A Hugging Face folder as the source (a tiny Llama with SmolLM2's tokenizer.json, as wrenlm reads
    folders). Oracle: llama.cpp's converter on the same folder. Its F16 output (gguf-py's
    astype(float16), Q/K rows permuted for llama.cpp's RoPE) equals our F16 mix tensor for tensor, byte
    for byte; and our Q4_K_M from the folder has the type table of llama.cpp's Q4_K_M from the
    converter's file, and llama.cpp computes with it as with its own."""
    gguf = gguf_py()
    transformers = require_module("transformers")
    from tiny_models import smollm2_tokenizer

    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   tie_word_embeddings=True, rms_norm_eps=1e-5)
    hf = save_hf_model(work / "hf-bpe", cfg, transformers.LlamaForCausalLM, tok, init_std=0.2)
    converted = convert_to_gguf(hf, work / "bpe-converter-f16.gguf", outtype="f16")
    ours_path = work / "bpe-from-hf-F16.gguf"
    wrenlm.quantize(hf, ours_path, type="F16", n_threads=2, progress=False, force=True)
    ours = {t.name: t for t in gguf.GGUFReader(str(ours_path)).tensors}
    ref = {t.name: t for t in gguf.GGUFReader(str(converted)).tensors}
    assert sorted(ours) == sorted(ref)
    for name, r in ref.items():
        o = ours[name]
        assert (o.tensor_type, list(o.shape)) == (r.tensor_type, list(r.shape)), name
        assert np.ascontiguousarray(o.data).tobytes() == np.ascontiguousarray(r.data).tobytes(), name
    assert "wrenlm.rope.neox" not in gguf.GGUFReader(str(ours_path)).fields

    q = work / "bpe-from-hf-Q4_K_M.gguf"
    wrenlm.quantize(hf, q, type="Q4_K_M", n_threads=2, progress=False, force=True)
    ref_q = quantize_with_llama_cpp(str(converted), "Q4_K_M", work / "bpe-converter-Q4_K_M-llama.gguf")
    assert table(gguf.GGUFReader(str(q))) == table(gguf.GGUFReader(str(ref_q)))
    check_llama_cpp_logits(q, ref_q)
