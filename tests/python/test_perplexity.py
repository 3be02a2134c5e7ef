"""Model.perplexity and `wrenlm perplexity`, against two independent scorers of the same windows:

- transformers on the same GGUF file (dequantized by gguf-py), float32: our exact path must give
  the same perplexity within 0.1% (the issue's bound). Both compute the same float32 network in
  different summation orders; with an F32 KV cache the per-position logits differ by ~1e-5
  relative (test_quant_mixes), far inside 0.1% of a perplexity. Measured: 5e-7 relative.
- llama.cpp (llama-cpp-python, every position's logits) on the same token ids and windows, as
  its perplexity tool scores them: our generation path (8-bit activations, F16 KV cache) against
  its own quantized arithmetic, within 1% (both round activations and caches, each its own way;
  measured +0.19% on SmolLM2, 4 windows; +0.21% on Gemma 3, 2). This also checks the window rules: a BOS not put back
  at the start of a window, or a shifted target, moves a perplexity by far more than 1% on Gemma 3,
  whose tokenizer adds BOS.
The text is Python's pydoc topics (bench/perplexity.py's reference_text), real English prose.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import load_transformers_gguf, require_module

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_perplexity():
    spec = importlib.util.spec_from_file_location("bench_perplexity", BENCH / "perplexity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench_ppl = _bench_perplexity()
N_CTX = 512


@pytest.fixture(scope="module")
def text() -> str:
    return bench_ppl.reference_text()


def transformers_nll(reference, ids: list[int], first: int) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = reference(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[first:-1], dim=-1)
    return -logp[torch.arange(len(ids) - 1 - first), torch.tensor(ids[first + 1:])].numpy()


def test_exact_path_matches_transformers(smollm2_path, text):
    require_module("torch")
    reference = load_transformers_gguf(smollm2_path)
    with wrenlm.Model(smollm2_path, n_ctx=N_CTX, n_threads=2, kv_cache="f32") as model:
        ids = model.tokenize(text)[:2 * N_CTX]
        ours = model.perplexity(ids, n_ctx=N_CTX, exact=True)
        windows = model._perplexity_windows(ids, N_CTX)
    assert ours.n_windows == 2 and ours.nll.size == 2 * (N_CTX - 1 - N_CTX // 2)
    ref_nll = np.concatenate([transformers_nll(reference, w.ids, w.first) for w in windows])
    ref_ppl = math.exp(ref_nll.mean())
    print(f"perplexity: wrenlm exact {ours.perplexity:.6f}, transformers {ref_ppl:.6f}")
    assert abs(ours.perplexity - ref_ppl) <= 1e-3 * ref_ppl
    # Token by token too: a per-token slip would hide in the mean only if it cancelled out.
    np.testing.assert_allclose(ours.nll, ref_nll, atol=1e-2)


def _beside_llama_cpp(path: str, text: str, n_windows: int) -> tuple[float, float]:
    require_module("llama_cpp")
    with wrenlm.Model(path, n_ctx=N_CTX, n_threads=2) as model:
        ids = model.tokenize(text)[:n_windows * N_CTX]
        ours = model.perplexity(ids, n_ctx=N_CTX)
        windows = model._perplexity_windows(ids, N_CTX)
    peer = bench_ppl.LlamaCppScorer(Path(path), N_CTX, 2)
    try:
        theirs = math.exp(np.concatenate([peer.nll(w.ids, w.first) for w in windows]).mean())
    finally:
        peer.close()
    print(f"perplexity: wrenlm {ours.perplexity:.4f}, llama.cpp {theirs:.4f}")
    return ours.perplexity, theirs


def test_generation_path_beside_llama_cpp(smollm2_path, text):
    ours, theirs = _beside_llama_cpp(smollm2_path, text, 4)
    assert abs(ours - theirs) <= 0.01 * theirs


def test_bos_model_beside_llama_cpp(gemma3_path, text):
    with wrenlm.Model(gemma3_path, n_ctx=64, n_threads=1) as m:
        assert m._e.add_bos, "Gemma 3 adds BOS: the case this test is for"
    ours, theirs = _beside_llama_cpp(gemma3_path, text, 2)
    assert abs(ours - theirs) <= 0.01 * theirs


def test_windows_follow_llama_cpp_rules():
    ids = list(range(10, 10 + 2 * 8 + 5))  # two windows of 8, and a remainder of 5 that is dropped
    ws = list(wrenlm.perplexity.windows(ids, 8, bos_id=1))
    assert [w.start for w in ws] == [0, 8]
    assert ws[1].ids == [1] + ids[9:16] and ws[1].first == 4
    assert [w.ids for w in wrenlm.perplexity.windows(ids[:6], 8, None)] == [ids[:6]]  # shorter: one window


def test_result_and_progress(smollm2, text):
    seen = []
    r = smollm2.perplexity(text[:6000], n_ctx=256, progress=lambda k, n, p: seen.append((k, n, p)))
    assert isinstance(r, wrenlm.PerplexityResult)
    assert [s[:2] for s in seen] == [(k, r.n_windows) for k in range(1, r.n_windows + 1)]
    assert seen[-1][2] == pytest.approx(r.perplexity) == pytest.approx(float(r))
    assert r.perplexity == pytest.approx(math.exp(r.nll.mean()))
    assert 1.0 < r.perplexity < 100.0 and r.stderr > 0
    assert "PPL = " in str(r)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_ctx=4096), "exceeds the model's context window"),
    (dict(n_ctx=2), "n_ctx must be"),
    (dict(n_ctx="512"), "n_ctx must be"),
])
def test_bad_arguments(smollm2, kwargs, match):
    with pytest.raises(ValueError, match=match):
        smollm2.perplexity("Some text to score, long enough for a window.", **kwargs)


def test_bad_input(smollm2, minilm_dir):
    with pytest.raises(ValueError, match="at least 4 tokens"):
        smollm2.perplexity("Hi")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        smollm2.perplexity([1, 2, 3, smollm2.n_vocab])
    with wrenlm.Model(str(minilm_dir), n_threads=1) as encoder, pytest.raises(ValueError, match="causal"):
        encoder.perplexity("An encoder has no next-token distribution.")


def test_cli(smollm2_path, text, tmp_path):
    f = tmp_path / "text.txt"
    f.write_text(text[:8000], encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "wrenlm", "perplexity", smollm2_path, str(f), "--n-ctx", "256",
                          "--windows", "2", "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "[2/2]" in run.stderr
    with wrenlm.Model(smollm2_path, n_ctx=256, n_threads=2) as m:
        expected = m.perplexity(m.tokenize(text[:8000])[:512], n_ctx=256)
    assert run.stdout.startswith(f"PPL = {expected.perplexity:.4f}")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    run = subprocess.run([sys.executable, "-m", "wrenlm", "perplexity", smollm2_path, str(tmp_path / "bad.txt")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "not UTF-8" in run.stderr and "Traceback" not in run.stderr
