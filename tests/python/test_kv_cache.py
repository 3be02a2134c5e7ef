"""The KV cache type option on the real SmolLM2 file: F16 (default) against F32, and the F16 path
against an independent oracle (transformers with its keys and values rounded to float16).

Tolerances:
- F16 vs F32: each stored key/value is rounded with relative error <= 2^-11 (~5e-4 of the
  element), which moves attention scores and outputs by about that much per layer. Measured on the
  prompts of test_logits.py: max |diff| 2.6e-4 .. 9.3e-4 of max|logit|. We require the bound that
  test_logits.py uses against transformers, 2e-3 * max|logit|, and the same argmax everywhere.
  This is prompt dependent: on degenerate input ("word " * 100) the network amplifies the rounding
  to ~2% of max|logit| at one position; the oracle test below shows that is F16 itself, not us.
- F16 vs transformers rounding the same keys (after RoPE) and values to float16: the two compute
  the same function, so the bound of test_logits.py applies, repetitive prompt included (measured
  0.6e-4 .. 3.6e-4: a float32 difference can still flip a float16 rounding).
"""

from __future__ import annotations

import numpy as np
import pytest
import wrenlm
from conftest import load_transformers_gguf, need
from test_logits import PROMPTS

REPETITIVE = "word " * 100


@pytest.fixture(scope="module")
def smollm2_f32(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2, kv_cache="f32")
    yield m
    m.close()


def test_default_cache_is_f16(smollm2, smollm2_f32):
    assert smollm2.kv_cache == "f16"
    assert smollm2_f32.kv_cache == "f32"


@pytest.mark.parametrize("bad", ["F16", "fp16", "bf16", "q8_0", "", None, 16])
def test_unknown_cache_type_is_a_value_error(bad):
    with pytest.raises(ValueError, match="kv_cache"):
        wrenlm.Model("does-not-matter.gguf", kv_cache=bad)


def test_engine_validates_cache_type_too(smollm2_path):
    from wrenlm import _core

    with pytest.raises(ValueError, match="kv_cache must be 'f16' or 'f32', got 'int8'"):
        _core.Engine(smollm2_path, kv_cache="int8")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_f16_and_f32_cache_logits_agree(smollm2, smollm2_f32, prompt):
    ids = smollm2.tokenize(prompt)
    f16, f32 = smollm2.logits(ids), smollm2_f32.logits(ids)
    err = np.abs(f16 - f32).max()
    scale = np.abs(f32).max()
    print(f"{prompt[:30]!r}: f16 vs f32 max abs diff {err:.2e}, rel {err / scale:.2e}")
    assert err <= 2e-3 * scale
    assert (f16.argmax(-1) == f32.argmax(-1)).all()


@pytest.fixture(scope="module")
def reference_f16_kv(smollm2_path):
    """transformers' Llama with v_proj outputs rounded to float16 (keys: see the test)."""
    model = load_transformers_gguf(smollm2_path)
    for layer in model.model.layers:
        layer.self_attn.v_proj.register_forward_hook(lambda mod, inp, out: out.half().float())
    return model


@pytest.mark.parametrize("prompt", [PROMPTS[0], PROMPTS[-1], REPETITIVE])
def test_f16_cache_matches_transformers_with_f16_kv(smollm2, reference_f16_kv, prompt, monkeypatch):
    import torch
    from transformers.models.llama import modeling_llama

    rope = getattr(modeling_llama, "apply_rotary_pos_emb", None)
    if rope is None:
        need("transformers.models.llama.modeling_llama.apply_rotary_pos_emb", "not in this version; nothing to wrap")

    def rope_then_round_keys(q, k, *args, **kwargs):  # the cache stores keys after RoPE
        q, k = rope(q, k, *args, **kwargs)
        return q, k.half().float()

    monkeypatch.setattr(modeling_llama, "apply_rotary_pos_emb", rope_then_round_keys)
    ids = smollm2.tokenize(prompt)
    with torch.no_grad():
        ref = reference_f16_kv(torch.tensor([ids])).logits[0].float().numpy()
    ours = smollm2.logits(ids)
    err = np.abs(ours - ref).max()
    scale = np.abs(ref).max()
    print(f"{prompt[:30]!r}: max abs err {err:.2e}, rel {err / scale:.2e}")
    assert err <= 2e-3 * scale
