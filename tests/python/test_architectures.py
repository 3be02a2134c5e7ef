"""Logits parity per architecture on tiny random models: transformers (float32) is the oracle for
both the GGUF written by llama.cpp's converter and (where supported) the Hugging Face folder itself.

Tolerance: F32 weights and an F32 KV cache leave only summation-order differences, which grow with
depth and with the logit scale; 1e-4 x max|logit| (plus 1e-5 absolute) holds with a margin for these
2-layer models and would be broken by any real error (a wrong permutation, norm, scale or mask moves
logits by O(1))."""

from __future__ import annotations

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from tiny_models import (SPM_VOCAB_SIZE, convert_to_gguf, save_hf_model, smollm2_tokenizer, transformers_greedy,
                         transformers_logits)

PROMPT = "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2"
RTOL = 1e-4
N_GREEDY = 16


def assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    scale = float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max())
    assert err <= RTOL * scale + 1e-5, f"max |diff| {err:.3g} > {RTOL} x max|logit| {scale:.3g}"
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=False, rms_norm_eps=1e-5)
    d = tmp_path_factory.mktemp("tiny_llama")
    hf = save_hf_model(d / "hf", cfg, transformers.LlamaForCausalLM, tok, init_std=0.2)
    return hf, convert_to_gguf(hf, d / "model-f32.gguf")


def test_llama_gguf_matches_transformers(tiny_llama):
    hf, gguf = tiny_llama
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert_close(model.logits(ids), transformers_logits(hf, ids))


def check_parity(hf, gguf) -> None:
    """Prompt logits within RTOL of transformers', and N_GREEDY greedy tokens (our prefill + KV-cache
    decode against transformers' full recomputation) identical."""
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert_close(model.logits(ids), transformers_logits(hf, ids))
    ours = model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True)
    assert ours == transformers_greedy(hf, ids, N_GREEDY)


def make_tiny(tmp_path_factory, name: str, config, model_class, tokenizer):
    """The model with SmolLM2's tokenizer, as a folder and as an F32 GGUF."""
    d = tmp_path_factory.mktemp(name)
    hf = save_hf_model(d / "hf", config, model_class, tokenizer, init_std=0.2)
    return hf, convert_to_gguf(hf, d / "model-f32.gguf", bpe_pre="smollm")


# -- Qwen2: Q/K/V biases, NeoX RoPE, untied output ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=False, rms_norm_eps=1e-6)
    return make_tiny(tmp_path_factory, "tiny_qwen2", cfg, transformers.Qwen2ForCausalLM, tok)


def test_qwen2_gguf_matches_transformers(tiny_qwen2):
    check_parity(*tiny_qwen2)
